# Retry-After pauses the whole origin: after a 429 (or 503) with
# Retry-After, no request at all reaches the origin until the pause ends,
# in both forms (delta-seconds and HTTP-date); the throttled record is
# then fetched and no attempt is used.
. "$(dirname "$0")/lib.sh"

# check_pause QUERY SECONDS: one throttled record first, then 40 others.
check_pause() {
    local query=$1 secs=$2
    start_origin o --latency fixed:5 --size fixed:1000
    {
        echo "http://127.0.0.1:$o_port/img/0.jpg?$query"
        for i in $(seq 1 40); do echo "http://127.0.0.1:$o_port/img/$i.jpg"; done
    } >feed.txt
    rm -f sluice.db*
    "$SLUICE" ingest --allow-private feed.txt >/dev/null
    run "$SLUICE" run --store out --allow-private --max-concurrency 4 --quiet
    assert_rc 0
    assert_eq "$(status_field sluice.db done)" 41
    curl -s "http://127.0.0.1:$o_port/_log" >log.txt
    # The 429's end, and every request that started after it.
    local throttle_end
    throttle_end=$(awk '$6 == 429 || $6 == 503 { print $4; exit }' log.txt)
    [ -n "$throttle_end" ] || { fail "the origin never throttled"; return; }
    # Requests already in flight when the 429 went out may finish; no new
    # one may start during the pause (1 ms of clock granularity allowed).
    local early
    early=$(awk -v t="$throttle_end" -v p="$((secs * 1000 - 1))" \
        '$3 > t && $3 < t + p' log.txt | wc -l)
    assert_eq "$early" 0
    local after
    after=$(awk -v t="$throttle_end" '$3 > t' log.txt | wc -l)
    [ "$after" -gt 0 ] || fail "nothing was fetched after the pause"
    run sqlite3 sluice.db "SELECT attempts, throttles FROM records WHERE rid = 1"
    assert_eq "$out" "0|1"
    stop_origins
}

case_ "429 with Retry-After in seconds pauses the origin"
check_pause "fault=throttle&fails=1&retry_after=2" 2

case_ "503 with Retry-After as an HTTP-date pauses the origin"
check_pause "fault=throttle&fails=1&retry_after=3&date=1&code=503" 2

case_ "--max-age dead-letters a record that stays throttled"
start_origin t --latency 0
echo "http://127.0.0.1:$t_port/img/1.jpg?fault=throttle&fails=100&retry_after=1" >t.txt
"$SLUICE" ingest --allow-private --db t.db t.txt >/dev/null
run "$SLUICE" run --db t.db --store out --allow-private --max-age 2 --quiet
assert_rc 1
run "$SLUICE" dlq list --db t.db
assert_has "$out" "$(printf 'throttle\t429\t')"
assert_has "$out" "still throttled"

finish
