/*
 * `sluice ingest`: read feeds into the queue. Every input is opened before
 * the database is touched, so a missing file changes nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

enum {
    O_DB, O_FORMAT, O_JSON, O_QUIET, O_PRIVATE, O_NET, O_URL_COL, O_ID_COL,
    O_KEY_COL, O_DELIM, O_RESET_POLICY, O_STRICT, O_FROM, O_FOLLOW, O_LEASE
};

static const cli_opt ingest_opts[] = {
    CLI_OPT_DB(O_DB),
    {.name = "format", .id = O_FORMAT, .arg = "FORMAT",
     .help = "auto, jsonl, csv or lines (default: auto)",
     .complete = "auto jsonl csv lines",
     .forms = 1},
    {.name = "url-column", .id = O_URL_COL, .arg = "NAME",
     .help = "the CSV column (any case) or JSON Lines member holding the "
             "url (default url)"},
    {.name = "id-column", .id = O_ID_COL, .arg = "NAME",
     .help = "the CSV column or JSON Lines member holding the id "
             "(default id)"},
    {.name = "key-column", .id = O_KEY_COL, .arg = "NAME",
     .help = "the CSV column or JSON Lines member holding the key "
             "(default key)"},
    {.name = "delimiter", .id = O_DELIM, .arg = "C",
     .help = "CSV: the field delimiter, one character (\\t or tab for a "
             "tab); default: the header's (a comma, or the semicolons or "
             "tabs it uses instead)",
     .forms = 1},
    {.name = "allow-private", .id = O_PRIVATE,
     .help = "accept URLs whose host is a loopback, private, link-local or "
             "metadata address (refused by default, in any spelling: "
             "127.1, 2130706433, [::ffff:127.0.0.1], localhost)"},
    {.name = "allow-net", .id = O_NET, .arg = "CIDR", .flags = CLI_REPEAT,
     .help = "accept those in this network (repeatable). What these allow "
             "is stored with the queue (and said), added to what earlier "
             "ingests allowed; ingest applies it, and so does a run given "
             "no --allow-* of its own"},
    {.name = "reset-policy", .id = O_RESET_POLICY,
     .help = "forget the URL policy stored with the queue first (then "
             "store only this ingest's)"},
    {.name = "strict", .id = O_STRICT,
     .help = "reject a record whose id an earlier record of this ingest "
             "had, or that names a key another one names (without it: a "
             "warning, the last id wins, the objects overwrite each "
             "other)",
     .forms = 1},
    {.name = "from", .id = O_FROM, .arg = "WHERE",
     .help = "kinesis://: where to start a shard the queue has no place "
             "in: trim-horizon (the oldest record kept; default), latest, "
             "or at-timestamp=T (T: 2026-12-06T12:00:00Z, or seconds since "
             "1970)",
     .forms = 2, .complete = "trim-horizon latest at-timestamp="},
    {.name = "follow", .id = O_FOLLOW,
     .help = "kinesis://: tail the stream until SIGINT or SIGTERM (without "
             "it: stop at the stream's end)",
     .forms = 2},
    {.name = "lease", .id = O_LEASE, .arg = "SEC",
     .help = "kinesis://: how long the stream's lease lasts unrenewed "
             "(default 15): a standby takes over this long after the "
             "ingester holding it dies",
     .forms = 2},
    {.name = "json", .id = O_JSON,
     .help = "print the summary as one JSON object"},
    {.name = "quiet", .short_name = 'q', .id = O_QUIET,
     .help = "no progress line"},
};

static const cli_form ingest_forms[] = {
    {NULL, "[FILE|-]...", CLI_COMPLETE_FILE},
    {NULL, "kinesis://STREAM", NULL},
};

static const char ingest_description[] =
    "Read feeds into the queue: validate each record, dedupe by id, and\n"
    "upsert it (same id and url: unchanged; a new url: pending again).\n"
    "With no FILE, or with -, read standard input.\n"
    "\n"
    "Formats (detected from the content unless --format is given):\n"
    "  jsonl   one JSON object a line: url, and optional id, key, meta\n"
    "          (other member names for url, id, key: --url-column ...)\n"
    "  csv     RFC 4180 with a header row naming at least url (and\n"
    "          optionally id, key, meta); other columns go into meta;\n"
    "          fields split by commas, or the semicolons or tabs the\n"
    "          header uses instead\n"
    "  lines   one URL a line; blank lines and # comments are skipped\n"
    "\n"
    "kinesis://STREAM reads every shard of an AWS Kinesis stream instead,\n"
    "each record a JSON object as in JSON Lines (KPL aggregates too), and\n"
    "keeps each shard's place in the queue with its records: a restart goes\n"
    "on after it. One ingester a stream and queue; another waits as a\n"
    "standby and takes over when the first dies. AWS settings as for S3\n"
    "(AWS_REGION, credentials; AWS_ENDPOINT_URL_KINESIS or\n"
    "AWS_ENDPOINT_URL for another endpoint).\n";

static const char ingest_epilogue[] =
    "Each rejected record is reported on stderr as FILE:LINE: reason (a\n"
    "stream's as STREAM SHARD seq N: reason); the rest is ingested. Each\n"
    "duplicate id, and each key two records name, across all the FILEs,\n"
    "is reported the same way and counted.\n"
    "Exit status: 0 all ingested, 1 some rejected, 2 usage error, 3 the\n"
    "work stopped (missing file, database error).\n";

const cli_command ingest_command = {
    .name = "ingest",
    .summary = "read feeds (JSON Lines, CSV, URL lines) into the queue",
    .forms = ingest_forms,
    .n_forms = CLI_COUNT(ingest_forms),
    .description = ingest_description,
    .epilogue = ingest_epilogue,
    .opts = ingest_opts,
    .n_opts = CLI_COUNT(ingest_opts),
    .run = cmd_ingest,
};

static void
on_progress(void *ctx, const sluice_ingest_stats *so_far)
{
    cli_progress_draw(ctx, "ingest",
                      so_far->added + so_far->updated + so_far->unchanged +
                          so_far->rejected);
}

/* The stream's --from: its start and, for at-timestamp=T, T in ms.
 * -1 when it is none of them. */
static int
parse_from(const char *text, sluice_stream_from *from, int64_t *at_ms)
{
    if (strcmp(text, "trim-horizon") == 0)
        *from = SLUICE_STREAM_TRIM_HORIZON;
    else if (strcmp(text, "latest") == 0)
        *from = SLUICE_STREAM_LATEST;
    else if (strncmp(text, "at-timestamp=", 13) == 0) {
        const char *t = text + 13;
        char *end;
        struct tm tm = {0};
        double secs = strtod(t, &end);
        if (*t && end != t && !*end && secs >= 0)
            *at_ms = (int64_t)(secs * 1000);
        else if ((end = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm)) &&
                 (!*end || strcmp(end, "Z") == 0 ||
                  strcmp(end, "+00:00") == 0))
            *at_ms = (int64_t)timegm(&tm) * 1000;
        else
            return -1;
        *from = SLUICE_STREAM_AT_TIMESTAMP;
    } else
        return -1;
    return 0;
}

static volatile int stream_stop;

static void
on_stop_signal(int sig)
{
    (void)sig;
    stream_stop = 1;
}

/* `sluice ingest kinesis://...`: the stream into the queue, until its
 * end or, with follow, a signal. */
static int
ingest_stream(sluice_queue *q, const char *location,
              const sluice_stream_opts *so, const sluice_ingest_opts *opts,
              sluice_ingest_stats *stats)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sluice_err err = sluice_ingest_stream(q, location, so, opts, stats);
    cli_progress_clear(opts->ctx);
    if (err == SLUICE_OK || (err == SLUICE_EINTERRUPTED && stream_stop))
        return EXIT_DONE; /* stopped as asked: every place is stored */
    if (err == SLUICE_EINVAL)
        return cli_usage("ingest", "%s", sluice_queue_errmsg(q));
    cli_error("%s", sluice_queue_errmsg(q));
    return cli_exit_for(err);
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
    const char *db_opt = NULL;
    sluice_format format = SLUICE_FORMAT_AUTO;
    bool json = false, quiet = false, allow_private = false;
    bool reset_policy = false, strict = false;
    sluice_stream_opts sopts = {.stop = &stream_stop};
    const char *from_opt = NULL;
    bool lease_opt = false;
    const char *url_column = NULL, *id_column = NULL, *key_column = NULL;
    char delimiter = 0;
    /* Batches of a few megabytes are made and freed again and again (the
     * parsed chunks, a Redis commit's commands): keep freed memory for
     * the next rather than give it back and fault it in anew. (Not for
     * run, which measured slower with it.) */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
    const char **nets = calloc((size_t)argc + 1, sizeof *nets);
    size_t n_nets = 0;
    cli_parser p;
    int c;

    if (!nets) {
        cli_error("out of memory");
        return EXIT_FAILED;
    }

    cli_parse_begin(&p, &ingest_command, argc, argv, 1);
    while ((c = cli_next(&p)) != CLI_END) {
        switch (c) {
        case O_DB:
            db_opt = p.arg;
            break;
        case O_FORMAT: {
            int f = sluice_format_from_name(p.arg);
            if (f < 0) {
                free(nets);
                return cli_usage("ingest",
                                 "--format: expected auto, jsonl, csv or "
                                 "lines, got '%s'",
                                 p.arg);
            }
            format = (sluice_format)f;
            break;
        }
        case O_JSON:
            json = true;
            break;
        case O_QUIET:
            quiet = true;
            break;
        case O_PRIVATE:
            allow_private = true;
            break;
        case O_NET:
            nets[n_nets++] = p.arg;
            break;
        case O_RESET_POLICY:
            reset_policy = true;
            break;
        case O_STRICT:
            strict = true;
            break;
        case O_FROM:
            if (parse_from(p.arg, &sopts.from, &sopts.at_ms) != 0) {
                free(nets);
                return cli_usage("ingest",
                                 "--from: expected trim-horizon, latest or "
                                 "at-timestamp=T (T: "
                                 "2026-12-06T12:00:00Z or seconds since "
                                 "1970), got '%s'",
                                 p.arg);
            }
            from_opt = p.arg;
            break;
        case O_FOLLOW:
            sopts.follow = 1;
            break;
        case O_LEASE: {
            char *end;
            sopts.lease_s = strtod(p.arg, &end);
            if (end == p.arg || *end || !(sopts.lease_s >= 1) ||
                sopts.lease_s > 3600) {
                free(nets);
                return cli_usage("ingest",
                                 "--lease: %s: must be a number of seconds "
                                 "from 1 to 3600",
                                 p.arg);
            }
            lease_opt = true;
            break;
        }
        case O_URL_COL:
        case O_ID_COL:
        case O_KEY_COL:
            if (!*p.arg) {
                free(nets);
                return cli_usage("ingest", "--%s: an empty column name",
                                 c == O_URL_COL  ? "url-column"
                                 : c == O_ID_COL ? "id-column"
                                                 : "key-column");
            }
            *(c == O_URL_COL  ? &url_column
              : c == O_ID_COL ? &id_column
                              : &key_column) = p.arg;
            break;
        case O_DELIM:
            if (strcmp(p.arg, "tab") == 0 || strcmp(p.arg, "\\t") == 0)
                delimiter = '\t';
            else if (strlen(p.arg) == 1 && !strchr("\"\r\n", *p.arg))
                delimiter = *p.arg;
            else {
                free(nets);
                return cli_usage("ingest",
                                 "--delimiter: one character (or tab, \\t) "
                                 "other than a quote, got '%s'",
                                 p.arg);
            }
            break;
        case CLI_HELP:
            free(nets);
            return EXIT_DONE;
        default:
            free(nets);
            return EXIT_USAGE;
        }
    }

    int n_inputs = argc - p.optind;
    const char *stream = NULL;
    for (int i = p.optind; i < argc; i++)
        if (strncmp(argv[i], "kinesis://", 10) == 0)
            stream = argv[i];
    const char *misfit = !stream ? (sopts.follow ? "--follow"
                                    : from_opt   ? "--from"
                                    : lease_opt  ? "--lease"
                                                 : NULL)
                         : n_inputs > 1 ? "another input"
                         : format != SLUICE_FORMAT_AUTO ? "--format"
                         : delimiter ? "--delimiter"
                         : strict ? "--strict" : NULL;
    if (misfit) {
        free(nets);
        return cli_usage("ingest", stream ? "%s does not go with a stream"
                                          : "%s is for a kinesis:// stream",
                         misfit);
    }
    bool use_stdin = n_inputs == 0;
    if (use_stdin && isatty(STDIN_FILENO)) {
        free(nets);
        return cli_usage("ingest",
                         "no input: give FILE, or - to read a piped feed");
    }
    sluice_ingest_input *inputs = calloc((size_t)(use_stdin ? 1 : n_inputs),
                           sizeof *inputs);
    if (!inputs) {
        free(nets);
        cli_error("out of memory");
        return EXIT_FAILED;
    }
    int n_open = 0, status = EXIT_DONE, stdin_uses = 0;
    for (int i = 0; i < (use_stdin ? 1 : n_inputs) && !stream; i++) {
        const char *path = use_stdin ? "-" : argv[p.optind + i];
        if (strcmp(path, "-") == 0 && ++stdin_uses > 1) {
            status = cli_usage("ingest", "standard input given twice");
            goto out;
        }
        if (cli_open_feed(path, &inputs[i]) != 0) {
            status = EXIT_FAILED;
            goto out;
        }
        n_open++;
    }

    sluice_queue *q = cli_open_queue(cli_db_path(db_opt), 0, &status);
    if (!q)
        goto out;
    cli_progress prog;
    cli_progress_start(&prog, quiet);
    sluice_ingest_opts opts = {
        .format = format,
        .on_reject = cli_progress_reject,
        .on_progress = on_progress,
        .ctx = &prog,
        .allow_private = allow_private,
        .allow_nets = nets,
        .n_allow_nets = n_nets,
        .reset_policy = reset_policy,
        .on_notice = cli_progress_notice,
        .url_column = url_column,
        .id_column = id_column,
        .key_column = key_column,
        .delimiter = delimiter,
        .on_warning = cli_progress_reject, /* FILE:LINE: what */
        .strict = strict,
        .on_input = cli_progress_input,
    };
    sluice_ingest_stats stats = {0};
    if (stream) {
        prog.file = stream;
        status = ingest_stream(q, stream, &sopts, &opts, &stats);
        sluice_queue_close(q);
        if (status != EXIT_USAGE)
            print_summary(&stats, json);
        if (status == EXIT_DONE && stats.rejected > 0)
            status = EXIT_PARTIAL;
        goto out;
    }
    /* All inputs as one ingest: duplicates are found across them. */
    sluice_err err = sluice_ingest_fds(q, inputs, (size_t)n_open, &opts,
                                       &stats);
    if (err != SLUICE_OK) {
        cli_progress_clear(&prog);
        if (err == SLUICE_EINVAL) {
            status = cli_usage("ingest", "%s", sluice_queue_errmsg(q));
        } else {
            cli_error("%s", sluice_queue_errmsg(q));
            status = cli_exit_for(err);
        }
    }
    cli_progress_clear(&prog);
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
