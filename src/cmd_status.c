/*
 * `sluice status`: how many records are in each state, whether a run is
 * using the queue and how many requests it has in flight, and the slots
 * held for a run that is gone; as a short table or one JSON object with
 * stable field names.
 */
#include <string.h>

#include "cli.h"

enum { O_DB, O_JSON };

static const cli_opt status_opts[] = {
    CLI_OPT_DB(O_DB),
    {.name = "json", .id = O_JSON,
     .help = "one JSON object: pending, in_flight (records leased), "
             "retrying, done, dead, total, oldest_pending_age_s (null if "
             "none), run (\"running\" or \"none\"), requests_in_flight "
             "(null without a run), slots [{origin, held, in_flight, "
             "by_live_run, free_in_s, paused_for_s}], streams [{stream, "
             "shard, seq, subseq, finished, behind_ms, behind_from, "
             "written_at}]"},
};

static const cli_form status_forms[] = {{NULL, NULL, NULL}};

static const char status_description[] =
    "Show how many records are pending, in flight, waiting to retry, done\n"
    "and dead, the total, and the age of the oldest pending record; whether\n"
    "a run is using the queue and how many requests it has in flight now;\n"
    "and, per origin, slots still held (by that run, or for a run that is\n"
    "gone, until its requests' deadlines) and Retry-After pauses; and for a\n"
    "stream source (ingest kinesis://), each shard's place and how far\n"
    "behind the stream's end it is.\n";

const cli_command status_command = {
    .name = "status",
    .summary = "show how many records are in each state",
    .forms = status_forms,
    .n_forms = CLI_COUNT(status_forms),
    .description = status_description,
    .opts = status_opts,
    .n_opts = CLI_COUNT(status_opts),
    .run = cmd_status,
};

int
cmd_status(int argc, char **argv)
{
    const char *db_opt = NULL;
    bool json = false;
    cli_parser p;
    int c;

    cli_parse_begin(&p, &status_command, argc, argv, 1);
    while ((c = cli_next(&p)) != CLI_END) {
        switch (c) {
        case O_DB:
            db_opt = p.arg;
            break;
        case O_JSON:
            json = true;
            break;
        case CLI_HELP:
            return EXIT_DONE;
        default:
            return EXIT_USAGE;
        }
    }
    if (p.optind < argc)
        return cli_usage("status", "unexpected argument '%s'",
                         argv[p.optind]);

    int status;
    sluice_queue *q = cli_open_queue(cli_db_path(db_opt),
                                     SLUICE_QUEUE_READONLY, &status);
    if (!q)
        return status;
    sluice_counts n;
    slots_view slots;
    streams_view streams;
    memset(&streams, 0, sizeof streams);
    sluice_err err = sluice_queue_counts(q, &n);
    if (err == SLUICE_OK)
        err = slots_view_load(&slots, q);
    if (err == SLUICE_OK)
        err = streams_view_load(&streams, q);
    if (err != SLUICE_OK) {
        cli_error("%s", sluice_queue_errmsg(q));
        sluice_queue_close(q);
        return cli_exit_for(err);
    }
    sluice_queue_close(q);

    if (json) {
        yajl_gen g = cli_json_begin();
        yajl_gen_map_open(g);
        cli_json_uint(g, "pending", n.pending);
        cli_json_uint(g, "in_flight", n.in_flight);
        cli_json_uint(g, "retrying", n.retrying);
        cli_json_uint(g, "done", n.done);
        cli_json_uint(g, "dead", n.dead);
        cli_json_uint(g, "total", n.total);
        cli_json_key(g, "oldest_pending_age_s");
        if (n.oldest_pending_age < 0)
            yajl_gen_null(g);
        else
            cli_json_double(g, n.oldest_pending_age);
        cli_json_member_str(g, "run", slots.live ? "running" : "none");
        cli_json_member_int_or_null(g, "requests_in_flight",
                                    (long long)slots.requests, slots.live);
        slots_view_json(&slots, g);
        streams_view_json(&streams, g);
        yajl_gen_map_close(g);
        cli_json_end(g);
        slots_view_free(&slots);
        streams_view_free(&streams);
        return EXIT_DONE;
    }

    const struct {
        const char *label;
        uint64_t value;
    } rows[] = {
        {"pending", n.pending}, {"in flight", n.in_flight},
        {"retrying", n.retrying}, {"done", n.done},
        {"dead", n.dead},       {"total", n.total},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        char num[32];
        cli_group_digits(num, sizeof num, rows[i].value);
        printf("%-10s %15s\n", rows[i].label, num);
    }
    if (n.oldest_pending_age >= 0) {
        char age[32];
        cli_duration(age, sizeof age, n.oldest_pending_age);
        printf("%-10s %15s\n", "oldest", age);
    }
    if (slots.live)
        printf("%-10s %15llu  in flight now (a run is using the queue)\n",
               "requests", (unsigned long long)slots.requests);
    else if (n.in_flight)
        printf("no run is using the queue: the records in flight were left "
               "by one that is gone; the next run puts them back\n");
    if (slots.n) {
        printf("slots:\n");
        slots_view_print(&slots, stdout);
    }
    if (streams.n) {
        printf("streams:\n");
        streams_view_print(&streams, stdout);
    }
    slots_view_free(&slots);
    streams_view_free(&streams);
    return EXIT_DONE;
}
