/*
 * The yajl allocator over a reused block (json_arena.h). Each allocation
 * carries a header with its size and where it lives; freeing one in the
 * block gives its space back only when it is the last, which is how yajl
 * frees most (its error message, its handle's parts in reverse order).
 */
#include "json_arena.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef union {
    struct {
        size_t size; /* what was asked for */
        int heap;    /* from malloc, not the block */
    } h;
    max_align_t align;
} header;

/* An allocation's whole footprint in the block. */
static size_t
footprint(size_t size)
{
    return sizeof(header) +
           (size + sizeof(header) - 1) / sizeof(header) * sizeof(header);
}

static header *
header_of(void *ptr)
{
    return (header *)ptr - 1;
}

static bool
is_last(const sl_json_arena *a, const header *h)
{
    return (const unsigned char *)h + footprint(h->h.size) ==
           a->block + a->used;
}

static void *
arena_malloc(void *ctx, size_t size)
{
    sl_json_arena *a = ctx;
    if (size > SIZE_MAX / 2)
        return NULL;
    header *h;
    if (footprint(size) <= sizeof a->block - a->used) {
        h = (header *)(a->block + a->used);
        a->used += footprint(size);
        h->h.heap = 0;
    } else {
        h = malloc(sizeof *h + size);
        if (!h)
            return NULL;
        h->h.heap = 1;
    }
    h->h.size = size;
    return h + 1;
}

static void
arena_free(void *ctx, void *ptr)
{
    sl_json_arena *a = ctx;
    if (!ptr)
        return;
    header *h = header_of(ptr);
    if (h->h.heap)
        free(h);
    else if (is_last(a, h))
        a->used -= footprint(h->h.size);
}

static void *
arena_realloc(void *ctx, void *ptr, size_t size)
{
    sl_json_arena *a = ctx;
    if (!ptr)
        return arena_malloc(ctx, size);
    header *h = header_of(ptr);
    if (size > SIZE_MAX / 2)
        return NULL;
    if (h->h.heap) {
        header *moved = realloc(h, sizeof *h + size);
        if (!moved)
            return NULL;
        moved->h.size = size;
        return moved + 1;
    }
    if (size <= h->h.size)
        return ptr;
    size_t start = (size_t)((unsigned char *)h - a->block);
    if (is_last(a, h) && footprint(size) <= sizeof a->block - start) {
        a->used = start + footprint(size);
        h->h.size = size;
        return ptr;
    }
    void *moved = arena_malloc(ctx, size);
    if (!moved)
        return NULL;
    memcpy(moved, ptr, h->h.size);
    arena_free(ctx, ptr);
    return moved;
}

yajl_alloc_funcs *
sl_json_arena_begin(sl_json_arena *a)
{
    a->funcs.malloc = arena_malloc;
    a->funcs.realloc = arena_realloc;
    a->funcs.free = arena_free;
    a->funcs.ctx = a;
    a->used = 0;
    return &a->funcs;
}
