/*
 * The credential chain (credentials.h): each source in AWS's order, the
 * first that has credentials wins; they are kept until SL_AWS_REFRESH_MS
 * before they expire, then found again. The sources that ask a service
 * live in their own files (sources.h: sts.c, container.c, imds.c).
 */
#define _GNU_SOURCE /* strptime, timegm */
#include "credentials.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yajl/yajl_tree.h>

#include "../json.h"
#include "../util.h"
#include "profile.h"
#include "sources.h"

struct sl_aws_chain {
    pthread_mutex_t lock;
    bool have;
    sl_aws_creds creds;
    int64_t refresh_ms; /* renew this long before they expire */
    int64_t retry_ms;   /* after a failed renewal, ask again this late */
    int64_t retry_at;   /* after a failed renewal: not again before */
};

sl_aws_chain *
sl_aws_chain_new(void)
{
    sl_aws_chain *c = sl_calloc(1, sizeof *c);
    if (c) {
        pthread_mutex_init(&c->lock, NULL);
        c->refresh_ms = SL_AWS_REFRESH_MS;
        c->retry_ms = SL_AWS_RETRY_MS;
    }
    return c;
}

void
sl_aws_chain_set_timing(sl_aws_chain *c, int64_t refresh_ms,
                        int64_t retry_ms)
{
    pthread_mutex_lock(&c->lock);
    c->refresh_ms = refresh_ms;
    c->retry_ms = retry_ms;
    pthread_mutex_unlock(&c->lock);
}

void
sl_aws_chain_free(sl_aws_chain *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->lock);
    /* The secrets do not outlive the chain in freed memory. */
    memset(&c->creds, 0, sizeof c->creds);
    sl_free(c);
}

bool
sl_aws_parse_time(const char *text, int64_t *ms)
{
    struct tm tm = {0};
    const char *rest = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        return false;
    if (*rest == '.') /* fractions of a second: dropped */
        for (rest++; *rest >= '0' && *rest <= '9'; rest++)
            ;
    if (strcmp(rest, "Z") != 0 && strcmp(rest, "+00:00") != 0 &&
        strcmp(rest, "UTC") != 0)
        return false;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    *ms = (int64_t)t * 1000;
    return true;
}

/* The environment's credentials: 1 found, 0 none, -1 half of them. */
static int
from_env(sl_aws_creds *out, char *why, size_t why_size)
{
    const char *key = sl_env("AWS_ACCESS_KEY_ID");
    const char *secret = sl_env("AWS_SECRET_ACCESS_KEY");
    if (!key && !secret)
        return 0;
    if (!key || !secret) {
        sl_fmt(why, why_size, "%s is set but %s is not",
               key ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
               key ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
        return -1;
    }
    const char *token = sl_env("AWS_SESSION_TOKEN");
    sl_copy(out->access_key, sizeof out->access_key, key);
    sl_copy(out->secret_key, sizeof out->secret_key, secret);
    sl_copy(out->session_token, sizeof out->session_token,
            token ? token : "");
    out->expires_ms = 0;
    sl_copy(out->source, sizeof out->source, "the environment");
    return 1;
}

/* The profile's credentials: its keys, else its credential_process.
 * 1 found, 0 none, -1 an error (why set). */
static int
from_profile(sl_aws_creds *out, char *why, size_t why_size)
{
    sl_aws_profile p;
    sl_aws_profile_locate(&p);
    if (!sl_aws_profile_exists(&p)) {
        if (!p.named)
            return 0;
        sl_fmt(why, why_size, "AWS_PROFILE=%s: no such profile in %s or %s",
               p.name, p.credentials, p.config);
        return -1;
    }
    char key[sizeof out->access_key], secret[sizeof out->secret_key];
    const char *where, *secret_where;
    bool has_key = sl_aws_profile_get(&p, "aws_access_key_id", key,
                                      sizeof key, &where);
    bool has_secret = sl_aws_profile_get(&p, "aws_secret_access_key",
                                         secret, sizeof secret,
                                         &secret_where);
    if (has_key && has_secret) {
        const char *token_where;
        if (!sl_aws_profile_get(&p, "aws_session_token", out->session_token,
                                sizeof out->session_token, &token_where))
            out->session_token[0] = '\0';
        sl_copy(out->access_key, sizeof out->access_key, key);
        sl_copy(out->secret_key, sizeof out->secret_key, secret);
        out->expires_ms = 0;
        sl_fmt(out->source, sizeof out->source, "profile %s in %s", p.name,
               where);
        memset(secret, 0, sizeof secret);
        return 1;
    }
    if (has_key || has_secret) {
        sl_fmt(why, why_size, "profile %s in %s: %s without %s", p.name,
               has_key ? where : secret_where,
               has_key ? "aws_access_key_id" : "aws_secret_access_key",
               has_key ? "aws_secret_access_key" : "aws_access_key_id");
        return -1;
    }
    char command[4096];
    if (sl_aws_profile_get(&p, "credential_process", command, sizeof command,
                           &where)) {
        char reason[300];
        if (sl_aws_credential_process(command, out, reason, sizeof reason) !=
            SLUICE_OK) {
            sl_fmt(why, why_size, "profile %s in %s: credential_process: %s",
                   p.name, where, reason);
            return -1;
        }
        sl_fmt(out->source, sizeof out->source,
               "profile %s's credential_process", p.name);
        return 1;
    }
    /* A role_arn with a web identity token file is web identity's (the
     * next source); with other credentials to assume it with, it is not
     * supported. */
    char role[256];
    if (sl_aws_profile_get(&p, "role_arn", role, sizeof role, &where) &&
        !sl_aws_web_identity_configured()) {
        sl_fmt(why, why_size,
               "profile %s in %s: role_arn (assuming a role) is not "
               "supported yet but with web_identity_token_file; give keys, "
               "a credential_process or a web identity token file",
               p.name, where);
        return -1;
    }
    /* Nothing here: the sources after the profile may have some (a
     * profile that only sets the region, on an instance with a role). */
    return 0;
}

/* The sources after the environment and the profile, in order. */
static int (*const service_sources[])(sl_aws_creds *, char *, size_t) = {
    sl_aws_from_web_identity, sl_aws_from_container, sl_aws_from_imds};

/* Find credentials anew. */
static sluice_err
find(sl_aws_creds *out, char *why, size_t why_size)
{
    memset(out, 0, sizeof *out);
    int found = from_env(out, why, why_size);
    if (found == 0)
        found = from_profile(out, why, why_size);
    /* What each source that had none looked for, for the last line. */
    char looked[SL_ARRAY_LEN(service_sources)][300];
    for (size_t i = 0; found == 0 && i < SL_ARRAY_LEN(service_sources);
         i++) {
        looked[i][0] = '\0';
        found = service_sources[i](out, looked[i], sizeof looked[i]);
        if (found < 0)
            sl_copy(why, why_size, looked[i]);
    }
    if (found > 0)
        return SLUICE_OK;
    if (found == 0) {
        sl_aws_profile p;
        sl_aws_profile_locate(&p);
        sl_fmt(why, why_size,
               "no AWS credentials: none in the environment "
               "(AWS_ACCESS_KEY_ID) nor for profile %s in %s or %s; %s; "
               "%s; %s",
               p.name, p.credentials, p.config, looked[0], looked[1],
               looked[2]);
    }
    return SLUICE_ECONFIG;
}

sluice_err
sl_aws_chain_get(sl_aws_chain *c, sl_aws_creds *out, char *why,
                 size_t why_size)
{
    pthread_mutex_lock(&c->lock);
    int64_t now = sl_now_ms();
    bool fresh = c->have && (c->creds.expires_ms == 0 ||
                             now < c->creds.expires_ms - c->refresh_ms);
    /* A renewal failed a moment ago and the old ones still hold: they
     * serve without asking again, so that a service that is down costs
     * its timeouts to one caller every retry_ms, not to every caller. */
    bool waiting = c->have && now < c->retry_at && now < c->creds.expires_ms;
    sluice_err rc = SLUICE_OK;
    if (!fresh && !waiting) {
        sl_aws_creds found;
        rc = find(&found, why, why_size);
        if (rc == SLUICE_OK) {
            c->creds = found;
            c->have = true;
            c->retry_at = 0;
        } else if (c->have && now < c->creds.expires_ms) {
            rc = SLUICE_OK; /* the old ones serve until they expire */
            c->retry_at = sl_now_ms() + c->retry_ms;
        } else if (c->have) {
            c->have = false;
        }
        memset(&found, 0, sizeof found);
    }
    if (rc == SLUICE_OK)
        *out = c->creds;
    pthread_mutex_unlock(&c->lock);
    return rc;
}

bool
sl_aws_region(char *out, size_t size)
{
    const char *v = sl_env("AWS_REGION");
    if (!v)
        v = sl_env("AWS_DEFAULT_REGION");
    if (v) {
        sl_copy(out, size, v);
        return true;
    }
    sl_aws_profile p;
    const char *where;
    sl_aws_profile_locate(&p);
    /* The region is a setting of the config file only. */
    sl_copy(p.credentials, sizeof p.credentials, "/nonexistent");
    return sl_aws_profile_get(&p, "region", out, size, &where);
}

sluice_err
sl_aws_creds_from_json(const char *text, sl_aws_json_form form,
                       sl_aws_creds *out, char *why, size_t why_size)
{
    bool process = form == SL_AWS_JSON_PROCESS;
    const char *noun = process ? "output" : "answer";
    char err[200];
    /* An answer is two levels deep; a deeper one is refused before its
     * tree is built (sl_json_too_deep). */
    if (sl_json_too_deep(text, strlen(text), 16) != 0) {
        sl_fmt(why, why_size, "its %s nests too deeply", noun);
        return SLUICE_ECONFIG;
    }
    yajl_val tree = yajl_tree_parse(text, err, sizeof err);
    if (!tree || !YAJL_IS_OBJECT(tree)) {
        sl_fmt(why, why_size, "its %s is not a JSON object", noun);
        yajl_tree_free(tree);
        return SLUICE_ECONFIG;
    }
    const char *vpath[] = {"Version", NULL};
    yajl_val version = yajl_tree_get(tree, vpath, yajl_t_number);
    const char *code = sl_json_member_str(tree, "Code");
    const char *key = sl_json_member_str(tree, "AccessKeyId");
    const char *secret = sl_json_member_str(tree, "SecretAccessKey");
    const char *token =
        sl_json_member_str(tree, process ? "SessionToken" : "Token");
    const char *expiration = sl_json_member_str(tree, "Expiration");
    sluice_err rc = SLUICE_ECONFIG;
    if (process && (!version || !YAJL_IS_INTEGER(version) ||
                    YAJL_GET_INTEGER(version) != 1))
        sl_fmt(why, why_size, "its output has no \"Version\": 1");
    else if (!process && code && strcmp(code, "Success") != 0)
        sl_fmt(why, why_size, "its answer's Code is \"%.60s\"", code);
    else if (!key || !*key || !secret || !*secret)
        sl_fmt(why, why_size,
               "its %s lacks \"AccessKeyId\" or \"SecretAccessKey\"", noun);
    else if (strlen(key) >= sizeof out->access_key ||
             strlen(secret) >= sizeof out->secret_key ||
             (token && strlen(token) >= sizeof out->session_token))
        sl_fmt(why, why_size, "its %s holds a key or token too long", noun);
    else if (expiration && !sl_aws_parse_time(expiration, &out->expires_ms))
        sl_fmt(why, why_size,
               "its \"Expiration\" \"%.40s\" is not an ISO 8601 time",
               expiration);
    else
        rc = SLUICE_OK;
    if (rc == SLUICE_OK) {
        sl_copy(out->access_key, sizeof out->access_key, key);
        sl_copy(out->secret_key, sizeof out->secret_key, secret);
        sl_copy(out->session_token, sizeof out->session_token,
                token ? token : "");
        if (!expiration)
            out->expires_ms = 0;
    }
    yajl_tree_free(tree);
    return rc;
}
