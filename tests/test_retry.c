/*
 * The retry policy (lib/run/retry.c, lib/backoff.c): how each kind of attempt
 * is classified (DESIGN.md, "Errors and safety"), backoff with full jitter, and
 * Retry-After in delta-seconds and the three HTTP-date formats.
 */
#include <curl/curl.h>

#include "backoff.h"
#include "run/retry.h"
#include "test.h"
#include "util.h"

#define DAY_MS  (86400LL * 1000)
#define YEAR_MS (366 * DAY_MS) /* the longest wait Retry-After may ask */

/* IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" in ms since the epoch. */
#define RFC_EXAMPLE_MS (784111777LL * 1000)

/* Classify and check the outcome and the error class (NULL: none). */
static void
expect(sl_attempt a, sl_outcome want, const char *want_class, int line)
{
    sl_error_class got_class = SL_CLASS_COUNT_; /* unset */
    sl_outcome got = sl_classify(&a, &got_class);
    const char *cls = sl_error_class_name(got_class);
    if (got != want)
        TEST_FAIL_("line %d: curl %d, HTTP %d: outcome %d, want %d", line,
                   (int)a.error, a.http_status, (int)got, (int)want);
    if (!want_class && cls)
        TEST_FAIL_("line %d: HTTP %d: class \"%s\", want none", line,
                   a.http_status, cls);
    if (want_class && (!cls || strcmp(cls, want_class) != 0))
        TEST_FAIL_("line %d: curl %d, HTTP %d: class \"%s\", want \"%s\"", line,
                   (int)a.error, a.http_status, cls ? cls : "(null)",
                   want_class);
}

#define EXPECT(attempt, outcome, cls) expect(attempt, outcome, cls, __LINE__)

static sl_attempt
http(int status)
{
    return (sl_attempt){.http_status = status};
}

static sl_attempt
curl_error(CURLcode code)
{
    return (sl_attempt){.error = sl_fetch_error_of((int)code)};
}

/* ---- Classification ---- */

TEST(a_2xx_response_is_done)
{
    EXPECT(http(200), SL_OUTCOME_DONE, NULL);
    EXPECT(http(203), SL_OUTCOME_DONE, NULL);
    EXPECT(http(204), SL_OUTCOME_DONE, NULL);
    EXPECT(http(299), SL_OUTCOME_DONE, NULL);
}

TEST(a_3xx_with_location_is_a_redirect)
{
    static const int redirects[] = {301, 302, 303, 307, 308};
    for (size_t i = 0; i < SL_ARRAY_LEN(redirects); i++) {
        sl_attempt a = http(redirects[i]);
        a.has_location = true;
        EXPECT(a, SL_OUTCOME_REDIRECT, NULL);
    }
}

TEST(a_3xx_without_location_or_not_a_redirect_is_dead)
{
    static const int redirects[] = {301, 302, 303, 307, 308};
    for (size_t i = 0; i < SL_ARRAY_LEN(redirects); i++)
        EXPECT(http(redirects[i]), SL_OUTCOME_DEAD, "http");
    /* Not redirects even with a Location: 300 Multiple Choices, 304 Not
     * Modified (we never send conditional requests), 305, 306, 399. */
    static const int others[] = {300, 304, 305, 306, 399};
    for (size_t i = 0; i < SL_ARRAY_LEN(others); i++) {
        sl_attempt a = http(others[i]);
        a.has_location = true;
        EXPECT(a, SL_OUTCOME_DEAD, "http");
    }
}

TEST(transient_http_statuses_are_retried)
{
    static const int statuses[] = {408, 500, 501, 502, 504, 599};
    for (size_t i = 0; i < SL_ARRAY_LEN(statuses); i++)
        EXPECT(http(statuses[i]), SL_OUTCOME_RETRY, "http");
}

TEST(throttle_statuses_pause_the_origin)
{
    sl_error_class cls = SL_CLASS_NONE;
    sl_attempt a = http(429);
    ASSERT_EQ(sl_classify(&a, &cls), SL_OUTCOME_THROTTLE);
    ASSERT_NOT_NULL(sl_error_class_name(cls));
    a = http(503);
    cls = SL_CLASS_NONE;
    ASSERT_EQ(sl_classify(&a, &cls), SL_OUTCOME_THROTTLE);
    ASSERT_NOT_NULL(sl_error_class_name(cls));
    /* A throttle even when it names a Location. */
    a.has_location = true;
    ASSERT_EQ(sl_classify(&a, &cls), SL_OUTCOME_THROTTLE);
}

TEST(other_4xx_and_odd_statuses_are_dead)
{
    static const int statuses[] = {400, 401, 403, 404, 405, 409,
                                   410, 418, 428, 431, 451, 499};
    for (size_t i = 0; i < SL_ARRAY_LEN(statuses); i++)
        EXPECT(http(statuses[i]), SL_OUTCOME_DEAD, "http");
    /* A transfer that "completed" without a final status, or with an
     * informational one, has nothing to store. */
    EXPECT(http(0), SL_OUTCOME_DEAD, "http");
    EXPECT(http(100), SL_OUTCOME_DEAD, "http");
    EXPECT(http(199), SL_OUTCOME_DEAD, "http");
}

TEST(network_failures_are_retried)
{
    /* Connect failure, resolve failure, reset, nothing received. */
    static const CURLcode codes[] = {CURLE_COULDNT_CONNECT,
                                     CURLE_COULDNT_RESOLVE_HOST,
                                     CURLE_COULDNT_RESOLVE_PROXY,
                                     CURLE_RECV_ERROR,
                                     CURLE_SEND_ERROR,
                                     CURLE_GOT_NOTHING,
                                     CURLE_HTTP2,
                                     CURLE_HTTP2_STREAM,
                                     CURLE_SSL_CONNECT_ERROR};
    for (size_t i = 0; i < SL_ARRAY_LEN(codes); i++)
        EXPECT(curl_error(codes[i]), SL_OUTCOME_RETRY, "network");
}

TEST(each_special_curl_error_has_its_class)
{
    EXPECT(curl_error(CURLE_OPERATION_TIMEDOUT), SL_OUTCOME_RETRY, "timeout");
    EXPECT(curl_error(CURLE_PARTIAL_FILE), SL_OUTCOME_RETRY, "length");
    EXPECT(curl_error(CURLE_FILESIZE_EXCEEDED), SL_OUTCOME_DEAD, "too_large");
    /* A URL libcurl refuses: the record's own on the first hop (no
     * redirect happened), a redirect's after one. */
    EXPECT(curl_error(CURLE_UNSUPPORTED_PROTOCOL), SL_OUTCOME_DEAD, "url");
    EXPECT(curl_error(CURLE_URL_MALFORMAT), SL_OUTCOME_DEAD, "url");
    sl_attempt hop = curl_error(CURLE_UNSUPPORTED_PROTOCOL);
    hop.redirected = true;
    EXPECT(hop, SL_OUTCOME_DEAD, "redirect");
    hop = curl_error(CURLE_URL_MALFORMAT);
    hop.redirected = true;
    EXPECT(hop, SL_OUTCOME_DEAD, "redirect");
    /* Other failures are classed alike on any hop. */
    hop = curl_error(CURLE_COULDNT_CONNECT);
    hop.redirected = true;
    EXPECT(hop, SL_OUTCOME_RETRY, "network");
    EXPECT(curl_error(CURLE_PEER_FAILED_VERIFICATION), SL_OUTCOME_DEAD, "tls");
    EXPECT(curl_error(CURLE_SSL_CERTPROBLEM), SL_OUTCOME_DEAD, "tls");
    EXPECT(curl_error(CURLE_SSL_CACERT_BADFILE), SL_OUTCOME_DEAD, "tls");
    EXPECT(curl_error(CURLE_WEIRD_SERVER_REPLY), SL_OUTCOME_RETRY, "protocol");
}

TEST(a_curl_error_outranks_the_status)
{
    /* A 200 whose body was cut off by a timeout is not done. */
    sl_attempt a = http(200);
    a.error = sl_fetch_error_of(CURLE_OPERATION_TIMEDOUT);
    EXPECT(a, SL_OUTCOME_RETRY, "timeout");
    /* Nor is a 404 whose connection was reset a permanent failure. */
    a = http(404);
    a.error = sl_fetch_error_of(CURLE_RECV_ERROR);
    EXPECT(a, SL_OUTCOME_RETRY, "network");
}

TEST(a_short_body_is_retried)
{
    sl_attempt a = http(200);
    a.short_body = true;
    EXPECT(a, SL_OUTCOME_RETRY, "length");
    /* The curl error says more about what happened. */
    a.error = sl_fetch_error_of(CURLE_RECV_ERROR);
    EXPECT(a, SL_OUTCOME_RETRY, "network");
}

TEST(policy_and_size_are_permanent_whatever_else_happened)
{
    /* A refused address shows up as a failed connect: still dead. */
    sl_attempt a = curl_error(CURLE_COULDNT_CONNECT);
    a.refused = true;
    EXPECT(a, SL_OUTCOME_DEAD, "policy");
    /* We stop reading a body over --max-bytes: a write error. */
    a = curl_error(CURLE_WRITE_ERROR);
    a.too_large = true;
    EXPECT(a, SL_OUTCOME_DEAD, "too_large");
    /* Even a 503 or a 200 is dead when the body was too large. */
    a = http(503);
    a.too_large = true;
    EXPECT(a, SL_OUTCOME_DEAD, "too_large");
    a = http(200);
    a.too_large = true;
    EXPECT(a, SL_OUTCOME_DEAD, "too_large");
    /* The policy is named first. */
    a.refused = true;
    EXPECT(a, SL_OUTCOME_DEAD, "policy");
}

/* ---- Backoff ---- */

/* The ceiling of retry `attempt`, computed the slow and obvious way. */
static int64_t
ceiling_of(unsigned attempt, int64_t base, int64_t cap)
{
    int64_t c = base;
    for (unsigned i = 1; i < attempt && c < cap; i++)
        c *= 2;
    return c < cap ? c : cap;
}

TEST(backoff_stays_within_the_doubling_ceiling)
{
    uint64_t rng = 42;
    const int64_t base = 250, cap = 60000;
    for (unsigned attempt = 1; attempt <= 12; attempt++) {
        int64_t ceiling = ceiling_of(attempt, base, cap);
        int64_t lo = INT64_MAX, hi = -1;
        double sum = 0;
        const int n = 20000;
        for (int i = 0; i < n; i++) {
            int64_t d = sl_backoff_ms(attempt, base, cap, sl_random(&rng));
            ASSERT_GE(d, 0);
            ASSERT_LE(d, ceiling);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
            sum += (double)d;
        }
        /* Full jitter: the whole range is used, evenly. */
        ASSERT_LE(lo, ceiling / 50);
        ASSERT_GE(hi, ceiling - ceiling / 50);
        double mean = sum / n;
        ASSERT_GT(mean, 0.45 * (double)ceiling);
        ASSERT_LT(mean, 0.55 * (double)ceiling);
    }
}

TEST(backoff_ceiling_doubles_until_the_cap)
{
    /* `random` picks a point in [0, ceiling]: ceiling itself is the
     * highest reachable value and ceiling + 1 wraps round to 0. */
    const int64_t base = 100, cap = 10000;
    int64_t want = base;
    for (unsigned attempt = 1; attempt <= 7; attempt++) {
        ASSERT_EQ(sl_backoff_ms(attempt, base, cap, (uint64_t)want), want);
        ASSERT_EQ(sl_backoff_ms(attempt, base, cap, (uint64_t)want + 1), 0);
        ASSERT_EQ(sl_backoff_ms(attempt, base, cap, (uint64_t)want + 2), 1);
        want *= 2;
    }
    /* 100 * 2^7 = 12800 is over the cap. */
    for (unsigned attempt = 8; attempt <= 40; attempt++) {
        ASSERT_EQ(sl_backoff_ms(attempt, base, cap, (uint64_t)cap), cap);
        ASSERT_EQ(sl_backoff_ms(attempt, base, cap, (uint64_t)cap + 1), 0);
    }
    /* Attempt 0 is treated as the first retry. */
    ASSERT_EQ(sl_backoff_ms(0, base, cap, (uint64_t)base), base);
    ASSERT_EQ(sl_backoff_ms(0, base, cap, (uint64_t)base + 1), 0);
}

TEST(backoff_does_not_overflow)
{
    uint64_t rng = 7;
    static const unsigned attempts[] = {64, 65, 100, 1000, 100000, 4294967295u};
    for (size_t i = 0; i < SL_ARRAY_LEN(attempts); i++) {
        unsigned a = attempts[i];
        /* The usual: a cap of a minute. */
        ASSERT_EQ(sl_backoff_ms(a, 1000, 60000, 60000), 60000);
        ASSERT_EQ(sl_backoff_ms(a, 1000, 60000, UINT64_MAX),
                  (int64_t)(UINT64_MAX % 60001));
        /* No cap to speak of: the ceiling must stop at the cap, not
         * wrap to a negative number on the way. */
        for (int k = 0; k < 100; k++) {
            int64_t d = sl_backoff_ms(a, 1000, INT64_MAX, sl_random(&rng));
            ASSERT_GE(d, 0);
        }
        ASSERT_EQ(sl_backoff_ms(a, 1000, INT64_MAX, (uint64_t)INT64_MAX),
                  INT64_MAX);
        ASSERT_EQ(sl_backoff_ms(a, 3, INT64_MAX - 1, UINT64_MAX),
                  (int64_t)(UINT64_MAX % (uint64_t)INT64_MAX));
    }
}

TEST(backoff_without_a_base_or_cap_is_zero)
{
    ASSERT_EQ(sl_backoff_ms(1, 0, 60000, 12345), 0);
    ASSERT_EQ(sl_backoff_ms(30, 0, 60000, 12345), 0);
    ASSERT_EQ(sl_backoff_ms(3, 1000, 0, 12345), 0);
}

TEST(the_jitter_source_is_not_constant)
{
    uint64_t a = 1, b = 2;
    uint64_t first = sl_random(&a);
    ASSERT(first != sl_random(&a));
    ASSERT(first != sl_random(&b));
    /* The same seed gives the same sequence. */
    uint64_t c = 1;
    ASSERT(first == sl_random(&c));
}

/* ---- Retry-After ---- */

static int64_t
retry_after_ok(const char *value, int64_t now_ms)
{
    int64_t until = -1;
    if (!sl_retry_after(value, now_ms, &until))
        TEST_FAIL_("Retry-After \"%s\" was refused", value);
    return until;
}

TEST(retry_after_delta_seconds)
{
    const int64_t now = 1700000000000LL;
    ASSERT_EQ(retry_after_ok("0", now), now);
    ASSERT_EQ(retry_after_ok("1", now), now + 1000);
    ASSERT_EQ(retry_after_ok("120", now), now + 120000);
    ASSERT_EQ(retry_after_ok(" 5 ", now), now + 5000);
    ASSERT_EQ(retry_after_ok("\t30\r\n", now), now + 30000);
    ASSERT_EQ(retry_after_ok("007", now), now + 7000);
    ASSERT_EQ(retry_after_ok("86400", now), now + DAY_MS);
}

TEST(retry_after_http_dates)
{
    /* Ten seconds before the date: wait until exactly then. */
    const int64_t now = RFC_EXAMPLE_MS - 10000;
    ASSERT_EQ(retry_after_ok("Sun, 06 Nov 1994 08:49:37 GMT", now),
              RFC_EXAMPLE_MS);
    ASSERT_EQ(retry_after_ok("Sunday, 06-Nov-94 08:49:37 GMT", now),
              RFC_EXAMPLE_MS);
    ASSERT_EQ(retry_after_ok("Sun Nov  6 08:49:37 1994", now), RFC_EXAMPLE_MS);
    ASSERT_EQ(retry_after_ok("  Sun, 06 Nov 1994 08:49:38 GMT", now),
              RFC_EXAMPLE_MS + 1000);
}

TEST(retry_after_a_date_in_the_past_means_now)
{
    const int64_t now = 1700000000000LL;
    ASSERT_EQ(retry_after_ok("Sun, 06 Nov 1994 08:49:37 GMT", now), now);
    ASSERT_EQ(retry_after_ok("Sun Nov  6 08:49:37 1994", now), now);
    /* The very moment is not in the future either. */
    ASSERT_EQ(retry_after_ok("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE_MS),
              RFC_EXAMPLE_MS);
}

TEST(retry_after_garbage_is_refused)
{
    static const char *const bad[] = {
        "soon", "-5",  "1.5",      "",    "120abc", "   ", "+5",
        "0x10", "5 5", "tomorrow", "Sun", "GMT",    "1e3", "\xff\xfe"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        int64_t until = -42;
        if (sl_retry_after(bad[i], 1000, &until))
            TEST_FAIL_("Retry-After \"%s\" accepted (until %lld)", bad[i],
                       (long long)until);
    }
}

TEST(retry_after_huge_values_are_clamped)
{
    const int64_t now = 1700000000000LL;
    /* Exactly the limit, just over it, and far past any integer type. */
    ASSERT_EQ(retry_after_ok("31622400", now), now + YEAR_MS);
    ASSERT_EQ(retry_after_ok("31622401", now), now + YEAR_MS);
    ASSERT_EQ(retry_after_ok("99999999999999999999999999999999", now),
              now + YEAR_MS);
    ASSERT_EQ(retry_after_ok("31622399", now), now + YEAR_MS - 1000);
    /* The same wait spelled as a date is held to the same limit: an
     * origin cannot park itself until the year 9999. */
    ASSERT_EQ(retry_after_ok("Fri, 31 Dec 9999 23:59:59 GMT", now),
              now + YEAR_MS);
    /* A date within the limit is kept as it is. */
    ASSERT_EQ(retry_after_ok("Sun, 06 Nov 1994 08:49:37 GMT",
                             RFC_EXAMPLE_MS - DAY_MS),
              RFC_EXAMPLE_MS);
}
