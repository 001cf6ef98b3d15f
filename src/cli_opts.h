/*
 * The command line as data: one table of options per command, with the
 * command's synopsis forms and prose beside it. getopt_long's array,
 * --help (cli_opts.c), the man page and the bash completion (cli_doc.c)
 * are all made from these tables, so they cannot drift apart.
 */
#ifndef SLUICE_CLI_OPTS_H
#define SLUICE_CLI_OPTS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* How a shell completes an option's value or a command's operands:
 * one of these, or the words it may be, separated by spaces. */
#define CLI_COMPLETE_FILE "@file"
#define CLI_COMPLETE_DIR  "@dir"

/* cli_opt.flags */
enum {
    CLI_REQUIRED = 1u << 0, /* must be given: no brackets in a synopsis */
    CLI_REPEAT = 1u << 1    /* may be given more than once: "[...]..." */
};

/*
 * One option of a command. Adding an option is one row in the command's
 * table and one `case` for its id in the command's switch.
 */
typedef struct {
    const char *name;     /* the long name without "--": "max-concurrency" */
    char short_name;      /* 'q' for -q, or 0 */
    int id;               /* what cli_next() returns for it: any value >= 0 */
    const char *arg;      /* the name of its argument, "N"; NULL: none */
    const char *help;     /* one paragraph, wrapped where it is printed */
    unsigned flags;       /* CLI_REQUIRED, CLI_REPEAT */
    unsigned forms;       /* bit i: it belongs to forms[i]; 0: to every form */
    int group;            /* neighbouring rows with the same non-zero group
                             are alternatives: [--a | --b] */
    const char *complete; /* how its value completes; NULL: not at all */
} cli_opt;

/* One line of a command's synopsis: a subcommand and its operands. */
typedef struct {
    const char *name;     /* the subcommand ("list"); NULL for none */
    const char *operands; /* after the options: "[FILE|-]..."; or NULL */
    const char *complete; /* how operands complete; NULL: not at all */
} cli_form;

/*
 * A command: its options, synopsis forms and prose. Prose is plain text
 * as --help prints it, lines within 80 columns; blank lines part
 * paragraphs, and "TERM  text" lines (two spaces or more) with their
 * indented continuations are a list (the man page makes one of them).
 */
typedef struct cli_command {
    const char *name;      /* "run" */
    const char *summary;   /* one line, for `sluice --help` */
    const cli_form *forms; /* at least one */
    size_t n_forms;
    const char *description; /* between the synopsis and the options */
    const char *epilogue;    /* after the options (exit status); or NULL */
    const cli_opt *opts;     /* -h, --help is added to every command */
    size_t n_opts;
    /* Operands may come between options (dlq: ids after --id); else
     * options end at the first operand. */
    bool permute;
    int (*run)(int argc, char **argv);
} cli_command;

#define CLI_COUNT(array) (sizeof(array) / sizeof *(array))

/* A term and what it means: an exit code, a variable, a file. */
typedef struct {
    const char *term;
    const char *text;
} cli_term;

/* The whole tool, for `sluice --help`, the man page and completion. */
typedef struct {
    const char *name;        /* "sluice" */
    const char *summary;     /* the man page's NAME line */
    const char *description; /* `sluice --help` before the commands */
    const char *footer;      /* and after them */
    const cli_command *const *commands;
    size_t n_commands;
    const cli_term *exit_codes;
    size_t n_exit_codes;
    const cli_term *environment;
    size_t n_environment;
    const cli_term *files;
    size_t n_files;
    const char *see_also; /* troff text */
} cli_program;

/* The most options a command may have. */
#define CLI_MAX_OPTS 48

/* What cli_next() returns besides an option's id. */
enum {
    CLI_END = -1,  /* no more options: operands start at p->optind */
    CLI_HELP = -2, /* --help: the help is printed; exit 0 */
    CLI_ERROR = -3 /* a usage error: the message is printed; exit 2 */
};

/* Reading a command line against a command's table. */
typedef struct {
    const cli_command *cmd;
    int argc;
    char **argv;
    int optind;         /* the next argument to read */
    const cli_opt *opt; /* the option cli_next() just returned */
    char *arg;          /* its argument; NULL for none */
    struct option longopts[CLI_MAX_OPTS + 2];
    char shortopts[2 * CLI_MAX_OPTS + 8];
} cli_parser;

/*
 * Start reading argv[first..argc) (argv[0] is the command's name) as
 * options of `cmd`. Uses getopt_long, whose state is global: one parser
 * at a time.
 */
void cli_parse_begin(cli_parser *p, const cli_command *cmd, int argc,
                     char **argv, int first);

/*
 * The id of the next option (p->opt and p->arg say which and its
 * argument), or CLI_END, CLI_HELP (the help is printed on stdout) or
 * CLI_ERROR (an unknown option: the message is printed on stderr).
 */
int cli_next(cli_parser *p);

/* "--max-concurrency": the long name of the option just read. */
const char *cli_opt_name(const cli_parser *p);

/*
 * The argument of the option just read, as a number within a range. On a
 * bad one each prints "sluice CMD: --OPT: VALUE: must be ..." with the
 * range allowed, and the hint to --help, and returns false (exit 2).
 */
/* A whole number from lo to hi. */
bool cli_arg_count(const cli_parser *p, unsigned long long lo,
                   unsigned long long hi, unsigned long long *out);

/* Seconds: "90", "1.5", "90s", "15m", "24h", "7d". From lo (or above it,
 * when `above`) to hi. */
bool cli_arg_seconds(const cli_parser *p, double lo, bool above, double hi,
                     double *out);

/* Bytes: "100", "64k", "100M", "2G" (powers of 1024; "KiB", "MB" too),
 * from lo to hi. */
bool cli_arg_bytes(const cli_parser *p, uint64_t lo, uint64_t hi,
                   uint64_t *out);

/* Print the command's help: synopsis, description, options, epilogue. */
void cli_help(const cli_command *cmd, FILE *out);

/* Print `sluice --help`. */
void cli_program_help(const cli_program *prog, FILE *out);

/* The command called `name`, or NULL. */
const cli_command *cli_find_command(const cli_program *prog, const char *name);

/*
 * The pieces of a synopsis, for the generators: the next element of form
 * `form` at or after row *i: one option, or a group of alternatives,
 * rows [*start, *start + n). Returns n (0 at the end of the table) and
 * moves *i past them; rows not in the form are skipped.
 */
size_t cli_next_element(const cli_command *cmd, size_t form, size_t *i,
                        size_t *start);

/* Whether option `o` belongs to form `form` of its command. */
bool cli_opt_in_form(const cli_opt *o, size_t form);

/*
 * The prefix of its help that says which forms an option belongs to,
 * "(list)", written to dst; "" when it belongs to all.
 */
void cli_opt_scope(const cli_command *cmd, const cli_opt *o, char *dst,
                   size_t size);

#endif /* SLUICE_CLI_OPTS_H */
