# kinesalite (a Kinesis API server from the npm registry, installed by
# scripts/setup.sh test into build/peers/; $SLUICE_KINESALITE names
# another copy of the module) for the CLI tests (bash; source it after
# tests/cli/lib.sh):
#   need_kinesalite            skip the test when node or kinesalite is
#                              missing (a failure under SLUICE_TEST_NO_SKIP=1)
#   start_kinesalite NAME      start one on 127.0.0.1, on a free port, with
#                              its store in memory, streams created, deleted
#                              and resharded at once (0 ms) and up to 100
#                              shards; sets ${NAME}_port, ${NAME}_pid and
#                              ${NAME}_url, and points the AWS_* environment
#                              at it (region us-east-1, dummy keys)
# kinesalite has no --host option: it is started by `node -e`, which
# requires the module and calls .listen(0, '127.0.0.1'). Stopped at exit.
KINESALITE=${SLUICE_KINESALITE:-$SOURCE_DIR/build/peers/node_modules/kinesalite}
KINESIS_ADMIN=$BUILD_DIR/tests/kinesis_admin
KINESALITE_PIDS=""

need_kinesalite() {
    command -v node >/dev/null ||
        skip "node is not installed (run scripts/setup.sh test)"
    [ -f "$KINESALITE/index.js" ] ||
        skip "kinesalite is not installed at $KINESALITE" \
            "(run scripts/setup.sh test)"
    [ -x "$KINESIS_ADMIN" ] || skip "no $KINESIS_ADMIN (build the tests)"
}

start_kinesalite() {
    local name=$1 pid port
    rm -f "$name.kinesalite.out"
    node -e '
        const kinesalite = require(process.argv[1]);
        const server = kinesalite({createStreamMs: 0, deleteStreamMs: 0,
                                   updateStreamMs: 0, shardLimit: 100});
        server.listen(0, "127.0.0.1", () => {
            console.log("listening on " + server.address().port);
        });
        // Gone with the test, even when it is killed.
        setInterval(() => { if (process.ppid === 1) process.exit(0); },
                    500);
    ' "$KINESALITE" >"$name.kinesalite.out" 2>&1 &
    pid=$!
    KINESALITE_PIDS="$KINESALITE_PIDS $pid"
    for _ in $(seq 200); do
        grep -q '^listening on' "$name.kinesalite.out" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    port=$(sed -n 's/^listening on \([0-9][0-9]*\)$/\1/p' \
        "$name.kinesalite.out")
    if [ -z "$port" ]; then
        fail "kinesalite $name did not start: $(cat "$name.kinesalite.out")"
        finish
    fi
    eval "${name}_port=$port"
    eval "${name}_pid=$pid"
    eval "${name}_url=http://127.0.0.1:$port"
    export AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$port
    export AWS_REGION=us-east-1
    export AWS_ACCESS_KEY_ID=AKIDKINESALITE
    export AWS_SECRET_ACCESS_KEY=kinesalite-secret
    unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL
}

stop_kinesalites() {
    local pid
    for pid in $KINESALITE_PIDS; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    KINESALITE_PIDS=""
}
trap 'stop_kinesalites; stop_origins; rm -rf "$WORK"' EXIT
