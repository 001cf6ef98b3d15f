/*
 * The shared files (~/.aws/credentials, ~/.aws/config) as the AWS CLI
 * reads them: INI sections, `key = value` lines, `#` and `;` comments,
 * indented lines belonging to a nested setting (skipped). And
 * credential_process: a command that prints the credentials as JSON.
 */
#define _GNU_SOURCE /* popen, pclose, "e" (close-on-exec) */
#include "profile.h"
#include "sources.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>


#include "../util.h"

/* What a credential_process may print, at most. */
#define PROCESS_OUTPUT_MAX (64 * 1024)

static void
home_file(char *out, size_t size, const char *var, const char *rel)
{
    const char *v = getenv(var);
    if (v && *v) {
        sl_copy(out, size, v);
        return;
    }
    const char *home = getenv("HOME");
    sl_fmt(out, size, "%s/%s", home && *home ? home : ".", rel);
}

void
sl_aws_profile_locate(sl_aws_profile *p)
{
    const char *name = getenv("AWS_PROFILE");
    p->named = name && *name;
    sl_copy(p->name, sizeof p->name, p->named ? name : "default");
    home_file(p->credentials, sizeof p->credentials,
              "AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    home_file(p->config, sizeof p->config, "AWS_CONFIG_FILE",
              ".aws/config");
}

static char *
trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Whether the section header `head` (between the brackets, trimmed) is
 * the profile's: in the config file "profile NAME", or "default". */
static bool
is_section(const char *head, const char *name, bool config)
{
    if (!config || strcmp(name, "default") == 0)
        if (strcmp(head, name) == 0)
            return true;
    if (config && strncmp(head, "profile", 7) == 0 &&
        isspace((unsigned char)head[7])) {
        const char *rest = head + 8;
        while (isspace((unsigned char)*rest))
            rest++;
        return strcmp(rest, name) == 0;
    }
    return false;
}

/*
 * Look for `key` in the profile's section of `path`. Returns 1 with the
 * value, 0 when the section has no such key, -1 when the file has no
 * such section or cannot be read. With key NULL, whether the section is
 * there (1 or -1).
 */
static int
file_get(const char *path, const char *name, bool config, const char *key,
         char *value, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[8192];
    bool in = false, seen = false;
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        /* A nested setting's lines are indented: not ours. */
        if (isspace((unsigned char)line[0]) && !in)
            continue;
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *end = strchr(s, ']');
            if (end) {
                *end = '\0';
                in = is_section(trim(s + 1), name, config);
                seen |= in;
            }
            continue;
        }
        if (!in || !key || isspace((unsigned char)line[0]))
            continue;
        char *eq = strchr(s, '=');
        if (!eq)
            continue;
        *eq = '\0';
        if (strcasecmp(trim(s), key) == 0) {
            sl_copy(value, size, trim(eq + 1));
            found = 1;
        }
    }
    fclose(f);
    if (found || (!key && seen))
        return 1;
    return seen ? 0 : -1;
}

bool
sl_aws_profile_get(const sl_aws_profile *p, const char *key, char *value,
                   size_t size, const char **where)
{
    if (file_get(p->credentials, p->name, false, key, value, size) == 1) {
        *where = p->credentials;
        return true;
    }
    if (file_get(p->config, p->name, true, key, value, size) == 1) {
        *where = p->config;
        return true;
    }
    return false;
}

bool
sl_aws_profile_exists(const sl_aws_profile *p)
{
    return file_get(p->credentials, p->name, false, NULL, NULL, 0) == 1 ||
           file_get(p->config, p->name, true, NULL, NULL, 0) == 1;
}

/* A string member of the process's object; NULL when absent. */
sluice_err
sl_aws_credential_process(const char *command, sl_aws_creds *out, char *why,
                          size_t why_size)
{
    fflush(NULL);
    FILE *f = popen(command, "re");
    if (!f) {
        sl_fmt(why, why_size, "cannot run it: %s", strerror(errno));
        return SLUICE_ECONFIG;
    }
    sl_buf text;
    sl_buf_init(&text);
    char chunk[4096];
    size_t n;
    bool too_long = false;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (text.len + n > PROCESS_OUTPUT_MAX) {
            too_long = true;
            continue; /* read on, so that it can end */
        }
        if (sl_buf_append(&text, chunk, n) != 0) {
            pclose(f);
            sl_buf_free(&text);
            sl_copy(why, why_size, "out of memory");
            return SLUICE_ENOMEM;
        }
    }
    int status = pclose(f);
    sluice_err rc = SLUICE_ECONFIG;
    if (status == -1)
        sl_fmt(why, why_size, "cannot wait for it: %s", strerror(errno));
    else if (WIFSIGNALED(status))
        sl_fmt(why, why_size, "it was killed by signal %d",
               WTERMSIG(status));
    else if (WEXITSTATUS(status) != 0)
        sl_fmt(why, why_size, "it exited with status %d",
               WEXITSTATUS(status));
    else if (too_long)
        sl_fmt(why, why_size, "it printed more than %d bytes",
               PROCESS_OUTPUT_MAX);
    else
        rc = sl_aws_creds_from_json(text.data ? text.data : "",
                                    SL_AWS_JSON_PROCESS, out, why,
                                  why_size);
    sl_buf_free(&text);
    return rc;
}
