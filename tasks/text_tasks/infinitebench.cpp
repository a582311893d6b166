// InfiniteBench retrieval tasks (OpenBMB/InfiniteBench src/eval_utils.py, prompt.py, compute_scores.py):
// passkey, number_string and kv_retrieval, from the official jsonl files (`data_file`) or, without one, made by
// InfiniteBench's own recipe (data/construct_synthetic_dataset.py) at the cell's length. The prompt is the
// yarn-mistral template (for base models; "gpt4" selects the chat one). A file's records are middle-truncated in
// the model's tokens so that the prompt and the task's new tokens (6, 12, 50) fit the cell's length; synthetic
// ones are sized to fit it, the needle (or the asked key) at the cell's depth.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <tuple>

#include "core/random.h"
#include "tasks/scoring/needle.h"
#include "tasks/task.h"
#include "tasks/text_tasks/common.h"

namespace ctxbench::tasks::text {
namespace {

// A record as the official files hold it: the context, the input (question) and the answer.
struct Record {
  std::string context;
  std::string input;
  std::string answer;
};

// construct_synthetic_dataset.py's filler line, repeated around the needle.
constexpr const char* kNoise =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n";

// The recipe's noise * j + needle + noise * (units - j), with j at `depth` percent of the units.
std::string noise_around(const std::string& needle, int units, double depth) {
  const int before = static_cast<int>(std::lround(depth / 100.0 * units));
  std::string context;
  context.reserve((static_cast<std::size_t>(units) + 1) * std::string_view(kNoise).size() + needle.size());
  for (int i = 0; i < before; ++i) context += kNoise;
  context += needle;
  for (int i = before; i < units; ++i) context += kNoise;
  return context;
}

std::string random_digits(Rng& rng, int count) {
  std::string digits;
  for (int i = 0; i < count; ++i) digits += static_cast<char>('0' + rng.integer(0, 9));
  return digits;
}

// build_passkey: five random digits in noise.
Record passkey_record(Rng& rng, int units, double depth) {
  const std::string key = random_digits(rng, 5);
  return {noise_around(fmt::format("The pass key is {0}. Remember it. {0} is the pass key.\n", key), units, depth),
          "What is the pass key?", key};
}

// build_number_string: five random digits, then five times a digit doubled at a random place (ten digits).
Record number_string_record(Rng& rng, int units, double depth) {
  std::string key = random_digits(rng, 5);
  for (int k = 0; k < 5; ++k) {
    const auto at = static_cast<std::size_t>(rng.integer(0, 5 + k - 1));
    key.insert(at, 1, key[at]);
  }
  return {noise_around(fmt::format("The sequence of digits is {0}. Remember it. {0} is the sequence of digits.\n", key),
                       units, depth),
          "What is the sequence of digits?", key};
}

// build_kv_retrieval: `units` pairs of UUIDs as a JSON object; the asked key sits at `depth` percent of them.
Record kv_retrieval_record(Rng& rng, int units, double depth) {
  const int count = std::max(units, 1);
  const auto asked = static_cast<int>(std::lround(depth / 100.0 * (count - 1)));
  std::string context = "JSON data:\n{", key, value;
  for (int i = 0; i < count; ++i) {
    std::string k = random_uuid4(rng), v = random_uuid4(rng);
    context += fmt::format("{}\"{}\": \"{}\"", i ? ", " : "", k, v);
    if (i == asked) std::tie(key, value) = std::pair(k, v);
  }
  context += "}";
  return {context, fmt::format("Key: \"{}\"\nThe value associated with the specified key is: ", key), value};
}

struct Task {
  const char* name;
  const char* yarn_mistral;
  const char* gpt4;
  int max_new_tokens;
  bool (*correct)(std::string_view prediction, std::string_view label);
  // The synthetic record of `units` fillers (noise lines, or key-value pairs): units + 1 never has fewer tokens.
  Record (*synthesize)(Rng& rng, int units, double depth);
};

const std::array<Task, 3> kTasks = {{
    {"passkey",
     "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you "
     "about the important information there.\n\n{context}\n\n{input}\n\nThe pass key is",
     "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you "
     "about the important information there.\n\n{context}\n\n{input}",
     6, scoring::needle::infinitebench_passkey_correct, passkey_record},
    {"number_string",
     "There is an important info hidden inside a lot of irrelevant text. Find it. I will quiz you about the "
     "important information there.\n\n{context}\n\n{input}\n\nThe sequence of digits is",
     "There is an important info hidden inside a lot of irrelevant text. Find it. I will quiz you about the "
     "important information there.\n\n{context}\n\n{input}",
     12, scoring::needle::infinitebench_number_string_correct, number_string_record},
    {"kv_retrieval",
     "Extract the value corresponding to the specified key in the JSON object below.\n\n{context}\n\n{input}",
     "Extract the value corresponding to the specified key in the JSON object below.\n\n{context}\n\n{input}", 50,
     scoring::needle::infinitebench_kv_retrieval_correct, kv_retrieval_record},
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
    return model::with_model_fields(
        samples_field<P>()
            .choice(&P::task, "task", "retrieval task", task_choices())
            .field(&P::data_file, "data_file", "the official {task}.jsonl; empty: made by InfiniteBench's recipe")
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

// A synthetic sample of the largest filler whose prompt, with a BOS and the answer, fits the cell's length.
TextSample synthetic_sample(const Task& task, const char* pattern, const CellContext& cell, const Tokenizer& tokenizer,
                            std::uint64_t seed) {
  const int budget = prompt_budget(cell.context_length, task.max_new_tokens);
  auto record = [&](int units) {
    Rng rng(seed);  // the same draws for every size: a larger record extends a smaller one
    return task.synthesize(rng, units, cell.depth);
  };
  auto prompt = [&](const Record& r) { return format_template(pattern, {{"context", r.context}, {"input", r.input}}); };
  auto fits = [&](int units) { return token_count(tokenizer, prompt(record(units))) <= budget; };
  if (!fits(1))
    throw InputError(fmt::format("infinitebench {}: context length {} is too short for one filler and {} new tokens",
                                 task.name, cell.context_length, task.max_new_tokens));
  int hi = 2;
  while (fits(hi)) hi *= 2;
  const Record r = record(largest_fitting(hi / 2, hi, fits));
  TextSample sample;
  sample.prompt = prompt(r);
  sample.references = {r.answer};
  sample.max_new_tokens = task.max_new_tokens;
  sample.extra = {{"task", task.name}, {"source", "synthetic"}};
  return sample;
}

std::vector<TextSample> make_samples(const InfiniteBenchParams& p, const CellContext& cell,
                                     const Tokenizer& tokenizer) {
  const Task& task = *p.task;
  const char* pattern = p.prompts == Prompts::gpt4 ? task.gpt4 : task.yarn_mistral;
  if (p.data_file.empty()) {
    std::vector<TextSample> out;
    for (int i = 0; i < p.samples; ++i)
      out.push_back(synthetic_sample(task, pattern, cell, tokenizer,
                                     sample_seed(cell.seed, static_cast<std::size_t>(i), 0x696e6662)));
    return out;
  }
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
        .description = "InfiniteBench passkey / number_string / kv_retrieval from the official jsonl, or made by its "
                       "recipe at the cell's length and depth",
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
