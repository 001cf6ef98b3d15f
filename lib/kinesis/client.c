/*
 * The Kinesis calls: each a POST of a JSON body to the stream's endpoint
 * (X-Amz-Target: Kinesis_20131202.ACTION), signed by libcurl (SigV4,
 * "aws:amz:REGION:kinesis"), with a timeout, its reply classified into
 * sl_kinesis_status (throttled, expired iterator, not found, transient,
 * failed) by reply.c, which also reads GetRecords' records (base64, KPL
 * aggregates split by kpl.c). Test builds can make chosen calls fail
 * (SLUICE_KINESIS_FAULT, below).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "kinesis.h"
#include "reply.h"
#include "../aws/credentials.h"
#include "../json.h"
#include "../util.h"

#define DEFAULT_TIMEOUT_MS 10000L
#define REPLY_MAX          (64u << 20) /* GetRecords: 10 MiB, base64'd */
#define STREAM_NAME_MAX    128
#define FAULT_LIST_MAX     64

/* Test builds: which calls to fail. SLUICE_KINESIS_FAULT holds clauses
 * split by ';': get_throttle=2,5 (the 2nd and 5th GetRecords of this
 * handle answer THROTTLED), get_expired=3 (EXPIRED_ITERATOR), put_fail=7
 * (every 7th record given to PutRecords fails, with
 * ProvisionedThroughputExceededException, and is not sent), get_limit=50
 * (no GetRecords returns more than 50 records, so that a shard takes
 * many reads). */
typedef struct {
    unsigned long get_throttle[FAULT_LIST_MAX], get_expired[FAULT_LIST_MAX];
    size_t n_throttle, n_expired;
    unsigned long put_every, get_limit;
    unsigned long get_calls, put_records;
} fault_plan;

struct sl_kinesis {
    char *location; /* "kinesis://STREAM", for messages */
    char *stream;
    char *endpoint; /* scheme://host[:port][/path], no trailing '/' */
    char *sigv4;    /* "aws:amz:REGION:kinesis" */
    char *ca_bundle;
    sl_aws_chain *creds;
    CURL *easy;
    long timeout_ms;
    fault_plan fault;
};

#ifdef SLUICE_FAULT_INJECTION
static void
fault_list(const char *s, size_t len, unsigned long *list, size_t *n)
{
    while (len > 0 && *n < FAULT_LIST_MAX) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s)
            break;
        list[(*n)++] = v;
        size_t used = (size_t)(end - s);
        if (used >= len)
            break;
        s = end + 1; /* past the comma */
        len -= used + 1;
    }
}

static void
fault_load(fault_plan *f)
{
    const char *spec = getenv("SLUICE_KINESIS_FAULT");
    while (spec && *spec) {
        const char *end = strchr(spec, ';');
        size_t len = end ? (size_t)(end - spec) : strlen(spec);
        const char *eq = memchr(spec, '=', len);
        if (eq) {
            size_t name = (size_t)(eq - spec), rest = len - name - 1;
            if (name == 12 && memcmp(spec, "get_throttle", 12) == 0)
                fault_list(eq + 1, rest, f->get_throttle, &f->n_throttle);
            else if (name == 11 && memcmp(spec, "get_expired", 11) == 0)
                fault_list(eq + 1, rest, f->get_expired, &f->n_expired);
            else if (name == 8 && memcmp(spec, "put_fail", 8) == 0)
                f->put_every = strtoul(eq + 1, NULL, 10);
            else if (name == 9 && memcmp(spec, "get_limit", 9) == 0)
                f->get_limit = strtoul(eq + 1, NULL, 10);
        }
        spec = end ? end + 1 : NULL;
    }
}

static bool
fault_listed(const unsigned long *list, size_t n, unsigned long call)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == call)
            return true;
    return false;
}
#endif

/* --------------------------------------------------------------- open */

static bool
valid_stream_name(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= STREAM_NAME_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789_.-") == n;
}

void
sl_kinesis_close(sl_kinesis *k)
{
    if (!k)
        return;
    if (k->easy)
        curl_easy_cleanup(k->easy);
    sl_aws_chain_free(k->creds);
    sl_free(k->location);
    sl_free(k->stream);
    sl_free(k->endpoint);
    sl_free(k->sigv4);
    sl_free(k->ca_bundle);
    sl_free(k);
}

sluice_err
sl_kinesis_open(sl_kinesis **out, const char *location, char *why,
                size_t why_size)
{
    static const char scheme[] = "kinesis://";
    sl_kinesis *k = NULL;
    sluice_err err = SLUICE_ENOMEM;
    *out = NULL;
    if (!location || strncmp(location, scheme, sizeof scheme - 1) != 0) {
        sl_fmt(why, why_size, "'%.200s' is not a kinesis://STREAM location",
               location ? location : "");
        return SLUICE_EINVAL;
    }
    const char *name = location + sizeof scheme - 1;
    if (!valid_stream_name(name)) {
        sl_fmt(why, why_size,
               "%.200s: a stream name is 1 to 128 letters, digits, '_', "
               "'.' or '-'",
               location);
        return SLUICE_EINVAL;
    }
    char region[64];
    if (!sl_aws_region(region, sizeof region)) {
        sl_fmt(why, why_size,
               "%s: no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, "
               "or region in the profile)",
               location);
        return SLUICE_ECONFIG;
    }
    size_t rlen = strlen(region);
    if (rlen > 40 ||
        strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != rlen) {
        sl_fmt(why, why_size, "%s: the region '%.40s' is not a region name",
               location, region);
        return SLUICE_ECONFIG;
    }
    if (!(k = sl_calloc(1, sizeof *k)))
        goto fail;
    k->timeout_ms = DEFAULT_TIMEOUT_MS;
    if (!(k->location = sl_strdup(location)) || !(k->stream = sl_strdup(name)))
        goto fail;

    const char *endpoint = sl_env("AWS_ENDPOINT_URL_KINESIS");
    const char *what = "AWS_ENDPOINT_URL_KINESIS";
    if (!endpoint && (endpoint = sl_env("AWS_ENDPOINT_URL")))
        what = "AWS_ENDPOINT_URL";
    sl_buf b;
    sl_buf_init(&b);
    if (endpoint) {
        if (strncasecmp(endpoint, "http://", 7) != 0 &&
            strncasecmp(endpoint, "https://", 8) != 0) {
            sl_fmt(why, why_size, "%s: %s '%.200s' is not an http or https URL",
                   location, what, endpoint);
            err = SLUICE_EINVAL;
            goto fail;
        }
        size_t n = strlen(endpoint);
        while (n > 0 && endpoint[n - 1] == '/')
            n--;
        if (sl_buf_append(&b, endpoint, n) != 0)
            goto fail;
    } else if (sl_buf_printf(&b, "https://kinesis.%s.amazonaws.com", region))
        goto fail;
    k->endpoint = b.data;
    size_t n = strlen(region) + 24;
    if (!k->endpoint || !(k->sigv4 = sl_malloc(n)))
        goto fail;
    sl_fmt(k->sigv4, n, "aws:amz:%s:kinesis", region);
    const char *ca = sl_env("AWS_CA_BUNDLE");
    if (ca && !(k->ca_bundle = sl_strdup(ca)))
        goto fail;
    if (!(k->easy = curl_easy_init()) || !(k->creds = sl_aws_chain_new()))
        goto fail;
    /* Found now, so that missing credentials fail at once, in one line
     * saying where the chain looked. */
    sl_aws_creds creds;
    char cwhy[400];
    err = sl_aws_chain_get(k->creds, &creds, cwhy, sizeof cwhy);
    memset(&creds, 0, sizeof creds);
    if (err != SLUICE_OK) {
        sl_fmt(why, why_size, "%s: %s", location, cwhy);
        goto fail;
    }
#ifdef SLUICE_FAULT_INJECTION
    fault_load(&k->fault);
#endif
    *out = k;
    return SLUICE_OK;
fail:
    if (err == SLUICE_ENOMEM)
        sl_copy(why, why_size, "out of memory");
    sl_kinesis_close(k);
    return err;
}

const char *
sl_kinesis_stream(const sl_kinesis *k)
{
    return k->stream;
}

const char *
sl_kinesis_endpoint(const sl_kinesis *k)
{
    return k->endpoint;
}

void
sl_kinesis_set_timeout(sl_kinesis *k, long ms)
{
    k->timeout_ms = ms > 0 ? ms : DEFAULT_TIMEOUT_MS;
}

/* --------------------------------------------------------------- calls */

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
    sl_buf *b = arg;
    size_t len = size * n;
    if (b->len + len > REPLY_MAX || sl_buf_append(b, data, len) != 0)
        return 0;
    return len;
}

static bool
add_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *grown = curl_slist_append(*list, line);
    if (!grown)
        return false;
    *list = grown;
    return true;
}

/* POST `body` as `action`; the reply's body in *reply (terminated). */
static sl_kinesis_status
call(sl_kinesis *k, const char *action, const char *body, size_t body_len,
     sl_buf *reply, char *why, size_t why_size)
{
    sl_aws_creds creds;
    char cwhy[400], errbuf[CURL_ERROR_SIZE];
    struct curl_slist *headers = NULL;
    sl_kinesis_status st = SL_KINESIS_FAILED;
    sl_buf_clear(reply);
    if (sl_aws_chain_get(k->creds, &creds, cwhy, sizeof cwhy) != SLUICE_OK) {
        sl_fmt(why, why_size, "%s: %s: %s", k->location, action, cwhy);
        return SL_KINESIS_FAILED;
    }
    char target[96], *token = NULL;
    sl_fmt(target, sizeof target, "X-Amz-Target: Kinesis_20131202.%s", action);
    if (creds.session_token[0]) {
        size_t n = strlen(creds.session_token) + 32;
        if ((token = sl_malloc(n)))
            sl_fmt(token, n, "X-Amz-Security-Token: %s", creds.session_token);
    }
    bool ok =
        add_header(&headers, "Content-Type: application/x-amz-json-1.1") &&
        add_header(&headers, target) &&
        (!creds.session_token[0] || (token && add_header(&headers, token)));
    /* No "Expect:" line to turn 100-continue off: libcurl would sign a
     * header it does not send (tests/kinesis_sign.py caught it). */
    sl_free(token);
    if (!ok) {
        memset(&creds, 0, sizeof creds);
        curl_slist_free_all(headers);
        sl_copy(why, why_size, "out of memory");
        return SL_KINESIS_FAILED;
    }
    char url[1100];
    sl_fmt(url, sizeof url, "%s/", k->endpoint);
    CURL *e = k->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "sluice/0.1");
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, k->sigv4);
    curl_easy_setopt(e, CURLOPT_USERNAME, creds.access_key);
    curl_easy_setopt(e, CURLOPT_PASSWORD, creds.secret_key);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, reply);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, k->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     SL_MIN(k->timeout_ms, 5000L));
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    if (k->ca_bundle)
        curl_easy_setopt(e, CURLOPT_CAINFO, k->ca_bundle);
    errbuf[0] = '\0';
    CURLcode rc = curl_easy_perform(e);
    memset(&creds, 0, sizeof creds);
    curl_slist_free_all(headers);
    long http = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &http);
    if (rc != CURLE_OK) {
        const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
        if (rc == CURLE_OPERATION_TIMEDOUT)
            sl_fmt(why, why_size, "%s: %s: no answer from %s within %ld ms",
                   k->location, action, k->endpoint, k->timeout_ms);
        else
            sl_fmt(why, why_size, "%s: %s: %s: %s", k->location, action,
                   k->endpoint, detail);
        return rc == CURLE_WRITE_ERROR ? SL_KINESIS_FAILED
                                       : SL_KINESIS_TRANSIENT;
    }
    char detail[600];
    st = sl_kinesis_classify(http, reply->data, reply->len, detail,
                             sizeof detail);
    if (st != SL_KINESIS_OK)
        sl_fmt(why, why_size, "%s: %s: %s", k->location, action, detail);
    else
        why[0] = '\0';
    return st;
}

sl_kinesis_status
sl_kinesis_call(sl_kinesis *k, const char *action, const char *body,
                char **reply, char *why, size_t why_size)
{
    sl_buf b;
    sl_buf_init(&b);
    *reply = NULL;
    sl_kinesis_status st = call(k, action, body ? body : "{}",
                                body ? strlen(body) : 2, &b, why, why_size);
    if (b.len > 0) {
        /* The caller frees with free(): hand over a plain copy. */
        *reply = malloc(b.len + 1);
        if (*reply)
            memcpy(*reply, b.data, b.len + 1);
    }
    sl_buf_free(&b);
    return st;
}

/* A JSON body of string members: name, value, ..., NULL. */
static int
gen_strings(yajl_gen g, const char *const *pairs)
{
    for (; pairs[0]; pairs += 2) {
        if (!pairs[1])
            continue;
        if (yajl_gen_string(g, (const unsigned char *)pairs[0],
                            strlen(pairs[0])) != yajl_gen_status_ok ||
            yajl_gen_string(g, (const unsigned char *)pairs[1],
                            strlen(pairs[1])) != yajl_gen_status_ok)
            return -1;
    }
    return 0;
}

static void
oom(char *why, size_t why_size)
{
    sl_copy(why, why_size, "out of memory");
}

void
sl_kinesis_shards_free(sl_kinesis_shard *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++) {
        sl_free(s[i].shard_id);
        sl_free(s[i].parent);
        sl_free(s[i].adjacent_parent);
        sl_free(s[i].starting_seq);
        sl_free(s[i].ending_seq);
    }
    sl_free(s);
}

/* Copy the shards of one ListShards page; -1 when out of memory, -2
 * when the page is no list of shards. */
static int
take_shards(yajl_val tree, sl_kinesis_shard **shards, size_t *n, size_t *cap)
{
    yajl_val list = sl_kinesis_member(tree, "Shards", yajl_t_array);
    if (!list)
        return -2;
    for (size_t i = 0; i < YAJL_GET_ARRAY(list)->len; i++) {
        yajl_val s = YAJL_GET_ARRAY(list)->values[i];
        const char *id =
            YAJL_IS_OBJECT(s) ? sl_json_member_str(s, "ShardId") : NULL;
        if (!id)
            return -2;
        if (*n == *cap) {
            size_t want = *cap ? *cap * 2 : 16;
            sl_kinesis_shard *g = sl_realloc(*shards, want * sizeof *g);
            if (!g)
                return -1;
            *shards = g;
            *cap = want;
        }
        sl_kinesis_shard *out = &(*shards)[(*n)++];
        memset(out, 0, sizeof *out);
        const char *range[] = {"SequenceNumberRange", NULL};
        yajl_val r = yajl_tree_get(s, range, yajl_t_object);
        const char *start =
            r ? sl_json_member_str(r, "StartingSequenceNumber") : NULL;
        const char *end =
            r ? sl_json_member_str(r, "EndingSequenceNumber") : NULL;
        const char *parent = sl_json_member_str(s, "ParentShardId");
        const char *adjacent = sl_json_member_str(s, "AdjacentParentShardId");
        if (!(out->shard_id = sl_strdup(id)) ||
            (parent && !(out->parent = sl_strdup(parent))) ||
            (adjacent && !(out->adjacent_parent = sl_strdup(adjacent))) ||
            (start && !(out->starting_seq = sl_strdup(start))) ||
            (end && !(out->ending_seq = sl_strdup(end))))
            return -1;
    }
    return 0;
}

sl_kinesis_status
sl_kinesis_list_shards(sl_kinesis *k, sl_kinesis_shard **shards, size_t *n,
                       char *why, size_t why_size)
{
    sl_kinesis_shard *list = NULL;
    size_t count = 0, cap = 0;
    char *next = NULL;
    sl_buf reply;
    sl_buf_init(&reply);
    sl_kinesis_status st = SL_KINESIS_OK;
    *shards = NULL;
    *n = 0;
    do {
        yajl_gen g = sl_json_gen_new();
        /* NextToken names the stream itself: StreamName must not come
         * with it. */
        const char *pairs[] = {"StreamName", next ? NULL : k->stream,
                               "NextToken", next, NULL};
        size_t len;
        if (!g || yajl_gen_map_open(g) != yajl_gen_status_ok ||
            gen_strings(g, pairs) != 0 ||
            yajl_gen_map_close(g) != yajl_gen_status_ok) {
            if (g)
                yajl_gen_free(g);
            oom(why, why_size);
            st = SL_KINESIS_FAILED;
            break;
        }
        const char *body = sl_json_gen_text(g, &len);
        st = call(k, "ListShards", body, len, &reply, why, why_size);
        yajl_gen_free(g);
        sl_free(next);
        next = NULL;
        if (st != SL_KINESIS_OK)
            break;
        char detail[200];
        yajl_val tree =
            sl_kinesis_parse_tree(reply.data, reply.len, detail, sizeof detail);
        int rc = tree ? take_shards(tree, &list, &count, &cap) : -2;
        const char *token = tree ? sl_json_member_str(tree, "NextToken") : NULL;
        if (rc == 0 && token && *token && !(next = sl_strdup(token)))
            rc = -1;
        if (tree)
            yajl_tree_free(tree);
        if (rc == -1) {
            oom(why, why_size);
            st = SL_KINESIS_FAILED;
        } else if (rc == -2) {
            sl_fmt(why, why_size, "%s: ListShards: %s", k->location,
                   tree ? "the reply has no list of shards" : detail);
            st = SL_KINESIS_FAILED;
        }
    } while (st == SL_KINESIS_OK && next);
    sl_free(next);
    sl_buf_free(&reply);
    if (st != SL_KINESIS_OK) {
        sl_kinesis_shards_free(list, count);
        return st;
    }
    *shards = list;
    *n = count;
    return SL_KINESIS_OK;
}

sl_kinesis_status
sl_kinesis_iterator(sl_kinesis *k, const char *shard_id, sl_kinesis_from from,
                    const char *seq, int64_t at_ms, char **iterator, char *why,
                    size_t why_size)
{
    static const char *const types[] = {"TRIM_HORIZON", "LATEST",
                                        "AT_TIMESTAMP", "AT_SEQUENCE_NUMBER",
                                        "AFTER_SEQUENCE_NUMBER"};
    *iterator = NULL;
    if ((unsigned)from >= SL_ARRAY_LEN(types) ||
        ((from == SL_KINESIS_AT_SEQUENCE ||
          from == SL_KINESIS_AFTER_SEQUENCE) &&
         (!seq || !*seq))) {
        sl_fmt(why, why_size, "%s: GetShardIterator: no sequence number",
               k->location);
        return SL_KINESIS_FAILED;
    }
    bool by_seq =
        from == SL_KINESIS_AT_SEQUENCE || from == SL_KINESIS_AFTER_SEQUENCE;
    const char *pairs[] = {"StreamName",
                           k->stream,
                           "ShardId",
                           shard_id,
                           "ShardIteratorType",
                           types[from],
                           "StartingSequenceNumber",
                           by_seq ? seq : NULL,
                           NULL};
    yajl_gen g = sl_json_gen_new();
    int bad = !g || yajl_gen_map_open(g) != yajl_gen_status_ok ||
              gen_strings(g, pairs) != 0;
    if (!bad && from == SL_KINESIS_AT_TIMESTAMP) {
        /* Seconds since the epoch, as a JSON number. */
        char ts[40];
        sl_fmt(ts, sizeof ts, "%lld.%03lld", (long long)(at_ms / 1000),
               (long long)(at_ms % 1000));
        bad = yajl_gen_string(g, (const unsigned char *)"Timestamp", 9) !=
                  yajl_gen_status_ok ||
              yajl_gen_number(g, ts, strlen(ts)) != yajl_gen_status_ok;
    }
    if (bad || yajl_gen_map_close(g) != yajl_gen_status_ok) {
        if (g)
            yajl_gen_free(g);
        oom(why, why_size);
        return SL_KINESIS_FAILED;
    }
    size_t len;
    const char *body = sl_json_gen_text(g, &len);
    sl_buf reply;
    sl_buf_init(&reply);
    sl_kinesis_status st =
        call(k, "GetShardIterator", body, len, &reply, why, why_size);
    yajl_gen_free(g);
    if (st == SL_KINESIS_OK) {
        char detail[200];
        yajl_val tree =
            sl_kinesis_parse_tree(reply.data, reply.len, detail, sizeof detail);
        const char *it =
            tree ? sl_json_member_str(tree, "ShardIterator") : NULL;
        if (!it) {
            sl_fmt(why, why_size, "%s: GetShardIterator: %s", k->location,
                   tree ? "the reply has no ShardIterator" : detail);
            st = SL_KINESIS_FAILED;
        } else if (!(*iterator = sl_strdup(it))) {
            oom(why, why_size);
            st = SL_KINESIS_FAILED;
        }
        if (tree)
            yajl_tree_free(tree);
    }
    sl_buf_free(&reply);
    return st;
}

sl_kinesis_status
sl_kinesis_get_records(sl_kinesis *k, const char *iterator, int limit,
                       sl_kinesis_batch *out, char *why, size_t why_size)
{
    memset(out, 0, sizeof *out);
    out->millis_behind = -1;
#ifdef SLUICE_FAULT_INJECTION
    if (k->fault.get_limit && (unsigned long)limit > k->fault.get_limit)
        limit = (int)k->fault.get_limit;
    unsigned long nth = ++k->fault.get_calls;
    if (fault_listed(k->fault.get_throttle, k->fault.n_throttle, nth)) {
        sl_fmt(why, why_size,
               "%s: GetRecords: ProvisionedThroughputExceededException: "
               "injected (call %lu)",
               k->location, nth);
        return SL_KINESIS_THROTTLED;
    }
    if (fault_listed(k->fault.get_expired, k->fault.n_expired, nth)) {
        sl_fmt(why, why_size,
               "%s: GetRecords: ExpiredIteratorException: injected (call "
               "%lu)",
               k->location, nth);
        return SL_KINESIS_EXPIRED_ITERATOR;
    }
#endif
    if (limit < 1 || limit > 10000)
        limit = 10000;
    sl_buf reply;
    sl_buf_init(&reply);
    yajl_gen g = sl_json_gen_new();
    const char *pairs[] = {"ShardIterator", iterator, NULL};
    char lim[16];
    sl_fmt(lim, sizeof lim, "%d", limit);
    if (!g || yajl_gen_map_open(g) != yajl_gen_status_ok ||
        gen_strings(g, pairs) != 0 ||
        yajl_gen_string(g, (const unsigned char *)"Limit", 5) !=
            yajl_gen_status_ok ||
        yajl_gen_number(g, lim, strlen(lim)) != yajl_gen_status_ok ||
        yajl_gen_map_close(g) != yajl_gen_status_ok) {
        if (g)
            yajl_gen_free(g);
        oom(why, why_size);
        return SL_KINESIS_FAILED;
    }
    size_t len;
    const char *text = sl_json_gen_text(g, &len);
    sl_kinesis_status st =
        call(k, "GetRecords", text, len, &reply, why, why_size);
    yajl_gen_free(g);
    if (st == SL_KINESIS_OK) {
        char detail[300];
        st = sl_kinesis_parse_records(reply.data, reply.len, out, detail,
                                      sizeof detail);
        if (st != SL_KINESIS_OK)
            sl_fmt(why, why_size, "%s: GetRecords: %s", k->location, detail);
    }
    sl_buf_free(&reply);
    return st;
}

/* Read a PutRecords reply: which of the `n_sent` records failed, into
 * failed[map[i]]. */
static sl_kinesis_status
read_put_reply(sl_kinesis *k, const sl_buf *reply, const size_t *map,
               size_t n_sent, bool *failed, size_t *n_failed, char *why,
               size_t why_size)
{
    char detail[200];
    yajl_val tree =
        sl_kinesis_parse_tree(reply->data, reply->len, detail, sizeof detail);
    yajl_val list =
        tree ? sl_kinesis_member(tree, "Records", yajl_t_array) : NULL;
    if (!list || YAJL_GET_ARRAY(list)->len != n_sent) {
        sl_fmt(why, why_size, "%s: PutRecords: %s", k->location,
               !tree ? detail : "the reply's Records do not match the call");
        if (tree)
            yajl_tree_free(tree);
        return SL_KINESIS_FAILED;
    }
    for (size_t i = 0; i < n_sent; i++) {
        yajl_val r = YAJL_GET_ARRAY(list)->values[i];
        const char *code =
            YAJL_IS_OBJECT(r) ? sl_json_member_str(r, "ErrorCode") : NULL;
        if (!code && YAJL_IS_OBJECT(r) &&
            sl_json_member_str(r, "SequenceNumber"))
            continue;
        failed[map[i]] = true;
        if ((*n_failed)++ == 0) {
            const char *msg = YAJL_IS_OBJECT(r)
                                  ? sl_json_member_str(r, "ErrorMessage")
                                  : NULL;
            sl_fmt(why, why_size, "%s%s%.200s",
                   code ? code : "a record without a result", msg ? ": " : "",
                   msg ? msg : "");
        }
    }
    yajl_tree_free(tree);
    return SL_KINESIS_OK;
}

sl_kinesis_status
sl_kinesis_put_records(sl_kinesis *k, const sl_kinesis_put *recs, size_t n,
                       bool *failed, size_t *n_failed, char *why,
                       size_t why_size)
{
    *n_failed = 0;
    why[0] = '\0';
    for (size_t i = 0; i < n; i++)
        failed[i] = false;
    if (n == 0)
        return SL_KINESIS_OK;
    if (n > SL_KINESIS_PUT_MAX_RECORDS) {
        sl_fmt(why, why_size, "%s: PutRecords: %zu records, over %d",
               k->location, n, SL_KINESIS_PUT_MAX_RECORDS);
        return SL_KINESIS_FAILED;
    }
    size_t *map = sl_calloc(n, sizeof *map);
    yajl_gen g = sl_json_gen_new();
    sl_kinesis_status st = SL_KINESIS_FAILED;
    size_t n_sent = 0;
    if (!map || !g)
        goto nomem;
    const char *pairs[] = {"StreamName", k->stream, NULL};
    if (yajl_gen_map_open(g) != yajl_gen_status_ok ||
        gen_strings(g, pairs) != 0 ||
        yajl_gen_string(g, (const unsigned char *)"Records", 7) !=
            yajl_gen_status_ok ||
        yajl_gen_array_open(g) != yajl_gen_status_ok)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
#ifdef SLUICE_FAULT_INJECTION
        if (k->fault.put_every &&
            ++k->fault.put_records % k->fault.put_every == 0) {
            failed[i] = true;
            if ((*n_failed)++ == 0)
                sl_copy(why, why_size,
                        "ProvisionedThroughputExceededException: injected");
            continue;
        }
#endif
        char *b64 = sl_kinesis_b64_encode(recs[i].data, recs[i].len);
        const char *rec_pairs[] = {"Data", b64, "PartitionKey",
                                   recs[i].partition_key, NULL};
        int bad = !b64 || yajl_gen_map_open(g) != yajl_gen_status_ok ||
                  gen_strings(g, rec_pairs) != 0 ||
                  yajl_gen_map_close(g) != yajl_gen_status_ok;
        sl_free(b64);
        if (bad)
            goto nomem;
        map[n_sent++] = i;
    }
    if (yajl_gen_array_close(g) != yajl_gen_status_ok ||
        yajl_gen_map_close(g) != yajl_gen_status_ok)
        goto nomem;
    if (n_sent == 0) {
        st = SL_KINESIS_OK;
        goto done;
    }
    size_t len;
    const char *text = sl_json_gen_text(g, &len);
    sl_buf reply;
    sl_buf_init(&reply);
    char first[300];
    sl_copy(first, sizeof first, why);
    st = call(k, "PutRecords", text, len, &reply, why, why_size);
    if (st == SL_KINESIS_OK) {
        st = read_put_reply(k, &reply, map, n_sent, failed, n_failed, why,
                            why_size);
        if (first[0] && st == SL_KINESIS_OK)
            sl_copy(why, why_size, first); /* the first failure's code */
    }
    sl_buf_free(&reply);
    goto done;
nomem:
    oom(why, why_size);
    st = SL_KINESIS_FAILED;
done:
    if (g)
        yajl_gen_free(g);
    sl_free(map);
    return st;
}
