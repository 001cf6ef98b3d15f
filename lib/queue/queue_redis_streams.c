/*
 * The Redis queue's streams: each stream's ingester lease, on Redis's
 * clock, and where the ingester is in each shard. A place is staged in
 * the batch and written by the commit's script (queue_redis_scripts.c,
 * "stream upsert") after the batch's records and only while its writer
 * holds the lease: the records and the place go in together or not at
 * all, as on SQLite. docs/queue.md lists the keys.
 */
#include "queue_redis.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

sluice_err
sl_rq_stream_lease(sluice_queue *q, const char *stream, const char *owner,
                   int64_t ttl_ms, bool *held, int64_t *left_ms)
{
    char ttl[24];
    sl_fmt(ttl, sizeof ttl, "%" PRId64, ttl_ms);
    const char *argv[3] = {stream, owner, ttl};
    redisReply *reply;
    sluice_err err = sl_rq_eval(q, RQ_STREAM_LEASE, &reply, 3, argv, NULL);
    if (err != SLUICE_OK)
        return err;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2)
        return sl_rq_bad_reply(q, reply, "stream lease");
    *held = sl_rq_int(reply, 0) == 1;
    *left_ms = sl_rq_int(reply, 1);
    freeReplyObject(reply);
    return SLUICE_OK;
}

sluice_err
sl_rq_stream_unlease(sluice_queue *q, const char *stream, const char *owner)
{
    const char *argv[2] = {stream, owner};
    redisReply *reply;
    sluice_err err = sl_rq_eval(q, RQ_STREAM_UNLEASE, &reply, 2, argv, NULL);
    if (err == SLUICE_OK)
        freeReplyObject(reply);
    return err;
}

sluice_err
sl_rq_stream_mark(sluice_queue *q, const char *owner, const sl_stream_mark *m)
{
    sl_rq_queue *s = sl_rq_state(q);
    char subseq[16], finished[4], behind[24], arrival[24];
    sl_fmt(subseq, sizeof subseq, "%" PRIu32, m->subseq);
    sl_fmt(finished, sizeof finished, "%d", m->finished ? 1 : 0);
    sl_fmt(behind, sizeof behind, "%" PRId64, m->behind_ms);
    sl_fmt(arrival, sizeof arrival, "%" PRId64, m->arrival_ms);
    /* The script's order: stream, shard, owner, seq, subseq, finished,
     * behind, arrival. A sequence number is digits (never a space); "-"
     * stands for none yet. */
    const char *v[8] = {m->stream, m->shard, owner,  *m->seq ? m->seq : "-",
                        subseq,    finished, behind, arrival};
    sl_buf_clear(&s->mark_text);
    for (int i = 0; i < 8; i++) {
        s->mark_at[i] = s->mark_text.len;
        s->mark_len[i] = strlen(v[i]);
        if (sl_buf_append(&s->mark_text, v[i], s->mark_len[i]) != 0)
            return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    }
    s->mark_staged = true;
    return SLUICE_OK;
}

void
sl_rq_stream_args(sl_rq_queue *s, const char **argv, size_t *lens, size_t at)
{
    for (int i = 0; i < 8; i++) {
        argv[at + (size_t)i] = s->mark_text.data + s->mark_at[i];
        lens[at + (size_t)i] = s->mark_len[i];
    }
}

static int
by_name(const void *a, const void *b)
{
    const redisReply *x = *(redisReply *const *)a;
    const redisReply *y = *(redisReply *const *)b;
    return strcmp(x->str, y->str);
}

/* A shard's place as HGETALL gives it: the field and its value. */
typedef struct {
    const redisReply *shard, *place;
} shard_place;

static int
by_shard(const void *a, const void *b)
{
    return strcmp(((const shard_place *)a)->shard->str,
                  ((const shard_place *)b)->shard->str);
}

/* One stream's places, by shard. */
static sluice_err
stream_places(sluice_queue *q, const char *stream, sl_stream_mark_fn *fn,
              void *ctx, bool *stop)
{
    sl_rq_queue *s = sl_rq_state(q);
    redisReply *reply;
    sluice_err err = sl_redis_cmdf(
        &s->conn, &reply, "HGETALL %sstream:%s:marks", s->base, stream);
    if (err != SLUICE_OK)
        return sl_rq_conn_fail(q, err);
    if (reply->type != REDIS_REPLY_ARRAY)
        return sl_rq_bad_reply(q, reply, "stream places");
    size_t n = reply->elements / 2;
    shard_place *sp = sl_calloc(n ? n : 1, sizeof *sp);
    if (!sp) {
        freeReplyObject(reply);
        return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        sp[i] = (shard_place){reply->element[2 * i], reply->element[2 * i + 1]};
    qsort(sp, n, sizeof *sp, by_shard);
    for (size_t i = 0; i < n && !*stop; i++) {
        char seq[160];
        long long sub, fin, behind, arrival, written;
        if (sp[i].place->type != REDIS_REPLY_STRING ||
            sscanf(sp[i].place->str, "%159s %lld %lld %lld %lld %lld", seq,
                   &sub, &fin, &behind, &arrival, &written) != 6) {
            err = sl_queue_fail(q, SLUICE_EDB,
                                "%s: stream %s shard %s: a place that is "
                                "not one sluice wrote",
                                s->conn.addr.where, stream, sp[i].shard->str);
            break;
        }
        sl_stream_mark m = {
            .stream = stream,
            .shard = sp[i].shard->str,
            .seq = strcmp(seq, "-") == 0 ? "" : seq,
            .subseq = (uint32_t)sub,
            .finished = fin != 0,
            .behind_ms = behind,
            .arrival_ms = arrival,
            .written_ms = sl_rq_from_redis(s, written),
        };
        *stop = fn(ctx, &m) != 0;
    }
    sl_free(sp);
    freeReplyObject(reply);
    return err;
}

sluice_err
sl_rq_stream_marks(sluice_queue *q, const char *stream, sl_stream_mark_fn *fn,
                   void *ctx)
{
    sl_rq_queue *s = sl_rq_state(q);
    bool stop = false;
    if (stream)
        return stream_places(q, stream, fn, ctx, &stop);
    redisReply *reply;
    sluice_err err =
        sl_redis_cmdf(&s->conn, &reply, "SMEMBERS %sstreams", s->base);
    if (err != SLUICE_OK)
        return sl_rq_conn_fail(q, err);
    if (reply->type != REDIS_REPLY_ARRAY)
        return sl_rq_bad_reply(q, reply, "streams");
    if (reply->elements > 0) /* hiredis leaves an empty array NULL */
        qsort(reply->element, reply->elements, sizeof *reply->element,
              by_name);
    for (size_t i = 0; i < reply->elements && !stop && err == SLUICE_OK; i++)
        err = stream_places(q, reply->element[i]->str, fn, ctx, &stop);
    freeReplyObject(reply);
    return err;
}
