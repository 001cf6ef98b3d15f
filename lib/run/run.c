/*
 * sluice_run: the run's lifetime and its loop. One thread, one event loop
 * (the fetcher's epoll set, which also watches the store's wake pipe):
 * each turn leases records, starts what the slots allow, takes in the
 * transfers that ended and the store's verdicts, and hands stored records
 * to the marker. The store syncs on its own thread and the marker commits
 * done marks on another. run.h says which file does what.
 */
#include "run.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

#include <curl/curl.h>

#define JOBS_MAX          4096 /* leased and not yet handed to the store */
#define COUNT_INTERVAL_MS 1000 /* the queue counted this often */

void
sl_run_fail(sl_run *r, sluice_err err, const char *msg)
{
    if (r->fatal != SLUICE_OK)
        return;
    r->fatal = err;
    sl_copy(r->fatal_msg, sizeof r->fatal_msg, msg);
}

void
sl_run_notice(sl_run *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    if (!r->o->on_notice)
        return;
    va_start(ap, fmt);
    sl_vfmt(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->o->on_notice(r->o->ctx, msg);
}

void
sl_run_event(sl_run *r, const sl_job *j, sl_error_class cls, int status,
             const char *msg)
{
    if (r->o->on_event)
        r->o->on_event(r->o->ctx, j->lease.id, j->lease.url,
                       sl_error_class_name(cls), status, msg);
}

/* ------------------------------------------------------------ stopping */

static void
begin_stop(sl_run *r)
{
    r->stopping = true;
    r->stop_deadline = sl_mono_ms() + (int64_t)(r->o->grace_s * 1000);
    SL_FOR_EACH_ORIGIN(&r->origins, o)
    {
        if (o->n_ready)
            sl_sched_release_ready(r, o);
    }
}

/* ------------------------------------------------------------ the loop */

static bool
finished(sl_run *r)
{
    /* After a failure, the requests in flight get the grace to end (the
     * origin is then done with them, and their slots are free), their
     * bodies thrown away; the store is not waited for. */
    if (r->fatal != SLUICE_OK) {
        if (!r->stopping)
            begin_stop(r);
        return r->sched.running == 0 || sl_mono_ms() >= r->stop_deadline;
    }
    if (r->stopping)
        return r->sched.running == 0 && sl_store_busy(r->store) == 0;
    /* Marks kept while the queue is away, and records it may yet hold. */
    if (r->marks.down || r->o->follow)
        return false;
    return r->sched.jobs_used == 0 && r->sched.asked == 0 &&
           r->sched.queue_dry && !r->sched.any_waiting;
}

#define TAIL_POLL_MS 5

/* How long the loop may wait for the network before its next turn (ms,
 * to the microsecond). */
static double
wait_ms(sl_run *r, int64_t now_mono)
{
    double wait = 100; /* the stop flag is looked at this often */
    int64_t marks_due = sl_marks_due_mono(r);
    if (marks_due >= 0)
        wait = (double)SL_MAX(0, marks_due - now_mono);
    /* The marker is writing what may be the last records: a few ms. */
    if (sl_marks_settling(r))
        wait = SL_MIN(wait, (double)TAIL_POLL_MS);
    if (r->sched.next_lease_mono > now_mono)
        wait = SL_MIN(wait, (double)(r->sched.next_lease_mono - now_mono));
    else if (sl_sched_lease_room(r) && !r->stopping && !r->marks.down)
        wait = 0;
    /* To the microsecond: an origin's pace is kept to its next start,
     * and a wait rounded twice would lose a millisecond on each. */
    double now = sl_boot_msf();
    SL_FOR_EACH_ORIGIN(&r->origins, o)
    {
        double until = SL_MAX((double)o->paused_until, o->next_try);
        if (o->ready_head && until > now)
            wait = SL_MIN(wait, until - now);
    }
    return SL_MAX(wait, 0);
}

static void
loop(sl_run *r)
{
    sl_fetch_result res;
    for (;;) {
        int64_t now = sl_mono_ms();
        if (((r->o->stop && *r->o->stop) || r->fatal != SLUICE_OK) &&
            !r->stopping)
            begin_stop(r);
        /* A second request to stop (*stop >= 2) cuts the grace short. */
        if (r->stopping && (now >= r->stop_deadline ||
                            (r->o->stop && *r->o->stop >= 2)))
            sl_sched_abort_running(r);
        sl_sched_top_up(r, now);
        sl_sched_renew(r, now);
        sl_sched_start_ready(r);
        sl_marks_commit(r);
        sl_progress(r, false);
        if (finished(r))
            break;
        sl_fetcher_wait(r->fetcher, wait_ms(r, now));
        /* Before any transfer moves on: one that outlived its slot (the
         * process was stopped, the machine suspended) holds it no more. */
        sl_sched_abort_expired(r);
        sl_fetcher_dispatch(r->fetcher);
        while (sl_fetcher_next_done(r->fetcher, &res)) {
            sl_outcome_transfer_done(r, &res);
            sl_free(res.location);
        }
        sl_body_reap(r);
        sl_marks_flush_due(r, sl_mono_ms());
        sl_marks_news(r);
        if (r->o->follow && now >= r->next_recount_mono) {
            /* Ingest may have added records: look for them now and then. */
            r->next_recount_mono = now + 5000;
            r->sched.queue_dry = false;
        }
    }
}

/* After the loop: nothing in flight may stay leased. */
static void
wind_down(sl_run *r)
{
    sl_sched_abort_running(r);
    sl_sched_stop_leasing(r);
    SL_FOR_EACH_ORIGIN(&r->origins, o)
    {
        if (o->n_ready)
            sl_sched_release_ready(r, o);
    }
    /* Objects being made durable: wait for them (marking those stored),
     * never during our turn on the queue: the marker's go on meanwhile. */
    int64_t give_up = sl_mono_ms() + 60000;
    sl_marks_commit(r);
    while (sl_store_busy(r->store) > 0 && sl_mono_ms() < give_up) {
        sl_fetcher_run(r->fetcher, 50);
        sl_body_reap(r);
        sl_marks_commit(r);
    }
    sl_marks_flush(r);
    sl_marker_stop(r->marks.marker); /* every mark handed over, committed */
    sl_marks_news(r);
}

/* ------------------------------------------------------------ lifetime */

void
sluice_run_opts_init(sluice_run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_attempts = 8;
    o->timeout_s = 120;
    o->stall_timeout_s = 30;
    o->max_bytes = 100u << 20;
    o->max_age_s = 24 * 3600;
    o->backoff_base_s = 1;
    o->backoff_cap_s = 300;
    o->grace_s = 5;
    o->outage_max_s = 300;
    o->follow_poll_s = 1;
    o->store_concurrency = 16;
    o->s3_path_style = -1;
    o->progress_interval_s = 0.25;
}

/* The store, its wake pipe watched by the loop, and what a crashed run
 * left in it removed. */
static sluice_err
open_store(sl_run *r, char *errbuf, size_t errbuf_size)
{
    const sluice_run_opts *o = r->o;
    sl_store_opts store_opts = {o->store_concurrency, o->s3_endpoint,
                                o->s3_path_style, o->spool_dir};
    sluice_err err =
        sl_store_open(o->store, &store_opts, &r->store, errbuf, errbuf_size);
    if (err == SLUICE_OK && (err = sl_store_recover(r->store)) != SLUICE_OK)
        sl_copy(errbuf, errbuf_size, sl_store_errmsg(r->store));
    return err;
}

static sluice_err
setup(sl_run *r, sluice_queue *q, const sluice_run_opts *o, char *errbuf,
      size_t errbuf_size)
{
    sluice_err err;
    memset(r, 0, sizeof *r);
    r->q = q;
    r->o = o;
    r->wall0 = sl_now_ms();
    r->boot0 = sl_boot_ms();
    r->rng = (uint64_t)r->wall0 ^ ((uint64_t)(uintptr_t)r << 16);
    r->start_mono = sl_mono_ms();
    if (!o->store || !*o->store) {
        sl_fmt(errbuf, errbuf_size, "--store is required");
        return SLUICE_EINVAL;
    }
    if (o->max_attempts == 0) {
        sl_fmt(errbuf, errbuf_size, "--max-attempts must be at least 1");
        return SLUICE_EINVAL;
    }
    if (o->ca_file) {
        char why[256];
        if (sluice_check_ca_file(o->ca_file, why, sizeof why) != SLUICE_OK) {
            sl_fmt(errbuf, errbuf_size, "CA file %s: %s", o->ca_file, why);
            return SLUICE_EINVAL;
        }
    }
    if (o->ca_path) {
        char why[256];
        if (sluice_check_ca_path(o->ca_path, why, sizeof why) != SLUICE_OK) {
            sl_fmt(errbuf, errbuf_size, "CA directory %s: %s", o->ca_path,
                   why);
            return SLUICE_EINVAL;
        }
    }
    err = sl_guard_init(&r->guard, o->allow_private, o->allow_nets,
                        o->n_allow_nets, errbuf, errbuf_size);
    if (err != SLUICE_OK)
        return err;
    if ((err = sl_queue_acquire_runner(q)) != SLUICE_OK) {
        sl_copy(errbuf, errbuf_size, sluice_queue_errmsg(q));
        return err;
    }
    r->manifest.fd = -1;
    if ((err = open_store(r, errbuf, errbuf_size)) != SLUICE_OK)
        return err;
    if (o->manifest && (err = sl_manifest_open(&r->manifest, o->manifest,
                                               errbuf, errbuf_size)) !=
                           SLUICE_OK)
        return err;
    /* In-flight records are a crashed run's only where one runner at a
     * time is the rule; elsewhere their leases expire to other runners. */
    uint64_t recovered;
    if (sl_queue_has(q, SL_QUEUE_F_EXCLUSIVE) &&
        (err = sl_queue_recover(q, sl_run_wall(r), &recovered)) != SLUICE_OK) {
        sl_copy(errbuf, errbuf_size, sluice_queue_errmsg(q));
        return err;
    }
    if ((err = sluice_queue_counts(q, &r->counts)) != SLUICE_OK) {
        sl_copy(errbuf, errbuf_size, sluice_queue_errmsg(q));
        return err;
    }
    if ((err = sl_run_policy(r, errbuf, errbuf_size)) != SLUICE_OK)
        return err;
    unsigned cap;
    double rate;
    if ((err = sl_run_limits(r, &cap, &rate, errbuf, errbuf_size)) !=
        SLUICE_OK)
        return err;
    sl_slots_opts so = {cap, o->max_total, (int64_t)(o->timeout_s * 1000),
                        rate, !o->no_adapt, true};
    err = sl_slots_open(sl_queue_slots(q), &so, q, &r->slots, errbuf,
                        errbuf_size);
    if (err != SLUICE_OK)
        return err;
    /* An outage of the slots' server is waited out as the queue's is. */
    r->slots->outage_max_ms =
        SL_MAX((int64_t)1, (int64_t)(o->outage_max_s * 1000));
    sl_run_tell_held(r);
    /* Leases answered off the loop (leaser.h) come a few ms after the
     * question: there an origin keeps three times its cap ready, so
     * that its slots do not run dry meanwhile. */
    unsigned ahead = sl_queue_has(q, SL_QUEUE_F_CONNECTIONS) ? 3 : 1;
    unsigned n_active = (unsigned)SL_MIN(
        (size_t)JOBS_MAX,
        SL_MAX((size_t)cap * (1 + ahead) + 16, (size_t)64));
    if (o->max_total)
        n_active = SL_MIN(n_active, o->max_total * (1 + ahead) + 16);
    unsigned n_jobs =
        n_active + (unsigned)sl_store_pipeline(r->store) + SL_MARK_BATCH;
    r->url_parser = curl_url();
    if (!r->url_parser ||
        sl_sched_init(r, n_active, n_jobs, cap * ahead) != SLUICE_OK ||
        sl_origins_init(&r->origins, r->slots) != SLUICE_OK)
        goto nomem;
    sl_fetch_opts fo = {
        .connect_timeout_ms = (long)(SL_MIN(15.0, o->timeout_s) * 1000),
        .timeout_ms = (long)(o->timeout_s * 1000),
        .stall_timeout_s = (long)SL_MAX(1.0, o->stall_timeout_s),
        .max_bytes = o->max_bytes,
        .guard = &r->guard,
        .on_body = sl_body_write,
        .on_sent = sl_sched_sent,
        .ca_file = o->ca_file,
        .ca_path = o->ca_path,
    };
    /* A handle of its own for the marker where the queue gives one
     * cheaply; if it cannot be had now, the marker shares ours. */
    sluice_queue *mq = q;
    sluice_queue_opts mo = {SLUICE_QUEUE_NOCREATE, 0};
    if (sl_queue_has(q, SL_QUEUE_F_CONNECTIONS) &&
        sluice_queue_open(q->location, &mo, &r->marks.marker_q, NULL, 0) ==
            SLUICE_OK)
        mq = r->marks.marker_q;
    if (sl_fetcher_new(&fo, &r->fetcher) != SLUICE_OK ||
        sl_marker_start(mq, &r->marks.marker) != SLUICE_OK ||
        sl_sched_start_leaser(r) != SLUICE_OK)
        goto nomem;
    sl_marker_set_outage_max(r->marks.marker,
                             (int64_t)(o->outage_max_s * 1000));
    /* Without a second handle (a queue that cannot give one), the counts
     * are those of the start until the end. */
    if (sl_counter_start(q->location, COUNT_INTERVAL_MS, &r->counter) ==
        SLUICE_ENOMEM)
        goto nomem;
    /* The store's wake pipe ends the wait: its results are reaped each
     * turn. */
    int wake_fd = sl_store_wake_fd(r->store);
    if (wake_fd >= 0 &&
        sl_fetcher_watch(r->fetcher, wake_fd, NULL, NULL) != SLUICE_OK)
        goto nomem;
    return SLUICE_OK;
nomem:
    sl_fmt(errbuf, errbuf_size, "out of memory");
    return SLUICE_ENOMEM;
}

static void
teardown(sl_run *r)
{
    sl_counter_stop(r->counter);
    sl_marker_free(r->marks.marker);
    sluice_queue_close(r->marks.marker_q);
    sl_fetcher_free(r->fetcher);
    sl_store_close(r->store);
    sl_manifest_close(&r->manifest);
    sl_sched_free(r);
    sl_origins_free(&r->origins);
    sl_slots_close(r->slots);
    sl_guard_free(&r->guard);
    curl_url_cleanup(r->url_parser);
}

sluice_err
sluice_run(sluice_queue *q, const sluice_run_opts *opts,
           sluice_run_stats *stats, char *errbuf, size_t errbuf_size)
{
    sl_run r;
    sluice_err err = setup(&r, q, opts, errbuf, errbuf_size);
    if (err == SLUICE_OK) {
        loop(&r);
        wind_down(&r);
        /* The summary is the queue's, whatever stopped the run: what the
         * run meant to mark is not what the queue holds if a mark failed
         * (a full disk, say). */
        sl_counter_stop(r.counter);
        r.counter = NULL;
        sluice_counts c;
        if (sluice_queue_counts(q, &c) == SLUICE_OK)
            r.counts = c;
        sl_progress(&r, true);
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
