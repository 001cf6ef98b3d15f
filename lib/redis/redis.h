/*
 * A connection to Redis for the backends that keep state there (the
 * queue, queue/queue_redis.c; later the slot service): addresses parsed
 * from redis:// and unix:// locations, connect and command timeouts (a
 * Redis that hangs is an error, never a hang), AUTH and SELECT, Lua
 * scripts loaded once and run by their SHA-1, and the server's run_id.
 */
#ifndef SL_REDIS_H
#define SL_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/sluice.h"

/* hiredis's reply; callers that read replies include <hiredis/hiredis.h>. */
struct redisReply;
struct redisContext;

/*
 * Where a Redis is, from
 *   redis://[USER:PASSWORD@]HOST:PORT[/DBNUM][?prefix=NAME&timeout=SEC]
 *   unix:///PATH[?db=N&prefix=NAME&timeout=SEC]
 * `where` names it in messages, without the password.
 */
typedef struct {
    char *host; /* NULL for a unix socket */
    int port;
    char *path; /* the socket, or NULL */
    char *user; /* NULL: AUTH with the password alone (or none) */
    char *password;
    int db;
    char *prefix;        /* "sluice:" unless given */
    unsigned timeout_ms; /* connect and command timeout */
    char where[300];
} sl_redis_addr;

/*
 * Parse `location` into *addr (freed with sl_redis_addr_free, also after
 * a failure). On failure returns SLUICE_EINVAL with a one-line reason
 * naming the part that is wrong in errbuf.
 */
sluice_err sl_redis_parse(const char *location, sl_redis_addr *addr,
                          char *errbuf, size_t errbuf_size);
void sl_redis_addr_free(sl_redis_addr *addr);

/* A Lua script, loaded on first use (SCRIPT LOAD) and run by its SHA-1;
 * loaded again when Redis has forgotten it (NOSCRIPT, after a restart). */
typedef struct {
    const char *name; /* for messages */
    const char *text;
    char sha[41];
} sl_redis_script;

/*
 * One connection. Not thread-safe: one thread at a time (the queue's
 * turn). After an I/O error or a timeout the connection is dropped and
 * the next command connects again; `run_id` then tells whether it is the
 * same Redis process (`restarts` counts the changes seen).
 */
typedef struct {
    sl_redis_addr addr;
    struct redisContext *ctx;
    char run_id[48];
    unsigned restarts;
    unsigned unread; /* answers to sl_redis_send not read yet */
    char errmsg[512];
} sl_redis;

/* Parse, connect, authenticate and select (errmsg says why not). */
sluice_err sl_redis_open(sl_redis *r, const char *location);
void sl_redis_close(sl_redis *r);

/*
 * Run one command of argc arguments (lens may be NULL: strlen). On
 * success *out holds the reply, which the caller frees with
 * freeReplyObject. An error reply, an I/O error or a timeout returns a
 * sluice code with errmsg set and *out NULL.
 */
sluice_err sl_redis_cmd(sl_redis *r, struct redisReply **out, int argc,
                        const char **argv, const size_t *lens);
/* The same with printf-style arguments of hiredis's redisCommand. */
sluice_err sl_redis_cmdf(sl_redis *r, struct redisReply **out, const char *fmt,
                         ...);

/*
 * EVALSHA `script` with one key and argv[0..argc) as ARGV, loading the
 * script when Redis does not have it. Same contract as sl_redis_cmd.
 */
sluice_err sl_redis_eval(sl_redis *r, sl_redis_script *script, const char *key,
                         struct redisReply **out, int argc, const char **argv,
                         const size_t *lens);

/* The same with n_keys keys (KEYS[1..n_keys]): a script that touches
 * several keys names them all, so that it runs on a cluster (the keys
 * of one script must share a hash tag). */
sluice_err sl_redis_eval_keys(sl_redis *r, sl_redis_script *script, int n_keys,
                              const char *const *keys, struct redisReply **out,
                              int argc, const char **argv, const size_t *lens);

/*
 * Send a command and return without its answer: it is read, and dropped,
 * before the next command's (a release nobody needs to wait for). The
 * command is written at once. An error when it could not be (the
 * connection is dropped, errmsg says why): it may not have run.
 */
sluice_err sl_redis_send(sl_redis *r, int argc, const char **argv,
                         const size_t *lens);

/* One command of a pipeline: argc arguments (lens NULL: strlen). */
typedef struct {
    int argc;
    const char **argv;
    const size_t *lens;
} sl_redis_cmdv;

/*
 * Send n commands in one write and read their n replies into
 * replies[0..n) (the caller frees each with freeReplyObject): one round
 * trip however many commands. An error reply is a reply here, not a
 * failure (inside MULTI the caller judges each). An I/O error or a
 * timeout frees what was read, drops the connection and returns a code
 * with errmsg set, `what` naming the work. It connects first when the
 * connection was dropped: a caller whose commands depend on an earlier
 * call's state on the connection (WATCH) checks that it is still up
 * (sl_redis_connected) before it calls.
 */
sluice_err sl_redis_pipeline(sl_redis *r, size_t n, const sl_redis_cmdv *cmds,
                             struct redisReply **replies, const char *what);

/*
 * sl_redis_pipeline in two halves, so that the caller works while Redis
 * does: _send writes the n commands, every byte, and returns; _recv
 * reads their n replies. Nothing else may use the connection in between
 * (the replies would be taken for its own). An error from either drops
 * the connection, as sl_redis_pipeline's; after one from _send, the
 * commands may or may not have run.
 */
sluice_err sl_redis_pipeline_send(sl_redis *r, size_t n,
                                  const sl_redis_cmdv *cmds, const char *what);
sluice_err sl_redis_pipeline_recv(sl_redis *r, size_t n,
                                  struct redisReply **replies,
                                  const char *what);

/* Free replies[0..n) (NULL ones skipped) and set each to NULL. */
void sl_redis_replies_free(struct redisReply **replies, size_t n);

/*
 * An error reply's text as a code, its message in r->errmsg ("WHERE:
 * what: text"): a wrong password is SLUICE_EACCES, OOM SLUICE_ENOSPACE,
 * a Redis loading its data or busy with a script SLUICE_EBUSY (an outage
 * to wait out), anything else SLUICE_EDB.
 */
sluice_err sl_redis_reply_error(sl_redis *r, const struct redisReply *reply,
                                const char *what);

/* Whether the connection is up (false after an I/O error dropped it). */
static inline bool
sl_redis_connected(const sl_redis *r)
{
    return r->ctx != NULL;
}

/* Redis's clock (TIME), in milliseconds since the epoch. */
sluice_err sl_redis_time_ms(sl_redis *r, int64_t *ms);

#endif /* SL_REDIS_H */
