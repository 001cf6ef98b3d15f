#!/usr/bin/env bash
# The "https" workload (issue 18): partners' image hosts are CDNs on HTTPS
# with HTTP/2. nginx over TLS with http2 (its certificate from a private
# CA made here with openssl) in front of the test origin, which counts its
# requests in flight against a limit of the cap (--limit 20) and answers
# as the partner workload's does (lognormal latency, median 30 ms, sigma
# 1; 4 KiB images); N (2,000) images, cap 20.
#
# Side by side, alternating, ROUNDS (3) rounds, each run bounded by
# LIMIT_S (120) seconds, every tool given the CA: sluice --cacert; curl
# --parallel --parallel-max 20 --cacert (it waits to multiplex on HTTP/2,
# CURLOPT_PIPEWAIT); wget2 --max-threads 20 --ca-certificate, HTTP/2
# too, with --http2-request-window=1 (its default, 30 streams on each of
# its 20 connections, broke the cap: 448 of 500 requests over it in a
# trial); aria2c -j 20 --ca-certificate (HTTP/1.1 only). sluice's time includes
# its ingest. Per tool, medians: seconds, images/s, curl's time over the
# tool's (above 1: faster than curl), ideal/actual (bench/ideal.awk, from
# the latencies the origin served), CPU seconds per 1,000 images, the
# TLS connections nginx saw and the protocol, the origin's peak in flight
# and its cap violations (summed), and the images stored byte-exact.
#   bash bench/https.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
n=${HTTPS_N:-2000}
rounds=${ROUNDS:-3}
limit_s=${LIMIT_S:-120}
cap=20
size=fixed:4096
. "$root/bench/lib.sh"
bench_prepare https "$@"

# ------------------------------------------------------------ the CA
# A private CA, and a certificate it signs for 127.0.0.1 and localhost.
{
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=bench CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout server.key -out server.csr -subj "/CN=localhost"
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
        >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key \
        -CAcreateserial -days 2 -extfile server.ext -out server.pem
} >openssl.log 2>&1
ca=$out/ca.pem

# ------------------------------------------------------------ servers
"$bin/tests/origin/sluice-origin" --quiet --port-file origin.port \
    --limit $cap --latency lognormal:30:1 --size $size &
pids+=($!)
for _ in $(seq 100); do [ -s origin.port ] && break; sleep 0.05; done
origin=http://127.0.0.1:$(cat origin.port)

start_nginx "$out/nginx" pids <<CONF
    log_format conn '\$connection \$server_protocol';
    upstream origin { server ${origin#http://}; keepalive 64; }
    server {
        listen 127.0.0.1:@PORT@ ssl http2;
        server_name localhost;
        ssl_certificate $out/server.pem;
        ssl_certificate_key $out/server.key;
        access_log $out/conn.log conn;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
CONF
base=https://${nginx_base#http://}
"$bin/bench/gen_feed" "$n" lines "$base" >urls.txt

# ------------------------------------------------------------ the tools
# TOOL_fetch STORE: fetch urls.txt into STORE, keeping the file names.

sluice_fetch() {
    rm -f q.db*
    "$bin/sluice" ingest --quiet --allow-private --db q.db urls.txt \
        >/dev/null
    timeout "$limit_s" "$bin/sluice" run --db q.db --store "$1" \
        --max-concurrency $cap --allow-private --cacert "$ca" --quiet \
        --stall-timeout 2 --backoff-base 0.05 --backoff-cap 1 \
        >/dev/null 2>&1 || true
}

curl_fetch() {
    awk -v d="$1" '{ f = $0; sub(/.*\//, "", f)
        printf "url = \"%s\"\noutput = \"%s/%s\"\n", $0, d, f }' \
        urls.txt >curl.cfg
    timeout "$limit_s" curl --silent --parallel --parallel-max $cap \
        --cacert "$ca" --config curl.cfg >/dev/null 2>&1 || true
}

wget2_fetch() {
    timeout "$limit_s" wget2 --quiet --max-threads $cap --no-robots \
        --compression=none --http2-request-window=1 \
        --ca-certificate="$ca" --tries 8 \
        --waitretry 0 --directory-prefix "$1" --input-file urls.txt \
        >/dev/null 2>&1 || true
}

aria2c_fetch() {
    timeout "$limit_s" aria2c --quiet=true -j $cap -x 1 --max-tries 8 \
        --retry-wait 0 --ca-certificate="$ca" --allow-overwrite=true \
        --auto-file-renaming=false --file-allocation=none \
        --summary-interval=0 -d "$1" -i urls.txt >/dev/null 2>&1 || true
}

read -r -a tools <<<"${HTTPS_TOOLS:-sluice curl wget2 aria2c}"
export -f "${tools[@]/%/_fetch}"
export bin ca cap limit_s
# tool round seconds cpu_s ratio connections protocol peak violations good
: >results.tsv
for r in $(seq "$rounds"); do
    for tool in "${tools[@]}"; do
        store=stores/$tool-$r
        mkdir -p "$store"
        curl -s "$origin/_reset" >/dev/null
        : >conn.log
        sync
        start=$EPOCHREALTIME
        /usr/bin/time -f "%U %S" -o time.txt bash -c "${tool}_fetch $store"
        end=$EPOCHREALTIME
        secs=$(awk -v a="${start/,/.}" -v b="${end/,/.}" \
            'BEGIN { printf "%.3f", b - a }')
        cpu=$(awk '{ print $1 + $2 }' time.txt)
        curl -s "$origin/_log" >log.txt
        ratio=$(awk -v N=$cap -f "$root/bench/ideal.awk" log.txt |
            cut -d' ' -f3)
        stats=$(curl -s "$origin/_stats")
        peak=$(sed -n 's/.*"peak_in_flight":\([0-9]*\).*/\1/p' <<<"$stats")
        viol=$(sed -n 's/.*"violations":\([0-9]*\).*/\1/p' <<<"$stats")
        conns=$(cut -d' ' -f1 conn.log | sort -u | wc -l)
        proto=$(cut -d' ' -f2 conn.log | sort | uniq -c | sort -rn |
            awk 'NR == 1 { print $2 }')
        read -r good _ <<<"$("$bin/tests/origin/origin_verify" tree \
            $size "$store")"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$r" \
            "$secs" "$cpu" "$ratio" "$conns" "${proto:--}" "$peak" \
            "$viol" "$good" >>results.tsv
        echo "  https $tool round $r: ${secs}s, $conns connections" \
            "($proto), peak $peak, $good byte-exact" >&2
    done
done

echo "https: nginx (TLS, http2) in front of the test origin (lognormal" \
    "30 ms, sigma 1), $n images of 4 KiB, cap $cap; medians of $rounds" \
    "rounds, alternating"
# Columns: 3 seconds, 4 cpu_s, 5 ideal/actual, 6 connections, 7 protocol,
# 8 peak, 9 violations, 10 byte-exact.
bench_table results.tsv '
    printf "%-8s %8s %9s %8s %9s %11s %6s %-9s %5s %5s %11s\n", "tool",
        "seconds", "images/s", "vs_curl", "ideal/act", "cpu_s/1000",
        "conns", "protocol", "peak", "viol", "byte-exact"
    for (i = 1; i <= m; i++) {
        t = order[i]; secs = median(runs[t, 3]); good = median(runs[t, 10])
        vs = ("curl" in seen) ? median(runs["curl", 3]) / secs : 0
        ia = median(runs[t, 5]); cpu = median(runs[t, 4])
        cn = median(runs[t, 6]); pk = median(runs[t, 8])
        proto = last[t, 7]; viol = total[t, 9]
        printf "%-8s %8.2f %9.1f %8s %9s %11.3f %6d %-9s %5d %5d %6d/%d\n",
            t, secs, good / secs, vs ? sprintf("%.2fx", vs) : "-", ia,
            cpu / (good ? good : 1) * 1000, cn, proto, pk, viol, good, n
        json = json sprintf("%s{\"tool\":\"%s\",\"seconds\":%.3f," \
            "\"images_per_s\":%.1f,\"curl_time_over_tool\":%.3f," \
            "\"ideal_over_actual\":%s,\"cpu_s_per_1000\":%.3f," \
            "\"connections\":%d,\"protocol\":\"%s\"," \
            "\"peak_in_flight\":%d,\"violations\":%d,\"byte_exact\":%d}",
            json ? "," : "", t, secs, good / secs, vs,
            ia == "-" ? "null" : ia, cpu / (good ? good : 1) * 1000, cn,
            proto, pk, viol, good)
    }
    printf "{\"workload\":\"https\",\"images\":%d,\"results\":[%s]}\n", n,
        json > "https.json"
' -v n="$n"
cp https.json "$root/bench/https.json"
echo "wrote bench/https.json (runs: bench/out/https/results.tsv)"
