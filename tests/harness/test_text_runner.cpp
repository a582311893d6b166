// The text path of the runner with a test generator and a test task registered here: samples are generated,
// answered, scored, and stored with their predictions.
#include <catch2/catch.hpp>

#include "harness/runner.h"
#include "model/backend.h"
#include "tasks/task.h"
#include "tests/helpers.h"
#include "tests/key_task.h"

using namespace ctxbench;

namespace {

class ByteTokenizer final : public Tokenizer {
 public:
  std::string name() const override { return "test-bytes"; }
  std::vector<int> encode(std::string_view text) const override { return {text.begin(), text.end()}; }
  std::string decode(const std::vector<int>& tokens) const override { return {tokens.begin(), tokens.end()}; }
};

// Answers with the word after "key is " in the prompt, or "?" when `wrong` is set.
class LookupGenerator final : public Generator {
 public:
  explicit LookupGenerator(bool wrong) : wrong_(wrong) {}
  const Tokenizer& tokenizer() const override { return tokenizer_; }
  Generation generate(const TextSample& sample) override {
    const auto at = sample.prompt.find("key is ") + 7;
    std::string answer = wrong_ ? "?" : sample.prompt.substr(at, sample.prompt.find('.', at) - at);
    return {answer, static_cast<int>(sample.prompt.size()), 1, 0.5, 0.0, 0.25, 0.5};
  }
  std::vector<double> token_logprobs(const std::vector<int>&) override { throw std::runtime_error("unsupported"); }

 private:
  ByteTokenizer tokenizer_;
  bool wrong_;
};

const engines::RegisterEngine test_engine{{
    .name = "test_lookup",
    .description = "test generator",
    .params = {{.name = "wrong", .type = ParamType::boolean, .default_value = false, .help = "answer wrongly"}},
    .make_generator = [](const Json& p) { return std::make_unique<LookupGenerator>(p.at("wrong").get<bool>()); },
}};

const tasks::RegisterTask test_task{testing::key_task("test_keys", 3)};

const Measurement& metric(const CellOutput& out, const std::string& name) {
  for (const auto& m : out.measurements) {
    if (m.metric == name) return m;
  }
  FAIL("no metric " << name);
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("text cells: samples are generated at the cell's length, answered, scored and kept", "[runner][text]") {
  const auto suite = parse_suite(Json::parse(R"({"name": "t",
      "engines": [{"name": "test_lookup"}, {"name": "test_lookup", "label": "wrong", "params": {"wrong": true}}],
      "tasks": [{"name": "test_keys", "params": {"samples": 4}}], "context_lengths": [50]})"),
                                 "t.json");
  const auto cells = suite.cells();
  REQUIRE(cells.size() == 2);
  const auto right = run_cell(cells[0]);
  CHECK(metric(right, "accuracy").value() == 100.0);
  CHECK(metric(right, "samples").value() == 4);
  CHECK(metric(right, "prompt_tokens").value() == 50);
  CHECK(metric(right, "attention_share").value() == 0.5);
  REQUIRE(right.samples.size() == 4);
  CHECK(right.samples[1].prediction == "1007");
  CHECK(right.samples[1].references == Json::array({"1007"}));
  const auto wrong = run_cell(cells[1]);
  CHECK(metric(wrong, "accuracy").value() == 0.0);

  testing::TempDir dir;
  Store store(dir.file("t.db"));
  const auto summary = run_suite(suite, store, {.resume = false, .log = stderr});
  CHECK(summary.failed == 0);
  CHECK(store.cells(summary.run_id).size() == 2);
}
