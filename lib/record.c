/*
 * Record validation at ingest: URLs (through libcurl's URL API), object
 * keys, and the default key derivation. Everything a feed can get wrong
 * about a single record is caught here, with a reason naming the field.
 */
#include "record.h"

#include <ctype.h>
#include <string.h>

#include <curl/curl.h>

void
sl_record_init(sl_record *rec)
{
    sl_buf_init(&rec->id);
    sl_buf_init(&rec->url);
    sl_buf_init(&rec->key);
    sl_buf_init(&rec->origin);
    rec->meta = NULL;
}

void
sl_record_free(sl_record *rec)
{
    sl_buf_free(&rec->id);
    sl_buf_free(&rec->url);
    sl_buf_free(&rec->key);
    sl_buf_free(&rec->origin);
}

static int
has_byte_below(const char *s, size_t len, unsigned char limit,
               size_t *where)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < limit || c == 0x7f) {
            *where = i;
            return 1;
        }
    }
    return 0;
}

static void
trim(const char **s, size_t *len)
{
    while (*len && isspace((unsigned char)(*s)[0]))
        (*s)++, (*len)--;
    while (*len && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

static int
append_lower(sl_buf *b, const char *s)
{
    for (; *s; s++)
        if (sl_buf_putc(b, (char)tolower((unsigned char)*s)) != 0)
            return -1;
    return 0;
}

sluice_err
sl_url_check(const char *text, size_t len, sl_buf *url, sl_buf *origin,
             char *reason, size_t reason_size)
{
    size_t where;
    sluice_err err = SLUICE_EURL;
    CURLU *h = NULL;
    char *scheme = NULL, *host = NULL, *port = NULL, *full = NULL;

    trim(&text, &len);
    if (len == 0) {
        sl_fmt(reason, reason_size, "url: empty");
        return SLUICE_EURL;
    }
    if (len > SL_URL_MAX) {
        sl_fmt(reason, reason_size, "url: longer than %d bytes (%zu)",
               SL_URL_MAX, len);
        return SLUICE_EURL;
    }
    if (has_byte_below(text, len, 0x20, &where)) {
        sl_fmt(reason, reason_size,
               "url: control byte 0x%02x at offset %zu",
               (unsigned char)text[where], where);
        return SLUICE_EURL;
    }
    if (!sl_utf8_valid(text, len, &where)) {
        sl_fmt(reason, reason_size, "url: invalid UTF-8 at offset %zu",
               where);
        return SLUICE_EURL;
    }
    const char *sep = memchr(text, ':', len);
    if (!sep || (size_t)(text + len - sep) < 3 || memcmp(sep, "://", 3)) {
        sl_fmt(reason, reason_size,
               "url: not an absolute http:// or https:// URL");
        return SLUICE_EURL;
    }
    size_t scheme_len = (size_t)(sep - text);
    if (!((scheme_len == 4 && strncasecmp(text, "http", 4) == 0) ||
          (scheme_len == 5 && strncasecmp(text, "https", 5) == 0))) {
        char shown[40];
        sl_quote(shown, sizeof shown, text, scheme_len, 16);
        sl_fmt(reason, reason_size,
               "url: scheme \"%s\" is not http or https", shown);
        return SLUICE_EURL;
    }
    const char *authority = sep + 3;
    if (authority == text + len || *authority == '/' || *authority == '?' ||
        *authority == '#') {
        sl_fmt(reason, reason_size, "url: no host");
        return SLUICE_EURL;
    }

    char *copy = sl_strndup(text, len);
    h = curl_url();
    if (!copy || !h) {
        sl_free(copy);
        err = SLUICE_ENOMEM;
        goto fail;
    }
    CURLUcode rc = curl_url_set(h, CURLUPART_URL, copy, CURLU_URLENCODE);
    sl_free(copy);
    if (rc == CURLUE_OUT_OF_MEMORY) {
        err = SLUICE_ENOMEM;
        goto fail;
    }
    if (rc != CURLUE_OK) {
        const char *msg = curl_url_strerror(rc);
        sl_fmt(reason, reason_size, "url: %c%s",
               tolower((unsigned char)msg[0]), msg + 1);
        goto fail;
    }
    curl_url_set(h, CURLUPART_FRAGMENT, NULL, 0);
    if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) ||
        curl_url_get(h, CURLUPART_HOST, &host, 0) ||
        curl_url_get(h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) ||
        curl_url_get(h, CURLUPART_URL, &full, 0)) {
        sl_fmt(reason, reason_size, "url: cannot be parsed");
        goto fail;
    }
    if (!host[0]) {
        sl_fmt(reason, reason_size, "url: no host");
        goto fail;
    }
    if (strcmp(port, "0") == 0) {
        sl_fmt(reason, reason_size, "url: port 0");
        goto fail;
    }
    if (url) {
        sl_buf_clear(url);
        if (sl_buf_append(url, full, strlen(full)) != 0) {
            err = SLUICE_ENOMEM;
            goto fail;
        }
    }
    if (origin) {
        sl_buf_clear(origin);
        if (append_lower(origin, scheme) || sl_buf_append(origin, "://", 3) ||
            append_lower(origin, host) || sl_buf_putc(origin, ':') ||
            sl_buf_append(origin, port, strlen(port))) {
            err = SLUICE_ENOMEM;
            goto fail;
        }
    }
    err = SLUICE_OK;
fail:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(full);
    curl_url_cleanup(h);
    return err;
}

/* Keys reserve segments starting with this for the stores' temp files. */
#define RESERVED_PREFIX     ".sluice"
#define RESERVED_PREFIX_LEN (sizeof(RESERVED_PREFIX) - 1)

sluice_err
sl_key_check(const char *key, size_t len, char *reason, size_t reason_size)
{
    size_t where;
    if (len == 0) {
        sl_fmt(reason, reason_size, "key: empty");
        return SLUICE_EKEY;
    }
    if (len > SL_KEY_MAX) {
        sl_fmt(reason, reason_size, "key: longer than %d bytes (%zu)",
               SL_KEY_MAX, len);
        return SLUICE_EKEY;
    }
    if (has_byte_below(key, len, 0x20, &where)) {
        sl_fmt(reason, reason_size,
               "key: control byte 0x%02x at offset %zu",
               (unsigned char)key[where], where);
        return SLUICE_EKEY;
    }
    if (!sl_utf8_valid(key, len, &where)) {
        sl_fmt(reason, reason_size, "key: invalid UTF-8 at offset %zu",
               where);
        return SLUICE_EKEY;
    }
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
        if (n >= RESERVED_PREFIX_LEN &&
            memcmp(seg, RESERVED_PREFIX, RESERVED_PREFIX_LEN) == 0) {
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
    bool utf8 = url_segment && sl_utf8_valid(s, len, NULL);
    bool only_dots = len > 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] != '.')
            only_dots = false;
    bool reserved = len >= RESERVED_PREFIX_LEN &&
                    memcmp(s, RESERVED_PREFIX, RESERVED_PREFIX_LEN) == 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool keep = (safe_byte(c, url_segment) || (utf8 && c >= 0x80)) &&
                    !(c == '.' && (only_dots || (reserved && i == 0)));
        if (keep ? sl_buf_putc(out, (char)c) : put_escaped(out, c))
            return -1;
    }
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
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 &&
            hexval(s[i + 2]) >= 0) {
            c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        }
        if (sl_buf_putc(out, c) != 0)
            return -1;
    }
    if (sl_buf_reserve(out, 0) != 0)
        return -1;
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

/* Split a normalised URL into host[:port], path and query. */
typedef struct {
    const char *host;
    size_t host_len;
    const char *path;
    size_t path_len;
    const char *query; /* without the '?', NULL if none */
    size_t query_len;
    bool default_port;
} url_parts;

static void
split_url(const char *url, url_parts *p)
{
    memset(p, 0, sizeof *p);
    const char *auth = strstr(url, "://");
    auth = auth ? auth + 3 : url;
    const char *end = auth + strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', (size_t)(end - auth));
    if (at)
        auth = at + 1;
    p->host = auth;
    p->host_len = (size_t)(end - auth);
    p->path = end;
    p->path_len = strcspn(end, "?#");
    if (end[p->path_len] == '?') {
        p->query = end + p->path_len + 1;
        p->query_len = strcspn(p->query, "#");
    }
    /* The port is dropped from the key when it is the scheme's default. */
    const char *colon = NULL;
    for (const char *c = p->host + p->host_len; c > p->host; c--)
        if (c[-1] == ':') {
            colon = c - 1;
            break;
        } else if (c[-1] == ']') {
            break;
        }
    p->default_port = true;
    if (colon) {
        size_t plen = (size_t)(p->host + p->host_len - colon - 1);
        bool https = strncasecmp(url, "https:", 6) == 0;
        const char *def = https ? "443" : "80";
        p->default_port = plen == strlen(def) && !memcmp(colon + 1, def, plen);
        if (p->default_port)
            p->host_len = (size_t)(colon - p->host);
    }
}

sluice_err
sl_key_derive(sl_buf *key, const char *id, size_t id_len, bool has_id,
              const char *url)
{
    url_parts p;
    sl_buf seg;
    sluice_err err = SLUICE_ENOMEM;

    sl_buf_init(&seg);
    sl_buf_clear(key);
    split_url(url, &p);

    /* The last path segment, decoded: the source of the extension. */
    const char *last = p.path;
    for (const char *c = p.path; c < p.path + p.path_len; c++)
        if (*c == '/')
            last = c + 1;
    size_t last_len = (size_t)(p.path + p.path_len - last);

    if (has_id) {
        if (put_segment(key, id, id_len, false) != 0)
            goto done;
        if (extension_len(key->data, key->len) == 0) {
            if (decode(&seg, last, last_len) != 0)
                goto done;
            size_t ext = extension_len(seg.data, seg.len);
            if (ext && sl_buf_append(key, seg.data + seg.len - ext - 1,
                                     ext + 1) != 0)
                goto done;
        }
        err = SLUICE_OK;
        goto done;
    }

    /* host[+port]/path[?query], each segment made safe. */
    size_t name_len = p.host_len;
    const char *port = NULL;
    if (!p.default_port) {
        port = p.host + p.host_len;
        while (port > p.host && port[-1] != ':')
            port--;
        name_len = (size_t)(port - p.host) - 1;
    }
    sl_buf_clear(&seg);
    for (size_t i = 0; i < name_len; i++)
        if (sl_buf_putc(&seg, (char)tolower((unsigned char)p.host[i])))
            goto done;
    if (put_segment(key, seg.data, seg.len, true) != 0)
        goto done;
    if (port && (sl_buf_putc(key, '+') != 0 ||
                 sl_buf_append(key, port,
                               (size_t)(p.host + p.host_len - port)) != 0))
        goto done;
    const char *s = p.path, *end = p.path + p.path_len;
    bool wrote_last = false;
    while (s < end) {
        const char *slash = memchr(s, '/', (size_t)(end - s));
        const char *stop = slash ? slash : end;
        wrote_last = false;
        if (stop > s) {
            if (decode(&seg, s, (size_t)(stop - s)) != 0 ||
                sl_buf_putc(key, '/') != 0 ||
                put_segment(key, seg.data, seg.len, true) != 0)
                goto done;
            wrote_last = true;
        }
        s = slash ? slash + 1 : end;
    }
    if (!wrote_last || (p.path_len && p.path[p.path_len - 1] == '/')) {
        if (sl_buf_append(key, "/index.html", 11) != 0)
            goto done;
    }
    if (p.query) {
        if (put_escaped(key, '?') != 0 ||
            decode(&seg, p.query, p.query_len) != 0 ||
            put_segment(key, seg.data, seg.len, true) != 0)
            goto done;
    }
    err = SLUICE_OK;
done:
    sl_buf_free(&seg);
    return err;
}

sluice_err
sl_record_prepare(sl_record *rec, const sl_feed_item *item, char *reason,
                  size_t reason_size)
{
    sluice_err err;
    if (!item->url) {
        sl_fmt(reason, reason_size, "url: missing");
        return SLUICE_EPARSE;
    }
    err = sl_url_check(item->url, item->url_len, &rec->url, &rec->origin,
                       reason, reason_size);
    if (err != SLUICE_OK)
        return err;

    sl_buf_clear(&rec->id);
    if (item->id) {
        size_t where;
        if (item->id_len == 0) {
            sl_fmt(reason, reason_size, "id: empty");
            return SLUICE_EPARSE;
        }
        if (item->id_len > SL_ID_MAX) {
            sl_fmt(reason, reason_size, "id: longer than %d bytes",
                   SL_ID_MAX);
            return SLUICE_EPARSE;
        }
        if (has_byte_below(item->id, item->id_len, 0x20, &where)) {
            sl_fmt(reason, reason_size,
                   "id: control byte 0x%02x at offset %zu",
                   (unsigned char)item->id[where], where);
            return SLUICE_EPARSE;
        }
        if (!sl_utf8_valid(item->id, item->id_len, &where)) {
            sl_fmt(reason, reason_size, "id: invalid UTF-8 at offset %zu",
                   where);
            return SLUICE_EPARSE;
        }
        if (sl_buf_append(&rec->id, item->id, item->id_len) != 0)
            return SLUICE_ENOMEM;
    } else if (sl_buf_append(&rec->id, rec->url.data, rec->url.len) != 0) {
        return SLUICE_ENOMEM;
    }

    if (item->key) {
        err = sl_key_check(item->key, item->key_len, reason, reason_size);
        if (err != SLUICE_OK)
            return err;
        sl_buf_clear(&rec->key);
        if (sl_buf_append(&rec->key, item->key, item->key_len) != 0)
            return SLUICE_ENOMEM;
    } else {
        err = sl_key_derive(&rec->key, rec->id.data, rec->id.len,
                            item->id != NULL, rec->url.data);
        if (err != SLUICE_OK)
            return err;
        char why[160];
        if (sl_key_check(rec->key.data, rec->key.len, why, sizeof why) !=
            SLUICE_OK) {
            sl_fmt(reason, reason_size,
                   "default %s; give the record an explicit key", why);
            return SLUICE_EKEY;
        }
    }
    rec->meta = item->meta;
    return SLUICE_OK;
}
