// RULER generation: templates byte-exact, every task's samples within the cell's length in the model's
// tokens, answers present as the recipe says, determinism per seed, QA sources and the jsonl loader.
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <numbers>

#include "tasks/text_tasks/ruler/synthetic.h"
#include "tasks/text_tasks/ruler/tasks.h"
#include "tests/tasks/text_tasks_helpers.h"

using namespace ctxbench;
using namespace ctxbench::tasks::text;
using ctxbench::testing::ByteTokenizer;
using ctxbench::testing::fixture;
using ctxbench::testing::make_samples;
using ctxbench::testing::WordTokenizer;

TEST_CASE("RULER templates are constants.py's, byte for byte", "[text_tasks][ruler]") {
  // The strings of shared/SPEC.md section 7, with its wrapping removed.
  const auto& niah = ruler::base_template("niah");
  CHECK(niah.task_template ==
        "Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. I will "
        "quiz you about the {type_needle_v} afterwards.\n{context}\nWhat are all the special magic {type_needle_v} "
        "for {query} mentioned in the provided text?");
  CHECK(niah.answer_prefix == " The special magic {type_needle_v} for {query} mentioned in the provided text are");
  CHECK(niah.tokens_to_generate == 128);
  const auto& vt = ruler::base_template("variable_tracking");
  CHECK(vt.task_template ==
        "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\nQuestion: "
        "Find all variables that are assigned the value {query} in the text above.");
  // SPEC.md writes "assigned"; RULER's constants.py (every copy we read) has "assgined", kept here.
  CHECK(vt.answer_prefix ==
        " Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables are assgined "
        "the value {query}, they are: ");
  CHECK(vt.tokens_to_generate == 30);
  const auto& cwe = ruler::base_template("common_words_extraction");
  CHECK(cwe.task_template ==
        "Below is a numbered list of words. In these words, some appear more often than others. Memorize the ones that "
        "appear most often.\n{context}\nQuestion: What are the 10 most common words in the above list?");
  CHECK(cwe.answer_prefix == " Answer: The top 10 words that appear most often in the list are:");
  CHECK(cwe.tokens_to_generate == 120);
  const auto& fwe = ruler::base_template("freq_words_extraction");
  CHECK(fwe.task_template ==
        "Read the following coded text and track the frequency of each coded word. Find the three most frequently "
        "appeared coded words. {context}\nQuestion: Do not provide any explanation. Please ignore the dots '....'. "
        "What are the three most frequently appeared words in the above coded text?");
  CHECK(fwe.answer_prefix ==
        " Answer: According to the coded text above, the three most frequently appeared words are:");
  CHECK(fwe.tokens_to_generate == 50);
  const auto& qa = ruler::base_template("qa");
  CHECK(qa.task_template ==
        "Answer the question based on the given documents. Only give me the answer and do not output any other "
        "words.\n\nThe following are given documents.\n\n{context}\n\nAnswer the question based on the given "
        "documents. Only give me the answer and do not output any other words.\n\nQuestion: {query}");
  CHECK(qa.answer_prefix == " Answer:");
  CHECK(qa.tokens_to_generate == 32);
  CHECK(ruler::task_names().size() == 13);
}

namespace {

int count_of(const std::string& text, const std::string& word) {
  int n = 0;
  for (auto at = text.find(word); at != std::string::npos; at = text.find(word, at + word.size())) ++n;
  return n;
}

}  // namespace

TEST_CASE("RULER synthetic tasks fit the cell's length in tokens and contain their answers", "[text_tasks][ruler]") {
  ByteTokenizer bytes;
  WordTokenizer words;
  for (const auto& [length, tokenizer] :
       std::vector<std::pair<int, const Tokenizer*>>{{1500, &bytes}, {4096, &words}}) {
    for (const auto& synthetic : ruler::kSyntheticTasks) {
      if (synthetic.script == ruler::Script::qa) continue;  // needs a local SQuAD/HotpotQA file: tested below
      const std::string name(synthetic.name);
      INFO(name << " at " << length << " " << tokenizer->name());
      const auto samples = make_samples("ruler", {{"task", name}, {"samples", 3}}, length, *tokenizer);
      REQUIRE(samples.size() == 3);
      const int generate = ruler::base_template(ruler::base_task_of(name)).tokens_to_generate;
      for (const auto& s : samples) {
        const int tokens = static_cast<int>(tokenizer->encode(s.prompt).size());
        CHECK(tokens + generate + 1 <= length);     // and a BOS
        CHECK(tokens + generate >= length * 0.75);  // filled close to the budget
        CHECK(s.max_new_tokens == generate);
        CHECK(s.extra.at("length").get<int>() == tokens + generate);
        const std::string prefix = s.extra.at("answer_prefix").get<std::string>();
        CHECK(s.prompt.substr(s.prompt.size() - prefix.size()) == prefix);
        REQUIRE_FALSE(s.references.empty());
        const std::string body = s.prompt.substr(0, s.prompt.size() - prefix.size());
        for (const auto& answer : s.references) CHECK(body.find(answer) != std::string::npos);
      }
      const auto again = make_samples("ruler", {{"task", name}, {"samples", 3}}, length, *tokenizer);
      for (int i = 0; i < 3; ++i) CHECK(again[i].prompt == samples[i].prompt);
      const auto other = make_samples("ruler", {{"task", name}, {"samples", 3}}, length, *tokenizer, 50, 2);
      CHECK(other[0].prompt != samples[0].prompt);
    }
  }
}

TEST_CASE("RULER niah variants: single-value wording, multi-key/value/query answers, needle format",
          "[text_tasks][ruler]") {
  ByteTokenizer bytes;
  const auto single = make_samples("ruler", {{"task", "niah_single_1"}}, 2000, bytes)[0];
  CHECK(single.prompt.rfind("A special magic number is hidden within the following text. Make sure to memorize it. "
                            "I will quiz you about the number afterwards.\n",
                            0) == 0);
  CHECK(single.references.size() == 1);
  CHECK(single.references[0].size() == 7);
  CHECK(single.prompt.find("One of the special magic numbers for ") != std::string::npos);  // needles keep the plural
  CHECK(single.prompt.find("The grass is green. The sky is blue.") != std::string::npos);   // the noise haystack
  CHECK(single.extra.at("answer_prefix").get<std::string>().find(" mentioned in the provided text is") !=
        std::string::npos);

  const auto uuid = make_samples("ruler", {{"task", "niah_single_3"}}, 2000, bytes)[0];
  CHECK(uuid.prompt.rfind("A special magic uuid is hidden", 0) == 0);
  CHECK(uuid.references[0].size() == 36);
  CHECK(uuid.references[0][14] == '4');

  const auto multivalue = make_samples("ruler", {{"task", "niah_multivalue"}}, 3000, bytes)[0];
  CHECK(multivalue.references.size() == 4);
  CHECK(multivalue.prompt.rfind("Some special magic numbers are hidden", 0) == 0);
  const auto multiquery = make_samples("ruler", {{"task", "niah_multiquery"}}, 3000, bytes)[0];
  CHECK(multiquery.references.size() == 4);
  CHECK(count_of(multiquery.extra.at("answer_prefix").get<std::string>(), ", ") == 3);
  CHECK(multiquery.extra.at("answer_prefix").get<std::string>().find(", and ") != std::string::npos);
  const auto multikey = make_samples("ruler", {{"task", "niah_multikey_2"}}, 3000, bytes)[0];
  CHECK(count_of(multikey.prompt, "One of the special magic numbers for ") > 10);  // distractor needles
}

TEST_CASE("RULER vt, cwe and fwe follow their recipes", "[text_tasks][ruler]") {
  ByteTokenizer bytes;
  const auto vt = make_samples("ruler", {{"task", "vt"}}, 3000, bytes)[0];
  REQUIRE(vt.references.size() == 5);
  CHECK(vt.prompt.find("5 variables are assgined the value ") != std::string::npos);
  CHECK(count_of(vt.prompt, "Memorize and track the chain(s)") == 2);  // the in-context example, then the question
  CHECK(vt.prompt.find("VAR " + vt.references[1] + " = VAR " + vt.references[0] + " ") != std::string::npos);

  const auto cwe = make_samples("ruler", {{"task", "cwe"}}, 3000, bytes)[0];
  REQUIRE(cwe.references.size() == 10);
  const std::string main_list = cwe.prompt.substr(cwe.prompt.rfind("Below is a numbered list"));
  for (const auto& w : cwe.references)
    CHECK(count_of(main_list, ". " + w + " ") + count_of(main_list, ". " + w + "\n") == 6);

  const auto fwe = make_samples("ruler", {{"task", "fwe"}}, 3000, bytes)[0];
  REQUIRE(fwe.references.size() == 3);
  const int first = count_of(fwe.prompt, " " + fwe.references[0] + " "),
            third = count_of(fwe.prompt, " " + fwe.references[2] + " ");
  CHECK(first > third);
  CHECK(fwe.prompt.find("... ...") != std::string::npos);
  CHECK(ruler::riemann_zeta(2.0) == Approx(std::numbers::pi * std::numbers::pi / 6).epsilon(1e-13));
  CHECK(ruler::riemann_zeta(3.0) == Approx(1.2020569031595942).epsilon(1e-13));
  CHECK(ruler::split_sentences("Mr. Darcy said hi. She left! \"Ok?\" Yes") ==
        std::vector<std::string>{"Mr. Darcy said hi.", "She left!", "\"Ok?\"", "Yes"});
}

TEST_CASE("RULER qa needs a local SQuAD/HotpotQA file and builds documents from it", "[text_tasks][ruler]") {
  ByteTokenizer bytes;
  CHECK_THROWS_WITH(make_samples("ruler", {{"task", "qa_1"}}, 2000, bytes),
                    Catch::Contains("set the qa_file parameter"));
  const auto squad =
      make_samples("ruler", {{"task", "qa_1"}, {"qa_file", fixture("squad.json")}, {"samples", 3}}, 2000, bytes);
  REQUIRE(squad.size() == 3);
  CHECK(squad[0].references == std::vector<std::string>{"Paris"});
  CHECK(squad[1].references == std::vector<std::string>{"The Seine", "Seine"});  // the impossible question is skipped
  CHECK(squad[2].references == std::vector<std::string>{"Oslo"});
  CHECK(squad[0].prompt.find("Document 1:\n") != std::string::npos);
  CHECK(count_of(squad[0].prompt, "Document ") == 4);  // every document fits
  CHECK(squad[0].prompt.find("Question: What is the capital of France? Answer:") != std::string::npos);
  CHECK(testing::task("ruler").score(squad[1], " seine ") == 1.0);  // string_match_part: any answer
  const auto hotpot = make_samples("ruler", {{"task", "qa_2"}, {"qa_file", fixture("hotpotqa.json")}}, 2000, bytes);
  CHECK(hotpot[0].references == std::vector<std::string>{"Seine"});
  CHECK(hotpot[0].prompt.find("Paris\nParis is the capital of France. It lies on the Seine.") != std::string::npos);
  CHECK_THROWS_WITH(
      make_samples("ruler", {{"task", "qa_1"}, {"qa_file", fixture("squad_no_context.json")}}, 2000, bytes),
      Catch::Contains("squad_no_context.json: $.data[0].paragraphs[0]: missing \"context\""));
  CHECK_THROWS_WITH(make_samples("ruler", {{"task", "qa_1"}, {"qa_file", fixture("squad.json")}}, 40, bytes),
                    Catch::Contains("too short"));
}

TEST_CASE("RULER jsonl loader: input + answer_prefix, outputs, errors naming the line", "[text_tasks][ruler]") {
  ByteTokenizer bytes;
  const auto loaded = make_samples("ruler", {{"data_file", fixture("ruler_niah_single_1.jsonl")}}, 4096, bytes);
  REQUIRE(loaded.size() == 2);
  const std::string prefix = " The special magic number for cool-apple mentioned in the provided text is";
  CHECK(loaded[0].prompt.ends_with("mentioned in the provided text?" + prefix));
  CHECK(loaded[1].prompt == "Question two");
  CHECK(loaded[0].references == std::vector<std::string>{"1234567"});
  CHECK(loaded[0].max_new_tokens == 128);
  const auto& info = testing::task("ruler");
  CHECK(info.score(loaded[0], " 1234567.\x01") == 1.0);
  TextSample several = loaded[0];
  several.references = {"111", "222", "333"};
  CHECK(info.score(several, "111 and 222") == Approx(2.0 / 3));  // string_match_all: the fraction found
  CHECK_THROWS_WITH(make_samples("ruler", {{"data_file", fixture("ruler_missing_outputs.jsonl")}}, 4096, bytes),
                    Catch::Contains("ruler_missing_outputs.jsonl:2: missing field \"outputs\""));
}

TEST_CASE("the training haystack replaces the evaluation one in niah and every RULER essay task", "[text_tasks]") {
  ByteTokenizer bytes;
  std::vector<std::pair<std::string, Json>> tasks = {{"niah", Json::object()}};
  for (const char* name : {"niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multivalue", "niah_multiquery"}) {
    tasks.emplace_back("ruler", Json{{"task", name}});
  }
  // The opening words of each corpus's first book (sample 0 starts there in every one of these tasks).
  const std::string eval_start = "GEORGE ALLEN", train_start = "A TALE OF TWO CITIES";
  for (auto [name, params] : tasks) {
    INFO(params.dump());
    const std::string prompt = make_samples(name, params, 2048, bytes)[0].prompt;
    CHECK(prompt.find(eval_start) != std::string::npos);
    CHECK(prompt.find(train_start) == std::string::npos);
    params["haystack"] = "datasets/haystack-train";
    const std::string trained = make_samples(name, params, 2048, bytes)[0].prompt;
    CHECK(trained.find(train_start) != std::string::npos);
    CHECK(trained.find(eval_start) == std::string::npos);
  }
}
