/*
 * The Redis queue's own cases, beside the queue suite it passes too
 * (test_queue_redis): locations parsed with clear errors, a wrong
 * password, a refused connection, a Redis that is not a sluice queue or
 * holds a newer schema, and a Redis that dies or hangs mid-operation.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "queue/queue.h"
#include "redis/redis.h"
#include "redis_server.h"
#include "test.h"

static sl_record
rec(const char *id, const char *url)
{
    const char *origin = "http://img.example:80";
    return (sl_record){id,   strlen(id), url,    strlen(url),
                       id,   strlen(id), origin, strlen(origin),
                       NULL, 0, false};
}

/* Run a raw command on the test's Redis. */
static void
raw(const char *location, const char *cmd)
{
    const char *sock = location + 7;
    redisContext *c = redisConnectUnix(sock);
    ASSERT(c && !c->err);
    redisReply *r = redisCommand(c, cmd);
    ASSERT_NOT_NULL(r);
    freeReplyObject(r);
    redisFree(c);
}

/* A loopback port nothing listens on (bound, noted, closed). */
static int
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static sluice_err
open_at(const char *location, sluice_queue **q, char *why, size_t size)
{
    return sluice_queue_open(location, NULL, q, why, size);
}

/* A redis-server of our own and a handle on it whose commands give up
 * after 1 s: its location (with ?timeout=1) in url, *pid to stop it. */
static sluice_queue *
open_timing_out(char *url, size_t size, pid_t *pid)
{
    char loc[300], why[600];
    sluice_queue *q = NULL;
    *pid = test_redis_start(loc, sizeof loc, NULL);
    snprintf(url, size, "%s?timeout=1", loc);
    if (open_at(url, &q, why, sizeof why) != SLUICE_OK)
        TEST_FAIL_("open %s: %s", url, why);
    return q;
}

static void
assert_parse_error(const char *location, const char *part)
{
    sl_redis_addr a;
    char why[400];
    ASSERT_EQ(sl_redis_parse(location, &a, why, sizeof why), SLUICE_EINVAL);
    ASSERT_STR_CONTAINS(why, part);
    ASSERT(!strchr(why, '\n'));
    sl_redis_addr_free(&a);
}

TEST(locations_are_parsed)
{
    sl_redis_addr a;
    char why[400];
    ASSERT_EQ(sl_redis_parse("redis://u:p%40ss@example.com:6380/3?prefix=x:",
                             &a, why, sizeof why),
              SLUICE_OK);
    ASSERT_STR_EQ(a.host, "example.com");
    ASSERT_EQ(a.port, 6380);
    ASSERT_STR_EQ(a.user, "u");
    ASSERT_STR_EQ(a.password, "p@ss");
    ASSERT_EQ(a.db, 3);
    ASSERT_STR_EQ(a.prefix, "x:");
    ASSERT(!strstr(a.where, "p@ss"));
    sl_redis_addr_free(&a);
    ASSERT_EQ(sl_redis_parse("redis://:secret@[::1]:7000", &a, why, sizeof why),
              SLUICE_OK);
    ASSERT_STR_EQ(a.host, "::1");
    ASSERT_NULL(a.user);
    ASSERT_STR_EQ(a.password, "secret");
    ASSERT_STR_EQ(a.prefix, "sluice:");
    sl_redis_addr_free(&a);
    ASSERT_EQ(sl_redis_parse("unix:///run/redis.sock?db=2&prefix=p&timeout=3",
                             &a, why, sizeof why),
              SLUICE_OK);
    ASSERT_STR_EQ(a.path, "/run/redis.sock");
    ASSERT_EQ(a.db, 2);
    ASSERT_EQ(a.timeout_ms, 3000);
    sl_redis_addr_free(&a);
}

TEST(bad_locations_get_one_line_errors)
{
    assert_parse_error("redis://host:99999", "port");
    assert_parse_error("redis://host:abc", "port");
    assert_parse_error("redis://:6379", "no host");
    assert_parse_error("redis://host:6379/x", "database number");
    assert_parse_error("redis://user@host:6379", "USER:PASSWORD");
    assert_parse_error("redis://host:6379?color=red", "unknown query");
    assert_parse_error("redis://host:6379?prefix=a{b}", "prefix");
    assert_parse_error("redis://host:6379?timeout=0", "timeout");
    assert_parse_error("unix://relative.sock", "absolute");
    assert_parse_error("unix:///x.sock?db=-1", "db");
    /* Through the public API, too. */
    sluice_queue *q = NULL;
    char why[600];
    ASSERT_EQ(open_at("redis://host:0", &q, why, sizeof why), SLUICE_EINVAL);
    ASSERT_STR_CONTAINS(why, "port");
    ASSERT_NULL(q);
}

TEST(a_refused_connection_is_one_line)
{
    int port = free_port();
    char loc[64], why[600];
    snprintf(loc, sizeof loc, "redis://127.0.0.1:%d", port);
    sluice_queue *q = NULL;
    ASSERT_EQ(open_at(loc, &q, why, sizeof why), SLUICE_ENETWORK);
    ASSERT_STR_CONTAINS(why, "127.0.0.1");
    ASSERT(strcasestr(why, "connection refused") != NULL);
    ASSERT(!strchr(why, '\n'));
    ASSERT_EQ(open_at("unix:///nonexistent/redis.sock", &q, why, sizeof why),
              SLUICE_ENETWORK);
    ASSERT_STR_CONTAINS(why, "/nonexistent/redis.sock");
}

TEST(a_wrong_password_is_one_line)
{
    char port[16], loc[300], url[400], why[600];
    snprintf(port, sizeof port, "%d", free_port());
    const char *const extra[] = {
        "--port", port, "--bind", "127.0.0.1", "--requirepass", "right", NULL};
    test_redis_start(loc, sizeof loc, extra);
    sluice_queue *q = NULL;
    /* No password at all. */
    ASSERT_EQ(open_at(loc, &q, why, sizeof why), SLUICE_EACCES);
    ASSERT_STR_CONTAINS(why, "password");
    ASSERT(!strchr(why, '\n'));
    snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%s", port);
    ASSERT_EQ(open_at(url, &q, why, sizeof why), SLUICE_EACCES);
    ASSERT_STR_CONTAINS(why, "wrong user name or password");
    ASSERT(!strstr(why, "wrong@"));
    snprintf(url, sizeof url, "redis://nobody:right@127.0.0.1:%s", port);
    ASSERT_EQ(open_at(url, &q, why, sizeof why), SLUICE_EACCES);
    /* The right one, alone and with the user "default". */
    snprintf(url, sizeof url, "redis://:right@127.0.0.1:%s/2", port);
    ASSERT_EQ(open_at(url, &q, why, sizeof why), SLUICE_OK);
    sluice_queue_close(q);
    snprintf(url, sizeof url, "redis://default:right@127.0.0.1:%s", port);
    ASSERT_EQ(open_at(url, &q, why, sizeof why), SLUICE_OK);
    sluice_queue_close(q);
}

TEST(non_sluice_keys_and_newer_schemas_are_refused)
{
    char loc[300], url[400], why[600];
    test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *q = NULL;
    /* Someone else's keys under the prefix. */
    raw(loc, "SET sluice:jobs:1 hello");
    ASSERT_EQ(open_at(loc, &q, why, sizeof why), SLUICE_ENOTDB);
    ASSERT_STR_CONTAINS(why, "not a sluice queue");
    ASSERT(!strchr(why, '\n'));
    /* Our meta key's name holding something else. */
    snprintf(url, sizeof url, "%s?prefix=other:", loc);
    raw(loc, "SET other:{q}:meta x");
    ASSERT_EQ(open_at(url, &q, why, sizeof why), SLUICE_ENOTDB);
    ASSERT_STR_CONTAINS(why, "not a sluice queue");
    /* A newer schema. */
    snprintf(url, sizeof url, "%s?prefix=new:", loc);
    raw(loc, "HSET new:{q}:meta app sluice version 99 rid 0");
    ASSERT_EQ(open_at(url, &q, why, sizeof why), SLUICE_EDBVERSION);
    ASSERT_STR_CONTAINS(why, "newer");
    /* A prefix of its own is fine, and read-only opens create nothing. */
    snprintf(url, sizeof url, "%s?prefix=mine:", loc);
    sluice_queue_opts ro = {SLUICE_QUEUE_READONLY, 0};
    ASSERT_EQ(sluice_queue_open(url, &ro, &q, why, sizeof why), SLUICE_ENOENT);
    ASSERT_STR_CONTAINS(why, "sluice ingest creates it");
    ASSERT_EQ(open_at(url, &q, why, sizeof why), SLUICE_OK);
    sluice_queue_close(q);
    ASSERT_EQ(sluice_queue_open(url, &ro, &q, why, sizeof why), SLUICE_OK);
    sluice_queue_close(q);
}

TEST(a_redis_killed_mid_run_is_an_error_not_a_hang)
{
    char loc[300], why[600];
    pid_t pid = test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *q = NULL;
    ASSERT_EQ(open_at(loc, &q, why, sizeof why), SLUICE_OK);
    sluice_ingest_stats st = {0};
    sl_record r = rec("a", "http://img.example/a");
    ASSERT_EQ(sl_queue_upsert(q, &r, 1, sl_now_ms(), &st), SLUICE_OK);
    test_redis_kill(pid);
    sluice_counts c;
    ASSERT_EQ(sluice_queue_counts(q, &c), SLUICE_ENETWORK);
    ASSERT_STR_CONTAINS(sluice_queue_errmsg(q), "redis.sock");
    ASSERT(!strchr(sluice_queue_errmsg(q), '\n'));
    /* Restarted from its AOF: the handle connects again, nothing lost. */
    test_redis_start(loc, sizeof loc, NULL);
    ASSERT_EQ(sluice_queue_counts(q, &c), SLUICE_OK);
    ASSERT_EQ(c.pending, 1);
    sluice_queue_close(q);
}

TEST(a_redis_that_hangs_times_out)
{
    char url[400], why[600];
    pid_t pid;
    sluice_queue *q = open_timing_out(url, sizeof url, &pid);
    kill(pid, SIGSTOP);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sluice_counts c;
    ASSERT_EQ(sluice_queue_counts(q, &c), SLUICE_ETIMEOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ASSERT_LT(t1.tv_sec - t0.tv_sec, 5);
    ASSERT_STR_CONTAINS(sluice_queue_errmsg(q), "no answer within 1 s");
    /* A new handle cannot connect either, and says so in time. */
    sluice_queue *q2 = NULL;
    ASSERT(open_at(url, &q2, why, sizeof why) != SLUICE_OK);
    kill(pid, SIGCONT);
    ASSERT_EQ(sluice_queue_counts(q, &c), SLUICE_OK);
    sluice_queue_close(q);
}

/* n records r0.. upserted and leased into l[0..n) on q. */
static void
upsert_and_lease(sluice_queue *q, size_t n, sl_lease *l)
{
    for (size_t i = 0; i < n; i++) {
        char id[16], url[64];
        snprintf(id, sizeof id, "r%zu", i);
        snprintf(url, sizeof url, "http://img.example/%s", id);
        sluice_ingest_stats st = {0};
        sl_record r = rec(id, url);
        ASSERT_EQ(sl_queue_upsert(q, &r, 1, sl_now_ms(), &st), SLUICE_OK);
    }
    sl_lease_req req = {n, sl_now_ms(), 60000, NULL, 0};
    size_t got = 0;
    ASSERT_EQ(sl_queue_lease(q, &req, l, &got), SLUICE_OK);
    ASSERT_EQ(got, n);
}

static const sl_object_info an_object = {
    10, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    NULL, NULL};

/* Done marks of l[0..n). */
static void
done_marks(const sl_lease *l, size_t n, sl_queue_mark *v)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (sl_queue_mark){SL_QUEUE_MARK_DONE, &l[i], &an_object, NULL,
                               sl_now_ms(), false};
}

TEST(a_batch_of_marks_to_a_dead_redis_is_not_sent)
{
    char loc[300], why[600];
    pid_t pid = test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *q = NULL;
    ASSERT_EQ(open_at(loc, &q, why, sizeof why), SLUICE_OK);
    sl_lease l[4];
    sl_queue_mark v[4];
    sluice_err results[4];
    upsert_and_lease(q, 4, l);
    done_marks(l, 4, v);
    /* One mark made: the handle has the script loaded. */
    ASSERT_EQ(sl_queue_marks(q, v, 1, results), SLUICE_OK);
    test_redis_kill(pid);
    /* The first pipeline is written to the connection of the dead Redis
     * (for all the handle can tell, sent); the next cannot connect, and
     * sends nothing. */
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(sl_queue_marks(q, v + 1, 3, results), SLUICE_ENETWORK);
        ASSERT_STR_CONTAINS(sluice_queue_errmsg(q), "redis.sock");
        ASSERT(!strchr(sluice_queue_errmsg(q), '\n'));
        for (int k = 0; k < 3; k++)
            ASSERT_EQ(results[k], (i == 0 ? SLUICE_ENETWORK : SLUICE_EAGAIN));
    }
    test_redis_start(loc, sizeof loc, NULL);
    ASSERT_EQ(sl_queue_marks(q, v + 1, 3, results), SLUICE_OK);
    for (int k = 0; k < 3; k++)
        ASSERT_EQ(results[k], SLUICE_OK);
    sluice_counts c;
    ASSERT_EQ(sluice_queue_counts(q, &c), SLUICE_OK);
    ASSERT_EQ(c.done, 4);
    for (int k = 0; k < 4; k++)
        sl_lease_clear(&l[k]);
    sluice_queue_close(q);
}

TEST(a_batch_of_marks_to_a_hung_redis_is_sent_unanswered)
{
    char url[400];
    pid_t pid;
    sluice_queue *q = open_timing_out(url, sizeof url, &pid);
    sl_lease l[4];
    sl_queue_mark v[4];
    sluice_err results[4];
    upsert_and_lease(q, 4, l);
    done_marks(l, 4, v);
    ASSERT_EQ(sl_queue_marks(q, v + 3, 1, results), SLUICE_OK); /* loaded */
    kill(pid, SIGSTOP);
    ASSERT_EQ(sl_queue_marks(q, v, 3, results), SLUICE_ETIMEOUT);
    ASSERT_STR_CONTAINS(sluice_queue_errmsg(q), "no answer within 1 s");
    for (int k = 0; k < 3; k++)
        ASSERT_EQ(results[k], SLUICE_ETIMEOUT); /* sent, unanswered */
    kill(pid, SIGCONT);
    /* Redis runs what it was sent: the marks are made late, and the same
     * batch again finds its own doing. */
    sluice_counts c = {0};
    for (int i = 0; i < 100 && c.done < 4; i++) {
        memset(&c, 0, sizeof c);
        ASSERT_EQ(sluice_queue_counts(q, &c), SLUICE_OK);
        if (c.done < 4)
            usleep(20000);
    }
    ASSERT_EQ(c.done, 4);
    ASSERT_EQ(sl_queue_marks(q, v, 3, results), SLUICE_OK);
    for (int k = 0; k < 3; k++)
        ASSERT_EQ(results[k], SLUICE_ENOTFOUND);
    for (int k = 0; k < 4; k++)
        sl_lease_clear(&l[k]);
    sluice_queue_close(q);
}

TEST(several_runners_share_a_queue_and_only_a_lone_one_recovers)
{
    char loc[300], why[600];
    test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *a = NULL, *b = NULL, *c = NULL;
    ASSERT_EQ(open_at(loc, &a, why, sizeof why), SLUICE_OK);
    ASSERT_EQ(open_at(loc, &b, why, sizeof why), SLUICE_OK);
    ASSERT_EQ(open_at(loc, &c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(sl_queue_slots(a), "redis");
    sluice_ingest_stats st = {0};
    sl_record r[2] = {rec("a", "http://img.example/a"),
                      rec("b", "http://img.example/b")};
    ASSERT_EQ(sl_queue_upsert(c, r, 2, sl_now_ms(), &st), SLUICE_OK);
    ASSERT(!sl_queue_runner_alive(c));
    ASSERT_EQ(sl_queue_acquire_runner(a), SLUICE_OK);
    ASSERT(sl_queue_runner_alive(c));
    ASSERT_EQ(sl_queue_acquire_runner(b), SLUICE_OK);
    /* b's record in flight: a later runner that is not alone leaves it
     * to its lease. */
    sl_lease l;
    sl_lease_req req = {1, sl_now_ms(), 30000, NULL, 0};
    size_t n = 0;
    ASSERT_EQ(sl_queue_lease(b, &req, &l, &n), SLUICE_OK);
    ASSERT_EQ(n, 1);
    ASSERT_EQ(sl_queue_acquire_runner(c), SLUICE_OK);
    uint64_t recovered = 99;
    ASSERT_EQ(sl_queue_recover(c, sl_now_ms(), &recovered), SLUICE_OK);
    ASSERT_EQ(recovered, 0);
    sluice_counts counts;
    ASSERT_EQ(sluice_queue_counts(c, &counts), SLUICE_OK);
    ASSERT_EQ(counts.in_flight, 1);
    sl_lease_clear(&l);
    sluice_queue_close(a);
    sluice_queue_close(b);
    sluice_queue_close(c);
    /* All gone: the next runner is alone, and puts it back. */
    ASSERT_EQ(open_at(loc, &a, why, sizeof why), SLUICE_OK);
    ASSERT(!sl_queue_runner_alive(a));
    ASSERT_EQ(sl_queue_acquire_runner(a), SLUICE_OK);
    ASSERT_EQ(sl_queue_recover(a, sl_now_ms(), &recovered), SLUICE_OK);
    ASSERT_EQ(recovered, 1);
    sluice_queue_close(a);
}

static int
load_row(void *ctx, const sl_slot_row *r)
{
    int *n = ctx;
    ASSERT_STR_EQ(r->origin, "http://a.example:80");
    ASSERT_EQ(r->held, 3);
    ASSERT_EQ(r->in_flight, 2);
    ASSERT_STR_EQ(r->boot_id, "boot-1");
    ASSERT_EQ(r->until_boot, 5000);
    ASSERT_EQ(r->until_wall, 6000);
    ASSERT_EQ(r->hold_ms, 31000);
    ASSERT_EQ(r->token, 1ull << 33);
    ASSERT(r->conc == 2.5);
    (*n)++;
    return 0;
}

/* A run stopped past its claim's lease finds another run holding the
 * queue: it writes no slot and leases nothing more. */
TEST(a_run_that_lost_its_claim_stops)
{
    char loc[300], why[600];
    test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *q = NULL;
    ASSERT_EQ(open_at(loc, &q, why, sizeof why), SLUICE_OK);
    sluice_ingest_stats st = {0};
    sl_record r = rec("a", "http://img.example/a");
    ASSERT_EQ(sl_queue_upsert(q, &r, 1, sl_now_ms(), &st), SLUICE_OK);
    ASSERT_EQ(sl_queue_acquire_runner(q), SLUICE_OK);
    sl_slot_row row = {.origin = "http://img.example:80",
                       .held = 1,
                       .boot_id = "b",
                       .token = 7};
    /* Lapsed and free: taken again. */
    raw(loc, "DEL sluice:{q}:runner");
    ASSERT_EQ(sl_queue_slots_save(q, &row, 1), SLUICE_OK);
    ASSERT(sl_queue_runner_alive(q));
    /* Taken by another run. */
    raw(loc, "SET sluice:{q}:runner someone-else");
    ASSERT_EQ(sl_queue_slots_save(q, &row, 1), SLUICE_ERUNNING);
    ASSERT_STR_CONTAINS(sluice_queue_errmsg(q), "took this queue over");
    sl_lease l;
    sl_lease_req req = {1, sl_now_ms(), 60000, NULL, 0};
    size_t n = 0;
    ASSERT_EQ(sl_queue_lease(q, &req, &l, &n), SLUICE_ERUNNING);
    ASSERT_EQ(n, 0);
    sluice_queue_close(q);
}

TEST(slot_rows_and_settings_are_kept)
{
    char loc[300], why[600];
    test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *q = NULL;
    ASSERT_EQ(open_at(loc, &q, why, sizeof why), SLUICE_OK);
    char v[32];
    ASSERT_EQ(sl_queue_setting_get(q, "cap", v, sizeof v), SLUICE_ENOTFOUND);
    ASSERT_EQ(sl_queue_setting_set(q, "cap", "7"), SLUICE_OK);
    ASSERT_EQ(sl_queue_setting_get(q, "cap", v, sizeof v), SLUICE_OK);
    ASSERT_STR_EQ(v, "7");
    /* Values as they are: empty, or with spaces. */
    ASSERT_EQ(sl_queue_setting_set(q, "x", ""), SLUICE_OK);
    ASSERT_EQ(sl_queue_setting_get(q, "x", v, sizeof v), SLUICE_OK);
    ASSERT_STR_EQ(v, "");
    ASSERT_EQ(sl_queue_setting_set(q, "x", " a b "), SLUICE_OK);
    ASSERT_EQ(sl_queue_setting_get(q, "x", v, sizeof v), SLUICE_OK);
    ASSERT_STR_EQ(v, " a b ");
    sl_slot_row row = {.origin = "http://a.example:80",
                       .held = 3,
                       .in_flight = 2,
                       .boot_id = "boot-1",
                       .until_boot = 5000,
                       .until_wall = 6000,
                       .hold_ms = 31000,
                       .token = 1ull << 33,
                       .conc = 2.5};
    ASSERT_EQ(sl_queue_slots_save(q, &row, 1), SLUICE_OK);
    row.token = 5; /* tokens never go down */
    ASSERT_EQ(sl_queue_slots_save(q, &row, 1), SLUICE_OK);
    sluice_queue_close(q);
    ASSERT_EQ(open_at(loc, &q, why, sizeof why), SLUICE_OK);
    sl_slot_row got;
    int n = 0;
    memset(&got, 0, sizeof got);
    ASSERT_EQ(sl_queue_slots_load(q, load_row, &n), SLUICE_OK);
    ASSERT_EQ(n, 1);
    row.held = 0;
    row.conc = 0;
    ASSERT_EQ(sl_queue_slots_save(q, &row, 1), SLUICE_OK); /* empty: gone */
    n = 0;
    ASSERT_EQ(sl_queue_slots_load(q, load_row, &n), SLUICE_OK);
    ASSERT_EQ(n, 0);
    sluice_queue_close(q);
}

/* ------------------------------------------------------------ clocks */

#define FAKETIME_LIB "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

/*
 * Run the case `name` of this binary again, under libfaketime with the
 * wall clock moved by `offset` ("+60s"), against the Redis at `loc`.
 * Returns its exit status.
 */
static int
run_skewed(const char *name, const char *offset, const char *loc)
{
    char self[512];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    ASSERT_GT(len, 0);
    self[len] = '\0';
    fflush(NULL);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        setenv("SLUICE_TEST_SKEWED_AT", loc, 1);
        setenv("LD_PRELOAD", FAKETIME_LIB, 1);
        setenv("FAKETIME", offset, 1);
        setenv("DONT_FAKE_MONOTONIC", "1", 1);
        /* Under AddressSanitizer its runtime must not insist on coming
         * first. */
        const char *asan = getenv("ASAN_OPTIONS");
        char opts[512];
        snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0",
                 asan ? asan : "", asan && *asan ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
        execl(self, self, name, (char *)NULL);
        _exit(127);
    }
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int
dead_time(void *ctx, const sluice_dead_record *r)
{
    *(int64_t *)ctx = r->failed_at;
    return 0;
}

TEST(a_runner_whose_clock_is_off_keeps_to_redis_clock)
{
    if (access(FAKETIME_LIB, R_OK) != 0)
        SKIP("libfaketime is not installed (scripts/setup.sh test)");
    char loc[300], why[600];
    test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *q = NULL;
    ASSERT_EQ(open_at(loc, &q, why, sizeof why), SLUICE_OK);
    sluice_ingest_stats st = {0};
    sl_record r[2] = {rec("a", "http://img.example/a"),
                      rec("b", "http://img.example/b")};
    ASSERT_EQ(sl_queue_upsert(q, r, 2, sl_now_ms(), &st), SLUICE_OK);
    /* "a" leased for 30 s on this (true) clock. */
    sl_lease l;
    sl_lease_req req = {1, sl_now_ms(), 30000, NULL, 0};
    size_t n = 0;
    ASSERT_EQ(sl_queue_lease(q, &req, &l, &n), SLUICE_OK);
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(l.id, "a");
    /* A runner a minute ahead would see that lease as long expired on its
     * own clock: on Redis's it is not, and it takes "b" only, whose death
     * it dates by Redis's clock. */
    ASSERT_EQ(run_skewed("skewed_runner_takes_only_what_is_free", "+60s", loc),
              0);
    ASSERT_EQ(sl_queue_complete(q, &l, &(sl_object_info){1, NULL, NULL, NULL},
                                sl_now_ms()),
              SLUICE_OK);
    sl_lease_clear(&l);
    int64_t failed_at = 0;
    ASSERT_EQ(sluice_dlq_list(q, NULL, dead_time, &failed_at), SLUICE_OK);
    int64_t skew = failed_at - sl_now_ms();
    ASSERT(skew > -5000 && skew < 5000);
    sluice_queue_close(q);
}

/* Run by the case above under a clock a minute ahead (and a pass when
 * run on its own: it has nothing to look at then). */
TEST(skewed_runner_takes_only_what_is_free)
{
    const char *loc = getenv("SLUICE_TEST_SKEWED_AT");
    if (!loc)
        return;
    char why[600];
    /* The clock is a minute off indeed. */
    sl_redis conn;
    int64_t redis_ms;
    memset(&conn, 0, sizeof conn);
    ASSERT_EQ(sl_redis_open(&conn, loc), SLUICE_OK);
    ASSERT_EQ(sl_redis_time_ms(&conn, &redis_ms), SLUICE_OK);
    sl_redis_close(&conn);
    ASSERT_GT(sl_now_ms() - redis_ms, 55000);
    sluice_queue *q = NULL;
    ASSERT_EQ(open_at(loc, &q, why, sizeof why), SLUICE_OK);
    sl_lease l[2];
    sl_lease_req req = {2, sl_now_ms(), 30000, NULL, 0};
    size_t n = 0;
    ASSERT_EQ(sl_queue_lease(q, &req, l, &n), SLUICE_OK);
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(l[0].id, "b");
    const sl_failure gone = {SL_CLASS_HTTP, "HTTP 404", 404};
    ASSERT_EQ(sl_queue_dead(q, &l[0], &gone, sl_now_ms()), SLUICE_OK);
    sl_lease_clear(&l[0]);
    sluice_queue_close(q);
}

/* ------------------------------------------------------------ cluster */

static int
count_record(void *ctx, const sluice_record *r)
{
    (void)r;
    (*(int *)ctx)++;
    return 0;
}

/* Every key of a queue shares one hash tag: the scripts run unchanged on
 * a cluster (here one node holding every slot). */
TEST(the_queue_works_on_a_one_node_cluster)
{
    static const char *const extra[] = {"--cluster-enabled", "yes",
                                        "--cluster-config-file", "nodes.conf",
                                        NULL};
    char loc[300], why[600];
    test_redis_start(loc, sizeof loc, extra);
    raw(loc, "CLUSTER ADDSLOTSRANGE 0 16383");
    /* Wait until the node says the cluster is up. */
    redisContext *c = redisConnectUnix(loc + 7);
    ASSERT(c && !c->err);
    bool ok = false;
    for (int i = 0; i < 200 && !ok; i++) {
        redisReply *r = redisCommand(c, "CLUSTER INFO");
        ok = r && r->type == REDIS_REPLY_STRING &&
             strstr(r->str, "cluster_state:ok");
        if (r)
            freeReplyObject(r);
        if (!ok)
            usleep(25000);
    }
    redisFree(c);
    ASSERT(ok);
    sluice_queue *q = NULL;
    ASSERT_EQ(open_at(loc, &q, why, sizeof why), SLUICE_OK);
    sl_record r[3] = {rec("a", "http://img.example/a"),
                      rec("b", "http://img.example/b"),
                      rec("c", "http://img.example/c")};
    sluice_ingest_stats st = {0};
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_upsert(q, r, 3, sl_now_ms(), &st), SLUICE_OK);
    ASSERT_EQ(sl_queue_commit(q), SLUICE_OK);
    ASSERT_EQ(st.added, 3);
    ASSERT_EQ(sl_queue_acquire_runner(q), SLUICE_OK);
    sl_lease l[3];
    const char *skip[] = {"http://other.example:80"};
    sl_lease_req req = {3, sl_now_ms(), 60000, skip, 1};
    size_t n = 0;
    ASSERT_EQ(sl_queue_lease(q, &req, l, &n), SLUICE_OK);
    ASSERT_EQ(n, 3);
    const sl_object_info obj = {10, NULL, NULL, NULL};
    const sl_failure gone = {SL_CLASS_HTTP, "HTTP 404", 404};
    ASSERT_EQ(sl_queue_complete(q, &l[0], &obj, sl_now_ms()), SLUICE_OK);
    ASSERT_EQ(sl_queue_dead(q, &l[1], &gone, sl_now_ms()), SLUICE_OK);
    ASSERT_EQ(sl_queue_retry(q, &l[2], sl_now_ms(), &gone, true), SLUICE_OK);
    for (int i = 0; i < 3; i++)
        sl_lease_clear(&l[i]);
    uint64_t replayed = 0;
    ASSERT_EQ(sluice_dlq_replay(q, NULL, 0, NULL, &replayed, NULL), SLUICE_OK);
    ASSERT_EQ(replayed, 1);
    int listed = 0;
    ASSERT_EQ(sluice_list(q, NULL, count_record, &listed), SLUICE_OK);
    ASSERT_EQ(listed, 3);
    sluice_counts counts;
    ASSERT_EQ(sluice_queue_counts(q, &counts), SLUICE_OK);
    ASSERT_EQ(counts.done, 1);
    ASSERT_EQ(counts.pending, 1);
    ASSERT_EQ(counts.retrying, 1);
    sl_slot_row row = {.origin = "http://img.example:80",
                       .held = 1,
                       .boot_id = "b",
                       .token = 7};
    ASSERT_EQ(sl_queue_slots_save(q, &row, 1), SLUICE_OK);
    sluice_queue_close(q);
}

/* New records go in by plain commands, a record met again in the same
 * call by the script inside the same transaction: an id new twice in
 * one call is one record, added then updated, in its first place. */
TEST(a_new_id_twice_in_one_call_is_one_record)
{
    char loc[300], why[600];
    test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *q = NULL;
    ASSERT_EQ(open_at(loc, &q, why, sizeof why), SLUICE_OK);
    sl_record r[4] = {rec("x", "http://img.example/x1"),
                      rec("y", "http://img.example/y"),
                      rec("x", "http://img.example/x2"),
                      rec("y", "http://img.example/y")};
    sluice_ingest_stats st = {0};
    ASSERT_EQ(sl_queue_upsert(q, r, 4, sl_now_ms(), &st), SLUICE_OK);
    ASSERT_EQ(st.added, 2);
    ASSERT_EQ(st.updated, 1);
    ASSERT_EQ(st.unchanged, 1);
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, "x", &info), SLUICE_OK);
    ASSERT_STR_EQ(info.url, "http://img.example/x2");
    sl_record_info_clear(&info);
    ASSERT_EQ(test_redis_int(loc, "HGET sluice:{q}:meta rid"), 2);
    ASSERT_EQ(test_redis_int(loc, "ZSCORE sluice:{q}:pending 1"), 1);
    ASSERT_EQ(test_redis_int(loc, "ZCARD sluice:{q}:pending"), 2);
    ASSERT_EQ(test_redis_int(loc, "ZCARD sluice:{q}:po:http://img.example:80"), 2);
    ASSERT_EQ(test_redis_int(loc, "HGET sluice:{q}:counts s0"), 2);
    /* Leased, then ingested again with a new url in a call with a new
     * record: back to pending, the new one after it. */
    ASSERT_EQ(sl_queue_acquire_runner(q), SLUICE_OK);
    sl_lease l[2];
    sl_lease_req req = {2, sl_now_ms(), 60000, NULL, 0};
    size_t n = 0;
    ASSERT_EQ(sl_queue_lease(q, &req, l, &n), SLUICE_OK);
    ASSERT_EQ(n, 2);
    sl_record again[2] = {rec("z", "http://img.example/z"),
                          rec("y", "http://img.example/y2")};
    memset(&st, 0, sizeof st);
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_upsert(q, again, 2, sl_now_ms(), &st), SLUICE_OK);
    ASSERT_EQ(sl_queue_commit(q), SLUICE_OK);
    ASSERT_EQ(st.added, 1);
    ASSERT_EQ(st.updated, 1);
    sluice_counts counts;
    ASSERT_EQ(sluice_queue_counts(q, &counts), SLUICE_OK);
    ASSERT_EQ(counts.pending, 2);
    ASSERT_EQ(counts.in_flight, 1);
    ASSERT_EQ(counts.total, 3);
    ASSERT_EQ(test_redis_int(loc, "ZSCORE sluice:{q}:pending 2"), 2);
    ASSERT_EQ(test_redis_int(loc, "ZSCORE sluice:{q}:pending 3"), 3);
    for (size_t i = 0; i < n; i++)
        sl_lease_clear(&l[i]);
    sluice_queue_close(q);
}

/* Two ingests at once into one queue, the same ids in other orders and
 * with other urls: WATCH makes a loser try again (or fall back to the
 * script), so every id is one record, in one index, counted once. */
typedef struct {
    const char *loc;
    int which;
    sluice_err err;
    uint64_t added;
} ingester;

#define RACE_IDS 3000
#define RACE_BATCH 100

static void *
ingest_racing(void *arg)
{
    ingester *g = arg;
    char why[600];
    sluice_queue *q = NULL;
    g->err = sluice_queue_open(g->loc, NULL, &q, why, sizeof why);
    if (g->err != SLUICE_OK)
        return NULL;
    static char ids[2][RACE_IDS][16], urls[2][RACE_IDS][48];
    sl_record recs[RACE_BATCH];
    for (int b = 0; b < RACE_IDS / RACE_BATCH && g->err == SLUICE_OK; b++) {
        for (int i = 0; i < RACE_BATCH; i++) {
            int k = b * RACE_BATCH + i;
            int id = g->which ? RACE_IDS - 1 - k : k;
            snprintf(ids[g->which][k], sizeof ids[0][0], "id%d", id);
            snprintf(urls[g->which][k], sizeof urls[0][0],
                     "http://img.example/%d/%d", id, g->which && id % 3 == 0);
            recs[i] = rec(ids[g->which][k], urls[g->which][k]);
        }
        sluice_ingest_stats st = {0};
        g->err = sl_queue_begin(q);
        if (g->err == SLUICE_OK)
            g->err = sl_queue_upsert(q, recs, RACE_BATCH, sl_now_ms(), &st);
        if (g->err == SLUICE_OK)
            g->err = sl_queue_commit(q);
        g->added += st.added;
    }
    sluice_queue_close(q);
    return NULL;
}

TEST(two_ingests_at_once_make_each_id_one_record)
{
    char loc[300], why[600];
    test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *q = NULL;
    ASSERT_EQ(open_at(loc, &q, why, sizeof why), SLUICE_OK);
    ingester g[2] = {{loc, 0, SLUICE_OK, 0}, {loc, 1, SLUICE_OK, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, ingest_racing, &g[i]), 0);
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_join(t[i], NULL), 0);
    ASSERT_EQ(g[0].err, SLUICE_OK);
    ASSERT_EQ(g[1].err, SLUICE_OK);
    ASSERT_EQ(g[0].added + g[1].added, RACE_IDS);
    sluice_counts counts;
    ASSERT_EQ(sluice_queue_counts(q, &counts), SLUICE_OK);
    ASSERT_EQ(counts.pending, RACE_IDS);
    ASSERT_EQ(counts.total, RACE_IDS);
    ASSERT_EQ(test_redis_int(loc, "HGET sluice:{q}:meta rid"), RACE_IDS);
    ASSERT_EQ(test_redis_int(loc, "HLEN sluice:{q}:ids"), RACE_IDS);
    ASSERT_EQ(test_redis_int(loc, "ZCARD sluice:{q}:pending"), RACE_IDS);
    ASSERT_EQ(test_redis_int(loc, "ZCARD sluice:{q}:po:http://img.example:80"),
              RACE_IDS);
    ASSERT_EQ(test_redis_int(loc, "EXISTS sluice:{q}:r:3000"), 1);
    ASSERT_EQ(test_redis_int(loc, "EXISTS sluice:{q}:r:3001"), 0);
    int listed = 0;
    ASSERT_EQ(sluice_list(q, NULL, count_record, &listed), SLUICE_OK);
    ASSERT_EQ(listed, RACE_IDS);
    sluice_queue_close(q);
}
