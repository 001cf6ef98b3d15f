/*
 * The sluice tool: dispatches to one subcommand per file (cmd_*.c), each
 * written on the public library API only.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage_text[] =
    "Usage: sluice COMMAND [OPTIONS]\n"
    "\n"
    "Move remote assets into object storage without ever sending an origin\n"
    "more simultaneous requests than it allows.\n"
    "\n"
    "Commands:\n"
    "  ingest   read feeds (JSON Lines, CSV, URL lines) into the queue\n"
    "  run      fetch pending records into a store, under the cap\n"
    "  status   show how many records are in each state\n"
    "  list     every record with its state and object: a table, JSON\n"
    "           Lines or CSV\n"
    "  dlq      list or replay dead-lettered records\n"
    "  slots    list the slots held per origin, or clear those a run that\n"
    "           is gone left held\n"
    "\n"
    "Every command takes --db FILE (default: $SLUICE_DB, else ./sluice.db)\n"
    "and --help. Exit codes: 0 success, 1 some input rejected or records\n"
    "dead-lettered, 2 usage error, 3 the work stopped (one-line reason on\n"
    "stderr).\n";

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
} command;

static const command commands[] = {
    {"ingest", cmd_ingest},
    {"run", cmd_run},
    {"status", cmd_status},
    {"list", cmd_list},
    {"dlq", cmd_dlq},
    {"slots", cmd_slots},
};

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 ||
        strcmp(name, "help") == 0) {
        if (strcmp(name, "help") == 0 && argc > 2) {
            for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
                if (strcmp(argv[2], commands[i].name) == 0) {
                    char *help_argv[] = {argv[2], "--help", NULL};
                    return commands[i].run(2, help_argv);
                }
            fprintf(stderr, "sluice: no such command '%s'\n", argv[2]);
            return EXIT_USAGE;
        }
        fputs(usage_text, stdout);
        return EXIT_DONE;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
        printf("sluice %s\n", sluice_version());
        return EXIT_DONE;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "sluice: no such command '%s'\n%s", name, usage_text);
    return EXIT_USAGE;
}
