/*
 * The slot service (lib/slots/), against the backend named by
 * $SLUICE_TEST_SLOTS (default "memory"; "durable" keeps its slots in a
 * SQLite queue made for the case; "redis" in a redis-server the case
 * starts; test_redis_slots.c has its own cases): the per-origin cap and
 * the total across origins, pauses that only ever extend, counting and
 * the peak, tokens that fence a stale release, and the listing of held
 * slots.
 * test_durable_slots.c holds what only a durable service does.
 */
#include "fault.h"
#include "redis_server.h"
#include "slots/slots.h"
#include "test.h"

static const char *
backend(void)
{
    const char *name = getenv("SLUICE_TEST_SLOTS");
    return name && *name ? name : "memory";
}

static sluice_queue *queue; /* the durable and Redis services' */

/* Times a case makes up (0, or far ahead) are the service's clock: not
 * so on Redis, whose clock rules. */
static bool
virtual_time(void)
{
    return strcmp(backend(), "redis") != 0;
}

static sl_slots *
service(unsigned cap, unsigned max_total)
{
    sl_slots_opts o = {cap, max_total, 60000, 0, false, false};
    sl_slots *s = NULL;
    char why[256];
    if (!queue && strcmp(backend(), "durable") == 0 &&
        sluice_queue_open("slots.db", NULL, &queue, why, sizeof why) !=
            SLUICE_OK)
        TEST_FAIL_("open a queue: %s", why);
    if (!queue && strcmp(backend(), "redis") == 0) {
        char loc[300];
        test_redis_start(loc, sizeof loc, NULL);
        if (sluice_queue_open(loc, NULL, &queue, why, sizeof why) !=
            SLUICE_OK)
            TEST_FAIL_("open a Redis queue: %s", why);
    }
    if (sl_slots_open(backend(), &o, queue, &s, why, sizeof why) != SLUICE_OK)
        TEST_FAIL_("open %s: %s", backend(), why);
    return s;
}

/* Close the service, and its queue. */
static void
finish(sl_slots *s)
{
    sl_slots_close(s);
    sluice_queue_close(queue);
    queue = NULL;
}

static sl_slot_origin *
origin(sl_slots *s, const char *name)
{
    sl_slot_origin *o = sl_slots_origin_open(s, name);
    if (!o)
        TEST_FAIL_("sl_slots_origin_open(\"%s\") failed", name);
    return o;
}

/* Take one slot of `o` at `now`: SLUICE_OK or SLUICE_EAGAIN. */
static sluice_err
take(sl_slots *s, sl_slot_origin *o, int64_t now, sl_slot *slot)
{
    double free_at;
    return sl_slots_take(s, o, now, slot, &free_at);
}

static bool
may_start(sl_slots *s, sl_slot_origin *o, int64_t now)
{
    sl_slot slot;
    if (take(s, o, now, &slot) != SLUICE_OK)
        return false;
    sl_slots_release(s, &slot, true);
    return true;
}

/* Take slots of `o` while there are free ones, into held[] (at most
 * `room`); returns how many were taken. */
static unsigned
fill(sl_slots *s, sl_slot_origin *o, int64_t now, sl_slot *held, unsigned room)
{
    unsigned n = 0;
    while (n < room && take(s, o, now, &held[n]) == SLUICE_OK)
        n++;
    return n;
}

TEST(the_cap_is_respected_per_origin)
{
    sl_slots *s = service(3, 0);
    sl_slot_origin *a = origin(s, "a"), *b = origin(s, "b");
    sl_slot ha[8], hb[8];
    ASSERT_EQ(fill(s, a, 0, ha, 8), 3);
    ASSERT_EQ(sl_slots_held(s, a), 3);
    ASSERT(!may_start(s, a, 0));
    /* Another origin has slots of its own. */
    ASSERT(may_start(s, b, 0));
    ASSERT_EQ(fill(s, b, 0, hb, 8), 3);
    ASSERT_EQ(s->n_held, 6);
    /* A finished request frees exactly one slot. */
    sl_slots_release(s, &ha[0], true);
    ASSERT_EQ(sl_slots_held(s, a), 2);
    ASSERT(may_start(s, a, 0));
    ASSERT_EQ(fill(s, a, 0, ha, 1), 1);
    ASSERT_EQ(sl_slots_held(s, a), 3);
    for (int i = 0; i < 3; i++) {
        sl_slots_release(s, &ha[i], true);
        sl_slots_release(s, &hb[i], true);
    }
    sl_slots_origin_close(s, a);
    sl_slots_origin_close(s, b);
    finish(s);
}

TEST(a_full_origin_says_after_a_release)
{
    sl_slots *s = service(1, 0);
    sl_slot_origin *a = origin(s, "a");
    sl_slot held, other;
    double free_at = -1;
    ASSERT_EQ(sl_slots_take(s, a, 0, &held, &free_at), SLUICE_OK);
    ASSERT_EQ(sl_slots_take(s, a, 0, &other, &free_at), SLUICE_EAGAIN);
    ASSERT_EQ(free_at, 0); /* no time: when one is released */
    sl_slots_release(s, &held, true);
    sl_slots_origin_close(s, a);
    finish(s);
}

TEST(a_cap_of_zero_means_one)
{
    sl_slots *s = service(0, 0);
    ASSERT_EQ(s->opts.cap, 1);
    sl_slot_origin *a = origin(s, "a");
    sl_slot held[4];
    ASSERT_EQ(fill(s, a, 0, held, 4), 1);
    sl_slots_release(s, &held[0], true);
    sl_slots_origin_close(s, a);
    finish(s);
}

TEST(max_total_holds_across_origins)
{
    sl_slots *s = service(5, 4);
    sl_slot_origin *a = origin(s, "a"), *b = origin(s, "b"),
                   *c = origin(s, "c");
    sl_slot ha[8], hb[8], hc[8];
    ASSERT_EQ(fill(s, a, 0, ha, 8), 4);
    ASSERT(!may_start(s, b, 0));
    sl_slots_release(s, &ha[3], true);
    sl_slots_release(s, &ha[2], true);
    ASSERT_EQ(fill(s, b, 0, hb, 8), 2);
    ASSERT_EQ(s->n_held, 4);
    ASSERT(!may_start(s, c, 0));
    sl_slots_release(s, &hb[1], true);
    ASSERT(may_start(s, c, 0));
    ASSERT_EQ(fill(s, c, 0, hc, 8), 1);
    ASSERT_EQ(sl_slots_held(s, a) + sl_slots_held(s, b) + sl_slots_held(s, c),
              4);
    sl_slots_release(s, &ha[0], true);
    sl_slots_release(s, &ha[1], true);
    sl_slots_release(s, &hb[0], true);
    sl_slots_release(s, &hc[0], true);
    finish(s);
}

TEST(a_paused_origin_waits_until_the_pause_ends)
{
    if (!virtual_time())
        return; /* a_pause_holds_on_the_real_clock */
    sl_slots *s = service(4, 0);
    sl_slot_origin *a = origin(s, "a"), *b = origin(s, "b");
    const int64_t now = 1700000000000LL;
    sl_slot slot;
    double free_at;
    sl_slots_pause(s, a, now + 5000);
    ASSERT_EQ(sl_slots_paused_until(s, a), now + 5000);
    ASSERT(!may_start(s, a, now));
    ASSERT_EQ(sl_slots_take(s, a, now, &slot, &free_at), SLUICE_EAGAIN);
    ASSERT_EQ(free_at, now + 5000); /* the pause's end */
    ASSERT(!may_start(s, a, now + 4999));
    ASSERT(may_start(s, a, now + 5000));
    /* Only that origin is paused. */
    ASSERT(may_start(s, b, now));
    ASSERT_EQ(sl_slots_paused_until(s, b), 0);
    /* A shorter pause does not shorten it; a longer one extends it. */
    sl_slots_pause(s, a, now + 1000);
    ASSERT_EQ(sl_slots_paused_until(s, a), now + 5000);
    ASSERT(!may_start(s, a, now + 4999));
    sl_slots_pause(s, a, now + 9000);
    ASSERT_EQ(sl_slots_paused_until(s, a), now + 9000);
    ASSERT(!may_start(s, a, now + 5000));
    ASSERT(may_start(s, a, now + 9000));
    /* A pause in the past changes nothing. */
    sl_slots_pause(s, b, now - 1000);
    ASSERT(may_start(s, b, now));
    finish(s);
}

/* The same on the boot clock, as every service keeps it. */
TEST(a_pause_holds_on_the_real_clock)
{
    sl_slots *s = service(4, 0);
    sl_slot_origin *a = origin(s, "a"), *b = origin(s, "b");
    int64_t now = sl_boot_ms();
    sl_slot slot;
    double free_at;
    sl_slots_pause(s, a, now + 400);
    int64_t until = sl_slots_paused_until(s, a);
    ASSERT_GE(until, now + 400);
    ASSERT_LE(until, now + 450);
    ASSERT_EQ(sl_slots_take(s, a, sl_boot_msf(), &slot, &free_at),
              SLUICE_EAGAIN);
    ASSERT_GE(free_at, now + 400);
    ASSERT_LE(free_at, now + 450);
    ASSERT(may_start(s, b, sl_boot_ms()));
    /* Shorter: no change. */
    sl_slots_pause(s, a, now + 100);
    ASSERT_GE(sl_slots_paused_until(s, a), now + 400);
    usleep((useconds_t)(until - sl_boot_ms() + 20) * 1000);
    ASSERT(may_start(s, a, sl_boot_ms()));
    sl_slots_origin_close(s, a);
    sl_slots_origin_close(s, b);
    finish(s);
}

TEST(slots_are_counted_and_the_peak_is_per_origin)
{
    sl_slots *s = service(10, 0);
    sl_slot_origin *a = origin(s, "a"), *b = origin(s, "b");
    sl_slot ha[10], hb[3];
    ASSERT_EQ(s->peak, 0);
    ASSERT_EQ(fill(s, a, 0, ha, 2), 2);
    ASSERT_EQ(s->peak, 2);
    ASSERT_EQ(fill(s, b, 0, hb, 3), 3);
    /* Five in flight in all, but never more than three to one origin. */
    ASSERT_EQ(s->n_held, 5);
    ASSERT_EQ(s->peak, 3);
    for (int i = 0; i < 3; i++)
        sl_slots_release(s, &hb[i], true);
    ASSERT_EQ(sl_slots_held(s, b), 0);
    ASSERT_EQ(s->n_held, 2);
    ASSERT_EQ(s->peak, 3);
    ASSERT_EQ(fill(s, a, 0, ha + 2, 7), 7);
    ASSERT_EQ(sl_slots_held(s, a), 9);
    ASSERT_EQ(s->peak, 9);
    for (int i = 0; i < 9; i++)
        sl_slots_release(s, &ha[i], true);
    ASSERT_EQ(s->n_held, 0);
    ASSERT_EQ(s->peak, 9);
    finish(s);
}

TEST(tokens_only_increase_and_a_stale_release_changes_nothing)
{
    sl_slots *s = service(1, 0);
    sl_slot_origin *a = origin(s, "a");
    sl_slot first, second;
    ASSERT_EQ(take(s, a, 0, &first), SLUICE_OK);
    sl_slot stale = first;
    sl_slots_release(s, &first, true);
    ASSERT_EQ(take(s, a, 0, &second), SLUICE_OK);
    ASSERT_EQ(second.index, stale.index); /* the same slot, taken again */
    ASSERT_GT(second.token, stale.token);
    /* The first holder's late release: the slot stays taken. */
    sl_slots_release(s, &stale, true);
    ASSERT_EQ(s->n_held, 1);
    ASSERT_EQ(sl_slots_held(s, a), 1);
    ASSERT(!may_start(s, a, 0));
    sl_slots_release(s, &second, true);
    ASSERT_EQ(sl_slots_held(s, a), 0);
    ASSERT(may_start(s, a, 0));
    finish(s);
}

TEST(a_slot_has_a_deadline_of_its_taking_plus_the_hold)
{
    sl_slots *s = service(2, 0);
    sl_slot_origin *a = origin(s, "a");
    sl_slot slot;
    int64_t now = sl_boot_ms();
    ASSERT_EQ(take(s, a, now, &slot), SLUICE_OK);
    ASSERT_EQ(slot.taken_boot, now);
    ASSERT_GE(slot.deadline_boot, slot.taken_boot + 60000);
    sl_slots_release(s, &slot, true);
    finish(s);
}

static int
collect(void *ctx, const sl_slot_info *info)
{
    char *seen = ctx;
    size_t n = strlen(seen);
    snprintf(seen + n, 256 - n, "%s:%llu ", info->origin,
             (unsigned long long)info->token);
    return 0;
}

TEST(held_slots_are_listed_with_their_origin_and_token)
{
    sl_slots *s = service(3, 0);
    sl_slot_origin *a = origin(s, "http://a:80"), *b = origin(s, "http://b:80");
    sl_slot ha[2], hb[1];
    char seen[256] = "";
    ASSERT_EQ(sl_slots_list(s, collect, seen), SLUICE_OK);
    ASSERT_STR_EQ(seen, "");
    ASSERT_EQ(fill(s, a, 0, ha, 2), 2);
    ASSERT_EQ(fill(s, b, 0, hb, 1), 1);
    sl_slots_release(s, &ha[0], true);
    ASSERT_EQ(sl_slots_list(s, collect, seen), SLUICE_OK);
    char want_a[64], want_b[64];
    snprintf(want_a, sizeof want_a, "http://a:80:%llu ",
             (unsigned long long)ha[1].token);
    snprintf(want_b, sizeof want_b, "http://b:80:%llu ",
             (unsigned long long)hb[0].token);
    ASSERT_STR_CONTAINS(seen, want_a);
    ASSERT_STR_CONTAINS(seen, want_b);
    ASSERT_EQ(strlen(seen), strlen(want_a) + strlen(want_b));
    sl_slots_release(s, &ha[1], true);
    sl_slots_release(s, &hb[0], true);
    finish(s);
}

TEST(an_unknown_backend_is_a_clear_error)
{
    sl_slots_opts o = {2, 0, 1000, 0, false, false};
    sl_slots *s = (sl_slots *)1;
    char why[256];
    ASSERT_EQ(sl_slots_open("no-such", &o, NULL, &s, why, sizeof why),
              SLUICE_EUNSUPPORTED);
    ASSERT_NULL(s);
    ASSERT_STR_CONTAINS(why, "no-such");
}

#ifdef SLUICE_FAULT_INJECTION
/* Out of memory at any allocation: no origin rather than a broken one,
 * and no slot rather than a miscounted one. */
TEST(allocation_failures_are_clean)
{
    sl_slots *s = service(2, 0);
    sl_slot_origin *a = NULL;
    for (unsigned long nth = 1; !a; nth++) {
        ASSERT_LT(nth, 100);
        sl_fault_set(SL_FAULT_ALLOC, nth);
        a = sl_slots_origin_open(s, "a");
        sl_fault_set(SL_FAULT_ALLOC, 0);
    }
    sl_slot slot;
    double free_at;
    for (unsigned long nth = 1;; nth++) {
        ASSERT_LT(nth, 100);
        sl_fault_set(SL_FAULT_ALLOC, nth);
        sluice_err err = sl_slots_take(s, a, 0, &slot, &free_at);
        sl_fault_set(SL_FAULT_ALLOC, 0);
        if (err == SLUICE_OK)
            break;
        ASSERT_EQ(err, SLUICE_ENOMEM);
        ASSERT_EQ(s->n_held, 0);
        ASSERT_EQ(sl_slots_held(s, a), 0);
    }
    ASSERT_EQ(sl_slots_held(s, a), 1);
    sl_slots_release(s, &slot, true);
    ASSERT_EQ(sl_slots_held(s, a), 0);
    finish(s);
}
#endif
