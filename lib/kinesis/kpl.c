/*
 * Records the Kinesis Producer Library aggregated: the magic F3 89 9A C2,
 * an AggregatedRecord protobuf (kpl.proto, compiled by protoc-c), and the
 * MD5 of the protobuf. Parsing turns one into its sub-records, each with
 * the parent's sequence number and its index; building one is for the
 * tests (and publish, should it aggregate one day).
 */
#include <string.h>

#include <openssl/evp.h>

#include "kinesis.h"
#include "kpl.pb-c.h"
#include "../util.h"

#define MD5_LEN 16

const unsigned char sl_kpl_magic[4] = {0xF3, 0x89, 0x9A, 0xC2};

static int
md5(const unsigned char *data, size_t len, unsigned char out[MD5_LEN])
{
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, EVP_md5(), NULL) == 1 && n == MD5_LEN
               ? 0
               : -1;
}

bool
sl_kpl_is_aggregate(const unsigned char *data, size_t len)
{
    return len >= sizeof sl_kpl_magic &&
           memcmp(data, sl_kpl_magic, sizeof sl_kpl_magic) == 0;
}

int
sl_kpl_build(const sl_kpl_sub *subs, size_t n, unsigned char **out,
             size_t *out_len)
{
    Kpl__AggregatedRecord agg = KPL__AGGREGATED_RECORD__INIT;
    Kpl__Record *recs = sl_calloc(n ? n : 1, sizeof *recs);
    Kpl__Record **rec_ptrs = sl_calloc(n ? n : 1, sizeof *rec_ptrs);
    char **keys = sl_calloc(n ? n : 1, sizeof *keys);
    unsigned char *buf = NULL;
    int rc = -1;

    *out = NULL;
    *out_len = 0;
    if (!recs || !rec_ptrs || !keys)
        goto done;
    /* The key table holds each distinct key once, as the KPL's does. */
    size_t n_keys = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < n_keys && strcmp(keys[k], subs[i].partition_key) != 0)
            k++;
        if (k == n_keys)
            keys[n_keys++] = (char *)subs[i].partition_key;
        Kpl__Record r = KPL__RECORD__INIT;
        r.partition_key_index = k;
        r.data.data = (uint8_t *)subs[i].data;
        r.data.len = subs[i].len;
        recs[i] = r;
        rec_ptrs[i] = &recs[i];
    }
    agg.n_partition_key_table = n_keys;
    agg.partition_key_table = keys;
    agg.n_records = n;
    agg.records = rec_ptrs;
    size_t body = kpl__aggregated_record__get_packed_size(&agg);
    size_t total = sizeof sl_kpl_magic + body + MD5_LEN;
    if (!(buf = sl_malloc(total)))
        goto done;
    memcpy(buf, sl_kpl_magic, sizeof sl_kpl_magic);
    kpl__aggregated_record__pack(&agg, buf + sizeof sl_kpl_magic);
    if (md5(buf + sizeof sl_kpl_magic, body,
            buf + sizeof sl_kpl_magic + body) != 0)
        goto done;
    *out = buf;
    *out_len = total;
    buf = NULL;
    rc = 0;
done:
    sl_free(buf);
    sl_free(recs);
    sl_free(rec_ptrs);
    sl_free(keys);
    return rc;
}

/* Room for one more record in *recs. */
static int
grow(sl_kinesis_record **recs, size_t n, size_t *cap, size_t more)
{
    if (n + more <= *cap)
        return 0;
    size_t want = *cap ? *cap : 16;
    while (want < n + more)
        want *= 2;
    sl_kinesis_record *r = sl_realloc(*recs, want * sizeof *r);
    if (!r)
        return -1;
    *recs = r;
    *cap = want;
    return 0;
}

int
sl_kpl_parse(const unsigned char *data, size_t len, const char *seq,
             int64_t arrival_ms, sl_kinesis_record **recs, size_t *n,
             size_t *cap, char *reason, size_t reason_size)
{
    size_t head = sizeof sl_kpl_magic;
    if (!sl_kpl_is_aggregate(data, len)) {
        sl_copy(reason, reason_size, "no KPL magic");
        return -1;
    }
    if (len < head + MD5_LEN) {
        sl_fmt(reason, reason_size,
               "KPL aggregate of %zu bytes: too short for its MD5", len);
        return -1;
    }
    const unsigned char *body = data + head;
    size_t body_len = len - head - MD5_LEN;
    unsigned char sum[MD5_LEN];
    if (md5(body, body_len, sum) != 0)
        return -2;
    if (memcmp(sum, body + body_len, MD5_LEN) != 0) {
        sl_copy(reason, reason_size,
                "KPL aggregate: the MD5 does not match its protobuf");
        return -1;
    }
    Kpl__AggregatedRecord *agg =
        kpl__aggregated_record__unpack(NULL, body_len, body);
    if (!agg) {
        sl_copy(reason, reason_size,
                "KPL aggregate: the protobuf does not decode");
        return -1;
    }
    int rc = 0;
    if (agg->n_records == 0 || agg->n_records > UINT32_MAX) {
        sl_fmt(reason, reason_size, "KPL aggregate with %zu records",
               agg->n_records);
        rc = -1;
        goto done;
    }
    for (size_t i = 0; i < agg->n_records; i++)
        if (agg->records[i]->partition_key_index >=
            agg->n_partition_key_table) {
            sl_fmt(reason, reason_size,
                   "KPL aggregate: record %zu names partition key %llu of "
                   "%zu",
                   i, (unsigned long long)agg->records[i]->partition_key_index,
                   agg->n_partition_key_table);
            rc = -1;
            goto done;
        }
    if (grow(recs, *n, cap, agg->n_records) != 0) {
        rc = -2;
        goto done;
    }
    size_t first = *n;
    for (size_t i = 0; i < agg->n_records; i++) {
        const Kpl__Record *r = agg->records[i];
        sl_kinesis_record *out = &(*recs)[*n];
        memset(out, 0, sizeof *out);
        out->seq = sl_strdup(seq);
        out->subseq = (uint32_t)i;
        out->n_sub = (uint32_t)agg->n_records;
        out->arrival_ms = arrival_ms;
        out->partition_key =
            sl_strdup(agg->partition_key_table[r->partition_key_index]);
        out->len = r->data.len;
        out->data = sl_malloc(r->data.len ? r->data.len : 1);
        (*n)++;
        if (!out->seq || !out->partition_key || !out->data) {
            rc = -2;
            break;
        }
        if (r->data.len)
            memcpy(out->data, r->data.data, r->data.len);
    }
    if (rc != 0) {
        /* Take back what this aggregate added. */
        for (size_t i = first; i < *n; i++) {
            sl_free((*recs)[i].seq);
            sl_free((*recs)[i].partition_key);
            sl_free((*recs)[i].data);
        }
        *n = first;
    }
done:
    kpl__aggregated_record__free_unpacked(agg, NULL);
    return rc;
}
