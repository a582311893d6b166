#!/usr/bin/env bash
# Installs every build, test and tooling dependency of ctxbench from Debian's packages.
# Idempotent: packages already present are skipped; safe to run on every CI start.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git clang-format
  libsqlite3-dev sqlite3 nlohmann-json3-dev libfmt-dev catch2 libbenchmark-dev libboost-dev
  python3 python3-numpy
  nodejs                               # the tokenizer peer test (tests/peers: Hugging Face tokenizers' JS port)
  slurmctld slurmd slurm-client munge  # the sharded-run integration test starts a one-node cluster
  clang libclang-rt-14-dev             # sanitizer build and libFuzzer targets
  chromium                             # the HTML report is checked in headless Chromium
)
# Optional group: CTXBENCH_SETUP_EXTRAS="train" (python3-torch, to retrain the bundled model; with OpenBLAS, since
# Debian's torch otherwise links the reference BLAS, which made a training step 3x slower).
for extra in ${CTXBENCH_SETUP_EXTRAS:-}; do
  case "$extra" in
    train) packages+=(python3-torch libopenblas0-pthread) ;;
    *) echo "setup.sh: unknown extra '$extra' (expected train)" >&2; exit 2 ;;
  esac
done

# Debian's nodejs comes without npm, which is its own package; NodeSource's nodejs ships npm and conflicts with
# Debian's, so npm is asked for only when no npm command is there.
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup.sh: all packages present"
fi

# Peers that tests compare against, each pinned by its package-lock.json: the tokenizers (tests/peers) and
# llama.cpp's prebuilt CPU build through node-llama-cpp (tests/peers-llamacpp: about 85 MB installed; its CUDA
# and Vulkan builds are optional dependencies, left out).
for folder in peers peers-llamacpp; do
  peers="$(cd "$(dirname "$0")/../tests/$folder" && pwd)"
  if [ ! -d "$peers/node_modules" ] || [ "$peers/package-lock.json" -nt "$peers/node_modules" ]; then
    echo "setup.sh: installing the npm peers of tests/$folder"
    (cd "$peers" && npm ci --omit=optional --no-audit --no-fund --silent)
  fi
done

# The CUDA toolkit is used where present (it is not in Debian's main archive); CI compiles the CUDA
# targets when nvcc is found on PATH or in /usr/local/cuda/bin.
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  echo "setup.sh: CUDA toolkit found; CUDA targets will be compiled"
else
  echo "setup.sh: no CUDA toolkit; CUDA targets are skipped"
fi
