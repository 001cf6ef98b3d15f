/*
 * What only the durable slot service does (lib/slots/slots_durable.c):
 * a crashed service's reservation holds for the next, a slot given up on
 * is held to its deadline, pauses and tokens outlive the process, another
 * boot's rows are read by that boot's start, writes are few, and a write
 * that fails lets no request go.
 */
#include <signal.h>
#include <sys/wait.h>

#include "fault.h"
#include "queue/queue.h"
#include "slots/slots.h"
#include "test.h"

#define ORIGIN "http://img.example:80"

static sluice_queue *
queue(void)
{
    sluice_queue *q = NULL;
    char why[256];
    if (sluice_queue_open("slots.db", NULL, &q, why, sizeof why) != SLUICE_OK)
        TEST_FAIL_("open the queue: %s", why);
    return q;
}

static sl_slots *
service(sluice_queue *q, unsigned cap, int64_t hold_ms)
{
    sl_slots_opts o = {cap, 0, hold_ms, 0, false, false};
    sl_slots *s = NULL;
    char why[256];
    if (sl_slots_open("durable", &o, q, &s, why, sizeof why) != SLUICE_OK)
        TEST_FAIL_("open the durable slots: %s", why);
    return s;
}

/* Take as many slots of `o` as are free now. */
static unsigned
fill(sl_slots *s, sl_slot_origin *o, sl_slot *held, unsigned room)
{
    unsigned n = 0;
    double free_at;
    while (n < room &&
           sl_slots_take(s, o, sl_boot_ms(), &held[n], &free_at) == SLUICE_OK)
        n++;
    return n;
}

/* In a child: take `n` slots and die without a word (kill -9). */
static void
crash_holding(unsigned cap, unsigned n, int64_t hold_ms)
{
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        sluice_queue *q = queue();
        sl_slots *s = service(q, cap, hold_ms);
        sl_slot held[64];
        sl_slot_origin *o = sl_slots_origin_open(s, ORIGIN);
        if (fill(s, o, held, n) != n)
            _exit(3);
        raise(SIGKILL);
    }
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFSIGNALED(status));
}

typedef struct {
    unsigned previous, requests, abandoned;
    int64_t last_deadline;
} tally;

static int
count(void *ctx, const sl_slot_info *info)
{
    tally *t = ctx;
    if (info->holder == SL_SLOT_PREVIOUS)
        t->previous++;
    else if (info->holder == SL_SLOT_ABANDONED)
        t->abandoned++;
    else
        t->requests++;
    if (info->deadline_boot > t->last_deadline)
        t->last_deadline = info->deadline_boot;
    return 0;
}

TEST(a_crashed_service_holds_its_slots_for_the_next_until_their_time)
{
    crash_holding(10, 6, 800);
    sluice_queue *q = queue();
    sl_slots *s = service(q, 10, 800);
    tally t = {0};
    ASSERT_EQ(sl_slots_list(s, count, &t), SLUICE_OK);
    /* At least the six it held, at most what it reserved. */
    ASSERT_GE(t.previous, 6);
    ASSERT_LE(t.previous, 10);
    ASSERT_GT(t.last_deadline, sl_boot_ms());
    sl_slot_origin *o = sl_slots_origin_open(s, ORIGIN);
    sl_slot held[10];
    unsigned got = fill(s, o, held, 10);
    ASSERT_EQ(got, 10 - t.previous);
    /* A full origin with nothing running says when a slot is free. */
    sl_slot more;
    double free_at;
    if (got == 0) {
        ASSERT_EQ(sl_slots_take(s, o, sl_boot_ms(), &more, &free_at),
                  SLUICE_EAGAIN);
        ASSERT_EQ(free_at, t.last_deadline);
    }
    /* Once their time is up (hold + margin + lookahead), all are free. */
    while (sl_boot_ms() < t.last_deadline)
        usleep(50 * 1000);
    got += fill(s, o, held + got, 10 - got);
    ASSERT_EQ(got, 10);
    for (unsigned i = 0; i < got; i++)
        sl_slots_release(s, &held[i], true);
    sl_slots_origin_close(s, o);
    sl_slots_close(s);
    sluice_queue_close(q);
}

TEST(a_slot_given_up_on_is_held_to_its_deadline)
{
    sluice_queue *q = queue();
    sl_slots *s = service(q, 2, 200);
    sl_slot_origin *o = sl_slots_origin_open(s, ORIGIN);
    sl_slot held[2];
    ASSERT_EQ(fill(s, o, held, 2), 2);
    int64_t deadline = held[0].deadline_boot;
    ASSERT_GE(deadline, held[0].taken_boot + 200);
    sl_slots_release(s, &held[0], false); /* a timeout, a stall */
    sl_slots_release(s, &held[1], true);  /* a whole response */
    tally t = {0};
    ASSERT_EQ(sl_slots_list(s, count, &t), SLUICE_OK);
    ASSERT_EQ(t.abandoned, 1);
    ASSERT_EQ(t.requests, 0);
    sl_slot again[2];
    ASSERT_EQ(fill(s, o, again, 2), 1);
    sl_slots_release(s, &again[0], true);
    while (sl_boot_ms() < deadline)
        usleep(50 * 1000);
    ASSERT_EQ(fill(s, o, again, 2), 2);
    sl_slots_release(s, &again[0], true);
    sl_slots_release(s, &again[1], true);
    /* Closing while one is given up on writes it down for the next. */
    ASSERT_EQ(fill(s, o, again, 1), 1);
    sl_slots_release(s, &again[0], false);
    sl_slots_origin_close(s, o);
    sl_slots_close(s);
    s = service(q, 2, 200);
    t = (tally){0};
    ASSERT_EQ(sl_slots_list(s, count, &t), SLUICE_OK);
    ASSERT_EQ(t.previous, 1);
    sl_slots_close(s);
    sluice_queue_close(q);
}

TEST(a_pause_and_the_tokens_outlive_the_process)
{
    sluice_queue *q = queue();
    sl_slots *s = service(q, 2, 1000);
    sl_slot_origin *o = sl_slots_origin_open(s, ORIGIN);
    sl_slot held[1];
    ASSERT_EQ(fill(s, o, held, 1), 1);
    uint64_t token = held[0].token;
    sl_slots_release(s, &held[0], true);
    int64_t until = sl_boot_ms() + 60000;
    sl_slots_pause(s, o, until);
    ASSERT_EQ(sl_slots_sync(s, sl_boot_ms()), SLUICE_OK);
    sl_slots_origin_close(s, o);
    sl_slots_close(s);

    s = service(q, 2, 1000);
    o = sl_slots_origin_open(s, ORIGIN);
    ASSERT_EQ(sl_slots_paused_until(s, o), until);
    double free_at;
    ASSERT_EQ(sl_slots_take(s, o, sl_boot_ms(), &held[0], &free_at),
              SLUICE_EAGAIN);
    ASSERT_EQ(free_at, until);
    ASSERT_EQ(sl_slots_take(s, o, until, &held[0], &free_at), SLUICE_OK);
    ASSERT_GT(held[0].token, token);
    sl_slots_release(s, &held[0], true);
    sl_slots_origin_close(s, o);
    sl_slots_close(s);
    sluice_queue_close(q);
}

TEST(rows_of_another_boot_are_read_from_this_boots_start)
{
    sluice_queue *q = queue();
    int64_t now = sl_boot_ms();
    /* Held from a boot before this one: its requests began before this
     * boot did, so they are over by this boot's start plus their hold. */
    sl_slot_row rows[2] = {
        {.origin = "http://long.example:80", .held = 3,
         .boot_id = "another-boot", .until_boot = 5, .until_wall = 5,
         .hold_ms = now + 60000, .token = 7},
        {.origin = "http://short.example:80", .held = 3,
         .boot_id = "another-boot", .until_boot = 5, .until_wall = 5,
         .hold_ms = 1000, .token = 7},
    };
    ASSERT_EQ(sl_queue_slots_save(q, rows, 2), SLUICE_OK);
    sl_slots *s = service(q, 4, 1000);
    sl_slot_origin *lng = sl_slots_origin_open(s, "http://long.example:80");
    sl_slot_origin *shrt = sl_slots_origin_open(s, "http://short.example:80");
    sl_slot held[8];
    ASSERT_EQ(fill(s, lng, held, 4), 1);
    ASSERT_EQ(fill(s, shrt, held + 1, 4), 4);
    for (int i = 0; i < 5; i++)
        sl_slots_release(s, &held[i], true);
    sl_slots_origin_close(s, lng);
    sl_slots_origin_close(s, shrt);
    sl_slots_close(s);
    sluice_queue_close(q);
}

#ifdef SLUICE_FAULT_INJECTION
TEST(a_thousand_requests_cost_a_handful_of_writes)
{
    sluice_queue *q = queue();
    sl_slots *s = service(q, 8, 60000);
    sl_slot_origin *o = sl_slots_origin_open(s, ORIGIN);
    sl_fault_set(SL_FAULT_DB, 0); /* counts from now, fails none */
    /* A busy origin: one request always running, three coming and going
     * a thousand times. */
    sl_slot busy, held[3];
    ASSERT_EQ(fill(s, o, &busy, 1), 1);
    int64_t t0 = sl_boot_ms();
    for (int i = 0; i < 1000; i++) {
        unsigned n = fill(s, o, held, 3);
        ASSERT_EQ(n, 3);
        for (unsigned k = 0; k < n; k++)
            sl_slots_release(s, &held[k], true);
        ASSERT_EQ(sl_slots_sync(s, sl_boot_ms()), SLUICE_OK);
    }
    /* A write or two to reserve, then a renewal (and perhaps a raise
     * after it) every 250 ms at most, whatever the number of requests. */
    int64_t windows = (sl_boot_ms() - t0) / 250 + 1;
    ASSERT_LE(sl_fault_count(SL_FAULT_DB), 2 + 2 * (unsigned long)windows);
    sl_slots_release(s, &busy, true);
    sl_slots_origin_close(s, o);
    sl_slots_close(s);
    sluice_queue_close(q);
}

TEST(a_write_that_fails_lets_no_request_go)
{
    sluice_queue *q = queue();
    sl_slots *s = service(q, 4, 60000);
    sl_slot_origin *o = sl_slots_origin_open(s, ORIGIN);
    sl_slot slot;
    double free_at;
    sl_fault_set(SL_FAULT_DB, 1); /* the reservation's write */
    ASSERT_EQ(sl_slots_take(s, o, sl_boot_ms(), &slot, &free_at), SLUICE_EDB);
    ASSERT_EQ(s->n_held, 0);
    ASSERT_STR_CONTAINS(s->errmsg, "injected fault");
    /* Nor any after it: memory may promise more than the disk. */
    ASSERT_NE(sl_slots_take(s, o, sl_boot_ms(), &slot, &free_at), SLUICE_OK);
    ASSERT_NE(sl_slots_sync(s, sl_boot_ms()), SLUICE_OK);
    sl_slots_origin_close(s, o);
    sl_slots_close(s);
    sluice_queue_close(q);
}
#endif
