// The model's sliding window (model/windowed_session.h) over engines other than dense: the keys a query
// uses are the engine's choice cut to the window, a budget that covers the context gives dense attention
// under the window, and an engine that places keys at positions of its own is refused beyond the window.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/params.h"
#include "core/source_tree.h"
#include "engines/engine.h"
#include "model/llama_model.h"

using namespace ctxbench;
using Catch::Matchers::Contains;
using nlohmann::json;

namespace {

const std::filesystem::path kMistral = source_tree() / "tests/fixtures/checkpoints/mistral-window";

std::vector<int> golden_tokens(std::size_t case_index) {
  const json golden = json::parse(std::ifstream(kMistral / "golden.json"));
  return golden.at("cases").at(case_index).at("token_ids").get<std::vector<int>>();
}

std::unique_ptr<engines::Engine> make_engine(const std::string& name, json params) {
  params["threads"] = 1;
  return engines::EngineRegistry::instance().get(name, "test").make(params);
}

std::vector<float> prefill_logits(const model::LlamaModel& m, model::Sequence& seq, const std::vector<int>& tokens) {
  std::vector<float> hidden, logits;
  m.forward(seq, tokens, engines::Phase::prefill, hidden);
  m.logits(hidden.data(), static_cast<int>(tokens.size()), logits);
  return logits;
}

// An engine that asks for un-rotated keys (as InfiniteHiP's remapped RoPE modes do).
class UnrotatedEngine final : public engines::Engine {
 public:
  explicit UnrotatedEngine(std::unique_ptr<engines::Engine> inner) : inner_(std::move(inner)) {}
  std::unique_ptr<engines::Session> open(const engines::HeadLayout& layout) const override {
    return inner_->open(layout);
  }
  bool wants_unrotated_kv() const override { return true; }
  std::unique_ptr<engines::Session> open_unrotated(const engines::HeadLayout& layout,
                                                   const engines::RopeSpec&) const override {
    return inner_->open(layout);
  }

 private:
  std::unique_ptr<engines::Engine> inner_;
};

}  // namespace

TEST_CASE("sliding window: a query uses the engine's keys cut to the model's window", "[model][window]") {
  const model::LlamaModel m(kMistral.string());
  const std::int64_t window = m.config().sliding_windows.at(0);
  const auto tokens = golden_tokens(1);
  REQUIRE(static_cast<std::int64_t>(tokens.size()) > window);
  // StreamingLLM keeps 2 sinks and the 6 latest keys: beyond the window the sinks fall out.
  const auto streaming = make_engine("streaming_llm", {{"budget", 8}, {"sinks", 2}});
  auto seq = m.start(*streaming, static_cast<std::int64_t>(tokens.size()), kernels::DType::f32);
  prefill_logits(m, seq, tokens);
  for (std::size_t layer = 0; layer < seq.sessions.size(); ++layer) {
    for (int query = 0; query < static_cast<int>(tokens.size()); ++query) {
      INFO("layer " << layer << ", query " << query);
      std::vector<int> keys;
      for (const auto& r : seq.sessions[layer]->attended(0, query)) {
        for (int k = r.begin; k < r.end; ++k) keys.push_back(k);
      }
      std::vector<int> expected;
      for (int k = 0; k <= query; ++k) {
        const bool kept = k < 2 || k > query - 6;
        if (kept && k > query - window) expected.push_back(k);
      }
      CHECK(keys == expected);
    }
  }
}

TEST_CASE("sliding window: an engine budget covering the context gives the dense result", "[model][window]") {
  const model::LlamaModel m(kMistral.string());
  const auto tokens = golden_tokens(1);
  const auto& info = engines::EngineRegistry::instance().get("streaming_llm", "test");
  const auto covering = make_engine("streaming_llm", info.exact_params(static_cast<int>(tokens.size())));
  const auto dense = make_engine("dense", json::object());
  auto a = m.start(*covering, static_cast<std::int64_t>(tokens.size()), kernels::DType::f32);
  auto b = m.start(*dense, static_cast<std::int64_t>(tokens.size()), kernels::DType::f32);
  const auto sparse_logits = prefill_logits(m, a, tokens), dense_logits = prefill_logits(m, b, tokens);
  double diff = 0;
  for (std::size_t i = 0; i < dense_logits.size(); ++i)
    diff = std::max<double>(diff, std::abs(sparse_logits[i] - dense_logits[i]));
  CHECK(diff < 1e-4);
}

TEST_CASE("sliding window: an engine with positions of its own is refused beyond the window", "[model][window]") {
  const model::LlamaModel m(kMistral.string());
  const UnrotatedEngine engine(make_engine("dense", json::object()));
  const std::int64_t window = m.config().sliding_windows.at(0);
  CHECK_NOTHROW(m.start(engine, window, kernels::DType::f32));
  CHECK_THROWS_AS(m.start(engine, window + 1, kernels::DType::f32), InputError);
  CHECK_THROWS_WITH(m.start(engine, window + 1, kernels::DType::f32), Contains("sliding_window"));
}

TEST_CASE("sliding window: which layers a config windows, and bad window fields by name", "[model][window]") {
  json config = json::parse(std::ifstream(source_tree() / "tests/fixtures/checkpoints/qwen2-biases-tied/config.json"));
  const auto windows = [&](const json& c) { return model::LlamaConfig::from_json(c, "c").sliding_windows; };
  CHECK(windows(config) == std::vector<std::int64_t>{0, 0});  // use_sliding_window false
  config["use_sliding_window"] = true;
  config["sliding_window"] = 8;
  config["max_window_layers"] = 1;
  CHECK(windows(config) == std::vector<std::int64_t>{0, 8});  // from max_window_layers on
  config["layer_types"] = {"sliding_attention", "full_attention"};
  CHECK(windows(config) == std::vector<std::int64_t>{8, 0});
  config["layer_types"] = {"sliding_attention"};
  CHECK_THROWS_WITH(windows(config), Contains("c: layer_types: expected an array of 2 entries"));
  config["layer_types"] = {"sliding_attention", "chunked_attention"};
  CHECK_THROWS_WITH(windows(config), Contains("layer_types[1]") && Contains("chunked_attention"));
  config.erase("layer_types");
  config.erase("sliding_window");
  CHECK_THROWS_WITH(windows(config), Contains("c: sliding_window: expected a positive integer"));
  json mistral = json::parse(std::ifstream(kMistral / "config.json"));
  mistral["sliding_window"] = 0;
  CHECK_THROWS_WITH(windows(mistral), Contains("sliding_window"));
  mistral["sliding_window"] = nullptr;  // HF: no window
  CHECK(windows(mistral) == std::vector<std::int64_t>{0, 0});
}
