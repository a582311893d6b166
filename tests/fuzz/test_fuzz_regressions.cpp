// The fuzz targets' bodies over every input that once made one fail (tests/fixtures/fuzz_regressions, named
// TARGET-what.ext) and over the seed corpora (fuzz/corpus/TARGET): each must parse or fail with the parser's
// documented exception. In the sanitize build this also runs under ASan and UBSan.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/source_tree.h"
#include "fuzz/targets.h"

using namespace ctxbench;

namespace {

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

}  // namespace

TEST_CASE("fuzz regressions: every input that once crashed a parser now parses or fails cleanly", "[fuzz]") {
  int inputs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(source_tree() / "tests/fixtures/fuzz_regressions")) {
    const std::string name = entry.path().filename().string();
    INFO(entry.path().string());
    const auto target = fuzz::targets().find(name.substr(0, name.find('-')));
    REQUIRE(target != fuzz::targets().end());  // the file name starts with a target's name
    CHECK_NOTHROW(target->second(read_bytes(entry.path())));
    ++inputs;
  }
  CHECK(inputs > 0);
}

TEST_CASE("fuzz seed corpora: every target has seeds, and each parses or fails cleanly", "[fuzz]") {
  for (const auto& [name, target] : fuzz::targets()) {
    const std::filesystem::path dir = source_tree() / "fuzz/corpus" / name;
    INFO(dir.string());
    REQUIRE(std::filesystem::is_directory(dir));
    int seeds = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      INFO(entry.path().string());
      CHECK_NOTHROW(target(read_bytes(entry.path())));
      ++seeds;
    }
    CHECK(seeds > 0);
  }
}

TEST_CASE("fuzz findings fail with a message naming the file and field", "[fuzz]") {
  using Catch::Contains;
  const std::string dir = (source_tree() / "tests/fixtures/fuzz_regressions/").string();
  CHECK_THROWS_WITH(model::SafetensorsFile(dir + "safetensors-shape-product-overflow.safetensors"),
                    Contains("tensor \"x\"") && Contains("more elements than can be counted"));
  CHECK_THROWS_WITH(model::SafetensorsFile(dir + "safetensors-shape-bytes-wrap.safetensors"),
                    Contains("more bytes than can be counted"));
  CHECK_THROWS_WITH(model::SafetensorsFile(dir + "safetensors-number-beyond-double.safetensors"),
                    Contains("not valid JSON") && Contains("number overflow"));
  CHECK_THROWS_WITH(model::BpeTokenizer::from_file(dir + "tokenizer-byte-fallback-string.json", "t"),
                    Contains("model.byte_fallback: true or false"));
  CHECK_THROWS_WITH(model::BpeTokenizer::from_file(dir + "tokenizer-id-1e9.json", "t"),
                    Contains("added_tokens[0]") && Contains("4194303"));
  const auto config = [&](const std::string& name) {
    return Json::parse(read_bytes(std::filesystem::path(dir) / name));
  };
  CHECK_THROWS_WITH(kernels::RopeConfig::from_hf_json(config("model_config-head-dim-1e300.json")),
                    Contains("head_dim: expected a positive integer, got 1e+300"));
  CHECK_THROWS_WITH(model::LlamaConfig::from_json(config("model_config-head-dim-2-30.json"), "c"),
                    Contains("head_dim: expected at most 65536"));
  Json model_type = config("model_config-head-dim-2-30.json");
  model_type["model_type"] = 5;
  CHECK_THROWS_WITH(model::LlamaConfig::from_json(model_type, "c"),
                    Contains("c: model_type: expected a string, got 5"));
  const std::pair<const char*, const char*> tokenizer_findings[] = {
      {"tokenizer-added-special-string.json", "added_tokens[0].special: true or false, got \"yes\""},
      {"tokenizer-id-2-31-minus-1.json", "added_tokens[0]: an object with an \"id\" in [0, 4194303]"},
      {"tokenizer-normalizer-type-number.json", "normalizer: null or NFC, got {\"type\":7}"},
      {"tokenizer-number-beyond-double.json", "is not valid JSON"},
      {"tokenizer-pretokenizers-object.json", "pre_tokenizer: ByteLevel, or Sequence"},
  };
  for (const auto& [name, message] : tokenizer_findings) {
    INFO(name);
    CHECK_THROWS_WITH(model::BpeTokenizer::from_file(dir + name, "t"), Contains(name) && Contains(message));
  }
  // The dangling reference made a valid suite expand wrongly: 3 lengths (64, 96, 128) x 4 depths.
  const auto grid = load_suite(dir + "suite-grid-dangling-items.json").cells();
  REQUIRE(grid.size() == 12);
  CHECK(grid.front().context_length == 64);
  CHECK(grid.back().context_length == 128);
  const auto& longbench = tasks::TaskRegistry::instance().get("longbench", "test");
  const Json params = resolve_params(
      longbench.params,
      Json{{"dataset", "hotpotqa"}, {"data_file", dir + "text_records-number-beyond-double.jsonl"}, {"samples", 4}},
      "test");
  const model::ByteTokenizer bytes(258);
  CHECK_THROWS_WITH(
      longbench.make_text_samples({params, 1024, 50, 1}, bytes),
      Contains("text_records-number-beyond-double.jsonl:3: not a JSON value") && Contains("number overflow"));
  CHECK_THROWS_WITH(remote::parse_api_request(remote::Endpoint::chat,
                                              R"({"messages": [{"role": "user", "content": [{"type": 5}]}]})"),
                    Contains("messages[0].content"));
}
