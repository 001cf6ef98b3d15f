/*
 * The Redis queue's reads (queue_redis.h): counts, one record, the list
 * in feed order a page at a time, the dead-letter queue and its replay.
 * Each is one script call (a page for the lists), so what it sees is one
 * moment of the queue.
 */
#include "queue_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Records a page of `list` and `dlq list` reads. */
#define PAGE_RIDS 512
/* Packs a lookup by id searches a call, at most (some 2 MB). */
#define FIND_PACKS "128"

sluice_err
sl_rq_counts(sluice_queue *q, int64_t now_ms, sluice_counts *out)
{
    sl_rq_queue *s = sl_rq_state(q);
    redisReply *reply;
    sluice_err err = sl_rq_eval(q, RQ_COUNTS, &reply, 0, NULL, NULL);
    if (err != SLUICE_OK)
        return err;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 6)
        return sl_rq_bad_reply(q, reply, "count");
    uint64_t *dst[5] = {&out->pending, &out->in_flight, &out->retrying,
                        &out->done, &out->dead};
    for (size_t i = 0; i < 5; i++) {
        *dst[i] = (uint64_t)sl_rq_int(reply, i);
        out->total += *dst[i];
    }
    const char *queued = sl_rq_str(reply, 5);
    if (queued && *queued)
        out->oldest_pending_age =
            (double)(sl_rq_to_redis(s, now_ms) - strtoll(queued, NULL, 10)) /
            1000.0;
    freeReplyObject(reply);
    return SLUICE_OK;
}

sluice_err
sl_rq_next_due(sluice_queue *q, int64_t *due_ms, bool *any)
{
    sl_rq_queue *s = sl_rq_state(q);
    redisReply *reply;
    /* The earliest retry, and the earliest lease to lapse: runners share
     * the queue, and a record another runner leased comes back when its
     * lease lapses (that runner died): a run waits for it, not ends. */
    static const char *const sets[] = {"retry", "inflight"};
    for (size_t i = 0; i < 2; i++) {
        sluice_err err = sl_redis_cmdf(&s->conn, &reply,
                                       "ZRANGE %s%s 0 0 WITHSCORES", s->base,
                                       sets[i]);
        if (err != SLUICE_OK)
            return sl_rq_conn_fail(q, err);
        if (reply->type != REDIS_REPLY_ARRAY)
            return sl_rq_bad_reply(q, reply, "next due");
        if (reply->elements == 2) {
            const char *score = sl_rq_str(reply, 1);
            int64_t due = sl_rq_from_redis(
                s, (int64_t)strtod(score ? score : "0", NULL));
            if (!*any || due < *due_ms)
                *due_ms = due;
            *any = true;
        }
        freeReplyObject(reply);
    }
    return SLUICE_OK;
}

bool
sl_rq_info_read(const sl_rq_queue *s, const redisReply *r, size_t at,
                sl_record_info *out)
{
    out->state = (sl_state)sl_rq_int(r, at + RF_STATE);
    out->id = sl_strdup_or_null(sl_rq_str(r, at + RF_ID));
    out->url = sl_strdup_or_null(sl_rq_str(r, at + RF_URL));
    out->key = sl_strdup_or_null(sl_rq_str(r, at + RF_KEY));
    out->meta = sl_strdup_or_null(sl_rq_str(r, at + RF_META));
    out->origin = sl_strdup_or_null(sl_rq_str(r, at + RF_ORIGIN));
    out->attempts = (unsigned)sl_rq_int(r, at + RF_ATTEMPTS);
    out->throttles = (unsigned)sl_rq_int(r, at + RF_THROTTLES);
    out->next_at_ms = sl_rq_from_redis(s, sl_rq_int(r, at + RF_NEXT_AT));
    out->error_class = sl_strdup_or_null(sl_rq_str(r, at + RF_ERROR_CLASS));
    out->message = sl_strdup_or_null(sl_rq_str(r, at + RF_MESSAGE));
    out->http_status = (int)sl_rq_int(r, at + RF_HTTP_STATUS);
    out->size = sl_rq_str(r, at + RF_SIZE) ? sl_rq_int(r, at + RF_SIZE) : -1;
    out->sha256_hex = sl_strdup_or_null(sl_rq_str(r, at + RF_SHA256));
    out->content_type = sl_strdup_or_null(sl_rq_str(r, at + RF_CTYPE));
    out->etag = sl_strdup_or_null(sl_rq_str(r, at + RF_ETAG));
    out->finished_ms =
        sl_rq_from_redis(s, sl_rq_int(r, at + RF_FINISHED_AT));
    if (!out->id || !out->url || !out->key || !out->origin) {
        sl_record_info_clear(out);
        return false;
    }
    return true;
}

/*
 * The record `id`: *reply, its fields (F) from element 1, or
 * SLUICE_ENOTFOUND. Packed records are searched where they are, some
 * packs a call (RQ_GET), so that a lookup unpacks nothing.
 */
static sluice_err
find(sluice_queue *q, const char *id, redisReply **reply)
{
    char place[24] = "";
    for (;;) {
        const char *argv[] = {id, place, FIND_PACKS};
        redisReply *r;
        sluice_err err = sl_rq_eval(q, RQ_GET, &r, 3, argv, NULL);
        if (err != SLUICE_OK)
            return err;
        const char *what = sl_rq_str(r, 0);
        if (r->type != REDIS_REPLY_ARRAY || !what)
            return sl_rq_bad_reply(q, r, "get");
        if (strcmp(what, "rec") == 0 && r->elements == 1 + RF_COUNT_) {
            *reply = r;
            return SLUICE_OK;
        }
        const char *next = r->elements == 2 ? sl_rq_str(r, 1) : NULL;
        if (strcmp(what, "more") == 0 && next && strlen(next) < sizeof place) {
            sl_fmt(place, sizeof place, "%s", next);
            freeReplyObject(r);
            continue;
        }
        if (strcmp(what, "none") != 0)
            return sl_rq_bad_reply(q, r, "get");
        freeReplyObject(r);
        return sl_queue_fail(q, SLUICE_ENOTFOUND, "no record with id %.200s",
                             id);
    }
}

sluice_err
sl_rq_get(sluice_queue *q, const char *id, sl_record_info *out)
{
    sl_rq_queue *s = sl_rq_state(q);
    redisReply *reply;
    sluice_err err = find(q, id, &reply);
    if (err != SLUICE_OK)
        return err;
    bool copied = sl_rq_info_read(s, reply, 1, out);
    freeReplyObject(reply);
    if (!copied)
        return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    return SLUICE_OK;
}

/* A listed record from the fields at `at`, as sqlite_list hands it out. */
static sluice_record
record_of(const sl_rq_queue *s, const redisReply *r, size_t at)
{
    sluice_record rec = {
        .id = sl_rq_str(r, at + RF_ID),
        .url = sl_rq_str(r, at + RF_URL),
        .key = sl_rq_str(r, at + RF_KEY),
        .meta = sl_rq_str(r, at + RF_META),
        .state = (sluice_state)sl_rq_int(r, at + RF_STATE),
        .attempts = (unsigned)sl_rq_int(r, at + RF_ATTEMPTS),
        .size = sl_rq_str(r, at + RF_SIZE) ? sl_rq_int(r, at + RF_SIZE) : -1,
        .sha256 = sl_rq_str(r, at + RF_SHA256),
        .content_type = sl_rq_str(r, at + RF_CTYPE),
        .etag = sl_rq_str(r, at + RF_ETAG),
        .error_class = sl_rq_str(r, at + RF_ERROR_CLASS),
        .message = sl_rq_str(r, at + RF_MESSAGE),
        .http_status = (int)sl_rq_int(r, at + RF_HTTP_STATUS),
        .finished_at = sl_rq_from_redis(s, sl_rq_int(r, at + RF_FINISHED_AT)),
    };
    /* A record fetched before and pending again keeps its last object's
     * fields: they describe nothing stored now. */
    if (rec.state != SLUICE_STATE_DONE) {
        rec.size = -1;
        rec.sha256 = rec.content_type = rec.etag = NULL;
        if (rec.state != SLUICE_STATE_DEAD)
            rec.finished_at = 0;
    }
    return rec;
}

sluice_err
sl_rq_list(sluice_queue *q, int state, const char *id, sluice_record_fn *fn,
           void *ctx)
{
    sl_rq_queue *s = sl_rq_state(q);
    redisReply *reply;
    sluice_err err;
    if (id) {
        if ((err = find(q, id, &reply)) != SLUICE_OK)
            return err;
        sluice_record rec = record_of(s, reply, 1);
        fn(ctx, &rec);
        freeReplyObject(reply);
        return SLUICE_OK;
    }
    /* Feed order is rid order, 1 to the highest: records are never
     * removed. A page at a time, so memory stays flat; packed records
     * are read in their packs, where the page before says the next one
     * begins (a list unpacks nothing). */
    char start[24], count[24], want[24], place[80] = "";
    sl_fmt(count, sizeof count, "%d", PAGE_RIDS);
    sl_fmt(want, sizeof want, "%d", state < 0 ? -1 : state);
    int64_t next = 1, top = 1;
    while (next <= top) {
        sl_fmt(start, sizeof start, "%" PRId64, next);
        const char *argv[] = {start, count, want, place};
        if ((err = sl_rq_eval(q, RQ_PAGE, &reply, 4, argv, NULL)) != SLUICE_OK)
            return err;
        const char *at = sl_rq_str(reply, 2);
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
            (reply->elements - 3) % RF_COUNT_ != 0 || !at ||
            strlen(at) >= sizeof place)
            return sl_rq_bad_reply(q, reply, "list");
        next = sl_rq_int(reply, 0);
        top = sl_rq_int(reply, 1);
        sl_fmt(place, sizeof place, "%s", at);
        for (size_t i = 3; i < reply->elements; i += RF_COUNT_) {
            sluice_record rec = record_of(s, reply, i);
            if (fn(ctx, &rec) != 0) {
                freeReplyObject(reply);
                return SLUICE_OK;
            }
        }
        freeReplyObject(reply);
    }
    return SLUICE_OK;
}

sluice_err
sl_rq_dlq_list(sluice_queue *q, const sluice_dlq_filter *filter,
               sluice_dead_fn *fn, void *ctx)
{
    sl_rq_queue *s = sl_rq_state(q);
    char off[24], count[24];
    sl_fmt(count, sizeof count, "%d", PAGE_RIDS);
    for (int64_t at = 0;; at += PAGE_RIDS) {
        sl_fmt(off, sizeof off, "%" PRId64, at);
        const char *argv[] = {off, count,
                              filter->error_class ? filter->error_class : ""};
        redisReply *reply;
        sluice_err err = sl_rq_eval(q, RQ_DLQ_PAGE, &reply, 3, argv, NULL);
        if (err != SLUICE_OK)
            return err;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
            (reply->elements - 1) % RF_COUNT_ != 0)
            return sl_rq_bad_reply(q, reply, "dlq list");
        int64_t read = sl_rq_int(reply, 0);
        for (size_t i = 1; i < reply->elements; i += RF_COUNT_) {
            const char *cls = sl_rq_str(reply, i + RF_ERROR_CLASS);
            const char *msg = sl_rq_str(reply, i + RF_MESSAGE);
            sluice_dead_record rec = {
                .id = sl_rq_str(reply, i + RF_ID),
                .url = sl_rq_str(reply, i + RF_URL),
                .key = sl_rq_str(reply, i + RF_KEY),
                .meta = sl_rq_str(reply, i + RF_META),
                .error_class = cls ? cls : "unknown",
                .message = msg ? msg : "",
                .http_status = (int)sl_rq_int(reply, i + RF_HTTP_STATUS),
                .attempts = (unsigned)sl_rq_int(reply, i + RF_ATTEMPTS),
                .failed_at =
                    sl_rq_from_redis(s, sl_rq_int(reply, i + RF_FINISHED_AT)),
            };
            if (fn(ctx, &rec) != 0) {
                freeReplyObject(reply);
                return SLUICE_OK;
            }
        }
        freeReplyObject(reply);
        if (read < PAGE_RIDS)
            return SLUICE_OK;
    }
}

sluice_err
sl_rq_replay(sluice_queue *q, const char *id, const sluice_dlq_filter *filter,
             int64_t now_ms, uint64_t *replayed)
{
    char now[24];
    sl_fmt(now, sizeof now, "%" PRId64, sl_rq_to_redis(sl_rq_state(q), now_ms));
    const char *argv[] = {id ? id : "",
                          filter->error_class ? filter->error_class : "", now};
    redisReply *reply;
    /* Nothing packed is dead: an id looked up unpacks nothing. */
    sluice_err err = sl_rq_eval(q, RQ_REPLAY, &reply, 3, argv, NULL);
    if (err != SLUICE_OK)
        return err;
    if (reply->type != REDIS_REPLY_INTEGER)
        return sl_rq_bad_reply(q, reply, "replay");
    *replayed = (uint64_t)reply->integer;
    freeReplyObject(reply);
    return SLUICE_OK;
}
