/*
 * The S3 store (lib/store/store_s3.c) against a capturing HTTP server on
 * loopback: the signed PUT carries what SigV4 and S3 require, and its
 * signature, recomputed here from the captured request with OpenSSL's
 * HMAC, matches; retries come from the spool; S3's errors map to results.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "store/store.h"
#include "test.h"

#define KEY_ID  "AKIDEXAMPLE"
#define SECRET  "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define REGION  "eu-west-3"
#define TOKEN   "FQoGZXIvYXdzE+token/with=chars"
#define BUCKET  "bucket"
#define PREFIX  "some/prefix"
#define MAX_REQ 32
#define MAX_HDR 40

/* ------------------------------------------------------------ server */

typedef struct {
    char method[16];
    char target[2048];
    int n_headers;
    char name[MAX_HDR][64];
    char value[MAX_HDR][2048];
    char *body;
    size_t body_len;
} captured;

/* What the server answers to object PUTs, in order; then 200. */
typedef struct {
    int status;
    const char *code; /* an S3 error code for the XML body, or NULL */
} reply;

static struct {
    int listen_fd;
    int port;
    pthread_mutex_t lock;
    captured req[MAX_REQ];
    int n_req;
    reply script[16];
    int n_script, next_script;
    bool always_503;
    int probe_status; /* what a probe gets: 400 BadDigest by default */
    const char *probe_code;
    volatile int stop;
} srv = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const char *
header_of(const captured *c, const char *name)
{
    for (int i = 0; i < c->n_headers; i++)
        if (strcasecmp(c->name[i], name) == 0)
            return c->value[i];
    return NULL;
}

/* Read until "\r\n\r\n"; returns the head's length (with it) or -1. */
static ssize_t
read_head(int fd, char *buf, size_t cap, size_t *have)
{
    for (;;) {
        char *end = memmem(buf, *have, "\r\n\r\n", 4);
        if (end)
            return end + 4 - buf;
        if (*have == cap)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        while (poll(&p, 1, 100) == 0)
            if (srv.stop)
                return -1;
        ssize_t n = read(fd, buf + *have, cap - *have);
        if (n <= 0)
            return -1;
        *have += (size_t)n;
    }
}

static void
send_all(int fd, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, text, len);
        if (n <= 0)
            return;
        text += n;
        len -= (size_t)n;
    }
}

static void
answer(int fd, int status, const char *code)
{
    char body[512] = "", head[256];
    if (code)
        snprintf(body, sizeof body,
                 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s"
                 "</Code><Message>Said &quot;%s&quot; for the test &amp; "
                 "more</Message><RequestId>1</RequestId></Error>",
                 code, code);
    snprintf(head, sizeof head,
             "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n", status,
             strlen(body), code ? "Content-Type: application/xml\r\n" : "");
    send_all(fd, head, strlen(head));
    send_all(fd, body, strlen(body));
}

/* One connection: requests until the client closes it. */
static void
serve(int fd)
{
    static char buf[1 << 16];
    size_t have = 0;
    for (;;) {
        ssize_t head_len = read_head(fd, buf, sizeof buf - 1, &have);
        if (head_len < 0)
            return;
        captured c;
        memset(&c, 0, sizeof c);
        buf[head_len - 2] = '\0';
        char *line = buf, *next = strstr(line, "\r\n");
        *next = '\0';
        if (sscanf(line, "%15s %2047s", c.method, c.target) != 2)
            return;
        for (line = next + 2; *line && c.n_headers < MAX_HDR; line = next + 2) {
            next = strstr(line, "\r\n");
            *next = '\0';
            char *colon = strchr(line, ':');
            if (!colon)
                return;
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vlen = strlen(v);
            while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                v[--vlen] = '\0';
            snprintf(c.name[c.n_headers], sizeof c.name[0], "%s", line);
            snprintf(c.value[c.n_headers], sizeof c.value[0], "%s", v);
            c.n_headers++;
        }
        const char *cl = header_of(&c, "Content-Length");
        c.body_len = cl ? strtoull(cl, NULL, 10) : 0;
        c.body = malloc(c.body_len + 1);
        size_t got = SL_MIN(c.body_len, have - (size_t)head_len);
        memcpy(c.body, buf + head_len, got);
        memmove(buf, buf + head_len + got, have - (size_t)head_len - got);
        have -= (size_t)head_len + got;
        const char *expect = header_of(&c, "Expect");
        if (expect && strcasecmp(expect, "100-continue") == 0)
            send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        while (got < c.body_len) {
            ssize_t n = read(fd, c.body + got, c.body_len - got);
            if (n <= 0)
                return;
            got += (size_t)n;
        }
        c.body[c.body_len] = '\0';

        bool is_probe = strstr(c.target, "/.sluice-probe") != NULL;
        int status = 200;
        const char *code = NULL;
        pthread_mutex_lock(&srv.lock);
        if (srv.n_req < MAX_REQ)
            srv.req[srv.n_req++] = c;
        if (is_probe && strcmp(c.method, "PUT") == 0) {
            status = srv.probe_status ? srv.probe_status : 400;
            code = srv.probe_status ? srv.probe_code : "BadDigest";
        } else if (is_probe) {
            status = 204;
        } else if (srv.always_503) {
            status = 503;
            code = "SlowDown";
        } else if (srv.next_script < srv.n_script) {
            status = srv.script[srv.next_script].status;
            code = srv.script[srv.next_script].code;
            srv.next_script++;
        }
        pthread_mutex_unlock(&srv.lock);
        answer(fd, status, code);
    }
}

static void *
server_main(void *arg)
{
    (void)arg;
    while (!srv.stop) {
        struct pollfd p = {srv.listen_fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int fd = accept(srv.listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        serve(fd);
        close(fd);
    }
    return NULL;
}

/* Start the capturing server, and point the AWS environment at it. */
static void
server_start(void)
{
    test_listen_loopback(server_main, NULL, &srv.port, &srv.listen_fd);
    setenv("AWS_ACCESS_KEY_ID", KEY_ID, 1);
    setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
    setenv("AWS_REGION", REGION, 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_S3");
    static const char *const proxies[] = {"http_proxy", "HTTP_PROXY",
                                          "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < SL_ARRAY_LEN(proxies); i++)
        unsetenv(proxies[i]);
}

static int
n_requests(void)
{
    pthread_mutex_lock(&srv.lock);
    int n = srv.n_req;
    pthread_mutex_unlock(&srv.lock);
    return n;
}

/* The captured request for a target, the last one if many. */
static const captured *
find_request(const char *method, const char *target)
{
    const captured *found = NULL;
    pthread_mutex_lock(&srv.lock);
    for (int i = 0; i < srv.n_req; i++)
        if (strcmp(srv.req[i].method, method) == 0 &&
            strcmp(srv.req[i].target, target) == 0)
            found = &srv.req[i];
    pthread_mutex_unlock(&srv.lock);
    if (!found)
        TEST_FAIL_("no %s %s among %d requests", method, target, n_requests());
    return found;
}

/* ------------------------------------------------------------ the store */

static char endpoint[64];

static sluice_err
try_open(const char *location, sl_store **s, char *why, size_t size)
{
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", srv.port);
    sl_store_opts opts = {4, endpoint, 1, "spool"};
    return sl_store_open(location, &opts, s, why, size);
}

static sl_store *
open_s3(void)
{
    sl_store *s = NULL;
    char why[600] = "";
    if (try_open("s3://" BUCKET "/" PREFIX "/", &s, why, sizeof why) !=
        SLUICE_OK)
        TEST_FAIL_("sl_store_open: %s", why);
    ASSERT_EQ(sl_store_recover(s), SLUICE_OK);
    return s;
}

static void
digest(const char *md, const void *data, size_t len, unsigned char *out,
       unsigned *out_len)
{
    ASSERT_EQ(
        EVP_Digest(data, len, out, out_len, EVP_get_digestbyname(md), NULL), 1);
}

static void
to_hex(char *dst, const unsigned char *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        snprintf(dst + 2 * i, 3, "%02x", src[i]);
}

static void
sha256_hex(char dst[65], const void *data, size_t len)
{
    unsigned char d[32];
    unsigned n;
    digest("SHA256", data, len, d, &n);
    to_hex(dst, d, 32);
}

static void
b64_of(const char *md, char *dst, const void *data, size_t len)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n;
    digest(md, data, len, d, &n);
    EVP_EncodeBlock((unsigned char *)dst, d, (int)n);
}

/* Store `body` under `key` in three writes and submit it. */
static void
put_object(sl_store *s, const char *key, const char *body,
           const char *content_type, const char *etag, void *cookie)
{
    sl_object *o = NULL;
    if (sl_store_begin(s, key, cookie, &o) != SLUICE_OK)
        TEST_FAIL_("sl_store_begin: %s", s->errmsg);
    size_t len = strlen(body), third = len / 3;
    ASSERT_EQ(sl_object_write(o, body, third), SLUICE_OK);
    ASSERT_EQ(sl_object_write(o, body + third, third), SLUICE_OK);
    ASSERT_EQ(sl_object_write(o, body + 2 * third, len - 2 * third), SLUICE_OK);
    sl_object_meta meta = {
        .content_type = content_type,
        .etag = etag,
        .source_url = "http://img.example/a%20b.jpg?x=1",
        .record_meta = "{\"Title\":\"caf\xc3\xa9 au lait\",\"w\":640,"
                       "\"tags\":[\"a\",\"b\"],\"Image_URL\":\"x\"}",
        .size = len,
    };
    ASSERT_EQ(sl_store_submit(s, o, &meta), SLUICE_OK);
}

static sl_store_result
wait_result(sl_store *s)
{
    sl_store_result r;
    int fd = sl_store_wake_fd(s);
    ASSERT_GE(fd, 0);
    for (int turns = 0; turns < 1000; turns++) {
        struct pollfd p = {fd, POLLIN, 0};
        int rc = poll(&p, 1, 30000);
        if (rc == 0)
            TEST_FAIL_("no result in 30 s");
        if (sl_store_reap(s, &r, 1) == 1)
            return r;
    }
    TEST_FAIL_("woken 1000 times without a result");
}

/* Files in this run's spool (there is one run directory in it). */
static int
spool_files(void)
{
    char path[300];
    snprintf(path, sizeof path, "spool/sluice-spool-%lu",
             (unsigned long)geteuid());
    DIR *d = opendir(path);
    ASSERT_NOT_NULL(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strstr(e->d_name, ".lock"))
            continue;
        char sub[600];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        DIR *r = opendir(sub);
        struct dirent *f;
        while (r && (f = readdir(r)) != NULL)
            n += f->d_name[0] != '.';
        if (r)
            closedir(r);
    }
    closedir(d);
    return n;
}

/* ------------------------------------------------------------ SigV4 */

/* S3's canonical URI of BUCKET/PREFIX/KEY, encoded here independently:
 * every byte but A-Z a-z 0-9 - . _ ~ and '/' as %XX, upper-case. */
static void
canonical_uri(char *dst, size_t size, const char *key)
{
    char path[1024];
    snprintf(path, sizeof path, "/%s/%s/%s", BUCKET, PREFIX, key);
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        ASSERT_LT(n + 4, size);
        if (isalnum(*p) || strchr("-._~/", *p))
            dst[n++] = (char)*p;
        else
            n += (size_t)snprintf(dst + n, 4, "%%%02X", *p);
    }
    dst[n] = '\0';
}

static void
hmac(const void *key, size_t key_len, const char *data, unsigned char out[32])
{
    unsigned len = 32;
    ASSERT_NOT_NULL(HMAC(EVP_sha256(), key, (int)key_len,
                         (const unsigned char *)data, strlen(data), out, &len));
    ASSERT_EQ(len, 32);
}

/* A header value as SigV4 canonicalises it: ends trimmed, runs of
 * spaces made one. */
static void
canonical_value(char *dst, size_t size, const char *v)
{
    size_t n = 0;
    while (*v == ' ')
        v++;
    for (; *v && n + 1 < size; v++) {
        if (*v == ' ' && (v[1] == ' ' || v[1] == '\0'))
            continue;
        dst[n++] = *v;
    }
    dst[n] = '\0';
}

/*
 * Check a captured request's signature from scratch: parse the
 * Authorization header, rebuild the canonical request from what was
 * received (the URI we expect, the signed headers' values, the body's
 * SHA-256), derive the signing key and compare. Returns the signed
 * header list (static) for further checks.
 */
static const char *
check_signature(const captured *c, const char *want_uri)
{
    static char signed_headers[1024];
    const char *auth = header_of(c, "Authorization");
    const char *date = header_of(c, "x-amz-date");
    ASSERT_NOT_NULL(auth);
    ASSERT_NOT_NULL(date);

    /* x-amz-date: ISO 8601 basic, UTC, within 15 minutes of now. */
    ASSERT_EQ(strlen(date), 16);
    for (int i = 0; i < 16; i++)
        if (i != 8 && i != 15 && !isdigit((unsigned char)date[i]))
            TEST_FAIL_("x-amz-date %s is not YYYYMMDDTHHMMSSZ", date);
    ASSERT_EQ(date[8], 'T');
    ASSERT_EQ(date[15], 'Z');
    struct tm tm = {0};
    ASSERT_NOT_NULL(strptime(date, "%Y%m%dT%H%M%SZ", &tm));
    time_t when = timegm(&tm);
    ASSERT_LT(labs((long)(when - time(NULL))), 900);

    /* The Authorization header's shape. */
    char credential[256], signature[128];
    char prefix[] = "AWS4-HMAC-SHA256 Credential=";
    ASSERT_EQ(strncmp(auth, prefix, strlen(prefix)), 0);
    if (sscanf(auth + strlen(prefix),
               "%255[^,], SignedHeaders=%1023[^,], Signature=%127s", credential,
               signed_headers, signature) != 3)
        TEST_FAIL_("Authorization: %s", auth);
    char want_cred[256], scope[200];
    snprintf(scope, sizeof scope, "%.8s/%s/s3/aws4_request", date, REGION);
    snprintf(want_cred, sizeof want_cred, "%s/%s", KEY_ID, scope);
    ASSERT_STR_EQ(credential, want_cred);
    ASSERT_EQ(strlen(signature), 64);
    ASSERT_EQ(strspn(signature, "0123456789abcdef"), 64);

    /* Signed headers: lower-case, sorted, with the ones SigV4 needs. */
    char list[1100];
    snprintf(list, sizeof list, ";%s;", signed_headers);
    ASSERT_STR_CONTAINS(list, ";host;");
    ASSERT_STR_CONTAINS(list, ";x-amz-content-sha256;");
    ASSERT_STR_CONTAINS(list, ";x-amz-date;");
    char prev[64] = "";
    for (const char *h = signed_headers; *h;) {
        size_t len = strcspn(h, ";");
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)len, h);
        for (size_t i = 0; i < len; i++)
            if (isupper((unsigned char)name[i]))
                TEST_FAIL_("signed header %s is not lower-case", name);
        if (strcmp(prev, name) >= 0)
            TEST_FAIL_("signed headers not sorted: %s", signed_headers);
        snprintf(prev, sizeof prev, "%s", name);
        h += len + (h[len] == ';');
    }

    /* The payload hash is the body's, and the header says so. */
    char body_hash[65];
    sha256_hex(body_hash, c->body, c->body_len);
    ASSERT_STR_EQ(header_of(c, "x-amz-content-sha256"), body_hash);

    /* The canonical request, from the request as received. */
    ASSERT_STR_EQ(c->target, want_uri);
    static char canon[16384];
    size_t n = (size_t)snprintf(canon, sizeof canon, "%s\n%s\n\n", c->method,
                                want_uri);
    for (const char *h = signed_headers; *h;) {
        size_t len = strcspn(h, ";");
        char name[64], value[2048];
        snprintf(name, sizeof name, "%.*s", (int)len, h);
        const char *raw = header_of(c, name);
        if (!raw)
            TEST_FAIL_("signed header %s was not sent", name);
        canonical_value(value, sizeof value, raw);
        n += (size_t)snprintf(canon + n, sizeof canon - n, "%s:%s\n", name,
                              value);
        h += len + (h[len] == ';');
    }
    snprintf(canon + n, sizeof canon - n, "\n%s\n%s", signed_headers,
             body_hash);
    char canon_hash[65], to_sign[512];
    sha256_hex(canon_hash, canon, strlen(canon));
    snprintf(to_sign, sizeof to_sign, "AWS4-HMAC-SHA256\n%s\n%s\n%s", date,
             scope, canon_hash);

    /* The signing key: HMAC chain over date, region, service, request. */
    unsigned char k[32];
    char day[9];
    snprintf(day, sizeof day, "%.8s", date);
    hmac("AWS4" SECRET, strlen("AWS4" SECRET), day, k);
    hmac(k, 32, REGION, k);
    hmac(k, 32, "s3", k);
    hmac(k, 32, "aws4_request", k);
    unsigned char sig[32];
    char sig_hex[65];
    hmac(k, 32, to_sign, sig);
    to_hex(sig_hex, sig, 32);
    if (strcmp(sig_hex, signature) != 0)
        TEST_FAIL_("signature %s, recomputed %s\ncanonical request:\n%s",
                   signature, sig_hex, canon);
    return signed_headers;
}

/* ------------------------------------------------------------ tests */

#define KEY  "dir/a b+\xc3\xa9 \xe2\x82\xac~x(1).jpg"
#define BODY "The quick brown fox jumps over the lazy dog, 0123456789."

TEST(the_put_is_signed_as_sigv4_requires)
{
    server_start();
    setenv("AWS_SESSION_TOKEN", TOKEN, 1);
    sl_store *s = open_s3();
    int cookie;
    put_object(s, KEY, BODY, "image/jpeg", "\"abc\" \xc3\xa9", &cookie);
    sl_store_result r = wait_result(s);
    ASSERT(r.cookie == &cookie);
    ASSERT_EQ(r.status, SL_STORED);
    char body_sha[65];
    sha256_hex(body_sha, BODY, strlen(BODY));
    ASSERT_STR_EQ(r.sha256_hex, body_sha); /* recorded as it was sent */

    char uri[1024];
    canonical_uri(uri, sizeof uri, KEY);
    ASSERT_STR_EQ(uri, "/bucket/some/prefix/dir/a%20b%2B%C3%A9%20%E2%82%AC"
                       "~x%281%29.jpg");
    const captured *c = find_request("PUT", uri);
    const char *signed_headers = check_signature(c, uri);

    /* The body, its length and the checksums S3 verifies. */
    ASSERT_EQ(c->body_len, strlen(BODY));
    ASSERT_EQ(memcmp(c->body, BODY, c->body_len), 0);
    char want[64];
    b64_of("MD5", want, BODY, strlen(BODY));
    ASSERT_STR_EQ(header_of(c, "Content-MD5"), want);
    b64_of("SHA256", want, BODY, strlen(BODY));
    ASSERT_STR_EQ(header_of(c, "x-amz-checksum-sha256"), want);
    ASSERT_STR_EQ(header_of(c, "Content-Type"), "image/jpeg");
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", srv.port);
    ASSERT_STR_EQ(header_of(c, "Host"), host);
    /* Metadata, made printable ASCII. */
    ASSERT_STR_EQ(header_of(c, "x-amz-meta-source-url"),
                  "http://img.example/a%20b.jpg?x=1");
    ASSERT_STR_EQ(header_of(c, "x-amz-meta-origin-etag"), "\"abc\"%20%C3%A9");
    /* The record's meta, a field a member (record/meta.h's mapping). */
    ASSERT_STR_EQ(header_of(c, "x-amz-meta-title"), "caf%C3%A9%20au%20lait");
    ASSERT_STR_EQ(header_of(c, "x-amz-meta-w"), "640");
    ASSERT_STR_EQ(header_of(c, "x-amz-meta-tags"), "[\"a\",\"b\"]");
    ASSERT_STR_EQ(header_of(c, "x-amz-meta-image-url"), "x");
    ASSERT_STR_EQ(header_of(c, "x-amz-security-token"), TOKEN);
    /* Everything the store chose to send is signed. */
    static const char *const must_sign[] = {
        "content-md5",           "content-type",
        "x-amz-checksum-sha256", "x-amz-meta-origin-etag",
        "x-amz-meta-source-url", "x-amz-meta-title",
        "x-amz-meta-tags",       "x-amz-security-token"};
    char list[1100];
    snprintf(list, sizeof list, ";%s;", signed_headers);
    for (size_t i = 0; i < SL_ARRAY_LEN(must_sign); i++) {
        char needle[64];
        snprintf(needle, sizeof needle, ";%s;", must_sign[i]);
        ASSERT_STR_CONTAINS(list, needle);
    }
    ASSERT_EQ(spool_files(), 0);
    sl_store_close(s);
}

TEST(the_probe_is_signed_and_writes_nothing)
{
    server_start();
    sl_store *s = open_s3();
    /* One signed PUT of an empty probe with a digest that cannot match;
     * S3 says BadDigest, so there is nothing to delete. */
    ASSERT_EQ(n_requests(), 1);
    const captured *c =
        find_request("PUT", "/" BUCKET "/" PREFIX "/.sluice-probe");
    check_signature(c, "/" BUCKET "/" PREFIX "/.sluice-probe");
    ASSERT_EQ(c->body_len, 0);
    char want[64];
    b64_of("MD5", want, "", 0);
    ASSERT(strcmp(header_of(c, "Content-MD5"), want) != 0);
    sl_store_close(s);
}

TEST(a_server_that_stores_the_probe_gets_it_deleted)
{
    server_start();
    srv.probe_status = 200;
    sl_store *s = open_s3();
    ASSERT_EQ(n_requests(), 2);
    const captured *c =
        find_request("DELETE", "/" BUCKET "/" PREFIX "/.sluice-probe");
    check_signature(c, "/" BUCKET "/" PREFIX "/.sluice-probe");
    sl_store_close(s);
}

TEST(a_missing_bucket_fails_open_with_one_line)
{
    server_start();
    srv.probe_status = 404;
    srv.probe_code = "NoSuchBucket";
    sl_store *s = NULL;
    char why[600] = "";
    ASSERT_NE(try_open("s3://nosuch/p", &s, why, sizeof why), SLUICE_OK);
    ASSERT_NULL(s);
    ASSERT_STR_CONTAINS(why, "bucket nosuch");
    ASSERT_STR_CONTAINS(why, "NoSuchBucket: Said \"NoSuchBucket\" for the "
                             "test & more (HTTP 404)");
    ASSERT_NULL(strchr(why, '\n'));
    /* Nothing was spooled for it. */
    ASSERT_NE(access("spool", F_OK), 0);
}

TEST(bad_credentials_fail_open)
{
    server_start();
    srv.probe_status = 403;
    srv.probe_code = "InvalidAccessKeyId";
    sl_store *s = NULL;
    char why[600] = "";
    ASSERT_EQ(try_open("s3://" BUCKET, &s, why, sizeof why), SLUICE_EACCES);
    ASSERT_STR_CONTAINS(why, "bucket " BUCKET ": InvalidAccessKeyId");
}

TEST(missing_credentials_are_named)
{
    server_start();
    unsetenv("AWS_SECRET_ACCESS_KEY");
    sl_store *s = NULL;
    char why[600] = "";
    ASSERT_EQ(try_open("s3://" BUCKET, &s, why, sizeof why), SLUICE_ECONFIG);
    ASSERT_STR_CONTAINS(why, "AWS_ACCESS_KEY_ID");
    ASSERT_STR_CONTAINS(why, "AWS_SECRET_ACCESS_KEY");
    ASSERT_EQ(n_requests(), 0);
}

TEST(bad_locations_are_refused)
{
    server_start();
    static const char *const bad[] = {"s3://",       "s3:///p",
                                      "s3://b/x//y", "s3://b/../y",
                                      "s3://b c/x",  "s3://b/a\x01"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        sl_store *s = NULL;
        char why[600] = "";
        ASSERT_EQ(try_open(bad[i], &s, why, sizeof why), SLUICE_EINVAL);
        ASSERT_STR_CONTAINS(why, "--store");
    }
    ASSERT_EQ(n_requests(), 0);
}

TEST(transient_errors_are_retried_from_the_spool)
{
    server_start();
    srv.script[0] = (reply){503, "SlowDown"};
    srv.script[1] = (reply){500, "InternalError"};
    srv.script[2] = (reply){400, "RequestTimeout"};
    srv.n_script = 3;
    sl_store *s = open_s3();
    put_object(s, "k.jpg", BODY, NULL, NULL, NULL);
    ASSERT_EQ(sl_store_busy(s), 1);
    sl_store_result r = wait_result(s);
    ASSERT_EQ(r.status, SL_STORED);
    ASSERT_EQ(sl_store_busy(s), 0);
    /* The probe, then four PUTs of the same bytes. */
    ASSERT_EQ(n_requests(), 5);
    for (int i = 1; i < 5; i++) {
        ASSERT_STR_EQ(srv.req[i].target, "/bucket/some/prefix/k.jpg");
        ASSERT_EQ(srv.req[i].body_len, strlen(BODY));
        ASSERT_EQ(memcmp(srv.req[i].body, BODY, strlen(BODY)), 0);
        check_signature(&srv.req[i], "/bucket/some/prefix/k.jpg");
    }
    /* No type from the origin, no etag: the defaults. */
    ASSERT_STR_EQ(header_of(&srv.req[4], "Content-Type"),
                  "application/octet-stream");
    ASSERT_NULL(header_of(&srv.req[4], "x-amz-meta-origin-etag"));
    ASSERT_NULL(header_of(&srv.req[4], "x-amz-security-token"));
    ASSERT_EQ(spool_files(), 0);
    sl_store_close(s);
}

TEST(configuration_errors_stop_and_per_object_ones_do_not)
{
    server_start();
    srv.script[0] = (reply){400, "BadDigest"};
    srv.script[1] = (reply){400, "KeyTooLongError"};
    srv.script[2] = (reply){403, "AccessDenied"};
    srv.n_script = 3;
    sl_store *s = open_s3();
    sl_store_result r;

    put_object(s, "a", BODY, NULL, NULL, NULL);
    r = wait_result(s);
    ASSERT_EQ(r.status, SL_STORE_RETRY);
    ASSERT_STR_CONTAINS(r.message, "BadDigest");

    put_object(s, "b", BODY, NULL, NULL, NULL);
    r = wait_result(s);
    ASSERT_EQ(r.status, SL_STORE_REJECTED);
    ASSERT_STR_CONTAINS(r.message, "KeyTooLongError");

    put_object(s, "c", BODY, NULL, NULL, NULL);
    r = wait_result(s);
    ASSERT_EQ(r.status, SL_STORE_FAILED);
    ASSERT_EQ(r.err, SLUICE_EACCES);
    ASSERT_STR_CONTAINS(r.message, "bucket " BUCKET ": AccessDenied: Said");
    ASSERT_STR_CONTAINS(r.message, "(HTTP 403)");

    /* Stopped: what comes after fails at once, without a request. */
    int before = n_requests();
    put_object(s, "d", BODY, NULL, NULL, NULL);
    r = wait_result(s);
    ASSERT_EQ(r.status, SL_STORE_FAILED);
    ASSERT_STR_CONTAINS(r.message, "AccessDenied");
    ASSERT_EQ(n_requests(), before);
    ASSERT_EQ(spool_files(), 0);
    sl_store_close(s);
}

TEST(a_key_too_long_for_s3_is_rejected_without_a_request)
{
    server_start();
    sl_store *s = open_s3();
    char key[1100];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    for (size_t i = 200; i < sizeof key - 1; i += 200)
        key[i] = '/';
    int before = n_requests();
    put_object(s, key, BODY, NULL, NULL, NULL);
    sl_store_result r = wait_result(s);
    ASSERT_EQ(r.status, SL_STORE_REJECTED);
    ASSERT_STR_CONTAINS(r.message, "1024");
    ASSERT_EQ(n_requests(), before);
    sl_store_close(s);
}

TEST(close_gives_up_on_uploads_still_waiting)
{
    server_start();
    srv.always_503 = true;
    sl_store *s = open_s3();
    put_object(s, "k", BODY, NULL, NULL, NULL);
    for (int i = 0; i < 600 && n_requests() < 3; i++)
        usleep(10000);
    ASSERT_GE(n_requests(), 3); /* the probe and two tries, at least */
    ASSERT_EQ(spool_files(), 1);
    /* Waiting out a backoff, the upload is not busy: a stopping run need
     * not wait for S3 to come back. */
    int idle_seen = 0;
    for (int i = 0; i < 500 && !idle_seen; i++) {
        idle_seen = sl_store_busy(s) == 0;
        usleep(10000);
    }
    ASSERT(idle_seen);
    sl_store_result r;
    ASSERT_EQ(sl_store_reap(s, &r, 1), 0);
    int64_t start = sl_mono_ms();
    sl_store_close(s);
    ASSERT_LT(sl_mono_ms() - start, 2000);
    /* The run's spool directory and lock are gone. */
    char path[300];
    snprintf(path, sizeof path, "spool/sluice-spool-%lu",
             (unsigned long)geteuid());
    DIR *d = opendir(path);
    ASSERT_NOT_NULL(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            TEST_FAIL_("left in the spool: %s", e->d_name);
    closedir(d);
}

TEST(recover_removes_crashed_runs_spools_only)
{
    server_start();
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "spool/sluice-spool-%lu",
             (unsigned long)geteuid());
    ASSERT_EQ(mkdir("spool", 0700), 0);
    ASSERT_EQ(mkdir(dir, 0700), 0);
    /* A crashed run (its lock is free) and a live one (locked). */
    const char *runs[2] = {"run-1-1-0", "run-2-2-0"};
    int live_lock = -1;
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, runs[i]);
        ASSERT_EQ(mkdir(path, 0700), 0);
        snprintf(path, sizeof path, "%s/%s/7", dir, runs[i]);
        test_write_str(path, "spooled body");
        snprintf(path, sizeof path, "%s/%s.lock", dir, runs[i]);
        test_write_str(path, "");
        if (i == 1) {
            live_lock = open(path, O_RDWR);
            ASSERT_EQ(flock(live_lock, LOCK_EX), 0);
        }
    }
    sl_store *s = open_s3();
    snprintf(path, sizeof path, "%s/run-1-1-0", dir);
    ASSERT_NE(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/run-1-1-0.lock", dir);
    ASSERT_NE(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/run-2-2-0/7", dir);
    ASSERT_EQ(access(path, F_OK), 0);
    sl_store_close(s);
    close(live_lock);
}

TEST(an_unreachable_endpoint_fails_open)
{
    server_start();
    srv.stop = 1; /* nobody listens on the port now */
    usleep(300000);
    close(srv.listen_fd);
    sl_store *s = NULL;
    char why[600] = "";
    ASSERT_EQ(try_open("s3://" BUCKET, &s, why, sizeof why), SLUICE_ESTORE);
    ASSERT_STR_CONTAINS(why, "bucket " BUCKET " at http://127.0.0.1:");
}

TEST(virtual_hosted_addressing_puts_the_bucket_in_the_host)
{
    server_start();
    /* libcurl resolves NAME.localhost to loopback itself. */
    snprintf(endpoint, sizeof endpoint, "http://localhost:%d", srv.port);
    sl_store_opts opts = {4, endpoint, 0, "spool"};
    sl_store *s = NULL;
    char why[600] = "";
    if (sl_store_open("s3://" BUCKET "/" PREFIX, &opts, &s, why, sizeof why) !=
        SLUICE_OK)
        TEST_FAIL_("sl_store_open: %s", why);
    put_object(s, "a b.jpg", BODY, "image/png", NULL, NULL);
    ASSERT_EQ(wait_result(s).status, SL_STORED);
    const captured *c = find_request("PUT", "/" PREFIX "/a%20b.jpg");
    char host[64];
    snprintf(host, sizeof host, BUCKET ".localhost:%d", srv.port);
    ASSERT_STR_EQ(header_of(c, "Host"), host);
    check_signature(c, "/" PREFIX "/a%20b.jpg");
    sl_store_close(s);
}
