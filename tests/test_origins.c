/*
 * The run's origins (lib/run/origins.c): made and found by name in a hash
 * table that grows, forgotten when idle and unpaused, and their pauses
 * kept in the slot service under them.
 */
#include "fault.h"
#include "run/run.h"
#include "test.h"

typedef struct {
    sl_slots *slots;
    sl_origins t;
} fixture;

static void
setup(fixture *f, unsigned cap)
{
    sl_slots_opts o = {cap, 0, 60000, 0, false, false};
    char why[256];
    if (sl_slots_open("memory", &o, NULL, &f->slots, why, sizeof why) != SLUICE_OK)
        TEST_FAIL_("open the slots: %s", why);
    ASSERT_EQ(sl_origins_init(&f->t, f->slots), SLUICE_OK);
}

static void
teardown(fixture *f)
{
    sl_origins_free(&f->t);
    sl_slots_close(f->slots);
}

static sl_origin *
origin(fixture *f, const char *name)
{
    sl_origin *o = sl_origins_get(&f->t, name);
    if (!o)
        TEST_FAIL_("sl_origins_get(\"%s\") failed", name);
    return o;
}

static size_t
count_origins(const sl_origins *t)
{
    size_t n = 0;
    SL_FOR_EACH_ORIGIN(t, o)
    {
        (void)o;
        n++;
    }
    return n;
}

TEST(an_origin_is_found_by_its_name)
{
    fixture f;
    setup(&f, 20);
    char name[64] = "https://img.example:443";
    sl_origin *a = origin(&f, name);
    ASSERT_STR_EQ(a->name, "https://img.example:443");
    ASSERT_EQ(sl_slots_held(f.slots, a->slots), 0);
    ASSERT_EQ(a->paused_until, 0);
    /* The table keeps its own copy of the name. */
    snprintf(name, sizeof name, "http://other.example:80");
    ASSERT_STR_EQ(a->name, "https://img.example:443");
    ASSERT(origin(&f, "https://img.example:443") == a);
    sl_origin *b = origin(&f, name);
    ASSERT(b != a);
    ASSERT(origin(&f, "http://other.example:80") == b);
    /* Names differ by scheme and port too. */
    ASSERT(origin(&f, "http://img.example:443") != a);
    ASSERT(origin(&f, "https://img.example:8443") != a);
    ASSERT_EQ(f.t.table.n, 4);
    ASSERT_EQ(count_origins(&f.t), 4);
    teardown(&f);
}

TEST(many_origins_grow_the_table_and_stay_found)
{
    fixture f;
    setup(&f, 2);
    size_t buckets_before = f.t.table.n_buckets;
    enum { N = 1000 };
    static sl_origin *made[N];
    char name[64];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "https://host%d.example:443", i);
        made[i] = origin(&f, name);
        /* Give each a state of its own to find again. */
        made[i]->down_pauses = (unsigned)i + 1;
    }
    ASSERT_EQ(f.t.table.n, N);
    ASSERT_GT(f.t.table.n_buckets, buckets_before);
    ASSERT_EQ(count_origins(&f.t), N);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "https://host%d.example:443", i);
        sl_origin *o = origin(&f, name);
        ASSERT(o == made[i]);
        ASSERT_EQ(o->down_pauses, i + 1);
        ASSERT_STR_EQ(o->name, name);
    }
    /* Looking them up made no new ones. */
    ASSERT_EQ(f.t.table.n, N);
    teardown(&f);
}

TEST(a_pause_is_kept_by_the_slot_service_and_only_extends)
{
    fixture f;
    setup(&f, 2);
    sl_origin *a = origin(&f, "a");
    const int64_t now = 1700000000000LL;
    sl_origins_pause(&f.t, a, now + 5000);
    ASSERT_EQ(a->paused_until, now + 5000);
    ASSERT_EQ(sl_slots_paused_until(f.slots, a->slots), now + 5000);
    sl_origins_pause(&f.t, a, now + 1000);
    ASSERT_EQ(a->paused_until, now + 5000);
    teardown(&f);
}

TEST(a_sweep_ends_pauses_that_are_over_and_forgets_idle_origins)
{
    fixture f;
    setup(&f, 2);
    const int64_t now = 1700000000000LL;
    sl_origin *a = origin(&f, "a"), *b = origin(&f, "b");
    origin(&f, "idle");
    sl_origins_pause(&f.t, a, now + 1000);
    b->jobs = 1; /* holds a job: stays whatever happens */
    /* Before a's pause ends: the idle one goes, a stays. */
    ASSERT(!sl_origins_sweep(&f.t, now));
    ASSERT_EQ(f.t.table.n, 2);
    ASSERT(origin(&f, "a") == a);
    /* After it: the pause ended (true), and a is forgotten. */
    ASSERT(sl_origins_sweep(&f.t, now + 1000));
    ASSERT_EQ(f.t.table.n, 1);
    ASSERT(origin(&f, "b") == b);
    /* A down origin is remembered, to back off further. */
    b->jobs = 0;
    b->down_pauses = 1;
    ASSERT(!sl_origins_sweep(&f.t, now + 2000));
    ASSERT_EQ(f.t.table.n, 1);
    b->down_pauses = 0;
    sl_origins_sweep(&f.t, now + 2000);
    ASSERT_EQ(f.t.table.n, 0);
    teardown(&f);
}

TEST(a_forgotten_origin_starts_afresh)
{
    fixture f;
    setup(&f, 2);
    sl_origin *a = origin(&f, "a"), *b = origin(&f, "b");
    sl_origins_pause(&f.t, a, 1000);
    sl_slot slot;
    double free_at;
    ASSERT_EQ(sl_slots_take(f.slots, a->slots, 1000, &slot, &free_at),
              SLUICE_OK);
    sl_slots_release(f.slots, &slot, true);
    sl_origins_forget(&f.t, a);
    ASSERT_EQ(f.t.table.n, 1);
    ASSERT_EQ(count_origins(&f.t), 1);
    ASSERT(origin(&f, "b") == b);
    a = origin(&f, "a");
    ASSERT_EQ(a->paused_until, 0);
    ASSERT_EQ(sl_slots_held(f.slots, a->slots), 0);
    ASSERT_EQ(sl_slots_take(f.slots, a->slots, 0, &slot, &free_at), SLUICE_OK);
    sl_slots_release(f.slots, &slot, true);
    ASSERT_EQ(f.t.table.n, 2);
    teardown(&f);
}

TEST(forgetting_after_growth_keeps_the_others)
{
    fixture f;
    setup(&f, 2);
    enum { N = 1000 };
    static sl_origin *made[N];
    char name[64];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "o%d", i);
        made[i] = origin(&f, name);
    }
    /* Forget the even ones. */
    for (int i = 0; i < N; i += 2)
        sl_origins_forget(&f.t, made[i]);
    ASSERT_EQ(f.t.table.n, N / 2);
    ASSERT_EQ(count_origins(&f.t), N / 2);
    size_t odd = 0;
    SL_FOR_EACH_ORIGIN(&f.t, o)
    {
        odd += strtol(o->name + 1, NULL, 10) % 2 == 1;
    }
    ASSERT_EQ(odd, N / 2);
    for (int i = 1; i < N; i += 2) {
        snprintf(name, sizeof name, "o%d", i);
        ASSERT(origin(&f, name) == made[i]);
    }
    ASSERT_EQ(f.t.table.n, N / 2);
    teardown(&f);
}

#ifdef SLUICE_FAULT_INJECTION
/* Out of memory: no origin rather than a broken one, and a table that
 * cannot grow still works. */
TEST(allocation_failures_are_clean)
{
    fixture f;
    sl_slots_opts o = {2, 0, 60000, 0, false, false};
    char why[256];
    ASSERT_EQ(sl_slots_open("memory", &o, NULL, &f.slots, why, sizeof why),
              SLUICE_OK);
    sl_fault_set(SL_FAULT_ALLOC, 1);
    ASSERT_EQ(sl_origins_init(&f.t, f.slots), SLUICE_ENOMEM);
    sl_fault_set(SL_FAULT_ALLOC, 0);
    ASSERT_EQ(sl_origins_init(&f.t, f.slots), SLUICE_OK);

    /* The origin, its name, then its handle in the slot service (which
     * allocates twice): each failure leaves no origin behind. */
    for (unsigned long nth = 1; nth <= 4; nth++) {
        sl_fault_set(SL_FAULT_ALLOC, nth);
        ASSERT_NULL(sl_origins_get(&f.t, "a"));
        sl_fault_set(SL_FAULT_ALLOC, 0);
        ASSERT_EQ(f.t.table.n, 0);
        ASSERT_EQ(count_origins(&f.t), 0);
    }
    /* Fill the table to the point where the next origin grows it, and
     * fail that growth (the fifth allocation of a new origin). */
    char name[32];
    size_t buckets = f.t.table.n_buckets;
    for (size_t i = 0; i < 2 * buckets; i++) {
        snprintf(name, sizeof name, "o%zu", i);
        origin(&f, name);
    }
    ASSERT_EQ(f.t.table.n_buckets, buckets);
    sl_fault_set(SL_FAULT_ALLOC, 5);
    sl_origin *one = origin(&f, "one more");
    sl_fault_set(SL_FAULT_ALLOC, 0);
    ASSERT_EQ(f.t.table.n_buckets, buckets);
    ASSERT(origin(&f, "one more") == one);
    /* The next one grows it, and every origin is still there. */
    origin(&f, "and another");
    ASSERT_GT(f.t.table.n_buckets, buckets);
    ASSERT_EQ(f.t.table.n, 2 * buckets + 2);
    ASSERT_EQ(count_origins(&f.t), 2 * buckets + 2);
    ASSERT(origin(&f, "one more") == one);
    for (size_t i = 0; i < 2 * buckets; i++) {
        snprintf(name, sizeof name, "o%zu", i);
        ASSERT_STR_EQ(origin(&f, name)->name, name);
    }
    ASSERT_EQ(f.t.table.n, 2 * buckets + 2);
    teardown(&f);
}
#endif
