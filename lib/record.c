/*
 * Record validation at ingest: URLs (through libcurl's URL API), object
 * keys, and the default key derivation. Everything a feed can get wrong
 * about a single record is caught here, with a reason naming the field.
 */
#include "record.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

void
sl_record_scratch_init(sl_record_scratch *s)
{
    sl_buf_init(&s->url);
    sl_buf_init(&s->key);
    sl_buf_init(&s->origin);
    sl_buf_init(&s->seg);
    s->curl_url = NULL;
}

void
sl_record_scratch_free(sl_record_scratch *s)
{
    sl_buf_free(&s->url);
    sl_buf_free(&s->key);
    sl_buf_free(&s->origin);
    sl_buf_free(&s->seg);
    curl_url_cleanup(s->curl_url);
    s->curl_url = NULL;
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

/* Split a normalised URL into its parts. */
typedef struct {
    bool https;
    const char *scheme;
    size_t scheme_len;
    const char *host; /* without userinfo and port */
    size_t host_len;
    const char *port; /* as written, without ':'; port_len 0 if none */
    size_t port_len;
    const char *path;
    size_t path_len;
    const char *query; /* without the '?', NULL if none */
    size_t query_len;
} url_parts;

static void
split_url(const char *url, url_parts *p)
{
    memset(p, 0, sizeof *p);
    const char *auth = strstr(url, "://");
    p->scheme = url;
    p->scheme_len = auth ? (size_t)(auth - url) : 0;
    p->https = p->scheme_len == 5;
    auth = auth ? auth + 3 : url;
    const char *end = auth + strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', (size_t)(end - auth));
    if (at)
        auth = at + 1;
    p->host = auth;
    p->host_len = (size_t)(end - auth);
    /* A port follows the last ':' that is not inside [an IPv6 literal]. */
    for (const char *c = end; c > auth; c--) {
        if (c[-1] == ']')
            break;
        if (c[-1] == ':') {
            p->port = c;
            p->port_len = (size_t)(end - c);
            p->host_len = (size_t)(c - 1 - auth);
            break;
        }
    }
    p->path = end;
    p->path_len = strcspn(end, "?#");
    if (end[p->path_len] == '?') {
        p->query = end + p->path_len + 1;
        p->query_len = strcspn(p->query, "#");
    }
}

static bool
default_port(const url_parts *p)
{
    const char *def = p->https ? "443" : "80";
    return p->port_len == 0 ||
           (p->port_len == strlen(def) && !memcmp(p->port, def, p->port_len));
}

static int
append_lower(sl_buf *b, const char *s, size_t len)
{
    if (sl_buf_reserve(b, len) != 0)
        return -1;
    for (size_t i = 0; i < len; i++)
        b->data[b->len + i] = (char)tolower((unsigned char)s[i]);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int
sl_url_origin(const char *url, sl_buf *origin)
{
    url_parts p;
    split_url(url, &p);
    sl_buf_clear(origin);
    if (append_lower(origin, p.scheme, p.scheme_len) ||
        sl_buf_append(origin, "://", 3) ||
        append_lower(origin, p.host, p.host_len) ||
        sl_buf_putc(origin, ':'))
        return -1;
    if (p.port_len)
        return sl_buf_append(origin, p.port, p.port_len);
    return sl_buf_append(origin, p.https ? "443" : "80", p.https ? 3 : 2);
}

/* True when host[0..len) is an IPv4 address in the one spelling curl
 * prints: four decimal numbers of at most 255, without leading zeros. */
static bool
dotted_quad(const char *host, size_t len)
{
    int parts = 0;
    size_t i = 0;
    while (i < len && parts < 4) {
        size_t start = i;
        unsigned value = 0;
        while (i < len && i - start < 4 && host[i] >= '0' && host[i] <= '9')
            value = value * 10 + (unsigned)(host[i++] - '0');
        size_t digits = i - start;
        if (digits == 0 || digits > 3 || value > 255 ||
            (digits > 1 && host[start] == '0'))
            return false;
        parts++;
        if (i < len && host[i] == '.' && parts < 4)
            i++;
        else
            break;
    }
    return parts == 4 && i == len;
}

/*
 * True when a URL curl has accepted is already in the form curl would
 * print it: lower-case scheme, a lower-case host name that is not an IP
 * address in any spelling (or an IPv4 address in its usual one), a port
 * without leading zeros, a path with no dot segments, no userinfo, no
 * fragment, nothing to encode. Most feed URLs are; for them, asking curl to
 * print the URL back (which costs as much as parsing it) can be skipped.
 * Conservative: when in doubt, false.
 */
static bool
already_normal(const char *s, size_t len)
{
    size_t i;
    if (len > 8 && memcmp(s, "https://", 8) == 0)
        i = 8;
    else if (len > 7 && memcmp(s, "http://", 7) == 0)
        i = 7;
    else
        return false;
    size_t host = i;
    bool letter = false;
    for (; i < len && s[i] != '/' && s[i] != ':'; i++) {
        char c = s[i];
        if (c >= 'a' && c <= 'z')
            letter = true;
        else if (!((c >= '0' && c <= '9') || c == '-' || c == '.'))
            return false;
    }
    /* A name whose last label starts with a digit may be an IPv4 form. */
    size_t last = i;
    while (last > host && s[last - 1] != '.')
        last--;
    if ((i == host || !letter || last == i ||
         (s[last] >= '0' && s[last] <= '9')) &&
        !dotted_quad(s + host, i - host))
        return false;
    if (i < len && s[i] == ':') {
        size_t digits = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == digits || i - digits > 5 || s[digits] == '0')
            return false;
    }
    if (i >= len || s[i] != '/')
        return false;
    size_t seg = i + 1;
    for (; i < len && s[i] != '?'; i++) {
        char c = s[i];
        if (c == '/' || i + 1 == len || s[i + 1] == '?') {
            size_t end = c == '/' ? i : i + 1;
            size_t n = end - seg;
            if ((n == 1 && s[seg] == '.') ||
                (n == 2 && s[seg] == '.' && s[seg + 1] == '.'))
                return false;
            seg = i + 1;
        }
        if (c <= ' ' || c >= 0x7f || c == '#' || c == '\\' || c == '"' ||
            c == '<' || c == '>' || c == '^' || c == '`' || c == '{' ||
            c == '|' || c == '}')
            return false;
    }
    /* curl drops an empty query: "http://h/?" prints as "http://h/". */
    if (i + 1 == len)
        return false;
    for (; i < len; i++) {
        char c = s[i];
        if (c <= ' ' || c >= 0x7f || c == '#' || c == '\\' || c == '"' ||
            c == '<' || c == '>' || c == '`' || c == '{' || c == '|' ||
            c == '}')
            return false;
    }
    return true;
}

/* True when the authority (from `s`, after "://", to the end of the
 * text or the path, query or fragment) holds a %-escape. */
static bool
authority_escaped(const char *s, const char *end)
{
    for (; s < end && *s != '/' && *s != '?' && *s != '#'; s++)
        if (*s == '%')
            return true;
    return false;
}

/* curl rejects spaces and raw non-ASCII bytes unless asked to encode. */
static bool
needs_encoding(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80 || s[i] == ' ')
            return true;
    return false;
}

sluice_err
sl_url_check(const char *text, size_t len, void *reuse, sl_buf *url,
             sl_buf *origin, char *reason, size_t reason_size)
{
    size_t where;
    sluice_err err = SLUICE_EURL;
    CURLU *h = reuse;
    char *full = NULL, *copy = NULL;
    char stack_copy[512];

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

    if (!h && !(h = curl_url()))
        return SLUICE_ENOMEM;
    /* curl_url_set wants a terminated string; the text is a slice. */
    copy = len < sizeof stack_copy ? stack_copy : sl_malloc(len + 1);
    if (!copy) {
        err = SLUICE_ENOMEM;
        goto done;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    unsigned flags = needs_encoding(text, len) ? CURLU_URLENCODE : 0;
    CURLUcode rc = curl_url_set(h, CURLUPART_URL, copy, flags);
    if (rc == CURLUE_OUT_OF_MEMORY) {
        err = SLUICE_ENOMEM;
        goto done;
    }
    if (rc != CURLUE_OK) {
        const char *msg = curl_url_strerror(rc);
        sl_fmt(reason, reason_size, "url: %c%s",
               tolower((unsigned char)msg[0]), msg + 1);
        goto done;
    }
    const char *normal = copy; /* terminated, unlike text */
    if (!already_normal(text, len)) {
        curl_url_set(h, CURLUPART_FRAGMENT, NULL, 0);
        if (curl_url_get(h, CURLUPART_URL, &full, 0) != CURLUE_OK) {
            sl_fmt(reason, reason_size, "url: cannot be parsed");
            goto done;
        }
        bool host_escaped = authority_escaped(authority, text + len);
        normal = full;
        len = strlen(full);
        /* curl decodes %-escapes in the host ("http://%ff/" prints as a
         * raw 0xff): hold the result to the rules the text was held to. */
        if (has_byte_below(normal, len, 0x20, &where) ||
            !sl_utf8_valid(normal, len, &where)) {
            sl_fmt(reason, reason_size,
                   "url: host has a %%-escaped control byte or invalid "
                   "UTF-8");
            goto done;
        }
        /* What it prints may then spell another host: "4%2e967295"
         * prints as "4.967295", which is 4.14.194.127. Such a URL has no
         * normal form (and would be two origins for one server). */
        if (host_escaped) {
            char *again = NULL;
            rc = curl_url_set(h, CURLUPART_URL, full,
                              needs_encoding(full, len) ? CURLU_URLENCODE
                                                        : 0);
            if (rc == CURLUE_OK)
                rc = curl_url_get(h, CURLUPART_URL, &again, 0);
            bool fixed = rc == CURLUE_OK && strcmp(again, full) == 0;
            curl_free(again);
            if (rc == CURLUE_OUT_OF_MEMORY) {
                err = SLUICE_ENOMEM;
                goto done;
            }
            if (!fixed) {
                sl_fmt(reason, reason_size,
                       "url: host's %%-escapes decode to another host");
                goto done;
            }
        }
    }
    url_parts p;
    split_url(normal, &p);
    if (p.host_len == 0) {
        sl_fmt(reason, reason_size, "url: no host");
        goto done;
    }
    if (p.port_len == 1 && p.port[0] == '0') {
        sl_fmt(reason, reason_size, "url: port 0");
        goto done;
    }
    if (url) {
        sl_buf_clear(url);
        if (sl_buf_append(url, normal, len) != 0) {
            err = SLUICE_ENOMEM;
            goto done;
        }
    }
    if (origin && sl_url_origin(url ? url->data : normal, origin) != 0) {
        err = SLUICE_ENOMEM;
        goto done;
    }
    err = SLUICE_OK;
done:
    curl_free(full);
    if (copy && copy != stack_copy)
        sl_free(copy);
    if (h != reuse)
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
        /* Any case: the store may sit on a case-insensitive disk. */
        if (n >= RESERVED_PREFIX_LEN &&
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
    bool reserved = len >= RESERVED_PREFIX_LEN &&
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

sluice_err
sl_key_derive(sl_buf *key, sl_buf *seg, const char *id, size_t id_len,
              bool has_id, const char *url)
{
    url_parts p;

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
    if (append_lower(seg, p.host, p.host_len) != 0 ||
        put_segment(key, seg->data, seg->len, true) != 0)
        return SLUICE_ENOMEM;
    if (!default_port(&p) && (sl_buf_putc(key, '+') != 0 ||
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

static sluice_err
check_id(const char *id, size_t len, char *reason, size_t reason_size)
{
    size_t where;
    if (len == 0) {
        sl_fmt(reason, reason_size, "id: empty");
        return SLUICE_EPARSE;
    }
    if (len > SL_ID_MAX) {
        sl_fmt(reason, reason_size, "id: longer than %d bytes", SL_ID_MAX);
        return SLUICE_EPARSE;
    }
    if (has_byte_below(id, len, 0x20, &where)) {
        sl_fmt(reason, reason_size, "id: control byte 0x%02x at offset %zu",
               (unsigned char)id[where], where);
        return SLUICE_EPARSE;
    }
    if (!sl_utf8_valid(id, len, &where)) {
        sl_fmt(reason, reason_size, "id: invalid UTF-8 at offset %zu",
               where);
        return SLUICE_EPARSE;
    }
    return SLUICE_OK;
}

sluice_err
sl_record_prepare(sl_record_scratch *s, const sl_feed_item *item,
                  sl_record *rec, char *reason, size_t reason_size)
{
    sluice_err err;

    memset(rec, 0, sizeof *rec);
    if (!item->url) {
        sl_fmt(reason, reason_size, "url: missing");
        return SLUICE_EPARSE;
    }
    if (!s->curl_url && !(s->curl_url = curl_url()))
        return SLUICE_ENOMEM;
    err = sl_url_check(item->url, item->url_len, s->curl_url, &s->url,
                       &s->origin, reason, reason_size);
    if (err != SLUICE_OK)
        return err;
    rec->url = s->url.data;
    rec->url_len = s->url.len;
    rec->origin = s->origin.data;
    rec->origin_len = s->origin.len;

    if (item->id) {
        err = check_id(item->id, item->id_len, reason, reason_size);
        if (err != SLUICE_OK)
            return err;
        rec->id = item->id;
        rec->id_len = item->id_len;
    } else {
        /* The default id is the normalised URL. */
        rec->id = rec->url;
        rec->id_len = rec->url_len;
    }

    if (item->key) {
        err = sl_key_check(item->key, item->key_len, reason, reason_size);
        if (err != SLUICE_OK)
            return err;
        rec->key = item->key;
        rec->key_len = item->key_len;
    } else {
        err = sl_key_derive(&s->key, &s->seg, rec->id, rec->id_len,
                            item->id != NULL, rec->url);
        if (err != SLUICE_OK)
            return err;
        char why[160];
        if (sl_key_check(s->key.data, s->key.len, why, sizeof why) !=
            SLUICE_OK) {
            sl_fmt(reason, reason_size,
                   "default %s; give the record an explicit key", why);
            return SLUICE_EKEY;
        }
        rec->key = s->key.data;
        rec->key_len = s->key.len;
    }
    rec->meta = item->meta;
    rec->meta_len = item->meta ? strlen(item->meta) : 0;
    return SLUICE_OK;
}
