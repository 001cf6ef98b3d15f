/*
 * The harnesses' shared code: failing a property, the feed driver (one
 * input read whole from a memfd and in pieces from a socket, with the
 * production line limit and a tiny one) and the checks made on every
 * record sl_record_prepare() sees. See common.h.
 */
#define _GNU_SOURCE
#include "common.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "json.h"

/* At most this many pieces, and this much input, go through a socket:
 * all of it is queued before the feed reads any, within its buffer. */
#define MAX_PIECES      16
#define MAX_PIECES_SIZE (64u * 1024)

void
fuzz_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d: property failed: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

const char *
fuzz_show(const void *data, size_t len)
{
    static char bufs[4][400];
    static unsigned next;
    char *b = bufs[next++ % 4];
    if (!data)
        return "(null)";
    b[0] = '"';
    sl_quote(b + 1, sizeof bufs[0] - 2, data, len, 300);
    size_t n = strlen(b);
    b[n] = '"';
    b[n + 1] = '\0';
    return b;
}

static bool
starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool
same(const char *a, size_t a_len, const char *b, size_t b_len)
{
    return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

void
fuzz_check_url_result(const char *in, size_t in_len, const sl_buf *url,
                      const sl_buf *origin)
{
    sl_buf url2, origin2;
    char why[256];

    FUZZ_CHECK(url->data && url->len == strlen(url->data),
               "url %s: normalised url's length is wrong",
               fuzz_show(in, in_len));
    FUZZ_CHECK(origin->data && origin->len == strlen(origin->data),
               "url %s: origin's length is wrong", fuzz_show(in, in_len));

    /* The origin: scheme://host:port, in lower case. */
    const char *o = origin->data;
    const char *host = starts_with(o, "http://")    ? o + 7
                       : starts_with(o, "https://") ? o + 8
                                                    : NULL;
    const char *colon = strrchr(o, ':');
    FUZZ_CHECK(host && colon > host && colon[1] != '\0' &&
                   strspn(colon + 1, "0123456789") == strlen(colon + 1) &&
                   strlen(colon + 1) <= 5,
               "url %s: origin %s is not scheme://host:port",
               fuzz_show(in, in_len), fuzz_show(o, origin->len));
    for (const char *c = o; *c; c++)
        FUZZ_CHECK(!isupper((unsigned char)*c),
                   "url %s: origin %s is not in lower case",
                   fuzz_show(in, in_len), fuzz_show(o, origin->len));

    /* Normalising a normalised URL changes nothing. */
    sl_buf_init(&url2);
    sl_buf_init(&origin2);
    sluice_err err = sl_url_check(url->data, url->len, NULL, &url2, &origin2,
                                  why, sizeof why);
    FUZZ_CHECK(err == SLUICE_OK,
               "url %s normalises to %s, which is refused: %s",
               fuzz_show(in, in_len), fuzz_show(url->data, url->len), why);
    FUZZ_CHECK(same(url2.data, url2.len, url->data, url->len),
               "url %s normalises to %s, and that to %s", fuzz_show(in, in_len),
               fuzz_show(url->data, url->len), fuzz_show(url2.data, url2.len));
    FUZZ_CHECK(same(origin2.data, origin2.len, origin->data, origin->len),
               "url %s has origin %s, its normal form %s",
               fuzz_show(in, in_len), fuzz_show(origin->data, origin->len),
               fuzz_show(origin2.data, origin2.len));

    /* sl_url_origin() on the normal form agrees. */
    sl_buf_clear(&origin2);
    FUZZ_CHECK(sl_url_origin(url->data, &origin2) == 0, "out of memory");
    FUZZ_CHECK(same(origin2.data, origin2.len, origin->data, origin->len),
               "url %s: origin %s, sl_url_origin gives %s",
               fuzz_show(url->data, url->len),
               fuzz_show(origin->data, origin->len),
               fuzz_show(origin2.data, origin2.len));
    sl_buf_free(&url2);
    sl_buf_free(&origin2);
}

sluice_err
fuzz_check_prepare(sl_record_scratch *s, const sl_feed_item *item,
                   sl_record *rec)
{
    char reason[256], why[256];
    const char *url = item->url;
    size_t url_len = item->url_len;

    memset(reason, 'x', sizeof reason);
    sluice_err err = sl_record_prepare(s, item, rec, reason, sizeof reason);
    FUZZ_CHECK(err != SLUICE_ENOMEM, "out of memory");
    if (err != SLUICE_OK) {
        FUZZ_CHECK(
            err == SLUICE_EURL || err == SLUICE_EKEY || err == SLUICE_EPARSE,
            "url %s: unexpected error %d", fuzz_show(url, url_len), (int)err);
        FUZZ_CHECK(memchr(reason, '\0', sizeof reason) && reason[0],
                   "url %s: refused without a reason", fuzz_show(url, url_len));
        FUZZ_CHECK(starts_with(reason, "url: ") ||
                       starts_with(reason, "id: ") ||
                       starts_with(reason, "key: ") ||
                       starts_with(reason, "meta: ") ||
                       starts_with(reason, "default key: "),
                   "url %s: reason \"%s\" names no field",
                   fuzz_show(url, url_len), reason);
        /* Every byte and segment of a default key is made safe, so only
         * its length can make it unfit. */
        FUZZ_CHECK(!starts_with(reason, "default key: ") ||
                       strstr(reason, "longer than"),
                   "id %s, url %s: %s", fuzz_show(item->id, item->id_len),
                   fuzz_show(url, url_len), reason);
        return err;
    }

    FUZZ_CHECK(rec->url && rec->origin && rec->id && rec->key,
               "url %s: a field of the record is missing",
               fuzz_show(url, url_len));
    FUZZ_CHECK(rec->id_len > 0 && rec->key_len > 0,
               "url %s: an empty id or key", fuzz_show(url, url_len));
    sl_buf nurl = {(char *)rec->url, rec->url_len, rec->url_len + 1};
    sl_buf norigin = {(char *)rec->origin, rec->origin_len,
                      rec->origin_len + 1};
    fuzz_check_url_result(url, url_len, &nurl, &norigin);
    FUZZ_CHECK(sl_key_check(rec->key, rec->key_len, why, sizeof why) ==
                   SLUICE_OK,
               "url %s: key %s is accepted, but sl_key_check says %s",
               fuzz_show(url, url_len), fuzz_show(rec->key, rec->key_len), why);
    if (item->key)
        FUZZ_CHECK(same(rec->key, rec->key_len, item->key, item->key_len),
                   "key %s became %s", fuzz_show(item->key, item->key_len),
                   fuzz_show(rec->key, rec->key_len));
    if (item->id)
        FUZZ_CHECK(same(rec->id, rec->id_len, item->id, item->id_len),
                   "id %s became %s", fuzz_show(item->id, item->id_len),
                   fuzz_show(rec->id, rec->id_len));
    else
        FUZZ_CHECK(same(rec->id, rec->id_len, rec->url, rec->url_len),
                   "url %s: the default id %s is not the url",
                   fuzz_show(rec->url, rec->url_len),
                   fuzz_show(rec->id, rec->id_len));
    FUZZ_CHECK(rec->meta == item->meta, "meta changed");
    return SLUICE_OK;
}

/* ------------------------------------------------------------------ */
/* The feed driver                                                    */
/* ------------------------------------------------------------------ */

static uint64_t
hash_bytes(const uint8_t *data, size_t size)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t
next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A file holding the input, read back in one piece. */
static int
open_whole(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz-feed", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
    for (size_t off = 0; off < size;) {
        ssize_t n = write(fd, data + off, size - off);
        FUZZ_CHECK(n > 0, "write: %s", strerror(errno));
        off += (size_t)n;
    }
    FUZZ_CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek: %s", strerror(errno));
    return fd;
}

/*
 * A socket that hands out the input in pieces of random sizes: a packet
 * socket returns one piece per read(), so the reader sees short reads at
 * chosen places (a line, a byte-order mark, a "\r\n" cut in two). -1 when
 * the input is too big to queue.
 */
static int
open_pieces(const uint8_t *data, size_t size, uint64_t seed)
{
    static const size_t piece_max[] = {1, 2, 4, 16, 64, 512};
    int sv[2];

    if (size > MAX_PIECES_SIZE)
        return -1;
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0,
               "socketpair: %s", strerror(errno));
    size_t off = 0;
    for (int piece = 1; off < size; piece++) {
        uint64_t r = next_random(&seed);
        size_t n =
            1 + (size_t)(r >> 8) % piece_max[r % SL_ARRAY_LEN(piece_max)];
        if (n > size - off || piece == MAX_PIECES)
            n = size - off;
        /* Never an empty piece: the reader would take it for the end. */
        ssize_t sent = send(sv[1], data + off, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent != (ssize_t)n) {
            close(sv[0]);
            close(sv[1]);
            return -1;
        }
        off += n;
    }
    close(sv[1]);
    return sv[0];
}

static void log_printf(sl_buf *log, const char *fmt, ...) SL_PRINTF(2, 3);

static void
log_printf(sl_buf *log, const char *fmt, ...)
{
    char line[400];
    va_list ap;
    va_start(ap, fmt);
    sl_vfmt(line, sizeof line, fmt, ap);
    va_end(ap);
    FUZZ_CHECK(sl_buf_append(log, line, strlen(line)) == 0, "no memory");
}

static void
log_field(sl_buf *log, const char *name, const char *s, size_t len)
{
    if (!s)
        return;
    log_printf(log, " %s=%zu:", name, len);
    FUZZ_CHECK(sl_buf_append(log, s, len) == 0, "no memory");
}

/* meta is a compact JSON object, and copying it changes nothing. */
static void
check_meta(const char *meta)
{
    size_t len = strlen(meta), out_len;
    char why[160];
    yajl_gen gen = sl_json_gen_new();

    FUZZ_CHECK(gen, "no memory");
    yajl_gen_map_open(gen);
    FUZZ_CHECK(sl_json_copy_members(gen, meta, len, why, sizeof why) == 0,
               "meta %s is not a JSON object: %s", fuzz_show(meta, len), why);
    yajl_gen_map_close(gen);
    const char *out = sl_json_gen_text(gen, &out_len);
    FUZZ_CHECK(same(out, out_len, meta, len), "meta %s copies as %s",
               fuzz_show(meta, len), fuzz_show(out, out_len));
    yajl_gen_free(gen);
}

static void
check_item(const sl_feed_item *item, sluice_format format, size_t max_line)
{
    FUZZ_CHECK(!item->url || item->url_len <= max_line,
               "a url of %zu bytes from lines of at most %zu", item->url_len,
               max_line);
    FUZZ_CHECK(!item->id || item->id_len <= max_line,
               "an id of %zu bytes from lines of at most %zu", item->id_len,
               max_line);
    FUZZ_CHECK(!item->key || item->key_len <= max_line,
               "a key of %zu bytes from lines of at most %zu", item->key_len,
               max_line);
    if (format == SLUICE_FORMAT_LINES) {
        FUZZ_CHECK(item->url && item->url_len > 0 && !item->id && !item->key &&
                       !item->meta,
                   "a plain line gave something other than a url");
        FUZZ_CHECK(!isspace((unsigned char)item->url[0]) &&
                       item->url[0] != '#' &&
                       !memchr(item->url, '\n', item->url_len),
                   "plain line url %s", fuzz_show(item->url, item->url_len));
    }
    if (item->meta)
        check_meta(item->meta);
}

/*
 * Read a whole feed from `fd`, checking each result, and write what it
 * yielded (statuses, line numbers, fields, reasons) to `log`.
 */
static void
run_feed(const uint8_t *data, size_t size, int fd, sluice_format format,
         size_t max_line, bool prepare, sl_buf *log)
{
    sl_feed f;
    sl_record_scratch scratch;
    uint64_t lines = 1, last = 0;

    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    FUZZ_CHECK(sl_feed_init(&f, fd, format) == SLUICE_OK, "no memory");
    if (max_line != SL_LINE_MAX) {
        sl_reader_free(&f.reader);
        FUZZ_CHECK(sl_reader_init(&f.reader, fd, max_line) == SLUICE_OK,
                   "no memory");
    }
    sl_record_scratch_init(&scratch);
    sl_buf_clear(log);
    log_printf(log, "max_line %zu\n", max_line);
    for (uint64_t calls = 1;; calls++) {
        sl_feed_item item;
        char reason[256];
        unsigned long long lineno;

        memset(reason, 'x', sizeof reason);
        sl_feed_status st = sl_feed_next(&f, &item, reason, sizeof reason);
        FUZZ_CHECK(calls <= lines + 1, "%llu results from %llu lines",
                   (unsigned long long)calls, (unsigned long long)lines);
        FUZZ_CHECK(memchr(reason, '\0', sizeof reason),
                   "the reason is not terminated");
        FUZZ_CHECK(st != SL_FEED_ERROR, "line %llu: error: %s",
                   (unsigned long long)f.lineno, reason);
        if (st == SL_FEED_EOF) {
            st = sl_feed_next(&f, &item, reason, sizeof reason);
            FUZZ_CHECK(st == SL_FEED_EOF, "status %d after the end", st);
            log_printf(log, "end\n");
            break;
        }
        lineno = f.lineno;
        FUZZ_CHECK(lineno > last && lineno <= lines,
                   "line number %llu after %llu, of %llu lines", lineno,
                   (unsigned long long)last, (unsigned long long)lines);
        last = lineno;
        if (st == SL_FEED_REJECT) {
            FUZZ_CHECK(reason[0] != '\0', "line %llu: no reason", lineno);
            log_printf(log, "%llu: rejected: %s\n", lineno, reason);
            continue;
        }
        FUZZ_CHECK(st == SL_FEED_RECORD, "line %llu: status %d", lineno, st);
        check_item(&item, f.format, max_line);
        log_printf(log, "%llu: record", lineno);
        log_field(log, "url", item.url, item.url_len);
        log_field(log, "id", item.id, item.id_len);
        log_field(log, "key", item.key, item.key_len);
        log_field(log, "meta", item.meta, item.meta ? strlen(item.meta) : 0);
        log_printf(log, "\n");
        if (prepare) {
            sl_record rec;
            fuzz_check_prepare(&scratch, &item, &rec);
        }
    }
    sl_record_scratch_free(&scratch);
    sl_feed_free(&f);
}

/* The same input read two ways must give the same results. */
static void
same_log(const sl_buf *whole, const sl_buf *pieces)
{
    size_t n = SL_MIN(whole->len, pieces->len), at = 0;
    if (same(whole->data, whole->len, pieces->data, pieces->len))
        return;
    while (at < n && whole->data[at] == pieces->data[at])
        at++;
    size_t from = at > 100 ? at - 100 : 0;
    fuzz_fail(__FILE__, __LINE__,
              "read whole and in pieces, the feed differs at byte %zu: "
              "whole %s, in pieces %s",
              at, fuzz_show(whole->data + from, whole->len - from),
              fuzz_show(pieces->data + from, pieces->len - from));
}

void
fuzz_feed(const uint8_t *data, size_t size, sluice_format format,
          sluice_format small_format)
{
    static const size_t small_limits[] = {1, 2, 3, 5, 8, 13, 32, 100};
    uint64_t seed = hash_bytes(data, size);
    sl_buf whole, pieces;
    int fd;

    sl_buf_init(&whole);
    sl_buf_init(&pieces);

    fd = open_whole(data, size);
    run_feed(data, size, fd, format, SL_LINE_MAX, true, &whole);
    close(fd);
    fd = open_pieces(data, size, seed);
    if (fd >= 0) {
        run_feed(data, size, fd, format, SL_LINE_MAX, false, &pieces);
        close(fd);
        same_log(&whole, &pieces);
    }

    size_t limit = small_limits[seed % SL_ARRAY_LEN(small_limits)];
    fd = open_whole(data, size);
    run_feed(data, size, fd, small_format, limit, false, &whole);
    close(fd);
    fd = open_pieces(data, size, seed / SL_ARRAY_LEN(small_limits));
    if (fd >= 0) {
        run_feed(data, size, fd, small_format, limit, false, &pieces);
        close(fd);
        same_log(&whole, &pieces);
    }
    sl_buf_free(&whole);
    sl_buf_free(&pieces);
}
