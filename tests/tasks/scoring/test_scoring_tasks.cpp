// RULER, passkey, InfiniteBench, NIAH (deterministic) and LongBench v2 scorers.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "tasks/scoring/longbench_v2.h"
#include "tasks/scoring/needle.h"
#include "tasks/scoring/python_text.h"
#include "tasks/scoring/ruler.h"

using Strings = std::vector<std::string>;
namespace needle = ctxbench::scoring::needle;
namespace ruler = ctxbench::scoring::ruler;
namespace v2 = ctxbench::scoring::longbench_v2;

TEST_CASE("RULER postprocess: strip, control characters to newlines, strip", "[scoring]") {
  CHECK(ruler::postprocess_prediction("  ans\x01wer\t ") == "ans\nwer");
  CHECK(ruler::postprocess_prediction("\x02value\x1f") == "value");  // stripped again after the replacement
  CHECK(ruler::postprocess_prediction("\u3000 x \u00a0") == "x");    // str.strip() knows Unicode spaces
  CHECK(ruler::postprocess_prediction("a\x7f"
                                      "b") ==
        "a\x7f"
        "b");  // DEL is outside [\x00-\x1f]
  CHECK(ruler::postprocess_prediction(" \n\t ").empty());
}

TEST_CASE("RULER string_match_all / string_match_part per sample and per task", "[scoring]") {
  CHECK(ruler::string_match_all_sample("The numbers are 123 and 456", {"123", "456", "789"}) == 2.0 / 3);
  CHECK(ruler::string_match_all_sample("ABC", {"abc"}) == 1.0);   // case-insensitive
  CHECK(ruler::string_match_all_sample("1234", {"123"}) == 1.0);  // substring, not word
  CHECK(ruler::string_match_part_sample("the answer is Paris", {"London", "paris"}) == 1.0);
  CHECK(ruler::string_match_part_sample("", {"x"}) == 0.0);
  CHECK_THROWS_AS(ruler::string_match_all_sample("x", {}), std::invalid_argument);
  // sum([2/3, 1, 0]) / 3 * 100 = 55.55555555555555 -> 55.56
  CHECK(ruler::string_match_all({"123 456", "abc", ""}, {{"123", "456", "789"}, {"ABC"}, {"q"}}) == 55.56);
  CHECK(ruler::string_match_part({"a", "b"}, {{"a", "z"}, {"z"}}) == 50.0);
  CHECK_THROWS_AS(ruler::string_match_all({"a"}, {}), std::invalid_argument);
  // Random check against a direct count of found references.
  std::mt19937 rng(8);
  std::uniform_int_distribution<int> digit(0, 9);
  for (int trial = 0; trial < 500; ++trial) {
    std::string prediction;
    for (int k = 0; k < 12; ++k) prediction += std::to_string(digit(rng));
    Strings references;
    int found = 0;
    for (int k = 0; k < 4; ++k) {
      references.push_back(std::to_string(digit(rng)) + std::to_string(digit(rng)));
      found += prediction.find(references.back()) != std::string::npos;
    }
    REQUIRE(ruler::string_match_all_sample(prediction, references) == found / 4.0);
    REQUIRE(ruler::string_match_part_sample(prediction, references) == (found > 0 ? 1.0 : 0.0));
  }
}

TEST_CASE("RULER task names map to the constants.py metric", "[scoring]") {
  CHECK(ruler::metric_for_task("niah_single_1") == "string_match_all");
  CHECK(ruler::metric_for_task("niah_multiquery") == "string_match_all");
  CHECK(ruler::metric_for_task("vt") == "string_match_all");
  CHECK(ruler::metric_for_task("cwe") == "string_match_all");
  CHECK(ruler::metric_for_task("fwe") == "string_match_all");
  CHECK(ruler::metric_for_task("qa_1") == "string_match_part");
  CHECK(ruler::metric_for_task("qa_2") == "string_match_part");
  CHECK(ruler::metric_for_task("qa") == "string_match_part");
  CHECK_THROWS_WITH(ruler::metric_for_task("qa_3"), Catch::Contains("unknown RULER task \"qa_3\""));
}

TEST_CASE("passkey: the first integer of the response equals the key", "[scoring]") {
  CHECK(needle::passkey_correct(" 12345. Remember it.", "12345"));
  CHECK(needle::passkey_correct("The pass key is 0012345", "12345"));         // int("0012345") == 12345
  CHECK(needle::passkey_correct("\uff11\uff12\uff13\uff14\uff15", "12345"));  // int() reads full-width digits
  CHECK_FALSE(needle::passkey_correct("pass key 123 45", "12345"));
  CHECK_FALSE(needle::passkey_correct("12 then 12345", "12345"));
  CHECK_FALSE(needle::passkey_correct("", "12345"));
  CHECK_THROWS_AS(needle::passkey_correct("1", "12a"), std::invalid_argument);
}

TEST_CASE("InfiniteBench passkey, number_string and kv_retrieval", "[scoring]") {
  CHECK(needle::infinitebench_first_int("abc 0123 45") == "0123");
  CHECK(needle::infinitebench_first_int("none") == "");
  CHECK(needle::infinitebench_passkey_correct("The pass key is 71432.", "71432"));
  CHECK_FALSE(needle::infinitebench_passkey_correct("0123", "123"));         // compared as strings
  CHECK_FALSE(needle::infinitebench_passkey_correct("\uff11\uff12", "12"));  // [^0-9] is ASCII only
  CHECK(needle::infinitebench_number_string_correct("The sequence is 9876543210.", "9876543210"));
  CHECK(needle::infinitebench_kv_retrieval_correct("The value is \"a1b2-c3\".", "a1b2-c3"));
  CHECK(needle::infinitebench_kv_retrieval_correct("{key: 'v-1'}", "v-1"));
  CHECK_FALSE(needle::infinitebench_kv_retrieval_correct("value a1b2-c3x", "a1b2-c3"));  // whole words only
}

TEST_CASE("NIAH phrase recall (deterministic, not the LLM judge)", "[scoring]") {
  const std::string answer = "eat a sandwich and sit in Dolores Park on a sunny day";
  CHECK(needle::niah_phrase_recall_not_llm_judge(
            "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.",
            {answer}) == 1.0);
  // Required: eat sandwich and sit in dolores park on sunny day (10 words); "Eat a sandwich." has 2.
  CHECK(needle::niah_phrase_recall_not_llm_judge("Eat a sandwich.", {answer}) == 0.2);
  CHECK(needle::niah_phrase_recall_not_llm_judge("figs and goat cheese", {"Figs", "Prosciutto", "Goat cheese"}) ==
        0.75);
  CHECK(needle::niah_phrase_recall_not_llm_judge("", {answer}) == 0.0);
  CHECK_THROWS_AS(needle::niah_phrase_recall_not_llm_judge("x", {"the a"}), std::invalid_argument);
}

TEST_CASE("LongBench v2 answer extraction", "[scoring]") {
  CHECK(v2::extract_answer("**The correct answer is (B)**") == 'B');
  CHECK(v2::extract_answer("The correct answer is C.") == 'C');
  CHECK(v2::extract_answer("The correct answer is D and The correct answer is (A)") == 'A');  // (X) form first
  CHECK(v2::extract_answer("The correct answer is (E). The correct answer is A") == 'A');
  CHECK(v2::extract_answer("The correct answer is Apple") == 'A');         // no word boundary in the pattern
  CHECK_FALSE(v2::extract_answer("the correct answer is B").has_value());  // case-sensitive
  CHECK_FALSE(v2::extract_answer("The correct answer is: B").has_value());
  CHECK(v2::extract_answer("The correct *answer* is (C)") == 'C');  // "*" removed first
  CHECK(v2::is_correct("  The correct answer is (B)\n", "B"));
  CHECK_FALSE(v2::is_correct("The correct answer is (B)", "C"));
  CHECK_FALSE(v2::is_correct("no answer", "A"));
}

TEST_CASE("LongBench v2 summary: Overall/Easy/Hard/Short/Medium/Long, round(..., 1)", "[scoring]") {
  const std::vector<v2::JudgedItem> items = {
      {true, "easy", "short"}, {false, "easy", "short"}, {true, "hard", "medium"},
      {true, "hard", "long"},  {false, "hard", "long"},  {false, "hard", "long"},
  };
  const v2::Summary s = v2::summarize(items);
  CHECK(s.overall == 50.0);  // 3/6
  CHECK(s.easy == 50.0);     // 1/2
  CHECK(s.hard == 50.0);     // 2/4
  CHECK(s.short_ == 50.0);
  CHECK(s.medium == 100.0);
  CHECK(s.long_ == 33.3);  // 33.333... -> 33.3
  const v2::Summary only_easy = v2::summarize({{true, "easy", "short"}, {true, "easy", "short"}, {false, "easy", "x"}});
  CHECK(only_easy.overall == 66.7);
  CHECK(only_easy.long_ == 0.0);  // anything but short/medium counts as long
  CHECK(std::isnan(only_easy.hard));
  CHECK(std::isnan(only_easy.medium));
}
