# The cap against a real server: nginx with `limit_conn N` and
# `limit_conn_status 503` (it answers 503 to request N+1), responses slowed
# with limit_rate so that requests overlap. sluice at --max-concurrency N
# must draw zero 503s; as a control, the same run against limit_conn N-1
# must draw some (so this test can fail).
. "$(dirname "$0")/lib.sh"

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || skip "nginx is not installed (scripts/setup.sh test)"
N=10
FILES=120

mkdir -p www/img
for i in $(seq 0 $((FILES - 1))); do
    head -c $((81920 + i * 13)) /dev/urandom >www/img/$i.jpg
done

# start_nginx LIMIT: start nginx on a free port; sets $port and $nginx_pid.
start_nginx() {
    local limit=$1
    for attempt in 1 2 3 4 5 6 7 8; do
        port=$((20000 + RANDOM % 30000))
        mkdir -p nginx-$limit
        cat >nginx-$limit/nginx.conf <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx-$limit/nginx.pid;
error_log $WORK/nginx-$limit/error.log;
events { worker_connections 1024; }
http {
    access_log $WORK/nginx-$limit/access.log;
    client_body_temp_path $WORK/nginx-$limit/body;
    proxy_temp_path $WORK/nginx-$limit/proxy;
    fastcgi_temp_path $WORK/nginx-$limit/fastcgi;
    uwsgi_temp_path $WORK/nginx-$limit/uwsgi;
    scgi_temp_path $WORK/nginx-$limit/scgi;
    limit_conn_zone \$server_name zone=cap:1m;
    server {
        listen 127.0.0.1:$port;
        server_name cap;
        root $WORK/www;
        limit_conn cap $limit;
        limit_conn_status 503;
        limit_rate 64k; # 64 KiB at once, the rest ~0.3 s later
        keepalive_requests 100000;
    }
}
CONF
        "$NGINX" -p "$WORK/nginx-$limit" -c "$WORK/nginx-$limit/nginx.conf" \
            2>"$WORK/nginx-$limit/stderr" &
        nginx_pid=$!
        for _ in $(seq 50); do
            # nginx itself, not some other test's server on that port.
            if curl -s -o /dev/null -D - "http://127.0.0.1:$port/img/0.jpg" |
                grep -qi '^server: nginx' && kill -0 $nginx_pid 2>/dev/null; then
                return 0
            fi
            kill -0 $nginx_pid 2>/dev/null || break
            sleep 0.1
        done
        kill $nginx_pid 2>/dev/null
        wait $nginx_pid 2>/dev/null
    done
    fail "nginx did not start: $(cat "$WORK/nginx-$limit/stderr")"
    finish
}

# fetch_all LIMIT: run sluice at cap N against nginx at limit_conn LIMIT;
# sets $status503 (503s nginx sent) and $done.
fetch_all() {
    local limit=$1
    start_nginx "$limit"
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
    grep '"sluice/' "nginx-$limit/access.log" >"nginx-$limit/sluice.log"
    status503=$(awk '$9 == 503' "nginx-$limit/sluice.log" | wc -l)
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
requests=$(wc -l <"nginx-$N/sluice.log")
assert_eq "$requests" $FILES

case_ "control: limit_conn $((N - 1)) does see request N"
fetch_all $((N - 1))
[ "$status503" -gt 0 ] ||
    fail "no 503 at limit_conn $((N - 1)): this test could not catch N+1"
assert_eq "$done" $FILES

finish
