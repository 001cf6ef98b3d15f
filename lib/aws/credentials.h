/*
 * AWS credentials as AWS's own tools find them, for the S3 store (and the
 * Kinesis source to come), in this order: the environment
 * (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN); the
 * profile (AWS_PROFILE, else "default") in the shared files
 * (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials, then
 * AWS_CONFIG_FILE, else ~/.aws/config): its keys, or the JSON its
 * credential_process prints; web identity (AWS_WEB_IDENTITY_TOKEN_FILE
 * and AWS_ROLE_ARN, or the profile's web_identity_token_file and
 * role_arn) exchanged with STS's AssumeRoleWithWebIdentity; the container
 * endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI); the
 * instance metadata service with IMDSv2 tokens. Temporary credentials
 * are fetched again five minutes before they expire, so a run of days
 * never signs with expired ones. Assuming a role with other credentials
 * (role_arn with source_profile) and SSO are not read.
 */
#ifndef SL_AWS_CREDENTIALS_H
#define SL_AWS_CREDENTIALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/sluice.h"

typedef struct {
    char access_key[256];
    char secret_key[256];
    char session_token[4096]; /* "" when none */
    int64_t expires_ms;       /* wall clock; 0: never */
    char source[160];         /* where they came from, for messages */
} sl_aws_creds;

/* How long before they expire temporary credentials are fetched again. */
#define SL_AWS_REFRESH_MS (5 * 60 * 1000)
/* After a renewal failed while the old ones still hold, how long they
 * serve before the chain asks again. */
#define SL_AWS_RETRY_MS (10 * 1000)

typedef struct sl_aws_chain sl_aws_chain;

/* A chain that reads nothing yet; NULL when out of memory. */
sl_aws_chain *sl_aws_chain_new(void);
void sl_aws_chain_free(sl_aws_chain *c);

/* Renew `refresh_ms` before expiry instead of SL_AWS_REFRESH_MS, and
 * ask again `retry_ms` after a failed renewal instead of SL_AWS_RETRY_MS
 * (tests, which cannot wait minutes). */
void sl_aws_chain_set_timing(sl_aws_chain *c, int64_t refresh_ms,
                             int64_t retry_ms);

/*
 * The credentials to sign with now: found on the first call, kept, and
 * found again when they are within SL_AWS_REFRESH_MS of expiring (if
 * that fails while the old ones are still valid, the old ones serve,
 * and the chain asks again SL_AWS_RETRY_MS later). Safe from any thread;
 * a call that renews blocks the others for as long as the source takes
 * (each HTTP call is bounded: a few seconds). On failure, `why` says in
 * one line what was wrong and where (a profile that is not there, a
 * credential_process that failed, an STS error code and message, a
 * container endpoint's HTTP status, an instance with no role; nothing
 * found anywhere lists what was tried).
 */
sluice_err sl_aws_chain_get(sl_aws_chain *c, sl_aws_creds *out, char *why,
                            size_t why_size);

/*
 * The region: AWS_REGION, else AWS_DEFAULT_REGION, else the profile's
 * `region` in the config file. False when none is set.
 */
bool sl_aws_region(char *out, size_t size);

/* An ISO 8601 UTC time ("2026-12-06T12:00:00Z", fractions and "+00:00"
 * allowed) as ms since the epoch; false when it is not one. */
bool sl_aws_parse_time(const char *text, int64_t *ms);

#endif /* SL_AWS_CREDENTIALS_H */
