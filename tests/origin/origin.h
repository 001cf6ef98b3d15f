/*
 * The test origin's shared insides: the origin, its connections and
 * requests, and the prototypes the files of sluice-origin share (one
 * section per file). Small helpers on the hot path are static inline
 * here so every file can inline them. See docs/test-origin.md.
 */
#ifndef SLUICE_TEST_ORIGIN_H
#define SLUICE_TEST_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "body.h"

#define HEAD_MAX     16384 /* a longer request head is answered 431 */
#define SCRATCH_SIZE 65536 /* body bytes generated per send */
#define TO_MAX       256   /* longest decoded to= base */
#define STATUS_MAX   600   /* statuses are below 600; 0 = none */
#define NS_PER_MS    ((uint64_t)1000000)
#define NO_LENGTH    UINT64_MAX /* start_response(): no Content-Length */
#define HOLD_MAX_MS  3600000    /* --hold-abandoned=MS: at most an hour */
#define RATE_MAX_N   1000000000 /* --rate-limit N/W: at most this many */
#define RATE_MAX_MS  86400000   /* in windows of at most a day */

/* The struct of type `type` whose member `member` is at ptr. */
#define CONTAINER_OF(ptr, type, member)                                        \
    ((type *)(void *)((char *)(ptr) - (offsetof(type, member))))

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

/* --ratelimit-headers: which spellings of the rate limit's headers. */
enum {
    RATE_HEADERS_IETF = 1,  /* RateLimit-Policy and RateLimit */
    RATE_HEADERS_DRAFT = 2, /* RateLimit-Limit, -Remaining, -Reset */
    RATE_HEADERS_X = 4,     /* X-RateLimit-Limit, -Remaining, -Reset */
    RATE_HEADERS_ALL = 7,
};

/* --rate-limit N/W: N /img requests per fixed window of W seconds. */
struct rate_limit {
    uint64_t quota;     /* N; 0: no rate limit */
    uint64_t window_ms; /* W, in milliseconds */
    unsigned headers;   /* RATE_HEADERS_* sent; 0: none */
};

struct options {
    const char *listen;
    const char *port_file;
    uint64_t limit;
    uint64_t seed;
    struct latency latency;
    struct sl_origin_size size;
    bool quiet;
    bool hold_abandoned; /* keep counting requests whose client left */
    uint64_t hold_ms;    /* stalled, trickling, silent: held this long */
    struct rate_limit rate;
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

/* What a timer is embedded in, so that the loop knows what fired. */
enum timer_kind {
    TIMER_CONN, /* a connection's: latency, next trickled byte, linger */
    TIMER_HELD, /* a held request's: its end (hold.c) */
};

/* A deadline in the timer heap (timers.c), embedded in what it times. */
struct timer {
    uint64_t deadline_ns;
    size_t heap_index; /* SIZE_MAX when not in the heap */
    enum timer_kind kind;
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
    /* With --ratelimit-headers, what its head says of its window. */
    const struct rate_limit *rate; /* NULL: no rate limit headers */
    uint64_t rate_remaining;       /* requests its window still allows */
    uint64_t rate_window_end_ns;   /* when its window ends */
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
    struct timer timer; /* TIMER_CONN */
    struct conn *prev;  /* every open connection */
    struct conn *next;
    struct conn *grave_next;
    char in[HEAD_MAX];
};

/* Armed timers, earliest deadline first (timers.c). */
struct timer_heap {
    struct timer **items; /* a binary min-heap on deadline_ns */
    size_t len;
    size_t cap;
};

/* The rate limiter's state (ratelimit.c): the current window's count. */
struct rate_state {
    uint64_t window;         /* the current window's number, from 0 */
    uint64_t count;          /* /img requests counted in it */
    uint64_t throttled;      /* answered 429, since the start or /_reset */
    uint64_t max_per_window; /* the most not throttled in one window */
};

/* ---- the origin ---------------------------------------------------------- */

/* The server: one per process (main()'s), handed to every file. */
struct origin {
    struct options opt;
    int epoll_fd;
    int listen_fd;
    int signal_fd;
    bool stopping;
    bool have_pwait2; /* until the kernel says ENOSYS */
    uint64_t start_ns;
    uint64_t accept_paused_until; /* 0 while accepting */
    struct timer_heap timers;
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
    uint64_t abandoned; /* finished after their client left (held) */
    struct rate_state rate;
    uint64_t status_counts[STATUS_MAX];
    struct key_table keys;
    struct log_entry *log;
    size_t log_len;
    size_t log_cap;
    uint64_t log_dropped;
    unsigned char scratch[SCRATCH_SIZE];
};

/* ---- util.c, and the small helpers every file inlines -------------------- */

/* Print "sluice-origin: MESSAGE" to stderr and exit 1. */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));

/* realloc and calloc that never fail: out of memory, the origin dies. */
void *xrealloc(void *ptr, size_t size);
void *xcalloc(size_t n, size_t size);

/* Append printf-style text to b, growing it as needed. */
void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Nanoseconds on CLOCK_MONOTONIC: the clock of every deadline and log. */
static inline uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Parse a decimal number filling [s, s + len) exactly and at most max. */
static inline int
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

static inline bool
span_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(s, word, len) == 0;
}

static inline bool
is_alnum(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
           (ch >= 'A' && ch <= 'Z');
}

/* Make room for extra more bytes after b->len. */
static inline void
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

static inline void
buf_append(struct buf *b, const void *data, size_t len)
{
    buf_reserve(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

/* Empty b for the next response; a buffer grown by /_log is given back. */
static inline void
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

/* ---- latency.c ----------------------------------------------------------- */

/* Parse a --latency spec into *l; -1 when it is malformed. */
int parse_latency(const char *spec, struct latency *l);

/* The latency in ms of attempt `attempt` at object n under *l: a pure
 * function of its arguments, at most an hour. */
uint64_t latency_for(const struct latency *l, uint64_t seed, uint64_t n,
                     uint64_t attempt);

/* ---- keys.c -------------------------------------------------------------- */

/* The key for the path+query text, created with zero attempts on first
 * sight; it stays valid until key_table_clear(). O(len). */
struct key *key_intern(struct key_table *t, const char *text, size_t len);

/* Free every key (the pointers requests hold too) and empty t. */
void key_table_clear(struct key_table *t);

/* ---- timers.c ------------------------------------------------------------ */

/* Arm t for deadline (absolute, CLOCK_MONOTONIC ns); t must not be
 * armed. O(log n). */
void timer_arm(struct timer_heap *h, struct timer *t, uint64_t deadline);

/* Disarm t if it is armed. O(log n). */
void timer_cancel(struct timer_heap *h, struct timer *t);

/* The timer with the earliest deadline, if it is at or before now,
 * disarmed; else NULL. O(log n). */
struct timer *timer_pop_due(struct timer_heap *h, uint64_t now);

/* The earliest deadline armed, or UINT64_MAX when none is. */
uint64_t timer_next(const struct timer_heap *h);

/* Free the heap's storage; the timers in it are not touched. */
void timer_heap_free(struct timer_heap *h);

/* ---- conn.c -------------------------------------------------------------- */

/* Take the accepted socket fd into the loop: a new connection, reading
 * its first request head. */
void conn_open(struct origin *o, int fd);

/* Set the epoll events c waits for; no system call when unchanged. */
void conn_set_events(struct origin *o, struct conn *c, uint32_t events);

/* Close c, ending its request if one is in flight; c is freed by
 * free_graveyard() once the current batch of events is done. */
void conn_close(struct origin *o, struct conn *c);

/* c's client has gone away: close c; its request ends now, or is held
 * (request_hold()). */
void conn_gone(struct origin *o, struct conn *c);

/* Free the connections closed during this batch of events. */
void free_graveyard(struct origin *o);

/* Close the connections whose clients have left unreported. */
void sweep_hangups(struct origin *o);

/* Write the response queued on c->out (and its generated body), now or
 * as the socket takes it; then act on c->after. */
void conn_send(struct origin *o, struct conn *c);

/* Handle epoll's events (not hang-ups, handled first) for c. */
void conn_event(struct origin *o, struct conn *c, uint32_t events);

/* ---- http.c -------------------------------------------------------------- */

/* The reason phrase of status, or "Status" for one it does not know. */
const char *reason_phrase(unsigned status);

/* Queue the head of a response on c->out, replacing what was there. */
void start_response(struct conn *c, unsigned status, const char *content_type,
                    uint64_t content_length, const char *extra);

/* Add CRLF-terminated header lines to the head just queued. */
void head_add(struct conn *c, const char *lines);

/* Send a response with a short text/plain body (none for HEAD). */
void send_text(struct origin *o, struct conn *c, unsigned status,
               const char *extra, const char *text);

/* Answer every complete request head buffered on c that can be answered
 * at once (keep-alive, pipelining). */
void process_input(struct origin *o, struct conn *c);

/* ---- img.c --------------------------------------------------------------- */

/* Start the /img request whose head c holds: count it, then refuse it,
 * answer it, or wait out its latency. */
void start_img(struct origin *o, struct conn *c);

/* Answer c's /img request, its latency over: the fault or the object. */
void respond_img(struct origin *o, struct conn *c);

/* ---- faults.c ------------------------------------------------------------ */

/* Fill *f from an /img query; NULL, or why the query is unusable. */
const char *parse_fault(const char *q, size_t len, struct fault *f);

/* The responses of the faults that need more than a status and a body
 * length; each queues its response and sends it. */
void send_throttle(struct origin *o, struct conn *c);
void send_redirect(struct origin *o, struct conn *c);
void send_bad_status(struct origin *o, struct conn *c);

/* fault=hugeheaders: add the junk header lines to the head just queued. */
void head_add_junk(struct conn *c);

/* fault=trickle: send the next byte of the body. */
void trickle_next(struct origin *o, struct conn *c);

/* ---- ratelimit.c --------------------------------------------------------- */

/* Parse --rate-limit's "N/W" or "N" into *rl (its headers untouched);
 * -1 when it is malformed or out of range. */
int parse_rate_limit(const char *spec, struct rate_limit *rl);

/* Parse --ratelimit-headers' comma-separated list of ietf, draft, x and
 * all into *set (RATE_HEADERS_*); -1 when it is malformed. */
int parse_ratelimit_headers(const char *spec, unsigned *set);

/* Count request r, just started, in its window; true when it is over the
 * window's quota. Fills r's rate fields when headers are sent. O(1). */
bool rate_admit(struct origin *o, struct request *r);

/* Answer c's request, over the window's quota: 429 at once, counted. */
void rate_throttle(struct origin *o, struct conn *c);

/* Append r's rate limit header lines to b (nothing when r->rate is NULL). */
void rate_head_add(struct buf *b, const struct request *r);

/* Append /_stats' rate limit fields to t (nothing without --rate-limit). */
void rate_stats(const struct origin *o, struct buf *t);

/* /_reset's share: zero the counters, keep the current window's count. */
void rate_reset(struct origin *o);

/* ---- gzip_bomb.c --------------------------------------------------------- */

/* fault=gzipbomb's body, made in *b on the first call (b empty) and
 * returned as it is on later ones. */
const struct buf *gzip_bomb(struct buf *b);

/* ---- stats.c ------------------------------------------------------------- */

/* End c's /img request, if one is in flight: count and log it. */
void request_end(struct origin *o, struct conn *c);

/* Request r, no longer on a connection, ends now with bytes_sent body
 * bytes written: it leaves in_flight, and is counted and logged. */
void request_finish(struct origin *o, const struct request *r,
                    uint64_t bytes_sent, bool abandoned);

/* Body bytes of c's current response written so far. */
uint64_t body_bytes_sent(const struct conn *c);

/* The control routes: /_stats, /_log, /_clock; and /_reset's work. */
void send_stats(struct origin *o, struct conn *c);
void send_log(struct origin *o, struct conn *c);
void send_clock(struct origin *o, struct conn *c);
void origin_reset(struct origin *o);

/* ---- hold.c -------------------------------------------------------------- */

/* With --hold-abandoned, take c's request off c, whose client has gone,
 * and keep it in flight until its timer; true if it did. */
bool request_hold(struct origin *o, struct conn *c);

/* The held request timed by t ends: counted, logged, freed. */
void held_end(struct origin *o, struct timer *t);

/* Free every held request; only held requests' timers may be armed. */
void held_free_all(struct origin *o);

/* ---- loop.c -------------------------------------------------------------- */

/* Create the epoll set and add the listener and the signalfd to it. */
void loop_open(struct origin *o);

/* Run the event loop until SIGTERM or SIGINT. */
void loop_run(struct origin *o);

#endif
