/*
 * The run loop: lease records, start each the moment its origin has a
 * free slot (never more than the cap in flight, redirect hops and retries
 * included), stream bodies into the store, and mark records done only
 * once the store says their objects are durable. Failures become retries
 * (backoff, Retry-After pausing the whole origin) or dead letters. One
 * thread, one libcurl multi handle; the store syncs on its own thread,
 * and records are marked done on one more (marker.c).
 */
#include <math.h>
#include <string.h>

#include <curl/curl.h>

#include "fetch.h"
#include "guard.h"
#include "limit.h"
#include "marker.h"
#include "../queue/queue.h"
#include "retry.h"
#include "../store/store.h"

#define MAX_REDIRECTS   5
#define ERROR_BODY_MAX  (64 * 1024) /* bytes of an error page read, at most */
#define LEASE_BATCH     256
#define JOBS_MAX        4096 /* leased and not yet handed to the store */
#define MARK_BATCH      256  /* stored objects handed over at once */
#define MARK_WAIT_MS    50   /* and the longest one waits for the rest */
#define IDLE_POLL_MS    250  /* look for due records this often when idle */
#define LONG_PAUSE_MS   2000 /* give back waiting jobs of origins paused longer */
#define RATE_WINDOW_S   5.0
#define DOWN_AFTER      3     /* refused connections in a row: origin down */
#define DOWN_PAUSE_MAX_MS 60000

typedef enum { JOB_FREE, JOB_READY, JOB_RUNNING, JOB_STORING } job_state;

struct run_ctx;

typedef struct sl_job {
    struct run_ctx *run;
    job_state state;
    sl_lease lease;
    char *url;          /* this hop's URL */
    unsigned hops;      /* redirects followed */
    sl_origin *origin;  /* of this hop's URL */
    struct sl_job *next; /* in the origin's ready list, or the free list */
    sl_transfer *transfer;
    sl_object *obj;       /* the body, while it is written */
    uint64_t bytes;       /* body bytes stored */
    uint64_t error_bytes; /* body bytes of an error page, discarded */
    bool too_large;
    char sha_hex[65]; /* the stored body's, from the store */
    char content_type[128];
    char etag[256];
} sl_job;

typedef struct run_ctx {
    sluice_queue *q;
    sl_marker *marker; /* marks records done; shares q, in turns */
    const sluice_run_opts *o;
    sl_store *store;
    sl_fetcher *fetcher;
    sl_limiter lim;
    sl_guard guard;
    CURLU *url_parser;

    sl_job *jobs;
    unsigned n_jobs, jobs_used;
    unsigned n_active, jobs_storing; /* jobs ready or running: at most
                                        n_active; storing: the rest */
    sl_job *free_jobs;
    sl_lease *leased; /* scratch for sl_queue_lease */
    const char **skip;

    uint64_t rng;
    int64_t start_mono;
    int64_t next_lease_mono; /* do not ask the queue before this */
    bool queue_dry;          /* nothing ready for us, last we looked */
    bool any_waiting;        /* some records wait to retry */
    int64_t next_due_wall;
    bool stopping;
    int64_t stop_deadline;
    bool marks_open; /* a transaction of marks is open */
    sl_job *to_mark, *to_mark_tail; /* stored, not yet marked done */
    unsigned n_to_mark;
    int64_t to_mark_since; /* mono ms of the oldest */

    sluice_err fatal;
    char fatal_msg[512];

    sluice_counts counts; /* queue-wide, kept up to date by our marks */
    sluice_run_stats st;
    int64_t next_progress_mono;
    double rate_t0;
    uint64_t rate_done0;
    int64_t next_recount_mono;
} run_ctx;

/* ------------------------------------------------------------ helpers */

static void
set_fatal(run_ctx *r, sluice_err err, const char *msg)
{
    if (r->fatal != SLUICE_OK)
        return;
    r->fatal = err;
    sl_copy(r->fatal_msg, sizeof r->fatal_msg, msg);
}

static void
queue_fatal(run_ctx *r, sluice_err err)
{
    set_fatal(r, err, sluice_queue_errmsg(r->q));
}

static void
event(run_ctx *r, const sl_job *j, const char *cls, int status,
      const char *msg)
{
    if (r->o->on_event)
        r->o->on_event(r->o->ctx, j->lease.id, j->lease.url, cls, status,
                       msg);
}

/* Open a transaction for this round of marks, if none is open: the
 * run's turn on the queue, until marks_commit. */
static bool
marks_begin(run_ctx *r)
{
    if (r->marks_open)
        return true;
    sl_marker_queue_lock(r->marker);
    sluice_err err = sl_queue_begin(r->q);
    if (err != SLUICE_OK) {
        queue_fatal(r, err);
        sl_marker_queue_unlock(r->marker);
        return false;
    }
    r->marks_open = true;
    return true;
}

static void
marks_commit(run_ctx *r)
{
    if (!r->marks_open)
        return;
    r->marks_open = false;
    sluice_err err = sl_queue_commit(r->q);
    if (err != SLUICE_OK) {
        queue_fatal(r, err);
        sl_queue_rollback(r->q);
    }
    sl_marker_queue_unlock(r->marker);
}

/* A mark's result: a stale lease is no failure (the record changed). */
static bool
mark_ok(run_ctx *r, sluice_err err)
{
    if (err == SLUICE_OK)
        return true;
    if (err != SLUICE_ENOTFOUND)
        queue_fatal(r, err);
    return false;
}

/* ------------------------------------------------------------ jobs */

static sl_job *
job_new(run_ctx *r)
{
    sl_job *j = r->free_jobs;
    if (!j)
        return NULL;
    r->free_jobs = j->next;
    j->next = NULL;
    r->jobs_used++;
    return j;
}

static void
job_set_origin(run_ctx *r, sl_job *j, sl_origin *o)
{
    /* An origin without jobs is forgotten by sl_limiter_sweep, once any
     * pause it is under is over. */
    (void)r;
    if (j->origin)
        j->origin->jobs--;
    j->origin = o;
    if (o)
        o->jobs++;
}

static void
job_free(run_ctx *r, sl_job *j)
{
    sl_object_discard(j->obj);
    j->obj = NULL;
    job_set_origin(r, j, NULL);
    sl_lease_clear(&j->lease);
    sl_free(j->url);
    j->url = NULL;
    if (j->state == JOB_STORING)
        r->jobs_storing--;
    j->state = JOB_FREE;
    j->hops = 0;
    j->next = r->free_jobs;
    r->free_jobs = j;
    r->jobs_used--;
}

/* Queue a job on its origin's ready list; at the front for a redirect
 * hop, which is the continuation of a record already started. */
static void
job_make_ready(sl_job *j, bool front)
{
    sl_origin *o = j->origin;
    j->state = JOB_READY;
    j->next = NULL;
    if (front) {
        j->next = o->ready_head;
        o->ready_head = j;
        if (!o->ready_tail)
            o->ready_tail = j;
    } else {
        if (o->ready_tail)
            o->ready_tail->next = j;
        else
            o->ready_head = j;
        o->ready_tail = j;
    }
    o->n_ready++;
}

static sl_job *
job_pop_ready(run_ctx *r, sl_origin *o)
{
    sl_job *j = o->ready_head;
    if (!j)
        return NULL;
    o->ready_head = j->next;
    if (!o->ready_head)
        o->ready_tail = NULL;
    o->n_ready--;
    j->next = NULL;
    /* Half the waiting jobs gone: lease more for this origin now, long
     * before its slots could run dry. */
    if (o->enough_ready && o->n_ready <= r->lim.cap / 2) {
        o->enough_ready = false;
        r->next_lease_mono = 0;
    }
    return j;
}

/* Give a job's record back to the queue untouched (no attempt used). */
static void
job_release(run_ctx *r, sl_job *j)
{
    if (marks_begin(r) &&
        mark_ok(r, sl_queue_release(r->q, &j->lease))) {
        r->counts.in_flight--;
        if (j->lease.was_retrying)
            r->counts.retrying++;
        else
            r->counts.pending++;
    }
    job_free(r, j);
}

/* ------------------------------------------------------------ outcomes */

static void
job_dead(run_ctx *r, sl_job *j, const char *cls, int status,
         const char *msg)
{
    sl_failure why = {cls, msg, status};
    if (marks_begin(r) &&
        mark_ok(r, sl_queue_dead(r->q, &j->lease, &why, sl_now_ms()))) {
        r->counts.in_flight--;
        r->counts.dead++;
        r->st.dead++;
        event(r, j, cls, status, msg);
    }
    job_free(r, j);
}

static void
job_retry(run_ctx *r, sl_job *j, int64_t due_ms, const char *cls,
          int status, const char *msg, bool counts_attempt)
{
    sl_failure why = {cls, msg, status};
    if (marks_begin(r) &&
        mark_ok(r, sl_queue_retry(r->q, &j->lease, due_ms, &why,
                                  counts_attempt))) {
        r->counts.in_flight--;
        r->counts.retrying++;
        r->st.retried++;
        r->any_waiting = true;
        if (!r->next_due_wall || due_ms < r->next_due_wall)
            r->next_due_wall = due_ms;
    }
    job_free(r, j);
}

/* A transient failure: retry after a backoff, or dead when exhausted. */
static void
job_failed(run_ctx *r, sl_job *j, const char *cls, int status,
           const char *msg)
{
    unsigned attempts = j->lease.attempts + 1;
    if (attempts >= r->o->max_attempts) {
        char why[512];
        sl_fmt(why, sizeof why, "%s (after %u attempt%s)", msg, attempts,
               attempts == 1 ? "" : "s");
        job_dead(r, j, cls, status, why);
        return;
    }
    int64_t delay = sl_backoff_ms(attempts,
                                  (int64_t)(r->o->backoff_base_s * 1000),
                                  (int64_t)(r->o->backoff_cap_s * 1000),
                                  sl_random(&r->rng));
    job_retry(r, j, sl_now_ms() + delay, cls, status, msg, true);
}

/* Give back the waiting jobs of an origin that is paused for long. */
static void
release_ready(run_ctx *r, sl_origin *o)
{
    sl_job *j;
    while ((j = job_pop_ready(r, o)) != NULL)
        job_release(r, j);
}

static void
job_throttled(run_ctx *r, sl_job *j, int status, const char *retry_after)
{
    int64_t now = sl_now_ms();
    int64_t until;
    char msg[160];
    r->st.throttled++;
    if (!sl_retry_after(retry_after, now, &until)) {
        /* No usable Retry-After: back off this record, and the origin a
         * little, politely. */
        until = now + sl_backoff_ms(j->lease.attempts + 1,
                                    (int64_t)(r->o->backoff_base_s * 1000),
                                    (int64_t)(r->o->backoff_cap_s * 1000),
                                    sl_random(&r->rng));
        sl_limiter_pause(&r->lim, j->origin,
                         now + (int64_t)(r->o->backoff_base_s * 1000));
        sl_fmt(msg, sizeof msg, "HTTP %d", status);
    } else {
        sl_limiter_pause(&r->lim, j->origin, until);
        sl_fmt(msg, sizeof msg, "HTTP %d, Retry-After %s", status,
               retry_after);
    }
    if (j->origin->paused_until - now > LONG_PAUSE_MS)
        release_ready(r, j->origin);
    double age_s = (double)(now - j->lease.first_attempt_ms) / 1000.0;
    if (age_s > r->o->max_age_s) {
        char why[256];
        sl_fmt(why, sizeof why, "%s; still throttled after %.0f s", msg,
               age_s);
        job_dead(r, j, "throttle", status, why);
        return;
    }
    job_retry(r, j, until, "throttle", status, msg, false);
}

/* Follow a redirect: the next hop is a new request, admitted under the
 * cap of whatever origin it goes to. */
static void
job_redirect(run_ctx *r, sl_job *j, const char *location, int status)
{
    char msg[256];
    char *next = NULL;
    if (++j->hops > MAX_REDIRECTS) {
        sl_fmt(msg, sizeof msg, "more than %d redirects", MAX_REDIRECTS);
        job_dead(r, j, "redirect", status, msg);
        return;
    }
    CURLUcode rc = curl_url_set(r->url_parser, CURLUPART_URL, j->url, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_set(r->url_parser, CURLUPART_URL, location,
                          CURLU_URLENCODE);
    if (rc == CURLUE_OK)
        rc = curl_url_set(r->url_parser, CURLUPART_FRAGMENT, NULL, 0);
    char *scheme = NULL;
    if (rc == CURLUE_OK)
        rc = curl_url_get(r->url_parser, CURLUPART_SCHEME, &scheme, 0);
    bool web = rc == CURLUE_OK &&
               (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
    curl_free(scheme);
    if (web)
        rc = curl_url_get(r->url_parser, CURLUPART_URL, &next, 0);
    if (!web || rc != CURLUE_OK || !next) {
        char shown[200];
        sl_quote(shown, sizeof shown, location, strlen(location), 120);
        sl_fmt(msg, sizeof msg, "redirect to \"%s\" refused: not an http "
               "or https URL", shown);
        curl_free(next);
        job_dead(r, j, web ? "redirect" : "policy", status, msg);
        return;
    }
    sl_buf origin;
    sl_buf_init(&origin);
    char *copy = sl_strdup(next);
    curl_free(next);
    sl_origin *o = NULL;
    if (copy && sl_url_origin(copy, &origin) == 0)
        o = sl_limiter_origin(&r->lim, origin.data);
    sl_buf_free(&origin);
    if (!o) {
        sl_free(copy);
        set_fatal(r, SLUICE_ENOMEM, "out of memory");
        job_release(r, j);
        return;
    }
    sl_free(j->url);
    j->url = copy;
    job_set_origin(r, j, o);
    job_make_ready(j, true);
}

/* One line saying what went wrong with an attempt. */
static void
describe(char *dst, size_t size, const char *cls, const sl_fetch_result *res,
         const sl_job *j, uint64_t max_bytes)
{
    if (strcmp(cls, "policy") == 0)
        sl_copy(dst, size,
                res->refused[0] ? res->refused : "refused by the URL policy");
    else if (strcmp(cls, "too_large") == 0)
        sl_fmt(dst, size, "body larger than --max-bytes (%llu)",
               (unsigned long long)max_bytes);
    else if (strcmp(cls, "length") == 0 && res->content_length >= 0 &&
             res->curl_code == 0)
        sl_fmt(dst, size, "short body: %llu of %lld bytes",
               (unsigned long long)j->bytes, (long long)res->content_length);
    else if (res->curl_code != 0)
        sl_copy(dst, size, res->curl_error);
    else
        sl_fmt(dst, size, "HTTP %d", res->http_status);
}

/*
 * Body bytes, from inside the fetcher: streamed into the store object
 * (made at the first byte; the store hashes it). Returning false aborts the
 * transfer; the job says why.
 */
static bool
on_body(void *owner, int status, const char *data, size_t len)
{
    sl_job *j = owner;
    run_ctx *r = j->run;
    if (status < 200 || status >= 300) {
        /* An error page or a redirect's body: read a little, keep none. */
        j->error_bytes += len;
        return j->error_bytes <= ERROR_BODY_MAX;
    }
    if (r->fatal != SLUICE_OK)
        return false;
    if (r->o->max_bytes && j->bytes + len > r->o->max_bytes) {
        j->too_large = true;
        return false;
    }
    if (!j->obj) {
        sluice_err err = sl_store_begin(r->store, j->lease.key, j, &j->obj);
        if (err != SLUICE_OK) {
            set_fatal(r, err, r->store->errmsg);
            return false;
        }
    }
    sluice_err err = sl_object_write(j->obj, data, len);
    if (err != SLUICE_OK) {
        set_fatal(r, err, r->store->errmsg);
        return false;
    }
    j->bytes += len;
    return true;
}

/* A complete body: hand it to the store; the record is done only when the
 * store says the object is durable. */
static void
job_store(run_ctx *r, sl_job *j, const sl_fetch_result *res)
{
    if (!j->obj) { /* an empty body */
        sluice_err err = sl_store_begin(r->store, j->lease.key, j, &j->obj);
        if (err != SLUICE_OK) {
            set_fatal(r, err, r->store->errmsg);
            job_release(r, j);
            return;
        }
    }
    sl_copy(j->content_type, sizeof j->content_type, res->content_type);
    sl_copy(j->etag, sizeof j->etag, res->etag);
    sl_object_meta meta = {
        j->content_type[0] ? j->content_type : NULL,
        j->etag[0] ? j->etag : NULL,
        j->lease.url,
        j->bytes,
    };
    sl_object *obj = j->obj;
    j->obj = NULL;
    j->state = JOB_STORING;
    r->jobs_storing++;
    sluice_err err = sl_store_submit(r->store, obj, &meta);
    if (err != SLUICE_OK) {
        set_fatal(r, err, r->store->errmsg);
        job_release(r, j);
    }
}

/*
 * An origin that refuses connections DOWN_AFTER times in a row is down:
 * it is paused (1 s doubling to a minute, jittered) and the records that
 * meet it down wait for it without using attempts (--max-age still
 * applies), so an outage does not empty the queue into the DLQ. True when
 * the job was handled so.
 */
static bool
origin_down(run_ctx *r, sl_job *j, const sl_fetch_result *res,
            const char *msg)
{
    sl_origin *o = j->origin;
    if (res->http_status > 0) {
        o->refused_in_row = 0;
        o->down_pauses = 0;
        return false;
    }
    if (res->curl_code != CURLE_COULDNT_CONNECT || res->refused[0])
        return false;
    if (++o->refused_in_row < DOWN_AFTER)
        return false;
    int64_t now = sl_now_ms();
    if (o->paused_until <= now) {
        int64_t pause = (int64_t)1000 << SL_MIN(o->down_pauses, 6u);
        pause = SL_MIN(pause, (int64_t)DOWN_PAUSE_MAX_MS);
        pause += (int64_t)(sl_random(&r->rng) % (uint64_t)(pause / 4 + 1));
        o->down_pauses++;
        sl_limiter_pause(&r->lim, o, now + pause);
        if (pause > LONG_PAUSE_MS)
            release_ready(r, o);
    }
    double age_s = (double)(now - j->lease.first_attempt_ms) / 1000.0;
    if (age_s > r->o->max_age_s) {
        job_dead(r, j, "network", 0, msg);
        return true;
    }
    char why[600];
    sl_fmt(why, sizeof why, "%s (origin down: waiting)", msg);
    job_retry(r, j, o->paused_until, "network", 0, why, false);
    return true;
}

static void
on_transfer_done(run_ctx *r, sl_fetch_result *res)
{
    sl_job *j = res->owner;
    sl_limiter_release(&r->lim, j->origin);
    j->transfer = NULL;

    if (r->fatal != SLUICE_OK) {
        job_release(r, j);
        return;
    }
    bool error_page = res->http_status >= 300 || (res->http_status > 0 &&
                                                  res->http_status < 200);
    sl_attempt a = {
        .curl_code = res->curl_code,
        .http_status = res->http_status,
        .has_location = res->location != NULL,
        .too_large = j->too_large,
        .refused = res->refused[0] != '\0',
        .short_body = res->curl_code == CURLE_OK &&
                      res->content_length >= 0 && !error_page &&
                      (uint64_t)res->content_length != j->bytes,
    };
    /* We stopped reading a long error page: judge it by its status. */
    if (a.curl_code == CURLE_WRITE_ERROR && error_page)
        a.curl_code = CURLE_OK;
    const char *cls;
    char msg[512];
    sl_outcome outcome = sl_classify(&a, &cls);
    if (outcome != SL_OUTCOME_DONE) {
        sl_object_discard(j->obj);
        j->obj = NULL;
    }
    if (cls)
        describe(msg, sizeof msg, cls, res, j, r->o->max_bytes);
    if (res->http_status > 0) /* it answered: it is up */
        j->origin->refused_in_row = j->origin->down_pauses = 0;
    switch (outcome) {
    case SL_OUTCOME_DONE:
        job_store(r, j, res);
        break;
    case SL_OUTCOME_REDIRECT:
        job_redirect(r, j, res->location, res->http_status);
        break;
    case SL_OUTCOME_THROTTLE:
        job_throttled(r, j, res->http_status, res->retry_after);
        break;
    case SL_OUTCOME_RETRY:
        if (!origin_down(r, j, res, msg))
            job_failed(r, j, cls, res->http_status, msg);
        break;
    case SL_OUTCOME_DEAD:
        job_dead(r, j, cls, res->http_status, msg);
        break;
    }
}

/* A stored object's record is marked done with others, in one commit
 * on the marker's thread (a commit per few records cost more than the
 * marks): the job waits, holding nothing but itself, until mark_stored. */
static void
defer_complete(run_ctx *r, sl_job *j)
{
    j->next = NULL;
    if (r->to_mark_tail)
        r->to_mark_tail->next = j;
    else {
        r->to_mark = j;
        r->to_mark_since = sl_mono_ms();
    }
    r->to_mark_tail = j;
    r->n_to_mark++;
}

/* Hand the records whose objects are stored to the marker, counted done
 * (marker_news takes back any it finds changed hands). */
static void
mark_stored(run_ctx *r)
{
    if (!r->to_mark)
        return;
    int64_t now = sl_now_ms();
    while (r->to_mark) {
        sl_job *j = r->to_mark;
        r->to_mark = j->next;
        sl_object_info info = {(int64_t)j->bytes, j->sha_hex,
                               j->content_type[0] ? j->content_type : NULL,
                               j->etag[0] ? j->etag : NULL};
        /* Out of memory for the marker: marked here, as it once was. */
        if (sl_marker_add(r->marker, &j->lease, &info, now) == SLUICE_OK ||
            (marks_begin(r) &&
             mark_ok(r, sl_queue_complete(r->q, &j->lease, &info, now)))) {
            r->counts.in_flight--;
            r->counts.done++;
            r->st.done++;
            r->st.bytes += j->bytes;
        }
        job_free(r, j);
    }
    r->to_mark_tail = NULL;
    r->n_to_mark = 0;
    /* Our turn on the queue ends first: the marker may need one to take
     * the batch before this one (marker.h). */
    marks_commit(r);
    sl_marker_flush(r->marker);
}

/* What the marker has to say: marks that found their record changed
 * hands (not done by this run after all), and failures. */
static void
marker_news(run_ctx *r)
{
    uint64_t lost, lost_bytes;
    char msg[512];
    sluice_err err =
        sl_marker_check(r->marker, &lost, &lost_bytes, msg, sizeof msg);
    r->counts.done -= lost;
    r->counts.in_flight += lost;
    r->st.done -= lost;
    r->st.bytes -= lost_bytes;
    if (err != SLUICE_OK)
        set_fatal(r, err, msg);
}

/* Enough waiting to be marked, or the oldest has waited long enough, or
 * nothing is being fetched (the run may be ending). */
static bool
marks_due(const run_ctx *r, int64_t now_mono)
{
    return r->to_mark &&
           (r->n_to_mark >= MARK_BATCH ||
            now_mono - r->to_mark_since >= MARK_WAIT_MS ||
            r->lim.in_flight == 0 || r->stopping || r->fatal != SLUICE_OK);
}

static void
reap_store(run_ctx *r)
{
    sl_store_result results[64];
    size_t n;
    while ((n = sl_store_reap(r->store, results, SL_ARRAY_LEN(results))) >
           0) {
        for (size_t i = 0; i < n; i++) {
            sl_store_result *res = &results[i];
            sl_job *j = res->cookie;
            switch (res->status) {
            case SL_STORED:
                memcpy(j->sha_hex, res->sha256_hex, sizeof j->sha_hex);
                defer_complete(r, j);
                break;
            case SL_STORE_REJECTED:
                job_dead(r, j, "store", 0, res->message);
                break;
            case SL_STORE_RETRY:
                job_failed(r, j, "store", 0, res->message);
                break;
            case SL_STORE_FAILED: {
                char msg[600];
                sl_fmt(msg, sizeof msg, "store %s: %s: %s",
                       r->store->location, j->lease.key, res->message);
                set_fatal(r, res->err, msg);
                job_release(r, j);
                break;
            }
            }
        }
    }
}

/* ------------------------------------------------------------ leasing */

/* Jobs ready or running (not waiting for the store). */
static unsigned
jobs_active(const run_ctx *r)
{
    return r->jobs_used - r->jobs_storing;
}

/* Jobs a lease may take: free ones, within the budget of those ready,
 * running or with the store (jobs waiting only for their mark have
 * MARK_BATCH of their own, so a store that lags still stops leasing). */
static unsigned
jobs_leasable(const run_ctx *r)
{
    unsigned busy = r->jobs_used - r->n_to_mark;
    unsigned budget = r->n_jobs - MARK_BATCH;
    return SL_MIN(busy < budget ? budget - busy : 0, r->n_jobs - r->jobs_used);
}

/* Room for a lease: jobs free, and a quarter of n_active fewer ready or
 * running than can start soon (one lease of many records costs far less
 * than many of one; the rest still waiting keep the slots busy). Jobs
 * waiting for the store do not count: a slow sync or upload must not
 * leave slots empty. */
static bool
lease_room(const run_ctx *r)
{
    return jobs_leasable(r) > 0 &&
           jobs_active(r) + SL_MAX(r->n_active / 4, 1u) <= r->n_active;
}

/* Lease more records when there is room, leaving alone the origins that
 * already have enough waiting (or are paused). */
static void
top_up(run_ctx *r, int64_t now_mono)
{
    if (r->stopping || r->fatal != SLUICE_OK)
        return;
    if (!lease_room(r))
        return;
    int64_t now = sl_now_ms();
    /* A pause that has just ended: its origin's records can be leased. */
    if (sl_limiter_sweep(&r->lim, now))
        r->next_lease_mono = 0;
    if (now_mono < r->next_lease_mono)
        return;
    size_t n_skip = 0;
    SL_FOR_EACH_ORIGIN(&r->lim, o)
    {
        if ((o->enough_ready || o->paused_until > now) && n_skip < r->n_jobs)
            r->skip[n_skip++] = o->name;
    }
    size_t want = SL_MIN(SL_MIN((size_t)jobs_leasable(r),
                                (size_t)(r->n_active - jobs_active(r))),
                         (size_t)LEASE_BATCH);
    sl_lease_req req = {
        want, now,
        (int64_t)SL_MAX(600.0, 5 * r->o->timeout_s) * 1000,
        r->skip, n_skip,
    };
    size_t got = 0;
    if (!marks_begin(r))
        return;
    sluice_err err = sl_queue_lease(r->q, &req, r->leased, &got);
    if (err != SLUICE_OK)
        queue_fatal(r, err); /* while it is our turn: its message */
    marks_commit(r);
    if (err != SLUICE_OK)
        return;
    for (size_t i = 0; i < got; i++) {
        sl_job *j = job_new(r);
        sl_origin *o = sl_limiter_origin(&r->lim, r->leased[i].origin);
        j->lease = r->leased[i];
        memset(&r->leased[i], 0, sizeof r->leased[i]);
        j->url = sl_strdup(j->lease.url);
        if (!o || !j->url) {
            set_fatal(r, SLUICE_ENOMEM, "out of memory");
            job_release(r, j);
            continue;
        }
        job_set_origin(r, j, o);
        job_make_ready(j, false);
        if (o->n_ready >= r->lim.cap)
            o->enough_ready = true;
        if (j->lease.was_retrying)
            r->counts.retrying--;
        else
            r->counts.pending--;
        r->counts.in_flight++;
    }
    if (got == want) {
        r->next_lease_mono = 0;
        return;
    }
    /* Nothing more is ready: look again when something comes due. */
    r->queue_dry = n_skip == 0;
    bool any;
    int64_t due;
    sl_marker_queue_lock(r->marker);
    err = sl_queue_next_due(r->q, &due, &any);
    if (err != SLUICE_OK)
        queue_fatal(r, err);
    sl_marker_queue_unlock(r->marker);
    if (err != SLUICE_OK)
        return;
    r->any_waiting = any;
    r->next_due_wall = any ? due : 0;
    int64_t wait = r->o->follow ? (int64_t)(r->o->follow_poll_s * 1000)
                                : IDLE_POLL_MS;
    /* A retry already due that the lease left alone belongs to an origin
     * that is paused or has enough waiting: that changes by events (which
     * reset next_lease_mono), not by polling, so never poll at once. */
    if (any && due > now && due - now < wait)
        wait = due - now;
    r->next_lease_mono = now_mono + wait;
}

/* Start every ready job whose origin has a free slot, round-robin over
 * origins so that none waits behind another. */
static void
start_ready(run_ctx *r)
{
    int64_t now = sl_now_ms();
    bool started = !r->stopping;
    while (started && r->fatal == SLUICE_OK) {
        started = false;
        SL_FOR_EACH_ORIGIN(&r->lim, o)
        {
            if (!o->ready_head || !sl_limiter_may_start(&r->lim, o, now))
                continue;
            sl_job *j = job_pop_ready(r, o);
            sl_limiter_acquire(&r->lim, o);
            j->state = JOB_RUNNING;
            j->bytes = j->error_bytes = 0;
            j->too_large = false;
            j->transfer = sl_fetcher_start(r->fetcher, j->url, j);
            if (!j->transfer) {
                sl_limiter_release(&r->lim, o);
                set_fatal(r, SLUICE_ENOMEM, "cannot start a transfer");
                job_release(r, j);
                return;
            }
            r->st.requests++;
            started = true;
        }
    }
}

/* ------------------------------------------------------------ stopping */

static void
begin_stop(run_ctx *r)
{
    r->stopping = true;
    r->stop_deadline = sl_mono_ms() + (int64_t)(r->o->grace_s * 1000);
    SL_FOR_EACH_ORIGIN(&r->lim, o)
    {
        if (o->n_ready)
            release_ready(r, o);
    }
}

/* Abort every running transfer and give its record back. */
static void
abort_running(run_ctx *r)
{
    for (unsigned i = 0; i < r->n_jobs; i++) {
        sl_job *j = &r->jobs[i];
        if (j->state != JOB_RUNNING)
            continue;
        sl_fetcher_abort(r->fetcher, j->transfer);
        j->transfer = NULL;
        sl_limiter_release(&r->lim, j->origin);
        job_release(r, j);
    }
}

/* ------------------------------------------------------------ progress */

static void
progress(run_ctx *r, bool force)
{
    int64_t now = sl_mono_ms();
    if (!force && now < r->next_progress_mono)
        return;
    r->next_progress_mono =
        now + (int64_t)(r->o->progress_interval_s * 1000);
    double t = (double)(now - r->start_mono) / 1000.0;
    /* The rate over the last few seconds. */
    if (t - r->rate_t0 >= RATE_WINDOW_S || r->st.rate == 0) {
        if (t > r->rate_t0)
            r->st.rate = (double)(r->st.done - r->rate_done0) /
                         (t - r->rate_t0);
        if (t - r->rate_t0 >= RATE_WINDOW_S) {
            r->rate_t0 = t;
            r->rate_done0 = r->st.done;
        }
    }
    r->st.elapsed_s = t;
    r->st.in_flight = r->lim.in_flight;
    r->st.pending = r->counts.pending;
    r->st.retrying = r->counts.retrying;
    r->st.total = r->counts.total;
    r->st.total_done = r->counts.done;
    r->st.total_dead = r->counts.dead;
    double left = (double)(r->counts.pending + r->counts.retrying +
                           r->counts.in_flight);
    r->st.eta_s = r->st.rate > 0 ? left / r->st.rate : -1;
    if (r->o->on_progress)
        r->o->on_progress(r->o->ctx, &r->st);
}

/* ------------------------------------------------------------ the loop */

static bool
finished(run_ctx *r)
{
    if (r->fatal != SLUICE_OK)
        return true;
    if (r->stopping)
        return r->lim.in_flight == 0 && sl_store_busy(r->store) == 0;
    if (r->o->follow)
        return false;
    return r->jobs_used == 0 && r->queue_dry && !r->any_waiting;
}

static int
wait_ms(run_ctx *r, int64_t now_mono)
{
    int64_t wait = 100; /* the stop flag is looked at this often */
    if (r->to_mark)
        wait = SL_MAX(0, r->to_mark_since + MARK_WAIT_MS - now_mono);
    if (r->next_lease_mono > now_mono)
        wait = SL_MIN(wait, r->next_lease_mono - now_mono);
    else if (lease_room(r) && !r->stopping)
        wait = 0;
    int64_t now = sl_now_ms();
    SL_FOR_EACH_ORIGIN(&r->lim, o)
    {
        if (o->ready_head && o->paused_until > now)
            wait = SL_MIN(wait, o->paused_until - now);
    }
    return (int)SL_MAX(wait, 0);
}

static void
loop(run_ctx *r)
{
    sl_fetch_result res;
    for (;;) {
        int64_t now = sl_mono_ms();
        if (r->o->stop && *r->o->stop && !r->stopping)
            begin_stop(r);
        /* A second request to stop (*stop >= 2) cuts the grace short. */
        if (r->stopping && (now >= r->stop_deadline || *r->o->stop >= 2))
            abort_running(r);
        top_up(r, now);
        start_ready(r);
        marks_commit(r);
        progress(r, false);
        if (finished(r))
            break;
        sl_fetcher_run(r->fetcher, wait_ms(r, now), sl_store_wake_fd(r->store));
        while (sl_fetcher_next_done(r->fetcher, &res)) {
            on_transfer_done(r, &res);
            sl_free(res.location);
        }
        reap_store(r);
        if (marks_due(r, sl_mono_ms()))
            mark_stored(r);
        marker_news(r);
        if (r->o->follow && now >= r->next_recount_mono) {
            /* Ingest may have added records: count afresh, now and then
             * (after the marks handed over are made). */
            sluice_counts c;
            marks_commit(r); /* our turn ends before the wait */
            sl_marker_wait(r->marker);
            marker_news(r);
            sl_marker_queue_lock(r->marker);
            if (sluice_queue_counts(r->q, &c) == SLUICE_OK)
                r->counts = c;
            sl_marker_queue_unlock(r->marker);
            r->next_recount_mono = now + 5000;
            r->queue_dry = false;
        }
    }
}

/* After the loop: nothing in flight may stay leased. */
static void
wind_down(run_ctx *r)
{
    abort_running(r);
    SL_FOR_EACH_ORIGIN(&r->lim, o)
    {
        if (o->n_ready)
            release_ready(r, o);
    }
    /* Objects being made durable: wait for them (marking those stored),
     * never during our turn on the queue: the marker's go on meanwhile. */
    int64_t give_up = sl_mono_ms() + 60000;
    marks_commit(r);
    while (sl_store_busy(r->store) > 0 && sl_mono_ms() < give_up) {
        sl_fetcher_run(r->fetcher, 50, sl_store_wake_fd(r->store));
        reap_store(r);
        marks_commit(r);
    }
    mark_stored(r);
    sl_marker_stop(r->marker); /* every mark handed over, committed */
    marker_news(r);
}

void
sluice_run_opts_init(sluice_run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_concurrency = 20;
    o->max_attempts = 8;
    o->timeout_s = 120;
    o->stall_timeout_s = 30;
    o->max_bytes = 100u << 20;
    o->max_age_s = 24 * 3600;
    o->backoff_base_s = 1;
    o->backoff_cap_s = 300;
    o->grace_s = 5;
    o->follow_poll_s = 1;
    o->store_concurrency = 16;
    o->s3_path_style = -1;
    o->progress_interval_s = 0.25;
}

static sluice_err
setup(run_ctx *r, sluice_queue *q, const sluice_run_opts *o, char *errbuf,
      size_t errbuf_size)
{
    sluice_err err;
    memset(r, 0, sizeof *r);
    r->q = q;
    r->o = o;
    r->rng = (uint64_t)sl_now_ms() ^ ((uint64_t)(uintptr_t)r << 16);
    r->start_mono = sl_mono_ms();
    if (!o->store || !*o->store) {
        sl_fmt(errbuf, errbuf_size, "--store is required");
        return SLUICE_EINVAL;
    }
    if (o->max_concurrency == 0 || o->max_attempts == 0) {
        sl_fmt(errbuf, errbuf_size,
               "--max-concurrency and --max-attempts must be at least 1");
        return SLUICE_EINVAL;
    }
    err = sl_guard_init(&r->guard, o->allow_private, o->allow_nets,
                        o->n_allow_nets, errbuf, errbuf_size);
    if (err != SLUICE_OK)
        return err;
    if ((err = sl_queue_acquire_runner(q)) != SLUICE_OK) {
        sl_copy(errbuf, errbuf_size, sluice_queue_errmsg(q));
        return err;
    }
    sl_store_opts store_opts = {o->store_concurrency, o->s3_endpoint,
                                o->s3_path_style, o->spool_dir};
    err = sl_store_open(o->store, &store_opts, &r->store, errbuf,
                        errbuf_size);
    if (err == SLUICE_OK && (err = sl_store_recover(r->store)) != SLUICE_OK)
        sl_copy(errbuf, errbuf_size, r->store->errmsg);
    if (err != SLUICE_OK)
        return err;
    uint64_t recovered;
    if ((err = sl_queue_recover(q, sl_now_ms(), &recovered)) != SLUICE_OK ||
        (err = sluice_queue_counts(q, &r->counts)) != SLUICE_OK) {
        sl_copy(errbuf, errbuf_size, sluice_queue_errmsg(q));
        return err;
    }
    unsigned per_origin = o->max_concurrency;
    r->n_active = (unsigned)SL_MIN((size_t)JOBS_MAX,
                                   SL_MAX((size_t)per_origin * 2 + 16,
                                          (size_t)64));
    if (o->max_total)
        r->n_active = SL_MIN(r->n_active, o->max_total * 2 + 16);
    r->n_jobs = r->n_active + sl_store_pipeline(r->store) + MARK_BATCH;
    r->jobs = sl_calloc(r->n_jobs, sizeof *r->jobs);
    r->leased = sl_calloc(LEASE_BATCH, sizeof *r->leased);
    r->skip = sl_calloc(r->n_jobs, sizeof *r->skip);
    r->url_parser = curl_url();
    if (!r->jobs || !r->leased || !r->skip || !r->url_parser ||
        sl_limiter_init(&r->lim, per_origin, o->max_total) != SLUICE_OK)
        goto nomem;
    for (unsigned i = r->n_jobs; i-- > 0;) {
        sl_job *j = &r->jobs[i];
        j->run = r;
        j->next = r->free_jobs;
        r->free_jobs = j;
    }
    sl_fetch_opts fo = {
        .connect_timeout_ms = (long)(SL_MIN(15.0, o->timeout_s) * 1000),
        .timeout_ms = (long)(o->timeout_s * 1000),
        .stall_timeout_s = (long)SL_MAX(1.0, o->stall_timeout_s),
        .max_bytes = o->max_bytes,
        .guard = &r->guard,
        .on_body = on_body,
    };
    if (sl_fetcher_new(&fo, &r->fetcher) != SLUICE_OK ||
        sl_marker_start(q, &r->marker) != SLUICE_OK)
        goto nomem;
    return SLUICE_OK;
nomem:
    sl_fmt(errbuf, errbuf_size, "out of memory");
    return SLUICE_ENOMEM;
}

static void
teardown(run_ctx *r)
{
    sl_marker_free(r->marker);
    sl_fetcher_free(r->fetcher);
    sl_store_close(r->store);
    if (r->jobs) {
        for (unsigned i = 0; i < r->n_jobs; i++) {
            sl_lease_clear(&r->jobs[i].lease);
            sl_free(r->jobs[i].url);
        }
    }
    if (r->lim.buckets)
        sl_limiter_free(&r->lim);
    sl_guard_free(&r->guard);
    curl_url_cleanup(r->url_parser);
    sl_free(r->jobs);
    sl_free(r->leased);
    sl_free(r->skip);
}

sluice_err
sluice_run(sluice_queue *q, const sluice_run_opts *opts,
           sluice_run_stats *stats, char *errbuf, size_t errbuf_size)
{
    run_ctx r;
    sluice_err err = setup(&r, q, opts, errbuf, errbuf_size);
    if (err == SLUICE_OK) {
        loop(&r);
        wind_down(&r);
        if (r.fatal == SLUICE_OK) {
            sluice_counts c;
            if (sluice_queue_counts(q, &c) == SLUICE_OK)
                r.counts = c;
        }
        progress(&r, true);
        err = r.fatal;
        if (err != SLUICE_OK)
            sl_copy(errbuf, errbuf_size, r.fatal_msg);
        else if (opts->stop && *opts->stop)
            err = SLUICE_EINTERRUPTED;
    }
    if (stats)
        *stats = r.st;
    teardown(&r);
    return err;
}
