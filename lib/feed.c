/*
 * Feed parsing: a line reader with bounded memory, format detection, and
 * the JSON Lines, CSV (RFC 4180) and plain-lines parsers. Each parser
 * turns one record of text into an sl_feed_item, or a reason it cannot.
 */
#include "feed.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK (64u * 1024)

/* ------------------------------------------------------------ reader */

sluice_err
sl_reader_init(sl_reader *r, int fd, size_t max_line)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
    r->max_line = max_line ? max_line : SL_LINE_MAX;
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

static bool
blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)s[i]))
            return false;
    return true;
}

sl_line_status
sl_reader_peek_first(sl_reader *r, const char **line, size_t *len)
{
    if (reader_start(r) != 0)
        return SL_LINE_ERROR;
    size_t off = 0; /* offset from r->pos of the line being looked at */
    for (;;) {
        char *start = r->buf + r->pos + off;
        size_t avail = r->end - r->pos - off;
        char *nl = memchr(start, '\n', avail);
        size_t n = nl ? (size_t)(nl - start) : avail;
        if (nl && blank(start, n)) {
            off += n + 1;
            continue;
        }
        if (nl || r->eof || avail >= READ_CHUNK) {
            if (!nl && r->eof && blank(start, n))
                return SL_LINE_EOF;
            *line = start;
            *len = n;
            return SL_LINE_OK;
        }
        if (reader_fill(r) != 0)
            return SL_LINE_ERROR;
    }
}

/* ------------------------------------------------------------ detection */

/* Split one CSV record into fields; see csv_split() below. */
static int csv_split(sl_feed *f, const char *s, size_t len, char *reason,
                     size_t reason_size);

static bool
csv_is_header_name(const char *s, size_t len, const char *name)
{
    while (len && isspace((unsigned char)*s))
        s++, len--;
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    return len == strlen(name) && strncasecmp(s, name, len) == 0;
}

sluice_format
sl_feed_detect(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)line[i]))
        i++;
    if (i < len && line[i] == '{')
        return SLUICE_FORMAT_JSONL;
    if (i < len && line[i] == '#')
        return SLUICE_FORMAT_LINES;
    /* A CSV header names a url column: split on commas, drop quotes. */
    const char *s = line, *end = line + len;
    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *stop = comma ? comma : end;
        const char *a = s, *b = stop;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b - a >= 2 && *a == '"' && b[-1] == '"')
            a++, b--;
        if (csv_is_header_name(a, (size_t)(b - a), "url"))
            return SLUICE_FORMAT_CSV;
        if (!comma)
            break;
        s = comma + 1;
    }
    return SLUICE_FORMAT_LINES;
}

/* ------------------------------------------------------------ feed */

sluice_err
sl_feed_init(sl_feed *f, int fd, sluice_format format)
{
    memset(f, 0, sizeof *f);
    f->format = format;
    f->col_url = f->col_id = f->col_key = f->col_meta = -1;
    sl_buf_init(&f->id_text);
    sl_buf_init(&f->record);
    sl_buf_init(&f->fields);
    return sl_reader_init(&f->reader, fd, 0);
}

static void
feed_release_item(sl_feed *f)
{
    if (f->doc) {
        json_decref(f->doc);
        f->doc = NULL;
    }
    if (f->meta_text) {
        free(f->meta_text); /* allocated by jansson */
        f->meta_text = NULL;
    }
}

void
sl_feed_free(sl_feed *f)
{
    feed_release_item(f);
    sl_reader_free(&f->reader);
    sl_buf_free(&f->id_text);
    sl_buf_free(&f->record);
    sl_buf_free(&f->fields);
    if (f->col_names) {
        for (size_t i = 0; i < f->n_cols; i++)
            sl_free(f->col_names[i]);
        sl_free(f->col_names);
    }
    sl_free(f->field_off);
}

static sl_feed_status
read_error(sl_feed *f, char *reason, size_t reason_size)
{
    sl_fmt(reason, reason_size, "read error: %s",
           strerror(f->reader.error));
    return SL_FEED_ERROR;
}

/* JSON Lines: one object a line with url and optional id, key, meta. */
static sl_feed_status
parse_jsonl(sl_feed *f, const char *line, size_t len, sl_feed_item *item,
            char *reason, size_t reason_size)
{
    json_error_t jerr;
    f->doc = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!f->doc) {
        sl_fmt(reason, reason_size, "invalid JSON at column %d: %s",
               jerr.column, jerr.text);
        return SL_FEED_REJECT;
    }
    if (!json_is_object(f->doc)) {
        sl_fmt(reason, reason_size, "not a JSON object");
        return SL_FEED_REJECT;
    }
    json_t *url = json_object_get(f->doc, "url");
    json_t *id = json_object_get(f->doc, "id");
    json_t *key = json_object_get(f->doc, "key");
    json_t *meta = json_object_get(f->doc, "meta");
    if (url) {
        if (!json_is_string(url)) {
            sl_fmt(reason, reason_size, "url: not a string");
            return SL_FEED_REJECT;
        }
        item->url = json_string_value(url);
        item->url_len = json_string_length(url);
    }
    if (id && json_is_string(id)) {
        item->id = json_string_value(id);
        item->id_len = json_string_length(id);
    } else if (id && json_is_integer(id)) {
        sl_buf_clear(&f->id_text);
        if (sl_buf_printf(&f->id_text, "%" JSON_INTEGER_FORMAT,
                          json_integer_value(id)) != 0) {
            sl_fmt(reason, reason_size, "out of memory");
            return SL_FEED_ERROR;
        }
        item->id = f->id_text.data;
        item->id_len = f->id_text.len;
    } else if (id && !json_is_null(id)) {
        sl_fmt(reason, reason_size, "id: not a string or an integer");
        return SL_FEED_REJECT;
    }
    if (key && json_is_string(key)) {
        item->key = json_string_value(key);
        item->key_len = json_string_length(key);
    } else if (key && !json_is_null(key)) {
        sl_fmt(reason, reason_size, "key: not a string");
        return SL_FEED_REJECT;
    }
    if (meta && json_is_object(meta)) {
        f->meta_text = json_dumps(meta, JSON_COMPACT);
        if (!f->meta_text) {
            sl_fmt(reason, reason_size, "meta: cannot be encoded");
            return SL_FEED_REJECT;
        }
        item->meta = f->meta_text;
    } else if (meta && !json_is_null(meta)) {
        sl_fmt(reason, reason_size, "meta: not a JSON object");
        return SL_FEED_REJECT;
    }
    return SL_FEED_RECORD;
}

/* Plain lines: one URL a line; blank lines and # comments skipped. */
static sl_feed_status
parse_line(const char *line, size_t len, sl_feed_item *item)
{
    item->url = line;
    item->url_len = len;
    return SL_FEED_RECORD;
}

/*
 * Split a CSV record into f->fields (NUL-separated) and f->field_off.
 * Returns the number of fields, or -1 with a reason.
 */
static int
csv_split(sl_feed *f, const char *s, size_t len, char *reason,
          size_t reason_size)
{
    size_t n = 0, i = 0;
    sl_buf_clear(&f->fields);
    for (;;) {
        if (n == f->field_cap) {
            size_t cap = f->field_cap ? f->field_cap * 2 : 16;
            size_t *off = sl_realloc(f->field_off, (cap + 1) * sizeof *off);
            if (!off)
                goto nomem;
            f->field_off = off;
            f->field_cap = cap;
        }
        f->field_off[n++] = f->fields.len;
        if (i < len && s[i] == '"') {
            i++;
            for (;;) {
                if (i >= len) {
                    sl_fmt(reason, reason_size,
                           "field %zu: unterminated quoted field", n);
                    return -1;
                }
                if (s[i] == '"') {
                    if (i + 1 < len && s[i + 1] == '"') {
                        if (sl_buf_putc(&f->fields, '"'))
                            goto nomem;
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                if (sl_buf_putc(&f->fields, s[i++]))
                    goto nomem;
            }
            if (i < len && s[i] != ',') {
                sl_fmt(reason, reason_size,
                       "field %zu: text after the closing quote", n);
                return -1;
            }
        } else {
            const char *comma = memchr(s + i, ',', len - i);
            size_t stop = comma ? (size_t)(comma - s) : len;
            if (sl_buf_append(&f->fields, s + i, stop - i))
                goto nomem;
            i = stop;
        }
        if (sl_buf_putc(&f->fields, '\0'))
            goto nomem;
        if (i >= len)
            break;
        i++; /* the comma */
    }
    f->field_off[n] = f->fields.len;
    if (n > 100000) {
        sl_fmt(reason, reason_size, "more than 100000 fields");
        return -1;
    }
    return (int)n;
nomem:
    sl_fmt(reason, reason_size, "out of memory");
    return -1;
}

static const char *
csv_field(const sl_feed *f, size_t i, size_t *len)
{
    *len = f->field_off[i + 1] - f->field_off[i] - 1;
    return f->fields.data + f->field_off[i];
}

static sl_feed_status
csv_header(sl_feed *f, size_t n, char *reason, size_t reason_size)
{
    f->col_names = sl_calloc(n, sizeof *f->col_names);
    if (!f->col_names) {
        sl_fmt(reason, reason_size, "out of memory");
        return SL_FEED_ERROR;
    }
    f->n_cols = n;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *name = csv_field(f, i, &len);
        while (len && isspace((unsigned char)*name))
            name++, len--;
        while (len && isspace((unsigned char)name[len - 1]))
            len--;
        f->col_names[i] = sl_strndup(name, len);
        if (!f->col_names[i]) {
            sl_fmt(reason, reason_size, "out of memory");
            return SL_FEED_ERROR;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp(f->col_names[j], f->col_names[i]) == 0) {
                sl_fmt(reason, reason_size,
                       "CSV header names column \"%.40s\" twice; "
                       "file skipped",
                       f->col_names[i]);
                return SL_FEED_REJECT;
            }
        }
        int *slot = NULL;
        if (strcasecmp(f->col_names[i], "url") == 0)
            slot = &f->col_url;
        else if (strcasecmp(f->col_names[i], "id") == 0)
            slot = &f->col_id;
        else if (strcasecmp(f->col_names[i], "key") == 0)
            slot = &f->col_key;
        else if (strcasecmp(f->col_names[i], "meta") == 0)
            slot = &f->col_meta;
        if (slot)
            *slot = (int)i;
    }
    if (f->col_url < 0) {
        sl_fmt(reason, reason_size, "CSV header has no \"url\" column; file skipped");
        return SL_FEED_REJECT;
    }
    return SL_FEED_RECORD;
}

/* Build meta from the meta column and every column sluice does not use. */
static sl_feed_status
csv_meta(sl_feed *f, sl_feed_item *item, char *reason, size_t reason_size)
{
    json_t *obj = NULL;
    size_t len;
    const char *text;
    if (f->col_meta >= 0) {
        text = csv_field(f, (size_t)f->col_meta, &len);
        if (!blank(text, len)) {
            json_error_t jerr;
            f->doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
            if (!f->doc || !json_is_object(f->doc)) {
                sl_fmt(reason, reason_size,
                       "meta: not a JSON object%s%s", f->doc ? "" : ": ",
                       f->doc ? "" : jerr.text);
                return SL_FEED_REJECT;
            }
            obj = f->doc;
        }
    }
    for (size_t i = 0; i < f->n_cols; i++) {
        if ((int)i == f->col_url || (int)i == f->col_id ||
            (int)i == f->col_key || (int)i == f->col_meta)
            continue;
        text = csv_field(f, i, &len);
        if (len == 0)
            continue;
        if (!obj) {
            f->doc = obj = json_object();
            if (!obj) {
                sl_fmt(reason, reason_size, "out of memory");
                return SL_FEED_ERROR;
            }
        }
        json_t *value = json_stringn(text, len);
        if (!value) {
            sl_fmt(reason, reason_size,
                   "column \"%.40s\": invalid UTF-8 or NUL byte",
                   f->col_names[i]);
            return SL_FEED_REJECT;
        }
        json_object_set_new(obj, f->col_names[i], value);
    }
    if (obj && json_object_size(obj) > 0) {
        f->meta_text = json_dumps(obj, JSON_COMPACT);
        if (!f->meta_text) {
            sl_fmt(reason, reason_size, "out of memory");
            return SL_FEED_ERROR;
        }
        item->meta = f->meta_text;
    }
    return SL_FEED_RECORD;
}

static void
csv_optional(const sl_feed *f, int col, const char **out, size_t *out_len)
{
    if (col < 0)
        return;
    size_t len;
    const char *text = csv_field(f, (size_t)col, &len);
    while (len && isspace((unsigned char)*text))
        text++, len--;
    while (len && isspace((unsigned char)text[len - 1]))
        len--;
    if (len == 0)
        return;
    *out = text;
    *out_len = len;
}

static size_t
count_quotes(const char *s, size_t len)
{
    size_t n = 0;
    for (const char *q = s; (q = memchr(q, '"', len - (size_t)(q - s)));
         q++)
        n++;
    return n;
}

/*
 * The next CSV record: a line, or several when a quoted field holds line
 * breaks (the number of quotes so far is odd).
 */
static sl_line_status
csv_next_record(sl_feed *f, const char **text, size_t *len)
{
    sl_line_status st = sl_reader_next(&f->reader, text, len);
    if (st != SL_LINE_OK)
        return st;
    f->lineno = f->reader.lineno;
    if (count_quotes(*text, *len) % 2 == 0)
        return SL_LINE_OK;
    sl_buf_clear(&f->record);
    if (sl_buf_append(&f->record, *text, *len) != 0)
        return SL_LINE_ERROR;
    size_t quotes = count_quotes(*text, *len);
    while (quotes % 2 == 1) {
        const char *more;
        size_t more_len;
        st = sl_reader_next(&f->reader, &more, &more_len);
        if (st == SL_LINE_EOF)
            break; /* csv_split reports the unterminated field */
        if (st != SL_LINE_OK)
            return st;
        if (f->record.len + 1 + more_len > f->reader.max_line)
            return SL_LINE_TOOLONG;
        if (sl_buf_putc(&f->record, '\n') ||
            sl_buf_append(&f->record, more, more_len))
            return SL_LINE_ERROR;
        quotes += count_quotes(more, more_len);
    }
    *text = f->record.data;
    *len = f->record.len;
    return SL_LINE_OK;
}

static sl_feed_status
parse_csv(sl_feed *f, const char *text, size_t len, sl_feed_item *item,
          char *reason, size_t reason_size)
{
    int n = csv_split(f, text, len, reason, reason_size);
    if (n < 0)
        return SL_FEED_REJECT;
    if (!f->header_done) {
        f->header_done = true;
        sl_feed_status st = csv_header(f, (size_t)n, reason, reason_size);
        if (st == SL_FEED_REJECT)
            f->header_bad = true;
        return st;
    }
    if ((size_t)n != f->n_cols) {
        sl_fmt(reason, reason_size, "expected %zu fields, found %d",
               f->n_cols, n);
        return SL_FEED_REJECT;
    }
    size_t url_len;
    item->url = csv_field(f, (size_t)f->col_url, &url_len);
    item->url_len = url_len;
    csv_optional(f, f->col_id, &item->id, &item->id_len);
    csv_optional(f, f->col_key, &item->key, &item->key_len);
    return csv_meta(f, item, reason, reason_size);
}

sl_feed_status
sl_feed_next(sl_feed *f, sl_feed_item *item, char *reason,
             size_t reason_size)
{
    for (;;) {
        const char *line;
        size_t len;
        sl_line_status st;

        feed_release_item(f);
        memset(item, 0, sizeof *item);
        reason[0] = '\0';
        if (f->format == SLUICE_FORMAT_AUTO) {
            st = sl_reader_peek_first(&f->reader, &line, &len);
            if (st == SL_LINE_ERROR)
                return read_error(f, reason, reason_size);
            f->format = st == SL_LINE_OK ? sl_feed_detect(line, len)
                                         : SLUICE_FORMAT_LINES;
        }
        if (f->header_bad)
            return SL_FEED_EOF;
        if (f->format == SLUICE_FORMAT_CSV)
            st = csv_next_record(f, &line, &len);
        else
            st = sl_reader_next(&f->reader, &line, &len);
        if (f->format != SLUICE_FORMAT_CSV || st != SL_LINE_OK)
            f->lineno = f->reader.lineno;
        if (st == SL_LINE_EOF)
            return SL_FEED_EOF;
        if (st == SL_LINE_ERROR) {
            if (f->reader.error == 0) {
                sl_fmt(reason, reason_size, "out of memory");
                return SL_FEED_ERROR;
            }
            return read_error(f, reason, reason_size);
        }
        if (st == SL_LINE_TOOLONG) {
            sl_fmt(reason, reason_size, "%s longer than %zu bytes",
                   f->format == SLUICE_FORMAT_CSV ? "record" : "line",
                   f->reader.max_line);
            if (f->format == SLUICE_FORMAT_CSV && !f->header_done) {
                f->header_done = f->header_bad = true;
            }
            return SL_FEED_REJECT;
        }
        if (blank(line, len))
            continue;
        switch (f->format) {
        case SLUICE_FORMAT_JSONL:
            return parse_jsonl(f, line, len, item, reason, reason_size);
        case SLUICE_FORMAT_CSV: {
            sl_feed_status fs =
                parse_csv(f, line, len, item, reason, reason_size);
            if (fs == SL_FEED_RECORD && !item->url)
                continue; /* that was the header */
            return fs;
        }
        default: {
            const char *s = line;
            while (len && isspace((unsigned char)*s))
                s++, len--;
            if (*s == '#')
                continue;
            return parse_line(s, len, item);
        }
        }
    }
}
