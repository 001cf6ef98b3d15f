/*
 * sluice's unit-test harness (after libuv's test/task.h): TEST() registers
 * a case; harness.c runs each in its own process, in its own temporary
 * directory, with a timeout. Assertions print both sides when they fail.
 */
#ifndef SLUICE_TEST_H
#define SLUICE_TEST_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef void test_fn(void);
void test_register(const char *name, test_fn *fn, unsigned timeout_s);

/* A test case; runs in a fresh process with the temp dir as cwd. */
#define TEST_TIMEOUT(name, timeout_s)                                         \
    static void test_##name(void);                                            \
    __attribute__((constructor)) static void register_##name(void)            \
    {                                                                         \
        test_register(#name, test_##name, timeout_s);                         \
    }                                                                         \
    static void test_##name(void)
#define TEST(name) TEST_TIMEOUT(name, 60)

#define TEST_FAIL_(...)                                                       \
    do {                                                                      \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                       \
        fprintf(stderr, __VA_ARGS__);                                         \
        fputc('\n', stderr);                                                  \
        fflush(NULL);                                                         \
        _exit(1);                                                             \
    } while (0)

#define ASSERT(cond)                                                          \
    do {                                                                      \
        if (!(cond))                                                          \
            TEST_FAIL_("assertion failed: %s", #cond);                        \
    } while (0)

#define ASSERT_INT_OP_(a, op, b)                                              \
    do {                                                                      \
        long long a_ = (long long)(a), b_ = (long long)(b);                   \
        if (!(a_ op b_))                                                      \
            TEST_FAIL_("ASSERT(%s %s %s): %lld vs %lld", #a, #op, #b, a_,     \
                       b_);                                                   \
    } while (0)

#define ASSERT_EQ(a, b) ASSERT_INT_OP_(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_INT_OP_(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_INT_OP_(a, <, b)
#define ASSERT_LE(a, b) ASSERT_INT_OP_(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_INT_OP_(a, >, b)
#define ASSERT_GE(a, b) ASSERT_INT_OP_(a, >=, b)

#define ASSERT_STR_EQ(a, b)                                                   \
    do {                                                                      \
        const char *a_ = (a), *b_ = (b);                                      \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                \
            TEST_FAIL_("ASSERT_STR_EQ(%s, %s): \"%s\" vs \"%s\"", #a, #b,     \
                       a_ ? a_ : "(null)", b_ ? b_ : "(null)");               \
    } while (0)

#define ASSERT_STR_CONTAINS(hay, needle)                                      \
    do {                                                                      \
        const char *h_ = (hay), *n_ = (needle);                               \
        if (!h_ || !strstr(h_, n_))                                           \
            TEST_FAIL_("ASSERT_STR_CONTAINS(%s, %s): \"%s\" lacks \"%s\"",    \
                       #hay, #needle, h_ ? h_ : "(null)", n_);                \
    } while (0)

#define ASSERT_NULL(p)     ASSERT((p) == NULL)
#define ASSERT_NOT_NULL(p) ASSERT((p) != NULL)

/* Skip with a reason (exit 77). With SLUICE_TEST_NO_SKIP=1 it fails. */
#define SKIP(...)                                                             \
    do {                                                                      \
        fprintf(stderr, "SKIP: ");                                            \
        fprintf(stderr, __VA_ARGS__);                                         \
        fputc('\n', stderr);                                                  \
        fflush(NULL);                                                         \
        _exit(test_skip_code());                                              \
    } while (0)

int test_skip_code(void);

/* Helpers for tests: write a file, read a whole file (caller frees). */
void test_write_file(const char *path, const void *data, size_t len);
void test_write_str(const char *path, const char *text);
char *test_read_file(const char *path, size_t *len);

/* A TCP socket listening on 127.0.0.1 at a free port (*port), into
 * *fd, then a detached thread running serve(arg): the thread finds both
 * set (a thread that read *fd before it was set polled fd 0, and could
 * block in accept() on the socket, where a test that stops its server
 * and closes the socket found it still answering). */
void test_listen_loopback(void *(*serve)(void *), void *arg, int *port,
                          int *fd);

#endif /* SLUICE_TEST_H */
