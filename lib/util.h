/*
 * Small helpers every library file shares: allocation (the one place where
 * test builds inject allocation failures), growable byte buffers, clocks,
 * and one-line message formatting.
 */
#ifndef SL_UTIL_H
#define SL_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/sluice.h"

#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* A macro's value as a string literal (for Lua scripts built in C). */
#define SL_STR_(x) #x
#define SL_STR(x)  SL_STR_(x)
#define SL_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define SL_MAX(a, b)    ((a) > (b) ? (a) : (b))

#if defined(__GNUC__)
#define SL_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define SL_PRINTF(fmt, args)
#endif

/* Allocation. Each returns NULL on failure (or an injected fault). */
void *sl_malloc(size_t size);
void *sl_calloc(size_t n, size_t size);
void *sl_realloc(void *ptr, size_t size);
char *sl_strdup(const char *s);
/* A copy of s, or NULL for NULL (and when out of memory: check s). */
char *sl_strdup_or_null(const char *s);
/* The environment variable's value when it is set and not empty. */
const char *sl_env(const char *name);
/* Names the calling thread (at most 15 bytes), as top -H and gdb show it. */
void sl_thread_name(const char *name);
char *sl_strndup(const char *s, size_t len);
void sl_free(void *ptr);

/* A growable byte buffer, always NUL-terminated once anything is in it. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} sl_buf;

void sl_buf_init(sl_buf *b);
void sl_buf_free(sl_buf *b);
static inline void sl_buf_clear(sl_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}
/* Make room for `extra` more bytes plus the terminator. */
int sl_buf_reserve(sl_buf *b, size_t extra);
int sl_buf_append(sl_buf *b, const void *data, size_t len);
int sl_buf_putc(sl_buf *b, char c);
int sl_buf_printf(sl_buf *b, const char *fmt, ...) SL_PRINTF(2, 3);
/* Append s[0..len) in ASCII lower case. */
int sl_buf_append_lower(sl_buf *b, const char *s, size_t len);

/* Milliseconds since the epoch (wall clock), and on a monotonic clock. */
int64_t sl_now_ms(void);
/* The local time of day of a wall-clock ms, "14:03:07" ("?" if none). */
void sl_clock_text(char *dst, size_t size, int64_t wall_ms);
int64_t sl_mono_ms(void);
/* Milliseconds since this machine booted, suspended time included
 * (CLOCK_BOOTTIME): steps of the wall clock do not move it, and a suspend
 * does not stop it. Deadlines an origin keeps to are on this clock. */
int64_t sl_boot_ms(void);
/* The same to the microsecond. */
double sl_boot_msf(void);
/* This boot's id (/proc/sys/kernel/random/boot_id, 36 characters), or ""
 * when it cannot be read; the caller's buffer of at least 37 bytes. */
void sl_boot_id(char *dst, size_t size);

/* snprintf into a fixed buffer that is always terminated; never fails. */
void sl_fmt(char *dst, size_t size, const char *fmt, ...) SL_PRINTF(3, 4);
/* Copy the string src (NULL: "") into dst (size bytes), cut short if need
 * be: sl_fmt(dst, size, "%s", src) without vsnprintf's cost. */
void sl_copy(char *dst, size_t size, const char *src);
void sl_vfmt(char *dst, size_t size, const char *fmt, va_list ap);

/*
 * Copy `len` bytes of untrusted text into `dst` fit for a one-line log:
 * control bytes, quotes and backslashes escaped, cut to about `max` bytes
 * with "..." when longer. Always terminated.
 */
void sl_quote(char *dst, size_t size, const char *src, size_t len,
              size_t max);

/* True when s[0..len) is empty or white space only. */
bool sl_is_blank(const char *s, size_t len);

/* True when s[0..len) holds a control byte (below 0x20, or 0x7f); its
 * offset goes to *where. */
bool sl_find_control(const char *s, size_t len, size_t *where);

/* True when s[0..len) is well-formed UTF-8 (no overlongs, surrogates). */
bool sl_utf8_valid(const char *s, size_t len, size_t *bad_offset);

/* Parse a whole decimal number in [min, max]; 0 on success, -1 if not. */
int sl_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

#endif /* SL_UTIL_H */
