/*
 * The SQL functions the SQLite queue's migration to schema 4 calls: a
 * stored URL's host put in the one spelling ingest now gives it (lower
 * case, an internationalised name in its ASCII form), its origin, and a
 * default key derived again from it. Registered on every connection that
 * may migrate; docs/queue.md says what the migration does with them.
 */
#include "queue_sqlite.h"

#include <string.h>

#include <curl/curl.h>

/* True when the host of a stored URL has an upper-case letter or a
 * non-ASCII byte: only then can the new rules change it. */
static bool
host_may_change(const char *url)
{
    sl_url_parts p;
    sl_url_split(url, &p);
    for (size_t i = 0; i < p.host_len; i++) {
        unsigned char c = (unsigned char)p.host[i];
        if (c >= 0x80 || (c >= 'A' && c <= 'Z'))
            return p.host_len > 0 && p.host[0] != '[';
    }
    return false;
}

static void
result_buf(sqlite3_context *ctx, const sl_buf *b)
{
    sqlite3_result_text(ctx, b->data, (int)b->len, SQLITE_TRANSIENT);
}

/* sluice_v4_url(url): the URL with its host in the one spelling, or NULL
 * when it has it already (or the new rules refuse it: it stays as it
 * was, and a run dead-letters it with its reason). */
static void
v4_url(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const char *url = (const char *)sqlite3_value_text(argv[0]);
    if (!url || !host_may_change(url)) {
        sqlite3_result_null(ctx);
        return;
    }
    sl_buf normal;
    char why[256];
    sl_buf_init(&normal);
    sluice_err err = sl_url_check(url, strlen(url), sqlite3_user_data(ctx),
                                  &normal, NULL, why, sizeof why);
    if (err == SLUICE_ENOMEM)
        sqlite3_result_error_nomem(ctx);
    else if (err != SLUICE_OK || strcmp(normal.data, url) == 0)
        sqlite3_result_null(ctx);
    else
        result_buf(ctx, &normal);
    sl_buf_free(&normal);
}

/* sluice_v4_origin(url): the origin of a normalised URL. */
static void
v4_origin(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const char *url = (const char *)sqlite3_value_text(argv[0]);
    sl_buf origin;
    sl_buf_init(&origin);
    if (!url)
        sqlite3_result_null(ctx);
    else if (sl_url_origin(url, &origin) != 0)
        sqlite3_result_error_nomem(ctx);
    else
        result_buf(ctx, &origin);
    sl_buf_free(&origin);
}

/* sluice_v4_key(old_url, new_url, key): for a record without an id of its
 * own, the default key of new_url when `key` is the default key old_url
 * gave; `key` otherwise. */
static void
v4_key(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const char *old_url = (const char *)sqlite3_value_text(argv[0]);
    const char *new_url = (const char *)sqlite3_value_text(argv[1]);
    const char *key = (const char *)sqlite3_value_text(argv[2]);
    sl_buf derived, scratch;
    sl_buf_init(&derived);
    sl_buf_init(&scratch);
    if (!old_url || !new_url || !key) {
        sqlite3_result_value(ctx, argv[2]);
    } else if (sl_key_derive(&derived, &scratch, "", 0, false, old_url) !=
               SLUICE_OK) {
        sqlite3_result_error_nomem(ctx);
    } else if (strcmp(derived.data, key) != 0) {
        sqlite3_result_value(ctx, argv[2]);
    } else if (sl_key_derive(&derived, &scratch, "", 0, false, new_url) !=
               SLUICE_OK) {
        sqlite3_result_error_nomem(ctx);
    } else {
        result_buf(ctx, &derived);
    }
    sl_buf_free(&derived);
    sl_buf_free(&scratch);
}

static void
free_parser(void *p)
{
    curl_url_cleanup(p);
}

sluice_err
sl_sqlite_register_host_functions(sluice_queue *q)
{
    sqlite3 *db = sl_sqlite_state(q)->db;
    const int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY;
    CURLU *parser = curl_url();
    if (!parser)
        return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    /* The parser is the function's to free, even when this fails. */
    int rc = sqlite3_create_function_v2(db, "sluice_v4_url", 1, flags, parser,
                                        v4_url, NULL, NULL, free_parser);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function_v2(db, "sluice_v4_origin", 1, flags, NULL,
                                        v4_origin, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function_v2(db, "sluice_v4_key", 3, flags, NULL,
                                        v4_key, NULL, NULL, NULL);
    return rc == SQLITE_OK ? SLUICE_OK
                           : sl_sqlite_fail(q, rc, "register functions");
}
