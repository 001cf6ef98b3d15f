/*
 * The Redis slot service: one cap per origin shared by every runner on a
 * Redis queue, on any machine. Slots are members of a sorted set scored
 * by their deadline on Redis's clock, taken by a script that reads that
 * clock (never a runner's), so a dead runner's slots come back when
 * Redis says so. Each runner keeps its own deadline on its boot clock,
 * read before it asked, and gives up before Redis could reissue a slot.
 * docs/queue.md, "Slots on Redis", has the keys, scripts and the proof.
 */
#include "slots.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "../queue/queue.h"
#include "../redis/redis.h"
#include "slots_redis.h"

/* Added to --timeout for a slot's deadline, as the durable service does:
 * the origin is assumed done with a request by then. */
#define MARGIN_MS 1000
/* A runner that finds an origin full, holding none of its slots itself
 * (no release of its own will say when), asks again this often. */
#define FULL_POLL_MS 20
/* A pause read from Redis is trusted this long. */
#define PAUSE_FRESH_MS 250
/* A slot released whole serves another request of its origin in the
 * same turn of the loop (opts.reuse), with no round trip to Redis,
 * within this long of the take that asked for it: a pause or a limit
 * another runner stored reaches this one as late as a pause read does.
 * The slot's life grows by as much, so that each request on it still
 * has --timeout and the margin. */
#define KEEP_MS PAUSE_FRESH_MS
/* The slot connection's command timeout, at most: the loop waits on it. */
#define CMD_TIMEOUT_MS 2000
/* Redis unreachable: ask again after this, doubling to the most; give
 * up (the run fails) after the run's --outage-max of it (the handle's
 * outage_max_ms), or OUTAGE_MAX_MS for a handle that did not say: long
 * enough for a restart or a failover. */
#define RETRY_MIN_MS  250
#define RETRY_MAX_MS  2000
#define OUTAGE_MAX_MS 8000

typedef struct {
    uint64_t token; /* 0: free */
    int64_t taken, deadline;
    int64_t asked;  /* boot ms before the take asked Redis for it */
    bool abandoned; /* released without a complete response */
    bool kept;      /* released whole, kept for a take of this turn */
    bool granted;   /* kept: granted ahead by a take of this turn */
} rslot;

struct sl_slot_origin {
    char *name;
    char *held_key;  /* PREFIX{o:ORIGIN}:held */
    char *state_key; /* PREFIX{o:ORIGIN}:state */
    rslot *slots;    /* this process's, cap of them, made at first take */
    unsigned live, abandoned, kept;
    /* Takes this turn may still ask for (sl_slots_want): a take that
     * goes to Redis asks for as many at once. */
    unsigned want;
    /* Requests started on kept slots since a take last went to Redis:
     * the next one counts them among every runner's starts. */
    unsigned reused;
    bool learnt; /* the last script told of a learnt limit */
    bool registered;      /* in the origins set */
    char rid_seen[48];    /* the Redis run_id of our last script here */
    int64_t paused_until; /* boot ms; 0: none known */
    int64_t paused_read;  /* when it was read from Redis */
    int64_t resumed_from; /* the pause the pacer restarted after */
    unsigned held_reply;  /* slots held, as the last take said */
    bool held_fresh;      /* ... and not yet asked for */
    bool full;            /* the last take found the origin full */
    double full_retry_at;
    uint64_t releases, releases_at_full;
    /* The adaptive limits: this runner's verdicts, on limits shared
     * through the state hash (docs/queue.md, "What is shared"). */
    sl_pacer pacer;
    uint64_t lgen;   /* the cuts of the shared limits seen so far */
    bool lgen_known; /* ... once a script told us */
    sl_slot_origin *prev, *next;
};

typedef struct {
    sl_redis conn;
    bool conn_open;
    sl_redis_script take, learn, pause, paused, list;
    char origins_key[160];
    int64_t hold; /* a slot's life: --timeout plus MARGIN_MS */
    sl_slot_origin *origins;
    /* Redis unreachable: since when, and when to ask again. */
    int64_t down_since, retry_at, backoff;
} rstate;

static rstate *
rs_of(sl_slots *s)
{
    return s->state;
}

static void settle_origin(sl_slots *s, sl_slot_origin *o, int64_t now);
static void redis_settle(sl_slots *s);

/* ------------------------------------------------------------ Redis */

/* A script with its keys (one or two, sharing the origin's hash tag). */
static sluice_err
run_script(sl_slots *s, sl_redis_script *sc, const char *k1, const char *k2,
           redisReply **out, int argc, const char **argv)
{
    rstate *rs = rs_of(s);
    const char *keys[] = {k1, k2};
    sluice_err err = sl_redis_eval_keys(&rs->conn, sc, k2 ? 2 : 1, keys, out,
                                        argc, argv, NULL);
    if (err != SLUICE_OK)
        sl_copy(s->errmsg, sizeof s->errmsg, rs->conn.errmsg);
    return err;
}

/* Redis could not be reached (refused, no answer, loading)? */
static bool
unreachable(sluice_err err)
{
    return err == SLUICE_ENETWORK || err == SLUICE_ETIMEOUT ||
           err == SLUICE_EBUSY;
}

/* Redis answered: the outage, if any, is over. */
static void
reached(rstate *rs)
{
    rs->down_since = rs->retry_at = rs->backoff = 0;
}

/* A command failed with `err`: an unreachable Redis is a wait (no slot
 * now: SLUICE_EAGAIN with *free_at when to ask again), for at most the
 * outage bound; anything else is the error. */
static sluice_err
outage(sl_slots *s, sluice_err err, double *free_at)
{
    rstate *rs = rs_of(s);
    if (!unreachable(err))
        return err;
    int64_t now = sl_boot_ms();
    if (!rs->down_since)
        rs->down_since = now;
    int64_t max = s->outage_max_ms > 0 ? s->outage_max_ms : OUTAGE_MAX_MS;
    if (now - rs->down_since > max)
        return err; /* s->errmsg says why */
    rs->backoff = rs->backoff ? SL_MIN(rs->backoff * 2, (int64_t)RETRY_MAX_MS)
                              : RETRY_MIN_MS;
    rs->retry_at = now + rs->backoff;
    if (free_at)
        *free_at = (double)rs->retry_at;
    return SLUICE_EAGAIN;
}

static bool
in_outage(const rstate *rs, int64_t now)
{
    return rs->retry_at && now < rs->retry_at;
}

static const char *
el_str(const redisReply *r, size_t i)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return NULL;
    const redisReply *e = r->element[i];
    return e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS
               ? e->str
               : NULL;
}

static int64_t
el_int(const redisReply *r, size_t i)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return 0;
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    return e->type == REDIS_REPLY_STRING ? strtoll(e->str, NULL, 10) : 0;
}

static int64_t
reply_int(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    return r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
}

static sluice_err
bad_reply(sl_slots *s, redisReply *r, const char *what)
{
    if (r)
        freeReplyObject(r);
    sl_fmt(s->errmsg, sizeof s->errmsg, "%s: slots %s: unexpected reply",
           rs_of(s)->conn.addr.where, what);
    return SLUICE_EDB;
}

/* ------------------------------------------------------------ opening */

static sluice_err
redis_slots_open(sl_slots *s)
{
    rstate *rs = rs_of(s);
    if (!s->q || !s->q->location) {
        sl_fmt(s->errmsg, sizeof s->errmsg,
               "Redis slots need the Redis queue's location");
        return SLUICE_EUNSUPPORTED;
    }
    rs->take = (sl_redis_script){"take", sl_rslots_take_lua, ""};
    rs->learn = (sl_redis_script){"learn", sl_rslots_learn_lua, ""};
    rs->pause = (sl_redis_script){"pause", sl_rslots_pause_lua, ""};
    rs->paused = (sl_redis_script){"paused", sl_rslots_paused_lua, ""};
    rs->list = (sl_redis_script){"list", sl_rslots_list_lua, ""};
    rs->hold = s->opts.hold_ms + MARGIN_MS + (s->opts.reuse ? KEEP_MS : 0);
    rs->conn_open = true;
    sluice_err err = sl_redis_open(&rs->conn, s->q->location);
    if (err != SLUICE_OK) {
        sl_copy(s->errmsg, sizeof s->errmsg, rs->conn.errmsg);
        return err;
    }
    /* The loop waits on this connection: a Redis that hangs costs it
     * CMD_TIMEOUT_MS at most, once a retry. */
    unsigned ms = SL_MIN(rs->conn.addr.timeout_ms, (unsigned)CMD_TIMEOUT_MS);
    rs->conn.addr.timeout_ms = ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    if (rs->conn.ctx)
        redisSetTimeout(rs->conn.ctx, tv);
    sl_fmt(rs->origins_key, sizeof rs->origins_key, "%sslots:origins",
           rs->conn.addr.prefix);
    return SLUICE_OK;
}

static void
origin_free(sl_slot_origin *o)
{
    sl_free(o->name);
    sl_free(o->held_key);
    sl_free(o->state_key);
    sl_free(o->slots);
    sl_free(o);
}

static void
redis_slots_close(sl_slots *s)
{
    rstate *rs = rs_of(s);
    redis_settle(s);
    sl_slot_origin *o = rs->origins;
    while (o) {
        sl_slot_origin *next = o->next;
        origin_free(o);
        o = next;
    }
    if (rs->conn_open)
        sl_redis_close(&rs->conn);
}

static char *
key_of(const rstate *rs, const char *origin, const char *what)
{
    size_t size = strlen(rs->conn.addr.prefix) + strlen(origin) + 16;
    char *key = sl_malloc(size);
    if (key)
        sl_fmt(key, size, "%s{o:%s}:%s", rs->conn.addr.prefix, origin, what);
    return key;
}

static sl_slot_origin *
redis_origin_open(sl_slots *s, const char *name)
{
    rstate *rs = rs_of(s);
    sl_slot_origin *o = sl_calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->name = sl_strdup(name);
    o->held_key = key_of(rs, name, "held");
    o->state_key = key_of(rs, name, "state");
    if (!o->name || !o->held_key || !o->state_key) {
        origin_free(o);
        return NULL;
    }
    sl_pacer_limits lim = {s->opts.cap, s->opts.rate, s->opts.adapt};
    sl_pacer_init(&o->pacer, &lim);
    o->next = rs->origins;
    if (o->next)
        o->next->prev = o;
    rs->origins = o;
    return o;
}

/* Slots this process gave up on are Redis's until their deadlines: only
 * the handle goes. */
static void
redis_origin_close(sl_slots *s, sl_slot_origin *o)
{
    rstate *rs = rs_of(s);
    settle_origin(s, o, sl_boot_ms());
    if (o->prev)
        o->prev->next = o->next;
    else
        rs->origins = o->next;
    if (o->next)
        o->next->prev = o->prev;
    origin_free(o);
}

/* ------------------------------------------------------------ taking */

/* This process's slots of o past their own deadlines are over. */
static void
expire_local(sl_slots *s, sl_slot_origin *o, int64_t now)
{
    for (unsigned i = 0; o->abandoned && o->slots && i < s->opts.cap; i++) {
        rslot *d = &o->slots[i];
        if (d->token && d->abandoned && now >= d->deadline) {
            d->token = 0;
            d->abandoned = false;
            o->abandoned--;
        }
    }
}

/* The earliest deadline of this process's abandoned slots of o. */
static int64_t
first_abandoned(const sl_slots *s, const sl_slot_origin *o)
{
    int64_t first = 0;
    for (unsigned i = 0; o->slots && i < s->opts.cap; i++) {
        const rslot *d = &o->slots[i];
        if (d->token && d->abandoned && (!first || d->deadline < first))
            first = d->deadline;
    }
    return first;
}

/* For `sluice status` and listing: the origin in the origins set, once
 * per process (a failure is tried again at the next take). */
static void
register_origin(sl_slots *s, sl_slot_origin *o)
{
    rstate *rs = rs_of(s);
    redisReply *r;
    const char *argv[] = {"SADD", rs->origins_key, o->name};
    if (sl_redis_cmd(&rs->conn, &r, 3, argv, NULL) == SLUICE_OK) {
        freeReplyObject(r);
        o->registered = true;
    }
}

/* The learnt limits a script told us (four fields from `at`: requests
 * at once and rate, '' when none is learnt, the count of cuts, every
 * runner's starts a second) become this runner's pacer's. */
static void
adopt(sl_slots *s, sl_slot_origin *o, const redisReply *r, size_t at,
      int64_t now)
{
    if (!s->opts.adapt)
        return;
    const char *conc = el_str(r, at), *rate = el_str(r, at + 1);
    const char *total = el_str(r, at + 3);
    uint64_t gen = (uint64_t)el_int(r, at + 2);
    sl_pacer_limits lim = {s->opts.cap, s->opts.rate, s->opts.adapt};
    o->learnt = (conc && *conc) || (rate && *rate);
    sl_pacer_adopt(&o->pacer, &lim, conc && *conc ? strtod(conc, NULL) : 0,
                   rate && *rate ? strtod(rate, NULL) : 0,
                   total ? strtod(total, NULL) : 0,
                   o->lgen_known && gen != o->lgen, now);
    o->lgen = gen;
    o->lgen_known = true;
}

/* The take script refused: say when to ask again. */
static void
refused(sl_slot_origin *o, const redisReply *r, double after, double *free_at)
{
    double wait = (double)el_int(r, 1);
    const char *why = el_str(r, 2);
    int64_t left = el_int(r, 4);
    o->paused_until = left > 0 ? (int64_t)ceil(after) + left : 0;
    o->paused_read = (int64_t)after;
    if (why && strcmp(why, "full") == 0) {
        /* A release of our own says when; else ask again soon. */
        o->full = true;
        o->releases_at_full = o->releases;
        o->full_retry_at = after + SL_MIN(wait, (double)FULL_POLL_MS);
        *free_at = o->live ? 0 : o->full_retry_at;
        return;
    }
    *free_at = after + wait; /* a fence, a pause, the pace */
}

/* ------------------------------------------------------------ reuse */

/* May slot d of o, released whole at `now`, serve o's next request with
 * no word to Redis? Only while what the take that asked for it was told
 * is fresh: no pace shared through Redis (a rate, a learnt limit), no
 * pause, and its deadline still a whole request's life away. */
static bool
keepable(sl_slots *s, const sl_slot_origin *o, const rslot *d, int64_t now)
{
    return s->opts.reuse && s->opts.rate <= 0 &&
           !(s->opts.adapt && o->learnt) && !in_outage(rs_of(s), now) &&
           o->paused_until <= now && now - d->asked < KEEP_MS;
}

/* Slot d of o is over for this process. Released whole, it is free for
 * every runner at once; otherwise, or when Redis cannot be told, Redis
 * holds it to its deadline, and so do we. */
static void
give_back(sl_slots *s, sl_slot_origin *o, rslot *d, bool complete,
          int64_t now)
{
    rstate *rs = rs_of(s);
    if (complete && now < d->deadline && !in_outage(rs, now)) {
        /* The origin is done with it. Past our deadline Redis may have
         * handed it on: we touch it no more. Nobody waits for the
         * answer (read before the next command's): a ZREM that did not
         * arrive leaves the slot to its deadline in Redis, which is
         * what the take script counts. */
        char token[24];
        sl_fmt(token, sizeof token, "%" PRIu64, d->token);
        const char *argv[] = {"ZREM", o->held_key, token};
        sluice_err err = sl_redis_send(&rs->conn, 3, argv, NULL);
        if (err == SLUICE_OK) {
            d->token = 0;
            return;
        }
        outage(s, err, NULL); /* held to its deadline, below */
    }
    if (now >= d->deadline) {
        d->token = 0;
        return;
    }
    /* The origin may still be at work on it. */
    d->abandoned = true;
    o->abandoned++;
}

/* o's kept slots that no request took go back. */
static void
settle_origin(sl_slots *s, sl_slot_origin *o, int64_t now)
{
    for (unsigned i = 0; o->kept && o->slots && i < s->opts.cap; i++) {
        rslot *d = &o->slots[i];
        if (!d->kept)
            continue;
        d->kept = false;
        d->granted = false;
        o->kept--;
        give_back(s, o, d, true, now);
    }
}

static void
redis_settle(sl_slots *s)
{
    int64_t now = sl_boot_ms();
    for (sl_slot_origin *o = rs_of(s)->origins; o; o = o->next) {
        settle_origin(s, o, now);
        o->want = 0;
    }
}

/* A request of o starts on a slot it kept: true, and *out is it (its
 * token and deadline unchanged: Redis holds it as before). A slot a take
 * granted ahead this turn serves as that take's would have: the script
 * checked the limits, the pace and the pauses for it, and counted its
 * start. */
static bool
reuse_kept(sl_slots *s, sl_slot_origin *o, double at, int64_t now,
           sl_slot *out)
{
    for (unsigned i = 0; o->kept && i < s->opts.cap; i++) {
        rslot *d = &o->slots[i];
        if (!d->kept)
            continue;
        if (d->granted ? in_outage(rs_of(s), now) || now - d->asked >= KEEP_MS
                       : !keepable(s, o, d, now))
            continue;
        d->kept = false;
        o->kept--;
        o->live++;
        if (!d->granted)
            o->reused++;
        d->granted = false;
        d->taken = (int64_t)at;
        /* Redis counted it among the held at the last take. */
        o->held_fresh = true;
        if (o->held_reply < o->live)
            o->held_reply = o->live;
        sl_slots_pace_start(s, &o->pacer, at);
        *out = (sl_slot){o, i, d->token, d->taken, d->deadline};
        return true;
    }
    return false;
}

/* Up to n takes of o may follow this turn. */
static void
redis_want(sl_slots *s, sl_slot_origin *o, unsigned n)
{
    (void)s;
    o->want = n;
}

/* Slot `token`, granted by a take that asked Redis at `before`, into the
 * first free entry of o's: live (the take's own) or kept (granted ahead,
 * for the turn's next takes). Its index, or cap when none is free, which
 * cannot be: a take asks for no more than are. */
static unsigned
place(sl_slots *s, sl_slot_origin *o, uint64_t token, int64_t before,
      int64_t taken, bool ahead)
{
    unsigned i = 0;
    while (i < s->opts.cap && o->slots[i].token)
        i++;
    if (i == s->opts.cap)
        return i;
    o->slots[i] = (rslot){.token = token,
                          .taken = taken,
                          .deadline = before + rs_of(s)->hold,
                          .asked = before,
                          .kept = ahead,
                          .granted = ahead};
    if (ahead)
        o->kept++;
    else
        o->live++;
    return i;
}

/* ------------------------------------------------------------ taking */

static sluice_err
redis_take(sl_slots *s, sl_slot_origin *o, double at, sl_slot *out,
           double *free_at)
{
    rstate *rs = rs_of(s);
    double now = sl_boot_msf();
    int64_t now_ms = (int64_t)now;
    /* This take is one of those wanted (sl_slots_want). */
    unsigned wanted = o->want;
    if (o->want)
        o->want--;
    if (in_outage(rs, now_ms)) {
        *free_at = (double)rs->retry_at;
        return SLUICE_EAGAIN;
    }
    if (s->opts.max_total && s->n_held >= s->opts.max_total)
        return SLUICE_EAGAIN; /* per runner: see docs/queue.md */
    if (o->paused_until > now_ms) {
        *free_at = (double)o->paused_until;
        return SLUICE_EAGAIN;
    }
    if (o->paused_until && o->resumed_from != o->paused_until) {
        /* A pause just ended: restart slowly. */
        sl_pacer_limits lim = {s->opts.cap, s->opts.rate, s->opts.adapt};
        sl_pacer_resume(&o->pacer, &lim, now_ms);
        o->resumed_from = o->paused_until;
    }
    if (o->full && now < o->full_retry_at &&
        o->releases == o->releases_at_full) {
        *free_at = o->live ? 0 : o->full_retry_at;
        return SLUICE_EAGAIN;
    }
    /* The learnt limits (as the last script told them) and the pace as
     * this runner knows it; the take script applies both to everyone. */
    sluice_err err = sl_slots_pace_check(s, &o->pacer, o->live, at, free_at);
    if (err != SLUICE_OK)
        return err;
    if (!o->slots && !(o->slots = sl_calloc(s->opts.cap, sizeof *o->slots))) {
        sl_fmt(s->errmsg, sizeof s->errmsg, "out of memory");
        return SLUICE_ENOMEM;
    }
    expire_local(s, o, now_ms);
    if (reuse_kept(s, o, at, now_ms, out))
        return SLUICE_OK;
    settle_origin(s, o, now_ms); /* too old to serve: Redis's again */
    if (o->live + o->abandoned >= s->opts.cap) {
        /* Every slot is ours, and Redis holds each at least as long. */
        *free_at = o->live ? 0 : (double)first_abandoned(s, o);
        return SLUICE_EAGAIN;
    }
    char cap[16], hold[24], rate[40], reused[16], want[16];
    const char *adapt = s->opts.adapt ? "1" : "0";
    /* The takes still to come this turn, as many as are free here, in
     * one round trip: the ones this take does not use are kept. */
    unsigned room = s->opts.cap - o->live - o->abandoned - o->kept;
    unsigned ask = SL_MAX(1u, SL_MIN(wanted, room));
    if (s->opts.max_total)
        ask = SL_MIN(ask, s->opts.max_total - s->n_held);
    sl_fmt(want, sizeof want, "%u", ask);
    sl_fmt(reused, sizeof reused, "%u", o->reused);
    sl_fmt(cap, sizeof cap, "%u", s->opts.cap);
    sl_fmt(hold, sizeof hold, "%" PRId64, rs->hold);
    sl_fmt(rate, sizeof rate, "%.17g", s->opts.rate > 0 ? s->opts.rate : 0);
    /* Our deadline counts from before we asked: Redis's is later. */
    double before = sl_boot_msf();
    const char *argv[] = {cap,   hold,   rate, rs->conn.run_id, o->rid_seen,
                          adapt, reused, want};
    redisReply *r;
    err = run_script(s, &rs->take, o->held_key, o->state_key, &r, 8, argv);
    if (err != SLUICE_OK)
        return outage(s, err, free_at);
    reached(rs);
    double after = sl_boot_msf();
    sl_copy(o->rid_seen, sizeof o->rid_seen, rs->conn.run_id);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 10)
        return bad_reply(s, r, "take");
    adopt(s, o, r, 5, (int64_t)after);
    if (el_int(r, 0) != 1) {
        refused(o, r, after, free_at);
        freeReplyObject(r);
        return SLUICE_EAGAIN;
    }
    o->full = false;
    o->reused = 0; /* counted */
    o->held_reply = (unsigned)el_int(r, 4);
    o->held_fresh = true;
    uint64_t token = strtoull(el_str(r, 1) ? el_str(r, 1) : "0", NULL, 10);
    int64_t granted = el_int(r, 9);
    freeReplyObject(r);
    /* One is free: live + abandoned + kept < cap. */
    int64_t taken = (int64_t)SL_MIN(at, before);
    unsigned i = place(s, o, token, (int64_t)before, taken, false);
    rslot *d = &o->slots[i];
    for (int64_t k = 1; k < SL_MIN((int64_t)ask, granted); k++)
        if (place(s, o, token + (uint64_t)k, (int64_t)before, taken, true) ==
            s->opts.cap)
            break;
    if (!o->registered)
        register_origin(s, o);
    sl_slots_pace_start(s, &o->pacer, at);
    *out = (sl_slot){o, i, token, d->taken, d->deadline};
    return SLUICE_OK;
}

static bool
redis_release(sl_slots *s, const sl_slot *slot, bool complete)
{
    sl_slot_origin *o = slot->origin;
    if (!o->slots || slot->index >= s->opts.cap)
        return false;
    rslot *d = &o->slots[slot->index];
    if (d->token != slot->token || d->abandoned || d->kept)
        return false; /* stale: not this slot's holder any more */
    o->live--;
    o->releases++;
    int64_t now = sl_boot_ms();
    if (complete && keepable(s, o, d, now)) {
        d->kept = true; /* for a take of this turn; settled after it */
        o->kept++;
        return true;
    }
    give_back(s, o, d, complete, now);
    return true;
}

/* ------------------------------------------------------------ pauses */

static void
redis_pause(sl_slots *s, sl_slot_origin *o, int64_t until)
{
    rstate *rs = rs_of(s);
    int64_t now = sl_boot_ms();
    if (until <= now || until <= o->paused_until)
        return;
    /* Redis learns a length, never our clock's time. */
    char length[24];
    sl_fmt(length, sizeof length, "%" PRId64, until - now);
    o->paused_until = until; /* kept here whatever Redis says */
    if (in_outage(rs, now))
        return;
    const char *argv[] = {length};
    redisReply *r;
    sluice_err err = run_script(s, &rs->pause, o->state_key, NULL, &r, 1, argv);
    if (err != SLUICE_OK) {
        outage(s, err, NULL);
        return;
    }
    reached(rs);
    int64_t after = sl_boot_ms(), left = reply_int(r);
    freeReplyObject(r);
    if (after + left > o->paused_until)
        o->paused_until = after + left;
    o->paused_read = after;
}

static int64_t
redis_paused_until(sl_slots *s, sl_slot_origin *o)
{
    rstate *rs = rs_of(s);
    int64_t now = sl_boot_ms();
    if ((o->paused_read && now - o->paused_read < PAUSE_FRESH_MS) ||
        in_outage(rs, now))
        return o->paused_until;
    redisReply *r;
    sluice_err err =
        run_script(s, &rs->paused, o->state_key, NULL, &r, 0, NULL);
    if (err != SLUICE_OK) {
        outage(s, err, NULL);
        return o->paused_until;
    }
    reached(rs);
    int64_t after = sl_boot_ms(), left = reply_int(r);
    freeReplyObject(r);
    int64_t known = o->paused_until > after ? o->paused_until : 0;
    o->paused_until = SL_MAX(left > 0 ? after + left : 0, known);
    o->paused_read = after;
    return o->paused_until;
}

/* ------------------------------------------------------------ reading */

typedef struct {
    sl_slots *s;
    const char *origin;
    sl_slot_fn *fn;
    void *ctx;
    unsigned count;
    bool stop;
} list_ctx;

/* Ours (running, or given up on), or another runner's. */
static void
holder_of(sl_slots *s, const char *origin, uint64_t token, sl_slot_info *info)
{
    for (sl_slot_origin *o = rs_of(s)->origins; o; o = o->next) {
        if (strcmp(o->name, origin) != 0 || !o->slots)
            continue;
        for (unsigned i = 0; i < s->opts.cap; i++) {
            const rslot *d = &o->slots[i];
            if (d->token != token)
                continue;
            info->holder = d->abandoned ? SL_SLOT_ABANDONED : SL_SLOT_REQUEST;
            info->taken_boot = d->taken;
            info->deadline_boot = d->deadline;
            return;
        }
    }
}

/* The slots of one origin held now, each to c->fn (NULL: counted). */
static sluice_err
list_origin(list_ctx *c, const char *held_key)
{
    sl_slots *s = c->s;
    rstate *rs = rs_of(s);
    redisReply *r;
    sluice_err err = run_script(s, &rs->list, held_key, NULL, &r, 0, NULL);
    if (err != SLUICE_OK)
        return err;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->elements % 2 != 1)
        return bad_reply(s, r, "list");
    int64_t now_boot = sl_boot_ms(), now_redis = el_int(r, 0);
    for (size_t i = 1; i + 1 < r->elements && !c->stop; i += 2) {
        c->count++;
        if (!c->fn)
            continue;
        uint64_t token = strtoull(el_str(r, i) ? el_str(r, i) : "0", NULL, 10);
        int64_t deadline =
            (int64_t)strtod(el_str(r, i + 1) ? el_str(r, i + 1) : "0", NULL);
        sl_slot_info info = {c->origin, SL_SLOT_PREVIOUS, token, 0,
                             now_boot + (deadline - now_redis)};
        holder_of(s, c->origin, token, &info);
        if (c->fn(c->ctx, &info) != 0)
            c->stop = true;
    }
    freeReplyObject(r);
    return SLUICE_OK;
}

static unsigned
redis_held(sl_slots *s, sl_slot_origin *o)
{
    if (o->held_fresh) { /* the take just now counted them */
        o->held_fresh = false;
        return o->held_reply;
    }
    list_ctx c = {s, o->name, NULL, NULL, 0, false};
    if (list_origin(&c, o->held_key) != SLUICE_OK)
        return o->live + o->abandoned; /* what we know */
    return c.count;
}

static sluice_err
redis_list(sl_slots *s, sl_slot_fn *fn, void *ctx)
{
    rstate *rs = rs_of(s);
    redisReply *r;
    const char *argv[] = {"SMEMBERS", rs->origins_key};
    sluice_err err = sl_redis_cmd(&rs->conn, &r, 2, argv, NULL);
    if (err != SLUICE_OK) {
        sl_copy(s->errmsg, sizeof s->errmsg, rs->conn.errmsg);
        return err;
    }
    if (r->type != REDIS_REPLY_ARRAY)
        return bad_reply(s, r, "origins");
    list_ctx c = {s, NULL, fn, ctx, 0, false};
    for (size_t i = 0; i < r->elements && !c.stop && err == SLUICE_OK; i++) {
        const char *origin = el_str(r, i);
        char *key = origin ? key_of(rs, origin, "held") : NULL;
        if (!key) {
            err = origin ? SLUICE_ENOMEM : SLUICE_OK;
            continue;
        }
        c.origin = origin;
        err = list_origin(&c, key);
        sl_free(key);
    }
    freeReplyObject(r);
    return err;
}

/* ------------------------------------------------------------ holdings */

typedef struct {
    unsigned n;
    int64_t last; /* the latest deadline, boot ms */
} held_sum;

static int
sum_slot(void *ctx, const sl_slot_info *slot)
{
    held_sum *h = ctx;
    h->n++;
    if (slot->deadline_boot > h->last)
        h->last = slot->deadline_boot;
    return 0;
}

/* One origin's holding from Redis: its slots held and its pause. */
static sluice_err
origin_holding(sl_slots *s, const char *origin, sluice_slot_holding *h)
{
    rstate *rs = rs_of(s);
    held_sum sum = {0, 0};
    list_ctx c = {s, origin, sum_slot, &sum, 0, false};
    char *held = key_of(rs, origin, "held");
    char *state = key_of(rs, origin, "state");
    sluice_err err = held && state ? SLUICE_OK : SLUICE_ENOMEM;
    redisReply *r = NULL;
    if (err == SLUICE_OK)
        err = list_origin(&c, held);
    if (err == SLUICE_OK)
        err = run_script(s, &rs->paused, state, NULL, &r, 0, NULL);
    sl_free(held);
    sl_free(state);
    if (err != SLUICE_OK)
        return err;
    int64_t left = reply_int(r), now_boot = sl_boot_ms(), now = sl_now_ms();
    freeReplyObject(r);
    h->held = sum.n;
    if (sum.n) {
        h->free_in_s = (double)(sum.last - now_boot) / 1000.0;
        h->free_at = now + (sum.last - now_boot);
    }
    if (left > 0) {
        h->paused_for_s = (double)left / 1000.0;
        h->paused_until = now + left;
    }
    return SLUICE_OK;
}

sluice_err
sl_slots_redis_holdings(sluice_queue *q, const sl_pacer_limits *lim, bool live,
                        sluice_slot_fn *fn, void *ctx)
{
    sl_slots_opts opts = {lim->cap, 0, 0, lim->rate, lim->adapt, false};
    sl_slots *s;
    char why[256];
    sluice_err err = sl_slots_open("redis", &opts, q, &s, why, sizeof why);
    if (err != SLUICE_OK)
        return sl_queue_fail(q, err, "%s", why);
    rstate *rs = rs_of(s);
    redisReply *r;
    const char *argv[] = {"SMEMBERS", rs->origins_key};
    err = sl_redis_cmd(&rs->conn, &r, 2, argv, NULL);
    if (err != SLUICE_OK) {
        sl_queue_fail(q, err, "%s", rs->conn.errmsg);
        sl_slots_close(s);
        return err;
    }
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const char *origin = el_str(r, i);
        sluice_slot_holding h = {origin, 0, 0,        live,     0,        0,
                                 0,      0, lim->cap, lim->cap, lim->rate};
        if (!origin)
            continue;
        if ((err = origin_holding(s, origin, &h)) != SLUICE_OK) {
            sl_queue_fail(q, err, "%s", s->errmsg);
            break;
        }
        /* Every slot held may be a request of a live runner. */
        h.in_flight = live ? h.held : 0;
        if ((h.held || h.paused_until) && fn(ctx, &h) != 0)
            break;
    }
    freeReplyObject(r);
    sl_slots_close(s);
    return err;
}

/* Free one origin's slots, end its pause (and a fence) and forget its
 * learnt limits: 1 when it held or paused anything. */
static sluice_err
clear_origin(sl_slots *s, const char *origin, uint64_t *cleared)
{
    rstate *rs = rs_of(s);
    sluice_slot_holding h = {origin, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    sluice_err err = origin_holding(s, origin, &h);
    char *held = key_of(rs, origin, "held");
    char *state = key_of(rs, origin, "state");
    redisReply *r = NULL;
    if (err == SLUICE_OK && (!held || !state))
        err = SLUICE_ENOMEM;
    const char *del[] = {"DEL", held};
    const char *hset[] = {"HSET", state,         "paused_until",
                          "0",    "fence_until", "0"};
    if (err == SLUICE_OK &&
        (err = sl_redis_cmd(&rs->conn, &r, 2, del, NULL)) == SLUICE_OK) {
        freeReplyObject(r);
        err = sl_redis_cmd(&rs->conn, &r, 6, hset, NULL);
        if (err == SLUICE_OK)
            freeReplyObject(r);
    }
    /* And what was learnt: the next run starts from the cap. */
    const char *hdel[] = {"HDEL", state, "lconc", "lrate"};
    if (err == SLUICE_OK &&
        (err = sl_redis_cmd(&rs->conn, &r, 4, hdel, NULL)) == SLUICE_OK)
        freeReplyObject(r);
    if (err != SLUICE_OK && !s->errmsg[0])
        sl_copy(s->errmsg, sizeof s->errmsg, rs->conn.errmsg);
    if (err == SLUICE_OK && (h.held || h.paused_until))
        (*cleared)++;
    sl_free(held);
    sl_free(state);
    return err;
}

sluice_err
sl_slots_redis_clear(sluice_queue *q, const char *origin, uint64_t *cleared)
{
    sl_slots_opts opts = {1, 0, 0, 0, false, false};
    sl_slots *s;
    char why[256];
    sluice_err err = sl_slots_open("redis", &opts, q, &s, why, sizeof why);
    if (err != SLUICE_OK)
        return sl_queue_fail(q, err, "%s", why);
    rstate *rs = rs_of(s);
    redisReply *r = NULL;
    const char *argv[] = {"SMEMBERS", rs->origins_key};
    if (origin)
        err = clear_origin(s, origin, cleared);
    else if ((err = sl_redis_cmd(&rs->conn, &r, 2, argv, NULL)) != SLUICE_OK)
        sl_copy(s->errmsg, sizeof s->errmsg, rs->conn.errmsg);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements &&
                       err == SLUICE_OK;
         i++)
        if (el_str(r, i))
            err = clear_origin(s, el_str(r, i), cleared);
    if (r)
        freeReplyObject(r);
    if (err != SLUICE_OK)
        sl_queue_fail(q, err, "%s", s->errmsg);
    sl_slots_close(s);
    return err;
}

/* ------------------------------------------------------------ the pacer */

/* This runner's pacer cut the limits: store them where every runner's
 * take obeys them (the learn script keeps the lower of its and ours). */
static void
publish_cut(sl_slots *s, sl_slot_origin *o)
{
    rstate *rs = rs_of(s);
    int64_t now = sl_boot_ms();
    if (in_outage(rs, now))
        return; /* the cut holds here; the next take says what is shared */
    char conc[40], rate[40], cap[16], ceiling[40];
    sl_fmt(conc, sizeof conc, "%.6f", o->pacer.conc);
    sl_fmt(rate, sizeof rate, "%.6f", o->pacer.rate);
    sl_fmt(cap, sizeof cap, "%u", s->opts.cap);
    sl_fmt(ceiling, sizeof ceiling, "%.6f",
           s->opts.rate > 0 ? s->opts.rate : 0);
    const char *argv[] = {conc, rate, cap, ceiling};
    redisReply *r;
    sluice_err err = run_script(s, &rs->learn, o->state_key, NULL, &r, 4, argv);
    if (err != SLUICE_OK) {
        outage(s, err, NULL);
        return;
    }
    reached(rs);
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 4)
        adopt(s, o, r, 0, now); /* our own cut: the verdict began anew */
    freeReplyObject(r);
}

static void
redis_feedback(sl_slots *s, sl_slot_origin *o, const sl_slot_feedback *fb,
               int64_t now)
{
    int64_t until;
    int64_t cut_before = o->pacer.last_cut;
    /* The origin's requests in flight from every runner, as the last
     * take counted them (this one's ended since). */
    unsigned in_use = o->held_reply > 0 ? o->held_reply - 1 : 0;
    if (in_use < o->live)
        in_use = o->live;
    if (sl_slots_pace_feedback(s, &o->pacer, in_use, fb, now, &until))
        redis_pause(s, o, until);
    if (s->opts.adapt && o->pacer.last_cut != cut_before)
        publish_cut(s, o);
}

static void
redis_limits(sl_slots *s, sl_slot_origin *o, int64_t now, sl_slot_limits *out)
{
    sl_slots_pace_limits(s, &o->pacer, now, out);
}

const sl_slots_ops sl_slots_redis = {
    .backend = {SL_FAMILY_SLOTS, "redis", NULL},
    .state_size = sizeof(rstate),
    .open = redis_slots_open,
    .close = redis_slots_close,
    .origin_open = redis_origin_open,
    .origin_close = redis_origin_close,
    .take = redis_take,
    .release = redis_release,
    .pause = redis_pause,
    .paused_until = redis_paused_until,
    .held = redis_held,
    .list = redis_list,
    .feedback = redis_feedback,
    .limits = redis_limits,
    .settle = redis_settle,
    .want = redis_want,
};
