/*
 * Record validation at ingest (lib/record/): URLs held against libcurl
 * itself, origins, object key rules, default keys, sl_record_prepare.
 */
#include <ctype.h>

#include <curl/curl.h>

#include "curl_reference.h"
#include "fault.h"
#include "record/meta.h"
#include "record/record.h"
#include "test.h"
#include "util.h"

/*
 * Non-ASCII bytes are written as hex escapes, or in octal where a hex
 * escape would swallow the letter after it: "b\303\274cher" (U+00FC).
 */

/* ------------------------------------------------------------------ */
/* Helpers                                                            */
/* ------------------------------------------------------------------ */

/* The result of one sl_url_check() call, owned by the caller. */
typedef struct {
    sluice_err err;
    sl_buf url, origin;
    char reason[256];
} url_result;

static void
url_result_init(url_result *r)
{
    r->err = SLUICE_OK;
    sl_buf_init(&r->url);
    sl_buf_init(&r->origin);
    r->reason[0] = '\0';
}

static void
url_result_free(url_result *r)
{
    sl_buf_free(&r->url);
    sl_buf_free(&r->origin);
}

static void
run_url_check(const char *text, size_t len, void *reuse, url_result *r)
{
    sl_buf_clear(&r->url);
    sl_buf_clear(&r->origin);
    r->reason[0] = '\0';
    r->err = sl_url_check(text, len, reuse, &r->url, &r->origin, r->reason,
                          sizeof r->reason);
}

/* Assert that `in` is accepted as `want_url` with origin `want_origin`. */
static void
expect_url(const char *in, const char *want_url, const char *want_origin)
{
    url_result r;
    url_result_init(&r);
    run_url_check(in, strlen(in), NULL, &r);
    if (r.err != SLUICE_OK)
        TEST_FAIL_("\"%s\": rejected (%d): %s", in, (int)r.err, r.reason);
    if (strcmp(r.url.data, want_url) != 0)
        TEST_FAIL_("\"%s\": url \"%s\", want \"%s\"", in, r.url.data, want_url);
    if (r.url.len != strlen(want_url))
        TEST_FAIL_("\"%s\": url.len %zu, want %zu", in, r.url.len,
                   strlen(want_url));
    if (strcmp(r.origin.data, want_origin) != 0)
        TEST_FAIL_("\"%s\": origin \"%s\", want \"%s\"", in, r.origin.data,
                   want_origin);
    url_result_free(&r);
}

/* Assert that in[0..len) is rejected with a reason containing `want`. */
static void
expect_url_rejected_len(const char *in, size_t len, const char *want)
{
    url_result r;
    url_result_init(&r);
    run_url_check(in, len, NULL, &r);
    if (r.err != SLUICE_EURL)
        TEST_FAIL_("\"%.*s\": returned %d (url \"%s\"), want SLUICE_EURL",
                   (int)SL_MIN(len, 200), in, (int)r.err,
                   r.url.data ? r.url.data : "");
    if (!strstr(r.reason, want))
        TEST_FAIL_("\"%.*s\": reason \"%s\" lacks \"%s\"",
                   (int)SL_MIN(len, 200), in, r.reason, want);
    if (strncmp(r.reason, "url: ", 5) != 0)
        TEST_FAIL_("reason \"%s\" does not start with \"url: \"", r.reason);
    url_result_free(&r);
}

static void
expect_url_rejected(const char *in, const char *want)
{
    expect_url_rejected_len(in, strlen(in), want);
}

static void
expect_key_ok(const char *key)
{
    char why[256] = "";
    sluice_err err = sl_key_check(key, strlen(key), why, sizeof why);
    if (err != SLUICE_OK)
        TEST_FAIL_("key \"%s\": rejected: %s", key, why);
}

static void
expect_key_rejected_len(const char *key, size_t len, const char *want)
{
    char why[256] = "";
    sluice_err err = sl_key_check(key, len, why, sizeof why);
    if (err != SLUICE_EKEY)
        TEST_FAIL_("key \"%.*s\": returned %d, want SLUICE_EKEY",
                   (int)SL_MIN(len, 200), key, (int)err);
    if (!strstr(why, want))
        TEST_FAIL_("key \"%.*s\": reason \"%s\" lacks \"%s\"",
                   (int)SL_MIN(len, 200), key, why, want);
    if (strncmp(why, "key: ", 5) != 0)
        TEST_FAIL_("reason \"%s\" does not start with \"key: \"", why);
}

static void
expect_key_rejected(const char *key, const char *want)
{
    expect_key_rejected_len(key, strlen(key), want);
}

/*
 * The default key for `url` (passed through sl_url_check first, as
 * sl_record_prepare does), with `id` when it is not NULL.
 */
static void
expect_derived(const char *id, const char *url, const char *want)
{
    url_result r;
    url_result_init(&r);
    run_url_check(url, strlen(url), NULL, &r);
    if (r.err != SLUICE_OK)
        TEST_FAIL_("\"%s\": rejected: %s", url, r.reason);
    sl_buf key, scratch;
    sl_buf_init(&key);
    sl_buf_init(&scratch);
    sluice_err err = sl_key_derive(&key, &scratch, id ? id : "",
                                   id ? strlen(id) : 0, id != NULL, r.url.data);
    ASSERT_EQ(err, SLUICE_OK);
    if (strcmp(key.data, want) != 0)
        TEST_FAIL_("id %s%s%s, url \"%s\" (normalised \"%s\"): key \"%s\", "
                   "want \"%s\"",
                   id ? "\"" : "", id ? id : "none", id ? "\"" : "", url,
                   r.url.data, key.data, want);
    ASSERT_EQ(key.len, strlen(want));
    sl_buf_free(&key);
    sl_buf_free(&scratch);
    url_result_free(&r);
}

/* A string of `n` copies of `c` followed by `tail`; the caller frees. */
static char *
repeat(char c, size_t n, const char *head, const char *tail)
{
    size_t head_len = strlen(head), tail_len = strlen(tail);
    char *s = malloc(head_len + n + tail_len + 1);
    ASSERT_NOT_NULL(s);
    memcpy(s, head, head_len);
    memset(s + head_len, c, n);
    memcpy(s + head_len + n, tail, tail_len + 1);
    return s;
}

/* ------------------------------------------------------------------ */
/* The libcurl reference                                              */
/* ------------------------------------------------------------------ */

/* What libcurl makes of `text` (curl_reference.h); false when curl
 * refuses it. A URL without a host or port ("file:///x") gets the origin
 * "(no origin)": sl_url_check must refuse it anyway. */
static bool
curl_accepts(const char *text, char **url, char **origin)
{
    curl_ref ref = curl_reference(text, url, origin);
    ASSERT_NE(ref, CURL_REF_NOMEM);
    ASSERT_NE(ref, CURL_REF_UNPRINTABLE);
    if (ref == CURL_REF_ACCEPTED && !*origin) {
        *origin = strdup("(no origin)");
        ASSERT_NOT_NULL(*origin);
    }
    return ref == CURL_REF_ACCEPTED;
}

/* Counts from compare_with_curl(): proof that a test compared enough. */
typedef struct {
    unsigned checked, both_accept, curl_rejects, only_curl_accepts;
    unsigned unchanged; /* accepted as given: fast-path material */
} compare_stats;

/*
 * The central property: whenever curl and sl_url_check() both accept a
 * URL, sl_url_check()'s normalised URL is byte for byte what curl prints,
 * and its origin is the one curl's parts give. When curl rejects it,
 * sl_url_check() does too, and when only curl accepts it, the reason is
 * one of sluice's own stricter rules (http and https only, a host, no
 * port 0). Each URL is checked twice, with a fresh CURLU handle and with
 * `reuse`, and the two must agree.
 */
static void
compare_with_curl(const char *in, void *reuse, compare_stats *stats)
{
    const char *text = in;
    size_t len = strlen(in);
    while (len && isspace((unsigned char)text[0]))
        text++, len--;
    while (len && isspace((unsigned char)text[len - 1]))
        len--;
    char *trimmed = strndup(text, len);
    ASSERT_NOT_NULL(trimmed);

    char *want_url = NULL, *want_origin = NULL;
    bool curl_ok = curl_accepts(trimmed, &want_url, &want_origin);
    url_result fresh, reused;
    url_result_init(&fresh);
    url_result_init(&reused);
    run_url_check(in, strlen(in), NULL, &fresh);
    run_url_check(in, strlen(in), reuse, &reused);

    stats->checked++;
    if (fresh.err != reused.err || strcmp(fresh.reason, reused.reason) ||
        (fresh.err == SLUICE_OK &&
         (strcmp(fresh.url.data, reused.url.data) ||
          strcmp(fresh.origin.data, reused.origin.data))))
        TEST_FAIL_("\"%s\": a reused handle gives %d \"%s\" \"%s\", a new "
                   "one %d \"%s\" \"%s\"",
                   in, (int)reused.err,
                   reused.err ? reused.reason : reused.url.data,
                   reused.err ? "" : reused.origin.data, (int)fresh.err,
                   fresh.err ? fresh.reason : fresh.url.data,
                   fresh.err ? "" : fresh.origin.data);
    if (!curl_ok) {
        stats->curl_rejects++;
        if (fresh.err == SLUICE_OK)
            TEST_FAIL_("\"%s\": curl rejects it, sl_url_check accepts it "
                       "as \"%s\"",
                       in, fresh.url.data);
        ASSERT_EQ(fresh.err, SLUICE_EURL);
    } else if (fresh.err != SLUICE_OK) {
        stats->only_curl_accepts++;
        if (strcmp(fresh.reason, "url: no host") != 0 &&
            strcmp(fresh.reason, "url: port 0") != 0 &&
            strncmp(fresh.reason, "url: scheme \"", 13) != 0 &&
            strcmp(fresh.reason,
                   "url: not an absolute http:// or https:// URL") != 0)
            TEST_FAIL_("\"%s\": curl accepts it as \"%s\", sl_url_check "
                       "rejects it: %s",
                       in, want_url, fresh.reason);
    } else {
        stats->both_accept++;
        stats->unchanged += strcmp(fresh.url.data, trimmed) == 0;
        if (strcmp(fresh.url.data, want_url) != 0)
            TEST_FAIL_("\"%s\": sl_url_check gives \"%s\", curl \"%s\"", in,
                       fresh.url.data, want_url);
        if (fresh.url.len != strlen(want_url))
            TEST_FAIL_("\"%s\": url.len %zu, strlen %zu", in, fresh.url.len,
                       strlen(want_url));
        if (strcmp(fresh.origin.data, want_origin) != 0)
            TEST_FAIL_("\"%s\": origin \"%s\", from curl's parts \"%s\"", in,
                       fresh.origin.data, want_origin);
    }
    free(want_url);
    free(want_origin);
    free(trimmed);
    url_result_free(&fresh);
    url_result_free(&reused);
}

/*
 * URLs chosen to walk every branch of normalisation: case, ports, IPv4
 * and IPv6 spellings, userinfo, dot segments, escapes, queries,
 * fragments, odd hosts, IDN, spaces. Some are meant to be rejected.
 */
static const char *const url_corpus[] = {
    /* Scheme and host case; empty path; "?" and "#" without a path. */
    "http://example.com/",
    "https://example.com/",
    "HTTP://example.com/",
    "HTTPS://example.com/",
    "hTTp://example.com/a",
    "http://EXAMPLE.COM/",
    "http://Example.Com/Path",
    "https://WWW.Example.org/a/B/c",
    "http://example.com",
    "https://example.com",
    "http://example.com?",
    "http://example.com?q",
    "http://example.com/?",
    "http://example.com/a?",
    "http://example.com/a/b/?",
    "http://example.com#frag",
    "http://example.com/#",
    "http://example.com/a#",
    "http://example.com/a?#",
    "http://example.com/a?b#c",
    "http://example.com/a#b?c",
    "http://example.com/a#b#c",
    /* Ports: default, explicit, leading zeros, out of range, empty. */
    "http://example.com:80/",
    "http://example.com:080/",
    "http://example.com:0080/x",
    "https://example.com:443/",
    "https://example.com:0443/",
    "http://example.com:443/",
    "https://example.com:80/",
    "http://example.com:8080/",
    "http://example.com:08080/",
    "http://example.com:1/",
    "http://example.com:01/",
    "http://example.com:65535/",
    "http://example.com:065535/",
    "http://example.com:65536/",
    "http://example.com:0/",
    "http://example.com:00/",
    "http://example.com:/",
    "http://example.com:",
    "http://example.com:8080",
    "http://example.com:8080?x",
    "http://example.com:8080#x",
    "http://example.com:99999999999999999999/",
    "http://example.com:-1/",
    "http://example.com:+80/",
    "http://example.com:8o/",
    "http://example.com: 80/",
    "http://EXAMPLE.com:8080/A",
    /* IPv4 in every spelling, and hosts that only look like one. */
    "http://127.0.0.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7F000001/",
    "http://0X7f000001/",
    "http://0x7f.1/",
    "http://0x7f.0.0.1/",
    "http://127.1/",
    "http://127.0.1/",
    "http://0177.0.0.1/",
    "http://0177.1/",
    "http://017700000001/",
    "http://0/",
    "http://0.0.0.0/",
    "http://00/",
    "http://4294967295/",
    "http://4294967296/",
    "http://256.1.1.1/",
    "http://1.2.3.4.5/",
    "http://1.2.3.4./",
    "http://08/",
    "http://09.1/",
    "http://1.16777215/",
    "http://1.2.3/",
    "http://0x/",
    "http://0xg/",
    "http://a.0x1/",
    "http://1.a/",
    "http://a.1/",
    "http://a.1a/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1:8080/x",
    "http://192.168.1.1./",
    "http://127.0.0.1:80/",
    "http://127.000.000.001/",
    /* IPv6 literals, v4-mapped, zone ids. */
    "http://[::1]/",
    "http://[::1]:8080/x",
    "http://[0:0::1]/",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::FFFF:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[2001:DB8::1]/",
    "http://[2001:db8:0:0:0:0:2:1]/",
    "https://[2001:db8::1]:443/a",
    "http://[fe80::1%25eth0]/",
    "http://[fe80::1%eth0]/",
    "http://[::1/",
    "http://::1/",
    "http://[::1]x/",
    "http://[]/",
    "http://[::g]/",
    "http://[::1]:/",
    /* Userinfo. */
    "http://user@example.com/",
    "http://user:pass@example.com/",
    "http://USER:PASS@EXAMPLE.COM/",
    "http://@example.com/",
    "http://:@example.com/",
    "http://u%40:p@example.com/",
    "http://u:p@[::1]:81/",
    "http://a@b@example.com/",
    "http://user@/",
    "http://a b@example.com/",
    /* Dot segments in every position. */
    "http://example.com/.",
    "http://example.com/..",
    "http://example.com/./",
    "http://example.com/../",
    "http://example.com/a/.",
    "http://example.com/a/..",
    "http://example.com/a/./b",
    "http://example.com/a/../b",
    "http://example.com/a/b/../../c",
    "http://example.com/a/b/../../../../c",
    "http://example.com/./a",
    "http://example.com/../a",
    "http://example.com/a/.b",
    "http://example.com/a/..b",
    "http://example.com/a/b.",
    "http://example.com/a/b..",
    "http://example.com/a/.../b",
    "http://example.com/a/%2e/b",
    "http://example.com/a/%2E%2E/b",
    "http://example.com/a/.%2e/b",
    "http://example.com/a/./?x",
    "http://example.com/a/..?x",
    "http://example.com/a?/../b",
    "http://example.com/a#/../b",
    "http://example.com//a//b",
    "http://example.com/a//../b",
    "http://example.com/.?",
    "http://example.com/..?",
    "http://example.com/a/.#f",
    "http://example.com/a/..#f",
    /* %-escapes, valid and not, in every part. */
    "http://example.com/%41",
    "http://example.com/%7e",
    "http://example.com/%7E",
    "http://example.com/%zz",
    "http://example.com/%",
    "http://example.com/%2",
    "http://example.com/a%20b",
    "http://example.com/a%2Fb",
    "http://example.com/%00",
    "http://example.com/%C3%A9",
    "http://example.com/?q=%zz",
    "http://example.com/?q=%",
    "http://%41.example.com/",
    "http://ex%61mple.com/",
    "http://example.com%2F/",
    /* Queries with odd characters. */
    "http://example.com/?a=1&b=2",
    "http://example.com/?a=1;b=2",
    "http://example.com/?q=<script>",
    "http://example.com/?q=\"x\"",
    "http://example.com/?q={x}|y^z`",
    "http://example.com/?q=a\\b",
    "http://example.com/?q=a?b?c",
    "http://example.com/?q=/../",
    "http://example.com/?q=a+b",
    "http://example.com/??",
    "http://example.com/?&",
    "http://example.com/?=",
    "http://example.com/?#",
    "http://example.com/?q=\xc3\xa9",
    "http://example.com/?q=a b",
    "http://example.com/?q=[]",
    "http://example.com/?q=@:",
    "http://example.com/?q=%20",
    "http://example.com/?q='a'(b)!*",
    /* Paths with odd characters. */
    "http://example.com/a;b",
    "http://example.com/a,b",
    "http://example.com/a=b",
    "http://example.com/~user/",
    "http://example.com/a:b",
    "http://example.com/a@b",
    "http://example.com/a'b",
    "http://example.com/a(b)",
    "http://example.com/a!b$c&d*e+f",
    "http://example.com/a\"b",
    "http://example.com/a<b>",
    "http://example.com/a{b}",
    "http://example.com/a|b",
    "http://example.com/a^b",
    "http://example.com/a`b",
    "http://example.com/a\\b",
    "http://example.com/a[b]",
    "http://example.com/A/B.JPG",
    /* Trailing dots, odd labels, hosts whose last label is numeric. */
    "http://example.com./",
    "http://example.com../",
    "http://.example.com/",
    "http://example..com/",
    "http://a.b.c.d.e/",
    "http://a-b.c/",
    "http://-a.b/",
    "http://a-.b/",
    "http://a_b.c/",
    "http://localhost/",
    "http://LOCALHOST/",
    "http://localhost:8080/",
    "http://host1/",
    "http://1host/",
    "http://a.b1/",
    "http://a.1b/",
    "http://a.123/",
    "http://example.123/",
    "http://example.com.123/",
    "http://123.example.com/",
    "http://0x1.example.com/",
    "http://example.0x1/",
    "http://a.-1/",
    /* IDN and other non-ASCII. */
    "http://b\303\274cher.de/",
    "http://B\303\234CHER.de/",
    "http://xn--bcher-kva.de/",
    "http://\xe4\xbe\x8b\xe3\x81\x88.\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88/"
    "\xe3\x83\x91\xe3\x82\xb9?\xe3\x82\xaf",
    "http://m\xc3\xbcnchen.de:8080/stra\303\237e",
    "http://u:p@B\303\274cher.Example:81/x",
    "http://XN--BCHER-KVA.de/",
    "http://fa\303\237.de/",
    "http://\357\275\205\357\275\230.com/",
    "http://%C3%BC.de/",
    "http://m\xc3\xbcnchen%2ede/",
    "http://a.\303\274./",
    "http://\342\230\203.net/",
    "http://\303\274-.example/",
    "http://-\303\274.example/",
    "http://example.com/\xc3\xbc",
    "http://example.com/\xe6\x97\xa5\xe6\x9c\xac/f.jpg",
    "http://example.com/?\xc3\xbc=\xc3\xb6",
    "http://example.com/\xf0\x9f\x98\x80#\xf0\x9f\x98\x80",
    /* Spaces (encoded), surrounding whitespace (trimmed). */
    "http://example.com/a b",
    "http://example.com/a  b/c d?e f",
    "http://example.com/a b#g",
    "http://example.com/a b#g h",
    "http://exa mple.com/",
    "http://example.com/ ",
    " http://example.com/a b ",
    "\t http://example.com/x\r\n",
    "http://example.com/a%20b c",
    /* Tabs and other control bytes inside: always rejected. */
    "http://example.com/a\tb",
    "http://exa\tmple.com/",
    "http://example.com/?a\tb",
    "http://example.com/a\rb",
    "http://example.com/a\x7f",
    /* No host, not absolute, other schemes. */
    "http:///x",
    "http://?x",
    "http://#x",
    "http://",
    "https:///",
    "http://:80/",
    "http://@/",
    "ftp://example.com/",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "mailto:a@example.com",
    "//example.com/",
    "example.com/a",
    "/a/b",
    "http:/example.com/",
    "http:example.com",
    "httpx://example.com/",
    "://example.com/",
    "ws://example.com/",
};

/* ------------------------------------------------------------------ */
/* A fixed-seed generator of URL-ish strings                          */
/* ------------------------------------------------------------------ */

static uint64_t rng_state = 0x5eed5eed12345678ull;

/* xorshift64*: small, fast, and the same sequence on every platform. */
static uint32_t
rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

#define PICK(arr) ((arr)[rng_next() % SL_ARRAY_LEN(arr)])

static const char *const gen_schemes[] = {
    "http", "http", "http", "https", "https", "HTTP", "Https", "hTTp",
};
static const char *const gen_userinfo[] = {
    "", "", "", "", "", "", "u@", "u:p@", "@", ":@", "U%40:P@",
};
static const char *const gen_hosts[] = {
    "example.com",
    "example.com",
    "img.example.org",
    "a",
    "a-b.c",
    "EXAMPLE.com",
    "Example.Com",
    "localhost",
    "127.0.0.1",
    "2130706433",
    "0x7f000001",
    "0x7f.1",
    "127.1",
    "0177.0.0.1",
    "0",
    "1.2.3",
    "256.1.1.1",
    "1.2.3.4.5",
    "4294967296",
    "[::1]",
    "[0:0::1]",
    "[::ffff:127.0.0.1]",
    "[2001:DB8::1]",
    "[fe80::1%25eth0]",
    "example.com.",
    "a.",
    "a..b",
    ".a",
    "a.1",
    "a.1b",
    "1.a",
    "a.0x1",
    "0x",
    "08",
    "host1",
    "xn--bcher-kva.de",
    "b\303\274cher.de",
    "%41.example.com",
    "a_b",
    "a b",
};
static const char *const gen_ports[] = {
    "",   "",    "",   "",       "",       ":80", ":443",   ":8080", ":080",
    ":0", ":00", ":1", ":65535", ":65536", ":",   ":08080", ":0443", ":x",
};
static const char *const gen_segments[] = {
    "/a",        "/b.png", "/",     "/.",    "/..",      "/%2e", "/%2E%2E",
    "/.a",       "/..a",   "/a.",   "/...",  "/a%20b",   "/a b", "/%zz",
    "/%",        "/~x",    "/a;b",  "/a,b",  "/A",       "/a:b", "/a@b",
    "/\xc3\xa9", "/a\\b",  "/a\"b", "/a<b>", "/a{b}",    "/a|b", "/a^b",
    "/a`b",      "/a[b]",  "/%41",  "/%2F",  "/.sluice",
};
static const char *const gen_queries[] = {
    "",       "",       "",      "",          "?",    "?a=1",  "?a=1&b=2",
    "?q=a b", "?<>",    "?%zz",  "?\xc3\xa9", "?a?b", "?/../", "?a=%20",
    "?\"x\"", "?{}|^`", "?a\\b", "??",        "?&",   "?=",    "?[]",
};
static const char *const gen_fragments[] = {
    "", "", "", "", "#", "#f", "#a b", "#/../x", "#?q", "#\xc3\xa9",
};
static const char *const gen_spaces[] = {
    "", "", "", "", "", "", " ", "\t", "\r\n",
};

/* Write one random URL-ish string, made of the pieces above, to buf. */
static void
gen_url(char *buf, size_t size)
{
    size_t n = 0;
#define PUT(s) n += (size_t)snprintf(buf + n, size - n, "%s", (s))
    PUT(PICK(gen_spaces));
    PUT(PICK(gen_schemes));
    PUT("://");
    PUT(PICK(gen_userinfo));
    PUT(PICK(gen_hosts));
    PUT(PICK(gen_ports));
    unsigned segments = rng_next() % 5;
    for (unsigned i = 0; i < segments; i++)
        PUT(PICK(gen_segments));
    PUT(PICK(gen_queries));
    PUT(PICK(gen_fragments));
    PUT(PICK(gen_spaces));
#undef PUT
    ASSERT_LT(n, size);
}

/*
 * Write a short random URL built character by character from the bytes
 * that matter to already_normal(): what ends or splits a host, a port, a
 * path segment and a query. Most come out valid, many in curl's form.
 */
static void
gen_url_chars(char *buf, size_t size)
{
    static const char host_bytes[] = "abz09.-:Z";
    static const char path_bytes[] = "a0./?%#;,=@~+!$&'()*[]:^`{}|\\\"<>2eE";
    size_t n = (size_t)snprintf(buf, size, "%s",
                                rng_next() % 2 ? "http://" : "https://");
    if (rng_next() % 3 == 0) {
        /* Near an IPv4 address: 3 to 5 numbers, some out of range, some
         * with leading zeros, now and then a letter or an empty one. */
        static const char number_bytes[] = "0125690x";
        unsigned parts = 3 + rng_next() % 3;
        for (unsigned p = 0; p < parts; p++) {
            unsigned digits = rng_next() % 5;
            for (unsigned i = 0; i < digits; i++)
                buf[n++] = number_bytes[rng_next() % (sizeof number_bytes - 1)];
            if (p + 1 < parts)
                buf[n++] = '.';
        }
    } else {
        unsigned host_len = 1 + rng_next() % 8;
        for (unsigned i = 0; i < host_len; i++)
            buf[n++] = host_bytes[rng_next() % (sizeof host_bytes - 1)];
    }
    if (rng_next() % 8)
        buf[n++] = '/';
    unsigned path_len = rng_next() % 10;
    for (unsigned i = 0; i < path_len; i++)
        buf[n++] = path_bytes[rng_next() % (sizeof path_bytes - 1)];
    ASSERT_LT(n, size);
    buf[n] = '\0';
}

/* ------------------------------------------------------------------ */
/* URL normalisation and checks                                       */
/* ------------------------------------------------------------------ */

TEST(url_normalises_like_curl_corpus)
{
    CURLU *reuse = curl_url();
    compare_stats stats = {0};
    ASSERT_NOT_NULL(reuse);
    ASSERT_GE(SL_ARRAY_LEN(url_corpus), 250);
    for (size_t i = 0; i < SL_ARRAY_LEN(url_corpus); i++)
        compare_with_curl(url_corpus[i], reuse, &stats);
    /* Most of the corpus is valid; all of it was compared. */
    ASSERT_EQ(stats.checked, SL_ARRAY_LEN(url_corpus));
    ASSERT_GE(stats.both_accept, 180);
    ASSERT_GE(stats.unchanged, 60);
    ASSERT_GE(stats.curl_rejects, 20);
    curl_url_cleanup(reuse);
}

TEST(url_normalises_like_curl_random)
{
    CURLU *reuse = curl_url();
    compare_stats stats = {0};
    char buf[1024];
    ASSERT_NOT_NULL(reuse);
    for (int i = 0; i < 5000; i++) {
        gen_url(buf, sizeof buf);
        compare_with_curl(buf, reuse, &stats);
    }
    ASSERT_EQ(stats.checked, 5000);
    ASSERT_GE(stats.both_accept, 2000);
    ASSERT_GE(stats.unchanged, 200);
    ASSERT_GE(stats.curl_rejects, 200);
    ASSERT_GE(stats.only_curl_accepts, 20);
    curl_url_cleanup(reuse);
}

/* The same property, character by character, near the fast path. */
TEST(url_normalises_like_curl_random_chars)
{
    CURLU *reuse = curl_url();
    compare_stats stats = {0};
    char buf[64];
    ASSERT_NOT_NULL(reuse);
    for (int i = 0; i < 20000; i++) {
        gen_url_chars(buf, sizeof buf);
        compare_with_curl(buf, reuse, &stats);
    }
    ASSERT_GE(stats.both_accept, 10000);
    ASSERT_GE(stats.unchanged, 5000);
    ASSERT_GE(stats.curl_rejects, 1000);
    curl_url_cleanup(reuse);
}

/* URLs already in curl's form (the fast path) come back unchanged. */
TEST(url_already_normal_kept)
{
    static const char *const normal[] = {
        "http://example.com/",
        "https://example.com/",
        "http://example.com/a/b/c.jpg",
        "http://example.com:8080/a",
        "https://example.com:443/",
        "http://example.com:80/",
        "http://a-b.example.com/x?y=1&z=2",
        "http://example.com/a%20b/%zz?q=%",
        "http://example.com/a/.b/..c/d.",
        "http://example.com//a//b",
        "http://example.com/?q=a?b/../c",
        "http://h1.example/x",
        "http://localhost/",
        "http://a.1b/",
        "http://127.0.0.1:38123/img/0.jpg",
        "http://10.0.0.1/",
        "http://0.0.0.0/x",
        "https://255.255.255.255/",
        "http://192.168.100.9/a?b",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(normal); i++) {
        url_result r;
        url_result_init(&r);
        run_url_check(normal[i], strlen(normal[i]), NULL, &r);
        ASSERT_EQ(r.err, SLUICE_OK);
        ASSERT_STR_EQ(r.url.data, normal[i]);
        url_result_free(&r);
    }
}

TEST(url_normalisation_exact)
{
    /* Scheme and host name in lower case; the path keeps its case. */
    expect_url("HTTP://example.com/", "http://example.com/",
               "http://example.com:80");
    expect_url("HtTpS://example.com/x", "https://example.com/x",
               "https://example.com:443");
    expect_url("http://Example.COM/A/b", "http://example.com/A/b",
               "http://example.com:80");
    /* An empty path becomes "/", also before a query or fragment. */
    expect_url("http://example.com", "http://example.com/",
               "http://example.com:80");
    expect_url("http://example.com?q=1", "http://example.com/?q=1",
               "http://example.com:80");
    expect_url("http://example.com#top", "http://example.com/",
               "http://example.com:80");
    /* The fragment is dropped; so is an empty query. */
    expect_url("http://example.com/a#frag", "http://example.com/a",
               "http://example.com:80");
    expect_url("http://example.com/a?b#c", "http://example.com/a?b",
               "http://example.com:80");
    expect_url("http://example.com/?", "http://example.com/",
               "http://example.com:80");
    expect_url("http://example.com/a?", "http://example.com/a",
               "http://example.com:80");
    expect_url("http://example.com/a?#x", "http://example.com/a",
               "http://example.com:80");
    /* Ports: leading zeros go, an explicit default port stays. */
    expect_url("http://example.com:080/", "http://example.com:80/",
               "http://example.com:80");
    expect_url("http://example.com:08080/x", "http://example.com:8080/x",
               "http://example.com:8080");
    expect_url("https://example.com:443/", "https://example.com:443/",
               "https://example.com:443");
    expect_url("https://example.com:80/", "https://example.com:80/",
               "https://example.com:80");
    expect_url("http://example.com:443/", "http://example.com:443/",
               "http://example.com:443");
    expect_url("http://example.com:/", "http://example.com/",
               "http://example.com:80");
    expect_url("http://example.com:65535/", "http://example.com:65535/",
               "http://example.com:65535");
    expect_url("http://example.com:1", "http://example.com:1/",
               "http://example.com:1");
    /* Dot segments. */
    expect_url("http://example.com/a/./b/../c", "http://example.com/a/c",
               "http://example.com:80");
    expect_url("http://example.com/../../a", "http://example.com/a",
               "http://example.com:80");
    expect_url("http://example.com/a/b/..", "http://example.com/a/",
               "http://example.com:80");
    expect_url("http://example.com/a/.", "http://example.com/a/",
               "http://example.com:80");
    expect_url("http://example.com/.?x", "http://example.com/?x",
               "http://example.com:80");
    expect_url("http://example.com/a/..b/.c/d..",
               "http://example.com/a/..b/.c/d..", "http://example.com:80");
    /* curl leaves escaped dots, and escapes in general, alone. */
    expect_url("http://example.com/a/%2e%2e/b", "http://example.com/a/%2e%2e/b",
               "http://example.com:80");
    expect_url("http://example.com/%zz?%zz=%", "http://example.com/%zz?%zz=%",
               "http://example.com:80");
    /* A query is not a path: its dot segments stay. */
    expect_url("http://example.com/a?/../b", "http://example.com/a?/../b",
               "http://example.com:80");
    /* Spaces and non-ASCII bytes are percent-encoded (curl's way). */
    expect_url("http://example.com/a b", "http://example.com/a%20b",
               "http://example.com:80");
    expect_url("http://example.com/s?q=a b", "http://example.com/s?q=a+b",
               "http://example.com:80");
    expect_url("http://example.com/\xc3\xbc?\xc3\xbc",
               "http://example.com/%c3%bc?%c3%bc", "http://example.com:80");
    expect_url("http://example.com/a%20b c", "http://example.com/a%20b%20c",
               "http://example.com:80");
    /* An IDN host in its ASCII form (more in url_idn_hosts). */
    expect_url("http://b\303\274cher.de/x", "http://xn--bcher-kva.de/x",
               "http://xn--bcher-kva.de:80");
    /* A %-escaped host name is decoded, and in lower case. */
    expect_url("http://%41.example.com/", "http://a.example.com/",
               "http://a.example.com:80");
    /* Userinfo stays in the URL (as given) but is no part of the origin. */
    expect_url("http://User:pw@Example.com:81/x",
               "http://User:pw@example.com:81/x", "http://example.com:81");
    /* IPv6: brackets kept; curl compresses zeros. */
    expect_url("http://[::1]/", "http://[::1]/", "http://[::1]:80");
    expect_url("http://[0:0::1]:8080/x", "http://[::1]:8080/x",
               "http://[::1]:8080");
    expect_url("https://[2001:DB8::1]/", "https://[2001:DB8::1]/",
               "https://[2001:db8::1]:443");
    expect_url("http://[fe80::1%25eth0]/", "http://[fe80::1%25eth0]/",
               "http://[fe80::1%25eth0]:80");
    expect_url("http://u:p@[::1]:81/", "http://u:p@[::1]:81/",
               "http://[::1]:81");
    /* Host names that only look like IPv4 addresses stay names. */
    expect_url("http://a.1/", "http://a.1/", "http://a.1:80");
    expect_url("http://256.1.1.1/", "http://256.1.1.1/", "http://256.1.1.1:80");
    expect_url("http://4294967296/", "http://4294967296/",
               "http://4294967296:80");
    expect_url("http://1.2.3.4.5/", "http://1.2.3.4.5/", "http://1.2.3.4.5:80");
    expect_url("http://example.com./", "http://example.com./",
               "http://example.com.:80");
    /* Short and odd IPv4 spellings. */
    expect_url("http://1.2.3/", "http://1.2.0.3/", "http://1.2.0.3:80");
    expect_url("http://0/", "http://0.0.0.0/", "http://0.0.0.0:80");
    expect_url("http://4294967295/", "http://255.255.255.255/",
               "http://255.255.255.255:80");
    /* Surrounding whitespace is trimmed. */
    expect_url("  http://example.com/x\t\r\n", "http://example.com/x",
               "http://example.com:80");
    expect_url("\n\v\fhttps://example.com/ ", "https://example.com/",
               "https://example.com:443");
}

/*
 * Addresses the fetch-time URL policy refuses are still valid URLs at
 * ingest. What matters here is that every IPv4 spelling becomes one
 * dotted form: the policy sees the real address, one origin counts it.
 */
TEST(url_hostile_spellings_accepted)
{
    expect_url("http://localhost/", "http://localhost/", "http://localhost:80");
    expect_url("http://LocalHost:8080/x", "http://localhost:8080/x",
               "http://localhost:8080");
    expect_url("http://2130706433/", "http://127.0.0.1/",
               "http://127.0.0.1:80");
    expect_url("http://[::ffff:127.0.0.1]/", "http://[::ffff:127.0.0.1]/",
               "http://[::ffff:127.0.0.1]:80");
    expect_url("http://0x7f000001/", "http://127.0.0.1/",
               "http://127.0.0.1:80");
    expect_url("http://127.1/", "http://127.0.0.1/", "http://127.0.0.1:80");
    expect_url("http://0x7f.1/", "http://127.0.0.1/", "http://127.0.0.1:80");
    expect_url("http://0X7F.0.0.1/", "http://127.0.0.1/",
               "http://127.0.0.1:80");
    expect_url("http://0177.0.0.1/", "http://127.0.0.1/",
               "http://127.0.0.1:80");
    expect_url("http://017700000001/", "http://127.0.0.1/",
               "http://127.0.0.1:80");
    expect_url("https://127.0.0.1:443/", "https://127.0.0.1:443/",
               "https://127.0.0.1:443");
    expect_url("http://[::1]:80/", "http://[::1]:80/", "http://[::1]:80");
    expect_url("http://169.254.169.254/latest/meta-data/",
               "http://169.254.169.254/latest/meta-data/",
               "http://169.254.169.254:80");
    expect_url("http://0xa9fea9fe/", "http://169.254.169.254/",
               "http://169.254.169.254:80");
    expect_url("http://10.1/", "http://10.0.0.1/", "http://10.0.0.1:80");

    /* Every spelling of loopback shares one origin, hence one cap. */
    static const char *const loopback[] = {
        "http://127.0.0.1/",     "http://2130706433/", "http://0x7f000001/",
        "http://127.1/",         "http://0x7f.1/",     "http://0177.0.0.1/",
        "http://127.0.0.1:80/a", "http://127.0.1/",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(loopback); i++) {
        url_result r;
        url_result_init(&r);
        run_url_check(loopback[i], strlen(loopback[i]), NULL, &r);
        ASSERT_EQ(r.err, SLUICE_OK);
        ASSERT_STR_EQ(r.origin.data, "http://127.0.0.1:80");
        url_result_free(&r);
    }
}

/*
 * Internationalised host names are fetched in their ASCII form: the URL
 * and its origin hold that form, so "bücher.example" and
 * "xn--bcher-kva.example" are one origin (one cap), and libcurl is never
 * asked to convert a name (which 7.88 cannot do in a program without a
 * locale). Names in lower case too.
 */
TEST(url_idn_hosts)
{
    /* UTF-8 host: punycode, with port, userinfo, path, query kept. */
    expect_url("http://b\303\274cher.example/img/1.jpg",
               "http://xn--bcher-kva.example/img/1.jpg",
               "http://xn--bcher-kva.example:80");
    expect_url("https://u:p@b\303\274cher.example:8443/a?q=\303\274",
               "https://u:p@xn--bcher-kva.example:8443/a?q=%c3%bc",
               "https://xn--bcher-kva.example:8443");
    /* Mixed case, in Unicode and in ASCII: the same name. */
    expect_url("http://B\303\234CHER.Example/x",
               "http://xn--bcher-kva.example/x",
               "http://xn--bcher-kva.example:80");
    expect_url("http://\303\234.Example.COM/", "http://xn--tda.example.com/",
               "http://xn--tda.example.com:80");
    /* Already punycode: unchanged; in upper case: lower case. */
    expect_url("http://xn--bcher-kva.example/x",
               "http://xn--bcher-kva.example/x",
               "http://xn--bcher-kva.example:80");
    expect_url("http://XN--BCHER-KVA.Example/x",
               "http://xn--bcher-kva.example/x",
               "http://xn--bcher-kva.example:80");
    /* Other scripts, several labels, NFC and UTS #46 mapping (fullwidth
     * letters are their ASCII selves; sharp s stays, non-transitional). */
    expect_url("http://\344\276\213\343\201\210.\343\203\206\343\202\271"
               "\343\203\210/",
               "http://xn--r8jz45g.xn--zckzah/",
               "http://xn--r8jz45g.xn--zckzah:80");
    expect_url("http://\357\275\205\357\275\230\357\275\201\357\275\215"
               "\357\275\220\357\275\214\357\275\205.com/a",
               "http://example.com/a", "http://example.com:80");
    expect_url("http://fa\303\237.de/", "http://xn--fa-hia.de/",
               "http://xn--fa-hia.de:80");
    /* A %-escaped UTF-8 host is decoded, then converted. */
    expect_url("http://%C3%BC.de/", "http://xn--tda.de/",
               "http://xn--tda.de:80");
    /* A trailing dot stays. */
    expect_url("http://a.\303\274./", "http://a.xn--tda./",
               "http://a.xn--tda.:80");

    /* Every spelling is one origin. */
    static const char *const same[] = {
        "http://b\303\274cher.example/1.jpg",
        "http://B\303\274cher.example/2.jpg",
        "http://B\303\234CHER.EXAMPLE:80/3.jpg",
        "http://xn--bcher-kva.example/4.jpg",
        "http://XN--BCHER-KVA.example/5.jpg",
        "http://b%C3%BCcher.example/6.jpg",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(same); i++) {
        url_result r;
        url_result_init(&r);
        run_url_check(same[i], strlen(same[i]), NULL, &r);
        ASSERT_EQ(r.err, SLUICE_OK);
        ASSERT_STR_EQ(r.origin.data, "http://xn--bcher-kva.example:80");
        url_result_free(&r);
    }

    /* A name that is no valid IDN: refused, saying why. */
    expect_url_rejected("http://\303\274-.example/",
                        "url: host \"\303\274-.example\" is not a valid "
                        "internationalised domain name: ");
    expect_url_rejected("http://-\303\274.com/",
                        "is not a valid internationalised domain name");
    expect_url_rejected("http://a\342\200\256b.com/x",
                        "is not a valid internationalised domain name");

    /* A redirect's next hop gets the same spelling. */
    CURLU *h = curl_url();
    ASSERT_NOT_NULL(h);
    sl_buf next;
    sl_buf_init(&next);
    ASSERT_EQ(sl_url_redirect(h, "http://a.example/x",
                              "http://B\303\274cher.example/y#f", &next),
              SLUICE_OK);
    ASSERT_STR_EQ(next.data, "http://xn--bcher-kva.example/y");
    ASSERT_EQ(sl_url_redirect(h, "http://a.example/x", "HTTP://B.Example/z",
                              &next),
              SLUICE_OK);
    ASSERT_STR_EQ(next.data, "http://b.example/z");
    ASSERT_EQ(sl_url_redirect(h, "http://a.example/x", "/rel", &next),
              SLUICE_OK);
    ASSERT_STR_EQ(next.data, "http://a.example/rel");
    ASSERT_EQ(sl_url_redirect(h, "http://a.example/x",
                              "http://\303\274-.example/", &next),
              SLUICE_EURL);
    ASSERT_EQ(sl_url_redirect(h, "http://a.example/x", "ftp://a.example/",
                              &next),
              SLUICE_EPOLICY);
    sl_buf_free(&next);
    curl_url_cleanup(h);
}

TEST(url_origin)
{
    /* Same origin however the scheme, host and default port are spelled. */
    static const char *const same[] = {
        "http://Example.COM/",     "http://example.com:80/x",
        "HTTP://example.com",      "http://EXAMPLE.com:080/?q",
        "http://u:p@example.com/", "http://example.com#f",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(same); i++) {
        url_result r;
        url_result_init(&r);
        run_url_check(same[i], strlen(same[i]), NULL, &r);
        ASSERT_EQ(r.err, SLUICE_OK);
        ASSERT_STR_EQ(r.origin.data, "http://example.com:80");
        ASSERT_EQ(r.origin.len, strlen("http://example.com:80"));
        url_result_free(&r);
    }
    /* Scheme and port make different origins. */
    expect_url("https://example.com/", "https://example.com/",
               "https://example.com:443");
    expect_url("http://example.com:8080/", "http://example.com:8080/",
               "http://example.com:8080");
    expect_url("https://example.com:8443/", "https://example.com:8443/",
               "https://example.com:8443");

    /* sl_url_origin on its own, on normalised URLs. */
    sl_buf o;
    sl_buf_init(&o);
    ASSERT_EQ(sl_url_origin("https://Example.COM/x", &o), 0);
    ASSERT_STR_EQ(o.data, "https://example.com:443");
    ASSERT_EQ(sl_url_origin("http://u:p@[::1]:81/", &o), 0);
    ASSERT_STR_EQ(o.data, "http://[::1]:81");
    ASSERT_EQ(sl_url_origin("http://[2001:DB8::1]/", &o), 0);
    ASSERT_STR_EQ(o.data, "http://[2001:db8::1]:80");
    ASSERT_EQ(sl_url_origin("http://example.com:8080/?a:b", &o), 0);
    ASSERT_STR_EQ(o.data, "http://example.com:8080");
    ASSERT_EQ(sl_url_origin("http://example.com/a:1/b@c", &o), 0);
    ASSERT_STR_EQ(o.data, "http://example.com:80");
    ASSERT_EQ(sl_url_origin("http://example.com/?x@y:1", &o), 0);
    ASSERT_STR_EQ(o.data, "http://example.com:80");
    ASSERT_EQ(sl_url_origin("http://example.com#a:1", &o), 0);
    ASSERT_STR_EQ(o.data, "http://example.com:80");
    sl_buf_free(&o);
}

TEST(url_rejects)
{
    /* Empty, or only whitespace. */
    expect_url_rejected("", "url: empty");
    expect_url_rejected(" \t\r\n", "url: empty");
    /* Not absolute. */
    static const char *const relative[] = {
        "example.com/a",
        "//example.com/",
        "/a/b",
        "http:/example.com/",
        "http:example.com",
        "mailto:a@example.com",
        "javascript:alert(1)",
        "http",
        "http:",
        "http:/",
        "urn:isbn:0451450523",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(relative); i++)
        expect_url_rejected(relative[i],
                            "url: not an absolute http:// or https:// URL");
    /* Other schemes, named in the reason. */
    expect_url_rejected("ftp://example.com/",
                        "url: scheme \"ftp\" is not http or https");
    expect_url_rejected("file:///etc/passwd",
                        "url: scheme \"file\" is not http or https");
    expect_url_rejected("FILE:///etc/passwd",
                        "url: scheme \"FILE\" is not http or https");
    expect_url_rejected("httpx://example.com/",
                        "url: scheme \"httpx\" is not http or https");
    expect_url_rejected("htt://example.com/",
                        "url: scheme \"htt\" is not http or https");
    expect_url_rejected("ws://example.com/", "url: scheme \"ws\"");
    expect_url_rejected("gopher://example.com/", "url: scheme \"gopher\"");
    expect_url_rejected("://example.com/",
                        "url: scheme \"\" is not http or https");
    expect_url_rejected(" ftp://example.com/ ", "url: scheme \"ftp\"");
    /* No host. */
    expect_url_rejected("http:///x", "url: no host");
    expect_url_rejected("http://?x", "url: no host");
    expect_url_rejected("http://#x", "url: no host");
    expect_url_rejected("http://", "url: no host");
    expect_url_rejected("https:///", "url: no host");
    expect_url_rejected("http://:80/", "url: no host");
    expect_url_rejected("http://@/", "url: no host");
    expect_url_rejected("http://user@/x", "url: no host");
    /* Port 0, however spelled; ports curl refuses. */
    expect_url_rejected("http://example.com:0/", "url: port 0");
    expect_url_rejected("http://example.com:000/x", "url: port 0");
    expect_url_rejected("https://[::1]:0/", "url: port 0");
    expect_url_rejected("http://example.com:0", "url: port 0");
    static const char *const bad_ports[] = {
        "http://example.com:65536/",
        "http://example.com:99999999999/",
        "http://example.com:-1/",
        "http://example.com:+80/",
        "http://example.com:8o/",
        "http://example.com:8080x/",
        "http://example.com: 80/",
        "http://::1/",
        "http://[::1]x/",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad_ports); i++)
        expect_url_rejected(bad_ports[i], "url: port number was not a "
                                          "decimal number between 0 and "
                                          "65535");
    /* Hosts and other parts curl refuses. */
    expect_url_rejected("http://exa mple.com/", "url: bad hostname");
    expect_url_rejected("http://a@b@example.com/", "url: bad hostname");
    expect_url_rejected("http://example.com%2F/", "url: bad hostname");
    expect_url_rejected("http://[::1/", "url: bad IPv6 address");
    /* Host %-escapes curl decodes: held to the rules raw text is held to,
     * and refused when they decode to another host (found by fuzzing). */
    expect_url_rejected("http://%ff/", "url: host has a %-escaped control "
                                       "byte or invalid UTF-8");
    expect_url_rejected("http://a%c3b/", "url: host has a %-escaped");
    expect_url_rejected("http://4%2e967295/",
                        "url: host's %-escapes decode to another host");
    expect_url_rejected("http://[::g]/", "url: bad IPv6 address");
    expect_url_rejected("http://[]/", "url: bad IPv6 address");
    expect_url_rejected("http://a b@example.com/", "url: bad user");
}

TEST(url_rejects_bytes_and_length)
{
    /* Control bytes anywhere, with the offset in the trimmed text. */
    expect_url_rejected("http://example.com/a\tb",
                        "url: control byte 0x09 at offset 20");
    expect_url_rejected("http://exa\tmple.com/",
                        "url: control byte 0x09 at offset 10");
    expect_url_rejected("  http://example.com/?a\tb",
                        "url: control byte 0x09 at offset 21");
    expect_url_rejected("http://example.com/a\rb",
                        "url: control byte 0x0d at offset 20");
    expect_url_rejected("http://example.com/a\nb",
                        "url: control byte 0x0a at offset 20");
    expect_url_rejected("http://example.com/\x7f",
                        "url: control byte 0x7f at offset 19");
    expect_url_rejected("http://example.com/\x01",
                        "url: control byte 0x01 at offset 19");
    expect_url_rejected("http://example.com/#\x1b",
                        "url: control byte 0x1b at offset 20");
    /* A NUL inside the slice is a control byte, not the end. */
    expect_url_rejected_len("http://exa\0mple.com/", 20,
                            "url: control byte 0x00 at offset 10");
    /* Invalid UTF-8: stray, truncated, overlong, surrogate, too high. */
    expect_url_rejected("http://example.com/\xff",
                        "url: invalid UTF-8 at offset 19");
    expect_url_rejected("http://example.com/a\x80",
                        "url: invalid UTF-8 at offset 20");
    expect_url_rejected("http://example.com/\xc3",
                        "url: invalid UTF-8 at offset 19");
    expect_url_rejected("http://example.com/\xc0\xaf",
                        "url: invalid UTF-8 at offset 19");
    expect_url_rejected("http://example.com/\xed\xa0\x80",
                        "url: invalid UTF-8 at offset 19");
    expect_url_rejected("http://example.com/\xf4\x90\x80\x80",
                        "url: invalid UTF-8 at offset 19");
    expect_url_rejected("http://b\374cher.de/",
                        "url: invalid UTF-8 at offset 8");

    /* Exactly SL_URL_MAX bytes is fine, with whitespace around it too. */
    const char *head = "http://example.com/";
    char *max = repeat('a', SL_URL_MAX - strlen(head), head, "");
    ASSERT_EQ(strlen(max), SL_URL_MAX);
    expect_url(max, max, "http://example.com:80");
    char *padded = malloc(SL_URL_MAX + 3);
    ASSERT_NOT_NULL(padded);
    snprintf(padded, SL_URL_MAX + 3, " %s\n", max);
    expect_url(padded, max, "http://example.com:80");
    /* One byte more is not. */
    char *over = repeat('a', SL_URL_MAX + 1 - strlen(head), head, "");
    expect_url_rejected(over, "url: longer than 8192 bytes (8193)");
    char *far_over = repeat('a', 100000, head, "");
    expect_url_rejected(far_over, "url: longer than 8192 bytes (100019)");
    free(max);
    free(padded);
    free(over);
    free(far_over);
}

/* The text is a slice: bytes after `len` are not part of the URL. */
TEST(url_slice_not_terminated)
{
    const char *text = "http://example.com/abc\xff garbage";
    url_result r;
    url_result_init(&r);
    run_url_check(text, strlen("http://example.com/abc"), NULL, &r);
    ASSERT_EQ(r.err, SLUICE_OK);
    ASSERT_STR_EQ(r.url.data, "http://example.com/abc");

    /* The same past the 512-byte stack copy, and needing curl's help. */
    char *long_url = repeat('b', 600, "HTTP://example.com/./", "?q#f");
    size_t len = strlen(long_url);
    char *want = repeat('b', 600, "http://example.com/", "?q");
    run_url_check(long_url, len - 2, NULL, &r);
    ASSERT_EQ(r.err, SLUICE_OK);
    ASSERT_STR_EQ(r.url.data, want);
    ASSERT_EQ(r.url.len, strlen(want));
    /* And a slice that ends just before a control byte. */
    run_url_check("http://example.com/x\ty", 20, NULL, &r);
    ASSERT_EQ(r.err, SLUICE_OK);
    ASSERT_STR_EQ(r.url.data, "http://example.com/x");
    free(long_url);
    free(want);
    url_result_free(&r);
}

/* url and origin are each optional; a reused handle keeps no state. */
TEST(url_optional_outputs_and_reuse)
{
    char why[128] = "";
    sl_buf url, origin;
    sl_buf_init(&url);
    sl_buf_init(&origin);
    ASSERT_EQ(sl_url_check("http://Example.com/a/../b", 25, NULL, NULL, NULL,
                           why, sizeof why),
              SLUICE_OK);
    ASSERT_EQ(sl_url_check("http://Example.com/a/../b", 25, NULL, NULL, &origin,
                           why, sizeof why),
              SLUICE_OK);
    ASSERT_STR_EQ(origin.data, "http://example.com:80");
    ASSERT_EQ(sl_url_check("https://example.com/c", 21, NULL, &url, NULL, why,
                           sizeof why),
              SLUICE_OK);
    ASSERT_STR_EQ(url.data, "https://example.com/c");
    ASSERT_EQ(sl_url_check("ftp://x/", 8, NULL, NULL, NULL, why, sizeof why),
              SLUICE_EURL);
    ASSERT_STR_CONTAINS(why, "url: scheme");

    /*
     * One handle through good and bad URLs: a URL with a fragment, a
     * rejected one, then URLs that must not inherit anything from them.
     */
    CURLU *h = curl_url();
    ASSERT_NOT_NULL(h);
    static const struct {
        const char *in, *url; /* url NULL: rejected */
    } steps[] = {
        {"http://u:p@a.example:81/x/y?q#f", "http://u:p@a.example:81/x/y?q"},
        {"http://b.example/z", "http://b.example/z"},
        {"http://[::1", NULL},
        {"https://c.example", "https://c.example/"},
        {"http://example.com:0/", NULL},
        {"http://d.example/?", "http://d.example/"},
        {"http://e.example/a b", "http://e.example/a%20b"},
        {"http://f.example/", "http://f.example/"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(steps); i++) {
        sluice_err err = sl_url_check(steps[i].in, strlen(steps[i].in), h, &url,
                                      &origin, why, sizeof why);
        if (!steps[i].url) {
            ASSERT_EQ(err, SLUICE_EURL);
            continue;
        }
        if (err != SLUICE_OK)
            TEST_FAIL_("\"%s\": %s", steps[i].in, why);
        ASSERT_STR_EQ(url.data, steps[i].url);
    }
    curl_url_cleanup(h);
    sl_buf_free(&url);
    sl_buf_free(&origin);
}

/* ------------------------------------------------------------------ */
/* Object keys                                                        */
/* ------------------------------------------------------------------ */

TEST(key_check_accepts)
{
    expect_key_ok("a");
    expect_key_ok("photo.jpg");
    expect_key_ok("a/b/c.jpg");
    expect_key_ok("products/2024/sku-123_large.webp");
    expect_key_ok("\xe6\x97\xa5\xe6\x9c\xac/\xe5\x86\x99\xe7\x9c\x9f.jpg");
    expect_key_ok("caf\xc3\xa9/\xf0\x9f\x98\x80.png");
    expect_key_ok("a/.hidden");
    expect_key_ok("a/..b");
    expect_key_ok("a/b..");
    expect_key_ok("...");
    expect_key_ok("a/.../b");
    expect_key_ok(".sluic");
    expect_key_ok("sluice");
    expect_key_ok("x.sluice");
    expect_key_ok("a/x.sluice-tmp");
    expect_key_ok("a b/c%20d?e=f&g#h");
    expect_key_ok("~user/a:b;c,d@e+f=g");

    /* A 255-byte segment; a key of exactly SL_KEY_MAX bytes. */
    char *seg = repeat('s', SL_SEGMENT_MAX, "a/", "/b");
    expect_key_ok(seg);
    char key[SL_KEY_MAX + 1];
    for (size_t i = 0; i < SL_KEY_MAX; i++)
        key[i] = i % 100 == 99 ? '/' : 'k';
    key[SL_KEY_MAX] = '\0';
    expect_key_ok(key);
    free(seg);
}

TEST(key_check_rejects)
{
    expect_key_rejected("", "key: empty");
    expect_key_rejected("/a", "key: absolute (starts with /)");
    expect_key_rejected("/", "key: absolute (starts with /)");
    expect_key_rejected("a\\b", "key: contains a backslash");
    expect_key_rejected("..\\x", "key: contains a backslash");
    expect_key_rejected("a//b", "key: empty path segment");
    expect_key_rejected("a/", "key: empty path segment");
    expect_key_rejected("a/b/", "key: empty path segment");
    expect_key_rejected(".", "key: contains a \".\" segment");
    expect_key_rejected("..", "key: contains a \"..\" segment");
    expect_key_rejected("a/./b", "key: contains a \".\" segment");
    expect_key_rejected("a/../b", "key: contains a \"..\" segment");
    expect_key_rejected("../etc/passwd", "key: contains a \"..\" segment");
    expect_key_rejected("a/..", "key: contains a \"..\" segment");
    expect_key_rejected("a/.", "key: contains a \".\" segment");
    expect_key_rejected(".sluice",
                        "key: segments starting with \".sluice\" are "
                        "reserved");
    expect_key_rejected(".sluice-tmp-123", "are reserved");
    /* In any case: a case-insensitive disk would see the same name. */
    expect_key_rejected(".SLUICE", "are reserved");
    expect_key_rejected("a/.Sluice-tmp", "are reserved");
    expect_key_rejected("a/.sluice/b", "are reserved");
    expect_key_rejected("a/b/.sluicex", "are reserved");
    /* Control bytes and invalid UTF-8, with offsets. */
    expect_key_rejected("a\tb", "key: control byte 0x09 at offset 1");
    expect_key_rejected("ab\n", "key: control byte 0x0a at offset 2");
    expect_key_rejected("a/\x7f", "key: control byte 0x7f at offset 2");
    expect_key_rejected_len("a\0b", 3, "key: control byte 0x00 at offset 1");
    expect_key_rejected("ab\xff", "key: invalid UTF-8 at offset 2");
    expect_key_rejected("a/\xc3", "key: invalid UTF-8 at offset 2");
    expect_key_rejected("\xc0\xae\xc0\xae/x", "key: invalid UTF-8 at offset 0");
    expect_key_rejected("a\xed\xa0\x80", "key: invalid UTF-8 at offset 1");

    /* A 256-byte segment, first or last; a key of SL_KEY_MAX + 1 bytes. */
    char *seg = repeat('s', SL_SEGMENT_MAX + 1, "a/", "/b");
    expect_key_rejected(seg, "key: path segment longer than 255 bytes");
    free(seg);
    seg = repeat('s', SL_SEGMENT_MAX + 1, "", "");
    expect_key_rejected(seg, "key: path segment longer than 255 bytes");
    free(seg);
    char key[SL_KEY_MAX + 2];
    for (size_t i = 0; i <= SL_KEY_MAX; i++)
        key[i] = i % 100 == 99 ? '/' : 'k';
    key[SL_KEY_MAX + 1] = '\0';
    expect_key_rejected(key, "key: longer than 1024 bytes (1025)");
}

/* ------------------------------------------------------------------ */
/* Default keys                                                       */
/* ------------------------------------------------------------------ */

TEST(key_derive_from_id)
{
    /* Safe ids are kept; the URL's extension is added when they lack one. */
    expect_derived("12345", "http://h.example/p/photo.jpg", "12345.jpg");
    expect_derived("12345", "http://h.example/p/photo.JPG", "12345.JPG");
    expect_derived("12345", "http://h.example/p/photo", "12345");
    expect_derived("12345", "http://h.example/p/", "12345");
    expect_derived("12345", "http://h.example", "12345");
    expect_derived("12345", "http://h.example/a.tar.gz", "12345.gz");
    expect_derived("12345", "http://h.example/p.d/file", "12345");
    expect_derived("12345", "http://h.example/.htaccess", "12345");
    expect_derived("12345", "http://h.example/file.tar-gz", "12345");
    expect_derived("12345", "http://h.example/f.abcdefghij",
                   "12345.abcdefghij");
    expect_derived("12345", "http://h.example/f.abcdefghijk", "12345");
    expect_derived("12345", "http://h.example/f.mp4", "12345.mp4");
    /* The extension comes from the path, decoded; not from the query. */
    expect_derived("12345", "http://h.example/f.j%70g", "12345.jpg");
    expect_derived("12345", "http://h.example/f?name=x.png", "12345");
    expect_derived("12345", "http://h.example/f.gif?name=x.png", "12345.gif");
    expect_derived("12345", "http://h.example/f.gif#x.png", "12345.gif");
    expect_derived("12345", "http://h.example/f.%E2%82%AC", "12345");
    /* An id that has its own extension keeps it. */
    expect_derived("photo.png", "http://h.example/x.jpg", "photo.png");
    expect_derived("sku-1_a~b", "http://h.example/x.jpg", "sku-1_a~b.jpg");
    expect_derived("ID", "http://h.example/x.jpg", "ID.jpg");
    /* Everything but [A-Za-z0-9._~-] is percent-encoded. */
    expect_derived("sku/123", "http://h.example/x.jpg", "sku%2F123.jpg");
    expect_derived("a b", "http://h.example/x", "a%20b");
    expect_derived("a+b,c=d@e", "http://h.example/x", "a%2Bb%2Cc%3Dd%40e");
    expect_derived("100%", "http://h.example/x.png", "100%25.png");
    expect_derived("a\\b:c", "http://h.example/x", "a%5Cb%3Ac");
    expect_derived("caf\xc3\xa9", "http://h.example/x.jpg", "caf%C3%A9.jpg");
    expect_derived("../../etc/passwd", "http://h.example/x",
                   "..%2F..%2Fetc%2Fpasswd");
    expect_derived("https://cdn.example/a.jpg?x=1", "http://h.example/x",
                   "https%3A%2F%2Fcdn.example%2Fa.jpg%3Fx%3D1");
    /* "." and ".." are encoded whole; a reserved prefix is defused. */
    expect_derived(".", "http://h.example/x", "%2E");
    expect_derived("..", "http://h.example/x", "%2E%2E");
    expect_derived("...", "http://h.example/x", "%2E%2E%2E");
    expect_derived("..", "http://h.example/x.png", "%2E%2E.png");
    expect_derived(".sluice", "http://h.example/x", "%2Esluice");
    expect_derived(".sluice-tmp.png", "http://h.example/x",
                   "%2Esluice-tmp.png");
    expect_derived(".sluic", "http://h.example/x", ".sluic");
    expect_derived("..sluice", "http://h.example/x", "..sluice");
    expect_derived(".hidden", "http://h.example/x.png", ".hidden.png");
}

/* Distinct ids must never share a derived key. */
TEST(key_derive_id_injective)
{
    static const char *const ids[] = {
        "a",
        "A",
        "a.",
        ".a",
        "a b",
        "a%20b",
        "a%2520b",
        "a+b",
        "a/b",
        "a%2Fb",
        "a%2fb",
        "a\\b",
        "a:b",
        "a?b",
        "a#b",
        "a\"b",
        "a_b",
        "a-b",
        "a~b",
        "a%7Eb",
        ".",
        "..",
        "...",
        "%2E",
        "%2e",
        "%2E%2E",
        ".sluice",
        "%2Esluice",
        ".sluicex",
        "x.sluice",
        "..sluice",
        "%",
        "%25",
        "%%",
        "-",
        "_",
        "~",
        "\xc3\xa9",
        "%C3%A9",
        "e\xcc\x81",
        "\xe2\x82\xac",
        "a\xc3\xa9",
        "a%C3%A9",
        "/a",
        "a/",
        "//",
        "/",
        "a//b",
        "a/./b",
        "a/../b",
        "0",
        "00",
        "1.0",
        "1_0",
        "x.jpg",
        "x%2Ejpg",
        "x.jpg.",
        "@",
        "%40",
        "a=b",
        "a&b",
        "a,b",
        "(a)",
        "[a]",
        "{a}",
        "a'b",
        "a*b",
        "a!b",
        "a$b",
        "a;b",
        "a|b",
        "a<b>",
        "a^b",
        "a`b",
    };
    const size_t n = SL_ARRAY_LEN(ids);
    static const char *const urls[] = {
        "http://h.example/x",
        "http://h.example/",
        "http://h.example/x.d/",
    };
    for (size_t u = 0; u < SL_ARRAY_LEN(urls); u++) {
        char **keys = calloc(n, sizeof *keys);
        sl_buf key, scratch;
        sl_buf_init(&key);
        sl_buf_init(&scratch);
        ASSERT_NOT_NULL(keys);
        for (size_t i = 0; i < n; i++) {
            ASSERT_EQ(sl_key_derive(&key, &scratch, ids[i], strlen(ids[i]),
                                    true, urls[u]),
                      SLUICE_OK);
            /* Every derived key is also a valid key. */
            char why[128] = "";
            if (sl_key_check(key.data, key.len, why, sizeof why) != SLUICE_OK)
                TEST_FAIL_("id \"%s\" gives key \"%s\": %s", ids[i], key.data,
                           why);
            /* Nothing but [A-Za-z0-9._~%-] in a key made from an id. */
            for (size_t k = 0; k < key.len; k++)
                if (!isalnum((unsigned char)key.data[k]) &&
                    !strchr("._~%-", key.data[k]))
                    TEST_FAIL_("id \"%s\" gives key \"%s\"", ids[i], key.data);
            keys[i] = strdup(key.data);
            ASSERT_NOT_NULL(keys[i]);
        }
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (strcmp(keys[i], keys[j]) == 0)
                    TEST_FAIL_("ids \"%s\" and \"%s\" share key \"%s\" "
                               "(url %s)",
                               ids[i], ids[j], keys[i], urls[u]);
        for (size_t i = 0; i < n; i++)
            free(keys[i]);
        free(keys);
        sl_buf_free(&key);
        sl_buf_free(&scratch);
    }
}

TEST(key_derive_bare_url)
{
    /* host, lower case, then the path; "/" and "" give index.html. */
    expect_derived(NULL, "http://Example.COM/", "example.com/index.html");
    expect_derived(NULL, "http://example.com", "example.com/index.html");
    expect_derived(NULL, "http://example.com/a/b/c.jpg",
                   "example.com/a/b/c.jpg");
    expect_derived(NULL, "http://example.com/a/", "example.com/a/index.html");
    expect_derived(NULL, "http://example.com/a/b/..",
                   "example.com/a/index.html");
    expect_derived(NULL, "http://example.com/A/B.JPG", "example.com/A/B.JPG");
    /* A port only when it is not the scheme's default. */
    expect_derived(NULL, "http://example.com:8080/a/b.jpg",
                   "example.com+8080/a/b.jpg");
    expect_derived(NULL, "http://example.com:80/a", "example.com/a");
    expect_derived(NULL, "http://example.com:080/a", "example.com/a");
    expect_derived(NULL, "https://example.com:443/a", "example.com/a");
    expect_derived(NULL, "https://example.com:80/a", "example.com+80/a");
    expect_derived(NULL, "http://example.com:443/a", "example.com+443/a");
    /* Userinfo and fragment play no part. */
    expect_derived(NULL, "http://user:pw@example.com/x#f", "example.com/x");
    /* The query follows as %3F and the query made safe. */
    expect_derived(NULL, "http://example.com/a/b?x=1&y=2",
                   "example.com/a/b%3Fx=1%26y=2");
    expect_derived(NULL, "http://example.com/?q", "example.com/index.html%3Fq");
    expect_derived(NULL, "http://example.com?q", "example.com/index.html%3Fq");
    expect_derived(NULL, "http://example.com/a?q=%2F..%2F",
                   "example.com/a%3Fq=%2F..%2F");
    expect_derived(NULL, "http://example.com/s?q=a b", "example.com/s%3Fq=a+b");
    expect_derived(NULL, "http://example.com/s?a/b", "example.com/s%3Fa%2Fb");
    expect_derived(NULL, "http://example.com/s??", "example.com/s%3F%3F");
    /* An empty query is no query. */
    expect_derived(NULL, "http://example.com/a?", "example.com/a");
    expect_derived(NULL, "http://example.com/?", "example.com/index.html");
    /* Segments are decoded, then made safe. */
    expect_derived(NULL, "http://example.com/a%20b/c%2Fd",
                   "example.com/a%20b/c%2Fd");
    expect_derived(NULL, "http://example.com/%41%42", "example.com/AB");
    expect_derived(NULL, "http://example.com/a b.txt", "example.com/a%20b.txt");
    expect_derived(NULL, "http://example.com/a+b,c=d@e~f_g-h.i",
                   "example.com/a+b,c=d@e~f_g-h.i");
    expect_derived(NULL, "http://example.com/a:b;c", "example.com/a%3Ab%3Bc");
    expect_derived(NULL, "http://example.com/a\\b", "example.com/a%5Cb");
    expect_derived(NULL, "http://example.com/%zz", "example.com/%25zz");
    expect_derived(NULL, "http://example.com/%00", "example.com/%00");
    /* Valid UTF-8 stays readable; anything else is encoded. */
    expect_derived(NULL, "http://example.com/caf%C3%A9/\xc3\xbc.jpg",
                   "example.com/caf\xc3\xa9/\xc3\xbc.jpg");
    expect_derived(NULL, "http://example.com/%FF.bin", "example.com/%FF.bin");
    /* The host as it is fetched: an IDN in its ASCII form. */
    expect_derived(NULL, "http://b\303\274cher.de/",
                   "xn--bcher-kva.de/index.html");
    /* Dot segments, encoded or not, and reserved names are defused. */
    expect_derived(NULL, "http://example.com/%2e%2e/x", "example.com/%2E%2E/x");
    expect_derived(NULL, "http://example.com/a/%2E", "example.com/a/%2E");
    expect_derived(NULL, "http://example.com/.sluice-tmp/x",
                   "example.com/%2Esluice-tmp/x");
    expect_derived(NULL, "http://example.com/a/.hidden",
                   "example.com/a/.hidden");
    /* Empty segments vanish. */
    expect_derived(NULL, "http://example.com//a//b", "example.com/a/b");
    /* Addresses. */
    expect_derived(NULL, "http://2130706433/img.png", "127.0.0.1/img.png");
    expect_derived(NULL, "http://[::1]:8080/x", "%5B%3A%3A1%5D+8080/x");
    expect_derived(NULL, "http://[::1]/", "%5B%3A%3A1%5D/index.html");
}

/* Whatever URL sl_url_check accepts, its default keys are valid keys. */
TEST(key_derive_always_valid)
{
    char buf[1024];
    sl_buf key, scratch;
    url_result r;
    unsigned derived = 0;
    sl_buf_init(&key);
    sl_buf_init(&scratch);
    url_result_init(&r);
    for (size_t i = 0; i < SL_ARRAY_LEN(url_corpus) + 3000; i++) {
        const char *in = buf;
        if (i < SL_ARRAY_LEN(url_corpus))
            in = url_corpus[i];
        else
            gen_url(buf, sizeof buf);
        run_url_check(in, strlen(in), NULL, &r);
        if (r.err != SLUICE_OK)
            continue;
        for (int has_id = 0; has_id < 2; has_id++) {
            char why[160] = "";
            ASSERT_EQ(sl_key_derive(&key, &scratch, r.url.data, r.url.len,
                                    has_id, r.url.data),
                      SLUICE_OK);
            ASSERT_EQ(key.len, strlen(key.data));
            if (sl_key_check(key.data, key.len, why, sizeof why) != SLUICE_OK)
                TEST_FAIL_("\"%s\" (%s): key \"%s\": %s", r.url.data,
                           has_id ? "as id" : "bare", key.data, why);
            derived++;
        }
    }
    ASSERT_GE(derived, 2000);
    sl_buf_free(&key);
    sl_buf_free(&scratch);
    url_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* sl_record_prepare                                                  */
/* ------------------------------------------------------------------ */

static sl_feed_item
item_of(const char *id, const char *url, const char *key, const char *meta)
{
    sl_feed_item item = {0};
    item.id = id;
    item.id_len = id ? strlen(id) : 0;
    item.url = url;
    item.url_len = url ? strlen(url) : 0;
    item.key = key;
    item.key_len = key ? strlen(key) : 0;
    item.meta = meta;
    return item;
}

/* Views in a record are sized, not necessarily terminated. */
static void
expect_view(const char *what, const char *p, size_t len, const char *want)
{
    if (!p || len != strlen(want) || memcmp(p, want, len) != 0)
        TEST_FAIL_("%s: \"%.*s\", want \"%s\"", what, p ? (int)len : 6,
                   p ? p : "(null)", want);
}

static void
expect_prepared(sl_record_scratch *s, const sl_feed_item *item, const char *id,
                const char *url, const char *key, const char *origin)
{
    sl_record rec;
    char why[256] = "";
    sluice_err err = sl_record_prepare(s, item, &rec, why, sizeof why);
    if (err != SLUICE_OK)
        TEST_FAIL_("\"%.*s\": rejected (%d): %s", (int)item->url_len, item->url,
                   (int)err, why);
    expect_view("id", rec.id, rec.id_len, id);
    expect_view("url", rec.url, rec.url_len, url);
    expect_view("key", rec.key, rec.key_len, key);
    expect_view("origin", rec.origin, rec.origin_len, origin);
    if (item->meta) {
        ASSERT(rec.meta == item->meta);
        ASSERT_EQ(rec.meta_len, strlen(item->meta));
    } else {
        ASSERT_NULL(rec.meta);
        ASSERT_EQ(rec.meta_len, 0);
    }
}

static void
expect_prepare_fails(sl_record_scratch *s, const sl_feed_item *item,
                     sluice_err want_err, const char *want_reason)
{
    sl_record rec;
    char why[256] = "";
    sluice_err err = sl_record_prepare(s, item, &rec, why, sizeof why);
    if (err != want_err)
        TEST_FAIL_("returned %d (%s), want %d", (int)err, why, (int)want_err);
    if (!strstr(why, want_reason))
        TEST_FAIL_("reason \"%s\" lacks \"%s\"", why, want_reason);
}

TEST(record_prepare_defaults)
{
    sl_record_scratch s;
    sl_record_scratch_init(&s);

    /* No id: the id is the normalised URL, the key from host and path. */
    sl_feed_item item =
        item_of(NULL, "HTTP://Example.com/a/../b.jpg#x", NULL, NULL);
    expect_prepared(&s, &item, "http://example.com/b.jpg",
                    "http://example.com/b.jpg", "example.com/b.jpg",
                    "http://example.com:80");
    /* Both spellings of an IDN host are one record, one key, one origin. */
    item = item_of(NULL, "http://B\303\274cher.example/img/1.jpg", NULL, NULL);
    expect_prepared(&s, &item, "http://xn--bcher-kva.example/img/1.jpg",
                    "http://xn--bcher-kva.example/img/1.jpg",
                    "xn--bcher-kva.example/img/1.jpg",
                    "http://xn--bcher-kva.example:80");
    item = item_of(NULL, "http://xn--bcher-kva.example/img/1.jpg", NULL, NULL);
    expect_prepared(&s, &item, "http://xn--bcher-kva.example/img/1.jpg",
                    "http://xn--bcher-kva.example/img/1.jpg",
                    "xn--bcher-kva.example/img/1.jpg",
                    "http://xn--bcher-kva.example:80");
    /* The hostile spellings get through ingest, normalised. */
    item = item_of(NULL, " http://2130706433/x?y=1 ", NULL, NULL);
    expect_prepared(&s, &item, "http://127.0.0.1/x?y=1",
                    "http://127.0.0.1/x?y=1", "127.0.0.1/x%3Fy=1",
                    "http://127.0.0.1:80");
    /* An id: the key is the id made safe, plus the URL's extension. */
    item = item_of("sku/1", "https://cdn.example/p/photo.webp?w=1", NULL,
                   "{\"a\":1}");
    expect_prepared(&s, &item, "sku/1", "https://cdn.example/p/photo.webp?w=1",
                    "sku%2F1.webp", "https://cdn.example:443");
    /* An explicit key is used as given. */
    item = item_of("sku-2", "http://cdn.example:8080/x.png", "custom/dir/k.bin",
                   "{}");
    expect_prepared(&s, &item, "sku-2", "http://cdn.example:8080/x.png",
                    "custom/dir/k.bin", "http://cdn.example:8080");
    item = item_of(NULL, "http://cdn.example/x.png", "k", NULL);
    expect_prepared(&s, &item, "http://cdn.example/x.png",
                    "http://cdn.example/x.png", "k", "http://cdn.example:80");
    /* A UTF-8 id, and one of exactly SL_ID_MAX bytes with a key. */
    item = item_of("caf\xc3\xa9", "http://h.example/x.jpg", NULL, NULL);
    expect_prepared(&s, &item, "caf\xc3\xa9", "http://h.example/x.jpg",
                    "caf%C3%A9.jpg", "http://h.example:80");
    char *id = repeat('i', SL_ID_MAX, "", "");
    item = item_of(id, "http://h.example/x.jpg", "k.jpg", NULL);
    expect_prepared(&s, &item, id, "http://h.example/x.jpg", "k.jpg",
                    "http://h.example:80");
    free(id);
    /* A 255-byte id still fits in one key segment. */
    id = repeat('i', SL_SEGMENT_MAX - 4, "", "");
    char *want = repeat('i', SL_SEGMENT_MAX - 4, "", ".jpg");
    item = item_of(id, "http://h.example/x.jpg", NULL, NULL);
    expect_prepared(&s, &item, id, "http://h.example/x.jpg", want,
                    "http://h.example:80");
    free(id);
    free(want);
    sl_record_scratch_free(&s);
}

/* Items are slices of a feed line: nothing may read past the lengths. */
TEST(record_prepare_slices)
{
    sl_record_scratch s;
    sl_record_scratch_init(&s);
    const char *line = "sku-9|http://h.example/a.png|k/x.png|junk\x01\xff";
    sl_feed_item item = {0};
    item.id = line;
    item.id_len = 5;
    item.url = line + 6;
    item.url_len = 22;
    sl_record rec;
    char why[256] = "";
    ASSERT_EQ(sl_record_prepare(&s, &item, &rec, why, sizeof why), SLUICE_OK);
    expect_view("id", rec.id, rec.id_len, "sku-9");
    expect_view("url", rec.url, rec.url_len, "http://h.example/a.png");
    expect_view("key", rec.key, rec.key_len, "sku-9.png");
    item.key = line + 29;
    item.key_len = 7;
    ASSERT_EQ(sl_record_prepare(&s, &item, &rec, why, sizeof why), SLUICE_OK);
    expect_view("key", rec.key, rec.key_len, "k/x.png");
    sl_record_scratch_free(&s);
}

TEST(record_prepare_rejects)
{
    sl_record_scratch s;
    sl_record_scratch_init(&s);
    sl_feed_item item;

    /* The URL. */
    item = item_of("x", NULL, NULL, NULL);
    expect_prepare_fails(&s, &item, SLUICE_EPARSE, "url: missing");
    item = item_of(NULL, NULL, "k", NULL);
    expect_prepare_fails(&s, &item, SLUICE_EPARSE, "url: missing");
    item = item_of(NULL, "", NULL, NULL);
    expect_prepare_fails(&s, &item, SLUICE_EURL, "url: empty");
    item = item_of("x", "ftp://h.example/", NULL, NULL);
    expect_prepare_fails(&s, &item, SLUICE_EURL,
                         "url: scheme \"ftp\" is not http or https");
    item = item_of("x", "http:///x", NULL, NULL);
    expect_prepare_fails(&s, &item, SLUICE_EURL, "url: no host");
    /* The URL is checked before the id and the key. */
    item = item_of("", "gopher://h/", "/abs", NULL);
    expect_prepare_fails(&s, &item, SLUICE_EURL, "url: scheme");

    /* The id. */
    item = item_of("", "http://h.example/", NULL, NULL);
    expect_prepare_fails(&s, &item, SLUICE_EPARSE, "id: empty");
    char *id = repeat('i', SL_ID_MAX + 1, "", "");
    item = item_of(id, "http://h.example/", "k", NULL);
    expect_prepare_fails(&s, &item, SLUICE_EPARSE,
                         "id: longer than 4096 bytes");
    free(id);
    item = item_of("ab\ncd", "http://h.example/", "k", NULL);
    expect_prepare_fails(&s, &item, SLUICE_EPARSE,
                         "id: control byte 0x0a at offset 2");
    item = item_of("ab\x7f", "http://h.example/", "k", NULL);
    expect_prepare_fails(&s, &item, SLUICE_EPARSE,
                         "id: control byte 0x7f at offset 2");
    item = item_of("ab\xc3(", "http://h.example/", "k", NULL);
    expect_prepare_fails(&s, &item, SLUICE_EPARSE,
                         "id: invalid UTF-8 at offset 2");
    /* The id is checked before the key. */
    item = item_of("a\tb", "http://h.example/", "/abs", NULL);
    expect_prepare_fails(&s, &item, SLUICE_EPARSE, "id: control byte");

    /* An explicit key. */
    item = item_of("x", "http://h.example/", "../up", NULL);
    expect_prepare_fails(&s, &item, SLUICE_EKEY,
                         "key: contains a \"..\" segment");
    item = item_of("x", "http://h.example/", "/abs", NULL);
    expect_prepare_fails(&s, &item, SLUICE_EKEY, "key: absolute");
    item = item_of("x", "http://h.example/", "", NULL);
    expect_prepare_fails(&s, &item, SLUICE_EKEY, "key: empty");
    item = item_of("x", "http://h.example/", ".sluice/x", NULL);
    expect_prepare_fails(&s, &item, SLUICE_EKEY, "are reserved");

    /* A derived key that breaks the rules asks for an explicit key. */
    id = repeat('i', SL_SEGMENT_MAX + 1, "", "");
    item = item_of(id, "http://h.example/x", NULL, NULL);
    expect_prepare_fails(&s, &item, SLUICE_EKEY,
                         "default key: path segment longer than 255 bytes; "
                         "give the record an explicit key");
    free(id);
    /* An id of 252 bytes plus the URL's ".jpg" is one byte too many. */
    id = repeat('i', SL_SEGMENT_MAX - 3, "", "");
    item = item_of(id, "http://h.example/x.jpg", NULL, NULL);
    expect_prepare_fails(&s, &item, SLUICE_EKEY, "default key: path segment");
    free(id);
    /* Encoding can push an id over: 100 spaces are 300 bytes. */
    id = repeat(' ', 100, "", "");
    item = item_of(id, "http://h.example/x", NULL, NULL);
    expect_prepare_fails(&s, &item, SLUICE_EKEY, "default key: path segment");
    free(id);
    /* A bare URL whose derived key is over SL_KEY_MAX in all. */
    char *url = malloc(2200);
    ASSERT_NOT_NULL(url);
    size_t n = (size_t)snprintf(url, 2200, "http://h.example");
    while (n < 2100)
        n += (size_t)snprintf(url + n, 2200 - n, "/%s", "segment-of-text");
    item = item_of(NULL, url, NULL, NULL);
    expect_prepare_fails(&s, &item, SLUICE_EKEY,
                         "default key: longer than 1024 bytes");
    sl_record rec;
    char why[256] = "";
    ASSERT_EQ(sl_record_prepare(&s, &item, &rec, why, sizeof why), SLUICE_EKEY);
    ASSERT_STR_CONTAINS(why, "give the record an explicit key");
    /* The same record with an explicit key is fine. */
    item = item_of(NULL, url, "short/key", NULL);
    ASSERT_EQ(sl_record_prepare(&s, &item, &rec, why, sizeof why), SLUICE_OK);
    expect_view("key", rec.key, rec.key_len, "short/key");
    free(url);
    sl_record_scratch_free(&s);
}

/* One scratch through many records: nothing leaks from one to the next. */
/* sl_meta_fields' output, "name=value;..." */
static int
collect_field(void *ctx, const char *name, const char *value)
{
    char *out = ctx;
    size_t n = strlen(out);
    snprintf(out + n, 512 - n, "%s=%s;", name, value);
    return 0;
}

TEST(meta_maps_to_object_metadata_fields)
{
    char out[512] = "", why[256] = "";
    ASSERT_EQ(sl_meta_fields("{\"Title\":\"caf\xc3\xa9\",\"w\":640,"
                             "\"Image URL\":\"x\",\"t\":[1,{\"a\":null}],"
                             "\"ok\":true}",
                             collect_field, out, why, sizeof why),
              SLUICE_OK);
    ASSERT_STR_EQ(out, "title=caf\xc3\xa9;w=640;image-url=x;"
                       "t=[1,{\"a\":null}];ok=true;");
    ASSERT_EQ(sl_meta_fields(NULL, collect_field, out, why, sizeof why),
              SLUICE_OK);
}

TEST(meta_that_cannot_be_object_metadata_is_refused_at_ingest)
{
    sl_record_scratch s;
    sl_record_scratch_init(&s);
    sl_feed_item item;
    /* Two members of one name, and names sluice sets itself. */
    item = item_of("x", "http://h.example/", NULL,
                   "{\"a_b\":1,\"A-B\":2}");
    expect_prepare_fails(&s, &item, SLUICE_EPARSE,
                         "meta: members \"a_b\" and \"A-B\" are both "
                         "metadata \"a-b\"");
    item = item_of("x", "http://h.example/", NULL, "{\"Source_URL\":1}");
    expect_prepare_fails(&s, &item, SLUICE_EPARSE,
                         "would be metadata \"source-url\", which sluice "
                         "sets itself");
    item = item_of("x", "http://h.example/", NULL, "{\"\":1}");
    expect_prepare_fails(&s, &item, SLUICE_EPARSE, "which sluice sets");
    /* Over S3's 2 KB, counting non-ASCII as sent (%XX). */
    char big[3000];
    snprintf(big, sizeof big, "{\"a\":\"%0*d\"}", SL_META_MAX - 1, 0);
    item = item_of("x", "http://h.example/", NULL, big);
    sl_record rec;
    char why[256];
    ASSERT_EQ(sl_record_prepare(&s, &item, &rec, why, sizeof why), SLUICE_OK);
    snprintf(big, sizeof big, "{\"a\":\"%0*d\"}", SL_META_MAX, 0);
    item = item_of("x", "http://h.example/", NULL, big);
    expect_prepare_fails(&s, &item, SLUICE_EPARSE,
                         "meta: over 2048 bytes as object metadata (S3's "
                         "limit), at member \"a\"");
    char wide[3000] = "{\"a\":\"";
    for (int i = 0; i < 350; i++)
        strcat(wide, "\xc3\xa9"); /* 700 bytes, 2,100 as sent */
    strcat(wide, "\"}");
    item = item_of("x", "http://h.example/", NULL, wide);
    expect_prepare_fails(&s, &item, SLUICE_EPARSE, "over 2048 bytes");
    sl_record_scratch_free(&s);
}

TEST(record_prepare_scratch_reuse)
{
    sl_record_scratch s;
    sl_record_scratch_init(&s);
    for (int round = 0; round < 3; round++) {
        sl_feed_item item =
            item_of(NULL, "http://a.example/x/y?q=1#f", NULL, NULL);
        expect_prepared(&s, &item, "http://a.example/x/y?q=1",
                        "http://a.example/x/y?q=1", "a.example/x/y%3Fq=1",
                        "http://a.example:80");
        item = item_of("bad\x01", "http://a.example/", NULL, NULL);
        expect_prepare_fails(&s, &item, SLUICE_EPARSE, "id: control byte");
        item = item_of("7", "https://b.example:8443/p.gif", NULL, "{}");
        expect_prepared(&s, &item, "7", "https://b.example:8443/p.gif", "7.gif",
                        "https://b.example:8443");
        item = item_of(NULL, "http://[::1/", NULL, NULL);
        expect_prepare_fails(&s, &item, SLUICE_EURL, "url: bad IPv6");
        item = item_of(NULL, "http://c.example", NULL, NULL);
        expect_prepared(&s, &item, "http://c.example/", "http://c.example/",
                        "c.example/index.html", "http://c.example:80");
    }
    sl_record_scratch_free(&s);
    /* Freeing twice, or a scratch never used, is harmless. */
    sl_record_scratch_free(&s);
    sl_record_scratch_init(&s);
    sl_record_scratch_free(&s);
}

#ifdef SLUICE_FAULT_INJECTION
/*
 * Fail each allocation sl_record_prepare makes, one at a time: every
 * failure is reported as SLUICE_ENOMEM (never a crash, never a record
 * built on a lost allocation), and once none fails the record is right.
 */
TEST(record_prepare_alloc_failures)
{
    static const struct {
        const char *id, *url;
        const char *key; /* the expected key */
    } cases[] = {
        {NULL, "HTTP://Example.com/a b/../c%20d?q=1#f",
         "example.com/c%20d%3Fq=1"},
        {"sku/1", "http://h.example/p/x.png", "sku%2F1.png"},
        {NULL,
         "http://h.example/" /* over the 512-byte stack copy */
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
         "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
         "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
         "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
         "/c.jpg",
         NULL},
    };
    for (size_t c = 0; c < SL_ARRAY_LEN(cases); c++) {
        bool finished = false;
        for (unsigned long nth = 1; nth < 200 && !finished; nth++) {
            sl_record_scratch s;
            sl_record_scratch_init(&s);
            sl_feed_item item = item_of(cases[c].id, cases[c].url, NULL, NULL);
            sl_record rec;
            char why[256] = "";
            sl_fault_set(SL_FAULT_ALLOC, nth);
            sluice_err err =
                sl_record_prepare(&s, &item, &rec, why, sizeof why);
            bool hit = sl_fault_count(SL_FAULT_ALLOC) >= nth;
            sl_fault_set(SL_FAULT_ALLOC, 0);
            if (hit) {
                if (err != SLUICE_ENOMEM)
                    TEST_FAIL_("case %zu, allocation %lu failed: %d (%s)", c,
                               nth, (int)err, why);
            } else {
                ASSERT_EQ(err, SLUICE_OK);
                if (cases[c].key)
                    expect_view("key", rec.key, rec.key_len, cases[c].key);
                ASSERT_GT(nth, 2); /* it did allocate, and was tested */
                finished = true;
            }
            sl_record_scratch_free(&s);
        }
        ASSERT(finished);
    }
}
#endif
