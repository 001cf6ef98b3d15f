# Helpers for sluice's CLI tests (bash). Source it first; each test file
# runs in a fresh temporary directory that is removed at exit.
#   run CMD...          run, capturing $out, $err and $rc
#   assert_rc N         the last run exited with N
#   assert_has TEXT NEEDLE / assert_lacks TEXT NEEDLE
#   assert_eq GOT WANT  / fail MESSAGE / skip REASON

set -u
SLUICE=${SLUICE_BIN:?SLUICE_BIN must name the sluice binary}
SOURCE_DIR=${SLUICE_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD_DIR=${SLUICE_BUILD_DIR:-$(dirname "$SLUICE")}
WORK=$(mktemp -d /tmp/sluice-cli-XXXXXX)
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1
unset SLUICE_DB
CURRENT_TEST=""
FAILED=0

# Start a named case; its failures are reported under this name.
case_() {
    CURRENT_TEST=$1
    echo "--- $1"
}

fail() {
    echo "FAIL [$CURRENT_TEST]: $*" >&2
    echo "  stdout: ${out:-}" >&2
    echo "  stderr: ${err:-}" >&2
    FAILED=1
}

skip() {
    echo "SKIP: $*" >&2
    if [ "${SLUICE_TEST_NO_SKIP:-}" = 1 ]; then
        exit 1
    fi
    exit 77
}

run() {
    local o e
    o=$(mktemp) e=$(mktemp)
    "$@" >"$o" 2>"$e"
    rc=$?
    out=$(cat "$o")
    err=$(cat "$e")
    rm -f "$o" "$e"
}

assert_rc() {
    [ "$rc" = "$1" ] || fail "exit status $rc, wanted $1 (${2:-})"
}

assert_eq() {
    [ "$1" = "$2" ] || fail "got '$1', wanted '$2'"
}

assert_has() {
    case "$1" in
    *"$2"*) ;;
    *) fail "'$2' not found in: $1" ;;
    esac
}

assert_lacks() {
    case "$1" in
    *"$2"*) fail "'$2' unexpectedly in: $1" ;;
    *) ;;
    esac
}

# The number of lines of a text.
lines() {
    if [ -z "$1" ]; then echo 0; else printf '%s\n' "$1" | wc -l; fi
}

# A field of `sluice status --json` for the database $1.
status_field() {
    "$SLUICE" status --db "$1" --json | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"
}

# Run a command as an unprivileged user when we are root (file
# permissions do not stop root).
as_user() {
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"
    else
        "$@"
    fi
}

finish() {
    if [ "$FAILED" != 0 ]; then
        echo "some cases failed" >&2
        exit 1
    fi
    echo "all cases passed"
    exit 0
}

# ------------------------------------------------------------ the origin
ORIGIN=$BUILD_DIR/tests/origin/sluice-origin
VERIFY=$BUILD_DIR/tests/origin/origin_verify
GEN=$BUILD_DIR/bench/gen_feed

# start_origin NAME [ORIGIN OPTIONS...]: start a test origin on an
# ephemeral port; sets ${NAME}_port and ${NAME}_pid. Stopped at exit.
ORIGIN_PIDS=""
start_origin() {
    local name=$1
    shift
    rm -f "$name.port"
    "$ORIGIN" --quiet --port-file "$name.port" "$@" 2>"$name.log" &
    local pid=$!
    ORIGIN_PIDS="$ORIGIN_PIDS $pid"
    for _ in $(seq 200); do
        [ -s "$name.port" ] && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.05
    done
    if [ ! -s "$name.port" ]; then
        fail "origin $name did not start: $(cat "$name.log")"
        finish
    fi
    eval "${name}_port=$(cat "$name.port")"
    eval "${name}_pid=$pid"
}

stop_origins() {
    local pid
    for pid in $ORIGIN_PIDS; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    ORIGIN_PIDS=""
}
trap 'stop_origins; rm -rf "$WORK"' EXIT

# origin_stat PORT FIELD [HOST]: a number from the origin's /_stats.
origin_stat() {
    curl -s "http://${3:-127.0.0.1}:$1/_stats" |
        sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"
}

# cpu_ms PID SECONDS [user]: the CPU time, in ms, that PID uses over the
# next SECONDS (user and system time; with `user`, user time only).
cpu_ms() {
    local ticks='$14 + $15' before after
    [ "${3:-}" = user ] && ticks='$14'
    before=$(awk "{ print $ticks }" "/proc/$1/stat")
    sleep "$2"
    after=$(awk "{ print $ticks }" "/proc/$1/stat")
    echo $(((after - before) * 1000 / $(getconf CLK_TCK)))
}

# verify_objects DIR FIRST LAST SIZE_SPEC [SKIP_CMD]: every object
# DIR/sku-i.jpg for i in FIRST..LAST is byte for byte the origin's body i
# (records for which `SKIP_CMD i` succeeds are skipped). Prints the count
# checked; fails the case on the first difference.
verify_objects() {
    local dir=$1 first=$2 last=$3 spec=$4 skip=${5:-false} n=0 size
    if [ "$skip" = false ]; then
        # Nothing skipped: one process checks them all (two a record
        # took minutes under the sanitizers), and none is outside the
        # range, so that the count says whether one is missing.
        local out outside
        out=$("$VERIFY" store "$spec" "$dir" 2>&1) || {
            fail "objects in $dir are not byte-exact: $out"
            return 1
        }
        outside=$(ls "$dir" | awk -v a="$first" -v b="$last" '
            /^sku-[0-9]+\.jpg$/ { k = substr($0, 5) + 0
                                  if (k < a || k > b) n++ }
            END { print n + 0 }')
        [ "$outside" = 0 ] || {
            fail "$outside objects in $dir are not sku-$first to sku-$last"
            return 1
        }
        echo "$out"
        return 0
    fi
    for i in $(seq "$first" "$last"); do
        if $skip "$i"; then continue; fi
        size=$("$VERIFY" size "$spec" "$i")
        if ! "$VERIFY" check "$i" "$size" "$dir/sku-$i.jpg" >/dev/null 2>&1; then
            fail "object sku-$i.jpg is not byte-exact: $("$VERIFY" check "$i" "$size" "$dir/sku-$i.jpg" 2>&1)"
            return 1
        fi
        n=$((n + 1))
    done
    echo "$n"
}

# Files left in a store other than objects: temp files, partial objects.
stray_files() {
    find "$1" -path "$1/.sluice-tmp" -prune -o -type f -print | grep -v '/sku-[0-9]*\.jpg$'
    find "$1/.sluice-tmp" -type f ! -name '*.lock' 2>/dev/null
}

# ------------------------------------------------------------ nginx
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# start_nginx NAME: start nginx on a free port with the http{} directives
# read from stdin, in which @PORT@ is the port to listen on and @DIR@ its
# directory (access.log is NAME/access.log); sets ${NAME}_port and
# ${NAME}_pid. Stopped at exit.
start_nginx() {
    local name=$1 dir=$WORK/$1 body port pid
    [ -x "$NGINX" ] || skip "nginx is not installed (scripts/setup.sh test)"
    body=$(cat)
    mkdir -p "$dir"
    for _ in 1 2 3 4 5 6 7 8; do
        port=$((20000 + RANDOM % 30000))
        {
            cat <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 1024; }
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
CONF
            printf '%s\n' "$body" | sed "s|@PORT@|$port|g; s|@DIR@|$dir|g"
            echo "}"
        } >"$dir/nginx.conf"
        "$NGINX" -p "$dir" -c "$dir/nginx.conf" 2>"$dir/stderr" &
        pid=$!
        for _ in $(seq 50); do
            # nginx itself, not some other test's server on that port.
            if curl -s -o /dev/null -D - "http://127.0.0.1:$port/_nginx" |
                grep -qi '^server: nginx' && kill -0 $pid 2>/dev/null; then
                ORIGIN_PIDS="$ORIGIN_PIDS $pid"
                eval "${name}_port=$port"
                eval "${name}_pid=$pid"
                return 0
            fi
            kill -0 $pid 2>/dev/null || break
            sleep 0.1
        done
        kill $pid 2>/dev/null
        wait $pid 2>/dev/null
    done
    fail "nginx did not start: $(cat "$dir/stderr")"
    finish
}

# ------------------------------------------------------------ s3rver
# s3rver, an S3 API server from the npm registry (scripts/setup.sh test
# installs it under build/peers/; $SLUICE_S3RVER overrides the path).
S3RVER=${SLUICE_S3RVER:-$SOURCE_DIR/build/peers/node_modules/s3rver/bin/s3rver.js}

# Skip the test (with the reason) when node or s3rver is missing.
need_s3rver() {
    command -v node >/dev/null ||
        skip "node is not installed (run scripts/setup.sh test)"
    [ -f "$S3RVER" ] ||
        skip "s3rver is not installed at $S3RVER (run scripts/setup.sh test)"
}

# start_s3rver NAME DIR PORT [BUCKET...]: start s3rver on 127.0.0.1:PORT
# (0: an ephemeral port) with its data in DIR, making the buckets; sets
# ${NAME}_port and ${NAME}_pid. Its credentials are S3RVER / S3RVER.
# Stopped at exit.
S3RVER_PIDS=""
start_s3rver() {
    local name=$1 dir=$2 port=$3 bucket args=() pid
    shift 3
    for bucket in "$@"; do args+=(--configure-bucket "$bucket"); done
    # A restart must not read the last instance's "listening on".
    rm -f "$name.out" "$name.log"
    node "$S3RVER" -d "$dir" -a 127.0.0.1 -p "$port" --silent \
        ${args[@]+"${args[@]}"} >"$name.out" 2>"$name.log" &
    pid=$!
    S3RVER_PIDS="$S3RVER_PIDS $pid"
    for _ in $(seq 400); do
        grep -q 'listening on' "$name.out" 2>/dev/null && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.05
    done
    port=$(sed -n 's/.*listening on .*:\([0-9][0-9]*\)$/\1/p' "$name.out")
    if [ -z "$port" ]; then
        fail "s3rver $name did not start: $(cat "$name.out" "$name.log")"
        finish
    fi
    eval "${name}_port=$port"
    eval "${name}_pid=$pid"
}

# stop_s3rver PID [SIGNAL]: stop one s3rver (default SIGTERM).
stop_s3rver() {
    kill "-${2:-TERM}" "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

stop_s3rvers() {
    for pid in $S3RVER_PIDS; do stop_s3rver "$pid"; done
    S3RVER_PIDS=""
}
trap 'stop_origins; stop_s3rvers; rm -rf "$WORK"' EXIT

# s3_get URL BODY_FILE: a signed GET (SigV4, s3rver's credentials); prints
# the response head. s3rver wants x-amz-content-sha256 on every request.
S3_EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
s3_get() {
    curl -s -D - -o "$2" --aws-sigv4 "aws:amz:us-east-1:s3" \
        -u S3RVER:S3RVER -H "x-amz-content-sha256: $S3_EMPTY_SHA256" \
        "$1" | tr -d '\r'
}
