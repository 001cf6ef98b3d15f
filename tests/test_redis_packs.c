/*
 * Packs on the Redis queue (lib/queue/queue_redis_pack.c): a feed's
 * first ingest into an empty queue writes its records as packs; the
 * lease unpacks them in feed order as it needs them, with origins to
 * skip too; lookups by id see every record, and lists too, reading
 * the packs where they are; a repeated id,
 * another writer or a queue that held records already make the feed
 * look its ids up, and nothing is added twice.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"
#include "queue/queue_redis.h"
#include "redis_server.h"
#include "test.h"

#define T0 1700000000000LL

/* Texts of the records a test makes, by number. */
static char ids[4000][16], urls[4000][64];

/* Record k: id pK, on origin a below `b_from`, else b; its url carries
 * `version` so that a new version is a new url. */
static sl_record
rec(int k, int b_from, int version, bool first)
{
    const char *host = k < b_from ? "a.example" : "b.example";
    snprintf(ids[k], sizeof ids[k], "p%d", k);
    snprintf(urls[k], sizeof urls[k], "http://%s/%d/v%d.jpg", host, k,
             version);
    const char *origin =
        k < b_from ? "http://a.example:80" : "http://b.example:80";
    return (sl_record){ids[k],  strlen(ids[k]), urls[k], strlen(urls[k]),
                       ids[k],  strlen(ids[k]), origin,  strlen(origin),
                       NULL,    0,              first};
}

/* Records from..to (first as said) in one batch; returns its stats. */
static sluice_ingest_stats
batch(sluice_queue *q, int from, int to, int b_from, bool first)
{
    static sl_record r[4000];
    for (int k = from; k < to; k++)
        r[k - from] = rec(k, b_from, 1, first);
    sluice_ingest_stats st = {0};
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_upsert(q, r, (size_t)(to - from), T0, &st), SLUICE_OK);
    ASSERT_EQ(sl_queue_commit(q), SLUICE_OK);
    return st;
}

static sluice_queue *
open_queue(const char *loc)
{
    char why[600];
    sluice_queue *q = NULL;
    if (sluice_queue_open(loc, NULL, &q, why, sizeof why) != SLUICE_OK)
        TEST_FAIL_("open %s: %s", loc, why);
    return q;
}

#define KEY(k) "sluice:{q}:" k

/* The packs a batch of n records makes. */
#define PACKS(n) (((n) + SL_RQ_PACK_RECORDS - 1) / SL_RQ_PACK_RECORDS)

/* Packs in the queue: each is its records and its "q:RID" head. */
static long long
n_packs(const char *loc)
{
    long long fields = test_redis_int(loc, "HLEN " KEY("packs"));
    ASSERT_EQ(fields % 2, 0);
    return fields / 2;
}

/* HGET key field at `loc`, binary-safe; "" for none. */
static const char *
hget(const char *loc, const char *key, const char *field)
{
    static char got[512];
    redisContext *c = redisConnectUnix(loc + strlen("unix://"));
    ASSERT(c && !c->err);
    redisReply *r = redisCommand(c, "HGET %s %s", key, field);
    ASSERT(r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL));
    snprintf(got, sizeof got, "%.*s", (int)r->len, r->str ? r->str : "");
    freeReplyObject(r);
    redisFree(c);
    return got;
}

typedef struct {
    int n;
    bool in_order;
} listing;

static int
check_order(void *ctx, const sluice_record *r)
{
    listing *l = ctx;
    char want[16];
    snprintf(want, sizeof want, "p%d", l->n++);
    l->in_order = l->in_order && strcmp(r->id, want) == 0;
    return 0;
}

TEST(a_packed_ingest_reads_as_records_do)
{
    char loc[300];
    test_redis_start(loc, sizeof loc, NULL);
    /* A queue of schema 1 (before packs) takes them and becomes 4. */
    test_redis_int(loc, "HSET " KEY("meta") " app sluice version 1 rid 0");
    sluice_queue *q = open_queue(loc);
    sl_queue_feed_start(q);
    sluice_ingest_stats st = batch(q, 0, 2500, 4000, true);
    ASSERT_EQ(st.added, 2500);
    ASSERT_EQ(n_packs(loc), PACKS(2500));
    ASSERT_EQ(test_redis_int(loc, "HGET " KEY("meta") " tail"), 0);
    ASSERT_EQ(test_redis_int(loc, "HGET " KEY("meta") " version"),
              SL_REDIS_SCHEMA);
    ASSERT_EQ(test_redis_int(loc, "EXISTS " KEY("r:1")), 0);
    sluice_counts c;
    ASSERT_EQ(sluice_queue_counts(q, &c), SLUICE_OK);
    ASSERT_EQ(c.pending, 2500);
    ASSERT_EQ(c.total, 2500);
    /* The oldest pending record is packed: its age comes from its pack. */
    ASSERT(c.oldest_pending_age >= 0);
    st = batch(q, 2500, 2800, 4000, true);
    ASSERT_EQ(st.added, 300);
    ASSERT_EQ(n_packs(loc), PACKS(2500) + PACKS(300));
    /* A lookup by id finds the record in its pack, unpacking nothing. */
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, "p2700", &info), SLUICE_OK);
    ASSERT_STR_EQ(info.url, "http://a.example/2700/v1.jpg");
    ASSERT_STR_EQ(info.origin, "http://a.example:80");
    ASSERT_EQ(info.state, SL_STATE_PENDING);
    sl_record_info_clear(&info);
    ASSERT_EQ(sl_queue_get(q, "p2800", &info), SLUICE_ENOTFOUND);
    ASSERT_EQ(n_packs(loc), PACKS(2500) + PACKS(300));
    /* Unpacked, they are hashes and index entries like any. */
    ASSERT_EQ(sl_rq_unpack_all(q), SLUICE_OK);
    ASSERT_EQ(n_packs(loc), 0);
    ASSERT_EQ(test_redis_int(loc, "HEXISTS " KEY("meta") " tail"), 0);
    ASSERT_EQ(test_redis_int(loc, "HLEN " KEY("ids")), 2800);
    /* Each id maps to "RID:FP", the fingerprint the unpacking script
     * made as the client makes it: an ingest of the same records again
     * finds them unchanged by the lookup alone. */
    for (int k = 0; k < 2800; k += 311) {
        char want[64], fp[FP_HEX + 1];
        sl_record r = rec(k, 4000, 1, true);
        sl_rq_fingerprint(sl_rq_state(q), &r, fp);
        snprintf(want, sizeof want, "%d:%s", k + 1, fp);
        ASSERT_STR_EQ(hget(loc, KEY("ids"), ids[k]), want);
    }
    ASSERT_EQ(test_redis_int(loc, "ZCARD " KEY("pending")), 2800);
    ASSERT_EQ(test_redis_int(loc, "ZCARD " KEY("po:http://a.example:80")),
              2800);
    ASSERT_EQ(test_redis_int(loc, "HGET " KEY("counts") " s0"), 2800);
    listing l = {0, true};
    ASSERT_EQ(sluice_list(q, NULL, check_order, &l), SLUICE_OK);
    ASSERT_EQ(l.n, 2800);
    ASSERT(l.in_order);
    sluice_queue_close(q);
}

/* Lease until nothing comes; each id must come once. Returns how many
 * leases, and whether each call's came in feed order. */
static int
lease_all(sluice_queue *q, bool *seen, bool *in_order)
{
    int total = 0;
    for (;;) {
        sl_lease l[500];
        size_t n = 0;
        sl_lease_req req = {500, T0, 60000, NULL, 0};
        ASSERT_EQ(sl_queue_lease(q, &req, l, &n), SLUICE_OK);
        if (n == 0)
            return total;
        int last = -1;
        for (size_t i = 0; i < n; i++) {
            int k = atoi(l[i].id + 1);
            ASSERT(!seen[k]);
            seen[k] = true;
            *in_order = *in_order && k > last;
            last = k;
            sl_lease_clear(&l[i]);
        }
        total += (int)n;
    }
}

/* A Redis of the test's own (its location into loc) and a queue on it,
 * with the runner's claim, holding p0..p2999 in packs, those from b_from
 * on origin b. */
static sluice_queue *
three_packs(char *loc, size_t size, int b_from)
{
    test_redis_start(loc, size, NULL);
    sluice_queue *q = open_queue(loc);
    ASSERT_EQ(sl_queue_acquire_runner(q), SLUICE_OK);
    sl_queue_feed_start(q);
    ASSERT_EQ(batch(q, 0, 3000, b_from, true).added, 3000);
    ASSERT_EQ(n_packs(loc), PACKS(3000));
    return q;
}

/* Lease `want` records at T0 into l[], and get as many. */
static void
lease_into(sluice_queue *q, sl_lease *l, size_t want)
{
    size_t n = 0;
    sl_lease_req req = {want, T0, 60000, NULL, 0};
    ASSERT_EQ(sl_queue_lease(q, &req, l, &n), SLUICE_OK);
    ASSERT_EQ(n, want);
}

TEST(leases_unpack_as_they_go_in_feed_order)
{
    char loc[300];
    sluice_queue *q = three_packs(loc, sizeof loc, 2000);
    sl_lease l[100];
    size_t n = 100;
    lease_into(q, l, n);
    for (size_t i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof want, "p%zu", i);
        ASSERT_STR_EQ(l[i].id, want);
        ASSERT_EQ(l[i].token, 1);
    }
    /* Leased straight from a pack, they are marked as any other: done
     * under their token, given back, and not under another token. */
    sl_object_info obj = {5, "0000000000000000000000000000000000000000000"
                             "000000000000000000000",
                          NULL, NULL};
    ASSERT_EQ(sl_queue_complete(q, &l[0], &obj, T0), SLUICE_OK);
    ASSERT_EQ(sl_queue_release(q, &l[1], T0), SLUICE_OK);
    l[2].token = 9;
    ASSERT_EQ(sl_queue_complete(q, &l[2], &obj, T0), SLUICE_ENOTFOUND);
    for (size_t i = 0; i < n; i++)
        sl_lease_clear(&l[i]);
    sluice_counts c;
    ASSERT_EQ(sluice_queue_counts(q, &c), SLUICE_OK);
    ASSERT_EQ(c.done, 1);
    ASSERT_EQ(c.in_flight, 98);
    ASSERT_EQ(c.pending, 2901);
    /* They came straight from the first pack, whose rest stays in it
     * (meta's pack and pack_at say where); `packed` counts what is left
     * by origin. */
    ASSERT_EQ(n_packs(loc), PACKS(3000));
    ASSERT_EQ(test_redis_int(loc, "HGET " KEY("meta") " tail"), 100);
    ASSERT_EQ(test_redis_int(loc, "HGET " KEY("meta") " pack"), 1);
    ASSERT_GT(test_redis_int(loc, "HGET " KEY("meta") " pack_at"), 100);
    ASSERT_EQ(test_redis_int(loc, "EXISTS " KEY("r:101")), 0);
    ASSERT_EQ(test_redis_int(loc, "ZCARD " KEY("pending")), 1);
    ASSERT_EQ(test_redis_int(loc, "ZCARD " KEY("inflight")), 98);
    ASSERT_EQ(test_redis_int(loc, "HLEN " KEY("ids")), 100);
    ASSERT_EQ(test_redis_int(loc, "HGET " KEY("packed") " http://a.example:80"),
              2000 - 100);
    ASSERT_EQ(test_redis_int(loc, "HGET " KEY("packed") " http://b.example:80"),
              1000);
    /* Origin a skipped: b's first record is packs on (the first's
     * rest, then those after it). */
    const char *skip[] = {"http://a.example:80"};
    sl_lease_req skip_a = {1, T0, 60000, skip, 1};
    ASSERT_EQ(sl_queue_lease(q, &skip_a, l, &n), SLUICE_OK);
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(l[0].id, "p2000");
    sl_lease_clear(&l[0]);
    /* It unpacked up to the pack that ends with b's first 48 records
     * (2,048 is a whole number of packs). */
    ASSERT_EQ(n_packs(loc), PACKS(3000) - 2048 / SL_RQ_PACK_RECORDS);
    ASSERT_EQ(test_redis_int(loc, "HEXISTS " KEY("meta") " pack"), 0);
    ASSERT_EQ(test_redis_int(loc, "HLEN " KEY("packed")), 1);
    ASSERT_EQ(test_redis_int(loc, "HGET " KEY("packed") " http://b.example:80"),
              1000 - 48);
    /* The rest, the one given back (p1) first. */
    static bool seen[3000];
    for (int k = 0; k < 100; k++)
        seen[k] = k != 1;
    seen[2000] = true;
    bool in_order = true;
    ASSERT_EQ(lease_all(q, seen, &in_order), 2900);
    ASSERT(in_order);
    for (int k = 0; k < 3000; k++)
        ASSERT(seen[k]);
    ASSERT_EQ(sluice_queue_counts(q, &c), SLUICE_OK);
    ASSERT_EQ(c.in_flight, 2999);
    ASSERT_EQ(c.done, 1);
    ASSERT_EQ(c.pending, 0);
    ASSERT_EQ(c.oldest_pending_age, -1);
    ASSERT_EQ(n_packs(loc), 0);
    sluice_queue_close(q);
}

/* A lease that skips the only origin the packs hold unpacks nothing:
 * the run skips an origin whenever it has enough of its records. */
TEST(a_skipped_origin_alone_in_the_packs_leaves_them_packed)
{
    char loc[300];
    sluice_queue *q = three_packs(loc, sizeof loc, 4000);
    sl_lease l[10];
    size_t n = 0;
    sl_lease_req req = {10, T0, 60000, NULL, 0};
    ASSERT_EQ(sl_queue_lease(q, &req, l, &n), SLUICE_OK);
    ASSERT_EQ(n, 10);
    for (size_t i = 0; i < n; i++)
        sl_lease_clear(&l[i]);
    ASSERT_EQ(n_packs(loc), PACKS(3000));
    const char *skip[] = {"http://a.example:80"};
    sl_lease_req skip_a = {10, T0, 60000, skip, 1};
    ASSERT_EQ(sl_queue_lease(q, &skip_a, l, &n), SLUICE_OK);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(n_packs(loc), PACKS(3000));
    ASSERT_EQ(test_redis_int(loc, "HGET " KEY("meta") " tail"), 10);
    sluice_queue_close(q);
}

TEST(a_repeated_id_is_looked_up_and_packing_goes_on)
{
    char loc[300];
    test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *q = open_queue(loc);
    sl_queue_feed_start(q);
    ASSERT_EQ(batch(q, 0, 100, 4000, true).added, 100);
    ASSERT_EQ(n_packs(loc), 1);
    /* p5 again with a new url (the checker says it is not its first),
     * and 50 new ones: the batch is looked up, after unpacking. */
    static sl_record r[51];
    r[0] = rec(5, 4000, 2, false);
    for (int k = 100; k < 150; k++)
        r[k - 99] = rec(k, 4000, 1, true);
    sluice_ingest_stats st = {0};
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_upsert(q, r, 51, T0, &st), SLUICE_OK);
    ASSERT_EQ(sl_queue_commit(q), SLUICE_OK);
    ASSERT_EQ(st.added, 50);
    ASSERT_EQ(st.updated, 1);
    ASSERT_EQ(n_packs(loc), 0);
    ASSERT_EQ(test_redis_int(loc, "EXISTS " KEY("r:150")), 1);
    /* Every record is still this feed's: the next batch is packed. */
    ASSERT_EQ(batch(q, 150, 200, 4000, true).added, 50);
    ASSERT_EQ(n_packs(loc), 1);
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, "p5", &info), SLUICE_OK);
    ASSERT_STR_EQ(info.url, "http://a.example/5/v2.jpg");
    sl_record_info_clear(&info);
    sluice_counts c;
    ASSERT_EQ(sluice_queue_counts(q, &c), SLUICE_OK);
    ASSERT_EQ(c.total, 200);
    /* p150..p199 are still packed; their ids go in `ids` unpacked. */
    ASSERT_EQ(test_redis_int(loc, "HLEN " KEY("ids")), 150);
    ASSERT_EQ(sl_rq_unpack_all(q), SLUICE_OK);
    ASSERT_EQ(test_redis_int(loc, "HLEN " KEY("ids")), 200);
    sluice_queue_close(q);
}

TEST(another_writer_makes_a_feed_look_its_ids_up)
{
    char loc[300];
    test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *a = open_queue(loc), *b = open_queue(loc);
    sl_queue_feed_start(a);
    ASSERT_EQ(batch(a, 0, 10, 4000, true).added, 10);
    ASSERT_EQ(n_packs(loc), 1);
    /* b's feed starts on a queue that holds records: no packs; its
     * lookup unpacks a's first. */
    sl_queue_feed_start(b);
    ASSERT_EQ(batch(b, 10, 11, 4000, true).added, 1);
    ASSERT_EQ(n_packs(loc), 0);
    ASSERT_EQ(test_redis_int(loc, "EXISTS " KEY("r:11")), 1);
    /* a's feed names p10 for the first time, but b put it in: a looks
     * its ids up now, and p10 is one record. */
    sluice_ingest_stats st = batch(a, 10, 20, 4000, true);
    ASSERT_EQ(st.added, 9);
    ASSERT_EQ(st.unchanged, 1);
    ASSERT_EQ(n_packs(loc), 0);
    ASSERT_EQ(test_redis_int(loc, "HGET " KEY("meta") " rid"), 20);
    ASSERT_EQ(test_redis_int(loc, "HLEN " KEY("ids")), 20);
    /* A new feed on a queue with records is never packed. */
    sl_queue_feed_start(a);
    ASSERT_EQ(batch(a, 20, 30, 4000, true).added, 10);
    ASSERT_EQ(n_packs(loc), 0);
    sluice_counts c;
    ASSERT_EQ(sluice_queue_counts(a, &c), SLUICE_OK);
    ASSERT_EQ(c.total, 30);
    sluice_queue_close(a);
    sluice_queue_close(b);
}

/* A listing as text, a line a record, and what to do on the way. */
typedef struct {
    char *text;
    size_t len, n;
    sluice_queue *other; /* leases LATE records at record AT, once */
    size_t at, late;
} list_text;

static int
append_record(void *ctx, const sluice_record *r)
{
    list_text *t = ctx;
    char line[512];
    int k = snprintf(line, sizeof line, "%s|%d|%s|%s|%s|%lld|%u\n", r->id,
                     (int)r->state, r->url, r->key, r->meta ? r->meta : "-",
                     (long long)r->size, r->attempts);
    ASSERT(k > 0 && (size_t)k < sizeof line);
    t->text = realloc(t->text, t->len + (size_t)k + 1);
    ASSERT_NOT_NULL(t->text);
    memcpy(t->text + t->len, line, (size_t)k + 1);
    t->len += (size_t)k;
    if (++t->n == t->at && t->other) {
        static sl_lease l[600];
        size_t n = 0;
        sl_lease_req req = {t->late, T0, 60000, NULL, 0};
        ASSERT_EQ(sl_queue_lease(t->other, &req, l, &n), SLUICE_OK);
        ASSERT_EQ(n, t->late);
        for (size_t i = 0; i < n; i++)
            sl_lease_clear(&l[i]);
    }
    return 0;
}

static list_text
list_of(sluice_queue *q, int state)
{
    list_text t = {0};
    sluice_list_filter f = {state};
    ASSERT_EQ(sluice_list(q, &f, append_record, &t), SLUICE_OK);
    return t;
}

/* Records 0..n, every third with meta, as one first-seen batch. */
static void
batch_with_meta(sluice_queue *q, int n)
{
    static sl_record r[1000];
    static char metas[1000][32];
    for (int k = 0; k < n; k++) {
        r[k] = rec(k, 600, 1, true);
        if (k % 3 == 0) {
            snprintf(metas[k], sizeof metas[k], "{\"n\":%d}", k);
            r[k].meta = metas[k];
            r[k].meta_len = strlen(metas[k]);
        }
    }
    sluice_ingest_stats st = {0};
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_upsert(q, r, (size_t)n, T0, &st), SLUICE_OK);
    ASSERT_EQ(sl_queue_commit(q), SLUICE_OK);
    ASSERT_EQ(st.added, (uint64_t)n);
}

TEST(a_list_reads_packed_records_where_they_are)
{
    char loc[300];
    test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *q = open_queue(loc);
    ASSERT_EQ(sl_queue_acquire_runner(q), SLUICE_OK);
    sl_queue_feed_start(q);
    batch_with_meta(q, 1000);
    ASSERT_EQ(n_packs(loc), PACKS(1000));
    /* 100 leased straight from the first pack, one of them done: the
     * list reads hashes up to the tail, then the packs, pages of 512
     * RIDs, each from where the one before left off in the packs. */
    sl_lease l[100];
    size_t n = 0;
    sl_lease_req req = {100, T0, 60000, NULL, 0};
    ASSERT_EQ(sl_queue_lease(q, &req, l, &n), SLUICE_OK);
    ASSERT_EQ(n, 100);
    sl_object_info obj = {5, "0000000000000000000000000000000000000000000"
                             "000000000000000000000",
                          NULL, NULL};
    ASSERT_EQ(sl_queue_complete(q, &l[7], &obj, T0), SLUICE_OK);
    for (size_t i = 0; i < n; i++)
        sl_lease_clear(&l[i]);
    list_text packed = list_of(q, -1);
    ASSERT_EQ(packed.n, 1000);
    list_text pending = list_of(q, SLUICE_STATE_PENDING);
    ASSERT_EQ(pending.n, 900);
    list_text done = list_of(q, SLUICE_STATE_DONE);
    ASSERT_EQ(done.n, 1);
    ASSERT(strncmp(done.text, "p7|3|", 5) == 0);
    /* Nothing was unpacked for them. */
    ASSERT_EQ(n_packs(loc), PACKS(1000));
    ASSERT_EQ(test_redis_int(loc, "HGET " KEY("meta") " tail"), 100);
    ASSERT_EQ(test_redis_int(loc, "EXISTS " KEY("r:101")), 0);
    /* A packed record is never dead: replaying it by id finds it
     * missing and unpacks nothing. */
    const char *const again[] = {"p999"};
    sluice_dlq_filter any = {NULL};
    uint64_t replayed = 9, missing = 0;
    ASSERT_EQ(sluice_dlq_replay(q, again, 1, &any, &replayed, &missing),
              SLUICE_OK);
    ASSERT_EQ(replayed, 0);
    ASSERT_EQ(missing, 1);
    ASSERT_EQ(n_packs(loc), PACKS(1000));
    /* The same records unpacked list the same, meta and all. */
    ASSERT_EQ(sl_rq_unpack_all(q), SLUICE_OK);
    ASSERT_EQ(n_packs(loc), 0);
    list_text unpacked = list_of(q, -1);
    ASSERT_EQ(unpacked.len, packed.len);
    ASSERT_STR_EQ(unpacked.text, packed.text);
    list_text unpacked_pending = list_of(q, SLUICE_STATE_PENDING);
    ASSERT_STR_EQ(unpacked_pending.text, pending.text);
    ASSERT(strstr(packed.text, "p999|0|http://b.example/999/v1.jpg|p999|"
                               "{\"n\":999}|-1|0\n") != NULL);
    free(packed.text);
    free(pending.text);
    free(done.text);
    free(unpacked.text);
    free(unpacked_pending.text);
    sluice_queue_close(q);
}

TEST(a_list_goes_on_when_its_packs_are_leased_meanwhile)
{
    char loc[300];
    test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *q = open_queue(loc), *other = open_queue(loc);
    ASSERT_EQ(sl_queue_acquire_runner(other), SLUICE_OK);
    sl_queue_feed_start(q);
    batch_with_meta(q, 1000);
    /* After the first page (RIDs 1 to 512), another runner leases 600
     * records: the place the page gave is unpacked now, and the next
     * page reads 513 to 600 from hashes, the rest from the packs. */
    list_text t = {.other = other, .at = 300, .late = 600};
    ASSERT_EQ(sluice_list(q, NULL, append_record, &t), SLUICE_OK);
    ASSERT_EQ(t.n, 1000);
    ASSERT_EQ(test_redis_int(loc, "HGET " KEY("meta") " tail"), 600);
    char *line = t.text;
    for (int k = 0; k < 1000; k++) {
        char want[64];
        /* listed before the lease: pending; after it, in flight up
         * to p599 */
        snprintf(want, sizeof want, "p%d|%d|", k,
                 k >= 512 && k < 600 ? SLUICE_STATE_IN_FLIGHT
                                     : SLUICE_STATE_PENDING);
        ASSERT(strncmp(line, want, strlen(want)) == 0);
        line = strchr(line, '\n') + 1;
    }
    free(t.text);
    sluice_queue_close(other);
    sluice_queue_close(q);
}

static int
count_info(void *ctx, const sl_record_info *r)
{
    (void)r;
    (*(int *)ctx)++;
    return 0;
}

TEST(a_packed_queue_dumps_every_record)
{
    char loc[300];
    test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *q = open_queue(loc);
    sl_queue_feed_start(q);
    ASSERT_EQ(batch(q, 0, 1500, 700, true).added, 1500);
    int n = 0;
    ASSERT_EQ(sl_queue_dump(q, count_info, &n), SLUICE_OK);
    ASSERT_EQ(n, 1500);
    ASSERT_EQ(test_redis_int(loc, "ZCARD " KEY("po:http://b.example:80")),
              800);
    sluice_queue_close(q);
}

/* The get script once, from pack `from` ('' the lowest), `most` packs:
 * its answer's first element into what, its second into next. */
static redisReply *
get_step(sluice_queue *q, const char *id, const char *from, const char *most)
{
    const char *argv[] = {id, from, most};
    redisReply *r = NULL;
    ASSERT_EQ(sl_rq_eval(q, RQ_GET, &r, 3, argv, NULL), SLUICE_OK);
    ASSERT_NOT_NULL(sl_rq_str(r, 0));
    return r;
}

/* Lease n records (n must come) and let them go unmarked. */
static void
lease_n(sluice_queue *q, size_t n)
{
    static sl_lease l[1000];
    ASSERT(n <= SL_ARRAY_LEN(l));
    lease_into(q, l, n);
    for (size_t i = 0; i < n; i++)
        sl_lease_clear(&l[i]);
}

static sl_record_info
get_info(sluice_queue *q, const char *id)
{
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, id, &info), SLUICE_OK);
    return info;
}

TEST(a_lookup_by_id_finds_a_record_where_it_is)
{
    char loc[300];
    sluice_queue *q = three_packs(loc, sizeof loc, 1000);
    /* 100 leased from the first pack: p0..p99 are hashes, the rest of
     * that pack is still packed after them. */
    lease_n(q, 100);
    long long packs = n_packs(loc);
    sl_record_info info = get_info(q, "p50");
    ASSERT_EQ(info.state, SL_STATE_IN_FLIGHT);
    sl_record_info_clear(&info);
    const char *const packed[] = {"p100", "p127", "p128", "p999", "p1000",
                                  "p2999"};
    for (size_t i = 0; i < SL_ARRAY_LEN(packed); i++) {
        int k = atoi(packed[i] + 1);
        char url[64];
        snprintf(url, sizeof url, "http://%s/%d/v1.jpg",
                 k < 1000 ? "a.example" : "b.example", k);
        info = get_info(q, packed[i]);
        ASSERT_STR_EQ(info.id, packed[i]);
        ASSERT_STR_EQ(info.url, url);
        ASSERT_STR_EQ(info.key, packed[i]);
        ASSERT_STR_EQ(info.origin, k < 1000 ? "http://a.example:80"
                                            : "http://b.example:80");
        ASSERT_EQ(info.state, SL_STATE_PENDING);
        ASSERT(info.meta == NULL);
        ASSERT_EQ(info.attempts, 0);
        sl_record_info_clear(&info);
    }
    /* Neither a missing id, nor one whose text is a prefix of ids or
     * inside urls, is taken for a record. */
    const char *const missing[] = {"p3000", "p", "a.example", "v1.jpg"};
    for (size_t i = 0; i < SL_ARRAY_LEN(missing); i++)
        ASSERT_EQ(sl_queue_get(q, missing[i], &info), SLUICE_ENOTFOUND);
    ASSERT_EQ(n_packs(loc), packs);
    ASSERT_EQ(test_redis_int(loc, "HGET " KEY("meta") " tail"), 100);
    sluice_queue_close(q);
}

TEST(a_lookup_goes_on_from_pack_to_pack_while_leases_unpack_them)
{
    char loc[300];
    sluice_queue *q = three_packs(loc, sizeof loc, 3000);
    /* One pack a call: the first call, on the lowest pack, says where
     * to go on. */
    redisReply *r = get_step(q, "p700", "", "1");
    ASSERT_STR_EQ(sl_rq_str(r, 0), "more");
    ASSERT_STR_EQ(sl_rq_str(r, 1), "129");
    freeReplyObject(r);
    r = get_step(q, "p700", "129", "1");
    ASSERT_STR_EQ(sl_rq_str(r, 0), "more");
    ASSERT_STR_EQ(sl_rq_str(r, 1), "257");
    freeReplyObject(r);
    /* Meanwhile a lease unpacks p0..p999: the next call finds p700 in
     * its hash, leased. */
    lease_n(q, 1000);
    r = get_step(q, "p700", "257", "1");
    ASSERT_STR_EQ(sl_rq_str(r, 0), "rec");
    ASSERT_STR_EQ(sl_rq_str(r, 1 + RF_ID), "p700");
    ASSERT_STR_EQ(sl_rq_str(r, 1 + RF_STATE), "1");
    freeReplyObject(r);
    /* A place below the lowest pack left starts at it; the last pack
     * searched, the answer is none. */
    r = get_step(q, "p1500", "129", "1");
    ASSERT_STR_EQ(sl_rq_str(r, 0), "more");
    freeReplyObject(r);
    r = get_step(q, "p4000", "", "100");
    ASSERT_STR_EQ(sl_rq_str(r, 0), "none");
    freeReplyObject(r);
    sluice_queue_close(q);
}

TEST(a_commit_in_two_halves_writes_while_the_next_batch_is_made)
{
    char loc[300];
    test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *q = open_queue(loc);
    sl_queue_feed_start(q);
    static sl_record r[1000];
    for (int k = 0; k < 1000; k++)
        r[k] = rec(k, 4000, 1, true);
    sluice_ingest_stats a = {0}, b = {0}, c = {0};
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_upsert(q, r, 300, T0, &a), SLUICE_OK);
    ASSERT_EQ(sl_queue_commit_send(q), SLUICE_OK);
    ASSERT(q->commit_sent);
    /* The next batch is made meanwhile; the first's counts come with
     * its outcome. */
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_upsert(q, r + 300, 400, T0, &b), SLUICE_OK);
    ASSERT_EQ(a.added, 0);
    ASSERT_EQ(sl_queue_commit_wait(q), SLUICE_OK);
    ASSERT_EQ(a.added, 300);
    ASSERT_EQ(b.added, 0);
    ASSERT_EQ(n_packs(loc), PACKS(300));
    ASSERT_EQ(sl_queue_commit_send(q), SLUICE_OK);
    /* A third, rolled back while the second is out: only the second
     * goes in. */
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_upsert(q, r + 700, 300, T0, &c), SLUICE_OK);
    ASSERT_EQ(sl_queue_rollback(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_commit_wait(q), SLUICE_OK);
    ASSERT_EQ(b.added, 400);
    ASSERT_EQ(c.added, 0);
    ASSERT_EQ(n_packs(loc), PACKS(300) + PACKS(400));
    ASSERT_EQ(test_redis_int(loc, "HGET " KEY("meta") " rid"), 700);
    ASSERT_EQ(test_redis_int(loc, "HGET " KEY("counts") " s0"), 700);
    /* A batch that may not be packed (p5 again) commits whole in
     * _send, looked up; _wait has nothing to read. */
    r[5] = rec(5, 4000, 2, false);
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_upsert(q, r + 5, 1, T0, &c), SLUICE_OK);
    ASSERT_EQ(sl_queue_commit_send(q), SLUICE_OK);
    ASSERT(!q->commit_sent);
    ASSERT_EQ(c.updated, 1);
    ASSERT_EQ(sl_queue_commit_wait(q), SLUICE_OK);
    listing l = {0, true};
    ASSERT_EQ(sluice_list(q, NULL, check_order, &l), SLUICE_OK);
    ASSERT_EQ(l.n, 700);
    ASSERT(l.in_order);
    sluice_queue_close(q);
}

/* Another writer's record, p150, in a batch of its own (between a
 * packed batch's WATCH and its transaction when a test says so). */
static void
other_writes(void *ctx)
{
    static sl_record r;
    r = rec(150, 4000, 1, true);
    sluice_ingest_stats o = {0};
    ASSERT_EQ(sl_queue_begin(ctx), SLUICE_OK);
    ASSERT_EQ(sl_queue_upsert(ctx, &r, 1, T0, &o), SLUICE_OK);
    ASSERT_EQ(sl_queue_commit(ctx), SLUICE_OK);
    ASSERT_EQ(o.added, 1);
}

/* A queue whose feed packed its first 100 records, and *other, another
 * writer's handle on it. */
static sluice_queue *
packed_100(char *loc, size_t size, sluice_queue **other)
{
    test_redis_start(loc, size, NULL);
    sluice_queue *q = open_queue(loc);
    *other = open_queue(loc);
    sl_queue_feed_start(q);
    ASSERT_EQ(batch(q, 0, 100, 4000, true).added, 100);
    return q;
}

TEST(a_commit_sent_after_another_writer_is_looked_up)
{
    char loc[300];
    sluice_queue *other, *q = packed_100(loc, sizeof loc, &other);
    /* Another writer's record lands between this feed's batches (its
     * lookup unpacks the queue): the next batch is not packed but
     * looked up, whole in _send. */
    static sl_record r[200];
    sluice_ingest_stats a = {0};
    other_writes(other);
    for (int k = 100; k < 200; k++)
        r[k - 100] = rec(k, 4000, 1, true);
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_upsert(q, r, 100, T0, &a), SLUICE_OK);
    ASSERT_EQ(sl_queue_commit_send(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_commit_wait(q), SLUICE_OK);
    ASSERT_EQ(a.added, 99);
    ASSERT_EQ(a.unchanged, 1);
    ASSERT(!q->commit_sent);
    ASSERT_EQ(n_packs(loc), 0);
    sluice_counts c;
    ASSERT_EQ(sluice_queue_counts(q, &c), SLUICE_OK);
    ASSERT_EQ(c.total, 200);
    sluice_queue_close(other);
    sluice_queue_close(q);
}

TEST(a_commit_that_loses_the_race_is_upserted_again_looked_up)
{
    char loc[300];
    sluice_queue *other, *q = packed_100(loc, sizeof loc, &other);
    /* The next batch is sent as packs, but the other writer writes meta
     * (and p150) after its WATCH: its EXEC comes back nil, nothing of
     * it is in, and the wait upserts it again with lookups. */
    static sl_record r[300];
    for (int k = 0; k < 300; k++)
        r[k] = rec(100 + k, 4000, 1, true);
    sluice_ingest_stats a = {0}, b = {0};
    sl_rq_pack_race(q, other_writes, other);
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_upsert(q, r, 200, T0, &a), SLUICE_OK);
    ASSERT_EQ(sl_queue_commit_send(q), SLUICE_OK);
    ASSERT(q->commit_sent);
    sl_rq_pack_race(q, NULL, NULL);
    ASSERT_EQ(test_redis_int(loc, "HGET " KEY("meta") " rid"), 101);
    ASSERT_EQ(a.added, 0);
    ASSERT_EQ(sl_queue_commit_wait(q), SLUICE_OK);
    ASSERT_EQ(a.added, 199);
    ASSERT_EQ(a.unchanged, 1);
    ASSERT_EQ(test_redis_int(loc, "HGET " KEY("meta") " rid"), 300);
    /* The feed looks its ids up from then on: nothing is packed. */
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_upsert(q, r + 200, 100, T0, &b), SLUICE_OK);
    ASSERT_EQ(sl_queue_commit_send(q), SLUICE_OK);
    ASSERT(!q->commit_sent);
    ASSERT_EQ(b.added, 100);
    ASSERT_EQ(n_packs(loc), 0);
    /* Each record once, under its own RID. */
    ASSERT_EQ(test_redis_int(loc, "HLEN " KEY("ids")), 400);
    ASSERT_EQ(test_redis_int(loc, "HGET " KEY("counts") " s0"), 400);
    ASSERT_EQ(strncmp(hget(loc, KEY("ids"), "p150"), "101:", 4), 0);
    ASSERT_EQ(strncmp(hget(loc, KEY("ids"), "p100"), "102:", 4), 0);
    listing l = {0, true};
    ASSERT_EQ(sluice_list(q, NULL, check_order, &l), SLUICE_OK);
    ASSERT_EQ(l.n, 400);
    ASSERT(!l.in_order); /* p150 is 101st */
    sluice_queue_close(other);
    sluice_queue_close(q);
}

/* Records 0..n, on origin b when k % 3 == 1, else a, as one batch. */
static void
batch_of_two_origins(sluice_queue *q, int n)
{
    static sl_record r[1000];
    for (int k = 0; k < n; k++) {
        r[k] = rec(k, k % 3 == 1 ? 0 : 4000, 1, true);
        ASSERT_STR_EQ(r[k].origin, k % 3 == 1 ? "http://b.example:80"
                                              : "http://a.example:80");
    }
    sluice_ingest_stats st = {0};
    ASSERT_EQ(sl_queue_begin(q), SLUICE_OK);
    ASSERT_EQ(sl_queue_upsert(q, r, (size_t)n, T0, &st), SLUICE_OK);
    ASSERT_EQ(sl_queue_commit(q), SLUICE_OK);
    ASSERT_EQ(st.added, (uint64_t)n);
}

/* How many times `text` is in the pack that begins at RID `first`. */
static int
count_in_pack(const char *loc, const char *first, const char *text)
{
    redisContext *c = redisConnectUnix(loc + strlen("unix://"));
    ASSERT(c && !c->err);
    redisReply *r = redisCommand(c, "HGET %s %s", KEY("packs"), first);
    ASSERT(r && r->type == REDIS_REPLY_STRING);
    int n = 0;
    for (const char *at = r->str, *end = r->str + r->len;
         (at = memmem(at, (size_t)(end - at), text, strlen(text))); at++)
        n++;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

static int
check_origin(void *ctx, const sl_record_info *r)
{
    int k = atoi(r->id + 1);
    ASSERT_STR_EQ(r->origin, k % 3 == 1 ? "http://b.example:80"
                                        : "http://a.example:80");
    (*(int *)ctx)++;
    return 0;
}

TEST(a_pack_writes_its_first_records_origin_once)
{
    char loc[300];
    test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *q = open_queue(loc);
    ASSERT_EQ(sl_queue_acquire_runner(q), SLUICE_OK);
    sl_queue_feed_start(q);
    batch_of_two_origins(q, 300);
    /* In the first pack, a's origin is written once (its first record
     * is on a), b's for each of b's records; in the third, whose first
     * record (p256) is on b, the other way round. */
    ASSERT_EQ(count_in_pack(loc, "1", "a.example:80"), 1);
    ASSERT_EQ(count_in_pack(loc, "1", "b.example:80"), 43);
    ASSERT_EQ(count_in_pack(loc, "257", "a.example:80"), 29);
    ASSERT_EQ(count_in_pack(loc, "257", "b.example:80"), 1);
    /* Each record reads with its own origin: looked up, leased straight
     * from its pack (mid-pack too), and unpacked. */
    for (int k = 250; k < 300; k += 7) {
        char id[16];
        snprintf(id, sizeof id, "p%d", k);
        sl_record_info info;
        ASSERT_EQ(sl_queue_get(q, id, &info), SLUICE_OK);
        ASSERT_STR_EQ(info.origin, k % 3 == 1 ? "http://b.example:80"
                                              : "http://a.example:80");
        sl_record_info_clear(&info);
    }
    static sl_lease l[200];
    for (size_t taken = 0; taken < 200;) {
        size_t n = 0;
        sl_lease_req req = {50, T0, 60000, NULL, 0};
        ASSERT_EQ(sl_queue_lease(q, &req, l + taken, &n), SLUICE_OK);
        ASSERT_EQ(n, 50);
        taken += n;
    }
    for (int k = 0; k < 200; k++) {
        ASSERT_EQ(atoi(l[k].id + 1), k);
        ASSERT_STR_EQ(l[k].origin, k % 3 == 1 ? "http://b.example:80"
                                              : "http://a.example:80");
        sl_lease_clear(&l[k]);
    }
    int n = 0;
    ASSERT_EQ(sl_queue_dump(q, check_origin, &n), SLUICE_OK);
    ASSERT_EQ(n, 300);
    ASSERT_EQ(test_redis_int(loc, "ZCARD " KEY("po:http://b.example:80")),
              33);
    sluice_queue_close(q);
}

/* A pack as schema 3 wrote it: records from..to (rec(), origin '' after
 * the first, meta {"k":K} on every third) each behind 4-byte lengths,
 * with the fingerprint "fp3-K..." sixth. */
static size_t
schema3_pack(char *out, int from, int to)
{
    size_t len = 0;
    for (int k = from; k < to; k++) {
        sl_record r = rec(k, 4000, 1, true);
        char meta[32] = "", fp[32];
        if (k % 3 == 0)
            snprintf(meta, sizeof meta, "{\"k\":%d}", k);
        snprintf(fp, sizeof fp, "fp3-%020d", k);
        const char *f[6] = {r.id, r.url, r.key, meta,
                            k == from ? r.origin : "", fp};
        for (int i = 0; i < 6; i++) {
            uint32_t n = (uint32_t)strlen(f[i]);
            unsigned char le[4] = {(unsigned char)n, (unsigned char)(n >> 8),
                                   (unsigned char)(n >> 16),
                                   (unsigned char)(n >> 24)};
            memcpy(out + len, le, 4);
            memcpy(out + len + 4, f[i], n);
            len += 4 + n;
        }
    }
    return len;
}

TEST(a_queue_of_schema_3_reads_its_packs_as_they_were_written)
{
    char loc[300];
    test_redis_start(loc, sizeof loc, NULL);
    sluice_queue *q = open_queue(loc);
    sl_queue_feed_start(q);
    batch(q, 0, 300, 4000, true);
    ASSERT_EQ(n_packs(loc), 3);
    /* Its packs rewritten as schema 3 wrote them, the queue marked so. */
    redisContext *c = redisConnectUnix(loc + strlen("unix://"));
    ASSERT(c && !c->err);
    static char blob[3][64 * 1024];
    static const int first[3] = {0, 128, 256}, end[3] = {128, 256, 300};
    for (int p = 0; p < 3; p++) {
        size_t len = schema3_pack(blob[p], first[p], end[p]);
        redisReply *r = redisCommand(c, "HSET %s %d %b", KEY("packs"),
                                     first[p] + 1, blob[p], len);
        ASSERT(r && r->type == REDIS_REPLY_INTEGER);
        freeReplyObject(r);
    }
    redisFree(c);
    test_redis_int(loc, "HSET " KEY("meta") " version 3");
    sluice_queue_close(q);
    q = open_queue(loc);
    /* A lookup and a list read them where they are... */
    sl_record_info info;
    ASSERT_EQ(sl_queue_get(q, "p201", &info), SLUICE_OK);
    ASSERT_STR_EQ(info.url, "http://a.example/201/v1.jpg");
    ASSERT_STR_EQ(info.origin, "http://a.example:80");
    ASSERT_STR_EQ(info.meta, "{\"k\":201}");
    sl_record_info_clear(&info);
    listing l = {0, true};
    ASSERT_EQ(sluice_list(q, NULL, check_order, &l), SLUICE_OK);
    ASSERT_EQ(l.n, 300);
    ASSERT(l.in_order);
    /* ...a lease takes them straight from the pack... */
    sl_lease ls[100];
    lease_into(q, ls, 100);
    for (size_t i = 0; i < 100; i++) {
        char want[64];
        snprintf(want, sizeof want, "http://a.example/%zu/v1.jpg", i);
        ASSERT_STR_EQ(ls[i].url, want);
        ASSERT_STR_EQ(ls[i].origin, "http://a.example:80");
        if (i % 3 == 0) {
            snprintf(want, sizeof want, "{\"k\":%zu}", i);
            ASSERT_STR_EQ(ls[i].meta, want);
        } else {
            ASSERT_NULL(ls[i].meta);
        }
        sl_lease_clear(&ls[i]);
    }
    /* ...and unpacked, each id keeps the fingerprint its pack held. */
    ASSERT_EQ(sl_rq_unpack_all(q), SLUICE_OK);
    ASSERT_EQ(n_packs(loc), 0);
    ASSERT_EQ(test_redis_int(loc, "HLEN " KEY("ids")), 300);
    ASSERT_STR_EQ(hget(loc, KEY("ids"), "p7"),
                  "8:fp3-00000000000000000007");
    ASSERT_STR_EQ(hget(loc, KEY("ids"), "p299"),
                  "300:fp3-00000000000000000299");
    ASSERT_EQ(sl_queue_get(q, "p297", &info), SLUICE_OK);
    ASSERT_STR_EQ(info.origin, "http://a.example:80");
    ASSERT_STR_EQ(info.meta, "{\"k\":297}");
    sl_record_info_clear(&info);
    /* An ingest of the same records again, none with a meta: the old
     * fingerprints match nothing, the fields are compared, and only the
     * records that had a meta changed. */
    sl_queue_feed_start(q);
    sluice_ingest_stats st = batch(q, 0, 300, 4000, true);
    ASSERT_EQ(st.added, 0);
    ASSERT_EQ(st.updated, 100);
    ASSERT_EQ(st.unchanged, 200);
    sluice_queue_close(q);
}
