/*
 * The Redis connection (redis.h): locations parsed, connections made with
 * timeouts (hiredis 0.14 has no timers of its own: a socket timeout makes
 * a Redis that hangs an error), AUTH, SELECT, and scripts run by SHA-1.
 * Hiredis's errors become sluice codes here, with a one-line message.
 */
#include "redis.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "../util.h"

#define DEFAULT_PORT       6379
#define DEFAULT_PREFIX     "sluice:"
#define DEFAULT_TIMEOUT_MS 10000
#define PREFIX_MAX         64

static sluice_err
bad(char *errbuf, size_t size, const char *location, const char *what)
{
    sl_fmt(errbuf, size, "%.200s: %s", location, what);
    return SLUICE_EINVAL;
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* s[0..len) with %XX decoded, or NULL (a bad escape, or no memory). */
static char *
decode(const char *s, size_t len)
{
    char *out = sl_malloc(len + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int hi = i + 2 < len ? hex_value(s[i + 1]) : -1;
        int lo = i + 2 < len ? hex_value(s[i + 2]) : -1;
        if (hi >= 0 && lo >= 0) {
            *o++ = (char)(hi * 16 + lo);
            i += 2;
            continue;
        }
        sl_free(out);
        return NULL;
    }
    *o = '\0';
    return out;
}

/* A whole decimal number in [min, max] from s[0..len). */
static bool
parse_num(const char *s, size_t len, long min, long max, long *out)
{
    long v = 0;
    if (len == 0 || len > 9)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool
prefix_ok(const char *p)
{
    size_t len = strlen(p);
    if (len == 0 || len > PREFIX_MAX)
        return false;
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == '{' || *c == '}' || *c == 0x7f)
            return false;
    return true;
}

/* The query: prefix=NAME, timeout=SEC, db=N (db only where allowed). */
static sluice_err
parse_query(const char *location, const char *q, bool db_allowed,
            sl_redis_addr *a, char *errbuf, size_t size)
{
    while (*q) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        if (!eq)
            return bad(errbuf, size, location,
                       "a query parameter without '=' (want prefix=NAME, "
                       "db=N or timeout=SEC)");
        size_t name_len = (size_t)(eq - q);
        const char *val = eq + 1;
        size_t val_len = len - name_len - 1;
        long n;
        if (name_len == 6 && memcmp(q, "prefix", 6) == 0) {
            char *p = decode(val, val_len);
            if (!p || !prefix_ok(p)) {
                sl_free(p);
                return bad(errbuf, size, location,
                           "prefix must be 1 to 64 characters without "
                           "spaces, '{' or '}'");
            }
            sl_free(a->prefix);
            a->prefix = p;
        } else if (name_len == 2 && memcmp(q, "db", 2) == 0 && db_allowed) {
            if (!parse_num(val, val_len, 0, 1000000, &n))
                return bad(errbuf, size, location,
                           "db must be a database number (0, 1, ...)");
            a->db = (int)n;
        } else if (name_len == 7 && memcmp(q, "timeout", 7) == 0) {
            if (!parse_num(val, val_len, 1, 3600, &n))
                return bad(errbuf, size, location,
                           "timeout must be whole seconds, 1 to 3600");
            a->timeout_ms = (unsigned)n * 1000;
        } else {
            return bad(errbuf, size, location,
                       db_allowed ? "unknown query parameter (want "
                                    "prefix=NAME, db=N or timeout=SEC)"
                                  : "unknown query parameter (want "
                                    "prefix=NAME or timeout=SEC; the "
                                    "database is /DBNUM)");
        }
        q += len + (q[len] == '&');
    }
    return SLUICE_OK;
}

static sluice_err
parse_tcp(const char *location, const char *rest, sl_redis_addr *a,
          char *errbuf, size_t size)
{
    size_t auth_len = strcspn(rest, "/?");
    const char *end = rest + auth_len;
    const char *at = NULL;
    for (const char *c = rest; c < end; c++)
        if (*c == '@')
            at = c;
    const char *host = rest;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (!colon)
            return bad(errbuf, size, location,
                       "credentials must be USER:PASSWORD@ (or "
                       ":PASSWORD@)");
        if (colon > rest) {
            a->user = decode(rest, (size_t)(colon - rest));
            if (!a->user)
                return bad(errbuf, size, location,
                           "a bad %-escape in the user name");
        }
        a->password = decode(colon + 1, (size_t)(at - colon - 1));
        if (!a->password)
            return bad(errbuf, size, location,
                       "a bad %-escape in the password");
        host = at + 1;
    }
    const char *host_end, *port = NULL;
    if (*host == '[') {
        host_end = memchr(host, ']', (size_t)(end - host));
        if (!host_end)
            return bad(errbuf, size, location, "an IPv6 address lacks ']'");
        if (host_end + 1 < end) {
            if (host_end[1] != ':')
                return bad(errbuf, size, location,
                           "something after the IPv6 address ']'");
            port = host_end + 2;
        }
        host++;
    } else {
        host_end = memchr(host, ':', (size_t)(end - host));
        if (host_end)
            port = host_end + 1;
        else
            host_end = end;
    }
    if (host_end == host)
        return bad(errbuf, size, location, "no host name");
    a->host = sl_strndup(host, (size_t)(host_end - host));
    long n = DEFAULT_PORT;
    if (port && !parse_num(port, (size_t)(end - port), 1, 65535, &n))
        return bad(errbuf, size, location,
                   "the port must be a number from 1 to 65535");
    a->port = (int)n;
    const char *q = end;
    if (*q == '/') {
        size_t db_len = strcspn(q + 1, "?");
        if (db_len > 0 && !parse_num(q + 1, db_len, 0, 1000000, &n))
            return bad(errbuf, size, location,
                       "the path must be a database number (/0, /1, ...)");
        if (db_len > 0)
            a->db = (int)n;
        q += 1 + db_len;
    }
    if (*q == '?')
        return parse_query(location, q + 1, false, a, errbuf, size);
    return SLUICE_OK;
}

sluice_err
sl_redis_parse(const char *location, sl_redis_addr *a, char *errbuf,
               size_t size)
{
    sluice_err err;
    memset(a, 0, sizeof *a);
    a->timeout_ms = DEFAULT_TIMEOUT_MS;
    a->prefix = sl_strdup(DEFAULT_PREFIX);
    if (!a->prefix)
        return bad(errbuf, size, location, "out of memory");
    if (strncmp(location, "redis://", 8) == 0) {
        err = parse_tcp(location, location + 8, a, errbuf, size);
        if (err == SLUICE_OK && !a->host)
            err = bad(errbuf, size, location, "out of memory");
        if (err == SLUICE_OK)
            sl_fmt(a->where, sizeof a->where, "redis://%.200s:%d/%d", a->host,
                   a->port, a->db);
    } else if (strncmp(location, "unix://", 7) == 0) {
        const char *p = location + 7;
        size_t len = strcspn(p, "?");
        if (*p != '/' || len < 2)
            return bad(errbuf, size, location,
                       "want unix:///PATH/TO/redis.sock (an absolute "
                       "path)");
        a->path = sl_strndup(p, len);
        if (!a->path)
            return bad(errbuf, size, location, "out of memory");
        err = SLUICE_OK;
        if (p[len] == '?')
            err = parse_query(location, p + len + 1, true, a, errbuf, size);
        if (err == SLUICE_OK)
            sl_fmt(a->where, sizeof a->where, "unix://%.200s?db=%d", a->path,
                   a->db);
    } else {
        return bad(errbuf, size, location,
                   "not a Redis location (redis://HOST:PORT or "
                   "unix:///PATH)");
    }
    return err;
}

void
sl_redis_addr_free(sl_redis_addr *a)
{
    sl_free(a->host);
    sl_free(a->path);
    sl_free(a->user);
    sl_free(a->password);
    sl_free(a->prefix);
    memset(a, 0, sizeof *a);
}

/*
 * hiredis writes with write(2): to a Redis that died, that raises
 * SIGPIPE, which would kill the process. A library must not change the
 * process's signal handling, so SIGPIPE is blocked on this thread around
 * each exchange and one it raised is taken off the thread (curl does the
 * same around OpenSSL).
 */
typedef struct {
    sigset_t old;
    bool pending_before;
} sigpipe_guard;

static void
sigpipe_block(sigpipe_guard *g)
{
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    g->pending_before = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &g->old);
}

static void
sigpipe_restore(sigpipe_guard *g)
{
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    if (!g->pending_before && sigismember(&pending, SIGPIPE)) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

static redisReply *
exchange(redisContext *c, int argc, const char **argv, const size_t *lens)
{
    sigpipe_guard g;
    sigpipe_block(&g);
    int saved;
    redisReply *reply = redisCommandArgv(c, argc, argv, lens);
    saved = errno;
    sigpipe_restore(&g);
    errno = saved;
    return reply;
}

static struct timeval
tv_of(unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

static sluice_err fail(sl_redis *r, sluice_err err, const char *fmt, ...)
    SL_PRINTF(3, 4);

static sluice_err
fail(sl_redis *r, sluice_err err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_vfmt(r->errmsg, sizeof r->errmsg, fmt, ap);
    va_end(ap);
    return err;
}

static void
drop(sl_redis *r)
{
    if (r->ctx)
        redisFree(r->ctx);
    r->ctx = NULL;
    r->unread = 0;
}

/* The context's error as a code and message; the connection is dropped
 * (hiredis cannot use a context after an I/O error). */
static sluice_err
io_fail(sl_redis *r, const char *what)
{
    int saved = errno;
    sluice_err err = SLUICE_ENETWORK;
    char detail[160];
    if (!r->ctx) {
        sl_copy(detail, sizeof detail, "out of memory");
        err = SLUICE_ENOMEM;
    } else if (r->ctx->err == REDIS_ERR_IO &&
               (saved == EAGAIN || saved == EWOULDBLOCK || saved == ETIMEDOUT ||
                saved == EINPROGRESS)) {
        sl_fmt(detail, sizeof detail,
               "no answer within %u s (Redis hangs or is unreachable)",
               r->addr.timeout_ms / 1000);
        err = SLUICE_ETIMEOUT;
    } else if (r->ctx->err == REDIS_ERR_EOF) {
        sl_copy(detail, sizeof detail, "Redis closed the connection");
    } else {
        sl_copy(detail, sizeof detail, r->ctx->errstr);
        if (r->ctx->err == REDIS_ERR_OOM)
            err = SLUICE_ENOMEM;
        else if (r->ctx->err == REDIS_ERR_PROTOCOL)
            err = SLUICE_EDB;
    }
    drop(r);
    return fail(r, err, "%s: %s: %s", r->addr.where, what, detail);
}

sluice_err
sl_redis_reply_error(sl_redis *r, const redisReply *reply, const char *what)
{
    const char *text = reply->str ? reply->str : "error";
    sluice_err err = SLUICE_EDB;
    if (strncmp(text, "WRONGPASS", 9) == 0 || strncmp(text, "NOAUTH", 6) == 0 ||
        strstr(text, "invalid password") || strstr(text, "invalid username"))
        err = SLUICE_EACCES;
    else if (strncmp(text, "OOM", 3) == 0)
        err = SLUICE_ENOSPACE;
    else if (strncmp(text, "BUSY", 4) == 0 || strncmp(text, "LOADING", 7) == 0)
        err = SLUICE_EBUSY;
    return fail(r, err, "%s: %s: %.300s", r->addr.where, what, text);
}

/* A command while connecting: the context is known to be up. */
static sluice_err
setup_cmd(sl_redis *r, const char *what, int argc, const char **argv)
{
    redisReply *reply = exchange(r->ctx, argc, argv, NULL);
    if (!reply)
        return io_fail(r, what);
    sluice_err err = SLUICE_OK;
    if (reply->type == REDIS_REPLY_ERROR)
        err = sl_redis_reply_error(r, reply, what);
    freeReplyObject(reply);
    if (err != SLUICE_OK)
        drop(r);
    return err;
}

/* run_id from INFO server. */
static sluice_err
read_run_id(sl_redis *r)
{
    const char *argv[] = {"INFO", "server"};
    redisReply *reply = exchange(r->ctx, 2, argv, NULL);
    if (!reply)
        return io_fail(r, "INFO");
    if (reply->type == REDIS_REPLY_ERROR) {
        sluice_err err = sl_redis_reply_error(r, reply, "INFO");
        freeReplyObject(reply);
        drop(r);
        return err;
    }
    char id[48] = "";
    if (reply->type == REDIS_REPLY_STRING) {
        const char *p = strstr(reply->str, "run_id:");
        if (p) {
            p += 7;
            size_t len = strcspn(p, "\r\n");
            if (len < sizeof id) {
                memcpy(id, p, len);
                id[len] = '\0';
            }
        }
    }
    freeReplyObject(reply);
    if (r->run_id[0] && strcmp(r->run_id, id) != 0)
        r->restarts++;
    sl_copy(r->run_id, sizeof r->run_id, id);
    return SLUICE_OK;
}

static sluice_err
connect_now(sl_redis *r)
{
    const sl_redis_addr *a = &r->addr;
    struct timeval tv = tv_of(a->timeout_ms);
    errno = 0;
    r->ctx = a->path ? redisConnectUnixWithTimeout(a->path, tv)
                     : redisConnectWithTimeout(a->host, a->port, tv);
    if (!r->ctx || r->ctx->err) {
        int saved = errno;
        char detail[160];
        sluice_err err = SLUICE_ENETWORK;
        if (!r->ctx) {
            sl_copy(detail, sizeof detail, "out of memory");
            err = SLUICE_ENOMEM;
        } else if (saved == ETIMEDOUT || saved == EINPROGRESS ||
                   strstr(r->ctx->errstr, "timed out")) {
            sl_fmt(detail, sizeof detail, "connect: no answer within %u s",
                   a->timeout_ms / 1000);
            err = SLUICE_ETIMEOUT;
        } else {
            /* hiredis says "Connection refused": strerror's words. */
            sl_fmt(detail, sizeof detail, "cannot connect: %s",
                   saved ? strerror(saved) : r->ctx->errstr);
        }
        drop(r);
        return fail(r, err, "%s: %s", a->where, detail);
    }
    if (redisSetTimeout(r->ctx, tv) != REDIS_OK)
        return io_fail(r, "set the timeout");
    sluice_err err = SLUICE_OK;
    if (a->password) {
        const char *auth[] = {"AUTH", a->user ? a->user : a->password,
                              a->password};
        err = setup_cmd(r, "AUTH", a->user ? 3 : 2, auth);
        if (err == SLUICE_EACCES)
            return fail(r, err,
                        "%s: wrong user name or password (AUTH "
                        "refused)",
                        a->where);
    }
    if (err == SLUICE_OK && a->db != 0) {
        char db[16];
        sl_fmt(db, sizeof db, "%d", a->db);
        const char *select[] = {"SELECT", db};
        err = setup_cmd(r, "SELECT", 2, select);
    }
    if (err == SLUICE_OK)
        err = read_run_id(r);
    if (err == SLUICE_EACCES)
        return fail(r, err,
                    "%s: Redis wants a password (give "
                    "redis://USER:PASSWORD@HOST:PORT)",
                    a->where);
    return err;
}

sluice_err
sl_redis_open(sl_redis *r, const char *location)
{
    char why[400];
    sluice_err err = sl_redis_parse(location, &r->addr, why, sizeof why);
    if (err != SLUICE_OK)
        return fail(r, err, "%s", why);
    return connect_now(r);
}

void
sl_redis_close(sl_redis *r)
{
    drop(r);
    sl_redis_addr_free(&r->addr);
}

/* Read and drop the answers to sl_redis_send, so that the next answer
 * read is the next command's. */
static sluice_err
drain(sl_redis *r, const char *what)
{
    while (r->ctx && r->unread > 0) {
        void *reply = NULL;
        sigpipe_guard g;
        sigpipe_block(&g);
        int rc = redisGetReply(r->ctx, &reply);
        int saved = errno;
        sigpipe_restore(&g);
        if (rc != REDIS_OK || !reply) {
            errno = saved;
            return io_fail(r, what);
        }
        freeReplyObject(reply);
        r->unread--;
    }
    return SLUICE_OK;
}

/* Connected, with no answer of an earlier command still to read. */
static sluice_err
ready(sl_redis *r, const char *what)
{
    if (!r->ctx)
        return connect_now(r);
    return drain(r, what);
}

/* A command; `what` names it in messages. */
static sluice_err
command(sl_redis *r, redisReply **out, int argc, const char **argv,
        const size_t *lens, const char *what)
{
    *out = NULL;
    sluice_err err;
    if ((err = ready(r, what)) != SLUICE_OK)
        return err;
    redisReply *reply = exchange(r->ctx, argc, argv, lens);
    if (!reply)
        return io_fail(r, what);
    if (reply->type == REDIS_REPLY_ERROR) {
        err = sl_redis_reply_error(r, reply, what);
        freeReplyObject(reply);
        return err;
    }
    *out = reply;
    return SLUICE_OK;
}

sluice_err
sl_redis_cmd(sl_redis *r, redisReply **out, int argc, const char **argv,
             const size_t *lens)
{
    return command(r, out, argc, argv, lens, argv[0]);
}

sluice_err
sl_redis_cmdf(sl_redis *r, redisReply **out, const char *fmt, ...)
{
    *out = NULL;
    sluice_err err;
    if ((err = ready(r, fmt)) != SLUICE_OK)
        return err;
    va_list ap;
    sigpipe_guard g;
    sigpipe_block(&g);
    va_start(ap, fmt);
    redisReply *reply = redisvCommand(r->ctx, fmt, ap);
    va_end(ap);
    int saved = errno;
    sigpipe_restore(&g);
    errno = saved;
    if (!reply)
        return io_fail(r, fmt);
    if (reply->type == REDIS_REPLY_ERROR) {
        err = sl_redis_reply_error(r, reply, fmt);
        freeReplyObject(reply);
        return err;
    }
    *out = reply;
    return SLUICE_OK;
}

static sluice_err
load_script(sl_redis *r, sl_redis_script *s)
{
    redisReply *reply;
    const char *argv[] = {"SCRIPT", "LOAD", s->text};
    sluice_err err = command(r, &reply, 3, argv, NULL, s->name);
    if (err != SLUICE_OK)
        return err;
    if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
        freeReplyObject(reply);
        return fail(r, SLUICE_EDB, "%s: SCRIPT LOAD %s: unexpected reply",
                    r->addr.where, s->name);
    }
    memcpy(s->sha, reply->str, 40);
    s->sha[40] = '\0';
    freeReplyObject(reply);
    return SLUICE_OK;
}

#define EVAL_ARGS_MAX 64

sluice_err
sl_redis_eval_keys(sl_redis *r, sl_redis_script *s, int n_keys,
                   const char *const *keys, redisReply **out, int argc,
                   const char **argv, const size_t *lens)
{
    const char *small[EVAL_ARGS_MAX];
    size_t small_lens[EVAL_ARGS_MAX];
    const char **args = small;
    size_t *arg_lens = small_lens;
    size_t total = 3 + (size_t)n_keys + (size_t)argc;
    char n_keys_text[16];
    sluice_err err = SLUICE_OK;
    *out = NULL;
    if (total > EVAL_ARGS_MAX) {
        args = sl_malloc(total * sizeof *args);
        arg_lens = sl_malloc(total * sizeof *arg_lens);
        if (!args || !arg_lens) {
            err = fail(r, SLUICE_ENOMEM, "out of memory");
            goto done;
        }
    }
    sl_fmt(n_keys_text, sizeof n_keys_text, "%d", n_keys);
    args[0] = "EVALSHA";
    args[2] = n_keys_text;
    arg_lens[0] = 7;
    arg_lens[1] = 40;
    arg_lens[2] = strlen(n_keys_text);
    for (int i = 0; i < n_keys; i++) {
        args[3 + i] = keys[i];
        arg_lens[3 + i] = strlen(keys[i]);
    }
    for (int i = 0; i < argc; i++) {
        args[3 + n_keys + i] = argv[i];
        arg_lens[3 + n_keys + i] = lens ? lens[i] : strlen(argv[i]);
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!s->sha[0] && (err = load_script(r, s)) != SLUICE_OK)
            break;
        args[1] = s->sha;
        err = command(r, out, (int)total, args, arg_lens, s->name);
        if (err != SLUICE_EDB || !strstr(r->errmsg, "NOSCRIPT"))
            break;
        s->sha[0] = '\0'; /* Redis restarted, or SCRIPT FLUSH: again */
    }
done:
    if (args != small) {
        sl_free(args);
        sl_free(arg_lens);
    }
    return err;
}

sluice_err
sl_redis_eval(sl_redis *r, sl_redis_script *s, const char *key,
              redisReply **out, int argc, const char **argv, const size_t *lens)
{
    return sl_redis_eval_keys(r, s, 1, &key, out, argc, argv, lens);
}

sluice_err
sl_redis_time_ms(sl_redis *r, int64_t *ms)
{
    redisReply *reply;
    sluice_err err = sl_redis_cmdf(r, &reply, "TIME");
    if (err != SLUICE_OK)
        return err;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        freeReplyObject(reply);
        return fail(r, SLUICE_EDB, "%s: TIME: unexpected reply", r->addr.where);
    }
    *ms = strtoll(reply->element[0]->str, NULL, 10) * 1000 +
          strtoll(reply->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(reply);
    return SLUICE_OK;
}

/* Commands a pipeline formats before it writes what it has. */
#define PIPELINE_FLUSH 256

/* Format n commands, writing as it goes, and with `all` until every
 * byte is written. */
static sluice_err
pipeline_out(sl_redis *r, size_t n, const sl_redis_cmdv *cmds, bool all,
             const char *what)
{
    sluice_err err;
    if ((err = ready(r, what)) != SLUICE_OK)
        return err;
    sigpipe_guard g;
    sigpipe_block(&g);
    bool oom = false;
    bool io_error = false;
    int done = 0;
    for (size_t i = 0; i < n && !oom && !io_error; i++) {
        oom = redisAppendCommandArgv(r->ctx, cmds[i].argc, cmds[i].argv,
                                     cmds[i].lens) != REDIS_OK;
        /* Send as we go, so that Redis works while the rest is made. */
        if (!oom && i % PIPELINE_FLUSH == PIPELINE_FLUSH - 1)
            io_error = redisBufferWrite(r->ctx, &done) != REDIS_OK;
    }
    done = 0;
    while (all && !oom && !io_error && !done)
        io_error = redisBufferWrite(r->ctx, &done) != REDIS_OK;
    int saved = errno;
    sigpipe_restore(&g);
    if (oom) {
        drop(r);
        return fail(r, SLUICE_ENOMEM, "%s: %s: out of memory", r->addr.where,
                    what);
    }
    if (io_error) {
        errno = saved;
        return io_fail(r, what);
    }
    return SLUICE_OK;
}

/* Read n replies (writing first whatever is left to write). */
static sluice_err
pipeline_in(sl_redis *r, size_t n, redisReply **replies, const char *what)
{
    sigpipe_guard g;
    sigpipe_block(&g);
    size_t got = 0;
    while (got < n) {
        void *reply = NULL;
        if (redisGetReply(r->ctx, &reply) != REDIS_OK || !reply)
            break;
        replies[got++] = reply;
    }
    int saved = errno;
    sigpipe_restore(&g);
    if (got == n)
        return SLUICE_OK;
    sl_redis_replies_free(replies, got);
    errno = saved;
    return io_fail(r, what);
}

sluice_err
sl_redis_pipeline(sl_redis *r, size_t n, const sl_redis_cmdv *cmds,
                  redisReply **replies, const char *what)
{
    for (size_t i = 0; i < n; i++)
        replies[i] = NULL;
    sluice_err err = pipeline_out(r, n, cmds, false, what);
    return err == SLUICE_OK ? pipeline_in(r, n, replies, what) : err;
}

sluice_err
sl_redis_pipeline_send(sl_redis *r, size_t n, const sl_redis_cmdv *cmds,
                       const char *what)
{
    return pipeline_out(r, n, cmds, true, what);
}

sluice_err
sl_redis_pipeline_recv(sl_redis *r, size_t n, redisReply **replies,
                       const char *what)
{
    for (size_t i = 0; i < n; i++)
        replies[i] = NULL;
    if (!r->ctx)
        return fail(r, SLUICE_ENETWORK, "%s: %s: not connected",
                    r->addr.where, what);
    return pipeline_in(r, n, replies, what);
}

sluice_err
sl_redis_send(sl_redis *r, int argc, const char **argv, const size_t *lens)
{
    if (!r->ctx)
        return fail(r, SLUICE_ENETWORK, "%s: %s: not connected",
                    r->addr.where, argv[0]);
    if (redisAppendCommandArgv(r->ctx, argc, argv, lens) != REDIS_OK) {
        drop(r);
        return fail(r, SLUICE_ENOMEM, "%s: %s: out of memory", r->addr.where,
                    argv[0]);
    }
    r->unread++;
    sigpipe_guard g;
    sigpipe_block(&g);
    int done = 0, rc = REDIS_OK;
    while (rc == REDIS_OK && !done)
        rc = redisBufferWrite(r->ctx, &done);
    int saved = errno;
    sigpipe_restore(&g);
    if (rc != REDIS_OK) {
        errno = saved;
        return io_fail(r, argv[0]);
    }
    return SLUICE_OK;
}

void
sl_redis_replies_free(struct redisReply **replies, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (replies[i])
            freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
}
