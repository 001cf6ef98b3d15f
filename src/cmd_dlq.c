/*
 * `sluice dlq list` and `sluice dlq replay`: look at the dead-letter queue
 * and put records back into the queue on purpose.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { O_DB, O_CLASS, O_JSON, O_ALL, O_ID };

/* The forms: bit 0 list, bit 1 replay. */
enum { F_LIST = 1u << 0, F_REPLAY = 1u << 1 };

static const cli_opt dlq_opts[] = {
    CLI_OPT_DB(O_DB),
    {.name = "class", .id = O_CLASS, .arg = "CLASS",
     .help = "only records of this error class (http, network, timeout, "
             "throttle, policy, too_large, length, ...)",
     .complete = "http network timeout length too_large policy redirect "
                 "tls protocol throttle store url"},
    {.name = "json", .id = O_JSON, .forms = F_LIST,
     .help = "one JSON object {\"count\": N, \"records\": [...]}"},
    {.name = "all", .id = O_ALL, .forms = F_REPLAY, .flags = CLI_REQUIRED,
     .group = 1, .help = "every dead record (of --class, if given)"},
    {.name = "id", .id = O_ID, .arg = "ID...", .forms = F_REPLAY,
     .flags = CLI_REQUIRED | CLI_REPEAT, .group = 1,
     .help = "these ids; may be repeated, and ids may follow"},
};

static const cli_form dlq_forms[] = {
    {"list", NULL, NULL},
    {"replay", NULL, NULL},
};

static const char dlq_description[] =
    "list    show every dead-lettered record: id, error class, HTTP status,\n"
    "        attempts, when it died, its URL, and the last error\n"
    "replay  put dead records back in the queue as pending, with fresh\n"
    "        attempts: all of them (--all), or the ids given\n";

static const char dlq_epilogue[] =
    "Exit status: 0 success, 1 some ids given to replay were not dead,\n"
    "2 usage error, 3 the work stopped.\n";

const cli_command dlq_command = {
    .name = "dlq",
    .summary = "list or replay dead-lettered records",
    .forms = dlq_forms,
    .n_forms = CLI_COUNT(dlq_forms),
    .description = dlq_description,
    .epilogue = dlq_epilogue,
    .opts = dlq_opts,
    .n_opts = CLI_COUNT(dlq_opts),
    .permute = true, /* ids may follow --id as plain arguments */
    .run = cmd_dlq,
};

typedef struct {
    yajl_gen json; /* NULL: tab-separated text */
    unsigned long long count;
} list_ctx;

static int
print_dead(void *ctx, const sluice_dead_record *rec)
{
    list_ctx *l = ctx;
    char when[32];
    if (!cli_iso_time(when, sizeof when, rec->failed_at))
        snprintf(when, sizeof when, "-");
    l->count++;
    if (!l->json) {
        char status[8] = "-";
        if (rec->http_status)
            snprintf(status, sizeof status, "%d", rec->http_status);
        char attempts[16];
        snprintf(attempts, sizeof attempts, "%u", rec->attempts);
        cli_table_cell(rec->id, false);
        cli_table_cell(rec->error_class, false);
        cli_table_cell(status, false);
        cli_table_cell(attempts, false);
        cli_table_cell(when, false);
        cli_table_cell(rec->url, false);
        cli_table_cell(rec->message, true);
        return 0;
    }
    yajl_gen g = l->json;
    yajl_gen_map_open(g);
    cli_json_member_str(g, "id", rec->id);
    cli_json_member_str(g, "url", rec->url);
    cli_json_member_str(g, "key", rec->key);
    cli_json_member_raw(g, "meta", rec->meta);
    cli_json_member_str(g, "error_class", rec->error_class);
    cli_json_member_str(g, "message", rec->message);
    cli_json_member_int_or_null(g, "http_status", rec->http_status,
                                rec->http_status != 0);
    cli_json_uint(g, "attempts", rec->attempts);
    cli_json_member_str(g, "failed_at", when);
    yajl_gen_map_close(g);
    return 0;
}

static int
dlq_list(sluice_queue *q, const sluice_dlq_filter *filter, bool json)
{
    list_ctx l = {json ? cli_json_begin() : NULL, 0};
    if (json) {
        yajl_gen_map_open(l.json);
        cli_json_key(l.json, "records");
        yajl_gen_array_open(l.json);
    } else {
        printf("ID\tCLASS\tSTATUS\tATTEMPTS\tFAILED_AT\tURL\tMESSAGE\n");
    }
    sluice_err err = sluice_dlq_list(q, filter, print_dead, &l);
    if (json) {
        yajl_gen_array_close(l.json);
        cli_json_uint(l.json, "count", l.count);
        yajl_gen_map_close(l.json);
        cli_json_end(l.json);
    }
    if (err != SLUICE_OK) {
        cli_error("%s", sluice_queue_errmsg(q));
        return cli_exit_for(err);
    }
    return EXIT_DONE;
}

/* Name each id given to replay that is not dead (or not of --class). */
typedef struct {
    const sluice_dlq_filter *filter;
    bool dead;
} replay_check;

static int
check_dead(void *arg, const sluice_record *rec)
{
    replay_check *c = arg;
    c->dead = rec->state == SLUICE_STATE_DEAD;
    if (c->dead && c->filter->error_class &&
        (!rec->error_class ||
         strcmp(rec->error_class, c->filter->error_class) != 0)) {
        cli_error("dlq replay: %s is dead of class %s, not %s", rec->id,
                  rec->error_class ? rec->error_class : "unknown",
                  c->filter->error_class);
        c->dead = false;
    } else if (!c->dead) {
        cli_error("dlq replay: %s is %s, not dead", rec->id,
                  sluice_state_name(rec->state));
    }
    return 0;
}

static void
name_missing(sluice_queue *q, const sluice_dlq_filter *filter,
             const char *const *ids, size_t n_ids)
{
    for (size_t i = 0; i < n_ids; i++) {
        replay_check c = {filter, false};
        sluice_err err = sluice_record_get(q, ids[i], check_dead, &c);
        if (err == SLUICE_ENOTFOUND)
            cli_error("dlq replay: %s: no such record", ids[i]);
        else if (err != SLUICE_OK)
            cli_error("%s", sluice_queue_errmsg(q));
    }
}

static int
dlq_replay(sluice_queue *q, const sluice_dlq_filter *filter,
           const char *const *ids, size_t n_ids)
{
    uint64_t replayed = 0, missing = 0;
    /* Said before, while the records are as the user saw them. */
    if (ids)
        name_missing(q, filter, ids, n_ids);
    sluice_err err = sluice_dlq_replay(q, ids, n_ids, filter, &replayed,
                                       &missing);
    if (err != SLUICE_OK) {
        cli_error("%s", sluice_queue_errmsg(q));
        return cli_exit_for(err);
    }
    printf("%llu replayed\n", (unsigned long long)replayed);
    if (missing) {
        cli_error("%llu of the ids given %s not in the dead-letter queue",
                  (unsigned long long)missing, missing == 1 ? "is" : "are");
        return EXIT_PARTIAL;
    }
    return EXIT_DONE;
}

static bool
known_class(const char *name)
{
    const char *c;
    for (unsigned i = 0; (c = sluice_error_class_name(i)); i++)
        if (strcmp(c, name) == 0)
            return true;
    return false;
}

/* "http, network, ... and store". */
static void
list_classes(char *dst, size_t size)
{
    size_t n = 0;
    const char *c;
    dst[0] = '\0';
    for (unsigned i = 0; (c = sluice_error_class_name(i)) && n < size; i++) {
        const char *sep = i == 0                          ? ""
                          : sluice_error_class_name(i + 1) ? ", "
                                                           : " and ";
        int k = snprintf(dst + n, size - n, "%s%s", sep, c);
        if (k < 0)
            break;
        n += (size_t)k;
    }
}

int
cmd_dlq(int argc, char **argv)
{
    const char *db_opt = NULL;
    sluice_dlq_filter filter = {NULL};
    bool json = false, all = false, saw_id = false;
    const char **ids = calloc((size_t)argc + 1, sizeof *ids);
    size_t n_ids = 0;
    cli_parser p;
    int c, status;

    if (!ids) {
        cli_error("out of memory");
        return EXIT_FAILED;
    }
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
                      strcmp(argv[1], "-h") == 0)) {
        cli_help(&dlq_command, stdout);
        free(ids);
        return EXIT_DONE;
    }
    if (argc < 2) {
        free(ids);
        return cli_usage("dlq", "expected 'list' or 'replay'");
    }
    const char *action = argv[1];
    bool is_list = strcmp(action, "list") == 0;
    if (!is_list && strcmp(action, "replay") != 0) {
        free(ids);
        return cli_usage("dlq", "expected 'list' or 'replay', got '%s'",
                         action);
    }

    argc--, argv++;
    cli_parse_begin(&p, &dlq_command, argc, argv, 1);
    while ((c = cli_next(&p)) != CLI_END) {
        switch (c) {
        case O_DB:
            db_opt = p.arg;
            break;
        case O_CLASS:
            filter.error_class = p.arg;
            if (!known_class(p.arg)) {
                char classes[256];
                list_classes(classes, sizeof classes);
                free(ids);
                return cli_usage("dlq",
                                 "--class: no class '%s'; the classes are %s",
                                 p.arg, classes);
            }
            break;
        case O_JSON:
            json = true;
            break;
        case O_ALL:
            all = true;
            break;
        case O_ID:
            saw_id = true;
            ids[n_ids++] = p.arg;
            break;
        case CLI_HELP:
            free(ids);
            return EXIT_DONE;
        default:
            free(ids);
            return EXIT_USAGE;
        }
    }
    for (int i = p.optind; i < argc; i++) {
        if (!saw_id) {
            free(ids);
            return cli_usage("dlq", "unexpected argument '%s'", argv[i]);
        }
        ids[n_ids++] = argv[i];
    }
    if (is_list && (all || saw_id)) {
        free(ids);
        return cli_usage("dlq", "--all and --id belong to 'dlq replay'");
    }
    if (!is_list && json) {
        free(ids);
        return cli_usage("dlq", "--json belongs to 'dlq list'");
    }
    if (!is_list && all == saw_id) {
        free(ids);
        return cli_usage("dlq", "replay needs exactly one of --all or --id");
    }

    sluice_queue *q = cli_open_queue(
        cli_db_path(db_opt),
        is_list ? SLUICE_QUEUE_READONLY : SLUICE_QUEUE_NOCREATE, &status);
    if (!q) {
        free(ids);
        return status;
    }
    if (is_list)
        status = dlq_list(q, &filter, json);
    else
        status = dlq_replay(q, &filter, all ? NULL : ids, n_ids);
    sluice_queue_close(q);
    free(ids);
    return status;
}
