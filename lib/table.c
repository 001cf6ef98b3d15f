/*
 * The hash table of named entries (table.h): FNV-1a over the key,
 * chains, doubling when the entries pass twice the buckets.
 */
#include "table.h"

#include <string.h>

sluice_err
sl_table_init(sl_table *t, size_t n_buckets)
{
    t->n = 0;
    t->n_buckets = n_buckets ? n_buckets : 64;
    t->buckets = sl_calloc(t->n_buckets, sizeof *t->buckets);
    return t->buckets ? SLUICE_OK : SLUICE_ENOMEM;
}

void
sl_table_free(sl_table *t)
{
    sl_free(t->buckets);
    t->buckets = NULL;
    t->n_buckets = t->n = 0;
}

static size_t
hash(const char *s)
{
    size_t h = 14695981039346656037u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

sl_table_entry *
sl_table_find(const sl_table *t, const char *key)
{
    for (sl_table_entry *e = t->buckets[hash(key) % t->n_buckets]; e;
         e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static void
grow(sl_table *t)
{
    size_t n = t->n_buckets * 2;
    sl_table_entry **buckets = sl_calloc(n, sizeof *buckets);
    if (!buckets)
        return; /* longer chains, still correct */
    for (size_t b = 0; b < t->n_buckets; b++) {
        sl_table_entry *e = t->buckets[b];
        while (e) {
            sl_table_entry *next = e->next;
            size_t i = hash(e->key) % n;
            e->next = buckets[i];
            buckets[i] = e;
            e = next;
        }
    }
    sl_free(t->buckets);
    t->buckets = buckets;
    t->n_buckets = n;
}

void
sl_table_insert(sl_table *t, sl_table_entry *e)
{
    size_t i = hash(e->key) % t->n_buckets;
    e->next = t->buckets[i];
    t->buckets[i] = e;
    if (++t->n > t->n_buckets * 2)
        grow(t);
}

void
sl_table_remove(sl_table *t, sl_table_entry *e)
{
    sl_table_entry **p = &t->buckets[hash(e->key) % t->n_buckets];
    while (*p && *p != e)
        p = &(*p)->next;
    if (*p) {
        *p = e->next;
        t->n--;
    }
}
