/*
 * A yajl allocator over a block its owner keeps, for a parser made for
 * each short text (a feed line, a record's meta): the parser's handle,
 * lexer and stacks then cost no malloc or free, and the block is reused
 * by the next parser. What does not fit in the block comes from malloc.
 */
#ifndef SL_JSON_ARENA_H
#define SL_JSON_ARENA_H

#include <stddef.h>

#include <yajl/yajl_common.h>

/* Enough for yajl's handle, lexer, decode buffers and state stack on a
 * line of the usual kind; a longer one spills to malloc. */
#define SL_JSON_ARENA_SIZE 8192

typedef struct {
    yajl_alloc_funcs funcs;
    size_t used;
    _Alignas(max_align_t) unsigned char block[SL_JSON_ARENA_SIZE];
} sl_json_arena;

/*
 * The functions to pass to yajl_alloc for the next parser. The block is
 * taken back whole: every parser made with `a` before must have been
 * freed (yajl_free), and so everything it allocated. `a` must stay where
 * it is while the parser lives.
 */
yajl_alloc_funcs *sl_json_arena_begin(sl_json_arena *a);

#endif /* SL_JSON_ARENA_H */
