/*
 * The Redis queue's marks in pipelines (sl_queue_marks): a batch of done,
 * retry, dead and release marks sent as one pipeline of EVALSHA calls of
 * the scripts and arguments the single calls use (queue_redis.c), the
 * answers read in order. One round trip for a few hundred marks, where
 * the single calls take one each, the queue's turn held all along. Done
 * marks next to each other go as one call of complete (which takes any
 * number, and answers each): a script call costs Redis more than the
 * commands of a mark.
 */
#include "queue_redis.h"

#include <stdlib.h>
#include <string.h>

/* Marks one pipeline carries at most. */
#define MARKS_PIPELINE 256
/* EVALSHA, the digest, the number of keys and the key; then the
 * script's arguments. */
#define EVAL_HEAD     4
#define MARK_ARGS_MAX (EVAL_HEAD + 7)

/* One pipeline's worth, made and read by send_marks. */
typedef struct {
    sl_rq_mark_call call[MARKS_PIPELINE];
    /* The commands: command k carries the marks todo[at[k] .. at[k] +
     * n[k]) with script which[k], its words in args. */
    const char *args[MARKS_PIPELINE * MARK_ARGS_MAX];
    sl_redis_cmdv cmds[MARKS_PIPELINE];
    redisReply *replies[MARKS_PIPELINE];
    size_t at[MARKS_PIPELINE], n[MARKS_PIPELINE], n_cmds;
    int which[MARKS_PIPELINE];
    /* The marks still to send, in order (those Redis answered NOSCRIPT
     * are sent again once their scripts are loaded). */
    size_t todo[MARKS_PIPELINE], n_todo;
    /* The first mark, in order, that was neither made nor stale: its
     * index, the failure and its message. */
    size_t first;
    sluice_err first_err;
    char msg[sizeof((sluice_queue *)0)->errmsg];
} pipe_state;

/* Mark i failed with err (or was not sent, err stopping it): kept when
 * it comes first. */
static void
note(sluice_queue *q, pipe_state *p, size_t i, sluice_err err)
{
    if (i >= p->first)
        return;
    p->first = i;
    p->first_err = err;
    sl_copy(p->msg, sizeof p->msg, q->errmsg);
}

/*
 * Load the scripts of the marks to send that Redis was not given on this
 * handle yet, or forgot (NOSCRIPT: a restart, a SCRIPT FLUSH), in one
 * pipeline of SCRIPT LOAD. No mark is sent.
 */
static sluice_err
load_scripts(sluice_queue *q, pipe_state *p)
{
    sl_rq_queue *s = sl_rq_state(q);
    static const int kinds[] = {RQ_COMPLETE, RQ_RETRY, RQ_DEAD, RQ_RELEASE};
    enum { N_KINDS = sizeof kinds / sizeof kinds[0] };
    const char *argv[N_KINDS][3];
    sl_redis_cmdv cmds[N_KINDS];
    redisReply *replies[N_KINDS];
    int which[N_KINDS];
    size_t n = 0;
    for (size_t k = 0; k < N_KINDS; k++) {
        if (s->scripts[kinds[k]].sha[0])
            continue;
        for (size_t j = 0; j < p->n_todo; j++) {
            if (p->call[p->todo[j]].which == kinds[k]) {
                which[n++] = kinds[k];
                break;
            }
        }
    }
    if (n == 0)
        return SLUICE_OK;
    for (size_t i = 0; i < n; i++) {
        argv[i][0] = "SCRIPT";
        argv[i][1] = "LOAD";
        argv[i][2] = s->scripts[which[i]].text;
        cmds[i] = (sl_redis_cmdv){3, argv[i], NULL};
    }
    sluice_err err =
        sl_redis_pipeline(&s->conn, n, cmds, replies, "SCRIPT LOAD");
    if (err != SLUICE_OK)
        return sl_rq_conn_fail(q, err);
    for (size_t i = 0; i < n && err == SLUICE_OK; i++) {
        const redisReply *r = replies[i];
        sl_redis_script *script = &s->scripts[which[i]];
        if (r->type == REDIS_REPLY_ERROR) {
            err = sl_rq_conn_fail(
                q, sl_redis_reply_error(&s->conn, r, script->name));
        } else if (r->type != REDIS_REPLY_STRING || r->len != 40) {
            err = sl_queue_fail(q, SLUICE_EDB,
                                "%s: SCRIPT LOAD %s: unexpected reply",
                                s->conn.addr.where, script->name);
        } else {
            memcpy(script->sha, r->str, 40);
            script->sha[40] = '\0';
        }
    }
    sl_redis_replies_free(replies, n);
    return err;
}

/* The EVALSHA commands of the marks to send: one a mark, but done marks
 * next to each other share one. */
static void
make_commands(const sl_rq_queue *s, pipe_state *p)
{
    const char **a = p->args;
    size_t k = 0;
    for (size_t j = 0; j < p->n_todo; j++) {
        const sl_rq_mark_call *c = &p->call[p->todo[j]];
        int which = c->which;
        if (which == RQ_COMPLETE && k > 0 && p->which[k - 1] == RQ_COMPLETE) {
            memcpy(a, c->argv, (size_t)c->argc * sizeof *a);
            a += c->argc;
            p->cmds[k - 1].argc += c->argc;
            p->n[k - 1]++;
            continue;
        }
        a[0] = "EVALSHA";
        a[1] = s->scripts[which].sha;
        a[2] = "1";
        a[3] = s->meta_key;
        memcpy(a + EVAL_HEAD, c->argv, (size_t)c->argc * sizeof *a);
        p->cmds[k] = (sl_redis_cmdv){EVAL_HEAD + c->argc, a, NULL};
        p->at[k] = j;
        p->n[k] = 1;
        p->which[k] = which;
        a += EVAL_HEAD + c->argc;
        k++;
    }
    p->n_cmds = k;
}

/*
 * Marks v[0..n) (n <= MARKS_PIPELINE) in one pipeline, results as
 * sl_queue_marks says; the marks answered NOSCRIPT once more after their
 * scripts are loaded.
 */
static sluice_err
send_marks(sluice_queue *q, const sl_queue_mark *v, size_t n,
           sluice_err *results, pipe_state *p)
{
    sl_rq_queue *s = sl_rq_state(q);
    p->first = n;
    p->first_err = SLUICE_OK;
    p->n_todo = n;
    for (size_t i = 0; i < n; i++) {
        results[i] = SLUICE_EAGAIN;
        sl_rq_mark_call_of(s, &v[i], &p->call[i]);
        p->todo[i] = i;
    }
    /* Connected first: a Redis that cannot be reached was sent nothing,
     * so that no mark is taken for sent that was not. */
    sluice_err err = sl_redis_pipeline(&s->conn, 0, NULL, NULL, "marks");
    if (err != SLUICE_OK) {
        sl_rq_conn_fail(q, err);
        note(q, p, 0, err);
    }
    for (int round = 0; round < 2 && err == SLUICE_OK && p->n_todo > 0;
         round++) {
        if ((err = load_scripts(q, p)) != SLUICE_OK) {
            note(q, p, p->todo[0], err);
            break;
        }
        make_commands(s, p);
        err = sl_redis_pipeline(&s->conn, p->n_cmds, p->cmds, p->replies,
                                "marks");
        if (err != SLUICE_OK) {
            /* Sent, and no answer read: Redis may yet make any. */
            sl_rq_conn_fail(q, err);
            for (size_t j = 0; j < p->n_todo; j++)
                results[p->todo[j]] = err;
            note(q, p, p->todo[0], err);
            break;
        }
        size_t again = 0;
        for (size_t k = 0; k < p->n_cmds; k++) {
            redisReply *r = p->replies[k];
            const sl_rq_mark_call *c = &p->call[p->todo[p->at[k]]];
            if (r->type == REDIS_REPLY_ERROR &&
                strncmp(r->str, "NOSCRIPT", 8) == 0) {
                s->scripts[p->which[k]].sha[0] = '\0';
                freeReplyObject(r);
                /* again <= at[k]: those before are read already */
                for (size_t e = 0; e < p->n[k]; e++)
                    p->todo[again++] = p->todo[p->at[k] + e];
                continue;
            }
            if (r->type == REDIS_REPLY_ERROR) {
                sluice_err failed = sl_rq_conn_fail(
                    q, sl_redis_reply_error(&s->conn, r, c->what));
                for (size_t e = 0; e < p->n[k]; e++)
                    results[p->todo[p->at[k] + e]] = failed;
            } else {
                for (size_t e = 0; e < p->n[k]; e++) {
                    size_t i = p->todo[p->at[k] + e];
                    results[i] = sl_rq_mark_answer(q, &p->call[i],
                                                   v[i].lease, r, e, p->n[k]);
                }
            }
            freeReplyObject(r);
            for (size_t e = 0; e < p->n[k]; e++) {
                size_t i = p->todo[p->at[k] + e];
                if (results[i] != SLUICE_OK && results[i] != SLUICE_ENOTFOUND)
                    note(q, p, i, results[i]);
            }
        }
        p->n_todo = again;
    }
    if (err == SLUICE_OK && p->n_todo > 0) {
        /* NOSCRIPT right after loading: something flushes the scripts. */
        sl_queue_fail(q, SLUICE_EDB,
                      "%s: %s: Redis forgot the script as soon as it was "
                      "loaded (NOSCRIPT twice)",
                      s->conn.addr.where, p->call[p->todo[0]].what);
        for (size_t j = 0; j < p->n_todo; j++)
            results[p->todo[j]] = SLUICE_EDB;
        note(q, p, p->todo[0], SLUICE_EDB);
    }
    if (p->first == n)
        return SLUICE_OK;
    return sl_queue_fail(q, p->first_err, "%s", p->msg);
}

sluice_err
sl_rq_marks(sluice_queue *q, const sl_queue_mark *v, size_t n,
            sluice_err *results)
{
    sluice_err err = SLUICE_OK;
    pipe_state *p = sl_malloc(sizeof *p);
    if (!p)
        err = sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    for (size_t at = 0; at < n; at += MARKS_PIPELINE) {
        size_t take = SL_MIN(n - at, (size_t)MARKS_PIPELINE);
        if (err == SLUICE_OK) {
            err = send_marks(q, v + at, take, results + at, p);
            continue;
        }
        for (size_t i = at; i < at + take; i++)
            results[i] = SLUICE_EAGAIN; /* after a failure: not sent */
    }
    sl_free(p);
    return err;
}
