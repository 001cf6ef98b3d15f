/*
 * The pacer (pacer.h): GCRA pacing with a burst of one, and the
 * adaptive limits, AIMD under the ceilings. All times are boot-clock ms.
 */
#include "pacer.h"

#include <math.h>

#define CUT_THROTTLE 0.5 /* the limits after a throttle */
#define CUT_TIMEOUT  0.7 /* after timeouts or stalls */
#define CUT_SLOW     0.8 /* after answers far slower than usual */
#define CUT_RESUME   0.5 /* after a pause, before growing again */
/* A verdict on the requests sent since the last cut, as they end: the
 * limits are cut once VERDICT_BAD of them, and VERDICT_SHARE of those
 * seen, struggled. A verdict is over (and another begins) after
 * VERDICT_OF requests and VERDICT_MS. A stray failure (a flaky origin's
 * 503, a stalled transfer) costs nothing; an origin over its limit fails
 * most of them. */
#define VERDICT_BAD   5
#define VERDICT_SHARE 0.25
#define VERDICT_OF    20
#define VERDICT_MS    1000
/* A throttle cuts the rate no lower than this share of the rate the
 * origin answered at (over a rate limit, that is the limit). */
#define TOOK_SHARE 0.9

#define GROW_CONC_PER_S 1.0  /* requests at once added a second */
#define GROW_RATE_SHARE 0.10 /* the rate grows by this share a second, */
#define GROW_RATE_MIN   1.0  /* and by at least this many requests/s */
#define BINDING_SHARE   0.8  /* a limit grows only while this near it */
#define MIN_RATE        0.2  /* requests a second, at the least */
/* After a throttle, keep the requests at once that this many times the
 * new rate needs. */
#define CONC_HEADROOM 2.0

#define SLOW_FACTOR     3.0   /* an answer this many times the usual, */
#define SLOW_MIN_MS     1000  /* and this much slower, is slow */
#define FLOOR_DRIFT     0.005 /* the usual latency creeps up this much */
#define DURATION_WEIGHT 0.1   /* of a new request's length, in its EWMA */
#define PERIOD_MS       1000  /* starts are counted over periods this long */
#define ADVICE_SHARE    0.95  /* pace at this share of an advertised rate */
#define ADVICE_HOLD_MS  60000 /* an advertised policy holds this long */
/* The pace's slots are this much further apart than the rate asks, so
 * that an origin that counts on a coarse clock (nginx's is a cached
 * millisecond) never sees two closer than 1 / rate. */
#define PACE_MARGIN 0.02

void
sl_pacer_init(sl_pacer *p, const sl_pacer_limits *lim)
{
    *p = (sl_pacer){0};
    p->conc = lim->cap;
}

double
sl_pacer_rate(const sl_pacer *p, const sl_pacer_limits *lim, int64_t now)
{
    double rate = lim->rate > 0 ? lim->rate : 0;
    if (lim->adapt && p->rate > 0 && (rate == 0 || p->rate < rate))
        rate = p->rate;
    if (p->advised > 0 && now < p->advised_until &&
        (rate == 0 || p->advised < rate))
        rate = p->advised;
    return rate;
}

unsigned
sl_pacer_conc(const sl_pacer *p, const sl_pacer_limits *lim)
{
    if (!lim->adapt || p->conc >= lim->cap)
        return lim->cap;
    return p->conc < 1 ? 1 : (unsigned)p->conc;
}

bool
sl_pacer_may_start(const sl_pacer *p, const sl_pacer_limits *lim, double at,
                   double *not_before)
{
    if (at < p->next_start && sl_pacer_rate(p, lim, (int64_t)at) > 0) {
        *not_before = p->next_start;
        return false;
    }
    return true;
}

/* Start another period of counting once this one is long enough. */
static void
roll_period(sl_pacer *p, int64_t now)
{
    if (!p->period_from)
        p->period_from = now;
    if (now - p->period_from < PERIOD_MS)
        return;
    double ms = (double)(now - p->period_from);
    p->period_rate = p->period_starts * 1000.0 / ms;
    p->period_answer_rate = p->period_answers * 1000.0 / ms;
    p->period_from = now;
    p->period_starts = p->period_answers = 0;
}

void
sl_pacer_started(sl_pacer *p, const sl_pacer_limits *lim, double at)
{
    int64_t now = (int64_t)at;
    double rate = sl_pacer_rate(p, lim, now);
    if (rate > 0) {
        /* This start had a slot in the pace (next_start); the next slot
         * is an interval later, and never closer than 1 / rate to this
         * start, however late it was: no window of a second holds more
         * than the rate, and no two starts are closer than its
         * spacing. */
        double next = p->next_start + 1000.0 / rate * (1 + PACE_MARGIN);
        double spaced = at + 1000.0 / rate;
        p->next_start = next > spaced ? next : spaced;
    }
    roll_period(p, now);
    p->period_starts++;
}

void
sl_pacer_sent(sl_pacer *p, const sl_pacer_limits *lim, double at)
{
    double rate = sl_pacer_rate(p, lim, (int64_t)at);
    if (rate > 0 && p->next_start < at + 1000.0 / rate)
        p->next_start = at + 1000.0 / rate;
}

/* A rate from a count over the period going on and the rate of the last
 * whole one: over the last second, or since the first count. */
static double
per_second(const sl_pacer *p, unsigned count, double last, int64_t now)
{
    double ms = (double)(now - p->period_from);
    if (last > 0 && ms < PERIOD_MS) /* a second's worth, sliding */
        return (count + last * (PERIOD_MS - ms) / 1000.0) * 1000.0 / PERIOD_MS;
    return count * 1000.0 / (ms > 1 ? ms : 1);
}

/* The rate requests have been starting at, lately (0: unknown): every
 * runner's where the limits are shared. */
static double
measured(const sl_pacer *p, int64_t now)
{
    if (p->shared_rate > 0)
        return p->shared_rate;
    return per_second(p, p->period_starts, p->period_rate, now);
}

/* And the rate the origin answered them at. */
static double
answered(const sl_pacer *p, int64_t now)
{
    return per_second(p, p->period_answers, p->period_answer_rate, now);
}

static void
start_verdict(sl_pacer *p, int64_t now)
{
    p->seen = p->throttled = p->timed_out = p->slow = 0;
    p->verdict_from = now;
    p->last_cut = now;
    p->last_grow = now;
}

/*
 * Cut the limits by `factor`. A throttle is about pace: it paces an
 * origin not paced yet, from the rate requests went at, but not below
 * what the origin answered lately (over a rate limit, that is the
 * limit); and it keeps only the requests at once the new rate needs
 * (twice over). Timeouts and slow answers are about load: they cut the
 * requests at once, from those in use (a limit above them meant
 * nothing), and a rate already learnt.
 */
static void
cut(sl_pacer *p, const sl_pacer_limits *lim, double factor, bool throttle,
    unsigned in_use, int64_t now)
{
    double base = measured(p, now);
    if (p->rate > 0 && (base == 0 || p->rate < base))
        base = p->rate;
    if ((throttle || p->rate > 0) && base > 0) {
        double rate = base * factor;
        double took = answered(p, now) * TOOK_SHARE;
        if (throttle && took > rate)
            rate = took < base ? took : base;
        p->rate = rate < MIN_RATE ? MIN_RATE : rate;
        if (lim->rate > 0 && p->rate > lim->rate)
            p->rate = lim->rate;
    }
    double conc = p->conc;
    if (!throttle)
        conc = (p->conc < in_use ? p->conc : in_use) * factor;
    else if (p->rate > 0 && p->duration > 0)
        conc = p->rate * p->duration / 1000.0 * CONC_HEADROOM;
    if (conc < p->conc)
        p->conc = conc < 1 ? 1 : conc;
    start_verdict(p, now);
}

static void
grow(sl_pacer *p, const sl_pacer_limits *lim, unsigned in_use, int64_t now)
{
    double dt = (double)(now - p->last_grow) / 1000.0;
    if (dt <= 0)
        return;
    p->last_grow = now;
    /* Only a limit that binds grows: an idle origin learns nothing. */
    if (p->conc < lim->cap &&
        in_use + 1 >= sl_pacer_conc(p, lim) * BINDING_SHARE) {
        p->conc += GROW_CONC_PER_S * dt;
        if (p->conc > lim->cap)
            p->conc = lim->cap;
    }
    if (p->rate > 0 && measured(p, now) >= p->rate * BINDING_SHARE) {
        double add = p->rate * GROW_RATE_SHARE;
        p->rate += (add > GROW_RATE_MIN ? add : GROW_RATE_MIN) * dt;
        if (lim->rate > 0 && p->rate > lim->rate)
            p->rate = lim->rate;
    }
}

void
sl_pacer_ended(sl_pacer *p, const sl_pacer_limits *lim, sl_pacer_signal signal,
               int64_t started, double latency_ms, unsigned in_use, int64_t now)
{
    if (!lim->adapt || signal == SL_PACER_OTHER)
        return;
    bool slow = false;
    if (signal == SL_PACER_OK && latency_ms > 0) {
        if (p->latency_floor == 0 || latency_ms < p->latency_floor)
            p->latency_floor = latency_ms;
        else
            p->latency_floor += FLOOR_DRIFT * (latency_ms - p->latency_floor);
        slow = latency_ms > SLOW_FACTOR * p->latency_floor &&
               latency_ms > p->latency_floor + SLOW_MIN_MS;
    }
    if (signal == SL_PACER_OK) {
        double length = (double)(now - started);
        p->duration = p->duration > 0 ? DURATION_WEIGHT * length +
                                            (1 - DURATION_WEIGHT) * p->duration
                                      : length;
    }
    roll_period(p, now);
    p->period_answers += signal == SL_PACER_OK;
    /* Requests started before the last cut were sent under the old
     * limits, and say nothing of the new. */
    if (started >= p->last_cut) {
        p->seen++;
        p->throttled += signal == SL_PACER_THROTTLE;
        p->timed_out += signal == SL_PACER_TIMEOUT;
        p->slow += slow;
        unsigned bad = p->throttled + p->timed_out + p->slow;
        if (bad >= VERDICT_BAD && bad >= p->seen * VERDICT_SHARE) {
            if (p->throttled)
                cut(p, lim, CUT_THROTTLE, true, in_use + 1, now);
            else
                cut(p, lim, p->timed_out ? CUT_TIMEOUT : CUT_SLOW, false,
                    in_use + 1, now);
            return;
        }
        if (p->seen >= VERDICT_OF && now - p->verdict_from >= VERDICT_MS) {
            p->seen = p->throttled = p->timed_out = p->slow = 0;
            p->verdict_from = now;
        }
    }
    if (signal == SL_PACER_OK && !slow)
        grow(p, lim, in_use, now);
}

bool
sl_pacer_advise(sl_pacer *p, const sl_pacer_advice *a, unsigned in_use,
                int64_t now, int64_t *pause_until)
{
    if (a->quota > 0 && a->window_s > 0) {
        p->advised = ADVICE_SHARE * a->quota / a->window_s;
        p->advised_until = now + ADVICE_HOLD_MS;
    }
    if (a->remaining < 0 || a->reset_s < 0)
        return false;
    /* The requests in flight take from what is left, too. */
    double left = a->remaining - in_use;
    int64_t reset = now + (int64_t)ceil(a->reset_s * 1000.0);
    if (left <= 0) {
        *pause_until = reset;
        return true;
    }
    if (a->window_s <= 0) {
        /* No policy: spread what is left over what is left of the
         * window. */
        double secs = a->reset_s > 0.5 ? a->reset_s : 0.5;
        p->advised = ADVICE_SHARE * left / secs;
        p->advised_until = reset;
    }
    return false;
}

void
sl_pacer_resume(sl_pacer *p, const sl_pacer_limits *lim, int64_t now)
{
    if (!lim->adapt)
        return;
    /* Half the requests at once, and half the pace they went at before
     * the pause, one after the other from now. */
    double base = p->rate > 0          ? p->rate
                  : p->period_rate > 0 ? p->period_rate
                  : p->duration > 0    ? p->conc * 1000.0 / p->duration
                                       : 0;
    p->conc = p->conc * CUT_RESUME < 1 ? 1 : p->conc * CUT_RESUME;
    if (base > 0) {
        p->rate = base * CUT_RESUME < MIN_RATE ? MIN_RATE : base * CUT_RESUME;
        if (lim->rate > 0 && p->rate > lim->rate)
            p->rate = lim->rate;
    }
    if (p->next_start < now)
        p->next_start = now;
    p->period_from = now;
    p->period_starts = p->period_answers = 0;
    start_verdict(p, now);
}

void
sl_pacer_adopt(sl_pacer *p, const sl_pacer_limits *lim, double conc,
               double rate, double total_rate, bool newer, int64_t now)
{
    p->conc = conc > 0 && conc < lim->cap ? conc : lim->cap;
    p->rate = rate > 0 ? rate : 0;
    p->shared_rate = total_rate > 0 ? total_rate : 0;
    if (newer)
        start_verdict(p, now);
}
