/*
 * The fetcher (lib/run/fetch.c) against a small HTTP server of its own: the
 * socket of a kept-alive connection stays in the epoll set between
 * transfers (no epoll_ctl per transfer), a connection the server closes
 * while it idles is taken out of the set (no wake-up spin), and a socket
 * number reused after a close is watched again. Then HTTP/2 against nginx
 * over TLS: the streams of one connection share its socket and its entry
 * in the set, and one stream's end leaves the socket watched for the
 * others.
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

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
    test_listen_loopback(server_main, NULL, &srv.port, &srv.listen_fd);
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
    /* Watched with no callback: it only ends the wait. */
    int q[2];
    ASSERT_EQ(pipe(q), 0);
    ASSERT_EQ(sl_fetcher_watch(f, q[0], NULL, NULL), SLUICE_OK);
    ASSERT_EQ(write(q[1], "x", 1), 1);
    t0 = sl_mono_ms();
    sl_fetcher_run(f, 5000);
    ASSERT_LT(sl_mono_ms() - t0, 2000);
    sl_fetcher_free(f);
}

/* ---- HTTP/2: streams sharing a socket ---- */

/* Body bytes, per transfer: the owner is its counter. */
static bool
on_body_counted(void *owner, int status, const char *data, size_t len)
{
    (void)status;
    (void)data;
    *(size_t *)owner += len;
    return true;
}

#define SLOW_BYTES (192 * 1024) /* /slow: sent at 64 KiB/s, 2-3 s */

static bool
sh(const char *cmd)
{
    return system(cmd) == 0;
}

/*
 * nginx over TLS with http2 on 127.0.0.1, in this case's directory:
 * /fast answers BODY at once, /slow SLOW_BYTES at 64 KiB/s; each request
 * logs its connection's serial number and protocol to conn.log. The
 * certificate is signed by a CA made here (ca.pem). nginx dies with this
 * process. Skipped without nginx or openssl.
 */
static int
h2_server_start(void)
{
    const char *nginx = "/usr/sbin/nginx";
    if (access(nginx, X_OK) != 0)
        SKIP("nginx is not installed (scripts/setup.sh test)");
    if (!sh("command -v openssl >/dev/null"))
        SKIP("openssl is not installed (scripts/setup.sh test)");
    if (!sh("{ openssl req -x509 -newkey ec -pkeyopt "
            "ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem "
            "-days 2 -subj /CN=ca -addext basicConstraints=critical,CA:TRUE "
            "-addext keyUsage=critical,keyCertSign && "
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
            "-nodes -keyout server.key -out server.csr -subj /CN=localhost &&"
            " echo subjectAltName=IP:127.0.0.1 >server.ext && "
            "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
            "-CAcreateserial -days 2 -extfile server.ext -out server.pem; "
            "} >openssl.log 2>&1"))
        TEST_FAIL_("openssl could not make the certificates (openssl.log)");
    char dir[256], conf[8192];
    ASSERT_NOT_NULL(getcwd(dir, sizeof dir));
    char *slow = calloc(1, SLOW_BYTES);
    ASSERT_NOT_NULL(slow);
    test_write_file("slow", slow, SLOW_BYTES);
    free(slow);
    for (int tries = 0; tries < 8; tries++) {
        /* A port that was free a moment ago. */
        int probe_port;
        int probe = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        ASSERT_EQ(bind(probe, (struct sockaddr *)&a, sizeof a), 0);
        ASSERT_EQ(getsockname(probe, (struct sockaddr *)&a, &len), 0);
        probe_port = ntohs(a.sin_port);
        close(probe);
        snprintf(conf, sizeof conf,
                 "master_process off; daemon off; pid %s/nginx.pid;\n"
                 "error_log %s/error.log;\n"
                 "events { worker_connections 256; }\n"
                 "http {\n"
                 "  client_body_temp_path %s/body; proxy_temp_path %s/p;\n"
                 "  fastcgi_temp_path %s/f; uwsgi_temp_path %s/u;\n"
                 "  scgi_temp_path %s/s;\n"
                 "  log_format conn '$connection $server_protocol';\n"
                 "  access_log %s/conn.log conn;\n"
                 "  server {\n"
                 "    listen 127.0.0.1:%d ssl http2;\n"
                 "    ssl_certificate %s/server.pem;\n"
                 "    ssl_certificate_key %s/server.key;\n"
                 "    location = /fast { return 200 \"" BODY "\"; }\n"
                 "    location = /slow { root %s; limit_rate 64k; }\n"
                 "  }\n"
                 "}\n",
                 dir, dir, dir, dir, dir, dir, dir, dir, probe_port, dir, dir,
                 dir);
        test_write_str("nginx.conf", conf);
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            int log = open("nginx.stderr", O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (log >= 0)
                dup2(log, STDERR_FILENO);
            execl(nginx, "nginx", "-p", dir, "-c", "nginx.conf", (char *)NULL);
            _exit(127);
        }
        for (int waited = 0; waited < 100; waited++) {
            int s = socket(AF_INET, SOCK_STREAM, 0);
            a.sin_port = htons((uint16_t)probe_port);
            bool up = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
            close(s);
            if (up)
                return probe_port;
            if (waitpid(pid, NULL, WNOHANG) == pid)
                break; /* the port was taken meanwhile: another */
            usleep(50 * 1000);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    TEST_FAIL_("nginx did not start (nginx.stderr, error.log)");
}

static sl_fetcher *
h2_fetcher(void)
{
    sl_fetch_opts o = {
        .connect_timeout_ms = 5000,
        .timeout_ms = 10000,
        .stall_timeout_s = 10,
        .on_body = on_body_counted,
        .ca_file = "ca.pem",
    };
    sl_fetcher *f = NULL;
    ASSERT_EQ(sl_fetcher_new(&o, &f), SLUICE_OK);
    return f;
}

/* Run until `n` transfers have ended (10 s at most), each a 200. */
static void
h2_wait(sl_fetcher *f, int n)
{
    sl_fetch_result res;
    int64_t give_up = sl_mono_ms() + 10000;
    for (int ended = 0; ended < n;) {
        if (sl_mono_ms() > give_up)
            TEST_FAIL_("%d of %d transfers ended: a socket is unwatched",
                       ended, n);
        sl_fetcher_run(f, 20);
        while (sl_fetcher_next_done(f, &res)) {
            sl_free(res.location);
            if (res.error != SL_XFER_OK)
                TEST_FAIL_("transfer error %d: %s", (int)res.error,
                           res.error_text);
            ASSERT_EQ(res.http_status, 200);
            ended++;
        }
    }
}

/* The log's lines; its contents in *text (free it). */
static int
h2_log(char **text)
{
    size_t len = 0;
    *text = test_read_file("conn.log", &len);
    ASSERT_NOT_NULL(*text);
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += (*text)[i] == '\n';
    return lines;
}

/* The connections nginx served `requests` on, all of them HTTP/2. */
static int
h2_connections(int requests)
{
    char *log;
    /* nginx logs a request once it has sent the answer, maybe after the
     * client has read it. */
    for (int waited = 0; h2_log(&log) < requests && waited < 100; waited++) {
        free(log);
        usleep(20 * 1000);
    }
    long seen[64];
    int n_seen = 0, lines = 0;
    for (char *line = log; *line; lines++) {
        char *end = strchr(line, '\n');
        ASSERT_NOT_NULL(end);
        *end = '\0';
        char *proto = strchr(line, ' ');
        ASSERT_NOT_NULL(proto);
        ASSERT_STR_EQ(proto + 1, "HTTP/2.0");
        long conn = strtol(line, NULL, 10);
        bool known = false;
        for (int i = 0; i < n_seen; i++)
            known = known || seen[i] == conn;
        if (!known && n_seen < 64)
            seen[n_seen++] = conn;
        line = end + 1;
    }
    free(log);
    ASSERT_EQ(lines, requests);
    return n_seen;
}

TEST(http2_streams_share_one_socket_and_its_epoll_entry)
{
    int port = h2_server_start();
    sl_fetcher *f = h2_fetcher();
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/fast", port);
    size_t got[20];
    int calls_before = 0;
    for (int round = 0; round < 4; round++) {
        if (round == 1)
            calls_before = atomic_load(&epoll_ctl_calls);
        /* 20 at once: the first makes the connection, the others wait
         * for its handshake (CURLOPT_PIPEWAIT) and multiplex on it. */
        for (int i = 0; i < 20; i++) {
            got[i] = 0;
            ASSERT_NOT_NULL(sl_fetcher_start(f, url, &got[i]));
        }
        h2_wait(f, 20);
        for (int i = 0; i < 20; i++)
            ASSERT_EQ(got[i], strlen(BODY));
    }
    ASSERT_EQ(h2_connections(80), 1);
    /* The socket stayed in the set from round to round (0 calls in 60
     * transfers here): no removal and re-adding per stream, or per
     * round when the last stream of one ends. */
    ASSERT_LE(atomic_load(&epoll_ctl_calls) - calls_before, 2);
    sl_fetcher_free(f);
}

TEST(an_http2_stream_ending_leaves_its_socket_to_the_others)
{
    int port = h2_server_start();
    sl_fetcher *f = h2_fetcher();
    char fast[64], slow[64];
    snprintf(fast, sizeof fast, "https://127.0.0.1:%d/fast", port);
    snprintf(slow, sizeof slow, "https://127.0.0.1:%d/slow", port);
    size_t slow_got = 0, got[20] = {0};
    ASSERT_NOT_NULL(sl_fetcher_start(f, slow, &slow_got));
    /* Streams start and end beside the slow one, on its socket; none of
     * their ends may take the socket from it. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 10; i++)
            ASSERT_NOT_NULL(sl_fetcher_start(f, fast, &got[round * 10 + i]));
        h2_wait(f, 10);
        ASSERT_LT(slow_got, (size_t)SLOW_BYTES); /* still going */
    }
    h2_wait(f, 1);
    ASSERT_EQ(slow_got, (size_t)SLOW_BYTES);
    for (int i = 0; i < 20; i++)
        ASSERT_EQ(got[i], strlen(BODY));
    ASSERT_EQ(h2_connections(21), 1);
    sl_fetcher_free(f);
}
