#!/usr/bin/python3
"""An independent reference forward pass for Llama-family checkpoints (llama, mistral, qwen2, phi3).

Written from the equations of Hugging Face transformers' modeling_llama.py, modeling_mistral.py,
modeling_qwen2.py, modeling_phi3.py and modeling_rope_utils.py, in float64 with PyTorch, so that the C++
runtime (model/llama_model.cpp) is checked against something it did not derive from. It reads config.json and
model.safetensors of a model directory and writes golden logits for fixed token ids:

    reference_forward.py MODEL_DIR OUT.json [--lengths 24 48] [--seed 7]

Each length is one case: token ids drawn with numpy's seeded generator from [0, vocab_size), the whole
sequence run at once (RoPE frequencies chosen for that length, as transformers' dynamic update does), and the
logits of a few positions kept (first, second, middle, last).
"""

import argparse
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import torch

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    """name -> float64 tensor. BF16 is widened by placing its 16 bits on top of a float32."""
    raw = Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    body = raw[8 + header_len :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        chunk = body[begin:end]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(chunk, dtype="<u2").astype(np.uint32) << 16
            values = bits.view(np.float32)
        else:
            values = np.frombuffer(chunk, dtype=np.dtype(DTYPES[info["dtype"]]).newbyteorder("<"))
        tensors[name] = torch.from_numpy(values.astype(np.float64).reshape(info["shape"]))
    return tensors


# ---- RoPE (modeling_rope_utils.py) ---------------------------------------------------------------


def rope_parameters(config):
    """The scaling object with rope_theta folded in: transformers 5's rope_parameters or the older pair."""
    scaling = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    scaling.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    scaling["rope_type"] = scaling.get("rope_type", scaling.get("type", "default"))
    return scaling


def rotary_dim(config):
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    return int(head_dim * config.get("partial_rotary_factor", 1.0))


def default_inv_freq(base, dim):
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))


def llama3_inv_freq(s, dim):
    inv = default_inv_freq(s["rope_theta"], dim)
    factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
    old_len = s["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv
    scaled = torch.where(wavelen > old_len / low, inv / factor, inv)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < old_len / high) & ~(wavelen > old_len / low)
    return torch.where(medium, smoothed, scaled), 1.0


def yarn_mscale(scale, mscale=1.0):
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def yarn_inv_freq(s, dim, config):
    base, factor = s["rope_theta"], s["factor"]
    original = s.get("original_max_position_embeddings") or config["max_position_embeddings"]
    beta_fast, beta_slow = s.get("beta_fast") or 32, s.get("beta_slow") or 1
    attention = s.get("attention_factor")
    if attention is None:
        if s.get("mscale") and s.get("mscale_all_dim"):
            attention = yarn_mscale(factor, s["mscale"]) / yarn_mscale(factor, s["mscale_all_dim"])
        else:
            attention = yarn_mscale(factor)

    def correction_dim(rotations):
        return dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if s.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    powers = base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    extrapolation_weight = 1 - ramp
    inv = (1 / (factor * powers)) * (1 - extrapolation_weight) + (1 / powers) * extrapolation_weight
    return inv, attention


def longrope_inv_freq(s, dim, config, seq_len):
    # Phi-3 keeps original_max_position_embeddings at the top level; the factor is then the context ratio.
    original = config.get("original_max_position_embeddings") or s.get("original_max_position_embeddings")
    if original is not None:
        factor = config["max_position_embeddings"] / original
    else:
        original = config["max_position_embeddings"]
        factor = s["factor"]
    attention = s.get("attention_factor")
    if attention is None:
        attention = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
    # The dynamic update: long factors once the sequence is longer than the pretraining context.
    ext = torch.tensor(s["long_factor"] if seq_len > original else s["short_factor"], dtype=torch.float64)
    shape = torch.arange(0, dim, 2, dtype=torch.float64) / dim
    return 1.0 / (ext * s["rope_theta"] ** shape), attention


def inv_freq_and_attention(config, seq_len):
    s, dim = rope_parameters(config), rotary_dim(config)
    kind = s["rope_type"]
    if kind == "default":
        return default_inv_freq(s["rope_theta"], dim), 1.0
    if kind == "llama3":
        return llama3_inv_freq(s, dim)
    if kind == "yarn":
        return yarn_inv_freq(s, dim, config)
    if kind in ("longrope", "su"):
        return longrope_inv_freq(s, dim, config, seq_len)
    sys.exit(f"reference_forward.py: rope type {kind!r} is not in the reference")


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x, cos, sin):
    """x [heads, tokens, head_dim]; only the leading rotary part rotates (Phi-3's partial rotary factor)."""
    dim = cos.shape[-1]
    rotated, passed = x[..., :dim], x[..., dim:]
    return torch.cat((rotated * cos + rotate_half(rotated) * sin, passed), dim=-1)


# ---- the decoder (modeling_llama.py and its relatives) -----------------------------------------


def rms_norm(x, weight, eps):
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def linear(w, name, x):
    out = x @ w[name + ".weight"].T
    bias = w.get(name + ".bias")
    return out if bias is None else out + bias


def sliding_window(config, layer):
    """Keys a query may see, counting itself; None means every earlier key."""
    kind = config["model_type"]
    if kind in ("mistral", "phi3"):
        return config.get("sliding_window")
    if kind == "qwen2" and config.get("use_sliding_window"):
        layer_types = config.get("layer_types")
        if layer_types:
            return config["sliding_window"] if layer_types[layer] == "sliding_attention" else None
        return config["sliding_window"] if layer >= config.get("max_window_layers", 0) else None
    return None


def attention_mask(n, window):
    query = torch.arange(n).unsqueeze(1)
    key = torch.arange(n).unsqueeze(0)
    allowed = key <= query
    if window is not None:
        allowed &= key > query - window
    return torch.where(allowed, 0.0, -math.inf).to(torch.float64)


def projections(config, w, prefix, h):
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    if config["model_type"] == "phi3":
        qkv = linear(w, prefix + "self_attn.qkv_proj", h)
        q_end, k_end = heads * head_dim, (heads + kv_heads) * head_dim
        q, k, v = qkv[:, :q_end], qkv[:, q_end:k_end], qkv[:, k_end:]
    else:
        q = linear(w, prefix + "self_attn.q_proj", h)
        k = linear(w, prefix + "self_attn.k_proj", h)
        v = linear(w, prefix + "self_attn.v_proj", h)
    n = h.shape[0]
    return (
        q.view(n, heads, head_dim).transpose(0, 1),
        k.view(n, kv_heads, head_dim).transpose(0, 1),
        v.view(n, kv_heads, head_dim).transpose(0, 1),
    )


def self_attention(config, w, layer, h, cos, sin):
    prefix = f"model.layers.{layer}."
    q, k, v = projections(config, w, prefix, h)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    groups = q.shape[0] // k.shape[0]
    k, v = k.repeat_interleave(groups, dim=0), v.repeat_interleave(groups, dim=0)
    scores = q @ k.transpose(1, 2) * q.shape[-1] ** -0.5 + attention_mask(h.shape[0], sliding_window(config, layer))
    attended = torch.softmax(scores, dim=-1) @ v
    return linear(w, prefix + "self_attn.o_proj", attended.transpose(0, 1).reshape(h.shape[0], -1))


def mlp(config, w, layer, h):
    prefix = f"model.layers.{layer}.mlp."
    if config["model_type"] == "phi3":
        gate, up = linear(w, prefix + "gate_up_proj", h).chunk(2, dim=-1)
    else:
        gate, up = linear(w, prefix + "gate_proj", h), linear(w, prefix + "up_proj", h)
    return linear(w, prefix + "down_proj", torch.nn.functional.silu(gate) * up)


def forward(config, w, tokens):
    eps = config.get("rms_norm_eps", 1e-6)
    x = w["model.embed_tokens.weight"][torch.tensor(tokens)]
    inv_freq, attention_factor = inv_freq_and_attention(config, len(tokens))
    angles = torch.arange(len(tokens), dtype=torch.float64).unsqueeze(1) * inv_freq.unsqueeze(0)
    angles = torch.cat((angles, angles), dim=-1)
    cos, sin = angles.cos() * attention_factor, angles.sin() * attention_factor
    for layer in range(config["num_hidden_layers"]):
        prefix = f"model.layers.{layer}."
        x = x + self_attention(config, w, layer, rms_norm(x, w[prefix + "input_layernorm.weight"], eps), cos, sin)
        x = x + mlp(config, w, layer, rms_norm(x, w[prefix + "post_attention_layernorm.weight"], eps))
    head = w["model.embed_tokens.weight"] if config.get("tie_word_embeddings") else w["lm_head.weight"]
    return rms_norm(x, w["model.norm.weight"], eps) @ head.T


def golden_case(config, weights, length, seed):
    tokens = np.random.default_rng(seed + length).integers(0, config["vocab_size"], length).tolist()
    logits = forward(config, weights, tokens)
    positions = sorted({0, 1, length // 2, length - 1})
    return {
        "token_ids": tokens,
        "positions": positions,
        "logits": {str(p): [float(f"{v:.9g}") for v in logits[p].tolist()] for p in positions},
        "argmax": {str(p): int(logits[p].argmax()) for p in positions},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("out")
    parser.add_argument("--lengths", type=int, nargs="+", default=[24, 48])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    model_dir = Path(args.model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    weights = read_safetensors(model_dir / "model.safetensors")
    golden = {
        "description": "float64 logits of scripts/reference_forward.py (HF equations, PyTorch); "
        "compare with relative error 1e-4",
        "cases": [golden_case(config, weights, length, args.seed) for length in args.lengths],
    }
    Path(args.out).write_text(json.dumps(golden) + "\n")


if __name__ == "__main__":
    main()
