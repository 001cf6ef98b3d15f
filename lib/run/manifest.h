/*
 * The run's manifest (--manifest FILE): a JSON Lines file with a line for
 * each record stored, {"id", "key", "url", "size", "sha256", "meta"},
 * appended and made durable before the records are marked done, so that
 * a done record is always in it. A crash may leave a line whose record is
 * fetched again (its key then has two lines: the last one holds), never a
 * torn line: one left by a crash is cut off when the file is opened.
 */
#ifndef SLUICE_RUN_MANIFEST_H
#define SLUICE_RUN_MANIFEST_H

#include <stdint.h>

#include "sluice/sluice.h"

#include "../util.h"

typedef struct {
    int fd; /* -1: no manifest */
    char *path;
    sl_buf pending; /* lines not yet written */
} sl_manifest;

/* Open (creating) `path` for appending; a torn last line is cut off. */
sluice_err sl_manifest_open(sl_manifest *m, const char *path, char *errbuf,
                            size_t errbuf_size);
/* The line of one stored record, buffered. */
sluice_err sl_manifest_add(sl_manifest *m, const char *id, const char *key,
                           const char *url, uint64_t size,
                           const char *sha256_hex, const char *meta);
/* Write the buffered lines and make them durable (fdatasync). */
sluice_err sl_manifest_sync(sl_manifest *m, char *errbuf, size_t errbuf_size);
void sl_manifest_close(sl_manifest *m);

#endif /* SLUICE_RUN_MANIFEST_H */
