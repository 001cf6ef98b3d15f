/*
 * The Redis queue backend's insides, shared by its files: queue_redis.c
 * (the operations) and queue_redis_scripts.c (the Lua scripts that make
 * each change atomic). docs/queue.md describes the key layout.
 */
#ifndef SL_QUEUE_REDIS_H
#define SL_QUEUE_REDIS_H

#include "../redis/redis.h"
#include "queue.h"

/* The schema version kept in the queue's meta hash. */
#define SL_REDIS_SCHEMA 1

/* The scripts, by number: rq_scripts[] in queue_redis_scripts.c. */
enum {
    RQ_INIT,
    RQ_UPSERT,
    RQ_LEASE,
    RQ_COMPLETE,
    RQ_RETRY,
    RQ_DEAD,
    RQ_RELEASE,
    RQ_RENEW,
    RQ_RECOVER,
    RQ_COUNTS,
    RQ_GET,
    RQ_PAGE,
    RQ_DLQ_PAGE,
    RQ_REPLAY,
    RQ_SLOTS_SAVE,
    RQ_RUNNER_JOIN,
    RQ_RUNNER_RENEW,
    RQ_RUNNER_DROP,
    RQ_RUNNER_COUNT,
    RQ_COUNT_
};

extern const sl_redis_script sl_rq_scripts[RQ_COUNT_];

/*
 * The fields a record's hash holds, in the order RQ_GET, RQ_PAGE and
 * RQ_DLQ_PAGE return them (RQ_FIELDS in the scripts).
 */
enum {
    RF_ID,
    RF_URL,
    RF_KEY,
    RF_META,
    RF_ORIGIN,
    RF_STATE,
    RF_ATTEMPTS,
    RF_THROTTLES,
    RF_NEXT_AT,
    RF_ERROR_CLASS,
    RF_MESSAGE,
    RF_HTTP_STATUS,
    RF_SIZE,
    RF_SHA256,
    RF_CTYPE,
    RF_ETAG,
    RF_FINISHED_AT,
    RF_COUNT_
};

#endif /* SL_QUEUE_REDIS_H */
