/*
 * The limiter (lib/run/limit.c): origins made and found by name in a hash
 * table that grows, the per-origin cap and the total across origins,
 * pauses that only ever extend, slot counting and the peak, forgetting.
 */
#include "fault.h"
#include "run/limit.h"
#include "test.h"

static sl_limiter
limiter(unsigned cap, unsigned max_total)
{
    sl_limiter l;
    ASSERT_EQ(sl_limiter_init(&l, cap, max_total), SLUICE_OK);
    return l;
}

static sl_origin *
origin(sl_limiter *l, const char *name)
{
    sl_origin *o = sl_limiter_origin(l, name);
    if (!o)
        TEST_FAIL_("sl_limiter_origin(\"%s\") failed", name);
    return o;
}

/* Take slots on `o` while it may start; returns how many were taken. */
static unsigned
fill(sl_limiter *l, sl_origin *o, int64_t now)
{
    unsigned n = 0;
    while (sl_limiter_may_start(l, o, now) && n < 1000) {
        sl_limiter_acquire(l, o);
        n++;
    }
    return n;
}

static size_t
count_origins(const sl_limiter *l)
{
    size_t n = 0;
    SL_FOR_EACH_ORIGIN(l, o)
    {
        (void)o;
        n++;
    }
    return n;
}

TEST(an_origin_is_found_by_its_name)
{
    sl_limiter l = limiter(20, 0);
    char name[64] = "https://img.example:443";
    sl_origin *a = origin(&l, name);
    ASSERT_STR_EQ(a->name, "https://img.example:443");
    ASSERT_EQ(a->in_flight, 0);
    ASSERT_EQ(a->paused_until, 0);
    /* The limiter keeps its own copy of the name. */
    snprintf(name, sizeof name, "http://other.example:80");
    ASSERT_STR_EQ(a->name, "https://img.example:443");
    ASSERT(origin(&l, "https://img.example:443") == a);
    sl_origin *b = origin(&l, name);
    ASSERT(b != a);
    ASSERT(origin(&l, "http://other.example:80") == b);
    /* Names differ by scheme and port too. */
    ASSERT(origin(&l, "http://img.example:443") != a);
    ASSERT(origin(&l, "https://img.example:8443") != a);
    ASSERT_EQ(l.n_origins, 4);
    ASSERT_EQ(count_origins(&l), 4);
    sl_limiter_free(&l);
}

TEST(many_origins_grow_the_table_and_stay_found)
{
    sl_limiter l = limiter(2, 0);
    size_t buckets_before = l.n_buckets;
    enum { N = 1000 };
    static sl_origin *made[N];
    char name[64];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "https://host%d.example:443", i);
        made[i] = origin(&l, name);
        /* Give each a state of its own to find again. */
        made[i]->paused_until = i + 1;
    }
    ASSERT_EQ(l.n_origins, N);
    ASSERT_GT(l.n_buckets, buckets_before);
    ASSERT_EQ(count_origins(&l), N);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "https://host%d.example:443", i);
        sl_origin *o = origin(&l, name);
        ASSERT(o == made[i]);
        ASSERT_EQ(o->paused_until, i + 1);
        ASSERT_STR_EQ(o->name, name);
    }
    /* Looking them up made no new ones. */
    ASSERT_EQ(l.n_origins, N);
    sl_limiter_free(&l);
}

TEST(the_cap_is_respected_per_origin)
{
    sl_limiter l = limiter(3, 0);
    sl_origin *a = origin(&l, "a"), *b = origin(&l, "b");
    ASSERT_EQ(fill(&l, a, 0), 3);
    ASSERT_EQ(a->in_flight, 3);
    ASSERT(!sl_limiter_may_start(&l, a, 0));
    /* Another origin has slots of its own. */
    ASSERT(sl_limiter_may_start(&l, b, 0));
    ASSERT_EQ(fill(&l, b, 0), 3);
    ASSERT_EQ(l.in_flight, 6);
    /* A finished request frees exactly one slot. */
    sl_limiter_release(&l, a);
    ASSERT_EQ(a->in_flight, 2);
    ASSERT(sl_limiter_may_start(&l, a, 0));
    ASSERT_EQ(fill(&l, a, 0), 1);
    ASSERT_EQ(a->in_flight, 3);
    sl_limiter_free(&l);
}

TEST(a_cap_of_zero_means_one)
{
    sl_limiter l = limiter(0, 0);
    ASSERT_EQ(l.cap, 1);
    sl_origin *a = origin(&l, "a");
    ASSERT_EQ(fill(&l, a, 0), 1);
    sl_limiter_free(&l);
}

TEST(max_total_holds_across_origins)
{
    sl_limiter l = limiter(5, 4);
    sl_origin *a = origin(&l, "a"), *b = origin(&l, "b"), *c = origin(&l, "c");
    ASSERT_EQ(fill(&l, a, 0), 4);
    ASSERT(!sl_limiter_may_start(&l, b, 0));
    sl_limiter_release(&l, a);
    sl_limiter_release(&l, a);
    ASSERT_EQ(fill(&l, b, 0), 2);
    ASSERT_EQ(l.in_flight, 4);
    ASSERT(!sl_limiter_may_start(&l, c, 0));
    sl_limiter_release(&l, b);
    ASSERT(sl_limiter_may_start(&l, c, 0));
    ASSERT_EQ(fill(&l, c, 0), 1);
    ASSERT_EQ(a->in_flight + b->in_flight + c->in_flight, 4);
    sl_limiter_free(&l);
}

TEST(a_paused_origin_waits_until_the_pause_ends)
{
    sl_limiter l = limiter(4, 0);
    sl_origin *a = origin(&l, "a"), *b = origin(&l, "b");
    const int64_t now = 1700000000000LL;
    sl_limiter_pause(&l, a, now + 5000);
    ASSERT_EQ(a->paused_until, now + 5000);
    ASSERT(!sl_limiter_may_start(&l, a, now));
    ASSERT(!sl_limiter_may_start(&l, a, now + 4999));
    ASSERT(sl_limiter_may_start(&l, a, now + 5000));
    /* Only that origin is paused. */
    ASSERT(sl_limiter_may_start(&l, b, now));
    /* A shorter pause does not shorten it; a longer one extends it. */
    sl_limiter_pause(&l, a, now + 1000);
    ASSERT_EQ(a->paused_until, now + 5000);
    ASSERT(!sl_limiter_may_start(&l, a, now + 4999));
    sl_limiter_pause(&l, a, now + 9000);
    ASSERT_EQ(a->paused_until, now + 9000);
    ASSERT(!sl_limiter_may_start(&l, a, now + 5000));
    ASSERT(sl_limiter_may_start(&l, a, now + 9000));
    /* A pause in the past changes nothing. */
    sl_limiter_pause(&l, b, now - 1000);
    ASSERT(sl_limiter_may_start(&l, b, now));
    sl_limiter_free(&l);
}

TEST(slots_are_counted_and_the_peak_is_per_origin)
{
    sl_limiter l = limiter(10, 0);
    sl_origin *a = origin(&l, "a"), *b = origin(&l, "b");
    ASSERT_EQ(l.peak, 0);
    for (int i = 0; i < 2; i++)
        sl_limiter_acquire(&l, a);
    ASSERT_EQ(l.peak, 2);
    for (int i = 0; i < 3; i++)
        sl_limiter_acquire(&l, b);
    /* Five in flight in all, but never more than three to one origin. */
    ASSERT_EQ(l.in_flight, 5);
    ASSERT_EQ(l.peak, 3);
    for (int i = 0; i < 3; i++)
        sl_limiter_release(&l, b);
    ASSERT_EQ(b->in_flight, 0);
    ASSERT_EQ(l.in_flight, 2);
    ASSERT_EQ(l.peak, 3);
    for (int i = 0; i < 7; i++)
        sl_limiter_acquire(&l, a);
    ASSERT_EQ(a->in_flight, 9);
    ASSERT_EQ(l.peak, 9);
    while (a->in_flight)
        sl_limiter_release(&l, a);
    ASSERT_EQ(l.in_flight, 0);
    ASSERT_EQ(l.peak, 9);
    sl_limiter_free(&l);
}

TEST(a_forgotten_origin_starts_afresh)
{
    sl_limiter l = limiter(2, 0);
    sl_origin *a = origin(&l, "a"), *b = origin(&l, "b");
    sl_limiter_pause(&l, a, 1000);
    sl_limiter_acquire(&l, a);
    sl_limiter_release(&l, a);
    sl_limiter_forget(&l, a);
    ASSERT_EQ(l.n_origins, 1);
    ASSERT_EQ(count_origins(&l), 1);
    ASSERT(origin(&l, "b") == b);
    a = origin(&l, "a");
    ASSERT_EQ(a->paused_until, 0);
    ASSERT_EQ(a->in_flight, 0);
    ASSERT(sl_limiter_may_start(&l, a, 0));
    ASSERT_EQ(l.n_origins, 2);
    sl_limiter_free(&l);
}

TEST(forgetting_after_growth_keeps_the_others)
{
    sl_limiter l = limiter(2, 0);
    enum { N = 1000 };
    static sl_origin *made[N];
    char name[64];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "o%d", i);
        made[i] = origin(&l, name);
    }
    /* Forget the even ones. */
    for (int i = 0; i < N; i += 2)
        sl_limiter_forget(&l, made[i]);
    ASSERT_EQ(l.n_origins, N / 2);
    ASSERT_EQ(count_origins(&l), N / 2);
    size_t odd = 0;
    SL_FOR_EACH_ORIGIN(&l, o)
    {
        odd += strtol(o->name + 1, NULL, 10) % 2 == 1;
    }
    ASSERT_EQ(odd, N / 2);
    for (int i = 1; i < N; i += 2) {
        snprintf(name, sizeof name, "o%d", i);
        ASSERT(origin(&l, name) == made[i]);
    }
    ASSERT_EQ(l.n_origins, N / 2);
    sl_limiter_free(&l);
}

#ifdef SLUICE_FAULT_INJECTION
/* Out of memory: no origin rather than a broken one, and a table that
 * cannot grow still works. */
TEST(allocation_failures_are_clean)
{
    sl_limiter l;
    sl_fault_set(SL_FAULT_ALLOC, 1);
    ASSERT_EQ(sl_limiter_init(&l, 2, 0), SLUICE_ENOMEM);
    sl_fault_set(SL_FAULT_ALLOC, 0);

    l = limiter(2, 0);
    /* The origin itself, then its name. */
    for (unsigned long nth = 1; nth <= 2; nth++) {
        sl_fault_set(SL_FAULT_ALLOC, nth);
        ASSERT_NULL(sl_limiter_origin(&l, "a"));
        sl_fault_set(SL_FAULT_ALLOC, 0);
        ASSERT_EQ(l.n_origins, 0);
        ASSERT_EQ(count_origins(&l), 0);
    }
    /* Fill the table to the point where the next origin grows it, and
     * fail that growth: origin, name, then the bigger table. */
    char name[32];
    size_t buckets = l.n_buckets;
    for (size_t i = 0; i < 2 * buckets; i++) {
        snprintf(name, sizeof name, "o%zu", i);
        origin(&l, name);
    }
    ASSERT_EQ(l.n_buckets, buckets);
    sl_fault_set(SL_FAULT_ALLOC, 3);
    sl_origin *o = origin(&l, "one more");
    sl_fault_set(SL_FAULT_ALLOC, 0);
    ASSERT_EQ(l.n_buckets, buckets);
    ASSERT(origin(&l, "one more") == o);
    /* The next one grows it, and every origin is still there. */
    origin(&l, "and another");
    ASSERT_GT(l.n_buckets, buckets);
    ASSERT_EQ(l.n_origins, 2 * buckets + 2);
    ASSERT_EQ(count_origins(&l), 2 * buckets + 2);
    ASSERT(origin(&l, "one more") == o);
    for (size_t i = 0; i < 2 * buckets; i++) {
        snprintf(name, sizeof name, "o%zu", i);
        ASSERT_STR_EQ(origin(&l, name)->name, name);
    }
    ASSERT_EQ(l.n_origins, 2 * buckets + 2);
    sl_limiter_free(&l);
}
#endif
