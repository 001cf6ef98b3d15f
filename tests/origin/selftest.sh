#!/usr/bin/env bash
# Self-test of the test origin: every route and fault, the limit, the rate
# limit and its headers, keep-alive, Retry-After in both forms and byte-exact
# bodies, driven with curl against sluice-origin ($ORIGIN_BIN) and checked
# with origin_verify ($ORIGIN_VERIFY, else beside it). Exits 77 without
# curl; non-zero, naming each failed check.

set -u
ORIGIN=${ORIGIN_BIN:?ORIGIN_BIN must name the sluice-origin binary}
VERIFY=${ORIGIN_VERIFY:-$(dirname "$ORIGIN")/origin_verify}

if ! command -v curl >/dev/null 2>&1; then
    echo "SKIP: curl is not installed" >&2
    exit 77
fi
[ -x "$ORIGIN" ] || { echo "FAIL: $ORIGIN is not executable" >&2; exit 1; }
[ -x "$VERIFY" ] || { echo "FAIL: $VERIFY is not executable" >&2; exit 1; }

WORK=$(mktemp -d /tmp/sluice-origin-XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK" || exit 1

CASE=""
CHECKS=0
FAILED=0

case_() {
    CASE=$1
    echo "--- $1"
}

fail() {
    echo "FAIL [$CASE]: $*" >&2
    FAILED=$((FAILED + 1))
}

# expect_eq WHAT GOT WANT
expect_eq() {
    CHECKS=$((CHECKS + 1))
    [ "$2" = "$3" ] || fail "$1: got '$2', wanted '$3'"
}

# expect_true WHAT COMMAND...: the command succeeds.
expect_true() {
    local what=$1
    shift
    CHECKS=$((CHECKS + 1))
    "$@" || fail "$what (failed: $*)"
}

# start_origin NAME ARGS...: start a server; sets URL_<NAME>, PID_<NAME>.
start_origin() {
    local name=$1 port="" i
    shift
    rm -f "$name.port"
    "$ORIGIN" --port-file "$name.port" "$@" 2>"$name.err" &
    local pid=$!
    PIDS+=("$pid")
    for i in $(seq 100); do
        [ -s "$name.port" ] && break
        sleep 0.05
    done
    port=$(cat "$name.port" 2>/dev/null)
    if [ -z "$port" ]; then
        echo "FAIL: sluice-origin $* did not start: $(cat "$name.err")" >&2
        exit 1
    fi
    printf -v "URL_$name" 'http://127.0.0.1:%s' "$port"
    printf -v "PORT_$name" '%s' "$port"
    printf -v "PID_$name" '%s' "$pid"
}

# stop_origin NAME [SIGNAL]: stop a server; it must exit 0 within 5 s.
stop_origin() {
    local pid_var="PID_$1" i
    local pid=${!pid_var}
    kill -"${2:-TERM}" "$pid"
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        fail "origin $1 still running 5 s after SIG${2:-TERM}"
        kill -KILL "$pid"
    fi
    wait "$pid"
    expect_eq "exit status of origin $1 after SIG${2:-TERM}" "$?" 0
}

# stat URL FIELD: a number from /_stats ("200" for that status count).
stat() {
    local v
    v=$(curl -s "$1/_stats" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p")
    echo "${v:-0}"
}

# finished URL: the finished requests, the sum of /_stats' status counts.
finished() {
    curl -s "$1/_stats" | sed 's/.*"status":{\([^}]*\)}.*/\1/' |
        tr ',' '\n' | awk -F: '{ n += $2 } END { print n + 0 }'
}

# leave_after SECS URL...: a client per URL sends its request and leaves
# after SECS; returns once all of them have left.
leave_after() {
    local secs=$1 url pids=()
    shift
    for url in "$@"; do
        curl -s -o /dev/null --max-time "$secs" "$url" &
        pids+=($!)
    done
    wait "${pids[@]}"
}

# code URL [CURL ARGS...]: the HTTP status curl saw.
code() {
    local url=$1
    shift
    curl -s -o /dev/null -w '%{http_code}' "$@" "$url"
}

# header FILE NAME: a header's value from a curl -D dump.
header() {
    sed -n "s/^$2: \(.*\)\r$/\1/Ip" "$1" | head -n 1
}

# to_next_window URL MS: sleep until 30 ms into the next window of MS
# milliseconds of the origin at URL (windows count from its start, the
# clock of /_clock).
to_next_window() {
    local now
    now=$(curl -s "$1/_clock")
    sleep "$(awk -v t="$now" -v w="$2" \
        'BEGIN { printf "%.3f", (w - t % w + 30) / 1000 }')"
}

# raw PORT TEXT: send TEXT on a new connection, print all the server
# sends until it closes the connection (3 s at most).
raw() {
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf '%b' "$2" >&3
    timeout 3 cat <&3 | tr -d '\0'
    local rc=${PIPESTATUS[0]}
    exec 3<&- 3>&-
    return "$rc"
}

# ---------------------------------------------------------------------------

start_origin A
U=$URL_A

case_ "an object: headers and bytes"
got=$(curl -s -o body -D head -w '%{http_code}' "$U/img/42.jpg?v=1")
expect_eq "status" "$got" 200
expect_eq "Content-Type" "$(header head Content-Type)" image/jpeg
expect_eq "Content-Length" "$(header head Content-Length)" 4096
expect_eq "ETag" "$(header head ETag)" '"42-4096"'
expect_true "body of /img/42 is sl_origin_body(42, 4096)" \
    "$VERIFY" check 42 4096 body
expect_true "origin_verify notices a changed byte" \
    bash -c "printf x | dd of=body bs=1 seek=100 conv=notrunc 2>/dev/null;
             ! '$VERIFY' check 42 4096 body 2>/dev/null"
"$VERIFY" body 42 4096 >expected
expect_true "origin_verify body equals what the origin sent" \
    cmp -s expected <(curl -s "$U/img/42")

case_ "HEAD"
got=$(curl -s -I -o /dev/null -D head -w '%{http_code} %{size_download}' \
    "$U/img/7")
expect_eq "HEAD status and body" "$got" "200 0"
expect_eq "HEAD Content-Length" "$(header head Content-Length)" 4096

case_ "routes that do not exist, and bad queries"
expect_eq "/nope" "$(code "$U/nope")" 404
expect_eq "/img/abc" "$(code "$U/img/abc")" 404
expect_eq "/img/" "$(code "$U/img/")" 404
expect_eq "/img/1.j-g" "$(code "$U/img/1.j-g")" 404
expect_eq "/img/1/x" "$(code "$U/img/1/x")" 404
expect_eq "POST" "$(code "$U/img/1" -X POST -d x)" 405
expect_eq "unknown fault" "$(code "$U/img/1?fault=bogus")" 400
expect_eq "bad code" "$(code "$U/img/1?fault=status&code=99")" 400
expect_eq "bad date" "$(code "$U/img/1?fault=throttle&date=5")" 400
expect_eq "bad fails" "$(code "$U/img/1?fault=flaky&fails=x")" 400
expect_eq "bad to" "$(code "$U/img/1?fault=redirect&to=ftp%3A%2F%2Fx")" 400

case_ "malformed and oversized request heads"
got=$(raw "$PORT_A" 'garbage\r\n\r\n')
expect_eq "garbage: answered and closed" "$?" 0
expect_eq "garbage: status line" "${got%%$'\r'*}" "HTTP/1.1 400 Bad Request"
case "$got" in
*"Connection: close"*) ;;
*) fail "400 without Connection: close: $got" ;;
esac
got=$(raw "$PORT_A" 'GET /img/1 HTTP/3.0\r\n\r\n')
expect_eq "HTTP/3.0" "${got%%$'\r'*}" "HTTP/1.1 505 HTTP Version Not Supported"
got=$(raw "$PORT_A" 'GET /img/1 HTTP/1.1\r\n folded: x\r\n\r\n')
expect_eq "folded header" "${got%%$'\r'*}" "HTTP/1.1 400 Bad Request"
big=$(head -c 17000 /dev/zero | tr '\0' a)
expect_eq "a 17 KB header" "$(code "$U/img/1" -H "X-Big: $big")" 431
expect_eq "a 15 KB header is fine" \
    "$(code "$U/img/1" -H "X-Big: ${big:0:15000}")" 200

case_ "/_reset and /_stats"
expect_eq "/_reset" "$(curl -s "$U/_reset")" reset
want='{"requests":0,"in_flight":0,"peak_in_flight":0,"violations":0,'
want+='"connections":1,"status":{},"log_dropped":0}'
expect_eq "stats after reset" "$(curl -s "$U/_stats")" "$want"
expect_eq "/_log after reset" "$(curl -s "$U/_log")" ""

case_ "keep-alive and pipelining"
curl -s "$U/_reset" >/dev/null
got=$(curl -s -o /dev/null -o /dev/null -o /dev/null \
    -w '%{num_connects}' "$U/img/1" "$U/img/2" "$U/img/3")
expect_eq "new connections for 3 requests" "$got" "100"
expect_eq "connections seen by the origin" "$(stat "$U" connections)" 2
expect_eq "requests" "$(stat "$U" requests)" 3
got=$(raw "$PORT_A" 'GET /img/5 HTTP/1.1\r\n\r\nHEAD /img/6 HTTP/1.1\r\n\r\n'\
'GET /_stats HTTP/1.1\r\nConnection: close\r\n\r\n')
expect_eq "pipelined responses" "$(grep -ao 'HTTP/1.1 200' <<<"$got" | wc -l)" 3
expect_eq "pipelined requests" "$(stat "$U" requests)" 5
got=$(raw "$PORT_A" 'GET /img/8 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'\
'GET /img/9 HTTP/1.0\r\n\r\n')
expect_eq "HTTP/1.0 keep-alive" "$(grep -ao 'HTTP/1.1 200' <<<"$got" | wc -l)" 2

case_ "status counts, the log and its format"
curl -s "$U/_reset" >/dev/null
for i in 1 2 3; do curl -s -o /dev/null "$U/img/$i"; done
curl -s -o /dev/null "$U/img/1?fault=status&code=404"
expect_eq "status counts" \
    "$(curl -s "$U/_stats" | sed 's/.*"status":\({[^}]*}\).*/\1/')" \
    '{"200":3,"404":1}'
curl -s "$U/_log" >log
expect_eq "log lines" "$(wc -l <log)" 4
expect_eq "log fields" "$(awk 'NF != 8 { bad++ } END { print bad + 0 }' log)" 0
expect_eq "log line 4" "$(awk 'NR == 4 { print $1, $2, $5, $6, $7, $8 }' log)" \
    "1 1 0 404 9 /img/1?fault=status&code=404"
expect_eq "log in completion order" \
    "$(awk '$4 < last { bad++ } { last = $4 } END { print bad + 0 }' log)" 0

case_ "fault=status"
curl -s "$U/_reset" >/dev/null
expect_eq "first" "$(code "$U/img/3?fault=status&code=410")" 410
expect_eq "second" "$(code "$U/img/3?fault=status&code=410")" 410
expect_eq "default code" "$(code "$U/img/3?fault=status")" 500

case_ "fault=flaky"
expect_eq "1st" "$(code "$U/img/4?fault=flaky&fails=2&code=503")" 503
expect_eq "2nd" "$(code "$U/img/4?fault=flaky&fails=2&code=503")" 503
expect_eq "3rd" "$(code "$U/img/4?fault=flaky&fails=2&code=503")" 200
expect_eq "default: 1st" "$(code "$U/img/4?fault=flaky")" 500
expect_eq "default: 2nd" "$(code "$U/img/4?fault=flaky")" 200
expect_eq "another key counts apart" \
    "$(code "$U/img/4?fault=flaky&x=1")" 500
expect_eq "attempts in the log" \
    "$(awk '$8 == "/img/4?fault=flaky&fails=2&code=503" { print $2 }' \
        <(curl -s "$U/_log") | tr '\n' ' ')" "1 2 3 "
curl -s "$U/_reset" >/dev/null
expect_eq "after /_reset the count restarts" \
    "$(code "$U/img/4?fault=flaky")" 500

case_ "fault=throttle, Retry-After in seconds"
got=$(curl -s -o /dev/null -D head -w '%{http_code}' \
    "$U/img/5?fault=throttle&fails=1&retry_after=7")
expect_eq "status" "$got" 429
expect_eq "Retry-After" "$(header head Retry-After)" 7
expect_eq "then 200" \
    "$(code "$U/img/5?fault=throttle&fails=1&retry_after=7")" 200
got=$(curl -s -o /dev/null -D head -w '%{http_code}' \
    "$U/img/5?fault=throttle&code=503&retry_after=2")
expect_eq "code=503" "$got" 503
expect_eq "code=503 Retry-After" "$(header head Retry-After)" 2

case_ "fault=throttle, Retry-After as an HTTP-date"
got=$(curl -s -o /dev/null -D head -w '%{http_code}' \
    "$U/img/6?fault=throttle&retry_after=30&date=1")
expect_eq "status" "$got" 429
when=$(header head Retry-After)
imf='^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} '
imf+='(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) '
imf+='[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT$'
expect_true "IMF-fixdate: $when" grep -Eq "$imf" <<<"$when"
ahead=$(($(date -d "$when" +%s) - $(date +%s)))
expect_true "Retry-After is 30 s ahead (got $ahead)" \
    test "$ahead" -ge 28 -a "$ahead" -le 31
expect_true "with a Date header" test -n "$(header head Date)"

case_ "fault=reset"
curl -s "$U/_reset" >/dev/null
curl -s -o part "$U/img/7?fault=reset&fails=1"
rc=$?
expect_true "curl fails (rc $rc)" test "$rc" -ne 0
expect_true "at most half the body arrived ($(wc -c <part) bytes)" \
    test "$(wc -c <part)" -le 2048
expect_eq "then 200" "$(code "$U/img/7?fault=reset&fails=1")" 200
expect_eq "log: status and bytes sent" \
    "$(awk 'NR == 1 { print $6, $7 }' <(curl -s "$U/_log"))" "200 2048"
expect_eq "in flight" "$(stat "$U" in_flight)" 0

case_ "fault=stall"
curl -s "$U/_reset" >/dev/null
curl -s -o part --max-time 1.5 "$U/img/8?fault=stall&fails=1" &
stalled=$!
sleep 0.7
expect_eq "the stalled request is in flight" "$(stat "$U" in_flight)" 1
wait $stalled
expect_eq "curl timed out" "$?" 28
expect_eq "a quarter of the body arrived" "$(wc -c <part)" 1024
sleep 0.2
expect_eq "the request ended when curl left" "$(stat "$U" in_flight)" 0
expect_eq "log: status and bytes sent" \
    "$(awk 'NR == 1 { print $6, $7 }' <(curl -s "$U/_log"))" "200 1024"
expect_eq "then 200" "$(code "$U/img/8?fault=stall&fails=1")" 200

case_ "fault=badlen"
got=$(curl -s -o part -D head -w '%{http_code}' "$U/img/9?fault=badlen")
rc=$?
expect_eq "curl sees a short body" "$rc" 18
expect_eq "Content-Length" "$(header head Content-Length)" 4196
expect_true "the bytes sent are the object" "$VERIFY" check 9 4096 part
expect_eq "then 200" "$(code "$U/img/9?fault=badlen")" 200

case_ "fault=redirect"
curl -s "$U/_reset" >/dev/null
got=$(curl -s -o /dev/null -D head -w '%{http_code}' \
    "$U/img/10?x=1&fault=redirect&hops=3")
expect_eq "status" "$got" 302
expect_eq "Location" "$(header head Location)" \
    "/img/10?x=1&fault=redirect&hops=2"
got=$(curl -s -L -o body -w '%{http_code} %{num_redirects}' \
    "$U/img/10?x=1&fault=redirect&hops=3")
expect_eq "followed" "$got" "200 3"
expect_true "the final body" "$VERIFY" check 10 4096 body
expect_eq "no hops parameter means one hop" \
    "$(curl -s -o /dev/null -w '%{redirect_url}' "$U/img/10?fault=redirect")" \
    "$U/img/10?fault=redirect&hops=0"
start_origin B
to=$(printf '%s' "$URL_B" | sed 's/:/%3A/g; s,/,%2F,g')
got=$(curl -s -o /dev/null -D head -w '%{http_code}' \
    "$U/img/11?fault=redirect&hops=2&to=$to")
expect_eq "absolute Location" "$(header head Location)" \
    "$URL_B/img/11?fault=redirect&hops=1&to=$to"
got=$(curl -s -L -o body -w '%{http_code} %{num_redirects}' \
    "$U/img/11?fault=redirect&hops=2&to=$to")
expect_eq "followed across origins" "$got" "200 2"
expect_eq "requests at the other origin" "$(stat "$URL_B" requests)" 2

case_ "fault=loop"
got=$(curl -s -o /dev/null -D head -w '%{http_code}' \
    "$U/img/12?fault=loop&a=b")
expect_eq "status" "$got" 302
expect_eq "Location" "$(header head Location)" "/img/12?fault=loop&a=b"
curl -s -L --max-redirs 5 -o /dev/null "$U/img/12?fault=loop"
expect_eq "curl gives up" "$?" 47

case_ "fault=trickle"
curl -s "$U/_reset" >/dev/null
rm -f part
curl -s -o part -D head --max-time 2.5 "$U/img/13?fault=trickle" &
client=$!
sleep 0.5
expect_eq "the head came at once" "$(header head Content-Length)" 4096
expect_eq "in flight while trickling" "$(stat "$U" in_flight)" 1
wait $client
expect_eq "curl timed out" "$?" 28
expect_true "a byte a second: 2 or 3 bytes in 2.5 s (got $(wc -c <part))" \
    test "$(wc -c <part)" -ge 2 -a "$(wc -c <part)" -le 3
expect_true "the bytes are the object's first" \
    cmp -s part <("$VERIFY" body 13 4096 | head -c "$(wc -c <part)")
sleep 0.2
expect_eq "the request ended when curl left" "$(stat "$U" in_flight)" 0
expect_eq "log: status and bytes sent" \
    "$(awk 'NR == 1 { print $6, $7 }' <(curl -s "$U/_log"))" \
    "200 $(wc -c <part)"
expect_eq "HEAD: the head alone" \
    "$(curl -s -I -o /dev/null -w '%{http_code}' --max-time 2 \
        "$U/img/13?fault=trickle")" 200

case_ "fault=endless"
curl -s "$U/_reset" >/dev/null
curl -s -o /dev/null -D head -w '%{size_download}' --max-time 1.5 \
    "$U/img/14?fault=endless" >endless.size &
client=$!
sleep 0.5
expect_eq "in flight while sending" "$(stat "$U" in_flight)" 1
got=$(curl -s -o /dev/null -w '%{time_total}' "$U/_stats")
expect_true "the origin still answers others at once (took $got s)" \
    awk -v t="$got" 'BEGIN { exit !(t < 0.5) }'
wait $client
expect_eq "curl timed out" "$?" 28
expect_true "over 10 MB arrived in 1.5 s (got $(cat endless.size))" \
    test "$(cat endless.size)" -gt 10000000
expect_eq "no Content-Length" "$(header head Content-Length)" ""
expect_eq "Connection: close" "$(header head Connection)" close
sleep 0.2
expect_eq "the request ended when curl left" "$(stat "$U" in_flight)" 0
curl -s "$U/img/14?fault=endless" | head -c 100000 >part
expect_true "the body is object 14, extended" \
    cmp -s part <("$VERIFY" body 14 100000)
sleep 0.2
expect_eq "a client that reads a little and leaves" "$(stat "$U" in_flight)" 0
expect_eq "both logged as 200" "$(stat "$U" 200)" 2

case_ "fault=hugeheaders"
curl -s "$U/_reset" >/dev/null
exec 3<>"/dev/tcp/127.0.0.1/$PORT_A"
printf 'GET /img/15?fault=hugeheaders HTTP/1.1\r\nConnection: close\r\n\r\n' >&3
timeout 5 cat <&3 >huge
exec 3<&- 3>&-
head_len=$(grep -abom1 $'^\r$' huge | cut -d: -f1)
expect_true "a head of over 4 MB (got ${head_len:-none})" \
    test "${head_len:-0}" -gt 4000000
expect_eq "status line" "$(head -n 1 huge | tr -d '\r')" "HTTP/1.1 200 OK"
expect_eq "X-Junk lines" "$(grep -ac '^X-Junk-[0-9]*: j*'$'\r''$' huge)" 4096
tail -c +$((head_len + 3)) huge >body
expect_true "then the object" "$VERIFY" check 15 4096 body
curl -s -o /dev/null "$U/img/15?fault=hugeheaders"
expect_true "curl refuses it (rc $?)" test "$?" -ne 0
sleep 0.2
expect_eq "in flight" "$(stat "$U" in_flight)" 0
expect_eq "requests" "$(stat "$U" requests)" 2

case_ "fault=manyredirects"
curl -s "$U/_reset" >/dev/null
got=$(curl -s -o /dev/null -D head -w '%{http_code}' \
    "$U/img/16.jpg?x=1&fault=manyredirects")
expect_eq "status" "$got" 302
expect_eq "Location" "$(header head Location)" \
    "/img/16.jpg?x=1&fault=manyredirects&hop=1"
curl -s -o /dev/null -D head "$U/img/16.jpg?hop=41&fault=manyredirects"
expect_eq "the counter goes up" "$(header head Location)" \
    "/img/16.jpg?hop=42&fault=manyredirects"
curl -s "$U/_reset" >/dev/null
curl -s -L --max-redirs 30 -o /dev/null "$U/img/16?fault=manyredirects"
expect_eq "curl gives up" "$?" 47
expect_eq "31 requests" "$(stat "$U" requests)" 31
expect_eq "31 different URLs, each asked once" \
    "$(curl -s "$U/_log" | awk '$2 == 1 { print $8 }' | sort -u | wc -l)" 31
got=$(curl -s -o /dev/null -D head -w '%{http_code}' \
    "$U/img/16?fault=manyredirects&hop=3&to=$to")
expect_eq "absolute, with to=" "$(header head Location)" \
    "$URL_B/img/16?fault=manyredirects&hop=4&to=$to"
expect_eq "bad hop" "$(code "$U/img/16?fault=manyredirects&hop=x")" 400

case_ "fault=badstatus"
curl -s "$U/_reset" >/dev/null
got=$(raw "$PORT_A" 'GET /img/17?fault=badstatus HTTP/1.1\r\n\r\n')
expect_eq "answered and closed" "$?" 0
expect_eq "status line" "${got%%$'\r'*}" "HTTP/1.1 abc Bogus"
raw "$PORT_A" 'GET /img/17?fault=badstatus&garbage=1 HTTP/1.1\r\n\r\n' >part
expect_eq "garbage: answered and closed" "$?" 0
expect_true "garbage: not HTTP ($(head -c 20 part | od -An -c | tr -s ' '))" \
    test -s part -a "$(head -c 5 part)" != "HTTP/"
curl -s -o /dev/null "$U/img/17?fault=badstatus"
expect_true "curl fails (rc $?)" test "$?" -ne 0
expect_eq "no status was sent: counted under 0" "$(stat "$U" 0)" 3
expect_eq "in flight" "$(stat "$U" in_flight)" 0
expect_eq "bad garbage" "$(code "$U/img/17?fault=badstatus&garbage=2")" 400

case_ "fault=gzipbomb"
curl -s "$U/_reset" >/dev/null
got=$(curl -s -o bomb -D head -w '%{http_code} %{size_download}' \
    "$U/img/18?fault=gzipbomb")
expect_eq "status and size" "$got" "200 $(header head Content-Length)"
expect_eq "Content-Encoding" "$(header head Content-Encoding)" gzip
expect_true "a small body ($(wc -c <bomb) bytes)" \
    test "$(wc -c <bomb)" -lt 16384
if command -v gzip >/dev/null 2>&1; then
    expect_true "a valid gzip stream" gzip -t bomb
    expect_eq "it inflates to 10 MiB" "$(gzip -dc bomb | wc -c)" 10485760
    expect_eq "of zeros" "$(gzip -dc bomb | tr -d '\0' | wc -c)" 0
else
    echo "    gzip not installed: the stream itself is not checked"
fi
expect_eq "a client asking for gzip inflates it" \
    "$(curl -s --compressed "$U/img/18?fault=gzipbomb" | wc -c)" 10485760
expect_true "the same bytes every time" \
    cmp -s bomb <(curl -s "$U/img/19?fault=gzipbomb")
got=$(curl -s -I -o /dev/null -D head -w '%{size_download}' \
    "$U/img/18?fault=gzipbomb")
expect_eq "HEAD" "$got $(header head Content-Length)" "0 $(wc -c <bomb)"

case_ "fault=silent"
curl -s "$U/_reset" >/dev/null
rm -f part
curl -s -o part -w '%{size_header}' --max-time 1 "$U/img/20?fault=silent" \
    >silent.size &
client=$!
sleep 0.5
expect_eq "in flight while silent" "$(stat "$U" in_flight)" 1
wait $client
expect_eq "curl timed out" "$?" 28
got=$(cat part 2>/dev/null | wc -c) # curl makes no file for no bytes
expect_eq "nothing arrived" "$(cat silent.size) $got" "0 0"
sleep 0.2
expect_eq "the request ended when curl left" "$(stat "$U" in_flight)" 0
expect_eq "logged with no status" \
    "$(awk '{ print $6, $7 }' <(curl -s "$U/_log"))" "0 0"

case_ "the limit counts requests that never end until their client goes"
start_origin H --limit 3 --quiet
clients=()
for f in trickle endless silent; do
    curl -s -o /dev/null --max-time 1.5 "$URL_H/img/1?fault=$f" &
    clients+=($!)
done
sleep 0.5
expect_eq "in flight" "$(stat "$URL_H" in_flight)" 3
expect_eq "a fourth request is over the limit" "$(code "$URL_H/img/2")" 503
wait "${clients[@]}"
sleep 0.2
expect_eq "in flight once they left" "$(stat "$URL_H" in_flight)" 0
expect_eq "then a request is served" "$(code "$URL_H/img/2")" 200
expect_eq "violations" "$(stat "$URL_H" violations)" 1
expect_eq "peak" "$(stat "$URL_H" peak_in_flight)" 4
expect_eq "requests = in flight + finished" "$(finished "$URL_H")" \
    "$(stat "$URL_H" requests)"
stop_origin H

case_ "sizes: uniform, and large bodies written in many pieces"
start_origin S --size uniform:1:3000000 --quiet
for n in 1 2 3 4; do
    want=$("$VERIFY" size uniform:1:3000000 $n)
    got=$(curl -s -o "obj$n" -D head -w '%{size_download}' "$URL_S/img/$n")
    expect_eq "size of /img/$n" "$got" "$want"
    expect_eq "ETag of /img/$n" "$(header head ETag)" "\"$n-$want\""
    expect_true "bytes of /img/$n" "$VERIFY" check $n "$want" "obj$n"
done
stop_origin S

case_ "latency: fixed, and applied before the head"
start_origin L --latency fixed:300
got=$(curl -s -o /dev/null -w '%{time_starttransfer}' "$URL_L/img/1")
expect_true "first byte after 300 ms (got $got s)" \
    awk -v t="$got" 'BEGIN { exit !(t >= 0.3) }'
expect_eq "latency in the log" \
    "$(awk '{ print $5, ($4 - $3 >= 300) }' <(curl -s "$URL_L/_log"))" "300 1"
expect_eq "/_stats has no latency" \
    "$(curl -s -o /dev/null -w '%{time_total}' "$URL_L/_stats" |
        awk '{ print ($1 < 0.25) }')" 1

case_ "latency: a client that leaves ends its request"
curl -s "$URL_L/_reset" >/dev/null
curl -s -o /dev/null --max-time 0.1 "$URL_L/img/2"
sleep 0.1
expect_eq "in flight" "$(stat "$URL_L" in_flight)" 0
expect_eq "logged with no status" \
    "$(awk '{ print $6, $7 }' <(curl -s "$URL_L/_log"))" "0 0"
expect_eq "status 0 counted" "$(stat "$URL_L" 0)" 1
stop_origin L INT

case_ "latency: deterministic in (seed, n, attempt)"
start_origin D1 --latency lognormal:5:1 --seed 7 --quiet
start_origin D2 --latency lognormal:5:1 --seed 7 --quiet
start_origin D3 --latency uniform:1:40 --seed 8 --quiet
for u in "$URL_D1" "$URL_D2" "$URL_D3"; do
    curl -s "$u/img/[1-8]" "$u/img/[1-8]" >/dev/null
done
lat() {
    curl -s "$1/_log" | awk '{ print $1 "/" $2 ":" $5 }' | sort | tr '\n' ' '
}
expect_eq "same seed, same latencies" "$(lat "$URL_D1")" "$(lat "$URL_D2")"
expect_true "latencies vary" \
    test "$(curl -s "$URL_D1/_log" | awk '{ print $5 }' | sort -u |
        wc -l)" -gt 3
expect_true "uniform within bounds" \
    awk '$5 < 1 || $5 > 40 { exit 1 }' <(curl -s "$URL_D3/_log")
stop_origin D1
stop_origin D2
stop_origin D3

case_ "the limit: concurrent requests over it get 503 at once"
start_origin N --limit 3 --latency fixed:1500 --quiet
clients=()
for i in $(seq 8); do
    curl -s -o "lim$i" -w '%{http_code} %{time_total}\n' "$URL_N/img/$i" \
        >"lim$i.code" &
    clients+=($!)
done
sleep 0.7
expect_eq "in flight meanwhile" "$(stat "$URL_N" in_flight)" 3
wait "${clients[@]}"
expect_eq "200s" "$(cat lim*.code | grep -c '^200 ')" 3
expect_eq "503s" "$(cat lim*.code | grep -c '^503 ')" 5
expect_eq "503s at once" \
    "$(cat lim*.code | awk '$1 == 503 && $2 > 1 { n++ } END { print n + 0 }')" 0
expect_eq "violations" "$(stat "$URL_N" violations)" 5
expect_eq "503 count" "$(stat "$URL_N" 503)" 5
expect_eq "200 count" "$(stat "$URL_N" 200)" 3
expect_eq "peak in flight" "$(stat "$URL_N" peak_in_flight)" 4
expect_eq "over limit body" "$(cat "$(grep -l '^503' lim*.code | head -n 1 |
    sed 's/\.code$//')")" "over limit"
stop_origin N

case_ "the limit: a client that keeps to it is never refused"
start_origin K --limit 3 --latency uniform:5:30 --quiet
curl -s --no-progress-meter --parallel --parallel-max 3 -o /dev/null \
    -w '%{stderr}%{http_code}\n' "$URL_K/img/[1-60]" 2>codes
expect_eq "all 200" "$(grep -c '^200$' codes)" 60
expect_eq "violations" "$(stat "$URL_K" violations)" 0
expect_eq "peak" "$(stat "$URL_K" peak_in_flight)" 3
# Leaving and coming back: each request ends when its client closes.
curl -s "$URL_K/_reset" >/dev/null
stop_origin K
start_origin K --limit 1 --latency fixed:2000 --quiet
for i in 1 2 3 4 5 6; do
    curl -s -o /dev/null --max-time 0.1 "$URL_K/img/$i"
done
expect_eq "no violation from clients that left" \
    "$(stat "$URL_K" violations)" 0
expect_eq "requests" "$(stat "$URL_K" requests)" 6
stop_origin K

case_ "--hold-abandoned: a client that leaves during the latency"
start_origin HA --hold-abandoned --latency fixed:1500 --limit 1 --quiet
start_origin HN --latency fixed:1500 --limit 1 --quiet
leave_after 0.1 "$URL_HA/img/1" "$URL_HN/img/1"
sleep 0.2
expect_eq "held: the next request is over the limit" \
    "$(code "$URL_HA/img/2")" 503
expect_eq "held: violations" "$(stat "$URL_HA" violations)" 1
expect_eq "held: still in flight" "$(stat "$URL_HA" in_flight)" 1
expect_eq "held: not ended yet" "$(stat "$URL_HA" abandoned)" 0
expect_eq "held: requests = in flight + finished" \
    "$(finished "$URL_HA")" $(($(stat "$URL_HA" requests) - 1))
expect_eq "without the option: ended when its client left" \
    "$(stat "$URL_HN" in_flight)" 0
expect_eq "without the option: the next request is served" \
    "$(code "$URL_HN/img/2" --max-time 0.3)" 000
expect_eq "without the option: no violation" "$(stat "$URL_HN" violations)" 0
expect_eq "without the option: no abandoned in /_stats" \
    "$(curl -s "$URL_HN/_stats" | grep -c abandoned)" 0
sleep 1.5
expect_eq "after its latency: in flight" "$(stat "$URL_HA" in_flight)" 0
expect_eq "after its latency: abandoned" "$(stat "$URL_HA" abandoned)" 1
expect_eq "after its latency: counted under 0" "$(stat "$URL_HA" 0)" 1
expect_eq "requests = in flight + finished" "$(finished "$URL_HA")" \
    "$(stat "$URL_HA" requests)"
expect_eq "log: latency, status, bytes and the end at the latency's end" \
    "$(awk '$8 == "/img/1" { print $5, $6, $7, ($4 - $3 >= 1500),
        ($4 - $3 < 1700) }' <(curl -s "$URL_HA/_log"))" "1500 0 0 1 1"
stop_origin HA
stop_origin HN

case_ "--hold-abandoned=MS: stalled, trickling and silent requests"
start_origin HM --hold-abandoned=700 --quiet
leave_after 0.5 "$URL_HM/img/1?fault="{stall\&fails=1,silent,trickle,endless}
sleep 0.2
expect_eq "held after their clients left, endless not" \
    "$(stat "$URL_HM" in_flight)" 3
expect_eq "endless ended when its client left" "$(finished "$URL_HM")" 1
sleep 0.9
expect_eq "then they end" "$(stat "$URL_HM" in_flight)" 0
expect_eq "abandoned" "$(stat "$URL_HM" abandoned)" 3
curl -s "$URL_HM/_log" >log
expect_eq "log: status and bytes sent" \
    "$(awk '{ print $8, $6, $7 }' log | sort | grep -v endless | tr '\n' ' ')" \
    "/img/1?fault=silent 0 0 /img/1?fault=stall&fails=1 200 1024 \
/img/1?fault=trickle 200 0 "
expect_true "held until 700 ms after their clients left, 500 ms in" \
    awk '!/endless/ && ($4 - $3 < 1000 || $4 - $3 > 1500) { exit 1 }' log
# /_reset: a held request still counts in in_flight, then ends unseen.
leave_after 0.3 "$URL_HM/img/2?fault=silent"
curl -s "$URL_HM/_reset" >/dev/null
expect_eq "held across /_reset" "$(stat "$URL_HM" in_flight)" 1
expect_eq "peak restarts from it" "$(stat "$URL_HM" peak_in_flight)" 1
sleep 1
expect_eq "then it ends" "$(stat "$URL_HM" in_flight)" 0
expect_eq "neither counted nor logged" \
    "$(stat "$URL_HM" abandoned) $(finished "$URL_HM") $(curl -s \
        "$URL_HM/_log" | wc -l)" "0 0 0"
leave_after 0.3 "$URL_HM/img/3?fault=silent"
stop_origin HM # with a request held
start_origin H0 --hold-abandoned --quiet
leave_after 0.3 "$URL_H0/img/1?fault=silent"
sleep 0.2
expect_eq "no MS: a silent request ends when its client leaves" \
    "$(stat "$URL_H0" in_flight) $(stat "$URL_H0" abandoned)" "0 0"
stop_origin H0

case_ "--rate-limit 5/1: a burst in one window, then the next window"
start_origin R --rate-limit 5/1 --quiet
to_next_window "$URL_R" 1000
curl -s -o /dev/null -D heads -w '%{stderr}%{http_code} ' \
    "$URL_R/img/[1-8]" 2>codes
curl -s "$URL_R/_stats" >stats
expect_eq "5 x 200, then 3 x 429" "$(cat codes)" \
    "200 200 200 200 200 429 429 429 "
expect_eq "no Retry-After" "$(grep -ci '^retry-after' heads)" 0
expect_eq "no rate limit headers without --ratelimit-headers" \
    "$(grep -ci ratelimit heads)" 0
expect_eq "throttled" "$(sed -n 's/.*"throttled":\([0-9]*\).*/\1/p' stats)" 3
expect_eq "max_per_window" \
    "$(sed -n 's/.*"max_per_window":\([0-9]*\).*/\1/p' stats)" 5
expect_eq "the fields' place in /_stats" \
    "$(sed 's/.*"status":{[^}]*}\(,.*\)$/\1/' stats)" \
    ',"throttled":3,"max_per_window":5,"log_dropped":0}'
expect_eq "429 counted" "$(stat "$URL_R" 429)" 3
expect_eq "a throttled request is a request" "$(stat "$URL_R" requests)" 8
expect_eq "requests = in flight + finished" "$(finished "$URL_R")" 8
expect_eq "log: the 429s, at once, with their body" \
    "$(awk '$6 == 429 { print $1, $5, $7 }' <(curl -s "$URL_R/_log") |
        tr '\n' ' ')" "6 0 12 7 0 12 8 0 12 "
to_next_window "$URL_R" 1000
expect_eq "the next window serves again" \
    "$(curl -s -o /dev/null -w '%{http_code} ' "$URL_R/img/[9-10]")" \
    "200 200 "
expect_eq "throttled, still" "$(stat "$URL_R" throttled)" 3
expect_eq "max_per_window, still" "$(stat "$URL_R" max_per_window)" 5
stop_origin R

case_ "--rate-limit: a 429 is at once and in flight; the limit's 503 wins"
start_origin RL --rate-limit 1/60 --latency fixed:800 --limit 2 --quiet
start_origin RC --rate-limit 1/60 --latency fixed:800 --limit 1 \
    --ratelimit-headers=x --quiet
leave_after 5 "$URL_RL/img/1" "$URL_RC/img/1" &
clients=$!
sleep 0.3
got=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "$URL_RL/img/2")
expect_eq "over the rate, under the limit: 429" "${got% *}" 429
expect_true "at once, not after the latency (took ${got#* } s)" \
    awk -v t="${got#* }" 'BEGIN { exit !(t < 0.25) }'
got=$(curl -s -o /dev/null -D head -w '%{http_code}' "$URL_RC/img/2")
expect_eq "over the rate and the limit: 503" "$got" 503
expect_eq "the 503 describes its window too" \
    "$(header head X-RateLimit-Limit) $(header head X-RateLimit-Remaining)" \
    "1 0"
wait $clients
expect_eq "the 429 was in flight: peak" "$(stat "$URL_RL" peak_in_flight)" 2
expect_eq "the 429 is no violation" "$(stat "$URL_RL" violations)" 0
expect_eq "the 503 is a violation, not throttled" \
    "$(stat "$URL_RC" violations) $(stat "$URL_RC" throttled)" "1 0"
expect_eq "log: the 429 with no latency" \
    "$(awk '$1 == 2 { print $5, $6 }' <(curl -s "$URL_RL/_log"))" "0 429"
curl -s "$URL_RL/_reset" >/dev/null
expect_eq "/_reset: throttled 0, max_per_window from the current window" \
    "$(stat "$URL_RL" throttled) $(stat "$URL_RL" max_per_window)" "0 1"
expect_eq "/_reset keeps the window's count" "$(code "$URL_RL/img/3")" 429
stop_origin RL
stop_origin RC

# vals FILE NAME: the values of header NAME in a curl -D dump, in order.
vals() {
    tr -d '\r' <"$1" | sed -n "s/^$2: //Ip" | tr '\n' ' '
}

case_ "--ratelimit-headers=all: the values, counting down"
start_origin RH --rate-limit 5/2 --ratelimit-headers=all --quiet
to_next_window "$URL_RH" 2000
curl -s -o /dev/null -D heads -w '%{stderr}%{http_code} ' \
    "$URL_RH/img/[1-6]" 2>codes
expect_eq "statuses" "$(cat codes)" "200 200 200 200 200 429 "
expect_eq "RateLimit-Policy" \
    "$(vals heads RateLimit-Policy | tr ' ' '\n' | sort -u | tr -d '\n')" \
    '"default";q=5;w=2'
expect_eq "RateLimit r=" \
    "$(vals heads RateLimit | sed 's/"default";r=\([0-9]*\);t=[0-9]*/\1/g')" \
    "4 3 2 1 0 0 "
expect_eq "RateLimit-Remaining" "$(vals heads RateLimit-Remaining)" \
    "4 3 2 1 0 0 "
expect_eq "X-RateLimit-Remaining" "$(vals heads X-RateLimit-Remaining)" \
    "4 3 2 1 0 0 "
expect_eq "RateLimit-Limit" "$(vals heads RateLimit-Limit)" "5 5 5 5 5 5 "
expect_eq "X-RateLimit-Limit" "$(vals heads X-RateLimit-Limit)" \
    "5 5 5 5 5 5 "
resets=$(vals heads RateLimit-Reset)
expect_true "RateLimit-Reset within 1..2 ($resets)" \
    awk -v r="$resets" 'BEGIN { n = split(r, v, " ");
        for (i = 1; i <= n; i++) if (v[i] < 1 || v[i] > 2) exit 1;
        exit n != 6 }'
expect_eq "RateLimit t= the same" \
    "$(vals heads RateLimit | sed 's/"default";r=[0-9]*;t=\([0-9]*\)/\1/g')" \
    "$resets"
expect_eq "X-RateLimit-Reset the same" "$(vals heads X-RateLimit-Reset)" \
    "$resets"
expect_eq "in the order documented" \
    "$(tr -d '\r' <heads | sed -n '1,/^$/p' | grep -i ratelimit |
        cut -d: -f1 | tr '\n' ' ')" \
    "RateLimit-Policy RateLimit RateLimit-Limit RateLimit-Remaining \
RateLimit-Reset X-RateLimit-Limit X-RateLimit-Remaining X-RateLimit-Reset "
to_next_window "$URL_RH" 2000
curl -s -I -o /dev/null -D head "$URL_RH/img/7"
expect_eq "HEAD, in the next window" \
    "$(header head X-RateLimit-Remaining) $(header head RateLimit)" \
    '4 "default";r=4;t=2'
expect_eq "control routes carry none" \
    "$(curl -s -o /dev/null -D - "$URL_RH/_stats" | grep -ci ratelimit)" 0
stop_origin RH

case_ "--ratelimit-headers: one spelling at a time"
start_origin RX --rate-limit 3 --ratelimit-headers=x --quiet
start_origin RI --rate-limit 2/0.5 --ratelimit-headers=ietf --quiet
start_origin RD --rate-limit 3600/3600 --ratelimit-headers=draft --quiet
start_origin RB --rate-limit 100/1 --ratelimit-headers --quiet
start_origin RM --rate-limit 100/1 --ratelimit-headers=ietf,x --quiet
curl -s -o /dev/null -D head "$URL_RX/img/1"
expect_eq "=x: only the X- ones" \
    "$(grep -i ratelimit head | cut -d: -f1 | tr '\n' ' ')" \
    "X-RateLimit-Limit X-RateLimit-Remaining X-RateLimit-Reset "
expect_eq "=x: N alone is per second" \
    "$(header head X-RateLimit-Limit) $(header head X-RateLimit-Reset)" "3 1"
curl -s -o /dev/null -D head "$URL_RI/img/1"
expect_eq "=ietf: only RateLimit-Policy and RateLimit" \
    "$(grep -i ratelimit head | cut -d: -f1 | tr '\n' ' ')" \
    "RateLimit-Policy RateLimit "
got=$(header head RateLimit | sed 's/.*;t=//')
expect_eq "=ietf: w with its decimals, t at least 1" \
    "$(header head RateLimit-Policy) $got" '"default";q=2;w=0.5 1'
curl -s -o /dev/null -D head "$URL_RD/img/1"
expect_eq "=draft: only the three RateLimit- fields" \
    "$(grep -i ratelimit head | cut -d: -f1 | tr '\n' ' ')" \
    "RateLimit-Limit RateLimit-Remaining RateLimit-Reset "
expect_eq "=draft: limit and remaining" \
    "$(header head RateLimit-Limit) $(header head RateLimit-Remaining)" \
    "3600 3599"
reset=$(header head RateLimit-Reset)
expect_true "=draft: Reset within 1..3600 ($reset)" \
    test "$reset" -ge 1 -a "$reset" -le 3600
expect_eq "no value: all eight" "$(curl -s -o /dev/null -D - \
    "$URL_RB/img/1" | grep -ci ratelimit)" 8
expect_eq "=ietf,x" "$(curl -s -o /dev/null -D - "$URL_RM/img/1" |
    grep -i ratelimit | cut -d: -f1 | tr '\n' ' ')" \
    "RateLimit-Policy RateLimit X-RateLimit-Limit X-RateLimit-Remaining \
X-RateLimit-Reset "
for name in RX RI RD RB RM; do stop_origin "$name"; done

case_ "many connections at once"
start_origin P --size fixed:8192 --quiet
t0=$(date +%s.%N)
curl -s --no-progress-meter --parallel --parallel-max 64 -o /dev/null \
    -w '%{stderr}%{http_code}\n' "$URL_P/img/[1-3000]" 2>codes
t1=$(date +%s.%N)
expect_eq "all 200" "$(grep -c '^200$' codes)" 3000
expect_eq "requests" "$(stat "$URL_P" requests)" 3000
expect_true "peak in flight within 64" \
    test "$(stat "$URL_P" peak_in_flight)" -le 64
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
echo "    3000 requests of 8 KiB, 64 in parallel: $secs s"
expect_true "3000 requests in under 30 s (took $secs s)" \
    awk -v s="$secs" 'BEGIN { exit !(s < 30) }'
stop_origin P

case_ "IPv6"
"$ORIGIN" --listen '[::1]:0' --port-file v6.port --quiet 2>v6.err &
v6=$!
PIDS+=("$v6")
for i in $(seq 60); do
    [ -s v6.port ] || kill -0 $v6 2>/dev/null || break
    [ -s v6.port ] && break
    sleep 0.05
done
if [ -s v6.port ]; then
    expect_eq "GET over IPv6" "$(code "http://[::1]:$(cat v6.port)/img/1")" 200
    kill -TERM $v6
    wait $v6
    expect_eq "exit status" "$?" 0
else
    wait $v6
    echo "    skipped, no IPv6 loopback here: $(cat v6.err)"
fi

case_ "command line"
"$ORIGIN" --latency nope 2>/dev/null
expect_eq "bad --latency" "$?" 2
"$ORIGIN" --size uniform:5:1 2>/dev/null
expect_eq "bad --size" "$?" 2
"$ORIGIN" --listen nowhere 2>/dev/null
expect_eq "bad --listen" "$?" 2
"$ORIGIN" --limit -1 2>/dev/null
expect_eq "bad --limit" "$?" 2
"$ORIGIN" --hold-abandoned=x 2>/dev/null
expect_eq "bad --hold-abandoned" "$?" 2
"$ORIGIN" --hold-abandoned=3600001 2>/dev/null
expect_eq "--hold-abandoned over an hour" "$?" 2
for bad in 0 0/1 5/0 5/0.0 x 5/ /1 5/1.2345 5/-1 5/.5 5/1. 5/86401 \
    1000000001 5/1/2 ""; do
    "$ORIGIN" --rate-limit "$bad" 2>/dev/null
    expect_eq "bad --rate-limit '$bad'" "$?" 2
done
for bad in =bogus = =ietf, =X; do
    "$ORIGIN" --rate-limit 5/1 --ratelimit-headers"$bad" 2>/dev/null
    expect_eq "bad --ratelimit-headers$bad" "$?" 2
done
"$ORIGIN" --ratelimit-headers 2>/dev/null
expect_eq "--ratelimit-headers without --rate-limit" "$?" 2
expect_eq "no rate limit fields in /_stats without --rate-limit" \
    "$(curl -s "$U/_stats" | grep -c -e throttled -e max_per_window)" 0
"$ORIGIN" extra 2>/dev/null
expect_eq "an operand" "$?" 2
expect_eq "listening line" "$(head -n 1 A.err)" "listening on 127.0.0.1:$PORT_A"
expect_eq "port file" "$(cat A.port)" "$PORT_A"

case_ "shutdown"
exec 4<>"/dev/tcp/127.0.0.1/$PORT_A" # an idle connection stays open
stop_origin A
exec 4<&- 4>&-
stop_origin B INT

echo "origin_selftest: $((CHECKS - FAILED)) passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
