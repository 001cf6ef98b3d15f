#include "curl_reference.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

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
        curl_url_get(h, CURLUPART_URL, &full, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
        ref = CURL_REF_UNPRINTABLE;
        goto done;
    }
    curl_url_get(h, CURLUPART_ZONEID, &zone, 0);
    if (curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
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
