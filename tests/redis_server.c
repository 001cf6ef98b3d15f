/*
 * The tests' own redis-server (redis_server.h).
 */
#define _GNU_SOURCE
#include "redis_server.h"

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "test.h"

static bool
installed(void)
{
    return access("/usr/bin/redis-server", X_OK) == 0 ||
           access("/usr/local/bin/redis-server", X_OK) == 0 ||
           system("command -v redis-server >/dev/null 2>&1") == 0;
}

static bool
answers(const char *sock)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectUnixWithTimeout(sock, tv);
    bool ok = false;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        /* PONG, or NOAUTH from one with a password: it is up. */
        ok = r && (r->type == REDIS_REPLY_STATUS ||
                   (r->type == REDIS_REPLY_ERROR && r->str &&
                    strncmp(r->str, "LOADING", 7) != 0));
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

pid_t
test_redis_start(char *location, size_t size, const char *const *extra)
{
    if (!installed())
        SKIP("redis-server is not installed (scripts/setup.sh test)");
    char cwd[200], sock[256];
    ASSERT_NOT_NULL(getcwd(cwd, sizeof cwd));
    snprintf(sock, sizeof sock, "%s/redis.sock", cwd);
    unlink(sock);
    const char *argv[32] = {"redis-server", "--port",   "0",
                            "--unixsocket", sock,       "--unixsocketperm",
                            "700",          "--dir",    cwd,
                            "--appendonly", "yes",      "--appendfsync",
                            "always",       "--save",   "",
                            "--logfile",    "redis.log"};
    int n = 17;
    for (int i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        if (answers(sock)) {
            snprintf(location, size, "unix://%s", sock);
            return pid;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            TEST_FAIL_("redis-server exited at start (see redis.log)");
        struct timespec ts = {0, 25 * 1000000};
        nanosleep(&ts, NULL);
    }
    TEST_FAIL_("redis-server did not answer within 5 s");
    return -1;
}

void
test_redis_kill(pid_t pid)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

long long
test_redis_int(const char *location, const char *cmd)
{
    redisContext *c = redisConnectUnix(location + 7);
    ASSERT(c && !c->err);
    redisReply *r = redisCommand(c, cmd);
    ASSERT_NOT_NULL(r);
    long long v = r->type == REDIS_REPLY_INTEGER  ? r->integer
                  : r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10)
                                                  : -1;
    freeReplyObject(r);
    redisFree(c);
    return v;
}
