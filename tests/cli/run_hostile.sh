# sluice run against hostile origins (docs/test-origin.md, the hostile
# faults): a body that trickles a byte a second, an endless body, 4 MiB of
# headers, endless redirects, a redirect loop, a broken status line,
# garbage instead of HTTP, a gzip bomb and an origin that never answers,
# mixed with ordinary records. Each hostile record costs itself alone a
# clear error class (or is done, for the gzip body, stored as sent); the
# ordinary ones arrive byte for byte; the run ends normally; sluice's
# memory stays small and it idles while it waits on them; and the origin
# never sees more than the cap.
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null 2>&1 || skip "curl is not installed"
[ -x /usr/bin/time ] ||
    skip "/usr/bin/time is not installed (scripts/setup.sh test)"

N=4
RECORDS=90
SIZE=fixed:4096
FAULTS=(trickle endless hugeheaders manyredirects loop badstatus
        "badstatus&garbage=1" gzipbomb silent)
# Peak RSS allowed, KiB. AddressSanitizer's shadow memory and quarantine
# cost far more than sluice itself, so a sanitized build gets more room.
RSS_MAX=$((64 * 1024))
if ldd "$SLUICE" 2>/dev/null | grep -q libasan; then
    RSS_MAX=$((128 * 1024))
fi

# The fault of record i: every third record of the first 81, the nine
# hostile faults in turn, three of each; none for the others.
fault_of() {
    if [ $(($1 % 3)) = 0 ] && [ "$1" -lt 81 ]; then
        echo "${FAULTS[$(($1 / 3 % 9))]}"
    fi
}
is_hostile() { [ -n "$(fault_of "$1")" ]; }

# dlq_row ID: the record's DLQ line, tab-separated (id, class, status,
# attempts, when, message).
dlq_row() {
    printf '%s\n' "$dlq" | awk -F'\t' -v id="$1" '$1 == id'
}

# expect_dead I CLASS STATUS ATTEMPTS MESSAGE...: record sku-I is dead
# with exactly this class, HTTP status ("-" for none) and attempts, and a
# message matching one of the glob patterns given.
expect_dead() {
    local i=$1 class=$2 status=$3 attempts=$4 row msg pattern
    shift 4
    row=$(dlq_row "sku-$i")
    if [ -z "$row" ]; then
        fail "sku-$i ($(fault_of "$i")) is not dead"
        return
    fi
    assert_eq "$(cut -f2-4 <<<"$row")" "$(printf '%s\t%s\t%s' \
        "$class" "$status" "$attempts")"
    msg=$(cut -f7 <<<"$row")
    for pattern in "$@"; do
        case "$msg" in $pattern) return ;; esac
    done
    fail "sku-$i ($(fault_of "$i")): message '$msg' matches none of: $*"
}

# origin_requests PORT N: how many requests the origin logged for object
# N (redirect hops and retries included).
origin_requests() {
    curl -s "http://127.0.0.1:$1/_log" | awk -v n="$2" '$1 == n' | wc -l
}

# origin_span PORT N: milliseconds from the first request for object N
# starting to the last one ending, at the origin.
origin_span() {
    curl -s "http://127.0.0.1:$1/_log" |
        awk -v n="$2" '$1 == n { if (!s || $3 < s) s = $3; if ($4 > e) e = $4 }
                       END { print e - s }'
}

# The origin's counters agree with themselves and with the cap: nothing
# in flight, every request finished under some status, never over N.
check_origin() {
    local port=$1 cap=$2 finished
    assert_eq "$(origin_stat "$port" violations)" 0
    assert_eq "$(origin_stat "$port" in_flight)" 0
    [ "$(origin_stat "$port" peak_in_flight)" -le "$cap" ] ||
        fail "peak in flight $(origin_stat "$port" peak_in_flight) > $cap"
    finished=$(curl -s "http://127.0.0.1:$port/_stats" |
        sed 's/.*"status":{\([^}]*\)}.*/\1/' | tr ',' '\n' |
        awk -F: '{ n += $2 } END { print n + 0 }')
    assert_eq "$finished" "$(origin_stat "$port" requests)"
}

# timed FILE CMD...: run CMD (5 minutes at most), its peak RSS (KiB),
# user and system CPU and wall time (s) written to FILE.
timed() {
    local file=$1
    shift
    timeout 300 /usr/bin/time -f '%M %U %S %e' -o "$file" "$@"
}

# check_rss FILE [idle]: timed wrote FILE; the peak RSS is below
# RSS_MAX. With idle, the run mostly waited on slow origins, so it must
# have used under a quarter of a core: waiting never turns into polling.
check_rss() {
    local rss user sys wall
    read -r rss user sys wall <<<"$(tail -n 1 "$1")"
    echo "    sluice run: peak RSS $rss KiB (bound $RSS_MAX KiB)," \
        "CPU ${user}+${sys} s in $wall s"
    case "$rss" in
    '' | *[!0-9]*) fail "no peak RSS in $1: $(cat "$1")" ;;
    *) [ "$rss" -lt "$RSS_MAX" ] || fail "peak RSS $rss KiB >= $RSS_MAX KiB" ;;
    esac
    if [ "${2:-}" = idle ] &&
        ! awk -v u="$user" -v s="$sys" -v w="$wall" \
            'BEGIN { exit !(u + s < w / 4) }'; then
        fail "sluice used ${user}+${sys} s of CPU in $wall s while waiting"
    fi
}

case_ "a feed of ordinary and hostile records, under the cap"
start_origin o --limit $N --size $SIZE
base=http://127.0.0.1:$o_port
for i in $(seq 0 $((RECORDS - 1))); do
    f=$(fault_of "$i")
    printf '{"id":"sku-%d","url":"%s/img/%d.jpg%s"}\n' "$i" "$base" "$i" \
        "${f:+?fault=$f}"
done >feed.jsonl
"$SLUICE" ingest --allow-private feed.jsonl >/dev/null
t0=$(date +%s%N)
run timed rss.txt "$SLUICE" run --store out \
    --allow-net 127.0.0.1/32 --max-concurrency $N --timeout 5 \
    --stall-timeout 2 --max-attempts 2 --backoff-base 0.05 \
    --backoff-cap 0.2 --max-bytes 1M --json
secs=$((($(date +%s%N) - t0) / 1000000000))
echo "    the run took $secs s"
assert_rc 1 "the hostile records are dead, the run itself is fine"
assert_lacks "$err" "AddressSanitizer"
assert_lacks "$err" "runtime error"
[ "$secs" -lt 60 ] || fail "the run took $secs s"
want_done=$((RECORDS - 27 + 3)) # the ordinary ones and the gzip bombs
assert_has "$out" "\"done\":$want_done,\"dead\":24,"
assert_eq "$(status_field sluice.db done)" $want_done
assert_eq "$(status_field sluice.db dead)" 24
assert_eq "$(status_field sluice.db pending)" 0
assert_eq "$(status_field sluice.db retrying)" 0
assert_eq "$(status_field sluice.db in_flight)" 0
check_origin "$o_port" $N
check_rss rss.txt idle

case_ "every ordinary record is done and byte-exact"
checked=$(verify_objects out 0 $((RECORDS - 1)) $SIZE is_hostile)
assert_eq "$checked" $((RECORDS - 27))
assert_eq "$(stray_files out)" ""

case_ "each hostile record ends with its own class and message"
run "$SLUICE" dlq list
dlq=$out
twice="(after 2 attempts)"
slow="Operation too slow. Less than 1 bytes/sec transferred the last 2"
slow="$slow seconds $twice"
timed_out="Operation timed out after 5[0-9][0-9][0-9] milliseconds with"
timed_out="$timed_out [0-9] out of 4096 bytes received $twice"
for i in $(seq 0 3 80); do
    case $(fault_of "$i") in
    trickle)
        # 1 byte/s is exactly LOW_SPEED_LIMIT: the stall check may or may
        # not fire before --timeout does. Either way, a timeout.
        expect_dead "$i" timeout 200 2 "$slow" "$timed_out"
        ;;
    endless)
        expect_dead "$i" too_large 200 1 \
            "body larger than --max-bytes (1048576)"
        ;;
    hugeheaders)
        expect_dead "$i" protocol 200 2 \
            "response head larger than 256 KiB $twice"
        ;;
    manyredirects | loop)
        expect_dead "$i" redirect 302 1 "more than 5 redirects"
        assert_eq "$(origin_requests "$o_port" "$i")" 6
        ;;
    badstatus)
        expect_dead "$i" protocol - 2 \
            "malformed response: Unsupported HTTP version in response $twice"
        ;;
    "badstatus&garbage=1")
        expect_dead "$i" protocol - 2 \
            "malformed response: Received HTTP/0.9 when not allowed $twice"
        ;;
    silent)
        expect_dead "$i" timeout - 2 "$slow"
        ;;
    gzipbomb)
        [ -z "$(dlq_row "sku-$i")" ] || fail "sku-$i: $(dlq_row "sku-$i")"
        ;;
    esac
done
# What each fault cost, as the origin saw it (for the record).
for k in $(seq 0 8); do
    i=$((k * 3))
    row=$(dlq_row "sku-$i")
    class=done
    [ -z "$row" ] || class=$(cut -f2 <<<"$row")
    printf '    %-20s %-9s %2s requests %6s ms  %s\n' "${FAULTS[$k]}" \
        "$class" "$(origin_requests "$o_port" "$i")" \
        "$(origin_span "$o_port" "$i")" "$(cut -f7 <<<"$row")"
done

case_ "a gzip bomb is stored as the compressed bytes it came as"
for i in $(seq 0 80); do
    [ "$(fault_of "$i")" = gzipbomb ] || continue
    curl -s -o "bomb$i" "$base/img/$i.jpg?fault=gzipbomb"
    size=$(wc -c <"bomb$i")
    [ "$size" -lt 16384 ] || fail "the bomb is $size bytes"
    cmp -s "bomb$i" "out/sku-$i.jpg" ||
        fail "sku-$i.jpg is not the gzip stream as sent"
    run sqlite3 sluice.db "SELECT state, size FROM records WHERE id = 'sku-$i'"
    assert_eq "$out" "3|$size"
    if command -v gzip >/dev/null 2>&1; then
        assert_eq "$(gzip -dc <"out/sku-$i.jpg" | wc -c)" 10485760
    fi
done

case_ "the cap at 1: hostile requests end before the next one starts"
start_origin one --limit 1 --size $SIZE
n=0
for f in silent endless hugeheaders trickle badstatus "badstatus&garbage=1" \
    manyredirects gzipbomb; do
    for _ in 1 2; do
        n=$((n + 1))
        printf '{"id":"h%d","url":"%s/img/%d.jpg?fault=%s"}\n' \
            $n "http://127.0.0.1:$one_port" $n "$f"
        printf '{"id":"o%d","url":"%s/img/%d.jpg"}\n' \
            $n "http://127.0.0.1:$one_port" $((n + 100))
    done
done >one.jsonl
"$SLUICE" ingest --allow-private --db one.db one.jsonl >/dev/null
run timed rss1.txt "$SLUICE" run --db one.db \
    --store one --allow-net 127.0.0.1/32 --max-concurrency 1 --timeout 3 \
    --stall-timeout 1 --max-attempts 1 --max-bytes 256k --quiet
assert_rc 1
assert_eq "$(status_field one.db dead)" 14
assert_eq "$(status_field one.db done)" 18
check_origin "$one_port" 1
assert_eq "$(origin_stat "$one_port" peak_in_flight)" 1
check_rss rss1.txt idle

case_ "an endless body is streamed, not held: memory does not follow it"
start_origin big --limit 2
printf '%s\n' "http://127.0.0.1:$big_port/img/1.jpg?fault=endless" \
    "http://127.0.0.1:$big_port/img/2.jpg?fault=endless" >big.txt
"$SLUICE" ingest --allow-private --db big.db big.txt >/dev/null
run timed rss2.txt "$SLUICE" run --db big.db \
    --store big --allow-net 127.0.0.1/32 --max-concurrency 2 \
    --max-bytes 64M --quiet
assert_rc 1
run "$SLUICE" dlq list --db big.db
assert_eq "$(printf '%s\n' "$out" | tail -n +2 | cut -f2,3,4,7 | sort -u)" \
    "$(printf 'too_large\t200\t1\tbody larger than --max-bytes (67108864)')"
assert_eq "$(printf '%s\n' "$out" | tail -n +2 | wc -l)" 2
assert_eq "$(find big -type f ! -name '*.lock' | wc -l)" 0
check_origin "$big_port" 2
check_rss rss2.txt

finish
