/*
 * Runs the cases registered with TEST(): each in a forked child, in a new
 * temporary directory (removed afterwards), killed when its timeout
 * expires. `test_x [NAME...]` runs only the named cases; `--list` lists.
 */
#define _GNU_SOURCE
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#define MAX_TESTS 512

static struct {
    const char *name;
    test_fn *fn;
    unsigned timeout_s;
} tests[MAX_TESTS];
static int n_tests;

void
test_register(const char *name, test_fn *fn, unsigned timeout_s)
{
    if (n_tests == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        exit(2);
    }
    tests[n_tests].name = name;
    tests[n_tests].fn = fn;
    tests[n_tests].timeout_s = timeout_s;
    n_tests++;
}

int
test_skip_code(void)
{
    const char *strict = getenv("SLUICE_TEST_NO_SKIP");
    return strict && strcmp(strict, "1") == 0 ? 1 : 77;
}

void
test_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        TEST_FAIL_("cannot write %s: %s", path, strerror(errno));
}

void
test_write_str(const char *path, const char *text)
{
    test_write_file(path, text, strlen(text));
}

void
test_listen_loopback(void *(*serve)(void *), void *arg, int *port,
                     int *listen_fd)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ASSERT_EQ(listen(fd, 16), 0);
    socklen_t len = sizeof a;
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    *listen_fd = fd;
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, serve, arg), 0);
    pthread_detach(t);
}

char *
test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *bigger = realloc(buf, cap * 2 + 1);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static int
remove_entry(const char *path, const struct stat *sb, int flag,
             struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    /* Never chmod through a symlink: a test may plant one to /tmp. */
    if (flag != FTW_SL && flag != FTW_SLN)
        chmod(path, 0700);
    remove(path);
    return 0;
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 0 pass, 1 fail, 77 skip. */
static int
run_one(int i)
{
    char dir[] = "/tmp/sluice-test-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    double start = now_s();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        if (chdir(dir) != 0)
            _exit(1);
        alarm(tests[i].timeout_s);
        tests[i].fn();
        /* exit, not _exit: LeakSanitizer checks for leaks at exit. */
        exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    kill(-pid, SIGKILL); /* whatever the test left running */
    int rc;
    if (WIFEXITED(status)) {
        rc = WEXITSTATUS(status);
    } else {
        fprintf(stderr, "%s: killed by signal %d%s\n", tests[i].name,
                WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
        rc = 1;
    }
    if (getenv("SLUICE_TEST_KEEP") && rc != 0)
        fprintf(stderr, "%s: kept %s\n", tests[i].name, dir);
    else
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("%s %s (%.2fs)\n",
           rc == 0 ? "ok  " : rc == 77 ? "skip" : "FAIL", tests[i].name,
           now_s() - start);
    fflush(stdout);
    return rc == 0 ? 0 : rc == 77 ? 77 : 1;
}

int
main(int argc, char **argv)
{
    int failed = 0, skipped = 0, ran = 0;
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < n_tests; i++)
            printf("%s\n", tests[i].name);
        return 0;
    }
    for (int i = 0; i < n_tests; i++) {
        bool wanted = argc == 1;
        for (int a = 1; a < argc; a++)
            if (strcmp(argv[a], tests[i].name) == 0)
                wanted = true;
        if (!wanted)
            continue;
        ran++;
        int rc = run_one(i);
        failed += rc == 1;
        skipped += rc == 77;
    }
    printf("%d passed, %d failed, %d skipped\n", ran - failed - skipped,
           failed, skipped);
    if (ran == 0) {
        fprintf(stderr, "no test matched\n");
        return 1;
    }
    /* All skipped: tell ctest it was a skip, not a pass. */
    if (failed)
        return 1;
    return skipped == ran ? 77 : 0;
}
