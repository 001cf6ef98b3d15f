/*
 * The Redis slot service's own cases, beside the slot suite it passes
 * too (test_slots_redis): several runners (slot handles, each with its
 * connection) share one cap per origin, a rate and pauses; a slot given
 * up on is held to its deadline and then reclaimed by Redis's clock; a
 * runner whose clock is off changes nothing; a Redis restarted from its
 * AOF fences new slots until every old one is over; an unreachable Redis
 * is a wait. Each case starts a redis-server of its own.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/wait.h>

#include <hiredis/hiredis.h>
#include <time.h>
#include <unistd.h>

#include "queue/queue.h"
#include "redis/redis.h"
#include "redis_server.h"
#include "slots/slots.h"
#include "test.h"

#define FAKETIME_LIB "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

static pid_t redis_pid;

/* A redis-server and a queue on it (whose location the service uses). */
static sluice_queue *
start(char *loc, size_t size)
{
    char why[600];
    sluice_queue *q = NULL;
    redis_pid = test_redis_start(loc, size, NULL);
    if (sluice_queue_open(loc, NULL, &q, why, sizeof why) != SLUICE_OK)
        TEST_FAIL_("open %s: %s", loc, why);
    return q;
}

/* A runner's slot service with options o. */
static sl_slots *
runner_with(sluice_queue *q, sl_slots_opts o)
{
    sl_slots *s = NULL;
    char why[600];
    if (sl_slots_open("redis", &o, q, &s, why, sizeof why) != SLUICE_OK)
        TEST_FAIL_("open the Redis slots: %s", why);
    return s;
}

/* A runner's slot service: cap, hold (--timeout, ms), rate. */
static sl_slots *
runner(sluice_queue *q, unsigned cap, int64_t hold_ms, double rate)
{
    return runner_with(q, (sl_slots_opts){cap, 0, hold_ms, rate, false,
                                          false});
}

static sluice_err
take(sl_slots *s, sl_slot_origin *o, sl_slot *slot, double *free_at)
{
    double ignored;
    return sl_slots_take(s, o, sl_boot_msf(), slot,
                         free_at ? free_at : &ignored);
}

static void
sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Take a slot of o, asking again as told, for up to `limit` ms; the
 * time it took. */
static int64_t
take_when_free(sl_slots *s, sl_slot_origin *o, sl_slot *slot, int64_t limit)
{
    int64_t from = sl_boot_ms();
    for (;;) {
        double free_at = 0;
        sluice_err err = take(s, o, slot, &free_at);
        if (err == SLUICE_OK)
            return sl_boot_ms() - from;
        ASSERT_EQ(err, SLUICE_EAGAIN);
        ASSERT_LT(sl_boot_ms() - from, limit);
        int64_t wait = (int64_t)free_at - sl_boot_ms();
        sleep_ms(SL_MAX(SL_MIN(wait, (int64_t)50), (int64_t)5));
    }
}

TEST(two_runners_never_hold_more_than_the_cap_and_tokens_increase)
{
    char loc[300];
    sluice_queue *q = start(loc, sizeof loc);
    sl_slots *r[2] = {runner(q, 3, 60000, 0), runner(q, 3, 60000, 0)};
    sl_slot_origin *o[2] = {sl_slots_origin_open(r[0], "http://a:80"),
                            sl_slots_origin_open(r[1], "http://a:80")};
    sl_slot held[2][3];
    unsigned n[2] = {0, 0};
    uint64_t last = 0;
    unsigned refused = 0;
    uint64_t rng = 42;
    for (int step = 0; step < 400; step++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        int w = (int)((rng >> 33) & 1);
        bool release = ((rng >> 40) % 3) == 0 && n[w] > 0;
        if (release) {
            unsigned i = (unsigned)((rng >> 20) % n[w]);
            sl_slots_release(r[w], &held[w][i], true);
            held[w][i] = held[w][--n[w]];
            continue;
        }
        sl_slot slot;
        sluice_err err = take(r[w], o[w], &slot, NULL);
        if (err == SLUICE_EAGAIN && n[0] + n[1] < 3) {
            /* The other runner released since this one found the
             * origin full: it asks again within 20 ms. */
            sleep_ms(25);
            err = take(r[w], o[w], &slot, NULL);
        }
        if (err == SLUICE_EAGAIN) {
            /* Refused only when the cap is held, in both runners. */
            ASSERT_EQ(n[0] + n[1], 3);
            refused++;
            continue;
        }
        ASSERT_EQ(err, SLUICE_OK);
        ASSERT_GT(slot.token, last);
        last = slot.token;
        held[w][n[w]++] = slot;
        ASSERT_LE(n[0] + n[1], 3);
        ASSERT_EQ(sl_slots_held(r[1 - w], o[1 - w]), n[0] + n[1]);
    }
    ASSERT_GT(refused, 10);
    for (int w = 0; w < 2; w++) {
        while (n[w] > 0)
            sl_slots_release(r[w], &held[w][--n[w]], true);
        sl_slots_origin_close(r[w], o[w]);
        sl_slots_close(r[w]);
    }
    sluice_queue_close(q);
}

TEST(a_slot_given_up_on_is_held_to_its_deadline_by_redis_clock)
{
    char loc[300];
    sluice_queue *q = start(loc, sizeof loc);
    /* --timeout 0.5 s: a slot's life is 1.5 s with the margin. */
    sl_slots *a = runner(q, 1, 500, 0), *b = runner(q, 1, 500, 0);
    sl_slot_origin *oa = sl_slots_origin_open(a, "http://a:80");
    sl_slot_origin *ob = sl_slots_origin_open(b, "http://a:80");
    sl_slot slot, other;
    int64_t taken = sl_boot_ms();
    ASSERT_EQ(take(a, oa, &slot, NULL), SLUICE_OK);
    ASSERT_LE(slot.deadline_boot, taken + 1500 + 5);
    ASSERT_GE(slot.deadline_boot, taken + 1500);
    sl_slots_release(a, &slot, false); /* aborted: the origin may work on */
    ASSERT_EQ(sl_slots_held(b, ob), 1);
    ASSERT_EQ(take(b, ob, &other, NULL), SLUICE_EAGAIN);
    int64_t waited = take_when_free(b, ob, &other, 5000);
    int64_t at = sl_boot_ms() - taken;
    ASSERT_GE(at, 1480);
    ASSERT_LT(at, 1700);
    ASSERT_GT(waited, 1000);
    sl_slots_release(b, &other, true);
    sl_slots_origin_close(a, oa);
    sl_slots_origin_close(b, ob);
    sl_slots_close(a);
    sl_slots_close(b);
    sluice_queue_close(q);
}

TEST(a_release_past_the_deadline_changes_nothing)
{
    char loc[300];
    sluice_queue *q = start(loc, sizeof loc);
    sl_slots *a = runner(q, 1, 200, 0), *b = runner(q, 1, 200, 0);
    sl_slot_origin *oa = sl_slots_origin_open(a, "http://a:80");
    sl_slot_origin *ob = sl_slots_origin_open(b, "http://a:80");
    sl_slot late, now_held;
    ASSERT_EQ(take(a, oa, &late, NULL), SLUICE_OK);
    /* a stops past its slot's deadline; Redis hands the slot to b. */
    take_when_free(b, ob, &now_held, 5000);
    ASSERT_GT(now_held.token, late.token);
    /* a wakes and gives its slot back, complete: b's stays held. */
    sl_slots_release(a, &late, true);
    ASSERT_EQ(sl_slots_held(a, oa), 1);
    ASSERT_EQ(take(a, oa, &late, NULL), SLUICE_EAGAIN);
    sl_slots_release(b, &now_held, true);
    /* A release is sent without waiting for its answer: b's next
     * command comes after it; a's may come first, by microseconds. */
    ASSERT_EQ(sl_slots_held(b, ob), 0);
    ASSERT_EQ(sl_slots_held(a, oa), 0);
    sl_slots_origin_close(a, oa);
    sl_slots_origin_close(b, ob);
    sl_slots_close(a);
    sl_slots_close(b);
    sluice_queue_close(q);
}

TEST(runners_share_the_rate_and_pauses)
{
    char loc[300];
    sluice_queue *q = start(loc, sizeof loc);
    sl_slots *a = runner(q, 20, 60000, 20), *b = runner(q, 20, 60000, 20);
    sl_slot_origin *oa = sl_slots_origin_open(a, "http://a:80");
    sl_slot_origin *ob = sl_slots_origin_open(b, "http://a:80");
    /* 20 a second between them, not 40: in 1 s, 21 at most. */
    unsigned started = 0;
    int64_t from = sl_boot_ms();
    while (sl_boot_ms() - from < 1000) {
        sl_slot slot;
        if (take(a, oa, &slot, NULL) == SLUICE_OK) {
            started++;
            sl_slots_release(a, &slot, true);
        }
        if (take(b, ob, &slot, NULL) == SLUICE_OK) {
            started++;
            sl_slots_release(b, &slot, true);
        }
        sleep_ms(2);
    }
    ASSERT_LE(started, 21);
    ASSERT_GE(started, 18);
    /* A pause one runner learns holds the other. */
    sl_slots_pause(a, oa, sl_boot_ms() + 600);
    sl_slot slot;
    int64_t now = sl_boot_ms(), first = 0, seen = 0;
    /* B learns of it within its read interval (250 ms). */
    while (seen < now + 500 && sl_boot_ms() - now < 400) {
        seen = sl_slots_paused_until(b, ob);
        sleep_ms(10);
    }
    ASSERT_GE(seen, now + 500);
    /* B's first start comes when the pause is over, whatever else its
     * refusals said on the way (the rate's next start, say). */
    while (!first && sl_boot_ms() - now < 3000) {
        if (take(b, ob, &slot, NULL) == SLUICE_OK) {
            first = sl_boot_ms();
            sl_slots_release(b, &slot, true);
        }
        sleep_ms(5);
    }
    ASSERT_GE(first, now + 500);
    ASSERT_LE(first, now + 1500);
    sl_slots_origin_close(a, oa);
    sl_slots_origin_close(b, ob);
    sl_slots_close(a);
    sl_slots_close(b);
    sluice_queue_close(q);
}

/* Runs `name` in a child whose clocks are all `offset` off (faketime). */
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
        setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1);
        execl(self, self, name, (char *)NULL);
        _exit(127);
    }
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

TEST(a_runner_whose_clock_is_off_changes_nothing)
{
    if (access(FAKETIME_LIB, R_OK) != 0)
        SKIP("libfaketime is not installed (scripts/setup.sh test)");
    char loc[300];
    sluice_queue *q = start(loc, sizeof loc);
    /* One slot of two given up on, held 31 s; origin b paused 3 s. */
    sl_slots *a = runner(q, 2, 30000, 0);
    sl_slot_origin *oa = sl_slots_origin_open(a, "http://a:80");
    sl_slot_origin *ob = sl_slots_origin_open(a, "http://b:80");
    sl_slot slot;
    ASSERT_EQ(take(a, oa, &slot, NULL), SLUICE_OK);
    sl_slots_release(a, &slot, false);
    sl_slots_pause(a, ob, sl_boot_ms() + 3000);
    ASSERT_EQ(run_skewed("skewed_runner_sees_what_redis_sees", "+60s", loc), 0);
    ASSERT_EQ(run_skewed("skewed_runner_sees_what_redis_sees", "-60s", loc), 0);
    sl_slots_origin_close(a, oa);
    sl_slots_origin_close(a, ob);
    sl_slots_close(a);
    sluice_queue_close(q);
}

/* Run by the case above under a clock a minute off (a pass on its own). */
TEST(skewed_runner_sees_what_redis_sees)
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
    ASSERT_GT(llabs(sl_now_ms() - redis_ms), 55000);
    sluice_queue *q = NULL;
    ASSERT_EQ(sluice_queue_open(loc, NULL, &q, why, sizeof why), SLUICE_OK);
    sl_slots *s = runner(q, 2, 30000, 0);
    sl_slot_origin *oa = sl_slots_origin_open(s, "http://a:80");
    sl_slot_origin *ob = sl_slots_origin_open(s, "http://b:80");
    sl_slot slot, more;
    double free_at;
    /* The slot given up on is held still: one is free, not two. */
    ASSERT_EQ(sl_slots_held(s, oa), 1);
    ASSERT_EQ(take(s, oa, &slot, NULL), SLUICE_OK);
    ASSERT_EQ(take(s, oa, &more, NULL), SLUICE_EAGAIN);
    sl_slots_release(s, &slot, true);
    /* The pause has under 3 s left on this runner's clock too. */
    int64_t now = sl_boot_ms();
    ASSERT_EQ(take(s, ob, &more, &free_at), SLUICE_EAGAIN);
    ASSERT_GT(free_at, now);
    ASSERT_LE(free_at, now + 3050);
    sl_slots_origin_close(s, oa);
    sl_slots_origin_close(s, ob);
    sl_slots_close(s);
    sluice_queue_close(q);
}

TEST(a_restarted_redis_fences_new_slots_until_old_ones_are_over)
{
    char loc[300];
    sluice_queue *q = start(loc, sizeof loc);
    /* --timeout 1 s: slots live 2 s. */
    sl_slots *a = runner(q, 4, 1000, 0);
    sl_slot_origin *oa = sl_slots_origin_open(a, "http://a:80");
    sl_slot slot, next;
    double free_at;
    ASSERT_EQ(take(a, oa, &slot, NULL), SLUICE_OK);
    test_redis_kill(redis_pid);
    /* Unreachable: a wait, not an error. */
    int64_t now = sl_boot_ms();
    ASSERT_EQ(take(a, oa, &next, &free_at), SLUICE_EAGAIN);
    ASSERT_GT(free_at, now);
    ASSERT_EQ(take(a, oa, &next, &free_at), SLUICE_EAGAIN);
    /* Back from its AOF: another run_id. No slot for the longest hold,
     * to this runner or to one that never saw the old Redis. */
    char loc2[300];
    redis_pid = test_redis_start(loc2, sizeof loc2, NULL);
    int64_t back = sl_boot_ms();
    sl_slots *b = runner(q, 4, 1000, 0);
    sl_slot_origin *ob = sl_slots_origin_open(b, "http://a:80");
    sleep_ms(600); /* past a's wait for an unreachable Redis */
    now = sl_boot_ms();
    ASSERT_EQ(take(a, oa, &next, &free_at), SLUICE_EAGAIN);
    ASSERT_GE(free_at, now + 1300); /* the fence: 2 s from the restart */
    ASSERT_EQ(take(b, ob, &next, &free_at), SLUICE_EAGAIN);
    ASSERT_GE(free_at, now + 1300);
    int64_t waited = take_when_free(a, oa, &next, 6000);
    ASSERT_GE(sl_boot_ms() - back, 1900);
    ASSERT_GT(waited, 700);
    ASSERT_GT(next.token, slot.token);
    sl_slot theirs;
    ASSERT_EQ(take(b, ob, &theirs, NULL), SLUICE_OK);
    sl_slots_release(a, &slot, true); /* past its deadline: nothing */
    sl_slots_release(a, &next, true);
    sl_slots_release(b, &theirs, true);
    sl_slots_origin_close(a, oa);
    sl_slots_origin_close(b, ob);
    sl_slots_close(a);
    sl_slots_close(b);
    sluice_queue_close(q);
}

/* A raw command on the test's Redis; its reply's text ("" for none). */
static void
raw(const char *loc, const char *cmd, char *out, size_t size)
{
    redisContext *c = redisConnectUnix(loc + 7);
    ASSERT(c && !c->err);
    redisReply *r = redisCommand(c, cmd);
    ASSERT_NOT_NULL(r);
    snprintf(out, size, "%s", r->str ? r->str : "");
    freeReplyObject(r);
    redisFree(c);
}

TEST(the_scripts_run_on_a_one_node_cluster)
{
    char loc[300], why[600], text[4096];
    const char *extra[] = {"--cluster-enabled", "yes", "--cluster-config-file",
                           "nodes.conf", NULL};
    redis_pid = test_redis_start(loc, sizeof loc, extra);
    raw(loc, "CLUSTER ADDSLOTSRANGE 0 16383", text, sizeof text);
    ASSERT_STR_EQ(text, "OK");
    for (int i = 0; i < 200; i++) {
        raw(loc, "CLUSTER INFO", text, sizeof text);
        if (strstr(text, "cluster_state:ok"))
            break;
        sleep_ms(25);
    }
    ASSERT_STR_CONTAINS(text, "cluster_state:ok");
    sluice_queue *q = NULL;
    if (sluice_queue_open(loc, NULL, &q, why, sizeof why) != SLUICE_OK)
        TEST_FAIL_("open %s: %s", loc, why);
    sl_slots *a = runner(q, 2, 500, 10), *b = runner(q, 2, 500, 10);
    sl_slot_origin *oa = sl_slots_origin_open(a, "http://a:80");
    sl_slot_origin *ob = sl_slots_origin_open(b, "http://a:80");
    sl_slot s1, s2, s3;
    ASSERT_EQ(take_when_free(a, oa, &s1, 2000) >= 0, 1);
    ASSERT_EQ(take_when_free(b, ob, &s2, 2000) >= 0, 1);
    ASSERT_EQ(take(b, ob, &s3, NULL), SLUICE_EAGAIN);
    sl_slots_pause(a, oa, sl_boot_ms() + 100);
    sl_slots_release(a, &s1, true);
    ASSERT_EQ(sl_slots_held(b, ob), 1);
    sl_slots_release(b, &s2, false);
    ASSERT_EQ(sl_slots_held(a, oa), 1);
    sl_slots_origin_close(a, oa);
    sl_slots_origin_close(b, ob);
    sl_slots_close(a);
    sl_slots_close(b);
    sluice_queue_close(q);
}

/* The last holding listed, its origin kept in `seen_origin`. */
static char seen_origin[64];

static int
holding(void *ctx, const sluice_slot_holding *h)
{
    *(sluice_slot_holding *)ctx = *h;
    snprintf(seen_origin, sizeof seen_origin, "%s", h->origin);
    return 0;
}

TEST(slots_held_in_redis_are_listed_and_cleared)
{
    char loc[300];
    sluice_queue *q = start(loc, sizeof loc);
    sl_slots *a = runner(q, 3, 30000, 0);
    sl_slot_origin *oa = sl_slots_origin_open(a, "http://a:80");
    sl_slot s1, s2;
    ASSERT_EQ(take(a, oa, &s1, NULL), SLUICE_OK);
    ASSERT_EQ(take(a, oa, &s2, NULL), SLUICE_OK);
    sl_slots_release(a, &s1, false);
    sl_slots_release(a, &s2, false);
    sl_slots_pause(a, oa, sl_boot_ms() + 20000);
    sl_slots_origin_close(a, oa);
    sl_slots_close(a);
    sluice_slot_holding h;
    memset(&h, 0, sizeof h);
    ASSERT_EQ(sluice_slots_list(q, holding, &h), SLUICE_OK);
    ASSERT_STR_EQ(seen_origin, "http://a:80");
    ASSERT_EQ(h.held, 2);
    ASSERT_GT(h.free_in_s * 1000, 29000);
    ASSERT_GT(h.paused_for_s * 1000, 19000);
    uint64_t cleared = 0;
    ASSERT_EQ(sluice_slots_clear(q, NULL, &cleared), SLUICE_OK);
    ASSERT_EQ(cleared, 1);
    memset(&h, 0, sizeof h);
    ASSERT_EQ(sluice_slots_list(q, holding, &h), SLUICE_OK);
    ASSERT_NULL(h.origin);
    sl_slots *b = runner(q, 3, 30000, 0);
    sl_slot_origin *ob = sl_slots_origin_open(b, "http://a:80");
    ASSERT_EQ(take(b, ob, &s1, NULL), SLUICE_OK);
    sl_slots_release(b, &s1, true);
    sl_slots_origin_close(b, ob);
    sl_slots_close(b);
    sluice_queue_close(q);
}

/* A runner with adaptive limits (the run's default). */
static sl_slots *
adaptive_runner(sluice_queue *q, unsigned cap)
{
    return runner_with(q, (sl_slots_opts){cap, 0, 60000, 0, true, false});
}

/* How a request on `slot` ended, told to its runner after the release. */
static void
ended(sl_slots *s, sl_slot *slot, sl_pacer_signal signal)
{
    sl_slot_origin *o = slot->origin;
    sl_slot_feedback fb = {signal, slot->taken_boot, 10, {-1, -1, -1, -1}};
    sl_slots_release(s, slot, true);
    sl_slots_feedback(s, o, &fb);
}

/* Take what s may of o within `ms` without giving any back. */
static unsigned
take_all(sl_slots *s, sl_slot_origin *o, sl_slot *held, unsigned max,
         int64_t ms)
{
    unsigned n = 0;
    int64_t from = sl_boot_ms();
    while (sl_boot_ms() - from < ms) {
        if (n < max && take(s, o, &held[n], NULL) == SLUICE_OK)
            n++;
        sleep_ms(2);
    }
    return n;
}

/* The learnt limits live with the origin's slot state: one runner's
 * throttles lower what every runner may start, and recovery, counted on
 * Redis's clock, raises it for all. */
TEST(one_runners_throttles_lower_the_limits_every_runner_obeys)
{
    char loc[300];
    sluice_queue *q = start(loc, sizeof loc);
    sl_slots *a = adaptive_runner(q, 20), *b = adaptive_runner(q, 20);
    sl_slot_origin *oa = sl_slots_origin_open(a, "http://a:80");
    sl_slot_origin *ob = sl_slots_origin_open(b, "http://a:80");
    sl_slot held[20];
    /* At first b may hold the whole cap. */
    unsigned n = take_all(b, ob, held, 20, 100);
    ASSERT_EQ(n, 20);
    while (n > 0)
        sl_slots_release(b, &held[--n], true);
    /* a's requests answer in about 20 ms, then are throttled. */
    for (int i = 0; i < 4; i++) {
        sl_slot slot;
        take_when_free(a, oa, &slot, 2000);
        sleep_ms(20);
        ended(a, &slot, SL_PACER_OK);
    }
    for (int i = 0; i < 5; i++) {
        sl_slot slot;
        take_when_free(a, oa, &slot, 2000);
        ended(a, &slot, SL_PACER_THROTTLE);
    }
    sl_slot_limits la, lb;
    sl_slots_limits(a, oa, &la);
    ASSERT_LT(la.conc, 20);
    ASSERT_GT(la.rate, 0);
    /* b obeys a's limits: it starts no more at once, at a's pace. */
    n = take_all(b, ob, held, 20, 300);
    ASSERT_GE(n, 1);
    ASSERT_LE(n, la.conc + 1);
    sl_slots_limits(b, ob, &lb);
    ASSERT_LE(lb.conc, la.conc + 1);
    ASSERT_GT(lb.rate, 0);
    ASSERT_LE(lb.rate, la.rate * 1.5);
    while (n > 0)
        ended(b, &held[--n], SL_PACER_OK);
    /* b's requests go well while the limits bind: they grow (a request
     * at once a second, a tenth of the rate a second: about 3 and 30%
     * in 3 s), and a, which was throttled, may start more again too. */
    int64_t from = sl_boot_ms();
    n = 0;
    while (sl_boot_ms() - from < 3000) {
        /* Each request lasts 50 ms; another starts whenever allowed. */
        if (n > 0 && sl_boot_ms() - held[0].taken_boot >= 50) {
            ended(b, &held[0], SL_PACER_OK);
            memmove(&held[0], &held[1], --n * sizeof held[0]);
        }
        if (n < 20 && take(b, ob, &held[n], NULL) == SLUICE_OK)
            n++;
        sleep_ms(2);
    }
    while (n > 0)
        ended(b, &held[--n], SL_PACER_OK);
    n = take_all(a, oa, held, 20, 300);
    ASSERT_GE(n, la.conc + 2);
    sl_slot_limits la2;
    sl_slots_limits(a, oa, &la2);
    ASSERT_GE(la2.conc, la.conc + 2);
    ASSERT_GT(la2.rate, la.rate * 1.1);
    while (n > 0)
        sl_slots_release(a, &held[--n], true);
    sl_slots_origin_close(a, oa);
    sl_slots_origin_close(b, ob);
    sl_slots_close(a);
    sl_slots_close(b);
    sluice_queue_close(q);
}

/* After a pause, every runner restarts from half the limits, once. */
TEST(after_a_pause_every_runner_restarts_from_half_the_limits_once)
{
    char loc[300];
    sluice_queue *q = start(loc, sizeof loc);
    sl_slots *a = adaptive_runner(q, 20), *b = adaptive_runner(q, 20);
    sl_slot_origin *oa = sl_slots_origin_open(a, "http://a:80");
    sl_slot_origin *ob = sl_slots_origin_open(b, "http://a:80");
    sl_slot slot;
    take_when_free(b, ob, &slot, 2000);
    ended(b, &slot, SL_PACER_OK);
    sl_slots_pause(a, oa, sl_boot_ms() + 200);
    sleep_ms(250);
    take_when_free(a, oa, &slot, 2000);
    ended(a, &slot, SL_PACER_OK);
    take_when_free(b, ob, &slot, 2000);
    ended(b, &slot, SL_PACER_OK);
    take_when_free(a, oa, &slot, 2000);
    ended(a, &slot, SL_PACER_OK);
    sl_slot_limits la, lb;
    sl_slots_limits(a, oa, &la);
    sl_slots_limits(b, ob, &lb);
    ASSERT_EQ(la.conc, 10);
    ASSERT_EQ(lb.conc, 10);
    sl_slot held[20];
    unsigned n = take_all(b, ob, held, 20, 200);
    ASSERT_EQ(n, 10);
    while (n > 0)
        sl_slots_release(b, &held[--n], true);
    sl_slots_origin_close(a, oa);
    sl_slots_origin_close(b, ob);
    sl_slots_close(a);
    sl_slots_close(b);
    sluice_queue_close(q);
}

/* A runner as `sluice run` opens it: a slot released whole may serve the
 * origin's next request of the same turn (opts.reuse). */
static sl_slots *
reuser(sluice_queue *q, unsigned cap, int64_t hold_ms, double rate)
{
    return runner_with(q, (sl_slots_opts){cap, 0, hold_ms, rate, false,
                                          true});
}

TEST(a_slot_released_whole_serves_the_next_start_of_its_turn)
{
    char loc[300];
    sluice_queue *q = start(loc, sizeof loc);
    sl_slots *a = reuser(q, 2, 60000, 0), *b = runner(q, 2, 60000, 0);
    sl_slot_origin *oa = sl_slots_origin_open(a, "http://a:80");
    sl_slot_origin *ob = sl_slots_origin_open(b, "http://a:80");
    sl_slot first, next;
    ASSERT_EQ(take(a, oa, &first, NULL), SLUICE_OK);
    uint64_t token = first.token;
    int64_t deadline = first.deadline_boot;
    sl_slots_release(a, &first, true);
    /* Kept: Redis still counts it, for every runner. */
    ASSERT_EQ(sl_slots_held(b, ob), 1);
    int64_t now = sl_boot_ms();
    ASSERT_EQ(take(a, oa, &next, NULL), SLUICE_OK);
    /* The same slot, no word to Redis, and the request on it has all of
     * --timeout and the margin still. */
    ASSERT_EQ(next.token, token);
    ASSERT_EQ(next.deadline_boot, deadline);
    ASSERT_GE(next.deadline_boot, now + 60000 + 1000);
    ASSERT_EQ(sl_slots_held(b, ob), 1);
    uint64_t kept_token = next.token;
    /* Released whole and not taken again this turn: every runner's. */
    sl_slots_release(a, &next, true);
    sl_slots_settle(a);
    ASSERT_EQ(sl_slots_held(a, oa), 0);
    /* Kept past KEEP_MS (250 ms) it serves no more: a take asks Redis
     * (a new token), and the old slot went back first. */
    ASSERT_EQ(take(a, oa, &first, NULL), SLUICE_OK);
    ASSERT_GT(first.token, kept_token);
    sl_slots_release(a, &first, true);
    sleep_ms(300);
    ASSERT_EQ(take(a, oa, &next, NULL), SLUICE_OK);
    ASSERT_GT(next.token, first.token);
    ASSERT_EQ(sl_slots_held(a, oa), 1);
    sl_slots_release(a, &next, true);
    sl_slots_settle(a);
    /* A pause another runner stores stops this one's starts as soon as
     * its slots are past KEEP_MS. */
    ASSERT_EQ(take(a, oa, &first, NULL), SLUICE_OK);
    sl_slots_pause(b, ob, sl_boot_ms() + 2000);
    sleep_ms(300);
    sl_slots_release(a, &first, true);
    double free_at = 0;
    ASSERT_EQ(take(a, oa, &next, &free_at), SLUICE_EAGAIN);
    ASSERT_GT(free_at, (double)sl_boot_ms() + 1000);
    sl_slots_settle(a);
    ASSERT_EQ(sl_slots_held(a, oa), 0);
    sl_slots_origin_close(a, oa);
    sl_slots_origin_close(b, ob);
    sl_slots_close(a);
    sl_slots_close(b);
    sluice_queue_close(q);
}

TEST(a_shared_rate_keeps_no_slot_for_reuse)
{
    char loc[300];
    sluice_queue *q = start(loc, sizeof loc);
    /* A rate is kept between every runner's starts: each goes to Redis. */
    sl_slots *a = reuser(q, 4, 60000, 1000);
    sl_slot_origin *oa = sl_slots_origin_open(a, "http://a:80");
    sl_slot first, next;
    ASSERT_EQ(take(a, oa, &first, NULL), SLUICE_OK);
    sl_slots_release(a, &first, true);
    ASSERT_EQ(sl_slots_held(a, oa), 0);
    take_when_free(a, oa, &next, 1000);
    ASSERT_GT(next.token, first.token);
    sl_slots_release(a, &next, true);
    sl_slots_origin_close(a, oa);
    sl_slots_close(a);
    sluice_queue_close(q);
}

/* Held in Redis, as a runner that took none of them sees it. */
static unsigned
held_seen(sl_slots *b, sl_slot_origin *ob, unsigned want)
{
    unsigned n = sl_slots_held(b, ob);
    /* Give-backs are sent without waiting: a moment to arrive. */
    for (int i = 0; i < 100 && n != want; i++) {
        sleep_ms(10);
        n = sl_slots_held(b, ob);
    }
    return n;
}

TEST(the_takes_of_a_turn_share_one_round_trip)
{
    char loc[300];
    sluice_queue *q = start(loc, sizeof loc);
    sl_slots *a = reuser(q, 8, 60000, 0), *b = runner(q, 8, 60000, 0);
    sl_slot_origin *oa = sl_slots_origin_open(a, "http://a:80");
    sl_slot_origin *ob = sl_slots_origin_open(b, "http://a:80");
    sl_slot slot[6];
    /* Five takes to come: the first asks Redis for five, in one go. */
    sl_slots_want(a, oa, 5);
    ASSERT_EQ(take(a, oa, &slot[0], NULL), SLUICE_OK);
    ASSERT_EQ(held_seen(b, ob, 5), 5);
    for (int i = 1; i < 5; i++) {
        ASSERT_EQ(take(a, oa, &slot[i], NULL), SLUICE_OK);
        /* The tokens Redis granted, in a row; nothing more asked. */
        ASSERT_EQ(slot[i].token, slot[0].token + (uint64_t)i);
        ASSERT_EQ(slot[i].deadline_boot, slot[0].deadline_boot);
    }
    ASSERT_EQ(held_seen(b, ob, 5), 5);
    /* A sixth goes to Redis: a new token, one more held. */
    ASSERT_EQ(take(a, oa, &slot[5], NULL), SLUICE_OK);
    ASSERT_GT(slot[5].token, slot[4].token);
    ASSERT_EQ(held_seen(b, ob, 6), 6);
    for (int i = 0; i < 6; i++)
        sl_slots_release(a, &slot[i], true);
    sl_slots_settle(a);
    ASSERT_EQ(held_seen(b, ob, 0), 0);
    /* Granted and not taken this turn: every runner's again. */
    sl_slots_want(a, oa, 4);
    ASSERT_EQ(take(a, oa, &slot[0], NULL), SLUICE_OK);
    ASSERT_EQ(held_seen(b, ob, 4), 4);
    sl_slots_settle(a);
    ASSERT_EQ(held_seen(b, ob, 1), 1);
    /* Never more than the cap, whatever is wanted: b holds 1 now too. */
    sl_slot other;
    ASSERT_EQ(take(b, ob, &other, NULL), SLUICE_OK);
    sl_slots_want(a, oa, 20);
    sl_slot more[8];
    int got = 0;
    while (got < 8 && take(a, oa, &more[got], NULL) == SLUICE_OK)
        got++;
    ASSERT_EQ(got, 6); /* 8, less a's first and b's */
    ASSERT_EQ(held_seen(b, ob, 8), 8);
    for (int i = 0; i < got; i++)
        sl_slots_release(a, &more[i], true);
    sl_slots_release(a, &slot[0], true);
    sl_slots_release(b, &other, true);
    sl_slots_settle(a);
    ASSERT_EQ(held_seen(b, ob, 0), 0);
    sl_slots_origin_close(a, oa);
    sl_slots_origin_close(b, ob);
    sl_slots_close(a);
    sl_slots_close(b);
    sluice_queue_close(q);
}

TEST(under_a_rate_a_take_is_granted_one_slot)
{
    char loc[300];
    sluice_queue *q = start(loc, sizeof loc);
    sl_slots *a = reuser(q, 8, 60000, 1000), *b = runner(q, 8, 60000, 0);
    sl_slot_origin *oa = sl_slots_origin_open(a, "http://a:80");
    sl_slot_origin *ob = sl_slots_origin_open(b, "http://a:80");
    sl_slot slot;
    sl_slots_want(a, oa, 5);
    ASSERT_EQ(take(a, oa, &slot, NULL), SLUICE_OK);
    ASSERT_EQ(held_seen(b, ob, 1), 1);
    sl_slots_release(a, &slot, true);
    sl_slots_settle(a);
    sl_slots_origin_close(a, oa);
    sl_slots_origin_close(b, ob);
    sl_slots_close(a);
    sl_slots_close(b);
    sluice_queue_close(q);
}
