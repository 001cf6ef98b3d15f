/*
 * `sluice run`: fetch every pending record into the store under the
 * per-origin cap, with a progress line, a summary, and a clean stop on
 * SIGINT/SIGTERM.
 */
#include <ctype.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char help_text[] =
    "Usage: sluice run [--db FILE] --store DIR [OPTIONS]\n"
    "\n"
    "Fetch every pending record into the store, never sending an origin\n"
    "(scheme, host, port) more than --max-concurrency requests at once,\n"
    "retries and redirect hops included, across crashes and restarts too:\n"
    "the slots are kept with the queue, and a request given up on (or a\n"
    "crashed run's) keeps its slot until --timeout after it was sent.\n"
    "Each object is verified (length, SHA-256) and durable before its\n"
    "record is marked done. Without --follow, exits when nothing is\n"
    "pending or waiting to retry.\n"
    "\n"
    "Options:\n"
    "  --db FILE              queue database (default: $SLUICE_DB, else\n"
    "                         ./sluice.db)\n"
    "  --store DIR            where objects land: a directory (created if\n"
    "                         missing); each record's key is its path\n"
    "  --store s3://BUCKET[/PREFIX]\n"
    "                         or S3: each object at PREFIX/KEY, credentials\n"
    "                         and region from the AWS_* environment\n"
    "  --store-concurrency N  uploads at once (S3; default 16); they do\n"
    "                         not take slots of any origin's cap\n"
    "  --s3-endpoint URL      an S3-compatible server (default:\n"
    "                         $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, AWS)\n"
    "  --s3-path-style        BUCKET in the path, not the host name (the\n"
    "                         default with an endpoint other than AWS's)\n"
    "  --s3-virtual-hosted    BUCKET in the host name (the default for AWS)\n"
    "  --spool DIR            where bodies wait for their upload (S3;\n"
    "                         default $TMPDIR, else /tmp)\n"
    "  --max-concurrency N    requests in flight per origin; stored with\n"
    "                         the queue (default: the queue's, else 20);\n"
    "                         a smaller one lowers the queue's\n"
    "  --rate R/s             per origin, requests a second (also /min,\n"
    "                         /h), paced: never more in any second; stored\n"
    "                         with the queue like the cap ('none' with\n"
    "                         --raise-cap removes it)\n"
    "  --raise-cap            let --max-concurrency or --rate raise the\n"
    "                         queue's\n"
    "  --no-adapt             do not slow down for an origin that\n"
    "                         throttles (429/503), times out or slows: by\n"
    "                         default sluice lowers its own rate and\n"
    "                         concurrency for it, and grows them back\n"
    "  --max-total N          requests in flight over all origins\n"
    "                         (default: no global cap)\n"
    "  --max-attempts N       failed attempts before the dead-letter queue\n"
    "                         (default 8; 429/503 throttles do not count)\n"
    "  --timeout SEC          per request, total (default 120); connecting\n"
    "                         gets at most 15 of them. sluice assumes the\n"
    "                         origin is done with a request by then: make\n"
    "                         it longer than the origin's worst latency\n"
    "  --stall-timeout SEC    abort a transfer silent this long (default 30)\n"
    "  --max-bytes N          largest body accepted, with optional k, M, G\n"
    "                         (default 100M); larger is dead-lettered\n"
    "  --max-age DURATION     dead-letter a record still throttled this\n"
    "                         long after its first attempt (default 24h)\n"
    "  --backoff-base SEC     first retry delay, doubled each attempt, with\n"
    "                         full jitter (default 1)\n"
    "  --backoff-cap SEC      longest retry delay (default 300)\n"
    "  --allow-private        allow loopback, private, link-local and\n"
    "                         metadata addresses (refused by default)\n"
    "  --allow-net CIDR       allow this network even so (repeatable),\n"
    "                         e.g. 10.1.0.0/16 or 127.0.0.1/32. Without\n"
    "                         either, the policy ingest stored with the\n"
    "                         queue (said at the start)\n"
    "  --follow               keep running, polling for new records\n"
    "  --grace SEC            on SIGINT/SIGTERM, time for transfers in\n"
    "                         flight to finish (default 5)\n"
    "  --json                 print the summary as one JSON object\n"
    "  -q, --quiet            only errors and the summary\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: 0 every record done, 1 some records are dead (see\n"
    "'sluice dlq list'), 2 usage error, 3 the run could not work (store\n"
    "not writable, database error, another run on this database),\n"
    "130/143 stopped by SIGINT/SIGTERM (the queue is consistent: run\n"
    "again to finish).\n";

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

/* "100", "64k", "100M", "2G" -> bytes. */
static bool
parse_bytes(const char *text, uint64_t *out)
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
    if (*end || v * mult > 1e18)
        return false;
    *out = (uint64_t)(v * mult);
    return true;
}

/* "90", "90s", "15m", "24h", "7d" -> seconds. */
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
    enum {
        O_DB = 256, O_STORE, O_MAXC, O_MAXT, O_ATTEMPTS, O_TIMEOUT, O_STALL,
        O_BYTES, O_AGE, O_BASE, O_CAP, O_PRIVATE, O_NET, O_FOLLOW, O_GRACE,
        O_JSON, O_STORE_CONC, O_S3_ENDPOINT, O_S3_PATH, O_S3_VHOST, O_SPOOL,
        O_RAISE_CAP, O_RATE, O_NO_ADAPT
    };
    static const struct option longopts[] = {
        {"db", required_argument, NULL, O_DB},
        {"store", required_argument, NULL, O_STORE},
        {"max-concurrency", required_argument, NULL, O_MAXC},
        {"raise-cap", no_argument, NULL, O_RAISE_CAP},
        {"rate", required_argument, NULL, O_RATE},
        {"no-adapt", no_argument, NULL, O_NO_ADAPT},
        {"max-total", required_argument, NULL, O_MAXT},
        {"max-attempts", required_argument, NULL, O_ATTEMPTS},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"stall-timeout", required_argument, NULL, O_STALL},
        {"max-bytes", required_argument, NULL, O_BYTES},
        {"max-age", required_argument, NULL, O_AGE},
        {"backoff-base", required_argument, NULL, O_BASE},
        {"backoff-cap", required_argument, NULL, O_CAP},
        {"allow-private", no_argument, NULL, O_PRIVATE},
        {"allow-net", required_argument, NULL, O_NET},
        {"follow", no_argument, NULL, O_FOLLOW},
        {"grace", required_argument, NULL, O_GRACE},
        {"json", no_argument, NULL, O_JSON},
        {"store-concurrency", required_argument, NULL, O_STORE_CONC},
        {"s3-endpoint", required_argument, NULL, O_S3_ENDPOINT},
        {"s3-path-style", no_argument, NULL, O_S3_PATH},
        {"s3-virtual-hosted", no_argument, NULL, O_S3_VHOST},
        {"spool", required_argument, NULL, O_SPOOL},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    sluice_run_opts o;
    const char *db_opt = NULL;
    bool json = false;
    const char **nets = calloc((size_t)argc + 1, sizeof *nets);
    size_t n_nets = 0;
    display d = {isatty(STDERR_FILENO) != 0, false, false, -10};
    unsigned long long n;
    double secs;
    int c;

    if (!nets) {
        cli_error("out of memory");
        return EXIT_FAILED;
    }
    sluice_run_opts_init(&o);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+qh", longopts, NULL)) != -1) {
        const char *name = argv[optind - 1];
        switch (c) {
        case O_DB:
            db_opt = optarg;
            break;
        case O_STORE:
            o.store = optarg;
            break;
        case O_STORE_CONC:
            if (!cli_parse_uint("run", name, optarg, 1024, &n))
                goto usage;
            if (n == 0) {
                cli_usage("run", "%s: must be at least 1", name);
                goto usage;
            }
            o.store_concurrency = (unsigned)n;
            break;
        case O_S3_ENDPOINT:
            o.s3_endpoint = optarg;
            break;
        case O_S3_PATH:
            o.s3_path_style = 1;
            break;
        case O_S3_VHOST:
            o.s3_path_style = 0;
            break;
        case O_SPOOL:
            o.spool_dir = optarg;
            break;
        case O_RAISE_CAP:
            o.raise_cap = 1;
            break;
        case O_RATE:
            if (!parse_rate(optarg, &o.rate)) {
                cli_usage("run",
                          "--rate: '%s': want requests a second, as 100/s, "
                          "6000/min, 1/h or none",
                          optarg);
                goto usage;
            }
            break;
        case O_NO_ADAPT:
            o.no_adapt = 1;
            break;
        case O_MAXC:
        case O_MAXT:
        case O_ATTEMPTS:
            if (!cli_parse_uint("run", name, optarg, 100000, &n))
                goto usage;
            if (c != O_MAXT && n == 0) {
                cli_usage("run", "%s: must be at least 1", name);
                goto usage;
            }
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
            if (!parse_seconds(optarg, &secs) ||
                (secs <= 0 && c != O_GRACE && c != O_BASE)) {
                cli_usage("run", "%s: expected a duration like 30, 90s, 15m "
                          "or 24h, got '%s'", name, optarg);
                goto usage;
            }
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
            else
                o.grace_s = secs;
            break;
        case O_BYTES:
            if (!parse_bytes(optarg, &o.max_bytes) || o.max_bytes == 0) {
                cli_usage("run", "--max-bytes: expected a size like 500k or "
                          "100M, got '%s'", optarg);
                goto usage;
            }
            break;
        case O_PRIVATE:
            o.allow_private = 1;
            break;
        case O_NET:
            nets[n_nets++] = optarg;
            break;
        case O_FOLLOW:
            o.follow = 1;
            break;
        case O_JSON:
            json = true;
            break;
        case 'q':
            d.quiet = true;
            break;
        case 'h':
            fputs(help_text, stdout);
            free(nets);
            return EXIT_DONE;
        default:
            cli_usage("run", "unknown option '%s'", name);
            goto usage;
        }
    }
    if (optind < argc) {
        cli_usage("run", "unexpected argument '%s'", argv[optind]);
        goto usage;
    }
    if (!o.store) {
        cli_usage("run", "--store DIR is required");
        goto usage;
    }
    o.allow_nets = nets;
    o.n_allow_nets = n_nets;

    sluice_queue *q = cli_open_queue(cli_db_path(db_opt),
                                     SLUICE_QUEUE_NOCREATE);
    if (!q) {
        free(nets);
        return EXIT_FAILED;
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
