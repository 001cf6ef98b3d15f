/*
 * The Redis queue backend (redis:// and unix://): records in hashes,
 * their states in sorted sets, every change one Lua script
 * (queue_redis_scripts.c), so it is atomic whatever else runs on the
 * Redis. docs/queue.md has the key layout, the clock rule and what AOF
 * gives. Any number of runners: each has a claim with a lease in the set
 * `runners`, and the slots are shared through slots/slots_redis.c.
 */
#include "queue_redis.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

/* Records an upsert script takes outside a batch; a batch's upserts go in
 * one script at commit, however many. */
#define UPSERT_CHUNK 1000
/* Records a page of `list` and `dlq list` reads. */
#define PAGE_RIDS 512
/* The runner key's lease and how often the runner renews it. */
#define RUNNER_TTL_MS   15000
#define RUNNER_RENEW_MS 5000

/* Arguments a record takes in the upsert script: id, url, key, meta,
 * origin and the fingerprint. */
#define REC_ARGS 6
/* A fingerprint: 96 bits of SHA-256 in hex. */
#define FP_HEX 24

/* A record buffered in a batch: offsets into the batch's text. */
typedef struct {
    size_t at[5], len[5];
    char fp[FP_HEX + 1];
} buffered_rec;

/* Where a batch's upserts report what they did. */
typedef struct {
    sluice_ingest_stats *counts;
    size_t n;
} buffered_call;

typedef struct {
    sl_redis conn;
    sl_redis_script scripts[RQ_COUNT_];
    char base[128];     /* "PREFIX{q}:" */
    char meta_key[136]; /* base + "meta" */
    /* Redis's clock minus this process's wall clock, measured at open:
     * every time stored is on Redis's clock (docs/queue.md). */
    int64_t clock_offset;
    /* A batch's upserts, sent at commit. */
    sl_buf text;
    buffered_rec *recs;
    size_t n_recs, cap_recs;
    buffered_call *calls;
    size_t n_calls, cap_calls;
    int64_t batch_now;
    /* Our claim in `runners` while `runner` holds; a thread renews it.
     * `alone`: no other runner was alive when we joined. */
    bool runner, alone;
    char runner_token[80];
    pthread_t renewer;
    pthread_mutex_t renew_mu;
    pthread_cond_t renew_cv;
    bool renew_stop, renewer_started;
} redis_queue;

static redis_queue *
state_of(sluice_queue *q)
{
    return q->state;
}

/* A failure of the connection, as the queue's error. */
static sluice_err
conn_fail(sluice_queue *q, sluice_err err)
{
    return sl_queue_fail(q, err, "%s", state_of(q)->conn.errmsg);
}

static int64_t
to_redis(const redis_queue *s, int64_t ms)
{
    return ms ? ms + s->clock_offset : 0;
}

static int64_t
from_redis(const redis_queue *s, int64_t ms)
{
    return ms ? ms - s->clock_offset : 0;
}

static sluice_err
eval(sluice_queue *q, int which, redisReply **out, int argc,
     const char **argv, const size_t *lens)
{
    redis_queue *s = state_of(q);
    sluice_err err = sl_redis_eval(&s->conn, &s->scripts[which], s->meta_key,
                                   out, argc, argv, lens);
    return err == SLUICE_OK ? SLUICE_OK : conn_fail(q, err);
}

/* A reply element's text, or NULL for nil. */
static const char *
el_str(const redisReply *r, size_t i)
{
    if (i >= r->elements)
        return NULL;
    const redisReply *e = r->element[i];
    return e->type == REDIS_REPLY_STRING ? e->str : NULL;
}

static int64_t
el_int(const redisReply *r, size_t i)
{
    if (i >= r->elements)
        return 0;
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    return e->type == REDIS_REPLY_STRING ? strtoll(e->str, NULL, 10) : 0;
}

static sluice_err
bad_reply(sluice_queue *q, redisReply *reply, const char *what)
{
    if (reply)
        freeReplyObject(reply);
    return sl_queue_fail(q, SLUICE_EDB, "%s: %s: unexpected reply from "
                                        "Redis",
                         state_of(q)->conn.addr.where, what);
}

/*
 * What the upsert compares: a digest of url, key and meta, so that a
 * record ingested again unchanged is told apart from one that changed
 * by one hash lookup. 96 bits: a changed record taken for an unchanged
 * one would need a SHA-256 collision in them.
 */
static void
fingerprint(const sl_record *r, char out[FP_HEX + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, r->url, r->url_len) == 1 &&
              EVP_DigestUpdate(ctx, "", 1) == 1 &&
              EVP_DigestUpdate(ctx, r->key, r->key_len) == 1 &&
              EVP_DigestUpdate(ctx, r->meta ? "\1" : "\2", 1) == 1 &&
              (!r->meta ||
               EVP_DigestUpdate(ctx, r->meta, r->meta_len) == 1) &&
              EVP_DigestFinal_ex(ctx, md, &md_len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        /* No digest: one that matches nothing stored, so the script
         * compares the fields themselves. */
        memset(out, '-', FP_HEX);
        out[FP_HEX] = '\0';
        return;
    }
    for (int i = 0; i < FP_HEX / 2; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[FP_HEX] = '\0';
}

/* ------------------------------------------------------------ opening */

/* Keys under the prefix with no sluice queue there: another program's. */
static sluice_err
prefix_in_use(sluice_queue *q, bool *used)
{
    redis_queue *s = state_of(q);
    char pattern[160];
    sl_fmt(pattern, sizeof pattern, "%s*", s->conn.addr.prefix);
    char cursor[32] = "0";
    *used = false;
    int rounds = 0;
    do {
        redisReply *reply;
        sluice_err err = sl_redis_cmdf(&s->conn, &reply,
                                       "SCAN %s MATCH %s COUNT 1000", cursor,
                                       pattern);
        if (err != SLUICE_OK)
            return conn_fail(q, err);
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            !el_str(reply, 0) ||
            reply->element[1]->type != REDIS_REPLY_ARRAY)
            return bad_reply(q, reply, "SCAN");
        sl_copy(cursor, sizeof cursor, el_str(reply, 0));
        *used = reply->element[1]->elements > 0;
        freeReplyObject(reply);
    } while (!*used && strcmp(cursor, "0") != 0 && ++rounds < 100000);
    return SLUICE_OK;
}

/* Check (or create) the meta hash: a sluice queue of a version we know. */
static sluice_err
check_schema(sluice_queue *q, const sluice_queue_opts *opts)
{
    redis_queue *s = state_of(q);
    const char *where = s->conn.addr.where;
    bool may_create = !(opts->flags & (SLUICE_QUEUE_READONLY |
                                       SLUICE_QUEUE_NOCREATE));
    bool used = false;
    sluice_err err;
    redisReply *reply;
    char version[16];
    sl_fmt(version, sizeof version, "%d", SL_REDIS_SCHEMA);
    for (int pass = 0; pass < 2; pass++) {
        const char *argv[] = {version, pass == 1 ? "1" : "0"};
        if ((err = eval(q, RQ_INIT, &reply, 2, argv, NULL)) != SLUICE_OK)
            return err;
        const char *what = reply->type == REDIS_REPLY_ARRAY
                               ? el_str(reply, 0)
                               : NULL;
        if (!what)
            return bad_reply(q, reply, "open");
        if (strcmp(what, "foreign") == 0) {
            sl_queue_fail(q, SLUICE_ENOTDB,
                          "%s: not a sluice queue (%.100s holds a %.20s "
                          "that is not sluice's)",
                          where, s->meta_key,
                          el_str(reply, 1) ? el_str(reply, 1) : "key");
            freeReplyObject(reply);
            return SLUICE_ENOTDB;
        }
        if (strcmp(what, "none") != 0) {
            long long v = el_str(reply, 1) ? atoll(el_str(reply, 1)) : 0;
            freeReplyObject(reply);
            if (v > SL_REDIS_SCHEMA || v < 1)
                return sl_queue_fail(
                    q, SLUICE_EDBVERSION,
                    "%s: queue schema version %lld %s (this sluice "
                    "understands %d)",
                    where, v,
                    v > SL_REDIS_SCHEMA ? "is newer than this sluice "
                                          "understands; upgrade sluice"
                                        : "is not one sluice wrote",
                    SL_REDIS_SCHEMA);
            return SLUICE_OK;
        }
        freeReplyObject(reply);
        if (pass == 1)
            break;
        if (!may_create)
            return sl_queue_fail(q, SLUICE_ENOENT,
                                 "%s: no sluice queue with prefix %s "
                                 "(sluice ingest creates it)",
                                 where, s->conn.addr.prefix);
        if ((err = prefix_in_use(q, &used)) != SLUICE_OK)
            return err;
        if (used)
            return sl_queue_fail(q, SLUICE_ENOTDB,
                                 "%s: not a sluice queue (keys under the "
                                 "prefix %s are another program's; choose "
                                 "?prefix=NAME)",
                                 where, s->conn.addr.prefix);
    }
    return sl_queue_fail(q, SLUICE_EDB, "%s: could not create the queue",
                         where);
}

static sluice_err
measure_clock(sluice_queue *q)
{
    redis_queue *s = state_of(q);
    int64_t before = sl_now_ms(), redis_ms;
    sluice_err err = sl_redis_time_ms(&s->conn, &redis_ms);
    if (err != SLUICE_OK)
        return conn_fail(q, err);
    int64_t after = sl_now_ms();
    s->clock_offset = redis_ms - (before + after) / 2;
    return SLUICE_OK;
}

static sluice_err
redis_open(sluice_queue *q, const char *location,
           const sluice_queue_opts *opts)
{
    redis_queue *s = state_of(q);
    sl_buf_init(&s->text);
    pthread_mutex_init(&s->renew_mu, NULL);
    pthread_cond_init(&s->renew_cv, NULL);
    memcpy(s->scripts, sl_rq_scripts, sizeof s->scripts);
    sluice_err err = sl_redis_open(&s->conn, location);
    if (err != SLUICE_OK)
        return conn_fail(q, err);
    sl_fmt(s->base, sizeof s->base, "%s{q}:", s->conn.addr.prefix);
    sl_fmt(s->meta_key, sizeof s->meta_key, "%smeta", s->base);
    if ((err = check_schema(q, opts)) != SLUICE_OK)
        return err;
    return measure_clock(q);
}

static void
stop_renewer(redis_queue *s)
{
    if (!s->renewer_started)
        return;
    pthread_mutex_lock(&s->renew_mu);
    s->renew_stop = true;
    pthread_cond_signal(&s->renew_cv);
    pthread_mutex_unlock(&s->renew_mu);
    pthread_join(s->renewer, NULL);
    s->renewer_started = false;
}

static void
redis_close(sluice_queue *q)
{
    redis_queue *s = state_of(q);
    stop_renewer(s);
    if (s->runner && s->conn.ctx) {
        redisReply *reply = NULL;
        const char *argv[] = {s->runner_token};
        if (sl_redis_eval(&s->conn, &s->scripts[RQ_RUNNER_DROP], s->meta_key,
                          &reply, 1, argv, NULL) == SLUICE_OK)
            freeReplyObject(reply);
    }
    sl_redis_close(&s->conn);
    sl_buf_free(&s->text);
    sl_free(s->recs);
    sl_free(s->calls);
    pthread_mutex_destroy(&s->renew_mu);
    pthread_cond_destroy(&s->renew_cv);
}

/* ------------------------------------------------------------ upsert */

static void
tally(const char *letters, size_t n, sluice_ingest_stats *counts)
{
    for (size_t i = 0; i < n; i++) {
        if (letters[i] == 'a')
            counts->added++;
        else if (letters[i] == 'u')
            counts->updated++;
        else
            counts->unchanged++;
    }
}

/* One script call for args (now, then five a record); the outcome
 * letters into *reply. */
static sluice_err
upsert_call(sluice_queue *q, const char **argv, const size_t *lens,
            size_t n, redisReply **reply)
{
    sluice_err err = eval(q, RQ_UPSERT, reply, (int)(1 + REC_ARGS * n), argv,
                          lens);
    if (err != SLUICE_OK)
        return err;
    if ((*reply)->type != REDIS_REPLY_STRING || (*reply)->len != n) {
        bad_reply(q, *reply, "upsert");
        *reply = NULL;
        return SLUICE_EDB;
    }
    return SLUICE_OK;
}

static sluice_err
alloc_args(sluice_queue *q, size_t n, const char ***argv, size_t **lens)
{
    *argv = sl_malloc((1 + REC_ARGS * n) * sizeof **argv);
    *lens = sl_malloc((1 + REC_ARGS * n) * sizeof **lens);
    if (!*argv || !*lens) {
        sl_free(*argv);
        sl_free(*lens);
        return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    }
    return SLUICE_OK;
}

static sluice_err
upsert_now(sluice_queue *q, const sl_record *recs, size_t n, int64_t now_ms,
           sluice_ingest_stats *counts)
{
    redis_queue *s = state_of(q);
    const char **argv;
    size_t *lens;
    char now[24];
    sl_fmt(now, sizeof now, "%" PRId64, to_redis(s, now_ms));
    char(*fps)[FP_HEX + 1] = sl_malloc(SL_MIN(n, UPSERT_CHUNK) * sizeof *fps);
    if (!fps)
        return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    sluice_err err = alloc_args(q, SL_MIN(n, UPSERT_CHUNK), &argv, &lens);
    if (err != SLUICE_OK) {
        sl_free(fps);
        return err;
    }
    argv[0] = now;
    lens[0] = strlen(now);
    while (n > 0 && err == SLUICE_OK) {
        size_t take = SL_MIN(n, UPSERT_CHUNK);
        for (size_t i = 0; i < take; i++) {
            const sl_record *r = &recs[i];
            fingerprint(r, fps[i]);
            const char *v[REC_ARGS] = {r->id,  r->url,
                                       r->key, r->meta ? r->meta : "",
                                       r->origin, fps[i]};
            size_t l[REC_ARGS] = {r->id_len,  r->url_len,
                                  r->key_len, r->meta ? r->meta_len : 0,
                                  r->origin_len, FP_HEX};
            memcpy(&argv[1 + REC_ARGS * i], v, sizeof v);
            memcpy(&lens[1 + REC_ARGS * i], l, sizeof l);
        }
        redisReply *reply;
        err = upsert_call(q, argv, lens, take, &reply);
        if (err == SLUICE_OK) {
            tally(reply->str, take, counts);
            freeReplyObject(reply);
        }
        recs += take;
        n -= take;
    }
    sl_free(argv);
    sl_free(lens);
    sl_free(fps);
    return err;
}

/* Inside a batch: copy the records; they go to Redis at commit. */
static sluice_err
upsert_buffer(sluice_queue *q, const sl_record *recs, size_t n,
              int64_t now_ms, sluice_ingest_stats *counts)
{
    redis_queue *s = state_of(q);
    if (s->n_recs + n > s->cap_recs) {
        size_t cap = SL_MAX(s->cap_recs * 2, s->n_recs + n);
        buffered_rec *grown = sl_realloc(s->recs, cap * sizeof *grown);
        if (!grown)
            return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
        s->recs = grown;
        s->cap_recs = cap;
    }
    if (s->n_calls == s->cap_calls) {
        size_t cap = SL_MAX(s->cap_calls * 2, 16);
        buffered_call *grown = sl_realloc(s->calls, cap * sizeof *grown);
        if (!grown)
            return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
        s->calls = grown;
        s->cap_calls = cap;
    }
    for (size_t i = 0; i < n; i++) {
        const sl_record *r = &recs[i];
        const char *v[5] = {r->id, r->url, r->key, r->meta, r->origin};
        size_t l[5] = {r->id_len, r->url_len, r->key_len,
                       r->meta ? r->meta_len : 0, r->origin_len};
        buffered_rec *b = &s->recs[s->n_recs + i];
        fingerprint(r, b->fp);
        for (int f = 0; f < 5; f++) {
            b->at[f] = s->text.len;
            b->len[f] = l[f];
            if (l[f] && sl_buf_append(&s->text, v[f], l[f]) != 0)
                return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
        }
    }
    s->n_recs += n;
    s->calls[s->n_calls++] = (buffered_call){counts, n};
    s->batch_now = now_ms;
    return SLUICE_OK;
}

static void
forget_batch(redis_queue *s)
{
    sl_buf_clear(&s->text);
    s->n_recs = s->n_calls = 0;
}

static sluice_err
redis_upsert(sluice_queue *q, const sl_record *recs, size_t n,
             int64_t now_ms, sluice_ingest_stats *counts)
{
    return q->in_batch ? upsert_buffer(q, recs, n, now_ms, counts)
                       : upsert_now(q, recs, n, now_ms, counts);
}

static sluice_err
redis_begin(sluice_queue *q)
{
    forget_batch(state_of(q));
    return SLUICE_OK;
}

/* The batch's upserts in one script call: all of them or none. */
static sluice_err
redis_commit(sluice_queue *q)
{
    redis_queue *s = state_of(q);
    if (s->n_recs == 0)
        return SLUICE_OK;
    const char **argv;
    size_t *lens;
    sluice_err err = alloc_args(q, s->n_recs, &argv, &lens);
    if (err != SLUICE_OK)
        return err;
    char now[24];
    sl_fmt(now, sizeof now, "%" PRId64, to_redis(s, s->batch_now));
    argv[0] = now;
    lens[0] = strlen(now);
    for (size_t i = 0; i < s->n_recs; i++) {
        const char **a = &argv[1 + REC_ARGS * i];
        size_t *l = &lens[1 + REC_ARGS * i];
        for (int f = 0; f < 5; f++) {
            a[f] = s->text.data ? s->text.data + s->recs[i].at[f] : "";
            l[f] = s->recs[i].len[f];
        }
        a[5] = s->recs[i].fp;
        l[5] = FP_HEX;
    }
    redisReply *reply;
    err = upsert_call(q, argv, lens, s->n_recs, &reply);
    sl_free(argv);
    sl_free(lens);
    if (err != SLUICE_OK)
        return err;
    const char *letters = reply->str;
    for (size_t c = 0; c < s->n_calls; c++) {
        tally(letters, s->calls[c].n, s->calls[c].counts);
        letters += s->calls[c].n;
    }
    freeReplyObject(reply);
    forget_batch(s);
    return SLUICE_OK;
}

static sluice_err
redis_rollback(sluice_queue *q)
{
    forget_batch(state_of(q));
    return SLUICE_OK;
}

/* ------------------------------------------------------------ leases */

/* A lease from ten reply fields at `at`: one allocation for its strings. */
static int
lease_fill(const redis_queue *s, sl_lease *l, const redisReply *r, size_t at)
{
    const char *v[5];
    size_t lens[5], total = 0;
    static const int cols[5] = {2, 3, 4, 5, 6}; /* id url key origin meta */
    for (int i = 0; i < 5; i++) {
        v[i] = el_str(r, at + (size_t)cols[i]);
        if (!v[i])
            return -1;
        lens[i] = strlen(v[i]);
        total += lens[i] + 1;
    }
    char *block = sl_malloc(total);
    if (!block)
        return -1;
    char **dst[5] = {&l->id, &l->url, &l->key, &l->origin, &l->meta};
    for (int i = 0; i < 5; i++) {
        memcpy(block, v[i], lens[i] + 1);
        *dst[i] = block;
        block += lens[i] + 1;
    }
    if (!*l->meta)
        l->meta = NULL;
    l->ref[0] = (uint64_t)el_int(r, at);
    l->token = (uint64_t)el_int(r, at + 1);
    l->attempts = (unsigned)el_int(r, at + 7);
    l->first_attempt_ms = from_redis(s, el_int(r, at + 8));
    l->was_retrying = el_int(r, at + 9) == SL_STATE_RETRYING;
    return 0;
}

static sluice_err release_one(sluice_queue *q, uint64_t rid, uint64_t token,
                              int64_t now_ms);

static sluice_err
redis_lease(sluice_queue *q, const sl_lease_req *req, sl_lease *out,
            size_t *n_out)
{
    redis_queue *s = state_of(q);
    size_t argc = 4 + req->n_skip;
    const char **argv = sl_malloc(argc * sizeof *argv);
    *n_out = 0;
    if (!argv)
        return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    char now[24], exp[24], max[24], n_skip[24];
    sl_fmt(now, sizeof now, "%" PRId64, to_redis(s, req->now_ms));
    sl_fmt(exp, sizeof exp, "%" PRId64,
           to_redis(s, req->now_ms + req->lease_ms));
    sl_fmt(max, sizeof max, "%zu", req->max);
    sl_fmt(n_skip, sizeof n_skip, "%zu", req->n_skip);
    argv[0] = now;
    argv[1] = exp;
    argv[2] = max;
    argv[3] = n_skip;
    for (size_t i = 0; i < req->n_skip; i++)
        argv[4 + i] = req->skip_origins[i];
    redisReply *reply;
    sluice_err err = eval(q, RQ_LEASE, &reply, (int)argc, argv, NULL);
    sl_free(argv);
    if (err != SLUICE_OK)
        return err;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 10 != 0 ||
        reply->elements / 10 > req->max)
        return bad_reply(q, reply, "lease");
    size_t n = reply->elements / 10, filled = 0;
    for (; filled < n; filled++)
        if (lease_fill(s, &out[filled], reply, filled * 10) != 0)
            break;
    if (filled < n) {
        /* Give every lease back: none was started. */
        for (size_t i = 0; i < n; i++)
            release_one(q, (uint64_t)el_int(reply, i * 10),
                        (uint64_t)el_int(reply, i * 10 + 1), req->now_ms);
        for (size_t i = 0; i < filled; i++)
            sl_lease_clear(&out[i]);
        freeReplyObject(reply);
        return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    }
    freeReplyObject(reply);
    *n_out = n;
    return SLUICE_OK;
}

/* Run a mark script; 0 back means the lease is no longer held. */
static sluice_err
mark(sluice_queue *q, int which, const sl_lease *l, const char *what,
     int argc, const char **argv)
{
    redisReply *reply;
    sluice_err err = eval(q, which, &reply, argc, argv, NULL);
    if (err != SLUICE_OK)
        return err;
    if (reply->type != REDIS_REPLY_INTEGER)
        return bad_reply(q, reply, what);
    long long hit = reply->integer;
    freeReplyObject(reply);
    if (hit == 0)
        return sl_queue_fail(q, SLUICE_ENOTFOUND,
                             "%s: lease on \"%.200s\" is no longer held",
                             what, l && l->id ? l->id : "?");
    return SLUICE_OK;
}

typedef struct {
    char rid[24], token[24], time[24], status[16];
} lease_args;

static void
lease_args_of(const redis_queue *s, lease_args *a, uint64_t rid,
              uint64_t token, int64_t ms)
{
    sl_fmt(a->rid, sizeof a->rid, "%" PRIu64, rid);
    sl_fmt(a->token, sizeof a->token, "%" PRIu64, token);
    sl_fmt(a->time, sizeof a->time, "%" PRId64, to_redis(s, ms));
    a->status[0] = '\0';
}

static sluice_err
redis_complete(sluice_queue *q, const sl_lease *l, const sl_object_info *obj,
               int64_t now_ms)
{
    lease_args a;
    char size[24];
    lease_args_of(state_of(q), &a, l->ref[0], l->token, now_ms);
    sl_fmt(size, sizeof size, "%" PRId64, obj->size);
    const char *argv[] = {a.rid,
                          a.token,
                          a.time,
                          size,
                          obj->sha256_hex ? obj->sha256_hex : "",
                          obj->content_type ? obj->content_type : "",
                          obj->etag ? obj->etag : ""};
    return mark(q, RQ_COMPLETE, l, "complete", 7, argv);
}

static sluice_err
redis_retry(sluice_queue *q, const sl_lease *l, int64_t due_ms,
            const sl_failure *why, bool counts_attempt)
{
    lease_args a;
    lease_args_of(state_of(q), &a, l->ref[0], l->token, due_ms);
    if (why->http_status)
        sl_fmt(a.status, sizeof a.status, "%d", why->http_status);
    const char *argv[] = {a.rid,
                          a.token,
                          a.time,
                          counts_attempt ? "1" : "0",
                          sl_error_class_name(why->error_class),
                          why->message ? why->message : "",
                          a.status};
    return mark(q, RQ_RETRY, l, "retry", 7, argv);
}

static sluice_err
redis_dead(sluice_queue *q, const sl_lease *l, const sl_failure *why,
           int64_t now_ms)
{
    lease_args a;
    lease_args_of(state_of(q), &a, l->ref[0], l->token, now_ms);
    if (why->http_status)
        sl_fmt(a.status, sizeof a.status, "%d", why->http_status);
    const char *argv[] = {a.rid,
                          a.token,
                          a.time,
                          sl_error_class_name(why->error_class),
                          why->message ? why->message : "",
                          a.status};
    return mark(q, RQ_DEAD, l, "dead", 6, argv);
}

static sluice_err
release_one(sluice_queue *q, uint64_t rid, uint64_t token, int64_t now_ms)
{
    lease_args a;
    lease_args_of(state_of(q), &a, rid, token, now_ms);
    const char *argv[] = {a.rid, a.token, a.time};
    return mark(q, RQ_RELEASE, NULL, "release", 3, argv);
}

static sluice_err
redis_release(sluice_queue *q, const sl_lease *l, int64_t now_ms)
{
    lease_args a;
    lease_args_of(state_of(q), &a, l->ref[0], l->token, now_ms);
    const char *argv[] = {a.rid, a.token, a.time};
    return mark(q, RQ_RELEASE, l, "release", 3, argv);
}

static sluice_err
redis_renew(sluice_queue *q, const sl_lease *leases, size_t n,
            int64_t until_ms)
{
    redis_queue *s = state_of(q);
    size_t argc = 1 + 2 * n;
    const char **argv = sl_malloc(argc * sizeof *argv);
    char(*nums)[24] = sl_malloc(argc * sizeof *nums);
    sluice_err err;
    if (!argv || !nums) {
        err = sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
        goto done;
    }
    sl_fmt(nums[0], sizeof nums[0], "%" PRId64, to_redis(s, until_ms));
    argv[0] = nums[0];
    for (size_t i = 0; i < n; i++) {
        sl_fmt(nums[1 + 2 * i], sizeof nums[0], "%" PRIu64,
               leases[i].ref[0]);
        sl_fmt(nums[2 + 2 * i], sizeof nums[0], "%" PRIu64, leases[i].token);
        argv[1 + 2 * i] = nums[1 + 2 * i];
        argv[2 + 2 * i] = nums[2 + 2 * i];
    }
    redisReply *reply;
    err = eval(q, RQ_RENEW, &reply, (int)argc, argv, NULL);
    if (err == SLUICE_OK)
        freeReplyObject(reply);
done:
    sl_free(argv);
    sl_free(nums);
    return err;
}

/* ------------------------------------------------------------ the runner */

/* Renews the runner key every RUNNER_RENEW_MS on a connection of its own,
 * so a run that is busy, or idle under --follow, keeps it; a process that
 * dies stops renewing, and the key lapses RUNNER_TTL_MS later. */
static void *
renewer_main(void *arg)
{
    redis_queue *s = arg;
    sl_redis conn;
    sl_redis_script script = sl_rq_scripts[RQ_RUNNER_RENEW];
    char location[512];
    memset(&conn, 0, sizeof conn);
    /* The same address, parsed again: a location of our own. */
    if (s->conn.addr.path)
        sl_fmt(location, sizeof location, "unix://%s?db=%d", s->conn.addr.path,
               s->conn.addr.db);
    else
        sl_fmt(location, sizeof location, "redis://%s:%d/%d",
               s->conn.addr.host, s->conn.addr.port, s->conn.addr.db);
    bool open = sl_redis_parse(location, &conn.addr, conn.errmsg,
                               sizeof conn.errmsg) == SLUICE_OK;
    if (open) {
        conn.addr.timeout_ms = s->conn.addr.timeout_ms;
        sl_free(conn.addr.user);
        sl_free(conn.addr.password);
        conn.addr.user = s->conn.addr.user ? sl_strdup(s->conn.addr.user)
                                           : NULL;
        conn.addr.password = s->conn.addr.password
                                 ? sl_strdup(s->conn.addr.password)
                                 : NULL;
    }
    char ttl[16];
    sl_fmt(ttl, sizeof ttl, "%d", RUNNER_TTL_MS);
    pthread_mutex_lock(&s->renew_mu);
    while (!s->renew_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += RUNNER_RENEW_MS / 1000;
        pthread_cond_timedwait(&s->renew_cv, &s->renew_mu, &until);
        if (s->renew_stop || !open)
            continue;
        pthread_mutex_unlock(&s->renew_mu);
        redisReply *reply = NULL;
        const char *argv[] = {s->runner_token, ttl};
        /* A failure is retried next round; the key outlives two. */
        if (sl_redis_eval(&conn, &script, s->meta_key, &reply, 2, argv,
                          NULL) == SLUICE_OK)
            freeReplyObject(reply);
        pthread_mutex_lock(&s->renew_mu);
    }
    pthread_mutex_unlock(&s->renew_mu);
    sl_redis_close(&conn);
    return NULL;
}

static sluice_err
redis_acquire_runner(sluice_queue *q)
{
    redis_queue *s = state_of(q);
    if (s->runner)
        return SLUICE_OK;
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    sl_fmt(s->runner_token, sizeof s->runner_token, "%.40s:%ld:%" PRId64,
           host, (long)getpid(), sl_mono_ms());
    char ttl[16];
    sl_fmt(ttl, sizeof ttl, "%d", RUNNER_TTL_MS);
    const char *argv[] = {s->runner_token, ttl};
    redisReply *reply;
    sluice_err err = eval(q, RQ_RUNNER_JOIN, &reply, 2, argv, NULL);
    if (err != SLUICE_OK)
        return err;
    if (reply->type != REDIS_REPLY_INTEGER)
        return bad_reply(q, reply, "join");
    /* Several runners share the queue (and its slots); only one that
     * found no other alive may put in-flight records back (recover). */
    s->alone = reply->integer == 0;
    freeReplyObject(reply);
    s->runner = true;
    s->renew_stop = false;
    if (pthread_create(&s->renewer, NULL, renewer_main, s) == 0)
        s->renewer_started = true;
    return SLUICE_OK;
}

static sluice_err
redis_runner_alive(sluice_queue *q, bool *alive)
{
    redisReply *reply;
    *alive = state_of(q)->runner;
    if (*alive)
        return SLUICE_OK;
    sluice_err err = eval(q, RQ_RUNNER_COUNT, &reply, 0, NULL, NULL);
    if (err != SLUICE_OK)
        return err;
    *alive = reply->type == REDIS_REPLY_INTEGER && reply->integer > 0;
    freeReplyObject(reply);
    return SLUICE_OK;
}

static sluice_err
redis_recover(sluice_queue *q, int64_t now_ms, uint64_t *recovered)
{
    char now[24];
    /* Other runners' records in flight are theirs: they come back to
     * everyone when their leases expire. */
    *recovered = 0;
    if (!state_of(q)->alone)
        return SLUICE_OK;
    sl_fmt(now, sizeof now, "%" PRId64, to_redis(state_of(q), now_ms));
    const char *argv[] = {now};
    redisReply *reply;
    sluice_err err = eval(q, RQ_RECOVER, &reply, 1, argv, NULL);
    if (err != SLUICE_OK)
        return err;
    if (reply->type != REDIS_REPLY_INTEGER)
        return bad_reply(q, reply, "recover");
    *recovered = (uint64_t)reply->integer;
    freeReplyObject(reply);
    return SLUICE_OK;
}

/* ------------------------------------------------------------ reading */

static sluice_err
redis_counts(sluice_queue *q, int64_t now_ms, sluice_counts *out)
{
    redis_queue *s = state_of(q);
    redisReply *reply;
    sluice_err err = eval(q, RQ_COUNTS, &reply, 0, NULL, NULL);
    if (err != SLUICE_OK)
        return err;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 6)
        return bad_reply(q, reply, "count");
    uint64_t *dst[5] = {&out->pending, &out->in_flight, &out->retrying,
                        &out->done, &out->dead};
    for (size_t i = 0; i < 5; i++) {
        *dst[i] = (uint64_t)el_int(reply, i);
        out->total += *dst[i];
    }
    const char *queued = el_str(reply, 5);
    if (queued && *queued)
        out->oldest_pending_age =
            (double)(to_redis(s, now_ms) - strtoll(queued, NULL, 10)) /
            1000.0;
    freeReplyObject(reply);
    return SLUICE_OK;
}

static sluice_err
redis_next_due(sluice_queue *q, int64_t *due_ms, bool *any)
{
    redis_queue *s = state_of(q);
    redisReply *reply;
    sluice_err err = sl_redis_cmdf(&s->conn, &reply,
                                   "ZRANGE %sretry 0 0 WITHSCORES", s->base);
    if (err != SLUICE_OK)
        return conn_fail(q, err);
    if (reply->type != REDIS_REPLY_ARRAY)
        return bad_reply(q, reply, "next due");
    if (reply->elements == 2) {
        *any = true;
        *due_ms = from_redis(s, (int64_t)strtod(el_str(reply, 1)
                                                    ? el_str(reply, 1)
                                                    : "0",
                                                NULL));
    }
    freeReplyObject(reply);
    return SLUICE_OK;
}

static char *
dup_or_null(const char *s)
{
    return s ? sl_strdup(s) : NULL;
}

static sluice_err
redis_get(sluice_queue *q, const char *id, sl_record_info *out)
{
    redis_queue *s = state_of(q);
    const char *argv[] = {id};
    redisReply *reply;
    sluice_err err = eval(q, RQ_GET, &reply, 1, argv, NULL);
    if (err != SLUICE_OK)
        return err;
    if (reply->type == REDIS_REPLY_NIL) {
        freeReplyObject(reply);
        return sl_queue_fail(q, SLUICE_ENOTFOUND, "no record with id %.200s",
                             id);
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != RF_COUNT_)
        return bad_reply(q, reply, "get");
    out->state = (sl_state)el_int(reply, RF_STATE);
    out->id = dup_or_null(el_str(reply, RF_ID));
    out->url = dup_or_null(el_str(reply, RF_URL));
    out->key = dup_or_null(el_str(reply, RF_KEY));
    out->meta = dup_or_null(el_str(reply, RF_META));
    out->origin = dup_or_null(el_str(reply, RF_ORIGIN));
    out->attempts = (unsigned)el_int(reply, RF_ATTEMPTS);
    out->throttles = (unsigned)el_int(reply, RF_THROTTLES);
    out->next_at_ms = from_redis(s, el_int(reply, RF_NEXT_AT));
    out->error_class = dup_or_null(el_str(reply, RF_ERROR_CLASS));
    out->message = dup_or_null(el_str(reply, RF_MESSAGE));
    out->http_status = (int)el_int(reply, RF_HTTP_STATUS);
    out->size = el_int(reply, RF_SIZE);
    out->sha256_hex = dup_or_null(el_str(reply, RF_SHA256));
    out->content_type = dup_or_null(el_str(reply, RF_CTYPE));
    out->etag = dup_or_null(el_str(reply, RF_ETAG));
    freeReplyObject(reply);
    if (!out->id || !out->url || !out->key) {
        sl_record_info_clear(out);
        return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    }
    return SLUICE_OK;
}

/* A listed record from the fields at `at`, as sqlite_list hands it out. */
static sluice_record
record_of(const redis_queue *s, const redisReply *r, size_t at)
{
    sluice_record rec = {
        .id = el_str(r, at + RF_ID),
        .url = el_str(r, at + RF_URL),
        .key = el_str(r, at + RF_KEY),
        .meta = el_str(r, at + RF_META),
        .state = (sluice_state)el_int(r, at + RF_STATE),
        .attempts = (unsigned)el_int(r, at + RF_ATTEMPTS),
        .size = el_str(r, at + RF_SIZE) ? el_int(r, at + RF_SIZE) : -1,
        .sha256 = el_str(r, at + RF_SHA256),
        .content_type = el_str(r, at + RF_CTYPE),
        .etag = el_str(r, at + RF_ETAG),
        .error_class = el_str(r, at + RF_ERROR_CLASS),
        .message = el_str(r, at + RF_MESSAGE),
        .http_status = (int)el_int(r, at + RF_HTTP_STATUS),
        .finished_at = from_redis(s, el_int(r, at + RF_FINISHED_AT)),
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

static sluice_err
redis_list(sluice_queue *q, int state, const char *id, sluice_record_fn *fn,
           void *ctx)
{
    redis_queue *s = state_of(q);
    redisReply *reply;
    sluice_err err;
    if (id) {
        const char *argv[] = {id};
        if ((err = eval(q, RQ_GET, &reply, 1, argv, NULL)) != SLUICE_OK)
            return err;
        if (reply->type == REDIS_REPLY_NIL) {
            freeReplyObject(reply);
            return sl_queue_fail(q, SLUICE_ENOTFOUND,
                                 "no record with id %.200s", id);
        }
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != RF_COUNT_)
            return bad_reply(q, reply, "list");
        sluice_record rec = record_of(s, reply, 0);
        fn(ctx, &rec);
        freeReplyObject(reply);
        return SLUICE_OK;
    }
    /* Feed order is rid order, 1 to the highest: records are never
     * removed. A page at a time, so memory stays flat. */
    char start[24], count[24], want[24];
    sl_fmt(count, sizeof count, "%d", PAGE_RIDS);
    sl_fmt(want, sizeof want, "%d", state < 0 ? -1 : state);
    int64_t next = 1, top = 1;
    while (next <= top) {
        sl_fmt(start, sizeof start, "%" PRId64, next);
        const char *argv[] = {start, count, want};
        if ((err = eval(q, RQ_PAGE, &reply, 3, argv, NULL)) != SLUICE_OK)
            return err;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
            (reply->elements - 2) % RF_COUNT_ != 0)
            return bad_reply(q, reply, "list");
        next = el_int(reply, 0);
        top = el_int(reply, 1);
        for (size_t at = 2; at < reply->elements; at += RF_COUNT_) {
            sluice_record rec = record_of(s, reply, at);
            if (fn(ctx, &rec) != 0) {
                freeReplyObject(reply);
                return SLUICE_OK;
            }
        }
        freeReplyObject(reply);
    }
    return SLUICE_OK;
}

static sluice_err
redis_dlq_list(sluice_queue *q, const sluice_dlq_filter *filter,
               sluice_dead_fn *fn, void *ctx)
{
    redis_queue *s = state_of(q);
    char off[24], count[24];
    sl_fmt(count, sizeof count, "%d", PAGE_RIDS);
    for (int64_t at = 0;; at += PAGE_RIDS) {
        sl_fmt(off, sizeof off, "%" PRId64, at);
        const char *argv[] = {off, count,
                              filter->error_class ? filter->error_class : ""};
        redisReply *reply;
        sluice_err err = eval(q, RQ_DLQ_PAGE, &reply, 3, argv, NULL);
        if (err != SLUICE_OK)
            return err;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
            (reply->elements - 1) % RF_COUNT_ != 0)
            return bad_reply(q, reply, "dlq list");
        int64_t read = el_int(reply, 0);
        for (size_t i = 1; i < reply->elements; i += RF_COUNT_) {
            const char *cls = el_str(reply, i + RF_ERROR_CLASS);
            const char *msg = el_str(reply, i + RF_MESSAGE);
            sluice_dead_record rec = {
                .id = el_str(reply, i + RF_ID),
                .url = el_str(reply, i + RF_URL),
                .key = el_str(reply, i + RF_KEY),
                .meta = el_str(reply, i + RF_META),
                .error_class = cls ? cls : "unknown",
                .message = msg ? msg : "",
                .http_status = (int)el_int(reply, i + RF_HTTP_STATUS),
                .attempts = (unsigned)el_int(reply, i + RF_ATTEMPTS),
                .failed_at = from_redis(s,
                                        el_int(reply, i + RF_FINISHED_AT)),
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

static sluice_err
redis_replay(sluice_queue *q, const char *id,
             const sluice_dlq_filter *filter, int64_t now_ms,
             uint64_t *replayed)
{
    char now[24];
    sl_fmt(now, sizeof now, "%" PRId64, to_redis(state_of(q), now_ms));
    const char *argv[] = {id ? id : "",
                          filter->error_class ? filter->error_class : "", now};
    redisReply *reply;
    sluice_err err = eval(q, RQ_REPLAY, &reply, 3, argv, NULL);
    if (err != SLUICE_OK)
        return err;
    if (reply->type != REDIS_REPLY_INTEGER)
        return bad_reply(q, reply, "replay");
    *replayed = (uint64_t)reply->integer;
    freeReplyObject(reply);
    return SLUICE_OK;
}

/* ------------------------------------------------------------ slots */

/* A slot row is kept in the hash `slots` under its origin as "TOKEN HELD
 * IN_FLIGHT BOOT_ID UNTIL_BOOT UNTIL_WALL HOLD PAUSED_BOOT PAUSED_WALL
 * WRITTEN_WALL WRITTEN_BOOT NEXT_START CONC RATE ADVISED ADVISED_UNTIL":
 * the durable slot service's rows, as SQLite keeps them. */
#define ROW_FMT                                                               \
    "%u %u %63s %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64     \
    " %" SCNd64 " %" SCNd64 " %" SCNd64 " %lf %lf %lf %" SCNd64

static sluice_err
redis_slots_load(sluice_queue *q, sl_slot_row_fn *fn, void *ctx)
{
    redis_queue *s = state_of(q);
    redisReply *reply;
    sluice_err err = sl_redis_cmdf(&s->conn, &reply, "HGETALL %sslots",
                                   s->base);
    if (err != SLUICE_OK)
        return conn_fail(q, err);
    if (reply->type != REDIS_REPLY_ARRAY)
        return bad_reply(q, reply, "read the slots");
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const char *origin = el_str(reply, i), *text = el_str(reply, i + 1);
        if (!origin || !text)
            continue;
        char boot_id[64];
        sl_slot_row row = {.origin = origin, .boot_id = boot_id};
        char *rest;
        row.token = strtoull(text, &rest, 10);
        if (sscanf(rest, ROW_FMT, &row.held, &row.in_flight, boot_id,
                   &row.until_boot, &row.until_wall, &row.hold_ms,
                   &row.paused_boot, &row.paused_wall, &row.written_wall,
                   &row.written_boot, &row.next_start, &row.conc, &row.rate,
                   &row.advised, &row.advised_until) != 15)
            continue;
        if (fn(ctx, &row) != 0)
            break;
    }
    freeReplyObject(reply);
    return SLUICE_OK;
}

static sluice_err
redis_slots_save(sluice_queue *q, const sl_slot_row *rows, size_t n)
{
    if (n == 0)
        return SLUICE_OK;
    const char **argv = sl_malloc(3 * n * sizeof *argv);
    char(*text)[320] = sl_malloc(n * sizeof *text);
    char(*tokens)[24] = sl_malloc(n * sizeof *tokens);
    sluice_err err = SLUICE_OK;
    if (!argv || !text || !tokens) {
        err = sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const sl_slot_row *r = &rows[i];
        sl_fmt(tokens[i], sizeof tokens[i], "%" PRIu64, r->token);
        text[i][0] = '\0';
        if (!sl_slot_row_empty(r))
            sl_fmt(text[i], sizeof text[i],
                   "%u %u %s %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
                   " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
                   " %.17g %.17g %.17g %" PRId64,
                   r->held, r->in_flight,
                   r->boot_id && *r->boot_id ? r->boot_id : "-",
                   r->until_boot, r->until_wall, r->hold_ms, r->paused_boot,
                   r->paused_wall, r->written_wall, r->written_boot,
                   r->next_start, r->conc, r->rate, r->advised,
                   r->advised_until);
        argv[3 * i] = r->origin;
        argv[3 * i + 1] = tokens[i];
        argv[3 * i + 2] = text[i];
    }
    redisReply *reply;
    err = eval(q, RQ_SLOTS_SAVE, &reply, (int)(3 * n), argv, NULL);
    if (err == SLUICE_OK)
        freeReplyObject(reply);
done:
    sl_free(argv);
    sl_free(text);
    sl_free(tokens);
    return err;
}

static sluice_err
redis_slots_clear(sluice_queue *q, const char *origin, uint64_t *removed)
{
    redis_queue *s = state_of(q);
    redisReply *reply;
    sluice_err err;
    if (origin)
        err = sl_redis_cmdf(&s->conn, &reply, "HDEL %sslots %s", s->base,
                            origin);
    else
        err = sl_redis_cmdf(&s->conn, &reply,
                            "EVAL %s 1 %smeta",
                            "local n = redis.call('HLEN', string.sub("
                            "KEYS[1], 1, -5) .. 'slots') "
                            "redis.call('DEL', string.sub(KEYS[1], 1, -5) "
                            ".. 'slots') return n",
                            s->base);
    if (err != SLUICE_OK)
        return conn_fail(q, err);
    *removed = reply->type == REDIS_REPLY_INTEGER ? (uint64_t)reply->integer
                                                  : 0;
    freeReplyObject(reply);
    return SLUICE_OK;
}

static sluice_err
redis_setting_get(sluice_queue *q, const char *name, char *value,
                  size_t size)
{
    redis_queue *s = state_of(q);
    redisReply *reply;
    sluice_err err = sl_redis_cmdf(&s->conn, &reply, "HGET %ssettings %s",
                                   s->base, name);
    if (err != SLUICE_OK)
        return conn_fail(q, err);
    bool found = reply->type == REDIS_REPLY_STRING;
    if (found)
        sl_copy(value, size, reply->str);
    freeReplyObject(reply);
    if (!found)
        return sl_queue_fail(q, SLUICE_ENOTFOUND, "%s: no setting %s",
                             s->conn.addr.where, name);
    return SLUICE_OK;
}

static sluice_err
redis_setting_set(sluice_queue *q, const char *name, const char *value)
{
    redis_queue *s = state_of(q);
    redisReply *reply;
    sluice_err err = sl_redis_cmdf(&s->conn, &reply, "HSET %ssettings %s %s",
                                   s->base, name, value);
    if (err != SLUICE_OK)
        return conn_fail(q, err);
    freeReplyObject(reply);
    return SLUICE_OK;
}

#define REDIS_QUEUE_OPS(scheme)                                               \
    {                                                                         \
        .backend = {SL_FAMILY_QUEUE, "redis", scheme},                        \
        .features = SL_QUEUE_F_TRANSACTIONS | SL_QUEUE_F_EXCLUSIVE |          \
                    SL_QUEUE_F_SLOTS | SL_QUEUE_F_SKIP,                       \
        .slots = "redis", .state_size = sizeof(redis_queue),                \
        .open = redis_open, .close = redis_close, .begin = redis_begin,       \
        .commit = redis_commit, .rollback = redis_rollback,                   \
        .upsert = redis_upsert, .lease = redis_lease,                         \
        .complete = redis_complete, .retry = redis_retry,                     \
        .dead = redis_dead, .release = redis_release, .renew = redis_renew,   \
        .acquire_runner = redis_acquire_runner, .recover = redis_recover,     \
        .counts = redis_counts, .next_due = redis_next_due,                   \
        .get = redis_get, .dlq_list = redis_dlq_list, .list = redis_list,     \
        .replay = redis_replay, .slots_load = redis_slots_load,               \
        .slots_save = redis_slots_save, .slots_clear = redis_slots_clear,     \
        .setting_get = redis_setting_get,                                     \
        .setting_set = redis_setting_set,                                     \
        .runner_alive = redis_runner_alive,                                   \
    }

/* One backend, two schemes: a TCP address and a unix socket. */
const sl_queue_ops sl_queue_redis = REDIS_QUEUE_OPS("redis://");
const sl_queue_ops sl_queue_redis_unix = REDIS_QUEUE_OPS("unix://");
