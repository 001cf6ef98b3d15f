/*
 * What every request the S3 store makes shares (the probe's and the
 * uploads'): libcurl's options for signing and timeouts, and the capture
 * of the answer that s3_judge.c reads: the start of the body and the
 * bucket's region.
 */
#include "s3.h"

#include <string.h>
#include <strings.h>

#define ERROR_BODY_MAX 4096 /* of an error response, kept for its XML */

int
sl_s3_slist_add(struct curl_slist **list, const char *line)
{
    struct curl_slist *grown = curl_slist_append(*list, line);
    if (!grown)
        return -1;
    *list = grown;
    return 0;
}

static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
    sl_s3_response *resp = arg;
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
    sl_s3_response *resp = arg;
    size_t len = size * n;
    size_t room =
        resp->body.len < ERROR_BODY_MAX ? ERROR_BODY_MAX - resp->body.len : 0;
    if (room > 0 && sl_buf_append(&resp->body, data, SL_MIN(len, room)) != 0)
        return 0; /* out of memory: abort */
    return len;
}

void
sl_s3_response_reset(sl_s3_response *resp)
{
    sl_buf_clear(&resp->body);
    resp->region[0] = '\0';
}

int
sl_s3_token_line(struct curl_slist **headers, struct curl_slist **line,
                 const sl_aws_creds *creds)
{
    if (*line) {
        struct curl_slist **at = headers;
        while (*at && *at != *line)
            at = &(*at)->next;
        if (*at)
            *at = (*line)->next;
        (*line)->next = NULL;
        curl_slist_free_all(*line);
        *line = NULL;
    }
    if (!creds->session_token[0])
        return 0;
    size_t n = strlen(creds->session_token) + 32;
    char *text = sl_malloc(n);
    if (!text)
        return -1;
    sl_fmt(text, n, "x-amz-security-token: %s", creds->session_token);
    struct curl_slist *node = curl_slist_append(NULL, text);
    sl_free(text);
    if (!node)
        return -1;
    struct curl_slist **end = headers;
    while (*end)
        end = &(*end)->next;
    *end = node;
    *line = node;
    return 0;
}

void
sl_s3_setup_easy(const sl_s3_store *ss, const sl_aws_creds *creds, CURL *e,
                 const char *url, struct curl_slist *headers,
                 sl_s3_response *resp, char *errbuf)
{
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "sluice/0.1");
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, ss->sigv4);
    curl_easy_setopt(e, CURLOPT_USERNAME, creds->access_key);
    curl_easy_setopt(e, CURLOPT_PASSWORD, creds->secret_key);
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
