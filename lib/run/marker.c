/*
 * The marker thread (marker.h): batches of marks, each one transaction on
 * the run's queue connection, taken in turn with the run; on a queue that
 * may be away (Redis), the marks it cannot write yet are kept in order,
 * and written when the queue answers again.
 */
#include "marker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The queue away: try again after this, doubling to the most. */
#define RETRY_MIN_MS 250
#define RETRY_MAX_MS 2000
/* Marks handed to the queue in one call (sl_queue_marks) at most. */
#define MARKS_CALL 256

typedef struct {
    sl_mark_kind kind;
    bool sent;           /* tried once, its answer lost */
    bool counts_attempt; /* a retry's */
    sl_lease lease;
    int64_t size;
    int64_t at_ms; /* done, dead, release: now; retry: when due */
    sl_error_class error_class;
    int http_status;
    char sha256_hex[65];
    char content_type[128]; /* "" when the origin sent none */
    char etag[256];
    char message[256];
} sl_mark;

typedef struct {
    sl_mark *v;
    size_t n, cap;
} mark_list;

struct sl_marker {
    sluice_queue *q;
    bool outages; /* the queue may be away: SL_QUEUE_F_OUTAGES */
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;       /* what follows */
    pthread_cond_t wake;        /* work, or stopping */
    pthread_cond_t idle;        /* nothing to write, no batch under way */
    pthread_cond_t taken;       /* todo taken by the thread */
    bool busy;                  /* a batch is under way */
    mark_list adding;           /* the run's, not yet handed over */
    mark_list todo;             /* handed over */
    mark_list work;             /* the thread's: being written, or kept */
    bool stopping;
    sluice_err err; /* the first failure */
    char errmsg[512];
    uint64_t lost, lost_bytes, lost_dead;
    uint64_t settled; /* goes at the queue taken in (sl_marker_idle) */
    /* The queue away: since when (mono and wall ms; 0: it answers), the
     * next try, the backoff, the last failure; probe: the run found it
     * away, and there may be no mark to find it back with. */
    int64_t outage_max;
    int64_t down_since, down_since_wall, retry_at, backoff;
    sluice_err down_err;
    char down_msg[512];
    bool probe;
    /* One call's marks as the queue takes them, and what became of each
     * (call_marks). */
    sl_queue_mark call[MARKS_CALL];
    sl_object_info info[MARKS_CALL];
    sl_failure why[MARKS_CALL];
    sluice_err results[MARKS_CALL];
};

/* What one go at the queue did. */
typedef struct {
    size_t made; /* the first `made` marks of work are settled */
    uint64_t lost, lost_bytes, lost_dead;
    sluice_err err;
    char msg[512];
} go_result;

static void
list_clear(mark_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        sl_lease_clear(&l->v[i].lease);
    l->n = 0;
}

static bool
list_reserve(mark_list *l, size_t n)
{
    if (n <= l->cap)
        return true;
    size_t cap = l->cap ? l->cap : 64;
    while (cap < n)
        cap *= 2;
    sl_mark *grown = sl_realloc(l->v, cap * sizeof *grown);
    if (!grown)
        return false;
    l->v = grown;
    l->cap = cap;
    return true;
}

/* Move every mark of `from` to the end of `to`, in order; false (nothing
 * moved) when out of memory. */
static bool
list_move(mark_list *to, mark_list *from)
{
    if (from->n == 0)
        return true;
    if (to->n == 0) {
        mark_list t = *to;
        *to = *from;
        *from = t;
        return true;
    }
    if (!list_reserve(to, to->n + from->n))
        return false;
    memcpy(to->v + to->n, from->v, from->n * sizeof *from->v);
    to->n += from->n;
    from->n = 0; /* the leases are to's now */
    return true;
}

/* Drop the first n marks of l. */
static void
list_shift(mark_list *l, size_t n)
{
    if (n == 0)
        return; /* an empty list may have no array (memmove of NULL) */
    for (size_t i = 0; i < n; i++)
        sl_lease_clear(&l->v[i].lease);
    memmove(l->v, l->v + n, (l->n - n) * sizeof *l->v);
    l->n -= n;
}

/* A mark not made: its record was not marked by this run. */
static void
count_lost(const sl_mark *k, go_result *res)
{
    if (k->kind == SL_MARK_DONE) {
        res->lost++;
        res->lost_bytes += (uint64_t)k->size;
    } else if (k->kind == SL_MARK_DEAD) {
        res->lost_dead++;
    }
}

/* Mark k as the queue takes it, pointing into k and *info, *why. */
static sl_queue_mark
queue_mark(const sl_mark *k, sl_object_info *info, sl_failure *why)
{
    static const sl_queue_mark_kind kinds[] = {
        [SL_MARK_DONE] = SL_QUEUE_MARK_DONE,
        [SL_MARK_RETRY] = SL_QUEUE_MARK_RETRY,
        [SL_MARK_DEAD] = SL_QUEUE_MARK_DEAD,
        [SL_MARK_RELEASE] = SL_QUEUE_MARK_RELEASE};
    *info = (sl_object_info){k->size, k->sha256_hex,
                             k->content_type[0] ? k->content_type : NULL,
                             k->etag[0] ? k->etag : NULL};
    *why = (sl_failure){k->error_class, k->message, k->http_status};
    bool failed = k->kind == SL_MARK_RETRY || k->kind == SL_MARK_DEAD;
    return (sl_queue_mark){kinds[k->kind],
                           &k->lease,
                           k->kind == SL_MARK_DONE ? info : NULL,
                           failed ? why : NULL,
                           k->at_ms,
                           k->counts_attempt};
}

/* work.v[from .. from + n) (n <= MARKS_CALL) to the queue in one call,
 * each one's result in m->results. */
static sluice_err
call_marks(sl_marker *m, size_t from, size_t n)
{
    for (size_t i = 0; i < n; i++)
        m->call[i] = queue_mark(&m->work.v[from + i], &m->info[i], &m->why[i]);
    return sl_queue_marks(m->q, m->call, n, m->results);
}

/* The marks of work as one transaction (a queue that is never away): all
 * made, or none and the failure. */
static void
write_batch(sl_marker *m, go_result *res)
{
    const mark_list *batch = &m->work;
    go_result made = {0};
    sluice_err err = sl_queue_begin(m->q);
    for (size_t at = 0; err == SLUICE_OK && at < batch->n; at += MARKS_CALL) {
        size_t n = SL_MIN(batch->n - at, (size_t)MARKS_CALL);
        err = call_marks(m, at, n);
        for (size_t i = 0; i < n; i++)
            if (m->results[i] == SLUICE_ENOTFOUND) /* changed hands */
                count_lost(&batch->v[at + i], &made);
    }
    if (err == SLUICE_OK)
        err = sl_queue_commit(m->q);
    if (err != SLUICE_OK) {
        sl_copy(res->msg, sizeof res->msg, sluice_queue_errmsg(m->q));
        sl_queue_rollback(m->q);
        made = (go_result){0};
        for (size_t i = 0; i < batch->n; i++)
            count_lost(&batch->v[i], &made);
    }
    res->made = batch->n;
    res->lost = made.lost;
    res->lost_bytes = made.lost_bytes;
    res->lost_dead = made.lost_dead;
    res->err = err;
}

/*
 * The marks of work in order, a few hundred a round trip (a queue that
 * may be away writes each at once): on a failure, those before it are
 * made. A mark sent and not answered (a Redis stopped runs it when it
 * resumes) may find its own doing later: a stale lease then is no loss.
 * The marks of the failing call that the queue answered, made or stale,
 * are settled too and leave work; the others stay, in order, for the
 * next try.
 */
static void
write_each(sl_marker *m, go_result *res)
{
    mark_list *work = &m->work;
    sluice_err err = sl_queue_begin(m->q);
    size_t made = 0;
    while (err == SLUICE_OK && made < work->n) {
        size_t n = SL_MIN(work->n - made, (size_t)MARKS_CALL);
        err = call_marks(m, made, n);
        size_t first = n; /* the first mark not settled */
        for (size_t i = 0; i < n; i++) {
            sl_mark *k = &work->v[made + i];
            sluice_err got = m->results[i];
            if (got == SLUICE_ENOTFOUND && !k->sent)
                count_lost(k, res);
            if (got == SLUICE_ETIMEOUT || got == SLUICE_ENETWORK)
                k->sent = true; /* sent, unanswered: Redis may yet run it */
            if (got != SLUICE_OK && got != SLUICE_ENOTFOUND && first == n)
                first = i;
        }
        /* Those answered after it are settled too: out of work at once,
         * the others kept in order. */
        size_t keep = made + first, end = made + n;
        for (size_t i = made + first; i < end; i++) {
            sluice_err got = m->results[i - made];
            if (got == SLUICE_OK || got == SLUICE_ENOTFOUND) {
                sl_lease_clear(&work->v[i].lease);
                continue;
            }
            if (keep != i)
                work->v[keep] = work->v[i];
            keep++;
        }
        memmove(work->v + keep, work->v + end,
                (work->n - end) * sizeof *work->v);
        work->n -= end - keep;
        made += first;
        if (first < n)
            break;
    }
    if (err == SLUICE_OK)
        err = sl_queue_commit(m->q);
    if (err != SLUICE_OK) {
        sl_copy(res->msg, sizeof res->msg, sluice_queue_errmsg(m->q));
        sl_queue_rollback(m->q);
    }
    res->made = made;
    res->err = err;
}

/* Nothing to write, but the queue was found away: is it back? */
static void
probe(sl_marker *m, go_result *res)
{
    int64_t due;
    bool any;
    res->err = sl_queue_next_due(m->q, &due, &any);
    if (res->err != SLUICE_OK)
        sl_copy(res->msg, sizeof res->msg, sluice_queue_errmsg(m->q));
}

/* Every mark kept, not made: counted as lost. Under the lock. */
static void
count_all_lost(sl_marker *m)
{
    go_result lost = {0};
    for (size_t i = 0; i < m->work.n; i++)
        count_lost(&m->work.v[i], &lost);
    m->lost += lost.lost;
    m->lost_bytes += lost.lost_bytes;
    m->lost_dead += lost.lost_dead;
}

/* The outage lasted too long, or the run stops: every mark kept is
 * given up, and the outage is the failure. Under the lock. */
static void
give_up(sl_marker *m)
{
    count_all_lost(m);
    char since[16];
    sl_clock_text(since, sizeof since, m->down_since_wall);
    double secs = (double)m->outage_max / 1000.0;
    if (m->err == SLUICE_OK) {
        m->err = m->down_err;
        if (m->stopping)
            sl_fmt(m->errmsg, sizeof m->errmsg,
                   "%s; the queue has been unreachable since %s: stopping "
                   "with %zu mark%s not written",
                   m->down_msg, since, m->work.n, m->work.n == 1 ? "" : "s");
        else
            sl_fmt(m->errmsg, sizeof m->errmsg,
                   "%s; the queue has been unreachable since %s: gave up "
                   "after %g s (--outage-max)",
                   m->down_msg, since, secs);
    }
    list_clear(&m->work);
    m->probe = false;
}

/* The queue could not be reached: away since now, if not before; try
 * again after the backoff. Under the lock. */
static void
went_away(sl_marker *m, sluice_err err, const char *msg)
{
    int64_t now = sl_mono_ms();
    if (!m->down_since) {
        m->down_since = now;
        m->down_since_wall = sl_now_ms();
        m->backoff = 0;
    }
    m->down_err = err;
    sl_copy(m->down_msg, sizeof m->down_msg, msg);
    m->backoff = m->backoff ? SL_MIN(m->backoff * 2, (int64_t)RETRY_MAX_MS)
                            : RETRY_MIN_MS;
    m->retry_at = now + m->backoff;
    pthread_cond_broadcast(&m->taken); /* a flush waiting joins todo */
}

/* What a go did, taken in. Under the lock. */
static void
settle(sl_marker *m, go_result *res)
{
    m->settled++;
    m->lost += res->lost;
    m->lost_bytes += res->lost_bytes;
    m->lost_dead += res->lost_dead;
    list_shift(&m->work, res->made);
    if (res->err == SLUICE_OK) {
        m->down_since = m->backoff = 0;
        m->probe = false;
        return;
    }
    if (sl_queue_outage(m->q, res->err)) {
        went_away(m, res->err, res->msg);
        if (m->stopping || sl_mono_ms() - m->down_since > m->outage_max)
            give_up(m);
        return;
    }
    /* Any other failure stops the marks: those left are not made. */
    count_all_lost(m);
    list_clear(&m->work);
    m->probe = false;
    if (m->err == SLUICE_OK) {
        m->err = res->err;
        sl_copy(m->errmsg, sizeof m->errmsg, res->msg);
    }
}

/* Until there is something to write (false: stopping, nothing left),
 * not before the next try while the queue is away. Under the lock. */
static bool
wait_for_work(sl_marker *m)
{
    for (;;) {
        bool have = m->work.n > 0 || m->todo.n > 0 || m->probe;
        int64_t now = sl_mono_ms();
        if (have && m->err == SLUICE_OK && m->down_since && !m->stopping &&
            now < m->retry_at) {
            struct timespec until;
            int64_t wait = m->retry_at - now;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += wait / 1000;
            until.tv_nsec += (wait % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&m->wake, &m->lock, &until);
            continue;
        }
        if (have)
            return true;
        if (m->stopping)
            return false;
        pthread_cond_broadcast(&m->idle);
        pthread_cond_wait(&m->wake, &m->lock);
    }
}

static void *
marker_main(void *arg)
{
    sl_marker *m = arg;
    sl_thread_name("sl-marker");
    pthread_mutex_lock(&m->lock);
    while (wait_for_work(m)) {
        /* Behind the marks kept; out of memory to join them, the kept
         * ones go first and todo waits. */
        list_move(&m->work, &m->todo);
        m->busy = true;
        pthread_cond_signal(&m->taken);
        bool failed = m->err != SLUICE_OK;
        pthread_mutex_unlock(&m->lock);

        go_result res = {0};
        if (failed) { /* after a failure, nothing more */
            for (size_t i = 0; i < m->work.n; i++)
                count_lost(&m->work.v[i], &res);
            res.made = m->work.n;
            res.err = SLUICE_OK;
        } else {
            sl_queue_lock(m->q);
            if (m->work.n == 0)
                probe(m, &res);
            else if (m->outages)
                write_each(m, &res);
            else
                write_batch(m, &res);
            sl_queue_unlock(m->q);
        }

        pthread_mutex_lock(&m->lock);
        m->busy = false;
        if (failed) {
            m->lost += res.lost;
            m->lost_bytes += res.lost_bytes;
            m->lost_dead += res.lost_dead;
            list_clear(&m->work);
            m->probe = false;
        } else {
            settle(m, &res);
        }
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

sluice_err
sl_marker_start(sluice_queue *q, sl_marker **out)
{
    *out = NULL;
    sl_marker *m = sl_calloc(1, sizeof *m);
    if (!m)
        return SLUICE_ENOMEM;
    m->q = q;
    m->outages = sl_queue_has(q, SL_QUEUE_F_OUTAGES);
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->wake, NULL);
    pthread_cond_init(&m->idle, NULL);
    pthread_cond_init(&m->taken, NULL);
    if (pthread_create(&m->thread, NULL, marker_main, m) != 0) {
        sl_marker_free(m);
        return SLUICE_ENOMEM;
    }
    m->started = true;
    *out = m;
    return SLUICE_OK;
}

void
sl_marker_set_outage_max(sl_marker *m, int64_t max_ms)
{
    pthread_mutex_lock(&m->lock);
    m->outage_max = max_ms;
    pthread_mutex_unlock(&m->lock);
}

/* Handing over during the run's turn, on the thread that holds it, could
 * wait forever (marker.h): a bug, stopped here rather than hung. */
static void
not_in_turn(sl_marker *m, const char *what)
{
    if (sl_queue_holds_turn(m->q)) {
        fprintf(stderr,
                "sluice: internal error: %s during the run's turn "
                "on the queue\n",
                what);
        abort();
    }
}

sluice_err
sl_marker_add(sl_marker *m, sl_lease *lease, const sl_object_info *info,
              int64_t now_ms)
{
    if (!list_reserve(&m->adding, m->adding.n + 1))
        return SLUICE_ENOMEM;
    sl_mark *k = &m->adding.v[m->adding.n++];
    memset(k, 0, sizeof *k);
    k->kind = SL_MARK_DONE;
    k->lease = *lease;
    memset(lease, 0, sizeof *lease);
    k->size = info->size;
    k->at_ms = now_ms;
    sl_copy(k->sha256_hex, sizeof k->sha256_hex, info->sha256_hex);
    sl_copy(k->content_type, sizeof k->content_type, info->content_type);
    sl_copy(k->etag, sizeof k->etag, info->etag);
    return SLUICE_OK;
}

sluice_err
sl_marker_keep(sl_marker *m, sl_mark_kind kind, sl_lease *lease, int64_t at_ms,
               const sl_failure *why, bool counts_attempt, bool sent)
{
    if (!list_reserve(&m->adding, m->adding.n + 1))
        return SLUICE_ENOMEM;
    sl_mark *k = &m->adding.v[m->adding.n++];
    memset(k, 0, sizeof *k);
    k->kind = kind;
    k->sent = sent;
    k->counts_attempt = counts_attempt;
    k->lease = *lease;
    memset(lease, 0, sizeof *lease);
    k->at_ms = at_ms;
    if (why) {
        k->error_class = why->error_class;
        k->http_status = why->http_status;
        sl_copy(k->message, sizeof k->message, why->message);
    }
    return SLUICE_OK;
}

void
sl_marker_flush(sl_marker *m)
{
    not_in_turn(m, "sl_marker_flush");
    if (m->adding.n == 0 || !m->started)
        return;
    pthread_mutex_lock(&m->lock);
    /* The batch before is taken at once unless the thread is busy with
     * the one before that: a wait of one batch at most, which holds a run
     * that marks faster than the queue takes them back. While the queue
     * is away the run must not wait: the marks join the batch before (no
     * record is leased meanwhile, so they are few). */
    while (m->todo.n > 0) {
        if (m->down_since && list_move(&m->todo, &m->adding))
            break;
        pthread_cond_wait(&m->taken, &m->lock);
    }
    list_move(&m->todo, &m->adding);
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->lock);
}

sluice_err
sl_marker_check(sl_marker *m, uint64_t *lost, uint64_t *lost_bytes, char *msg,
                size_t size)
{
    pthread_mutex_lock(&m->lock);
    *lost = m->lost;
    *lost_bytes = m->lost_bytes;
    m->lost = m->lost_bytes = 0;
    sluice_err err = m->err;
    if (err != SLUICE_OK)
        sl_copy(msg, size, m->errmsg);
    pthread_mutex_unlock(&m->lock);
    return err;
}

uint64_t
sl_marker_lost_dead(sl_marker *m)
{
    pthread_mutex_lock(&m->lock);
    uint64_t n = m->lost_dead;
    m->lost_dead = 0;
    pthread_mutex_unlock(&m->lock);
    return n;
}

void
sl_marker_unreachable(sl_marker *m, sluice_err err, const char *msg)
{
    pthread_mutex_lock(&m->lock);
    if (m->err == SLUICE_OK) {
        if (!m->down_since)
            went_away(m, err, msg);
        m->probe = true;
        /* Not while the thread writes: the marks it holds are its own
         * until its go ends, and its settle() gives up for it then. */
        if (!m->busy && sl_mono_ms() - m->down_since > m->outage_max)
            give_up(m);
        pthread_cond_signal(&m->wake);
    }
    pthread_mutex_unlock(&m->lock);
}

bool
sl_marker_down(sl_marker *m, int64_t *since_wall, char *msg, size_t size)
{
    pthread_mutex_lock(&m->lock);
    bool down = m->down_since != 0;
    *since_wall = m->down_since_wall;
    sl_copy(msg, size, m->down_msg);
    pthread_mutex_unlock(&m->lock);
    return down;
}

bool
sl_marker_idle(sl_marker *m, uint64_t *settled)
{
    pthread_mutex_lock(&m->lock);
    bool idle = m->adding.n == 0 && m->todo.n == 0 && m->work.n == 0 &&
                !m->busy;
    *settled = m->settled;
    pthread_mutex_unlock(&m->lock);
    return idle;
}

void
sl_marker_wait(sl_marker *m)
{
    sl_marker_flush(m);
    pthread_mutex_lock(&m->lock);
    while (m->started && (m->todo.n > 0 || m->work.n > 0 || m->busy))
        pthread_cond_wait(&m->idle, &m->lock);
    pthread_mutex_unlock(&m->lock);
}

void
sl_marker_stop(sl_marker *m)
{
    if (!m || !m->started)
        return;
    sl_marker_flush(m);
    pthread_mutex_lock(&m->lock);
    m->stopping = true;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    m->started = false;
}

void
sl_marker_free(sl_marker *m)
{
    if (!m)
        return;
    sl_marker_stop(m);
    list_clear(&m->adding);
    list_clear(&m->todo);
    list_clear(&m->work);
    sl_free(m->adding.v);
    sl_free(m->todo.v);
    sl_free(m->work.v);
    pthread_cond_destroy(&m->wake);
    pthread_cond_destroy(&m->idle);
    pthread_cond_destroy(&m->taken);
    pthread_mutex_destroy(&m->lock);
    sl_free(m);
}
