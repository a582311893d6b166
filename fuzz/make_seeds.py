#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets added with the hardening work (fuzz/corpus/NAME): small
files made from the project's fixtures (tests/fixtures, the bundled model's config) and small generated
files. Run from the repository root; the output is committed, so this only needs rerunning to change seeds."""
import json
import os
import shutil
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def write(target, name, data):
    path = os.path.join(CORPUS, target, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None, pad=0):
    """tensors: (name, dtype, shape, raw bytes); data laid out in order, `pad` bytes before the first."""
    header, data, offset = {}, b"\0" * pad, pad
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        data += raw
        offset += len(raw)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def seeds_safetensors():
    f32 = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
    write("safetensors", "f32_bf16_i64.safetensors",
          safetensors([("w", "F32", [2, 3], f32), ("b", "BF16", [4], b"\x80\x3f" * 4), ("n", "I64", [1], b"\x07" + b"\0" * 7)],
                      {"format": "pt"}))
    write("safetensors", "misaligned.safetensors", safetensors([("x", "F32", [3], f32[:12]), ("h", "F16", [1], b"\0\x3c")], pad=2))
    write("safetensors", "scalar_and_empty.safetensors", safetensors([("s", "F32", [], f32[:4]), ("e", "F16", [0, 5], b"")]))
    # The bundled model's header with its first tensors only, shrunk to tiny shapes.
    with open(os.path.join(ROOT, "datasets/models/ctxbench-retrieval/model.safetensors"), "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    names = [n for n in header if n != "__metadata__"][:4]
    write("safetensors", "model_names.safetensors",
          safetensors([(n, header[n]["dtype"], [2, 2], f32[:16]) for n in names]))


def seeds_model_config():
    with open(os.path.join(ROOT, "datasets/models/ctxbench-retrieval/config.json")) as f:
        base = json.load(f)
    write("model_config", "bundled.json", json.dumps(base))
    head_pairs = base["head_dim"] // 2
    variants = {
        "linear": {"rope_type": "linear", "factor": 4.0},
        "dynamic": {"type": "dynamic", "factor": 2.0},
        "yarn": {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 1024, "beta_fast": 32,
                 "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 0.5},
        "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 1024},
        "longrope": {"rope_type": "longrope", "short_factor": [1.0] * head_pairs,
                     "long_factor": [1.0 + i / 4 for i in range(head_pairs)], "original_max_position_embeddings": 256},
    }
    for name, scaling in variants.items():
        write("model_config", f"{name}.json", json.dumps({**base, "rope_scaling": scaling}))
    write("model_config", "rope_parameters.json",
          json.dumps({**{k: v for k, v in base.items() if k not in ("rope_theta", "rope_scaling")},
                      "rope_parameters": {"rope_type": "yarn", "rope_theta": 500000.0, "factor": 4.0,
                                          "original_max_position_embeddings": 512}}))
    write("model_config", "qwen2_partial.json",
          json.dumps({**base, "model_type": "qwen2", "partial_rotary_factor": 0.5, "eos_token_id": [256, 257],
                      "tie_word_embeddings": True, "attention_bias": True}))
    write("model_config", "no_head_dim.json", json.dumps({k: v for k, v in base.items() if k != "head_dim"}))


def byte_symbols():
    """GPT-2's printable alphabet for the 256 bytes."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def seeds_tokenizer():
    sym = byte_symbols()
    vocab = {sym[b]: b for b in range(256)}
    merges = []
    for left, right in [("h", "e"), ("l", "l"), ("he", "ll"), (" ", "w"), ("o", "r"), (" w", "or")]:
        l, r = "".join(sym[ord(c)] for c in left), "".join(sym[ord(c)] for c in right)
        vocab.setdefault(l + r, len(vocab))
        merges.append(f"{l} {r}")
    added = [{"id": len(vocab), "content": "<|begin|>", "special": True},
             {"id": len(vocab) + 1, "content": "<sep>", "special": False, "lstrip": True, "rstrip": True}]
    doc = {"version": "1.0", "added_tokens": added, "normalizer": None,
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
           "decoder": {"type": "ByteLevel"},
           "model": {"type": "BPE", "byte_fallback": False, "ignore_merges": False, "vocab": vocab, "merges": merges}}
    write("tokenizer", "gpt2_style.json", json.dumps(doc))
    llama3_regex = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                    r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    seq = dict(doc, normalizer={"type": "NFC"},
               pre_tokenizer={"type": "Sequence", "pretokenizers": [
                   {"type": "Split", "pattern": {"Regex": llama3_regex}, "behavior": "Isolated", "invert": False},
                   {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]})
    seq["model"] = dict(doc["model"], ignore_merges=True, merges=[m.split(" ") for m in merges])
    write("tokenizer", "llama3_style.json", json.dumps(seq))


def seeds_text_records():
    for folder in ("longbench", "ruler", "text_tasks"):
        src = os.path.join(ROOT, "tests", "fixtures", folder)
        for name in sorted(os.listdir(src)):
            if name.endswith((".jsonl", ".json")) and not name.startswith("pred_"):
                shutil.copy(os.path.join(src, name), os.path.join(CORPUS, "text_records", f"{folder}-{name}"))
    write("text_records", "longbench_record.jsonl",
          json.dumps({"context": "Passage 1: Paris is in France.", "input": "Where is Paris?", "answers": ["France"],
                      "all_classes": None, "length": 7, "_id": "x"}) + "\n")
    write("text_records", "ruler_record.jsonl",
          json.dumps({"index": 0, "input": "The key is 42. What is the key?", "outputs": ["42"],
                      "answer_prefix": " Answer:", "length": 12}) + "\n")
    write("text_records", "longbench_v2.json",
          json.dumps([{"_id": "a", "domain": "d", "sub_domain": "s", "difficulty": "easy", "length": "short",
                       "question": "Which?", "choice_A": "a", "choice_B": "b", "choice_C": "c", "choice_D": "d",
                       "answer": "B", "context": "Some text."}]))


def seeds_sse():
    def chunk(text=None, finish=None, chat=False, usage=None):
        choice = {"index": 0, "finish_reason": finish}
        if chat:
            choice["delta"] = {"content": text} if text is not None else {}
        else:
            choice["text"] = text or ""
        body = {"id": "cmpl-1", "object": "chat.completion.chunk" if chat else "text_completion", "created": 1,
                "model": "m", "choices": [choice] if usage is None else []}
        if usage:
            body["usage"] = usage
        return "data: " + json.dumps(body) + "\n\n"

    # First byte even: completions, odd: chat (see the target).
    write("sse", "completions", ": keep-alive\n\n" + chunk("Hel") + chunk("lo") + chunk(None, "stop") +
          chunk(usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}) + "data: [DONE]\n\n")
    write("sse", "chat_crlf", "event: message\r\nid: 7\r\n" + (chunk("Hi", chat=True) + chunk(None, "length", chat=True))
          .replace("\n", "\r\n") + "data: [DONE]\r\n\r\n")
    write("sse", "error_and_multiline", "data: {\"error\": {\"message\": \"overloaded\"}}\n\ndata: {\"choices\":\ndata: []}\n\nretry: 10\ndata")
    write("sse", "cr_only", "data: {\"choices\": [{\"text\": \"a\", \"finish_reason\": null}]}\r\r:c\rdata: [DONE]\r\r")


def seeds_http_request():
    body = json.dumps({"model": "m", "prompt": "Say hi", "max_tokens": 4, "stop": ["\n"], "stream": True,
                       "stream_options": {"include_usage": True}})
    write("http_request", "completions",
          f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}")
    chat = json.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
                       "max_completion_tokens": 8})
    write("http_request", "chat_chunked_pipelined",
          "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
          f"{len(chat):x}\r\n{chat}\r\n0\r\n\r\n"
          "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
          "POST /v1/completions HTTP/1.1\r\nContent-Length: 24\r\n\r\n{\"prompt\": [[1, 2], \"a\"]}")
    write("http_request", "get_models_http10", "GET /v1/models?x=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")


if __name__ == "__main__":
    seeds_safetensors()
    seeds_model_config()
    seeds_tokenizer()
    seeds_text_records()
    seeds_sse()
    seeds_http_request()
