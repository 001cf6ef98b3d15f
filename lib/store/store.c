/*
 * The store's wrappers: opening the backend a location names (through
 * the registry, backend.h), object allocation and hashing, and the
 * fault-injection point for writes in test builds.
 */
#include "store.h"

#include <assert.h>
#include <stdarg.h>
#include <string.h>

#include <openssl/evp.h>

#include "../fault.h"
#include "async.h"

sluice_err
sl_store_fail(sl_store *s, sluice_err err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_vfmt(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    return err;
}

sluice_err
sl_store_open(const char *location, const sl_store_opts *opts,
              sl_store **out, char *errbuf, size_t errbuf_size)
{
    static const sl_store_opts defaults = {16, NULL, -1, NULL};
    *out = NULL;
    if (!opts)
        opts = &defaults;
    const sl_store_ops *ops =
        (const sl_store_ops *)sl_backend_find(SL_FAMILY_STORE, location);
    if (!ops) {
        sl_fmt(errbuf, errbuf_size, "%s: no store for this scheme "
               "(a directory or s3://BUCKET/PREFIX)", location);
        return SLUICE_EINVAL;
    }
    sl_store *s = sl_calloc(1, sizeof *s);
    if (!s || !(s->location = sl_strdup(location)) ||
        !(s->state = sl_calloc(1, ops->state_size)) ||
        !(s->async = sl_calloc(1, sizeof *s->async))) {
        if (s) {
            sl_free(s->location);
            sl_free(s->state);
        }
        sl_free(s);
        sl_fmt(errbuf, errbuf_size, "out of memory");
        return SLUICE_ENOMEM;
    }
    s->ops = ops;
    sl_async_init(s->async);
    s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!s->sha256) {
        sl_fmt(errbuf, errbuf_size, "no SHA-256 in libcrypto");
        sl_store_close(s);
        return SLUICE_ENOMEM;
    }
    sluice_err err = ops->open(s, location, opts);
    if (err != SLUICE_OK) {
        sl_copy(errbuf, errbuf_size, s->errmsg);
        sl_store_close(s);
        return err;
    }
    *out = s;
    return SLUICE_OK;
}

void
sl_store_close(sl_store *s)
{
    if (!s)
        return;
    s->ops->close(s); /* it ends its worker, then sl_async_fini */
    EVP_MD_free(s->sha256);
    sl_free(s->async);
    sl_free(s->state);
    sl_free(s->location);
    sl_free(s);
}

sluice_err
sl_store_recover(sl_store *s)
{
    return s->ops->recover ? s->ops->recover(s) : SLUICE_OK;
}

sluice_err
sl_store_begin(sl_store *s, const char *key, void *cookie, sl_object **out)
{
    *out = NULL;
    sl_object *o = sl_calloc(1, sizeof *o + s->ops->object_size);
    if (!o || !(o->key = sl_strdup(key))) {
        sl_free(o);
        return sl_store_fail(s, SLUICE_ENOMEM, "out of memory");
    }
    o->store = s;
    o->cookie = cookie;
    sluice_err err = s->ops->begin(s, o);
    if (err != SLUICE_OK) {
        sl_free(o->key);
        sl_free(o);
        return err;
    }
    *out = o;
    return SLUICE_OK;
}

sluice_err
sl_object_write(sl_object *o, const void *data, size_t len)
{
    if (sl_fault_hit(SL_FAULT_WRITE))
        return sl_store_fail(o->store, SLUICE_EIO,
                             "%s: write: injected fault", o->store->location);
    sluice_err err = o->store->ops->write(o, data, len);
    if (err == SLUICE_OK)
        o->written += len;
    return err;
}

void
sl_object_free(sl_object *o)
{
    EVP_MD_CTX_free(o->sha);
    sl_free(o->key);
    sl_free(o->meta_strings);
    sl_free(o);
}

sluice_err
sl_object_hash(sl_object *o, const void *data, size_t len)
{
    assert(!o->sha256_hex[0]);
    if (!o->sha) {
        o->sha = EVP_MD_CTX_new();
        if (!o->sha || EVP_DigestInit_ex(o->sha, o->store->sha256, NULL) != 1)
            return SLUICE_ENOMEM;
    }
    if (len > 0 && EVP_DigestUpdate(o->sha, data, len) != 1)
        return SLUICE_EINTERNAL;
    return SLUICE_OK;
}

sluice_err
sl_object_hash_end(sl_object *o, const void *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    if (o->sha256_hex[0])
        return SLUICE_OK;
    sluice_err err = sl_object_hash(o, data, len);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (err == SLUICE_OK && EVP_DigestFinal_ex(o->sha, digest, &n) != 1)
        err = SLUICE_EINTERNAL;
    EVP_MD_CTX_free(o->sha);
    o->sha = NULL;
    if (err != SLUICE_OK || n != 32)
        return err != SLUICE_OK ? err : SLUICE_EINTERNAL;
    for (unsigned i = 0; i < n; i++) {
        o->sha256_hex[2 * i] = digits[digest[i] >> 4];
        o->sha256_hex[2 * i + 1] = digits[digest[i] & 15];
    }
    o->sha256_hex[64] = '\0';
    return SLUICE_OK;
}

void
sl_object_discard(sl_object *o)
{
    if (!o)
        return;
    o->store->ops->discard(o);
    sl_object_free(o);
}

/* Copy the metadata's strings into one allocation owned by the object. */
static int
keep_meta(sl_object *o, const sl_object_meta *meta)
{
    const char *src[4] = {meta->content_type, meta->etag, meta->source_url,
                          meta->record_meta};
    const char **dst[4] = {&o->meta.content_type, &o->meta.etag,
                           &o->meta.source_url, &o->meta.record_meta};
    size_t total = 0;
    for (int i = 0; i < 4; i++)
        total += src[i] ? strlen(src[i]) + 1 : 0;
    char *block = sl_malloc(total);
    if (!block)
        return -1;
    o->meta_strings = block;
    o->meta.size = meta->size;
    for (int i = 0; i < 4; i++) {
        *dst[i] = NULL;
        if (!src[i])
            continue;
        size_t n = strlen(src[i]) + 1;
        memcpy(block, src[i], n);
        *dst[i] = block;
        block += n;
    }
    return 0;
}

sluice_err
sl_store_submit(sl_store *s, sl_object *o, const sl_object_meta *meta)
{
    assert(o->store == s);
    if (keep_meta(o, meta) != 0) {
        sl_object_discard(o);
        return sl_store_fail(s, SLUICE_ENOMEM, "out of memory");
    }
    s->ops->submit(s, o);
    return SLUICE_OK;
}

int
sl_store_wake_fd(sl_store *s)
{
    return sl_async_wake_fd(s->async);
}

size_t
sl_store_reap(sl_store *s, sl_store_result *out, size_t max)
{
    return sl_async_reap(s->async, out, max);
}

size_t
sl_store_busy(sl_store *s)
{
    return sl_async_busy(s->async);
}

size_t
sl_store_pipeline(const sl_store *s)
{
    return s->ops->pipeline;
}

const char *
sl_store_location(const sl_store *s)
{
    return s->location;
}

const char *
sl_store_errmsg(const sl_store *s)
{
    return s->errmsg;
}
