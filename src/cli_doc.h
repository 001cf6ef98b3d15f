/*
 * The documents made from the command tables (cli_opts.h): the man page
 * and the shell completion. `sluice --man` and `sluice --completion bash`
 * print them; the build installs what they print.
 */
#ifndef SLUICE_CLI_DOC_H
#define SLUICE_CLI_DOC_H

#include <stdio.h>

#include "cli_opts.h"

/* Print the man page, section 1, in troff with man(7) macros. */
void cli_man_page(const cli_program *prog, FILE *out);

/* Print the completion script for `shell` ("bash"); -1 for a shell
 * there is none for. */
int cli_completion(const cli_program *prog, const char *shell, FILE *out);

/*
 * Print every option of every command form, one a line, for the tests
 * that hold --help, the man page and the completion to the tables:
 * "COMMAND<TAB>FORM<TAB>--LONG<TAB>-S<TAB>ARG", "-" for no form, no short
 * name, no argument.
 */
void cli_list_options(const cli_program *prog, FILE *out);

#endif /* SLUICE_CLI_DOC_H */
