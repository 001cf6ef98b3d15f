/*
 * Packs (queue_redis.h; docs/queue.md, "Packs"): a feed's first ingest
 * into an empty Redis queue writes its new records as a few large
 * values, PACK_RECORDS records each, in one script call a batch, rather
 * than as a hash and four index entries a record. The lease unpacks
 * them as the run needs records; whatever looks records up by id or RID
 * unpacks them all first (sl_rq_unpack_all, a few packs a call).
 *
 * A batch may be packed only while every id in the queue came from this
 * feed and the feed names each of the batch's ids for the first time
 * (sl_record.first): then none of them can be in the queue, and no
 * lookup is needed. The feed started on an empty queue, and the queue's
 * last RID is still the one this feed's last batch left (nobody else
 * added a record since): the pack script checks that atomically.
 */
#include "queue_redis.h"

#include <inttypes.h>
#include <string.h>

/* Records a pack: what the lease unpacks at a time. */
#define PACK_RECORDS 1024
/* Packs an unpack call turns into records: a few milliseconds. */
#define UNPACK_PER_CALL 8

static bool
same_origin(const char *text, const buffered_rec *a, const buffered_rec *b)
{
    return a->len[4] == b->len[4] &&
           memcmp(text + a->at[4], text + b->at[4], a->len[4]) == 0;
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

sluice_err
sl_rq_pack(sluice_queue *q, const char *now, const char *text,
           const buffered_rec *recs, size_t n, char *letters, bool *packed)
{
    sl_rq_queue *s = sl_rq_state(q);
    *packed = false;
    if (s->pack_mode == RQ_PACK_OFF || n == 0)
        return SLUICE_OK;
    for (size_t k = 0; k < n; k++)
        if (!recs[k].first)
            return SLUICE_OK;
    size_t n_packs = (n + PACK_RECORDS - 1) / PACK_RECORDS, n_runs = 0;
    for (size_t k = 0; k < n; k++)
        n_runs += k == 0 || !same_origin(text, &recs[k - 1], &recs[k]);
    size_t argc = 3 + 2 * n_packs + 2 * n_runs;
    const char **args = sl_malloc(argc * sizeof *args);
    size_t *arg_lens = sl_malloc(argc * sizeof *arg_lens);
    char(*counts)[24] = sl_malloc((n_packs + n_runs) * sizeof *counts);
    char expect[24], packs[24], head[4 + 24];
    sluice_err err = SLUICE_OK;
    if (!args || !arg_lens || !counts) {
        err = sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
        goto done;
    }
    int64_t base = s->pack_mode == RQ_PACK_ON ? s->pack_top : 0;
    sl_fmt(expect, sizeof expect, "%" PRId64, base);
    sl_fmt(packs, sizeof packs, "%zu", n_packs);
    /* A pack's head, its queued_at, as its records' fields are. */
    size_t now_len = strlen(now);
    head[0] = (char)now_len;
    head[1] = head[2] = head[3] = 0;
    memcpy(head + 4, now, now_len);
    const char *fixed[] = {expect, packs, head};
    size_t fixed_lens[] = {strlen(expect), strlen(packs), 4 + now_len};
    for (int i = 0; i < 3; i++) {
        args[i] = fixed[i];
        arg_lens[i] = fixed_lens[i];
    }
    /* Each pack is a slice of the batch's text: its records' fields lie
     * one after the other, each behind its length. */
    for (size_t p = 0; p < n_packs; p++) {
        size_t from = p * PACK_RECORDS, to = SL_MIN(n, from + PACK_RECORDS);
        size_t start = recs[from].at[0] - 4;
        size_t end = recs[to - 1].at[REC_ARGS - 1] +
                     recs[to - 1].len[REC_ARGS - 1];
        sl_fmt(counts[p], sizeof counts[p], "%zu", to - from);
        args[3 + 2 * p] = counts[p];
        arg_lens[3 + 2 * p] = strlen(counts[p]);
        args[4 + 2 * p] = text + start;
        arg_lens[4 + 2 * p] = end - start;
    }
    /* The origins, a run of records of one origin at a time. */
    size_t at = 3 + 2 * n_packs, run = 0, r = 0;
    for (size_t k = 0; k < n; k++) {
        run++;
        if (k + 1 < n && same_origin(text, &recs[k], &recs[k + 1]))
            continue;
        char *count = counts[n_packs + r++];
        sl_fmt(count, 24, "%zu", run);
        args[at] = text + recs[k].at[4];
        arg_lens[at++] = recs[k].len[4];
        args[at] = count;
        arg_lens[at++] = strlen(count);
        run = 0;
    }
    redisReply *reply;
    if ((err = sl_rq_eval(q, RQ_PACK, &reply, (int)argc, args, arg_lens)) !=
        SLUICE_OK)
        goto done;
    if (reply->type != REDIS_REPLY_INTEGER) {
        err = sl_rq_bad_reply(q, reply, "upsert");
        goto done;
    }
    if (reply->integer == 1) {
        s->pack_mode = RQ_PACK_ON;
        s->pack_top = base + (int64_t)n;
        memset(letters, 'a', n);
        *packed = true;
    } else {
        /* Someone else's records are in the queue: this feed looks its
         * ids up from now on. */
        s->pack_mode = RQ_PACK_OFF;
    }
    freeReplyObject(reply);
done:
    sl_free(counts);
    sl_free(args);
    sl_free(arg_lens);
    return err;
}

sluice_err
sl_rq_unpack_all(sluice_queue *q)
{
    char most[16];
    sl_fmt(most, sizeof most, "%d", UNPACK_PER_CALL);
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
