/*
 * origin_verify: regenerate or check a test-origin object from body.h, so
 * shell tests can compare what a client stored with what the origin sent,
 * byte for byte, without the server.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "body.h"

#define CHUNK 65536

/* Set by `tree`, which counts bad objects instead of describing them. */
static int quiet;

static void
usage(void)
{
    fputs(
        "usage: origin_verify size SPEC N      print the body size of n\n"
        "       origin_verify body N SIZE      write the body to stdout\n"
        "       origin_verify check N SIZE FILE\n"
        "                                      exit 0 if FILE is that body,\n"
        "                                      1 (and say where) if not\n"
        "       origin_verify store SPEC DIR   check every DIR/sku-N.jpg\n"
        "                                      against object N; print the\n"
        "                                      count; 1 at the first bad one\n"
        "       origin_verify tree SPEC DIR    check every file under DIR\n"
        "                                      named [sku-]N.jpg[anything];\n"
        "                                      print \"GOOD BAD\" counts\n",
        stderr);
}

static int
parse_number(const char *s, uint64_t *value)
{
    uint64_t v = 0;

    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        unsigned digit = (unsigned)(unsigned char)*s - '0';

        if (digit > 9 || v > (UINT64_MAX - digit) / 10)
            return -1;
        v = v * 10 + digit;
    }
    *value = v;
    return 0;
}

/* Write object n's first size bytes to stdout. */
static int
write_body(uint64_t n, uint64_t size)
{
    static unsigned char chunk[CHUNK];

    for (uint64_t off = 0; off < size;) {
        size_t len = size - off < CHUNK ? (size_t)(size - off) : CHUNK;

        sl_origin_body_fill(n, off, chunk, len);
        if (fwrite(chunk, 1, len, stdout) != len) {
            perror("origin_verify: stdout");
            return 2;
        }
        off += len;
    }
    return fflush(stdout) == 0 ? 0 : 2;
}

/* Compare path with object n of size bytes; report the first difference. */
static int
check_file(uint64_t n, uint64_t size, const char *path)
{
    static unsigned char want[CHUNK], got[CHUNK];
    FILE *f = fopen(path, "rb");
    uint64_t off = 0;

    if (f == NULL) {
        if (!quiet)
            fprintf(stderr, "origin_verify: %s: %s\n", path, strerror(errno));
        return 2;
    }
    for (;;) {
        size_t len = fread(got, 1, CHUNK, f);

        if (len == 0)
            break;
        if (off + len > size) {
            if (!quiet)
                fprintf(stderr,
                        "origin_verify: %s: longer than %" PRIu64
                        " bytes (object %" PRIu64 ")\n",
                        path, size, n);
            fclose(f);
            return 1;
        }
        sl_origin_body_fill(n, off, want, len);
        for (size_t i = 0; i < len; i++) {
            if (got[i] != want[i]) {
                if (!quiet)
                    fprintf(stderr,
                            "origin_verify: %s: byte %" PRIu64
                            " is 0x%02x, object %" PRIu64 " has 0x%02x\n",
                            path, off + i, got[i], n, want[i]);
                fclose(f);
                return 1;
            }
        }
        off += len;
    }
    fclose(f);
    if (off != size) {
        if (!quiet)
            fprintf(stderr,
                    "origin_verify: %s: %" PRIu64 " bytes, object %" PRIu64
                    " has %" PRIu64 "\n",
                    path, off, n, size);
        return 1;
    }
    return 0;
}

/* Check every top-level DIR/sku-N.jpg (the keys gen_feed's records get)
 * against object N, its size given by `spec`. */
static int
check_store(const struct sl_origin_size *spec, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    uint64_t checked = 0;
    char path[4096];

    if (d == NULL) {
        fprintf(stderr, "origin_verify: %s: %s\n", dir, strerror(errno));
        return 2;
    }
    while ((e = readdir(d)) != NULL) {
        char number[32];
        uint64_t n;
        size_t len = strlen(e->d_name);

        if (len < 9 || len - 8 >= sizeof number ||
            strncmp(e->d_name, "sku-", 4) != 0 ||
            strcmp(e->d_name + len - 4, ".jpg") != 0)
            continue;
        memcpy(number, e->d_name + 4, len - 8);
        number[len - 8] = '\0';
        if (parse_number(number, &n) != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int rc = check_file(n, sl_origin_body_size(spec, n), path);
        if (rc != 0) {
            closedir(d);
            return rc;
        }
        checked++;
    }
    closedir(d);
    printf("%" PRIu64 "\n", checked);
    return 0;
}

/* The object number in a file name "[sku-]N.jpg...", or -1. */
static int
number_in_name(const char *name, uint64_t *n)
{
    char digits[32];
    size_t len = 0;
    if (strncmp(name, "sku-", 4) == 0)
        name += 4;
    while (name[len] >= '0' && name[len] <= '9' && len < sizeof digits - 1)
        len++;
    if (len == 0 || strncmp(name + len, ".jpg", 4) != 0)
        return -1;
    memcpy(digits, name, len);
    digits[len] = '\0';
    return parse_number(digits, n);
}

/* Walk DIR (not into dot-directories) counting good and bad objects. */
static int
check_tree(const struct sl_origin_size *spec, const char *dir, uint64_t *good,
           uint64_t *bad)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];

    if (d == NULL) {
        fprintf(stderr, "origin_verify: %s: %s\n", dir, strerror(errno));
        return 2;
    }
    while ((e = readdir(d)) != NULL) {
        uint64_t n;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_type == DT_DIR) {
            if (check_tree(spec, path, good, bad) == 2) {
                closedir(d);
                return 2;
            }
            continue;
        }
        if (number_in_name(e->d_name, &n) != 0)
            continue;
        if (check_file(n, sl_origin_body_size(spec, n), path) == 0)
            (*good)++;
        else
            (*bad)++;
    }
    closedir(d);
    return 0;
}

int
main(int argc, char **argv)
{
    uint64_t n, size;

    if (argc == 4 && strcmp(argv[1], "size") == 0) {
        struct sl_origin_size spec;

        if (sl_origin_size_parse(argv[2], &spec) != 0 ||
            parse_number(argv[3], &n) != 0) {
            usage();
            return 2;
        }
        printf("%" PRIu64 "\n", sl_origin_body_size(&spec, n));
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "body") == 0 &&
        parse_number(argv[2], &n) == 0 && parse_number(argv[3], &size) == 0)
        return write_body(n, size);
    if (argc == 4 && strcmp(argv[1], "tree") == 0) {
        struct sl_origin_size spec;
        uint64_t good = 0, bad = 0;

        if (sl_origin_size_parse(argv[2], &spec) != 0) {
            usage();
            return 2;
        }
        quiet = 1;
        int rc = check_tree(&spec, argv[3], &good, &bad);
        printf("%" PRIu64 " %" PRIu64 "\n", good, bad);
        return rc;
    }
    if (argc == 4 && strcmp(argv[1], "store") == 0) {
        struct sl_origin_size spec;

        if (sl_origin_size_parse(argv[2], &spec) != 0) {
            usage();
            return 2;
        }
        return check_store(&spec, argv[3]);
    }
    if (argc == 5 && strcmp(argv[1], "check") == 0 &&
        parse_number(argv[2], &n) == 0 && parse_number(argv[3], &size) == 0)
        return check_file(n, size, argv[4]);
    usage();
    return 2;
}
