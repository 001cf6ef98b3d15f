/*
 * One HTTP exchange for the credential sources that ask a service (STS,
 * the container endpoint, the instance metadata service): libcurl's easy
 * interface, a timeout on every try, a few tries on a failure to connect
 * or a 5xx, and the answer's status and body (bounded) for the source to
 * judge.
 */
#ifndef SL_AWS_HTTP_H
#define SL_AWS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "../util.h"
#include "sluice/sluice.h"

/* The most of an answer kept: credentials are a few kilobytes. */
#define SL_AWS_HTTP_MAX (64 * 1024)

typedef struct {
    const char *method;         /* "GET", "PUT" or "POST" */
    const char *url;            /* http or https */
    const char *const *headers; /* "Name: value" lines, NULL-ended; or NULL */
    const char *body;           /* sent as is; NULL: none */
    long connect_ms;            /* to connect, per try */
    long total_ms;              /* the whole of one try */
    int attempts;               /* tries, at least 1 */
    bool direct;                /* never through a proxy (link-local,
                                   loopback services) */
} sl_aws_http_req;

typedef struct {
    long status;    /* the last try's HTTP status */
    sl_buf body;    /* its body, NUL-terminated ("" when none) */
    char brief[80]; /* when no answer came: libcurl's short reason */
} sl_aws_http_resp;

/*
 * Send `req`, trying again (after a short pause) when no answer came or
 * the answer was a 5xx, up to req->attempts tries. SLUICE_OK when an
 * answer came, whatever its status: resp holds it, and the caller frees
 * resp->body (also on failure). Otherwise SLUICE_ETIMEOUT (a try timed
 * out), SLUICE_ENETWORK (refused, unreachable, reset) or SLUICE_ENOMEM,
 * with libcurl's reason in `why`. AWS_CA_BUNDLE, when set, is the CA
 * file for https.
 */
sluice_err sl_aws_http(const sl_aws_http_req *req, sl_aws_http_resp *resp,
                       char *why, size_t why_size);

/* Read a small text file (a token) whole, trailing blanks and newlines
 * dropped. False with the reason in `why` when it cannot be read, is
 * empty or larger than `size` - 1. */
bool sl_aws_read_token(const char *path, char *out, size_t size, char *why,
                       size_t why_size);

#endif /* SL_AWS_HTTP_H */
