// `ctxbench samples` as a user runs it: its lines are the task's own samples of the same cells, one cell per seed
// of the range, and bad input exits 2 naming what was wrong.
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "model/backend.h"
#include "tasks/task.h"
#include "tests/helpers.h"

using namespace ctxbench;
using Catch::Contains;
using testing::run_shell;

namespace {

const std::string kBinary = testing::ctxbench_binary();

std::vector<Json> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<Json> out;
  for (std::string line; std::getline(in, line);) out.push_back(Json::parse(line));
  return out;
}

// The samples the task itself makes for the cell (the command's reference).
std::vector<TextSample> task_samples(const std::string& task, const Json& given, int length, double depth,
                                     std::uint64_t seed) {
  const auto& info = tasks::TaskRegistry::instance().get(task, "test");
  const Json params = resolve_params(info.params, given, "test");
  const auto tokenizer = model::open_tokenizer(model::model_params_of(params));
  return info.make_text_samples({params, length, depth, seed}, *tokenizer.tokenizer);
}

}  // namespace

TEST_CASE("samples: each seed's lines are the task's samples of that cell", "[samples]") {
  testing::TempDir dir;
  const std::string out = dir.file("out.jsonl");
  std::string log;
  const int status =
      run_shell(kBinary + R"( samples ruler --params '{"task": "niah_multikey_1", "samples": 3}' --length 1024)" +
                    " --depth 25 --seeds 7-9 --out " + out,
                &log);
  INFO(log);
  REQUIRE(status == 0);
  const auto lines = read_lines(out);
  REQUIRE(lines.size() == 9);
  const Json given = {{"task", "niah_multikey_1"}, {"samples", 3}};
  for (std::uint64_t seed = 7; seed <= 9; ++seed) {
    const auto expected = task_samples("ruler", given, 1024, 25, seed);
    REQUIRE(expected.size() == 3);
    for (std::size_t i = 0; i < expected.size(); ++i) {
      const Json& line = lines[(seed - 7) * 3 + i];
      CHECK(line.at("task") == "ruler");
      CHECK(line.at("params").at("task") == "niah_multikey_1");
      CHECK(line.at("params").at("haystack") == "datasets/haystack");  // resolved: defaults filled in
      CHECK(line.at("length") == 1024);
      CHECK(line.at("depth") == 25.0);
      CHECK(line.at("seed") == seed);
      CHECK(line.at("index") == i);
      CHECK(line.at("prompt") == expected[i].prompt);
      CHECK(line.at("references") == Json(expected[i].references));
      CHECK(line.at("max_new_tokens") == expected[i].max_new_tokens);
      CHECK(line.at("stop") == Json(expected[i].stop));
      CHECK(line.at("prompt_tokens") == 1 + static_cast<int>(expected[i].prompt.size()));  // BOS + bytes
      std::vector<int> ids{256};
      for (const unsigned char c : expected[i].prompt) ids.push_back(c);
      CHECK(line.at("prompt_ids") == Json(ids));
      CHECK(line.at("extra").is_object());
    }
  }
}

TEST_CASE("samples: one seed, the default depth, standard output", "[samples]") {
  std::string out;
  REQUIRE(run_shell(kBinary + R"( samples passkey --params '{"samples": 2, "placement": "depth"}' --length 300)" +
                        " --seeds 1000000 2>/dev/null",
                    &out) == 0);
  std::vector<Json> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) lines.push_back(Json::parse(line));
  REQUIRE(lines.size() == 2);
  const auto expected = task_samples("passkey", {{"samples", 2}, {"placement", "depth"}}, 300, 50, 1000000);
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(lines[i].at("seed") == 1000000);
    CHECK(lines[i].at("depth") == 50.0);
    CHECK(lines[i].at("prompt") == expected[i].prompt);
    CHECK(lines[i].at("references") == Json(expected[i].references));
  }
}

TEST_CASE("samples: bad input exits 2 naming what was wrong", "[samples]") {
  testing::TempDir dir;
  const std::string cmd = kBinary + " samples ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"nosuchtask --length 64 --seeds 0", "unknown name \"nosuchtask\""},
      {"attention_needle --length 64 --seeds 0", "attention_needle is an attention-level task"},
      {"passkey --length 64 --seeds 0 --params '{\"samples\": '", "--params: expected a JSON object"},
      {"passkey --length 64 --seeds 0 --params '{\"colour\": 1}'", "colour"},
      {"passkey --length 64 --seeds 5-3", "--seeds 5-3: the first seed is after the last"},
      {"passkey --length 64 --seeds 1-x", "--seeds 1-x: expected A-B"},
      {"passkey --length 64 --seeds -3", "--seeds -3: expected A-B"},
      {"passkey --length 64", "--seeds is required"},
      {"passkey --length 0 --seeds 0", "--length"},
      {"passkey --length 64 --seeds 0 --params '{\"model\": \"" + dir.file("none") + "\"}'", "config.json"},
      {"passkey --length 64 --seeds 0 --out " + dir.file("missing/out.jsonl"), "cannot be written"},
  };
  for (const auto& [args, message] : cases) {
    INFO(args);
    std::string out;
    CHECK(run_shell(cmd + args, &out) == 2);
    CHECK_THAT(out, Contains(message));
  }
}
