/*
 * sluice_ingest_fd(), end to end through the parser thread into the
 * queue: rejections reported with FILE:LINE and costing nothing else,
 * counts, batching, and what happens when reading or the database fails.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "fault.h"
#include "queue/queue.h"
#include "test.h"

typedef struct {
    int n;
    char lines[16][256];
    int progress_calls;
} rejects;

static void
on_reject(void *ctx, const char *file, uint64_t line, const char *reason)
{
    rejects *r = ctx;
    if (r->n < 16)
        snprintf(r->lines[r->n], sizeof r->lines[0], "%s:%llu: %s", file,
                 (unsigned long long)line, reason);
    r->n++;
}

static void
on_progress(void *ctx, const sluice_ingest_stats *so_far)
{
    rejects *r = ctx;
    (void)so_far;
    r->progress_calls++;
}

static sluice_queue *
open_queue(void)
{
    sluice_queue *q = NULL;
    char why[600];
    if (sluice_queue_open("q.db", NULL, &q, why, sizeof why) != SLUICE_OK)
        TEST_FAIL_("open: %s", why);
    return q;
}

static sluice_err
ingest_text(sluice_queue *q, const char *name, const char *text,
            sluice_format format, rejects *r, sluice_ingest_stats *st,
            unsigned batch)
{
    test_write_str(name, text);
    int fd = open(name, O_RDONLY);
    ASSERT(fd >= 0);
    sluice_ingest_opts opts = {.format = format,
                               .on_reject = on_reject,
                               .on_progress = on_progress,
                               .ctx = r,
                               .batch_size = batch};
    sluice_err err = sluice_ingest_fd(q, fd, name, &opts, st);
    close(fd);
    return err;
}

static sluice_counts
counts(sluice_queue *q)
{
    sluice_counts n;
    ASSERT_EQ(sluice_queue_counts(q, &n), SLUICE_OK);
    return n;
}

TEST(bad_lines_are_reported_and_cost_nothing_else)
{
    sluice_queue *q = open_queue();
    rejects r = {0};
    sluice_ingest_stats st = {0, 0, 0, 0};
    ASSERT_EQ(ingest_text(q, "feed.jsonl",
                          "{\"url\":\"http://a.example/1.jpg\"}\n"
                          "{\"url\":\"ftp://a.example/2.jpg\"}\n"
                          "not json at all\n"
                          "\n"
                          "{\"url\":\"http://a.example/3.jpg\",\"key\":\"/abs\"}\n"
                          "{\"id\":\"x\",\"url\":\"http://a.example/4.jpg\"}\n",
                          SLUICE_FORMAT_AUTO, &r, &st, 0),
              SLUICE_OK);
    ASSERT_EQ(st.added, 2);
    ASSERT_EQ(st.rejected, 3);
    ASSERT_EQ(r.n, 3);
    ASSERT_STR_CONTAINS(r.lines[0], "feed.jsonl:2: url: scheme");
    ASSERT_STR_CONTAINS(r.lines[1], "feed.jsonl:3: invalid JSON");
    ASSERT_STR_CONTAINS(r.lines[2], "feed.jsonl:5: key: absolute");
    ASSERT_EQ(counts(q).pending, 2);
    sluice_queue_close(q);
}

TEST(each_format_lands_the_same_records)
{
    sluice_queue *q = open_queue();
    rejects r = {0};
    sluice_ingest_stats st = {0, 0, 0, 0};
    ASSERT_EQ(ingest_text(q, "a.csv",
                          "id,url\r\n"
                          "p1,http://a.example/1.png\r\n"
                          "\"p2\",\"http://a.example/2.png\"\r\n",
                          SLUICE_FORMAT_AUTO, &r, &st, 0),
              SLUICE_OK);
    ASSERT_EQ(ingest_text(q, "b.txt",
                          "\xEF\xBB\xBF# partner feed\n"
                          "http://a.example/3.png\n",
                          SLUICE_FORMAT_AUTO, &r, &st, 0),
              SLUICE_OK);
    ASSERT_EQ(ingest_text(q, "c.jsonl",
                          "{\"id\":\"p1\",\"url\":\"http://a.example/1.png\"}",
                          SLUICE_FORMAT_JSONL, &r, &st, 0),
              SLUICE_OK);
    ASSERT_EQ(st.added, 3);
    ASSERT_EQ(st.unchanged, 1);
    ASSERT_EQ(r.n, 0);
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, "p2", &info), SLUICE_OK);
    ASSERT_STR_EQ(info.key, "p2.png");
    sl_record_info_clear(&info);
    ASSERT_EQ(sl_queue_get(q, "http://a.example/3.png", &info), SLUICE_OK);
    ASSERT_STR_EQ(info.key, "a.example/3.png");
    sl_record_info_clear(&info);
    sluice_queue_close(q);
}

TEST(small_batches_commit_everything_and_report_progress)
{
    sluice_queue *q = open_queue();
    rejects r = {0};
    sluice_ingest_stats st = {0, 0, 0, 0};
    char feed[64 * 100 + 1] = "";
    for (int i = 0; i < 100; i++) {
        char line[64];
        snprintf(line, sizeof line, "http://a.example/%d.jpg\n", i);
        strcat(feed, line);
    }
    ASSERT_EQ(ingest_text(q, "f.txt", feed, SLUICE_FORMAT_LINES, &r, &st, 7),
              SLUICE_OK);
    ASSERT_EQ(st.added, 100);
    ASSERT_EQ(counts(q).pending, 100);
    ASSERT_GE(r.progress_calls, 1);
    sluice_queue_close(q);
}

TEST(stats_add_up_across_files)
{
    sluice_queue *q = open_queue();
    rejects r = {0};
    sluice_ingest_stats st = {0, 0, 0, 0};
    ingest_text(q, "1.txt", "http://a.example/1\nhttp://a.example/2\n",
                SLUICE_FORMAT_AUTO, &r, &st, 0);
    ingest_text(q, "2.txt", "http://a.example/2\nbad\nhttp://a.example/3\n",
                SLUICE_FORMAT_AUTO, &r, &st, 0);
    ASSERT_EQ(st.added, 3);
    ASSERT_EQ(st.unchanged, 1);
    ASSERT_EQ(st.rejected, 1);
    ASSERT_STR_CONTAINS(r.lines[0], "2.txt:2:");
    sluice_queue_close(q);
}

TEST(a_pipe_is_read_to_the_end)
{
    sluice_queue *q = open_queue();
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        for (int i = 0; i < 5000; i++)
            dprintf(fds[1], "{\"id\":\"%d\",\"url\":\"http://a.example/%d\"}\n",
                    i, i);
        _exit(0);
    }
    close(fds[1]);
    sluice_ingest_stats st = {0, 0, 0, 0};
    ASSERT_EQ(sluice_ingest_fd(q, fds[0], "<stdin>", NULL, &st), SLUICE_OK);
    close(fds[0]);
    ASSERT_EQ(st.added, 5000);
    ASSERT_EQ(counts(q).total, 5000);
    sluice_queue_close(q);
}

TEST(a_read_error_stops_the_work_with_a_reason)
{
    sluice_queue *q = open_queue();
    ASSERT_EQ(mkdir("adir", 0700), 0);
    int fd = open("adir", O_RDONLY);
    ASSERT(fd >= 0);
    sluice_ingest_stats st = {0, 0, 0, 0};
    ASSERT_EQ(sluice_ingest_fd(q, fd, "adir", NULL, &st), SLUICE_EIO);
    ASSERT_STR_CONTAINS(sluice_queue_errmsg(q), "adir");
    ASSERT_STR_CONTAINS(sluice_queue_errmsg(q), "directory");
    close(fd);
    sluice_queue_close(q);
}

#ifdef SLUICE_FAULT_INJECTION /* sl_fault_set */
/*
 * A database failure in the middle: the batches committed before it stay,
 * the one in progress is rolled back, the counts say only what landed,
 * and ingesting again finishes the job.
 */
TEST(a_database_failure_keeps_committed_batches)
{
    sluice_queue *q = open_queue();
    rejects r = {0};
    sluice_ingest_stats st = {0, 0, 0, 0};
    char feed[64 * 1000 + 1] = "";
    size_t len = 0;
    for (int i = 0; i < 1000; i++)
        len += (size_t)snprintf(feed + len, sizeof feed - len,
                                "http://a.example/%d.jpg\n", i);
    /* Each batch of 100 is begin, upserts, commit: fail the 4th commit. */
    sl_fault_set(SL_FAULT_DB, 3 * 3 + 3);
    sluice_err err = ingest_text(q, "f.txt", feed, SLUICE_FORMAT_LINES, &r,
                                 &st, 100);
    sl_fault_set(SL_FAULT_DB, 0);
    ASSERT_EQ(err, SLUICE_EDB);
    sluice_counts n = counts(q);
    ASSERT_EQ(n.total, st.added);
    ASSERT_LT(n.total, 1000);
    ASSERT_GT(n.total, 0);
    memset(&st, 0, sizeof st);
    ASSERT_EQ(ingest_text(q, "f.txt", feed, SLUICE_FORMAT_LINES, &r, &st,
                          100),
              SLUICE_OK);
    ASSERT_EQ(counts(q).total, 1000);
    ASSERT_EQ(st.added + st.unchanged, 1000);
    sluice_queue_close(q);
}

/* Failing the Nth allocation anywhere must give a clean error, no crash
 * and no leak (the sanitizer build checks the latter). */
TEST_TIMEOUT(allocation_failures_are_clean, 300)
{
    char feed[4096] = "";
    size_t len = 0;
    for (int i = 0; i < 40; i++)
        len += (size_t)snprintf(feed + len, sizeof feed - len,
                                "{\"id\":\"%d\",\"url\":\"http://a.example/"
                                "%d.jpg\",\"meta\":{\"n\":%d}}\n",
                                i, i, i);
    test_write_str("f.jsonl", feed);
    sluice_queue *q = open_queue();
    int failures = 0;
    for (unsigned long nth = 1; nth < 400; nth += 3) {
        int fd = open("f.jsonl", O_RDONLY);
        sluice_ingest_stats st = {0, 0, 0, 0};
        sl_fault_set(SL_FAULT_ALLOC, nth);
        sluice_err err = sluice_ingest_fd(q, fd, "f.jsonl", NULL, &st);
        sl_fault_set(SL_FAULT_ALLOC, 0);
        close(fd);
        if (err != SLUICE_OK) {
            ASSERT_EQ(err, SLUICE_ENOMEM);
            ASSERT_STR_CONTAINS(sluice_queue_errmsg(q), "out of memory");
            failures++;
        }
    }
    ASSERT_GT(failures, 5);
    /* Whatever failed, a clean run lands everything. */
    int fd = open("f.jsonl", O_RDONLY);
    sluice_ingest_stats st = {0, 0, 0, 0};
    ASSERT_EQ(sluice_ingest_fd(q, fd, "f.jsonl", NULL, &st), SLUICE_OK);
    close(fd);
    ASSERT_EQ(counts(q).total, 40);
    sluice_queue_close(q);
}
#endif
