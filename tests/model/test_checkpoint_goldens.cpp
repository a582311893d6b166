// The tiny checkpoints of tests/fixtures/checkpoints/ (scripts/make_fixture_checkpoints.sh: every
// architecture, llama3/YaRN/LongRoPE scaling, bf16 weights, Qwen2 biases, tied embeddings, GQA 4:1, Mistral and
// Phi-3 sliding windows) against golden logits of scripts/reference_forward.py, an independent float64
// forward pass written from the Hugging Face modeling code. A missing golden file fails.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/source_tree.h"
#include "engines/engine.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "tests/helpers.h"

using namespace ctxbench;
using nlohmann::json;

namespace {

const std::vector<std::string> kCheckpoints = {"llama3-tied-gqa4", "llama-yarn", "qwen2-biases-tied", "mistral-window",
                                               "phi3-longrope-window"};

std::filesystem::path checkpoint_dir(const std::string& name) {
  return source_tree() / "tests/fixtures/checkpoints" / name;
}

std::unique_ptr<engines::Engine> engine(const std::string& name, json params = json::object()) {
  params["threads"] = 1;
  return engines::EngineRegistry::instance().get(name, "test").make(params);
}

// Logits [tokens][vocab]: a prefill of the first `prefill` tokens, then one decode step per remaining token.
std::vector<float> run(const model::LlamaModel& m, const engines::Engine& e, const std::vector<int>& tokens,
                       std::size_t prefill) {
  auto seq = m.start(e, static_cast<std::int64_t>(tokens.size()), kernels::DType::f32);
  const int vocab = m.config().vocab_size;
  std::vector<float> all, hidden, logits;
  for (std::size_t at = 0; at < tokens.size();) {
    const std::size_t n = at == 0 ? prefill : 1;
    m.forward(seq, std::span(tokens).subspan(at, n), at == 0 ? engines::Phase::prefill : engines::Phase::decode,
              hidden);
    m.logits(hidden.data(), static_cast<int>(n), logits);
    all.insert(all.end(), logits.begin(), logits.end());
    at += n;
  }
  REQUIRE(all.size() == tokens.size() * static_cast<std::size_t>(vocab));
  return all;
}

void check_case(const json& golden_case, const std::vector<float>& logits, int vocab, std::size_t from) {
  for (const int position : golden_case.at("positions").get<std::vector<int>>()) {
    if (static_cast<std::size_t>(position) < from) continue;
    const auto expected = golden_case.at("logits").at(std::to_string(position)).get<std::vector<double>>();
    REQUIRE(static_cast<int>(expected.size()) == vocab);
    const float* row = logits.data() + static_cast<std::size_t>(position) * vocab;
    INFO("position " << position);
    CHECK(testing::golden_logit_error(row, expected) < 1e-4);
  }
}

}  // namespace

TEST_CASE("checkpoints: every tiny checkpoint matches the independent reference's logits", "[model][golden]") {
  for (const std::string& name : kCheckpoints) {
    INFO("checkpoint " << name);
    const auto dir = checkpoint_dir(name);
    const auto golden_path = dir / "golden.json";
    REQUIRE(std::filesystem::exists(golden_path));  // scripts/make_fixture_checkpoints.sh writes it
    const json golden = json::parse(std::ifstream(golden_path));
    const model::LlamaModel m(dir.string());
    const auto dense = engine("dense");
    REQUIRE(!golden.at("cases").empty());
    for (const json& c : golden.at("cases")) {
      const auto tokens = c.at("token_ids").get<std::vector<int>>();
      INFO(tokens.size() << " tokens, one prefill");
      check_case(c, run(m, *dense, tokens, tokens.size()), m.config().vocab_size, 0);
      INFO("then half prefilled and the rest decoded token by token");
      check_case(c, run(m, *dense, tokens, tokens.size() / 2), m.config().vocab_size, tokens.size() / 2);
    }
  }
}

TEST_CASE("checkpoints: the fixtures cover every architecture and the configurations they are named for",
          "[model][golden]") {
  std::map<std::string, model::LlamaConfig> configs;
  for (const std::string& name : kCheckpoints)
    configs[name] = model::LlamaConfig::from_dir(checkpoint_dir(name).string());
  CHECK(configs["llama3-tied-gqa4"].rope.type == kernels::RopeType::llama3);
  CHECK(configs["llama3-tied-gqa4"].tie_word_embeddings);
  CHECK(configs["llama3-tied-gqa4"].num_heads == 4 * configs["llama3-tied-gqa4"].num_kv_heads);
  CHECK(configs["llama-yarn"].rope.type == kernels::RopeType::yarn);
  CHECK(configs["qwen2-biases-tied"].model_type == "qwen2");
  CHECK(configs["mistral-window"].sliding_windows == std::vector<std::int64_t>{16, 16});
  const model::LlamaConfig& phi3 = configs["phi3-longrope-window"];
  CHECK(phi3.rope.type == kernels::RopeType::longrope);
  CHECK(phi3.rope.rotary_dim < phi3.head_dim);
  CHECK(phi3.fused_projections());
  CHECK(phi3.sliding_windows == std::vector<std::int64_t>{16, 16});
  // The golden cases straddle the LongRoPE switch (short factors up to the original context, long beyond).
  const json golden = json::parse(std::ifstream(checkpoint_dir("phi3-longrope-window") / "golden.json"));
  std::vector<std::int64_t> lengths;
  for (const json& c : golden.at("cases")) lengths.push_back(static_cast<std::int64_t>(c.at("token_ids").size()));
  CHECK(std::ranges::any_of(lengths, [&](auto n) { return n <= phi3.rope.original_max_position_embeddings; }));
  CHECK(std::ranges::any_of(lengths, [&](auto n) { return n > phi3.rope.original_max_position_embeddings; }));
}

TEST_CASE("checkpoints: the generated tokenizer loads and round-trips text", "[model][tokenizer]") {
  const auto dir = checkpoint_dir("llama3-tied-gqa4");
  const auto tokenizer = model::load_tokenizer(dir.string(), model::LlamaConfig::from_dir(dir.string()).vocab_size);
  const std::string text = "What is the pass key? The pass key is 31415.";
  const auto ids = tokenizer->encode(text);
  CHECK(ids.size() < text.size());  // the merges apply
  CHECK(tokenizer->decode(ids) == text);
}
