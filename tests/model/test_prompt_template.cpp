// Prompt templates (model/prompt_template.h) on a tiny checkpoint whose tokenizer has special tokens
// (<|begin_of_text|> 298, the BOS, and <|end_of_text|> 299).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/source_tree.h"
#include "engines/engine.h"
#include "model/backend.h"
#include "model/tokenizer.h"
#include "tasks/task.h"

using namespace ctxbench;
using namespace ctxbench::model;
using Catch::Matchers::Contains;
using nlohmann::json;

namespace {

constexpr int kBos = 298, kEnd = 299;

json fixture_params(const std::string& prompt_template) {
  json params = {{"model", "tests/fixtures/checkpoints/llama3-tied-gqa4"}, {"rope_scaling", json::object()}};
  if (!prompt_template.empty()) params["prompt_template"] = prompt_template;
  return params;
}

std::vector<int> concat(std::initializer_list<std::vector<int>> parts) {
  std::vector<int> out;
  for (const auto& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

}  // namespace

TEST_CASE("prompt template: special ids of the template around the prompt's own ids", "[tokenizer][template]") {
  const PromptTokenizer plain = open_tokenizer(fixture_params(""));
  const Tokenizer& tok = *plain.tokenizer;
  const std::string prompt = "The pass key is 4821. What is it?";
  CHECK(plain.prompt_ids(prompt) == concat({{kBos}, tok.encode(prompt)}));

  // The template writes the BOS itself: it is not doubled.
  const PromptTokenizer framed = open_tokenizer(fixture_params("<|begin_of_text|>user: {prompt}<|end_of_text|>bot:"));
  CHECK(framed.prompt_ids(prompt) ==
        concat({{kBos}, tok.encode("user: "), tok.encode(prompt), {kEnd}, tok.encode("bot:")}));
  // Without BOS in the template, the runtime's BOS still comes first.
  const PromptTokenizer no_bos = open_tokenizer(fixture_params("Q: {prompt}<|end_of_text|>"));
  CHECK(no_bos.prompt_ids(prompt) == concat({{kBos}, tok.encode("Q: "), tok.encode(prompt), {kEnd}}));
}

TEST_CASE("prompt template: a special token's text inside the prompt stays text", "[tokenizer][template]") {
  const PromptTokenizer framed = open_tokenizer(fixture_params("{prompt}<|end_of_text|>"));
  const Tokenizer& tok = *framed.tokenizer;
  const std::string haystack = "a<|end_of_text|>b";
  REQUIRE(tok.encode(haystack) == concat({tok.encode("a"), {kEnd}, tok.encode("b")}));  // HF's default encoding
  const std::vector<int> ids = framed.prompt_ids(haystack);
  CHECK(std::count(ids.begin(), ids.end(), kEnd) == 1);  // the template's, at the end
  CHECK(ids.back() == kEnd);
  CHECK(tok.decode(std::vector<int>(ids.begin() + 1, ids.end() - 1)) == haystack);
  CHECK(tok.added_token("<|end_of_text|>") == kEnd);
  CHECK_FALSE(tok.added_token("<|eot_id|>"));
}

TEST_CASE("prompt template: missing {prompt} or an unknown special token is refused by name", "[tokenizer][template]") {
  CHECK_THROWS_WITH(open_tokenizer(fixture_params("<|begin_of_text|>no placeholder")),
                    Contains("prompt_template: expected exactly one {prompt}"));
  CHECK_THROWS_WITH(open_tokenizer(fixture_params("{prompt} and {prompt}")), Contains("exactly one {prompt}"));
  CHECK_THROWS_WITH(open_tokenizer(fixture_params("<|start_header_id|>user{prompt}")),
                    Contains("prompt_template: \"<|start_header_id|>\" is not a token"));
  CHECK_THROWS_WITH(open_tokenizer(fixture_params("{prompt}</s>")), Contains("\"</s>\" is not a token"));
  CHECK_THROWS_AS(open_tokenizer(fixture_params("{prompt}</s>")), InputError);
}

TEST_CASE("prompt template: the generator reads the templated prompt, and a task passes it on",
          "[tokenizer][template]") {
  const std::string text = "<|begin_of_text|>user: {prompt}<|end_of_text|>";
  const auto& task = tasks::TaskRegistry::instance().get("passkey", "test");
  const Json resolved = resolve_params(task.params, fixture_params(text), "test");
  CHECK(model_params_of(resolved).at("prompt_template") == text);
  CHECK_FALSE(resolve_params(task.params, Json::object(), "test").contains("prompt_template"));  // keys unchanged

  const auto generator =
      open_generator(model_params_of(resolved),
                     std::shared_ptr<const engines::Engine>(
                         engines::EngineRegistry::instance().get("dense", "test").make(json{{"threads", 1}})));
  TextSample sample;
  sample.prompt = "The pass key is 4821.";
  sample.max_new_tokens = 1;
  const PromptTokenizer framed = open_tokenizer(model_params_of(resolved));
  CHECK(generator->generate(sample).prompt_tokens == static_cast<int>(framed.prompt_ids(sample.prompt).size()));
  const PromptTokenizer plain = open_tokenizer(fixture_params(""));
  CHECK(framed.prompt_ids(sample.prompt).size() ==
        plain.prompt_ids(sample.prompt).size() + plain.tokenizer->encode("user: ").size() + 1);
}
