/*
 * The scheduler: admission (leasing records from the queue into jobs, as
 * many as keep every slot busy and no more) and starting (a ready job's
 * request goes the moment its origin has a free slot, never one more:
 * invariant 1, with retries and redirect hops counted like any request).
 * The jobs of each origin wait on its ready list in feed order, so a slow
 * or paused origin holds no other back (invariant 4).
 */
#include "run.h"

#include <string.h>

#define LEASE_BATCH  256
#define IDLE_POLL_MS 250 /* look for due records this often when idle */

sluice_err
sl_sched_init(sl_run *r, unsigned n_active, unsigned n_jobs,
              unsigned ready_max)
{
    sl_sched *s = &r->sched;
    memset(s, 0, sizeof *s);
    s->n_active = n_active;
    s->ready_max = SL_MAX(ready_max, 2u);
    s->n_jobs = n_jobs;
    s->jobs = sl_calloc(n_jobs, sizeof *s->jobs);
    s->leased = sl_calloc(LEASE_BATCH, sizeof *s->leased);
    s->skip = sl_calloc(n_jobs, sizeof *s->skip);
    s->renewing = sl_calloc(n_jobs, sizeof *s->renewing);
    if (!s->jobs || !s->leased || !s->skip || !s->renewing)
        return SLUICE_ENOMEM;
    /* A lease outlives a record's whole handling (redirect hops, the
     * store's retries) by being renewed every third of it; when its
     * runner dies (a Redis queue that others share), the others take the
     * record when it lapses: three timeouts, at least 30 s. */
    s->lease_ms = (int64_t)(SL_MAX(30.0, 3 * r->o->timeout_s) * 1000);
    s->next_renew_mono = sl_mono_ms() + s->lease_ms / 3;
    for (unsigned i = n_jobs; i-- > 0;) {
        sl_job *j = &s->jobs[i];
        j->run = r;
        j->next = s->free_jobs;
        s->free_jobs = j;
    }
    return SLUICE_OK;
}

void
sl_sched_free(sl_run *r)
{
    sl_sched *s = &r->sched;
    if (s->jobs) {
        for (unsigned i = 0; i < s->n_jobs; i++) {
            sl_lease_clear(&s->jobs[i].lease);
            sl_free(s->jobs[i].url);
        }
    }
    sl_free(s->jobs);
    sl_leaser_free(s->leaser);
    sluice_queue_close(s->leaser_q);
    sl_free(s->leased);
    sl_free(s->skip);
    sl_free(s->renewing);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------ jobs */

static sl_job *
job_new(sl_sched *s)
{
    sl_job *j = s->free_jobs;
    if (!j)
        return NULL;
    s->free_jobs = j->next;
    j->next = NULL;
    s->jobs_used++;
    return j;
}

void
sl_job_set_origin(sl_job *j, sl_origin *o)
{
    /* An origin without jobs is forgotten by sl_origins_sweep, once any
     * pause it is under is over. */
    if (j->origin)
        j->origin->jobs--;
    j->origin = o;
    if (o)
        o->jobs++;
}

void
sl_job_free(sl_run *r, sl_job *j)
{
    sl_sched *s = &r->sched;
    sl_object_discard(j->obj);
    j->obj = NULL;
    sl_job_set_origin(j, NULL);
    sl_lease_clear(&j->lease);
    sl_free(j->url);
    j->url = NULL;
    if (j->state == SL_JOB_STORING)
        s->jobs_storing--;
    j->state = SL_JOB_FREE;
    j->hops = 0;
    j->next = s->free_jobs;
    s->free_jobs = j;
    s->jobs_used--;
}

void
sl_job_make_ready(sl_job *j, bool front)
{
    sl_origin *o = j->origin;
    j->state = SL_JOB_READY;
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
pop_ready(sl_run *r, sl_origin *o)
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
    if (o->enough_ready && o->n_ready <= r->sched.ready_max / 2) {
        o->enough_ready = false;
        sl_sched_lease_now(r);
    }
    return j;
}

void
sl_sched_release_ready(sl_run *r, sl_origin *o)
{
    sl_job *j;
    while ((j = pop_ready(r, o)) != NULL)
        sl_job_release(r, j);
}

/* ------------------------------------------------------------ leasing */

/* Jobs ready or running (not waiting for the store), and those the
 * question out to the leaser may bring. */
static unsigned
jobs_active(const sl_sched *s)
{
    return s->jobs_used - s->jobs_storing + s->asked;
}

/* Jobs a lease may take: free ones, within the budget of those ready,
 * running or with the store (jobs waiting only for their mark have
 * SL_MARK_BATCH of their own, so a store that lags still stops leasing). */
static unsigned
jobs_leasable(const sl_run *r)
{
    const sl_sched *s = &r->sched;
    unsigned busy = s->jobs_used + s->asked - r->marks.n_to_mark;
    unsigned budget = s->n_jobs - SL_MARK_BATCH;
    return SL_MIN(busy < budget ? budget - busy : 0,
                  s->n_jobs - s->jobs_used - s->asked);
}

/* Room for a lease: no question out, jobs free, and a quarter of n_active
 * fewer ready or running than can start soon (one lease of many records
 * costs far less than many of one; the rest still waiting keep the slots
 * busy). Jobs waiting for the store do not count: a slow sync or upload
 * must not leave slots empty. */
bool
sl_sched_lease_room(const sl_run *r)
{
    const sl_sched *s = &r->sched;
    return s->asked == 0 && jobs_leasable(r) > 0 &&
           jobs_active(s) + SL_MAX(s->n_active / 4, 1u) <= s->n_active;
}

/* Fewer records than asked for: nothing more is ready (but for the
 * origins left alone); look again when something comes due. */
static void
wait_for_due(sl_run *r, int64_t now_mono, size_t n_skip, bool any,
             int64_t due)
{
    sl_sched *s = &r->sched;
    int64_t now = sl_run_wall(r);
    s->queue_dry = n_skip == 0;
    s->any_waiting = any;
    s->next_due_wall = any ? due : 0;
    int64_t wait =
        r->o->follow ? (int64_t)(r->o->follow_poll_s * 1000) : IDLE_POLL_MS;
    /* A retry already due that the lease left alone belongs to an origin
     * that is paused or has enough waiting: that changes by events (which
     * reset next_lease_mono), not by polling, so never poll at once. */
    if (any && due > now && due - now < wait)
        wait = due - now;
    s->next_lease_mono = now_mono + wait;
    if (n_skip > 0)
        s->others_dry_mono = s->next_lease_mono;
}

/* Leased records made jobs, ready on their origins' lists (or given
 * back at once, the run stopping). */
static void
admit(sl_run *r, sl_lease *leased, size_t got)
{
    sl_sched *s = &r->sched;
    for (size_t i = 0; i < got; i++) {
        sl_job *j = job_new(s);
        sl_origin *o = sl_origins_get(&r->origins, leased[i].origin);
        j->lease = leased[i];
        memset(&leased[i], 0, sizeof leased[i]);
        j->url = sl_strdup(j->lease.url);
        if (!o || !j->url) {
            sl_run_fail(r, SLUICE_ENOMEM, "out of memory");
            sl_job_release(r, j);
            continue;
        }
        sl_job_set_origin(j, o);
        if (r->stopping) {
            sl_job_release(r, j);
            continue;
        }
        sl_job_make_ready(j, false);
        if (o->n_ready >= s->ready_max)
            o->enough_ready = true;
    }
}

void
sl_sched_lease_now(sl_run *r)
{
    r->sched.next_lease_mono = 0;
    r->sched.lease_now = r->sched.asked > 0;
}

void
sl_sched_look_anywhere(sl_run *r)
{
    sl_sched_lease_now(r);
    r->sched.others_dry_mono = 0;
}

/* The leaser's answer, if it is in (or, with `wait`, once it is). */
static void
take_answer(sl_run *r, int64_t now_mono, bool wait)
{
    sl_sched *s = &r->sched;
    sl_lease_answer *a = sl_leaser_answer(s->leaser, wait);
    if (!a)
        return;
    size_t want = s->asked;
    bool stale = s->lease_now; /* the question's skips, say */
    s->asked = 0;
    s->lease_now = false;
    admit(r, a->leases, a->n);
    if (a->err != SLUICE_OK) {
        if (a->outage)
            sl_marks_away_with(r, a->err, a->msg);
        else
            sl_run_fail(r, a->err, a->msg);
    } else if (a->n == want) {
        s->next_lease_mono = 0;
    } else if (a->due_read && !stale) {
        wait_for_due(r, now_mono, s->asked_skip, a->any_due, a->due_ms);
    }
    sl_leaser_done(s->leaser);
}

void
sl_sched_top_up(sl_run *r, int64_t now_mono)
{
    sl_sched *s = &r->sched;
    if (s->asked)
        take_answer(r, now_mono, false);
    /* Nothing new while the queue is away (marks.c). */
    if (r->stopping || r->fatal != SLUICE_OK || r->marks.down)
        return;
    if (!sl_sched_lease_room(r))
        return;
    int64_t now = sl_run_wall(r), now_boot = sl_boot_ms();
    /* A pause that has just ended: its origin's records can be leased. */
    if (sl_origins_sweep(&r->origins, now_boot))
        sl_sched_lease_now(r);
    if (now_mono < s->next_lease_mono)
        return;
    size_t n_skip = 0, n_origins = 0;
    SL_FOR_EACH_ORIGIN(&r->origins, o)
    {
        n_origins++;
        if ((o->enough_ready || o->paused_until > now_boot) &&
            n_skip < s->n_jobs)
            s->skip[n_skip++] = o->name;
    }
    size_t want = SL_MIN(SL_MIN((size_t)jobs_leasable(r),
                                (size_t)(s->n_active - jobs_active(s))),
                         (size_t)LEASE_BATCH);
    /* A backend that cannot skip origins leases what comes; the jobs are
     * bounded all the same. */
    if (!sl_queue_has(r->q, SL_QUEUE_F_SKIP))
        n_skip = 0;
    /* Every origin we know left alone: only others' records could come,
     * and the last look found none; they can come due no sooner. Nor
     * does the loop wake to lease before then: an origin wanting records
     * again (pop_ready) or a pause ending leases at once. */
    if (n_skip > 0 && n_skip == n_origins && now_mono < s->others_dry_mono) {
        s->next_lease_mono = s->others_dry_mono;
        return;
    }
    sl_lease_req req = {want, now, s->lease_ms, s->skip, n_skip};
    if (s->leaser) {
        /* Answered on a later turn: the loop goes on meanwhile. */
        if (!sl_leaser_ask(s->leaser, &req)) {
            sl_run_fail(r, SLUICE_ENOMEM, "out of memory");
            return;
        }
        s->asked = want;
        s->asked_skip = n_skip;
        return;
    }
    size_t got = 0;
    if (!sl_marks_begin(r))
        return;
    sluice_err err = sl_queue_lease(r->q, &req, s->leased, &got);
    bool any = false;
    int64_t due = 0;
    if (err == SLUICE_OK && got < want)
        err = sl_queue_next_due(r->q, &due, &any);
    if (err != SLUICE_OK) /* while it is our turn: its message */
        sl_marks_away(r, err);
    sl_marks_commit(r);
    admit(r, s->leased, got);
    if (err != SLUICE_OK)
        return;
    if (got == want)
        s->next_lease_mono = 0;
    else
        wait_for_due(r, now_mono, n_skip, any, due);
}

sluice_err
sl_sched_start_leaser(sl_run *r)
{
    sl_sched *s = &r->sched;
    sluice_queue_opts mo = {SLUICE_QUEUE_NOCREATE, 0};
    /* Without a handle of its own, the loop leases itself. */
    if (!sl_queue_has(r->q, SL_QUEUE_F_CONNECTIONS) ||
        sluice_queue_open(r->q->location, &mo, &s->leaser_q, NULL, 0) !=
            SLUICE_OK)
        return SLUICE_OK;
    sluice_err err = sl_leaser_start(s->leaser_q, LEASE_BATCH, &s->leaser);
    /* Its descriptor ends the loop's wait: the answer is taken next
     * turn (sl_sched_top_up). */
    if (err == SLUICE_OK)
        err = sl_fetcher_watch(r->fetcher, sl_leaser_fd(s->leaser), NULL,
                               NULL);
    return err;
}

void
sl_sched_stop_leasing(sl_run *r)
{
    if (r->sched.asked)
        take_answer(r, sl_mono_ms(), true);
}

/* ------------------------------------------------------------ starting */

/* Start `o`'s first ready job if a slot is free: true when it started. */
static bool
start_one(sl_run *r, sl_origin *o, int64_t now)
{
    sl_job *j = o->ready_head;
    double free_at;
    sluice_err err =
        sl_slots_take(r->slots, o->slots, sl_boot_msf(), &j->slot, &free_at);
    if (err == SLUICE_EAGAIN) {
        /* Not before its pace or a pause allows (0: after a release). */
        o->next_try = free_at;
        if (free_at > (double)now)
            o->paused_until = sl_slots_paused_until(r->slots, o->slots);
        return false;
    }
    if (err != SLUICE_OK) {
        sl_run_fail(r, err, r->slots->errmsg);
        return false;
    }
    pop_ready(r, o);
    j->state = SL_JOB_RUNNING;
    j->bytes = j->error_bytes = 0;
    j->too_large = false;
    j->transfer = sl_fetcher_start(r->fetcher, j->url, j);
    if (!j->transfer) {
        sl_slots_release(r->slots, &j->slot, true); /* nothing was sent */
        sl_run_fail(r, SLUICE_ENOMEM, "cannot start a transfer");
        sl_job_release(r, j);
        return false;
    }
    r->sched.running++;
    o->running++;
    r->st.requests++;
    return true;
}

void
sl_sched_sent(void *owner)
{
    sl_job *j = owner;
    sl_slots_sent(j->run->slots, j->origin->slots, sl_boot_msf());
}

void
sl_sched_start_ready(sl_run *r)
{
    /* The slot service may write to the queue: our turn ends first. */
    sl_marks_commit(r);
    int64_t now = sl_boot_ms();
    sluice_err err = sl_slots_sync(r->slots, now);
    if (err != SLUICE_OK) {
        sl_run_fail(r, err, r->slots->errmsg);
        return;
    }
    /* While the queue is away, no slot is taken: what runs ends or is
     * aborted by its own deadline, and nothing starts. */
    bool started = !r->stopping && !r->marks.down;
    /* The slots each origin's ready jobs could take, asked for at once
     * where a take is a round trip (an origin that was down: its one
     * probe). */
    if (started) {
        SL_FOR_EACH_ORIGIN(&r->origins, o)
        {
            if (o->ready_head)
                sl_slots_want(r->slots, o->slots,
                              o->down_pauses ? 1 : o->n_ready);
        }
    }
    while (started && r->fatal == SLUICE_OK) {
        started = false;
        SL_FOR_EACH_ORIGIN(&r->origins, o)
        {
            if (!o->ready_head || o->paused_until > now ||
                o->next_try > sl_boot_msf())
                continue;
            /* An origin that was down gets one request, a probe, until
             * it answers. */
            if (o->down_pauses && o->running > 0)
                continue;
            if (start_one(r, o, now))
                started = true;
            else if (r->fatal != SLUICE_OK)
                break;
        }
    }
    /* Slots released whole since the last turn served the starts they
     * could; the rest go back to every runner. */
    sl_slots_settle(r->slots);
}

void
sl_sched_request_ended(sl_run *r, sl_job *j, bool complete)
{
    sl_slots_release(r->slots, &j->slot, complete);
    j->transfer = NULL;
    r->sched.running--;
    j->origin->running--;
}

void
sl_sched_renew(sl_run *r, int64_t now_mono)
{
    sl_sched *s = &r->sched;
    /* While the queue is away, renewed the moment it is back. */
    if (now_mono < s->next_renew_mono || r->marks.down)
        return;
    s->next_renew_mono = now_mono + s->lease_ms / 3;
    size_t n = 0;
    for (unsigned i = 0; i < s->n_jobs; i++)
        if (s->jobs[i].state != SL_JOB_FREE && s->jobs[i].lease.id)
            s->renewing[n++] = s->jobs[i].lease; /* a shallow copy */
    if (n == 0 || !sl_marks_begin(r))
        return;
    sluice_err err = sl_queue_renew(r->q, s->renewing, n,
                                    sl_run_wall(r) + s->lease_ms);
    if (err != SLUICE_OK && sl_marks_away(r, err))
        s->next_renew_mono = 0;
    memset(s->renewing, 0, n * sizeof *s->renewing);
}

#define EXPIRY_CHECK_MS 100

void
sl_sched_abort_expired(sl_run *r)
{
    sl_sched *s = &r->sched;
    int64_t now = sl_boot_ms();
    if (now < s->next_expiry_check || s->running == 0)
        return;
    s->next_expiry_check = now + EXPIRY_CHECK_MS;
    for (unsigned i = 0; i < s->n_jobs; i++) {
        sl_job *j = &s->jobs[i];
        if (j->state != SL_JOB_RUNNING || now < j->slot.deadline_boot)
            continue;
        char msg[160];
        sl_fmt(msg, sizeof msg,
               "aborted %.1f s past its slot's deadline (was this process "
               "stopped, or the machine suspended?)",
               (double)(now - j->slot.deadline_boot) / 1000.0);
        sl_fetcher_abort(r->fetcher, j->transfer);
        sl_object_discard(j->obj);
        j->obj = NULL;
        sl_sched_request_ended(r, j, false);
        sl_outcome_failed(r, j, SL_CLASS_TIMEOUT, 0, msg);
    }
}

void
sl_sched_abort_running(sl_run *r)
{
    sl_sched *s = &r->sched;
    for (unsigned i = 0; i < s->n_jobs; i++) {
        sl_job *j = &s->jobs[i];
        if (j->state != SL_JOB_RUNNING)
            continue;
        sl_fetcher_abort(r->fetcher, j->transfer);
        sl_sched_request_ended(r, j, false);
        sl_job_release(r, j);
    }
}
