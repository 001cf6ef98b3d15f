/*
 * The credential sources' HTTP exchange (http.h): one easy handle per
 * try, every try bounded in time, the answer kept in memory up to
 * SL_AWS_HTTP_MAX; and the token files they send.
 */
#include "http.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_ready;

static void
start_curl(void)
{
    curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct {
    sl_buf *body;
    bool too_long;
    bool no_memory;
} sink;

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
    sink *s = arg;
    size_t len = size * n;
    if (s->body->len + len > SL_AWS_HTTP_MAX) {
        s->too_long = true;
        return 0;
    }
    if (sl_buf_append(s->body, data, len) != 0) {
        s->no_memory = true;
        return 0;
    }
    return len;
}

/* One try. SLUICE_OK with resp->status when an answer came. */
static sluice_err
try_once(const sl_aws_http_req *req, sl_aws_http_resp *resp, char *why,
         size_t why_size)
{
    CURL *e = curl_easy_init();
    struct curl_slist *headers = NULL;
    if (!e) {
        sl_copy(why, why_size, "out of memory");
        return SLUICE_ENOMEM;
    }
    for (const char *const *h = req->headers; h && *h; h++) {
        struct curl_slist *more = curl_slist_append(headers, *h);
        if (!more) {
            curl_slist_free_all(headers);
            curl_easy_cleanup(e);
            sl_copy(why, why_size, "out of memory");
            return SLUICE_ENOMEM;
        }
        headers = more;
    }
    /* No "Expect: 100-continue" pause before a body. */
    struct curl_slist *more = curl_slist_append(headers, "Expect:");
    if (more)
        headers = more;
    char error[CURL_ERROR_SIZE] = "";
    sink s = {.body = &resp->body};
    sl_buf_clear(&resp->body);
    resp->status = 0;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    if (req->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
    } else if (strcmp(req->method, "PUT") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, req->connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->total_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "sluice");
    if (req->direct)
        curl_easy_setopt(e, CURLOPT_PROXY, "");
    const char *ca = sl_env("AWS_CA_BUNDLE");
    if (ca)
        curl_easy_setopt(e, CURLOPT_CAINFO, ca);
    CURLcode rc = curl_easy_perform(e);
    sluice_err err = SLUICE_OK;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp->status);
        if (sl_buf_putc(&resp->body, '\0') != 0) {
            sl_copy(why, why_size, "out of memory");
            err = SLUICE_ENOMEM;
        } else {
            resp->body.len--;
        }
    } else if (s.no_memory || rc == CURLE_OUT_OF_MEMORY) {
        sl_copy(why, why_size, "out of memory");
        err = SLUICE_ENOMEM;
    } else if (s.too_long) {
        sl_fmt(why, why_size, "its answer is larger than %d bytes",
               SL_AWS_HTTP_MAX);
        sl_copy(resp->brief, sizeof resp->brief, "its answer is too large");
        err = SLUICE_ENETWORK;
    } else {
        sl_copy(why, why_size, error[0] ? error : curl_easy_strerror(rc));
        sl_copy(resp->brief, sizeof resp->brief, curl_easy_strerror(rc));
        err =
            rc == CURLE_OPERATION_TIMEDOUT ? SLUICE_ETIMEOUT : SLUICE_ENETWORK;
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(e);
    return err;
}

sluice_err
sl_aws_http(const sl_aws_http_req *req, sl_aws_http_resp *resp, char *why,
            size_t why_size)
{
    pthread_once(&curl_once, start_curl);
    if (curl_ready != CURLE_OK) {
        sl_copy(why, why_size, "cannot start libcurl");
        return SLUICE_EINTERNAL;
    }
    int attempts = req->attempts > 0 ? req->attempts : 1;
    sluice_err err = SLUICE_OK;
    for (int i = 0; i < attempts; i++) {
        if (i > 0) {
            struct timespec pause = {0, 100 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
        err = try_once(req, resp, why, why_size);
        if (err == SLUICE_ENOMEM)
            return err;
        if (err == SLUICE_OK && resp->status < 500)
            return SLUICE_OK;
    }
    return err;
}

bool
sl_aws_read_token(const char *path, char *out, size_t size, char *why,
                  size_t why_size)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        sl_fmt(why, why_size, "cannot read %s: %s", path, strerror(errno));
        return false;
    }
    size_t n = fread(out, 1, size, f);
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed) {
        sl_fmt(why, why_size, "cannot read %s", path);
        return false;
    }
    if (n == size) {
        sl_fmt(why, why_size, "%s is larger than %zu bytes", path, size - 1);
        return false;
    }
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' ||
                 out[n - 1] == ' ' || out[n - 1] == '\t'))
        n--;
    out[n] = '\0';
    if (n == 0) {
        sl_fmt(why, why_size, "%s is empty", path);
        return false;
    }
    /* It goes into a header or a form: one line of text. */
    if (memchr(out, '\0', n) || strpbrk(out, "\r\n")) {
        sl_fmt(why, why_size, "%s holds more than one line of text", path);
        return false;
    }
    return true;
}
