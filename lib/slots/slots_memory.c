/*
 * The in-memory slot service: slots and pauses held in this process, for
 * this process. A slot is free again the moment it is released, whether
 * or not its request ended with a response; a restarted process starts
 * with every slot free. That is the behaviour of sluice on one machine
 * before slots became durable, and it suits tests and single runs.
 */
#include "slots.h"

#include <assert.h>
#include <string.h>

typedef struct {
    uint64_t token; /* 0: free */
    int64_t taken_boot;
    int64_t deadline_boot;
} mem_slot;

struct sl_slot_origin {
    char *name;
    unsigned held;
    int64_t paused_until; /* boot ms; 0: not paused */
    int64_t resumed_from; /* the pause the pacer restarted after */
    mem_slot *slots;      /* cap of them, made at the first take */
    unsigned *free;       /* indexes of free slots, a stack */
    unsigned n_free;
    sl_pacer pacer;
    sl_slot_origin *prev, *next; /* every open origin, for listing */
};

typedef struct {
    sl_slot_origin *origins;
    unsigned held; /* over all origins */
    uint64_t last_token;
} mem_state;

static mem_state *
ms_of(sl_slots *s)
{
    return s->state;
}

static sluice_err
mem_open(sl_slots *s)
{
    (void)s;
    return SLUICE_OK;
}

static void
origin_free(sl_slot_origin *o)
{
    sl_free(o->name);
    sl_free(o->slots);
    sl_free(o->free);
    sl_free(o);
}

static void
mem_close(sl_slots *s)
{
    sl_slot_origin *o = ms_of(s)->origins;
    while (o) {
        sl_slot_origin *next = o->next;
        origin_free(o);
        o = next;
    }
}

static sl_slot_origin *
mem_origin_open(sl_slots *s, const char *name)
{
    mem_state *ms = ms_of(s);
    sl_slot_origin *o = sl_calloc(1, sizeof *o);
    if (!o || !(o->name = sl_strdup(name))) {
        sl_free(o);
        return NULL;
    }
    sl_pacer_limits lim = {s->opts.cap, s->opts.rate, s->opts.adapt};
    sl_pacer_init(&o->pacer, &lim);
    o->next = ms->origins;
    if (o->next)
        o->next->prev = o;
    ms->origins = o;
    return o;
}

static void
mem_origin_close(sl_slots *s, sl_slot_origin *o)
{
    mem_state *ms = ms_of(s);
    assert(o->held == 0);
    if (o->prev)
        o->prev->next = o->next;
    else
        ms->origins = o->next;
    if (o->next)
        o->next->prev = o->prev;
    origin_free(o);
}

/* The origin's slot table, made on first use; -1 when out of memory. */
static int
make_slots(sl_slots *s, sl_slot_origin *o)
{
    unsigned cap = s->opts.cap;
    if (o->slots)
        return 0;
    o->slots = sl_calloc(cap, sizeof *o->slots);
    o->free = sl_calloc(cap, sizeof *o->free);
    if (!o->slots || !o->free) {
        sl_free(o->slots);
        sl_free(o->free);
        o->slots = NULL;
        o->free = NULL;
        return -1;
    }
    for (unsigned i = 0; i < cap; i++)
        o->free[i] = cap - 1 - i; /* slot 0 is taken first */
    o->n_free = cap;
    return 0;
}

static sluice_err
mem_take(sl_slots *s, sl_slot_origin *o, double at, sl_slot *out,
         double *free_at)
{
    mem_state *ms = ms_of(s);
    int64_t now = (int64_t)at;
    if (o->held >= s->opts.cap ||
        (s->opts.max_total && ms->held >= s->opts.max_total))
        return SLUICE_EAGAIN;
    if (o->paused_until > now) {
        *free_at = o->paused_until;
        return SLUICE_EAGAIN;
    }
    if (o->paused_until && o->resumed_from != o->paused_until) {
        /* A pause just ended: restart slowly. */
        sl_pacer_limits lim = {s->opts.cap, s->opts.rate, s->opts.adapt};
        sl_pacer_resume(&o->pacer, &lim, now);
        o->resumed_from = o->paused_until;
    }
    sluice_err err = sl_slots_pace_check(s, &o->pacer, o->held, at, free_at);
    if (err != SLUICE_OK)
        return err;
    if (make_slots(s, o) != 0) {
        sl_fmt(s->errmsg, sizeof s->errmsg, "out of memory");
        return SLUICE_ENOMEM;
    }
    unsigned i = o->free[--o->n_free];
    mem_slot *slot = &o->slots[i];
    slot->token = ++ms->last_token;
    slot->taken_boot = now;
    slot->deadline_boot = now + s->opts.hold_ms;
    o->held++;
    ms->held++;
    sl_slots_pace_start(s, &o->pacer, at);
    *out = (sl_slot){o, i, slot->token, slot->taken_boot, slot->deadline_boot};
    return SLUICE_OK;
}

/* Free at once, complete or not: this process is the only sender. */
static bool
mem_release(sl_slots *s, const sl_slot *slot, bool complete)
{
    mem_state *ms = ms_of(s);
    sl_slot_origin *o = slot->origin;
    (void)complete;
    if (!o->slots || slot->index >= s->opts.cap ||
        o->slots[slot->index].token != slot->token)
        return false; /* stale: not this slot's holder any more */
    o->slots[slot->index].token = 0;
    o->free[o->n_free++] = slot->index;
    o->held--;
    ms->held--;
    return true;
}

static void
mem_pause(sl_slots *s, sl_slot_origin *o, int64_t until)
{
    (void)s;
    if (until > o->paused_until)
        o->paused_until = until;
}

static int64_t
mem_paused_until(sl_slots *s, sl_slot_origin *o)
{
    (void)s;
    return o->paused_until;
}

static unsigned
mem_held(sl_slots *s, sl_slot_origin *o)
{
    (void)s;
    return o->held;
}

static sluice_err
mem_list(sl_slots *s, sl_slot_fn *fn, void *ctx)
{
    for (sl_slot_origin *o = ms_of(s)->origins; o; o = o->next) {
        for (unsigned i = 0; o->slots && i < s->opts.cap; i++) {
            const mem_slot *slot = &o->slots[i];
            if (!slot->token)
                continue;
            sl_slot_info info = {o->name, SL_SLOT_REQUEST, slot->token,
                                 slot->taken_boot, slot->deadline_boot};
            if (fn(ctx, &info) != 0)
                return SLUICE_OK;
        }
    }
    return SLUICE_OK;
}

static void
mem_feedback(sl_slots *s, sl_slot_origin *o, const sl_slot_feedback *fb,
             int64_t now)
{
    int64_t until;
    if (sl_slots_pace_feedback(s, &o->pacer, o->held, fb, now, &until))
        mem_pause(s, o, until);
}

static void
mem_sent(sl_slots *s, sl_slot_origin *o, double at)
{
    sl_slots_pace_sent(s, &o->pacer, at);
}

static void
mem_limits(sl_slots *s, sl_slot_origin *o, int64_t now, sl_slot_limits *out)
{
    sl_slots_pace_limits(s, &o->pacer, now, out);
}

const sl_slots_ops sl_slots_memory = {
    .backend = {SL_FAMILY_SLOTS, "memory", NULL},
    .state_size = sizeof(mem_state),
    .open = mem_open,
    .close = mem_close,
    .origin_open = mem_origin_open,
    .origin_close = mem_origin_close,
    .take = mem_take,
    .release = mem_release,
    .pause = mem_pause,
    .paused_until = mem_paused_until,
    .held = mem_held,
    .list = mem_list,
    .sent = mem_sent,
    .feedback = mem_feedback,
    .limits = mem_limits,
};
