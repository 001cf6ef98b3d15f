/*
 * libFuzzer harness: GetRecords replies (lib/kinesis/reply.c), the JSON a
 * Kinesis endpoint sends `sluice ingest kinesis://`. On any bytes,
 * sl_kinesis_parse_records either fails with a one-line reason and an
 * empty batch, or gives records that each have a sequence number, a
 * partition key and data, KPL sub-records numbered 0..n-1 under their
 * parent's sequence number. A reply built from the input with yajl_gen
 * (pieces cut at '|', base64'd, plain and as one KPL aggregate) parses
 * back to exactly those bytes, keys, sequence numbers and times, in
 * order. Base64: decode(encode(x)) == x; text that is not base64 is
 * refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "common.h"
#include "json.h"
#include "kinesis/kinesis.h"

#define MAX_PIECES 8

/* The input as a NUL-terminated text, as client.c keeps a reply. */
static char *
as_text(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    FUZZ_CHECK(text, "no memory");
    if (size)
        memcpy(text, data, size);
    text[size] = '\0';
    return text;
}

/* The properties of any batch sl_kinesis_parse_records accepted. */
static void
check_batch(const sl_kinesis_batch *b)
{
    FUZZ_CHECK(b->n == 0 || b->recs, "%zu records and no array", b->n);
    FUZZ_CHECK(b->millis_behind >= -1, "MillisBehindLatest %lld",
               (long long)b->millis_behind);
    for (size_t i = 0; i < b->n; i++) {
        const sl_kinesis_record *r = &b->recs[i];
        FUZZ_CHECK(r->seq && r->seq[0], "record %zu has no sequence number", i);
        size_t seq_len = strlen(r->seq);
        FUZZ_CHECK(strspn(r->seq, "0123456789") == seq_len && seq_len <= 129 &&
                       (r->seq[0] != '0' || seq_len == 1),
                   "record %zu: sequence number %s is not Kinesis's decimal", i,
                   fuzz_show(r->seq, seq_len));
        FUZZ_CHECK(r->partition_key, "record %zu has no partition key", i);
        FUZZ_CHECK(r->data || r->len == 0, "record %zu: %zu bytes, no data", i,
                   r->len);
        FUZZ_CHECK(r->arrival_ms >= 0, "record %zu arrived at %lld ms", i,
                   (long long)r->arrival_ms);
        if (r->bad) {
            /* An aggregate handed on whole, with the reason. */
            FUZZ_CHECK(r->bad[0] && !strchr(r->bad, '\n'),
                       "record %zu: reason %s", i,
                       fuzz_show(r->bad, strlen(r->bad)));
            FUZZ_CHECK(r->n_sub == 0 && r->subseq == 0,
                       "bad record %zu numbered %u of %u", i, r->subseq,
                       r->n_sub);
            FUZZ_CHECK(sl_kpl_is_aggregate(r->data, r->len),
                       "record %zu is bad (%s) but no aggregate", i, r->bad);
            continue;
        }
        if (r->n_sub == 0) {
            FUZZ_CHECK(r->subseq == 0, "plain record %zu has subseq %u", i,
                       r->subseq);
            FUZZ_CHECK(!sl_kpl_is_aggregate(r->data, r->len),
                       "record %zu is an aggregate left whole", i);
            continue;
        }
        /* The first of n sub-records: the next n-1 follow it, numbered. */
        FUZZ_CHECK(r->subseq == 0, "record %zu: sub-record %u first", i,
                   r->subseq);
        uint32_t n_sub = r->n_sub;
        FUZZ_CHECK(n_sub <= b->n - i, "record %zu: %u sub-records of %zu", i,
                   n_sub, b->n - i);
        for (uint32_t k = 1; k < n_sub; k++) {
            const sl_kinesis_record *s = &b->recs[i + k];
            FUZZ_CHECK(!s->bad && s->n_sub == n_sub && s->subseq == k,
                       "record %zu: sub-record %u of %u numbered %u of %u",
                       i + k, k, n_sub, s->subseq, s->n_sub);
            FUZZ_CHECK(s->seq && strcmp(s->seq, r->seq) == 0,
                       "record %zu: sub-record %u lost its parent's seq", i + k,
                       k);
            FUZZ_CHECK(s->arrival_ms == r->arrival_ms,
                       "record %zu: sub-record %u's arrival differs", i + k, k);
            FUZZ_CHECK(s->partition_key && (s->data || s->len == 0),
                       "record %zu: sub-record %u incomplete", i + k, k);
        }
        i += n_sub - 1;
    }
}

/* Any bytes as a reply: a batch or a reason, never both. */
static void
parse_any(const uint8_t *data, size_t size)
{
    char *text = as_text(data, size);
    sl_kinesis_batch b;
    char why[300];
    memset(why, 0, sizeof why);
    memset(&b, 0x5a, sizeof b);
    sl_kinesis_status st =
        sl_kinesis_parse_records(text, size, &b, why, sizeof why);
    if (st == SL_KINESIS_OK) {
        FUZZ_CHECK(why[0] == '\0', "a batch and a reason: %s", why);
        check_batch(&b);
    } else {
        FUZZ_CHECK(st == SL_KINESIS_FAILED, "status %s",
                   sl_kinesis_status_name(st));
        FUZZ_CHECK(why[0] && memchr(why, '\0', sizeof why) &&
                       !strchr(why, '\n'),
                   "%s refused with reason %s", fuzz_show(data, size),
                   fuzz_show(why, strnlen(why, sizeof why)));
        FUZZ_CHECK(b.n == 0 && !b.recs && !b.next_iterator &&
                       b.millis_behind == -1,
                   "a refused reply left a batch of %zu", b.n);
    }
    sl_kinesis_batch_free(&b);
    free(text);
}

/* Any bytes as an error reply: a status other than OK and one line. */
static void
classify_any(const uint8_t *data, size_t size)
{
    static const long statuses[] = {0, 400, 403, 429, 500, 503};
    char *text = as_text(data, size);
    char why[400];
    long http = statuses[size ? data[size - 1] % 6 : 0];
    memset(why, 0, sizeof why);
    sl_kinesis_status st =
        sl_kinesis_classify(http, text, size, why, sizeof why);
    FUZZ_CHECK(st != SL_KINESIS_OK, "HTTP %ld %s is OK", http,
               fuzz_show(data, size));
    FUZZ_CHECK(why[0] && memchr(why, '\0', sizeof why) && !strchr(why, '\n'),
               "HTTP %ld %s: reason %s", http, fuzz_show(data, size),
               fuzz_show(why, strnlen(why, sizeof why)));
    free(text);
}

/*
 * Once: a reply nested a million deep, 2 MB (replies may have 64 MiB),
 * is refused with a reason; yajl_tree_free would recurse once per level
 * and overflow the stack. Too big for libFuzzer's inputs.
 */
static void
deep_reply(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    static const char head[] = "{\"Records\":[],\"x\":";
    size_t depth = 1000000, hl = sizeof head - 1;
    size_t len = hl + 2 * depth + 1;
    char *text = malloc(len + 1);
    FUZZ_CHECK(text, "no memory");
    memcpy(text, head, hl);
    memset(text + hl, '[', depth);
    memset(text + hl + depth, ']', depth);
    text[len - 1] = '}';
    text[len] = '\0';
    sl_kinesis_batch b;
    char why[300] = "";
    FUZZ_CHECK(sl_kinesis_parse_records(text, len, &b, why, sizeof why) ==
                       SL_KINESIS_FAILED &&
                   strstr(why, "deep"),
               "a reply nested %zu deep: %s", depth, why);
    sl_kinesis_batch_free(&b);
    free(text);
}

/* ------------------------------------------------------------ base64 */

static bool
b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Base64 as RFC 4648 writes it: groups of 4 from the alphabet, the last
 * ending in at most two '='. */
static bool
is_base64(const char *s, size_t len)
{
    if (len % 4 != 0)
        return false;
    size_t pad = 0;
    while (pad < 2 && pad < len && s[len - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < len - pad; i++)
        if (!b64_char(s[i]))
            return false;
    return true;
}

static void
check_base64(const uint8_t *data, size_t size)
{
    /* decode(encode(x)) == x */
    char *text = sl_kinesis_b64_encode(data, size);
    FUZZ_CHECK(text, "no memory");
    size_t tlen = strlen(text);
    FUZZ_CHECK(tlen == (size + 2) / 3 * 4 && is_base64(text, tlen),
               "%zu bytes encode as %s", size, fuzz_show(text, tlen));
    unsigned char *back;
    size_t back_len;
    FUZZ_CHECK(sl_kinesis_b64_decode(text, tlen, &back, &back_len) == 0,
               "its own encoding %s is refused", fuzz_show(text, tlen));
    FUZZ_CHECK(back_len == size && (size == 0 || !memcmp(back, data, size)),
               "%s decodes as %s", fuzz_show(data, size),
               fuzz_show(back, back_len));
    sl_free(back);
    sl_free(text);

    /* The input as text: refused exactly when it is not base64. */
    const char *in = (const char *)data;
    int rc = sl_kinesis_b64_decode(in, size, &back, &back_len);
    FUZZ_CHECK((rc == 0) == is_base64(in, size), "%s: decode says %d",
               fuzz_show(data, size), rc);
    if (rc != 0) {
        FUZZ_CHECK(!back && back_len == 0, "a refusal left bytes");
        return;
    }
    size_t pad = size && in[size - 1] == '=' ? 1 + (in[size - 2] == '=') : 0;
    FUZZ_CHECK(back_len == size / 4 * 3 - pad, "%s decodes to %zu bytes",
               fuzz_show(data, size), back_len);
    /* Encoding again gives the same text, but for bits the padding
     * drops: decoding that gives the same bytes. */
    text = sl_kinesis_b64_encode(back, back_len);
    FUZZ_CHECK(text, "no memory");
    unsigned char *again;
    size_t again_len;
    FUZZ_CHECK(sl_kinesis_b64_decode(text, strlen(text), &again, &again_len) ==
                       0 &&
                   again_len == back_len &&
                   (back_len == 0 || !memcmp(again, back, back_len)),
               "%s: decode, encode, decode changed it", fuzz_show(data, size));
    FUZZ_CHECK(size < 4 || memcmp(text, in, size - 4) == 0,
               "%s re-encodes as %s", fuzz_show(data, size),
               fuzz_show(text, strlen(text)));
    sl_free(again);
    sl_free(text);
    sl_free(back);
}

/* ------------------------------------------------------ a built reply */

typedef struct {
    unsigned char *data; /* the piece, its first byte changed when it
                            starts with the KPL magic */
    size_t len;
    char key[8];
    char seq[48];
} piece;

static void
gen_str(yajl_gen g, const char *s)
{
    FUZZ_CHECK(yajl_gen_string(g, (const unsigned char *)s, strlen(s)) ==
                   yajl_gen_status_ok,
               "yajl_gen refused %s", fuzz_show(s, strlen(s)));
}

static void
gen_num(yajl_gen g, const char *text)
{
    FUZZ_CHECK(yajl_gen_number(g, text, strlen(text)) == yajl_gen_status_ok,
               "yajl_gen refused the number %s", text);
}

static void
gen_record(yajl_gen g, const char *seq, const char *key,
           const unsigned char *data, size_t len, const char *arrival,
           bool extra)
{
    char *b64 = sl_kinesis_b64_encode(data, len);
    FUZZ_CHECK(b64, "no memory");
    yajl_gen_map_open(g);
    gen_str(g, "SequenceNumber");
    gen_str(g, seq);
    gen_str(g, "ApproximateArrivalTimestamp");
    gen_num(g, arrival);
    gen_str(g, "Data");
    gen_str(g, b64);
    gen_str(g, "PartitionKey");
    gen_str(g, key);
    if (extra) {
        gen_str(g, "EncryptionType");
        gen_str(g, "NONE");
    }
    yajl_gen_map_close(g);
    sl_free(b64);
}

static bool
same_record(const sl_kinesis_record *r, const char *seq, const char *key,
            const unsigned char *data, size_t len)
{
    return r->seq && strcmp(r->seq, seq) == 0 && r->partition_key &&
           strcmp(r->partition_key, key) == 0 && r->len == len &&
           (len == 0 || memcmp(r->data, data, len) == 0) && !r->bad;
}

static void
built_reply(const uint8_t *data, size_t size)
{
    piece pieces[MAX_PIECES];
    size_t n = 0, at = 0;
    unsigned h = 0;
    for (size_t i = 0; i < size; i++)
        h = h * 31u + data[i];

    /* Pieces cut at '|'; a key of 1 to 4 bytes from 1..127 (quotes,
     * backslashes and control bytes for yajl to escape). */
    while (n < MAX_PIECES && at <= size) {
        const uint8_t *bar = memchr(data + at, '|', size - at);
        size_t len = bar ? (size_t)(bar - (data + at)) : size - at;
        piece *p = &pieces[n];
        p->data = malloc(len + 1);
        FUZZ_CHECK(p->data, "no memory");
        if (len)
            memcpy(p->data, data + at, len);
        p->len = len;
        if (sl_kpl_is_aggregate(p->data, len))
            p->data[0] ^= 0x80; /* a plain record here */
        size_t klen = 1 + (len ? data[at] % 4 : 0);
        for (size_t k = 0; k < klen; k++)
            p->key[k] = (char)(1 + (k < len ? data[at + k] : n) % 127);
        p->key[klen] = '\0';
        snprintf(p->seq, sizeof p->seq, "4968%010u%02zu", h, n);
        n++;
        if (!bar)
            break;
        at += len + 1;
    }

    /* One more record: every piece as a KPL aggregate. */
    sl_kpl_sub subs[MAX_PIECES];
    for (size_t i = 0; i < n; i++)
        subs[i] = (sl_kpl_sub){pieces[i].key, pieces[i].data, pieces[i].len};
    unsigned char *agg;
    size_t agg_len;
    FUZZ_CHECK(sl_kpl_build(subs, n, &agg, &agg_len) == 0, "no memory");
    char agg_seq[48], arrival[40], behind[24], iterator[40];
    snprintf(agg_seq, sizeof agg_seq, "4968%010u%02zu", h, n);
    long long arrival_ms = 1400000000000LL + h % 1000000000u;
    snprintf(arrival, sizeof arrival, "%lld.%03lld", arrival_ms / 1000,
             arrival_ms % 1000);
    long long millis_behind = h % 3 == 0 ? -1 : (long long)(h % 86400000u);
    snprintf(behind, sizeof behind, "%lld", millis_behind);
    snprintf(iterator, sizeof iterator, "AAAAAAAAAAH%08x", h);
    bool closed = h % 5 == 0;

    yajl_gen g = sl_json_gen_new();
    FUZZ_CHECK(g, "no memory");
    yajl_gen_map_open(g);
    gen_str(g, "Records");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; i++)
        gen_record(g, pieces[i].seq, pieces[i].key, pieces[i].data,
                   pieces[i].len, arrival, (h >> i) & 1);
    gen_record(g, agg_seq, "agg", agg, agg_len, arrival, false);
    yajl_gen_array_close(g);
    gen_str(g, "NextShardIterator");
    if (closed)
        yajl_gen_null(g);
    else
        gen_str(g, iterator);
    if (millis_behind >= 0) {
        gen_str(g, "MillisBehindLatest");
        gen_num(g, behind);
    }
    if (closed) {
        gen_str(g, "ChildShards");
        yajl_gen_array_open(g);
        yajl_gen_map_open(g);
        gen_str(g, "ShardId");
        gen_str(g, "shardId-000000000001");
        gen_str(g, "ParentShards");
        yajl_gen_array_open(g);
        gen_str(g, "shardId-000000000000");
        yajl_gen_array_close(g);
        yajl_gen_map_close(g);
        yajl_gen_array_close(g);
    }
    FUZZ_CHECK(yajl_gen_map_close(g) == yajl_gen_status_ok, "yajl_gen");
    size_t text_len;
    const char *text = sl_json_gen_text(g, &text_len);

    sl_kinesis_batch b;
    char why[300] = "";
    sl_kinesis_status st =
        sl_kinesis_parse_records(text, text_len, &b, why, sizeof why);
    FUZZ_CHECK(st == SL_KINESIS_OK, "a built reply is refused: %s (%s)", why,
               fuzz_show(text, text_len));
    check_batch(&b);
    FUZZ_CHECK(b.n == 2 * n, "%zu pieces, plain and aggregated, gave %zu", n,
               b.n);
    for (size_t i = 0; i < n; i++) {
        const piece *p = &pieces[i];
        const sl_kinesis_record *r = &b.recs[i], *s = &b.recs[n + i];
        FUZZ_CHECK(same_record(r, p->seq, p->key, p->data, p->len) &&
                       r->n_sub == 0 && r->arrival_ms == arrival_ms,
                   "record %zu: %s key %s seq %s, not %s key %s seq %s", i,
                   fuzz_show(r->data, r->len), r->partition_key, r->seq,
                   fuzz_show(p->data, p->len), p->key, p->seq);
        FUZZ_CHECK(same_record(s, agg_seq, p->key, p->data, p->len) &&
                       s->subseq == i && s->n_sub == n &&
                       s->arrival_ms == arrival_ms,
                   "sub-record %zu: %s key %s, not %s key %s", i,
                   fuzz_show(s->data, s->len), s->partition_key,
                   fuzz_show(p->data, p->len), p->key);
    }
    if (closed)
        FUZZ_CHECK(!b.next_iterator, "a closed shard has an iterator");
    else
        FUZZ_CHECK(b.next_iterator && !strcmp(b.next_iterator, iterator),
                   "the iterator is %s", b.next_iterator);
    FUZZ_CHECK(b.millis_behind == millis_behind, "MillisBehindLatest %lld",
               (long long)b.millis_behind);
    sl_kinesis_batch_free(&b);
    yajl_gen_free(g);
    sl_free(agg);
    for (size_t i = 0; i < n; i++)
        free(pieces[i].data);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    deep_reply();
    parse_any(data, size);
    classify_any(data, size);
    check_base64(data, size);
    built_reply(data, size);
    return 0;
}
