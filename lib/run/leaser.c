/*
 * The leaser thread (leaser.h): each question one lease call on the
 * leaser's own queue handle, and a look at what is due when the queue
 * had fewer records than asked for; the answer waits for the loop, which
 * the eventfd wakes.
 */
#include "leaser.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef enum {
    LEASER_IDLE,     /* no question */
    LEASER_ASKED,    /* the thread works on it */
    LEASER_ANSWERED, /* the answer waits for the loop */
} leaser_phase;

struct sl_leaser {
    sluice_queue *q; /* the thread's while ASKED, else the loop's */
    size_t max;
    int fd;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock; /* phase, stopping */
    pthread_cond_t wake;  /* a question, or stopping */
    pthread_cond_t done;  /* an answer */
    leaser_phase phase;
    bool stopping;
    /* The question: its names copied into one block. */
    sl_lease_req req;
    const char **skip;
    char *names;
    sl_lease_answer ans;
};

/* One lease call, and the due look when it fell short. */
static void
lease_once(sl_leaser *l)
{
    sl_lease_answer *a = &l->ans;
    sluice_err err = sl_queue_begin(l->q);
    if (err == SLUICE_OK)
        err = sl_queue_lease(l->q, &l->req, a->leases, &a->n);
    if (err == SLUICE_OK && a->n < l->req.max) {
        err = sl_queue_next_due(l->q, &a->due_ms, &a->any_due);
        a->due_read = err == SLUICE_OK;
    }
    if (err == SLUICE_OK)
        err = sl_queue_commit(l->q);
    if (err != SLUICE_OK) {
        sl_copy(a->msg, sizeof a->msg, sluice_queue_errmsg(l->q));
        a->outage = sl_queue_outage(l->q, err);
        sl_queue_rollback(l->q);
    }
    a->err = err;
}

/* The question, answered. A connection found broken is dropped by the
 * call that finds it and made again by the next, so a queue that came
 * back after an outage is asked twice before it counts as away. */
static void
answer(sl_leaser *l)
{
    sl_lease_answer *a = &l->ans;
    lease_once(l);
    if (a->err != SLUICE_OK && a->outage && a->n == 0)
        lease_once(l);
}

static void *
leaser_main(void *arg)
{
    sl_leaser *l = arg;
    sl_thread_name("sl-leaser");
    pthread_mutex_lock(&l->lock);
    for (;;) {
        while (l->phase != LEASER_ASKED && !l->stopping)
            pthread_cond_wait(&l->wake, &l->lock);
        if (l->phase != LEASER_ASKED)
            break; /* stopping, no question out */
        pthread_mutex_unlock(&l->lock);
        answer(l);
        pthread_mutex_lock(&l->lock);
        l->phase = LEASER_ANSWERED;
        pthread_cond_broadcast(&l->done);
        uint64_t one = 1;
        while (write(l->fd, &one, sizeof one) < 0 && errno == EINTR)
            ;
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

sluice_err
sl_leaser_start(sluice_queue *q, size_t max, sl_leaser **out)
{
    sl_leaser *l = sl_calloc(1, sizeof *l);
    *out = NULL;
    if (!l)
        return SLUICE_ENOMEM;
    l->q = q;
    l->max = max;
    l->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->wake, NULL);
    pthread_cond_init(&l->done, NULL);
    l->ans.leases = sl_calloc(max, sizeof *l->ans.leases);
    if (l->fd < 0 || !l->ans.leases)
        goto fail;
    if (pthread_create(&l->thread, NULL, leaser_main, l) != 0)
        goto fail;
    l->started = true;
    *out = l;
    return SLUICE_OK;
fail:
    sl_leaser_free(l);
    return SLUICE_ENOMEM;
}

int
sl_leaser_fd(const sl_leaser *l)
{
    return l->fd;
}

bool
sl_leaser_busy(sl_leaser *l)
{
    pthread_mutex_lock(&l->lock);
    bool busy = l->phase != LEASER_IDLE;
    pthread_mutex_unlock(&l->lock);
    return busy;
}

/* The question's names, copied into l->skip and l->names. */
static bool
copy_skip(sl_leaser *l, const sl_lease_req *req)
{
    size_t total = 0;
    for (size_t i = 0; i < req->n_skip; i++)
        total += strlen(req->skip_origins[i]) + 1;
    sl_free(l->names);
    sl_free(l->skip);
    l->names = sl_malloc(total ? total : 1);
    l->skip = sl_calloc(req->n_skip ? req->n_skip : 1, sizeof *l->skip);
    if (!l->names || !l->skip)
        return false;
    char *p = l->names;
    for (size_t i = 0; i < req->n_skip; i++) {
        size_t len = strlen(req->skip_origins[i]) + 1;
        memcpy(p, req->skip_origins[i], len);
        l->skip[i] = p;
        p += len;
    }
    return true;
}

bool
sl_leaser_ask(sl_leaser *l, const sl_lease_req *req)
{
    if (sl_leaser_busy(l) || req->max == 0 || req->max > l->max ||
        !copy_skip(l, req))
        return false;
    l->req = *req;
    l->req.skip_origins = l->skip;
    sl_lease *leases = l->ans.leases;
    memset(&l->ans, 0, sizeof l->ans);
    l->ans.leases = leases;
    pthread_mutex_lock(&l->lock);
    l->phase = LEASER_ASKED;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->lock);
    return true;
}

sl_lease_answer *
sl_leaser_answer(sl_leaser *l, bool wait)
{
    pthread_mutex_lock(&l->lock);
    while (wait && l->phase == LEASER_ASKED)
        pthread_cond_wait(&l->done, &l->lock);
    leaser_phase phase = l->phase;
    pthread_mutex_unlock(&l->lock);
    if (phase != LEASER_ANSWERED)
        return NULL;
    uint64_t count;
    while (read(l->fd, &count, sizeof count) < 0 && errno == EINTR)
        ;
    return &l->ans;
}

void
sl_leaser_done(sl_leaser *l)
{
    for (size_t i = 0; i < l->ans.n; i++)
        sl_lease_clear(&l->ans.leases[i]);
    l->ans.n = 0;
    pthread_mutex_lock(&l->lock);
    if (l->phase == LEASER_ANSWERED)
        l->phase = LEASER_IDLE;
    pthread_mutex_unlock(&l->lock);
}

void
sl_leaser_free(sl_leaser *l)
{
    if (!l)
        return;
    if (l->started) {
        pthread_mutex_lock(&l->lock);
        l->stopping = true;
        pthread_cond_signal(&l->wake);
        pthread_mutex_unlock(&l->lock);
        pthread_join(l->thread, NULL);
    }
    /* An answer never taken: its records back to the queue now rather
     * than when their leases lapse. */
    if (l->phase == LEASER_ANSWERED)
        for (size_t i = 0; i < l->ans.n; i++)
            sl_queue_release(l->q, &l->ans.leases[i], sl_now_ms());
    for (size_t i = 0; l->ans.leases && i < l->ans.n; i++)
        sl_lease_clear(&l->ans.leases[i]);
    sl_free(l->ans.leases);
    sl_free(l->names);
    sl_free(l->skip);
    if (l->fd >= 0)
        close(l->fd);
    pthread_cond_destroy(&l->done);
    pthread_cond_destroy(&l->wake);
    pthread_mutex_destroy(&l->lock);
    sl_free(l);
}
