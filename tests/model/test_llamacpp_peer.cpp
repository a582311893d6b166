// llama.cpp, which no one here wrote, against the runtime on the same weights and the same token ids: the
// bundled model and tiny checkpoints (Llama 3: GQA 4:1, tied embeddings, Llama 3.1 RoPE scaling as rope_freqs;
// Qwen2: q/k/v biases, tied; Llama with YaRN x4; Phi-3: fused projections, partial rotary, LongRoPE's short and
// long factors) are exported by scripts/export_gguf.py and run by node-llama-cpp's
// prebuilt CPU build (tests/peers-llamacpp, installed by scripts/setup.sh); the greedy tokens of both must be
// identical, and so must the log-probabilities after each prompt (within 1e-3): a random tiny model with tied
// embeddings mostly repeats its last token, so there the distribution is what tells. Both keep K/V in f32 and the
// weights are exported as f32 (the checkpoint's bf16 values exactly), so the only differences left are the order of
// float sums. Skips where the npm peer is not installed, fails in CI.
#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/random.h"
#include "core/source_tree.h"
#include "engines/engine.h"
#include "model/backend.h"
#include "model/llama_generator.h"
#include "tests/helpers.h"

using namespace ctxbench;
using namespace ctxbench::model;
using nlohmann::json;

namespace {

const std::filesystem::path kPeer = source_tree() / "tests/peers-llamacpp";
constexpr int kTokens = 16;

bool peer_installed() { return std::filesystem::exists(kPeer / "node_modules/node-llama-cpp/package.json"); }

// llama.cpp's greedy tokens and first log-probabilities for each prompt (tests/peers-llamacpp/greedy.mjs).
std::vector<json> llamacpp_greedy(const std::string& gguf, const std::vector<std::vector<int>>& prompts,
                                  const testing::TempDir& dir) {
  const std::string ids = dir.file("ids.json");
  testing::write_file(ids, json(prompts).dump());
  std::string output;
  const int status = testing::run_shell(
      fmt::format("cd '{}' && node greedy.mjs '{}' '{}' {} 1 F32 logprobs", kPeer.string(), gguf, ids, kTokens),
      &output);
  INFO(output);
  REQUIRE(status == 0);
  std::vector<json> out;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("{")) out.push_back(json::parse(line));
  }
  REQUIRE(out.size() == prompts.size());
  return out;
}

// The runtime's log-probabilities of the token after `prompt`.
std::vector<double> runtime_logprobs(const LlamaModel& model, const std::vector<int>& prompt) {
  const auto& dense = engines::EngineRegistry::instance().get("dense", "test");
  const auto engine = dense.make(json{{"threads", 1}});
  Sequence seq = model.start(*engine, static_cast<std::int64_t>(prompt.size()), kernels::DType::f32);
  std::vector<float> hidden, logits;
  model.forward(seq, prompt, engines::Phase::prefill, hidden);
  const int d = model.config().hidden_size;
  model.logits(hidden.data() + hidden.size() - d, 1, logits);
  const double top = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (const float l : logits) sum += std::exp(l - top);
  std::vector<double> out;
  for (const float l : logits) out.push_back(l - top - std::log(sum));
  return out;
}

// The runtime's greedy tokens, without the EOS that ends them (llama.cpp's evaluation stops before yielding it).
std::vector<std::vector<int>> runtime_greedy(const std::string& dir, const std::vector<std::vector<int>>& prompts) {
  const auto& dense = engines::EngineRegistry::instance().get("dense", "test");
  LlamaGenerator generator(std::make_shared<const LlamaModel>(dir, json::object(), 1),
                           std::shared_ptr<const engines::Engine>(dense.make(json{{"threads", 1}})));
  const auto& eos = LlamaConfig::from_dir(dir).eos_token_ids;
  std::vector<std::vector<int>> out;
  for (const auto& prompt : prompts) {
    generator.generate_ids(prompt, kTokens);
    std::vector<int> tokens = generator.last_tokens();
    if (!tokens.empty() && std::find(eos.begin(), eos.end(), tokens.back()) != eos.end()) tokens.pop_back();
    out.push_back(std::move(tokens));
  }
  return out;
}

// `checkpoint`: relative to the source tree, or absolute.
void compare(const std::string& checkpoint, const std::vector<std::vector<int>>& prompts, const std::string& dtype) {
  INFO("checkpoint " << checkpoint);
  testing::TempDir dir;
  const std::string gguf = dir.file("model.gguf");
  std::string output;
  const int status =
      testing::run_shell(fmt::format("'{}' '{}' '{}' --dtype {}", (source_tree() / "scripts/export_gguf.py").string(),
                                     (source_tree() / checkpoint).string(), gguf, dtype),
                         &output);
  INFO(output);
  REQUIRE(status == 0);
  const auto theirs = llamacpp_greedy(gguf, prompts, dir);
  const auto ours = runtime_greedy((source_tree() / checkpoint).string(), prompts);
  const LlamaModel model((source_tree() / checkpoint).string(), json::object(), 1);
  int agreeing = 0;
  double largest = 0;  // of the log-probability differences, over the prompts
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    const auto tokens = theirs[i].at("tokens").get<std::vector<int>>();
    INFO("prompt " << i << ": llama.cpp " << json(tokens).dump() << ", ctxbench " << json(ours[i]).dump());
    CHECK(tokens == ours[i]);
    agreeing += tokens == ours[i];
    const std::vector<double> logprobs = runtime_logprobs(model, prompts[i]);
    double worst = 0;
    int compared = 0;
    for (const auto& entry : theirs[i].at("first_logprobs")) {
      const double theirs_logp = entry.at(1).get<double>();
      if (theirs_logp < -60) continue;  // p below 1e-26: float underflow territory
      worst = std::max(worst, std::abs(theirs_logp - logprobs.at(entry.at(0).get<int>())));
      ++compared;
    }
    INFO(compared << " log-probabilities compared");
    CHECK(compared >= 25);  // the distribution, not its top alone
    CHECK(worst < 1e-3);
    largest = std::max(largest, worst);
  }
  std::cout << checkpoint << ": " << agreeing << " of " << prompts.size()
            << " prompts with identical greedy tokens; first-token log-probabilities within " << largest << "\n";
}

// Prompts of the given lengths: BOS (<|begin_of_text|> of make_checkpoint.py's tokenizer), then random ids.
std::vector<std::vector<int>> random_prompts(std::initializer_list<int> lengths, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<std::vector<int>> prompts;
  for (const int length : lengths) {
    std::vector<int>& ids = prompts.emplace_back(1, 298);
    for (int i = 1; i < length; ++i) ids.push_back(static_cast<int>(rng.integer(0, 297)));
  }
  return prompts;
}

std::vector<int> byte_prompt(const std::string& text) {
  std::vector<int> ids = {256};  // the bundled model's BOS
  for (const unsigned char c : text) ids.push_back(c);
  return ids;
}

}  // namespace

TEST_CASE("llama.cpp peer: identical greedy tokens on the GGUF export of the same weights",
          "[model][peers][llamacpp]") {
  if (!peer_installed()) {
    if (testing::running_in_ci()) FAIL(kPeer.string() + ": node-llama-cpp is missing; scripts/setup.sh installs it");
    testing::report_skipped("node-llama-cpp is not installed in tests/peers-llamacpp (scripts/setup.sh)");
    return;
  }
  compare(kBundledModel,
          {byte_prompt("The pass key is 4821. What is the pass key? The pass key is "),
           byte_prompt("The grass is green. The sky is blue. The sun is yellow. Here we go."),
           byte_prompt("There is an important info hidden inside a lot of irrelevant text.")},
          "keep");
  const auto prompts = random_prompts({24, 40, 64}, 7);
  compare("tests/fixtures/checkpoints/llama3-tied-gqa4", prompts, "f32");
  compare("tests/fixtures/checkpoints/qwen2-biases-tied", prompts, "f32");  // llama.cpp's qwen2: q/k/v biases
  compare("tests/fixtures/checkpoints/llama-yarn", prompts, "f32");         // YaRN x4 from 32 positions: all past them
}

// Phi-3's LongRoPE in both of its regimes. Hugging Face takes the long factors when the sequence is longer than
// original_max_position_embeddings, the runtime when the capacity its sequence was started with is, llama.cpp
// when its context is (padded up to a multiple of 256; llama_model::get_rope_factors). With an original length
// of 256 and the context each side asks for (the longest prompt plus the generated tokens), all three take the
// short factors for prompts that fit in 256 positions with their generated tokens (the longest exactly) and the
// long ones for prompts longer than 256. The window equals max_position_embeddings: llama.cpp's phi3 applies none.
TEST_CASE("llama.cpp peer: Phi-3 with LongRoPE's short and long factors and partial rotary",
          "[model][peers][llamacpp]") {
  if (!peer_installed()) {
    if (testing::running_in_ci()) FAIL(kPeer.string() + ": node-llama-cpp is missing; scripts/setup.sh installs it");
    testing::report_skipped("node-llama-cpp is not installed in tests/peers-llamacpp (scripts/setup.sh)");
    return;
  }
  testing::TempDir dir;
  const std::string checkpoint = dir.file("phi3");
  std::string output;
  const int status =
      testing::run_shell(fmt::format("'{}' --arch phi3 --shape tiny --original 256 --window 1024 '{}'",
                                     (source_tree() / "scripts/make_checkpoint.py").string(), checkpoint),
                         &output);
  INFO(output);
  REQUIRE(status == 0);
  REQUIRE(LlamaConfig::from_dir(checkpoint).rope.original_max_position_embeddings == 256);
  compare(checkpoint, random_prompts({24, 120, 256 - kTokens}, 11), "f32");  // short factors
  compare(checkpoint, random_prompts({257, 400}, 12), "f32");                // long factors
}

TEST_CASE("export_gguf.py refuses the sliding windows llama.cpp would not apply", "[model][llamacpp]") {
  for (const char* fixture : {"mistral-window", "phi3-longrope-window"}) {
    INFO(fixture);
    testing::TempDir dir;
    std::string output;
    const int status = testing::run_shell(
        fmt::format("'{}' '{}' '{}'", (source_tree() / "scripts/export_gguf.py").string(),
                    (source_tree() / "tests/fixtures/checkpoints" / fixture).string(), dir.file("model.gguf")),
        &output);
    INFO(output);
    CHECK(status != 0);
    CHECK(output.find("sliding_window: 16 is active") != std::string::npos);
    CHECK(!std::filesystem::exists(dir.file("model.gguf")));
  }
}
