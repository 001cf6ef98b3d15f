/*
 * The origin's event loop: one thread, one epoll set, sleeping until the
 * next event or timer. It accepts connections, hands their events to
 * conn.c (hang-ups first in each batch), fires due timers and stops on
 * SIGTERM or SIGINT.
 */
#define _GNU_SOURCE /* accept4, epoll_pwait2 */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "origin.h"

#define MAX_EVENTS   256               /* epoll events taken per wait */
#define ACCEPT_PAUSE (100 * NS_PER_MS) /* after EMFILE and friends */

/* Tags for the two non-connection descriptors in the epoll set. */
static char listener_tag;
static char signal_tag;

/*
 * Create the epoll set with the listener and the signalfd in it, tagged
 * so that loop_run() tells them from connections. Dies on failure.
 */
void
loop_open(struct origin *o)
{
    struct epoll_event ev;

    o->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (o->epoll_fd < 0)
        die("epoll_create1: %s", strerror(errno));
    ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = &listener_tag};
    if (epoll_ctl(o->epoll_fd, EPOLL_CTL_ADD, o->listen_fd, &ev) != 0)
        die("epoll_ctl: %s", strerror(errno));
    ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = &signal_tag};
    if (epoll_ctl(o->epoll_fd, EPOLL_CTL_ADD, o->signal_fd, &ev) != 0)
        die("epoll_ctl: %s", strerror(errno));
}

/* Accept every connection waiting on the listener. */
static void
accept_ready(struct origin *o)
{
    for (;;) {
        int fd =
            accept4(o->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                /* Out of descriptors: stop listening for a moment
                 * rather than spin on a listener that stays ready. */
                struct epoll_event ev = {.events = 0,
                                         .data.ptr = &listener_tag};

                epoll_ctl(o->epoll_fd, EPOLL_CTL_MOD, o->listen_fd, &ev);
                o->accept_paused_until = now_ns() + ACCEPT_PAUSE;
                if (!o->opt.quiet)
                    fprintf(stderr, "sluice-origin: accept: %s\n",
                            strerror(errno));
            }
            return;
        }
        conn_open(o, fd);
    }
}

static void
accept_resume(struct origin *o)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener_tag};

    o->accept_paused_until = 0;
    epoll_ctl(o->epoll_fd, EPOLL_CTL_MOD, o->listen_fd, &ev);
}

/* Fire every timer that is due: latencies end, lingering closes end,
 * held requests end. */
static void
run_timers(struct origin *o)
{
    uint64_t now = now_ns();
    struct timer *t;

    while ((t = timer_pop_due(&o->timers, now)) != NULL) {
        if (t->kind == TIMER_HELD) {
            held_end(o, t);
            continue;
        }
        struct conn *c = CONTAINER_OF(t, struct conn, timer);

        if (c->state == CONN_WAITING) {
            respond_img(o, c);
            process_input(o, c);
        } else if (c->state == CONN_TRICKLING) {
            trickle_next(o, c);
            process_input(o, c);
        } else if (c->state == CONN_CLOSING) {
            conn_close(o, c);
        }
    }
    if (o->accept_paused_until != 0 && o->accept_paused_until <= now)
        accept_resume(o);
}

/* The next timer's deadline, or UINT64_MAX when none is armed. */
static uint64_t
next_deadline(const struct origin *o)
{
    uint64_t next = timer_next(&o->timers);

    if (o->accept_paused_until != 0 && o->accept_paused_until < next)
        next = o->accept_paused_until;
    return next;
}

/*
 * Wait for events until the next deadline. epoll_pwait2 keeps timers to
 * the microsecond; where the kernel lacks it (before 5.11), epoll_wait
 * rounds the wait up to whole milliseconds, so timers fire up to 1 ms late.
 */
static int
wait_events(struct origin *o, struct epoll_event *events)
{
    uint64_t next = next_deadline(o);
    uint64_t now = next == UINT64_MAX ? 0 : now_ns();
    uint64_t wait_ns = next <= now ? 0 : next - now;

    if (o->have_pwait2) {
        struct timespec ts = {.tv_sec = (time_t)(wait_ns / 1000000000),
                              .tv_nsec = (long)(wait_ns % 1000000000)};
        int count = epoll_pwait2(o->epoll_fd, events, MAX_EVENTS,
                                 next == UINT64_MAX ? NULL : &ts, NULL);

        if (count >= 0 || errno != ENOSYS)
            return count;
        o->have_pwait2 = false;
    }
    int timeout_ms = -1;
    if (next != UINT64_MAX) {
        uint64_t ms = (wait_ns + NS_PER_MS - 1) / NS_PER_MS;

        timeout_ms = ms > INT_MAX ? INT_MAX : (int)ms;
    }
    return epoll_wait(o->epoll_fd, events, MAX_EVENTS, timeout_ms);
}

/*
 * The event loop, until SIGTERM or SIGINT. Each batch is handled in two
 * passes: hang-ups first, then everything else, so a request that ended
 * because its client left is out of in_flight before any new request in
 * the same batch is counted (unless --hold-abandoned holds it).
 */
void
loop_run(struct origin *o)
{
    struct epoll_event events[MAX_EVENTS];

    while (!o->stopping) {
        int count = wait_events(o, events);
        if (count < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < count; i++) {
            void *tag = events[i].data.ptr;

            if (tag == &listener_tag || tag == &signal_tag)
                continue;
            if (events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                conn_gone(o, tag);
                events[i].data.ptr = NULL;
            }
        }
        run_timers(o);
        for (int i = 0; i < count; i++) {
            void *tag = events[i].data.ptr;

            if (tag == NULL) {
                continue;
            } else if (tag == &listener_tag) {
                accept_ready(o);
            } else if (tag == &signal_tag) {
                struct signalfd_siginfo info;

                if (read(o->signal_fd, &info, sizeof info) > 0)
                    o->stopping = true;
            } else if (!((struct conn *)tag)->dead) {
                conn_event(o, tag, events[i].events);
            }
        }
        free_graveyard(o);
    }
}
