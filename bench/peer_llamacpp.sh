#!/usr/bin/env bash
# llama.cpp (node-llama-cpp's prebuilt CPU build, tests/peers-llamacpp) beside ctxbench's runtime on the same
# weights and the same random token ids, in alternating rounds, as a side-by-side table:
#
#   bench/peer_llamacpp.sh CHECKPOINT_DIR [TOKENS] [GENERATED] [THREADS] [ROUNDS] [KV]
#
# defaults: 2048 prompt ids, 32 greedy tokens, 2 threads, 2 rounds, K/V in f16 (llama.cpp's default; KV f32
# for both otherwise). The checkpoint is exported by scripts/export_gguf.py (its matrices in their own dtype)
# into a temporary folder. Prefill tokens/s is the prompt over the time to the first token; decode ms/token the
# time per later token; peak memory the process's peak resident set (llama.cpp's includes node, about 50 MB);
# "agree" counts the leading greedy tokens that are identical. Needs build/ctxbench (the release preset) and
# `npm ci` in tests/peers-llamacpp (scripts/setup.sh). Timings are only meaningful on a quiet machine: the
# table prints the load average beside them.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
checkpoint="${1:?usage: bench/peer_llamacpp.sh CHECKPOINT_DIR [TOKENS] [GENERATED] [THREADS] [ROUNDS] [f16|f32]}"
tokens="${2:-2048}" generated="${3:-32}" threads="${4:-2}" rounds="${5:-2}" kv="${6:-f16}"
ctxbench="$root/build/ctxbench"
[ -x "$ctxbench" ] || { echo "peer_llamacpp.sh: $ctxbench is missing: cmake --preset release && cmake --build build" >&2; exit 2; }
[ -d "$root/tests/peers-llamacpp/node_modules/node-llama-cpp" ] ||
  { echo "peer_llamacpp.sh: node-llama-cpp is missing: scripts/setup.sh installs it" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 "$root/scripts/export_gguf.py" "$checkpoint" "$work/model.gguf" >&2
# Seeded random ids below the tokenizer's size (the vocabulary may be padded past it), after BOS when there is one.
/usr/bin/python3 - "$checkpoint" "$tokens" > "$work/ids.json" <<'EOF'
import json, random, sys
from pathlib import Path
directory, count = Path(sys.argv[1]), int(sys.argv[2])
config = json.loads((directory / "config.json").read_text())
tokenizer = directory / "tokenizer.json"
size = len(json.loads(tokenizer.read_text())["model"]["vocab"]) if tokenizer.exists() else 256
rng = random.Random(2048)
bos = config.get("bos_token_id")
ids = ([bos] if bos is not None else []) + [rng.randrange(size) for _ in range(count)]
print(json.dumps([ids[:count]]))
EOF

for round in $(seq "$rounds"); do
  (cd "$root/tests/peers-llamacpp" && node greedy.mjs "$work/model.gguf" "$work/ids.json" "$generated" "$threads" \
    "${kv^^}") | sed "s/^/llama.cpp $round /" >> "$work/runs.txt"
  "$ctxbench" greedy "$checkpoint" --ids "$work/ids.json" --tokens "$generated" --threads "$threads" \
    --kv-dtype "$kv" | sed "s/^/ctxbench $round /" >> "$work/runs.txt"
done

/usr/bin/python3 - "$work/runs.txt" "$tokens" "$threads" "$kv" <<'EOF'
import json, os, statistics, sys
runs, tokens, threads, kv = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
by_engine = {}
for line in open(runs):
    engine, _, record = line.split(" ", 2)
    by_engine.setdefault(engine, []).append(json.loads(record))
# ctxbench lists the EOS that ended its tokens; llama.cpp stops before it.
reference = by_engine["llama.cpp"][0]["tokens"]
print(f"{tokens} prompt tokens, {threads} threads, K/V {kv}, {len(by_engine['ctxbench'])} rounds each, "
      f"load average {os.getloadavg()[0]:.2f}")
print(f"| engine | prefill tokens/s | decode ms/token | peak memory MiB | greedy tokens agreeing with llama.cpp |")
print(f"| --- | ---: | ---: | ---: | ---: |")
for engine, records in by_engine.items():
    prefill = statistics.median(tokens / r["prefill_seconds"] for r in records)
    decode = statistics.median(1000 * r["decode_seconds_per_token"] for r in records)
    peak = max(r["peak_rss_bytes"] for r in records) / 2**20
    ours = records[0]["tokens"]
    agree = next((i for i, (a, b) in enumerate(zip(ours, reference)) if a != b), min(len(ours), len(reference)))
    print(f"| {engine} | {prefill:.1f} | {decode:.1f} | {peak:.0f} | {agree} of {len(reference)} |")
EOF
