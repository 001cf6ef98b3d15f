/*
 * A buffered line reader over a file descriptor. Memory is bounded by the
 * longest accepted line: a longer one is skipped, not buffered, so a feed
 * of any size (or a hostile one) costs the same.
 */
#ifndef SL_READER_H
#define SL_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "../util.h"

typedef enum {
    SL_LINE_OK,
    SL_LINE_EOF,
    SL_LINE_TOOLONG, /* the line was skipped; its number is counted */
    SL_LINE_ERROR    /* read error: errno value in reader.error */
} sl_line_status;

typedef struct {
    int fd;
    char *buf;
    size_t cap, pos, end;
    size_t max_line;
    bool eof;
    bool started; /* past the byte-order mark check */
    int error;
    uint64_t lineno; /* 1-based number of the line last returned */
} sl_reader;

/* `max_line` is the longest line accepted. The reader does not own `fd`. */
sluice_err sl_reader_init(sl_reader *r, int fd, size_t max_line);
void sl_reader_free(sl_reader *r);

/*
 * The next line, without its "\n" or "\r\n", valid until the next call.
 * A UTF-8 byte-order mark at the start of the input is skipped.
 */
sl_line_status sl_reader_next(sl_reader *r, const char **line, size_t *len);

/*
 * Peek at the first line that is not blank without consuming it; a long
 * line is cut at 64 KiB. The blank lines before it are consumed (and
 * counted in lineno). SL_LINE_EOF if the input is blank.
 */
sl_line_status sl_reader_peek_first(sl_reader *r, const char **line,
                                    size_t *len);

#endif /* SL_READER_H */
