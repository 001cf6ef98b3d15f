/*
 * The credential tests' loopback peer (aws_peer.h): one libmicrohttpd
 * daemon with its own polling thread, answering as STS, a container
 * credentials endpoint and the instance metadata service do, each call
 * counted under one lock.
 */
#define _GNU_SOURCE /* gmtime_r */
#include "aws_peer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#ifndef SLUICE_HAVE_MHD

aws_peer *
aws_peer_start(void)
{
    SKIP("libmicrohttpd is missing (scripts/setup.sh test installs "
         "libmicrohttpd-dev); the credential peer cannot start");
    return NULL;
}

void
aws_peer_free(aws_peer *p)
{
    (void)p;
}
void
aws_peer_url(const aws_peer *p, const char *path, char *out, size_t size)
{
    (void)p, (void)path, (void)out, (void)size;
}
void
aws_peer_set_web_token(aws_peer *p, const char *t)
{
    (void)p, (void)t;
}
void
aws_peer_set_role_arn(aws_peer *p, const char *a)
{
    (void)p, (void)a;
}
void
aws_peer_set_container_auth(aws_peer *p, const char *v)
{
    (void)p, (void)v;
}
void
aws_peer_set_instance_role(aws_peer *p, const char *r)
{
    (void)p, (void)r;
}
void
aws_peer_set_expiry(aws_peer *p, int s)
{
    (void)p, (void)s;
}
void
aws_peer_set_fail(aws_peer *p, int s)
{
    (void)p, (void)s;
}
void
aws_peer_set_hang(aws_peer *p, bool h)
{
    (void)p, (void)h;
}
aws_peer_counts
aws_peer_get_counts(aws_peer *p)
{
    (void)p;
    aws_peer_counts c = {0};
    return c;
}
void
aws_peer_last_session(aws_peer *p, char *out, size_t size)
{
    (void)p, (void)out, (void)size;
}

#else

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <time.h>

#include <microhttpd.h>

#define MAX_SUSPENDED 16
#define MAX_TOKENS    8

struct aws_peer {
    struct MHD_Daemon *daemon;
    int port;
    pthread_mutex_t lock;
    char web_token[256];
    char role_arn[256];
    char container_auth[256];
    char instance_role[64];
    int expiry_s;
    int fail_status;
    bool hang;
    bool stopping;
    struct MHD_Connection *suspended[MAX_SUSPENDED];
    int n_suspended;
    char imds_tokens[MAX_TOKENS][64];
    int n_imds_tokens;
    char last_session[128];
    aws_peer_counts counts;
};

/* One request's state: the form STS is sent, its body as it comes. */
typedef struct {
    struct MHD_PostProcessor *post;
    char action[64], version[32], role_arn[256], session[128];
    char token[4096];
    bool seen;
    bool suspended;
} call;

static void
append(char *dst, size_t size, uint64_t off, const char *data, size_t n)
{
    if (off + n + 1 > size)
        return;
    memcpy(dst + off, data, n);
    dst[off + n] = '\0';
}

static enum MHD_Result
on_field(void *cls, enum MHD_ValueKind kind, const char *key,
         const char *filename, const char *content_type, const char *encoding,
         const char *data, uint64_t off, size_t size)
{
    (void)kind, (void)filename, (void)content_type, (void)encoding;
    call *c = cls;
    if (strcmp(key, "Action") == 0)
        append(c->action, sizeof c->action, off, data, size);
    else if (strcmp(key, "Version") == 0)
        append(c->version, sizeof c->version, off, data, size);
    else if (strcmp(key, "RoleArn") == 0)
        append(c->role_arn, sizeof c->role_arn, off, data, size);
    else if (strcmp(key, "RoleSessionName") == 0)
        append(c->session, sizeof c->session, off, data, size);
    else if (strcmp(key, "WebIdentityToken") == 0)
        append(c->token, sizeof c->token, off, data, size);
    return MHD_YES;
}

static enum MHD_Result
reply(struct MHD_Connection *conn, unsigned status, const char *type,
      const char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static void
expiration(int in_s, char *out, size_t size)
{
    time_t at = time(NULL) + in_s;
    struct tm tm;
    gmtime_r(&at, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static enum MHD_Result
sts_error(struct MHD_Connection *conn, unsigned status, const char *type,
          const char *code, const char *message)
{
    char body[1024];
    snprintf(body, sizeof body,
             "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/"
             "2011-06-15/\">\n  <Error>\n    <Type>%s</Type>\n"
             "    <Code>%s</Code>\n    <Message>%s</Message>\n  </Error>\n"
             "  <RequestId>4e6b2e4c-0000-4000-8000-000000000001</RequestId>\n"
             "</ErrorResponse>\n",
             type, code, message);
    return reply(conn, status, "text/xml", body);
}

/* The lock is held. */
static enum MHD_Result
serve_sts(aws_peer *p, struct MHD_Connection *conn, call *c)
{
    p->counts.sts++;
    snprintf(p->last_session, sizeof p->last_session, "%s", c->session);
    if (p->fail_status)
        return sts_error(conn, (unsigned)p->fail_status, "Receiver",
                         "ServiceUnavailable",
                         "Service is unable to handle request.");
    if (strcmp(c->action, "AssumeRoleWithWebIdentity") != 0 ||
        strcmp(c->version, "2011-06-15") != 0)
        return sts_error(conn, 400, "Sender", "InvalidAction",
                         "Could not find operation for this version.");
    if (!c->session[0])
        return sts_error(conn, 400, "Sender", "ValidationError",
                         "1 validation error detected: Value null at "
                         "'roleSessionName' failed to satisfy constraint: "
                         "Member must not be null");
    if (strcmp(c->role_arn, p->role_arn) != 0)
        return sts_error(conn, 403, "Sender", "AccessDenied",
                         "Not authorized to perform "
                         "sts:AssumeRoleWithWebIdentity");
    if (strcmp(c->token, p->web_token) != 0)
        return sts_error(conn, 400, "Sender", "InvalidIdentityToken",
                         "The web identity token that was passed could not "
                         "be validated by AWS. Get a new identity token from "
                         "the identity provider and then retry the request.");
    p->counts.sts_issued++;
    char expires[32], body[2048];
    expiration(p->expiry_s, expires, sizeof expires);
    snprintf(body, sizeof body,
             "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts."
             "amazonaws.com/doc/2011-06-15/\">\n"
             "  <AssumeRoleWithWebIdentityResult>\n"
             "    <SubjectFromWebIdentityToken>system:serviceaccount:jobs:"
             "sluice</SubjectFromWebIdentityToken>\n"
             "    <Audience>sts.amazonaws.com</Audience>\n"
             "    <AssumedRoleUser>\n"
             "      <Arn>%s/%s</Arn>\n"
             "      <AssumedRoleId>AROA0000000000EXAMPLE:%s</AssumedRoleId>\n"
             "    </AssumedRoleUser>\n"
             "    <Credentials>\n"
             "      <SessionToken>STSTOKEN-%d&amp;more</SessionToken>\n"
             "      <SecretAccessKey>STSSECRET</SecretAccessKey>\n"
             "      <Expiration>%s</Expiration>\n"
             "      <AccessKeyId>STSKEY-%d</AccessKeyId>\n"
             "    </Credentials>\n"
             "    <Provider>oidc.example</Provider>\n"
             "  </AssumeRoleWithWebIdentityResult>\n"
             "  <ResponseMetadata>\n"
             "    <RequestId>4e6b2e4c-0000-4000-8000-000000000002</RequestId>\n"
             "  </ResponseMetadata>\n"
             "</AssumeRoleWithWebIdentityResponse>\n",
             p->role_arn, c->session, c->session, p->counts.sts_issued, expires,
             p->counts.sts_issued);
    return reply(conn, 200, "text/xml", body);
}

/* The lock is held. */
static enum MHD_Result
serve_container(aws_peer *p, struct MHD_Connection *conn)
{
    p->counts.container++;
    if (p->fail_status)
        return reply(conn, (unsigned)p->fail_status, "application/json",
                     "{\"code\":\"InternalError\",\"message\":\"agent "
                     "unavailable\"}");
    const char *auth =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!auth || strcmp(auth, p->container_auth) != 0)
        return reply(conn, 401, "application/json",
                     "{\"code\":\"AccessDenied\",\"message\":\"invalid "
                     "Authorization token\"}");
    p->counts.container_issued++;
    char expires[32], body[512];
    expiration(p->expiry_s, expires, sizeof expires);
    snprintf(body, sizeof body,
             "{\"AccessKeyId\":\"CTRKEY-%d\",\"SecretAccessKey\":"
             "\"CTRSECRET\",\"Token\":\"CTRTOKEN-%d\",\"Expiration\":\"%s\","
             "\"RoleArn\":\"%s\"}",
             p->counts.container_issued, p->counts.container_issued, expires,
             p->role_arn);
    return reply(conn, 200, "application/json", body);
}

/* The lock is held. */
static enum MHD_Result
serve_imds(aws_peer *p, struct MHD_Connection *conn, const char *url,
           const char *method)
{
    if (p->fail_status)
        return reply(conn, (unsigned)p->fail_status, "text/plain", "");
    if (strcmp(url, "/latest/api/token") == 0) {
        p->counts.imds_token++;
        if (strcmp(method, "PUT") != 0)
            return reply(conn, 405, "text/plain", "");
        const char *ttl = MHD_lookup_connection_value(
            conn, MHD_HEADER_KIND, "X-aws-ec2-metadata-token-ttl-seconds");
        char *end;
        long s = ttl ? strtol(ttl, &end, 10) : 0;
        if (!ttl || *end || s < 1 || s > 21600)
            return reply(conn, 400, "text/plain", "");
        char *token = p->imds_tokens[p->n_imds_tokens++ % MAX_TOKENS];
        snprintf(token, 64, "AQAEAimds-token-%d-ttl-%ld", p->counts.imds_token,
                 s);
        return reply(conn, 200, "text/plain", token);
    }
    p->counts.imds_get++;
    if (strcmp(method, "GET") != 0)
        return reply(conn, 405, "text/plain", "");
    const char *token = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                    "X-aws-ec2-metadata-token");
    bool valid = false;
    for (int i = 0; token && i < MAX_TOKENS && i < p->n_imds_tokens; i++)
        valid |= strcmp(token, p->imds_tokens[i]) == 0;
    if (!valid) {
        p->counts.imds_unauthorized++;
        return reply(conn, 401, "text/plain", "");
    }
    static const char roles[] = "/latest/meta-data/iam/security-credentials/";
    if (strncmp(url, roles, sizeof roles - 1) != 0 || !p->instance_role[0])
        return reply(conn, 404, "text/html", "<html>Not Found</html>");
    const char *role = url + sizeof roles - 1;
    if (!*role)
        return reply(conn, 200, "text/plain", p->instance_role);
    if (strcmp(role, p->instance_role) != 0)
        return reply(conn, 404, "text/html", "<html>Not Found</html>");
    p->counts.imds_issued++;
    char expires[32], body[512];
    expiration(p->expiry_s, expires, sizeof expires);
    snprintf(body, sizeof body,
             "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : "
             "\"2026-12-06T12:00:00Z\",\n  \"Type\" : \"AWS-HMAC\",\n"
             "  \"AccessKeyId\" : \"IMDSKEY-%d\",\n  \"SecretAccessKey\" : "
             "\"IMDSSECRET\",\n  \"Token\" : \"IMDSTOKEN-%d\",\n"
             "  \"Expiration\" : \"%s\"\n}",
             p->counts.imds_issued, p->counts.imds_issued, expires);
    return reply(conn, 200, "text/plain", body);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
           const char *method, const char *version, const char *upload_data,
           size_t *upload_data_size, void **state)
{
    (void)version;
    aws_peer *p = cls;
    call *c = *state;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c)
            return MHD_NO;
        *state = c;
        if (strcmp(method, "POST") == 0)
            c->post = MHD_create_post_processor(conn, 8192, on_field, c);
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (c->post)
            MHD_post_process(c->post, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&p->lock);
    if (c->suspended || p->stopping) {
        /* Let go at the end: whoever asked has given up. */
        pthread_mutex_unlock(&p->lock);
        return reply(conn, 503, "text/plain", "");
    }
    if (p->hang && p->n_suspended < MAX_SUSPENDED) {
        c->suspended = true;
        p->suspended[p->n_suspended++] = conn;
        if (strncmp(url, "/latest/", 8) == 0)
            p->counts.imds_token++;
        else if (strncmp(url, "/v2/", 4) == 0)
            p->counts.container++;
        else
            p->counts.sts++;
        MHD_suspend_connection(conn);
        pthread_mutex_unlock(&p->lock);
        return MHD_YES;
    }
    enum MHD_Result rc;
    if (strncmp(url, "/latest/", 8) == 0) {
        rc = serve_imds(p, conn, url, method);
    } else if (strncmp(url, "/v2/credentials/", 16) == 0) {
        rc = serve_container(p, conn);
    } else {
        /* STS: the query API, as a form POST or a GET's query. */
        static const char *const names[] = {"Action", "Version", "RoleArn",
                                            "RoleSessionName",
                                            "WebIdentityToken"};
        for (size_t i = 0; !c->post && i < sizeof names / sizeof *names; i++) {
            const char *v = MHD_lookup_connection_value(
                conn, MHD_GET_ARGUMENT_KIND, names[i]);
            if (v)
                on_field(c, MHD_GET_ARGUMENT_KIND, names[i], NULL, NULL, NULL,
                         v, 0, strlen(v));
        }
        rc = serve_sts(p, conn, c);
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

static void
on_done(void *cls, struct MHD_Connection *conn, void **state,
        enum MHD_RequestTerminationCode why)
{
    (void)cls, (void)conn, (void)why;
    call *c = *state;
    if (!c)
        return;
    if (c->post)
        MHD_destroy_post_processor(c->post);
    free(c);
    *state = NULL;
}

aws_peer *
aws_peer_start(void)
{
    aws_peer *p = calloc(1, sizeof *p);
    ASSERT_NOT_NULL(p);
    pthread_mutex_init(&p->lock, NULL);
    snprintf(p->web_token, sizeof p->web_token, "web-token-1");
    snprintf(p->role_arn, sizeof p->role_arn,
             "arn:aws:iam::123456789012:role/sluice");
    snprintf(p->container_auth, sizeof p->container_auth, "ctr-auth-1");
    snprintf(p->instance_role, sizeof p->instance_role, "sluice-role");
    p->expiry_s = 3600;
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    p->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
            MHD_ALLOW_SUSPEND_RESUME,
        0, NULL, NULL, on_request, p, MHD_OPTION_SOCK_ADDR, &a,
        MHD_OPTION_NOTIFY_COMPLETED, on_done, p, MHD_OPTION_END);
    ASSERT_NOT_NULL(p->daemon);
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(p->daemon, MHD_DAEMON_INFO_BIND_PORT);
    ASSERT_NOT_NULL(info);
    p->port = info->port;
    ASSERT_GT(p->port, 0);
    return p;
}

void
aws_peer_free(aws_peer *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    for (int i = 0; i < p->n_suspended; i++)
        MHD_resume_connection(p->suspended[i]);
    p->n_suspended = 0;
    pthread_mutex_unlock(&p->lock);
    MHD_stop_daemon(p->daemon);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void
aws_peer_url(const aws_peer *p, const char *path, char *out, size_t size)
{
    snprintf(out, size, "http://127.0.0.1:%d%s", p->port, path);
}

#define SETTER(name, field)                                                    \
    void aws_peer_set_##name(aws_peer *p, const char *value)                   \
    {                                                                          \
        pthread_mutex_lock(&p->lock);                                          \
        snprintf(p->field, sizeof p->field, "%s", value);                      \
        pthread_mutex_unlock(&p->lock);                                        \
    }
SETTER(web_token, web_token)
SETTER(role_arn, role_arn)
SETTER(container_auth, container_auth)
SETTER(instance_role, instance_role)

void
aws_peer_set_expiry(aws_peer *p, int seconds)
{
    pthread_mutex_lock(&p->lock);
    p->expiry_s = seconds;
    pthread_mutex_unlock(&p->lock);
}

void
aws_peer_set_fail(aws_peer *p, int status)
{
    pthread_mutex_lock(&p->lock);
    p->fail_status = status;
    pthread_mutex_unlock(&p->lock);
}

void
aws_peer_set_hang(aws_peer *p, bool hang)
{
    pthread_mutex_lock(&p->lock);
    p->hang = hang;
    pthread_mutex_unlock(&p->lock);
}

aws_peer_counts
aws_peer_get_counts(aws_peer *p)
{
    pthread_mutex_lock(&p->lock);
    aws_peer_counts c = p->counts;
    pthread_mutex_unlock(&p->lock);
    return c;
}

void
aws_peer_last_session(aws_peer *p, char *out, size_t size)
{
    pthread_mutex_lock(&p->lock);
    snprintf(out, size, "%s", p->last_session);
    pthread_mutex_unlock(&p->lock);
}

#endif /* SLUICE_HAVE_MHD */
