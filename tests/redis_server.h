/*
 * A redis-server of a test's own: started in the test's directory on a
 * unix socket, with AOF on (appendfsync always), killed with the test's
 * process group when the case ends (tests/harness.c).
 */
#ifndef SLUICE_TEST_REDIS_SERVER_H
#define SLUICE_TEST_REDIS_SERVER_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Start one in the current directory (./redis.sock, ./redis.log), with
 * the extra arguments `extra` (NULL-terminated; may be NULL), and wait
 * until it answers. Its location ("unix:///...redis.sock") goes into
 * location. Skips the test (77, or a failure under SLUICE_TEST_NO_SKIP=1)
 * when redis-server is not installed.
 */
pid_t test_redis_start(char *location, size_t size, const char *const *extra);

/* Stop it (SIGKILL) and wait for it. */
void test_redis_kill(pid_t pid);

/* A command's integer (or number-as-text) answer on the server at
 * `location` (a unix:// one); -1 for any other answer. */
long long test_redis_int(const char *location, const char *cmd);

#endif
