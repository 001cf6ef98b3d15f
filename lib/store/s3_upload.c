/*
 * The S3 store's uploader: a thread with its own libcurl multi handle
 * that takes submitted objects, PUTs each from its spool file, at most
 * `concurrency` at once, and hands the results back (async.h). Transient
 * failures wait out a backoff and go again; a fatal one fails them all.
 */
#include "s3.h"

#include "../record/meta.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../backoff.h"

#define BACKOFF_BASE_MS 200   /* first retry of an upload, at most */
#define BACKOFF_CAP_MS  30000 /* between retries, at most */
#define SOURCE_URL_MAX  1536  /* metadata values over these are left out */
#define ORIGIN_ETAG_MAX 256   /* (S3 allows 2 KB of metadata in all) */

/* The body, from the spool, from wherever libcurl asks. */
static size_t
read_spool(char *buf, size_t size, size_t n, void *arg)
{
    sl_s3_object *so = arg;
    for (;;) {
        ssize_t got = pread(so->fd, buf, size * n, (off_t)so->read_pos);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return CURL_READFUNC_ABORT;
        so->read_pos += (uint64_t)got;
        return (size_t)got;
    }
}

static int
seek_spool(void *arg, curl_off_t offset, int origin)
{
    sl_s3_object *so = arg;
    if (origin != SEEK_SET || offset < 0)
        return CURL_SEEKFUNC_CANTSEEK;
    so->read_pos = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* Hand a result to the run: the spool file goes, whatever it is. */
static void
finish(sl_s3_store *ss, sl_object *o, sl_store_status status, sluice_err err,
       const char *msg)
{
    sl_s3_object_clear(o);
    o->status = status;
    o->err = err;
    if (msg != o->message)
        sl_copy(o->message, sizeof o->message, msg);
    o->next = NULL;
    pthread_mutex_lock(&ss->async->lock);
    sl_async_post(ss->async, o, o);
    pthread_mutex_unlock(&ss->async->lock);
}

static void
wait_append(sl_s3_store *ss, sl_object *o)
{
    o->next = NULL;
    sl_object_list_append(&ss->wait_head, &ss->wait_tail, o, o);
}

static void
active_remove(sl_s3_store *ss, sl_object *o)
{
    for (sl_object **p = &ss->active; *p; p = &(*p)->next) {
        if (*p == o) {
            *p = o->next;
            ss->n_active--;
            return;
        }
    }
}

/* After a fatal answer: every other upload fails too, at once (the run
 * stops; their records go back to the queue untouched). The caller has
 * counted those backing off as busy again. */
static void
give_up_all(sl_s3_store *ss)
{
    char msg[sizeof ss->broken_msg + 32];
    sl_fmt(msg, sizeof msg, "not stored: %s", ss->broken_msg);
    while (ss->active) {
        sl_object *o = ss->active;
        ss->active = o->next;
        ss->n_active--;
        finish(ss, o, SL_STORE_FAILED, SLUICE_ESTORE, msg);
    }
    while (ss->wait_head) {
        sl_object *o = ss->wait_head;
        ss->wait_head = o->next;
        finish(ss, o, SL_STORE_FAILED, SLUICE_ESTORE, msg);
    }
    ss->wait_tail = NULL;
}

typedef struct {
    struct curl_slist **headers;
    sl_buf *b;
    size_t used; /* bytes of metadata, as S3 counts them */
    bool nomem;
} meta_ctx;

/* x-amz-meta-NAME: VALUE, the value %-encoded as S3 keeps it. */
static int
add_field(void *arg, const char *name, const char *value)
{
    meta_ctx *mc = arg;
    sl_buf_clear(mc->b);
    if (sl_buf_printf(mc->b, "x-amz-meta-%s: ", name) != 0 ||
        sl_s3_meta_encode(mc->b, value) != 0 ||
        sl_s3_slist_add(mc->headers, mc->b->data) != 0) {
        mc->nomem = true;
        return 1;
    }
    mc->used += mc->b->len - strlen("x-amz-meta-: ");
    return 0;
}

/* The URL and headers of an object's PUT, made once for all its tries. */
static int
prepare(sl_s3_store *ss, sl_object *o)
{
    sl_s3_object *so = sl_s3_object_state(o);
    char ctype[256];
    sl_buf b;
    sl_buf_init(&b);
    sl_s3_content_type(ctype, sizeof ctype, o->meta.content_type);
    if (sl_buf_printf(&b, "%s", ss->object_base) != 0 ||
        sl_s3_uri_encode(&b, o->key) != 0)
        goto nomem;
    so->url = b.data;
    sl_buf_init(&b);
#define ADD(...)                                                               \
    do {                                                                       \
        sl_buf_clear(&b);                                                      \
        if (sl_buf_printf(&b, __VA_ARGS__) != 0 ||                             \
            sl_s3_slist_add(&so->headers, b.data) != 0)                        \
            goto nomem;                                                        \
    } while (0)
    ADD("Content-Type: %s", ctype);
    ADD("Content-MD5: %s", so->content_md5);
    ADD("x-amz-checksum-sha256: %s", so->checksum_sha256);
    ADD("x-amz-content-sha256: %s", o->sha256_hex);
#undef ADD
    /* The record's meta, a field a member (record/meta.h): checked at
     * ingest to fit in S3's 2 KB; then ours, if they still fit. */
    meta_ctx mc = {&so->headers, &b, 0, false};
    char why[160];
    if (sl_meta_fields(o->meta.record_meta, add_field, &mc, why,
                       sizeof why) == SLUICE_ENOMEM ||
        mc.nomem)
        goto nomem;
    const char *names[2] = {SL_META_SOURCE_URL, SL_META_ORIGIN_ETAG};
    const char *values[2] = {o->meta.source_url, o->meta.etag};
    size_t caps[2] = {SOURCE_URL_MAX, ORIGIN_ETAG_MAX};
    for (int i = 0; i < 2; i++) {
        if (!values[i] || !*values[i])
            continue;
        sl_buf_clear(&b);
        if (sl_buf_printf(&b, "x-amz-meta-%s: ", names[i]) != 0 ||
            sl_s3_meta_encode(&b, values[i]) != 0)
            goto nomem;
        size_t sent = b.len - strlen(names[i]) - strlen("x-amz-meta-: ");
        if (sent > caps[i] || mc.used + strlen(names[i]) + sent > SL_META_MAX)
            continue; /* too long for S3's metadata: left out */
        mc.used += strlen(names[i]) + sent;
        if (sl_s3_slist_add(&so->headers, b.data) != 0)
            goto nomem;
    }
    sl_buf_free(&b);
    return 0;
nomem:
    sl_buf_free(&b);
    return -1;
}

static void
start_upload(sl_s3_store *ss, sl_object *o)
{
    sl_s3_object *so = sl_s3_object_state(o);
    if (!so->url && prepare(ss, o) != 0) {
        finish(ss, o, SL_STORE_FAILED, SLUICE_ENOMEM, "out of memory");
        return;
    }
    CURL *e = curl_easy_init();
    if (!e) {
        finish(ss, o, SL_STORE_FAILED, SLUICE_ENOMEM, "out of memory");
        return;
    }
    /* The credentials now: renewed before they expire (a run of days). */
    sl_aws_creds creds;
    char why[300];
    sluice_err err = sl_aws_chain_get(ss->creds, &creds, why, sizeof why);
    if (err != SLUICE_OK) {
        curl_easy_cleanup(e);
        finish(ss, o, SL_STORE_FAILED, err, why);
        return;
    }
    if (sl_s3_token_line(&so->headers, &so->token_line, &creds) != 0) {
        curl_easy_cleanup(e);
        finish(ss, o, SL_STORE_FAILED, SLUICE_ENOMEM, "out of memory");
        return;
    }
    sl_s3_response_reset(&so->resp);
    sl_s3_setup_easy(ss, &creds, e, so->url, so->headers, &so->resp,
                     so->curl_error);
    curl_easy_setopt(e, CURLOPT_PRIVATE, o);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)o->written);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, read_spool);
    curl_easy_setopt(e, CURLOPT_READDATA, so);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, seek_spool);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, so);
    so->read_pos = 0;
    if (curl_multi_add_handle(ss->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        finish(ss, o, SL_STORE_FAILED, SLUICE_ENOMEM, "out of memory");
        return;
    }
    so->easy = e;
    o->next = ss->active;
    ss->active = o;
    ss->n_active++;
}

/* Start the waiting uploads that are due, in order, while there is room. */
static void
start_due(sl_s3_store *ss, int64_t now)
{
    sl_object **p = &ss->wait_head, *prev = NULL;
    while (*p && ss->n_active < ss->concurrency) {
        sl_object *o = *p;
        sl_s3_object *so = sl_s3_object_state(o);
        if (so->due_mono > now) {
            prev = o;
            p = &o->next;
            continue;
        }
        *p = o->next;
        if (ss->wait_tail == o)
            ss->wait_tail = prev;
        if (so->tries > 0)
            sl_async_count_backing_off(ss->async, -1);
        start_upload(ss, o);
    }
}

/* How long the uploader may sleep: until the next waiting upload is due,
 * if there is room to start it; libcurl's own timers cut this short. */
static int
idle_ms(const sl_s3_store *ss, int64_t now)
{
    int64_t wait = 1000;
    if (ss->n_active < ss->concurrency)
        for (sl_object *o = ss->wait_head; o; o = o->next)
            wait = SL_MIN(wait, sl_s3_object_state(o)->due_mono - now);
    return (int)SL_MAX(wait, 0);
}

static void
upload_done(sl_s3_store *ss, CURL *e, CURLcode rc)
{
    char *priv = NULL;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
    sl_object *o = (sl_object *)(void *)priv;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    sl_s3_object *so = sl_s3_object_state(o);
    curl_multi_remove_handle(ss->multi, e);
    curl_easy_cleanup(e);
    so->easy = NULL;
    active_remove(ss, o);
    sluice_err err;
    sl_s3_verdict v = sl_s3_judge(ss, rc, status, &so->resp, so->curl_error,
                                  o->message, sizeof o->message, &err);
    switch (v) {
    case SL_S3_STORED:
        finish(ss, o, SL_STORED, SLUICE_OK, "");
        break;
    case SL_S3_AGAIN:
        /* From the spool, after a backoff; as long as the store is open. */
        so->tries++;
        so->due_mono =
            sl_mono_ms() + sl_backoff_ms(so->tries, BACKOFF_BASE_MS,
                                         BACKOFF_CAP_MS, sl_random(&ss->rng));
        sl_async_count_backing_off(ss->async, 1);
        wait_append(ss, o);
        break;
    case SL_S3_RECORD:
        finish(ss, o, SL_STORE_RETRY, SLUICE_ESTORE, o->message);
        break;
    case SL_S3_REJECT:
        finish(ss, o, SL_STORE_REJECTED, SLUICE_ESTORE, o->message);
        break;
    case SL_S3_FATAL:
        ss->broken = true;
        sl_copy(ss->broken_msg, sizeof ss->broken_msg, o->message);
        /* Every upload's result comes now: count the ones backing off as
         * busy again before the run sees this one, or it might stop
         * waiting before their results are in. */
        sl_async_clear_backing_off(ss->async);
        finish(ss, o, SL_STORE_FAILED, err, o->message);
        give_up_all(ss);
        break;
    }
}

/* Take what was submitted: judged already, or to be uploaded. */
static void
take_submitted(sl_s3_store *ss, sl_object *o)
{
    while (o) {
        sl_object *next = o->next;
        sl_s3_object *so = sl_s3_object_state(o);
        if (so->early) {
            finish(ss, o, o->status, o->err, o->message);
        } else if (ss->broken) {
            char msg[sizeof ss->broken_msg + 32];
            sl_fmt(msg, sizeof msg, "not stored: %s", ss->broken_msg);
            finish(ss, o, SL_STORE_FAILED, SLUICE_ESTORE, msg);
        } else {
            so->due_mono = 0;
            wait_append(ss, o);
        }
        o = next;
    }
}

static void *
upload_main(void *arg)
{
    sl_s3_store *ss = arg;
    sl_thread_name("sl-upload");
    for (;;) {
        pthread_mutex_lock(&ss->async->lock);
        bool stop = ss->async->stopping;
        sl_object *taken = sl_async_take(ss->async, NULL);
        pthread_mutex_unlock(&ss->async->lock);
        take_submitted(ss, taken);
        if (stop)
            break;
        start_due(ss, sl_mono_ms());
        int running;
        curl_multi_perform(ss->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(ss->multi, &left)) != NULL)
            if (m->msg == CURLMSG_DONE)
                upload_done(ss, m->easy_handle, m->data.result);
        /* A slot freed: fill it now rather than after a sleep. */
        start_due(ss, sl_mono_ms());
        curl_multi_poll(ss->multi, NULL, 0, idle_ms(ss, sl_mono_ms()), NULL);
    }
    /* Closing: what is still uploading or waiting is given up; close()
     * frees it with the spools. */
    for (sl_object *o = ss->active; o; o = o->next) {
        sl_s3_object *so = sl_s3_object_state(o);
        curl_multi_remove_handle(ss->multi, so->easy);
        curl_easy_cleanup(so->easy);
        so->easy = NULL;
    }
    return NULL;
}

sluice_err
sl_s3_uploader_start(sl_store *s)
{
    sl_s3_store *ss = sl_s3_state(s);
    if (!(ss->multi = curl_multi_init()))
        return sl_store_fail(s, SLUICE_ENOMEM, "out of memory");
    curl_multi_setopt(ss->multi, CURLMOPT_MAXCONNECTS, (long)ss->concurrency);
    /* Signals are the caller's thread's business. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&ss->uploader, NULL, upload_main, ss);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return sl_store_fail(s, SLUICE_ESTORE, "cannot start a thread");
    ss->uploader_started = true;
    return SLUICE_OK;
}

void
sl_s3_uploader_stop(sl_s3_store *ss)
{
    if (!ss->uploader_started)
        return;
    pthread_mutex_lock(&ss->async->lock);
    ss->async->stopping = true;
    pthread_mutex_unlock(&ss->async->lock);
    curl_multi_wakeup(ss->multi);
    pthread_join(ss->uploader, NULL);
}
