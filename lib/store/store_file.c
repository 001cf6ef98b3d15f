/*
 * The directory store. A body is streamed into a temp file under
 * ROOT/.sluice-tmp/; when complete, a sync thread makes a batch of them
 * durable (fsync each, or one syncfs for a large batch), puts each onto
 * its key (directories made as needed, never through a symlink), fsyncs
 * the directories it touched, and only then reports them stored. A run's
 * temp files live in their own directory, locked while the run lives, so
 * the next run can tell a crashed run's leftovers and remove them.
 *
 * Where the file system allows, a temp file has no name at all
 * (O_TMPFILE): it is linked onto its key, or vanishes when closed. That
 * spares a name made and removed per object, and the fetch thread and
 * the sync thread no longer queue for the lock of the one directory both
 * would create names in. A key that exists already takes the old way: a
 * name in the temp directory, renamed over the key.
 *
 * A small body (most images) is kept in memory until it is complete, and
 * the sync thread writes its temp file: creating a file costs more than
 * the rest of a small transfer, and this takes it off the fetch loop's
 * thread. A body that grows past SMALL_MAX, or arrives while BUFFERED_MAX
 * is held, goes to its temp file as it arrives.
 */
#define _GNU_SOURCE /* syncfs */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../fault.h"
#include "../record/record.h"
#include "async.h"
#include "body_pool.h"

#define TMP_DIR          ".sluice-tmp"
#define SYNCFS_MIN       8  /* a batch this big is cheaper with one syncfs */
#define MAX_DIRS         64 /* distinct directories a batch fsyncs, at most */
#define SMALL_MAX        (64 * 1024)       /* a body kept in memory, at most */
#define BUFFERED_MAX     (4 * 1024 * 1024) /* all bodies kept in memory */
#define WRITE_BEHIND_MAX 256               /* bodies waiting for the syncer */
#define SPARE_MAX        (2 * 1024 * 1024) /* written bodies' buffers kept */
#define GATHER_GOAL      64                /* a batch worth a sync at once */
#define GATHER_NS        (2 * 1000 * 1000) /* waited for it, at most */
#define WAKE_MIN         16 /* bodies worth waking the syncer for, mid-flush */

typedef struct file_object {
    int fd;         /* the temp file; -1 while the body is in memory */
    bool anonymous; /* fd is an O_TMPFILE, nameless until linked */
    char *buf;
    size_t len, cap;
    uint64_t seq;      /* names the temp file, if it needs a name */
    char tmp_name[24]; /* "" until temp_name() makes it */
} file_object;

typedef struct {
    char *root;
    int root_fd;
    int tmp_fd;     /* ROOT/.sluice-tmp/ */
    sl_run_dir run; /* ROOT/.sluice-tmp/run-XXXX/ and its lock */
    uint64_t seq;
    bool named_only;         /* no O_TMPFILE here: temp files have names */
    bool link_by_proc;       /* linkat needs /proc/self/fd, not AT_EMPTY_PATH */
    atomic_size_t buffered;  /* bytes of bodies held in memory */
    atomic_size_t unwritten; /* submitted bodies the syncer has not
                                written yet: its backlog */
    sl_body_pool spares;     /* buffers of written bodies, for new ones */
    pthread_t syncer;
    bool syncer_started;
    pthread_t flusher; /* makes the syncfs calls for the syncer */
    bool flusher_started;
    sl_async *async; /* the store's (async.h); its lock guards all below */
    pthread_cond_t wake_syncer;
    pthread_cond_t wake_flusher;
    bool flush_asked, flush_done, flush_stopping;
    int flush_err;
    size_t syncer_wants; /* todo_n the sync thread sleeps for; 0: awake */
} file_store;

static file_store *
fs_of(sl_store *s)
{
    return s->state;
}

static file_object *
fo_of(sl_object *o)
{
    return sl_object_state(o);
}

/* The error a failed write or open of the store is. */
static sluice_err
store_err(int err)
{
    return err == ENOSPC || err == EDQUOT || err == EFBIG  ? SLUICE_ENOSPACE
           : err == EACCES || err == EPERM || err == EROFS ? SLUICE_EACCES
                                                           : SLUICE_ESTORE;
}

static sluice_err
errno_fail(sl_store *s, const char *what, int err)
{
    return sl_store_fail(s, store_err(err), "store %s: %s: %s", s->location,
                         what, strerror(err));
}

static void *sync_main(void *arg);
static void *flush_main(void *arg);

static int
open_anonymous(file_store *fs)
{
    return openat(fs->run.dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
}

/* Give the nameless file `fd` the name `dir`/`name`. */
static int
link_anonymous(file_store *fs, int fd, int dir, const char *name)
{
    if (!fs->link_by_proc)
        return linkat(fd, "", dir, name, AT_EMPTY_PATH);
    char path[40];
    sl_fmt(path, sizeof path, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, path, dir, name, AT_SYMLINK_FOLLOW);
}

/*
 * Whether nameless temp files can be made here and linked: the file
 * system must support O_TMPFILE, and linkat takes AT_EMPTY_PATH only
 * from a process that may (CAP_DAC_READ_SEARCH), /proc's path otherwise.
 * Neither: temp files have names.
 */
static void
probe_tmpfile(file_store *fs)
{
    fs->named_only = true;
    if (sl_fault_hit(SL_FAULT_TMPFILE))
        return;
    int fd = open_anonymous(fs);
    if (fd < 0)
        return;
    for (int by_proc = 0; by_proc < 2 && fs->named_only; by_proc++) {
        fs->link_by_proc = by_proc;
        if (link_anonymous(fs, fd, fs->run.dir_fd, "probe") == 0) {
            unlinkat(fs->run.dir_fd, "probe", 0);
            fs->named_only = false;
        }
    }
    close(fd);
}

static sluice_err
file_open(sl_store *s, const char *location, const sl_store_opts *opts)
{
    file_store *fs = fs_of(s);
    (void)opts;
    fs->root_fd = fs->tmp_fd = fs->run.dir_fd = fs->run.lock_fd = -1;
    fs->async = s->async;
    pthread_cond_init(&fs->wake_syncer, NULL);
    pthread_cond_init(&fs->wake_flusher, NULL);
    sl_body_pool_init(&fs->spares, SPARE_MAX);
    if (!*location)
        return sl_store_fail(s, SLUICE_EINVAL, "--store: empty path");
    fs->root = sl_strdup(location);
    if (!fs->root)
        return sl_store_fail(s, SLUICE_ENOMEM, "out of memory");
    if (mkdir(location, 0777) != 0 && errno != EEXIST)
        return errno_fail(s, "cannot create the directory", errno);
    fs->root_fd = open(location, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fs->root_fd < 0)
        return errno_fail(s, "cannot open the directory", errno);
    if (mkdirat(fs->root_fd, TMP_DIR, 0700) != 0 && errno != EEXIST)
        return errno_fail(s, "cannot write", errno);
    fs->tmp_fd = openat(fs->root_fd, TMP_DIR,
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fs->tmp_fd < 0)
        return errno_fail(s, "cannot open " TMP_DIR, errno);

    /* This run's temp directory, and a lock that says it is alive. */
    int err = sl_run_dir_open(fs->tmp_fd, &fs->run);
    if (err)
        return errno_fail(s, "cannot write", err);
    probe_tmpfile(fs);
    if ((err = sl_async_open_pipe(fs->async)) != 0)
        return errno_fail(s, "pipe", err);
    if (pthread_create(&fs->flusher, NULL, flush_main, fs) != 0)
        return sl_store_fail(s, SLUICE_ESTORE, "cannot start a thread");
    fs->flusher_started = true;
    if (pthread_create(&fs->syncer, NULL, sync_main, s) != 0)
        return sl_store_fail(s, SLUICE_ESTORE, "cannot start a thread");
    fs->syncer_started = true;
    return SLUICE_OK;
}

/* Let go of an object that will not be reported: the store is closing. */
static void
forget(sl_object *o)
{
    if (fo_of(o)->fd >= 0)
        close(fo_of(o)->fd);
    sl_free(fo_of(o)->buf);
}

static void
file_close(sl_store *s)
{
    file_store *fs = fs_of(s);
    if (fs->syncer_started) {
        pthread_mutex_lock(&fs->async->lock);
        fs->async->stopping = true;
        pthread_cond_signal(&fs->wake_syncer);
        pthread_mutex_unlock(&fs->async->lock);
        pthread_join(fs->syncer, NULL);
    }
    if (fs->flusher_started) {
        pthread_mutex_lock(&fs->async->lock);
        fs->flush_stopping = true;
        pthread_cond_signal(&fs->wake_flusher);
        pthread_mutex_unlock(&fs->async->lock);
        pthread_join(fs->flusher, NULL);
    }
    sl_async_fini(fs->async, forget);
    sl_body_pool_clear(&fs->spares);
    sl_run_dir_close(fs->tmp_fd, &fs->run);
    if (fs->tmp_fd >= 0)
        close(fs->tmp_fd);
    if (fs->root_fd >= 0)
        close(fs->root_fd);
    pthread_cond_destroy(&fs->wake_syncer);
    pthread_cond_destroy(&fs->wake_flusher);
    sl_free(fs->root);
}

/* Remove the temp files of runs that are no longer alive. */
static sluice_err
file_recover(sl_store *s)
{
    file_store *fs = fs_of(s);
    int err = sl_run_dir_reap_dead(fs->tmp_fd, fs->run.name);
    return err ? errno_fail(s, "cannot read " TMP_DIR, err) : SLUICE_OK;
}

static sluice_err
file_begin(sl_store *s, sl_object *o)
{
    file_store *fs = fs_of(s);
    file_object *fo = fo_of(o);
    fo->seq = ++fs->seq;
    fo->tmp_name[0] = '\0';
    fo->fd = -1; /* in memory until it outgrows SMALL_MAX */
    return SLUICE_OK;
}

static int
write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : ENOSPC;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The temp file's name in the run's directory. Most temp files need
 * none (O_TMPFILE), so it is made only when asked for. */
static const char *
temp_name(file_object *fo)
{
    if (!fo->tmp_name[0])
        sl_fmt(fo->tmp_name, sizeof fo->tmp_name, "%llu",
               (unsigned long long)fo->seq);
    return fo->tmp_name;
}

static int
create_temp(file_store *fs, file_object *fo)
{
    fo->anonymous = !fs->named_only;
    fo->fd = fo->anonymous
                 ? open_anonymous(fs)
                 : openat(fs->run.dir_fd, temp_name(fo),
                          O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    return fo->fd < 0 ? errno : 0;
}

/* Close a temp file that will not be placed, and remove it. */
static void
remove_temp(file_store *fs, file_object *fo)
{
    if (fo->fd >= 0) {
        close(fo->fd);
        fo->fd = -1;
    }
    if (!fo->anonymous)
        unlinkat(fs->run.dir_fd, temp_name(fo), 0);
}

/* Let go of an object's in-memory body: its buffer is kept for the next
 * body, on the fetch thread, or added to `given` on the sync thread, to
 * be handed back to the fetch thread with the rest of the batch's. */
static void
drop_buffer(file_store *fs, file_object *fo, sl_body_batch *given)
{
    atomic_fetch_sub(&fs->buffered, fo->len);
    if (given)
        sl_body_pool_collect(&fs->spares, given, fo->buf, fo->cap);
    else
        sl_body_pool_keep(&fs->spares, fo->buf, fo->cap);
    fo->buf = NULL;
    fo->len = fo->cap = 0;
}

/* Keep data in memory if the body stays small; false to spill it. */
static bool
buffer(file_store *fs, file_object *fo, const void *data, size_t len)
{
    if (fo->len + len > SMALL_MAX ||
        atomic_load(&fs->buffered) + len > BUFFERED_MAX)
        return false;
    /* A sync thread that is behind gets no more files to write: the
     * fetch thread writes them itself, and the two share the work. */
    if (fo->len == 0 && atomic_load(&fs->unwritten) >= WRITE_BEHIND_MAX)
        return false;
    if (!fo->buf)
        fo->buf = sl_body_pool_take(&fs->spares, &fo->cap);
    if (fo->len + len > fo->cap) {
        size_t cap = fo->cap ? fo->cap : 16 * 1024;
        while (cap < fo->len + len)
            cap *= 2;
        char *grown = sl_realloc(fo->buf, cap);
        if (!grown)
            return false; /* the file will do */
        fo->buf = grown;
        fo->cap = cap;
    }
    memcpy(fo->buf + fo->len, data, len);
    fo->len += len;
    atomic_fetch_add(&fs->buffered, len);
    return true;
}

static sluice_err
file_write(sl_object *o, const void *data, size_t len)
{
    file_store *fs = fs_of(o->store);
    file_object *fo = fo_of(o);
    int err = 0;
    if (fo->fd < 0) {
        if (buffer(fs, fo, data, len))
            return SLUICE_OK;
        if ((err = create_temp(fs, fo)) != 0)
            return errno_fail(o->store, "cannot create a temp file", err);
        /* From now on this thread hashes the body as it writes it. */
        if (sl_object_hash(o, fo->buf, fo->len) != SLUICE_OK)
            err = ENOMEM;
        else
            err = write_all(fo->fd, fo->buf, fo->len);
        drop_buffer(fs, fo, NULL);
    }
    if (!err && sl_object_hash(o, data, len) != SLUICE_OK)
        err = ENOMEM;
    if (!err)
        err = write_all(fo->fd, data, len);
    return err ? errno_fail(o->store, "write", err) : SLUICE_OK;
}

static void
file_discard(sl_object *o)
{
    file_object *fo = fo_of(o);
    if (fo->fd >= 0)
        remove_temp(fs_of(o->store), fo);
    drop_buffer(fs_of(o->store), fo, NULL);
}

/* One lock hand-off per object; the sync thread is woken only when it
 * sleeps for as many as are waiting now. */
static void
file_submit(sl_store *s, sl_object *o)
{
    file_store *fs = fs_of(s);
    if (fo_of(o)->fd < 0)
        atomic_fetch_add(&fs->unwritten, 1);
    pthread_mutex_lock(&fs->async->lock);
    size_t todo_n = sl_async_push(fs->async, o);
    if (fs->syncer_wants && todo_n >= fs->syncer_wants)
        pthread_cond_signal(&fs->wake_syncer);
    pthread_mutex_unlock(&fs->async->lock);
}

/* ------------------------------------------------------------ syncing */

typedef struct {
    dev_t dev;
    ino_t ino;
    int fd;
} dir_entry;

/* The directories a batch touched, each fsynced once at the end. */
typedef struct {
    dir_entry dirs[MAX_DIRS];
    size_t n;
} dir_set;

static int
fsync_checked(int fd)
{
    if (sl_fault_hit(SL_FAULT_FSYNC)) {
        errno = EIO;
        return -1;
    }
    return fsync(fd);
}

/* Remember `fd` (a directory) for the final fsync; sync early if full.
 * No set: a syncfs to come covers the directories. */
static int
dir_set_add(dir_set *set, int fd)
{
    if (!set)
        return 0;
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return -1;
    for (size_t i = 0; i < set->n; i++)
        if (set->dirs[i].dev == sb.st_dev && set->dirs[i].ino == sb.st_ino)
            return 0;
    if (set->n == MAX_DIRS)
        return fsync_checked(fd);
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0)
        return -1;
    set->dirs[set->n++] = (dir_entry){sb.st_dev, sb.st_ino, dup_fd};
    return 0;
}

static int
dir_set_sync(dir_set *set)
{
    int rc = 0;
    for (size_t i = 0; i < set->n; i++) {
        if (fsync_checked(set->dirs[i].fd) != 0 && rc == 0)
            rc = errno ? errno : EIO;
        close(set->dirs[i].fd);
    }
    set->n = 0;
    return rc;
}

static void
object_fail(sl_object *o, sl_store_status status, sluice_err err,
            const char *what, int errnum)
{
    o->status = status;
    o->err = err;
    sl_fmt(o->message, sizeof o->message, "%s: %s", what, strerror(errnum));
}

/*
 * The directory a batch placed its last object in: most objects of a
 * batch share a directory, and opening it again for each (every segment,
 * with O_NOFOLLOW) would cost more system calls than the rest of the
 * object. It lives for one batch only.
 */
typedef struct {
    char prefix[SL_KEY_MAX + 1]; /* the key up to its last '/', or "" */
    int fd;                      /* that directory; -1 when none */
    bool noted;                  /* in the batch's dir_set already */
} parent_cache;

/*
 * Open the directory that will hold `key`, making missing ones (and
 * noting their parents for fsync). Never follows a symlink. Returns the
 * directory's fd and sets *base to the key's last segment, or -1.
 */
static int
open_parent(file_store *fs, sl_object *o, dir_set *set, const char **base)
{
    char *key = o->key;
    int fd = fcntl(fs->root_fd, F_DUPFD_CLOEXEC, 0);
    char *seg = key, *slash;
    while (fd >= 0 && (slash = strchr(seg, '/')) != NULL) {
        *slash = '\0';
        int next =
            openat(fd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT) {
            if (mkdirat(fd, seg, 0777) != 0 && errno != EEXIST) {
                object_fail(o, SL_STORE_FAILED, SLUICE_ESTORE,
                            "cannot make a directory for it", errno);
                *slash = '/';
                close(fd);
                return -1;
            }
            if (dir_set_add(set, fd) != 0) {
                object_fail(o, SL_STORE_FAILED, SLUICE_ESTORE, "fsync", errno);
                *slash = '/';
                close(fd);
                return -1;
            }
            next = openat(fd, seg,
                          O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        int saved = errno;
        *slash = '/';
        close(fd);
        if (next < 0) {
            bool in_the_way = saved == ENOTDIR || saved == ELOOP;
            object_fail(o, in_the_way ? SL_STORE_REJECTED : SL_STORE_FAILED,
                        SLUICE_ESTORE,
                        in_the_way ? "a file or symlink is in the way of "
                                     "its key"
                                   : "cannot open a directory of its key",
                        saved);
            return -1;
        }
        fd = next;
        seg = slash + 1;
    }
    *base = seg;
    return fd;
}

/* The directory for `o`'s key, from the cache or opened (and cached). */
static int
cached_parent(file_store *fs, sl_object *o, dir_set *set, parent_cache *cache,
              const char **base)
{
    const char *last = strrchr(o->key, '/');
    size_t len = last ? (size_t)(last - o->key) : 0;
    if (cache->fd >= 0 && strlen(cache->prefix) == len &&
        memcmp(cache->prefix, o->key, len) == 0) {
        *base = last ? last + 1 : o->key;
        return cache->fd;
    }
    if (cache->fd >= 0)
        close(cache->fd);
    cache->fd = open_parent(fs, o, set, base);
    cache->noted = false;
    if (cache->fd >= 0) { /* len < sizeof prefix: keys are checked */
        memcpy(cache->prefix, o->key, len);
        cache->prefix[len] = '\0';
    }
    return cache->fd;
}

/* Put a synced temp file onto its key `dir`/`base`: link a nameless one
 * there, or, when the key exists, name it and rename it over the key;
 * rename a named one. Returns 0 or an errno value. */
static int
put_on_key(file_store *fs, file_object *fo, int dir, const char *base)
{
    if (sl_fault_hit(SL_FAULT_RENAME))
        return EIO;
    if (fo->anonymous) {
        int err = link_anonymous(fs, fo->fd, dir, base) == 0 ? 0 : errno;
        if (err == EEXIST) {
            if (link_anonymous(fs, fo->fd, fs->run.dir_fd, temp_name(fo)) == 0)
                fo->anonymous = false; /* renamed over the key below */
            else
                err = errno;
        }
        close(fo->fd);
        fo->fd = -1;
        if (fo->anonymous)
            return err;
    }
    return renameat(fs->run.dir_fd, temp_name(fo), dir, base) == 0 ? 0 : errno;
}

/* Put one synced temp file onto its key. */
static void
place(file_store *fs, sl_object *o, dir_set *set, parent_cache *cache)
{
    const char *base;
    int dir = cached_parent(fs, o, set, cache, &base);
    if (dir < 0)
        return;
    int saved = put_on_key(fs, fo_of(o), dir, base);
    if (saved) {
        bool in_the_way = saved == EISDIR || saved == ENOTDIR ||
                          saved == ENOTEMPTY || saved == EEXIST;
        object_fail(
            o, in_the_way ? SL_STORE_REJECTED : SL_STORE_FAILED, SLUICE_ESTORE,
            in_the_way ? "a directory is in the way of its key" : "rename",
            saved);
    } else if (!cache->noted) {
        if (dir_set_add(set, dir) != 0)
            object_fail(o, SL_STORE_FAILED, SLUICE_ESTORE, "fsync", errno);
        else
            cache->noted = true;
    }
}

/* Hash and write an in-memory body to its temp file: here, not on the
 * fetching thread, whose time is the run's. */
static void
write_out(file_store *fs, sl_object *o, sl_body_batch *given)
{
    file_object *fo = fo_of(o);
    int err = sl_fault_hit(SL_FAULT_WRITE) ? EIO : create_temp(fs, fo);
    if (!err)
        err = write_all(fo->fd, fo->buf, fo->len);
    if (!err && sl_object_hash_end(o, fo->buf, fo->len) != SLUICE_OK)
        err = ENOMEM;
    drop_buffer(fs, fo, given);
    atomic_fetch_sub(&fs->unwritten, 1);
    if (err)
        object_fail(o, SL_STORE_FAILED, store_err(err), "write", err);
}

/* Reset a batch's results, write out its in-memory bodies and end the
 * hashes of the others; returns how many objects it has. */
static size_t
prepare(file_store *fs, sl_object *batch)
{
    size_t n = 0;
    sl_body_batch given = {0};
    for (sl_object *o = batch; o; o = o->next) {
        o->status = SL_STORED;
        o->err = SLUICE_OK;
        o->message[0] = '\0';
        if (fo_of(o)->fd < 0)
            write_out(fs, o, &given);
        else if (sl_object_hash_end(o, NULL, 0) != SLUICE_OK)
            object_fail(o, SL_STORE_FAILED, SLUICE_ENOMEM, "hash", ENOMEM);
        n++;
    }
    sl_body_pool_give(&fs->spares, &given);
    return n;
}

static int
syncfs_checked(file_store *fs)
{
    if (sl_fault_hit(SL_FAULT_FSYNC) || syncfs(fs->run.dir_fd) != 0)
        return errno ? errno : EIO;
    return 0;
}

/* Close each named temp file (a nameless one stays open to be linked),
 * after an fsync of each when `fsync_each`; an object whose data is not
 * durable (`sync_error`, or its own) fails. */
static void
close_files(sl_object *batch, int sync_error, bool fsync_each)
{
    for (sl_object *o = batch; o; o = o->next) {
        file_object *fo = fo_of(o);
        if (fo->fd < 0)
            continue; /* its write failed */
        int err = sync_error;
        if (fsync_each && fsync_checked(fo->fd) != 0)
            err = errno;
        if (!fo->anonymous) {
            if (close(fo->fd) != 0 && !err)
                err = errno;
            fo->fd = -1;
        }
        if (err && o->status == SL_STORED)
            object_fail(o, SL_STORE_FAILED,
                        err == ENOSPC ? SLUICE_ENOSPACE : SLUICE_ESTORE,
                        "fsync", err);
    }
}

/* Put the batch's durable temp files onto their keys, noting the
 * directories touched in `set` (NULL when a syncfs will cover them). */
static void
place_all(file_store *fs, sl_object *batch, dir_set *set)
{
    parent_cache cache = {.fd = -1};
    for (sl_object *o = batch; o; o = o->next)
        if (o->status == SL_STORED)
            place(fs, o, set, &cache);
    if (cache.fd >= 0)
        close(cache.fd);
}

/* The batch's links and renames are durable unless `err`: remove the
 * temp files of objects that failed, and fail the rest on `err`. */
static void
finish(file_store *fs, sl_object *batch, int err, const char *what)
{
    for (sl_object *o = batch; o; o = o->next) {
        if (o->status != SL_STORED)
            remove_temp(fs, fo_of(o));
        else if (err)
            object_fail(o, SL_STORE_FAILED, SLUICE_ESTORE, what, err);
    }
}

/* The time `ns` from now, for a wait on one of the store's conditions
 * (which use CLOCK_REALTIME). */
static struct timespec
deadline_in(long ns)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_nsec += ns;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/*
 * Objects are coming (some are in hand, or `placed` wait for a sync):
 * wait a moment for a batch worth a sync, since a sync costs about the
 * same for one object as for many, and each wake-up of this thread costs
 * two context switches.
 */
static void
gather(file_store *fs, bool placed)
{
    sl_async *a = fs->async;
    if ((!a->todo_head && !placed) || a->todo_n >= GATHER_GOAL || a->stopping)
        return;
    struct timespec until = deadline_in(GATHER_NS);
    fs->syncer_wants = GATHER_GOAL;
    while (a->todo_n < GATHER_GOAL && !a->stopping &&
           pthread_cond_timedwait(&fs->wake_syncer, &a->lock, &until) == 0)
        ;
    fs->syncer_wants = 0;
}

/* ------------------------------------------------------------ flusher */

/*
 * The flusher thread makes the syncfs calls the sync thread asks for, so
 * that the sync thread writes files while the disk flushes: a syncfs is
 * mostly waiting for the device.
 */
static void *
flush_main(void *arg)
{
    file_store *fs = arg;
    sl_thread_name("sl-flush");
    pthread_mutex_lock(&fs->async->lock);
    for (;;) {
        while (!fs->flush_asked && !fs->flush_stopping)
            pthread_cond_wait(&fs->wake_flusher, &fs->async->lock);
        if (!fs->flush_asked)
            break; /* stopping */
        fs->flush_asked = false;
        pthread_mutex_unlock(&fs->async->lock);
        int err = syncfs_checked(fs);
        pthread_mutex_lock(&fs->async->lock);
        fs->flush_err = err;
        fs->flush_done = true;
        pthread_cond_signal(&fs->wake_syncer);
    }
    pthread_mutex_unlock(&fs->async->lock);
    return NULL;
}

static void
flush_begin(file_store *fs)
{
    pthread_mutex_lock(&fs->async->lock);
    fs->flush_asked = true;
    fs->flush_done = false;
    pthread_cond_signal(&fs->wake_flusher);
    pthread_mutex_unlock(&fs->async->lock);
}

/*
 * Until the syncfs flush_begin asked for ends, write the bodies that
 * come in meanwhile (the next syncfs covers them too), appending them to
 * the batch *head..*tail; a fetch thread would otherwise find the sync
 * thread behind and write them itself. Returns how many were added, and
 * the syncfs's error (or 0) in *err.
 */
static size_t
flush_end(file_store *fs, sl_object **head, sl_object **tail, int *err)
{
    size_t n = 0;
    pthread_mutex_lock(&fs->async->lock);
    while (!fs->flush_done) {
        if (!fs->async->todo_head) {
            /* Woken by WAKE_MIN bodies, or the syncfs's end, or after
             * GATHER_NS: fewer bodies, arriving just after a take, would
             * otherwise wait in memory for a syncfs that may be slow. */
            struct timespec until = deadline_in(GATHER_NS);
            fs->syncer_wants = WAKE_MIN;
            pthread_cond_timedwait(&fs->wake_syncer, &fs->async->lock, &until);
            fs->syncer_wants = 0;
            continue;
        }
        sl_object *more_tail, *more = sl_async_take(fs->async, &more_tail);
        pthread_mutex_unlock(&fs->async->lock);
        n += prepare(fs, more);
        sl_object_list_append(head, tail, more, more_tail);
        pthread_mutex_lock(&fs->async->lock);
    }
    *err = fs->flush_err;
    pthread_mutex_unlock(&fs->async->lock);
    return n;
}

/*
 * The sync thread. A small batch (under SYNCFS_MIN, nothing else in
 * hand): fsync each file, rename each onto its key, fsync the
 * directories, report. Otherwise a pipeline of syncfs calls, each made
 * by the flusher while this thread writes the next batch's files (all
 * that come in until the syncfs ends). A syncfs does two jobs: it makes
 * the data of the batch written before it began durable, and the renames
 * made before it began (syncfs writes the file system's metadata too).
 * So: batch k is written; syncfs S(k) makes its data durable; it is
 * renamed onto its keys; S(k+1) makes those renames durable, and then it
 * is reported. A record is never done before its object is durable under
 * its key, and an object is renamed onto its key only once its data is
 * durable.
 */
static void *
sync_main(void *arg)
{
    sl_store *s = arg;
    sl_thread_name("sl-sync");
    file_store *fs = fs_of(s);
    sl_async *a = fs->async;
    sl_object *placed = NULL, *placed_last = NULL;   /* renamed, unsynced */
    sl_object *syncing = NULL, *syncing_last = NULL; /* in the syncfs */
    bool flushing = false;                           /* a syncfs is under way */
    pthread_mutex_lock(&fs->async->lock);
    for (;;) {
        while (!a->todo_head && !placed && !flushing && !a->stopping) {
            fs->syncer_wants = 1;
            pthread_cond_wait(&fs->wake_syncer, &a->lock);
            fs->syncer_wants = 0;
        }
        if (!flushing)
            gather(fs, placed != NULL);
        if (!a->todo_head && !placed && !flushing)
            break; /* stopping, and nothing left */
        sl_object *last, *batch = sl_async_take(a, &last);
        pthread_mutex_unlock(&fs->async->lock);

        sl_object *done = NULL, *done_last = NULL;
        size_t n = batch ? prepare(fs, batch) : 0; /* while it flushes */
        if (flushing) {
            int err;
            n += flush_end(fs, &batch, &last, &err);
            flushing = false;
            if (placed) { /* renamed before that syncfs began */
                finish(fs, placed, err, "fsync");
                done = placed;
                done_last = placed_last;
                placed = placed_last = NULL;
            }
            if (syncing) { /* written before it began */
                close_files(syncing, err, false);
                place_all(fs, syncing, NULL);
                placed = syncing;
                placed_last = syncing_last;
                syncing = syncing_last = NULL;
            }
        }
        if (placed || n >= SYNCFS_MIN) {
            syncing = batch;
            syncing_last = last;
            flush_begin(fs);
            flushing = true;
        } else if (batch) {
            close_files(batch, 0, true);
            dir_set set = {.n = 0};
            place_all(fs, batch, &set);
            finish(fs, batch, dir_set_sync(&set), "fsync of a directory");
            sl_object_list_append(&done, &done_last, batch, last);
        }

        pthread_mutex_lock(&fs->async->lock);
        if (!done)
            continue;
        sl_async_post(a, done, done_last);
    }
    pthread_mutex_unlock(&fs->async->lock);
    return NULL;
}

const sl_store_ops sl_store_file = {
    .backend = {SL_FAMILY_STORE, "file", NULL},
    .state_size = sizeof(file_store),
    .object_size = sizeof(file_object),
    .pipeline = 512,
    .open = file_open,
    .close = file_close,
    .recover = file_recover,
    .begin = file_begin,
    .write = file_write,
    .discard = file_discard,
    .submit = file_submit,
};
