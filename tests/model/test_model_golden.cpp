// The shipped models' logits equal PyTorch's (scripts/train_model.py golden writes the fixture) within 1e-4
// relative error: the bundled model and the 1K model kept for the studies run on it.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/source_tree.h"
#include "engines/engine.h"
#include "model/backend.h"
#include "model/llama_model.h"
#include "tests/helpers.h"

using namespace ctxbench;
using nlohmann::json;

TEST_CASE("golden: the shipped models' logits equal PyTorch's", "[model][golden]") {
  const std::string model_dir = GENERATE(std::string(model::kBundledModel), "datasets/models/ctxbench-retrieval-1k");
  INFO(model_dir);
  const std::filesystem::path dir = source_tree() / model_dir;
  const auto golden_path = dir / "golden.json";
  REQUIRE(std::filesystem::exists(golden_path));
  const json golden = json::parse(std::ifstream(golden_path));
  const model::LlamaModel m(dir.string());
  const auto tokens = golden.at("token_ids").get<std::vector<int>>();
  const auto engine = engines::EngineRegistry::instance().get("dense", "test").make(json{{"threads", 1}});
  auto seq = m.start(*engine, static_cast<std::int64_t>(tokens.size()), kernels::DType::f32);
  std::vector<float> hidden, logits;
  m.forward(seq, tokens, engines::Phase::prefill, hidden);
  m.logits(hidden.data(), static_cast<int>(tokens.size()), logits);
  const int vocab = m.config().vocab_size;
  REQUIRE(!golden.at("positions").empty());
  for (const int position : golden.at("positions").get<std::vector<int>>()) {
    const auto expected = golden.at("logits").at(std::to_string(position)).get<std::vector<double>>();
    REQUIRE(static_cast<int>(expected.size()) == vocab);
    const float* row = logits.data() + static_cast<std::size_t>(position) * vocab;
    INFO("position " << position);
    CHECK(testing::golden_logit_error(row, expected) < 1e-4);
    // The same greedy choice, unless PyTorch's top two logits are too close to tell apart.
    std::vector<double> sorted = expected;
    std::nth_element(sorted.begin(), sorted.begin() + 1, sorted.end(), std::greater<>());
    const double scale = std::max(std::abs(sorted.front()), std::abs(*std::min_element(sorted.begin(), sorted.end())));
    if (sorted[0] - sorted[1] > 1e-3 * scale) {
      CHECK(std::max_element(row, row + vocab) - row == golden.at("argmax").at(std::to_string(position)).get<int>());
    }
  }
}
