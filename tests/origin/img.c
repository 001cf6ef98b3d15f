/*
 * The /img/<n> route: count the attempt, enforce the limit (503 "over
 * limit" at once) and the rate limit (429 at once, ratelimit.c), wait out
 * the latency, then answer with the object, or with the fault the query
 * asked for (faults.c builds the elaborate ones).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include "origin.h"

/* Parse "<n>" or "<n>.<ext>" (the path after /img/). */
static int
parse_img_path(const char *p, size_t len, uint64_t *n)
{
    size_t digits = 0;

    while (digits < len && p[digits] >= '0' && p[digits] <= '9')
        digits++;
    if (parse_u64(p, digits, UINT64_MAX, n) != 0)
        return -1;
    if (digits == len)
        return 0;
    if (p[digits] != '.' || digits + 1 == len)
        return -1;
    for (size_t i = digits + 1; i < len; i++)
        if (!is_alnum(p[i]))
            return -1;
    return 0;
}

/* Queue the head of an /img 200 and a generated body of body_bytes. */
static void
start_image(struct conn *c, uint64_t content_length, uint64_t body_bytes)
{
    char etag[80];

    snprintf(etag, sizeof etag, "ETag: \"%" PRIu64 "-%" PRIu64 "\"\r\n",
             c->req.n, c->req.size);
    start_response(c, 200, "image/jpeg", content_length, etag);
    c->body_n = c->req.n;
    c->body_end = c->head_only ? 0 : body_bytes;
}

/*
 * Answer c's /img request, its latency over: the fault it asked for, or
 * else the object. Faults that fail "the first K" compare K with the
 * request's attempt number.
 */
void
respond_img(struct origin *o, struct conn *c)
{
    const struct request *r = &c->req;
    const struct fault *f = &r->fault;
    bool failing = r->attempt <= f->fails;

    switch (f->kind) {
    case FAULT_NONE:
        break;
    case FAULT_STATUS:
        send_text(o, c, f->code ? f->code : 500, NULL,
                  reason_phrase(f->code ? f->code : 500));
        return;
    case FAULT_FLAKY:
        if (!failing)
            break;
        send_text(o, c, f->code ? f->code : 500, NULL,
                  reason_phrase(f->code ? f->code : 500));
        return;
    case FAULT_THROTTLE:
        if (!failing)
            break;
        send_throttle(o, c);
        return;
    case FAULT_RESET:
        if (!failing)
            break;
        start_image(c, r->size, r->size / 2);
        c->after = AFTER_RESET;
        conn_send(o, c);
        return;
    case FAULT_STALL:
        if (!failing)
            break;
        start_image(c, r->size, r->size / 4);
        c->after = AFTER_STALL;
        conn_send(o, c);
        return;
    case FAULT_BADLEN:
        if (!failing)
            break;
        start_image(c, r->size + 100, r->size);
        c->close_after = true; /* after the head, which promises more */
        conn_send(o, c);
        return;
    case FAULT_REDIRECT:
        if (f->hops == 0)
            break;
        send_redirect(o, c);
        return;
    case FAULT_LOOP:
    case FAULT_MANYREDIRECTS:
        send_redirect(o, c);
        return;
    case FAULT_TRICKLE:
        start_image(c, r->size, 0);
        if (!c->head_only && r->size > 0)
            c->after = AFTER_TRICKLE;
        conn_send(o, c);
        return;
    case FAULT_ENDLESS:
        c->close_after = true; /* the body ends only with the connection */
        start_image(c, NO_LENGTH, UINT64_MAX);
        conn_send(o, c);
        return;
    case FAULT_HUGEHEADERS:
        start_image(c, r->size, r->size);
        head_add_junk(c);
        conn_send(o, c);
        return;
    case FAULT_BADSTATUS:
        send_bad_status(o, c);
        return;
    case FAULT_GZIPBOMB: {
        const struct buf *bomb = gzip_bomb(&o->bomb);

        start_image(c, bomb->len, 0);
        head_add(c, "Content-Encoding: gzip\r\n");
        if (!c->head_only)
            buf_append(&c->out, bomb->data, bomb->len);
        conn_send(o, c);
        return;
    }
    case FAULT_SILENT:
        /* In flight, unanswered, until the client leaves. */
        c->state = CONN_STALLED;
        conn_set_events(o, c, EPOLLRDHUP);
        return;
    }
    start_image(c, r->size, r->size);
    conn_send(o, c);
}

/*
 * Start an /img request: count its attempt and count it in its rate
 * window, then either refuse it at once (over the limit: 503 "over
 * limit", which wins; else over the window's quota: 429) or answer it
 * once its latency is over. It is in flight from here until
 * request_end().
 */
void
start_img(struct origin *o, struct conn *c)
{
    const char *target = c->in + c->target_off;
    struct request *r = &c->req;
    struct fault fault;
    uint64_t n;

    if (parse_img_path(target + 5, c->path_len - 5, &n) != 0) {
        send_text(o, c, 404, NULL, "not found");
        return;
    }
    size_t query_len = c->target_len - c->path_len;
    const char *why = parse_fault(target + c->path_len + (query_len > 0),
                                  query_len - (query_len > 0), &fault);
    if (why != NULL) {
        send_text(o, c, 400, NULL, why);
        return;
    }
    struct key *key = key_intern(&o->keys, target, c->target_len);
    key->attempts++;
    if (o->opt.limit > 0 && o->in_flight >= o->opt.limit)
        sweep_hangups(o);

    memset(r, 0, sizeof *r);
    r->active = true;
    r->epoch = o->epoch;
    r->n = n;
    r->attempt = key->attempts;
    r->size = sl_origin_body_size(&o->opt.size, n);
    r->start_ns = now_ns();
    r->key = key;
    r->fault = fault;
    o->requests++;
    o->in_flight++;
    if (o->in_flight > o->peak_in_flight)
        o->peak_in_flight = o->in_flight;
    bool over_rate = rate_admit(o, r);
    if (o->opt.limit > 0 && o->in_flight > o->opt.limit) {
        o->violations++;
        send_text(o, c, 503, NULL, "over limit");
        return;
    }
    if (over_rate) {
        rate_throttle(o, c);
        return;
    }
    r->latency_ms = latency_for(&o->opt.latency, o->opt.seed, n, r->attempt);
    if (r->latency_ms == 0) {
        respond_img(o, c);
        return;
    }
    c->state = CONN_WAITING;
    conn_set_events(o, c, EPOLLRDHUP);
    timer_arm(&o->timers, &c->timer, r->start_ns + r->latency_ms * NS_PER_MS);
}
