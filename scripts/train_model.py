#!/usr/bin/python3
"""Train, export and check ctxbench's bundled byte-level retrieval model.

A small Llama (RMSNorm, NeoX/HF RoPE, GQA, SwiGLU, no biases, untied head) over a byte vocabulary
(ids 0..255 are bytes, 256 = BOS, 257 = EOS), trained on the C++ tasks' own samples (`ctxbench samples`:
passkey, gkamradt niah, RULER, InfiniteBench) from training seeds and a training haystack that the suites
never read, so that the model solves the tasks densely and an attention method's drop is the method's.

Usage (Debian's python3-torch: scripts/setup.sh with CTXBENCH_SETUP_EXTRAS=train; build/ctxbench built):
  /usr/bin/python3 scripts/train_model.py train --checkpoint build/train.ckpt   # resumes when it exists
  /usr/bin/python3 scripts/train_model.py eval      # held-out teacher-forced accuracy of the exported model
  /usr/bin/python3 scripts/train_model.py golden    # logits fixture for the C++ runtime test
  /usr/bin/python3 scripts/train_model.py locret    # Locret's retaining heads for --model, one thread
The data is fixed by --seed (shards of seeds under --data-cache); other jobs should run under `nice -n 19`.
"""
import argparse
import contextlib
import hashlib
import inspect
import json
import math
import os
import random
import signal
import struct
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

BOS_ID = 256
EOS_ID = 257
VOCAB_SIZE = 258

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
# Training data: the C++ tasks' own samples (`ctxbench samples`), so that the model is trained on
# exactly the prompts the suites evaluate, from other seeds and another haystack.
# --------------------------------------------------------------------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_HAYSTACK = "datasets/haystack-train"  # other books than datasets/haystack, which suites read
TRAIN_SEED_BASE = 1_000_000                 # suites evaluate on small seeds
HELDOUT_SEED_BASE = 500_000                 # monitoring during training: held-out seeds, evaluation haystack
# The longest length grows gradually, and only while the model answers what it has: jumping from 320 tokens to
# 2048, or from 512 to 1024, wrecked what it had learnt (docs/findings/model-level.md). Tasks join in stages,
# easiest first, when the longest length reaches the stage's; while any joined task is answered right (teacher-
# forced, moving average from 0) less than RAMP_PASS of the time the length waits, for RAMP_MAX_WAIT steps at most.
# The skills are learnt on short rows: a batch of 1,536-token rows holds 1.3 times the samples of one of 2,048 and
# takes about 80% of its time. So the length stays at most HOLD_LENGTH until HOLD_UNTIL of the steps, then is
# raised on schedule to the training length by FULL_FROM, whatever the accuracies. HOLD_LENGTH is where vt's prompt
# first fits, so that vt joins during the hold (run 9 held at 1,280: vt joined at 67% of the steps and stayed at 0%).
MIN_LENGTH = 320
LENGTH_GRID = 64            # sample lengths: multiples of this from MIN_LENGTH up to --length
RAMP_TOKENS_PER_STEP = 2
RAMP_PASS = 0.8
RAMP_MAX_WAIT = 400
HOLD_LENGTH = 1536
HOLD_UNTIL = 0.6
FULL_FROM = 0.8
STAGES = [  # (the tasks that join, the longest length at which they join): each soon after its prompt fits
    (["passkey"], MIN_LENGTH),
    (["ib_number_string"], 448),                                          # one needle in repeated noise
    (["niah_single_2", "niah_single_3", "vt_drill"], 576),                # a key to match; book text; vt, short
    (["niah_single_1", "niah", "ib_kv_retrieval"], 704),                  # a sentence to quote; UUID keys
    (["niah_multikey_1", "niah_multivalue"], 832),                        # distractor keys; four values
    (["niah_multiquery"], 960),                                           # four keys asked at once
    (["vt"], 1536),                                                       # its prompt needs 1,390 tokens
    (["niah_multikey_2", "niah_multikey_3", "cwe", "fwe"], 1792),          # not trained by default (--tasks)
]
SHARD_SEEDS = 128                           # cells per shard file; each cell gives SAMPLES_PER_CELL samples
SAMPLES_PER_CELL = 4
DEPTH_TASKS = ("niah", "infinitebench")     # tasks that put the needle at the cell's depth: trained at all depths
# Copy drills: a share of the rows are many key-value records in training-book text, every one asked for at the
# end. A task row has a handful of answer bytes; a drill row has dozens, so exact copying of digit strings with
# repeated digits and of UUIDs (the errors that held the tasks near 80%) gets far more signal. They are not any
# suite's format and are never evaluated: the tasks' own samples remain the measure.
DRILL_SHARE = 0.3
NEED_FLOOR = 0.2                            # the least share a learnt task keeps (still_to_learn)
DRILL_BYTES_PER_RECORD = 160                # one record (needle and its answer line) per this many tokens
DECISION_WEIGHT = 5.0                       # the loss weight of an answer's decision targets (decision_targets)


class TaskSpec:
    """One trained task: the C++ task and parameters that make its samples, its share of batches, and how its
    answer is written (`style`: "list" joins the references with ", "; "text_order" too, in the order the prompt
    shows them (RULER lists multi-value references in an order the prompt does not reveal, and multi-query's in the
    order it asks the keys, which are all the needles there are; its scorer accepts any order); "words" with
    spaces, as vt's in-context example does; "numbered" as "1. a 2. b", as cwe's example does)."""

    def __init__(self, name, task, params, weight, style="list", held_to=True):
        self.name, self.task, self.params, self.weight, self.style = name, task, params, weight, style
        self.held_to = held_to  # the issue holds the instrument to 90% on it; trained by default

    def answer(self, sample):
        """What the model learns to say: the references, as the prompt's own example or the scorer reads them."""
        refs = sample["references"]
        if self.task == "niah":  # gkamradt: the whole needle sentence, as an assistant would quote it
            return " " + sample["params"]["needle"].strip()
        if self.style == "words":
            return " " + " ".join(refs)
        if self.style == "text_order":
            refs = sorted(refs, key=sample["prompt"].find)
        if self.style == "numbered":
            return " " + " ".join("%d. %s" % (i + 1, r) for i, r in enumerate(refs))
        text = ", ".join(refs)
        return text if sample["prompt"][-1:].isspace() else " " + text


def ruler(name, weight, style="list", held_to=True):
    return TaskSpec(name, "ruler", {"task": name}, weight, style, held_to)


def infinitebench(name, weight):
    return TaskSpec("ib_" + name, "infinitebench", {"task": name}, weight)


TASK_SPECS = [  # weights favour telling keys apart (multikey, kv_retrieval) and several answers
    TaskSpec("passkey", "passkey", {}, 1),
    TaskSpec("niah", "niah", {"buffer": 433, "max_new_tokens": 128}, 2),  # as suites/model-tasks.json
    ruler("niah_single_1", 1), ruler("niah_single_2", 1), ruler("niah_single_3", 2),
    ruler("niah_multikey_1", 4), ruler("niah_multikey_2", 1, held_to=False), ruler("niah_multikey_3", 1, held_to=False),
    ruler("niah_multivalue", 3, style="text_order"), ruler("niah_multiquery", 3, style="text_order"),
    ruler("vt", 3, style="words"),
    ruler("cwe", 1, style="numbered", held_to=False), ruler("fwe", 1, held_to=False),
    infinitebench("kv_retrieval", 4), infinitebench("number_string", 1),
]
# RULER multikey_2/3, cwe and fwe can be added with --tasks; by default their share goes to the tasks the
# instrument is held to, which a model of under 1M parameters already finds hard to fit in 90 minutes.
DRILL = TaskSpec("drill", None, {}, 0)  # copy drills (make_drill), not a C++ task
VT_DRILL = TaskSpec("vt_drill", None, {}, 2, style="words", held_to=False)  # make_vt_drill, not a C++ task
DEFAULT_TASKS = [s.name for s in TASK_SPECS if s.held_to] + [VT_DRILL.name]
SPEC_BY_NAME = {s.name: s for s in TASK_SPECS + [VT_DRILL]}


def read_words(name):
    with open(os.path.join(REPO, "datasets", "ruler", name)) as f:
        return [w.strip() for w in f if w.strip()]


NEEDLE_GLUE = ["a", "the", "and", "in", "on", "with", "of", "to", "at", "by"]


def varied_needle(rng, words):
    """A gkamradt-style needle with its question and answer phrase, so that the model learns to quote the sentence
    that answers the question (the suites use gkamradt's own San Francisco needle, which training never shows).
    Run 10 drew every answer from one structure over the RULER word lists ("VERB a ADJ NOUN and VERB in the ADJ
    NOUN on a ADJ day") and learnt to invent sentences of that shape; run 11 took three quarters of them from the
    training books and learnt to quote book text near the question's phrase, since such a needle looks like its
    haystack. So the words stay the RULER lists' (unlike the haystack) and the structure varies: half keep run 10's
    template, half are free sequences of 5-16 list words and short function words."""
    pick = lambda kind: rng.choice(words[kind])  # noqa: E731
    place = " ".join(pick(k).capitalize() for k in (["nouns"] if rng.random() < 0.3 else ["adjectives", "nouns"]))
    if rng.random() < 0.5:
        answer = "%s a %s %s and %s in the %s %s on a %s day" % (
            pick("verbs"), pick("adjectives"), pick("nouns"), pick("verbs"), pick("adjectives"), pick("nouns"),
            pick("adjectives"))
    else:
        kinds = ["verbs", "adjectives", "nouns", "glue"]
        answer = " ".join(rng.choice(NEEDLE_GLUE) if k == "glue" else pick(k)
                          for k in rng.choices(kinds, weights=[2, 2, 3, 2], k=rng.randint(5, 16)))
    return {"needle": "\nThe best thing to do in %s is %s.\n" % (place, answer),
            "question": "What is the best thing to do in %s?" % place, "answer": answer}


# Names the niah shards of a cache, so that changing how needles are made never reuses shards made the old way.
NEEDLE_SOURCE = repr(NEEDLE_GLUE) + inspect.getsource(varied_needle)
NEEDLE_VERSION = hashlib.sha1(NEEDLE_SOURCE.encode()).hexdigest()[:8]
VT_NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n"
VT_NOISE_PIECES = [(" " if i else "") + p.strip() + "." for i, p in enumerate(VT_NOISE.split(".")[:-1])] + ["\n"]
VT_PROMPT = ("Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n%s\nQuestion: "
             "Find all variables that are assigned the value %s in the text above. Answer: According to the chain(s) of "
             "variable assignment in the text above, 5 variables are assgined the value %s, they are: ")
VT_DRILL_MIN_LENGTH = 576


def make_vt_drill(rng, length):
    """(token ids, [answer span]) of one variable-tracking row in RULER's template (as tasks/text_tasks/ruler/
    variable_tracking.cpp writes it) but without its in-context example, so that it fits short rows: vt's own
    prompt first fits at 1,390 tokens, and run 10, where vt joined at 1,536, never started to copy its names."""
    names = []
    while len(names) < 5:
        name = upper_name(rng)
        if name not in names:
            names.append(name)
    value = str(rng.randint(10000, 99998))
    chain = ["VAR %s = %s" % (names[0], value)] + ["VAR %s = VAR %s " % (names[j + 1], names[j]) for j in range(4)]
    fixed = len(VT_PROMPT % ("", value, value)) + sum(len(c) + 1 for c in chain) + 40
    sentences = [VT_NOISE] * max(1, (length - fixed) // (len(VT_NOISE) + 1))
    if rng.random() < 0.5:  # the task cuts the noise into its sentences when there are few: so do half the rows
        sentences = [p for _ in sentences for p in VT_NOISE_PIECES]
    positions = sorted(rng.sample(range(len(sentences) + 1), 5)) if len(sentences) >= 4 else [0] * 5
    for j, pos in enumerate(positions):
        sentences.insert(pos + j, chain[j])
    context = " ".join(sentences).replace(". \n", ".\n")
    ids = [BOS_ID] + list((VT_PROMPT % (context, value, value)).encode())
    answer = list((" " + " ".join(names)).encode()) + [EOS_ID]
    return ids + answer, [(len(ids), len(ids) + len(answer), " ")]


def upper_name(rng):
    """vt's variable names: five upper-case letters. Run 11 copied none until vt's own rows, as nothing before them
    had upper-case names to copy; the drills now have them as keys and values."""
    return "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(5))


def uuid(rng):
    return "%08x-%04x-%04x-%04x-%012x" % tuple(rng.getrandbits(b) for b in (32, 16, 16, 16, 48))


def drill_value(rng, words):
    """A value in one of the tasks' answer alphabets: RULER's 7-digit numbers, passkeys, number_string's digit
    runs, UUIDs, words, vt's names."""
    kind = rng.randrange(6)
    if kind == 0:
        return str(rng.randrange(1_000_000, 10_000_000))
    if kind == 1:
        return str(rng.randrange(1, 100_000))
    if kind == 2:
        digits = [rng.choice("0123456789")]
        while len(digits) < 10:
            digits.append(digits[-1] if rng.random() < 0.5 else rng.choice("0123456789"))
        return "".join(digits)
    if kind == 3:
        return uuid(rng)
    if kind == 4:
        return upper_name(rng)
    return rng.choice(words["nouns"])


def drill_key(rng, words, key_kind):
    """RULER's keys: an adjective-noun pair, or a UUID (multikey_3's and kv_retrieval's keys); or vt's names."""
    if key_kind == "uuid":
        return uuid(rng)
    if key_kind == "name":
        return upper_name(rng)
    return "%s-%s" % (rng.choice(words["adjectives"]), rng.choice(words["nouns"]))


def make_drill(rng, length, text, words):
    """(token ids, [(start, end) of each answer]) of one drill row of `length` tokens. Half the rows give each key
    two to four values, asked for together in the order the text shows them (multi-value's skill). Half the rows
    are dense in keys, most of the row records and little haystack, so that each row asks many times which needle
    a key names (key binding: runs 8-11 never learnt it from the tasks' rows, with their one to four needles). Half
    the rows ask as RULER does, with words between the key and the answer, so that the key's needle cannot be found
    by matching the bytes just before the answer."""
    key_kind = rng.choice(["pair", "uuid", "name"])
    multi, dense = rng.random() < 0.5, rng.random() < 0.5
    sparse_budget = min(length // 2, (length // DRILL_BYTES_PER_RECORD) * DRILL_BYTES_PER_RECORD // 2)
    budget = int(length * 0.8) if dense else sparse_budget
    mention = " mentioned in the text" if rng.random() < 0.5 else ""
    by_key, records, used, full = {}, [], 0, False
    while not full:
        key = drill_key(rng, words, key_kind)
        if key in by_key:
            continue
        by_key[key] = []
        for _ in range(rng.randint(2, 4) if multi else 1):
            value = drill_value(rng, words)
            cost = 2 * len(key) + 2 * len(value) + 40 + len(mention)  # needle, question and answer bytes
            full = used + cost > budget and bool(records)
            if full:
                break
            by_key[key].append(value)
            records.append((key, value))
            used += cost
    rng.shuffle(records)
    needles = [(" The value of %s is %s. " % r).encode() for r in records]
    asked = [key for key, values in by_key.items() if values]
    rng.shuffle(asked)
    tail = b" Recall every value."
    answers = []
    for key in asked:
        values = [v for k, v in records if k == key]  # in text order
        question = ("\nThe value of %s" + mention + " is ") if len(values) == 1 else (
            "\nThe values of %s" + mention + " are ")
        answers.append(((question % key).encode(), (", ".join(values) + ".").encode()))
    filler = max(0, length - 1 - len(tail) - sum(map(len, needles)) - sum(len(q) + len(a) for q, a in answers))
    start = rng.randrange(len(text) - filler)
    hay = text[start:start + filler]
    cuts = sorted(rng.randrange(filler + 1) for _ in needles)
    body = b"".join(hay[a:b] + n for a, b, n in zip([0] + cuts, cuts, needles)) + hay[cuts[-1]:] + tail
    ids, spans = [BOS_ID] + list(body), []
    for question, answer in answers:
        ids += list(question)
        spans.append((len(ids), len(ids) + len(answer), ", "))
        ids += list(answer)
    return ids, spans


def ctxbench_binary():
    path = os.environ.get("CTXBENCH_BIN", os.path.join(REPO, "build", "ctxbench"))
    if not os.access(path, os.X_OK):
        sys.exit("train_model.py: %s is not an executable ctxbench (build it, or set CTXBENCH_BIN)" % path)
    return path


def run_samples(task, params, length, first_seed, last_seed, depth=50.0):
    """The samples of cells first_seed..last_seed, or None when the task cannot fill `length`."""
    cmd = [ctxbench_binary(), "samples", task, "--params", json.dumps(params), "--length", str(length),
           "--seeds", "%d-%d" % (first_seed, last_seed), "--depth", "%.1f" % depth, "--out", "-"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if res.returncode != 0:
        if "too short" in res.stderr or "does not fit" in res.stderr or "no room" in res.stderr:
            return None
        sys.exit("train_model.py: %s failed (exit %d): %s" % (" ".join(cmd), res.returncode, res.stderr.strip()))
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


class SampleStore:
    """Shards of samples per (task, length), written once under `cache` and read back in order; shard k of a
    pair covers a fixed seed range, so the data of a run depends only on the seed base, never on timing."""

    def __init__(self, cache, seed_base, haystack):
        self.cache, self.seed_base, self.haystack = cache, seed_base, haystack
        self.words = {k: read_words(k + ".txt") for k in ("adjectives", "nouns", "verbs")}
        self.loaded = {}
        self.text = b" ".join(open(os.path.join(REPO, haystack, name), "rb").read()
                              for name in sorted(os.listdir(os.path.join(REPO, haystack))) if name.endswith(".txt"))
        os.makedirs(cache, exist_ok=True)

    def _path(self, spec, length, shard):
        name = spec.name
        if spec.task == "niah":  # its needles are made here: a cache made by another version of them is not reused
            name += "_" + NEEDLE_VERSION
        return os.path.join(self.cache, "%s_L%d_s%d_%d.jsonl" % (name, length, self.seed_base, shard))

    def _generate(self, spec, length, shard):
        first = self.seed_base + shard * SHARD_SEEDS
        params = dict(spec.params, samples=SAMPLES_PER_CELL)
        if spec.task in ("niah", "ruler"):
            params["haystack"] = self.haystack
        if spec.task not in DEPTH_TASKS:  # passkey and RULER draw their own needle positions
            return run_samples(spec.task, params, length, first, first + SHARD_SEEDS - 1)
        rng = random.Random(first)  # every 8 cells: another depth (and for niah another needle)
        out = []
        for seed in range(first, first + SHARD_SEEDS, 8):
            cell_params = dict(params, **varied_needle(rng, self.words)) if spec.task == "niah" else params
            got = run_samples(spec.task, cell_params, length, seed, seed + 7, depth=rng.uniform(0, 100))
            if got is None:
                return None
            out += got
        return out

    def shard(self, spec, length, shard):
        """The shard's samples ([] when the task cannot fill `length`)."""
        key = (spec.name, length, shard)
        if key not in self.loaded:
            path = self._path(spec, length, shard)
            if not os.path.exists(path):
                samples = self._generate(spec, length, shard) or []
                with open(path + ".tmp", "w") as f:
                    for s in samples:
                        f.write(json.dumps(s) + "\n")
                os.replace(path + ".tmp", path)
            with open(path) as f:
                self.loaded = {k: v for k, v in self.loaded.items() if k[:2] != key[:2]}  # keep one per pair
                self.loaded[key] = [json.loads(line) for line in f if line.strip()]
        return self.loaded[key]

    def drill(self, length, index):
        return make_drill(random.Random("%d:%d:%d" % (self.seed_base, length, index)), length, self.text, self.words)

    def fits(self, spec, length):
        if spec is VT_DRILL:
            return length >= VT_DRILL_MIN_LENGTH
        return bool(self.shard(spec, length, 0))

    def sample(self, spec, length, index):
        per_shard = SHARD_SEEDS * SAMPLES_PER_CELL
        samples = self.shard(spec, length, index // per_shard)
        return samples[index % len(samples)]


def encode_row(store, spec, length, index):
    """Token ids of one batch row and its answer spans (start, end, separator): the answer tokens, and the separator
    after which each further reference of a list starts (None: one reference). A task row is the prompt's ids as the
    runtime reads them (with BOS; exact where the prompt text shows U+FFFD for a cut character), the answer bytes
    and EOS."""
    if spec is DRILL:
        return store.drill(length, index)
    if spec is VT_DRILL:
        return make_vt_drill(random.Random("vt:%d:%d:%d" % (store.seed_base, length, index)), length)
    sample = store.sample(spec, length, index)
    prompt = sample["prompt_ids"]
    ids = prompt + list(spec.answer(sample).encode()) + [EOS_ID]
    separator = {"list": ", ", "text_order": ", ", "words": " "}.get(spec.style) if spec.task != "niah" else None
    return ids, [(len(prompt), len(ids), separator)]


def decision_targets(seq, start, end, separator):
    """Positions in seq of the answer tokens that choose which needle to copy: the first byte of each reference
    (after any leading space). Under teacher forcing the later bytes of a value are found by matching the bytes
    already given, so only these carry the key binding that multikey_1, kv_retrieval and vt need; they are 1 of 8
    answer targets of a 7-digit value and 1 of 37 of a UUID, and runs 8-10 never learnt the binding."""
    first = start
    while first < end - 1 and seq[first] == 32:
        first += 1
    out = [first]
    if separator:
        sep = list(separator.encode())
        out += [p for p in range(first + 1, end) if seq[p - len(sep):p] == sep and seq[p] != 32]
    return out


def make_batch(store, picks):
    """picks: (spec, length, index) per row. Rows are padded with EOS to the longest; padding is no target. The
    answer targets weigh 1, their decision targets DECISION_WEIGHT."""
    rows = [encode_row(store, spec, length, index) for spec, length, index in picks]
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), EOS_ID, dtype=torch.long)
    answer_weight = torch.zeros((len(rows), width - 1))
    real = torch.zeros((len(rows), width - 1), dtype=torch.bool)
    for r, (seq, spans) in enumerate(rows):
        ids[r, :len(seq)] = torch.tensor(seq)
        for start, end, separator in spans:
            answer_weight[r, start - 1:end - 1] = 1.0  # target j is seq[j + 1]
            for p in decision_targets(seq, start, end, separator):
                answer_weight[r, p - 1] = DECISION_WEIGHT
        real[r, :len(seq) - 1] = True
    return ids, answer_weight, real


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def lr_at(step, args):
    """Linear warm-up, then cosine to 10% of the peak at --steps."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def grid_lengths(top):
    return list(range(MIN_LENGTH, top + 1, LENGTH_GRID))


def choose_length(state, rng):
    """Half the batches at the longest length so far, the others at a shorter one of the grid."""
    lengths = grid_lengths(state["top"])
    return lengths[-1] if len(lengths) == 1 or rng.random() < 0.5 else rng.choice(lengths[:-1])


def length_cap(step, args):
    """The longest length allowed at `step`: HOLD_LENGTH, then a linear rise to --length by FULL_FROM."""
    hold = min(HOLD_LENGTH, args.length)
    progress = (step / args.steps - HOLD_UNTIL) / (FULL_FROM - HOLD_UNTIL)
    return int(hold + (args.length - hold) * min(1.0, max(0.0, progress)))


def stage_tasks(state):
    return [t for tasks, _ in STAGES[:state["stage"] + 1] for t in tasks if t in state["tasks"]]


def advance(state, args):
    """Grows the longest length while every joined task is answered well (or the wait is over), and lets the next
    stage's tasks join when it reaches their length."""
    competent = all(state["acc"].get(t, 0) >= RAMP_PASS for t in stage_tasks(state))
    if competent:
        state["last_competent"] = state["step"]
    waited = state["step"] - state["last_competent"]
    if waited == RAMP_MAX_WAIT and state["stage"] > 0:  # the first circuit forms at the shortest length, unhurried
        print("length %d: the wait is over at step %d (%s)" % (state["top"], state["step"], " ".join(
            "%s=%.2f" % (t, state["acc"].get(t, 0)) for t in stage_tasks(state))), flush=True)
    cap = length_cap(state["step"], args)
    if competent or (waited >= RAMP_MAX_WAIT and state["stage"] > 0):
        state["top"] = min(cap, state["top"] + RAMP_TOKENS_PER_STEP)
    if state["step"] >= HOLD_UNTIL * args.steps:
        state["top"] = max(state["top"], cap)
    while state["stage"] + 1 < len(STAGES) and state["top"] >= STAGES[state["stage"] + 1][1]:
        state["stage"] += 1
        state["stage_starts"].append(state["step"])
        print("stage %d (%s) joins at length %d, step %d, %.1f min" % (
            state["stage"], ", ".join(STAGES[state["stage"]][0]), state["top"], state["step"],
            state["elapsed"] / 60), flush=True)


def still_to_learn(state, name):
    """A task's share follows what it has still to learn (1 - its train moving average), down to NEED_FLOOR: a
    task answered right every time keeps a fifth of its weight, so that it is not forgotten, and the rows go to the
    tasks not yet learnt (runs 5-8 gave every task its fixed share, and the multi-needle tasks never had enough)."""
    return max(NEED_FLOOR, 1.0 - state["acc"].get(name, 0.0))


def choose_picks(state, store, length, batch_size, rng):
    specs = [SPEC_BY_NAME[t] for t in stage_tasks(state) if store.fits(SPEC_BY_NAME[t], length)]
    newest = set(STAGES[state["stage"]][0])  # the stage's own tasks count double while it lasts
    weights = [s.weight * (2 if s.name in newest else 1) * still_to_learn(state, s.name) for s in specs]
    picks = []
    for _ in range(batch_size):
        spec = DRILL if rng.random() < DRILL_SHARE else rng.choices(specs, weights=weights)[0]
        key = "%s@%d" % (spec.name, length)
        index = state["cursor"].get(key, 0)
        state["cursor"][key] = index + 1
        picks.append((spec, length, index))
    return picks


def answer_exact(logits, ids, answer_weight):
    """Per row: every answer token (and the EOS) is the argmax, i.e. greedy decoding reproduces it."""
    return ((logits.argmax(-1) == ids[:, 1:]) | (answer_weight == 0)).all(dim=1)


def cpu_has_native_bf16():
    with open("/proc/cpuinfo") as f:
        flags = next((line.split() for line in f if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


# bf16 autocast where the CPU computes in bf16 (AVX-512 BF16, AMX): faster than fp32 there, and fp32 and bf16 models
# reached the same accuracies (TRAINING-NOTES). Without it PyTorch emulates bf16, 3.4x slower than fp32 on an
# AVX2-only EPYC (2026-12-07).
NATIVE_BF16 = cpu_has_native_bf16()


def compute():
    return torch.autocast("cpu", dtype=torch.bfloat16) if NATIVE_BF16 else contextlib.nullcontext()


def train_step(model, opt, ids, answer_weight, real, lm_weight):
    with compute():
        logits = model(ids[:, :-1], block=64)
    logits = logits.float()
    ce = F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), ids[:, 1:].reshape(-1), reduction="none")
    ce = ce.view(answer_weight.shape)
    answer_loss = (ce * answer_weight).sum() / answer_weight.sum()
    lm_loss = ce[real & (answer_weight == 0)].mean()
    opt.zero_grad(set_to_none=True)
    (answer_loss + lm_weight * lm_loss).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return logits.detach(), answer_loss.item(), lm_loss.item()


def new_state(args):
    tasks = args.tasks.split(",")
    unknown = [t for t in tasks if t not in SPEC_BY_NAME]
    if unknown:
        sys.exit("train_model.py: unknown task(s) %s; known: %s" % (", ".join(unknown), ", ".join(SPEC_BY_NAME)))
    return {"step": 0, "stage": 0, "stage_starts": [0], "top": MIN_LENGTH, "last_competent": 0, "elapsed": 0.0,
            "cpu_seconds": 0.0, "acc": {}, "cursor": {}, "tasks": tasks, "heldout": []}


def save_checkpoint(path, model, opt, data_rng, state):
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "data_rng": data_rng.getstate(),
                "torch_rng": torch.get_rng_state(), "state": state}, path + ".tmp")
    os.replace(path + ".tmp", path)


def train(args):
    torch.set_num_threads(args.threads)
    cfg = ModelConfig(num_hidden_layers=args.layers, hidden_size=args.hidden, intermediate_size=args.intermediate,
                      num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                      max_position_embeddings=args.length)
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(cfg)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    data_rng = random.Random(args.seed)
    state = new_state(args)
    if args.checkpoint and os.path.exists(args.checkpoint):
        ck = torch.load(args.checkpoint)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        data_rng.setstate(ck["data_rng"])
        torch.set_rng_state(ck["torch_rng"])
        state = ck["state"]
        print("resumed from step", state["step"], flush=True)
    store = SampleStore(args.data_cache, TRAIN_SEED_BASE + args.seed, TRAIN_HAYSTACK)
    heldout = SampleStore(args.data_cache, HELDOUT_SEED_BASE, "datasets/haystack")
    print("parameters:", sum(p.numel() for p in model.parameters()),
          "compute:", "bf16 autocast" if NATIVE_BF16 else "fp32", flush=True)
    # Training time is the sum of the steps' wall times; a step during which the process was stopped (SIGSTOP,
    # e.g. to time something else on the machine; SIGCONT tells) counts as long as the step before it. Beside it,
    # the process's CPU time (all threads): on an idle 2-core machine it runs at about 1.9x the wall clock, so a
    # ratio far from the thread count shows a step that shared the cores. Both clocks grow under contention (the
    # waiting threads spin), so a run to be timed must have the machine to itself.
    state.setdefault("cpu_seconds", 0.0)  # checkpoints from before this clock
    continued, stop_asked = [], []
    signal.signal(signal.SIGCONT, lambda *_: continued.append(True))
    # SIGTERM / SIGINT end the run after the current step, with a checkpoint, so that no work is lost.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, _: stop_asked.append(number))
    last_ckpt, step_seconds = time.time(), 0.0
    ema = state["acc"]
    while state["step"] < args.steps:
        step, step_start, step_cpu = state["step"], time.time(), time.process_time()
        length = choose_length(state, data_rng)
        picks = choose_picks(state, store, length, max(1, args.batch_tokens // length), data_rng)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        model.train()
        ids, answer_weight, real = make_batch(store, picks)
        logits, answer_loss, lm_loss = train_step(model, opt, ids, answer_weight, real, args.lm_weight)
        ok = answer_exact(logits, ids, answer_weight)
        for name in {spec.name for spec, _, _ in picks}:
            acc = ok[torch.tensor([spec.name == name for spec, _, _ in picks])].float().mean().item()
            ema[name] = 0.9 * ema.get(name, 0.0) + 0.1 * acc  # from 0: one lucky batch does not end a stage
        state["step"] = step + 1
        advance(state, args)
        if step % 10 == 0:
            accs = " ".join("%s=%.2f" % (t, ema[t]) for t in state["tasks"] + [DRILL.name] if t in ema)
            print("step %d t=%.1fm cpu=%.1fm top=%d len=%d lr=%.2e ans=%.3f lm=%.3f %s" % (
                step, state["elapsed"] / 60, state["cpu_seconds"] / 60, state["top"], length,
                opt.param_groups[0]["lr"], answer_loss, lm_loss, accs),
                flush=True)
        done = state["step"] >= args.steps
        if args.eval_every and (state["step"] % args.eval_every == 0 or done):
            state["heldout"].append({"step": state["step"], "accuracy": heldout_accuracy(model, heldout, state, args)})
            print("held-out at step %d: %s" % (state["step"], json.dumps(state["heldout"][-1]["accuracy"])), flush=True)
        if not continued:
            step_seconds = time.time() - step_start
        continued.clear()
        state["elapsed"] += step_seconds
        state["cpu_seconds"] += time.process_time() - step_cpu
        if args.checkpoint and (done or stop_asked or time.time() - last_ckpt > 300):
            save_checkpoint(args.checkpoint, model, opt, data_rng, state)
            last_ckpt = time.time()
        if stop_asked:
            print("stopped by signal %d after step %d%s" % (stop_asked[0], state["step"], (
                "; the checkpoint resumes it" if args.checkpoint else "; no --checkpoint: the run is lost")), flush=True)
            return 128 + stop_asked[0]
    export(model, cfg, args.out, state, args)


@torch.no_grad()
def heldout_accuracy(model, store, state, args):
    """Teacher-forced exact answers (= greedy exact match) on held-out seeds of the evaluation haystack, at the
    training length: a quick monitor; the suites' scores through the C++ runtime are the results."""
    model.eval()
    result = {}
    for name in state["tasks"]:
        spec = SPEC_BY_NAME[name]
        if spec.task is None or not store.fits(spec, args.length):
            continue
        right = 0
        for first in range(0, args.eval_samples, 8):
            picks = [(spec, args.length, i) for i in range(first, min(first + 8, args.eval_samples))]
            ids, answer_weight, _ = make_batch(store, picks)
            with compute():
                logits = model(ids[:, :-1], block=64)
            right += answer_exact(logits.float(), ids, answer_weight).sum().item()
        result[name] = round(right / args.eval_samples, 3)
    return result


# --------------------------------------------------------------------------------------------
# Locret retaining heads (Huang et al. 2024, arXiv 2410.01805; huangyuxiang03/Locret locret/train/train.py and
# data_gen.py): per layer a small MLP on concat(q, k, v) of each token (pre-RoPE, all query heads then the KV
# heads) that predicts, per KV head, the token's causal importance score (CIS): the largest attention probability
# any query head of the group gives the key from any answer token. The model is frozen; only the heads learn.
# --------------------------------------------------------------------------------------------

LOCRET_HIDDEN = 128          # the original's 1024 for a 4096 + 2 x 1024 input; ours is 256 wide
LOCRET_SMOOTH_WEIGHT = 0.0025
LOCRET_LENGTHS = (1024, 2048)


class RetainingHeads(nn.Module):
    def __init__(self, cfg, hidden):
        super().__init__()
        width = (cfg.num_attention_heads + 2 * cfg.num_key_value_heads) * cfg.head_dim
        self.fc1 = nn.ModuleList([nn.Linear(width, hidden, bias=False) for _ in range(cfg.num_hidden_layers)])
        self.fc2 = nn.ModuleList([nn.Linear(hidden, cfg.num_key_value_heads, bias=False)
                                  for _ in range(cfg.num_hidden_layers)])

    def forward(self, layer, qkv):
        """qkv [T, width] -> scores [T, kv heads]."""
        return self.fc2[layer](F.silu(self.fc1[layer](qkv)))


@torch.no_grad()
def qkv_and_cis(model, ids, prompt_len):
    """Per layer: the pre-RoPE concat(q, k, v) of every prompt token [P, width] and its CIS [P, kv heads]: the
    max over the answer tokens' queries and the group's query heads of the attention probability."""
    cfg = model.cfg
    rep = cfg.num_attention_heads // cfg.num_key_value_heads
    captured = []

    def capture(module, inputs, output):
        captured.append(output[0])

    hooks = [getattr(layer.self_attn, name).register_forward_hook(capture)
             for layer in model.model.layers for name in ("q_proj", "k_proj", "v_proj")]
    try:
        model(torch.tensor([ids]))
    finally:
        for hook in hooks:
            hook.remove()
    cos, sin = rope_cos_sin(torch.arange(len(ids)), cfg.head_dim, cfg.rope_theta)
    out = []
    for layer in range(cfg.num_hidden_layers):
        q, k, v = captured[3 * layer:3 * layer + 3]
        qh = apply_rope(q.view(len(ids), cfg.num_attention_heads, cfg.head_dim).transpose(0, 1), cos, sin)
        kh = apply_rope(k.view(len(ids), cfg.num_key_value_heads, cfg.head_dim).transpose(0, 1), cos, sin)
        kh = kh.repeat_interleave(rep, dim=0)
        logits = qh[:, prompt_len:] @ kh.transpose(-1, -2) / math.sqrt(cfg.head_dim)
        future = torch.arange(len(ids))[None, :] > torch.arange(prompt_len, len(ids))[:, None]
        probs = torch.softmax(logits.masked_fill(future, float("-inf")), dim=-1)[:, :, :prompt_len]
        cis = probs.amax(dim=1).view(cfg.num_key_value_heads, rep, prompt_len).amax(dim=1)
        out.append((torch.cat([q, k, v], dim=-1)[:prompt_len], cis.transpose(0, 1)))
    return out


def locret_rows(store, rng, count):
    specs = [SPEC_BY_NAME[name] for name in DEFAULT_TASKS if SPEC_BY_NAME[name].task is not None]
    rows = []
    while len(rows) < count:
        spec, length = rng.choice(specs), rng.choice(LOCRET_LENGTHS)
        if store.fits(spec, length):
            ids, spans = encode_row(store, spec, length, rng.randrange(SHARD_SEEDS * SAMPLES_PER_CELL))
            rows.append((spec.name, ids, spans[0][0]))
    return rows


def locret_loss(heads, features):
    """The original's objective: smooth L1 to the CIS averaged over every score, plus the squared difference of
    neighbouring tokens' scores (summed over layers) times LOCRET_SMOOTH_WEIGHT; and the share of the top 10% of
    keys by CIS that the heads also rank in their top 10% (the original's `acc`)."""
    fit, smooth, overlap, total = 0.0, 0.0, 0, 0
    for layer, (qkv, cis) in enumerate(features):
        scores = heads(layer, qkv)
        fit = fit + F.smooth_l1_loss(scores, cis, reduction="sum")
        smooth = smooth + F.mse_loss(scores[:-1], scores[1:])
        top = max(1, int(0.1 * len(cis)))
        for h in range(cis.shape[1]):
            predicted = set(scores[:, h].topk(top).indices.tolist())
            overlap += len(predicted & set(cis[:, h].topk(top).indices.tolist()))
            total += top
    count = sum(cis.numel() for _, cis in features)
    return fit / count + LOCRET_SMOOTH_WEIGHT * smooth, overlap / total


def train_locret(args):
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    model = load_model(args.model)
    for p in model.parameters():
        p.requires_grad_(False)
    heads = RetainingHeads(model.cfg, LOCRET_HIDDEN)
    opt = torch.optim.AdamW(heads.parameters(), lr=args.lr, betas=(0.9, 0.95))
    warmup = args.steps * 2 // 3  # the original warms up for 2000 of its 3000 steps, then decays linearly to 0
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (args.steps - s) / (args.steps - warmup)))
    store = SampleStore(args.data_cache, TRAIN_SEED_BASE + args.seed, TRAIN_HAYSTACK)
    rows = locret_rows(store, random.Random(args.seed), args.steps)
    start, recent = time.time(), []
    for step, (name, ids, prompt_len) in enumerate(rows):
        loss, acc = locret_loss(heads, qkv_and_cis(model, ids, prompt_len))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_value_(heads.parameters(), 0.5)
        opt.step()
        sched.step()
        recent = (recent + [acc])[-50:]
        if step % 50 == 0 or step == args.steps - 1:
            print("step %d  loss %.6f  top-10%% overlap (last 50) %.3f  %s  %.1f min" % (
                step, loss.item(), sum(recent) / len(recent), name, (time.time() - start) / 60), flush=True)
    tensors = {}
    for layer in range(model.cfg.num_hidden_layers):
        tensors["layers.%d.fc1.weight" % layer] = heads.fc1[layer].weight
        tensors["layers.%d.fc2.weight" % layer] = heads.fc2[layer].weight
    meta = {"format": "locret", "input": "concat(q, k, v) per token, pre-RoPE", "activation": "silu",
            "steps": str(args.steps), "seed": str(args.seed), "lr": str(args.lr),
            "top10_overlap_last50": "%.3f" % (sum(recent) / len(recent))}
    write_safetensors(args.out, tensors, meta)
    print("wrote", args.out, flush=True)


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
            "training_cpu_minutes": "%.1f" % (state["cpu_seconds"] / 60),
            "stage_starts": json.dumps(state["stage_starts"])}
    write_safetensors(os.path.join(out, "model.safetensors"), model.state_dict(), meta)
    with open(os.path.join(out, "training_state.json"), "w") as f:
        json.dump({"steps": state["step"], "minutes": round(state["elapsed"] / 60, 1),
                   "cpu_minutes": round(state["cpu_seconds"] / 60, 1),
                   "stage_starts": state["stage_starts"], "seed": args.seed,
                   "tasks": state["tasks"], "train_accuracy_ema": state["acc"],
                   "heldout_teacher_forced": state["heldout"]}, f, indent=2)
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
# Evaluation of an exported model on held-out samples (the monitor of training, run on its own)
# --------------------------------------------------------------------------------------------


def evaluate(args):
    torch.set_num_threads(args.threads)
    model = load_model(args.out)
    state = new_state(args)
    store = SampleStore(args.data_cache, HELDOUT_SEED_BASE, "datasets/haystack")
    print(json.dumps(heldout_accuracy(model, store, state, args)))


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
    ap.add_argument("mode", choices=["train", "eval", "golden", "locret"])
    ap.add_argument("--out", default="", help="the model directory (locret: the heads' file, MODEL/locret.safetensors)")
    ap.add_argument("--model", default="datasets/models/ctxbench-retrieval", help="locret: the frozen model")
    ap.add_argument("--checkpoint", default="", help="resumed from when it exists; written every 5 minutes")
    ap.add_argument("--data-cache", default="build/train-data", help="where the samples of `ctxbench samples` go")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--intermediate", type=int, default=352)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="default 2900 (locret: 400)")
    ap.add_argument("--lr", type=float, default=None, help="default 3e-3 (locret: 1e-3)")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--batch-tokens", type=int, default=16384)
    ap.add_argument("--lm-weight", type=float, default=0.1, help="weight of the loss on non-answer tokens")
    ap.add_argument("--length", type=int, default=2048, help="training length (the longest samples)")
    ap.add_argument("--eval-every", type=int, default=1000, help="held-out monitor every N steps (0: never)")
    ap.add_argument("--eval-samples", type=int, default=16)
    ap.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    args = ap.parse_args()
    locret = args.mode == "locret"
    args.steps = args.steps or (400 if locret else 2900)
    args.lr = args.lr or (1e-3 if locret else 3e-3)
    if locret:
        args.out = args.out or os.path.join(args.model, "locret.safetensors")
        return train_locret(args)
    args.out = args.out or "datasets/models/ctxbench-retrieval"
    return {"train": train, "eval": evaluate, "golden": golden}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
