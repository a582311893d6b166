#!/usr/bin/env bash
# What CI runs (.ci/run): installs the dependencies, builds everything (CUDA kernels too when nvcc exists) and
# runs the tests; the [kernels] and [engines] tests again in the portable build (-march=x86-64-v3, no AVX-512);
# then scripts/sanitize.sh: every parser's fuzz target for a short time and the tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer. CTXBENCH_SANITIZE=0 skips the portable and sanitizer parts (a
# quicker local run); CTXBENCH_FUZZ_SECONDS sets the fuzzing time per target. Arguments go to the release ctest.
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

# The tests of the code that has SIMD paths (tests/kernels, tests/engines), by their Catch tags.
portable_tests='[kernels],[rope],[engines],[engine],[baselines],[hip]'

status=0
start=$SECONDS
cmake --preset release
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs" "$@" 2>&1 | tee "$logs/release" || status=1
echo "== release build and tests: $((SECONDS - start)) s"
if [ "${CTXBENCH_SANITIZE:-1}" != 0 ]; then
  start=$SECONDS
  cmake --preset portable
  cmake --build build-portable -j"$jobs" --target ctxbench_simd_tests
  build-portable/ctxbench_simd_tests --rng-seed 20261206 "$portable_tests" 2>&1 | tee "$logs/portable" || status=1
  echo "== portable build (x86-64-v3) and its kernel and engine tests: $((SECONDS - start)) s"
  bash scripts/sanitize.sh 2>&1 | tee "$logs/sanitize" || status=1
fi
echo "== release tests: $(ctest_counts "$logs/release")"
if [ -f "$logs/portable" ]; then
  echo "== portable tests (Catch): $(grep -E '^(All tests passed|test cases:)' "$logs/portable" | tail -1)"
  echo "== sanitize tests: $(ctest_counts "$logs/sanitize")"
fi
exit "$status"
