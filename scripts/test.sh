#!/usr/bin/env bash
# What CI runs (.ci/run): installs the dependencies, builds everything (CUDA kernels too when nvcc exists) and
# runs the tests; then scripts/sanitize.sh: every parser's fuzz target for a short time and the tests again
# under AddressSanitizer + UndefinedBehaviorSanitizer. CTXBENCH_SANITIZE=0 skips that second part (a quicker
# local run); CTXBENCH_FUZZ_SECONDS sets the fuzzing time per target. Arguments go to the release ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)
start=$SECONDS
cmake --preset release
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs" "$@"
echo "== release build and tests: $((SECONDS - start)) s"
if [ "${CTXBENCH_SANITIZE:-1}" != 0 ]; then
  bash scripts/sanitize.sh
fi
