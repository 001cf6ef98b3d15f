/*
 * Held requests (--hold-abandoned): a real origin keeps working on a
 * request after its client has gone, so such a request stays in flight,
 * its connection closed, until its response would have been written.
 * Only its accounting is kept here, timed by the timer heap.
 */
#include <stdlib.h>

#include "origin.h"

/* A request whose client has gone, in flight until its timer fires. */
struct held {
    struct timer timer; /* TIMER_HELD: when the request ends */
    struct request req;
    uint64_t bytes_sent; /* body bytes written before the client left */
};

/*
 * With --hold-abandoned, take c's in-flight request off c, whose client
 * has gone, and keep it in flight until it would have ended: a request
 * waiting out its latency until the latency's end (as if its response
 * were then written at once); a stalled, trickling or silent one until
 * hold_ms after now, not at all when hold_ms is 0. Any other request
 * (none in flight, or a response being written) is left on c, to end
 * when c closes. Returns true when the request is held; c no longer has
 * one then, and the caller closes c. Costs an allocation and O(log n).
 */
bool
request_hold(struct origin *o, struct conn *c)
{
    const struct request *r = &c->req;
    uint64_t until;

    if (!o->opt.hold_abandoned || !r->active)
        return false;
    switch (c->state) {
    case CONN_WAITING:
        until = r->start_ns + r->latency_ms * NS_PER_MS;
        break;
    case CONN_STALLED:
    case CONN_TRICKLING:
        if (o->opt.hold_ms == 0)
            return false;
        until = now_ns() + o->opt.hold_ms * NS_PER_MS;
        break;
    default:
        return false;
    }
    struct held *h = xcalloc(1, sizeof *h);
    h->timer.kind = TIMER_HELD;
    h->req = *r;
    h->bytes_sent = body_bytes_sent(c);
    c->req.active = false;
    timer_arm(&o->timers, &h->timer, until);
    return true;
}

/* The held request's time is up: it ends now, counted as abandoned. */
void
held_end(struct origin *o, struct timer *t)
{
    struct held *h = CONTAINER_OF(t, struct held, timer);

    request_finish(o, &h->req, h->bytes_sent, true);
    free(h);
}

/*
 * At shutdown, once every connection is closed (their timers with them),
 * free the held requests, which are then all the timers left; they are
 * not counted.
 */
void
held_free_all(struct origin *o)
{
    struct timer *t;

    while ((t = timer_pop_due(&o->timers, UINT64_MAX)) != NULL) {
        if (t->kind != TIMER_HELD)
            die("internal error: a connection's timer at shutdown");
        free(CONTAINER_OF(t, struct held, timer));
    }
}
