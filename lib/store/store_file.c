/*
 * The directory store. A body is streamed into a temp file under
 * ROOT/.sluice-tmp/; when complete, a sync thread makes a batch of them
 * durable (fsync each, or one syncfs for a large batch), renames each onto
 * its key (directories made as needed, never through a symlink), fsyncs
 * the directories it touched, and only then reports them stored. A run's
 * temp files live in their own directory, locked while the run lives, so
 * the next run can tell a crashed run's leftovers and remove them.
 */
#define _GNU_SOURCE /* pipe2, syncfs */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../fault.h"

#define TMP_DIR     ".sluice-tmp"
#define SYNCFS_MIN  8 /* a batch this big is cheaper with one syncfs */
#define MAX_DIRS    64 /* distinct directories fsynced per batch, at most */

typedef struct file_object {
    int fd;
    char tmp_name[32];
    sl_object *next; /* in the to-do or done list */
    sl_store_status status;
    sluice_err err;
    char message[200];
} file_object;

typedef struct {
    char *root;
    int root_fd;
    int tmp_fd;     /* ROOT/.sluice-tmp/ */
    sl_run_dir run; /* ROOT/.sluice-tmp/run-XXXX/ and its lock */
    uint64_t seq;
    pthread_t syncer;
    bool syncer_started;
    pthread_mutex_t lock;
    pthread_cond_t wake_syncer;
    sl_object *todo_head, *todo_tail;
    sl_object *done_head, *done_tail;
    size_t busy;
    bool stopping;
    int wake[2]; /* a byte is written when results are waiting */
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

static sluice_err
errno_fail(sl_store *s, const char *what, int err)
{
    sluice_err code = err == ENOSPC || err == EDQUOT || err == EFBIG
                          ? SLUICE_ENOSPACE
                      : err == EACCES || err == EPERM || err == EROFS
                          ? SLUICE_EACCES
                          : SLUICE_ESTORE;
    return sl_store_fail(s, code, "store %s: %s: %s", s->location, what,
                         strerror(err));
}

static void *sync_main(void *arg);

static sluice_err
file_open(sl_store *s, const char *location, const sl_store_opts *opts)
{
    file_store *fs = fs_of(s);
    (void)opts;
    fs->root_fd = fs->tmp_fd = fs->run.dir_fd = fs->run.lock_fd = -1;
    fs->wake[0] = fs->wake[1] = -1;
    pthread_mutex_init(&fs->lock, NULL);
    pthread_cond_init(&fs->wake_syncer, NULL);
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
    if (pipe2(fs->wake, O_NONBLOCK | O_CLOEXEC) != 0)
        return errno_fail(s, "pipe", errno);
    if (pthread_create(&fs->syncer, NULL, sync_main, s) != 0)
        return sl_store_fail(s, SLUICE_ESTORE, "cannot start a thread");
    fs->syncer_started = true;
    return SLUICE_OK;
}

static void
free_list(sl_object *o)
{
    while (o) {
        sl_object *next = fo_of(o)->next;
        if (fo_of(o)->fd >= 0)
            close(fo_of(o)->fd);
        sl_object_free(o);
        o = next;
    }
}

static void
file_close(sl_store *s)
{
    file_store *fs = fs_of(s);
    if (fs->syncer_started) {
        pthread_mutex_lock(&fs->lock);
        fs->stopping = true;
        pthread_cond_signal(&fs->wake_syncer);
        pthread_mutex_unlock(&fs->lock);
        pthread_join(fs->syncer, NULL);
    }
    free_list(fs->todo_head);
    free_list(fs->done_head);
    sl_run_dir_close(fs->tmp_fd, &fs->run);
    if (fs->tmp_fd >= 0)
        close(fs->tmp_fd);
    if (fs->root_fd >= 0)
        close(fs->root_fd);
    for (int i = 0; i < 2; i++)
        if (fs->wake[i] >= 0)
            close(fs->wake[i]);
    pthread_cond_destroy(&fs->wake_syncer);
    pthread_mutex_destroy(&fs->lock);
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
    sl_fmt(fo->tmp_name, sizeof fo->tmp_name, "%llu",
           (unsigned long long)++fs->seq);
    fo->fd = openat(fs->run.dir_fd, fo->tmp_name,
                    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fo->fd < 0)
        return errno_fail(s, "cannot create a temp file", errno);
    return SLUICE_OK;
}

static sluice_err
file_write(sl_object *o, const void *data, size_t len)
{
    file_object *fo = fo_of(o);
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fo->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return errno_fail(o->store, "write", n < 0 ? errno : ENOSPC);
        p += n;
        len -= (size_t)n;
    }
    return SLUICE_OK;
}

static void
file_discard(sl_object *o)
{
    file_object *fo = fo_of(o);
    if (fo->fd >= 0) {
        close(fo->fd);
        fo->fd = -1;
    }
    unlinkat(fs_of(o->store)->run.dir_fd, fo->tmp_name, 0);
}

static void
file_submit(sl_store *s, sl_object *o)
{
    file_store *fs = fs_of(s);
    fo_of(o)->next = NULL;
    pthread_mutex_lock(&fs->lock);
    if (fs->todo_tail)
        fo_of(fs->todo_tail)->next = o;
    else
        fs->todo_head = o;
    fs->todo_tail = o;
    fs->busy++;
    pthread_cond_signal(&fs->wake_syncer);
    pthread_mutex_unlock(&fs->lock);
}

static int
file_wake_fd(sl_store *s)
{
    return fs_of(s)->wake[0];
}

static size_t
file_reap(sl_store *s, sl_store_result *out, size_t max)
{
    file_store *fs = fs_of(s);
    char drain[64];
    while (read(fs->wake[0], drain, sizeof drain) > 0)
        ;
    size_t n = 0;
    pthread_mutex_lock(&fs->lock);
    while (n < max && fs->done_head) {
        sl_object *o = fs->done_head;
        file_object *fo = fo_of(o);
        fs->done_head = fo->next;
        if (!fs->done_head)
            fs->done_tail = NULL;
        fs->busy--;
        out[n].cookie = o->cookie;
        out[n].status = fo->status;
        out[n].err = fo->err;
        sl_fmt(out[n].message, sizeof out[n].message, "%s", fo->message);
        sl_object_free(o);
        n++;
    }
    /* More left: make sure the caller is woken again. */
    if (fs->done_head && write(fs->wake[1], "x", 1) < 0) {
        /* the pipe is full: a wake-up is already pending */
    }
    pthread_mutex_unlock(&fs->lock);
    return n;
}

static size_t
file_busy(sl_store *s)
{
    file_store *fs = fs_of(s);
    pthread_mutex_lock(&fs->lock);
    size_t n = fs->busy;
    pthread_mutex_unlock(&fs->lock);
    return n;
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

/* Remember `fd` (a directory) for the final fsync; sync early if full. */
static int
dir_set_add(dir_set *set, int fd)
{
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
    file_object *fo = fo_of(o);
    fo->status = status;
    fo->err = err;
    sl_fmt(fo->message, sizeof fo->message, "%s: %s", what,
           strerror(errnum));
}

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
        int next = openat(fd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                       O_CLOEXEC);
        if (next < 0 && errno == ENOENT) {
            if (mkdirat(fd, seg, 0777) != 0 && errno != EEXIST) {
                object_fail(o, SL_STORE_FAILED, SLUICE_ESTORE,
                            "cannot make a directory for it", errno);
                *slash = '/';
                close(fd);
                return -1;
            }
            if (dir_set_add(set, fd) != 0) {
                object_fail(o, SL_STORE_FAILED, SLUICE_ESTORE, "fsync",
                            errno);
                *slash = '/';
                close(fd);
                return -1;
            }
            next = openat(fd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                       O_CLOEXEC);
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

/* Rename one synced temp file onto its key. */
static void
place(file_store *fs, sl_object *o, dir_set *set)
{
    const char *base;
    int dir = open_parent(fs, o, set, &base);
    if (dir < 0)
        return;
    if (sl_fault_hit(SL_FAULT_RENAME)) {
        errno = EIO;
        object_fail(o, SL_STORE_FAILED, SLUICE_ESTORE, "rename", EIO);
    } else if (renameat(fs->run.dir_fd, fo_of(o)->tmp_name, dir, base) != 0) {
        int saved = errno;
        bool in_the_way = saved == EISDIR || saved == ENOTDIR ||
                          saved == ENOTEMPTY || saved == EEXIST;
        object_fail(o, in_the_way ? SL_STORE_REJECTED : SL_STORE_FAILED,
                    SLUICE_ESTORE,
                    in_the_way ? "a directory is in the way of its key"
                               : "rename",
                    saved);
    } else if (dir_set_add(set, dir) != 0) {
        object_fail(o, SL_STORE_FAILED, SLUICE_ESTORE, "fsync", errno);
    }
    close(dir);
}

static void
sync_batch(sl_store *s, sl_object *batch)
{
    file_store *fs = fs_of(s);
    size_t n = 0;
    int sync_error = 0;
    for (sl_object *o = batch; o; o = fo_of(o)->next)
        n++;

    /* 1. The data: fsync each file, or one syncfs for a large batch. */
    if (n >= SYNCFS_MIN) {
        if (sl_fault_hit(SL_FAULT_FSYNC) || syncfs(fs->run.dir_fd) != 0)
            sync_error = errno ? errno : EIO;
    }
    for (sl_object *o = batch; o; o = fo_of(o)->next) {
        file_object *fo = fo_of(o);
        fo->status = SL_STORED;
        fo->err = SLUICE_OK;
        fo->message[0] = '\0';
        int err = sync_error;
        if (n < SYNCFS_MIN && fsync_checked(fo->fd) != 0)
            err = errno;
        if (close(fo->fd) != 0 && !err)
            err = errno;
        fo->fd = -1;
        if (err)
            object_fail(o, SL_STORE_FAILED,
                        err == ENOSPC ? SLUICE_ENOSPACE : SLUICE_ESTORE,
                        "fsync", err);
    }

    /* 2. Onto their keys, then the directories they are in. */
    dir_set set = {.n = 0};
    for (sl_object *o = batch; o; o = fo_of(o)->next)
        if (fo_of(o)->status == SL_STORED)
            place(fs, o, &set);
    int dir_error = dir_set_sync(&set);
    for (sl_object *o = batch; o; o = fo_of(o)->next) {
        file_object *fo = fo_of(o);
        if (fo->status != SL_STORED) {
            unlinkat(fs->run.dir_fd, fo->tmp_name, 0);
            continue;
        }
        if (dir_error)
            object_fail(o, SL_STORE_FAILED, SLUICE_ESTORE,
                        "fsync of a directory", dir_error);
    }
}

static void *
sync_main(void *arg)
{
    sl_store *s = arg;
    file_store *fs = fs_of(s);
    pthread_mutex_lock(&fs->lock);
    for (;;) {
        while (!fs->todo_head && !fs->stopping)
            pthread_cond_wait(&fs->wake_syncer, &fs->lock);
        if (!fs->todo_head)
            break;
        sl_object *batch = fs->todo_head, *last = fs->todo_tail;
        fs->todo_head = fs->todo_tail = NULL;
        pthread_mutex_unlock(&fs->lock);

        sync_batch(s, batch);

        pthread_mutex_lock(&fs->lock);
        if (fs->done_tail)
            fo_of(fs->done_tail)->next = batch;
        else
            fs->done_head = batch;
        fs->done_tail = last;
        if (write(fs->wake[1], "x", 1) < 0) {
            /* full: a wake-up is already pending */
        }
    }
    pthread_mutex_unlock(&fs->lock);
    return NULL;
}

const sl_store_ops sl_store_file = {
    .name = "file",
    .scheme = NULL,
    .state_size = sizeof(file_store),
    .object_size = sizeof(file_object),
    .open = file_open,
    .close = file_close,
    .recover = file_recover,
    .begin = file_begin,
    .write = file_write,
    .discard = file_discard,
    .submit = file_submit,
    .wake_fd = file_wake_fd,
    .reap = file_reap,
    .busy = file_busy,
};
