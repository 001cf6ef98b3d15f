/*
 * Feed parsing: a buffered line reader over a file descriptor and the
 * three feed formats (JSON Lines, CSV, plain URL lines) on top of it.
 * Memory is bounded by the longest accepted line, whatever the feed size.
 */
#ifndef SL_FEED_H
#define SL_FEED_H

#include <stdint.h>

#include <jansson.h>

#include "record.h"
#include "util.h"

/* Lines (CSV: records) longer than this are rejected and skipped. */
#define SL_LINE_MAX (1u << 20)

typedef enum {
    SL_LINE_OK,
    SL_LINE_EOF,
    SL_LINE_TOOLONG, /* the line was skipped; its number is set */
    SL_LINE_ERROR    /* read error; errno value in reader.error */
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

/* `max_line` 0 means SL_LINE_MAX. The reader does not own `fd`. */
sluice_err sl_reader_init(sl_reader *r, int fd, size_t max_line);
void sl_reader_free(sl_reader *r);

/*
 * The next line, without its "\n" or "\r\n", valid until the next call.
 * A UTF-8 byte-order mark at the start of the input is skipped.
 */
sl_line_status sl_reader_next(sl_reader *r, const char **line, size_t *len);

/* Peek: the first line that is not blank, without consuming anything. */
sl_line_status sl_reader_peek_first(sl_reader *r, const char **line,
                                    size_t *len);

/* Guess a feed's format from its first non-blank line. */
sluice_format sl_feed_detect(const char *line, size_t len);

typedef enum {
    SL_FEED_RECORD, /* *item holds a record */
    SL_FEED_REJECT, /* a bad record: reason set, line number set */
    SL_FEED_EOF,
    SL_FEED_ERROR /* the input cannot be read further; reason set */
} sl_feed_status;

/* A feed parser: one of the formats over a reader. */
typedef struct {
    sl_reader reader;
    sluice_format format;
    uint64_t lineno; /* line where the current record starts */
    /* JSON Lines */
    json_t *doc;
    char *meta_text;
    sl_buf id_text;
    /* CSV */
    bool header_done;
    bool header_bad;
    size_t n_cols;
    int col_url, col_id, col_key, col_meta;
    char **col_names;
    sl_buf record; /* a record assembled from several lines */
    sl_buf fields; /* unescaped field bytes, NUL-separated */
    size_t *field_off;
    size_t field_cap;
} sl_feed;

sluice_err sl_feed_init(sl_feed *f, int fd, sluice_format format);
void sl_feed_free(sl_feed *f);

/*
 * Parse the next record. The item's pointers stay valid until the next
 * call. On SL_FEED_REJECT and SL_FEED_ERROR `reason` says what was wrong.
 */
sl_feed_status sl_feed_next(sl_feed *f, sl_feed_item *item, char *reason,
                            size_t reason_size);

#endif /* SL_FEED_H */
