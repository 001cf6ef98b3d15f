/*
 * The feed: picks the format (given, or detected from the first non-blank
 * line), drives the reader, and turns each line (CSV: record) into an
 * sl_feed_item or a reason to reject it. Plain URL lines are parsed here.
 */
#include "feed.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

static bool
is_name(const char *s, size_t len, const char *name)
{
    while (len && isspace((unsigned char)*s))
        s++, len--;
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    if (len >= 2 && s[0] == '"' && s[len - 1] == '"')
        s++, len -= 2;
    return len == strlen(name) && strncasecmp(s, name, len) == 0;
}

char
sl_csv_delimiter(const char *line, size_t len)
{
    bool quoted = false, semicolon = false, tab = false;
    for (size_t i = 0; i < len; i++) {
        if (line[i] == '"')
            quoted = !quoted;
        else if (quoted)
            continue;
        else if (line[i] == ',')
            return ',';
        else if (line[i] == ';')
            semicolon = true;
        else if (line[i] == '\t')
            tab = true;
    }
    return semicolon ? ';' : tab ? '\t' : ',';
}

static bool
has_text(const char *s, size_t len, const char *text)
{
    size_t n = strlen(text);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(s + i, text, n) == 0)
            return true;
    return false;
}

sluice_format
sl_feed_detect(const char *line, size_t len, const sl_feed_opts *o)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)line[i]))
        i++;
    if (i < len && line[i] == '{')
        return SLUICE_FORMAT_JSONL;
    if (i < len && line[i] == '#')
        return SLUICE_FORMAT_LINES;
    /* A URL, however mangled, means a list of them. */
    if (has_text(line, len, "://"))
        return SLUICE_FORMAT_LINES;
    /* A CSV header: names split by the delimiter. */
    const char *url_name = o && o->url_column ? o->url_column : "url";
    char delim = o && o->delimiter ? o->delimiter
                                   : sl_csv_delimiter(line, len);
    const char *s = line, *end = line + len;
    for (int fields = 1;; fields++) {
        const char *sep = memchr(s, delim, (size_t)(end - s));
        const char *stop = sep ? sep : end;
        if (is_name(s, (size_t)(stop - s), url_name))
            return SLUICE_FORMAT_CSV;
        if (!sep)
            return fields > 1 ? SLUICE_FORMAT_CSV : SLUICE_FORMAT_LINES;
        s = sep + 1;
    }
}

sluice_err
sl_feed_init(sl_feed *f, int fd, sluice_format format)
{
    memset(f, 0, sizeof *f);
    f->format = format;
    if (sl_reader_init(&f->reader, fd, SL_LINE_MAX) != SLUICE_OK ||
        sl_jsonl_init(&f->jsonl) != SLUICE_OK ||
        sl_csv_init(&f->csv) != SLUICE_OK)
        return SLUICE_ENOMEM;
    return SLUICE_OK;
}

void
sl_feed_set_opts(sl_feed *f, const sl_feed_opts *o)
{
    f->csv.opts = *o;
    sl_jsonl_set_names(&f->jsonl, o->url_column, o->id_column,
                       o->key_column);
}

void
sl_feed_free(sl_feed *f)
{
    sl_reader_free(&f->reader);
    sl_jsonl_free(&f->jsonl);
    sl_csv_free(&f->csv);
}

static sl_feed_status
line_error(sl_feed *f, char *reason, size_t reason_size)
{
    if (f->reader.error == 0 || f->reader.error == ENOMEM) {
        sl_fmt(reason, reason_size, "out of memory");
    } else {
        f->error = SLUICE_EIO;
        sl_fmt(reason, reason_size, "read error: %s",
               strerror(f->reader.error));
    }
    return SL_FEED_ERROR;
}

static sl_feed_status
feed_next(sl_feed *f, sl_feed_item *item, char *reason, size_t reason_size)
{
    const char *line;
    size_t len;
    sl_line_status st;

    memset(item, 0, sizeof *item);
    reason[0] = '\0';
    if (f->format == SLUICE_FORMAT_AUTO) {
        st = sl_reader_peek_first(&f->reader, &line, &len);
        if (st == SL_LINE_ERROR)
            return line_error(f, reason, reason_size);
        f->format = st == SL_LINE_OK ? sl_feed_detect(line, len, &f->csv.opts)
                                     : SLUICE_FORMAT_LINES;
    }
    for (;;) {
        if (f->format == SLUICE_FORMAT_CSV) {
            if (f->csv.header_bad)
                return SL_FEED_EOF;
            st = sl_csv_next_record(&f->csv, &f->reader, &line, &len,
                                    &f->lineno);
        } else {
            st = sl_reader_next(&f->reader, &line, &len);
            f->lineno = f->reader.lineno;
        }
        switch (st) {
        case SL_LINE_OK:
            break;
        case SL_LINE_EOF:
            return SL_FEED_EOF;
        case SL_LINE_ERROR:
            return line_error(f, reason, reason_size);
        case SL_LINE_TOOLONG:
            sl_fmt(reason, reason_size, "%s longer than %zu bytes",
                   f->format == SLUICE_FORMAT_CSV ? "record" : "line",
                   f->reader.max_line);
            if (f->format == SLUICE_FORMAT_CSV && !f->csv.header_done)
                f->csv.header_done = f->csv.header_bad = true;
            return SL_FEED_REJECT;
        }
        if (sl_is_blank(line, len))
            continue;
        if (f->format == SLUICE_FORMAT_JSONL)
            return sl_jsonl_parse(&f->jsonl, line, len, item, reason,
                                  reason_size);
        if (f->format == SLUICE_FORMAT_CSV) {
            sl_feed_status fs =
                sl_csv_parse(&f->csv, line, len, item, reason, reason_size);
            if (fs == SL_FEED_EOF)
                continue; /* that was the header */
            return fs;
        }
        /* Plain lines: one URL a line, # comments. */
        while (len && isspace((unsigned char)*line))
            line++, len--;
        if (*line == '#')
            continue;
        item->url = line;
        item->url_len = len;
        return SL_FEED_RECORD;
    }
}

sl_feed_status
sl_feed_next(sl_feed *f, sl_feed_item *item, char *reason,
             size_t reason_size)
{
    f->error = SLUICE_ENOMEM; /* the parsers fail only for want of memory */
    sl_feed_status st = feed_next(f, item, reason, reason_size);
    if (st != SL_FEED_ERROR)
        f->error = SLUICE_OK;
    return st;
}
