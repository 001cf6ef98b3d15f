/*
 * The queue interface, against the backend named by $SLUICE_TEST_QUEUE
 * (ctest runs this file once per backend): every operation and state
 * transition, upsert semantics, leases, the DLQ, and the nothing-lost
 * invariant under a long random sequence of operations. "redis" starts
 * a redis-server of each case's own (redis_server.h).
 */
#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <sqlite3.h>

#include "fault.h"
#include "queue/queue.h"
#include "redis/redis.h"
#include "redis_server.h"
#include "test.h"

#define T0 1700000000000LL /* a fixed "now", in ms */

static const char *
location(void)
{
    static char redis[300];
    const char *loc = getenv("SLUICE_TEST_QUEUE");
    if (loc && strcmp(loc, "redis") == 0) {
        if (!redis[0])
            test_redis_start(redis, sizeof redis, NULL);
        return redis;
    }
    return loc && *loc ? loc : "sqlite:queue.db";
}

static bool
is_sqlite(void)
{
    return strncmp(location(), "sqlite:", 7) == 0 || !strstr(location(), ":");
}

static const char *
sqlite_path(void)
{
    const char *loc = location();
    return strncmp(loc, "sqlite:", 7) == 0 ? loc + 7 : loc;
}

static sluice_queue *
open_queue(void)
{
    sluice_queue *q = NULL;
    char why[600];
    sluice_err err = sluice_queue_open(location(), NULL, &q, why, sizeof why);
    if (err != SLUICE_OK)
        TEST_FAIL_("open %s: %s", location(), why);
    return q;
}

static sl_record
rec(const char *id, const char *url, const char *key, const char *meta)
{
    const char *origin = strstr(url, "other")   ? "http://other.example:80"
                         : strstr(url, "third") ? "http://third.example:80"
                                                : "http://img.example:80";
    return (sl_record){id,     strlen(id),     url,  strlen(url),
                       key,    strlen(key),    origin, strlen(origin),
                       meta,   meta ? strlen(meta) : 0, false};
}

static sluice_ingest_stats
upsert1(sluice_queue *q, const char *id, const char *url, const char *key,
        const char *meta)
{
    sluice_ingest_stats st = {0};
    sl_record r = rec(id, url, key, meta);
    ASSERT_EQ(sl_queue_upsert(q, &r, 1, T0, &st), SLUICE_OK);
    return st;
}

static sl_state
state_of(sluice_queue *q, const char *id)
{
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, id, &info), SLUICE_OK);
    sl_state s = info.state;
    sl_record_info_clear(&info);
    return s;
}

/* Lease up to `max` records, skipping `origin` (NULL: none). */
static size_t
lease_skipping(sluice_queue *q, const char *origin, size_t max, int64_t now,
               sl_lease *out)
{
    const char *skip[] = {origin};
    sl_lease_req req = {max, now, 60000, origin ? skip : NULL, origin != NULL};
    size_t n = 0;
    ASSERT_EQ(sl_queue_lease(q, &req, out, &n), SLUICE_OK);
    return n;
}

static size_t
lease(sluice_queue *q, size_t max, int64_t now, sl_lease *out)
{
    return lease_skipping(q, NULL, max, now, out);
}

static const sl_object_info some_object = {
    1234, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "image/jpeg", "\"etag-1\""};

static const sl_failure http_404 = {SL_CLASS_HTTP, "HTTP 404 Not Found",
                                    404};
static const sl_failure net_reset = {SL_CLASS_NETWORK, "connection reset",
                                     0};

static sluice_counts
counts(sluice_queue *q)
{
    sluice_counts n;
    ASSERT_EQ(sluice_queue_counts(q, &n), SLUICE_OK);
    ASSERT_EQ(n.total,
              n.pending + n.in_flight + n.retrying + n.done + n.dead);
    return n;
}

/* ------------------------------------------------------------ opening */

TEST(open_creates_a_database_and_reopens_it)
{
    sluice_queue *q = open_queue();
    upsert1(q, "a", "http://img.example/a.jpg", "a.jpg", NULL);
    sluice_queue_close(q);
    q = open_queue();
    ASSERT_EQ(counts(q).pending, 1);
    sluice_queue_close(q);
    if (is_sqlite()) {
        sqlite3 *db;
        sqlite3_stmt *st;
        ASSERT_EQ(sqlite3_open(sqlite_path(), &db), SQLITE_OK);
        sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
        ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
        ASSERT_GE(sqlite3_column_int(st, 0), 1);
        sqlite3_finalize(st);
        sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
        ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
        ASSERT_STR_EQ((const char *)sqlite3_column_text(st, 0), "wal");
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
}

TEST(an_empty_file_is_migrated_to_the_current_schema)
{
    if (!is_sqlite())
        return; /* SQLite-specific: nothing to check here */
    test_write_file(sqlite_path(), "", 0);
    sluice_queue *q = open_queue();
    ASSERT_EQ(counts(q).total, 0);
    upsert1(q, "a", "http://img.example/a.jpg", "a.jpg", NULL);
    ASSERT_EQ(counts(q).total, 1);
    sluice_queue_close(q);
}

/* Open must fail with `want` and leave the file byte for byte as it was. */
static void
assert_refused_untouched(const char *path, sluice_err want,
                         const char *reason_part)
{
    size_t before_len, after_len;
    char *before = test_read_file(path, &before_len);
    sluice_queue *q = NULL;
    char why[600] = "";
    ASSERT_EQ(sluice_queue_open(path, NULL, &q, why, sizeof why), want);
    ASSERT_NULL(q);
    ASSERT_STR_CONTAINS(why, path);
    ASSERT_STR_CONTAINS(why, reason_part);
    ASSERT(!strchr(why, '\n'));
    char *after = test_read_file(path, &after_len);
    ASSERT_EQ(before_len, after_len);
    ASSERT(memcmp(before, after, before_len) == 0);
    free(before);
    free(after);
}

TEST(a_file_that_is_not_sqlite_is_refused_untouched)
{
    if (!is_sqlite())
        return; /* SQLite-specific: nothing to check here */
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 7 + 3);
    test_write_file("junk.db", junk, sizeof junk);
    assert_refused_untouched("junk.db", SLUICE_ENOTDB, "not a sluice");
    test_write_str("text.db", "hello, world\n");
    assert_refused_untouched("text.db", SLUICE_ENOTDB, "not a sluice");
}

TEST(another_programs_sqlite_file_is_refused_untouched)
{
    if (!is_sqlite())
        return; /* SQLite-specific: nothing to check here */
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open("other.db", &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES(1)",
                           NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);
    assert_refused_untouched("other.db", SLUICE_ENOTDB, "another program");
}

TEST(a_database_from_a_newer_sluice_is_refused)
{
    if (!is_sqlite())
        return; /* SQLite-specific: nothing to check here */
    sluice_queue *q = open_queue();
    sluice_queue_close(q);
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(sqlite_path(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL,
                           NULL),
              SQLITE_OK);
    sqlite3_close(db);
    assert_refused_untouched(sqlite_path(), SLUICE_EDBVERSION, "newer");
}

/* A database of the first schema (no index of pending records by
 * origin) gets the index on open and keeps its records. */
TEST(a_first_schema_database_is_migrated_with_its_records)
{
    if (!is_sqlite())
        return; /* SQLite-specific: nothing to check here */
    sluice_queue *q = open_queue();
    upsert1(q, "a", "http://img.example/a", "a", NULL);
    upsert1(q, "b", "http://other.example/b", "b", NULL);
    sluice_queue_close(q);
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(sqlite_path(), &db), SQLITE_OK);
    /* The first schema: none of what later migrations add. */
    ASSERT_EQ(sqlite3_exec(db,
                           "DROP INDEX records_pending;"
                           " DROP TABLE slots; DROP TABLE settings;"
                           " DROP TABLE stream_leases;"
                           " DROP TABLE stream_marks;"
                           " PRAGMA user_version = 1",
                           NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);

    q = open_queue();
    ASSERT_EQ(counts(q).pending, 2);
    sl_lease l[2];
    ASSERT_EQ(lease_skipping(q, "http://img.example:80", 10, T0, l), 1);
    ASSERT_STR_EQ(l[0].id, "b");
    sl_lease_clear(&l[0]);
    sluice_queue_close(q);
    ASSERT_EQ(sqlite3_open(sqlite_path(), &db), SQLITE_OK);
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(db,
                                 "SELECT count(*) FROM sqlite_schema WHERE"
                                 " name = 'records_pending'",
                                 -1, &st, NULL),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_EQ(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

TEST(a_second_schema_database_gains_slots_and_settings)
{
    if (!is_sqlite())
        return; /* SQLite-specific: nothing to check here */
    sluice_queue *q = open_queue();
    upsert1(q, "a", "http://img.example/a", "a", NULL);
    sluice_queue_close(q);
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(sqlite_path(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "DROP TABLE slots; DROP TABLE settings;"
                           " DROP TABLE stream_leases;"
                           " DROP TABLE stream_marks;"
                           " PRAGMA user_version = 2",
                           NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);

    q = open_queue();
    ASSERT_EQ(counts(q).pending, 1);
    char value[16];
    ASSERT_EQ(sl_queue_setting_get(q, "cap", value, sizeof value),
              SLUICE_ENOTFOUND);
    ASSERT_EQ(sl_queue_setting_set(q, "cap", "7"), SLUICE_OK);
    ASSERT_EQ(sl_queue_setting_get(q, "cap", value, sizeof value), SLUICE_OK);
    ASSERT_STR_EQ(value, "7");
    sl_slot_row row = {"http://img.example:80", 3, 2, "boot", 1000, 2000,
                       500, 0, 0, 42, 0, 0, 0, 3, 0, 0, 0};
    ASSERT_EQ(sl_queue_slots_save(q, &row, 1), SLUICE_OK);
    sluice_queue_close(q);
}

/* A number setting (the cap, the rate): a number above 0 or "none", and
 * a clear error for anything else. */
TEST(a_number_setting_is_a_number_above_0_or_none)
{
    sluice_queue *q = open_queue();
    double v = 0;
    if (!sl_queue_has(q, SL_QUEUE_F_SLOTS)) {
        ASSERT_EQ(sl_queue_setting_number(q, "cap", &v),
                  SLUICE_EUNSUPPORTED);
        sluice_queue_close(q);
        return;
    }
    ASSERT_EQ(sl_queue_setting_number(q, "cap", &v), SLUICE_ENOTFOUND);
    ASSERT_EQ(sl_queue_setting_set(q, "cap", "12"), SLUICE_OK);
    ASSERT_EQ(sl_queue_setting_number(q, "cap", &v), SLUICE_OK);
    ASSERT(v == 12);
    ASSERT_EQ(sl_queue_setting_set(q, "rate", "0.25"), SLUICE_OK);
    ASSERT_EQ(sl_queue_setting_number(q, "rate", &v), SLUICE_OK);
    ASSERT(v == 0.25);
    ASSERT_EQ(sl_queue_setting_set(q, "rate", "none"), SLUICE_OK);
    ASSERT_EQ(sl_queue_setting_number(q, "rate", &v), SLUICE_OK);
    ASSERT(isinf(v));
    static const char *const bad[] = {"", "abc", "0", "-3", "12x", "nan",
                                      "inf", " "};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char want[64];
        ASSERT_EQ(sl_queue_setting_set(q, "cap", bad[i]), SLUICE_OK);
        v = 7;
        ASSERT_EQ(sl_queue_setting_number(q, "cap", &v), SLUICE_EDB);
        ASSERT(v == 7);
        snprintf(want, sizeof want, "the cap stored with the queue, '%s',",
                 bad[i]);
        ASSERT_STR_CONTAINS(sluice_queue_errmsg(q), want);
    }
    sluice_queue_close(q);
}

/* An old record as an earlier sluice stored it, with its origin. */
static void
upsert_as_stored(sluice_queue *q, const char *id, const char *url,
                 const char *key, const char *origin)
{
    sluice_ingest_stats st = {0};
    sl_record r = {id,     strlen(id),     url,  strlen(url), key,
                   strlen(key), origin, strlen(origin), NULL, 0, false};
    ASSERT_EQ(sl_queue_upsert(q, &r, 1, T0, &st), SLUICE_OK);
    ASSERT_EQ(st.added, 1);
}

static int64_t
count_sql(const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_open(sqlite_path(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/*
 * A queue of the third schema holds hosts as earlier sluices stored them:
 * an internationalised name in UTF-8 (its records dead at once as
 * "redirect", libcurl could not fetch them) and names in any case. On
 * open, hosts are put in the one spelling ingest now gives them, so
 * re-ingesting the feed changes nothing, the two spellings are one
 * origin, nothing done is fetched again, and the IDN records are
 * pending again.
 */
TEST(a_third_schema_database_gets_hosts_in_one_spelling)
{
    if (!is_sqlite())
        return; /* SQLite-specific: nothing to check here */
#define OLD_HOST "b\303\274cher.example"
#define NEW_HOST "xn--bcher-kva.example"
    sluice_queue *q = open_queue();
    upsert_as_stored(q, "http://" OLD_HOST "/img/1.jpg",
                     "http://" OLD_HOST "/img/1.jpg", OLD_HOST "/img/1.jpg",
                     "http://" OLD_HOST ":80");
    upsert_as_stored(q, "sku-2", "http://" OLD_HOST "/img/2.jpg", "sku-2.jpg",
                     "http://" OLD_HOST ":80");
    upsert_as_stored(q, "sku-3", "http://" NEW_HOST "/img/3.jpg", "sku-3.jpg",
                     "http://" NEW_HOST ":80");
    upsert_as_stored(q, "http://Img.Example/a.jpg", "http://Img.Example/a.jpg",
                     "img.example/a.jpg", "http://img.example:80");
    upsert_as_stored(q, "http://Dup.example/x", "http://Dup.example/x",
                     "dup.example/x", "http://dup.example:80");
    upsert_as_stored(q, "http://dup.example/x", "http://dup.example/x",
                     "dup.example/x", "http://dup.example:80");
    /* The IDN record died at once; the mixed-case one was done. */
    sl_lease l[8];
    ASSERT_EQ(lease(q, 8, T0, l), 6);
    static const sl_failure bad_url = {
        SL_CLASS_REDIRECT, "URL using bad/illegal format or missing URL", 0};
    for (size_t i = 0; i < 6; i++) {
        if (strcmp(l[i].id, "http://" OLD_HOST "/img/1.jpg") == 0)
            ASSERT_EQ(sl_queue_dead(q, &l[i], &bad_url, T0), SLUICE_OK);
        else if (strcmp(l[i].id, "http://Img.Example/a.jpg") == 0)
            ASSERT_EQ(sl_queue_complete(q, &l[i], &some_object, T0),
                      SLUICE_OK);
        else
            ASSERT_EQ(sl_queue_release(q, &l[i], T0), SLUICE_OK);
        sl_lease_clear(&l[i]);
    }
    sluice_queue_close(q);
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(sqlite_path(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "DROP TABLE stream_leases; DROP TABLE stream_marks;"
                           " PRAGMA user_version = 3",
                           NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);

    q = open_queue();
    sl_record_info info;
    /* The bare IDN record: its id, url, default key and origin, pending
     * again with fresh attempts. */
    ASSERT_EQ(sl_queue_get(q, "http://" OLD_HOST "/img/1.jpg", &info),
              SLUICE_ENOTFOUND);
    ASSERT_EQ(sl_queue_get(q, "http://" NEW_HOST "/img/1.jpg", &info),
              SLUICE_OK);
    ASSERT_STR_EQ(info.url, "http://" NEW_HOST "/img/1.jpg");
    ASSERT_STR_EQ(info.key, NEW_HOST "/img/1.jpg");
    ASSERT_STR_EQ(info.origin, "http://" NEW_HOST ":80");
    ASSERT_EQ(info.state, SL_STATE_PENDING);
    ASSERT_EQ(info.attempts, 0);
    ASSERT_NULL(info.error_class);
    sl_record_info_clear(&info);
    /* With an id of its own: the url and origin; the key is the id's. */
    ASSERT_EQ(sl_queue_get(q, "sku-2", &info), SLUICE_OK);
    ASSERT_STR_EQ(info.url, "http://" NEW_HOST "/img/2.jpg");
    ASSERT_STR_EQ(info.key, "sku-2.jpg");
    ASSERT_STR_EQ(info.origin, "http://" NEW_HOST ":80");
    ASSERT_EQ(info.state, SL_STATE_PENDING);
    sl_record_info_clear(&info);
    /* A mixed-case host: lower case, still done. */
    ASSERT_EQ(sl_queue_get(q, "http://img.example/a.jpg", &info), SLUICE_OK);
    ASSERT_STR_EQ(info.url, "http://img.example/a.jpg");
    ASSERT_STR_EQ(info.key, "img.example/a.jpg");
    ASSERT_EQ(info.state, SL_STATE_DONE);
    ASSERT_STR_EQ(info.sha256_hex, some_object.sha256_hex);
    sl_record_info_clear(&info);
    /* Where the new id is another record's, the old spelling stays. */
    ASSERT_EQ(sl_queue_get(q, "http://Dup.example/x", &info), SLUICE_OK);
    ASSERT_STR_EQ(info.url, "http://Dup.example/x");
    sl_record_info_clear(&info);
    ASSERT_EQ(sl_queue_get(q, "http://dup.example/x", &info), SLUICE_OK);
    sl_record_info_clear(&info);
    /* Re-ingesting the records as ingest now gives them: unchanged. */
    sluice_ingest_stats st = {0};
    const char *u1 = "http://" NEW_HOST "/img/1.jpg";
    const char *k1 = NEW_HOST "/img/1.jpg";
    const char *o1 = "http://" NEW_HOST ":80";
    const char *u2 = "http://img.example/a.jpg", *k2 = "img.example/a.jpg";
    const char *o2 = "http://img.example:80";
    sl_record again[] = {
        {u1, strlen(u1), u1, strlen(u1), k1, strlen(k1), o1, strlen(o1), NULL,
         0, false},
        {u2, strlen(u2), u2, strlen(u2), k2, strlen(k2), o2, strlen(o2), NULL,
         0, false},
    };
    ASSERT_EQ(sl_queue_upsert(q, again, 2, T0, &st), SLUICE_OK);
    ASSERT_EQ(st.unchanged, 2);
    ASSERT_EQ(st.added + st.updated, 0);
    sluice_queue_close(q);
    /* One origin for the name, the UTF-8 spelling gone. */
    ASSERT_EQ(count_sql("SELECT count(*) FROM origins WHERE name LIKE"
                        " '%" NEW_HOST "%'"),
              1);
    ASSERT_EQ(count_sql("SELECT count(*) FROM origins WHERE name LIKE"
                        " '%" OLD_HOST "%'"),
              0);
    ASSERT_EQ(count_sql("SELECT count(DISTINCT origin) FROM records WHERE"
                        " url LIKE '%" NEW_HOST "%'"),
              1);
    ASSERT_EQ(count_sql("PRAGMA user_version"), 5);
#undef OLD_HOST
#undef NEW_HOST
}

TEST(readonly_and_nocreate_opens_do_not_create)
{
    sluice_queue *q = NULL;
    char why[600];
    sluice_queue_opts ro = {SLUICE_QUEUE_READONLY, 0};
    sluice_queue_opts nc = {SLUICE_QUEUE_NOCREATE, 0};
    ASSERT_EQ(sluice_queue_open("missing.db", &ro, &q, why, sizeof why),
              SLUICE_ENOENT);
    ASSERT_STR_CONTAINS(why, "missing.db");
    ASSERT_EQ(sluice_queue_open("missing.db", &nc, &q, why, sizeof why),
              SLUICE_ENOENT);
    ASSERT_EQ(access("missing.db", F_OK), -1);
    ASSERT_EQ(sluice_queue_open("no/such/dir/q.db", NULL, &q, why,
                                sizeof why),
              SLUICE_EIO);
    ASSERT_STR_CONTAINS(why, "no/such/dir/q.db");
}

TEST(a_locked_database_is_reported_as_busy)
{
    if (!is_sqlite())
        return; /* SQLite-specific: nothing to check here */
    sluice_queue *q = open_queue();
    sluice_queue_close(q);
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(sqlite_path(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL),
              SQLITE_OK);
    sluice_queue_opts opts = {0, 100};
    char why[600];
    ASSERT_EQ(sluice_queue_open(location(), &opts, &q, why, sizeof why),
              SLUICE_OK);
    ASSERT_EQ(sl_queue_begin(q), SLUICE_EBUSY);
    ASSERT_STR_CONTAINS(sluice_queue_errmsg(q), "locked");
    sluice_queue_close(q);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
}

/* ------------------------------------------------------------ upsert */

TEST(upsert_classifies_new_updated_and_unchanged)
{
    sluice_queue *q = open_queue();
    sluice_ingest_stats st;
    st = upsert1(q, "a", "http://img.example/a.jpg", "a.jpg", NULL);
    ASSERT_EQ(st.added, 1);
    st = upsert1(q, "a", "http://img.example/a.jpg", "a.jpg", NULL);
    ASSERT_EQ(st.unchanged, 1);
    st = upsert1(q, "a", "http://img.example/a2.jpg", "a.jpg", NULL);
    ASSERT_EQ(st.updated, 1);
    st = upsert1(q, "a", "http://img.example/a2.jpg", "other.jpg", NULL);
    ASSERT_EQ(st.updated, 1);
    st = upsert1(q, "a", "http://img.example/a2.jpg", "other.jpg",
                 "{\"x\":1}");
    ASSERT_EQ(st.updated, 1);
    st = upsert1(q, "a", "http://img.example/a2.jpg", "other.jpg",
                 "{\"x\":1}");
    ASSERT_EQ(st.unchanged, 1);
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, "a", &info), SLUICE_OK);
    ASSERT_STR_EQ(info.url, "http://img.example/a2.jpg");
    ASSERT_STR_EQ(info.key, "other.jpg");
    ASSERT_STR_EQ(info.meta, "{\"x\":1}");
    ASSERT_STR_EQ(info.origin, "http://img.example:80");
    sl_record_info_clear(&info);
    ASSERT_EQ(counts(q).total, 1);
    sluice_queue_close(q);
}

/* Many records a call: the multi-row statement, duplicates inside it. */
TEST(batched_upserts_count_each_record_once)
{
    enum { N = 300 };
    static char ids[N][16], urls[N][64];
    sl_record recs[N];
    sluice_ingest_stats st = {0};
    sluice_queue *q = open_queue();
    for (int i = 0; i < N; i++) {
        /* Every tenth record repeats the id of the one before it. */
        int id = i % 10 == 9 ? i - 1 : i;
        snprintf(ids[i], sizeof ids[i], "r%d", id);
        snprintf(urls[i], sizeof urls[i], "http://img.example/%d%s.jpg", id,
                 i % 20 == 19 ? "-v2" : "");
        recs[i] = rec(ids[i], urls[i], ids[i], NULL);
    }
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_upsert(q, recs, N, T0, &st), SLUICE_OK);
    ASSERT_EQ(sl_queue_commit(q), SLUICE_OK);
    /* 270 distinct ids; of the 30 repeats, 15 change the url. */
    ASSERT_EQ(st.added, 270);
    ASSERT_EQ(st.updated, 15);
    ASSERT_EQ(st.unchanged, 15);
    ASSERT_EQ(counts(q).pending, 270);
    memset(&st, 0, sizeof st);
    ASSERT_EQ(sl_queue_upsert(q, recs, N, T0, &st), SLUICE_OK);
    ASSERT_EQ(st.added, 0);
    /* Replaying the feed: each repeated id flips between two urls. */
    ASSERT_EQ(st.updated + st.unchanged, N);
    sluice_queue_close(q);
}

/* One call that changes a record and changes it back: the last wins. */
TEST(the_last_of_one_ids_records_in_a_call_wins)
{
    sluice_queue *q = open_queue();
    upsert1(q, "a", "http://img.example/a.jpg", "a.jpg", NULL);
    sl_record recs[3] = {
        rec("a", "http://img.example/b.jpg", "a.jpg", NULL),
        rec("a", "http://img.example/a.jpg", "a.jpg", NULL),
        rec("n", "http://img.example/n.jpg", "n.jpg", "{\"m\":1}"),
    };
    sluice_ingest_stats st = {0};
    ASSERT_EQ(sl_queue_upsert(q, recs, 3, T0, &st), SLUICE_OK);
    ASSERT_EQ(st.added, 1);
    ASSERT_EQ(st.updated, 2);
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, "a", &info), SLUICE_OK);
    ASSERT_STR_EQ(info.url, "http://img.example/a.jpg");
    sl_record_info_clear(&info);
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    memset(&st, 0, sizeof st);
    ASSERT_EQ(sl_queue_upsert(q, recs, 3, T0, &st), SLUICE_OK);
    ASSERT_EQ(sl_queue_commit(q), SLUICE_OK);
    ASSERT_EQ(st.updated, 2);
    ASSERT_EQ(st.unchanged, 1);
    ASSERT_EQ(sl_queue_get(q, "a", &info), SLUICE_OK);
    ASSERT_STR_EQ(info.url, "http://img.example/a.jpg");
    sl_record_info_clear(&info);
    ASSERT_EQ(counts(q).total, 2);
    sluice_queue_close(q);
}

TEST(a_done_record_with_the_same_url_stays_done)
{
    sluice_queue *q = open_queue();
    sl_lease l[1];
    upsert1(q, "a", "http://img.example/a.jpg", "a.jpg", NULL);
    ASSERT_EQ(lease(q, 10, T0, l), 1);
    ASSERT_EQ(sl_queue_complete(q, &l[0], &some_object, T0), SLUICE_OK);
    sl_lease_clear(&l[0]);
    ASSERT_EQ(upsert1(q, "a", "http://img.example/a.jpg", "a.jpg", NULL)
                  .unchanged,
              1);
    ASSERT_EQ(state_of(q, "a"), SL_STATE_DONE);
    ASSERT_EQ(lease(q, 10, T0, l), 0);
    /* A new url: fetched again, the newest wins. */
    ASSERT_EQ(upsert1(q, "a", "http://img.example/b.jpg", "a.jpg", NULL)
                  .updated,
              1);
    ASSERT_EQ(state_of(q, "a"), SL_STATE_PENDING);
    ASSERT_EQ(lease(q, 10, T0, l), 1);
    ASSERT_STR_EQ(l[0].url, "http://img.example/b.jpg");
    ASSERT_EQ(l[0].attempts, 0);
    sl_lease_clear(&l[0]);
    sluice_queue_close(q);
}

TEST(new_meta_alone_is_kept_without_fetching_again)
{
    sluice_queue *q = open_queue();
    sl_lease l[1];
    upsert1(q, "a", "http://img.example/a.jpg", "a.jpg", "{\"v\":1}");
    ASSERT_EQ(lease(q, 1, T0, l), 1);
    ASSERT_EQ(sl_queue_complete(q, &l[0], &some_object, T0), SLUICE_OK);
    sl_lease_clear(&l[0]);
    ASSERT_EQ(upsert1(q, "a", "http://img.example/a.jpg", "a.jpg",
                      "{\"v\":2}")
                  .updated,
              1);
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, "a", &info), SLUICE_OK);
    ASSERT_EQ(info.state, SL_STATE_DONE);
    ASSERT_STR_EQ(info.meta, "{\"v\":2}");
    sl_record_info_clear(&info);
    sluice_queue_close(q);
}

TEST(a_new_url_while_in_flight_makes_the_lease_stale)
{
    sluice_queue *q = open_queue();
    sl_lease l[1];
    upsert1(q, "a", "http://img.example/a.jpg", "a.jpg", NULL);
    ASSERT_EQ(lease(q, 1, T0, l), 1);
    upsert1(q, "a", "http://img.example/new.jpg", "a.jpg", NULL);
    ASSERT_EQ(state_of(q, "a"), SL_STATE_PENDING);
    /* The old fetch finishing must not mark the new url done. */
    ASSERT_EQ(sl_queue_complete(q, &l[0], &some_object, T0),
              SLUICE_ENOTFOUND);
    ASSERT_EQ(sl_queue_retry(q, &l[0], T0, &net_reset, true),
              SLUICE_ENOTFOUND);
    ASSERT_EQ(sl_queue_dead(q, &l[0], &http_404, T0), SLUICE_ENOTFOUND);
    ASSERT_EQ(sl_queue_release(q, &l[0], T0), SLUICE_ENOTFOUND);
    ASSERT_EQ(state_of(q, "a"), SL_STATE_PENDING);
    sl_lease_clear(&l[0]);
    ASSERT_EQ(lease(q, 1, T0, l), 1);
    ASSERT_STR_EQ(l[0].url, "http://img.example/new.jpg");
    sl_lease_clear(&l[0]);
    sluice_queue_close(q);
}

TEST(a_dead_record_with_a_new_url_is_pending_again)
{
    sluice_queue *q = open_queue();
    sl_lease l[1];
    upsert1(q, "a", "http://img.example/a.jpg", "a.jpg", NULL);
    ASSERT_EQ(lease(q, 1, T0, l), 1);
    ASSERT_EQ(sl_queue_dead(q, &l[0], &http_404, T0), SLUICE_OK);
    sl_lease_clear(&l[0]);
    ASSERT_EQ(upsert1(q, "a", "http://img.example/a.jpg", "a.jpg", NULL)
                  .unchanged,
              1);
    ASSERT_EQ(state_of(q, "a"), SL_STATE_DEAD);
    upsert1(q, "a", "http://img.example/fixed.jpg", "a.jpg", NULL);
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, "a", &info), SLUICE_OK);
    ASSERT_EQ(info.state, SL_STATE_PENDING);
    ASSERT_EQ(info.attempts, 0);
    ASSERT_NULL(info.error_class);
    sl_record_info_clear(&info);
    sluice_queue_close(q);
}

/* ------------------------------------------------------------ leases */

TEST(lease_takes_pending_records_in_feed_order)
{
    sluice_queue *q = open_queue();
    char id[16], url[64];
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof id, "z%02d", 49 - i); /* ids sort backwards */
        snprintf(url, sizeof url, "http://img.example/%d", i);
        upsert1(q, id, url, id, NULL);
    }
    sl_lease l[50];
    ASSERT_EQ(lease(q, 20, T0, l), 20);
    for (int i = 0; i < 20; i++) {
        snprintf(url, sizeof url, "http://img.example/%d", i);
        ASSERT_STR_EQ(l[i].url, url);
        ASSERT_EQ(l[i].first_attempt_ms, T0);
        ASSERT_STR_EQ(l[i].origin, "http://img.example:80");
    }
    sluice_counts n = counts(q);
    ASSERT_EQ(n.in_flight, 20);
    ASSERT_EQ(n.pending, 30);
    ASSERT_EQ(lease(q, 50, T0, l + 20), 30);
    ASSERT_EQ(lease(q, 50, T0, l), 0);
    for (int i = 0; i < 50; i++)
        sl_lease_clear(&l[i]);
    sluice_queue_close(q);
}

TEST(due_retries_come_first_and_early_ones_wait)
{
    sluice_queue *q = open_queue();
    sl_lease l[4];
    upsert1(q, "a", "http://img.example/a", "a", NULL);
    upsert1(q, "b", "http://img.example/b", "b", NULL);
    ASSERT_EQ(lease(q, 2, T0, l), 2);
    ASSERT_EQ(sl_queue_retry(q, &l[0], T0 + 5000, &net_reset, true),
              SLUICE_OK);
    ASSERT_EQ(sl_queue_retry(q, &l[1], T0 + 1000, &net_reset, true),
              SLUICE_OK);
    sl_lease_clear(&l[0]);
    sl_lease_clear(&l[1]);
    upsert1(q, "c", "http://img.example/c", "c", NULL);
    ASSERT_EQ(counts(q).retrying, 2);
    /* Before any is due: only the pending one. */
    ASSERT_EQ(lease(q, 4, T0 + 500, l), 1);
    ASSERT_STR_EQ(l[0].id, "c");
    sl_lease_clear(&l[0]);
    /* Both due: earliest due first. */
    ASSERT_EQ(lease(q, 4, T0 + 6000, l), 2);
    ASSERT_STR_EQ(l[0].id, "b");
    ASSERT_STR_EQ(l[1].id, "a");
    ASSERT_EQ(l[0].attempts, 1);
    sl_lease_clear(&l[0]);
    sl_lease_clear(&l[1]);
    sluice_queue_close(q);
}

TEST(lease_leaves_skipped_origins_alone)
{
    sluice_queue *q = open_queue();
    upsert1(q, "a", "http://img.example/a", "a", NULL);
    upsert1(q, "b", "http://other.example/b", "b", NULL);
    upsert1(q, "c", "http://img.example/c", "c", NULL);
    sl_lease l[3];
    size_t n;
    ASSERT_EQ(lease_skipping(q, "http://img.example:80", 10, T0, l), 1);
    ASSERT_STR_EQ(l[0].id, "b");
    ASSERT_STR_EQ(l[0].origin, "http://other.example:80");
    sl_lease_clear(&l[0]);
    ASSERT_EQ(counts(q).pending, 2);
    /* Every origin skipped: nothing, and nothing changes. */
    const char *both[] = {"http://other.example:80", "http://img.example:80"};
    sl_lease_req none = {10, T0, 60000, both, 2};
    ASSERT_EQ(sl_queue_lease(q, &none, l, &n), SLUICE_OK);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(counts(q).pending, 2);
    ASSERT_EQ(counts(q).in_flight, 1);
    sluice_queue_close(q);
}

static double
median_ms(double *ms, size_t n)
{
    for (size_t i = 1; i < n; i++) /* insertion sort: n is small */
        for (size_t j = i; j > 0 && ms[j - 1] > ms[j]; j--) {
            double t = ms[j];
            ms[j] = ms[j - 1];
            ms[j - 1] = t;
        }
    return ms[n / 2];
}

static double
elapsed_ms(const struct timespec *from)
{
    struct timespec to;
    clock_gettime(CLOCK_MONOTONIC, &to);
    return (double)(to.tv_sec - from->tv_sec) * 1e3 +
           (double)(to.tv_nsec - from->tv_nsec) / 1e6;
}

/* Add `count` records of origin `host` from number `from` on, with ids
 * PREFIX + number, in one batch. */
static void
add_many(sluice_queue *q, const char *prefix, const char *host, int from,
         int count)
{
    enum { BATCH = 1000 };
    static char ids[BATCH][24], urls[BATCH][64];
    sl_record recs[BATCH];
    sluice_ingest_stats st = {0};
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    for (int done = 0; done < count;) {
        int n = SL_MIN(BATCH, count - done);
        for (int i = 0; i < n; i++) {
            snprintf(ids[i], sizeof ids[i], "%s%06d", prefix, from + done + i);
            snprintf(urls[i], sizeof urls[i], "http://%s/%d", host,
                     from + done + i);
            recs[i] = rec(ids[i], urls[i], ids[i], NULL);
        }
        ASSERT_EQ(sl_queue_upsert(q, recs, (size_t)n, T0, &st), SLUICE_OK);
        done += n;
    }
    ASSERT_EQ(sl_queue_commit(q), SLUICE_OK);
    ASSERT_EQ(st.added, (uint64_t)count);
}

/* The median time of `n` leases skipping img.example, each of which
 * must get the next record of `prefix` in feed order. */
static double
median_skipping_lease(sluice_queue *q, const char *prefix, int n)
{
    double ms[32];
    ASSERT_LE(n, 32);
    for (int i = 0; i < n; i++) {
        sl_lease l;
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ASSERT_EQ(lease_skipping(q, "http://img.example:80", 1, T0, &l), 1);
        ms[i] = elapsed_ms(&t0);
        char want[24];
        snprintf(want, sizeof want, "%s%06d", prefix, i);
        ASSERT_STR_EQ(l.id, want);
        sl_lease_clear(&l);
    }
    return median_ms(ms, (size_t)n);
}

/*
 * A busy origin is skipped, and its pending records may lie ahead of
 * every other origin's in feed order: leasing the others must not read
 * through them. Timed against the same leases past a hundredth of the
 * backlog on the same backend, so that a loaded machine slows both: a
 * lease that read through the skipped records took 10 ms and more past
 * 100,000 on SQLite, a hundred times its time past 1,000.
 */
TEST(a_skipped_origins_backlog_does_not_slow_other_leases)
{
    enum { SMALL = 1000, AHEAD = 100000, OTHERS = 25 };
    sluice_queue *q = open_queue();
    add_many(q, "a", "img.example", 0, SMALL);
    add_many(q, "b", "other.example", 0, OTHERS);
    double small = median_skipping_lease(q, "b", OTHERS);
    add_many(q, "a", "img.example", SMALL, AHEAD - SMALL);
    add_many(q, "c", "other.example", 0, OTHERS);
    double large = median_skipping_lease(q, "c", OTHERS);
    fprintf(stderr, "# a lease past %d skipped records: %.3f ms; past %d: "
                    "%.3f ms (medians of %d)\n",
            SMALL, small, AHEAD, large, OTHERS);
    if (large > 4 * small + 0.25)
        TEST_FAIL_("a lease past %d skipped records took %.3f ms, past %d "
                   "%.3f ms: it reads through them",
                   AHEAD, large, SMALL, small);
    /* The skipped origin's records are all still there, in order. */
    sl_lease l[2];
    ASSERT_EQ(lease(q, 2, T0, l), 2);
    ASSERT_STR_EQ(l[0].id, "a000000");
    ASSERT_STR_EQ(l[1].id, "a000001");
    sl_lease_clear(&l[0]);
    sl_lease_clear(&l[1]);
    ASSERT_EQ(counts(q).pending, AHEAD - 2);
    sluice_queue_close(q);
}

TEST(an_expired_lease_can_be_taken_again_and_the_old_one_is_stale)
{
    sluice_queue *q = open_queue();
    sl_lease l[2];
    upsert1(q, "a", "http://img.example/a", "a", NULL);
    ASSERT_EQ(lease(q, 1, T0, l), 1);
    ASSERT_EQ(lease(q, 1, T0 + 59000, l + 1), 0);
    ASSERT_EQ(lease(q, 1, T0 + 61000, l + 1), 1);
    ASSERT_NE(l[0].token, l[1].token);
    ASSERT_EQ(sl_queue_complete(q, &l[0], &some_object, T0),
              SLUICE_ENOTFOUND);
    ASSERT_EQ(sl_queue_complete(q, &l[1], &some_object, T0), SLUICE_OK);
    ASSERT_EQ(state_of(q, "a"), SL_STATE_DONE);
    sl_lease_clear(&l[0]);
    sl_lease_clear(&l[1]);
    sluice_queue_close(q);
}

TEST(a_renewed_lease_outlives_its_first_deadline_a_stale_one_does_not)
{
    sluice_queue *q = open_queue();
    sl_lease l[3];
    upsert1(q, "a", "http://img.example/a", "a", NULL);
    ASSERT_EQ(lease(q, 1, T0, l), 1);
    ASSERT_EQ(sl_queue_renew(q, l, 1, T0 + 120000), SLUICE_OK);
    ASSERT_EQ(lease(q, 1, T0 + 61000, l + 1), 0);
    ASSERT_EQ(lease(q, 1, T0 + 121000, l + 1), 1);
    /* The first lease is stale now: renewing it moves nothing. */
    ASSERT_EQ(sl_queue_renew(q, l, 1, T0 + 900000), SLUICE_OK);
    ASSERT_EQ(lease(q, 1, T0 + 182000, l + 2), 1);
    sl_lease_clear(&l[0]);
    sl_lease_clear(&l[1]);
    sl_lease_clear(&l[2]);
    sluice_queue_close(q);
}

TEST(complete_records_the_object)
{
    sluice_queue *q = open_queue();
    sl_lease l[1];
    upsert1(q, "a", "http://img.example/a", "a", NULL);
    ASSERT_EQ(lease(q, 1, T0, l), 1);
    ASSERT_EQ(sl_queue_complete(q, &l[0], &some_object, T0), SLUICE_OK);
    ASSERT_EQ(sl_queue_complete(q, &l[0], &some_object, T0),
              SLUICE_ENOTFOUND);
    sl_lease_clear(&l[0]);
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, "a", &info), SLUICE_OK);
    ASSERT_EQ(info.state, SL_STATE_DONE);
    ASSERT_EQ(info.size, 1234);
    ASSERT_STR_EQ(info.sha256_hex, some_object.sha256_hex);
    ASSERT_STR_EQ(info.content_type, "image/jpeg");
    ASSERT_STR_EQ(info.etag, "\"etag-1\"");
    sl_record_info_clear(&info);
    ASSERT_EQ(sl_queue_get(q, "nope", &info), SLUICE_ENOTFOUND);
    sluice_queue_close(q);
}

TEST(throttles_do_not_use_up_attempts)
{
    sluice_queue *q = open_queue();
    sl_lease l[1];
    const sl_failure throttled = {SL_CLASS_THROTTLE, "HTTP 429", 429};
    upsert1(q, "a", "http://img.example/a", "a", NULL);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(lease(q, 1, T0 + i * 10, l), 1);
        ASSERT_EQ(sl_queue_retry(q, &l[0], T0 + i * 10 + 1, &throttled,
                                 false),
                  SLUICE_OK);
        sl_lease_clear(&l[0]);
    }
    ASSERT_EQ(lease(q, 1, T0 + 100, l), 1);
    ASSERT_EQ(sl_queue_retry(q, &l[0], T0 + 101, &net_reset, true),
              SLUICE_OK);
    sl_lease_clear(&l[0]);
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, "a", &info), SLUICE_OK);
    ASSERT_EQ(info.state, SL_STATE_RETRYING);
    ASSERT_EQ(info.attempts, 1);
    ASSERT_EQ(info.throttles, 3);
    ASSERT_EQ(info.next_at_ms, T0 + 101);
    ASSERT_STR_EQ(info.error_class, "network");
    ASSERT_EQ(info.http_status, 0);
    sl_record_info_clear(&info);
    /* The first attempt's time is kept for --max-age. */
    ASSERT_EQ(lease(q, 1, T0 + 200, l), 1);
    ASSERT_EQ(l[0].first_attempt_ms, T0);
    sl_lease_clear(&l[0]);
    sluice_queue_close(q);
}

TEST(release_gives_a_lease_back_unchanged)
{
    sluice_queue *q = open_queue();
    sl_lease l[2];
    upsert1(q, "a", "http://img.example/a", "a", NULL);
    upsert1(q, "b", "http://img.example/b", "b", NULL);
    ASSERT_EQ(lease(q, 2, T0, l), 2);
    ASSERT_EQ(sl_queue_retry(q, &l[1], T0, &net_reset, true), SLUICE_OK);
    sl_lease_clear(&l[1]);
    ASSERT_EQ(lease(q, 1, T0 + 1, l + 1), 1);
    ASSERT_EQ(sl_queue_release(q, &l[0], T0), SLUICE_OK);
    ASSERT_EQ(sl_queue_release(q, &l[1], T0), SLUICE_OK);
    ASSERT_EQ(state_of(q, "a"), SL_STATE_PENDING);
    ASSERT_EQ(state_of(q, "b"), SL_STATE_RETRYING);
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, "b", &info), SLUICE_OK);
    ASSERT_EQ(info.attempts, 1);
    sl_record_info_clear(&info);
    sl_lease_clear(&l[0]);
    sl_lease_clear(&l[1]);
    sluice_queue_close(q);
}

/* ------------------------------------------------------------ batches */

static const char *
text_or_none(const char *s)
{
    return s ? s : "(none)";
}

/* Records a and b hold the same outcome: all but their names. */
static void
assert_same_outcome(sluice_queue *q, const char *a, const char *b)
{
    sl_record_info x, y;
    ASSERT_EQ(sl_queue_get(q, a, &x), SLUICE_OK);
    ASSERT_EQ(sl_queue_get(q, b, &y), SLUICE_OK);
    ASSERT_EQ(x.state, y.state);
    ASSERT_EQ(x.attempts, y.attempts);
    ASSERT_EQ(x.throttles, y.throttles);
    ASSERT_EQ(x.next_at_ms, y.next_at_ms);
    ASSERT_EQ(x.http_status, y.http_status);
    ASSERT_EQ(x.size, y.size);
    ASSERT_EQ(x.finished_ms, y.finished_ms);
    ASSERT_STR_EQ(text_or_none(x.error_class), text_or_none(y.error_class));
    ASSERT_STR_EQ(text_or_none(x.message), text_or_none(y.message));
    ASSERT_STR_EQ(text_or_none(x.sha256_hex), text_or_none(y.sha256_hex));
    ASSERT_STR_EQ(text_or_none(x.content_type),
                  text_or_none(y.content_type));
    ASSERT_STR_EQ(text_or_none(x.etag), text_or_none(y.etag));
    sl_record_info_clear(&x);
    sl_record_info_clear(&y);
}

static const sl_failure throttled_429 = {SL_CLASS_THROTTLE, "HTTP 429", 429};

/* The five marks a batch test makes of leases l[0..5): done, a retry
 * that counts, a throttle's retry that does not, dead, release. */
static void
five_marks(const sl_lease *l, sl_queue_mark *v)
{
    v[0] = (sl_queue_mark){SL_QUEUE_MARK_DONE, &l[0], &some_object, NULL,
                           T0 + 1, false};
    v[1] = (sl_queue_mark){SL_QUEUE_MARK_RETRY, &l[1], NULL, &net_reset,
                           T0 + 5000, true};
    v[2] = (sl_queue_mark){SL_QUEUE_MARK_RETRY, &l[2], NULL, &throttled_429,
                           T0 + 7000, false};
    v[3] = (sl_queue_mark){SL_QUEUE_MARK_DEAD, &l[3], NULL, &http_404, T0 + 1,
                           false};
    v[4] = (sl_queue_mark){SL_QUEUE_MARK_RELEASE, &l[4], NULL, NULL, T0 + 1,
                           false};
}

/* Upsert id0..id(n-1) in feed order and lease them all. */
static void
upsert_and_lease(sluice_queue *q, const char *prefix, size_t n, sl_lease *l)
{
    for (size_t i = 0; i < n; i++) {
        char id[32], url[64];
        snprintf(id, sizeof id, "%s%zu", prefix, i);
        snprintf(url, sizeof url, "http://img.example/%s.jpg", id);
        upsert1(q, id, url, id, NULL);
    }
    ASSERT_EQ(lease(q, n, T0, l), n);
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "%s%zu", prefix, i);
        ASSERT_STR_EQ(l[i].id, id);
    }
}

TEST(a_batch_of_marks_leaves_what_the_single_calls_leave)
{
    sluice_queue *q = open_queue();
    sl_lease one[5], many[5];
    sl_queue_mark v[5];
    sluice_err results[5];
    upsert_and_lease(q, "s", 5, one);
    upsert_and_lease(q, "b", 5, many);
    five_marks(one, v);
    ASSERT_EQ(sl_queue_complete(q, &one[0], v[0].obj, v[0].at_ms), SLUICE_OK);
    ASSERT_EQ(sl_queue_retry(q, &one[1], v[1].at_ms, v[1].why, true),
              SLUICE_OK);
    ASSERT_EQ(sl_queue_retry(q, &one[2], v[2].at_ms, v[2].why, false),
              SLUICE_OK);
    ASSERT_EQ(sl_queue_dead(q, &one[3], v[3].why, v[3].at_ms), SLUICE_OK);
    ASSERT_EQ(sl_queue_release(q, &one[4], v[4].at_ms), SLUICE_OK);
    five_marks(many, v);
    ASSERT_EQ(sl_queue_marks(q, v, 5, results), SLUICE_OK);
    for (int i = 0; i < 5; i++) {
        char a[8], b[8];
        ASSERT_EQ(results[i], SLUICE_OK);
        snprintf(a, sizeof a, "s%d", i);
        snprintf(b, sizeof b, "b%d", i);
        assert_same_outcome(q, a, b);
    }
    ASSERT_EQ(state_of(q, "b0"), SL_STATE_DONE);
    ASSERT_EQ(state_of(q, "b1"), SL_STATE_RETRYING);
    ASSERT_EQ(state_of(q, "b2"), SL_STATE_RETRYING);
    ASSERT_EQ(state_of(q, "b3"), SL_STATE_DEAD);
    ASSERT_EQ(state_of(q, "b4"), SL_STATE_PENDING);
    sluice_counts c = counts(q);
    ASSERT_EQ(c.done, 2);
    ASSERT_EQ(c.retrying, 4);
    ASSERT_EQ(c.dead, 2);
    ASSERT_EQ(c.pending, 2);
    ASSERT_EQ(c.in_flight, 0);
    /* The same batch again: every lease is stale now, nothing moves. */
    for (int i = 0; i < 5; i++)
        results[i] = SLUICE_EINTERNAL;
    ASSERT_EQ(sl_queue_marks(q, v, 5, results), SLUICE_OK);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(results[i], SLUICE_ENOTFOUND);
    c = counts(q);
    ASSERT_EQ(c.done, 2);
    ASSERT_EQ(c.pending, 2);
    for (int i = 0; i < 5; i++) {
        sl_lease_clear(&one[i]);
        sl_lease_clear(&many[i]);
    }
    sluice_queue_close(q);
}

TEST(a_stale_lease_in_a_batch_is_not_found_and_the_marks_after_it_made)
{
    sluice_queue *q = open_queue();
    sl_lease l[4];
    sluice_err results[4];
    upsert_and_lease(q, "r", 4, l);
    /* r1 is ingested again with a new url: its lease is stale. */
    upsert1(q, "r1", "http://img.example/new.jpg", "r1", NULL);
    sl_queue_mark v[4] = {
        {SL_QUEUE_MARK_DONE, &l[0], &some_object, NULL, T0 + 1, false},
        {SL_QUEUE_MARK_DONE, &l[1], &some_object, NULL, T0 + 1, false},
        {SL_QUEUE_MARK_DEAD, &l[2], NULL, &http_404, T0 + 1, false},
        {SL_QUEUE_MARK_RETRY, &l[3], NULL, &net_reset, T0 + 9000, true}};
    ASSERT_EQ(sl_queue_marks(q, v, 4, results), SLUICE_OK);
    ASSERT_EQ(results[0], SLUICE_OK);
    ASSERT_EQ(results[1], SLUICE_ENOTFOUND);
    ASSERT_EQ(results[2], SLUICE_OK);
    ASSERT_EQ(results[3], SLUICE_OK);
    ASSERT_EQ(state_of(q, "r0"), SL_STATE_DONE);
    ASSERT_EQ(state_of(q, "r1"), SL_STATE_PENDING); /* the new url's */
    ASSERT_EQ(state_of(q, "r2"), SL_STATE_DEAD);
    ASSERT_EQ(state_of(q, "r3"), SL_STATE_RETRYING);
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, "r1", &info), SLUICE_OK);
    ASSERT_STR_EQ(info.url, "http://img.example/new.jpg");
    ASSERT_NULL(info.sha256_hex);
    sl_record_info_clear(&info);
    for (int i = 0; i < 4; i++)
        sl_lease_clear(&l[i]);
    sluice_queue_close(q);
}

TEST(a_batch_longer_than_a_pipeline_makes_every_mark_in_order)
{
    enum { N = 700 };
    sluice_queue *q = open_queue();
    sl_lease *l = calloc(N, sizeof *l);
    sl_queue_mark *v = calloc(N, sizeof *v);
    sluice_err *results = calloc(N, sizeof *results);
    ASSERT(l && v && results);
    upsert_and_lease(q, "m", N, l);
    /* Every hundredth is done already: stale in the batch. */
    for (size_t i = 50; i < N; i += 100)
        ASSERT_EQ(sl_queue_complete(q, &l[i], &some_object, T0), SLUICE_OK);
    for (size_t i = 0; i < N; i++) {
        static const sl_queue_mark_kind kinds[] = {
            SL_QUEUE_MARK_DONE, SL_QUEUE_MARK_RETRY, SL_QUEUE_MARK_DEAD,
            SL_QUEUE_MARK_RELEASE};
        sl_queue_mark_kind kind = i % 100 == 50 ? SL_QUEUE_MARK_DONE
                                                : kinds[i % 4];
        v[i] = (sl_queue_mark){
            kind,
            &l[i],
            kind == SL_QUEUE_MARK_DONE ? &some_object : NULL,
            kind == SL_QUEUE_MARK_DEAD    ? &http_404
            : kind == SL_QUEUE_MARK_RETRY ? &net_reset
                                          : NULL,
            T0 + 2,
            true};
    }
    ASSERT_EQ(sl_queue_marks(q, v, N, results), SLUICE_OK);
    size_t stale = 0;
    for (size_t i = 0; i < N; i++) {
        ASSERT_EQ(results[i], i % 100 == 50 ? SLUICE_ENOTFOUND : SLUICE_OK);
        stale += results[i] == SLUICE_ENOTFOUND;
    }
    ASSERT_EQ(stale, N / 100);
    size_t by_kind[4] = {0};
    for (size_t i = 0; i < N; i++)
        if (i % 100 != 50)
            by_kind[i % 4]++;
    sluice_counts c = counts(q);
    ASSERT_EQ(c.done, by_kind[0] + N / 100);
    ASSERT_EQ(c.retrying, by_kind[1]);
    ASSERT_EQ(c.dead, by_kind[2]);
    ASSERT_EQ(c.pending, by_kind[3]);
    ASSERT_EQ(c.in_flight, 0);
    /* The last of them, in the third pipeline, as its single call would
     * leave it. */
    ASSERT_EQ(state_of(q, "m699"), SL_STATE_PENDING);
    ASSERT_EQ(state_of(q, "m698"), SL_STATE_DEAD);
    for (size_t i = 0; i < N; i++)
        sl_lease_clear(&l[i]);
    free(l);
    free(v);
    free(results);
    sluice_queue_close(q);
}

/* How many commands Redis refused with NOSCRIPT so far. */
static long
noscript_errors(sl_redis *conn)
{
    redisReply *reply;
    ASSERT_EQ(sl_redis_cmdf(conn, &reply, "INFO errorstats"), SLUICE_OK);
    ASSERT_EQ(reply->type, REDIS_REPLY_STRING);
    const char *at = strstr(reply->str, "errorstat_NOSCRIPT:count=");
    long n = at ? strtol(at + strlen("errorstat_NOSCRIPT:count="), NULL, 10)
                : 0;
    freeReplyObject(reply);
    return n;
}

TEST(a_batch_after_redis_forgot_its_scripts_makes_every_mark)
{
    sluice_queue *q = open_queue();
    sl_lease l[10];
    sl_queue_mark v[5];
    sluice_err results[5];
    upsert_and_lease(q, "f", 10, l);
    /* The handle runs every mark script once: it has their digests. */
    five_marks(l, v);
    ASSERT_EQ(sl_queue_marks(q, v, 5, results), SLUICE_OK);
    sl_redis conn = {0};
    long before = 0;
    if (!is_sqlite()) {
        /* What a Redis restarted without its script cache answers. */
        ASSERT_EQ(sl_redis_open(&conn, location()), SLUICE_OK);
        redisReply *reply;
        ASSERT_EQ(sl_redis_cmdf(&conn, &reply, "SCRIPT FLUSH"), SLUICE_OK);
        freeReplyObject(reply);
        before = noscript_errors(&conn);
    }
    five_marks(l + 5, v);
    ASSERT_EQ(sl_queue_marks(q, v, 5, results), SLUICE_OK);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(results[i], SLUICE_OK);
    for (int i = 0; i < 5; i++) {
        char a[8], b[8];
        snprintf(a, sizeof a, "f%d", i);
        snprintf(b, sizeof b, "f%d", i + 5);
        assert_same_outcome(q, a, b);
    }
    if (!is_sqlite()) {
        /* Every mark met NOSCRIPT once, and was made after the load. */
        ASSERT_EQ(noscript_errors(&conn) - before, 5);
        sl_redis_close(&conn);
    }
    sluice_counts c = counts(q);
    ASSERT_EQ(c.done, 2);
    ASSERT_EQ(c.dead, 2);
    ASSERT_EQ(c.in_flight, 0);
    for (int i = 0; i < 10; i++)
        sl_lease_clear(&l[i]);
    sluice_queue_close(q);
}

TEST(recover_returns_every_in_flight_record)
{
    sluice_queue *q = open_queue();
    sl_lease l[3];
    upsert1(q, "a", "http://img.example/a", "a", NULL);
    upsert1(q, "b", "http://img.example/b", "b", NULL);
    upsert1(q, "c", "http://img.example/c", "c", NULL);
    ASSERT_EQ(lease(q, 3, T0, l), 3);
    ASSERT_EQ(sl_queue_complete(q, &l[2], &some_object, T0), SLUICE_OK);
    for (int i = 0; i < 3; i++)
        sl_lease_clear(&l[i]);
    sluice_queue_close(q);
    /* As after a crash: a new handle finds two records in flight. */
    q = open_queue();
    ASSERT_EQ(counts(q).in_flight, 2);
    ASSERT_EQ(sl_queue_acquire_runner(q), SLUICE_OK);
    uint64_t n = 0;
    ASSERT_EQ(sl_queue_recover(q, T0 + 1, &n), SLUICE_OK);
    ASSERT_EQ(n, 2);
    sluice_counts c = counts(q);
    ASSERT_EQ(c.pending, 2);
    ASSERT_EQ(c.done, 1);
    ASSERT_EQ(lease(q, 3, T0 + 2, l), 2);
    for (int i = 0; i < 2; i++)
        sl_lease_clear(&l[i]);
    sluice_queue_close(q);
}

TEST(only_one_runner_at_a_time)
{
    sluice_queue *q = open_queue();
    if (strcmp(sl_queue_slots(q), "redis") == 0) {
        /* Its slots are shared: runners too (test_redis.c). */
        sluice_queue_close(q);
        return;
    }
    int ready[2], done[2];
    ASSERT_EQ(pipe(ready), 0);
    ASSERT_EQ(pipe(done), 0);
    pid_t pid = fork();
    if (pid == 0) {
        sluice_queue *mine = open_queue();
        char c = sl_queue_acquire_runner(mine) == SLUICE_OK ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1 || read(done[0], &c, 1) != 1)
            _exit(1);
        sluice_queue_close(mine);
        _exit(0);
    }
    char c;
    ASSERT_EQ(read(ready[0], &c, 1), 1);
    ASSERT_EQ(c, 'y');
    ASSERT_EQ(sl_queue_acquire_runner(q), SLUICE_ERUNNING);
    ASSERT_STR_CONTAINS(sluice_queue_errmsg(q), "another sluice run");
    ASSERT_EQ(write(done[1], "x", 1), 1);
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_EQ(sl_queue_acquire_runner(q), SLUICE_OK);
    sluice_queue_close(q);
}

/* ------------------------------------------------------------ DLQ */

typedef struct {
    int n;
    char ids[8][16];
    char classes[8][16];
    int statuses[8];
    unsigned attempts[8];
} dead_list;

static int
collect_dead(void *ctx, const sluice_dead_record *r)
{
    dead_list *d = ctx;
    if (d->n < 8) {
        snprintf(d->ids[d->n], sizeof d->ids[0], "%s", r->id);
        snprintf(d->classes[d->n], sizeof d->classes[0], "%s",
                 r->error_class);
        d->statuses[d->n] = r->http_status;
        d->attempts[d->n] = r->attempts;
    }
    d->n++;
    return 0;
}

/* Kill records a, b, c: a and c with 404s, b with a network error. */
static void
kill_three(sluice_queue *q)
{
    sl_lease l[3];
    upsert1(q, "a", "http://img.example/a", "a", NULL);
    upsert1(q, "b", "http://img.example/b", "b", NULL);
    upsert1(q, "c", "http://img.example/c", "c", NULL);
    upsert1(q, "d", "http://img.example/d", "d", NULL);
    ASSERT_EQ(lease(q, 3, T0, l), 3);
    ASSERT_EQ(sl_queue_dead(q, &l[0], &http_404, T0), SLUICE_OK);
    ASSERT_EQ(sl_queue_dead(q, &l[1], &net_reset, T0 + 1), SLUICE_OK);
    ASSERT_EQ(sl_queue_dead(q, &l[2], &http_404, T0 + 2), SLUICE_OK);
    for (int i = 0; i < 3; i++)
        sl_lease_clear(&l[i]);
}

TEST(dlq_lists_dead_records_with_their_errors)
{
    sluice_queue *q = open_queue();
    kill_three(q);
    dead_list d = {0};
    ASSERT_EQ(sluice_dlq_list(q, NULL, collect_dead, &d), SLUICE_OK);
    ASSERT_EQ(d.n, 3);
    ASSERT_STR_EQ(d.ids[0], "a");
    ASSERT_STR_EQ(d.classes[0], "http");
    ASSERT_EQ(d.statuses[0], 404);
    ASSERT_EQ(d.attempts[0], 1);
    ASSERT_STR_EQ(d.ids[1], "b");
    ASSERT_STR_EQ(d.classes[1], "network");
    ASSERT_EQ(d.statuses[1], 0);
    sluice_dlq_filter only_http = {"http"};
    memset(&d, 0, sizeof d);
    ASSERT_EQ(sluice_dlq_list(q, &only_http, collect_dead, &d), SLUICE_OK);
    ASSERT_EQ(d.n, 2);
    ASSERT_STR_EQ(d.ids[1], "c");
    ASSERT_EQ(counts(q).dead, 3);
    sluice_queue_close(q);
}

TEST(dlq_replay_by_id_class_and_all)
{
    sluice_queue *q = open_queue();
    kill_three(q);
    uint64_t replayed, missing;
    const char *ids[] = {"b", "nope", "d"};
    ASSERT_EQ(sluice_dlq_replay(q, ids, 3, NULL, &replayed, &missing),
              SLUICE_OK);
    ASSERT_EQ(replayed, 1);
    ASSERT_EQ(missing, 2); /* "nope" is unknown, "d" is not dead */
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, "b", &info), SLUICE_OK);
    ASSERT_EQ(info.state, SL_STATE_PENDING);
    ASSERT_EQ(info.attempts, 0);
    ASSERT_NULL(info.error_class);
    sl_record_info_clear(&info);
    sluice_dlq_filter only_net = {"network"};
    ASSERT_EQ(sluice_dlq_replay(q, NULL, 0, &only_net, &replayed, NULL),
              SLUICE_OK);
    ASSERT_EQ(replayed, 0);
    ASSERT_EQ(sluice_dlq_replay(q, NULL, 0, NULL, &replayed, NULL),
              SLUICE_OK);
    ASSERT_EQ(replayed, 2);
    sluice_counts n = counts(q);
    ASSERT_EQ(n.dead, 0);
    ASSERT_EQ(n.pending, 4); /* a, b, c replayed; d never leased */
    sluice_queue_close(q);
}

TEST(counts_report_the_oldest_pending_age)
{
    sluice_queue *q = open_queue();
    sluice_counts n = counts(q);
    ASSERT(n.oldest_pending_age < 0);
    sluice_ingest_stats st = {0};
    sl_record r = rec("a", "http://img.example/a", "a", NULL);
    int64_t an_hour_ago = sl_now_ms() - 3600 * 1000;
    ASSERT_EQ(sl_queue_upsert(q, &r, 1, an_hour_ago, &st), SLUICE_OK);
    n = counts(q);
    ASSERT(n.oldest_pending_age > 3599 && n.oldest_pending_age < 3700);
    sluice_queue_close(q);
}

/* ------------------------------------------------------------ faults */

#ifdef SLUICE_FAULT_INJECTION /* sl_fault_set */
TEST(a_failed_lease_in_a_batch_undoes_itself_and_nothing_else)
{
    /* A run leases inside its transaction of marks: a lease that fails
     * half-way must leave no record in flight, and keep the marks. */
    sluice_queue *q = open_queue();
    upsert1(q, "a", "http://img.example/a", "a", NULL);
    upsert1(q, "b", "http://img.example/b", "b", NULL);
    upsert1(q, "c", "http://img.example/c", "c", NULL);
    sl_lease l[2];
    ASSERT_EQ(lease(q, 1, T0, l), 1);
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_complete(q, &l[0], &some_object, T0), SLUICE_OK);
    sl_lease_clear(&l[0]);
    sl_lease_req req = {2, T0, 60000, NULL, 0};
    size_t n = 99;
    sl_fault_set(SL_FAULT_ALLOC, 2); /* the second record's copy */
    ASSERT_EQ(sl_queue_lease(q, &req, l, &n), SLUICE_ENOMEM);
    sl_fault_set(SL_FAULT_ALLOC, 0);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(sl_queue_commit(q), SLUICE_OK);
    sluice_counts c = counts(q);
    ASSERT_EQ(c.done, 1);
    ASSERT_EQ(c.in_flight, 0);
    ASSERT_EQ(c.pending, 2);
    /* And the two are there to lease. */
    ASSERT_EQ(lease(q, 2, T0, l), 2);
    sl_lease_clear(&l[0]);
    sl_lease_clear(&l[1]);
    sluice_queue_close(q);
}

TEST(an_injected_fault_stops_a_batch_of_marks_and_sends_no_more)
{
    sluice_queue *q = open_queue();
    sl_lease l[3];
    sluice_err results[3];
    upsert_and_lease(q, "x", 3, l);
    sl_queue_mark v[3] = {
        {SL_QUEUE_MARK_DONE, &l[0], &some_object, NULL, T0 + 1, false},
        {SL_QUEUE_MARK_DEAD, &l[1], NULL, &http_404, T0 + 1, false},
        {SL_QUEUE_MARK_RELEASE, &l[2], NULL, NULL, T0 + 1, false}};
    /* SQLite fails its first single call; Redis, its one batch call. */
    sl_fault_set(SL_FAULT_DB, 1);
    ASSERT_EQ(sl_queue_marks(q, v, 3, results), SLUICE_EDB);
    sl_fault_set(SL_FAULT_DB, 0);
    ASSERT_STR_CONTAINS(sluice_queue_errmsg(q), "injected");
    ASSERT_EQ(results[0], is_sqlite() ? SLUICE_EDB : SLUICE_EAGAIN);
    ASSERT_EQ(results[1], SLUICE_EAGAIN);
    ASSERT_EQ(results[2], SLUICE_EAGAIN);
    ASSERT_EQ(counts(q).in_flight, 3);
    /* Nothing was made: the batch again makes all three. */
    ASSERT_EQ(sl_queue_marks(q, v, 3, results), SLUICE_OK);
    ASSERT_EQ(state_of(q, "x0"), SL_STATE_DONE);
    ASSERT_EQ(state_of(q, "x1"), SL_STATE_DEAD);
    ASSERT_EQ(state_of(q, "x2"), SL_STATE_PENDING);
    for (int i = 0; i < 3; i++)
        sl_lease_clear(&l[i]);
    sluice_queue_close(q);
}

TEST(an_injected_database_fault_is_reported_and_rolled_back)
{
    sluice_queue *q = open_queue();
    sluice_ingest_stats st = {0};
    sl_record r = rec("a", "http://img.example/a", "a", NULL);
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_upsert(q, &r, 1, T0, &st), SLUICE_OK);
    sl_fault_set(SL_FAULT_DB, 1);
    ASSERT_EQ(sl_queue_commit(q), SLUICE_EDB);
    ASSERT_STR_CONTAINS(sluice_queue_errmsg(q), "injected");
    ASSERT_EQ(sl_queue_rollback(q), SLUICE_OK);
    sl_fault_set(SL_FAULT_DB, 0);
    ASSERT_EQ(counts(q).total, 0);
    sluice_queue_close(q);
}
#endif

/* ------------------------------------------------------------ invariant */

static const char *
origin_of(int i)
{
    return i % 3 == 0 ? "other" : i % 3 == 1 ? "third" : "img";
}

/*
 * Invariant 2, nothing lost: drive 200 records through a long random
 * sequence of every operation, checking after each step that every
 * record is in exactly the state a simple model says, and the counts add
 * up to the total.
 */
TEST_TIMEOUT(random_operations_never_lose_a_record, 300)
{
    enum { N = 200, STEPS = 4000 };
    sl_state model[N];
    sl_lease held[N];
    bool holding[N];
    char ids[N][16], urls[N][64];
    unsigned seed = 12345;
    int64_t now = T0;
    sluice_queue *q = open_queue();

    memset(holding, 0, sizeof holding);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "r%03d", i);
        snprintf(urls[i], sizeof urls[i], "http://%s.example/%d", origin_of(i),
                 i);
        upsert1(q, ids[i], urls[i], ids[i], NULL);
        model[i] = SL_STATE_PENDING;
    }
    /* Leases skip no origin, or one of three: the others' records are
     * then merged back into feed order. */
    for (int step = 0; step < STEPS; step++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = (seed >> 8) % 100;
        int i = (int)((seed >> 16) % N);
        now += 7;
        if (r < 25) {
            sl_lease got[8];
            const char *skip = r % 3 == 0   ? "http://img.example:80"
                               : r % 3 == 1 ? "http://other.example:80"
                                            : NULL;
            sl_state before[N];
            memcpy(before, model, sizeof before);
            size_t n = lease_skipping(q, skip, 8, now, got);
            int last_pending = -1, n_pending = 0;
            for (size_t k = 0; k < n; k++) {
                int idx = atoi(got[k].id + 1);
                ASSERT(model[idx] == SL_STATE_PENDING ||
                       model[idx] == SL_STATE_RETRYING);
                if (skip)
                    ASSERT(strcmp(got[k].origin, skip) != 0);
                if (model[idx] == SL_STATE_PENDING) { /* in feed order */
                    ASSERT_LT(last_pending, idx);
                    last_pending = idx;
                    n_pending++;
                }
                ASSERT(!holding[idx]);
                model[idx] = SL_STATE_IN_FLIGHT;
                held[idx] = got[k];
                holding[idx] = true;
            }
            /* The pending ones leased are the earliest of every origin
             * not skipped. */
            for (int k = 0; k < N && n_pending > 0; k++) {
                char name[64];
                snprintf(name, sizeof name, "http://%s.example:80",
                         origin_of(k));
                if (before[k] != SL_STATE_PENDING ||
                    (skip && strcmp(name, skip) == 0))
                    continue;
                ASSERT_EQ(model[k], SL_STATE_IN_FLIGHT);
                n_pending--;
            }
        } else if (holding[i] && r < 45) {
            ASSERT_EQ(sl_queue_complete(q, &held[i], &some_object, now),
                      SLUICE_OK);
            model[i] = SL_STATE_DONE;
        } else if (holding[i] && r < 60) {
            ASSERT_EQ(sl_queue_retry(q, &held[i], now + 20, &net_reset,
                                     r % 2),
                      SLUICE_OK);
            model[i] = SL_STATE_RETRYING;
        } else if (holding[i] && r < 68) {
            ASSERT_EQ(sl_queue_dead(q, &held[i], &http_404, now), SLUICE_OK);
            model[i] = SL_STATE_DEAD;
        } else if (holding[i] && r < 74) {
            ASSERT_EQ(sl_queue_release(q, &held[i], T0), SLUICE_OK);
            /* Pending, or retrying if it had failed before. */
            sl_record_info info;
            ASSERT_EQ(sl_queue_get(q, ids[i], &info), SLUICE_OK);
            model[i] = info.state;
            ASSERT(info.state == SL_STATE_PENDING ||
                   info.state == SL_STATE_RETRYING);
            sl_record_info_clear(&info);
        } else if (r < 80) {
            /* Re-ingest with a new url: pending again, any lease stale. */
            snprintf(urls[i], sizeof urls[i], "http://%s.example/%d-%d",
                     origin_of(i), i, step);
            upsert1(q, ids[i], urls[i], ids[i], NULL);
            if (holding[i]) {
                ASSERT_EQ(sl_queue_complete(q, &held[i], &some_object, now),
                          SLUICE_ENOTFOUND);
            }
            model[i] = SL_STATE_PENDING;
        } else if (r < 84 && model[i] == SL_STATE_DEAD) {
            const char *one[] = {ids[i]};
            uint64_t replayed;
            ASSERT_EQ(sluice_dlq_replay(q, one, 1, NULL, &replayed, NULL),
                      SLUICE_OK);
            ASSERT_EQ(replayed, 1);
            model[i] = SL_STATE_PENDING;
        } else {
            continue;
        }
        if (holding[i] && model[i] != SL_STATE_IN_FLIGHT) {
            sl_lease_clear(&held[i]);
            holding[i] = false;
        }
        if (step % 100 == 0 || step == STEPS - 1) {
            sluice_counts want = {0, 0, 0, 0, 0, N, 0};
            for (int k = 0; k < N; k++) {
                ASSERT_EQ(state_of(q, ids[k]), model[k]);
                want.pending += model[k] == SL_STATE_PENDING;
                want.in_flight += model[k] == SL_STATE_IN_FLIGHT;
                want.retrying += model[k] == SL_STATE_RETRYING;
                want.done += model[k] == SL_STATE_DONE;
                want.dead += model[k] == SL_STATE_DEAD;
            }
            sluice_counts got = counts(q);
            ASSERT_EQ(got.total, N);
            ASSERT_EQ(got.pending, want.pending);
            ASSERT_EQ(got.in_flight, want.in_flight);
            ASSERT_EQ(got.retrying, want.retrying);
            ASSERT_EQ(got.done, want.done);
            ASSERT_EQ(got.dead, want.dead);
        }
    }
    for (int i = 0; i < N; i++)
        if (holding[i])
            sl_lease_clear(&held[i]);
    sluice_queue_close(q);
}

/* ------------------------------------------------------------ streams */

static void
nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct {
    char got[8][200]; /* "stream shard seq subseq finished behind" */
    int n;
} places;

static int
collect_place(void *ctx, const sl_stream_mark *m)
{
    places *p = ctx;
    if (p->n < 8)
        snprintf(p->got[p->n++], sizeof p->got[0], "%s %s %s %u %d %lld",
                 m->stream, m->shard, *m->seq ? m->seq : "-",
                 (unsigned)m->subseq, m->finished, (long long)m->behind_ms);
    ASSERT_GT(m->written_ms, sl_now_ms() - 60000);
    return 0;
}

static places
places_of(sluice_queue *q, const char *stream)
{
    places p = {0};
    ASSERT_EQ(sl_queue_stream_marks(q, stream, collect_place, &p), SLUICE_OK);
    return p;
}

/* Records and a place in one transaction; the commit's result. */
static sluice_err
store_with_place(sluice_queue *q, const char *owner, const char *id,
                 const char *seq)
{
    sl_stream_mark m = {"kinesis://s", "shard-1", seq, 0, false, 5, 0, 0};
    /* The counts a batch's upsert adds to are written at its commit:
     * they must outlive it (not upsert1's, gone when it returns). */
    sluice_ingest_stats st = {0};
    sl_record r = rec(id, "http://img.example/a.jpg", id, NULL);
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_upsert(q, &r, 1, T0, &st), SLUICE_OK);
    sluice_err err = sl_queue_stream_mark(q, owner, &m);
    if (err == SLUICE_OK)
        err = sl_queue_commit(q);
    if (err != SLUICE_OK)
        sl_queue_rollback(q);
    return err;
}

TEST(a_streams_lease_is_one_owners_until_it_lapses)
{
    sluice_queue *q = open_queue();
    bool held;
    int64_t left;
    ASSERT_EQ(sl_queue_stream_lease(q, "kinesis://s", "A", 400, &held, &left),
              SLUICE_OK);
    ASSERT(held);
    ASSERT_EQ(sl_queue_stream_lease(q, "kinesis://s", "B", 400, &held, &left),
              SLUICE_OK);
    ASSERT(!held);
    ASSERT_GT(left, 0);
    ASSERT_LE(left, 400);
    /* Another stream's lease is another lease. */
    ASSERT_EQ(sl_queue_stream_lease(q, "kinesis://t", "B", 400, &held, &left),
              SLUICE_OK);
    ASSERT(held);
    /* The owner renews it; once it lapses, another takes it. */
    ASSERT_EQ(sl_queue_stream_lease(q, "kinesis://s", "A", 400, &held, &left),
              SLUICE_OK);
    ASSERT(held);
    nap_ms(550);
    ASSERT_EQ(sl_queue_stream_lease(q, "kinesis://s", "B", 400, &held, &left),
              SLUICE_OK);
    ASSERT(held);
    ASSERT_EQ(sl_queue_stream_lease(q, "kinesis://s", "A", 400, &held, &left),
              SLUICE_OK);
    ASSERT(!held);
    /* Given up, it is free at once. */
    ASSERT_EQ(sl_queue_stream_unlease(q, "kinesis://s", "A"), SLUICE_OK);
    ASSERT_EQ(sl_queue_stream_lease(q, "kinesis://s", "A", 400, &held, &left),
              SLUICE_OK);
    ASSERT(!held); /* A did not hold it: B's stays */
    ASSERT_EQ(sl_queue_stream_unlease(q, "kinesis://s", "B"), SLUICE_OK);
    ASSERT_EQ(sl_queue_stream_lease(q, "kinesis://s", "A", 400, &held, &left),
              SLUICE_OK);
    ASSERT(held);
    sluice_queue_close(q);
}

TEST(a_streams_place_is_stored_with_its_records_or_not_at_all)
{
    sluice_queue *q = open_queue();
    bool held;
    int64_t left;
    ASSERT_EQ(sl_queue_stream_lease(q, "kinesis://s", "A", 300, &held, &left),
              SLUICE_OK);
    ASSERT(held);
    ASSERT_EQ(places_of(q, NULL).n, 0);
    ASSERT_EQ(store_with_place(q, "A", "r1", "100"), SLUICE_OK);
    places p = places_of(q, "kinesis://s");
    ASSERT_EQ(p.n, 1);
    ASSERT_STR_EQ(p.got[0], "kinesis://s shard-1 100 0 0 5");
    ASSERT_EQ(counts(q).total, 1);
    /* B takes the stream over: A's next batch writes nothing at all. */
    nap_ms(450);
    ASSERT_EQ(sl_queue_stream_lease(q, "kinesis://s", "B", 5000, &held, &left),
              SLUICE_OK);
    ASSERT(held);
    ASSERT_EQ(store_with_place(q, "A", "r2", "200"), SLUICE_EAGAIN);
    ASSERT_STR_CONTAINS(sluice_queue_errmsg(q), "took");
    ASSERT_EQ(counts(q).total, 1);
    p = places_of(q, "kinesis://s");
    ASSERT_STR_EQ(p.got[0], "kinesis://s shard-1 100 0 0 5");
    /* B's goes in. */
    ASSERT_EQ(store_with_place(q, "B", "r2", "200"), SLUICE_OK);
    ASSERT_EQ(counts(q).total, 2);
    p = places_of(q, "kinesis://s");
    ASSERT_STR_EQ(p.got[0], "kinesis://s shard-1 200 0 0 5");
    sluice_queue_close(q);
}

TEST(stream_places_are_listed_by_stream_and_shard)
{
    sluice_queue *q = open_queue();
    bool held;
    int64_t left;
    const char *streams[] = {"kinesis://b", "kinesis://a"};
    const char *shards[] = {"shardId-2", "shardId-10", "shardId-1"};
    for (int s = 0; s < 2; s++) {
        ASSERT_EQ(sl_queue_stream_lease(q, streams[s], "A", 5000, &held,
                                        &left),
                  SLUICE_OK);
        for (int h = 0; h < 3; h++) {
            sl_stream_mark m = {streams[s], shards[h], h ? "77" : "", 3,
                                h == 2, -1, T0, 0};
            ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
            ASSERT_EQ(sl_queue_stream_mark(q, "A", &m), SLUICE_OK);
            ASSERT_EQ(sl_queue_commit(q), SLUICE_OK);
        }
    }
    places p = places_of(q, NULL);
    ASSERT_EQ(p.n, 6);
    ASSERT_STR_EQ(p.got[0], "kinesis://a shardId-1 77 3 1 -1");
    ASSERT_STR_EQ(p.got[1], "kinesis://a shardId-10 77 3 0 -1");
    ASSERT_STR_EQ(p.got[2], "kinesis://a shardId-2 - 3 0 -1");
    ASSERT_STR_EQ(p.got[3], "kinesis://b shardId-1 77 3 1 -1");
    p = places_of(q, "kinesis://b");
    ASSERT_EQ(p.n, 3);
    ASSERT_STR_EQ(p.got[2], "kinesis://b shardId-2 - 3 0 -1");
    sluice_queue_close(q);
}
