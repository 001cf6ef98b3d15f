# Rate-limited origins: nginx's limit_req (100 requests a second, no
# burst, 429 without Retry-After) in front of the test origin, and the
# test origin's own --rate-limit with and without RateLimit headers.
. "$(dirname "$0")/lib.sh"

RATE=100
SIZE=fixed:2000

# The test origin behind nginx at $RATE a second; sets $ng_port.
start_origin o --latency fixed:30 --size $SIZE
start_nginx ng <<CONF
    limit_req_zone \$server_name zone=rl:1m rate=${RATE}r/s;
    log_format timed '\$msec \$request_time \$status "\$http_user_agent"';
    upstream origin {
        server 127.0.0.1:$o_port;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:@PORT@;
        server_name rl;
        access_log @DIR@/timed.log timed;
        keepalive_requests 100000;
        limit_req zone=rl;
        limit_req_status 429;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
CONF

# feed NAME COUNT PORT: COUNT images of the origin at PORT, ingested into
# NAME.db.
feed() {
    "$GEN" "$2" jsonl "http://127.0.0.1:$3" >"$1.jsonl"
    "$SLUICE" ingest --allow-private --db "$1.db" "$1.jsonl" >/dev/null
}

# nginx_count STATUS: sluice's requests nginx answered with STATUS since
# the log was last emptied.
nginx_count() {
    grep -c " $1 \"sluice/" ng/timed.log
}

# most_per_second: the most of sluice's requests nginx saw start in one
# second (its end less its length).
most_per_second() {
    grep '"sluice/' ng/timed.log |
        awk '{ s = int($1 - $2); n[s]++ } END { m = 0; for (s in n) if (n[s] > m) m = n[s]; print m }'
}

RUN=("$SLUICE" run --store out --allow-net 127.0.0.1/32
     --max-concurrency 20 --backoff-base 0.05 --backoff-cap 0.5)

case_ "--rate $RATE/s: under 1% throttled, no second past the rate"
N=600
feed paced $N "$ng_port"
: >ng/timed.log
run "${RUN[@]}" --db paced.db --rate $RATE/s --json
assert_rc 0
assert_eq "$(status_field paced.db done)" $N
ok=$(nginx_count 200) throttled=$(nginx_count 429)
echo "# --rate: $ok answered, $throttled throttled, at most $(most_per_second) a second"
[ "$((throttled * 100))" -lt "$((ok + throttled))" ] ||
    fail "$throttled of $((ok + throttled)) requests throttled"
[ "$(most_per_second)" -le $RATE ] ||
    fail "$(most_per_second) requests started in one second"

case_ "no rate given: it converges, finishes, throttled far less than answered"
N=1000
feed adapt $N "$ng_port"
: >ng/timed.log
curl -s "http://127.0.0.1:$o_port/_reset" >/dev/null
run "${RUN[@]}" --db adapt.db --json
assert_rc 0
assert_eq "$(status_field adapt.db done)" $N
ok=$(nginx_count 200) throttled=$(nginx_count 429)
echo "# adaptive: $ok answered, $throttled throttled; $out"
[ "$((throttled * 4))" -le "$N" ] ||
    fail "$throttled throttled requests for $N images"
# The cap is the ceiling while adapting.
[ "$(origin_stat "$o_port" peak_in_flight)" -le 20 ] ||
    fail "$(origin_stat "$o_port" peak_in_flight) requests at once"

finish
