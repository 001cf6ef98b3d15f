/*
 * What one ingest has seen: every id and every key of its records, and
 * where, so that a duplicate id (the last wins) and two records naming one
 * key (one object would overwrite the other) are found as they come. Kept
 * in a private SQLite database in a temporary file, not in memory: a feed
 * of any size costs disk, a bounded page cache, a filter of fixed size
 * and the records held in memory before they are written out (seen.c).
 */
#ifndef SL_SEEN_H
#define SL_SEEN_H

#include <stdbool.h>
#include <stdint.h>

#include "../util.h"

typedef struct sl_seen sl_seen;

/* A new, empty record of what an ingest saw. SLUICE_ENOMEM or SLUICE_EIO
 * (the temporary file) with a reason. */
sluice_err sl_seen_open(sl_seen **out, char *reason, size_t reason_size);
void sl_seen_close(sl_seen *s);

/* The records checked next come from the input `name` (copied). */
sluice_err sl_seen_input(sl_seen *s, const char *name);

/* Group the checks that follow (a chunk of records) in one transaction. */
sluice_err sl_seen_begin(sl_seen *s);
sluice_err sl_seen_commit(sl_seen *s);

/* What a check found. The texts stay valid until the next check. */
typedef struct {
    bool dup_id;         /* an earlier record had this id */
    const char *id_file; /* where: its input's name, and line */
    uint64_t id_line;
    bool shared_key;      /* an earlier record, another id, names the key */
    const char *key_file; /* where, and that record's id */
    uint64_t key_line;
    const char *key_id;
} sl_seen_verdict;

/*
 * Check the record at `line` of the current input, and remember it. A
 * duplicate id replaces the earlier record (the last wins), so the key
 * that one named is free again unless this one names it too; with
 * `strict`, a record found a duplicate or sharing a key is refused and
 * leaves no trace (the earlier one stays). Returns SLUICE_OK with the
 * verdict, or the error of the database (the reason in sl_seen_errmsg).
 */
sluice_err sl_seen_check(sl_seen *s, const char *id, size_t id_len,
                         const char *key, size_t key_len, uint64_t line,
                         bool strict, sl_seen_verdict *v);

/* A record to check: its id, key and line. */
typedef struct {
    const char *id;
    size_t id_len;
    const char *key;
    size_t key_len;
    uint64_t line;
} sl_seen_record;

/* Records checked together by sl_seen_check_many. */
#define SL_SEEN_MANY 64

/*
 * Check SL_SEEN_MANY records at once, for the common case that none
 * repeats an id or a key: *clean says so, and they are remembered (in
 * memory first: no lookup in the database). Otherwise, or when it cannot
 * tell, nothing of them is remembered, and the caller checks each with
 * sl_seen_check, in order.
 */
sluice_err sl_seen_check_many(sl_seen *s, const sl_seen_record *recs,
                              bool *clean);

const char *sl_seen_errmsg(const sl_seen *s);

/*
 * For the tests: find deferred records by (hash & hash_mask), so that
 * different texts collide (the filter still takes the whole); defer at most
 * `defer_batch` records in memory before writing them out (0: never defer,
 * every record is checked in the tables), and `defer_max` in all. Call before
 * the first check.
 */
void sl_seen_tune(sl_seen *s, uint64_t hash_mask, size_t defer_batch,
                  uint64_t defer_max);

/* The input index the current records are checked under (0 first). */
unsigned sl_seen_current_input(const sl_seen *s);

#endif /* SL_SEEN_H */
