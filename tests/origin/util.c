/*
 * The test origin's small helpers that are not worth inlining: dying with
 * a message, allocation that never fails, and printf into a struct buf.
 * The hot ones (buffers, clocks, numbers) are inline in origin.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "origin.h"

/* Print "sluice-origin: MESSAGE" to stderr and exit 1. */
void
die(const char *fmt, ...)
{
    va_list ap;

    fputs("sluice-origin: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* realloc that never fails: a test server out of memory just stops. */
void *
xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);

    if (p == NULL)
        die("out of memory");
    return p;
}

void *
xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (p == NULL)
        die("out of memory");
    return p;
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int len;

    va_start(ap, fmt);
    len = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (len < 0)
        die("vsnprintf failed");
    if ((size_t)len >= b->cap - b->len) {
        buf_reserve(b, (size_t)len + 1);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)len;
}
