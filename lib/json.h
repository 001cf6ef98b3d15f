/*
 * JSON helpers on yajl, sluice's JSON library: yajl's event parser is
 * what lets ingest keep up with a million records (no tree per line).
 * Here: copying a JSON object's members into a generator (for meta), and
 * building small JSON texts.
 */
#ifndef SL_JSON_H
#define SL_JSON_H

#include <stddef.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "util.h"

/*
 * Forwards parser events into a generator. With `strip_outer`, the
 * outermost map's open and close are dropped, so an object's members can
 * be merged into a map the caller opened. `depth` counts open containers.
 */
typedef struct {
    yajl_gen gen;
    int depth;
    int strip_outer;
    int not_object; /* set when the top-level value is not a map */
    int bad_string; /* set when an escape decodes to invalid UTF-8 */
} sl_json_forward;

extern const yajl_callbacks sl_json_forward_callbacks;

/* The reason given when a string's \u escapes decode to invalid UTF-8. */
#define SL_JSON_BAD_ESCAPE "a \\u escape is an unpaired surrogate"

/*
 * Parse `text` (must hold one JSON object) and write its members into
 * `gen`, inside a map the caller has opened. Returns 0, or -1 with a
 * reason ("not a JSON object", "parse error: ...").
 */
int sl_json_copy_members(yajl_gen gen, const char *text, size_t len,
                         char *reason, size_t reason_size);

/*
 * 1 when `body` nests containers deeper than `max`, 0 when not (or it is
 * no JSON: the parse that follows says why), -1 when out of memory. A
 * pass of yajl's event parser, which keeps no tree: yajl_tree_parse and
 * yajl_tree_free recurse once per level, so a text of a million '['
 * overflows the stack. Check a text from elsewhere before building its
 * tree.
 */
int sl_json_too_deep(const char *body, size_t len, size_t max);

/* A generator producing compact output, UTF-8 validated. NULL if no
 * memory. */
yajl_gen sl_json_gen_new(void);

/* Generate the value `v` of a parsed tree (yajl_tree.h) into `gen`. */
struct yajl_val_s;
void sl_json_gen_tree(yajl_gen gen, const struct yajl_val_s *v);

/* The string member `name` of a parsed object (yajl_tree.h), or NULL
 * when it has none or it is not a string. */
const char *sl_json_member_str(const struct yajl_val_s *obj,
                               const char *name);

/* The generator's output so far (NUL-terminated: yajl's buffer always
 * is) and its length. */
const char *sl_json_gen_text(yajl_gen gen, size_t *len);

/* Describe a yajl parse error in one line: "parse error at byte 12". */
void sl_json_error(yajl_handle h, const char *text, size_t len, char *out,
                   size_t out_size);

#endif /* SL_JSON_H */
