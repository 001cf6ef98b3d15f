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
#include "ratelimit.h"
#include "../util.h"

typedef struct sl_fetcher sl_fetcher;
typedef struct sl_transfer sl_transfer;

/* How a transfer ended, as far as the network goes: libcurl's result
 * codes, translated here so that nothing above the fetcher reads them. */
typedef enum {
    SL_XFER_OK = 0,    /* a complete response (of any status) */
    SL_XFER_TIMEOUT,   /* --timeout or --stall-timeout passed */
    SL_XFER_PARTIAL,   /* the body ended before its Content-Length */
    SL_XFER_TOO_LARGE, /* a Content-Length over max_bytes */
    SL_XFER_BAD_URL,   /* not a URL, or a scheme that is not http(s) */
    SL_XFER_TLS,       /* the peer's certificate, or our CA file */
    SL_XFER_PROTOCOL,  /* a malformed response, or a head over the limit */
    SL_XFER_CONNECT,   /* the connection was refused or not made */
    SL_XFER_ABORTED,   /* the owner's on_body said stop */
    SL_XFER_NETWORK    /* resolving, a reset, nothing received, ... */
} sl_xfer_error;

/* The kind of a libcurl result code (a CURLcode); for the fetcher, and
 * for tests that hold the classification of every code to account. */
sl_xfer_error sl_fetch_error_of(int curl_code);

/*
 * Body bytes for `owner`, as they arrive. `status` is the response's HTTP
 * status. Return false to abort the transfer.
 */
typedef bool sl_body_fn(void *owner, int status, const char *data, size_t len);
/* The request of `owner` leaves now: its connection is made (or reused)
 * and its bytes are about to be written. */
typedef void sl_sent_fn(void *owner);

typedef struct {
    long connect_timeout_ms;
    long timeout_ms;
    long stall_timeout_s; /* abort when nothing arrives for this long */
    uint64_t max_bytes;   /* refuse a Content-Length above this */
    const sl_guard *guard;
    sl_body_fn *on_body;
    sl_sent_fn *on_sent; /* may be NULL */
    /* CA certificates (PEM) that origins' TLS certificates are verified
     * against, instead of the system's; NULL: the system's. */
    const char *ca_file;
    const char *ca_path; /* directories of hashed CA certificates, or NULL */
} sl_fetch_opts;

/* What a finished transfer tells. Strings are owned by the struct. */
typedef struct {
    void *owner;
    sl_xfer_error error;
    char error_text[256];   /* libcurl's words for it, when not SL_XFER_OK */
    int http_status;        /* 0 if no response */
    int64_t content_length; /* -1 if not given */
    char content_type[128];
    char etag[256];
    char retry_after[64];
    char *location;    /* sl_free() it; NULL if none */
    char refused[128]; /* why the URL policy refused, or "" */
    double latency_ms; /* from the start to the first byte; 0: none */
    sl_ratelimit_headers ratelimit; /* the rate-limit fields it carried */
} sl_fetch_result;

sluice_err sl_fetcher_new(const sl_fetch_opts *opts, sl_fetcher **out);

void sl_fetcher_free(sl_fetcher *f);

/* Start fetching `url` for `owner` now. NULL only when out of memory. */
sl_transfer *sl_fetcher_start(sl_fetcher *f, const char *url, void *owner);

/* Abort a transfer that has not ended; it will not be reported. */
void sl_fetcher_abort(sl_fetcher *f, sl_transfer *t);

/* A watched descriptor is readable (or has hung up). */
typedef void sl_watch_fn(void *arg, int fd);

/*
 * Watch `fd` in the fetcher's wait as well: when it is readable,
 * sl_fetcher_run calls fn(arg, fd) (level-triggered: until it is read);
 * fn NULL: the descriptor only ends the wait (its owner reads it on the
 * caller's next turn).
 * Any number of descriptors may be watched (a store's wake pipe, a
 * queue's connection, a listener). SLUICE_ENOMEM, or SLUICE_EINVAL for
 * a descriptor that cannot be watched or is watched already.
 */
sluice_err sl_fetcher_watch(sl_fetcher *f, int fd, sl_watch_fn *fn, void *arg);
/* Stop watching `fd` (before closing it). */
void sl_fetcher_unwatch(sl_fetcher *f, int fd);

/*
 * Wait up to timeout_ms for network activity, a libcurl timer or a
 * watched descriptor, then move along the transfers whose sockets are
 * ready or whose timers are due, and call back the watchers of the
 * descriptors that are readable: sl_fetcher_wait, then
 * sl_fetcher_dispatch.
 */
void sl_fetcher_run(sl_fetcher *f, double timeout_ms);
/* The two halves, for a caller with something to do between waking up
 * and moving the transfers along (aborting those past a deadline: a
 * process that was stopped must not act on a transfer it no longer
 * holds a slot for). */
void sl_fetcher_wait(sl_fetcher *f, double timeout_ms);
void sl_fetcher_dispatch(sl_fetcher *f);

/* The next finished transfer, if any; fills *res (free res->location). */
bool sl_fetcher_next_done(sl_fetcher *f, sl_fetch_result *res);

/* Transfers running now. */
unsigned sl_fetcher_running(const sl_fetcher *f);

#endif /* SL_FETCH_H */
