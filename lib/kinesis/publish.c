/*
 * `sluice publish`: feeds onto a Kinesis stream. Each feed is read and
 * checked as ingest reads it (source/feed.c, record/, the URL policy on
 * literal addresses); each good record becomes one compact JSON object,
 * {"id","url","key","meta"}, the line `ingest kinesis://` reads back, and
 * goes out in PutRecords batches (500 records, 5 MiB). Records the
 * service fails are sent again, alone and before any later record, after
 * a backoff with full jitter, so a key's records keep their order across
 * calls. Memory holds one batch.
 */
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <yajl/yajl_gen.h>

#include "kinesis.h"
#include "../backoff.h"
#include "../json.h"
#include "../record/record.h"
#include "../run/guard.h"
#include "../source/feed.h"
#include "../util.h"

#define DEFAULT_ATTEMPTS 8
#define BACKOFF_BASE_MS  100
#define BACKOFF_CAP_MS   5000
#define THROTTLE_CODE    "ProvisionedThroughputExceededException"

/* A record waiting in the batch: its data and key in the arena. */
typedef struct {
    size_t data_off, data_len, key_off, key_len;
} pending;

typedef struct {
    sl_kinesis *k;
    const sluice_publish_opts *o;
    sluice_publish_stats *stats;
    sl_buf arena;
    pending items[SL_KINESIS_PUT_MAX_RECORDS];
    size_t n, bytes;
    uint64_t rng;
    char *errbuf;
    size_t errbuf_size;
} publisher;

static void
sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Why the call failed, as an error code for the caller. */
static sluice_err
err_for(sl_kinesis_status st, const char *why)
{
    if (st == SL_KINESIS_TRANSIENT)
        return strstr(why, "no answer") ? SLUICE_ETIMEOUT : SLUICE_ENETWORK;
    if (st == SL_KINESIS_NOT_FOUND)
        return SLUICE_ECONFIG;
    return SLUICE_EHTTP;
}

/* Put every pending record, retrying what fails; SLUICE_OK when the
 * stream has them all. */
static sluice_err
flush(publisher *p)
{
    sl_kinesis_put puts[SL_KINESIS_PUT_MAX_RECORDS];
    bool failed[SL_KINESIS_PUT_MAX_RECORDS];
    unsigned attempts = 0, round = 0;
    unsigned max = p->o->max_attempts ? p->o->max_attempts : DEFAULT_ATTEMPTS;
    char why[700];

    while (p->n > 0) {
        for (size_t i = 0; i < p->n; i++)
            puts[i] = (sl_kinesis_put){
                .partition_key = p->arena.data + p->items[i].key_off,
                .data =
                    (const unsigned char *)p->arena.data + p->items[i].data_off,
                .len = p->items[i].data_len,
            };
        size_t n_failed = 0;
        sl_kinesis_status st = sl_kinesis_put_records(
            p->k, puts, p->n, failed, &n_failed, why, sizeof why);
        p->stats->calls++;
        bool counts = true; /* uses up an attempt */
        if (st == SL_KINESIS_OK) {
            p->stats->published += p->n - n_failed;
            if (n_failed == 0) {
                p->n = 0;
                break;
            }
            /* Keep the failed ones, in order. */
            size_t kept = 0;
            for (size_t i = 0; i < p->n; i++)
                if (failed[i])
                    p->items[kept++] = p->items[i];
            p->n = kept;
            counts = strncmp(why, THROTTLE_CODE, strlen(THROTTLE_CODE)) != 0;
            /* A record the service failed for itself carries no location:
             * add it for the final message. */
            char detail[700];
            sl_copy(detail, sizeof detail, why);
            sl_fmt(why, sizeof why, "%s: PutRecords: %zu record%s failed: %s",
                   sl_kinesis_stream(p->k), n_failed, n_failed == 1 ? "" : "s",
                   detail);
        } else if (st == SL_KINESIS_THROTTLED) {
            counts = false;
        } else if (st != SL_KINESIS_TRANSIENT) {
            sl_copy(p->errbuf, p->errbuf_size, why);
            return err_for(st, why);
        }
        if (counts && ++attempts >= max) {
            sl_fmt(p->errbuf, p->errbuf_size, "%s (gave up after %u attempts)",
                   why, attempts);
            return err_for(st == SL_KINESIS_OK ? SL_KINESIS_FAILED : st, why);
        }
        p->stats->retried += p->n;
        sleep_ms(sl_backoff_ms(++round, BACKOFF_BASE_MS, BACKOFF_CAP_MS,
                               sl_random(&p->rng)));
    }
    sl_buf_clear(&p->arena);
    p->bytes = 0;
    if (p->o->on_progress)
        p->o->on_progress(p->o->ctx, p->stats);
    return SLUICE_OK;
}

/* The record as the stream carries it, into `g`. */
static int
gen_record(yajl_gen g, const sl_record *rec)
{
    struct {
        const char *name, *value;
        size_t len;
    } fields[] = {{"id", rec->id, rec->id_len},
                  {"url", rec->url, rec->url_len},
                  {"key", rec->key, rec->key_len}};
    if (yajl_gen_map_open(g) != yajl_gen_status_ok)
        return -1;
    for (size_t i = 0; i < SL_ARRAY_LEN(fields); i++)
        if (yajl_gen_string(g, (const unsigned char *)fields[i].name,
                            strlen(fields[i].name)) != yajl_gen_status_ok ||
            yajl_gen_string(g, (const unsigned char *)fields[i].value,
                            fields[i].len) != yajl_gen_status_ok)
            return -1;
    if (rec->meta) {
        char reason[200];
        if (yajl_gen_string(g, (const unsigned char *)"meta", 4) !=
                yajl_gen_status_ok ||
            yajl_gen_map_open(g) != yajl_gen_status_ok ||
            sl_json_copy_members(g, rec->meta, rec->meta_len, reason,
                                 sizeof reason) != 0 ||
            yajl_gen_map_close(g) != yajl_gen_status_ok)
            return -1;
    }
    return yajl_gen_map_close(g) == yajl_gen_status_ok ? 0 : -1;
}

/* The partition key: the text itself, or its MD5 in hex when it is
 * longer than Kinesis allows. */
static int
partition_key(const char *text, size_t len, char *out, size_t out_size)
{
    if (len <= SL_KINESIS_KEY_MAX && len < out_size) {
        memcpy(out, text, len);
        out[len] = '\0';
        return 0;
    }
    unsigned char sum[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(text, len, sum, &n, EVP_md5(), NULL) != 1)
        return -1;
    for (unsigned i = 0; i < n && 2 * i + 2 < out_size; i++)
        sl_fmt(out + 2 * i, 3, "%02x", sum[i]);
    return 0;
}

/* Add one good record to the batch (flushing first when it is full).
 * SLUICE_EPARSE with `reason` for a record too large for the stream. */
static sluice_err
add(publisher *p, yajl_gen g, const sl_record *rec, char *reason,
    size_t reason_size)
{
    char key[SL_KINESIS_KEY_MAX + 1];
    yajl_gen_clear(g);
    yajl_gen_reset(g, NULL);
    int bad = gen_record(g, rec);
    bad |= p->o->partition_by_origin
               ? partition_key(rec->origin, rec->origin_len, key, sizeof key)
               : partition_key(rec->id, rec->id_len, key, sizeof key);
    if (bad)
        return SLUICE_ENOMEM;
    size_t len, key_len = strlen(key);
    const char *text = sl_json_gen_text(g, &len);
    if (len + key_len > SL_KINESIS_RECORD_MAX) {
        sl_fmt(reason, reason_size,
               "record: %zu bytes with its partition key, over the 1 MiB "
               "a Kinesis record may hold",
               len + key_len);
        return SLUICE_EPARSE;
    }
    if (p->n == SL_KINESIS_PUT_MAX_RECORDS ||
        p->bytes + len + key_len > SL_KINESIS_PUT_MAX_BYTES) {
        sluice_err err = flush(p);
        if (err != SLUICE_OK)
            return err;
    }
    pending *it = &p->items[p->n];
    it->data_off = p->arena.len;
    it->data_len = len;
    if (sl_buf_append(&p->arena, text, len) != 0)
        return SLUICE_ENOMEM;
    it->key_off = p->arena.len;
    it->key_len = key_len;
    if (sl_buf_append(&p->arena, key, key_len + 1) != 0)
        return SLUICE_ENOMEM;
    p->n++;
    p->bytes += len + key_len;
    return SLUICE_OK;
}

static void
reject(publisher *p, const char *name, uint64_t line, const char *reason)
{
    p->stats->rejected++;
    if (p->o->on_reject)
        p->o->on_reject(p->o->ctx, name, line, reason);
}

/* One input through the feed parser into batches. */
static sluice_err
publish_one(publisher *p, const sluice_ingest_input *in, const sl_guard *guard)
{
    sl_feed feed;
    sl_record_scratch scratch;
    sl_feed_item item;
    sl_record rec;
    char reason[512];
    yajl_gen g = sl_json_gen_new();
    sluice_err err =
        g ? sl_feed_init(&feed, in->fd, p->o->format) : SLUICE_ENOMEM;
    if (err != SLUICE_OK) {
        if (g)
            yajl_gen_free(g);
        sl_fmt(p->errbuf, p->errbuf_size, "%s: out of memory", in->name);
        return SLUICE_ENOMEM;
    }
    sl_feed_opts fo = {p->o->url_column, p->o->id_column, p->o->key_column,
                       p->o->delimiter};
    sl_feed_set_opts(&feed, &fo);
    sl_record_scratch_init(&scratch);
    if (p->o->on_input)
        p->o->on_input(p->o->ctx, in->name);
    for (;;) {
        sl_feed_status st = sl_feed_next(&feed, &item, reason, sizeof reason);
        uint64_t line = feed.lineno;
        if (st == SL_FEED_EOF)
            break;
        if (st == SL_FEED_ERROR) {
            err = feed.error != SLUICE_OK ? feed.error : SLUICE_EIO;
            sl_fmt(p->errbuf, p->errbuf_size, "%s:%llu: %s", in->name,
                   (unsigned long long)line, reason);
            break;
        }
        if (st == SL_FEED_REJECT) {
            reject(p, in->name, line, reason);
            continue;
        }
        err = sl_record_prepare(&scratch, &item, &rec, reason, sizeof reason);
        const char *refused =
            err == SLUICE_OK ? sl_guard_check_origin(guard, rec.origin) : NULL;
        if (refused) {
            sl_fmt(reason, sizeof reason,
                   "url: %s address refused (allow it with --allow-private "
                   "or --allow-net)",
                   refused);
            err = SLUICE_EPOLICY;
        } else if (err == SLUICE_OK) {
            err = add(p, g, &rec, reason, sizeof reason);
            if (err != SLUICE_OK && err != SLUICE_EPARSE)
                break; /* errbuf says why (flush), or out of memory */
        }
        if (err == SLUICE_ENOMEM)
            break;
        if (err != SLUICE_OK)
            reject(p, in->name, line, reason);
        err = SLUICE_OK;
    }
    if (err == SLUICE_ENOMEM)
        sl_fmt(p->errbuf, p->errbuf_size, "%s: out of memory", in->name);
    sl_record_scratch_free(&scratch);
    sl_feed_free(&feed);
    yajl_gen_free(g);
    return err;
}

sluice_err
sluice_publish_fds(const char *location, const sluice_ingest_input *inputs,
                   size_t n_inputs, const sluice_publish_opts *opts,
                   sluice_publish_stats *stats, char *errbuf,
                   size_t errbuf_size)
{
    static const sluice_publish_opts defaults = {0};
    char why[512];
    sl_guard guard;
    if (!opts)
        opts = &defaults;
    char d = opts->delimiter;
    if (d == '"' || d == '\r' || d == '\n') {
        sl_copy(errbuf, errbuf_size,
                "--delimiter: a quote or a line break cannot split fields");
        return SLUICE_EINVAL;
    }
    sluice_err err =
        sl_guard_init(&guard, opts->allow_private != 0, opts->allow_nets,
                      opts->n_allow_nets, why, sizeof why);
    if (err != SLUICE_OK) {
        sl_copy(errbuf, errbuf_size, why);
        return err;
    }
    publisher *p = sl_calloc(1, sizeof *p);
    if (!p) {
        sl_guard_free(&guard);
        sl_copy(errbuf, errbuf_size, "out of memory");
        return SLUICE_ENOMEM;
    }
    err = sl_kinesis_open(&p->k, location, errbuf, errbuf_size);
    if (err != SLUICE_OK)
        goto done;
    if (opts->timeout_ms > 0)
        sl_kinesis_set_timeout(p->k, opts->timeout_ms);
    p->o = opts;
    p->stats = stats;
    p->errbuf = errbuf;
    p->errbuf_size = errbuf_size;
    p->rng = (uint64_t)sl_mono_ms() ^ ((uint64_t)sl_now_ms() << 20);
    sl_buf_init(&p->arena);
    for (size_t i = 0; i < n_inputs && err == SLUICE_OK; i++)
        err = publish_one(p, &inputs[i], &guard);
    if (err == SLUICE_OK)
        err = flush(p);
    sl_buf_free(&p->arena);
done:
    sl_kinesis_close(p->k);
    sl_free(p);
    sl_guard_free(&guard);
    return err;
}
