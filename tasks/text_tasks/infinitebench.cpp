// InfiniteBench retrieval tasks (OpenBMB/InfiniteBench src/eval_utils.py, prompt.py, compute_scores.py):
// passkey, number_string and kv_retrieval from the official jsonl files. The prompt is the yarn-mistral
// template (for base models; "gpt4" selects the chat one), middle-truncated in the model's tokens so that the
// prompt and the task's new tokens (6, 12, 50) fit the cell's length.
#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "tasks/scoring/needle.h"
#include "tasks/task.h"
#include "tasks/text_tasks/common.h"

namespace ctxbench::tasks::text {
namespace {

struct Task {
  const char* name;
  const char* yarn_mistral;
  const char* gpt4;
  int max_new_tokens;
  bool (*correct)(std::string_view prediction, std::string_view label);
};

const std::array<Task, 3> kTasks = {{
    {"passkey",
     "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you "
     "about the important information there.\n\n{context}\n\n{input}\n\nThe pass key is",
     "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you "
     "about the important information there.\n\n{context}\n\n{input}",
     6, scoring::needle::infinitebench_passkey_correct},
    {"number_string",
     "There is an important info hidden inside a lot of irrelevant text. Find it. I will quiz you about the "
     "important information there.\n\n{context}\n\n{input}\n\nThe sequence of digits is",
     "There is an important info hidden inside a lot of irrelevant text. Find it. I will quiz you about the "
     "important information there.\n\n{context}\n\n{input}",
     12, scoring::needle::infinitebench_number_string_correct},
    {"kv_retrieval",
     "Extract the value corresponding to the specified key in the JSON object below.\n\n{context}\n\n{input}",
     "Extract the value corresponding to the specified key in the JSON object below.\n\n{context}\n\n{input}", 50,
     scoring::needle::infinitebench_kv_retrieval_correct},
}};

const Task& task_named(std::string_view name) {
  return *std::find_if(kTasks.begin(), kTasks.end(), [&](const Task& t) { return t.name == name; });
}

std::vector<std::pair<std::string, const Task*>> task_choices() {
  std::vector<std::pair<std::string, const Task*>> choices;
  for (const Task& t : kTasks) choices.emplace_back(t.name, &t);
  return choices;
}

enum class Prompts { yarn_mistral, gpt4 };

struct InfiniteBenchParams : TextTaskParams<20> {
  const Task* task = &kTasks[0];
  std::string data_file;
  Prompts prompts = Prompts::yarn_mistral;

  static ParamFields<InfiniteBenchParams> fields() {
    using P = InfiniteBenchParams;
    return model::with_model_fields(samples_field<P>()
                                        .choice(&P::task, "task", "retrieval task", task_choices())
                                        .field(&P::data_file, "data_file", "the official {task}.jsonl")
                                        .choice(&P::prompts, "template", "prompt.py template set",
                                                {{"yarn_mistral", Prompts::yarn_mistral}, {"gpt4", Prompts::gpt4}}));
  }
};

// get_answer: the label is the "answer" field, the first element of a list.
std::string label_of(const Json& record, const std::string& where) {
  const Json& answer = field(record, "answer", where);
  if (answer.is_string()) return answer.get<std::string>();
  if (answer.is_number_integer()) return std::to_string(answer.get<long long>());
  if (answer.is_array() && !answer.empty() && answer[0].is_string()) return answer[0].get<std::string>();
  throw InputError(fmt::format("{}: field \"answer\" must be a string or a non-empty list of strings", where));
}

std::vector<TextSample> make_samples(const InfiniteBenchParams& p, const CellContext& cell,
                                     const Tokenizer& tokenizer) {
  const Task& task = *p.task;
  if (p.data_file.empty())
    throw InputError(
        fmt::format("infinitebench {}: set data_file to the official {}.jsonl; none is bundled", task.name, task.name));
  const char* pattern = p.prompts == Prompts::gpt4 ? task.gpt4 : task.yarn_mistral;
  return samples_from_jsonl(p.data_file, p.samples, cell.seed, [&](const Json& record, const std::string& where) {
    const std::string context = string_field(record, record.contains("content") ? "content" : "context", where);
    TextSample sample;
    sample.prompt = middle_truncate(
        tokenizer, format_template(pattern, {{"context", context}, {"input", string_field(record, "input", where)}}),
        cell.context_length - task.max_new_tokens);
    sample.references = {label_of(record, where)};
    sample.max_new_tokens = task.max_new_tokens;
    sample.extra = {{"task", task.name}, {"source", where}};
    return sample;
  });
}

const RegisterTask registration{declared_text_task<InfiniteBenchParams>(
    {
        .name = "infinitebench",
        .description = "InfiniteBench passkey / number_string / kv_retrieval from the official jsonl",
        .score =
            [](const TextSample& sample, const std::string& prediction) {
              return task_named(sample.extra.at("task").get<std::string>()).correct(prediction, sample.references[0])
                         ? 1.0
                         : 0.0;
            },
        .metric = "accuracy",
    },
    make_samples)};

}  // namespace
}  // namespace ctxbench::tasks::text
