/*
 * Rate-limit headers (ratelimit.c): the fetcher captures the fields an
 * origin uses to advertise its limit as the response head arrives, and
 * the run reads what they say into the pacer's advice (slots/pacer.h).
 */
#ifndef SL_RATELIMIT_H
#define SL_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "../slots/pacer.h"
#include "../util.h"

enum {
    SL_RL_POLICY,      /* RateLimit-Policy */
    SL_RL_RATELIMIT,   /* RateLimit */
    SL_RL_LIMIT,       /* RateLimit-Limit */
    SL_RL_REMAINING,   /* RateLimit-Remaining */
    SL_RL_RESET,       /* RateLimit-Reset */
    SL_RL_X_LIMIT,     /* X-RateLimit-Limit */
    SL_RL_X_REMAINING, /* X-RateLimit-Remaining */
    SL_RL_X_RESET,     /* X-RateLimit-Reset */
    SL_RL_COUNT
};

#define SL_RL_VALUE_MAX 128 /* bytes of a value kept; longer: cut */

/* The fields one response carried, their values as sent. */
typedef struct {
    unsigned present; /* bit (1 << SL_RL_*) for each field seen */
    char value[SL_RL_COUNT][SL_RL_VALUE_MAX];
} sl_ratelimit_headers;

/* A header line as it arrives ("Name: value\r\n"): kept when it is one of
 * the fields. Cheap for every other line (its first letter). */
void sl_ratelimit_capture(sl_ratelimit_headers *h, const char *line,
                          size_t len);

/* What they advertise (fields < 0: not said), `now_wall_ms` for a Reset
 * given as a time since the epoch. */
void sl_ratelimit_read(const sl_ratelimit_headers *h, int64_t now_wall_ms,
                       sl_pacer_advice *out);

#endif /* SL_RATELIMIT_H */
