/*
 * A record as it goes into the queue: validated, with its URL normalised
 * (url.c), its object key derived or checked (key.c), and its origin
 * (scheme://host:port) worked out. The rules are DESIGN.md's "Concepts"
 * and "Errors and safety"; this folder is the one place that enforces
 * them at ingest.
 */
#ifndef SL_RECORD_H
#define SL_RECORD_H

#include <stdbool.h>
#include <stddef.h>

#include "../util.h"
#include "meta.h"

#define SL_URL_MAX     8192 /* bytes, as given in the feed */
#define SL_KEY_MAX     1024 /* bytes, the whole key */
#define SL_SEGMENT_MAX 255  /* bytes, one path segment of a key */
#define SL_ID_MAX      4096 /* bytes */

/* What a feed parser found in one line, before any validation. */
typedef struct {
    const char *id; /* NULL when the feed gave none */
    size_t id_len;
    const char *url; /* NULL when missing */
    size_t url_len;
    const char *key; /* NULL: derive one */
    size_t key_len;
    const char *meta; /* compact JSON object text, or NULL */
    /* The members of meta as its parser read them (so that they need not
     * be read again from the text), or NULL. */
    const sl_meta_reader *meta_read;
} sl_feed_item;

/* A validated record as the queue stores it: views, owned elsewhere. */
typedef struct {
    const char *id;
    size_t id_len;
    const char *url; /* normalised */
    size_t url_len;
    const char *key;
    size_t key_len;
    const char *origin; /* "https://example.com:443", host in lower case */
    size_t origin_len;
    const char *meta; /* compact JSON object text, or NULL */
    size_t meta_len;
    /* No earlier record of this feed has this id (sl_queue_feed_start);
     * false when unknown. */
    bool first;
} sl_record;

/* Buffers sl_record_prepare() reuses from one record to the next. */
typedef struct {
    sl_buf url, key, origin, seg;
    void *curl_url; /* a CURLU handle, made on first use */
    sl_meta_scratch meta;
} sl_record_scratch;

void sl_record_scratch_init(sl_record_scratch *s);
void sl_record_scratch_free(sl_record_scratch *s);

/*
 * Validate `item` and describe it in `rec`, whose views point into the
 * scratch buffers and the item (valid until the next call). Returns
 * SLUICE_OK, SLUICE_ENOMEM, or SLUICE_EURL / SLUICE_EKEY / SLUICE_EPARSE
 * with a one-line reason that names the field ("url: scheme ...").
 */
sluice_err sl_record_prepare(sl_record_scratch *s, const sl_feed_item *item,
                             sl_record *rec, char *reason, size_t reason_size);

/*
 * What every text field of a record must be: not empty, at most `max`
 * bytes, no control byte, UTF-8. SLUICE_OK, or `err` with a reason naming
 * `field` ("id: control byte 0x0a at offset 2").
 */
sluice_err sl_field_check(const char *field, const char *s, size_t len,
                          size_t max, sluice_err err, char *reason,
                          size_t reason_size);

/*
 * Check a URL and write its normalised form (no fragment, spaces and
 * non-ASCII bytes percent-encoded, the host name in lower case and an
 * internationalised one in its ASCII form, "xn--...") to `url` and its
 * origin to `origin` (either may be NULL). `reuse` is a CURLU handle to
 * reuse, or NULL. Same returns as sl_record_prepare.
 */
sluice_err sl_url_check(const char *text, size_t len, void *reuse, sl_buf *url,
                        sl_buf *origin, char *reason, size_t reason_size);

/*
 * The next hop of a redirect: `location` resolved against the URL `base`
 * through libcurl's URL API (a CURLU handle, `reuse`), fragment dropped,
 * its host normalised as sl_url_check does, into `next`. SLUICE_EPOLICY
 * when it is no URL or not http(s) (refused), SLUICE_EURL when its host
 * is no valid name or libcurl cannot write it out, SLUICE_ENOMEM.
 */
sluice_err sl_url_redirect(void *reuse, const char *base, const char *location,
                           sl_buf *next);

/* The origin of a normalised URL: scheme://host:port, in lower case. */
int sl_url_origin(const char *url, sl_buf *origin);

/* Check an object key against DESIGN.md's rules; SLUICE_EKEY if bad. */
sluice_err sl_key_check(const char *key, size_t len, char *reason,
                        size_t reason_size);

/*
 * The default key: for a record with an id, the id made safe plus the
 * extension of the URL's last path segment when the id has none; for a
 * bare URL, host/path made safe (wget -x style). `url` is normalised.
 */
sluice_err sl_key_derive(sl_buf *key, sl_buf *scratch, const char *id,
                         size_t id_len, bool has_id, const char *url);

/* A normalised URL's parts, as views into it. */
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
} sl_url_parts;

/* Split a normalised URL (as sl_url_check writes it) into its parts. */
void sl_url_split(const char *url, sl_url_parts *p);
/* No port, or the scheme's own (80, 443). */
bool sl_url_default_port(const sl_url_parts *p);

#endif /* SL_RECORD_H */
