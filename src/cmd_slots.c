/*
 * `sluice slots list` and `sluice slots clear`: the slots a queue holds
 * per origin (DESIGN.md, "Slots"), and freeing those a run that is gone
 * left held, for an operator who knows the origin is idle.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

enum { O_DB, O_JSON, O_ORIGIN, O_YES };

/* The forms: bit 0 list, bit 1 clear. */
enum { F_LIST = 1u << 0, F_CLEAR = 1u << 1 };

static const cli_opt slots_opts[] = {
    CLI_OPT_DB(O_DB),
    {.name = "json", .id = O_JSON, .forms = F_LIST,
     .help = "one JSON object {\"run\": ..., \"slots\": [...]}"},
    {.name = "origin", .id = O_ORIGIN, .arg = "ORIGIN", .forms = F_CLEAR,
     .flags = CLI_REPEAT,
     .help = "only this origin, as listed (scheme://host:port); "
             "repeatable"},
    {.name = "yes", .id = O_YES, .forms = F_CLEAR, .help = "do not ask"},
};

static const cli_form slots_forms[] = {
    {"list", NULL, NULL},
    {"clear", NULL, NULL},
};

static const char slots_description[] =
    "A request to an origin holds one of its --max-concurrency slots, kept\n"
    "with the queue. A request the run gave up on (a timeout, a stall, a\n"
    "stop past --grace) and the requests of a run that crashed keep their\n"
    "slots until --timeout after they were sent, since the origin may still\n"
    "be at work on them: a run started meanwhile uses only the others.\n"
    "\n"
    "list   every origin with slots held or a Retry-After pause: how many,\n"
    "       until when, and by whom\n"
    "clear  free the slots and pauses of the origins given (default: all),\n"
    "       when you know the origin is idle. It names what it clears and\n"
    "       asks first; --yes does not ask (needed when not on a terminal).\n"
    "       Refused while a run uses the queue.\n";

static const char slots_epilogue[] =
    "Exit status: 0 success, 1 an origin given to clear holds nothing,\n"
    "2 usage error (or clear refused without --yes off a terminal), 3 the\n"
    "work stopped (a run is using the queue, a database error).\n";

const cli_command slots_command = {
    .name = "slots",
    .summary = "list the slots held per origin, or clear those a run that "
               "is gone left held",
    .forms = slots_forms,
    .n_forms = CLI_COUNT(slots_forms),
    .description = slots_description,
    .epilogue = slots_epilogue,
    .opts = slots_opts,
    .n_opts = CLI_COUNT(slots_opts),
    .run = cmd_slots,
};

static int
slots_list(sluice_queue *q, bool json)
{
    slots_view v;
    sluice_err err = slots_view_load(&v, q);
    if (err != SLUICE_OK) {
        cli_error("%s", sluice_queue_errmsg(q));
        return cli_exit_for(err);
    }
    if (json) {
        yajl_gen g = cli_json_begin();
        yajl_gen_map_open(g);
        cli_json_member_str(g, "run", v.live ? "running" : "none");
        slots_view_json(&v, g);
        yajl_gen_map_close(g);
        cli_json_end(g);
    } else if (v.n == 0) {
        printf("no slots held, no origin paused\n");
    } else {
        slots_view_print(&v, stdout);
    }
    slots_view_free(&v);
    return EXIT_DONE;
}

static bool
named(const char *origin, char **origins, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(origins[i], origin) == 0)
            return true;
    return n == 0;
}

/* Ask on the terminal; true for yes. */
static bool
confirm(void)
{
    char answer[16] = "";
    fputs("Clear them? [y/N] ", stderr);
    fflush(stderr);
    if (!fgets(answer, sizeof answer, stdin))
        return false;
    return answer[0] == 'y' || answer[0] == 'Y';
}

static int
slots_clear(sluice_queue *q, char **origins, size_t n_origins, bool yes)
{
    slots_view v;
    sluice_err err = slots_view_load(&v, q);
    if (err != SLUICE_OK) {
        cli_error("%s", sluice_queue_errmsg(q));
        return cli_exit_for(err);
    }
    if (v.live) {
        cli_error("a sluice run is using this queue: its slots are live "
                  "(stop it first)");
        slots_view_free(&v);
        return EXIT_FAILED;
    }
    slots_view chosen = v;
    size_t n = 0;
    for (size_t i = 0; i < v.n; i++)
        if (named(v.items[i].origin, origins, n_origins))
            v.items[n++] = v.items[i];
    chosen.n = n;
    int rc = EXIT_DONE;
    for (size_t i = 0; i < n_origins; i++) {
        bool found = false;
        for (size_t k = 0; k < n; k++)
            found |= strcmp(v.items[k].origin, origins[i]) == 0;
        if (!found) {
            cli_error("%s: no slots held and no pause", origins[i]);
            rc = EXIT_PARTIAL;
        }
    }
    if (n == 0) {
        if (n_origins == 0)
            printf("no slots held, no origin paused: nothing to clear\n");
        slots_view_free(&v);
        return rc;
    }
    fprintf(stderr, "This frees, as if their requests had ended:\n");
    slots_view_print(&chosen, stderr);
    if (!yes) {
        if (!isatty(STDIN_FILENO)) {
            cli_error("slots clear: not on a terminal: give --yes to clear "
                      "without asking");
            slots_view_free(&v);
            return EXIT_USAGE;
        }
        if (!confirm()) {
            fprintf(stderr, "nothing cleared\n");
            slots_view_free(&v);
            return rc;
        }
    }
    uint64_t cleared = 0, total = 0;
    for (size_t i = 0; i < n && err == SLUICE_OK; i++) {
        err = sluice_slots_clear(q, v.items[i].origin, &cleared);
        total += cleared;
    }
    /* The origins live in the view: free it last. */
    slots_view_free(&v);
    if (err != SLUICE_OK) {
        cli_error("%s", sluice_queue_errmsg(q));
        return cli_exit_for(err);
    }
    printf("cleared %llu origin%s\n", (unsigned long long)total,
           total == 1 ? "" : "s");
    return rc;
}

int
cmd_slots(int argc, char **argv)
{
    const char *db_opt = NULL;
    bool json = false, yes = false;
    char **origins = calloc((size_t)argc + 1, sizeof *origins);
    size_t n_origins = 0;
    cli_parser p;
    int c;
    if (!origins) {
        cli_error("out of memory");
        return EXIT_FAILED;
    }
    if (argc < 2 || argv[1][0] == '-') {
        bool help = argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
                                  strcmp(argv[1], "-h") == 0);
        free(origins);
        if (help) {
            cli_help(&slots_command, stdout);
            return EXIT_DONE;
        }
        return cli_usage("slots", "say list or clear");
    }
    const char *what = argv[1];
    bool list = strcmp(what, "list") == 0;
    if (!list && strcmp(what, "clear") != 0) {
        free(origins);
        return cli_usage("slots", "unknown subcommand '%s' (list, clear)",
                         what);
    }
    cli_parse_begin(&p, &slots_command, argc, argv, 2);
    while ((c = cli_next(&p)) != CLI_END) {
        switch (c) {
        case O_DB:
            db_opt = p.arg;
            break;
        case O_JSON:
            json = true;
            break;
        case O_ORIGIN:
            origins[n_origins++] = p.arg;
            break;
        case O_YES:
            yes = true;
            break;
        case CLI_HELP:
            free(origins);
            return EXIT_DONE;
        default:
            free(origins);
            return EXIT_USAGE;
        }
    }
    if (p.optind < argc || (list && (n_origins || yes)) || (!list && json)) {
        free(origins);
        return cli_usage(
            "slots", p.optind < argc ? "unexpected argument" : "%s takes no %s",
            what, list ? "--origin or --yes" : "--json");
    }
    int rc;
    sluice_queue *q = cli_open_queue(
        cli_db_path(db_opt),
        list ? SLUICE_QUEUE_READONLY : SLUICE_QUEUE_NOCREATE, &rc);
    if (q) {
        rc = list ? slots_list(q, json)
                  : slots_clear(q, origins, n_origins, yes);
        sluice_queue_close(q);
    }
    free(origins);
    return rc;
}
