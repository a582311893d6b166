#!/usr/bin/python3
"""A Hugging Face Llama-family checkpoint as a GGUF file that llama.cpp runs (the llama.cpp peer, bench/peer_llamacpp.sh).

    export_gguf.py CHECKPOINT_DIR OUT.gguf [--dtype keep|f32|f16|bf16]

Reads CHECKPOINT_DIR/config.json, model.safetensors (or its index and shards) and tokenizer.json (without
one: the bundled model's byte-level vocabulary, ids 0-255 the bytes, then BOS and EOS). Writes GGUF version 3
with llama.cpp's llama, qwen2 or phi3 architecture metadata. numpy only.

What llama.cpp needs besides the tensors:
- q_proj and k_proj rows in llama.cpp's rotary order: Hugging Face rotates the two halves of each head
  (x[i], x[i + d/2]); llama.cpp's llama architecture rotates neighbours (x[2i], x[2i + 1]). Row i of the first
  half of a head moves to row 2i, row i of the second half to row 2i + 1 (biases alike).
  llama.cpp's qwen2 and phi3 architectures rotate halves (NeoX order) as Hugging Face does: their rows keep
  their order.
- Llama 3.1 RoPE scaling as the rope_freqs tensor: per frequency pair, the factor llama.cpp divides the
  frequency by, from the Hugging Face llama3 equations. Linear and YaRN scaling as rope.scaling metadata (YaRN
  with HF's defaults only: llama.cpp computes the same ramp and attention factor from them).
- Phi-3: qkv_proj as attn_qkv and gate_up_proj as ffn_up, both unchanged (llama.cpp splits attn_qkv into q, k, v
  rows in that order, and its SwiGLU takes the SiLU of ffn_up's first half, the gate). rope.dimension_count is
  the rotary part, int(head_dim * partial_rotary_factor). LongRoPE as the rope_factors_short and
  rope_factors_long tensors, the attention factor as rope.scaling.attn_factor (HF's: the config's
  attention_factor, else sqrt(1 + ln(factor) / ln(original))), original_max_position_embeddings as
  rope.scaling.original_context_length. llama.cpp picks the factors by the context it is given (long when the
  context, padded to a multiple of 256, exceeds the original length; llama_model::get_rope_factors), Hugging
  Face by the length at each step: given the context the sequence needs, they agree when the whole sequence
  fits in the original length or the prompt alone exceeds it, and the original length is a multiple of 256
  (Phi-3's 4096 is).
- A byte-level BPE vocabulary (tokenizer.ggml.model "gpt2"): tokens in GPT-2's byte alphabet, merges, token
  types, BOS and EOS. Ids past the tokenizer up to vocab_size are padding tokens. The peer is handed token ids,
  so llama.cpp's own text tokenization (its pre-tokenizer) is never used; "default" is written.
Matrices keep their dtype (--dtype keep) or are converted; 1-D tensors (norms, biases, rope_freqs, LongRoPE
factors) are f32, as llama.cpp's converter writes them. Refused by name: model types other than llama, qwen2,
mistral and phi3; RoPE scaling other than none, linear, llama3 and yarn (llama, mistral, qwen2) or none and
longrope (phi3); SentencePiece tokenizers; and active sliding windows (shorter than max_position_embeddings),
which llama.cpp does not apply: its llama and qwen2 architectures have none, and its phi3 architecture reads
phi3.attention.sliding_window but switches the window off (llama_model_phi3::load_arch_hparams).
"""

import argparse
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np

from make_checkpoint import byte_symbols  # the sibling script: GPT-2's byte alphabet

ALIGNMENT = 32
# GGUF metadata value types and GGML tensor types (gguf.md of the GGML project).
UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9
GGML_TYPES = {"f32": 0, "f16": 1, "bf16": 30}
TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_UNUSED = 1, 3, 5


def fail(message):
    sys.exit(f"export_gguf.py: {message}")


# ---- reading the checkpoint ------------------------------------------------------------------------


def read_safetensors(path):
    """name -> (dtype name, shape, raw bytes as a numpy array of the stored element type)"""
    data = path.read_bytes()
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_size])
    base = 8 + header_size
    stored = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in stored:
            fail(f"{path}: {name}: dtype {info['dtype']} (expected F32, F16 or BF16)")
        begin, end = info["data_offsets"]
        array = np.frombuffer(data, dtype=stored[info["dtype"]], count=(end - begin) // np.dtype(stored[info["dtype"]]).itemsize,
                              offset=base + begin)
        out[name] = (info["dtype"].lower(), tuple(info["shape"]), array.reshape(info["shape"]))
    return out


def read_weights(directory):
    index = directory / "model.safetensors.index.json"
    if not index.exists():
        return read_safetensors(directory / "model.safetensors")
    weights = {}
    for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
        weights.update(read_safetensors(directory / shard))
    return weights


def as_f32(dtype, array):
    if dtype == "bf16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(np.float32)


def convert(dtype, array, target):
    """The array in `target` (f32, f16, bf16: bf16 by rounding to nearest even), or as it is for keep."""
    if target == "keep" or target == dtype:
        return dtype, array
    values = as_f32(dtype, array)
    if target == "f32":
        return "f32", values
    if target == "f16":
        return "f16", values.astype(np.float16)
    bits = values.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return "bf16", rounded


# ---- the model -------------------------------------------------------------------------------------


# llama.cpp's architecture per model type, and the RoPE scalings exported for it.
ARCHITECTURES = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "phi3": "phi3"}
LLAMA_SCALINGS = ("default", "linear", "llama3", "yarn")
SCALINGS = {"llama": LLAMA_SCALINGS, "qwen2": LLAMA_SCALINGS, "phi3": ("default", "longrope")}


def rope_scaling(config):
    """The RoPE scaling object: transformers 5 writes rope_parameters, older configs rope_scaling."""
    return config.get("rope_parameters") or config.get("rope_scaling") or {}


def rope_field(config, key, default=None):
    """A RoPE field from the scaling object or, as older configs keep it, the top level."""
    return rope_scaling(config).get(key, config.get(key, default))


def scaling_kind(config):
    scaling = rope_scaling(config)
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    return "longrope" if kind == "su" else kind


def check_config(config, where):
    """The llama.cpp architecture and the RoPE scaling kind; refuses what llama.cpp would run differently."""
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        fail(f"{where}: model_type: {model_type!r} is not exported (llama, mistral, qwen2 and phi3 are)")
    arch = ARCHITECTURES[model_type]
    window = config.get("sliding_window")
    if model_type in ("mistral", "phi3") and window and window < config.get("max_position_embeddings", 0):
        what = {"llama": "has no window", "phi3": "switches its window off"}[arch]
        fail(f"{where}: sliding_window: {window} is active, and llama.cpp's {arch} architecture {what}")
    if model_type == "qwen2" and config.get("use_sliding_window"):
        fail(f"{where}: use_sliding_window: true, and llama.cpp's qwen2 architecture has no window")
    scaling, kind = rope_scaling(config), scaling_kind(config)
    if kind not in SCALINGS[arch]:
        fail(f"{where}: rope_scaling: type {kind!r} is not exported for {model_type} "
             f"({', '.join(SCALINGS[arch]).replace('default', 'none')} are)")
    # llama.cpp's YaRN takes HF's defaults (beta_fast 32, beta_slow 1, attention factor 0.1 ln(factor) + 1).
    changed = [k for k in ("attention_factor", "mscale", "mscale_all_dim", "beta_fast", "beta_slow", "truncate")
               if kind == "yarn" and k in scaling]
    if changed:
        fail(f"{where}: rope_scaling: yarn with {', '.join(changed)} is not exported (only HF's defaults are)")
    if kind == "longrope" and scaling.get("start_token", 0):
        fail(f"{where}: rope_scaling: longrope with start_token is not exported (llama.cpp scales every position)")
    if config.get("mlp_bias"):
        fail(f"{where}: mlp_bias: true is not exported")
    return arch, kind


def rotary_order(rows, heads):
    """Rows [heads * d][...] from the rotate-half order to the neighbour order, head by head."""
    head_dim = rows.shape[0] // heads
    shaped = rows.reshape(heads, 2, head_dim // 2, *rows.shape[1:])
    return shaped.swapaxes(1, 2).reshape(rows.shape)


def llama3_factors(config, head_dim):
    """Per frequency pair: what llama.cpp divides the frequency by (HF's _compute_llama3_parameters)."""
    s = rope_scaling(config)
    factor, low, high = s["factor"], s.get("low_freq_factor", 1.0), s.get("high_freq_factor", 4.0)
    old = s["original_max_position_embeddings"]
    out = []
    for i in range(0, head_dim, 2):
        freq = 1.0 / (rope_field(config, "rope_theta", 10000.0) ** (i / head_dim))
        wavelen = 2 * math.pi / freq
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def head_dim_of(config):
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def rotary_dim_of(config):
    """How many of a head's dimensions rotate: HF's int(head_dim * partial_rotary_factor)."""
    return int(head_dim_of(config) * rope_field(config, "partial_rotary_factor", 1.0))


def original_context(config):
    """original_max_position_embeddings from the scaling object (Phi-3 keeps it at the top level), else
    max_position_embeddings, as the runtime reads it."""
    top = config.get("original_max_position_embeddings") if config.get("model_type") == "phi3" else None
    return rope_scaling(config).get("original_max_position_embeddings", top or config.get("max_position_embeddings"))


def longrope_attention_factor(config):
    """HF's LongRoPE attention factor: the config's, else sqrt(1 + ln(factor) / ln(original)), where factor is
    rope_scaling.factor or max_position_embeddings / original_max_position_embeddings (the runtime's reading)."""
    scaling, original = rope_scaling(config), original_context(config)
    if "attention_factor" in scaling:
        return scaling["attention_factor"]
    factor = scaling.get("factor", config["max_position_embeddings"] / original)
    return math.sqrt(1 + math.log(factor) / math.log(original)) if factor > 1 else 1.0


def longrope_factors(config):
    """llama.cpp's rope_factors_long and rope_factors_short: what it divides each pair's frequency by, as HF does."""
    scaling, pairs = rope_scaling(config), rotary_dim_of(config) // 2
    out = []
    for kind in ("long", "short"):
        factors = scaling[f"{kind}_factor"]
        if len(factors) != pairs:
            fail(f"rope_scaling: {kind}_factor has {len(factors)} entries, expected rotary_dim / 2 = {pairs}")
        out.append((f"rope_factors_{kind}.weight", "f32", np.array(factors, dtype=np.float32)))
    return out


def gguf_tensors(config, weights, target, arch):
    """(gguf name, dtype, array) in llama.cpp's names and order. llama.cpp's qwen2 and phi3 rotate halves as
    Hugging Face does, so their q/k rows keep their order."""
    layers, heads = config["num_hidden_layers"], config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    reorder = arch == "llama"

    def get(name):
        if name not in weights:
            fail(f"tensor {name} is missing")
        return weights[name]

    def matrix(name):
        dtype, _, array = get(name)
        return convert(dtype, array, target)

    def vector(name):
        dtype, _, array = get(name)
        return "f32", as_f32(dtype, array)

    def separate_projections(i, p):
        out = []
        for hf, gg, rotary_heads in (("self_attn.q_proj", "attn_q", heads), ("self_attn.k_proj", "attn_k", kv_heads),
                                     ("self_attn.v_proj", "attn_v", None), ("self_attn.o_proj", "attn_output", None)):
            dtype, _, array = get(p + hf + ".weight")
            rotary_heads = rotary_heads if reorder else None
            if rotary_heads:
                array = rotary_order(array, rotary_heads)
            out.append((f"blk.{i}.{gg}.weight", *convert(dtype, array, target)))
            if p + hf + ".bias" in weights:
                kind, bias = vector(p + hf + ".bias")
                out.append((f"blk.{i}.{gg}.bias", kind, rotary_order(bias, rotary_heads) if rotary_heads else bias))
        for hf, gg in (("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"), ("mlp.down_proj", "ffn_down")):
            out.append((f"blk.{i}.{gg}.weight", *matrix(p + hf + ".weight")))
        return out

    def fused_projections(i, p):
        pairs = (("self_attn.qkv_proj", "attn_qkv"), ("self_attn.o_proj", "attn_output"),
                 ("mlp.gate_up_proj", "ffn_up"), ("mlp.down_proj", "ffn_down"))
        return [(f"blk.{i}.{gg}.weight", *matrix(p + hf + ".weight")) for hf, gg in pairs]

    out = [("token_embd.weight", *matrix("model.embed_tokens.weight"))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += fused_projections(i, p) if arch == "phi3" else separate_projections(i, p)
        out.append((f"blk.{i}.attn_norm.weight", *vector(p + "input_layernorm.weight")))
        out.append((f"blk.{i}.ffn_norm.weight", *vector(p + "post_attention_layernorm.weight")))
    out.append(("output_norm.weight", *vector("model.norm.weight")))
    if not config.get("tie_word_embeddings", False):
        out.append(("output.weight", *matrix("lm_head.weight")))
    return out


# ---- the tokenizer ---------------------------------------------------------------------------------


def vocabulary(directory, config):
    """(tokens, token types, merges) over vocab_size ids."""
    size = config["vocab_size"]
    tokens, types, merges = [None] * size, [TOKEN_UNUSED] * size, []
    path = directory / "tokenizer.json"
    if path.exists():
        doc = json.loads(path.read_text())
        model = doc["model"]
        if model.get("type") != "BPE" or model.get("byte_fallback"):
            fail(f"{path}: model: only byte-level BPE tokenizers are exported (SentencePiece-style is not)")
        for token, i in model["vocab"].items():
            tokens[i], types[i] = token, TOKEN_NORMAL
        merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
        for added in doc.get("added_tokens", []):
            tokens[added["id"]] = added["content"]
            types[added["id"]] = TOKEN_CONTROL if added.get("special") else TOKEN_NORMAL
    else:  # the bundled model: ids 0-255 are the bytes
        for b, symbol in byte_symbols().items():
            tokens[b], types[b] = symbol, TOKEN_NORMAL
        for name, key in (("<s>", "bos_token_id"), ("</s>", "eos_token_id")):
            if config.get(key) is not None:
                tokens[config[key]], types[config[key]] = name, TOKEN_CONTROL
    for i, token in enumerate(tokens):
        if token is None:
            tokens[i] = f"[PAD{i}]"
    return tokens, types, merges


# ---- writing GGUF ----------------------------------------------------------------------------------


def gguf_string(text):
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def gguf_value(kind, value):
    if kind == STRING:
        return gguf_string(value)
    return struct.pack({UINT32: "<I", INT32: "<i", FLOAT32: "<f", BOOL: "<?"}[kind], value)


def metadata_entry(key, kind, value, element=None):
    out = gguf_string(key) + struct.pack("<I", kind)
    if kind == ARRAY:
        out += struct.pack("<IQ", element, len(value)) + b"".join(gguf_value(element, v) for v in value)
    else:
        out += gguf_value(kind, value)
    return out


# llama.cpp marks these tokens of Phi-3's SentencePiece vocabulary when general.name holds "phi3" or "phi-3"
# (llama_vocab::impl::load), and fails to load a vocabulary without them; the name is only a label, so such a
# vocabulary goes without it.
PHI3_NAMED_TOKENS = ("</s>", "<unk>", "<s>", "<|endoftext|>")


def metadata(config, directory, arch, rope_kind):
    heads, head_dim = config["num_attention_heads"], head_dim_of(config)
    tokens, types, merges = vocabulary(directory, config)
    entries = [
        ("general.architecture", STRING, arch),
        ("general.alignment", UINT32, ALIGNMENT),
        (f"{arch}.context_length", UINT32, config.get("max_position_embeddings", 2048)),
        (f"{arch}.embedding_length", UINT32, config["hidden_size"]),
        (f"{arch}.block_count", UINT32, config["num_hidden_layers"]),
        (f"{arch}.feed_forward_length", UINT32, config["intermediate_size"]),
        (f"{arch}.attention.head_count", UINT32, heads),
        (f"{arch}.attention.head_count_kv", UINT32, config.get("num_key_value_heads", heads)),
        (f"{arch}.attention.key_length", UINT32, head_dim),
        (f"{arch}.attention.value_length", UINT32, head_dim),
        (f"{arch}.attention.layer_norm_rms_epsilon", FLOAT32, config.get("rms_norm_eps", 1e-6)),
        (f"{arch}.rope.freq_base", FLOAT32, rope_field(config, "rope_theta", 10000.0)),
        (f"{arch}.rope.dimension_count", UINT32, rotary_dim_of(config)),
        (f"{arch}.vocab_size", UINT32, config["vocab_size"]),
        ("tokenizer.ggml.model", STRING, "gpt2"),
        ("tokenizer.ggml.pre", STRING, "default"),
        ("tokenizer.ggml.tokens", ARRAY, tokens, STRING),
        ("tokenizer.ggml.token_type", ARRAY, types, INT32),
        ("tokenizer.ggml.merges", ARRAY, merges, STRING),
    ]
    name = directory.resolve().name
    if not any(k in name.lower() for k in ("phi-3", "phi3")) or set(PHI3_NAMED_TOKENS) <= set(tokens):
        entries.insert(1, ("general.name", STRING, name))
    for key, field in (("bos", "bos_token_id"), ("eos", "eos_token_id")):
        value = config.get(field)
        if isinstance(value, list):
            value = value[0]
        if value is not None:
            entries.append((f"tokenizer.ggml.{key}_token_id", UINT32, value))
    entries.append(("tokenizer.ggml.add_bos_token", BOOL, False))  # the ids handed over carry it already
    if rope_kind in ("linear", "yarn"):
        entries += [(f"{arch}.rope.scaling.type", STRING, rope_kind),
                    (f"{arch}.rope.scaling.factor", FLOAT32, rope_scaling(config)["factor"])]
    if rope_kind == "yarn" or arch == "phi3":
        entries.append((f"{arch}.rope.scaling.original_context_length", UINT32, original_context(config)))
    if rope_kind == "longrope":
        entries.append((f"{arch}.rope.scaling.attn_factor", FLOAT32, longrope_attention_factor(config)))
    return entries


def write_gguf(out, entries, tensors):
    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(entries))
    header += b"".join(metadata_entry(key, kind, value, *rest) for key, kind, value, *rest in entries)
    infos, blobs, offset = b"", [], 0
    for name, dtype, array in tensors:
        data = np.ascontiguousarray(array).tobytes()
        # GGML lists dimensions innermost first: numpy's shape reversed.
        infos += gguf_string(name) + struct.pack("<I", array.ndim)
        infos += b"".join(struct.pack("<Q", n) for n in reversed(array.shape))
        infos += struct.pack("<IQ", GGML_TYPES[dtype], offset)
        padding = -len(data) % ALIGNMENT
        blobs.append(data + b"\0" * padding)
        offset += len(data) + padding
    prefix = header + infos
    with open(out, "wb") as f:
        f.write(prefix + b"\0" * (-len(prefix) % ALIGNMENT))
        for blob in blobs:
            f.write(blob)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--dtype", choices=["keep", "f32", "f16", "bf16"], default="keep",
                        help="the matrices' dtype (keep: as stored)")
    args = parser.parse_args()
    config_path = args.checkpoint / "config.json"
    if not config_path.exists():
        fail(f"{config_path}: not found")
    config = json.loads(config_path.read_text())
    arch, rope_kind = check_config(config, config_path)
    entries = metadata(config, args.checkpoint, arch, rope_kind)
    tensors = gguf_tensors(config, read_weights(args.checkpoint), args.dtype, arch)
    if rope_kind == "llama3":
        tensors.insert(1, ("rope_freqs.weight", "f32", llama3_factors(config, head_dim_of(config))))
    if rope_kind == "longrope":
        tensors[1:1] = longrope_factors(config)
    write_gguf(args.out, entries, tensors)
    print(f"export_gguf.py: {args.out}: {len(tensors)} tensors, {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
