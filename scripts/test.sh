#!/usr/bin/env bash
# What CI runs (.ci/run): installs the dependencies, builds everything (CUDA kernels too when nvcc exists) and
# runs the tests; then scripts/sanitize.sh: every parser's fuzz target for a short time and the tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer. The release build is -march=native, so it tests the kernels' native
# SIMD path (AVX-512 or AVX2); the sanitizer build forces the portable fallback (CTXBENCH_SIMD_PORTABLE).
# CTXBENCH_SANITIZE=0 skips the sanitizer part (a quicker local run); CTXBENCH_FUZZ_SECONDS sets the fuzzing time
# per target. Arguments go to the release ctest.
# Ends with one line per ctest run: passed, failed and skipped tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)
logs=$(mktemp -d /tmp/ctxbench-test-logs-XXXXXX)
trap 'rm -rf "$logs"' EXIT

# "passed P, failed F, skipped S" from a ctest log (ctest counts a skipped test among the passed ones).
ctest_counts() {
  local total failed skipped
  total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$1" | tail -1)
  failed=$(sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' "$1" | tail -1)
  skipped=$(grep -c '(Skipped)$' "$1" || true)
  echo "passed $((${total:-0} - ${failed:-0} - skipped)), failed ${failed:-0}, skipped $skipped"
}

status=0
start=$SECONDS
cmake --preset release
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs" "$@" 2>&1 | tee "$logs/release" || status=1
echo "== release build and tests: $((SECONDS - start)) s"
if [ "${CTXBENCH_SANITIZE:-1}" != 0 ]; then
  bash scripts/sanitize.sh 2>&1 | tee "$logs/sanitize" || status=1
fi
echo "== release tests: $(ctest_counts "$logs/release")"
if [ -f "$logs/sanitize" ]; then
  echo "== sanitize tests: $(ctest_counts "$logs/sanitize")"
fi
exit "$status"
