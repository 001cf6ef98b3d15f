/*
 * --rate-limit and --ratelimit-headers: N /img requests per fixed window
 * of W seconds counted from the origin's start, the rest answered 429 at
 * once (as nginx's limit_req with limit_req_status 429), and the headers
 * that describe a request's window in the IETF, older draft and X- forms.
 */
#include <inttypes.h>
#include <string.h>

#include "origin.h"

#define NS_PER_S ((uint64_t)1000000000)

/* The requests of the current window not over its quota. */
static uint64_t
admitted(const struct rate_state *s, const struct rate_limit *rl)
{
    return s->count < rl->quota ? s->count : rl->quota;
}

/* Parse seconds with at most three decimals ("1", "0.5", "3600") filling
 * [s, end) exactly into milliseconds: more than 0, at most RATE_MAX_MS. */
static int
parse_window_ms(const char *s, const char *end, uint64_t *ms)
{
    const char *dot = memchr(s, '.', (size_t)(end - s));
    const char *whole_end = dot ? dot : end;
    uint64_t whole, frac = 0;

    if (parse_u64(s, (size_t)(whole_end - s), RATE_MAX_MS / 1000, &whole))
        return -1;
    if (dot != NULL) {
        size_t digits = (size_t)(end - dot - 1);

        if (digits == 0 || digits > 3 ||
            parse_u64(dot + 1, digits, 999, &frac) != 0)
            return -1;
        for (; digits < 3; digits++)
            frac *= 10;
    }
    *ms = whole * 1000 + frac;
    return *ms == 0 || *ms > RATE_MAX_MS ? -1 : 0;
}

/*
 * "N/W" (N requests per W seconds) or "N" (per second): N in
 * 1..RATE_MAX_N, W more than 0 and at most a day, with at most three
 * decimals so that windows are whole milliseconds and W can be written
 * back as a structured field decimal. Sets quota and window_ms only.
 */
int
parse_rate_limit(const char *spec, struct rate_limit *rl)
{
    const char *end = spec + strlen(spec);
    const char *slash = strchr(spec, '/');
    const char *quota_end = slash ? slash : end;
    uint64_t quota, window_ms = 1000;

    if (parse_u64(spec, (size_t)(quota_end - spec), RATE_MAX_N, &quota) ||
        quota == 0)
        return -1;
    if (slash != NULL && parse_window_ms(slash + 1, end, &window_ms) != 0)
        return -1;
    rl->quota = quota;
    rl->window_ms = window_ms;
    return 0;
}

int
parse_ratelimit_headers(const char *spec, unsigned *set)
{
    static const struct {
        const char *name;
        unsigned bits;
    } names[] = {
        {"ietf", RATE_HEADERS_IETF},
        {"draft", RATE_HEADERS_DRAFT},
        {"x", RATE_HEADERS_X},
        {"all", RATE_HEADERS_ALL},
    };
    const char *end = spec + strlen(spec);
    unsigned bits = 0;

    do {
        const char *comma = memchr(spec, ',', (size_t)(end - spec));
        const char *item_end = comma ? comma : end;
        size_t k;

        for (k = 0; k < sizeof names / sizeof *names; k++)
            if (span_is(spec, (size_t)(item_end - spec), names[k].name))
                break;
        if (k == sizeof names / sizeof *names)
            return -1;
        bits |= names[k].bits;
        spec = item_end + 1;
    } while (spec <= end);
    *set = bits;
    return 0;
}

/*
 * Count r, whose head was parsed at r->start_ns, in the window that
 * holds that moment: windows are window_ms long from the origin's
 * start, and a new one starts its count from 0. Every request counted
 * in `requests` is counted here, over-limit 503s too, so the first
 * quota of a window are answered as usual and the rest are over it.
 * max_per_window follows the count of those not over it.
 */
bool
rate_admit(struct origin *o, struct request *r)
{
    const struct rate_limit *rl = &o->opt.rate;
    struct rate_state *s = &o->rate;

    if (rl->quota == 0)
        return false;
    uint64_t window_ns = rl->window_ms * NS_PER_MS;
    uint64_t window = (r->start_ns - o->start_ns) / window_ns;
    if (window != s->window) {
        s->window = window;
        s->count = 0;
    }
    s->count++;
    if (admitted(s, rl) > s->max_per_window)
        s->max_per_window = admitted(s, rl);
    if (rl->headers != 0) {
        r->rate = rl;
        r->rate_remaining = rl->quota > s->count ? rl->quota - s->count : 0;
        r->rate_window_end_ns = o->start_ns + (window + 1) * window_ns;
    }
    return s->count > rl->quota;
}

/* Over the window's quota: 429 at once, no Retry-After, like nginx. */
void
rate_throttle(struct origin *o, struct conn *c)
{
    o->rate.throttled++;
    send_text(o, c, 429, NULL, "rate limited");
}

/* W in seconds: "1", "3600", or with the decimals it has ("0.5"). */
static void
buf_add_seconds(struct buf *b, uint64_t ms)
{
    uint64_t frac = ms % 1000;
    int digits = 3;

    if (frac == 0) {
        buf_printf(b, "%" PRIu64, ms / 1000);
        return;
    }
    for (; frac % 10 == 0; frac /= 10)
        digits--;
    buf_printf(b, "%" PRIu64 ".%0*" PRIu64, ms / 1000, digits, frac);
}

/*
 * The header lines of r's window, in the spellings chosen: the limit,
 * what the window still allows after r, and the whole seconds until it
 * ends, counted from now (the head may go out after a latency), rounded
 * up and at least 1, even when the window is already over.
 */
void
rate_head_add(struct buf *b, const struct request *r)
{
    static const char *const prefixes[] = {"", "X-"};
    static const unsigned spellings[] = {RATE_HEADERS_DRAFT, RATE_HEADERS_X};
    const struct rate_limit *rl = r->rate;

    if (rl == NULL)
        return;
    uint64_t now = now_ns();
    uint64_t reset =
        r->rate_window_end_ns > now
            ? (r->rate_window_end_ns - now + NS_PER_S - 1) / NS_PER_S
            : 0;
    if (reset == 0)
        reset = 1;
    if (rl->headers & RATE_HEADERS_IETF) {
        buf_printf(b,
                   "RateLimit-Policy: \"default\";q=%" PRIu64 ";w=", rl->quota);
        buf_add_seconds(b, rl->window_ms);
        buf_printf(b,
                   "\r\nRateLimit: \"default\";r=%" PRIu64 ";t=%" PRIu64 "\r\n",
                   r->rate_remaining, reset);
    }
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        if (!(rl->headers & spellings[i]))
            continue;
        buf_printf(b,
                   "%sRateLimit-Limit: %" PRIu64 "\r\n"
                   "%sRateLimit-Remaining: %" PRIu64 "\r\n"
                   "%sRateLimit-Reset: %" PRIu64 "\r\n",
                   prefixes[i], rl->quota, prefixes[i], r->rate_remaining,
                   prefixes[i], reset);
    }
}

void
rate_stats(const struct origin *o, struct buf *t)
{
    if (o->opt.rate.quota == 0)
        return;
    buf_printf(t, ",\"throttled\":%" PRIu64 ",\"max_per_window\":%" PRIu64,
               o->rate.throttled, o->rate.max_per_window);
}

/*
 * /_reset: throttled restarts from 0 and max_per_window from the current
 * window's count (as peak_in_flight restarts from in_flight): the
 * requests already counted in it still count against its quota.
 */
void
rate_reset(struct origin *o)
{
    const struct rate_limit *rl = &o->opt.rate;
    struct rate_state *s = &o->rate;

    s->throttled = 0;
    s->max_per_window = 0;
    if (rl->quota == 0)
        return;
    uint64_t window = (now_ns() - o->start_ns) / (rl->window_ms * NS_PER_MS);
    if (window == s->window)
        s->max_per_window = admitted(s, rl);
}
