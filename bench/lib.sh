# Sourced by the benchmarks' workload scripts (bench/ratelimit.sh,
# bench/https.sh, bench/kinesis.sh) and bench/run.sh.

# bench_prepare NAME [BUILD_DIR]: with no BUILD_DIR (the script run by
# hand), install what is missing and make a release build; sets bin to
# the build, out to bench/out/NAME (emptied) and goes there; servers
# started into the array pids are stopped on exit.
bench_prepare() {
    local name=$1
    bin=$PWD/build/release
    if [ -n "${2:-}" ]; then
        bin=$(cd "$2" && pwd)
    else
        bash scripts/setup.sh build test bench >&2
        cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
        cmake --build build/release -j "$(nproc)" \
            --target sluice gen_feed sluice_origin origin_verify \
            kinesis_admin >/dev/null
    fi
    out=$PWD/bench/out/$name
    rm -rf "$out" && mkdir -p "$out"
    cd "$out"
    pids=()
    trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
}

# start_nginx DIR PIDS-ARRAY-NAME, with the http{} block's servers on
# stdin (@PORT@ for the port), sets nginx_base to http://127.0.0.1:PORT
# once nginx answers. nginx's files go in DIR.
start_nginx() {
    local dir=$1 pids_name=$2 port servers
    servers=$(cat)
    mkdir -p "$dir"
    for _ in $(seq 8); do
        port=$((20000 + RANDOM % 30000))
        cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_requests 1000000;
${servers//@PORT@/$port}
}
CONF
        nginx -p "$dir" -c "$dir/nginx.conf" 2>/dev/null &
        eval "$pids_name+=($!)"
        for _ in $(seq 50); do
            # Any answer will do, a 404 or a 429 too.
            if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
                nginx_base=http://127.0.0.1:$port
                return 0
            fi
            sleep 0.1
        done
    done
    echo "bench: nginx did not start" >&2
    exit 1
}

# bench_table RESULTS PROGRAM [AWK-OPTIONS...]: a workload's table of
# medians. RESULTS is tab-separated, a row a run: the tool, the round,
# then the run's figures. PROGRAM, awk, runs at the end with order[1..m]
# the tools in the order they first ran, seen[tool] set for each, and
# for a tool t and a column c (3 on): runs[t, c] its values, space-
# separated, for median(); last[t, c] the last; total[t, c] the sum.
bench_table() {
    local results=$1 program=$2
    shift 2
    awk -F'\t' "$@" '
function median(s,   k, i, j, t, a) {
    k = split(s, a, " ")
    for (i = 2; i <= k; i++) { t = a[i]; j = i - 1
        while (j >= 1 && a[j] + 0 > t + 0) { a[j + 1] = a[j]; j-- }
        a[j + 1] = t }
    return a[int((k + 1) / 2)]
}
{
    if (!($1 in seen)) { seen[$1] = 1; order[++m] = $1 }
    for (c = 3; c <= NF; c++) {
        runs[$1, c] = runs[$1, c] " " $c; last[$1, c] = $c
        total[$1, c] += $c
    }
}
END {'"$program"'}' "$results"
}

# bench_kinesalite NAME: kinesalite on loopback, started as the tests
# start it (tests/kinesis/start.sh, sourced here: one copy of how), with
# the AWS_* environment pointed at it; sets ${NAME}_url and ADMIN (the
# tests' kinesis_admin: create, list, dump). Needs bench_prepare first;
# stopped on exit with the servers in pids.
bench_kinesalite() {
    SOURCE_DIR=$root
    BUILD_DIR=$bin
    # What start.sh expects of tests/cli/lib.sh: here a missing peer or
    # a server that does not start ends the bench.
    skip() { echo "bench: $*" >&2; exit 1; }
    fail() { echo "bench: $*" >&2; }
    finish() { exit 1; }
    . "$root/tests/kinesis/start.sh"
    trap 'set +e; stop_kinesalites
          for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
    need_kinesalite
    start_kinesalite "$1"
    ADMIN=$KINESIS_ADMIN
}
