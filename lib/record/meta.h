/*
 * A record's meta passed on with its object: each top-level member of the
 * JSON object becomes one metadata field (S3's x-amz-meta-NAME).
 *
 * The mapping (README, "Meta on the object"):
 *  - the name: the member's name, ASCII letters lower-cased, digits and
 *    '-' kept, every other byte '-' ("Image URL" -> "image-url");
 *  - the value: a string as it is, anything else (a number, true, an
 *    object...) as its compact JSON text; sent with every byte that is
 *    not printable ASCII, and space, as %XX (sl_meta_byte_kept);
 *  - at most SL_META_MAX bytes in all (names and values as sent): S3's
 *    2 KB limit on user metadata; two members of one name, or a member
 *    named like a field sluice sets itself, are refused at ingest.
 */
#ifndef SLUICE_RECORD_META_H
#define SLUICE_RECORD_META_H

#include <stdbool.h>
#include <stddef.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "sluice/sluice.h"
#include "../json_arena.h"
#include "../util.h"

#define SL_META_MAX 2048

/* A byte a metadata value carries as it is; others are sent as %XX. */
static inline bool
sl_meta_byte_kept(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

/* One field: its name (mapped) and value (not yet %-encoded). Return
 * non-zero to stop. */
typedef int sl_meta_field_fn(void *ctx, const char *name, const char *value);

/*
 * Hand each field of `meta` (a JSON object's text; fn may be NULL, to
 * check) to fn. SLUICE_OK; SLUICE_ENOMEM; or SLUICE_EPARSE with a reason:
 * not an object, two members of one name, a reserved name, or more than
 * SL_META_MAX bytes.
 */
sluice_err sl_meta_fields(const char *meta, sl_meta_field_fn *fn, void *ctx,
                   char *reason, size_t reason_size);

/*
 * Reading meta from yajl's events (sl_meta_reader_callbacks, ctx the
 * reader): each top-level member's name and value, as the fields are
 * made of them. A parser of meta's text hands it every event; so may a
 * parser of a larger text, meta's events as they come, so that meta is
 * read once.
 */
typedef struct {
    sl_buf members; /* a name and a value each: C strings in a row */
    size_t strings; /* in `members` */
    yajl_gen gen;   /* re-emits values that are not strings */
    int depth;      /* containers open */
    int not_object; /* the events are of no JSON object */
    int nomem;
} sl_meta_reader;

extern const yajl_callbacks sl_meta_reader_callbacks;

void sl_meta_reader_init(sl_meta_reader *r);
void sl_meta_reader_free(sl_meta_reader *r);
/* Forget the meta read last, to read another. */
void sl_meta_reader_start(sl_meta_reader *r);

/* sl_meta_fields on a meta `r` has read, all of it. */
sluice_err sl_meta_fields_read(const sl_meta_reader *r, sl_meta_field_fn *fn,
                               void *ctx, char *reason, size_t reason_size);

/* What sl_meta_fields_with reuses from one call to the next. */
typedef struct {
    sl_meta_reader reader;
    sl_json_arena arena; /* the parser's memory */
} sl_meta_scratch;

void sl_meta_scratch_init(sl_meta_scratch *s);
void sl_meta_scratch_free(sl_meta_scratch *s);

/* sl_meta_fields, with its memory kept in `s` for the next call. */
sluice_err sl_meta_fields_with(sl_meta_scratch *s, const char *meta,
                               sl_meta_field_fn *fn, void *ctx, char *reason,
                               size_t reason_size);

/* Fields sluice sets itself on every object; a member may not take them. */
#define SL_META_SOURCE_URL  "source-url"
#define SL_META_ORIGIN_ETAG "origin-etag"

#endif /* SLUICE_RECORD_META_H */
