/*
 * sluice_migrate: a queue copied into another as it is, through the
 * backends' dump and restore (queue.h), in batches of one transaction
 * each, with the settings stored beside the records. Refuses what would
 * break the cap at the destination: a run still using the source, or
 * slots a dead run holds there.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../run/policy.h"
#include "queue.h"

#define BATCH 512          /* records a transaction */
#define PROGRESS_EVERY 8192 /* records between progress calls */

/* The settings a queue keeps (queue.h, setting_get). */
static const char *const settings[] = {"cap", "rate", SL_POLICY_SETTING};

typedef struct {
    sluice_queue *to;
    sl_record_info batch[BATCH];
    size_t n;
    uint64_t copied;
    sluice_migrate_stats *stats;
    sluice_migrate_progress_fn *progress;
    void *ctx;
    sluice_err err;
} copier;

/* A deep copy of `r` into `d`; false when out of memory. */
static bool
info_copy(sl_record_info *d, const sl_record_info *r)
{
    *d = *r;
    d->id = sl_strdup_or_null(r->id);
    d->url = sl_strdup_or_null(r->url);
    d->key = sl_strdup_or_null(r->key);
    d->meta = sl_strdup_or_null(r->meta);
    d->origin = sl_strdup_or_null(r->origin);
    d->error_class = sl_strdup_or_null(r->error_class);
    d->message = sl_strdup_or_null(r->message);
    d->sha256_hex = sl_strdup_or_null(r->sha256_hex);
    d->content_type = sl_strdup_or_null(r->content_type);
    d->etag = sl_strdup_or_null(r->etag);
    return d->id && d->url && d->key && d->origin &&
           (!r->meta || d->meta) && (!r->error_class || d->error_class) &&
           (!r->message || d->message) && (!r->sha256_hex || d->sha256_hex) &&
           (!r->content_type || d->content_type) && (!r->etag || d->etag);
}

static void
count(sluice_counts *c, sl_state state)
{
    switch (state) {
    case SL_STATE_PENDING: c->pending++; break;
    case SL_STATE_IN_FLIGHT: c->in_flight++; break;
    case SL_STATE_RETRYING: c->retrying++; break;
    case SL_STATE_DONE: c->done++; break;
    case SL_STATE_DEAD: c->dead++; break;
    }
    c->total++;
}

static sluice_err
flush(copier *c)
{
    sluice_err err = sl_queue_begin(c->to);
    if (err == SLUICE_OK)
        err = sl_queue_restore(c->to, c->batch, c->n);
    if (err == SLUICE_OK)
        err = sl_queue_commit(c->to);
    else
        sl_queue_rollback(c->to);
    for (size_t i = 0; i < c->n; i++)
        sl_record_info_clear(&c->batch[i]);
    c->copied += c->n;
    c->n = 0;
    return err;
}

static int
take(void *arg, const sl_record_info *rec)
{
    copier *c = arg;
    sl_record_info *d = &c->batch[c->n];
    if (!info_copy(d, rec)) {
        sl_record_info_clear(d);
        c->err = SLUICE_ENOMEM;
        return 1;
    }
    c->n++;
    /* A record a dead run left in flight is ready again, as the source's
     * own recovery would make it: pending, or due now when it failed
     * before. */
    if (d->state == SL_STATE_IN_FLIGHT) {
        c->stats->in_flight++;
        d->state = d->error_class ? SL_STATE_RETRYING : SL_STATE_PENDING;
        d->next_at_ms = d->error_class ? sl_now_ms() : 0;
    }
    count(&c->stats->records, d->state);
    if (c->n == BATCH) {
        uint64_t before = c->copied;
        if ((c->err = flush(c)) != SLUICE_OK)
            return 1;
        if (c->progress &&
            c->copied / PROGRESS_EVERY != before / PROGRESS_EVERY)
            c->progress(c->ctx, c->copied);
    }
    return 0;
}

/* Slots a run that died holds still (sluice_slots_list tells them as
 * the slot service reads them): the first origin, and until when. */
typedef struct {
    char origin[256];
    int64_t until;
} held_check;

static int
check_held(void *arg, const sluice_slot_holding *h)
{
    held_check *c = arg;
    if (h->held == 0)
        return 0;
    sl_copy(c->origin, sizeof c->origin, h->origin);
    c->until = h->free_at;
    return 1;
}

static sluice_err
check_source(sluice_queue *from, char *errbuf, size_t errbuf_size)
{
    if (sl_queue_runner_alive(from)) {
        sl_fmt(errbuf, errbuf_size,
               "%s: a run is using it; migrate once it has stopped",
               from->location);
        return SLUICE_ERUNNING;
    }
    if (!sl_queue_has(from, SL_QUEUE_F_SLOTS))
        return SLUICE_OK;
    held_check h = {"", 0};
    sluice_err err = sluice_slots_list(from, check_held, &h);
    if (err != SLUICE_OK) {
        sl_copy(errbuf, errbuf_size, sluice_queue_errmsg(from));
        return err;
    }
    if (h.origin[0]) {
        char when[32] = "?";
        time_t at = (time_t)(h.until / 1000);
        struct tm tm;
        if (gmtime_r(&at, &tm))
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        sl_fmt(errbuf, errbuf_size,
               "%s: a run that ended without giving them back holds slots "
               "of %s until %s; migrate after then",
               from->location, h.origin, when);
        return SLUICE_EAGAIN;
    }
    return SLUICE_OK;
}

static sluice_err
copy_settings(sluice_queue *from, sluice_queue *to, unsigned *copied,
              char *errbuf, size_t errbuf_size)
{
    if (!sl_queue_has(from, SL_QUEUE_F_SLOTS) ||
        !sl_queue_has(to, SL_QUEUE_F_SLOTS))
        return SLUICE_OK;
    for (size_t i = 0; i < SL_ARRAY_LEN(settings); i++) {
        char value[4096];
        sluice_err err =
            sl_queue_setting_get(from, settings[i], value, sizeof value);
        if (err == SLUICE_ENOTFOUND)
            continue;
        if (err == SLUICE_OK)
            err = sl_queue_setting_set(to, settings[i], value);
        if (err != SLUICE_OK) {
            sl_fmt(errbuf, errbuf_size, "setting %s: %s", settings[i],
                   sluice_queue_errmsg(err == SLUICE_OK ? to : from));
            return err;
        }
        (*copied)++;
    }
    return SLUICE_OK;
}

sluice_err
sluice_migrate(sluice_queue *from, sluice_queue *to,
               sluice_migrate_progress_fn *progress, void *ctx,
               sluice_migrate_stats *stats, char *errbuf, size_t errbuf_size)
{
    sluice_migrate_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    char scratch[8];
    if (!errbuf)
        errbuf = scratch, errbuf_size = sizeof scratch;
    errbuf[0] = '\0';

    sluice_counts there;
    sluice_err err = sluice_queue_counts(to, &there);
    if (err != SLUICE_OK) {
        sl_copy(errbuf, errbuf_size, sluice_queue_errmsg(to));
        return err;
    }
    if (there.total > 0) {
        sl_fmt(errbuf, errbuf_size,
               "%s holds %llu records already; migrate into an empty queue",
               to->location, (unsigned long long)there.total);
        return SLUICE_EINVAL;
    }
    if ((err = check_source(from, errbuf, errbuf_size)) != SLUICE_OK)
        return err;

    copier *c = sl_calloc(1, sizeof *c);
    if (!c)
        return SLUICE_ENOMEM;
    *c = (copier){.to = to, .stats = stats, .progress = progress,
                  .ctx = ctx};
    err = sl_queue_dump(from, take, c);
    if (err == SLUICE_OK && c->err == SLUICE_OK && c->n)
        c->err = flush(c);
    if (err != SLUICE_OK)
        sl_copy(errbuf, errbuf_size, sluice_queue_errmsg(from));
    else if (c->err == SLUICE_ENOMEM)
        sl_copy(errbuf, errbuf_size, "out of memory");
    else if (c->err != SLUICE_OK)
        sl_copy(errbuf, errbuf_size, sluice_queue_errmsg(to));
    if (err == SLUICE_OK)
        err = c->err;
    for (size_t i = 0; i < c->n; i++)
        sl_record_info_clear(&c->batch[i]);
    sl_free(c);
    if (err == SLUICE_OK)
        err = copy_settings(from, to, &stats->settings, errbuf,
                            errbuf_size);
    if (err != SLUICE_OK)
        return err;
    if (progress)
        progress(ctx, stats->records.total);

    /* What arrived is what was sent. */
    if ((err = sluice_queue_counts(to, &there)) != SLUICE_OK) {
        sl_copy(errbuf, errbuf_size, sluice_queue_errmsg(to));
        return err;
    }
    const sluice_counts *sent = &stats->records;
    if (there.total != sent->total || there.done != sent->done ||
        there.dead != sent->dead ||
        there.pending + there.retrying != sent->pending + sent->retrying) {
        sl_fmt(errbuf, errbuf_size,
               "%s holds %llu records (%llu done, %llu dead) after the "
               "copy of %llu (%llu done, %llu dead)",
               to->location, (unsigned long long)there.total,
               (unsigned long long)there.done,
               (unsigned long long)there.dead,
               (unsigned long long)sent->total,
               (unsigned long long)sent->done,
               (unsigned long long)sent->dead);
        return SLUICE_EINTERNAL;
    }
    return SLUICE_OK;
}
