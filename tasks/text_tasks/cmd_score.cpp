// `ctxbench score`: scores a prediction file the way the official scripts do, so that our scorers can be
// checked against theirs on the same predictions.
//   ctxbench score longbench --dataset NAME PRED.jsonl [--e]   records {pred, answers, all_classes, length};
//                                                              prints eval.py's result.json entry
//   ctxbench score ruler --task NAME PRED.jsonl                records {pred, outputs}; prints evaluate.py's
//                                                              summary csv
#include <fmt/format.h>

#include "core/command.h"
#include "tasks/scoring/prediction_files.h"
#include "tasks/text_tasks/common.h"

namespace ctxbench::tasks::text {
namespace {

constexpr const char* kUsage =
    "ctxbench score longbench --dataset NAME PRED.jsonl [--e]\n"
    "ctxbench score ruler --task NAME PRED.jsonl";

int score_command(const Args& args) {
  args.expect_positionals(2, 2);
  const std::string what = args.positionals()[0];
  const std::filesystem::path predictions = args.positionals()[1];
  if (what == "longbench") {
    const auto metrics =
        scoring::longbench::DatasetMetrics::load(from_source_tree("datasets/longbench/dataset2metric.json"));
    const std::string dataset = args.text("--dataset");
    metrics.metric_for(dataset);  // an unknown dataset fails before the file is read
    fmt::print("{}\n",
               scoring::score_longbench_predictions(predictions, dataset, args.flag("--e"), metrics).result_json());
  } else if (what == "ruler") {
    const auto result = scoring::score_ruler_predictions(predictions, args.text("--task"));
    fmt::print("{}", result.summary_csv());
  } else {
    throw InputError(fmt::format("score: unknown benchmark \"{}\"\nusage:\n{}", what, kUsage));
  }
  return 0;
}

const RegisterCommand registration{{
    .name = "score",
    .summary = "score a LongBench or RULER prediction file exactly as the official eval scripts do",
    .usage = kUsage,
    .description = "",
    .options = {{.name = "--dataset",
                 .type = ParamType::string,
                 .help = "the LongBench dataset (as in dataset2metric.json); required for longbench"},
                {.name = "--task", .type = ParamType::string, .help = "the RULER task; required for ruler"},
                {.name = "--e", .type = ParamType::boolean, .help = "LongBench-E: scores per length range"}},
    .run = score_command,
}};

}  // namespace
}  // namespace ctxbench::tasks::text
