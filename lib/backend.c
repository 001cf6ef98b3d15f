/*
 * The registry (backend.h): every backend sluice has, in one list. A new
 * backend is one line here and its ops table.
 */
#include "backend.h"

#include <string.h>

#include "queue/queue.h"
#include "slots/slots.h"
#include "store/store.h"
#include "util.h"

static const sl_backend *const backends[] = {
    &sl_queue_sqlite.backend,
    &sl_queue_redis.backend,
    &sl_queue_redis_unix.backend,
    &sl_store_file.backend,
    &sl_store_s3.backend,
    &sl_slots_memory.backend,
    &sl_slots_durable.backend,
    &sl_slots_redis.backend,
};

const sl_backend *
sl_backend_find(sl_family family, const char *location)
{
    const sl_backend *fallback = NULL;
    for (size_t i = 0; i < SL_ARRAY_LEN(backends); i++) {
        const sl_backend *b = backends[i];
        if (b->family != family)
            continue;
        if (!b->scheme)
            fallback = b;
        else if (strncmp(location, b->scheme, strlen(b->scheme)) == 0)
            return b;
    }
    /* "scheme://..." naming no backend is an error, not a file name. */
    const char *sep = strstr(location, "://");
    if (sep && strcspn(location, "/") > (size_t)(sep - location))
        return NULL;
    return fallback;
}

const sl_backend *
sl_backend_named(sl_family family, const char *name)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(backends); i++)
        if (backends[i]->family == family &&
            strcmp(backends[i]->name, name) == 0)
            return backends[i];
    return NULL;
}
