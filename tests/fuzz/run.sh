#!/bin/bash
# Runs every libFuzzer harness in BUILD/fuzz (make fuzz-build) for SECONDS each
# on a scratch copy of its seed corpus tests/fuzz/corpus/NAME/, so the tree is
# never written to.  Prints "PASS fuzz_NAME: ..." or "FAIL fuzz_NAME: ..." per
# harness (tests/run.sh counts these) and keeps any crash input in
# BUILD/crashes/NAME/ for the developer to add to the corpus.
# Usage: tests/fuzz/run.sh [BUILD] [SECONDS]
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$ROOT/${1:-build-fuzz}
SECS=${2:-60}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
[ -d "${1:-}" ] && BUILD=$(cd "$1" && pwd)
SCRATCH=$(mktemp -d /tmp/dirbridge-fuzz.XXXXXX)
trap 'rm -rf "$SCRATCH"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

fails=0 runs=0
for h in "$BUILD"/fuzz/fuzz_*; do
  [ -x "$h" ] || continue
  harness=$(basename "$h")
  name=${harness#fuzz_}
  runs=$((runs + 1))
  work=$SCRATCH/$name
  mkdir -p "$work/corpus" "$work/artifacts"
  [ -d "$ROOT/tests/fuzz/corpus/$name" ] && cp -r "$ROOT/tests/fuzz/corpus/$name/." "$work/corpus/"
  # -timeout: one input taking this long is a finding (a hang), not a slow run.
  "$h" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)
  arts=("$work"/artifacts/*)
  if [ "$rc" = 0 ] && [ ! -e "${arts[0]}" ]; then
    echo "PASS $harness: ${execs:-?} inputs in ${SECS}s (${speed:-?}/s), corpus $(ls "$work/corpus" | wc -l) files"
  else
    mkdir -p "$BUILD/crashes/$name"
    [ -e "${arts[0]}" ] && cp "${arts[@]}" "$BUILD/crashes/$name/"
    why=$(grep -m1 -E 'ERROR: |runtime error|SUMMARY|deadly signal|Timeout|out-of-memory' "$work/log")
    echo "FAIL $harness: exit $rc: ${why:-see log}; input kept in $BUILD/crashes/$name/"
    grep -A25 -m1 -E '==ERROR|runtime error|deadly signal' "$work/log" | sed 's/^/   | /' | head -30
    fails=$((fails + 1))
  fi
done
[ "$runs" -gt 0 ] || { echo "FAIL fuzz: no harness in $BUILD/fuzz (make fuzz-build)"; exit 1; }
[ "$fails" = 0 ]
