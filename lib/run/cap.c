/*
 * The cap a run uses, kept with the queue: a run given no cap takes the
 * queue's, a smaller one lowers it, a larger one raises it only when
 * asked to (raise_cap), so that two runs given different caps cannot
 * exceed the smaller. And what a run says at its start about slots an
 * earlier run left held. Both said aloud (on_notice).
 */
#include "run.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define DEFAULT_CAP 20
#define CAP_MAX     100000

/* The queue's cap, or 0 when it has none. */
static sluice_err
stored_cap(sl_run *r, unsigned *cap, char *errbuf, size_t size)
{
    char value[32];
    int64_t n;
    *cap = 0;
    if (!sl_queue_has(r->q, SL_QUEUE_F_SLOTS))
        return SLUICE_OK;
    sluice_err err = sl_queue_setting_get(r->q, "cap", value, sizeof value);
    if (err == SLUICE_ENOTFOUND)
        return SLUICE_OK;
    if (err != SLUICE_OK) {
        sl_copy(errbuf, size, sluice_queue_errmsg(r->q));
        return err;
    }
    if (sl_parse_i64(value, 1, CAP_MAX, &n) != 0) {
        sl_fmt(errbuf, size,
               "%s: the cap stored with the queue, '%s', is not a number "
               "from 1 to %d",
               r->q->location, value, CAP_MAX);
        return SLUICE_EDB;
    }
    *cap = (unsigned)n;
    return SLUICE_OK;
}

static sluice_err
store_cap(sl_run *r, unsigned cap, char *errbuf, size_t size)
{
    char value[32];
    if (!sl_queue_has(r->q, SL_QUEUE_F_SLOTS))
        return SLUICE_OK;
    sl_fmt(value, sizeof value, "%u", cap);
    sluice_err err = sl_queue_setting_set(r->q, "cap", value);
    if (err != SLUICE_OK)
        sl_copy(errbuf, size, sluice_queue_errmsg(r->q));
    return err;
}

sluice_err
sl_run_cap(sl_run *r, unsigned *cap, char *errbuf, size_t size)
{
    unsigned given = r->o->max_concurrency, stored;
    sluice_err err = stored_cap(r, &stored, errbuf, size);
    if (err != SLUICE_OK)
        return err;
    if (given > CAP_MAX) {
        sl_fmt(errbuf, size, "--max-concurrency: %u: at most %d", given,
               CAP_MAX);
        return SLUICE_EINVAL;
    }
    if (!given) {
        *cap = stored ? stored : DEFAULT_CAP;
        return SLUICE_OK;
    }
    *cap = given;
    if (given == stored)
        return SLUICE_OK;
    if (stored && given > stored && !r->o->raise_cap) {
        *cap = stored;
        sl_run_notice(r,
                      "cap: %u requests at once per origin, stored with "
                      "the queue; --max-concurrency %u is larger and was "
                      "not used (--raise-cap raises it)",
                      stored, given);
        return SLUICE_OK;
    }
    if ((err = store_cap(r, given, errbuf, size)) != SLUICE_OK)
        return err;
    /* The first cap a queue is given is kept without a word; a change of
     * it is said. */
    if (stored)
        sl_run_notice(r,
                      "cap: %s from %u to %u requests at once per origin, "
                      "stored with the queue for every run",
                      given < stored ? "lowered" : "raised", stored, given);
    return SLUICE_OK;
}

typedef struct {
    unsigned slots;
    unsigned origins;
    const char *last_origin;
    int64_t free_by; /* boot ms */
} held_summary;

static int
count_previous(void *ctx, const sl_slot_info *slot)
{
    held_summary *h = ctx;
    if (slot->holder != SL_SLOT_PREVIOUS)
        return 0;
    h->slots++;
    if (!h->last_origin || strcmp(h->last_origin, slot->origin) != 0)
        h->origins++;
    h->last_origin = slot->origin;
    if (slot->deadline_boot > h->free_by)
        h->free_by = slot->deadline_boot;
    return 0;
}

void
sl_run_tell_held(sl_run *r)
{
    held_summary h = {0, 0, NULL, 0};
    sl_slots_list(r->slots, count_previous, &h);
    if (!h.slots)
        return;
    int64_t now_boot = sl_boot_ms();
    time_t at = (time_t)((sl_now_ms() + (h.free_by - now_boot)) / 1000);
    struct tm tm;
    char when[16] = "?";
    if (localtime_r(&at, &tm))
        strftime(when, sizeof when, "%H:%M:%S", &tm);
    sl_run_notice(r,
                  "%u slot%s of %u origin%s held for an earlier run (its "
                  "requests may still be running at the origin): all free "
                  "by %s, in %.0f s",
                  h.slots, h.slots == 1 ? "" : "s", h.origins,
                  h.origins == 1 ? "" : "s", when,
                  (double)(h.free_by - now_boot) / 1000.0);
}
