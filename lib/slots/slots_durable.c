/*
 * The durable slot service: the cap kept where the queue is, so that it
 * holds across crashes and restarts (DESIGN.md, "Slots"). A request is
 * sent only when the queue holds, on disk, a reservation that covers it:
 * "at most `held` requests to this origin are outstanding until U", with
 * U past the request's deadline. Reservations are written ahead of use:
 * one transaction renews every active origin's every RENEW_MS, and a take
 * that would pass the reservation writes a larger one first; releases are
 * lazy (the next renewal lowers it). docs/architecture.md, "The life of a
 * slot", says why this is safe.
 */
#include "slots.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "../queue/queue.h"
#include "../table.h"

/* Added to --timeout for a slot's deadline: the network's delay and the
 * origin's clock; the origin is assumed done with a request by then. */
#define MARGIN_MS 1000
/* A reservation covers requests sent this long after it is written. */
#define LOOKAHEAD_MS 1000
/* Active origins' reservations are renewed this often. */
#define RENEW_MS 250
/* A new service's tokens start this far past any token on disk. */
#define TOKEN_GAP (UINT64_C(1) << 32)

typedef struct {
    uint64_t token; /* 0: free */
    int64_t taken, deadline;
    bool abandoned; /* released without a complete response */
} dslot;

struct sl_slot_origin {
    sl_table_entry entry; /* first: the table hands out entries */
    char *name;
    unsigned refs; /* handles the caller holds */
    dslot *slots;  /* cap of them, made at the first take */
    unsigned *free_idx;
    unsigned n_free;
    unsigned live;      /* held by requests running now */
    unsigned abandoned; /* held by requests given up on, to their deadline */
    int64_t abandoned_next; /* the earliest such deadline; 0: none */
    unsigned previous;      /* held for an earlier run, until: */
    int64_t previous_until;
    unsigned reserved;      /* the reservation on disk: this many, */
    int64_t reserved_until; /* until then */
    bool has_row;           /* a row is on disk */
    int64_t paused_until;
    int64_t resumed_from; /* the pause the pacer restarted after */
    sl_pacer pacer;       /* pace and learnt limits (pacer.h) */
    bool dirty; /* to be written at the next sync */
};

typedef struct {
    sl_table origins;
    sluice_err broken; /* a write failed: nothing more may be sent */
    char boot_id[40];
    int64_t hold;  /* a slot's life: --timeout plus MARGIN_MS */
    unsigned held; /* live + abandoned, over all origins */
    uint64_t last_token;
    int64_t next_renew;
    bool any_dirty;
    sl_slot_row *rows; /* scratch for writes */
    size_t rows_cap;
} dstate;

static dstate *
ds_of(sl_slots *s)
{
    return s->state;
}

static unsigned
in_use(const sl_slot_origin *o)
{
    return o->live + o->abandoned + o->previous;
}

static unsigned
headroom(const sl_slots *s)
{
    return SL_MAX(s->opts.cap / 4, 1u);
}

/* ------------------------------------------------------------ origins */

static sl_slot_origin *
origin_get(sl_slots *s, const char *name)
{
    dstate *ds = ds_of(s);
    sl_table_entry *e = sl_table_find(&ds->origins, name);
    if (e)
        return (sl_slot_origin *)e;
    sl_slot_origin *o = sl_calloc(1, sizeof *o);
    if (!o || !(o->name = sl_strdup(name))) {
        sl_free(o);
        return NULL;
    }
    o->entry.key = o->name;
    sl_pacer_limits lim = {s->opts.cap, s->opts.rate, s->opts.adapt};
    sl_pacer_init(&o->pacer, &lim);
    sl_table_insert(&ds->origins, &o->entry);
    return o;
}

static void
origin_free(sl_slot_origin *o)
{
    sl_free(o->name);
    sl_free(o->slots);
    sl_free(o->free_idx);
    sl_free(o);
}

/* Slots held for an earlier run and by abandoned requests go when their
 * deadlines pass. */
static void
expire(sl_slots *s, sl_slot_origin *o, int64_t now)
{
    if (o->previous && now >= o->previous_until) {
        o->previous = 0;
        o->dirty = true; /* the row may be lowered or go */
        ds_of(s)->any_dirty = true;
    }
    if (!o->abandoned || now < o->abandoned_next)
        return;
    int64_t next = 0;
    for (unsigned i = 0; i < s->opts.cap; i++) {
        dslot *d = &o->slots[i];
        if (!d->token || !d->abandoned)
            continue;
        if (now >= d->deadline) {
            d->token = 0;
            d->abandoned = false;
            o->free_idx[o->n_free++] = i;
            o->abandoned--;
            ds_of(s)->held--;
        } else if (!next || d->deadline < next) {
            next = d->deadline;
        }
    }
    o->abandoned_next = next;
}

/* The latest deadline of the slots o holds (0: none). */
static int64_t
last_deadline(const sl_slots *s, const sl_slot_origin *o)
{
    int64_t last = o->previous ? o->previous_until : 0;
    for (unsigned i = 0; o->slots && i < s->opts.cap; i++)
        if (o->slots[i].token && o->slots[i].deadline > last)
            last = o->slots[i].deadline;
    return last;
}

/* ------------------------------------------------------------ writing */

static void
row_of(sl_slots *s, const sl_slot_origin *o, int64_t now, int64_t now_wall,
       sl_slot_row *row)
{
    dstate *ds = ds_of(s);
    bool paused = o->paused_until > now;
    *row = (sl_slot_row){
        .origin = o->name,
        .held = o->reserved,
        .in_flight = o->live,
        .boot_id = ds->boot_id,
        .until_boot = o->reserved_until,
        .until_wall =
            o->reserved_until ? now_wall + (o->reserved_until - now) : 0,
        .hold_ms = ds->hold,
        .paused_boot = paused ? o->paused_until : 0,
        .paused_wall = paused ? now_wall + (o->paused_until - now) : 0,
        .token = ds->last_token,
        .written_wall = now_wall,
        .written_boot = now,
        .next_start = (int64_t)ceil(o->pacer.next_start),
        .conc = o->pacer.conc < s->opts.cap ? o->pacer.conc : 0,
        .rate = o->pacer.rate,
        .advised = o->pacer.advised,
        .advised_until = o->pacer.advised_until,
    };
}

static sluice_err
rows_reserve(sl_slots *s, size_t n)
{
    dstate *ds = ds_of(s);
    if (n <= ds->rows_cap)
        return SLUICE_OK;
    size_t cap = SL_MAX(n, ds->rows_cap * 2);
    sl_slot_row *grown = sl_realloc(ds->rows, cap * sizeof *grown);
    if (!grown) {
        sl_fmt(s->errmsg, sizeof s->errmsg, "out of memory");
        return SLUICE_ENOMEM;
    }
    ds->rows = grown;
    ds->rows_cap = cap;
    return SLUICE_OK;
}

/* What o's reservation should be now, by what it holds: room to grow
 * while it has requests running, else just what it holds, to when the
 * last of it is free. */
static void
plan(sl_slots *s, sl_slot_origin *o, int64_t now)
{
    unsigned use = in_use(o);
    if (o->live > 0) {
        o->reserved = SL_MIN(s->opts.cap, use + headroom(s));
        o->reserved_until = now + ds_of(s)->hold + LOOKAHEAD_MS;
    } else {
        o->reserved = use;
        o->reserved_until = use ? last_deadline(s, o) : 0;
    }
}

/* Write the rows of every origin that needs it (all with `all`, else the
 * dirty ones and `also`), in one transaction. */
static sluice_err
write_rows(sl_slots *s, int64_t now, bool all, sl_slot_origin *also)
{
    dstate *ds = ds_of(s);
    int64_t now_wall = sl_now_ms();
    size_t n = 0;
    sluice_err err = rows_reserve(s, ds->origins.n);
    if (err != SLUICE_OK)
        return err;
    SL_TABLE_FOR_EACH(&ds->origins, e)
    {
        sl_slot_origin *o = (sl_slot_origin *)e;
        bool renew = all && (o->has_row || in_use(o) > 0);
        if (!renew && !o->dirty && o != also)
            continue;
        expire(s, o, now);
        if (o != also)
            plan(s, o, now);
        row_of(s, o, now, now_wall, &ds->rows[n++]);
    }
    sl_queue_lock(s->q);
    err = sl_queue_slots_save(s->q, ds->rows, n);
    if (err != SLUICE_OK)
        sl_copy(s->errmsg, sizeof s->errmsg, sluice_queue_errmsg(s->q));
    sl_queue_unlock(s->q);
    if (err != SLUICE_OK) {
        /* Memory may now promise more than the disk: send nothing more. */
        ds->broken = err;
        return err;
    }
    for (size_t i = 0; i < n; i++) {
        sl_slot_origin *o =
            (sl_slot_origin *)sl_table_find(&ds->origins, ds->rows[i].origin);
        o->has_row = !sl_slot_row_empty(&ds->rows[i]);
        o->dirty = false;
    }
    ds->any_dirty = false;
    s->writes++;
    /* Origins no one holds, holding and pausing nothing, with no row:
     * forgotten, so that memory does not grow with the feed. */
    SL_TABLE_FOR_EACH(&ds->origins, e)
    {
        sl_slot_origin *o = (sl_slot_origin *)e;
        if (o->refs == 0 && in_use(o) == 0 && !o->has_row && !o->dirty &&
            o->paused_until <= now) {
            sl_table_remove(&ds->origins, &o->entry);
            origin_free(o);
        }
    }
    return SLUICE_OK;
}

/* ------------------------------------------------------------ the ops */

typedef struct {
    sl_slots *s;
    int64_t now, now_wall;
} load_ctx;

/* A row on disk: what an earlier run holds, and its pause. */
static int
load_row(void *arg, const sl_slot_row *row)
{
    load_ctx *c = arg;
    dstate *ds = ds_of(c->s);
    sl_slot_origin *o = origin_get(c->s, row->origin);
    if (!o)
        return -1;
    bool this_boot = strcmp(row->boot_id, ds->boot_id) == 0;
    /* From another boot: its requests began before this boot did, so
     * they are over by the boot's start plus their hold. */
    int64_t until = this_boot ? row->until_boot : row->hold_ms;
    int64_t paused = this_boot ? row->paused_boot
                     : row->paused_wall
                         ? c->now + (row->paused_wall - c->now_wall)
                         : 0;
    o->has_row = true;
    if (row->held > 0 && until > c->now) {
        o->previous = SL_MIN(row->held, c->s->opts.cap);
        o->previous_until = until;
        o->reserved = o->previous;
        o->reserved_until = until;
    } else {
        o->dirty = true; /* over: the row goes at the first sync */
        ds->any_dirty = true;
    }
    if (paused > c->now)
        o->paused_until = paused;
    if (row->token > ds->last_token)
        ds->last_token = row->token;
    /* What the pacer learnt holds for the next run; and no request goes
     * sooner than the earlier run's pace allows: it may have sent until
     * its reservation's lookahead ran out after the row was written. */
    if (row->conc >= 1)
        o->pacer.conc = row->conc;
    o->pacer.rate = row->rate;
    if (this_boot) {
        o->pacer.advised = row->advised;
        o->pacer.advised_until = row->advised_until;
        sl_pacer_limits lim = {c->s->opts.cap, c->s->opts.rate,
                               c->s->opts.adapt};
        double rate = sl_pacer_rate(&o->pacer, &lim, c->now);
        if (rate > 0) {
            int64_t after = row->written_boot + LOOKAHEAD_MS +
                            (int64_t)ceil(1000.0 / rate);
            o->pacer.next_start =
                (double)(row->next_start > after ? row->next_start : after);
        }
    }
    return 0;
}

static sluice_err
durable_open(sl_slots *s)
{
    dstate *ds = ds_of(s);
    if (!s->q || !sl_queue_has(s->q, SL_QUEUE_F_SLOTS)) {
        sl_fmt(s->errmsg, sizeof s->errmsg,
               "durable slots need a queue that keeps them");
        return SLUICE_EUNSUPPORTED;
    }
    if (sl_table_init(&ds->origins, 64) != SLUICE_OK) {
        sl_fmt(s->errmsg, sizeof s->errmsg, "out of memory");
        return SLUICE_ENOMEM;
    }
    sl_boot_id(ds->boot_id, sizeof ds->boot_id);
    if (!ds->boot_id[0])
        sl_copy(ds->boot_id, sizeof ds->boot_id, "unknown");
    ds->hold = s->opts.hold_ms + MARGIN_MS;
    load_ctx c = {s, sl_boot_ms(), sl_now_ms()};
    sl_queue_lock(s->q);
    sluice_err err = sl_queue_slots_load(s->q, load_row, &c);
    if (err != SLUICE_OK)
        sl_copy(s->errmsg, sizeof s->errmsg, sluice_queue_errmsg(s->q));
    sl_queue_unlock(s->q);
    if (err == SLUICE_OK && ds->origins.n > 0 && !ds->rows_cap &&
        rows_reserve(s, 1) != SLUICE_OK)
        err = SLUICE_ENOMEM;
    ds->last_token += TOKEN_GAP;
    return err;
}

/* At the end: every slot still held (abandoned requests, an earlier
 * run's) written with its deadline, for the next run. */
static void
durable_close(sl_slots *s)
{
    dstate *ds = ds_of(s);
    if (!ds->origins.buckets)
        return;
    if (s->q)
        write_rows(s, sl_boot_ms(), true, NULL); /* best effort: the
            reservation on disk already covers whatever holds a slot */
    SL_TABLE_FOR_EACH(&ds->origins, e)
    {
        origin_free((sl_slot_origin *)e);
    }
    sl_table_free(&ds->origins);
    sl_free(ds->rows);
}

static sl_slot_origin *
durable_origin_open(sl_slots *s, const char *name)
{
    sl_slot_origin *o = origin_get(s, name);
    if (o)
        o->refs++;
    return o;
}

static void
durable_origin_close(sl_slots *s, sl_slot_origin *o)
{
    assert(o->refs > 0);
    o->refs--;
    int64_t now = sl_boot_ms();
    expire(s, o, now);
    if (o->refs == 0 && in_use(o) == 0 && !o->has_row && !o->dirty &&
        o->paused_until <= now) {
        sl_table_remove(&ds_of(s)->origins, &o->entry);
        origin_free(o);
    }
}

static int
make_slots(sl_slots *s, sl_slot_origin *o)
{
    unsigned cap = s->opts.cap;
    if (o->slots)
        return 0;
    o->slots = sl_calloc(cap, sizeof *o->slots);
    o->free_idx = sl_calloc(cap, sizeof *o->free_idx);
    if (!o->slots || !o->free_idx) {
        sl_free(o->slots);
        sl_free(o->free_idx);
        o->slots = NULL;
        o->free_idx = NULL;
        return -1;
    }
    for (unsigned i = 0; i < cap; i++)
        o->free_idx[i] = cap - 1 - i; /* slot 0 is taken first */
    o->n_free = cap;
    return 0;
}

static sluice_err
durable_take(sl_slots *s, sl_slot_origin *o, double at, sl_slot *out,
             double *free_at)
{
    dstate *ds = ds_of(s);
    int64_t now = (int64_t)at;
    if (ds->broken) {
        sl_fmt(s->errmsg, sizeof s->errmsg,
               "the slots could not be written to the queue");
        return ds->broken;
    }
    expire(s, o, now);
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
    unsigned use = in_use(o);
    if (use >= s->opts.cap) {
        /* With none running, no release can come first: say when. */
        if (o->live == 0) {
            int64_t next = o->previous ? o->previous_until : 0;
            if (o->abandoned && (!next || o->abandoned_next < next))
                next = o->abandoned_next;
            *free_at = next;
        }
        return SLUICE_EAGAIN;
    }
    if (s->opts.max_total && ds->held >= s->opts.max_total)
        return SLUICE_EAGAIN;
    /* The learnt limit is on the requests this run has going: those of
     * an earlier run, and those given up on, count against the cap (the
     * ceiling) until their deadlines, and a learnt limit below it must
     * not wait for them. */
    sluice_err err = sl_slots_pace_check(s, &o->pacer, o->live, at, free_at);
    if (err != SLUICE_OK)
        return err;
    if (make_slots(s, o) != 0) {
        sl_fmt(s->errmsg, sizeof s->errmsg, "out of memory");
        return SLUICE_ENOMEM;
    }
    int64_t deadline = now + ds->hold;
    if (use + 1 > o->reserved || deadline > o->reserved_until) {
        /* Past the reservation on disk: a larger one first. */
        unsigned was = o->reserved;
        int64_t was_until = o->reserved_until;
        o->reserved = SL_MIN(s->opts.cap, use + 1 + headroom(s));
        o->reserved_until = now + ds->hold + LOOKAHEAD_MS;
        sluice_err werr = write_rows(s, now, false, o);
        if (werr != SLUICE_OK) {
            o->reserved = was;
            o->reserved_until = was_until;
            return werr;
        }
    }
    unsigned i = o->free_idx[--o->n_free];
    dslot *d = &o->slots[i];
    d->token = ++ds->last_token;
    d->taken = now;
    d->deadline = deadline;
    d->abandoned = false;
    o->live++;
    ds->held++;
    sl_slots_pace_start(s, &o->pacer, at);
    *out = (sl_slot){o, i, d->token, d->taken, d->deadline};
    return SLUICE_OK;
}

static bool
durable_release(sl_slots *s, const sl_slot *slot, bool complete)
{
    dstate *ds = ds_of(s);
    sl_slot_origin *o = slot->origin;
    if (!o->slots || slot->index >= s->opts.cap)
        return false;
    dslot *d = &o->slots[slot->index];
    if (d->token != slot->token || d->abandoned)
        return false; /* stale: not this slot's holder any more */
    o->live--;
    if (!complete && sl_boot_ms() < d->deadline) {
        /* The origin may still be working on it: held to its deadline. */
        d->abandoned = true;
        o->abandoned++;
        if (!o->abandoned_next || d->deadline < o->abandoned_next)
            o->abandoned_next = d->deadline;
        return true;
    }
    d->token = 0;
    o->free_idx[o->n_free++] = slot->index;
    ds->held--;
    return true;
}

static void
durable_pause(sl_slots *s, sl_slot_origin *o, int64_t until)
{
    if (until <= o->paused_until)
        return;
    o->paused_until = until;
    o->dirty = true; /* on disk at the next sync, before any request */
    ds_of(s)->any_dirty = true;
}

static int64_t
durable_paused_until(sl_slots *s, sl_slot_origin *o)
{
    (void)s;
    return o->paused_until;
}

static unsigned
durable_held(sl_slots *s, sl_slot_origin *o)
{
    (void)s;
    return in_use(o);
}

static sluice_err
durable_list(sl_slots *s, sl_slot_fn *fn, void *ctx)
{
    int64_t now = sl_boot_ms();
    SL_TABLE_FOR_EACH(&ds_of(s)->origins, e)
    {
        sl_slot_origin *o = (sl_slot_origin *)e;
        for (unsigned i = 0; i < o->previous && now < o->previous_until; i++) {
            sl_slot_info info = {o->name, SL_SLOT_PREVIOUS, 0, 0,
                                 o->previous_until};
            if (fn(ctx, &info) != 0)
                return SLUICE_OK;
        }
        for (unsigned i = 0; o->slots && i < s->opts.cap; i++) {
            const dslot *d = &o->slots[i];
            if (!d->token)
                continue;
            sl_slot_info info = {
                o->name, d->abandoned ? SL_SLOT_ABANDONED : SL_SLOT_REQUEST,
                d->token, d->taken, d->deadline};
            if (fn(ctx, &info) != 0)
                return SLUICE_OK;
        }
    }
    return SLUICE_OK;
}

static sluice_err
durable_sync(sl_slots *s, int64_t now)
{
    dstate *ds = ds_of(s);
    if (ds->broken)
        return ds->broken;
    if (now < ds->next_renew && !ds->any_dirty)
        return SLUICE_OK;
    sluice_err err = write_rows(s, now, now >= ds->next_renew, NULL);
    if (err == SLUICE_OK)
        ds->next_renew = now + RENEW_MS;
    return err;
}

static void
durable_feedback(sl_slots *s, sl_slot_origin *o, const sl_slot_feedback *fb,
                 int64_t now)
{
    int64_t until;
    if (sl_slots_pace_feedback(s, &o->pacer, o->live, fb, now,
                               &until))
        durable_pause(s, o, until);
}

static void
durable_sent(sl_slots *s, sl_slot_origin *o, double at)
{
    sl_slots_pace_sent(s, &o->pacer, at);
}

static void
durable_limits(sl_slots *s, sl_slot_origin *o, int64_t now,
               sl_slot_limits *out)
{
    sl_slots_pace_limits(s, &o->pacer, now, out);
}

const sl_slots_ops sl_slots_durable = {
    .backend = {SL_FAMILY_SLOTS, "durable", NULL},
    .state_size = sizeof(dstate),
    .open = durable_open,
    .close = durable_close,
    .origin_open = durable_origin_open,
    .origin_close = durable_origin_close,
    .take = durable_take,
    .release = durable_release,
    .pause = durable_pause,
    .paused_until = durable_paused_until,
    .held = durable_held,
    .list = durable_list,
    .sync = durable_sync,
    .sent = durable_sent,
    .feedback = durable_feedback,
    .limits = durable_limits,
};
