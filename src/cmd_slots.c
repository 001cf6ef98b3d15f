/*
 * `sluice slots list` and `sluice slots clear`: the slots a queue holds
 * per origin (DESIGN.md, "Slots"), and freeing those a run that is gone
 * left held, for an operator who knows the origin is idle.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char help_text[] =
    "Usage: sluice slots list  [--db FILE] [--json]\n"
    "       sluice slots clear [--db FILE] [--origin ORIGIN]... [--yes]\n"
    "\n"
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
    "       Refused while a run uses the queue.\n"
    "\n"
    "Options:\n"
    "  --db FILE        queue database (default: $SLUICE_DB, else\n"
    "                   ./sluice.db)\n"
    "  --json           (list) one JSON object {\"run\": ..., \"slots\": "
    "[...]}\n"
    "  --origin ORIGIN  (clear) only this origin, as listed\n"
    "                   (scheme://host:port); repeatable\n"
    "  --yes            (clear) do not ask\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 success, 1 an origin given to clear holds nothing,\n"
    "2 usage error (or clear refused without --yes off a terminal), 3 the\n"
    "work stopped (a run is using the queue, a database error).\n";

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
        cli_json_key(g, "run");
        cli_json_str(g, v.live ? "running" : "none");
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
    static const struct option longopts[] = {
        {"db", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},
        {"origin", required_argument, NULL, 'o'},
        {"yes", no_argument, NULL, 'y'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db_opt = NULL;
    bool json = false, yes = false;
    char **origins = calloc((size_t)argc + 1, sizeof *origins);
    size_t n_origins = 0;
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
            fputs(help_text, stdout);
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
    optind = 2;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            db_opt = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'o':
            origins[n_origins++] = optarg;
            break;
        case 'y':
            yes = true;
            break;
        case 'h':
            fputs(help_text, stdout);
            free(origins);
            return EXIT_DONE;
        default:
            free(origins);
            return cli_usage("slots", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc || (list && (n_origins || yes)) || (!list && json)) {
        free(origins);
        return cli_usage(
            "slots", optind < argc ? "unexpected argument" : "%s takes no %s",
            what, list ? "--origin or --yes" : "--json");
    }
    sluice_queue *q =
        cli_open_queue(cli_db_path(db_opt),
                       list ? SLUICE_QUEUE_READONLY : SLUICE_QUEUE_NOCREATE);
    int rc = EXIT_FAILED;
    if (q) {
        rc = list ? slots_list(q, json)
                  : slots_clear(q, origins, n_origins, yes);
        sluice_queue_close(q);
    }
    free(origins);
    return rc;
}
