/*
 * The credential sources that ask a service, in the chain's order after
 * the environment and the profile (credentials.c): web identity through
 * STS (sts.c), the container endpoint (container.c), the instance
 * metadata service (imds.c). Each returns 1 with `out` filled; 0 when it
 * is not configured or not there, `why` then a few words for the "no
 * AWS credentials" line (what was looked for); -1 when it is configured
 * but failed, `why` then one line naming the source and what was wrong.
 */
#ifndef SL_AWS_SOURCES_H
#define SL_AWS_SOURCES_H

#include <stddef.h>

#include "credentials.h"

int sl_aws_from_web_identity(sl_aws_creds *out, char *why, size_t why_size);
int sl_aws_from_container(sl_aws_creds *out, char *why, size_t why_size);
int sl_aws_from_imds(sl_aws_creds *out, char *why, size_t why_size);

/*
 * Whether the web identity settings are there (a token file, from
 * AWS_WEB_IDENTITY_TOKEN_FILE or the profile): the profile's role_arn is
 * then for web identity, not a role to assume with other credentials.
 */
bool sl_aws_web_identity_configured(void);

/*
 * Credentials as JSON: AccessKeyId, SecretAccessKey, Expiration, and as a
 * container endpoint or the metadata service answers them
 * (SL_AWS_JSON_ENDPOINT) Token and perhaps Code "Success", or as a
 * credential_process prints them (SL_AWS_JSON_PROCESS) SessionToken and
 * "Version": 1. SLUICE_OK, or SLUICE_ECONFIG with what is wrong with its
 * answer (or output) in `why`.
 */
typedef enum { SL_AWS_JSON_ENDPOINT, SL_AWS_JSON_PROCESS } sl_aws_json_form;
sluice_err sl_aws_creds_from_json(const char *text, sl_aws_json_form form,
                                  sl_aws_creds *out, char *why,
                                  size_t why_size);

/*
 * The container endpoint's URL: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
 * on http://169.254.170.2, else AWS_CONTAINER_CREDENTIALS_FULL_URI when
 * its host may be trusted (https, or http to a loopback address or to
 * the ECS and EKS agents' link-local addresses). 1 with the URL, 0 when
 * neither is set, -1 with the reason when the full URI is refused.
 */
int sl_aws_container_url(char *url, size_t size, char *why, size_t why_size);

#endif /* SL_AWS_SOURCES_H */
