/*
 * libFuzzer harness: KPL aggregates (lib/kinesis/kpl.c), what a Kinesis
 * stream hands the ingester as a record's data. On any bytes,
 * sl_kpl_parse either refuses with a reason or gives sub-records that
 * carry the parent's sequence number, sub-sequences 0..n-1 in order and
 * n_sub n. Sub-records made from the input and aggregated by
 * sl_kpl_build parse back to exactly themselves; the same aggregate with
 * one byte changed after the magic is refused (its MD5 no longer holds).
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kinesis/kinesis.h"

#define SEQ "49680893146517284562779242583716263712545461111126753282"

/* The records as a batch of them is freed. */
static void
free_records(sl_kinesis_record *recs, size_t n)
{
    sl_kinesis_batch b = {.recs = recs, .n = n};
    sl_kinesis_batch_free(&b);
}

/* Parse; on success check the sub-records' numbering. -1/-2 as kpl.c. */
static int
parse(const uint8_t *data, size_t size, sl_kinesis_record **recs, size_t *n)
{
    size_t cap = 0;
    char reason[200] = "";
    *recs = NULL;
    *n = 0;
    int rc = sl_kpl_parse(data, size, SEQ, 1234, recs, n, &cap, reason,
                          sizeof reason);
    FUZZ_CHECK(rc == 0 || rc == -1 || rc == -2, "sl_kpl_parse gave %d", rc);
    FUZZ_CHECK(rc != -1 || *reason, "refused without a reason: %s",
               fuzz_show(data, size));
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < *n; i++) {
        const sl_kinesis_record *r = &(*recs)[i];
        FUZZ_CHECK(r->seq && strcmp(r->seq, SEQ) == 0,
                   "sub-record %zu lost the parent's seq", i);
        FUZZ_CHECK(r->subseq == i && r->n_sub == *n,
                   "sub-record %zu numbered %u of %u", i, r->subseq, r->n_sub);
        FUZZ_CHECK(r->partition_key && (r->data || r->len == 0) && !r->bad,
                   "sub-record %zu incomplete", i);
        FUZZ_CHECK(r->arrival_ms == 1234, "sub-record %zu lost its arrival", i);
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_kinesis_record *recs;
    size_t n;

    /* Any bytes, as an aggregate. */
    if (sl_kpl_is_aggregate(data, size) && parse(data, size, &recs, &n) == 0)
        free_records(recs, n);

    /* Sub-records cut from the input at each '|' (at most 16), each with
     * a partition key: its first 3 bytes, or "k". */
    sl_kpl_sub subs[16];
    char keys[16][4];
    size_t n_subs = 0, at = 0;
    while (n_subs < 16 && at <= size) {
        const uint8_t *bar = memchr(data + at, '|', size - at);
        size_t len = bar ? (size_t)(bar - (data + at)) : size - at;
        size_t klen = len < 3 ? len : 3;
        memcpy(keys[n_subs], data + at, klen);
        keys[n_subs][klen] = '\0';
        if (strlen(keys[n_subs]) == 0)
            strcpy(keys[n_subs], "k");
        subs[n_subs] = (sl_kpl_sub){keys[n_subs], data + at, len};
        n_subs++;
        if (!bar)
            break;
        at += len + 1;
    }
    unsigned char *agg;
    size_t agg_len;
    if (sl_kpl_build(subs, n_subs, &agg, &agg_len) != 0)
        return 0; /* out of memory */
    FUZZ_CHECK(sl_kpl_is_aggregate(agg, agg_len), "built: no magic");
    FUZZ_CHECK(parse(agg, agg_len, &recs, &n) == 0,
               "a built aggregate of %zu is refused", n_subs);
    FUZZ_CHECK(n == n_subs, "built %zu, parsed %zu", n_subs, n);
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(recs[i].len == subs[i].len &&
                       (subs[i].len == 0 ||
                        memcmp(recs[i].data, subs[i].data, subs[i].len) == 0),
                   "sub-record %zu's data changed", i);
        FUZZ_CHECK(strcmp(recs[i].partition_key, subs[i].partition_key) == 0,
                   "sub-record %zu's key %s, not %s", i, recs[i].partition_key,
                   subs[i].partition_key);
    }
    free_records(recs, n);

    /* One byte after the magic changed: refused. */
    if (size > 0 && agg_len > 4) {
        size_t pos = 4 + data[0] % (agg_len - 4);
        agg[pos] ^= (uint8_t)(data[size - 1] | 1);
        FUZZ_CHECK(parse(agg, agg_len, &recs, &n) == -1,
                   "an aggregate changed at byte %zu is taken", pos);
    }
    sl_free(agg);
    return 0;
}
