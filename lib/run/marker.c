/*
 * The marker thread (marker.h): batches of marks, each one transaction on
 * the run's queue connection, taken in turn with the run.
 */
#include "marker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    sl_lease lease;
    int64_t size;
    int64_t now_ms;
    char sha256_hex[65];
    char content_type[128]; /* "" when the origin sent none */
    char etag[256];
} sl_mark;

typedef struct {
    sl_mark *v;
    size_t n, cap;
} mark_list;

struct sl_marker {
    sluice_queue *q;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;       /* what follows */
    pthread_cond_t wake;        /* work, or stopping */
    pthread_cond_t idle;        /* todo empty, no batch under way */
    pthread_cond_t taken;       /* todo taken by the thread */
    bool busy;                  /* a batch is under way */
    mark_list adding;           /* the run's, not yet handed over */
    mark_list todo;             /* handed over */
    bool stopping;
    sluice_err err; /* the first failure */
    char errmsg[512];
    uint64_t lost, lost_bytes;
};

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

/* One batch, one transaction; the marks whose lease was gone are counted
 * in *lost and *lost_bytes, a failure's message goes to msg. */
static sluice_err
mark_batch(sl_marker *m, const mark_list *batch, uint64_t *lost,
           uint64_t *lost_bytes, char *msg, size_t size)
{
    sluice_err err = sl_queue_begin(m->q);
    for (size_t i = 0; err == SLUICE_OK && i < batch->n; i++) {
        const sl_mark *k = &batch->v[i];
        sl_object_info info = {k->size, k->sha256_hex,
                               k->content_type[0] ? k->content_type : NULL,
                               k->etag[0] ? k->etag : NULL};
        err = sl_queue_complete(m->q, &k->lease, &info, k->now_ms);
        if (err == SLUICE_ENOTFOUND) { /* the record changed hands */
            (*lost)++;
            *lost_bytes += (uint64_t)k->size;
            err = SLUICE_OK;
        }
    }
    if (err == SLUICE_OK)
        err = sl_queue_commit(m->q);
    if (err != SLUICE_OK) {
        sl_copy(msg, size, sluice_queue_errmsg(m->q));
        sl_queue_rollback(m->q);
    }
    return err;
}

/* A batch that was not committed: none of its records is done. */
static void
all_lost(const mark_list *batch, uint64_t *lost, uint64_t *lost_bytes)
{
    *lost = batch->n;
    *lost_bytes = 0;
    for (size_t i = 0; i < batch->n; i++)
        *lost_bytes += (uint64_t)batch->v[i].size;
}

static void *
marker_main(void *arg)
{
    sl_marker *m = arg;
    mark_list batch = {NULL, 0, 0};
    pthread_mutex_lock(&m->lock);
    for (;;) {
        while (m->todo.n == 0 && !m->stopping) {
            pthread_cond_broadcast(&m->idle);
            pthread_cond_wait(&m->wake, &m->lock);
        }
        if (m->todo.n == 0)
            break; /* stopping, and nothing left */
        mark_list taken = m->todo;
        m->todo = batch; /* empty, its room kept */
        batch = taken;
        m->busy = true;
        pthread_cond_signal(&m->taken);
        pthread_mutex_unlock(&m->lock);

        uint64_t lost = 0, lost_bytes = 0;
        char msg[512] = "";
        sluice_err err = SLUICE_OK;
        sl_queue_lock(m->q);
        if (m->err == SLUICE_OK) /* after a failure, nothing more */
            err = mark_batch(m, &batch, &lost, &lost_bytes, msg, sizeof msg);
        if (m->err != SLUICE_OK || err != SLUICE_OK)
            all_lost(&batch, &lost, &lost_bytes);
        sl_queue_unlock(m->q);
        list_clear(&batch);

        pthread_mutex_lock(&m->lock);
        m->busy = false;
        m->lost += lost;
        m->lost_bytes += lost_bytes;
        if (err != SLUICE_OK && m->err == SLUICE_OK) {
            m->err = err;
            sl_copy(m->errmsg, sizeof m->errmsg, msg);
        }
    }
    pthread_mutex_unlock(&m->lock);
    list_clear(&batch);
    sl_free(batch.v);
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
    k->lease = *lease;
    memset(lease, 0, sizeof *lease);
    k->size = info->size;
    k->now_ms = now_ms;
    sl_copy(k->sha256_hex, sizeof k->sha256_hex, info->sha256_hex);
    sl_copy(k->content_type, sizeof k->content_type, info->content_type);
    sl_copy(k->etag, sizeof k->etag, info->etag);
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
     * the one before that: a wait of one batch at most, and no memory
     * asked for (none to run out of with leases in hand). */
    while (m->todo.n > 0)
        pthread_cond_wait(&m->taken, &m->lock);
    mark_list t = m->todo;
    m->todo = m->adding;
    m->adding = t;
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

void
sl_marker_wait(sl_marker *m)
{
    sl_marker_flush(m);
    pthread_mutex_lock(&m->lock);
    while (m->started && (m->todo.n > 0 || m->busy))
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
    sl_free(m->adding.v);
    sl_free(m->todo.v);
    pthread_cond_destroy(&m->wake);
    pthread_cond_destroy(&m->idle);
    pthread_cond_destroy(&m->taken);
    pthread_mutex_destroy(&m->lock);
    sl_free(m);
}
