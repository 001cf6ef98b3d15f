/* Spare body buffers handed from one thread to another: body_pool.h. */
#include "body_pool.h"

#include "../util.h"

struct sl_spare {
    sl_spare *next;
    size_t cap;
};

void
sl_body_pool_init(sl_body_pool *p, size_t max_bytes)
{
    atomic_init(&p->given, NULL);
    p->mine = NULL;
    atomic_init(&p->bytes, 0);
    p->max_bytes = max_bytes;
}

static void
free_all(sl_spare *s)
{
    while (s) {
        sl_spare *next = s->next;
        sl_free(s);
        s = next;
    }
}

void
sl_body_pool_clear(sl_body_pool *p)
{
    free_all(atomic_exchange(&p->given, NULL));
    free_all(p->mine);
    p->mine = NULL;
    atomic_store(&p->bytes, 0);
}

/* `buf` as a spare, or NULL once it is freed: it is none, too small to
 * hold the pool's header, or the pool is full. */
static sl_spare *
admit(sl_body_pool *p, char *buf, size_t cap)
{
    if (!buf)
        return NULL;
    if (cap < SL_BODY_POOL_MIN_CAP) {
        sl_free(buf);
        return NULL;
    }
    if (atomic_fetch_add(&p->bytes, cap) + cap > p->max_bytes) {
        atomic_fetch_sub(&p->bytes, cap);
        sl_free(buf);
        return NULL;
    }
    sl_spare *s = (sl_spare *)(void *)buf;
    s->next = NULL;
    s->cap = cap;
    return s;
}

char *
sl_body_pool_take(sl_body_pool *p, size_t *cap)
{
    if (!p->mine)
        p->mine = atomic_exchange(&p->given, NULL);
    sl_spare *s = p->mine;
    if (!s)
        return NULL;
    p->mine = s->next;
    *cap = s->cap;
    atomic_fetch_sub(&p->bytes, s->cap);
    return (char *)s;
}

void
sl_body_pool_keep(sl_body_pool *p, char *buf, size_t cap)
{
    sl_spare *s = admit(p, buf, cap);
    if (s) {
        s->next = p->mine;
        p->mine = s;
    }
}

void
sl_body_pool_collect(sl_body_pool *p, sl_body_batch *batch, char *buf,
                     size_t cap)
{
    sl_spare *s = admit(p, buf, cap);
    if (!s)
        return;
    if (batch->tail)
        batch->tail->next = s;
    else
        batch->head = s;
    batch->tail = s;
}

void
sl_body_pool_give(sl_body_pool *p, sl_body_batch *batch)
{
    if (!batch->head)
        return;
    sl_spare *top = atomic_load(&p->given);
    do
        batch->tail->next = top;
    while (!atomic_compare_exchange_weak(&p->given, &top, batch->head));
    batch->head = batch->tail = NULL;
}
