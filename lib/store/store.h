/*
 * The store interface: where objects land. A backend (store_file.c, a
 * local directory; store_s3.c, S3) is a const table of operations behind
 * the sl_store_* / sl_object_* wrappers. Writing is synchronous (the body is
 * streamed in as it arrives); making an object durable under its final
 * key is asynchronous: submit it, then reap the results, so a slow fsync
 * or upload never holds up the fetch loop (async.h: the machinery the
 * backends share for that).
 */
#ifndef SL_STORE_H
#define SL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "../backend.h"
#include "../util.h"
#include "sluice/sluice.h"

typedef struct sl_store sl_store;
typedef struct sl_object sl_object;
typedef struct sl_store_ops sl_store_ops;
typedef struct sl_async sl_async; /* async.h */

typedef struct {
    unsigned concurrency;    /* uploads at once, for remote stores */
    const char *s3_endpoint; /* NULL: from the environment */
    int s3_path_style;       /* 1 path-style, 0 virtual-hosted, -1 auto */
    const char *spool_dir;   /* NULL: $TMPDIR, else /tmp */
} sl_store_opts;

/* What the store says about a submitted object. */
typedef enum {
    SL_STORED,         /* durable under its key */
    SL_STORE_REJECTED, /* this object cannot be stored (its key is a
                          directory, say): the record's failure */
    SL_STORE_RETRY,    /* not stored this time; try the record again */
    SL_STORE_FAILED    /* the store cannot work: stop the run */
} sl_store_status;

typedef struct {
    void *cookie; /* as given to sl_store_submit */
    sl_store_status status;
    sluice_err err;
    char message[256];
    char sha256_hex[65]; /* SL_STORED: the SHA-256 of the stored body */
} sl_store_result;

/* Metadata that travels with an object (S3 keeps it on the object). */
typedef struct {
    const char *content_type; /* may be NULL */
    const char *etag;         /* the origin's, may be NULL */
    const char *source_url;
    const char *record_meta; /* the record's meta (record/meta.h), or NULL */
    uint64_t size;
} sl_object_meta;

struct sl_store {
    const sl_store_ops *ops;
    char *location;
    void *state;
    EVP_MD *sha256; /* fetched once: an implicit fetch per body costs */
    /* Submitted objects and their results, shared by every backend
     * (async.h): made before the backend opens, freed after it closes. */
    sl_async *async;
    char errmsg[512];
};

/* An object being written: the wrapper part, then the backend's. */
struct sl_object {
    sl_store *store;
    char *key;
    uint64_t written;
    void *cookie;
    sl_object_meta meta;
    char *meta_strings;  /* one allocation behind meta's strings */
    EVP_MD_CTX *sha;     /* the body hashed so far; NULL before any */
    char sha256_hex[65]; /* the body's SHA-256, once hashing has ended */
    /* Once submitted, the backend's (async.h): */
    sl_object *next; /* in one of the backend's lists */
    sl_store_status status;
    sluice_err err;
    char message[200];
    /* the backend's state follows: ops->object_size bytes */
};

struct sl_store_ops {
    sl_backend backend; /* family SL_FAMILY_STORE; scheme "s3://", or NULL
                           for the default (a directory) */
    size_t state_size;
    size_t object_size;
    /* Objects submitted and not yet reaped that a caller may hold beyond
     * its fetching ones: worth it where making an object durable is a
     * short wait (a sync), not where it may be a long one (an upload to
     * a remote that is down: there the fetching must pause instead). */
    unsigned pipeline;

    sluice_err (*open)(sl_store *s, const char *location,
                       const sl_store_opts *opts);
    /* Also called after a failed open. */
    void (*close)(sl_store *s);
    /* Remove what a crashed run left behind (temp files, spools). */
    sluice_err (*recover)(sl_store *s);
    sluice_err (*begin)(sl_store *s, sl_object *o);
    /* The backend hashes the body (sl_object_hash, sl_object_hash_end)
     * where it costs least: as it is written, or whole from memory on a
     * thread of its own. A result SL_STORED carries the hash. */
    sluice_err (*write)(sl_object *o, const void *data, size_t len);
    /* Forget an object that will not be submitted. */
    void (*discard)(sl_object *o);
    /* Make it durable, asynchronously: the store owns o from now; the
     * backend's worker posts its result to s->async (async.h), which the
     * wrappers reap. */
    void (*submit)(sl_store *s, sl_object *o);
};

static inline void *
sl_object_state(sl_object *o)
{
    return (char *)o + sizeof(sl_object);
}

sluice_err sl_store_open(const char *location, const sl_store_opts *opts,
                         sl_store **out, char *errbuf, size_t errbuf_size);
void sl_store_close(sl_store *s);
sluice_err sl_store_recover(sl_store *s);

/* Start an object for `key` (validated at ingest). */
sluice_err sl_store_begin(sl_store *s, const char *key, void *cookie,
                          sl_object **out);
sluice_err sl_object_write(sl_object *o, const void *data, size_t len);
void sl_object_discard(sl_object *o);
/* Hand the finished object over; its result comes back from reap. */
sluice_err sl_store_submit(sl_store *s, sl_object *o,
                           const sl_object_meta *meta);
/* A descriptor that is readable while results wait. */
int sl_store_wake_fd(sl_store *s);
/* Up to `max` results of submitted objects, their objects freed. */
size_t sl_store_reap(sl_store *s, sl_store_result *out, size_t max);
/* Objects submitted and not yet reaped, that the caller should wait for:
 * a remote store leaves out uploads waiting out a backoff after a failure
 * (the remote may be down for long; close gives them up, and their
 * records stay in flight for the next run). */
size_t sl_store_busy(sl_store *s);
/* Objects submitted and not yet reaped a caller may hold beyond its
 * fetching ones (ops->pipeline). */
size_t sl_store_pipeline(const sl_store *s);
/* The store's location, and the detail of its last error. */
const char *sl_store_location(const sl_store *s);
const char *sl_store_errmsg(const sl_store *s);
/* Free an object the backend has finished with (backends call this). */
void sl_object_free(sl_object *o);
/* Hash `len` more bytes of o's body (backends call this). */
sluice_err sl_object_hash(sl_object *o, const void *data, size_t len);
/* End o's hash with `len` last bytes (or none) into o->sha256_hex; a
 * second call changes nothing (backends call this). */
sluice_err sl_object_hash_end(sl_object *o, const void *data, size_t len);

sluice_err sl_store_fail(sl_store *s, sluice_err err, const char *fmt, ...)
    SL_PRINTF(3, 4);

/*
 * Per-run temp directories (rundir.c): PARENT/NAME/ holds a run's files,
 * PARENT/NAME.lock is flocked while the run lives, so a later run can
 * remove what a crashed one left and never touch a live one's files.
 */
typedef struct {
    int dir_fd;  /* PARENT/NAME/ */
    int lock_fd; /* PARENT/NAME.lock, locked */
    char name[64];
} sl_run_dir;

/* Make a fresh run directory under parent_fd and lock it. Returns 0, or
 * an errno value (the fds left open are closed by sl_run_dir_close). */
int sl_run_dir_open(int parent_fd, sl_run_dir *rd);
/* Remove the run's directory (whatever is in it) and its lock. */
void sl_run_dir_close(int parent_fd, sl_run_dir *rd);
/* Remove the directories of runs under parent_fd whose lock is free
 * (they crashed), never own_name's. Returns 0, or an errno value. */
int sl_run_dir_reap_dead(int parent_fd, const char *own_name);
/* Remove parent_fd/name and everything under it; never follows a link. */
void sl_remove_tree(int parent_fd, const char *name);

extern const sl_store_ops sl_store_file;
extern const sl_store_ops sl_store_s3;

#endif /* SL_STORE_H */
