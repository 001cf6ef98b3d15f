#!/usr/bin/env bash
# Build the libFuzzer harnesses (fuzz/) with clang and run each one for
# FUZZ_SECONDS (default 60) from its seed corpus, fuzz/corpus/NAME, and a
# working corpus, build/fuzz/corpus/NAME. Any crash fails the script; its
# input is kept in build/fuzz/artifacts/NAME/ (add it to
# tests/fuzz-regressions/NAME/ once fixed).
#   scripts/fuzz.sh [NAME...]   (default: all; FUZZ_JOBS at once, default 1)
set -euo pipefail
cd "$(dirname "$0")/.."

all=(jsonl csv lines url key retry_after kpl records)
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
build=${FUZZ_BUILD:-build/fuzz}
[ $# -eq 0 ] && set -- "${all[@]}"
for name in "$@"; do
    case " ${all[*]} " in
    *" $name "*) ;;
    *) echo "fuzz.sh: no harness '$name' (${all[*]})" >&2; exit 2 ;;
    esac
done

bash scripts/setup.sh fuzz
cmake -S fuzz -B "$build" -DCMAKE_C_COMPILER=clang >/dev/null
cmake --build "$build" -j "$(nproc)" >"$build/build.log" 2>&1 || {
    cat "$build/build.log" >&2
    exit 1
}

# Run one harness; its output goes to $build/logs/NAME.log.
fuzz_one() {
    local name=$1 dict=()
    local corpus=$build/corpus/$name artifacts=$build/artifacts/$name
    mkdir -p "$corpus" "$artifacts" "$build/logs"
    [ -f "fuzz/$name.dict" ] && dict=("-dict=fuzz/$name.dict")
    local rc=0
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$build/fuzz_$name" -max_total_time="$seconds" -timeout=30 \
        -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$artifacts/" "$corpus" "fuzz/corpus/$name" \
        >"$build/logs/$name.log" 2>&1 || rc=$?
    echo "$rc" >"$build/logs/$name.rc"
}

# One line per harness: how long, how many runs, coverage, corpus.
report() {
    local name=$1 rc=$2 log=$build/logs/$1.log
    local done runs
    done=$(grep -a -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ "$rc" = 0 ]; then
        echo "fuzz $name: ${seconds}s, ${runs:-?} runs," \
            "$(echo "$done" | grep -o -E 'cov: [0-9]+ ft: [0-9]+ corp: [^ ]+')"
        return
    fi
    echo "fuzz $name: FAILED (exit $rc); the end of $log:" >&2
    tail -n 40 "$log" >&2
    ls "$build/artifacts/$name"/* 2>/dev/null | sed 's/^/  input: /' >&2
}

echo "== fuzz: $# harness(es), ${seconds}s each, $jobs at a time"
failed=0
for name in "$@"; do
    rm -f "$build/logs/$name.rc"
    while [ "$(jobs -r -p | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
    fuzz_one "$name" &
done
wait
for name in "$@"; do
    rc=$(cat "$build/logs/$name.rc" 2>/dev/null || echo "no status")
    report "$name" "$rc"
    [ "$rc" = 0 ] || failed=1
done
exit $failed
