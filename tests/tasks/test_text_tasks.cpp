// Text tasks: shared helpers, haystacks, needle in a haystack, passkey and perplexity, with test tokenizers
// (bytes, and words so that nothing assumes tokens = bytes) and test generators.
#include <catch2/catch.hpp>
#include <cmath>
#include <regex>

#include "core/metrics.h"
#include "core/random.h"
#include "core/source_tree.h"
#include "harness/runner.h"
#include "harness/suite.h"
#include "tasks/text_tasks/common.h"
#include "tasks/text_tasks/haystack.h"
#include "tests/helpers.h"
#include "tests/tasks/text_tasks_helpers.h"

using namespace ctxbench;
using namespace ctxbench::tasks::text;
using ctxbench::testing::ByteTokenizer;
using ctxbench::testing::make_samples;
using ctxbench::testing::WordTokenizer;

TEST_CASE("format_template follows str.format for named fields and doubled braces", "[text_tasks]") {
  CHECK(format_template("a {x} b {y}{x}", {{"x", "1"}, {"y", "{z}"}}) == "a 1 b {z}1");
  CHECK(format_template("{{literal}} {x}", {{"x", "v"}}) == "{literal} v");
  CHECK_THROWS_WITH(format_template("{missing}", {}), Catch::Contains("missing"));
  CHECK(replace_all("are are", "are", "is") == "is is");
  CHECK(replace_all("aaa", "a", "aa") == "aaaaaa");
}

TEST_CASE("largest_fitting finds the last true of a monotone predicate", "[text_tasks]") {
  Rng rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int lo = static_cast<int>(rng.integer(0, 5)), hi = lo + static_cast<int>(rng.integer(0, 60));
    const int threshold = static_cast<int>(rng.integer(lo - 2, hi + 2));
    int calls = 0;
    const int got = largest_fitting(lo, hi, [&](int n) {
      ++calls;
      return n <= threshold;
    });
    CHECK(got == std::clamp(threshold, lo - 1, hi));
    CHECK(calls <= 8);
  }
}

TEST_CASE("middle truncation keeps the first and last halves in tokens", "[text_tasks]") {
  WordTokenizer words;
  const std::string text = "one two three four five six seven";  // 13 tokens (7 words, 6 spaces)
  CHECK(middle_truncate(words, text, 13) == text);
  CHECK(middle_truncate(words, text, 5) == "one six seven");  // 2 tokens of the head, 3 of the tail
  ByteTokenizer bytes;
  CHECK(middle_truncate(bytes, "abcdefghij", 5) == "abhij");
}

TEST_CASE("choose_records: all in order, or a seeded sorted subset", "[text_tasks]") {
  CHECK(choose_records(4, 0, 1) == std::vector<std::size_t>{0, 1, 2, 3});
  CHECK(choose_records(4, 9, 1) == std::vector<std::size_t>{0, 1, 2, 3});
  const auto a = choose_records(100, 10, 3), b = choose_records(100, 10, 3), c = choose_records(100, 10, 4);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(std::is_sorted(a.begin(), a.end()));
  CHECK(std::adjacent_find(a.begin(), a.end()) == a.end());
}

TEST_CASE("jsonl errors name the file and line", "[text_tasks]") {
  testing::TempDir dir;
  testing::write_file(dir.file("a.jsonl"), "{\"x\": 1}\n\n{broken\n");
  CHECK_THROWS_WITH(read_jsonl(dir.file("a.jsonl")), Catch::Contains("a.jsonl:3: not a JSON value"));
  CHECK_THROWS_WITH(read_jsonl(dir.file("none.jsonl")), Catch::Contains("cannot open"));
  const Json record = Json::parse(R"({"answers": [], "one": "a", "n": 3})");
  CHECK_THROWS_WITH(answers_field(record, "answers", "f:2"),
                    Catch::Contains("f:2: field \"answers\" must be a non-empty"));
  CHECK_THROWS_WITH(answers_field(record, "other", "f:2"), Catch::Contains("f:2: missing field \"other\""));
  CHECK(answers_field(record, "one", "f:2") == std::vector<std::string>{"a"});
  CHECK_THROWS_WITH(string_field(record, "n", "f:2"), Catch::Contains("must be a string"));
}

TEST_CASE("haystack: sorted files, repeated as needed, cut in the tokenizer's tokens", "[text_tasks]") {
  testing::TempDir dir;
  testing::write_file(dir.file("b.txt"), "Bravo text.");
  testing::write_file(dir.file("a.txt"), "Alpha text. ");
  testing::write_file(dir.file("skip.md"), "not a haystack file");
  const std::string root = dir.file("");
  CHECK(haystack_text(root) == "Alpha text. Bravo text.");
  ByteTokenizer bytes;
  WordTokenizer words;
  CHECK(bytes.decode(haystack_tokens(bytes, root, 30)) == "Alpha text. Bravo text.Alpha t");
  const auto tokens = haystack_tokens(words, root, 10);
  CHECK(tokens.size() == 10);
  CHECK(words.decode(tokens) == "Alpha text. Bravo text.Alpha");
  testing::TempDir empty;
  CHECK_THROWS_WITH(haystack_text(empty.file("")), Catch::Contains("no non-empty *.txt"));
  CHECK_THROWS_WITH(haystack_text(empty.file("missing")), Catch::Contains("not a directory"));
  // The bundled corpus: three books in sorted file order (austen, carroll, doyle).
  const std::string& books = haystack_text(kDefaultHaystack);
  CHECK(books.find("GEORGE ALLEN") < 200);
  CHECK(books.find("ALICE\u2019S ADVENTURES IN WONDERLAND") > 700000);
  CHECK(books.find("ALICE\u2019S ADVENTURES IN WONDERLAND") < books.find("ADVENTURES OF SHERLOCK HOLMES"));
}

TEST_CASE("haystack: a cut inside a UTF-8 character drops the character's first bytes", "[text_tasks]") {
  ByteTokenizer bytes;
  for (const std::string text : {"a\u00e9", "a\u20ac", "a\U0001F600"}) {  // characters of 2, 3 and 4 bytes
    INFO(text);
    for (std::size_t cut = 2; cut < text.size(); ++cut) {
      auto tokens = bytes.encode(text.substr(0, cut));
      drop_partial_character(bytes, tokens);
      CHECK(bytes.decode(tokens) == "a");
    }
    auto whole = bytes.encode(text);
    drop_partial_character(bytes, whole);
    CHECK(bytes.decode(whole) == text);
  }
}

namespace {

// gkamradt's insert_needle written out directly on the byte tokens: the reference for the task's positions.
std::size_t reference_insertion(const std::vector<int>& context, double depth) {
  if (depth == 100) return context.size();
  std::size_t at = static_cast<std::size_t>(static_cast<double>(context.size()) * depth / 100.0);
  while (at > 0 && context[at - 1] != '.') --at;
  return at;
}

std::string context_of(const std::string& prompt) {
  const auto open = prompt.find("<context>\n") + 10, close = prompt.rfind("\n</context>");
  return prompt.substr(open, close - open);
}

}  // namespace

TEST_CASE("niah: haystack cut to length - 200, needle after a '.' at the depth, depth 100 appends",
          "[text_tasks][niah]") {
  ByteTokenizer bytes;
  const std::string needle =
      "\nThe best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.\n";
  for (const int length : {600, 2000, 5000}) {
    for (const double depth : {0.0, 10.0, 37.5, 50.0, 99.0, 100.0}) {
      const auto samples = make_samples("niah", Json::object(), length, bytes, depth);
      REQUIRE(samples.size() == 1);
      const auto& s = samples[0];
      const std::string context = context_of(s.prompt);
      CHECK(static_cast<int>(context.size()) == length - 200);
      const auto start = s.extra.at("needle_token_starts")[0].get<std::size_t>();
      CHECK(context.substr(start, needle.size()) == needle);
      // Reference: the haystack alone (needle removed), insertion computed directly.
      std::string haystack = context;
      haystack.erase(start, needle.size());
      CHECK(start == reference_insertion(bytes.encode(haystack), depth));
      if (depth == 100) CHECK(start == haystack.size());
      CHECK(s.prompt.rfind("Assistant: Here is the most relevant sentence in the context:") != std::string::npos);
      CHECK(s.references == std::vector<std::string>{"eat a sandwich and sit in Dolores Park on a sunny day"});
    }
  }
}

TEST_CASE("niah: a haystack cut inside a character keeps the prompt whole characters", "[text_tasks][niah]") {
  testing::TempDir dir;
  testing::write_file(
      dir.file("a.txt"), "Ab. " + std::string(200, 'x') + ". " + [] {
        std::string accents;
        for (int i = 0; i < 300; ++i) accents += "\u00e9";
        return accents;
      }());
  ByteTokenizer bytes;
  const int needle = 97, buffer = 200, kept = 4 + 202 + 2 * 10;  // budget = kept + 1 cuts the 11th character
  const auto s = make_samples("niah", {{"haystack", dir.file("")}}, kept + 1 + buffer + needle, bytes, 0)[0];
  std::string context = context_of(s.prompt);
  context.erase(0, needle);  // depth 0: the needle comes first
  CHECK(context.size() == static_cast<std::size_t>(kept));
  CHECK(context.substr(context.size() - 2) == "\u00e9");
}

TEST_CASE("niah: word tokenizer lengths, multi-needle spacing, determinism", "[text_tasks][niah]") {
  WordTokenizer words;
  const auto s = make_samples("niah", Json::object(), 3000, words, 40)[0];
  CHECK(words.encode(context_of(s.prompt)).size() == 2800u);

  ByteTokenizer bytes;
  const auto multi = make_samples("niah", {{"multi_needle", true}}, 4000, bytes, 20)[0];
  const std::string context = context_of(multi.prompt);
  const auto starts = multi.extra.at("needle_token_starts").get<std::vector<std::size_t>>();
  REQUIRE(starts.size() == 3);
  CHECK(std::is_sorted(starts.begin(), starts.end()));
  for (const std::string ingredient : {"Figs", "Prosciutto", "Goat cheese"}) {
    CHECK(context.find(" " + ingredient) != std::string::npos);
  }
  // Each needle near depth 20, 20 + 80/3, 20 + 160/3 percent of the growing context, after a '.' or at 0.
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK((starts[i] == 0 || context[starts[i] - 1] == '.'));
    const double target = (20.0 + i * 80.0 / 3.0) / 100.0 * context.size();
    CHECK(static_cast<double>(starts[i]) <= target + 1);
    CHECK(static_cast<double>(starts[i]) >= target - 800);  // within a (long) sentence
  }
  CHECK(multi.references == std::vector<std::string>{"Figs", "Prosciutto", "Goat cheese"});
  CHECK(multi.prompt.find("What are the secret ingredients needed to build the perfect pizza?") != std::string::npos);

  const auto a = make_samples("niah", {{"samples", 3}}, 1500, bytes, 50, 5);
  const auto b = make_samples("niah", {{"samples", 3}}, 1500, bytes, 50, 5);
  const auto c = make_samples("niah", {{"samples", 3}}, 1500, bytes, 50, 6);
  for (int i = 0; i < 3; ++i) CHECK(a[i].prompt == b[i].prompt);
  CHECK(a[0].prompt == c[0].prompt);  // the first sample starts at the corpus start, as the original
  CHECK(a[1].prompt != c[1].prompt);
  CHECK(a[1].prompt != a[2].prompt);
  CHECK_THROWS_WITH(make_samples("niah", Json::object(), 250, bytes), Catch::Contains("leaves no room"));
}

TEST_CASE("niah: deterministic phrase recall, not the LLM judge", "[text_tasks][niah]") {
  const auto& info = testing::task("niah");
  CHECK(info.metric == "phrase_recall_not_llm_judge");
  ByteTokenizer bytes;
  const auto s = make_samples("niah", Json::object(), 800, bytes)[0];
  CHECK(info.score(s, "The best thing is to eat a sandwich and sit in Dolores Park on a sunny day.") == 1.0);
  CHECK(info.score(s, "Go to the beach.") < 0.2);
}

namespace {
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out(1);
  for (const char c : text) {
    if (c == '\n') {
      out.emplace_back();
    } else {
      out.back().push_back(c);
    }
  }
  return out;
}
const std::string kFiller = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
}  // namespace

TEST_CASE("passkey landmark: the LongRoPE recipe filling exactly the cell's length", "[text_tasks][passkey]") {
  ByteTokenizer bytes;
  WordTokenizer words;
  std::string repeated = kFiller;
  for (int i = 0; i < 200; ++i) repeated += " " + kFiller;
  for (const int length : {300, 1024, 3000}) {
    const auto samples = make_samples("passkey", {{"samples", 5}}, length, bytes);
    REQUIRE(samples.size() == 5);
    for (const auto& s : samples) {
      const auto lines = split_lines(s.prompt);
      REQUIRE(lines.size() == 5);
      CHECK(lines[0] ==
            "There is an important info hidden inside a lot of irrelevant text. Find it and memorize "
            "them. I will quiz you about the important information there.");
      const std::string& key = s.references[0];
      CHECK(lines[2] == "The pass key is " + key + ". Remember it. " + key + " is the pass key.");
      CHECK(lines[4] == "What is the pass key? The pass key is");
      CHECK(repeated.compare(0, lines[1].size(), lines[1]) == 0);  // both cut from the filler's start
      CHECK(repeated.compare(0, lines[3].size(), lines[3]) == 0);
      const int k = std::stoi(key);
      CHECK((k >= 1 && k <= 50000));
      // One byte per token: the prompt, a BOS and the 10 new tokens meet the cell's length exactly.
      CHECK(static_cast<int>(s.prompt.size()) + 1 + 10 == length);
      CHECK(s.max_new_tokens == 10);
    }
  }
  for (const auto& s : make_samples("passkey", {{"samples", 3}}, 2000, words)) {
    const auto n = static_cast<int>(words.encode(s.prompt).size());
    CHECK(n <= 2000 - 1 - 10);
    CHECK(n >= 2000 - 1 - 10 - 3);
  }
}

TEST_CASE("passkey: llama.cpp junk variant, depth placement, determinism and scoring", "[text_tasks][passkey]") {
  ByteTokenizer bytes;
  const auto s = make_samples("passkey", {{"variant", "llamacpp"}}, 2000, bytes)[0];
  const std::string key = s.references[0];
  const std::string info = " The pass key is " + key + ". Remember it. " + key + " is the pass key.";
  CHECK(s.prompt.rfind("There is an important info hidden", 0) == 0);
  CHECK(s.prompt.size() >= 6);
  CHECK(s.prompt.substr(s.prompt.size() - 38) == " What is the pass key? The pass key is");
  CHECK(s.prompt.find(info) != std::string::npos);
  CHECK(s.prompt.size() + 1 + 16 <= 2000u);                      // with a BOS and the 16 new tokens
  CHECK(s.prompt.size() + kFiller.size() + 1 + 1 + 16 > 2000u);  // one more junk sentence would not fit
  CHECK(s.max_new_tokens == 16);

  const auto first = make_samples("passkey", {{"placement", "depth"}}, 3000, bytes, 0)[0];
  CHECK(split_lines(first.prompt)[1].empty());  // depth 0: no filler before the key
  const auto middle = make_samples("passkey", {{"placement", "depth"}}, 3000, bytes, 50)[0];
  const auto lines = split_lines(middle.prompt);
  CHECK(std::abs(static_cast<double>(lines[1].size()) - static_cast<double>(lines[3].size())) <= 2);

  const auto a = make_samples("passkey", {{"samples", 4}}, 600, bytes, 50, 9);
  const auto b = make_samples("passkey", {{"samples", 4}}, 600, bytes, 50, 9);
  const auto c = make_samples("passkey", {{"samples", 4}}, 600, bytes, 50, 10);
  for (int i = 0; i < 4; ++i) CHECK(a[i].prompt == b[i].prompt);
  CHECK(a[0].references != c[0].references);

  const auto& info_task = testing::task("passkey");
  TextSample keyed;
  keyed.references = {"4242"};
  CHECK(info_task.score(keyed, " 4242. Remember") == 1.0);
  CHECK(info_task.score(keyed, "It is 42 or 4242") == 0.0);  // the first integer counts
  CHECK(info_task.score(keyed, "no digits") == 0.0);
}

namespace {

// A generator for the runner tests: answers by looking the passkey or needle up in the prompt, and scores
// every token with log(1/2) (perplexity 2).
class LookupGenerator final : public Generator {
 public:
  const Tokenizer& tokenizer() const override { return tokenizer_; }
  Generation generate(const TextSample& sample) override {
    std::smatch m;
    std::string answer = "nothing";
    static const std::regex key("The pass key is ([0-9]+)\\."), needle("San Francisco is ([^.]*)\\.");
    if (std::regex_search(sample.prompt, m, key) || std::regex_search(sample.prompt, m, needle)) answer = m[1];
    return {answer, static_cast<int>(sample.prompt.size()), 1, 0.1, 0.0, 0.05, 0.1};
  }
  std::vector<double> token_logprobs(const std::vector<int>& tokens) override {
    std::vector<double> out(tokens.size(), std::log(0.5));
    out[0] = 0;
    return out;
  }

 private:
  ByteTokenizer tokenizer_;
};

const engines::RegisterEngine lookup_engine{{
    .name = "test_text_tasks_lookup",
    .description = "test generator for the text tasks",
    .params = {},
    .make_generator = [](const Json&) { return std::make_unique<LookupGenerator>(); },
}};

double measurement(const CellOutput& out, const std::string& name) {
  for (const auto& m : out.measurements) {
    if (m.metric == name) return m.value();
  }
  FAIL("no measurement " << name);
  return 0;
}

}  // namespace

TEST_CASE("text tasks run through the runner with a test generator", "[text_tasks][runner]") {
  const auto suite = parse_suite(Json::parse(R"({"name": "t", "engines": [{"name": "test_text_tasks_lookup"}],
      "tasks": [{"name": "passkey", "params": {"samples": 3}}, {"name": "niah"},
                {"name": "perplexity", "params": {"samples": 2}}],
      "context_lengths": [700]})"),
                                 "t.json");
  const auto cells = suite.cells();
  REQUIRE(cells.size() == 3);
  CHECK(measurement(run_cell(cells[0]), "accuracy") == 100.0);
  CHECK(measurement(run_cell(cells[1]), "phrase_recall_not_llm_judge") == 100.0);
  const auto ppl = run_cell(cells[2]);
  CHECK(measurement(ppl, "perplexity") == Approx(2.0));
  CHECK(measurement(ppl, "prompt_tokens") == 700);
  CHECK(testing::uncatalogued(ppl.measurements) == std::vector<std::string>{});
  CHECK(catalogued_metric(testing::task("perplexity").metric).better == Better::lower);
}

TEST_CASE("perplexity: one window per document, from a directory or a jsonl, optional BOS", "[text_tasks]") {
  testing::TempDir dir;
  testing::write_file(dir.file("b.txt"), std::string(300, 'b'));
  testing::write_file(dir.file("a.txt"), std::string(50, 'a'));
  ByteTokenizer bytes;
  const auto s = make_samples("perplexity", {{"documents", dir.file("")}, {"samples", 3}}, 100, bytes);
  REQUIRE(s.size() == 3);
  CHECK(s[0].extra.at("tokens").size() == 50u);  // shorter than the window: the whole document
  CHECK(s[1].extra.at("tokens").size() == 100u);
  CHECK(s[1].prompt == std::string(100, 'b'));
  CHECK(s[2].prompt == s[0].prompt);  // documents cycle
  const auto with_bos = make_samples("perplexity", {{"documents", dir.file("")}, {"bos_token_id", 1}}, 100, bytes);
  CHECK(with_bos[0].extra.at("tokens")[0] == 1);
  testing::write_file(dir.file("docs.jsonl"), "{\"text\": \"hello world\"}\n{\"no_text\": 1}\n");
  CHECK_THROWS_WITH(make_samples("perplexity", {{"documents", dir.file("docs.jsonl")}}, 100, bytes),
                    Catch::Contains("docs.jsonl:2: missing field \"text\""));
}

TEST_CASE("ctxbench score prints the official scripts' results and names bad input", "[text_tasks][cli]") {
  const std::string binary = testing::ctxbench_binary(), root = source_tree().string();
  std::string out;
  CHECK(testing::run_shell(
            binary + " score ruler --task niah_single_1 " + root + "/tests/fixtures/ruler/niah_single_1.jsonl", &out) ==
        0);
  CHECK(out == "0,1\nTasks,niah_single_1\nScore,55.56\nNulls,1/3\n");
  CHECK(testing::run_shell(binary + " score longbench --dataset trec " + root + "/tests/fixtures/longbench/trec.jsonl",
                           &out) == 0);
  CHECK(out.find("\"trec\": ") != std::string::npos);
  CHECK(testing::run_shell(binary + " score longbench --dataset hotpotqa --e " + root +
                               "/tests/fixtures/text_tasks/pred_hotpotqa_e.jsonl",
                           &out) == 0);
  CHECK(out ==
        "{\n    \"hotpotqa\": {\n        \"0-4k\": 100.0,\n        \"4-8k\": 100.0,\n        \"8k+\": 0.0\n    }\n}\n");
  CHECK(testing::run_shell(binary + " score ruler " + root + "/tests/fixtures/ruler/niah_single_1.jsonl", &out) != 0);
  CHECK(out.find("--task is required") != std::string::npos);
  // Bad input exits 2, as the README promises, naming the file (and the line).
  CHECK(testing::run_shell(
            binary + " score longbench --dataset trec " + root + "/tests/fixtures/longbench/bad_json.jsonl", &out) ==
        2);
  CHECK(out.find("bad_json.jsonl:2: not a JSON line") != std::string::npos);
  CHECK(testing::run_shell(binary + " score ruler --task niah_single_1 " + root + "/no/such/predictions.jsonl", &out) ==
        2);
  CHECK(out.find("predictions.jsonl: cannot open the prediction file") != std::string::npos);
}
