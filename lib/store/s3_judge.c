/*
 * What an answer from S3 means for the object: stored, try the upload
 * again, fetch the record again, the record's failure, or a configuration
 * that stops the run. The lists of S3's error codes live here, and the
 * one-line message that names the bucket and S3's code and message.
 */
#include "s3.h"

#include <string.h>

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
 * bucket and S3's error code and message) for all but SL_S3_STORED.
 * `*err` gets the sluice code for SL_S3_FATAL.
 */
sl_s3_verdict
sl_s3_judge(const sl_s3_store *ss, CURLcode rc, long status,
            const sl_s3_response *resp, const char *curl_error, char *msg,
            size_t size, sluice_err *err)
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
            return SL_S3_RECORD;
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
            return SL_S3_FATAL;
        default:
            sl_fmt(msg, size, "bucket %s at %s: %s", ss->bucket, ss->endpoint,
                   why);
            return SL_S3_AGAIN;
        }
    }
    if (status >= 200 && status < 300)
        return SL_S3_STORED;

    char code[64], text[160], hint[100] = "";
    sl_s3_xml_text(resp->body.data, "Code", code, sizeof code);
    sl_s3_xml_text(resp->body.data, "Message", text, sizeof text);
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
        return SL_S3_AGAIN;
    if (status == 400 && code_in(code, suspect, SL_ARRAY_LEN(suspect)))
        return SL_S3_RECORD;
    if (status == 413 || code_in(code, reject, SL_ARRAY_LEN(reject)))
        return SL_S3_REJECT;
    /* 403 (credentials, permissions, a skewed clock), 404 (no bucket),
     * 301 (another region), other 4xx: the configuration is wrong. */
    *err = status == 403 ? SLUICE_EACCES : SLUICE_ECONFIG;
    return SL_S3_FATAL;
}
