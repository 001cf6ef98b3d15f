/*
 * The sluice tool: dispatches to one subcommand per file (cmd_*.c), each
 * written on the public library API only.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const cli_command *const commands[] = {
    &ingest_command,
    &run_command,
    &status_command,
    &dlq_command,
    &slots_command,
};

static const char program_description[] =
    "Move remote assets into object storage without ever sending an origin\n"
    "more simultaneous requests than it allows.\n";

static const char program_footer[] =
    "Every command takes --db FILE (default: $SLUICE_DB, else ./sluice.db)\n"
    "and --help. Exit codes: 0 success, 1 some input rejected or records\n"
    "dead-lettered, 2 usage error, 3 the work stopped (one-line reason on\n"
    "stderr).\n";

static const cli_program program = {
    .name = "sluice",
    .description = program_description,
    .footer = program_footer,
    .commands = commands,
    .n_commands = CLI_COUNT(commands),
};

int
main(int argc, char **argv)
{
    if (argc < 2) {
        cli_program_help(&program, stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 ||
        strcmp(name, "help") == 0) {
        if (strcmp(name, "help") == 0 && argc > 2) {
            const cli_command *cmd = cli_find_command(&program, argv[2]);
            if (cmd) {
                cli_help(cmd, stdout);
                return EXIT_DONE;
            }
            fprintf(stderr, "sluice: no such command '%s'\n", argv[2]);
            return EXIT_USAGE;
        }
        cli_program_help(&program, stdout);
        return EXIT_DONE;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
        printf("sluice %s\n", sluice_version());
        return EXIT_DONE;
    }
    const cli_command *cmd = cli_find_command(&program, name);
    if (cmd)
        return cmd->run(argc - 1, argv + 1);
    fprintf(stderr, "sluice: no such command '%s'\n", name);
    cli_program_help(&program, stderr);
    return EXIT_USAGE;
}
