/*
 * The outcome policy: what a finished transfer means for its record
 * (DESIGN.md, "Errors and safety"). A body goes to the store; a redirect
 * becomes the record's next hop, admitted under its own origin's cap; a
 * throttle pauses the whole origin and uses no attempt; a transient
 * failure is retried after a backoff until attempts run out; an origin
 * that refuses every connection is down, and its records wait for it.
 */
#include "run.h"

#include <string.h>

#include "../backoff.h"
#include "../record/record.h"
#include "retry.h"

#define MAX_REDIRECTS 5
#define LONG_PAUSE_MS                                                          \
    2000                    /* give back waiting jobs of origins paused        \
                               longer */
#define DOWN_AFTER        3 /* refused connections in a row: down */
/* The longest pause of an origin that is down: then one request probes
 * it, so that fetching resumes within about this long of its return. */
#define DOWN_PAUSE_MAX_MS 5000

static int64_t
backoff(sl_run *r, unsigned attempt)
{
    return sl_backoff_ms(attempt, (int64_t)(r->o->backoff_base_s * 1000),
                         (int64_t)(r->o->backoff_cap_s * 1000),
                         sl_random(&r->rng));
}

void
sl_outcome_failed(sl_run *r, sl_job *j, sl_error_class cls, int status,
                  const char *msg)
{
    unsigned attempts = j->lease.attempts + 1;
    if (attempts >= r->o->max_attempts) {
        char why[512];
        sl_fmt(why, sizeof why, "%s (after %u attempt%s)", msg, attempts,
               attempts == 1 ? "" : "s");
        sl_job_dead(r, j, cls, status, why);
        return;
    }
    sl_job_retry(r, j, sl_run_wall(r) + backoff(r, attempts), cls, status, msg,
                 true);
}

/* 429 or 503: the whole origin waits (Retry-After, else a little), and
 * the record with it, without using an attempt; --max-age still holds. */
static void
throttled(sl_run *r, sl_job *j, int status, const char *retry_after)
{
    /* The record waits on the wall clock (the queue's); the origin's
     * pause is on the boot clock, which wall-clock steps do not move. */
    int64_t now = sl_run_wall(r), now_boot = sl_boot_ms();
    int64_t until;
    char msg[160];
    r->st.throttled++;
    if (!sl_retry_after(retry_after, now, &until)) {
        /* No usable Retry-After: back off this record. The origin slows
         * down by what the pacer learnt from the throttle; without it
         * (--no-adapt), the whole origin waits a little. */
        until = now + backoff(r, j->lease.attempts + 1);
        if (r->o->no_adapt)
            sl_origins_pause(&r->origins, j->origin,
                             now_boot +
                                 (int64_t)(r->o->backoff_base_s * 1000));
        sl_fmt(msg, sizeof msg, "HTTP %d", status);
    } else {
        sl_origins_pause(&r->origins, j->origin, now_boot + (until - now));
        sl_fmt(msg, sizeof msg, "HTTP %d, Retry-After %s", status, retry_after);
    }
    if (j->origin->paused_until - now_boot > LONG_PAUSE_MS)
        sl_sched_release_ready(r, j->origin);
    double age_s = (double)(now - j->lease.first_attempt_ms) / 1000.0;
    if (age_s > r->o->max_age_s) {
        char why[256];
        sl_fmt(why, sizeof why, "%s; still throttled after %.0f s", msg, age_s);
        sl_job_dead(r, j, SL_CLASS_THROTTLE, status, why);
        return;
    }
    sl_job_retry(r, j, until, SL_CLASS_THROTTLE, status, msg, false);
}

/* Follow a redirect: the next hop is a new request, admitted under the
 * cap of whatever origin it goes to. */
static void
redirect(sl_run *r, sl_job *j, const char *location, int status)
{
    char msg[256];
    if (++j->hops > MAX_REDIRECTS) {
        sl_fmt(msg, sizeof msg, "more than %d redirects", MAX_REDIRECTS);
        sl_job_dead(r, j, SL_CLASS_REDIRECT, status, msg);
        return;
    }
    sl_buf next, origin;
    sl_buf_init(&next);
    sl_buf_init(&origin);
    sluice_err err = sl_url_redirect(r->url_parser, j->url, location, &next);
    if (err == SLUICE_EPOLICY || err == SLUICE_EURL) {
        char shown[200];
        sl_quote(shown, sizeof shown, location, strlen(location), 120);
        sl_fmt(msg, sizeof msg, "redirect to \"%s\" refused: %s", shown,
               err == SLUICE_EPOLICY ? "not an http or https URL"
                                     : "not a valid URL");
        sl_buf_free(&next);
        sl_job_dead(r, j,
                    err == SLUICE_EURL ? SL_CLASS_REDIRECT : SL_CLASS_POLICY,
                    status, msg);
        return;
    }
    sl_origin *o = NULL;
    if (err == SLUICE_OK && sl_url_origin(next.data, &origin) == 0)
        o = sl_origins_get(&r->origins, origin.data);
    sl_buf_free(&origin);
    if (!o) {
        sl_buf_free(&next);
        sl_run_fail(r, SLUICE_ENOMEM, "out of memory");
        sl_job_release(r, j);
        return;
    }
    sl_free(j->url);
    j->url = next.data; /* the buffer's memory is the job's now */
    sl_job_set_origin(j, o);
    sl_job_make_ready(j, true);
}

/* One line saying what went wrong with an attempt. */
static void
describe(char *dst, size_t size, sl_error_class cls, const sl_fetch_result *res,
         const sl_job *j, uint64_t max_bytes)
{
    if (cls == SL_CLASS_POLICY && j->hops > 0)
        /* Not the feed's URL: name the target the redirect led to. */
        sl_fmt(dst, size, "redirect to %.300s: %s", j->url,
               res->refused[0] ? res->refused : "refused by the URL policy");
    else if (cls == SL_CLASS_POLICY)
        sl_copy(dst, size,
                res->refused[0] ? res->refused : "refused by the URL policy");
    else if (cls == SL_CLASS_TOO_LARGE)
        sl_fmt(dst, size, "body larger than --max-bytes (%llu)",
               (unsigned long long)max_bytes);
    else if (cls == SL_CLASS_LENGTH && res->content_length >= 0 &&
             res->error == SL_XFER_OK)
        sl_fmt(dst, size, "short body: %llu of %lld bytes",
               (unsigned long long)j->bytes, (long long)res->content_length);
    else if (res->error != SL_XFER_OK)
        sl_copy(dst, size, res->error_text);
    else
        sl_fmt(dst, size, "HTTP %d", res->http_status);
}

/*
 * An origin that refuses connections DOWN_AFTER times in a row is down:
 * it is paused (1 s doubling to 5 s, jittered), then probed by one
 * request at a time until one is answered; the records that meet it down
 * wait for it without using attempts (--max-age still applies), so an
 * outage does not empty the queue into the DLQ. True when the job was
 * handled so.
 */
static bool
origin_down(sl_run *r, sl_job *j, const sl_fetch_result *res, const char *msg)
{
    sl_origin *o = j->origin;
    if (res->http_status > 0) {
        o->refused_in_row = 0;
        o->down_pauses = 0;
        return false;
    }
    if (res->error != SL_XFER_CONNECT || res->refused[0])
        return false;
    if (++o->refused_in_row < DOWN_AFTER)
        return false;
    int64_t now = sl_run_wall(r), now_boot = sl_boot_ms();
    if (o->paused_until <= now_boot) {
        int64_t pause = (int64_t)1000 << SL_MIN(o->down_pauses, 6u);
        pause = SL_MIN(pause, (int64_t)DOWN_PAUSE_MAX_MS);
        pause += (int64_t)(sl_random(&r->rng) % (uint64_t)(pause / 4 + 1));
        o->down_pauses++;
        sl_origins_pause(&r->origins, o, now_boot + pause);
        if (pause > LONG_PAUSE_MS)
            sl_sched_release_ready(r, o);
    }
    double age_s = (double)(now - j->lease.first_attempt_ms) / 1000.0;
    if (age_s > r->o->max_age_s) {
        sl_job_dead(r, j, SL_CLASS_NETWORK, 0, msg);
        return true;
    }
    char why[600];
    sl_fmt(why, sizeof why, "%s (origin down: waiting)", msg);
    sl_job_retry(r, j, now + SL_MAX(o->paused_until - now_boot, 0),
                 SL_CLASS_NETWORK, 0, why, false);
    return true;
}

/* What the request's end tells the pacer of its origin's load: a throttle,
 * a timeout, an answer (and how long it took), and the rate-limit fields
 * the origin sent. */
static void
feedback(sl_run *r, sl_origin *o, int64_t started,
         const sl_fetch_result *res)
{
    sl_slot_feedback fb = {SL_PACER_OTHER, started, res->latency_ms,
                           {-1, -1, -1, -1}};
    int s = res->http_status;
    if (res->error == SL_XFER_TIMEOUT)
        fb.signal = SL_PACER_TIMEOUT;
    else if (s == 429 || s == 503)
        fb.signal = SL_PACER_THROTTLE;
    else if (s > 0 && s < 500)
        fb.signal = SL_PACER_OK;
    sl_ratelimit_read(&res->ratelimit, sl_now_ms(), &fb.advice);
    sl_slots_feedback(r->slots, o->slots, &fb);
    /* An origin that said no request is left in its window is paused. */
    o->paused_until = sl_slots_paused_until(r->slots, o->slots);
}

void
sl_outcome_transfer_done(sl_run *r, sl_fetch_result *res)
{
    sl_job *j = res->owner;
    /* The origin is done with the request unless we cut it short (our
     * timeout or stall limit, our own abort): then it may still be at
     * work on it, and the slot stays held to its deadline. */
    bool ended_there = res->error != SL_XFER_TIMEOUT &&
                       res->error != SL_XFER_ABORTED &&
                       res->error != SL_XFER_TOO_LARGE;
    sl_origin *origin = j->origin;
    int64_t started = j->slot.taken_boot;
    int64_t deadline = j->slot.deadline_boot;
    /* Refused by the URL policy before it connected: no request left. */
    if (res->refused[0] && r->st.requests > 0)
        r->st.requests--;
    sl_sched_request_ended(r, j, ended_there);
    feedback(r, origin, started, res);
    if (r->fatal != SLUICE_OK) {
        sl_job_release(r, j);
        return;
    }
    bool error_page = res->http_status >= 300 ||
                      (res->http_status > 0 && res->http_status < 200);
    sl_attempt a = {
        .error = res->error,
        .http_status = res->http_status,
        .has_location = res->location != NULL,
        .too_large = j->too_large,
        .refused = res->refused[0] != '\0',
        .short_body = res->error == SL_XFER_OK && res->content_length >= 0 &&
                      !error_page && (uint64_t)res->content_length != j->bytes,
        .redirected = j->hops > 0,
    };
    /* We stopped reading a long error page: judge it by its status. */
    if (a.error == SL_XFER_ABORTED && error_page)
        a.error = SL_XFER_OK;
    sl_error_class cls;
    char msg[512];
    sl_outcome outcome = sl_classify(&a, &cls);
    if (outcome != SL_OUTCOME_DONE) {
        sl_object_discard(j->obj);
        j->obj = NULL;
    }
    if (cls != SL_CLASS_NONE)
        describe(msg, sizeof msg, cls, res, j, r->o->max_bytes);
    if (res->http_status > 0) /* it answered: it is up */
        j->origin->refused_in_row = j->origin->down_pauses = 0;
    int64_t now_boot = sl_boot_ms();
    if (outcome == SL_OUTCOME_DONE && now_boot >= deadline) {
        /* Taken in past its slot's deadline (this process was stopped
         * between the end and now): the slot may be another's, and the
         * record too; store nothing, fetch it again. */
        sl_object_discard(j->obj);
        j->obj = NULL;
        sl_fmt(msg, sizeof msg,
               "ended %.1f s past its slot's deadline: not stored (was this "
               "process stopped?)",
               (double)(now_boot - deadline) / 1000.0);
        sl_outcome_failed(r, j, SL_CLASS_TIMEOUT, res->http_status, msg);
        return;
    }
    switch (outcome) {
    case SL_OUTCOME_DONE:
        sl_body_complete(r, j, res);
        break;
    case SL_OUTCOME_REDIRECT:
        redirect(r, j, res->location, res->http_status);
        break;
    case SL_OUTCOME_THROTTLE:
        throttled(r, j, res->http_status, res->retry_after);
        break;
    case SL_OUTCOME_RETRY:
        if (!origin_down(r, j, res, msg))
            sl_outcome_failed(r, j, cls, res->http_status, msg);
        break;
    case SL_OUTCOME_DEAD:
        sl_job_dead(r, j, cls, res->http_status, msg);
        break;
    }
}
