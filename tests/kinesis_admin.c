/*
 * kinesis_admin: what the Kinesis tests do to a stream besides sluice
 * itself, through the library's client (lib/kinesis), against kinesalite
 * or any endpoint the AWS_* environment names. Built only for tests.
 *
 *   kinesis_admin create STREAM N        create with N shards, wait ACTIVE
 *   kinesis_admin list STREAM            shards: id parent adjacent start end
 *   kinesis_admin split STREAM SHARD     split SHARD at its hash midpoint
 *   kinesis_admin merge STREAM SHARD ADJ merge two adjacent shards
 *   kinesis_admin dump STREAM            every record's data, one a line
 *   kinesis_admin records STREAM         shard seq subseq n_sub key bad data
 *   kinesis_admin records-at STREAM MS   the same from AT_TIMESTAMP MS
 *                                        (ms since the epoch)
 *   kinesis_admin put-kpl STREAM [KEY]   stdin's lines as one KPL aggregate
 *                                        (partition keys KEY-0, KEY-1, ...)
 *   kinesis_admin put-raw STREAM KEY DATA  one plain record
 *
 * Exit 0 on success; 1 with a line on stderr otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <yajl/yajl_tree.h>

#include "kinesis/kinesis.h"
#include "util.h"

static char why[1024];

static void
die(const char *what)
{
    fprintf(stderr, "kinesis_admin: %s: %s\n", what, why);
    exit(1);
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static sl_kinesis *
open_stream(const char *stream)
{
    char location[300];
    sl_kinesis *k;
    sl_fmt(location, sizeof location, "kinesis://%s", stream);
    if (sl_kinesis_open(&k, location, why, sizeof why) != SLUICE_OK)
        die("open");
    return k;
}

/* Call and demand OK; the reply's tree, or NULL when there is none. */
static yajl_val
must(sl_kinesis *k, const char *action, const char *body)
{
    char *reply = NULL;
    sl_kinesis_status st =
        sl_kinesis_call(k, action, body, &reply, why, sizeof why);
    if (st != SL_KINESIS_OK)
        die(action);
    yajl_val tree = NULL;
    if (reply && *reply) {
        char err[200];
        tree = yajl_tree_parse(reply, err, sizeof err);
    }
    free(reply);
    return tree;
}

static const char *
str_at(yajl_val v, const char *a, const char *b)
{
    const char *path[] = {a, b, NULL};
    yajl_val s = yajl_tree_get(v, path, yajl_t_string);
    return s ? YAJL_GET_STRING(s) : NULL;
}

static void
wait_active(sl_kinesis *k)
{
    char body[300];
    sl_fmt(body, sizeof body, "{\"StreamName\":\"%s\"}", sl_kinesis_stream(k));
    for (int i = 0; i < 600; i++) {
        yajl_val t = must(k, "DescribeStreamSummary", body);
        const char *status =
            t ? str_at(t, "StreamDescriptionSummary", "StreamStatus") : NULL;
        bool active = status && strcmp(status, "ACTIVE") == 0;
        yajl_tree_free(t);
        if (active)
            return;
        sleep_ms(50);
    }
    sl_copy(why, sizeof why, "not ACTIVE after 30 s");
    die("wait");
}

static void
cmd_create(sl_kinesis *k, const char *n)
{
    char body[300];
    sl_fmt(body, sizeof body, "{\"StreamName\":\"%s\",\"ShardCount\":%d}",
           sl_kinesis_stream(k), (int)strtol(n, NULL, 10));
    yajl_tree_free(must(k, "CreateStream", body));
    wait_active(k);
}

static const char *
dash(const char *s)
{
    return s ? s : "-";
}

static void
cmd_list(sl_kinesis *k)
{
    sl_kinesis_shard *s;
    size_t n;
    if (sl_kinesis_list_shards(k, &s, &n, why, sizeof why) != SL_KINESIS_OK)
        die("ListShards");
    for (size_t i = 0; i < n; i++)
        printf("%s\t%s\t%s\t%s\t%s\n", s[i].shard_id, dash(s[i].parent),
               dash(s[i].adjacent_parent), dash(s[i].starting_seq),
               dash(s[i].ending_seq));
    sl_kinesis_shards_free(s, n);
}

/* The hash key range of a shard, from ListShards (not in the client's
 * shard struct: only the admin splits). */
static void
hash_range(sl_kinesis *k, const char *shard, char *lo, char *hi, size_t size)
{
    char body[300];
    sl_fmt(body, sizeof body, "{\"StreamName\":\"%s\"}", sl_kinesis_stream(k));
    yajl_val t = must(k, "ListShards", body);
    const char *path[] = {"Shards", NULL};
    yajl_val list = t ? yajl_tree_get(t, path, yajl_t_array) : NULL;
    for (size_t i = 0; list && i < YAJL_GET_ARRAY(list)->len; i++) {
        yajl_val s = YAJL_GET_ARRAY(list)->values[i];
        const char *id = str_at(s, "ShardId", NULL);
        if (id && strcmp(id, shard) == 0) {
            sl_copy(lo, size, str_at(s, "HashKeyRange", "StartingHashKey"));
            sl_copy(hi, size, str_at(s, "HashKeyRange", "EndingHashKey"));
            yajl_tree_free(t);
            return;
        }
    }
    yajl_tree_free(t);
    sl_fmt(why, sizeof why, "no shard %s", shard);
    die("split");
}

static void
cmd_split(sl_kinesis *k, const char *shard)
{
    char lo[64], hi[64], body[600];
    hash_range(k, shard, lo, hi, sizeof lo);
    /* The new starting hash key: the midpoint, rounded up (128-bit). */
    BIGNUM *a = NULL, *b = NULL;
    if (!BN_dec2bn(&a, lo) || !BN_dec2bn(&b, hi) || !BN_add(a, a, b) ||
        !BN_add_word(a, 1) || !BN_rshift1(a, a)) {
        sl_copy(why, sizeof why, "bad hash key range");
        die("split");
    }
    char *mid = BN_bn2dec(a);
    sl_fmt(body, sizeof body,
           "{\"StreamName\":\"%s\",\"ShardToSplit\":\"%s\","
           "\"NewStartingHashKey\":\"%s\"}",
           sl_kinesis_stream(k), shard, mid);
    OPENSSL_free(mid);
    BN_free(a);
    BN_free(b);
    yajl_tree_free(must(k, "SplitShard", body));
    wait_active(k);
}

static void
cmd_merge(sl_kinesis *k, const char *shard, const char *adjacent)
{
    char body[600];
    sl_fmt(body, sizeof body,
           "{\"StreamName\":\"%s\",\"ShardToMerge\":\"%s\","
           "\"AdjacentShardToMerge\":\"%s\"}",
           sl_kinesis_stream(k), shard, adjacent);
    yajl_tree_free(must(k, "MergeShards", body));
    wait_active(k);
}

/* Every record of every shard from TRIM_HORIZON to its end (an open
 * shard: until a read returns nothing). */
static void
cmd_dump(sl_kinesis *k, bool verbose, sl_kinesis_from from, int64_t at_ms)
{
    sl_kinesis_shard *s;
    size_t n;
    if (sl_kinesis_list_shards(k, &s, &n, why, sizeof why) != SL_KINESIS_OK)
        die("ListShards");
    for (size_t i = 0; i < n; i++) {
        char *it;
        if (sl_kinesis_iterator(k, s[i].shard_id, from, NULL, at_ms, &it, why,
                                sizeof why) != SL_KINESIS_OK)
            die("GetShardIterator");
        while (it) {
            sl_kinesis_batch b;
            sl_kinesis_status st =
                sl_kinesis_get_records(k, it, 10000, &b, why, sizeof why);
            free(it);
            it = NULL;
            if (st != SL_KINESIS_OK)
                die("GetRecords");
            for (size_t r = 0; r < b.n; r++) {
                const sl_kinesis_record *rec = &b.recs[r];
                if (verbose)
                    printf("%s\t%s\t%u\t%u\t%s\t%s", s[i].shard_id, rec->seq,
                           rec->subseq, rec->n_sub, rec->partition_key,
                           rec->bad ? rec->bad : "-");
                if (verbose)
                    putchar('\t');
                fwrite(rec->data, 1, rec->len, stdout);
                putchar('\n');
            }
            if (b.n > 0 && b.next_iterator)
                it = strdup(b.next_iterator);
            sl_kinesis_batch_free(&b);
        }
    }
    sl_kinesis_shards_free(s, n);
}

static void
put_one(sl_kinesis *k, const char *key, const unsigned char *data, size_t len)
{
    sl_kinesis_put p = {key, data, len};
    bool failed;
    size_t n_failed;
    if (sl_kinesis_put_records(k, &p, 1, &failed, &n_failed, why, sizeof why) !=
            SL_KINESIS_OK ||
        n_failed)
        die("PutRecords");
}

static void
cmd_put_kpl(sl_kinesis *k, const char *key)
{
    sl_kpl_sub subs[1000];
    char *lines[1000], keys[1000][64];
    size_t n = 0, cap = 0;
    char *line = NULL;
    ssize_t len;
    while (n < 1000 && (len = getline(&line, &cap, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        lines[n] = strdup(line);
        sl_fmt(keys[n], sizeof keys[n], "%s-%zu", key, n);
        subs[n] = (sl_kpl_sub){keys[n], (unsigned char *)lines[n], (size_t)len};
        n++;
    }
    free(line);
    unsigned char *agg;
    size_t agg_len;
    if (sl_kpl_build(subs, n, &agg, &agg_len) != 0) {
        sl_copy(why, sizeof why, "out of memory");
        die("put-kpl");
    }
    put_one(k, key, agg, agg_len);
    sl_free(agg);
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: kinesis_admin create|list|split|merge|dump|"
                        "records|records-at|put-kpl|put-raw STREAM ...\n");
        return 2;
    }
    const char *cmd = argv[1];
    sl_kinesis *k = open_stream(argv[2]);
    if (strcmp(cmd, "create") == 0 && argc == 4)
        cmd_create(k, argv[3]);
    else if (strcmp(cmd, "list") == 0)
        cmd_list(k);
    else if (strcmp(cmd, "split") == 0 && argc == 4)
        cmd_split(k, argv[3]);
    else if (strcmp(cmd, "merge") == 0 && argc == 5)
        cmd_merge(k, argv[3], argv[4]);
    else if (strcmp(cmd, "dump") == 0)
        cmd_dump(k, false, SL_KINESIS_TRIM_HORIZON, 0);
    else if (strcmp(cmd, "records") == 0)
        cmd_dump(k, true, SL_KINESIS_TRIM_HORIZON, 0);
    else if (strcmp(cmd, "records-at") == 0 && argc == 4)
        cmd_dump(k, true, SL_KINESIS_AT_TIMESTAMP,
                 (int64_t)strtoll(argv[3], NULL, 10));
    else if (strcmp(cmd, "put-kpl") == 0)
        cmd_put_kpl(k, argc > 3 ? argv[3] : "kpl");
    else if (strcmp(cmd, "put-raw") == 0 && argc == 5)
        put_one(k, argv[3], (const unsigned char *)argv[4], strlen(argv[4]));
    else {
        fprintf(stderr, "kinesis_admin: bad command or arguments: %s\n", cmd);
        sl_kinesis_close(k);
        return 2;
    }
    sl_kinesis_close(k);
    return 0;
}
