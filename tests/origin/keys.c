/*
 * The key table: every distinct /img path+query the origin has seen,
 * interned once, with how many requests named it (the attempt counts of
 * the faults and latencies). Open addressing; /_reset empties it.
 */
#include <stdlib.h>
#include <string.h>

#include "origin.h"

static uint64_t
hash_text(const char *text, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)text[i];
        h *= 0x100000001b3ULL;
    }
    return sl_origin_mix64(h);
}

static void
key_table_grow(struct key_table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    struct key **slots = xcalloc(cap, sizeof *slots);

    for (size_t i = 0; i < t->cap; i++) {
        struct key *k = t->slots[i];

        if (k == NULL)
            continue;
        size_t j = (size_t)k->hash & (cap - 1);
        while (slots[j] != NULL)
            j = (j + 1) & (cap - 1);
        slots[j] = k;
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
}

/* The key for text, created with zero attempts on first sight. O(len). */
struct key *
key_intern(struct key_table *t, const char *text, size_t len)
{
    uint64_t hash = hash_text(text, len);

    if ((t->count + 1) * 2 > t->cap)
        key_table_grow(t);
    size_t i = (size_t)hash & (t->cap - 1);
    for (; t->slots[i] != NULL; i = (i + 1) & (t->cap - 1)) {
        struct key *k = t->slots[i];

        if (k->hash == hash && k->len == len && memcmp(k->text, text, len) == 0)
            return k;
    }
    struct key *k = xrealloc(NULL, sizeof *k + len + 1);
    k->hash = hash;
    k->attempts = 0;
    k->len = len;
    memcpy(k->text, text, len);
    k->text[len] = '\0';
    t->slots[i] = k;
    t->count++;
    return k;
}

void
key_table_clear(struct key_table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i]);
    free(t->slots);
    memset(t, 0, sizeof *t);
}
