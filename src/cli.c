/*
 * Helpers shared by the subcommands: error output, the database default,
 * number formatting. Nothing here knows about a particular subcommand.
 */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yajl/yajl_tree.h>

void
cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("sluice: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int
cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "sluice %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'sluice %s --help'.\n", cmd);
    return EXIT_USAGE;
}

const char *
cli_db_path(const char *opt)
{
    if (opt)
        return opt;
    const char *env = getenv("SLUICE_DB");
    return env && *env ? env : "sluice.db";
}

/* $SLUICE_BUSY_TIMEOUT_MS in *ms (0: not set, the library's default);
 * false, said, when it is set to something else than 1 to 3599999. */
static bool
busy_timeout(unsigned *ms)
{
    static const char var[] = "SLUICE_BUSY_TIMEOUT_MS";
    const char *env = getenv(var);
    *ms = 0;
    if (!env || !*env)
        return true;
    char *end;
    errno = 0;
    unsigned long v = strtoul(env, &end, 10);
    if (!isdigit((unsigned char)*env) || *end || errno || v == 0 ||
        v >= 3600000) {
        cli_error("%s=%s (from the environment): expected milliseconds, "
                  "1 to 3599999",
                  var, env);
        return false;
    }
    *ms = (unsigned)v;
    return true;
}

sluice_queue *
cli_open_queue(const char *db, unsigned flags, int *status)
{
    sluice_queue_opts opts = {flags, 0};
    if (!busy_timeout(&opts.busy_timeout_ms)) {
        *status = EXIT_USAGE;
        return NULL;
    }
    sluice_queue *q = NULL;
    char why[600];
    sluice_err err = sluice_queue_open(db, &opts, &q, why, sizeof why);
    if (err != SLUICE_OK) {
        cli_error("%s", why);
        *status = EXIT_FAILED;
        return NULL;
    }
    return q;
}

int
cli_exit_for(sluice_err err)
{
    return err == SLUICE_EINVAL ? EXIT_USAGE : EXIT_FAILED;
}

void
cli_group_digits(char *dst, size_t size, unsigned long long n)
{
    char raw[32], out[48];
    int len = snprintf(raw, sizeof raw, "%llu", n);
    size_t j = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            out[j++] = ',';
        out[j++] = raw[i];
    }
    out[j] = '\0';
    snprintf(dst, size, "%s", out);
}

void
cli_duration(char *dst, size_t size, double seconds)
{
    if (seconds < 0)
        seconds = 0;
    unsigned long long s = (unsigned long long)(seconds + 0.5);
    if (s < 60)
        snprintf(dst, size, "%llus", s);
    else if (s < 3600)
        snprintf(dst, size, "%llum%02llus", s / 60, s % 60);
    else if (s < 86400)
        snprintf(dst, size, "%lluh%02llum", s / 3600, s % 3600 / 60);
    else
        snprintf(dst, size, "%llud%02lluh", s / 86400, s % 86400 / 3600);
}

bool
cli_iso_time(char *dst, size_t size, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms && gmtime_r(&t, &tm) &&
        strftime(dst, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return true;
    dst[0] = '\0';
    return false;
}

static void
print_to_stdout(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    fwrite(text, 1, len, stdout);
}

yajl_gen
cli_json_begin(void)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g) {
        cli_error("out of memory");
        exit(EXIT_FAILED);
    }
    yajl_gen_config(g, yajl_gen_print_callback, print_to_stdout, NULL);
    return g;
}

void
cli_json_end(yajl_gen g)
{
    fputc('\n', stdout);
    yajl_gen_free(g);
}

void
cli_json_key(yajl_gen g, const char *key)
{
    yajl_gen_string(g, (const unsigned char *)key, strlen(key));
}

void
cli_json_str(yajl_gen g, const char *value)
{
    if (!value)
        yajl_gen_null(g);
    else if (yajl_gen_string(g, (const unsigned char *)value,
                             strlen(value)) != yajl_gen_status_ok)
        yajl_gen_null(g);
}

void
cli_json_uint(yajl_gen g, const char *key, unsigned long long value)
{
    cli_json_key(g, key);
    yajl_gen_integer(g, (long long)value);
}

void
cli_json_double(yajl_gen g, double value)
{
    char num[64];
    int n = snprintf(num, sizeof num, "%.3f", value);
    yajl_gen_number(g, num, (size_t)n);
}

static void
emit_tree(yajl_gen g, yajl_val v)
{
    if (YAJL_IS_OBJECT(v)) {
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->u.object.len; i++) {
            cli_json_key(g, v->u.object.keys[i]);
            emit_tree(g, v->u.object.values[i]);
        }
        yajl_gen_map_close(g);
    } else if (YAJL_IS_ARRAY(v)) {
        yajl_gen_array_open(g);
        for (size_t i = 0; i < v->u.array.len; i++)
            emit_tree(g, v->u.array.values[i]);
        yajl_gen_array_close(g);
    } else if (YAJL_IS_STRING(v)) {
        cli_json_str(g, YAJL_GET_STRING(v));
    } else if (YAJL_IS_NUMBER(v)) {
        const char *num = YAJL_GET_NUMBER(v);
        yajl_gen_number(g, num, strlen(num));
    } else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        yajl_gen_bool(g, YAJL_IS_TRUE(v));
    } else {
        yajl_gen_null(g);
    }
}

void
cli_json_raw(yajl_gen g, const char *json_text)
{
    yajl_val tree = json_text ? yajl_tree_parse(json_text, NULL, 0) : NULL;
    if (!tree) {
        yajl_gen_null(g);
        return;
    }
    emit_tree(g, tree);
    yajl_tree_free(tree);
}

void
cli_json_member_str(yajl_gen g, const char *key, const char *value)
{
    cli_json_key(g, key);
    cli_json_str(g, value);
}

void
cli_json_member_int_or_null(yajl_gen g, const char *key, long long value,
                            bool present)
{
    cli_json_key(g, key);
    if (present)
        yajl_gen_integer(g, value);
    else
        yajl_gen_null(g);
}

void
cli_json_member_raw(yajl_gen g, const char *key, const char *json_text)
{
    cli_json_key(g, key);
    cli_json_raw(g, json_text);
}

/* A table cell: "-" for nothing; tabs and line breaks shown escaped. */
void
cli_table_cell(const char *s, bool last)
{
    if (!s || !*s) {
        fputc('-', stdout);
    } else {
        for (; *s; s++) {
            if (*s == '\t')
                fputs("\\t", stdout);
            else if (*s == '\n')
                fputs("\\n", stdout);
            else if (*s == '\r')
                fputs("\\r", stdout);
            else
                fputc(*s, stdout);
        }
    }
    fputc(last ? '\n' : '\t', stdout);
}
