/*
 * A hash table of named entries, intrusive: an entry is embedded in the
 * caller's struct (first member, or found with offsetof), so the table
 * allocates nothing per entry. It grows as entries are added; when
 * growing fails for want of memory it goes on with longer chains. Used
 * where something is looked up by an origin's name: the run's origins,
 * the durable slot service's.
 */
#ifndef SL_TABLE_H
#define SL_TABLE_H

#include <stddef.h>

#include "util.h"

typedef struct sl_table_entry {
    struct sl_table_entry *next;
    char *key; /* the caller's, unchanged while in the table */
} sl_table_entry;

typedef struct {
    sl_table_entry **buckets;
    size_t n_buckets;
    size_t n; /* entries */
} sl_table;

/* An empty table of `n_buckets` (a power of two or not). */
sluice_err sl_table_init(sl_table *t, size_t n_buckets);
/* Free the buckets; the entries are the caller's, freed before. */
void sl_table_free(sl_table *t);
/* The entry with this key, or NULL. */
sl_table_entry *sl_table_find(const sl_table *t, const char *key);
/* Add `e` (its key set, not in the table yet). Cannot fail. */
void sl_table_insert(sl_table *t, sl_table_entry *e);
/* Take `e` out of the table. */
void sl_table_remove(sl_table *t, sl_table_entry *e);

/* Visit every entry; `e` may be removed (not others) during the visit. */
#define SL_TABLE_FOR_EACH(t, e)                                               \
    for (size_t tb_ = 0; tb_ < (t)->n_buckets; tb_++)                         \
        for (sl_table_entry *e = (t)->buckets[tb_], *tn_ = e ? e->next : 0;   \
             e; e = tn_, tn_ = e ? e->next : 0)

#endif /* SL_TABLE_H */
