/*
 * The fetcher on libcurl's multi interface. Easy handles are pooled and
 * reused (they keep their options; connections and DNS answers are shared
 * through the multi handle). Redirects are not followed here: each hop is
 * a new request that the run loop must admit under its origin's cap. The
 * URL policy is applied to the resolved address of every connection, in
 * the open-socket callback. A reply that is not HTTP/1.x or HTTP/2, or
 * whose head passes HEAD_MAX, is reported as CURLE_WEIRD_SERVER_REPLY (a
 * protocol error), whatever libcurl called it.
 *
 * https asks for HTTP/2 (ALPN) and waits for a connection that can
 * multiplex (CURLOPT_PIPEWAIT): the transfers that start while the first
 * connection to an origin is being made wait for its handshake, then
 * share it as streams, rather than each opening a connection of its own
 * (20 TLS handshakes for a cap of 20). An origin that answers ALPN with
 * HTTP/1.1 gets a connection per transfer, as before. Plain http stays
 * HTTP/1.1: waiting there would hold every transfer until the first
 * response told libcurl that the connection cannot multiplex. The cap
 * counts requests, so none of this changes what the run admits.
 *
 * The caller's descriptors (a store's wake pipe, later a queue's
 * connection or a listener) wait in the same epoll set, any number of
 * them, each with its callback (sl_fetcher_watch).
 *
 * Waiting is libcurl's socket interface on an epoll set: a wake-up costs
 * the sockets that are ready, not a scan of every transfer's socket (with
 * 64 transfers, curl_multi_poll() and curl_multi_perform() were a third
 * of the fetching thread's time). A connection's socket stays in the set
 * between its transfers: libcurl stops watching it each time a transfer
 * ends and watches it again when the next begins on it, and removing and
 * adding it back was 1.5 epoll_ctl calls a transfer, 5% of the fetching
 * thread. Such a socket is taken out only when it stirs while unwatched
 * (the server closed it, say), or when it is closed. A socket that HTTP/2
 * streams share is one socket to this bookkeeping: libcurl counts the
 * transfers that use it and says CURL_POLL_REMOVE only when the last of
 * them is done with it, so a stream's end never unwatches the others'.
 */
#define _GNU_SOURCE /* epoll_pwait2 */
#include "fetch.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#define HEAD_MAX (256 * 1024) /* bytes of a response head, at most */
/* HTTP/2 streams on one connection, at most; an origin whose cap is
 * larger gets a second connection. Servers allow 100 or more (nginx
 * 128), and libcurl keeps to the smaller of the two. */
#define STREAMS_MAX 100L

struct sl_transfer {
    CURL *easy;
    sl_fetcher *fetcher;
    void *owner;
    int status;        /* HTTP status, read at the first body byte */
    size_t head_bytes; /* of the response head, so far */
    bool head_too_large;
    sl_ratelimit_headers ratelimit; /* captured from the head */
    char refused[128]; /* set by the open-socket callback */
    char error[CURL_ERROR_SIZE];
    sl_transfer *next_free;
};

/* What the fetcher knows of a socket it opened (sl_fetcher.socks[fd]). */
enum {
    SOCK_OURS = 1,   /* opened by on_open_socket, not closed yet */
    SOCK_IN_SET = 2, /* in epoll_fd, with `events` below */
    SOCK_WANTED = 4, /* libcurl watches it */
    SOCK_READ = 8,   /* events: EPOLLIN */
    SOCK_WRITE = 16, /* events: EPOLLOUT */
    SOCK_EVENTS = SOCK_READ | SOCK_WRITE
};

/* A descriptor the caller watches (sl_fetcher_watch); fd -1: unused. */
typedef struct {
    int fd;
    sl_watch_fn *fn;
    void *arg;
} fd_watch;

/* In the epoll set, a watched descriptor's entry carries this bit and
 * its index in `watches`; a socket's carries the socket alone. */
#define WATCH_TAG (UINT64_C(1) << 32)
#define EVENTS_MAX 64 /* epoll events taken per wait */

struct sl_fetcher {
    CURLM *multi;
    int epoll_fd;   /* libcurl's sockets, and the watched descriptors */
    uint8_t *socks; /* SOCK_* by descriptor, for the sockets we opened */
    size_t n_socks;
    fd_watch *watches;
    size_t n_watches;
    struct epoll_event events[EVENTS_MAX]; /* from the last wait */
    int n_events;                          /* not dispatched yet */
    int64_t timer_due; /* sl_mono_ms() when libcurl wants a call; -1: none */
    struct curl_slist *headers_identity; /* shared by every handle */
    sl_fetch_opts opts;
    sl_transfer *free_list;
    unsigned running;
};

/* libcurl's pre-request callback: the connection is there, the request
 * about to be sent. */
static int
on_prereq(void *arg, char *conn_primary_ip, char *conn_local_ip,
          int conn_primary_port, int conn_local_port)
{
    sl_transfer *t = arg;
    (void)conn_primary_ip, (void)conn_local_ip;
    (void)conn_primary_port, (void)conn_local_port;
    t->fetcher->opts.on_sent(t->owner);
    return CURL_PREREQFUNC_OK;
}

static size_t
on_write(char *data, size_t size, size_t nmemb, void *arg)
{
    sl_transfer *t = arg;
    size_t len = size * nmemb;
    if (t->status == 0) {
        long code = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
        t->status = (int)code;
    }
    if (!t->fetcher->opts.on_body(t->owner, t->status, data, len))
        return 0; /* CURLE_WRITE_ERROR: the owner knows why */
    return len;
}

/*
 * Response head lines, counted so that a head of megabytes is refused at
 * HEAD_MAX, before libcurl's own limit (300 KB since 7.88.1 as patched
 * for CVE-2023-38039; none before, where every header is kept in memory).
 */
static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    sl_transfer *t = arg;
    size_t len = size * nmemb;
    t->head_bytes += len;
    if (t->head_bytes > HEAD_MAX) {
        t->head_too_large = true;
        return 0; /* CURLE_WRITE_ERROR, reported as a protocol error */
    }
    sl_ratelimit_capture(&t->ratelimit, data, len);
    return len;
}

/* The state of socket `s`; NULL when it is not one of ours. */
static uint8_t *
sock_of(sl_fetcher *f, curl_socket_t s)
{
    if (s < 0 || (size_t)s >= f->n_socks || !(f->socks[s] & SOCK_OURS))
        return NULL;
    return &f->socks[s];
}

static curl_socket_t
on_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
    sl_transfer *t = arg;
    sl_fetcher *f = t->fetcher;
    (void)purpose;
    const sl_guard *guard = f->opts.guard;
    const char *why = guard ? sl_guard_check(guard, &addr->addr) : NULL;
    if (why) {
        char ip[INET6_ADDRSTRLEN] = "?";
        const struct sockaddr *sa = &addr->addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
                      ip, sizeof ip);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6,
                      &((const struct sockaddr_in6 *)sa)->sin6_addr, ip,
                      sizeof ip);
        sl_fmt(t->refused, sizeof t->refused, "%s address %s refused", why,
               ip);
        return CURL_SOCKET_BAD;
    }
    int s = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    if (s < 0)
        return CURL_SOCKET_BAD;
    if ((size_t)s >= f->n_socks) {
        size_t n = SL_MAX((size_t)s + 1, f->n_socks * 2);
        uint8_t *grown = sl_realloc(f->socks, n);
        if (!grown)
            return s; /* watched the plain way: see on_socket */
        memset(grown + f->n_socks, 0, n - f->n_socks);
        f->socks = grown;
        f->n_socks = n;
    }
    f->socks[s] = SOCK_OURS; /* a new socket is in no epoll set */
    return s;
}

static int
on_close_socket(void *arg, curl_socket_t s)
{
    sl_fetcher *f = arg;
    uint8_t *st = sock_of(f, s);
    if (st)
        *st = 0; /* closing it takes it out of the epoll set */
    return close(s);
}

/* Add or change `s` in the epoll set; 0 or -1. */
static int
set_events(sl_fetcher *f, curl_socket_t s, uint32_t events, bool in_set)
{
    struct epoll_event ev = {.events = events, .data.u64 = (uint32_t)s};
    if (epoll_ctl(f->epoll_fd, in_set ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s,
                  &ev) == 0)
        return 0;
    /* A socket number reused after a close that libcurl did not report,
     * or a registration dropped with a closed socket. */
    int op = errno == EEXIST ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    return epoll_ctl(f->epoll_fd, op, s, &ev);
}

/* Watch socket `s` for what libcurl asks (or no longer). */
static int
on_socket(CURL *easy, curl_socket_t s, int what, void *arg, void *socketp)
{
    sl_fetcher *f = arg;
    (void)easy;
    uint8_t *st = sock_of(f, s);
    if (what == CURL_POLL_REMOVE) {
        if (st) /* stays in the set until it stirs or is closed */
            *st &= (uint8_t)~SOCK_WANTED;
        else /* fails harmlessly when libcurl has closed it already */
            epoll_ctl(f->epoll_fd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    uint8_t want = (uint8_t)((what & CURL_POLL_IN ? SOCK_READ : 0) |
                             (what & CURL_POLL_OUT ? SOCK_WRITE : 0));
    uint32_t events = (what & CURL_POLL_IN ? EPOLLIN : 0u) |
                      (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
    if (st) {
        if (!(*st & SOCK_IN_SET) || (*st & SOCK_EVENTS) != want) {
            if (set_events(f, s, events, *st & SOCK_IN_SET) != 0) {
                *st = SOCK_OURS;
                return -1; /* libcurl fails the transfer */
            }
        }
        *st = (uint8_t)(SOCK_OURS | SOCK_IN_SET | SOCK_WANTED | want);
        return 0;
    }
    /* Not opened by us (a resolver's): no word comes when it is closed,
     * so it is added and removed as libcurl says. */
    if (set_events(f, s, events, socketp != NULL) != 0)
        return -1;
    if (!socketp)
        curl_multi_assign(f->multi, s, f); /* any non-NULL: "registered" */
    return 0;
}

/* libcurl wants a call in timeout_ms (0: at once; -1: no longer). */
static int
on_timer(CURLM *multi, long timeout_ms, void *arg)
{
    sl_fetcher *f = arg;
    (void)multi;
    f->timer_due = timeout_ms < 0 ? -1 : sl_mono_ms() + timeout_ms;
    return 0;
}

sluice_err
sl_fetcher_new(const sl_fetch_opts *opts, sl_fetcher **out)
{
    sl_fetcher *f = sl_calloc(1, sizeof *f);
    *out = NULL;
    if (!f)
        return SLUICE_ENOMEM;
    f->opts = *opts;
    f->timer_due = -1;
    f->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    f->multi = f->epoll_fd >= 0 ? curl_multi_init() : NULL;
    if (!f->multi) {
        if (f->epoll_fd >= 0)
            close(f->epoll_fd);
        sl_free(f);
        return SLUICE_ENOMEM;
    }
    curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, 256L);
    /* HTTP/2 streams share a connection (libcurl's default, said here).
     * Connections per host are not limited: the cap bounds the requests,
     * so the connections, and a transfer queued inside libcurl for a
     * connection would hold its slot without being sent. */
    curl_multi_setopt(f->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(f->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, STREAMS_MAX);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    *out = f;
    return SLUICE_OK;
}

void
sl_fetcher_free(sl_fetcher *f)
{
    if (!f)
        return;
    sl_transfer *t = f->free_list;
    while (t) {
        sl_transfer *next = t->next_free;
        curl_easy_cleanup(t->easy);
        sl_free(t);
        t = next;
    }
    curl_multi_cleanup(f->multi);
    close(f->epoll_fd);
    curl_slist_free_all(f->headers_identity);
    sl_free(f->socks);
    sl_free(f->watches);
    sl_free(f);
}

/* A handle from the pool, or a new one with the options that never
 * change. */
static sl_transfer *
take_transfer(sl_fetcher *f)
{
    sl_transfer *t = f->free_list;
    if (t) {
        f->free_list = t->next_free;
        return t;
    }
    t = sl_calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->easy = curl_easy_init();
    if (!t->easy) {
        sl_free(t);
        return NULL;
    }
    t->fetcher = f;
    CURL *e = t->easy;
    const sl_fetch_opts *o = &f->opts;
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, f);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    if (o->on_sent) {
        curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
        curl_easy_setopt(e, CURLOPT_PREREQDATA, t);
    }
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* TLS verification stays on (DESIGN.md), whatever the defaults. */
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (o->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
    if (o->ca_path)
        curl_easy_setopt(e, CURLOPT_CAPATH, o->ca_path);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* Environment proxies would bypass the URL policy's address check. */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT,
                     "sluice/"
                     "0.1");
    /* Bodies are stored as sent: ask for them unencoded. */
    f->headers_identity =
        f->headers_identity
            ? f->headers_identity
            : curl_slist_append(NULL, "Accept-Encoding: identity");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->headers_identity);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, o->stall_timeout_s);
    if (o->max_bytes)
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                         (curl_off_t)o->max_bytes);
    return t;
}

sl_transfer *
sl_fetcher_start(sl_fetcher *f, const char *url, void *owner)
{
    sl_transfer *t = take_transfer(f);
    if (!t)
        return NULL;
    t->owner = owner;
    t->status = 0;
    t->head_bytes = 0;
    t->head_too_large = false;
    t->ratelimit.present = 0;
    t->refused[0] = '\0';
    t->error[0] = '\0';
    curl_easy_setopt(t->easy, CURLOPT_URL, url);
    /* HTTP/2 where ALPN offers it, waiting to multiplex; see the top. */
    bool tls = strncasecmp(url, "https://", 8) == 0;
    curl_easy_setopt(t->easy, CURLOPT_HTTP_VERSION,
                     tls ? (long)CURL_HTTP_VERSION_2TLS
                         : (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(t->easy, CURLOPT_PIPEWAIT, tls ? 1L : 0L);
    if (curl_multi_add_handle(f->multi, t->easy) != CURLM_OK) {
        t->next_free = f->free_list;
        f->free_list = t;
        return NULL;
    }
    f->running++;
    return t;
}

static void
give_back(sl_fetcher *f, sl_transfer *t)
{
    curl_multi_remove_handle(f->multi, t->easy);
    f->running--;
    t->owner = NULL;
    t->next_free = f->free_list;
    f->free_list = t;
}

void
sl_fetcher_abort(sl_fetcher *f, sl_transfer *t)
{
    give_back(f, t);
}

sluice_err
sl_fetcher_watch(sl_fetcher *f, int fd, sl_watch_fn *fn, void *arg)
{
    size_t i = f->n_watches; /* an unused entry, else a new one */
    for (size_t j = 0; j < f->n_watches; j++) {
        if (f->watches[j].fd == fd)
            return SLUICE_EINVAL;
        if (f->watches[j].fd < 0 && i == f->n_watches)
            i = j;
    }
    if (i == f->n_watches) {
        fd_watch *grown = sl_realloc(f->watches, (i + 1) * sizeof *grown);
        if (!grown)
            return SLUICE_ENOMEM;
        f->watches = grown;
        f->watches[i].fd = -1;
        f->n_watches++;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WATCH_TAG | i};
    if (fd < 0 || epoll_ctl(f->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        f->watches[i].fd = -1;
        return errno == ENOMEM ? SLUICE_ENOMEM : SLUICE_EINVAL;
    }
    f->watches[i] = (fd_watch){fd, fn, arg};
    return SLUICE_OK;
}

void
sl_fetcher_unwatch(sl_fetcher *f, int fd)
{
    for (size_t i = 0; i < f->n_watches; i++) {
        if (f->watches[i].fd == fd) {
            epoll_ctl(f->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
            f->watches[i].fd = -1;
        }
    }
}

void
sl_fetcher_wait(sl_fetcher *f, double timeout_ms)
{
    if (f->timer_due >= 0)
        timeout_ms = SL_MIN(timeout_ms,
                            (double)SL_MAX(0, f->timer_due - sl_mono_ms()));
    timeout_ms = SL_MAX(timeout_ms, 0);
    /* To the microsecond where the kernel can (Linux 5.11): a pace of
     * 100 requests a second loses a tenth of its rate to rounding up. */
    double whole_ms = floor(timeout_ms);
    struct timespec ts = {
        .tv_sec = (time_t)(whole_ms / 1000),
        .tv_nsec = (long)(fmod(whole_ms, 1000) * 1e6 +
                          (timeout_ms - whole_ms) * 1e6),
    };
    f->n_events = epoll_pwait2(f->epoll_fd, f->events, EVENTS_MAX, &ts, NULL);
    if (f->n_events < 0 && errno == ENOSYS)
        f->n_events = epoll_wait(f->epoll_fd, f->events, EVENTS_MAX,
                                 (int)ceil(timeout_ms));
}

void
sl_fetcher_dispatch(sl_fetcher *f)
{
    struct epoll_event *ev = f->events;
    int n = f->n_events, still = 0;
    f->n_events = 0;
    for (int i = 0; i < n; i++) {
        if (ev[i].data.u64 & WATCH_TAG) {
            size_t w = (size_t)(ev[i].data.u64 & ~WATCH_TAG);
            if (w < f->n_watches && f->watches[w].fd >= 0 &&
                f->watches[w].fn)
                f->watches[w].fn(f->watches[w].arg, f->watches[w].fd);
            continue;
        }
        int fd = (int)(uint32_t)ev[i].data.u64;
        uint8_t *st = sock_of(f, fd);
        if (st && !(*st & SOCK_WANTED)) {
            /* Idle between transfers, and stirring: out of the set,
             * until libcurl watches it again. */
            epoll_ctl(f->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
            *st = SOCK_OURS;
            continue;
        }
        /* A socket closed since the wait (its transfer aborted) is
         * unknown to libcurl now, which ignores it. */
        int mask = (ev[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                   (ev[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                   (ev[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR
                                                         : 0);
        curl_multi_socket_action(f->multi, fd, mask, &still);
    }
    if (f->timer_due >= 0 && sl_mono_ms() >= f->timer_due) {
        f->timer_due = -1; /* libcurl sets the next one */
        curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &still);
    }
}

void
sl_fetcher_run(sl_fetcher *f, double timeout_ms)
{
    sl_fetcher_wait(f, timeout_ms);
    sl_fetcher_dispatch(f);
}

/* Was the transfer's URL http or https? */
static bool
is_web_url(CURL *e)
{
    char *url = NULL;
    curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &url);
    return url && (strncasecmp(url, "http://", 7) == 0 ||
                   strncasecmp(url, "https://", 8) == 0);
}

static void
copy_header(CURL *e, const char *name, char *dst, size_t size)
{
    struct curl_header *h = NULL;
    dst[0] = '\0';
    if (curl_easy_header(e, name, 0, CURLH_HEADER, -1, &h) == CURLHE_OK && h &&
        h->value)
        sl_copy(dst, size, h->value);
}

bool
sl_fetcher_next_done(sl_fetcher *f, sl_fetch_result *res)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(f->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        sl_transfer *t = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        memset(res, 0, sizeof *res);
        res->owner = t->owner;
        CURLcode rc = msg->data.result;
        const char *error = t->error[0] ? t->error : curl_easy_strerror(rc);
        if (t->head_too_large) {
            rc = CURLE_WEIRD_SERVER_REPLY;
            sl_fmt(res->error_text, sizeof res->error_text,
                   "response head larger than %d KiB", HEAD_MAX / 1024);
        } else if (rc == CURLE_UNSUPPORTED_PROTOCOL && is_web_url(t->easy)) {
            /* For an http(s) URL, libcurl says this of a reply that is
             * not HTTP/1.x: a malformed status line, or no status line
             * at all (HTTP/0.9). Not a redirect's scheme: those are
             * checked before a hop starts. */
            rc = CURLE_WEIRD_SERVER_REPLY;
            sl_fmt(res->error_text, sizeof res->error_text,
                   "malformed response: %s", error);
        } else {
            sl_copy(res->error_text, sizeof res->error_text, error);
        }
        res->error = sl_fetch_error_of((int)rc);
        long code = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
        res->http_status = (int)code;
        curl_off_t cl = -1;
        curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        res->content_length = (int64_t)cl;
        char *ct = NULL;
        curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &ct);
        sl_copy(res->content_type, sizeof res->content_type, ct);
        if (code > 0) {
            copy_header(t->easy, "ETag", res->etag, sizeof res->etag);
            copy_header(t->easy, "Retry-After", res->retry_after,
                        sizeof res->retry_after);
            struct curl_header *h = NULL;
            if (curl_easy_header(t->easy, "Location", 0, CURLH_HEADER, -1,
                                 &h) == CURLHE_OK &&
                h && h->value)
                res->location = sl_strdup(h->value);
        }
        sl_copy(res->refused, sizeof res->refused, t->refused);
        curl_off_t first_byte = 0;
        if (code > 0 && curl_easy_getinfo(t->easy,
                                          CURLINFO_STARTTRANSFER_TIME_T,
                                          &first_byte) == CURLE_OK)
            res->latency_ms = (double)first_byte / 1000.0;
        if (t->ratelimit.present)
            res->ratelimit = t->ratelimit;
        give_back(f, t);
        return true;
    }
    return false;
}

sl_xfer_error
sl_fetch_error_of(int curl_code)
{
    switch ((CURLcode)curl_code) {
    case CURLE_OK:
        return SL_XFER_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return SL_XFER_TIMEOUT;
    case CURLE_PARTIAL_FILE:
        return SL_XFER_PARTIAL;
    case CURLE_FILESIZE_EXCEEDED:
        return SL_XFER_TOO_LARGE;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return SL_XFER_BAD_URL;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
        return SL_XFER_TLS;
    case CURLE_WEIRD_SERVER_REPLY:
        return SL_XFER_PROTOCOL;
    case CURLE_COULDNT_CONNECT:
        return SL_XFER_CONNECT;
    case CURLE_WRITE_ERROR: /* on_write returned short: the owner's call */
        return SL_XFER_ABORTED;
    default:
        return SL_XFER_NETWORK;
    }
}

unsigned
sl_fetcher_running(const sl_fetcher *f)
{
    return f->running;
}
