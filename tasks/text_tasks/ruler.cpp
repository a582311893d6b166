// RULER as a text task: the 13 synthetic tasks generated at the cell's length (ruler_synthetic.h), or the
// samples of a jsonl file written by RULER's own prepare.py ("input", "outputs", optional "answer_prefix";
// the prompt is input + answer_prefix). Scored with RULER's string_match_all, or string_match_part for qa.
#include "tasks/scoring/ruler.h"

#include <fmt/format.h>

#include "tasks/task.h"
#include "tasks/text_tasks/common.h"
#include "tasks/text_tasks/haystack.h"
#include "tasks/text_tasks/ruler_synthetic.h"

namespace ctxbench::tasks::text {
namespace {

std::vector<TextSample> load_samples(const CellContext& cell, const std::string& file, int tokens_to_generate) {
  const auto path = from_source_tree(file);
  const auto records = read_jsonl(path);
  std::vector<TextSample> out;
  for (const std::size_t i : choose_records(records.size(), cell.params.at("samples").get<int>(), cell.seed)) {
    const auto& [record, line] = records[i];
    const std::string where = fmt::format("{}:{}", path.string(), line);
    TextSample sample;
    sample.prompt = string_field(record, "input", where);
    if (record.contains("answer_prefix")) sample.prompt += string_field(record, "answer_prefix", where);
    sample.references = answers_field(record, "outputs", where);
    sample.max_new_tokens = tokens_to_generate;
    sample.extra = {{"source", where}};
    out.push_back(std::move(sample));
  }
  if (out.empty()) throw InputError(fmt::format("{}: no records", path.string()));
  return out;
}

std::vector<TextSample> generate_or_load(const CellContext& cell, const Tokenizer& tokenizer) {
  const Json& p = cell.params;
  const std::string task = p.at("task").get<std::string>();
  const int tokens_to_generate = ruler::base_template(ruler::base_task_of(task)).tokens_to_generate;
  if (const auto file = p.at("data_file").get<std::string>(); !file.empty()) {
    return load_samples(cell, file, tokens_to_generate);
  }
  const ruler::Options options{.task = task,
                               .max_seq_length = cell.context_length,
                               .samples = p.at("samples").get<int>(),
                               .seed = cell.seed,
                               .haystack_dir = p.at("haystack").get<std::string>(),
                               .words_dir = p.at("words").get<std::string>(),
                               .qa_file = p.at("qa_file").get<std::string>()};
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
std::vector<TextSample> make_samples(const CellContext& cell, const Tokenizer& tokenizer) {
  auto samples = generate_or_load(cell, tokenizer);
  const bool part = ruler::uses_string_match_part(cell.params.at("task").get<std::string>());
  for (auto& s : samples) s.extra["string_match_part"] = part;
  return samples;
}

const RegisterTask registration{{
    .name = "ruler",
    .description = "RULER's 13 synthetic tasks generated at the cell's length, or RULER's own jsonl (data_file)",
    .params = text_task_params(
        20,
        {
            {.name = "task",
             .type = ParamType::string,
             .default_value = "niah_single_1",
             .help = "synthetic.yaml task",
             .choices = ruler::task_names()},
            {.name = "data_file",
             .type = ParamType::string,
             .default_value = "",
             .help = "jsonl written by RULER's prepare.py (input, outputs, answer_prefix); empty: generate"},
            {.name = "qa_file",
             .type = ParamType::string,
             .default_value = "",
             .help = "qa_1: local SQuAD json; qa_2: local HotpotQA json"},
            {.name = "haystack",
             .type = ParamType::string,
             .default_value = kDefaultHaystack,
             .help = "the 'essay' haystack: directory of *.txt files"},
            {.name = "words",
             .type = ParamType::string,
             .default_value = "datasets/ruler",
             .help = "directory with adjectives.txt, nouns.txt, verbs.txt"},
        }),
    .make_text_samples = make_samples,
    .score =
        [](const TextSample& sample, const std::string& prediction) {
          const std::string pred = scoring::ruler::postprocess_prediction(prediction);
          return sample.extra.value("string_match_part", false)
                     ? scoring::ruler::string_match_part_sample(pred, sample.references)
                     : scoring::ruler::string_match_all_sample(pred, sample.references);
        },
    .metric = "string_match",
}};

}  // namespace
}  // namespace ctxbench::tasks::text
