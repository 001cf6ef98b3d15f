/*
 * Why an attempt failed: the error classes a dead or retrying record is
 * filed under (DESIGN.md, "Errors and safety"), and the failure the run
 * hands the queue. The classes' names are stored in the queue and shown
 * by `sluice dlq`; the enum and the names come from one list.
 */
#ifndef SL_FAILURE_H
#define SL_FAILURE_H

#define SL_ERROR_CLASS_MAP(XX)                                                 \
    XX(HTTP, "http")           /* a status that is not a success */            \
    XX(NETWORK, "network")     /* connect, reset, nothing received */          \
    XX(TIMEOUT, "timeout")     /* --timeout or --stall-timeout */              \
    XX(LENGTH, "length")       /* a body shorter than its length */            \
    XX(TOO_LARGE, "too_large") /* a body over --max-bytes */                   \
    XX(POLICY, "policy")       /* an address the URL policy refuses */         \
    XX(REDIRECT, "redirect")   /* too many, or to something not a URL */       \
    XX(TLS, "tls")             /* certificate problems */                      \
    XX(PROTOCOL, "protocol")   /* a malformed response */                      \
    XX(THROTTLE, "throttle")   /* 429/503 for longer than --max-age */         \
    XX(STORE, "store")         /* the store could not take the object */    \
    XX(URL, "url")             /* a record's URL libcurl refuses to fetch */

typedef enum {
    SL_CLASS_NONE = 0,
#define SL_CLASS_ENUM_(name, text) SL_CLASS_##name,
    SL_ERROR_CLASS_MAP(SL_CLASS_ENUM_)
#undef SL_CLASS_ENUM_
        SL_CLASS_COUNT_
} sl_error_class;

/* "http" for SL_CLASS_HTTP; NULL for SL_CLASS_NONE or a bad value. */
const char *sl_error_class_name(sl_error_class cls);
/* The class called `name`; SL_CLASS_NONE for none. */
sl_error_class sl_error_class_from_name(const char *name);

/* Why an attempt failed, as the queue records it. */
typedef struct {
    sl_error_class error_class;
    const char *message; /* one line */
    int http_status;     /* 0: no response */
} sl_failure;

#endif /* SL_FAILURE_H */
