// Safetensors loading: dtypes and values, sharded checkpoints, memory-mapped views, and the errors for
// corrupt or truncated files, missing tensors and shapes that disagree with the config -- each naming the
// file and the tensor.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "model/llama_config.h"
#include "model/llama_model.h"
#include "model/safetensors.h"
#include "tests/helpers.h"
#include "tests/test_model_fixture.h"

using namespace ctxbench;
using namespace ctxbench::testing;
using Catch::Contains;

namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

std::string header_length(std::uint64_t n) { return std::string(reinterpret_cast<const char*>(&n), 8); }

}  // namespace

TEST_CASE("safetensors: F32, F16 and BF16 tensors read back as written", "[safetensors]") {
  TempDir dir;
  Rng rng(1);
  std::map<std::string, RawTensor> tensors;
  std::map<std::string, std::vector<double>> values;
  const std::vector<std::pair<std::string, kernels::DType>> kinds = {
      {"a.f32", kernels::DType::f32}, {"b.f16", kernels::DType::f16}, {"c.bf16", kernels::DType::bf16}};
  for (const auto& [name, dtype] : kinds) {
    std::vector<double> v(3 * 5);
    for (double& x : v) x = rng.normal();
    tensors[name] = encode_tensor(v, {3, 5}, dtype);
    values[name] = v;
  }
  // A one-byte tensor first puts the others at odd offsets: views must still be aligned.
  tensors["0.odd"] = {"U8", {1}, std::string(1, '\x7f')};
  write_safetensors(dir.file("x.safetensors"), tensors);
  const model::SafetensorsFile file(dir.file("x.safetensors"));
  CHECK(file.tensors().size() == 4);
  for (const auto& [name, dtype] : kinds) {
    const model::TensorView* t = file.find(name);
    REQUIRE(t);
    CHECK(t->shape == std::vector<std::int64_t>{3, 5});
    CHECK(t->dtype() == dtype);
    CHECK(reinterpret_cast<std::uintptr_t>(t->data) % kernels::dtype_bytes(dtype) == 0);
    std::vector<float> row(5);
    for (int r = 0; r < 3; ++r) {
      model::load_row({t->data, dtype, 3, 5}, r, row.data());
      for (int c = 0; c < 5; ++c) CHECK(row[c] == static_cast<float>(values[name][r * 5 + c]));
    }
  }
  CHECK_THROWS_WITH(file.find("0.odd")->dtype(), Contains("0.odd") && Contains("U8"));
  CHECK(file.find("missing") == nullptr);
}

TEST_CASE("safetensors: corrupt and truncated files name the file (and tensor)", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  std::vector<double> v = {1, 2, 3, 4};
  write_safetensors(path, {{"w", encode_tensor(v, {2, 2}, kernels::DType::f32)}});
  const std::string good = read_all(path);
  const auto expect_error = [&](const std::string& bytes, const std::string& what) {
    write_bytes(path, bytes);
    CHECK_THROWS_WITH(model::SafetensorsFile(path), Contains(path) && Contains(what));
  };
  expect_error("", "shorter than the 8-byte header");
  expect_error(good.substr(0, 5), "shorter than the 8-byte header");
  expect_error(good.substr(0, 20), "truncated header");
  expect_error(header_length(1ull << 40) + good.substr(8), "corrupt or truncated header");
  expect_error(header_length(4) + "{\"w\"", "not valid JSON");
  expect_error(header_length(2) + "[]", "JSON object");
  // Data cut short: the tensor's offsets run past the end.
  expect_error(good.substr(0, good.size() - 4), "tensor \"w\"");
  expect_error(good.substr(0, good.size() - 4), "outside");
  // Offsets that disagree with shape x dtype.
  const auto with_header = [](const json& header) {
    const std::string text = header.dump();
    return header_length(text.size()) + text + std::string(16, '\0');
  };
  expect_error(with_header({{"w", {{"dtype", "F32"}, {"shape", {2, 2}}, {"data_offsets", {0, 12}}}}}), "16 expected");
  expect_error(with_header({{"w", {{"dtype", "F33"}, {"shape", {2}}, {"data_offsets", {0, 8}}}}}), "unknown dtype F33");
  expect_error(with_header({{"w", {{"dtype", "F32"}, {"shape", {-2}}, {"data_offsets", {0, 8}}}}}), "non-negative");
  expect_error(with_header({{"w", {{"dtype", "F32"}, {"shape", {2}}}}}), "data_offsets");
  expect_error(with_header({{"w", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {8, 4}}}}}), "outside");
  CHECK_THROWS_WITH(model::SafetensorsFile(dir.file("absent.safetensors")), Contains("absent.safetensors"));
}

namespace {

TinyModel small_model(const std::string& dir, std::uint64_t seed = 3) {
  return write_tiny_model(dir, TinySpec{.layers = 2}, seed);
}

// Rewrites dir/model.safetensors through `edit`.
void edit_tensors(const TinyModel& m, const std::string& dir,
                  const std::function<void(std::map<std::string, RawTensor>&)>& edit) {
  TinyModel copy{m.spec, m.config, {}};
  auto tensors = tiny_tensors(copy, 3);
  edit(tensors);
  write_safetensors(dir + "/model.safetensors", tensors);
}

}  // namespace

TEST_CASE("model loading: a missing tensor or a shape that disagrees with the config names file and tensor",
          "[safetensors][model]") {
  TempDir dir;
  const TinyModel m = small_model(dir.file(""));
  const std::string file = dir.file("model.safetensors");

  edit_tensors(m, dir.file(""), [](auto& t) { t.erase("model.layers.1.mlp.up_proj.weight"); });
  CHECK_THROWS_WITH(model::LlamaModel(dir.file("")),
                    Contains(file) && Contains("model.layers.1.mlp.up_proj.weight") && Contains("missing"));

  edit_tensors(m, dir.file(""), [](auto& t) { t.erase("lm_head.weight"); });
  CHECK_THROWS_WITH(model::LlamaModel(dir.file("")), Contains("lm_head.weight") && Contains("missing"));

  edit_tensors(m, dir.file(""), [](auto& t) {
    std::vector<double> v(16 * 32, 0.5);
    t["model.layers.0.self_attn.k_proj.weight"] = encode_tensor(v, {32, 16}, kernels::DType::f32);
  });
  CHECK_THROWS_WITH(model::LlamaModel(dir.file("")), Contains(file) &&
                                                         Contains("model.layers.0.self_attn.k_proj.weight") &&
                                                         Contains("[32, 16]") && Contains("[16, 32]"));

  edit_tensors(m, dir.file(""), [](auto& t) { t["model.norm.weight"] = {"I32", {32}, std::string(32 * 4, '\0')}; });
  CHECK_THROWS_WITH(model::LlamaModel(dir.file("")), Contains("model.norm.weight") && Contains("I32"));

  // attention_bias in the config makes the biases required.
  edit_tensors(m, dir.file(""), [](auto&) {});
  json config = m.config;
  config["attention_bias"] = true;
  std::ofstream(dir.file("config.json")) << config.dump();
  CHECK_THROWS_WITH(model::LlamaModel(dir.file("")), Contains("model.layers.0.self_attn.q_proj.bias"));
  std::ofstream(dir.file("config.json")) << m.config.dump();
  CHECK_NOTHROW(model::LlamaModel(dir.file("")));

  std::filesystem::remove(file);
  CHECK_THROWS_WITH(model::LlamaModel(dir.file("")), Contains("model.safetensors") && Contains("not found"));
}

TEST_CASE("model loading: sharded checkpoints with an index load like one file", "[safetensors][model]") {
  TempDir single, sharded;
  const TinyModel m = small_model(single.file(""), 8);
  TinyModel copy{m.spec, m.config, {}};
  const auto tensors = tiny_tensors(copy, 8);
  std::map<std::string, RawTensor> first, second;
  json weight_map = json::object();
  for (const auto& [name, t] : tensors) {
    const bool early = name.find("layers.1") == std::string::npos && name != "lm_head.weight";
    (early ? first : second)[name] = t;
    weight_map[name] = early ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_safetensors(sharded.file("model-00001-of-00002.safetensors"), first);
  write_safetensors(sharded.file("model-00002-of-00002.safetensors"), second);
  std::ofstream(sharded.file("model.safetensors.index.json"))
      << json{{"metadata", json::object()}, {"weight_map", weight_map}}.dump();
  std::ofstream(sharded.file("config.json")) << m.config.dump();

  const model::LlamaModel a(single.file("")), b(sharded.file(""));
  const auto engine = engines::EngineRegistry::instance().get("dense", "test").make(json{{"threads", 1}});
  const std::vector<int> tokens = {3, 1, 4, 1, 5, 9, 2, 6};
  std::vector<float> ha, hb, la, lb;
  auto sa = a.start(*engine, 8, kernels::DType::f32);
  auto sb = b.start(*engine, 8, kernels::DType::f32);
  a.forward(sa, tokens, engines::Phase::prefill, ha);
  b.forward(sb, tokens, engines::Phase::prefill, hb);
  a.logits(ha.data(), 8, la);
  b.logits(hb.data(), 8, lb);
  CHECK(la == lb);

  // The index names a shard that lacks the tensor.
  weight_map["model.norm.weight"] = "model-00002-of-00002.safetensors";
  std::ofstream(sharded.file("model.safetensors.index.json")) << json{{"weight_map", weight_map}}.dump();
  CHECK_THROWS_WITH(model::LlamaModel(sharded.file("")),
                    Contains("model-00002-of-00002.safetensors") && Contains("model.norm.weight"));
  std::ofstream(sharded.file("model.safetensors.index.json")) << "{\"weight_map\": 3}";
  CHECK_THROWS_WITH(model::LlamaModel(sharded.file("")), Contains("model.safetensors.index.json"));
}

TEST_CASE("model config: missing or invalid fields are named with the file", "[safetensors][model]") {
  TempDir dir;
  const TinyModel m = small_model(dir.file(""));
  const auto expect_error = [&](json config, const std::string& what) {
    std::ofstream(dir.file("config.json")) << config.dump();
    CHECK_THROWS_WITH(model::LlamaModel(dir.file("")), Contains("config.json") && Contains(what));
  };
  json c = m.config;
  c.erase("hidden_size");
  expect_error(c, "hidden_size");
  c = m.config, c["num_key_value_heads"] = 3;
  expect_error(c, "num_key_value_heads");
  c = m.config, c["hidden_act"] = "gelu";
  expect_error(c, "hidden_act");
  c = m.config, c["model_type"] = "gpt2";
  expect_error(c, "model_type");
  c = m.config, c["rope_scaling"] = {{"rope_type", "yarn"}};
  expect_error(c, "factor");
  c = m.config, c["eos_token_id"] = 999;
  expect_error(c, "eos_token_id");
  std::ofstream(dir.file("config.json")) << "{";
  CHECK_THROWS_WITH(model::LlamaModel(dir.file("")), Contains("config.json") && Contains("JSON"));
  std::filesystem::remove(dir.file("config.json"));
  CHECK_THROWS_WITH(model::LlamaModel(dir.file("")), Contains("config.json"));
}
