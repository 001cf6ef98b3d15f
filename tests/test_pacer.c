/*
 * The pacer (lib/slots/pacer.c): pacing never exceeds the rate in any
 * window, the learnt limits cut once a round when the origin throttles or
 * times out and grow back while they bind, never above the ceilings; a
 * pause ends slowly; what the origin advertises paces it before it has to
 * throttle.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "slots/pacer.h"
#include "util.h"
#include "test.h"

#define T0 1000000 /* boot ms: any time will do */

/* Start requests as soon as the pacer lets them, from t0 for `ms`:
 * returns how many started; their times in `at`. */
static unsigned
run_paced(sl_pacer *p, const sl_pacer_limits *lim, double t0, double ms,
          double *at, unsigned room)
{
    unsigned n = 0;
    double now = t0, not_before;
    while (now < t0 + ms && n < room) {
        if (sl_pacer_may_start(p, lim, now, &not_before)) {
            sl_pacer_started(p, lim, now);
            at[n++] = now;
        } else {
            /* The loop sleeps to the microsecond, and oversleeps a bit. */
            now = SL_MAX(now + 0.001, not_before + 0.05);
        }
    }
    return n;
}

/* The most starts in any window of `window_ms` (half-open). */
static unsigned
most_in_window(const double *at, unsigned n, double window_ms)
{
    unsigned most = 0;
    for (unsigned i = 0, j = 0; i < n; i++) {
        while (at[i] - at[j] >= window_ms)
            j++;
        if (i - j + 1 > most)
            most = i - j + 1;
    }
    return most;
}

TEST(a_rate_is_never_exceeded_in_any_window)
{
    static const double rates[] = {100, 7, 333, 0.5};
    for (size_t k = 0; k < SL_ARRAY_LEN(rates); k++) {
        sl_pacer_limits lim = {20, rates[k], true};
        sl_pacer p;
        sl_pacer_init(&p, &lim);
        static double at[20000];
        unsigned n = run_paced(&p, &lim, T0, 10000, at, 20000);
        /* A burst of one: any second holds at most the rate. */
        ASSERT_LE(most_in_window(at, n, 1000), (unsigned)ceil(rates[k]));
        /* And it is kept up to: within 5% over ten seconds. */
        ASSERT_GE(n, (unsigned)(rates[k] * 10 * 0.95));
    }
}

/* Requests leave a varying while after their start (a connection made,
 * a busy loop): the smallest gap between two leavings, told to the
 * pacer with sl_pacer_sent or not. */
static double
smallest_gap_sent(bool tell)
{
    sl_pacer_limits lim = {20, 100, false};
    sl_pacer p;
    sl_pacer_init(&p, &lim);
    double now = T0, not_before, last_sent = 0, gap = 1e9;
    unsigned seed = 7;
    for (unsigned n = 0; n < 500;) {
        if (!sl_pacer_may_start(&p, &lim, now, &not_before)) {
            now = SL_MAX(now + 0.001, not_before + 0.05);
            continue;
        }
        sl_pacer_started(&p, &lim, now);
        /* Every other request waits up to 3 ms on its way out. */
        seed = seed * 1103515245u + 12345u;
        double sent = now + (n % 2 ? 0 : (seed >> 16) % 3000 / 1000.0);
        if (tell)
            sl_pacer_sent(&p, &lim, sent);
        if (n++ > 0 && sent - last_sent < gap)
            gap = sent - last_sent;
        last_sent = sent;
        now = SL_MAX(now, sent);
    }
    return gap;
}

TEST(the_pace_holds_between_requests_as_sent)
{
    /* Told when each left, no two leave closer than 10 ms (100/s). */
    ASSERT_GE(smallest_gap_sent(true), 10.0 - 1e-6);
    /* Untold, a late one and the next on time are closer: what an
     * origin's limiter counts as too fast. */
    ASSERT_LT(smallest_gap_sent(false), 9.0);
}

TEST(without_a_rate_nothing_is_paced_and_the_cap_is_the_limit)
{
    sl_pacer_limits lim = {20, 0, true};
    sl_pacer p;
    sl_pacer_init(&p, &lim);
    double not_before;
    for (int i = 0; i < 1000; i++) {
        ASSERT(sl_pacer_may_start(&p, &lim, T0, &not_before));
        sl_pacer_started(&p, &lim, T0);
    }
    ASSERT_EQ(sl_pacer_conc(&p, &lim), 20);
    ASSERT_EQ(sl_pacer_rate(&p, &lim, T0) == 0, 1);
}

/* `n` requests that started at `started` end now with `signal`,
 * `in_use` others in flight. */
static void
end_n(sl_pacer *p, const sl_pacer_limits *lim, int n, sl_pacer_signal signal,
      int64_t started, double latency_ms, unsigned in_use, int64_t now)
{
    for (int i = 0; i < n; i++)
        sl_pacer_ended(p, lim, signal, started, latency_ms, in_use, now);
}

TEST(a_stray_failure_costs_nothing)
{
    sl_pacer_limits lim = {20, 0, true};
    sl_pacer p;
    sl_pacer_init(&p, &lim);
    for (int i = 0; i < 20; i++)
        sl_pacer_started(&p, &lim, T0 + i);
    /* One throttle, one timeout and two slow answers in twenty. */
    end_n(&p, &lim, 10, SL_PACER_OK, T0, 30, 19, T0 + 40);
    end_n(&p, &lim, 1, SL_PACER_THROTTLE, T0, 0, 19, T0 + 41);
    end_n(&p, &lim, 1, SL_PACER_TIMEOUT, T0, 0, 19, T0 + 42);
    end_n(&p, &lim, 2, SL_PACER_OK, T0, 5000, 19, T0 + 5000);
    end_n(&p, &lim, 6, SL_PACER_OK, T0, 30, 19, T0 + 5001);
    ASSERT_EQ(sl_pacer_conc(&p, &lim), 20);
    ASSERT_EQ(sl_pacer_rate(&p, &lim, T0 + 5001) == 0, 1);
}

TEST(throttles_cut_the_rate_once_a_round)
{
    sl_pacer_limits lim = {20, 0, true};
    sl_pacer p;
    sl_pacer_init(&p, &lim);
    /* 20 requests a millisecond apart, all in flight. */
    for (int i = 0; i < 20; i++)
        sl_pacer_started(&p, &lim, T0 + i);
    int64_t now = T0 + 30;
    end_n(&p, &lim, 4, SL_PACER_THROTTLE, T0, 5, 19, now);
    ASSERT_EQ(sl_pacer_rate(&p, &lim, now) == 0, 1); /* not yet */
    end_n(&p, &lim, 1, SL_PACER_THROTTLE, T0, 5, 15, now);
    double rate = sl_pacer_rate(&p, &lim, now);
    /* Paced from now on, at half what it sent: 20 in 30 ms. */
    ASSERT_GT(rate, 300);
    ASSERT_LT(rate, 400);
    /* The other 15 were sent under the old limits: no more cuts. */
    end_n(&p, &lim, 15, SL_PACER_THROTTLE, T0 + 10, 5, 0, now + 1);
    ASSERT_EQ(sl_pacer_rate(&p, &lim, now + 1) == rate, 1);
    /* Requests sent after the cut and throttled: a second cut. */
    for (int i = 0; i < 5; i++)
        sl_pacer_started(&p, &lim, now + 100 + i);
    end_n(&p, &lim, 5, SL_PACER_THROTTLE, now + 100, 5, 0, now + 110);
    ASSERT_LT(sl_pacer_rate(&p, &lim, now + 110), rate);
    /* A throttle is about pace: no answer yet told how long requests
     * take, so the requests at once are left alone. */
    ASSERT_EQ(sl_pacer_conc(&p, &lim), 20);
}

TEST(a_throttle_keeps_the_requests_at_once_the_new_rate_needs)
{
    sl_pacer_limits lim = {20, 0, true};
    sl_pacer p;
    sl_pacer_init(&p, &lim);
    /* 100 a second, each taking 40 ms (4 in flight would do), then the
     * origin throttles: half the rate needs 2, and twice that is kept. */
    int64_t now = T0;
    for (int i = 0; i < 300; i++, now += 10) {
        sl_pacer_started(&p, &lim, now);
        sl_pacer_ended(&p, &lim, SL_PACER_OK, now - 40, 20, 4, now);
    }
    for (int i = 0; i < 100 && sl_pacer_rate(&p, &lim, now) == 0;
         i++, now += 10) {
        sl_pacer_started(&p, &lim, now);
        sl_pacer_ended(&p, &lim, SL_PACER_THROTTLE, now, 0, 4, now);
    }
    ASSERT_LE(sl_pacer_rate(&p, &lim, now), 100);
    ASSERT_GE(sl_pacer_rate(&p, &lim, now), 50);
    ASSERT_LE(sl_pacer_conc(&p, &lim), 9);
    ASSERT_GE(sl_pacer_conc(&p, &lim), 4);
}

TEST(the_limits_grow_back_while_they_bind_and_never_pass_the_ceilings)
{
    sl_pacer_limits lim = {8, 50, true};
    sl_pacer p;
    sl_pacer_init(&p, &lim);
    int64_t now = T0;
    for (int i = 0; i < 50; i++, now += 20)
        sl_pacer_started(&p, &lim, now);
    end_n(&p, &lim, 5, SL_PACER_TIMEOUT, now - 20, 0, 7, now);
    ASSERT_EQ(sl_pacer_conc(&p, &lim), 5); /* 8 * 0.7 */
    ASSERT_EQ(sl_pacer_rate(&p, &lim, now) == 50, 1);
    for (int i = 0; i < 5; i++, now += 20)
        sl_pacer_started(&p, &lim, now);
    end_n(&p, &lim, 5, SL_PACER_THROTTLE, now - 20, 5, 4, now);
    double cut = sl_pacer_rate(&p, &lim, now);
    ASSERT_LE(cut, 25.5);
    /* A minute of answers, requests as fast as the pacer allows, as many
     * at once as it allows: both grow back to the ceilings, no further. */
    static double at[8000];
    unsigned n = 0;
    for (int64_t t = now; t < now + 60000; t++) {
        double nb;
        if (n < 8000 && sl_pacer_may_start(&p, &lim, t, &nb)) {
            sl_pacer_started(&p, &lim, t);
            at[n++] = (double)t;
            unsigned conc = sl_pacer_conc(&p, &lim);
            sl_pacer_ended(&p, &lim, SL_PACER_OK, t, 10, conc - 1, t);
        }
    }
    ASSERT_EQ(sl_pacer_conc(&p, &lim), 8);
    ASSERT_EQ(sl_pacer_rate(&p, &lim, now + 60000) == 50, 1);
    ASSERT_LE(most_in_window(at, n, 1000), 50);
}

TEST(an_idle_origin_does_not_grow_its_limits)
{
    sl_pacer_limits lim = {20, 0, true};
    sl_pacer p;
    sl_pacer_init(&p, &lim);
    for (int i = 0; i < 20; i++)
        sl_pacer_started(&p, &lim, T0 + i);
    end_n(&p, &lim, 5, SL_PACER_TIMEOUT, T0, 0, 15, T0 + 100);
    unsigned conc = sl_pacer_conc(&p, &lim);
    ASSERT_EQ(conc, 11); /* timeouts cut what was in use by 0.7 */
    ASSERT_EQ(sl_pacer_rate(&p, &lim, T0 + 100) == 0, 1);
    /* One answer a minute later, with nothing else in flight. */
    sl_pacer_ended(&p, &lim, SL_PACER_OK, T0 + 50, 10, 0, T0 + 60000);
    ASSERT_EQ(sl_pacer_conc(&p, &lim), conc);
}

TEST(slow_answers_cut_concurrency)
{
    sl_pacer_limits lim = {10, 0, true};
    sl_pacer p;
    sl_pacer_init(&p, &lim);
    for (int i = 0; i < 10; i++) {
        sl_pacer_started(&p, &lim, T0 + i);
        sl_pacer_ended(&p, &lim, SL_PACER_OK, T0 + i, 30, 9, T0 + i + 30);
    }
    ASSERT_EQ(sl_pacer_conc(&p, &lim), 10);
    for (int i = 0; i < 5; i++)
        sl_pacer_started(&p, &lim, T0 + 100 + i);
    end_n(&p, &lim, 4, SL_PACER_OK, T0 + 100, 5000, 9, T0 + 5100);
    ASSERT_EQ(sl_pacer_conc(&p, &lim), 10);
    end_n(&p, &lim, 1, SL_PACER_OK, T0 + 100, 5000, 9, T0 + 5100);
    ASSERT_EQ(sl_pacer_conc(&p, &lim), 8);
}

TEST(without_adapting_only_the_rate_given_paces)
{
    sl_pacer_limits lim = {20, 10, false};
    sl_pacer p;
    sl_pacer_init(&p, &lim);
    sl_pacer_started(&p, &lim, T0);
    sl_pacer_ended(&p, &lim, SL_PACER_THROTTLE, T0, 5, 0, T0 + 5);
    ASSERT_EQ(sl_pacer_conc(&p, &lim), 20);
    ASSERT_EQ(sl_pacer_rate(&p, &lim, T0 + 5) == 10, 1);
}

TEST(a_pause_ends_slowly)
{
    sl_pacer_limits lim = {20, 0, true};
    sl_pacer p;
    sl_pacer_init(&p, &lim);
    for (int i = 0; i < 20; i++)
        sl_pacer_started(&p, &lim, T0 + 10 * i);
    sl_pacer_ended(&p, &lim, SL_PACER_OK, T0, 50, 19, T0 + 50);
    unsigned conc = sl_pacer_conc(&p, &lim);
    /* Unpaced before the pause: paced after it, at half what 20 at once
     * of 50 ms go at, half as many at once. */
    sl_pacer_resume(&p, &lim, T0 + 5000);
    ASSERT_LE(sl_pacer_conc(&p, &lim), conc / 2 + 1);
    double rate = sl_pacer_rate(&p, &lim, T0 + 5000);
    ASSERT_GT(rate, 0);
    ASSERT_LE(rate, 200);
    double nb;
    ASSERT(sl_pacer_may_start(&p, &lim, T0 + 5000, &nb));
    sl_pacer_started(&p, &lim, T0 + 5000);
    ASSERT(!sl_pacer_may_start(&p, &lim, T0 + 5001, &nb));
}

TEST(an_advertised_policy_paces_below_it)
{
    sl_pacer_limits lim = {20, 0, true};
    sl_pacer p;
    sl_pacer_init(&p, &lim);
    sl_pacer_advice a = {100, 1, 60, 0.5};
    int64_t until;
    ASSERT(!sl_pacer_advise(&p, &a, 10, T0, &until));
    double rate = sl_pacer_rate(&p, &lim, T0);
    ASSERT_GT(rate, 90);
    ASSERT_LT(rate, 100);
    /* It holds a while, then lapses unless said again. */
    ASSERT_EQ(sl_pacer_rate(&p, &lim, T0 + 59000) == rate, 1);
    ASSERT_EQ(sl_pacer_rate(&p, &lim, T0 + 61000) == 0, 1);
}

TEST(nothing_left_in_the_window_asks_for_a_pause_to_its_end)
{
    sl_pacer_limits lim = {20, 0, true};
    sl_pacer p;
    sl_pacer_init(&p, &lim);
    /* 3 left, 3 in flight: they will take them. */
    sl_pacer_advice a = {-1, -1, 3, 2};
    int64_t until = 0;
    ASSERT(sl_pacer_advise(&p, &a, 3, T0, &until));
    ASSERT_EQ(until, T0 + 2000);
    /* 30 left for 2 s, no policy: spread over what is left. */
    a = (sl_pacer_advice){-1, -1, 30, 2};
    ASSERT(!sl_pacer_advise(&p, &a, 0, T0, &until));
    double rate = sl_pacer_rate(&p, &lim, T0);
    ASSERT_GT(rate, 10);
    ASSERT_LE(rate, 15);
}

/* ------------------------------------------------------------------
 * The control loop against simulated origins, a millisecond at a time:
 * a request the origin admits answers after `latency_ms`; one over its
 * rate (nginx's limit_req without a burst: one request every
 * 1000 / rate ms) is throttled at once; a share, drawn at random, fails
 * whatever the load.
 */
typedef struct {
    unsigned cap;
    double rate_limit;  /* the origin's; 0: none */
    int64_t latency_ms; /* of an admitted request */
    double p_throttle;  /* throttled whatever the load */
    double p_timeout;   /* stall for timeout_ms whatever the load */
    int64_t timeout_ms;
    unsigned images;
} sim_origin;

typedef struct {
    int64_t ms;         /* to fetch them all */
    unsigned throttled; /* requests throttled */
    unsigned most_at_once;
    unsigned most_in_a_second; /* starts admitted in any second */
} sim_result;

#define SIM_MAX 4096

static sim_result
simulate(const sim_origin *o, const sl_pacer_limits *lim)
{
    static struct {
        int64_t started, ends;
        sl_pacer_signal signal;
    } flight[SIM_MAX];
    static double admitted[200000];
    unsigned n_flight = 0, n_admitted = 0, done = 0;
    uint64_t seed = 42;
    sim_result r = {0, 0, 0, 0};
    sl_pacer p;
    sl_pacer_init(&p, lim);
    double last_admit = -1e9;
    int64_t now = T0;
    for (; done < o->images && now < T0 + 600000; now++) {
        for (unsigned i = 0; i < n_flight;) {
            if (flight[i].ends > now) {
                i++;
                continue;
            }
            sl_pacer_signal sig = flight[i].signal;
            int64_t started = flight[i].started;
            flight[i] = flight[--n_flight];
            if (sig == SL_PACER_OK)
                done++;
            sl_pacer_ended(&p, lim, sig, started,
                           sig == SL_PACER_OK ? (double)o->latency_ms : 0,
                           n_flight, now);
        }
        double not_before;
        while (done + n_flight < o->images && n_flight < SIM_MAX &&
               n_flight < sl_pacer_conc(&p, lim) &&
               sl_pacer_may_start(&p, lim, now, &not_before)) {
            sl_pacer_started(&p, lim, now);
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            double draw = (double)(seed >> 11) / 9007199254740992.0;
            sl_pacer_signal sig = SL_PACER_OK;
            int64_t ends = now + o->latency_ms;
            if (draw < o->p_throttle) {
                sig = SL_PACER_THROTTLE;
                ends = now + 1;
            } else if (draw < o->p_throttle + o->p_timeout) {
                sig = SL_PACER_TIMEOUT;
                ends = now + o->timeout_ms;
            } else if (o->rate_limit > 0 &&
                       (double)now - last_admit < 1000.0 / o->rate_limit) {
                sig = SL_PACER_THROTTLE;
                ends = now + 1;
            } else {
                last_admit = (double)now;
                if (n_admitted < SL_ARRAY_LEN(admitted))
                    admitted[n_admitted++] = (double)now;
            }
            r.throttled += sig == SL_PACER_THROTTLE;
            flight[n_flight].started = now;
            flight[n_flight].ends = ends;
            flight[n_flight++].signal = sig;
            if (n_flight > r.most_at_once)
                r.most_at_once = n_flight;
        }
    }
    r.ms = now - T0;
    r.most_in_a_second = most_in_window(admitted, n_admitted, 1000);
    return r;
}

TEST(over_a_rate_limit_it_converges_without_being_told_the_rate)
{
    /* The setup: 100 requests a second, 30 ms answers, cap 20,
     * 1,000 images; the ideal is 10 s. */
    sim_origin o = {20, 100, 30, 0, 0, 0, 1000};
    sl_pacer_limits lim = {20, 0, true};
    sim_result r = simulate(&o, &lim);
    printf("# adaptive: %.1f s, %u throttled\n", (double)r.ms / 1000,
           r.throttled);
    ASSERT_LE(r.ms, 20000);      /* at least half the ideal */
    ASSERT_LE(r.throttled, 250); /* a quarter of the images at most */
    ASSERT_LE(r.most_at_once, 20);
    /* Told the rate, it is never throttled. */
    lim.rate = 100;
    r = simulate(&o, &lim);
    printf("# --rate 100/s: %.1f s, %u throttled\n", (double)r.ms / 1000,
           r.throttled);
    ASSERT_EQ(r.throttled, 0);
    ASSERT_LE(r.ms, 11200); /* 0.9 of the ideal */
}

TEST(stray_failures_do_not_slow_a_healthy_origin)
{
    /* 2% of transfers stall for 2 s, 2% are throttled whatever the load:
     * a flaky origin, not an overloaded one. Adapting must cost little
     * against not adapting. */
    sim_origin o = {20, 0, 10, 0.02, 0.02, 2000, 20000};
    sl_pacer_limits fixed = {20, 0, false}, adapt = {20, 0, true};
    sim_result a = simulate(&o, &fixed), b = simulate(&o, &adapt);
    printf("# fixed %.1f s, adaptive %.1f s\n", (double)a.ms / 1000,
           (double)b.ms / 1000);
    ASSERT_LE(b.ms, a.ms * 5 / 4);
}
