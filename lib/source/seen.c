/*
 * What one ingest has seen (seen.h), in a private SQLite database that
 * lives in a temporary file (SQLite's own, deleted when closed, or by the
 * kernel if the process dies): ids -> where and which key; keys -> where
 * and whose (the earliest record naming it that still does); and, for a
 * key several records name, the others. "Where" is the input's number
 * above the line, in one integer. Only records that still name a key are
 * kept as its namers: a duplicate id that names another key gives up the
 * old one. A record costs two inserts when it repeats nothing.
 */
#include "seen.h"

#include <string.h>

#include <sqlite3.h>

/* Where a record is: its input's number above its line. */
#define LINE_BITS 40
#define LINE_MASK ((UINT64_C(1) << LINE_BITS) - 1)

/* The page cache: the tables spill to the file past it. */
#define CACHE_KIB 8192

enum {
    S_INS_ID,
    S_GET_ID,
    S_SET_ID,
    S_DEL_ID,
    S_INS_KEY,
    S_GET_KEY,
    S_SET_KEY,
    S_DEL_KEY,
    S_PUT_MORE,
    S_FIRST_MORE,
    S_DEL_MORE,
    S_BEGIN,
    S_COMMIT,
    S_INS_IDS,  /* SL_SEEN_MANY rows, built in sl_seen_open */
    S_INS_KEYS, /* likewise */
    S_UNDO_ID,
    S_UNDO_KEY,
    S_COUNT_
};

static const char *const sql[S_COUNT_] = {
    [S_INS_ID] = "INSERT INTO ids(id, at, key) VALUES (?1, ?2, ?3)"
                 " ON CONFLICT DO NOTHING",
    [S_GET_ID] = "SELECT at, key FROM ids WHERE id = ?1",
    [S_SET_ID] = "UPDATE ids SET at = ?2, key = ?3 WHERE id = ?1",
    [S_DEL_ID] = "DELETE FROM ids WHERE id = ?1",
    [S_INS_KEY] = "INSERT INTO keys(key, at, id) VALUES (?1, ?2, ?3)"
                  " ON CONFLICT DO NOTHING",
    [S_GET_KEY] = "SELECT at, id FROM keys WHERE key = ?1",
    [S_SET_KEY] = "UPDATE keys SET at = ?2, id = ?3 WHERE key = ?1",
    [S_DEL_KEY] = "DELETE FROM keys WHERE key = ?1",
    [S_PUT_MORE] = "INSERT OR REPLACE INTO more(key, id, at)"
                   " VALUES (?1, ?3, ?2)",
    [S_FIRST_MORE] = "SELECT at, id FROM more WHERE key = ?1"
                     " ORDER BY at LIMIT 1",
    [S_DEL_MORE] = "DELETE FROM more WHERE key = ?1 AND id = ?2",
    [S_BEGIN] = "BEGIN",
    [S_COMMIT] = "COMMIT",
    [S_UNDO_ID] = "DELETE FROM ids WHERE id = ?1 AND at = ?2",
    [S_UNDO_KEY] = "DELETE FROM keys WHERE key = ?1 AND at = ?2",
};

/* INSERT INTO `table`(...) of SL_SEEN_MANY rows of three parameters
 * each, conflicts ignored. */
static int
many_sql(sl_buf *b, const char *head)
{
    sl_buf_clear(b);
    int bad = sl_buf_printf(b, "%s", head);
    for (int r = 0; r < SL_SEEN_MANY && !bad; r++)
        bad = sl_buf_printf(b, "%s(?%d, ?%d, ?%d)", r ? "," : "", r * 3 + 1,
                            r * 3 + 2, r * 3 + 3);
    return bad || sl_buf_printf(b, " ON CONFLICT DO NOTHING");
}

struct sl_seen {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT_];
    char **inputs; /* names, by number */
    unsigned n_inputs;
    sl_buf owner;    /* the other record's id of the last verdict */
    sl_buf prev_key; /* the key a duplicate id named before */
    char errmsg[256];
};

static sluice_err
fail(sl_seen *s, int rc, const char *what)
{
    sl_fmt(s->errmsg, sizeof s->errmsg,
           "the ids and keys seen (a temporary file): %s: %s", what,
           s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    if (rc == SQLITE_NOMEM)
        return SLUICE_ENOMEM;
    if (rc == SQLITE_FULL || (rc & 0xff) == SQLITE_IOERR ||
        rc == SQLITE_CANTOPEN)
        return SLUICE_EIO;
    return SLUICE_EDB;
}

sluice_err
sl_seen_open(sl_seen **out, char *reason, size_t reason_size)
{
    sluice_err err = SLUICE_ENOMEM;
    sl_seen *s = sl_calloc(1, sizeof *s);
    *out = NULL;
    if (!s) {
        sl_fmt(reason, reason_size, "out of memory");
        return SLUICE_ENOMEM;
    }
    sl_buf_init(&s->owner);
    sl_buf_init(&s->prev_key);
    /* "": a private database in a temporary file. No journal: it lives
     * as long as this ingest and is worth nothing after a crash. */
    int rc = sqlite3_open_v2(
        "", &s->db,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    char pragmas[256];
    sl_fmt(pragmas, sizeof pragmas,
           "PRAGMA page_size = 4096; PRAGMA temp_store = FILE;"
           " PRAGMA journal_mode = OFF;"
           " PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE;"
           " PRAGMA cache_size = -%d",
           CACHE_KIB);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, pragmas, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db,
                          "CREATE TABLE ids(id TEXT PRIMARY KEY,"
                          " at INTEGER NOT NULL, key TEXT NOT NULL)"
                          " WITHOUT ROWID;"
                          "CREATE TABLE keys(key TEXT PRIMARY KEY,"
                          " at INTEGER NOT NULL, id TEXT NOT NULL)"
                          " WITHOUT ROWID;"
                          "CREATE TABLE more(key TEXT NOT NULL,"
                          " id TEXT NOT NULL, at INTEGER NOT NULL,"
                          " PRIMARY KEY(key, id)) WITHOUT ROWID",
                          NULL, NULL, NULL);
    sl_buf many;
    sl_buf_init(&many);
    for (int i = 0; i < S_COUNT_ && rc == SQLITE_OK; i++) {
        const char *text = sql[i];
        if (i == S_INS_IDS || i == S_INS_KEYS) {
            if (many_sql(&many, i == S_INS_IDS
                                    ? "INSERT INTO ids(id, at, key) VALUES "
                                    : "INSERT INTO keys(key, at, id) VALUES "))
                rc = SQLITE_NOMEM;
            text = many.data;
        }
        if (rc == SQLITE_OK)
            rc = sqlite3_prepare_v3(s->db, text, -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->st[i], NULL);
    }
    sl_buf_free(&many);
    if (rc != SQLITE_OK) {
        err = fail(s, rc, "open");
        sl_copy(reason, reason_size,
                err == SLUICE_ENOMEM ? "out of memory" : s->errmsg);
        sl_seen_close(s);
        return err;
    }
    *out = s;
    return SLUICE_OK;
}

void
sl_seen_close(sl_seen *s)
{
    if (!s)
        return;
    for (int i = 0; i < S_COUNT_; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close_v2(s->db);
    for (unsigned i = 0; i < s->n_inputs; i++)
        sl_free(s->inputs[i]);
    sl_free(s->inputs);
    sl_buf_free(&s->owner);
    sl_buf_free(&s->prev_key);
    sl_free(s);
}

sluice_err
sl_seen_input(sl_seen *s, const char *name)
{
    char **grown = sl_realloc(s->inputs, (s->n_inputs + 1) * sizeof *grown);
    if (!grown)
        return SLUICE_ENOMEM;
    s->inputs = grown;
    if (!(s->inputs[s->n_inputs] = sl_strdup(name)))
        return SLUICE_ENOMEM;
    s->n_inputs++;
    return SLUICE_OK;
}

unsigned
sl_seen_current_input(const sl_seen *s)
{
    return s->n_inputs ? s->n_inputs - 1 : 0;
}

const char *
sl_seen_errmsg(const sl_seen *s)
{
    return s->errmsg;
}

/* Run statement `which`, which returns no row; *changed: rows it changed
 * (may be NULL). */
static sluice_err
exec(sl_seen *s, int which, int *changed)
{
    sqlite3_stmt *st = s->st[which];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return fail(s, rc, "write");
    if (changed)
        *changed = sqlite3_changes(s->db);
    return SLUICE_OK;
}

sluice_err
sl_seen_begin(sl_seen *s)
{
    return exec(s, S_BEGIN, NULL);
}

sluice_err
sl_seen_commit(sl_seen *s)
{
    return exec(s, S_COMMIT, NULL);
}

static void
bind_text(sqlite3_stmt *st, int i, const char *text, size_t len)
{
    sqlite3_bind_text(st, i, text, (int)len, SQLITE_STATIC);
}

static const char *
input_name(const sl_seen *s, int64_t at)
{
    uint64_t n = (uint64_t)at >> LINE_BITS;
    return n < s->n_inputs ? s->inputs[n] : "?";
}

/* Run a statement that returns at most one row of (at, text): the row
 * into *at and `text`; *found false for none. */
static sluice_err
get_row(sl_seen *s, int which, int64_t *at, sl_buf *text, bool *found)
{
    sqlite3_stmt *st = s->st[which];
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (*found) {
        *at = sqlite3_column_int64(st, 0);
        const char *t = (const char *)sqlite3_column_text(st, 1);
        sl_buf_clear(text);
        if (sl_buf_append(text, t ? t : "",
                          (size_t)sqlite3_column_bytes(st, 1)) ||
            sl_buf_reserve(text, 0)) {
            sqlite3_reset(st);
            return SLUICE_ENOMEM;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SLUICE_OK
                                                 : fail(s, rc, "read");
}

static bool
same_text(const sl_buf *b, const char *s, size_t len)
{
    return b->len == len && memcmp(b->data, s, len) == 0;
}

/* Record `id` no longer names `key` (its id was given again with another
 * key): the next of its other namers, if any, becomes its first. */
static sluice_err
give_up_key(sl_seen *s, const char *key, size_t key_len, const char *id,
            size_t id_len)
{
    int64_t at;
    bool found;
    sl_buf who;
    sl_buf_init(&who);
    bind_text(s->st[S_GET_KEY], 1, key, key_len);
    sluice_err err = get_row(s, S_GET_KEY, &at, &who, &found);
    if (err == SLUICE_OK && found && same_text(&who, id, id_len)) {
        bind_text(s->st[S_FIRST_MORE], 1, key, key_len);
        err = get_row(s, S_FIRST_MORE, &at, &who, &found);
        if (err == SLUICE_OK && found) {
            sqlite3_stmt *st = s->st[S_SET_KEY];
            bind_text(st, 1, key, key_len);
            sqlite3_bind_int64(st, 2, at);
            bind_text(st, 3, who.data, who.len);
            err = exec(s, S_SET_KEY, NULL);
            if (err == SLUICE_OK) {
                bind_text(s->st[S_DEL_MORE], 1, key, key_len);
                bind_text(s->st[S_DEL_MORE], 2, who.data, who.len);
                err = exec(s, S_DEL_MORE, NULL);
            }
        } else if (err == SLUICE_OK) {
            bind_text(s->st[S_DEL_KEY], 1, key, key_len);
            err = exec(s, S_DEL_KEY, NULL);
        }
    } else if (err == SLUICE_OK) {
        bind_text(s->st[S_DEL_MORE], 1, key, key_len);
        bind_text(s->st[S_DEL_MORE], 2, id, id_len);
        err = exec(s, S_DEL_MORE, NULL);
    }
    sl_buf_free(&who);
    return err;
}

static int64_t
at_of(const sl_seen *s, uint64_t line)
{
    return (int64_t)(((uint64_t)sl_seen_current_input(s) << LINE_BITS) |
                     (line & LINE_MASK));
}

sluice_err
sl_seen_check(sl_seen *s, const char *id, size_t id_len, const char *key,
              size_t key_len, uint64_t line, bool strict, sl_seen_verdict *v)
{
    int64_t at = at_of(s, line);
    int id_new = 0, key_new = 0;
    bool found, first = false;
    int64_t prev_at = 0, key_at = 0;
    sluice_err err;

    memset(v, 0, sizeof *v);
    sqlite3_stmt *st = s->st[S_INS_ID];
    bind_text(st, 1, id, id_len);
    sqlite3_bind_int64(st, 2, at);
    bind_text(st, 3, key, key_len);
    if ((err = exec(s, S_INS_ID, &id_new)) != SLUICE_OK)
        return err;
    if (!id_new) {
        bind_text(s->st[S_GET_ID], 1, id, id_len);
        err = get_row(s, S_GET_ID, &prev_at, &s->prev_key, &found);
        if (err != SLUICE_OK)
            return err;
        v->dup_id = true;
        v->id_file = input_name(s, prev_at);
        v->id_line = (uint64_t)prev_at & LINE_MASK;
    }

    st = s->st[S_INS_KEY];
    bind_text(st, 1, key, key_len);
    sqlite3_bind_int64(st, 2, at);
    bind_text(st, 3, id, id_len);
    if ((err = exec(s, S_INS_KEY, &key_new)) != SLUICE_OK)
        return err;
    if (!key_new) {
        /* Its first namer still names it (namers that gave it up are
         * gone): this record again, or another. */
        bind_text(s->st[S_GET_KEY], 1, key, key_len);
        err = get_row(s, S_GET_KEY, &key_at, &s->owner, &found);
        if (err != SLUICE_OK)
            return err;
        first = same_text(&s->owner, id, id_len);
        if (!first) {
            v->shared_key = true;
            v->key_file = input_name(s, key_at);
            v->key_line = (uint64_t)key_at & LINE_MASK;
            v->key_id = s->owner.data;
        }
    }

    if (strict && (v->dup_id || v->shared_key)) {
        /* Refused: no trace of it. */
        if (id_new) {
            bind_text(s->st[S_DEL_ID], 1, id, id_len);
            if ((err = exec(s, S_DEL_ID, NULL)) != SLUICE_OK)
                return err;
        }
        if (key_new) {
            bind_text(s->st[S_DEL_KEY], 1, key, key_len);
            if ((err = exec(s, S_DEL_KEY, NULL)) != SLUICE_OK)
                return err;
        }
        return SLUICE_OK;
    }
    if (v->dup_id) {
        /* The last wins: the id is this record's now, and the key the
         * earlier one named is given up unless this one names it too. */
        st = s->st[S_SET_ID];
        bind_text(st, 1, id, id_len);
        sqlite3_bind_int64(st, 2, at);
        bind_text(st, 3, key, key_len);
        if ((err = exec(s, S_SET_ID, NULL)) != SLUICE_OK)
            return err;
        if (!same_text(&s->prev_key, key, key_len) &&
            (err = give_up_key(s, s->prev_key.data, s->prev_key.len, id,
                               id_len)) != SLUICE_OK)
            return err;
    }
    if (first) {
        st = s->st[S_SET_KEY];
        bind_text(st, 1, key, key_len);
        sqlite3_bind_int64(st, 2, at);
        bind_text(st, 3, id, id_len);
        if ((err = exec(s, S_SET_KEY, NULL)) != SLUICE_OK)
            return err;
    }
    if (v->shared_key) {
        st = s->st[S_PUT_MORE];
        bind_text(st, 1, key, key_len);
        sqlite3_bind_int64(st, 2, at);
        bind_text(st, 3, id, id_len);
        if ((err = exec(s, S_PUT_MORE, NULL)) != SLUICE_OK)
            return err;
    }
    return SLUICE_OK;
}

sluice_err
sl_seen_check_many(sl_seen *s, const sl_seen_record *recs, bool *clean)
{
    sqlite3_stmt *ids = s->st[S_INS_IDS], *keys = s->st[S_INS_KEYS];
    int ids_new = 0, keys_new = 0;
    for (int r = 0; r < SL_SEEN_MANY; r++) {
        const sl_seen_record *rec = &recs[r];
        int64_t at = at_of(s, rec->line);
        bind_text(ids, r * 3 + 1, rec->id, rec->id_len);
        sqlite3_bind_int64(ids, r * 3 + 2, at);
        bind_text(ids, r * 3 + 3, rec->key, rec->key_len);
        bind_text(keys, r * 3 + 1, rec->key, rec->key_len);
        sqlite3_bind_int64(keys, r * 3 + 2, at);
        bind_text(keys, r * 3 + 3, rec->id, rec->id_len);
    }
    sluice_err err = exec(s, S_INS_IDS, &ids_new);
    if (err == SLUICE_OK)
        err = exec(s, S_INS_KEYS, &keys_new);
    if (err != SLUICE_OK)
        return err;
    *clean = ids_new == SL_SEEN_MANY && keys_new == SL_SEEN_MANY;
    if (*clean)
        return SLUICE_OK;
    /* Some repeat: take back what went in (a row of this line is one of
     * these records'), for the caller to check them one by one. */
    for (int r = 0; r < SL_SEEN_MANY && err == SLUICE_OK; r++) {
        int64_t at = at_of(s, recs[r].line);
        bind_text(s->st[S_UNDO_ID], 1, recs[r].id, recs[r].id_len);
        sqlite3_bind_int64(s->st[S_UNDO_ID], 2, at);
        err = exec(s, S_UNDO_ID, NULL);
        if (err == SLUICE_OK) {
            bind_text(s->st[S_UNDO_KEY], 1, recs[r].key, recs[r].key_len);
            sqlite3_bind_int64(s->st[S_UNDO_KEY], 2, at);
            err = exec(s, S_UNDO_KEY, NULL);
        }
    }
    return err;
}
