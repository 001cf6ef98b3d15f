/*
 * Record validation at ingest: a feed item's url, id and key checked (or
 * the key derived) into a record the queue can take. Everything a feed can
 * get wrong about a single record is caught here or in url.c and key.c,
 * with a reason naming the field.
 */
#include "record.h"

#include "meta.h"

#include <string.h>

#include <curl/curl.h>

void
sl_record_scratch_init(sl_record_scratch *s)
{
    sl_buf_init(&s->url);
    sl_buf_init(&s->key);
    sl_buf_init(&s->origin);
    sl_buf_init(&s->seg);
    s->curl_url = NULL;
    sl_meta_scratch_init(&s->meta);
}

void
sl_record_scratch_free(sl_record_scratch *s)
{
    sl_buf_free(&s->url);
    sl_buf_free(&s->key);
    sl_buf_free(&s->origin);
    sl_buf_free(&s->seg);
    sl_meta_scratch_free(&s->meta);
    curl_url_cleanup(s->curl_url);
    s->curl_url = NULL;
}

sluice_err
sl_field_check(const char *field, const char *s, size_t len, size_t max,
               sluice_err err, char *reason, size_t reason_size)
{
    size_t where;
    if (len == 0) {
        sl_fmt(reason, reason_size, "%s: empty", field);
        return err;
    }
    if (len > max) {
        sl_fmt(reason, reason_size, "%s: longer than %zu bytes (%zu)", field,
               max, len);
        return err;
    }
    if (sl_find_control(s, len, &where)) {
        sl_fmt(reason, reason_size, "%s: control byte 0x%02x at offset %zu",
               field, (unsigned char)s[where], where);
        return err;
    }
    if (!sl_utf8_valid(s, len, &where)) {
        sl_fmt(reason, reason_size, "%s: invalid UTF-8 at offset %zu", field,
               where);
        return err;
    }
    return SLUICE_OK;
}

sluice_err
sl_record_prepare(sl_record_scratch *s, const sl_feed_item *item,
                  sl_record *rec, char *reason, size_t reason_size)
{
    sluice_err err;

    memset(rec, 0, sizeof *rec);
    if (!item->url) {
        sl_fmt(reason, reason_size, "url: missing");
        return SLUICE_EPARSE;
    }
    if (!s->curl_url && !(s->curl_url = curl_url()))
        return SLUICE_ENOMEM;
    err = sl_url_check(item->url, item->url_len, s->curl_url, &s->url,
                       &s->origin, reason, reason_size);
    if (err != SLUICE_OK)
        return err;
    rec->url = s->url.data;
    rec->url_len = s->url.len;
    rec->origin = s->origin.data;
    rec->origin_len = s->origin.len;

    if (item->id) {
        err = sl_field_check("id", item->id, item->id_len, SL_ID_MAX,
                             SLUICE_EPARSE, reason, reason_size);
        if (err != SLUICE_OK)
            return err;
        rec->id = item->id;
        rec->id_len = item->id_len;
    } else {
        /* The default id is the normalised URL. */
        rec->id = rec->url;
        rec->id_len = rec->url_len;
    }

    if (item->key) {
        err = sl_key_check(item->key, item->key_len, reason, reason_size);
        if (err != SLUICE_OK)
            return err;
        rec->key = item->key;
        rec->key_len = item->key_len;
    } else {
        err = sl_key_derive(&s->key, &s->seg, rec->id, rec->id_len,
                            item->id != NULL, rec->url);
        if (err != SLUICE_OK)
            return err;
        char why[160];
        if (sl_key_check(s->key.data, s->key.len, why, sizeof why) !=
            SLUICE_OK) {
            sl_fmt(reason, reason_size,
                   "default %s; give the record an explicit key", why);
            return SLUICE_EKEY;
        }
        rec->key = s->key.data;
        rec->key_len = s->key.len;
    }
    /* It goes on the object as metadata: refused now if it cannot. */
    if (item->meta && item->meta_read)
        err = sl_meta_fields_read(item->meta_read, NULL, NULL, reason,
                                  reason_size);
    else
        err = sl_meta_fields_with(&s->meta, item->meta, NULL, NULL, reason,
                                  reason_size);
    if (err != SLUICE_OK)
        return err;
    rec->meta = item->meta;
    rec->meta_len = item->meta ? strlen(item->meta) : 0;
    return SLUICE_OK;
}
