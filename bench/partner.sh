#!/usr/bin/env bash
# The "partner" benchmark (issue 3's targets): the test origin with cap
# N = 20 and lognormal latency (median 30 ms, sigma 1), RECORDS images
# (default 2,000) of 4 KiB. Side by side, alternating, ROUNDS rounds
# (default 3): sluice; curl --parallel --parallel-max 20 on the same URLs;
# and the original design's batch semantics (batches of 20, each waiting
# for its slowest: curl --parallel on one batch at a time). For each: wall
# time, images/s, ideal/actual (the ideal replays the latencies the origin
# served through 20 slots in feed order, bench/ideal.awk), the origin's
# peak and violations. Then sluice's peak RSS on 10,000 records.
set -euo pipefail
cd "$(dirname "$0")/.."
records=${RECORDS:-2000}
rounds=${ROUNDS:-3}
n=20

bash scripts/setup.sh build test bench >&2
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "$(nproc)" \
    --target sluice gen_feed sluice_origin >/dev/null
bin=$PWD/build/release
out=$PWD/bench/out/partner
rm -rf "$out" && mkdir -p "$out"
cd "$out"

"$bin/tests/origin/sluice-origin" --quiet --port-file origin.port \
    --limit $n --latency lognormal:30:1 --size fixed:4096 &
origin=$!
trap 'kill $origin 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s origin.port ] && break; sleep 0.05; done
base=http://127.0.0.1:$(cat origin.port)
"$bin/bench/gen_feed" "$records" lines "$base" >urls.txt

now() { date +%s.%N; }
reset_origin() { curl -s "$base/_reset" >/dev/null; }
stat_of() { curl -s "$base/_stats" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }

# measure TOOL CMD...: run prepare_TOOL (untimed: removing the last
# round's files), then CMD against a reset origin; append a line "tool
# seconds ideal_ms actual_ms ratio peak violations" to results.
measure() {
    local tool=$1
    shift
    rm -rf q.db* store curl-out batch-*
    mkdir curl-out
    reset_origin
    local t0 t1
    t0=$(now)
    "$@" >/dev/null 2>&1
    t1=$(now)
    curl -s "$base/_log" >log-$tool.txt
    read -r ideal actual ratio <<<"$(awk -v N=$n -f "$OLDPWD/bench/ideal.awk" log-$tool.txt)"
    echo "$tool $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}') $ideal $actual $ratio $(stat_of peak_in_flight) $(stat_of violations)" >>results
}

run_sluice() {
    "$bin/sluice" ingest --allow-private --quiet --db q.db urls.txt >/dev/null
    "$bin/sluice" run --db q.db --store store --max-concurrency $n \
        --allow-net 127.0.0.1/32 --quiet
}

curl_config() { # URLs -> a curl config with one output per URL
    awk '{ printf "url = \"%s\"\noutput = \"curl-out/%d.jpg\"\n", $0, NR }'
}

run_curl() {
    curl_config <urls.txt >curl.cfg
    curl --silent --parallel --parallel-max $n --config curl.cfg
}

run_batches() {
    split -l $n urls.txt batch-
    for b in batch-*; do
        curl_config <"$b" >"$b.cfg"
        curl --silent --parallel --parallel-max $n --config "$b.cfg"
    done
    rm -f batch-*
}

: >results
for r in $(seq "$rounds"); do
    measure sluice run_sluice
    measure curl-parallel run_curl
    measure batch-of-20 run_batches
done

median_of() { # TOOL FIELD
    awk -v t="$1" -v f="$2" '$1 == t { print $f }' results | sort -n |
        awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}
sluice_s=$(median_of sluice 2)
printf '%-14s %8s %9s %13s %9s %5s %10s\n' tool seconds images/s \
    ideal/actual vs_sluice peak violations
for tool in sluice curl-parallel batch-of-20; do
    s=$(median_of $tool 2)
    awk -v t=$tool -v s="$s" -v n="$records" -v r="$(median_of $tool 5)" \
        -v base="$sluice_s" -v p="$(median_of $tool 6)" \
        -v v="$(awk -v t=$tool '$1 == t { v += $7 } END { print v + 0 }' results)" \
        'BEGIN { printf "%-14s %8.2f %9.1f %13.3f %8.2fx %5d %10d\n",
                 t, s, n / s, r, base / s, p, v }'
done

# Peak RSS on 10,000 records (the queue and store as a real run has them).
"$bin/bench/gen_feed" 10000 lines "$base" >urls10k.txt
rm -rf q.db* store
"$bin/sluice" ingest --allow-private --quiet --db q.db urls10k.txt >/dev/null
reset_origin
/usr/bin/time -f "%M" -o rss.txt "$bin/sluice" run --db q.db --store store \
    --max-concurrency $n --allow-net 127.0.0.1/32 --quiet >/dev/null
echo "sluice peak RSS, 10,000 records: $(awk '{ printf "%.1f MiB", $1 / 1024 }' rss.txt)"
echo "(targets: sluice ideal/actual >= 0.95, >= 1.0x curl-parallel, peak RSS <= 32 MiB)"
