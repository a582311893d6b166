// Memory planning (model/memory_plan.h): the estimate against the arithmetic of a tiny checkpoint, the
// refusal of a cell that cannot fit, and the estimate stored beside the measured peak.
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/source_tree.h"
#include "engines/engine.h"
#include "harness/isolation.h"
#include "harness/suite.h"
#include "model/backend.h"
#include "model/llama_generator.h"
#include "model/memory_plan.h"

using namespace ctxbench;
using namespace ctxbench::model;
using Catch::Matchers::Contains;
using nlohmann::json;

namespace {

const std::string kFixture = "tests/fixtures/checkpoints/llama3-tied-gqa4";

std::shared_ptr<const engines::Engine> engine(const std::string& name, json params = json::object()) {
  params["threads"] = 1;
  return std::shared_ptr<const engines::Engine>(engines::EngineRegistry::instance().get(name, "test").make(params));
}

// Bytes of the tensors' data in a single-file checkpoint: the file less its 8-byte length and JSON header.
std::uint64_t safetensors_data_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::uint64_t header = 0;
  in.read(reinterpret_cast<char*>(&header), sizeof header);
  return std::filesystem::file_size(file) - 8 - header;
}

}  // namespace

TEST_CASE("memory plan: a tiny checkpoint's weights and KV cache by hand", "[model][memory]") {
  const LlamaModel model((source_tree() / kFixture).string(), json::object(), 1);
  const LlamaConfig& c = model.config();  // 2 layers, hidden 32, 1 KV head of 8
  const auto dense = engine("dense");
  const MemoryPlan plan = plan_memory(model, *dense, 1024, 512, kernels::DType::f32);

  // Weights: the tensors in place, and the norms (2 per layer and the final one) copied to fp32.
  CHECK(plan.weights == safetensors_data_bytes(source_tree() / kFixture / "model.safetensors") +
                            (2 * c.num_layers + 1) * c.hidden_size * 4);
  // 1024 keys in two appends of 512: each layer's cache holds exactly 1024 K and V rows of 8 floats, and while
  // the last layer grows its old 512-key buffers are still there: 1.25x what the sessions report.
  const std::uint64_t key_row = 1 * 8 * 4;
  CHECK(plan.kv_keys == 2 * 1024);
  CHECK(plan.kv_cache == 2 * 2 * key_row * 1024 + 2 * key_row * 512);

  Sequence seq = model.start(*dense, 1024, kernels::DType::f32);
  std::vector<int> ids(512, 65);
  std::vector<float> hidden;
  model.forward(seq, ids, engines::Phase::prefill, hidden);
  model.forward(seq, ids, engines::Phase::prefill, hidden);
  std::uint64_t resident = 0;
  for (const auto& s : seq.sessions) resident += s->stats().kv_bytes_resident;
  CHECK(resident == 2 * 2 * key_row * 1024);
  CHECK(static_cast<double>(plan.kv_cache) == Approx(1.25 * static_cast<double>(resident)));
  // Activations: 512 rows of the per-token buffers and 32 rows of logits, below a MiB at this size.
  CHECK(plan.activations > 512u * c.hidden_size * 4);
  CHECK(plan.activations < (1u << 20));
}

TEST_CASE("memory plan: an engine that evicts during the prompt is planned at its budget", "[model][memory]") {
  const LlamaModel model((source_tree() / kFixture).string(), json::object(), 1);
  const MemoryPlan full = plan_memory(model, *engine("dense"), 100000, 512, kernels::DType::f32);
  const MemoryPlan streaming =
      plan_memory(model, *engine("streaming_llm", {{"budget", 256}}), 100000, 512, kernels::DType::f32);
  CHECK(full.kv_keys == 2 * 100000);
  CHECK(streaming.kv_keys == 2 * (256 + 512));  // the budget, and one chunk beside it until it is evicted
  CHECK(streaming.kv_cache < full.kv_cache / 100);
  // bf16 halves the cache.
  CHECK(plan_memory(model, *engine("dense"), 100000, 512, kernels::DType::bf16).kv_cache * 2 == full.kv_cache);
}

TEST_CASE("memory plan: a plan over the room is refused with the estimate, its parts and what to change",
          "[model][memory]") {
  const LlamaModel model((source_tree() / kFixture).string(), json::object(), 1);
  const MemoryPlan plan = plan_memory(model, *engine("dense"), 4096, 512, kernels::DType::f32);
  CHECK_NOTHROW(check_fits(plan, {plan.total(), "a room just large enough"}, "m"));
  CHECK_THROWS_AS(check_fits(plan, {plan.total() - 1, "a test's room"}, "m"), InputError);
  CHECK_THROWS_WITH(check_fits(plan, {1 << 20, "a test's room"}, "m"),
                    Contains("m: does not fit in memory: the estimate is") && Contains("weights") &&
                        Contains("KV cache") && Contains("for 8192 keys") && Contains("activations") &&
                        Contains("a test's room leaves 1.0 MiB") && Contains("shorter context"));
  const auto room = memory_room(model);
  REQUIRE(room);  // /proc is there on Linux
  CHECK(room->bytes > plan.total());
}

TEST_CASE("memory plan: a model-level cell over its memory limit fails before it runs", "[model][memory][limits]") {
  // 2M tokens of the bundled byte-level model: a KV cache of gigabytes against a 1024 MB address-space limit.
  const auto suite = parse_suite(json::parse(R"({"name": "m", "engines": [{"name": "dense", "params": {"threads": 1}}],
      "tasks": [{"name": "passkey", "params": {"samples": 1}}], "context_lengths": [2000000],
      "limits": {"cell_memory_mb": 1024}})"),
                                 "m.json");
  CHECK_THROWS_WITH(run_cell_isolated(suite.cells().at(0), suite.limits),
                    Contains("does not fit in memory: the estimate is") && Contains("KV cache") &&
                        Contains("address-space limit 1.00 GiB"));
}

TEST_CASE("memory plan: the estimate is stored beside the peak resident set", "[model][memory]") {
  LlamaGenerator generator(std::make_shared<const LlamaModel>((source_tree() / kFixture).string(), json::object(), 1),
                           engine("dense"));
  TextSample sample;
  sample.prompt = "The pass key is 4821. What is it?";
  sample.max_new_tokens = 3;
  const Generation g = generator.generate(sample);
  const LlamaModel model((source_tree() / kFixture).string(), json::object(), 1);
  const double planned =
      static_cast<double>(plan_memory(model, *engine("dense"), g.prompt_tokens + 3, 512, kernels::DType::f32).total());
  std::map<std::string, double> stored;
  for (const auto& m : generator.extra_measurements()) stored[m.metric] = m.value();
  CHECK(stored.at("memory_estimate_bytes") == planned);
  CHECK(stored.at("peak_rss_bytes") > planned);  // the process holds the program and the test binary besides
}
