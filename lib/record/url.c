/*
 * URLs at ingest: checked and normalised through libcurl's URL API, the
 * host in lower case and an internationalised one in its ASCII form
 * (punycode, through libidn2), split into their parts, and reduced to
 * their origin (scheme://host:port), the unit the cap counts by.
 */
#include "record.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <idn2.h>

static void
trim(const char **s, size_t *len)
{
    while (*len && isspace((unsigned char)(*s)[0]))
        (*s)++, (*len)--;
    while (*len && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}


/* Split a normalised URL into its parts (record.h). One pass, by hand:
 * the URL is short, and libc's search functions cost more to set up than
 * to run on it. */
void
sl_url_split(const char *url, sl_url_parts *p)
{
    memset(p, 0, sizeof *p);
    const char *auth = NULL; /* the first "://" */
    for (const char *c = url; *c && !auth; c++)
        if (c[0] == ':' && c[1] == '/' && c[2] == '/')
            auth = c;
    p->scheme = url;
    p->scheme_len = auth ? (size_t)(auth - url) : 0;
    p->https = p->scheme_len == 5;
    auth = auth ? auth + 3 : url;
    /* The authority ends at the path, query or fragment; the host
     * follows the first '@'; a port follows the last ':' that is not
     * inside [an IPv6 literal]. */
    const char *end = auth, *at = NULL, *colon = NULL, *bracket = NULL;
    for (; *end && *end != '/' && *end != '?' && *end != '#'; end++) {
        if (*end == '@' && !at)
            at = end;
        else if (*end == ':')
            colon = end;
        else if (*end == ']')
            bracket = end;
    }
    if (at)
        auth = at + 1;
    p->host = auth;
    p->host_len = (size_t)(end - auth);
    if (colon && colon >= auth && (!bracket || bracket < colon)) {
        p->port = colon + 1;
        p->port_len = (size_t)(end - p->port);
        p->host_len = (size_t)(colon - auth);
    }
    p->path = end;
    const char *c = end;
    while (*c && *c != '?' && *c != '#')
        c++;
    p->path_len = (size_t)(c - end);
    if (*c == '?') {
        p->query = ++c;
        while (*c && *c != '#')
            c++;
        p->query_len = (size_t)(c - p->query);
    }
}

bool
sl_url_default_port(const sl_url_parts *p)
{
    const char *def = p->https ? "443" : "80";
    return p->port_len == 0 ||
           (p->port_len == strlen(def) && !memcmp(p->port, def, p->port_len));
}

/* The origin of a URL split into `p`. */
static int
origin_of(const sl_url_parts *p, sl_buf *origin)
{
    const char *port = p->port_len ? p->port : p->https ? "443" : "80";
    size_t port_len = p->port_len ? p->port_len : p->https ? 3 : 2;
    size_t len = p->scheme_len + 3 + p->host_len + 1 + port_len;
    sl_buf_clear(origin);
    if (sl_buf_reserve(origin, len))
        return -1;
    char *d = origin->data;
    for (size_t i = 0; i < p->scheme_len; i++)
        *d++ = (char)tolower((unsigned char)p->scheme[i]);
    memcpy(d, "://", 3);
    d += 3;
    for (size_t i = 0; i < p->host_len; i++)
        *d++ = (char)tolower((unsigned char)p->host[i]);
    *d++ = ':';
    memcpy(d, port, port_len);
    origin->len = len;
    origin->data[len] = '\0';
    return 0;
}

int
sl_url_origin(const char *url, sl_buf *origin)
{
    sl_url_parts p;
    sl_url_split(url, &p);
    return origin_of(&p, origin);
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

/* What each byte may be in a URL already in the form curl prints. */
enum {
    B_NAME = 1,   /* in a host name: a-z, 0-9, '-', '.' */
    B_LETTER = 2, /* a-z */
    B_PATH = 4,   /* in the path, as it is */
    B_QUERY = 8,  /* in the query, as it is */
    B_PQ = B_PATH | B_QUERY,
};

/* Printable ASCII but for the bytes curl would encode in a path ('"',
 * '#', '<', '>', '\\', '^', '`', '{', '|', '}'), '^' allowed in a query;
 * nothing else (space, control bytes, non-ASCII). */
static const unsigned char url_byte[256] = {
    ['!'] = B_PQ,
    ['$' ... ','] = B_PQ,
    ['-' ... '.'] = B_NAME | B_PQ,
    ['/'] = B_PQ,
    ['0' ... '9'] = B_NAME | B_PQ,
    [':' ... ';'] = B_PQ,
    ['='] = B_PQ,
    ['?' ... '['] = B_PQ,
    [']'] = B_PQ,
    ['^'] = B_QUERY,
    ['_'] = B_PQ,
    ['a' ... 'z'] = B_NAME | B_LETTER | B_PQ,
    ['~'] = B_PQ,
};

/*
 * True when curl accepts a URL and prints it as it is: lower-case scheme,
 * a lower-case host name that is not an IP address in any spelling (or
 * an IPv4 address in its usual one), a port of 1 to 65535 without leading
 * zeros, a path with no dot segments, no userinfo, no fragment, nothing
 * to encode. Most feed URLs are; for them, asking curl to parse the URL
 * and print it back (the greater part of checking it) can be skipped.
 * Conservative: when in doubt, false (and curl is asked). test_record and
 * the url fuzz harness hold this to curl's own parser.
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
        unsigned char b = url_byte[(unsigned char)s[i]];
        if (!(b & B_NAME))
            return false;
        letter = letter || (b & B_LETTER);
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
        unsigned port = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9' && i - digits < 6)
            port = port * 10 + (unsigned)(s[i++] - '0');
        /* curl refuses a port past 65535. */
        if (i == digits || i - digits > 5 || s[digits] == '0' ||
            port > 65535)
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
        if (!(url_byte[(unsigned char)c] & B_PATH))
            return false;
    }
    /* curl drops an empty query: "http://h/?" prints as "http://h/". */
    if (i + 1 == len)
        return false;
    for (; i < len; i++)
        if (!(url_byte[(unsigned char)s[i]] & B_QUERY))
            return false;
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

/*
 * The ASCII form of an internationalised host name, as libcurl itself
 * turns one into before it resolves it: IDNA2008 with UTS #46 mapping
 * (NFC, lower case), non-transitional, else transitional. libcurl's own
 * CURLU_PUNYCODE cannot be used: before 8.1.0 it asks libidn2 to read the
 * name in the locale's charset, and in a program that never set a locale
 * (as a library cannot) every non-ASCII name fails as "out of memory"
 * (curl issue 10984). The caller frees *ascii with idn2_free().
 */
static sluice_err
idn_to_ascii(const char *host, char **ascii, char *reason,
             size_t reason_size)
{
    uint8_t *out = NULL;
    int rc = idn2_lookup_u8((const uint8_t *)host, &out,
                            IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    if (rc != IDN2_OK && rc != IDN2_MALLOC) {
        int again = idn2_lookup_u8((const uint8_t *)host, &out,
                                   IDN2_TRANSITIONAL);
        if (again == IDN2_OK || again == IDN2_MALLOC)
            rc = again;
    }
    if (rc == IDN2_MALLOC)
        return SLUICE_ENOMEM;
    if (rc != IDN2_OK) {
        char shown[160];
        sl_quote(shown, sizeof shown, host, strlen(host), 100);
        sl_fmt(reason, reason_size,
               "url: host \"%s\" is not a valid internationalised domain "
               "name: %s",
               shown, idn2_strerror(rc));
        return SLUICE_EURL;
    }
    *ascii = (char *)out;
    return SLUICE_OK;
}

/*
 * The URL `url` (as curl prints it) with its host in its one spelling,
 * into `out`: a name in lower case, an internationalised one in its ASCII
 * form, so that "Bücher.example" and "xn--bcher-kva.example" are one
 * origin and libcurl is never asked to convert a name. An IPv6 literal
 * keeps curl's spelling. The host is rewritten in the text, not through
 * curl's URL API, whose handling of a host set back depends on how it
 * was parsed. *changed is false when the URL is in its one spelling
 * already (`out` is then untouched). SLUICE_EURL with a reason for a
 * name that is no valid IDN; SLUICE_ENOMEM.
 */
static sluice_err
normal_host(const char *url, sl_buf *out, bool *changed, char *reason,
            size_t reason_size)
{
    sl_url_parts p;
    char *ascii = NULL;
    *changed = false;
    sl_url_split(url, &p);
    if (p.host_len == 0 || p.host[0] == '[')
        return SLUICE_OK;
    bool ascii_only = true, upper = false;
    for (size_t i = 0; i < p.host_len; i++) {
        unsigned char c = (unsigned char)p.host[i];
        ascii_only = ascii_only && c < 0x80;
        upper = upper || (c >= 'A' && c <= 'Z');
    }
    if (ascii_only && !upper)
        return SLUICE_OK;
    /* A %-escape beside non-ASCII: libcurl and libidn2 read the escape
     * differently ("%25ß": "%25ss" here, "%ss" to curl). Refused. */
    if (!ascii_only && memchr(p.host, '%', p.host_len)) {
        sl_fmt(reason, reason_size,
               "url: host's %%-escapes decode to another host in its "
               "ASCII form");
        return SLUICE_EURL;
    }
    const char *name = p.host;
    size_t name_len = p.host_len;
    if (!ascii_only) {
        char *host = sl_strndup(p.host, p.host_len);
        if (!host)
            return SLUICE_ENOMEM;
        sluice_err err = idn_to_ascii(host, &ascii, reason, reason_size);
        sl_free(host);
        if (err != SLUICE_OK)
            return err;
        name = ascii;
        name_len = strlen(ascii);
    }
    size_t head = (size_t)(p.host - url);
    sl_buf_clear(out);
    int bad = sl_buf_append(out, url, head) ||
              sl_buf_append_lower(out, name, name_len) ||
              sl_buf_append(out, p.host + p.host_len,
                            strlen(p.host + p.host_len));
    idn2_free(ascii);
    if (bad)
        return SLUICE_ENOMEM;
    *changed = true;
    return SLUICE_OK;
}

/* True when curl reads `url` back as itself: a rewritten or %-escaped
 * host did not turn into another one. */
static sluice_err
reads_back(CURLU *h, const char *url, size_t len, bool *same)
{
    char *again = NULL;
    CURLUcode rc = curl_url_set(h, CURLUPART_URL, url,
                                needs_encoding(url, len) ? CURLU_URLENCODE
                                                         : 0);
    if (rc == CURLUE_OK)
        rc = curl_url_get(h, CURLUPART_URL, &again, 0);
    *same = rc == CURLUE_OK && strcmp(again, url) == 0;
    curl_free(again);
    return rc == CURLUE_OUT_OF_MEMORY ? SLUICE_ENOMEM : SLUICE_OK;
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
    sl_buf rewritten;

    sl_buf_init(&rewritten);

    trim(&text, &len);
    if (sl_field_check("url", text, len, SL_URL_MAX, SLUICE_EURL, reason,
                       reason_size) != SLUICE_OK)
        return SLUICE_EURL;
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

    /* The text is a slice: terminated, for curl_url_set and the split. */
    copy = len < sizeof stack_copy ? stack_copy : sl_malloc(len + 1);
    if (!copy) {
        err = SLUICE_ENOMEM;
        goto done;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    const char *normal = copy;
    if (!already_normal(text, len)) {
        if (!h && !(h = curl_url())) {
            err = SLUICE_ENOMEM;
            goto done;
        }
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
        if (sl_find_control(normal, len, &where) ||
            !sl_utf8_valid(normal, len, &where)) {
            sl_fmt(reason, reason_size,
                   "url: host has a %%-escaped control byte or invalid "
                   "UTF-8");
            goto done;
        }
        bool host_changed;
        err = normal_host(full, &rewritten, &host_changed, reason,
                          reason_size);
        if (err != SLUICE_OK)
            goto done;
        err = SLUICE_EURL;
        if (host_changed) {
            normal = rewritten.data;
            len = rewritten.len;
        }
        /* What it prints may then spell another host: "4%2e967295"
         * prints as "4.967295", which is 4.14.194.127. Such a URL has no
         * normal form (and would be two origins for one server). The
         * same holds for a host rewritten in its one spelling. */
        if (host_escaped || host_changed) {
            bool same;
            if (reads_back(h, normal, len, &same) != SLUICE_OK) {
                err = SLUICE_ENOMEM;
                goto done;
            }
            if (!same) {
                sl_fmt(reason, reason_size,
                       host_escaped
                           ? "url: host's %%-escapes decode to another host"
                           : "url: host in lower case or ASCII form is "
                             "another host to libcurl");
                goto done;
            }
        }
    }
    sl_url_parts p;
    sl_url_split(normal, &p);
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
    if (origin && origin_of(&p, origin) != 0) {
        err = SLUICE_ENOMEM;
        goto done;
    }
    err = SLUICE_OK;
done:
    sl_buf_free(&rewritten);
    curl_free(full);
    if (copy && copy != stack_copy)
        sl_free(copy);
    if (h != reuse)
        curl_url_cleanup(h);
    return err;
}

sluice_err
sl_url_redirect(void *reuse, const char *base, const char *location,
                sl_buf *next)
{
    CURLU *h = reuse;
    char *scheme = NULL, *full = NULL;
    CURLUcode rc = curl_url_set(h, CURLUPART_URL, base, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_set(h, CURLUPART_URL, location, CURLU_URLENCODE);
    if (rc == CURLUE_OK)
        rc = curl_url_set(h, CURLUPART_FRAGMENT, NULL, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_get(h, CURLUPART_SCHEME, &scheme, 0);
    bool web = rc == CURLUE_OK &&
               (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
    curl_free(scheme);
    if (!web)
        return SLUICE_EPOLICY;
    if (curl_url_get(h, CURLUPART_URL, &full, 0) != CURLUE_OK || !full)
        return SLUICE_EURL;
    /* The next hop's host in its one spelling too, so that its origin is
     * the one its requests are counted under. */
    char why[256];
    bool changed;
    sluice_err err = normal_host(full, next, &changed, why, sizeof why);
    if (err == SLUICE_OK && !changed) {
        sl_buf_clear(next);
        if (sl_buf_append(next, full, strlen(full)))
            err = SLUICE_ENOMEM;
    }
    curl_free(full);
    return err;
}
