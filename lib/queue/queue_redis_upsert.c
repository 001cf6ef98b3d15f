/*
 * Upserts into the Redis queue (queue_redis.h), the speed of ingest.
 * New records, the common case of a first ingest, are written by plain
 * pipelined commands in one MULTI/EXEC under WATCH, with no script;
 * records that exist and changed go to the upsert script in the same
 * transaction. docs/queue.md, "Ingest", says why this is safe.
 */
#include "queue_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

/* Ids a lookup command asks for, members a bulk write carries. */
#define LOOKUP_CHUNK 4000
#define WRITE_CHUNK  1000
/* Tries under WATCH before the batch goes to the script whole. */
#define WATCH_TRIES 3

enum { K_NEW, K_SAME, K_SCRIPT };

/* A record's argument at field f (REC_ARGS a record: id url key meta
 * origin fp). */
#define ARG(k, f) (argv[REC_ARGS * (k) + (f)])
#define LEN(k, f) (lens[REC_ARGS * (k) + (f)])

/* FNV-1a, for the batch's table of ids. */
static uint64_t
hash_of(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/*
 * Marks each record whose id an earlier record of the batch has: it goes
 * to the script, which sees what the earlier one made of it. `slots` is
 * an open-addressing table of record numbers plus one, `size` a power of
 * two above n.
 */
static void
mark_repeats(const char **argv, const size_t *lens, size_t n, size_t *slots,
             size_t size, unsigned char *kind)
{
    memset(slots, 0, size * sizeof *slots);
    for (size_t k = 0; k < n; k++) {
        size_t at = (size_t)hash_of(ARG(k, 0), LEN(k, 0)) & (size - 1);
        for (;; at = (at + 1) & (size - 1)) {
            size_t j = slots[at];
            if (j == 0) {
                slots[at] = k + 1;
                break;
            }
            j--;
            if (LEN(j, 0) == LEN(k, 0) &&
                memcmp(ARG(j, 0), ARG(k, 0), LEN(k, 0)) == 0) {
                kind[k] = K_SCRIPT;
                break;
            }
        }
    }
}

/*
 * The first round trip: WATCH the meta hash (the last record number) and
 * the id hash, then read both. Sorts each record into new, unchanged or
 * for the script, and sets *top to the last record number; *packed when
 * the queue has packs (the ids in them are not in `ids` yet: nothing
 * was sorted).
 */
static sluice_err
look_up(sluice_queue *q, const char **argv, const size_t *lens, size_t n,
        unsigned char *kind, int64_t *top, bool *packed)
{
    sl_rq_queue *s = sl_rq_state(q);
    char ids_key[sizeof s->base + 8];
    sl_fmt(ids_key, sizeof ids_key, "%sids", s->base);
    size_t n_lookups = (n + LOOKUP_CHUNK - 1) / LOOKUP_CHUNK;
    sl_rq_cmds c;
    redisReply **replies = NULL;
    sluice_err err = SLUICE_ENOMEM;
    if (!sl_rq_cmds_init(&c, n + 8 + 2 * n_lookups, 2 + n_lookups) ||
        !(replies = sl_malloc((2 + n_lookups) * sizeof *replies))) {
        err = sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
        goto done;
    }
    sl_rq_arg_str(&c, "WATCH");
    sl_rq_arg_str(&c, s->meta_key);
    sl_rq_arg_str(&c, ids_key);
    sl_rq_cmd_end(&c);
    sl_rq_arg_str(&c, "HMGET");
    sl_rq_arg_str(&c, s->meta_key);
    sl_rq_arg_str(&c, "rid");
    sl_rq_arg_str(&c, "tail");
    sl_rq_cmd_end(&c);
    for (size_t k = 0; k < n; k += LOOKUP_CHUNK) {
        sl_rq_arg_str(&c, "HMGET");
        sl_rq_arg_str(&c, ids_key);
        for (size_t i = k; i < SL_MIN(n, k + LOOKUP_CHUNK); i++)
            sl_rq_arg(&c, ARG(i, 0), LEN(i, 0));
        sl_rq_cmd_end(&c);
    }
    if ((err = sl_rq_cmds_send(q, &c, replies)) != SLUICE_OK)
        goto done;
    err = SLUICE_OK;
    for (size_t i = 0; i < c.n_cmds && err == SLUICE_OK; i++) {
        int want = i == 0 ? REDIS_REPLY_STATUS : REDIS_REPLY_ARRAY;
        const redisReply *r = replies[i];
        if (r->type != want || (i == 1 && r->elements != 2))
            err = SLUICE_EDB;
    }
    if (err != SLUICE_OK) {
        err = sl_queue_fail(q, SLUICE_EDB,
                            "%s: upsert: unexpected reply from Redis",
                            s->conn.addr.where);
        goto done;
    }
    *top = sl_rq_int(replies[1], 0);
    *packed = sl_rq_str(replies[1], 1) != NULL;
    if (*packed)
        goto done;
    for (size_t k = 0; k < n; k++) {
        const redisReply *got = replies[2 + k / LOOKUP_CHUNK];
        size_t i = k % LOOKUP_CHUNK;
        if (i >= got->elements) {
            err = sl_queue_fail(q, SLUICE_EDB,
                                "%s: upsert: unexpected reply from Redis",
                                s->conn.addr.where);
            goto done;
        }
        const redisReply *v = got->element[i];
        if (kind[k] == K_SCRIPT)
            continue;
        if (v->type != REDIS_REPLY_STRING) {
            kind[k] = K_NEW;
            continue;
        }
        const char *colon = memchr(v->str, ':', v->len);
        bool same = colon &&
                    v->len - (size_t)(colon + 1 - v->str) == LEN(k, 5) &&
                    memcmp(colon + 1, ARG(k, 5), LEN(k, 5)) == 0;
        kind[k] = same ? K_SAME : K_SCRIPT;
    }
done:
    if (replies)
        sl_redis_replies_free(replies, c.n_cmds);
    sl_free(replies);
    sl_rq_cmds_free(&c);
    return err;
}

/* Text that the new records' commands point to, made once a batch. */
typedef struct {
    char rid[24];
    char key[sizeof((sl_rq_queue *)0)->base + 24];
    char id_val[24 + FP_HEX + 2];
} new_text;

/*
 * The second round trip: MULTI, the new records' hashes, their ids and
 * places in the indexes, the last record number and the count, the
 * script for the records that need it, EXEC. *raced is set when EXEC
 * did nothing because a watched key changed.
 */
static sluice_err
write_batch(sluice_queue *q, const char *now, const char **argv,
            const size_t *lens, size_t n, const unsigned char *kind,
            int64_t top, char *letters, bool *raced)
{
    sl_rq_queue *s = sl_rq_state(q);
    size_t n_new = 0, n_script = 0, po_bytes = 0;
    for (size_t k = 0; k < n; k++) {
        n_new += kind[k] == K_NEW;
        n_script += kind[k] == K_SCRIPT;
        if (kind[k] == K_NEW)
            po_bytes += strlen(s->base) + 4 + LEN(k, 4);
    }
    *raced = false;
    char ids_key[sizeof s->base + 8], pending_key[sizeof s->base + 8];
    char origins_key[sizeof s->base + 8], counts_key[sizeof s->base + 8];
    char top_text[24], added_text[24], n_keys[] = "1";
    sl_fmt(ids_key, sizeof ids_key, "%sids", s->base);
    sl_fmt(pending_key, sizeof pending_key, "%spending", s->base);
    sl_fmt(origins_key, sizeof origins_key, "%sorigins", s->base);
    sl_fmt(counts_key, sizeof counts_key, "%scounts", s->base);
    sl_fmt(top_text, sizeof top_text, "%" PRId64, top + (int64_t)n_new);
    sl_fmt(added_text, sizeof added_text, "%zu", n_new);
    /* Upper bounds: a record's hash is 15 arguments, its id 2, its
     * places 4, a run of one origin 5 more and 2 commands; the script 6
     * a record. */
    size_t chunks = 3 * (n_new / WRITE_CHUNK + 1);
    size_t cap_args = 64 + n_new * 28 + chunks * 3 + n_script * REC_ARGS;
    size_t cap_cmds = 16 + n_new * 3 + chunks;
    sl_rq_cmds c;
    new_text *text = sl_malloc((n_new ? n_new : 1) * sizeof *text);
    char *po = sl_malloc(po_bytes + 1), *po_at = po;
    redisReply **replies = NULL;
    sluice_err err = SLUICE_OK;
    if (!sl_rq_cmds_init(&c, cap_args, cap_cmds) || !text || !po ||
        !(replies = sl_malloc(cap_cmds * sizeof *replies))) {
        err = sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
        goto done;
    }
    sl_rq_arg_str(&c, "MULTI");
    sl_rq_cmd_end(&c);
    size_t t = 0;
    for (size_t k = 0; k < n; k++) {
        if (kind[k] != K_NEW)
            continue;
        new_text *x = &text[t++];
        int64_t rid = top + (int64_t)t;
        sl_fmt(x->rid, sizeof x->rid, "%" PRId64, rid);
        sl_fmt(x->key, sizeof x->key, "%sr:%" PRId64, s->base, rid);
        sl_fmt(x->id_val, sizeof x->id_val, "%" PRId64 ":%.*s", rid,
               (int)LEN(k, 5), ARG(k, 5));
        sl_rq_arg_str(&c, "HSET");
        sl_rq_arg_str(&c, x->key);
        static const char *const names[] = {"id", "url", "key", NULL, "origin"};
        for (int f = 0; f < 5; f++) {
            if (f == 3)
                continue;
            sl_rq_arg_str(&c, names[f]);
            sl_rq_arg(&c, ARG(k, f), LEN(k, f));
        }
        sl_rq_arg_str(&c, "state");
        sl_rq_arg_str(&c, "0");
        sl_rq_arg_str(&c, "queued_at");
        sl_rq_arg_str(&c, now);
        if (LEN(k, 3) > 0) {
            sl_rq_arg_str(&c, "meta");
            sl_rq_arg(&c, ARG(k, 3), LEN(k, 3));
        }
        sl_rq_cmd_end(&c);
    }
    /* The id hash and the feed-order index, WRITE_CHUNK a command. */
    for (size_t pass = 0; pass < 2; pass++) {
        t = 0;
        for (size_t k = 0; k < n; k++) {
            if (kind[k] != K_NEW)
                continue;
            if (t % WRITE_CHUNK == 0) {
                if (t)
                    sl_rq_cmd_end(&c);
                sl_rq_arg_str(&c, pass == 0 ? "HSET" : "ZADD");
                sl_rq_arg_str(&c, pass == 0 ? ids_key : pending_key);
            }
            if (pass == 0) {
                sl_rq_arg(&c, ARG(k, 0), LEN(k, 0));
                sl_rq_arg_str(&c, text[t].id_val);
            } else {
                sl_rq_arg_str(&c, text[t].rid);
                sl_rq_arg_str(&c, text[t].rid);
            }
            t++;
        }
        if (t)
            sl_rq_cmd_end(&c);
    }
    /* Each origin's index, a command a run of records of one origin. */
    t = 0;
    size_t run = 0, last = 0;
    for (size_t k = 0; k < n; k++) {
        if (kind[k] != K_NEW)
            continue;
        bool same_origin = run > 0 && LEN(k, 4) == LEN(last, 4) &&
                           memcmp(ARG(k, 4), ARG(last, 4), LEN(k, 4)) == 0;
        if (!same_origin || run == WRITE_CHUNK) {
            if (run)
                sl_rq_cmd_end(&c);
            if (!same_origin) {
                sl_rq_arg_str(&c, "SADD");
                sl_rq_arg_str(&c, origins_key);
                sl_rq_arg(&c, ARG(k, 4), LEN(k, 4));
                sl_rq_cmd_end(&c);
            }
            int len = snprintf(po_at, po_bytes + 1 - (size_t)(po_at - po),
                               "%spo:%.*s", s->base, (int)LEN(k, 4), ARG(k, 4));
            sl_rq_arg_str(&c, "ZADD");
            sl_rq_arg(&c, po_at, (size_t)len);
            po_at += len + 1;
            run = 0;
        }
        sl_rq_arg_str(&c, text[t].rid);
        sl_rq_arg_str(&c, text[t].rid);
        t++;
        run++;
        last = k;
    }
    if (run)
        sl_rq_cmd_end(&c);
    sl_rq_arg_str(&c, "HSET");
    sl_rq_arg_str(&c, s->meta_key);
    sl_rq_arg_str(&c, "rid");
    sl_rq_arg_str(&c, top_text);
    sl_rq_cmd_end(&c);
    sl_rq_arg_str(&c, "HINCRBY");
    sl_rq_arg_str(&c, counts_key);
    sl_rq_arg_str(&c, "s0");
    sl_rq_arg_str(&c, added_text);
    sl_rq_cmd_end(&c);
    if (n_script > 0) {
        /* EVAL with the text, not EVALSHA: a script Redis forgot would
         * fail inside EXEC, after the other commands took effect. Redis
         * keeps the compiled script by its digest all the same. */
        sl_rq_arg_str(&c, "EVAL");
        sl_rq_arg_str(&c, sl_rq_scripts[RQ_UPSERT].text);
        sl_rq_arg_str(&c, n_keys);
        sl_rq_arg_str(&c, s->meta_key);
        sl_rq_arg_str(&c, now);
        for (size_t k = 0; k < n; k++)
            if (kind[k] == K_SCRIPT)
                for (int f = 0; f < REC_ARGS; f++)
                    sl_rq_arg(&c, ARG(k, f), LEN(k, f));
        sl_rq_cmd_end(&c);
    }
    sl_rq_arg_str(&c, "EXEC");
    sl_rq_cmd_end(&c);
    if ((err = sl_rq_cmds_send(q, &c, replies)) != SLUICE_OK)
        goto done;
    /* An error while queueing makes EXEC refuse the whole (EXECABORT);
     * EXEC's answer says it all. */
    const redisReply *exec = replies[c.n_cmds - 1];
    if (exec->type == REDIS_REPLY_NIL) {
        *raced = true;
        goto done;
    }
    const char *why = sl_rq_exec_why(replies, c.n_cmds);
    const redisReply *letters_reply =
        !why && n_script ? exec->element[exec->elements - 1] : NULL;
    if (!why && letters_reply &&
        (letters_reply->type != REDIS_REPLY_STRING ||
         letters_reply->len != n_script))
        why = "unexpected reply from Redis";
    if (why) {
        err = sl_queue_fail(q, SLUICE_EDB, "%s: upsert: %.300s",
                            s->conn.addr.where, why);
        goto done;
    }
    size_t j = 0;
    for (size_t k = 0; k < n; k++)
        letters[k] = kind[k] == K_NEW    ? 'a'
                     : kind[k] == K_SAME ? 'n'
                                         : letters_reply->str[j++];
done:
    if (replies)
        sl_redis_replies_free(replies, c.n_cmds);
    sl_free(replies);
    sl_free(text);
    sl_free(po);
    sl_rq_cmds_free(&c);
    return err;
}

sluice_err
sl_rq_unwatch(sluice_queue *q)
{
    sl_rq_queue *s = sl_rq_state(q);
    redisReply *reply;
    const char *argv[] = {"UNWATCH"};
    sluice_err err = sl_redis_cmd(&s->conn, &reply, 1, argv, NULL);
    if (err != SLUICE_OK)
        return sl_rq_conn_fail(q, err);
    freeReplyObject(reply);
    return SLUICE_OK;
}

/* The whole batch in the script: when WATCH keeps losing the race. */
static sluice_err
by_script(sluice_queue *q, const char *now, const char **argv,
          const size_t *lens, size_t n, char *letters)
{
    const char **all = sl_malloc((1 + REC_ARGS * n) * sizeof *all);
    size_t *all_lens = sl_malloc((1 + REC_ARGS * n) * sizeof *all_lens);
    if (!all || !all_lens) {
        sl_free(all);
        sl_free(all_lens);
        return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    }
    all[0] = now;
    all_lens[0] = strlen(now);
    memcpy(&all[1], argv, REC_ARGS * n * sizeof *all);
    memcpy(&all_lens[1], lens, REC_ARGS * n * sizeof *all_lens);
    redisReply *reply;
    sluice_err err = sl_rq_eval(q, RQ_UPSERT, &reply, (int)(1 + REC_ARGS * n),
                                all, all_lens);
    sl_free(all);
    sl_free(all_lens);
    if (err != SLUICE_OK)
        return err;
    if (reply->type != REDIS_REPLY_STRING || reply->len != n)
        return sl_rq_bad_reply(q, reply, "upsert");
    memcpy(letters, reply->str, n);
    freeReplyObject(reply);
    return SLUICE_OK;
}

sluice_err
sl_rq_upsert(sluice_queue *q, const char *now, const char **argv,
             const size_t *lens, size_t n, char *letters)
{
    sl_rq_queue *s = sl_rq_state(q);
    if (n == 0)
        return SLUICE_OK;
    size_t size = 16;
    while (size < 2 * n)
        size *= 2;
    unsigned char *kind = sl_malloc(n);
    size_t *table = sl_malloc(size * sizeof *table);
    sluice_err err = SLUICE_OK;
    if (!kind || !table) {
        err = sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
        goto done;
    }
    int unpacks = 0;
    for (int attempt = 0; attempt < WATCH_TRIES; attempt++) {
        memset(kind, K_NEW, n);
        mark_repeats(argv, lens, n, table, size, kind);
        int64_t top = 0;
        bool packed = false;
        if ((err = look_up(q, argv, lens, n, kind, &top, &packed)) !=
            SLUICE_OK)
            goto done;
        if (packed && unpacks++ < WATCH_TRIES) {
            /* The ids in packs must be in `ids` to be looked up: unpack
             * them (which writes meta: unwatch it first), then again. */
            if ((err = sl_rq_unwatch(q)) != SLUICE_OK ||
                (err = sl_rq_unpack_all(q)) != SLUICE_OK)
                goto done;
            attempt--;
            continue;
        }
        if (packed) {
            /* Packs keep coming: the script unpacks them itself. */
            if ((err = sl_rq_unwatch(q)) != SLUICE_OK)
                goto done;
            break;
        }
        size_t n_new = 0;
        for (size_t k = 0; k < n; k++)
            n_new += kind[k] == K_NEW;
        if (n_new == 0) {
            /* Nothing new: what changed is one script call, atomic on
             * its own; the unchanged need nothing. */
            if ((err = sl_rq_unwatch(q)) != SLUICE_OK)
                goto done;
            sl_rq_pack_follow(s, top, 0);
            break;
        }
        /* The WATCH holds only on the connection that sent it. */
        if (!sl_redis_connected(&s->conn)) {
            err = sl_queue_fail(q, SLUICE_ENETWORK,
                                "%s: upsert: the connection was lost",
                                s->conn.addr.where);
            goto done;
        }
        bool raced;
        err = write_batch(q, now, argv, lens, n, kind, top, letters, &raced);
        if (err == SLUICE_OK && !raced)
            sl_rq_pack_follow(s, top, n_new);
        if (err != SLUICE_OK || !raced)
            goto done;
    }
    /* Here: nothing new, or every try raced. The script does the rest. */
    size_t n_script = 0, n_new = 0;
    for (size_t k = 0; k < n; k++) {
        n_script += kind[k] == K_SCRIPT;
        n_new += kind[k] == K_NEW;
    }
    if (n_new > 0) {
        /* Unwatched: whose records it meets is unknown. */
        sl_rq_pack_lost(s);
        err = by_script(q, now, argv, lens, n, letters);
        goto done;
    }
    for (size_t k = 0; k < n; k++)
        letters[k] = 'n';
    if (n_script == 0)
        goto done;
    const char **some = sl_malloc(REC_ARGS * n_script * sizeof *some);
    size_t *some_lens = sl_malloc(REC_ARGS * n_script * sizeof *some_lens);
    char *got = sl_malloc(n_script);
    if (some && some_lens && got) {
        size_t j = 0;
        for (size_t k = 0; k < n; k++) {
            if (kind[k] != K_SCRIPT)
                continue;
            memcpy(&some[REC_ARGS * j], &ARG(k, 0), REC_ARGS * sizeof *some);
            memcpy(&some_lens[REC_ARGS * j], &LEN(k, 0),
                   REC_ARGS * sizeof *some_lens);
            j++;
        }
        err = by_script(q, now, some, some_lens, n_script, got);
        for (size_t k = 0, i = 0; err == SLUICE_OK && k < n; k++)
            if (kind[k] == K_SCRIPT)
                letters[k] = got[i++];
    } else {
        err = sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    }
    sl_free(some);
    sl_free(some_lens);
    sl_free(got);
done:
    sl_free(kind);
    sl_free(table);
    return err;
}
