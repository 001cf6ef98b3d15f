/*
 * The container endpoint (sources.h), as ECS tasks and EKS Pod Identity
 * give it: a URL in the environment answering credentials as JSON, with
 * an Authorization token from a file (read again at every renewal) or
 * from the environment. And the JSON both it and the instance metadata
 * service answer with.
 */
#include "sources.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <yajl/yajl_tree.h>

#include "../json.h"
#include "../util.h"
#include "http.h"

/* The ECS agent's address, for a relative URI. */
#define ECS_HOST "http://169.254.170.2"


/* Whether an http URL's host may be sent the authorization token and be
 * believed: loopback, or the ECS and EKS agents' addresses. */
static bool
trusted_host(const char *host)
{
    char bare[256];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        sl_fmt(bare, sizeof bare, "%.*s", (int)(n - 2), host + 1);
        host = bare;
    }
    if (strcasecmp(host, "localhost") == 0 ||
        strcmp(host, "169.254.170.2") == 0 ||
        strcmp(host, "169.254.170.23") == 0)
        return true;
    struct in_addr v4;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    struct in6_addr v6;
    if (inet_pton(AF_INET6, host, &v6) == 1) {
        static const unsigned char eks[16] = {
            0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x23};
        return IN6_IS_ADDR_LOOPBACK(&v6) || memcmp(&v6, eks, 16) == 0;
    }
    return false;
}

int
sl_aws_container_url(char *url, size_t size, char *why, size_t why_size)
{
    const char *relative = sl_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    if (relative) {
        sl_fmt(url, size, "%s%s%s", ECS_HOST, relative[0] == '/' ? "" : "/",
               relative);
        return 1;
    }
    const char *full = sl_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    if (!full)
        return 0;
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int ok = -1;
    if (!u) {
        sl_copy(why, why_size, "out of memory");
        return -1;
    }
    if (curl_url_set(u, CURLUPART_URL, full, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        sl_fmt(why, why_size,
               "AWS_CONTAINER_CREDENTIALS_FULL_URI=%.200s is not a URL", full);
    else if (strcmp(scheme, "https") == 0 ||
             (strcmp(scheme, "http") == 0 && trusted_host(host)))
        ok = 1;
    else
        sl_fmt(why, why_size,
               "AWS_CONTAINER_CREDENTIALS_FULL_URI=%.200s: only https, or "
               "http to a loopback address or the ECS or EKS agent, is "
               "trusted with credentials",
               full);
    if (ok == 1)
        sl_copy(url, size, full);
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

/* The Authorization header's value: the token file's, else the
 * variable's; "" when neither is set. False with `why` when the file
 * cannot be read. */
static bool
authorization(char *out, size_t size, char *why, size_t why_size)
{
    const char *file = sl_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    out[0] = '\0';
    if (file) {
        char reason[300];
        if (!sl_aws_read_token(file, out, size, reason, sizeof reason)) {
            sl_fmt(why, why_size,
                   "container endpoint: "
                   "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: %s",
                   reason);
            return false;
        }
        return true;
    }
    const char *token = sl_env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    if (token) {
        if (strpbrk(token, "\r\n")) {
            sl_copy(why, why_size,
                    "container endpoint: AWS_CONTAINER_AUTHORIZATION_TOKEN "
                    "holds a line break");
            return false;
        }
        sl_copy(out, size, token);
    }
    return true;
}

/* A short reason from an error answer: its "message" or "Message". */
static void
error_text(const char *body, char *out, size_t size)
{
    char err[100];
    out[0] = '\0';
    yajl_val tree = body && sl_json_too_deep(body, strlen(body), 16) == 0
                        ? yajl_tree_parse(body, err, sizeof err)
                        : NULL;
    if (tree && YAJL_IS_OBJECT(tree)) {
        const char *m = sl_json_member_str(tree, "message");
        if (!m)
            m = sl_json_member_str(tree, "Message");
        if (m)
            sl_fmt(out, size, ": %.150s", m);
    }
    yajl_tree_free(tree);
    for (char *c = out; *c; c++)
        if ((unsigned char)*c < 0x20)
            *c = ' ';
}

int
sl_aws_from_container(sl_aws_creds *out, char *why, size_t why_size)
{
    char url[2048];
    int configured = sl_aws_container_url(url, sizeof url, why, why_size);
    if (configured == 0) {
        sl_copy(why, why_size,
                "no container endpoint (AWS_CONTAINER_CREDENTIALS_*_URI)");
        return 0;
    }
    if (configured < 0)
        return -1;
    char token[8192], header[8300];
    if (!authorization(token, sizeof token, why, why_size))
        return -1;
    const char *headers[] = {"Accept: application/json", NULL, NULL};
    if (token[0]) {
        sl_fmt(header, sizeof header, "Authorization: %s", token);
        headers[1] = header;
    }
    sl_aws_http_req req = {.method = "GET",
                           .url = url,
                           .headers = headers,
                           .connect_ms = 1000,
                           .total_ms = 2000,
                           .attempts = 2,
                           .direct = true};
    sl_aws_http_resp resp = {0};
    sl_buf_init(&resp.body);
    char reason[300];
    int found = -1;
    sluice_err err = sl_aws_http(&req, &resp, reason, sizeof reason);
    memset(token, 0, sizeof token);
    memset(header, 0, sizeof header);
    if (err != SLUICE_OK) {
        sl_fmt(why, why_size, "container endpoint %s: %s", url, reason);
    } else if (resp.status != 200) {
        error_text(resp.body.data, reason, sizeof reason);
        sl_fmt(why, why_size, "container endpoint %s: HTTP %ld%s", url,
               resp.status, reason);
    } else if (sl_aws_creds_from_json(resp.body.data, SL_AWS_JSON_ENDPOINT, out,
                                      reason,
                                      sizeof reason) != SLUICE_OK) {
        sl_fmt(why, why_size, "container endpoint %s: %s", url, reason);
    } else {
        sl_fmt(out->source, sizeof out->source, "the container endpoint %s",
               url);
        found = 1;
    }
    if (resp.body.data)
        memset(resp.body.data, 0, resp.body.len);
    sl_buf_free(&resp.body);
    return found;
}
