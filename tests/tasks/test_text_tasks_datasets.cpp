// Loaders of LongBench v1/E, LongBench v2 and InfiniteBench on small fixture files written for ctxbench:
// prompts from the official templates, middle truncation in tokens, scoring through the ported metrics,
// and errors that name the file and line.
#include <catch2/catch.hpp>

#include "core/source_tree.h"
#include "tasks/text_tasks/common.h"
#include "tests/tasks/text_tasks_helpers.h"

using namespace ctxbench;
using ctxbench::testing::ByteTokenizer;
using ctxbench::testing::fixture;
using ctxbench::testing::make_samples;
using ctxbench::testing::WordTokenizer;

TEST_CASE("longbench: dataset2prompt prompts, answers, lengths and eval.py scoring", "[text_tasks][longbench]") {
  ByteTokenizer bytes;
  const auto samples = make_samples(
      "longbench", {{"dataset", "hotpotqa"}, {"data_file", fixture("longbench_hotpotqa.jsonl")}}, 4096, bytes);
  REQUIRE(samples.size() == 3);
  const auto prompts =
      Json::parse(tasks::text::read_text_file(source_tree().string() + "/datasets/longbench/dataset2prompt.json"));
  const std::string expected = tasks::text::format_template(
      prompts.at("hotpotqa").get<std::string>(),
      {{"context",
        "Passage 1:\nThe Eiffel Tower is in Paris. It was completed in 1889.\nPassage 2:\nThe Colosseum is in Rome."},
       {"input", "Where is the Eiffel Tower?"}});
  CHECK(samples[0].prompt == expected);
  CHECK(samples[0].max_new_tokens == 32);
  CHECK(samples[1].references == std::vector<std::string>{"1889", "in 1889"});
  CHECK(samples[2].extra.at("length") == 9000);
  const auto& info = testing::task("longbench");
  CHECK(info.score(samples[0], "Paris.") == 1.0);
  CHECK(info.score(samples[1], "It was 1889") == Approx(0.5));  // qa_f1, max over the answers
  CHECK(info.score(samples[0], "London") == 0.0);

  const auto trec =
      make_samples("longbench", {{"dataset", "trec"}, {"data_file", fixture("longbench_trec.jsonl")}}, 4096, bytes)[0];
  CHECK(info.score(trec, "City\nIndividual") == 1.0);  // first-line rule
  CHECK(info.score(trec, "Individual City") == 0.5);   // classification: 1 / classes found
  const auto samsum = make_samples(
      "longbench", {{"dataset", "samsum"}, {"data_file", fixture("longbench_samsum.jsonl")}}, 4096, bytes)[0];
  CHECK(samsum.stop == std::vector<std::string>{"\n"});
}

TEST_CASE("longbench: middle truncation so that prompt and generation fit, in any tokenizer",
          "[text_tasks][longbench]") {
  ByteTokenizer bytes;
  WordTokenizer words;
  const Json params = {{"dataset", "hotpotqa"}, {"data_file", fixture("longbench_hotpotqa.jsonl")}, {"samples", 1}};
  const auto full = make_samples("longbench", params, 4096, bytes)[0].prompt;
  const auto cut = make_samples("longbench", params, 232, bytes)[0].prompt;  // 200 prompt tokens + 32 generated
  CHECK(cut.size() == 200u);
  CHECK(cut == full.substr(0, 100) + full.substr(full.size() - 100));
  const auto cut_words = make_samples("longbench", params, 132, words)[0].prompt;
  CHECK(words.encode(cut_words).size() <= 101u);  // re-encoding the joint may merge one token
  CHECK(cut_words.rfind(full.substr(0, 20), 0) == 0);
  CHECK(cut_words.ends_with("Answer:"));
}

TEST_CASE("longbench: bad data and unsupported datasets fail with clear messages", "[text_tasks][longbench]") {
  ByteTokenizer bytes;
  auto run = [&](const std::string& dataset, const std::string& file) {
    return make_samples("longbench", {{"dataset", dataset}, {"data_file", fixture(file)}}, 4096, bytes);
  };
  CHECK_THROWS_WITH(run("hotpotqa", "longbench_bad_json.jsonl"),
                    Catch::Contains("longbench_bad_json.jsonl:2: not a JSON value"));
  CHECK_THROWS_WITH(run("hotpotqa", "longbench_empty_answers.jsonl"),
                    Catch::Contains("longbench_empty_answers.jsonl:2: field \"answers\" must be a non-empty list"));
  CHECK_THROWS_WITH(run("hotpotqa", "longbench_missing_context.jsonl"),
                    Catch::Contains("longbench_missing_context.jsonl:1: missing field \"context\""));
  CHECK_THROWS_WITH(run("dureader", "longbench_hotpotqa.jsonl"), Catch::Contains("Chinese word segmenter"));
  CHECK_THROWS_WITH(run("nosuch", "longbench_hotpotqa.jsonl"), Catch::Contains("unknown LongBench dataset"));
  CHECK_THROWS_WITH(make_samples("longbench", {{"dataset", "trec"}}, 4096, bytes), Catch::Contains("set data_dir"));
  // LongBench-E file naming in a data directory.
  const auto dir = std::filesystem::path(fixture("")).string();
  CHECK_THROWS_WITH(make_samples("longbench", {{"dataset", "trec"}, {"data_dir", dir}, {"e", true}}, 4096, bytes),
                    Catch::Contains("trec_e.jsonl: cannot open"));
}

TEST_CASE("longbench_v2: the 0-shot template with stripped fields, filters, answer parsing",
          "[text_tasks][longbench]") {
  ByteTokenizer bytes;
  const auto samples = make_samples("longbench_v2", {{"data_file", fixture("longbench_v2.json")}}, 4096, bytes);
  REQUIRE(samples.size() == 2);
  CHECK(samples[0].prompt ==
        "Please read the following text and answer the question below.\n\n<text>\nRome is a city.\n</text>\n\nWhat is "
        "the correct answer to this question: Which city?\nChoices:\n(A) Paris\n(B) Rome\n(C) Oslo\n(D) Bern\n\nFormat "
        "your response as follows: \"The correct answer is (insert answer here)\".");
  CHECK(samples[0].max_new_tokens == 128);
  const auto& info = testing::task("longbench_v2");
  CHECK(info.score(samples[0], "**The correct answer is (B)**") == 1.0);
  CHECK(info.score(samples[0], "The correct answer is A") == 0.0);
  CHECK(make_samples("longbench_v2", {{"data_file", fixture("longbench_v2.json")}, {"difficulty", "hard"}}, 4096, bytes)
            .size() == 1);
  CHECK_THROWS_WITH(
      make_samples("longbench_v2", {{"data_file", fixture("longbench_v2.json")}, {"length", "medium"}}, 4096, bytes),
      Catch::Contains("no record matches"));
  CHECK_THROWS_WITH(
      make_samples("longbench_v2", {{"data_file", fixture("longbench_v2_bad_answer.jsonl")}}, 4096, bytes),
      Catch::Contains("longbench_v2_bad_answer.jsonl:1: field \"answer\" must be one of A, B, C, D"));
}

TEST_CASE("infinitebench: templates, labels, truncation and scoring", "[text_tasks][infinitebench]") {
  ByteTokenizer bytes;
  const auto passkey =
      make_samples("infinitebench", {{"data_file", fixture("infinitebench_passkey.jsonl")}}, 4096, bytes)[0];
  CHECK(passkey.prompt.rfind("There is an important info hidden inside a lot of irrelevant text. Find it and memorize "
                             "them. I will quiz you about the important information there.\n\nThe grass is green.",
                             0) == 0);
  CHECK(passkey.prompt.ends_with("\n\nWhat is the pass key?\n\nThe pass key is"));
  CHECK(passkey.references == std::vector<std::string>{"71432"});
  CHECK(passkey.max_new_tokens == 6);
  const auto& info = testing::task("infinitebench");
  CHECK(info.score(passkey, " 71432.") == 1.0);
  CHECK(info.score(passkey, " 7143") == 0.0);
  const auto cut =
      make_samples("infinitebench", {{"data_file", fixture("infinitebench_passkey.jsonl")}}, 106, bytes)[0];
  CHECK(cut.prompt.size() == 100u);
  const auto kv = make_samples("infinitebench",
                               {{"task", "kv_retrieval"}, {"data_file", fixture("infinitebench_kv_retrieval.jsonl")}},
                               4096, bytes)[0];
  CHECK(kv.prompt.rfind("Extract the value corresponding to the specified key in the JSON object below.\n\nJSON data:",
                        0) == 0);
  CHECK(info.score(kv, "\"a7b8\".") == 1.0);
  CHECK(info.score(kv, "a7b8x") == 0.0);
}

namespace {

const std::string kNoise =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n";

std::size_t count_of(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("infinitebench without data_file: passkey and number_string by the recipe, at the depth, filling the length",
          "[text_tasks][infinitebench]") {
  ByteTokenizer bytes;
  const auto& info = testing::task("infinitebench");
  for (const double depth : {0.0, 30.0, 100.0}) {
    const auto passkeys = make_samples("infinitebench", {{"samples", 3}}, 2048, bytes, depth, 7);
    REQUIRE(passkeys.size() == 3);
    for (const auto& s : passkeys) {
      INFO(s.prompt);
      const std::string key = s.references.at(0);
      CHECK((key.size() == 5 && key.find_first_not_of("0123456789") == std::string::npos));
      const std::string needle = "The pass key is " + key + ". Remember it. " + key + " is the pass key.\n";
      const auto at = s.prompt.find(needle);
      REQUIRE(at != std::string::npos);
      CHECK(s.prompt.ends_with("\n\nWhat is the pass key?\n\nThe pass key is"));
      const std::size_t before = count_of(s.prompt.substr(0, at), kNoise), all = count_of(s.prompt, kNoise);
      CHECK(before == static_cast<std::size_t>(std::lround(depth / 100.0 * static_cast<double>(all))));
      // The largest number of noise lines: the prompt, a BOS and 6 new tokens fit; one more line would not.
      CHECK(s.prompt.size() + 1 + 6 <= 2048);
      CHECK(s.prompt.size() + kNoise.size() + 1 + 6 > 2048);
      CHECK(info.score(s, " " + key + ".") == 1.0);
    }
    CHECK(passkeys[0].prompt != passkeys[1].prompt);
  }
  const auto digits = make_samples("infinitebench", {{"task", "number_string"}, {"samples", 2}}, 3000, bytes, 50, 3);
  for (const auto& s : digits) {
    const std::string key = s.references.at(0);
    CHECK((key.size() == 10 && key.find_first_not_of("0123456789") == std::string::npos));
    CHECK(s.prompt.find("The sequence of digits is " + key + ". Remember it. " + key + " is the sequence of digits.") !=
          std::string::npos);
    CHECK(s.prompt.ends_with("What is the sequence of digits?\n\nThe sequence of digits is"));
    CHECK(s.max_new_tokens == 12);
    CHECK(info.score(s, key) == 1.0);
  }
  CHECK(make_samples("infinitebench", {{"task", "number_string"}, {"samples", 2}}, 3000, bytes, 50, 3)[1].prompt ==
        digits[1].prompt);
  CHECK_THROWS_WITH(make_samples("infinitebench", Json::object(), 300, bytes), Catch::Contains("too short"));
}

TEST_CASE("infinitebench without data_file: kv_retrieval is a JSON object of UUIDs asking the key at the depth",
          "[text_tasks][infinitebench]") {
  WordTokenizer words;
  const auto& info = testing::task("infinitebench");
  for (const double depth : {0.0, 50.0, 100.0}) {
    const auto s = make_samples("infinitebench", {{"task", "kv_retrieval"}}, 1500, words, depth)[0];
    const auto open = s.prompt.find("JSON data:\n") + 11, close = s.prompt.find("}\n\nKey: \"") + 1;
    const Json object = Json::parse(s.prompt.substr(open, close - open));
    REQUIRE(object.size() > 10);
    const std::string key = s.prompt.substr(close + 8, 36);
    REQUIRE(object.contains(key));
    CHECK(s.references == std::vector<std::string>{object.at(key).get<std::string>()});
    // Insertion order: the asked pair's place among the pairs is the depth.
    const auto place = std::count(s.prompt.begin() + static_cast<std::ptrdiff_t>(open),
                                  s.prompt.begin() + s.prompt.find("\"" + key + "\": "), ':');
    CHECK(place == std::lround(depth / 100.0 * static_cast<double>(object.size() - 1)));
    CHECK(static_cast<int>(words.encode(s.prompt).size()) + 1 + 50 <= 1500);
    CHECK(s.prompt.ends_with("\nThe value associated with the specified key is: "));
    CHECK(info.score(s, "\"" + s.references[0] + "\"") == 1.0);
  }
}
