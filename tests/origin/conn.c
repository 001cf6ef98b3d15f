/*
 * A connection's life in the origin: its epoll interest, reading request
 * heads into it, writing responses out of it (generated bodies included)
 * a budget at a time, and closing it: gracefully, with a reset, or when
 * its client has left. The event loop hands each connection's events here.
 */
#define _GNU_SOURCE /* POLLRDHUP */

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "origin.h"

#define LINGER_NS    (1000 * NS_PER_MS) /* drain before closing */
#define TRICKLE_NS   (1000 * NS_PER_MS) /* fault=trickle: a byte a second */
#define FLUSH_BUDGET (4u << 20) /* bytes written per turn to one socket */

/*
 * Take the accepted socket fd: a new connection, on the list of open
 * ones, waiting in epoll for its first request head (and for a hang-up),
 * counted in o->connections. Dies if epoll will not take it.
 */
void
conn_open(struct origin *o, int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = xcalloc(1, sizeof *c);
    c->fd = fd;
    c->state = CONN_READING;
    c->timer.heap_index = SIZE_MAX;
    c->timer.kind = TIMER_CONN;
    c->events = EPOLLIN | EPOLLRDHUP;
    struct epoll_event ev = {.events = c->events, .data.ptr = c};
    if (epoll_ctl(o->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0)
        die("epoll_ctl: %s", strerror(errno));
    c->next = o->conns;
    if (o->conns != NULL)
        o->conns->prev = c;
    o->conns = c;
    o->connections++;
}

void
conn_set_events(struct origin *o, struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};

    if (c->events == events)
        return;
    if (epoll_ctl(o->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        die("epoll_ctl: %s", strerror(errno));
    c->events = events;
}

/*
 * Close c, ending its request if one is in flight. c stays allocated
 * (marked dead, on the graveyard) until the current batch of events is
 * done, so events still queued for it are skipped, not misread.
 */
void
conn_close(struct origin *o, struct conn *c)
{
    if (c->dead)
        return;
    request_end(o, c);
    timer_cancel(&o->timers, &c->timer);
    close(c->fd);
    c->fd = -1;
    c->dead = true;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        o->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->grave_next = o->graveyard;
    o->graveyard = c;
}

/*
 * c's client has gone away (a hang-up, a reset, or it shut its sending
 * side): close c at once. Its request, if one is in flight, ends now,
 * unless request_hold() keeps it in flight after the close
 * (--hold-abandoned); either way no descriptor outlives this call.
 */
void
conn_gone(struct origin *o, struct conn *c)
{
    if (c->dead)
        return;
    request_hold(o, c);
    conn_close(o, c);
}

/* Close c with a reset (RST) instead of an orderly FIN. */
static void
conn_reset(struct origin *o, struct conn *c)
{
    struct linger lin = {.l_onoff = 1, .l_linger = 0};

    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
    conn_close(o, c);
}

void
free_graveyard(struct origin *o)
{
    while (o->graveyard != NULL) {
        struct conn *c = o->graveyard;

        o->graveyard = c->grave_next;
        free(c->out.data);
        free(c);
    }
}

/*
 * Close every connection with a request in flight whose client has gone
 * away but whose hang-up epoll has not reported yet (conn_gone(): the
 * request ends, or is held). Called only when a new request would breach
 * the limit, so a client that closed one connection and opened another
 * is never counted twice. O(connections).
 */
void
sweep_hangups(struct origin *o)
{
    size_t count = 0;

    for (struct conn *c = o->conns; c != NULL; c = c->next)
        if (c->req.active)
            count++;
    if (count > o->sweep_cap) {
        o->sweep_cap = count * 2;
        o->sweep_fds =
            xrealloc(o->sweep_fds, o->sweep_cap * sizeof *o->sweep_fds);
        o->sweep_conns =
            xrealloc(o->sweep_conns, o->sweep_cap * sizeof *o->sweep_conns);
    }
    count = 0;
    for (struct conn *c = o->conns; c != NULL; c = c->next) {
        if (!c->req.active)
            continue;
        o->sweep_fds[count].fd = c->fd;
        o->sweep_fds[count].events = POLLRDHUP;
        o->sweep_fds[count].revents = 0;
        o->sweep_conns[count++] = c;
    }
    if (count == 0 || poll(o->sweep_fds, count, 0) <= 0)
        return;
    for (size_t i = 0; i < count; i++)
        if (o->sweep_fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR))
            conn_gone(o, o->sweep_conns[i]);
}

/*
 * Write as much of c's response as the socket takes, up to FLUSH_BUDGET
 * bytes a call so that a client draining an endless body cannot starve
 * the others: c->out first, then the generated body. Returns 0 when all
 * of it is written, 1 when the socket is full or the budget spent (wait
 * for EPOLLOUT), -1 when the connection failed.
 */
static int
conn_flush(struct origin *o, struct conn *c)
{
    size_t budget = FLUSH_BUDGET;

    for (;;) {
        struct iovec iov[2];
        struct msghdr msg = {.msg_iov = iov};
        size_t out_left = c->out.len - c->out.sent;

        if (out_left > 0) {
            iov[msg.msg_iovlen].iov_base = c->out.data + c->out.sent;
            iov[msg.msg_iovlen++].iov_len = out_left;
        }
        if (c->body_off < c->body_end) {
            uint64_t left = c->body_end - c->body_off;
            size_t chunk = left < SCRATCH_SIZE ? (size_t)left : SCRATCH_SIZE;

            sl_origin_body_fill(c->body_n, c->body_off, o->scratch, chunk);
            iov[msg.msg_iovlen].iov_base = o->scratch;
            iov[msg.msg_iovlen++].iov_len = chunk;
        }
        if (msg.msg_iovlen == 0)
            return 0;
        if (budget == 0)
            return 1; /* epoll reports the socket writable again at once */
        ssize_t written = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (written < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 1;
            return -1;
        }
        size_t done = (size_t)written;
        size_t from_out = done < out_left ? done : out_left;
        c->out.sent += from_out;
        c->body_off += done - from_out;
        budget -= done < budget ? done : budget;
    }
}

/* The queued response is written: act on c->after. */
static void
response_done(struct origin *o, struct conn *c)
{
    switch (c->after) {
    case AFTER_RESET:
        conn_reset(o, c);
        return;
    case AFTER_STALL:
        /* The request stays in flight until the client leaves. */
        c->state = CONN_STALLED;
        conn_set_events(o, c, EPOLLRDHUP);
        return;
    case AFTER_TRICKLE:
        /* In flight, and only hang-ups matter, until the next byte. */
        c->state = CONN_TRICKLING;
        conn_set_events(o, c, EPOLLRDHUP);
        timer_arm(&o->timers, &c->timer, now_ns() + TRICKLE_NS);
        return;
    case AFTER_NEXT:
        break;
    }
    request_end(o, c);
    if (c->close_after) {
        /* Close gracefully: FIN first, then drain what the client still
         * sends, so unread input cannot turn our close into a reset that
         * destroys the response in flight. */
        shutdown(c->fd, SHUT_WR);
        c->state = CONN_CLOSING;
        conn_set_events(o, c, EPOLLIN | EPOLLRDHUP);
        timer_arm(&o->timers, &c->timer, now_ns() + LINGER_NS);
        return;
    }
    c->in_len -= c->head_len;
    memmove(c->in, c->in + c->head_len, c->in_len);
    c->head_len = 0;
    c->scan_from = 0;
    buf_clear(&c->out);
    c->state = CONN_READING;
    conn_set_events(o, c, EPOLLIN | EPOLLRDHUP);
}

/* Write the queued response; finish now or wait for the socket. */
void
conn_send(struct origin *o, struct conn *c)
{
    c->state = CONN_WRITING;
    int rc = conn_flush(o, c);
    if (rc < 0) {
        conn_close(o, c);
    } else if (rc > 0) {
        conn_set_events(o, c, EPOLLOUT | EPOLLRDHUP);
    } else {
        response_done(o, c);
    }
}

static void
conn_read(struct origin *o, struct conn *c)
{
    ssize_t got = recv(c->fd, c->in + c->in_len, HEAD_MAX - c->in_len, 0);

    if (got < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_close(o, c);
        return;
    }
    if (got == 0) {
        conn_close(o, c);
        return;
    }
    c->in_len += (size_t)got;
    process_input(o, c);
}

/* Discard input on a closing connection until the peer closes too. */
static void
conn_drain(struct origin *o, struct conn *c)
{
    for (;;) {
        ssize_t got = recv(c->fd, o->scratch, sizeof o->scratch, 0);

        if (got > 0)
            continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (got < 0 && errno == EINTR)
            continue;
        conn_close(o, c);
        return;
    }
}

void
conn_event(struct origin *o, struct conn *c, uint32_t events)
{
    switch (c->state) {
    case CONN_READING:
        if (events & EPOLLIN)
            conn_read(o, c);
        break;
    case CONN_WRITING:
        if (events & EPOLLOUT) {
            int rc = conn_flush(o, c);

            if (rc < 0) {
                conn_close(o, c);
            } else if (rc == 0) {
                response_done(o, c);
                process_input(o, c);
            }
        }
        break;
    case CONN_CLOSING:
        if (events & EPOLLIN)
            conn_drain(o, c);
        break;
    case CONN_WAITING:
    case CONN_STALLED:
    case CONN_TRICKLING:
        break; /* only hang-ups matter, and those came first */
    }
}
