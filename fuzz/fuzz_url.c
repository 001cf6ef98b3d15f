/*
 * libFuzzer harness: URL validation and normalisation (sl_url_check in
 * lib/record/) held against libcurl itself, as tests/test_record.c does:
 * a URL it accepts is exactly what curl prints for it, one curl refuses
 * it refuses too, and its normal form normalises to itself.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common.h"
#include "curl_reference.h"

/* The reasons sl_url_check() may give for a URL curl accepts: its own
 * stricter rules. */
static bool
stricter_rule(const char *reason)
{
    static const char *const rules[] = {
        "url: no host",
        "url: port 0",
        "url: scheme \"",
        "url: not an absolute http:// or https:// URL",
        "url: control byte",
        "url: invalid UTF-8",
        "url: longer than",
        "url: host has a %-escaped control byte or invalid UTF-8",
        "url: host's %-escapes decode to another host",
        "url: host in lower case or ASCII form is another host to libcurl",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(rules); i++)
        if (strncmp(reason, rules[i], strlen(rules[i])) == 0)
            return true;
    return false;
}

typedef struct {
    sluice_err err;
    sl_buf url, origin;
    char reason[256];
} url_result;

static void
check(const char *text, size_t len, void *reuse, url_result *r)
{
    sl_buf_init(&r->url);
    sl_buf_init(&r->origin);
    memset(r->reason, 'x', sizeof r->reason);
    r->err = sl_url_check(text, len, reuse, &r->url, &r->origin, r->reason,
                          sizeof r->reason);
    FUZZ_CHECK(r->err == SLUICE_OK || r->err == SLUICE_EURL, "url %s: error %d",
               fuzz_show(text, len), (int)r->err);
    FUZZ_CHECK(r->err == SLUICE_OK ||
                   (memchr(r->reason, '\0', sizeof r->reason) &&
                    strncmp(r->reason, "url: ", 5) == 0),
               "url %s: reason %s", fuzz_show(text, len),
               fuzz_show(r->reason, strnlen(r->reason, sizeof r->reason)));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static CURLU *reuse;
    const char *in = (const char *)data;
    url_result fresh, reused;

    if (!reuse)
        reuse = curl_url();
    FUZZ_CHECK(reuse, "no memory");
    check(in, size, NULL, &fresh);
    check(in, size, reuse, &reused);

    /* A reused CURLU handle remembers nothing of the last URL. */
    FUZZ_CHECK(fresh.err == reused.err &&
                   (fresh.err != SLUICE_OK ||
                    (strcmp(fresh.url.data, reused.url.data) == 0 &&
                     strcmp(fresh.origin.data, reused.origin.data) == 0)) &&
                   (fresh.err == SLUICE_OK ||
                    strcmp(fresh.reason, reused.reason) == 0),
               "url %s: a fresh handle and a reused one disagree",
               fuzz_show(in, size));

    /* The reference: curl on the same text, trimmed the same way. */
    size_t len = size;
    while (len && isspace((unsigned char)in[0]))
        in++, len--;
    while (len && isspace((unsigned char)in[len - 1]))
        len--;
    if (memchr(in, '\0', len)) {
        FUZZ_CHECK(fresh.err != SLUICE_OK, "url %s with a NUL accepted",
                   fuzz_show(data, size));
    } else {
        char *text = malloc(len + 1), *want_url, *want_origin;
        FUZZ_CHECK(text, "no memory");
        memcpy(text, in, len);
        text[len] = '\0';
        curl_ref ref = curl_reference(text, &want_url, &want_origin);
        FUZZ_CHECK(ref != CURL_REF_NOMEM, "no memory");
        if (ref != CURL_REF_ACCEPTED) {
            FUZZ_CHECK(fresh.err != SLUICE_OK,
                       "url %s: curl refuses it, sl_url_check accepts it "
                       "as %s",
                       fuzz_show(data, size),
                       fuzz_show(fresh.url.data, fresh.url.len));
        } else if (fresh.err != SLUICE_OK) {
            FUZZ_CHECK(stricter_rule(fresh.reason),
                       "url %s: curl accepts it as %s, sl_url_check "
                       "refuses it: %s",
                       fuzz_show(data, size),
                       fuzz_show(want_url, strlen(want_url)), fresh.reason);
        } else {
            FUZZ_CHECK(strcmp(fresh.url.data, want_url) == 0,
                       "url %s: sl_url_check gives %s, curl %s",
                       fuzz_show(data, size),
                       fuzz_show(fresh.url.data, fresh.url.len),
                       fuzz_show(want_url, strlen(want_url)));
            FUZZ_CHECK(want_origin &&
                           strcmp(fresh.origin.data, want_origin) == 0,
                       "url %s: origin %s, from curl's parts %s",
                       fuzz_show(data, size),
                       fuzz_show(fresh.origin.data, fresh.origin.len),
                       want_origin ? want_origin : "(none)");
        }
        free(want_url);
        free(want_origin);
        free(text);
    }

    if (fresh.err == SLUICE_OK)
        fuzz_check_url_result((const char *)data, size, &fresh.url,
                              &fresh.origin);
    sl_buf_free(&fresh.url);
    sl_buf_free(&fresh.origin);
    sl_buf_free(&reused.url);
    sl_buf_free(&reused.origin);
    return 0;
}
