/*
 * Ingest: read feeds, validate each record, and upsert it into the queue
 * in batched transactions. Three stages on three threads: a parser thread
 * reads, parses and validates into chunks; a checker thread looks each
 * record's id and key up in what this ingest has seen (seen.c: duplicate
 * ids, keys two records name); the caller's thread upserts them and
 * reports rejections and warnings, in feed order. A bad record is
 * reported and counted and costs nothing else; only a read or database
 * failure stops the work. Memory is bounded by the few chunks in flight
 * and the page caches.
 */
#include <pthread.h>
#include <string.h>

#include "feed.h"
#include "ingest.h"
#include "seen.h"
#include "../run/guard.h"
#include "../run/policy.h"
#include "../queue/queue.h"
#include "../record/record.h"

#define DEFAULT_BATCH  20000
#define CHUNK_RECORDS  1024
#define CHUNK_BYTES    (1u << 20) /* hand a chunk over past this much text */
/* Enough that the parser runs on while the checker writes out what it
 * deferred (seen.c) and the caller while Redis takes a batch: with 16,
 * a core sat idle a tenth of a 1,000,000-record ingest into Redis; 64
 * were faster still, but past issue 2's 64 MiB. Some 200 KiB a chunk. */
#define CHUNKS_IN_USE  32

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

/* A text in a chunk's arena (a few MiB at most: CHUNK_BYTES, and one
 * record's or reason's texts past it). */
typedef struct {
    uint32_t off, len;
} span;

/* 72 bytes, laid out without holes: CHUNKS_IN_USE * CHUNK_RECORDS of
 * them are the larger half of what the chunks cost. */
typedef struct {
    uint64_t line;
    span id, url, key, origin, meta; /* a rejection's reason is in `id` */
    span warn[2];                    /* the checker's warnings */
    unsigned n_warn;
    bool rejected;           /* else a record */
    bool dup_id, shared_key; /* what the checker found */
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

/* Chunks handed from one stage to the next, in feed order. */
typedef struct {
    chunk *head, *tail;
} chunk_list;

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    chunk_list parsed;  /* the parser's, for the checker */
    chunk_list checked; /* the checker's, for the caller */
    chunk *free_list;
    bool stop; /* the consumer gave up: the others should too */
    /* The parser's own. */
    sl_feed feed;
    sl_record_scratch scratch;
    const sl_guard *guard;
    const char *name;
    /* The checker's own. */
    sl_seen *seen;
    bool strict;
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
push(pipeline *p, chunk_list *l, chunk *c)
{
    pthread_mutex_lock(&p->lock);
    c->next = NULL;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
}

/* The next chunk of `l`; NULL once the pipeline stops. */
static chunk *
pop(pipeline *p, chunk_list *l)
{
    pthread_mutex_lock(&p->lock);
    while (!l->head && !p->stop)
        pthread_cond_wait(&p->changed, &p->lock);
    chunk *c = p->stop ? NULL : l->head;
    if (c) {
        l->head = c->next;
        if (!l->head)
            l->tail = NULL;
    }
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

/* Copy a text into the chunk's arena, which has room for it already. */
static void
put_reserved(chunk *c, span *s, const char *text, size_t len)
{
    s->off = (uint32_t)c->arena.len;
    s->len = (uint32_t)len;
    if (len)
        memcpy(c->arena.data + c->arena.len, text, len);
    /* Terminated, so the queue may treat each text as a C string. */
    c->arena.len += len + 1;
    c->arena.data[c->arena.len - 1] = '\0';
    c->arena.data[c->arena.len] = '\0';
}

static int
put(chunk *c, span *s, const char *text, size_t len)
{
    if (sl_buf_reserve(&c->arena, len + 1))
        return -1;
    put_reserved(c, s, text, len);
    return 0;
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
    /* Room for all five texts at once (each is far below SIZE_MAX). */
    if (sl_buf_reserve(&c->arena, rec->id_len + rec->url_len +
                                      rec->key_len + rec->origin_len +
                                      (rec->meta ? rec->meta_len : 0) + 5))
        return -1;
    put_reserved(c, &it->id, rec->id, rec->id_len);
    put_reserved(c, &it->url, rec->url, rec->url_len);
    put_reserved(c, &it->key, rec->key, rec->key_len);
    put_reserved(c, &it->origin, rec->origin, rec->origin_len);
    if (rec->meta)
        put_reserved(c, &it->meta, rec->meta, rec->meta_len);
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
    sl_thread_name("sl-parse");
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
                                      ? sl_guard_check_origin(p->guard,
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
            push(p, &p->parsed, c);
            break;
        }
        if (c->n == CHUNK_RECORDS || c->arena.len >= CHUNK_BYTES) {
            push(p, &p->parsed, c);
            c = take_free(p);
        }
    }
    return NULL;
}

static const char *
text_at(const chunk *c, span s)
{
    return c->arena.data + s.off;
}

/* "line 4" in this input, "a.csv:4" in another. */
static void
where(char *dst, size_t size, const pipeline *p, const char *file,
      uint64_t line)
{
    if (strcmp(file, p->name) == 0)
        sl_fmt(dst, size, "line %llu", (unsigned long long)line);
    else
        sl_fmt(dst, size, "%s:%llu", file, (unsigned long long)line);
}

/* What the check of item `it` found, as its warnings or (strict) the
 * reason it is rejected. -1 when out of memory. */
static int
judge(const pipeline *p, chunk *c, chunk_item *it, const sl_seen_verdict *v)
{
    char shown[160], at[300], id_part[600] = "", key_part[900] = "";
    if (v->dup_id) {
        sl_quote(shown, sizeof shown, text_at(c, it->id), it->id.len, 120);
        where(at, sizeof at, p, v->id_file, v->id_line);
        sl_fmt(id_part, sizeof id_part, "id %s %s %s", shown,
               strncmp(at, "line ", 5) == 0 ? "also on" : "also at", at);
    }
    if (v->shared_key) {
        char owner[160];
        sl_quote(shown, sizeof shown, text_at(c, it->key), it->key.len, 120);
        sl_quote(owner, sizeof owner, v->key_id, strlen(v->key_id), 120);
        where(at, sizeof at, p, v->key_file, v->key_line);
        sl_fmt(key_part, sizeof key_part, "key %s also named by %s (id %s)",
               shown, at, owner);
    }
    it->dup_id = v->dup_id;
    it->shared_key = v->shared_key;
    if (p->strict) {
        char reason[1600];
        sl_fmt(reason, sizeof reason, "%s%s%s; rejected (--strict)", id_part,
               *id_part && *key_part ? "; " : "", key_part);
        it->rejected = true;
        return put(c, &it->id, reason, strlen(reason)) ? -1 : 0;
    }
    if (v->dup_id) {
        char warning[700];
        sl_fmt(warning, sizeof warning, "%s: the last wins", id_part);
        if (put(c, &it->warn[it->n_warn++], warning, strlen(warning)))
            return -1;
    }
    if (v->shared_key &&
        put(c, &it->warn[it->n_warn++], key_part, strlen(key_part)))
        return -1;
    return 0;
}

/* Check items[first..end) one by one, the records among them in order. */
static sluice_err
check_each(pipeline *p, chunk *c, size_t first, size_t end)
{
    sl_seen_verdict v;
    sluice_err err = SLUICE_OK;
    for (size_t i = first; i < end && err == SLUICE_OK; i++) {
        chunk_item *it = &c->items[i];
        if (it->rejected)
            continue;
        err = sl_seen_check(p->seen, text_at(c, it->id), it->id.len,
                            text_at(c, it->key), it->key.len, it->line,
                            p->strict, &v);
        if (err == SLUICE_OK && (v.dup_id || v.shared_key) &&
            judge(p, c, it, &v) != 0)
            err = SLUICE_ENOMEM;
    }
    return err;
}

/* Check every record of a chunk against what the ingest has seen: by
 * SL_SEEN_MANY at once while none repeats anything, else one by one. */
static sluice_err
check_chunk(pipeline *p, chunk *c)
{
    sl_seen_record many[SL_SEEN_MANY];
    size_t first = 0, n = 0;
    sluice_err err = sl_seen_begin(p->seen);
    for (size_t i = 0; i < c->n && err == SLUICE_OK; i++) {
        const chunk_item *it = &c->items[i];
        if (it->rejected)
            continue;
        many[n++] = (sl_seen_record){text_at(c, it->id), it->id.len,
                                     text_at(c, it->key), it->key.len,
                                     it->line};
        if (n < SL_SEEN_MANY)
            continue;
        bool clean;
        err = sl_seen_check_many(p->seen, many, &clean);
        if (err == SLUICE_OK && !clean)
            err = check_each(p, c, first, i + 1);
        first = i + 1;
        n = 0;
    }
    if (err == SLUICE_OK)
        err = check_each(p, c, first, c->n);
    if (err == SLUICE_OK)
        err = sl_seen_commit(p->seen);
    return err;
}

/* The checker thread: each parsed chunk checked, then handed on. */
static void *
check_feed(void *arg)
{
    pipeline *p = arg;
    sl_thread_name("sl-check");
    chunk *c;
    while ((c = pop(p, &p->parsed))) {
        bool last = c->last;
        sluice_err err = check_chunk(p, c);
        if (err != SLUICE_OK) {
            /* Nothing of this chunk goes in: the ingest stops here. */
            c->n = 0;
            c->last = last = true;
            c->err = err;
            if (err == SLUICE_ENOMEM)
                sl_fmt(c->errmsg, sizeof c->errmsg, "%s: out of memory",
                       p->name);
            else
                sl_fmt(c->errmsg, sizeof c->errmsg, "%s: %s", p->name,
                       sl_seen_errmsg(p->seen));
        }
        push(p, &p->checked, c);
        if (last)
            break;
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

/* Where the caller's thread is in its transactions: the batch being
 * made, and the one sent before it whose outcome is not read yet (a
 * queue that commits in two halves, sl_queue_commit_send: Redis writes
 * one batch while the next is made). */
typedef struct {
    sluice_queue *q;
    const sluice_ingest_opts *opts;
    sluice_ingest_stats *stats;    /* committed */
    sluice_ingest_stats batch[2];  /* upserted, not yet committed */
    int cur;                       /* batch[cur] is being made */
    bool sent;                     /* batch[!cur] was sent */
    uint64_t batch_size, in_batch;
} committer;

static void
committed(committer *cm, sluice_ingest_stats *batch)
{
    add_stats(cm->stats, batch);
    if (cm->opts->on_progress)
        cm->opts->on_progress(cm->opts->ctx, cm->stats);
}

/* The batch sent before: its outcome, and then its counts. */
static sluice_err
settle(committer *cm)
{
    if (!cm->sent)
        return SLUICE_OK;
    cm->sent = false;
    sluice_err err = sl_queue_commit_wait(cm->q);
    if (err == SLUICE_OK)
        committed(cm, &cm->batch[!cm->cur]);
    return err;
}

/* Send the batch being made, once the one before is settled; a queue
 * that commits whole has committed it on return. */
static sluice_err
commit(committer *cm)
{
    sluice_err err = settle(cm);
    if (err != SLUICE_OK || !cm->q->in_batch)
        return err;
    if ((err = sl_queue_commit_send(cm->q)) != SLUICE_OK)
        return err;
    cm->in_batch = 0;
    if (cm->q->commit_sent) {
        cm->sent = true;
        cm->cur = !cm->cur;
    } else {
        committed(cm, &cm->batch[cm->cur]);
    }
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
            err = sl_queue_upsert(cm->q, recs, take, sl_now_ms(),
                                  &cm->batch[cm->cur]);
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

/* Upsert a chunk's records and report its rejections and warnings, in
 * feed order. */
static sluice_err
consume(committer *cm, const chunk *c, const char *name, sl_record *recs)
{
    const sluice_ingest_opts *o = cm->opts;
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++) {
        const chunk_item *it = &c->items[i];
        cm->stats->duplicate_ids += it->dup_id;
        cm->stats->shared_keys += it->shared_key;
        if (it->rejected) {
            cm->stats->rejected++;
            if (o->on_reject)
                o->on_reject(o->ctx, name, it->line, text_at(c, it->id));
            continue;
        }
        for (unsigned w = 0; w < it->n_warn && o->on_warning; w++)
            o->on_warning(o->ctx, name, it->line, text_at(c, it->warn[w]));
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
            .first = !it->dup_id,
        };
    }
    return upsert(cm, recs, n);
}

sluice_err
sl_ingest_policy(sluice_queue *q, const sluice_ingest_opts *opts, sl_guard *g,
                 char *why, size_t why_size)
{
    sl_policy kept = {0}, policy = {0};
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
        goto done;
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

/* One input's records through the three stages into the queue. */
static sluice_err
ingest_one(committer *cm, const sluice_ingest_input *in, const sl_guard *g,
           sl_seen *seen)
{
    const sluice_ingest_opts *opts = cm->opts;
    sluice_queue *q = cm->q;
    chunk *chunks[CHUNKS_IN_USE] = {NULL};
    sl_record *recs = NULL;
    pipeline p;
    pthread_t parser, checker;
    bool parsing = false, checking = false;
    sluice_err err = SLUICE_ENOMEM;

    memset(&p, 0, sizeof p);
    p.name = in->name;
    p.guard = g;
    p.seen = seen;
    p.strict = opts->strict != 0;
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.changed, NULL);
    sl_record_scratch_init(&p.scratch);
    if (sl_feed_init(&p.feed, in->fd, opts->format) != SLUICE_OK ||
        sl_seen_input(seen, in->name) != SLUICE_OK)
        goto fail;
    sl_feed_opts csv = {opts->url_column, opts->id_column, opts->key_column,
                       opts->delimiter};
    sl_feed_set_opts(&p.feed, &csv);
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
    if (pthread_create(&checker, NULL, check_feed, &p) != 0)
        goto fail;
    checking = true;
    if (pthread_create(&parser, NULL, parse_feed, &p) != 0)
        goto fail;
    parsing = true;
    if (opts->on_input)
        opts->on_input(opts->ctx, in->name);

    for (;;) {
        chunk *c = pop(&p, &p.checked);
        err = consume(cm, c, in->name, recs);
        if (err == SLUICE_OK && c->last)
            err = commit(cm);
        if (err == SLUICE_OK && c->last)
            err = settle(cm);
        bool last = c->last;
        if (err == SLUICE_OK && c->err != SLUICE_OK)
            err = sl_queue_fail(q, c->err, "%s", c->errmsg);
        give_back(&p, c);
        if (last || err != SLUICE_OK)
            break;
    }

fail:
    if (err != SLUICE_OK) {
        sl_queue_rollback(q);
        /* A batch sent before counts if it went in; the error that
         * stopped the ingest is the one said. */
        char first[sizeof q->errmsg];
        sl_copy(first, sizeof first, q->errmsg);
        if (settle(cm) != SLUICE_OK)
            sl_copy(q->errmsg, sizeof q->errmsg, first);
        if (err == SLUICE_ENOMEM && !parsing)
            sl_queue_fail(q, err, "%s: out of memory", in->name);
    }
    pthread_mutex_lock(&p.lock);
    p.stop = true;
    pthread_cond_broadcast(&p.changed);
    pthread_mutex_unlock(&p.lock);
    if (parsing)
        pthread_join(parser, NULL);
    if (checking)
        pthread_join(checker, NULL);
    for (int i = 0; i < CHUNKS_IN_USE; i++) {
        if (chunks[i])
            sl_buf_free(&chunks[i]->arena);
        sl_free(chunks[i]);
    }
    sl_free(recs);
    sl_feed_free(&p.feed);
    sl_record_scratch_free(&p.scratch);
    pthread_cond_destroy(&p.changed);
    pthread_mutex_destroy(&p.lock);
    return err;
}

/* Options a caller can get wrong: SLUICE_EINVAL with the reason. */
static sluice_err
check_opts(sluice_queue *q, const sluice_ingest_opts *opts)
{
    char d = opts->delimiter;
    if (d == '"' || d == '\r' || d == '\n')
        return sl_queue_fail(q, SLUICE_EINVAL,
                             "--delimiter: a quote or a line break cannot "
                             "split fields");
    if ((opts->url_column && !*opts->url_column) ||
        (opts->id_column && !*opts->id_column) ||
        (opts->key_column && !*opts->key_column))
        return sl_queue_fail(q, SLUICE_EINVAL, "an empty column name");
    return SLUICE_OK;
}

sluice_err
sluice_ingest_fds(sluice_queue *q, const sluice_ingest_input *inputs,
                  size_t n_inputs, const sluice_ingest_opts *opts,
                  sluice_ingest_stats *stats)
{
    static const sluice_ingest_opts defaults = {0};
    sl_guard guard;
    sl_seen *seen = NULL;
    char why[512];

    if (!opts)
        opts = &defaults;
    memset(&guard, 0, sizeof guard);
    sluice_err err = check_opts(q, opts);
    if (err != SLUICE_OK)
        return err;
    err = sl_ingest_policy(q, opts, &guard, why, sizeof why);
    if (err != SLUICE_OK)
        return sl_queue_fail(q, err, "%s", why);
    err = sl_seen_open(&seen, why, sizeof why);
    if (err != SLUICE_OK) {
        sl_guard_free(&guard);
        return sl_queue_fail(q, err, "%s", why);
    }
    /* Upserts count into *stats only once their transaction commits;
     * the checker's seen is this feed's (sl_record.first). */
    sl_queue_feed_start(q);
    committer cm = {q, opts, stats, {{0}, {0}}, 0, false, 0, 0};
    cm.batch_size = opts->batch_size ? opts->batch_size : DEFAULT_BATCH;
    for (size_t i = 0; i < n_inputs && err == SLUICE_OK; i++)
        err = ingest_one(&cm, &inputs[i], &guard, seen);
    sl_seen_close(seen);
    sl_guard_free(&guard);
    return err;
}

sluice_err
sluice_ingest_fd(sluice_queue *q, int fd, const char *name,
                 const sluice_ingest_opts *opts, sluice_ingest_stats *stats)
{
    sluice_ingest_input in = {fd, name};
    return sluice_ingest_fds(q, &in, 1, opts, stats);
}
