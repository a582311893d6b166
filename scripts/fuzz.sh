#!/usr/bin/env bash
# Runs every libFuzzer target for a bounded time from its seed corpus (fuzz/corpus/NAME, made from the
# project's fixtures; fuzz/dict/NAME.dict when present) and prints executions and crashes per target. A crash,
# a sanitizer report, an unexpected exception type, a failed FUZZ_CHECK, a hang (-timeout) or an input using
# more than 2 GB all count. Exits non-zero if any target crashed; the input is kept in fuzz/crashes/ to be
# turned into a regression test (tests/fixtures/fuzz_regressions/NAME-what).
# usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [BUILD_DIR]   (build with: cmake --preset sanitize && cmake --build build-sanitize)
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=${2:-build-sanitize}
work=$(mktemp -d /tmp/ctxbench-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p fuzz/crashes
failed=0
printf '%-22s %12s %8s\n' target executions crashes
for binary in "$build"/fuzz_*; do
  [ -x "$binary" ] || continue
  name=$(basename "$binary")
  corpus="$work/$name"
  mkdir -p "$corpus"
  seeds="fuzz/corpus/${name#fuzz_}"
  dict="fuzz/dict/${name#fuzz_}.dict"
  options=()
  [ -f "$dict" ] && options+=(-dict="$dict")
  [ -d "$seeds" ] || seeds=""
  "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${options[@]}" \
    -artifact_prefix="fuzz/crashes/$name-" "$corpus" ${seeds:+"$seeds"} > "$work/$name.log" 2>&1
  status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$name.log" | tail -1)
  crashes=0
  if [ $status -ne 0 ]; then
    crashes=1
    failed=1
    grep -m8 -E 'ERROR|runtime error|what\(\)|FUZZ_CHECK|out-of-memory|SUMMARY|Test unit written' "$work/$name.log"
  fi
  printf '%-22s %12s %8s\n' "$name" "${runs:-?}" "$crashes"
done
exit $failed
