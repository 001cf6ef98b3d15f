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
    sluice_ingest_stats st = {0};
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
    sluice_ingest_stats st = {0};
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
    sluice_ingest_stats st = {0};
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
    sluice_ingest_stats st = {0};
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
    sluice_ingest_stats st = {0};
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
    sluice_ingest_stats st = {0};
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
    sluice_ingest_stats st = {0};
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
        sluice_ingest_stats st = {0};
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
    sluice_ingest_stats st = {0};
    ASSERT_EQ(sluice_ingest_fd(q, fd, "f.jsonl", NULL, &st), SLUICE_OK);
    close(fd);
    ASSERT_EQ(counts(q).total, 40);
    sluice_queue_close(q);
}
#endif

/* ---- Duplicate ids and shared keys within one ingest ---- */

typedef struct {
    int n;
    char lines[64][300];
} messages;

static void
on_message(void *ctx, const char *file, uint64_t line, const char *what)
{
    messages *m = ctx;
    if (m->n < 64)
        snprintf(m->lines[m->n], sizeof m->lines[0], "%s:%llu: %s", file,
                 (unsigned long long)line, what);
    m->n++;
}

/* Warnings and rejections in one list, in the order they came. */
static sluice_err
ingest_files(sluice_queue *q, const char *const *names, size_t n, bool strict,
             messages *m, sluice_ingest_stats *st)
{
    sluice_ingest_input in[4];
    ASSERT_LE(n, 4);
    for (size_t i = 0; i < n; i++) {
        in[i].fd = open(names[i], O_RDONLY);
        ASSERT(in[i].fd >= 0);
        in[i].name = names[i];
    }
    sluice_ingest_opts opts = {.on_reject = on_message,
                               .on_warning = on_message,
                               .strict = strict,
                               .ctx = m};
    sluice_err err = sluice_ingest_fds(q, in, n, &opts, st);
    for (size_t i = 0; i < n; i++)
        close(in[i].fd);
    return err;
}

static const char dup_feed[] = "id,url,key\n"
                               "sku-1,http://img.example/1.jpg,\n"
                               "sku-2,http://img.example/2.jpg,img/2.jpg\n"
                               "sku-3,http://img.example/3.jpg,\n"
                               "sku-1,http://img.example/1b.jpg,\n"
                               "sku-9,http://img.example/9.jpg,img/2.jpg\n"
                               "sku-10,http://img.example/10.jpg,sku-1.jpg\n"
                               "sku-2,http://img.example/2.jpg,img/2b.jpg\n"
                               "sku-11,http://img.example/11.jpg,img/2.jpg\n";

static char *
url_of(sluice_queue *q, const char *id)
{
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, id, &info), SLUICE_OK);
    char *url = strdup(info.url);
    sl_record_info_clear(&info);
    return url;
}

/*
 * A duplicate id: the last wins, said with both lines. A key two records
 * name: said with the other's line and id. A record whose id came again
 * with another key gives its old key up: the next record naming that key
 * is said to share it with whoever still names it.
 */
TEST(duplicate_ids_and_shared_keys_are_counted_and_said)
{
    test_write_str("feed.csv", dup_feed);
    sluice_queue *q = open_queue();
    messages m = {0};
    sluice_ingest_stats st = {0};
    const char *names[] = {"feed.csv"};
    ASSERT_EQ(ingest_files(q, names, 1, false, &m, &st), SLUICE_OK);
    ASSERT_EQ(st.rejected, 0);
    ASSERT_EQ(st.duplicate_ids, 2);
    ASSERT_EQ(st.shared_keys, 3);
    ASSERT_EQ(m.n, 5);
    ASSERT_STR_EQ(m.lines[0],
                  "feed.csv:5: id sku-1 also on line 2: the last wins");
    ASSERT_STR_EQ(m.lines[1],
                  "feed.csv:6: key img/2.jpg also named by line 3 (id sku-2)");
    ASSERT_STR_EQ(m.lines[2], "feed.csv:7: key sku-1.jpg also named by line "
                              "5 (id sku-1)");
    ASSERT_STR_EQ(m.lines[3],
                  "feed.csv:8: id sku-2 also on line 3: the last wins");
    ASSERT_STR_EQ(m.lines[4],
                  "feed.csv:9: key img/2.jpg also named by line 6 (id sku-9)");
    char *url = url_of(q, "sku-1");
    ASSERT_STR_EQ(url, "http://img.example/1b.jpg");
    free(url);
    ASSERT_EQ(counts(q).total, 6);
    sluice_queue_close(q);
}

/* With strict, the later record is rejected and the earlier stays. */
TEST(strict_rejects_the_later_record)
{
    test_write_str("feed.csv", dup_feed);
    sluice_queue *q = open_queue();
    messages m = {0};
    sluice_ingest_stats st = {0};
    const char *names[] = {"feed.csv"};
    ASSERT_EQ(ingest_files(q, names, 1, true, &m, &st), SLUICE_OK);
    ASSERT_EQ(st.added, 3);
    ASSERT_EQ(st.rejected, 5);
    ASSERT_EQ(st.duplicate_ids, 2);
    ASSERT_EQ(st.shared_keys, 3);
    ASSERT_EQ(m.n, 5);
    ASSERT_STR_EQ(m.lines[0],
                  "feed.csv:5: id sku-1 also on line 2; rejected (--strict)");
    ASSERT_STR_EQ(m.lines[2], "feed.csv:7: key sku-1.jpg also named by line "
                              "2 (id sku-1); rejected (--strict)");
    ASSERT_STR_EQ(m.lines[4], "feed.csv:9: key img/2.jpg also named by line "
                              "3 (id sku-2); rejected (--strict)");
    char *url = url_of(q, "sku-1");
    ASSERT_STR_EQ(url, "http://img.example/1.jpg");
    free(url);
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, "sku-9", &info), SLUICE_ENOTFOUND);
    ASSERT_EQ(counts(q).total, 3);
    sluice_queue_close(q);

    /* Both at once: one rejection saying both. */
    test_write_str("both.csv", "id,url,key\n"
                               "a,http://img.example/a.jpg,k\n"
                               "b,http://img.example/b.jpg,j\n"
                               "b,http://img.example/b.jpg,k\n");
    q = open_queue();
    memset(&m, 0, sizeof m);
    memset(&st, 0, sizeof st);
    const char *both[] = {"both.csv"};
    ASSERT_EQ(ingest_files(q, both, 1, true, &m, &st), SLUICE_OK);
    ASSERT_EQ(m.n, 1);
    ASSERT_STR_EQ(m.lines[0], "both.csv:4: id b also on line 3; key k also "
                              "named by line 2 (id a); rejected (--strict)");
    ASSERT_EQ(st.duplicate_ids, 1);
    ASSERT_EQ(st.shared_keys, 1);
    ASSERT_EQ(st.rejected, 1);
    sluice_queue_close(q);
}

/* One ingest of several inputs: found across them, said with the file. */
TEST(duplicates_are_found_across_the_inputs_of_one_ingest)
{
    test_write_str("a.csv", "id,url\nx,http://img.example/x.jpg\n"
                            "y,http://img.example/y.jpg\n");
    test_write_str("b.jsonl", "{\"id\":\"y\",\"url\":\"http://img.example/"
                              "y2.jpg\"}\n{\"id\":\"z\",\"url\":\"http://"
                              "img.example/z.jpg\",\"key\":\"x.jpg\"}\n");
    sluice_queue *q = open_queue();
    messages m = {0};
    sluice_ingest_stats st = {0};
    const char *names[] = {"a.csv", "b.jsonl"};
    ASSERT_EQ(ingest_files(q, names, 2, false, &m, &st), SLUICE_OK);
    ASSERT_EQ(m.n, 2);
    ASSERT_STR_EQ(m.lines[0],
                  "b.jsonl:1: id y also at a.csv:3: the last wins");
    ASSERT_STR_EQ(m.lines[1],
                  "b.jsonl:2: key x.jpg also named by a.csv:2 (id x)");
    /* A second ingest is another: nothing repeats within it. */
    memset(&m, 0, sizeof m);
    memset(&st, 0, sizeof st);
    const char *again[] = {"a.csv"};
    ASSERT_EQ(ingest_files(q, again, 1, false, &m, &st), SLUICE_OK);
    ASSERT_EQ(m.n, 0);
    ASSERT_EQ(st.duplicate_ids + st.shared_keys, 0);
    sluice_queue_close(q);
}

/*
 * The model the checker is held to, on random feeds: ids from a small
 * pool, keys derived from them or named from a smaller one, clean runs of
 * records (checked 64 at once) between repeats (one by one). Each
 * record's verdict and message must be the model's, in order.
 */
#define MODEL_N 3000

typedef struct {
    int id, key; /* pool numbers; key -1: derived from the id */
} model_rec;

/* A key's namers: [0] is the one cited. */
typedef struct {
    int n;
    int id[MODEL_N];
    int line[MODEL_N];
} namers;

static uint64_t model_rng = 88172645463325252ull;

static unsigned
model_rand(void)
{
    model_rng ^= model_rng << 13;
    model_rng ^= model_rng >> 7;
    model_rng ^= model_rng << 17;
    return (unsigned)(model_rng >> 11);
}

/* Keys as text: "k<N>" named, "i<N>.jpg" derived from id i<N>. The
 * model numbers them: named 0..999, derived 1000 + id. */
static int
key_no(const model_rec *r)
{
    return r->key >= 0 ? r->key : 1000 + r->id;
}

static void
key_text(char *dst, size_t size, int key)
{
    if (key >= 1000)
        snprintf(dst, size, "i%d.jpg", key - 1000);
    else
        snprintf(dst, size, "k%d", key);
}

static void
namer_remove(namers *k, int id)
{
    int at = -1;
    for (int i = 0; i < k->n; i++)
        if (k->id[i] == id)
            at = i;
    if (at < 0)
        return;
    if (at == 0 && k->n > 1) {
        /* The earliest of the others is cited next. */
        int best = 1;
        for (int i = 2; i < k->n; i++)
            if (k->line[i] < k->line[best])
                best = i;
        k->id[0] = k->id[best];
        k->line[0] = k->line[best];
        at = best;
    }
    k->id[at] = k->id[k->n - 1];
    k->line[at] = k->line[k->n - 1];
    k->n--;
}

/* Each message must be the next the model wants. */
typedef struct {
    char (*want)[300];
    int n_want, n, bad;
} model_cmp;

static void
model_message(void *ctx, const char *file, uint64_t line, const char *what)
{
    model_cmp *c = ctx;
    char got[300];
    snprintf(got, sizeof got, "%s:%llu: %s", file, (unsigned long long)line,
             what);
    if (c->n >= c->n_want || strcmp(got, c->want[c->n]) != 0) {
        if (!c->bad++)
            fprintf(stderr, "message %d: got \"%s\", want \"%s\"\n", c->n,
                    got, c->n < c->n_want ? c->want[c->n] : "(none)");
    }
    c->n++;
}

static void
model_run(bool strict)
{
    static model_rec recs[MODEL_N];
    static namers keys[1000 + 3000];
    static int last_line[3000], last_key[3000];
    char (*want)[300] = calloc(MODEL_N, 300);
    ASSERT_NOT_NULL(want);
    memset(keys, 0, sizeof keys);
    memset(last_line, 0, sizeof last_line);
    int n_want = 0, dups = 0, shared = 0;

    sl_buf feed;
    sl_buf_init(&feed);
    for (int i = 0; i < MODEL_N; i++) {
        /* Clean stretches (new ids, derived keys), busy ones (ids and
         * keys from small pools), and new ids now and then naming a key
         * from the pool (a shared key in a batch of new ids). */
        switch ((i / 300) % 3) {
        case 0:
            recs[i].id = 1000 + i % 1000;
            recs[i].key = -1;
            break;
        case 1:
            recs[i].id = (int)(model_rand() % 1000);
            recs[i].key = model_rand() % 3 ? -1 : (int)(model_rand() % 40);
            break;
        default:
            recs[i].id = 2000 + i % 1000;
            recs[i].key = model_rand() % 30 ? -1 : (int)(model_rand() % 40);
        }
        if (recs[i].key >= 0)
            ASSERT_EQ(sl_buf_printf(&feed,
                                    "{\"id\":\"i%d\",\"url\":\"http://"
                                    "img.example/%d.jpg\",\"key\":\"k%d\"}\n",
                                    recs[i].id, i, recs[i].key),
                      0);
        else
            ASSERT_EQ(sl_buf_printf(&feed,
                                    "{\"id\":\"i%d\",\"url\":\"http://"
                                    "img.example/%d.jpg\"}\n",
                                    recs[i].id, i),
                      0);
    }
    for (int i = 0; i < MODEL_N; i++) {
        int line = i + 1, id = recs[i].id, key = key_no(&recs[i]);
        namers *k = &keys[key];
        bool dup = last_line[id] != 0;
        bool first = k->n > 0 && k->id[0] == id;
        bool share = k->n > 0 && !first;
        char kt[32], part_id[100] = "", part_key[150] = "";
        key_text(kt, sizeof kt, key);
        if (dup)
            snprintf(part_id, sizeof part_id, "id i%d also on line %d", id,
                     last_line[id]);
        if (share)
            snprintf(part_key, sizeof part_key,
                     "key %s also named by line %d (id i%d)", kt, k->line[0],
                     k->id[0]);
        dups += dup;
        shared += share;
        if (strict && (dup || share)) {
            snprintf(want[n_want++], 300, "f.jsonl:%d: %s%s%s; rejected "
                     "(--strict)", line, part_id, dup && share ? "; " : "",
                     part_key);
            continue;
        }
        if (dup)
            snprintf(want[n_want++], 300, "f.jsonl:%d: %s: the last wins",
                     line, part_id);
        if (share)
            snprintf(want[n_want++], 300, "f.jsonl:%d: %s", line, part_key);
        if (dup && last_key[id] != key)
            namer_remove(&keys[last_key[id]], id);
        last_line[id] = line;
        last_key[id] = key;
        bool found = false;
        for (int j = 0; j < k->n; j++) {
            if (k->id[j] == id) {
                k->line[j] = line;
                found = true;
            }
        }
        if (!found) {
            k->id[k->n] = id;
            k->line[k->n++] = line;
        }
    }

    test_write_str("f.jsonl", feed.data);
    sl_buf_free(&feed);
    sluice_queue *q = open_queue();
    sluice_ingest_stats st = {0};
    model_cmp c = {want, n_want, 0, 0};
    int fd = open("f.jsonl", O_RDONLY);
    ASSERT(fd >= 0);
    sluice_ingest_opts opts = {.on_reject = model_message,
                               .on_warning = model_message,
                               .strict = strict,
                               .ctx = &c};
    ASSERT_EQ(sluice_ingest_fd(q, fd, "f.jsonl", &opts, &st), SLUICE_OK);
    close(fd);
    ASSERT_EQ(c.bad, 0);
    ASSERT_EQ(c.n, n_want);
    ASSERT_EQ(st.duplicate_ids, dups);
    ASSERT_EQ(st.shared_keys, shared);
    ASSERT_GT(dups, 500);
    ASSERT_GT(shared, 200);
    sluice_queue_close(q);
    free(want);
}

TEST(duplicates_and_shared_keys_follow_the_model)
{
    model_run(false);
}

TEST(strict_follows_the_model)
{
    model_run(true);
}
