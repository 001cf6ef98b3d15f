/*
 * The checker's record of what an ingest has seen (lib/source/seen.c),
 * alone: records it defers (in memory, then written out as fragments)
 * must get the verdicts they would have got checked in the tables, with
 * hashes that collide (a tiny hash), many flushes, and the filter frozen
 * midway. The reference is the same code told never to defer.
 */
#include "source/seen.h"
#include "test.h"

/* Records checked together, as ingest does (a chunk, a transaction). */
#define CHUNK 1024

typedef struct {
    char id[32], key[32];
    uint64_t line;
} rec;

typedef struct {
    bool dup_id, shared_key;
    char id_file[32], key_file[32], key_id[32];
    uint64_t id_line, key_line;
} verdict;

static uint64_t rng;

static unsigned
next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng >> 11);
}

/*
 * A feed of `n` records: clean stretches (new ids, keys derived from
 * them), busy ones (ids and keys from small pools), and new ids now and
 * then naming a pooled key, so that deferred records are found again by
 * their id and by their key, in memory and written out.
 */
static rec *
make_feed(int n)
{
    rec *f = calloc((size_t)n, sizeof *f);
    ASSERT_NOT_NULL(f);
    rng = 88172645463325252ull; /* the same feed each time */
    for (int i = 0; i < n; i++) {
        int id, key = -1;
        switch ((i / 700) % 4) {
        case 0:
        case 2:
            id = 100000 + i;
            if (next_rand() % 50 == 0)
                key = (int)(next_rand() % 60);
            break;
        case 1:
            /* Ids of the clean stretches again, and a small pool. */
            id = next_rand() % 2 ? 100000 + (int)(next_rand() % (unsigned)i)
                                 : (int)(next_rand() % 300);
            if (next_rand() % 3 == 0)
                key = (int)(next_rand() % 60);
            break;
        default:
            id = 200000 + i;
            if (next_rand() % 20 == 0) /* an earlier record's key */
                snprintf(f[i].key, sizeof f[i].key, "i%d.jpg",
                         100000 + (int)(next_rand() % (unsigned)i));
        }
        snprintf(f[i].id, sizeof f[i].id, "i%d", id);
        if (key >= 0)
            snprintf(f[i].key, sizeof f[i].key, "k%d", key);
        else if (!f[i].key[0])
            snprintf(f[i].key, sizeof f[i].key, "i%d.jpg", id);
        f[i].line = (uint64_t)(i % (n / 2)) + 1;
    }
    return f;
}

static void
keep(verdict *out, const sl_seen_verdict *v)
{
    memset(out, 0, sizeof *out);
    out->dup_id = v->dup_id;
    out->shared_key = v->shared_key;
    if (v->dup_id) {
        snprintf(out->id_file, sizeof out->id_file, "%s", v->id_file);
        out->id_line = v->id_line;
    }
    if (v->shared_key) {
        snprintf(out->key_file, sizeof out->key_file, "%s", v->key_file);
        snprintf(out->key_id, sizeof out->key_id, "%s", v->key_id);
        out->key_line = v->key_line;
    }
}

static void
check_one(sl_seen *s, const rec *r, bool strict, verdict *out)
{
    sl_seen_verdict v;
    ASSERT_EQ(sl_seen_check(s, r->id, strlen(r->id), r->key, strlen(r->key),
                            r->line, strict, &v),
              SLUICE_OK);
    keep(out, &v);
}

/*
 * Check the feed as ingest's checker does: SL_SEEN_MANY at once while
 * none repeats anything, else one by one; two inputs, the second from
 * the middle on. Returns how many batches were clean.
 */
static int
run(sl_seen *s, const rec *f, int n, bool strict, verdict *out)
{
    int clean_batches = 0;
    ASSERT_EQ(sl_seen_input(s, "a.jsonl"), SLUICE_OK);
    for (int base = 0; base < n; base += CHUNK) {
        int end = base + CHUNK < n ? base + CHUNK : n;
        ASSERT_EQ(sl_seen_begin(s), SLUICE_OK);
        int i = base;
        while (i < end) {
            if (i == n / 2)
                ASSERT_EQ(sl_seen_input(s, "b.jsonl"), SLUICE_OK);
            int stop = i + SL_SEEN_MANY;
            if (stop > end || (i < n / 2 && stop > n / 2)) {
                check_one(s, &f[i], strict, &out[i]);
                i++;
                continue;
            }
            sl_seen_record many[SL_SEEN_MANY];
            for (int r = 0; r < SL_SEEN_MANY; r++)
                many[r] = (sl_seen_record){f[i + r].id, strlen(f[i + r].id),
                                           f[i + r].key, strlen(f[i + r].key),
                                           f[i + r].line};
            bool clean = false;
            ASSERT_EQ(sl_seen_check_many(s, many, &clean), SLUICE_OK);
            if (clean) {
                memset(&out[i], 0, SL_SEEN_MANY * sizeof *out);
                clean_batches++;
            } else {
                for (int r = 0; r < SL_SEEN_MANY; r++)
                    check_one(s, &f[i + r], strict, &out[i + r]);
            }
            i = stop;
        }
        ASSERT_EQ(sl_seen_commit(s), SLUICE_OK);
    }
    return clean_batches;
}

static void
same_verdicts(const rec *f, int n, const verdict *want, const verdict *got)
{
    for (int i = 0; i < n; i++) {
        const verdict *w = &want[i], *g = &got[i];
        if (w->dup_id != g->dup_id || w->shared_key != g->shared_key ||
            strcmp(w->id_file, g->id_file) != 0 || w->id_line != g->id_line ||
            strcmp(w->key_file, g->key_file) != 0 ||
            w->key_line != g->key_line || strcmp(w->key_id, g->key_id) != 0)
            TEST_FAIL_("record %d (id %s, key %s): want dup %d at %s:%" PRIu64
                       " shared %d at %s:%" PRIu64 " (id %s); got dup %d at"
                       " %s:%" PRIu64 " shared %d at %s:%" PRIu64 " (id %s)",
                       i, f[i].id, f[i].key, w->dup_id, w->id_file, w->id_line,
                       w->shared_key, w->key_file, w->key_line, w->key_id,
                       g->dup_id, g->id_file, g->id_line, g->shared_key,
                       g->key_file, g->key_line, g->key_id);
    }
}

static sl_seen *
open_seen(uint64_t hash_mask, size_t defer_batch, uint64_t defer_max)
{
    char why[256];
    sl_seen *s = NULL;
    ASSERT_EQ(sl_seen_open(&s, why, sizeof why), SLUICE_OK);
    sl_seen_tune(s, hash_mask, defer_batch, defer_max);
    return s;
}

#define FEED_N 12000

/* The verdicts of a tuned seen against those of one that never defers,
 * strict and not. */
static void
against_reference(uint64_t hash_mask, size_t defer_batch, uint64_t defer_max,
                  int min_clean)
{
    rec *f = make_feed(FEED_N);
    verdict *want = calloc(FEED_N, sizeof *want);
    verdict *got = calloc(FEED_N, sizeof *got);
    ASSERT(want && got);
    for (int strict = 0; strict < 2; strict++) {
        sl_seen *ref = open_seen(UINT64_MAX, 0, 0);
        ASSERT_EQ(run(ref, f, FEED_N, strict, want), 0);
        sl_seen_close(ref);
        sl_seen *s = open_seen(hash_mask, defer_batch, defer_max);
        int clean = run(s, f, FEED_N, strict, got);
        sl_seen_close(s);
        ASSERT_GE(clean, min_clean);
        same_verdicts(f, FEED_N, want, got);
        int dups = 0, shared = 0;
        for (int i = 0; i < FEED_N; i++) {
            dups += want[i].dup_id;
            shared += want[i].shared_key;
        }
        /* The feed repeats much, deferred records among the repeated. */
        ASSERT_GT(dups, 1000);
        ASSERT_GT(shared, 300);
    }
    free(f);
    free(want);
    free(got);
}

TEST(deferred_records_in_memory_get_the_tables_verdicts)
{
    against_reference(UINT64_MAX, 1u << 20, UINT64_MAX, 40);
}

TEST(deferred_records_written_out_get_the_tables_verdicts)
{
    /* A flush every 100 records deferred: some 60 flushes. */
    against_reference(UINT64_MAX, 100, UINT64_MAX, 40);
}

TEST(colliding_hashes_get_the_tables_verdicts)
{
    /* Deferred records found among others of their hash: 4096 hashes,
     * then 16, then one for every text. */
    against_reference(0xfff, 100, UINT64_MAX, 40);
    against_reference(0xf, 30, UINT64_MAX, 40);
    against_reference(0, 30, UINT64_MAX, 40);
}

TEST(a_frozen_filter_gets_the_tables_verdicts)
{
    /* Deferring stops after 1000 records; those stay findable. */
    against_reference(UINT64_MAX, 100, 1000, 10);
}

/* Two ids of one hash: each is itself, in memory and written out. */
TEST(a_hash_collision_is_no_duplicate)
{
    for (size_t batch = 1; batch <= 1000; batch += 999) {
        sl_seen *s = open_seen(0, batch, UINT64_MAX);
        ASSERT_EQ(sl_seen_input(s, "f"), SLUICE_OK);
        sl_seen_record many[SL_SEEN_MANY];
        char ids[SL_SEEN_MANY][16], keys[SL_SEEN_MANY][16];
        for (int r = 0; r < SL_SEEN_MANY; r++) {
            snprintf(ids[r], sizeof ids[r], "a%d", r);
            snprintf(keys[r], sizeof keys[r], "a%d.jpg", r);
            many[r] = (sl_seen_record){ids[r], strlen(ids[r]), keys[r],
                                       strlen(keys[r]), (uint64_t)r + 1};
        }
        bool clean = false;
        ASSERT_EQ(sl_seen_check_many(s, many, &clean), SLUICE_OK);
        ASSERT(clean);
        sl_seen_verdict v;
        /* Another id and key, the same hash: new. */
        ASSERT_EQ(sl_seen_check(s, "b", 1, "b.jpg", 5, 100, true, &v),
                  SLUICE_OK);
        ASSERT(!v.dup_id && !v.shared_key);
        /* A deferred record's id, with another's key. */
        ASSERT_EQ(sl_seen_check(s, "a7", 2, "a9.jpg", 6, 101, false, &v),
                  SLUICE_OK);
        ASSERT(v.dup_id);
        ASSERT_EQ(v.id_line, 8);
        ASSERT_STR_EQ(v.id_file, "f");
        ASSERT(v.shared_key);
        ASSERT_EQ(v.key_line, 10);
        ASSERT_STR_EQ(v.key_id, "a9");
        /* a7 gave a7.jpg up: free again. */
        ASSERT_EQ(sl_seen_check(s, "c", 1, "a7.jpg", 6, 102, true, &v),
                  SLUICE_OK);
        ASSERT(!v.dup_id && !v.shared_key);
        sl_seen_close(s);
    }
}

/* An id too long to defer (past 16 bits of length) is checked in the
 * tables, and its batch with it; its repeat is found. */
TEST(a_long_id_is_checked_in_the_tables)
{
    size_t long_len = 70000;
    char *long_id = malloc(long_len + 1);
    ASSERT_NOT_NULL(long_id);
    memset(long_id, 'x', long_len);
    long_id[long_len] = '\0';
    sl_seen *s = open_seen(UINT64_MAX, 1000, UINT64_MAX);
    ASSERT_EQ(sl_seen_input(s, "f"), SLUICE_OK);
    sl_seen_record many[SL_SEEN_MANY];
    char ids[SL_SEEN_MANY][16];
    for (int r = 0; r < SL_SEEN_MANY; r++) {
        snprintf(ids[r], sizeof ids[r], "a%d", r);
        many[r] = (sl_seen_record){ids[r], strlen(ids[r]), ids[r],
                                   strlen(ids[r]), (uint64_t)r + 1};
    }
    many[5].id = long_id;
    many[5].id_len = long_len;
    bool clean = true;
    ASSERT_EQ(sl_seen_check_many(s, many, &clean), SLUICE_OK);
    ASSERT(!clean);
    sl_seen_verdict v;
    for (int r = 0; r < SL_SEEN_MANY; r++) {
        ASSERT_EQ(sl_seen_check(s, many[r].id, many[r].id_len, many[r].key,
                                many[r].key_len, many[r].line, false, &v),
                  SLUICE_OK);
        ASSERT(!v.dup_id && !v.shared_key);
    }
    ASSERT_EQ(sl_seen_check(s, long_id, long_len, "z", 1, 100, false, &v),
              SLUICE_OK);
    ASSERT(v.dup_id);
    ASSERT_EQ(v.id_line, 6);
    ASSERT_EQ(sl_seen_check(s, "a6", 2, "z", 1, 101, false, &v), SLUICE_OK);
    ASSERT(v.dup_id);
    ASSERT_EQ(v.id_line, 7);
    ASSERT(v.shared_key);
    ASSERT_EQ(v.key_line, 100);
    ASSERT_EQ(strlen(v.key_id), long_len);
    sl_seen_close(s);
    free(long_id);
}
