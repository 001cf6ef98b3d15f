/*
 * The fetcher on libcurl's multi interface. Easy handles are pooled and
 * reused (they keep their options; connections and DNS answers are shared
 * through the multi handle). Redirects are not followed here: each hop is
 * a new request that the run loop must admit under its origin's cap. The
 * URL policy is applied to the resolved address of every connection, in
 * the open-socket callback. A reply that is not HTTP/1.x, or whose head
 * passes HEAD_MAX, is reported as CURLE_WEIRD_SERVER_REPLY (a protocol
 * error), whatever libcurl called it.
 *
 * Waiting is libcurl's socket interface on an epoll set: a wake-up costs
 * the sockets that are ready, not a scan of every transfer's socket (with
 * 64 transfers, curl_multi_poll() and curl_multi_perform() were a third
 * of the fetching thread's time).
 */
#include "fetch.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#define HEAD_MAX (256 * 1024) /* bytes of a response head, at most */

struct sl_transfer {
    CURL *easy;
    sl_fetcher *fetcher;
    void *owner;
    int status;        /* HTTP status, read at the first body byte */
    size_t head_bytes; /* of the response head, so far */
    bool head_too_large;
    char refused[128]; /* set by the open-socket callback */
    char error[CURL_ERROR_SIZE];
    sl_transfer *next_free;
};

struct sl_fetcher {
    CURLM *multi;
    int epoll_fd;      /* libcurl's sockets, and extra_fd */
    int extra_fd;      /* the caller's fd in epoll_fd, or -1 */
    int64_t timer_due; /* sl_mono_ms() when libcurl wants a call; -1: none */
    struct curl_slist *headers_identity; /* shared by every handle */
    sl_fetch_opts opts;
    sl_transfer *free_list;
    unsigned running;
};

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
    (void)data;
    t->head_bytes += len;
    if (t->head_bytes > HEAD_MAX) {
        t->head_too_large = true;
        return 0; /* CURLE_WRITE_ERROR, reported as a protocol error */
    }
    return len;
}

static curl_socket_t
on_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
    sl_transfer *t = arg;
    (void)purpose;
    const sl_guard *guard = t->fetcher->opts.guard;
    const char *why = guard ? sl_guard_check(guard, &addr->addr) : NULL;
    if (why) {
        sl_fmt(t->refused, sizeof t->refused, "%s address refused", why);
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC,
                  addr->protocol);
}

/* Watch socket `s` for what libcurl asks (or no longer). */
static int
on_socket(CURL *easy, curl_socket_t s, int what, void *arg, void *socketp)
{
    sl_fetcher *f = arg;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        /* Fails harmlessly when libcurl has closed the socket already. */
        epoll_ctl(f->epoll_fd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    struct epoll_event ev = {0};
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) |
                (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
    ev.data.fd = s;
    int op = socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(f->epoll_fd, op, s, &ev) != 0) {
        /* A socket number reused after a close that libcurl did not
         * report, or a registration dropped with a closed socket. */
        op = errno == EEXIST ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        if (epoll_ctl(f->epoll_fd, op, s, &ev) != 0)
            return -1; /* libcurl fails the transfer */
    }
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
    f->extra_fd = -1;
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
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* Environment proxies would bypass the URL policy's address check. */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "sluice/" "0.1");
    /* Bodies are stored as sent: ask for them unencoded. */
    f->headers_identity = f->headers_identity
                              ? f->headers_identity
                              : curl_slist_append(NULL,
                                                  "Accept-Encoding: identity");
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
    t->refused[0] = '\0';
    t->error[0] = '\0';
    curl_easy_setopt(t->easy, CURLOPT_URL, url);
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

/* Make `fd` the caller's fd in the epoll set (-1: none). */
static void
watch_extra(sl_fetcher *f, int fd)
{
    if (fd == f->extra_fd)
        return;
    if (f->extra_fd >= 0)
        epoll_ctl(f->epoll_fd, EPOLL_CTL_DEL, f->extra_fd, NULL);
    f->extra_fd = -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (fd >= 0 && epoll_ctl(f->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0)
        f->extra_fd = fd;
}

void
sl_fetcher_run(sl_fetcher *f, int timeout_ms, int extra_fd)
{
    struct epoll_event ev[64];
    int still = 0;
    watch_extra(f, extra_fd);
    if (extra_fd >= 0 && f->extra_fd != extra_fd)
        timeout_ms = SL_MIN(timeout_ms, 10); /* could not watch it: look */
    if (f->timer_due >= 0)
        timeout_ms =
            (int)SL_MIN(timeout_ms, SL_MAX(0, f->timer_due - sl_mono_ms()));
    int n = epoll_wait(f->epoll_fd, ev, 64, SL_MAX(timeout_ms, 0));
    for (int i = 0; i < n; i++) {
        if (ev[i].data.fd == f->extra_fd)
            continue; /* the caller's to read */
        int mask =
            (ev[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
            (ev[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
            (ev[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(f->multi, ev[i].data.fd, mask, &still);
    }
    if (f->timer_due >= 0 && sl_mono_ms() >= f->timer_due) {
        f->timer_due = -1; /* libcurl sets the next one */
        curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &still);
    }
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
    if (curl_easy_header(e, name, 0, CURLH_HEADER, -1, &h) == CURLHE_OK &&
        h && h->value)
        sl_fmt(dst, size, "%s", h->value);
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
        res->curl_code = (int)msg->data.result;
        const char *error =
            t->error[0] ? t->error : curl_easy_strerror(msg->data.result);
        if (t->head_too_large) {
            res->curl_code = CURLE_WEIRD_SERVER_REPLY;
            sl_fmt(res->curl_error, sizeof res->curl_error,
                   "response head larger than %d KiB", HEAD_MAX / 1024);
        } else if (res->curl_code == CURLE_UNSUPPORTED_PROTOCOL &&
                   is_web_url(t->easy)) {
            /* For an http(s) URL, libcurl says this of a reply that is
             * not HTTP/1.x: a malformed status line, or no status line
             * at all (HTTP/0.9). Not a redirect's scheme: those are
             * checked before a hop starts. */
            res->curl_code = CURLE_WEIRD_SERVER_REPLY;
            sl_fmt(res->curl_error, sizeof res->curl_error,
                   "malformed response: %s", error);
        } else {
            sl_fmt(res->curl_error, sizeof res->curl_error, "%s", error);
        }
        long code = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
        res->http_status = (int)code;
        curl_off_t cl = -1;
        curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        res->content_length = (int64_t)cl;
        char *ct = NULL;
        curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &ct);
        sl_fmt(res->content_type, sizeof res->content_type, "%s",
               ct ? ct : "");
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
        sl_fmt(res->refused, sizeof res->refused, "%s", t->refused);
        give_back(f, t);
        return true;
    }
    return false;
}

unsigned
sl_fetcher_running(const sl_fetcher *f)
{
    return f->running;
}
