#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/source_tree.h"
#include "tasks/scoring/longbench.h"

namespace lb = ctxbench::scoring::longbench;
using Strings = std::vector<std::string>;

namespace {

const std::filesystem::path kLongBenchData = ctxbench::source_tree() / "datasets" / "longbench";

std::string random_ascii_text(std::mt19937& rng, int max_words) {
  static const Strings kPieces = {"a",  "an", "the", "The", "A",  "cat", "Dog", "an_",   "x1", "the.",
                                  "a,", ".",  "..",  "'s",  "--", "(a)", "ThE", "theme", "1",  "?"};
  static const Strings kGaps = {" ", " ", "  ", "\t", "\n", "", ".", ". "};
  std::uniform_int_distribution<int> words(0, max_words);
  std::uniform_int_distribution<size_t> piece(0, kPieces.size() - 1), gap(0, kGaps.size() - 1);
  std::string text;
  for (int k = words(rng); k > 0; --k) text += kPieces[piece(rng)] + kGaps[gap(rng)];
  return text;
}

Strings ascii_split(const std::string& text) {
  std::istringstream in(text);
  Strings words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

// normalize_answer written with std::regex (ASCII \b agrees with Python's on ASCII text).
std::string reference_normalize(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  text = std::regex_replace(text, std::regex(R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])"), "");
  text = std::regex_replace(text, std::regex(R"(\b(a|an|the)\b)"), " ");
  std::string joined;
  for (const std::string& w : ascii_split(text)) joined += (joined.empty() ? "" : " ") + w;
  return joined;
}

double reference_f1(const std::string& prediction, const std::string& ground_truth) {
  Strings p = ascii_split(reference_normalize(prediction)), g = ascii_split(reference_normalize(ground_truth));
  std::sort(p.begin(), p.end());
  std::sort(g.begin(), g.end());
  Strings common;
  std::set_intersection(p.begin(), p.end(), g.begin(), g.end(), std::back_inserter(common));
  if (common.empty()) return 0.0;
  const double precision = 1.0 * common.size() / p.size(), recall = 1.0 * common.size() / g.size();
  return 2 * precision * recall / (precision + recall);
}

// pltrdy rouge 1.0.1 rouge-l transcribed literally (recursive reconstruction, sets of words), for small inputs.
double reference_rouge_l(const std::string& hypothesis, const std::string& reference) {
  const auto sentences = [](const std::string& text) {
    std::vector<Strings> out;
    size_t start = 0;
    while (true) {
      const size_t dot = text.find('.', start);
      const std::string piece = text.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      if (!piece.empty()) {
        std::string normalized;
        for (const std::string& w : ascii_split(piece)) normalized += (normalized.empty() ? "" : " ") + w;
        Strings words;
        size_t s = 0;
        for (size_t sp; (sp = normalized.find(' ', s)) != std::string::npos; s = sp + 1)
          words.push_back(normalized.substr(s, sp - s));
        words.push_back(normalized.substr(s));
        out.push_back(words);
      }
      if (dot == std::string::npos) return out;
      start = dot + 1;
    }
  };
  const auto hyp = sentences(hypothesis), ref = sentences(reference);
  if (hyp.empty() || ref.empty()) return 0.0;
  std::set<std::string> union_words, ref_words, hyp_words;
  for (const Strings& s : ref) ref_words.insert(s.begin(), s.end());
  for (const Strings& s : hyp) hyp_words.insert(s.begin(), s.end());
  for (const Strings& r : ref) {
    for (const Strings& h : hyp) {
      std::map<std::pair<size_t, size_t>, int> table;
      for (size_t i = 0; i <= r.size(); ++i)
        for (size_t j = 0; j <= h.size(); ++j)
          table[{i, j}] = (i == 0 || j == 0)     ? 0
                          : r[i - 1] == h[j - 1] ? table[{i - 1, j - 1}] + 1
                                                 : std::max(table[{i - 1, j}], table[{i, j - 1}]);
      std::function<void(size_t, size_t)> recon = [&](size_t i, size_t j) {
        if (i == 0 || j == 0) return;
        if (r[i - 1] == h[j - 1]) {
          recon(i - 1, j - 1);
          union_words.insert(r[i - 1]);
        } else if (table[{i - 1, j}] > table[{i, j - 1}]) {
          recon(i - 1, j);
        } else {
          recon(i, j - 1);
        }
      };
      recon(r.size(), h.size());
    }
  }
  const double llcs = static_cast<double>(union_words.size());
  const double r_lcs = llcs / ref_words.size(), p_lcs = llcs / hyp_words.size();
  return 2.0 * ((p_lcs * r_lcs) / (p_lcs + r_lcs + 1e-8));
}

std::string numbered_words(size_t count) {
  std::string text;
  for (size_t k = 0; k < count; ++k) text += (k ? " w" : "w") + std::to_string(k);
  return text;
}

}  // namespace

TEST_CASE("normalize_answer: lower case, punctuation, whole-word articles, whitespace", "[scoring]") {
  CHECK(lb::normalize_answer("The  Eiffel\tTower, in Paris!") == "eiffel tower in paris");
  CHECK(lb::normalize_answer("a an the anthem theater") == "anthem theater");
  CHECK(lb::normalize_answer("the_cat A-Team") == "thecat ateam");  // "_" and "-" are punctuation, removed first
  CHECK(lb::normalize_answer("(The) end.") == "end");
  CHECK(lb::normalize_answer("caf\u00e9 the na\u00efve") == "caf\u00e9 na\u00efve");
  CHECK(lb::normalize_answer("\u00e9the a\u4e2d") == "\u00e9the a\u4e2d");  // é and 中 are word characters: no \b
  CHECK(lb::normalize_answer("the\u2019a") == "\u2019");                    // ’ is not
  CHECK(lb::normalize_answer("") == "");
}

TEST_CASE("normalize_answer equals a std::regex transcription on random ASCII text", "[scoring]") {
  std::mt19937 rng(17);
  for (int trial = 0; trial < 2000; ++trial) {
    const std::string text = random_ascii_text(rng, 12);
    REQUIRE(lb::normalize_answer(text) == reference_normalize(text));
  }
}

TEST_CASE("qa_f1_score: hand-worked values and a sorted-multiset reference", "[scoring]") {
  CHECK(lb::qa_f1_score("The Eiffel Tower, in Paris!", "Eiffel tower") == 2 * 0.5 * 1.0 / 1.5);
  CHECK(lb::qa_f1_score("cat cat dog", "cat dog dog") == Approx(2.0 / 3).epsilon(1e-15));  // multiset overlap 2
  CHECK(lb::qa_f1_score("", "anything") == 0.0);
  CHECK(lb::qa_f1_score("the", "a") == 0.0);  // both normalize to nothing
  CHECK(lb::qa_f1_score("Paris.", "paris") == 1.0);
  std::mt19937 rng(5);
  for (int trial = 0; trial < 2000; ++trial) {
    const std::string p = random_ascii_text(rng, 10), g = random_ascii_text(rng, 6);
    REQUIRE(lb::qa_f1_score(p, g) == reference_f1(p, g));
  }
}

TEST_CASE("rouge_score: sentences on '.', unique words, union LCS, case-sensitive, errors give 0", "[scoring]") {
  // Two hypothesis sentences jointly cover the one reference sentence.
  CHECK(lb::rouge_score("the cat sat. on the mat", "the cat sat on the mat") == 2.0 * (1.0 / (2.0 + 1e-8)));
  CHECK(lb::rouge_score("The cat", "the cat") == 2.0 * (0.25 / (1.0 + 1e-8)));  // only "cat" matches
  CHECK(lb::rouge_score("a b a b", "a b a b") == 2.0 * (1.0 / (2.0 + 1e-8)));   // 2 unique words each
  CHECK(lb::rouge_score("", "x") == 0.0);                                       // empty hypothesis: ValueError -> 0
  CHECK(lb::rouge_score("...", "x") == 0.0);                                    // only empty pieces
  CHECK(lb::rouge_score("x", "") == 0.0);
  CHECK(lb::rouge_score("  .", "  .") == 2.0 * (1.0 / (2.0 + 1e-8)));  // whitespace piece = the word ""
  CHECK(lb::rouge_score(" . ", "x") == 0.0);
}

TEST_CASE("rouge_score: the original's recursion limit turns long sentence pairs into 0", "[scoring]") {
  // Identical sentences of n distinct words need n + 1 frames; CPython 3.11 allows 991 under eval.py.
  const std::string fits = numbered_words(990), too_long = numbered_words(991);
  CHECK(lb::rouge_score(fits, fits) == 2.0 * (1.0 / (2.0 + 1e-8)));
  CHECK(lb::rouge_score(too_long, too_long) == 0.0);
  // Split by a "." the same words are fine again.
  const std::string split = numbered_words(600) + ". " + numbered_words(600);
  CHECK(lb::rouge_score(split, split) > 0.99);
}

TEST_CASE("rouge_score equals a literal recursive transcription on random texts", "[scoring]") {
  std::mt19937 rng(99);
  for (int trial = 0; trial < 1500; ++trial) {
    const std::string h = random_ascii_text(rng, 14), r = random_ascii_text(rng, 14);
    REQUIRE(lb::rouge_score(h, r) == reference_rouge_l(h, r));
  }
}

TEST_CASE("classification_score keeps the official erase-while-iterating loop", "[scoring]") {
  CHECK(lb::classification_score("category", "category", {"cat", "category", "dog"}) == 1.0);
  // "a" is erased, so the iterator skips "ab", which stays although it is a substring of the truth.
  CHECK(lb::classification_score("abc", "abc", {"a", "ab", "abc"}) == 0.5);
  CHECK(lb::classification_score("dog", "dog", {"dog", "dog", "cat"}) == 0.5);  // duplicate classes both count
  CHECK(lb::classification_score("cat", "cat", {"at", "at", "cat"}) == 0.5);    // only the first "at" goes
  CHECK(lb::classification_score("dog", "cat", {"cat", "dog"}) == 0.0);
  CHECK(lb::classification_score("nothing here", "cat", {"cat", "dog"}) == 0.0);
  CHECK(lb::classification_score("Location", "Location", {}) == 0.0);
}

TEST_CASE("retrieval_score and count_score count every number in the prediction", "[scoring]") {
  CHECK(lb::retrieval_score("Paragraph 3 and Paragraph 30, maybe 3", "Paragraph 3") == 2.0 / 3);
  CHECK(lb::retrieval_score("3 \uff13", "Paragraph 3") == 0.5);  // full-width 3 is a \d run, but not "3"
  CHECK(lb::retrieval_score("no number", "Paragraph 3") == 0.0);
  CHECK(lb::retrieval_score("7", "Paragraphs 2, Paragraph 7") == 1.0);  // first "Paragraph <digits>"
  CHECK_THROWS_WITH(lb::retrieval_score("3", "paragraph 3"), Catch::Contains("has no \"Paragraph <number>\""));
  CHECK(lb::retrieval_zh_score("\u6bb5\u843d12", "\u6bb5\u843d12") == 1.0);
  CHECK(lb::count_score("There are 12 unique paragraphs, not 13 or 012", "12") == 1.0 / 3);
  CHECK(lb::count_score("", "12") == 0.0);
}

TEST_CASE("code_sim_score takes the first line without ` # or // and rates it with fuzz.ratio", "[scoring]") {
  CHECK(lb::code_sim_score("\n\n```python\n# comment\nx = foo(1)  // note\nreturn x\n", "return x") == 1.0);
  CHECK(lb::code_sim_score("# only a comment", "abc") == 0.0);  // no line left: "" vs "abc"
  CHECK(lb::code_sim_score("", "") == 1.0);
  CHECK(lb::code_sim_score("abxcd\nabcd", "abcd") == 0.89);
}

TEST_CASE("first-line rule, max over answers, dataset score", "[scoring]") {
  CHECK(lb::uses_first_line("trec"));
  CHECK_FALSE(lb::uses_first_line("hotpotqa"));
  CHECK(lb::first_line("\n\nLocation\nNumber") == "Location");
  CHECK(lb::first_line("") == "");
  const Strings classes = {"Location", "Number"};
  CHECK(lb::sample_score("trec", "classification_score", "\nLocation\nNumber", {"Location"}, classes) == 1.0);
  CHECK(lb::sample_score("qasper", "classification_score", "\nLocation\nNumber", {"Location"}, classes) == 0.5);
  CHECK(lb::sample_score("hotpotqa", "qa_f1_score", "Paris", {"London", "Paris"}, {}) == 1.0);
  CHECK_THROWS_AS(lb::sample_score("hotpotqa", "qa_f1_score", "Paris", {}, {}), std::invalid_argument);
  CHECK(lb::dataset_score({1.0, 0.0, 0.5}) == 50.0);
  CHECK(lb::dataset_score({2.0 / 3, 1.0, 0.0}) == 55.56);
  CHECK_THROWS_AS(lb::dataset_score({}), std::invalid_argument);
}

TEST_CASE("LongBench-E buckets use NumPy's mean and rounding, empty buckets are NaN", "[scoring]") {
  const auto e = lb::dataset_scores_by_length({1.0, 0.5, 0.0, 0.0, 1.0, 0.25}, {100, 5000, 9000, 3999, 4000, 8000});
  CHECK(e.upto_4k == 50.0);        // {1, 0}
  CHECK(e.from_4k_to_8k == 75.0);  // {0.5, 1}
  CHECK(e.over_8k == 12.5);        // {0, 0.25}
  const auto only_short = lb::dataset_scores_by_length({0.48185}, {10});
  CHECK(only_short.upto_4k == 48.18);  // NumPy rounding; Python's round would give 48.19
  CHECK(std::isnan(only_short.from_4k_to_8k));
  CHECK(std::isnan(only_short.over_8k));
  CHECK_THROWS_AS(lb::dataset_scores_by_length({1.0}, {}), std::invalid_argument);
}

TEST_CASE("metric names: Chinese-segmenter metrics are reported as unsupported", "[scoring]") {
  CHECK_THROWS_AS(lb::metric_score("qa_f1_zh_score", "a", "a", {}), lb::UnsupportedMetric);
  CHECK_THROWS_WITH(lb::metric_score("rouge_zh_score", "a", "a", {}),
                    Catch::Contains("unsupported (needs a Chinese word segmenter"));
  CHECK_THROWS_WITH(lb::metric_score("bleu", "a", "a", {}), Catch::Contains("unknown LongBench metric"));
  CHECK(lb::metric_score("count_score", "1 2", "2", {}) == 0.5);
}

TEST_CASE("dataset2metric.json is eval.py's table, the config files share its datasets", "[scoring]") {
  const auto metrics = lb::DatasetMetrics::load(kLongBenchData / "dataset2metric.json");
  CHECK(metrics.table().size() == 21);
  CHECK(metrics.metric_for("hotpotqa") == "qa_f1_score");
  CHECK(metrics.metric_for("trec") == "classification_score");
  CHECK(metrics.metric_for("lsht") == "classification_score");
  CHECK(metrics.metric_for("passage_count") == "count_score");
  CHECK(metrics.metric_for("repobench-p") == "code_sim_score");
  CHECK(metrics.metric_for("vcsum") == "rouge_zh_score");
  CHECK_THROWS_WITH(metrics.metric_for("nq"), Catch::Contains("unknown LongBench dataset \"nq\""));
  for (const char* file : {"dataset2prompt.json", "dataset2maxlen.json"}) {
    std::ifstream in(kLongBenchData / file);
    const auto config = nlohmann::json::parse(in);
    REQUIRE(config.size() == 21);
    for (const auto& [dataset, metric] : metrics.table()) REQUIRE(config.contains(dataset));
  }
  std::ifstream prompts(kLongBenchData / "dataset2prompt.json", std::ios::binary);
  const std::string raw((std::istreambuf_iterator<char>(prompts)), std::istreambuf_iterator<char>());
  CHECK(raw.size() == 5439);  // 4979 characters of the official file, UTF-8 encoded, no final newline
  CHECK(raw.back() == '}');
}

TEST_CASE("DatasetMetrics rejects malformed tables naming the file", "[scoring]") {
  const auto dir = std::filesystem::temp_directory_path() / "ctxbench_scoring_tables";
  std::filesystem::create_directories(dir);
  const auto write = [&](const char* name, const char* text) {
    std::ofstream(dir / name) << text;
    return dir / name;
  };
  CHECK_THROWS_WITH(lb::DatasetMetrics::load(write("bad.json", "{not json")),
                    Catch::Contains("bad.json: not valid JSON"));
  CHECK_THROWS_WITH(lb::DatasetMetrics::load(write("list.json", "[1]")), Catch::Contains("expected an object"));
  CHECK_THROWS_WITH(lb::DatasetMetrics::load(write("metric.json", R"({"x": "bleu"})")),
                    Catch::Contains("dataset \"x\" must map to a metrics.py function name"));
  CHECK_THROWS_WITH(lb::DatasetMetrics::load(dir / "missing.json"), Catch::Contains("missing.json: cannot open"));
  std::filesystem::remove_all(dir);
}
