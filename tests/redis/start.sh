# A redis-server of the test's own, for the CLI tests (bash; source it
# after tests/cli/lib.sh):
#   start_redis NAME [REDIS-SERVER OPTIONS...]
# starts one on a unix socket in the test's directory with AOF on
# (appendfsync always), waits until it answers PING, and sets ${NAME}_url
# (unix:///...sock), ${NAME}_sock and ${NAME}_pid. It is killed at exit,
# and with PR_SET_PDEATHSIG (setpriv) if the test itself is killed.
# Without redis-server the test is skipped (a failure under
# SLUICE_TEST_NO_SKIP=1).
REDIS_PIDS=""

start_redis() {
    local name=$1
    shift
    command -v redis-server >/dev/null 2>&1 ||
        skip "redis-server is not installed (scripts/setup.sh test)"
    command -v redis-cli >/dev/null 2>&1 ||
        skip "redis-cli is not installed (scripts/setup.sh test)"
    local dir=$PWD/$name.redis
    mkdir -p "$dir"
    local deathsig=()
    setpriv --help 2>/dev/null | grep -q pdeathsig &&
        deathsig=(setpriv --pdeathsig KILL --)
    "${deathsig[@]}" redis-server --port 0 --unixsocket "$dir/redis.sock" \
        --unixsocketperm 700 --dir "$dir" --appendonly yes \
        --appendfsync always --save '' --logfile "$dir/redis.log" "$@" &
    local pid=$!
    REDIS_PIDS="$REDIS_PIDS $pid"
    local up=0
    for _ in $(seq 200); do
        if redis-cli -s "$dir/redis.sock" ping 2>/dev/null | grep -q PONG; then
            up=1
            break
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.025
    done
    if [ "$up" != 1 ]; then
        fail "redis-server $name did not start: $(cat "$dir/redis.log")"
        finish
    fi
    eval "${name}_url=unix://$dir/redis.sock"
    eval "${name}_sock=$dir/redis.sock"
    eval "${name}_pid=$pid"
}

stop_redis() {
    local pid
    for pid in $REDIS_PIDS; do
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    REDIS_PIDS=""
}
trap 'stop_redis; stop_origins; rm -rf "$WORK"' EXIT
