/*
 * Pipelines of commands built in two flat arrays (queue_redis.h): the
 * ingest's lookups and its MULTI/EXEC blocks (queue_redis_upsert.c,
 * queue_redis_pack.c), and what an EXEC's answer says went wrong.
 */
#include "queue_redis.h"

#include <assert.h>
#include <string.h>

bool
sl_rq_cmds_init(sl_rq_cmds *c, size_t cap_args, size_t cap_cmds)
{
    memset(c, 0, sizeof *c);
    c->args = sl_malloc(cap_args * sizeof *c->args);
    c->lens = sl_malloc(cap_args * sizeof *c->lens);
    c->cmds = sl_malloc(cap_cmds * sizeof *c->cmds);
    c->cap_args = cap_args;
    c->cap_cmds = cap_cmds;
    return c->args && c->lens && c->cmds;
}

void
sl_rq_cmds_free(sl_rq_cmds *c)
{
    sl_free(c->args);
    sl_free(c->lens);
    sl_free(c->cmds);
}

/* Arguments and commands are counted before they are added (the caller
 * sizes the arrays), so these never grow them. */
void
sl_rq_arg(sl_rq_cmds *c, const char *s, size_t len)
{
    assert(c->n_args < c->cap_args);
    c->args[c->n_args] = s;
    c->lens[c->n_args++] = len;
}

void
sl_rq_arg_str(sl_rq_cmds *c, const char *s)
{
    sl_rq_arg(c, s, strlen(s));
}

void
sl_rq_cmd_end(sl_rq_cmds *c)
{
    assert(c->n_cmds < c->cap_cmds);
    c->cmds[c->n_cmds++] =
        (sl_redis_cmdv){(int)(c->n_args - c->start), NULL, NULL};
    c->start = c->n_args;
}

/* Pointers are set once every argument is in (the arrays are fixed). */
static void
seal(sl_rq_cmds *c)
{
    size_t at = 0;
    for (size_t i = 0; i < c->n_cmds; i++) {
        c->cmds[i].argv = &c->args[at];
        c->cmds[i].lens = &c->lens[at];
        at += (size_t)c->cmds[i].argc;
    }
}

sluice_err
sl_rq_cmds_send(sluice_queue *q, sl_rq_cmds *c, redisReply **replies)
{
    seal(c);
    sluice_err err = sl_redis_pipeline(&sl_rq_state(q)->conn, c->n_cmds,
                                       c->cmds, replies, "upsert");
    return err == SLUICE_OK ? SLUICE_OK : sl_rq_conn_fail(q, err);
}

sluice_err
sl_rq_cmds_write(sluice_queue *q, sl_rq_cmds *c)
{
    seal(c);
    sluice_err err = sl_redis_pipeline_send(&sl_rq_state(q)->conn, c->n_cmds,
                                            c->cmds, "upsert");
    return err == SLUICE_OK ? SLUICE_OK : sl_rq_conn_fail(q, err);
}

const char *
sl_rq_exec_why(redisReply *const *replies, size_t n)
{
    const redisReply *exec = replies[n - 1];
    const char *why = NULL;
    if (exec->type == REDIS_REPLY_ERROR) {
        /* EXECABORT: the command refused while queued says why. */
        why = exec->str;
        for (size_t i = 1; i + 1 < n; i++)
            if (replies[i]->type == REDIS_REPLY_ERROR)
                why = replies[i]->str;
    } else if (exec->type != REDIS_REPLY_ARRAY || exec->elements != n - 2) {
        why = "unexpected reply from Redis";
    } else {
        for (size_t i = 0; i < exec->elements && !why; i++)
            if (exec->element[i]->type == REDIS_REPLY_ERROR)
                why = exec->element[i]->str;
    }
    return why;
}
