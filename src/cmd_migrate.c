/*
 * `sluice migrate --from DB --to DB`: a queue moved to another backend
 * (SQLite into Redis, when one machine is no longer enough) as it is:
 * records with their states and results, the dead-letter queue, the
 * settings. Nothing done is fetched again.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

enum { O_FROM, O_TO, O_JSON, O_QUIET };

static const cli_opt migrate_opts[] = {
    {.name = "from", .id = O_FROM, .arg = "DB", .flags = CLI_REQUIRED,
     .help = "the queue to copy (a SQLite file, redis://, unix://); it is "
             "not changed",
     .complete = CLI_COMPLETE_FILE},
    {.name = "to", .id = O_TO, .arg = "DB", .flags = CLI_REQUIRED,
     .help = "the queue to copy it into, which must hold no record (made "
             "when it does not exist)",
     .complete = CLI_COMPLETE_FILE},
    {.name = "json", .id = O_JSON,
     .help = "the summary as one JSON object"},
    {.name = "quiet", .short_name = 'q', .id = O_QUIET,
     .help = "no progress line"},
};

static const cli_form migrate_forms[] = {{NULL, NULL, NULL}};

static const char migrate_description[] =
    "Copy a queue into another, as it is: every record in feed order with\n"
    "its state, attempts and results (done records stay done and are not\n"
    "fetched again; dead ones stay in the dead-letter queue), and the cap,\n"
    "rate and URL policy stored with it. Records a run that died left in\n"
    "flight arrive ready. Refused while a run uses --from, or while slots\n"
    "a dead run holds there are live (the message says until when), and\n"
    "into a queue that holds records.\n";

static const char migrate_epilogue[] =
    "Exit status: 0 copied, 2 usage error (or --to holds records), 3 the\n"
    "work stopped (a run uses --from, its slots are held, a database\n"
    "error).\n";

const cli_command migrate_command = {
    .name = "migrate",
    .summary = "copy a queue into another backend (SQLite into Redis), "
               "states and all",
    .forms = migrate_forms,
    .n_forms = CLI_COUNT(migrate_forms),
    .description = migrate_description,
    .epilogue = migrate_epilogue,
    .opts = migrate_opts,
    .n_opts = CLI_COUNT(migrate_opts),
    .run = cmd_migrate,
};

static void
on_progress(void *ctx, uint64_t copied)
{
    (void)ctx;
    char n[32];
    cli_group_digits(n, sizeof n, copied);
    fprintf(stderr, "\rmigrate: %s records copied", n);
}

static void
print_summary(const sluice_migrate_stats *st, const char *from,
              const char *to, bool json)
{
    const sluice_counts *c = &st->records;
    if (json) {
        yajl_gen g = cli_json_begin();
        yajl_gen_map_open(g);
        cli_json_member_str(g, "from", from);
        cli_json_member_str(g, "to", to);
        cli_json_uint(g, "records", c->total);
        cli_json_uint(g, "pending", c->pending);
        cli_json_uint(g, "retrying", c->retrying);
        cli_json_uint(g, "done", c->done);
        cli_json_uint(g, "dead", c->dead);
        cli_json_uint(g, "were_in_flight", st->in_flight);
        cli_json_uint(g, "settings", st->settings);
        yajl_gen_map_close(g);
        cli_json_end(g);
        return;
    }
    printf("migrated %llu records (%llu pending, %llu retrying, %llu done, "
           "%llu dead) and %u setting%s from %s to %s\n",
           (unsigned long long)c->total, (unsigned long long)c->pending,
           (unsigned long long)c->retrying, (unsigned long long)c->done,
           (unsigned long long)c->dead, st->settings,
           st->settings == 1 ? "" : "s", from, to);
    if (st->in_flight)
        printf("%u records a run that died left in flight are ready again\n",
               st->in_flight);
}

int
cmd_migrate(int argc, char **argv)
{
    const char *from = NULL, *to = NULL;
    bool json = false, quiet = false;
    cli_parser p;
    int c;
    cli_parse_begin(&p, &migrate_command, argc, argv, 1);
    while ((c = cli_next(&p)) != CLI_END) {
        switch (c) {
        case O_FROM:
            from = p.arg;
            break;
        case O_TO:
            to = p.arg;
            break;
        case O_JSON:
            json = true;
            break;
        case O_QUIET:
            quiet = true;
            break;
        case CLI_HELP:
            return EXIT_DONE;
        default:
            return EXIT_USAGE;
        }
    }
    if (p.optind < argc)
        return cli_usage("migrate", "unexpected argument '%s'",
                         argv[p.optind]);
    if (!from || !to)
        return cli_usage("migrate", "give both --from and --to");
    if (strcmp(from, to) == 0)
        return cli_usage("migrate", "--from and --to are the same queue");
    int rc;
    sluice_queue *src = cli_open_queue(from, SLUICE_QUEUE_READONLY, &rc);
    if (!src)
        return rc;
    sluice_queue *dst = cli_open_queue(to, 0, &rc);
    if (!dst) {
        sluice_queue_close(src);
        return rc;
    }
    bool progress = !quiet && isatty(STDERR_FILENO);
    sluice_migrate_stats st;
    char why[600];
    sluice_err err = sluice_migrate(src, dst, progress ? on_progress : NULL,
                                    NULL, &st, why, sizeof why);
    if (progress)
        fputc('\n', stderr);
    sluice_queue_close(dst);
    sluice_queue_close(src);
    if (err != SLUICE_OK) {
        cli_error("migrate: %s", why);
        return err == SLUICE_EINVAL ? EXIT_USAGE : EXIT_FAILED;
    }
    print_summary(&st, from, to, json);
    return EXIT_DONE;
}
