#!/usr/bin/env bash
# Every libFuzzer target for CTXBENCH_FUZZ_SECONDS (default 20) from its seed corpus, then the tests under
# AddressSanitizer + UndefinedBehaviorSanitizer (clang, the "sanitize" preset, build-sanitize/). Part of CI:
# scripts/test.sh runs it after the release tests. Arguments go to ctest (e.g. -R fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)
start=$SECONDS
cmake --preset sanitize
cmake --build build-sanitize -j"$jobs"
echo "== sanitize build: $((SECONDS - start)) s"
seconds=${CTXBENCH_FUZZ_SECONDS:-20}
echo "== fuzz targets, $seconds s each"
start=$SECONDS
bash scripts/fuzz.sh "$seconds" build-sanitize
echo "== fuzzing: $((SECONDS - start)) s"
# Tests not run under the sanitizers, each with the reason (ctest -E regular expressions on test names):
skipped=(
  # Starts slurmctld/slurmd and runs the release binary (build/ctxbench) on them: nothing instrumented runs.
  'slurm_cluster_sharded_run'
  # The memory-budget tests: ASan reserves terabytes of address space at start, so the RLIMIT_AS budget of a
  # cell cannot be set below what the process already has (the release run covers them).
  '^memory budget: '
)
echo "== tests under AddressSanitizer + UndefinedBehaviorSanitizer (skipped: ${skipped[*]})"
start=$SECONDS
ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-sanitize --output-on-failure -j"$jobs" -E "$(IFS='|'; echo "${skipped[*]}")" "$@"
echo "== sanitizer tests: $((SECONDS - start)) s"
