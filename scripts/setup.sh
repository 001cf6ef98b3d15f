#!/usr/bin/env bash
# Install what sluice needs, from Debian's packages, only when missing:
#   scripts/setup.sh [build] [test] [bench] [fuzz] [package]
#   (default: build)
# Runs apt-get (through sudo when not root) only if something is missing,
# so on a ready machine it does nothing and needs no network. The test
# group also installs the tests' npm peers (s3rver) into build/peers/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

build_pkgs=(gcc make cmake pkg-config ca-certificates
            libcurl4-openssl-dev libsqlite3-dev libyajl-dev libssl-dev
            libidn2-dev libhiredis-dev libxml2-dev libprotobuf-c-dev
            protobuf-c-compiler)
# Test peers and tools: the sqlite3 shell (lock and inspect databases),
# nginx (a real server enforcing a connection cap; over TLS with HTTP/2),
# curl, setpriv, valgrind, GNU time (the peak memory of a run), openssl
# (a private CA and certificates for the HTTPS tests and benchmark),
# redis-server (the Redis queue's tests start their own, on a unix socket),
# libmicrohttpd (tests/aws_peer.c: STS, container and instance metadata
# endpoints on loopback for the credential tests), python3-botocore
# (tests/kinesis_sign.py checks SigV4 against botocore).
test_pkgs=(sqlite3 nginx curl util-linux procps valgrind time faketime
           openssl redis-server libmicrohttpd-dev python3 python3-botocore)
bench_pkgs=(curl wget2 aria2 time)
# Packaging (make deb; tests/cli/install.sh): dpkg-shlibdeps for the
# package's Depends, file (CPack finds the binaries with it), and man and
# groff to check the man page.
package_pkgs=(dpkg-dev file man-db groff-base)
# libFuzzer: clang and its runtime (-fsanitize=fuzzer); scripts/fuzz.sh.
fuzz_pkgs=(clang libclang-rt-14-dev)

wanted=()
peers=0 # the tests' npm peers
[ $# -eq 0 ] && set -- build
for group in "$@"; do
    case $group in
    build) wanted+=("${build_pkgs[@]}") ;;
    test) wanted+=("${build_pkgs[@]}" "${test_pkgs[@]}" "${package_pkgs[@]}")
          peers=1 ;;
    bench) wanted+=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
    fuzz) wanted+=("${build_pkgs[@]}" "${fuzz_pkgs[@]}") ;;
    package) wanted+=("${build_pkgs[@]}" "${package_pkgs[@]}") ;;
    *) echo "setup.sh: unknown group '$group' (build, test, bench, fuzz," \
            "package)" >&2
       exit 2 ;;
    esac
done
# npm (and node) from Debian, unless some npm is there already.
if [ $peers = 1 ] && ! command -v npm >/dev/null; then
    wanted+=(nodejs npm)
fi

missing=()
for pkg in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        case " ${missing[*]-} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
    fi
done

apt_install() {
    local sudo=() attempt
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || {
            echo "setup.sh: need root (or sudo) to install: $*" >&2
            exit 1
        }
        sudo=(sudo)
    fi
    echo "setup.sh: installing $*" >&2
    export DEBIAN_FRONTEND=noninteractive
    for attempt in 1 2 3; do
        if "${sudo[@]}" apt-get update -qq &&
            "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
                "$@" >/dev/null; then
            return 0
        fi
        echo "setup.sh: apt-get failed (attempt $attempt); retrying" >&2
        sleep $((attempt * 5))
    done
    echo "setup.sh: could not install: $*" >&2
    exit 1
}

# The tests' npm peers from the npm registry, into the project's
# build/peers/ (ignored by git), each only when missing: s3rver (an S3 API
# server; tests/cli/run_s3.sh) and kinesalite (a Kinesis API server;
# tests/kinesis/start.sh).
S3RVER_VERSION=3.7.1
KINESALITE_VERSION=3.3.3
npm_peer() {
    local name=$1 version=$2 prefix=$root/build/peers attempt
    local pkg=$prefix/node_modules/$name/package.json
    if [ -f "$pkg" ] && grep -q "\"version\": \"$version\"" "$pkg"; then
        return 0
    fi
    echo "setup.sh: installing $name@$version (npm) into build/peers" >&2
    for attempt in 1 2 3; do
        if npm install --no-audit --no-fund --prefix "$prefix" \
            "$name@$version" >/dev/null; then
            return 0
        fi
        echo "setup.sh: npm install failed (attempt $attempt); retrying" >&2
        sleep $((attempt * 5))
    done
    echo "setup.sh: could not install $name from npm" >&2
    exit 1
}
npm_peers() {
    npm_peer s3rver "$S3RVER_VERSION"
    npm_peer kinesalite "$KINESALITE_VERSION"
}

[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
[ $peers = 0 ] || npm_peers
exit 0
