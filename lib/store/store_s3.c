/*
 * The S3 store: s3://BUCKET[/PREFIX]. A body is spooled to a temp file as
 * it downloads (hashed with MD5 on the way); on submit, an upload thread
 * with its own libcurl multi handle PUTs it to PREFIX/KEY, signed by
 * libcurl (SigV4), at most `concurrency` at once. Transient failures are
 * retried from the spool for as long as the store is open; configuration
 * errors (credentials, bucket, region) stop the run.
 */
#define _GNU_SOURCE /* pipe2 */
#include "store.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../backoff.h"

#define ERROR_BODY_MAX  4096  /* of an error response, kept for its XML */
#define BACKOFF_BASE_MS 200   /* first retry of an upload, at most */
#define BACKOFF_CAP_MS  30000 /* between retries, at most */
#define PROBE_TRIES     4     /* at open, for transient failures */
#define S3_KEY_MAX      1024  /* bytes of PREFIX/KEY */
#define PREFIX_MAX      512
#define SOURCE_URL_MAX  1536 /* metadata values over these are left out */
#define ORIGIN_ETAG_MAX 256  /* (S3 allows 2 KB of metadata in all) */
#define PROBE_KEY       ".sluice-probe" /* keys cannot start with .sluice */
/* SHA-256 of nothing: the payload hash of an empty body. */
#define EMPTY_SHA256                                                           \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* What came back from S3, besides the status. */
typedef struct {
    sl_buf body;     /* the start of the body: an error's XML */
    char region[64]; /* x-amz-bucket-region, when S3 says */
} s3_response;

typedef struct {
    int fd; /* the spool file, in the run's spool directory */
    char spool_name[24];
    EVP_MD_CTX *md5;
    char content_md5[32];     /* base64 of the MD5 */
    char checksum_sha256[48]; /* base64 of the SHA-256 */
    bool early;               /* judged at submit: no upload, status set */
    sl_object *next;          /* in the to-do, waiting, active or done list */
    char *url;
    struct curl_slist *headers;
    CURL *easy; /* while uploading */
    uint64_t read_pos;
    unsigned tries;   /* uploads that failed and will be tried again */
    int64_t due_mono; /* when the next try may start */
    s3_response resp;
    char curl_error[CURL_ERROR_SIZE];
    sl_store_status status;
    sluice_err err;
    char message[200];
} s3_object;

typedef struct {
    char *bucket;
    char *prefix;      /* "" or PREFIX, without slashes at the ends */
    char *object_base; /* the URL of PREFIX/, encoded; a key follows */
    char *endpoint;    /* scheme://host[:port], for messages */
    char *sigv4;       /* "aws:amz:REGION:s3" */
    char *region;
    char *access_key;
    char *secret_key;
    char *token_header; /* "x-amz-security-token: ...", or NULL */
    char *ca_bundle;    /* $AWS_CA_BUNDLE, or NULL */
    unsigned concurrency;
    int spool_fd;   /* SPOOL/sluice-spool-UID/ */
    sl_run_dir run; /* this run's spool directory and its lock */
    uint64_t seq;
    bool curl_ready;
    CURLM *multi;
    pthread_t uploader;
    bool uploader_started;
    pthread_mutex_t lock;
    /* Under the lock: */
    sl_object *todo_head, *todo_tail; /* submitted, not taken yet */
    sl_object *done_head, *done_tail; /* results to reap */
    size_t busy;
    size_t backing_off; /* of busy: failed once, waiting to try again */
    bool stopping;
    int wake[2]; /* a byte is written when results are waiting */
    /* The uploader's own: */
    sl_object *wait_head, *wait_tail; /* to upload once due */
    sl_object *active;                /* uploading now */
    unsigned n_active;
    bool broken; /* a failure stopped the store: upload nothing more */
    char broken_msg[200];
    uint64_t rng;
} s3_store;

static s3_store *
ss_of(sl_store *s)
{
    return s->state;
}

static s3_object *
so_of(sl_object *o)
{
    return sl_object_state(o);
}

/* ------------------------------------------------------------ text */

static bool
is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

/*
 * Append `s` URI-encoded the way SigV4 wants an S3 path: every byte but
 * the unreserved ones as %XX (upper-case hex), '/' kept between segments.
 * S3 does not encode the path twice, so the URL's path is the canonical
 * URI that libcurl signs. Returns 0, or -1 when out of memory.
 */
static int
uri_encode(sl_buf *b, const char *s)
{
    static const char digits[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int rc;
        if (is_unreserved(*p) || *p == '/') {
            rc = sl_buf_putc(b, (char)*p);
        } else {
            char esc[3] = {'%', digits[*p >> 4], digits[*p & 15]};
            rc = sl_buf_append(b, esc, 3);
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

/*
 * A metadata value S3 keeps as sent: printable ASCII but space; any other
 * byte (space, control, non-ASCII) becomes %XX. Returns 0, or -1.
 */
static int
meta_encode(sl_buf *b, const char *s)
{
    static const char digits[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int rc;
        if (*p > 0x20 && *p < 0x7f) {
            rc = sl_buf_putc(b, (char)*p);
        } else {
            char esc[3] = {'%', digits[*p >> 4], digits[*p & 15]};
            rc = sl_buf_append(b, esc, 3);
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

/*
 * The origin's content type made a safe header value: runs of blanks
 * become one space, ends trimmed (SigV4 canonicalises values so; sending
 * them already so leaves no room for disagreement); anything but
 * printable ASCII, or nothing at all, gives application/octet-stream.
 */
static void
safe_content_type(char *dst, size_t size, const char *src)
{
    size_t n = 0;
    bool space = false;
    for (const unsigned char *p = (const unsigned char *)(src ? src : ""); *p;
         p++) {
        if (*p == ' ' || *p == '\t') {
            space = n > 0;
            continue;
        }
        if (*p < 0x20 || *p >= 0x7f || n + 3 >= size) {
            n = 0;
            break;
        }
        if (space)
            dst[n++] = ' ';
        space = false;
        dst[n++] = (char)*p;
    }
    dst[n] = '\0';
    if (n == 0)
        sl_fmt(dst, size, "application/octet-stream");
}

/*
 * The text of the first <tag>...</tag> in an XML body, with the five
 * predefined entities decoded and control bytes made spaces, cut to fit.
 * S3's error bodies are this simple; "" when the tag is not there.
 */
static void
xml_text(const char *body, const char *tag, char *dst, size_t size)
{
    char open[40], close[40];
    dst[0] = '\0';
    if (!body)
        return;
    sl_fmt(open, sizeof open, "<%s>", tag);
    sl_fmt(close, sizeof close, "</%s>", tag);
    const char *start = strstr(body, open);
    if (!start)
        return;
    start += strlen(open);
    const char *end = strstr(start, close);
    if (!end)
        return;
    static const struct {
        const char *name;
        char c;
    } entities[] = {{"&amp;", '&'},
                    {"&lt;", '<'},
                    {"&gt;", '>'},
                    {"&quot;", '"'},
                    {"&apos;", '\''}};
    size_t n = 0;
    for (const char *p = start; p < end && n + 1 < size;) {
        char c = *p;
        size_t skip = 1;
        if (c == '&') {
            for (size_t i = 0; i < SL_ARRAY_LEN(entities); i++) {
                size_t len = strlen(entities[i].name);
                if ((size_t)(end - p) >= len &&
                    strncmp(p, entities[i].name, len) == 0) {
                    c = entities[i].c;
                    skip = len;
                    break;
                }
            }
        }
        dst[n++] = (unsigned char)c < 0x20 || c == 0x7f ? ' ' : c;
        p += skip;
    }
    dst[n] = '\0';
}

/* Base64 of `len` bytes into dst (at least 4 * ceil(len / 3) + 1). */
static void
base64(char *dst, const unsigned char *src, size_t len)
{
    EVP_EncodeBlock((unsigned char *)dst, src, (int)len);
}

/* 64 hex digits to 32 bytes; false if they are not that. */
static bool
unhex_sha256(const char *hex, unsigned char out[32])
{
    if (!hex || strlen(hex) != 64)
        return false;
    for (int i = 0; i < 64; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (v < 0)
            return false;
        if (i % 2 == 0)
            out[i / 2] = (unsigned char)(v << 4);
        else
            out[i / 2] |= (unsigned char)v;
    }
    return true;
}

/* ------------------------------------------------------------ requests */

static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
    s3_response *resp = arg;
    size_t len = size * n;
    static const char name[] = "x-amz-bucket-region:";
    size_t name_len = sizeof name - 1;
    if (len > name_len && strncasecmp(data, name, name_len) == 0) {
        const char *v = data + name_len;
        size_t vlen = len - name_len;
        while (vlen > 0 && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        while (vlen > 0 && (unsigned char)v[vlen - 1] <= ' ')
            vlen--;
        /* A region is lower-case letters, digits and dashes. */
        size_t i = 0;
        for (; i < vlen && i + 1 < sizeof resp->region; i++) {
            char c = v[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
                break;
            resp->region[i] = c;
        }
        resp->region[i] = '\0';
    }
    return len;
}

static size_t
on_response_body(char *data, size_t size, size_t n, void *arg)
{
    s3_response *resp = arg;
    size_t len = size * n;
    size_t room =
        resp->body.len < ERROR_BODY_MAX ? ERROR_BODY_MAX - resp->body.len : 0;
    if (room > 0 && sl_buf_append(&resp->body, data, SL_MIN(len, room)) != 0)
        return 0; /* out of memory: abort */
    return len;
}

static void
response_reset(s3_response *resp)
{
    sl_buf_clear(&resp->body);
    resp->region[0] = '\0';
}

/* The options every request to S3 shares: signing, timeouts, capture. */
static void
setup_easy(const s3_store *ss, CURL *e, const char *url,
           struct curl_slist *headers, s3_response *resp, char *errbuf)
{
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "sluice/0.1");
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, ss->sigv4);
    curl_easy_setopt(e, CURLOPT_USERNAME, ss->access_key);
    curl_easy_setopt(e, CURLOPT_PASSWORD, ss->secret_key);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_response_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 15000L);
    /* Nothing moving either way for 30 s (no answer, say): give up. */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 30L);
    if (ss->ca_bundle)
        curl_easy_setopt(e, CURLOPT_CAINFO, ss->ca_bundle);
    errbuf[0] = '\0';
}

typedef enum {
    V_STORED, /* 2xx */
    V_AGAIN,  /* transient: upload again from the spool, later */
    V_RECORD, /* the body is suspect: the record is tried again */
    V_REJECT, /* this object can never be stored */
    V_FATAL   /* configuration: stop the run */
} s3_verdict;

static bool
code_in(const char *code, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(code, list[i]) == 0)
            return true;
    return false;
}

/*
 * Judge a finished request, and say why in `msg` (one line, naming the
 * bucket and S3's error code and message) for all but V_STORED.
 * `*err` gets the sluice code for V_FATAL.
 */
static s3_verdict
judge(const s3_store *ss, CURLcode rc, long status, const s3_response *resp,
      const char *curl_error, char *msg, size_t size, sluice_err *err)
{
    *err = SLUICE_ESTORE;
    if (rc != CURLE_OK) {
        const char *why =
            curl_error && *curl_error ? curl_error : curl_easy_strerror(rc);
        switch (rc) {
        case CURLE_READ_ERROR:
        case CURLE_ABORTED_BY_CALLBACK:
        case CURLE_SEND_FAIL_REWIND:
            sl_fmt(msg, size, "cannot read its spool file: %s", why);
            return V_RECORD;
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
        case CURLE_NOT_BUILT_IN:
        case CURLE_OUT_OF_MEMORY:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_ENGINE_NOTFOUND:
        case CURLE_SSL_ENGINE_SETFAILED:
        case CURLE_SSL_ENGINE_INITFAILED:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_LOGIN_DENIED:
        case CURLE_BAD_FUNCTION_ARGUMENT:
        case CURLE_UNKNOWN_OPTION:
            *err = SLUICE_ECONFIG;
            sl_fmt(msg, size, "bucket %s at %s: %s", ss->bucket, ss->endpoint,
                   why);
            return V_FATAL;
        default:
            sl_fmt(msg, size, "bucket %s at %s: %s", ss->bucket, ss->endpoint,
                   why);
            return V_AGAIN;
        }
    }
    if (status >= 200 && status < 300)
        return V_STORED;

    char code[64], text[160], hint[100] = "";
    xml_text(resp->body.data, "Code", code, sizeof code);
    xml_text(resp->body.data, "Message", text, sizeof text);
    if (resp->region[0] && strcmp(resp->region, ss->region) != 0)
        sl_fmt(hint, sizeof hint, "; the bucket is in %s: set AWS_REGION",
               resp->region);
    if (code[0])
        sl_fmt(msg, size, "bucket %s: %s%s%s (HTTP %ld%s)", ss->bucket, code,
               text[0] ? ": " : "", text, status, hint);
    else
        sl_fmt(msg, size, "bucket %s: HTTP %ld from %s%s", ss->bucket, status,
               ss->endpoint, hint);

    static const char *const again[] = {
        "RequestTimeout", "IncompleteBody",     "SlowDown",
        "InternalError",  "ServiceUnavailable", "OperationAborted"};
    static const char *const suspect[] = {"BadDigest", "InvalidDigest",
                                          "XAmzContentSHA256Mismatch",
                                          "InvalidChecksum"};
    static const char *const reject[] = {"EntityTooLarge", "KeyTooLongError",
                                         "MetadataTooLarge"};
    if (status >= 500 || status == 429 || status == 408 || status == 409 ||
        status == 307 || code_in(code, again, SL_ARRAY_LEN(again)))
        return V_AGAIN;
    if (status == 400 && code_in(code, suspect, SL_ARRAY_LEN(suspect)))
        return V_RECORD;
    if (status == 413 || code_in(code, reject, SL_ARRAY_LEN(reject)))
        return V_REJECT;
    /* 403 (credentials, permissions, a skewed clock), 404 (no bucket),
     * 301 (another region), other 4xx: the configuration is wrong. */
    *err = status == 403 ? SLUICE_EACCES : SLUICE_ECONFIG;
    return V_FATAL;
}

/* Append a header line to a list; non-zero when out of memory. */
static int
slist_add(struct curl_slist **list, const char *line)
{
    struct curl_slist *grown = curl_slist_append(*list, line);
    if (!grown)
        return -1;
    *list = grown;
    return 0;
}

static size_t
read_nothing(char *buf, size_t size, size_t n, void *arg)
{
    (void)buf, (void)size, (void)n, (void)arg;
    return 0;
}

/* One blocking request (the probe at open), its status, and the verdict
 * of `judge`. */
static s3_verdict
request_now(s3_store *ss, const char *method, const char *url,
            struct curl_slist *headers, s3_response *resp, long *status,
            char *msg, size_t size, sluice_err *err)
{
    char errbuf[CURL_ERROR_SIZE];
    CURL *e = curl_easy_init();
    *status = 0;
    if (!e) {
        sl_fmt(msg, size, "out of memory");
        *err = SLUICE_ENOMEM;
        return V_FATAL;
    }
    response_reset(resp);
    setup_easy(ss, e, url, headers, resp, errbuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 20000L);
    if (strcmp(method, "PUT") == 0) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)0);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, read_nothing);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    s3_verdict v = judge(ss, rc, *status, resp, errbuf, msg, size, err);
    curl_easy_cleanup(e);
    return v;
}

/*
 * Check the bucket and credentials before any download: PUT an empty
 * PREFIX/.sluice-probe with a Content-MD5 that cannot match. S3 checks
 * the signature, the bucket and the permission to write there first, so
 * its answer is BadDigest when all is well, and nothing is written; a
 * server that does not check digests stores the probe, which is then
 * deleted. Needs only the permission the uploads need (s3:PutObject).
 */
static sluice_err
probe(sl_store *s)
{
    s3_store *ss = ss_of(s);
    static const unsigned char other_md5[16] = {0x5e, 0x1c, 0x77, 0xa2};
    char md5_b64[32], line[64], msg[300];
    struct curl_slist *headers = NULL;
    sl_buf url;
    s3_response resp;
    sl_buf_init(&url);
    sl_buf_init(&resp.body);
    base64(md5_b64, other_md5, sizeof other_md5);
    sl_fmt(line, sizeof line, "Content-MD5: %s", md5_b64);
    sluice_err err = SLUICE_ENOMEM;
    if (sl_buf_printf(&url, "%s%s", ss->object_base, PROBE_KEY) != 0 ||
        slist_add(&headers, "Content-Type: application/octet-stream") ||
        slist_add(&headers, line) ||
        slist_add(&headers, "x-amz-content-sha256: " EMPTY_SHA256) ||
        (ss->token_header && slist_add(&headers, ss->token_header))) {
        sl_store_fail(s, err, "out of memory");
        goto done;
    }
    for (unsigned attempt = 1;; attempt++) {
        long status;
        s3_verdict v = request_now(ss, "PUT", url.data, headers, &resp, &status,
                                   msg, sizeof msg, &err);
        char code[64];
        xml_text(resp.body.data, "Code", code, sizeof code);
        if (v == V_STORED) {
            /* The server does not check digests: take the probe away. */
            request_now(ss, "DELETE", url.data, headers, &resp, &status, msg,
                        sizeof msg, &err);
            err = SLUICE_OK;
            break;
        }
        if (status == 400 && (strcmp(code, "BadDigest") == 0 ||
                              strcmp(code, "InvalidDigest") == 0)) {
            err = SLUICE_OK;
            break;
        }
        if (v == V_AGAIN && attempt < PROBE_TRIES) {
            struct timespec pause = {0, 250000000L << (attempt - 1)};
            while (pause.tv_nsec >= 1000000000L) {
                pause.tv_sec++;
                pause.tv_nsec -= 1000000000L;
            }
            nanosleep(&pause, NULL);
            continue;
        }
        if (v != V_FATAL)
            err = SLUICE_ESTORE;
        sl_store_fail(s, err, "store %s: %s", s->location, msg);
        break;
    }
done:
    curl_slist_free_all(headers);
    sl_buf_free(&url);
    sl_buf_free(&resp.body);
    return err;
}

/* ------------------------------------------------------------ opening */

static sluice_err
errno_fail(sl_store *s, const char *what, const char *path, int err)
{
    sluice_err code =
        err == ENOSPC || err == EDQUOT || err == EFBIG  ? SLUICE_ENOSPACE
        : err == EACCES || err == EPERM || err == EROFS ? SLUICE_EACCES
                                                        : SLUICE_ESTORE;
    return sl_store_fail(s, code, "store %s: %s %s: %s", s->location, what,
                         path, strerror(err));
}

static bool
bucket_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

/* Split s3://BUCKET[/PREFIX] and check both parts. */
static sluice_err
parse_location(sl_store *s, const char *location)
{
    s3_store *ss = ss_of(s);
    const char *p = location + strlen("s3://");
    size_t blen = strcspn(p, "/");
    if (blen == 0 || blen > 255)
        return sl_store_fail(s, SLUICE_EINVAL,
                             "--store %s: want s3://BUCKET[/PREFIX]", location);
    for (size_t i = 0; i < blen; i++)
        if (!bucket_char(p[i]))
            return sl_store_fail(s, SLUICE_EINVAL,
                                 "--store %s: a bucket name is letters, "
                                 "digits, '.', '-' and '_'",
                                 location);
    ss->bucket = sl_strndup(p, blen);
    p += blen;
    if (*p == '/')
        p++;
    size_t plen = strlen(p);
    while (plen > 0 && p[plen - 1] == '/')
        plen--;
    ss->prefix = sl_strndup(p, plen);
    if (!ss->bucket || !ss->prefix)
        return sl_store_fail(s, SLUICE_ENOMEM, "out of memory");
    if (plen > PREFIX_MAX || !sl_utf8_valid(p, plen, NULL))
        return sl_store_fail(s, SLUICE_EINVAL,
                             "--store %s: the prefix must be UTF-8, at most "
                             "%d bytes",
                             location, PREFIX_MAX);
    /* Segments as keys have them: not empty, not . or .., no controls. */
    for (const char *seg = ss->prefix; plen > 0 && *seg;) {
        size_t len = strcspn(seg, "/");
        bool dots = (len == 1 && seg[0] == '.') ||
                    (len == 2 && seg[0] == '.' && seg[1] == '.');
        bool control = false;
        for (size_t i = 0; i < len; i++)
            control |= (unsigned char)seg[i] < 0x20 || seg[i] == 0x7f;
        if (len == 0 || dots || control)
            return sl_store_fail(s, SLUICE_EINVAL,
                                 "--store %s: the prefix has an empty, . "
                                 "or .. segment, or a control byte",
                                 location);
        seg += len;
        if (*seg == '/')
            seg++;
    }
    return SLUICE_OK;
}

static bool
ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static const char *
env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Credentials, region and endpoint from the options and the environment,
 * and the URL objects go to. */
static sluice_err
configure(sl_store *s, const sl_store_opts *opts)
{
    s3_store *ss = ss_of(s);
    const char *key = env_nonempty("AWS_ACCESS_KEY_ID");
    const char *secret = env_nonempty("AWS_SECRET_ACCESS_KEY");
    const char *token = env_nonempty("AWS_SESSION_TOKEN");
    if (!key || !secret)
        return sl_store_fail(s, SLUICE_ECONFIG,
                             "store %s: no AWS credentials: set "
                             "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                             "(and AWS_SESSION_TOKEN for temporary ones)",
                             s->location);
    const char *region = env_nonempty("AWS_REGION");
    if (!region)
        region = env_nonempty("AWS_DEFAULT_REGION");
    if (!region)
        region = "us-east-1";
    size_t rlen = strlen(region);
    if (rlen > 40 ||
        strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != rlen)
        return sl_store_fail(s, SLUICE_EINVAL,
                             "store %s: AWS_REGION '%.40s' is not a region "
                             "name",
                             s->location, region);
    ss->access_key = sl_strdup(key);
    ss->secret_key = sl_strdup(secret);
    ss->region = sl_strdup(region);
    if (!ss->access_key || !ss->secret_key || !ss->region)
        return sl_store_fail(s, SLUICE_ENOMEM, "out of memory");
    if (token) {
        size_t n = strlen(token) + 32;
        if (!(ss->token_header = sl_malloc(n)))
            return sl_store_fail(s, SLUICE_ENOMEM, "out of memory");
        sl_fmt(ss->token_header, n, "x-amz-security-token: %s", token);
    }
    const char *ca = env_nonempty("AWS_CA_BUNDLE");
    if (ca && !(ss->ca_bundle = sl_strdup(ca)))
        return sl_store_fail(s, SLUICE_ENOMEM, "out of memory");

    /* The endpoint. */
    const char *what = "--s3-endpoint";
    const char *endpoint =
        opts->s3_endpoint && *opts->s3_endpoint ? opts->s3_endpoint : NULL;
    if (!endpoint && (endpoint = env_nonempty("AWS_ENDPOINT_URL_S3")))
        what = "AWS_ENDPOINT_URL_S3";
    if (!endpoint && (endpoint = env_nonempty("AWS_ENDPOINT_URL")))
        what = "AWS_ENDPOINT_URL";
    char aws[128];
    if (!endpoint) {
        sl_fmt(aws, sizeof aws, "https://s3.%s.amazonaws.com", region);
        endpoint = aws;
        what = "the endpoint";
    }
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    char *query = NULL;
    sluice_err err = SLUICE_OK;
    if (!u) {
        err = sl_store_fail(s, SLUICE_ENOMEM, "out of memory");
        goto out;
    }
    if (curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
        curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK) {
        err = sl_store_fail(s, SLUICE_EINVAL,
                            "store %s: %s '%.200s' is not an http or https "
                            "URL without a query",
                            s->location, what, endpoint);
        goto out;
    }
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    size_t path_len = path ? strlen(path) : 0;
    while (path_len > 0 && path[path_len - 1] == '/')
        path_len--;
    bool is_aws = ends_with_ci(host, ".amazonaws.com") ||
                  ends_with_ci(host, ".amazonaws.com.cn");
    /* A bucket that is not a DNS label (dots break the certificate's
     * wildcard) is addressed in the path, as the AWS SDKs do. */
    bool dns_bucket = strspn(ss->bucket, "abcdefghijklmnopqrstuvwxyz"
                                         "0123456789-") == strlen(ss->bucket);
    bool path_style = opts->s3_path_style == 1 ||
                      (opts->s3_path_style < 0 && (!is_aws || !dns_bucket));
    sl_buf b;
    sl_buf_init(&b);
    int rc = sl_buf_printf(&b, "%s://%s%s%s", scheme, host, port ? ":" : "",
                           port ? port : "");
    ss->endpoint = rc == 0 ? sl_strdup(b.data) : NULL;
    sl_buf_clear(&b);
    rc |= sl_buf_printf(&b, "%s://%s%s%s%s%s%.*s/", scheme,
                        path_style ? "" : ss->bucket, path_style ? "" : ".",
                        host, port ? ":" : "", port ? port : "", (int)path_len,
                        path ? path : "");
    if (path_style)
        rc |= uri_encode(&b, ss->bucket) | sl_buf_putc(&b, '/');
    if (ss->prefix[0])
        rc |= uri_encode(&b, ss->prefix) | sl_buf_putc(&b, '/');
    size_t n = strlen(region) + 16;
    ss->sigv4 = sl_malloc(n);
    if (rc != 0 || !ss->endpoint || !ss->sigv4) {
        sl_buf_free(&b);
        err = sl_store_fail(s, SLUICE_ENOMEM, "out of memory");
        goto out;
    }
    sl_fmt(ss->sigv4, n, "aws:amz:%s:s3", region);
    ss->object_base = b.data; /* the buffer's memory is ours now */
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);
    return err;
}

/* SPOOL/sluice-spool-UID/ (ours alone), and this run's directory in it. */
static sluice_err
open_spool(sl_store *s, const char *dir)
{
    s3_store *ss = ss_of(s);
    const char *root = dir && *dir ? dir : env_nonempty("TMPDIR");
    if (!root)
        root = "/tmp";
    if (dir && *dir && mkdir(root, 0700) != 0 && errno != EEXIST)
        return errno_fail(s, "cannot create the spool", root, errno);
    int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        return errno_fail(s, "cannot open the spool", root, errno);
    char name[48];
    sl_fmt(name, sizeof name, "sluice-spool-%lu", (unsigned long)geteuid());
    if (mkdirat(root_fd, name, 0700) != 0 && errno != EEXIST) {
        int saved = errno;
        close(root_fd);
        return errno_fail(s, "cannot write in the spool", root, saved);
    }
    ss->spool_fd =
        openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int saved = errno;
    close(root_fd);
    if (ss->spool_fd < 0)
        return errno_fail(s, "cannot open the spool", root, saved);
    struct stat sb;
    if (fstat(ss->spool_fd, &sb) != 0 || sb.st_uid != geteuid())
        return sl_store_fail(s, SLUICE_EACCES,
                             "store %s: spool %s/%s belongs to another user",
                             s->location, root, name);
    int err = sl_run_dir_open(ss->spool_fd, &ss->run);
    if (err)
        return errno_fail(s, "cannot write in the spool", root, err);
    return SLUICE_OK;
}

static void *upload_main(void *arg);

static sluice_err
s3_open(sl_store *s, const char *location, const sl_store_opts *opts)
{
    s3_store *ss = ss_of(s);
    ss->spool_fd = ss->run.dir_fd = ss->run.lock_fd = -1;
    ss->wake[0] = ss->wake[1] = -1;
    pthread_mutex_init(&ss->lock, NULL);
    ss->concurrency = opts->concurrency ? opts->concurrency : 16;
    ss->rng = (uint64_t)sl_now_ms() ^ ((uint64_t)(uintptr_t)ss << 12);
    sluice_err err;
    if ((err = parse_location(s, location)) != SLUICE_OK ||
        (err = configure(s, opts)) != SLUICE_OK)
        return err;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return sl_store_fail(s, SLUICE_ESTORE, "cannot start libcurl");
    ss->curl_ready = true;
    /* The bucket and credentials first: nothing is downloaded for a store
     * that cannot take it. */
    if ((err = probe(s)) != SLUICE_OK ||
        (err = open_spool(s, opts->spool_dir)) != SLUICE_OK)
        return err;
    if (pipe2(ss->wake, O_NONBLOCK | O_CLOEXEC) != 0)
        return sl_store_fail(s, SLUICE_ESTORE, "store %s: pipe: %s",
                             s->location, strerror(errno));
    if (!(ss->multi = curl_multi_init()))
        return sl_store_fail(s, SLUICE_ENOMEM, "out of memory");
    curl_multi_setopt(ss->multi, CURLMOPT_MAXCONNECTS, (long)ss->concurrency);
    /* Signals are the caller's thread's business. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&ss->uploader, NULL, upload_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return sl_store_fail(s, SLUICE_ESTORE, "cannot start a thread");
    ss->uploader_started = true;
    return SLUICE_OK;
}

/* Forget an object's upload state and spool file. */
static void
object_clear(s3_store *ss, sl_object *o)
{
    s3_object *so = so_of(o);
    if (so->easy) {
        curl_multi_remove_handle(ss->multi, so->easy);
        curl_easy_cleanup(so->easy);
        so->easy = NULL;
    }
    if (so->fd >= 0) {
        close(so->fd);
        so->fd = -1;
        unlinkat(ss->run.dir_fd, so->spool_name, 0);
    }
    EVP_MD_CTX_free(so->md5);
    so->md5 = NULL;
    curl_slist_free_all(so->headers);
    so->headers = NULL;
    sl_free(so->url);
    so->url = NULL;
    sl_buf_free(&so->resp.body);
}

static void
free_list(s3_store *ss, sl_object *o)
{
    while (o) {
        sl_object *next = so_of(o)->next;
        object_clear(ss, o);
        sl_object_free(o);
        o = next;
    }
}

/* Uploads still waiting are given up (their records stay in flight in
 * the queue; the next run puts them back), their spools removed. */
static void
s3_close(sl_store *s)
{
    s3_store *ss = ss_of(s);
    if (ss->uploader_started) {
        pthread_mutex_lock(&ss->lock);
        ss->stopping = true;
        pthread_mutex_unlock(&ss->lock);
        curl_multi_wakeup(ss->multi);
        pthread_join(ss->uploader, NULL);
    }
    free_list(ss, ss->todo_head);
    free_list(ss, ss->wait_head);
    free_list(ss, ss->active);
    free_list(ss, ss->done_head);
    if (ss->multi)
        curl_multi_cleanup(ss->multi);
    sl_run_dir_close(ss->spool_fd, &ss->run);
    if (ss->spool_fd >= 0)
        close(ss->spool_fd);
    for (int i = 0; i < 2; i++)
        if (ss->wake[i] >= 0)
            close(ss->wake[i]);
    if (ss->curl_ready)
        curl_global_cleanup();
    pthread_mutex_destroy(&ss->lock);
    sl_free(ss->bucket);
    sl_free(ss->prefix);
    sl_free(ss->object_base);
    sl_free(ss->endpoint);
    sl_free(ss->sigv4);
    sl_free(ss->region);
    sl_free(ss->access_key);
    sl_free(ss->secret_key);
    sl_free(ss->token_header);
    sl_free(ss->ca_bundle);
}

/* Remove the spools of runs that are no longer alive. */
static sluice_err
s3_recover(sl_store *s)
{
    s3_store *ss = ss_of(s);
    int err = sl_run_dir_reap_dead(ss->spool_fd, ss->run.name);
    return err ? errno_fail(s, "cannot read the spool", "directory", err)
               : SLUICE_OK;
}

/* ------------------------------------------------------------ writing */

static sluice_err
s3_begin(sl_store *s, sl_object *o)
{
    s3_store *ss = ss_of(s);
    s3_object *so = so_of(o);
    sl_buf_init(&so->resp.body);
    so->fd = -1;
    so->md5 = EVP_MD_CTX_new();
    if (!so->md5 || EVP_DigestInit_ex(so->md5, EVP_md5(), NULL) != 1) {
        EVP_MD_CTX_free(so->md5);
        return sl_store_fail(s, SLUICE_ENOMEM, "out of memory (MD5)");
    }
    sl_fmt(so->spool_name, sizeof so->spool_name, "%llu",
           (unsigned long long)++ss->seq);
    so->fd = openat(ss->run.dir_fd, so->spool_name,
                    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (so->fd < 0) {
        int saved = errno;
        EVP_MD_CTX_free(so->md5);
        return errno_fail(s, "cannot create a file in the spool", ss->run.name,
                          saved);
    }
    return SLUICE_OK;
}

static sluice_err
s3_write(sl_object *o, const void *data, size_t len)
{
    s3_object *so = so_of(o);
    const char *p = data;
    EVP_DigestUpdate(so->md5, data, len);
    if (sl_object_hash(o, data, len) != SLUICE_OK)
        return sl_store_fail(o->store, SLUICE_ENOMEM,
                             "out of memory (SHA-256)");
    while (len > 0) {
        ssize_t n = write(so->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return errno_fail(o->store, "cannot write in the spool",
                              ss_of(o->store)->run.name,
                              n < 0 ? errno : ENOSPC);
        p += n;
        len -= (size_t)n;
    }
    return SLUICE_OK;
}

static void
s3_discard(sl_object *o)
{
    object_clear(ss_of(o->store), o);
}

static void
s3_submit(sl_store *s, sl_object *o)
{
    s3_store *ss = ss_of(s);
    s3_object *so = so_of(o);
    unsigned char md5[EVP_MAX_MD_SIZE], sha[32];
    unsigned int md5_len = 0;
    EVP_DigestFinal_ex(so->md5, md5, &md5_len);
    base64(so->content_md5, md5, md5_len);
    size_t key_len =
        strlen(o->key) + (ss->prefix[0] ? strlen(ss->prefix) + 1 : 0);
    so->next = NULL;
    if (sl_object_hash_end(o, NULL, 0) != SLUICE_OK ||
        !unhex_sha256(o->sha256_hex, sha)) {
        so->early = true;
        so->status = SL_STORE_FAILED;
        so->err = SLUICE_ENOMEM;
        sl_fmt(so->message, sizeof so->message, "no SHA-256 for the body");
    } else if (key_len > S3_KEY_MAX) {
        so->early = true;
        so->status = SL_STORE_REJECTED;
        so->err = SLUICE_EKEY;
        sl_fmt(so->message, sizeof so->message,
               "its key is %zu bytes with the prefix; S3 allows %d", key_len,
               S3_KEY_MAX);
    } else {
        base64(so->checksum_sha256, sha, sizeof sha);
    }
    pthread_mutex_lock(&ss->lock);
    if (ss->todo_tail)
        so_of(ss->todo_tail)->next = o;
    else
        ss->todo_head = o;
    ss->todo_tail = o;
    ss->busy++;
    pthread_mutex_unlock(&ss->lock);
    curl_multi_wakeup(ss->multi);
}

static int
s3_wake_fd(sl_store *s)
{
    return ss_of(s)->wake[0];
}

static size_t
s3_reap(sl_store *s, sl_store_result *out, size_t max)
{
    s3_store *ss = ss_of(s);
    char drain[64];
    while (read(ss->wake[0], drain, sizeof drain) > 0)
        ;
    size_t n = 0;
    pthread_mutex_lock(&ss->lock);
    while (n < max && ss->done_head) {
        sl_object *o = ss->done_head;
        s3_object *so = so_of(o);
        ss->done_head = so->next;
        if (!ss->done_head)
            ss->done_tail = NULL;
        ss->busy--;
        sl_object_result(o, so->status, so->err, so->message, &out[n]);
        sl_object_free(o);
        n++;
    }
    /* More left: make sure the caller is woken again. */
    if (ss->done_head && write(ss->wake[1], "x", 1) < 0) {
        /* the pipe is full: a wake-up is already pending */
    }
    pthread_mutex_unlock(&ss->lock);
    return n;
}

/* Uploads waiting out a backoff are not counted: S3 may be down for a
 * long time, and a run that is stopping must not wait for it (closing
 * gives them up; their records stay in flight for the next run). */
static size_t
s3_busy(sl_store *s)
{
    s3_store *ss = ss_of(s);
    pthread_mutex_lock(&ss->lock);
    size_t n = ss->busy - ss->backing_off;
    pthread_mutex_unlock(&ss->lock);
    return n;
}

static void
count_backing_off(s3_store *ss, int delta)
{
    pthread_mutex_lock(&ss->lock);
    ss->backing_off += (size_t)delta;
    pthread_mutex_unlock(&ss->lock);
}

/* ------------------------------------------------------------ uploading */

/* The body, from the spool, from wherever libcurl asks. */
static size_t
read_spool(char *buf, size_t size, size_t n, void *arg)
{
    s3_object *so = arg;
    for (;;) {
        ssize_t got = pread(so->fd, buf, size * n, (off_t)so->read_pos);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return CURL_READFUNC_ABORT;
        so->read_pos += (uint64_t)got;
        return (size_t)got;
    }
}

static int
seek_spool(void *arg, curl_off_t offset, int origin)
{
    s3_object *so = arg;
    if (origin != SEEK_SET || offset < 0)
        return CURL_SEEKFUNC_CANTSEEK;
    so->read_pos = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* Hand a result to the run: the spool file goes, whatever it is. */
static void
finish(s3_store *ss, sl_object *o, sl_store_status status, sluice_err err,
       const char *msg)
{
    s3_object *so = so_of(o);
    object_clear(ss, o);
    so->status = status;
    so->err = err;
    if (msg != so->message)
        sl_copy(so->message, sizeof so->message, msg);
    so->next = NULL;
    pthread_mutex_lock(&ss->lock);
    if (ss->done_tail)
        so_of(ss->done_tail)->next = o;
    else
        ss->done_head = o;
    ss->done_tail = o;
    if (write(ss->wake[1], "x", 1) < 0) {
        /* full: a wake-up is already pending */
    }
    pthread_mutex_unlock(&ss->lock);
}

static void
wait_append(s3_store *ss, sl_object *o)
{
    so_of(o)->next = NULL;
    if (ss->wait_tail)
        so_of(ss->wait_tail)->next = o;
    else
        ss->wait_head = o;
    ss->wait_tail = o;
}

static void
active_remove(s3_store *ss, sl_object *o)
{
    for (sl_object **p = &ss->active; *p; p = &so_of(*p)->next) {
        if (*p == o) {
            *p = so_of(o)->next;
            ss->n_active--;
            return;
        }
    }
}

/* After a fatal answer: every other upload fails too, at once (the run
 * stops; their records go back to the queue untouched). The caller has
 * counted those backing off as busy again. */
static void
give_up_all(s3_store *ss)
{
    char msg[sizeof ss->broken_msg + 32];
    sl_fmt(msg, sizeof msg, "not stored: %s", ss->broken_msg);
    while (ss->active) {
        sl_object *o = ss->active;
        ss->active = so_of(o)->next;
        ss->n_active--;
        finish(ss, o, SL_STORE_FAILED, SLUICE_ESTORE, msg);
    }
    while (ss->wait_head) {
        sl_object *o = ss->wait_head;
        ss->wait_head = so_of(o)->next;
        finish(ss, o, SL_STORE_FAILED, SLUICE_ESTORE, msg);
    }
    ss->wait_tail = NULL;
}

/* The URL and headers of an object's PUT, made once for all its tries. */
static int
prepare(s3_store *ss, sl_object *o)
{
    s3_object *so = so_of(o);
    char ctype[256];
    sl_buf b;
    sl_buf_init(&b);
    safe_content_type(ctype, sizeof ctype, o->meta.content_type);
    if (sl_buf_printf(&b, "%s", ss->object_base) != 0 ||
        uri_encode(&b, o->key) != 0)
        goto nomem;
    so->url = b.data;
    sl_buf_init(&b);
#define ADD(...)                                                               \
    do {                                                                       \
        sl_buf_clear(&b);                                                      \
        if (sl_buf_printf(&b, __VA_ARGS__) != 0 ||                             \
            slist_add(&so->headers, b.data) != 0)                              \
            goto nomem;                                                        \
    } while (0)
    ADD("Content-Type: %s", ctype);
    ADD("Content-MD5: %s", so->content_md5);
    ADD("x-amz-checksum-sha256: %s", so->checksum_sha256);
    ADD("x-amz-content-sha256: %s", o->sha256_hex);
    if (ss->token_header)
        ADD("%s", ss->token_header);
#undef ADD
    const char *names[2] = {"x-amz-meta-source-url", "x-amz-meta-origin-etag"};
    const char *values[2] = {o->meta.source_url, o->meta.etag};
    size_t caps[2] = {SOURCE_URL_MAX, ORIGIN_ETAG_MAX};
    for (int i = 0; i < 2; i++) {
        if (!values[i] || !*values[i])
            continue;
        sl_buf_clear(&b);
        if (sl_buf_printf(&b, "%s: ", names[i]) != 0 ||
            meta_encode(&b, values[i]) != 0)
            goto nomem;
        if (b.len - strlen(names[i]) - 2 > caps[i])
            continue; /* too long for S3's metadata: left out */
        if (slist_add(&so->headers, b.data) != 0)
            goto nomem;
    }
    sl_buf_free(&b);
    return 0;
nomem:
    sl_buf_free(&b);
    return -1;
}

static void
start_upload(s3_store *ss, sl_object *o)
{
    s3_object *so = so_of(o);
    if (!so->url && prepare(ss, o) != 0) {
        finish(ss, o, SL_STORE_FAILED, SLUICE_ENOMEM, "out of memory");
        return;
    }
    CURL *e = curl_easy_init();
    if (!e) {
        finish(ss, o, SL_STORE_FAILED, SLUICE_ENOMEM, "out of memory");
        return;
    }
    response_reset(&so->resp);
    setup_easy(ss, e, so->url, so->headers, &so->resp, so->curl_error);
    curl_easy_setopt(e, CURLOPT_PRIVATE, o);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)o->written);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, read_spool);
    curl_easy_setopt(e, CURLOPT_READDATA, so);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, seek_spool);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, so);
    so->read_pos = 0;
    if (curl_multi_add_handle(ss->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        finish(ss, o, SL_STORE_FAILED, SLUICE_ENOMEM, "out of memory");
        return;
    }
    so->easy = e;
    so->next = ss->active;
    ss->active = o;
    ss->n_active++;
}

/* Start the waiting uploads that are due, in order, while there is room. */
static void
start_due(s3_store *ss, int64_t now)
{
    sl_object **p = &ss->wait_head, *prev = NULL;
    while (*p && ss->n_active < ss->concurrency) {
        sl_object *o = *p;
        if (so_of(o)->due_mono > now) {
            prev = o;
            p = &so_of(o)->next;
            continue;
        }
        *p = so_of(o)->next;
        if (ss->wait_tail == o)
            ss->wait_tail = prev;
        if (so_of(o)->tries > 0)
            count_backing_off(ss, -1);
        start_upload(ss, o);
    }
}

/* How long the uploader may sleep: until the next waiting upload is due,
 * if there is room to start it; libcurl's own timers cut this short. */
static int
idle_ms(const s3_store *ss, int64_t now)
{
    int64_t wait = 1000;
    if (ss->n_active < ss->concurrency)
        for (sl_object *o = ss->wait_head; o; o = so_of(o)->next)
            wait = SL_MIN(wait, so_of(o)->due_mono - now);
    return (int)SL_MAX(wait, 0);
}

static void
upload_done(s3_store *ss, CURL *e, CURLcode rc)
{
    char *priv = NULL;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
    sl_object *o = (sl_object *)(void *)priv;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    s3_object *so = so_of(o);
    curl_multi_remove_handle(ss->multi, e);
    curl_easy_cleanup(e);
    so->easy = NULL;
    active_remove(ss, o);
    sluice_err err;
    s3_verdict v = judge(ss, rc, status, &so->resp, so->curl_error, so->message,
                         sizeof so->message, &err);
    switch (v) {
    case V_STORED:
        finish(ss, o, SL_STORED, SLUICE_OK, "");
        break;
    case V_AGAIN:
        /* From the spool, after a backoff; as long as the store is open. */
        so->tries++;
        so->due_mono =
            sl_mono_ms() + sl_backoff_ms(so->tries, BACKOFF_BASE_MS,
                                         BACKOFF_CAP_MS, sl_random(&ss->rng));
        count_backing_off(ss, 1);
        wait_append(ss, o);
        break;
    case V_RECORD:
        finish(ss, o, SL_STORE_RETRY, SLUICE_ESTORE, so->message);
        break;
    case V_REJECT:
        finish(ss, o, SL_STORE_REJECTED, SLUICE_ESTORE, so->message);
        break;
    case V_FATAL:
        ss->broken = true;
        sl_copy(ss->broken_msg, sizeof ss->broken_msg, so->message);
        /* Every upload's result comes now: count the ones backing off as
         * busy again before the run sees this one, or it might stop
         * waiting before their results are in. */
        pthread_mutex_lock(&ss->lock);
        ss->backing_off = 0;
        pthread_mutex_unlock(&ss->lock);
        finish(ss, o, SL_STORE_FAILED, err, so->message);
        give_up_all(ss);
        break;
    }
}

/* Take what was submitted: judged already, or to be uploaded. */
static void
take_submitted(s3_store *ss, sl_object *o)
{
    while (o) {
        sl_object *next = so_of(o)->next;
        s3_object *so = so_of(o);
        if (so->early) {
            finish(ss, o, so->status, so->err, so->message);
        } else if (ss->broken) {
            char msg[sizeof ss->broken_msg + 32];
            sl_fmt(msg, sizeof msg, "not stored: %s", ss->broken_msg);
            finish(ss, o, SL_STORE_FAILED, SLUICE_ESTORE, msg);
        } else {
            so->due_mono = 0;
            wait_append(ss, o);
        }
        o = next;
    }
}

static void *
upload_main(void *arg)
{
    sl_store *s = arg;
    s3_store *ss = ss_of(s);
    for (;;) {
        pthread_mutex_lock(&ss->lock);
        bool stop = ss->stopping;
        sl_object *taken = ss->todo_head;
        ss->todo_head = ss->todo_tail = NULL;
        pthread_mutex_unlock(&ss->lock);
        take_submitted(ss, taken);
        if (stop)
            break;
        start_due(ss, sl_mono_ms());
        int running;
        curl_multi_perform(ss->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(ss->multi, &left)) != NULL)
            if (m->msg == CURLMSG_DONE)
                upload_done(ss, m->easy_handle, m->data.result);
        /* A slot freed: fill it now rather than after a sleep. */
        start_due(ss, sl_mono_ms());
        curl_multi_poll(ss->multi, NULL, 0, idle_ms(ss, sl_mono_ms()), NULL);
    }
    /* Closing: what is still uploading or waiting is given up; close()
     * frees it with the spools. */
    for (sl_object *o = ss->active; o; o = so_of(o)->next) {
        s3_object *so = so_of(o);
        curl_multi_remove_handle(ss->multi, so->easy);
        curl_easy_cleanup(so->easy);
        so->easy = NULL;
    }
    return NULL;
}

const sl_store_ops sl_store_s3 = {
    .backend = {SL_FAMILY_STORE, "s3", "s3://"},
    .state_size = sizeof(s3_store),
    .object_size = sizeof(s3_object),
    .open = s3_open,
    .close = s3_close,
    .recover = s3_recover,
    .begin = s3_begin,
    .write = s3_write,
    .discard = s3_discard,
    .submit = s3_submit,
    .wake_fd = s3_wake_fd,
    .reap = s3_reap,
    .busy = s3_busy,
};
