/*
 * What one ingest has seen (seen.h), in a private SQLite database that
 * lives in a temporary file (SQLite's own, deleted when closed, or by the
 * kernel if the process dies): ids -> where and which key; keys -> where
 * and whose (the earliest record naming it that still does); and, for a
 * key several records name, the others. "Where" is the input's number
 * above the line, in one integer. Only records that still name a key are
 * kept as its namers: a duplicate id that names another key gives up the
 * old one.
 *
 * Most records repeat nothing, and two rows each would cost most of the
 * work. So, while a bloom filter of fixed size (every id and key checked
 * so far) can still tell, a record whose id and key it has never been
 * given is "deferred": kept in memory, and past DEFER_BATCH of them
 * written out as fragments, one blob per hash bucket and flush, no
 * lookups. When a later record's id or key may have been seen (the
 * filter says so), the deferred record that has it, if any, is first
 * "promoted" into the tables as if it had been checked there, and the
 * check goes on in the tables as ever. Past DEFER_MAX deferred records
 * the filter would fill: it is frozen (it still covers the deferred
 * ones) and the records that follow go to the tables directly. Memory:
 * the page cache, the filter (8 MiB) and the records in memory with what
 * writes them out (some 9 MiB; 17 at most), whatever the feed's size.
 */
#include "seen.h"

#include <string.h>

#include <sqlite3.h>

/* Where a record is: its input's number above its line. */
#define LINE_BITS 40
#define LINE_MASK ((UINT64_C(1) << LINE_BITS) - 1)

/* The page cache: the tables spill to the file past it. */
#define CACHE_KIB 8192

/* The bloom filter: 2^BLOOM_LOG bits (8 MiB) in blocks of 2^BLOCK_LOG
 * (a cache line), BLOOM_K bits a text, all in the block its hash picks. */
#define BLOOM_LOG    26
#define BLOCK_LOG    9
#define BLOOM_BLOCKS (UINT64_C(1) << (BLOOM_LOG - BLOCK_LOG))
#define BLOOM_K      5

/* Deferred records: up to DEFER_BATCH of them, or DEFER_BYTES of their
 * texts, in memory; then written out, one fragment a bucket of
 * 2^BUCKET_LOG for ids and as many for keys. DEFER_MAX in all (16 bits
 * of the filter for each id and key). A text longer than DEFER_TEXT is
 * never deferred. */
#define DEFER_BATCH 131072
#define DEFER_BYTES (8u << 20)
#define BUCKET_LOG  12
#define DEFER_MAX   (UINT64_C(1) << 21)
#define DEFER_TEXT  65535
/* A flush lays out a kind's entries a part of the buckets at a time. */
#define FLUSH_PARTS 4
/* The in-memory records by hash: open addressing, half full at most. */
#define SLOTS (4 * DEFER_BATCH)

/* What a hash is of: a record's id or its key. */
enum { K_ID, K_KEY };

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
    S_PUT_FRAG,
    S_GET_FRAG,
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
    [S_PUT_FRAG] = "INSERT INTO frags(n, data) VALUES (?1, ?2)",
    [S_GET_FRAG] = "SELECT data FROM frags WHERE n = ?1",
};

/* A deferred record still in memory; its id and then its key are in
 * `pending_text` from `text` (below DEFER_BYTES; each at most
 * DEFER_TEXT). 32 bytes. */
typedef struct {
    uint64_t hash[2]; /* K_ID, K_KEY */
    int64_t at;
    uint32_t text : 31;
    uint32_t promoted : 1; /* it is in the tables now */
    uint16_t id_len, key_len;
} pending_rec;

/* A fragment's entries, one after the other: at, the id's length and the
 * key's (16 bits each), then the id and the key. */
#define ENTRY_HEAD 12

struct sl_seen {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT_];
    char **inputs; /* names, by number */
    unsigned n_inputs;
    sl_buf owner;    /* the other record's id of the last verdict */
    sl_buf prev_key; /* the key a duplicate id named before */
    char errmsg[256];

    uint64_t *bloom;     /* BLOOM_BLOCKS blocks of 8 words */
    bool deferring;      /* records may be deferred (the filter grows) */
    uint64_t n_deferred; /* in all */
    pending_rec *pending;
    size_t n_pending;
    sl_buf pending_text;
    uint32_t *slots;  /* pending by hash: (index << 1 | kind) + 1; 0 free */
    size_t n_indexed; /* the first pending records, in `slots` */
    uint32_t starts[(1u << BUCKET_LOG) / FLUSH_PARTS + 1];
    uint64_t n_flushes; /* fragments were written by each */
    sl_buf frag;

    /* Tuned by the tests only (sl_seen_tune). */
    uint64_t hash_mask;
    size_t defer_batch;
    uint64_t defer_max;
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
    sl_buf_init(&s->pending_text);
    sl_buf_init(&s->frag);
    s->deferring = true;
    s->hash_mask = UINT64_MAX;
    s->defer_batch = DEFER_BATCH;
    s->defer_max = DEFER_MAX;
    s->bloom = sl_calloc(BLOOM_BLOCKS * 8, sizeof *s->bloom);
    s->pending = sl_calloc(DEFER_BATCH, sizeof *s->pending);
    s->slots = sl_calloc(SLOTS, sizeof *s->slots);
    if (!s->bloom || !s->pending || !s->slots) {
        sl_fmt(reason, reason_size, "out of memory");
        sl_seen_close(s);
        return SLUICE_ENOMEM;
    }
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
                          " PRIMARY KEY(key, id)) WITHOUT ROWID;"
                          "CREATE TABLE frags(n INTEGER PRIMARY KEY,"
                          " data BLOB NOT NULL)",
                          NULL, NULL, NULL);
    for (int i = 0; i < S_COUNT_ && rc == SQLITE_OK; i++)
        rc = sqlite3_prepare_v3(s->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                &s->st[i], NULL);
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
    sl_buf_free(&s->pending_text);
    sl_buf_free(&s->frag);
    sl_free(s->bloom);
    sl_free(s->pending);
    sl_free(s->slots);
    sl_free(s);
}

void
sl_seen_tune(sl_seen *s, uint64_t hash_mask, size_t defer_batch,
             uint64_t defer_max)
{
    s->hash_mask = hash_mask;
    s->defer_batch = defer_batch < DEFER_BATCH ? defer_batch : DEFER_BATCH;
    s->defer_max = defer_max;
    s->deferring = defer_batch > 0;
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

/* A text's hash as an id or as a key: eight bytes at a time, each word
 * mixed in by a multiply, then the finalizer of MurmurHash3 (every bit of
 * the text moves every bit of the hash). */
static uint64_t
text_hash(int kind, const char *text, size_t len)
{
    const uint64_t mul = UINT64_C(0x9e3779b97f4a7c15);
    uint64_t h =
        ((uint64_t)len << 1 | (uint64_t)kind) * UINT64_C(0xc2b2ae3d27d4eb4f);
    uint64_t word;
    for (; len >= 8; text += 8, len -= 8) {
        memcpy(&word, text, 8);
        h = (h ^ word) * mul;
        h ^= h >> 29;
    }
    if (len) {
        word = 0;
        memcpy(&word, text, len);
        h = (h ^ word) * mul;
        h ^= h >> 29;
    }
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

/* The hash deferred records are found by: the whole, but in the tests
 * (sl_seen_tune), where different texts share one. The filter always
 * takes the whole. */
static uint64_t
narrow(const sl_seen *s, uint64_t h)
{
    return h & s->hash_mask;
}

/* Whether the filter may have been given `h` (false: surely not). */
static bool
bloom_has(const sl_seen *s, uint64_t h)
{
    const uint64_t *block = s->bloom + (h & (BLOOM_BLOCKS - 1)) * 8;
    h >>= BLOOM_LOG - BLOCK_LOG;
    for (int i = 0; i < BLOOM_K; i++, h >>= BLOCK_LOG)
        if (!(block[(h & 511) >> 6] >> (h & 63) & 1))
            return false;
    return true;
}

static void
bloom_prefetch(const sl_seen *s, uint64_t h)
{
    __builtin_prefetch(s->bloom + (h & (BLOOM_BLOCKS - 1)) * 8);
}

static void
bloom_add(sl_seen *s, uint64_t h)
{
    uint64_t *block = s->bloom + (h & (BLOOM_BLOCKS - 1)) * 8;
    h >>= BLOOM_LOG - BLOCK_LOG;
    for (int i = 0; i < BLOOM_K; i++, h >>= BLOCK_LOG)
        block[(h & 511) >> 6] |= UINT64_C(1) << (h & 63);
}

static size_t
slot_of(uint64_t h)
{
    return (size_t)(h ^ h >> 29) & (SLOTS - 1);
}

static uint32_t
bucket_of(uint64_t h)
{
    return (uint32_t)(h >> (64 - BUCKET_LOG));
}

/* The fragment of flush `flush` for bucket `bucket` of `kind`. */
static int64_t
frag_number(uint64_t flush, int kind, uint32_t bucket)
{
    return (int64_t)(flush << (BUCKET_LOG + 1) | (uint64_t)kind << BUCKET_LOG |
                     bucket);
}

/* Whether a record may be deferred: the filter still grows, and its texts
 * are not too long. Past the most deferred, the filter is frozen. */
static bool
may_defer(sl_seen *s, unsigned n, size_t id_len, size_t key_len)
{
    if (s->deferring && s->n_deferred + n > s->defer_max)
        s->deferring = false;
    return s->deferring && id_len && id_len <= DEFER_TEXT && key_len &&
           key_len <= DEFER_TEXT;
}

/* Put a deferred record in the tables as its check there would have (it
 * repeated nothing), unless it is there already: its id is in the table
 * of ids if and only if it was promoted before, for a record whose id or
 * key was seen before is never deferred, and a deferred record is
 * promoted before any other record's check finds its id or key. */
static sluice_err
promote(sl_seen *s, const char *id, size_t id_len, const char *key,
        size_t key_len, int64_t at)
{
    int added = 0;
    sqlite3_stmt *st = s->st[S_INS_ID];
    bind_text(st, 1, id, id_len);
    sqlite3_bind_int64(st, 2, at);
    bind_text(st, 3, key, key_len);
    sluice_err err = exec(s, S_INS_ID, &added);
    if (err != SLUICE_OK || !added)
        return err;
    st = s->st[S_INS_KEY];
    bind_text(st, 1, key, key_len);
    sqlite3_bind_int64(st, 2, at);
    bind_text(st, 3, id, id_len);
    if ((err = exec(s, S_INS_KEY, &added)) != SLUICE_OK)
        return err;
    if (!added) {
        sl_fmt(s->errmsg, sizeof s->errmsg,
               "the ids and keys seen (a temporary file): a deferred"
               " record's key is in the table of keys already");
        return SLUICE_EDB;
    }
    return SLUICE_OK;
}

static const char *
pending_id(const sl_seen *s, const pending_rec *r)
{
    return s->pending_text.data + r->text;
}

static const char *
pending_key(const sl_seen *s, const pending_rec *r)
{
    return s->pending_text.data + r->text + r->id_len;
}

static void
slot_put(sl_seen *s, uint64_t h, uint32_t value)
{
    size_t i = slot_of(h);
    while (s->slots[i])
        i = (i + 1) & (SLOTS - 1);
    s->slots[i] = value;
}

/* The record in memory whose id (kind K_ID) or key is `text`, or NULL.
 * The records are put in `slots` only now, when one is looked for: most
 * never are (a clean feed's records are not). */
static pending_rec *
pending_find(sl_seen *s, int kind, const char *text, size_t len, uint64_t h)
{
    for (; s->n_indexed < s->n_pending; s->n_indexed++) {
        const pending_rec *r = &s->pending[s->n_indexed];
        uint32_t index = (uint32_t)s->n_indexed;
        slot_put(s, r->hash[K_ID], (index << 1 | K_ID) + 1);
        slot_put(s, r->hash[K_KEY], (index << 1 | K_KEY) + 1);
    }
    for (size_t i = slot_of(h);; i = (i + 1) & (SLOTS - 1)) {
        uint32_t v = s->slots[i];
        if (!v)
            return NULL;
        pending_rec *r = &s->pending[(v - 1) >> 1];
        const char *t = kind == K_ID ? pending_id(s, r) : pending_key(s, r);
        if ((int)((v - 1) & 1) == kind && r->hash[kind] == h &&
            (kind == K_ID ? r->id_len : r->key_len) == len &&
            memcmp(t, text, len) == 0)
            return r;
    }
}

/* The written-out record whose id (kind K_ID) or key is `text`, if any,
 * promoted unless it was before: the fragments of its bucket, one a
 * flush, searched. */
static sluice_err
promote_written(sl_seen *s, int kind, const char *text, size_t len, uint64_t h)
{
    sqlite3_stmt *st = s->st[S_GET_FRAG];
    for (uint64_t f = 0; f < s->n_flushes; f++) {
        sqlite3_bind_int64(st, 1, frag_number(f, kind, bucket_of(h)));
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
            sqlite3_reset(st);
            if (rc == SQLITE_DONE)
                continue; /* none of that flush in the bucket */
            return fail(s, rc, "read");
        }
        const unsigned char *p = sqlite3_column_blob(st, 0);
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        if (!p) {
            sqlite3_reset(st);
            return fail(s, SQLITE_NOMEM, "read");
        }
        for (size_t off = 0; off + ENTRY_HEAD <= n;) {
            int64_t at;
            uint16_t id_len, key_len;
            memcpy(&at, p + off, 8);
            memcpy(&id_len, p + off + 8, 2);
            memcpy(&key_len, p + off + 10, 2);
            const char *id = (const char *)p + off + ENTRY_HEAD;
            const char *key = id + id_len;
            off += ENTRY_HEAD + id_len + key_len;
            const char *t = kind == K_ID ? id : key;
            size_t t_len = kind == K_ID ? id_len : key_len;
            if (t_len == len && memcmp(t, text, len) == 0) {
                /* The only record deferred with it. */
                sluice_err err = promote(s, id, id_len, key, key_len, at);
                sqlite3_reset(st);
                return err;
            }
        }
        sqlite3_reset(st);
    }
    return SLUICE_OK;
}

/* The deferred record whose id (kind K_ID) or key is `text`, if any, in
 * the tables before a record naming it is checked there. */
static sluice_err
promote_deferred(sl_seen *s, int kind, const char *text, size_t len, uint64_t h)
{
    if (!s->n_deferred)
        return SLUICE_OK;
    pending_rec *r = pending_find(s, kind, text, len, h);
    if (!r)
        return promote_written(s, kind, text, len, h);
    if (r->promoted)
        return SLUICE_OK;
    sluice_err err = promote(s, pending_id(s, r), r->id_len, pending_key(s, r),
                             r->key_len, r->at);
    r->promoted = err == SLUICE_OK;
    return err;
}

/* Write out the fragments of one kind for buckets [lo, hi): the
 * entries are laid out bucket by bucket in one buffer, each record read
 * once and in order (random reads of the records would miss the cache at
 * each). */
static sluice_err
flush_buckets(sl_seen *s, int kind, uint32_t lo, uint32_t hi)
{
    sqlite3_stmt *st = s->st[S_PUT_FRAG];
    sluice_err err = SLUICE_OK;
    /* starts[b - lo]: where bucket b's entries begin, then, as they are
     * laid out, where the next goes: at last where the bucket ends. */
    memset(s->starts, 0, (hi - lo + 1) * sizeof *s->starts);
    for (size_t i = 0; i < s->n_pending; i++) {
        const pending_rec *r = &s->pending[i];
        uint32_t b = bucket_of(r->hash[kind]);
        if (!r->promoted && b >= lo && b < hi)
            s->starts[b - lo + 1] += ENTRY_HEAD + r->id_len + r->key_len;
    }
    for (uint32_t b = 0; b < hi - lo; b++)
        s->starts[b + 1] += s->starts[b];
    sl_buf_clear(&s->frag);
    if (sl_buf_reserve(&s->frag, s->starts[hi - lo]))
        return SLUICE_ENOMEM;
    for (size_t i = 0; i < s->n_pending; i++) {
        const pending_rec *r = &s->pending[i];
        uint32_t b = bucket_of(r->hash[kind]);
        if (r->promoted || b < lo || b >= hi)
            continue;
        char *e = s->frag.data + s->starts[b - lo];
        uint16_t id_len = r->id_len, key_len = r->key_len;
        memcpy(e, &r->at, 8);
        memcpy(e + 8, &id_len, 2);
        memcpy(e + 10, &key_len, 2);
        memcpy(e + ENTRY_HEAD, pending_id(s, r),
               (size_t)r->id_len + r->key_len);
        s->starts[b - lo] += ENTRY_HEAD + r->id_len + r->key_len;
    }
    uint32_t first = 0;
    for (uint32_t b = lo; b < hi && err == SLUICE_OK; b++) {
        uint32_t end = s->starts[b - lo];
        if (end == first)
            continue;
        sqlite3_bind_int64(st, 1, frag_number(s->n_flushes, kind, b));
        sqlite3_bind_blob(st, 2, s->frag.data + first, (int)(end - first),
                          SQLITE_STATIC);
        err = exec(s, S_PUT_FRAG, NULL);
        first = end;
    }
    return err;
}

/* Write the records in memory out, but those promoted: for each kind and
 * bucket one fragment, FLUSH_PARTS ranges of buckets at a time (so the
 * buffer they are laid out in is a part of one kind's entries). */
static sluice_err
flush(sl_seen *s)
{
    const uint32_t n_buckets = 1u << BUCKET_LOG;
    const uint32_t part = n_buckets / FLUSH_PARTS;
    sluice_err err = SLUICE_OK;
    for (int kind = K_ID; kind <= K_KEY && err == SLUICE_OK; kind++)
        for (uint32_t lo = 0; lo < n_buckets && err == SLUICE_OK; lo += part)
            err = flush_buckets(s, kind, lo, lo + part);
    if (err != SLUICE_OK)
        return err;
    s->n_flushes++;
    s->n_pending = 0;
    sl_buf_clear(&s->pending_text);
    if (s->n_indexed)
        memset(s->slots, 0, SLOTS * sizeof *s->slots);
    s->n_indexed = 0;
    return SLUICE_OK;
}

/* Defer a record that repeats nothing (the filter says so): in memory,
 * written out with the others when they are many. */
static sluice_err
defer(sl_seen *s, const char *id, size_t id_len, const char *key,
      size_t key_len, int64_t at, uint64_t id_hash, uint64_t key_hash)
{
    sluice_err err;
    if ((s->n_pending >= s->defer_batch ||
         s->pending_text.len + id_len + key_len > DEFER_BYTES) &&
        (err = flush(s)) != SLUICE_OK)
        return err;
    pending_rec *r = &s->pending[s->n_pending];
    *r = (pending_rec){{narrow(s, id_hash), narrow(s, key_hash)},
                       at,
                       (uint32_t)s->pending_text.len,
                       false,
                       (uint16_t)id_len,
                       (uint16_t)key_len};
    if (sl_buf_append(&s->pending_text, id, id_len) ||
        sl_buf_append(&s->pending_text, key, key_len))
        return SLUICE_ENOMEM;
    s->n_pending++;
    bloom_add(s, id_hash);
    bloom_add(s, key_hash);
    s->n_deferred++;
    return SLUICE_OK;
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
    uint64_t id_hash = text_hash(K_ID, id, id_len);
    uint64_t key_hash = text_hash(K_KEY, key, key_len);
    bool id_maybe = bloom_has(s, id_hash), key_maybe = bloom_has(s, key_hash);
    if (!id_maybe && !key_maybe && may_defer(s, 1, id_len, key_len))
        return defer(s, id, id_len, key, key_len, at, id_hash, key_hash);
    /* Whatever was deferred with this id or key is in the tables first,
     * where the check goes on. */
    if (id_maybe && (err = promote_deferred(s, K_ID, id, id_len,
                                            narrow(s, id_hash))) != SLUICE_OK)
        return err;
    if (key_maybe && (err = promote_deferred(s, K_KEY, key, key_len,
                                             narrow(s, key_hash))) != SLUICE_OK)
        return err;
    if (s->deferring) {
        bloom_add(s, id_hash);
        bloom_add(s, key_hash);
    }

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
    uint64_t id_hash[SL_SEEN_MANY], key_hash[SL_SEEN_MANY];
    *clean = false;
    /* The hashes first, and the filter's blocks they pick fetched
     * meanwhile: they are all over memory. */
    for (int r = 0; r < SL_SEEN_MANY; r++) {
        const sl_seen_record *rec = &recs[r];
        if (!may_defer(s, SL_SEEN_MANY, rec->id_len, rec->key_len))
            return SLUICE_OK;
        id_hash[r] = text_hash(K_ID, rec->id, rec->id_len);
        key_hash[r] = text_hash(K_KEY, rec->key, rec->key_len);
        bloom_prefetch(s, id_hash[r]);
        bloom_prefetch(s, key_hash[r]);
    }
    /* None may have been seen, nor repeat another of them: those before
     * it are in `ids` and `keys` by hash (r + 1; 0 free). */
    uint8_t ids[4 * SL_SEEN_MANY] = {0}, keys[4 * SL_SEEN_MANY] = {0};
    const size_t mask = 4 * SL_SEEN_MANY - 1;
    for (int r = 0; r < SL_SEEN_MANY; r++) {
        const sl_seen_record *rec = &recs[r];
        if (bloom_has(s, id_hash[r]) || bloom_has(s, key_hash[r]))
            return SLUICE_OK;
        size_t i = (size_t)narrow(s, id_hash[r]) & mask;
        for (; ids[i]; i = (i + 1) & mask) {
            const sl_seen_record *q = &recs[ids[i] - 1];
            if (narrow(s, id_hash[ids[i] - 1]) == narrow(s, id_hash[r]) &&
                q->id_len == rec->id_len &&
                memcmp(q->id, rec->id, rec->id_len) == 0)
                return SLUICE_OK;
        }
        ids[i] = (uint8_t)(r + 1);
        for (i = (size_t)narrow(s, key_hash[r]) & mask; keys[i];
             i = (i + 1) & mask) {
            const sl_seen_record *q = &recs[keys[i] - 1];
            if (narrow(s, key_hash[keys[i] - 1]) == narrow(s, key_hash[r]) &&
                q->key_len == rec->key_len &&
                memcmp(q->key, rec->key, rec->key_len) == 0)
                return SLUICE_OK;
        }
        keys[i] = (uint8_t)(r + 1);
    }
    for (int r = 0; r < SL_SEEN_MANY; r++) {
        const sl_seen_record *rec = &recs[r];
        sluice_err err = defer(s, rec->id, rec->id_len, rec->key, rec->key_len,
                               at_of(s, rec->line), id_hash[r], key_hash[r]);
        if (err != SLUICE_OK)
            return err;
    }
    *clean = true;
    return SLUICE_OK;
}
