# Helpers for sluice's CLI tests (bash). Source it first; each test file
# runs in a fresh temporary directory that is removed at exit.
#   run CMD...          run, capturing $out, $err and $rc
#   assert_rc N         the last run exited with N
#   assert_has TEXT NEEDLE / assert_lacks TEXT NEEDLE
#   assert_eq GOT WANT  / fail MESSAGE / skip REASON

set -u
SLUICE=${SLUICE_BIN:?SLUICE_BIN must name the sluice binary}
SOURCE_DIR=${SLUICE_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD_DIR=${SLUICE_BUILD_DIR:-$(dirname "$SLUICE")}
WORK=$(mktemp -d /tmp/sluice-cli-XXXXXX)
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1
unset SLUICE_DB
CURRENT_TEST=""
FAILED=0

# Start a named case; its failures are reported under this name.
case_() {
    CURRENT_TEST=$1
    echo "--- $1"
}

fail() {
    echo "FAIL [$CURRENT_TEST]: $*" >&2
    echo "  stdout: ${out:-}" >&2
    echo "  stderr: ${err:-}" >&2
    FAILED=1
}

skip() {
    echo "SKIP: $*" >&2
    if [ "${SLUICE_TEST_NO_SKIP:-}" = 1 ]; then
        exit 1
    fi
    exit 77
}

run() {
    local o e
    o=$(mktemp) e=$(mktemp)
    "$@" >"$o" 2>"$e"
    rc=$?
    out=$(cat "$o")
    err=$(cat "$e")
    rm -f "$o" "$e"
}

assert_rc() {
    [ "$rc" = "$1" ] || fail "exit status $rc, wanted $1 (${2:-})"
}

assert_eq() {
    [ "$1" = "$2" ] || fail "got '$1', wanted '$2'"
}

assert_has() {
    case "$1" in
    *"$2"*) ;;
    *) fail "'$2' not found in: $1" ;;
    esac
}

assert_lacks() {
    case "$1" in
    *"$2"*) fail "'$2' unexpectedly in: $1" ;;
    *) ;;
    esac
}

# The number of lines of a text.
lines() {
    if [ -z "$1" ]; then echo 0; else printf '%s\n' "$1" | wc -l; fi
}

# A field of `sluice status --json` for the database $1.
status_field() {
    "$SLUICE" status --db "$1" --json | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"
}

# Run a command as an unprivileged user when we are root (file
# permissions do not stop root).
as_user() {
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"
    else
        "$@"
    fi
}

finish() {
    if [ "$FAILED" != 0 ]; then
        echo "some cases failed" >&2
        exit 1
    fi
    echo "all cases passed"
    exit 0
}
