/*
 * fault=gzipbomb's body: a gzip stream of 10,223 bytes that inflates to
 * 10 MiB of zeros, written without zlib as one deflate block with a
 * hand-made Huffman code. Made once, at the first request that asks.
 */
#include <stdint.h>

#include "origin.h"

#define BOMB_SIZE (10u << 20) /* the inflated size */

/* Bits in deflate's order: packed into bytes from the least significant
 * bit up (RFC 1951, 3.1.1). */
struct bit_writer {
    struct buf *out;
    unsigned acc;
    unsigned count;
};

/* Append the low `count` bits of value, least significant first: how
 * deflate stores header fields and extra bits. */
static void
bits_put(struct bit_writer *w, unsigned value, unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        w->acc |= ((value >> i) & 1u) << w->count;
        if (++w->count == 8) {
            unsigned char byte = (unsigned char)w->acc;

            buf_append(w->out, &byte, 1);
            w->acc = 0;
            w->count = 0;
        }
    }
}

/* Append a Huffman code of len bits, most significant bit first. */
static void
bits_code(struct bit_writer *w, unsigned code, unsigned len)
{
    for (unsigned i = len; i-- > 0;)
        bits_put(w, (code >> i) & 1u, 1);
}

static void
put_le32(struct buf *b, uint32_t v)
{
    unsigned char bytes[4] = {(unsigned char)v, (unsigned char)(v >> 8),
                              (unsigned char)(v >> 16),
                              (unsigned char)(v >> 24)};

    buf_append(b, bytes, sizeof bytes);
}

/* The CRC-32 (gzip's, reflected 0xEDB88320) of len zero bytes. */
static uint32_t
crc32_of_zeros(uint64_t len)
{
    uint32_t table[256];
    uint32_t crc = 0xffffffffu;

    for (uint32_t i = 0; i < 256; i++) {
        uint32_t v = i;

        for (int k = 0; k < 8; k++)
            v = v & 1 ? 0xedb88320u ^ (v >> 1) : v >> 1;
        table[i] = v;
    }
    for (uint64_t i = 0; i < len; i++)
        crc = table[crc & 0xff] ^ (crc >> 8);
    return crc ^ 0xffffffffu;
}

/*
 * fault=gzipbomb's body, made on first use: a gzip member (RFC 1952)
 * whose one deflate block inflates to BOMB_SIZE zero bytes, 1026 times
 * its own size (10,223 bytes). It is a dynamic-Huffman block with the
 * three symbols it needs: literal 0 (2 bits), end of block (2 bits), and
 * length 258 (1 bit) with distance 1 (1 bit), so each 258 zeros cost two
 * bits. No zlib: the codes are few enough to write out by hand. *b holds
 * it until the origin stops; later calls just return it.
 */
const struct buf *
gzip_bomb(struct buf *b)
{
    /* The order code length code lengths are sent in (RFC 1951, 3.2.7). */
    static const unsigned char order[19] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                            11, 4,  12, 3, 13, 2, 14, 1, 15};
    static const unsigned char head[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    struct bit_writer w = {.out = b};

    if (b->len > 0)
        return b;
    buf_append(b, head, sizeof head); /* deflate, no name, no mtime, Unix */
    bits_put(&w, 1, 1);               /* BFINAL: the last block */
    bits_put(&w, 2, 2);               /* BTYPE: dynamic Huffman codes */
    bits_put(&w, 286 - 257, 5);       /* HLIT: literal/length codes 0..285 */
    bits_put(&w, 2 - 1, 5);           /* HDIST: distance codes 0..1 */
    bits_put(&w, 18 - 4, 4);          /* HCLEN: up to order[17], which is 1 */
    /* The code length code: 18 (a run of zeros) is "0", 1 is "10" and
     * 2 is "11". */
    for (int i = 0; i < 18; i++) {
        unsigned sym = order[i];

        bits_put(&w, sym == 18 ? 1 : sym == 1 || sym == 2 ? 2 : 0, 3);
    }
    /* The literal/length code lengths: 0 -> 2, 1..255 none, 256 -> 2,
     * 257..284 none, 285 -> 1; then the distance code lengths: 0 -> 1,
     * 1 -> 1 (unused; it makes the code complete). */
    bits_code(&w, 3, 2);
    bits_code(&w, 0, 1);
    bits_put(&w, 138 - 11, 7);
    bits_code(&w, 0, 1);
    bits_put(&w, 117 - 11, 7);
    bits_code(&w, 3, 2);
    bits_code(&w, 0, 1);
    bits_put(&w, 28 - 11, 7);
    bits_code(&w, 2, 2);
    bits_code(&w, 2, 2);
    bits_code(&w, 2, 2);
    /* The data, in the canonical codes those lengths give: 285 is "0",
     * literal 0 "10", end of block "11"; distance code 0 is "0". */
    uint64_t left = BOMB_SIZE - 1;
    bits_code(&w, 2, 2); /* one zero byte */
    for (; left >= 258; left -= 258) {
        bits_code(&w, 0, 1); /* 258 bytes copied from ... */
        bits_code(&w, 0, 1); /* ... 1 byte back: 258 more zeros */
    }
    for (; left > 0; left--)
        bits_code(&w, 2, 2);
    bits_code(&w, 3, 2);
    if (w.count > 0)
        bits_put(&w, 0, 8 - w.count);
    put_le32(b, crc32_of_zeros(BOMB_SIZE));
    put_le32(b, BOMB_SIZE); /* ISIZE: the size modulo 2^32 */
    return b;
}
