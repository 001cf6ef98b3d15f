/*
 * The man page (troff, man(7) macros) and the bash completion script,
 * both made from the option tables and prose of cli_opts.h, so neither
 * can drift from --help or from what the commands accept. The build runs
 * `sluice --man` and `sluice --completion bash` to make the installed
 * files (CMakeLists.txt).
 */
#include "cli_doc.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include "sluice/sluice.h"

/* ------------------------------------------------------------ troff */

static bool
is_boundary(char c)
{
    return c == '\0' || strchr(" \t\n([{|,'\"/=", c) != NULL;
}

/*
 * Write text for troff: backslashes made "\e", a '.' or '\'' that would
 * start a line guarded with "\&", and the hyphens of options ("--db",
 * "-q", "-") made "\-" so they render as the minus signs a shell needs,
 * in a word troff does not break; other hyphens ("link-local") stay
 * hyphens.
 */
static void
troff_text(FILE *out, const char *s, size_t n, bool *line_start)
{
    bool in_option = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i], prev = i ? s[i - 1] : '\0';
        if (*line_start && (c == '.' || c == '\''))
            fputs("\\&", out);
        *line_start = false;
        if (c == '-') {
            if (!in_option && is_boundary(prev)) {
                in_option = true;
                /* A word of its own: no hyphenation, no break in it. */
                if (prev == '\0' || isspace((unsigned char)prev))
                    fputs("\\%", out);
            }
            fputs(in_option ? "\\-" : "-", out);
            continue;
        }
        if (!isalnum((unsigned char)c))
            in_option = false;
        if (c == '\\')
            fputs("\\e", out);
        else
            fputc(c, out);
        if (c == '\n')
            *line_start = true;
    }
}

static void
troff_str(FILE *out, const char *s)
{
    bool line_start = false;
    troff_text(out, s, strlen(s), &line_start);
}

/* A line of text, on a line of its own. */
static void
troff_line(FILE *out, const char *s, size_t n)
{
    bool line_start = true;
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    troff_text(out, s, n, &line_start);
    fputc('\n', out);
}

/* An option's name in bold, its hyphens "\-": "\fB\-\-db\fR". */
static void
troff_opt_name(FILE *out, const char *dashes, const char *name)
{
    fputs("\\fB", out);
    for (const char *s = dashes; *s; s++)
        fputs("\\-", out);
    for (const char *s = name; *s; s++)
        if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
    fputs("\\fR", out);
}

/*
 * An option as the man page names it: "\fB\-q\fR, \fB\-\-quiet\fR" or
 * "\fB\-\-db\fR \fIFILE\fR". `sep` goes between the short and the long
 * name, `space` before the argument ("\ " in a synopsis, where it must
 * not break).
 */
static void
troff_opt(FILE *out, const cli_opt *o, const char *sep, const char *space)
{
    if (o->short_name) {
        char letter[2] = {o->short_name, '\0'};
        troff_opt_name(out, "-", letter);
        fputs(sep, out);
    }
    troff_opt_name(out, "--", o->name);
    if (o->arg) {
        fprintf(out, "%s\\fI", space);
        troff_str(out, o->arg);
        fputs("\\fR", out);
    }
}

/* "[FILE|-]...": the words in capitals in italics. */
static void
troff_operands(FILE *out, const char *s)
{
    bool line_start = false;
    fputs("\\%", out);
    while (*s) {
        size_t caps = 0;
        while (isupper((unsigned char)s[caps]))
            caps++;
        if (caps >= 2) {
            fputs("\\fI", out);
            troff_text(out, s, caps, &line_start);
            fputs("\\fR", out);
            s += caps;
        } else {
            troff_text(out, s, 1, &line_start);
            s++;
        }
    }
}

/* The length of the term of a "TERM  text" list line starting at `s`
 * (no spaces in it, two or more after it, text then); 0 if it is not
 * one. *text_col is the column where its text starts. */
static size_t
list_term(const char *s, size_t n, size_t *text_col)
{
    size_t i = 0, term;
    while (i < n && s[i] == ' ')
        i++;
    if (i > 2 || i == n)
        return 0;
    size_t start = i;
    while (i < n && s[i] != ' ')
        i++;
    term = i - start;
    size_t gap = i;
    while (i < n && s[i] == ' ')
        i++;
    if (i - gap < 2 || i == n)
        return 0;
    *text_col = i;
    return term;
}

/*
 * Prose as --help prints it, as man page paragraphs: blank lines part
 * paragraphs; "TERM  text" lines with their indented continuations make
 * a tagged list (.TP); the rest is filled text.
 */
static void
troff_prose(FILE *out, const char *text)
{
    const char *s = text;
    bool in_list = false, para = true;
    size_t text_col = 0;

    while (*s) {
        size_t n = strcspn(s, "\n");
        size_t col, term = list_term(s, n, &col);
        size_t indent = strspn(s, " ");
        if (n == 0) {
            para = true;
        } else if (term) {
            const char *t = s + strspn(s, " ");
            fputs(".TP\n\\fB", out);
            bool line_start = false;
            troff_text(out, t, term, &line_start);
            fputs("\\fR\n", out);
            troff_line(out, s + col, n - col);
            in_list = true;
            text_col = col;
            para = false;
        } else if (in_list && !para && indent >= text_col) {
            troff_line(out, s, n);
        } else {
            if (para || in_list)
                fputs(".PP\n", out);
            troff_line(out, s, n);
            in_list = false;
            para = false;
        }
        s += n;
        if (*s == '\n')
            s++;
    }
}

/* One synopsis line: .SY "sluice dlq list" and an element a line. */
static void
troff_synopsis(FILE *out, const cli_command *cmd, size_t form)
{
    const cli_form *f = &cmd->forms[form];
    size_t i = 0, start, n;

    fprintf(out, ".SY \"sluice %s%s%s\"\n", cmd->name, f->name ? " " : "",
            f->name ? f->name : "");
    while ((n = cli_next_element(cmd, form, &i, &start)) > 0) {
        const cli_opt *first = &cmd->opts[start];
        bool required = first->flags & CLI_REQUIRED;
        bool brackets = !required || n > 1;
        fputs("\\%", out); /* one word: no hyphenation, no break */
        if (brackets)
            fputs(required ? "(" : "[", out);
        for (size_t k = 0; k < n; k++) {
            if (k)
                fputs("\\ |\\ ", out);
            troff_opt(out, &cmd->opts[start + k], "|", "\\ ");
        }
        if (brackets)
            fputs(required ? ")" : "]", out);
        if (n == 1 && (first->flags & CLI_REPEAT))
            fputs("...\\&", out); /* "\&": not the end of a sentence */
        fputc('\n', out);
    }
    if (f->operands) {
        troff_operands(out, f->operands);
        fputc('\n', out);
    }
    fputs(".YS\n", out);
}

static void
troff_terms(FILE *out, const cli_term *terms, size_t n, bool code)
{
    for (size_t i = 0; i < n; i++) {
        fputs(".TP\n", out);
        fputs(code ? "\\fB" : "\\fI", out);
        troff_str(out, terms[i].term);
        fputs("\\fR\n", out);
        troff_line(out, terms[i].text, strlen(terms[i].text));
    }
}

static void
troff_upper(FILE *out, const char *s)
{
    for (; *s; s++)
        fputc(toupper((unsigned char)*s), out);
}

void
cli_man_page(const cli_program *prog, FILE *out)
{
    static const cli_opt help = {"help", 'h', 'h', NULL, "show this help",
                                 0,      0,   0,   NULL};

    fprintf(out,
            ".\\\" The manual of %s, made by `%s --man` from the option\n"
            ".\\\" tables in src/ (cli_opts.h): do not edit.\n",
            prog->name, prog->name);
    fputs(".TH ", out);
    troff_upper(out, prog->name);
    fprintf(out, " 1 \"\" \"%s %s\" \"User Commands\"\n", prog->name,
            sluice_version());
    fprintf(out, ".SH NAME\n%s \\- ", prog->name);
    troff_str(out, prog->summary);
    fputs("\n.SH SYNOPSIS\n", out);
    for (size_t c = 0; c < prog->n_commands; c++)
        for (size_t f = 0; f < prog->commands[c]->n_forms; f++)
            troff_synopsis(out, prog->commands[c], f);
    fprintf(out,
            ".SY %s\n\\fBhelp\\fR [\\fICOMMAND\\fR]\n.YS\n"
            ".SY %s\n\\fB\\-\\-help\\fR\\ |\\ \\fB\\-\\-version\\fR\n.YS\n",
            prog->name, prog->name);

    fputs(".SH DESCRIPTION\n", out);
    troff_prose(out, prog->description);
    troff_prose(out, "\n");
    troff_prose(out, prog->footer);

    fputs(".SH COMMANDS\n", out);
    for (size_t c = 0; c < prog->n_commands; c++) {
        const cli_command *cmd = prog->commands[c];
        fprintf(out, ".SS \"%s %s\"\n", prog->name, cmd->name);
        troff_prose(out, cmd->summary);
        fputs(".PP\n", out);
        troff_prose(out, cmd->description);
        fputs(".PP\nOptions:\n", out);
        for (size_t i = 0; i <= cmd->n_opts; i++) {
            const cli_opt *o = i < cmd->n_opts ? &cmd->opts[i] : &help;
            char scope[64];
            cli_opt_scope(cmd, o, scope, sizeof scope);
            fputs(".TP\n\\%", out);
            troff_opt(out, o, ", \\%", " ");
            fputc('\n', out);
            if (scope[0])
                fprintf(out, "%s ", scope);
            troff_str(out, o->help);
            fputc('\n', out);
        }
        if (cmd->epilogue) {
            fputs(".PP\n", out);
            troff_prose(out, cmd->epilogue);
        }
    }

    fputs(".SH \"EXIT STATUS\"\n", out);
    troff_terms(out, prog->exit_codes, prog->n_exit_codes, true);
    fputs(".SH ENVIRONMENT\n", out);
    troff_terms(out, prog->environment, prog->n_environment, true);
    fputs(".SH FILES\n", out);
    troff_terms(out, prog->files, prog->n_files, false);
    fprintf(out, ".SH \"SEE ALSO\"\n%s\n", prog->see_also);
}

/* ------------------------------------------------------------ bash */

/* The options of form `form` of a command (SIZE_MAX: of any), as
 * completion words. */
static void
bash_option_words(FILE *out, const cli_command *cmd, size_t form)
{
    for (size_t i = 0; i < cmd->n_opts; i++) {
        const cli_opt *o = &cmd->opts[i];
        bool in = form != SIZE_MAX && cli_opt_in_form(o, form);
        for (size_t f = 0; form == SIZE_MAX && f < cmd->n_forms; f++)
            in = in || cli_opt_in_form(o, f);
        if (!in)
            continue;
        if (o->short_name)
            fprintf(out, "-%c ", o->short_name);
        fprintf(out, "--%s ", o->name);
    }
    fputs("-h --help", out);
}

/* The shell code that completes a value or an operand. */
static void
bash_complete(FILE *out, const char *how)
{
    if (!how)
        fputs("return 0", out);
    else if (strcmp(how, CLI_COMPLETE_FILE) == 0)
        fputs("_sluice_files -f; return 0", out);
    else if (strcmp(how, CLI_COMPLETE_DIR) == 0)
        fputs("_sluice_files -d; return 0", out);
    else
        fprintf(out, "_sluice_words \"%s\"; return 0", how);
}

/* The values of the options of a command that take one. */
static void
bash_values(FILE *out, const cli_command *cmd)
{
    bool any = false;
    for (size_t i = 0; i < cmd->n_opts; i++) {
        const cli_opt *o = &cmd->opts[i];
        if (!o->arg)
            continue;
        if (!any)
            fputs("        case $prev in\n", out);
        any = true;
        fprintf(out, "        --%s", o->name);
        if (o->short_name)
            fprintf(out, "|-%c", o->short_name);
        fputs(") ", out);
        bash_complete(out, o->complete);
        fputs(" ;;\n", out);
    }
    if (any)
        fputs("        esac\n", out);
}

static void
bash_command(FILE *out, const cli_command *cmd)
{
    bool subs = cmd->forms[0].name != NULL;

    fprintf(out, "    %s)\n", cmd->name);
    if (subs) {
        fputs("        if ((COMP_CWORD == 2)); then\n"
              "            _sluice_words \"",
              out);
        for (size_t f = 0; f < cmd->n_forms; f++)
            fprintf(out, "%s ", cmd->forms[f].name);
        fputs("-h --help\"\n            return 0\n        fi\n", out);
    }
    bash_values(out, cmd);
    fputs("        case $sub in\n", out);
    /* Forms without a subcommand name (ingest FILE..., ingest
     * kinesis://STREAM) share one case: every option of any of them,
     * and the first form's operands. */
    for (size_t f = 0; f < (subs ? cmd->n_forms : 1); f++) {
        const cli_form *form = &cmd->forms[f];
        fprintf(out, "        %s)\n", subs ? form->name : "*");
        fputs("            if [[ $cur == -* ]]; then\n"
              "                _sluice_words \"",
              out);
        bash_option_words(out, cmd, subs ? f : SIZE_MAX);
        fputs("\"\n            else\n                ", out);
        bash_complete(out, form->complete);
        fputs("\n            fi\n            ;;\n", out);
    }
    fputs("        esac\n        ;;\n", out);
}

static void
bash_completion(const cli_program *prog, FILE *out)
{
    fprintf(out,
            "# bash completion for %s, made by `%s --completion bash` from\n"
            "# the option tables in src/ (cli_opts.h): do not edit.\n"
            "\n"
            "_sluice_words()\n"
            "{\n"
            "    local IFS=$' \\t\\n'\n"
            "    COMPREPLY=($(compgen -W \"$1\" -- \"$cur\"))\n"
            "}\n"
            "\n"
            "# _sluice_files -f|-d: file or directory names.\n"
            "_sluice_files()\n"
            "{\n"
            "    local IFS=$'\\n'\n"
            "    compopt -o filenames 2>/dev/null\n"
            "    COMPREPLY=($(compgen \"$1\" -- \"$cur\"))\n"
            "}\n"
            "\n"
            "_sluice()\n"
            "{\n"
            "    local cur=${COMP_WORDS[COMP_CWORD]} prev= cmd= sub=\n"
            "    COMPREPLY=()\n"
            "    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}\n"
            "    ((COMP_CWORD > 1)) && cmd=${COMP_WORDS[1]}\n"
            "    ((COMP_CWORD > 2)) && sub=${COMP_WORDS[2]}\n"
            "    # --opt=value: bash splits it at the '='.\n"
            "    if [[ $cur == = ]]; then\n"
            "        cur=\n"
            "    elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then\n"
            "        prev=${COMP_WORDS[COMP_CWORD - 2]}\n"
            "    fi\n"
            "    if ((COMP_CWORD == 1)); then\n"
            "        _sluice_words \"",
            prog->name, prog->name);
    for (size_t c = 0; c < prog->n_commands; c++)
        fprintf(out, "%s ", prog->commands[c]->name);
    fputs("help -h --help -V --version\"\n"
          "        return 0\n"
          "    fi\n"
          "    case $cmd in\n"
          "    help)\n"
          "        ((COMP_CWORD == 2)) && _sluice_words \"",
          out);
    for (size_t c = 0; c < prog->n_commands; c++)
        fprintf(out, "%s%s", c ? " " : "", prog->commands[c]->name);
    fputs("\"\n        ;;\n", out);
    for (size_t c = 0; c < prog->n_commands; c++)
        bash_command(out, prog->commands[c]);
    fprintf(out,
            "    esac\n"
            "    return 0\n"
            "}\n"
            "complete -F _sluice %s\n",
            prog->name);
}

void
cli_list_options(const cli_program *prog, FILE *out)
{
    for (size_t c = 0; c < prog->n_commands; c++) {
        const cli_command *cmd = prog->commands[c];
        for (size_t f = 0; f < cmd->n_forms; f++) {
            const char *form = cmd->forms[f].name;
            for (size_t i = 0; i < cmd->n_opts; i++) {
                const cli_opt *o = &cmd->opts[i];
                if (!cli_opt_in_form(o, f))
                    continue;
                fprintf(out, "%s\t%s\t--%s\t%s%c\t%s\n", cmd->name,
                        form ? form : "-", o->name, o->short_name ? "-" : "",
                        o->short_name ? o->short_name : '-',
                        o->arg ? o->arg : "-");
            }
        }
    }
}

int
cli_completion(const cli_program *prog, const char *shell, FILE *out)
{
    if (!shell || strcmp(shell, "bash") != 0)
        return -1;
    bash_completion(prog, out);
    return 0;
}
