/*
 * The line reader: reads in 64 KiB chunks, hands out lines in place, and
 * grows its buffer only up to the longest accepted line.
 */
#include "reader.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK (64u * 1024)

sluice_err
sl_reader_init(sl_reader *r, int fd, size_t max_line)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
    r->max_line = max_line;
    r->cap = 4 * READ_CHUNK;
    r->buf = sl_malloc(r->cap);
    return r->buf ? SLUICE_OK : SLUICE_ENOMEM;
}

void
sl_reader_free(sl_reader *r)
{
    sl_free(r->buf);
    r->buf = NULL;
}

/* Read more input after r->end, compacting and growing as needed. */
static int
reader_fill(sl_reader *r)
{
    if (r->pos > 0) {
        memmove(r->buf, r->buf + r->pos, r->end - r->pos);
        r->end -= r->pos;
        r->pos = 0;
    }
    size_t want = r->max_line + 2 * READ_CHUNK;
    if (r->cap - r->end < READ_CHUNK && r->cap < want) {
        size_t cap = SL_MIN(r->cap * 2, want);
        char *buf = sl_realloc(r->buf, cap);
        if (!buf) {
            r->error = ENOMEM;
            return -1;
        }
        r->buf = buf;
        r->cap = cap;
    }
    for (;;) {
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (n > 0) {
            r->end += (size_t)n;
            return 0;
        }
        if (n == 0) {
            r->eof = true;
            return 0;
        }
        if (errno != EINTR) {
            r->error = errno;
            return -1;
        }
    }
}

static int
reader_start(sl_reader *r)
{
    while (!r->started) {
        if (r->end - r->pos >= 3 || r->eof) {
            if (r->end - r->pos >= 3 &&
                memcmp(r->buf + r->pos, "\xEF\xBB\xBF", 3) == 0)
                r->pos += 3;
            r->started = true;
        } else if (reader_fill(r) != 0) {
            return -1;
        }
    }
    return 0;
}

sl_line_status
sl_reader_next(sl_reader *r, const char **line, size_t *len)
{
    if (reader_start(r) != 0)
        return SL_LINE_ERROR;
    for (;;) {
        char *start = r->buf + r->pos;
        size_t avail = r->end - r->pos;
        char *nl = memchr(start, '\n', avail);
        if (nl || (r->eof && avail > 0)) {
            size_t n = nl ? (size_t)(nl - start) : avail;
            r->pos += nl ? n + 1 : n;
            r->lineno++;
            if (n > 0 && start[n - 1] == '\r')
                n--;
            if (n > r->max_line)
                return SL_LINE_TOOLONG;
            *line = start;
            *len = n;
            return SL_LINE_OK;
        }
        if (r->eof)
            return SL_LINE_EOF;
        if (avail > r->max_line + 1) {
            /* Too long: drop what we have and skip to the next newline. */
            r->lineno++;
            for (;;) {
                r->pos = r->end;
                if (reader_fill(r) != 0)
                    return SL_LINE_ERROR;
                if (r->eof)
                    return SL_LINE_TOOLONG;
                nl = memchr(r->buf + r->pos, '\n', r->end - r->pos);
                if (nl) {
                    r->pos = (size_t)(nl - r->buf) + 1;
                    return SL_LINE_TOOLONG;
                }
            }
        }
        if (reader_fill(r) != 0)
            return SL_LINE_ERROR;
    }
}

sl_line_status
sl_reader_peek_first(sl_reader *r, const char **line, size_t *len)
{
    if (reader_start(r) != 0)
        return SL_LINE_ERROR;
    for (;;) {
        char *start = r->buf + r->pos;
        size_t avail = r->end - r->pos;
        char *nl = memchr(start, '\n', avail);
        size_t n = nl ? (size_t)(nl - start) : avail;
        if (nl && sl_is_blank(start, n)) {
            /* Consume it: kept, enough blank lines would fill the buffer,
             * and a full buffer reads as the end of the input. */
            r->pos += n + 1;
            r->lineno++;
            continue;
        }
        if (nl || r->eof || avail >= READ_CHUNK) {
            if (!nl && r->eof && sl_is_blank(start, n))
                return SL_LINE_EOF;
            *line = start;
            *len = n;
            return SL_LINE_OK;
        }
        if (reader_fill(r) != 0)
            return SL_LINE_ERROR;
    }
}
