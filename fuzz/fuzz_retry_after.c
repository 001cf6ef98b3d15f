/*
 * libFuzzer harness: the Retry-After parser (sl_retry_after in
 * lib/run/retry.c: delta-seconds, or an HTTP-date through curl_getdate). An
 * accepted value is a time no earlier than now and at most the clamp (a
 * year) later. sl_classify and sl_backoff_ms run on the input's bytes.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common.h"
#include "backoff.h"
#include "run/retry.h"

/* retry.c's clamp on any wait: a year. */
#define MAX_WAIT_MS (366LL * 86400 * 1000)

static void
check_at(const char *value, int64_t now_ms)
{
    int64_t until = 0, again = 0;
    bool ok = sl_retry_after(value, now_ms, &until);
    FUZZ_CHECK(
        ok == sl_retry_after(value, now_ms, &again) && (!ok || until == again),
        "Retry-After %s: two calls disagree", fuzz_show(value, strlen(value)));

    const char *v = value;
    while (isspace((unsigned char)*v))
        v++;
    size_t digits = strspn(v, "0123456789");
    size_t rest = digits + strspn(v + digits, " \t\n\v\f\r");
    if (digits > 0) {
        /* delta-seconds: exactly that long, clamped; nothing after. */
        FUZZ_CHECK(ok == (v[rest] == '\0'), "Retry-After %s: %s",
                   fuzz_show(value, strlen(value)),
                   ok ? "accepted" : "refused");
        if (ok) {
            int64_t secs = 0;
            for (size_t i = 0; i < digits && secs * 1000 < MAX_WAIT_MS; i++)
                secs = secs * 10 + (v[i] - '0');
            int64_t wait = SL_MIN(secs * 1000, MAX_WAIT_MS);
            FUZZ_CHECK(until == now_ms + wait,
                       "Retry-After %s at %lld: until %lld, want %lld",
                       fuzz_show(value, strlen(value)), (long long)now_ms,
                       (long long)until, (long long)(now_ms + wait));
        }
    } else {
        /* An HTTP-date: whatever curl_getdate() can read. */
        FUZZ_CHECK(ok == (*v && curl_getdate(v, NULL) != -1),
                   "Retry-After %s: %s, curl_getdate says %lld",
                   fuzz_show(value, strlen(value)), ok ? "accepted" : "refused",
                   (long long)curl_getdate(v, NULL));
    }
    if (ok)
        FUZZ_CHECK(until >= now_ms && until - now_ms <= MAX_WAIT_MS,
                   "Retry-After %s at %lld: until %lld",
                   fuzz_show(value, strlen(value)), (long long)now_ms,
                   (long long)until);
}

/* Byte i of the input, going round; 0 for an empty input. */
static unsigned
byte_at(const uint8_t *data, size_t size, size_t i)
{
    return size ? data[i % size] : 0;
}

static void
check_classify(const uint8_t *data, size_t size)
{
    sl_attempt a = {
        .error =
            (sl_xfer_error)(byte_at(data, size, 0) % (SL_XFER_NETWORK + 1)),
        .http_status =
            (int)(byte_at(data, size, 1) << 8 | byte_at(data, size, 2)) % 1000,
        .has_location = byte_at(data, size, 3) & 1,
        .too_large = byte_at(data, size, 3) & 2,
        .refused = byte_at(data, size, 3) & 4,
        .short_body = byte_at(data, size, 3) & 8,
    };
    sl_error_class got = SL_CLASS_COUNT_; /* unset */
    sl_outcome o = sl_classify(&a, &got);
    const char *cls = sl_error_class_name(got);
    FUZZ_CHECK(o == SL_OUTCOME_DONE || o == SL_OUTCOME_REDIRECT ||
                   o == SL_OUTCOME_RETRY || o == SL_OUTCOME_THROTTLE ||
                   o == SL_OUTCOME_DEAD,
               "outcome %d", (int)o);
    /* The outcome policy describes every failure by its class. */
    FUZZ_CHECK(o == SL_OUTCOME_DONE || o == SL_OUTCOME_REDIRECT
                   ? cls == NULL
                   : cls != NULL && *cls,
               "error %d, status %d: outcome %d with class %s", (int)a.error,
               a.http_status, (int)o, cls ? cls : "(none)");
    if (a.refused)
        FUZZ_CHECK(o == SL_OUTCOME_DEAD, "a refused URL is not dead");
    if (o == SL_OUTCOME_DONE)
        FUZZ_CHECK(a.error == SL_XFER_OK && a.http_status >= 200 &&
                       a.http_status < 300 && !a.short_body,
                   "error %d, status %d is done", (int)a.error, a.http_status);
    if (o == SL_OUTCOME_THROTTLE)
        FUZZ_CHECK(a.http_status == 429 || a.http_status == 503,
                   "status %d throttles", a.http_status);
}

static void
check_backoff(const uint8_t *data, size_t size)
{
    unsigned attempt = byte_at(data, size, 4);
    int64_t base =
        (int64_t)(byte_at(data, size, 5) << 8 | byte_at(data, size, 6)) - 1000;
    int64_t cap = (int64_t)byte_at(data, size, 7) << 16 |
                  byte_at(data, size, 8) << 8 | byte_at(data, size, 9);
    uint64_t random = 0;
    for (size_t i = 0; i < 8; i++)
        random = random << 8 | byte_at(data, size, 10 + i);
    int64_t ms = sl_backoff_ms(attempt, base, cap, random);
    /* base * 2^(attempt - 1), where that fits. */
    unsigned doublings = attempt > 41 ? 40 : attempt ? attempt - 1 : 0;
    int64_t ceiling = SL_MAX(base, 0) * ((int64_t)1 << doublings);
    FUZZ_CHECK(ms >= 0 && ms <= SL_MAX(cap, 0) && ms <= ceiling,
               "backoff(%u, %lld, %lld) = %lld", attempt, (long long)base,
               (long long)cap, (long long)ms);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A header value is a string: it ends at a NUL. */
    char *value = malloc(size + 1);
    FUZZ_CHECK(value, "no memory");
    memcpy(value, data, size);
    value[size] = '\0';

    /* The epoch, RFC 7231's example date (1994), 2023 and 2100. */
    static const int64_t nows[] = {0, 784111777000, 1700000000000,
                                   4102444800000};
    for (size_t i = 0; i < SL_ARRAY_LEN(nows); i++)
        check_at(value, nows[i]);
    check_at(value, sl_now_ms());
    free(value);

    check_classify(data, size);
    check_backoff(data, size);
    return 0;
}
