/*
 * The SQLite queue's streams: each stream's ingester lease (one active
 * ingester a stream and queue; source/kinesis.c) and where that ingester
 * is in each shard. A place is written inside the transaction that
 * stores the shard's records, after checking, in that transaction, that
 * its writer still holds the lease: a place never runs ahead of the
 * records, and an ingester that lost its lease writes nothing.
 */
#include "queue_sqlite.h"

#include <string.h>

#define MARK_COLUMNS                                                           \
    "stream, shard, seq, subseq, finished, behind_ms, arrival_ms, written_ms"

static const char *const stream_statements[XST_COUNT_] = {
    [XST_LEASE_GET] =
        "SELECT owner, until_ms FROM stream_leases WHERE stream = ?1",
    [XST_LEASE_SET] =
        "INSERT INTO stream_leases(stream, owner, until_ms)"
        " VALUES (?1, ?2, ?3)"
        " ON CONFLICT(stream) DO UPDATE SET owner = excluded.owner,"
        " until_ms = excluded.until_ms",
    [XST_UNLEASE] =
        "DELETE FROM stream_leases WHERE stream = ?1 AND owner = ?2",
    [XST_MARK] = "INSERT OR REPLACE INTO stream_marks(" MARK_COLUMNS
                 ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [XST_MARKS] = "SELECT " MARK_COLUMNS " FROM stream_marks"
                  " WHERE ?1 IS NULL OR stream = ?1 ORDER BY stream, shard",
};

static sluice_err
prep(sluice_queue *q, int which, sqlite3_stmt **out)
{
    sqlite_queue *s = sl_sqlite_state(q);
    if (!s->stream_st[which]) {
        int rc = sqlite3_prepare_v3(s->db, stream_statements[which], -1,
                                    SQLITE_PREPARE_PERSISTENT,
                                    &s->stream_st[which], NULL);
        if (rc != SQLITE_OK)
            return sl_sqlite_fail(q, rc, "prepare");
    }
    *out = s->stream_st[which];
    sqlite3_reset(*out);
    sqlite3_clear_bindings(*out);
    return SLUICE_OK;
}

void
sl_sqlite_streams_finalize(sqlite_queue *s)
{
    for (int i = 0; i < XST_COUNT_; i++) {
        sqlite3_finalize(s->stream_st[i]);
        s->stream_st[i] = NULL;
    }
}

/* The lease's holder (copied into owner, "" when none) and its end. */
static sluice_err
lease_get(sluice_queue *q, const char *stream, char *owner, size_t size,
          int64_t *until_ms)
{
    sqlite3_stmt *st = NULL;
    sluice_err err = prep(q, XST_LEASE_GET, &st);
    if (err != SLUICE_OK)
        return err;
    sl_sqlite_bind_str(st, 1, stream);
    owner[0] = '\0';
    *until_ms = 0;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        sl_copy(owner, size, (const char *)sqlite3_column_text(st, 0));
        *until_ms = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sl_sqlite_fail(q, rc, "read a stream's lease");
    return SLUICE_OK;
}

sluice_err
sl_sqlite_stream_lease(sluice_queue *q, const char *stream, const char *owner,
                       int64_t ttl_ms, bool *held, int64_t *left_ms)
{
    char holder[256];
    int64_t until = 0, now = sl_now_ms();
    sqlite3_stmt *st = NULL;
    sluice_err err = sl_sqlite_own_begin(q);
    if (err == SLUICE_OK)
        err = lease_get(q, stream, holder, sizeof holder, &until);
    if (err == SLUICE_OK &&
        (!*holder || until <= now || strcmp(holder, owner) == 0)) {
        err = prep(q, XST_LEASE_SET, &st);
        if (err == SLUICE_OK) {
            sl_sqlite_bind_str(st, 1, stream);
            sl_sqlite_bind_str(st, 2, owner);
            sqlite3_bind_int64(st, 3, now + ttl_ms);
            err = sl_sqlite_step_done(q, st, "take a stream's lease");
        }
        until = now + ttl_ms;
        *held = true;
    }
    *left_ms = SL_MAX(until - now, 0);
    return sl_sqlite_own_end(q, err);
}

sluice_err
sl_sqlite_stream_unlease(sluice_queue *q, const char *stream, const char *owner)
{
    sqlite3_stmt *st = NULL;
    sluice_err err = sl_sqlite_own_begin(q);
    if (err == SLUICE_OK)
        err = prep(q, XST_UNLEASE, &st);
    if (err == SLUICE_OK) {
        sl_sqlite_bind_str(st, 1, stream);
        sl_sqlite_bind_str(st, 2, owner);
        err = sl_sqlite_step_done(q, st, "give up a stream's lease");
    }
    return sl_sqlite_own_end(q, err);
}

sluice_err
sl_sqlite_stream_mark(sluice_queue *q, const char *owner,
                      const sl_stream_mark *m)
{
    char holder[256];
    int64_t until;
    sqlite3_stmt *st = NULL;
    /* The caller's transaction holds the write lock (BEGIN IMMEDIATE):
     * nobody takes the lease between this check and the commit. */
    sluice_err err = lease_get(q, m->stream, holder, sizeof holder, &until);
    if (err != SLUICE_OK)
        return err;
    if (strcmp(holder, owner) != 0)
        return sl_queue_fail(
            q, SLUICE_EAGAIN, "%s: another ingester (%s) took over %s",
            sl_sqlite_state(q)->path, *holder ? holder : "none", m->stream);
    err = prep(q, XST_MARK, &st);
    if (err != SLUICE_OK)
        return err;
    sl_sqlite_bind_str(st, 1, m->stream);
    sl_sqlite_bind_str(st, 2, m->shard);
    sl_sqlite_bind_str(st, 3, m->seq);
    sqlite3_bind_int64(st, 4, m->subseq);
    sqlite3_bind_int(st, 5, m->finished);
    sqlite3_bind_int64(st, 6, m->behind_ms);
    sqlite3_bind_int64(st, 7, m->arrival_ms);
    sqlite3_bind_int64(st, 8, sl_now_ms());
    return sl_sqlite_step_done(q, st, "store a stream's place");
}

sluice_err
sl_sqlite_stream_marks(sluice_queue *q, const char *stream,
                       sl_stream_mark_fn *fn, void *ctx)
{
    sqlite3_stmt *st = NULL;
    sluice_err err = prep(q, XST_MARKS, &st);
    if (err != SLUICE_OK)
        return err;
    sl_sqlite_bind_str(st, 1, stream);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sl_stream_mark m = {
            .stream = (const char *)sqlite3_column_text(st, 0),
            .shard = (const char *)sqlite3_column_text(st, 1),
            .seq = (const char *)sqlite3_column_text(st, 2),
            .subseq = (uint32_t)sqlite3_column_int64(st, 3),
            .finished = sqlite3_column_int(st, 4) != 0,
            .behind_ms = sqlite3_column_int64(st, 5),
            .arrival_ms = sqlite3_column_int64(st, 6),
            .written_ms = sqlite3_column_int64(st, 7),
        };
        if (m.stream && m.shard && m.seq && fn(ctx, &m) != 0)
            break;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return sl_sqlite_fail(q, rc, "read the streams' places");
    return SLUICE_OK;
}
