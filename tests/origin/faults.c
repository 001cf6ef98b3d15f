/*
 * The faults an /img request can ask for: parsing its fault= query into
 * a struct fault, and the responses that take more than a status and a
 * body length (throttle, redirects, junk headers, a broken status line,
 * a trickle). img.c decides when each applies.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "origin.h"

#define JUNK_HEADERS 4096 /* fault=hugeheaders: X-Junk lines, */
#define JUNK_VALUE   1000 /* each with this much value: ~4 MiB */

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
const char *
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

/* fault=throttle: 429 (or code=C) with Retry-After in seconds, or with
 * date=1 as an IMF-fixdate that many seconds ahead, plus a Date header. */
void
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
void
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

/* fault=hugeheaders: JUNK_HEADERS lines of X-Junk-<i> added to the head
 * just queued, about 4 MiB of it, before the body. */
void
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
void
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
void
trickle_next(struct origin *o, struct conn *c)
{
    c->body_end = c->body_off + 1;
    if (c->body_end >= c->req.size)
        c->after = AFTER_NEXT;
    conn_send(o, c);
}
