#!/usr/bin/python3
"""Random Llama-family checkpoints of real shapes, for testing loading, memory and speed without downloads.

    make_checkpoint.py --arch llama|qwen2|mistral|phi3 --shape tiny|1b|3b OUT [--rope ...] [--tied|--untied]
                       [--kv-heads N] [--window N] [--original N] [--seed N]

Writes OUT/config.json, OUT/model.safetensors (bf16, seeded normal weights, written tensor by tensor so a
3B checkpoint never sits in memory) and OUT/tokenizer.json: a small byte-level BPE tokenizer (the 256 byte
symbols, merges learned from a fixed paragraph, and <|begin_of_text|>/<|end_of_text|>), which the runtime
loads for every shape (the bigger shapes keep their real vocab_size; ids past the tokenizer are never
produced). numpy only. The tiny checkpoints of tests/fixtures/checkpoints/ are written by this script; their
golden logits come from scripts/reference_forward.py.
"""

import argparse
import json
import math
import re
import struct
from collections import Counter
from pathlib import Path

import numpy as np

# Shapes: tiny for tests; 1b and 3b follow the public configs of Llama 3.2 1B/3B, Qwen2.5 1.5B/3B,
# Mistral at Llama's sizes, and Phi-3-mini (3b) or Phi-3 proportions at 1B.
SHAPES = {
    "tiny": dict(hidden=32, inner=64, layers=2, heads=4, kv_heads=1, window=16, max_positions=1024, original=32),
    "1b": dict(hidden=2048, inner=8192, layers=16, heads=32, kv_heads=8, window=4096, max_positions=131072,
               original=8192, vocab=128256),
    "3b": dict(hidden=3072, inner=8192, layers=28, heads=24, kv_heads=8, window=4096, max_positions=131072,
               original=8192, vocab=128256),
}
ARCH_SHAPES = {
    ("qwen2", "1b"): dict(hidden=1536, inner=8960, layers=28, heads=12, kv_heads=2, vocab=151936, original=32768),
    ("qwen2", "3b"): dict(hidden=2048, inner=11008, layers=36, heads=16, kv_heads=2, vocab=151936, original=32768),
    ("phi3", "1b"): dict(hidden=2048, inner=5632, layers=16, heads=16, kv_heads=16, vocab=32064, original=4096,
                         window=262144),
    ("phi3", "3b"): dict(hidden=3072, inner=8192, layers=32, heads=32, kv_heads=32, vocab=32064, original=4096,
                         window=262144),
    ("phi3", "tiny"): dict(kv_heads=2),
    ("mistral", "tiny"): dict(kv_heads=2),
}
DEFAULT_ROPE = {"llama": "llama3", "qwen2": "default", "mistral": "default", "phi3": "longrope"}
DEFAULT_TIED = {"llama": True, "qwen2": True, "mistral": False, "phi3": False}
ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM",
                 "phi3": "Phi3ForCausalLM"}

TRAINING_TEXT = (
    "The pass key is hidden in a long text. Remember the pass key, and when asked what the pass key is, "
    "answer with the number. The grass is green, the sky is blue, the sun is yellow. Here we go, there and "
    "back again. 0123456789 12345 31415 27182. What is the pass key? The pass key is "
)
MERGES = 42  # 256 bytes + 42 merges + 2 special tokens = 300 ids
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")


# ---- tokenizer -------------------------------------------------------------------------------------


def byte_symbols():
    """GPT-2's byte -> printable character map."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    symbols, extra = {}, 256
    for b in range(256):
        if b in printable:
            symbols[b] = chr(b)
        else:
            symbols[b] = chr(extra)
            extra += 1
    return symbols


def learn_merges(text, count):
    """Plain BPE training: repeatedly merge the most frequent adjacent pair inside words (ties: first seen)."""
    symbols = byte_symbols()
    words = Counter(tuple(symbols[b] for b in w.encode()) for w in re.findall(r" ?\w+| ?[^\w\s]+|\s+", text))
    merges = []
    for _ in range(count):
        pairs = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = max(pairs, key=lambda p: pairs[p])
        merges.append(best)
        merged = Counter()
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if word[i : i + 2] == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    return merges


def tokenizer_json():
    symbols = byte_symbols()
    vocab = {symbols[b]: b for b in range(256)}
    merges = learn_merges(TRAINING_TEXT, MERGES)
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    specials = ["<|begin_of_text|>", "<|end_of_text|>"]
    added = [
        {"id": len(vocab) + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, s in enumerate(specials)
    ]
    return {
        "version": "1.0",
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }


# ---- config ----------------------------------------------------------------------------------------


def rope_scaling(kind, shape, rotary_pairs, rng):
    if kind == "default":
        return None
    if kind == "llama3":
        return {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": shape["original"] * 4}
    if kind == "yarn":
        return {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": shape["original"]}
    short = 1.0 + 0.5 * rng.random(rotary_pairs)
    long = np.sort(1.0 + 7.0 * rng.random(rotary_pairs))
    return {"type": "longrope", "short_factor": [round(float(v), 4) for v in short],
            "long_factor": [round(float(v), 4) for v in long]}


def make_config(args, shape, vocab, bos, eos, rng):
    head_dim = shape["hidden"] // shape["heads"]
    partial = 0.75 if args.arch == "phi3" else 1.0
    config = {
        "architectures": [ARCHITECTURES[args.arch]],
        "model_type": args.arch,
        "hidden_size": shape["hidden"],
        "intermediate_size": shape["inner"],
        "num_hidden_layers": shape["layers"],
        "num_attention_heads": shape["heads"],
        "num_key_value_heads": args.kv_heads or shape["kv_heads"],
        "hidden_act": "silu",
        "vocab_size": vocab,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": shape["max_positions"],
        "tie_word_embeddings": args.tied,
        "torch_dtype": "bfloat16",
        "bos_token_id": bos,
        "eos_token_id": eos,
    }
    rope = args.rope or DEFAULT_ROPE[args.arch]
    config["rope_scaling"] = rope_scaling(rope, shape, int(head_dim * partial) // 2, rng)
    window = args.window or shape["window"]
    if args.arch == "phi3":
        config.update(partial_rotary_factor=partial, sliding_window=window,
                      original_max_position_embeddings=shape["original"])
    elif args.arch == "mistral":
        config.update(sliding_window=window, head_dim=head_dim)
    elif args.arch == "qwen2":
        # As shipped by Qwen2.5: a window that is switched off.
        config.update(use_sliding_window=False, sliding_window=shape["max_positions"],
                      max_window_layers=shape["layers"])
    else:
        config.update(attention_bias=False, mlp_bias=False, head_dim=head_dim)
    return config


# ---- weights ---------------------------------------------------------------------------------------


def tensor_plan(config):
    """(name, shape, std, mean) of every tensor, in file order."""
    d, inner = config["hidden_size"], config["intermediate_size"]
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = d // heads
    q, k = heads * head_dim, kv * head_dim
    plan = [("model.embed_tokens.weight", (config["vocab_size"], d), 1.0, 0.0)]
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        plan += [(p + "input_layernorm.weight", (d,), 0.1, 1.0), (p + "post_attention_layernorm.weight", (d,), 0.1, 1.0)]
        if config["model_type"] == "phi3":
            plan.append((p + "self_attn.qkv_proj.weight", (q + 2 * k, d), d**-0.5, 0.0))
            plan.append((p + "mlp.gate_up_proj.weight", (2 * inner, d), d**-0.5, 0.0))
        else:
            plan += [(p + f"self_attn.{n}_proj.weight", (rows, d), d**-0.5, 0.0) for n, rows in (("q", q), ("k", k), ("v", k))]
            plan += [(p + f"mlp.{n}_proj.weight", (inner, d), d**-0.5, 0.0) for n in ("gate", "up")]
        if config["model_type"] == "qwen2":
            plan += [(p + f"self_attn.{n}_proj.bias", (rows,), 0.5, 0.0) for n, rows in (("q", q), ("k", k), ("v", k))]
        plan.append((p + "self_attn.o_proj.weight", (d, q), q**-0.5, 0.0))
        plan.append((p + "mlp.down_proj.weight", (d, inner), inner**-0.5, 0.0))
    plan.append(("model.norm.weight", (d,), 0.1, 1.0))
    if not config["tie_word_embeddings"]:
        plan.append(("lm_head.weight", (config["vocab_size"], d), d**-0.5, 0.0))
    return plan


def to_bf16(values):
    """float32 -> bf16 bits, rounding to nearest even."""
    bits = values.astype(np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")


def write_safetensors(path, plan, rng):
    header, offset = {}, 0
    for name, shape, _, _ in plan:
        size = 2 * math.prod(shape)
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    chunk = 1 << 24
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)) + text.encode())
        for _, shape, std, mean in plan:
            remaining = math.prod(shape)
            while remaining:
                n = min(chunk, remaining)
                out.write(to_bf16(mean + std * rng.standard_normal(n, dtype=np.float32)).tobytes())
                remaining -= n


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), required=True)
    parser.add_argument("--shape", choices=sorted(SHAPES), required=True)
    parser.add_argument("--rope", choices=["default", "llama3", "yarn", "longrope"],
                        help="RoPE scaling (default per arch: " + ", ".join(f"{a} {r}" for a, r in DEFAULT_ROPE.items()) + ")")
    tied = parser.add_mutually_exclusive_group()
    tied.add_argument("--tied", dest="tied", action="store_true", default=None, help="tie the output head to the embedding")
    tied.add_argument("--untied", dest="tied", action="store_false")
    parser.add_argument("--kv-heads", type=int, help="key/value heads (default per shape)")
    parser.add_argument("--window", type=int, help="sliding window of mistral and phi3 (default per shape)")
    parser.add_argument("--original", type=int,
                        help="original_max_position_embeddings of phi3 and of yarn scaling (llama3: four times it; "
                             "default per shape)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("out")
    args = parser.parse_args()
    if args.tied is None:
        args.tied = DEFAULT_TIED[args.arch]
    shape = {**SHAPES[args.shape], **ARCH_SHAPES.get((args.arch, args.shape), {})}
    if args.original:
        shape["original"] = args.original
    rng = np.random.default_rng(args.seed)
    tokenizer = tokenizer_json()
    ids = len(tokenizer["model"]["vocab"]) + len(tokenizer["added_tokens"])
    vocab = shape.get("vocab", ids)
    bos, eos = (t["id"] for t in tokenizer["added_tokens"])
    config = make_config(args, shape, vocab, bos, eos, rng)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False) + "\n")
    write_safetensors(out / "model.safetensors", tensor_plan(config), rng)


if __name__ == "__main__":
    main()
