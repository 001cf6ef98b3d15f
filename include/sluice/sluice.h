/*
 * sluice: move a large, changing set of remote assets into object storage
 * without ever sending an origin more simultaneous requests than it allows.
 * This is the library's whole public interface; the `sluice` tool in src/
 * is written on it and nothing else.
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Every error sluice reports, with its message. The enum, sluice_errname()
 * and sluice_strerror() are all generated from this one list, so they can
 * never fall out of step. Codes are stable: append, never renumber.
 */
#define SLUICE_ERRNO_MAP(XX)                                                  \
    XX(OK, "success")                                                         \
    XX(NOMEM, "out of memory")                                                \
    XX(INVAL, "invalid argument")                                             \
    XX(IO, "input/output error")                                              \
    XX(NOENT, "no such file or directory")                                    \
    XX(ACCES, "permission denied")                                            \
    XX(DB, "database error")                                                  \
    XX(NOTDB, "not a sluice database")                                        \
    XX(DBVERSION, "database was written by a newer sluice")                   \
    XX(READONLY, "database is read-only")                                     \
    XX(BUSY, "database is locked by another process")                         \
    XX(RUNNING, "another sluice run is using this database")                  \
    XX(FORMAT, "unrecognised feed format")                                    \
    XX(PARSE, "malformed record")                                             \
    XX(URL, "invalid URL")                                                    \
    XX(KEY, "invalid object key")                                             \
    XX(TOOLONG, "too long")                                                   \
    XX(NOTFOUND, "no such record")                                            \
    XX(STORE, "store error")                                                  \
    XX(NOSPACE, "no space left in the store")                                 \
    XX(CONFIG, "configuration error")                                         \
    XX(POLICY, "refused by the URL policy")                                   \
    XX(HTTP, "HTTP error")                                                    \
    XX(NETWORK, "network error")                                              \
    XX(TIMEOUT, "timed out")                                                  \
    XX(INTERRUPTED, "interrupted")                                            \
    XX(UNSUPPORTED, "not supported")                                          \
    XX(INTERNAL, "internal error")                                            \
    XX(AGAIN, "not now: try again later")

typedef enum {
#define SLUICE_ERR_ENUM_(name, msg) SLUICE_E##name,
    SLUICE_ERRNO_MAP(SLUICE_ERR_ENUM_)
#undef SLUICE_ERR_ENUM_
        SLUICE_E_COUNT_
} sluice_err;

#define SLUICE_OK SLUICE_EOK

/* "NOMEM" for SLUICE_ENOMEM; "UNKNOWN" for a code outside the list. */
const char *sluice_errname(sluice_err err);
/* A short lower-case sentence fragment, "out of memory". Never NULL. */
const char *sluice_strerror(sluice_err err);

/* The library's version, "MAJOR.MINOR.PATCH". */
const char *sluice_version(void);

/* ---------------------------------------------------------------- queue */

/*
 * A handle on the durable queue of records. The location is a path to a
 * SQLite file (the embedded default), or "sqlite:PATH". Other backends are
 * chosen by URL scheme as they are added.
 */
typedef struct sluice_queue sluice_queue;

enum {
    /* Open for reading only: never create, migrate or write. */
    SLUICE_QUEUE_READONLY = 1u << 0,
    /* Fail with SLUICE_ENOENT instead of creating a missing database. */
    SLUICE_QUEUE_NOCREATE = 1u << 1
};

typedef struct {
    unsigned flags;          /* SLUICE_QUEUE_* */
    unsigned busy_timeout_ms; /* wait this long for a lock; 0: 5000 */
} sluice_queue_opts;

/*
 * Open (creating and migrating as needed) the queue at `location`. On
 * failure *out is NULL and, when `errbuf` is given, it receives a one-line
 * reason naming the file. The caller owns the handle and closes it.
 */
sluice_err sluice_queue_open(const char *location,
                             const sluice_queue_opts *opts,
                             sluice_queue **out, char *errbuf,
                             size_t errbuf_size);
void sluice_queue_close(sluice_queue *q);

/*
 * The detail of the last error on this handle, one line without a final
 * newline ("sluice.db: database is locked by another process"). Valid until
 * the next call on the handle.
 */
const char *sluice_queue_errmsg(const sluice_queue *q);

/* Number of records in each state, and the age of the oldest pending. */
typedef struct {
    uint64_t pending;   /* ready to be fetched */
    uint64_t in_flight; /* leased by a runner */
    uint64_t retrying;  /* waiting for a retry time */
    uint64_t done;      /* object stored and verified */
    uint64_t dead;      /* in the dead-letter queue */
    uint64_t total;
    /* Seconds since the oldest pending record was queued; -1 if none. */
    double oldest_pending_age;
} sluice_counts;

sluice_err sluice_queue_counts(sluice_queue *q, sluice_counts *out);

/* --------------------------------------------------------------- ingest */

typedef enum {
    SLUICE_FORMAT_AUTO = 0, /* detect from the first bytes */
    SLUICE_FORMAT_JSONL,    /* one JSON object a line */
    SLUICE_FORMAT_CSV,      /* RFC 4180, header row naming at least url */
    SLUICE_FORMAT_LINES     /* one URL a line, # comments */
} sluice_format;

/* "jsonl", "csv", "lines" or "auto"; -1 for anything else. */
int sluice_format_from_name(const char *name);
const char *sluice_format_name(sluice_format format);

typedef struct {
    uint64_t added;     /* new ids */
    uint64_t updated;   /* known ids whose url, key or meta changed */
    uint64_t unchanged; /* known ids ingested again as they were */
    uint64_t rejected;  /* malformed or refused lines */
    /* Records whose id an earlier record of the same ingest had (the last
     * wins), and records naming a key another record of it names (one
     * object would overwrite the other); with strict, also rejected. */
    uint64_t duplicate_ids;
    uint64_t shared_keys;
} sluice_ingest_stats;

/*
 * Called once for each rejected record with the file name given to
 * sluice_ingest_fd(), the 1-based line where the record starts and a short
 * reason ("url: scheme must be http or https").
 */
typedef void sluice_reject_fn(void *ctx, const char *file, uint64_t line,
                              const char *reason);

/* Called as each input of sluice_ingest_fds() starts, with its name. */
typedef void sluice_ingest_input_fn(void *ctx, const char *name);

/* Called after each committed batch with the totals so far. */
typedef void sluice_ingest_progress_fn(void *ctx,
                                       const sluice_ingest_stats *so_far);

/* Something the library says once about what it did, one line ("URL
 * policy stored with the queue: ..."). */
typedef void sluice_notice_fn(void *ctx, const char *message);

typedef struct {
    sluice_format format;
    sluice_reject_fn *on_reject; /* NULL: rejections are only counted */
    sluice_ingest_progress_fn *on_progress; /* may be NULL */
    void *ctx;                              /* passed to both */
    /* Records per transaction; 0: a default tuned for throughput. */
    unsigned batch_size;
    /* The URL policy at ingest: a URL whose host is a literal address
     * (any spelling) or localhost in a refused range is rejected, unless
     * allow_private, or it is in one of allow_nets (CIDRs). Names are
     * checked when fetched, on the address they resolve to. What these
     * allow is added to the policy stored with the queue, which ingest
     * applies too and a run given no policy of its own uses (said
     * through on_notice when it changes); reset_policy forgets the
     * stored policy first. */
    int allow_private;
    const char *const *allow_nets;
    size_t n_allow_nets;
    int reset_policy;
    sluice_notice_fn *on_notice; /* may be NULL; gets ctx */
    /* A duplicate id or a key two records name, within one ingest (one
     * sluice_ingest_fds call), is counted in the stats and reported
     * through on_warning ("id sku-1 also on line 4: the last wins", "key
     * img/1.jpg also named by line 7 (id sku-9)"); with strict, the later
     * record is rejected instead (on_reject), and the earlier stays. */
    sluice_reject_fn *on_warning; /* may be NULL */
    int strict;
    sluice_ingest_input_fn *on_input; /* may be NULL */
    /* The names of the CSV columns (matched in any case) or JSON Lines
     * members (matched exactly) holding the url, the id and the key
     * (NULL: "url", "id", "key"). A CSV header without the url column,
     * or without one named here, is reported once, at the header, and the
     * file is skipped; a JSON Lines object without them is rejected with
     * the member names it has. */
    const char *url_column;
    const char *id_column;
    const char *key_column;
    /* CSV: the field delimiter (not '"', CR or LF); 0: the header's, a
     * comma unless it has none and has semicolons, or else tabs. Also
     * used to recognise a CSV header when the format is detected. */
    char delimiter;
} sluice_ingest_opts;

/*
 * Read a feed from `fd` until end of file and upsert every valid record
 * (see DESIGN.md: same id and url is a no-op, a new url replaces a pending
 * one). Memory stays flat whatever the size of the feed. Bad records are
 * reported through on_reject and counted, and cost nothing else. `stats`
 * is added to, so one struct can sum several files. Returns an error only
 * for failures that stopped the work (a read error, the database); records
 * committed before that stay committed.
 */
sluice_err sluice_ingest_fd(sluice_queue *q, int fd, const char *name,
                            const sluice_ingest_opts *opts,
                            sluice_ingest_stats *stats);

/* One input of an ingest: a descriptor the caller owns, and its name for
 * messages. */
typedef struct {
    int fd;
    const char *name;
} sluice_ingest_input;

/*
 * Several inputs read one after the other as one ingest, as
 * sluice_ingest_fd() reads one: duplicate ids and shared keys are found
 * across them too ("id sku-1 also at a.csv:4"). Stops at the first input
 * that fails (earlier inputs' records stay committed).
 */
sluice_err sluice_ingest_fds(sluice_queue *q,
                             const sluice_ingest_input *inputs,
                             size_t n_inputs, const sluice_ingest_opts *opts,
                             sluice_ingest_stats *stats);

/* ------------------------------------------------------- stream ingest */

/* Where the ingester starts reading a shard it has no place in yet. */
typedef enum {
    SLUICE_STREAM_TRIM_HORIZON = 0, /* its oldest record still kept */
    SLUICE_STREAM_LATEST,           /* records put from now on */
    SLUICE_STREAM_AT_TIMESTAMP      /* records put at or after at_ms */
} sluice_stream_from;

typedef struct {
    sluice_stream_from from;
    int64_t at_ms;       /* with SLUICE_STREAM_AT_TIMESTAMP: wall ms */
    int follow;          /* tail the stream until *stop; else end at its
                            current end */
    volatile int *stop;  /* set non-zero (from a signal handler) to stop */
    double lease_s;      /* the ingester lease; 0: 15 s */
    double poll_s;       /* an idle shard is read again after; 0: 1 s */
} sluice_stream_opts;

/*
 * Ingest a stream ("kinesis://NAME"): every shard, a closed parent read
 * to its end before its children, each record's data a feed record (a
 * JSON object, as a JSON Lines line; KPL aggregates de-aggregated). Each
 * batch of records is upserted in one transaction with the shard's new
 * place, so a crash never loses a record and a place never passes one
 * not yet stored; a restart goes on after the stored place. One ingester
 * a stream and queue: another waits as a standby (said through
 * on_notice) and takes over when the lease of the first lapses. Bad
 * records are reported through opts->on_reject with `file` naming the
 * stream, shard and sequence number and `line` 0, and skipped. Without
 * follow, returns once every shard is read to the stream's end (as it
 * was when reached); with follow, when *stop is set
 * (SLUICE_EINTERRUPTED). The format and column options of `opts` are
 * not used (records are JSON objects).
 */
sluice_err sluice_ingest_stream(sluice_queue *q, const char *location,
                                const sluice_stream_opts *sopts,
                                const sluice_ingest_opts *opts,
                                sluice_ingest_stats *stats);

/* Where a stream's ingester is in one shard (sluice status). */
typedef struct {
    const char *stream, *shard;
    const char *seq;    /* the last record stored; "" when none yet */
    uint32_t subseq;    /* its sub-record in a KPL aggregate */
    int finished;       /* a closed shard, read to its end */
    int64_t behind_ms;  /* behind the stream's end then; -1: unknown */
    int64_t arrival_ms; /* that record's arrival, wall ms; 0: none */
    int64_t written_ms; /* when the place was stored, wall ms */
} sluice_stream_place;

/* Return non-zero to stop the listing early. */
typedef int sluice_stream_place_fn(void *ctx,
                                   const sluice_stream_place *place);

/* Every stream place stored with the queue, by stream and shard. A queue
 * that keeps none (or a backend without streams) lists nothing. */
sluice_err sluice_stream_places(sluice_queue *q, sluice_stream_place_fn *fn,
                                void *ctx);

/* ------------------------------------------------------------- migrate */

/* What sluice_migrate copied. */
typedef struct {
    sluice_counts records; /* by state, as they arrived */
    unsigned settings;     /* the cap, rate and URL policy kept */
    unsigned in_flight;    /* in flight at `from` (its run died): ready */
} sluice_migrate_stats;

/* Called every few thousand records with the number copied so far. */
typedef void sluice_migrate_progress_fn(void *ctx, uint64_t copied);

/*
 * Copy the queue `from` into `to` (another backend, say SQLite into
 * Redis) as it is: every record in feed order with its state, attempts
 * and results (a done record stays done: nothing is fetched again, a
 * dead one stays in the dead-letter queue), and the settings stored with
 * it (cap, rate, URL policy). `to` must hold no record. Refused while a
 * run uses `from` (SLUICE_ERUNNING) or while slots of a run that died are
 * held there (SLUICE_EAGAIN: the message says until when), since `to`'s
 * slot service would not know them. Records a dead run left in flight
 * arrive ready. `from` is not changed. On failure errbuf says why in one
 * line; records copied stay in `to`.
 */
sluice_err sluice_migrate(sluice_queue *from, sluice_queue *to,
                          sluice_migrate_progress_fn *progress, void *ctx,
                          sluice_migrate_stats *stats, char *errbuf,
                          size_t errbuf_size);

/* ---------------------------------------------------------------- list */

/* A record's state. */
typedef enum {
    SLUICE_STATE_PENDING = 0,
    SLUICE_STATE_IN_FLIGHT = 1,
    SLUICE_STATE_RETRYING = 2,
    SLUICE_STATE_DONE = 3,
    SLUICE_STATE_DEAD = 4
} sluice_state;

/* "pending", "in_flight", "retrying", "done", "dead". */
const char *sluice_state_name(sluice_state state);
/* The state of that name, or -1. */
int sluice_state_from_name(const char *name);

/* A record as sluice_list() hands it out; strings are NULL when unset. */
typedef struct {
    const char *id;
    const char *url;
    const char *key;
    const char *meta; /* JSON object text */
    sluice_state state;
    unsigned attempts;
    int64_t size;             /* done: the object's bytes; else -1 */
    const char *sha256;       /* done: lower-case hex */
    const char *content_type; /* done */
    const char *etag;         /* done */
    const char *error_class;  /* dead (or retrying): "http", "network"... */
    const char *message;
    int http_status;     /* the last response's, 0 when none */
    int64_t finished_at; /* done or dead: ms since the epoch; else 0 */
} sluice_record;

/* Return non-zero to stop the listing early. */
typedef int sluice_record_fn(void *ctx, const sluice_record *rec);

/* Restrict sluice_list; state < 0 matches every state. */
typedef struct {
    int state;
} sluice_list_filter;

/*
 * Hand every record matching `filter` (NULL: all) to `fn`, in feed order,
 * streamed: memory does not grow with the queue.
 */
sluice_err sluice_list(sluice_queue *q, const sluice_list_filter *filter,
                       sluice_record_fn *fn, void *ctx);

/* Hand the record `id` to `fn`; SLUICE_ENOTFOUND if there is none. */
sluice_err sluice_record_get(sluice_queue *q, const char *id,
                             sluice_record_fn *fn, void *ctx);

/* ------------------------------------------------------------------ dlq */

/* A dead-lettered record, as sluice_dlq_list() hands it out. */
typedef struct {
    const char *id;
    const char *url;
    const char *key;
    const char *meta;        /* JSON object text, or NULL */
    const char *error_class; /* "http", "network", "policy", ... */
    const char *message;     /* one line */
    int http_status;         /* 0 when no response was received */
    unsigned attempts;
    int64_t failed_at; /* milliseconds since the epoch */
} sluice_dead_record;

/* Return non-zero to stop the listing early. */
typedef int sluice_dead_fn(void *ctx, const sluice_dead_record *rec);

/* The error classes a dead record may have, by index from 0: "http",
 * "network", "timeout", ...; NULL past the last. */
const char *sluice_error_class_name(unsigned i);

/* Restrict dlq list/replay; NULL fields match everything. */
typedef struct {
    const char *error_class;
} sluice_dlq_filter;

/* Hand every dead record matching `filter` to `fn`, oldest first. */
sluice_err sluice_dlq_list(sluice_queue *q, const sluice_dlq_filter *filter,
                           sluice_dead_fn *fn, void *ctx);

/*
 * Put dead records back in the queue as pending with fresh attempts: those
 * named in ids[0..n_ids) (ids that are not dead are counted in *missing),
 * or, when ids is NULL, every dead record matching `filter`.
 */
sluice_err sluice_dlq_replay(sluice_queue *q, const char *const *ids,
                             size_t n_ids, const sluice_dlq_filter *filter,
                             uint64_t *replayed, uint64_t *missing);

/* ---------------------------------------------------------------- slots */

/*
 * An origin's slots as the queue keeps them (DESIGN.md, "Slots"): how
 * many may still be taken by requests that the origin may be working on,
 * and until when; and a Retry-After pause. A run that is alive refreshes
 * them a few times a second; those of a run that is gone (it crashed, or
 * stopped with requests still at the origin) free themselves when their
 * time is up.
 */
typedef struct {
    const char *origin;  /* scheme://host:port */
    unsigned held;       /* slots held */
    unsigned in_flight;  /* requests a live run had in flight when it
                            last wrote (0 for a run that is gone) */
    int by_live_run;     /* held by the run using the queue now */
    int64_t free_at;     /* wall ms when all are free; 0: none held */
    double free_in_s;    /* seconds until then */
    int64_t paused_until; /* wall ms a Retry-After pause ends; 0: none */
    double paused_for_s;
    /* What the origin allows now, as runs learnt it (--rate, throttles,
     * its RateLimit headers): requests at once, beside the cap, and the
     * rate it is paced at (0: none). */
    unsigned cap;
    unsigned limit;
    double rate;
} sluice_slot_holding;

/* Return non-zero to stop the listing early. */
typedef int sluice_slot_fn(void *ctx, const sluice_slot_holding *h);

/* Hand every origin with slots held, a pause, or limits learnt to `fn`,
 * by origin. */
sluice_err sluice_slots_list(sluice_queue *q, sluice_slot_fn *fn, void *ctx);

/*
 * Free the slots of `origin` (NULL: every origin) and their pauses, for an
 * operator who knows the origin is idle. SLUICE_ERUNNING while a run uses
 * the queue (its own slots are live); *cleared counts the origins.
 */
sluice_err sluice_slots_clear(sluice_queue *q, const char *origin,
                              uint64_t *cleared);

/* ------------------------------------------------------------------ run */

/* An origin held below its cap, or paced: its limits now. */
typedef struct {
    const char *origin; /* scheme://host:port */
    unsigned cap;       /* the cap */
    unsigned limit;     /* requests at once allowed now (<= cap) */
    double rate;        /* requests a second it is paced at; 0: none */
    double rate_ceiling; /* --rate; 0: none */
} sluice_origin_limit;

/* What a run has done so far; handed to the progress callback. */
typedef struct {
    uint64_t done;       /* objects stored and marked done in this run */
    uint64_t dead;       /* records dead-lettered in this run */
    uint64_t retried;    /* attempts that will be retried */
    uint64_t throttled;  /* 429/503 answers */
    uint64_t bytes;      /* body bytes stored */
    uint64_t requests;   /* requests sent, redirect hops included */
    uint64_t in_flight;  /* requests in flight now */
    uint64_t retrying;   /* records waiting to retry now */
    uint64_t pending;    /* records still to fetch now (queue-wide) */
    uint64_t total;      /* records in the queue */
    uint64_t total_done; /* done records in the queue */
    uint64_t total_dead; /* dead records in the queue */
    uint64_t total_in_flight; /* records leased in the queue: after a run,
                                 those it could not give back (the next
                                 run puts them back) */
    uint64_t slot_writes; /* transactions the slot service wrote to the
                             queue (reservations, renewals, pauses) */
    /* Origins with records waiting that are held below their cap or
     * paced, those with most waiting first (at most 4); valid until the
     * callback returns. */
    const sluice_origin_limit *limited;
    size_t n_limited;
    size_t n_limited_all; /* how many there are in all */
    double elapsed_s;
    double rate; /* objects done per second, recent */
    double eta_s; /* seconds until everything pending is done; -1 unknown */
} sluice_run_stats;

typedef void sluice_run_progress_fn(void *ctx, const sluice_run_stats *st);

/* Something the run says once about itself ("the cap stored with the
 * queue is 20"), one line. */
typedef void sluice_run_notice_fn(void *ctx, const char *message);

/* A record that was dead-lettered or hit a store problem, as it happens. */
typedef void sluice_run_event_fn(void *ctx, const char *id, const char *url,
                                 const char *error_class, int http_status,
                                 const char *message);

/* The cap of a queue that was never given one. */
#define SLUICE_DEFAULT_CAP 20

typedef struct {
    const char *store;        /* a directory, or s3://BUCKET/PREFIX */
    /* Per origin (scheme, host, port). The cap is stored with the queue:
     * 0 uses the queue's (20 when it has none); a smaller one than the
     * queue's lowers it; a larger one raises it only with raise_cap. The
     * run says which it uses (on_notice). */
    unsigned max_concurrency;
    /* Per origin, requests a second (--rate), paced with a burst of one,
     * stored with the queue like the cap (raise_cap raises it too); 0:
     * the queue's, none if it has none; < 0: none, removing the queue's
     * (with raise_cap). */
    double rate;
    int raise_cap;
    /* Do not learn lower limits when an origin throttles, times out or
     * slows down (on by default); a throttle then pauses the origin for
     * backoff_base_s. */
    int no_adapt;
    unsigned max_total;       /* over all origins; 0: no global cap */
    unsigned max_attempts;    /* failed attempts before the DLQ: 8 */
    double timeout_s;         /* total per request: 120; connect: <= 15 */
    double stall_timeout_s;   /* abort a transfer silent this long: 30 */
    uint64_t max_bytes;       /* largest body accepted: 100 MiB */
    double max_age_s;         /* dead-letter throttled records this old: 24h */
    double backoff_base_s;    /* first retry delay (full jitter): 1 */
    double backoff_cap_s;     /* longest retry delay: 300 */
    double grace_s;           /* on stop, time for transfers to finish: 5 */
    /* A queue on a server that may be away (Redis): how long it may not
     * answer before the run gives up (SLUICE_ENETWORK or ETIMEOUT, one
     * line): 300. Meanwhile nothing new is leased or started, and the
     * marks of records finished are kept and written when it is back. 0
     * gives up at once. */
    double outage_max_s;
    int allow_private;        /* allow private/loopback/metadata addresses */
    const char *const *allow_nets; /* CIDRs allowed even so, or NULL */
    size_t n_allow_nets;
    /* A file of PEM CA certificates that origins' TLS certificates are
     * verified against instead of the system's (curl's --cacert); NULL:
     * the system's. The library reads no environment for it (the tool
     * reads CURL_CA_BUNDLE and SSL_CERT_FILE, as curl does). Not used
     * for the S3 store, which has AWS_CA_BUNDLE. A file that cannot be
     * read or holds no certificate fails the run at once, SLUICE_EINVAL.
     * Verification itself is always on. */
    const char *ca_file;
    /* Directories (':' between them) of CA certificates by their hashed
     * names (openssl rehash), searched as well (curl's --capath); NULL:
     * the system's default. Checked at once, as ca_file is. */
    const char *ca_path;
    int follow;               /* keep polling for new records */
    double follow_poll_s;     /* how often, with follow: 1 */
    unsigned store_concurrency; /* uploads at once (S3): 16 */
    /* S3: the endpoint (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL,
     * else AWS's for the region) and path-style addressing (the default
     * for an endpoint other than AWS's). */
    const char *s3_endpoint;
    int s3_path_style;    /* 1: path-style, 0: virtual-hosted, -1: auto */
    const char *spool_dir; /* S3: where bodies wait for upload; $TMPDIR */
    /* A JSON Lines file that gets a line for each record stored (id, key,
     * url, size, sha256, meta), durable before the record is marked done;
     * NULL: none. */
    const char *manifest;
    /* Set *stop to non-zero (from a signal handler, say) to stop: no new
     * records, transfers in flight get grace_s to finish, the rest are
     * aborted and given back; the queue stays consistent. */
    volatile int *stop;
    sluice_run_progress_fn *on_progress;
    double progress_interval_s; /* 0.25 */
    sluice_run_event_fn *on_event;
    sluice_run_notice_fn *on_notice;
    void *ctx; /* passed to on_progress, on_event and on_notice */
} sluice_run_opts;

/* Fill `opts` with the defaults above. */
void sluice_run_opts_init(sluice_run_opts *opts);

/*
 * Whether `path` can serve as sluice_run_opts.ca_file: readable, and
 * holding at least one PEM certificate, read as OpenSSL will read it for
 * libcurl. SLUICE_OK, or SLUICE_EINVAL with the reason in `why` ("No such
 * file or directory", "no PEM certificate in it"). sluice_run checks it
 * too; a tool checks first to name where the file came from.
 */
sluice_err sluice_check_ca_file(const char *path, char *why, size_t size);
/* The same for sluice_run_opts.ca_path: each directory readable (`why`
 * names the one that is not, when there are several), and a certificate
 * by its hashed name in one of them ("no hashed certificate in it"). */
sluice_err sluice_check_ca_path(const char *path, char *why, size_t size);

/*
 * Fetch every pending record into the store, keeping at most
 * max_concurrency requests in flight per origin, until nothing is pending
 * or waiting to retry (with follow: until *stop). Returns SLUICE_OK when
 * the run went to its end (records may have been dead-lettered: see
 * stats->dead), or the error that stopped it with a one-line reason in
 * `errbuf` (the store is not writable, the database failed, another run
 * holds the queue: SLUICE_ERUNNING; SLUICE_EINTERRUPTED after *stop).
 */
sluice_err sluice_run(sluice_queue *q, const sluice_run_opts *opts,
                      sluice_run_stats *stats, char *errbuf,
                      size_t errbuf_size);

/* -------------------------------------------------------------- publish */

typedef struct {
    uint64_t published; /* records the stream accepted */
    uint64_t rejected;  /* malformed or refused lines */
    uint64_t retried;   /* records sent again after the service failed
                           them (FailedRecordCount) or a call failed */
    uint64_t calls;     /* PutRecords calls made */
} sluice_publish_stats;

/* Called every few hundred records with the totals so far. */
typedef void sluice_publish_progress_fn(void *ctx,
                                        const sluice_publish_stats *so_far);

typedef struct {
    /* How the feeds are read and checked, as sluice_ingest_opts says:
     * format, columns, delimiter, and the URL policy (only the options':
     * no queue holds one here). */
    sluice_format format;
    const char *url_column, *id_column, *key_column;
    char delimiter;
    int allow_private;
    const char *const *allow_nets;
    size_t n_allow_nets;
    /* The partition key: the record's id (0), or its origin (1), so that
     * one origin's records land on one shard. An id or origin longer than
     * the 256 bytes Kinesis allows is replaced by its MD5 in hex. */
    int partition_by_origin;
    sluice_reject_fn *on_reject;              /* may be NULL */
    sluice_publish_progress_fn *on_progress;  /* may be NULL */
    sluice_ingest_input_fn *on_input;         /* may be NULL */
    void *ctx;                                /* passed to all three */
    /* One call's longest wait in ms (0: 10000), and how many times a
     * call that failed (no answer, 5xx) or a record the service failed
     * for a reason other than throttling is tried (0: 8). Throttles are
     * retried without counting. */
    long timeout_ms;
    unsigned max_attempts;
} sluice_publish_opts;

/*
 * Read the feeds as ingest does (the same formats, validation and
 * rejections, FILE:LINE: reason through on_reject) and put each good
 * record on the Kinesis stream `location` ("kinesis://STREAM"; region,
 * endpoint and credentials from the AWS_* environment) as one compact
 * JSON object {"id","url","key","meta"} (meta only when the record has
 * one): what `sluice ingest kinesis://` reads back. PutRecords carries at
 * most 500 records and 5 MiB; records the service fails are sent again
 * with backoff and jitter, before any later record. `stats` is added to.
 * Returns an error only for a failure that stopped the work (a bad
 * location or options: SLUICE_EINVAL or SLUICE_ECONFIG; a read error;
 * the service failing past max_attempts: SLUICE_ENETWORK, SLUICE_ETIMEOUT
 * or SLUICE_EHTTP), with one line in errbuf; records put before it stay
 * on the stream.
 */
sluice_err sluice_publish_fds(const char *location,
                              const sluice_ingest_input *inputs,
                              size_t n_inputs,
                              const sluice_publish_opts *opts,
                              sluice_publish_stats *stats, char *errbuf,
                              size_t errbuf_size);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_H */
