#include <fmt/format.h>

#include <cmath>
#include <optional>

#include "core/command.h"
#include "core/slowdown.h"
#include "reports/comparison.h"
#include "reports/results.h"

namespace ctxbench::reports {
namespace {

constexpr int kRegression = 4;  // exit status when the candidate regresses
constexpr double kDefaultMaxSlowdown = 0.05;
constexpr double kDefaultMaxAccuracyDrop = 0.5;

struct Threshold {
  std::optional<double> value;  // nullopt: this check is off
  std::string source;
};

// The command line wins; then the candidate's suite "thresholds" block, then the baseline's; then the default.
Threshold choose(const Args& args, const std::string& option, const std::string& field, Store& store,
                 const std::vector<std::int64_t>& runs, double fallback) {
  if (args.given(option))
    return {option == "--max-slowdown" ? parse_slowdown(args.text(option), option) : args.number(option), option};
  for (const auto id : runs) {
    const Json suite = store.suite_document(id);
    if (!suite.is_object() || !suite.contains("thresholds")) continue;
    const Json& t = suite.at("thresholds");
    if (!t.is_object() || !t.contains(field)) continue;
    const Json& value = t.at(field);
    const std::string source = fmt::format("suite \"{}\" of run {}", suite.value("name", "?"), id);
    if (value.is_number()) return {value.get<double>(), source};
    if (value.is_string()) return {parse_slowdown(value.get<std::string>(), source + " thresholds." + field), source};
  }
  return {fallback, "default"};
}

std::int64_t run_id_option(const Args& args, const std::string& name, Store& store) {
  if (!args.given(name)) throw InputError(fmt::format("{} RUN_ID is required", name));
  return select_runs(store, {args.integer(name)}).front();
}

struct Offence {
  const CellRecord* cell;
  std::string what;
};

struct GateResult {
  std::vector<Offence> offences;
  int timings_judged = 0, accuracy_checked = 0;
  std::vector<std::string> not_judged;  // one example per reason
  int not_judged_count = 0;
};

void check_timings(const CellPair& pair, double max_slowdown, double alpha, GateResult& r) {
  for (const auto& d : pair.deltas) {
    if (d.info.kind != MetricKind::time) continue;
    const auto test = significantly_slower(*d.before, *d.after, max_slowdown, alpha);
    if (!test.judged) {
      // Single-valued timings of repeated cells (the engine's own split of the last repetition) are descriptive
      // only; in a 1-repetition run every timing is single-valued, and that is why nothing can be judged.
      const bool repeated = pair.before->repetitions > 1 || pair.after->repetitions > 1;
      if (repeated && d.before->repetitions.size() < 2 && d.after->repetitions.size() < 2) continue;
      if (r.not_judged_count++ == 0)
        r.not_judged.push_back(describe(*pair.after) + " " + d.metric + ": " + test.why_not_judged);
      continue;
    }
    ++r.timings_judged;
    if (test.slower) {
      r.offences.push_back(
          {pair.after, fmt::format("{} {} -> {} ({:+.1f}%; one-sided p={:.2g} against +{:g}%)", d.metric,
                                   format_value(d.before->value(), d.unit), format_value(d.after->value(), d.unit),
                                   100 * (d.ratio() - 1), test.p, 100 * max_slowdown)});
    }
  }
}

void check_accuracy(const CellPair& pair, double max_drop, GateResult& r) {
  const auto* after = accuracy_measurement(*pair.after);
  if (!after) return;
  const auto* before = find_metric(*pair.before, after->metric);
  if (!before) return;
  ++r.accuracy_checked;
  const double drop = accuracy_points(*before) - accuracy_points(*after);
  if (drop > max_drop + 1e-9) {
    r.offences.push_back(
        {pair.after, fmt::format("{} {:.2f}% -> {:.2f}% (-{:.2f} points, more than {:.4g})", after->metric,
                                 accuracy_points(*before), accuracy_points(*after), drop, max_drop)});
  }
}

int gate_command(const Args& args) {
  args.expect_positionals(0, 0);
  const std::string path = args.text("--db");
  check_readable_database(path);
  Store store(path);
  const auto baseline = run_id_option(args, "--baseline", store);
  const auto candidate = run_id_option(args, "--candidate", store);
  const double alpha = checked_alpha(args.number("--alpha"));
  const auto slowdown =
      choose(args, "--max-slowdown", "max_slowdown", store, {candidate, baseline}, kDefaultMaxSlowdown);
  const auto drop =
      choose(args, "--max-accuracy-drop", "max_accuracy_drop", store, {candidate, baseline}, kDefaultMaxAccuracyDrop);
  const auto c = compare_runs(store, baseline, candidate, alpha);

  fmt::print("gate: baseline run {} (commit {}), candidate run {} (commit {})\n", baseline,
             c.before_run.git_commit.substr(0, 12), candidate, c.after_run.git_commit.substr(0, 12));
  fmt::print("thresholds: max slowdown {} ({}), max accuracy drop {:.4g} points ({}), alpha {}\n",
             slowdown.value ? fmt::format("{:g}%", 100 * *slowdown.value) : "off", slowdown.source, *drop.value,
             drop.source, alpha);
  const std::string loaded = cells_timed_under_load(c);
  if (slowdown.value && !loaded.empty() && !args.flag("--allow-load")) {
    throw InputError(fmt::format(
        "cannot judge: timed under load, {}; another process competed for the machine, so a difference may be "
        "the load's. Rerun on a quiet machine, pass --allow-load to judge anyway, or --max-slowdown off to gate "
        "on accuracy only",
        loaded));
  }
  if (!loaded.empty()) fmt::print("warning: judged although timed under load (--allow-load): {}\n", loaded);
  GateResult r;
  for (const auto& pair : c.pairs) {
    if (slowdown.value) check_timings(pair, *slowdown.value, alpha, r);
    check_accuracy(pair, *drop.value, r);
  }
  for (const auto* cell : c.newly_failed) r.offences.push_back({cell, "failed: " + cell->error});
  if (!c.only_before.empty())
    fmt::print("warning: {} baseline cells are missing from the candidate (first: {})\n", c.only_before.size(),
               describe(*c.only_before.front()));
  if (r.not_judged_count) {
    fmt::print("warning: {} timings not judged, e.g. {}\n", r.not_judged_count, r.not_judged.front());
  }
  if (slowdown.value && r.timings_judged == 0) {
    throw InputError(
        fmt::format("cannot judge: no timing could be judged against its noise ({}); run both suites with at least 4 "
                    "repetitions per cell (5 or more is better), or pass --max-slowdown off to gate on accuracy only",
                    r.not_judged.empty() ? "the matched cells have no timings" : r.not_judged.front()));
  }
  if (!r.offences.empty()) {
    fmt::print("FAIL: {} regressions in {} matched cells\n", r.offences.size(), c.pairs.size() + c.newly_failed.size());
    for (const auto& o : r.offences) fmt::print("  {}: {}\n", describe(*o.cell), o.what);
    return kRegression;
  }
  fmt::print("PASS: {} timings judged, none significantly slower than allowed; accuracy of {} cells within the limit\n",
             r.timings_judged, r.accuracy_checked);
  return 0;
}

const RegisterCommand registration{{
    .name = "gate",
    .summary = "fail (exit 4) when a candidate run regresses against a baseline run beyond the thresholds",
    .usage = "ctxbench gate --baseline RUN_A --candidate RUN_B [--max-slowdown 5%] [--max-accuracy-drop 0.5]\n"
             "              [--alpha 0.05] [--allow-load] [--db FILE]",
    .description =
        "Matches cells as `ctxbench compare` does and lists every offending cell:\n"
        "  - a timing with repetitions that is significantly slower than the baseline's times (1 + max\n"
        "    slowdown): one-sided Mann-Whitney U test of the candidate's repetitions against the scaled\n"
        "    baseline repetitions, p < alpha. Needs at least 4 repetitions per cell (5 or more is better);\n"
        "    timings of single values are not gated. --max-slowdown takes 5% or 0.05, or off;\n"
        "  - an accuracy drop of more than max-accuracy-drop percentage points (ratio metrics x100);\n"
        "  - a cell that passed in the baseline and failed in the candidate.\n"
        "Thresholds not given come from the \"thresholds\" block of the candidate's suite, then the\n"
        "baseline's, then the defaults 5% and 0.5 points. Exit status: 0 pass, 4 regression, 2 bad input or\n"
        "cannot judge (no timing has enough repetitions, or cells were timed under load: a cpu or memory\n"
        "pressure above 10% while the cell ran, or without PSI a load average above the cores), saying why.",
    .options = {database_option(),
                {.name = "--baseline", .type = ParamType::integer, .help = "the run gated against; required", .min = 1},
                {.name = "--candidate", .type = ParamType::integer, .help = "the run gated; required", .min = 1},
                {.name = "--max-slowdown",
                 .type = ParamType::string,
                 .help = "5% or 0.05, or off; by default the suites' thresholds, else 5%"},
                {.name = "--max-accuracy-drop",
                 .type = ParamType::number,
                 .help = "percentage points; by default the suites' thresholds, else 0.5",
                 .min = 0},
                alpha_option(),
                {.name = "--allow-load",
                 .type = ParamType::boolean,
                 .help = "judge timings even when cells were timed under load (otherwise exit 2)"}},
    .run = gate_command,
}};

}  // namespace
}  // namespace ctxbench::reports
