/*
 * A program written against an installed sluice, as a user of the
 * library would write it: only <sluice/sluice.h>, built with the flags
 * pkg-config gives (tests/cli/install.sh builds it static and shared).
 * It ingests a small feed through the public API and checks the counts.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sluice/sluice.h>

static const char feed[] = "https://img.example/a.jpg\n"
                           "https://img.example/b.png\n"
                           "ftp://img.example/c.gif\n";

static void
on_reject(void *ctx, const char *file, uint64_t line, const char *reason)
{
    (void)ctx;
    printf("rejected %s:%llu: %s\n", file, (unsigned long long)line, reason);
}

int
main(int argc, char **argv)
{
    sluice_queue *q = NULL;
    char why[512];
    int fds[2];

    if (argc != 2) {
        fprintf(stderr, "usage: use_sluice DATABASE\n");
        return 2;
    }
    printf("sluice %s\n", sluice_version());
    sluice_err err = sluice_queue_open(argv[1], NULL, &q, why, sizeof why);
    if (err != SLUICE_OK) {
        fprintf(stderr, "open: %s: %s\n", sluice_errname(err), why);
        return 1;
    }
    /* The feed through a pipe: it fits in the pipe's buffer. */
    if (pipe(fds) != 0 ||
        write(fds[1], feed, strlen(feed)) != (ssize_t)strlen(feed)) {
        perror("pipe");
        return 1;
    }
    close(fds[1]);
    sluice_ingest_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.format = SLUICE_FORMAT_LINES;
    opts.on_reject = on_reject;
    sluice_ingest_stats st = {0};
    err = sluice_ingest_fd(q, fds[0], "feed", &opts, &st);
    close(fds[0]);
    if (err != SLUICE_OK) {
        fprintf(stderr, "ingest: %s\n", sluice_queue_errmsg(q));
        return 1;
    }
    sluice_counts n;
    err = sluice_queue_counts(q, &n);
    sluice_queue_close(q);
    if (err != SLUICE_OK) {
        fprintf(stderr, "counts: %s\n", sluice_strerror(err));
        return 1;
    }
    printf("added %llu, rejected %llu, pending %llu, total %llu\n",
           (unsigned long long)st.added, (unsigned long long)st.rejected,
           (unsigned long long)n.pending, (unsigned long long)n.total);
    if (st.added != 2 || st.rejected != 1 || n.pending != 2 || n.total != 2) {
        fprintf(stderr, "unexpected counts\n");
        return 1;
    }
    return 0;
}
