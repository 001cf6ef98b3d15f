/*
 * CSV feeds (RFC 4180): a header row naming at least the url column (and
 * maybe id, key, meta; the names may be given), quoted fields with ""
 * escapes and embedded line breaks, fields split by a comma, or the
 * semicolon or tab a header uses instead. Columns sluice does not use
 * become string members of meta, unless the file has a meta column (a
 * JSON object), which is then meta as it is.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "../json.h"
#include "feed.h"

#define MAX_FIELDS 10000

sluice_err
sl_csv_init(sl_csv *c)
{
    memset(c, 0, sizeof *c);
    c->col_url = c->col_id = c->col_key = c->col_meta = -1;
    sl_buf_init(&c->record);
    sl_buf_init(&c->fields);
    c->meta = sl_json_gen_new();
    return c->meta ? SLUICE_OK : SLUICE_ENOMEM;
}

void
sl_csv_free(sl_csv *c)
{
    sl_buf_free(&c->record);
    sl_buf_free(&c->fields);
    if (c->col_names) {
        for (size_t i = 0; i < c->n_cols; i++)
            sl_free(c->col_names[i]);
        sl_free(c->col_names);
    }
    sl_free(c->field_off);
    if (c->meta)
        yajl_gen_free(c->meta);
    memset(c, 0, sizeof *c);
}

int
sl_csv_split(sl_csv *c, const char *s, size_t len, char *reason,
             size_t reason_size)
{
    size_t n = 0, i = 0;
    const char delim = c->delim ? c->delim : ',';
    sl_buf_clear(&c->fields);
    for (;;) {
        if (n == MAX_FIELDS) {
            sl_fmt(reason, reason_size, "more than %d fields", MAX_FIELDS);
            return -1;
        }
        if (n == c->field_cap) {
            size_t cap = c->field_cap ? c->field_cap * 2 : 16;
            size_t *off = sl_realloc(c->field_off, (cap + 1) * sizeof *off);
            if (!off)
                goto nomem;
            c->field_off = off;
            c->field_cap = cap;
        }
        c->field_off[n++] = c->fields.len;
        if (i < len && s[i] == '"') {
            i++;
            for (;;) {
                if (i >= len) {
                    sl_fmt(reason, reason_size,
                           "field %zu: unterminated quoted field", n);
                    return -1;
                }
                if (s[i] == '"') {
                    if (i + 1 < len && s[i + 1] == '"') {
                        if (sl_buf_putc(&c->fields, '"'))
                            goto nomem;
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                if (sl_buf_putc(&c->fields, s[i++]))
                    goto nomem;
            }
            if (i < len && s[i] != delim) {
                sl_fmt(reason, reason_size,
                       "field %zu: text after the closing quote", n);
                return -1;
            }
        } else {
            const char *sep = memchr(s + i, delim, len - i);
            size_t stop = sep ? (size_t)(sep - s) : len;
            if (sl_buf_append(&c->fields, s + i, stop - i))
                goto nomem;
            i = stop;
        }
        if (sl_buf_putc(&c->fields, '\0'))
            goto nomem;
        if (i >= len)
            break;
        i++; /* the delimiter */
    }
    c->field_off[n] = c->fields.len;
    return (int)n;
nomem:
    sl_fmt(reason, reason_size, "out of memory");
    return -2;
}

/* Field i of the current record, trimmed of surrounding blanks. */
static const char *
field(const sl_csv *c, size_t i, size_t *len, bool trim)
{
    const char *s = c->fields.data + c->field_off[i];
    size_t n = c->field_off[i + 1] - c->field_off[i] - 1;
    while (trim && n && isspace((unsigned char)*s))
        s++, n--;
    while (trim && n && isspace((unsigned char)s[n - 1]))
        n--;
    *len = n;
    return s;
}

/* ',' ';' "tab", or the delimiter as it is, for messages. */
static const char *
delimiter_name(char delim, char buf[2])
{
    if (delim == '\t')
        return "tab";
    buf[0] = delim;
    buf[1] = '\0';
    return buf;
}

/*
 * Why the header does not do: a column named by an option, or the url
 * column, is missing. Said once, at the header, with the header as read
 * and the column expected, since every record would fail the same way.
 */
static void
missing_column(const sl_csv *c, const char *header, size_t header_len,
               const char *what, const char *given, const char *option,
               char *reason, size_t reason_size)
{
    char shown[240], d[2];
    const char *delim = delimiter_name(c->delim, d);
    sl_quote(shown, sizeof shown, header, header_len, 200);
    if (given)
        sl_fmt(reason, reason_size,
               "no %s column: the header is \"%s\" (delimiter '%s'), with "
               "no column \"%.60s\" (%s); file skipped",
               what, shown, delim, given, option);
    else
        sl_fmt(reason, reason_size,
               "no %s column: the header is \"%s\" (delimiter '%s'); name "
               "it with %s; file skipped",
               what, shown, delim, option);
}

static sl_feed_status
parse_header(sl_csv *c, size_t n, const char *header, size_t header_len,
             char *reason, size_t reason_size)
{
    const sl_feed_opts *o = &c->opts;
    const char *url_name = o->url_column ? o->url_column : "url";
    const char *id_name = o->id_column ? o->id_column : "id";
    const char *key_name = o->key_column ? o->key_column : "key";
    c->col_names = sl_calloc(n, sizeof *c->col_names);
    if (!c->col_names)
        goto nomem;
    c->n_cols = n;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *name = field(c, i, &len, true);
        c->col_names[i] = sl_strndup(name, len);
        if (!c->col_names[i])
            goto nomem;
        for (size_t k = 0; k < i; k++) {
            if (strcasecmp(c->col_names[k], c->col_names[i]) == 0) {
                sl_fmt(reason, reason_size,
                       "CSV header names column \"%.40s\" twice; file "
                       "skipped",
                       c->col_names[i]);
                return SL_FEED_REJECT;
            }
        }
        int *slot = NULL;
        if (strcasecmp(c->col_names[i], url_name) == 0)
            slot = &c->col_url;
        else if (strcasecmp(c->col_names[i], id_name) == 0)
            slot = &c->col_id;
        else if (strcasecmp(c->col_names[i], key_name) == 0)
            slot = &c->col_key;
        else if (strcasecmp(c->col_names[i], "meta") == 0)
            slot = &c->col_meta;
        if (slot)
            *slot = (int)i;
    }
    if (c->col_url < 0) {
        missing_column(c, header, header_len, "url", o->url_column,
                       "--url-column", reason, reason_size);
        return SL_FEED_REJECT;
    }
    if (c->col_id < 0 && o->id_column) {
        missing_column(c, header, header_len, "id", o->id_column,
                       "--id-column", reason, reason_size);
        return SL_FEED_REJECT;
    }
    if (c->col_key < 0 && o->key_column) {
        missing_column(c, header, header_len, "key", o->key_column,
                       "--key-column", reason, reason_size);
        return SL_FEED_REJECT;
    }
    return SL_FEED_EOF;
nomem:
    sl_fmt(reason, reason_size, "out of memory");
    return SL_FEED_ERROR;
}

static bool
used_column(const sl_csv *c, size_t i)
{
    int col = (int)i;
    return col == c->col_url || col == c->col_id || col == c->col_key ||
           col == c->col_meta;
}

/* meta: the meta column's object, or the unused columns as strings. */
static sl_feed_status
build_meta(sl_csv *c, sl_feed_item *item, char *reason, size_t reason_size)
{
    size_t len;
    const char *text;
    bool any = false;

    yajl_gen_reset(c->meta, NULL);
    yajl_gen_clear(c->meta);
    if (c->col_meta >= 0) {
        text = field(c, (size_t)c->col_meta, &len, true);
        if (len == 0)
            return SL_FEED_RECORD;
        char why[160];
        yajl_gen_map_open(c->meta);
        if (sl_json_copy_members(c->meta, text, len, why, sizeof why)) {
            sl_fmt(reason, reason_size, "meta: %s", why);
            return SL_FEED_REJECT;
        }
        yajl_gen_map_close(c->meta);
        item->meta = sl_json_gen_text(c->meta, NULL);
        return SL_FEED_RECORD;
    }
    for (size_t i = 0; i < c->n_cols; i++) {
        if (used_column(c, i))
            continue;
        text = field(c, i, &len, false);
        if (len == 0)
            continue;
        if (!any)
            yajl_gen_map_open(c->meta);
        any = true;
        /* yajl checks only the shape of UTF-8, so check it here too. */
        size_t name_len = strlen(c->col_names[i]);
        if (!sl_utf8_valid(c->col_names[i], name_len, NULL) ||
            yajl_gen_string(c->meta, (const unsigned char *)c->col_names[i],
                            name_len) != yajl_gen_status_ok) {
            sl_fmt(reason, reason_size, "column %zu: name is not valid UTF-8",
                   i + 1);
            return SL_FEED_REJECT;
        }
        if (memchr(text, '\0', len) || !sl_utf8_valid(text, len, NULL) ||
            yajl_gen_string(c->meta, (const unsigned char *)text, len) !=
                yajl_gen_status_ok) {
            sl_fmt(reason, reason_size,
                   "column \"%.40s\": invalid UTF-8 or a NUL byte",
                   c->col_names[i]);
            return SL_FEED_REJECT;
        }
    }
    if (any) {
        yajl_gen_map_close(c->meta);
        item->meta = sl_json_gen_text(c->meta, NULL);
    }
    return SL_FEED_RECORD;
}

static void
optional_field(const sl_csv *c, int col, const char **out, size_t *out_len)
{
    size_t len;
    if (col < 0)
        return;
    const char *text = field(c, (size_t)col, &len, true);
    if (len == 0)
        return;
    *out = text;
    *out_len = len;
}

/*
 * Whether a record is inside a quoted field at the end of s[0..len), given
 * whether it was at the start. A quote opens a quoted field only at the
 * start of a field (as sl_csv_split reads it); anywhere else it is just a
 * byte, and a stray one must not swallow the lines after it.
 */
static bool
ends_quoted(const char *s, size_t len, bool quoted, char delim)
{
    bool field_start = !quoted;
    for (size_t i = 0; i < len; i++) {
        if (quoted) {
            if (s[i] == '"') {
                if (i + 1 < len && s[i + 1] == '"')
                    i++;
                else
                    quoted = false;
            }
            field_start = false;
        } else {
            if (s[i] == '"' && field_start)
                quoted = true;
            field_start = s[i] == delim;
        }
    }
    return quoted;
}

sl_line_status
sl_csv_next_record(sl_csv *c, sl_reader *r, const char **text, size_t *len,
                   uint64_t *start)
{
    sl_line_status st = sl_reader_next(r, text, len);
    *start = r->lineno;
    /* The header's delimiter, unless one was given, holds for the file. */
    if (st == SL_LINE_OK && !c->delim)
        c->delim = c->opts.delimiter ? c->opts.delimiter
                                     : sl_csv_delimiter(*text, *len);
    if (st != SL_LINE_OK || !ends_quoted(*text, *len, false, c->delim))
        return st;
    sl_buf_clear(&c->record);
    if (sl_buf_append(&c->record, *text, *len) != 0)
        return SL_LINE_ERROR;
    bool quoted = true, too_long = false;
    while (quoted) {
        const char *more;
        size_t more_len;
        st = sl_reader_next(r, &more, &more_len);
        if (st == SL_LINE_EOF)
            break; /* sl_csv_split reports the unterminated field */
        if (st == SL_LINE_TOOLONG) {
            too_long = true;
            continue;
        }
        if (st != SL_LINE_OK)
            return st;
        quoted = ends_quoted(more, more_len, true, c->delim);
        /* Too long: skip the rest of the record without keeping it. */
        if (too_long || c->record.len + 1 + more_len > r->max_line) {
            too_long = true;
            continue;
        }
        if (sl_buf_putc(&c->record, '\n') ||
            sl_buf_append(&c->record, more, more_len))
            return SL_LINE_ERROR;
    }
    if (too_long)
        return SL_LINE_TOOLONG;
    *text = c->record.data;
    *len = c->record.len;
    return SL_LINE_OK;
}

sl_feed_status
sl_csv_parse(sl_csv *c, const char *text, size_t len, sl_feed_item *item,
             char *reason, size_t reason_size)
{
    int n = sl_csv_split(c, text, len, reason, reason_size);
    if (n == -2)
        return SL_FEED_ERROR; /* out of memory: not the input's fault */
    if (n < 0) {
        if (!c->header_done)
            c->header_done = c->header_bad = true;
        return SL_FEED_REJECT;
    }
    if (!c->header_done) {
        c->header_done = true;
        sl_feed_status st =
            parse_header(c, (size_t)n, text, len, reason, reason_size);
        if (st != SL_FEED_EOF)
            c->header_bad = true;
        return st;
    }
    if ((size_t)n != c->n_cols) {
        sl_fmt(reason, reason_size, "expected %zu fields, found %d",
               c->n_cols, n);
        return SL_FEED_REJECT;
    }
    size_t url_len;
    item->url = field(c, (size_t)c->col_url, &url_len, true);
    item->url_len = url_len;
    optional_field(c, c->col_id, &item->id, &item->id_len);
    optional_field(c, c->col_key, &item->key, &item->key_len);
    return build_meta(c, item, reason, reason_size);
}
