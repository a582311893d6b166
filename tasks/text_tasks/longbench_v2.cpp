// LongBench v2 (THUDM/LongBench pred.py, prompts/0shot.txt): four-choice questions over long contexts; the
// context is middle-truncated in the model's tokens so that the prompt and 128 new tokens fit the cell's
// length. An answer is correct when "The correct answer is (X)" / "... is X" names the right letter.
#include "tasks/scoring/longbench_v2.h"

#include <fmt/format.h>

#include "tasks/scoring/python_text.h"
#include "tasks/task.h"
#include "tasks/text_tasks/common.h"

namespace ctxbench::tasks::text {
namespace {

// prompts/0shot.txt, byte for byte.
constexpr const char* kTemplate =
    "Please read the following text and answer the question below.\n\n<text>\n$DOC$\n</text>\n\nWhat is the correct "
    "answer to this question: $Q$\nChoices:\n(A) $C_A$\n(B) $C_B$\n(C) $C_C$\n(D) $C_D$\n\nFormat your response as "
    "follows: \"The correct answer is (insert answer here)\".";
constexpr int kMaxNewTokens = 128;

struct LongBenchV2Params : TextTaskParams<20> {
  std::string data_file;
  std::string difficulty = "all";
  std::string length = "all";

  static ParamFields<LongBenchV2Params> fields() {
    using P = LongBenchV2Params;
    return model::with_model_fields(
        samples_field<P>()
            .field(&P::data_file, "data_file", "LongBench v2 data (JSON list or jsonl)")
            .field(&P::difficulty, "difficulty", "filter", {.choices = {"all", "easy", "hard"}})
            .field(&P::length, "length", "filter", {.choices = {"all", "short", "medium", "long"}}));
  }
};

bool selected(const std::string& wanted, const std::string& value) { return wanted == "all" || wanted == value; }

std::vector<TextSample> make_samples(const LongBenchV2Params& p, const CellContext& cell, const Tokenizer& tokenizer) {
  if (p.data_file.empty())
    throw InputError("longbench_v2: set data_file to the LongBench v2 data (JSON list or jsonl); none is bundled");
  const auto path = from_source_tree(p.data_file);
  std::vector<std::pair<const JsonlRecord*, std::string>> chosen;
  const auto records = read_json_records(path);
  for (const auto& r : records) {
    const std::string where = fmt::format("{}:{}", path.string(), r.line);
    if (selected(p.difficulty, string_field(r.value, "difficulty", where)) &&
        selected(p.length, string_field(r.value, "length", where)))
      chosen.emplace_back(&r, where);
  }
  std::vector<TextSample> out;
  for (const std::size_t i : choose_records(chosen.size(), p.samples, cell.seed)) {
    const auto& record = chosen[i].first;
    const auto& where = chosen[i].second;  // a plain reference: clang 14 cannot capture structured bindings
    const Json& r = record->value;
    auto strip = [&](const char* name) { return scoring::py::strip_whitespace(string_field(r, name, where)); };
    const std::string answer = string_field(r, "answer", where);
    if (answer.size() != 1 || answer[0] < 'A' || answer[0] > 'D')
      throw InputError(fmt::format("{}: field \"answer\" must be one of A, B, C, D", where));
    std::string prompt = replace_all(kTemplate, "$DOC$", strip("context"));
    for (const auto& [mark, name] : std::vector<std::pair<const char*, const char*>>{{"$Q$", "question"},
                                                                                     {"$C_A$", "choice_A"},
                                                                                     {"$C_B$", "choice_B"},
                                                                                     {"$C_C$", "choice_C"},
                                                                                     {"$C_D$", "choice_D"}}) {
      prompt = replace_all(prompt, mark, strip(name));
    }
    TextSample sample;
    sample.prompt = middle_truncate(tokenizer, prompt, cell.context_length - kMaxNewTokens);
    sample.references = {answer};
    sample.max_new_tokens = kMaxNewTokens;
    sample.extra = {{"difficulty", r.at("difficulty")}, {"length", r.at("length")}, {"source", where}};
    out.push_back(std::move(sample));
  }
  if (out.empty())
    throw InputError(fmt::format("{}: no record matches the difficulty and length filters", path.string()));
  return out;
}

const RegisterTask registration{declared_text_task<LongBenchV2Params>(
    {
        .name = "longbench_v2",
        .description = "LongBench v2 multiple choice (0-shot template), answer parsed as pred.py does",
        .score =
            [](const TextSample& sample, const std::string& prediction) {
              return scoring::longbench_v2::is_correct(prediction, sample.references[0]) ? 1.0 : 0.0;
            },
        .metric = "accuracy",
    },
    make_samples)};

}  // namespace
}  // namespace ctxbench::tasks::text
