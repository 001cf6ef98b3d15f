/*
 * A loopback peer for the credential tests (test_aws_creds.c), on
 * libmicrohttpd: AWS STS's AssumeRoleWithWebIdentity (form POST or query
 * GET, XML answers and errors as STS writes them), a container
 * credentials endpoint (/v2/credentials/...) that checks the
 * Authorization header, and the instance metadata service with IMDSv2
 * (a token by PUT, GETs refused without it). It counts every call.
 */
#ifndef SLUICE_AWS_PEER_H
#define SLUICE_AWS_PEER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct aws_peer aws_peer;

typedef struct {
    int sts;               /* AssumeRoleWithWebIdentity calls */
    int sts_issued;        /* ... that were answered with credentials */
    int container;         /* container endpoint calls */
    int container_issued;  /* ... answered with credentials */
    int imds_token;        /* token PUTs */
    int imds_get;          /* metadata GETs */
    int imds_unauthorized; /* ... refused for a missing or bad token (401) */
    int imds_issued;       /* ... answered with credentials */
} aws_peer_counts;

/*
 * A peer on 127.0.0.1 at a free port, answering credentials that expire
 * in an hour, for web token "web-token-1", role
 * "arn:aws:iam::123456789012:role/sluice", container Authorization
 * "ctr-auth-1" and instance role "sluice-role". Without libmicrohttpd the
 * calling case is skipped (fails with SLUICE_TEST_NO_SKIP=1).
 */
aws_peer *aws_peer_start(void);
/* Stop it (suspended calls are let go first) and free it. */
void aws_peer_free(aws_peer *p);

/* "http://127.0.0.1:PORT" followed by `path`. */
void aws_peer_url(const aws_peer *p, const char *path, char *out, size_t size);

/* What it expects and answers; safe while it serves. */
void aws_peer_set_web_token(aws_peer *p, const char *token);
void aws_peer_set_role_arn(aws_peer *p, const char *arn);
void aws_peer_set_container_auth(aws_peer *p, const char *value);
void aws_peer_set_instance_role(aws_peer *p, const char *role); /* "": none */
void aws_peer_set_expiry(aws_peer *p, int seconds);
/* Every call answered with this status (an outage); 0: none. */
void aws_peer_set_fail(aws_peer *p, int status);
/* Every call left unanswered, until aws_peer_free. */
void aws_peer_set_hang(aws_peer *p, bool hang);

aws_peer_counts aws_peer_get_counts(aws_peer *p);
/* The RoleSessionName of the last AssumeRoleWithWebIdentity. */
void aws_peer_last_session(aws_peer *p, char *out, size_t size);

#endif /* SLUICE_AWS_PEER_H */
