/*
 * Ingest: read a feed, validate each record, and upsert it into the queue
 * in batched transactions. Two stages on two threads: a parser thread
 * reads, parses and validates into chunks; the caller's thread upserts
 * them and reports rejections, in feed order. A bad record is reported and
 * counted and costs nothing else; only a read or database failure stops
 * the work. Memory is bounded by the few chunks in flight.
 */
#include <pthread.h>
#include <string.h>

#include "feed.h"
#include "../run/guard.h"
#include "../run/policy.h"
#include "../queue/queue.h"
#include "../record/record.h"

#define DEFAULT_BATCH  20000
#define CHUNK_RECORDS  1024
#define CHUNK_BYTES    (1u << 20) /* hand a chunk over past this much text */
#define CHUNKS_IN_USE  16

int
sluice_format_from_name(const char *name)
{
    static const char *const names[] = {"auto", "jsonl", "csv", "lines"};
    for (size_t i = 0; i < SL_ARRAY_LEN(names); i++)
        if (strcmp(name, names[i]) == 0)
            return (int)i;
    return -1;
}

const char *
sluice_format_name(sluice_format format)
{
    switch (format) {
    case SLUICE_FORMAT_AUTO:
        return "auto";
    case SLUICE_FORMAT_JSONL:
        return "jsonl";
    case SLUICE_FORMAT_CSV:
        return "csv";
    case SLUICE_FORMAT_LINES:
        return "lines";
    }
    return "unknown";
}

/* A text in a chunk's arena. */
typedef struct {
    size_t off, len;
} span;

typedef struct {
    bool rejected; /* else a record */
    uint64_t line;
    span id, url, key, origin, meta; /* a rejection's reason is in `id` */
    bool has_meta;
} chunk_item;

typedef struct chunk {
    chunk_item items[CHUNK_RECORDS];
    size_t n;
    sl_buf arena;
    bool last;      /* the feed ended (or failed) with this chunk */
    sluice_err err; /* why it failed, for the last chunk */
    char errmsg[512];
    struct chunk *next;
} chunk;

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    chunk *full_head, *full_tail; /* parsed, in feed order */
    chunk *free_list;
    bool stop; /* the consumer gave up: the parser should too */
    /* The parser's own. */
    sl_feed feed;
    sl_record_scratch scratch;
    sl_guard guard;
    const char *name;
} pipeline;

static chunk *
take_free(pipeline *p)
{
    pthread_mutex_lock(&p->lock);
    while (!p->free_list && !p->stop)
        pthread_cond_wait(&p->changed, &p->lock);
    chunk *c = p->stop ? NULL : p->free_list;
    if (c)
        p->free_list = c->next;
    pthread_mutex_unlock(&p->lock);
    if (c) {
        c->n = 0;
        c->last = false;
        c->err = SLUICE_OK;
        c->errmsg[0] = '\0';
        c->next = NULL;
        sl_buf_clear(&c->arena);
    }
    return c;
}

static void
push_full(pipeline *p, chunk *c)
{
    pthread_mutex_lock(&p->lock);
    if (p->full_tail)
        p->full_tail->next = c;
    else
        p->full_head = c;
    p->full_tail = c;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
}

static chunk *
pop_full(pipeline *p)
{
    pthread_mutex_lock(&p->lock);
    while (!p->full_head)
        pthread_cond_wait(&p->changed, &p->lock);
    chunk *c = p->full_head;
    p->full_head = c->next;
    if (!p->full_head)
        p->full_tail = NULL;
    pthread_mutex_unlock(&p->lock);
    return c;
}

static void
give_back(pipeline *p, chunk *c)
{
    pthread_mutex_lock(&p->lock);
    c->next = p->free_list;
    p->free_list = c;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
}

static int
put(chunk *c, span *s, const char *text, size_t len)
{
    s->off = c->arena.len;
    s->len = len;
    /* Terminated, so the queue may treat each text as a C string. */
    return sl_buf_append(&c->arena, text, len) || sl_buf_putc(&c->arena, 0);
}

static int
add_reject(chunk *c, uint64_t line, const char *reason)
{
    chunk_item *it = &c->items[c->n];
    memset(it, 0, sizeof *it);
    it->rejected = true;
    it->line = line;
    if (put(c, &it->id, reason, strlen(reason)))
        return -1;
    c->n++;
    return 0;
}

static int
add_record(chunk *c, uint64_t line, const sl_record *rec)
{
    chunk_item *it = &c->items[c->n];
    memset(it, 0, sizeof *it);
    it->line = line;
    it->has_meta = rec->meta != NULL;
    if (put(c, &it->id, rec->id, rec->id_len) ||
        put(c, &it->url, rec->url, rec->url_len) ||
        put(c, &it->key, rec->key, rec->key_len) ||
        put(c, &it->origin, rec->origin, rec->origin_len) ||
        (rec->meta && put(c, &it->meta, rec->meta, rec->meta_len)))
        return -1;
    c->n++;
    return 0;
}

/* The parser thread: the feed, turned into chunks. */
static void *
parse_feed(void *arg)
{
    pipeline *p = arg;
    char reason[512];
    sl_feed_item item;
    sl_record rec;
    chunk *c = take_free(p);

    while (c) {
        sl_feed_status st = sl_feed_next(&p->feed, &item, reason,
                                         sizeof reason);
        uint64_t line = p->feed.lineno;
        int bad = 0;
        if (st == SL_FEED_EOF) {
            c->last = true;
        } else if (st == SL_FEED_ERROR) {
            c->last = true;
            c->err = p->feed.error;
            sl_fmt(c->errmsg, sizeof c->errmsg, "%s:%llu: %s", p->name,
                   (unsigned long long)line, reason);
        } else if (st == SL_FEED_REJECT) {
            bad = add_reject(c, line, reason);
        } else {
            sluice_err err = sl_record_prepare(&p->scratch, &item, &rec,
                                               reason, sizeof reason);
            const char *refused = err == SLUICE_OK
                                      ? sl_guard_check_origin(&p->guard,
                                                              rec.origin)
                                      : NULL;
            if (refused) {
                sl_fmt(reason, sizeof reason,
                       "url: %s address refused (allow it with "
                       "--allow-private or --allow-net)",
                       refused);
                bad = add_reject(c, line, reason);
            } else if (err == SLUICE_OK)
                bad = add_record(c, line, &rec);
            else if (err == SLUICE_ENOMEM)
                bad = 1;
            else
                bad = add_reject(c, line, reason);
        }
        if (bad) {
            c->last = true;
            c->err = SLUICE_ENOMEM;
            sl_fmt(c->errmsg, sizeof c->errmsg, "%s:%llu: out of memory",
                   p->name, (unsigned long long)line);
        }
        if (c->last) {
            push_full(p, c);
            break;
        }
        if (c->n == CHUNK_RECORDS || c->arena.len >= CHUNK_BYTES) {
            push_full(p, c);
            c = take_free(p);
        }
    }
    return NULL;
}

static void
add_stats(sluice_ingest_stats *total, sluice_ingest_stats *batch)
{
    total->added += batch->added;
    total->updated += batch->updated;
    total->unchanged += batch->unchanged;
    memset(batch, 0, sizeof *batch);
}

static const char *
text_at(const chunk *c, span s)
{
    return c->arena.data + s.off;
}

/* Where the caller's thread is in the current transaction. */
typedef struct {
    sluice_queue *q;
    const sluice_ingest_opts *opts;
    sluice_ingest_stats *stats; /* committed */
    sluice_ingest_stats batch;  /* upserted, not yet committed */
    uint64_t batch_size, in_batch;
} committer;

static sluice_err
commit(committer *cm)
{
    sluice_err err = SLUICE_OK;
    if (cm->q->in_batch)
        err = sl_queue_commit(cm->q);
    if (err != SLUICE_OK)
        return err;
    add_stats(cm->stats, &cm->batch);
    cm->in_batch = 0;
    if (cm->opts->on_progress)
        cm->opts->on_progress(cm->opts->ctx, cm->stats);
    return SLUICE_OK;
}

static sluice_err
upsert(committer *cm, const sl_record *recs, size_t n)
{
    while (n > 0) {
        size_t take = (size_t)SL_MIN((uint64_t)n,
                                     cm->batch_size - cm->in_batch);
        sluice_err err = SLUICE_OK;
        if (!cm->q->in_batch)
            err = sl_queue_begin(cm->q);
        if (err == SLUICE_OK)
            err = sl_queue_upsert(cm->q, recs, take, sl_now_ms(), &cm->batch);
        if (err != SLUICE_OK)
            return err;
        cm->in_batch += take;
        recs += take;
        n -= take;
        if (cm->in_batch >= cm->batch_size && (err = commit(cm)))
            return err;
    }
    return SLUICE_OK;
}

/* Upsert a chunk's records and report its rejections, in feed order. */
static sluice_err
consume(committer *cm, const chunk *c, const char *name, sl_record *recs)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++) {
        const chunk_item *it = &c->items[i];
        if (it->rejected) {
            cm->stats->rejected++;
            if (cm->opts->on_reject)
                cm->opts->on_reject(cm->opts->ctx, name, it->line,
                                    text_at(c, it->id));
            continue;
        }
        recs[n++] = (sl_record){
            .id = text_at(c, it->id),
            .id_len = it->id.len,
            .url = text_at(c, it->url),
            .url_len = it->url.len,
            .key = text_at(c, it->key),
            .key_len = it->key.len,
            .origin = text_at(c, it->origin),
            .origin_len = it->origin.len,
            .meta = it->has_meta ? text_at(c, it->meta) : NULL,
            .meta_len = it->meta.len,
        };
    }
    return upsert(cm, recs, n);
}

/*
 * The URL policy of this ingest into `g`: the one stored with the queue
 * (unless reset_policy) widened by the options'. Stored when that changes
 * it, and said. SLUICE_EINVAL with the reason for a bad network.
 */
static sluice_err
ingest_policy(sluice_queue *q, const sluice_ingest_opts *opts, sl_guard *g,
              char *why, size_t why_size)
{
    sl_policy kept, policy = {0};
    bool stored, changed;
    char was[512], now[512];
    /* The options' networks are checked before anything is stored. */
    sluice_err err = sl_guard_init(g, opts->allow_private, opts->allow_nets,
                                   opts->n_allow_nets, why, why_size);
    sl_guard_free(g);
    if (err != SLUICE_OK)
        return err;
    err = sl_policy_load(q, &kept, &stored, why, why_size);
    if (err != SLUICE_OK)
        return err;
    if ((!opts->reset_policy &&
         sl_policy_add(&policy, kept.allow_private,
                       (const char *const *)kept.nets, kept.n_nets,
                       &changed) != 0) ||
        sl_policy_add(&policy, opts->allow_private, opts->allow_nets,
                      opts->n_allow_nets, &changed) != 0) {
        err = SLUICE_ENOMEM;
        goto done;
    }
    sl_policy_describe(&kept, was, sizeof was);
    sl_policy_describe(&policy, now, sizeof now);
    if (strcmp(was, now) != 0 && sl_queue_has(q, SL_QUEUE_F_SLOTS)) {
        err = sl_policy_store(q, &policy);
        if (err != SLUICE_OK) {
            sl_copy(why, why_size, sluice_queue_errmsg(q));
            goto done;
        }
        if (opts->on_notice) {
            char msg[1200];
            sl_fmt(msg, sizeof msg,
                   "URL policy stored with the queue, for runs given no "
                   "--allow-*: %s; it was: %s",
                   now, was);
            opts->on_notice(opts->ctx, msg);
        }
    }
    err = sl_policy_guard(&policy, g, why, why_size);
done:
    if (err == SLUICE_ENOMEM)
        sl_copy(why, why_size, "out of memory");
    sl_policy_free(&kept);
    sl_policy_free(&policy);
    return err;
}

sluice_err
sluice_ingest_fd(sluice_queue *q, int fd, const char *name,
                 const sluice_ingest_opts *opts, sluice_ingest_stats *stats)
{
    static const sluice_ingest_opts defaults = {0};
    chunk *chunks[CHUNKS_IN_USE] = {NULL};
    sl_record *recs = NULL;
    pipeline p;
    pthread_t parser;
    bool started = false;
    sluice_err err = SLUICE_ENOMEM;

    if (!opts)
        opts = &defaults;
    /* Upserts count into *stats only once their transaction commits. */
    committer cm = {q, opts, stats, {0, 0, 0, 0}, 0, 0};
    cm.batch_size = opts->batch_size ? opts->batch_size : DEFAULT_BATCH;

    memset(&p, 0, sizeof p);
    p.name = name;
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.changed, NULL);
    sl_record_scratch_init(&p.scratch);
    char why[512];
    err = ingest_policy(q, opts, &p.guard, why, sizeof why);
    if (err != SLUICE_OK) {
        sl_queue_fail(q, err, "%s", why);
        goto fail;
    }
    char d = opts->delimiter;
    if (d == '"' || d == '\r' || d == '\n' ||
        (opts->url_column && !*opts->url_column) ||
        (opts->id_column && !*opts->id_column) ||
        (opts->key_column && !*opts->key_column)) {
        err = sl_queue_fail(q, SLUICE_EINVAL, "%s",
                            d == '"' || d == '\r' || d == '\n'
                                ? "--delimiter: a quote or a line break "
                                  "cannot split fields"
                                : "an empty column name");
        goto fail;
    }
    err = SLUICE_ENOMEM;
    if (sl_feed_init(&p.feed, fd, opts->format) != SLUICE_OK)
        goto fail;
    sl_csv_opts csv = {opts->url_column, opts->id_column, opts->key_column,
                       opts->delimiter};
    sl_feed_set_csv(&p.feed, &csv);
    recs = sl_calloc(CHUNK_RECORDS, sizeof *recs);
    if (!recs)
        goto fail;
    for (int i = 0; i < CHUNKS_IN_USE; i++) {
        chunks[i] = sl_calloc(1, sizeof *chunks[i]);
        if (!chunks[i])
            goto fail;
        sl_buf_init(&chunks[i]->arena);
        chunks[i]->next = p.free_list;
        p.free_list = chunks[i];
    }
    if (pthread_create(&parser, NULL, parse_feed, &p) != 0)
        goto fail;
    started = true;

    for (;;) {
        chunk *c = pop_full(&p);
        err = consume(&cm, c, name, recs);
        if (err == SLUICE_OK && c->last)
            err = commit(&cm);
        bool last = c->last;
        if (err == SLUICE_OK && c->err != SLUICE_OK) {
            err = sl_queue_fail(q, c->err, "%s", c->errmsg);
        }
        give_back(&p, c);
        if (last || err != SLUICE_OK)
            break;
    }

fail:
    if (err != SLUICE_OK) {
        sl_queue_rollback(q);
        if (err == SLUICE_ENOMEM && !started)
            sl_queue_fail(q, err, "%s: out of memory", name);
    }
    if (started) {
        pthread_mutex_lock(&p.lock);
        p.stop = true;
        pthread_cond_broadcast(&p.changed);
        pthread_mutex_unlock(&p.lock);
        pthread_join(parser, NULL);
    }
    for (int i = 0; i < CHUNKS_IN_USE; i++) {
        if (chunks[i])
            sl_buf_free(&chunks[i]->arena);
        sl_free(chunks[i]);
    }
    sl_free(recs);
    sl_feed_free(&p.feed);
    sl_record_scratch_free(&p.scratch);
    sl_guard_free(&p.guard);
    pthread_cond_destroy(&p.changed);
    pthread_mutex_destroy(&p.lock);
    return err;
}
