/*
 * Object keys: the rules a key must meet (DESIGN.md, "Errors and
 * safety"), and the default key of a record that names none: its id made
 * safe, or host/path as wget -x would save it.
 */
#include "record.h"

#include <ctype.h>
#include <string.h>

/* Keys reserve segments starting with this for the stores' temp files. */
#define RESERVED_PREFIX     ".sluice"
#define RESERVED_PREFIX_LEN (sizeof(RESERVED_PREFIX) - 1)

sluice_err
sl_key_check(const char *key, size_t len, char *reason, size_t reason_size)
{
    sluice_err err = sl_field_check("key", key, len, SL_KEY_MAX, SLUICE_EKEY,
                                    reason, reason_size);
    if (err != SLUICE_OK)
        return err;
    if (key[0] == '/') {
        sl_fmt(reason, reason_size, "key: absolute (starts with /)");
        return SLUICE_EKEY;
    }
    if (memchr(key, '\\', len)) {
        sl_fmt(reason, reason_size, "key: contains a backslash");
        return SLUICE_EKEY;
    }
    const char *seg = key, *end = key + len;
    while (seg <= end) {
        const char *slash = memchr(seg, '/', (size_t)(end - seg));
        size_t n = (size_t)((slash ? slash : end) - seg);
        if (n == 0) {
            sl_fmt(reason, reason_size, "key: empty path segment");
            return SLUICE_EKEY;
        }
        if ((n == 1 && seg[0] == '.') ||
            (n == 2 && seg[0] == '.' && seg[1] == '.')) {
            sl_fmt(reason, reason_size, "key: contains a \"%.*s\" segment",
                   (int)n, seg);
            return SLUICE_EKEY;
        }
        if (n > SL_SEGMENT_MAX) {
            sl_fmt(reason, reason_size,
                   "key: path segment longer than %d bytes",
                   SL_SEGMENT_MAX);
            return SLUICE_EKEY;
        }
        /* Any case: the store may sit on a case-insensitive disk. */
        if (n >= RESERVED_PREFIX_LEN && seg[0] == '.' &&
            strncasecmp(seg, RESERVED_PREFIX, RESERVED_PREFIX_LEN) == 0) {
            sl_fmt(reason, reason_size,
                   "key: segments starting with \"" RESERVED_PREFIX
                   "\" are reserved");
            return SLUICE_EKEY;
        }
        if (!slash)
            break;
        seg = slash + 1;
    }
    return SLUICE_OK;
}

/* Bytes a derived key keeps as they are; everything else is %XX. */
static bool
safe_byte(unsigned char c, bool url_segment)
{
    if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
        return true;
    return url_segment && (c == '+' || c == ',' || c == '=' || c == '@');
}

static int
put_escaped(sl_buf *out, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
    return sl_buf_append(out, esc, 3);
}

/*
 * Append s[0..len) to `out` as one safe key segment: unsafe bytes are
 * percent-encoded (so distinct inputs stay distinct), a segment of only
 * dots is encoded whole, and a leading reserved prefix is defused.
 */
static int
put_segment(sl_buf *out, const char *s, size_t len, bool url_segment)
{
    static const char hex[] = "0123456789ABCDEF";
    bool utf8 = url_segment && sl_utf8_valid(s, len, NULL);
    bool only_dots = len > 0;
    for (size_t i = 0; i < len && only_dots; i++)
        only_dots = s[i] == '.';
    bool reserved = len >= RESERVED_PREFIX_LEN && s[0] == '.' &&
                    strncasecmp(s, RESERVED_PREFIX, RESERVED_PREFIX_LEN) == 0;
    if (sl_buf_reserve(out, len * 3) != 0)
        return -1;
    char *dst = out->data + out->len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool keep = (safe_byte(c, url_segment) || (utf8 && c >= 0x80)) &&
                    !(c == '.' && (only_dots || (reserved && i == 0)));
        if (keep) {
            *dst++ = (char)c;
        } else {
            *dst++ = '%';
            *dst++ = hex[c >> 4];
            *dst++ = hex[c & 15];
        }
    }
    out->len = (size_t)(dst - out->data);
    out->data[out->len] = '\0';
    return 0;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-decode s[0..len) into `out` (an invalid escape stays as is). */
static int
decode(sl_buf *out, const char *s, size_t len)
{
    sl_buf_clear(out);
    if (sl_buf_reserve(out, len) != 0) /* decoding only shortens */
        return -1;
    char *dst = out->data;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 &&
            hexval(s[i + 2]) >= 0) {
            c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        }
        *dst++ = c;
    }
    out->len = (size_t)(dst - out->data);
    out->data[out->len] = '\0';
    return 0;
}

/* Length of a file-name extension at the end of s (without the dot). */
static size_t
extension_len(const char *s, size_t len)
{
    size_t n = 0;
    while (n < len && n <= 10 && isalnum((unsigned char)s[len - 1 - n]))
        n++;
    if (n == 0 || n > 10 || n + 1 >= len || s[len - 1 - n] != '.' ||
        s[len - 2 - n] == '/' || s[len - 2 - n] == '.')
        return 0;
    return n;
}

sluice_err
sl_key_derive(sl_buf *key, sl_buf *seg, const char *id, size_t id_len,
              bool has_id, const char *url)
{
    sl_url_parts p;

    sl_buf_clear(key);
    sl_url_split(url, &p);

    /* The last path segment, decoded: the source of the extension. */
    const char *last = p.path;
    for (const char *c = p.path; c < p.path + p.path_len; c++)
        if (*c == '/')
            last = c + 1;
    size_t last_len = (size_t)(p.path + p.path_len - last);

    if (has_id) {
        if (put_segment(key, id, id_len, false) != 0)
            return SLUICE_ENOMEM;
        if (extension_len(key->data, key->len) == 0) {
            if (decode(seg, last, last_len) != 0)
                return SLUICE_ENOMEM;
            size_t ext = extension_len(seg->data, seg->len);
            if (ext && sl_buf_append(key, seg->data + seg->len - ext - 1,
                                     ext + 1) != 0)
                return SLUICE_ENOMEM;
        }
        return SLUICE_OK;
    }

    /* host[+port]/path[?query], each segment made safe. */
    sl_buf_clear(seg);
    if (sl_buf_append_lower(seg, p.host, p.host_len) != 0 ||
        put_segment(key, seg->data, seg->len, true) != 0)
        return SLUICE_ENOMEM;
    if (!sl_url_default_port(&p) && (sl_buf_putc(key, '+') != 0 ||
                              sl_buf_append(key, p.port, p.port_len) != 0))
        return SLUICE_ENOMEM;
    const char *s = p.path, *end = p.path + p.path_len;
    bool wrote_last = false;
    while (s < end) {
        const char *slash = memchr(s, '/', (size_t)(end - s));
        const char *stop = slash ? slash : end;
        wrote_last = false;
        if (stop > s) {
            if (decode(seg, s, (size_t)(stop - s)) != 0 ||
                sl_buf_putc(key, '/') != 0 ||
                put_segment(key, seg->data, seg->len, true) != 0)
                return SLUICE_ENOMEM;
            wrote_last = true;
        }
        s = slash ? slash + 1 : end;
    }
    if (!wrote_last || (p.path_len && p.path[p.path_len - 1] == '/')) {
        if (sl_buf_append(key, "/index.html", 11) != 0)
            return SLUICE_ENOMEM;
    }
    if (p.query) {
        if (put_escaped(key, '?') != 0 ||
            decode(seg, p.query, p.query_len) != 0 ||
            put_segment(key, seg->data, seg->len, true) != 0)
            return SLUICE_ENOMEM;
    }
    return SLUICE_OK;
}
