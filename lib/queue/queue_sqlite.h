/*
 * The SQLite queue backend's insides, shared by its files: queue_sqlite.c
 * (opening, migrations, records and leases), queue_sqlite_slots.c (the
 * slot rows and the settings stored with the queue),
 * queue_sqlite_streams.c (stream leases and places) and
 * queue_sqlite_hosts.c (functions a migration calls).
 */
#ifndef SL_QUEUE_SQLITE_H
#define SL_QUEUE_SQLITE_H

#include <sqlite3.h>

#include "checkpoint.h"
#include "queue.h"

/* Prepared statements, made on first use. */
enum {
    ST_UPSERT,
    ST_UPSERT_MANY, /* UPSERT_ROWS rows in one statement, built in prep */
    ST_MAX_RID,
    ST_ORIGIN_ADD,
    ST_LEASE_DUE,
    ST_LEASE_PENDING,
    ST_UNSKIPPED,
    ST_PENDING_OF,
    ST_LEASE_RID,
    ST_MARK_LEASED,
    ST_COMPLETE,
    ST_RETRY,
    ST_DEAD,
    ST_RELEASE,
    ST_RENEW,
    ST_RECOVER,
    ST_COUNTS,
    ST_NEXT_DUE,
    ST_OLDEST,
    ST_GET,
    ST_DUMP,
    ST_RESTORE,
    ST_DLQ_LIST,
    ST_LIST,
    ST_LIST_ONE,
    ST_REPLAY,
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_SAVEPOINT_RELEASE,
    ST_SAVEPOINT_ROLLBACK,
    ST_COUNT_
};

/* queue_sqlite_slots.c's statements, made on first use. */
enum {
    SST_SLOTS_LOAD,
    SST_SLOTS_SAVE,
    SST_SLOTS_DROP,
    SST_SLOTS_CLEAR,
    SST_SETTING_GET,
    SST_SETTING_SET,
    SST_COUNT_
};

/*
 * Origins are stored once, records refer to them by number: a small
 * direct-mapped cache saves a lookup per upserted record. It is cleared
 * on rollback, since numbers handed out in the transaction are gone.
 */
#define ORIGIN_CACHE 64

/* queue_sqlite_streams.c's statements, made on first use. */
enum {
    XST_LEASE_GET,
    XST_LEASE_SET,
    XST_UNLEASE,
    XST_MARK,
    XST_MARKS,
    XST_COUNT_
};

typedef struct {
    char *name;
    int64_t oid;
} origin_slot;

typedef struct {
    sqlite3 *db;
    origin_slot origins[ORIGIN_CACHE];
    const char *path; /* within q->location */
    int runner_fd;    /* holds the runner's flock, or -1 */
    sl_checkpointer *ckpt; /* a runner's checkpoints, off its thread */
    unsigned busy_timeout_ms;
    sqlite3_stmt *st[ST_COUNT_];
    sqlite3_stmt *slot_st[SST_COUNT_];
    sqlite3_stmt *stream_st[XST_COUNT_];
    sl_buf skip_json;
    int64_t *rids; /* lease_by_origin's candidates */
    size_t rids_cap;
} sqlite_queue;

static inline sqlite_queue *
sl_sqlite_state(sluice_queue *q)
{
    return q->state;
}

/* Translate a SQLite result into a sluice code with a one-line message
 * naming the file and `what` was being done. */
sluice_err sl_sqlite_fail(sluice_queue *q, int rc, const char *what);
/* Statement `which` of queue_sqlite.c, prepared on first use. */
sluice_err sl_sqlite_prep(sluice_queue *q, int which, sqlite3_stmt **out);
/* Step a statement that returns no rows we read, and reset it. */
sluice_err sl_sqlite_step_done(sluice_queue *q, sqlite3_stmt *st,
                               const char *what);
/* A transaction of its own for an operation of several statements, or a
 * savepoint inside the caller's; the end commits or undoes it. */
sluice_err sl_sqlite_own_begin(sluice_queue *q);
sluice_err sl_sqlite_own_end(sluice_queue *q, sluice_err err);
void sl_sqlite_bind_text(sqlite3_stmt *st, int i, const char *text,
                         size_t len);
void sl_sqlite_bind_str(sqlite3_stmt *st, int i, const char *text);
/* A copy of column i's text (NULL for NULL); NULL if out of memory. */
char *sl_sqlite_column_dup(sqlite3_stmt *st, int i);

/* queue_sqlite_slots.c: the slot rows and settings ops. */
sluice_err sl_sqlite_slots_load(sluice_queue *q, sl_slot_row_fn *fn,
                                void *ctx);
sluice_err sl_sqlite_slots_save(sluice_queue *q, const sl_slot_row *rows,
                                size_t n);
sluice_err sl_sqlite_slots_clear(sluice_queue *q, const char *origin,
                                 uint64_t *removed);
sluice_err sl_sqlite_setting_get(sluice_queue *q, const char *name,
                                 char *value, size_t size);
sluice_err sl_sqlite_setting_set(sluice_queue *q, const char *name,
                                 const char *value);
sluice_err sl_sqlite_runner_alive(sluice_queue *q, bool *alive);
/* queue_sqlite_hosts.c: the SQL functions the migration to schema 4
 * calls, registered on the connection before it migrates. */
sluice_err sl_sqlite_register_host_functions(sluice_queue *q);
/* Finalise queue_sqlite_slots.c's statements (at close). */
void sl_sqlite_slots_finalize(sqlite_queue *s);
/* queue_sqlite_streams.c: the stream ops, and their statements' end. */
sluice_err sl_sqlite_stream_lease(sluice_queue *q, const char *stream,
                                  const char *owner, int64_t ttl_ms,
                                  bool *held, int64_t *left_ms);
sluice_err sl_sqlite_stream_unlease(sluice_queue *q, const char *stream,
                                    const char *owner);
sluice_err sl_sqlite_stream_mark(sluice_queue *q, const char *owner,
                                 const sl_stream_mark *mark);
sluice_err sl_sqlite_stream_marks(sluice_queue *q, const char *stream,
                                  sl_stream_mark_fn *fn, void *ctx);
void sl_sqlite_streams_finalize(sqlite_queue *s);

#endif /* SL_QUEUE_SQLITE_H */
