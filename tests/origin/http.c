/*
 * HTTP/1.1 for the origin: finding and parsing request heads (keep-alive,
 * pipelining, the 4xx and 505 answers), routing them to /img and the
 * control routes, and composing response heads and short text responses.
 */
#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "origin.h"

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

const char *
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
 * ends with the connection), extra (whole CRLF-terminated lines, or NULL),
 * the rate limit's headers for an /img request when they are sent, and
 * Connection when it is not HTTP/1.1's default. Resets the body and the
 * after-write action; the caller adds a body and calls conn_send().
 */
void
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
    if (c->req.active)
        rate_head_add(&c->out, &c->req);
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

/* Add whole CRLF-terminated header lines to the head start_response()
 * just queued, before its empty line (no body may be queued yet). */
void
head_add(struct conn *c, const char *lines)
{
    c->out.len -= 2;
    buf_append(&c->out, lines, strlen(lines));
    buf_append(&c->out, "\r\n", 2);
    c->head_bytes = c->out.len;
}

/* A response with a short text/plain body (not sent for HEAD). */
void
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
        send_clock(o, c);
    } else if (path_len > 5 && memcmp(path, "/img/", 5) == 0) {
        start_img(o, c);
    } else {
        send_text(o, c, 404, NULL, "not found");
    }
}

/* Answer every complete request head buffered on c, one at a time, as
 * long as each is answered at once (keep-alive, pipelining). */
void
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
