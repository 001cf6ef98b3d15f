#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, build with
# warnings as errors and run every test, then build with AddressSanitizer
# and UndefinedBehaviorSanitizer and run every test again.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh build test

# Everything the tests need was just installed: a skip here is a failure.
export SLUICE_TEST_NO_SKIP=1
jobs=$(nproc)

suite() {
    local dir=$1
    shift
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DSLUICE_WERROR=ON -DSLUICE_FAULT_INJECTION=ON "$@" >/dev/null
    cmake --build "$dir" -j "$jobs"
    (cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 1200)
}

echo "== build (-Werror) and test"
suite build/check
# The tests above need fault injection compiled in; a plain build (make,
# the default configuration) must build as well, tests and all.
echo "== build the default configuration (-Werror)"
cmake -S . -B build/check-plain -DSLUICE_WERROR=ON >/dev/null
cmake --build build/check-plain -j "$jobs" >/dev/null
echo "== build with ASan + UBSan and test again"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    suite build/check-asan -DSLUICE_SANITIZE=ON
# The fuzz harnesses (fuzz/, clang's libFuzzer), each for 30 s from its
# seed corpus: a crash fails the check.
echo "== fuzz each harness for 30 s"
FUZZ_SECONDS=30 FUZZ_JOBS="$jobs" bash scripts/fuzz.sh
echo "== all tests passed"
