/*
 * The origin's accounting: a request leaving in_flight is counted under
 * its status and logged; the control routes /_stats, /_log and /_clock
 * report the counters, the log and the clock, and /_reset zeroes them.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "origin.h"

#define LOG_MAX 1000000 /* /_log entries kept; later ones dropped */

static void
log_append(struct origin *o, const struct request *r, uint64_t bytes_sent,
           uint64_t end_ns)
{
    if (o->log_len == LOG_MAX) {
        o->log_dropped++;
        return;
    }
    if (o->log_len == o->log_cap) {
        o->log_cap = o->log_cap ? o->log_cap * 2 : 1024;
        if (o->log_cap > LOG_MAX)
            o->log_cap = LOG_MAX;
        o->log = xrealloc(o->log, o->log_cap * sizeof *o->log);
    }
    struct log_entry *e = &o->log[o->log_len++];
    e->n = r->n;
    e->attempt = r->attempt;
    e->start_ns = r->start_ns - o->start_ns;
    e->end_ns = end_ns - o->start_ns;
    e->latency_ms = r->latency_ms;
    e->bytes_sent = bytes_sent;
    e->key = r->key;
    e->status = r->status;
}

/* Body bytes of the current response written so far. */
uint64_t
body_bytes_sent(const struct conn *c)
{
    uint64_t from_out =
        c->out.sent > c->head_bytes ? c->out.sent - c->head_bytes : 0;

    return from_out + c->body_off;
}

/*
 * Request r ends now, with bytes_sent body bytes written: it leaves
 * in_flight, and unless a /_reset came since it started, it is counted
 * under its status (and under abandoned, if its client left before it
 * ended) and logged with now as its end. Called exactly once per request.
 */
void
request_finish(struct origin *o, const struct request *r, uint64_t bytes_sent,
               bool abandoned)
{
    o->in_flight--;
    if (r->epoch != o->epoch)
        return;
    o->status_counts[r->status]++;
    if (abandoned)
        o->abandoned++;
    log_append(o, r, bytes_sent, now_ns());
}

/*
 * End c's /img request, if one is in flight (request_finish()). Called
 * when its response is fully written or its connection closes, whichever
 * comes first; a request held by request_hold() is no longer c's.
 */
void
request_end(struct origin *o, struct conn *c)
{
    struct request *r = &c->req;

    if (!r->active)
        return;
    r->active = false;
    request_finish(o, r, body_bytes_sent(c), false);
}

void
send_stats(struct origin *o, struct conn *c)
{
    struct buf *t = &o->text;
    bool first = true;

    buf_clear(t);
    buf_printf(t,
               "{\"requests\":%" PRIu64 ",\"in_flight\":%" PRIu64
               ",\"peak_in_flight\":%" PRIu64 ",\"violations\":%" PRIu64
               ",\"connections\":%" PRIu64 ",\"status\":{",
               o->requests, o->in_flight, o->peak_in_flight, o->violations,
               o->connections);
    for (unsigned s = 0; s < STATUS_MAX; s++) {
        if (o->status_counts[s] == 0)
            continue;
        buf_printf(t, "%s\"%u\":%" PRIu64, first ? "" : ",", s,
                   o->status_counts[s]);
        first = false;
    }
    buf_printf(t, "}");
    if (o->opt.hold_abandoned)
        buf_printf(t, ",\"abandoned\":%" PRIu64, o->abandoned);
    rate_stats(o, t);
    buf_printf(t, ",\"log_dropped\":%" PRIu64 "}\n", o->log_dropped);
    start_response(c, 200, "application/json", t->len, NULL);
    if (!c->head_only)
        buf_append(&c->out, t->data, t->len);
    conn_send(o, c);
}

static size_t
decimal_digits(uint64_t v)
{
    size_t digits = 1;

    while (v >= 10) {
        v /= 10;
        digits++;
    }
    return digits;
}

/* The length of e's /_log line, computed without formatting it. */
static size_t
log_line_length(const struct log_entry *e)
{
    return decimal_digits(e->n) + decimal_digits(e->attempt) +
           decimal_digits(e->start_ns / NS_PER_MS) +
           decimal_digits(e->end_ns / NS_PER_MS) +
           decimal_digits(e->latency_ms) + decimal_digits(e->status) +
           decimal_digits(e->bytes_sent) + e->key->len + 8;
}

/*
 * /_log: one line per finished request, written straight into c->out
 * after its head (the length is summed first), so a large log costs one
 * copy in memory, not two.
 */
void
send_log(struct origin *o, struct conn *c)
{
    uint64_t total = 0;

    for (size_t i = 0; i < o->log_len; i++)
        total += log_line_length(&o->log[i]);
    start_response(c, 200, "text/plain", total, NULL);
    if (!c->head_only) {
        size_t head = c->out.len;

        buf_reserve(&c->out, (size_t)total + 1);
        for (size_t i = 0; i < o->log_len; i++) {
            const struct log_entry *e = &o->log[i];

            buf_printf(&c->out,
                       "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
                       " %" PRIu64 " %u %" PRIu64 " %s\n",
                       e->n, e->attempt, e->start_ns / NS_PER_MS,
                       e->end_ns / NS_PER_MS, e->latency_ms, e->status,
                       e->bytes_sent, e->key->text);
        }
        if (c->out.len - head != total)
            die("internal error: /_log length mismatch");
    }
    conn_send(o, c);
}

/* /_clock: the clock of /_log's times, milliseconds since the origin
 * started, so that a client can say when it started in the same terms. */
void
send_clock(struct origin *o, struct conn *c)
{
    char now[32];

    snprintf(now, sizeof now, "%llu",
             (unsigned long long)((now_ns() - o->start_ns) / NS_PER_MS));
    send_text(o, c, 200, NULL, now);
}

/*
 * /_reset: zero the counters, the attempt counts and the log. Requests
 * still in flight (held ones too) keep counting in in_flight (the limit
 * applies to them) but are neither counted nor logged when they end: the
 * epoch tells them apart. The rate limit's window keeps its count.
 */
void
origin_reset(struct origin *o)
{
    o->epoch++;
    o->requests = 0;
    o->violations = 0;
    o->connections = 0;
    o->abandoned = 0;
    o->peak_in_flight = o->in_flight;
    rate_reset(o);
    memset(o->status_counts, 0, sizeof o->status_counts);
    key_table_clear(&o->keys);
    free(o->log);
    o->log = NULL;
    o->log_len = 0;
    o->log_cap = 0;
    o->log_dropped = 0;
}
