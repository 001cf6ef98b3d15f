/*
 * What a Kinesis reply says, apart from the HTTP that brought it: the
 * status of a reply (sl_kinesis_classify), GetRecords' records with
 * their data base64-decoded and KPL aggregates split by kpl.c
 * (sl_kinesis_parse_records), sequence-number order. No I/O: client.c
 * makes the calls; fuzz/fuzz_records.c feeds these functions any bytes.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>

#include "kinesis.h"
#include "reply.h"
#include "../json.h"
#include "../util.h"

static void
oom(char *why, size_t why_size)
{
    sl_copy(why, why_size, "out of memory");
}

const char *
sl_kinesis_status_name(sl_kinesis_status st)
{
    switch (st) {
    case SL_KINESIS_OK:
        return "OK";
    case SL_KINESIS_THROTTLED:
        return "THROTTLED";
    case SL_KINESIS_EXPIRED_ITERATOR:
        return "EXPIRED_ITERATOR";
    case SL_KINESIS_NOT_FOUND:
        return "NOT_FOUND";
    case SL_KINESIS_TRANSIENT:
        return "TRANSIENT";
    case SL_KINESIS_FAILED:
        return "FAILED";
    }
    return "UNKNOWN";
}

int
sl_kinesis_seq_cmp(const char *a, uint32_t a_sub, const char *b, uint32_t b_sub)
{
    /* Decimal without leading zeros: the longer is the larger. */
    while (*a == '0' && a[1])
        a++;
    while (*b == '0' && b[1])
        b++;
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return la < lb ? -1 : 1;
    int c = strcmp(a, b);
    if (c != 0)
        return c < 0 ? -1 : 1;
    return a_sub < b_sub ? -1 : a_sub > b_sub ? 1 : 0;
}

/* ------------------------------------------------------------- base64 */

char *
sl_kinesis_b64_encode(const unsigned char *data, size_t len)
{
    if (len > (SIZE_MAX / 4) * 3 - 3 || len > INT32_MAX)
        return NULL;
    char *out = sl_malloc((len + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    out[n < 0 ? 0 : n] = '\0';
    return out;
}

static bool
b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int
sl_kinesis_b64_decode(const char *text, size_t len, unsigned char **out,
                      size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (len % 4 != 0 || len > INT32_MAX)
        return -1;
    /* EVP_DecodeBlock reads '=' anywhere as 'A' and skips white space at
     * either end: only the alphabet, then at most two '=', get to it. */
    size_t pad = 0;
    while (pad < 2 && pad < len && text[len - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < len - pad; i++)
        if (!b64_char(text[i]))
            return -1;
    unsigned char *buf = sl_malloc(len / 4 * 3 + 1);
    if (!buf)
        return -1;
    int n =
        len ? EVP_DecodeBlock(buf, (const unsigned char *)text, (int)len) : 0;
    if (n < 0) {
        sl_free(buf);
        return -1;
    }
    /* EVP_DecodeBlock counts the bytes the padding stands for. */
    *out = buf;
    *out_len = (size_t)n - pad;
    return 0;
}

/* ------------------------------------------------------ classification */

yajl_val
sl_kinesis_member(yajl_val obj, const char *name, yajl_type type)
{
    const char *path[] = {name, NULL};
    return yajl_tree_get(obj, path, type);
}

/* A JSON number member as a double; `dflt` when absent. */
static double
member_number(yajl_val obj, const char *name, double dflt)
{
    yajl_val v = sl_kinesis_member(obj, name, yajl_t_number);
    if (!v)
        return dflt;
    if (YAJL_IS_INTEGER(v))
        return (double)YAJL_GET_INTEGER(v);
    if (YAJL_IS_DOUBLE(v))
        return YAJL_GET_DOUBLE(v);
    return dflt;
}

/* The nesting a reply may have: a Kinesis reply has 4 levels or so. */
#define REPLY_DEPTH_MAX YAJL_MAX_DEPTH

yajl_val
sl_kinesis_parse_tree(const char *body, size_t len, char *why, size_t why_size)
{
    char err[200];
    /* yajl_tree wants a terminated text: replies are kept so. */
    if (!body || strlen(body) != len) {
        sl_copy(why, why_size, "the reply is not JSON text");
        return NULL;
    }
    int deep = sl_json_too_deep(body, len, REPLY_DEPTH_MAX);
    if (deep != 0) {
        if (deep < 0)
            oom(why, why_size);
        else
            sl_fmt(why, why_size, "the reply nests more than %d levels deep",
                   REPLY_DEPTH_MAX);
        return NULL;
    }
    yajl_val tree = yajl_tree_parse(body, err, sizeof err);
    if (!tree) {
        char *nl = strchr(err, '\n');
        if (nl)
            *nl = '\0';
        sl_fmt(why, why_size, "the reply is not JSON (%s)", err);
    } else if (!YAJL_IS_OBJECT(tree)) {
        yajl_tree_free(tree);
        tree = NULL;
        sl_copy(why, why_size, "the reply is not a JSON object");
    }
    return tree;
}

static sl_kinesis_status
classify_code(const char *code)
{
    static const char *const throttled[] = {
        "ProvisionedThroughputExceededException", "LimitExceededException",
        "ThrottlingException", "KMSThrottlingException"};
    static const char *const transient[] = {
        "InternalFailure", "InternalFailureException", "ServiceUnavailable",
        "ServiceUnavailableException", "InternalServerError"};
    for (size_t i = 0; i < SL_ARRAY_LEN(throttled); i++)
        if (strcmp(code, throttled[i]) == 0)
            return SL_KINESIS_THROTTLED;
    for (size_t i = 0; i < SL_ARRAY_LEN(transient); i++)
        if (strcmp(code, transient[i]) == 0)
            return SL_KINESIS_TRANSIENT;
    if (strcmp(code, "ExpiredIteratorException") == 0)
        return SL_KINESIS_EXPIRED_ITERATOR;
    if (strcmp(code, "ResourceNotFoundException") == 0)
        return SL_KINESIS_NOT_FOUND;
    return SL_KINESIS_FAILED;
}

sl_kinesis_status
sl_kinesis_classify(long http_status, const char *body, size_t len, char *why,
                    size_t why_size)
{
    if (http_status >= 200 && http_status < 300) {
        why[0] = '\0';
        return SL_KINESIS_OK;
    }
    char detail[200] = "";
    yajl_val tree =
        body && len ? sl_kinesis_parse_tree(body, len, detail, sizeof detail)
                    : NULL;
    const char *type = tree ? sl_json_member_str(tree, "__type") : NULL;
    const char *msg = tree ? sl_json_member_str(tree, "message") : NULL;
    if (tree && !msg)
        msg = sl_json_member_str(tree, "Message");
    sl_kinesis_status st;
    if (type && *type) {
        /* "com.amazonaws.kinesis.v20131202#ResourceNotFoundException" */
        const char *hash = strrchr(type, '#');
        const char *code = hash ? hash + 1 : type;
        st = classify_code(code);
        if (st == SL_KINESIS_FAILED && http_status >= 500)
            st = SL_KINESIS_TRANSIENT;
        char shown[300];
        sl_quote(shown, sizeof shown, msg ? msg : "", msg ? strlen(msg) : 0,
                 240);
        sl_fmt(why, why_size, "%s%s%s (HTTP %ld)", code, msg ? ": " : "",
               msg ? shown : "", http_status);
    } else {
        st = http_status >= 500 || http_status == 0 ? SL_KINESIS_TRANSIENT
             : http_status == 429                   ? SL_KINESIS_THROTTLED
                                                    : SL_KINESIS_FAILED;
        char shown[200];
        sl_quote(shown, sizeof shown, body ? body : "", body ? len : 0, 120);
        sl_fmt(why, why_size, "HTTP %ld%s%s", http_status,
               body && len ? ": " : "", body && len ? shown : "");
    }
    if (tree)
        yajl_tree_free(tree);
    return st;
}

void
sl_kinesis_batch_free(sl_kinesis_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        sl_free(b->recs[i].seq);
        sl_free(b->recs[i].partition_key);
        sl_free(b->recs[i].data);
        sl_free(b->recs[i].bad);
    }
    sl_free(b->recs);
    sl_free(b->next_iterator);
    memset(b, 0, sizeof *b);
    b->millis_behind = -1;
}

/* A record appended to the batch, owning `bytes` from now on (freed here
 * when out of memory: -1); `bad` (NULL: none) is copied. */
static int
push_record(sl_kinesis_batch *out, size_t *cap, const char *seq,
            const char *key, int64_t arrival_ms, unsigned char *bytes,
            size_t len, const char *bad)
{
    if (out->n == *cap) {
        size_t want = *cap ? *cap * 2 : 16;
        sl_kinesis_record *g = sl_realloc(out->recs, want * sizeof *g);
        if (!g) {
            sl_free(bytes);
            return -1;
        }
        out->recs = g;
        *cap = want;
    }
    sl_kinesis_record *rec = &out->recs[out->n++];
    memset(rec, 0, sizeof *rec);
    rec->data = bytes;
    rec->len = len;
    rec->arrival_ms = arrival_ms;
    if (!(rec->seq = sl_strdup(seq)) ||
        !(rec->partition_key = sl_strdup(key)) ||
        (bad && !(rec->bad = sl_strdup(bad))))
        return -1;
    return 0;
}

/*
 * A sequence number as Kinesis writes one (its API's pattern
 * "0|([1-9]\d{0,128})"): what sl_kinesis_seq_cmp orders and a checkpoint
 * can hold. Anything else would order wrongly against the checkpoint.
 */
static bool
valid_seq(const char *seq)
{
    size_t n = strlen(seq);
    return n >= 1 && n <= 129 && strspn(seq, "0123456789") == n &&
           (seq[0] != '0' || n == 1);
}

/* One record of a GetRecords reply into the batch: -1 no memory, -2 not
 * a record (why set). */
static int
take_record(yajl_val r, sl_kinesis_batch *out, size_t *cap, char *why,
            size_t why_size)
{
    const char *seq =
        YAJL_IS_OBJECT(r) ? sl_json_member_str(r, "SequenceNumber") : NULL;
    const char *data = seq ? sl_json_member_str(r, "Data") : NULL;
    const char *key = seq ? sl_json_member_str(r, "PartitionKey") : NULL;
    if (!seq || !data || !key) {
        sl_copy(why, why_size,
                "a record lacks SequenceNumber, Data or PartitionKey");
        return -2;
    }
    if (!valid_seq(seq)) {
        char shown[100];
        sl_quote(shown, sizeof shown, seq, strlen(seq), 60);
        sl_fmt(why, why_size,
               "record %s: its SequenceNumber is not a decimal number", shown);
        return -2;
    }
    /* Seconds since the epoch; 0 (unknown) when negative or too far
     * away for int64_t milliseconds. */
    double arrival = member_number(r, "ApproximateArrivalTimestamp", 0);
    int64_t arrival_ms = arrival >= 0 && arrival < 9e15
                             ? (int64_t)(arrival * 1000.0 + 0.5)
                             : 0;
    unsigned char *bytes;
    size_t len;
    if (sl_kinesis_b64_decode(data, strlen(data), &bytes, &len) != 0) {
        sl_fmt(why, why_size, "record %.60s: its Data is not base64", seq);
        return -2;
    }
    if (sl_kpl_is_aggregate(bytes, len)) {
        char reason[200];
        int rc = sl_kpl_parse(bytes, len, seq, arrival_ms, &out->recs, &out->n,
                              cap, reason, sizeof reason);
        if (rc == 0) {
            sl_free(bytes);
            return 0;
        }
        if (rc == -2) {
            sl_free(bytes);
            return -1;
        }
        /* Undecodable: handed on whole, with the reason. */
        return push_record(out, cap, seq, key, arrival_ms, bytes, len,
                           reason);
    }
    return push_record(out, cap, seq, key, arrival_ms, bytes, len, NULL);
}

sl_kinesis_status
sl_kinesis_parse_records(const char *body, size_t len, sl_kinesis_batch *out,
                         char *why, size_t why_size)
{
    memset(out, 0, sizeof *out);
    out->millis_behind = -1;
    char detail[200];
    yajl_val tree = sl_kinesis_parse_tree(body, len, detail, sizeof detail);
    if (!tree) {
        sl_copy(why, why_size, detail);
        return SL_KINESIS_FAILED;
    }
    sl_kinesis_status st = SL_KINESIS_OK;
    yajl_val list = sl_kinesis_member(tree, "Records", yajl_t_array);
    size_t cap = 0;
    if (!list) {
        sl_copy(why, why_size, "the reply has no Records");
        st = SL_KINESIS_FAILED;
        goto done;
    }
    for (size_t i = 0; i < YAJL_GET_ARRAY(list)->len; i++) {
        int rc = take_record(YAJL_GET_ARRAY(list)->values[i], out, &cap, why,
                             why_size);
        if (rc != 0) {
            if (rc == -1)
                oom(why, why_size);
            st = SL_KINESIS_FAILED;
            goto done;
        }
    }
    /* A closed shard read to its end has a null NextShardIterator. */
    const char *next = sl_json_member_str(tree, "NextShardIterator");
    if (next && !(out->next_iterator = sl_strdup(next))) {
        oom(why, why_size);
        st = SL_KINESIS_FAILED;
        goto done;
    }
    double behind = member_number(tree, "MillisBehindLatest", -1);
    out->millis_behind = behind >= 0 && behind < 9e18 ? (int64_t)behind : -1;
done:
    yajl_tree_free(tree);
    if (st != SL_KINESIS_OK)
        sl_kinesis_batch_free(out);
    return st;
}
