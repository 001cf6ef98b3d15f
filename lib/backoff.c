/*
 * Exponential backoff with full jitter (backoff.h).
 */
#include "backoff.h"

int64_t
sl_backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms,
              uint64_t random)
{
    if (attempt == 0)
        attempt = 1;
    int64_t ceiling = base_ms;
    /* Stop doubling at the cap, before ceiling * 2 could overflow. */
    for (unsigned i = 1; i < attempt && ceiling > 0 && ceiling < cap_ms; i++)
        ceiling = ceiling > cap_ms / 2 ? cap_ms : ceiling * 2;
    if (ceiling > cap_ms)
        ceiling = cap_ms;
    if (ceiling <= 0)
        return 0;
    return (int64_t)(random % ((uint64_t)ceiling + 1));
}

uint64_t
sl_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
