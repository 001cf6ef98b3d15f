/*
 * A record's meta as object metadata fields (meta.h).
 */
#include "meta.h"

#include <string.h>

#include <yajl/yajl_parse.h>

#include "../json.h"
#include "../util.h"

/* The bytes a value takes as sent: printable ASCII one, others three. */
static size_t
sent_len(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += sl_meta_byte_kept(*p) ? 1 : 3;
    return n;
}

static void
map_name(char *dst, size_t size, const char *src)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)src;
         *p && n + 1 < size; p++) {
        unsigned char c = *p;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            c = '-';
        dst[n++] = (char)c;
    }
    dst[n] = '\0';
}

/*
 * Reading meta: each top-level member's name and value into `members`,
 * one C string after the other. A string, and a name, ends at its first
 * NUL byte ("\u0000"), as a field's name and value are C strings; a value
 * that is not a string is its compact JSON text, re-emitted by `gen`.
 */
#define READER(ctx) ((sl_meta_reader *)(ctx))

static size_t
c_len(const unsigned char *s, size_t len)
{
    const unsigned char *nul = memchr(s, 0, len);
    return nul ? (size_t)(nul - s) : len;
}

/* One name or value of a top-level member, as a C string. */
static int
keep(sl_meta_reader *r, const void *text, size_t len)
{
    sl_buf *b = &r->members;
    if (sl_buf_reserve(b, len + 1)) {
        r->nomem = 1;
        return 0;
    }
    if (len)
        memcpy(b->data + b->len, text, len);
    b->len += len + 1;
    b->data[b->len - 1] = b->data[b->len] = '\0';
    r->strings++;
    return 1;
}

/* A scalar: a member's value at depth 1 (re-emitted when deeper, by the
 * caller); at depth 0 the events are of no object. */
static int
scalar(sl_meta_reader *r, const void *text, size_t len)
{
    if (r->depth == 0) {
        r->not_object = 1;
        return 0;
    }
    return r->depth == 1 ? keep(r, text, len) : 1;
}

static int
meta_null(void *ctx)
{
    sl_meta_reader *r = READER(ctx);
    if (r->depth >= 2)
        yajl_gen_null(r->gen);
    return scalar(r, "null", 4);
}

static int
meta_boolean(void *ctx, int value)
{
    sl_meta_reader *r = READER(ctx);
    if (r->depth >= 2)
        yajl_gen_bool(r->gen, value);
    return scalar(r, value ? "true" : "false", value ? 4 : 5);
}

static int
meta_number(void *ctx, const char *num, size_t len)
{
    sl_meta_reader *r = READER(ctx);
    if (r->depth >= 2)
        yajl_gen_number(r->gen, num, len);
    return scalar(r, num, len);
}

static int
meta_string(void *ctx, const unsigned char *s, size_t len)
{
    sl_meta_reader *r = READER(ctx);
    len = c_len(s, len);
    if (r->depth >= 2)
        yajl_gen_string(r->gen, s, len);
    return scalar(r, s, len);
}

/* A container opens: the top-level object, or a member's value (the
 * generator starts anew), or one inside it. */
static int
open_container(sl_meta_reader *r, int map)
{
    if (r->depth == 0 && !map) {
        r->not_object = 1;
        return 0;
    }
    if (r->depth == 1) {
        if (!r->gen && !(r->gen = sl_json_gen_new())) {
            r->nomem = 1;
            return 0;
        }
        yajl_gen_reset(r->gen, NULL);
        yajl_gen_clear(r->gen);
    }
    if (r->depth++ >= 1) {
        if (map)
            yajl_gen_map_open(r->gen);
        else
            yajl_gen_array_open(r->gen);
    }
    return 1;
}

static int
close_container(sl_meta_reader *r, int map)
{
    if (--r->depth == 0)
        return 1;
    if (map)
        yajl_gen_map_close(r->gen);
    else
        yajl_gen_array_close(r->gen);
    if (r->depth > 1)
        return 1;
    size_t len;
    const char *text = sl_json_gen_text(r->gen, &len);
    return keep(r, text, len);
}

static int
meta_start_map(void *ctx)
{
    return open_container(READER(ctx), 1);
}

static int
meta_map_key(void *ctx, const unsigned char *key, size_t len)
{
    sl_meta_reader *r = READER(ctx);
    len = c_len(key, len);
    if (r->depth >= 2) {
        yajl_gen_string(r->gen, key, len);
        return 1;
    }
    return keep(r, key, len);
}

static int
meta_end_map(void *ctx)
{
    return close_container(READER(ctx), 1);
}

static int
meta_start_array(void *ctx)
{
    return open_container(READER(ctx), 0);
}

static int
meta_end_array(void *ctx)
{
    return close_container(READER(ctx), 0);
}

const yajl_callbacks sl_meta_reader_callbacks = {
    meta_null,      meta_boolean,     NULL,
    NULL,           meta_number,      meta_string,
    meta_start_map, meta_map_key,     meta_end_map,
    meta_start_array, meta_end_array,
};

void
sl_meta_reader_init(sl_meta_reader *r)
{
    memset(r, 0, sizeof *r);
    sl_buf_init(&r->members);
}

void
sl_meta_reader_free(sl_meta_reader *r)
{
    sl_buf_free(&r->members);
    if (r->gen)
        yajl_gen_free(r->gen);
    r->gen = NULL;
}

void
sl_meta_reader_start(sl_meta_reader *r)
{
    sl_buf_clear(&r->members);
    r->strings = 0;
    r->depth = r->not_object = r->nomem = 0;
}

sluice_err
sl_meta_fields_read(const sl_meta_reader *r, sl_meta_field_fn *fn,
                    void *ctx, char *reason, size_t reason_size)
{
    if (r->nomem) {
        sl_fmt(reason, reason_size, "out of memory");
        return SLUICE_ENOMEM;
    }
    if (r->not_object || r->depth != 0 || r->strings % 2) {
        sl_fmt(reason, reason_size, "meta: not a JSON object");
        return SLUICE_EPARSE;
    }
    size_t total = 0, n = r->strings / 2;
    char name[SL_META_MAX + 1];
    const char *key = r->members.data;
    for (size_t i = 0; i < n; i++) {
        const char *value = key + strlen(key) + 1;
        map_name(name, sizeof name, key);
        if (!*name || strcmp(name, SL_META_SOURCE_URL) == 0 ||
            strcmp(name, SL_META_ORIGIN_ETAG) == 0) {
            sl_fmt(reason, reason_size,
                   "meta: member \"%.60s\" would be metadata \"%s\", which "
                   "sluice sets itself",
                   key, name);
            return SLUICE_EPARSE;
        }
        const char *earlier = r->members.data;
        for (size_t k = 0; k < i; k++) {
            char other[SL_META_MAX + 1];
            map_name(other, sizeof other, earlier);
            if (strcmp(other, name) == 0) {
                sl_fmt(reason, reason_size,
                       "meta: members \"%.60s\" and \"%.60s\" are both "
                       "metadata \"%s\"",
                       earlier, key, name);
                return SLUICE_EPARSE;
            }
            earlier += strlen(earlier) + 1; /* its name */
            earlier += strlen(earlier) + 1; /* its value */
        }
        total += strlen(name) + sent_len(value);
        if (total > SL_META_MAX) {
            sl_fmt(reason, reason_size,
                   "meta: over %d bytes as object metadata (S3's limit), "
                   "at member \"%.60s\"",
                   SL_META_MAX, key);
            return SLUICE_EPARSE;
        }
        if (fn && fn(ctx, name, value) != 0)
            break;
        key = value + strlen(value) + 1;
    }
    return SLUICE_OK;
}

void
sl_meta_scratch_init(sl_meta_scratch *s)
{
    sl_meta_reader_init(&s->reader);
}

void
sl_meta_scratch_free(sl_meta_scratch *s)
{
    sl_meta_reader_free(&s->reader);
}

sluice_err
sl_meta_fields(const char *meta, sl_meta_field_fn *fn, void *ctx,
               char *reason, size_t reason_size)
{
    sl_meta_scratch s;
    sl_meta_scratch_init(&s);
    sluice_err err = sl_meta_fields_with(&s, meta, fn, ctx, reason,
                                         reason_size);
    sl_meta_scratch_free(&s);
    return err;
}

sluice_err
sl_meta_fields_with(sl_meta_scratch *s, const char *meta,
                    sl_meta_field_fn *fn, void *ctx, char *reason,
                    size_t reason_size)
{
    if (!meta)
        return SLUICE_OK;
    sl_meta_reader *r = &s->reader;
    sl_meta_reader_start(r);
    yajl_handle h = yajl_alloc(&sl_meta_reader_callbacks,
                               sl_json_arena_begin(&s->arena), r);
    if (!h) {
        sl_fmt(reason, reason_size, "out of memory");
        return SLUICE_ENOMEM;
    }
    yajl_config(h, yajl_allow_comments, 1);
    yajl_status st = yajl_parse(h, (const unsigned char *)meta, strlen(meta));
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    yajl_free(h);
    if (st != yajl_status_ok && !r->nomem)
        r->not_object = 1;
    return sl_meta_fields_read(r, fn, ctx, reason, reason_size);
}
