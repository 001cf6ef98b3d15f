/*
 * The marker through an outage of a Redis queue (lib/run/marker.c): marks
 * that cannot reach a killed Redis are kept, in order, and written when it
 * is back from its AOF; a kept mark whose lease another runner took since
 * changes nothing (the scripts fence it by its token); past the bound the
 * marker gives up in one line; a SQLite queue's errors are never an
 * outage.
 */
#include <signal.h>
#include <unistd.h>

#include "queue/queue.h"
#include "redis_server.h"
#include "run/marker.h"
#include "test.h"

static const sl_object_info object = {
    1234, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "image/jpeg", "\"etag-1\""};

static const sl_failure reset = {SL_CLASS_NETWORK, "connection reset", 0};
static const sl_failure gone = {SL_CLASS_HTTP, "HTTP 404", 404};

static sluice_queue *
open_at(const char *location)
{
    sluice_queue *q = NULL;
    char why[600];
    if (sluice_queue_open(location, NULL, &q, why, sizeof why) != SLUICE_OK)
        TEST_FAIL_("open %s: %s", location, why);
    return q;
}

/* n pending records, r0...r(n-1), of one origin. */
static void
fill(sluice_queue *q, size_t n)
{
    const char *origin = "http://img.example:80";
    for (size_t i = 0; i < n; i++) {
        char id[32], url[64];
        snprintf(id, sizeof id, "r%zu", i);
        snprintf(url, sizeof url, "http://img.example/%zu.jpg", i);
        sl_record r = {id,   strlen(id), url,    strlen(url),
                       id,   strlen(id), origin, strlen(origin),
                       NULL, 0,          false};
        sluice_ingest_stats st = {0};
        ASSERT_EQ(sl_queue_upsert(q, &r, 1, sl_now_ms(), &st), SLUICE_OK);
    }
}

static size_t
lease(sluice_queue *q, size_t max, int64_t lease_ms, sl_lease *out)
{
    sl_lease_req req = {max, sl_now_ms(), lease_ms, NULL, 0};
    size_t n = 0;
    ASSERT_EQ(sl_queue_lease(q, &req, out, &n), SLUICE_OK);
    return n;
}

static sluice_counts
counts(sluice_queue *q)
{
    sluice_counts c;
    ASSERT_EQ(sluice_queue_counts(q, &c), SLUICE_OK);
    return c;
}

/* Until the marker finds the queue away (or 5 s). */
static bool
found_down(sl_marker *m)
{
    int64_t since;
    char msg[512];
    for (int i = 0; i < 100; i++) {
        if (sl_marker_down(m, &since, msg, sizeof msg))
            return true;
        usleep(50000);
    }
    return false;
}

TEST(marks_kept_through_a_killed_redis_are_written_after_its_restart)
{
    char loc[300];
    pid_t pid = test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *q = open_at(loc);
    fill(q, 10);
    sl_lease l[10];
    ASSERT_EQ(lease(q, 10, 60000, l), 10);
    sl_marker *m = NULL;
    ASSERT_EQ(sl_marker_start(q, &m), SLUICE_OK);
    sl_marker_set_outage_max(m, 60000);
    test_redis_kill(pid);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(sl_marker_add(m, &l[i], &object, sl_now_ms()), SLUICE_OK);
    ASSERT_EQ(sl_marker_keep(m, SL_MARK_RETRY, &l[5], sl_now_ms(), &reset, true,
                             false),
              SLUICE_OK);
    ASSERT_EQ(sl_marker_keep(m, SL_MARK_DEAD, &l[6], sl_now_ms(), &gone, false,
                             false),
              SLUICE_OK);
    ASSERT_EQ(sl_marker_keep(m, SL_MARK_RELEASE, &l[7], sl_now_ms(), NULL,
                             false, false),
              SLUICE_OK);
    ASSERT_NULL(l[7].id); /* the lease was moved */
    sl_marker_flush(m);
    ASSERT(found_down(m));
    uint64_t lost, lost_bytes;
    char msg[600];
    /* Away is no failure: nothing lost yet. */
    ASSERT_EQ(sl_marker_check(m, &lost, &lost_bytes, msg, sizeof msg),
              SLUICE_OK);
    ASSERT_EQ(lost, 0);
    usleep(1500000); /* several tries, each refused */
    test_redis_start(loc, sizeof loc, NULL);
    sl_marker_wait(m);
    int64_t since;
    ASSERT(!sl_marker_down(m, &since, msg, sizeof msg));
    ASSERT_EQ(sl_marker_check(m, &lost, &lost_bytes, msg, sizeof msg),
              SLUICE_OK);
    ASSERT_EQ(lost, 0);
    ASSERT_EQ(sl_marker_lost_dead(m), 0);
    sl_marker_free(m);
    sluice_counts c = counts(q);
    ASSERT_EQ(c.done, 5);
    ASSERT_EQ(c.retrying, 1);
    ASSERT_EQ(c.dead, 1);
    ASSERT_EQ(c.pending, 1);   /* released */
    ASSERT_EQ(c.in_flight, 2); /* never marked */
    for (int i = 8; i < 10; i++)
        sl_lease_clear(&l[i]);
    sluice_queue_close(q);
}

TEST(a_kept_mark_whose_lease_another_runner_took_changes_nothing)
{
    char loc[300];
    pid_t pid = test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *a = open_at(loc), *b = open_at(loc);
    fill(a, 2);
    sl_lease l[2], other[2];
    ASSERT_EQ(lease(a, 2, 1000, l), 2); /* leases of 1 s */
    sl_marker *m = NULL;
    ASSERT_EQ(sl_marker_start(a, &m), SLUICE_OK);
    sl_marker_set_outage_max(m, 60000);
    test_redis_kill(pid);
    ASSERT_EQ(sl_marker_add(m, &l[0], &object, sl_now_ms()), SLUICE_OK);
    ASSERT_EQ(sl_marker_keep(m, SL_MARK_DEAD, &l[1], sl_now_ms(), &gone, false,
                             false),
              SLUICE_OK);
    sl_marker_flush(m);
    ASSERT(found_down(m));
    /* Back, and before the marker's next try another runner takes both
     * records, their leases having lapsed: the tokens move on. */
    sl_queue_lock(a); /* a turn of the run's keeps the marker out */
    test_redis_start(loc, sizeof loc, NULL);
    usleep(1200000);
    /* b's connection died with the old Redis: its next command fails,
     * and the one after connects again. */
    sluice_counts ignored;
    sluice_queue_counts(b, &ignored);
    ASSERT_EQ(lease(b, 2, 60000, other), 2);
    ASSERT(other[0].token > 0);
    sl_queue_unlock(a);
    sl_marker_wait(m);
    uint64_t lost, lost_bytes;
    char msg[600];
    ASSERT_EQ(sl_marker_check(m, &lost, &lost_bytes, msg, sizeof msg),
              SLUICE_OK);
    ASSERT_EQ(lost, 1); /* the done mark: not done by this runner */
    ASSERT_EQ(lost_bytes, object.size);
    ASSERT_EQ(sl_marker_lost_dead(m), 1);
    sl_marker_free(m);
    sluice_counts c = counts(b);
    ASSERT_EQ(c.in_flight, 2); /* b's, untouched */
    ASSERT_EQ(c.done, 0);
    ASSERT_EQ(c.dead, 0);
    /* b's own marks hold. */
    ASSERT_EQ(sl_queue_complete(b, &other[0], &object, sl_now_ms()), SLUICE_OK);
    ASSERT_EQ(counts(b).done, 1);
    sl_lease_clear(&other[0]);
    sl_lease_clear(&other[1]);
    sluice_queue_close(b);
    sluice_queue_close(a);
}

TEST(past_the_bound_the_marker_gives_up_in_one_line)
{
    char loc[300];
    pid_t pid = test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *q = open_at(loc);
    fill(q, 3);
    sl_lease l[3];
    ASSERT_EQ(lease(q, 3, 60000, l), 3);
    sl_marker *m = NULL;
    ASSERT_EQ(sl_marker_start(q, &m), SLUICE_OK);
    sl_marker_set_outage_max(m, 1000);
    test_redis_kill(pid);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(sl_marker_add(m, &l[i], &object, sl_now_ms()), SLUICE_OK);
    sl_marker_flush(m);
    int64_t t0 = sl_mono_ms();
    uint64_t lost = 0, lost_bytes = 0, n, bytes;
    char msg[600] = "";
    sluice_err err = SLUICE_OK;
    while (err == SLUICE_OK && sl_mono_ms() - t0 < 10000) {
        usleep(50000);
        err = sl_marker_check(m, &n, &bytes, msg, sizeof msg);
        lost += n;
        lost_bytes += bytes;
    }
    int64_t took = sl_mono_ms() - t0;
    ASSERT_EQ(err, SLUICE_ENETWORK);
    ASSERT_GE(took, 1000);
    ASSERT_LT(took, 5000);
    ASSERT_STR_CONTAINS(msg, "redis.sock");
    ASSERT_STR_CONTAINS(msg, "gave up after 1 s (--outage-max)");
    ASSERT(!strchr(msg, '\n'));
    ASSERT_EQ(lost, 3);
    ASSERT_EQ(lost_bytes, 3 * object.size);
    sl_marker_free(m);
    sluice_queue_close(q);
}

TEST(errors_of_a_sqlite_queue_are_never_an_outage)
{
    char loc[300];
    test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *r = open_at(loc), *s = open_at("sqlite:queue.db");
    ASSERT(sl_queue_outage(r, SLUICE_ENETWORK));
    ASSERT(sl_queue_outage(r, SLUICE_ETIMEOUT));
    ASSERT(sl_queue_outage(r, SLUICE_EBUSY)); /* LOADING */
    ASSERT(!sl_queue_outage(r, SLUICE_EACCES));
    ASSERT(!sl_queue_outage(r, SLUICE_ENOTDB));
    ASSERT(!sl_queue_outage(r, SLUICE_EDB));
    ASSERT(!sl_queue_outage(s, SLUICE_EBUSY)); /* a lock */
    ASSERT(!sl_queue_outage(s, SLUICE_ENETWORK));
    sluice_queue_close(s);
    sluice_queue_close(r);
}
