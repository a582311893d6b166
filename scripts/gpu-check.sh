#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and the CUDA toolkit: builds with the CUDA kernels (CTXBENCH_CUDA=ON, so a
# missing nvcc fails the configure step), runs the [cuda] tests with CTXBENCH_REQUIRE_GPU=1 (a missing device
# fails them instead of skipping), and prints one table: each CUDA kernel on each test case, its largest
# absolute error against the CPU reference (float64 attention, the CPU RoPE rotation) and its time. The
# project has no separate CUDA benchmarks; the times are one call each (the first also pays CUDA's start-up).
# Exits non-zero when anything fails. Build directory: build-gpu/.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  echo "gpu-check: no NVIDIA GPU found (nvidia-smi -L lists none); this check needs one" >&2
  exit 1
fi
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCTXBENCH_CUDA=ON -DCTXBENCH_BENCH=OFF
cmake --build build-gpu -j"$(nproc)" --target ctxbench_tests
log=$(mktemp /tmp/ctxbench-gpu-check-XXXXXX)
trap 'rm -f "$log"' EXIT
status=0
CTXBENCH_REQUIRE_GPU=1 build-gpu/ctxbench_tests "[cuda]" --rng-seed 20261206 | tee "$log" || status=$?
echo
echo "== CUDA kernels against the CPU reference"
printf '%-17s %-62s %14s %11s\n' kernel case "max abs error" "time (ms)"
awk -F'\t' '$1 == "gpu-check" { printf "%-17s %-62s %14.3g %11.3f\n", $2, $3, $4, $5 }' "$log"
if ! grep -q '^gpu-check' "$log"; then
  echo "gpu-check: the [cuda] tests printed no kernel rows" >&2
  status=1
fi
exit "$status"
