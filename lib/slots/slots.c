/*
 * The slot service's wrappers (slots.h): opening by backend name, and
 * the checks every backend gets for free: a slot is taken only when the
 * backend says one is free, released once, and the cap is never passed.
 */
#include "slots.h"

#include <assert.h>
#include <string.h>

sluice_err
sl_slots_open(const char *name, const sl_slots_opts *opts, sluice_queue *q,
              sl_slots **out, char *errbuf, size_t errbuf_size)
{
    *out = NULL;
    const sl_backend *b = sl_backend_named(SL_FAMILY_SLOTS, name);
    if (!b) {
        sl_fmt(errbuf, errbuf_size, "no slot service '%s'", name);
        return SLUICE_EUNSUPPORTED;
    }
    const sl_slots_ops *ops = (const sl_slots_ops *)b;
    sl_slots *s = sl_calloc(1, sizeof *s);
    if (!s || !(s->state = sl_calloc(1, SL_MAX(ops->state_size, 1)))) {
        sl_free(s);
        sl_fmt(errbuf, errbuf_size, "out of memory");
        return SLUICE_ENOMEM;
    }
    s->ops = ops;
    s->opts = *opts;
    s->q = q;
    if (s->opts.cap == 0)
        s->opts.cap = 1;
    sluice_err err = ops->open(s);
    if (err != SLUICE_OK) {
        sl_copy(errbuf, errbuf_size, s->errmsg);
        sl_slots_close(s);
        return err;
    }
    *out = s;
    return SLUICE_OK;
}

void
sl_slots_close(sl_slots *s)
{
    if (!s)
        return;
    s->ops->close(s);
    sl_free(s->state);
    sl_free(s);
}

sl_slot_origin *
sl_slots_origin_open(sl_slots *s, const char *name)
{
    assert(name && *name);
    return s->ops->origin_open(s, name);
}

void
sl_slots_origin_close(sl_slots *s, sl_slot_origin *o)
{
    if (!o)
        return;
    s->ops->origin_close(s, o);
}

sluice_err
sl_slots_take(sl_slots *s, sl_slot_origin *o, double at, sl_slot *out,
              double *free_at)
{
    assert(o);
    *free_at = 0;
    memset(out, 0, sizeof *out);
    sluice_err err = s->ops->take(s, o, at, out, free_at);
    if (err != SLUICE_OK)
        return err;
    /* Taking a slot past the cap is a bug, not a condition. */
    unsigned held = s->ops->held(s, o);
    assert(out->origin == o && out->token != 0);
    assert(held <= s->opts.cap);
    assert(!s->opts.max_total || s->n_held < s->opts.max_total);
    s->n_held++;
    if (held > s->peak)
        s->peak = held;
    return SLUICE_OK;
}

void
sl_slots_release(sl_slots *s, sl_slot *slot, bool complete)
{
    assert(slot->origin && slot->token != 0);
    if (s->ops->release(s, slot, complete)) {
        assert(s->n_held > 0);
        s->n_held--;
    }
    memset(slot, 0, sizeof *slot);
}

void
sl_slots_pause(sl_slots *s, sl_slot_origin *o, int64_t until)
{
    s->ops->pause(s, o, until);
}

int64_t
sl_slots_paused_until(sl_slots *s, sl_slot_origin *o)
{
    return s->ops->paused_until(s, o);
}

unsigned
sl_slots_held(sl_slots *s, sl_slot_origin *o)
{
    return s->ops->held(s, o);
}

sluice_err
sl_slots_list(sl_slots *s, sl_slot_fn *fn, void *ctx)
{
    return s->ops->list(s, fn, ctx);
}

sluice_err
sl_slots_sync(sl_slots *s, int64_t now)
{
    return s->ops->sync ? s->ops->sync(s, now) : SLUICE_OK;
}

void
sl_slots_settle(sl_slots *s)
{
    if (s->ops->settle)
        s->ops->settle(s);
}

void
sl_slots_want(sl_slots *s, sl_slot_origin *o, unsigned n)
{
    if (s->ops->want)
        s->ops->want(s, o, n);
}

static sl_pacer_limits
pacer_limits(const sl_slots *s)
{
    return (sl_pacer_limits){s->opts.cap, s->opts.rate, s->opts.adapt};
}

sluice_err
sl_slots_pace_check(const sl_slots *s, const sl_pacer *p, unsigned in_use,
                    double at, double *free_at)
{
    sl_pacer_limits lim = pacer_limits(s);
    if (in_use >= sl_pacer_conc(p, &lim))
        return SLUICE_EAGAIN; /* after a release */
    if (!sl_pacer_may_start(p, &lim, at, free_at))
        return SLUICE_EAGAIN;
    return SLUICE_OK;
}

void
sl_slots_pace_start(const sl_slots *s, sl_pacer *p, double at)
{
    sl_pacer_limits lim = pacer_limits(s);
    sl_pacer_started(p, &lim, at);
}

void
sl_slots_pace_sent(const sl_slots *s, sl_pacer *p, double at)
{
    sl_pacer_limits lim = pacer_limits(s);
    sl_pacer_sent(p, &lim, at);
}

bool
sl_slots_pace_feedback(const sl_slots *s, sl_pacer *p, unsigned in_use,
                       const sl_slot_feedback *fb, int64_t now,
                       int64_t *pause_until)
{
    sl_pacer_limits lim = pacer_limits(s);
    sl_pacer_ended(p, &lim, fb->signal, fb->started, fb->latency_ms, in_use,
                   now);
    return sl_pacer_advise(p, &fb->advice, in_use, now, pause_until);
}

void
sl_slots_pace_limits(const sl_slots *s, const sl_pacer *p, int64_t now,
                     sl_slot_limits *out)
{
    sl_pacer_limits lim = pacer_limits(s);
    out->conc = sl_pacer_conc(p, &lim);
    out->rate = sl_pacer_rate(p, &lim, now);
}

void
sl_slots_sent(sl_slots *s, sl_slot_origin *o, double at)
{
    assert(o);
    if (s->ops->sent)
        s->ops->sent(s, o, at);
}

void
sl_slots_feedback(sl_slots *s, sl_slot_origin *o, const sl_slot_feedback *fb)
{
    assert(o && fb->started > 0);
    if (s->ops->feedback)
        s->ops->feedback(s, o, fb, sl_boot_ms());
}

void
sl_slots_limits(sl_slots *s, sl_slot_origin *o, sl_slot_limits *out)
{
    *out = (sl_slot_limits){s->opts.cap, s->opts.cap, s->opts.rate,
                            s->opts.rate};
    if (s->ops->limits)
        s->ops->limits(s, o, sl_boot_ms(), out);
}
