/*
 * The queue interface: the durable states of records and their leases.
 * A backend (queue_sqlite.c, later Redis or Kinesis) is a const table of
 * operations; everything else calls the sl_queue_* wrappers in queue.c,
 * never the table. docs/queue.md states what a backend must guarantee.
 */
#ifndef SL_QUEUE_H
#define SL_QUEUE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../backend.h"
#include "../failure.h"
#include "../record/record.h"
#include "../util.h"
#include "sluice/sluice.h"

/* A record's state. The numbers are stored: never renumber. */
typedef enum {
    SL_STATE_PENDING = 0,
    SL_STATE_IN_FLIGHT = 1,
    SL_STATE_RETRYING = 2,
    SL_STATE_DONE = 3,
    SL_STATE_DEAD = 4
} sl_state;

const char *sl_state_name(sl_state state);

/*
 * A leased record. The strings share one allocation owned by the lease;
 * sl_lease_clear() frees it. `ref` and `token` identify the lease to the
 * backend and are opaque to everyone else (a row id, a stream entry's id,
 * whatever the backend keeps): a mark carrying a token that is no longer
 * current (the record was re-ingested with a new url, or the lease
 * expired and was taken again) changes nothing and returns
 * SLUICE_ENOTFOUND.
 */
typedef struct {
    uint64_t ref[2];
    uint64_t token;
    char *id;
    char *url;
    char *key;
    char *origin;
    char *meta; /* JSON object text, or NULL */
    unsigned attempts;        /* failed attempts so far, throttles excluded */
    int64_t first_attempt_ms; /* when it was first leased */
    bool was_retrying;        /* it came from retrying, not pending */
} sl_lease;

void sl_lease_clear(sl_lease *lease);

typedef struct {
    size_t max;       /* lease at most this many */
    int64_t now_ms;   /* wall clock */
    int64_t lease_ms; /* the leases expire at now_ms + lease_ms */
    /* Leave records of these origins where they are. */
    const char *const *skip_origins;
    size_t n_skip;
} sl_lease_req;

/* What the store reports about an object it has made durable. */
typedef struct {
    int64_t size;
    const char *sha256_hex;   /* 64 hex digits */
    const char *content_type; /* NULL if the origin sent none */
    const char *etag;         /* NULL if the origin sent none */
} sl_object_info;

/*
 * An origin's slots as the queue keeps them (slots/slots_durable.c): the
 * promise of the runner that wrote the row, that at most `held` requests
 * to the origin are outstanding until `until_boot` on the clock of boot
 * `boot_id` (and none from before it after), and the origin's pause.
 */
typedef struct {
    const char *origin;  /* scheme://host:port */
    unsigned held;       /* slots held: requests that may be outstanding */
    unsigned in_flight;  /* requests in flight when it was written */
    const char *boot_id; /* the boot the _boot times are of */
    int64_t until_boot;  /* held until then (sl_boot_ms of that boot) */
    int64_t until_wall;  /* the same on the wall clock, for people */
    int64_t hold_ms;     /* the writer's --timeout and margin */
    int64_t paused_boot; /* a pause (Retry-After) ends then; 0: none */
    int64_t paused_wall;
    uint64_t token;       /* the highest token the writer handed out */
    int64_t written_wall; /* when it was written */
    int64_t written_boot; /* the same on the boot clock */
    /* The pacer's state (slots/pacer.h): no request before next_start
     * (boot clock); the limits it learnt (conc 0: none below the cap;
     * rate 0: not paced); the rate the origin advertised and until when. */
    int64_t next_start;
    double conc, rate, advised;
    int64_t advised_until;
} sl_slot_row;

/* A row that holds, pauses and remembers nothing: it is removed. */
static inline bool
sl_slot_row_empty(const sl_slot_row *r)
{
    return r->held == 0 && r->paused_boot == 0 && r->paused_wall == 0 &&
           r->conc == 0 && r->rate == 0 && r->advised == 0;
}

/* Return non-zero to stop. */
typedef int sl_slot_row_fn(void *ctx, const sl_slot_row *row);

/* One record as the queue holds it, for inspection and tests. */
typedef struct {
    sl_state state;
    char *id, *url, *key, *meta, *origin;
    unsigned attempts, throttles;
    int64_t next_at_ms; /* retry due time, or lease expiry */
    char *error_class, *message;
    int http_status;
    int64_t size;
    char *sha256_hex, *content_type, *etag;
    /* Wall clock ms; 0: not yet (dump and restore only). */
    int64_t queued_ms, first_attempt_ms, finished_ms;
} sl_record_info;

void sl_record_info_clear(sl_record_info *info);

/* Return non-zero to stop. */
typedef int sl_record_info_fn(void *ctx, const sl_record_info *rec);

/*
 * Where the ingester of a stream (source/kinesis.c) is in one of its
 * shards: the last record stored from it, kept with the records, in the
 * transaction that stored them.
 */
typedef struct {
    const char *stream; /* "kinesis://NAME" */
    const char *shard;
    const char *seq;    /* the last record's sequence number; "" none */
    uint32_t subseq;    /* its sub-record within a KPL aggregate */
    bool finished;      /* a closed shard, read to its end */
    int64_t behind_ms;  /* how far behind the stream's end; -1: unknown */
    int64_t arrival_ms; /* the last record's arrival, wall ms; with no
                           record yet, when reading began (0: none) */
    int64_t written_ms; /* when it was stored, wall ms (set by the queue) */
} sl_stream_mark;

/* Return non-zero to stop. */
typedef int sl_stream_mark_fn(void *ctx, const sl_stream_mark *mark);

/* What a mark of a batch says of its lease (sl_queue_marks). */
typedef enum {
    SL_QUEUE_MARK_DONE,    /* sl_queue_complete */
    SL_QUEUE_MARK_RETRY,   /* sl_queue_retry */
    SL_QUEUE_MARK_DEAD,    /* sl_queue_dead */
    SL_QUEUE_MARK_RELEASE  /* sl_queue_release */
} sl_queue_mark_kind;

/* One mark of a batch: what the single call of its kind takes. */
typedef struct {
    sl_queue_mark_kind kind;
    const sl_lease *lease;
    const sl_object_info *obj; /* done; NULL otherwise */
    const sl_failure *why;     /* retry and dead; NULL otherwise */
    int64_t at_ms;             /* retry: when due; the others: now */
    bool counts_attempt;       /* retry */
} sl_queue_mark;

typedef struct sl_queue_ops sl_queue_ops;

/* The handle: the public sluice_queue is this struct. */
struct sluice_queue {
    const sl_queue_ops *ops;
    char *location;
    void *state; /* the backend's, ops->state_size bytes, zeroed */
    bool in_batch;
    bool commit_sent; /* sl_queue_commit_send's, not yet waited for */
    /* Threads that share the handle (a run's loop, its marker, its slot
     * service) take turns on it: sl_queue_lock. */
    pthread_mutex_t turn;
    atomic_bool turn_taken;
    pthread_t turn_owner;
    char errmsg[512];
};

/* Feature bits a backend declares. */
enum {
    SL_QUEUE_F_TRANSACTIONS = 1u << 0, /* begin/commit group writes */
    SL_QUEUE_F_EXCLUSIVE = 1u << 1,    /* acquire_runner: one runner */
    SL_QUEUE_F_SLOTS = 1u << 2,        /* slot rows and settings kept */
    SL_QUEUE_F_SKIP = 1u << 3,         /* a lease can skip origins */
    SL_QUEUE_F_STREAMS = 1u << 4,      /* stream leases and marks kept */
    /* A server that may be away for a while: SLUICE_ENETWORK, ETIMEOUT
     * and EBUSY (loading) are an outage to wait out, not a failure;
     * each mark is written at once (begin and commit group upserts
     * only), so a failure leaves exactly the marks not yet made. */
    SL_QUEUE_F_OUTAGES = 1u << 5,
    /* Each handle is a connection of its own to a server that orders
     * every handle's calls: a second handle on the queue works beside
     * the first, with no turn to wait for (the run's marker has one). */
    SL_QUEUE_F_CONNECTIONS = 1u << 6
};

struct sl_queue_ops {
    sl_backend backend; /* family SL_FAMILY_QUEUE */
    unsigned features;
    /* The slot service that keeps its slots (slots/slots.h), by name. */
    const char *slots;
    size_t state_size;

    sluice_err (*open)(sluice_queue *q, const char *location,
                       const sluice_queue_opts *opts);
    /* Also called after a failed open, on whatever open left. */
    void (*close)(sluice_queue *q);
    /* Optional: group the writes that follow into one atomic commit. */
    sluice_err (*begin)(sluice_queue *q);
    sluice_err (*commit)(sluice_queue *q);
    sluice_err (*rollback)(sluice_queue *q);
    /* Optional: commit in two halves (sl_queue_commit_send); *sent
     * false: committed whole, nothing to wait for. */
    sluice_err (*commit_send)(sluice_queue *q, bool *sent);
    sluice_err (*commit_wait)(sluice_queue *q);

    /* Adds to counts->added, updated and unchanged. */
    sluice_err (*upsert)(sluice_queue *q, const sl_record *recs, size_t n,
                         int64_t now_ms, sluice_ingest_stats *counts);
    /* Optional: a feed starts; sl_record.first is about its records. */
    void (*feed_start)(sluice_queue *q);
    sluice_err (*lease)(sluice_queue *q, const sl_lease_req *req,
                        sl_lease *out, size_t *n_out);
    sluice_err (*complete)(sluice_queue *q, const sl_lease *lease,
                           const sl_object_info *obj, int64_t now_ms);
    sluice_err (*retry)(sluice_queue *q, const sl_lease *lease,
                        int64_t due_ms, const sl_failure *why,
                        bool counts_attempt);
    sluice_err (*dead)(sluice_queue *q, const sl_lease *lease,
                       const sl_failure *why, int64_t now_ms);
    sluice_err (*release)(sluice_queue *q, const sl_lease *lease,
                          int64_t now_ms);
    /* Optional: marks[0..n) in order, in as few round trips as it can,
     * each one's result in results[i] (sl_queue_marks says what they
     * mean). Without it, the single calls in order. */
    sluice_err (*marks)(sluice_queue *q, const sl_queue_mark *v, size_t n,
                        sluice_err *results);
    /* Optional: move the deadlines of leases[0..n) still current to
     * until_ms (the run renews its leases while it works on them). */
    sluice_err (*renew)(sluice_queue *q, const sl_lease *leases, size_t n,
                        int64_t until_ms);
    /* Optional: become the only runner (SLUICE_ERUNNING if not). */
    sluice_err (*acquire_runner)(sluice_queue *q);
    sluice_err (*recover)(sluice_queue *q, int64_t now_ms,
                          uint64_t *recovered);
    sluice_err (*counts)(sluice_queue *q, int64_t now_ms,
                         sluice_counts *out);
    /* The earliest due time of a retrying record (a queue several
     * runners share: or of a lease that lapses); *any false if none. */
    sluice_err (*next_due)(sluice_queue *q, int64_t *due_ms, bool *any);
    sluice_err (*get)(sluice_queue *q, const char *id,
                      sl_record_info *out);
    sluice_err (*dlq_list)(sluice_queue *q, const sluice_dlq_filter *filter,
                           sluice_dead_fn *fn, void *ctx);
    /* Every record of `state` (< 0: all; `id` non-NULL: that one only),
     * in feed order, streamed. */
    sluice_err (*list)(sluice_queue *q, int state, const char *id,
                       sluice_record_fn *fn, void *ctx);
    sluice_err (*replay)(sluice_queue *q, const char *id,
                         const sluice_dlq_filter *filter, int64_t now_ms,
                         uint64_t *replayed);
    /* With SL_QUEUE_F_SLOTS: every slot row; rows[0..n) written, durable
     * when it returns (a row holding nothing and with no pause removed);
     * the rows of `origin` (NULL: all) removed. */
    sluice_err (*slots_load)(sluice_queue *q, sl_slot_row_fn *fn, void *ctx);
    sluice_err (*slots_save)(sluice_queue *q, const sl_slot_row *rows,
                             size_t n);
    sluice_err (*slots_clear)(sluice_queue *q, const char *origin,
                              uint64_t *removed);
    /* With SL_QUEUE_F_SLOTS: settings stored with the queue ("cap");
     * SLUICE_ENOTFOUND for one never set. */
    sluice_err (*setting_get)(sluice_queue *q, const char *name,
                              char *value, size_t size);
    sluice_err (*setting_set)(sluice_queue *q, const char *name,
                              const char *value);
    /* Optional: whether a runner (this process or another) uses the
     * queue now. */
    sluice_err (*runner_alive)(sluice_queue *q, bool *alive);
    /* Optional (migration): every record as it is, state, counts and
     * results, in feed order, streamed; and recs[0..n) appended as they
     * are, after the records there (an id there already: SLUICE_EINVAL). */
    sluice_err (*dump)(sluice_queue *q, sl_record_info_fn *fn, void *ctx);
    sluice_err (*restore)(sluice_queue *q, const sl_record_info *recs,
                          size_t n);
    /*
     * With SL_QUEUE_F_STREAMS. A stream's ingester lease, on the queue's
     * clock: taken for `owner` for ttl_ms when it is free, lapsed or
     * already owner's (then renewed); *held says whether owner holds it
     * now and *left_ms for how long the holder (owner or another) has it.
     * stream_unlease gives it up if owner holds it.
     */
    sluice_err (*stream_lease)(sluice_queue *q, const char *stream,
                               const char *owner, int64_t ttl_ms, bool *held,
                               int64_t *left_ms);
    sluice_err (*stream_unlease)(sluice_queue *q, const char *stream,
                                 const char *owner);
    /* Inside a transaction: `mark` is stored with the transaction's
     * records, or not at all. The commit is refused (SLUICE_EAGAIN,
     * nothing of it written) when `owner` no longer holds the stream's
     * lease: another ingester took it over. */
    sluice_err (*stream_mark)(sluice_queue *q, const char *owner,
                              const sl_stream_mark *mark);
    /* Every mark of `stream` (NULL: of every stream), by stream and
     * shard. */
    sluice_err (*stream_marks)(sluice_queue *q, const char *stream,
                               sl_stream_mark_fn *fn, void *ctx);
};

/* Record a one-line error detail on the handle and return `err`. */
sluice_err sl_queue_fail(sluice_queue *q, sluice_err err, const char *fmt,
                         ...) SL_PRINTF(3, 4);

/*
 * A turn on the handle for the calling thread, for every use of it while
 * another thread may use it too: a transaction, or one call. Taking a
 * turn the thread holds already is a bug that would hang: it stops the
 * program with a message instead.
 */
void sl_queue_lock(sluice_queue *q);
void sl_queue_unlock(sluice_queue *q);
/* True when the calling thread holds the turn. */
bool sl_queue_holds_turn(sluice_queue *q);

/*
 * The wrappers. Each asserts its arguments, supplies defaults for optional
 * operations and is where test builds inject faults.
 */
sluice_err sl_queue_begin(sluice_queue *q);
sluice_err sl_queue_commit(sluice_queue *q);
sluice_err sl_queue_rollback(sluice_queue *q);
/*
 * A commit in two halves, so that the caller makes its next batch while
 * the queue writes this one: _send ends the batch and sends it, _wait
 * says how it went (and only then are its upserts' counts added). In
 * between, only begin, upsert inside that batch and rollback (of the
 * new batch) may be called; _wait comes before anything else, and
 * before the next _send. A backend that cannot split its commit commits
 * whole in _send, and _wait says OK.
 */
sluice_err sl_queue_commit_send(sluice_queue *q);
sluice_err sl_queue_commit_wait(sluice_queue *q);
/*
 * Insert or update recs[0..n) by id (DESIGN.md: same url and key, no-op;
 * a new url or key, pending again; new meta, kept) and add the outcome to
 * counts->added, ->updated and ->unchanged. Keys are not required to be
 * unique: two records with one key write the same object.
 */
sluice_err sl_queue_upsert(sluice_queue *q, const sl_record *recs, size_t n,
                           int64_t now_ms, sluice_ingest_stats *counts);
/* A feed starts: the upserts that follow are its records, and a record
 * whose `first` is set is the first this feed names its id (ingest's
 * checker knows). A backend may write such records without looking
 * their ids up when the queue held nothing at the feed's start (Redis:
 * packs). Opening a queue starts a feed too. */
void sl_queue_feed_start(sluice_queue *q);
/* Lease up to req->max ready records: due retries first, then pending in
 * feed order, then leases that expired. */
sluice_err sl_queue_lease(sluice_queue *q, const sl_lease_req *req,
                          sl_lease *out, size_t *n_out);
sluice_err sl_queue_complete(sluice_queue *q, const sl_lease *lease,
                             const sl_object_info *obj, int64_t now_ms);
/* Back to waiting until due_ms. A throttle does not count an attempt. */
sluice_err sl_queue_retry(sluice_queue *q, const sl_lease *lease,
                          int64_t due_ms, const sl_failure *why,
                          bool counts_attempt);
/* Into the dead-letter queue, counting this attempt. */
sluice_err sl_queue_dead(sluice_queue *q, const sl_lease *lease,
                         const sl_failure *why, int64_t now_ms);
/* Give back a lease that was never started: as it was, no attempt used. */
sluice_err sl_queue_release(sluice_queue *q, const sl_lease *lease,
                            int64_t now_ms);
/*
 * Make the marks v[0..n) in order, as the single calls above would, in
 * as few round trips as the backend can (Redis: a pipeline of up to a
 * few hundred marks; SQLite: the single calls). results[i] says what
 * became of v[i]:
 *   SLUICE_OK           made;
 *   SLUICE_ENOTFOUND    its lease is no longer held: stale, nothing done;
 *   SLUICE_EAGAIN       not sent: a failure before it stopped the batch;
 *   SLUICE_ETIMEOUT, SLUICE_ENETWORK
 *                       sent, and no answer came: the queue may yet make
 *                       it (a later stale answer may be its own doing);
 *   any other           its own failure, answered: nothing done.
 * The marks after a failure are not made, except those of one pipeline
 * that the queue answered before the failure was known: their results
 * say so. Returns SLUICE_OK when every mark was made or stale, else the
 * failure of the first mark that was neither, its message on the handle.
 */
sluice_err sl_queue_marks(sluice_queue *q, const sl_queue_mark *v, size_t n,
                          sluice_err *results);
/* Renew leases[0..n) to until_ms: a lease is a deadline, and a record
 * outlives one request (redirect hops, the store, retries of an upload).
 * Leases no longer current are left alone. */
sluice_err sl_queue_renew(sluice_queue *q, const sl_lease *leases, size_t n,
                          int64_t until_ms);
sluice_err sl_queue_acquire_runner(sluice_queue *q);
/* The slot service that keeps this queue's slots (slots/slots.h). */
const char *sl_queue_slots(const sluice_queue *q);
/* As the only runner: make every in-flight record ready again. */
sluice_err sl_queue_recover(sluice_queue *q, int64_t now_ms,
                            uint64_t *recovered);
sluice_err sl_queue_get(sluice_queue *q, const char *id,
                        sl_record_info *out);
/* When the next retrying record comes due; *any is false if none waits. */
sluice_err sl_queue_next_due(sluice_queue *q, int64_t *due_ms, bool *any);
/* True when the backend has the feature (SL_QUEUE_F_*). */
bool sl_queue_has(const sluice_queue *q, unsigned feature);
/* Whether `err` from `q` means the queue is away for a while, an outage
 * to wait out (SL_QUEUE_F_OUTAGES, and a network error, a timeout or a
 * server still loading), rather than a failure. */
bool sl_queue_outage(const sluice_queue *q, sluice_err err);
/* Slot rows and settings (SLUICE_EUNSUPPORTED without SL_QUEUE_F_SLOTS).
 * Save and clear run in a transaction of their own (or the caller's). */
sluice_err sl_queue_slots_load(sluice_queue *q, sl_slot_row_fn *fn,
                               void *ctx);
sluice_err sl_queue_slots_save(sluice_queue *q, const sl_slot_row *rows,
                               size_t n);
sluice_err sl_queue_slots_clear(sluice_queue *q, const char *origin,
                                uint64_t *removed);
sluice_err sl_queue_setting_get(sluice_queue *q, const char *name,
                                char *value, size_t size);
sluice_err sl_queue_setting_set(sluice_queue *q, const char *name,
                                const char *value);
/*
 * A number stored as a setting (the cap, the rate: lib/run/cap.c writes
 * them) in *value, INFINITY for "none". SLUICE_ENOTFOUND when the queue
 * has none; SLUICE_EDB, said in the queue's message, when the text is
 * neither a finite number above 0 nor "none"; else as setting_get.
 */
sluice_err sl_queue_setting_number(sluice_queue *q, const char *name,
                                   double *value);
/* Whether a runner uses the queue now; false where the backend cannot
 * tell. */
bool sl_queue_runner_alive(sluice_queue *q);
/* Every record as it is, in feed order; records appended as they are
 * (SLUICE_EUNSUPPORTED where the backend cannot). For migrations. */
sluice_err sl_queue_dump(sluice_queue *q, sl_record_info_fn *fn, void *ctx);
sluice_err sl_queue_restore(sluice_queue *q, const sl_record_info *recs,
                            size_t n);
/*
 * Streams (SLUICE_EUNSUPPORTED without SL_QUEUE_F_STREAMS): the ingester
 * lease of a stream and where its ingester is in each shard; see the ops
 * above. sl_queue_stream_mark runs inside the caller's transaction.
 */
sluice_err sl_queue_stream_lease(sluice_queue *q, const char *stream,
                                 const char *owner, int64_t ttl_ms,
                                 bool *held, int64_t *left_ms);
sluice_err sl_queue_stream_unlease(sluice_queue *q, const char *stream,
                                   const char *owner);
sluice_err sl_queue_stream_mark(sluice_queue *q, const char *owner,
                                const sl_stream_mark *mark);
sluice_err sl_queue_stream_marks(sluice_queue *q, const char *stream,
                                 sl_stream_mark_fn *fn, void *ctx);

extern const sl_queue_ops sl_queue_sqlite;
/* Redis (queue_redis.c): redis://HOST:PORT and unix:///PATH. */
extern const sl_queue_ops sl_queue_redis;
extern const sl_queue_ops sl_queue_redis_unix;

#endif /* SL_QUEUE_H */
