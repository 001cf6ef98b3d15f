/*
 * The directory store (lib/store/store_file.c) through the sl_store_*
 * wrappers: objects land whole under their keys and nowhere else, keys
 * blocked by files, directories or symlinks are refused, crashed runs'
 * temp files are recovered, and injected I/O failures leave nothing.
 */
#define _GNU_SOURCE /* O_TMPFILE, RTLD_NEXT */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "fault.h"
#include "store/store.h"
#include "test.h"

#define ROOT "st"

static sl_store *
open_store(const char *location)
{
    sl_store *s = NULL;
    char why[600] = "";
    if (sl_store_open(location, NULL, &s, why, sizeof why) != SLUICE_OK)
        TEST_FAIL_("sl_store_open(%s): %s", location, why);
    ASSERT_NOT_NULL(s);
    return s;
}

static sl_object *
begin(sl_store *s, const char *key, void *cookie)
{
    sl_object *o = NULL;
    if (sl_store_begin(s, key, cookie, &o) != SLUICE_OK)
        TEST_FAIL_("sl_store_begin(%s): %s", key, s->errmsg);
    ASSERT_NOT_NULL(o);
    return o;
}

static void
write_all(sl_object *o, const void *data, size_t len)
{
    if (sl_object_write(o, data, len) != SLUICE_OK)
        TEST_FAIL_("sl_object_write(%s): %s", o->key, o->store->errmsg);
}

static void
submit(sl_store *s, sl_object *o)
{
    sl_object_meta meta = {.content_type = "image/jpeg",
                           .etag = "\"etag-1\"",
                           .source_url = "http://img.example/a.jpg",
                           .size = o->written};
    ASSERT_EQ(sl_store_submit(s, o, &meta), SLUICE_OK);
}

/*
 * Reap until `want` results have come back, waiting on the wake
 * descriptor: it must be readable whenever results wait, so a long wait
 * on it with nothing to show is a failure, not a reason to spin.
 */
static void
wait_results(sl_store *s, sl_store_result *out, size_t want)
{
    size_t got = 0;
    int fd = sl_store_wake_fd(s);
    ASSERT_GE(fd, 0);
    for (int turns = 0; got < want; turns++) {
        ASSERT_LT(turns, 100000);
        struct pollfd p = {fd, POLLIN, 0};
        int rc = poll(&p, 1, 30000);
        if (rc == 0)
            TEST_FAIL_("no wake-up in 30 s with %zu of %zu results", got, want);
        ASSERT_EQ(rc, 1);
        /* Reap in small bites: the store must wake us for the rest. */
        size_t room = want - got < 16 ? want - got : 16;
        got += sl_store_reap(s, out + got, room);
    }
    ASSERT_EQ(got, want);
}

/* Write `len` bytes under `key` and wait for the store's verdict. */
static sl_store_result
store_bytes(sl_store *s, const char *key, const void *data, size_t len)
{
    int cookie;
    sl_object *o = begin(s, key, &cookie);
    /* In pieces, as a body arrives. */
    const char *p = data;
    size_t done = 0;
    while (done < len) {
        size_t piece = len - done < 1000 ? len - done : 1000;
        write_all(o, p + done, piece);
        done += piece;
    }
    ASSERT_EQ(o->written, len);
    submit(s, o);
    sl_store_result r;
    wait_results(s, &r, 1);
    ASSERT(r.cookie == &cookie);
    ASSERT_EQ(sl_store_busy(s), 0);
    return r;
}

static sl_store_result
store_str(sl_store *s, const char *key, const char *text)
{
    return store_bytes(s, key, text, strlen(text));
}

static void
expect_stored(sl_store_result r)
{
    if (r.status != SL_STORED || r.err != SLUICE_OK)
        TEST_FAIL_("status %d, err %d: %s", (int)r.status, (int)r.err,
                   r.message);
}

/* The result carries the SHA-256 of exactly these bytes. */
static void
expect_hash(sl_store_result r, const void *data, size_t len)
{
    unsigned char d[32];
    unsigned n = 0;
    ASSERT_EQ(EVP_Digest(data, len, d, &n, EVP_sha256(), NULL), 1);
    char want[65];
    for (unsigned i = 0; i < n; i++)
        snprintf(want + 2 * i, 3, "%02x", d[i]);
    ASSERT_STR_EQ(r.sha256_hex, want);
}

static void
expect_file(const char *path, const void *data, size_t len)
{
    size_t got_len;
    char *got = test_read_file(path, &got_len);
    if (!got)
        TEST_FAIL_("%s: %s", path, strerror(errno));
    ASSERT_EQ(got_len, len);
    ASSERT(memcmp(got, data, len) == 0);
    free(got);
}

static bool
exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

static bool
is_dir(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* ---- Looking at what is on disk ---- */

typedef struct {
    char *paths[1024];
    size_t n;
} path_list;

static void
walk(const char *root, const char *rel, path_list *list, bool skip_tmp)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (!d)
        TEST_FAIL_("opendir %s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (skip_tmp && !*rel && !strcmp(e->d_name, ".sluice-tmp"))
            continue;
        char path[PATH_MAX], full[2 * PATH_MAX];
        snprintf(path, sizeof path, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", root, path);
        bool dir_entry = is_dir(full);
        ASSERT_LT(list->n, SL_ARRAY_LEN(list->paths));
        size_t size = strlen(path) + 2;
        list->paths[list->n] = malloc(size);
        snprintf(list->paths[list->n++], size, "%s%s", path,
                 dir_entry ? "/" : "");
        if (dir_entry)
            walk(root, path, list, skip_tmp);
    }
    closedir(d);
}

static int
by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Everything under `root`, sorted, one path a line, directories with a
 * trailing slash; the store's own .sluice-tmp is left out when
 * `skip_tmp`. The caller frees.
 */
static char *
listing_of(const char *root, bool skip_tmp)
{
    path_list list = {.n = 0};
    walk(root, "", &list, skip_tmp);
    qsort(list.paths, list.n, sizeof list.paths[0], by_name);
    size_t total = 1;
    for (size_t i = 0; i < list.n; i++)
        total += strlen(list.paths[i]) + 1;
    char *text = malloc(total);
    size_t used = 0;
    text[0] = '\0';
    for (size_t i = 0; i < list.n; i++) {
        used +=
            (size_t)snprintf(text + used, total - used, "%s\n", list.paths[i]);
        free(list.paths[i]);
    }
    return text;
}

/* The store's contents as a user sees them. */
static void
expect_listing(const char *root, const char *want)
{
    char *got = listing_of(root, true);
    ASSERT_STR_EQ(got, want);
    free(got);
}

/* Named temp files (not locks, not directories) anywhere in .sluice-tmp. */
static size_t
named_temp_files(const char *root)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/.sluice-tmp", root);
    char *all = listing_of(tmp, false);
    size_t n = 0;
    for (char *line = all; *line;) {
        char *end = strchr(line, '\n');
        size_t len = (size_t)(end - line);
        bool is_lock = len > 5 && !memcmp(end - 5, ".lock", 5);
        if (line[len - 1] != '/' && !is_lock)
            n++;
        line = end + 1;
    }
    free(all);
    return n;
}

/* Nameless temp files (O_TMPFILE) this process holds open in root's
 * .sluice-tmp: /proc shows each as "DIR/#INODE (deleted)". */
static size_t
nameless_temp_files(const char *root)
{
    char abs[PATH_MAX], prefix[PATH_MAX + 16], target[PATH_MAX];
    ASSERT_NOT_NULL(realpath(root, abs));
    snprintf(prefix, sizeof prefix, "%s/.sluice-tmp/", abs);
    DIR *d = opendir("/proc/self/fd");
    ASSERT_NOT_NULL(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        ssize_t len =
            readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        const char *tail = " (deleted)";
        size_t tail_len = strlen(tail);
        if (!strncmp(target, prefix, strlen(prefix)) && strstr(target, "/#") &&
            (size_t)len > tail_len && !strcmp(target + len - tail_len, tail))
            n++;
    }
    closedir(d);
    return n;
}

/* Temp files of the store's runs, named or not. */
static size_t
temp_files(const char *root)
{
    return named_temp_files(root) + nameless_temp_files(root);
}

/* Whether the file system under `root` makes nameless temp files. */
static bool
has_o_tmpfile(const char *root)
{
    int fd = open(root, O_TMPFILE | O_WRONLY, 0600);
    if (fd >= 0)
        close(fd);
    return fd >= 0;
}

/* After close, .sluice-tmp holds nothing of the run. */
static void
expect_tmp_empty(const char *root)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/.sluice-tmp", root);
    char *all = listing_of(tmp, false);
    ASSERT_STR_EQ(all, "");
    free(all);
}

/* ---- Opening ---- */

TEST(open_creates_the_directory)
{
    ASSERT(!exists(ROOT));
    sl_store *s = open_store(ROOT);
    ASSERT(is_dir(ROOT));
    ASSERT(is_dir(ROOT "/.sluice-tmp"));
    /* The run has its temp directory and its lock while it lives. */
    char *tmp = listing_of(ROOT "/.sluice-tmp", false);
    ASSERT_STR_CONTAINS(tmp, "run-");
    ASSERT_STR_CONTAINS(tmp, ".lock\n");
    free(tmp);
    expect_listing(ROOT, "");
    sl_store_close(s);
    expect_tmp_empty(ROOT);
    /* An existing directory is fine too. */
    s = open_store(ROOT);
    sl_store_close(s);
}

TEST(open_names_an_unwritable_location)
{
    /* Works as root too: nothing can be made under a regular file. */
    test_write_str("afile", "not a directory\n");
    sl_store *s = (sl_store *)1;
    char why[600] = "";
    ASSERT_NE(sl_store_open("afile/sub", NULL, &s, why, sizeof why), SLUICE_OK);
    ASSERT_NULL(s);
    ASSERT_STR_CONTAINS(why, "afile/sub");
    ASSERT_STR_CONTAINS(why, "Not a directory");
    ASSERT(!strchr(why, '\n'));
    /* A regular file where the store should be. */
    why[0] = '\0';
    ASSERT_NE(sl_store_open("afile", NULL, &s, why, sizeof why), SLUICE_OK);
    ASSERT_STR_CONTAINS(why, "afile");
    /* A missing parent is not made. */
    why[0] = '\0';
    ASSERT_NE(sl_store_open("no/such/dir", NULL, &s, why, sizeof why),
              SLUICE_OK);
    ASSERT_STR_CONTAINS(why, "no/such/dir");
    ASSERT(!exists("no"));
    expect_file("afile", "not a directory\n", 16);
}

TEST(an_unknown_scheme_is_refused)
{
    static const char *const refused[] = {"ftp://x", "gs://bucket/p",
                                          "file://st"};
    for (size_t i = 0; i < SL_ARRAY_LEN(refused); i++) {
        sl_store *s = (sl_store *)1;
        char why[600] = "";
        ASSERT_EQ(sl_store_open(refused[i], NULL, &s, why, sizeof why),
                  SLUICE_EINVAL);
        ASSERT_NULL(s);
        ASSERT_STR_CONTAINS(why, refused[i]);
        ASSERT_STR_CONTAINS(why, "scheme");
    }
    /* Nothing was made for them. */
    expect_listing(".", "");
    /* A path that only contains "://" further on is a directory. */
    ASSERT_EQ(mkdir("d", 0777), 0);
    ASSERT_EQ(mkdir("d/a:", 0777), 0);
    sl_store *s = open_store("d/a://b");
    ASSERT(is_dir("d/a:/b/.sluice-tmp"));
    sl_store_close(s);
}

TEST(an_empty_location_is_refused)
{
    sl_store *s = NULL;
    char why[600] = "";
    ASSERT_EQ(sl_store_open("", NULL, &s, why, sizeof why), SLUICE_EINVAL);
    ASSERT_NULL(s);
    ASSERT_STR_CONTAINS(why, "empty");
}

/* ---- Objects ---- */

TEST(an_object_lands_under_its_key_with_its_bytes)
{
    sl_store *s = open_store(ROOT);
    char body[5000];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (char)(i * 31 + 7); /* NULs and high bytes included */
    sl_store_result r = store_bytes(s, "a/b/c/photo.jpg", body, sizeof body);
    expect_stored(r);
    expect_hash(r, body, sizeof body);
    expect_file(ROOT "/a/b/c/photo.jpg", body, sizeof body);
    /* Nested directories were made, and nothing else appeared. */
    expect_listing(ROOT, "a/\na/b/\na/b/c/\na/b/c/photo.jpg\n");
    ASSERT_EQ(temp_files(ROOT), 0);
    sl_store_close(s);
    expect_tmp_empty(ROOT);
    expect_file(ROOT "/a/b/c/photo.jpg", body, sizeof body);
}

TEST(an_empty_object_and_a_replaced_one)
{
    sl_store *s = open_store(ROOT);
    sl_store_result r = store_bytes(s, "empty.bin", "", 0);
    expect_stored(r);
    expect_hash(r, "", 0); /* e3b0c442...: an empty body has a hash too */
    expect_file(ROOT "/empty.bin", "", 0);
    /* Storing a key again replaces the object whole. */
    expect_stored(store_str(s, "k/v.txt", "a first, longer version\n"));
    expect_stored(store_str(s, "k/v.txt", "second\n"));
    expect_file(ROOT "/k/v.txt", "second\n", 7);
    expect_listing(ROOT, "empty.bin\nk/\nk/v.txt\n");
    sl_store_close(s);
}

/* A body bigger than the store keeps in memory (64 KiB). */
#define BIG (70 * 1024)

static char *
big_body(size_t len, char seed)
{
    char *b = malloc(len);
    ASSERT_NOT_NULL(b);
    for (size_t i = 0; i < len; i++)
        b[i] = (char)(seed + i * 7 + i / 251);
    return b;
}

TEST(a_small_body_is_written_by_the_sync_thread)
{
    sl_store *s = open_store(ROOT);
    int cookie;
    sl_object *o = begin(s, "small/one.jpg", &cookie);
    write_all(o, "a small body", 12);
    /* Kept in memory: no file is created on the fetch loop's thread. */
    ASSERT_EQ(temp_files(ROOT), 0);
    submit(s, o);
    sl_store_result r;
    wait_results(s, &r, 1);
    expect_stored(r);
    expect_hash(r, "a small body", 12); /* hashed by the sync thread */
    expect_file(ROOT "/small/one.jpg", "a small body", 12);
    sl_store_close(s);
    expect_tmp_empty(ROOT);
}

TEST(a_body_that_outgrows_memory_goes_to_its_temp_file)
{
    sl_store *s = open_store(ROOT);
    char *body = big_body(BIG, 'a');
    int cookie;
    sl_object *o = begin(s, "big/one.bin", &cookie);
    write_all(o, body, 1000);
    ASSERT_EQ(temp_files(ROOT), 0);
    write_all(o, body + 1000, BIG - 1000);
    ASSERT_EQ(temp_files(ROOT), 1);
    submit(s, o);
    sl_store_result r;
    wait_results(s, &r, 1);
    expect_stored(r);
    /* The part kept in memory and the part written as it came. */
    expect_hash(r, body, BIG);
    expect_file(ROOT "/big/one.bin", body, BIG);
    /* Through store_bytes' 1000-byte pieces too. */
    r = store_bytes(s, "big/two.bin", body, BIG);
    expect_stored(r);
    expect_hash(r, body, BIG);
    expect_file(ROOT "/big/two.bin", body, BIG);
    free(body);
    sl_store_close(s);
    expect_tmp_empty(ROOT);
}

TEST(a_temp_file_has_no_name_where_the_file_system_allows)
{
    sl_store *s = open_store(ROOT);
    bool nameless = has_o_tmpfile(ROOT);
    char *body = big_body(BIG, 'n');
    int cookie;
    sl_object *o = begin(s, "n/one.bin", &cookie);
    write_all(o, body, BIG);
    ASSERT_EQ(nameless_temp_files(ROOT), nameless ? 1 : 0);
    ASSERT_EQ(named_temp_files(ROOT), nameless ? 0 : 1);
    submit(s, o);
    sl_store_result r;
    wait_results(s, &r, 1);
    expect_stored(r);
    expect_file(ROOT "/n/one.bin", body, BIG);
    ASSERT_EQ(temp_files(ROOT), 0);
    free(body);
    sl_store_close(s);
    expect_tmp_empty(ROOT);
}

TEST(memory_held_for_bodies_is_bounded)
{
    /* 100 bodies of 60 KiB at once: 6 MB, over the 4 MiB the store keeps
     * in memory, so the later ones go to temp files; all land intact. */
    enum { N = 100, LEN = 60 * 1024 };
    sl_store *s = open_store(ROOT);
    static int cookies[N];
    sl_object *objs[N];
    char *bodies[N];
    char key[64];
    for (int i = 0; i < N; i++) {
        bodies[i] = big_body(LEN, (char)i);
        snprintf(key, sizeof key, "m/%03d.bin", i);
        objs[i] = begin(s, key, &cookies[i]);
        write_all(objs[i], bodies[i], LEN);
    }
    size_t on_disk = temp_files(ROOT);
    ASSERT_GE(on_disk, (size_t)(N - (4 * 1024 * 1024) / LEN));
    ASSERT_LT(on_disk, (size_t)N);
    for (int i = 0; i < N; i++)
        submit(s, objs[i]);
    sl_store_result r[N];
    wait_results(s, r, N);
    for (int i = 0; i < N; i++) {
        expect_stored(r[i]);
        snprintf(key, sizeof key, ROOT "/m/%03d.bin", i);
        expect_file(key, bodies[i], LEN);
        free(bodies[i]);
    }
    sl_store_close(s);
    expect_tmp_empty(ROOT);
}

TEST(a_discarded_object_leaves_nothing)
{
    sl_store *s = open_store(ROOT);
    int cookie;
    /* In memory, then one on disk. */
    sl_object *o = begin(s, "gone/soon.jpg", &cookie);
    write_all(o, "partial body", 12);
    sl_object_discard(o);
    char *body = big_body(BIG, 'x');
    o = begin(s, "gone/later.jpg", &cookie);
    write_all(o, body, BIG);
    free(body);
    ASSERT_EQ(temp_files(ROOT), 1);
    sl_object_discard(o);
    ASSERT_EQ(temp_files(ROOT), 0);
    ASSERT_EQ(sl_store_busy(s), 0);
    sl_store_result r;
    ASSERT_EQ(sl_store_reap(s, &r, 1), 0);
    expect_listing(ROOT, "");
    /* The store goes on working. */
    expect_stored(store_str(s, "kept.jpg", "kept"));
    expect_listing(ROOT, "kept.jpg\n");
    sl_store_close(s);
    expect_tmp_empty(ROOT);
}

/* Submit `n` objects at once, each a line naming it: object i under
 * dNNN/objI.bin (N = i % 100) when `spread`, else all in batch/. */
static void
submit_many(sl_store *s, bool spread, int n, int *cookies)
{
    char key[64], body[64];
    sl_object **objs = calloc((size_t)n, sizeof *objs);
    for (int i = 0; i < n; i++) {
        if (spread)
            snprintf(key, sizeof key, "d%03d/obj%03d.bin", i % 100, i);
        else
            snprintf(key, sizeof key, "batch/%03d.bin", i);
        snprintf(body, sizeof body, "body of object %d\n", i);
        cookies[i] = i;
        objs[i] = begin(s, key, &cookies[i]);
        write_all(objs[i], body, strlen(body));
    }
    /* Small bodies: in memory until the sync thread writes them. */
    ASSERT_EQ(temp_files(s->location), 0);
    /* All at once, as fast as the loop goes. */
    for (int i = 0; i < n; i++)
        submit(s, objs[i]);
    free(objs);
}

TEST_TIMEOUT(many_objects_submitted_at_once_all_land, 300)
{
    enum { N = 200 };
    sl_store *s = open_store(ROOT);
    static int cookies[N];
    /* 100 directories: more than a batch's set of directories to fsync
     * at the end, so some are fsynced as they come. */
    submit_many(s, true, N, cookies);
    static sl_store_result results[N];
    wait_results(s, results, N);
    ASSERT_EQ(sl_store_busy(s), 0);
    static bool seen[N];
    for (int i = 0; i < N; i++) {
        expect_stored(results[i]);
        int idx = *(int *)results[i].cookie;
        ASSERT(idx >= 0 && idx < N);
        ASSERT(!seen[idx]);
        seen[idx] = true;
    }
    for (int i = 0; i < N; i++) {
        char path[128], body[64];
        snprintf(path, sizeof path, ROOT "/d%03d/obj%03d.bin", i % 100, i);
        snprintf(body, sizeof body, "body of object %d\n", i);
        expect_file(path, body, strlen(body));
    }
    /* 100 directories of two objects each, and nothing more. */
    char *all = listing_of(ROOT, true);
    size_t lines = 0;
    for (char *p = all; *p; p++)
        lines += *p == '\n';
    ASSERT_EQ(lines, 100 + N);
    free(all);
    ASSERT_EQ(temp_files(ROOT), 0);
    sl_store_close(s);
    expect_tmp_empty(ROOT);
}

#ifdef SLUICE_FAULT_INJECTION
TEST_TIMEOUT(a_large_batch_is_synced_at_once, 300)
{
    enum { N = 200 };
    sl_store *s = open_store(ROOT);
    static int cookies[N];
    sl_fault_set(SL_FAULT_FSYNC, 0); /* count the fsyncs from here */
    submit_many(s, false, N, cookies);
    static sl_store_result results[N];
    wait_results(s, results, N);
    for (int i = 0; i < N; i++)
        expect_stored(results[i]);
    /* One fsync per object would be N and more: the syncer took the
     * submitted objects in large batches, each with one syncfs. */
    ASSERT_LT(sl_fault_count(SL_FAULT_FSYNC), N / 2);
    expect_file(ROOT "/batch/199.bin", "body of object 199\n", 19);
    sl_store_close(s);
    expect_tmp_empty(ROOT);
}
#endif

/* ---- Keys that cannot be stored ---- */

static void
expect_rejected(sl_store_result r)
{
    if (r.status != SL_STORE_REJECTED)
        TEST_FAIL_("status %d, want SL_STORE_REJECTED: %s", (int)r.status,
                   r.message);
    ASSERT_NE(r.err, SLUICE_OK);
    ASSERT(r.message[0] != '\0');
}

TEST(a_key_under_a_regular_file_is_rejected)
{
    sl_store *s = open_store(ROOT);
    expect_stored(store_str(s, "blocker", "I am a file\n"));
    expect_rejected(store_str(s, "blocker/x.jpg", "body"));
    expect_rejected(store_str(s, "blocker/deeper/x.jpg", "body"));
    expect_file(ROOT "/blocker", "I am a file\n", 12);
    ASSERT_EQ(temp_files(ROOT), 0);
    expect_listing(ROOT, "blocker\n");
    sl_store_close(s);
    expect_tmp_empty(ROOT);
}

TEST(a_key_that_is_a_directory_is_rejected)
{
    sl_store *s = open_store(ROOT);
    ASSERT_EQ(mkdir(ROOT "/dir", 0777), 0);
    expect_rejected(store_str(s, "dir", "body"));
    expect_stored(store_str(s, "full/inside.jpg", "x"));
    expect_rejected(store_str(s, "full", "body"));
    ASSERT(is_dir(ROOT "/dir"));
    expect_listing(ROOT, "dir/\nfull/\nfull/inside.jpg\n");
    ASSERT_EQ(temp_files(ROOT), 0);
    sl_store_close(s);
    expect_tmp_empty(ROOT);
}

TEST(a_key_through_a_planted_symlink_is_rejected)
{
    char cwd[PATH_MAX], outside[PATH_MAX + 16];
    ASSERT_NOT_NULL(getcwd(cwd, sizeof cwd));
    snprintf(outside, sizeof outside, "%s/outside", cwd);
    ASSERT_EQ(mkdir("outside", 0777), 0);
    sl_store *s = open_store(ROOT);
    /* A link at the top, and one further down. */
    ASSERT_EQ(symlink(outside, ROOT "/link"), 0);
    ASSERT_EQ(mkdir(ROOT "/real", 0777), 0);
    ASSERT_EQ(symlink(outside, ROOT "/real/link"), 0);
    ASSERT_EQ(symlink("/tmp", ROOT "/tmplink"), 0);
    expect_rejected(store_str(s, "link/x.jpg", "escaped"));
    expect_rejected(store_str(s, "link/sub/x.jpg", "escaped"));
    expect_rejected(store_str(s, "real/link/x.jpg", "escaped"));
    expect_rejected(store_str(s, "tmplink/sluice-escape-test.jpg", "escaped"));
    /* Nothing was written where the links point. */
    expect_listing("outside", "");
    ASSERT(!exists("/tmp/sluice-escape-test.jpg"));
    ASSERT_EQ(temp_files(ROOT), 0);
    expect_listing(ROOT, "link\nreal/\nreal/link\ntmplink\n");
    sl_store_close(s);
    expect_tmp_empty(ROOT);
}

/* ---- Recovery ---- */

/* Lay out what a run killed with -9 leaves behind. */
static void
plant_crashed_run(const char *root)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/.sluice-tmp", root);
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        TEST_FAIL_("mkdir %s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/.sluice-tmp/run-999-abc", root);
    ASSERT_EQ(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/.sluice-tmp/run-999-abc/1", root);
    test_write_str(path, "half a body");
    snprintf(path, sizeof path, "%s/.sluice-tmp/run-999-abc/sub", root);
    ASSERT_EQ(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/.sluice-tmp/run-999-abc/sub/2", root);
    test_write_str(path, "another half");
    snprintf(path, sizeof path, "%s/.sluice-tmp/run-999-abc.lock", root);
    test_write_str(path, "");
}

TEST(recover_removes_a_crashed_runs_temp_files)
{
    ASSERT_EQ(mkdir(ROOT, 0777), 0);
    plant_crashed_run(ROOT);
    sl_store *s = open_store(ROOT);
    ASSERT_EQ(temp_files(ROOT), 2);
    ASSERT_EQ(sl_store_recover(s), SLUICE_OK);
    ASSERT(!exists(ROOT "/.sluice-tmp/run-999-abc"));
    ASSERT(!exists(ROOT "/.sluice-tmp/run-999-abc.lock"));
    ASSERT_EQ(temp_files(ROOT), 0);
    /* Our own run is untouched and goes on working. */
    expect_stored(store_str(s, "after.jpg", "after recovery"));
    expect_file(ROOT "/after.jpg", "after recovery", 14);
    sl_store_close(s);
    expect_tmp_empty(ROOT);
}

/* The name of this store's run, from its lock file (the only one). */
static void
own_run_name(const char *root, char *name, size_t size)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/.sluice-tmp", root);
    DIR *d = opendir(tmp);
    ASSERT_NOT_NULL(d);
    struct dirent *e;
    name[0] = '\0';
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 5 && !strcmp(e->d_name + len - 5, ".lock")) {
            ASSERT_EQ(name[0], '\0');
            snprintf(name, size, "%.*s", (int)(len - 5), e->d_name);
        }
    }
    closedir(d);
    ASSERT_GT(strlen(name), 5);
}

TEST(recover_tells_runs_apart_by_their_whole_name)
{
    sl_store *s = open_store(ROOT);
    char own[128], dead[256], path[PATH_MAX];
    own_run_name(ROOT, own, sizeof own);
    /* A crashed run whose name is the start of ours: run-PID-ID with
     * the same pid (pid 1 in every container) and a shorter ID. */
    snprintf(dead, sizeof dead, ROOT "/.sluice-tmp/%.*s", (int)strlen(own) - 1,
             own);
    ASSERT_EQ(mkdir(dead, 0700), 0);
    snprintf(path, sizeof path, "%s/1", dead);
    test_write_str(path, "left behind");
    snprintf(path, sizeof path, "%s.lock", dead);
    test_write_str(path, "");
    ASSERT_EQ(temp_files(ROOT), 1);
    ASSERT_EQ(sl_store_recover(s), SLUICE_OK);
    ASSERT(!exists(dead));
    ASSERT(!exists(path));
    ASSERT_EQ(temp_files(ROOT), 0);
    expect_stored(store_str(s, "still.jpg", "working"));
    sl_store_close(s);
    expect_tmp_empty(ROOT);
}

TEST(recover_never_removes_a_live_run)
{
    ASSERT_EQ(mkdir(ROOT, 0777), 0);
    plant_crashed_run(ROOT);
    /* Two runs on the same directory: each holds its lock. */
    sl_store *live = open_store(ROOT);
    int cookie;
    sl_object *o = begin(live, "live.jpg", &cookie);
    char *body = big_body(BIG, 'l');
    write_all(o, body, BIG); /* big enough to be in a temp file */
    /* Run names are made of the pid and the clock in ms: let the clock
     * move on, as it would between two processes' runs. */
    usleep(5000);
    sl_store *other = open_store(ROOT);
    ASSERT_EQ(temp_files(ROOT), 3);
    ASSERT_EQ(sl_store_recover(other), SLUICE_OK);
    /* The crashed run is gone, the live one's file is still there. */
    ASSERT(!exists(ROOT "/.sluice-tmp/run-999-abc"));
    ASSERT_EQ(temp_files(ROOT), 1);
    submit(live, o);
    sl_store_result r;
    wait_results(live, &r, 1);
    expect_stored(r);
    expect_file(ROOT "/live.jpg", body, BIG);
    free(body);
    /* And the live one's recovery does not remove the other's run. */
    sl_object *o2 = begin(other, "other.jpg", &cookie);
    write_all(o2, "other", 5);
    ASSERT_EQ(sl_store_recover(live), SLUICE_OK);
    submit(other, o2);
    wait_results(other, &r, 1);
    expect_stored(r);
    expect_file(ROOT "/other.jpg", "other", 5);
    sl_store_close(other);
    sl_store_close(live);
    expect_tmp_empty(ROOT);
}

/* ---- Injected failures ---- */

#ifdef SLUICE_FAULT_INJECTION

TEST(a_failed_write_is_reported)
{
    sl_store *s = open_store(ROOT);
    int cookie;
    sl_object *o = begin(s, "w.jpg", &cookie);
    write_all(o, "first piece ", 12);
    sl_fault_set(SL_FAULT_WRITE, 1);
    ASSERT_EQ(sl_object_write(o, "second piece", 12), SLUICE_EIO);
    sl_fault_set(SL_FAULT_WRITE, 0);
    ASSERT_STR_CONTAINS(s->errmsg, ROOT);
    ASSERT_STR_CONTAINS(s->errmsg, "write");
    /* What failed was not counted as written. */
    ASSERT_EQ(o->written, 12);
    sl_object_discard(o);
    ASSERT_EQ(temp_files(ROOT), 0);
    expect_listing(ROOT, "");
    sl_store_close(s);
    expect_tmp_empty(ROOT);
}

/* The object must fail, be invisible, and leave no temp file. */
static void
expect_failed_and_invisible(sl_store *s, sl_store_result r, const char *key,
                            const char *what)
{
    if (r.status != SL_STORE_FAILED)
        TEST_FAIL_("status %d, want SL_STORE_FAILED: %s", (int)r.status,
                   r.message);
    ASSERT_NE(r.err, SLUICE_OK);
    ASSERT_STR_CONTAINS(r.message, what);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", s->location, key);
    ASSERT(!exists(path));
    ASSERT_EQ(temp_files(s->location), 0);
}

TEST(a_failed_write_of_a_small_body_is_reported_by_reap)
{
    sl_store *s = open_store(ROOT);
    int cookie;
    sl_object *o = begin(s, "w/small.jpg", &cookie);
    write_all(o, "small", 5);
    /* The next write is the sync thread's, of the whole body. */
    sl_fault_set(SL_FAULT_WRITE, 1);
    submit(s, o);
    sl_store_result r;
    wait_results(s, &r, 1);
    sl_fault_set(SL_FAULT_WRITE, 0);
    expect_failed_and_invisible(s, r, "w/small.jpg", "write");
    expect_stored(store_str(s, "w/next.jpg", "fine"));
    sl_store_close(s);
    expect_tmp_empty(ROOT);
}

TEST(a_failed_fsync_leaves_the_key_empty)
{
    sl_store *s = open_store(ROOT);
    sl_fault_set(SL_FAULT_FSYNC, 1);
    sl_store_result r = store_str(s, "f/synced.jpg", "never durable");
    sl_fault_set(SL_FAULT_FSYNC, 0);
    expect_failed_and_invisible(s, r, "f/synced.jpg", "fsync");
    sl_store_close(s);
    expect_tmp_empty(ROOT);
    ASSERT(!exists(ROOT "/f/synced.jpg"));
}

/* Submit N small objects under p<attempt>/, the second sync failing;
 * returns how many failed (each with "fsync"); whatever is at a key is
 * whole either way. */
static size_t
batch_with_failed_second_sync(sl_store *s, int attempt)
{
    enum { N = 40 };
    static int cookies[N];
    sl_object *objs[N];
    char key[PATH_MAX], body[64];
    for (int i = 0; i < N; i++) {
        cookies[i] = i;
        snprintf(key, sizeof key, "p%d/%02d.bin", attempt, i);
        snprintf(body, sizeof body, "body %d\n", i);
        objs[i] = begin(s, key, &cookies[i]);
        write_all(objs[i], body, strlen(body));
    }
    sl_fault_set(SL_FAULT_FSYNC, 2);
    for (int i = 0; i < N; i++)
        submit(s, objs[i]);
    static sl_store_result r[N];
    wait_results(s, r, N);
    sl_fault_set(SL_FAULT_FSYNC, 0);
    size_t failed = 0;
    for (int i = 0; i < N; i++) {
        if (r[i].status == SL_STORE_FAILED) {
            ASSERT_STR_CONTAINS(r[i].message, "fsync");
            failed++;
        } else {
            expect_stored(r[i]);
        }
        int n = *(int *)r[i].cookie;
        snprintf(key, sizeof key, "%s/p%d/%02d.bin", s->location, attempt, n);
        snprintf(body, sizeof body, "body %d\n", n);
        if (exists(key))
            expect_file(key, body, strlen(body));
    }
    return failed;
}

TEST_TIMEOUT(a_batch_is_not_stored_before_the_sync_after_its_renames, 300)
{
    /* A batch of 8 or more is renamed after one syncfs (its data) and
     * reported only after the next (its renames). With that second one
     * failing, the whole batch fails, though each object is whole on
     * disk. The syncer may take a first batch too small for a syncfs
     * (then only it fails, at its directory's fsync): try again. */
    sl_store *s = open_store(ROOT);
    size_t failed = 0;
    for (int attempt = 0; attempt < 10 && failed < 8; attempt++)
        failed = batch_with_failed_second_sync(s, attempt);
    ASSERT_GE(failed, 8);
    sl_store_close(s);
    expect_tmp_empty(ROOT);
}

/*
 * The store's syncfs calls come here (the library is linked into this
 * executable, whose symbol wins over libc's): counted as they end, and
 * the one numbered hold_at held until the test lets it go.
 */
static pthread_mutex_t syncfs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t syncfs_moved = PTHREAD_COND_INITIALIZER;
static int syncfs_begun, syncfs_ended, syncfs_hold_at;
static bool syncfs_holding, syncfs_released;

int
syncfs(int fd)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "syncfs");
    pthread_mutex_lock(&syncfs_lock);
    if (++syncfs_begun == syncfs_hold_at) {
        syncfs_holding = true;
        pthread_cond_broadcast(&syncfs_moved);
        while (!syncfs_released)
            pthread_cond_wait(&syncfs_moved, &syncfs_lock);
    }
    pthread_mutex_unlock(&syncfs_lock);
    int rc = real(fd);
    pthread_mutex_lock(&syncfs_lock);
    syncfs_ended++;
    pthread_mutex_unlock(&syncfs_lock);
    return rc;
}

static int
syncfs_ended_now(void)
{
    pthread_mutex_lock(&syncfs_lock);
    int n = syncfs_ended;
    pthread_mutex_unlock(&syncfs_lock);
    return n;
}

/* Wait (30 s at most) until the syncfs to hold is held. */
static void
wait_syncfs_held(void)
{
    pthread_mutex_lock(&syncfs_lock);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    while (!syncfs_holding)
        ASSERT_EQ(pthread_cond_timedwait(&syncfs_moved, &syncfs_lock, &until),
                  0);
    pthread_mutex_unlock(&syncfs_lock);
}

static void
release_syncfs(void)
{
    pthread_mutex_lock(&syncfs_lock);
    syncfs_released = true;
    pthread_cond_broadcast(&syncfs_moved);
    pthread_mutex_unlock(&syncfs_lock);
}

/*
 * While the held syncfs lasts, wait (30 s at most) until each of the n
 * objects submitted so far is written: a temp file, or already reported.
 * (A first batch too small for a syncfs is fsynced and reported before
 * the held syncfs begins; nothing else can be reported while it is
 * held.) The early results go to early[], their count to *n_early.
 */
static void
wait_all_written(sl_store *s, size_t n, sl_store_result *early,
                 size_t *n_early)
{
    *n_early = 0;
    for (int waited = 0;; waited++) {
        *n_early += sl_store_reap(s, early + *n_early, n - *n_early);
        size_t temp = temp_files(ROOT);
        if (temp + *n_early == n)
            return;
        if (waited == 3000)
            TEST_FAIL_("after 30 s, %zu of %zu objects written (%zu temp "
                       "files, %zu reported)",
                       temp + *n_early, n, temp, *n_early);
        usleep(10 * 1000);
    }
}

/* Submit n small objects under dir/, cookies[i] = i: all begun and
 * written first, then handed over at once, so that the sync thread
 * finds them together. */
static void
submit_small(sl_store *s, const char *dir, int *cookies, int n)
{
    char key[64];
    sl_object *o[64];
    ASSERT_LE(n, 64);
    for (int i = 0; i < n; i++) {
        cookies[i] = i;
        snprintf(key, sizeof key, "%s/%02d.bin", dir, i);
        o[i] = begin(s, key, &cookies[i]);
        write_all(o[i], key, strlen(key));
    }
    for (int i = 0; i < n; i++)
        submit(s, o[i]);
}

TEST_TIMEOUT(objects_written_during_a_syncfs_wait_for_two_more, 300)
{
    /* Batch A starts a syncfs, held. Batch B, submitted meanwhile, is
     * written while it is held (the fetch thread need not write it),
     * but that syncfs began before B's data existed: B is reported
     * only after a second syncfs (its data) and a third (its links),
     * and A after the first and the second. */
    enum { N = 16 };
    static int a_cookies[N], b_cookies[N];
    sl_store *s = open_store(ROOT);
    syncfs_hold_at = syncfs_begun + 1;
    int before = syncfs_ended_now();
    submit_small(s, "a", a_cookies, N);
    wait_syncfs_held();

    submit_small(s, "b", b_cookies, N);
    sl_store_result early[2 * N];
    size_t n_early;
    wait_all_written(s, 2 * N, early, &n_early);
    release_syncfs();
    /* Only A can have come back early: any of it taken in a batch too
     * small for a syncfs was fsynced instead. */
    for (size_t i = 0; i < n_early; i++) {
        expect_stored(early[i]);
        int *c = early[i].cookie;
        ASSERT(c >= a_cookies && c < a_cookies + N);
    }

    int fd = sl_store_wake_fd(s);
    for (size_t got = n_early; got < 2 * N;) {
        struct pollfd p = {fd, POLLIN, 0};
        ASSERT_EQ(poll(&p, 1, 30000), 1);
        sl_store_result r[2 * N];
        size_t n = sl_store_reap(s, r, 2 * N);
        int synced = syncfs_ended_now() - before;
        for (size_t i = 0; i < n; i++) {
            expect_stored(r[i]);
            int *c = r[i].cookie;
            bool in_b = c >= b_cookies && c < b_cookies + N;
            ASSERT_GE(synced, in_b ? 3 : 2);
        }
        got += n;
    }
    expect_file(ROOT "/b/15.bin", "b/15.bin", 8);
    sl_store_close(s);
    expect_tmp_empty(ROOT);
}

TEST_TIMEOUT(a_few_objects_arriving_during_a_syncfs_are_written_meanwhile,
             300)
{
    /* The sync thread, waiting out a syncfs, wakes for a handful of new
     * bodies only; fewer than that, arriving once it sleeps, must still
     * be written while the syncfs lasts, not wait in memory for its end
     * (which, on a slow disk, can be seconds). */
    enum { N = 16, FEW = 3 };
    static int a_cookies[N], c_cookies[FEW];
    sl_store *s = open_store(ROOT);
    syncfs_hold_at = syncfs_begun + 1;
    submit_small(s, "a", a_cookies, N);
    wait_syncfs_held();
    usleep(50 * 1000); /* the sync thread is asleep in the syncfs's wait */

    submit_small(s, "c", c_cookies, FEW);
    sl_store_result r[N + FEW];
    size_t got;
    wait_all_written(s, N + FEW, r, &got);
    release_syncfs();

    wait_results(s, r + got, N + FEW - got);
    for (size_t i = 0; i < N + FEW; i++)
        expect_stored(r[i]);
    expect_file(ROOT "/c/02.bin", "c/02.bin", 8);
    sl_store_close(s);
    expect_tmp_empty(ROOT);
}

TEST(a_failed_rename_leaves_the_key_empty)
{
    sl_store *s = open_store(ROOT);
    sl_fault_set(SL_FAULT_RENAME, 1);
    sl_store_result r = store_str(s, "r/renamed.jpg", "never visible");
    sl_fault_set(SL_FAULT_RENAME, 0);
    expect_failed_and_invisible(s, r, "r/renamed.jpg", "rename");
    /* The rename fault was the only one: the next object lands. */
    expect_stored(store_str(s, "r/next.jpg", "fine"));
    expect_file(ROOT "/r/next.jpg", "fine", 4);
    sl_store_close(s);
    expect_tmp_empty(ROOT);
    ASSERT(!exists(ROOT "/r/renamed.jpg"));
}

/* A file system without O_TMPFILE: temp files have names, and every
 * path (in memory, on disk, replacing a key, discarding) still works. */
TEST(without_o_tmpfile_temp_files_have_names)
{
    sl_fault_set(SL_FAULT_TMPFILE, 1);
    sl_store *s = open_store(ROOT);
    sl_fault_set(SL_FAULT_TMPFILE, 0);
    char *body = big_body(BIG, 'm');
    int cookie;
    sl_object *o = begin(s, "m/big.bin", &cookie);
    write_all(o, body, BIG);
    ASSERT_EQ(named_temp_files(ROOT), 1);
    ASSERT_EQ(nameless_temp_files(ROOT), 0);
    submit(s, o);
    sl_store_result r;
    wait_results(s, &r, 1);
    expect_stored(r);
    expect_file(ROOT "/m/big.bin", body, BIG);
    expect_stored(store_str(s, "m/small.txt", "first\n"));
    expect_stored(store_str(s, "m/small.txt", "second\n"));
    expect_file(ROOT "/m/small.txt", "second\n", 7);
    o = begin(s, "m/discarded.bin", &cookie);
    write_all(o, body, BIG);
    ASSERT_EQ(named_temp_files(ROOT), 1);
    sl_object_discard(o);
    ASSERT_EQ(temp_files(ROOT), 0);
    expect_listing(ROOT, "m/\nm/big.bin\nm/small.txt\n");
    free(body);
    sl_store_close(s);
    expect_tmp_empty(ROOT);
}

#endif /* SLUICE_FAULT_INJECTION */
