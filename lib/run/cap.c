/*
 * The limits a run uses, kept with the queue (the cap, the rate): a run
 * given none takes the queue's, a smaller one lowers it, a larger one
 * raises it only when asked to (raise_cap), so that two runs given
 * different limits cannot exceed the smaller. The URL policy ingest kept
 * with the queue, used by a run given none of its own. And what a run
 * says at its start about slots an earlier run left held. All said aloud.
 */
#include "run.h"

#include "policy.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define CAP_MAX     100000
#define RATE_MAX    1000000.0

/* A limit stored with the queue. */
typedef struct {
    const char *setting; /* its name in the queue's settings */
    const char *option;  /* and on the command line */
    const char *unit;
    double unset;        /* what a queue that has none uses */
    double max;
} limit_kind;

static const limit_kind cap_kind = {"cap", "--max-concurrency",
                                    "requests at once per origin",
                                    SLUICE_DEFAULT_CAP, CAP_MAX};
static const limit_kind rate_kind = {"rate", "--rate",
                                     "requests a second per origin",
                                     INFINITY, RATE_MAX};

/* "20", "12.5/s", "none". */
static void
show(char *dst, size_t size, const limit_kind *k, double v)
{
    if (isinf(v))
        sl_copy(dst, size, "none");
    else if (k == &rate_kind)
        sl_fmt(dst, size, "%g/s", v);
    else
        sl_fmt(dst, size, "%.0f", v);
}

/* The queue's value of `k` in *v (INFINITY for "none") with *have true;
 * *have false when it has none. An error for a value that is not a
 * number above 0 and at most k->max. */
static sluice_err
stored(sl_run *r, const limit_kind *k, double *v, bool *have, char *errbuf,
       size_t size)
{
    *have = false;
    if (!sl_queue_has(r->q, SL_QUEUE_F_SLOTS))
        return SLUICE_OK;
    sluice_err err = sl_queue_setting_number(r->q, k->setting, v);
    if (err == SLUICE_ENOTFOUND)
        return SLUICE_OK;
    if (err != SLUICE_OK) {
        sl_copy(errbuf, size, sluice_queue_errmsg(r->q));
        return err;
    }
    if (!isinf(*v) && *v > k->max) {
        sl_fmt(errbuf, size,
               "%s: the %s stored with the queue, %g, is more than %g",
               r->q->location, k->setting, *v, k->max);
        return SLUICE_EDB;
    }
    *have = true;
    return SLUICE_OK;
}

/*
 * The value of `k` a run uses, given `given` (0: not given; INFINITY:
 * "none"): the queue's when not given; a smaller one lowers the queue's,
 * a larger one raises it only with raise_cap. Stored; a change said.
 */
static sluice_err
resolve(sl_run *r, const limit_kind *k, double given, double *use,
        char *errbuf, size_t size)
{
    double was = 0;
    bool have;
    char a[32], b[32];
    sluice_err err = stored(r, k, &was, &have, errbuf, size);
    if (err != SLUICE_OK)
        return err;
    if (given > k->max && !isinf(given)) {
        sl_fmt(errbuf, size, "%s: %g: at most %g", k->option, given, k->max);
        return SLUICE_EINVAL;
    }
    if (given == 0) {
        *use = have ? was : k->unset;
        return SLUICE_OK;
    }
    *use = given;
    if (have && given == was)
        return SLUICE_OK;
    show(a, sizeof a, k, was);
    show(b, sizeof b, k, given);
    if (have && given > was && !r->o->raise_cap) {
        *use = was;
        sl_run_notice(r,
                      "%s: %s %s, stored with the queue; %s %s is larger "
                      "and was not used (--raise-cap raises it)",
                      k->setting, a, k->unit, k->option, b);
        return SLUICE_OK;
    }
    /* Stored as a plain number, as stored() and `status` read it. */
    char text[32];
    if (isinf(given))
        sl_copy(text, sizeof text, "none");
    else
        sl_fmt(text, sizeof text, "%.17g", given);
    if (sl_queue_has(r->q, SL_QUEUE_F_SLOTS) &&
        (err = sl_queue_setting_set(r->q, k->setting, text)) != SLUICE_OK) {
        sl_copy(errbuf, size, sluice_queue_errmsg(r->q));
        return err;
    }
    /* The first value a queue is given is kept without a word; a change
     * of it is said. */
    if (have)
        sl_run_notice(r,
                      "%s: %s from %s to %s %s, stored with the queue for "
                      "every run",
                      k->setting, given < was ? "lowered" : "raised", a, b,
                      k->unit);
    return SLUICE_OK;
}

sluice_err
sl_run_limits(sl_run *r, unsigned *cap, double *rate, char *errbuf,
              size_t size)
{
    double c, v;
    double rate_given = r->o->rate < 0 ? INFINITY : r->o->rate;
    sluice_err err = resolve(r, &cap_kind, (double)r->o->max_concurrency, &c,
                             errbuf, size);
    if (err == SLUICE_OK)
        err = resolve(r, &rate_kind, rate_given, &v, errbuf, size);
    if (err != SLUICE_OK)
        return err;
    *cap = (unsigned)c;
    *rate = isinf(v) ? 0 : v;
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
                  "%u slot%s of %u origin%s held for an earlier run or "
                  "another runner (its requests may still be running at "
                  "the origin): all free by %s, in %.0f s",
                  h.slots, h.slots == 1 ? "" : "s", h.origins,
                  h.origins == 1 ? "" : "s", when,
                  (double)(h.free_by - now_boot) / 1000.0);
}

sluice_err
sl_run_policy(sl_run *r, char *errbuf, size_t size)
{
    const sluice_run_opts *o = r->o;
    sl_policy given = {0}, kept;
    bool stored, changed;
    char what[512], kept_what[512];
    sluice_err err = sl_policy_load(r->q, &kept, &stored, errbuf, size);
    if (err == SLUICE_ENOMEM)
        sl_copy(errbuf, size, "out of memory");
    if (err != SLUICE_OK)
        return err;
    if (sl_policy_add(&given, o->allow_private, o->allow_nets,
                      o->n_allow_nets, &changed) != 0) {
        sl_policy_free(&kept);
        sl_copy(errbuf, size, "out of memory");
        return SLUICE_ENOMEM;
    }
    sl_policy_describe(&given, what, sizeof what);
    sl_policy_describe(&kept, kept_what, sizeof kept_what);
    if (changed) {
        /* Its own: r->guard holds it already. */
        if (stored && strcmp(what, kept_what) != 0)
            sl_run_notice(r,
                          "URL policy: %s, given to this run; not the one "
                          "stored with the queue: %s",
                          what, kept_what);
        else
            sl_run_notice(r, "URL policy: %s (given to this run)", what);
    } else if (kept.allow_private || kept.n_nets) {
        sl_guard_free(&r->guard);
        err = sl_policy_guard(&kept, &r->guard, errbuf, size);
        if (err == SLUICE_OK)
            sl_run_notice(r,
                          "URL policy: %s (stored with the queue by "
                          "ingest)",
                          kept_what);
    }
    sl_policy_free(&given);
    sl_policy_free(&kept);
    return err;
}
