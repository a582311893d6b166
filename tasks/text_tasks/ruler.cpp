// RULER as a text task: the 13 synthetic tasks generated at the cell's length (ruler/synthetic.h), or the
// samples of a jsonl file written by RULER's own prepare.py ("input", "outputs", optional "answer_prefix";
// the prompt is input + answer_prefix). Scored with RULER's string_match_all, or string_match_part for qa.
#include "tasks/scoring/ruler.h"

#include <fmt/format.h>

#include "tasks/task.h"
#include "tasks/text_tasks/common.h"
#include "tasks/text_tasks/haystack.h"
#include "tasks/text_tasks/ruler/synthetic.h"

namespace ctxbench::tasks::text {
namespace {

struct RulerParams : TextTaskParams<20> {
  std::string task = "niah_single_1";
  std::string data_file;
  std::string qa_file;
  std::string haystack = kDefaultHaystack;
  std::string words = "datasets/ruler";

  static ParamFields<RulerParams> fields() {
    using P = RulerParams;
    return model::with_model_fields(
        samples_field<P>()
            .field(&P::task, "task", "synthetic.yaml task", {.choices = ruler::task_names()})
            .field(&P::data_file, "data_file",
                   "jsonl written by RULER's prepare.py (input, outputs, answer_prefix); empty: generate")
            .field(&P::qa_file, "qa_file", "qa_1: local SQuAD json; qa_2: local HotpotQA json")
            .field(&P::haystack, "haystack", "the 'essay' haystack: directory of *.txt files")
            .field(&P::words, "words", "directory with adjectives.txt, nouns.txt, verbs.txt"));
  }
};

std::vector<TextSample> load_samples(const RulerParams& p, const CellContext& cell, int tokens_to_generate) {
  return samples_from_jsonl(p.data_file, p.samples, cell.seed, [&](const Json& record, const std::string& where) {
    TextSample sample;
    sample.prompt = string_field(record, "input", where);
    if (record.contains("answer_prefix")) sample.prompt += string_field(record, "answer_prefix", where);
    sample.references = answers_field(record, "outputs", where);
    sample.max_new_tokens = tokens_to_generate;
    sample.extra = {{"source", where}};
    return sample;
  });
}

std::vector<TextSample> generate_or_load(const RulerParams& p, const CellContext& cell, const Tokenizer& tokenizer) {
  const int tokens_to_generate = ruler::base_template(ruler::base_task_of(p.task)).tokens_to_generate;
  if (!p.data_file.empty()) return load_samples(p, cell, tokens_to_generate);
  const ruler::Options options{.task = p.task,
                               .max_seq_length = cell.context_length,
                               .samples = p.samples,
                               .seed = cell.seed,
                               .haystack_dir = p.haystack,
                               .words_dir = p.words,
                               .qa_file = p.qa_file};
  std::vector<TextSample> out;
  for (auto& s : ruler::generate(options, tokenizer)) {
    TextSample sample;
    sample.prompt = s.input + s.answer_prefix;
    sample.references = std::move(s.outputs);
    sample.max_new_tokens = tokens_to_generate;
    sample.extra = {{"answer_prefix", s.answer_prefix}, {"length", s.length}};
    out.push_back(std::move(sample));
  }
  return out;
}

// Which of RULER's two metrics scores a sample travels with it (the scorer sees only the sample).
std::vector<TextSample> make_samples(const RulerParams& p, const CellContext& cell, const Tokenizer& tokenizer) {
  auto samples = generate_or_load(p, cell, tokenizer);
  const bool part = ruler::uses_string_match_part(p.task);
  for (auto& s : samples) s.extra["string_match_part"] = part;
  return samples;
}

const RegisterTask registration{declared_text_task<RulerParams>(
    {
        .name = "ruler",
        .description = "RULER's 13 synthetic tasks generated at the cell's length, or RULER's own jsonl (data_file)",
        .score =
            [](const TextSample& sample, const std::string& prediction) {
              const std::string pred = scoring::ruler::postprocess_prediction(prediction);
              return sample.extra.value("string_match_part", false)
                         ? scoring::ruler::string_match_part_sample(pred, sample.references)
                         : scoring::ruler::string_match_all_sample(pred, sample.references);
            },
        .metric = "string_match",
    },
    make_samples)};

}  // namespace
}  // namespace ctxbench::tasks::text
