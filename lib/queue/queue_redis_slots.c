/*
 * The Redis queue's runner claims (any number of runners: a sorted set
 * `runners` of claims with leases; their slots are shared through
 * slots/slots_redis.c), and the slot rows and settings the durable slot
 * service (slots/slots_durable.c) keeps with a queue: hashes `slots` and
 * `settings` (queue_redis.h).
 */
#include "queue_redis.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The runner key's lease and how often the runner renews it. */
#define RUNNER_TTL_MS   15000
#define RUNNER_RENEW_MS 5000

/* ------------------------------------------------------------ the runner */

/* Renews the runner key every RUNNER_RENEW_MS on a connection of its own,
 * so a run that is busy, or idle under --follow, keeps it; a process that
 * dies stops renewing, and the key lapses RUNNER_TTL_MS later. */
static void *
renewer_main(void *arg)
{
    sl_rq_queue *s = arg;
    sl_redis conn;
    sl_redis_script script = sl_rq_scripts[RQ_RUNNER_RENEW];
    char location[512];
    sl_thread_name("sl-renewer");
    memset(&conn, 0, sizeof conn);
    /* The same address, parsed again: a location of our own. */
    if (s->conn.addr.path)
        sl_fmt(location, sizeof location, "unix://%s?db=%d", s->conn.addr.path,
               s->conn.addr.db);
    else
        sl_fmt(location, sizeof location, "redis://%s:%d/%d", s->conn.addr.host,
               s->conn.addr.port, s->conn.addr.db);
    bool open = sl_redis_parse(location, &conn.addr, conn.errmsg,
                               sizeof conn.errmsg) == SLUICE_OK;
    if (open) {
        conn.addr.timeout_ms = s->conn.addr.timeout_ms;
        sl_free(conn.addr.user);
        sl_free(conn.addr.password);
        conn.addr.user =
            s->conn.addr.user ? sl_strdup(s->conn.addr.user) : NULL;
        conn.addr.password =
            s->conn.addr.password ? sl_strdup(s->conn.addr.password) : NULL;
    }
    char ttl[16];
    sl_fmt(ttl, sizeof ttl, "%d", RUNNER_TTL_MS);
    pthread_mutex_lock(&s->renew_mu);
    while (!s->renew_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += RUNNER_RENEW_MS / 1000;
        pthread_cond_timedwait(&s->renew_cv, &s->renew_mu, &until);
        if (s->renew_stop || !open)
            continue;
        pthread_mutex_unlock(&s->renew_mu);
        redisReply *reply = NULL;
        const char *argv[] = {s->runner_token, ttl};
        /* A failure is retried next round; the key outlives two. */
        if (sl_redis_eval(&conn, &script, s->meta_key, &reply, 2, argv, NULL) ==
            SLUICE_OK)
            freeReplyObject(reply);
        pthread_mutex_lock(&s->renew_mu);
    }
    pthread_mutex_unlock(&s->renew_mu);
    sl_redis_close(&conn);
    return NULL;
}

sluice_err
sl_rq_acquire_runner(sluice_queue *q)
{
    sl_rq_queue *s = sl_rq_state(q);
    if (s->runner)
        return SLUICE_OK;
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    sl_fmt(s->runner_token, sizeof s->runner_token, "%.40s:%ld:%" PRId64, host,
           (long)getpid(), sl_mono_ms());
    char ttl[16];
    sl_fmt(ttl, sizeof ttl, "%d", RUNNER_TTL_MS);
    const char *argv[] = {s->runner_token, ttl};
    redisReply *reply;
    sluice_err err = sl_rq_eval(q, RQ_RUNNER_JOIN, &reply, 2, argv, NULL);
    if (err != SLUICE_OK)
        return err;
    if (reply->type != REDIS_REPLY_INTEGER)
        return sl_rq_bad_reply(q, reply, "join");
    /* Several runners share the queue (and its slots); only one that
     * found no other alive may put in-flight records back (recover). */
    s->alone = reply->integer == 0;
    freeReplyObject(reply);
    s->runner = true;
    atomic_store(&s->claim_lost, false);
    s->renew_stop = false;
    if (pthread_create(&s->renewer, NULL, renewer_main, s) == 0)
        s->renewer_started = true;
    return SLUICE_OK;
}

sluice_err
sl_rq_runner_alive(sluice_queue *q, bool *alive)
{
    redisReply *reply;
    *alive = sl_rq_state(q)->runner;
    if (*alive)
        return SLUICE_OK;
    sluice_err err = sl_rq_eval(q, RQ_RUNNER_COUNT, &reply, 0, NULL, NULL);
    if (err != SLUICE_OK)
        return err;
    *alive = reply->type == REDIS_REPLY_INTEGER && reply->integer > 0;
    freeReplyObject(reply);
    return SLUICE_OK;
}

static void
stop_renewer(sl_rq_queue *s)
{
    if (!s->renewer_started)
        return;
    pthread_mutex_lock(&s->renew_mu);
    s->renew_stop = true;
    pthread_cond_signal(&s->renew_cv);
    pthread_mutex_unlock(&s->renew_mu);
    pthread_join(s->renewer, NULL);
    s->renewer_started = false;
}

sluice_err
sl_rq_claim_check(sluice_queue *q)
{
    sl_rq_queue *s = sl_rq_state(q);
    if (!s->runner || !atomic_load(&s->claim_lost))
        return SLUICE_OK;
    return sl_queue_fail(q, SLUICE_ERUNNING,
                         "%s: another sluice run took this queue over (this "
                         "one was stopped or cut off from Redis for over "
                         "%d s): stopping",
                         s->conn.addr.where, RUNNER_TTL_MS / 1000);
}

/* Stop renewing the runner claim and give it up (at close). */
void
sl_rq_runner_end(sl_rq_queue *s)
{
    stop_renewer(s);
    if (s->runner && s->conn.ctx) {
        redisReply *reply = NULL;
        const char *argv[] = {s->runner_token};
        if (sl_redis_eval(&s->conn, &s->scripts[RQ_RUNNER_DROP], s->meta_key,
                          &reply, 1, argv, NULL) == SLUICE_OK)
            freeReplyObject(reply);
    }
    s->runner = false;
}

/* ------------------------------------------------------------ slots */

/* A slot row is kept in the hash `slots` under its origin as "TOKEN HELD
 * IN_FLIGHT BOOT_ID UNTIL_BOOT UNTIL_WALL HOLD PAUSED_BOOT PAUSED_WALL
 * WRITTEN_WALL WRITTEN_BOOT NEXT_START CONC RATE ADVISED ADVISED_UNTIL":
 * the durable slot service's rows, as SQLite keeps them. */
#define ROW_FMT                                                                \
    "%u %u %63s %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64      \
    " %" SCNd64 " %" SCNd64 " %" SCNd64 " %lf %lf %lf %" SCNd64

sluice_err
sl_rq_slots_load(sluice_queue *q, sl_slot_row_fn *fn, void *ctx)
{
    sl_rq_queue *s = sl_rq_state(q);
    redisReply *reply;
    sluice_err err =
        sl_redis_cmdf(&s->conn, &reply, "HGETALL %sslots", s->base);
    if (err != SLUICE_OK)
        return sl_rq_conn_fail(q, err);
    if (reply->type != REDIS_REPLY_ARRAY)
        return sl_rq_bad_reply(q, reply, "read the slots");
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const char *origin = sl_rq_str(reply, i),
                   *text = sl_rq_str(reply, i + 1);
        if (!origin || !text)
            continue;
        char boot_id[64];
        sl_slot_row row = {.origin = origin, .boot_id = boot_id};
        char *rest;
        row.token = strtoull(text, &rest, 10);
        if (sscanf(rest, ROW_FMT, &row.held, &row.in_flight, boot_id,
                   &row.until_boot, &row.until_wall, &row.hold_ms,
                   &row.paused_boot, &row.paused_wall, &row.written_wall,
                   &row.written_boot, &row.next_start, &row.conc, &row.rate,
                   &row.advised, &row.advised_until) != 15)
            continue;
        if (fn(ctx, &row) != 0)
            break;
    }
    freeReplyObject(reply);
    return SLUICE_OK;
}

sluice_err
sl_rq_slots_save(sluice_queue *q, const sl_slot_row *rows, size_t n)
{
    if (n == 0)
        return SLUICE_OK;
    sl_rq_queue *s = sl_rq_state(q);
    sluice_err err = sl_rq_claim_check(q);
    if (err != SLUICE_OK)
        return err;
    const char **argv = sl_malloc((2 + 3 * n) * sizeof *argv);
    char(*text)[320] = sl_malloc(n * sizeof *text);
    char(*tokens)[24] = sl_malloc(n * sizeof *tokens);
    char ttl[16] = "";
    if (!argv || !text || !tokens) {
        err = sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const sl_slot_row *r = &rows[i];
        sl_fmt(tokens[i], sizeof tokens[i], "%" PRIu64, r->token);
        text[i][0] = '\0';
        if (!sl_slot_row_empty(r))
            sl_fmt(text[i], sizeof text[i],
                   "%u %u %s %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
                   " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
                   " %.17g %.17g %.17g %" PRId64,
                   r->held, r->in_flight,
                   r->boot_id && *r->boot_id ? r->boot_id : "-", r->until_boot,
                   r->until_wall, r->hold_ms, r->paused_boot, r->paused_wall,
                   r->written_wall, r->written_boot, r->next_start, r->conc,
                   r->rate, r->advised, r->advised_until);
        argv[2 + 3 * i] = r->origin;
        argv[2 + 3 * i + 1] = tokens[i];
        argv[2 + 3 * i + 2] = text[i];
    }
    if (s->runner)
        sl_fmt(ttl, sizeof ttl, "%d", RUNNER_TTL_MS);
    argv[0] = s->runner ? s->runner_token : "";
    argv[1] = ttl;
    redisReply *reply;
    err = sl_rq_eval(q, RQ_SLOTS_SAVE, &reply, (int)(2 + 3 * n), argv, NULL);
    if (err == SLUICE_OK) {
        bool lost = reply->type == REDIS_REPLY_INTEGER && reply->integer < 0;
        freeReplyObject(reply);
        if (lost) {
            atomic_store(&s->claim_lost, true);
            err = sl_rq_claim_check(q);
        }
    }
done:
    sl_free(argv);
    sl_free(text);
    sl_free(tokens);
    return err;
}

sluice_err
sl_rq_slots_clear(sluice_queue *q, const char *origin, uint64_t *removed)
{
    sl_rq_queue *s = sl_rq_state(q);
    redisReply *reply;
    sluice_err err;
    if (origin)
        err =
            sl_redis_cmdf(&s->conn, &reply, "HDEL %sslots %s", s->base, origin);
    else
        err = sl_redis_cmdf(&s->conn, &reply, "EVAL %s 1 %smeta",
                            "local n = redis.call('HLEN', string.sub("
                            "KEYS[1], 1, -5) .. 'slots') "
                            "redis.call('DEL', string.sub(KEYS[1], 1, -5) "
                            ".. 'slots') return n",
                            s->base);
    if (err != SLUICE_OK)
        return sl_rq_conn_fail(q, err);
    *removed =
        reply->type == REDIS_REPLY_INTEGER ? (uint64_t)reply->integer : 0;
    freeReplyObject(reply);
    return SLUICE_OK;
}

sluice_err
sl_rq_setting_get(sluice_queue *q, const char *name, char *value, size_t size)
{
    sl_rq_queue *s = sl_rq_state(q);
    redisReply *reply;
    sluice_err err =
        sl_redis_cmdf(&s->conn, &reply, "HGET %ssettings %s", s->base, name);
    if (err != SLUICE_OK)
        return sl_rq_conn_fail(q, err);
    bool found = reply->type == REDIS_REPLY_STRING;
    if (found)
        sl_copy(value, size, reply->str);
    freeReplyObject(reply);
    if (!found)
        return sl_queue_fail(q, SLUICE_ENOTFOUND, "%s: no setting %s",
                             s->conn.addr.where, name);
    return SLUICE_OK;
}

sluice_err
sl_rq_setting_set(sluice_queue *q, const char *name, const char *value)
{
    sl_rq_queue *s = sl_rq_state(q);
    redisReply *reply;
    sluice_err err = sl_redis_cmdf(&s->conn, &reply, "HSET %ssettings %s %s",
                                   s->base, name, value);
    if (err != SLUICE_OK)
        return sl_rq_conn_fail(q, err);
    freeReplyObject(reply);
    return SLUICE_OK;
}
