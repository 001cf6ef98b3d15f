/*
 * What to do after an attempt: the classification of outcomes (DESIGN.md,
 * "Errors and safety") and the Retry-After header (delta-seconds or
 * HTTP-date). The backoff between attempts is ../backoff.h.
 */
#ifndef SL_RETRY_H
#define SL_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "../failure.h"
#include "fetch.h"

typedef enum {
    SL_OUTCOME_DONE,     /* a body to store */
    SL_OUTCOME_REDIRECT, /* follow Location */
    SL_OUTCOME_RETRY,    /* transient: retry after a backoff */
    SL_OUTCOME_THROTTLE, /* 429/503: pause the origin, no attempt used */
    SL_OUTCOME_DEAD      /* permanent: dead-letter now */
} sl_outcome;

/* What went wrong with a transfer, from the fetcher and the response. */
typedef struct {
    sl_xfer_error error; /* SL_XFER_OK when the transfer completed */
    int http_status;     /* 0 when no response */
    bool has_location;   /* a 3xx came with a Location header */
    bool too_large;      /* the body passed --max-bytes */
    bool refused;        /* the URL policy refused the address */
    bool short_body;     /* fewer bytes than Content-Length */
    bool redirected;     /* the request was a redirect's next hop */
} sl_attempt;

/*
 * Classify an attempt; `error_class` gets its class for every outcome
 * but SL_OUTCOME_DONE and SL_OUTCOME_REDIRECT, which set SL_CLASS_NONE.
 * A throttle is class SL_CLASS_HTTP.
 */
sl_outcome sl_classify(const sl_attempt *a, sl_error_class *error_class);

/*
 * Parse a Retry-After value: delta-seconds ("120") or an HTTP-date
 * ("Fri, 31 Dec 1999 23:59:59 GMT"). On success *until_ms is the wall
 * clock time to wait until (never before now_ms); returns false for a
 * value that is neither.
 */
bool sl_retry_after(const char *value, int64_t now_ms, int64_t *until_ms);

#endif /* SL_RETRY_H */
