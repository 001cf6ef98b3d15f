/*
 * The run's origins (run.h): a small hash table, by name, of what the run
 * knows of each origin it has jobs for: its ready jobs, its outage state
 * and its handle in the slot service, which holds the slots and pauses
 * themselves. An origin with no jobs is forgotten once its pause is over.
 */
#include "run.h"

#include <assert.h>
#include <string.h>

sluice_err
sl_origins_init(sl_origins *t, sl_slots *slots)
{
    memset(t, 0, sizeof *t);
    t->slots = slots;
    t->n_buckets = 64;
    t->buckets = sl_calloc(t->n_buckets, sizeof *t->buckets);
    return t->buckets ? SLUICE_OK : SLUICE_ENOMEM;
}

static void
origin_free(sl_origins *t, sl_origin *o)
{
    sl_slots_origin_close(t->slots, o->slots);
    sl_free(o->name);
    sl_free(o);
}

void
sl_origins_free(sl_origins *t)
{
    for (size_t b = 0; b < t->n_buckets; b++) {
        sl_origin *o = t->buckets[b];
        while (o) {
            sl_origin *next = o->hash_next;
            origin_free(t, o);
            o = next;
        }
    }
    sl_free(t->buckets);
    t->buckets = NULL;
    t->n_buckets = t->n_origins = 0;
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
grow(sl_origins *t)
{
    size_t n = t->n_buckets * 2;
    sl_origin **buckets = sl_calloc(n, sizeof *buckets);
    if (!buckets)
        return; /* longer chains, still correct */
    for (size_t b = 0; b < t->n_buckets; b++) {
        sl_origin *o = t->buckets[b];
        while (o) {
            sl_origin *next = o->hash_next;
            size_t i = hash(o->name) % n;
            o->hash_next = buckets[i];
            buckets[i] = o;
            o = next;
        }
    }
    sl_free(t->buckets);
    t->buckets = buckets;
    t->n_buckets = n;
}

sl_origin *
sl_origins_get(sl_origins *t, const char *name)
{
    size_t i = hash(name) % t->n_buckets;
    for (sl_origin *o = t->buckets[i]; o; o = o->hash_next)
        if (strcmp(o->name, name) == 0)
            return o;
    sl_origin *o = sl_calloc(1, sizeof *o);
    if (!o || !(o->name = sl_strdup(name)) ||
        !(o->slots = sl_slots_origin_open(t->slots, name))) {
        if (o)
            sl_free(o->name);
        sl_free(o);
        return NULL;
    }
    o->paused_until = sl_slots_paused_until(t->slots, o->slots);
    o->hash_next = t->buckets[i];
    t->buckets[i] = o;
    if (++t->n_origins > t->n_buckets * 2)
        grow(t);
    return o;
}

void
sl_origins_forget(sl_origins *t, sl_origin *o)
{
    assert(o->jobs == 0 && o->n_ready == 0);
    sl_origin **p = &t->buckets[hash(o->name) % t->n_buckets];
    while (*p && *p != o)
        p = &(*p)->hash_next;
    if (*p)
        *p = o->hash_next;
    t->n_origins--;
    origin_free(t, o);
}

bool
sl_origins_sweep(sl_origins *t, int64_t now_ms)
{
    bool ended = false;
    for (size_t b = 0; b < t->n_buckets; b++) {
        sl_origin *next;
        for (sl_origin *o = t->buckets[b]; o; o = next) {
            next = o->hash_next;
            if (o->paused_until && o->paused_until <= now_ms) {
                o->paused_until = sl_slots_paused_until(t->slots, o->slots);
                if (o->paused_until <= now_ms) {
                    o->paused_until = 0;
                    ended = true;
                }
            }
            /* A down origin is remembered, to back off further. */
            if (o->jobs == 0 && o->paused_until == 0 && !o->down_pauses)
                sl_origins_forget(t, o);
        }
    }
    return ended;
}

void
sl_origins_pause(sl_origins *t, sl_origin *o, int64_t until_ms)
{
    sl_slots_pause(t->slots, o->slots, until_ms);
    o->paused_until = sl_slots_paused_until(t->slots, o->slots);
}
