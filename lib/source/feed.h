/*
 * Feed parsing: the three formats (JSON Lines, CSV, plain URL lines) over
 * the line reader, and detection of the format from the first line. Each
 * call to sl_feed_next() yields one record's fields or one reason to
 * reject it, with the line it started on.
 */
#ifndef SL_FEED_H
#define SL_FEED_H

#include <stdint.h>

#include <yajl/yajl_gen.h>

#include "../json_arena.h"
#include "../record/record.h"
#include "../util.h"
#include "reader.h"

/* Lines (CSV: records) longer than this are rejected and skipped. */
#define SL_LINE_MAX (1u << 20)

typedef enum {
    SL_FEED_RECORD, /* *item holds a record */
    SL_FEED_REJECT, /* a bad record: reason set */
    SL_FEED_EOF,
    SL_FEED_ERROR /* the input cannot be read further: reason set */
} sl_feed_status;

/* JSON Lines state: the fields of the line being parsed. */
typedef struct {
    const char *names[5]; /* each field's member name, by field */
    size_t name_len[5];
    unsigned given;       /* bit per field: its name given by an option */
    unsigned n_members;   /* the line's top-level members */
    sl_buf members;       /* their first names quoted, for errors */
    sl_buf url, id, key;
    yajl_gen meta;
    int meta_used;  /* the generator was written since its reset */
    sl_meta_reader meta_read; /* meta's members, read as it is parsed */
    sl_json_arena arena; /* the line's parser's memory */
    int has_url, has_id, has_key, has_meta;
    int depth;      /* containers open */
    int field;      /* which top-level member the value belongs to */
    int seen;       /* bit set of the members seen */
    int not_object; /* the line is not an object */
    int nomem;      /* an allocation failed */
    char reason[160];
} sl_jsonl;

/* How a feed is read: the names of the CSV columns (matched in any case)
 * or JSON Lines members (matched exactly) that hold the url, id and key
 * (NULL: "url", "id", "key"), and the CSV field delimiter (0: the
 * header's, see sl_csv_delimiter). */
typedef struct {
    const char *url_column, *id_column, *key_column;
    char delimiter;
} sl_feed_opts;

/* CSV state: the header and the fields of the current record. */
typedef struct {
    sl_feed_opts opts;
    char delim; /* the delimiter in use; 0 until the header is read */
    bool header_done;
    bool header_bad; /* the rest of the file is skipped */
    size_t n_cols;
    int col_url, col_id, col_key, col_meta;
    char **col_names;
    sl_buf record; /* a record assembled from several lines */
    sl_buf fields; /* unescaped field bytes, NUL-separated */
    size_t *field_off;
    size_t field_cap;
    yajl_gen meta;
} sl_csv;

typedef struct {
    sl_reader reader;
    sluice_format format;
    uint64_t lineno; /* line where the current record starts */
    /* After SL_FEED_ERROR: SLUICE_EIO (a read error) or SLUICE_ENOMEM. */
    sluice_err error;
    sl_jsonl jsonl;
    sl_csv csv;
} sl_feed;

/* `format` may be SLUICE_FORMAT_AUTO. The feed does not own `fd`. */
sluice_err sl_feed_init(sl_feed *f, int fd, sluice_format format);
void sl_feed_free(sl_feed *f);
/* Read CSV and JSON Lines (and detect CSV) by `o`, before the first
 * sl_feed_next; the names must outlive the feed. */
void sl_feed_set_opts(sl_feed *f, const sl_feed_opts *o);

/*
 * Parse the next record. The item's pointers stay valid until the next
 * call. On SL_FEED_REJECT and SL_FEED_ERROR `reason` says what was wrong;
 * f->lineno is the line the record started on.
 */
sl_feed_status sl_feed_next(sl_feed *f, sl_feed_item *item, char *reason,
                            size_t reason_size);

/*
 * Guess a feed's format from its first non-blank line: `{` starts JSON
 * Lines; `#`, or a line with "://" in it, plain lines; a line of names
 * split by the delimiter (given, or the header's) is a CSV header when it
 * names the url column or has more than one name (a header that names
 * no url column is then reported once); anything else is plain lines.
 * `o` may be NULL (the defaults).
 */
sluice_format sl_feed_detect(const char *line, size_t len,
                             const sl_feed_opts *o);

/* The delimiter of a CSV header: ',' when it has a comma outside quotes,
 * else ';' when it has a semicolon, else a tab when it has one, else
 * ','. */
char sl_csv_delimiter(const char *line, size_t len);

/* The formats, for feed.c. */
sluice_err sl_jsonl_init(sl_jsonl *j);
void sl_jsonl_free(sl_jsonl *j);
/* The members holding the url, id and key (NULL: "url", "id", "key").
 * A line without the url member (when it has any member), or without
 * one named here, is rejected with the names it has. */
void sl_jsonl_set_names(sl_jsonl *j, const char *url, const char *id,
                        const char *key);
sl_feed_status sl_jsonl_parse(sl_jsonl *j, const char *line, size_t len,
                              sl_feed_item *item, char *reason,
                              size_t reason_size);

sluice_err sl_csv_init(sl_csv *c);
void sl_csv_free(sl_csv *c);
/* The next CSV record from the reader (a line, or several when a quoted
 * field holds line breaks); sets *start to the line it began on. */
sl_line_status sl_csv_next_record(sl_csv *c, sl_reader *r, const char **text,
                                  size_t *len, uint64_t *start);
/* Parse a record: the first is the header. SL_FEED_EOF for the header. */
sl_feed_status sl_csv_parse(sl_csv *c, const char *text, size_t len,
                            sl_feed_item *item, char *reason,
                            size_t reason_size);
/* Split one CSV record into fields; the count, or -1 with a reason (-2
 * when out of memory). */
int sl_csv_split(sl_csv *c, const char *s, size_t len, char *reason,
                 size_t reason_size);

#endif /* SL_FEED_H */
