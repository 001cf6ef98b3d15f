/*
 * The small helpers in lib/util.c: growable buffers, message formatting,
 * UTF-8 validation (against a reference decoder, at every alignment of the
 * ASCII fast path), quoting for logs and strict integer parsing.
 */
#include <limits.h>

#include "test.h"
#include "util.h"

#ifdef SLUICE_FAULT_INJECTION
#include "fault.h"
#endif

/* ---- sl_buf ---- */

TEST(buf_starts_empty_and_appends)
{
    sl_buf b;
    sl_buf_init(&b);
    ASSERT_NULL(b.data);
    ASSERT_EQ(b.len, 0);
    ASSERT_EQ(b.cap, 0);
    sl_buf_clear(&b); /* harmless on an empty buffer */
    ASSERT_NULL(b.data);

    /* Appending nothing still gives a terminated, empty string. */
    ASSERT_EQ(sl_buf_append(&b, "", 0), 0);
    ASSERT_NOT_NULL(b.data);
    ASSERT_EQ(b.len, 0);
    ASSERT_STR_EQ(b.data, "");

    ASSERT_EQ(sl_buf_append(&b, "hello", 5), 0);
    ASSERT_EQ(sl_buf_putc(&b, ','), 0);
    ASSERT_EQ(sl_buf_append(&b, " world!!", 6), 0);
    ASSERT_EQ(b.len, 12);
    ASSERT_STR_EQ(b.data, "hello, world");
    ASSERT_GT(b.cap, b.len);

    /* Bytes are bytes: a NUL inside is kept and counted. */
    ASSERT_EQ(sl_buf_append(&b, "\0x", 2), 0);
    ASSERT_EQ(b.len, 14);
    ASSERT(memcmp(b.data + 12, "\0x", 3) == 0);

    sl_buf_free(&b);
    ASSERT_NULL(b.data);
    ASSERT_EQ(b.len, 0);
    ASSERT_EQ(b.cap, 0);
}

/* Growth keeps every byte and the terminator, and stays amortised. */
TEST(buf_grows_and_keeps_contents)
{
    sl_buf b;
    sl_buf_init(&b);
    size_t n = 1u << 20;
    size_t reallocs = 0, last_cap = 0;
    for (size_t i = 0; i < n; i++) {
        ASSERT_EQ(sl_buf_putc(&b, (char)('a' + i % 26)), 0);
        ASSERT_EQ(b.data[b.len], '\0');
        if (b.cap != last_cap) {
            reallocs++;
            last_cap = b.cap;
        }
    }
    ASSERT_EQ(b.len, n);
    ASSERT_GE(b.cap, n + 1);
    ASSERT_LE(b.cap, 2 * (n + 1));
    ASSERT_LE(reallocs, 20); /* doubling, not one step a byte */
    for (size_t i = 0; i < n; i++)
        if (b.data[i] != (char)('a' + i % 26))
            TEST_FAIL_("byte %zu is %c", i, b.data[i]);

    /* A big append in one go. */
    char *big = malloc(3 * n);
    ASSERT_NOT_NULL(big);
    memset(big, 'q', 3 * n);
    ASSERT_EQ(sl_buf_append(&b, big, 3 * n), 0);
    ASSERT_EQ(b.len, 4 * n);
    ASSERT_EQ(b.data[4 * n - 1], 'q');
    ASSERT_EQ(b.data[4 * n], '\0');
    ASSERT_EQ(b.data[n - 1], (char)('a' + (n - 1) % 26));
    free(big);
    sl_buf_free(&b);
}

TEST(buf_clear_keeps_capacity)
{
    sl_buf b;
    sl_buf_init(&b);
    ASSERT_EQ(sl_buf_append(&b, "some text", 9), 0);
    size_t cap = b.cap;
    char *data = b.data;
    sl_buf_clear(&b);
    ASSERT_EQ(b.len, 0);
    ASSERT_EQ(b.cap, cap);
    ASSERT(b.data == data);
    ASSERT_STR_EQ(b.data, "");
    ASSERT_EQ(sl_buf_append(&b, "ab", 2), 0);
    ASSERT_STR_EQ(b.data, "ab");
    sl_buf_free(&b);
}

TEST(buf_reserve)
{
    sl_buf b;
    sl_buf_init(&b);
    ASSERT_EQ(sl_buf_reserve(&b, 1000), 0);
    ASSERT_GE(b.cap, 1001);
    ASSERT_EQ(b.len, 0);
    char *data = b.data;
    /* Enough room already: nothing moves. */
    ASSERT_EQ(sl_buf_append(&b, "x", 1), 0);
    ASSERT_EQ(sl_buf_reserve(&b, 999), 0);
    ASSERT(b.data == data);
    /* Sizes that cannot be met fail, and leave the buffer alone. */
    ASSERT_EQ(sl_buf_reserve(&b, SIZE_MAX), -1);
    ASSERT_EQ(sl_buf_reserve(&b, SIZE_MAX / 2), -1);
    ASSERT_EQ(sl_buf_append(&b, "y", SIZE_MAX - 1), -1);
    ASSERT_EQ(b.len, 1);
    ASSERT_STR_EQ(b.data, "x");
    sl_buf_free(&b);
}

TEST(buf_printf)
{
    sl_buf b;
    sl_buf_init(&b);
    ASSERT_EQ(sl_buf_printf(&b, "%s", ""), 0);
    ASSERT_NOT_NULL(b.data);
    ASSERT_STR_EQ(b.data, "");
    ASSERT_EQ(sl_buf_printf(&b, "%d-%s", 42, "x"), 0);
    ASSERT_EQ(sl_buf_printf(&b, "/%05.1f/%c", 3.14159, 'z'), 0);
    ASSERT_STR_EQ(b.data, "42-x/003.1/z");
    ASSERT_EQ(b.len, 12);

    /* Longer than the first allocation, appended after what is there. */
    ASSERT_EQ(sl_buf_printf(&b, "[%*s]", 5000, "end"), 0);
    ASSERT_EQ(b.len, 12 + 5002);
    ASSERT_EQ(b.data[12], '[');
    ASSERT_EQ(b.data[13], ' ');
    ASSERT(memcmp(b.data + b.len - 4, "end]", 5) == 0);
    ASSERT_EQ(strlen(b.data), b.len);

    /* Many small ones. */
    sl_buf_clear(&b);
    for (int i = 0; i < 10000; i++)
        ASSERT_EQ(sl_buf_printf(&b, "%d,", i % 10), 0);
    ASSERT_EQ(b.len, 20000);
    ASSERT(memcmp(b.data + 19990, "5,6,7,8,9,", 11) == 0);
    sl_buf_free(&b);
}

#ifdef SLUICE_FAULT_INJECTION
/*
 * A failed allocation reports -1 and leaves the buffer as it was. (The
 * fault hits only the nth allocation after sl_fault_set.)
 */
TEST(buf_allocation_failure)
{
    sl_buf b;
    sl_buf_init(&b);
    sl_fault_set(SL_FAULT_ALLOC, 1);
    ASSERT_EQ(sl_buf_append(&b, "abc", 3), -1);
    ASSERT_NULL(b.data);
    ASSERT_EQ(b.len, 0);

    sl_fault_set(SL_FAULT_ALLOC, 0);
    ASSERT_EQ(sl_buf_append(&b, "abc", 3), 0);
    size_t cap = b.cap;
    char *big = calloc(1, cap * 4);
    ASSERT_NOT_NULL(big);
    sl_fault_set(SL_FAULT_ALLOC, 1);
    ASSERT_EQ(sl_buf_append(&b, big, cap * 4), -1);
    sl_fault_set(SL_FAULT_ALLOC, 1);
    ASSERT_EQ(sl_buf_printf(&b, "%*s", (int)cap * 4, ""), -1);
    sl_fault_set(SL_FAULT_ALLOC, 1);
    ASSERT_EQ(sl_buf_putc(&b, 'd'), 0); /* fits: no allocation */
    ASSERT_EQ(sl_fault_count(SL_FAULT_ALLOC), 0);
    sl_fault_set(SL_FAULT_ALLOC, 0);
    ASSERT_EQ(b.len, 4);
    ASSERT_EQ(b.cap, cap);
    ASSERT_STR_EQ(b.data, "abcd");
    free(big);

    sl_fault_set(SL_FAULT_ALLOC, 1);
    ASSERT_NULL(sl_strndup("abc", 3));
    sl_fault_set(SL_FAULT_ALLOC, 2);
    void *first = sl_malloc(10);
    ASSERT_NOT_NULL(first);
    ASSERT_NULL(sl_malloc(10));
    sl_free(first);
    sl_fault_set(SL_FAULT_ALLOC, 0);
    sl_buf_free(&b);
}
#endif

TEST(strdup_and_strndup)
{
    char *s = sl_strndup("abcdef", 3);
    ASSERT_STR_EQ(s, "abc");
    sl_free(s);
    s = sl_strndup("a\0b", 3);
    ASSERT_NOT_NULL(s);
    ASSERT(memcmp(s, "a\0b", 4) == 0);
    sl_free(s);
    s = sl_strndup("", 0);
    ASSERT_STR_EQ(s, "");
    sl_free(s);
    s = sl_strdup("copy me");
    ASSERT_STR_EQ(s, "copy me");
    sl_free(s);
}

/* ---- sl_fmt ---- */

TEST(fmt_truncates_and_terminates)
{
    char out[8];
    sl_fmt(out, sizeof out, "%s=%d", "ab", 7);
    ASSERT_STR_EQ(out, "ab=7");
    sl_fmt(out, sizeof out, "%s", "0123456789");
    ASSERT_STR_EQ(out, "0123456");
    sl_fmt(out, 1, "%s", "x");
    ASSERT_STR_EQ(out, "");
    memset(out, 'Z', sizeof out);
    sl_fmt(out, 0, "%s", "x"); /* size 0: nothing written */
    ASSERT_EQ(out[0], 'Z');
}

/* sl_copy is sl_fmt(dst, size, "%s", src), faster: the same results. */
TEST(copy_truncates_and_terminates_like_fmt)
{
    const char *cases[] = {"", "ab", "0123456", "01234567", "0123456789"};
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++)
        for (size_t size = 1; size <= 9; size++) {
            char want[9], got[9];
            sl_fmt(want, size, "%s", cases[i]);
            memset(got, 'Z', sizeof got);
            sl_copy(got, size, cases[i]);
            ASSERT_STR_EQ(got, want);
        }
    char out[8];
    memset(out, 'Z', sizeof out);
    sl_copy(out, 0, "x"); /* size 0: nothing written */
    ASSERT_EQ(out[0], 'Z');
    sl_copy(out, sizeof out, NULL);
    ASSERT_STR_EQ(out, "");
    /* A copy onto itself, or onto its own tail, is no overlap bug. */
    sl_copy(out, sizeof out, "abcdef");
    sl_copy(out, sizeof out, out + 2);
    ASSERT_STR_EQ(out, "cdef");
}

/* ---- sl_utf8_valid ---- */

static bool
utf8_valid(const char *s, size_t *bad)
{
    return sl_utf8_valid(s, strlen(s), bad);
}

TEST(utf8_valid_text)
{
    static const char *const good[] = {
        "",
        "plain ASCII, long enough for the fast path to matter",
        "\xC2\x80",         /* U+0080, the first two-byte */
        "\xDF\xBF",         /* U+07FF, the last two-byte */
        "\xE0\xA0\x80",     /* U+0800 */
        "\xED\x9F\xBF",     /* U+D7FF, just below the surrogates */
        "\xEE\x80\x80",     /* U+E000, just above them */
        "\xEF\xBF\xBF",     /* U+FFFF */
        "\xF0\x90\x80\x80", /* U+10000 */
        "\xF4\x8F\xBF\xBF", /* U+10FFFF, the last code point */
        "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xE6\x97\xA5\xE6\x9C\xAC",
        "\x7F\x01\t\r\n",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(good); i++) {
        size_t bad = 12345;
        if (!utf8_valid(good[i], &bad))
            TEST_FAIL_("good[%zu] rejected at %zu", i, bad);
        ASSERT(sl_utf8_valid(good[i], strlen(good[i]), NULL));
    }
    /* U+0000 is a code point like any other. */
    ASSERT(sl_utf8_valid("a\0b", 3, NULL));
    /* Only `len` bytes are looked at. */
    ASSERT(sl_utf8_valid("ab\xff", 2, NULL));
    ASSERT(sl_utf8_valid("\xC3\xA9\xC3", 2, NULL));
}

/* Each bad input, and the offset of the sequence that is wrong. */
static const struct {
    const char *text;
    size_t bad_offset;
    const char *what;
} bad_utf8[] = {
    {"\xC0\x80", 0, "overlong NUL"},
    {"\xC0\xAF", 0, "overlong /"},
    {"\xC1\xBF", 0, "overlong two-byte"},
    {"\xE0\x80\x80", 0, "overlong three-byte NUL"},
    {"\xE0\x9F\xBF", 0, "overlong U+07FF"},
    {"\xF0\x80\x80\x80", 0, "overlong four-byte NUL"},
    {"\xF0\x8F\xBF\xBF", 0, "overlong U+FFFF"},
    {"\xED\xA0\x80", 0, "surrogate U+D800"},
    {"\xED\xAF\xBF", 0, "surrogate U+DBFF"},
    {"\xED\xB0\x80", 0, "surrogate U+DC00"},
    {"\xED\xBF\xBF", 0, "surrogate U+DFFF"},
    {"\xED\xA0\xBD\xED\xB8\x80", 0, "surrogate pair (CESU-8)"},
    {"\xF4\x90\x80\x80", 0, "U+110000"},
    {"\xF5\x80\x80\x80", 0, "lead F5"},
    {"\xF7\xBF\xBF\xBF", 0, "lead F7, U+1FFFFF"},
    {"\xF8\x88\x80\x80\x80", 0, "five-byte form"},
    {"\xFC\x84\x80\x80\x80\x80", 0, "six-byte form"},
    {"\xFE", 0, "FE"},
    {"\xFF", 0, "FF"},
    {"\xC3", 0, "truncated two-byte at the end"},
    {"\xE2\x82", 0, "truncated three-byte at the end"},
    {"\xF0\x9F\x98", 0, "truncated four-byte at the end"},
    {"\xE2\x82!", 0, "truncated three-byte before ASCII"},
    {"\xF0\x9F\x98!!!", 0, "truncated four-byte before ASCII"},
    {"\xC3\xC3\xA9", 0, "lead byte where a continuation belongs"},
    {"\x80", 0, "stray continuation"},
    {"\xBF", 0, "stray continuation BF"},
    {"a\x80", 1, "stray continuation after ASCII"},
    {"\xC3\xA9\xA9", 2, "one continuation too many"},
    {"ok \xE2\x82\xAC \xED\xA0\x80", 7, "surrogate after good text"},
    {"\xF0\x9F\x98\x80\xF0\x9F\x98", 4, "truncated after a good one"},
    {"abc\xC3", 3, "truncated at the end after ASCII"},
};

TEST(utf8_invalid_text_and_offsets)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(bad_utf8); i++) {
        size_t bad = 12345;
        if (utf8_valid(bad_utf8[i].text, &bad))
            TEST_FAIL_("%s: accepted", bad_utf8[i].what);
        if (bad != bad_utf8[i].bad_offset)
            TEST_FAIL_("%s: bad_offset %zu, expected %zu", bad_utf8[i].what,
                       bad, bad_utf8[i].bad_offset);
        /* No offset wanted: still the same answer. */
        ASSERT(
            !sl_utf8_valid(bad_utf8[i].text, strlen(bad_utf8[i].text), NULL));
    }
}

/*
 * After an ASCII prefix of every length, at every alignment of the
 * buffer, each bad sequence is found at the right offset, and a good
 * multi-byte character is accepted (also when it straddles eight bytes).
 */
TEST(utf8_fast_path_every_alignment)
{
    static const char *const good_tails[] = {"\xC3\xA9", "\xE2\x82\xAC",
                                             "\xF0\x9F\x98\x80", "\x7F"};
    char storage[256];
    for (size_t align = 0; align < 8; align++) {
        for (size_t prefix = 0; prefix <= 70; prefix++) {
            char *buf = storage + align;
            memset(buf, 'a', prefix);
            for (size_t i = 0; i < SL_ARRAY_LEN(bad_utf8); i++) {
                const char *tail = bad_utf8[i].text;
                size_t tail_len = strlen(tail);
                memcpy(buf + prefix, tail, tail_len);
                /* Then more ASCII, or the end. */
                for (size_t after = 0; after <= 9; after += 9) {
                    memset(buf + prefix + tail_len, 'b', after);
                    size_t bad = 12345;
                    if (sl_utf8_valid(buf, prefix + tail_len + after, &bad))
                        TEST_FAIL_("%s after %zu bytes (align %zu): "
                                   "accepted",
                                   bad_utf8[i].what, prefix, align);
                    if (bad != prefix + bad_utf8[i].bad_offset)
                        TEST_FAIL_("%s after %zu bytes (align %zu): "
                                   "bad_offset %zu",
                                   bad_utf8[i].what, prefix, align, bad);
                }
            }
            for (size_t i = 0; i < SL_ARRAY_LEN(good_tails); i++) {
                size_t tail_len = strlen(good_tails[i]);
                memcpy(buf + prefix, good_tails[i], tail_len);
                memset(buf + prefix + tail_len, 'c', 11);
                for (size_t after = 0; after <= 11; after++)
                    if (!sl_utf8_valid(buf, prefix + tail_len + after, NULL))
                        TEST_FAIL_("good tail %zu after %zu bytes (align "
                                   "%zu, %zu after): rejected",
                                   i, prefix, align, after);
            }
        }
    }
}

/*
 * A reference: the well-formed byte sequences of the Unicode standard
 * (Table 3-7), written out range by range. Returns the length of the
 * sequence at s[0..len), or 0 if none starts there.
 */
static size_t
reference_sequence(const unsigned char *s, size_t len)
{
    static const struct {
        unsigned char lead_lo, lead_hi, second_lo, second_hi;
        size_t n;
    } forms[] = {
        {0x00, 0x7F, 0, 0, 1},       {0xC2, 0xDF, 0x80, 0xBF, 2},
        {0xE0, 0xE0, 0xA0, 0xBF, 3}, {0xE1, 0xEC, 0x80, 0xBF, 3},
        {0xED, 0xED, 0x80, 0x9F, 3}, {0xEE, 0xEF, 0x80, 0xBF, 3},
        {0xF0, 0xF0, 0x90, 0xBF, 4}, {0xF1, 0xF3, 0x80, 0xBF, 4},
        {0xF4, 0xF4, 0x80, 0x8F, 4},
    };
    for (size_t f = 0; f < SL_ARRAY_LEN(forms); f++) {
        if (s[0] < forms[f].lead_lo || s[0] > forms[f].lead_hi)
            continue;
        size_t n = forms[f].n;
        if (n > len)
            return 0;
        if (n > 1 && (s[1] < forms[f].second_lo || s[1] > forms[f].second_hi))
            return 0;
        for (size_t k = 2; k < n; k++)
            if (s[k] < 0x80 || s[k] > 0xBF)
                return 0;
        return n;
    }
    return 0;
}

static bool
reference_valid(const unsigned char *s, size_t len, size_t *bad)
{
    size_t i = 0;
    while (i < len) {
        size_t n = reference_sequence(s + i, len - i);
        if (n == 0) {
            *bad = i;
            return false;
        }
        i += n;
    }
    return true;
}

/* A small, fixed pseudo-random generator (xorshift64), for repeatability. */
static uint64_t
next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

/* Random strings built mostly from near-valid pieces, against the
 * reference. */
TEST(utf8_agrees_with_a_reference)
{
    static const unsigned char interesting[] = {
        0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0,
        0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0,
        0xF1, 0xF3, 0xF4, 0xF5, 0xF7, 0xF8, 0xFB, 0xFC, 0xFE, 0xFF};
    uint64_t state = 0x9E3779B97F4A7C15ull;
    unsigned char buf[64];
    size_t valid = 0, invalid = 0;
    for (int round = 0; round < 300000; round++) {
        size_t len = (size_t)(next_random(&state) % sizeof buf);
        size_t ascii_run = (size_t)(next_random(&state) % 24);
        for (size_t i = 0; i < len; i++) {
            uint64_t r = next_random(&state);
            if (i < ascii_run)
                buf[i] = (unsigned char)(0x20 + r % 0x5F);
            else if (r % 4 == 0)
                buf[i] = interesting[(r >> 8) % sizeof interesting];
            else if (r % 4 == 1)
                buf[i] = (unsigned char)(0x80 + (r >> 8) % 0x40);
            else if (r % 4 == 2)
                buf[i] = (unsigned char)(r >> 8);
            else
                buf[i] = (unsigned char)(0x20 + (r >> 8) % 0x5F);
        }
        size_t want_bad = 0, got_bad = 0;
        bool want = reference_valid(buf, len, &want_bad);
        bool got = sl_utf8_valid((const char *)buf, len, &got_bad);
        if (want != got || (!want && want_bad != got_bad)) {
            char hex[3 * sizeof buf + 1];
            for (size_t i = 0; i < len; i++)
                snprintf(hex + 3 * i, 4, "%02x ", buf[i]);
            hex[3 * len] = '\0';
            TEST_FAIL_("round %d: reference says %d at %zu, got %d at %zu "
                       "for %s",
                       round, want, want_bad, got, got_bad, hex);
        }
        want ? valid++ : invalid++;
    }
    /* The mix exercises both answers. */
    ASSERT_GT(valid, 10000);
    ASSERT_GT(invalid, 10000);
}

/* ---- sl_quote ---- */

static const char *
quote(const char *src, size_t len, size_t max)
{
    static char out[256];
    sl_quote(out, sizeof out, src, len, max);
    return out;
}

TEST(quote_escapes)
{
    ASSERT_STR_EQ(quote("", 0, 100), "");
    ASSERT_STR_EQ(quote("plain text", 10, 100), "plain text");
    ASSERT_STR_EQ(quote("say \"hi\"", 8, 100), "say \\\"hi\\\"");
    ASSERT_STR_EQ(quote("a\\b", 3, 100), "a\\\\b");
    ASSERT_STR_EQ(quote("l1\nl2\r\t", 7, 100), "l1\\x0al2\\x0d\\x09");
    ASSERT_STR_EQ(quote("\x1b[31m", 5, 100), "\\x1b[31m");
    ASSERT_STR_EQ(quote("del\x7f", 4, 100), "del\\x7f");
    ASSERT_STR_EQ(quote("a\0b", 3, 100), "a\\x00b");
    /* Bytes above 0x7f pass as they are (UTF-8 stays readable). */
    ASSERT_STR_EQ(quote("caf\xC3\xA9", 5, 100), "caf\xC3\xA9");
    ASSERT_STR_EQ(quote("\xff", 1, 100), "\xff");
    /* Only `len` bytes are read. */
    ASSERT_STR_EQ(quote("abcdef", 3, 100), "abc");
}

TEST(quote_cuts_at_max)
{
    ASSERT_STR_EQ(quote("abcdef", 6, 6), "abcdef");
    ASSERT_STR_EQ(quote("abcdef", 6, 5), "abcde...");
    ASSERT_STR_EQ(quote("abcdef", 6, 1), "a...");
    ASSERT_STR_EQ(quote("abcdef", 6, 0), "...");
    /* Escapes count at their escaped size, and are never split. */
    ASSERT_STR_EQ(quote("ab\"c", 4, 4), "ab\\\"...");
    ASSERT_STR_EQ(quote("ab\"c", 4, 3), "ab...");
    ASSERT_STR_EQ(quote("aaaa\x01", 5, 7), "aaaa...");
    ASSERT_STR_EQ(quote("aaaa\x01", 5, 8), "aaaa\\x01");

    /* A long line is cut to about max. */
    char line[5000];
    memset(line, 'x', sizeof line);
    const char *out = quote(line, sizeof line, 120);
    ASSERT_EQ(strlen(out), 123);
    ASSERT_STR_EQ(out + 120, "...");
}

/* The output always fits the buffer, terminated, whatever its size. */
TEST(quote_fits_any_buffer)
{
    const char src[] = "abc\"def\nghij\\klmnopqrstuvwxyz";
    for (size_t size = 1; size < 48; size++) {
        char out[64];
        memset(out, 'Z', sizeof out);
        sl_quote(out, size, src, sizeof src - 1, 1000);
        size_t n = strnlen(out, size);
        if (n >= size)
            TEST_FAIL_("size %zu: not terminated", size);
        for (size_t i = size; i < sizeof out; i++)
            if (out[i] != 'Z')
                TEST_FAIL_("size %zu: wrote byte %zu", size, i);
        /* Whatever fits is the full quote's start, then "..." if cut. */
        const char *full = "abc\\\"def\\x0aghij\\\\klmnopqrstuvwxyz";
        if (strcmp(out, full) != 0) {
            size_t dots = 0;
            while (dots < n && dots < 3 && out[n - 1 - dots] == '.')
                dots++;
            ASSERT(dots == 3 || dots == n);
            ASSERT(strncmp(out, full, n - dots) == 0);
        }
    }
    ASSERT_STR_EQ(quote("abc", 3, 100), "abc");

    /* Size 0: nothing is written at all. */
    char untouched = 'Z';
    sl_quote(&untouched, 0, "abc", 3, 100);
    ASSERT_EQ(untouched, 'Z');
}

/* ---- sl_parse_i64 ---- */

static void
expect_i64(const char *s, int64_t min, int64_t max, int64_t want)
{
    int64_t got = -12345;
    if (sl_parse_i64(s, min, max, &got) != 0)
        TEST_FAIL_("\"%s\" not parsed", s);
    if (got != want)
        TEST_FAIL_("\"%s\": %" PRId64 ", expected %" PRId64, s, got, want);
}

static void
expect_no_i64(const char *s, int64_t min, int64_t max)
{
    int64_t got = -12345;
    if (sl_parse_i64(s, min, max, &got) == 0)
        TEST_FAIL_("\"%s\" parsed as %" PRId64, s ? s : "(null)", got);
    ASSERT_EQ(got, -12345); /* untouched on failure */
}

TEST(parse_i64_numbers_and_bounds)
{
    expect_i64("0", 0, 10, 0);
    expect_i64("-0", 0, 10, 0);
    expect_i64("7", 0, 10, 7);
    expect_i64("007", 0, 10, 7);
    expect_i64("10", 0, 10, 10); /* max is inclusive */
    expect_i64("-5", -5, 5, -5); /* and so is min */
    expect_no_i64("11", 0, 10);
    expect_no_i64("-1", 0, 10);
    expect_no_i64("-6", -5, 5);
    expect_i64("9223372036854775807", INT64_MIN, INT64_MAX, INT64_MAX);
    expect_i64("-9223372036854775808", INT64_MIN, INT64_MAX, INT64_MIN);
    expect_no_i64("9223372036854775808", INT64_MIN, INT64_MAX);
    expect_no_i64("-9223372036854775809", INT64_MIN, INT64_MAX);
    expect_no_i64("99999999999999999999999", INT64_MIN, INT64_MAX);
    expect_i64("65535", 0, 65535, 65535);
    expect_no_i64("65536", 0, 65535);
}

TEST(parse_i64_rejects_junk)
{
    static const char *const junk[] = {
        "",     " ",   " 5",  "5 ",    "\t5",   "\n5", "\v5", "\f5",
        "\r5",  "5\n", "+5",  "--5",   "-",     "+",   "5x",  "x5",
        "0x10", "1e3", "1.0", "1,000", "1_000", "5 6", "- 5", "\xD9\xA3",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(junk); i++)
        expect_no_i64(junk[i], INT64_MIN, INT64_MAX);
    expect_no_i64(NULL, INT64_MIN, INT64_MAX);
}
