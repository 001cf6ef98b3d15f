/*
 * The sluice tool: dispatches to one subcommand per file (cmd_*.c), each
 * written on the public library API only.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_doc.h"

static const cli_command *const commands[] = {
    &ingest_command,
    &run_command,
    &status_command,
    &list_command,
    &dlq_command,
    &slots_command,
    &migrate_command,
    &publish_command,
};

static const char program_description[] =
    "Move remote assets into object storage without ever sending an origin\n"
    "more simultaneous requests than it allows.\n";

static const char program_footer[] =
    "Every command takes --db FILE (default: $SLUICE_DB, else ./sluice.db)\n"
    "and --help. Exit codes: 0 success, 1 some input rejected or records\n"
    "dead-lettered, 2 usage error, 3 the work stopped (one-line reason on\n"
    "stderr).\n";

static const cli_term exit_codes[] = {
    {"0", "success"},
    {"1", "some input rejected (ingest), some records dead-lettered (run),\n"
          "some ids not dead (dlq replay), an origin given to slots clear\n"
          "holds nothing; the rest done"},
    {"2", "usage error (an unknown option, a bad value)"},
    {"3", "a failure stopped the work (a missing or unreadable file, not a\n"
          "sluice database, a read-only or locked database, a store that\n"
          "cannot be written or is full, another run on the database), with\n"
          "a one-line reason on stderr"},
    {"130, 143", "run stopped by SIGINT or SIGTERM; the queue is consistent:\n"
                 "run again to finish"},
};

static const cli_term environment[] = {
    {"SLUICE_DB", "the database when --db is not given"},
    {"SLUICE_BUSY_TIMEOUT_MS",
     "how long to wait for another process's lock on the database, in\n"
     "milliseconds, 1 to 3599999 (default 5000)"},
    {"AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN",
     "AWS credentials, for S3 (run --store s3://...) and Kinesis (ingest\n"
     "kinesis://STREAM, publish)"},
    {"AWS_REGION, AWS_DEFAULT_REGION",
     "the S3 region (default us-east-1); the Kinesis region (one is\n"
     "required: these, else the profile's)"},
    {"AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL",
     "an S3-compatible endpoint (--s3-endpoint wins)"},
    {"AWS_ENDPOINT_URL_KINESIS",
     "a Kinesis endpoint (ingest kinesis://STREAM, publish); else\n"
     "AWS_ENDPOINT_URL, else https://kinesis.REGION.amazonaws.com"},
    {"AWS_CA_BUNDLE",
     "a CA bundle for the S3 and Kinesis endpoints' certificates"},
    {"CURL_CA_BUNDLE, SSL_CERT_FILE",
     "a CA bundle for the origins' certificates when run --cacert is not\n"
     "given (in this order, as curl reads them)"},
    {"TMPDIR", "where S3 uploads wait (--spool wins; default /tmp)"},
};

static const cli_term files[] = {
    {"./sluice.db", "the queue database when neither --db nor SLUICE_DB\n"
                    "names one (SQLite, with its -wal and -shm files)"},
    {"DIR/.sluice-tmp/", "bodies being written into a directory store;\n"
                         "what a crashed run left is removed by the next"},
};

static const cli_program program = {
    .name = "sluice",
    .summary = "fetch remote assets into object storage, never more requests "
               "at once to an origin than it allows",
    .description = program_description,
    .footer = program_footer,
    .commands = commands,
    .n_commands = CLI_COUNT(commands),
    .exit_codes = exit_codes,
    .n_exit_codes = CLI_COUNT(exit_codes),
    .environment = environment,
    .n_environment = CLI_COUNT(environment),
    .files = files,
    .n_files = CLI_COUNT(files),
    .see_also = ".BR sqlite3 (1),\n.BR curl (1);\n"
                "the README and docs/ of sluice's source",
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
    /* Not in --help: what the build runs to make the installed files. */
    if (strcmp(name, "--man") == 0 && argc == 2) {
        cli_man_page(&program, stdout);
        return EXIT_DONE;
    }
    if (strcmp(name, "--list-options") == 0 && argc == 2) {
        cli_list_options(&program, stdout);
        return EXIT_DONE;
    }
    if (strcmp(name, "--completion") == 0 && argc == 3) {
        if (cli_completion(&program, argv[2], stdout) == 0)
            return EXIT_DONE;
        fprintf(stderr, "sluice: no completion for '%s' (bash)\n", argv[2]);
        return EXIT_USAGE;
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
