/*
 * sluice-origin: the HTTP/1.1 server that sluice's tests, demo and
 * benchmarks fetch from. This file is its start and end: the options,
 * the listener and its port file, the signals, and main(), which runs
 * the event loop (loop.c) until SIGTERM or SIGINT. See docs/test-origin.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "origin.h"

/* Split "HOST:PORT" or "[V6]:PORT" into host and port (NUL-terminated).
 * -1 when the form is wrong or a part does not fit. */
static int
split_listen(const char *spec, char *host, size_t host_cap, char *port,
             size_t port_cap)
{
    const char *host_start = spec, *host_end, *port_start;

    if (spec[0] == '[') {
        host_start = spec + 1;
        host_end = strchr(host_start, ']');
        if (host_end == NULL || host_end[1] != ':')
            return -1;
        port_start = host_end + 2;
    } else {
        host_end = strrchr(spec, ':');
        if (host_end == NULL)
            return -1;
        port_start = host_end + 1;
    }
    size_t host_len = (size_t)(host_end - host_start);
    size_t port_len = strlen(port_start);
    if (host_len == 0 || host_len >= host_cap || port_len == 0 ||
        port_len >= port_cap)
        return -1;
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
    memcpy(port, port_start, port_len + 1);
    return 0;
}

/* Bind and listen on spec; returns the socket, or exits: 2 when spec is
 * malformed, 1 (with the reason) when it cannot be bound. */
static int
open_listener(const char *spec)
{
    char host[256], port[16];
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *list;
    uint64_t port_number;
    int err, fd = -1, saved = 0;

    if (split_listen(spec, host, sizeof host, port, sizeof port) != 0 ||
        parse_u64(port, strlen(port), 65535, &port_number) != 0) {
        fprintf(stderr,
                "sluice-origin: --listen %s: expected ADDR:PORT or "
                "[V6ADDR]:PORT\n",
                spec);
        exit(2);
    }
    err = getaddrinfo(host, port, &hints, &list);
    if (err != 0)
        die("--listen %s: %s", spec, gai_strerror(err));
    for (struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
        int one = 1;

        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(list);
    if (fd < 0)
        die("--listen %s: %s", spec, strerror(saved));
    return fd;
}

/* Write "PORT\n" to path atomically: a temporary file, then rename. */
static void
write_port_file(const char *path, unsigned port)
{
    char tmp[4096], text[16];
    int len = snprintf(text, sizeof text, "%u\n", port);
    int fd;

    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >=
        (int)sizeof tmp)
        die("--port-file: path too long");
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("%s: %s", tmp, strerror(errno));
    if (write(fd, text, (size_t)len) != len || close(fd) != 0)
        die("%s: %s", tmp, strerror(errno));
    if (rename(tmp, path) != 0)
        die("%s: %s", path, strerror(errno));
}

/* Report the bound address; write the port file. */
static void
announce(struct origin *o)
{
    struct sockaddr_storage addr;
    socklen_t addr_len = sizeof addr;
    char host[NI_MAXHOST], port[NI_MAXSERV];
    uint64_t port_number;

    if (getsockname(o->listen_fd, (struct sockaddr *)&addr, &addr_len) != 0 ||
        getnameinfo((struct sockaddr *)&addr, addr_len, host, sizeof host, port,
                    sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0 ||
        parse_u64(port, strlen(port), 65535, &port_number) != 0)
        die("cannot tell the bound address");
    if (o->opt.port_file != NULL)
        write_port_file(o->opt.port_file, (unsigned)port_number);
    if (!o->opt.quiet)
        fprintf(stderr, "listening on %s%s%s:%s\n",
                addr.ss_family == AF_INET6 ? "[" : "", host,
                addr.ss_family == AF_INET6 ? "]" : "", port);
}

/* Take SIGTERM and SIGINT through a signalfd; ignore SIGPIPE. */
static int
open_signal_fd(void)
{
    sigset_t set;
    int fd;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
        die("sigprocmask: %s", strerror(errno));
    fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        die("signalfd: %s", strerror(errno));
    return fd;
}

/* Allow as many connections as the hard limit on descriptors does. */
static void
raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Close and free everything, so a leak checker sees a clean exit. */
static void
origin_free(struct origin *o)
{
    while (o->conns != NULL)
        conn_close(o, o->conns);
    free_graveyard(o);
    held_free_all(o);
    key_table_clear(&o->keys);
    free(o->log);
    timer_heap_free(&o->timers);
    free(o->sweep_fds);
    free(o->sweep_conns);
    free(o->text.data);
    free(o->bomb.data);
    close(o->listen_fd);
    close(o->signal_fd);
    close(o->epoll_fd);
}

static void
usage(FILE *to)
{
    fputs("usage: sluice-origin [--listen ADDR:PORT] [--port-file FILE]\n"
          "                     [--limit N] [--latency SPEC] [--seed S]\n"
          "                     [--size SPEC] [--hold-abandoned[=MS]]\n"
          "                     [--rate-limit N[/W]]\n"
          "                     [--ratelimit-headers[=ietf|draft|x|all]]\n"
          "                     [--quiet]\n"
          "  --listen    default 127.0.0.1:0 (an ephemeral port); "
          "[::1]:0 for IPv6\n"
          "  --port-file write the bound port there once listening\n"
          "  --limit     requests in flight allowed, 0 = no limit "
          "(default)\n"
          "  --latency   0 | fixed:MS | uniform:MIN_MS:MAX_MS |\n"
          "              lognormal:MEDIAN_MS:SIGMA (default 0)\n"
          "  --seed      seed of the latency draws (default 1)\n"
          "  --size      fixed:BYTES | uniform:MIN:MAX "
          "(default fixed:4096)\n"
          "  --hold-abandoned[=MS]\n"
          "              a request whose client left stays in flight until\n"
          "              its latency's end; a stalled, trickling or silent\n"
          "              one until MS ms after it left (default 0)\n"
          "  --rate-limit N[/W]\n"
          "              N /img requests per fixed window of W seconds\n"
          "              (default 1, at most 3 decimals); more: 429 at once\n"
          "  --ratelimit-headers[=ietf|draft|x|all]\n"
          "              with --rate-limit: describe the window in each /img\n"
          "              response, in these spellings (a comma list; all)\n"
          "Routes: /img/<n>[.ext][?fault=...], /_stats, /_log, /_reset,\n"
          "/_clock.\n"
          "See docs/test-origin.md.\n",
          to);
}

static void
parse_options(int argc, char **argv, struct options *opt)
{
    static const struct option longs[] = {
        {"listen", required_argument, NULL, 'l'},
        {"port-file", required_argument, NULL, 'p'},
        {"limit", required_argument, NULL, 'n'},
        {"latency", required_argument, NULL, 't'},
        {"seed", required_argument, NULL, 's'},
        {"size", required_argument, NULL, 'z'},
        {"hold-abandoned", optional_argument, NULL, 'a'},
        {"rate-limit", required_argument, NULL, 'r'},
        {"ratelimit-headers", optional_argument, NULL, 'H'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    opt->listen = "127.0.0.1:0";
    opt->seed = 1;
    opt->size.min = opt->size.max = 4096;
    while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        const char *bad = NULL;

        switch (ch) {
        case 'l':
            opt->listen = optarg;
            break;
        case 'p':
            opt->port_file = optarg;
            break;
        case 'n':
            if (parse_u64(optarg, strlen(optarg), UINT32_MAX, &opt->limit))
                bad = "--limit";
            break;
        case 't':
            if (parse_latency(optarg, &opt->latency) != 0)
                bad = "--latency";
            break;
        case 's':
            if (parse_u64(optarg, strlen(optarg), UINT64_MAX, &opt->seed))
                bad = "--seed";
            break;
        case 'z':
            if (sl_origin_size_parse(optarg, &opt->size) != 0)
                bad = "--size";
            break;
        case 'a':
            opt->hold_abandoned = true;
            if (optarg != NULL &&
                parse_u64(optarg, strlen(optarg), HOLD_MAX_MS, &opt->hold_ms))
                bad = "--hold-abandoned";
            break;
        case 'r':
            if (parse_rate_limit(optarg, &opt->rate) != 0)
                bad = "--rate-limit";
            break;
        case 'H':
            opt->rate.headers = RATE_HEADERS_ALL;
            if (optarg != NULL &&
                parse_ratelimit_headers(optarg, &opt->rate.headers) != 0)
                bad = "--ratelimit-headers";
            break;
        case 'q':
            opt->quiet = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
        if (bad != NULL) {
            fprintf(stderr, "sluice-origin: %s: bad value '%s'\n", bad, optarg);
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice-origin: unexpected argument '%s'\n",
                argv[optind]);
        usage(stderr);
        exit(2);
    }
    if (opt->rate.headers != 0 && opt->rate.quota == 0) {
        fputs("sluice-origin: --ratelimit-headers needs --rate-limit\n",
              stderr);
        usage(stderr);
        exit(2);
    }
}

int
main(int argc, char **argv)
{
    static struct origin origin; /* large (scratch): not on the stack */
    struct origin *o = &origin;

    parse_options(argc, argv, &o->opt);
    raise_fd_limit();
    o->start_ns = now_ns();
    o->have_pwait2 = true;
    o->signal_fd = open_signal_fd();
    o->listen_fd = open_listener(o->opt.listen);
    loop_open(o);
    announce(o);

    loop_run(o);

    if (!o->opt.quiet)
        fprintf(stderr,
                "sluice-origin: stopping: %" PRIu64 " requests, peak %" PRIu64
                " in flight, %" PRIu64 " violations\n",
                o->requests, o->peak_in_flight, o->violations);
    origin_free(o);
    return 0;
}
