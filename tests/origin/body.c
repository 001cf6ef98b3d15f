/*
 * Deterministic bodies for the test origin (see body.h): the bytes of
 * object n are the splitmix64 stream seeded by mix64(n), so the server,
 * origin_verify and the tests agree on every byte without sharing state.
 */
#include "body.h"

#include <string.h>

#define GOLDEN_GAMMA 0x9e3779b97f4a7c15ULL
#define SIZE_SALT    0x73697a65ULL /* "size": sizes and bytes differ */

uint64_t
sl_origin_mix64(uint64_t x)
{
    x += GOLDEN_GAMMA;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Parse a decimal number that fills [s, end) exactly; -1 otherwise. */
static int
parse_size(const char *s, const char *end, uint64_t *value)
{
    uint64_t v = 0;

    if (s == end)
        return -1;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > SL_ORIGIN_SIZE_MAX)
            return -1;
    }
    *value = v;
    return 0;
}

int
sl_origin_size_parse(const char *spec, struct sl_origin_size *size)
{
    const char *end = spec + strlen(spec);
    struct sl_origin_size parsed;

    if (strncmp(spec, "fixed:", 6) == 0) {
        if (parse_size(spec + 6, end, &parsed.min) != 0)
            return -1;
        parsed.max = parsed.min;
    } else if (strncmp(spec, "uniform:", 8) == 0) {
        const char *colon = strchr(spec + 8, ':');

        if (colon == NULL || parse_size(spec + 8, colon, &parsed.min) != 0 ||
            parse_size(colon + 1, end, &parsed.max) != 0 ||
            parsed.min > parsed.max)
            return -1;
    } else {
        if (parse_size(spec, end, &parsed.min) != 0)
            return -1;
        parsed.max = parsed.min;
    }
    *size = parsed;
    return 0;
}

uint64_t
sl_origin_body_size(const struct sl_origin_size *size, uint64_t n)
{
    uint64_t span = size->max - size->min;

    if (span == 0)
        return size->min;
    /* span < SL_ORIGIN_SIZE_MAX, so span + 1 cannot wrap. */
    return size->min + sl_origin_mix64(n ^ SIZE_SALT) % (span + 1);
}

void
sl_origin_body_fill(uint64_t n, uint64_t offset, unsigned char *dst, size_t len)
{
    uint64_t key = sl_origin_mix64(n);
    uint64_t index = offset / 8;
    unsigned skip = (unsigned)(offset % 8);

    while (len > 0) {
        uint64_t word = sl_origin_mix64(key + index * GOLDEN_GAMMA);

        if (skip == 0 && len >= 8) {
            for (unsigned b = 0; b < 8; b++)
                dst[b] = (unsigned char)(word >> (8 * b));
            dst += 8;
            len -= 8;
        } else {
            for (unsigned b = skip; b < 8 && len > 0; b++, len--)
                *dst++ = (unsigned char)(word >> (8 * b));
            skip = 0;
        }
        index++;
    }
}
