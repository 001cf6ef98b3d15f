# Rate-limited origins: nginx's limit_req (100 requests a second, a burst
# of one, 429 without Retry-After) in front of the test origin, and the
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
        # A burst of one, as limiters in front of real origins allow: nginx
        # reads its clock in whole milliseconds when its loop wakes, so
        # with none, a request read late then one read on time are closer
        # than 10 ms there, on a busy machine, however they were sent.
        # Going faster than the rate still fills it within a second.
        limit_req zone=rl burst=1 nodelay;
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
# Under 1 %: sluice spaces requests as they leave (sl_pacer_sent: a
# request held up on its way out delays the next). No second past the
# rate.
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
# The progress line (every 5 s off a terminal) shows the learnt limit.
case "$err" in
*"; http://127.0.0.1:$ng_port: "*" of 20 at once at "*/s*) ;;
*) fail "no progress line shows the learnt limit: $err" ;;
esac
# status shows what it learnt beside the cap.
run "$SLUICE" status --db adapt.db
assert_rc 0
case "$out" in
*"http://127.0.0.1:$ng_port: "*" of 20 at once, paced at "*/s*) ;;
*) fail "status lacks the learnt limit: $out" ;;
esac

case_ "a restart with --rate does not burst: its pace is kept with the slots"
# A slow pace, so that a restart (some milliseconds) is well inside one
# interval: a run that forgot the dead one's pace would start at once.
N=20 SLOW=5
feed restart $N "$ng_port"
: >ng/timed.log
"${RUN[@]}" --db restart.db --rate $SLOW/s --timeout 5 >/dev/null 2>&1 &
pid=$!
sleep 1.5
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
run "${RUN[@]}" --db restart.db --rate $SLOW/s --timeout 5 --json
assert_rc 0
assert_eq "$(status_field restart.db done)" $N
# The shortest time between two of sluice's requests, as nginx saw them
# start, across both runs: the pace is 200 ms.
gap=$(grep '"sluice/' ng/timed.log | awk '{ printf "%.3f\n", $1 - $2 }' |
    sort -n |
    awk 'NR > 1 { g = ($1 - p) * 1000; if (min == "" || g < min) min = g }
         { p = $1 } END { printf "%d", min }')
echo "# restart: shortest gap between two requests ${gap} ms," \
    "$(nginx_count 429) throttled"
[ "$gap" -ge 180 ] || fail "two requests ${gap} ms apart at $SLOW a second"

# The test origin's own limit: 100 a fixed second, and the headers that
# describe it in each spelling. sluice paces to them before any 429.
for spelling in ietf draft x; do
    case_ "--ratelimit-headers=$spelling: no throttle at all"
    start_origin "h_$spelling" --latency fixed:30 --size $SIZE \
        --rate-limit $RATE/1 --ratelimit-headers=$spelling
    port_var="h_${spelling}_port"
    N=300
    feed "h_$spelling" $N "${!port_var}"
    run "${RUN[@]}" --db "h_$spelling.db" --json
    assert_rc 0
    assert_eq "$(status_field "h_$spelling.db" done)" $N
    throttled=$(origin_stat "${!port_var}" throttled)
    echo "# $spelling: $throttled throttled; $out"
    assert_eq "$throttled" 0
    assert_has "$out" '"throttled":0,'
done

finish
