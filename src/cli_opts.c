/*
 * Reading a command line against a command's option table (cli_opts.h)
 * and printing the command's --help from the same table: the synopsis
 * lists every option, the Options section describes each.
 */
#include "cli_opts.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* getopt_long's value for row i of a table without a short name. */
#define ROW_VAL(i) (256 + (int)(i))

/* Columns of --help's text. */
#define HELP_WIDTH   79
#define HELP_MAX_COL 25

void
cli_parse_begin(cli_parser *p, const cli_command *cmd, int argc, char **argv,
                int first)
{
    size_t n = 0, k = 0;

    assert(cmd->n_opts <= CLI_MAX_OPTS);
    memset(p, 0, sizeof *p);
    p->cmd = cmd;
    p->argc = argc;
    p->argv = argv;
    p->optind = first;
    if (!cmd->permute)
        p->shortopts[k++] = '+';
    p->shortopts[k++] = ':'; /* ':' for a missing argument */
    for (size_t i = 0; i < cmd->n_opts; i++) {
        const cli_opt *o = &cmd->opts[i];
        assert(o->short_name != 'h');
        p->longopts[n].name = o->name;
        p->longopts[n].has_arg = o->arg ? required_argument : no_argument;
        p->longopts[n].flag = NULL;
        p->longopts[n].val = o->short_name ? o->short_name : ROW_VAL(i);
        n++;
        if (o->short_name) {
            p->shortopts[k++] = o->short_name;
            if (o->arg)
                p->shortopts[k++] = ':';
        }
    }
    p->longopts[n].name = "help";
    p->longopts[n].has_arg = no_argument;
    p->longopts[n].val = 'h';
    p->shortopts[k++] = 'h';
    p->shortopts[k] = '\0';
}

int
cli_next(cli_parser *p)
{
    const cli_command *cmd = p->cmd;

    optind = p->optind;
    opterr = 0;
    int c = getopt_long(p->argc, p->argv, p->shortopts, p->longopts, NULL);
    p->optind = optind;
    p->opt = NULL;
    p->arg = NULL;
    if (c == -1)
        return CLI_END;
    if (c == 'h') {
        cli_help(cmd, stdout);
        return CLI_HELP;
    }
    const cli_opt *o = NULL;
    int val = c == ':' ? optopt : c;
    if (val >= ROW_VAL(0) && val < ROW_VAL(cmd->n_opts)) {
        o = &cmd->opts[val - ROW_VAL(0)];
    } else {
        for (size_t i = 0; i < cmd->n_opts && val != '?'; i++)
            if (cmd->opts[i].short_name == val)
                o = &cmd->opts[i];
    }
    if (!o || c == '?') {
        cli_usage(cmd->name, "unknown option '%s'", p->argv[optind - 1]);
        return CLI_ERROR;
    }
    if (c == ':') {
        cli_usage(cmd->name, "option '%s' needs an argument (%s)",
                  p->argv[optind - 1], o->arg);
        return CLI_ERROR;
    }
    p->opt = o;
    p->arg = p->opt->arg ? optarg : NULL;
    return p->opt->id;
}

const char *
cli_opt_name(const cli_parser *p)
{
    static char name[64];
    snprintf(name, sizeof name, "--%s", p->opt ? p->opt->name : "?");
    return name;
}

/* "sluice CMD: --OPT: VALUE: must be " + the rest. */
static bool bad_arg(const cli_parser *p, const char *fmt, ...) CLI_PRINTF(2, 3);

static bool
bad_arg(const cli_parser *p, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    cli_usage(p->cmd->name, "%s: %s: must be %s", cli_opt_name(p), p->arg, why);
    return false;
}

bool
cli_arg_count(const cli_parser *p, unsigned long long lo, unsigned long long hi,
              unsigned long long *out)
{
    const char *text = p->arg;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    bool number = isdigit((unsigned char)*text) && !*end && !errno;
    if (number && v >= lo && v <= hi) {
        *out = v;
        return true;
    }
    char range[64];
    if (lo == 0)
        snprintf(range, sizeof range, "at most %llu", hi);
    else
        snprintf(range, sizeof range, "at least %llu, at most %llu", lo, hi);
    return bad_arg(p, "%s%s", number ? "" : "a whole number, ", range);
}

/* "90", "90s", "15m", "24h", "7d" -> seconds; false if not one. */
static bool
parse_seconds(const char *text, double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || v < 0 || !isfinite(v))
        return false;
    double mult = 1;
    if (*end) {
        switch (*end) {
        case 's':
            break;
        case 'm':
            mult = 60;
            break;
        case 'h':
            mult = 3600;
            break;
        case 'd':
            mult = 86400;
            break;
        default:
            return false;
        }
        end++;
    }
    if (*end)
        return false;
    *out = v * mult;
    return true;
}

/* "31536000" as "365d", "90" as "90": a number of seconds, short. */
static void
format_seconds(char *dst, size_t size, double secs)
{
    if (secs >= 86400 && fmod(secs, 86400) == 0)
        snprintf(dst, size, "%.0fd", secs / 86400);
    else
        snprintf(dst, size, "%g", secs);
}

bool
cli_arg_seconds(const cli_parser *p, double lo, bool above, double hi,
                double *out)
{
    double v;
    if (parse_seconds(p->arg, &v) && (above ? v > lo : v >= lo) && v <= hi) {
        *out = v;
        return true;
    }
    char low[32], high[32], lower[48];
    format_seconds(low, sizeof low, lo);
    format_seconds(high, sizeof high, hi);
    if (above)
        snprintf(lower, sizeof lower, " above %s", low);
    else if (lo == 0)
        snprintf(lower, sizeof lower, ", 0 or more");
    else
        snprintf(lower, sizeof lower, ", at least %s", low);
    return bad_arg(p,
                   "a number of seconds%s, at most %s (or with a unit: 90s, "
                   "15m, 24h, 7d)",
                   lower, high);
}

/* "100", "64k", "100M", "2G" -> bytes; false if not one. */
static bool
parse_bytes(const char *text, double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || v < 0 || !isfinite(v))
        return false;
    double mult = 1;
    if (*end) {
        switch (tolower((unsigned char)*end)) {
        case 'k':
            mult = 1024.0;
            break;
        case 'm':
            mult = 1024.0 * 1024;
            break;
        case 'g':
            mult = 1024.0 * 1024 * 1024;
            break;
        default:
            return false;
        }
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
    }
    if (*end)
        return false;
    *out = v * mult;
    return true;
}

/* 104857600 as "100M": a size, short. */
static void
format_bytes(char *dst, size_t size, uint64_t n)
{
    static const char units[] = "kMG";
    int u = -1;
    while (u < 2 && n >= 1024 && n % 1024 == 0) {
        n /= 1024;
        u++;
    }
    if (u < 0)
        snprintf(dst, size, "%llu", (unsigned long long)n);
    else
        snprintf(dst, size, "%llu%c", (unsigned long long)n, units[u]);
}

bool
cli_arg_bytes(const cli_parser *p, uint64_t lo, uint64_t hi, uint64_t *out)
{
    double v;
    if (parse_bytes(p->arg, &v) && v >= (double)lo && v <= (double)hi) {
        *out = (uint64_t)v;
        return true;
    }
    char low[32], high[32];
    format_bytes(low, sizeof low, lo);
    format_bytes(high, sizeof high, hi);
    return bad_arg(p,
                   "a size in bytes, at least %s, at most %s (or with a "
                   "unit: 500k, 100M, 2G)",
                   low, high);
}

const cli_command *
cli_find_command(const cli_program *prog, const char *name)
{
    for (size_t i = 0; i < prog->n_commands; i++)
        if (strcmp(prog->commands[i]->name, name) == 0)
            return prog->commands[i];
    return NULL;
}

bool
cli_opt_in_form(const cli_opt *o, size_t form)
{
    return o->forms == 0 || (o->forms & (1u << form));
}

size_t
cli_next_element(const cli_command *cmd, size_t form, size_t *i, size_t *start)
{
    while (*i < cmd->n_opts && !cli_opt_in_form(&cmd->opts[*i], form))
        (*i)++;
    if (*i == cmd->n_opts)
        return 0;
    *start = *i;
    int group = cmd->opts[*i].group;
    size_t n = 1;
    (*i)++;
    while (group && *i < cmd->n_opts && cmd->opts[*i].group == group &&
           cli_opt_in_form(&cmd->opts[*i], form)) {
        (*i)++;
        n++;
    }
    return n;
}

void
cli_opt_scope(const cli_command *cmd, const cli_opt *o, char *dst, size_t size)
{
    size_t len = 0;

    dst[0] = '\0';
    /* Forms without names (ingest's feeds and its stream) are told
     * apart by their synopses, not by a scope. */
    if (o->forms == 0 || cmd->n_forms < 2 || !cmd->forms[0].name)
        return;
    for (size_t f = 0; f < cmd->n_forms && len < size; f++) {
        if (!(o->forms & (1u << f)))
            continue;
        len += (size_t)snprintf(dst + len, size - len, "%s%s", len ? ", " : "(",
                                cmd->forms[f].name);
    }
    if (len < size)
        snprintf(dst + len, size - len, ")");
}

/* "--db FILE", "-q, --quiet": an option as the Options section shows it;
 * "-q|--quiet" in a synopsis. */
static void
opt_label(const cli_opt *o, bool synopsis, char *dst, size_t size)
{
    char shortform[8] = "";
    if (o->short_name)
        snprintf(shortform, sizeof shortform, "-%c%s", o->short_name,
                 synopsis ? "|" : ", ");
    snprintf(dst, size, "%s--%s%s%s", shortform, o->name, o->arg ? " " : "",
             o->arg ? o->arg : "");
}

/* A synopsis element: "[--db FILE]", "--store DIR", "(--all | --id ID)",
 * "[--allow-net CIDR]...". */
static void
element_text(const cli_command *cmd, size_t start, size_t n, char *dst,
             size_t size)
{
    const cli_opt *first = &cmd->opts[start];
    bool required = first->flags & CLI_REQUIRED;
    size_t len = 0;
    char label[128];

    if (!required || n > 1)
        len += (size_t)snprintf(dst, size, "%s", required ? "(" : "[");
    for (size_t i = 0; i < n && len < size; i++) {
        opt_label(&cmd->opts[start + i], true, label, sizeof label);
        len += (size_t)snprintf(dst + len, size - len, "%s%s", i ? " | " : "",
                                label);
    }
    if (len < size && (!required || n > 1))
        len +=
            (size_t)snprintf(dst + len, size - len, "%s", required ? ")" : "]");
    if (len < size && n == 1 && (first->flags & CLI_REPEAT))
        snprintf(dst + len, size - len, "...");
}

/*
 * Print a word of `len` bytes from column *col: on this line after a
 * space, or, when it would pass HELP_WIDTH, on the next, indented by
 * `indent`.
 */
static void
print_word(FILE *out, const char *word, size_t len, size_t indent, size_t *col)
{
    if (*col > indent && *col + 1 + len > HELP_WIDTH) {
        fprintf(out, "\n%*s", (int)indent, "");
        *col = indent;
    } else if (*col > indent) {
        fputc(' ', out);
        (*col)++;
    }
    fwrite(word, 1, len, out);
    *col += len;
}

/* Print `text`'s words so, its newlines taken as spaces. */
static void
print_words(FILE *out, const char *text, size_t indent, size_t *col)
{
    const char *s = text;
    while (*s) {
        while (*s == ' ' || *s == '\n')
            s++;
        if (!*s)
            break;
        size_t len = strcspn(s, " \n");
        print_word(out, s, len, indent, col);
        s += len;
    }
}

static void
print_synopsis(const cli_command *cmd, FILE *out)
{
    size_t name_width = 0;
    for (size_t f = 0; f < cmd->n_forms; f++)
        if (cmd->forms[f].name && strlen(cmd->forms[f].name) > name_width)
            name_width = strlen(cmd->forms[f].name);

    for (size_t f = 0; f < cmd->n_forms; f++) {
        const cli_form *form = &cmd->forms[f];
        char head[128], elem[512];
        size_t i = 0, start, n;
        if (form->name)
            snprintf(head, sizeof head, "%s sluice %s %-*s",
                     f ? "      " : "Usage:", cmd->name, (int)name_width,
                     form->name);
        else
            snprintf(head, sizeof head, "%s sluice %s",
                     f ? "      " : "Usage:", cmd->name);
        fputs(head, out);
        size_t indent = strlen(head) + 1, col = indent;
        fputc(' ', out);
        while ((n = cli_next_element(cmd, f, &i, &start)) > 0) {
            element_text(cmd, start, n, elem, sizeof elem);
            /* An element is one word: no break inside it. */
            print_word(out, elem, strlen(elem), indent, &col);
        }
        if (form->operands)
            print_words(out, form->operands, indent, &col);
        fputc('\n', out);
    }
}

static void
print_option(const cli_command *cmd, const cli_opt *o, const char *label,
             size_t column, FILE *out)
{
    char scope[64];
    size_t col = 2 + strlen(label);

    cli_opt_scope(cmd, o, scope, sizeof scope);
    fprintf(out, "  %s", label);
    if (col + 2 > column) {
        fprintf(out, "\n%*s", (int)column, "");
    } else {
        fprintf(out, "%*s", (int)(column - col), "");
    }
    col = column;
    if (scope[0])
        print_word(out, scope, strlen(scope), column, &col);
    print_words(out, o->help, column, &col);
    fputc('\n', out);
}

void
cli_help(const cli_command *cmd, FILE *out)
{
    static const cli_opt help = {"help", 'h', 'h', NULL, "show this help",
                                 0,      0,   0,   NULL};
    char label[128];
    size_t width = strlen("-h, --help");

    print_synopsis(cmd, out);
    fprintf(out, "\n%s", cmd->description);
    for (size_t i = 0; i < cmd->n_opts; i++) {
        opt_label(&cmd->opts[i], false, label, sizeof label);
        if (strlen(label) + 4 <= HELP_MAX_COL && strlen(label) > width)
            width = strlen(label);
    }
    fputs("\nOptions:\n", out);
    for (size_t i = 0; i < cmd->n_opts; i++) {
        opt_label(&cmd->opts[i], false, label, sizeof label);
        print_option(cmd, &cmd->opts[i], label, width + 4, out);
    }
    opt_label(&help, false, label, sizeof label);
    print_option(cmd, &help, label, width + 4, out);
    if (cmd->epilogue)
        fprintf(out, "\n%s", cmd->epilogue);
}

void
cli_program_help(const cli_program *prog, FILE *out)
{
    size_t width = 0;

    fprintf(out, "Usage: %s COMMAND [OPTIONS]\n\n%s\nCommands:\n", prog->name,
            prog->description);
    for (size_t i = 0; i < prog->n_commands; i++)
        if (strlen(prog->commands[i]->name) > width)
            width = strlen(prog->commands[i]->name);
    for (size_t i = 0; i < prog->n_commands; i++) {
        const cli_command *cmd = prog->commands[i];
        size_t col = 2 + width + 3;
        fprintf(out, "  %-*s   ", (int)width, cmd->name);
        print_words(out, cmd->summary, col, &col);
        fputc('\n', out);
    }
    fprintf(out, "\n%s", prog->footer);
}
