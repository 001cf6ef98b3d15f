/*
 * The one registry of backends. Every family (queues, stores, slot
 * services) is a set of const ops tables that begin with an sl_backend
 * head; a location is matched to a backend by its URL scheme, or to the
 * family's default for a plain path (sqlite's sqlite3_vfs_find, in kind).
 */
#ifndef SL_BACKEND_H
#define SL_BACKEND_H

typedef enum {
    SL_FAMILY_QUEUE, /* queue/queue.h */
    SL_FAMILY_STORE, /* store/store.h */
    SL_FAMILY_SLOTS  /* slots/slots.h */
} sl_family;

/* The first member of every backend's ops table. */
typedef struct {
    sl_family family;
    const char *name;   /* "sqlite", "file", "s3", "memory" */
    const char *scheme; /* "sqlite:", "s3://"; NULL: the family's default,
                           which takes plain paths */
} sl_backend;

/*
 * The backend of `family` for `location`: the one whose scheme prefixes
 * it, else the family's default, unless the location looks like
 * "scheme://..." with a scheme no backend has (NULL: an error, not a
 * file name). The ops table is the struct the head begins.
 */
const sl_backend *sl_backend_find(sl_family family, const char *location);

/* The backend of `family` called `name`, or NULL. */
const sl_backend *sl_backend_named(sl_family family, const char *name);

#endif /* SL_BACKEND_H */
