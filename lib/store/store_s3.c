/*
 * The S3 store's operations: s3://BUCKET[/PREFIX]. A body is spooled to a
 * file as it downloads (MD5 and SHA-256 on the way); submit hands it to
 * the uploader thread (s3_upload.c), which PUTs it to PREFIX/KEY and
 * retries transient failures. s3.h names the files that do the rest.
 */
#include "s3.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>

#define S3_KEY_MAX 1024 /* bytes of PREFIX/KEY */

sluice_err
sl_s3_errno_fail(sl_store *s, const char *what, const char *path, int err)
{
    sluice_err code =
        err == ENOSPC || err == EDQUOT || err == EFBIG  ? SLUICE_ENOSPACE
        : err == EACCES || err == EPERM || err == EROFS ? SLUICE_EACCES
                                                        : SLUICE_ESTORE;
    return sl_store_fail(s, code, "store %s: %s %s: %s", s->location, what,
                         path, strerror(err));
}

static sluice_err
s3_open(sl_store *s, const char *location, const sl_store_opts *opts)
{
    sl_s3_store *ss = sl_s3_state(s);
    ss->spool_fd = ss->run.dir_fd = ss->run.lock_fd = -1;
    ss->async = s->async;
    ss->concurrency = opts->concurrency ? opts->concurrency : 16;
    ss->rng = (uint64_t)sl_now_ms() ^ ((uint64_t)(uintptr_t)ss << 12);
    sluice_err err;
    if ((err = sl_s3_configure(s, location, opts)) != SLUICE_OK)
        return err;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return sl_store_fail(s, SLUICE_ESTORE, "cannot start libcurl");
    ss->curl_ready = true;
    /* The bucket and credentials first: nothing is downloaded for a store
     * that cannot take it. */
    if ((err = sl_s3_probe(s)) != SLUICE_OK ||
        (err = sl_s3_open_spool(s, opts->spool_dir)) != SLUICE_OK)
        return err;
    int pipe_err = sl_async_open_pipe(ss->async);
    if (pipe_err)
        return sl_store_fail(s, SLUICE_ESTORE, "store %s: pipe: %s",
                             s->location, strerror(pipe_err));
    return sl_s3_uploader_start(s);
}

void
sl_s3_object_clear(sl_object *o)
{
    sl_s3_store *ss = sl_s3_state(o->store);
    sl_s3_object *so = sl_s3_object_state(o);
    if (so->easy) {
        curl_multi_remove_handle(ss->multi, so->easy);
        curl_easy_cleanup(so->easy);
        so->easy = NULL;
    }
    if (so->fd >= 0) {
        close(so->fd);
        so->fd = -1;
        unlinkat(ss->run.dir_fd, so->spool_name, 0);
    }
    EVP_MD_CTX_free(so->md5);
    so->md5 = NULL;
    curl_slist_free_all(so->headers);
    so->headers = NULL;
    so->token_line = NULL;
    sl_free(so->url);
    so->url = NULL;
    sl_buf_free(&so->resp.body);
}

/* Uploads still waiting are given up (their records stay in flight in
 * the queue; the next run puts them back), their spools removed. */
static void
s3_close(sl_store *s)
{
    sl_s3_store *ss = sl_s3_state(s);
    sl_s3_uploader_stop(ss);
    sl_object_list_free(ss->wait_head, sl_s3_object_clear);
    sl_object_list_free(ss->active, sl_s3_object_clear);
    sl_async_fini(ss->async, sl_s3_object_clear);
    if (ss->multi)
        curl_multi_cleanup(ss->multi);
    sl_run_dir_close(ss->spool_fd, &ss->run);
    if (ss->spool_fd >= 0)
        close(ss->spool_fd);
    if (ss->curl_ready)
        curl_global_cleanup();
    sl_free(ss->bucket);
    sl_free(ss->prefix);
    sl_free(ss->object_base);
    sl_free(ss->endpoint);
    sl_free(ss->sigv4);
    sl_free(ss->region);
    sl_aws_chain_free(ss->creds);
    sl_free(ss->ca_bundle);
}

/* Remove the spools of runs that are no longer alive. */
static sluice_err
s3_recover(sl_store *s)
{
    sl_s3_store *ss = sl_s3_state(s);
    int err = sl_run_dir_reap_dead(ss->spool_fd, ss->run.name);
    return err ? sl_s3_errno_fail(s, "cannot read the spool", "directory", err)
               : SLUICE_OK;
}

static sluice_err
s3_begin(sl_store *s, sl_object *o)
{
    sl_s3_store *ss = sl_s3_state(s);
    sl_s3_object *so = sl_s3_object_state(o);
    sl_buf_init(&so->resp.body);
    so->fd = -1;
    so->md5 = EVP_MD_CTX_new();
    if (!so->md5 || EVP_DigestInit_ex(so->md5, EVP_md5(), NULL) != 1) {
        EVP_MD_CTX_free(so->md5);
        return sl_store_fail(s, SLUICE_ENOMEM, "out of memory (MD5)");
    }
    sl_fmt(so->spool_name, sizeof so->spool_name, "%llu",
           (unsigned long long)++ss->seq);
    so->fd = openat(ss->run.dir_fd, so->spool_name,
                    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (so->fd < 0) {
        int saved = errno;
        EVP_MD_CTX_free(so->md5);
        return sl_s3_errno_fail(s, "cannot create a file in the spool",
                                ss->run.name, saved);
    }
    return SLUICE_OK;
}

static sluice_err
s3_write(sl_object *o, const void *data, size_t len)
{
    sl_s3_object *so = sl_s3_object_state(o);
    const char *p = data;
    EVP_DigestUpdate(so->md5, data, len);
    if (sl_object_hash(o, data, len) != SLUICE_OK)
        return sl_store_fail(o->store, SLUICE_ENOMEM,
                             "out of memory (SHA-256)");
    while (len > 0) {
        ssize_t n = write(so->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return sl_s3_errno_fail(o->store, "cannot write in the spool",
                                    sl_s3_state(o->store)->run.name,
                                    n < 0 ? errno : ENOSPC);
        p += n;
        len -= (size_t)n;
    }
    return SLUICE_OK;
}

static void
s3_discard(sl_object *o)
{
    sl_s3_object_clear(o);
}

/* Finish the checksums, judge what can be judged without a request (the
 * result comes back as any other), and wake the uploader. */
static void
s3_submit(sl_store *s, sl_object *o)
{
    sl_s3_store *ss = sl_s3_state(s);
    sl_s3_object *so = sl_s3_object_state(o);
    unsigned char md5[EVP_MAX_MD_SIZE], sha[32];
    unsigned int md5_len = 0;
    EVP_DigestFinal_ex(so->md5, md5, &md5_len);
    sl_s3_base64(so->content_md5, md5, md5_len);
    size_t key_len =
        strlen(o->key) + (ss->prefix[0] ? strlen(ss->prefix) + 1 : 0);
    if (sl_object_hash_end(o, NULL, 0) != SLUICE_OK ||
        !sl_s3_unhex_sha256(o->sha256_hex, sha)) {
        so->early = true;
        o->status = SL_STORE_FAILED;
        o->err = SLUICE_ENOMEM;
        sl_fmt(o->message, sizeof o->message, "no SHA-256 for the body");
    } else if (key_len > S3_KEY_MAX) {
        so->early = true;
        o->status = SL_STORE_REJECTED;
        o->err = SLUICE_EKEY;
        sl_fmt(o->message, sizeof o->message,
               "its key is %zu bytes with the prefix; S3 allows %d", key_len,
               S3_KEY_MAX);
    } else {
        sl_s3_base64(so->checksum_sha256, sha, sizeof sha);
    }
    pthread_mutex_lock(&ss->async->lock);
    sl_async_push(ss->async, o);
    pthread_mutex_unlock(&ss->async->lock);
    curl_multi_wakeup(ss->multi);
}

const sl_store_ops sl_store_s3 = {
    .backend = {SL_FAMILY_STORE, "s3", "s3://"},
    .state_size = sizeof(sl_s3_store),
    .object_size = sizeof(sl_s3_object),
    .open = s3_open,
    .close = s3_close,
    .recover = s3_recover,
    .begin = s3_begin,
    .write = s3_write,
    .discard = s3_discard,
    .submit = s3_submit,
};
