/*
 * Web identity (sources.h): a token file (an OIDC token that Kubernetes
 * or another provider rotates) and a role, exchanged with STS's
 * AssumeRoleWithWebIdentity, an unsigned query-API call whose XML answer
 * libxml2 reads. The file is read again at every renewal.
 */
#include "sources.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "../util.h"
#include "http.h"
#include "profile.h"

/* A web identity token is a JWT of a kilobyte or two. */
#define TOKEN_MAX (16 * 1024)

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void
start_xml(void)
{
    xmlInitParser();
}

/* A setting: the environment's `var`, else the profile's `key`. *where
 * names it for messages. */
static bool
setting(const sl_aws_profile *p, const char *var, const char *key, char *value,
        size_t size, char *where, size_t where_size)
{
    const char *v = sl_env(var);
    if (v) {
        sl_copy(value, size, v);
        sl_copy(where, where_size, var);
        return true;
    }
    const char *file;
    if (sl_aws_profile_get(p, key, value, size, &file) && *value) {
        sl_fmt(where, where_size, "%s of profile %s", key, p->name);
        return true;
    }
    return false;
}

bool
sl_aws_web_identity_configured(void)
{
    sl_aws_profile p;
    sl_aws_profile_locate(&p);
    char file[1024], where[200];
    return setting(&p, "AWS_WEB_IDENTITY_TOKEN_FILE", "web_identity_token_file",
                   file, sizeof file, where, sizeof where);
}

/* STS's address: AWS_ENDPOINT_URL_STS, else AWS_ENDPOINT_URL, else the
 * region's (the global one without a region). */
static void
sts_endpoint(char *out, size_t size)
{
    const char *v = sl_env("AWS_ENDPOINT_URL_STS");
    if (!v)
        v = sl_env("AWS_ENDPOINT_URL");
    if (v) {
        sl_copy(out, size, v);
        return;
    }
    char region[64];
    if (!sl_aws_region(region, sizeof region) ||
        strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") !=
            strlen(region))
        sl_copy(out, size, "https://sts.amazonaws.com");
    else
        sl_fmt(out, size, "https://sts.%s.amazonaws.com%s", region,
               strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
}

/* Append "&name=value", the value form-encoded. */
static int
add_param(sl_buf *b, const char *name, const char *value)
{
    char *escaped = curl_easy_escape(NULL, value, 0);
    if (!escaped)
        return -1;
    int rc = sl_buf_printf(b, "%s%s=%s", b->len ? "&" : "", name, escaped);
    curl_free(escaped);
    return rc;
}

/* The first element named `name` (its local name) at or under `node`. */
static xmlNode *
find_element(xmlNode *node, const char *name)
{
    for (; node; node = node->next) {
        if (node->type != XML_ELEMENT_NODE)
            continue;
        if (xmlStrcmp(node->name, (const xmlChar *)name) == 0)
            return node;
        xmlNode *inner = find_element(node->children, name);
        if (inner)
            return inner;
    }
    return NULL;
}

/* The text of `parent`'s child `name`, cut to fit; false when absent. */
static bool
child_text(xmlNode *parent, const char *name, char *out, size_t size,
           bool *too_long)
{
    xmlNode *child = parent ? find_element(parent->children, name) : NULL;
    out[0] = '\0';
    if (!child)
        return false;
    xmlChar *text = xmlNodeGetContent(child);
    if (!text)
        return false;
    if (too_long && strlen((const char *)text) >= size)
        *too_long = true;
    sl_copy(out, size, (const char *)text);
    xmlFree(text);
    for (char *c = out; *c; c++) /* one line in messages */
        if ((unsigned char)*c < 0x20)
            *c = ' ';
    return true;
}

/* Read STS's answer: credentials on a 200, else its error. */
static int
judge(const sl_aws_http_resp *resp, const char *endpoint, const char *role,
      sl_aws_creds *out, char *why, size_t why_size)
{
    pthread_once(&xml_once, start_xml);
    xmlDoc *doc = NULL;
    if (resp->body.len > 0)
        doc = xmlReadMemory(
            resp->body.data, (int)resp->body.len, "sts.xml", NULL,
            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    int found = -1;
    if (resp->status != 200) {
        char code[100], message[200];
        xmlNode *error = find_element(root, "Error");
        if (child_text(error, "Code", code, sizeof code, NULL)) {
            child_text(error, "Message", message, sizeof message, NULL);
            sl_fmt(why, why_size,
                   "web identity: STS at %s refused role %s: %s%s%s "
                   "(HTTP %ld)",
                   endpoint, role, code, message[0] ? ": " : "", message,
                   resp->status);
        } else {
            sl_fmt(why, why_size,
                   "web identity: STS at %s answered HTTP %ld for role %s",
                   endpoint, resp->status, role);
        }
        goto done;
    }
    xmlNode *creds = find_element(root, "Credentials");
    char expiration[64];
    bool too_long = false;
    if (!creds ||
        !child_text(creds, "AccessKeyId", out->access_key,
                    sizeof out->access_key, &too_long) ||
        !child_text(creds, "SecretAccessKey", out->secret_key,
                    sizeof out->secret_key, &too_long) ||
        !child_text(creds, "SessionToken", out->session_token,
                    sizeof out->session_token, &too_long) ||
        !child_text(creds, "Expiration", expiration, sizeof expiration, NULL) ||
        !out->access_key[0] || !out->secret_key[0]) {
        sl_fmt(why, why_size,
               "web identity: STS at %s answered without credentials "
               "(no AccessKeyId, SecretAccessKey, SessionToken and "
               "Expiration in Credentials)",
               endpoint);
    } else if (too_long) {
        sl_fmt(why, why_size,
               "web identity: STS at %s answered a key or token too long",
               endpoint);
    } else if (!sl_aws_parse_time(expiration, &out->expires_ms)) {
        sl_fmt(why, why_size,
               "web identity: STS at %s answered an Expiration \"%.40s\" "
               "that is not an ISO 8601 time",
               endpoint, expiration);
    } else {
        found = 1;
    }
done:
    xmlFreeDoc(doc);
    return found;
}

int
sl_aws_from_web_identity(sl_aws_creds *out, char *why, size_t why_size)
{
    sl_aws_profile p;
    sl_aws_profile_locate(&p);
    char file[1024], role[2048], session[128], file_where[200], role_where[200],
        session_where[200];
    if (!setting(&p, "AWS_WEB_IDENTITY_TOKEN_FILE", "web_identity_token_file",
                 file, sizeof file, file_where, sizeof file_where)) {
        sl_copy(why, why_size, "no web identity (AWS_WEB_IDENTITY_TOKEN_FILE)");
        return 0;
    }
    if (!setting(&p, "AWS_ROLE_ARN", "role_arn", role, sizeof role, role_where,
                 sizeof role_where)) {
        sl_fmt(why, why_size,
               "web identity: %s is set but no role is: set AWS_ROLE_ARN "
               "(or role_arn in profile %s)",
               file_where, p.name);
        return -1;
    }
    if (!setting(&p, "AWS_ROLE_SESSION_NAME", "role_session_name", session,
                 sizeof session, session_where, sizeof session_where))
        sl_fmt(session, sizeof session, "sluice-%ld", (long)getpid());

    char *token = sl_malloc(TOKEN_MAX);
    char reason[300];
    if (!token) {
        sl_copy(why, why_size, "out of memory");
        return -1;
    }
    if (!sl_aws_read_token(file, token, TOKEN_MAX, reason, sizeof reason)) {
        sl_fmt(why, why_size, "web identity: %s: %s", file_where, reason);
        sl_free(token);
        return -1;
    }
    sl_buf form;
    sl_buf_init(&form);
    int rc = add_param(&form, "Action", "AssumeRoleWithWebIdentity");
    rc |= add_param(&form, "Version", "2011-06-15");
    rc |= add_param(&form, "RoleArn", role);
    rc |= add_param(&form, "RoleSessionName", session);
    rc |= add_param(&form, "WebIdentityToken", token);
    memset(token, 0, TOKEN_MAX);
    sl_free(token);
    if (rc != 0) {
        sl_buf_free(&form);
        sl_copy(why, why_size, "out of memory");
        return -1;
    }

    char endpoint[1024];
    sts_endpoint(endpoint, sizeof endpoint);
    static const char *const headers[] = {
        "Content-Type: application/x-www-form-urlencoded; charset=utf-8",
        "Accept: text/xml", NULL};
    sl_aws_http_req req = {.method = "POST",
                           .url = endpoint,
                           .headers = headers,
                           .body = form.data,
                           .connect_ms = 3000,
                           .total_ms = 5000,
                           .attempts = 2};
    sl_aws_http_resp resp = {0};
    sl_buf_init(&resp.body);
    sluice_err err = sl_aws_http(&req, &resp, reason, sizeof reason);
    memset(form.data, 0, form.len);
    sl_buf_free(&form);
    int found = -1;
    if (err != SLUICE_OK)
        sl_fmt(why, why_size, "web identity: STS at %s: %s", endpoint, reason);
    else
        found = judge(&resp, endpoint, role, out, why, why_size);
    if (found == 1)
        sl_fmt(out->source, sizeof out->source, "web identity (role %s)", role);
    if (resp.body.data)
        memset(resp.body.data, 0, resp.body.len);
    sl_buf_free(&resp.body);
    return found;
}
