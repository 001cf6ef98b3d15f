/*
 * The origin's timers: a binary min-heap of timers on their deadline_ns,
 * each knowing its place (heap_index) so that it is cancelled in
 * O(log n). The event loop sleeps until the earliest one: latencies,
 * trickled bytes, lingering closes and held requests all wait here.
 */
#include <stdlib.h>

#include "origin.h"

static void
heap_set(struct timer_heap *h, size_t i, struct timer *t)
{
    h->items[i] = t;
    t->heap_index = i;
}

static void
heap_sift_up(struct timer_heap *h, size_t i)
{
    struct timer *t = h->items[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (h->items[parent]->deadline_ns <= t->deadline_ns)
            break;
        heap_set(h, i, h->items[parent]);
        i = parent;
    }
    heap_set(h, i, t);
}

static void
heap_sift_down(struct timer_heap *h, size_t i)
{
    struct timer *t = h->items[i];

    for (;;) {
        size_t child = 2 * i + 1;

        if (child >= h->len)
            break;
        if (child + 1 < h->len &&
            h->items[child + 1]->deadline_ns < h->items[child]->deadline_ns)
            child++;
        if (t->deadline_ns <= h->items[child]->deadline_ns)
            break;
        heap_set(h, i, h->items[child]);
        i = child;
    }
    heap_set(h, i, t);
}

void
timer_arm(struct timer_heap *h, struct timer *t, uint64_t deadline)
{
    if (h->len == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->items = xrealloc(h->items, h->cap * sizeof *h->items);
    }
    t->deadline_ns = deadline;
    heap_set(h, h->len++, t);
    heap_sift_up(h, t->heap_index);
}

void
timer_cancel(struct timer_heap *h, struct timer *t)
{
    size_t i = t->heap_index;

    if (i == SIZE_MAX)
        return;
    t->heap_index = SIZE_MAX;
    h->len--;
    if (i == h->len)
        return;
    heap_set(h, i, h->items[h->len]);
    heap_sift_up(h, i);
    heap_sift_down(h, h->items[i]->heap_index);
}

struct timer *
timer_pop_due(struct timer_heap *h, uint64_t now)
{
    struct timer *t;

    if (h->len == 0 || h->items[0]->deadline_ns > now)
        return NULL;
    t = h->items[0];
    timer_cancel(h, t);
    return t;
}

uint64_t
timer_next(const struct timer_heap *h)
{
    return h->len > 0 ? h->items[0]->deadline_ns : UINT64_MAX;
}

void
timer_heap_free(struct timer_heap *h)
{
    free(h->items);
    h->items = NULL;
    h->len = 0;
    h->cap = 0;
}
