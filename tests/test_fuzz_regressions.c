/*
 * Replays fuzz inputs in the normal build: linked with one harness from
 * fuzz/ (its LLVMFuzzerTestOneInput), it runs every file of the given
 * directories through it, so the seed corpus and each crash the fuzzers
 * found (tests/fuzz-regressions/NAME/) run under gcc, ASan and UBSan.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

/* Read a whole file; NULL (errno set) on failure. The caller frees. */
static uint8_t *
read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    size_t len = 0, cap = 0;

    if (!f)
        return NULL;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *grown = realloc(data, cap);
            if (!grown) {
                free(data);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            data = grown;
        }
        size_t n = fread(data + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(data);
        errno = EIO;
        return NULL;
    }
    *size = len;
    return data;
}

/* Run every regular file of `dir`, in name order; the number run, or -1
 * when the directory cannot be read. */
static int
replay_dir(const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    int ran = 0;

    if (n < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        free(names[i]);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        size_t size;
        uint8_t *data = read_file(path, &size);
        if (!data) {
            fprintf(stderr, "%s: %s\n", path, strerror(errno));
            exit(1);
        }
        /* Named first: a failing input aborts the process. */
        fprintf(stderr, "replay %s (%zu bytes)\n", path, size);
        LLVMFuzzerTestOneInput(data, size);
        free(data);
        ran++;
    }
    free(names);
    return ran;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr,
                "usage: %s SEED-DIR [REGRESSION-DIR...]\n"
                "  (the seed directory must hold inputs; the "
                "others may be missing)\n",
                argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        int ran = replay_dir(argv[i]);
        if (i == 1 && ran <= 0) {
            fprintf(stderr, "%s: %s\n", argv[i],
                    ran < 0 ? strerror(errno) : "no inputs");
            return 1;
        }
        if (ran < 0 && errno != ENOENT) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        printf("%s: %d inputs replayed\n", argv[i], ran < 0 ? 0 : ran);
    }
    return 0;
}
