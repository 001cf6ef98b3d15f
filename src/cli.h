/*
 * What the subcommands of the sluice tool share: exit codes, error
 * reporting, the --db default, and opening the queue. The tool uses only
 * the public API in include/sluice/.
 */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include <yajl/yajl_gen.h>

#include "sluice/sluice.h"

#include "cli_opts.h"

/* Exit codes: a contract with scripts (DESIGN.md, "The command line"). */
enum {
    EXIT_DONE = 0,    /* everything succeeded */
    EXIT_PARTIAL = 1, /* some input rejected or records dead-lettered */
    EXIT_USAGE = 2,   /* bad command line */
    EXIT_FAILED = 3   /* the work stopped: database, I/O, store ... */
};

#if defined(__GNUC__)
#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CLI_PRINTF(a, b)
#endif

/* "sluice: <message>" on stderr. */
void cli_error(const char *fmt, ...) CLI_PRINTF(1, 2);
/* Print a usage error for `cmd` and the hint to --help; returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);

/* The database: --db if given, else $SLUICE_DB, else ./sluice.db. */
const char *cli_db_path(const char *opt);

/*
 * Open the queue, reporting a failure on stderr. `flags` are
 * SLUICE_QUEUE_*. Honours $SLUICE_BUSY_TIMEOUT_MS. NULL on failure, with
 * the exit code in *status: EXIT_USAGE for a bad $SLUICE_BUSY_TIMEOUT_MS,
 * else EXIT_FAILED.
 */
sluice_queue *cli_open_queue(const char *db, unsigned flags, int *status);

/* Exit code for an error that stopped the work. */
int cli_exit_for(sluice_err err);

/* Human helpers: "1,234,567", and "3m12s". */
void cli_group_digits(char *dst, size_t size, unsigned long long n);
void cli_duration(char *dst, size_t size, double seconds);
/*
 * `ms` milliseconds since the epoch as "2024-05-01T12:00:00Z" (UTC); 32
 * bytes hold it. False, with dst empty, for 0 (the API's "no time yet")
 * and for a time gmtime cannot show.
 */
bool cli_iso_time(char *dst, size_t size, int64_t ms);

/*
 * JSON output for --json: a generator that prints compact JSON to
 * stdout; cli_json_end() adds the newline and frees it.
 */
yajl_gen cli_json_begin(void);
void cli_json_end(yajl_gen g);
void cli_json_key(yajl_gen g, const char *key);
void cli_json_str(yajl_gen g, const char *value);
void cli_json_uint(yajl_gen g, const char *key, unsigned long long value);
/* A number with three decimals (yajl prints doubles with 20 digits). */
void cli_json_double(yajl_gen g, double value);
/* Emit JSON text (such as a record's meta) as a value; null if invalid. */
void cli_json_raw(yajl_gen g, const char *json_text);
/*
 * Members of the object being generated, the key then the value: a
 * string (null for NULL, or for a string that is not UTF-8); an integer,
 * or null when it is absent (!present); JSON text as cli_json_raw gives.
 */
void cli_json_member_str(yajl_gen g, const char *key, const char *value);
void cli_json_member_int_or_null(yajl_gen g, const char *key,
                                 long long value, bool present);
void cli_json_member_raw(yajl_gen g, const char *key, const char *json_text);

/* The slots a queue holds (slots_view.c), for status and slots. */
typedef struct {
    sluice_slot_holding *items; /* origins owned */
    size_t n, cap;
    bool live;         /* some are held by a live run */
    uint64_t requests; /* requests a live run has in flight */
} slots_view;

sluice_err slots_view_load(slots_view *v, sluice_queue *q);
void slots_view_free(slots_view *v);
/* One line an origin's slots, one its pause: "  ORIGIN: ...". */
void slots_view_print(const slots_view *v, FILE *out);
/* A member "slots": [{origin, held, in_flight, by_live_run, free_in_s,
 * paused_for_s}...] of the object being generated. */
void slots_view_json(const slots_view *v, yajl_gen g);

/* What ingest and publish share (cli_feed.c). A feed to read: "-" is
 * standard input ("<stdin>" in messages); -1 after saying why not. */
int cli_open_feed(const char *path, sluice_ingest_input *in);

/* Their progress line: drawn on a terminal at most four times a second,
 * cleared before any other line. */
typedef struct {
    bool show;  /* draw it (stderr is a terminal, no --quiet) */
    bool drawn; /* it is on the screen now */
    const char *file; /* the input being read */
    struct timespec start;
    double last_draw;
} cli_progress;

void cli_progress_start(cli_progress *p, bool quiet);
void cli_progress_clear(cli_progress *p);
/* "VERB FILE: N records, R/s". */
void cli_progress_draw(cli_progress *p, const char *verb, uint64_t n);
/* A sluice_reject_fn, sluice_notice_fn and sluice_ingest_input_fn whose
 * ctx is a cli_progress: "FILE:LINE: reason" (line 0, a stream's record:
 * "WHERE: reason"), "sluice: notice", and the input's name. */
void cli_progress_reject(void *ctx, const char *file, uint64_t line,
                         const char *reason);
void cli_progress_notice(void *ctx, const char *message);
void cli_progress_input(void *ctx, const char *name);

/* A stream source's places in a queue (streams_view.c), for status. */
typedef struct {
    sluice_stream_place *items;
    size_t n, cap;
} streams_view;

sluice_err streams_view_load(streams_view *v, sluice_queue *q);
void streams_view_free(streams_view *v);
/* One line a shard: "  STREAM SHARD: after SEQ, 1.2s behind". */
void streams_view_print(const streams_view *v, FILE *out);
/* A member "streams": [{stream, shard, seq, subseq, finished, behind_ms,
 * behind_from, written_at}...] of the object being generated. */
void streams_view_json(const streams_view *v, yajl_gen g);

/* The --db option, the same in every command's table. */
#define CLI_OPT_DB(ID_)                                                       \
    {.name = "db", .id = (ID_), .arg = "FILE",                                \
     .help = "queue database: a SQLite file, redis://HOST:PORT[/DB] or "      \
             "unix:///PATH (default: $SLUICE_DB, else ./sluice.db)",          \
     .complete = CLI_COMPLETE_FILE}

/* The commands: each file's table and prose (cli_opts.h), and its main. */
extern const cli_command ingest_command;
extern const cli_command run_command;
extern const cli_command status_command;
extern const cli_command list_command;
extern const cli_command dlq_command;
extern const cli_command slots_command;
extern const cli_command migrate_command;
extern const cli_command publish_command;

int cmd_ingest(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_dlq(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_slots(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_publish(int argc, char **argv);

/* A cell of a tab-separated table on stdout, then a tab (or, `last`, a
 * line break): "-" for nothing; tabs and line breaks shown escaped. */
void cli_table_cell(const char *s, bool last);

/* A cell of a tab-separated table on stdout, then a tab (or, `last`, a
 * line break): "-" for nothing; tabs and line breaks shown escaped. */
void cli_table_cell(const char *s, bool last);

#endif /* SLUICE_CLI_H */
