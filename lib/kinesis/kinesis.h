/*
 * An AWS Kinesis Data Streams client for sluice: the calls the Kinesis
 * source (`sluice ingest kinesis://`) and `sluice publish` make, over
 * libcurl with SigV4 signing (client.c), their replies read with yajl
 * (reply.c, no I/O), and the de-aggregation of records the Kinesis
 * Producer Library packed together (kpl.c). One handle, one thread:
 * each call is a blocking request with a timeout.
 */
#ifndef SL_KINESIS_H
#define SL_KINESIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/sluice.h"

typedef struct sl_kinesis sl_kinesis;

typedef enum {
    SL_KINESIS_OK,
    SL_KINESIS_THROTTLED,        /* ProvisionedThroughputExceededException,
                                    LimitExceededException: back off */
    SL_KINESIS_EXPIRED_ITERATOR, /* ExpiredIteratorException */
    SL_KINESIS_NOT_FOUND,        /* ResourceNotFoundException */
    SL_KINESIS_TRANSIENT,        /* network error, timeout, 5xx,
                                    InternalFailure: retry later */
    SL_KINESIS_FAILED,           /* anything else (bad credentials,
                                    validation): permanent; why says */
} sl_kinesis_status;

/* "OK", "THROTTLED", ... for messages and tests. */
const char *sl_kinesis_status_name(sl_kinesis_status st);

/*
 * Open a client for "kinesis://STREAM" (the scheme is required). Region,
 * endpoint and credentials come from the environment as for S3:
 * AWS_ENDPOINT_URL_KINESIS, else AWS_ENDPOINT_URL, else
 * https://kinesis.REGION.amazonaws.com; the region from sl_aws_region()
 * (none is an error: SLUICE_ECONFIG); credentials from the AWS chain
 * (lib/aws/credentials.h), found now so that missing ones fail here, and
 * renewed before they expire. SLUICE_EINVAL for a bad location or
 * endpoint. On failure `why` says what and where in one line.
 */
sluice_err sl_kinesis_open(sl_kinesis **out, const char *location, char *why,
                           size_t why_size);
void sl_kinesis_close(sl_kinesis *k);
const char *sl_kinesis_stream(const sl_kinesis *k);
/* The endpoint calls go to ("http://127.0.0.1:4567"), for messages. */
const char *sl_kinesis_endpoint(const sl_kinesis *k);
/* The longest one call may take, connecting included; default 10 s. A
 * service that does not answer in time is SL_KINESIS_TRANSIENT. */
void sl_kinesis_set_timeout(sl_kinesis *k, long ms);

/*
 * A generic call: `action` ("CreateStream") with a JSON `body`; the
 * reply's body (JSON, malloc'd, NUL-terminated; free() it) in *reply,
 * whatever the status, or NULL when there was none. For tests and admin.
 */
sl_kinesis_status sl_kinesis_call(sl_kinesis *k, const char *action,
                                  const char *body, char **reply, char *why,
                                  size_t why_size);

typedef struct {
    char *shard_id, *parent, *adjacent_parent; /* NULL when none */
    char *starting_seq, *ending_seq;           /* ending_seq NULL: shard open */
} sl_kinesis_shard;

/* Every shard of the stream (ListShards, following NextToken), in the
 * order the service lists them. The caller frees them. */
sl_kinesis_status sl_kinesis_list_shards(sl_kinesis *k,
                                         sl_kinesis_shard **shards, size_t *n,
                                         char *why, size_t why_size);
void sl_kinesis_shards_free(sl_kinesis_shard *s, size_t n);

typedef enum {
    SL_KINESIS_TRIM_HORIZON,
    SL_KINESIS_LATEST,
    SL_KINESIS_AT_TIMESTAMP,
    SL_KINESIS_AT_SEQUENCE,
    SL_KINESIS_AFTER_SEQUENCE
} sl_kinesis_from;

/* A shard iterator (GetShardIterator): `seq` for AT_ and AFTER_SEQUENCE,
 * `at_ms` (ms since the epoch) for AT_TIMESTAMP. *iterator is malloc'd. */
sl_kinesis_status sl_kinesis_iterator(sl_kinesis *k, const char *shard_id,
                                      sl_kinesis_from from, const char *seq,
                                      int64_t at_ms, char **iterator, char *why,
                                      size_t why_size);

typedef struct {
    char *seq;          /* SequenceNumber (decimal string) */
    uint32_t subseq;    /* index within a KPL aggregate, else 0 */
    uint32_t n_sub;     /* sub-records in its aggregate (0: plain) */
    int64_t arrival_ms; /* ApproximateArrivalTimestamp */
    char *partition_key;
    unsigned char *data; /* decoded bytes (base64 undone) */
    size_t len;
    char *bad; /* non-NULL: a KPL aggregate that could not be
                  decoded (reason); data is then the raw
                  record */
} sl_kinesis_record;

typedef struct {
    sl_kinesis_record *recs;
    size_t n;
    char *next_iterator;   /* NULL: the shard is closed, read to its end */
    int64_t millis_behind; /* MillisBehindLatest; -1 when not given */
} sl_kinesis_batch;

/*
 * GetRecords (limit <= 10000); KPL aggregates (magic F3 89 9A C2,
 * protobuf, trailing MD5 of the protobuf checked) become one entry per
 * sub-record, each with the parent's seq and its subseq. *out is the
 * caller's to free with sl_kinesis_batch_free (also after a failure).
 */
sl_kinesis_status sl_kinesis_get_records(sl_kinesis *k, const char *iterator,
                                         int limit, sl_kinesis_batch *out,
                                         char *why, size_t why_size);
void sl_kinesis_batch_free(sl_kinesis_batch *b);

typedef struct {
    const char *partition_key;
    const unsigned char *data;
    size_t len;
} sl_kinesis_put;

/* What one PutRecords may carry. */
#define SL_KINESIS_PUT_MAX_RECORDS 500
#define SL_KINESIS_PUT_MAX_BYTES   (5u << 20)
#define SL_KINESIS_RECORD_MAX      (1u << 20) /* data + partition key */
#define SL_KINESIS_KEY_MAX         256        /* partition key, bytes here */

/*
 * PutRecords of at most 500 records / 5 MiB: OK when the call worked;
 * failed[i] true for each record the service failed (FailedRecordCount),
 * count in *n_failed, the first failure's code in why.
 */
sl_kinesis_status sl_kinesis_put_records(sl_kinesis *k,
                                         const sl_kinesis_put *recs, size_t n,
                                         bool *failed, size_t *n_failed,
                                         char *why, size_t why_size);

/*
 * Compare two sequence numbers (decimal strings of up to 128 bits, no
 * leading zeros), each with a sub-sequence (0 for a plain record): <0,
 * 0, >0 as (a, a_sub) comes before, with or after (b, b_sub). For
 * checkpoints that only move forward.
 */
int sl_kinesis_seq_cmp(const char *a, uint32_t a_sub, const char *b,
                       uint32_t b_sub);

/* ------------------------------------------------------ pieces, tested */

/*
 * The status of a reply: `http_status` (0: none came) and its body, as
 * the calls classify it; `why` gets "CODE: message".
 */
sl_kinesis_status sl_kinesis_classify(long http_status, const char *body,
                                      size_t len, char *why, size_t why_size);

/* Parse a GetRecords reply into *out (KPL aggregates de-aggregated).
 * SL_KINESIS_FAILED with why, and *out empty, for a reply that is not
 * one: not a JSON object, nested over 128 deep, no Records, a record
 * without a SequenceNumber Kinesis could write ("0|[1-9][0-9]{0,128}"),
 * Data or PartitionKey, or Data not base64. reply.c; fuzz_records. */
sl_kinesis_status sl_kinesis_parse_records(const char *body, size_t len,
                                           sl_kinesis_batch *out, char *why,
                                           size_t why_size);

/* Base64 (standard alphabet, padded). Encode: a malloc'd NUL-terminated
 * text. Decode: malloc'd bytes and their count; -1 when not base64
 * (white space, or '=' but as the last one or two characters, too). */
char *sl_kinesis_b64_encode(const unsigned char *data, size_t len);
int sl_kinesis_b64_decode(const char *text, size_t len, unsigned char **out,
                          size_t *out_len);

/* ---------------------------------------------------------------- KPL */

/* The KPL's 4-byte magic that starts an aggregated record. */
extern const unsigned char sl_kpl_magic[4];

/* One sub-record to aggregate. */
typedef struct {
    const char *partition_key;
    const unsigned char *data;
    size_t len;
} sl_kpl_sub;

/* An aggregate of `n` sub-records (magic, protobuf, MD5), as the KPL
 * writes one: malloc'd into *out. -1 when out of memory. */
int sl_kpl_build(const sl_kpl_sub *subs, size_t n, unsigned char **out,
                 size_t *out_len);

/*
 * True when `data` starts with the KPL magic. Then sl_kpl_parse turns it
 * into sub-records appended to *recs (grown with realloc; *n and *cap
 * updated), each with a copy of `seq` and `arrival_ms`: 0 when done, -1
 * with `reason` when it is no valid aggregate (a bad MD5, a truncated or
 * malformed protobuf, a key index outside the table), -2 when out of
 * memory.
 */
bool sl_kpl_is_aggregate(const unsigned char *data, size_t len);
int sl_kpl_parse(const unsigned char *data, size_t len, const char *seq,
                 int64_t arrival_ms, sl_kinesis_record **recs, size_t *n,
                 size_t *cap, char *reason, size_t reason_size);

#endif /* SL_KINESIS_H */
