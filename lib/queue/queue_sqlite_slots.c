/*
 * The SQLite queue's slot rows and settings: the durable half of the slot
 * service (slots/slots_durable.c) lives in the queue's file, so a run that
 * restarts after a crash finds the slots its predecessor held. One row an
 * origin; a row that holds nothing and pauses nothing is removed.
 */
#include "queue_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define SLOT_COLUMNS                                                           \
    "origin, held, in_flight, boot_id, until_boot, until_wall, hold_ms,"       \
    " paused_boot, paused_wall, token, written_at, written_boot,"              \
    " next_start, conc, rate, advised, advised_until"

static const char *const slot_statements[SST_COUNT_] = {
    [SST_SLOTS_LOAD] = "SELECT " SLOT_COLUMNS " FROM slots ORDER BY origin",
    [SST_SLOTS_SAVE] =
        "INSERT INTO slots(" SLOT_COLUMNS ") VALUES"
        " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
        " ?15, ?16, ?17)"
        " ON CONFLICT(origin) DO UPDATE SET held = excluded.held,"
        " in_flight = excluded.in_flight, boot_id = excluded.boot_id,"
        " until_boot = excluded.until_boot, until_wall = excluded.until_wall,"
        " hold_ms = excluded.hold_ms, paused_boot = excluded.paused_boot,"
        " paused_wall = excluded.paused_wall,"
        " token = max(token, excluded.token),"
        " written_at = excluded.written_at,"
        " written_boot = excluded.written_boot,"
        " next_start = excluded.next_start, conc = excluded.conc,"
        " rate = excluded.rate, advised = excluded.advised,"
        " advised_until = excluded.advised_until",
    [SST_SLOTS_DROP] = "DELETE FROM slots WHERE origin = ?1",
    [SST_SLOTS_CLEAR] = "DELETE FROM slots WHERE ?1 IS NULL OR origin = ?1",
    [SST_SETTING_GET] = "SELECT value FROM settings WHERE name = ?1",
    [SST_SETTING_SET] =
        "INSERT INTO settings(name, value) VALUES (?1, ?2)"
        " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
};

static sluice_err
slot_prep(sluice_queue *q, int which, sqlite3_stmt **out)
{
    sqlite_queue *s = sl_sqlite_state(q);
    if (!s->slot_st[which]) {
        int rc = sqlite3_prepare_v3(s->db, slot_statements[which], -1,
                                    SQLITE_PREPARE_PERSISTENT,
                                    &s->slot_st[which], NULL);
        if (rc != SQLITE_OK)
            return sl_sqlite_fail(q, rc, "prepare");
    }
    *out = s->slot_st[which];
    return SLUICE_OK;
}

void
sl_sqlite_slots_finalize(sqlite_queue *s)
{
    for (int i = 0; i < SST_COUNT_; i++) {
        sqlite3_finalize(s->slot_st[i]);
        s->slot_st[i] = NULL;
    }
}

sluice_err
sl_sqlite_slots_load(sluice_queue *q, sl_slot_row_fn *fn, void *ctx)
{
    sqlite3_stmt *st = NULL;
    sluice_err err = slot_prep(q, SST_SLOTS_LOAD, &st);
    if (err != SLUICE_OK)
        return err;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sl_slot_row row = {
            (const char *)sqlite3_column_text(st, 0),
            (unsigned)sqlite3_column_int64(st, 1),
            (unsigned)sqlite3_column_int64(st, 2),
            (const char *)sqlite3_column_text(st, 3),
            sqlite3_column_int64(st, 4),
            sqlite3_column_int64(st, 5),
            sqlite3_column_int64(st, 6),
            sqlite3_column_int64(st, 7),
            sqlite3_column_int64(st, 8),
            (uint64_t)sqlite3_column_int64(st, 9),
            sqlite3_column_int64(st, 10),
            sqlite3_column_int64(st, 11),
            sqlite3_column_int64(st, 12),
            sqlite3_column_double(st, 13),
            sqlite3_column_double(st, 14),
            sqlite3_column_double(st, 15),
            sqlite3_column_int64(st, 16),
        };
        if (!row.origin || !row.boot_id)
            continue;
        if (fn(ctx, &row) != 0)
            break;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return sl_sqlite_fail(q, rc, "read the slots");
    return SLUICE_OK;
}

/* One row: written, or removed when it holds and pauses nothing. */
static sluice_err
save_row(sluice_queue *q, const sl_slot_row *r)
{
    sqlite3_stmt *st = NULL;
    bool empty = sl_slot_row_empty(r);
    sluice_err err = slot_prep(q, empty ? SST_SLOTS_DROP : SST_SLOTS_SAVE, &st);
    if (err != SLUICE_OK)
        return err;
    sl_sqlite_bind_str(st, 1, r->origin);
    if (!empty) {
        sqlite3_bind_int64(st, 2, r->held);
        sqlite3_bind_int64(st, 3, r->in_flight);
        sl_sqlite_bind_str(st, 4, r->boot_id);
        sqlite3_bind_int64(st, 5, r->until_boot);
        sqlite3_bind_int64(st, 6, r->until_wall);
        sqlite3_bind_int64(st, 7, r->hold_ms);
        sqlite3_bind_int64(st, 8, r->paused_boot);
        sqlite3_bind_int64(st, 9, r->paused_wall);
        sqlite3_bind_int64(st, 10, (sqlite3_int64)r->token);
        sqlite3_bind_int64(st, 11, r->written_wall);
        sqlite3_bind_int64(st, 12, r->written_boot);
        sqlite3_bind_int64(st, 13, r->next_start);
        sqlite3_bind_double(st, 14, r->conc);
        sqlite3_bind_double(st, 15, r->rate);
        sqlite3_bind_double(st, 16, r->advised);
        sqlite3_bind_int64(st, 17, r->advised_until);
    }
    return sl_sqlite_step_done(q, st, "write the slots");
}

sluice_err
sl_sqlite_slots_save(sluice_queue *q, const sl_slot_row *rows, size_t n)
{
    sluice_err err = sl_sqlite_own_begin(q);
    for (size_t i = 0; i < n && err == SLUICE_OK; i++)
        err = save_row(q, &rows[i]);
    return sl_sqlite_own_end(q, err);
}

sluice_err
sl_sqlite_slots_clear(sluice_queue *q, const char *origin, uint64_t *removed)
{
    sqlite3_stmt *st = NULL;
    sluice_err err = sl_sqlite_own_begin(q);
    if (err == SLUICE_OK)
        err = slot_prep(q, SST_SLOTS_CLEAR, &st);
    if (err == SLUICE_OK) {
        sl_sqlite_bind_str(st, 1, origin);
        err = sl_sqlite_step_done(q, st, "clear the slots");
        *removed = (uint64_t)sqlite3_changes(sl_sqlite_state(q)->db);
    }
    return sl_sqlite_own_end(q, err);
}

sluice_err
sl_sqlite_setting_get(sluice_queue *q, const char *name, char *value,
                      size_t size)
{
    sqlite3_stmt *st = NULL;
    sluice_err err = slot_prep(q, SST_SETTING_GET, &st);
    if (err != SLUICE_OK)
        return err;
    sl_sqlite_bind_str(st, 1, name);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        sl_copy(value, size, (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_DONE)
        return sl_queue_fail(q, SLUICE_ENOTFOUND, "%s: no setting %s",
                             sl_sqlite_state(q)->path, name);
    if (rc != SQLITE_ROW)
        return sl_sqlite_fail(q, rc, "read a setting");
    return SLUICE_OK;
}

sluice_err
sl_sqlite_setting_set(sluice_queue *q, const char *name, const char *value)
{
    sqlite3_stmt *st = NULL;
    sluice_err err = sl_sqlite_own_begin(q);
    if (err == SLUICE_OK)
        err = slot_prep(q, SST_SETTING_SET, &st);
    if (err == SLUICE_OK) {
        sl_sqlite_bind_str(st, 1, name);
        sl_sqlite_bind_str(st, 2, value);
        err = sl_sqlite_step_done(q, st, "store a setting");
    }
    return sl_sqlite_own_end(q, err);
}

sluice_err
sl_sqlite_runner_alive(sluice_queue *q, bool *alive)
{
    sqlite_queue *s = sl_sqlite_state(q);
    *alive = false;
    if (s->runner_fd >= 0) {
        *alive = true; /* this process is the runner */
        return SLUICE_OK;
    }
    /* The runner holds an exclusive flock on the file while it lives: a
     * shared one cannot be had then. Given back at once. */
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sl_queue_fail(q, SLUICE_EIO, "%s: %s", s->path, strerror(errno));
    if (flock(fd, LOCK_SH | LOCK_NB) != 0)
        *alive = errno == EWOULDBLOCK;
    close(fd);
    return SLUICE_OK;
}
