/*
 * What an origin advertises about its rate limit, read from the headers
 * a response carried (fetch.h captures them): the IETF fields
 * (draft-ietf-httpapi-ratelimit-headers: RateLimit-Policy and RateLimit,
 * structured; its older RateLimit-Limit, -Remaining and -Reset), and the
 * common X-RateLimit-Limit, -Remaining and -Reset (Reset as seconds to
 * go, or a time since the epoch). The IETF spellings win over the others.
 */
#include "ratelimit.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The number after "name=" in a list of params (";q=100;w=60", or
 * "limit=100, remaining=5"); -1 when absent or not a number. */
static double
param(const char *s, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = s; (p = strstr(p, name)) != NULL; p += n) {
        bool starts = p == s || p[-1] == ';' || p[-1] == ',' ||
                      isspace((unsigned char)p[-1]);
        if (!starts || p[n] != '=')
            continue;
        char *end;
        double v = strtod(p + n + 1, &end);
        if (end != p + n + 1 && v >= 0)
            return v;
    }
    return -1;
}

/* A plain number at the start of `s` ("100", "100, 100;w=60"); -1. */
static double
number(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end;
    double v = strtod(s, &end);
    return end != s && v >= 0 ? v : -1;
}

/* Seconds to go from a Reset that may be a time since the epoch (in
 * seconds or milliseconds). */
static double
seconds_to(double reset, int64_t now_wall_ms)
{
    if (reset > 1e12) /* ms since the epoch */
        reset = (reset - (double)now_wall_ms) / 1000.0;
    else if (reset > 1e9) /* s since the epoch */
        reset -= (double)now_wall_ms / 1000.0;
    return reset < 0 ? 0 : reset;
}

/* The most restrictive policy of a RateLimit-Policy list. */
static void
read_policy(const char *value, sl_pacer_advice *out)
{
    double best = -1;
    const char *item = value;
    while (item && *item) {
        const char *next = strchr(item, ',');
        char one[128];
        size_t len = next ? (size_t)(next - item) : strlen(item);
        sl_copy(one, SL_MIN(len + 1, sizeof one), item);
        double q = param(one, "q"), w = param(one, "w");
        if (q >= 0) {
            if (w <= 0)
                w = 1; /* the draft's default window is unspecified */
            if (best < 0 || q / w < best) {
                best = q / w;
                out->quota = q;
                out->window_s = w;
            }
        }
        item = next ? next + 1 : NULL;
    }
}

/* The item with the fewest requests left, of a RateLimit list:
 * '"default";r=50;t=30', or the older 'limit=100, remaining=50,
 * reset=30' (one item). */
static void
read_ratelimit(const char *value, sl_pacer_advice *out)
{
    double r = param(value, "r"), t = param(value, "t");
    if (r < 0) {
        r = param(value, "remaining");
        t = param(value, "reset");
        double limit = param(value, "limit");
        if (limit >= 0 && out->quota < 0)
            out->quota = limit;
    }
    if (r >= 0) {
        out->remaining = r;
        out->reset_s = t >= 0 ? t : 1;
    }
}

void
sl_ratelimit_read(const sl_ratelimit_headers *h, int64_t now_wall_ms,
                  sl_pacer_advice *out)
{
    *out = (sl_pacer_advice){-1, -1, -1, -1};
    if (!h->present)
        return;
#define HAS(i) (h->present & (1u << (i)))
    if (HAS(SL_RL_POLICY))
        read_policy(h->value[SL_RL_POLICY], out);
    if (HAS(SL_RL_RATELIMIT))
        read_ratelimit(h->value[SL_RL_RATELIMIT], out);
    /* The older draft's fields, then the X- ones, for what is missing. */
    static const int limit[2] = {SL_RL_LIMIT, SL_RL_X_LIMIT};
    static const int remaining[2] = {SL_RL_REMAINING, SL_RL_X_REMAINING};
    static const int reset[2] = {SL_RL_RESET, SL_RL_X_RESET};
    for (int k = 0; k < 2; k++) {
        if (out->quota < 0 && HAS(limit[k])) {
            out->quota = number(h->value[limit[k]]);
            double w = param(h->value[limit[k]], "w");
            if (w > 0)
                out->window_s = w;
        }
        if (out->remaining < 0 && HAS(remaining[k]) && HAS(reset[k])) {
            out->remaining = number(h->value[remaining[k]]);
            double t = number(h->value[reset[k]]);
            out->reset_s = t >= 0 ? seconds_to(t, now_wall_ms) : -1;
            if (out->reset_s < 0)
                out->remaining = -1;
        }
    }
#undef HAS
}

static const char *const field_names[SL_RL_COUNT] = {
    [SL_RL_POLICY] = "ratelimit-policy",
    [SL_RL_RATELIMIT] = "ratelimit",
    [SL_RL_LIMIT] = "ratelimit-limit",
    [SL_RL_REMAINING] = "ratelimit-remaining",
    [SL_RL_RESET] = "ratelimit-reset",
    [SL_RL_X_LIMIT] = "x-ratelimit-limit",
    [SL_RL_X_REMAINING] = "x-ratelimit-remaining",
    [SL_RL_X_RESET] = "x-ratelimit-reset",
};

void
sl_ratelimit_capture(sl_ratelimit_headers *h, const char *line, size_t len)
{
    char c = line[0] | 0x20; /* ASCII lower case */
    if (len < 10 || (c != 'r' && c != 'x'))
        return;
    const char *colon = memchr(line, ':', len);
    if (!colon)
        return;
    size_t name_len = (size_t)(colon - line);
    for (int i = 0; i < SL_RL_COUNT; i++) {
        if (strlen(field_names[i]) != name_len ||
            strncasecmp(line, field_names[i], name_len) != 0)
            continue;
        const char *v = colon + 1, *end = line + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && isspace((unsigned char)end[-1]))
            end--;
        size_t n = SL_MIN((size_t)(end - v), (size_t)SL_RL_VALUE_MAX - 1);
        memcpy(h->value[i], v, n);
        h->value[i][n] = '\0';
        h->present |= 1u << i;
        return;
    }
}
