#!/usr/bin/env bash
# The "ratelimit" workload (issue 17): nginx's limit_req at RATE (100)
# requests a second, no burst, 429 without Retry-After, in front of the
# test origin (30 ms, 4 KiB images); N (1,000) images, cap 20. The ideal
# is N / RATE seconds (10 s).
#
# Side by side, alternating, ROUNDS (3) rounds, each run bounded by
# LIMIT_S (90) seconds: sluice --rate RATE/s; sluice with nothing
# configured (it adapts); curl --parallel --retry 10; aria2c; wget2.
# Per tool, medians: seconds, ideal/actual, the requests nginx throttled,
# and the images stored byte-exact (the rest are missing or hold an error
# page).
#
# Then the plot: one more adaptive run, its learnt limit sampled from
# `sluice status --json` every 0.2 s, beside what nginx answered and
# throttled each second: ratelimit-trace.tsv and bench/ratelimit.svg.
#   bash bench/ratelimit.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
n=${RATELIMIT_N:-1000}
rate=${RATE:-100}
rounds=${ROUNDS:-3}
limit_s=${LIMIT_S:-90}
cap=20
. "$root/bench/lib.sh"
bench_prepare ratelimit "$@"

"$bin/tests/origin/sluice-origin" --quiet --port-file origin.port \
    --latency fixed:30 --size fixed:4096 &
pids+=($!)
for _ in $(seq 100); do [ -s origin.port ] && break; sleep 0.05; done
origin_port=$(cat origin.port)

start_nginx "$out/nginx" pids <<CONF
    limit_req_zone \$server_name zone=rl:1m rate=${rate}r/s;
    log_format timed '\$msec \$request_time \$status';
    upstream origin { server 127.0.0.1:$origin_port; keepalive 64; }
    server {
        listen 127.0.0.1:@PORT@;
        server_name rl;
        access_log $out/timed.log timed;
        limit_req zone=rl;
        limit_req_status 429;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
CONF
base=$nginx_base
"$bin/bench/gen_feed" "$n" lines "$base" >urls.txt

# ------------------------------------------------------------ the tools
# TOOL_fetch STORE: fetch urls.txt into STORE, keeping the file names.

sluice_run() { # STORE EXTRA-OPTIONS...
    local store=$1
    shift
    rm -f q.db*
    "$bin/sluice" ingest --quiet --allow-private --db q.db urls.txt >/dev/null
    timeout "$limit_s" "$bin/sluice" run --db q.db --store "$store" \
        --max-concurrency $cap --allow-private --quiet "$@" \
        >/dev/null 2>&1 || true
}

sluice_rate_fetch() { sluice_run "$1" --rate "$rate/s"; }

sluice_fetch() { sluice_run "$1"; }

curl_fetch() {
    awk -v d="$1" '{ f = $0; sub(/.*\//, "", f)
        printf "url = \"%s\"\noutput = \"%s/%s\"\n", $0, d, f }' \
        urls.txt >curl.cfg
    timeout "$limit_s" curl --silent --parallel --parallel-max $cap \
        --retry 10 --config curl.cfg >/dev/null 2>&1 || true
}

aria2c_fetch() {
    timeout "$limit_s" aria2c --quiet=true -j $cap -x 1 --max-tries 10 \
        --retry-wait 1 --allow-overwrite=true --auto-file-renaming=false \
        --file-allocation=none --summary-interval=0 -d "$1" -i urls.txt \
        >/dev/null 2>&1 || true
}

wget2_fetch() {
    timeout "$limit_s" wget2 --quiet --max-threads $cap --no-robots \
        --compression=none --tries 10 --waitretry 1 \
        --directory-prefix "$1" --input-file urls.txt >/dev/null 2>&1 ||
        true
}

tools=(sluice_rate sluice curl aria2c wget2)
: >results.tsv # tool round seconds throttled byte_exact
for r in $(seq "$rounds"); do
    for tool in "${tools[@]}"; do
        store=stores/$tool-$r
        mkdir -p "$store"
        : >timed.log
        start=$EPOCHREALTIME
        "${tool}_fetch" "$store"
        end=$EPOCHREALTIME
        secs=$(awk -v a="${start/,/.}" -v b="${end/,/.}" \
            'BEGIN { printf "%.2f", b - a }')
        throttled=$(awk '$3 == 429' timed.log | wc -l)
        read -r good _ <<<"$("$bin/tests/origin/origin_verify" tree \
            fixed:4096 "$store")"
        printf '%s\t%s\t%s\t%s\t%s\n' "$tool" "$r" "$secs" "$throttled" \
            "$good" >>results.tsv
        echo "  ratelimit $tool round $r: ${secs}s, $throttled throttled," \
            "$good byte-exact" >&2
    done
done

echo "ratelimit: nginx limit_req ${rate} r/s (no burst, 429), $n images," \
    "cap $cap; ideal $(awk -v n="$n" -v r="$rate" 'BEGIN { print n / r }') s;" \
    "medians of $rounds rounds (runs cut at $limit_s s)"
# Columns: 3 seconds, 4 throttled, 5 byte-exact.
bench_table results.tsv '
    printf "%-12s %8s %10s %10s %11s %11s\n", "tool", "seconds",
        "ideal/act", "throttled", "thr/images", "byte-exact"
    for (i = 1; i <= m; i++) {
        t = order[i]; secs = median(runs[t, 3]); thr = median(runs[t, 4])
        good = median(runs[t, 5])
        # The ideal is for every image: a tool that stored fewer has none.
        ratio = good == n ? sprintf("%.2f", n / rate / secs) : "-"
        printf "%-12s %8.2f %10s %10d %11.2f %6d/%d\n", t, secs, ratio,
            thr, thr / n, good, n
        json = json sprintf("%s{\"tool\":\"%s\",\"seconds\":%.2f," \
            "\"ideal_over_actual\":%s,\"throttled\":%d," \
            "\"byte_exact\":%d}",
            json ? "," : "", t, secs, ratio == "-" ? "null" : ratio, thr,
            good)
    }
    printf "{\"workload\":\"ratelimit\",\"rate\":%d,\"images\":%d," \
        "\"results\":[%s]}\n", rate, n, json > "ratelimit.json"
' -v n="$n" -v rate="$rate"

# ------------------------------------------------------------ the plot
# One more adaptive run; its learnt limit as `status` shows it, sampled.
rm -f q.db*
"$bin/sluice" ingest --quiet --allow-private --db q.db urls.txt >/dev/null
mkdir -p stores/trace
: >timed.log
: >trace.tsv
t0=$EPOCHREALTIME
timeout "$limit_s" "$bin/sluice" run --db q.db --store stores/trace \
    --max-concurrency $cap --allow-private --quiet >/dev/null 2>&1 &
run_pid=$!
while kill -0 $run_pid 2>/dev/null; do
    now=$EPOCHREALTIME
    "$bin/sluice" status --db q.db --json 2>/dev/null |
        sed -n 's/.*"limit":\([0-9]*\),"rate":\([0-9.]*\).*/\1 \2/p' |
        awk -v a="${t0/,/.}" -v b="${now/,/.}" \
            '{ printf "%.2f\t%s\t%s\n", b - a, $1, $2 }' >>trace.tsv
    sleep 0.2
done
wait $run_pid || true
# nginx's answers and throttles, each second of the run.
awk -v a="${t0/,/.}" '{ s = int($1 - $2 - a); if (s < 0) s = 0
        if ($3 == 429) thr[s]++; else ok[s]++; if (s > last) last = s }
    END { for (s = 0; s <= last; s++) printf "%d\t%d\t%d\n", s, ok[s], thr[s] }' \
    timed.log >per-second.tsv
bash "$root/bench/ratelimit-plot.sh" trace.tsv per-second.tsv "$rate" \
    >"$root/bench/ratelimit.svg"
cp ratelimit.json "$root/bench/ratelimit.json"
echo "wrote bench/ratelimit.json and bench/ratelimit.svg" \
    "(the trace: bench/out/ratelimit/trace.tsv, per-second.tsv)"
