/*
 * The libcurl reference that URL validation is held against (by
 * tests/test_record.c and the url fuzz harness): what libcurl itself
 * makes of a URL.
 */
#ifndef SL_TEST_CURL_REFERENCE_H
#define SL_TEST_CURL_REFERENCE_H

typedef enum {
    CURL_REF_REFUSED,     /* curl does not parse the text */
    CURL_REF_ACCEPTED,    /* *url and *origin are set (see below) */
    CURL_REF_UNPRINTABLE, /* curl parsed it, then could not print it */
    CURL_REF_NOMEM
} curl_ref;

/*
 * What libcurl makes of `text` (trimmed, terminated): in *url the URL as
 * curl prints it once the fragment is gone and the host is what curl
 * would connect to (CURLU_PUNYCODE's ASCII form of an internationalised
 * name, in lower case; CURL_REF_REFUSED when curl cannot convert it);
 * in *origin the origin built
 * from curl's own parts (scheme, host with its zone id, port with the
 * scheme's default filled in, in lower case), or NULL when curl gives no
 * host or port ("file:///x"). Both are NULL unless CURL_REF_ACCEPTED;
 * the caller frees them with free().
 */
curl_ref curl_reference(const char *text, char **url, char **origin);

#endif
