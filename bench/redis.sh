#!/usr/bin/env bash
# The Redis workloads (issue 19): a redis-server of our own on a unix
# socket (AOF, appendfsync everysec) and the partner origin (cap 20,
# lognormal latency 30 ms, sigma 1, REDIS_N images of 4 KiB).
#
#   partner   one runner on SQLite, one runner on Redis, and three runners
#             on one Redis queue sharing the cap (each given 20): seconds,
#             ideal/actual (bench/ideal.awk on the origin's log), peak and
#             violations, byte-exact objects; for Redis, the commands it
#             ran per record (INFO commandstats) and its memory per queued
#             record (INFO memory, after the ingest)
#   fast      nginx serving FAST_N files of 8 KiB, cap 64: one runner on
#             SQLite against one on Redis (the CPU-bound case)
#   ingest    INGEST_N JSONL records into Redis and into SQLite, against
#             redis-benchmark -P 64 -t set on the same socket; for the
#             Redis runs, Redis's CPU and the AOF rewrites it forked for
#
#   bash bench/redis.sh [BUILD_DIR]
#   REDIS_N=5000 FAST_N=10000 INGEST_N=1000000 ROUNDS=3
#   REDIS_WORKLOADS="partner fast ingest"
#   BASE_BIN=DIR: the fast workload also runs DIR/sluice on Redis each
#   round (the tool redis1base, right after redis1), for a pair measured
#   under the same conditions; the table adds redis1's time over its
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
n=${REDIS_N:-5000}
fast_n=${FAST_N:-10000}
ingest_n=${INGEST_N:-1000000}
rounds=${ROUNDS:-3}
limit_s=${LIMIT_S:-300}
workloads=${REDIS_WORKLOADS:-partner fast ingest}
base_bin=${BASE_BIN:+$(cd "$BASE_BIN" && pwd)}
cap=20
. "$root/bench/lib.sh"
bench_prepare redis "$@"

sock=$out/redis.sock
redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 \
    --dir "$out" --appendonly yes --appendfsync everysec --save "" \
    --logfile "$out/redis.log" &
pids+=($!)
rcli() { redis-cli -s "$sock" "$@"; }
for _ in $(seq 100); do
    [ "$(rcli PING 2>/dev/null)" = PONG ] && break
    sleep 0.05
done
[ "$(rcli PING)" = PONG ] || { echo "bench: redis-server did not start" >&2
                                exit 1; }
db=unix://$sock

"$bin/tests/origin/sluice-origin" --quiet --port-file origin.port \
    --limit $cap --latency lognormal:30:1 --size fixed:4096 &
pids+=($!)
for _ in $(seq 100); do [ -s origin.port ] && break; sleep 0.05; done
origin=http://127.0.0.1:$(cat origin.port)

# Redis's figures: commands run (all kinds) and memory in use.
redis_calls() {
    rcli INFO commandstats | tr -d '\r' |
        awk -F'[=,]' '/^cmdstat_/ { n += $2 } END { print n + 0 }'
}
redis_memory() {
    rcli INFO memory | tr -d '\r' | sed -n 's/^used_memory://p'
}
# Redis's CPU seconds so far (user and system, its threads).
redis_cpu() {
    rcli INFO cpu | tr -d '\r' |
        awk -F: '/^used_cpu_(user|sys):/ { s += $2 } END { print s + 0 }'
}

# Redis's forks so far (each an AOF rewrite here: no RDB snapshots).
redis_forks() {
    rcli INFO stats | tr -d '\r' | sed -n 's/^total_forks://p'
}
# redis_mark, then redis_since: Redis's CPU seconds in between (its own
# process; a rewrite's child is not in it) and the forks it made, two
# tab-separated columns.
redis_mark() {
    mark_cpu=$(redis_cpu)
    mark_forks=$(redis_forks)
}
redis_since() {
    awk -v a="$mark_cpu" -v b="$(redis_cpu)" -v f="$mark_forks" \
        -v g="$(redis_forks)" 'BEGIN { printf "%.2f\t%d", b - a, g - f }'
}

# runners QUEUE STORE N CAP: N sluice runs at once on QUEUE, each with
# --max-concurrency CAP, into STORE; waits for all. Each one's CPU
# seconds (user and system) in runner-N.cpu.
runners() {
    local queue=$1 store=$2 count=$3 each=$4 i
    local run_pids=()
    for i in $(seq "$count"); do
        /usr/bin/time -f "%U %S" -o "runner-$i.cpu" \
            timeout "$limit_s" "$sluice" run --db "$queue" --store "$store" \
            --max-concurrency "$each" --allow-net 127.0.0.1/32 --quiet \
            >"runner-$i.out" 2>&1 &
        run_pids+=($!)
    done
    for i in "${run_pids[@]}"; do wait "$i" || true; done
}

# measure WORKLOAD TOOL ROUND URLS CAP SIZE BASE: ingest URLS into the
# tool's queue (untimed but for its memory), then time the run(s).
measure() {
    local w=$1 tool=$2 r=$3 urls=$4 each=$5 size=$6 base=$7
    local queue count=1 store=stores/$w-$tool-$r mem=- calls=- records
    sluice=$bin/sluice
    [ "$tool" = redis1base ] && sluice=$base_bin/sluice
    records=$(wc -l <"$urls")
    case $tool in
    sqlite*) rm -f q.db*; queue=q.db ;;
    redis*) rcli FLUSHALL >/dev/null; queue=$db ;;
    esac
    [ "$tool" = redis3 ] && count=3
    local m0 c0 rcpu=-
    [ "$queue" = q.db ] || m0=$(redis_memory)
    "$sluice" ingest --quiet --allow-private --db "$queue" "$urls" \
        >/dev/null 2>&1
    if [ "$queue" != q.db ]; then
        mem=$(awk -v a="$m0" -v b="$(redis_memory)" -v n="$records" \
            'BEGIN { printf "%.0f", (b - a) / n }')
        rcli CONFIG RESETSTAT >/dev/null
        c0=$(redis_cpu)
    fi
    mkdir -p "$store"
    [ "$base" = nginx ] || curl -s "$base/_reset" >/dev/null
    sync
    local start=$EPOCHREALTIME
    runners "$queue" "$store" $count "$each"
    local end=$EPOCHREALTIME
    if [ "$queue" != q.db ]; then
        calls=$(awk -v c="$(redis_calls)" -v n="$records" \
            'BEGIN { printf "%.2f", c / n }')
        rcpu=$(awk -v a="$c0" -v b="$(redis_cpu)" -v n="$records" \
            'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')
    fi
    local scpu
    scpu=$(cat runner-*.cpu | awk -v n="$records" '/^[0-9.]+ [0-9.]+$/ {
        s += $1 + $2 } END { printf "%.1f", s * 1e6 / n }')
    rm -f runner-*.cpu
    local secs ratio=- peak=- viol=- good
    secs=$(awk -v a="${start/,/.}" -v b="${end/,/.}" \
        'BEGIN { printf "%.3f", b - a }')
    if [ "$base" != nginx ]; then
        curl -s "$base/_log" >log.txt
        ratio=$(awk -v N=$cap -f "$root/bench/ideal.awk" log.txt |
            cut -d' ' -f3)
        local stats
        stats=$(curl -s "$base/_stats")
        peak=$(sed -n 's/.*"peak_in_flight":\([0-9]*\).*/\1/p' <<<"$stats")
        viol=$(sed -n 's/.*"violations":\([0-9]*\).*/\1/p' <<<"$stats")
    fi
    read -r good _ <<<"$("$bin/tests/origin/origin_verify" tree "$size" \
        "$store")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$w/$tool" "$r" "$secs" "$ratio" "$peak" "$viol" "$good" \
        "$records" "$calls" "$mem" "$scpu" "$rcpu" >>results.tsv
    echo "  redis $w $tool round $r: ${secs}s, peak $peak, viol $viol," \
        "$good byte-exact, $calls commands/record, CPU us/record:" \
        "sluice $scpu, redis $rcpu" >&2
    # Kept until the end: deleting 80 MB here makes the disk's discards
    # (this VM mounts with -o discard) run during the next round.
}

: >results.tsv
for w in $workloads; do
    case $w in
    partner)
        "$bin/bench/gen_feed" "$n" lines "$origin" >urls-partner.txt
        for r in $(seq "$rounds"); do
            for tool in sqlite1 redis1 redis3; do
                measure partner $tool "$r" urls-partner.txt $cap fixed:4096 \
                    "$origin"
            done
        done
        ;;
    fast)
        mkdir -p www/img
        for i in $(seq 0 $((fast_n - 1))); do
            "$bin/tests/origin/origin_verify" body "$i" 8192 >www/img/$i.jpg
        done
        start_nginx "$out/nginx" pids <<CONF
    server { listen 127.0.0.1:@PORT@; root $out/www; }
CONF
        for i in $(seq 0 $((fast_n - 1))); do
            echo "$nginx_base/img/$i.jpg"
        done >urls-fast.txt
        for r in $(seq "$rounds"); do
            for tool in sqlite1 redis1 ${base_bin:+redis1base}; do
                measure fast $tool "$r" urls-fast.txt 64 fixed:8192 nginx
            done
        done
        ;;
    ingest)
        "$bin/bench/gen_feed" "$ingest_n" jsonl >feed.jsonl
        for r in $(seq "$rounds"); do
            rcli FLUSHALL >/dev/null
            redis_mark
            /usr/bin/time -f "%e" -o t.txt "$bin/sluice" ingest --quiet \
                --db "$db" feed.jsonl >/dev/null
            printf 'ingest/redis\t%s\t%s\t%s\n' "$r" "$(cat t.txt)" \
                "$(redis_since)" >>ingest.tsv
            rm -f q.db*
            /usr/bin/time -f "%e" -o t.txt "$bin/sluice" ingest --quiet \
                --db q.db feed.jsonl >/dev/null
            printf 'ingest/sqlite\t%s\t%s\t-\t-\n' "$r" "$(cat t.txt)" \
                >>ingest.tsv
            rcli FLUSHALL >/dev/null
            redis_mark
            sets=$(redis-benchmark -s "$sock" -P 64 -t set -n "$ingest_n" \
                -q 2>/dev/null | tr '\r' '\n' |
                sed -n 's/^SET: \([0-9.]*\) requests per second.*/\1/p' |
                tail -1)
            printf 'ingest/redis-benchmark\t%s\t%s\t%s\n' "$r" \
                "$(awk -v s="$sets" -v n="$ingest_n" \
                    'BEGIN { printf "%.3f", n / s }')" \
                "$(redis_since)" >>ingest.tsv
        done
        rcli FLUSHALL >/dev/null
        ;;
    *) echo "bench: unknown Redis workload '$w'" >&2; exit 1 ;;
    esac
done

rm -rf stores

echo "redis: the partner origin (cap $cap, lognormal 30 ms, sigma 1), $n" \
    "images; nginx, $fast_n files, cap 64; medians of $rounds rounds"
if [ -s results.tsv ]; then
    bench_table results.tsv '
    printf "%-15s %8s %9s %9s %5s %5s %11s %12s %12s %7s %7s\n",
        "workload/tool", "seconds", "images/s", "ideal/act", "peak",
        "viol", "byte-exact", "cmds/record", "bytes/record", "cpu_sl",
        "cpu_rd"
    for (i = 1; i <= m; i++) {
        t = order[i]; secs = median(runs[t, 3])
        split(t, wt, "/"); base = wt[1] "/sqlite1"
        printf "%-15s %8.2f %9.1f %9s %5s %5d %6d/%-5d %12s %12s %7s %7s",
            t, secs, median(runs[t, 7]) / secs, median(runs[t, 4]),
            median(runs[t, 5]), total[t, 6], median(runs[t, 7]),
            last[t, 8], median(runs[t, 9]), median(runs[t, 10]),
            median(runs[t, 11]), median(runs[t, 12])
        if (t != base && (base in seen))
            printf "  %.2fx %s", median(runs[base, 3]) / secs, base
        printf "\n"
    }'
    # paired A B WHAT: A's time over B's, round by round (runs of one
    # round ran back to back, so a slow spell of the host is in both),
    # and the median of those ratios.
    paired() {
        awk -F'\t' -v a="$1" -v b="$2" -v what="$3" '
            $1 == a { x[$2] = $3 } $1 == b { y[$2] = $3 }
            END { for (r = 1; (r in x) && (r in y); r++) {
                      q[r] = y[r] / x[r]; s = s sprintf(" %.2f", q[r]) }
                  n = r - 1; if (n == 0) exit
                  for (i = 2; i <= n; i++) { t = q[i]
                      for (j = i - 1; j >= 1 && q[j] > t; j--)
                          q[j + 1] = q[j]
                      q[j + 1] = t }
                  printf "paired: %s, round by round:%s; median %.2fx\n",
                      what, s, q[int((n + 1) / 2)] }' results.tsv
    }
    paired fast/redis1 fast/sqlite1 "fast/redis1 throughput over fast/sqlite1"
    paired partner/redis1 partner/sqlite1 \
        "partner/redis1 throughput over partner/sqlite1"
    if [ -n "$base_bin" ]; then
        paired fast/redis1base fast/redis1 \
            "redis1 (this build) time over redis1base ($base_bin)"
    fi
fi
if [ -s ingest.tsv ]; then
    echo "ingest: $ingest_n JSONL records; redis-benchmark -P 64 -t set" \
        "-n $ingest_n on the same socket"
    bench_table ingest.tsv '
    printf "%-24s %8s %10s %10s %7s %9s\n", "tool", "seconds",
        "records/s", "vs_sets", "cpu_rd", "rewrites"
    for (i = 1; i <= m; i++) {
        t = order[i]; secs = median(runs[t, 3])
        printf "%-24s %8.2f %10.0f %9.2fx %7s %9s\n", t, secs, n / secs,
            median(runs["ingest/redis-benchmark", 3]) / secs,
            median(runs[t, 4]), runs[t, 5]
    }' -v n="$ingest_n"
    echo "(cpu_rd: Redis's own CPU seconds, median; rewrites: the AOF" \
        "rewrites Redis forked for during each round's run, whose" \
        "children's CPU competes for the same cores)"
fi
echo "(cpu_sl, cpu_rd: the runners' and Redis's CPU, microseconds a record)"
echo "(targets: redis3 ideal/act >= 0.95 with 0 violations; redis1 >= 0.9x"
echo " sqlite1 on partner and fast; ingest into Redis >= 0.5x its SETs/s)"
