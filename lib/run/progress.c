/*
 * Progress: the run's stats brought up to date and handed to the caller's
 * on_progress, every progress_interval_s and once at the end; the rate is
 * taken over the last few seconds, so the ETA follows the run's pace now.
 */
#include "run.h"

#define RATE_WINDOW_S 5.0

/* The origins held below their cap or paced, most records waiting first. */
static void
limited(sl_run *r)
{
    size_t n = 0, all = 0, max = SL_ARRAY_LEN(r->limited);
    unsigned waiting[SL_ARRAY_LEN(r->limited)];
    SL_FOR_EACH_ORIGIN(&r->origins, o)
    {
        sl_slot_limits lim;
        if (!o->jobs)
            continue;
        sl_slots_limits(r->slots, o->slots, &lim);
        if (lim.conc >= lim.cap && lim.rate == 0)
            continue;
        all++;
        /* In order of records waiting, the first `max` kept. */
        size_t at = n;
        while (at > 0 && waiting[at - 1] < o->jobs)
            at--;
        if (at >= max)
            continue;
        for (size_t k = n < max ? n : max - 1; k > at; k--) {
            r->limited[k] = r->limited[k - 1];
            waiting[k] = waiting[k - 1];
        }
        r->limited[at] = (sluice_origin_limit){o->name, lim.cap, lim.conc,
                                               lim.rate, lim.rate_ceiling};
        waiting[at] = o->jobs;
        if (n < max)
            n++;
    }
    r->st.limited = n ? r->limited : NULL;
    r->st.n_limited = n;
    r->st.n_limited_all = all;
}

void
sl_progress(sl_run *r, bool force)
{
    int64_t now = sl_mono_ms();
    if (!force && now < r->progress.next_mono)
        return;
    r->progress.next_mono = now + (int64_t)(r->o->progress_interval_s * 1000);
    double t = (double)(now - r->start_mono) / 1000.0;
    /* The rate over the last few seconds. */
    if (t - r->progress.rate_t0 >= RATE_WINDOW_S || r->st.rate == 0) {
        if (t > r->progress.rate_t0)
            r->st.rate = (double)(r->st.done - r->progress.rate_done0) /
                         (t - r->progress.rate_t0);
        if (t - r->progress.rate_t0 >= RATE_WINDOW_S) {
            r->progress.rate_t0 = t;
            r->progress.rate_done0 = r->st.done;
        }
    }
    sl_counter_take(r->counter, &r->counts);
    const sluice_counts *c = &r->counts;
    r->st.elapsed_s = t;
    r->st.in_flight = r->sched.running;
    r->st.pending = c->pending;
    r->st.retrying = c->retrying;
    r->st.total = c->total;
    r->st.total_done = c->done;
    r->st.total_dead = c->dead;
    r->st.total_in_flight = c->in_flight;
    r->st.slot_writes = r->slots->writes;
    limited(r);
    double left = (double)(c->pending + c->retrying + c->in_flight);
    r->st.eta_s = r->st.rate > 0 ? left / r->st.rate : -1;
    if (r->o->on_progress)
        r->o->on_progress(r->o->ctx, &r->st);
}
