/*
 * The limiter: per-origin request slots. An origin (scheme, host, port)
 * may have at most `cap` requests in flight (invariant 1), and all
 * origins together at most `max_total`; a throttled origin is paused
 * until its Retry-After passes, for every record, not just the one that
 * was told. Origins also hold their queue of jobs ready to start.
 */
#ifndef SL_LIMIT_H
#define SL_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "../util.h"

struct sl_job; /* run.c's */

typedef struct sl_origin {
    char *name;
    unsigned in_flight;
    int64_t paused_until; /* wall-clock ms; 0 when not paused */
    unsigned refused_in_row; /* connections refused since the last answer */
    unsigned down_pauses;    /* pauses since it was last up (backoff) */
    /* Jobs waiting to start, in feed order (run.c links them). */
    struct sl_job *ready_head, *ready_tail;
    unsigned n_ready;
    bool enough_ready; /* no more leases for it until n_ready runs low */
    unsigned jobs; /* ready + running + waiting on the store */
    struct sl_origin *hash_next;
} sl_origin;

typedef struct {
    unsigned cap;       /* per origin */
    unsigned max_total; /* 0: none */
    unsigned in_flight; /* all origins */
    unsigned peak;      /* highest in_flight of any one origin seen */
    sl_origin **buckets;
    size_t n_buckets, n_origins;
} sl_limiter;

sluice_err sl_limiter_init(sl_limiter *l, unsigned cap, unsigned max_total);
void sl_limiter_free(sl_limiter *l);

/* The origin named `name`, created on first use; NULL if out of memory. */
sl_origin *sl_limiter_origin(sl_limiter *l, const char *name);
/* Forget an origin that holds no jobs. */
void sl_limiter_forget(sl_limiter *l, sl_origin *o);
/*
 * End the pauses that are over and forget origins with no jobs and no
 * pause in effect. True when some pause ended (its records may go now).
 */
bool sl_limiter_sweep(sl_limiter *l, int64_t now_ms);

/* May a request to `o` start now (a free slot, not paused)? */
bool sl_limiter_may_start(const sl_limiter *l, const sl_origin *o,
                          int64_t now_ms);
/* Take a slot; the caller checked sl_limiter_may_start. */
void sl_limiter_acquire(sl_limiter *l, sl_origin *o);
void sl_limiter_release(sl_limiter *l, sl_origin *o);
/* No request to `o` before until_ms (extends, never shortens, a pause). */
void sl_limiter_pause(sl_limiter *l, sl_origin *o, int64_t until_ms);

/* Visit every origin. */
#define SL_FOR_EACH_ORIGIN(l, o)                                              \
    for (size_t b_ = 0; b_ < (l)->n_buckets; b_++)                            \
        for (sl_origin *o = (l)->buckets[b_]; o; o = o->hash_next)

#endif /* SL_LIMIT_H */
