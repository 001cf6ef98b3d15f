/*
 * What the commands that read feeds (ingest, publish) share: opening
 * their inputs, the progress line, and the lines printed while it may be
 * on the screen (a rejected record, a warning or a notice clears it
 * first).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int
cli_open_feed(const char *path, sluice_ingest_input *in)
{
    struct stat sb;
    if (strcmp(path, "-") == 0) {
        in->name = "<stdin>";
        in->fd = STDIN_FILENO;
        return 0;
    }
    in->name = path;
    in->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (in->fd < 0) {
        cli_error("%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(in->fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        cli_error("%s: is a directory", path);
        close(in->fd);
        in->fd = -1;
        return -1;
    }
    return 0;
}

void
cli_progress_start(cli_progress *p, bool quiet)
{
    *p = (cli_progress){.show = !quiet && isatty(STDERR_FILENO)};
    clock_gettime(CLOCK_MONOTONIC, &p->start);
}

void
cli_progress_clear(cli_progress *p)
{
    if (p->drawn) {
        fputs("\r\033[K", stderr);
        p->drawn = false;
    }
}

void
cli_progress_draw(cli_progress *p, const char *verb, uint64_t n)
{
    if (!p->show)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double t = (double)(now.tv_sec - p->start.tv_sec) +
               (double)(now.tv_nsec - p->start.tv_nsec) / 1e9;
    if (t - p->last_draw < 0.25)
        return;
    p->last_draw = t;
    char count[32], rate[32];
    cli_group_digits(count, sizeof count, n);
    cli_group_digits(rate, sizeof rate,
                     (unsigned long long)((double)n / (t > 0 ? t : 1)));
    fprintf(stderr, "\r\033[K%s %s: %s records, %s/s", verb,
            p->file ? p->file : "", count, rate);
    p->drawn = true;
}

void
cli_progress_reject(void *ctx, const char *file, uint64_t line,
                    const char *reason)
{
    cli_progress_clear(ctx);
    if (line == 0) /* a stream's record: `file` says where */
        fprintf(stderr, "%s: %s\n", file, reason);
    else
        fprintf(stderr, "%s:%llu: %s\n", file, (unsigned long long)line,
                reason);
}

void
cli_progress_notice(void *ctx, const char *message)
{
    cli_progress_clear(ctx);
    fprintf(stderr, "sluice: %s\n", message);
}

void
cli_progress_input(void *ctx, const char *name)
{
    cli_progress *p = ctx;
    p->file = name;
}
