/*
 * The marker (lib/run/marker.c): the marks handed over are committed by its
 * thread, a mark whose lease went stale is counted lost (not done, no
 * failure), a failed commit is reported and leaves its records in flight,
 * and the run's turn on the queue keeps the marker out.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "fault.h"
#include "run/marker.h"
#include "queue/queue.h"
#include "test.h"

#define T0 1700000000000LL /* a fixed "now", in ms */
#define N  300

static const sl_object_info object = {
    1234, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "image/jpeg", "\"etag-1\""};

/* A queue of n pending records, r0...r(n-1). */
static sluice_queue *
queue_of(size_t n)
{
    sluice_queue *q = NULL;
    char why[600];
    if (sluice_queue_open("sqlite:queue.db", NULL, &q, why, sizeof why) !=
        SLUICE_OK)
        TEST_FAIL_("open: %s", why);
    const char *origin = "http://img.example:80";
    for (size_t i = 0; i < n; i++) {
        char id[32], url[64];
        snprintf(id, sizeof id, "r%zu", i);
        snprintf(url, sizeof url, "http://img.example/%zu.jpg", i);
        sl_record r = {id,   strlen(id), url,    strlen(url),
                       id,   strlen(id), origin, strlen(origin),
                       NULL, 0,          false};
        sluice_ingest_stats st = {0};
        ASSERT_EQ(sl_queue_upsert(q, &r, 1, T0, &st), SLUICE_OK);
    }
    return q;
}

static size_t
lease(sluice_queue *q, size_t max, int64_t now, sl_lease *out)
{
    sl_lease_req req = {max, now, 60000, NULL, 0};
    size_t n = 0;
    ASSERT_EQ(sl_queue_lease(q, &req, out, &n), SLUICE_OK);
    return n;
}

/* A marker on q, started. */
static sl_marker *
marker(sluice_queue *q)
{
    sl_marker *m = NULL;
    ASSERT_EQ(sl_marker_start(q, &m), SLUICE_OK);
    return m;
}

/* Hand each lease of l[0..n) to the marker, done with `object`. */
static void
add_all(sl_marker *m, sl_lease *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ASSERT_EQ(sl_marker_add(m, &l[i], &object, T0 + 1), SLUICE_OK);
        ASSERT_NULL(l[i].id); /* the lease was moved */
    }
}

static sluice_counts
counts(sluice_queue *q)
{
    sluice_counts c;
    ASSERT_EQ(sluice_queue_counts(q, &c), SLUICE_OK);
    return c;
}

TEST(marks_handed_over_are_committed_by_the_thread)
{
    sluice_queue *q = queue_of(N);
    static sl_lease l[N];
    ASSERT_EQ(lease(q, N, T0, l), N);
    sl_marker *m = marker(q);
    /* In three batches, as a run hands them over. */
    for (size_t i = 0; i < N; i += 100) {
        add_all(m, l + i, 100);
        sl_marker_flush(m);
    }
    sl_marker_wait(m);
    uint64_t lost = 9, lost_bytes = 9;
    char msg[512] = "";
    ASSERT_EQ(sl_marker_check(m, &lost, &lost_bytes, msg, sizeof msg),
              SLUICE_OK);
    ASSERT_EQ(lost, 0);
    ASSERT_EQ(lost_bytes, 0);
    sl_queue_lock(q);
    ASSERT_EQ(counts(q).done, N);
    ASSERT_EQ(counts(q).in_flight, 0);
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, "r7", &info), SLUICE_OK);
    ASSERT_EQ(info.size, 1234);
    ASSERT_STR_EQ(info.sha256_hex, object.sha256_hex);
    ASSERT_STR_EQ(info.etag, "\"etag-1\"");
    sl_record_info_clear(&info);
    sl_queue_unlock(q);
    sl_marker_free(m);
    sluice_queue_close(q);
}

TEST(stop_commits_what_was_added_and_not_flushed)
{
    sluice_queue *q = queue_of(10);
    sl_lease l[10];
    ASSERT_EQ(lease(q, 10, T0, l), 10);
    sl_marker *m = marker(q);
    add_all(m, l, 10);
    sl_marker_stop(m);
    ASSERT_EQ(counts(q).done, 10);
    sl_marker_free(m);
    sluice_queue_close(q);
}

TEST(a_stale_lease_is_counted_lost_not_done)
{
    sluice_queue *q = queue_of(2);
    sl_lease l[2], again[1];
    ASSERT_EQ(lease(q, 2, T0, l), 2);
    /* r0's lease expires and another runner takes the record. */
    ASSERT_EQ(lease(q, 1, T0 + 61000, again), 1);
    ASSERT_STR_EQ(again[0].id, "r0");
    sl_marker *m = marker(q);
    add_all(m, l, 2);
    sl_marker_wait(m);
    uint64_t lost, lost_bytes;
    char msg[512];
    ASSERT_EQ(sl_marker_check(m, &lost, &lost_bytes, msg, sizeof msg),
              SLUICE_OK);
    ASSERT_EQ(lost, 1);
    ASSERT_EQ(lost_bytes, 1234);
    /* Asked once, told once. */
    ASSERT_EQ(sl_marker_check(m, &lost, &lost_bytes, msg, sizeof msg),
              SLUICE_OK);
    ASSERT_EQ(lost, 0);
    sl_marker_free(m);
    ASSERT_EQ(counts(q).done, 1);
    ASSERT_EQ(counts(q).in_flight, 1); /* the other runner's */
    sl_lease_clear(&again[0]);
    sluice_queue_close(q);
}

#ifdef SLUICE_FAULT_INJECTION /* sl_fault_set */
TEST(a_failed_commit_is_reported_and_its_records_stay_in_flight)
{
    sluice_queue *q = queue_of(5);
    sl_lease l[5];
    ASSERT_EQ(lease(q, 5, T0, l), 5);
    sl_marker *m = marker(q);
    sl_fault_set(SL_FAULT_DB, 1); /* the marker's next database step */
    add_all(m, l, 5);
    sl_marker_wait(m);
    uint64_t lost, lost_bytes;
    char msg[512] = "";
    ASSERT_EQ(sl_marker_check(m, &lost, &lost_bytes, msg, sizeof msg),
              SLUICE_EDB);
    ASSERT_STR_CONTAINS(msg, "injected");
    sl_fault_set(SL_FAULT_DB, 0);
    sl_marker_free(m);
    ASSERT_EQ(counts(q).done, 0);
    ASSERT_EQ(counts(q).in_flight, 5); /* for the next run to recover */
    sluice_queue_close(q);
}
#endif

typedef struct {
    sl_marker *m;
    sl_lease *l;
    size_t n;
} hand_over_args;

static void *
hand_over(void *arg)
{
    hand_over_args *a = arg;
    add_all(a->m, a->l, a->n);
    sl_marker_flush(a->m);
    return NULL;
}

TEST(the_runs_turn_on_the_queue_keeps_the_marker_out)
{
    sluice_queue *q = queue_of(20);
    sl_lease l[20];
    ASSERT_EQ(lease(q, 20, T0, l), 20);
    sl_marker *m = marker(q);
    sl_queue_lock(q);
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    /* Handed over from another thread: the one in its turn may not. */
    hand_over_args a = {m, l, 20};
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, hand_over, &a), 0);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    usleep(200 * 1000); /* the marker has had its chance */
    /* Mid-transaction on the shared connection: nothing of the marker's
     * got in. */
    ASSERT_EQ(counts(q).done, 0);
    ASSERT_EQ(sl_queue_commit(q), SLUICE_OK);
    sl_queue_unlock(q);
    sl_marker_wait(m);
    ASSERT_EQ(counts(q).done, 20);
    sl_marker_free(m);
    sluice_queue_close(q);
}

#ifdef SLUICE_FAULT_INJECTION /* sl_fault_set */
TEST(out_of_memory_leaves_the_lease_with_the_caller)
{
    sluice_queue *q = queue_of(1);
    sl_lease l[1];
    ASSERT_EQ(lease(q, 1, T0, l), 1);
    sl_marker *m = marker(q);
    sl_fault_set(SL_FAULT_ALLOC, 1);
    ASSERT_EQ(sl_marker_add(m, &l[0], &object, T0 + 1), SLUICE_ENOMEM);
    sl_fault_set(SL_FAULT_ALLOC, 0);
    /* Still the caller's, to mark some other way (the run marks it on
     * its own thread). */
    ASSERT_STR_EQ(l[0].id, "r0");
    ASSERT_EQ(sl_queue_complete(q, &l[0], &object, T0 + 1), SLUICE_OK);
    sl_lease_clear(&l[0]);
    sl_marker_free(m);
    ASSERT_EQ(counts(q).done, 1);
    sluice_queue_close(q);
}
#endif

TEST(handing_over_during_the_runs_turn_stops_the_program)
{
    sluice_queue *q = queue_of(1);
    sl_lease l[1];
    ASSERT_EQ(lease(q, 1, T0, l), 1);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        /* The marker may need a turn to take the batch before: waiting
         * for it here could hang, so it is a bug, and stops. */
        sl_marker *m = marker(q);
        sl_queue_lock(q);
        add_all(m, l, 1);
        freopen("/dev/null", "w", stderr);
        sl_marker_flush(m);
        _exit(0);
    }
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFSIGNALED(status));
    ASSERT_EQ(WTERMSIG(status), SIGABRT);
    sl_lease_clear(&l[0]);
    sluice_queue_close(q);
}

/*
 * A queue that may be away, whose batches of marks are answered as the
 * test says: the first in part (one mark refused as Redis does while it
 * loads, one made after it, one stale, one whose answer was lost), the
 * second in full. It notes the ids each batch carried.
 */
static struct {
    int calls;
    char ids[2][8][8];
    size_t n[2];
} fake;

static sluice_err
fake_marks(sluice_queue *q, const sl_queue_mark *v, size_t n,
           sluice_err *results)
{
    static const sluice_err first[] = {SLUICE_OK, SLUICE_EBUSY, SLUICE_OK,
                                       SLUICE_ENOTFOUND, SLUICE_ETIMEOUT};
    int call = fake.calls++;
    ASSERT_LT(call, 2);
    ASSERT_LE(n, 8);
    fake.n[call] = n;
    for (size_t i = 0; i < n; i++)
        snprintf(fake.ids[call][i], sizeof fake.ids[call][i], "%s",
                 v[i].lease->id);
    if (call == 0) {
        ASSERT_EQ(n, 5);
        memcpy(results, first, sizeof first);
        return sl_queue_fail(q, SLUICE_EBUSY, "fake: LOADING");
    }
    /* r4's mark was made after all: found stale, by its own doing. */
    for (size_t i = 0; i < n; i++)
        results[i] = strcmp(v[i].lease->id, "r4") == 0 ? SLUICE_ENOTFOUND
                                                       : SLUICE_OK;
    return SLUICE_OK;
}

static const sl_queue_ops fake_ops = {
    .backend = {SL_FAMILY_QUEUE, "fake", "fake:"},
    .features = SL_QUEUE_F_OUTAGES,
    .marks = fake_marks,
};

TEST(marks_answered_in_part_keep_those_not_made_in_order)
{
    sluice_queue q = {.ops = &fake_ops, .location = "fake:"};
    pthread_mutex_init(&q.turn, NULL);
    sl_marker *m = marker(&q);
    sl_marker_set_outage_max(m, 60000);
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "r%d", i);
        sl_lease l = {.ref = {(uint64_t)i + 1, 0}, .token = 1};
        l.id = sl_strdup(id);
        ASSERT_NOT_NULL(l.id);
        ASSERT_EQ(sl_marker_add(m, &l, &object, T0), SLUICE_OK);
    }
    sl_marker_flush(m);
    sl_marker_wait(m); /* through the outage: a try again after 250 ms */
    ASSERT_EQ(fake.calls, 2);
    ASSERT_EQ(fake.n[0], 5);
    /* The second batch: only the marks not made, in order. */
    ASSERT_EQ(fake.n[1], 2);
    ASSERT_STR_EQ(fake.ids[1][0], "r1");
    ASSERT_STR_EQ(fake.ids[1][1], "r4");
    uint64_t lost, lost_bytes;
    char msg[600];
    ASSERT_EQ(sl_marker_check(m, &lost, &lost_bytes, msg, sizeof msg),
              SLUICE_OK);
    ASSERT_EQ(lost, 1); /* r3's; r4's stale answer is its own doing */
    ASSERT_EQ(lost_bytes, object.size);
    sl_marker_free(m);
    pthread_mutex_destroy(&q.turn);
}
