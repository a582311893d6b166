// The metric registry and the JSONL prediction-file scorers (fixtures under tests/fixtures/).
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "core/source_tree.h"
#include "tasks/scoring/longbench.h"
#include "tasks/scoring/prediction_files.h"
#include "tasks/scoring/registry.h"

namespace scoring = ctxbench::scoring;
using Strings = std::vector<std::string>;

namespace {

const std::filesystem::path kSource(ctxbench::source_tree());
const std::filesystem::path kFixtures = kSource / "tests" / "fixtures";

const scoring::longbench::DatasetMetrics& longbench_metrics() {
  static const auto metrics =
      scoring::longbench::DatasetMetrics::load(kSource / "datasets" / "longbench" / "dataset2metric.json");
  return metrics;
}

scoring::LongBenchFileScore score_longbench(const char* file, const char* dataset, bool by_length = false) {
  return scoring::score_longbench_predictions(kFixtures / "longbench" / file, dataset, by_length, longbench_metrics());
}

}  // namespace

TEST_CASE("registry: every metric is reachable by name and scores a known sample", "[scoring]") {
  std::set<std::string_view> names;
  for (const scoring::MetricInfo& metric : scoring::metrics()) {
    REQUIRE(names.insert(metric.name).second);
    REQUIRE(scoring::find_metric(metric.name) == &metric);
    REQUIRE_FALSE(metric.origin.empty());
  }
  CHECK(scoring::score_sample("qa_f1_score", "Paris", {"London", "paris"}) == 1.0);  // max over answers
  CHECK(scoring::score_sample("rouge_score", "the cat sat", {"the cat sat"}) == 2.0 * (1.0 / (2.0 + 1e-8)));
  CHECK(scoring::score_sample("classification_score", "abc", {"abc"}, {"a", "ab", "abc"}) == 0.5);
  CHECK(scoring::score_sample("retrieval_score", "Paragraph 2", {"Paragraph 2"}) == 1.0);
  CHECK(scoring::score_sample("retrieval_zh_score", "\u6bb5\u843d2", {"\u6bb5\u843d2"}) == 1.0);
  CHECK(scoring::score_sample("count_score", "3 or 4", {"4"}) == 0.5);
  CHECK(scoring::score_sample("code_sim_score", "# c\nreturn x", {"return x"}) == 1.0);
  CHECK(scoring::score_sample("string_match_all", " 111\x01 ", {"111", "222"}) == 0.5);
  CHECK(scoring::score_sample("string_match_part", "Paris", {"x", "PARIS"}) == 1.0);
  CHECK(scoring::score_sample("passkey", "It is 42.", {"42"}) == 1.0);
  CHECK(scoring::score_sample("infinitebench_passkey", "It is 042.", {"42"}) == 0.0);
  CHECK(scoring::score_sample("infinitebench_number_string", "It is 042.", {"042"}) == 1.0);
  CHECK(scoring::score_sample("infinitebench_kv_retrieval", "'abc-1'.", {"abc-1"}) == 1.0);
  CHECK(scoring::score_sample("niah_phrase_recall_not_llm_judge", "figs", {"figs", "goat cheese"}) == 1.0 / 3);
  CHECK(scoring::score_sample("longbench_v2_choice", "The correct answer is (D)", {"D"}) == 1.0);
}

TEST_CASE("registry: unknown metrics, empty answers and Chinese metrics are errors", "[scoring]") {
  CHECK(scoring::find_metric("bleu") == nullptr);
  CHECK_THROWS_WITH(scoring::score_sample("bleu", "x", {"x"}),
                    Catch::Contains("unknown metric \"bleu\"") && Catch::Contains("string_match_all"));
  CHECK_THROWS_WITH(scoring::score_sample("passkey", "1", {}), Catch::Contains("empty answer list"));
  CHECK_THROWS_AS(scoring::score_sample("qa_f1_zh_score", "x", {"x"}), scoring::longbench::UnsupportedMetric);
  CHECK_THROWS_AS(scoring::score_sample("rouge_zh_score", "x", {"x"}), scoring::longbench::UnsupportedMetric);
}

TEST_CASE("LongBench prediction files score as eval.py writes result.json", "[scoring]") {
  // trec: first-line rule; the last record's all_classes apply to every line (line 2 scores 1/2, not 1).
  const auto trec = score_longbench("trec.jsonl", "trec");
  CHECK(trec.samples == 4);
  CHECK(trec.metric == "classification_score");
  CHECK(trec.score == 62.5);
  CHECK(trec.result_json() == "{\n    \"trec\": 62.5\n}");

  const auto trec_e = score_longbench("trec.jsonl", "trec", true);
  CHECK(trec_e.scores_by_length.upto_4k == 100.0);
  CHECK(trec_e.scores_by_length.from_4k_to_8k == 75.0);
  CHECK(trec_e.scores_by_length.over_8k == 0.0);
  CHECK(trec_e.result_json() ==
        "{\n    \"trec\": {\n        \"0-4k\": 100.0,\n        \"4-8k\": 75.0,\n        \"8k+\": 0.0\n    }\n}");

  const auto hotpotqa = score_longbench("hotpotqa.jsonl", "hotpotqa");  // (1 + 2/3 + 0) / 3
  CHECK(hotpotqa.result_json() == "{\n    \"hotpotqa\": 55.56\n}");
}

TEST_CASE("LongBench prediction files: bad lines name the file and line", "[scoring]") {
  CHECK_THROWS_WITH(score_longbench("bad_json.jsonl", "hotpotqa"),
                    Catch::Contains("bad_json.jsonl:2: not a JSON line"));
  CHECK_THROWS_WITH(score_longbench("missing_answers.jsonl", "hotpotqa"),
                    Catch::Contains("missing_answers.jsonl:2: field \"answers\" is missing"));
  CHECK_THROWS_WITH(score_longbench("empty_answers.jsonl", "hotpotqa"),
                    Catch::Contains("empty_answers.jsonl:1: field \"answers\" must be a non-empty list of strings"));
  CHECK_THROWS_WITH(score_longbench("blank_line.jsonl", "hotpotqa"), Catch::Contains("blank_line.jsonl:2: not a JSON"));
  CHECK_THROWS_WITH(score_longbench("hotpotqa.jsonl", "hotpotqa", true),
                    Catch::Contains("hotpotqa.jsonl:1: field \"length\" is missing"));
  CHECK_THROWS_WITH(score_longbench("passage_retrieval_en.jsonl", "passage_retrieval_en"),
                    Catch::Contains("passage_retrieval_en.jsonl:2: ground truth \"the seventh paragraph\""));
  CHECK_THROWS_WITH(score_longbench("hotpotqa.jsonl", "trec"),
                    Catch::Contains("hotpotqa.jsonl:3: \"all_classes\" is null but trec uses classification_score"));
  CHECK_THROWS_WITH(score_longbench("does_not_exist.jsonl", "hotpotqa"), Catch::Contains("cannot open"));
  CHECK_THROWS_WITH(score_longbench("hotpotqa.jsonl", "nq"), Catch::Contains("unknown LongBench dataset"));
  CHECK_THROWS_AS(score_longbench("hotpotqa.jsonl", "dureader"), scoring::longbench::UnsupportedMetric);
}

TEST_CASE("RULER prediction files score as evaluate.py writes summary-<task>.csv", "[scoring]") {
  // Sample 1 has a control character (post-processed away), sample 2 is empty after stripping (a null),
  // a blank line is skipped, sample 3 finds 2 of 3 references: (1 + 0 + 2/3) / 3.
  const auto niah = scoring::score_ruler_predictions(kFixtures / "ruler" / "niah_single_1.jsonl", "niah_single_1");
  CHECK(niah.metric == "string_match_all");
  CHECK(niah.samples == 3);
  CHECK(niah.nulls == 1);
  CHECK(niah.score == 55.56);
  CHECK(niah.summary_csv() == "0,1\nTasks,niah_single_1\nScore,55.56\nNulls,1/3\n");

  const auto qa = scoring::score_ruler_predictions(kFixtures / "ruler" / "qa_1.jsonl", "qa_1");
  CHECK(qa.metric == "string_match_part");
  CHECK(qa.summary_csv() == "0,1\nTasks,qa_1\nScore,50.0\nNulls,0/2\n");

  CHECK_THROWS_WITH(scoring::score_ruler_predictions(kFixtures / "ruler" / "bad_outputs.jsonl", "niah_single_1"),
                    Catch::Contains("bad_outputs.jsonl:1: field \"outputs\" must be a non-empty list of strings"));
  CHECK_THROWS_WITH(scoring::score_ruler_predictions(kFixtures / "ruler" / "empty.jsonl", "vt"),
                    Catch::Contains("empty.jsonl: no predictions"));
  CHECK_THROWS_WITH(scoring::score_ruler_predictions(kFixtures / "ruler" / "qa_1.jsonl", "niah_x"),
                    Catch::Contains("unknown RULER task"));
  CHECK_THROWS_WITH(scoring::score_ruler_predictions(kFixtures / "longbench" / "hotpotqa.jsonl", "qa_1"),
                    Catch::Contains("hotpotqa.jsonl:1: field \"outputs\" is missing"));
}
