// The fuzz targets' bodies: one function per parser, taking the raw input. The libFuzzer binaries
// (fuzz/fuzz_NAME.cpp) and the regression test over tests/fixtures/fuzz_regressions call the same function.
// Each drives the parser's real entry point (files are written to a scratch directory where the parser reads
// files) and catches only the exception types the parser documents; anything else escapes and is a finding,
// as are crashes, sanitizer reports, hangs and a failed FUZZ_CHECK (a property the parser promises).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "engines/budget.h"
#include "harness/shard.h"
#include "harness/suite.h"
#include "kernels/rope.h"
#include "model/llama_config.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "remote/http_request.h"
#include "remote/openai.h"
#include "remote/sse.h"
#include "tasks/task.h"

// A broken promise of the parser: abort, so that libFuzzer keeps the input (and a test fails loudly).
#define FUZZ_CHECK(condition)                                                                 \
  do {                                                                                        \
    if (!(condition)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

namespace ctxbench::fuzz {

// `data` written to a file in this process's scratch directory (the parsers under test read files); the
// directory is removed when the process exits.
inline std::string scratch_file(const std::string& name, std::string_view data) {
  struct ScratchDir {
    std::filesystem::path path = std::filesystem::temp_directory_path() / ("ctxbench-fuzz-" + std::to_string(getpid()));
    ScratchDir() { std::filesystem::create_directories(path); }
    ~ScratchDir() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  };
  static const ScratchDir dir;
  const std::string path = (dir.path / name).string();
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(data.data(), static_cast<std::streamsize>(data.size()));
  return path;
}

// ---- suite files and small option values ----

inline void suite(std::string_view data) {
  try {
    const auto parsed = load_suite(scratch_file("suite.json", data));
    FUZZ_CHECK(!parsed.cells().empty());
  } catch (const InputError&) {
  }
}

inline void shard(std::string_view data) {
  const std::string text(data);
  try {
    const auto parsed = Shard::parse(text);
    FUZZ_CHECK(parsed.count >= 1 && parsed.index >= 0 && parsed.index < parsed.count);
  } catch (const InputError&) {
  }
  const auto doc = Json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_array() || doc.empty()) return;
  try {
    const auto budget = engines::Budget::parse(doc[0], doc, "fuzz");
    budget.tokens(1000, static_cast<int>(data.size() % 4) - 1);
  } catch (const InputError&) {
  }
}

// ---- model files ----

// A safetensors file: the header is checked and every tensor's bytes lie inside the file (read them all).
inline void safetensors(std::string_view data) {
  const std::string path = scratch_file("model.safetensors", data);
  try {
    const model::SafetensorsFile file(path);
    for (const auto& [name, tensor] : file.tensors()) {
      FUZZ_CHECK(tensor.bytes <= data.size());
      FUZZ_CHECK(tensor.elements() >= 0 && static_cast<std::uint64_t>(tensor.elements()) <= tensor.bytes);
      unsigned sum = 0;
      for (std::size_t i = 0; i < tensor.bytes; ++i) sum += static_cast<unsigned>(tensor.data[i]);
      FUZZ_CHECK(sum <= 255u * tensor.bytes);
      try {
        tensor.dtype();
      } catch (const std::runtime_error&) {
      }
    }
  } catch (const std::runtime_error&) {
  }
}

// config.json: RoPE on its own (std::invalid_argument), then the model directory's config (std::runtime_error),
// also with its rope_scaling given as the suite's override. Tables are made for a config that parses.
inline void model_config(std::string_view data) {
  const auto doc = Json::parse(data, nullptr, false);
  try {
    const auto rope = kernels::RopeConfig::from_hf_json(doc);
    const auto capped = [](std::int64_t n) { return std::min<std::int64_t>(n, std::int64_t{1} << 40); };
    for (const std::int64_t length : {std::int64_t{1}, std::int64_t{4096}, capped(rope.max_position_embeddings) + 1,
                                      capped(rope.original_max_position_embeddings) * 4 + 1}) {
      if (length < 1) continue;
      const auto freqs = rope.frequencies(length);
      FUZZ_CHECK(static_cast<int>(freqs.inv_freq.size()) * 2 == rope.rotary_dim);
      const std::int64_t positions[] = {0, length - 1};
      const auto table = kernels::make_rope_table(freqs, positions);
      FUZZ_CHECK(table.rows() == 2);
    }
  } catch (const InputError&) {
  }
  const std::string dir = std::filesystem::path(scratch_file("config.json", data)).parent_path().string();
  const auto config = [&](const Json& rope_scaling) {
    try {
      const auto c = model::LlamaConfig::from_dir(dir, rope_scaling);
      FUZZ_CHECK(c.num_heads % c.num_kv_heads == 0 && c.rope.head_dim == c.head_dim);
    } catch (const std::runtime_error&) {
    }
  };
  config(Json::object());
  if (doc.is_object() && doc.contains("rope_scaling") && doc["rope_scaling"].is_object()) config(doc["rope_scaling"]);
}

// tokenizer.json; a tokenizer that loads encodes text (including the input itself) and decodes its ids.
// decode(encode(text)) == text for the tokenizer without its added tokens (decode skips special ones, and
// lstrip/rstrip ones eat spaces) and without its normalizer (NFC changes text that is not NFC already), when each
// single byte comes back as itself (a vocabulary without some byte, or a prefix space, loses text by design): then
// byte-level BPE must lose nothing.
inline void check_round_trip(std::string_view data, const std::string* texts, int count) {
  Json doc = Json::parse(data, nullptr, false);
  if (!doc.is_object()) return;
  doc.erase("added_tokens");
  doc.erase("normalizer");
  const std::string path =
      scratch_file("tokenizer-plain.json", doc.dump(-1, ' ', false, Json::error_handler_t::replace));
  try {
    const auto plain = model::BpeTokenizer::from_file(path, "fuzz");
    for (int b = 0; b < 256; ++b) {
      const std::string byte(1, static_cast<char>(b));
      if (plain.decode(plain.encode(byte)) != byte) return;
    }
    for (int i = 0; i < count; ++i) FUZZ_CHECK(plain.decode(plain.encode(texts[i])) == texts[i]);
  } catch (const std::runtime_error&) {
  }
}

inline void tokenizer(std::string_view data) {
  const std::string path = scratch_file("tokenizer.json", data);
  try {
    const auto tok = model::BpeTokenizer::from_file(path, "fuzz");
    const std::string texts[] = {"Hello world, it's 2024!\n\tThe  key is 7361.",
                                 "\xc3\xa9t\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80",
                                 std::string(data.substr(0, 256))};
    for (const auto& text : texts) {
      const auto ids = tok.encode(text);
      for (const int id : ids) FUZZ_CHECK(id >= 0 && id < tok.vocab_size());
      tok.decode(ids);
    }
    check_round_trip(data, texts, 3);
  } catch (const std::runtime_error&) {
  }
}

// ---- task data ----

// LongBench, LongBench v2 and RULER records: the input as the task's data file, made into samples.
inline void text_records(std::string_view data) {
  static const model::ByteTokenizer bytes(258);
  const std::string path = scratch_file("records.jsonl", data);
  const auto samples = [&](const char* task, Json params) {
    const auto& info = tasks::TaskRegistry::instance().get(task, "fuzz");
    params["data_file"] = path;
    params["samples"] = 4;
    const Json resolved = resolve_params(info.params, params, "fuzz");
    try {
      for (const auto& sample : info.make_text_samples({resolved, 1024, 50, 1}, bytes)) {
        FUZZ_CHECK(!sample.references.empty());
      }
    } catch (const InputError&) {
    }
  };
  samples("longbench", {{"dataset", "hotpotqa"}});
  samples("longbench", {{"dataset", "trec"}});
  samples("longbench_v2", Json::object());
  samples("ruler", {{"task", "niah_single_1"}});
  samples("ruler", {{"task", "qa_1"}});
}

// ---- remote ----

// An SSE stream as the remote engine reads it: events (the same whether the bytes come at once or in two
// reads), then each event's JSON as a streamed chunk (ProtocolError or the server's error: std::runtime_error).
inline void sse(std::string_view data) {
  if (data.empty()) return;
  const auto endpoint = data[0] & 1 ? remote::Endpoint::chat : remote::Endpoint::completions;
  const auto whole = remote::parse_sse(data);
  const std::size_t cut = static_cast<unsigned char>(data[0]) * data.size() / 256;
  auto first = remote::parse_sse(data.substr(0, cut));
  const auto second = remote::parse_sse(first.rest + std::string(data.substr(cut)));
  first.events.insert(first.events.end(), second.events.begin(), second.events.end());
  FUZZ_CHECK(first.events == whole.events);
  FUZZ_CHECK(second.rest == whole.rest);
  for (const auto& event : whole.events) {
    if (event.data == "[DONE]") continue;
    const auto chunk = Json::parse(event.data, nullptr, false);
    if (chunk.is_discarded()) continue;  // the client reports malformed JSON as a ProtocolError itself
    try {
      remote::parse_reply(endpoint, chunk, true);
    } catch (const std::runtime_error&) {
    }
  }
}

// Requests as serve reads them, one after another from the same bytes (keep-alive), under serve's limits
// and under small ones; a complete request's body is read as both endpoints' JSON (ApiError).
inline void http_request(std::string_view data) {
  for (const remote::RequestLimits limits : {remote::RequestLimits{}, remote::RequestLimits{256, 1024}}) {
    std::string_view rest = data;
    for (int i = 0; i < 8 && !rest.empty(); ++i) {
      const auto parsed = remote::parse_http_request(rest, limits);
      if (parsed.state == remote::HttpParse::State::error) {
        FUZZ_CHECK(parsed.status == 400 || parsed.status == 413 || parsed.status == 431);
        break;
      }
      if (parsed.state != remote::HttpParse::State::complete) break;
      FUZZ_CHECK(parsed.consumed > 0 && parsed.consumed <= rest.size());
      FUZZ_CHECK(parsed.request.body().size() <= limits.body_bytes);
      for (const auto endpoint : {remote::Endpoint::completions, remote::Endpoint::chat}) {
        try {
          remote::parse_api_request(endpoint, parsed.request.body());
        } catch (const remote::ApiError& e) {
          FUZZ_CHECK(e.status == 400);
        }
      }
      rest.remove_prefix(parsed.consumed);
    }
  }
}

// Every target by name: the name is the binary's (fuzz_NAME), the corpus directory's and the prefix of a
// regression input's file name.
inline const std::map<std::string, std::function<void(std::string_view)>>& targets() {
  static const std::map<std::string, std::function<void(std::string_view)>> all = {{"suite", suite},
                                                                                   {"shard", shard},
                                                                                   {"safetensors", safetensors},
                                                                                   {"model_config", model_config},
                                                                                   {"tokenizer", tokenizer},
                                                                                   {"text_records", text_records},
                                                                                   {"sse", sse},
                                                                                   {"http_request", http_request}};
  return all;
}

}  // namespace ctxbench::fuzz
