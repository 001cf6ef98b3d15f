/*
 * The run's manifest (manifest.h).
 */
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../json.h"

/* Cut the file back to just after its last line break (0: to nothing). */
static int
cut_torn_line(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    char buf[4096];
    off_t end = st.st_size;
    while (end > 0) {
        size_t n = end < (off_t)sizeof buf ? (size_t)end : sizeof buf;
        off_t from = end - (off_t)n;
        ssize_t got = pread(fd, buf, n, from);
        if (got != (ssize_t)n)
            return -1;
        for (size_t i = n; i > 0; i--) {
            if (buf[i - 1] == '\n') {
                off_t keep = from + (off_t)i;
                return keep == st.st_size ? 0 : ftruncate(fd, keep);
            }
        }
        end = from;
    }
    return st.st_size ? ftruncate(fd, 0) : 0;
}

sluice_err
sl_manifest_open(sl_manifest *m, const char *path, char *errbuf,
                 size_t errbuf_size)
{
    m->fd = -1;
    sl_buf_init(&m->pending);
    m->path = sl_strdup(path);
    if (!m->path) {
        sl_fmt(errbuf, errbuf_size, "out of memory");
        return SLUICE_ENOMEM;
    }
    m->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (m->fd < 0 || cut_torn_line(m->fd) != 0) {
        sl_fmt(errbuf, errbuf_size, "--manifest %s: %s", path,
               strerror(errno));
        sl_manifest_close(m);
        return SLUICE_ESTORE;
    }
    return SLUICE_OK;
}

static void
put_str(yajl_gen g, const char *key, const char *value)
{
    yajl_gen_string(g, (const unsigned char *)key, strlen(key));
    if (value)
        yajl_gen_string(g, (const unsigned char *)value, strlen(value));
    else
        yajl_gen_null(g);
}

sluice_err
sl_manifest_add(sl_manifest *m, const char *id, const char *key,
                const char *url, uint64_t size, const char *sha256_hex,
                const char *meta)
{
    if (m->fd < 0)
        return SLUICE_OK;
    yajl_gen g = sl_json_gen_new();
    if (!g)
        return SLUICE_ENOMEM;
    char why[160];
    yajl_gen_map_open(g);
    put_str(g, "id", id);
    put_str(g, "key", key);
    put_str(g, "url", url);
    yajl_gen_string(g, (const unsigned char *)"size", 4);
    yajl_gen_integer(g, (long long)size);
    put_str(g, "sha256", sha256_hex);
    yajl_gen_string(g, (const unsigned char *)"meta", 4);
    if (meta) {
        yajl_gen_map_open(g);
        if (sl_json_copy_members(g, meta, strlen(meta), why, sizeof why) !=
            0) {
            yajl_gen_free(g);
            return SLUICE_ENOMEM; /* meta was checked at ingest */
        }
        yajl_gen_map_close(g);
    } else {
        yajl_gen_null(g);
    }
    yajl_gen_map_close(g);
    size_t len;
    const char *text = sl_json_gen_text(g, &len);
    int rc = sl_buf_append(&m->pending, text, len);
    if (rc == 0)
        rc = sl_buf_putc(&m->pending, '\n');
    yajl_gen_free(g);
    return rc == 0 ? SLUICE_OK : SLUICE_ENOMEM;
}

sluice_err
sl_manifest_sync(sl_manifest *m, char *errbuf, size_t errbuf_size)
{
    if (m->fd < 0 || m->pending.len == 0)
        return SLUICE_OK;
    size_t done = 0;
    while (done < m->pending.len) {
        ssize_t n = write(m->fd, m->pending.data + done,
                          m->pending.len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            sl_fmt(errbuf, errbuf_size, "--manifest %s: %s", m->path,
                   strerror(e));
            /* What was written of it may end in a torn line: cut off
             * (failing that, the next open cuts it). */
            if (done)
                (void)cut_torn_line(m->fd);
            sl_buf_clear(&m->pending);
            return e == ENOSPC ? SLUICE_ENOSPACE : SLUICE_ESTORE;
        }
        done += (size_t)n;
    }
    sl_buf_clear(&m->pending);
    if (fdatasync(m->fd) != 0) {
        sl_fmt(errbuf, errbuf_size, "--manifest %s: %s", m->path,
               strerror(errno));
        return SLUICE_ESTORE;
    }
    return SLUICE_OK;
}

void
sl_manifest_close(sl_manifest *m)
{
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
    sl_free(m->path);
    m->path = NULL;
    sl_buf_free(&m->pending);
}
