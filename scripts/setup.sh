#!/usr/bin/env bash
# Install what sluice needs, from Debian's packages, only when missing:
#   scripts/setup.sh [build] [test] [bench]   (default: build)
# Runs apt-get (through sudo when not root) only if something is missing,
# so on a ready machine it does nothing and needs no network.
set -euo pipefail

build_pkgs=(gcc make cmake pkg-config ca-certificates
            libcurl4-openssl-dev libsqlite3-dev libyajl-dev libssl-dev)
# Test peers and tools: the sqlite3 shell (lock and inspect databases),
# nginx (a real server enforcing a connection cap), curl, setpriv,
# valgrind, GNU time (the peak memory of a run).
test_pkgs=(sqlite3 nginx curl util-linux procps valgrind time)
bench_pkgs=(curl wget2 aria2 time)

wanted=()
[ $# -eq 0 ] && set -- build
for group in "$@"; do
    case $group in
    build) wanted+=("${build_pkgs[@]}") ;;
    test) wanted+=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
    bench) wanted+=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
    *) echo "setup.sh: unknown group '$group' (build, test, bench)" >&2
       exit 2 ;;
    esac
done

missing=()
for pkg in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        case " ${missing[*]-} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || {
        echo "setup.sh: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    }
    sudo=(sudo)
fi
echo "setup.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do
    if "${sudo[@]}" apt-get update -qq &&
        "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null; then
        exit 0
    fi
    echo "setup.sh: apt-get failed (attempt $attempt); retrying" >&2
    sleep $((attempt * 5))
done
echo "setup.sh: could not install: ${missing[*]}" >&2
exit 1
