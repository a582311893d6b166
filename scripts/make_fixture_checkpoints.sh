#!/bin/sh
# Rewrites the tiny checkpoints of tests/fixtures/checkpoints/ and their golden logits (the configurations
# the model tests cover: every architecture, llama3/YaRN/LongRoPE scaling, bf16 weights, Qwen2 biases, tied
# embeddings, GQA 4:1, sliding windows, Phi-3's fused projections and partial rotary factor).
set -eu
cd "$(dirname "$0")/.."
out=tests/fixtures/checkpoints
make() {
  name=$1
  shift
  /usr/bin/python3 scripts/make_checkpoint.py --shape tiny "$@" "$out/$name"
  /usr/bin/python3 scripts/reference_forward.py "$out/$name" "$out/$name/golden.json"
}
make llama3-tied-gqa4 --arch llama
make llama-yarn --arch llama --rope yarn --untied --kv-heads 2 --seed 2
make qwen2-biases-tied --arch qwen2 --seed 3
make mistral-window --arch mistral --seed 4
make phi3-longrope-window --arch phi3 --seed 5
