/*
 * The Redis queue backend's insides, shared by its files: queue_redis.c
 * (opening, upserts and batches, leases and marks), queue_redis_read.c
 * (counts, records, lists, the DLQ), queue_redis_slots.c (the runner
 * claim, slot rows, settings), queue_redis_upsert.c and
 * queue_redis_pack.c (ingest: lookups and writes, and a first ingest's
 * packs), queue_redis_cmds.c (pipelines built in flat arrays) and
 * queue_redis_scripts.c (the Lua scripts that make each change atomic).
 * docs/queue.md describes the key layout.
 */
#ifndef SL_QUEUE_REDIS_H
#define SL_QUEUE_REDIS_H

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/types.h>

#include "../redis/redis.h"
#include "queue.h"

/* Arguments a record takes in the upsert script: id, url, key, meta,
 * origin and the fingerprint. */
#define REC_ARGS 6
/* Fields a record has in a pack: id, url, key, meta and origin. */
#define PACK_FIELDS 5
/* A fingerprint: 96 bits of SHA-1 in hex (SHA-256 before schema 4;
 * Redis's scripts can make SHA-1's, redis.sha1hex). */
#define FP_HEX 24

/* The schema version kept in the queue's meta hash: 1, records only;
 * 2, packs too (queue_redis_pack.c); 3, a packed record whose origin is
 * its pack's first record's has '' for it; 4, a pack is marked as such
 * and holds its fields behind 2-byte lengths and no fingerprint (the
 * script that unpacks it makes that), and fingerprints are SHA-1's. A
 * queue of an earlier version is read as it is (its packs as they were
 * written); the first pack written into it makes it 4. */
#define SL_REDIS_SCHEMA 4

/* The scripts, by number: rq_scripts[] in queue_redis_scripts.c. */
enum {
    RQ_INIT,
    RQ_UPSERT,
    RQ_LEASE,
    RQ_COMPLETE, /* any number of done marks: an answer each */
    RQ_RETRY,
    RQ_DEAD,
    RQ_RELEASE,
    RQ_RENEW,
    RQ_RECOVER,
    RQ_COUNTS,
    RQ_GET,
    RQ_PAGE,
    RQ_DLQ_PAGE,
    RQ_REPLAY,
    RQ_SLOTS_SAVE,
    RQ_RUNNER_JOIN,
    RQ_RUNNER_RENEW,
    RQ_RUNNER_DROP,
    RQ_RUNNER_COUNT,
    RQ_DUMP,
    RQ_RESTORE,
    RQ_UNPACK,
    RQ_STREAM_LEASE,
    RQ_STREAM_UNLEASE,
    RQ_STREAM_UPSERT,
    RQ_COUNT_
};

extern const sl_redis_script sl_rq_scripts[RQ_COUNT_];
/* A record buffered in a batch: where its PACK_FIELDS fields are in
 * the batch's text, each behind its 2-byte length, and where its bytes
 * begin and end there (a pack's layout: a pack is a slice of the text,
 * and its first record's bytes begin with the mark of a pack); its
 * fingerprint, the sixth of its REC_ARGS. */
typedef struct {
    size_t at[PACK_FIELDS], len[PACK_FIELDS], begin, end;
    char fp[FP_HEX];
    bool first; /* sl_record.first */
} buffered_rec;

/* Whether field f of record r (its text in `text`) is `len` bytes at
 * `bytes`. */
static inline bool
sl_rq_field_is(const char *text, const buffered_rec *r, int f,
               const char *bytes, size_t len)
{
    return r->len[f] == len && memcmp(text + r->at[f], bytes, len) == 0;
}

/* Whether this feed may write packs (queue_redis_pack.c). */
enum { RQ_PACK_UNKNOWN, RQ_PACK_ON, RQ_PACK_OFF };

/* Where a batch's upserts report what they did. */
typedef struct {
    sluice_ingest_stats *counts;
    size_t n;
} buffered_call;

/* A batch's upserts, sent at commit: the records' fields one after the
 * other in `text` as a pack holds them (queue_redis.c). */
typedef struct {
    sl_buf text;
    buffered_rec *recs;
    size_t n_recs, cap_recs;
    buffered_call *calls;
    size_t n_calls, cap_calls;
    int64_t now;
} rq_batch;

/* The backend's state: a queue handle's q->state. */
typedef struct {
    sl_redis conn;
    sl_redis_script scripts[RQ_COUNT_];
    char base[128];     /* "PREFIX{q}:" */
    char meta_key[136]; /* base + "meta" */
    /* Redis's clock minus this process's wall clock, measured at open:
     * every time stored is on Redis's clock (docs/queue.md). */
    int64_t clock_offset;
    /* The batch being made; the one sl_queue_commit_send sent as packs
     * (`sent_replies` replies still to read), kept until its outcome
     * is known: a lost race upserts it again, looked up. */
    rq_batch batch, sent;
    bool sent_pending;
    size_t sent_replies;
    /* Packs: RQ_PACK_UNKNOWN until the feed's first write, then ON
     * while every record in the queue is this feed's, the last of them
     * `pack_top`. */
    int pack_mode;
    int64_t pack_top;
    /* Tests only (sl_rq_pack_race): run between a batch's WATCH and its
     * transaction. */
    void (*pack_race)(void *ctx);
    void *pack_race_ctx;
    /* sl_rq_fingerprint's digest and context, made on first use. */
    EVP_MD *fp_md;
    EVP_MD_CTX *fp_ctx;
    /* A stream's place, staged in the batch (queue_redis_streams.c):
     * the script's eight trailing arguments, in `mark_text`. */
    bool mark_staged;
    sl_buf mark_text;
    size_t mark_at[8], mark_len[8];
    /* Our claim in `runners` while `runner` holds; a thread renews it.
     * `alone`: no other runner was alive when we joined. */
    bool runner, alone;
    char runner_token[80];
    pthread_t renewer;
    pthread_mutex_t renew_mu;
    pthread_cond_t renew_cv;
    bool renew_stop, renewer_started;
    /* Another run took the claim over (this one was stopped, or cut off
     * from Redis, past the claim's lease): the run must stop. */
    atomic_bool claim_lost;
} sl_rq_queue;

sl_rq_queue *sl_rq_state(sluice_queue *q);
/* The connection's failure as the queue's error. */
sluice_err sl_rq_conn_fail(sluice_queue *q, sluice_err err);
/* Run script `which` (sl_redis_eval) on the queue's connection. */
sluice_err sl_rq_eval(sluice_queue *q, int which, redisReply **out, int argc,
                      const char **argv, const size_t *lens);
/* A reply element as text (NULL for nil) or as a number (0 for nil). */
const char *sl_rq_str(const redisReply *r, size_t i);
int64_t sl_rq_int(const redisReply *r, size_t i);
/* Free `reply` and fail with "unexpected reply". */
sluice_err sl_rq_bad_reply(sluice_queue *q, redisReply *reply,
                           const char *what);

/* A time of the caller's onto Redis's clock, and back (0 stays 0). */
static inline int64_t
sl_rq_to_redis(const sl_rq_queue *s, int64_t ms)
{
    return ms ? ms + s->clock_offset : 0;
}

static inline int64_t
sl_rq_from_redis(const sl_rq_queue *s, int64_t ms)
{
    return ms ? ms - s->clock_offset : 0;
}

/* A record's fingerprint (its url, key and meta): "ids" maps its id to
 * "RID:FP" (queue_redis.c). */
void sl_rq_fingerprint(sl_rq_queue *s, const sl_record *r,
                       char out[FP_HEX + 1]);

/*
 * Upsert n records, argv and lens REC_ARGS a record (id, url, key, meta
 * or "", origin, fingerprint), queued at `now` (Redis's clock, as text),
 * atomically (queue_redis_upsert.c): new records by plain commands in
 * one MULTI/EXEC under WATCH, changed ones by the upsert script inside
 * it. letters[0..n) gets a(dded), u(pdated) or n(o change) a record.
 */
sluice_err sl_rq_upsert(sluice_queue *q, const char *now, const char **argv,
                        const size_t *lens, size_t n, char *letters);
/* UNWATCH on the queue's connection. */
sluice_err sl_rq_unwatch(sluice_queue *q);

/* The commands of one pipeline, their arguments in two flat arrays
 * (queue_redis_cmds.c): sized at init for every argument and command,
 * then added to in order, each command ended, then sent. */
typedef struct {
    const char **args;
    size_t *lens;
    size_t n_args, cap_args;
    sl_redis_cmdv *cmds;
    size_t n_cmds, cap_cmds;
    size_t start; /* first argument of the command being built */
} sl_rq_cmds;

bool sl_rq_cmds_init(sl_rq_cmds *c, size_t cap_args, size_t cap_cmds);
void sl_rq_cmds_free(sl_rq_cmds *c);
void sl_rq_arg(sl_rq_cmds *c, const char *s, size_t len);
void sl_rq_arg_str(sl_rq_cmds *c, const char *s);
void sl_rq_cmd_end(sl_rq_cmds *c);
/* Seal the commands and send them in one round trip, their replies into
 * replies[0..c->n_cmds) (sl_redis_pipeline; the failure the queue's). */
sluice_err sl_rq_cmds_send(sluice_queue *q, sl_rq_cmds *c,
                           redisReply **replies);
/* Seal the commands and write them, their replies left to read
 * (sl_redis_pipeline_send; the caller reads c->n_cmds of them). */
sluice_err sl_rq_cmds_write(sluice_queue *q, sl_rq_cmds *c);
/* For a pipeline of n replies that is MULTI, commands, EXEC (which did
 * not come back nil): why it failed, or NULL when every command ran
 * without error. */
const char *sl_rq_exec_why(redisReply *const *replies, size_t n);

/* Records a pack: what a lease reads at a time. A lease reads its pack
 * whole, and a Lua string costs Redis about 1.2 µs a kB: a pack of 1,024
 * records (170 kB) cost a lease 0.2 ms however few records it took. */
#define SL_RQ_PACK_RECORDS 128
/* Packs unpacked a call (a client's unpack, a lease that skips origins):
 * 8,192 records, a few milliseconds. */
#define SL_RQ_UNPACK_PACKS 64

/*
 * Packs (queue_redis_pack.c). sl_rq_pack writes a batch's n records
 * (`recs` in `text`) as packs when this feed may: *packed says whether it
 * did (letters then all 'a'); if not, nothing was written. The feed's
 * other writes tell it what they did: sl_rq_pack_follow, the queue's
 * last RID before a write that added `added` records after it;
 * sl_rq_pack_lost, a write whose effect is unknown. sl_rq_unpack_all
 * turns every pack into records, a few packs a round trip.
 */
void sl_rq_pack_feed_start(sl_rq_queue *s);
sluice_err sl_rq_pack(sluice_queue *q, const char *now, const char *text,
                      const buffered_rec *recs, size_t n, char *letters,
                      bool *packed);
/* sl_rq_pack in two halves (sl_queue_commit_send): _send writes the
 * packs' transaction, *n_replies its replies (0: this batch may not be
 * packed, and nothing is left to read); _recv reads them, *written
 * false when nothing was written. Nothing else may use the connection
 * in between. */
sluice_err sl_rq_pack_send(sluice_queue *q, const char *now,
                           const char *text, const buffered_rec *recs,
                           size_t n, size_t *n_replies);
sluice_err sl_rq_pack_recv(sluice_queue *q, size_t n_replies, size_t n,
                           bool *written);
void sl_rq_pack_follow(sl_rq_queue *s, int64_t top, size_t added);
void sl_rq_pack_lost(sl_rq_queue *s);
sluice_err sl_rq_unpack_all(sluice_queue *q);
/* Tests only: fn(ctx) runs after each packed batch's WATCH and before
 * its transaction is written, where another writer may come first (NULL:
 * nothing runs). */
void sl_rq_pack_race(sluice_queue *q, void (*fn)(void *ctx), void *ctx);
/* A pack's first bytes (schema 4): no record of an earlier schema's
 * pack begins so, its id's 4-byte length being above 0. */
#define SL_RQ_PACK_MARK     "\0\0\0\0"
#define SL_RQ_PACK_MARK_LEN 4
/* One record as a pack of schema 4 holds it (`len` bytes at `rec`):
 * its fields (id url key meta origin) into at[] and lens[]; false when
 * the bytes are not one such record. */
bool sl_rq_pack_record(const char *rec, size_t len,
                       const char *at[PACK_FIELDS],
                       size_t lens[PACK_FIELDS]);

/* The record whose fields (F, in RF_ order) begin at element `at` of
 * `r`, copied into *out; false when out of memory (out cleared). */
bool sl_rq_info_read(const sl_rq_queue *s, const redisReply *r, size_t at,
                     sl_record_info *out);

/*
 * A mark's script and its arguments (queue_redis.c), built once for the
 * single call and for a pipeline of marks (queue_redis_marks.c). argv
 * points into the struct and into the mark's lease, object and failure.
 */
typedef struct {
    int which;        /* RQ_COMPLETE, RQ_RETRY, RQ_DEAD or RQ_RELEASE */
    const char *what; /* its name in messages */
    int argc;
    const char *argv[7];
    char rid[24], token[24], time[24], size[24], status[16];
} sl_rq_mark_call;

void sl_rq_mark_call_of(const sl_rq_queue *s, const sl_queue_mark *m,
                        sl_rq_mark_call *c);
/* What `reply`, the answer of one call that carried n marks of c's
 * script (n > 1 only for complete), says of the e-th, c, on `lease`:
 * SLUICE_OK for a mark made, SLUICE_ENOTFOUND when the lease is no
 * longer held, SLUICE_EDB for an answer that is neither; the message on
 * the handle. */
sluice_err sl_rq_mark_answer(sluice_queue *q, const sl_rq_mark_call *c,
                             const sl_lease *lease, const redisReply *reply,
                             size_t e, size_t n);
/* queue_redis_marks.c: marks in pipelines (sl_queue_marks). */
sluice_err sl_rq_marks(sluice_queue *q, const sl_queue_mark *v, size_t n,
                       sluice_err *results);

/* queue_redis_migrate.c: every record as it is, and records restored as
 * they are (sluice_migrate). */
sluice_err sl_rq_dump(sluice_queue *q, sl_record_info_fn *fn, void *ctx);
sluice_err sl_rq_restore(sluice_queue *q, const sl_record_info *recs,
                         size_t n);

/* queue_redis_streams.c: stream leases and places. */
sluice_err sl_rq_stream_lease(sluice_queue *q, const char *stream,
                              const char *owner, int64_t ttl_ms, bool *held,
                              int64_t *left_ms);
sluice_err sl_rq_stream_unlease(sluice_queue *q, const char *stream,
                                const char *owner);
sluice_err sl_rq_stream_mark(sluice_queue *q, const char *owner,
                             const sl_stream_mark *mark);
sluice_err sl_rq_stream_marks(sluice_queue *q, const char *stream,
                              sl_stream_mark_fn *fn, void *ctx);
/* The staged place's arguments appended to argv/lens at `at`. */
void sl_rq_stream_args(sl_rq_queue *s, const char **argv, size_t *lens,
                       size_t at);

/* queue_redis_read.c: the reads, and the DLQ's replay. */
sluice_err sl_rq_counts(sluice_queue *q, int64_t now_ms, sluice_counts *out);
sluice_err sl_rq_next_due(sluice_queue *q, int64_t *due_ms, bool *any);
sluice_err sl_rq_get(sluice_queue *q, const char *id, sl_record_info *out);
sluice_err sl_rq_list(sluice_queue *q, int state, const char *id,
                      sluice_record_fn *fn, void *ctx);
sluice_err sl_rq_dlq_list(sluice_queue *q, const sluice_dlq_filter *filter,
                          sluice_dead_fn *fn, void *ctx);
sluice_err sl_rq_replay(sluice_queue *q, const char *id,
                        const sluice_dlq_filter *filter, int64_t now_ms,
                        uint64_t *replayed);

/* queue_redis_slots.c: the runner claim, slot rows and settings. */
sluice_err sl_rq_acquire_runner(sluice_queue *q);
sluice_err sl_rq_runner_alive(sluice_queue *q, bool *alive);
void sl_rq_runner_end(sl_rq_queue *s);
/* SLUICE_ERUNNING with a message once the claim is lost, else OK. */
sluice_err sl_rq_claim_check(sluice_queue *q);
sluice_err sl_rq_slots_load(sluice_queue *q, sl_slot_row_fn *fn, void *ctx);
sluice_err sl_rq_slots_save(sluice_queue *q, const sl_slot_row *rows, size_t n);
sluice_err sl_rq_slots_clear(sluice_queue *q, const char *origin,
                             uint64_t *removed);
sluice_err sl_rq_setting_get(sluice_queue *q, const char *name, char *value,
                             size_t size);
sluice_err sl_rq_setting_set(sluice_queue *q, const char *name,
                             const char *value);

/*
 * The fields a record's hash holds, in the order RQ_GET, RQ_PAGE and
 * RQ_DLQ_PAGE return them (RQ_FIELDS in the scripts).
 */
enum {
    RF_ID,
    RF_URL,
    RF_KEY,
    RF_META,
    RF_ORIGIN,
    RF_STATE,
    RF_ATTEMPTS,
    RF_THROTTLES,
    RF_NEXT_AT,
    RF_ERROR_CLASS,
    RF_MESSAGE,
    RF_HTTP_STATUS,
    RF_SIZE,
    RF_SHA256,
    RF_CTYPE,
    RF_ETAG,
    RF_FINISHED_AT,
    RF_COUNT_
};

#endif /* SL_QUEUE_REDIS_H */
