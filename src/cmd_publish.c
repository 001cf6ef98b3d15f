/*
 * `sluice publish`: put feeds onto a Kinesis stream, one JSON record per
 * feed record, for teams moving a feed into the stream that `sluice ingest
 * kinesis://` reads (and for the tests). Every input is opened before
 * the stream is touched, so a missing file sends nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* One row an option, as in the other commands' tables. */
/* clang-format off */
enum {
    O_TO, O_PARTITION, O_FORMAT, O_URL_COL, O_ID_COL, O_KEY_COL, O_DELIM,
    O_PRIVATE, O_NET, O_TIMEOUT, O_ATTEMPTS, O_JSON, O_QUIET
};

static const cli_opt publish_opts[] = {
    {.name = "to", .id = O_TO, .arg = "kinesis://STREAM",
     .flags = CLI_REQUIRED,
     .help = "the stream (region, endpoint and credentials from AWS_REGION, "
             "AWS_ENDPOINT_URL_KINESIS or AWS_ENDPOINT_URL, and the AWS "
             "credentials chain)"},
    {.name = "partition-key", .id = O_PARTITION, .arg = "id|origin",
     .help = "each record's partition key: its id (default), or its "
             "origin (scheme://host:port), so one origin's records share a "
             "shard",
     .complete = "id origin"},
    {.name = "format", .id = O_FORMAT, .arg = "FORMAT",
     .help = "auto, jsonl, csv or lines (default: auto)",
     .complete = "auto jsonl csv lines"},
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
             "tab); default: the header's"},
    {.name = "allow-private", .id = O_PRIVATE,
     .help = "accept URLs whose host is a loopback, private, link-local or "
             "metadata address (refused by default, as ingest refuses them)"},
    {.name = "allow-net", .id = O_NET, .arg = "CIDR", .flags = CLI_REPEAT,
     .help = "accept those in this network (repeatable)"},
    {.name = "timeout", .id = O_TIMEOUT, .arg = "SEC",
     .help = "the longest one PutRecords call may take (default 10)"},
    {.name = "max-attempts", .id = O_ATTEMPTS, .arg = "N",
     .help = "tries of a call that failed (no answer, 5xx) or of a record "
             "the service failed, other than throttling, before giving up "
             "(default 8); throttles are retried without counting"},
    {.name = "json", .id = O_JSON,
     .help = "print the summary as one JSON object"},
    {.name = "quiet", .short_name = 'q', .id = O_QUIET,
     .help = "no progress line"},
};

/* clang-format on */

static const cli_form publish_forms[] = {
    {NULL, "[FILE|-]...", CLI_COMPLETE_FILE},
};

static const char publish_description[] =
    "Read feeds as ingest reads them (the same formats, checks and URL\n"
    "policy) and put each good record on a Kinesis stream as one JSON\n"
    "object, {\"id\",\"url\",\"key\",\"meta\"}: what `sluice ingest\n"
    "kinesis://` reads back. PutRecords carries at most 500 records and\n"
    "5 MiB; records the service fails are sent again with backoff and\n"
    "jitter, before any later record. With no FILE, or with -, read\n"
    "standard input.\n";

static const char publish_epilogue[] =
    "Each rejected record is reported on stderr as FILE:LINE: reason; the\n"
    "rest is published. The summary says how many were published and\n"
    "rejected.\n"
    "Exit status: 0 all published, 1 some rejected, 2 usage error, 3 the\n"
    "work stopped (missing file, no region or credentials, a stream that\n"
    "does not answer or refuses the records).\n";

const cli_command publish_command = {
    .name = "publish",
    .summary = "put feeds onto a Kinesis stream (the producer side)",
    .forms = publish_forms,
    .n_forms = CLI_COUNT(publish_forms),
    .description = publish_description,
    .epilogue = publish_epilogue,
    .opts = publish_opts,
    .n_opts = CLI_COUNT(publish_opts),
    .run = cmd_publish,
};

static void
on_progress(void *ctx, const sluice_publish_stats *so_far)
{
    cli_progress_draw(ctx, "publish", so_far->published);
}

static void
print_summary(const sluice_publish_stats *st, bool json)
{
    if (json) {
        yajl_gen g = cli_json_begin();
        yajl_gen_map_open(g);
        cli_json_uint(g, "published", st->published);
        cli_json_uint(g, "rejected", st->rejected);
        cli_json_uint(g, "retried", st->retried);
        cli_json_uint(g, "calls", st->calls);
        yajl_gen_map_close(g);
        cli_json_end(g);
        return;
    }
    printf("published %llu, rejected %llu", (unsigned long long)st->published,
           (unsigned long long)st->rejected);
    if (st->retried)
        printf(" (%llu sent again)", (unsigned long long)st->retried);
    putchar('\n');
}

int
cmd_publish(int argc, char **argv)
{
    const char *to = NULL;
    bool json = false, quiet = false;
    sluice_publish_opts opts = {0};
    const char **nets = calloc((size_t)argc + 1, sizeof *nets);
    size_t n_nets = 0;
    cli_parser p;
    int c, status = EXIT_DONE;
    sluice_ingest_input *inputs = NULL;
    int n_open = 0;

    if (!nets) {
        cli_error("out of memory");
        return EXIT_FAILED;
    }
    cli_parse_begin(&p, &publish_command, argc, argv, 1);
    while ((c = cli_next(&p)) != CLI_END) {
        switch (c) {
        case O_TO:
            to = p.arg;
            break;
        case O_PARTITION:
            if (strcmp(p.arg, "id") == 0)
                opts.partition_by_origin = 0;
            else if (strcmp(p.arg, "origin") == 0)
                opts.partition_by_origin = 1;
            else {
                status = cli_usage("publish",
                                   "--partition-key: expected id or origin, "
                                   "got '%s'",
                                   p.arg);
                goto out;
            }
            break;
        case O_FORMAT: {
            int f = sluice_format_from_name(p.arg);
            if (f < 0) {
                status = cli_usage("publish",
                                   "--format: expected auto, jsonl, csv or "
                                   "lines, got '%s'",
                                   p.arg);
                goto out;
            }
            opts.format = (sluice_format)f;
            break;
        }
        case O_URL_COL:
        case O_ID_COL:
        case O_KEY_COL:
            if (!*p.arg) {
                status = cli_usage("publish", "--%s: an empty column name",
                                   cli_opt_name(&p) + 2);
                goto out;
            }
            *(c == O_URL_COL  ? &opts.url_column
              : c == O_ID_COL ? &opts.id_column
                              : &opts.key_column) = p.arg;
            break;
        case O_DELIM:
            if (strcmp(p.arg, "tab") == 0 || strcmp(p.arg, "\\t") == 0)
                opts.delimiter = '\t';
            else if (strlen(p.arg) == 1 && !strchr("\"\r\n", *p.arg))
                opts.delimiter = *p.arg;
            else {
                status = cli_usage("publish",
                                   "--delimiter: one character (or tab, \\t) "
                                   "other than a quote, got '%s'",
                                   p.arg);
                goto out;
            }
            break;
        case O_PRIVATE:
            opts.allow_private = 1;
            break;
        case O_NET:
            nets[n_nets++] = p.arg;
            break;
        case O_TIMEOUT: {
            double sec;
            if (!cli_arg_seconds(&p, 0, true, 3600, &sec)) {
                status = EXIT_USAGE;
                goto out;
            }
            opts.timeout_ms = (long)(sec * 1000 + 0.5);
            if (opts.timeout_ms < 1)
                opts.timeout_ms = 1;
            break;
        }
        case O_ATTEMPTS: {
            unsigned long long n;
            if (!cli_arg_count(&p, 1, 1000, &n)) {
                status = EXIT_USAGE;
                goto out;
            }
            opts.max_attempts = (unsigned)n;
            break;
        }
        case O_JSON:
            json = true;
            break;
        case O_QUIET:
            quiet = true;
            break;
        case CLI_HELP:
            status = EXIT_DONE;
            goto out;
        default:
            status = EXIT_USAGE;
            goto out;
        }
    }
    if (!to) {
        status = cli_usage("publish", "--to kinesis://STREAM is required");
        goto out;
    }

    int n_inputs = argc - p.optind;
    bool use_stdin = n_inputs == 0;
    if (use_stdin && isatty(STDIN_FILENO)) {
        status = cli_usage("publish",
                           "no input: give FILE, or - to read a piped feed");
        goto out;
    }
    if (use_stdin)
        n_inputs = 1;
    inputs = calloc((size_t)n_inputs, sizeof *inputs);
    if (!inputs) {
        cli_error("out of memory");
        status = EXIT_FAILED;
        goto out;
    }
    int stdin_uses = 0;
    for (int i = 0; i < n_inputs; i++) {
        const char *path = use_stdin ? "-" : argv[p.optind + i];
        if (strcmp(path, "-") == 0 && ++stdin_uses > 1) {
            status = cli_usage("publish", "standard input given twice");
            goto out;
        }
        if (cli_open_feed(path, &inputs[i]) != 0) {
            status = EXIT_FAILED;
            goto out;
        }
        n_open++;
    }

    cli_progress prog;
    cli_progress_start(&prog, quiet);
    opts.allow_nets = nets;
    opts.n_allow_nets = n_nets;
    opts.on_reject = cli_progress_reject;
    opts.on_progress = on_progress;
    opts.on_input = cli_progress_input;
    opts.ctx = &prog;
    sluice_publish_stats stats = {0};
    char errbuf[1024] = "";
    sluice_err err = sluice_publish_fds(to, inputs, (size_t)n_open, &opts,
                                        &stats, errbuf, sizeof errbuf);
    cli_progress_clear(&prog);
    if (err != SLUICE_OK) {
        if (err == SLUICE_EINVAL) {
            status = cli_usage("publish", "%s", errbuf);
            goto out;
        }
        cli_error("%s", errbuf[0] ? errbuf : sluice_strerror(err));
        status = cli_exit_for(err);
        if (status == EXIT_DONE || status == EXIT_PARTIAL)
            status = EXIT_FAILED;
    }
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
