/*
 * JSON Lines: one object a line with "url" and optional "id" (string or
 * integer), "key" and "meta" (an object); the url, id and key members
 * may have other names (sl_jsonl_set_names). Parsed with yajl's event
 * callbacks, so no tree is built per line; meta is re-emitted compact.
 * Other members are ignored.
 */
#include <stdarg.h>
#include <string.h>

#include "../json.h"
#include "feed.h"

enum { F_OTHER, F_URL, F_ID, F_KEY, F_META };

static const char *const field_names[] = {"", "url", "id", "key", "meta"};

/* The member names a rejection lists: the first few, up to this much. */
#define MEMBERS_SHOWN 160

#define J(ctx) ((sl_jsonl *)(ctx))

/* The meta generator, about to be written: it must be reset after. */
static yajl_gen
meta_gen(sl_jsonl *j)
{
    j->meta_used = 1;
    return j->meta;
}

static int fail(sl_jsonl *j, const char *fmt, ...) SL_PRINTF(2, 3);

/* Record why the line is rejected; returning 0 stops the parser. */
static int
fail(sl_jsonl *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_vfmt(j->reason, sizeof j->reason, fmt, ap);
    va_end(ap);
    return 0;
}

/* An allocation failed: stop, to report an error rather than bad input. */
static int
nomem(sl_jsonl *j)
{
    j->nomem = 1;
    return 0;
}

/* One of meta's events, handed on to its reader: 0 stops the parser
 * (the reader fails only for want of memory). */
static int
read_meta(sl_jsonl *j, int read)
{
    return read ? 1 : nomem(j);
}

/* A scalar at depth 1 is the value of a top-level member. */
static int
top_scalar(sl_jsonl *j)
{
    switch (j->field) {
    case F_URL:
    case F_KEY:
        return fail(j, "%s: not a string", field_names[j->field]);
    case F_ID:
        return fail(j, "id: not a string or an integer");
    case F_META:
        return fail(j, "meta: not a JSON object");
    }
    return 1;
}

static int
in_meta(const sl_jsonl *j)
{
    return j->field == F_META && j->depth >= 2;
}

/* Opening a container in meta fails when it nests too deeply. */
static int
meta_open(sl_jsonl *j, yajl_gen_status st, int map)
{
    if (st == yajl_max_depth_exceeded)
        return fail(j, "meta: nested too deeply");
    const yajl_callbacks *r = &sl_meta_reader_callbacks;
    return st == yajl_gen_status_ok &&
           read_meta(j, map ? r->yajl_start_map(&j->meta_read)
                            : r->yajl_start_array(&j->meta_read));
}

static int
on_null(void *ctx)
{
    sl_jsonl *j = J(ctx);
    if (j->depth == 0) {
        j->not_object = 1;
        return 0;
    }
    if (in_meta(j))
        return yajl_gen_null(meta_gen(j)) == yajl_gen_status_ok &&
               read_meta(j, sl_meta_reader_callbacks.yajl_null(
                                &j->meta_read));
    if (j->depth == 1 && j->field == F_URL)
        return fail(j, "url: not a string");
    return 1; /* null id, key or meta: absent */
}

static int
on_boolean(void *ctx, int value)
{
    sl_jsonl *j = J(ctx);
    if (j->depth == 0) {
        j->not_object = 1;
        return 0;
    }
    if (in_meta(j))
        return yajl_gen_bool(meta_gen(j), value) == yajl_gen_status_ok &&
               read_meta(j, sl_meta_reader_callbacks.yajl_boolean(
                                &j->meta_read, value));
    return j->depth == 1 ? top_scalar(j) : 1;
}

static int
integer_text(const char *s, size_t len)
{
    size_t i = len > 0 && s[0] == '-' ? 1 : 0;
    if (i == len)
        return 0;
    for (; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int
on_number(void *ctx, const char *num, size_t len)
{
    sl_jsonl *j = J(ctx);
    if (j->depth == 0) {
        j->not_object = 1;
        return 0;
    }
    if (in_meta(j))
        return yajl_gen_number(meta_gen(j), num, len) ==
                   yajl_gen_status_ok &&
               read_meta(j, sl_meta_reader_callbacks.yajl_number(
                                &j->meta_read, num, len));
    if (j->depth == 1 && j->field == F_ID && integer_text(num, len)) {
        j->has_id = 1;
        return sl_buf_append(&j->id, num, len) == 0 ? 1 : nomem(j);
    }
    return j->depth == 1 ? top_scalar(j) : 1;
}

/* A string or a member name of meta, whose escapes yajl has decoded. */
static int
meta_string(sl_jsonl *j, const unsigned char *s, size_t len, int name)
{
    if (!sl_utf8_valid((const char *)s, len, NULL))
        return fail(j, "meta: " SL_JSON_BAD_ESCAPE);
    const yajl_callbacks *r = &sl_meta_reader_callbacks;
    return yajl_gen_string(meta_gen(j), s, len) == yajl_gen_status_ok &&
           read_meta(j, name ? r->yajl_map_key(&j->meta_read, s, len)
                             : r->yajl_string(&j->meta_read, s, len));
}

static int
on_string(void *ctx, const unsigned char *s, size_t len)
{
    sl_jsonl *j = J(ctx);
    sl_buf *dst = NULL;
    if (j->depth == 0) {
        j->not_object = 1;
        return 0;
    }
    if (in_meta(j))
        return meta_string(j, s, len, 0);
    if (j->depth > 1)
        return 1;
    switch (j->field) {
    case F_URL:
        dst = &j->url, j->has_url = 1;
        break;
    case F_ID:
        dst = &j->id, j->has_id = 1;
        break;
    case F_KEY:
        dst = &j->key, j->has_key = 1;
        break;
    case F_META:
        return fail(j, "meta: not a JSON object");
    default:
        return 1;
    }
    return sl_buf_append(dst, s, len) == 0 ? 1 : nomem(j);
}

static int
on_map_key(void *ctx, const unsigned char *key, size_t len)
{
    sl_jsonl *j = J(ctx);
    if (in_meta(j))
        return meta_string(j, key, len, 1);
    if (j->depth != 1)
        return 1;
    j->n_members++;
    j->field = F_OTHER;
    for (int f = F_URL; f <= F_META; f++) {
        if (len == j->name_len[f] && memcmp(key, j->names[f], len) == 0) {
            if (j->seen & (1 << f))
                return fail(j, "duplicate member \"%s\"", j->names[f]);
            j->seen |= 1 << f;
            j->field = f;
        }
    }
    return 1;
}

static int
on_start_map(void *ctx)
{
    sl_jsonl *j = J(ctx);
    j->depth++;
    if (j->depth == 1)
        return 1;
    if (j->depth == 2 && j->field != F_OTHER && j->field != F_META)
        return top_scalar(j);
    if (in_meta(j)) {
        if (j->depth == 2)
            j->has_meta = 1;
        return meta_open(j, yajl_gen_map_open(meta_gen(j)), 1);
    }
    return 1;
}

static int
on_end_map(void *ctx)
{
    sl_jsonl *j = J(ctx);
    int ok = 1;
    if (in_meta(j))
        ok = yajl_gen_map_close(meta_gen(j)) == yajl_gen_status_ok &&
             read_meta(j, sl_meta_reader_callbacks.yajl_end_map(
                              &j->meta_read));
    j->depth--;
    return ok;
}

static int
on_start_array(void *ctx)
{
    sl_jsonl *j = J(ctx);
    if (j->depth == 0) {
        j->not_object = 1;
        return 0;
    }
    j->depth++;
    if (j->depth == 2 && j->field != F_OTHER)
        return top_scalar(j);
    if (in_meta(j))
        return meta_open(j, yajl_gen_array_open(meta_gen(j)), 0);
    return 1;
}

static int
on_end_array(void *ctx)
{
    sl_jsonl *j = J(ctx);
    int ok = 1;
    if (in_meta(j))
        ok = yajl_gen_array_close(meta_gen(j)) == yajl_gen_status_ok &&
             read_meta(j, sl_meta_reader_callbacks.yajl_end_array(
                              &j->meta_read));
    j->depth--;
    return ok;
}

static const yajl_callbacks jsonl_callbacks = {
    on_null,     on_boolean, NULL,         NULL,
    on_number,   on_string,  on_start_map, on_map_key,
    on_end_map,  on_start_array, on_end_array,
};

sluice_err
sl_jsonl_init(sl_jsonl *j)
{
    memset(j, 0, sizeof *j);
    sl_jsonl_set_names(j, NULL, NULL, NULL);
    sl_buf_init(&j->members);
    sl_buf_init(&j->url);
    sl_buf_init(&j->id);
    sl_buf_init(&j->key);
    sl_meta_reader_init(&j->meta_read);
    j->meta = sl_json_gen_new();
    return j->meta ? SLUICE_OK : SLUICE_ENOMEM;
}

void
sl_jsonl_set_names(sl_jsonl *j, const char *url, const char *id,
                   const char *key)
{
    for (int f = 0; f <= F_META; f++)
        j->names[f] = field_names[f];
    j->given = 0;
    if (url)
        j->names[F_URL] = url, j->given |= 1 << F_URL;
    if (id)
        j->names[F_ID] = id, j->given |= 1 << F_ID;
    if (key)
        j->names[F_KEY] = key, j->given |= 1 << F_KEY;
    for (int f = 0; f <= F_META; f++)
        j->name_len[f] = strlen(j->names[f]);
}

/*
 * Listing a line's members for a rejection: the line, which parsed
 * whole, is parsed again, its top-level member names quoted and split by
 * ", " into `members` while that is under MEMBERS_SHOWN bytes. Only a
 * line so rejected pays for it.
 */
typedef struct {
    sl_buf *members;
    int depth;
    int nomem;
} name_lister;

static int
list_open(void *ctx)
{
    ((name_lister *)ctx)->depth++;
    return 1;
}

static int
list_close(void *ctx)
{
    ((name_lister *)ctx)->depth--;
    return 1;
}

static int
list_name(void *ctx, const unsigned char *name, size_t len)
{
    name_lister *l = ctx;
    if (l->depth != 1 || l->members->len >= MEMBERS_SHOWN)
        return 1;
    char shown[80];
    sl_quote(shown, sizeof shown, (const char *)name, len, 40);
    if ((l->members->len && sl_buf_append(l->members, ", ", 2)) ||
        sl_buf_putc(l->members, '"') ||
        sl_buf_append(l->members, shown, strlen(shown)) ||
        sl_buf_putc(l->members, '"')) {
        l->nomem = 1;
        return 0;
    }
    return 1;
}

static const yajl_callbacks list_callbacks = {
    NULL,      NULL,      NULL,       NULL,      NULL,       NULL,
    list_open, list_name, list_close, list_open, list_close,
};

/* -1 when out of memory. */
static int
list_members(sl_jsonl *j, const char *line, size_t len)
{
    name_lister l = {.members = &j->members};
    sl_buf_clear(&j->members);
    yajl_handle h =
        yajl_alloc(&list_callbacks, sl_json_arena_begin(&j->arena), &l);
    if (!h)
        return -1;
    yajl_status st = yajl_parse(h, (const unsigned char *)line, len);
    if (st == yajl_status_ok)
        yajl_complete_parse(h);
    yajl_free(h);
    return l.nomem ? -1 : 0;
}

/*
 * A line without the url member, or without one named by an option, is
 * rejected with the members it has, so that the first error says what the
 * feed calls its fields. An empty object is left to validation. -1 when
 * out of memory.
 */
static int
missing_member(sl_jsonl *j, const char *line, size_t len, char *reason,
               size_t reason_size)
{
    static const char *const options[] = {"", "--url-column",
                                          "--id-column", "--key-column"};
    for (int f = F_URL; f <= F_KEY; f++) {
        if (j->seen & (1 << f) || !j->n_members)
            continue;
        if (f != F_URL && !(j->given & (1 << f)))
            continue;
        if (list_members(j, line, len))
            return -1;
        const char *more = j->members.len >= MEMBERS_SHOWN ? ", ..." : "";
        if (j->given & (1 << f))
            sl_fmt(reason, reason_size,
                   "%s: no member \"%.60s\" (%s); the object has %s%s",
                   field_names[f], j->names[f], options[f],
                   j->members.data, more);
        else
            sl_fmt(reason, reason_size,
                   "%s: no member \"%s\"; the object has %s%s; name it "
                   "with %s",
                   field_names[f], j->names[f], j->members.data, more,
                   options[f]);
        return 1;
    }
    return 0;
}

void
sl_jsonl_free(sl_jsonl *j)
{
    sl_buf_free(&j->members);
    sl_buf_free(&j->url);
    sl_buf_free(&j->id);
    sl_buf_free(&j->key);
    if (j->meta)
        yajl_gen_free(j->meta);
    j->meta = NULL;
    sl_meta_reader_free(&j->meta_read);
}

sl_feed_status
sl_jsonl_parse(sl_jsonl *j, const char *line, size_t len,
               sl_feed_item *item, char *reason, size_t reason_size)
{
    sl_buf_clear(&j->url);
    sl_buf_clear(&j->id);
    sl_buf_clear(&j->key);
    if (j->meta_used) {
        yajl_gen_reset(j->meta, NULL);
        yajl_gen_clear(j->meta);
        j->meta_used = 0;
    }
    j->n_members = 0;
    sl_meta_reader_start(&j->meta_read);
    j->has_url = j->has_id = j->has_key = j->has_meta = 0;
    j->depth = j->field = j->seen = j->not_object = j->nomem = 0;
    j->reason[0] = '\0';

    /* yajl checks only the shape of UTF-8 (it lets overlong forms and
     * surrogates through, into meta), so check it properly first. */
    size_t bad;
    if (!sl_utf8_valid(line, len, &bad)) {
        sl_fmt(reason, reason_size, "invalid UTF-8 at byte %zu", bad + 1);
        return SL_FEED_REJECT;
    }
    yajl_handle h =
        yajl_alloc(&jsonl_callbacks, sl_json_arena_begin(&j->arena), j);
    if (!h) {
        sl_fmt(reason, reason_size, "out of memory");
        return SL_FEED_ERROR;
    }
    yajl_status st = yajl_parse(h, (const unsigned char *)line, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    sl_feed_status out = SL_FEED_RECORD;
    if (j->nomem) {
        sl_fmt(reason, reason_size, "out of memory");
        out = SL_FEED_ERROR;
    } else if (j->not_object) {
        sl_fmt(reason, reason_size, "not a JSON object");
        out = SL_FEED_REJECT;
    } else if (j->reason[0]) {
        sl_copy(reason, reason_size, j->reason);
        out = SL_FEED_REJECT;
    } else if (st != yajl_status_ok) {
        sl_json_error(h, line, len, reason, reason_size);
        out = SL_FEED_REJECT;
    }
    yajl_free(h);
    if (out == SL_FEED_RECORD) {
        int missing = missing_member(j, line, len, reason, reason_size);
        if (missing < 0) {
            sl_fmt(reason, reason_size, "out of memory");
            out = SL_FEED_ERROR;
        } else if (missing) {
            out = SL_FEED_REJECT;
        }
    }
    if (out != SL_FEED_RECORD)
        return out;
    /* sl_buf data stays NULL for an empty string: point at "" instead. */
    if (j->has_url) {
        item->url = j->url.data ? j->url.data : "";
        item->url_len = j->url.len;
    }
    if (j->has_id) {
        item->id = j->id.data ? j->id.data : "";
        item->id_len = j->id.len;
    }
    if (j->has_key) {
        item->key = j->key.data ? j->key.data : "";
        item->key_len = j->key.len;
    }
    if (j->has_meta) {
        item->meta = sl_json_gen_text(j->meta, NULL);
        item->meta_read = &j->meta_read;
    }
    return SL_FEED_RECORD;
}
