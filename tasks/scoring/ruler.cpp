#include "tasks/scoring/ruler.h"

#include <algorithm>
#include <stdexcept>

#include "tasks/scoring/python_number.h"
#include "tasks/scoring/python_text.h"
#include "tasks/text_tasks/ruler/tasks.h"

namespace ctxbench::scoring::ruler {
namespace {

void require_references(const std::vector<std::string>& references) {
  if (references.empty()) throw std::invalid_argument("RULER sample has an empty reference list");
}

std::vector<double> per_sample(const std::vector<std::string>& predictions,
                               const std::vector<std::vector<std::string>>& references,
                               double (*score)(std::string_view, const std::vector<std::string>&)) {
  if (predictions.size() != references.size())
    throw std::invalid_argument("RULER: " + std::to_string(predictions.size()) + " predictions but " +
                                std::to_string(references.size()) + " reference lists");
  std::vector<double> scores;
  scores.reserve(predictions.size());
  for (size_t k = 0; k < predictions.size(); ++k) scores.push_back(score(predictions[k], references[k]));
  return scores;
}

}  // namespace

std::string postprocess_prediction(std::string_view prediction) {
  std::string text = py::strip_whitespace(prediction);
  for (char& ch : text)
    if (static_cast<unsigned char>(ch) <= 0x1F) ch = '\n';
  return py::strip_whitespace(text);
}

double string_match_all_sample(std::string_view prediction, const std::vector<std::string>& references) {
  require_references(references);
  const std::string lowered = py::lower(prediction);
  double found = 0.0;
  for (const std::string& reference : references) found += py::contains(lowered, py::lower(reference)) ? 1.0 : 0.0;
  return found / static_cast<double>(references.size());
}

double string_match_part_sample(std::string_view prediction, const std::vector<std::string>& references) {
  require_references(references);
  const std::string lowered = py::lower(prediction);
  const bool any = std::any_of(references.begin(), references.end(), [&](const std::string& reference) {
    return py::contains(lowered, py::lower(reference));
  });
  return any ? 1.0 : 0.0;
}

double task_score(const std::vector<double>& sample_scores) {
  if (sample_scores.empty()) throw std::invalid_argument("RULER task score of no samples");
  return py::python_round(py::sequential_sum(sample_scores) / static_cast<double>(sample_scores.size()) * 100, 2);
}

double string_match_all(const std::vector<std::string>& predictions,
                        const std::vector<std::vector<std::string>>& references) {
  return task_score(per_sample(predictions, references, string_match_all_sample));
}

double string_match_part(const std::vector<std::string>& predictions,
                         const std::vector<std::vector<std::string>>& references) {
  return task_score(per_sample(predictions, references, string_match_part_sample));
}

// constants.py: base task -> metric; synthetic.yaml (tasks.h): task name -> base task.
std::string_view metric_for_task(std::string_view task) {
  std::string_view base = task;
  for (const auto& synthetic : tasks::text::ruler::kSyntheticTasks)
    if (synthetic.name == task) base = script_name(synthetic.script);
  if (base == "qa") return "string_match_part";
  if (base == "niah" || base == "variable_tracking" || base == "common_words_extraction" ||
      base == "freq_words_extraction")
    return "string_match_all";
  std::string known;
  for (const auto& synthetic : tasks::text::ruler::kSyntheticTasks) known += std::string(synthetic.name) + ", ";
  throw std::invalid_argument("unknown RULER task \"" + std::string(task) + "\" (known: " + known +
                              "or a base task niah, variable_tracking, common_words_extraction, "
                              "freq_words_extraction, qa)");
}

}  // namespace ctxbench::scoring::ruler
