/*
 * `sluice list`: every record of the queue with what became of it (the
 * object's size, SHA-256, content type and ETag; a dead record's class
 * and message), streamed as a table, JSON Lines or CSV, so that the
 * catalogue side can join on it without sqlite3.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { O_DB, O_STATE, O_JSON, O_CSV };

static const cli_opt list_opts[] = {
    CLI_OPT_DB(O_DB),
    {.name = "state", .id = O_STATE, .arg = "STATE",
     .complete = "pending in_flight retrying done dead",
     .help = "only records in this state: pending, in_flight, retrying, "
             "done or dead"},
    {.name = "json", .id = O_JSON, .group = 1,
     .help = "JSON Lines: one object a record, with its meta"},
    {.name = "csv", .id = O_CSV, .group = 1,
     .help = "CSV (RFC 4180) with a header row"},
};

static const cli_form list_forms[] = {{NULL, NULL, NULL}};

static const char list_description[] =
    "List every record in feed order: id, state, url, key, and for done\n"
    "records the object's size, SHA-256, content type and ETag; for dead\n"
    "(and retrying) ones the error class, HTTP status and message.\n"
    "Streamed: a million records list in constant memory.\n";

static const char list_epilogue[] =
    "Exit status: 0 success, 2 usage error, 3 the work stopped.\n";

const cli_command list_command = {
    .name = "list",
    .summary = "every record with its state and object: a table, JSON "
               "Lines or CSV",
    .forms = list_forms,
    .n_forms = CLI_COUNT(list_forms),
    .description = list_description,
    .epilogue = list_epilogue,
    .opts = list_opts,
    .n_opts = CLI_COUNT(list_opts),
    .run = cmd_list,
};

typedef enum { OUT_TABLE, OUT_JSON, OUT_CSV } out_format;

typedef struct {
    out_format format;
    yajl_gen json;
} list_ctx;

/* A CSV field, quoted when it holds a comma, a quote or a line break. */
static void
field(const char *s, bool last)
{
    if (s && s[strcspn(s, ",\"\r\n")]) {
        fputc('"', stdout);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', stdout);
            fputc(*s, stdout);
        }
        fputc('"', stdout);
    } else if (s) {
        fputs(s, stdout);
    }
    fputc(last ? '\n' : ',', stdout);
}

static void
print_json(yajl_gen g, const sluice_record *rec, const char *finished)
{
    yajl_gen_map_open(g);
    cli_json_member_str(g, "id", rec->id);
    cli_json_member_str(g, "state", sluice_state_name(rec->state));
    cli_json_member_str(g, "url", rec->url);
    cli_json_member_str(g, "key", rec->key);
    cli_json_member_raw(g, "meta", rec->meta);
    cli_json_uint(g, "attempts", rec->attempts);
    cli_json_member_int_or_null(g, "size", rec->size, rec->size >= 0);
    cli_json_member_str(g, "sha256", rec->sha256);
    cli_json_member_str(g, "content_type", rec->content_type);
    cli_json_member_str(g, "etag", rec->etag);
    cli_json_member_str(g, "error_class", rec->error_class);
    cli_json_member_int_or_null(g, "http_status", rec->http_status,
                                rec->http_status != 0);
    cli_json_member_str(g, "message", rec->message);
    cli_json_member_str(g, "finished_at", *finished ? finished : NULL);
    yajl_gen_map_close(g);
    fputc('\n', stdout);
    yajl_gen_reset(g, NULL);
}

static int
print_record(void *arg, const sluice_record *rec)
{
    list_ctx *l = arg;
    char size[24] = "", status[8] = "", finished[32];
    if (rec->size >= 0)
        snprintf(size, sizeof size, "%lld", (long long)rec->size);
    if (rec->http_status)
        snprintf(status, sizeof status, "%d", rec->http_status);
    cli_iso_time(finished, sizeof finished, rec->finished_at);
    const char *state = sluice_state_name(rec->state);
    switch (l->format) {
    case OUT_JSON:
        print_json(l->json, rec, finished);
        break;
    case OUT_CSV:
        field(rec->id, false);
        field(state, false);
        field(rec->url, false);
        field(rec->key, false);
        field(size, false);
        field(rec->sha256, false);
        field(rec->content_type, false);
        field(rec->etag, false);
        field(rec->error_class, false);
        field(status, false);
        field(rec->message, false);
        field(finished, false);
        field(rec->meta, true);
        break;
    case OUT_TABLE:
        cli_table_cell(rec->id, false);
        cli_table_cell(state, false);
        cli_table_cell(rec->url, false);
        cli_table_cell(rec->key, false);
        cli_table_cell(size, false);
        cli_table_cell(rec->sha256, false);
        cli_table_cell(rec->content_type, false);
        cli_table_cell(rec->etag, false);
        cli_table_cell(rec->error_class, false);
        cli_table_cell(status, false);
        cli_table_cell(rec->message, true);
        break;
    }
    return ferror(stdout) ? 1 : 0;
}

int
cmd_list(int argc, char **argv)
{
    const char *db_opt = NULL;
    sluice_list_filter filter = {-1};
    list_ctx l = {OUT_TABLE, NULL};
    bool json = false, csv = false;
    cli_parser p;
    int c;

    cli_parse_begin(&p, &list_command, argc, argv, 1);
    while ((c = cli_next(&p)) != CLI_END) {
        switch (c) {
        case O_DB:
            db_opt = p.arg;
            break;
        case O_STATE:
            filter.state = sluice_state_from_name(p.arg);
            if (filter.state < 0)
                return cli_usage("list",
                                 "--state: expected pending, in_flight, "
                                 "retrying, done or dead, got '%s'",
                                 p.arg);
            break;
        case O_JSON:
            json = true;
            break;
        case O_CSV:
            csv = true;
            break;
        case CLI_HELP:
            return EXIT_DONE;
        default:
            return EXIT_USAGE;
        }
    }
    if (p.optind < argc)
        return cli_usage("list", "unexpected argument '%s'", argv[p.optind]);
    if (json && csv)
        return cli_usage("list", "--json and --csv: choose one");

    int status;
    sluice_queue *q = cli_open_queue(cli_db_path(db_opt),
                                     SLUICE_QUEUE_READONLY, &status);
    if (!q)
        return status;
    if (json) {
        l.format = OUT_JSON;
        l.json = cli_json_begin();
    } else if (csv) {
        l.format = OUT_CSV;
        fputs("id,state,url,key,size,sha256,content_type,etag,error_class,"
              "http_status,message,finished_at,meta\n",
              stdout);
    } else {
        fputs("ID\tSTATE\tURL\tKEY\tSIZE\tSHA256\tCONTENT_TYPE\tETAG\tCLASS\t"
              "STATUS\tMESSAGE\n",
              stdout);
    }
    sluice_err err = sluice_list(q, &filter, print_record, &l);
    if (l.json)
        yajl_gen_free(l.json);
    status = EXIT_DONE;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("list: writing the output failed");
        status = EXIT_FAILED;
    } else if (err != SLUICE_OK) {
        cli_error("%s", sluice_queue_errmsg(q));
        status = cli_exit_for(err);
    }
    sluice_queue_close(q);
    return status;
}
