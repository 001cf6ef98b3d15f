/*
 * The run's writes to the queue. Releases, retries and dead letters are
 * written in the run's turn on the queue, a transaction that stays open
 * for a round of the loop; done marks go to the marker's thread in
 * batches (marker.h), and only once the store says the object is durable
 * (invariant 3). While a queue that may be away (Redis) does not answer,
 * the run writes nothing itself: its marks are kept, in order, by the
 * marker, which finds out when the queue is back.
 */
#include "run.h"

#include <time.h>

#define MARK_WAIT_MS 50 /* and the longest one waits for the rest */

/* The queue is away (the marker says so): said once. */
static void
went_down(sl_run *r, int64_t since_wall, const char *why)
{
    char since[16];
    r->marks.down = true;
    r->marks.down_since_wall = since_wall;
    sl_clock_text(since, sizeof since, since_wall);
    sl_run_notice(r,
                  "queue unreachable since %s, retrying (for up to %.0f s; "
                  "no new records or slots meanwhile): %s",
                  since, r->o->outage_max_s, why);
}

/* The marker found the queue back on its own connection (the marker has
 * one: SL_QUEUE_F_CONNECTIONS). The run's may still be the one that
 * broke, which only its next call finds out, dropping it: so a call now,
 * and once more on the fresh connection. False while the queue does not
 * answer it (the marker is asked to probe on), or after a failure. */
static bool
own_connection_back(sl_run *r)
{
    if (!r->marks.marker_q)
        return true; /* the marker's connection is the run's */
    sluice_err err = SLUICE_OK;
    for (int i = 0; i < 2; i++) {
        int64_t due;
        bool any;
        if (!sl_marks_begin(r))
            return false;
        err = sl_queue_next_due(r->q, &due, &any);
        if (err == SLUICE_OK || i == 1 || !sl_queue_outage(r->q, err))
            break;
        sl_marks_commit(r); /* a dead connection, dropped: once more */
    }
    /* Still away: the marker probes on (nothing said: it is the same
     * outage); or another failure, the run's. */
    if (err != SLUICE_OK)
        sl_marks_away(r, err);
    sl_marks_commit(r);
    return err == SLUICE_OK;
}

/* The queue answers again: leases are renewed and records leased at
 * once. */
static void
came_back(sl_run *r)
{
    char since[16];
    r->marks.down = false;
    sl_clock_text(since, sizeof since, r->marks.down_since_wall);
    sl_run_notice(r, "queue reachable again (unreachable since %s, %.1f s)",
                  since,
                  (double)(sl_now_ms() - r->marks.down_since_wall) / 1000.0);
    r->sched.next_renew_mono = 0;
    sl_sched_look_anywhere(r);
    r->sched.queue_dry = false;
}

bool
sl_marks_away(sl_run *r, sluice_err err)
{
    char msg[512];
    sl_copy(msg, sizeof msg, sluice_queue_errmsg(r->q));
    return sl_marks_away_with(r, err, msg);
}

bool
sl_marks_away_with(sl_run *r, sluice_err err, const char *msg)
{
    if (!sl_queue_outage(r->q, err)) {
        sl_run_fail(r, err, msg);
        return false;
    }
    sl_marker_unreachable(r->marks.marker, err, msg);
    if (!r->marks.down)
        went_down(r, sl_now_ms(), msg);
    return true;
}

bool
sl_marks_begin(sl_run *r)
{
    if (r->marks.open)
        return true;
    sl_queue_lock(r->q);
    sluice_err err = sl_queue_begin(r->q);
    if (err != SLUICE_OK) {
        sl_marks_away(r, err);
        sl_queue_unlock(r->q);
        return false;
    }
    r->marks.open = true;
    return true;
}

void
sl_marks_commit(sl_run *r)
{
    if (!r->marks.open)
        return;
    r->marks.open = false;
    sluice_err err = sl_queue_commit(r->q);
    if (err != SLUICE_OK) {
        sl_marks_away(r, err);
        sl_queue_rollback(r->q);
    }
    sl_queue_unlock(r->q);
}

void
sl_marks_lock(sl_run *r)
{
    sl_queue_lock(r->q);
}

void
sl_marks_unlock(sl_run *r)
{
    sl_queue_unlock(r->q);
}

/* At the queue's end with nothing of the run's own left but marks the
 * marker may still be writing, and something in flight or due. */
static bool
at_tail(const sl_run *r)
{
    return r->sched.jobs_used == 0 && r->sched.queue_dry &&
           r->sched.any_waiting && !r->marks.to_mark && !r->marks.down;
}

/* A mark's result: a stale lease is no failure (the record changed). */
static bool
mark_ok(sl_run *r, sluice_err err)
{
    if (err == SLUICE_OK)
        return true;
    if (err != SLUICE_ENOTFOUND)
        sl_run_fail(r, err, sluice_queue_errmsg(r->q));
    return false;
}

/* A retry, dead or release mark, written in the run's turn; while the
 * queue is away, or when this write finds it away, kept by the marker,
 * in order. True when made or kept; false when the lease was stale or
 * the run failed. */
static bool
mark_write(sl_run *r, sl_job *j, sl_mark_kind kind, int64_t at_ms,
           const sl_failure *why, bool counts_attempt)
{
    bool sent = false;
    if (!r->marks.down && sl_marks_begin(r)) {
        sluice_err err = SLUICE_EINVAL;
        if (kind == SL_MARK_RELEASE)
            err = sl_queue_release(r->q, &j->lease, at_ms);
        else if (kind == SL_MARK_DEAD)
            err = sl_queue_dead(r->q, &j->lease, why, at_ms);
        else if (kind == SL_MARK_RETRY)
            err = sl_queue_retry(r->q, &j->lease, at_ms, why, counts_attempt);
        if (err == SLUICE_OK)
            return true;
        if (err == SLUICE_ENOTFOUND || !sl_marks_away(r, err))
            return false;
        /* Sent, and not answered in time: it may yet be made. */
        sent = err == SLUICE_ETIMEOUT;
    }
    if (!r->marks.down)
        return false; /* the turn could not begin: the run failed */
    if (sl_marker_keep(r->marks.marker, kind, &j->lease, at_ms, why,
                       counts_attempt, sent) != SLUICE_OK) {
        sl_run_fail(r, SLUICE_ENOMEM, "out of memory");
        return false;
    }
    r->marks.n_kept++;
    return true;
}

void
sl_job_release(sl_run *r, sl_job *j)
{
    mark_write(r, j, SL_MARK_RELEASE, sl_run_wall(r), NULL, false);
    sl_job_free(r, j);
}

void
sl_job_dead(sl_run *r, sl_job *j, sl_error_class cls, int status,
            const char *msg)
{
    sl_failure why = {cls, msg, status};
    if (mark_write(r, j, SL_MARK_DEAD, sl_run_wall(r), &why, false)) {
        r->st.dead++;
        sl_run_event(r, j, cls, status, msg);
    }
    sl_job_free(r, j);
}

void
sl_job_retry(sl_run *r, sl_job *j, int64_t due_ms, sl_error_class cls,
             int status, const char *msg, bool counts_attempt)
{
    sl_failure why = {cls, msg, status};
    sl_sched *s = &r->sched;
    if (mark_write(r, j, SL_MARK_RETRY, due_ms, &why, counts_attempt)) {
        r->st.retried++;
        s->any_waiting = true;
        if (!s->next_due_wall || due_ms < s->next_due_wall)
            s->next_due_wall = due_ms;
    }
    sl_job_free(r, j);
}

/* A stored object's record is marked done with others, in one commit on
 * the marker's thread (a commit per few records cost more than the
 * marks): the job waits, holding nothing but itself, until it is handed
 * over. */
void
sl_job_stored(sl_run *r, sl_job *j)
{
    sl_marks *m = &r->marks;
    j->next = NULL;
    if (m->to_mark_tail)
        m->to_mark_tail->next = j;
    else {
        m->to_mark = j;
        m->to_mark_since = sl_mono_ms();
    }
    m->to_mark_tail = j;
    m->n_to_mark++;
}

/* --manifest: the lines of the records about to be marked done, durable
 * first. When they cannot be, the records are given back and the run
 * stops: a record done but missing from the manifest would stay so. */
static bool
manifest_written(sl_run *r)
{
    sl_marks *m = &r->marks;
    if (r->manifest.fd < 0)
        return true;
    sluice_err err = SLUICE_OK;
    char msg[600];
    for (sl_job *j = m->to_mark; j && err == SLUICE_OK; j = j->next)
        err = sl_manifest_add(&r->manifest, j->lease.id, j->lease.key,
                              j->lease.url, j->bytes, j->sha_hex,
                              j->lease.meta);
    if (err == SLUICE_ENOMEM)
        sl_fmt(msg, sizeof msg, "--manifest: out of memory");
    if (err == SLUICE_OK &&
        (err = sl_manifest_sync(&r->manifest, msg, sizeof msg)) == SLUICE_OK)
        return true;
    sl_run_fail(r, err, msg);
    while (m->to_mark) {
        sl_job *j = m->to_mark;
        m->to_mark = j->next;
        sl_job_release(r, j);
    }
    m->to_mark_tail = NULL;
    m->n_to_mark = 0;
    return false;
}

/* Hand the records whose objects are stored to the marker, counted done
 * (sl_marks_news takes back any it finds changed hands). */
void
sl_marks_flush(sl_run *r)
{
    sl_marks *m = &r->marks;
    if (!m->to_mark)
        return;
    int64_t now = sl_run_wall(r);
    if (!manifest_written(r))
        return;
    while (m->to_mark) {
        sl_job *j = m->to_mark;
        m->to_mark = j->next;
        sl_object_info info = {(int64_t)j->bytes, j->sha_hex,
                               j->content_type[0] ? j->content_type : NULL,
                               j->etag[0] ? j->etag : NULL};
        /* Out of memory for the marker: marked here, as it once was. */
        if (sl_marker_add(m->marker, &j->lease, &info, now) == SLUICE_OK ||
            (sl_marks_begin(r) &&
             mark_ok(r, sl_queue_complete(r->q, &j->lease, &info, now)))) {
            r->st.done++;
            r->st.bytes += j->bytes;
        }
        sl_job_free(r, j);
    }
    m->to_mark_tail = NULL;
    m->n_to_mark = 0;
    /* Our turn on the queue ends first: the marker may need one to take
     * the batch before this one (marker.h). */
    sl_marks_commit(r);
    sl_marker_flush(m->marker);
}

/* Enough waiting to be marked, or the oldest has waited long enough, or
 * nothing is being fetched (the run may be ending). */
void
sl_marks_flush_due(sl_run *r, int64_t now_mono)
{
    const sl_marks *m = &r->marks;
    if (m->to_mark &&
        (m->n_to_mark >= SL_MARK_BATCH ||
         now_mono - m->to_mark_since >= MARK_WAIT_MS || r->sched.running == 0 ||
         r->stopping || r->fatal != SLUICE_OK))
        sl_marks_flush(r);
}

/* When the oldest stored record waiting for its mark must be handed
 * over (mono ms), or -1 when none waits. */
int64_t
sl_marks_due_mono(const sl_run *r)
{
    return r->marks.to_mark ? r->marks.to_mark_since + MARK_WAIT_MS : -1;
}

/* What the marker has to say: marks that found their record changed
 * hands (not done by this run after all), and failures. */
void
sl_marks_news(sl_run *r)
{
    sl_marks *m = &r->marks;
    uint64_t lost, lost_bytes;
    char msg[512];
    if (m->n_kept) { /* marks kept while the queue is away */
        sl_marks_commit(r);
        sl_marker_flush(m->marker);
        m->n_kept = 0;
    }
    sluice_err err =
        sl_marker_check(m->marker, &lost, &lost_bytes, msg, sizeof msg);
    r->st.done -= lost;
    r->st.bytes -= lost_bytes;
    r->st.dead -= sl_marker_lost_dead(m->marker);
    if (err != SLUICE_OK) {
        sl_run_fail(r, err, msg);
        return;
    }
    int64_t since;
    bool down = sl_marker_down(m->marker, &since, msg, sizeof msg);
    if (down && !m->down)
        went_down(r, since, msg);
    else if (!down && m->down && own_connection_back(r))
        came_back(r);
    /* The end of the queue, where records in flight count as waiting
     * (Redis: another runner's come back when their leases lapse): the
     * run's own may be all there is, marked by now. Look again as soon
     * as the marker has written them, not at the next idle poll. */
    uint64_t settled;
    if (at_tail(r) && sl_marker_idle(m->marker, &settled) &&
        settled != m->settled_seen) {
        m->settled_seen = settled;
        sl_sched_look_anywhere(r);
    }
}

bool
sl_marks_settling(sl_run *r)
{
    uint64_t settled;
    return at_tail(r) && !sl_marker_idle(r->marks.marker, &settled);
}
