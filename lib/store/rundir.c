/*
 * Per-run temp directories, shared by the stores: the directory store's
 * temp files and the S3 store's spools. A run's files live in PARENT/NAME/
 * beside PARENT/NAME.lock, which the run holds an flock on while it
 * lives; the kernel drops the lock when the process dies, so the next run
 * can tell a crashed run's leftovers from a live run's files.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

void
sl_remove_tree(int parent_fd, const char *name)
{
    int fd = openat(parent_fd, name,
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        DIR *d = fdopendir(fd);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                    if (unlinkat(dirfd(d), e->d_name, 0) != 0 &&
                        errno == EISDIR)
                        sl_remove_tree(dirfd(d), e->d_name);
            }
            closedir(d);
        } else {
            close(fd);
        }
    }
    unlinkat(parent_fd, name, AT_REMOVEDIR);
}

int
sl_run_dir_open(int parent_fd, sl_run_dir *rd)
{
    static atomic_uint opened; /* two stores of one process differ too */
    char lock_name[80];
    rd->dir_fd = rd->lock_fd = -1;
    sl_fmt(rd->name, sizeof rd->name, "run-%ld-%llx-%u", (long)getpid(),
           (unsigned long long)sl_mono_ms(), atomic_fetch_add(&opened, 1));
    sl_fmt(lock_name, sizeof lock_name, "%s.lock", rd->name);
    rd->lock_fd = openat(parent_fd, lock_name,
                         O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (rd->lock_fd < 0 || flock(rd->lock_fd, LOCK_EX | LOCK_NB) != 0 ||
        mkdirat(parent_fd, rd->name, 0700) != 0)
        return errno ? errno : EIO;
    rd->dir_fd = openat(parent_fd, rd->name,
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return rd->dir_fd < 0 ? errno : 0;
}

void
sl_run_dir_close(int parent_fd, sl_run_dir *rd)
{
    if (rd->dir_fd >= 0) {
        close(rd->dir_fd);
        rd->dir_fd = -1;
        if (parent_fd >= 0) {
            char lock_name[80];
            sl_remove_tree(parent_fd, rd->name);
            sl_fmt(lock_name, sizeof lock_name, "%s.lock", rd->name);
            unlinkat(parent_fd, lock_name, 0);
        }
    }
    if (rd->lock_fd >= 0) {
        close(rd->lock_fd);
        rd->lock_fd = -1;
    }
}

int
sl_run_dir_reap_dead(int parent_fd, const char *own_name)
{
    int fd = fcntl(parent_fd, F_DUPFD_CLOEXEC, 0);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        int saved = errno;
        if (fd >= 0)
            close(fd);
        return saved ? saved : EIO;
    }
    rewinddir(d);
    struct dirent *e;
    size_t own_len = strlen(own_name);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        /* Skip our own run: the whole name, not a run whose name is
         * the start of ours. */
        if (len < 6 || strcmp(e->d_name + len - 5, ".lock") != 0 ||
            (len - 5 == own_len && strncmp(e->d_name, own_name, own_len) == 0))
            continue;
        int lock = openat(dirfd(d), e->d_name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (lock < 0)
            continue;
        if (flock(lock, LOCK_EX | LOCK_NB) == 0) {
            char run[256];
            sl_fmt(run, sizeof run, "%.*s", (int)(len - 5), e->d_name);
            sl_remove_tree(dirfd(d), run);
            unlinkat(dirfd(d), e->d_name, 0);
        }
        close(lock);
    }
    closedir(d);
    return 0;
}
