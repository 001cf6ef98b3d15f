/*
 * libFuzzer harness: object keys. sl_key_check() against a plain
 * restatement of DESIGN.md's rules, and default keys (sl_key_derive via
 * sl_record_prepare): deterministic, and refused only when too long. The
 * input is "ID\nURL", or a bare URL when it holds no newline.
 */
#include <string.h>
#include <strings.h>

#include "common.h"

/* Well-formed UTF-8, written out the long way (no overlongs, no
 * surrogates, nothing past U+10FFFF). */
static bool
utf8_ok(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        size_t n;
        if (c < 0x80)
            n = 1;
        else if (c >= 0xc2 && c < 0xe0)
            n = 2;
        else if (c >= 0xe0 && c < 0xf0)
            n = 3;
        else if (c >= 0xf0 && c < 0xf5)
            n = 4;
        else
            return false;
        if (len - i < n)
            return false;
        for (size_t k = 1; k < n; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        if ((c == 0xe0 && s[i + 1] < 0xa0) || (c == 0xed && s[i + 1] >= 0xa0) ||
            (c == 0xf0 && s[i + 1] < 0x90) || (c == 0xf4 && s[i + 1] >= 0x90))
            return false;
        i += n;
    }
    return true;
}

/* DESIGN.md: relative, no "." or ".." segment, no control bytes, within
 * the stores' limits; and no backslash, no empty segment, no ".sluice"
 * prefix (the stores' temp files). */
static bool
key_ok(const unsigned char *k, size_t len)
{
    if (len == 0 || len > SL_KEY_MAX || k[0] == '/' || !utf8_ok(k, len))
        return false;
    for (size_t i = 0; i < len; i++)
        if (k[i] < 0x20 || k[i] == 0x7f || k[i] == '\\')
            return false;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && k[i] != '/')
            continue;
        size_t n = i - start;
        const char *seg = (const char *)k + start;
        if (n == 0 || n > SL_SEGMENT_MAX || (n == 1 && seg[0] == '.') ||
            (n == 2 && seg[0] == '.' && seg[1] == '.') ||
            (n >= 7 && strncasecmp(seg, ".sluice", 7) == 0))
            return false;
        start = i + 1;
    }
    return true;
}

static void
check_key(const uint8_t *k, size_t len)
{
    char why[256];
    memset(why, 'x', sizeof why);
    sluice_err err = sl_key_check((const char *)k, len, why, sizeof why);
    bool want = key_ok(k, len);
    FUZZ_CHECK((err == SLUICE_OK) == want, "key %s: sl_key_check says %s",
               fuzz_show(k, len),
               err == SLUICE_OK ? "fine" : fuzz_show(why, strlen(why)));
    FUZZ_CHECK(err == SLUICE_OK ||
                   (err == SLUICE_EKEY && strncmp(why, "key: ", 5) == 0),
               "key %s: error %d, reason %s", fuzz_show(k, len), (int)err,
               fuzz_show(why, strnlen(why, sizeof why)));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sl_record_scratch reused;
    static bool reused_init;
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    sl_feed_item item = {0};
    sl_record_scratch fresh;
    sl_record a, b;

    if (!reused_init) {
        sl_record_scratch_init(&reused);
        reused_init = true;
    }

    check_key(data, size);
    if (nl) {
        item.id = in;
        item.id_len = (size_t)(nl - in);
        item.url = nl + 1;
        item.url_len = size - item.id_len - 1;
        check_key(data, item.id_len);
        check_key((const uint8_t *)item.url, item.url_len);
    } else {
        item.url = in;
        item.url_len = size;
    }

    /* The default key: the same with a fresh scratch and a used one. */
    sl_record_scratch_init(&fresh);
    sluice_err err = fuzz_check_prepare(&fresh, &item, &a);
    sluice_err err2 = fuzz_check_prepare(&reused, &item, &b);
    FUZZ_CHECK(err == err2, "url %s: error %d, then %d",
               fuzz_show(item.url, item.url_len), (int)err, (int)err2);
    if (err == SLUICE_OK)
        FUZZ_CHECK(a.key_len == b.key_len &&
                       memcmp(a.key, b.key, a.key_len) == 0 &&
                       strcmp(a.url, b.url) == 0,
                   "url %s: key %s, then %s", fuzz_show(item.url, item.url_len),
                   fuzz_show(a.key, a.key_len), fuzz_show(b.key, b.key_len));

    /* The id given as an explicit key: accepted as sl_key_check says. */
    if (nl && err == SLUICE_OK) {
        sl_feed_item keyed = item;
        char why[256];
        keyed.key = item.id;
        keyed.key_len = item.id_len;
        keyed.id = NULL;
        err = fuzz_check_prepare(&fresh, &keyed, &a);
        err2 = sl_key_check(keyed.key, keyed.key_len, why, sizeof why);
        FUZZ_CHECK(err == err2, "key %s: prepare says %d, sl_key_check %d",
                   fuzz_show(keyed.key, keyed.key_len), (int)err, (int)err2);
    }
    sl_record_scratch_free(&fresh);
    return 0;
}
