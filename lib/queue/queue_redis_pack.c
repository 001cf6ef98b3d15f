/*
 * Packs (queue_redis.h; docs/queue.md, "Packs"): a feed's first ingest
 * into an empty Redis queue writes its new records as a few large
 * values, SL_RQ_PACK_RECORDS records each, with a handful of plain
 * commands a batch in one MULTI/EXEC, rather than as a hash and four
 * index entries a record. The lease unpacks them as the run needs
 * records, a list and a lookup by id read them where they are, and
 * whatever else looks records up by id (an ingest's lookup, a dump)
 * unpacks them all first (sl_rq_unpack_all, a few packs a call).
 *
 * A batch may be packed only while every id in the queue came from this
 * feed and the feed names each of the batch's ids for the first time
 * (sl_record.first): then none of them can be in the queue, and no
 * lookup is needed. The feed started on an empty queue, and the queue's
 * last RID is still the one this feed's last batch left (nobody else
 * added a record since): WATCH on meta makes that atomic.
 */
#include "queue_redis.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

static bool
same_origin(const char *text, const buffered_rec *a, const buffered_rec *b)
{
    return sl_rq_field_is(text, a, 4, text + b->at[4], b->len[4]);
}

void
sl_rq_pack_feed_start(sl_rq_queue *s)
{
    s->pack_mode = RQ_PACK_UNKNOWN;
}

void
sl_rq_pack_follow(sl_rq_queue *s, int64_t top, size_t added)
{
    bool ours = s->pack_mode == RQ_PACK_UNKNOWN
                    ? top == 0
                    : s->pack_mode == RQ_PACK_ON && top == s->pack_top;
    s->pack_mode = ours ? RQ_PACK_ON : RQ_PACK_OFF;
    s->pack_top = top + (int64_t)added;
}

void
sl_rq_pack_lost(sl_rq_queue *s)
{
    s->pack_mode = RQ_PACK_OFF;
}

/* The first round trip: WATCH meta, and its last RID into *top. */
static sluice_err
watch_top(sluice_queue *q, int64_t *top)
{
    sl_rq_queue *s = sl_rq_state(q);
    const char *watch[] = {"WATCH", s->meta_key};
    const char *get[] = {"HGET", s->meta_key, "rid"};
    sl_redis_cmdv cmds[] = {{2, watch, NULL}, {3, get, NULL}};
    redisReply *replies[2] = {NULL, NULL};
    sluice_err err = sl_redis_pipeline(&s->conn, 2, cmds, replies, "upsert");
    if (err != SLUICE_OK)
        return sl_rq_conn_fail(q, err);
    if (replies[0]->type != REDIS_REPLY_STATUS ||
        (replies[1]->type != REDIS_REPLY_STRING &&
         replies[1]->type != REDIS_REPLY_NIL))
        err = sl_queue_fail(q, SLUICE_EDB,
                            "%s: upsert: unexpected reply from Redis",
                            s->conn.addr.where);
    else
        *top = replies[1]->type == REDIS_REPLY_STRING
                   ? strtoll(replies[1]->str, NULL, 10)
                   : 0;
    sl_redis_replies_free(replies, 2);
    return err;
}

/* Texts the second round trip's commands point to. */
typedef struct {
    char packs_key[160], counts_key[160], packed_key[160];
    char top[24], last[24], added[24];
    char (*fields)[2][32]; /* a pack's RID and "q:RID" */
    char (*runs)[24];      /* a run's count */
} pack_text;

/*
 * The second round trip, written: MULTI, the packs (each a slice of the
 * batch's text, and its head, queued_at, under "q:RID"), meta's last
 * RID and tail, the count, `packed` by origin, EXEC. *n_replies: the
 * replies read_packs reads.
 */
static sluice_err
send_packs(sluice_queue *q, const char *now, const char *text,
           const buffered_rec *recs, size_t n, int64_t top,
           size_t *n_replies)
{
    sl_rq_queue *s = sl_rq_state(q);
    size_t n_packs = (n + SL_RQ_PACK_RECORDS - 1) / SL_RQ_PACK_RECORDS;
    size_t n_runs = 0;
    for (size_t k = 0; k < n; k++)
        n_runs += k == 0 || !same_origin(text, &recs[k - 1], &recs[k]);
    sl_rq_cmds c;
    pack_text t;
    t.fields = sl_malloc(n_packs * sizeof *t.fields);
    t.runs = sl_malloc(n_runs * sizeof *t.runs);
    sluice_err err = SLUICE_OK;
    if (!sl_rq_cmds_init(&c, 18 + 4 * n_packs + 4 * n_runs, 6 + n_runs) ||
        !t.fields || !t.runs) {
        err = sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
        goto done;
    }
    sl_fmt(t.packs_key, sizeof t.packs_key, "%spacks", s->base);
    sl_fmt(t.counts_key, sizeof t.counts_key, "%scounts", s->base);
    sl_fmt(t.packed_key, sizeof t.packed_key, "%spacked", s->base);
    sl_fmt(t.top, sizeof t.top, "%" PRId64, top);
    sl_fmt(t.last, sizeof t.last, "%" PRId64, top + (int64_t)n);
    sl_fmt(t.added, sizeof t.added, "%zu", n);
    sl_rq_arg_str(&c, "MULTI");
    sl_rq_cmd_end(&c);
    sl_rq_arg_str(&c, "HSET");
    sl_rq_arg_str(&c, t.packs_key);
    for (size_t p = 0; p < n_packs; p++) {
        size_t from = p * SL_RQ_PACK_RECORDS;
        size_t to = SL_MIN(n, from + SL_RQ_PACK_RECORDS);
        size_t begin = recs[from].begin, end = recs[to - 1].end;
        sl_fmt(t.fields[p][0], sizeof t.fields[p][0], "%" PRId64,
               top + (int64_t)from + 1);
        sl_fmt(t.fields[p][1], sizeof t.fields[p][1], "q:%s", t.fields[p][0]);
        sl_rq_arg_str(&c, t.fields[p][0]);
        sl_rq_arg(&c, text + begin, end - begin);
        sl_rq_arg_str(&c, t.fields[p][1]);
        sl_rq_arg_str(&c, now);
    }
    sl_rq_cmd_end(&c);
    const char *const meta[][6] = {
        {"HSETNX", s->meta_key, "tail", t.top},
        {"HSET", s->meta_key, "rid", t.last, "version",
         SL_STR(SL_REDIS_SCHEMA)},
        {"HINCRBY", t.counts_key, "s0", t.added},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(meta); i++) {
        for (size_t j = 0; j < 6 && meta[i][j]; j++)
            sl_rq_arg_str(&c, meta[i][j]);
        sl_rq_cmd_end(&c);
    }
    /* `packed` by origin, a run of records of one origin at a time. */
    size_t run = 0, r = 0;
    for (size_t k = 0; k < n; k++) {
        run++;
        if (k + 1 < n && same_origin(text, &recs[k], &recs[k + 1]))
            continue;
        sl_fmt(t.runs[r], sizeof t.runs[r], "%zu", run);
        sl_rq_arg_str(&c, "HINCRBY");
        sl_rq_arg_str(&c, t.packed_key);
        sl_rq_arg(&c, text + recs[k].at[4], recs[k].len[4]);
        sl_rq_arg_str(&c, t.runs[r]);
        sl_rq_cmd_end(&c);
        r++;
        run = 0;
    }
    sl_rq_arg_str(&c, "EXEC");
    sl_rq_cmd_end(&c);
    *n_replies = c.n_cmds;
    err = sl_rq_cmds_write(q, &c);
done:
    sl_rq_cmds_free(&c);
    sl_free(t.fields);
    sl_free(t.runs);
    return err;
}

/* The second round trip's replies: *written is false when EXEC did
 * nothing (another write to meta since watch_top). */
static sluice_err
read_packs(sluice_queue *q, size_t n_replies, bool *written)
{
    sl_rq_queue *s = sl_rq_state(q);
    redisReply **replies = sl_calloc(n_replies, sizeof *replies);
    *written = false;
    if (!replies)
        return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    sluice_err err = sl_redis_pipeline_recv(&s->conn, n_replies, replies,
                                            "upsert");
    if (err != SLUICE_OK) {
        err = sl_rq_conn_fail(q, err);
    } else if (replies[n_replies - 1]->type != REDIS_REPLY_NIL) {
        const char *why = sl_rq_exec_why(replies, n_replies);
        if (why)
            err = sl_queue_fail(q, SLUICE_EDB, "%s: upsert: %.300s",
                                s->conn.addr.where, why);
        else
            *written = true;
    }
    sl_redis_replies_free(replies, n_replies);
    sl_free(replies);
    return err;
}

sluice_err
sl_rq_pack_send(sluice_queue *q, const char *now, const char *text,
                const buffered_rec *recs, size_t n, size_t *n_replies)
{
    sl_rq_queue *s = sl_rq_state(q);
    *n_replies = 0;
    if (s->pack_mode == RQ_PACK_OFF || n == 0)
        return SLUICE_OK;
    for (size_t k = 0; k < n; k++)
        if (!recs[k].first)
            return SLUICE_OK;
    int64_t base = s->pack_mode == RQ_PACK_ON ? s->pack_top : 0, top = 0;
    sluice_err err = watch_top(q, &top);
    if (err != SLUICE_OK)
        return err;
    if (top != base) {
        /* Someone else's records are in the queue: this feed looks its
         * ids up from now on. */
        s->pack_mode = RQ_PACK_OFF;
        return sl_rq_unwatch(q);
    }
    /* The WATCH holds only on the connection that sent it. */
    if (!sl_redis_connected(&s->conn))
        return sl_queue_fail(q, SLUICE_ENETWORK,
                             "%s: upsert: the connection was lost",
                             s->conn.addr.where);
    s->pack_top = top; /* until read: where the batch begins */
    if (s->pack_race)
        s->pack_race(s->pack_race_ctx);
    return send_packs(q, now, text, recs, n, top, n_replies);
}

void
sl_rq_pack_race(sluice_queue *q, void (*fn)(void *ctx), void *ctx)
{
    sl_rq_queue *s = sl_rq_state(q);
    s->pack_race = fn;
    s->pack_race_ctx = ctx;
}

sluice_err
sl_rq_pack_recv(sluice_queue *q, size_t n_replies, size_t n, bool *written)
{
    sl_rq_queue *s = sl_rq_state(q);
    sluice_err err = read_packs(q, n_replies, written);
    if (err != SLUICE_OK)
        return err;
    if (!*written) {
        s->pack_mode = RQ_PACK_OFF; /* someone wrote meta meanwhile */
        return SLUICE_OK;
    }
    s->pack_mode = RQ_PACK_ON;
    s->pack_top += (int64_t)n;
    return SLUICE_OK;
}

sluice_err
sl_rq_pack(sluice_queue *q, const char *now, const char *text,
           const buffered_rec *recs, size_t n, char *letters, bool *packed)
{
    size_t n_replies;
    *packed = false;
    sluice_err err = sl_rq_pack_send(q, now, text, recs, n, &n_replies);
    if (err != SLUICE_OK || n_replies == 0)
        return err;
    if ((err = sl_rq_pack_recv(q, n_replies, n, packed)) != SLUICE_OK ||
        !*packed)
        return err;
    memset(letters, 'a', n);
    return SLUICE_OK;
}

sluice_err
sl_rq_unpack_all(sluice_queue *q)
{
    char most[16];
    sl_fmt(most, sizeof most, "%d", SL_RQ_UNPACK_PACKS);
    const char *argv[] = {most};
    for (;;) {
        redisReply *reply;
        sluice_err err = sl_rq_eval(q, RQ_UNPACK, &reply, 1, argv, NULL);
        if (err != SLUICE_OK)
            return err;
        if (reply->type != REDIS_REPLY_INTEGER)
            return sl_rq_bad_reply(q, reply, "unpack");
        bool more = reply->integer == 1;
        freeReplyObject(reply);
        if (!more)
            return SLUICE_OK;
    }
}

bool
sl_rq_pack_record(const char *rec, size_t len, const char *at[PACK_FIELDS],
                  size_t lens[PACK_FIELDS])
{
    size_t pos = 0;
    for (int i = 0; i < PACK_FIELDS; i++) {
        if (len - pos < 2)
            return false;
        const unsigned char *p = (const unsigned char *)rec + pos;
        size_t n = (size_t)p[0] | (size_t)p[1] << 8;
        pos += 2;
        if (n > len - pos)
            return false;
        at[i] = rec + pos;
        lens[i] = n;
        pos += n;
    }
    return pos == len;
}
