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

/* Records an upsert takes outside a batch; a batch's upserts go in one
 * transaction at commit, however many (sl_rq_upsert). */
#define UPSERT_CHUNK 1000

sl_rq_queue *
sl_rq_state(sluice_queue *q)
{
    return q->state;
}

/* A failure of the connection, as the queue's error. */
sluice_err
sl_rq_conn_fail(sluice_queue *q, sluice_err err)
{
    return sl_queue_fail(q, err, "%s", sl_rq_state(q)->conn.errmsg);
}

sluice_err
sl_rq_eval(sluice_queue *q, int which, redisReply **out, int argc,
           const char **argv, const size_t *lens)
{
    sl_rq_queue *s = sl_rq_state(q);
    sluice_err err = sl_redis_eval(&s->conn, &s->scripts[which], s->meta_key,
                                   out, argc, argv, lens);
    return err == SLUICE_OK ? SLUICE_OK : sl_rq_conn_fail(q, err);
}

/* A reply element's text, or NULL for nil. */
const char *
sl_rq_str(const redisReply *r, size_t i)
{
    if (i >= r->elements)
        return NULL;
    const redisReply *e = r->element[i];
    return e->type == REDIS_REPLY_STRING ? e->str : NULL;
}

int64_t
sl_rq_int(const redisReply *r, size_t i)
{
    if (i >= r->elements)
        return 0;
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    return e->type == REDIS_REPLY_STRING ? strtoll(e->str, NULL, 10) : 0;
}

sluice_err
sl_rq_bad_reply(sluice_queue *q, redisReply *reply, const char *what)
{
    if (reply)
        freeReplyObject(reply);
    return sl_queue_fail(q, SLUICE_EDB, "%s: %s: unexpected reply from Redis",
                         sl_rq_state(q)->conn.addr.where, what);
}

/*
 * What the upsert compares: a digest of url, key and meta, so that a
 * record ingested again unchanged is told apart from one that changed
 * by one hash lookup. 96 bits of SHA-1 (a script that unpacks a pack
 * makes the same with redis.sha1hex): a changed record taken for an
 * unchanged one would need a collision in them, which only a feed made
 * for it could hold, and its maker could as well leave it unchanged.
 */
void
sl_rq_fingerprint(sl_rq_queue *s, const sl_record *r, char out[FP_HEX + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    /* The digest and its context are made once a handle: fetching
     * SHA-1 takes OpenSSL's locks, a context an allocation. */
    if (!s->fp_md)
        s->fp_md = EVP_MD_fetch(NULL, "SHA1", NULL);
    if (!s->fp_ctx)
        s->fp_ctx = EVP_MD_CTX_new();
    EVP_MD_CTX *ctx = s->fp_ctx;
    /* An empty meta is none, as a pack holds it. */
    bool has_meta = r->meta && r->meta_len > 0;
    bool ok = ctx && s->fp_md && EVP_DigestInit_ex2(ctx, s->fp_md, NULL) == 1 &&
              EVP_DigestUpdate(ctx, r->url, r->url_len) == 1 &&
              EVP_DigestUpdate(ctx, "", 1) == 1 &&
              EVP_DigestUpdate(ctx, r->key, r->key_len) == 1 &&
              EVP_DigestUpdate(ctx, has_meta ? "\1" : "\2", 1) == 1 &&
              (!has_meta || EVP_DigestUpdate(ctx, r->meta, r->meta_len) == 1) &&
              EVP_DigestFinal_ex(ctx, md, &md_len) == 1;
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
    sl_rq_queue *s = sl_rq_state(q);
    char pattern[160];
    sl_fmt(pattern, sizeof pattern, "%s*", s->conn.addr.prefix);
    char cursor[32] = "0";
    *used = false;
    int rounds = 0;
    do {
        redisReply *reply;
        sluice_err err = sl_redis_cmdf(
            &s->conn, &reply, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (err != SLUICE_OK)
            return sl_rq_conn_fail(q, err);
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            !sl_rq_str(reply, 0) ||
            reply->element[1]->type != REDIS_REPLY_ARRAY)
            return sl_rq_bad_reply(q, reply, "SCAN");
        sl_copy(cursor, sizeof cursor, sl_rq_str(reply, 0));
        *used = reply->element[1]->elements > 0;
        freeReplyObject(reply);
    } while (!*used && strcmp(cursor, "0") != 0 && ++rounds < 100000);
    return SLUICE_OK;
}

/* Check (or create) the meta hash: a sluice queue of a version we know. */
static sluice_err
check_schema(sluice_queue *q, const sluice_queue_opts *opts)
{
    sl_rq_queue *s = sl_rq_state(q);
    const char *where = s->conn.addr.where;
    bool may_create =
        !(opts->flags & (SLUICE_QUEUE_READONLY | SLUICE_QUEUE_NOCREATE));
    bool used = false;
    sluice_err err;
    redisReply *reply;
    char version[16];
    sl_fmt(version, sizeof version, "%d", SL_REDIS_SCHEMA);
    for (int pass = 0; pass < 2; pass++) {
        const char *argv[] = {version, pass == 1 ? "1" : "0"};
        if ((err = sl_rq_eval(q, RQ_INIT, &reply, 2, argv, NULL)) != SLUICE_OK)
            return err;
        const char *what =
            reply->type == REDIS_REPLY_ARRAY ? sl_rq_str(reply, 0) : NULL;
        if (!what)
            return sl_rq_bad_reply(q, reply, "open");
        if (strcmp(what, "foreign") == 0) {
            sl_queue_fail(q, SLUICE_ENOTDB,
                          "%s: not a sluice queue (%.100s holds a %.20s "
                          "that is not sluice's)",
                          where, s->meta_key,
                          sl_rq_str(reply, 1) ? sl_rq_str(reply, 1) : "key");
            freeReplyObject(reply);
            return SLUICE_ENOTDB;
        }
        if (strcmp(what, "none") != 0) {
            long long v = sl_rq_str(reply, 1) ? atoll(sl_rq_str(reply, 1)) : 0;
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
    sl_rq_queue *s = sl_rq_state(q);
    int64_t before = sl_now_ms(), redis_ms;
    sluice_err err = sl_redis_time_ms(&s->conn, &redis_ms);
    if (err != SLUICE_OK)
        return sl_rq_conn_fail(q, err);
    int64_t after = sl_now_ms();
    s->clock_offset = redis_ms - (before + after) / 2;
    return SLUICE_OK;
}

static sluice_err
redis_open(sluice_queue *q, const char *location, const sluice_queue_opts *opts)
{
    sl_rq_queue *s = sl_rq_state(q);
    sl_buf_init(&s->batch.text);
    sl_buf_init(&s->sent.text);
    pthread_mutex_init(&s->renew_mu, NULL);
    pthread_cond_init(&s->renew_cv, NULL);
    memcpy(s->scripts, sl_rq_scripts, sizeof s->scripts);
    sluice_err err = sl_redis_open(&s->conn, location);
    if (err != SLUICE_OK)
        return sl_rq_conn_fail(q, err);
    sl_fmt(s->base, sizeof s->base, "%s{q}:", s->conn.addr.prefix);
    sl_fmt(s->meta_key, sizeof s->meta_key, "%smeta", s->base);
    if ((err = check_schema(q, opts)) != SLUICE_OK)
        return err;
    return measure_clock(q);
}

static void
redis_close(sluice_queue *q)
{
    sl_rq_queue *s = sl_rq_state(q);
    sl_rq_runner_end(s);
    sl_redis_close(&s->conn);
    rq_batch *both[] = {&s->batch, &s->sent};
    for (size_t i = 0; i < SL_ARRAY_LEN(both); i++) {
        sl_buf_free(&both[i]->text);
        sl_free(both[i]->recs);
        sl_free(both[i]->calls);
    }
    sl_buf_free(&s->mark_text);
    EVP_MD_CTX_free(s->fp_ctx);
    EVP_MD_free(s->fp_md);
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

/* The upsert of the batch's n records, args (now, then REC_ARGS a
 * record), as packs when this feed may, else through sl_rq_upsert; the
 * outcome letters into *letters (freed by the caller). */
static sluice_err
upsert_call(sluice_queue *q, const char **argv, const size_t *lens, size_t n,
            char **letters)
{
    sl_rq_queue *s = sl_rq_state(q);
    *letters = sl_malloc(n ? n : 1);
    if (!*letters)
        return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    bool packed = false;
    sluice_err err = sl_rq_pack(q, argv[0], s->batch.text.data,
                                s->batch.recs, n, *letters, &packed);
    if (err == SLUICE_OK && !packed)
        err = sl_rq_upsert(q, argv[0], argv + 1, lens + 1, n, *letters);
    if (err != SLUICE_OK) {
        sl_free(*letters);
        *letters = NULL;
    }
    return err;
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

/* A record's text in the batch: its length (2 bytes, little-endian),
 * then its bytes, as a pack holds it (queue_redis_pack.c). Every field
 * is shorter (record.h, meta.h); the caller reserved the room. */
static void
put_text(sl_buf *b, const char *text, size_t len)
{
    unsigned char n[2] = {(unsigned char)len, (unsigned char)(len >> 8)};
    memcpy(b->data + b->len, n, sizeof n);
    if (len)
        memcpy(b->data + b->len + sizeof n, text, len);
    b->len += sizeof n + len;
}

/* Copy the records into the batch, which goes to Redis at commit: each
 * one's fields one after the other as a pack holds them, so that a
 * pack is a slice of the batch's text (it begins with the mark of a
 * pack, and its records after its first write that one's origin as ''
 * when it is theirs). */
static sluice_err
upsert_buffer(sluice_queue *q, const sl_record *recs, size_t n, int64_t now_ms,
              sluice_ingest_stats *counts)
{
    sl_rq_queue *s = sl_rq_state(q);
    if (s->batch.n_recs + n > s->batch.cap_recs) {
        size_t cap = SL_MAX(s->batch.cap_recs * 2, s->batch.n_recs + n);
        buffered_rec *grown = sl_realloc(s->batch.recs, cap * sizeof *grown);
        if (!grown)
            return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
        s->batch.recs = grown;
        s->batch.cap_recs = cap;
    }
    if (s->batch.n_calls == s->batch.cap_calls) {
        size_t cap = SL_MAX(s->batch.cap_calls * 2, 16);
        buffered_call *grown = sl_realloc(s->batch.calls, cap * sizeof *grown);
        if (!grown)
            return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
        s->batch.calls = grown;
        s->batch.cap_calls = cap;
    }
    /* Room for a mark a record (more than the packs need) and each
     * field behind its 2-byte length, which every field fits. */
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const sl_record *r = &recs[i];
        size_t meta_len = r->meta ? r->meta_len : 0;
        size_t most = SL_MAX(SL_MAX(r->id_len, r->url_len),
                             SL_MAX(SL_MAX(r->key_len, meta_len),
                                    r->origin_len));
        if (most > 0xffff)
            return sl_queue_fail(q, SLUICE_EINVAL,
                                 "%s: a record's field of %zu bytes "
                                 "(ids, urls and keys are shorter)",
                                 s->conn.addr.where, most);
        bytes += SL_RQ_PACK_MARK_LEN + PACK_FIELDS * 2 + r->id_len +
                 r->url_len + r->key_len + meta_len + r->origin_len;
    }
    if (sl_buf_reserve(&s->batch.text, bytes) != 0)
        return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const sl_record *r = &recs[i];
        char fp[FP_HEX + 1];
        const char *v[PACK_FIELDS] = {r->id, r->url, r->key, r->meta,
                                      r->origin};
        size_t l[PACK_FIELDS] = {r->id_len, r->url_len, r->key_len,
                                 r->meta ? r->meta_len : 0, r->origin_len};
        size_t k = s->batch.n_recs + i, head = k - k % SL_RQ_PACK_RECORDS;
        buffered_rec *b = &s->batch.recs[k];
        b->first = r->first;
        sl_rq_fingerprint(s, r, fp);
        memcpy(b->fp, fp, FP_HEX);
        b->begin = s->batch.text.len;
        if (k == head) {
            memcpy(s->batch.text.data + s->batch.text.len, SL_RQ_PACK_MARK,
                   SL_RQ_PACK_MARK_LEN);
            s->batch.text.len += SL_RQ_PACK_MARK_LEN;
        }
        for (int f = 0; f < PACK_FIELDS; f++) {
            /* Its pack's first record's origin is written as '', and
             * read where that one's is. */
            bool elide = f == 4 && k != head &&
                         sl_rq_field_is(s->batch.text.data,
                                        &s->batch.recs[head], f, v[f], l[f]);
            put_text(&s->batch.text, v[f], elide ? 0 : l[f]);
            b->at[f] = elide ? s->batch.recs[head].at[f]
                             : s->batch.text.len - l[f];
            b->len[f] = l[f];
        }
        b->end = s->batch.text.len;
    }
    s->batch.n_recs += n;
    s->batch.calls[s->batch.n_calls++] = (buffered_call){counts, n};
    s->batch.now = now_ms;
    return SLUICE_OK;
}

static void
forget_batch(sl_rq_queue *s)
{
    sl_buf_clear(&s->batch.text);
    s->batch.n_recs = s->batch.n_calls = 0;
    s->mark_staged = false;
}

static sluice_err send_batch(sluice_queue *q);

/* Outside a batch: UPSERT_CHUNK records at a time, each chunk a batch of
 * its own. */
static sluice_err
upsert_now(sluice_queue *q, const sl_record *recs, size_t n, int64_t now_ms,
           sluice_ingest_stats *counts)
{
    sl_rq_queue *s = sl_rq_state(q);
    sluice_err err = SLUICE_OK;
    while (n > 0 && err == SLUICE_OK) {
        size_t take = SL_MIN(n, UPSERT_CHUNK);
        forget_batch(s);
        err = upsert_buffer(q, recs, take, now_ms, counts);
        if (err == SLUICE_OK)
            err = send_batch(q);
        forget_batch(s);
        recs += take;
        n -= take;
    }
    return err;
}

static sluice_err
redis_upsert(sluice_queue *q, const sl_record *recs, size_t n, int64_t now_ms,
             sluice_ingest_stats *counts)
{
    return q->in_batch ? upsert_buffer(q, recs, n, now_ms, counts)
                       : upsert_now(q, recs, n, now_ms, counts);
}

static void
redis_feed_start(sluice_queue *q)
{
    sl_rq_pack_feed_start(sl_rq_state(q));
}

static sluice_err
redis_begin(sluice_queue *q)
{
    forget_batch(sl_rq_state(q));
    return SLUICE_OK;
}

/* The batch's upserts in one transaction (sl_rq_upsert): all of them or
 * none; with a stream's place staged, the records and the place in one
 * script call, once the records are in. */
static sluice_err
redis_commit(sluice_queue *q)
{
    sl_rq_queue *s = sl_rq_state(q);
    if (s->batch.n_recs == 0 && !s->mark_staged)
        return SLUICE_OK;
    sluice_err err = send_batch(q);
    if (err == SLUICE_OK)
        forget_batch(s);
    return err;
}

/* What the batch holds, to Redis; its outcome into the counts. */
static sluice_err
send_batch(sluice_queue *q)
{
    sl_rq_queue *s = sl_rq_state(q);
    const char **argv;
    size_t *lens, extra = s->mark_staged ? 8 : 0;
    sluice_err err = alloc_args(q, s->batch.n_recs + (extra + REC_ARGS - 1) /
                                                 REC_ARGS,
                                &argv, &lens);
    if (err != SLUICE_OK)
        return err;
    char now[24];
    sl_fmt(now, sizeof now, "%" PRId64, sl_rq_to_redis(s, s->batch.now));
    argv[0] = now;
    lens[0] = strlen(now);
    for (size_t i = 0; i < s->batch.n_recs; i++) {
        const char **a = &argv[1 + REC_ARGS * i];
        size_t *l = &lens[1 + REC_ARGS * i];
        for (int f = 0; f < PACK_FIELDS; f++) {
            a[f] = s->batch.text.data + s->batch.recs[i].at[f];
            l[f] = s->batch.recs[i].len[f];
        }
        a[PACK_FIELDS] = s->batch.recs[i].fp;
        l[PACK_FIELDS] = FP_HEX;
    }
    char *letters = NULL;
    if (s->mark_staged) {
        redisReply *reply;
        if ((err = sl_rq_unpack_all(q)) != SLUICE_OK)
            goto done;
        sl_rq_pack_lost(s);
        sl_rq_stream_args(s, argv, lens, 1 + REC_ARGS * s->batch.n_recs);
        err = sl_rq_eval(q, RQ_STREAM_UPSERT, &reply,
                         (int)(1 + REC_ARGS * s->batch.n_recs + extra), argv,
                         lens);
        if (err == SLUICE_OK && reply->type == REDIS_REPLY_STRING &&
            reply->len > 0 && reply->str[0] == '!') {
            err = sl_queue_fail(q, SLUICE_EAGAIN,
                                "%s: another ingester (%s) took the "
                                "stream over",
                                q->location,
                                reply->len > 1 ? reply->str + 1 : "none");
            freeReplyObject(reply);
        } else if (err == SLUICE_OK && (reply->type != REDIS_REPLY_STRING ||
                                        reply->len != s->batch.n_recs)) {
            err = sl_rq_bad_reply(q, reply, "stream upsert");
        } else if (err == SLUICE_OK) {
            letters = sl_malloc(s->batch.n_recs ? s->batch.n_recs : 1);
            if (letters)
                memcpy(letters, reply->str, s->batch.n_recs);
            else
                err = sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
            freeReplyObject(reply);
        }
    } else {
        err = upsert_call(q, argv, lens, s->batch.n_recs, &letters);
    }
done:
    sl_free(argv);
    sl_free(lens);
    if (err != SLUICE_OK)
        return err;
    const char *at = letters;
    for (size_t c = 0; c < s->batch.n_calls; c++) {
        tally(at, s->batch.calls[c].n, s->batch.calls[c].counts);
        at += s->batch.calls[c].n;
    }
    sl_free(letters);
    return SLUICE_OK;
}

static sluice_err
redis_rollback(sluice_queue *q)
{
    forget_batch(sl_rq_state(q));
    return SLUICE_OK;
}

static void
swap_batches(sl_rq_queue *s)
{
    rq_batch t = s->batch;
    s->batch = s->sent;
    s->sent = t;
}

/* The first half of a commit (sl_queue_commit_send): a batch that may
 * be packed is written and kept, its outcome read by redis_commit_wait
 * while the caller makes the next; any other commits whole here. */
static sluice_err
redis_commit_send(sluice_queue *q, bool *sent)
{
    sl_rq_queue *s = sl_rq_state(q);
    *sent = false;
    if (s->batch.n_recs > 0 && !s->mark_staged) {
        char now[24];
        sl_fmt(now, sizeof now, "%" PRId64, sl_rq_to_redis(s, s->batch.now));
        sluice_err err = sl_rq_pack_send(q, now, s->batch.text.data,
                                         s->batch.recs, s->batch.n_recs,
                                         &s->sent_replies);
        if (err != SLUICE_OK)
            return err;
        if (s->sent_replies > 0) {
            swap_batches(s);
            forget_batch(s);
            s->sent_pending = *sent = true;
            return SLUICE_OK;
        }
    }
    return redis_commit(q);
}

/* The second half: the sent batch's outcome into its counts; a batch
 * whose packs were not written (another writer came first) is upserted
 * again, looked up. The batch being made is set aside meanwhile. */
static sluice_err
redis_commit_wait(sluice_queue *q)
{
    sl_rq_queue *s = sl_rq_state(q);
    if (!s->sent_pending)
        return SLUICE_OK;
    s->sent_pending = false;
    bool written = false, staged = s->mark_staged;
    sluice_err err = sl_rq_pack_recv(q, s->sent_replies, s->sent.n_recs,
                                     &written);
    swap_batches(s);
    s->mark_staged = false;
    if (err == SLUICE_OK && written)
        for (size_t c = 0; c < s->batch.n_calls; c++)
            s->batch.calls[c].counts->added += s->batch.calls[c].n;
    else if (err == SLUICE_OK)
        err = send_batch(q);
    forget_batch(s);
    swap_batches(s);
    s->mark_staged = staged;
    return err;
}

/* ------------------------------------------------------------ leases */

/* A lease's five strings (id url key origin meta), copied into one
 * allocation that the lease owns: 0, or -2 out of memory. (The fills
 * below answer -1 for a reply they cannot read.) */
static int
lease_strings(sl_lease *l, const char *const v[5], const size_t lens[5])
{
    size_t total = 0;
    for (int i = 0; i < 5; i++)
        total += lens[i] + 1;
    char *block = sl_malloc(total);
    if (!block)
        return -2;
    char **dst[5] = {&l->id, &l->url, &l->key, &l->origin, &l->meta};
    for (int i = 0; i < 5; i++) {
        memcpy(block, v[i], lens[i]);
        block[lens[i]] = '\0';
        *dst[i] = block;
        block += lens[i] + 1;
    }
    if (!*l->meta)
        l->meta = NULL;
    return 0;
}

/* A lease from ten reply fields of `r` at `at`. */
static int
lease_fill(const sl_rq_queue *s, sl_lease *l, const redisReply *r, size_t at)
{
    const char *v[5];
    size_t lens[5];
    static const int cols[5] = {2, 3, 4, 5, 6}; /* id url key origin meta */
    for (int i = 0; i < 5; i++) {
        const redisReply *e = r->element[at + (size_t)cols[i]];
        if (e->type != REDIS_REPLY_STRING)
            return -1;
        v[i] = e->str;
        lens[i] = e->len;
    }
    if (lease_strings(l, v, lens) != 0)
        return -2;
    l->ref[0] = (uint64_t)sl_rq_int(r, at);
    l->token = (uint64_t)sl_rq_int(r, at + 1);
    l->attempts = (unsigned)sl_rq_int(r, at + 7);
    l->first_attempt_ms = sl_rq_from_redis(s, sl_rq_int(r, at + 8));
    l->was_retrying = sl_rq_int(r, at + 9) == SL_STATE_RETRYING;
    return 0;
}

/* A lease taken straight from a pack: its RID at `at` in `r`, its record
 * as the pack holds it after, then its origin; its first lease, at
 * now_ms. */
static int
lease_fill_packed(sl_lease *l, const redisReply *r, size_t at, int64_t now_ms)
{
    const redisReply *e = r->element[at + 1], *o = r->element[at + 2];
    const char *f[PACK_FIELDS];
    size_t flens[PACK_FIELDS];
    if (e->type != REDIS_REPLY_STRING || o->type != REDIS_REPLY_STRING ||
        o->len == 0 || !sl_rq_pack_record(e->str, e->len, f, flens))
        return -1;
    /* the pack's order is id url key meta origin; the lease's id url key
     * origin meta (the pack's origin may be '': its first record's) */
    const char *v[5] = {f[0], f[1], f[2], o->str, f[3]};
    size_t lens[5] = {flens[0], flens[1], flens[2], o->len, flens[3]};
    if (lease_strings(l, v, lens) != 0)
        return -2;
    l->ref[0] = (uint64_t)sl_rq_int(r, at);
    l->token = 1;
    l->attempts = 0;
    l->first_attempt_ms = now_ms;
    l->was_retrying = false;
    return 0;
}

static sluice_err release_one(sluice_queue *q, uint64_t rid, uint64_t token,
                              int64_t now_ms);

/* The lease script's answer, {A, P} (lease_lua), into out[]: *n_out
 * leases, or none and every one of them released. */
static sluice_err
lease_read(sluice_queue *q, const sl_lease_req *req, redisReply *reply,
           sl_lease *out, size_t *n_out)
{
    sl_rq_queue *s = sl_rq_state(q);
    const redisReply *a = NULL, *p = NULL;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
        a = reply->element[0];
        p = reply->element[1];
    }
    if (!a || a->type != REDIS_REPLY_ARRAY || a->elements % 10 != 0 ||
        p->type != REDIS_REPLY_ARRAY || p->elements % 3 != 0 ||
        a->elements / 10 + p->elements / 3 > req->max)
        return sl_rq_bad_reply(q, reply, "lease");
    size_t n_a = a->elements / 10, n = n_a + p->elements / 3, filled = 0;
    int rc = 0;
    for (; filled < n; filled++) {
        rc = filled < n_a
                     ? lease_fill(s, &out[filled], a, filled * 10)
                     : lease_fill_packed(&out[filled], p, (filled - n_a) * 3,
                                         req->now_ms);
        if (rc != 0)
            break;
    }
    if (filled < n) {
        /* Give every lease back: none was started. */
        for (size_t i = 0; i < n; i++) {
            bool in_a = i < n_a;
            size_t at = in_a ? i * 10 : (i - n_a) * 3;
            const redisReply *r = in_a ? a : p;
            release_one(q, (uint64_t)sl_rq_int(r, at),
                        in_a ? (uint64_t)sl_rq_int(r, at + 1) : 1,
                        req->now_ms);
        }
        for (size_t i = 0; i < filled; i++)
            sl_lease_clear(&out[i]);
        freeReplyObject(reply);
        if (rc == -2)
            return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
        return sl_queue_fail(q, SLUICE_EDB,
                             "%s: lease: a leased record could not be read "
                             "from its answer",
                             s->conn.addr.where);
    }
    freeReplyObject(reply);
    *n_out = n;
    return SLUICE_OK;
}

static sluice_err
redis_lease(sluice_queue *q, const sl_lease_req *req, sl_lease *out,
            size_t *n_out)
{
    sl_rq_queue *s = sl_rq_state(q);
    size_t argc = 4 + req->n_skip;
    sluice_err claim = sl_rq_claim_check(q);
    *n_out = 0;
    if (claim != SLUICE_OK)
        return claim;
    const char **argv = sl_malloc(argc * sizeof *argv);
    if (!argv)
        return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    char now[24], exp[24], max[24], n_skip[24];
    sl_fmt(now, sizeof now, "%" PRId64, sl_rq_to_redis(s, req->now_ms));
    sl_fmt(exp, sizeof exp, "%" PRId64,
           sl_rq_to_redis(s, req->now_ms + req->lease_ms));
    sl_fmt(max, sizeof max, "%zu", req->max);
    sl_fmt(n_skip, sizeof n_skip, "%zu", req->n_skip);
    argv[0] = now;
    argv[1] = exp;
    argv[2] = max;
    argv[3] = n_skip;
    for (size_t i = 0; i < req->n_skip; i++)
        argv[4 + i] = req->skip_origins[i];
    redisReply *reply;
    sluice_err err = sl_rq_eval(q, RQ_LEASE, &reply, (int)argc, argv, NULL);
    sl_free(argv);
    if (err != SLUICE_OK)
        return err;
    return lease_read(q, req, reply, out, n_out);
}

void
sl_rq_mark_call_of(const sl_rq_queue *s, const sl_queue_mark *m,
                   sl_rq_mark_call *c)
{
    const sl_lease *l = m->lease;
    const sl_failure *why = m->why;
    sl_fmt(c->rid, sizeof c->rid, "%" PRIu64, l->ref[0]);
    sl_fmt(c->token, sizeof c->token, "%" PRIu64, l->token);
    sl_fmt(c->time, sizeof c->time, "%" PRId64, sl_rq_to_redis(s, m->at_ms));
    c->size[0] = c->status[0] = '\0';
    if (why && why->http_status)
        sl_fmt(c->status, sizeof c->status, "%d", why->http_status);
    c->argv[0] = c->rid;
    c->argv[1] = c->token;
    c->argv[2] = c->time;
    switch (m->kind) {
    case SL_QUEUE_MARK_DONE:
        sl_fmt(c->size, sizeof c->size, "%" PRId64, m->obj->size);
        c->which = RQ_COMPLETE;
        c->what = "complete";
        c->argc = 7;
        c->argv[3] = c->size;
        c->argv[4] = m->obj->sha256_hex ? m->obj->sha256_hex : "";
        c->argv[5] = m->obj->content_type ? m->obj->content_type : "";
        c->argv[6] = m->obj->etag ? m->obj->etag : "";
        return;
    case SL_QUEUE_MARK_RETRY:
        c->which = RQ_RETRY;
        c->what = "retry";
        c->argc = 7;
        c->argv[3] = m->counts_attempt ? "1" : "0";
        c->argv[4] = sl_error_class_name(why->error_class);
        c->argv[5] = why->message ? why->message : "";
        c->argv[6] = c->status;
        return;
    case SL_QUEUE_MARK_DEAD:
        c->which = RQ_DEAD;
        c->what = "dead";
        c->argc = 6;
        c->argv[3] = sl_error_class_name(why->error_class);
        c->argv[4] = why->message ? why->message : "";
        c->argv[5] = c->status;
        return;
    case SL_QUEUE_MARK_RELEASE:
        break;
    }
    c->which = RQ_RELEASE;
    c->what = "release";
    c->argc = 3;
}

/* A mark script answers 1, or 0 when the lease is no longer held;
 * complete, an array of those, one a mark. */
sluice_err
sl_rq_mark_answer(sluice_queue *q, const sl_rq_mark_call *c,
                  const sl_lease *l, const redisReply *reply, size_t e,
                  size_t n)
{
    if (c->which == RQ_COMPLETE)
        reply = reply->type == REDIS_REPLY_ARRAY && reply->elements == n
                    ? reply->element[e]
                    : NULL;
    const char *what = c->what;
    if (!reply || reply->type != REDIS_REPLY_INTEGER)
        return sl_rq_bad_reply(q, NULL, what);
    if (reply->integer == 0)
        return sl_queue_fail(q, SLUICE_ENOTFOUND,
                             "%s: lease on \"%.200s\" is no longer held",
                             what, l->id ? l->id : "?");
    return SLUICE_OK;
}

/* One mark, one round trip. */
static sluice_err
mark(sluice_queue *q, const sl_queue_mark *m)
{
    sl_rq_mark_call c;
    redisReply *reply;
    sl_rq_mark_call_of(sl_rq_state(q), m, &c);
    sluice_err err = sl_rq_eval(q, c.which, &reply, c.argc, c.argv, NULL);
    if (err != SLUICE_OK)
        return err;
    err = sl_rq_mark_answer(q, &c, m->lease, reply, 0, 1);
    freeReplyObject(reply);
    return err;
}

static sluice_err
redis_complete(sluice_queue *q, const sl_lease *l, const sl_object_info *obj,
               int64_t now_ms)
{
    sl_queue_mark m = {SL_QUEUE_MARK_DONE, l, obj, NULL, now_ms, false};
    return mark(q, &m);
}

static sluice_err
redis_retry(sluice_queue *q, const sl_lease *l, int64_t due_ms,
            const sl_failure *why, bool counts_attempt)
{
    sl_queue_mark m = {SL_QUEUE_MARK_RETRY, l,      NULL,
                       why,                 due_ms, counts_attempt};
    return mark(q, &m);
}

static sluice_err
redis_dead(sluice_queue *q, const sl_lease *l, const sl_failure *why,
           int64_t now_ms)
{
    sl_queue_mark m = {SL_QUEUE_MARK_DEAD, l, NULL, why, now_ms, false};
    return mark(q, &m);
}

static sluice_err
release_one(sluice_queue *q, uint64_t rid, uint64_t token, int64_t now_ms)
{
    sl_lease l = {.ref = {rid, 0}, .token = token};
    sl_queue_mark m = {SL_QUEUE_MARK_RELEASE, &l, NULL, NULL, now_ms, false};
    return mark(q, &m);
}

static sluice_err
redis_release(sluice_queue *q, const sl_lease *l, int64_t now_ms)
{
    sl_queue_mark m = {SL_QUEUE_MARK_RELEASE, l, NULL, NULL, now_ms, false};
    return mark(q, &m);
}

static sluice_err
redis_renew(sluice_queue *q, const sl_lease *leases, size_t n, int64_t until_ms)
{
    sl_rq_queue *s = sl_rq_state(q);
    size_t argc = 1 + 2 * n;
    const char **argv = sl_malloc(argc * sizeof *argv);
    char(*nums)[24] = sl_malloc(argc * sizeof *nums);
    sluice_err err;
    if (!argv || !nums) {
        err = sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
        goto done;
    }
    sl_fmt(nums[0], sizeof nums[0], "%" PRId64, sl_rq_to_redis(s, until_ms));
    argv[0] = nums[0];
    for (size_t i = 0; i < n; i++) {
        sl_fmt(nums[1 + 2 * i], sizeof nums[0], "%" PRIu64, leases[i].ref[0]);
        sl_fmt(nums[2 + 2 * i], sizeof nums[0], "%" PRIu64, leases[i].token);
        argv[1 + 2 * i] = nums[1 + 2 * i];
        argv[2 + 2 * i] = nums[2 + 2 * i];
    }
    redisReply *reply;
    err = sl_rq_eval(q, RQ_RENEW, &reply, (int)argc, argv, NULL);
    if (err == SLUICE_OK)
        freeReplyObject(reply);
done:
    sl_free(argv);
    sl_free(nums);
    return err;
}

static sluice_err
redis_recover(sluice_queue *q, int64_t now_ms, uint64_t *recovered)
{
    char now[24];
    /* Other runners' records in flight are theirs: they come back to
     * everyone when their leases expire. */
    *recovered = 0;
    if (!sl_rq_state(q)->alone)
        return SLUICE_OK;
    sl_fmt(now, sizeof now, "%" PRId64, sl_rq_to_redis(sl_rq_state(q), now_ms));
    const char *argv[] = {now};
    redisReply *reply;
    sluice_err err = sl_rq_eval(q, RQ_RECOVER, &reply, 1, argv, NULL);
    if (err != SLUICE_OK)
        return err;
    if (reply->type != REDIS_REPLY_INTEGER)
        return sl_rq_bad_reply(q, reply, "recover");
    *recovered = (uint64_t)reply->integer;
    freeReplyObject(reply);
    return SLUICE_OK;
}

#define REDIS_QUEUE_OPS(scheme)                                                \
    {                                                                          \
        .backend = {SL_FAMILY_QUEUE, "redis", scheme},                         \
        .features = SL_QUEUE_F_TRANSACTIONS | SL_QUEUE_F_EXCLUSIVE |           \
                    SL_QUEUE_F_SLOTS | SL_QUEUE_F_SKIP | SL_QUEUE_F_STREAMS |  \
                    SL_QUEUE_F_OUTAGES | SL_QUEUE_F_CONNECTIONS,               \
        .slots = "redis", .state_size = sizeof(sl_rq_queue),                  \
        .open = redis_open, .close = redis_close, .begin = redis_begin,        \
        .commit = redis_commit, .rollback = redis_rollback,                    \
        .commit_send = redis_commit_send, .commit_wait = redis_commit_wait,    \
        .upsert = redis_upsert, .feed_start = redis_feed_start,               \
        .lease = redis_lease,                                                  \
        .complete = redis_complete, .retry = redis_retry, .dead = redis_dead,  \
        .release = redis_release, .marks = sl_rq_marks,                        \
        .renew = redis_renew,                                                  \
        .acquire_runner = sl_rq_acquire_runner, .recover = redis_recover,      \
        .counts = sl_rq_counts, .next_due = sl_rq_next_due, .get = sl_rq_get,  \
        .dlq_list = sl_rq_dlq_list, .list = sl_rq_list,                        \
        .dump = sl_rq_dump, .restore = sl_rq_restore,                          \
        .replay = sl_rq_replay, .slots_load = sl_rq_slots_load,                \
        .slots_save = sl_rq_slots_save, .slots_clear = sl_rq_slots_clear,      \
        .setting_get = sl_rq_setting_get, .setting_set = sl_rq_setting_set,    \
        .runner_alive = sl_rq_runner_alive,                                    \
        .stream_lease = sl_rq_stream_lease,                                    \
        .stream_unlease = sl_rq_stream_unlease,                                \
        .stream_mark = sl_rq_stream_mark, .stream_marks = sl_rq_stream_marks,  \
    }

/* One backend, two schemes: a TCP address and a unix socket. */
const sl_queue_ops sl_queue_redis = REDIS_QUEUE_OPS("redis://");
const sl_queue_ops sl_queue_redis_unix = REDIS_QUEUE_OPS("unix://");
