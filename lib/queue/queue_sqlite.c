/*
 * The embedded queue backend: one SQLite file in WAL mode. Records live in
 * one table indexed by (state, next_at), so leasing, counting and finding
 * due retries are index range scans whatever the size of the queue. The
 * schema is versioned with PRAGMA user_version; see migrations[] below.
 */
#include "queue_sqlite.h"

#include "../json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

/* "SLIC": marks a SQLite file as sluice's. */
#define SLUICE_APPLICATION_ID 0x534c4943

/*
 * Schema migrations: migrations[v] takes a database from user_version v to
 * v + 1. Append new steps; never edit a released one.
 */
static const char *const migrations[] = {
    /* 0 -> 1: the first schema. */
    "CREATE TABLE origins ("
    "  oid INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE"     /* scheme://host:port */
    ");"
    "CREATE TABLE records ("
    "  rid INTEGER PRIMARY KEY,"      /* feed order */
    "  id TEXT NOT NULL UNIQUE,"
    "  url TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  meta TEXT,"
    "  origin INTEGER NOT NULL,"      /* origins.oid */
    "  state INTEGER NOT NULL,"       /* sl_state */
    "  next_at INTEGER NOT NULL,"     /* retry due / lease expiry, ms */
    "  lease INTEGER NOT NULL DEFAULT 0," /* lease generation */
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  throttles INTEGER NOT NULL DEFAULT 0,"
    "  queued_at INTEGER NOT NULL,"
    "  first_attempt_at INTEGER,"
    "  finished_at INTEGER,"
    "  error_class TEXT,"
    "  message TEXT,"
    "  http_status INTEGER,"
    "  size INTEGER,"
    "  sha256 TEXT,"
    "  content_type TEXT,"
    "  etag TEXT"
    ");"
    "CREATE INDEX records_state ON records(state, next_at);",
    /* 1 -> 2: each origin's pending records in feed order, so that a
     * lease skipping a busy origin does not read through its records. */
    "CREATE INDEX records_pending ON records(origin, rid)"
    " WHERE state = 0 AND next_at = 0;",
    /* 2 -> 3: slots kept with the queue (queue_sqlite_slots.c), and the
     * settings a queue keeps (its cap). */
    "CREATE TABLE slots ("
    "  origin TEXT PRIMARY KEY,"      /* scheme://host:port */
    "  held INTEGER NOT NULL,"        /* slots held, at most */
    "  in_flight INTEGER NOT NULL,"   /* requests in flight when written */
    "  boot_id TEXT NOT NULL,"        /* the boot the _boot times are of */
    "  until_boot INTEGER NOT NULL,"  /* held until, CLOCK_BOOTTIME ms */
    "  until_wall INTEGER NOT NULL,"  /* the same, wall clock */
    "  hold_ms INTEGER NOT NULL,"     /* the writer's timeout + margin */
    "  paused_boot INTEGER NOT NULL," /* a pause's end; 0: none */
    "  paused_wall INTEGER NOT NULL,"
    "  token INTEGER NOT NULL,"       /* the highest token handed out */
    "  written_at INTEGER NOT NULL,"  /* wall ms */
    "  written_boot INTEGER NOT NULL," /* boot ms */
    "  next_start INTEGER NOT NULL,"  /* the pacer: no request before */
    "  conc REAL NOT NULL,"           /* the limits it learnt */
    "  rate REAL NOT NULL,"
    "  advised REAL NOT NULL,"        /* the rate the origin advertised */
    "  advised_until INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE settings ("
    "  name TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL"
    ") WITHOUT ROWID;",
    /* 3 -> 4: hosts in the one spelling ingest now gives them (lower
     * case, an internationalised name in its ASCII form), through the
     * functions of queue_sqlite_hosts.c: stored URLs, ids that are their
     * URL and those records' default keys, and origins. A record whose
     * new id another record has already keeps its old spelling. Records
     * dead at their first hop because libcurl could not take their
     * internationalised host (filed under "redirect") are pending again.
     * States, attempts and objects are otherwise left as they were:
     * nothing done is fetched again. */
    "CREATE TEMP TABLE v4(rid INTEGER PRIMARY KEY, url TEXT NOT NULL,"
    " origin TEXT NOT NULL, old_origin INTEGER NOT NULL,"
    " idn INTEGER NOT NULL);"
    "INSERT INTO v4 SELECT rid, sluice_v4_url(url),"
    " sluice_v4_origin(sluice_v4_url(url)), origin, 0"
    " FROM records WHERE sluice_v4_url(url) IS NOT NULL;"
    "UPDATE v4 SET idn = origin IS NOT"
    " (SELECT name FROM origins WHERE oid = old_origin);"
    "INSERT OR IGNORE INTO origins(name) SELECT DISTINCT origin FROM v4;"
    "UPDATE OR IGNORE records SET"
    " id = CASE WHEN records.id = records.url THEN v4.url"
    "  ELSE records.id END,"
    " key = CASE WHEN records.id = records.url"
    "  THEN sluice_v4_key(records.url, v4.url, records.key)"
    "  ELSE records.key END,"
    " url = v4.url,"
    " origin = (SELECT oid FROM origins WHERE name = v4.origin)"
    " FROM v4 WHERE v4.rid = records.rid;"
    "UPDATE records SET state = 0, next_at = 0, lease = lease + 1,"
    " attempts = 0, throttles = 0, first_attempt_at = NULL,"
    " error_class = NULL, message = NULL, http_status = NULL,"
    " finished_at = NULL"
    " FROM v4 WHERE v4.rid = records.rid AND v4.idn"
    " AND records.url = v4.url AND records.state = 4"
    " AND records.error_class = 'redirect';"
    "DELETE FROM origins WHERE oid IN"
    " (SELECT old_origin FROM v4 WHERE idn) AND NOT EXISTS"
    " (SELECT 1 FROM records WHERE records.origin = origins.oid);"
    "DROP TABLE v4;",
    /* 4 -> 5: streams (queue_sqlite_streams.c): each stream's ingester
     * lease, and where its ingester is in each shard, written in the
     * transaction that stores the shard's records. */
    "CREATE TABLE stream_leases ("
    "  stream TEXT PRIMARY KEY,"
    "  owner TEXT NOT NULL,"
    "  until_ms INTEGER NOT NULL"     /* wall clock */
    ") WITHOUT ROWID;"
    "CREATE TABLE stream_marks ("
    "  stream TEXT NOT NULL,"
    "  shard TEXT NOT NULL,"
    "  seq TEXT NOT NULL,"            /* the last record stored */
    "  subseq INTEGER NOT NULL,"      /* its KPL sub-record */
    "  finished INTEGER NOT NULL,"    /* closed and read to its end */
    "  behind_ms INTEGER NOT NULL,"   /* -1: unknown */
    "  arrival_ms INTEGER NOT NULL,"
    "  written_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (stream, shard)"
    ") WITHOUT ROWID;",
};

#define SCHEMA_VERSION ((int)SL_ARRAY_LEN(migrations))


/* A record that is not in flight goes back to where it was. */
#define READY_STATE "CASE WHEN error_class IS NULL THEN 0 ELSE 2 END"
#define READY_AT(now) "CASE WHEN error_class IS NULL THEN 0 ELSE " now " END"
/* An upsert that changes the url or key sends the record back. */
#define REFETCH     "(url IS NOT excluded.url OR key IS NOT excluded.key)"

/*
 * The upsert, in one statement for up to UPSERT_ROWS records: ?1 is the
 * time, then five parameters a record. RETURNING tells what happened: a
 * row comes back for each insert or update, none for a no-op.
 */
#define UPSERT_ROWS 64
#define UPSERT_HEAD                                                           \
    "INSERT INTO records(id, url, key, meta, origin, state, next_at,"         \
    " queued_at) VALUES "
#define UPSERT_TAIL                                                           \
    " ON CONFLICT(id) DO UPDATE SET"                                          \
    " state = CASE WHEN " REFETCH " THEN 0 ELSE state END,"                   \
    " next_at = CASE WHEN " REFETCH " THEN 0 ELSE next_at END,"               \
    " lease = CASE WHEN " REFETCH " THEN lease + 1 ELSE lease END,"           \
    " attempts = CASE WHEN " REFETCH " THEN 0 ELSE attempts END,"             \
    " throttles = CASE WHEN " REFETCH " THEN 0 ELSE throttles END,"           \
    " queued_at = CASE WHEN " REFETCH " THEN excluded.queued_at"              \
    "   ELSE queued_at END,"                                                  \
    " first_attempt_at = CASE WHEN " REFETCH " THEN NULL"                     \
    "   ELSE first_attempt_at END,"                                           \
    " error_class = CASE WHEN " REFETCH " THEN NULL ELSE error_class END,"    \
    " message = CASE WHEN " REFETCH " THEN NULL ELSE message END,"            \
    " http_status = CASE WHEN " REFETCH " THEN NULL ELSE http_status END,"    \
    " url = excluded.url, key = excluded.key, meta = excluded.meta,"          \
    " origin = excluded.origin"                                               \
    " WHERE " REFETCH " OR meta IS NOT excluded.meta"                         \
    " RETURNING rid"

/* A record's origin by name, and the lease filter on origins (?3). */
#define ORIGIN_NAME                                                           \
    "(SELECT name FROM origins WHERE oid = records.origin)"
#define NOT_SKIPPED                                                           \
    "(?3 IS NULL OR origin NOT IN (SELECT oid FROM origins WHERE name IN"     \
    " (SELECT value FROM json_each(?3))))"

/* Leasing pending records (?1 the time, ?4 the lease's expiry), and the
 * row each leased record gives back. */
#define LEASE_PENDING                                                         \
    "UPDATE records SET state = 1, next_at = ?4, lease = lease + 1,"          \
    " first_attempt_at = coalesce(first_attempt_at, ?1)"
#define LEASED_ROW                                                            \
    " RETURNING rid, id, url, key, " ORIGIN_NAME ", attempts,"                \
    " first_attempt_at, 0, lease, meta"

/* A record as it is (sl_record_info), in info_read's order. */
#define INFO_COLUMNS                                                          \
    "state, id, url, key, meta, " ORIGIN_NAME ", attempts, throttles,"        \
    " next_at, error_class, message, http_status, size, sha256,"             \
    " content_type, etag"

/* What sluice_list hands out, in sqlite_list's order. */
#define LIST_COLUMNS                                                           \
    "id, url, key, meta, state, attempts, size, sha256, content_type, etag,"  \
    " error_class, message, http_status, finished_at"

static const char *const statements[ST_COUNT_] = {
    [ST_UPSERT] = UPSERT_HEAD "(?2, ?3, ?4, ?5, ?6, 0, 0, ?1)" UPSERT_TAIL,
    [ST_MAX_RID] = "SELECT max(rid) FROM records",
    [ST_ORIGIN_ADD] = "INSERT INTO origins(name) VALUES (?1)"
                      " ON CONFLICT(name) DO UPDATE SET name = name"
                      " RETURNING oid",
    [ST_LEASE_DUE] =
        "SELECT rid, id, url, key, " ORIGIN_NAME ", attempts,"
        " first_attempt_at, state, meta FROM records WHERE state IN (1, 2)"
        " AND next_at <= ?1 AND " NOT_SKIPPED
        " ORDER BY next_at LIMIT ?2",
    /* Pending records are leased by one statement: far cheaper than a
     * select and an update per record. */
    [ST_LEASE_PENDING] =
        LEASE_PENDING " WHERE rid IN (SELECT rid FROM records WHERE state = 0"
        " AND next_at = 0 AND " NOT_SKIPPED " ORDER BY rid LIMIT ?2)"
        LEASED_ROW,
    [ST_UNSKIPPED] = "SELECT oid FROM origins WHERE name NOT IN"
                     " (SELECT value FROM json_each(?1)) LIMIT ?2",
    /* With origins skipped: one origin's pending records, and a lease of
     * one of them (see lease_by_origin). */
    [ST_PENDING_OF] = "SELECT rid FROM records INDEXED BY records_pending"
                      " WHERE state = 0 AND next_at = 0 AND origin = ?1"
                      " ORDER BY rid LIMIT ?2",
    [ST_LEASE_RID] =
        LEASE_PENDING " WHERE rid = ?2 AND state = 0 AND next_at = 0"
        LEASED_ROW,
    [ST_MARK_LEASED] =
        "UPDATE records SET state = 1, next_at = ?2, lease = lease + 1,"
        " first_attempt_at = coalesce(first_attempt_at, ?3)"
        " WHERE rid = ?1 RETURNING lease",
    [ST_COMPLETE] =
        "UPDATE records SET state = 3, next_at = 0, finished_at = ?3,"
        " size = ?4, sha256 = ?5, content_type = ?6, etag = ?7,"
        " error_class = NULL, message = NULL, http_status = NULL"
        " WHERE rid = ?1 AND lease = ?2 AND state = 1",
    [ST_RETRY] =
        "UPDATE records SET state = 2, next_at = ?3,"
        " attempts = attempts + ?4, throttles = throttles + 1 - ?4,"
        " error_class = ?5, message = ?6, http_status = ?7"
        " WHERE rid = ?1 AND lease = ?2 AND state = 1",
    [ST_DEAD] =
        "UPDATE records SET state = 4, next_at = 0, finished_at = ?3,"
        " attempts = attempts + 1,"
        " error_class = ?4, message = ?5, http_status = ?6"
        " WHERE rid = ?1 AND lease = ?2 AND state = 1",
    [ST_RENEW] = "UPDATE records SET next_at = ?3"
                  " WHERE rid = ?1 AND lease = ?2 AND state = 1",
    [ST_RELEASE] =
        "UPDATE records SET state = " READY_STATE ","
        " next_at = " READY_AT("?2") ", lease = lease + 1"
        " WHERE rid = ?1 AND lease = ?3 AND state = 1",
    [ST_RECOVER] =
        "UPDATE records SET state = " READY_STATE ","
        " next_at = " READY_AT("?1") ", lease = lease + 1 WHERE state = 1",
    [ST_COUNTS] = "SELECT state, count(*) FROM records GROUP BY state",
    [ST_NEXT_DUE] = "SELECT min(next_at) FROM records WHERE state = 2",
    [ST_OLDEST] = "SELECT queued_at FROM records WHERE state = 0"
                  " AND next_at = 0 ORDER BY rid LIMIT 1",
    [ST_GET] = "SELECT " INFO_COLUMNS " FROM records WHERE id = ?1",
    [ST_DUMP] = "SELECT " INFO_COLUMNS ", queued_at, first_attempt_at,"
                " finished_at FROM records ORDER BY rid",
    [ST_RESTORE] =
        "INSERT INTO records(state, id, url, key, meta, origin, attempts,"
        " throttles, next_at, error_class, message, http_status, size,"
        " sha256, content_type, etag, queued_at, first_attempt_at,"
        " finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
        " ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
    [ST_DLQ_LIST] =
        "SELECT id, url, key, meta, error_class, message, http_status,"
        " attempts, finished_at FROM records WHERE state = 4"
        " AND (?1 IS NULL OR error_class = ?1) ORDER BY finished_at, rid",
    [ST_LIST] = "SELECT " LIST_COLUMNS " FROM records"
                " WHERE ?1 < 0 OR state = ?1 ORDER BY rid",
    [ST_LIST_ONE] = "SELECT " LIST_COLUMNS " FROM records WHERE id = ?1",
    [ST_REPLAY] =
        "UPDATE records SET state = 0, next_at = 0, lease = lease + 1,"
        " attempts = 0, throttles = 0, first_attempt_at = NULL,"
        " queued_at = ?3, error_class = NULL, message = NULL,"
        " http_status = NULL, finished_at = NULL"
        " WHERE state = 4 AND (?1 IS NULL OR id = ?1)"
        " AND (?2 IS NULL OR error_class = ?2)",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT own",
    [ST_SAVEPOINT_RELEASE] = "RELEASE own",
    [ST_SAVEPOINT_ROLLBACK] = "ROLLBACK TO own",
};

/* Translate a SQLite result into a sluice code with a one-line message. */
sluice_err
sl_sqlite_fail(sluice_queue *q, int rc, const char *what)
{
    sqlite_queue *s = sl_sqlite_state(q);
    const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    sluice_err err;
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return sl_queue_fail(q, SLUICE_EBUSY,
                             "%s: database is locked by another process "
                             "(waited %u ms)",
                             s->path, s->busy_timeout_ms);
    case SQLITE_READONLY:
        return sl_queue_fail(q, SLUICE_EREADONLY,
                             "%s: database is read-only", s->path);
    case SQLITE_NOTADB:
        return sl_queue_fail(q, SLUICE_ENOTDB,
                             "%s: not a SQLite database", s->path);
    case SQLITE_NOMEM:
        err = SLUICE_ENOMEM;
        break;
    case SQLITE_FULL:
        return sl_queue_fail(q, SLUICE_ENOSPACE,
                             "%s: %s: the disk holding the queue is full",
                             s->path, what);
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
        err = SLUICE_EIO;
        break;
    default:
        err = SLUICE_EDB;
    }
    return sl_queue_fail(q, err, "%s: %s: %s", s->path, what, msg);
}

sluice_err
sl_sqlite_prep(sluice_queue *q, int which, sqlite3_stmt **out)
{
    sqlite_queue *s = sl_sqlite_state(q);
    *out = NULL;
    if (!s->st[which]) {
        const char *sql = statements[which];
        sl_buf many;
        sl_buf_init(&many);
        if (which == ST_UPSERT_MANY) {
            int bad = sl_buf_append(&many, UPSERT_HEAD, strlen(UPSERT_HEAD));
            for (int r = 0; r < UPSERT_ROWS && !bad; r++) {
                int p = 2 + r * 5;
                bad = sl_buf_printf(&many, "%s(?%d,?%d,?%d,?%d,?%d,0,0,?1)",
                                    r ? "," : "", p, p + 1, p + 2, p + 3,
                                    p + 4);
            }
            if (bad || sl_buf_append(&many, UPSERT_TAIL, strlen(UPSERT_TAIL)))
                return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
            sql = many.data;
        }
        int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->st[which], NULL);
        sl_buf_free(&many);
        if (rc != SQLITE_OK)
            return sl_sqlite_fail(q, rc, "prepare");
    }
    *out = s->st[which];
    return SLUICE_OK;
}

/* Run a statement that returns no rows. */
sluice_err
sl_sqlite_step_done(sluice_queue *q, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return sl_sqlite_fail(q, rc, what);
    return SLUICE_OK;
}

static sluice_err
exec_sql(sluice_queue *q, const char *sql, const char *what)
{
    int rc = sqlite3_exec(sl_sqlite_state(q)->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? SLUICE_OK : sl_sqlite_fail(q, rc, what);
}

static sluice_err
query_int(sluice_queue *q, const char *sql, int64_t *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(sl_sqlite_state(q)->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sl_sqlite_fail(q, rc, "read header");
    rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sl_sqlite_fail(q, rc, "read header");
    return SLUICE_OK;
}

static sluice_err
migrate(sluice_queue *q, int from)
{
    sluice_err err = exec_sql(q, "BEGIN IMMEDIATE", "migrate");
    if (err != SLUICE_OK)
        return err;
    /* Someone else may have migrated while we waited for the lock. */
    int64_t version;
    err = query_int(q, "PRAGMA user_version", &version);
    if (err == SLUICE_OK && version != from) {
        exec_sql(q, "ROLLBACK", "migrate");
        return SLUICE_OK;
    }
    for (int v = from; v < SCHEMA_VERSION && err == SLUICE_OK; v++)
        err = exec_sql(q, migrations[v], "migrate");
    if (err == SLUICE_OK) {
        char sql[96];
        sl_fmt(sql, sizeof sql,
               "PRAGMA application_id = %d; PRAGMA user_version = %d",
               SLUICE_APPLICATION_ID, SCHEMA_VERSION);
        err = exec_sql(q, sql, "migrate");
    }
    if (err == SLUICE_OK)
        err = exec_sql(q, "COMMIT", "migrate");
    if (err != SLUICE_OK)
        sqlite3_exec(sl_sqlite_state(q)->db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}

static sluice_err
sqlite_open(sluice_queue *q, const char *location,
            const sluice_queue_opts *opts)
{
    sqlite_queue *s = sl_sqlite_state(q);
    const char *path = location;
    struct stat sb;
    sluice_err err;
    int64_t app_id, version, objects;
    bool readonly = opts->flags & SLUICE_QUEUE_READONLY;

    if (strncmp(path, "sqlite:", 7) == 0)
        path = q->location + 7;
    else
        path = q->location;
    s->path = path;
    s->runner_fd = -1;
    s->busy_timeout_ms = opts->busy_timeout_ms ? opts->busy_timeout_ms : 5000;
    sl_buf_init(&s->skip_json);

    if (!*path)
        return sl_queue_fail(q, SLUICE_EINVAL, "empty database path");
    if (stat(path, &sb) != 0) {
        if (errno != ENOENT)
            return sl_queue_fail(q, SLUICE_EIO, "%s: %s", path,
                                 strerror(errno));
        if (readonly || (opts->flags & SLUICE_QUEUE_NOCREATE))
            return sl_queue_fail(q, SLUICE_ENOENT,
                                 "%s: no such database (sluice ingest "
                                 "creates it)",
                                 path);
    } else if (S_ISDIR(sb.st_mode)) {
        return sl_queue_fail(q, SLUICE_EINVAL, "%s: is a directory", path);
    }

    int flags = readonly ? SQLITE_OPEN_READONLY
                         : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        int saved = errno;
        const char *why = rc == SQLITE_CANTOPEN && saved
                              ? strerror(saved)
                              : sqlite3_errstr(rc);
        err = (rc == SQLITE_CANTOPEN && saved == EACCES) ? SLUICE_EACCES
                                                           : SLUICE_EIO;
        return sl_queue_fail(q, err, "%s: cannot open database: %s", path,
                             why);
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, (int)s->busy_timeout_ms);

    if (!readonly && sqlite3_db_readonly(s->db, "main") == 1)
        return sl_queue_fail(q, SLUICE_EREADONLY,
                             "%s: database is read-only (check the file's "
                             "and its directory's permissions)",
                             path);

    /* Look before touching anything: a file that is not ours stays as
     * it is. */
    if ((err = query_int(q, "PRAGMA application_id", &app_id)) ||
        (err = query_int(q, "PRAGMA user_version", &version)) ||
        (err = query_int(q, "SELECT count(*) FROM sqlite_master",
                         &objects))) {
        if (err == SLUICE_ENOTDB)
            return sl_queue_fail(q, SLUICE_ENOTDB,
                                 "%s: not a sluice database (not even "
                                 "SQLite)",
                                 path);
        return err;
    }
    bool fresh = app_id == 0 && version == 0 && objects == 0;
    if (!fresh && app_id != SLUICE_APPLICATION_ID)
        return sl_queue_fail(q, SLUICE_ENOTDB,
                             "%s: not a sluice database (a SQLite file of "
                             "another program)",
                             path);
    if (version > SCHEMA_VERSION)
        return sl_queue_fail(q, SLUICE_EDBVERSION,
                             "%s: schema version %lld is newer than this "
                             "sluice understands (%d); upgrade sluice",
                             path, (long long)version, SCHEMA_VERSION);
    if (readonly) {
        if (fresh)
            return sl_queue_fail(q, SLUICE_ENOENT,
                                 "%s: empty database (sluice ingest fills "
                                 "it)",
                                 path);
        if (version < SCHEMA_VERSION)
            return sl_queue_fail(q, SLUICE_EDBVERSION,
                                 "%s: schema version %lld needs upgrading; "
                                 "run sluice ingest on it once",
                                 path, (long long)version);
        return SLUICE_OK;
    }

    /* WAL lets status and ingest read and write while a run goes on. */
    if ((err = exec_sql(q, "PRAGMA journal_mode = WAL", "set WAL mode")) ||
        (err = exec_sql(q,
                        "PRAGMA synchronous = NORMAL;"
                        "PRAGMA cache_size = -16000;"
                        "PRAGMA temp_store = MEMORY",
                        "configure")))
        return err;
    if (version < SCHEMA_VERSION) {
        if ((err = sl_sqlite_register_host_functions(q)) != SLUICE_OK)
            return err;
        return migrate(q, (int)version);
    }
    return SLUICE_OK;
}

static void
forget_origins(sqlite_queue *s)
{
    for (int i = 0; i < ORIGIN_CACHE; i++) {
        sl_free(s->origins[i].name);
        s->origins[i].name = NULL;
    }
}

static void
sqlite_close(sluice_queue *q)
{
    sqlite_queue *s = sl_sqlite_state(q);
    sl_checkpointer_stop(s->ckpt);
    for (int i = 0; i < ST_COUNT_; i++)
        sqlite3_finalize(s->st[i]);
    sl_sqlite_slots_finalize(s);
    sl_sqlite_streams_finalize(s);
    if (s->db)
        sqlite3_close_v2(s->db);
    /* Only now: closing any descriptor of the file would drop SQLite's
     * POSIX locks while the connection was open. */
    if (s->runner_fd >= 0)
        close(s->runner_fd);
    sl_buf_free(&s->skip_json);
    sl_free(s->rids);
    forget_origins(s);
}

static sluice_err
run_stmt(sluice_queue *q, int which, const char *what)
{
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_prep(q, which, &st);
    return err ? err : sl_sqlite_step_done(q, st, what);
}

static sluice_err
sqlite_begin(sluice_queue *q)
{
    return run_stmt(q, ST_BEGIN, "begin");
}

static sluice_err
sqlite_commit(sluice_queue *q)
{
    return run_stmt(q, ST_COMMIT, "commit");
}

static sluice_err
sqlite_rollback(sluice_queue *q)
{
    forget_origins(sl_sqlite_state(q));
    return run_stmt(q, ST_ROLLBACK, "rollback");
}

/* For operations of several statements: a transaction of their own, or
 * in a caller's batch a savepoint, so that a failure undoes the whole
 * operation and nothing else of the batch. */
sluice_err
sl_sqlite_own_begin(sluice_queue *q)
{
    return q->in_batch ? run_stmt(q, ST_SAVEPOINT, "savepoint")
                       : sqlite_begin(q);
}

sluice_err
sl_sqlite_own_end(sluice_queue *q, sluice_err err)
{
    if (q->in_batch) {
        if (err != SLUICE_OK)
            run_stmt(q, ST_SAVEPOINT_ROLLBACK, "rollback");
        sluice_err released = run_stmt(q, ST_SAVEPOINT_RELEASE, "release");
        return err != SLUICE_OK ? err : released;
    }
    if (err == SLUICE_OK)
        return sqlite_commit(q);
    sqlite_rollback(q);
    return err;
}

void
sl_sqlite_bind_text(sqlite3_stmt *st, int i, const char *text, size_t len)
{
    if (text)
        sqlite3_bind_text(st, i, text, (int)len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

void
sl_sqlite_bind_str(sqlite3_stmt *st, int i, const char *text)
{
    sl_sqlite_bind_text(st, i, text, text ? strlen(text) : 0);
}

static size_t
origin_hash(const char *name, size_t len)
{
    size_t h = 5381;
    for (size_t i = 0; i < len; i++)
        h = h * 33 + (unsigned char)name[i];
    return h % ORIGIN_CACHE;
}

/* The number of an origin, adding it to the origins table if new. */
static sluice_err
origin_id(sluice_queue *q, const char *name, size_t len, int64_t *oid)
{
    sqlite_queue *s = sl_sqlite_state(q);
    origin_slot *slot = &s->origins[origin_hash(name, len)];
    if (slot->name && strlen(slot->name) == len &&
        memcmp(slot->name, name, len) == 0) {
        *oid = slot->oid;
        return SLUICE_OK;
    }
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_prep(q, ST_ORIGIN_ADD, &st);
    if (err != SLUICE_OK)
        return err;
    sl_sqlite_bind_text(st, 1, name, len);
    int rc = sqlite3_step(st);
    *oid = sqlite3_column_int64(st, 0);
    if (rc == SQLITE_ROW)
        rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return sl_sqlite_fail(q, rc, "add origin");
    char *copy = sl_strndup(name, len);
    if (copy) {
        sl_free(slot->name);
        slot->name = copy;
        slot->oid = *oid;
    }
    return SLUICE_OK;
}

/*
 * Run one upsert statement over recs[0..n) and classify what came back:
 * a returned rid above the table's previous maximum is a new record (the
 * second time it comes back, an update of it); any other is an update;
 * records that return nothing were unchanged.
 */
static sluice_err
upsert_rows(sluice_queue *q, sqlite3_stmt *st, const sl_record *recs,
            size_t n, int64_t now_ms, sluice_ingest_stats *counts)
{
    sqlite3_stmt *max_st;
    sluice_err err = sl_sqlite_prep(q, ST_MAX_RID, &max_st);
    if (err != SLUICE_OK)
        return err;
    int rc = sqlite3_step(max_st);
    sqlite3_int64 max_before = sqlite3_column_int64(max_st, 0);
    sqlite3_reset(max_st);
    if (rc != SQLITE_ROW)
        return sl_sqlite_fail(q, rc, "upsert");

    sqlite3_bind_int64(st, 1, now_ms);
    for (size_t i = 0; i < n; i++) {
        int p = 2 + (int)i * 5;
        int64_t oid;
        err = origin_id(q, recs[i].origin, recs[i].origin_len, &oid);
        if (err != SLUICE_OK)
            return err;
        sl_sqlite_bind_text(st, p, recs[i].id, recs[i].id_len);
        sl_sqlite_bind_text(st, p + 1, recs[i].url, recs[i].url_len);
        sl_sqlite_bind_text(st, p + 2, recs[i].key, recs[i].key_len);
        sl_sqlite_bind_text(st, p + 3, recs[i].meta, recs[i].meta_len);
        sqlite3_bind_int64(st, p + 4, oid);
    }
    sqlite3_int64 added[UPSERT_ROWS];
    size_t n_added = 0, returned = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sqlite3_int64 rid = sqlite3_column_int64(st, 0);
        bool again = false;
        for (size_t k = 0; k < n_added && !again; k++)
            again = added[k] == rid;
        if (rid > max_before && !again && n_added < UPSERT_ROWS) {
            added[n_added++] = rid;
            counts->added++;
        } else {
            counts->updated++;
        }
        returned++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return sl_sqlite_fail(q, rc, "upsert");
    counts->unchanged += n - returned;
    return SLUICE_OK;
}

static sluice_err
sqlite_upsert(sluice_queue *q, const sl_record *recs, size_t n,
              int64_t now_ms, sluice_ingest_stats *counts)
{
    sqlite3_stmt *many, *one;
    sluice_err err;
    if ((err = sl_sqlite_prep(q, ST_UPSERT_MANY, &many)) ||
        (err = sl_sqlite_prep(q, ST_UPSERT, &one)))
        return err;
    while (n >= UPSERT_ROWS) {
        err = upsert_rows(q, many, recs, UPSERT_ROWS, now_ms, counts);
        if (err != SLUICE_OK)
            return err;
        recs += UPSERT_ROWS;
        n -= UPSERT_ROWS;
    }
    for (size_t i = 0; i < n && err == SLUICE_OK; i++)
        err = upsert_rows(q, one, &recs[i], 1, now_ms, counts);
    return err;
}

/* Copy the row's strings into one allocation owned by the lease: id, url,
 * key and origin (columns 1 to 4), and meta (the last column; NULL). */
static int
lease_fill(sl_lease *l, sqlite3_stmt *st)
{
    const char *cols[5];
    size_t lens[5], total = 0;
    int meta_col = sqlite3_column_count(st) - 1;
    for (int i = 0; i < 5; i++) {
        int col = i < 4 ? i + 1 : meta_col;
        cols[i] = (const char *)sqlite3_column_text(st, col);
        lens[i] = (size_t)sqlite3_column_bytes(st, col);
        if (!cols[i] && i < 4)
            return -1;
        total += lens[i] + 1;
    }
    char *block = sl_malloc(total);
    if (!block)
        return -1;
    char **dst[5] = {&l->id, &l->url, &l->key, &l->origin, &l->meta};
    for (int i = 0; i < 5; i++) {
        if (!cols[i]) {
            *dst[i] = NULL;
            continue;
        }
        memcpy(block, cols[i], lens[i]);
        block[lens[i]] = '\0';
        *dst[i] = block;
        block += lens[i] + 1;
    }
    l->ref[0] = (uint64_t)sqlite3_column_int64(st, 0);
    l->attempts = (unsigned)sqlite3_column_int(st, 5);
    l->first_attempt_ms = sqlite3_column_int64(st, 6);
    l->was_retrying = sqlite3_column_int(st, 7) == SL_STATE_RETRYING;
    return 0;
}

static sluice_err
skip_list_json(sluice_queue *q, const sl_lease_req *req, const char **out)
{
    sqlite_queue *s = sl_sqlite_state(q);
    *out = NULL;
    if (req->n_skip == 0)
        return SLUICE_OK;
    yajl_gen g = sl_json_gen_new();
    if (!g)
        return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < req->n_skip; i++)
        yajl_gen_string(g, (const unsigned char *)req->skip_origins[i],
                        strlen(req->skip_origins[i]));
    yajl_gen_array_close(g);
    size_t len;
    const char *text = sl_json_gen_text(g, &len);
    sl_buf_clear(&s->skip_json);
    int rc = sl_buf_append(&s->skip_json, text, len);
    yajl_gen_free(g);
    if (rc != 0)
        return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    *out = s->skip_json.data;
    return SLUICE_OK;
}

/*
 * With origins to skip, leases go origin by origin when there are at most
 * this many others: one query over the whole queue, in feed order, would
 * read every pending record of the skipped origins ahead of the first
 * record it may take, on every lease while they are skipped (a busy
 * origin is skipped, and leases come often).
 */
#define BY_ORIGIN_MAX 64

/*
 * The origins not in the skip list, up to BY_ORIGIN_MAX + 1 of them, into
 * oids[]. None: there is nothing to lease, and the lease's queries would
 * read every pending record of the skipped origins to find that out.
 */
static sluice_err
unskipped_origins(sluice_queue *q, const char *skip, int64_t *oids, size_t *n)
{
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_prep(q, ST_UNSKIPPED, &st);
    if (err != SLUICE_OK)
        return err;
    sl_sqlite_bind_str(st, 1, skip);
    sqlite3_bind_int64(st, 2, BY_ORIGIN_MAX + 1);
    int rc;
    *n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        oids[(*n)++] = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? SLUICE_OK : sl_sqlite_fail(q, rc, "lease");
}

/* Select up to `max` rows with `which` into out[*n...]; leased already
 * (with their tokens) when `which` is ST_LEASE_PENDING. */
static sluice_err
lease_select(sluice_queue *q, int which, const sl_lease_req *req,
             const char *skip, sl_lease *out, size_t *n)
{
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_prep(q, which, &st);
    if (err != SLUICE_OK)
        return err;
    sqlite3_bind_int64(st, 1, req->now_ms);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)(req->max - *n));
    sl_sqlite_bind_str(st, 3, skip);
    if (which == ST_LEASE_PENDING)
        sqlite3_bind_int64(st, 4, req->now_ms + req->lease_ms);
    int rc = SQLITE_DONE;
    while (*n < req->max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (lease_fill(&out[*n], st) != 0) {
            sqlite3_reset(st);
            return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
        }
        if (which == ST_LEASE_PENDING)
            out[*n].token = (uint64_t)sqlite3_column_int64(st, 8);
        (*n)++;
    }
    if (*n < req->max && rc != SQLITE_DONE) {
        sqlite3_reset(st);
        return sl_sqlite_fail(q, rc, "lease");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return SLUICE_OK;
}

static int
by_rid(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Append the first `want` pending records of origin `oid` to s->rids. */
static sluice_err
pending_of(sluice_queue *q, int64_t oid, size_t want, size_t *n_rids)
{
    sqlite_queue *s = sl_sqlite_state(q);
    if (s->rids_cap < *n_rids + want) {
        size_t cap = SL_MAX(s->rids_cap * 2, *n_rids + want);
        int64_t *grown = sl_realloc(s->rids, cap * sizeof *grown);
        if (!grown)
            return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
        s->rids = grown;
        s->rids_cap = cap;
    }
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_prep(q, ST_PENDING_OF, &st);
    if (err != SLUICE_OK)
        return err;
    sqlite3_bind_int64(st, 1, oid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)want);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        s->rids[(*n_rids)++] = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? SLUICE_OK : sl_sqlite_fail(q, rc, "lease");
}

/*
 * Lease pending records of the origins oids[] into out[*n...], in feed
 * order: the first records of each origin (from its own index), of which
 * the earliest are taken. Each origin costs one short index read, however
 * many records the skipped origins have.
 */
static sluice_err
lease_by_origin(sluice_queue *q, const sl_lease_req *req, const int64_t *oids,
                size_t n_oids, sl_lease *out, size_t *n)
{
    sqlite_queue *s = sl_sqlite_state(q);
    size_t want = req->max - *n, n_rids = 0;
    sluice_err err = SLUICE_OK;
    for (size_t i = 0; i < n_oids && want > 0 && err == SLUICE_OK; i++)
        err = pending_of(q, oids[i], want, &n_rids);
    if (err != SLUICE_OK || n_rids == 0)
        return err;
    qsort(s->rids, n_rids, sizeof *s->rids, by_rid);
    sqlite3_stmt *st;
    if ((err = sl_sqlite_prep(q, ST_LEASE_RID, &st)) != SLUICE_OK)
        return err;
    for (size_t i = 0; i < n_rids && *n < req->max; i++) {
        sqlite3_bind_int64(st, 1, req->now_ms);
        sqlite3_bind_int64(st, 2, s->rids[i]);
        sqlite3_bind_int64(st, 4, req->now_ms + req->lease_ms);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            if (lease_fill(&out[*n], st) != 0) {
                sqlite3_reset(st);
                return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
            }
            out[*n].token = (uint64_t)sqlite3_column_int64(st, 8);
            (*n)++;
            rc = sqlite3_step(st);
        }
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            return sl_sqlite_fail(q, rc, "lease");
    }
    sqlite3_clear_bindings(st);
    return SLUICE_OK;
}

static int
by_rid_of_lease(const void *a, const void *b)
{
    uint64_t x = ((const sl_lease *)a)->ref[0];
    uint64_t y = ((const sl_lease *)b)->ref[0];
    return (x > y) - (x < y);
}

static sluice_err
sqlite_lease(sluice_queue *q, const sl_lease_req *req, sl_lease *out,
             size_t *n_out)
{
    const char *skip;
    size_t n = 0, n_oids = 0;
    int64_t oids[BY_ORIGIN_MAX + 1];
    sqlite3_stmt *mark;
    sluice_err err = skip_list_json(q, req, &skip);
    if (err == SLUICE_OK && skip)
        err = unskipped_origins(q, skip, oids, &n_oids);
    if (err != SLUICE_OK || (skip && n_oids == 0)) {
        *n_out = 0;
        return err;
    }
    err = sl_sqlite_prep(q, ST_MARK_LEASED, &mark);
    if (err == SLUICE_OK)
        err = sl_sqlite_own_begin(q);
    if (err != SLUICE_OK)
        return err;
    err = lease_select(q, ST_LEASE_DUE, req, skip, out, &n);
    size_t due = n;
    for (size_t i = 0; i < due && err == SLUICE_OK; i++) {
        sqlite3_bind_int64(mark, 1, (sqlite3_int64)out[i].ref[0]);
        sqlite3_bind_int64(mark, 2, req->now_ms + req->lease_ms);
        sqlite3_bind_int64(mark, 3, req->now_ms);
        int rc = sqlite3_step(mark);
        if (rc == SQLITE_ROW) {
            out[i].token = (uint64_t)sqlite3_column_int64(mark, 0);
            if (out[i].first_attempt_ms == 0)
                out[i].first_attempt_ms = req->now_ms;
            rc = sqlite3_step(mark);
        }
        sqlite3_reset(mark);
        if (rc != SQLITE_DONE)
            err = sl_sqlite_fail(q, rc, "lease");
    }
    if (err == SLUICE_OK && skip && n_oids <= BY_ORIGIN_MAX)
        err = lease_by_origin(q, req, oids, n_oids, out, &n);
    else if (err == SLUICE_OK)
        err = lease_select(q, ST_LEASE_PENDING, req, skip, out, &n);
    /* RETURNING gives rows in no set order: back to feed order. */
    qsort(out + due, n - due, sizeof *out, by_rid_of_lease);
    err = sl_sqlite_own_end(q, err);
    if (err != SLUICE_OK) {
        for (size_t i = 0; i < n; i++)
            sl_lease_clear(&out[i]);
        n = 0;
    }
    *n_out = n;
    return err;
}

/* Run a mark that must hit the leased row, else the lease is stale. */
static sluice_err
mark(sluice_queue *q, sqlite3_stmt *st, const sl_lease *l, const char *what)
{
    sluice_err err = sl_sqlite_step_done(q, st, what);
    if (err == SLUICE_OK && sqlite3_changes(sl_sqlite_state(q)->db) == 0)
        return sl_queue_fail(q, SLUICE_ENOTFOUND,
                             "%s: lease on \"%.200s\" is no longer held",
                             what, l->id);
    return err;
}

static void
bind_lease(sqlite3_stmt *st, const sl_lease *l)
{
    sqlite3_bind_int64(st, 1, (sqlite3_int64)l->ref[0]);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)l->token);
}

static sluice_err
sqlite_complete(sluice_queue *q, const sl_lease *l,
                const sl_object_info *obj, int64_t now_ms)
{
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_prep(q, ST_COMPLETE, &st);
    if (err != SLUICE_OK)
        return err;
    bind_lease(st, l);
    sqlite3_bind_int64(st, 3, now_ms);
    sqlite3_bind_int64(st, 4, obj->size);
    sl_sqlite_bind_str(st, 5, obj->sha256_hex);
    sl_sqlite_bind_str(st, 6, obj->content_type);
    sl_sqlite_bind_str(st, 7, obj->etag);
    return mark(q, st, l, "complete");
}

static sluice_err
sqlite_retry(sluice_queue *q, const sl_lease *l, int64_t due_ms,
             const sl_failure *why, bool counts_attempt)
{
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_prep(q, ST_RETRY, &st);
    if (err != SLUICE_OK)
        return err;
    bind_lease(st, l);
    sqlite3_bind_int64(st, 3, due_ms);
    sqlite3_bind_int(st, 4, counts_attempt ? 1 : 0);
    sl_sqlite_bind_str(st, 5, sl_error_class_name(why->error_class));
    sl_sqlite_bind_str(st, 6, why->message);
    if (why->http_status)
        sqlite3_bind_int(st, 7, why->http_status);
    return mark(q, st, l, "retry");
}

static sluice_err
sqlite_dead(sluice_queue *q, const sl_lease *l, const sl_failure *why,
            int64_t now_ms)
{
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_prep(q, ST_DEAD, &st);
    if (err != SLUICE_OK)
        return err;
    bind_lease(st, l);
    sqlite3_bind_int64(st, 3, now_ms);
    sl_sqlite_bind_str(st, 4, sl_error_class_name(why->error_class));
    sl_sqlite_bind_str(st, 5, why->message);
    if (why->http_status)
        sqlite3_bind_int(st, 6, why->http_status);
    return mark(q, st, l, "dead");
}

static sluice_err
sqlite_release(sluice_queue *q, const sl_lease *l, int64_t now_ms)
{
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_prep(q, ST_RELEASE, &st);
    if (err != SLUICE_OK)
        return err;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)l->ref[0]);
    sqlite3_bind_int64(st, 2, now_ms);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)l->token);
    return mark(q, st, l, "release");
}

static sluice_err
sqlite_renew(sluice_queue *q, const sl_lease *leases, size_t n,
             int64_t until_ms)
{
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_own_begin(q);
    if (err == SLUICE_OK)
        err = sl_sqlite_prep(q, ST_RENEW, &st);
    for (size_t i = 0; i < n && err == SLUICE_OK; i++) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)leases[i].ref[0]);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)leases[i].token);
        sqlite3_bind_int64(st, 3, until_ms);
        err = sl_sqlite_step_done(q, st, "renew a lease");
    }
    return sl_sqlite_own_end(q, err);
}

static sluice_err
sqlite_acquire_runner(sluice_queue *q)
{
    sqlite_queue *s = sl_sqlite_state(q);
    if (s->runner_fd >= 0)
        return SLUICE_OK;
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sl_queue_fail(q, SLUICE_EIO, "%s: %s", s->path,
                             strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int saved = errno;
        close(fd);
        if (saved == EWOULDBLOCK)
            return sl_queue_fail(q, SLUICE_ERUNNING,
                                 "%s: another sluice run is using this "
                                 "database",
                                 s->path);
        return sl_queue_fail(q, SLUICE_EIO, "%s: lock: %s", s->path,
                             strerror(saved));
    }
    s->runner_fd = fd;
    /* A run commits from its fetch loop: checkpoints go elsewhere. */
    s->ckpt = sl_checkpointer_start(s->db, s->path);
    return SLUICE_OK;
}

static sluice_err
sqlite_recover(sluice_queue *q, int64_t now_ms, uint64_t *recovered)
{
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_prep(q, ST_RECOVER, &st);
    if (err != SLUICE_OK)
        return err;
    sqlite3_bind_int64(st, 1, now_ms);
    err = sl_sqlite_step_done(q, st, "recover");
    if (err == SLUICE_OK)
        *recovered = (uint64_t)sqlite3_changes(sl_sqlite_state(q)->db);
    return err;
}

static sluice_err
sqlite_counts(sluice_queue *q, int64_t now_ms, sluice_counts *out)
{
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_prep(q, ST_COUNTS, &st);
    if (err != SLUICE_OK)
        return err;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t n = (uint64_t)sqlite3_column_int64(st, 1);
        switch (sqlite3_column_int(st, 0)) {
        case SL_STATE_PENDING:
            out->pending = n;
            break;
        case SL_STATE_IN_FLIGHT:
            out->in_flight = n;
            break;
        case SL_STATE_RETRYING:
            out->retrying = n;
            break;
        case SL_STATE_DONE:
            out->done = n;
            break;
        case SL_STATE_DEAD:
            out->dead = n;
            break;
        }
        out->total += n;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return sl_sqlite_fail(q, rc, "count");
    if ((err = sl_sqlite_prep(q, ST_OLDEST, &st)) != SLUICE_OK)
        return err;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        out->oldest_pending_age =
            (double)(now_ms - sqlite3_column_int64(st, 0)) / 1000.0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sl_sqlite_fail(q, rc, "count");
    return SLUICE_OK;
}

static sluice_err
sqlite_next_due(sluice_queue *q, int64_t *due_ms, bool *any)
{
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_prep(q, ST_NEXT_DUE, &st);
    if (err != SLUICE_OK)
        return err;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        *any = true;
        *due_ms = sqlite3_column_int64(st, 0);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sl_sqlite_fail(q, rc, "next due");
    return SLUICE_OK;
}

char *
sl_sqlite_column_dup(sqlite3_stmt *st, int i)
{
    const char *text = (const char *)sqlite3_column_text(st, i);
    return text ? sl_strdup(text) : NULL;
}

/* The INFO_COLUMNS of the row `st` is on, copied; false when out of
 * memory (out cleared). */
static bool
info_read(sqlite3_stmt *st, sl_record_info *out)
{
    out->state = (sl_state)sqlite3_column_int(st, 0);
    out->id = sl_sqlite_column_dup(st, 1);
    out->url = sl_sqlite_column_dup(st, 2);
    out->key = sl_sqlite_column_dup(st, 3);
    out->meta = sl_sqlite_column_dup(st, 4);
    out->origin = sl_sqlite_column_dup(st, 5);
    out->attempts = (unsigned)sqlite3_column_int(st, 6);
    out->throttles = (unsigned)sqlite3_column_int(st, 7);
    out->next_at_ms = sqlite3_column_int64(st, 8);
    out->error_class = sl_sqlite_column_dup(st, 9);
    out->message = sl_sqlite_column_dup(st, 10);
    out->http_status = sqlite3_column_int(st, 11);
    out->size = sqlite3_column_type(st, 12) == SQLITE_NULL
                    ? -1
                    : sqlite3_column_int64(st, 12);
    out->sha256_hex = sl_sqlite_column_dup(st, 13);
    out->content_type = sl_sqlite_column_dup(st, 14);
    out->etag = sl_sqlite_column_dup(st, 15);
    if (!out->id || !out->url || !out->key || !out->origin) {
        sl_record_info_clear(out);
        return false;
    }
    return true;
}

static sluice_err
sqlite_get(sluice_queue *q, const char *id, sl_record_info *out)
{
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_prep(q, ST_GET, &st);
    if (err != SLUICE_OK)
        return err;
    sl_sqlite_bind_str(st, 1, id);
    int rc = sqlite3_step(st);
    bool copied = rc == SQLITE_ROW && info_read(st, out);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_DONE)
        return sl_queue_fail(q, SLUICE_ENOTFOUND, "no record with id %.200s",
                             id);
    if (rc != SQLITE_ROW)
        return sl_sqlite_fail(q, rc, "get");
    if (!copied)
        return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    return SLUICE_OK;
}

static sluice_err
sqlite_dump(sluice_queue *q, sl_record_info_fn *fn, void *ctx)
{
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_prep(q, ST_DUMP, &st);
    if (err != SLUICE_OK)
        return err;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sl_record_info info = {0};
        if (!info_read(st, &info)) {
            sqlite3_reset(st);
            return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
        }
        info.queued_ms = sqlite3_column_int64(st, 16);
        info.first_attempt_ms = sqlite3_column_int64(st, 17);
        info.finished_ms = sqlite3_column_int64(st, 18);
        int stop = fn(ctx, &info);
        sl_record_info_clear(&info);
        if (stop) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SLUICE_OK : sl_sqlite_fail(q, rc, "dump");
}

/* Bind `v` to parameter i, or NULL when `present` is false. */
static void
bind_int_or_null(sqlite3_stmt *st, int i, int64_t v, bool present)
{
    if (present)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

static sluice_err
sqlite_restore(sluice_queue *q, const sl_record_info *recs, size_t n)
{
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_prep(q, ST_RESTORE, &st);
    if (err != SLUICE_OK)
        return err;
    for (size_t i = 0; i < n; i++) {
        const sl_record_info *r = &recs[i];
        int64_t oid;
        err = origin_id(q, r->origin, strlen(r->origin), &oid);
        if (err != SLUICE_OK)
            return err;
        bool done = r->state == SL_STATE_DONE;
        sqlite3_bind_int(st, 1, (int)r->state);
        sl_sqlite_bind_str(st, 2, r->id);
        sl_sqlite_bind_str(st, 3, r->url);
        sl_sqlite_bind_str(st, 4, r->key);
        sl_sqlite_bind_str(st, 5, r->meta);
        sqlite3_bind_int64(st, 6, oid);
        sqlite3_bind_int(st, 7, (int)r->attempts);
        sqlite3_bind_int(st, 8, (int)r->throttles);
        sqlite3_bind_int64(st, 9, r->next_at_ms);
        sl_sqlite_bind_str(st, 10, r->error_class);
        sl_sqlite_bind_str(st, 11, r->message);
        bind_int_or_null(st, 12, r->http_status, r->http_status != 0);
        bind_int_or_null(st, 13, r->size, done && r->size >= 0);
        sl_sqlite_bind_str(st, 14, r->sha256_hex);
        sl_sqlite_bind_str(st, 15, r->content_type);
        sl_sqlite_bind_str(st, 16, r->etag);
        sqlite3_bind_int64(st, 17, r->queued_ms);
        bind_int_or_null(st, 18, r->first_attempt_ms,
                         r->first_attempt_ms != 0);
        bind_int_or_null(st, 19, r->finished_ms, r->finished_ms != 0);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc == SQLITE_CONSTRAINT_UNIQUE)
            return sl_queue_fail(q, SLUICE_EINVAL,
                                 "%s: holds a record with id %.200s already",
                                 q->location, r->id);
        if (rc != SQLITE_DONE)
            return sl_sqlite_fail(q, rc, "restore");
    }
    return SLUICE_OK;
}

static sluice_err
sqlite_dlq_list(sluice_queue *q, const sluice_dlq_filter *filter,
                sluice_dead_fn *fn, void *ctx)
{
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_prep(q, ST_DLQ_LIST, &st);
    if (err != SLUICE_OK)
        return err;
    sl_sqlite_bind_str(st, 1, filter->error_class);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sluice_dead_record rec = {
            .id = (const char *)sqlite3_column_text(st, 0),
            .url = (const char *)sqlite3_column_text(st, 1),
            .key = (const char *)sqlite3_column_text(st, 2),
            .meta = (const char *)sqlite3_column_text(st, 3),
            .error_class = (const char *)sqlite3_column_text(st, 4),
            .message = (const char *)sqlite3_column_text(st, 5),
            .http_status = sqlite3_column_int(st, 6),
            .attempts = (unsigned)sqlite3_column_int(st, 7),
            .failed_at = sqlite3_column_int64(st, 8),
        };
        if (!rec.error_class)
            rec.error_class = "unknown";
        if (!rec.message)
            rec.message = "";
        if (fn(ctx, &rec) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? SLUICE_OK : sl_sqlite_fail(q, rc, "dlq list");
}

static const char *
column_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

static sluice_err
sqlite_list(sluice_queue *q, int state, const char *id, sluice_record_fn *fn,
            void *ctx)
{
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_prep(q, id ? ST_LIST_ONE : ST_LIST, &st);
    if (err != SLUICE_OK)
        return err;
    if (id)
        sl_sqlite_bind_str(st, 1, id);
    else
        sqlite3_bind_int(st, 1, state);
    int rc;
    bool any = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sluice_record rec = {
            .id = column_text(st, 0),
            .url = column_text(st, 1),
            .key = column_text(st, 2),
            .meta = column_text(st, 3),
            .state = (sluice_state)sqlite3_column_int(st, 4),
            .attempts = (unsigned)sqlite3_column_int(st, 5),
            .size = sqlite3_column_type(st, 6) == SQLITE_NULL
                        ? -1
                        : sqlite3_column_int64(st, 6),
            .sha256 = column_text(st, 7),
            .content_type = column_text(st, 8),
            .etag = column_text(st, 9),
            .error_class = column_text(st, 10),
            .message = column_text(st, 11),
            .http_status = sqlite3_column_int(st, 12),
            .finished_at = sqlite3_column_int64(st, 13),
        };
        /* A record fetched before and pending again (a new url) keeps
         * its last object's columns: they describe nothing stored now. */
        if (rec.state != SLUICE_STATE_DONE) {
            rec.size = -1;
            rec.sha256 = rec.content_type = rec.etag = NULL;
            if (rec.state != SLUICE_STATE_DEAD)
                rec.finished_at = 0;
        }
        any = true;
        if (fn(ctx, &rec) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE)
        return sl_sqlite_fail(q, rc, "list");
    if (id && !any)
        return sl_queue_fail(q, SLUICE_ENOTFOUND, "no record with id %.200s",
                             id);
    return SLUICE_OK;
}

static sluice_err
sqlite_replay(sluice_queue *q, const char *id,
              const sluice_dlq_filter *filter, int64_t now_ms,
              uint64_t *replayed)
{
    sqlite3_stmt *st;
    sluice_err err = sl_sqlite_prep(q, ST_REPLAY, &st);
    if (err != SLUICE_OK)
        return err;
    sl_sqlite_bind_str(st, 1, id);
    sl_sqlite_bind_str(st, 2, filter->error_class);
    sqlite3_bind_int64(st, 3, now_ms);
    err = sl_sqlite_step_done(q, st, "replay");
    if (err == SLUICE_OK)
        *replayed = (uint64_t)sqlite3_changes(sl_sqlite_state(q)->db);
    return err;
}

const sl_queue_ops sl_queue_sqlite = {
    /* Paths, and "sqlite:PATH" (stripped in open). */
    .backend = {SL_FAMILY_QUEUE, "sqlite", NULL},
    .features = SL_QUEUE_F_TRANSACTIONS | SL_QUEUE_F_EXCLUSIVE |
                SL_QUEUE_F_SLOTS | SL_QUEUE_F_SKIP | SL_QUEUE_F_STREAMS,
    .slots = "durable",
    .state_size = sizeof(sqlite_queue),
    .open = sqlite_open,
    .close = sqlite_close,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .upsert = sqlite_upsert,
    .lease = sqlite_lease,
    .complete = sqlite_complete,
    .retry = sqlite_retry,
    .dead = sqlite_dead,
    .release = sqlite_release,
    .renew = sqlite_renew,
    .acquire_runner = sqlite_acquire_runner,
    .recover = sqlite_recover,
    .counts = sqlite_counts,
    .next_due = sqlite_next_due,
    .get = sqlite_get,
    .dump = sqlite_dump,
    .restore = sqlite_restore,
    .dlq_list = sqlite_dlq_list,
    .list = sqlite_list,
    .replay = sqlite_replay,
    .slots_load = sl_sqlite_slots_load,
    .slots_save = sl_sqlite_slots_save,
    .slots_clear = sl_sqlite_slots_clear,
    .setting_get = sl_sqlite_setting_get,
    .stream_lease = sl_sqlite_stream_lease,
    .stream_unlease = sl_sqlite_stream_unlease,
    .stream_mark = sl_sqlite_stream_mark,
    .stream_marks = sl_sqlite_stream_marks,
    .setting_set = sl_sqlite_setting_set,
    .runner_alive = sl_sqlite_runner_alive,
};
