/*
 * JSON helpers on yajl: forwarding parser events into a generator (to
 * copy, compact and merge JSON objects without building a tree) and
 * one-line error descriptions.
 */
#include "json.h"

#include <string.h>

#include <yajl/yajl_tree.h>

#define FWD(ctx) ((sl_json_forward *)(ctx))

static int
fwd_ok(yajl_gen_status st)
{
    return st == yajl_gen_status_ok;
}

/* A scalar at depth 0 means the top-level value is not an object. */
static int
fwd_top_scalar(sl_json_forward *f)
{
    if (f->depth == 0) {
        f->not_object = 1;
        return 0;
    }
    return 1;
}

static int
fwd_null(void *ctx)
{
    return fwd_top_scalar(FWD(ctx)) && fwd_ok(yajl_gen_null(FWD(ctx)->gen));
}

static int
fwd_boolean(void *ctx, int value)
{
    return fwd_top_scalar(FWD(ctx)) &&
           fwd_ok(yajl_gen_bool(FWD(ctx)->gen, value));
}

static int
fwd_number(void *ctx, const char *num, size_t len)
{
    return fwd_top_scalar(FWD(ctx)) &&
           fwd_ok(yajl_gen_number(FWD(ctx)->gen, num, len));
}

/* yajl decodes an unpaired surrogate escape ("\\udc00") into bytes that
 * are not UTF-8, and its generator's check lets them through. */
static int
fwd_text(sl_json_forward *f, const unsigned char *s, size_t len)
{
    if (!sl_utf8_valid((const char *)s, len, NULL)) {
        f->bad_string = 1;
        return 0;
    }
    return fwd_ok(yajl_gen_string(f->gen, s, len));
}

static int
fwd_string(void *ctx, const unsigned char *s, size_t len)
{
    return fwd_top_scalar(FWD(ctx)) && fwd_text(FWD(ctx), s, len);
}

static int
fwd_start_map(void *ctx)
{
    sl_json_forward *f = FWD(ctx);
    if (f->depth++ == 0 && f->strip_outer)
        return 1;
    return fwd_ok(yajl_gen_map_open(f->gen));
}

static int
fwd_map_key(void *ctx, const unsigned char *key, size_t len)
{
    return fwd_text(FWD(ctx), key, len);
}

static int
fwd_end_map(void *ctx)
{
    sl_json_forward *f = FWD(ctx);
    if (--f->depth == 0 && f->strip_outer)
        return 1;
    return fwd_ok(yajl_gen_map_close(f->gen));
}

static int
fwd_start_array(void *ctx)
{
    sl_json_forward *f = FWD(ctx);
    if (f->depth == 0) {
        f->not_object = 1;
        return 0;
    }
    f->depth++;
    return fwd_ok(yajl_gen_array_open(f->gen));
}

static int
fwd_end_array(void *ctx)
{
    FWD(ctx)->depth--;
    return fwd_ok(yajl_gen_array_close(FWD(ctx)->gen));
}

const yajl_callbacks sl_json_forward_callbacks = {
    fwd_null,      fwd_boolean, NULL,          NULL,
    fwd_number,    fwd_string,  fwd_start_map, fwd_map_key,
    fwd_end_map,   fwd_start_array, fwd_end_array,
};

void
sl_json_error(yajl_handle h, const char *text, size_t len, char *out,
              size_t out_size)
{
    size_t at = yajl_get_bytes_consumed(h);
    unsigned char *msg = yajl_get_error(h, 0, (const unsigned char *)text,
                                        len);
    char *m = (char *)msg;
    /* yajl says "lexical error: invalid char in json text.\n" */
    size_t n = m ? strcspn(m, "\n") : 0;
    while (n && (m[n - 1] == '.' || m[n - 1] == ' '))
        n--;
    sl_fmt(out, out_size, "invalid JSON near byte %zu: %.*s", at + 1,
           (int)n, m ? m : "");
    if (msg)
        yajl_free_error(h, msg);
}

int
sl_json_copy_members(yajl_gen gen, const char *text, size_t len,
                     char *reason, size_t reason_size)
{
    /* yajl checks only the shape of UTF-8; overlong forms and surrogates
     * would pass through into the output. */
    size_t bad;
    if (!sl_utf8_valid(text, len, &bad)) {
        sl_fmt(reason, reason_size, "invalid UTF-8 at byte %zu", bad + 1);
        return -1;
    }
    sl_json_forward fwd = {.gen = gen, .strip_outer = 1};
    yajl_handle h = yajl_alloc(&sl_json_forward_callbacks, NULL, &fwd);
    if (!h) {
        sl_fmt(reason, reason_size, "out of memory");
        return -1;
    }
    yajl_status st = yajl_parse(h, (const unsigned char *)text, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    int rc = 0;
    if (fwd.not_object) {
        sl_fmt(reason, reason_size, "not a JSON object");
        rc = -1;
    } else if (fwd.bad_string) {
        sl_fmt(reason, reason_size, SL_JSON_BAD_ESCAPE);
        rc = -1;
    } else if (st != yajl_status_ok && fwd.depth >= YAJL_MAX_DEPTH) {
        /* The generator refused to open one more container. */
        sl_fmt(reason, reason_size, "nested too deeply");
        rc = -1;
    } else if (st != yajl_status_ok) {
        sl_json_error(h, text, len, reason, reason_size);
        rc = -1;
    }
    yajl_free(h);
    return rc;
}

typedef struct {
    size_t depth, max;
    bool too_deep;
} nesting;

static int
nest_open(void *ctx)
{
    nesting *n = ctx;
    if (++n->depth > n->max) {
        n->too_deep = true;
        return 0; /* stops the parse */
    }
    return 1;
}

static int
nest_close(void *ctx)
{
    ((nesting *)ctx)->depth--;
    return 1;
}

int
sl_json_too_deep(const char *body, size_t len, size_t max)
{
    static const yajl_callbacks events = {
        .yajl_start_map = nest_open,
        .yajl_end_map = nest_close,
        .yajl_start_array = nest_open,
        .yajl_end_array = nest_close,
    };
    nesting n = {0, max, false};
    yajl_handle h = yajl_alloc(&events, NULL, &n);
    if (!h)
        return -1;
    if (yajl_parse(h, (const unsigned char *)body, len) == yajl_status_ok)
        yajl_complete_parse(h);
    yajl_free(h);
    return n.too_deep ? 1 : 0;
}

yajl_gen
sl_json_gen_new(void)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (g)
        yajl_gen_config(g, yajl_gen_validate_utf8, 1);
    return g;
}

void
sl_json_gen_tree(yajl_gen gen, const struct yajl_val_s *v)
{
    if (YAJL_IS_OBJECT(v)) {
        yajl_gen_map_open(gen);
        for (size_t i = 0; i < v->u.object.len; i++) {
            const char *k = v->u.object.keys[i];
            yajl_gen_string(gen, (const unsigned char *)k, strlen(k));
            sl_json_gen_tree(gen, v->u.object.values[i]);
        }
        yajl_gen_map_close(gen);
    } else if (YAJL_IS_ARRAY(v)) {
        yajl_gen_array_open(gen);
        for (size_t i = 0; i < v->u.array.len; i++)
            sl_json_gen_tree(gen, v->u.array.values[i]);
        yajl_gen_array_close(gen);
    } else if (YAJL_IS_STRING(v)) {
        const char *s = YAJL_GET_STRING(v);
        yajl_gen_string(gen, (const unsigned char *)s, strlen(s));
    } else if (YAJL_IS_NUMBER(v)) {
        const char *num = YAJL_GET_NUMBER(v);
        yajl_gen_number(gen, num, strlen(num));
    } else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        yajl_gen_bool(gen, YAJL_IS_TRUE(v));
    } else {
        yajl_gen_null(gen);
    }
}

const char *
sl_json_gen_text(yajl_gen gen, size_t *len)
{
    const unsigned char *buf = NULL;
    size_t n = 0;
    if (yajl_gen_get_buf(gen, &buf, &n) != yajl_gen_status_ok)
        buf = (const unsigned char *)"", n = 0;
    if (len)
        *len = n;
    return (const char *)buf;
}

const char *
sl_json_member_str(const struct yajl_val_s *obj, const char *name)
{
    const char *path[] = {name, NULL};
    yajl_val v = yajl_tree_get((yajl_val)obj, path, yajl_t_string);
    return v ? YAJL_GET_STRING(v) : NULL;
}
