/*
 * The slots a queue holds, told to people (sluice_slots_list, for `sluice
 * status` and `sluice slots`) and cleared on an operator's word
 * (sluice_slots_clear). The rows are the durable service's
 * (slots_durable.c); their times are read the way it reads them: on this
 * boot's clock when written on this boot, else from the boot's start.
 * A Redis queue's slots are the Redis service's (slots_redis.c).
 */
#include "slots.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#include "../queue/queue.h"

typedef struct {
    sluice_slot_fn *fn;
    void *ctx;
    char boot_id[40];
    int64_t now_boot, now_wall;
    bool live;
    sl_pacer_limits limits; /* the queue's cap and rate */
} list_ctx;

/* A limit stored with the queue (lib/run/cap.c keeps them), INFINITY for
 * "none"; 0 when it has none, or one that is not a number (a run refuses
 * to start on such a queue; telling what is held need not). */
static double
stored_limit(sluice_queue *q, const char *name)
{
    double v;
    return sl_queue_setting_number(q, name, &v) == SLUICE_OK ? v : 0;
}

static int
tell_row(void *arg, const sl_slot_row *row)
{
    list_ctx *c = arg;
    bool this_boot = strcmp(row->boot_id, c->boot_id) == 0;
    int64_t until = this_boot ? row->until_boot : row->hold_ms;
    int64_t paused = this_boot ? row->paused_boot
                     : row->paused_wall
                         ? c->now_boot + (row->paused_wall - c->now_wall)
                         : 0;
    sluice_slot_holding h = {row->origin, 0, 0, c->live, 0, 0, 0, 0,
                             c->limits.cap, c->limits.cap, c->limits.rate};
    if (row->held > 0 && until > c->now_boot) {
        h.held = row->held;
        h.free_in_s = (double)(until - c->now_boot) / 1000.0;
        h.free_at = c->now_wall + (until - c->now_boot);
        h.in_flight = c->live ? row->in_flight : 0;
    }
    if (paused > c->now_boot) {
        h.paused_for_s = (double)(paused - c->now_boot) / 1000.0;
        h.paused_until = c->now_wall + (paused - c->now_boot);
    }
    /* The limits learnt: the pacer's, as the run that wrote it left it. */
    sl_pacer p;
    sl_pacer_init(&p, &c->limits);
    if (row->conc >= 1)
        p.conc = row->conc;
    p.rate = row->rate;
    if (this_boot) {
        p.advised = row->advised;
        p.advised_until = row->advised_until;
    }
    h.limit = sl_pacer_conc(&p, &c->limits);
    h.rate = sl_pacer_rate(&p, &c->limits, c->now_boot);
    if (!h.held && !h.paused_until && h.limit >= h.cap && h.rate == 0)
        return 0; /* over: nothing to tell */
    return c->fn(c->ctx, &h);
}

sluice_err
sluice_slots_list(sluice_queue *q, sluice_slot_fn *fn, void *ctx)
{
    list_ctx c = {fn,           ctx,         "",
                  sl_boot_ms(), sl_now_ms(), sl_queue_runner_alive(q),
                  {SLUICE_DEFAULT_CAP, 0, true}};
    sl_boot_id(c.boot_id, sizeof c.boot_id);
    if (!sl_queue_has(q, SL_QUEUE_F_SLOTS))
        return SLUICE_OK; /* no slots kept: none held */
    double cap = stored_limit(q, "cap");
    if (cap >= 1 && cap <= UINT_MAX)
        c.limits.cap = (unsigned)cap;
    double rate = stored_limit(q, "rate");
    if (rate > 0 && !isinf(rate))
        c.limits.rate = rate;
    if (strcmp(sl_queue_slots(q), "redis") == 0) /* shared, in Redis */
        return sl_slots_redis_holdings(q, &c.limits, c.live, fn, ctx);
    return sl_queue_slots_load(q, tell_row, &c);
}

sluice_err
sluice_slots_clear(sluice_queue *q, const char *origin, uint64_t *cleared)
{
    uint64_t ignored;
    if (!cleared)
        cleared = &ignored;
    *cleared = 0;
    if (sl_queue_runner_alive(q))
        return sl_queue_fail(q, SLUICE_ERUNNING,
                             "%s: a sluice run is using this queue: its "
                             "slots are live (stop it first)",
                             q->location);
    if (!sl_queue_has(q, SL_QUEUE_F_SLOTS))
        return SLUICE_OK;
    if (strcmp(sl_queue_slots(q), "redis") == 0)
        return sl_slots_redis_clear(q, origin, cleared);
    return sl_queue_slots_clear(q, origin, cleared);
}
