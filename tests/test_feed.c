/*
 * The feed parsers (lib/source/): the line reader's limits, format
 * detection, and JSON Lines, CSV and plain-line records and rejections,
 * each checked down to the fields, the line numbers and the reasons.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>

#include "source/feed.h"
#include "test.h"

#ifdef SLUICE_FAULT_INJECTION
#include "fault.h"
#endif

#define KiB 1024u
#define MiB (1024u * 1024u)

/* The reader's buffer may grow to the longest line plus two read chunks. */
#define READER_SLACK       (128u * KiB)
#define READER_INITIAL_CAP (256u * KiB)

/* A feed over a file, the last thing it yielded, and copies of it. */
typedef struct {
    sl_feed feed;
    int fd;
    sl_feed_status status;
    sl_feed_item item;
    char reason[256];
    char *url, *id, *key, *meta; /* terminated copies; NULL when absent */
} tfeed;

static char *
copy_or_null(const char *s, size_t len)
{
    if (!s)
        return NULL;
    char *copy = malloc(len + 1);
    ASSERT_NOT_NULL(copy);
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

static void
tf_forget(tfeed *t)
{
    free(t->url);
    free(t->id);
    free(t->key);
    free(t->meta);
    t->url = t->id = t->key = t->meta = NULL;
}

/* Open a feed over `len` bytes of `data`, written to a file first. */
static void
tf_open_n(tfeed *t, const void *data, size_t len, sluice_format format)
{
    memset(t, 0, sizeof *t);
    test_write_file("feed.in", data, len);
    t->fd = open("feed.in", O_RDONLY);
    ASSERT(t->fd >= 0);
    ASSERT_EQ(sl_feed_init(&t->feed, t->fd, format), SLUICE_OK);
}

static void
tf_open(tfeed *t, const char *text, sluice_format format)
{
    tf_open_n(t, text, strlen(text), format);
}

/* The same, read by CSV options. */
static void
tf_open_csv(tfeed *t, const char *text, sluice_format format,
            const char *url_column, const char *id_column,
            const char *key_column, char delimiter)
{
    tf_open_n(t, text, strlen(text), format);
    sl_feed_opts o = {url_column, id_column, key_column, delimiter};
    sl_feed_set_opts(&t->feed, &o);
}

static void
tf_close(tfeed *t)
{
    tf_forget(t);
    sl_feed_free(&t->feed);
    close(t->fd);
}

static sl_feed_status
tf_next(tfeed *t)
{
    tf_forget(t);
    t->status = sl_feed_next(&t->feed, &t->item, t->reason, sizeof t->reason);
    if (t->status == SL_FEED_RECORD) {
        t->url = copy_or_null(t->item.url, t->item.url_len);
        t->id = copy_or_null(t->item.id, t->item.id_len);
        t->key = copy_or_null(t->item.key, t->item.key_len);
        if (t->item.meta)
            t->meta = copy_or_null(t->item.meta, strlen(t->item.meta));
    }
    return t->status;
}

static const char *
status_name(sl_feed_status st)
{
    switch (st) {
    case SL_FEED_RECORD:
        return "record";
    case SL_FEED_REJECT:
        return "reject";
    case SL_FEED_EOF:
        return "eof";
    case SL_FEED_ERROR:
        return "error";
    }
    return "?";
}

/* The next item is a record that starts on `line` and has this url. */
#define EXPECT_RECORD(t, line, url_text)                                       \
    do {                                                                       \
        if (tf_next(t) != SL_FEED_RECORD)                                      \
            TEST_FAIL_("expected a record at line %d, got %s at line "         \
                       "%llu: %s",                                             \
                       (int)(line), status_name((t)->status),                  \
                       (unsigned long long)(t)->feed.lineno, (t)->reason);     \
        ASSERT_EQ((t)->feed.lineno, line);                                     \
        ASSERT_STR_EQ((t)->url, url_text);                                     \
    } while (0)

/* The next item is a rejection of `line` whose reason holds `why`. */
#define EXPECT_REJECT(t, line, why)                                            \
    do {                                                                       \
        if (tf_next(t) != SL_FEED_REJECT)                                      \
            TEST_FAIL_("expected a rejection at line %d, got %s at line "      \
                       "%llu (url %s)",                                        \
                       (int)(line), status_name((t)->status),                  \
                       (unsigned long long)(t)->feed.lineno,                   \
                       (t)->url ? (t)->url : "(none)");                        \
        ASSERT_EQ((t)->feed.lineno, line);                                     \
        ASSERT_STR_CONTAINS((t)->reason, why);                                 \
    } while (0)

#define EXPECT_EOF(t)                                                          \
    do {                                                                       \
        if (tf_next(t) != SL_FEED_EOF)                                         \
            TEST_FAIL_("expected the end, got %s at line %llu: %s",            \
                       status_name((t)->status),                               \
                       (unsigned long long)(t)->feed.lineno, (t)->reason);     \
        ASSERT_EQ(tf_next(t), SL_FEED_EOF); /* and it stays there */           \
    } while (0)

/* A JSON Lines feed of one line: the record it yields must be rejected. */
static void
expect_jsonl_reject(const char *line, const char *why)
{
    tfeed t;
    char text[512];
    snprintf(text, sizeof text, "%s\n{\"url\":\"http://a.example/ok\"}\n",
             line);
    tf_open(&t, text, SLUICE_FORMAT_JSONL);
    if (tf_next(&t) != SL_FEED_REJECT)
        TEST_FAIL_("%s: not rejected (%s, url %s)", line, status_name(t.status),
                   t.url ? t.url : "(none)");
    ASSERT_EQ(t.feed.lineno, 1);
    if (!strstr(t.reason, why))
        TEST_FAIL_("%s: reason \"%s\" lacks \"%s\"", line, t.reason, why);
    /* The bad line costs nothing else. */
    EXPECT_RECORD(&t, 2, "http://a.example/ok");
    EXPECT_EOF(&t);
    tf_close(&t);
}

/* ---- The line reader ---- */

/* A reader over a file holding `len` bytes of `data`; returns the fd. */
static int
reader_open(sl_reader *r, const void *data, size_t len, size_t max_line)
{
    test_write_file("reader.in", data, len);
    int fd = open("reader.in", O_RDONLY);
    ASSERT(fd >= 0);
    ASSERT_EQ(sl_reader_init(r, fd, max_line), SLUICE_OK);
    return fd;
}

#define EXPECT_LINE(r, number, text)                                           \
    do {                                                                       \
        const char *line_;                                                     \
        size_t len_;                                                           \
        ASSERT_EQ(sl_reader_next(r, &line_, &len_), SL_LINE_OK);               \
        ASSERT_EQ((r)->lineno, number);                                        \
        ASSERT_EQ(len_, strlen(text));                                         \
        ASSERT(memcmp(line_, text, len_) == 0);                                \
    } while (0)

#define EXPECT_TOOLONG(r, number)                                              \
    do {                                                                       \
        const char *line_;                                                     \
        size_t len_;                                                           \
        ASSERT_EQ(sl_reader_next(r, &line_, &len_), SL_LINE_TOOLONG);          \
        ASSERT_EQ((r)->lineno, number);                                        \
    } while (0)

#define EXPECT_LINE_EOF(r)                                                     \
    do {                                                                       \
        const char *line_;                                                     \
        size_t len_;                                                           \
        ASSERT_EQ(sl_reader_next(r, &line_, &len_), SL_LINE_EOF);              \
        ASSERT_EQ(sl_reader_next(r, &line_, &len_), SL_LINE_EOF);              \
    } while (0)

TEST(reader_line_exactly_at_the_limit)
{
    sl_reader r;
    const char text[] = "0123456789\n"    /* 10 bytes: the limit */
                        "0123456789a\n"   /* 11: one too many */
                        "0123456789\r\n"  /* the CR does not count */
                        "0123456789a\r\n" /* but this is still too long */
                        "\n"              /* empty */
                        "abc\n"
                        "0123456789"; /* at the limit, at EOF */
    int fd = reader_open(&r, text, sizeof text - 1, 10);
    EXPECT_LINE(&r, 1, "0123456789");
    EXPECT_TOOLONG(&r, 2);
    EXPECT_LINE(&r, 3, "0123456789");
    EXPECT_TOOLONG(&r, 4);
    EXPECT_LINE(&r, 5, "");
    EXPECT_LINE(&r, 6, "abc");
    EXPECT_LINE(&r, 7, "0123456789");
    EXPECT_LINE_EOF(&r);
    ASSERT_EQ(r.lineno, 7);
    sl_reader_free(&r);
    close(fd);
}

TEST(reader_too_long_last_line_without_newline)
{
    sl_reader r;
    const char text[] = "ok\n0123456789a";
    int fd = reader_open(&r, text, sizeof text - 1, 10);
    EXPECT_LINE(&r, 1, "ok");
    EXPECT_TOOLONG(&r, 2);
    EXPECT_LINE_EOF(&r);
    sl_reader_free(&r);
    close(fd);
}

/*
 * A line far longer than the buffer is skipped as it streams past: the
 * lines around it come out whole and the buffer keeps its size.
 */
TEST(reader_skips_a_huge_line_without_buffering_it)
{
    size_t huge = 3 * MiB;
    char *text = malloc(huge + 64);
    ASSERT_NOT_NULL(text);
    size_t n = 0;
    memcpy(text + n, "before\n", 7), n += 7;
    memset(text + n, 'x', huge), n += huge;
    memcpy(text + n, "\r\nafter\n", 8), n += 8;
    memset(text + n, 'y', 11), n += 11; /* too long, at EOF */

    sl_reader r;
    int fd = reader_open(&r, text, n, 10);
    EXPECT_LINE(&r, 1, "before");
    EXPECT_TOOLONG(&r, 2);
    EXPECT_LINE(&r, 3, "after");
    EXPECT_TOOLONG(&r, 4);
    EXPECT_LINE_EOF(&r);
    ASSERT_LE(r.cap, SL_MAX(READER_INITIAL_CAP, 10 + READER_SLACK));
    sl_reader_free(&r);
    close(fd);
    free(text);
}

TEST(reader_crlf_bom_and_no_trailing_newline)
{
    sl_reader r;
    const char text[] = "\xEF\xBB\xBF"
                        "first\r\n\r\nthird\r\nlast";
    int fd = reader_open(&r, text, sizeof text - 1, 100);
    EXPECT_LINE(&r, 1, "first");
    EXPECT_LINE(&r, 2, "");
    EXPECT_LINE(&r, 3, "third");
    EXPECT_LINE(&r, 4, "last");
    EXPECT_LINE_EOF(&r);
    sl_reader_free(&r);
    close(fd);
}

/* Only a BOM at the very start is skipped; a lone CR is kept. */
TEST(reader_bom_only_at_start_and_lone_cr_kept)
{
    sl_reader r;
    const char text[] = "a\rb\n\xEF\xBB\xBFx\n\r";
    int fd = reader_open(&r, text, sizeof text - 1, 100);
    EXPECT_LINE(&r, 1, "a\rb");
    EXPECT_LINE(&r, 2, "\xEF\xBB\xBFx");
    EXPECT_LINE(&r, 3, ""); /* a CR at the very end goes, as in CRLF */
    EXPECT_LINE_EOF(&r);
    sl_reader_free(&r);
    close(fd);
}

TEST(reader_empty_and_bom_only_input)
{
    sl_reader r;
    int fd = reader_open(&r, "", 0, 100);
    EXPECT_LINE_EOF(&r);
    ASSERT_EQ(r.lineno, 0);
    sl_reader_free(&r);
    close(fd);

    fd = reader_open(&r, "\xEF\xBB\xBF", 3, 100);
    EXPECT_LINE_EOF(&r);
    ASSERT_EQ(r.lineno, 0);
    sl_reader_free(&r);
    close(fd);

    /* Shorter than a BOM, and not one. */
    fd = reader_open(&r, "\xEF\xBB", 2, 100);
    EXPECT_LINE(&r, 1, "\xEF\xBB");
    EXPECT_LINE_EOF(&r);
    sl_reader_free(&r);
    close(fd);
}

/* NUL bytes are ordinary bytes to the reader. */
TEST(reader_keeps_nul_bytes)
{
    sl_reader r;
    const char text[] = "a\0b\n\0\n";
    int fd = reader_open(&r, text, sizeof text - 1, 100);
    const char *line;
    size_t len;
    ASSERT_EQ(sl_reader_next(&r, &line, &len), SL_LINE_OK);
    ASSERT_EQ(len, 3);
    ASSERT(memcmp(line, "a\0b", 3) == 0);
    ASSERT_EQ(sl_reader_next(&r, &line, &len), SL_LINE_OK);
    ASSERT_EQ(len, 1);
    ASSERT_EQ(line[0], '\0');
    ASSERT_EQ(r.lineno, 2);
    EXPECT_LINE_EOF(&r);
    sl_reader_free(&r);
    close(fd);
}

TEST(reader_peek_first_skips_blank_lines)
{
    sl_reader r;
    const char text[] = "\xEF\xBB\xBF\n  \r\n\t\nfirst\nsecond\n";
    int fd = reader_open(&r, text, sizeof text - 1, 100);
    const char *line;
    size_t len;
    ASSERT_EQ(sl_reader_peek_first(&r, &line, &len), SL_LINE_OK);
    ASSERT_EQ(len, 5);
    ASSERT(memcmp(line, "first", 5) == 0);
    /* Peeking again gives the same line. */
    ASSERT_EQ(sl_reader_peek_first(&r, &line, &len), SL_LINE_OK);
    ASSERT_EQ(len, 5);
    ASSERT(memcmp(line, "first", 5) == 0);
    /* The blank lines were consumed, and counted; "first" was not. */
    EXPECT_LINE(&r, 4, "first");
    EXPECT_LINE(&r, 5, "second");
    EXPECT_LINE_EOF(&r);
    sl_reader_free(&r);
    close(fd);
}

TEST(reader_peek_first_blank_input)
{
    sl_reader r;
    const char *line;
    size_t len;
    int fd = reader_open(&r, "", 0, 100);
    ASSERT_EQ(sl_reader_peek_first(&r, &line, &len), SL_LINE_EOF);
    sl_reader_free(&r);
    close(fd);

    fd = reader_open(&r, "\n \n\r\n\t", 6, 100);
    ASSERT_EQ(sl_reader_peek_first(&r, &line, &len), SL_LINE_EOF);
    sl_reader_free(&r);
    close(fd);
}

/* A first line longer than the peek window is cut, at 64 KiB or more. */
TEST(reader_peek_first_cuts_a_long_line)
{
    size_t n = 2 * MiB;
    char *text = malloc(n);
    ASSERT_NOT_NULL(text);
    memset(text, 'u', n);
    text[n - 1] = '\n';
    sl_reader r;
    int fd = reader_open(&r, text, n, 100);
    const char *line;
    size_t len;
    ASSERT_EQ(sl_reader_peek_first(&r, &line, &len), SL_LINE_OK);
    ASSERT_GE(len, 64 * KiB);
    ASSERT_LT(len, n - 1);
    ASSERT_EQ(line[0], 'u');
    EXPECT_TOOLONG(&r, 1);
    EXPECT_LINE_EOF(&r);
    sl_reader_free(&r);
    close(fd);
    free(text);
}

/*
 * More leading blank lines than the buffer holds: peeking must still find
 * the first real line, and not mistake a full buffer for the end.
 */
TEST(reader_peek_first_after_many_blank_lines)
{
    size_t blank_lines = 600 * KiB;
    size_t n = blank_lines + 6;
    char *text = malloc(n);
    ASSERT_NOT_NULL(text);
    memset(text, '\n', blank_lines);
    memcpy(text + blank_lines, "first\n", 6);
    sl_reader r;
    int fd = reader_open(&r, text, n, 100);
    const char *line;
    size_t len;
    ASSERT_EQ(sl_reader_peek_first(&r, &line, &len), SL_LINE_OK);
    ASSERT_EQ(len, 5);
    ASSERT(memcmp(line, "first", 5) == 0);
    ASSERT_LE(r.cap, READER_INITIAL_CAP);
    EXPECT_LINE(&r, blank_lines + 1, "first");
    EXPECT_LINE_EOF(&r);
    sl_reader_free(&r);
    close(fd);
    free(text);
}

/* Input from a pipe arrives in pieces; a writer process dribbles it. */
static pid_t
dribble(int fd, const char *text, size_t len, size_t piece)
{
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        for (size_t i = 0; i < len; i += piece) {
            size_t n = SL_MIN(piece, len - i);
            if (write(fd, text + i, n) != (ssize_t)n)
                _exit(1);
            usleep(2000);
        }
        _exit(0);
    }
    close(fd);
    return pid;
}

TEST(reader_from_a_pipe_in_small_pieces)
{
    const char text[] = "\xEF\xBB\xBF"
                        "one\r\n"
                        "0123456789abcdef\n" /* too long for 10 */
                        "\r\n"
                        "two";
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t pid = dribble(p[1], text, sizeof text - 1, 2);
    sl_reader r;
    ASSERT_EQ(sl_reader_init(&r, p[0], 10), SLUICE_OK);
    EXPECT_LINE(&r, 1, "one");
    EXPECT_TOOLONG(&r, 2);
    EXPECT_LINE(&r, 3, "");
    EXPECT_LINE(&r, 4, "two");
    EXPECT_LINE_EOF(&r);
    sl_reader_free(&r);
    close(p[0]);
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(reader_read_error)
{
    int fd = open(".", O_RDONLY | O_DIRECTORY);
    ASSERT(fd >= 0);
    sl_reader r;
    ASSERT_EQ(sl_reader_init(&r, fd, 100), SLUICE_OK);
    const char *line;
    size_t len;
    ASSERT_EQ(sl_reader_next(&r, &line, &len), SL_LINE_ERROR);
    ASSERT_EQ(r.error, EISDIR);
    sl_reader_free(&r);
    close(fd);
}

/* ---- Format detection ---- */

static sluice_format
detect(const char *line)
{
    return sl_feed_detect(line, strlen(line), NULL);
}

TEST(detect_format_from_the_first_line)
{
    ASSERT_EQ(detect("{\"url\":\"http://a.example/\"}"), SLUICE_FORMAT_JSONL);
    ASSERT_EQ(detect("  \t{"), SLUICE_FORMAT_JSONL);
    ASSERT_EQ(detect("url"), SLUICE_FORMAT_CSV);
    ASSERT_EQ(detect("url\r"), SLUICE_FORMAT_CSV);
    ASSERT_EQ(detect("url,id,key"), SLUICE_FORMAT_CSV);
    ASSERT_EQ(detect("id,url"), SLUICE_FORMAT_CSV);
    ASSERT_EQ(detect("id,URL,title"), SLUICE_FORMAT_CSV);
    ASSERT_EQ(detect("Url"), SLUICE_FORMAT_CSV);
    ASSERT_EQ(detect("\"url\",\"id\""), SLUICE_FORMAT_CSV);
    ASSERT_EQ(detect("id, URL "), SLUICE_FORMAT_CSV);
    ASSERT_EQ(detect("http://a.example/x.jpg"), SLUICE_FORMAT_LINES);
    ASSERT_EQ(detect("  http://a.example/x.jpg"), SLUICE_FORMAT_LINES);
    ASSERT_EQ(detect("# url,id"), SLUICE_FORMAT_LINES);
    ASSERT_EQ(detect("\"url"), SLUICE_FORMAT_LINES);
    ASSERT_EQ(detect(""), SLUICE_FORMAT_LINES);
    /* A URL, even followed by more fields, is a list of URLs. */
    ASSERT_EQ(detect("http://a.example/x.jpg,sku-1"), SLUICE_FORMAT_LINES);
    ASSERT_EQ(detect("sku-1;https://a.example/x.jpg"), SLUICE_FORMAT_LINES);
    /* Semicolons or tabs, when the header has no comma. */
    ASSERT_EQ(detect("sku;url;title"), SLUICE_FORMAT_CSV);
    ASSERT_EQ(detect("sku\turl\ttitle"), SLUICE_FORMAT_CSV);
    ASSERT_EQ(detect("\"URL\";\"id\""), SLUICE_FORMAT_CSV);
    /* Names split by a delimiter, none of them url: a CSV header that
     * names no url column (reported once, at the header, not as a bad
     * URL on every line). */
    ASSERT_EQ(detect("urls,id"), SLUICE_FORMAT_CSV);
    ASSERT_EQ(detect("id,the url"), SLUICE_FORMAT_CSV);
    ASSERT_EQ(detect("sku;image_url;title"), SLUICE_FORMAT_CSV);
    ASSERT_EQ(detect("ImageURL\tSKU"), SLUICE_FORMAT_CSV);
    ASSERT_EQ(detect("[1,2]"), SLUICE_FORMAT_CSV);
    /* One name that is not the url column's: plain lines. */
    ASSERT_EQ(detect("image_url"), SLUICE_FORMAT_LINES);
    ASSERT_EQ(detect("urls"), SLUICE_FORMAT_LINES);

    /* The url column named by an option; a delimiter given. */
    sl_feed_opts named = {"ImageURL", NULL, NULL, 0};
    ASSERT_EQ(sl_feed_detect("imageurl", 8, &named), SLUICE_FORMAT_CSV);
    ASSERT_EQ(sl_feed_detect("url", 3, &named), SLUICE_FORMAT_LINES);
    sl_feed_opts pipe = {NULL, NULL, NULL, '|'};
    ASSERT_EQ(sl_feed_detect("id|url", 6, &pipe), SLUICE_FORMAT_CSV);
    ASSERT_EQ(sl_feed_detect("id url", 6, &pipe), SLUICE_FORMAT_LINES);
}

TEST(csv_delimiter_from_the_header)
{
    ASSERT_EQ(sl_csv_delimiter("url,id", 6), ',');
    ASSERT_EQ(sl_csv_delimiter("url;id", 6), ';');
    ASSERT_EQ(sl_csv_delimiter("url\tid", 6), '\t');
    ASSERT_EQ(sl_csv_delimiter("url", 3), ',');
    /* A comma wins over semicolons and tabs; semicolons over tabs. */
    ASSERT_EQ(sl_csv_delimiter("a;b,c", 5), ',');
    ASSERT_EQ(sl_csv_delimiter("a\tb;c", 5), ';');
    /* Inside quotes, nothing counts. */
    ASSERT_EQ(sl_csv_delimiter("\"a,b\";url", 10), ';');
    ASSERT_EQ(sl_csv_delimiter("\"a;b\"\turl", 10), '\t');
}

/* The format a feed settles on, and its first record's url and line. */
static void
expect_detected(const char *text, sluice_format format, int line,
                const char *url)
{
    tfeed t;
    tf_open(&t, text, SLUICE_FORMAT_AUTO);
    if (url) {
        EXPECT_RECORD(&t, line, url);
    } else {
        EXPECT_EOF(&t);
    }
    ASSERT_EQ(t.feed.format, format);
    tf_close(&t);
}

TEST(detect_format_of_a_feed)
{
    expect_detected("{\"url\":\"http://a.example/1\"}\n", SLUICE_FORMAT_JSONL,
                    1, "http://a.example/1");
    expect_detected("url,id\nhttp://a.example/1,x\n", SLUICE_FORMAT_CSV, 2,
                    "http://a.example/1");
    expect_detected("\"url\"\nhttp://a.example/1\n", SLUICE_FORMAT_CSV, 2,
                    "http://a.example/1");
    expect_detected("ID,URL\nx,http://a.example/1\n", SLUICE_FORMAT_CSV, 2,
                    "http://a.example/1");
    expect_detected("http://a.example/1\n", SLUICE_FORMAT_LINES, 1,
                    "http://a.example/1");
    /* Blank lines first: detection looks past them; numbers count them. */
    expect_detected("\n  \n\r\n{\"url\":\"http://a.example/1\"}\n",
                    SLUICE_FORMAT_JSONL, 4, "http://a.example/1");
    expect_detected("\n\nurl\nhttp://a.example/1\n", SLUICE_FORMAT_CSV, 4,
                    "http://a.example/1");
    /* A leading comment means plain lines. */
    expect_detected("# my list\nhttp://a.example/1\n", SLUICE_FORMAT_LINES, 2,
                    "http://a.example/1");
    /* A BOM is not part of the first line. */
    expect_detected("\xEF\xBB\xBF{\"url\":\"http://a.example/1\"}\n",
                    SLUICE_FORMAT_JSONL, 1, "http://a.example/1");
    expect_detected("\xEF\xBB\xBFurl\r\nhttp://a.example/1\r\n",
                    SLUICE_FORMAT_CSV, 2, "http://a.example/1");
    /* Nothing at all, or nothing but blanks. */
    expect_detected("", SLUICE_FORMAT_LINES, 0, NULL);
    expect_detected("\n \n\t\r\n", SLUICE_FORMAT_LINES, 0, NULL);
}

/* Detection must not lose input when the feed opens with many blanks. */
TEST(detect_after_megabytes_of_blank_lines)
{
    size_t blank_lines = 2 * MiB;
    const char rest[] = "{\"url\":\"http://a.example/1\"}\n"
                        "{\"url\":\"http://a.example/2\"}\n";
    size_t n = blank_lines + sizeof rest - 1;
    char *text = malloc(n);
    ASSERT_NOT_NULL(text);
    memset(text, '\n', blank_lines);
    memcpy(text + blank_lines, rest, sizeof rest - 1);
    tfeed t;
    tf_open_n(&t, text, n, SLUICE_FORMAT_AUTO);
    EXPECT_RECORD(&t, blank_lines + 1, "http://a.example/1");
    ASSERT_EQ(t.feed.format, SLUICE_FORMAT_JSONL);
    EXPECT_RECORD(&t, blank_lines + 2, "http://a.example/2");
    EXPECT_EOF(&t);
    ASSERT_LE(t.feed.reader.cap, SL_LINE_MAX + READER_SLACK);
    tf_close(&t);
    free(text);
}

/* ---- Whole feeds: sizes, line endings, limits ---- */

TEST(feed_empty_and_blank_files)
{
    static const sluice_format formats[] = {
        SLUICE_FORMAT_AUTO, SLUICE_FORMAT_JSONL, SLUICE_FORMAT_CSV,
        SLUICE_FORMAT_LINES};
    static const char *const inputs[] = {"", "\n", "\n\n  \n\t\r\n",
                                         "\xEF\xBB\xBF", "\xEF\xBB\xBF\n"};
    for (size_t i = 0; i < SL_ARRAY_LEN(formats); i++) {
        for (size_t k = 0; k < SL_ARRAY_LEN(inputs); k++) {
            tfeed t;
            tf_open(&t, inputs[k], formats[i]);
            EXPECT_EOF(&t);
            tf_close(&t);
        }
    }
}

TEST(feed_crlf_line_endings)
{
    tfeed t;
    tf_open(&t,
            "{\"url\":\"http://a.example/1\",\"id\":\"a\"}\r\n"
            "\r\n"
            "{\"url\":\"http://a.example/2\"}\r\n",
            SLUICE_FORMAT_AUTO);
    EXPECT_RECORD(&t, 1, "http://a.example/1");
    ASSERT_STR_EQ(t.id, "a");
    EXPECT_RECORD(&t, 3, "http://a.example/2");
    EXPECT_EOF(&t);
    tf_close(&t);

    tf_open(&t, "url,id\r\nhttp://a.example/1,a\r\nhttp://a.example/2,b\r\n",
            SLUICE_FORMAT_AUTO);
    EXPECT_RECORD(&t, 2, "http://a.example/1");
    ASSERT_STR_EQ(t.id, "a"); /* no stray CR on the last field */
    EXPECT_RECORD(&t, 3, "http://a.example/2");
    ASSERT_STR_EQ(t.id, "b");
    EXPECT_EOF(&t);
    tf_close(&t);

    tf_open(&t, "http://a.example/1\r\nhttp://a.example/2\r\n",
            SLUICE_FORMAT_AUTO);
    EXPECT_RECORD(&t, 1, "http://a.example/1");
    EXPECT_RECORD(&t, 2, "http://a.example/2");
    EXPECT_EOF(&t);
    tf_close(&t);
}

TEST(feed_utf8_bom)
{
    tfeed t;
    tf_open(&t, "\xEF\xBB\xBF{\"url\":\"http://a.example/1\"}\n",
            SLUICE_FORMAT_JSONL);
    EXPECT_RECORD(&t, 1, "http://a.example/1");
    EXPECT_EOF(&t);
    tf_close(&t);

    /* The header's first column is "url", not BOM + "url". */
    tf_open(&t, "\xEF\xBB\xBFurl,id\nhttp://a.example/1,x\n",
            SLUICE_FORMAT_CSV);
    EXPECT_RECORD(&t, 2, "http://a.example/1");
    ASSERT_STR_EQ(t.id, "x");
    EXPECT_EOF(&t);
    tf_close(&t);

    tf_open(&t, "\xEF\xBB\xBFhttp://a.example/1\n", SLUICE_FORMAT_LINES);
    EXPECT_RECORD(&t, 1, "http://a.example/1");
    EXPECT_EOF(&t);
    tf_close(&t);
}

TEST(feed_no_trailing_newline)
{
    tfeed t;
    tf_open(&t,
            "{\"url\":\"http://a.example/1\"}\n"
            "{\"url\":\"http://a.example/2\"}",
            SLUICE_FORMAT_AUTO);
    EXPECT_RECORD(&t, 1, "http://a.example/1");
    EXPECT_RECORD(&t, 2, "http://a.example/2");
    EXPECT_EOF(&t);
    tf_close(&t);

    tf_open(&t, "url\nhttp://a.example/1", SLUICE_FORMAT_AUTO);
    EXPECT_RECORD(&t, 2, "http://a.example/1");
    EXPECT_EOF(&t);
    tf_close(&t);

    tf_open(&t, "http://a.example/1", SLUICE_FORMAT_AUTO);
    EXPECT_RECORD(&t, 1, "http://a.example/1");
    EXPECT_EOF(&t);
    tf_close(&t);
}

/*
 * A 10 MB line is rejected as too long, costs nothing else, and the
 * buffer never grows past the line limit plus a little.
 */
TEST_TIMEOUT(feed_ten_megabyte_line, 120)
{
    static const sluice_format formats[] = {
        SLUICE_FORMAT_AUTO, SLUICE_FORMAT_JSONL, SLUICE_FORMAT_LINES};
    size_t huge = 10 * MiB;
    const char head[] = "{\"url\":\"http://a.example/1\"}\n\n";
    const char tail[] = "\n{\"url\":\"http://a.example/2\"}\n";
    size_t n = 0;
    char *text = malloc(sizeof head + huge + sizeof tail);
    ASSERT_NOT_NULL(text);
    memcpy(text, head, sizeof head - 1), n += sizeof head - 1;
    memcpy(text + n, "{\"url\":\"", 8), n += 8;
    memset(text + n, 'x', huge - 8), n += huge - 8;
    memcpy(text + n, tail, sizeof tail - 1), n += sizeof tail - 1;

    for (size_t i = 0; i < SL_ARRAY_LEN(formats); i++) {
        tfeed t;
        tf_open_n(&t, text, n, formats[i]);
        if (formats[i] == SLUICE_FORMAT_LINES) {
            EXPECT_RECORD(&t, 1, "{\"url\":\"http://a.example/1\"}");
        } else {
            EXPECT_RECORD(&t, 1, "http://a.example/1");
        }
        EXPECT_REJECT(&t, 3, "line longer than 1048576 bytes");
        ASSERT_LE(t.feed.reader.cap, SL_LINE_MAX + READER_SLACK);
        if (formats[i] == SLUICE_FORMAT_LINES) {
            EXPECT_RECORD(&t, 4, "{\"url\":\"http://a.example/2\"}");
        } else {
            EXPECT_RECORD(&t, 4, "http://a.example/2");
        }
        EXPECT_EOF(&t);
        ASSERT_LE(t.feed.reader.cap, SL_LINE_MAX + READER_SLACK);
        tf_close(&t);
    }
    free(text);
}

/* The same through a pipe, as a stream with no size known in advance. */
TEST_TIMEOUT(feed_ten_megabyte_line_from_a_pipe, 120)
{
    size_t huge = 10 * MiB;
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        char chunk[4096];
        memset(chunk, 'x', sizeof chunk);
        const char head[] = "http://a.example/1\n";
        const char tail[] = "\nhttp://a.example/2\n";
        if (write(p[1], head, sizeof head - 1) < 0)
            _exit(1);
        for (size_t i = 0; i < huge; i += sizeof chunk)
            if (write(p[1], chunk, sizeof chunk) != sizeof chunk)
                _exit(1);
        if (write(p[1], tail, sizeof tail - 1) < 0)
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    tfeed t;
    memset(&t, 0, sizeof t);
    t.fd = p[0];
    ASSERT_EQ(sl_feed_init(&t.feed, t.fd, SLUICE_FORMAT_AUTO), SLUICE_OK);
    EXPECT_RECORD(&t, 1, "http://a.example/1");
    EXPECT_REJECT(&t, 2, "line longer than");
    EXPECT_RECORD(&t, 3, "http://a.example/2");
    EXPECT_EOF(&t);
    ASSERT_LE(t.feed.reader.cap, SL_LINE_MAX + READER_SLACK);
    tf_close(&t);
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* SL_LINE_MAX bytes exactly is accepted; one more is not. */
TEST(feed_line_at_the_limit)
{
    size_t n = 2 * SL_LINE_MAX + 64;
    char *text = malloc(n);
    ASSERT_NOT_NULL(text);
    size_t at = 0;
    memcpy(text, "http://a.example/", 17);
    memset(text + 17, 'a', SL_LINE_MAX - 17);
    at = SL_LINE_MAX;
    text[at++] = '\n';
    memcpy(text + at, "http://a.example/", 17);
    memset(text + at + 17, 'b', SL_LINE_MAX + 1 - 17);
    at += SL_LINE_MAX + 1;
    memcpy(text + at, "\nhttp://a.example/c\n", 20);
    at += 20;

    tfeed t;
    tf_open_n(&t, text, at, SLUICE_FORMAT_LINES);
    ASSERT_EQ(tf_next(&t), SL_FEED_RECORD);
    ASSERT_EQ(t.feed.lineno, 1);
    ASSERT_EQ(t.item.url_len, SL_LINE_MAX);
    ASSERT(memcmp(t.item.url, text, SL_LINE_MAX) == 0);
    EXPECT_REJECT(&t, 2, "longer than 1048576 bytes");
    EXPECT_RECORD(&t, 3, "http://a.example/c");
    EXPECT_EOF(&t);
    tf_close(&t);
    free(text);
}

TEST(feed_read_error)
{
    tfeed t;
    memset(&t, 0, sizeof t);
    t.fd = open(".", O_RDONLY | O_DIRECTORY);
    ASSERT(t.fd >= 0);
    ASSERT_EQ(sl_feed_init(&t.feed, t.fd, SLUICE_FORMAT_AUTO), SLUICE_OK);
    ASSERT_EQ(tf_next(&t), SL_FEED_ERROR);
    ASSERT_STR_CONTAINS(t.reason, "read error: ");
    ASSERT_STR_CONTAINS(t.reason, strerror(EISDIR));
    tf_close(&t);
}

/* ---- JSON Lines ---- */

TEST(jsonl_happy_path)
{
    tfeed t;
    tf_open(&t,
            "{\"url\":\"http://a.example/1.jpg\"}\n"
            "{\"id\":\"sku-2\",\"url\":\"http://a.example/2.jpg\","
            "\"key\":\"img/2.jpg\",\"meta\":{\"w\":640,\"tags\":[\"a\"]}}\n"
            "  {  \"url\" : \"http://a.example/3.jpg\" , \"id\" : \"\" }  \n"
            "{\"url\":\"http://a.example/\\u00e9\\/\\\"q\\\"\"}\n",
            SLUICE_FORMAT_JSONL);
    EXPECT_RECORD(&t, 1, "http://a.example/1.jpg");
    ASSERT_NULL(t.id);
    ASSERT_NULL(t.key);
    ASSERT_NULL(t.meta);

    EXPECT_RECORD(&t, 2, "http://a.example/2.jpg");
    ASSERT_STR_EQ(t.id, "sku-2");
    ASSERT_STR_EQ(t.key, "img/2.jpg");
    ASSERT_STR_EQ(t.meta, "{\"w\":640,\"tags\":[\"a\"]}");

    /* Whitespace around tokens; an empty id is present but empty. */
    EXPECT_RECORD(&t, 3, "http://a.example/3.jpg");
    ASSERT_STR_EQ(t.id, "");
    ASSERT_EQ(t.item.id_len, 0);

    /* Escapes are decoded. */
    EXPECT_RECORD(&t, 4, "http://a.example/\xC3\xA9/\"q\"");
    EXPECT_EOF(&t);
    tf_close(&t);
}

/* An empty object is still a record here: validation rejects it. */
TEST(jsonl_missing_url_and_empty_object)
{
    tfeed t;
    tf_open(&t, "{}\n{\"id\":\"x\"}\n{\"url\":\"\"}\n", SLUICE_FORMAT_JSONL);
    ASSERT_EQ(tf_next(&t), SL_FEED_RECORD);
    ASSERT_EQ(t.feed.lineno, 1);
    ASSERT_NULL(t.item.url);
    ASSERT_NULL(t.item.id);
    ASSERT_NULL(t.item.meta);
    /* An object with members but no url: rejected with its members. */
    ASSERT_EQ(tf_next(&t), SL_FEED_REJECT);
    ASSERT_EQ(t.feed.lineno, 2);
    ASSERT_STR_EQ(t.reason, "url: no member \"url\"; the object has "
                            "\"id\"; name it with --url-column");
    EXPECT_RECORD(&t, 3, "");
    ASSERT_EQ(t.item.url_len, 0);
    EXPECT_EOF(&t);
    tf_close(&t);
}

/* Partners' member names, given as for CSV columns (matched exactly). */
TEST(jsonl_members_named_by_options)
{
    tfeed t;
    tf_open_csv(&t,
                "{\"sku\":\"s1\",\"image_url\":\"http://a.example/1\","
                "\"path\":\"k/1\",\"url\":\"http://other.example/\"}\n"
                "{\"sku\":7,\"image_url\":\"http://a.example/2\","
                "\"path\":\"k/2\"}\n"
                "{\"image_url\":\"http://a.example/3\",\"path\":\"k/3\"}\n"
                "{\"sku\":\"s4\",\"url\":\"http://a.example/4\"}\n"
                "{\"sku\":\"s5\",\"image_url\":\"http://a.example/5\","
                "\"image_url\":\"http://a.example/6\",\"path\":\"k\"}\n"
                "{\"sku\":\"s6\",\"image_url\":42,\"path\":\"k/6\"}\n",
                SLUICE_FORMAT_JSONL, "image_url", "sku", "path", 0);
    /* The url member is "image_url": "url" is just another member. */
    EXPECT_RECORD(&t, 1, "http://a.example/1");
    ASSERT_STR_EQ(t.id, "s1");
    ASSERT_STR_EQ(t.key, "k/1");
    EXPECT_RECORD(&t, 2, "http://a.example/2");
    ASSERT_STR_EQ(t.id, "7");
    /* A member named by an option is required. */
    ASSERT_EQ(tf_next(&t), SL_FEED_REJECT);
    ASSERT_EQ(t.feed.lineno, 3);
    ASSERT_STR_EQ(t.reason, "id: no member \"sku\" (--id-column); the "
                            "object has \"image_url\", \"path\"");
    ASSERT_EQ(tf_next(&t), SL_FEED_REJECT);
    ASSERT_EQ(t.feed.lineno, 4);
    ASSERT_STR_EQ(t.reason, "url: no member \"image_url\" (--url-column); "
                            "the object has \"sku\", \"url\"");
    ASSERT_EQ(tf_next(&t), SL_FEED_REJECT);
    ASSERT_STR_EQ(t.reason, "duplicate member \"image_url\"");
    ASSERT_EQ(tf_next(&t), SL_FEED_REJECT);
    ASSERT_STR_EQ(t.reason, "url: not a string");
    EXPECT_EOF(&t);
    tf_close(&t);
}

/* The members a rejection lists are cut short on a wide object. */
TEST(jsonl_missing_url_lists_a_few_members)
{
    char line[480];
    size_t n = 0;
    n += (size_t)snprintf(line + n, sizeof line - n, "{");
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(line + n, sizeof line - n,
                              "%s\"member_number_%02d\":%d", i ? "," : "",
                              i, i);
    snprintf(line + n, sizeof line - n, "}");
    expect_jsonl_reject(line, "url: no member \"url\"; the object has "
                              "\"member_number_00\", \"member_number_01\"");
    expect_jsonl_reject(line, ", ...; name it with --url-column");
}

TEST(jsonl_id_integer_is_its_decimal_text)
{
    tfeed t;
    tf_open(&t,
            "{\"url\":\"http://a.example/1\",\"id\":42}\n"
            "{\"url\":\"http://a.example/2\",\"id\":-7}\n"
            "{\"url\":\"http://a.example/3\",\"id\":0}\n"
            "{\"url\":\"http://a.example/4\","
            "\"id\":123456789012345678901234567890}\n"
            "{\"url\":\"http://a.example/5\",\"id\":null}\n",
            SLUICE_FORMAT_JSONL);
    EXPECT_RECORD(&t, 1, "http://a.example/1");
    ASSERT_STR_EQ(t.id, "42");
    EXPECT_RECORD(&t, 2, "http://a.example/2");
    ASSERT_STR_EQ(t.id, "-7");
    EXPECT_RECORD(&t, 3, "http://a.example/3");
    ASSERT_STR_EQ(t.id, "0");
    /* Beyond 64 bits: still its text, not a rounded double. */
    EXPECT_RECORD(&t, 4, "http://a.example/4");
    ASSERT_STR_EQ(t.id, "123456789012345678901234567890");
    /* null: as if there were no id. */
    EXPECT_RECORD(&t, 5, "http://a.example/5");
    ASSERT_NULL(t.id);
    EXPECT_EOF(&t);
    tf_close(&t);
}

TEST(jsonl_id_must_be_a_string_or_an_integer)
{
    const char *why = "id: not a string or an integer";
    expect_jsonl_reject("{\"url\":\"http://a.example/\",\"id\":1.5}", why);
    expect_jsonl_reject("{\"url\":\"http://a.example/\",\"id\":1.0}", why);
    expect_jsonl_reject("{\"url\":\"http://a.example/\",\"id\":1e3}", why);
    expect_jsonl_reject("{\"url\":\"http://a.example/\",\"id\":-2E-1}", why);
    expect_jsonl_reject("{\"id\":true,\"url\":\"http://a.example/\"}", why);
    expect_jsonl_reject("{\"url\":\"http://a.example/\",\"id\":[\"a\"]}", why);
    expect_jsonl_reject("{\"url\":\"http://a.example/\",\"id\":{\"a\":1}}",
                        why);
}

TEST(jsonl_url_must_be_a_string)
{
    const char *why = "url: not a string";
    expect_jsonl_reject("{\"url\":42}", why);
    expect_jsonl_reject("{\"url\":true}", why);
    expect_jsonl_reject("{\"url\":null}", why);
    expect_jsonl_reject("{\"url\":[\"http://a.example/\"]}", why);
    expect_jsonl_reject("{\"url\":{\"href\":\"http://a.example/\"}}", why);
    expect_jsonl_reject("{\"url\":\"http://a.example/\",\"key\":7}",
                        "key: not a string");
    expect_jsonl_reject("{\"url\":\"http://a.example/\",\"key\":[]}",
                        "key: not a string");
}

TEST(jsonl_meta_must_be_an_object)
{
    const char *why = "meta: not a JSON object";
    expect_jsonl_reject("{\"url\":\"http://a.example/\",\"meta\":[1,2]}", why);
    expect_jsonl_reject("{\"url\":\"http://a.example/\",\"meta\":[]}", why);
    expect_jsonl_reject("{\"url\":\"http://a.example/\",\"meta\":\"{}\"}", why);
    expect_jsonl_reject("{\"url\":\"http://a.example/\",\"meta\":3}", why);
    expect_jsonl_reject("{\"url\":\"http://a.example/\",\"meta\":false}", why);
}

TEST(jsonl_meta_null_is_absent_and_empty_object_kept)
{
    tfeed t;
    tf_open(&t,
            "{\"url\":\"http://a.example/1\",\"meta\":null}\n"
            "{\"url\":\"http://a.example/2\",\"meta\":{}}\n"
            "{\"url\":\"http://a.example/3\",\"key\":null}\n",
            SLUICE_FORMAT_JSONL);
    EXPECT_RECORD(&t, 1, "http://a.example/1");
    ASSERT_NULL(t.meta);
    EXPECT_RECORD(&t, 2, "http://a.example/2");
    ASSERT_STR_EQ(t.meta, "{}");
    EXPECT_RECORD(&t, 3, "http://a.example/3");
    ASSERT_NULL(t.key);
    EXPECT_EOF(&t);
    tf_close(&t);
}

/* meta comes out compact, whatever the spacing; values keep their type. */
TEST(jsonl_meta_is_reemitted_compact)
{
    tfeed t;
    tf_open(&t,
            "{\"meta\" : { \"a\" : [ 1 , -2.5e3 , true , false , null ] , "
            "\"b\" : { \"c\" : { } , \"d\" : [ ] } , "
            "\"url\" : \"inner, not the record's\" , "
            "\"s\" : \"q\\\"\\\\\\n\\u00e9\" } , "
            "\"url\" : \"http://a.example/1\" }\n"
            "{\"url\":\"http://a.example/2\",\"meta\":{\"x\":1}}\n",
            SLUICE_FORMAT_JSONL);
    EXPECT_RECORD(&t, 1, "http://a.example/1");
    ASSERT_STR_EQ(t.meta, "{\"a\":[1,-2.5e3,true,false,null],"
                          "\"b\":{\"c\":{},\"d\":[]},"
                          "\"url\":\"inner, not the record's\","
                          "\"s\":\"q\\\"\\\\\\n\xC3\xA9\"}");
    /* Nothing of the previous line's meta is left over. */
    EXPECT_RECORD(&t, 2, "http://a.example/2");
    ASSERT_STR_EQ(t.meta, "{\"x\":1}");
    EXPECT_EOF(&t);
    tf_close(&t);
}

/* A line that fails inside meta leaves nothing behind for the next. */
TEST(jsonl_meta_after_a_rejected_line)
{
    tfeed t;
    tf_open(&t,
            "{\"url\":\"http://a.example/1\",\"meta\":{\"a\":{\"b\":[1,\n"
            "{\"url\":\"http://a.example/2\",\"meta\":{\"a\":[{\"b\":1}],"
            "\"id\":[]}}\n"
            "{\"url\":\"http://a.example/3\",\"meta\":{\"c\":2}}\n",
            SLUICE_FORMAT_JSONL);
    EXPECT_REJECT(&t, 1, "invalid JSON");
    EXPECT_RECORD(&t, 2, "http://a.example/2");
    ASSERT_STR_EQ(t.meta, "{\"a\":[{\"b\":1}],\"id\":[]}");
    ASSERT_NULL(t.id); /* meta's "id" is not the record's */
    EXPECT_RECORD(&t, 3, "http://a.example/3");
    ASSERT_STR_EQ(t.meta, "{\"c\":2}");
    EXPECT_EOF(&t);
    tf_close(&t);
}

TEST(jsonl_unknown_members_ignored)
{
    tfeed t;
    tf_open(&t,
            "{\"name\":\"cat\",\"url\":\"http://a.example/1\","
            "\"size\":12.5,\"ok\":true,\"none\":null,"
            "\"nested\":{\"url\":\"http://evil.example/\",\"id\":[1,{}]},"
            "\"list\":[[\"x\"],{\"meta\":1}],\"URL\":5,\"Id\":[],"
            "\"name\":\"again\"}\n",
            SLUICE_FORMAT_JSONL);
    EXPECT_RECORD(&t, 1, "http://a.example/1");
    ASSERT_NULL(t.id);
    ASSERT_NULL(t.key);
    ASSERT_NULL(t.meta);
    EXPECT_EOF(&t);
    tf_close(&t);
}

TEST(jsonl_duplicate_members_rejected)
{
    expect_jsonl_reject("{\"url\":\"http://a.example/1\","
                        "\"url\":\"http://a.example/2\"}",
                        "duplicate member \"url\"");
    expect_jsonl_reject("{\"url\":\"http://a.example/\",\"id\":\"a\","
                        "\"id\":\"a\"}",
                        "duplicate member \"id\"");
    expect_jsonl_reject("{\"url\":\"http://a.example/\",\"id\":null,"
                        "\"id\":\"a\"}",
                        "duplicate member \"id\"");
    expect_jsonl_reject("{\"key\":\"k\",\"url\":\"http://a.example/\","
                        "\"key\":\"k\"}",
                        "duplicate member \"key\"");
    expect_jsonl_reject("{\"url\":\"http://a.example/\",\"meta\":{},"
                        "\"meta\":{}}",
                        "duplicate member \"meta\"");
}

TEST(jsonl_malformed_lines)
{
    /* Truncated. */
    expect_jsonl_reject("{\"url\":\"http://a.example/\"", "invalid JSON");
    expect_jsonl_reject("{\"url\":\"http://a.exa", "invalid JSON");
    expect_jsonl_reject("{\"url\":", "invalid JSON");
    expect_jsonl_reject("{", "invalid JSON");
    /* Trailing garbage, or two objects on one line. */
    expect_jsonl_reject("{\"url\":\"http://a.example/\"} x", "invalid JSON");
    expect_jsonl_reject("{\"url\":\"http://a.example/\"},", "invalid JSON");
    expect_jsonl_reject("{\"url\":\"http://a.example/1\"}"
                        "{\"url\":\"http://a.example/2\"}",
                        "invalid JSON");
    expect_jsonl_reject("{\"url\":\"http://a.example/1\"} "
                        "{\"url\":\"http://a.example/2\"}",
                        "invalid JSON");
    /* Not JSON at all, or broken inside. */
    expect_jsonl_reject("http://a.example/", "invalid JSON");
    expect_jsonl_reject("{url:\"http://a.example/\"}", "invalid JSON");
    expect_jsonl_reject("{\"url\":'http://a.example/'}", "invalid JSON");
    expect_jsonl_reject("{\"url\":\"http://a.example/\",}", "invalid JSON");
    expect_jsonl_reject("{\"url\":\"a\tb\"}", "invalid JSON");
    expect_jsonl_reject("{\"url\":\"\\x41\"}", "invalid JSON");
    /* Valid JSON, but not an object. */
    expect_jsonl_reject("[{\"url\":\"http://a.example/\"}]",
                        "not a JSON object");
    expect_jsonl_reject("\"http://a.example/\"", "not a JSON object");
    expect_jsonl_reject("42", "not a JSON object");
    expect_jsonl_reject("null", "not a JSON object");
    expect_jsonl_reject("true", "not a JSON object");
}

/* The reason for a syntax error says where it is. */
TEST(jsonl_error_reason_names_the_byte)
{
    tfeed t;
    tf_open(&t, "{\"url\":\"http://a.example/\"} x\n", SLUICE_FORMAT_JSONL);
    ASSERT_EQ(tf_next(&t), SL_FEED_REJECT);
    ASSERT_STR_CONTAINS(t.reason, "invalid JSON near byte ");
    ASSERT_STR_CONTAINS(t.reason, "trailing garbage");
    ASSERT(strchr(t.reason, '\n') == NULL);
    tf_close(&t);
}

TEST(jsonl_invalid_utf8_rejected)
{
    /* In the url, an ignored member, meta, and a member name. */
    expect_jsonl_reject("{\"url\":\"http://a.example/\xff\"}", "UTF");
    expect_jsonl_reject("{\"url\":\"http://a.example/\",\"x\":\"\xC3\"}",
                        "UTF");
    expect_jsonl_reject("{\"url\":\"http://a.example/\","
                        "\"meta\":{\"a\":\"\x80\"}}",
                        "UTF");
    expect_jsonl_reject("{\"url\":\"http://a.example/\","
                        "\"meta\":{\"\xE2\x82\":1}}",
                        "UTF");
    /* Well-formed in shape but not UTF-8: overlong, surrogate, too big. */
    expect_jsonl_reject("{\"url\":\"http://a.example/\","
                        "\"meta\":{\"a\":\"\xC0\xAF\"}}",
                        "UTF");
    expect_jsonl_reject("{\"url\":\"http://a.example/\","
                        "\"meta\":{\"a\":\"\xED\xA0\x80\"}}",
                        "UTF");
    expect_jsonl_reject("{\"url\":\"http://a.example/\","
                        "\"meta\":{\"a\":\"\xF4\x90\x80\x80\"}}",
                        "UTF");
    expect_jsonl_reject("{\"url\":\"http://a.example/\xE0\x80\xAF\"}", "UTF");
    /* Escapes yajl decodes into bytes that are not UTF-8: a lone low
     * surrogate, a high one followed by a low one's escape too late. */
    expect_jsonl_reject("{\"url\":\"http://a.example/\","
                        "\"meta\":{\"a\":\"\\udc00\"}}",
                        "meta: a \\u escape is an unpaired surrogate");
    expect_jsonl_reject("{\"url\":\"http://a.example/\","
                        "\"meta\":{\"\\udfff\":1}}",
                        "unpaired surrogate");
    expect_jsonl_reject("{\"url\":\"http://a.example/\","
                        "\"meta\":{\"a\":[{\"b\":\"x\\ud83dy\\ude00\"}]}}",
                        "unpaired surrogate");
    /* And valid multi-byte text is fine, in meta too. */
    tfeed t;
    tf_open(&t,
            "{\"url\":\"http://a.example/\xC3\xA9\","
            "\"meta\":{\"\xE2\x82\xAC\":\"\xF0\x9F\x98\x80\"}}\n",
            SLUICE_FORMAT_JSONL);
    EXPECT_RECORD(&t, 1, "http://a.example/\xC3\xA9");
    ASSERT_STR_EQ(t.meta, "{\"\xE2\x82\xAC\":\"\xF0\x9F\x98\x80\"}");
    EXPECT_EOF(&t);
    tf_close(&t);
}

/* A raw NUL is not JSON; an escaped one survives into the field. */
TEST(jsonl_nul_bytes)
{
    const char text[] = "{\"url\":\"http://a.example/\0x\"}\n"
                        "{\"url\":\"http://a.example/\"}\0\n"
                        "{\"url\":\"http://a.example/\\u0000x\"}\n"
                        "{\"url\":\"http://a.example/ok\"}\n";
    tfeed t;
    tf_open_n(&t, text, sizeof text - 1, SLUICE_FORMAT_AUTO);
    EXPECT_REJECT(&t, 1, "invalid JSON");
    EXPECT_REJECT(&t, 2, "invalid JSON");
    ASSERT_EQ(tf_next(&t), SL_FEED_RECORD);
    ASSERT_EQ(t.feed.lineno, 3);
    ASSERT_EQ(t.item.url_len, 19);
    ASSERT(memcmp(t.item.url, "http://a.example/\0x", 19) == 0);
    EXPECT_RECORD(&t, 4, "http://a.example/ok");
    EXPECT_EOF(&t);
    tf_close(&t);
}

/* Write `depth` nested arrays or objects as the value of meta.a. */
static char *
deep_line(const char *prefix, size_t depth, char open, char close, size_t *len)
{
    size_t plen = strlen(prefix);
    size_t n = plen + depth * 6 + 16;
    char *text = malloc(n);
    ASSERT_NOT_NULL(text);
    size_t at = 0;
    memcpy(text, prefix, plen), at = plen;
    for (size_t i = 0; i < depth; i++) {
        text[at++] = open;
        if (open == '{') {
            memcpy(text + at, "\"a\":", 4);
            at += 4;
        }
    }
    text[at++] = '1';
    for (size_t i = 0; i < depth; i++)
        text[at++] = close;
    memcpy(text + at, "}}\n", 3), at += 3;
    *len = at;
    return text;
}

/*
 * 100000 levels of nesting: no crash and a clean answer. In meta the
 * line is refused with a reason that says so; in an ignored member it
 * costs nothing. Either way the next line still parses.
 */
TEST(jsonl_deeply_nested_meta)
{
    static const char open[] = "[{", close[] = "]}";
    for (int kind = 0; kind < 2; kind++) {
        for (int in_meta = 0; in_meta < 2; in_meta++) {
            size_t len;
            char *line = deep_line(
                in_meta ? "{\"url\":\"http://a.example/1\",\"meta\":{\"a\":"
                        : "{\"url\":\"http://a.example/1\",\"x\":{\"a\":",
                100000, open[kind], close[kind], &len);
            const char next[] = "{\"url\":\"http://a.example/2\","
                                "\"meta\":{\"b\":[[1]]}}\n";
            char *text = malloc(len + sizeof next);
            ASSERT_NOT_NULL(text);
            memcpy(text, line, len);
            memcpy(text + len, next, sizeof next);
            tfeed t;
            tf_open_n(&t, text, len + sizeof next - 1, SLUICE_FORMAT_AUTO);
            if (in_meta) {
                EXPECT_REJECT(&t, 1, "meta: nested too deeply");
            } else {
                EXPECT_RECORD(&t, 1, "http://a.example/1");
                ASSERT_NULL(t.meta);
            }
            EXPECT_RECORD(&t, 2, "http://a.example/2");
            ASSERT_STR_EQ(t.meta, "{\"b\":[[1]]}");
            EXPECT_EOF(&t);
            tf_close(&t);
            free(text);
            free(line);
        }
    }
}

/* Nesting that the generator can take is kept exactly. */
TEST(jsonl_moderately_nested_meta_kept)
{
    size_t len;
    char *line =
        deep_line("{\"url\":\"http://a.example/1\",\"meta\":{\"a\":", 100, '[',
                  ']', &len);
    tfeed t;
    tf_open_n(&t, line, len, SLUICE_FORMAT_JSONL);
    EXPECT_RECORD(&t, 1, "http://a.example/1");
    /* The line less {"url":"...","meta": and the closing "}\n". */
    ASSERT_EQ(strlen(t.meta), len - 35 - 2);
    ASSERT(memcmp(t.meta, line + 35, len - 37) == 0);
    EXPECT_EOF(&t);
    tf_close(&t);
    free(line);
}

/* The generator's depth limit, in both formats, with the same reason. */
TEST(meta_nesting_limit)
{
    /* meta itself is one level; the generator takes YAJL_MAX_DEPTH - 1. */
    for (size_t depth = YAJL_MAX_DEPTH - 3; depth <= YAJL_MAX_DEPTH; depth++) {
        bool fits = depth <= YAJL_MAX_DEPTH - 2;
        char text[1024];
        size_t at;
        tfeed t;

        at = (size_t)snprintf(text, sizeof text,
                              "{\"url\":\"http://a.example/1\",\"meta\":"
                              "{\"a\":");
        memset(text + at, '[', depth), at += depth;
        memset(text + at, ']', depth), at += depth;
        memcpy(text + at, "}}\n", 4);
        tf_open(&t, text, SLUICE_FORMAT_JSONL);
        if (fits) {
            EXPECT_RECORD(&t, 1, "http://a.example/1");
            ASSERT_EQ(strlen(t.meta), 6 + 2 * depth);
        } else {
            EXPECT_REJECT(&t, 1, "meta: nested too deeply");
        }
        tf_close(&t);

        at = (size_t)snprintf(text, sizeof text,
                              "url,meta\nhttp://a.example/1,\"{\"\"a\"\":");
        memset(text + at, '[', depth), at += depth;
        memset(text + at, ']', depth), at += depth;
        memcpy(text + at, "}\"\n", 4);
        tf_open(&t, text, SLUICE_FORMAT_CSV);
        if (fits) {
            EXPECT_RECORD(&t, 2, "http://a.example/1");
            ASSERT_EQ(strlen(t.meta), 6 + 2 * depth);
        } else {
            EXPECT_REJECT(&t, 2, "meta: nested too deeply");
        }
        tf_close(&t);
    }
}

/* ---- CSV ---- */

TEST(csv_happy_path)
{
    tfeed t;
    tf_open(&t,
            "url,id,key\n"
            "http://a.example/1.jpg,sku-1,img/1.jpg\n"
            "http://a.example/2.jpg,,\n"
            " http://a.example/3.jpg , sku-3 ,\t\n"
            "\n"
            "http://a.example/4.jpg,sku-4,k4\n",
            SLUICE_FORMAT_CSV);
    EXPECT_RECORD(&t, 2, "http://a.example/1.jpg");
    ASSERT_STR_EQ(t.id, "sku-1");
    ASSERT_STR_EQ(t.key, "img/1.jpg");
    ASSERT_NULL(t.meta);
    /* Empty fields: absent. */
    EXPECT_RECORD(&t, 3, "http://a.example/2.jpg");
    ASSERT_NULL(t.id);
    ASSERT_NULL(t.key);
    /* url, id and key are trimmed; blank ones are absent. */
    EXPECT_RECORD(&t, 4, "http://a.example/3.jpg");
    ASSERT_STR_EQ(t.id, "sku-3");
    ASSERT_NULL(t.key);
    /* A blank line is skipped, and counted. */
    EXPECT_RECORD(&t, 6, "http://a.example/4.jpg");
    ASSERT_STR_EQ(t.key, "k4");
    EXPECT_EOF(&t);
    tf_close(&t);
}

/* Header names: any case, quoted, padded, in any order. */
TEST(csv_header_names)
{
    tfeed t;
    tf_open(&t,
            "\"KEY\",Url, iD \n"
            "k1,http://a.example/1,i1\n",
            SLUICE_FORMAT_CSV);
    EXPECT_RECORD(&t, 2, "http://a.example/1");
    ASSERT_STR_EQ(t.id, "i1");
    ASSERT_STR_EQ(t.key, "k1");
    ASSERT_NULL(t.meta);
    EXPECT_EOF(&t);
    tf_close(&t);
}

TEST(csv_quoted_fields)
{
    tfeed t;
    tf_open(&t,
            "url,id,key\n"
            "\"http://a.example/1\",\"a,b\",\"say \"\"hi\"\"\"\n"
            "\"\",\"\"\"\",\"\"\"\"\"\"\n"
            "\"http://a.example/3\",\",\",\" \"\n",
            SLUICE_FORMAT_AUTO);
    EXPECT_RECORD(&t, 2, "http://a.example/1");
    ASSERT_STR_EQ(t.id, "a,b");
    ASSERT_STR_EQ(t.key, "say \"hi\"");
    EXPECT_RECORD(&t, 3, "");
    ASSERT_STR_EQ(t.id, "\"");
    ASSERT_STR_EQ(t.key, "\"\"");
    EXPECT_RECORD(&t, 4, "http://a.example/3");
    ASSERT_STR_EQ(t.id, ",");
    ASSERT_NULL(t.key); /* a quoted blank is still blank */
    EXPECT_EOF(&t);
    tf_close(&t);
}

/*
 * A quoted field may hold line breaks: the record's number is the line it
 * starts on, and the lines it spans still count for the next record.
 */
TEST(csv_newlines_inside_quotes)
{
    tfeed t;
    tf_open(&t,
            "url,title\n"
            "http://a.example/1,\"two\nlines\"\n"
            "http://a.example/2,\"three\r\n\nlines, \"\"quoted\"\"\"\n"
            "http://a.example/3,\"\n\"\n"
            "http://a.example/4,plain\n",
            SLUICE_FORMAT_CSV);
    EXPECT_RECORD(&t, 2, "http://a.example/1");
    ASSERT_STR_EQ(t.meta, "{\"title\":\"two\\nlines\"}");
    EXPECT_RECORD(&t, 4, "http://a.example/2");
    ASSERT_STR_EQ(t.meta, "{\"title\":\"three\\n\\nlines, \\\"quoted\\\"\"}");
    EXPECT_RECORD(&t, 7, "http://a.example/3");
    ASSERT_STR_EQ(t.meta, "{\"title\":\"\\n\"}");
    EXPECT_RECORD(&t, 9, "http://a.example/4");
    ASSERT_STR_EQ(t.meta, "{\"title\":\"plain\"}");
    EXPECT_EOF(&t);
    tf_close(&t);
}

TEST(csv_field_count_mismatch)
{
    tfeed t;
    tf_open(&t,
            "url,id\n"
            "http://a.example/1\n"
            "http://a.example/2,b,c\n"
            "http://a.example/3,\"x,\"\"y\"\n"
            "http://a.example/4,d\n",
            SLUICE_FORMAT_CSV);
    EXPECT_REJECT(&t, 2, "expected 2 fields, found 1");
    EXPECT_REJECT(&t, 3, "expected 2 fields, found 3");
    EXPECT_RECORD(&t, 4, "http://a.example/3");
    ASSERT_STR_EQ(t.id, "x,\"y");
    EXPECT_RECORD(&t, 5, "http://a.example/4");
    ASSERT_STR_EQ(t.id, "d");
    EXPECT_EOF(&t);
    tf_close(&t);
}

TEST(csv_unterminated_quote_at_eof)
{
    tfeed t;
    tf_open(&t,
            "url,id\n"
            "http://a.example/1,one\n"
            "http://a.example/2,\"never\nclosed\n"
            "http://a.example/3,three\n",
            SLUICE_FORMAT_CSV);
    EXPECT_RECORD(&t, 2, "http://a.example/1");
    EXPECT_REJECT(&t, 3, "field 2: unterminated quoted field");
    EXPECT_EOF(&t);
    tf_close(&t);

    /* Without a final newline. */
    tf_open(&t, "url\n\"http://a.example/1", SLUICE_FORMAT_CSV);
    EXPECT_REJECT(&t, 2, "field 1: unterminated quoted field");
    EXPECT_EOF(&t);
    tf_close(&t);
}

TEST(csv_text_after_closing_quote)
{
    tfeed t;
    tf_open(&t,
            "url,id\n"
            "http://a.example/1,\"a\"b\n"
            "\"http://a.example/2\" ,c\n"
            "http://a.example/3,\"ok\"\n",
            SLUICE_FORMAT_CSV);
    EXPECT_REJECT(&t, 2, "field 2: text after the closing quote");
    EXPECT_REJECT(&t, 3, "field 1: text after the closing quote");
    EXPECT_RECORD(&t, 4, "http://a.example/3");
    ASSERT_STR_EQ(t.id, "ok");
    EXPECT_EOF(&t);
    tf_close(&t);
}

/*
 * A stray quote inside an unquoted field does not open a quoted field,
 * so it cannot swallow the records after it.
 */
TEST(csv_stray_quote_costs_one_record_at_most)
{
    tfeed t;
    tf_open(&t,
            "url,title\n"
            "http://a.example/1,5\" screen\n"
            "http://a.example/2,two\n"
            "http://a.example/3,\"x\"y\"\n"
            "http://a.example/4,four\n",
            SLUICE_FORMAT_CSV);
    EXPECT_RECORD(&t, 2, "http://a.example/1");
    ASSERT_STR_EQ(t.meta, "{\"title\":\"5\\\" screen\"}");
    EXPECT_RECORD(&t, 3, "http://a.example/2");
    ASSERT_STR_EQ(t.meta, "{\"title\":\"two\"}");
    EXPECT_REJECT(&t, 4, "field 2: text after the closing quote");
    EXPECT_RECORD(&t, 5, "http://a.example/4");
    ASSERT_STR_EQ(t.meta, "{\"title\":\"four\"}");
    EXPECT_EOF(&t);
    tf_close(&t);
}

TEST(csv_header_without_url_skips_the_file)
{
    tfeed t;
    tf_open(&t,
            "id,link\n"
            "a,http://a.example/1\n"
            "b,http://a.example/2\n",
            SLUICE_FORMAT_CSV);
    EXPECT_REJECT(&t, 1,
                  "no url column: the header is \"id,link\" (delimiter "
                  "','); name it with --url-column; file skipped");
    EXPECT_EOF(&t);
    tf_close(&t);

    /* "urls" and " url x" are not "url". */
    tf_open(&t, "urls,url x\nhttp://a.example/1,b\n", SLUICE_FORMAT_CSV);
    EXPECT_REJECT(&t, 1, "no url column: the header is \"urls,url x\"");
    EXPECT_EOF(&t);
    tf_close(&t);
}

/*
 * A partner's export: another name for the url column, semicolons. Found
 * as CSV from the header alone, and a header without the url column is
 * said once, naming the header as read and the column expected, however
 * many lines follow.
 */
TEST(csv_as_partners_export_it)
{
    static const char feed[] = "sku;image_url;title\n"
                               "sku-1;http://a.example/1.jpg;Red \"cap\"\n"
                               "sku-2;\"http://a.example/2.jpg\";\"a;b\"\n"
                               "sku-3;http://a.example/3.jpg;\n";
    tfeed t;
    /* Detected, then refused once, at the header. */
    tf_open(&t, feed, SLUICE_FORMAT_AUTO);
    EXPECT_REJECT(&t, 1,
                  "no url column: the header is \"sku;image_url;title\" "
                  "(delimiter ';'); name it with --url-column; file "
                  "skipped");
    ASSERT_EQ(t.feed.format, SLUICE_FORMAT_CSV);
    EXPECT_EOF(&t);
    tf_close(&t);

    /* With the columns named (in any case): every record. */
    tf_open_csv(&t, feed, SLUICE_FORMAT_AUTO, "Image_URL", "SKU", NULL, 0);
    EXPECT_RECORD(&t, 2, "http://a.example/1.jpg");
    ASSERT_STR_EQ(t.id, "sku-1");
    ASSERT_NULL(t.key);
    ASSERT_STR_EQ(t.meta, "{\"title\":\"Red \\\"cap\\\"\"}");
    /* A quoted field may hold the delimiter. */
    EXPECT_RECORD(&t, 3, "http://a.example/2.jpg");
    ASSERT_STR_EQ(t.id, "sku-2");
    ASSERT_STR_EQ(t.meta, "{\"title\":\"a;b\"}");
    EXPECT_RECORD(&t, 4, "http://a.example/3.jpg");
    ASSERT_NULL(t.meta);
    EXPECT_EOF(&t);
    ASSERT_EQ(t.feed.format, SLUICE_FORMAT_CSV);
    tf_close(&t);

    /* A column named by an option that is not there: once, at the
     * header, naming it. */
    tf_open_csv(&t, feed, SLUICE_FORMAT_AUTO, "ImageURL", NULL, NULL, 0);
    EXPECT_REJECT(&t, 1,
                  "no url column: the header is \"sku;image_url;title\" "
                  "(delimiter ';'), with no column \"ImageURL\" "
                  "(--url-column); file skipped");
    EXPECT_EOF(&t);
    tf_close(&t);
    tf_open_csv(&t, feed, SLUICE_FORMAT_CSV, "image_url", "id", NULL, 0);
    EXPECT_REJECT(&t, 1, "no id column: the header is \"sku;image_url;"
                         "title\" (delimiter ';'), with no column \"id\" "
                         "(--id-column)");
    EXPECT_EOF(&t);
    tf_close(&t);
    tf_open_csv(&t, feed, SLUICE_FORMAT_CSV, "image_url", NULL, "path", 0);
    EXPECT_REJECT(&t, 1, "with no column \"path\" (--key-column)");
    EXPECT_EOF(&t);
    tf_close(&t);

    /* A delimiter given that the header does not use: one field. */
    tf_open_csv(&t, feed, SLUICE_FORMAT_CSV, "image_url", NULL, NULL, ',');
    EXPECT_REJECT(&t, 1, "the header is \"sku;image_url;title\" (delimiter "
                         "',')");
    EXPECT_EOF(&t);
    tf_close(&t);
}

TEST(csv_tab_and_given_delimiters)
{
    tfeed t;
    /* Tabs, detected; a key column by another name; CRLF. */
    tf_open_csv(&t,
                "Link\tid\tPath\r\n"
                "http://a.example/1.jpg\ti1\timg/1.jpg\r\n"
                "\"http://a.example/2.jpg\"\t\"i\t2\"\t\r\n",
                SLUICE_FORMAT_AUTO, "link", NULL, "path", 0);
    EXPECT_RECORD(&t, 2, "http://a.example/1.jpg");
    ASSERT_STR_EQ(t.id, "i1");
    ASSERT_STR_EQ(t.key, "img/1.jpg");
    EXPECT_RECORD(&t, 3, "http://a.example/2.jpg");
    ASSERT_STR_EQ(t.id, "i\t2");
    ASSERT_NULL(t.key);
    EXPECT_EOF(&t);
    tf_close(&t);

    /* A delimiter given: '|' with commas in fields; a field count that
     * does not match is one bad record. */
    tf_open_csv(&t,
                "url|id|note\n"
                "http://a.example/1.jpg|a|x,y\n"
                "http://a.example/2.jpg|b\n"
                "http://a.example/3.jpg|c|\"p|q\"\n",
                SLUICE_FORMAT_AUTO, NULL, NULL, NULL, '|');
    EXPECT_RECORD(&t, 2, "http://a.example/1.jpg");
    ASSERT_STR_EQ(t.meta, "{\"note\":\"x,y\"}");
    EXPECT_REJECT(&t, 3, "expected 3 fields, found 2");
    EXPECT_RECORD(&t, 4, "http://a.example/3.jpg");
    ASSERT_STR_EQ(t.meta, "{\"note\":\"p|q\"}");
    EXPECT_EOF(&t);
    tf_close(&t);

    /* Semicolons with a quoted field over two lines. */
    tf_open(&t,
            "url;id;note\n"
            "http://a.example/1.jpg;a;\"two;\n"
            "lines\"\n"
            "http://a.example/2.jpg;b;\n",
            SLUICE_FORMAT_AUTO);
    EXPECT_RECORD(&t, 2, "http://a.example/1.jpg");
    ASSERT_STR_EQ(t.meta, "{\"note\":\"two;\\nlines\"}");
    EXPECT_RECORD(&t, 4, "http://a.example/2.jpg");
    EXPECT_EOF(&t);
    tf_close(&t);
}

TEST(csv_duplicate_header_names)
{
    tfeed t;
    tf_open(&t,
            "url,Title,id,title\n"
            "http://a.example/1,a,b,c\n",
            SLUICE_FORMAT_CSV);
    EXPECT_REJECT(&t, 1, "CSV header names column \"title\" twice");
    ASSERT_STR_CONTAINS(t.reason, "file skipped");
    EXPECT_EOF(&t);
    tf_close(&t);

    tf_open(&t, "url,URL\nhttp://a.example/1,http://a.example/2\n",
            SLUICE_FORMAT_AUTO);
    EXPECT_REJECT(&t, 1, "names column \"URL\" twice");
    EXPECT_EOF(&t);
    tf_close(&t);
}

/* A header that cannot be split skips the file too. */
TEST(csv_broken_header_skips_the_file)
{
    tfeed t;
    tf_open(&t, "url,\"id\"x\nhttp://a.example/1,a\n", SLUICE_FORMAT_CSV);
    EXPECT_REJECT(&t, 1, "text after the closing quote");
    EXPECT_EOF(&t);
    tf_close(&t);
}

/* Columns sluice does not use become string members of meta. */
TEST(csv_extra_columns_become_meta)
{
    tfeed t;
    tf_open(&t,
            "url,title,id,size,note\n"
            "http://a.example/1,Cat,c1,12,\"say \"\"hi\"\"\"\n"
            "http://a.example/2,,c2,,\n"
            "http://a.example/3, padded ,c3,0,\"a\\b\tc\"\n"
            "http://a.example/4,\xC3\xA9t\xC3\xA9,c4,,\n",
            SLUICE_FORMAT_CSV);
    EXPECT_RECORD(&t, 2, "http://a.example/1");
    ASSERT_STR_EQ(t.id, "c1");
    ASSERT_STR_EQ(t.meta, "{\"title\":\"Cat\",\"size\":\"12\","
                          "\"note\":\"say \\\"hi\\\"\"}");
    /* All empty: no meta at all. */
    EXPECT_RECORD(&t, 3, "http://a.example/2");
    ASSERT_NULL(t.meta);
    /* Values are kept as they are, and escaped for JSON. */
    EXPECT_RECORD(&t, 4, "http://a.example/3");
    ASSERT_STR_EQ(t.meta, "{\"title\":\" padded \",\"size\":\"0\","
                          "\"note\":\"a\\\\b\\tc\"}");
    EXPECT_RECORD(&t, 5, "http://a.example/4");
    ASSERT_STR_EQ(t.meta, "{\"title\":\"\xC3\xA9t\xC3\xA9\"}");
    EXPECT_EOF(&t);
    tf_close(&t);
}

TEST(csv_extra_column_bad_bytes_rejected)
{
    const char text[] = "url,title\n"
                        "http://a.example/1,\xff\n"
                        "http://a.example/2,\"a\0b\"\n"
                        "http://a.example/3,\xC0\xAF\n"
                        "http://a.example/4,\xED\xA0\x80\n"
                        "http://a.example/5,ok\n";
    tfeed t;
    tf_open_n(&t, text, sizeof text - 1, SLUICE_FORMAT_CSV);
    EXPECT_REJECT(&t, 2, "column \"title\": invalid UTF-8 or a NUL byte");
    EXPECT_REJECT(&t, 3, "column \"title\": invalid UTF-8 or a NUL byte");
    EXPECT_REJECT(&t, 4, "column \"title\": invalid UTF-8 or a NUL byte");
    EXPECT_REJECT(&t, 5, "column \"title\": invalid UTF-8 or a NUL byte");
    EXPECT_RECORD(&t, 6, "http://a.example/5");
    ASSERT_STR_EQ(t.meta, "{\"title\":\"ok\"}");
    EXPECT_EOF(&t);
    tf_close(&t);
}

/* A column name that is not UTF-8 cannot name a member of meta. */
TEST(csv_extra_column_bad_name_rejected)
{
    tfeed t;
    tf_open(&t,
            "url,\xff,ok\n"
            "http://a.example/1,x,y\n"
            "http://a.example/2,,y\n",
            SLUICE_FORMAT_CSV);
    EXPECT_REJECT(&t, 2, "column 2: name is not valid UTF-8");
    /* Records that leave the column empty do not use the name. */
    EXPECT_RECORD(&t, 3, "http://a.example/2");
    ASSERT_STR_EQ(t.meta, "{\"ok\":\"y\"}");
    EXPECT_EOF(&t);
    tf_close(&t);
}

/* With a meta column, meta is that column's object, compacted. */
TEST(csv_meta_column)
{
    tfeed t;
    tf_open(&t,
            "url,meta,title\n"
            "http://a.example/1,\"{ \"\"w\"\" : 640, \"\"t\"\": [1, "
            "\"\"x\"\"] }\",ignored\n"
            "http://a.example/2,,ignored\n"
            "http://a.example/3,\" {} \",\n"
            "http://a.example/4,[1],\n"
            "http://a.example/5,\"\"\"str\"\"\",\n"
            "http://a.example/6,null,\n"
            "http://a.example/7,{oops,\n"
            "http://a.example/8,\"{\"\"a\"\":1} {}\",\n"
            "http://a.example/9,\"{\"\"a\"\":{\"\"b\"\":null}}\",\n",
            SLUICE_FORMAT_CSV);
    EXPECT_RECORD(&t, 2, "http://a.example/1");
    ASSERT_STR_EQ(t.meta, "{\"w\":640,\"t\":[1,\"x\"]}");
    EXPECT_RECORD(&t, 3, "http://a.example/2");
    ASSERT_NULL(t.meta);
    EXPECT_RECORD(&t, 4, "http://a.example/3");
    ASSERT_STR_EQ(t.meta, "{}");
    EXPECT_REJECT(&t, 5, "meta: not a JSON object");
    EXPECT_REJECT(&t, 6, "meta: not a JSON object");
    EXPECT_REJECT(&t, 7, "meta: not a JSON object");
    EXPECT_REJECT(&t, 8, "meta: invalid JSON");
    EXPECT_REJECT(&t, 9, "meta: invalid JSON");
    EXPECT_RECORD(&t, 10, "http://a.example/9");
    ASSERT_STR_EQ(t.meta, "{\"a\":{\"b\":null}}");
    EXPECT_EOF(&t);
    tf_close(&t);
}

TEST(csv_meta_column_invalid_utf8_rejected)
{
    tfeed t;
    tf_open(&t,
            "url,meta\n"
            "http://a.example/1,\"{\"\"a\"\":\"\"\xff\"\"}\"\n"
            "http://a.example/2,\"{\"\"a\"\":\"\"\xC0\xAF\"\"}\"\n"
            "http://a.example/3,\"{\"\"a\"\":\"\"\xC3\xA9\"\"}\"\n"
            "http://a.example/4,\"{\"\"\\udc01\"\":\"\"a\"\"}\"\n",
            SLUICE_FORMAT_CSV);
    EXPECT_REJECT(&t, 2, "meta: ");
    ASSERT_STR_CONTAINS(t.reason, "UTF");
    EXPECT_REJECT(&t, 3, "meta: ");
    ASSERT_STR_CONTAINS(t.reason, "UTF");
    EXPECT_RECORD(&t, 4, "http://a.example/3");
    ASSERT_STR_EQ(t.meta, "{\"a\":\"\xC3\xA9\"}");
    EXPECT_REJECT(&t, 5, "meta: a \\u escape is an unpaired surrogate");
    EXPECT_EOF(&t);
    tf_close(&t);
}

/* A meta column nested too deeply is refused with a reason that says so. */
TEST(csv_meta_column_deeply_nested)
{
    size_t depth = 100000;
    char *text = malloc(depth * 2 + 128);
    ASSERT_NOT_NULL(text);
    size_t at = 0;
    const char head[] = "url,meta\nhttp://a.example/1,\"{\"\"a\"\":";
    memcpy(text, head, sizeof head - 1), at = sizeof head - 1;
    memset(text + at, '[', depth), at += depth;
    memset(text + at, ']', depth), at += depth;
    memcpy(text + at, "}\"\nhttp://a.example/2,\"{\"\"b\"\":[[[]]]}\"\n", 38);
    at += 38;
    tfeed t;
    tf_open_n(&t, text, at, SLUICE_FORMAT_CSV);
    EXPECT_REJECT(&t, 2, "meta: nested too deeply");
    EXPECT_RECORD(&t, 3, "http://a.example/2");
    ASSERT_STR_EQ(t.meta, "{\"b\":[[[]]]}");
    EXPECT_EOF(&t);
    tf_close(&t);
    free(text);
}

/*
 * A record spanning lines that outgrows the limit is rejected and skipped
 * to its end, so the next record is read as it should be.
 */
TEST(csv_multiline_record_too_long)
{
    size_t n = SL_LINE_MAX + 4096;
    char *text = malloc(n + 128);
    ASSERT_NOT_NULL(text);
    size_t at = 0, lines = 0;
    memcpy(text, "url,t\nhttp://a.example/1,\"", 26), at = 26;
    while (at < n) {
        memset(text + at, 'z', 99);
        text[at + 99] = '\n';
        at += 100;
        lines++;
    }
    memcpy(text + at, "\"\nhttp://a.example/2,b\n", 23), at += 23;
    tfeed t;
    tf_open_n(&t, text, at, SLUICE_FORMAT_AUTO);
    EXPECT_REJECT(&t, 2, "record longer than 1048576 bytes");
    EXPECT_RECORD(&t, lines + 3, "http://a.example/2");
    ASSERT_STR_EQ(t.meta, "{\"t\":\"b\"}");
    EXPECT_EOF(&t);
    ASSERT_LE(t.feed.reader.cap, SL_LINE_MAX + READER_SLACK);
    ASSERT_LE(t.feed.csv.record.cap, 2 * SL_LINE_MAX);
    tf_close(&t);
    free(text);
}

/* A too-long line inside a quoted field makes the record too long. */
TEST(csv_too_long_line_inside_quotes)
{
    size_t huge = 2 * SL_LINE_MAX;
    const char head[] = "url,t\nhttp://a.example/1,\"short\n";
    const char tail[] = "\nend\"\nhttp://a.example/2,b\n";
    char *text = malloc(sizeof head + huge + sizeof tail);
    ASSERT_NOT_NULL(text);
    size_t at = 0;
    memcpy(text, head, sizeof head - 1), at = sizeof head - 1;
    memset(text + at, 'z', huge), at += huge;
    memcpy(text + at, tail, sizeof tail - 1), at += sizeof tail - 1;
    tfeed t;
    tf_open_n(&t, text, at, SLUICE_FORMAT_CSV);
    EXPECT_REJECT(&t, 2, "record longer than 1048576 bytes");
    EXPECT_RECORD(&t, 5, "http://a.example/2");
    ASSERT_STR_EQ(t.meta, "{\"t\":\"b\"}");
    EXPECT_EOF(&t);
    tf_close(&t);
    free(text);
}

/* NUL bytes in CSV fields: the url keeps them for validation to refuse. */
TEST(csv_nul_bytes)
{
    const char text[] = "url,id\nhttp://a.example/\0x,i\nhttp://b.example/,j\n";
    tfeed t;
    tf_open_n(&t, text, sizeof text - 1, SLUICE_FORMAT_CSV);
    ASSERT_EQ(tf_next(&t), SL_FEED_RECORD);
    ASSERT_EQ(t.feed.lineno, 2);
    ASSERT_EQ(t.item.url_len, 19);
    ASSERT(memcmp(t.item.url, "http://a.example/\0x", 19) == 0);
    EXPECT_RECORD(&t, 3, "http://b.example/");
    ASSERT_STR_EQ(t.id, "j");
    EXPECT_EOF(&t);
    tf_close(&t);
}

TEST(csv_split_fields)
{
    sl_csv c;
    char why[128];
    ASSERT_EQ(sl_csv_init(&c), SLUICE_OK);
    ASSERT_EQ(sl_csv_split(&c, "", 0, why, sizeof why), 1);
    ASSERT_EQ(sl_csv_split(&c, ",", 1, why, sizeof why), 2);
    ASSERT_EQ(sl_csv_split(&c, "a,,\"\",", 6, why, sizeof why), 4);
    ASSERT_EQ(c.fields.len, 5); /* "a" and four NUL separators */

    /* Just over the limit on fields. */
    size_t n = 10000;
    char *many = malloc(n + 1);
    ASSERT_NOT_NULL(many);
    memset(many, ',', n);
    ASSERT_EQ(sl_csv_split(&c, many, n - 1, why, sizeof why), 10000);
    ASSERT_EQ(sl_csv_split(&c, many, n, why, sizeof why), -1);
    ASSERT_STR_CONTAINS(why, "more than 10000 fields");
    free(many);
    sl_csv_free(&c);
}

/* ---- Plain lines ---- */

/* The url is the line from its first non-blank; only blanks may follow. */
#define EXPECT_PLAIN(t, line, url_text)                                        \
    do {                                                                       \
        if (tf_next(t) != SL_FEED_RECORD)                                      \
            TEST_FAIL_("expected a record at line %d, got %s: %s",             \
                       (int)(line), status_name((t)->status), (t)->reason);    \
        ASSERT_EQ((t)->feed.lineno, line);                                     \
        size_t n_ = strlen(url_text);                                          \
        ASSERT_GE((t)->item.url_len, n_);                                      \
        ASSERT(memcmp((t)->item.url, url_text, n_) == 0);                      \
        for (size_t i_ = n_; i_ < (t)->item.url_len; i_++)                     \
            ASSERT((t)->item.url[i_] == ' ' || (t)->item.url[i_] == '\t');     \
    } while (0)

TEST(lines_happy_path)
{
    tfeed t;
    tf_open(&t,
            "http://a.example/1.jpg\n"
            "https://b.example/x/y?z=1#frag\n"
            "http://a.example/with space.jpg\n",
            SLUICE_FORMAT_AUTO);
    EXPECT_RECORD(&t, 1, "http://a.example/1.jpg");
    ASSERT_EQ(t.feed.format, SLUICE_FORMAT_LINES);
    ASSERT_NULL(t.id);
    ASSERT_NULL(t.key);
    ASSERT_NULL(t.meta);
    EXPECT_RECORD(&t, 2, "https://b.example/x/y?z=1#frag");
    EXPECT_RECORD(&t, 3, "http://a.example/with space.jpg");
    EXPECT_EOF(&t);
    tf_close(&t);
}

TEST(lines_comments_and_whitespace)
{
    tfeed t;
    tf_open(&t,
            "# a list of images\n"
            "http://a.example/1\n"
            "   # an indented comment\n"
            "\t#tabbed comment\n"
            "\n"
            "   http://a.example/2   \n"
            "\thttp://a.example/3\t\r\n"
            "  \t  \n"
            "#\n"
            "http://a.example/4#not-a-comment\n",
            SLUICE_FORMAT_AUTO);
    EXPECT_PLAIN(&t, 2, "http://a.example/1");
    EXPECT_PLAIN(&t, 6, "http://a.example/2");
    EXPECT_PLAIN(&t, 7, "http://a.example/3");
    EXPECT_PLAIN(&t, 10, "http://a.example/4#not-a-comment");
    EXPECT_EOF(&t);
    tf_close(&t);
}

/* Any line is a url to this format; validation decides. */
TEST(lines_take_anything_non_blank)
{
    const char text[] = "{\"url\":\"x\"}\n"
                        "url,id\n"
                        "a\0b\n"
                        "\xff\xfe\n";
    tfeed t;
    tf_open_n(&t, text, sizeof text - 1, SLUICE_FORMAT_LINES);
    EXPECT_RECORD(&t, 1, "{\"url\":\"x\"}");
    EXPECT_RECORD(&t, 2, "url,id");
    ASSERT_EQ(tf_next(&t), SL_FEED_RECORD);
    ASSERT_EQ(t.feed.lineno, 3);
    ASSERT_EQ(t.item.url_len, 3);
    ASSERT(memcmp(t.item.url, "a\0b", 3) == 0);
    EXPECT_RECORD(&t, 4, "\xff\xfe");
    EXPECT_EOF(&t);
    tf_close(&t);
}

/* ---- Allocation failures ---- */

#ifdef SLUICE_FAULT_INJECTION
/* Every allocation in sl_feed_init can fail, and is reported. */
TEST(feed_init_allocation_failures)
{
    int fd = open("/dev/null", O_RDONLY);
    ASSERT(fd >= 0);
    unsigned long nth;
    for (nth = 1; nth < 20; nth++) {
        sl_feed f;
        sl_fault_set(SL_FAULT_ALLOC, nth);
        sluice_err err = sl_feed_init(&f, fd, SLUICE_FORMAT_AUTO);
        bool hit = sl_fault_count(SL_FAULT_ALLOC) >= nth;
        sl_fault_set(SL_FAULT_ALLOC, 0);
        ASSERT_EQ(err, hit ? SLUICE_ENOMEM : SLUICE_OK);
        sl_feed_free(&f); /* safe after a failed init too */
        if (!hit)
            break;
    }
    ASSERT_GT(nth, 1);
    close(fd);
}

/*
 * Out of memory while parsing stops the feed with an error: it is not
 * the input's fault, so it must not be reported as a bad record (which
 * ingest would skip, losing the record).
 */
TEST(feed_allocation_failures_while_parsing)
{
    static const char *const texts[] = {
        "{\"url\":\"http://a.example/1\",\"id\":\"x\",\"key\":\"k\","
        "\"meta\":{\"a\":1}}\n",
        "{\"url\":\"http://a.example/1\",\"id\":12}\n",
        "url,id,t\n\"http://a.example/1\",\"x\ny\",t\n",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(texts); i++) {
        unsigned long nth;
        for (nth = 1; nth < 100; nth++) {
            tfeed t;
            tf_open(&t, texts[i], SLUICE_FORMAT_AUTO);
            sl_fault_set(SL_FAULT_ALLOC, nth);
            sl_feed_status st = tf_next(&t);
            bool hit = sl_fault_count(SL_FAULT_ALLOC) >= nth;
            sl_fault_set(SL_FAULT_ALLOC, 0);
            if (!hit) {
                /* Past the last allocation: the record comes through. */
                ASSERT_EQ(st, SL_FEED_RECORD);
                ASSERT_STR_EQ(t.url, "http://a.example/1");
                EXPECT_EOF(&t);
                tf_close(&t);
                break;
            }
            if (st != SL_FEED_ERROR)
                TEST_FAIL_("text %zu, allocation %lu failed: got %s (%s)", i,
                           nth, status_name(st), t.reason);
            ASSERT_STR_EQ(t.reason, "out of memory");
            tf_close(&t);
        }
        ASSERT_GT(nth, 1); /* some allocation was made, and failed */
        ASSERT_LT(nth, 100);
    }
}
#endif
