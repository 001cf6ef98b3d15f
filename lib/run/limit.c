/*
 * Per-origin slots and pauses, in a small hash table of origins. The cap
 * is enforced here with an assertion as well as by the callers' checks:
 * taking a slot past the cap is a bug, not a condition.
 */
#include "limit.h"

#include <assert.h>
#include <string.h>

sluice_err
sl_limiter_init(sl_limiter *l, unsigned cap, unsigned max_total)
{
    memset(l, 0, sizeof *l);
    l->cap = cap ? cap : 1;
    l->max_total = max_total;
    l->n_buckets = 64;
    l->buckets = sl_calloc(l->n_buckets, sizeof *l->buckets);
    return l->buckets ? SLUICE_OK : SLUICE_ENOMEM;
}

void
sl_limiter_free(sl_limiter *l)
{
    for (size_t b = 0; b < l->n_buckets; b++) {
        sl_origin *o = l->buckets[b];
        while (o) {
            sl_origin *next = o->hash_next;
            sl_free(o->name);
            sl_free(o);
            o = next;
        }
    }
    sl_free(l->buckets);
    l->buckets = NULL;
}

static size_t
hash(const char *s)
{
    size_t h = 14695981039346656037u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static void
grow(sl_limiter *l)
{
    size_t n = l->n_buckets * 2;
    sl_origin **buckets = sl_calloc(n, sizeof *buckets);
    if (!buckets)
        return; /* longer chains, still correct */
    for (size_t b = 0; b < l->n_buckets; b++) {
        sl_origin *o = l->buckets[b];
        while (o) {
            sl_origin *next = o->hash_next;
            size_t i = hash(o->name) % n;
            o->hash_next = buckets[i];
            buckets[i] = o;
            o = next;
        }
    }
    sl_free(l->buckets);
    l->buckets = buckets;
    l->n_buckets = n;
}

sl_origin *
sl_limiter_origin(sl_limiter *l, const char *name)
{
    size_t i = hash(name) % l->n_buckets;
    for (sl_origin *o = l->buckets[i]; o; o = o->hash_next)
        if (strcmp(o->name, name) == 0)
            return o;
    sl_origin *o = sl_calloc(1, sizeof *o);
    if (!o || !(o->name = sl_strdup(name))) {
        sl_free(o);
        return NULL;
    }
    o->hash_next = l->buckets[i];
    l->buckets[i] = o;
    if (++l->n_origins > l->n_buckets * 2)
        grow(l);
    return o;
}

void
sl_limiter_forget(sl_limiter *l, sl_origin *o)
{
    assert(o->jobs == 0 && o->in_flight == 0 && o->n_ready == 0);
    sl_origin **p = &l->buckets[hash(o->name) % l->n_buckets];
    while (*p && *p != o)
        p = &(*p)->hash_next;
    if (*p)
        *p = o->hash_next;
    l->n_origins--;
    sl_free(o->name);
    sl_free(o);
}

bool
sl_limiter_sweep(sl_limiter *l, int64_t now_ms)
{
    bool ended = false;
    for (size_t b = 0; b < l->n_buckets; b++) {
        sl_origin *next;
        for (sl_origin *o = l->buckets[b]; o; o = next) {
            next = o->hash_next;
            if (o->paused_until && o->paused_until <= now_ms) {
                o->paused_until = 0;
                ended = true;
            }
            /* A down origin is remembered, to back off further. */
            if (o->jobs == 0 && o->paused_until == 0 && !o->down_pauses)
                sl_limiter_forget(l, o);
        }
    }
    return ended;
}

bool
sl_limiter_may_start(const sl_limiter *l, const sl_origin *o, int64_t now_ms)
{
    if (o->in_flight >= l->cap)
        return false;
    if (l->max_total && l->in_flight >= l->max_total)
        return false;
    return o->paused_until <= now_ms;
}

void
sl_limiter_acquire(sl_limiter *l, sl_origin *o)
{
    assert(o->in_flight < l->cap);
    assert(!l->max_total || l->in_flight < l->max_total);
    o->in_flight++;
    l->in_flight++;
    if (o->in_flight > l->peak)
        l->peak = o->in_flight;
}

void
sl_limiter_release(sl_limiter *l, sl_origin *o)
{
    assert(o->in_flight > 0 && l->in_flight > 0);
    o->in_flight--;
    l->in_flight--;
}

void
sl_limiter_pause(sl_limiter *l, sl_origin *o, int64_t until_ms)
{
    (void)l;
    if (until_ms > o->paused_until)
        o->paused_until = until_ms;
}
