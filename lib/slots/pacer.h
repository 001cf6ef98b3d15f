/*
 * The pacer: what a slot service keeps per origin beside its slots, for
 * origins that limit how fast, not only how many. Pacing (GCRA with a
 * burst of one: never more than the rate in any window), the adaptive
 * limits under the ceilings (multiplicative decrease when the origin
 * throttles, times out or slows down; additive increase as it answers),
 * and the rate an origin advertises in its RateLimit headers. Pure
 * arithmetic on times the caller gives: the C slot services embed it;
 * a service elsewhere (Redis) does the same in its own scripts.
 * docs/run.md, "Rate limits", has the control loop and its constants.
 */
#ifndef SL_PACER_H
#define SL_PACER_H

#include <stdbool.h>
#include <stdint.h>

/* The ceilings: never exceeded, whatever the pacer learns. */
typedef struct {
    unsigned cap; /* requests at once */
    double rate;  /* requests a second; 0: none given */
    bool adapt;   /* false: pace at `rate`, nothing learnt */
} sl_pacer_limits;

/* What ended a request, for the adaptive limits. */
typedef enum {
    SL_PACER_OK,       /* an answer the origin was glad to give */
    SL_PACER_THROTTLE, /* 429 or 503: too fast */
    SL_PACER_TIMEOUT,  /* no answer in time, or a stall */
    SL_PACER_OTHER     /* says nothing about the origin's load */
} sl_pacer_signal;

/* What the origin advertised with a response (RateLimit, RateLimit-Policy,
 * X-RateLimit-*); a field < 0 is absent. */
typedef struct {
    double quota;     /* requests a window (policy q, or Limit) */
    double window_s;  /* the window (policy w); < 0: unknown */
    double remaining; /* requests left in this window */
    double reset_s;   /* seconds until this window ends */
} sl_pacer_advice;

typedef struct {
    double next_start; /* no request before (boot ms): GCRA's TAT */
    double conc;       /* the learnt limit on requests at once */
    double rate;       /* the learnt rate; 0: not paced yet */
    int64_t last_cut;  /* when the limits were last cut */
    int64_t last_grow; /* when they last grew */
    /* The rates requests start and are answered at: counted over a
     * period, and the last whole period's (0: none yet). */
    int64_t period_from;
    unsigned period_starts, period_answers;
    double period_rate, period_answer_rate;
    double latency_floor; /* the lowest recent latency (ms); 0: none */
    double duration;      /* requests' usual length (ms), start to end */
    /* The verdict: requests started since the last cut, as they end. */
    int64_t verdict_from;
    unsigned seen, throttled, timed_out, slow;
    /* Every runner's starts a second, where a slot service shares the
     * limits (Redis) and counts them; 0: this pacer counts its own. */
    double shared_rate;
    double advised;        /* the rate the origin advertises; 0: none */
    int64_t advised_until; /* and until when it holds (boot ms) */
} sl_pacer;

/* A fresh pacer: the full cap, unpaced unless a rate is given. */
void sl_pacer_init(sl_pacer *p, const sl_pacer_limits *lim);

/* The rate to pace at now (0: none), and the requests allowed at once. */
double sl_pacer_rate(const sl_pacer *p, const sl_pacer_limits *lim,
                     int64_t now);
unsigned sl_pacer_conc(const sl_pacer *p, const sl_pacer_limits *lim);

/* May a request start at `at` (boot ms, to the microsecond)? If not,
 * *not_before says when. */
bool sl_pacer_may_start(const sl_pacer *p, const sl_pacer_limits *lim,
                        double at, double *not_before);
/* A request started at `at`: the next may start one interval later. */
void sl_pacer_started(sl_pacer *p, const sl_pacer_limits *lim, double at);
/* The request started last left only at `at` (its slot was taken
 * earlier): the next leaves at least one interval after it, so that a
 * request held up on its way out, then one that is not, are never closer
 * than the pace to each other. */
void sl_pacer_sent(sl_pacer *p, const sl_pacer_limits *lim, double at);

/*
 * A request that started at `started` ended now with `signal` after
 * `latency_ms` (to its first byte), `in_use` requests being in flight
 * at the origin. Cuts the limits when enough of the requests sent since
 * the last cut struggled (throttled, timed out, slow), so that a stray
 * failure costs nothing and one round of trouble cuts once; grows them
 * as requests succeed.
 */
void sl_pacer_ended(sl_pacer *p, const sl_pacer_limits *lim,
                    sl_pacer_signal signal, int64_t started, double latency_ms,
                    unsigned in_use, int64_t now);

/* Take in what the origin advertises; true when it asks for a pause
 * until *pause_until (no requests left in this window). */
bool sl_pacer_advise(sl_pacer *p, const sl_pacer_advice *a, unsigned in_use,
                     int64_t now, int64_t *pause_until);

/*
 * Limits kept where every runner reads them (the Redis slot service)
 * replace this pacer's: `conc` requests at once (<= 0: none learnt, the
 * cap), `rate` (0: none learnt), and every runner's starts a second
 * (0: unknown), which a throttle's cut then starts from. `newer`: they
 * were cut elsewhere since this pacer last saw them, so its verdict
 * starts again, as after a cut of its own (requests sent under the old
 * limits say nothing of the new).
 */
void sl_pacer_adopt(sl_pacer *p, const sl_pacer_limits *lim, double conc,
                    double rate, double total_rate, bool newer, int64_t now);

/* A pause of the origin ended (Retry-After, an outage): restart slowly. */
void sl_pacer_resume(sl_pacer *p, const sl_pacer_limits *lim, int64_t now);

#endif /* SL_PACER_H */
