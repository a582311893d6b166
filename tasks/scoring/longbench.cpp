#include "tasks/scoring/longbench.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "core/params.h"
#include "tasks/scoring/python_number.h"
#include "tasks/scoring/python_text.h"
#include "tasks/scoring/sequence_matcher.h"

namespace ctxbench::scoring::longbench {
namespace {

constexpr std::string_view kPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";  // Python string.punctuation

std::string remove_punctuation(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text)
    if (kPunctuation.find(ch) == std::string_view::npos) out.push_back(ch);
  return out;
}

// re.sub(r"\b(a|an|the)\b", " ", text): a match is exactly a maximal run of word characters equal to one
// of the articles, since \b must hold on both sides.
std::string remove_articles(std::string_view text) {
  const std::u32string chars = py::decode_utf8(text);
  std::u32string out;
  out.reserve(chars.size());
  size_t i = 0;
  while (i < chars.size()) {
    if (!py::is_word_char(chars[i])) {
      out.push_back(chars[i++]);
      continue;
    }
    size_t end = i;
    while (end < chars.size() && py::is_word_char(chars[end])) ++end;
    const std::u32string_view word(chars.data() + i, end - i);
    if (word == U"a" || word == U"an" || word == U"the") {
      out.push_back(U' ');
    } else {
      out.append(word);
    }
    i = end;
  }
  return py::encode_utf8(out);
}

double fraction_equal(const std::vector<std::string>& numbers, std::string_view target) {
  if (numbers.empty()) return 0.0;
  const auto right = std::count(numbers.begin(), numbers.end(), target);
  return static_cast<double>(right) / static_cast<double>(numbers.size());
}

// The first `\d+` after the first occurrence of `prefix` that is directly followed by a digit.
std::string first_number_after(std::string_view text, std::string_view prefix) {
  for (size_t at = text.find(prefix); at != std::string_view::npos; at = text.find(prefix, at + 1)) {
    const std::string_view rest = text.substr(at + prefix.size());
    const std::vector<std::string> runs = py::find_decimal_runs(rest);
    if (!runs.empty() && rest.starts_with(runs.front())) return runs.front();
  }
  throw std::invalid_argument("ground truth \"" + std::string(text) + "\" has no \"" + std::string(prefix) +
                              "<number>\" (the original raises IndexError)");
}

// ---- rouge-l (pltrdy rouge 1.0.1, Rouge().get_scores(hyp, ref, avg=True)["rouge-l"]["f"]) ----

using Sentence = std::vector<int>;  // word ids

// hyp.split(".") -> non-empty pieces -> " ".join(piece.split()) -> words by split(" "). A whitespace-only
// piece becomes the sentence "" whose single word is "" (counted as a word, as in the original).
std::vector<Sentence> rouge_sentences(std::string_view text, std::unordered_map<std::string, int>& word_ids) {
  std::vector<Sentence> sentences;
  for (const std::string& piece : py::split(text, ".")) {
    if (piece.empty()) continue;
    Sentence sentence;
    for (const std::string& word : py::split(py::join(py::split_whitespace(piece), " "), " "))
      sentence.push_back(word_ids.try_emplace(word, static_cast<int>(word_ids.size())).first->second);
    sentences.push_back(std::move(sentence));
  }
  return sentences;
}

size_t unique_word_count(const std::vector<Sentence>& sentences) {
  std::unordered_set<int> words;
  for (const Sentence& sentence : sentences) words.insert(sentence.begin(), sentence.end());
  return words.size();
}

// _recon_lcs(x, y): adds the words of the LCS the original reconstructs (same tie-breaking) to `lcs_words`.
// Returns false where the original's recursion would exceed kRougeRecursionFrames.
bool add_lcs_words(const Sentence& x, const Sentence& y, std::unordered_set<int>& lcs_words) {
  const size_t rows = x.size() + 1, cols = y.size() + 1;
  if (std::min(x.size(), y.size()) + 1 > kRougeRecursionFrames) return false;  // every path is this long
  std::vector<unsigned> table(rows * cols, 0);
  const auto at = [&](size_t i, size_t j) -> unsigned& { return table[i * cols + j]; };
  for (size_t i = 1; i < rows; ++i)
    for (size_t j = 1; j < cols; ++j)
      at(i, j) = x[i - 1] == y[j - 1] ? at(i - 1, j - 1) + 1 : std::max(at(i - 1, j), at(i, j - 1));

  std::vector<int> words;
  size_t i = x.size(), j = y.size(), frames = 1;
  while (i > 0 && j > 0) {
    if (x[i - 1] == y[j - 1]) {
      words.push_back(x[i - 1]);
      --i;
      --j;
    } else if (at(i - 1, j) > at(i, j - 1)) {
      --i;
    } else {
      --j;
    }
    if (++frames > kRougeRecursionFrames) return false;
  }
  lcs_words.insert(words.begin(), words.end());
  return true;
}

}  // namespace

UnsupportedMetric::UnsupportedMetric(std::string_view metric)
    : std::invalid_argument("metric " + std::string(metric) +
                            " is unsupported (needs a Chinese word segmenter: jieba in the original)") {}

std::string normalize_answer(std::string_view text) {
  return py::join(py::split_whitespace(remove_articles(remove_punctuation(py::lower(text)))), " ");
}

double qa_f1_score(std::string_view prediction, std::string_view ground_truth) {
  const std::vector<std::string> predicted = py::split_whitespace(normalize_answer(prediction));
  const std::vector<std::string> expected = py::split_whitespace(normalize_answer(ground_truth));
  std::unordered_map<std::string, long> expected_counts;
  for (const std::string& token : expected) ++expected_counts[token];
  long same = 0;  // sum of (Counter(prediction) & Counter(ground_truth)).values()
  for (const std::string& token : predicted) {
    auto found = expected_counts.find(token);
    if (found != expected_counts.end() && found->second > 0) {
      --found->second;
      ++same;
    }
  }
  if (same == 0) return 0.0;
  const double precision = 1.0 * static_cast<double>(same) / static_cast<double>(predicted.size());
  const double recall = 1.0 * static_cast<double>(same) / static_cast<double>(expected.size());
  return (2 * precision * recall) / (precision + recall);
}

double rouge_score(std::string_view prediction, std::string_view ground_truth) {
  std::unordered_map<std::string, int> word_ids;
  const std::vector<Sentence> hypothesis = rouge_sentences(prediction, word_ids);
  const std::vector<Sentence> reference = rouge_sentences(ground_truth, word_ids);
  if (hypothesis.empty() || reference.empty()) return 0.0;  // ValueError in the original

  std::unordered_set<int> lcs_union;  // union of LCS words over all (reference, hypothesis) sentence pairs
  for (const Sentence& reference_sentence : reference)
    for (const Sentence& hypothesis_sentence : hypothesis)
      if (!add_lcs_words(reference_sentence, hypothesis_sentence, lcs_union)) return 0.0;  // RecursionError

  const double llcs = static_cast<double>(lcs_union.size());
  const double r_lcs = llcs / static_cast<double>(unique_word_count(reference));
  const double p_lcs = llcs / static_cast<double>(unique_word_count(hypothesis));
  return 2.0 * ((p_lcs * r_lcs) / (p_lcs + r_lcs + 1e-8));
}

double classification_score(std::string_view prediction, std::string_view ground_truth,
                            const std::vector<std::string>& all_classes) {
  std::vector<std::string> matches;
  for (const std::string& class_name : all_classes)
    if (py::contains(prediction, class_name)) matches.push_back(class_name);
  // `for match_term in em_match_list: ... em_match_list.remove(match_term)`: Python's list iterator keeps
  // its index, so removing an earlier element makes it skip the element after.
  for (size_t next = 0; next < matches.size();) {
    const std::string term = matches[next++];
    if (py::contains(ground_truth, term) && term != ground_truth)
      matches.erase(std::find(matches.begin(), matches.end(), term));
  }
  // The original's `if em_match_list != 0` is always true, so its difflib fallback never runs.
  const bool kept = std::find(matches.begin(), matches.end(), ground_truth) != matches.end();
  return kept ? 1.0 / static_cast<double>(matches.size()) : 0.0;
}

double retrieval_score(std::string_view prediction, std::string_view ground_truth) {
  return fraction_equal(py::find_decimal_runs(prediction), first_number_after(ground_truth, "Paragraph "));
}

double retrieval_zh_score(std::string_view prediction, std::string_view ground_truth) {
  return fraction_equal(py::find_decimal_runs(prediction), first_number_after(ground_truth, "段落"));
}

double count_score(std::string_view prediction, std::string_view ground_truth) {
  return fraction_equal(py::find_decimal_runs(prediction), ground_truth);
}

double code_sim_score(std::string_view prediction, std::string_view ground_truth) {
  const size_t start = std::min(prediction.find_first_not_of('\n'), prediction.size());
  std::string chosen;
  for (const std::string& line : py::split(prediction.substr(start), "\n")) {
    if (!py::contains(line, "`") && !py::contains(line, "#") && !py::contains(line, "//")) {
      chosen = line;
      break;
    }
  }
  return fuzz_ratio(chosen, ground_truth) / 100.0;
}

bool is_known_metric(std::string_view metric) {
  static constexpr std::array<std::string_view, 9> kMetrics = {
      "qa_f1_score",     "qa_f1_zh_score",     "rouge_score", "rouge_zh_score", "classification_score",
      "retrieval_score", "retrieval_zh_score", "count_score", "code_sim_score"};
  return std::find(kMetrics.begin(), kMetrics.end(), metric) != kMetrics.end();
}

double metric_score(std::string_view metric, std::string_view prediction, std::string_view ground_truth,
                    const std::vector<std::string>& all_classes) {
  if (metric == "qa_f1_score") return qa_f1_score(prediction, ground_truth);
  if (metric == "rouge_score") return rouge_score(prediction, ground_truth);
  if (metric == "classification_score") return classification_score(prediction, ground_truth, all_classes);
  if (metric == "retrieval_score") return retrieval_score(prediction, ground_truth);
  if (metric == "retrieval_zh_score") return retrieval_zh_score(prediction, ground_truth);
  if (metric == "count_score") return count_score(prediction, ground_truth);
  if (metric == "code_sim_score") return code_sim_score(prediction, ground_truth);
  if (metric == "qa_f1_zh_score" || metric == "rouge_zh_score") throw UnsupportedMetric(metric);
  throw std::invalid_argument("unknown LongBench metric \"" + std::string(metric) + "\"");
}

bool uses_first_line(std::string_view dataset) {
  return dataset == "trec" || dataset == "triviaqa" || dataset == "samsum" || dataset == "lsht";
}

std::string first_line(std::string_view prediction) {
  const size_t start = std::min(prediction.find_first_not_of('\n'), prediction.size());
  const std::string_view rest = prediction.substr(start);
  return std::string(rest.substr(0, rest.find('\n')));
}

DatasetMetrics DatasetMetrics::load(const std::filesystem::path& json_file) {
  std::ifstream in(json_file);
  if (!in) throw InputError(json_file.string() + ": cannot open the LongBench dataset->metric table");
  nlohmann::json table;
  try {
    table = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& error) {
    throw InputError(json_file.string() + ": not valid JSON: " + error.what());
  }
  if (!table.is_object()) throw InputError(json_file.string() + ": expected an object dataset -> metric");
  DatasetMetrics metrics;
  for (const auto& [dataset, metric] : table.items()) {
    if (!metric.is_string() || !is_known_metric(metric.get<std::string>()))
      throw InputError(json_file.string() + ": dataset \"" + dataset +
                       "\" must map to a metrics.py function name, got " + metric.dump());
    metrics.metric_by_dataset_.emplace(dataset, metric.get<std::string>());
  }
  return metrics;
}

const std::string& DatasetMetrics::metric_for(std::string_view dataset) const {
  const auto found = metric_by_dataset_.find(dataset);
  if (found != metric_by_dataset_.end()) return found->second;
  std::string known;
  for (const auto& [name, metric] : metric_by_dataset_) known += (known.empty() ? "" : ", ") + name;
  throw std::invalid_argument("unknown LongBench dataset \"" + std::string(dataset) + "\" (known: " + known + ")");
}

double sample_score(std::string_view dataset, std::string_view metric, std::string_view prediction,
                    const std::vector<std::string>& ground_truths, const std::vector<std::string>& all_classes) {
  if (ground_truths.empty()) throw std::invalid_argument("LongBench sample has an empty answer list");
  const std::string scored = uses_first_line(dataset) ? first_line(prediction) : std::string(prediction);
  double score = 0.0;
  for (const std::string& ground_truth : ground_truths)
    score = std::max(score, metric_score(metric, scored, ground_truth, all_classes));
  return score;
}

double dataset_score(const std::vector<double>& sample_scores) {
  if (sample_scores.empty()) throw std::invalid_argument("LongBench dataset score of no samples");
  return py::python_round(100 * py::sequential_sum(sample_scores) / static_cast<double>(sample_scores.size()), 2);
}

LongBenchEScores dataset_scores_by_length(const std::vector<double>& sample_scores,
                                          const std::vector<double>& lengths) {
  if (sample_scores.size() != lengths.size())
    throw std::invalid_argument("LongBench-E: " + std::to_string(sample_scores.size()) + " scores but " +
                                std::to_string(lengths.size()) + " lengths");
  std::vector<double> short_scores, medium_scores, long_scores;
  for (size_t k = 0; k < sample_scores.size(); ++k) {
    auto& bucket = lengths[k] < 4000 ? short_scores : lengths[k] < 8000 ? medium_scores : long_scores;
    bucket.push_back(sample_scores[k]);
  }
  const auto bucket_score = [](const std::vector<double>& bucket) {
    return py::numpy_round(100 * py::numpy_mean(bucket), 2);
  };
  return {bucket_score(short_scores), bucket_score(medium_scores), bucket_score(long_scores)};
}

}  // namespace ctxbench::scoring::longbench
