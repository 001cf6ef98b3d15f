/*
 * The slot service: the cap (DESIGN.md, invariant 1) as slots. An origin
 * (scheme, host, port) has `cap` slots, all origins together at most
 * `max_total`; a request is sent only while it holds one. A backend is a
 * const ops table behind the sl_slots_* wrappers, which are the one place
 * for asserts and injected faults. slots_memory.c keeps slots in this
 * process; a backend may keep them where the queue is (DESIGN.md, "Slots").
 */
#ifndef SL_SLOTS_H
#define SL_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../backend.h"
#include "../util.h"
#include "pacer.h"

typedef struct sl_slots sl_slots;
typedef struct sl_slots_ops sl_slots_ops;
/* An origin as a backend knows it; opaque above the backend. */
typedef struct sl_slot_origin sl_slot_origin;

typedef struct {
    unsigned cap;       /* per origin, at least 1 */
    unsigned max_total; /* over all origins; 0: none */
    /* How long a slot may be held: a request's --timeout. A slot's
     * deadline is its taking plus this; its holder must have ended the
     * request by then. */
    int64_t hold_ms;
    double rate; /* per origin, requests a second; 0: none */
    bool adapt;  /* learn lower limits when an origin struggles */
    /* A slot released whole may serve the origin's next request in the
     * same turn of the run's loop, as long as its deadline leaves that
     * request all of hold_ms (a backend whose take is a round trip:
     * Redis); sl_slots_settle gives back what no request took. */
    bool reuse;
} sl_slots_opts;

/* How a request ended, for the pacer (pacer.h). */
typedef struct {
    sl_pacer_signal signal;
    int64_t started;   /* its slot's taken_boot */
    double latency_ms; /* to its first byte; 0: unknown */
    sl_pacer_advice advice; /* what the origin advertised; fields < 0 */
} sl_slot_feedback;

/* An origin's limits now. */
typedef struct {
    unsigned cap;        /* the cap */
    unsigned conc;       /* requests at once allowed now (<= cap) */
    double rate_ceiling; /* the rate given (--rate); 0: none */
    double rate;         /* the rate paced at now; 0: not paced */
} sl_slot_limits;

/*
 * A slot held. `token` identifies this taking: tokens only increase, and
 * a release carrying a token that is no longer the slot's changes
 * nothing. Times are on the boot clock (sl_boot_ms): it counts a suspend
 * and ignores steps of the wall clock, as the origin's time does.
 */
typedef struct {
    sl_slot_origin *origin;
    unsigned index; /* which of the origin's slots */
    uint64_t token;
    int64_t taken_boot;
    int64_t deadline_boot;
} sl_slot;

/* What holds a slot (sl_slot_info). */
typedef enum {
    SL_SLOT_REQUEST,  /* a request of this process, running */
    SL_SLOT_ABANDONED, /* a request given up on without a complete
                          response: held to its deadline */
    SL_SLOT_PREVIOUS  /* held for a run before this one (it crashed, or
                         stopped with requests still at the origin) */
} sl_slot_holder;

/* A held slot, as sl_slots_list hands it out. */
typedef struct {
    const char *origin; /* scheme://host:port */
    sl_slot_holder holder;
    uint64_t token; /* 0 for SL_SLOT_PREVIOUS */
    int64_t taken_boot;
    int64_t deadline_boot; /* free at the latest then */
} sl_slot_info;

/* Return non-zero to stop the listing. */
typedef int sl_slot_fn(void *ctx, const sl_slot_info *slot);

struct sl_slots {
    const sl_slots_ops *ops;
    sl_slots_opts opts;
    sluice_queue *q;  /* where a durable service keeps its slots */
    void *state;     /* the backend's, ops->state_size bytes, zeroed */
    unsigned peak;   /* the most slots one origin held at once */
    unsigned n_held; /* slots held through this handle now */
    uint64_t writes; /* transactions written to the queue (durable) */
    /* A service on a server that may be away (Redis): how long an outage
     * is waited out before a take fails (the run's --outage-max, set
     * after opening); 0: the service's own bound. */
    int64_t outage_max_ms;
    char errmsg[256];
};

struct sl_slots_ops {
    sl_backend backend; /* family SL_FAMILY_SLOTS */
    size_t state_size;

    sluice_err (*open)(sl_slots *s);
    void (*close)(sl_slots *s);
    /* The backend's handle on the origin `name`, made on first use; NULL
     * when out of memory. The caller gives it back with origin_close. */
    sl_slot_origin *(*origin_open)(sl_slots *s, const char *name);
    void (*origin_close)(sl_slots *s, sl_slot_origin *o);
    /* Take a free slot at `at` (boot ms, to the microsecond: the pace
     * is kept between requests' real starts), or SLUICE_EAGAIN with
     * *free_at the time a slot could be free (a pause's end, a slot's
     * deadline, the pace), 0 when none is free until one is released. */
    sluice_err (*take)(sl_slots *s, sl_slot_origin *o, double at,
                       sl_slot *out, double *free_at);
    /* False when the slot's token is stale: nothing was released. */
    bool (*release)(sl_slots *s, const sl_slot *slot, bool complete);
    void (*pause)(sl_slots *s, sl_slot_origin *o, int64_t until);
    int64_t (*paused_until)(sl_slots *s, sl_slot_origin *o);
    unsigned (*held)(sl_slots *s, sl_slot_origin *o);
    sluice_err (*list)(sl_slots *s, sl_slot_fn *fn, void *ctx);
    /* Optional: make durable what must be before the next requests (a
     * pause, reservations running out); called with no turn on the
     * queue held. */
    sluice_err (*sync)(sl_slots *s, int64_t now);
    /* Optional: slots kept for reuse (opts.reuse) that no take used
     * this turn are given back. */
    void (*settle)(sl_slots *s);
    /* Optional: up to n takes of `o` may follow this turn. */
    void (*want)(sl_slots *s, sl_slot_origin *o, unsigned n);
    /* Optional: the request of a slot of `o` taken last left at `at`. */
    void (*sent)(sl_slots *s, sl_slot_origin *o, double at);
    /* How a request to `o` ended (after its release): the pacer learns. */
    void (*feedback)(sl_slots *s, sl_slot_origin *o,
                     const sl_slot_feedback *fb, int64_t now);
    void (*limits)(sl_slots *s, sl_slot_origin *o, int64_t now,
                   sl_slot_limits *out);
};

/* The slot service of backend `name` (the queue says which goes with
 * it), keeping its slots in `q` where it is durable. On failure *out is
 * NULL and errbuf says why. */
sluice_err sl_slots_open(const char *name, const sl_slots_opts *opts,
                         sluice_queue *q, sl_slots **out, char *errbuf,
                         size_t errbuf_size);
void sl_slots_close(sl_slots *s);

sl_slot_origin *sl_slots_origin_open(sl_slots *s, const char *name);
/* Give back an origin holding no slots. NULL is fine. */
void sl_slots_origin_close(sl_slots *s, sl_slot_origin *o);

/*
 * Take a slot of origin `o` before sending a request to it, at `at` on the
 * boot clock (sl_boot_msf: to the microsecond). SLUICE_OK with *out filled; SLUICE_EAGAIN when none is
 * free, with *free_at the time one may be (a pause's end, a held slot's
 * deadline), or 0: after a release. Another error: the slot service
 * failed (its message in s->errmsg).
 */
sluice_err sl_slots_take(sl_slots *s, sl_slot_origin *o, double at,
                         sl_slot *out, double *free_at);
/*
 * The request of the slot of `o` taken last left at `at` (boot clock, to
 * the microsecond): it had waited on its way out (a connection made, a
 * busy loop). A paced origin's next request leaves at least one interval
 * after it, so that the pace holds between requests as sent.
 */
void sl_slots_sent(sl_slots *s, sl_slot_origin *o, double at);
/*
 * Give a slot back. `complete`: its request ended with a whole response,
 * so the origin is done with it; otherwise (aborted, timed out) a backend
 * may keep the slot taken until its deadline, since the origin may still
 * be working on the request. A slot whose token is stale changes nothing.
 */
void sl_slots_release(sl_slots *s, sl_slot *slot, bool complete);
/* No request to `o` before `until` (boot clock): extends a pause, never
 * shortens it. */
void sl_slots_pause(sl_slots *s, sl_slot_origin *o, int64_t until);
/* The end of o's pause (boot clock), or 0 when it is not paused. */
int64_t sl_slots_paused_until(sl_slots *s, sl_slot_origin *o);
/* Slots of `o` held now. */
unsigned sl_slots_held(sl_slots *s, sl_slot_origin *o);
/* Hand every held slot to `fn`. */
sluice_err sl_slots_list(sl_slots *s, sl_slot_fn *fn, void *ctx);
/* Make durable what must be before more requests are sent (the caller
 * holds no turn on the queue): a pause recorded, reservations renewed. A
 * failure is the queue's (s->errmsg); no request may be sent then. */
sluice_err sl_slots_sync(sl_slots *s, int64_t now);
/* The turn's requests are started: a slot released whole and kept for
 * one of them (opts.reuse) that none took goes back to every runner. */
void sl_slots_settle(sl_slots *s);
/* Up to n takes of `o` may follow in this turn: a service whose take is
 * a round trip (Redis) asks for that many at once, and keeps those the
 * take does not use for the takes that follow, until sl_slots_settle
 * gives back what none used. */
void sl_slots_want(sl_slots *s, sl_slot_origin *o, unsigned n);
/* How a request to `o` ended, given after its slot's release: the
 * adaptive limits and the advertised rate learn from it (and an origin
 * that says no request is left in its window is paused). */
void sl_slots_feedback(sl_slots *s, sl_slot_origin *o,
                       const sl_slot_feedback *fb);
/* o's limits now: the cap, and what the pacer allows under it. */
void sl_slots_limits(sl_slots *s, sl_slot_origin *o, sl_slot_limits *out);

/*
 * For the C backends, the pacer's part of their ops, on the pacer they
 * keep for origin o: a take's check (SLUICE_EAGAIN with *free_at when o
 * is at its learnt limit, 0, or must wait for its pace, the time), the
 * start, the feedback (true with *pause_until when the origin asks for a
 * pause), the limits.
 */
sluice_err sl_slots_pace_check(const sl_slots *s, const sl_pacer *p,
                               unsigned in_use, double at, double *free_at);
void sl_slots_pace_start(const sl_slots *s, sl_pacer *p, double at);
void sl_slots_pace_sent(const sl_slots *s, sl_pacer *p, double at);
bool sl_slots_pace_feedback(const sl_slots *s, sl_pacer *p, unsigned in_use,
                            const sl_slot_feedback *fb, int64_t now,
                            int64_t *pause_until);
void sl_slots_pace_limits(const sl_slots *s, const sl_pacer *p, int64_t now,
                          sl_slot_limits *out);

/* The slots and pauses a Redis queue holds (slots_redis.c), for
 * sluice_slots_list: `live` when a runner uses the queue now. */
sluice_err sl_slots_redis_holdings(sluice_queue *q, const sl_pacer_limits *lim,
                                   bool live, sluice_slot_fn *fn, void *ctx);
/* Free the slots of `origin` (NULL: all) and end its pause in Redis; the
 * number of origins that held or paused anything into *cleared. */
sluice_err sl_slots_redis_clear(sluice_queue *q, const char *origin,
                                uint64_t *cleared);

extern const sl_slots_ops sl_slots_memory;
extern const sl_slots_ops sl_slots_durable;
extern const sl_slots_ops sl_slots_redis;

#endif /* SL_SLOTS_H */
