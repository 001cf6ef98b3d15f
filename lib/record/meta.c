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
typedef struct {
    sl_meta_scratch *s;
    int depth;      /* containers open */
    int not_object; /* the text is no JSON object */
    int nomem;
    size_t kept; /* C strings in s->members */
} meta_reader;

#define READER(ctx) ((meta_reader *)(ctx))

static size_t
c_len(const unsigned char *s, size_t len)
{
    const unsigned char *nul = memchr(s, 0, len);
    return nul ? (size_t)(nul - s) : len;
}

/* One name or scalar value of a top-level member, as a C string. */
static int
keep(meta_reader *r, const void *text, size_t len)
{
    if (sl_buf_append(&r->s->members, text, len) ||
        sl_buf_putc(&r->s->members, '\0')) {
        r->nomem = 1;
        return 0;
    }
    r->kept++;
    return 1;
}

/* A scalar: a member's value at depth 1 (re-emitted when deeper, by the
 * caller); at depth 0 the text is no object. */
static int
scalar(meta_reader *r, const void *text, size_t len)
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
    meta_reader *r = READER(ctx);
    if (r->depth >= 2)
        yajl_gen_null(r->s->gen);
    return scalar(r, "null", 4);
}

static int
meta_boolean(void *ctx, int value)
{
    meta_reader *r = READER(ctx);
    if (r->depth >= 2)
        yajl_gen_bool(r->s->gen, value);
    return scalar(r, value ? "true" : "false", value ? 4 : 5);
}

static int
meta_number(void *ctx, const char *num, size_t len)
{
    meta_reader *r = READER(ctx);
    if (r->depth >= 2)
        yajl_gen_number(r->s->gen, num, len);
    return scalar(r, num, len);
}

static int
meta_string(void *ctx, const unsigned char *s, size_t len)
{
    meta_reader *r = READER(ctx);
    len = c_len(s, len);
    if (r->depth >= 2)
        yajl_gen_string(r->s->gen, s, len);
    return scalar(r, s, len);
}

/* A container opens: the top-level object, or a member's value (the
 * generator starts anew), or one inside it. */
static int
open_container(meta_reader *r, int map)
{
    if (r->depth == 0 && !map) {
        r->not_object = 1;
        return 0;
    }
    if (r->depth == 1) {
        if (!r->s->gen && !(r->s->gen = sl_json_gen_new())) {
            r->nomem = 1;
            return 0;
        }
        yajl_gen_reset(r->s->gen, NULL);
        yajl_gen_clear(r->s->gen);
    }
    if (r->depth++ >= 1) {
        if (map)
            yajl_gen_map_open(r->s->gen);
        else
            yajl_gen_array_open(r->s->gen);
    }
    return 1;
}

static int
close_container(meta_reader *r, int map)
{
    if (--r->depth == 0)
        return 1;
    if (map)
        yajl_gen_map_close(r->s->gen);
    else
        yajl_gen_array_close(r->s->gen);
    if (r->depth > 1)
        return 1;
    size_t len;
    const char *text = sl_json_gen_text(r->s->gen, &len);
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
    meta_reader *r = READER(ctx);
    len = c_len(key, len);
    if (r->depth >= 2) {
        yajl_gen_string(r->s->gen, key, len);
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

static const yajl_callbacks meta_callbacks = {
    meta_null,      meta_boolean,     NULL,
    NULL,           meta_number,      meta_string,
    meta_start_map, meta_map_key,     meta_end_map,
    meta_start_array, meta_end_array,
};

/* Read `meta` into s->members: SLUICE_OK, SLUICE_ENOMEM, or SLUICE_EPARSE
 * when it is no JSON object (comments allowed). */
static sluice_err
read_members(sl_meta_scratch *s, const char *meta, size_t *n_members)
{
    meta_reader r = {.s = s};
    sl_buf_clear(&s->members);
    yajl_handle h =
        yajl_alloc(&meta_callbacks, sl_json_arena_begin(&s->arena), &r);
    if (!h)
        return SLUICE_ENOMEM;
    yajl_config(h, yajl_allow_comments, 1);
    yajl_status st = yajl_parse(h, (const unsigned char *)meta, strlen(meta));
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    yajl_free(h);
    if (r.nomem)
        return SLUICE_ENOMEM;
    if (st != yajl_status_ok || r.not_object)
        return SLUICE_EPARSE;
    *n_members = r.kept / 2; /* a name and a value each */
    return SLUICE_OK;
}

void
sl_meta_scratch_init(sl_meta_scratch *s)
{
    sl_buf_init(&s->members);
    s->gen = NULL;
}

void
sl_meta_scratch_free(sl_meta_scratch *s)
{
    sl_buf_free(&s->members);
    if (s->gen)
        yajl_gen_free(s->gen);
    s->gen = NULL;
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
    size_t n;
    sluice_err rc = read_members(s, meta, &n);
    if (rc == SLUICE_ENOMEM) {
        sl_fmt(reason, reason_size, "out of memory");
        return rc;
    }
    if (rc != SLUICE_OK) {
        sl_fmt(reason, reason_size, "meta: not a JSON object");
        return SLUICE_EPARSE;
    }
    size_t total = 0;
    char name[SL_META_MAX + 1];
    const char *key = s->members.data;
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
        const char *earlier = s->members.data;
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
            earlier += strlen(earlier) + 1;
            earlier += strlen(earlier) + 1;
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
