/*
 * The queue's counts for a run's progress, read from the queue itself on
 * a thread of its own with a read-only handle of its own, every second:
 * the truth, whoever else writes to the queue (ingest, other runners),
 * and never a wait on the loop's thread, however large the queue (a
 * count of a million records takes some 50 ms).
 */
#include "run.h"

#include <pthread.h>
#include <time.h>

struct sl_counter {
    sluice_queue *q; /* its own, read-only */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int64_t interval_ms;
    bool stopping;
    bool fresh; /* a count not yet taken */
    sluice_counts latest;
};

static void *
counter_main(void *arg)
{
    sl_counter *c = arg;
    sl_thread_name("sl-counter");
    pthread_mutex_lock(&c->lock);
    while (!c->stopping) {
        pthread_mutex_unlock(&c->lock);
        sluice_counts n;
        sluice_err err = sluice_queue_counts(c->q, &n);
        pthread_mutex_lock(&c->lock);
        if (err == SLUICE_OK) {
            c->latest = n;
            c->fresh = true;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += c->interval_ms / 1000;
        until.tv_nsec += (c->interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!c->stopping &&
               pthread_cond_timedwait(&c->wake, &c->lock, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

sluice_err
sl_counter_start(const char *location, int64_t interval_ms, sl_counter **out)
{
    sluice_queue_opts opts = {SLUICE_QUEUE_READONLY, 0};
    *out = NULL;
    sl_counter *c = sl_calloc(1, sizeof *c);
    if (!c)
        return SLUICE_ENOMEM;
    sluice_err err = sluice_queue_open(location, &opts, &c->q, NULL, 0);
    if (err != SLUICE_OK) {
        sl_free(c);
        return err;
    }
    c->interval_ms = interval_ms;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    if (pthread_create(&c->thread, NULL, counter_main, c) != 0) {
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->lock);
        sluice_queue_close(c->q);
        sl_free(c);
        return SLUICE_ENOMEM;
    }
    *out = c;
    return SLUICE_OK;
}

bool
sl_counter_take(sl_counter *c, sluice_counts *out)
{
    if (!c)
        return false;
    pthread_mutex_lock(&c->lock);
    bool fresh = c->fresh;
    if (fresh)
        *out = c->latest;
    c->fresh = false;
    pthread_mutex_unlock(&c->lock);
    return fresh;
}

void
sl_counter_stop(sl_counter *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    sluice_queue_close(c->q);
    sl_free(c);
}
