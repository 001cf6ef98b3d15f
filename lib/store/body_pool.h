/*
 * Spare body buffers, handed back from the thread that writes bodies out
 * (the directory store's sync thread) to the thread that fills them (the
 * fetch loop's), so a body costs neither thread a malloc or a free.
 *
 * Why: glibc's free() of a buffer that another thread allocated takes
 * the lock of that thread's arena, and the fetch thread, allocating for
 * libcurl all the time, holds it often. On 10,000 bodies of 8 KiB the
 * two threads met on that lock about 2,500 times a run, each a futex
 * call and a sleep (see docs/store.md).
 *
 * One thread takes (sl_body_pool_take, sl_body_pool_keep), one gives
 * (sl_body_pool_collect, then sl_body_pool_give a batch at once). The
 * giver pushes its batch onto a shared stack; the taker empties that
 * stack whole, so no pop races a push. The spares' capacities add up to
 * max_bytes at most; a buffer beyond that is freed.
 */
#ifndef SL_BODY_POOL_H
#define SL_BODY_POOL_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct sl_spare sl_spare; /* lives in the spare buffer itself */

typedef struct {
    _Atomic(sl_spare *) given; /* pushed by the giver, taken whole */
    sl_spare *mine;            /* the taker's own */
    atomic_size_t bytes;       /* the capacities of all spares */
    size_t max_bytes;
} sl_body_pool;

/* A giver's batch, built without touching the pool. */
typedef struct {
    sl_spare *head, *tail;
} sl_body_batch;

/* Buffers handed to the pool must hold SL_BODY_POOL_MIN_CAP bytes. */
#define SL_BODY_POOL_MIN_CAP 64

void sl_body_pool_init(sl_body_pool *p, size_t max_bytes);
/* Free every spare; neither thread may use the pool meanwhile. */
void sl_body_pool_clear(sl_body_pool *p);

/* Taker: a spare buffer and its capacity, or NULL if there is none. */
char *sl_body_pool_take(sl_body_pool *p, size_t *cap);
/* Taker: keep a buffer of its own for later (or free it). */
void sl_body_pool_keep(sl_body_pool *p, char *buf, size_t cap);

/* Giver: add a buffer to `batch` (or free it, when the pool is full). */
void sl_body_pool_collect(sl_body_pool *p, sl_body_batch *batch, char *buf,
                          size_t cap);
/* Giver: hand the batch to the taker; `batch` is empty after. */
void sl_body_pool_give(sl_body_pool *p, sl_body_batch *batch);

#endif
