#!/usr/bin/env bash
# `make bench`: sluice against the tools users would pick instead, on the
# same URLs, alternating tools round by round, several rounds, medians.
#
# Workloads (issue 6):
#   partner         test origin, cap 20, lognormal latency (30 ms, sigma 1),
#                   PARTNER_N images (5,000) of a few KiB
#   partner-faults  the same with the fault mix of bench/gen_feed.c; the
#                   figure that matters besides speed is how many of the
#                   recoverable images arrive byte-exact
#   fast            nginx serving FAST_N (10,000) files of 8 KiB, cap 64:
#                   the CPU-bound case
#   batch           the original design (batches of 20, each waiting for
#                   its slowest), in the partner workload, for the record
#   ingest          bench/ingest.sh's 1,000,000 JSONL records, new and again
#   scale           a queue of 1,000,000 pending records: time to the first
#                   request, and peak RSS during the run
#   ratelimit       nginx limit_req at 100 r/s in front of the test origin,
#                   1,000 images, cap 20 (issue 17): sluice with --rate
#                   and adapting, curl --retry, aria2c, wget2; and the plot
#                   of sluice's learnt limit over time (bench/ratelimit.sh)
#   https           nginx over TLS with http2 in front of the test origin
#                   (partner latency), HTTPS_N (2,000) images, cap 20
#                   (issue 18): sluice --cacert, curl --parallel --cacert,
#                   wget2, aria2c; connections and protocol beside the
#                   times (bench/https.sh)
# Tools: sluice; curl --parallel; wget2 --max-threads; aria2c -j; xargs -P
# around curl; in the fast workload also curl_sync, curl followed by a
# syncfs (curl alone never makes its files durable). Output: a table,
# bench/results.json and bench/results.svg.
# Environment: ROUNDS (3), FAST_ROUNDS (7, or ROUNDS if more), PARTNER_N,
# FAST_N, WORKLOADS (all, or a list), TOOLS (sluice and every peer, or a
# list), BASE (a git revision: its sluice, built apart, runs as the tool
# sluice_base beside sluice every round, TOOLS defaults to those two, and
# the summary gives sluice's time over sluice_base's round by round).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rounds=${ROUNDS:-3}
# fast's runs last under a second each, and a median of 3 of them moved by
# 5-10% from one bench to the next on this 2-core VM: it gets more.
fast_rounds=${FAST_ROUNDS:-$((rounds > 7 ? rounds : 7))}
partner_n=${PARTNER_N:-5000}
fast_n=${FAST_N:-10000}
workloads=${WORKLOADS:-partner partner-faults fast ingest scale ratelimit https}

bash scripts/setup.sh build test bench >&2
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "$(nproc)" \
    --target sluice gen_feed sluice_origin origin_verify >/dev/null
bin=$root/build/release

# BASE=REV: REV's sluice, from a clean export of that commit (uncommitted
# changes and other worktrees play no part) in a release build of its own,
# kept in build/bench-base and reused while REV names the same commit. It
# runs as the tool sluice_base, exactly as sluice does. Comparing two
# commits is the point then, so TOOLS defaults to those two, and the extra
# peers (batch, curl_sync) run only when TOOLS is given, as they always do.
base_rev=${BASE:-}
if [ -n "$base_rev" ]; then
    read -r -a tools <<<"${TOOLS:-sluice sluice_base}"
else
    read -r -a tools <<<"${TOOLS:-sluice curl wget2 aria2c xargs}"
fi
partner_extra=(batch)
fast_extra=(curl_sync)
if [ -n "$base_rev" ] && [ -z "${TOOLS:-}" ]; then
    partner_extra=()
    fast_extra=()
fi
base_bin=
if [[ " ${tools[*]} " == *" sluice_base "* ]]; then
    if [ -z "$base_rev" ]; then
        echo "bench: the tool sluice_base needs BASE=REV" >&2
        exit 1
    fi
    if ! base_commit=$(git rev-parse --verify --quiet "$base_rev^{commit}")
    then
        echo "bench: BASE=$base_rev names no commit" >&2
        exit 1
    fi
    base_dir=$root/build/bench-base
    if [ "$(cat "$base_dir/commit" 2>/dev/null)" != "$base_commit" ] ||
        [ ! -x "$base_dir/build/sluice" ]; then
        echo "bench: building sluice at BASE=$base_rev ($base_commit)" >&2
        rm -rf "$base_dir"
        mkdir -p "$base_dir/src"
        git archive "$base_commit" | tar -x -C "$base_dir/src"
        cmake -S "$base_dir/src" -B "$base_dir/build" \
            -DCMAKE_BUILD_TYPE=Release >/dev/null
        cmake --build "$base_dir/build" -j "$(nproc)" --target sluice \
            >/dev/null
        echo "$base_commit" >"$base_dir/commit"
    fi
    base_bin=$base_dir/build
elif [ -n "$base_rev" ]; then
    echo "bench: BASE is set but TOOLS has no sluice_base: nothing to compare" >&2
fi

out=$root/bench/out/run
# The last run's files are deleted at the end, not now: ext4 creates
# files slowly for minutes after many are deleted (it steps over inodes
# freed moments ago), which would tax the tools measured next. This run's
# stores stay until the next run for the same reason.
old=$root/bench/out/run.old
rm -rf "$old"
[ -d "$out" ] && mv "$out" "$old"
mkdir -p "$out"
cd "$out"
: >results.tsv # workload tool round seconds cpu_s rss_kib ratio good bad violations peak wall_s

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$old"
}
trap cleanup EXIT

# ------------------------------------------------------------ servers

start_origin() { # NAME ORIGIN-OPTIONS... -> ${NAME}_base
    local name=$1
    shift
    rm -f "$name.port"
    "$bin/tests/origin/sluice-origin" --quiet --port-file "$name.port" "$@" &
    pids+=($!)
    for _ in $(seq 200); do [ -s "$name.port" ] && break; sleep 0.05; done
    eval "${name}_base=http://127.0.0.1:$(cat "$name.port")"
}

# start_nginx: bench/lib.sh's.
. "$root/bench/lib.sh"

# ------------------------------------------------------------ the tools
# Each: TOOL_fetch URLS N OUTDIR FAULTS(0/1). Output names keep the
# object number (N.jpg...) so bench can check them byte for byte.

sluice_with() { # SLUICE-BINARY URLS N OUTDIR FAULTS
    local sluice=$1
    shift
    "$sluice" ingest --quiet --allow-private --db q.db "$1" >/dev/null
    # Retries as prompt as the peers' (--retry-delay 0 and the like).
    "$sluice" run --db q.db --store "$3" --max-concurrency "$2" \
        --allow-private --quiet --stall-timeout 2 --backoff-base 0.05 \
        --backoff-cap 1 >/dev/null 2>&1 || true
}

sluice_fetch() { sluice_with "$bin/sluice" "$@"; }

# BASE's sluice (see above), for a paired comparison of two commits.
sluice_base_fetch() { sluice_with "$base_bin/sluice" "$@"; }

curl_config() { # URLS OUTDIR -> a curl config, one output per URL
    awk -v d="$2" '{ f = $0; sub(/.*\//, "", f); sub(/\?.*/, "", f)
        printf "url = \"%s\"\noutput = \"%s/%s\"\n", $0, d, f }' "$1"
}

curl_fetch() {
    local retry=()
    [ "$4" = 1 ] && retry=(--retry 8 --retry-all-errors --retry-delay 0
                           --speed-time 2 --speed-limit 1)
    curl_config "$1" "$3" >curl.cfg
    curl --silent --parallel --parallel-max "$2" "${retry[@]}" \
        --config curl.cfg >/dev/null 2>&1 || true
}

# curl, then one syncfs of the store's file system: what curl would need
# to store durably, as sluice does (fast workload only).
curl_sync_fetch() {
    curl_fetch "$@"
    sync -f "$3"
}

wget2_fetch() {
    wget2 --quiet --max-threads "$2" --no-robots --compression=none \
        --tries 8 --waitretry 0 --read-timeout 2 --retry-connrefused \
        --directory-prefix "$3" --input-file "$1" >/dev/null 2>&1 || true
}

aria2c_fetch() {
    aria2c --quiet=true -j "$2" -x 1 --max-tries 8 --retry-wait 0 \
        --lowest-speed-limit 1 --timeout 2 --allow-overwrite=true \
        --auto-file-renaming=false --file-allocation=none \
        --summary-interval=0 -d "$3" -i "$1" >/dev/null 2>&1 || true
}

xargs_fetch() {
    local retry=""
    [ "$4" = 1 ] && retry="--retry 8 --retry-all-errors --retry-delay 0 --speed-time 2 --speed-limit 1"
    (cd "$3" && xargs -P "$2" -n 1 curl -s -O $retry <"$out/$1") \
        >/dev/null 2>&1 || true
}

batch_fetch() { # the original design: batches of N, each waits for all
    split -l "$2" "$1" batch-
    for b in batch-*; do
        curl_config "$b" "$3" >"$b.cfg"
        curl --silent --parallel --parallel-max "$2" --config "$b.cfg" \
            >/dev/null 2>&1 || true
    done
    rm -f batch-*
}

# measure WORKLOAD TOOL ROUND URLS N BASE SIZE FAULTS
measure() {
    local w=$1 tool=$2 round=$3 urls=$4 n=$5 base=$6 size=$7 faults=$8
    # A fresh directory each time, and nothing deleted until the workload
    # is over: ext4 allocates inodes slowly next to ones deleted moments
    # ago, which would charge one tool for the previous one's cleanup.
    local store=stores/$w-$tool-$round
    rm -f q.db*
    mkdir -p "$store"
    [ "$base" = nginx ] || curl -s "$base/_reset" >/dev/null
    # Nothing left dirty by the tool before: a tool that syncs (sluice,
    # curl_sync) would write the previous tool's files too.
    sync
    local script start end
    script="$(declare -f "${tool}_fetch" curl_fetch curl_config sluice_with);
            bin=$bin; out=$out; base_bin=$base_bin;
            ${tool}_fetch $urls $n $store $faults"
    # time's %e has hundredths; the wall clock around it, microseconds,
    # serves the paired ratios of the summary (a fast run is 0.6 s).
    start=$EPOCHREALTIME
    /usr/bin/time -f "%e %U %S %M" -o time.txt bash -c "$script"
    end=$EPOCHREALTIME
    read -r secs user sys rss <time.txt
    local ratio=- peak=- violations=- good bad
    if [ "$base" != nginx ]; then
        curl -s "$base/_log" >log.txt
        ratio=$(awk -v N="$n" -f "$root/bench/ideal.awk" log.txt | cut -d' ' -f3)
        local stats
        stats=$(curl -s "$base/_stats")
        peak=$(sed -n 's/.*"peak_in_flight":\([0-9]*\).*/\1/p' <<<"$stats")
        violations=$(sed -n 's/.*"violations":\([0-9]*\).*/\1/p' <<<"$stats")
    fi
    read -r good bad <<<"$("$bin/tests/origin/origin_verify" tree "$size" "$store")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" \
        "$tool" "$round" "$secs" \
        "$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')" \
        "$rss" "$ratio" "$good" "$bad" "$violations" "$peak" \
        "$(awk -v a="${start/,/.}" -v b="${end/,/.}" \
            'BEGIN{printf "%.6f", b - a}')" >>results.tsv
    echo "  $w $tool round $round: ${secs}s, $good good, $bad bad" >&2
}

run_capped() { # WORKLOAD URLS N BASE SIZE FAULTS TOOLS...
    local w=$1 urls=$2 n=$3 base=$4 size=$5 faults=$6
    shift 6
    for r in $(seq "$rounds"); do
        for tool in "$@"; do
            measure "$w" "$tool" "$r" "$urls" "$n" "$base" "$size" "$faults"
        done
    done
    # The stores stay (see above): deleting 100,000 files would tax the
    # next workload's tools unevenly.
}

for w in $workloads; do
    case $w in
    partner | partner-faults | batch)
        if [ -z "${partner_base:-}" ]; then
            start_origin partner --limit 20 --latency lognormal:30:1 \
                --size fixed:4096
        fi
        if [ $w = partner-faults ]; then
            "$bin/bench/gen_feed" "$partner_n" lines "$partner_base" faults \
                >urls-$w.txt
            run_capped $w urls-$w.txt 20 "$partner_base" fixed:4096 1 \
                "${tools[@]}"
        elif [ $w = partner ]; then
            "$bin/bench/gen_feed" "$partner_n" lines "$partner_base" \
                >urls-$w.txt
            run_capped $w urls-$w.txt 20 "$partner_base" fixed:4096 0 \
                "${tools[@]}" "${partner_extra[@]}"
        fi
        ;;
    fast)
        mkdir -p www/img
        "$bin/tests/origin/origin_verify" size fixed:8192 0 >/dev/null
        for i in $(seq 0 $((fast_n - 1))); do
            "$bin/tests/origin/origin_verify" body "$i" 8192 >www/img/$i.jpg
        done
        start_nginx "$out/nginx" pids <<CONF
    server { listen 127.0.0.1:@PORT@; root $out/www; }
CONF
        for i in $(seq 0 $((fast_n - 1))); do
            echo "$nginx_base/img/$i.jpg"
        done >urls-fast.txt
        rounds=$fast_rounds run_capped fast urls-fast.txt 64 nginx fixed:8192 \
            0 "${tools[@]}" "${fast_extra[@]}"
        ;;
    ingest)
        ROUNDS=$rounds bash "$root/bench/ingest.sh" | tee ingest.txt >&2
        ;;
    scale)
        bash "$root/bench/scale.sh" "$bin" | tee scale.txt >&2
        ;;
    ratelimit)
        ROUNDS=$rounds bash "$root/bench/ratelimit.sh" "$bin" |
            tee ratelimit.txt >&2
        ;;
    https)
        ROUNDS=$rounds bash "$root/bench/https.sh" "$bin" |
            tee https.txt >&2
        ;;
    esac
done

# ------------------------------------------------------------ report
awk -F'\t' -v rounds="$rounds" '
function median(key,   n, i, j, t, a) {
    n = split(vals[key], a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; j = i - 1
        while (j >= 1 && a[j] + 0 > t + 0) { a[j + 1] = a[j]; j-- }
        a[j + 1] = t }
    return a[int((n + 1) / 2)]
}
{
    k = $1 SUBSEP $2
    if (!(k in seen)) { seen[k] = 1; order[++n] = k }
    vals[k SUBSEP "s"] = vals[k SUBSEP "s"] " " $4
    vals[k SUBSEP "cpu"] = vals[k SUBSEP "cpu"] " " $5
    vals[k SUBSEP "rss"] = vals[k SUBSEP "rss"] " " $6
    vals[k SUBSEP "ratio"] = vals[k SUBSEP "ratio"] " " $7
    vals[k SUBSEP "good"] = vals[k SUBSEP "good"] " " $8
    if ($10 != "-") viol[k] += $10
    if ($11 != "-" && $11 + 0 > peak[k] + 0) peak[k] = $11
    count[$1] = $8 + $9
}
END {
    tw = 9 # the tool column: wider only for sluice_base
    for (i = 1; i <= n; i++) {
        split(order[i], p, SUBSEP)
        w = p[1]; t = p[2]; k = order[i]
        s = median(k SUBSEP "s"); good = median(k SUBSEP "good")
        ips[k] = good / s
        if (t == "sluice") base[w] = good / s
        if (length(t) > tw) tw = length(t)
    }
    printf "%-15s %-" tw "s %9s %8s %13s %9s %9s %10s %5s\n", "workload", "tool",
        "images/s", "vs_sluice", "cpu_s/1000", "rss_MiB", "ideal/act",
        "byte-exact", "viol"
    for (i = 1; i <= n; i++) {
        split(order[i], p, SUBSEP)
        w = p[1]; t = p[2]; k = order[i]
        s = median(k SUBSEP "s"); good = median(k SUBSEP "good")
        printf "%-15s %-" tw "s %9.1f %7.2fx %13.3f %9.1f %9s %10d %5s\n", w, t,
            ips[k], base[w] ? ips[k] / base[w] : 0,
            median(k SUBSEP "cpu") / (good ? good : 1) * 1000,
            median(k SUBSEP "rss") / 1024, median(k SUBSEP "ratio"), good,
            (k in viol) ? viol[k] : "-"
        json = json sprintf("%s{\"workload\":\"%s\",\"tool\":\"%s\",\"images_per_s\":%.1f,\"ratio_to_sluice\":%.3f,\"cpu_s_per_1000\":%.3f,\"peak_rss_mib\":%.1f,\"ideal_over_actual\":%s,\"byte_exact\":%d,\"violations\":%s}",
            json ? "," : "", w, t, ips[k], base[w] ? ips[k] / base[w] : 0,
            median(k SUBSEP "cpu") / (good ? good : 1) * 1000,
            median(k SUBSEP "rss") / 1024,
            median(k SUBSEP "ratio") == "-" ? "null" : median(k SUBSEP "ratio"),
            good, (k in viol) ? viol[k] : "null")
    }
    printf "{\"rounds\":%d,\"results\":[%s]}\n", rounds, json > "results.json"
}' results.tsv | tee table.txt
if [ -n "$base_bin" ]; then
    short=$(git -C "$root" rev-parse --short "$base_commit")
    echo "paired: sluice (this tree) against sluice_base (BASE=$base_rev," \
        "$short), per round sluice's time over sluice_base's:"
    awk -F'\t' -v rev="$base_rev" -v commit="$base_commit" '
    function fmt(x) { return sprintf("%.3f", x) }
    $2 == "sluice" || $2 == "sluice_base" {
        if (!($1 in seen)) { seen[$1] = 1; order[++nw] = $1 }
        t[$1, $3, $2] = $12; good[$1, $3, $2] = $8
        if (!(($1, $3) in rseen)) { rseen[$1, $3] = 1; rs[$1] = rs[$1] " " $3 }
    }
    END {
        for (i = 1; i <= nw; i++) {
            w = order[i]; n = 0; differ = 0; list = ""
            m = split(rs[w], r, " ")
            for (j = 1; j <= m; j++) {
                k = w SUBSEP r[j]
                if (!((k, "sluice") in t) || !((k, "sluice_base") in t) ||
                    t[k, "sluice_base"] <= 0) continue
                x = t[k, "sluice"] / t[k, "sluice_base"]
                v[++n] = x; list = list (n > 1 ? "," : "") fmt(x)
                if (good[k, "sluice"] != good[k, "sluice_base"]) differ = 1
            }
            if (n == 0) continue
            for (a = 2; a <= n; a++) { x = v[a]; b = a - 1
                while (b >= 1 && v[b] > x) { v[b + 1] = v[b]; b-- }
                v[b + 1] = x }
            med = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            printf "%s: sluice/sluice_base time ratio median %s (%s-%s) over %d rounds%s\n",
                w, fmt(med), fmt(v[1]), fmt(v[n]), n,
                differ ? "; the byte-exact counts differ, see the table" : ""
            json = json sprintf("%s{\"workload\":\"%s\",\"time_ratio\":\"sluice/sluice_base\",\"rounds\":%d,\"median\":%s,\"min\":%s,\"max\":%s,\"per_round\":[%s],\"byte_exact_differ\":%s}",
                json ? "," : "", w, n, fmt(med), fmt(v[1]), fmt(v[n]), list,
                differ ? "true" : "false")
        }
        gsub(/["\\]/, "", rev) # JSON-safe; the commit names it anyway
        printf "\"base\":{\"rev\":\"%s\",\"commit\":\"%s\"},\"paired\":[%s]",
            rev, commit, json > "paired.json"
    }' results.tsv | tee paired.txt
    results=$(cat results.json)
    printf '%s,%s}\n' "${results%\}}" "$(cat paired.json)" >results.json
fi
if [ -s urls-partner-faults.txt ]; then
    read -r recoverable dead <<<"$("$bin/bench/gen_feed" --expect "$partner_n")"
    echo "partner-faults: $recoverable of $partner_n images are recoverable ($dead always fail); byte-exact above counts them"
fi
[ -s ingest.txt ] && grep -E '^sluice|^sqlite3' ingest.txt | sed 's/^/ingest  /' || true
[ -s scale.txt ] && sed 's/^/scale   /' scale.txt || true
[ -s ratelimit.txt ] && cat ratelimit.txt || true
[ -s https.txt ] && cat https.txt || true
cp results.json "$root/bench/results.json"
bash "$root/bench/plot.sh" results.json >"$root/bench/results.svg"
echo "wrote bench/results.json and bench/results.svg"
[ -d "$out/stores" ] && echo "the stores are kept in bench/out/run/stores ($(du -sh "$out/stores" | cut -f1)) until the next run; rm -rf bench/out frees them"
