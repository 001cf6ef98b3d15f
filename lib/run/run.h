/*
 * The run's insides, shared by the files of lib/run/. A run is one thread
 * around one event loop (run.c); the scheduler (sched.c, over the origins
 * of origins.c) decides what starts when, under the slot service; the
 * outcome policy (outcome.c) judges each finished transfer; bodies stream
 * into the store (body.c); the run's writes to the queue are marks.c's;
 * the queue's counts come from counter.c, and progress.c reports.
 * docs/architecture.md draws the map.
 */
#ifndef SL_RUN_H
#define SL_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "../failure.h"
#include "../queue/queue.h"
#include "../slots/slots.h"
#include "../store/store.h"
#include "../table.h"
#include "fetch.h"
#include "guard.h"
#include "manifest.h"
#include "leaser.h"
#include "marker.h"

typedef struct sl_run sl_run;
typedef struct sl_origin sl_origin;

/* Stored records handed to the marker at once; a run keeps this many
 * jobs beyond its active ones for records waiting for their mark. */
#define SL_MARK_BATCH 256

/* ------------------------------------------------------------ jobs */

typedef enum {
    SL_JOB_FREE,    /* in the pool */
    SL_JOB_READY,   /* leased, waiting on its origin's ready list */
    SL_JOB_RUNNING, /* its request holds a slot */
    SL_JOB_STORING  /* its body is with the store, or waits for its mark */
} sl_job_state;

/* A leased record being worked on, from its lease to its mark. */
typedef struct sl_job {
    sl_run *run;
    sl_job_state state;
    sl_lease lease;
    char *url;           /* this hop's URL */
    unsigned hops;       /* redirects followed */
    sl_origin *origin;   /* of this hop's URL */
    struct sl_job *next; /* in a ready list, the to-mark list, or free */
    sl_transfer *transfer;
    sl_slot slot;         /* held while its request runs */
    sl_object *obj;       /* the body, while it is written */
    uint64_t bytes;       /* body bytes stored */
    uint64_t error_bytes; /* body bytes of an error page, discarded */
    bool too_large;
    char sha_hex[65]; /* the stored body's, from the store */
    char content_type[128];
    char etag[256];
} sl_job;

/* ------------------------------------------------------------ origins */

/* What the run knows of an origin (origins.c). */
struct sl_origin {
    sl_table_entry entry;    /* in the run's table (first: a cast away) */
    char *name;              /* scheme://host:port, the entry's key */
    sl_slot_origin *slots;   /* the slot service's handle on it */
    int64_t paused_until;    /* boot ms, as the slot service last said */
    double next_try; /* no take before (boot ms: its pace, held slots) */
    unsigned refused_in_row; /* connections refused since the last answer */
    unsigned down_pauses;    /* pauses since it was last up (backoff) */
    unsigned running;        /* its requests in flight */
    /* Jobs waiting to start, in feed order. */
    sl_job *ready_head, *ready_tail;
    unsigned n_ready;
    bool enough_ready; /* no more leases for it until n_ready runs low */
    unsigned jobs;     /* ready + running + with the store */
};

/* The run's origins, by name. */
typedef struct {
    sl_slots *slots;
    sl_table table;
} sl_origins;

sluice_err sl_origins_init(sl_origins *t, sl_slots *slots);
/* Forget every origin; their slot handles go back. */
void sl_origins_free(sl_origins *t);
/* The origin named `name`, made on first use; NULL if out of memory. */
sl_origin *sl_origins_get(sl_origins *t, const char *name);
/* Forget an origin that holds no jobs. */
void sl_origins_forget(sl_origins *t, sl_origin *o);
/*
 * End the pauses that are over (by the slot service's word) and forget
 * the origins with no jobs, no pause in effect and no outage to back off
 * from. True when some pause ended (its records may go now).
 */
bool sl_origins_sweep(sl_origins *t, int64_t now_boot);
/* Pause `o` until until_boot (sl_boot_ms; extends, never shortens) in the
 * slot service, and learn the pause in effect. */
void sl_origins_pause(sl_origins *t, sl_origin *o, int64_t until_boot);

/* Visit every origin; `o` may be forgotten during the visit. */
#define SL_FOR_EACH_ORIGIN(t, o)                                               \
    SL_TABLE_FOR_EACH(&(t)->table, o##_entry_)                                 \
    for (sl_origin *o = (sl_origin *)o##_entry_; o; o = NULL)

/* ------------------------------------------------------------ scheduler */

/* The job pool and the leasing state (sched.c). */
typedef struct {
    sl_job *jobs;
    unsigned n_jobs, jobs_used;
    unsigned n_active;     /* jobs ready or running, at most */
    unsigned ready_max;    /* an origin's ready jobs that are enough */
    unsigned jobs_storing; /* with the store or waiting for a mark */
    unsigned running;      /* requests in flight */
    sl_job *free_jobs;
    sl_lease *leased;        /* scratch for sl_queue_lease */
    const char **skip;       /* origins a lease leaves alone */
    int64_t next_lease_mono; /* do not ask the queue before this */
    bool queue_dry;          /* nothing ready for us, last we looked */
    bool any_waiting;        /* some records wait to retry */
    int64_t next_due_wall;
    int64_t next_expiry_check; /* boot ms */
    int64_t lease_ms;          /* a lease's life, from its last renewal */
    int64_t next_renew_mono;   /* when the jobs' leases are renewed */
    sl_lease *renewing;        /* scratch: copies of the jobs' leases */
    /* Leases off the loop (leaser.h), on a queue handle of its own;
     * NULL: the loop leases itself. `asked`: the records of the question
     * out (0: none), which leaves n_skip origins alone. */
    sl_leaser *leaser;
    sluice_queue *leaser_q;
    size_t asked, asked_skip;
    bool lease_now; /* since the question: lease again, whatever it says */
    /* A lease that left alone every origin we know found nothing: none
     * like it before this (the next poll, or a retry's due time). */
    int64_t others_dry_mono;
} sl_sched;

/* Room for `n_jobs` jobs, n_active of them ready or running at once; an
 * origin with ready_max ready is leased no more until half are gone. */
sluice_err sl_sched_init(sl_run *r, unsigned n_active, unsigned n_jobs,
                         unsigned ready_max);
void sl_sched_free(sl_run *r);
/* Lease more records when there is room, leaving alone the origins that
 * have enough waiting or are paused; take in the leaser's answer. */
void sl_sched_top_up(sl_run *r, int64_t now_mono);
/* Something a lease may now find has changed (an origin's ready list ran
 * low, a pause ended, the queue came back): lease at the next turn,
 * whatever an answer still to come says of when. */
void sl_sched_lease_now(sl_run *r);
/* The same where any origin's records may have come (the queue came
 * back, records another runner held may be due). */
void sl_sched_look_anywhere(sl_run *r);
/* Lease on the leaser's thread, where the queue gives a second handle
 * (after the fetcher is made: it watches the leaser). */
sluice_err sl_sched_start_leaser(sl_run *r);
/* The question out to the leaser answered, waited for: its records are
 * given back (the run is stopping). */
void sl_sched_stop_leasing(sl_run *r);
/* Start every ready job whose origin has a free slot, round-robin. */
void sl_sched_start_ready(sl_run *r);
/* The fetcher's on_sent: a job's request leaves now (the pace counts
 * from then: sl_slots_sent). */
void sl_sched_sent(void *owner);
/* Queue a job on its origin's ready list (at the front: a redirect hop,
 * the continuation of a record already started). */
void sl_job_make_ready(sl_job *j, bool front);
/* Move a job to another origin (a redirect hop's). */
void sl_job_set_origin(sl_job *j, sl_origin *o);
/* Back to the pool. */
void sl_job_free(sl_run *r, sl_job *j);
/* Give back the ready jobs of `o` untouched (a long pause, a stop). */
void sl_sched_release_ready(sl_run *r, sl_origin *o);
/* A running job's request is over: its slot goes back. */
void sl_sched_request_ended(sl_run *r, sl_job *j, bool complete);
/* Abort every running transfer and give its record back. */
void sl_sched_abort_running(sl_run *r);
/* Renew the leases of the records the run holds, every third of a
 * lease's life. */
void sl_sched_renew(sl_run *r, int64_t now_mono);
/* Abort the transfers that outlived their slot's deadline; their records
 * retry. Looks at most every few tenths of a second. */
void sl_sched_abort_expired(sl_run *r);
/* Whether there is room for a lease: jobs free, and fewer ready or
 * running than keep the slots busy. */
bool sl_sched_lease_room(const sl_run *r);

/* ------------------------------------------------------------ marks */

/* The run's writes to the queue (marks.c). */
typedef struct {
    sl_marker *marker; /* marks records done on its thread */
    /* The marker's own handle on the queue (SL_QUEUE_F_CONNECTIONS), so
     * that the loop never waits for its turn; NULL: it shares q. */
    sluice_queue *marker_q;
    bool open;         /* a transaction of marks is open: our turn */
    sl_job *to_mark, *to_mark_tail; /* stored, not yet handed over */
    unsigned n_to_mark;
    int64_t to_mark_since; /* mono ms of the oldest */
    /* The queue is away (an outage, marker.h): the run leases nothing,
     * takes no slot and writes nothing itself; since when (wall ms). */
    bool down;
    int64_t down_since_wall;
    unsigned n_kept; /* marks kept with the marker, not yet handed over */
    uint64_t settled_seen; /* the marker's goes, when the run last looked */
} sl_marks;

/* At the queue's end, the marker still writing what may be the run's
 * last marks, with records in flight or due: the loop looks again in a
 * few ms (sl_marks_news leases again once the marker is through). */
bool sl_marks_settling(sl_run *r);

/* Begin the run's turn on the queue (a transaction), if not begun; false
 * when that failed (the run has failed, or the queue is away). */
bool sl_marks_begin(sl_run *r);
/* A queue call of the run's own failed with `err` (its message still
 * the queue's): true when the queue is away (an outage, said once; the
 * marker probes it), false when the run has failed. */
bool sl_marks_away(sl_run *r, sluice_err err);
/* The same for a failure met on another handle, with its message. */
bool sl_marks_away_with(sl_run *r, sluice_err err, const char *msg);
/* End the run's turn: commit. */
void sl_marks_commit(sl_run *r);
/* A turn on the queue without a transaction, for reads. */
void sl_marks_lock(sl_run *r);
void sl_marks_unlock(sl_run *r);
/* The record of `j` back to the queue untouched (no attempt used). */
void sl_job_release(sl_run *r, sl_job *j);
/* Into the dead-letter queue. */
void sl_job_dead(sl_run *r, sl_job *j, sl_error_class cls, int status,
                 const char *msg);
/* Back to waiting until due_ms. */
void sl_job_retry(sl_run *r, sl_job *j, int64_t due_ms, sl_error_class cls,
                  int status, const char *msg, bool counts_attempt);
/* Its object is durable: mark it done, with others, soon. */
void sl_job_stored(sl_run *r, sl_job *j);
/* Hand the stored records to the marker when enough wait or waited. */
void sl_marks_flush_due(sl_run *r, int64_t now_mono);
/* Hand every stored record to the marker now. */
void sl_marks_flush(sl_run *r);
/* When the oldest stored record must be handed over (mono ms); -1: none
 * waits. */
int64_t sl_marks_due_mono(const sl_run *r);
/* Take in what the marker says: lost marks, failures, and whether the
 * queue is away or back; hand it the marks kept meanwhile. */
void sl_marks_news(sl_run *r);

/* counter.c: the queue's counts, read on a thread of their own with a
 * handle of their own, every interval_ms. */
typedef struct sl_counter sl_counter;
sluice_err sl_counter_start(const char *location, int64_t interval_ms,
                            sl_counter **out);
/* The latest count, when one came since the last call: true. NULL is
 * fine (no counter: false). */
bool sl_counter_take(sl_counter *c, sluice_counts *out);
void sl_counter_stop(sl_counter *c);

/* ------------------------------------------------------------ the run */

struct sl_run {
    sluice_queue *q;
    const sluice_run_opts *o;
    sl_store *store;
    sl_fetcher *fetcher;
    sl_slots *slots;
    sl_guard guard;
    sl_origins origins;
    sl_sched sched;
    sl_marks marks;
    sl_manifest manifest; /* --manifest: fd -1 when none */
    sl_counter *counter;  /* NULL: counts at the start and end only */
    sluice_counts counts; /* the queue's, as last counted */
    void *url_parser; /* for redirects' Location (record/url.c) */
    uint64_t rng;
    int64_t wall0, boot0; /* the wall and boot clocks at the start */
    int64_t start_mono;
    bool stopping;
    int64_t stop_deadline;
    sluice_err fatal;
    char fatal_msg[512];
    int64_t next_recount_mono; /* with follow: count the queue afresh */
    sluice_run_stats st;
    sluice_origin_limit limited[4]; /* progress.c's, for st.limited */
    struct {
        int64_t next_mono;   /* the next on_progress */
        double rate_t0;      /* the rate's window began at this elapsed_s */
        uint64_t rate_done0; /* with this many done */
    } progress;              /* progress.c's */
};

/*
 * The run's wall clock: the wall clock at its start, moved on by the boot
 * clock. Every time the run writes to the queue or compares with it
 * (retry due times, leases, marks) is on it, so that a step of the wall
 * clock during a run neither makes retries wait an hour nor makes leases
 * expire early.
 */
static inline int64_t
sl_run_wall(const sl_run *r)
{
    return r->wall0 + (sl_boot_ms() - r->boot0);
}

/* The first failure that stops the run; later ones are dropped. */
void sl_run_fail(sl_run *r, sluice_err err, const char *msg);
/* Say something about the run, once (opts->on_notice). */
void sl_run_notice(sl_run *r, const char *fmt, ...) SL_PRINTF(2, 3);
/* cap.c: the cap and rate this run uses (stored with the queue; said
 * aloud; a rate of 0 is none), and what it says of slots an earlier run
 * left held. */
sluice_err sl_run_limits(sl_run *r, unsigned *cap, double *rate,
                         char *errbuf, size_t size);
void sl_run_tell_held(sl_run *r);
/* The URL policy of the run into r->guard: its own --allow-* when it was
 * given any, else the one stored with the queue by ingest; said on
 * on_notice unless it is the default. */
sluice_err sl_run_policy(sl_run *r, char *errbuf, size_t size);
/* Report a record that died or hit a store problem (opts->on_event). */
void sl_run_event(sl_run *r, const sl_job *j, sl_error_class cls, int status,
                  const char *msg);

/* outcome.c: what a finished transfer means for its record. */
void sl_outcome_transfer_done(sl_run *r, sl_fetch_result *res);
/* A transient failure: retry after a backoff, or dead when exhausted. */
void sl_outcome_failed(sl_run *r, sl_job *j, sl_error_class cls, int status,
                       const char *msg);

/* body.c: body bytes into the store, whole bodies handed over, and the
 * store's results taken in. */
bool sl_body_write(void *owner, int status, const char *data, size_t len);
void sl_body_complete(sl_run *r, sl_job *j, const sl_fetch_result *res);
void sl_body_reap(sl_run *r);

/* progress.c: refresh the stats and call on_progress, at most every
 * progress_interval_s unless `force`. */
void sl_progress(sl_run *r, bool force);

#endif /* SL_RUN_H */
