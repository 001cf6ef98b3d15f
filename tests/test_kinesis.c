/*
 * The Kinesis client's pieces that need no service: KPL aggregates built
 * with protobuf-c and taken apart again (and bad ones caught), GetRecords
 * replies parsed (base64, a closed shard's null iterator,
 * MillisBehindLatest), error replies classified, base64 at every padding.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/evp.h>

#include "test.h"

#include "kinesis/kinesis.h"
#include "util.h"

/* A GetRecords reply of one record whose data is `data`. */
static char *
reply_with(const unsigned char *data, size_t len, const char *seq,
           const char *next)
{
    char *b64 = sl_kinesis_b64_encode(data, len);
    ASSERT_NOT_NULL(b64);
    size_t n = strlen(b64) + 512;
    char *text = malloc(n);
    snprintf(text, n,
             "{\"Records\":[{\"SequenceNumber\":\"%s\","
             "\"ApproximateArrivalTimestamp\":1767323045.123,"
             "\"Data\":\"%s\",\"PartitionKey\":\"outer\"}],"
             "\"NextShardIterator\":%s,\"MillisBehindLatest\":2500}",
             seq, b64, next);
    sl_free(b64);
    return text;
}

TEST(base64_every_padding)
{
    const unsigned char bytes[] = {0x00, 0xff, 0x10, 0x80, 0x7f};
    for (size_t len = 0; len <= sizeof bytes; len++) {
        char *text = sl_kinesis_b64_encode(bytes, len);
        ASSERT_NOT_NULL(text);
        ASSERT_EQ(strlen(text), (len + 2) / 3 * 4);
        unsigned char *back;
        size_t back_len;
        ASSERT_EQ(sl_kinesis_b64_decode(text, strlen(text), &back, &back_len),
                  0);
        ASSERT_EQ(back_len, len);
        ASSERT(memcmp(back, bytes, len) == 0);
        sl_free(back);
        sl_free(text);
    }
    unsigned char *out;
    size_t out_len;
    ASSERT_EQ(sl_kinesis_b64_decode("abc", 3, &out, &out_len), -1);
    ASSERT_EQ(sl_kinesis_b64_decode("ab!d", 4, &out, &out_len), -1);
}

TEST(kpl_round_trip)
{
    const char *data[] = {"{\"url\":\"https://a.example/1.jpg\"}", "", "third"};
    sl_kpl_sub subs[] = {{"key-a", (const unsigned char *)data[0], 0},
                         {"key-b", (const unsigned char *)data[1], 0},
                         {"key-a", (const unsigned char *)data[2], 0}};
    for (size_t i = 0; i < 3; i++)
        subs[i].len = strlen(data[i]);
    unsigned char *agg;
    size_t agg_len;
    ASSERT_EQ(sl_kpl_build(subs, 3, &agg, &agg_len), 0);
    ASSERT(sl_kpl_is_aggregate(agg, agg_len));
    ASSERT(memcmp(agg, "\xF3\x89\x9A\xC2", 4) == 0);

    /* Through a GetRecords reply, as the service would hand it out. */
    char *text = reply_with(agg, agg_len, "4960000000000000001", "\"it-2\"");
    sl_kinesis_batch b;
    char why[300];
    ASSERT_EQ(sl_kinesis_parse_records(text, strlen(text), &b, why, sizeof why),
              SL_KINESIS_OK);
    ASSERT_EQ(b.n, 3);
    for (size_t i = 0; i < 3; i++) {
        ASSERT_STR_EQ(b.recs[i].seq, "4960000000000000001");
        ASSERT_EQ(b.recs[i].subseq, i);
        ASSERT_EQ(b.recs[i].n_sub, 3);
        ASSERT_NULL(b.recs[i].bad);
        ASSERT_EQ(b.recs[i].len, strlen(data[i]));
        ASSERT(memcmp(b.recs[i].data, data[i], b.recs[i].len) == 0);
        ASSERT_EQ(b.recs[i].arrival_ms, 1767323045123LL);
    }
    /* Keys from the table: key-a is stored once and named twice. */
    ASSERT_STR_EQ(b.recs[0].partition_key, "key-a");
    ASSERT_STR_EQ(b.recs[1].partition_key, "key-b");
    ASSERT_STR_EQ(b.recs[2].partition_key, "key-a");
    ASSERT_STR_EQ(b.next_iterator, "it-2");
    ASSERT_EQ(b.millis_behind, 2500);
    sl_kinesis_batch_free(&b);
    free(text);
    sl_free(agg);
}

/* A bad aggregate arrives whole, with the reason in `bad`. */
static void
expect_bad(const unsigned char *data, size_t len, const char *reason)
{
    char *text = reply_with(data, len, "77", "null");
    sl_kinesis_batch b;
    char why[300];
    ASSERT_EQ(sl_kinesis_parse_records(text, strlen(text), &b, why, sizeof why),
              SL_KINESIS_OK);
    ASSERT_EQ(b.n, 1);
    ASSERT_NOT_NULL(b.recs[0].bad);
    ASSERT_STR_CONTAINS(b.recs[0].bad, reason);
    ASSERT_EQ(b.recs[0].len, len);
    ASSERT(memcmp(b.recs[0].data, data, len) == 0);
    ASSERT_STR_EQ(b.recs[0].partition_key, "outer");
    ASSERT_EQ(b.recs[0].subseq, 0);
    ASSERT_NULL(b.next_iterator);
    sl_kinesis_batch_free(&b);
    free(text);
}

TEST(kpl_bad_md5_and_truncated)
{
    sl_kpl_sub subs[] = {{"k", (const unsigned char *)"0123456789", 10},
                         {"k", (const unsigned char *)"abcdefghij", 10}};
    unsigned char *agg;
    size_t len;
    ASSERT_EQ(sl_kpl_build(subs, 2, &agg, &len), 0);

    /* A flipped bit in the MD5. */
    agg[len - 1] ^= 1;
    expect_bad(agg, len, "MD5");
    agg[len - 1] ^= 1;

    /* The protobuf cut short, with an MD5 that matches what is left: the
     * protobuf itself must be refused. */
    size_t body = len - 4 - 16, cut = body - 5;
    unsigned char *trunc = malloc(4 + cut + 16);
    memcpy(trunc, agg, 4 + cut);
    unsigned int md_len;
    EVP_Digest(trunc + 4, cut, trunc + 4 + cut, &md_len, EVP_md5(), NULL);
    expect_bad(trunc, 4 + cut + 16, "protobuf");

    /* Shorter than magic and MD5. */
    expect_bad(agg, 10, "too short");
    free(trunc);
    sl_free(agg);
}

TEST(records_plain_and_closed_shard)
{
    const char *text =
        "{\"Records\":["
        "{\"SequenceNumber\":\"1\",\"ApproximateArrivalTimestamp\":1.5e9,"
        "\"Data\":\"aGVsbG8=\",\"PartitionKey\":\"p1\"},"
        "{\"SequenceNumber\":\"2\",\"ApproximateArrivalTimestamp\":1500000001,"
        "\"Data\":\"\",\"PartitionKey\":\"p2\"}],"
        "\"NextShardIterator\":null}";
    sl_kinesis_batch b;
    char why[300];
    ASSERT_EQ(sl_kinesis_parse_records(text, strlen(text), &b, why, sizeof why),
              SL_KINESIS_OK);
    ASSERT_EQ(b.n, 2);
    ASSERT_EQ(b.recs[0].len, 5);
    ASSERT(memcmp(b.recs[0].data, "hello", 5) == 0);
    ASSERT_EQ(b.recs[0].n_sub, 0);
    ASSERT_EQ(b.recs[0].arrival_ms, 1500000000000LL);
    ASSERT_EQ(b.recs[1].len, 0);
    ASSERT_EQ(b.recs[1].arrival_ms, 1500000001000LL);
    ASSERT_STR_EQ(b.recs[1].partition_key, "p2");
    /* Closed and read to its end; no MillisBehindLatest given. */
    ASSERT_NULL(b.next_iterator);
    ASSERT_EQ(b.millis_behind, -1);
    sl_kinesis_batch_free(&b);

    /* Not a reply: refused with a reason. */
    ASSERT_EQ(sl_kinesis_parse_records("{\"x\":1}", 7, &b, why, sizeof why),
              SL_KINESIS_FAILED);
    ASSERT_STR_CONTAINS(why, "Records");
    ASSERT_EQ(sl_kinesis_parse_records("[1", 2, &b, why, sizeof why),
              SL_KINESIS_FAILED);
    const char *bad64 = "{\"Records\":[{\"SequenceNumber\":\"9\","
                        "\"Data\":\"@@@@\",\"PartitionKey\":\"p\"}]}";
    ASSERT_EQ(
        sl_kinesis_parse_records(bad64, strlen(bad64), &b, why, sizeof why),
        SL_KINESIS_FAILED);
    ASSERT_STR_CONTAINS(why, "base64");
}

TEST(errors_classified)
{
    struct {
        long http;
        const char *body;
        sl_kinesis_status want;
        const char *why;
    } cases[] = {
        {200, "{}", SL_KINESIS_OK, ""},
        {400,
         "{\"__type\":\"ProvisionedThroughputExceededException\","
         "\"message\":\"Rate exceeded for shard\"}",
         SL_KINESIS_THROTTLED, "Rate exceeded"},
        {400, "{\"__type\":\"LimitExceededException\"}", SL_KINESIS_THROTTLED,
         "LimitExceededException"},
        {400,
         "{\"__type\":\"ExpiredIteratorException\",\"message\":\"Iterator "
         "expired\"}",
         SL_KINESIS_EXPIRED_ITERATOR, "ExpiredIteratorException"},
        {400,
         "{\"__type\":\"com.amazonaws.kinesis.v20131202#"
         "ResourceNotFoundException\",\"Message\":\"Stream s not found\"}",
         SL_KINESIS_NOT_FOUND, "ResourceNotFoundException: Stream s"},
        {500, "{\"__type\":\"InternalFailure\"}", SL_KINESIS_TRANSIENT,
         "InternalFailure"},
        {503, "<html>busy</html>", SL_KINESIS_TRANSIENT, "HTTP 503"},
        {502, "", SL_KINESIS_TRANSIENT, "HTTP 502"},
        {400,
         "{\"__type\":\"ValidationException\",\"message\":\"1 validation "
         "error\"}",
         SL_KINESIS_FAILED, "ValidationException"},
        {403,
         "{\"__type\":\"UnrecognizedClientException\",\"message\":\"The "
         "security token included in the request is invalid.\"}",
         SL_KINESIS_FAILED, "UnrecognizedClientException"},
        {400, "not json", SL_KINESIS_FAILED, "HTTP 400"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[300];
        sl_kinesis_status st =
            sl_kinesis_classify(cases[i].http, cases[i].body,
                                strlen(cases[i].body), why, sizeof why);
        if (st != cases[i].want)
            TEST_FAIL_("case %zu: %s, wanted %s (%s)", i,
                       sl_kinesis_status_name(st),
                       sl_kinesis_status_name(cases[i].want), why);
        ASSERT_STR_CONTAINS(why, cases[i].why);
    }
}

TEST(open_checks_location_and_region)
{
    sl_kinesis *k;
    char why[300];
    setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
    setenv("AWS_REGION", "eu-west-1", 1);
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_KINESIS");
    ASSERT_EQ(sl_kinesis_open(&k, "stream", why, sizeof why), SLUICE_EINVAL);
    ASSERT_STR_CONTAINS(why, "kinesis://STREAM");
    ASSERT_EQ(sl_kinesis_open(&k, "kinesis://bad/name", why, sizeof why),
              SLUICE_EINVAL);
    ASSERT_STR_CONTAINS(why, "stream name");
    ASSERT_EQ(sl_kinesis_open(&k, "kinesis://s", why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(sl_kinesis_stream(k), "s");
    ASSERT_STR_EQ(sl_kinesis_endpoint(k),
                  "https://kinesis.eu-west-1.amazonaws.com");
    sl_kinesis_close(k);
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9/", 1);
    ASSERT_EQ(sl_kinesis_open(&k, "kinesis://s", why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(sl_kinesis_endpoint(k), "http://127.0.0.1:9");
    sl_kinesis_close(k);
    setenv("AWS_ENDPOINT_URL_KINESIS", "ftp://x", 1);
    ASSERT_EQ(sl_kinesis_open(&k, "kinesis://s", why, sizeof why),
              SLUICE_EINVAL);
    ASSERT_STR_CONTAINS(why, "AWS_ENDPOINT_URL_KINESIS");
    unsetenv("AWS_ENDPOINT_URL_KINESIS");
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    setenv("AWS_CONFIG_FILE", "/nonexistent", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent", 1);
    ASSERT_EQ(sl_kinesis_open(&k, "kinesis://s", why, sizeof why),
              SLUICE_ECONFIG);
    ASSERT_STR_CONTAINS(why, "no AWS region");
}

/* A service that accepts and never answers: TRANSIENT within the
 * timeout, never a hang. */
TEST(timeout_is_transient)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ASSERT_EQ(listen(fd, 8), 0);
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(sa.sin_port));
    setenv("AWS_ENDPOINT_URL_KINESIS", url, 1);
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
    sl_kinesis *k;
    char why[300];
    ASSERT_EQ(sl_kinesis_open(&k, "kinesis://s", why, sizeof why), SLUICE_OK);
    sl_kinesis_set_timeout(k, 300);
    int64_t t0 = sl_mono_ms();
    char *it;
    ASSERT_EQ(sl_kinesis_iterator(k, "shardId-000000000000",
                                  SL_KINESIS_TRIM_HORIZON, NULL, 0, &it, why,
                                  sizeof why),
              SL_KINESIS_TRANSIENT);
    int64_t took = sl_mono_ms() - t0;
    ASSERT_GE(took, 250);
    ASSERT_LT(took, 3000);
    ASSERT_STR_CONTAINS(why, "no answer");
    ASSERT_STR_CONTAINS(why, "GetShardIterator");
    sl_kinesis_close(k);
    close(fd);
}

#ifdef SLUICE_FAULT_INJECTION
/* Test builds fail chosen GetRecords calls without asking the service
 * (kinesalite never throttles); the others go out as usual. */
TEST(fault_injection_get_records)
{
    setenv("SLUICE_KINESIS_FAULT", "get_throttle=1,3;get_expired=2", 1);
    /* Nothing listens on port 9 of loopback: a call that goes out fails
     * at once as TRANSIENT. */
    setenv("AWS_ENDPOINT_URL_KINESIS", "http://127.0.0.1:9", 1);
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
    sl_kinesis *k;
    char why[300];
    ASSERT_EQ(sl_kinesis_open(&k, "kinesis://s", why, sizeof why), SLUICE_OK);
    sl_kinesis_status want[] = {SL_KINESIS_THROTTLED,
                                SL_KINESIS_EXPIRED_ITERATOR,
                                SL_KINESIS_THROTTLED, SL_KINESIS_TRANSIENT};
    for (size_t i = 0; i < 4; i++) {
        sl_kinesis_batch b;
        sl_kinesis_status st =
            sl_kinesis_get_records(k, "it", 100, &b, why, sizeof why);
        if (st != want[i])
            TEST_FAIL_("call %zu: %s, wanted %s (%s)", i + 1,
                       sl_kinesis_status_name(st),
                       sl_kinesis_status_name(want[i]), why);
        ASSERT_STR_CONTAINS(why, "GetRecords");
        ASSERT_EQ(b.n, 0);
        sl_kinesis_batch_free(&b);
    }
    sl_kinesis_close(k);
}
#endif

TEST(sequence_numbers_compare)
{
    const char *small =
        "49680893166855564183839170886380196063791126795194990594";
    const char *next =
        "49680893166855564183839170886380196063791126795194990595";
    ASSERT_LT(sl_kinesis_seq_cmp(small, 0, next, 0), 0);
    ASSERT_GT(sl_kinesis_seq_cmp(next, 0, small, 0), 0);
    ASSERT_EQ(sl_kinesis_seq_cmp(small, 3, small, 3), 0);
    ASSERT_LT(sl_kinesis_seq_cmp(small, 2, small, 3), 0);
    ASSERT_GT(sl_kinesis_seq_cmp(next, 0, small, 9), 0);
    /* By value, not as text: 9 < 10, and leading zeros change nothing. */
    ASSERT_LT(sl_kinesis_seq_cmp("9", 0, "10", 0), 0);
    ASSERT_EQ(sl_kinesis_seq_cmp("007", 1, "7", 1), 0);
    ASSERT_LT(sl_kinesis_seq_cmp("0", 0, "1", 0), 0);
}
