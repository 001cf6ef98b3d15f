/*
 * Small helpers shared by every library file. Allocation goes through
 * here so that test builds can fail the Nth allocation (see fault.c).
 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "fault.h"

void *
sl_malloc(size_t size)
{
    if (sl_fault_hit(SL_FAULT_ALLOC))
        return NULL;
    return malloc(size ? size : 1);
}

void *
sl_calloc(size_t n, size_t size)
{
    if (sl_fault_hit(SL_FAULT_ALLOC))
        return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void *
sl_realloc(void *ptr, size_t size)
{
    if (sl_fault_hit(SL_FAULT_ALLOC))
        return NULL;
    return realloc(ptr, size ? size : 1);
}

char *
sl_strndup(const char *s, size_t len)
{
    char *copy = sl_malloc(len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

char *
sl_strdup(const char *s)
{
    return sl_strndup(s, strlen(s));
}

char *
sl_strdup_or_null(const char *s)
{
    return s ? sl_strdup(s) : NULL;
}

void
sl_thread_name(const char *name)
{
    (void)prctl(PR_SET_NAME, name, 0, 0, 0);
}

const char *
sl_env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

void
sl_free(void *ptr)
{
    free(ptr);
}

void
sl_buf_init(sl_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void
sl_buf_free(sl_buf *b)
{
    sl_free(b->data);
    sl_buf_init(b);
}

int
sl_buf_reserve(sl_buf *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len)
        return -1;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *data = sl_realloc(b->data, cap);
    if (!data)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

int
sl_buf_append(sl_buf *b, const void *data, size_t len)
{
    if (sl_buf_reserve(b, len) != 0)
        return -1;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int
sl_buf_putc(sl_buf *b, char c)
{
    return sl_buf_append(b, &c, 1);
}

int
sl_buf_printf(sl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || sl_buf_reserve(b, (size_t)n) != 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int64_t
sl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
sl_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
sl_boot_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double
sl_boot_msf(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000) / 1000.0;
}

void
sl_boot_id(char *dst, size_t size)
{
    char buf[64] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            buf[0] = '\0';
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
    sl_copy(dst, size, buf);
}

void
sl_vfmt(char *dst, size_t size, const char *fmt, va_list ap)
{
    if (size == 0)
        return;
    if (vsnprintf(dst, size, fmt, ap) < 0)
        dst[0] = '\0';
}

void
sl_fmt(char *dst, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_vfmt(dst, size, fmt, ap);
    va_end(ap);
}

void
sl_copy(char *dst, size_t size, const char *src)
{
    if (size == 0)
        return;
    if (!src)
        src = "";
    size_t len = strnlen(src, size - 1);
    memmove(dst, src, len);
    dst[len] = '\0';
}

void
sl_quote(char *dst, size_t size, const char *src, size_t len, size_t max)
{
    static const char hex[] = "0123456789abcdef";
    size_t out = 0;
    if (size == 0)
        return;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        char esc[5];
        size_t n;
        if (c < 0x20 || c == 0x7f) {
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            n = 4;
        } else if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else {
            esc[0] = (char)c;
            n = 1;
        }
        if (out + n + 4 > size || out + n > max) {
            size_t dots = SL_MIN((size_t)3, size - 1 - out);
            memcpy(dst + out, "...", dots);
            out += dots;
            break;
        }
        memcpy(dst + out, esc, n);
        out += n;
    }
    dst[out] = '\0';
}

bool
sl_utf8_valid(const char *s, size_t len, size_t *bad_offset)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        /* ASCII runs, eight bytes at a time. */
        while (len - i >= 8) {
            uint64_t word;
            memcpy(&word, p + i, 8);
            if (word & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i == len)
            break;
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            n = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 4, cp = c & 0x07, min = 0x10000;
        } else {
            goto bad;
        }
        if (len - i < n)
            goto bad;
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                goto bad;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            goto bad;
        i += n;
    }
    return true;
bad:
    if (bad_offset)
        *bad_offset = i;
    return false;
}

int
sl_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    /* strtoll would skip any leading white space and take a sign. */
    if (!s || !*s || isspace((unsigned char)*s) || *s == '+')
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int
sl_buf_append_lower(sl_buf *b, const char *s, size_t len)
{
    if (sl_buf_reserve(b, len) != 0)
        return -1;
    for (size_t i = 0; i < len; i++)
        b->data[b->len + i] = (char)tolower((unsigned char)s[i]);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

bool
sl_find_control(const char *s, size_t len, size_t *where)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            *where = i;
            return true;
        }
    }
    return false;
}

bool
sl_is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)s[i]))
            return false;
    return true;
}

void
sl_clock_text(char *dst, size_t size, int64_t wall_ms)
{
    time_t at = (time_t)(wall_ms / 1000);
    struct tm tm;
    sl_copy(dst, size, "?");
    if (localtime_r(&at, &tm))
        strftime(dst, size, "%H:%M:%S", &tm);
}
