/*
 * The shared files AWS's tools read (credentials.h): where they are, the
 * profile in use, a setting of it, and its credential_process.
 */
#ifndef SL_AWS_PROFILE_H
#define SL_AWS_PROFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "credentials.h"

typedef struct {
    char name[128];         /* AWS_PROFILE, else "default" */
    bool named;             /* AWS_PROFILE was set */
    char credentials[1024]; /* AWS_SHARED_CREDENTIALS_FILE, else ~/... */
    char config[1024];      /* AWS_CONFIG_FILE, else ~/.aws/config */
} sl_aws_profile;

/* The profile in use and the files, from the environment. */
void sl_aws_profile_locate(sl_aws_profile *p);

/*
 * The setting `key` of the profile: in the credentials file's [NAME]
 * section first, then in the config file's [profile NAME] ([default] for
 * the default profile). *where names the file it came from. False when
 * neither has it (or neither can be read).
 */
bool sl_aws_profile_get(const sl_aws_profile *p, const char *key,
                        char *value, size_t size, const char **where);

/* Whether either file has a section for the profile. */
bool sl_aws_profile_exists(const sl_aws_profile *p);

/*
 * Run `command` (through /bin/sh) and read the credentials it prints, as
 * the AWS CLI's credential_process does: {"Version": 1, "AccessKeyId",
 * "SecretAccessKey", optional "SessionToken" and "Expiration"}. Its
 * standard error goes to ours.
 */
sluice_err sl_aws_credential_process(const char *command, sl_aws_creds *out,
                                     char *why, size_t why_size);

#endif /* SL_AWS_PROFILE_H */
