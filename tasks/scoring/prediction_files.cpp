#include "tasks/scoring/prediction_files.h"

#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "core/params.h"
#include "tasks/scoring/python_number.h"
#include "tasks/scoring/python_text.h"
#include "tasks/scoring/ruler.h"

namespace ctxbench::scoring {
namespace {

using nlohmann::json;

InputError line_error(const std::filesystem::path& file, size_t line, const std::string& what) {
  return InputError(file.string() + ":" + std::to_string(line) + ": " + what);
}

// Calls visit(line_number, text) for each line; "\n", "\r\n" and "\r" end lines (Python's universal newlines).
void for_each_line(const std::filesystem::path& file, const std::function<void(size_t, const std::string&)>& visit) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InputError(file.string() + ": cannot open the prediction file");
  std::stringstream content;
  content << in.rdbuf();
  const std::string text = content.str();
  size_t line_number = 0, start = 0;
  while (start < text.size()) {
    size_t end = text.find_first_of("\r\n", start);
    if (end == std::string::npos) end = text.size();
    visit(++line_number, text.substr(start, end - start));
    start = end + (text.compare(end, 2, "\r\n") == 0 ? 2 : 1);
  }
}

json parse_record(const std::filesystem::path& file, size_t line, const std::string& text) {
  json record;
  try {
    record = json::parse(text);
  } catch (const json::exception& error) {
    throw line_error(file, line, std::string("not a JSON line (") + error.what() + ")");
  }
  if (!record.is_object()) throw line_error(file, line, "expected a JSON object");
  return record;
}

const json& field(const std::filesystem::path& file, size_t line, const json& record, const char* name) {
  const auto found = record.find(name);
  if (found == record.end()) throw line_error(file, line, std::string("field \"") + name + "\" is missing");
  return *found;
}

std::string string_field(const std::filesystem::path& file, size_t line, const json& record, const char* name) {
  const json& value = field(file, line, record, name);
  if (!value.is_string()) throw line_error(file, line, std::string("field \"") + name + "\" must be a string");
  return value.get<std::string>();
}

std::vector<std::string> string_list(const std::filesystem::path& file, size_t line, const json& value,
                                     const char* name, bool allow_empty) {
  const std::string expected =
      std::string("field \"") + name + "\" must be a" + (allow_empty ? "" : " non-empty") + " list of strings";
  if (!value.is_array() || (!allow_empty && value.empty())) throw line_error(file, line, expected);
  std::vector<std::string> strings;
  for (const json& item : value) {
    if (!item.is_string()) throw line_error(file, line, expected);
    strings.push_back(item.get<std::string>());
  }
  return strings;
}

// Python's json.dumps of a float (allow_nan=True).
std::string json_float(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  return py::python_float_repr(value);
}

struct LongBenchRecord {
  std::string prediction;
  std::vector<std::string> answers;
  double length = 0;
};

}  // namespace

LongBenchFileScore score_longbench_predictions(const std::filesystem::path& predictions, std::string_view dataset,
                                               bool by_length, const longbench::DatasetMetrics& dataset_metrics) {
  const std::string& metric = dataset_metrics.metric_for(dataset);
  if (metric == "qa_f1_zh_score" || metric == "rouge_zh_score") throw longbench::UnsupportedMetric(metric);

  std::vector<LongBenchRecord> records;
  std::vector<size_t> line_numbers;
  std::vector<std::string> all_classes;  // eval.py: the variable keeps the last record's value
  bool all_classes_null = true;
  for_each_line(predictions, [&](size_t line, const std::string& text) {
    const json record = parse_record(predictions, line, text);
    LongBenchRecord parsed;
    parsed.prediction = string_field(predictions, line, record, "pred");
    parsed.answers = string_list(predictions, line, field(predictions, line, record, "answers"), "answers", false);
    const json& classes = field(predictions, line, record, "all_classes");
    all_classes_null = classes.is_null();
    all_classes =
        all_classes_null ? std::vector<std::string>{} : string_list(predictions, line, classes, "all_classes", true);
    if (by_length) {
      const json& length = field(predictions, line, record, "length");
      if (!length.is_number())
        throw line_error(predictions, line, "field \"length\" must be a number (needed for --e)");
      parsed.length = length.get<double>();
    }
    records.push_back(std::move(parsed));
    line_numbers.push_back(line);
  });
  if (records.empty()) throw InputError(predictions.string() + ": no predictions");
  if (metric == "classification_score" && all_classes_null)
    throw line_error(predictions, line_numbers.back(),
                     "\"all_classes\" is null but " + std::string(dataset) + " uses classification_score");

  std::vector<double> scores, lengths;
  for (size_t k = 0; k < records.size(); ++k) {
    try {
      scores.push_back(
          longbench::sample_score(dataset, metric, records[k].prediction, records[k].answers, all_classes));
    } catch (const std::invalid_argument& error) {
      throw line_error(predictions, line_numbers[k], error.what());
    }
    lengths.push_back(records[k].length);
  }

  LongBenchFileScore result;
  result.dataset = dataset;
  result.metric = metric;
  result.by_length = by_length;
  result.samples = records.size();
  if (by_length) {
    result.scores_by_length = longbench::dataset_scores_by_length(scores, lengths);
  } else {
    result.score = longbench::dataset_score(scores);
  }
  return result;
}

std::string LongBenchFileScore::result_json() const {
  const std::string key = json(dataset).dump();
  if (!by_length) return "{\n    " + key + ": " + json_float(score) + "\n}";
  return "{\n    " + key + ": {\n        \"0-4k\": " + json_float(scores_by_length.upto_4k) +
         ",\n        \"4-8k\": " + json_float(scores_by_length.from_4k_to_8k) +
         ",\n        \"8k+\": " + json_float(scores_by_length.over_8k) + "\n    }\n}";
}

RulerFileScore score_ruler_predictions(const std::filesystem::path& predictions, std::string_view task) {
  RulerFileScore result;
  result.task = task;
  result.metric = ruler::metric_for_task(task);
  const auto sample_score =
      result.metric == "string_match_part" ? ruler::string_match_part_sample : ruler::string_match_all_sample;

  std::vector<double> scores;
  for_each_line(predictions, [&](size_t line, const std::string& text) {
    if (py::strip_whitespace(text).empty()) return;  // read_manifest skips blank lines
    const json record = parse_record(predictions, line, text);
    const std::string prediction = ruler::postprocess_prediction(string_field(predictions, line, record, "pred"));
    const std::vector<std::string> references =
        string_list(predictions, line, field(predictions, line, record, "outputs"), "outputs", false);
    result.nulls += prediction.empty() ? 1 : 0;
    scores.push_back(sample_score(prediction, references));
  });
  if (scores.empty()) throw InputError(predictions.string() + ": no predictions");
  result.samples = scores.size();
  result.score = ruler::task_score(scores);
  return result;
}

std::string RulerFileScore::nulls_text() const { return std::to_string(nulls) + "/" + std::to_string(samples); }

std::string RulerFileScore::summary_csv() const {
  return "0,1\nTasks," + task + "\nScore," + py::python_float_repr(score) + "\nNulls," + nulls_text() + "\n";
}

}  // namespace ctxbench::scoring
