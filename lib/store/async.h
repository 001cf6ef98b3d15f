/*
 * What both stores share to make objects durable in the background: a
 * to-do list for the backend's worker, a done list for sl_store_reap, a
 * pipe readable while results wait, and one mutex over all of it (the
 * backend's worker state too, and its condition variables wait on it).
 */
#ifndef SL_STORE_ASYNC_H
#define SL_STORE_ASYNC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "store.h"

/* Backends read these fields under `lock`. They set `stopping` there
 * themselves, then wake their worker their own way; the lists and counts
 * change only through the functions below. */
struct sl_async {
    pthread_mutex_t lock;
    sl_object *todo_head, *todo_tail; /* submitted, not taken yet */
    size_t todo_n;                    /* on the to-do list */
    sl_object *done_head, *done_tail; /* results, not reaped yet */
    size_t busy;                      /* submitted and not reaped */
    size_t backing_off; /* of busy: not to be waited for (sl_async_busy) */
    bool stopping;      /* the store is closing: the worker ends */
    int wake[2];        /* a byte is written while results wait */
};

/* Put the list more..more_tail (linked by `next`) at the end of the list
 * *head..*tail. */
static inline void
sl_object_list_append(sl_object **head, sl_object **tail, sl_object *more,
                      sl_object *more_tail)
{
    if (*head)
        (*tail)->next = more;
    else
        *head = more;
    *tail = more_tail;
}

/* Free every object of the list at `head`, each after `forget(o)` has
 * let go of what the backend holds for it. */
void sl_object_list_free(sl_object *head, void (*forget)(sl_object *o));

/* Ready `a` for sl_async_fini; it has no wake pipe yet. Cannot fail.
 * sl_store_open does this for every store (s->async). */
void sl_async_init(sl_async *a);
/* Make the wake pipe. Returns 0, or an errno value. */
int sl_async_open_pipe(sl_async *a);
/* Free the objects left on both lists (see sl_object_list_free), close
 * the pipe and destroy the lock. The worker must have ended: a backend's
 * close calls this. */
void sl_async_fini(sl_async *a, void (*forget)(sl_object *o));

/* Submit o: onto the to-do list, and busy until reaped. The caller holds
 * a->lock, and wakes its worker as it sees fit: this returns how many
 * objects are on the to-do list now. */
static inline size_t
sl_async_push(sl_async *a, sl_object *o)
{
    o->next = NULL;
    sl_object_list_append(&a->todo_head, &a->todo_tail, o, o);
    a->busy++;
    return ++a->todo_n;
}

/* The worker takes the whole to-do list (its last object in *tail, when
 * tail is not NULL), leaving it empty. The caller holds a->lock. */
static inline sl_object *
sl_async_take(sl_async *a, sl_object **tail)
{
    sl_object *head = a->todo_head;
    if (tail)
        *tail = a->todo_tail;
    a->todo_head = a->todo_tail = NULL;
    a->todo_n = 0;
    return head;
}

/* The worker hands over the results of head..tail (each object's
 * status, err and message set) and wakes the caller with one byte. The
 * caller holds a->lock. */
void sl_async_post(sl_async *a, sl_object *head, sl_object *tail);

/* sl_store_wake_fd: readable while results wait. */
static inline int
sl_async_wake_fd(const sl_async *a)
{
    return a->wake[0];
}

/* sl_store_reap: up to `max` results, their objects freed. Takes the lock
 * once; drains the pipe, and refills it when results are left. */
size_t sl_async_reap(sl_async *a, sl_store_result *out, size_t max);
/* sl_store_busy: objects submitted and not reaped, less those backing
 * off. Takes the lock once. */
size_t sl_async_busy(sl_async *a);

/* Count an object as backing off (delta 1; it leaves busy's count) or no
 * longer (-1); each takes the lock once. */
void sl_async_count_backing_off(sl_async *a, int delta);
/* Count none as backing off: every result is coming now. */
void sl_async_clear_backing_off(sl_async *a);

#endif /* SL_STORE_ASYNC_H */
