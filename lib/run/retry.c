/*
 * Retry policy: classifying an attempt's outcome, and Retry-After.
 * HTTP-dates are parsed by libcurl's curl_getdate(), which knows all
 * three formats RFC 7231 allows.
 */
#include "retry.h"

#include <ctype.h>
#include <string.h>

#include <curl/curl.h>

/* The longest wait a Retry-After may ask for (a year); longer is clamped. */
#define MAX_WAIT_S (366LL * 86400)

sl_outcome
sl_classify(const sl_attempt *a, sl_error_class *error_class)
{
    *error_class = SL_CLASS_NONE;
    if (a->refused) {
        *error_class = SL_CLASS_POLICY;
        return SL_OUTCOME_DEAD;
    }
    if (a->too_large) {
        *error_class = SL_CLASS_TOO_LARGE;
        return SL_OUTCOME_DEAD;
    }
    switch (a->error) {
    case SL_XFER_OK:
        break;
    case SL_XFER_TIMEOUT:
        *error_class = SL_CLASS_TIMEOUT;
        return SL_OUTCOME_RETRY;
    case SL_XFER_PARTIAL:
        *error_class = SL_CLASS_LENGTH;
        return SL_OUTCOME_RETRY;
    case SL_XFER_TOO_LARGE:
        *error_class = SL_CLASS_TOO_LARGE;
        return SL_OUTCOME_DEAD;
    case SL_XFER_BAD_URL:
        /* A URL libcurl refuses is the redirect's fault only when a
         * redirect led to it; on the first hop it is the record's own. */
        *error_class = a->redirected ? SL_CLASS_REDIRECT : SL_CLASS_URL;
        return SL_OUTCOME_DEAD;
    case SL_XFER_TLS:
        /* A certificate that fails verification (or a CA file that
         * cannot serve) fails the same way on every attempt: dead at
         * once, to be replayed by class once the CA or the certificate
         * is mended. A handshake cut short is a network error. */
        *error_class = SL_CLASS_TLS;
        return SL_OUTCOME_DEAD;
    case SL_XFER_PROTOCOL:
        *error_class = SL_CLASS_PROTOCOL;
        return SL_OUTCOME_RETRY;
    case SL_XFER_CONNECT:
    case SL_XFER_ABORTED:
    case SL_XFER_NETWORK:
        *error_class = SL_CLASS_NETWORK;
        return SL_OUTCOME_RETRY;
    }
    if (a->short_body) {
        *error_class = SL_CLASS_LENGTH;
        return SL_OUTCOME_RETRY;
    }
    int s = a->http_status;
    if (s >= 200 && s < 300)
        return SL_OUTCOME_DONE;
    if (s >= 300 && s < 400 && a->has_location &&
        (s == 301 || s == 302 || s == 303 || s == 307 || s == 308))
        return SL_OUTCOME_REDIRECT;
    *error_class = SL_CLASS_HTTP;
    if (s == 429 || s == 503)
        return SL_OUTCOME_THROTTLE;
    if (s == 408 || s >= 500)
        return SL_OUTCOME_RETRY;
    return SL_OUTCOME_DEAD;
}

bool
sl_retry_after(const char *value, int64_t now_ms, int64_t *until_ms)
{
    while (isspace((unsigned char)*value))
        value++;
    if (!*value)
        return false;
    if (isdigit((unsigned char)*value)) {
        int64_t secs = 0;
        const char *p = value;
        for (; isdigit((unsigned char)*p); p++) {
            secs = secs * 10 + (*p - '0');
            if (secs > MAX_WAIT_S) /* more than a year: clamp */
                secs = MAX_WAIT_S;
        }
        while (isspace((unsigned char)*p))
            p++;
        if (*p)
            return false;
        *until_ms = now_ms + secs * 1000;
        return true;
    }
    time_t t = curl_getdate(value, NULL);
    if (t == (time_t)-1)
        return false;
    /* A date is held to the same limit as delta-seconds; clamped in
     * seconds first, as a date far off overflows in milliseconds. */
    int64_t secs = (int64_t)t;
    if (secs > now_ms / 1000 + MAX_WAIT_S)
        secs = now_ms / 1000 + MAX_WAIT_S + 1;
    else if (secs < now_ms / 1000 - 1)
        secs = now_ms / 1000 - 1;
    int64_t ms = secs * 1000;
    if (ms - now_ms > MAX_WAIT_S * 1000)
        ms = now_ms + MAX_WAIT_S * 1000;
    *until_ms = ms > now_ms ? ms : now_ms;
    return true;
}
