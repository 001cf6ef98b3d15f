/*
 * The instance metadata service with IMDSv2 (sources.h): a session token
 * by PUT, then the instance's role and its credentials by GET with that
 * token. Short timeouts and few tries, so that a machine that is not an
 * EC2 instance learns it in about two seconds.
 */
#include "sources.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../util.h"
#include "http.h"

#define ROLES_PATH "/latest/meta-data/iam/security-credentials/"

/* The service's base URL, without a trailing '/'. */
static void
imds_endpoint(char *out, size_t size)
{
    const char *v = sl_env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (!v) {
        const char *mode = sl_env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
        v = mode && strcasecmp(mode, "IPv6") == 0 ? "http://[fd00:ec2::254]"
                                                  : "http://169.254.169.254";
    }
    sl_copy(out, size, v);
    size_t n = strlen(out);
    while (n && out[n - 1] == '/')
        out[--n] = '\0';
}

/* A positive whole number from the environment, else `dflt`. */
static long
env_count(const char *var, long dflt, long max)
{
    const char *v = sl_env(var);
    if (!v)
        return dflt;
    char *end;
    long n = strtol(v, &end, 10);
    return *end == '\0' && n > 0 && n <= max ? n : dflt;
}

/* One call to the service; SLUICE_OK with the answer in resp. */
static sluice_err
call(const char *method, const char *url, const char *header,
     sl_aws_http_resp *resp, char *why, size_t why_size)
{
    long timeout_s = env_count("AWS_METADATA_SERVICE_TIMEOUT", 1, 60);
    const char *headers[] = {header, NULL};
    sl_aws_http_req req = {
        .method = method,
        .url = url,
        .headers = headers,
        .connect_ms = timeout_s * 1000,
        .total_ms = timeout_s * 2000,
        .attempts = (int)env_count("AWS_METADATA_SERVICE_NUM_ATTEMPTS", 2, 10),
        .direct = true};
    return sl_aws_http(&req, resp, why, why_size);
}

/* Whether `role` is a role name IAM would allow. */
static bool
role_name_ok(const char *role)
{
    size_t n = strlen(role);
    return n > 0 && n <= 64 &&
           strspn(role, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789+=,.@_-") == n;
}

int
sl_aws_from_imds(sl_aws_creds *out, char *why, size_t why_size)
{
    const char *disabled = sl_env("AWS_EC2_METADATA_DISABLED");
    if (disabled && strcasecmp(disabled, "true") == 0) {
        sl_copy(why, why_size,
                "the instance metadata service is disabled "
                "(AWS_EC2_METADATA_DISABLED)");
        return 0;
    }
    char base[1024], url[1200], reason[300], header[1200];
    imds_endpoint(base, sizeof base);
    sl_aws_http_resp resp = {0};
    sl_buf_init(&resp.body);
    int found = -1;

    /* The session token. No answer, or no token: not an instance. */
    sl_fmt(url, sizeof url, "%s/latest/api/token", base);
    sluice_err err =
        call("PUT", url, "X-aws-ec2-metadata-token-ttl-seconds: 21600", &resp,
             reason, sizeof reason);
    if (err == SLUICE_ENOMEM) {
        sl_copy(why, why_size, "out of memory");
        goto done;
    }
    if (err != SLUICE_OK || resp.status != 200 || resp.body.len == 0 ||
        resp.body.len > 1000 || strpbrk(resp.body.data, "\r\n")) {
        if (err != SLUICE_OK)
            sl_fmt(why, why_size, "no instance metadata service at %s (%s)",
                   base, resp.brief);
        else
            sl_fmt(why, why_size,
                   "no instance metadata service at %s (its token PUT "
                   "answered HTTP %ld%s)",
                   base, resp.status,
                   resp.status == 200 ? " without a token" : "");
        found = 0;
        goto done;
    }
    sl_fmt(header, sizeof header, "X-aws-ec2-metadata-token: %s",
           resp.body.data);

    /* The role: the first line of the list. */
    sl_fmt(url, sizeof url, "%s%s", base, ROLES_PATH);
    err = call("GET", url, header, &resp, reason, sizeof reason);
    if (err != SLUICE_OK) {
        sl_fmt(why, why_size, "instance metadata service at %s: %s", base,
               reason);
        goto done;
    }
    if (resp.status == 404 || (resp.status == 200 && resp.body.len == 0)) {
        sl_fmt(why, why_size,
               "instance metadata service at %s: no IAM role is attached to "
               "this instance (HTTP %ld on %s)",
               base, resp.status, ROLES_PATH);
        goto done;
    }
    if (resp.status != 200) {
        sl_fmt(why, why_size, "instance metadata service at %s: HTTP %ld on %s",
               base, resp.status, ROLES_PATH);
        goto done;
    }
    char role[128];
    resp.body.data[strcspn(resp.body.data, "\r\n")] = '\0';
    sl_copy(role, sizeof role, resp.body.data);
    if (!role_name_ok(role)) {
        sl_fmt(why, why_size,
               "instance metadata service at %s: \"%.64s\" on %s is not a "
               "role name",
               base, role, ROLES_PATH);
        goto done;
    }

    /* The role's credentials. */
    sl_fmt(url, sizeof url, "%s%s%s", base, ROLES_PATH, role);
    err = call("GET", url, header, &resp, reason, sizeof reason);
    if (err != SLUICE_OK) {
        sl_fmt(why, why_size, "instance metadata service at %s: %s", base,
               reason);
    } else if (resp.status != 200) {
        sl_fmt(why, why_size,
               "instance metadata service at %s: HTTP %ld on %s%s", base,
               resp.status, ROLES_PATH, role);
    } else if (sl_aws_creds_from_json(resp.body.data, SL_AWS_JSON_ENDPOINT, out,
                                      reason,
                                      sizeof reason) != SLUICE_OK) {
        sl_fmt(why, why_size, "instance metadata service at %s, role %s: %s",
               base, role, reason);
    } else {
        sl_fmt(out->source, sizeof out->source,
               "the instance metadata service at %s (role %s)", base, role);
        found = 1;
    }
done:
    memset(header, 0, sizeof header);
    if (resp.body.data)
        memset(resp.body.data, 0, resp.body.len);
    sl_buf_free(&resp.body);
    return found;
}
