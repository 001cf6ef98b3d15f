/*
 * Ingest: read a feed, validate each record, and upsert it into the queue
 * in batched transactions. A bad record is reported and counted and costs
 * nothing else; only a read or database failure stops the work.
 */
#include <string.h>

#include "feed.h"
#include "queue/queue.h"
#include "record.h"

#define DEFAULT_BATCH 20000

int
sluice_format_from_name(const char *name)
{
    static const char *const names[] = {"auto", "jsonl", "csv", "lines"};
    for (size_t i = 0; i < SL_ARRAY_LEN(names); i++)
        if (strcmp(name, names[i]) == 0)
            return (int)i;
    return -1;
}

const char *
sluice_format_name(sluice_format format)
{
    switch (format) {
    case SLUICE_FORMAT_AUTO:
        return "auto";
    case SLUICE_FORMAT_JSONL:
        return "jsonl";
    case SLUICE_FORMAT_CSV:
        return "csv";
    case SLUICE_FORMAT_LINES:
        return "lines";
    }
    return "unknown";
}

static void
reject(const sluice_ingest_opts *opts, sluice_ingest_stats *stats,
       const char *name, uint64_t line, const char *reason)
{
    stats->rejected++;
    if (opts->on_reject)
        opts->on_reject(opts->ctx, name, line, reason);
}

static void
add_stats(sluice_ingest_stats *total, sluice_ingest_stats *batch)
{
    total->added += batch->added;
    total->updated += batch->updated;
    total->unchanged += batch->unchanged;
    memset(batch, 0, sizeof *batch);
}

sluice_err
sluice_ingest_fd(sluice_queue *q, int fd, const char *name,
                 const sluice_ingest_opts *opts, sluice_ingest_stats *stats)
{
    static const sluice_ingest_opts defaults = {0};
    sl_feed feed;
    sl_record rec;
    sl_feed_item item;
    char reason[512];
    sluice_err err;
    unsigned batch_size, in_batch = 0;
    /* Counted into *stats only once their transaction commits. */
    sluice_ingest_stats batch = {0, 0, 0, 0};

    if (!opts)
        opts = &defaults;
    batch_size = opts->batch_size ? opts->batch_size : DEFAULT_BATCH;
    sl_record_init(&rec);
    err = sl_feed_init(&feed, fd, opts->format);
    if (err != SLUICE_OK) {
        sl_feed_free(&feed);
        return sl_queue_fail(q, err, "%s: out of memory", name);
    }

    int64_t now = sl_now_ms();
    for (;;) {
        sl_feed_status st = sl_feed_next(&feed, &item, reason, sizeof reason);
        if (st == SL_FEED_EOF)
            break;
        if (st == SL_FEED_ERROR) {
            err = sl_queue_fail(q, SLUICE_EIO, "%s:%llu: %s", name,
                                (unsigned long long)feed.lineno, reason);
            break;
        }
        if (st == SL_FEED_REJECT) {
            reject(opts, stats, name, feed.lineno, reason);
            continue;
        }
        err = sl_record_prepare(&rec, &item, reason, sizeof reason);
        if (err == SLUICE_ENOMEM) {
            sl_queue_fail(q, err, "%s: out of memory", name);
            break;
        }
        if (err != SLUICE_OK) {
            err = SLUICE_OK;
            reject(opts, stats, name, feed.lineno, reason);
            continue;
        }
        if (!q->in_batch) {
            if ((err = sl_queue_begin(q)) != SLUICE_OK)
                break;
            now = sl_now_ms();
        }
        sl_upsert_result result;
        err = sl_queue_upsert(q, &rec, now, &result);
        if (err == SLUICE_EKEY) {
            /* The key belongs to another record: this one is refused. */
            err = SLUICE_OK;
            reject(opts, stats, name, feed.lineno, q->errmsg);
            continue;
        }
        if (err != SLUICE_OK)
            break;
        if (result == SL_UPSERT_ADDED)
            batch.added++;
        else if (result == SL_UPSERT_UPDATED)
            batch.updated++;
        else
            batch.unchanged++;
        if (++in_batch >= batch_size) {
            in_batch = 0;
            if ((err = sl_queue_commit(q)) != SLUICE_OK)
                break;
            add_stats(stats, &batch);
            if (opts->on_progress)
                opts->on_progress(opts->ctx, stats);
        }
    }
    if (err == SLUICE_OK && q->in_batch) {
        err = sl_queue_commit(q);
        if (err == SLUICE_OK)
            add_stats(stats, &batch);
    }
    if (err != SLUICE_OK)
        sl_queue_rollback(q);
    sl_feed_free(&feed);
    sl_record_free(&rec);
    return err;
}
