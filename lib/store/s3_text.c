/*
 * The S3 store's encoders: the URI-encoding of a key's path, metadata
 * values and the content type made safe to send, the text of an error's
 * XML, base64 and hex for the checksum headers.
 */
#include "s3.h"

#include "../record/meta.h"

#include <string.h>

#include <openssl/evp.h>

static bool
is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

/* Append `s`, each byte `keep` refuses as %XX (upper-case hex). */
static int
percent_encode(sl_buf *b, const char *s, bool (*keep)(unsigned char c))
{
    static const char digits[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int rc;
        if (keep(*p)) {
            rc = sl_buf_putc(b, (char)*p);
        } else {
            char esc[3] = {'%', digits[*p >> 4], digits[*p & 15]};
            rc = sl_buf_append(b, esc, 3);
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

static bool
keep_in_path(unsigned char c)
{
    return is_unreserved(c) || c == '/';
}

/*
 * Append `s` URI-encoded the way SigV4 wants an S3 path: every byte but
 * the unreserved ones as %XX (upper-case hex), '/' kept between segments.
 * S3 does not encode the path twice, so the URL's path is the canonical
 * URI that libcurl signs. Returns 0, or -1 when out of memory.
 */
int
sl_s3_uri_encode(sl_buf *b, const char *s)
{
    return percent_encode(b, s, keep_in_path);
}

static bool
keep_in_meta(unsigned char c)
{
    return sl_meta_byte_kept(c);
}

/*
 * A metadata value S3 keeps as sent: printable ASCII but space; any other
 * byte (space, control, non-ASCII) becomes %XX. Returns 0, or -1.
 */
int
sl_s3_meta_encode(sl_buf *b, const char *s)
{
    return percent_encode(b, s, keep_in_meta);
}

/*
 * The origin's content type made a safe header value: runs of blanks
 * become one space, ends trimmed (SigV4 canonicalises values so; sending
 * them already so leaves no room for disagreement); anything but
 * printable ASCII, or nothing at all, gives application/octet-stream.
 */
void
sl_s3_content_type(char *dst, size_t size, const char *src)
{
    size_t n = 0;
    bool space = false;
    for (const unsigned char *p = (const unsigned char *)(src ? src : ""); *p;
         p++) {
        if (*p == ' ' || *p == '\t') {
            space = n > 0;
            continue;
        }
        if (*p < 0x20 || *p >= 0x7f || n + 3 >= size) {
            n = 0;
            break;
        }
        if (space)
            dst[n++] = ' ';
        space = false;
        dst[n++] = (char)*p;
    }
    dst[n] = '\0';
    if (n == 0)
        sl_fmt(dst, size, "application/octet-stream");
}

/*
 * The text of the first <tag>...</tag> in an XML body, with the five
 * predefined entities decoded and control bytes made spaces, cut to fit.
 * S3's error bodies are this simple; "" when the tag is not there.
 */
void
sl_s3_xml_text(const char *body, const char *tag, char *dst, size_t size)
{
    char open[40], close[40];
    dst[0] = '\0';
    if (!body)
        return;
    sl_fmt(open, sizeof open, "<%s>", tag);
    sl_fmt(close, sizeof close, "</%s>", tag);
    const char *start = strstr(body, open);
    if (!start)
        return;
    start += strlen(open);
    const char *end = strstr(start, close);
    if (!end)
        return;
    static const struct {
        const char *name;
        char c;
    } entities[] = {{"&amp;", '&'},
                    {"&lt;", '<'},
                    {"&gt;", '>'},
                    {"&quot;", '"'},
                    {"&apos;", '\''}};
    size_t n = 0;
    for (const char *p = start; p < end && n + 1 < size;) {
        char c = *p;
        size_t skip = 1;
        if (c == '&') {
            for (size_t i = 0; i < SL_ARRAY_LEN(entities); i++) {
                size_t len = strlen(entities[i].name);
                if ((size_t)(end - p) >= len &&
                    strncmp(p, entities[i].name, len) == 0) {
                    c = entities[i].c;
                    skip = len;
                    break;
                }
            }
        }
        dst[n++] = (unsigned char)c < 0x20 || c == 0x7f ? ' ' : c;
        p += skip;
    }
    dst[n] = '\0';
}

void
sl_s3_base64(char *dst, const unsigned char *src, size_t len)
{
    EVP_EncodeBlock((unsigned char *)dst, src, (int)len);
}

bool
sl_s3_unhex_sha256(const char *hex, unsigned char out[32])
{
    if (!hex || strlen(hex) != 64)
        return false;
    for (int i = 0; i < 64; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (v < 0)
            return false;
        if (i % 2 == 0)
            out[i / 2] = (unsigned char)(v << 4);
        else
            out[i / 2] |= (unsigned char)v;
    }
    return true;
}
