#!/usr/bin/python3
"""Train, export and evaluate ctxbench's bundled byte-level retrieval model.

A tiny Llama (RMSNorm, NeoX/HF RoPE, GQA, SwiGLU, no biases, untied head) over a byte vocabulary
(ids 0..255 are bytes, 256 = BOS, 257 = EOS). It is trained on passkey retrieval first, then on a
mixture of passkey / single needle / multi-key / multi-value tasks over book haystacks, so that the
C++ engines have a real model whose accuracy depends on which tokens attention keeps.

Usage (Debian's torch, see /work/shared/TRAINING-NOTES.md):
  /usr/bin/python3 scripts/train_model.py train --out DIR [--steps N] [--checkpoint FILE]
  /usr/bin/python3 scripts/train_model.py eval --out DIR [--samples N] [--length L]
  /usr/bin/python3 scripts/train_model.py golden --out DIR
Other jobs on the machine should run under `nice -n 19`; training resumes from --checkpoint when the file exists.
"""
import argparse
import json
import math
import os
import random
import re
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

BOS_ID = 256
EOS_ID = 257
VOCAB_SIZE = 258
HAYSTACK_DIR = "/work/shared/datasets/haystack"

# --------------------------------------------------------------------------------------------
# Model (module names mirror HF LlamaForCausalLM so the state dict keys are the HF tensor names)
# --------------------------------------------------------------------------------------------


class ModelConfig:
    def __init__(self, hidden_size=128, intermediate_size=352, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=32, rope_theta=10000.0,
                 rms_norm_eps=1e-5, max_position_embeddings=1024):
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.max_position_embeddings = max_position_embeddings

    def to_hf(self):
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "vocab_size": VOCAB_SIZE,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": None,
            "max_position_embeddings": self.max_position_embeddings,
            "attention_bias": False,
            "mlp_bias": False,
            "tie_word_embeddings": False,
            "torch_dtype": "float32",
            "bos_token_id": BOS_ID,
            "eos_token_id": EOS_ID,
            "tokenizer": "bytes: ids 0-255 are the UTF-8 bytes, 256 = BOS (prepended), 257 = EOS",
        }

    @staticmethod
    def from_hf(d):
        return ModelConfig(d["hidden_size"], d["intermediate_size"], d["num_hidden_layers"],
                           d["num_attention_heads"], d["num_key_value_heads"], d["head_dim"],
                           d["rope_theta"], d["rms_norm_eps"], d["max_position_embeddings"])


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_cos_sin(positions, head_dim, theta):
    """HF Llama layout: frequencies duplicated over the two halves of the head (rotate_half)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    freqs = torch.outer(positions.to(torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().float(), emb.sin().float()


def apply_rope(x, cos, sin):
    xf = x.float()  # rotary in fp32 even under bf16 autocast
    return xf * cos + rotate_half(xf) * sin


def causal_attention(q, k, v, q_offset, block):
    """q [B,H,Tq,d] at positions q_offset.., k/v [B,H,Tk,d] at 0..; block-causal: each query block
    only multiplies against the keys up to its own end, so the upper triangle is never computed."""
    tq, tk, d = q.shape[2], k.shape[2], q.shape[3]
    scale = 1.0 / math.sqrt(d)
    outs = []
    for s in range(0, tq, block):
        e = min(s + block, tq)
        kend = q_offset + e
        scores = torch.matmul(q[:, :, s:e], k[:, :, :kend].transpose(-1, -2)).float() * scale
        if e - s > 1:  # only the diagonal block needs a mask
            qpos = torch.arange(e - s).unsqueeze(1)
            tri = torch.zeros(e - s, e - s).masked_fill(torch.arange(e - s).unsqueeze(0) > qpos, float("-inf"))
            scores[..., kend - (e - s):] += tri
        probs = torch.softmax(scores, dim=-1)
        outs.append(torch.matmul(probs.to(v.dtype), v[:, :, :kend]))
    assert tk >= q_offset + tq
    return torch.cat(outs, dim=2)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden_size, cfg.num_attention_heads * hd, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, cfg.num_key_value_heads * hd, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, cfg.num_key_value_heads * hd, bias=False)
        self.o_proj = nn.Linear(cfg.num_attention_heads * hd, cfg.hidden_size, bias=False)

    def forward(self, x, cos, sin, cache, block):
        cfg = self.cfg
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, cfg.num_attention_heads, cfg.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, cfg.num_key_value_heads, cfg.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, cfg.num_key_value_heads, cfg.head_dim).transpose(1, 2)
        q = apply_rope(q, cos, sin).to(v.dtype)
        k = apply_rope(k, cos, sin).to(v.dtype)
        offset = 0
        if cache is not None:
            if "k" in cache:
                offset = cache["k"].shape[2]
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        rep = cfg.num_attention_heads // cfg.num_key_value_heads  # query head h uses kv head h // rep
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        out = causal_attention(q, k, v, offset, block)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x, cos, sin, cache, block):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, block)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaBody(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB_SIZE, cfg.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = LlamaBody(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, VOCAB_SIZE, bias=False)
        # PyTorch's default initialisation, as in the feasibility study (TRAINING-NOTES). A run with
        # GPT-2 style N(0, 0.02) weights stayed near chance on the passkey answer, on a shared CPU.

    def forward(self, ids, caches=None, block=128, rope_theta=None):
        offset = caches[0]["k"].shape[2] if caches is not None and "k" in caches[0] else 0
        positions = torch.arange(offset, offset + ids.shape[1])
        cos, sin = rope_cos_sin(positions, self.cfg.head_dim, rope_theta or self.cfg.rope_theta)
        x = self.model.embed_tokens(ids)
        for i, layer in enumerate(self.model.layers):
            x = layer(x, cos, sin, None if caches is None else caches[i], block)
        return self.lm_head(self.model.norm(x))


# --------------------------------------------------------------------------------------------
# Task generators (bytes). Every sample is exactly `length` tokens: BOS + prompt + answer + EOS.
# --------------------------------------------------------------------------------------------

PASSKEY_TASK = ("There is an important info hidden inside a lot of irrelevant text. Find it and memorize "
                "them. I will quiz you about the important information there.")
PASSKEY_FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
PASSKEY_QUESTION = "What is the pass key? The pass key is"
PASSKEY_FILLER_INF = " ".join([PASSKEY_FILLER] * 200)

NEEDLE = "One of the special magic numbers for {key} is: {value}."
SINGLE_PRE = ("A special magic number is hidden within the following text. Make sure to memorize it. I will "
              "quiz you about the number afterwards.\n")
SINGLE_POST = ("\nWhat is the special magic number for {query} mentioned in the provided text? The special "
               "magic number for {query} mentioned in the provided text is")
MULTI_PRE = ("Some special magic numbers are hidden within the following text. Make sure to memorize it. I "
             "will quiz you about the numbers afterwards.\n")
MULTI_POST = ("\nWhat are all the special magic numbers for {query} mentioned in the provided text? The "
              "special magic numbers for {query} mentioned in the provided text are")

ADJECTIVES = ("able acid angry aware bad bitter black blue bold brave brief bright broad busy calm cheap "
              "clean clear cold cool curly damp dark dear deep dry dull eager early easy empty equal fair "
              "false fancy fast fat few fine firm flat fresh full funny giant glad gold good grand great "
              "green grey happy hard heavy high hollow huge icy kind large late lazy light little lively "
              "long loud low lucky mad mean mild modern narrow neat new nice noisy odd old open pale plain "
              "polite poor proud quick quiet rapid rare raw red rich rough round royal sad safe sharp shiny "
              "short shy silent silly simple slow small smooth soft solid sour spicy steep sticky strange "
              "strict strong sweet swift tall tame tender thick thin tidy tiny tough ugly vast warm weak "
              "wet white wide wild wise wooden young").split()
NOUNS = ("actor anchor apple arrow badge bakery banana barn basket beach bell bicycle bird blanket boat "
         "book bottle bridge brush bucket butter button cabin camera candle canoe carpet castle cat chair "
         "cheese cherry chimney circle clock cloud coat coffee comet copper cotton crayon crown cup "
         "curtain desk diamond dinner doctor dog dragon drum eagle engine falcon feather fence field "
         "flower forest fountain garden garlic ginger glove goat guitar hammer harbor hat helmet honey "
         "horse island jacket jelly kettle kitten ladder lamp lemon letter lion locket magnet mango "
         "marble meadow mirror monkey mountain needle ocean olive onion orange otter owl painter palace "
         "panda pencil pepper piano pillow pirate planet pocket pond potato puppy quilt rabbit radio "
         "river robot rocket saddle sailor salmon scarf shadow sheep shell silver soap spoon squirrel "
         "stone sugar summer sunset table teapot tiger tomato tower train tulip turtle umbrella valley "
         "violin wagon walnut whale window winter wizard wolf").split()


def load_haystack():
    """Books concatenated in sorted file order (deterministic haystack)."""
    names = sorted(n for n in os.listdir(HAYSTACK_DIR) if n.endswith(".txt"))
    return b"\n\n".join(open(os.path.join(HAYSTACK_DIR, n), "rb").read() for n in names)


class TaskGenerator:
    def __init__(self, rng, haystack):
        self.rng = rng
        self.haystack = haystack

    def _book_text(self, nbytes):
        start = self.rng.randrange(0, len(self.haystack) - nbytes - 1)
        return self.haystack[start:start + nbytes]

    def _key(self, used):
        while True:
            key = self.rng.choice(ADJECTIVES) + "-" + self.rng.choice(NOUNS)
            if key not in used:
                used.add(key)
                return key

    def _value(self):
        return str(self.rng.randrange(1000000, 10000000))

    def passkey(self, length):
        key = str(self.rng.randint(1, 50000))
        answer = " " + key + "."
        info = "The pass key is {0}. Remember it. {0} is the pass key.".format(key)
        fixed = len(PASSKEY_TASK) + len(info) + len(PASSKEY_QUESTION) + 4  # four "\n" joins
        n_garbage = length - 2 - len(answer) - fixed
        n_prefix = self.rng.randint(0, n_garbage)
        prompt = "\n".join([PASSKEY_TASK, PASSKEY_FILLER_INF[:n_prefix], info,
                            PASSKEY_FILLER_INF[:n_garbage - n_prefix], PASSKEY_QUESTION])
        return prompt.encode(), answer.encode(), [key]

    def _haystack_with_needles(self, nbytes, needles):
        """Book text of exactly nbytes including the needles, each placed after a '. ' boundary."""
        needle_bytes = [n.encode() + b" " for n in needles]
        text = self._book_text(nbytes - sum(len(n) for n in needle_bytes))
        cuts = sorted(self.rng.randrange(0, len(text) + 1) for _ in needles)
        snapped = []
        for c in cuts:
            dot = text.rfind(b". ", 0, c)
            snapped.append(dot + 2 if dot >= 0 and c - dot < 200 else c)
        snapped.sort()
        pieces, prev = [], 0
        for pos, nb in zip(snapped, needle_bytes):
            pieces += [text[prev:pos], nb]
            prev = pos
        pieces.append(text[prev:])
        return b"".join(pieces)

    def _niah(self, length, pre, post, needles, query, answer):
        post = post.format(query=query)
        ctx_len = length - 2 - len(pre) - len(post) - len(answer)
        if ctx_len < sum(len(n) + 1 for n in needles) + 64:
            raise ValueError("length %d is too short for %d needles" % (length, len(needles)))
        ctx = self._haystack_with_needles(ctx_len, needles)
        return pre.encode() + ctx + post.encode(), answer.encode()

    def single_needle(self, length):
        key, value = self._key(set()), self._value()
        prompt, answer = self._niah(length, SINGLE_PRE, SINGLE_POST,
                                    [NEEDLE.format(key=key, value=value)], key, " " + value + ".")
        return prompt, answer, [value]

    def multi_key(self, length, n_keys=4):
        used = set()
        pairs = [(self._key(used), self._value()) for _ in range(n_keys)]
        key, value = self.rng.choice(pairs)
        needles = [NEEDLE.format(key=k, value=v) for k, v in pairs]
        prompt, answer = self._niah(length, SINGLE_PRE, SINGLE_POST, needles, key, " " + value + ".")
        return prompt, answer, [value]

    def multi_value(self, length, n_values=4):
        key = self._key(set())
        values = [self._value() for _ in range(n_values)]
        needles = [NEEDLE.format(key=key, value=v) for v in values]
        # values appear in the text in the order of the needles, so the answer lists them in that order
        prompt, answer = self._niah(length, MULTI_PRE, MULTI_POST, needles, key,
                                    " " + ", ".join(values) + ".")
        return prompt, answer, values

    def make(self, task, length):
        return getattr(self, task)(length)


TASKS = ["passkey", "single_needle", "multi_key", "multi_value"]


def encode_sample(prompt, answer):
    return [BOS_ID] + list(prompt) + list(answer) + [EOS_ID], 1 + len(prompt)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def make_batch(gen, tasks, length):
    ids, answer_mask = [], []
    for task in tasks:
        prompt, answer, _ = gen.make(task, length)
        seq, answer_start = encode_sample(prompt, answer)
        assert len(seq) == length, (task, len(seq), length)
        ids.append(seq)
        # target index j predicts seq[j+1]; answer targets are seq[answer_start:] (answer + EOS)
        answer_mask.append([j + 1 >= answer_start for j in range(length - 1)])
    ids = torch.tensor(ids, dtype=torch.long)
    return ids, torch.tensor(answer_mask)


def lr_at(step, args, elapsed):
    """Warm-up, then cosine to 10% over whichever budget runs out first: steps or wall-clock minutes."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, max((step - args.warmup) / max(1, args.steps - args.warmup),
                            elapsed / (args.max_minutes * 60)))
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def curriculum_length(step, args, rng, state):
    """Passkey stays at --min-length until it is learnt (train accuracy >= 50%), then lengths ramp to
    --length over --ramp-steps; the needle mixture (phase 1) needs >= 3/4 of the training length so
    that four needles still leave a real haystack."""
    if state.get("ramp_start") is None:
        if state["acc"].get("passkey", 0) < 0.5:
            return args.min_length
        state["ramp_start"] = step
        print("length ramp starts at step", step, flush=True)
    low = args.min_length if state["phase"] == 0 else args.length * 3 // 4
    ramp = (step - state["ramp_start"]) / args.ramp_steps
    top = min(args.length, args.min_length + (args.length - args.min_length) * ramp)
    top = max(low, int(top) // 128 * 128)
    if rng.random() < 0.6:
        return top
    return rng.randrange(low // 128, top // 128 + 1) * 128


def choose_tasks(phase, batch_size, rng):
    if phase == 0:
        return ["passkey"] * batch_size
    weights = {"passkey": 1, "single_needle": 2, "multi_key": 3, "multi_value": 2}
    pool = [t for t, w in weights.items() for _ in range(w)]
    return [rng.choice(pool) for _ in range(batch_size)]


def train(args):
    torch.set_num_threads(args.threads)
    cfg = ModelConfig(num_hidden_layers=args.layers, hidden_size=args.hidden,
                      intermediate_size=args.intermediate, max_position_embeddings=args.length)
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(cfg)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    data_rng = random.Random(args.seed)
    state = {"step": 0, "phase": 0, "elapsed": 0.0, "phase_switch_step": None, "acc": {}}
    if args.checkpoint and os.path.exists(args.checkpoint):
        ck = torch.load(args.checkpoint)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        data_rng.setstate(ck["data_rng"])
        torch.set_rng_state(ck["torch_rng"])
        state = ck["state"]
        print("resumed from step", state["step"], flush=True)
    gen = TaskGenerator(data_rng, load_haystack())
    nparams = sum(p.numel() for p in model.parameters())
    print("parameters:", nparams, flush=True)
    t_start = time.time() - state["elapsed"]
    last_ckpt = time.time()
    ema = state["acc"]
    while state["step"] < args.steps:
        step = state["step"]
        length = curriculum_length(step, args, data_rng, state)
        batch_size = max(1, args.batch_tokens // length)
        tasks = choose_tasks(state["phase"], batch_size, data_rng)
        ids, amask = make_batch(gen, tasks, length)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args, state["elapsed"])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(ids[:, :-1], block=64)
        logits = logits.float()
        targets = ids[:, 1:]
        ce = F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), targets.reshape(-1), reduction="none")
        ce = ce.view(targets.shape)
        answer_loss = ce[amask].mean()
        lm_loss = ce[~amask].mean()
        loss = answer_loss + 0.1 * lm_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        # teacher-forced exact match of the answer == greedy exact match
        with torch.no_grad():
            ok = ((logits.argmax(-1) == targets) | ~amask).all(dim=1)
            for t in set(tasks):
                sel = torch.tensor([x == t for x in tasks])
                acc = ok[sel].float().mean().item()
                ema[t] = acc if t not in ema else 0.9 * ema[t] + 0.1 * acc
        state["step"] = step + 1
        state["elapsed"] = time.time() - t_start
        if state["phase"] == 0 and ema.get("passkey", 0) >= 0.9 and length >= args.length // 2:
            state["phase"] = 1
            state["phase_switch_step"] = step + 1
            print("phase 1 (mixture) from step", step + 1, "at %.1f min" % (state["elapsed"] / 60), flush=True)
        if step % 10 == 0:
            accs = " ".join("%s=%.2f" % (t[:6], ema[t]) for t in TASKS if t in ema)
            print("step %d t=%.1fm len=%d bs=%d lr=%.2e ans=%.3f lm=%.3f %s" % (
                step, state["elapsed"] / 60, length, batch_size, opt.param_groups[0]["lr"],
                answer_loss.item(), lm_loss.item(), accs), flush=True)
        done = state["step"] >= args.steps or state["elapsed"] > args.max_minutes * 60
        if args.checkpoint and (done or time.time() - last_ckpt > 300):
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "data_rng": data_rng.getstate(),
                        "torch_rng": torch.get_rng_state(), "state": state}, args.checkpoint + ".tmp")
            os.replace(args.checkpoint + ".tmp", args.checkpoint)
            last_ckpt = time.time()
        if done:
            break
    export(model, cfg, args.out, state, args)


# --------------------------------------------------------------------------------------------
# Export (HF config + safetensors written by hand: the safetensors package is not installed)
# --------------------------------------------------------------------------------------------


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous()
        raw = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * (-len(hjson) % 8)  # keep the data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    import numpy as np
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError("%s: tensor %s has dtype %s, expected F32" % (path, name, info["dtype"]))
        s, e = info["data_offsets"]
        arr = np.frombuffer(data[s:e], dtype="<f4").reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


def export(model, cfg, out, state, args):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg.to_hf(), f, indent=2)
        f.write("\n")
    meta = {"format": "pt", "step": str(state["step"]), "seed": str(args.seed),
            "training_minutes": "%.1f" % (state["elapsed"] / 60),
            "phase_switch_step": str(state["phase_switch_step"])}
    write_safetensors(os.path.join(out, "model.safetensors"), model.state_dict(), meta)
    with open(os.path.join(out, "training_state.json"), "w") as f:
        json.dump({"steps": state["step"], "minutes": round(state["elapsed"] / 60, 1),
                   "passkey_phase_until_step": state["phase_switch_step"], "seed": args.seed,
                   "train_accuracy_ema": state["acc"]}, f, indent=2)
        f.write("\n")
    print("exported to", out, flush=True)


def load_model(out):
    with open(os.path.join(out, "config.json")) as f:
        cfg = ModelConfig.from_hf(json.load(f))
    model = LlamaForCausalLM(cfg)
    missing = model.load_state_dict(read_safetensors(os.path.join(out, "model.safetensors")), strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    model.eval()
    return model


# --------------------------------------------------------------------------------------------
# Evaluation: greedy decoding with a KV cache, plain fp32
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def greedy_generate(model, prompts, max_new, rope_theta=None):
    """prompts: equal-length token lists. Stops per row at EOS."""
    ids = torch.tensor(prompts, dtype=torch.long)
    caches = [dict() for _ in model.model.layers]
    logits = model(ids, caches=caches, block=256, rope_theta=rope_theta)[:, -1]
    out = [[] for _ in prompts]
    finished = [False] * len(prompts)
    for _ in range(max_new):
        nxt = logits.argmax(-1)
        for i, t in enumerate(nxt.tolist()):
            if not finished[i]:
                if t == EOS_ID:
                    finished[i] = True
                else:
                    out[i].append(t)
        if all(finished):
            break
        logits = model(nxt.unsqueeze(1), caches=caches, block=1, rope_theta=rope_theta)[:, -1]
    return [bytes(o).decode("utf-8", errors="replace") for o in out]


def first_integer(text):
    m = re.search(r"\d+", text)
    return m.group(0) if m else None


def evaluate(args):
    torch.set_num_threads(2)
    model = load_model(args.out)
    theta = None
    if args.ntk:  # static NTK-aware scaling: theta * s^(d/(d-2))
        s = args.length / model.cfg.max_position_embeddings
        d = model.cfg.head_dim
        theta = model.cfg.rope_theta * s ** (d / (d - 2))
    results = {}
    tasks = args.tasks.split(",")
    for task in tasks:
        gen = TaskGenerator(random.Random(args.eval_seed + TASKS.index(task)), load_haystack())
        samples = [gen.make(task, args.length) for _ in range(args.samples)]
        max_new = 48 if task == "multi_value" else 12
        first_ok, all_found, frac_found, examples = 0, 0, 0.0, []
        # prompt lengths differ with the answer length, and a batch needs one length
        by_len = {}
        for smp in samples:
            by_len.setdefault(len(smp[0]), []).append(smp)
        chunks = [g[b:b + args.batch] for _, g in sorted(by_len.items()) for b in range(0, len(g), args.batch)]
        for chunk in chunks:
            prompts = [[BOS_ID] + list(p) for p, _, _ in chunk]
            outs = greedy_generate(model, prompts, max_new, theta)
            for (p, _, refs), o in zip(chunk, outs):
                found = [r in o for r in refs]
                first_ok += first_integer(o) == refs[0]
                all_found += all(found)
                frac_found += sum(found) / len(found)
                if len(examples) < 3 and not all(found):
                    examples.append({"expected": refs, "output": o})
        n = len(samples)
        results[task] = {"samples": n, "length": args.length, "first_integer_correct": first_ok / n,
                         "all_references_found": all_found / n, "string_match_all": frac_found / n,
                         "failure_examples": examples}
        print(task, json.dumps(results[task]), flush=True)
    tag = "eval_L%d%s.json" % (args.length, "_ntk" if args.ntk else "")
    with open(os.path.join(args.out, tag), "w") as f:
        json.dump({"length": args.length, "rope_theta_used": theta or model.cfg.rope_theta,
                   "eval_seed": args.eval_seed, "results": results}, f, indent=2)
        f.write("\n")


# --------------------------------------------------------------------------------------------
# Golden fixture for the C++ runtime: fp32 logits at a few positions of a fixed prompt
# --------------------------------------------------------------------------------------------

GOLDEN_PROMPT = b"The pass key is 31415. Remember it. What is the pass key? The pass"  # 66 bytes


@torch.no_grad()
def golden(args):
    torch.set_num_threads(2)
    model = load_model(args.out)
    ids = [BOS_ID] + list(GOLDEN_PROMPT[:63])  # 64 tokens
    logits = model(torch.tensor([ids]), block=64)[0].double()
    positions = [0, 1, 17, 40, len(ids) - 1]
    fixture = {
        "description": "fp32 PyTorch logits (no autocast) of the bundled model; compare with rel. err 1e-4",
        "prompt_text": GOLDEN_PROMPT[:63].decode(),
        "token_ids": ids,
        "bos_prepended": True,
        "positions": positions,
        "logits": {str(p): [float("%.9g" % v) for v in logits[p].tolist()] for p in positions},
        "argmax": {str(p): int(logits[p].argmax()) for p in positions},
    }
    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump(fixture, f)
        f.write("\n")
    print("golden written; argmax at last position:", fixture["argmax"][str(positions[-1])])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["train", "eval", "golden"])
    ap.add_argument("--out", default="datasets/models/ctxbench-retrieval")
    ap.add_argument("--checkpoint", default="")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--intermediate", type=int, default=352)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--max-minutes", type=float, default=60.0)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--batch-tokens", type=int, default=16384)
    ap.add_argument("--length", type=int, default=1024, help="training length / eval prompt length")
    ap.add_argument("--min-length", type=int, default=320)
    ap.add_argument("--ramp-steps", type=int, default=400)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--eval-seed", type=int, default=20261122)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--ntk", action="store_true", help="eval: static NTK RoPE scaling to --length")
    args = ap.parse_args()
    {"train": train, "eval": evaluate, "golden": golden}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
