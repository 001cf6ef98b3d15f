/*
 * sluice-origin: the HTTP/1.1 server that sluice's tests, demo and
 * benchmarks fetch from. It counts the requests in flight, enforces a cap
 * and reports every breach, delays and breaks responses on request, and
 * keeps a log the tests read back. One thread, one epoll loop, a min-heap
 * of deadlines, no busy waiting. See docs/test-origin.md.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "body.h"

#define HEAD_MAX       16384   /* a longer request head is answered 431 */
#define MAX_EVENTS     256     /* epoll events taken per wait */
#define LOG_MAX        1000000 /* /_log entries kept; later ones dropped */
#define SCRATCH_SIZE   65536   /* body bytes generated per send */
#define TO_MAX         256     /* longest decoded to= base */
#define LATENCY_MAX_MS 3600000 /* every latency is clamped to an hour */
#define STATUS_MAX     600     /* statuses are below 600; 0 = none */
#define NS_PER_MS      ((uint64_t)1000000)
#define LINGER_NS      (1000 * NS_PER_MS) /* drain before closing */
#define ACCEPT_PAUSE   (100 * NS_PER_MS)  /* after EMFILE and friends */
#define TRICKLE_NS     (1000 * NS_PER_MS) /* fault=trickle: a byte a second */
#define FLUSH_BUDGET   (4u << 20)  /* bytes written per turn to one socket */
#define NO_LENGTH      UINT64_MAX  /* start_response(): no Content-Length */
#define JUNK_HEADERS   4096        /* fault=hugeheaders: X-Junk lines, */
#define JUNK_VALUE     1000        /* each with this much value: ~4 MiB */
#define BOMB_SIZE      (10u << 20) /* fault=gzipbomb: the inflated size */

/* ---- options ------------------------------------------------------------- */

enum latency_kind {
    LATENCY_NONE,
    LATENCY_FIXED,
    LATENCY_UNIFORM,
    LATENCY_LOGNORMAL,
};

struct latency {
    enum latency_kind kind;
    uint64_t min_ms; /* fixed: the latency; uniform: the bounds */
    uint64_t max_ms;
    double median_ms; /* lognormal */
    double sigma;
};

struct options {
    const char *listen;
    const char *port_file;
    uint64_t limit;
    uint64_t seed;
    struct latency latency;
    struct sl_origin_size size;
    bool quiet;
};

/* ---- requests and connections -------------------------------------------- */

enum fault_kind {
    FAULT_NONE,
    FAULT_STATUS,
    FAULT_FLAKY,
    FAULT_THROTTLE,
    FAULT_RESET,
    FAULT_STALL,
    FAULT_BADLEN,
    FAULT_REDIRECT,
    FAULT_LOOP,
    FAULT_TRICKLE,
    FAULT_ENDLESS,
    FAULT_HUGEHEADERS,
    FAULT_MANYREDIRECTS,
    FAULT_BADSTATUS,
    FAULT_GZIPBOMB,
    FAULT_SILENT,
};

/* The fault an /img request asked for in its query, with defaults. */
struct fault {
    enum fault_kind kind;
    uint64_t fails;       /* the first `fails` attempts misbehave */
    unsigned code;        /* 0: the fault's default status */
    uint64_t retry_after; /* seconds */
    bool date;            /* Retry-After as an HTTP-date */
    uint64_t hops;        /* redirects still to go */
    uint64_t hop;         /* fault=manyredirects: redirects so far */
    bool garbage;         /* fault=badstatus: no status line at all */
    char to[TO_MAX];      /* decoded base for redirects, "" for relative */
};

/* An interned path+query and how many requests named it. Keys are owned
 * by the key table and freed only by /_reset, so pointers stay valid. */
struct key {
    uint64_t hash;
    uint64_t attempts;
    size_t len;
    char text[];
};

struct key_table {
    struct key **slots; /* open addressing, linear probing */
    size_t cap;         /* a power of two, or 0 */
    size_t count;
};

struct log_entry {
    uint64_t n;
    uint64_t attempt;
    uint64_t start_ns;
    uint64_t end_ns;
    uint64_t latency_ms;
    uint64_t bytes_sent;
    const struct key *key;
    unsigned status;
};

/* The /img request in flight on a connection, if any. */
struct request {
    bool active;     /* counted in in_flight until it ends */
    unsigned epoch;  /* o->epoch at its start; see origin_reset() */
    unsigned status; /* the status sent, 0 until a head is queued */
    uint64_t n;
    uint64_t attempt;
    uint64_t size;       /* the object's true size */
    uint64_t latency_ms; /* what the origin applies before the head */
    uint64_t start_ns;
    const struct key *key;
    struct fault fault;
};

enum conn_state {
    CONN_READING,   /* waiting for (the rest of) a request head */
    CONN_WAITING,   /* an /img request waits out its latency */
    CONN_WRITING,   /* a response is being written */
    CONN_STALLED,   /* fault=stall, silent: silence until the client goes */
    CONN_TRICKLING, /* fault=trickle: the next byte waits for its timer */
    CONN_CLOSING,   /* our side is shut; draining until the peer closes */
};

/* What happens once the queued response has been written. */
enum after_write {
    AFTER_NEXT,    /* the request is done; next one, or close */
    AFTER_RESET,   /* reset the connection (fault=reset) */
    AFTER_STALL,   /* stall until the client leaves (fault=stall) */
    AFTER_TRICKLE, /* the next body byte in a second (fault=trickle) */
};

struct buf {
    char *data;
    size_t len;
    size_t cap;
    size_t sent; /* bytes of data already written to the socket */
};

struct conn {
    int fd;
    enum conn_state state;
    uint32_t events; /* registered with epoll */
    bool dead;       /* closed; freed after the current batch */
    bool head_only;  /* the current request is a HEAD */
    bool http10;
    bool keep_alive;  /* the client allows another request */
    bool close_after; /* close once the response is written */
    enum after_write after;
    size_t target_off; /* the current request's target, in in[] */
    size_t target_len;
    size_t path_len; /* the target up to '?' */
    size_t head_len; /* bytes of in[] the current request occupies */
    size_t in_len;
    size_t scan_from;  /* where to resume looking for the head's end */
    struct buf out;    /* head, and small bodies */
    size_t head_bytes; /* the head's share of out */
    uint64_t body_n;   /* generated body: object, next offset, end */
    uint64_t body_off;
    uint64_t body_end;
    struct request req;
    uint64_t deadline_ns;
    size_t heap_index; /* SIZE_MAX when not in the timer heap */
    struct conn *prev; /* every open connection */
    struct conn *next;
    struct conn *grave_next;
    char in[HEAD_MAX];
};

/* ---- the origin ---------------------------------------------------------- */

struct origin {
    struct options opt;
    int epoll_fd;
    int listen_fd;
    int signal_fd;
    bool stopping;
    bool have_pwait2; /* until the kernel says ENOSYS */
    uint64_t start_ns;
    uint64_t accept_paused_until; /* 0 while accepting */
    struct conn **heap;           /* min-heap on deadline_ns */
    size_t heap_len;
    size_t heap_cap;
    struct conn *conns;
    struct conn *graveyard;
    struct pollfd *sweep_fds;
    struct conn **sweep_conns;
    size_t sweep_cap;
    struct buf text; /* scratch for small bodies */
    struct buf bomb; /* fault=gzipbomb's body, made on first use */
    /* counters; /_reset zeroes them and bumps epoch */
    unsigned epoch;
    uint64_t requests;
    uint64_t in_flight;
    uint64_t peak_in_flight;
    uint64_t violations;
    uint64_t connections;
    uint64_t status_counts[STATUS_MAX];
    struct key_table keys;
    struct log_entry *log;
    size_t log_len;
    size_t log_cap;
    uint64_t log_dropped;
    unsigned char scratch[SCRATCH_SIZE];
};

/* Tags for the two non-connection descriptors in the epoll set. */
static char listener_tag;
static char signal_tag;

/* ---- small helpers ------------------------------------------------------- */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));

/* Print "sluice-origin: MESSAGE" to stderr and exit 1. */
static void
die(const char *fmt, ...)
{
    va_list ap;

    fputs("sluice-origin: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* realloc that never fails: a test server out of memory just stops. */
static void *
xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);

    if (p == NULL)
        die("out of memory");
    return p;
}

static void *
xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (p == NULL)
        die("out of memory");
    return p;
}

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Parse a decimal number filling [s, s + len) exactly and at most max. */
static int
parse_u64(const char *s, size_t len, uint64_t max, uint64_t *value)
{
    uint64_t v = 0;

    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned digit = (unsigned)(unsigned char)s[i] - '0';

        if (digit > 9 || digit > max || v > (max - digit) / 10)
            return -1;
        v = v * 10 + digit;
    }
    *value = v;
    return 0;
}

static bool
span_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(s, word, len) == 0;
}

static bool
is_alnum(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
           (ch >= 'A' && ch <= 'Z');
}

/* Make room for extra more bytes after b->len. */
static void
buf_reserve(struct buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

static void
buf_append(struct buf *b, const void *data, size_t len)
{
    buf_reserve(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int len;

    va_start(ap, fmt);
    len = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (len < 0)
        die("vsnprintf failed");
    if ((size_t)len >= b->cap - b->len) {
        buf_reserve(b, (size_t)len + 1);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)len;
}

/* Empty b for the next response; a buffer grown by /_log is given back. */
static void
buf_clear(struct buf *b)
{
    if (b->cap > 65536) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
    b->len = 0;
    b->sent = 0;
}

/* ---- latency ------------------------------------------------------------- */

/* A uniform double in [0, 1) from the top 53 bits of h. */
static double
unit_interval(uint64_t h)
{
    return (double)(h >> 11) * 0x1p-53;
}

/*
 * The latency of attempt `attempt` at object n: a pure function of the
 * spec, the seed, n and attempt, so a run can be replayed exactly and
 * retries of one object need not be as slow as its first try.
 */
static uint64_t
latency_for(const struct latency *l, uint64_t seed, uint64_t n,
            uint64_t attempt)
{
    uint64_t h =
        sl_origin_mix64(seed ^ sl_origin_mix64(n ^ sl_origin_mix64(attempt)));

    switch (l->kind) {
    case LATENCY_NONE:
        return 0;
    case LATENCY_FIXED:
        return l->min_ms;
    case LATENCY_UNIFORM:
        return l->min_ms + h % (l->max_ms - l->min_ms + 1);
    case LATENCY_LOGNORMAL: {
        /* Box-Muller: a standard normal z from two uniforms. */
        double u1 = 1.0 - unit_interval(h); /* (0, 1] */
        double u2 = unit_interval(sl_origin_mix64(h));
        double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
        double ms = l->median_ms * exp(l->sigma * z);

        if (!(ms < LATENCY_MAX_MS)) /* also catches NaN */
            return LATENCY_MAX_MS;
        return (uint64_t)(ms + 0.5);
    }
    }
    return 0;
}

/* Parse a non-negative finite double filling s exactly. */
static int
parse_double(const char *s, const char *end, double *value)
{
    char text[64];
    char *stop;
    size_t len = (size_t)(end - s);

    if (len == 0 || len >= sizeof text)
        return -1;
    memcpy(text, s, len);
    text[len] = '\0';
    errno = 0;
    *value = strtod(text, &stop);
    if (errno != 0 || *stop != '\0' || !(*value >= 0) || isinf(*value))
        return -1;
    return 0;
}

static int
parse_latency(const char *spec, struct latency *l)
{
    const char *end = spec + strlen(spec);
    const char *colon;

    memset(l, 0, sizeof *l);
    if (strcmp(spec, "0") == 0) {
        l->kind = LATENCY_NONE;
        return 0;
    }
    if (strncmp(spec, "fixed:", 6) == 0) {
        l->kind = LATENCY_FIXED;
        if (parse_u64(spec + 6, (size_t)(end - spec - 6), LATENCY_MAX_MS,
                      &l->min_ms) != 0)
            return -1;
        l->max_ms = l->min_ms;
        return 0;
    }
    if (strncmp(spec, "uniform:", 8) == 0) {
        l->kind = LATENCY_UNIFORM;
        colon = strchr(spec + 8, ':');
        if (colon == NULL ||
            parse_u64(spec + 8, (size_t)(colon - spec - 8), LATENCY_MAX_MS,
                      &l->min_ms) != 0 ||
            parse_u64(colon + 1, (size_t)(end - colon - 1), LATENCY_MAX_MS,
                      &l->max_ms) != 0 ||
            l->min_ms > l->max_ms)
            return -1;
        return 0;
    }
    if (strncmp(spec, "lognormal:", 10) == 0) {
        l->kind = LATENCY_LOGNORMAL;
        colon = strchr(spec + 10, ':');
        if (colon == NULL ||
            parse_double(spec + 10, colon, &l->median_ms) != 0 ||
            parse_double(colon + 1, end, &l->sigma) != 0)
            return -1;
        return 0;
    }
    return -1;
}

/* ---- attempt counts ------------------------------------------------------ */

static uint64_t
hash_text(const char *text, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)text[i];
        h *= 0x100000001b3ULL;
    }
    return sl_origin_mix64(h);
}

static void
key_table_grow(struct key_table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    struct key **slots = xcalloc(cap, sizeof *slots);

    for (size_t i = 0; i < t->cap; i++) {
        struct key *k = t->slots[i];

        if (k == NULL)
            continue;
        size_t j = (size_t)k->hash & (cap - 1);
        while (slots[j] != NULL)
            j = (j + 1) & (cap - 1);
        slots[j] = k;
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
}

/* The key for text, created with zero attempts on first sight. O(len). */
static struct key *
key_intern(struct key_table *t, const char *text, size_t len)
{
    uint64_t hash = hash_text(text, len);

    if ((t->count + 1) * 2 > t->cap)
        key_table_grow(t);
    size_t i = (size_t)hash & (t->cap - 1);
    for (; t->slots[i] != NULL; i = (i + 1) & (t->cap - 1)) {
        struct key *k = t->slots[i];

        if (k->hash == hash && k->len == len && memcmp(k->text, text, len) == 0)
            return k;
    }
    struct key *k = xrealloc(NULL, sizeof *k + len + 1);
    k->hash = hash;
    k->attempts = 0;
    k->len = len;
    memcpy(k->text, text, len);
    k->text[len] = '\0';
    t->slots[i] = k;
    t->count++;
    return k;
}

static void
key_table_clear(struct key_table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i]);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

/* ---- the timer heap ------------------------------------------------------ */

static void
heap_set(struct origin *o, size_t i, struct conn *c)
{
    o->heap[i] = c;
    c->heap_index = i;
}

static void
heap_sift_up(struct origin *o, size_t i)
{
    struct conn *c = o->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (o->heap[parent]->deadline_ns <= c->deadline_ns)
            break;
        heap_set(o, i, o->heap[parent]);
        i = parent;
    }
    heap_set(o, i, c);
}

static void
heap_sift_down(struct origin *o, size_t i)
{
    struct conn *c = o->heap[i];

    for (;;) {
        size_t child = 2 * i + 1;

        if (child >= o->heap_len)
            break;
        if (child + 1 < o->heap_len &&
            o->heap[child + 1]->deadline_ns < o->heap[child]->deadline_ns)
            child++;
        if (c->deadline_ns <= o->heap[child]->deadline_ns)
            break;
        heap_set(o, i, o->heap[child]);
        i = child;
    }
    heap_set(o, i, c);
}

/* Arm c's timer for deadline (absolute, CLOCK_MONOTONIC ns). O(log n). */
static void
timer_arm(struct origin *o, struct conn *c, uint64_t deadline)
{
    if (o->heap_len == o->heap_cap) {
        o->heap_cap = o->heap_cap ? o->heap_cap * 2 : 64;
        o->heap = xrealloc(o->heap, o->heap_cap * sizeof *o->heap);
    }
    c->deadline_ns = deadline;
    heap_set(o, o->heap_len++, c);
    heap_sift_up(o, c->heap_index);
}

/* Disarm c's timer if it has one. O(log n). */
static void
timer_cancel(struct origin *o, struct conn *c)
{
    size_t i = c->heap_index;

    if (i == SIZE_MAX)
        return;
    c->heap_index = SIZE_MAX;
    o->heap_len--;
    if (i == o->heap_len)
        return;
    heap_set(o, i, o->heap[o->heap_len]);
    heap_sift_up(o, i);
    heap_sift_down(o, o->heap[i]->heap_index);
}

/* ---- accounting ---------------------------------------------------------- */

static void
log_append(struct origin *o, const struct request *r, uint64_t bytes_sent,
           uint64_t end_ns)
{
    if (o->log_len == LOG_MAX) {
        o->log_dropped++;
        return;
    }
    if (o->log_len == o->log_cap) {
        o->log_cap = o->log_cap ? o->log_cap * 2 : 1024;
        if (o->log_cap > LOG_MAX)
            o->log_cap = LOG_MAX;
        o->log = xrealloc(o->log, o->log_cap * sizeof *o->log);
    }
    struct log_entry *e = &o->log[o->log_len++];
    e->n = r->n;
    e->attempt = r->attempt;
    e->start_ns = r->start_ns - o->start_ns;
    e->end_ns = end_ns - o->start_ns;
    e->latency_ms = r->latency_ms;
    e->bytes_sent = bytes_sent;
    e->key = r->key;
    e->status = r->status;
}

/* Body bytes of the current response written so far. */
static uint64_t
body_bytes_sent(const struct conn *c)
{
    uint64_t from_out =
        c->out.sent > c->head_bytes ? c->out.sent - c->head_bytes : 0;

    return from_out + c->body_off;
}

/*
 * End c's /img request, if one is in flight: it leaves in_flight, and
 * unless a /_reset came since it started, it is counted under its status
 * and logged. Called exactly once per request, when its response is
 * fully written or its connection closes, whichever comes first.
 */
static void
request_end(struct origin *o, struct conn *c)
{
    struct request *r = &c->req;

    if (!r->active)
        return;
    r->active = false;
    o->in_flight--;
    if (r->epoch != o->epoch)
        return;
    o->status_counts[r->status]++;
    log_append(o, r, body_bytes_sent(c), now_ns());
}

/* ---- connections --------------------------------------------------------- */

static void
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
static void
conn_close(struct origin *o, struct conn *c)
{
    if (c->dead)
        return;
    request_end(o, c);
    timer_cancel(o, c);
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

/* Close c with a reset (RST) instead of an orderly FIN. */
static void
conn_reset(struct origin *o, struct conn *c)
{
    struct linger lin = {.l_onoff = 1, .l_linger = 0};

    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
    conn_close(o, c);
}

static void
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
 * End any in-flight request whose client has gone away but whose
 * hang-up epoll has not reported yet. Called only when a new request
 * would breach the limit, so a client that closed one connection and
 * opened another is never counted twice. O(connections).
 */
static void
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
            conn_close(o, o->sweep_conns[i]);
}

/* ---- fault=gzipbomb ------------------------------------------------------ */

/* Bits in deflate's order: packed into bytes from the least significant
 * bit up (RFC 1951, 3.1.1). */
struct bit_writer {
    struct buf *out;
    unsigned acc;
    unsigned count;
};

/* Append the low `count` bits of value, least significant first: how
 * deflate stores header fields and extra bits. */
static void
bits_put(struct bit_writer *w, unsigned value, unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        w->acc |= ((value >> i) & 1u) << w->count;
        if (++w->count == 8) {
            unsigned char byte = (unsigned char)w->acc;

            buf_append(w->out, &byte, 1);
            w->acc = 0;
            w->count = 0;
        }
    }
}

/* Append a Huffman code of len bits, most significant bit first. */
static void
bits_code(struct bit_writer *w, unsigned code, unsigned len)
{
    for (unsigned i = len; i-- > 0;)
        bits_put(w, (code >> i) & 1u, 1);
}

static void
put_le32(struct buf *b, uint32_t v)
{
    unsigned char bytes[4] = {(unsigned char)v, (unsigned char)(v >> 8),
                              (unsigned char)(v >> 16),
                              (unsigned char)(v >> 24)};

    buf_append(b, bytes, sizeof bytes);
}

/* The CRC-32 (gzip's, reflected 0xEDB88320) of len zero bytes. */
static uint32_t
crc32_of_zeros(uint64_t len)
{
    uint32_t table[256];
    uint32_t crc = 0xffffffffu;

    for (uint32_t i = 0; i < 256; i++) {
        uint32_t v = i;

        for (int k = 0; k < 8; k++)
            v = v & 1 ? 0xedb88320u ^ (v >> 1) : v >> 1;
        table[i] = v;
    }
    for (uint64_t i = 0; i < len; i++)
        crc = table[crc & 0xff] ^ (crc >> 8);
    return crc ^ 0xffffffffu;
}

/*
 * fault=gzipbomb's body, made on first use: a gzip member (RFC 1952)
 * whose one deflate block inflates to BOMB_SIZE zero bytes, 1026 times
 * its own size (10,223 bytes). It is a dynamic-Huffman block with the
 * three symbols it needs: literal 0 (2 bits), end of block (2 bits), and
 * length 258 (1 bit) with distance 1 (1 bit), so each 258 zeros cost two
 * bits. No zlib: the codes are few enough to write out by hand.
 */
static const struct buf *
gzip_bomb(struct origin *o)
{
    /* The order code length code lengths are sent in (RFC 1951, 3.2.7). */
    static const unsigned char order[19] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                            11, 4,  12, 3, 13, 2, 14, 1, 15};
    static const unsigned char head[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    struct buf *b = &o->bomb;
    struct bit_writer w = {.out = b};

    if (b->len > 0)
        return b;
    buf_append(b, head, sizeof head); /* deflate, no name, no mtime, Unix */
    bits_put(&w, 1, 1);               /* BFINAL: the last block */
    bits_put(&w, 2, 2);               /* BTYPE: dynamic Huffman codes */
    bits_put(&w, 286 - 257, 5);       /* HLIT: literal/length codes 0..285 */
    bits_put(&w, 2 - 1, 5);           /* HDIST: distance codes 0..1 */
    bits_put(&w, 18 - 4, 4);          /* HCLEN: up to order[17], which is 1 */
    /* The code length code: 18 (a run of zeros) is "0", 1 is "10" and
     * 2 is "11". */
    for (int i = 0; i < 18; i++) {
        unsigned sym = order[i];

        bits_put(&w, sym == 18 ? 1 : sym == 1 || sym == 2 ? 2 : 0, 3);
    }
    /* The literal/length code lengths: 0 -> 2, 1..255 none, 256 -> 2,
     * 257..284 none, 285 -> 1; then the distance code lengths: 0 -> 1,
     * 1 -> 1 (unused; it makes the code complete). */
    bits_code(&w, 3, 2);
    bits_code(&w, 0, 1);
    bits_put(&w, 138 - 11, 7);
    bits_code(&w, 0, 1);
    bits_put(&w, 117 - 11, 7);
    bits_code(&w, 3, 2);
    bits_code(&w, 0, 1);
    bits_put(&w, 28 - 11, 7);
    bits_code(&w, 2, 2);
    bits_code(&w, 2, 2);
    bits_code(&w, 2, 2);
    /* The data, in the canonical codes those lengths give: 285 is "0",
     * literal 0 "10", end of block "11"; distance code 0 is "0". */
    uint64_t left = BOMB_SIZE - 1;
    bits_code(&w, 2, 2); /* one zero byte */
    for (; left >= 258; left -= 258) {
        bits_code(&w, 0, 1); /* 258 bytes copied from ... */
        bits_code(&w, 0, 1); /* ... 1 byte back: 258 more zeros */
    }
    for (; left > 0; left--)
        bits_code(&w, 2, 2);
    bits_code(&w, 3, 2);
    if (w.count > 0)
        bits_put(&w, 0, 8 - w.count);
    put_le32(b, crc32_of_zeros(BOMB_SIZE));
    put_le32(b, BOMB_SIZE); /* ISIZE: the size modulo 2^32 */
    return b;
}

/* ---- responses ----------------------------------------------------------- */

static const struct {
    unsigned status;
    const char *reason;
} reasons[] = {
    {200, "OK"},
    {204, "No Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {410, "Gone"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

static const char *
reason_phrase(unsigned status)
{
    for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Status";
}

static bool
status_has_body(unsigned status)
{
    return status >= 200 && status != 204 && status != 304;
}

/*
 * Queue the head of a response on c->out (replacing whatever was there):
 * the status line, Content-Type when given, Content-Length when the
 * status allows a body and content_length is not NO_LENGTH (the body then
 * ends with the connection), extra (whole CRLF-terminated lines, or NULL)
 * and Connection when it is not HTTP/1.1's default. Resets the body and
 * the after-write action; the caller adds a body and calls conn_send().
 */
static void
start_response(struct conn *c, unsigned status, const char *content_type,
               uint64_t content_length, const char *extra)
{
    buf_clear(&c->out);
    buf_printf(&c->out, "HTTP/1.1 %u %s\r\n", status, reason_phrase(status));
    if (content_type != NULL)
        buf_printf(&c->out, "Content-Type: %s\r\n", content_type);
    if (status_has_body(status) && content_length != NO_LENGTH)
        buf_printf(&c->out, "Content-Length: %" PRIu64 "\r\n", content_length);
    if (extra != NULL)
        buf_append(&c->out, extra, strlen(extra));
    if (c->close_after)
        buf_printf(&c->out, "Connection: close\r\n");
    else if (c->http10)
        buf_printf(&c->out, "Connection: keep-alive\r\n");
    buf_append(&c->out, "\r\n", 2);
    c->head_bytes = c->out.len;
    c->body_off = 0;
    c->body_end = 0;
    c->after = AFTER_NEXT;
    if (c->req.active)
        c->req.status = status;
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
        timer_arm(o, c, now_ns() + TRICKLE_NS);
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
        timer_arm(o, c, now_ns() + LINGER_NS);
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
static void
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

/* A response with a short text/plain body (not sent for HEAD). */
static void
send_text(struct origin *o, struct conn *c, unsigned status, const char *extra,
          const char *text)
{
    size_t len = status_has_body(status) ? strlen(text) : 0;

    start_response(c, status, "text/plain", len, extra);
    if (!c->head_only)
        buf_append(&c->out, text, len);
    conn_send(o, c);
}

/* An error that ends the connection: the request may be unreadable. */
static void
send_error(struct origin *o, struct conn *c, unsigned status, const char *text)
{
    c->close_after = true;
    send_text(o, c, status, NULL, text);
}

/* Queue the head of an /img 200 and a generated body of body_bytes. */
static void
start_image(struct conn *c, uint64_t content_length, uint64_t body_bytes)
{
    char etag[80];

    snprintf(etag, sizeof etag, "ETag: \"%" PRIu64 "-%" PRIu64 "\"\r\n",
             c->req.n, c->req.size);
    start_response(c, 200, "image/jpeg", content_length, etag);
    c->body_n = c->req.n;
    c->body_end = c->head_only ? 0 : body_bytes;
}

static void
send_throttle(struct origin *o, struct conn *c)
{
    const struct fault *f = &c->req.fault;
    char extra[160];

    if (f->date) {
        char when[64], now_text[64];
        time_t now = time(NULL);
        time_t then = now + (time_t)f->retry_after;
        struct tm tm;

        strftime(now_text, sizeof now_text, "%a, %d %b %Y %H:%M:%S GMT",
                 gmtime_r(&now, &tm));
        strftime(when, sizeof when, "%a, %d %b %Y %H:%M:%S GMT",
                 gmtime_r(&then, &tm));
        snprintf(extra, sizeof extra, "Date: %s\r\nRetry-After: %s\r\n",
                 now_text, when);
    } else {
        snprintf(extra, sizeof extra, "Retry-After: %" PRIu64 "\r\n",
                 f->retry_after);
    }
    unsigned code = f->code ? f->code : 429;
    send_text(o, c, code, extra, reason_phrase(code));
}

/*
 * 302 to the same object, keeping the other parameters as they came:
 * fault=redirect with hops - 1, fault=manyredirects with hop + 1 (a new
 * URL every time, so only a hop limit stops a client), relative or under
 * the to= base when one was given. fault=loop: 302 to exactly the
 * request's own target.
 */
static void
send_redirect(struct origin *o, struct conn *c)
{
    const struct fault *f = &c->req.fault;
    const char *target = c->in + c->target_off;
    struct buf *h = &o->text;

    buf_clear(h);
    buf_printf(h, "Location: ");
    if (f->kind == FAULT_LOOP) {
        buf_append(h, target, c->target_len);
    } else {
        bool onward = f->kind == FAULT_MANYREDIRECTS;
        const char *name = onward ? "hop=" : "hops=";
        size_t name_len = strlen(name);
        uint64_t value = onward ? f->hop + 1 : f->hops - 1;
        const char *q = target + c->path_len + 1;
        const char *end = target + c->target_len;
        bool have_counter = false, first = true;

        buf_printf(h, "%s", f->to);
        buf_append(h, target, c->path_len);
        buf_append(h, "?", 1);
        while (q < end) {
            const char *amp = memchr(q, '&', (size_t)(end - q));
            const char *param_end = amp ? amp : end;

            if (!first)
                buf_append(h, "&", 1);
            first = false;
            if ((size_t)(param_end - q) >= name_len &&
                memcmp(q, name, name_len) == 0) {
                buf_printf(h, "%s%" PRIu64, name, value);
                have_counter = true;
            } else {
                buf_append(h, q, (size_t)(param_end - q));
            }
            q = param_end + 1;
        }
        if (!have_counter)
            buf_printf(h, "%s%s%" PRIu64, first ? "" : "&", name, value);
    }
    buf_append(h, "\r\n", 3); /* with the NUL start_response() reads */
    send_text(o, c, 302, h->data, "redirect");
}

/* Add whole CRLF-terminated header lines to the head start_response()
 * just queued, before its empty line (no body may be queued yet). */
static void
head_add(struct conn *c, const char *lines)
{
    c->out.len -= 2;
    buf_append(&c->out, lines, strlen(lines));
    buf_append(&c->out, "\r\n", 2);
    c->head_bytes = c->out.len;
}

/* fault=hugeheaders: JUNK_HEADERS lines of X-Junk-<i> added to the head
 * just queued, about 4 MiB of it, before the body. */
static void
head_add_junk(struct conn *c)
{
    struct buf *b = &c->out;

    b->len -= 2;
    buf_reserve(b, (size_t)JUNK_HEADERS * (JUNK_VALUE + 24) + 2);
    for (unsigned i = 0; i < JUNK_HEADERS; i++) {
        buf_printf(b, "X-Junk-%u: ", i);
        memset(b->data + b->len, 'j', JUNK_VALUE);
        b->len += JUNK_VALUE;
        buf_append(b, "\r\n", 2);
    }
    buf_append(b, "\r\n", 2);
    c->head_bytes = b->len;
}

/*
 * fault=badstatus: a response whose status line is not one ("HTTP/1.1
 * abc Bogus"), or with garbage=1 bytes that are not HTTP at all, then
 * close. No status is sent, so the request is counted under status 0.
 */
static void
send_bad_status(struct origin *o, struct conn *c)
{
    static const char bogus[] = "HTTP/1.1 abc Bogus\r\n"
                                "Content-Type: text/plain\r\n"
                                "Content-Length: 5\r\n"
                                "Connection: close\r\n\r\n";
    static const char garbage[] = "\x16\x03\x01\xde\xad\xbe\xef not HTTP "
                                  "\x80\xff\x01\r\n\r\n";

    buf_clear(&c->out);
    if (c->req.fault.garbage) {
        buf_append(&c->out, garbage, sizeof garbage - 1);
        c->head_bytes = c->out.len;
    } else {
        buf_append(&c->out, bogus, sizeof bogus - 1);
        c->head_bytes = c->out.len;
        if (!c->head_only)
            buf_append(&c->out, "bogus", 5);
    }
    c->body_off = 0;
    c->body_end = 0;
    c->after = AFTER_NEXT;
    c->close_after = true;
    conn_send(o, c);
}

/* fault=trickle: queue the next byte of the body; after it, the request
 * ends or the next byte waits a second (response_done()). */
static void
trickle_next(struct origin *o, struct conn *c)
{
    c->body_end = c->body_off + 1;
    if (c->body_end >= c->req.size)
        c->after = AFTER_NEXT;
    conn_send(o, c);
}

/*
 * Answer c's /img request, its latency over: the fault it asked for, or
 * else the object. Faults that fail "the first K" compare K with the
 * request's attempt number.
 */
static void
respond_img(struct origin *o, struct conn *c)
{
    const struct request *r = &c->req;
    const struct fault *f = &r->fault;
    bool failing = r->attempt <= f->fails;

    switch (f->kind) {
    case FAULT_NONE:
        break;
    case FAULT_STATUS:
        send_text(o, c, f->code ? f->code : 500, NULL,
                  reason_phrase(f->code ? f->code : 500));
        return;
    case FAULT_FLAKY:
        if (!failing)
            break;
        send_text(o, c, f->code ? f->code : 500, NULL,
                  reason_phrase(f->code ? f->code : 500));
        return;
    case FAULT_THROTTLE:
        if (!failing)
            break;
        send_throttle(o, c);
        return;
    case FAULT_RESET:
        if (!failing)
            break;
        start_image(c, r->size, r->size / 2);
        c->after = AFTER_RESET;
        conn_send(o, c);
        return;
    case FAULT_STALL:
        if (!failing)
            break;
        start_image(c, r->size, r->size / 4);
        c->after = AFTER_STALL;
        conn_send(o, c);
        return;
    case FAULT_BADLEN:
        if (!failing)
            break;
        start_image(c, r->size + 100, r->size);
        c->close_after = true; /* after the head, which promises more */
        conn_send(o, c);
        return;
    case FAULT_REDIRECT:
        if (f->hops == 0)
            break;
        send_redirect(o, c);
        return;
    case FAULT_LOOP:
    case FAULT_MANYREDIRECTS:
        send_redirect(o, c);
        return;
    case FAULT_TRICKLE:
        start_image(c, r->size, 0);
        if (!c->head_only && r->size > 0)
            c->after = AFTER_TRICKLE;
        conn_send(o, c);
        return;
    case FAULT_ENDLESS:
        c->close_after = true; /* the body ends only with the connection */
        start_image(c, NO_LENGTH, UINT64_MAX);
        conn_send(o, c);
        return;
    case FAULT_HUGEHEADERS:
        start_image(c, r->size, r->size);
        head_add_junk(c);
        conn_send(o, c);
        return;
    case FAULT_BADSTATUS:
        send_bad_status(o, c);
        return;
    case FAULT_GZIPBOMB: {
        const struct buf *bomb = gzip_bomb(o);

        start_image(c, bomb->len, 0);
        head_add(c, "Content-Encoding: gzip\r\n");
        if (!c->head_only)
            buf_append(&c->out, bomb->data, bomb->len);
        conn_send(o, c);
        return;
    }
    case FAULT_SILENT:
        /* In flight, unanswered, until the client leaves. */
        c->state = CONN_STALLED;
        conn_set_events(o, c, EPOLLRDHUP);
        return;
    }
    start_image(c, r->size, r->size);
    conn_send(o, c);
}

/* ---- the control routes -------------------------------------------------- */

static void
send_stats(struct origin *o, struct conn *c)
{
    struct buf *t = &o->text;
    bool first = true;

    buf_clear(t);
    buf_printf(t,
               "{\"requests\":%" PRIu64 ",\"in_flight\":%" PRIu64
               ",\"peak_in_flight\":%" PRIu64 ",\"violations\":%" PRIu64
               ",\"connections\":%" PRIu64 ",\"status\":{",
               o->requests, o->in_flight, o->peak_in_flight, o->violations,
               o->connections);
    for (unsigned s = 0; s < STATUS_MAX; s++) {
        if (o->status_counts[s] == 0)
            continue;
        buf_printf(t, "%s\"%u\":%" PRIu64, first ? "" : ",", s,
                   o->status_counts[s]);
        first = false;
    }
    buf_printf(t, "},\"log_dropped\":%" PRIu64 "}\n", o->log_dropped);
    start_response(c, 200, "application/json", t->len, NULL);
    if (!c->head_only)
        buf_append(&c->out, t->data, t->len);
    conn_send(o, c);
}

static size_t
decimal_digits(uint64_t v)
{
    size_t digits = 1;

    while (v >= 10) {
        v /= 10;
        digits++;
    }
    return digits;
}

/* The length of e's /_log line, computed without formatting it. */
static size_t
log_line_length(const struct log_entry *e)
{
    return decimal_digits(e->n) + decimal_digits(e->attempt) +
           decimal_digits(e->start_ns / NS_PER_MS) +
           decimal_digits(e->end_ns / NS_PER_MS) +
           decimal_digits(e->latency_ms) + decimal_digits(e->status) +
           decimal_digits(e->bytes_sent) + e->key->len + 8;
}

/*
 * /_log: one line per finished request, written straight into c->out
 * after its head (the length is summed first), so a large log costs one
 * copy in memory, not two.
 */
static void
send_log(struct origin *o, struct conn *c)
{
    uint64_t total = 0;

    for (size_t i = 0; i < o->log_len; i++)
        total += log_line_length(&o->log[i]);
    start_response(c, 200, "text/plain", total, NULL);
    if (!c->head_only) {
        size_t head = c->out.len;

        buf_reserve(&c->out, (size_t)total + 1);
        for (size_t i = 0; i < o->log_len; i++) {
            const struct log_entry *e = &o->log[i];

            buf_printf(&c->out,
                       "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
                       " %" PRIu64 " %u %" PRIu64 " %s\n",
                       e->n, e->attempt, e->start_ns / NS_PER_MS,
                       e->end_ns / NS_PER_MS, e->latency_ms, e->status,
                       e->bytes_sent, e->key->text);
        }
        if (c->out.len - head != total)
            die("internal error: /_log length mismatch");
    }
    conn_send(o, c);
}

/*
 * /_reset: zero the counters, the attempt counts and the log. Requests
 * still in flight keep counting in in_flight (the limit applies to them)
 * but are neither counted nor logged when they end: the epoch tells them
 * apart.
 */
static void
origin_reset(struct origin *o)
{
    o->epoch++;
    o->requests = 0;
    o->violations = 0;
    o->connections = 0;
    o->peak_in_flight = o->in_flight;
    memset(o->status_counts, 0, sizeof o->status_counts);
    key_table_clear(&o->keys);
    free(o->log);
    o->log = NULL;
    o->log_len = 0;
    o->log_cap = 0;
    o->log_dropped = 0;
}

/* ---- /img requests ------------------------------------------------------- */

/* Parse "<n>" or "<n>.<ext>" (the path after /img/). */
static int
parse_img_path(const char *p, size_t len, uint64_t *n)
{
    size_t digits = 0;

    while (digits < len && p[digits] >= '0' && p[digits] <= '9')
        digits++;
    if (parse_u64(p, digits, UINT64_MAX, n) != 0)
        return -1;
    if (digits == len)
        return 0;
    if (p[digits] != '.' || digits + 1 == len)
        return -1;
    for (size_t i = digits + 1; i < len; i++)
        if (!is_alnum(p[i]))
            return -1;
    return 0;
}

static int
hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decode [s, s + len) into dst (cap bytes, NUL-terminated);
 * *out_len gets the decoded length. -1 on bad escapes or no room. */
static int
percent_decode(const char *s, size_t len, char *dst, size_t cap,
               size_t *out_len)
{
    size_t j = 0;

    for (size_t i = 0; i < len; i++) {
        char ch = s[i];

        if (ch == '%') {
            int hi, lo;

            if (i + 2 >= len)
                return -1;
            hi = hex_value(s[i + 1]);
            lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (j + 1 >= cap)
            return -1;
        dst[j++] = ch;
    }
    dst[j] = '\0';
    *out_len = j;
    return 0;
}

static const char *const fault_names[] = {
    [FAULT_NONE] = "none",
    [FAULT_STATUS] = "status",
    [FAULT_FLAKY] = "flaky",
    [FAULT_THROTTLE] = "throttle",
    [FAULT_RESET] = "reset",
    [FAULT_STALL] = "stall",
    [FAULT_BADLEN] = "badlen",
    [FAULT_REDIRECT] = "redirect",
    [FAULT_LOOP] = "loop",
    [FAULT_TRICKLE] = "trickle",
    [FAULT_ENDLESS] = "endless",
    [FAULT_HUGEHEADERS] = "hugeheaders",
    [FAULT_MANYREDIRECTS] = "manyredirects",
    [FAULT_BADSTATUS] = "badstatus",
    [FAULT_GZIPBOMB] = "gzipbomb",
    [FAULT_SILENT] = "silent",
};

/*
 * Fill *f from the query [q, q + len): fault, fails, code, retry_after,
 * date, hops, hop, garbage, to; other parameters are ignored (cache
 * busters are fine).
 * Returns NULL, or why the query is unusable (the client gets a 400).
 */
static const char *
parse_fault(const char *q, size_t len, struct fault *f)
{
    const char *end = q + len;

    memset(f, 0, sizeof *f);
    f->kind = FAULT_NONE;
    f->fails = 1;
    f->retry_after = 1;
    f->hops = 1;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *param_end = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(param_end - q));
        const char *name_end = eq ? eq : param_end;
        const char *value = eq ? eq + 1 : param_end;
        size_t name_len = (size_t)(name_end - q);
        char text[TO_MAX];
        size_t text_len = 0;
        uint64_t number;
        bool known =
            span_is(q, name_len, "fault") || span_is(q, name_len, "fails") ||
            span_is(q, name_len, "code") ||
            span_is(q, name_len, "retry_after") ||
            span_is(q, name_len, "date") || span_is(q, name_len, "hops") ||
            span_is(q, name_len, "hop") || span_is(q, name_len, "garbage") ||
            span_is(q, name_len, "to");

        if (known && percent_decode(value, (size_t)(param_end - value), text,
                                    sizeof text, &text_len) != 0)
            return "bad or too long parameter value";
        if (span_is(q, name_len, "fault")) {
            size_t k;

            for (k = 0; k < sizeof fault_names / sizeof *fault_names; k++)
                if (strcmp(text, fault_names[k]) == 0)
                    break;
            if (k == sizeof fault_names / sizeof *fault_names)
                return "unknown fault";
            f->kind = (enum fault_kind)k;
        } else if (span_is(q, name_len, "fails")) {
            if (parse_u64(text, text_len, UINT64_MAX, &f->fails) != 0)
                return "bad fails";
        } else if (span_is(q, name_len, "code")) {
            if (parse_u64(text, text_len, 599, &number) != 0 || number < 200)
                return "bad code (200..599)";
            f->code = (unsigned)number;
        } else if (span_is(q, name_len, "retry_after")) {
            if (parse_u64(text, text_len, 100000000, &f->retry_after) != 0)
                return "bad retry_after";
        } else if (span_is(q, name_len, "date")) {
            if (parse_u64(text, text_len, 1, &number) != 0)
                return "bad date (0 or 1)";
            f->date = number == 1;
        } else if (span_is(q, name_len, "hops")) {
            if (parse_u64(text, text_len, UINT64_MAX, &f->hops) != 0)
                return "bad hops";
        } else if (span_is(q, name_len, "hop")) {
            if (parse_u64(text, text_len, UINT64_MAX - 1, &f->hop) != 0)
                return "bad hop";
        } else if (span_is(q, name_len, "garbage")) {
            if (parse_u64(text, text_len, 1, &number) != 0)
                return "bad garbage (0 or 1)";
            f->garbage = number == 1;
        } else if (span_is(q, name_len, "to")) {
            if (strncmp(text, "http://", 7) != 0 &&
                strncmp(text, "https://", 8) != 0)
                return "bad to (http://HOST:PORT)";
            for (size_t i = 0; i < text_len; i++)
                if ((unsigned char)text[i] <= ' ' || text[i] == 0x7f)
                    return "bad to (http://HOST:PORT)";
            while (text_len > 0 && text[text_len - 1] == '/')
                text[--text_len] = '\0';
            memcpy(f->to, text, text_len + 1);
        }
        q = param_end + 1;
    }
    return NULL;
}

/*
 * Start an /img request: count its attempt, then either refuse it at once
 * (over the limit: 503 "over limit") or answer it once its latency is
 * over. It is in flight from here until request_end().
 */
static void
start_img(struct origin *o, struct conn *c)
{
    const char *target = c->in + c->target_off;
    struct request *r = &c->req;
    struct fault fault;
    uint64_t n;

    if (parse_img_path(target + 5, c->path_len - 5, &n) != 0) {
        send_text(o, c, 404, NULL, "not found");
        return;
    }
    size_t query_len = c->target_len - c->path_len;
    const char *why = parse_fault(target + c->path_len + (query_len > 0),
                                  query_len - (query_len > 0), &fault);
    if (why != NULL) {
        send_text(o, c, 400, NULL, why);
        return;
    }
    struct key *key = key_intern(&o->keys, target, c->target_len);
    key->attempts++;
    if (o->opt.limit > 0 && o->in_flight >= o->opt.limit)
        sweep_hangups(o);

    memset(r, 0, sizeof *r);
    r->active = true;
    r->epoch = o->epoch;
    r->n = n;
    r->attempt = key->attempts;
    r->size = sl_origin_body_size(&o->opt.size, n);
    r->start_ns = now_ns();
    r->key = key;
    r->fault = fault;
    o->requests++;
    o->in_flight++;
    if (o->in_flight > o->peak_in_flight)
        o->peak_in_flight = o->in_flight;
    if (o->opt.limit > 0 && o->in_flight > o->opt.limit) {
        o->violations++;
        send_text(o, c, 503, NULL, "over limit");
        return;
    }
    r->latency_ms = latency_for(&o->opt.latency, o->opt.seed, n, r->attempt);
    if (r->latency_ms == 0) {
        respond_img(o, c);
        return;
    }
    c->state = CONN_WAITING;
    conn_set_events(o, c, EPOLLRDHUP);
    timer_arm(o, c, r->start_ns + r->latency_ms * NS_PER_MS);
}

/* ---- request heads ------------------------------------------------------- */

/* The end of the head in buf (past its empty line), or 0 if incomplete. */
static size_t
find_head_end(const char *buf, size_t len, size_t from)
{
    const char *p = buf + from;
    const char *end = buf + len;

    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        p++;
        if (p < end && *p == '\n')
            return (size_t)(p + 1 - buf);
        if (p + 1 < end && p[0] == '\r' && p[1] == '\n')
            return (size_t)(p + 2 - buf);
    }
    return 0;
}

static bool
is_token_char(char ch)
{
    return is_alnum(ch) || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Does the comma-separated header value [v, v + len) list token? */
static bool
value_has_token(const char *v, size_t len, const char *token)
{
    const char *end = v + len;

    while (v < end) {
        const char *comma = memchr(v, ',', (size_t)(end - v));
        const char *item_end = comma ? comma : end;
        const char *s = v, *e = item_end;

        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == strlen(token) &&
            strncasecmp(s, token, (size_t)(e - s)) == 0)
            return true;
        v = item_end + 1;
    }
    return false;
}

/*
 * Parse the head in c->in[0, head_len): request line and headers. Sets
 * c's target, method and connection fields. Returns 0, or the status to
 * answer with before closing (400, 405, 505).
 */
static unsigned
parse_head(struct conn *c)
{
    const char *p = c->in;
    const char *end = c->in + c->head_len;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
    bool has_body = false;

    /* Request line: METHOD SP TARGET SP VERSION. */
    const char *sp1 = memchr(p, ' ', (size_t)(line_end - p));
    if (sp1 == NULL || sp1 == p)
        return 400;
    for (const char *m = p; m < sp1; m++)
        if (!is_token_char(*m))
            return 400;
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(line_end - target));
    if (sp2 == NULL || sp2 == target || *target != '/')
        return 400;
    for (const char *t = target; t < sp2; t++)
        if ((unsigned char)*t <= ' ' || (unsigned char)*t >= 0x7f)
            return 400;
    const char *version = sp2 + 1;
    size_t version_len = (size_t)(line_end - version);
    if (span_is(version, version_len, "HTTP/1.1")) {
        c->http10 = false;
    } else if (span_is(version, version_len, "HTTP/1.0")) {
        c->http10 = true;
    } else if (version_len == 8 && memcmp(version, "HTTP/", 5) == 0 &&
               version[5] >= '0' && version[5] <= '9' && version[6] == '.' &&
               version[7] >= '0' && version[7] <= '9') {
        return 505;
    } else {
        return 400;
    }
    c->keep_alive = !c->http10;
    c->target_off = (size_t)(target - c->in);
    c->target_len = (size_t)(sp2 - target);
    const char *question = memchr(target, '?', c->target_len);
    c->path_len = question ? (size_t)(question - target) : c->target_len;
    bool is_get = span_is(p, (size_t)(sp1 - p), "GET");
    c->head_only = span_is(p, (size_t)(sp1 - p), "HEAD");

    /* Header lines, up to the empty one. */
    for (p = eol + 1; p < end; p = eol + 1) {
        eol = memchr(p, '\n', (size_t)(end - p));
        line_end = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        if (line_end == p)
            break;
        if (*p == ' ' || *p == '\t')
            return 400; /* obsolete line folding */
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (colon == NULL || colon == p)
            return 400;
        for (const char *h = p; h < colon; h++)
            if (!is_token_char(*h))
                return 400;
        const char *v = colon + 1;
        while (v < line_end && (*v == ' ' || *v == '\t'))
            v++;
        size_t name_len = (size_t)(colon - p),
               value_len = (size_t)(line_end - v);
        while (value_len > 0 &&
               (v[value_len - 1] == ' ' || v[value_len - 1] == '\t'))
            value_len--;
        if (name_len == 10 && strncasecmp(p, "connection", 10) == 0) {
            if (value_has_token(v, value_len, "close"))
                c->keep_alive = false;
            else if (value_has_token(v, value_len, "keep-alive"))
                c->keep_alive = true;
        } else if (name_len == 14 &&
                   strncasecmp(p, "content-length", 14) == 0) {
            uint64_t length;

            if (parse_u64(v, value_len, UINT64_MAX, &length) != 0)
                return 400;
            has_body |= length > 0;
        } else if (name_len == 17 &&
                   strncasecmp(p, "transfer-encoding", 17) == 0) {
            has_body = true;
        }
    }
    if (!is_get && !c->head_only)
        return 405;
    if (has_body)
        return 400; /* this origin reads no request bodies */
    return 0;
}

/* Route the request whose head is c->in[0, head_len). */
static void
handle_request(struct origin *o, struct conn *c)
{
    unsigned status = parse_head(c);

    c->close_after = false;
    if (status != 0) {
        const char *text = status == 405   ? "GET or HEAD only"
                           : status == 505 ? "HTTP/1.0 or HTTP/1.1 only"
                                           : "malformed request";
        c->close_after = true;
        send_text(o, c, status, status == 405 ? "Allow: GET, HEAD\r\n" : NULL,
                  text);
        return;
    }
    c->close_after = !c->keep_alive;
    const char *path = c->in + c->target_off;
    size_t path_len = c->path_len;
    if (span_is(path, path_len, "/_stats")) {
        send_stats(o, c);
    } else if (span_is(path, path_len, "/_log")) {
        send_log(o, c);
    } else if (span_is(path, path_len, "/_reset")) {
        origin_reset(o);
        send_text(o, c, 200, NULL, "reset");
    } else if (span_is(path, path_len, "/_clock")) {
        /* The clock of /_log's times, so that a client can say when it
         * started in the same terms. */
        char now[32];
        snprintf(now, sizeof now, "%llu",
                 (unsigned long long)((now_ns() - o->start_ns) / NS_PER_MS));
        send_text(o, c, 200, NULL, now);
    } else if (path_len > 5 && memcmp(path, "/img/", 5) == 0) {
        start_img(o, c);
    } else {
        send_text(o, c, 404, NULL, "not found");
    }
}

/* Answer every complete request head buffered on c, one at a time, as
 * long as each is answered at once (keep-alive, pipelining). */
static void
process_input(struct origin *o, struct conn *c)
{
    while (!c->dead && c->state == CONN_READING) {
        size_t blank = 0;

        /* RFC 9112 2.2: ignore empty lines before a request line. */
        while (blank < c->in_len &&
               (c->in[blank] == '\r' || c->in[blank] == '\n'))
            blank++;
        if (blank > 0) {
            c->in_len -= blank;
            memmove(c->in, c->in + blank, c->in_len);
            c->scan_from = 0;
        }
        size_t end = find_head_end(c->in, c->in_len, c->scan_from);
        if (end == 0) {
            c->scan_from = c->in_len > 3 ? c->in_len - 3 : 0;
            if (c->in_len == HEAD_MAX)
                send_error(o, c, 431, "request head over 16 KiB");
            return;
        }
        c->head_len = end;
        c->scan_from = 0;
        handle_request(o, c);
    }
}

/* ---- events -------------------------------------------------------------- */

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

static void
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
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = xcalloc(1, sizeof *c);
        c->fd = fd;
        c->state = CONN_READING;
        c->heap_index = SIZE_MAX;
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
}

static void
accept_resume(struct origin *o)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener_tag};

    o->accept_paused_until = 0;
    epoll_ctl(o->epoll_fd, EPOLL_CTL_MOD, o->listen_fd, &ev);
}

/* Fire every timer that is due: latencies end, lingering closes end. */
static void
run_timers(struct origin *o)
{
    uint64_t now = now_ns();

    while (o->heap_len > 0 && o->heap[0]->deadline_ns <= now) {
        struct conn *c = o->heap[0];

        timer_cancel(o, c);
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
    uint64_t next = UINT64_MAX;

    if (o->heap_len > 0)
        next = o->heap[0]->deadline_ns;
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
 * the same batch is counted.
 */
static void
run(struct origin *o)
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
                conn_close(o, tag);
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

/* ---- start-up and shutdown ----------------------------------------------- */

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

static void
origin_free(struct origin *o)
{
    while (o->conns != NULL)
        conn_close(o, o->conns);
    free_graveyard(o);
    key_table_clear(&o->keys);
    free(o->log);
    free(o->heap);
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
          "                     [--size SPEC] [--quiet]\n"
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
}

int
main(int argc, char **argv)
{
    static struct origin origin; /* large (scratch): not on the stack */
    struct origin *o = &origin;
    struct epoll_event ev;

    parse_options(argc, argv, &o->opt);
    raise_fd_limit();
    o->start_ns = now_ns();
    o->have_pwait2 = true;
    o->signal_fd = open_signal_fd();
    o->listen_fd = open_listener(o->opt.listen);
    o->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (o->epoll_fd < 0)
        die("epoll_create1: %s", strerror(errno));
    ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = &listener_tag};
    if (epoll_ctl(o->epoll_fd, EPOLL_CTL_ADD, o->listen_fd, &ev) != 0)
        die("epoll_ctl: %s", strerror(errno));
    ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = &signal_tag};
    if (epoll_ctl(o->epoll_fd, EPOLL_CTL_ADD, o->signal_fd, &ev) != 0)
        die("epoll_ctl: %s", strerror(errno));
    announce(o);

    run(o);

    if (!o->opt.quiet)
        fprintf(stderr,
                "sluice-origin: stopping: %" PRIu64 " requests, peak %" PRIu64
                " in flight, %" PRIu64 " violations\n",
                o->requests, o->peak_in_flight, o->violations);
    origin_free(o);
    return 0;
}
