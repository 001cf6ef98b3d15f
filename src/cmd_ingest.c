/*
 * `sluice ingest`: read feeds into the queue. Every input is opened before
 * the database is touched, so a missing file changes nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char help_text[] =
    "Usage: sluice ingest [--db FILE] [--format FORMAT] [OPTIONS] "
    "[FILE|-]...\n"
    "\n"
    "Read feeds into the queue: validate each record, dedupe by id, and\n"
    "upsert it (same id and url: unchanged; a new url: pending again).\n"
    "With no FILE, or with -, read standard input.\n"
    "\n"
    "Formats (detected from the content unless --format is given):\n"
    "  jsonl   one JSON object a line: url, and optional id, key, meta\n"
    "  csv     RFC 4180 with a header row naming at least url (and\n"
    "          optionally id, key, meta); other columns go into meta;\n"
    "          fields split by commas, or the semicolons or tabs the\n"
    "          header uses instead\n"
    "  lines   one URL a line; blank lines and # comments are skipped\n"
    "\n"
    "Options:\n"
    "  --db FILE        queue database (default: $SLUICE_DB, else "
    "./sluice.db)\n"
    "  --format FORMAT  auto, jsonl, csv or lines (default: auto)\n"
    "  --url-column NAME, --id-column NAME, --key-column NAME\n"
    "                   CSV: the columns holding the url, id and key\n"
    "                   (default url, id, key; any case)\n"
    "  --delimiter C    CSV: the field delimiter, one character (\\t or\n"
    "                   tab for a tab); default: the header's\n"
    "  --allow-private  accept URLs whose host is a loopback, private,\n"
    "                   link-local or metadata address (refused by\n"
    "                   default, in any spelling: 127.1, 2130706433,\n"
    "                   [::ffff:127.0.0.1], localhost)\n"
    "  --allow-net CIDR accept those in this network (repeatable)\n"
    "                   What these allow is stored with the queue (and\n"
    "                   said), added to what earlier ingests allowed;\n"
    "                   ingest applies it, and so does a run given no\n"
    "                   --allow-* of its own\n"
    "  --reset-policy   forget the URL policy stored with the queue\n"
    "                   first (then store only this ingest's)\n"
    "  --strict         reject a record whose id an earlier record of\n"
    "                   this ingest had, or that names a key another\n"
    "                   one names (without it: a warning, the last id\n"
    "                   wins, the objects overwrite each other)\n"
    "  --json           print the summary as one JSON object\n"
    "  -q, --quiet      no progress line\n"
    "  -h, --help       show this help\n"
    "\n"
    "Each rejected record is reported on stderr as FILE:LINE: reason; the\n"
    "rest is ingested. Each duplicate id, and each key two records name,\n"
    "across all the FILEs, is reported the same way and counted.\n"
    "Exit status: 0 all ingested, 1 some rejected, 2 usage error, 3 the\n"
    "work stopped (missing file, database error).\n";

typedef struct {
    const char *name; /* as shown in messages */
    int fd;
} input;

typedef struct {
    bool show;           /* draw a progress line on stderr */
    bool drawn;          /* one is on the screen now */
    const char *file;    /* the input being read */
    struct timespec start;
    double last_draw;
    uint64_t base;       /* records of earlier files */
} progress;

static double
seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) +
           (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void
progress_clear(progress *p)
{
    if (p->drawn) {
        fputs("\r\033[K", stderr);
        p->drawn = false;
    }
}

static void
on_reject(void *ctx, const char *file, uint64_t line, const char *reason)
{
    progress_clear(ctx);
    fprintf(stderr, "%s:%llu: %s\n", file, (unsigned long long)line, reason);
}

static void
on_notice(void *ctx, const char *message)
{
    progress_clear(ctx);
    fprintf(stderr, "sluice: %s\n", message);
}

static void
on_input(void *ctx, const char *name)
{
    progress *p = ctx;
    p->file = name;
}

static void
on_progress(void *ctx, const sluice_ingest_stats *so_far)
{
    progress *p = ctx;
    if (!p->show)
        return;
    double t = seconds_since(&p->start);
    if (t - p->last_draw < 0.25)
        return;
    p->last_draw = t;
    uint64_t n = so_far->added + so_far->updated + so_far->unchanged +
                 so_far->rejected;
    char count[32], rate[32];
    cli_group_digits(count, sizeof count, n);
    cli_group_digits(rate, sizeof rate,
                     (unsigned long long)((double)n / (t > 0 ? t : 1)));
    fprintf(stderr, "\r\033[Kingest %s: %s records, %s/s", p->file, count,
            rate);
    p->drawn = true;
}

static int
open_input(const char *path, input *in)
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

static void
print_summary(const sluice_ingest_stats *st, bool json)
{
    if (json) {
        yajl_gen g = cli_json_begin();
        yajl_gen_map_open(g);
        cli_json_uint(g, "new", st->added);
        cli_json_uint(g, "updated", st->updated);
        cli_json_uint(g, "unchanged", st->unchanged);
        cli_json_uint(g, "rejected", st->rejected);
        cli_json_uint(g, "duplicate_ids", st->duplicate_ids);
        cli_json_uint(g, "shared_keys", st->shared_keys);
        yajl_gen_map_close(g);
        cli_json_end(g);
        return;
    }
    printf("%llu new, %llu updated, %llu unchanged, %llu rejected",
           (unsigned long long)st->added, (unsigned long long)st->updated,
           (unsigned long long)st->unchanged,
           (unsigned long long)st->rejected);
    /* Only when there are some: the usual line stays as it was. */
    if (st->duplicate_ids)
        printf(", %llu duplicate id%s", (unsigned long long)st->duplicate_ids,
               st->duplicate_ids == 1 ? "" : "s");
    if (st->shared_keys)
        printf(", %llu shared key%s", (unsigned long long)st->shared_keys,
               st->shared_keys == 1 ? "" : "s");
    putchar('\n');
}

int
cmd_ingest(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, NULL, 'd'},
        {"format", required_argument, NULL, 'f'},
        {"json", no_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},
        {"allow-private", no_argument, NULL, 'P'},
        {"allow-net", required_argument, NULL, 'N'},
        {"url-column", required_argument, NULL, 'U'},
        {"id-column", required_argument, NULL, 'I'},
        {"key-column", required_argument, NULL, 'K'},
        {"delimiter", required_argument, NULL, 'D'},
        {"reset-policy", no_argument, NULL, 'R'},
        {"strict", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db_opt = NULL;
    sluice_format format = SLUICE_FORMAT_AUTO;
    bool json = false, quiet = false, allow_private = false;
    bool reset_policy = false, strict = false;
    const char *url_column = NULL, *id_column = NULL, *key_column = NULL;
    char delimiter = 0;
    const char **nets = calloc((size_t)argc + 1, sizeof *nets);
    size_t n_nets = 0;
    int c;

    if (!nets) {
        cli_error("out of memory");
        return EXIT_FAILED;
    }

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            db_opt = optarg;
            break;
        case 'f': {
            int f = sluice_format_from_name(optarg);
            if (f < 0) {
                free(nets);
                return cli_usage("ingest",
                                 "--format: expected auto, jsonl, csv or "
                                 "lines, got '%s'",
                                 optarg);
            }
            format = (sluice_format)f;
            break;
        }
        case 'j':
            json = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'P':
            allow_private = true;
            break;
        case 'N':
            nets[n_nets++] = optarg;
            break;
        case 'R':
            reset_policy = true;
            break;
        case 'S':
            strict = true;
            break;
        case 'U':
        case 'I':
        case 'K':
            if (!*optarg) {
                free(nets);
                return cli_usage("ingest", "%s: an empty column name",
                                 argv[optind - 1]);
            }
            *(c == 'U' ? &url_column : c == 'I' ? &id_column
                                                : &key_column) = optarg;
            break;
        case 'D':
            if (strcmp(optarg, "tab") == 0 || strcmp(optarg, "\\t") == 0)
                delimiter = '\t';
            else if (strlen(optarg) == 1 && !strchr("\"\r\n", *optarg))
                delimiter = *optarg;
            else {
                free(nets);
                return cli_usage("ingest",
                                 "--delimiter: one character (or tab, \\t) "
                                 "other than a quote, got '%s'",
                                 optarg);
            }
            break;
        case 'h':
            fputs(help_text, stdout);
            free(nets);
            return EXIT_DONE;
        default:
            free(nets);
            return cli_usage("ingest", "unknown option '%s'",
                             argv[optind - 1]);
        }
    }

    int n_inputs = argc - optind;
    bool use_stdin = n_inputs == 0;
    if (use_stdin && isatty(STDIN_FILENO)) {
        free(nets);
        return cli_usage("ingest",
                         "no input: give FILE, or - to read a piped feed");
    }
    input *inputs = calloc((size_t)(use_stdin ? 1 : n_inputs),
                           sizeof *inputs);
    if (!inputs) {
        free(nets);
        cli_error("out of memory");
        return EXIT_FAILED;
    }
    int n_open = 0, status = EXIT_DONE, stdin_uses = 0;
    for (int i = 0; i < (use_stdin ? 1 : n_inputs); i++) {
        const char *path = use_stdin ? "-" : argv[optind + i];
        if (strcmp(path, "-") == 0 && ++stdin_uses > 1) {
            status = cli_usage("ingest", "standard input given twice");
            goto out;
        }
        if (open_input(path, &inputs[i]) != 0) {
            status = EXIT_FAILED;
            goto out;
        }
        n_open++;
    }

    sluice_queue *q = cli_open_queue(cli_db_path(db_opt), 0);
    if (!q) {
        status = EXIT_FAILED;
        goto out;
    }
    progress prog = {.show = !quiet && isatty(STDERR_FILENO)};
    clock_gettime(CLOCK_MONOTONIC, &prog.start);
    sluice_ingest_opts opts = {
        .format = format,
        .on_reject = on_reject,
        .on_progress = on_progress,
        .ctx = &prog,
        .allow_private = allow_private,
        .allow_nets = nets,
        .n_allow_nets = n_nets,
        .reset_policy = reset_policy,
        .on_notice = on_notice,
        .url_column = url_column,
        .id_column = id_column,
        .key_column = key_column,
        .delimiter = delimiter,
        .on_warning = on_reject, /* the same line: FILE:LINE: what */
        .strict = strict,
        .on_input = on_input,
    };
    sluice_ingest_stats stats = {0};
    sluice_ingest_input *ins = calloc((size_t)n_open + 1, sizeof *ins);
    if (!ins) {
        sluice_queue_close(q);
        cli_error("out of memory");
        status = EXIT_FAILED;
        goto out;
    }
    for (int i = 0; i < n_open; i++)
        ins[i] = (sluice_ingest_input){inputs[i].fd, inputs[i].name};
    /* All inputs as one ingest: duplicates are found across them. */
    sluice_err err = sluice_ingest_fds(q, ins, (size_t)n_open, &opts, &stats);
    free(ins);
    if (err != SLUICE_OK) {
        progress_clear(&prog);
        if (err == SLUICE_EINVAL) {
            status = cli_usage("ingest", "%s", sluice_queue_errmsg(q));
        } else {
            cli_error("%s", sluice_queue_errmsg(q));
            status = cli_exit_for(err);
        }
    }
    progress_clear(&prog);
    sluice_queue_close(q);
    if (status != EXIT_USAGE)
        print_summary(&stats, json);
    if (status == EXIT_DONE && stats.rejected > 0)
        status = EXIT_PARTIAL;
out:
    for (int i = 0; i < n_open; i++)
        if (inputs[i].fd != STDIN_FILENO)
            close(inputs[i].fd);
    free(inputs);
    free(nets);
    return status;
}
