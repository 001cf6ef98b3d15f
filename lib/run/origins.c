/*
 * The run's origins (run.h): what the run knows of each origin it has
 * jobs for, by name: its ready jobs, its outage state and its handle in
 * the slot service, which holds the slots and pauses themselves. An
 * origin with no jobs is forgotten once its pause is over.
 */
#include "run.h"

#include <assert.h>
#include <string.h>

sluice_err
sl_origins_init(sl_origins *t, sl_slots *slots)
{
    t->slots = slots;
    return sl_table_init(&t->table, 64);
}

static void
origin_free(sl_origins *t, sl_origin *o)
{
    sl_slots_origin_close(t->slots, o->slots);
    sl_free(o->name);
    sl_free(o);
}

void
sl_origins_free(sl_origins *t)
{
    if (!t->table.buckets)
        return;
    SL_FOR_EACH_ORIGIN(t, o)
    {
        origin_free(t, o);
    }
    sl_table_free(&t->table);
}

sl_origin *
sl_origins_get(sl_origins *t, const char *name)
{
    sl_table_entry *e = sl_table_find(&t->table, name);
    if (e)
        return (sl_origin *)e;
    sl_origin *o = sl_calloc(1, sizeof *o);
    if (!o || !(o->name = sl_strdup(name)) ||
        !(o->slots = sl_slots_origin_open(t->slots, name))) {
        if (o)
            sl_free(o->name);
        sl_free(o);
        return NULL;
    }
    o->paused_until = sl_slots_paused_until(t->slots, o->slots);
    o->entry.key = o->name;
    sl_table_insert(&t->table, &o->entry);
    return o;
}

void
sl_origins_forget(sl_origins *t, sl_origin *o)
{
    assert(o->jobs == 0 && o->n_ready == 0);
    sl_table_remove(&t->table, &o->entry);
    origin_free(t, o);
}

bool
sl_origins_sweep(sl_origins *t, int64_t now_boot)
{
    bool ended = false;
    SL_FOR_EACH_ORIGIN(t, o)
    {
        if (o->paused_until && o->paused_until <= now_boot) {
            o->paused_until = sl_slots_paused_until(t->slots, o->slots);
            if (o->paused_until <= now_boot) {
                o->paused_until = 0;
                ended = true;
            }
        }
        /* A down origin is remembered, to back off further. */
        if (o->jobs == 0 && o->paused_until == 0 && !o->down_pauses)
            sl_origins_forget(t, o);
    }
    return ended;
}

void
sl_origins_pause(sl_origins *t, sl_origin *o, int64_t until_boot)
{
    sl_slots_pause(t->slots, o->slots, until_boot);
    o->paused_until = sl_slots_paused_until(t->slots, o->slots);
}
