/*
 * The S3 store's check at open, before anything is downloaded: one
 * signed PUT that S3 must refuse for its digest, which proves the bucket,
 * the credentials, the region and the permission to write. Blocking,
 * with a few retries for an endpoint that cannot be reached.
 */
#include "s3.h"

#include <string.h>
#include <time.h>

#define PROBE_TRIES 4               /* at open, for transient failures */
#define PROBE_KEY   ".sluice-probe" /* keys cannot start with .sluice */
/* SHA-256 of nothing: the payload hash of an empty body. */
#define EMPTY_SHA256                                                           \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static size_t
read_nothing(char *buf, size_t size, size_t n, void *arg)
{
    (void)buf, (void)size, (void)n, (void)arg;
    return 0;
}

/* One blocking request, its status, and the verdict of sl_s3_judge. */
static sl_s3_verdict
request_now(sl_s3_store *ss, const sl_aws_creds *creds, const char *method,
            const char *url, struct curl_slist *headers,
            sl_s3_response *resp, long *status, char *msg, size_t size,
            sluice_err *err)
{
    char errbuf[CURL_ERROR_SIZE];
    CURL *e = curl_easy_init();
    *status = 0;
    if (!e) {
        sl_fmt(msg, size, "out of memory");
        *err = SLUICE_ENOMEM;
        return SL_S3_FATAL;
    }
    sl_s3_response_reset(resp);
    sl_s3_setup_easy(ss, creds, e, url, headers, resp, errbuf);
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
    sl_s3_verdict v =
        sl_s3_judge(ss, rc, *status, resp, errbuf, msg, size, err);
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
sluice_err
sl_s3_probe(sl_store *s)
{
    sl_s3_store *ss = sl_s3_state(s);
    static const unsigned char other_md5[16] = {0x5e, 0x1c, 0x77, 0xa2};
    char md5_b64[32], line[64], msg[300];
    struct curl_slist *headers = NULL;
    sl_buf url;
    sl_s3_response resp;
    sl_buf_init(&url);
    sl_buf_init(&resp.body);
    sl_s3_base64(md5_b64, other_md5, sizeof other_md5);
    sl_fmt(line, sizeof line, "Content-MD5: %s", md5_b64);
    sluice_err err = SLUICE_ENOMEM;
    sl_aws_creds creds;
    struct curl_slist *token = NULL;
    if ((err = sl_aws_chain_get(ss->creds, &creds, msg, sizeof msg)) !=
        SLUICE_OK) {
        sl_store_fail(s, err, "store %s: %s", s->location, msg);
        goto done;
    }
    err = SLUICE_ENOMEM;
    if (sl_buf_printf(&url, "%s%s", ss->object_base, PROBE_KEY) != 0 ||
        sl_s3_slist_add(&headers, "Content-Type: application/octet-stream") ||
        sl_s3_slist_add(&headers, line) ||
        sl_s3_slist_add(&headers, "x-amz-content-sha256: " EMPTY_SHA256) ||
        sl_s3_token_line(&headers, &token, &creds) != 0) {
        sl_store_fail(s, err, "out of memory");
        goto done;
    }
    for (unsigned attempt = 1;; attempt++) {
        long status;
        sl_s3_verdict v = request_now(ss, &creds, "PUT", url.data, headers, &resp,
                                      &status, msg, sizeof msg, &err);
        char code[64];
        sl_s3_xml_text(resp.body.data, "Code", code, sizeof code);
        if (v == SL_S3_STORED) {
            /* The server does not check digests: take the probe away. */
            request_now(ss, &creds, "DELETE", url.data, headers, &resp, &status, msg,
                        sizeof msg, &err);
            err = SLUICE_OK;
            break;
        }
        if (status == 400 && (strcmp(code, "BadDigest") == 0 ||
                              strcmp(code, "InvalidDigest") == 0)) {
            err = SLUICE_OK;
            break;
        }
        if (v == SL_S3_AGAIN && attempt < PROBE_TRIES) {
            struct timespec pause = {0, 250000000L << (attempt - 1)};
            while (pause.tv_nsec >= 1000000000L) {
                pause.tv_sec++;
                pause.tv_nsec -= 1000000000L;
            }
            nanosleep(&pause, NULL);
            continue;
        }
        if (v != SL_S3_FATAL)
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
