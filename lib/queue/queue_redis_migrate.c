/*
 * The Redis queue's part in a migration (sluice_migrate, queue/migrate.c):
 * every record as it is, read a page of record numbers a script call in
 * feed order, and records appended as they are, a batch a script call,
 * each into its state's index with the counts kept. Times are stored on
 * Redis's clock, as every other time of the queue is (queue_redis.h).
 */
#include "queue_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Record numbers a dump reads a script call. */
#define PAGE_RIDS 512
/* The fields a dumped record comes with: F, queued_at, first_at. */
#define DUMP_FIELDS (RF_COUNT_ + 2)
/* Arguments a restored record takes (restore_lua). */
#define RESTORE_ARGS 20

/* The dumped record at `at` in `r`: its fields (F), then queued_at and
 * first_at; false when out of memory. */
static bool
info_of(const sl_rq_queue *s, const redisReply *r, size_t at,
        sl_record_info *out)
{
    if (!sl_rq_info_read(s, r, at, out))
        return false;
    out->queued_ms = sl_rq_from_redis(s, sl_rq_int(r, at + RF_COUNT_));
    out->first_attempt_ms =
        sl_rq_from_redis(s, sl_rq_int(r, at + RF_COUNT_ + 1));
    return true;
}

sluice_err
sl_rq_dump(sluice_queue *q, sl_record_info_fn *fn, void *ctx)
{
    sl_rq_queue *s = sl_rq_state(q);
    long long next = 1, top = 0;
    sluice_err unpacked = sl_rq_unpack_all(q);
    if (unpacked != SLUICE_OK)
        return unpacked;
    do {
        char start[24], count[24];
        snprintf(start, sizeof start, "%lld", next);
        snprintf(count, sizeof count, "%d", PAGE_RIDS);
        const char *argv[] = {start, count};
        redisReply *reply;
        sluice_err err = sl_rq_eval(q, RQ_DUMP, &reply, 2, argv, NULL);
        if (err != SLUICE_OK)
            return err;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
            (reply->elements - 2) % DUMP_FIELDS != 0)
            return sl_rq_bad_reply(q, reply, "dump");
        next = sl_rq_int(reply, 0);
        top = sl_rq_int(reply, 1);
        for (size_t at = 2; at < reply->elements; at += DUMP_FIELDS) {
            sl_record_info info = {0};
            if (!info_of(s, reply, at, &info)) {
                freeReplyObject(reply);
                return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
            }
            int stop = fn(ctx, &info);
            sl_record_info_clear(&info);
            if (stop) {
                freeReplyObject(reply);
                return SLUICE_OK;
            }
        }
        freeReplyObject(reply);
    } while (next <= top);
    return SLUICE_OK;
}

/* The arguments of one restored record: texts kept in `buf`, their
 * offsets in at[] (SIZE_MAX: the empty string). */
typedef struct {
    sl_buf buf;
    size_t *at, *len;
    size_t n, cap;
} arg_list;

static bool
arg_put(arg_list *a, const char *text, size_t len)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 256;
        size_t *at = sl_realloc(a->at, cap * sizeof *at);
        if (!at)
            return false;
        a->at = at;
        size_t *l = sl_realloc(a->len, cap * sizeof *l);
        if (!l)
            return false;
        a->len = l;
        a->cap = cap;
    }
    a->at[a->n] = a->buf.len;
    a->len[a->n] = len;
    a->n++;
    return len == 0 || sl_buf_append(&a->buf, text, len) == 0;
}

static bool
arg_str(arg_list *a, const char *s)
{
    return arg_put(a, s ? s : "", s ? strlen(s) : 0);
}

/* A number, or "" when `present` is false. */
static bool
arg_int(arg_list *a, int64_t v, bool present)
{
    char text[24];
    int len = present ? snprintf(text, sizeof text, "%" PRId64, v) : 0;
    return arg_put(a, text, (size_t)len);
}

static bool
put_record(arg_list *a, sl_rq_queue *s, const sl_record_info *r)
{
    sl_record rec = {
        .id = r->id, .id_len = strlen(r->id),
        .url = r->url, .url_len = strlen(r->url),
        .key = r->key, .key_len = strlen(r->key),
        .meta = r->meta, .meta_len = r->meta ? strlen(r->meta) : 0,
    };
    char fp[FP_HEX + 1];
    sl_rq_fingerprint(s, &rec, fp);
    bool done = r->state == SL_STATE_DONE;
    return arg_str(a, r->id) && arg_str(a, r->url) && arg_str(a, r->key) &&
           arg_str(a, r->meta) && arg_str(a, r->origin) &&
           arg_str(a, fp) && arg_int(a, r->state, true) &&
           arg_int(a, r->attempts, true) && arg_int(a, r->throttles, true) &&
           arg_int(a, sl_rq_to_redis(s, r->next_at_ms), r->next_at_ms != 0) &&
           arg_str(a, r->error_class) && arg_str(a, r->message) &&
           arg_int(a, r->http_status, r->http_status != 0) &&
           arg_int(a, r->size, done && r->size >= 0) &&
           arg_str(a, r->sha256_hex) && arg_str(a, r->content_type) &&
           arg_str(a, r->etag) &&
           arg_int(a, sl_rq_to_redis(s, r->queued_ms), true) &&
           arg_int(a, sl_rq_to_redis(s, r->first_attempt_ms),
                   r->first_attempt_ms != 0) &&
           arg_int(a, sl_rq_to_redis(s, r->finished_ms),
                   r->finished_ms != 0);
}

sluice_err
sl_rq_restore(sluice_queue *q, const sl_record_info *recs, size_t n)
{
    sl_rq_queue *s = sl_rq_state(q);
    arg_list a = {0};
    sl_buf_init(&a.buf);
    sluice_err err = sl_rq_unpack_all(q);
    for (size_t i = 0; i < n && err == SLUICE_OK; i++)
        if (!put_record(&a, s, &recs[i]))
            err = sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    const char **argv = NULL;
    if (err == SLUICE_OK && !(argv = sl_calloc(a.n, sizeof *argv)))
        err = sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    redisReply *reply = NULL;
    if (err == SLUICE_OK) {
        /* The buffer moved as it grew: the pointers are taken now. */
        for (size_t i = 0; i < a.n; i++)
            argv[i] = a.len[i] ? a.buf.data + a.at[i] : "";
        err = sl_rq_eval(q, RQ_RESTORE, &reply, (int)a.n, argv, a.len);
    }
    if (err == SLUICE_OK) {
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
            err = sl_rq_bad_reply(q, reply, "restore");
            reply = NULL;
        } else if (sl_rq_int(reply, 0) == 0) {
            const char *id = sl_rq_str(reply, 1);
            err = sl_queue_fail(q, SLUICE_EINVAL,
                                "%s: holds a record with id %.200s already",
                                q->location, id ? id : "?");
        }
    }
    if (reply)
        freeReplyObject(reply);
    sl_free(argv);
    sl_free(a.at);
    sl_free(a.len);
    sl_buf_free(&a.buf);
    return err;
}
