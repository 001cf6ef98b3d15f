/*
 * Background checkpoints (lib/queue/checkpoint.c): a connection whose
 * checkpoints a checkpointer took over never syncs the database file
 * (only a checkpoint writes it), the checkpoints still happen, nothing
 * committed is lost, and stopping gives the connection its own back.
 * Syncs are seen through a VFS that wraps the default one.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "queue/checkpoint.h"
#include "test.h"

/* ---- A VFS that counts syncs of main database files, by thread ---- */

typedef struct {
    sqlite3_file base; /* pMethods: shim_io */
    bool main_db;
    sqlite3_file *real; /* the default VFS's file, just after this */
} shim_file;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs shim_vfs;
static pthread_t writer;
static atomic_int db_syncs_by_writer, db_syncs_by_others;

#define REAL(f) (((shim_file *)(f))->real)

static int
shim_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}
static int
shim_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}
static int
shim_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}
static int
shim_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int
shim_sync(sqlite3_file *f, int flags)
{
    if (((shim_file *)f)->main_db) {
        if (pthread_equal(pthread_self(), writer))
            atomic_fetch_add(&db_syncs_by_writer, 1);
        else
            atomic_fetch_add(&db_syncs_by_others, 1);
    }
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int
shim_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int
shim_lock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xLock(REAL(f), level);
}
static int
shim_unlock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}
static int
shim_check_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int
shim_file_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int
shim_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int
shim_device(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int
shim_shm_map(sqlite3_file *f, int region, int size, int extend,
             void volatile **out)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, out);
}
static int
shim_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}
static void
shim_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int
shim_shm_unmap(sqlite3_file *f, int delete_flag)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

static const sqlite3_io_methods shim_io = {
    2, /* no xFetch: SQLite reads through xRead */
    shim_close,
    shim_read,
    shim_write,
    shim_truncate,
    shim_sync,
    shim_file_size,
    shim_lock,
    shim_unlock,
    shim_check_reserved,
    shim_file_control,
    shim_sector_size,
    shim_device,
    shim_shm_map,
    shim_shm_lock,
    shim_shm_barrier,
    shim_shm_unmap,
    NULL,
    NULL,
};

static int
shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
          int *out_flags)
{
    (void)vfs;
    shim_file *sf = (shim_file *)f;
    sf->real = (sqlite3_file *)(sf + 1);
    sf->main_db = flags & SQLITE_OPEN_MAIN_DB;
    int rc = real_vfs->xOpen(real_vfs, name, sf->real, flags, out_flags);
    f->pMethods = rc == SQLITE_OK ? &shim_io : NULL;
    return rc;
}

static void
install_shim(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    ASSERT_NOT_NULL(real_vfs);
    shim_vfs = *real_vfs;
    shim_vfs.zName = "sync-counting";
    shim_vfs.szOsFile = (int)sizeof(shim_file) + real_vfs->szOsFile;
    shim_vfs.xOpen = shim_open;
    ASSERT_EQ(sqlite3_vfs_register(&shim_vfs, 1), SQLITE_OK);
    writer = pthread_self();
}

/* ---- The database ---- */

static void
exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        TEST_FAIL_("%s: %s", sql, msg ? msg : "?");
}

static sqlite3 *
open_wal(void)
{
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open("ck.db", &db), SQLITE_OK);
    exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
             "CREATE TABLE IF NOT EXISTS t(x BLOB)");
    return db;
}

/* Commits of 16 KB each: 400 of them fill the WAL past 1,000 pages, where
 * a checkpoint is due. */
static void
commit_many(sqlite3 *db, int n)
{
    for (int i = 0; i < n; i++)
        exec(db, "BEGIN; INSERT INTO t VALUES (randomblob(4000)),"
                 " (randomblob(4000)), (randomblob(4000)),"
                 " (randomblob(4000)); COMMIT");
}

static int64_t
rows(sqlite3 *db)
{
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void
reset_counts(void)
{
    atomic_store(&db_syncs_by_writer, 0);
    atomic_store(&db_syncs_by_others, 0);
}

TEST(without_a_checkpointer_the_writer_syncs_the_database_itself)
{
    /* The control: the shim sees the checkpoints SQLite makes on commit. */
    install_shim();
    sqlite3 *db = open_wal();
    reset_counts();
    commit_many(db, 400);
    ASSERT_GT(atomic_load(&db_syncs_by_writer), 0);
    ASSERT_EQ(atomic_load(&db_syncs_by_others), 0);
    sqlite3_close(db);
}

TEST(with_a_checkpointer_the_writer_never_syncs_the_database)
{
    install_shim();
    sqlite3 *db = open_wal();
    sl_checkpointer *c = sl_checkpointer_start(db, "ck.db");
    ASSERT_NOT_NULL(c);
    reset_counts();
    commit_many(db, 400);
    /* The checkpoints happen, on the other thread. */
    for (int i = 0; i < 500 && atomic_load(&db_syncs_by_others) == 0; i++)
        usleep(10000);
    ASSERT_GT(atomic_load(&db_syncs_by_others), 0);
    ASSERT_EQ(atomic_load(&db_syncs_by_writer), 0);
    sl_checkpointer_stop(c);
    ASSERT_EQ(rows(db), 1600);
    sqlite3_close(db);
    /* All there after the close's own checkpoint, from a new connection. */
    db = open_wal();
    ASSERT_EQ(rows(db), 1600);
    sqlite3_close(db);
}

TEST(stop_gives_the_writer_its_checkpoints_back)
{
    install_shim();
    sqlite3 *db = open_wal();
    sl_checkpointer_stop(sl_checkpointer_start(db, "ck.db"));
    reset_counts();
    commit_many(db, 400);
    ASSERT_GT(atomic_load(&db_syncs_by_writer), 0);
    ASSERT_EQ(rows(db), 1600);
    sqlite3_close(db);
}

TEST(a_missing_database_gets_no_checkpointer)
{
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
    /* Nothing to open a second connection to: NULL, and no harm. */
    ASSERT(sl_checkpointer_start(db, "no/such/dir/x.db") == NULL);
    sl_checkpointer_stop(NULL);
    sqlite3_close(db);
}
