/*
 * What the libFuzzer harnesses in fuzz/ share: the entry point each one
 * defines (also called by tests/test_fuzz_regressions.c, which replays
 * the corpora in the normal build), a check that aborts when a property
 * fails, the feed driver and the checks made on every prepared record.
 */
#ifndef SL_FUZZ_COMMON_H
#define SL_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "source/feed.h"
#include "record/record.h"
#include "util.h"

/* libFuzzer's entry point: every harness defines it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Print where and why a property failed, then abort (a crash to libFuzzer
 * and a failed test to the replay driver). */
void fuzz_fail(const char *file, int line, const char *fmt, ...) SL_PRINTF(3, 4)
    __attribute__((noreturn));

#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond))                                                           \
            fuzz_fail(__FILE__, __LINE__, __VA_ARGS__);                        \
    } while (0)

/* A one-line, escaped, shortened copy of untrusted bytes for messages. */
const char *fuzz_show(const void *data, size_t len);

/*
 * Run `data` through the feed code as a file in format `format`, with the
 * production line limit, and prepare every record (fuzz_check_prepare).
 * Then read it again in small pieces through a socket and require the
 * same records, reasons and line numbers; then again, whole and in
 * pieces, with a small line limit (chosen from the input) and format
 * `small_format`, so the long-line paths run too.
 */
void fuzz_feed(const uint8_t *data, size_t size, sluice_format format,
               sluice_format small_format);

/*
 * The checks on a URL sl_url_check() accepted (from `in`) as `url` with
 * `origin`: the origin is scheme://host:port in lower case and is what
 * sl_url_origin() gives, and checking the normal form gives it back
 * unchanged, with the same origin.
 */
void fuzz_check_url_result(const char *in, size_t in_len, const sl_buf *url,
                           const sl_buf *origin);

/*
 * sl_record_prepare() on `item`, then the properties every outcome must
 * have: a reason naming the field when it is refused; when it is
 * accepted, a URL that sl_url_check() maps to itself with the same
 * origin, the origin sl_url_origin() gives, and a key that passes
 * sl_key_check(). A default key may be refused only for its length.
 * Returns the result; `rec` holds the record when it is SLUICE_OK.
 */
sluice_err fuzz_check_prepare(sl_record_scratch *s, const sl_feed_item *item,
                              sl_record *rec);

#endif /* SL_FUZZ_COMMON_H */
