/*
 * How `sluice status` shows a stream source: each shard's place in the
 * queue and how far behind the stream's end it is (MillisBehindLatest as
 * the service gave it at the last read, else from the last record's
 * arrival time), collected once, printed as lines or as a JSON member.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static int
collect(void *ctx, const sluice_stream_place *p)
{
    streams_view *v = ctx;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        sluice_stream_place *grown = realloc(v->items, cap * sizeof *grown);
        if (!grown)
            return -1;
        v->items = grown;
        v->cap = cap;
    }
    sluice_stream_place *copy = &v->items[v->n];
    *copy = *p;
    copy->stream = strdup(p->stream);
    copy->shard = strdup(p->shard);
    copy->seq = strdup(p->seq);
    v->n++;
    if (!copy->stream || !copy->shard || !copy->seq)
        return -1;
    return 0;
}

sluice_err
streams_view_load(streams_view *v, sluice_queue *q)
{
    memset(v, 0, sizeof *v);
    return sluice_stream_places(q, collect, v);
}

void
streams_view_free(streams_view *v)
{
    for (size_t i = 0; i < v->n; i++) {
        free((char *)v->items[i].stream);
        free((char *)v->items[i].shard);
        free((char *)v->items[i].seq);
    }
    free(v->items);
    memset(v, 0, sizeof *v);
}

/* How far behind, in ms, and from what; -1 when unknown. */
static int64_t
behind(const sluice_stream_place *p, const char **from)
{
    if (p->finished) {
        *from = "finished";
        return 0;
    }
    if (p->behind_ms >= 0) {
        *from = "service";
        return p->behind_ms;
    }
    if (p->arrival_ms > 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        *from = "arrival";
        int64_t ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
        return ms > p->arrival_ms ? ms - p->arrival_ms : 0;
    }
    *from = "unknown";
    return -1;
}

void
streams_view_print(const streams_view *v, FILE *out)
{
    for (size_t i = 0; i < v->n; i++) {
        const sluice_stream_place *p = &v->items[i];
        const char *from;
        int64_t ms = behind(p, &from);
        char lag[64] = "behind: unknown", dur[32];
        if (p->finished)
            snprintf(lag, sizeof lag, "closed, read to its end");
        else if (ms >= 0) {
            cli_duration(dur, sizeof dur, (double)ms / 1000);
            snprintf(lag, sizeof lag, "%s behind%s", dur,
                     strcmp(from, "arrival") == 0 ? " (by arrival time)" : "");
        }
        char sub[32] = "";
        if (p->subseq)
            snprintf(sub, sizeof sub, " sub %u", (unsigned)p->subseq);
        fprintf(out, "  %s %s: after %s%s, %s\n", p->stream, p->shard,
                *p->seq ? p->seq : "nothing yet", sub, lag);
    }
}

void
streams_view_json(const streams_view *v, yajl_gen g)
{
    cli_json_key(g, "streams");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < v->n; i++) {
        const sluice_stream_place *p = &v->items[i];
        const char *from;
        int64_t ms = behind(p, &from);
        char at[40] = "";
        yajl_gen_map_open(g);
        cli_json_member_str(g, "stream", p->stream);
        cli_json_member_str(g, "shard", p->shard);
        cli_json_member_str(g, "seq", p->seq);
        cli_json_uint(g, "subseq", p->subseq);
        cli_json_key(g, "finished");
        yajl_gen_bool(g, p->finished);
        cli_json_member_int_or_null(g, "behind_ms", (long long)ms, ms >= 0);
        cli_json_member_str(g, "behind_from", from);
        cli_iso_time(at, sizeof at, p->written_ms);
        cli_json_member_str(g, "written_at", at);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
}
