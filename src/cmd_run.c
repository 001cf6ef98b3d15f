/*
 * `sluice run`: fetch every pending record into the store under the
 * per-origin cap, with a progress line, a summary, and a clean stop on
 * SIGINT/SIGTERM.
 */
#include <ctype.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

enum {
    O_DB, O_STORE, O_MAXC, O_MAXT, O_ATTEMPTS, O_TIMEOUT, O_STALL, O_BYTES,
    O_AGE, O_BASE, O_CAP, O_PRIVATE, O_NET, O_FOLLOW, O_GRACE, O_JSON,
    O_STORE_CONC, O_S3_ENDPOINT, O_S3_PATH, O_S3_VHOST, O_SPOOL, O_RAISE_CAP,
    O_RATE, O_NO_ADAPT, O_QUIET, O_MANIFEST, O_CACERT, O_CAPATH,
    O_OUTAGE_MAX
};

static const cli_opt run_opts[] = {
    CLI_OPT_DB(O_DB),
    {.name = "store", .id = O_STORE, .arg = "DIR|s3://BUCKET[/PREFIX]",
     .flags = CLI_REQUIRED, .complete = CLI_COMPLETE_DIR,
     .help = "where objects land: a directory (created if missing); each "
             "record's key is its path; or S3: each object at PREFIX/KEY, "
             "credentials and region from the AWS_* environment"},
    {.name = "store-concurrency", .id = O_STORE_CONC, .arg = "N",
     .help = "uploads at once (S3; default 16); they do not take slots of "
             "any origin's cap"},
    {.name = "s3-endpoint", .id = O_S3_ENDPOINT, .arg = "URL",
     .help = "an S3-compatible server (default: $AWS_ENDPOINT_URL_S3, "
             "$AWS_ENDPOINT_URL, AWS)"},
    {.name = "s3-path-style", .id = O_S3_PATH, .group = 1,
     .help = "BUCKET in the path, not the host name (the default with an "
             "endpoint other than AWS's)"},
    {.name = "s3-virtual-hosted", .id = O_S3_VHOST, .group = 1,
     .help = "BUCKET in the host name (the default for AWS)"},
    {.name = "spool", .id = O_SPOOL, .arg = "DIR",
     .complete = CLI_COMPLETE_DIR,
     .help = "where bodies wait for their upload (S3; default $TMPDIR, else "
             "/tmp)"},
    {.name = "manifest", .id = O_MANIFEST, .arg = "FILE",
     .complete = CLI_COMPLETE_FILE,
     .help = "append a JSON line for each record stored (id, key, url, "
             "size, sha256, meta), durable before the record is marked "
             "done"},
    {.name = "max-concurrency", .id = O_MAXC, .arg = "N",
     .help = "requests in flight per origin; stored with the queue "
             "(default: the queue's, else 20); a smaller one lowers the "
             "queue's"},
    {.name = "rate", .id = O_RATE, .arg = "R/s", .complete = "none",
     .help = "per origin, requests a second (also /min, /h), paced: never "
             "more in any second; stored with the queue like the cap "
             "('none' with --raise-cap removes it)"},
    {.name = "raise-cap", .id = O_RAISE_CAP,
     .help = "let --max-concurrency or --rate raise the queue's"},
    {.name = "no-adapt", .id = O_NO_ADAPT,
     .help = "do not slow down for an origin that throttles (429/503), "
             "times out or slows: by default sluice lowers its own rate and "
             "concurrency for it, and grows them back"},
    {.name = "max-total", .id = O_MAXT, .arg = "N",
     .help = "requests in flight over all origins (default: no global cap)"},
    {.name = "max-attempts", .id = O_ATTEMPTS, .arg = "N",
     .help = "failed attempts before the dead-letter queue (default 8; "
             "429/503 throttles do not count)"},
    {.name = "timeout", .id = O_TIMEOUT, .arg = "SEC",
     .help = "per request, total (default 120); connecting gets at most 15 "
             "of them. sluice assumes the origin is done with a request by "
             "then: make it longer than the origin's worst latency"},
    {.name = "stall-timeout", .id = O_STALL, .arg = "SEC",
     .help = "abort a transfer silent this long (default 30)"},
    {.name = "max-bytes", .id = O_BYTES, .arg = "N",
     .help = "largest body accepted, with optional k, M, G (default 100M); "
             "larger is dead-lettered"},
    {.name = "max-age", .id = O_AGE, .arg = "DURATION",
     .help = "dead-letter a record still throttled this long after its "
             "first attempt (default 24h)"},
    {.name = "backoff-base", .id = O_BASE, .arg = "SEC",
     .help = "first retry delay, doubled each attempt, with full jitter "
             "(default 1)"},
    {.name = "backoff-cap", .id = O_CAP, .arg = "SEC",
     .help = "longest retry delay (default 300)"},
    {.name = "allow-private", .id = O_PRIVATE,
     .help = "allow loopback, private, link-local and metadata addresses "
             "(refused by default)"},
    {.name = "allow-net", .id = O_NET, .arg = "CIDR", .flags = CLI_REPEAT,
     .help = "allow this network even so (repeatable), e.g. 10.1.0.0/16 or "
             "127.0.0.1/32. Without either, the policy ingest stored with "
             "the queue (said at the start)"},
    {.name = "cacert", .id = O_CACERT, .arg = "FILE",
     .complete = CLI_COMPLETE_FILE,
     .help = "verify origins' TLS certificates against the CA certificates "
             "(PEM) in FILE, not the system's (default: $CURL_CA_BUNDLE, "
             "else $SSL_CERT_FILE, else the system's); not for S3, which "
             "reads $AWS_CA_BUNDLE. Verification is always on"},
    {.name = "capath", .id = O_CAPATH, .arg = "DIR",
     .complete = CLI_COMPLETE_DIR,
     .help = "search DIR too for CA certificates by their hashed names "
             "(openssl rehash DIR; ':' between several), as curl's --capath "
             "(default: $SSL_CERT_DIR unless $CURL_CA_BUNDLE is set)"},
    {.name = "follow", .id = O_FOLLOW,
     .help = "keep running, polling for new records"},
    {.name = "grace", .id = O_GRACE, .arg = "SEC",
     .help = "on SIGINT/SIGTERM, time for transfers in flight to finish "
             "(default 5)"},
    {.name = "outage-max", .id = O_OUTAGE_MAX, .arg = "SEC",
     .help = "a Redis queue that does not answer is waited for this long "
             "(default 300; 0: not at all): nothing new starts, transfers "
             "in flight finish, their marks are written when it is back; "
             "then the run stops (exit 3)"},
    {.name = "json", .id = O_JSON,
     .help = "print the summary as one JSON object"},
    {.name = "quiet", .short_name = 'q', .id = O_QUIET,
     .help = "only errors and the summary"},
};

static const cli_form run_forms[] = {{NULL, NULL, NULL}};

static const char run_description[] =
    "Fetch every pending record into the store, never sending an origin\n"
    "(scheme, host, port) more than --max-concurrency requests at once,\n"
    "retries and redirect hops included, across crashes and restarts too:\n"
    "the slots are kept with the queue, and a request given up on (or a\n"
    "crashed run's) keeps its slot until --timeout after it was sent.\n"
    "Each object is verified (length, SHA-256) and durable before its\n"
    "record is marked done. Without --follow, exits when nothing is\n"
    "pending or waiting to retry. Over https, HTTP/2 where the origin\n"
    "offers it: the requests share one connection as streams (each\n"
    "still counts against the cap).\n";

static const char run_epilogue[] =
    "Exit status: 0 every record done, 1 some records are dead (see\n"
    "'sluice dlq list'), 2 usage error, 3 the run could not work (store\n"
    "not writable, database error, another run on this database, a\n"
    "Redis queue unreachable for longer than --outage-max),\n"
    "130/143 stopped by SIGINT/SIGTERM (the queue is consistent: run\n"
    "again to finish).\n";

const cli_command run_command = {
    .name = "run",
    .summary = "fetch pending records into a store, under the cap",
    .forms = run_forms,
    .n_forms = CLI_COUNT(run_forms),
    .description = run_description,
    .epilogue = run_epilogue,
    .opts = run_opts,
    .n_opts = CLI_COUNT(run_opts),
    .run = cmd_run,
};

/* The largest values the numeric options take. */
#define MAX_COUNT   100000              /* requests at once, attempts */
#define MAX_SECONDS (365 * 86400.0)     /* any duration: a year */
#define MAX_BYTES   ((uint64_t)1 << 50) /* a body: 1 PiB */

static volatile int stop_requested;
static volatile sig_atomic_t stop_signal;

static void
on_signal(int sig)
{
    stop_signal = sig;
    stop_requested = stop_requested + 1;
}

typedef struct {
    bool tty;
    bool quiet;
    bool drawn;
    double last_log;
} display;

static void
clear_line(display *d)
{
    if (d->drawn) {
        fputs("\r\033[K", stderr);
        d->drawn = false;
    }
}

static void
format_line(char *dst, size_t size, const sluice_run_stats *st)
{
    char done[32], total[32], eta[32] = "-";
    unsigned long long finished = st->total_done + st->total_dead;
    cli_group_digits(done, sizeof done, st->total_done);
    cli_group_digits(total, sizeof total, st->total);
    if (st->eta_s >= 0)
        cli_duration(eta, sizeof eta, st->eta_s);
    double pct = st->total ? 100.0 * (double)finished / (double)st->total
                           : 100.0;
    int n = snprintf(dst, size,
                     "%s/%s done (%.0f%%), %.1f/s, %llu in flight, %llu "
                     "retrying, %llu dead, ETA %s",
                     done, total, pct, st->rate,
                     (unsigned long long)st->in_flight,
                     (unsigned long long)st->retrying,
                     (unsigned long long)st->total_dead, eta);
    if (st->n_limited == 0 || n < 0 || (size_t)n >= size)
        return;
    /* The origin most held back: what it may have now, beside its cap. */
    const sluice_origin_limit *l = &st->limited[0];
    char rate[32] = "";
    if (l->rate > 0)
        snprintf(rate, sizeof rate, " at %.3g/s", l->rate);
    char more[32] = "";
    if (st->n_limited_all > 1)
        snprintf(more, sizeof more, " (+%zu more)", st->n_limited_all - 1);
    snprintf(dst + n, size - (size_t)n, "; %s: %u of %u at once%s%s",
             l->origin, l->limit, l->cap, rate, more);
}

static void
on_progress(void *ctx, const sluice_run_stats *st)
{
    display *d = ctx;
    char line[256];
    if (d->quiet)
        return;
    format_line(line, sizeof line, st);
    if (d->tty) {
        fprintf(stderr, "\r\033[K%s", line);
        d->drawn = true;
    } else if (st->elapsed_s - d->last_log >= 5.0) {
        d->last_log = st->elapsed_s;
        fprintf(stderr, "sluice: %s\n", line);
    }
}

static void
on_event(void *ctx, const char *id, const char *url, const char *cls,
         int status, const char *message)
{
    display *d = ctx;
    (void)status; /* the message says "HTTP 404" already */
    clear_line(d);
    if (strcmp(id, url) == 0)
        fprintf(stderr, "sluice: dead: %s: %s: %s\n", id, cls, message);
    else
        fprintf(stderr, "sluice: dead: %s (%s): %s: %s\n", id, url, cls,
                message);
}

/* What the run says of itself (its cap, slots an earlier run left
 * held): always shown, --quiet or not. */
static void
on_notice(void *ctx, const char *message)
{
    display *d = ctx;
    clear_line(d);
    fprintf(stderr, "sluice: %s\n", message);
}

/* "100/s", "100", "6000/min", "1/h", "none" (-1) -> requests a second. */
static bool
parse_rate(const char *text, double *out)
{
    if (strcmp(text, "none") == 0) {
        *out = -1;
        return true;
    }
    char *end;
    double v = strtod(text, &end);
    if (end == text || !isfinite(v) || v <= 0)
        return false;
    double per = 1;
    if (*end == '/') {
        const char *unit = end + 1;
        if (strcmp(unit, "s") == 0 || strcmp(unit, "sec") == 0)
            per = 1;
        else if (strcmp(unit, "m") == 0 || strcmp(unit, "min") == 0)
            per = 60;
        else if (strcmp(unit, "h") == 0)
            per = 3600;
        else
            return false;
    } else if (*end) {
        return false;
    }
    *out = v / per;
    return true;
}

/* $NAME when it is set and not empty, else NULL. */
static const char *
env_of(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Whether a CA file or directory can serve; else says why in one line,
 * naming the option or the variable it came from. */
static bool
ca_usable(const char *path, bool dir, const char *var, const char *opt)
{
    char why[600];
    if (!path || (dir ? sluice_check_ca_path(path, why, sizeof why)
                      : sluice_check_ca_file(path, why, sizeof why)) ==
                     SLUICE_OK)
        return true;
    if (var)
        cli_error("%s=%s (from the environment): %s", var, path, why);
    else
        cli_error("%s %s: %s", opt, path, why);
    return false;
}

/*
 * The CA certificates origins are verified against, as curl (the tool:
 * libcurl reads no variable) takes them: --cacert and --capath; given
 * neither, $CURL_CA_BUNDLE, else $SSL_CERT_DIR and $SSL_CERT_FILE. NULL:
 * the system's. False, having said why, when one cannot serve.
 */
static bool
pick_ca(const char *file_opt, const char *dir_opt, const char **file,
        const char **dir)
{
    const char *file_var = NULL, *dir_var = NULL;
    *file = file_opt;
    *dir = dir_opt;
    if (!file_opt && !dir_opt) {
        if ((*file = env_of("CURL_CA_BUNDLE"))) {
            file_var = "CURL_CA_BUNDLE";
        } else {
            if ((*dir = env_of("SSL_CERT_DIR")))
                dir_var = "SSL_CERT_DIR";
            if ((*file = env_of("SSL_CERT_FILE")))
                file_var = "SSL_CERT_FILE";
        }
    }
    return ca_usable(*file, false, file_var, "--cacert") &&
           ca_usable(*dir, true, dir_var, "--capath");
}

static void
print_summary(const sluice_run_stats *st, bool json)
{
    if (json) {
        yajl_gen g = cli_json_begin();
        yajl_gen_map_open(g);
        cli_json_uint(g, "done", st->done);
        cli_json_uint(g, "dead", st->dead);
        cli_json_uint(g, "retried", st->retried);
        cli_json_uint(g, "throttled", st->throttled);
        cli_json_uint(g, "requests", st->requests);
        cli_json_uint(g, "bytes", st->bytes);
        cli_json_uint(g, "slot_writes", st->slot_writes);
        cli_json_key(g, "elapsed_s");
        cli_json_double(g, st->elapsed_s);
        cli_json_key(g, "queue");
        yajl_gen_map_open(g);
        cli_json_uint(g, "pending", st->pending);
        cli_json_uint(g, "in_flight", st->total_in_flight);
        cli_json_uint(g, "retrying", st->retrying);
        cli_json_uint(g, "done", st->total_done);
        cli_json_uint(g, "dead", st->total_dead);
        cli_json_uint(g, "total", st->total);
        yajl_gen_map_close(g);
        yajl_gen_map_close(g);
        cli_json_end(g);
        return;
    }
    char elapsed[32];
    cli_duration(elapsed, sizeof elapsed, st->elapsed_s);
    double rate = st->elapsed_s > 0 ? (double)st->done / st->elapsed_s : 0;
    printf("run: %llu done, %llu dead, %llu retried, %llu throttled, "
           "%llu requests, %.1f MB in %s (%.1f/s)\n",
           (unsigned long long)st->done, (unsigned long long)st->dead,
           (unsigned long long)st->retried,
           (unsigned long long)st->throttled,
           (unsigned long long)st->requests, (double)st->bytes / 1e6,
           elapsed, rate);
    printf("queue: %llu pending, %llu retrying, %llu done, %llu dead, "
           "%llu total\n",
           (unsigned long long)st->pending, (unsigned long long)st->retrying,
           (unsigned long long)st->total_done,
           (unsigned long long)st->total_dead,
           (unsigned long long)st->total);
    if (st->total_in_flight)
        cli_error("%llu record%s left in flight, not given back (the next "
                  "run puts them back)",
                  (unsigned long long)st->total_in_flight,
                  st->total_in_flight == 1 ? "" : "s");
}

int
cmd_run(int argc, char **argv)
{
    sluice_run_opts o;
    const char *db_opt = NULL, *cacert_opt = NULL, *capath_opt = NULL;
    bool json = false;
    const char **nets = calloc((size_t)argc + 1, sizeof *nets);
    size_t n_nets = 0;
    display d = {isatty(STDERR_FILENO) != 0, false, false, -10};
    unsigned long long n;
    double secs;
    cli_parser p;
    int c;

    if (!nets) {
        cli_error("out of memory");
        return EXIT_FAILED;
    }
    sluice_run_opts_init(&o);
    cli_parse_begin(&p, &run_command, argc, argv, 1);
    while ((c = cli_next(&p)) != CLI_END) {
        switch (c) {
        case O_DB:
            db_opt = p.arg;
            break;
        case O_STORE:
            o.store = p.arg;
            break;
        case O_STORE_CONC:
            if (!cli_arg_count(&p, 1, 1024, &n))
                goto usage;
            o.store_concurrency = (unsigned)n;
            break;
        case O_S3_ENDPOINT:
            o.s3_endpoint = p.arg;
            break;
        case O_S3_PATH:
            o.s3_path_style = 1;
            break;
        case O_S3_VHOST:
            o.s3_path_style = 0;
            break;
        case O_SPOOL:
            o.spool_dir = p.arg;
            break;
        case O_MANIFEST:
            o.manifest = p.arg;
            break;
        case O_RAISE_CAP:
            o.raise_cap = 1;
            break;
        case O_RATE:
            if (!parse_rate(p.arg, &o.rate)) {
                cli_usage("run",
                          "--rate: %s: must be requests a second above 0, "
                          "as 100/s, 6000/min or 1/h, or none",
                          p.arg);
                goto usage;
            }
            break;
        case O_NO_ADAPT:
            o.no_adapt = 1;
            break;
        case O_MAXC:
        case O_MAXT:
        case O_ATTEMPTS:
            /* --max-total 0: no global cap. */
            if (!cli_arg_count(&p, c == O_MAXT ? 0 : 1, MAX_COUNT, &n))
                goto usage;
            if (c == O_MAXC)
                o.max_concurrency = (unsigned)n;
            else if (c == O_MAXT)
                o.max_total = (unsigned)n;
            else
                o.max_attempts = (unsigned)n;
            break;
        case O_TIMEOUT:
        case O_STALL:
        case O_AGE:
        case O_BASE:
        case O_CAP:
        case O_GRACE:
        case O_OUTAGE_MAX:
            /* A grace or a first delay of 0 is allowed: none. */
            if (!cli_arg_seconds(&p, 0,
                                 c != O_GRACE && c != O_BASE &&
                                     c != O_OUTAGE_MAX,
                                 MAX_SECONDS, &secs))
                goto usage;
            if (c == O_TIMEOUT)
                o.timeout_s = secs;
            else if (c == O_STALL)
                o.stall_timeout_s = secs;
            else if (c == O_AGE)
                o.max_age_s = secs;
            else if (c == O_BASE)
                o.backoff_base_s = secs;
            else if (c == O_CAP)
                o.backoff_cap_s = secs;
            else if (c == O_OUTAGE_MAX)
                o.outage_max_s = secs;
            else
                o.grace_s = secs;
            break;
        case O_BYTES:
            if (!cli_arg_bytes(&p, 1, MAX_BYTES, &o.max_bytes))
                goto usage;
            break;
        case O_PRIVATE:
            o.allow_private = 1;
            break;
        case O_NET:
            nets[n_nets++] = p.arg;
            break;
        case O_CACERT:
            cacert_opt = p.arg;
            break;
        case O_CAPATH:
            capath_opt = p.arg;
            break;
        case O_FOLLOW:
            o.follow = 1;
            break;
        case O_JSON:
            json = true;
            break;
        case O_QUIET:
            d.quiet = true;
            break;
        case CLI_HELP:
            free(nets);
            return EXIT_DONE;
        default:
            goto usage;
        }
    }
    if (p.optind < argc) {
        cli_usage("run", "unexpected argument '%s'", argv[p.optind]);
        goto usage;
    }
    if (!o.store) {
        cli_usage("run", "--store DIR is required");
        goto usage;
    }
    o.allow_nets = nets;
    o.n_allow_nets = n_nets;
    if (!pick_ca(cacert_opt, capath_opt, &o.ca_file, &o.ca_path))
        goto usage;

    int status;
    sluice_queue *q = cli_open_queue(cli_db_path(db_opt),
                                     SLUICE_QUEUE_NOCREATE, &status);
    if (!q) {
        free(nets);
        return status;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a full file system: an error, not death */
    o.stop = &stop_requested;
    o.on_progress = on_progress;
    o.on_event = on_event;
    o.on_notice = on_notice;
    o.ctx = &d;

    sluice_run_stats st;
    char why[600] = "";
    sluice_err err = sluice_run(q, &o, &st, why, sizeof why);
    sluice_queue_close(q);
    clear_line(&d);
    free(nets);
    if (err != SLUICE_OK && err != SLUICE_EINTERRUPTED) {
        cli_error("%s", why);
        if (st.elapsed_s > 0)
            print_summary(&st, json);
        return err == SLUICE_EINVAL ? EXIT_USAGE : EXIT_FAILED;
    }
    print_summary(&st, json);
    if (err == SLUICE_EINTERRUPTED) {
        cli_error("stopped by signal; run again to finish");
        return 128 + (stop_signal ? stop_signal : SIGINT);
    }
    return st.total_dead > 0 ? EXIT_PARTIAL : EXIT_DONE;
usage:
    free(nets);
    return EXIT_USAGE;
}
