/*
 * The fetcher: libcurl's multi interface driving many transfers from one
 * thread. It knows nothing of records or caps: the run loop decides what
 * to start and when; the fetcher starts it at once, streams the body to
 * the owner's callback, and reports each transfer when it ends.
 */
#ifndef SL_FETCH_H
#define SL_FETCH_H

#include <stdbool.h>
#include <stdint.h>

#include "guard.h"
#include "../util.h"

typedef struct sl_fetcher sl_fetcher;
typedef struct sl_transfer sl_transfer;

/*
 * Body bytes for `owner`, as they arrive. `status` is the response's HTTP
 * status. Return false to abort the transfer.
 */
typedef bool sl_body_fn(void *owner, int status, const char *data,
                        size_t len);

typedef struct {
    long connect_timeout_ms;
    long timeout_ms;
    long stall_timeout_s; /* abort when nothing arrives for this long */
    uint64_t max_bytes;   /* refuse a Content-Length above this */
    const sl_guard *guard;
    sl_body_fn *on_body;
} sl_fetch_opts;

/* What a finished transfer tells. Strings are owned by the struct. */
typedef struct {
    void *owner;
    int curl_code;     /* CURLcode */
    char curl_error[256];
    int http_status;   /* 0 if no response */
    int64_t content_length; /* -1 if not given */
    char content_type[128];
    char etag[256];
    char retry_after[64];
    char *location;    /* sl_free() it; NULL if none */
    char refused[128]; /* why the URL policy refused, or "" */
} sl_fetch_result;

sluice_err sl_fetcher_new(const sl_fetch_opts *opts, sl_fetcher **out);
void sl_fetcher_free(sl_fetcher *f);

/* Start fetching `url` for `owner` now. NULL only when out of memory. */
sl_transfer *sl_fetcher_start(sl_fetcher *f, const char *url, void *owner);

/* Abort a transfer that has not ended; it will not be reported. */
void sl_fetcher_abort(sl_fetcher *f, sl_transfer *t);

/*
 * Wait up to timeout_ms for network activity or a libcurl timer (or for
 * `extra_fd`, if not -1, to become readable), then move along the
 * transfers whose sockets are ready or whose timers are due.
 */
void sl_fetcher_run(sl_fetcher *f, int timeout_ms, int extra_fd);

/* The next finished transfer, if any; fills *res (free res->location). */
bool sl_fetcher_next_done(sl_fetcher *f, sl_fetch_result *res);

/* Transfers running now. */
unsigned sl_fetcher_running(const sl_fetcher *f);

#endif /* SL_FETCH_H */
