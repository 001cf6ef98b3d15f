/*
 * The Kinesis source: a stream's shards read into the queue
 * (sluice_ingest_stream). One ingester a stream and queue holds the
 * stream's lease (queue.h, stream_lease; a standby waits for it to
 * lapse). Each shard's batch of records is upserted in one transaction
 * with the shard's new place (stream_mark), which the queue refuses when
 * the lease was lost: a place never passes a record not yet stored, and
 * a restart goes on after it. A closed parent shard is read to its end
 * before its children, so each partition key's records keep their order.
 * The service's limits are kept: at most 5 reads a second a shard,
 * backing off on throttling and network trouble, a new iterator when one
 * expires. docs/kinesis.md tells the whole story.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "feed.h"
#include "ingest.h"
#include "../backoff.h"
#include "../kinesis/kinesis.h"
#include "../record/record.h"

#define READ_GAP_MS     200   /* 5 GetRecords a second a shard */
#define READ_LIMIT      10000 /* records a GetRecords */
#define LIST_EVERY_MS   10000 /* follow: shards listed again */
#define BACKOFF_BASE_MS 250
#define BACKOFF_CAP_MS  10000
#define LEASE_DEFAULT_S 15.0
#define POLL_DEFAULT_S  1.0
#define SEQ_MAX         128
#define TRIES_MAX       8 /* without follow: failures in a row */
#define CALL_TIMEOUT_MS     10000 /* a call, at most */
#define OUTAGE_MAX_MS       300000 /* a queue away this long: give up */
#define ITERATOR_TIMEOUT_MS 3000  /* GetShardIterator, at most */

typedef struct {
    char *id, *parent, *adjacent;
    bool open;  /* the service lists no ending sequence number */
    char *iter; /* NULL: get one */
    char seq[SEQ_MAX];
    uint32_t subseq;
    bool placed;     /* seq is a stored place */
    bool finished;   /* read to its end (closed) */
    bool caught_up;  /* an empty read at the stream's end */
    int64_t next_ms; /* boot clock: no read before */
    unsigned fails;  /* throttles and failures in a row */
    int64_t behind;  /* the behind_ms last stored */
    bool listed;     /* in the last listing */
} shard;

typedef struct {
    sluice_queue *q;
    sl_kinesis *k;
    const char *stream; /* the location, "kinesis://NAME" */
    const sluice_stream_opts *so;
    const sluice_ingest_opts *o;
    sluice_ingest_stats *stats;
    sl_guard guard;
    sl_jsonl jsonl;
    sl_record_scratch scratch;
    char owner[160];
    int64_t lease_ms, lease_end; /* boot clock: ours until then */
    shard *shards;
    size_t n_shards;
    int64_t listed_at;
    int64_t away_since; /* boot ms the queue went away; 0: it is here */
    uint64_t rng;
    char why[768];
} ingester;

static bool
stopped(const ingester *in)
{
    return in->so->stop && *in->so->stop;
}

static void notice(const ingester *in, const char *fmt, ...) SL_PRINTF(2, 3);

static void
notice(const ingester *in, const char *fmt, ...)
{
    if (!in->o->on_notice)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    in->o->on_notice(in->o->ctx, msg);
}

/* The queue did not answer (an outage: Redis away): said once. */
static void
queue_away(ingester *in)
{
    if (in->away_since)
        return;
    in->away_since = sl_boot_ms();
    notice(in, "%s: queue unreachable (%s); retrying for up to %d s",
           in->stream, sluice_queue_errmsg(in->q), OUTAGE_MAX_MS / 1000);
}

/* It answered again. */
static void
queue_back(ingester *in)
{
    if (!in->away_since)
        return;
    notice(in, "%s: queue reachable again after %.1f s", in->stream,
           (double)(sl_boot_ms() - in->away_since) / 1000);
    in->away_since = 0;
}

/* Sleep until boot time `until_ms`, or a stop, in short steps. */
static void
nap_until(const ingester *in, int64_t until_ms)
{
    for (;;) {
        int64_t left = until_ms - sl_boot_ms();
        if (left <= 0 || stopped(in))
            return;
        int64_t step = SL_MIN(left, 100);
        struct timespec ts = {step / 1000, (long)(step % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* ------------------------------------------------------------ the lease */

/*
 * Take or renew the stream's lease. Our own end is measured from before
 * we asked, on the boot clock: we stop writing before the queue could
 * give the lease to anyone else. *held false: another has it.
 */
static sluice_err
lease(ingester *in, bool *held, int64_t *left_ms)
{
    int64_t asked = sl_boot_ms();
    sluice_err err = sl_queue_stream_lease(in->q, in->stream, in->owner,
                                           in->lease_ms, held, left_ms);
    if (err == SLUICE_OK && *held)
        in->lease_end = asked + in->lease_ms;
    return err;
}

/* Wait, as a standby, until the lease is ours (or a stop). */
static sluice_err
take_lease(ingester *in)
{
    bool held, said = false;
    int64_t left;
    for (;;) {
        sluice_err err = lease(in, &held, &left);
        if (err != SLUICE_OK)
            return err;
        if (held) {
            queue_back(in);
            if (said)
                notice(in, "%s: took over the stream's lease; ingesting",
                       in->stream);
            return SLUICE_OK;
        }
        if (!said)
            notice(in,
                   "%s: another ingester holds the stream's lease (for "
                   "%.1f s more); standing by",
                   in->stream, (double)left / 1000);
        said = true;
        nap_until(in, sl_boot_ms() + SL_MAX(SL_MIN(left, 1000), 100));
        if (stopped(in))
            return SLUICE_EINTERRUPTED;
    }
}

/* Renew the lease a third of the way through it; false: it is lost. */
static sluice_err
keep_lease(ingester *in, bool *kept)
{
    *kept = true;
    if (in->lease_end - sl_boot_ms() > in->lease_ms * 2 / 3)
        return SLUICE_OK;
    int64_t left;
    sluice_err err = lease(in, kept, &left);
    if (err != SLUICE_OK && in->lease_end > sl_boot_ms())
        return SLUICE_OK; /* try again next round, while it lasts */
    return err;
}

/* ----------------------------------------------------------- the shards */

static void
shard_free(shard *s)
{
    sl_free(s->id);
    sl_free(s->parent);
    sl_free(s->adjacent);
    sl_free(s->iter);
}

static shard *
shard_find(const ingester *in, const char *id)
{
    for (size_t i = 0; id && i < in->n_shards; i++)
        if (strcmp(in->shards[i].id, id) == 0)
            return &in->shards[i];
    return NULL;
}

static int
take_place(void *ctx, const sl_stream_mark *m)
{
    shard *s = shard_find(ctx, m->shard);
    if (s) {
        sl_copy(s->seq, sizeof s->seq, m->seq);
        s->subseq = m->subseq;
        s->placed = *m->seq != '\0';
        s->finished = m->finished;
    }
    return 0;
}

/* The shards as the service lists them now, with the places stored. */
static sluice_err
list_shards(ingester *in)
{
    sl_kinesis_shard *got = NULL;
    size_t n = 0;
    sl_kinesis_status st =
        sl_kinesis_list_shards(in->k, &got, &n, in->why, sizeof in->why);
    if (st != SL_KINESIS_OK)
        return st == SL_KINESIS_NOT_FOUND || st == SL_KINESIS_FAILED
                   ? SLUICE_ECONFIG
                   : SLUICE_ENETWORK;
    for (size_t i = 0; i < in->n_shards; i++)
        in->shards[i].listed = false;
    sluice_err err = SLUICE_OK;
    for (size_t i = 0; i < n && err == SLUICE_OK; i++) {
        shard *s = shard_find(in, got[i].shard_id);
        if (!s) {
            shard *grown =
                sl_realloc(in->shards, (in->n_shards + 1) * sizeof *grown);
            if (!grown) {
                err = SLUICE_ENOMEM;
                break;
            }
            in->shards = grown;
            s = &in->shards[in->n_shards++];
            memset(s, 0, sizeof *s);
            s->behind = INT64_MIN;
            s->id = sl_strdup_or_null(got[i].shard_id);
            s->parent = sl_strdup_or_null(got[i].parent);
            s->adjacent = sl_strdup_or_null(got[i].adjacent_parent);
            if (!s->id || (got[i].parent && !s->parent) ||
                (got[i].adjacent_parent && !s->adjacent))
                err = SLUICE_ENOMEM;
        }
        s->open = got[i].ending_seq == NULL;
        s->listed = true;
    }
    sl_kinesis_shards_free(got, n);
    if (err == SLUICE_ENOMEM) {
        sl_copy(in->why, sizeof in->why, "out of memory");
        return err;
    }
    err = sl_queue_stream_marks(in->q, in->stream, take_place, in);
    if (err != SLUICE_OK)
        sl_copy(in->why, sizeof in->why, sluice_queue_errmsg(in->q));
    in->listed_at = sl_boot_ms();
    return err;
}

/* A parent is done when read to its end, or no longer listed (past the
 * stream's retention: nothing of it left to read). */
static bool
parent_done(const ingester *in, const char *id)
{
    const shard *p = shard_find(in, id);
    return !p || p->finished || !p->listed;
}

static bool
readable(const ingester *in, const shard *s)
{
    return s->listed && !s->finished && !(s->caught_up && !in->so->follow) &&
           parent_done(in, s->parent) && parent_done(in, s->adjacent);
}

/* An iterator for `s`: after its place, else where the options say. */
static sl_kinesis_status
get_iterator(ingester *in, shard *s)
{
    sl_kinesis_from from;
    switch (in->so->from) {
    case SLUICE_STREAM_LATEST:
        from = SL_KINESIS_LATEST;
        break;
    case SLUICE_STREAM_AT_TIMESTAMP:
        from = SL_KINESIS_AT_TIMESTAMP;
        break;
    default:
        from = SL_KINESIS_TRIM_HORIZON;
    }
    /* A child shard starts at its beginning: its parent was read. */
    if (s->parent && shard_find(in, s->parent))
        from = SL_KINESIS_TRIM_HORIZON;
    if (s->placed)
        from = SL_KINESIS_AFTER_SEQUENCE;
    sl_free(s->iter);
    s->iter = NULL;
    /* A small call: a short timeout (some servers never answer one at a
     * time past the stream's last record; it is asked again). */
    sl_kinesis_set_timeout(in->k, ITERATOR_TIMEOUT_MS);
    sl_kinesis_status st = sl_kinesis_iterator(
        in->k, s->id, from, s->placed ? s->seq : NULL, in->so->at_ms,
        &s->iter, in->why, sizeof in->why);
    sl_kinesis_set_timeout(in->k, CALL_TIMEOUT_MS);
    return st;
}

/* ---------------------------------------------------------- the records */

static void
reject(ingester *in, const shard *s, const sl_kinesis_record *r,
       const char *reason)
{
    in->stats->rejected++;
    if (!in->o->on_reject)
        return;
    char where[512];
    if (r->n_sub)
        sl_fmt(where, sizeof where, "%s %s seq %s sub %" PRIu32, in->stream,
               s->id, r->seq, r->subseq);
    else
        sl_fmt(where, sizeof where, "%s %s seq %s", in->stream, s->id, r->seq);
    in->o->on_reject(in->o->ctx, where, 0, reason);
}

/* One record into the open transaction, or reported. */
static sluice_err
take_record(ingester *in, const shard *s, const sl_kinesis_record *r,
            sluice_ingest_stats *batch)
{
    char reason[512];
    sl_feed_item item;
    sl_record rec;
    if (r->bad) {
        reject(in, s, r, r->bad);
        return SLUICE_OK;
    }
    if (memchr(r->data, '\n', r->len) || memchr(r->data, '\0', r->len)) {
        reject(in, s, r, "not one JSON object: it holds a line break or NUL");
        return SLUICE_OK;
    }
    memset(&item, 0, sizeof item);
    sl_feed_status fs = sl_jsonl_parse(&in->jsonl, (const char *)r->data,
                                       r->len, &item, reason, sizeof reason);
    if (fs == SL_FEED_ERROR)
        return SLUICE_ENOMEM;
    if (fs != SL_FEED_RECORD) {
        reject(in, s, r, fs == SL_FEED_EOF ? "empty record" : reason);
        return SLUICE_OK;
    }
    sluice_err err =
        sl_record_prepare(&in->scratch, &item, &rec, reason, sizeof reason);
    if (err == SLUICE_ENOMEM)
        return err;
    if (err != SLUICE_OK) {
        reject(in, s, r, reason);
        return SLUICE_OK;
    }
    const char *refused = sl_guard_check_origin(&in->guard, rec.origin);
    if (refused) {
        sl_fmt(reason, sizeof reason,
               "url: %s address refused (allow it with --allow-private or "
               "--allow-net)",
               refused);
        reject(in, s, r, reason);
        return SLUICE_OK;
    }
    err = sl_queue_upsert(in->q, &rec, 1, sl_now_ms(), batch);
    if (err != SLUICE_OK)
        sl_copy(in->why, sizeof in->why, sluice_queue_errmsg(in->q));
    return err;
}

static void
add_batch(sluice_ingest_stats *total, const sluice_ingest_stats *b)
{
    total->added += b->added;
    total->updated += b->updated;
    total->unchanged += b->unchanged;
}

/*
 * A batch's records and the shard's new place, in one transaction.
 * SLUICE_EAGAIN: the lease was lost meanwhile, nothing written.
 */
static sluice_err
store_batch(ingester *in, shard *s, const sl_kinesis_batch *b)
{
    sluice_ingest_stats batch = {0};
    uint64_t rejected = in->stats->rejected;
    const sl_kinesis_record *last = b->n ? &b->recs[b->n - 1] : NULL;
    sl_stream_mark m = {
        .stream = in->stream,
        .shard = s->id,
        .seq = last ? last->seq : s->seq,
        .subseq = last ? last->subseq : s->subseq,
        .finished = b->next_iterator == NULL,
        .behind_ms = b->millis_behind,
        .arrival_ms = last ? last->arrival_ms : 0,
    };
    if (last && strlen(last->seq) >= SEQ_MAX) {
        sl_fmt(in->why, sizeof in->why,
               "%s %s: sequence number %.40s... longer than %d digits",
               in->stream, s->id, last->seq, SEQ_MAX - 1);
        return SLUICE_EPARSE;
    }
    /* An empty read changes nothing worth a write but the lag. */
    if (!last && !m.finished && m.behind_ms == s->behind)
        return SLUICE_OK;
    sluice_err err = sl_queue_begin(in->q);
    for (size_t i = 0; i < b->n && err == SLUICE_OK; i++) {
        const sl_kinesis_record *r = &b->recs[i];
        /* Sub-records up to the place were stored before a restart. */
        if (s->placed && r->n_sub && strcmp(r->seq, s->seq) == 0 &&
            r->subseq <= s->subseq)
            continue;
        err = take_record(in, s, r, &batch);
    }
    if (err == SLUICE_OK)
        err = sl_queue_stream_mark(in->q, in->owner, &m);
    if (err == SLUICE_OK)
        err = sl_queue_commit(in->q);
    if (err != SLUICE_OK) {
        if (err != SLUICE_ENOMEM)
            sl_copy(in->why, sizeof in->why, sluice_queue_errmsg(in->q));
        else
            sl_copy(in->why, sizeof in->why, "out of memory");
        sl_queue_rollback(in->q);
        in->stats->rejected = rejected; /* they come again */
        return err;
    }
    add_batch(in->stats, &batch);
    if (last) {
        sl_copy(s->seq, sizeof s->seq, last->seq);
        s->subseq = last->subseq;
        s->placed = true;
    }
    s->finished = m.finished;
    s->behind = m.behind_ms;
    if (in->o->on_progress)
        in->o->on_progress(in->o->ctx, in->stats);
    return SLUICE_OK;
}

/* Back off a shard after a refusal or a failure. */
static void
back_off(ingester *in, shard *s)
{
    s->fails++;
    s->next_ms = sl_boot_ms() + READ_GAP_MS +
                 sl_backoff_ms(s->fails, BACKOFF_BASE_MS, BACKOFF_CAP_MS,
                               sl_random(&in->rng));
}

/*
 * One read of shard `s` and its records stored. SLUICE_OK also when the
 * service refused for now (the shard waits); SLUICE_EAGAIN when the
 * lease was lost; another error stops the ingest.
 */
static sluice_err
read_shard(ingester *in, shard *s)
{
    sl_kinesis_status st = SL_KINESIS_OK;
    if (!s->iter)
        st = get_iterator(in, s);
    sl_kinesis_batch b = {0};
    if (st == SL_KINESIS_OK)
        st = sl_kinesis_get_records(in->k, s->iter, READ_LIMIT, &b, in->why,
                                    sizeof in->why);
    switch (st) {
    case SL_KINESIS_OK:
        break;
    case SL_KINESIS_EXPIRED_ITERATOR:
        sl_free(s->iter);
        s->iter = NULL;
        s->next_ms = sl_boot_ms() + READ_GAP_MS;
        return SLUICE_OK;
    case SL_KINESIS_THROTTLED:
    case SL_KINESIS_TRANSIENT:
        if (!in->so->follow && s->fails + 1 >= TRIES_MAX)
            return SLUICE_ENETWORK; /* said in why */
        if (s->fails == 3)
            notice(in, "%s %s: %s; still trying", in->stream, s->id, in->why);
        back_off(in, s);
        return SLUICE_OK;
    case SL_KINESIS_NOT_FOUND:
    case SL_KINESIS_FAILED:
        return SLUICE_ECONFIG;
    }
    sluice_err err = store_batch(in, s, &b);
    if (sl_queue_outage(in->q, err)) {
        /* Read again, from the same iterator, once the queue is back. */
        queue_away(in);
        back_off(in, s);
        err = SLUICE_OK;
    } else if (err == SLUICE_OK) {
        queue_back(in);
        s->fails = 0;
        sl_free(s->iter);
        s->iter = b.next_iterator;
        b.next_iterator = NULL;
        /* The stream's end: nothing more, and nothing behind. */
        s->caught_up = b.n == 0 && b.millis_behind <= 0;
        int64_t gap = READ_GAP_MS;
        if (b.n == 0)
            gap = SL_MAX(gap, (int64_t)(in->so->poll_s * 1000));
        s->next_ms = sl_boot_ms() + gap;
    }
    sl_kinesis_batch_free(&b);
    return err;
}

/* Every listed shard read to its end (as it was when reached)? */
static bool
all_read(const ingester *in)
{
    for (size_t i = 0; i < in->n_shards; i++) {
        const shard *s = &in->shards[i];
        if (s->listed && !s->finished && !s->caught_up)
            return false;
    }
    return true;
}

/* Read the shards until the end (or a stop). */
static sluice_err
read_all(ingester *in)
{
    sluice_err err;
    for (unsigned tries = 1;; tries++) {
        err = list_shards(in);
        if (err != SLUICE_ENETWORK || stopped(in) ||
            (!in->so->follow && tries >= TRIES_MAX))
            break;
        if (tries == 3)
            notice(in, "%s: %s; still trying", in->stream, in->why);
        nap_until(in, sl_boot_ms() + sl_backoff_ms(tries, BACKOFF_BASE_MS,
                                                   BACKOFF_CAP_MS,
                                                   sl_random(&in->rng)));
    }
    while (err == SLUICE_OK && !stopped(in)) {
        bool kept;
        if ((err = keep_lease(in, &kept)) != SLUICE_OK)
            break;
        if (!kept || in->lease_end <= sl_boot_ms())
            return SLUICE_EAGAIN;
        int64_t now = sl_boot_ms(), next = now + LIST_EVERY_MS;
        bool finished_one = false;
        for (size_t i = 0; i < in->n_shards && err == SLUICE_OK; i++) {
            shard *s = &in->shards[i];
            if (!readable(in, s))
                continue;
            if (s->next_ms <= now) {
                bool was = s->finished;
                err = read_shard(in, s);
                finished_one |= s->finished && !was;
                now = sl_boot_ms();
            }
            next = SL_MIN(next, s->next_ms);
        }
        if (err != SLUICE_OK)
            break;
        if (!in->so->follow && all_read(in))
            return SLUICE_OK;
        /* A finished parent may have children not listed yet. */
        if (finished_one || now - in->listed_at >= LIST_EVERY_MS) {
            err = list_shards(in);
            if (err == SLUICE_ENETWORK) {
                notice(in, "%s: %s; still trying", in->stream, in->why);
                err = SLUICE_OK;
                in->listed_at = now;
            }
            continue;
        }
        nap_until(in, SL_MIN(next, in->lease_end - in->lease_ms / 3));
    }
    if (err == SLUICE_OK && stopped(in))
        err = SLUICE_EINTERRUPTED;
    return err;
}

static void
ingester_free(ingester *in)
{
    for (size_t i = 0; i < in->n_shards; i++)
        shard_free(&in->shards[i]);
    sl_free(in->shards);
    sl_jsonl_free(&in->jsonl);
    sl_record_scratch_free(&in->scratch);
    sl_guard_free(&in->guard);
    sl_kinesis_close(in->k);
}

sluice_err
sluice_ingest_stream(sluice_queue *q, const char *location,
                     const sluice_stream_opts *sopts,
                     const sluice_ingest_opts *opts, sluice_ingest_stats *stats)
{
    static const sluice_ingest_opts no_opts = {0};
    static const sluice_stream_opts no_sopts = {0};
    sluice_stream_opts so = sopts ? *sopts : no_sopts;
    ingester in;
    char host[64] = "localhost";

    memset(&in, 0, sizeof in);
    if (so.lease_s <= 0)
        so.lease_s = LEASE_DEFAULT_S;
    if (so.poll_s <= 0)
        so.poll_s = POLL_DEFAULT_S;
    in.q = q;
    in.stream = location;
    in.so = &so;
    in.o = opts ? opts : &no_opts;
    in.stats = stats;
    in.lease_ms = (int64_t)(so.lease_s * 1000);
    in.rng = (uint64_t)sl_now_ms() ^ ((uint64_t)getpid() << 32);
    gethostname(host, sizeof host - 1);
    sl_fmt(in.owner, sizeof in.owner, "%s:%d:%016" PRIx64, host, (int)getpid(),
           sl_random(&in.rng));
    sl_record_scratch_init(&in.scratch);
    if (!sl_queue_has(q, SL_QUEUE_F_STREAMS))
        return sl_queue_fail(q, SLUICE_EUNSUPPORTED,
                             "%s: the %s queue cannot keep a stream's place",
                             q->location, q->ops->backend.name);
    sluice_err err = sl_jsonl_init(&in.jsonl);
    if (err == SLUICE_OK)
        err = sl_kinesis_open(&in.k, location, in.why, sizeof in.why);
    if (err == SLUICE_OK)
        err = sl_ingest_policy(q, in.o, &in.guard, in.why, sizeof in.why);
    if (err == SLUICE_OK)
        sl_jsonl_set_names(&in.jsonl, in.o->url_column, in.o->id_column,
                           in.o->key_column);
    while (err == SLUICE_OK) {
        err = take_lease(&in);
        if (err == SLUICE_OK)
            err = read_all(&in);
        if (sl_queue_outage(q, err) && !stopped(&in)) {
            /* The queue is away, longer than the lease perhaps: wait,
             * then take the lease again (or stand by). */
            queue_away(&in);
            if (sl_boot_ms() - in.away_since > OUTAGE_MAX_MS) {
                sl_copy(in.why, sizeof in.why, sluice_queue_errmsg(q));
                break;
            }
            nap_until(&in, sl_boot_ms() + 1000);
        } else if (err != SLUICE_EAGAIN || stopped(&in)) {
            break;
        } else {
            /* Another ingester took the stream over: stand by again. */
            notice(&in, "%s: lost the stream's lease to another ingester",
                   location);
        }
        for (size_t i = 0; i < in.n_shards; i++) {
            shard_free(&in.shards[i]);
        }
        in.n_shards = 0;
        err = SLUICE_OK;
    }
    if (in.k && err != SLUICE_EAGAIN)
        sl_queue_stream_unlease(q, location, in.owner);
    if (err == SLUICE_EAGAIN)
        err = SLUICE_EINTERRUPTED;
    if (err != SLUICE_OK && err != SLUICE_EINTERRUPTED)
        sl_queue_fail(q, err, "%s", in.why);
    else if (err == SLUICE_EINTERRUPTED)
        sl_queue_fail(q, err, "%s: stopped", location);
    ingester_free(&in);
    return err;
}

/* ------------------------------------------------------------ listing */

typedef struct {
    sluice_stream_place_fn *fn;
    void *ctx;
} place_lister;

static int
list_place(void *ctx, const sl_stream_mark *m)
{
    const place_lister *pl = ctx;
    sluice_stream_place p = {m->stream,     m->shard,     m->seq,
                             m->subseq,     m->finished,  m->behind_ms,
                             m->arrival_ms, m->written_ms};
    return pl->fn(pl->ctx, &p);
}

sluice_err
sluice_stream_places(sluice_queue *q, sluice_stream_place_fn *fn, void *ctx)
{
    if (!sl_queue_has(q, SL_QUEUE_F_STREAMS))
        return SLUICE_OK;
    place_lister pl = {fn, ctx};
    return sl_queue_stream_marks(q, NULL, list_place, &pl);
}
