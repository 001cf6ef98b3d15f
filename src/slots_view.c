/*
 * How the tool shows the slots a queue holds: collected once from
 * sluice_slots_list, printed as lines or as JSON members. `sluice status`
 * and `sluice slots` share it.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static int
collect(void *ctx, const sluice_slot_holding *h)
{
    slots_view *v = ctx;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        sluice_slot_holding *grown = realloc(v->items, cap * sizeof *grown);
        if (!grown)
            return -1;
        v->items = grown;
        v->cap = cap;
    }
    sluice_slot_holding *copy = &v->items[v->n++];
    *copy = *h;
    copy->origin = strdup(h->origin);
    if (!copy->origin) {
        v->n--;
        return -1;
    }
    if (h->by_live_run)
        v->live = true;
    v->requests += h->in_flight;
    return 0;
}

sluice_err
slots_view_load(slots_view *v, sluice_queue *q)
{
    memset(v, 0, sizeof *v);
    return sluice_slots_list(q, collect, v);
}

void
slots_view_free(slots_view *v)
{
    for (size_t i = 0; i < v->n; i++)
        free((char *)v->items[i].origin);
    free(v->items);
    memset(v, 0, sizeof *v);
}

/* "12:03:04 (in 1m35s)" for a wall time `at_ms`, `in_s` from now. */
static void
when(char *dst, size_t size, int64_t at_ms, double in_s)
{
    time_t t = (time_t)(at_ms / 1000);
    struct tm tm;
    char clock[16] = "?", in[32];
    if (localtime_r(&t, &tm))
        strftime(clock, sizeof clock, "%H:%M:%S", &tm);
    cli_duration(in, sizeof in, in_s);
    snprintf(dst, size, "%s (in %s)", clock, in);
}

void
slots_view_print(const slots_view *v, FILE *out)
{
    for (size_t i = 0; i < v->n; i++) {
        const sluice_slot_holding *h = &v->items[i];
        char at[64];
        if (h->held) {
            when(at, sizeof at, h->free_at, h->free_in_s);
            fprintf(out, "  %s: %u slot%s held until %s, %s\n", h->origin,
                    h->held, h->held == 1 ? "" : "s", at,
                    h->by_live_run ? "by the run using the queue"
                                   : "for a run that is gone");
        }
        if (h->paused_until) {
            when(at, sizeof at, h->paused_until, h->paused_for_s);
            fprintf(out, "  %s: paused until %s (Retry-After)\n", h->origin,
                    at);
        }
        if (h->limit < h->cap || h->rate > 0) {
            char rate[32] = "";
            if (h->rate > 0)
                snprintf(rate, sizeof rate, ", paced at %.3g/s", h->rate);
            fprintf(out, "  %s: %u of %u at once%s\n", h->origin, h->limit,
                    h->cap, rate);
        }
    }
}

void
slots_view_json(const slots_view *v, yajl_gen g)
{
    cli_json_key(g, "slots");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < v->n; i++) {
        const sluice_slot_holding *h = &v->items[i];
        yajl_gen_map_open(g);
        cli_json_member_str(g, "origin", h->origin);
        cli_json_uint(g, "held", h->held);
        cli_json_uint(g, "in_flight", h->in_flight);
        cli_json_key(g, "by_live_run");
        yajl_gen_bool(g, h->by_live_run);
        cli_json_key(g, "free_in_s");
        cli_json_double(g, h->free_in_s);
        cli_json_key(g, "paused_for_s");
        cli_json_double(g, h->paused_for_s);
        cli_json_uint(g, "cap", h->cap);
        cli_json_uint(g, "limit", h->limit);
        cli_json_key(g, "rate");
        cli_json_double(g, h->rate);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
}
