# HTTPS as partners serve it: nginx over TLS with HTTP/2 in front of the
# test origin (with its cap counter), its certificate from a private CA
# made here with openssl. With the CA (--cacert, $CURL_CA_BUNDLE or
# $SSL_CERT_FILE; or a hashed directory: --capath, $SSL_CERT_DIR) every image arrives byte-exact over HTTP/2, the
# requests multiplexed on one connection, the origin never over the cap;
# without it every record fails TLS verification and nothing is stored
# or even requested; a CA file that cannot serve is a one-line usage
# error naming where it came from.
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null ||
    skip "openssl is not installed (scripts/setup.sh test)"

CAP=20
N=600
SIZE=uniform:2000:30000
# curl reads these; the cases below set them on purpose only.
unset CURL_CA_BUNDLE SSL_CERT_FILE SSL_CERT_DIR

# ------------------------------------------------------------ the CA
# A private CA, and a server certificate it signs for 127.0.0.1 (an IP
# SAN) and localhost.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=sluice test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>openssl.log ||
    { fail "openssl: the CA: $(cat openssl.log)"; finish; }
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout server.key -out server.csr -subj "/CN=localhost" \
    2>openssl.log || { fail "openssl: the CSR: $(cat openssl.log)"; finish; }
printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
    >server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key \
    -CAcreateserial -days 2 -extfile server.ext -out server.pem \
    2>openssl.log || { fail "openssl: signing: $(cat openssl.log)"; finish; }

# ------------------------------------------------------------ servers
start_origin o --limit $CAP --latency lognormal:20:0.5 --size $SIZE
# Each request: its connection's serial number, the protocol, the status
# and the client (only sluice's are looked at).
start_nginx ng <<CONF
    log_format conn '\$connection \$server_protocol \$status '
                    '"\$http_user_agent"';
    upstream origin {
        server 127.0.0.1:$o_port;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:@PORT@ ssl http2;
        server_name localhost;
        ssl_certificate $WORK/server.pem;
        ssl_certificate_key $WORK/server.key;
        access_log @DIR@/conn.log conn;
        # A CDN's limit on requests per connection is its own; nginx's
        # default (1,000) would end this run's connection half-way.
        keepalive_requests 100000;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
CONF
BASE=https://127.0.0.1:$ng_port

# feed NAME COUNT [BASE]: COUNT images ingested into NAME.db.
feed() {
    "$GEN" "$2" jsonl "${3:-$BASE}" >"$1.jsonl"
    "$SLUICE" ingest --allow-private --db "$1.db" "$1.jsonl" >/dev/null
}

RUN=("$SLUICE" run --allow-net 127.0.0.1/32 --max-concurrency $CAP
     --stall-timeout 5 --backoff-base 0.05 --backoff-cap 0.5)

# sluice_log: sluice's requests in nginx's log since it was last emptied.
sluice_log() {
    grep '"sluice/' ng/conn.log
}

# check_stored DB DIR COUNT: the run went to its end with every record
# done, fetched once each, every object byte-exact.
check_stored() {
    assert_rc 0
    assert_has "$out" "$3 done, 0 dead, 0 retried"
    assert_eq "$(status_field "$1" done)" "$3"
    local good bad
    read -r good bad <<<"$("$VERIFY" tree $SIZE "$2")"
    assert_eq "$good $bad" "$3 0"
}

case_ "--cacert: $N images over HTTP/2 on one connection, the cap held"
feed main $N
: >ng/conn.log
curl -s "http://127.0.0.1:$o_port/_reset" >/dev/null
start=$EPOCHREALTIME
run "${RUN[@]}" --db main.db --store main --cacert ca.pem
secs=$(awk -v a="${start/,/.}" -v b="${EPOCHREALTIME/,/.}" \
    'BEGIN { printf "%.1f", b - a }')
echo "  $N images in ${secs}s"
check_stored main.db main $N
assert_eq "$(sluice_log | wc -l)" $N
assert_eq "$(sluice_log | awk '$2 != "HTTP/2.0"' | wc -l)" 0
# Every stream on the connection the first transfer opened: the other 19
# waited for its handshake, then multiplexed (CURLOPT_PIPEWAIT).
assert_eq "$(sluice_log | awk '{ print $1 }' | sort -u | wc -l)" 1
assert_eq "$(origin_stat "$o_port" violations)" 0
peak=$(origin_stat "$o_port" peak_in_flight)
[ "$peak" -le $CAP ] || fail "the origin saw $peak at once, over $CAP"
# The one connection carried the cap's worth at once, not one at a time
# (20 ms median latency: 600 in series would take 15 s).
[ "$peak" -ge $((CAP - 2)) ] ||
    fail "the origin saw at most $peak at once: streams not concurrent"

case_ "a server that ends its connections every 100 requests: no retry"
# nginx's keepalive_requests, as a CDN may set it: after 100 requests it
# sends GOAWAY; the streams still open finish, and the next requests go
# on a new connection (libcurl retries a refused stream itself). At each
# switch a transfer or two may start while the new connection is being
# made and take one of their own (libcurl 7.88 waits for a connection
# only while it does not know whether the origin multiplexes): 5 to 8
# connections in trials.
start_nginx ng100 <<CONF
    log_format conn '\$connection \$server_protocol \$status '
                    '"\$http_user_agent"';
    upstream origin {
        server 127.0.0.1:$o_port;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:@PORT@ ssl http2;
        ssl_certificate $WORK/server.pem;
        ssl_certificate_key $WORK/server.key;
        access_log @DIR@/conn.log conn;
        keepalive_requests 100;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
CONF
feed goaway 400 "https://127.0.0.1:$ng100_port"
: >ng100/conn.log
run "${RUN[@]}" --db goaway.db --store goaway --cacert ca.pem
check_stored goaway.db goaway 400
conns=$(grep '"sluice/' ng100/conn.log | awk '{ print $1 }' | sort -u |
    wc -l)
[ "$conns" -ge 4 ] && [ "$conns" -le 12 ] ||
    fail "$conns connections for 400 requests at 100 a connection"
assert_eq "$(origin_stat "$o_port" violations)" 0

case_ "no CA: every record fails TLS verification, dead at once, nothing requested"
feed noca 30
: >ng/conn.log
curl -s "http://127.0.0.1:$o_port/_reset" >/dev/null
# Dead at the first attempt, however many are allowed: a certificate
# that does not verify fails the same way every time.
run "${RUN[@]}" --db noca.db --store noca --max-attempts 5
assert_rc 1
assert_has "$out" "0 done, 30 dead"
run "$SLUICE" dlq list --db noca.db
assert_eq "$(printf '%s\n' "$out" | grep -c "$(printf '\ttls\t-\t1\t')")" 30
assert_has "$out" "SSL certificate problem: unable to get local issuer"
assert_eq "$(find noca -type f -name '*.jpg' | wc -l)" 0
assert_eq "$(status_field noca.db done)" 0
assert_eq "$(origin_stat "$o_port" requests)" 0
assert_eq "$(sluice_log | wc -l)" 0

case_ "\$CURL_CA_BUNDLE and \$SSL_CERT_FILE serve as --cacert does"
for var in CURL_CA_BUNDLE SSL_CERT_FILE; do
    feed "$var" 100
    : >ng/conn.log
    run env "$var=$WORK/ca.pem" "${RUN[@]}" --db "$var.db" --store "$var"
    check_stored "$var.db" "$var" 100
    assert_eq "$(sluice_log | awk '$2 == "HTTP/2.0"' | wc -l)" 100
done
# --cacert first, then CURL_CA_BUNDLE (over SSL_CERT_FILE), as curl.
feed order 20
run env CURL_CA_BUNDLE=/nonexistent SSL_CERT_FILE=/nonexistent \
    "${RUN[@]}" --db order.db --store order --cacert ca.pem
check_stored order.db order 20
run env CURL_CA_BUNDLE=/nonexistent SSL_CERT_FILE="$WORK/ca.pem" \
    "${RUN[@]}" --db order.db --store order
assert_rc 2
assert_has "$err" "CURL_CA_BUNDLE=/nonexistent"

case_ "--capath and \$SSL_CERT_DIR: a directory of hashed CA certificates"
mkdir -p cadir emptydir
cp ca.pem cadir/
openssl rehash cadir 2>openssl.log || fail "openssl rehash: $(cat openssl.log)"
feed capath 40
run "${RUN[@]}" --db capath.db --store capath --capath cadir
check_stored capath.db capath 40
feed certdir 40
run env SSL_CERT_DIR="$WORK/emptydir:$WORK/cadir" "${RUN[@]}" \
    --db certdir.db --store certdir
check_stored certdir.db certdir 40
# CURL_CA_BUNDLE, when set, is taken instead (as curl does).
run env SSL_CERT_DIR="$WORK/cadir" CURL_CA_BUNDLE=/nonexistent \
    "${RUN[@]}" --db certdir.db --store certdir
assert_rc 2
assert_has "$err" "CURL_CA_BUNDLE=/nonexistent"
run "${RUN[@]}" --db certdir.db --store certdir --capath emptydir
assert_rc 2
assert_eq "$(lines "$err")" 1
assert_has "$err" "--capath emptydir: no hashed certificate in it (openssl rehash DIR makes them)"
run env SSL_CERT_DIR="$WORK/cadir:/nonexistent" "${RUN[@]}" \
    --db certdir.db --store certdir
assert_rc 2
assert_eq "$(lines "$err")" 1
assert_has "$err" "SSL_CERT_DIR=$WORK/cadir:/nonexistent (from the environment): /nonexistent: No such file or directory"

case_ "a host name is checked against the certificate's DNS name"
feed named 20 "https://localhost:$ng_port"
run "${RUN[@]}" --allow-net ::1/128 --db named.db --store named \
    --cacert ca.pem
check_stored named.db named 20

case_ "a CA file that cannot serve is a one-line usage error"
feed usage 5
run "${RUN[@]}" --db usage.db --store usage --cacert /nonexistent
assert_rc 2
assert_eq "$(lines "$err")" 1
assert_has "$err" "--cacert /nonexistent: No such file or directory"
run "${RUN[@]}" --db usage.db --store usage --cacert "$WORK"
assert_rc 2
assert_eq "$(lines "$err")" 1
assert_has "$err" "--cacert $WORK: Is a directory"
run "${RUN[@]}" --db usage.db --store usage --cacert server.csr
assert_rc 2
assert_eq "$(lines "$err")" 1
assert_has "$err" "--cacert server.csr: no PEM certificate in it"
run env SSL_CERT_FILE=/nonexistent "${RUN[@]}" --db usage.db --store usage
assert_rc 2
assert_eq "$(lines "$err")" 1
assert_has "$err" "SSL_CERT_FILE=/nonexistent (from the environment): "
# Nothing was touched.
assert_eq "$(status_field usage.db pending)" 5
[ ! -e usage ] || fail "a store was made"

finish
