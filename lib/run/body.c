/*
 * Bodies on their way to the store: bytes streamed into a store object
 * as they arrive (made at the first byte, hashed by the store), a whole
 * body handed over to be made durable, and the store's verdicts taken in.
 * A record is marked done only once the store says its object is durable
 * under its key (invariant 3).
 */
#include "run.h"

#include <string.h>

#define ERROR_BODY_MAX (64 * 1024) /* bytes of an error page read, at most */

/* Fail the run for a store error, with the store's message. */
static void
store_fail(sl_run *r, sluice_err err)
{
    sl_run_fail(r, err, sl_store_errmsg(r->store));
}

/*
 * Body bytes, from inside the fetcher. Returning false aborts the
 * transfer; the job says why.
 */
bool
sl_body_write(void *owner, int status, const char *data, size_t len)
{
    sl_job *j = owner;
    sl_run *r = j->run;
    if (status < 200 || status >= 300) {
        /* An error page or a redirect's body: read a little, keep none. */
        j->error_bytes += len;
        return j->error_bytes <= ERROR_BODY_MAX;
    }
    if (r->fatal != SLUICE_OK)
        return true; /* the run failed: let the request end, keep nothing */
    if (r->o->max_bytes && j->bytes + len > r->o->max_bytes) {
        j->too_large = true;
        return false;
    }
    /* A store that fails stops the run; the request itself is read to
     * its end (kept nowhere), so that the origin is done with it. */
    if (!j->obj) {
        sluice_err err = sl_store_begin(r->store, j->lease.key, j, &j->obj);
        if (err != SLUICE_OK) {
            store_fail(r, err);
            return true;
        }
    }
    sluice_err err = sl_object_write(j->obj, data, len);
    if (err != SLUICE_OK) {
        store_fail(r, err);
        return true;
    }
    j->bytes += len;
    return true;
}

/* A complete body: hand it to the store; the record is done only when the
 * store says the object is durable. */
void
sl_body_complete(sl_run *r, sl_job *j, const sl_fetch_result *res)
{
    if (!j->obj) { /* an empty body */
        sluice_err err = sl_store_begin(r->store, j->lease.key, j, &j->obj);
        if (err != SLUICE_OK) {
            store_fail(r, err);
            sl_job_release(r, j);
            return;
        }
    }
    sl_copy(j->content_type, sizeof j->content_type, res->content_type);
    sl_copy(j->etag, sizeof j->etag, res->etag);
    sl_object_meta meta = {
        j->content_type[0] ? j->content_type : NULL,
        j->etag[0] ? j->etag : NULL,
        j->lease.url,
        j->lease.meta,
        j->bytes,
    };
    sl_object *obj = j->obj;
    j->obj = NULL;
    j->state = SL_JOB_STORING;
    r->sched.jobs_storing++;
    sluice_err err = sl_store_submit(r->store, obj, &meta);
    if (err != SLUICE_OK) {
        store_fail(r, err);
        sl_job_release(r, j);
    }
}

void
sl_body_reap(sl_run *r)
{
    sl_store_result results[64];
    size_t n;
    while ((n = sl_store_reap(r->store, results, SL_ARRAY_LEN(results))) > 0) {
        for (size_t i = 0; i < n; i++) {
            sl_store_result *res = &results[i];
            sl_job *j = res->cookie;
            switch (res->status) {
            case SL_STORED:
                memcpy(j->sha_hex, res->sha256_hex, sizeof j->sha_hex);
                sl_job_stored(r, j);
                break;
            case SL_STORE_REJECTED:
                sl_job_dead(r, j, SL_CLASS_STORE, 0, res->message);
                break;
            case SL_STORE_RETRY:
                sl_outcome_failed(r, j, SL_CLASS_STORE, 0, res->message);
                break;
            case SL_STORE_FAILED: {
                char msg[600];
                sl_fmt(msg, sizeof msg, "store %s: %s: %s",
                       sl_store_location(r->store), j->lease.key, res->message);
                sl_run_fail(r, res->err, msg);
                sl_job_release(r, j);
                break;
            }
            }
        }
    }
}
