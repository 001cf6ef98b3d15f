/*
 * The queue registry and the wrappers every caller goes through. The
 * wrappers are the one place for argument checks, defaults for optional
 * operations and injected faults; backends only do the work.
 */
#include "queue.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fault.h"

const char *
sl_state_name(sl_state state)
{
    switch (state) {
    case SL_STATE_PENDING:
        return "pending";
    case SL_STATE_IN_FLIGHT:
        return "in_flight";
    case SL_STATE_RETRYING:
        return "retrying";
    case SL_STATE_DONE:
        return "done";
    case SL_STATE_DEAD:
        return "dead";
    }
    return "unknown";
}

void
sl_lease_clear(sl_lease *lease)
{
    sl_free(lease->id);
    memset(lease, 0, sizeof *lease);
}

void
sl_record_info_clear(sl_record_info *info)
{
    sl_free(info->id);
    sl_free(info->url);
    sl_free(info->key);
    sl_free(info->meta);
    sl_free(info->origin);
    sl_free(info->error_class);
    sl_free(info->message);
    sl_free(info->sha256_hex);
    sl_free(info->content_type);
    sl_free(info->etag);
    memset(info, 0, sizeof *info);
}

sluice_err
sl_queue_fail(sluice_queue *q, sluice_err err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_vfmt(q->errmsg, sizeof q->errmsg, fmt, ap);
    va_end(ap);
    return err;
}

sluice_err
sluice_queue_open(const char *location, const sluice_queue_opts *opts,
                  sluice_queue **out, char *errbuf, size_t errbuf_size)
{
    static const sluice_queue_opts defaults = {0, 0};
    sluice_queue *q = NULL;
    sluice_err err;

    *out = NULL;
    if (!opts)
        opts = &defaults;
    const sl_queue_ops *ops =
        (const sl_queue_ops *)sl_backend_find(SL_FAMILY_QUEUE, location);
    if (!ops) {
        if (errbuf)
            sl_fmt(errbuf, errbuf_size, "%s: no queue backend for this "
                   "scheme", location);
        return SLUICE_EUNSUPPORTED;
    }
    q = sl_calloc(1, sizeof *q);
    if (!q)
        goto nomem;
    q->ops = ops;
    pthread_mutex_init(&q->turn, NULL);
    q->location = sl_strdup(location);
    q->state = sl_calloc(1, ops->state_size);
    if (!q->location || !q->state)
        goto nomem;
    err = ops->open(q, location, opts);
    if (err != SLUICE_OK) {
        /* A backend's close undoes a partial open. */
        if (errbuf)
            sl_copy(errbuf, errbuf_size, q->errmsg);
        sluice_queue_close(q);
        return err;
    }
    *out = q;
    return SLUICE_OK;
nomem:
    if (errbuf)
        sl_fmt(errbuf, errbuf_size, "%s: out of memory", location);
    if (q) {
        sl_free(q->state);
        q->state = NULL;
    }
    sluice_queue_close(q);
    return SLUICE_ENOMEM;
}

void
sluice_queue_close(sluice_queue *q)
{
    if (!q)
        return;
    if (q->state) {
        if (q->in_batch)
            sl_queue_rollback(q);
        (void)sl_queue_commit_wait(q);
        q->ops->close(q);
        sl_free(q->state);
    }
    pthread_mutex_destroy(&q->turn);
    sl_free(q->location);
    sl_free(q);
}

bool
sl_queue_holds_turn(sluice_queue *q)
{
    return atomic_load(&q->turn_taken) &&
           pthread_equal(q->turn_owner, pthread_self());
}

void
sl_queue_lock(sluice_queue *q)
{
    if (sl_queue_holds_turn(q)) {
        fprintf(stderr, "sluice: internal error: a second turn on the "
                        "queue, on the thread that holds one\n");
        abort();
    }
    pthread_mutex_lock(&q->turn);
    q->turn_owner = pthread_self();
    atomic_store(&q->turn_taken, true);
}

void
sl_queue_unlock(sluice_queue *q)
{
    assert(sl_queue_holds_turn(q));
    atomic_store(&q->turn_taken, false);
    pthread_mutex_unlock(&q->turn);
}

const char *
sluice_queue_errmsg(const sluice_queue *q)
{
    return q->errmsg;
}

/* In test builds any queue operation may be made to fail here. */
static sluice_err
queue_fault(sluice_queue *q, const char *op)
{
    if (sl_fault_hit(SL_FAULT_DB))
        return sl_queue_fail(q, SLUICE_EDB, "%s: %s: injected fault",
                             q->location, op);
    return SLUICE_OK;
}

sluice_err
sl_queue_begin(sluice_queue *q)
{
    assert(!q->in_batch);
    sluice_err err = queue_fault(q, "begin");
    if (err == SLUICE_OK && q->ops->begin)
        err = q->ops->begin(q);
    if (err == SLUICE_OK)
        q->in_batch = true;
    return err;
}

sluice_err
sl_queue_commit(sluice_queue *q)
{
    assert(q->in_batch && !q->commit_sent);
    sluice_err err = queue_fault(q, "commit");
    if (err != SLUICE_OK)
        return err;
    if (q->ops->commit)
        err = q->ops->commit(q);
    if (err == SLUICE_OK)
        q->in_batch = false;
    return err;
}

sluice_err
sl_queue_commit_send(sluice_queue *q)
{
    assert(q->in_batch && !q->commit_sent);
    if (!q->ops->commit_send)
        return sl_queue_commit(q);
    bool sent = false;
    sluice_err err = queue_fault(q, "commit");
    if (err == SLUICE_OK)
        err = q->ops->commit_send(q, &sent);
    if (err == SLUICE_OK) {
        q->in_batch = false;
        q->commit_sent = sent;
    }
    return err;
}

sluice_err
sl_queue_commit_wait(sluice_queue *q)
{
    if (!q->commit_sent)
        return SLUICE_OK;
    q->commit_sent = false;
    return q->ops->commit_wait(q);
}

sluice_err
sl_queue_rollback(sluice_queue *q)
{
    sluice_err err = SLUICE_OK;
    if (!q->in_batch)
        return SLUICE_OK;
    if (q->ops->rollback)
        err = q->ops->rollback(q);
    q->in_batch = false;
    return err;
}

sluice_err
sl_queue_upsert(sluice_queue *q, const sl_record *recs, size_t n,
                int64_t now_ms, sluice_ingest_stats *counts)
{
    for (size_t i = 0; i < n; i++)
        assert(recs[i].id_len > 0 && recs[i].url_len > 0 &&
               recs[i].key_len > 0 && recs[i].origin_len > 0);
    if (n == 0)
        return SLUICE_OK;
    sluice_err err = queue_fault(q, "upsert");
    if (err != SLUICE_OK)
        return err;
    return q->ops->upsert(q, recs, n, now_ms, counts);
}

void
sl_queue_feed_start(sluice_queue *q)
{
    if (q->ops->feed_start)
        q->ops->feed_start(q);
}

sluice_err
sl_queue_lease(sluice_queue *q, const sl_lease_req *req, sl_lease *out,
               size_t *n_out)
{
    assert(req->lease_ms > 0);
    *n_out = 0;
    if (req->max == 0)
        return SLUICE_OK;
    sluice_err err = queue_fault(q, "lease");
    if (err != SLUICE_OK)
        return err;
    return q->ops->lease(q, req, out, n_out);
}

sluice_err
sl_queue_complete(sluice_queue *q, const sl_lease *lease,
                  const sl_object_info *obj, int64_t now_ms)
{
    assert(lease->id && obj->sha256_hex && obj->size >= 0);
    sluice_err err = queue_fault(q, "complete");
    if (err != SLUICE_OK)
        return err;
    return q->ops->complete(q, lease, obj, now_ms);
}

sluice_err
sl_queue_retry(sluice_queue *q, const sl_lease *lease, int64_t due_ms,
               const sl_failure *why, bool counts_attempt)
{
    assert(lease->id && why->error_class);
    sluice_err err = queue_fault(q, "retry");
    if (err != SLUICE_OK)
        return err;
    return q->ops->retry(q, lease, due_ms, why, counts_attempt);
}

sluice_err
sl_queue_dead(sluice_queue *q, const sl_lease *lease, const sl_failure *why,
              int64_t now_ms)
{
    assert(lease->id && why->error_class);
    sluice_err err = queue_fault(q, "dead");
    if (err != SLUICE_OK)
        return err;
    return q->ops->dead(q, lease, why, now_ms);
}

sluice_err
sl_queue_release(sluice_queue *q, const sl_lease *lease, int64_t now_ms)
{
    assert(lease->id);
    return q->ops->release(q, lease, now_ms);
}

/* What the single call of the mark's kind asserts. */
static bool
mark_valid(const sl_queue_mark *m)
{
    if (!m->lease || !m->lease->id)
        return false;
    if (m->kind == SL_QUEUE_MARK_DONE)
        return m->obj && m->obj->sha256_hex && m->obj->size >= 0;
    if (m->kind == SL_QUEUE_MARK_RELEASE)
        return true;
    return m->why && m->why->error_class;
}

/* One mark by the single call of its kind. */
static sluice_err
mark_one(sluice_queue *q, const sl_queue_mark *m)
{
    switch (m->kind) {
    case SL_QUEUE_MARK_DONE:
        return sl_queue_complete(q, m->lease, m->obj, m->at_ms);
    case SL_QUEUE_MARK_RETRY:
        return sl_queue_retry(q, m->lease, m->at_ms, m->why,
                              m->counts_attempt);
    case SL_QUEUE_MARK_DEAD:
        return sl_queue_dead(q, m->lease, m->why, m->at_ms);
    case SL_QUEUE_MARK_RELEASE:
        return sl_queue_release(q, m->lease, m->at_ms);
    }
    return sl_queue_fail(q, SLUICE_EINVAL, "%s: a mark of no known kind",
                         q->location);
}

sluice_err
sl_queue_marks(sluice_queue *q, const sl_queue_mark *v, size_t n,
               sluice_err *results)
{
    sluice_err err = SLUICE_OK;
    if (n == 0)
        return SLUICE_OK;
    if (q->ops->marks) {
        for (size_t i = 0; i < n; i++)
            if (!mark_valid(&v[i]))
                assert(!"a mark lacks what its kind takes");
        err = queue_fault(q, "marks");
        if (err == SLUICE_OK)
            return q->ops->marks(q, v, n, results);
        for (size_t i = 0; i < n; i++)
            results[i] = SLUICE_EAGAIN;
        return err;
    }
    /* The single calls in order, as far as the first failure. */
    for (size_t i = 0; i < n; i++) {
        if (err != SLUICE_OK) {
            results[i] = SLUICE_EAGAIN;
            continue;
        }
        results[i] = mark_one(q, &v[i]);
        if (results[i] != SLUICE_OK && results[i] != SLUICE_ENOTFOUND)
            err = results[i];
    }
    return err;
}

sluice_err
sl_queue_renew(sluice_queue *q, const sl_lease *leases, size_t n,
               int64_t until_ms)
{
    if (n == 0 || !q->ops->renew)
        return SLUICE_OK;
    sluice_err err = queue_fault(q, "renew");
    if (err != SLUICE_OK)
        return err;
    return q->ops->renew(q, leases, n, until_ms);
}

sluice_err
sl_queue_acquire_runner(sluice_queue *q)
{
    if (!q->ops->acquire_runner)
        return SLUICE_OK;
    return q->ops->acquire_runner(q);
}

const char *
sl_queue_slots(const sluice_queue *q)
{
    return q->ops->slots;
}

bool
sl_queue_has(const sluice_queue *q, unsigned feature)
{
    return (q->ops->features & feature) == feature;
}

bool
sl_queue_outage(const sluice_queue *q, sluice_err err)
{
    return sl_queue_has(q, SL_QUEUE_F_OUTAGES) &&
           (err == SLUICE_ENETWORK || err == SLUICE_ETIMEOUT ||
            err == SLUICE_EBUSY);
}

static sluice_err
no_slots(sluice_queue *q)
{
    return sl_queue_fail(q, SLUICE_EUNSUPPORTED,
                         "%s: this queue keeps no slots or settings",
                         q->location);
}

sluice_err
sl_queue_slots_load(sluice_queue *q, sl_slot_row_fn *fn, void *ctx)
{
    if (!sl_queue_has(q, SL_QUEUE_F_SLOTS))
        return no_slots(q);
    return q->ops->slots_load(q, fn, ctx);
}

sluice_err
sl_queue_slots_save(sluice_queue *q, const sl_slot_row *rows, size_t n)
{
    if (!sl_queue_has(q, SL_QUEUE_F_SLOTS))
        return no_slots(q);
    for (size_t i = 0; i < n; i++)
        assert(rows[i].origin && rows[i].boot_id);
    if (n == 0)
        return SLUICE_OK;
    sluice_err err = queue_fault(q, "save slots");
    if (err != SLUICE_OK)
        return err;
    return q->ops->slots_save(q, rows, n);
}

sluice_err
sl_queue_slots_clear(sluice_queue *q, const char *origin, uint64_t *removed)
{
    uint64_t ignored;
    if (!removed)
        removed = &ignored;
    *removed = 0;
    if (!sl_queue_has(q, SL_QUEUE_F_SLOTS))
        return no_slots(q);
    return q->ops->slots_clear(q, origin, removed);
}

sluice_err
sl_queue_setting_get(sluice_queue *q, const char *name, char *value,
                     size_t size)
{
    assert(size > 0);
    value[0] = '\0';
    if (!sl_queue_has(q, SL_QUEUE_F_SLOTS))
        return no_slots(q);
    return q->ops->setting_get(q, name, value, size);
}

sluice_err
sl_queue_setting_set(sluice_queue *q, const char *name, const char *value)
{
    if (!sl_queue_has(q, SL_QUEUE_F_SLOTS))
        return no_slots(q);
    sluice_err err = queue_fault(q, "set a setting");
    if (err != SLUICE_OK)
        return err;
    return q->ops->setting_set(q, name, value);
}

sluice_err
sl_queue_setting_number(sluice_queue *q, const char *name, double *value)
{
    char text[32], *end;
    sluice_err err = sl_queue_setting_get(q, name, text, sizeof text);
    if (err != SLUICE_OK)
        return err;
    if (strcmp(text, "none") == 0) {
        *value = INFINITY;
        return SLUICE_OK;
    }
    double v = strtod(text, &end);
    if (end == text || *end || !(v > 0) || isinf(v))
        return sl_queue_fail(q, SLUICE_EDB,
                             "%s: the %s stored with the queue, '%s', is "
                             "not a number above 0 (nor 'none')",
                             q->location, name, text);
    *value = v;
    return SLUICE_OK;
}

bool
sl_queue_runner_alive(sluice_queue *q)
{
    bool alive = false;
    if (q->ops->runner_alive && q->ops->runner_alive(q, &alive) != SLUICE_OK)
        return false;
    return alive;
}

sluice_err
sl_queue_recover(sluice_queue *q, int64_t now_ms, uint64_t *recovered)
{
    uint64_t ignored;
    if (!recovered)
        recovered = &ignored;
    *recovered = 0;
    if (!q->ops->recover)
        return SLUICE_OK;
    return q->ops->recover(q, now_ms, recovered);
}

sluice_err
sl_queue_get(sluice_queue *q, const char *id, sl_record_info *out)
{
    memset(out, 0, sizeof *out);
    return q->ops->get(q, id, out);
}

sluice_err
sl_queue_next_due(sluice_queue *q, int64_t *due_ms, bool *any)
{
    *any = false;
    *due_ms = 0;
    return q->ops->next_due(q, due_ms, any);
}

sluice_err
sluice_queue_counts(sluice_queue *q, sluice_counts *out)
{
    memset(out, 0, sizeof *out);
    out->oldest_pending_age = -1;
    return q->ops->counts(q, sl_now_ms(), out);
}

sluice_err
sluice_dlq_list(sluice_queue *q, const sluice_dlq_filter *filter,
                sluice_dead_fn *fn, void *ctx)
{
    static const sluice_dlq_filter all = {NULL};
    return q->ops->dlq_list(q, filter ? filter : &all, fn, ctx);
}

_Static_assert(SLUICE_STATE_DEAD == (int)SL_STATE_DEAD &&
                   SLUICE_STATE_PENDING == (int)SL_STATE_PENDING,
               "sluice_state is sl_state");

const char *
sluice_state_name(sluice_state state)
{
    return sl_state_name((sl_state)state);
}

int
sluice_state_from_name(const char *name)
{
    for (int s = SLUICE_STATE_PENDING; s <= SLUICE_STATE_DEAD; s++) {
        if (strcmp(name, sl_state_name((sl_state)s)) == 0)
            return s;
    }
    return -1;
}

sluice_err
sluice_list(sluice_queue *q, const sluice_list_filter *filter,
            sluice_record_fn *fn, void *ctx)
{
    int state = filter ? filter->state : -1;
    if (state > SLUICE_STATE_DEAD)
        return sl_queue_fail(q, SLUICE_ECONFIG, "no state %d", state);
    return q->ops->list(q, state < 0 ? -1 : state, NULL, fn, ctx);
}

sluice_err
sluice_record_get(sluice_queue *q, const char *id, sluice_record_fn *fn,
                  void *ctx)
{
    return q->ops->list(q, -1, id, fn, ctx);
}

sluice_err
sluice_dlq_replay(sluice_queue *q, const char *const *ids, size_t n_ids,
                  const sluice_dlq_filter *filter, uint64_t *replayed,
                  uint64_t *missing)
{
    static const sluice_dlq_filter all = {NULL};
    uint64_t dummy_replayed, dummy_missing;
    sluice_err err;

    if (!replayed)
        replayed = &dummy_replayed;
    if (!missing)
        missing = &dummy_missing;
    *replayed = *missing = 0;
    if (!filter)
        filter = &all;
    int64_t now = sl_now_ms();
    if ((err = sl_queue_begin(q)) != SLUICE_OK)
        return err;
    if (!ids) {
        err = q->ops->replay(q, NULL, filter, now, replayed);
    } else {
        for (size_t i = 0; i < n_ids && err == SLUICE_OK; i++) {
            uint64_t n = 0;
            err = q->ops->replay(q, ids[i], filter, now, &n);
            *replayed += n;
            *missing += n ? 0 : 1;
        }
    }
    if (err != SLUICE_OK) {
        sl_queue_rollback(q);
        return err;
    }
    return sl_queue_commit(q);
}

sluice_err
sl_queue_dump(sluice_queue *q, sl_record_info_fn *fn, void *ctx)
{
    if (!q->ops->dump)
        return sl_queue_fail(q, SLUICE_EUNSUPPORTED,
                             "%s: the %s queue cannot list its records as "
                             "they are",
                             q->location, q->ops->backend.name);
    return q->ops->dump(q, fn, ctx);
}

sluice_err
sl_queue_restore(sluice_queue *q, const sl_record_info *recs, size_t n)
{
    if (!q->ops->restore)
        return sl_queue_fail(q, SLUICE_EUNSUPPORTED,
                             "%s: the %s queue cannot take records as they "
                             "are",
                             q->location, q->ops->backend.name);
    return n ? q->ops->restore(q, recs, n) : SLUICE_OK;
}

static sluice_err
no_streams(sluice_queue *q)
{
    return sl_queue_fail(q, SLUICE_EUNSUPPORTED,
                         "%s: the %s queue keeps no stream places",
                         q->location, q->ops->backend.name);
}

sluice_err
sl_queue_stream_lease(sluice_queue *q, const char *stream, const char *owner,
                      int64_t ttl_ms, bool *held, int64_t *left_ms)
{
    *held = false;
    *left_ms = 0;
    if (!sl_queue_has(q, SL_QUEUE_F_STREAMS))
        return no_streams(q);
    assert(ttl_ms > 0 && *owner);
    sluice_err err = queue_fault(q, "take a stream's lease");
    if (err != SLUICE_OK)
        return err;
    return q->ops->stream_lease(q, stream, owner, ttl_ms, held, left_ms);
}

sluice_err
sl_queue_stream_unlease(sluice_queue *q, const char *stream,
                        const char *owner)
{
    if (!sl_queue_has(q, SL_QUEUE_F_STREAMS))
        return no_streams(q);
    return q->ops->stream_unlease(q, stream, owner);
}

sluice_err
sl_queue_stream_mark(sluice_queue *q, const char *owner,
                     const sl_stream_mark *mark)
{
    if (!sl_queue_has(q, SL_QUEUE_F_STREAMS))
        return no_streams(q);
    assert(q->in_batch);
    sluice_err err = queue_fault(q, "mark a stream's place");
    if (err != SLUICE_OK)
        return err;
    return q->ops->stream_mark(q, owner, mark);
}

sluice_err
sl_queue_stream_marks(sluice_queue *q, const char *stream,
                      sl_stream_mark_fn *fn, void *ctx)
{
    if (!sl_queue_has(q, SL_QUEUE_F_STREAMS))
        return no_streams(q);
    return q->ops->stream_marks(q, stream, fn, ctx);
}
