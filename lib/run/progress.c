/*
 * Progress: the run's stats brought up to date and handed to the caller's
 * on_progress, every progress_interval_s and once at the end; the rate is
 * taken over the last few seconds, so the ETA follows the run's pace now.
 */
#include "run.h"

#define RATE_WINDOW_S 5.0

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
    double left = (double)(c->pending + c->retrying + c->in_flight);
    r->st.eta_s = r->st.rate > 0 ? left / r->st.rate : -1;
    if (r->o->on_progress)
        r->o->on_progress(r->o->ctx, &r->st);
}
