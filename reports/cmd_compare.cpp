#include <fmt/format.h>

#include <cmath>
#include <map>

#include "core/command.h"
#include "reports/comparison.h"
#include "reports/results.h"

namespace ctxbench::reports {
namespace {

struct EngineSummary {
  int cells = 0;
  double log_ratio_sum = 0;  // time and memory: geometric mean of after/before
  int ratios = 0;
  double before_sum = 0, after_sum = 0;  // accuracy (points) and other metrics: means
  std::map<Verdict, int> verdicts;
};

using SummaryKey = std::tuple<std::string, std::string, std::string>;  // engine, task, metric

void add_to_summary(EngineSummary& s, const MetricDelta& d) {
  ++s.cells;
  const bool accuracy = d.info.kind == MetricKind::accuracy;
  s.before_sum += accuracy ? accuracy_points(*d.before) : d.before->value();
  s.after_sum += accuracy ? accuracy_points(*d.after) : d.after->value();
  const double r = d.ratio();
  if (std::isfinite(r) && r > 0) {
    s.log_ratio_sum += std::log(r);
    ++s.ratios;
  }
  if (d.info.kind == MetricKind::time) ++s.verdicts[d.verdict];
}

void print_engine_summary(const Comparison& c, bool all_metrics) {
  std::map<SummaryKey, EngineSummary> summaries;
  std::map<SummaryKey, std::pair<MetricInfo, std::string>> infos;  // and the unit
  for (const auto& pair : c.pairs) {
    for (const auto& d : pair.deltas) {
      if (!all_metrics && !is_headline(d, *pair.after)) continue;
      const SummaryKey key{pair.after->engine, pair.after->task, d.metric};
      add_to_summary(summaries[key], d);
      infos[key] = {d.info, d.unit};
    }
  }
  fmt::print("\nper engine and task (time and memory: geometric mean of the per-cell ratios; accuracy: mean)\n");
  fmt::print("{:<16} {:<18} {:<26} {:>5} {:>14} {:>14} {:>10}  {}\n", "engine", "task", "metric", "cells", "run A",
             "run B", "change", "timing verdicts");
  for (const auto& [key, s] : summaries) {
    const auto& [engine, task, metric] = key;
    const auto& [info, unit] = infos[key];
    const bool accuracy = info.kind == MetricKind::accuracy;
    const double before = s.before_sum / s.cells, after = s.after_sum / s.cells;
    std::string delta = accuracy   ? fmt::format("{:+.2f} pt", after - before)
                        : s.ratios ? fmt::format("{:+.1f}%", 100 * (std::exp(s.log_ratio_sum / s.ratios) - 1))
                                   : "-";
    std::string verdicts;
    if (info.kind == MetricKind::time) {
      const auto& counts = s.verdicts;  // a named copy: clang 14 cannot capture structured bindings
      auto n = [&](Verdict v) { return counts.contains(v) ? counts.at(v) : 0; };
      verdicts = fmt::format("{} slower, {} faster, {} unchanged, {} not judged", n(Verdict::slower),
                             n(Verdict::faster), n(Verdict::unchanged), n(Verdict::not_judged));
    }
    fmt::print("{:<16} {:<18} {:<26} {:>5} {:>14} {:>14} {:>10}  {}\n", engine, task, metric, s.cells,
               accuracy ? fmt::format("{:.2f}%", before) : format_value(before, unit),
               accuracy ? fmt::format("{:.2f}%", after) : format_value(after, unit), delta, verdicts);
  }
}

// The closing lines; "no significant change" when nothing moved beyond noise.
void print_conclusion(const Comparison& c) {
  int slower = 0, faster = 0, judged = 0, accuracy_down = 0, accuracy_up = 0, memory_changed = 0;
  for (const auto& pair : c.pairs) {
    for (const auto& d : pair.deltas) {
      if (d.info.kind == MetricKind::time && d.verdict != Verdict::not_judged) {
        ++judged;
        slower += d.verdict == Verdict::slower;
        faster += d.verdict == Verdict::faster;
      } else if (d.info.kind == MetricKind::accuracy && accuracy_measurement(*pair.after) == d.after) {
        accuracy_down += d.after->value() < d.before->value();
        accuracy_up += d.after->value() > d.before->value();
      } else if (d.info.resident_memory) {
        memory_changed += d.after->value() != d.before->value();
      }
    }
  }
  fmt::print("\n{} cells matched", c.pairs.size());
  if (!c.only_before.empty() || !c.only_after.empty())
    fmt::print(" ({} only in run A, {} only in run B)", c.only_before.size(), c.only_after.size());
  fmt::print("\n");
  for (const auto* cell : c.newly_failed) fmt::print("newly failing: {}: {}\n", describe(*cell), cell->error);
  for (const auto* cell : c.fixed) fmt::print("now passing: {}\n", describe(*cell));
  if (judged == 0) {
    fmt::print(
        "timing: not judged (the runs need at least 4 repetitions per cell to test at alpha {}; the timings\n"
        "above are shown as measured)\n",
        c.alpha);
  } else if (slower + faster == 0) {
    fmt::print("timing: no significant change ({} timings judged at alpha {})\n", judged, c.alpha);
  } else {
    fmt::print("timing: {} significantly slower, {} significantly faster of {} judged (alpha {})\n", slower, faster,
               judged, c.alpha);
  }
  fmt::print("accuracy: {}\n", accuracy_down + accuracy_up == 0
                                   ? std::string("unchanged")
                                   : fmt::format("lower in {} cells, higher in {}", accuracy_down, accuracy_up));
  if (const auto loaded = cells_timed_under_load(c); !loaded.empty())
    fmt::print("warning: timed under load: {}; timing changes may be the load's\n", loaded);
  fmt::print("memory held: {}\n", memory_changed ? fmt::format("changed in {} cells", memory_changed) : "unchanged");
  if (slower + faster + accuracy_down + accuracy_up + memory_changed == 0 && c.newly_failed.empty() && c.fixed.empty())
    fmt::print("no significant change\n");
}

void print_cells(const Comparison& c, bool all_metrics) {
  fmt::print("{:<16} {:<18} {:>8} {:>6} {:>4}  {:<26} {:>12} {:>12} {:>9}  {}\n", "engine", "task", "context", "depth",
             "seed", "metric", "run A", "run B", "change", "judgement");
  for (const auto& pair : c.pairs) {
    const auto& cell = *pair.after;
    for (const auto& d : pair.deltas) {
      if (!all_metrics && !is_headline(d, cell)) continue;
      fmt::print("{:<16} {:<18} {:>8} {:>6} {:>4}  {:<26} {:>12} {:>12} {:>9}  {}\n", cell.engine, cell.task,
                 cell.context_length, cell.depth, cell.seed, d.metric, shown_value(d, *pair.before, *d.before),
                 shown_value(d, *pair.after, *d.after), change_text(d), judgement_text(d));
    }
  }
  std::map<std::string, std::string> differing;
  for (const auto& pair : c.pairs) {
    if (pair.params_differ)
      differing[pair.after->engine + " / " + pair.after->task] = parameter_changes(*pair.before, *pair.after);
  }
  for (const auto& [what, changes] : differing) fmt::print("note: {} has different parameters: {}\n", what, changes);
}

// RUN_A and RUN_B, read as this option would be.
const ParamSpec kRunId{.name = "run id", .type = ParamType::integer, .help = "", .min = 1};

int compare_command(const Args& args) {
  args.expect_positionals(2, 2);
  const std::string path = args.text("--db");
  check_readable_database(path);
  Store store(path);
  std::vector<long long> given;
  for (const auto& text : args.positionals()) given.push_back(parse_option_value(kRunId, text).get<long long>());
  const auto ids = select_runs(store, given);
  const auto c = compare_runs(store, ids[0], ids[1], checked_alpha(args.number("--alpha")));
  fmt::print("run A = {} (suite {}, {}, commit {})\nrun B = {} (suite {}, {}, commit {})\n\n", c.before_run.id,
             c.before_run.suite, c.before_run.started_at, c.before_run.git_commit.substr(0, 12), c.after_run.id,
             c.after_run.suite, c.after_run.started_at, c.after_run.git_commit.substr(0, 12));
  print_cells(c, args.flag("--all"));
  print_engine_summary(c, args.flag("--all"));
  print_conclusion(c);
  return 0;
}

const RegisterCommand registration{{
    .name = "compare",
    .summary = "per-cell and per-engine changes between two runs, timing judged against its noise",
    .usage = "ctxbench compare RUN_A RUN_B [--db FILE] [--alpha 0.05] [--all]",
    .description =
        "Matches cells by engine and task label, context length, depth and seed. Per cell it prints the\n"
        "timings that have repetitions, the memory held and the accuracy (--all: every metric), with the\n"
        "change from A to B. A timing is judged by a two-sided Mann-Whitney U test on the per-repetition\n"
        "values (exact without ties, else the tie-corrected normal approximation): \"slower\" or \"faster\"\n"
        "when p < alpha, else \"no significant change\"; runs need at least 4 repetitions per cell for p to\n"
        "reach 0.05. Then one line per engine, task and metric, and a conclusion (\"no significant change\"\n"
        "when nothing moved beyond noise).",
    .options = {database_option(),
                alpha_option(),
                {.name = "--all", .type = ParamType::boolean, .help = "prints every metric of every cell"}},
    .run = compare_command,
}};

}  // namespace
}  // namespace ctxbench::reports
