// The run's preflight: text cells make their prompts before any work (harness/preflight.h).
#include <catch2/catch.hpp>
#include <filesystem>

#include "core/source_tree.h"
#include "harness/preflight.h"
#include "tests/helpers.h"

using namespace ctxbench;

TEST_CASE("preflight names every text cell that cannot make its prompts, once per task and length",
          "[suite][preflight]") {
  const Suite suite = parse_suite(Json::parse(R"({"name": "p", "engines": [{"name": "dense"}, {"name": "hip"}],
      "tasks": [{"name": "passkey", "params": {"samples": 2}},
                {"name": "ruler", "label": "vt", "params": {"task": "vt", "samples": 2}},
                {"name": "attention_needle"}],
      "context_lengths": [64, 2048]})"),
                                  "p.json");
  try {
    check_text_cells(suite.cells());
    FAIL("no error");
  } catch (const InputError& e) {
    const std::string message = e.what();
    CHECK_THAT(message, Catch::StartsWith("2 cell(s) cannot make their prompts"));
    CHECK_THAT(message, Catch::Contains("dense / passkey T=64 depth=50 seed=0: passkey: even without filler"));
    CHECK_THAT(message, Catch::Contains("dense / vt T=64 depth=50 seed=0: ruler vt: context length 64 is too short"));
    CHECK_THAT(message, !Catch::Contains("hip /") && !Catch::Contains("T=2048"));
  }
}

TEST_CASE("the run command stops at preflight with exit 2 and creates no database", "[suite][preflight][cli]") {
  const testing::TempDir dir;
  testing::write_file(dir.file("s.json"), R"({"name": "s", "engines": [{"name": "dense"}],
      "tasks": [{"name": "passkey", "params": {"samples": 1}}], "context_lengths": [64]})");
  std::string output;
  CHECK(testing::run_shell(testing::ctxbench_binary() + " run " + dir.file("s.json") + " --db " + dir.file("s.db"),
                           &output) == 2);
  CHECK_THAT(output, Catch::Contains("cannot make their prompts, so the run does not start"));
  CHECK_FALSE(std::filesystem::exists(dir.file("s.db")));
}

TEST_CASE("every suite in suites/ passes preflight", "[suite][preflight]") {
  for (const auto& entry : std::filesystem::directory_iterator(source_tree() / "suites")) {
    INFO(entry.path().filename().string());
    CHECK_NOTHROW(check_text_cells(load_suite(entry.path().string()).cells()));
  }
}
