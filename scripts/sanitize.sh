#!/usr/bin/env bash
# Every libFuzzer target for CTXBENCH_FUZZ_SECONDS (default 20) from its seed corpus, and the tests under
# AddressSanitizer + UndefinedBehaviorSanitizer (clang, the "sanitize" preset, build-sanitize/). Part of CI:
# scripts/test.sh runs it after the release tests. Arguments go to ctest (e.g. -R fuzz). The preset keeps only line
# tables as debug information (-gline-tables-only): enough for the sanitizers' stack traces, and a quicker build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)
start=$SECONDS
cmake --preset sanitize
cmake --build build-sanitize -j"$jobs"
echo "== sanitize build: $((SECONDS - start)) s"

# Tests not run under the sanitizers, each with the reason (ctest -E regular expressions on test names):
skipped=(
  # Starts slurmctld/slurmd and runs the release binary (build/ctxbench) on them: nothing instrumented runs.
  'slurm_cluster_sharded_run'
  # The memory-budget tests: ASan reserves terabytes of address space at start, so under an RLIMIT_AS
  # budget every cell's process fails at its first allocation, within budget or not (the release run has them).
  '^memory budget: '
  # The memory plan's cell over its limit: the same RLIMIT_AS budget, with the same effect under ASan.
  '^memory plan: a model-level cell over its memory limit'
  # The bundled model on 15 prompts of 2,048 tokens: 15 s in the release run, 18 minutes under the sanitizers
  # (2026-12-07, a loaded AVX2 machine). The runtime's code runs under them in the smaller model tests.
  '^the bundled model answers held-out prompts'
  # Runs of the real binary with cells sized to take tenths of a second, so that a signal lands in one: under
  # the sanitizers the three took 19 minutes (same day and machine). What they check, the signal handling and the
  # run's status, is the release run's; "kill -9 at several moments, then --resume" stays here.
  '^SIGINT and SIGTERM store the cell in flight'
  '^a second signal abandons the cell in flight'
  '^a run killed with SIGKILL reads as interrupted'
)
# The fuzzers run beside the tests: one core fuzzes while the other works through the short tests, and the
# longest test (the engine conformance sweep, minutes under ASan) sets the time of both.
seconds=${CTXBENCH_FUZZ_SECONDS:-20}
fuzz_log=$(mktemp /tmp/ctxbench-fuzz-log-XXXXXX)
trap 'rm -f "$fuzz_log"' EXIT
start=$SECONDS
bash scripts/fuzz.sh "$seconds" build-sanitize > "$fuzz_log" 2>&1 &
fuzz_pid=$!
echo "== tests under AddressSanitizer + UndefinedBehaviorSanitizer (skipped: ${skipped[*]}), fuzzing beside them"
tests_status=0
ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-sanitize --output-on-failure -j"$jobs" -E "$(IFS='|'; echo "${skipped[*]}")" "$@" ||
  tests_status=$?
fuzz_status=0
wait "$fuzz_pid" || fuzz_status=$?
echo "== fuzz targets, $seconds s each"
cat "$fuzz_log"
echo "== sanitizer tests and fuzzing: $((SECONDS - start)) s"
[ "$tests_status" -eq 0 ] && [ "$fuzz_status" -eq 0 ]
