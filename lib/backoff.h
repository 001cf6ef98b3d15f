/*
 * Backoff between attempts, for everything that retries (records in the
 * run, uploads in the S3 store): exponential with full jitter, and the
 * small PRNG the jitter draws from.
 */
#ifndef SL_BACKOFF_H
#define SL_BACKOFF_H

#include <stdint.h>

/*
 * The delay before retry number `attempt` (1 for the first retry): a
 * uniformly random value in [0, min(cap, base * 2^(attempt-1))] ("full
 * jitter"). `random` is a uniform 64-bit value.
 */
int64_t sl_backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms,
                      uint64_t random);

/* A fast PRNG (splitmix64) for jitter; `state` is any seed. */
uint64_t sl_random(uint64_t *state);

#endif /* SL_BACKOFF_H */
