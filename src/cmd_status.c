/*
 * `sluice status`: how many records are in each state, whether a run is
 * using the queue and how many requests it has in flight, and the slots
 * held for a run that is gone; as a short table or one JSON object with
 * stable field names.
 */
#include <getopt.h>
#include <string.h>

#include "cli.h"

static const char help_text[] =
    "Usage: sluice status [--db FILE] [--json]\n"
    "\n"
    "Show how many records are pending, in flight, waiting to retry, done\n"
    "and dead, the total, and the age of the oldest pending record; whether\n"
    "a run is using the queue and how many requests it has in flight now;\n"
    "and, per origin, slots still held (by that run, or for a run that is\n"
    "gone, until its requests' deadlines) and Retry-After pauses.\n"
    "\n"
    "Options:\n"
    "  --db FILE   queue database (default: $SLUICE_DB, else ./sluice.db)\n"
    "  --json      one JSON object: pending, in_flight (records leased),\n"
    "              retrying, done, dead, total, oldest_pending_age_s (null\n"
    "              if none), run (\"running\" or \"none\"),\n"
    "              requests_in_flight (null without a run), slots [{origin,\n"
    "              held, in_flight, by_live_run, free_in_s, paused_for_s}]\n"
    "  -h, --help  show this help\n";

int
cmd_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db_opt = NULL;
    bool json = false;
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            db_opt = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            fputs(help_text, stdout);
            return EXIT_DONE;
        default:
            return cli_usage("status", "unknown option '%s'",
                             argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage("status", "unexpected argument '%s'", argv[optind]);

    sluice_queue *q = cli_open_queue(cli_db_path(db_opt),
                                     SLUICE_QUEUE_READONLY);
    if (!q)
        return EXIT_FAILED;
    sluice_counts n;
    slots_view slots;
    sluice_err err = sluice_queue_counts(q, &n);
    if (err == SLUICE_OK)
        err = slots_view_load(&slots, q);
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
        cli_json_key(g, "run");
        cli_json_str(g, slots.live ? "running" : "none");
        cli_json_key(g, "requests_in_flight");
        if (slots.live)
            yajl_gen_integer(g, (long long)slots.requests);
        else
            yajl_gen_null(g);
        slots_view_json(&slots, g);
        yajl_gen_map_close(g);
        cli_json_end(g);
        slots_view_free(&slots);
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
    slots_view_free(&slots);
    return EXIT_DONE;
}
