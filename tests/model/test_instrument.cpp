// The bundled model as a measuring instrument: a slice of suites/model-tasks.json (the first held-out prompts of each
// task, dense, greedy, at the training length) must be answered right, so that a method's drop in accuracy on these
// tasks is the method's. Only the tasks the model reaches 90% on are checked (its README has the table); the rest
// are listed below, and issue #21 stays open until kNotYetMet is empty.
#include <catch2/catch.hpp>
#include <set>

#include "core/source_tree.h"
#include "harness/runner.h"
#include "harness/suite.h"

using namespace ctxbench;

namespace {

// Measured, not required: the model is not trained on them by default (scripts/train_model.py --tasks).
const std::set<std::string> kNotHeldTo = {"niah_multikey_2", "niah_multikey_3", "cwe", "fwe"};
// Required by issue #21 but below 90% for the bundled model (run 10 of docs/findings/model-level.md).
const std::set<std::string> kNotYetMet = {"niah", "niah_multikey_1", "niah_multivalue", "niah_multiquery",
                                          "vt",   "kv_retrieval"};
constexpr int kPromptsPerTask = 3;

}  // namespace

TEST_CASE("the bundled model answers held-out prompts of the tasks it is an instrument for, dense",
          "[model][instrument]") {
  Json document = load_suite((source_tree() / "suites" / "model-tasks.json").string()).document;
  document["name"] = "model-tasks-slice";
  for (auto& task : document.at("tasks")) task["params"]["samples"] = kPromptsPerTask;
  int checked = 0;
  for (const Cell& cell : parse_suite(document, "model-tasks slice").cells()) {
    if (kNotHeldTo.count(cell.task.label) || kNotYetMet.count(cell.task.label)) continue;
    const CellOutput out = run_cell(cell);
    REQUIRE(out.samples.size() == kPromptsPerTask);
    for (const SampleRecord& sample : out.samples) {
      INFO(cell.task.label << " sample " << sample.index << ": expected " << sample.references.dump() << ", got \""
                           << sample.prediction << "\"");
      CHECK(sample.score == 1.0);
    }
    ++checked;
  }
  CHECK(checked == 5);  // passkey, niah_single_1/2/3, number_string
}
