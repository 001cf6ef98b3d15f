/*
 * The origin's latencies: parsing --latency, and drawing the wait before
 * an /img response head as a pure function of (seed, n, attempt) through
 * splitmix64, so a run can be replayed exactly.
 */
#define _GNU_SOURCE /* M_PI */

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "origin.h"

#define LATENCY_MAX_MS 3600000 /* every latency is clamped to an hour */

/* A uniform double in [0, 1) from the top 53 bits of h. */
static double
unit_interval(uint64_t h)
{
    return (double)(h >> 11) * 0x1p-53;
}

/*
 * The latency of attempt `attempt` at object n: a pure function of the
 * spec, the seed, n and attempt, so a run can be replayed exactly and
 * retries of one object need not be as slow as its first try.
 */
uint64_t
latency_for(const struct latency *l, uint64_t seed, uint64_t n,
            uint64_t attempt)
{
    uint64_t h =
        sl_origin_mix64(seed ^ sl_origin_mix64(n ^ sl_origin_mix64(attempt)));

    switch (l->kind) {
    case LATENCY_NONE:
        return 0;
    case LATENCY_FIXED:
        return l->min_ms;
    case LATENCY_UNIFORM:
        return l->min_ms + h % (l->max_ms - l->min_ms + 1);
    case LATENCY_LOGNORMAL: {
        /* Box-Muller: a standard normal z from two uniforms. */
        double u1 = 1.0 - unit_interval(h); /* (0, 1] */
        double u2 = unit_interval(sl_origin_mix64(h));
        double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
        double ms = l->median_ms * exp(l->sigma * z);

        if (!(ms < LATENCY_MAX_MS)) /* also catches NaN */
            return LATENCY_MAX_MS;
        return (uint64_t)(ms + 0.5);
    }
    }
    return 0;
}

/* Parse a non-negative finite double filling s exactly. */
static int
parse_double(const char *s, const char *end, double *value)
{
    char text[64];
    char *stop;
    size_t len = (size_t)(end - s);

    if (len == 0 || len >= sizeof text)
        return -1;
    memcpy(text, s, len);
    text[len] = '\0';
    errno = 0;
    *value = strtod(text, &stop);
    if (errno != 0 || *stop != '\0' || !(*value >= 0) || isinf(*value))
        return -1;
    return 0;
}

int
parse_latency(const char *spec, struct latency *l)
{
    const char *end = spec + strlen(spec);
    const char *colon;

    memset(l, 0, sizeof *l);
    if (strcmp(spec, "0") == 0) {
        l->kind = LATENCY_NONE;
        return 0;
    }
    if (strncmp(spec, "fixed:", 6) == 0) {
        l->kind = LATENCY_FIXED;
        if (parse_u64(spec + 6, (size_t)(end - spec - 6), LATENCY_MAX_MS,
                      &l->min_ms) != 0)
            return -1;
        l->max_ms = l->min_ms;
        return 0;
    }
    if (strncmp(spec, "uniform:", 8) == 0) {
        l->kind = LATENCY_UNIFORM;
        colon = strchr(spec + 8, ':');
        if (colon == NULL ||
            parse_u64(spec + 8, (size_t)(colon - spec - 8), LATENCY_MAX_MS,
                      &l->min_ms) != 0 ||
            parse_u64(colon + 1, (size_t)(end - colon - 1), LATENCY_MAX_MS,
                      &l->max_ms) != 0 ||
            l->min_ms > l->max_ms)
            return -1;
        return 0;
    }
    if (strncmp(spec, "lognormal:", 10) == 0) {
        l->kind = LATENCY_LOGNORMAL;
        colon = strchr(spec + 10, ':');
        if (colon == NULL ||
            parse_double(spec + 10, colon, &l->median_ms) != 0 ||
            parse_double(colon + 1, end, &l->sigma) != 0)
            return -1;
        return 0;
    }
    return -1;
}
