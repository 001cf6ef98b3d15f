/*
 * The fetcher (lib/run/fetch.c) against a small HTTP server of its own: the
 * socket of a kept-alive connection stays in the epoll set between
 * transfers (no epoll_ctl per transfer), a connection the server closes
 * while it idles is taken out of the set (no wake-up spin), and a socket
 * number reused after a close is watched again.
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "run/fetch.h"
#include "test.h"

#define BODY "hello"

/* ---- epoll_ctl, counted ---- */

static atomic_int epoll_ctl_calls;

/* The fetcher's epoll_ctl calls go through here: counted, then made. */
int
epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    static int (*real)(int, int, int, struct epoll_event *);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "epoll_ctl");
    atomic_fetch_add(&epoll_ctl_calls, 1);
    return real(epfd, op, fd, ev);
}

/* ---- the server: one connection at a time ---- */

static struct {
    int listen_fd;
    int port;
    bool close_each;     /* "Connection: close", and close */
    int idle_close_ms;   /* close a connection idle this long (0: never) */
    atomic_int accepted; /* connections */
    atomic_int served;   /* responses */
} srv;

/* Read one request head; false at EOF or on an error. */
static bool
read_request(int fd)
{
    char buf[4096];
    size_t have = 0;
    while (have < sizeof buf - 1) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0)
            return false;
        have += (size_t)n;
        buf[have] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            return true;
    }
    return false;
}

static void *
server_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(srv.listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        atomic_fetch_add(&srv.accepted, 1);
        for (;;) {
            if (srv.idle_close_ms > 0 && atomic_load(&srv.served) > 0) {
                struct pollfd p = {fd, POLLIN, 0};
                if (poll(&p, 1, srv.idle_close_ms) == 0)
                    break; /* idle too long: closed under the client */
            }
            if (!read_request(fd))
                break;
            char head[256];
            int n = snprintf(head, sizeof head,
                             "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n%s"
                             "\r\n" BODY,
                             strlen(BODY),
                             srv.close_each ? "Connection: close\r\n" : "");
            /* Counted before it is sent: the client may see the whole
             * response, and the test read the count, before this thread
             * runs again. */
            atomic_fetch_add(&srv.served, 1);
            ASSERT_EQ(write(fd, head, (size_t)n), n);
            if (srv.close_each)
                break;
        }
        close(fd);
    }
    return NULL;
}

static void
server_start(bool close_each, int idle_close_ms)
{
    srv.close_each = close_each;
    srv.idle_close_ms = idle_close_ms;
    srv.listen_fd = test_listen_loopback(server_main, NULL, &srv.port);
}

/* ---- the client ---- */

static size_t body_bytes;

static bool
on_body(void *owner, int status, const char *data, size_t len)
{
    (void)owner;
    (void)status;
    (void)data;
    body_bytes += len;
    return true;
}

static sl_fetcher *
fetcher(void)
{
    sl_fetch_opts o = {
        .connect_timeout_ms = 5000,
        .timeout_ms = 10000,
        .stall_timeout_s = 10,
        .on_body = on_body,
    };
    sl_fetcher *f = NULL;
    ASSERT_EQ(sl_fetcher_new(&o, &f), SLUICE_OK);
    return f;
}

/* Fetch one URL to the end; fails on anything but a 200 with BODY. */
static void
fetch_one(sl_fetcher *f)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", srv.port);
    body_bytes = 0;
    int owner;
    ASSERT_NOT_NULL(sl_fetcher_start(f, url, &owner));
    sl_fetch_result res;
    for (int turns = 0;; turns++) {
        if (turns > 500) /* 10 s */
            TEST_FAIL_("the transfer did not end: its socket is unwatched");
        sl_fetcher_run(f, 20);
        if (sl_fetcher_next_done(f, &res))
            break;
    }
    sl_free(res.location);
    ASSERT(res.owner == &owner);
    if (res.error != SL_XFER_OK)
        TEST_FAIL_("transfer error %d: %s", (int)res.error, res.error_text);
    ASSERT_EQ(res.http_status, 200);
    ASSERT_EQ(body_bytes, strlen(BODY));
}

/* ---- cases ---- */

TEST(a_kept_alive_socket_stays_in_the_epoll_set_between_transfers)
{
    server_start(false, 0);
    sl_fetcher *f = fetcher();
    fetch_one(f);
    int after_first = atomic_load(&epoll_ctl_calls);
    ASSERT_GE(after_first, 1); /* the socket was added */
    for (int i = 0; i < 20; i++)
        fetch_one(f);
    ASSERT_EQ(atomic_load(&srv.accepted), 1); /* one connection */
    ASSERT_EQ(atomic_load(&srv.served), 21);
    /* Removing it at each end and adding it back at each start would be
     * 40 calls. */
    ASSERT_LE(atomic_load(&epoll_ctl_calls) - after_first, 2);
    sl_fetcher_free(f);
}

TEST(an_idle_socket_the_server_closes_does_not_wake_the_loop)
{
    server_start(false, 50);
    sl_fetcher *f = fetcher();
    fetch_one(f);
    /* The server closes the idle connection after 50 ms; its socket is
     * readable (EOF) from then on. Left in the set, it would end every
     * wait at once. */
    int waits = 0;
    int64_t until = sl_mono_ms() + 400;
    while (sl_mono_ms() < until) {
        sl_fetcher_run(f, 20);
        waits++;
    }
    ASSERT_LE(waits, 40); /* ~20 waits of 20 ms; a spin is thousands */
    /* And the next transfer finds its way on a new connection. */
    fetch_one(f);
    ASSERT_EQ(atomic_load(&srv.accepted), 2);
    sl_fetcher_free(f);
}

TEST(a_socket_number_reused_after_a_close_is_watched)
{
    server_start(true, 0);
    sl_fetcher *f = fetcher();
    /* Each transfer closes its connection; the next one's socket gets
     * the number just freed, and must be watched afresh. */
    for (int i = 0; i < 10; i++)
        fetch_one(f);
    ASSERT_EQ(atomic_load(&srv.accepted), 10);
    ASSERT_EQ(atomic_load(&srv.served), 10);
    sl_fetcher_free(f);
}

/* ---- watched descriptors ---- */

static int woken[3];

static void
on_wake(void *arg, int fd)
{
    char drain[16];
    if (read(fd, drain, sizeof drain) < 0)
        TEST_FAIL_("read a watched pipe: %s", strerror(errno));
    woken[(intptr_t)arg]++;
}

TEST(any_number_of_watched_descriptors_wake_the_loop)
{
    server_start(false, 0);
    sl_fetcher *f = fetcher();
    int p[3][2];
    for (intptr_t i = 0; i < 3; i++) {
        ASSERT_EQ(pipe(p[i]), 0);
        ASSERT_EQ(sl_fetcher_watch(f, p[i][0], on_wake, (void *)i), SLUICE_OK);
    }
    /* One descriptor is watched once. */
    ASSERT_EQ(sl_fetcher_watch(f, p[0][0], on_wake, NULL), SLUICE_EINVAL);
    ASSERT_EQ(sl_fetcher_watch(f, -1, on_wake, NULL), SLUICE_EINVAL);
    ASSERT_EQ(write(p[1][1], "x", 1), 1);
    ASSERT_EQ(write(p[2][1], "x", 1), 1);
    int64_t t0 = sl_mono_ms();
    sl_fetcher_run(f, 5000);
    ASSERT_LT(sl_mono_ms() - t0, 2000); /* woken, not timed out */
    ASSERT_EQ(woken[0], 0);
    ASSERT_EQ(woken[1], 1);
    ASSERT_EQ(woken[2], 1);
    /* Unwatched: no call; watched again (its entry reused): called. */
    sl_fetcher_unwatch(f, p[1][0]);
    ASSERT_EQ(write(p[1][1], "x", 1), 1);
    sl_fetcher_run(f, 50);
    ASSERT_EQ(woken[1], 1);
    ASSERT_EQ(sl_fetcher_watch(f, p[1][0], on_wake, (void *)(intptr_t)1),
              SLUICE_OK);
    sl_fetcher_run(f, 50);
    ASSERT_EQ(woken[1], 2);
    /* Transfers go on beside them. */
    ASSERT_EQ(write(p[0][1], "x", 1), 1);
    fetch_one(f);
    ASSERT_EQ(woken[0], 1);
    sl_fetcher_free(f);
}
