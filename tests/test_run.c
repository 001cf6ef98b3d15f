/*
 * sluice_run end to end, through the public API only (sluice/sluice.h),
 * against the test origin (tests/origin/), which each case starts as a
 * child process: the cap holds and is used, every stored byte is the
 * origin's, failures end dead or done as the policy says, Retry-After
 * pauses the origin without using an attempt, a stop leaves nothing in
 * flight, and the callbacks report what happened.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include <sluice/sluice.h>

#include "body.h"
#include "test.h"

/* Each case is meant to take a few seconds; this bound is for a machine
 * that is very busy with other work. */
#define CASE_TIMEOUT_S 60

/* ------------------------------------------------------------ helpers */

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static double
mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ the origin */

typedef struct {
    pid_t pid;
    int port;
    char base[64]; /* http://127.0.0.1:PORT */
} origin;

/*
 * Start sluice-origin ($ORIGIN_BIN) on an ephemeral loopback port with
 * the options in opts (NULL-terminated) and wait for its port file. Skips
 * the case, with the reason, when the origin cannot be started.
 */
static void
origin_start(origin *o, const char *const *opts)
{
    const char *bin = getenv("ORIGIN_BIN");
    if (!bin || !*bin)
        SKIP("ORIGIN_BIN is not set (ctest names the sluice-origin "
             "binary there)");
    if (access(bin, X_OK) != 0)
        SKIP("cannot run the test origin %s: %s", bin, strerror(errno));
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        TEST_FAIL_("curl_global_init failed");

    char *argv[32];
    size_t argc = 0;
    argv[argc++] = (char *)bin;
    argv[argc++] = "--quiet";
    argv[argc++] = "--port-file";
    argv[argc++] = "origin.port";
    for (; opts && *opts; opts++) {
        ASSERT_LT(argc, 31);
        argv[argc++] = (char *)*opts;
    }
    argv[argc] = NULL;
    unlink("origin.port");
    fflush(NULL);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int fd = open("origin.log", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0)
            dup2(fd, STDERR_FILENO);
        execv(bin, argv);
        _exit(127);
    }
    o->pid = pid;
    /* The port file appears atomically (temp file + rename). */
    for (int tries = 0; tries < 500; tries++) {
        size_t len = 0;
        char *text = test_read_file("origin.port", &len);
        if (text && len > 0) {
            char *end;
            errno = 0;
            long port = strtol(text, &end, 10);
            int ok = errno == 0 && end != text && port > 0 && port < 65536;
            free(text);
            if (!ok)
                TEST_FAIL_("origin.port does not hold a port");
            o->port = (int)port;
            snprintf(o->base, sizeof o->base, "http://127.0.0.1:%d", o->port);
            return;
        }
        free(text);
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            char *log = test_read_file("origin.log", NULL);
            fprintf(stderr, "origin.log: %s\n", log ? log : "");
            free(log);
            SKIP("the test origin %s %s %d before listening", bin,
                 WIFEXITED(status) ? "exited with status"
                                   : "was killed by signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        }
        sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    SKIP("the test origin %s wrote no port file within 10 s", bin);
}

/* Stop the origin (SIGTERM); it must exit 0, as documented. */
static void
origin_stop(origin *o)
{
    int status = 0;
    ASSERT_EQ(kill(o->pid, SIGTERM), 0);
    while (waitpid(o->pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char *log = test_read_file("origin.log", NULL);
        TEST_FAIL_("the origin ended with wait status %d: %s", status,
                   log ? log : "");
    }
    o->pid = 0;
}

typedef struct {
    char *data;
    size_t len;
} text_buf;

static size_t
collect(char *p, size_t size, size_t n, void *ud)
{
    text_buf *b = ud;
    char *bigger = realloc(b->data, b->len + size * n + 1);
    if (!bigger)
        return 0;
    memcpy(bigger + b->len, p, size * n);
    b->len += size * n;
    bigger[b->len] = '\0';
    b->data = bigger;
    return size * n;
}

/* GET one of the origin's own routes (/_stats, /_log); the caller frees
 * the NUL-terminated body. */
static char *
origin_get(const origin *o, const char *path)
{
    char url[128];
    snprintf(url, sizeof url, "%s%s", o->base, path);
    text_buf b = {calloc(1, 1), 0};
    ASSERT_NOT_NULL(b.data);
    CURL *c = curl_easy_init();
    ASSERT_NOT_NULL(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK)
        TEST_FAIL_("GET %s: %s", url, curl_easy_strerror(rc));
    ASSERT_EQ(code, 200);
    return b.data;
}

/* A number from /_stats's JSON ("field":N); fails when it is absent. */
static uint64_t
json_u64(const char *json, const char *field)
{
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", field);
    const char *at = strstr(json, key);
    if (!at)
        TEST_FAIL_("no %s in %s", key, json);
    at += strlen(key);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(at, &end, 10);
    if (errno != 0 || end == at)
        TEST_FAIL_("%s is not a number in %s", key, json);
    return (uint64_t)v;
}

/* The origin's counters that the cases look at. */
typedef struct {
    uint64_t requests, in_flight, peak, violations;
    uint64_t s0; /* the client left before any head was sent */
    uint64_t s200, s404, s429, s500, s503;
} origin_stats;

static uint64_t
status_count(const char *json, const char *code)
{
    /* "status":{"200":2,"503":1}: a code it never sent is absent. */
    const char *status = strstr(json, "\"status\":{");
    if (!status)
        TEST_FAIL_("no status object in %s", json);
    const char *close = strchr(status, '}');
    char key[16];
    snprintf(key, sizeof key, "\"%s\":", code);
    const char *at = strstr(status, key);
    if (!at || at > close)
        return 0;
    return json_u64(at, code);
}

static origin_stats
origin_stats_get(const origin *o)
{
    char *json = origin_get(o, "/_stats");
    origin_stats s = {
        .requests = json_u64(json, "requests"),
        .in_flight = json_u64(json, "in_flight"),
        .peak = json_u64(json, "peak_in_flight"),
        .violations = json_u64(json, "violations"),
        .s0 = status_count(json, "0"),
        .s200 = status_count(json, "200"),
        .s404 = status_count(json, "404"),
        .s429 = status_count(json, "429"),
        .s500 = status_count(json, "500"),
        .s503 = status_count(json, "503"),
    };
    free(json);
    return s;
}

/* One line of /_log: n attempt start_ms end_ms latency_ms status bytes
 * path (times in ms on the origin's monotonic clock). */
typedef struct {
    uint64_t n, attempt, start_ms, end_ms, latency_ms;
    int status;
    char path[256];
} log_line;

/* The origin's log, in order of completion; the caller frees *out. */
static size_t
origin_log(const origin *o, log_line **out)
{
    char *text = origin_get(o, "/_log");
    size_t n = 0, cap = 0;
    log_line *lines = NULL;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            lines = realloc(lines, cap * sizeof *lines);
            ASSERT_NOT_NULL(lines);
        }
        log_line *l = &lines[n];
        if (sscanf(line,
                   "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
                   " %d %*s %255s",
                   &l->n, &l->attempt, &l->start_ms, &l->end_ms, &l->latency_ms,
                   &l->status, l->path) != 7)
            TEST_FAIL_("a /_log line not as documented: \"%s\"", line);
        n++;
        if (!nl)
            break;
        line = nl + 1;
    }
    free(text);
    *out = lines;
    return n;
}

/* ------------------------------------------------------------ sluice */

static sluice_queue *
queue_open(void)
{
    char err[512] = "";
    sluice_queue *q = NULL;
    sluice_err rc = sluice_queue_open("sluice.db", NULL, &q, err, sizeof err);
    if (rc != SLUICE_OK)
        TEST_FAIL_("sluice_queue_open: %s: %s", sluice_errname(rc), err);
    ASSERT_NOT_NULL(q);
    return q;
}

/* A feed line: record sku-N for the origin's /img/N.jpg[?QUERY]. Its
 * object key is sku-N.jpg (the id plus the URL path's extension). */
static void
feed_line(FILE *f, const origin *o, unsigned n, const char *query)
{
    fprintf(f, "{\"id\":\"sku-%u\",\"url\":\"%s/img/%u.jpg%s%s\"}\n", n,
            o->base, n, query && *query ? "?" : "", query ? query : "");
}

static void
reject_fail(void *ctx, const char *file, uint64_t line, const char *reason)
{
    (void)ctx;
    TEST_FAIL_("%s:%" PRIu64 ": rejected: %s", file, line, reason);
}

/* Ingest the JSONL file at path: every line must be added. */
static void
ingest(sluice_queue *q, const char *path, uint64_t want_added)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        TEST_FAIL_("open %s: %s", path, strerror(errno));
    sluice_ingest_opts io = {
        .format = SLUICE_FORMAT_JSONL,
        .on_reject = reject_fail,
        .allow_private = 1, /* the origin is on loopback */
    };
    sluice_ingest_stats st = {0};
    sluice_err rc = sluice_ingest_fd(q, fd, path, &io, &st);
    close(fd);
    if (rc != SLUICE_OK)
        TEST_FAIL_("sluice_ingest_fd: %s: %s", sluice_errname(rc),
                   sluice_queue_errmsg(q));
    ASSERT_EQ(st.added, want_added);
    ASSERT_EQ(st.rejected, 0);
}

static FILE *
feed_open(void)
{
    FILE *f = fopen("feed.jsonl", "w");
    if (!f)
        TEST_FAIL_("cannot write feed.jsonl: %s", strerror(errno));
    return f;
}

static void
feed_close(FILE *f)
{
    if (fclose(f) != 0)
        TEST_FAIL_("cannot write feed.jsonl: %s", strerror(errno));
}

/* Run options for these cases: the store in the case's directory,
 * loopback allowed, short backoffs so retries come quickly. */
static void
run_opts(sluice_run_opts *o, unsigned max_concurrency)
{
    sluice_run_opts_init(o);
    o->store = "out";
    o->max_concurrency = max_concurrency;
    o->allow_private = 1;
    o->backoff_base_s = 0.01;
    o->backoff_cap_s = 0.1;
    o->timeout_s = 30;
    o->stall_timeout_s = 10;
}

static sluice_err
run(sluice_queue *q, const sluice_run_opts *o, sluice_run_stats *st)
{
    char err[512] = "";
    memset(st, 0, sizeof *st);
    sluice_err rc = sluice_run(q, o, st, err, sizeof err);
    if (rc != SLUICE_OK && rc != SLUICE_EINTERRUPTED)
        TEST_FAIL_("sluice_run: %s: %s", sluice_errname(rc), err);
    return rc;
}

static sluice_counts
counts(sluice_queue *q)
{
    sluice_counts c;
    sluice_err rc = sluice_queue_counts(q, &c);
    if (rc != SLUICE_OK)
        TEST_FAIL_("sluice_queue_counts: %s: %s", sluice_errname(rc),
                   sluice_queue_errmsg(q));
    ASSERT_EQ(c.pending + c.in_flight + c.retrying + c.done + c.dead, c.total);
    return c;
}

/* The stored object sku-N.jpg is byte for byte the origin's object n. */
static void
verify_object(const struct sl_origin_size *spec, unsigned n)
{
    char path[64];
    snprintf(path, sizeof path, "out/sku-%u.jpg", n);
    size_t len = 0;
    unsigned char *got = (unsigned char *)test_read_file(path, &len);
    if (!got)
        TEST_FAIL_("%s is missing: %s", path, strerror(errno));
    uint64_t want_len = sl_origin_body_size(spec, n);
    ASSERT_EQ(len, want_len);
    unsigned char *want = malloc(want_len ? want_len : 1);
    ASSERT_NOT_NULL(want);
    sl_origin_body_fill(n, 0, want, want_len);
    for (size_t i = 0; i < len; i++)
        if (got[i] != want[i])
            TEST_FAIL_("%s differs from object %u at byte %zu: %u vs %u", path,
                       n, i, got[i], want[i]);
    free(want);
    free(got);
}

/* How many objects (sku-*.jpg) the store holds. */
static uint64_t
stored_objects(void)
{
    DIR *d = opendir("out");
    if (!d)
        return 0;
    uint64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "sku-", 4) == 0 && len > 8 &&
            strcmp(e->d_name + len - 4, ".jpg") == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* Collects the dead-letter queue. */
#define MAX_DEAD 64

typedef struct {
    size_t n;
    struct {
        char *id, *url, *error_class;
        int http_status;
        unsigned attempts;
    } rec[MAX_DEAD];
} dead_list;

static int
collect_dead(void *ctx, const sluice_dead_record *rec)
{
    dead_list *l = ctx;
    ASSERT_LT(l->n, MAX_DEAD);
    l->rec[l->n].id = strdup(rec->id);
    l->rec[l->n].url = strdup(rec->url);
    l->rec[l->n].error_class =
        strdup(rec->error_class ? rec->error_class : "(null)");
    l->rec[l->n].http_status = rec->http_status;
    l->rec[l->n].attempts = rec->attempts;
    l->n++;
    return 0;
}

static void
dead_list_free(dead_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->rec[i].id);
        free(l->rec[i].url);
        free(l->rec[i].error_class);
    }
    l->n = 0;
}

static void
dlq_list(sluice_queue *q, const char *error_class, dead_list *out)
{
    sluice_dlq_filter filter = {error_class};
    memset(out, 0, sizeof *out);
    sluice_err rc = sluice_dlq_list(q, &filter, collect_dead, out);
    if (rc != SLUICE_OK)
        TEST_FAIL_("sluice_dlq_list: %s: %s", sluice_errname(rc),
                   sluice_queue_errmsg(q));
}

/* ------------------------------------------------------------ the cases */

/*
 * A capped run: a few hundred records, an origin that enforces a cap of
 * N and answers after 5..30 ms, max_concurrency N. The run ends, every
 * record is done, the origin never saw more than N at once (a request
 * over its limit would have been answered 503 and counted as a
 * violation), each record was fetched once, and every object is the
 * origin's, byte for byte.
 */
TEST_TIMEOUT(capped_run, CASE_TIMEOUT_S)
{
    enum { N = 6, RECORDS = 300 };
    const char *size_spec = "uniform:1000:20000";
    struct sl_origin_size spec;
    ASSERT_EQ(sl_origin_size_parse(size_spec, &spec), 0);
    char limit[16];
    snprintf(limit, sizeof limit, "%d", N);
    const char *opts[] = {"--limit", limit,     "--latency", "uniform:5:30",
                          "--size",  size_spec, NULL};
    origin o;
    origin_start(&o, opts);

    FILE *f = feed_open();
    uint64_t want_bytes = 0;
    for (unsigned i = 0; i < RECORDS; i++) {
        feed_line(f, &o, i, NULL);
        want_bytes += sl_origin_body_size(&spec, i);
    }
    feed_close(f);
    sluice_queue *q = queue_open();
    ingest(q, "feed.jsonl", RECORDS);

    sluice_run_opts ro;
    run_opts(&ro, N);
    sluice_run_stats st;
    ASSERT_EQ(run(q, &ro, &st), SLUICE_OK);

    /* The origin's view first: the clearest message for a breach. */
    origin_stats os = origin_stats_get(&o);
    ASSERT_EQ(os.violations, 0);
    ASSERT_LE(os.peak, N);
    ASSERT_EQ(os.s503, 0);
    ASSERT_EQ(os.requests, RECORDS);
    ASSERT_EQ(os.s200, RECORDS);

    ASSERT_EQ(st.done, RECORDS);
    ASSERT_EQ(st.dead, 0);
    ASSERT_EQ(st.retried, 0);
    ASSERT_EQ(st.throttled, 0);
    ASSERT_EQ(st.requests, RECORDS);
    ASSERT_EQ(st.bytes, want_bytes);

    sluice_counts c = counts(q);
    ASSERT_EQ(c.total, RECORDS);
    ASSERT_EQ(c.done, RECORDS);
    ASSERT_EQ(c.pending, 0);
    ASSERT_EQ(c.in_flight, 0);
    ASSERT_EQ(c.retrying, 0);
    ASSERT_EQ(c.dead, 0);

    for (unsigned i = 0; i < RECORDS; i++)
        verify_object(&spec, i);
    ASSERT_EQ(stored_objects(), RECORDS);
    sluice_queue_close(q);
    origin_stop(&o);
}

/*
 * The cap is used: with plenty of work and 20..60 ms latencies, the
 * origin sees exactly N requests at once at its peak, and on average
 * at least 0.8 N while there is work to hand out. A client that took N
 * records at a time and waited for the slowest would average about
 * N * 40/60 here (a trial of such a change to the limiter: 5.6 of 8);
 * one that starts the next transfer as soon as one ends stays near N
 * (7.0 to 8.0 of 8 on a 2-core machine busy with other work).
 */
TEST_TIMEOUT(cap_is_used, CASE_TIMEOUT_S)
{
    enum { N = 8, RECORDS = 240 };
    char limit[16];
    snprintf(limit, sizeof limit, "%d", N);
    const char *opts[] = {"--limit", limit,        "--latency", "uniform:20:60",
                          "--size",  "fixed:2000", NULL};
    origin o;
    origin_start(&o, opts);

    FILE *f = feed_open();
    for (unsigned i = 0; i < RECORDS; i++)
        feed_line(f, &o, i, NULL);
    feed_close(f);
    sluice_queue *q = queue_open();
    ingest(q, "feed.jsonl", RECORDS);

    sluice_run_opts ro;
    run_opts(&ro, N);
    sluice_run_stats st;
    ASSERT_EQ(run(q, &ro, &st), SLUICE_OK);
    ASSERT_EQ(st.done, RECORDS);

    origin_stats os = origin_stats_get(&o);
    ASSERT_EQ(os.violations, 0);
    ASSERT_EQ(os.peak, N);

    /* The mean number in flight at the origin, from the first request's
     * start to the last one's: the tail, when no work is left to hand
     * out, is left out. */
    log_line *log;
    size_t n = origin_log(&o, &log);
    ASSERT_EQ(n, RECORDS);
    uint64_t t0 = UINT64_MAX, t1 = 0, busy = 0;
    for (size_t i = 0; i < n; i++) {
        t0 = log[i].start_ms < t0 ? log[i].start_ms : t0;
        t1 = log[i].start_ms > t1 ? log[i].start_ms : t1;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t end = log[i].end_ms < t1 ? log[i].end_ms : t1;
        busy += end > log[i].start_ms ? end - log[i].start_ms : 0;
    }
    free(log);
    ASSERT_GT(t1, t0);
    double mean = (double)busy / (double)(t1 - t0);
    fprintf(stderr, "mean in flight %.2f of %d over %" PRIu64 " ms\n", mean, N,
            t1 - t0);
    /* In hundredths, to print both sides. */
    ASSERT_GE((long long)(mean * 100), (long long)(N * 80));
    sluice_queue_close(q);
    origin_stop(&o);
}

/*
 * Failures: 404s end dead at once (class "http", status 404, one
 * attempt) and the run still ends SLUICE_OK with stats.dead counting
 * them; records that fail twice with 500 end done after two retries,
 * byte for byte; nothing is stored for a dead record.
 */
TEST_TIMEOUT(failures, CASE_TIMEOUT_S)
{
    enum { N = 4, GOOD = 10, GONE = 5, FLAKY = 5 };
    enum { RECORDS = GOOD + GONE + FLAKY };
    const char *opts[] = {"--latency", "fixed:2", "--size", "fixed:3000", NULL};
    struct sl_origin_size spec;
    ASSERT_EQ(sl_origin_size_parse("fixed:3000", &spec), 0);
    origin o;
    origin_start(&o, opts);

    /* sku-0..9 fine, sku-10..14 gone, sku-15..19 flaky; interleaved. */
    FILE *f = feed_open();
    for (unsigned i = 0; i < GOOD; i++) {
        feed_line(f, &o, i, NULL);
        if (i < GONE)
            feed_line(f, &o, GOOD + i, "fault=status&code=404");
        if (i < FLAKY)
            feed_line(f, &o, GOOD + GONE + i, "fault=flaky&fails=2&code=500");
    }
    feed_close(f);
    sluice_queue *q = queue_open();
    ingest(q, "feed.jsonl", RECORDS);

    sluice_run_opts ro;
    run_opts(&ro, N);
    sluice_run_stats st;
    ASSERT_EQ(run(q, &ro, &st), SLUICE_OK);
    ASSERT_EQ(st.done, GOOD + FLAKY);
    ASSERT_EQ(st.dead, GONE);
    ASSERT_EQ(st.retried, 2 * FLAKY);
    ASSERT_EQ(st.throttled, 0);
    ASSERT_EQ(st.requests, GOOD + GONE + 3 * FLAKY);

    sluice_counts c = counts(q);
    ASSERT_EQ(c.done, GOOD + FLAKY);
    ASSERT_EQ(c.dead, GONE);
    ASSERT_EQ(c.pending + c.in_flight + c.retrying, 0);

    dead_list dl;
    dlq_list(q, NULL, &dl);
    ASSERT_EQ(dl.n, GONE);
    bool seen[GONE] = {false};
    for (size_t i = 0; i < dl.n; i++) {
        unsigned id;
        char want_url[160];
        if (sscanf(dl.rec[i].id, "sku-%u", &id) != 1 || id < GOOD ||
            id >= GOOD + GONE)
            TEST_FAIL_("unexpected dead record %s", dl.rec[i].id);
        ASSERT(!seen[id - GOOD]);
        seen[id - GOOD] = true;
        snprintf(want_url, sizeof want_url,
                 "%s/img/%u.jpg?fault=status&code=404", o.base, id);
        ASSERT_STR_EQ(dl.rec[i].url, want_url);
        ASSERT_STR_EQ(dl.rec[i].error_class, "http");
        ASSERT_EQ(dl.rec[i].http_status, 404);
        ASSERT_EQ(dl.rec[i].attempts, 1);
    }
    dead_list_free(&dl);
    dlq_list(q, "http", &dl);
    ASSERT_EQ(dl.n, GONE);
    dead_list_free(&dl);
    dlq_list(q, "network", &dl);
    ASSERT_EQ(dl.n, 0);

    origin_stats os = origin_stats_get(&o);
    ASSERT_EQ(os.s404, GONE);
    ASSERT_EQ(os.s500, 2 * FLAKY);
    ASSERT_EQ(os.s200, GOOD + FLAKY);

    for (unsigned i = 0; i < RECORDS; i++) {
        if (i >= GOOD && i < GOOD + GONE) {
            char path[64];
            snprintf(path, sizeof path, "out/sku-%u.jpg", i);
            ASSERT_NE(access(path, F_OK), 0);
        } else {
            verify_object(&spec, i);
        }
    }
    ASSERT_EQ(stored_objects(), GOOD + FLAKY);
    sluice_queue_close(q);
    origin_stop(&o);
}

/*
 * A 429 with Retry-After: 1 pauses the whole origin: no request starts
 * at the origin within a second of the 429's end, the throttled record
 * is fetched again after that second, and the throttle uses no attempt
 * (max_attempts = 1, yet the record ends done).
 */
TEST_TIMEOUT(throttle, CASE_TIMEOUT_S)
{
    enum { N = 2, OTHERS = 30 };
    const char *opts[] = {"--latency", "fixed:5", "--size", "fixed:1000", NULL};
    struct sl_origin_size spec;
    ASSERT_EQ(sl_origin_size_parse("fixed:1000", &spec), 0);
    origin o;
    origin_start(&o, opts);

    FILE *f = feed_open();
    feed_line(f, &o, 0, "fault=throttle&retry_after=1");
    for (unsigned i = 1; i <= OTHERS; i++)
        feed_line(f, &o, i, NULL);
    feed_close(f);
    sluice_queue *q = queue_open();
    ingest(q, "feed.jsonl", OTHERS + 1);

    sluice_run_opts ro;
    run_opts(&ro, N);
    ro.max_attempts = 1;
    sluice_run_stats st;
    ASSERT_EQ(run(q, &ro, &st), SLUICE_OK);
    ASSERT_EQ(st.done, OTHERS + 1);
    ASSERT_EQ(st.dead, 0);
    ASSERT_EQ(st.throttled, 1);
    ASSERT_GE((long long)(st.elapsed_s * 1000), 1000);

    sluice_counts c = counts(q);
    ASSERT_EQ(c.done, OTHERS + 1);
    ASSERT_EQ(c.dead, 0);
    dead_list dl;
    dlq_list(q, NULL, &dl);
    ASSERT_EQ(dl.n, 0);

    log_line *log;
    size_t n = origin_log(&o, &log);
    ASSERT_EQ(n, OTHERS + 2);
    const log_line *throttled = NULL, *retry = NULL;
    for (size_t i = 0; i < n; i++) {
        if (log[i].status == 429) {
            ASSERT_NULL(throttled);
            throttled = &log[i];
        } else if (log[i].n == 0) {
            retry = &log[i];
        }
    }
    ASSERT_NOT_NULL(throttled);
    ASSERT_NOT_NULL(retry);
    ASSERT_EQ(throttled->n, 0);
    ASSERT_EQ(throttled->attempt, 1);
    ASSERT_EQ(retry->attempt, 2);
    ASSERT_EQ(retry->status, 200);
    /* 1 ms of clock granularity allowed, as in run_retry_after.sh. */
    ASSERT_GE(retry->start_ms, throttled->end_ms + 999);
    for (size_t i = 0; i < n; i++) {
        if (log[i].start_ms > throttled->end_ms &&
            log[i].start_ms < throttled->end_ms + 999)
            TEST_FAIL_("%s started %" PRIu64 " ms after the 429 ended, "
                       "during the Retry-After pause",
                       log[i].path, log[i].start_ms - throttled->end_ms);
    }
    free(log);
    verify_object(&spec, 0);
    sluice_queue_close(q);
    origin_stop(&o);
}

typedef struct {
    volatile int stop;
    uint64_t stop_after; /* set stop once this many are done */
    uint64_t done_at_stop;
    double stop_mono;
} stopper;

static void
stop_when_enough(void *ctx, const sluice_run_stats *st)
{
    stopper *s = ctx;
    if (!s->stop && st->done >= s->stop_after) {
        s->stop = 1;
        s->done_at_stop = st->done;
        s->stop_mono = mono_s();
    }
}

/*
 * Stop: *opts.stop set from the progress callback mid-run. sluice_run
 * returns SLUICE_EINTERRUPTED soon after, with nothing in flight, the
 * rest still pending and only finished objects in the store; a second
 * run finishes the rest.
 */
TEST_TIMEOUT(stop, CASE_TIMEOUT_S)
{
    enum { N = 4, RECORDS = 300, STOP_AFTER = 30 };
    char limit[16];
    snprintf(limit, sizeof limit, "%d", N);
    const char *opts[] = {"--limit", limit,        "--latency", "fixed:20",
                          "--size",  "fixed:2000", NULL};
    struct sl_origin_size spec;
    ASSERT_EQ(sl_origin_size_parse("fixed:2000", &spec), 0);
    origin o;
    origin_start(&o, opts);

    FILE *f = feed_open();
    for (unsigned i = 0; i < RECORDS; i++)
        feed_line(f, &o, i, NULL);
    feed_close(f);
    sluice_queue *q = queue_open();
    ingest(q, "feed.jsonl", RECORDS);

    stopper s = {.stop_after = STOP_AFTER};
    sluice_run_opts ro;
    run_opts(&ro, N);
    ro.grace_s = 2;
    ro.stop = &s.stop;
    ro.on_progress = stop_when_enough;
    ro.progress_interval_s = 0.02;
    ro.ctx = &s;
    sluice_run_stats st;
    ASSERT_EQ(run(q, &ro, &st), SLUICE_EINTERRUPTED);
    double stop_took = mono_s() - s.stop_mono;
    ASSERT_EQ(s.stop, 1);
    fprintf(stderr,
            "stopped at %" PRIu64 " done; returned %.0f ms later with %" PRIu64
            " done\n",
            s.done_at_stop, stop_took * 1000, st.done);
    /* The transfers in flight take 20 ms; the grace is 2 s. */
    ASSERT_LT((long long)(stop_took * 1000), 2000 + 1500);

    sluice_counts c = counts(q);
    ASSERT_EQ(c.in_flight, 0);
    ASSERT_EQ(c.dead, 0);
    ASSERT_GE(c.done, s.done_at_stop);
    /* What was in flight or being stored at the stop may finish, no
     * more: far from all 300. */
    ASSERT_LE(c.done, s.done_at_stop + 64);
    ASSERT_EQ(st.done, c.done);
    ASSERT_EQ(c.pending + c.retrying, RECORDS - c.done);
    ASSERT_EQ(stored_objects(), c.done);
    uint64_t first_done = c.done;
    /* The transfers in flight at the stop were given their grace and
     * finished: none was cut off (the origin counts those as "0"). */
    origin_stats os = origin_stats_get(&o);
    ASSERT_EQ(os.s0, 0);
    ASSERT_EQ(os.in_flight, 0);
    ASSERT_EQ(os.s200, os.requests);

    s.stop = 0;
    ro.on_progress = NULL;
    ASSERT_EQ(run(q, &ro, &st), SLUICE_OK);
    ASSERT_EQ(st.done, RECORDS - first_done);
    c = counts(q);
    ASSERT_EQ(c.done, RECORDS);
    ASSERT_EQ(c.pending + c.in_flight + c.retrying + c.dead, 0);

    os = origin_stats_get(&o);
    ASSERT_EQ(os.violations, 0);
    ASSERT_LE(os.peak, N);
    ASSERT_EQ(os.s0, 0);
    for (unsigned i = 0; i < RECORDS; i++)
        verify_object(&spec, i);
    ASSERT_EQ(stored_objects(), RECORDS);
    sluice_queue_close(q);
    origin_stop(&o);
}

#define MAX_EVENTS 64

typedef struct {
    /* on_progress */
    unsigned calls;
    uint64_t last_done, last_dead, last_total, last_total_done;
    double last_elapsed;
    char went_back[160]; /* the first decrease seen, or "" */
    /* on_event */
    size_t n_events;
    struct {
        char *id, *url, *error_class, *message;
        int http_status;
    } events[MAX_EVENTS];
} watcher;

static void
watch_progress(void *ctx, const sluice_run_stats *st)
{
    watcher *w = ctx;
    if (w->calls > 0 && !w->went_back[0]) {
        if (st->done < w->last_done)
            snprintf(w->went_back, sizeof w->went_back,
                     "done %" PRIu64 " after %" PRIu64, st->done, w->last_done);
        else if (st->total_done < w->last_total_done)
            snprintf(w->went_back, sizeof w->went_back,
                     "total_done %" PRIu64 " after %" PRIu64, st->total_done,
                     w->last_total_done);
        else if (st->elapsed_s < w->last_elapsed)
            snprintf(w->went_back, sizeof w->went_back,
                     "elapsed %.3f after %.3f", st->elapsed_s, w->last_elapsed);
    }
    w->calls++;
    w->last_done = st->done;
    w->last_dead = st->dead;
    w->last_total = st->total;
    w->last_total_done = st->total_done;
    w->last_elapsed = st->elapsed_s;
}

static void
watch_event(void *ctx, const char *id, const char *url, const char *error_class,
            int http_status, const char *message)
{
    watcher *w = ctx;
    ASSERT_LT(w->n_events, MAX_EVENTS);
    w->events[w->n_events].id = strdup(id ? id : "(null)");
    w->events[w->n_events].url = strdup(url ? url : "(null)");
    w->events[w->n_events].error_class =
        strdup(error_class ? error_class : "(null)");
    w->events[w->n_events].message = strdup(message ? message : "");
    w->events[w->n_events].http_status = http_status;
    w->n_events++;
}

/*
 * The callbacks: on_progress is called again and again with done counts
 * that never go back, the last call saying what the run returns; on_event
 * is called exactly once per dead-lettered record, with its id, URL and
 * class, and the same records are in the DLQ.
 */
TEST_TIMEOUT(callbacks, CASE_TIMEOUT_S)
{
    enum { N = 4, RECORDS = 60, EVERY = 6 }; /* sku-5, 11, ...: 404 */
    enum { DEAD = RECORDS / EVERY };
    const char *opts[] = {"--latency", "fixed:10", "--size", "fixed:1000",
                          NULL};
    origin o;
    origin_start(&o, opts);

    FILE *f = feed_open();
    for (unsigned i = 0; i < RECORDS; i++)
        feed_line(f, &o, i,
                  i % EVERY == EVERY - 1 ? "fault=status&code=404" : NULL);
    feed_close(f);
    sluice_queue *q = queue_open();
    ingest(q, "feed.jsonl", RECORDS);

    static watcher w; /* large; zeroed */
    sluice_run_opts ro;
    run_opts(&ro, N);
    ro.on_progress = watch_progress;
    ro.on_event = watch_event;
    ro.progress_interval_s = 0.01;
    ro.ctx = &w;
    sluice_run_stats st;
    ASSERT_EQ(run(q, &ro, &st), SLUICE_OK);
    ASSERT_EQ(st.done, RECORDS - DEAD);
    ASSERT_EQ(st.dead, DEAD);

    if (w.went_back[0])
        TEST_FAIL_("on_progress went back: %s", w.went_back);
    ASSERT_GE(w.calls, 3);
    ASSERT_EQ(w.last_done, st.done);
    ASSERT_EQ(w.last_dead, DEAD);
    ASSERT_EQ(w.last_total, RECORDS);
    ASSERT_EQ(w.last_total_done, RECORDS - DEAD);

    ASSERT_EQ(w.n_events, DEAD);
    bool seen[RECORDS] = {false};
    for (size_t i = 0; i < w.n_events; i++) {
        unsigned id;
        char want_url[160];
        if (sscanf(w.events[i].id, "sku-%u", &id) != 1 || id >= RECORDS ||
            id % EVERY != EVERY - 1)
            TEST_FAIL_("an event for %s, which should not die", w.events[i].id);
        if (seen[id])
            TEST_FAIL_("two events for %s", w.events[i].id);
        seen[id] = true;
        snprintf(want_url, sizeof want_url,
                 "%s/img/%u.jpg?fault=status&code=404", o.base, id);
        ASSERT_STR_EQ(w.events[i].url, want_url);
        ASSERT_STR_EQ(w.events[i].error_class, "http");
        ASSERT_EQ(w.events[i].http_status, 404);
        ASSERT_NE(strlen(w.events[i].message), 0);
    }

    /* The DLQ holds exactly the records the events named. */
    dead_list dl;
    dlq_list(q, NULL, &dl);
    ASSERT_EQ(dl.n, DEAD);
    for (size_t i = 0; i < dl.n; i++) {
        unsigned id;
        ASSERT_EQ(sscanf(dl.rec[i].id, "sku-%u", &id), 1);
        ASSERT(id < RECORDS && seen[id]);
    }
    dead_list_free(&dl);
    for (size_t i = 0; i < w.n_events; i++) {
        free(w.events[i].id);
        free(w.events[i].url);
        free(w.events[i].error_class);
        free(w.events[i].message);
    }
    sluice_queue_close(q);
    origin_stop(&o);
}
