/*
 * The leaser (lib/run/leaser.c): a question is answered on its thread
 * with what the queue leases, and says when the next record is due when
 * the queue had fewer; one question at a time; its descriptor wakes the
 * asker; an answer never taken is given back to the queue.
 */
#include <poll.h>

#include "queue/queue.h"
#include "run/leaser.h"
#include "test.h"

#define T0 1700000000000LL /* a fixed "now", in ms */

static const char *const origin_a = "http://a.example:80";

/* A queue of n pending records of origin_a, r0...r(n-1). */
static sluice_queue *
queue_of(size_t n)
{
    sluice_queue *q = NULL;
    char why[600];
    if (sluice_queue_open("sqlite:queue.db", NULL, &q, why, sizeof why) !=
        SLUICE_OK)
        TEST_FAIL_("open: %s", why);
    for (size_t i = 0; i < n; i++) {
        char id[32], url[64];
        snprintf(id, sizeof id, "r%zu", i);
        snprintf(url, sizeof url, "http://a.example/%zu.jpg", i);
        sl_record r = {id,       strlen(id), url,  strlen(url),
                       id,       strlen(id), origin_a,
                       strlen(origin_a),     NULL, 0,
                       false};
        sluice_ingest_stats st = {0};
        ASSERT_EQ(sl_queue_upsert(q, &r, 1, T0, &st), SLUICE_OK);
    }
    return q;
}

/* The leaser's own handle on the same queue. */
static sl_leaser *
leaser_on(sluice_queue **lq)
{
    char why[600];
    ASSERT_EQ(sluice_queue_open("sqlite:queue.db", NULL, lq, why, sizeof why),
              SLUICE_OK);
    sl_leaser *l = NULL;
    ASSERT_EQ(sl_leaser_start(*lq, 16, &l), SLUICE_OK);
    return l;
}

/* The leaser stopped, then its handle and the test's closed. */
static void
end(sl_leaser *l, sluice_queue *lq, sluice_queue *q)
{
    sl_leaser_free(l);
    sluice_queue_close(lq);
    sluice_queue_close(q);
}

static sl_lease_answer *
ask_and_wait(sl_leaser *l, size_t max, const char *skip)
{
    const char *skips[1] = {skip};
    sl_lease_req req = {max, T0 + 1, 60000, skips, skip ? 1 : 0};
    ASSERT(sl_leaser_ask(l, &req));
    sl_lease_answer *a = sl_leaser_answer(l, true);
    ASSERT_NOT_NULL(a);
    ASSERT_EQ(a->err, SLUICE_OK);
    return a;
}

static sluice_counts
counts(sluice_queue *q)
{
    sluice_counts c;
    ASSERT_EQ(sluice_queue_counts(q, &c), SLUICE_OK);
    return c;
}

TEST(a_question_is_answered_with_the_queues_leases)
{
    sluice_queue *q = queue_of(10), *lq = NULL;
    sl_leaser *l = leaser_on(&lq);
    sl_lease_answer *a = ask_and_wait(l, 4, NULL);
    ASSERT_EQ(a->n, 4);
    ASSERT(!a->due_read); /* as many as asked: no look at what is due */
    for (size_t i = 0; i < 4; i++) {
        char id[8];
        snprintf(id, sizeof id, "r%zu", i);
        ASSERT_STR_EQ(a->leases[i].id, id); /* in feed order */
    }
    /* Moved out by the caller, as the run does. */
    sl_lease kept = a->leases[0];
    memset(&a->leases[0], 0, sizeof a->leases[0]);
    sl_leaser_done(l);
    ASSERT(!sl_leaser_busy(l));
    ASSERT_EQ(counts(q).in_flight, 4);
    /* Fewer left than asked for: the answer says nothing more is due. */
    a = ask_and_wait(l, 16, NULL);
    ASSERT_EQ(a->n, 6);
    ASSERT(a->due_read);
    ASSERT(!a->any_due);
    sl_leaser_done(l);
    ASSERT_EQ(sl_queue_release(q, &kept, T0 + 2), SLUICE_OK);
    sl_lease_clear(&kept);
    end(l, lq, q);
}

TEST(origins_to_skip_are_left_alone)
{
    sluice_queue *q = queue_of(3), *lq = NULL;
    sl_leaser *l = leaser_on(&lq);
    sl_lease_answer *a = ask_and_wait(l, 8, origin_a);
    ASSERT_EQ(a->n, 0);
    ASSERT(a->due_read);
    sl_leaser_done(l);
    ASSERT_EQ(counts(q).pending, 3);
    end(l, lq, q);
}

TEST(one_question_at_a_time_and_the_descriptor_wakes)
{
    sluice_queue *q = queue_of(5), *lq = NULL;
    sl_leaser *l = leaser_on(&lq);
    sl_lease_req req = {2, T0 + 1, 60000, NULL, 0};
    ASSERT(sl_leaser_ask(l, &req));
    ASSERT(sl_leaser_busy(l));
    ASSERT(!sl_leaser_ask(l, &req)); /* one is out */
    struct pollfd p = {sl_leaser_fd(l), POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 10000), 1); /* the answer wakes the asker */
    sl_lease_answer *a = sl_leaser_answer(l, false);
    ASSERT_NOT_NULL(a);
    ASSERT_EQ(a->n, 2);
    ASSERT(!sl_leaser_ask(l, &req)); /* its answer not done with yet */
    sl_leaser_done(l); /* leases left in it are the caller's to lose */
    ASSERT_EQ(poll(&p, 1, 0), 0); /* drained */
    ASSERT(sl_leaser_ask(l, &req));
    ASSERT_NOT_NULL(sl_leaser_answer(l, true));
    sl_leaser_done(l);
    /* More than the leaser was made for: refused. */
    req.max = 17;
    ASSERT(!sl_leaser_ask(l, &req));
    end(l, lq, q);
}

TEST(an_answer_never_taken_goes_back_to_the_queue)
{
    sluice_queue *q = queue_of(6), *lq = NULL;
    sl_leaser *l = leaser_on(&lq);
    sl_lease_req req = {5, T0 + 1, 60000, NULL, 0};
    ASSERT(sl_leaser_ask(l, &req));
    /* Freed with the question out: answered, then released. */
    sl_leaser_free(l);
    sluice_counts c = counts(q);
    ASSERT_EQ(c.in_flight, 0);
    ASSERT_EQ(c.pending, 6);
    sluice_queue_close(lq);
    sluice_queue_close(q);
}
