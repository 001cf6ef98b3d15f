#define _GNU_SOURCE /* newlocale, uselocale */
#include "curl_reference.h"

#include <locale.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

/* curl_url_get(h, part, out, flags), with an internationalised host in
 * the ASCII form curl's own CURLU_PUNYCODE gives. libcurl 7.88 reads the
 * name in the locale's charset, so the conversion runs in a UTF-8 locale
 * of this thread's own (uselocale), whatever the process's. */
static CURLUcode
get_ascii_host(CURLU *h, CURLUPart part, char **out)
{
    static locale_t utf8;
    if (!utf8)
        utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    if (!utf8)
        return CURLUE_OUT_OF_MEMORY;
    char *host = NULL;
    CURLUcode rc = curl_url_get(h, CURLUPART_HOST, &host, 0);
    bool idn = false;
    for (const char *c = host; rc == CURLUE_OK && *c; c++)
        idn = idn || (unsigned char)*c >= 0x80;
    curl_free(host);
    /* (For an ASCII name, 7.88 prints a '%' in the host unescaped when
     * asked for punycode: only an IDN is asked for so.) */
    locale_t was = uselocale(utf8);
    rc = curl_url_get(h, part, out, idn ? CURLU_PUNYCODE : 0);
    uselocale(was);
    return rc;
}

/* A host name in lower case in the printed URL (not an IPv6 literal). */
static void
lower_host(char *url)
{
    char *host = strstr(url, "://");
    if (!host)
        return;
    host += 3;
    char *end = host + strcspn(host, "/?#");
    for (char *c = host; c < end; c++)
        if (*c == '@')
            host = c + 1;
    if (*host == '[')
        return;
    for (char *c = host; c < end && *c != ':'; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
}

/* The origin from curl's parts. curl gives the host of
 * "[fe80::1%25eth0]" as "[fe80::1]": the zone goes back in. */
static char *
origin_of(const char *scheme, const char *host, const char *zone,
          const char *port)
{
    size_t host_len = strlen(host);
    size_t cap = strlen(scheme) + host_len + strlen(port) + 16 +
                 (zone ? strlen(zone) : 0);
    char *origin = malloc(cap);
    if (!origin)
        return NULL;
    if (zone && host_len > 1 && host[host_len - 1] == ']')
        snprintf(origin, cap, "%s://%.*s%%25%s]:%s", scheme,
                 (int)(host_len - 1), host, zone, port);
    else
        snprintf(origin, cap, "%s://%s:%s", scheme, host, port);
    for (char *c = origin; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    return origin;
}

curl_ref
curl_reference(const char *text, char **url, char **origin)
{
    CURLU *h = curl_url();
    char *full = NULL, *scheme = NULL, *host = NULL, *zone = NULL;
    char *port = NULL;
    curl_ref ref = CURL_REF_NOMEM;
    unsigned flags = 0;

    *url = *origin = NULL;
    if (!h)
        return CURL_REF_NOMEM;
    for (const char *c = text; *c; c++)
        if (*c == ' ' || (unsigned char)*c >= 0x80)
            flags = CURLU_URLENCODE;
    if (curl_url_set(h, CURLUPART_URL, text, flags) != CURLUE_OK) {
        ref = CURL_REF_REFUSED;
        goto done;
    }
    if (curl_url_set(h, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
        ref = CURL_REF_UNPRINTABLE;
        goto done;
    }
    CURLUcode printed = get_ascii_host(h, CURLUPART_URL, &full);
    if (printed != CURLUE_OK) {
        /* 7.88 answers "out of memory" for a name that is no IDN. */
        ref = printed == CURLUE_OUT_OF_MEMORY ? CURL_REF_REFUSED
                                              : CURL_REF_UNPRINTABLE;
        goto done;
    }
    lower_host(full);
    curl_url_get(h, CURLUPART_ZONEID, &zone, 0);
    if (get_ascii_host(h, CURLUPART_HOST, &host) == CURLUE_OK &&
        curl_url_get(h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) ==
            CURLUE_OK &&
        !(*origin = origin_of(scheme, host, zone, port)))
        goto done;
    if (!(*url = strdup(full))) {
        free(*origin);
        *origin = NULL;
        goto done;
    }
    ref = CURL_REF_ACCEPTED;
done:
    curl_free(full);
    curl_free(scheme);
    curl_free(host);
    curl_free(zone);
    curl_free(port);
    curl_url_cleanup(h);
    return ref;
}
