// LongBench v1 and LongBench-E (THUDM/LongBench LongBench/pred.py): records of the official jsonl files,
// prompts from config/dataset2prompt.json and generation lengths from dataset2maxlen.json (kept verbatim in
// datasets/longbench/), middle truncation in the model's tokens so that prompt + generation fit the cell's
// length, no chat template (the harness runs base models), samsum stops at "\n". Scored with the dataset's
// metric of eval.py (first-line rule for trec, triviaqa, samsum, lsht; max over the answers).
#include "tasks/scoring/longbench.h"

#include <fmt/format.h>

#include <mutex>

#include "tasks/task.h"
#include "tasks/text_tasks/common.h"

namespace ctxbench::tasks::text {
namespace {

constexpr const char* kConfigDir = "datasets/longbench";

struct LongBenchParams : TextTaskParams<200> {
  Required<std::string> dataset;
  bool e = false;
  std::string data_dir;
  std::string data_file;

  static ParamFields<LongBenchParams> fields() {
    using P = LongBenchParams;
    return model::with_model_fields(samples_field<P>()
                                        .field(&P::dataset, "dataset", "LongBench dataset, e.g. hotpotqa")
                                        .field(&P::e, "e", "LongBench-E ({dataset}_e.jsonl)")
                                        .field(&P::data_dir, "data_dir", "directory of the official jsonl files")
                                        .field(&P::data_file, "data_file", "one jsonl file (overrides data_dir)"));
  }
};

const Json& config(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, Json> cache;
  std::lock_guard lock(mutex);
  auto it = cache.find(name);
  if (it == cache.end()) {
    const auto path = from_source_tree(kConfigDir) / name;
    try {
      it = cache.emplace(name, Json::parse(read_text_file(path))).first;
    } catch (const Json::exception& e) {  // parse_error, or out_of_range: a number beyond a double
      throw InputError(fmt::format("{}: not JSON ({})", path.string(), e.what()));
    }
  }
  return it->second;
}

const std::string& metric_of(const std::string& dataset) {
  static const auto metrics =
      scoring::longbench::DatasetMetrics::load(from_source_tree(kConfigDir) / "dataset2metric.json");
  try {
    return metrics.metric_for(dataset);
  } catch (const std::invalid_argument& e) {
    throw InputError(fmt::format("longbench: {}", e.what()));
  }
}

std::vector<std::string> all_classes(const Json& record, const std::string& where) {
  const auto it = record.find("all_classes");
  if (it == record.end() || it->is_null()) return {};
  if (!it->is_array() || !std::all_of(it->begin(), it->end(), [](const Json& v) { return v.is_string(); }))
    throw InputError(fmt::format("{}: field \"all_classes\" must be null or a list of strings", where));
  return it->get<std::vector<std::string>>();
}

std::vector<TextSample> make_samples(const LongBenchParams& p, const CellContext& cell, const Tokenizer& tokenizer) {
  const std::string& dataset = p.dataset.value;
  const std::string& metric = metric_of(dataset);
  if (metric == "qa_f1_zh_score" || metric == "rouge_zh_score") {
    throw InputError(
        fmt::format("longbench {}: metric {} needs a Chinese word segmenter (jieba), which ctxbench "
                    "does not have: unsupported",
                    dataset, metric));
  }
  const std::string prompt_format = config("dataset2prompt.json").at(dataset).get<std::string>();
  const int max_gen = config("dataset2maxlen.json").at(dataset).get<int>();
  const int max_length = cell.context_length - max_gen;
  if (max_length < 2)
    throw InputError(
        fmt::format("longbench {}: context length {} leaves no room for the prompt "
                    "beside {} generated tokens",
                    dataset, cell.context_length, max_gen));
  std::string file = p.data_file;
  if (file.empty()) {
    if (p.data_dir.empty())
      throw InputError(
          fmt::format("longbench {}: set data_dir to the directory of the official LongBench jsonl "
                      "files (or data_file to one file); none is bundled",
                      dataset));
    file = (std::filesystem::path(p.data_dir) / (dataset + (p.e ? "_e" : "") + ".jsonl")).string();
  }
  return samples_from_jsonl(file, p.samples, cell.seed, [&](const Json& record, const std::string& where) {
    std::map<std::string, std::string> fields;
    for (const char* name : {"context", "input"}) fields[name] = string_field(record, name, where);
    for (const auto& [name, value] : record.items()) {
      if (value.is_string()) fields[name] = value.get<std::string>();
    }
    std::string prompt;
    try {
      prompt = format_template(prompt_format, fields);
    } catch (const std::invalid_argument& err) {
      throw InputError(fmt::format("{}: {}", where, err.what()));
    }
    TextSample sample;
    sample.prompt = middle_truncate(tokenizer, prompt, max_length);
    sample.references = answers_field(record, "answers", where);
    sample.max_new_tokens = max_gen;
    if (dataset == "samsum") sample.stop = {"\n"};
    const auto length = record.find("length");
    sample.extra = {{"dataset", dataset},
                    {"metric", metric},
                    {"all_classes", all_classes(record, where)},
                    {"length", length != record.end() && length->is_number() ? *length : Json()},
                    {"source", where}};
    return sample;
  });
}

const RegisterTask registration{declared_text_task<LongBenchParams>(
    {
        .name = "longbench",
        .description = "LongBench v1 / LongBench-E from the official jsonl files, scored as eval.py",
        .score =
            [](const TextSample& sample, const std::string& prediction) {
              return scoring::longbench::sample_score(
                  sample.extra.at("dataset").get<std::string>(), sample.extra.at("metric").get<std::string>(),
                  prediction, sample.references, sample.extra.at("all_classes").get<std::vector<std::string>>());
            },
        .metric = "score",
    },
    make_samples)};

}  // namespace
}  // namespace ctxbench::tasks::text
