# The cap against a real server: nginx with `limit_conn N` and
# `limit_conn_status 503` (it answers 503 to request N+1), responses slowed
# with limit_rate so that requests overlap. sluice at --max-concurrency N
# must draw zero 503s; as a control, the same run against limit_conn N-1
# must draw some (so this test can fail).
. "$(dirname "$0")/lib.sh"

N=10
FILES=120

mkdir -p www/img
for i in $(seq 0 $((FILES - 1))); do
    head -c $((81920 + i * 13)) /dev/urandom >www/img/$i.jpg
done

# serve LIMIT: nginx serving www/ at limit_conn LIMIT; sets $port and
# $nginx_pid.
serve() {
    start_nginx nginx_$1 <<CONF
    limit_conn_zone \$server_name zone=cap:1m;
    server {
        listen 127.0.0.1:@PORT@;
        server_name cap;
        root $WORK/www;
        limit_conn cap $1;
        limit_conn_status 503;
        limit_rate 64k; # 64 KiB at once, the rest ~0.3 s later
        keepalive_requests 100000;
    }
CONF
    eval "port=\$nginx_$1_port nginx_pid=\$nginx_$1_pid"
}

# fetch_all LIMIT: run sluice at cap N against nginx at limit_conn LIMIT;
# sets $status503 (503s nginx sent) and $done.
fetch_all() {
    local limit=$1
    serve "$limit"
    for i in $(seq 0 $((FILES - 1))); do
        echo "http://127.0.0.1:$port/img/$i.jpg"
    done >feed-$limit.txt
    "$SLUICE" ingest --allow-private --db q-$limit.db feed-$limit.txt >/dev/null
    run "$SLUICE" run --db q-$limit.db --store out-$limit \
        --allow-net 127.0.0.1/32 --max-concurrency $N --quiet \
        --backoff-base 0.05 --backoff-cap 0.2
    kill $nginx_pid
    wait $nginx_pid 2>/dev/null
    # Only sluice's requests (not the probe that waited for nginx).
    grep '"sluice/' "nginx_$limit/access.log" >"nginx_$limit/sluice.log"
    status503=$(awk '$9 == 503' "nginx_$limit/sluice.log" | wc -l)
    done=$(status_field q-$limit.db done)
}

case_ "limit_conn $N: zero 503s at --max-concurrency $N"
fetch_all $N
assert_rc 0
assert_eq "$status503" 0
assert_eq "$done" $FILES
diff -r www/img "out-$N/127.0.0.1+$port/img" >/dev/null ||
    fail "stored objects differ from the served files"
# Bodies bigger than the store keeps in memory, hashed as they were
# written: the recorded SHA-256 is each file's.
sqlite3 q-$N.db "SELECT sha256 || '  out-$N/' || key FROM records" >sums.txt
sha256sum --quiet -c sums.txt >/dev/null 2>&1 ||
    fail "a recorded SHA-256 is not its object's"
requests=$(wc -l <"nginx_$N/sluice.log")
assert_eq "$requests" $FILES

case_ "control: limit_conn $((N - 1)) does see request N"
fetch_all $((N - 1))
[ "$status503" -gt 0 ] ||
    fail "no 503 at limit_conn $((N - 1)): this test could not catch N+1"
assert_eq "$done" $FILES

finish
