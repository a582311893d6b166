#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <initializer_list>
#include <map>

#include "core/command.h"
#include "reports/html_report.h"
#include "reports/metrics.h"
#include "reports/results.h"
#include "reports/run_to_run.h"
#include "reports/settings.h"

namespace ctxbench::reports {
namespace {

// Mean over the cells of one group (depths and seeds) of the first of `names` each cell measured;
// NaN when no cell has any. Attention-level and model-level cells name some quantities differently.
double mean_of(const std::vector<const CellRecord*>& cells, std::initializer_list<const char*> names) {
  double sum = 0;
  int n = 0;
  for (const auto* c : cells) {
    for (const char* name : names) {
      if (const auto* m = find_metric(*c, name)) {
        sum += m->value();
        ++n;
        break;
      }
    }
  }
  return n ? sum / n : std::nan("");
}

// Accuracy in points: the task's own metric for text tasks, needle recall x 100 for attention-level ones.
double mean_accuracy(const std::vector<const CellRecord*>& cells) {
  double sum = 0;
  int n = 0;
  for (const auto* c : cells) {
    if (const auto* m = accuracy_measurement(*c)) {
      sum += accuracy_points(*m);
      ++n;
    }
  }
  return n ? sum / n : std::nan("");
}

// The paired speedups of a group's cells: the geometric mean of their medians, with the lowest and highest bound
// of their 95% intervals; "-" when its cells have none.
std::string group_speedup(const std::vector<const CellRecord*>& cells) {
  double log_sum = 0, low = INFINITY, high = 0;
  int n = 0;
  for (const auto* c : cells) {
    const auto *speedup = find_metric(*c, "speedup"), *lo = find_metric(*c, "speedup_low"),
               *hi = find_metric(*c, "speedup_high");
    if (!speedup || !lo || !hi) continue;
    log_sum += std::log(speedup->value());
    low = std::min(low, lo->value());
    high = std::max(high, hi->value());
    ++n;
  }
  return n ? speedup_with_interval(std::exp(log_sum / n), low, high) : "-";
}

std::string cell_text(double value, const char* spec) {
  return std::isnan(value) ? "-" : fmt::format(fmt::runtime(spec), value);
}

// One line per engine label: its parameters, "*" after those that differ from the method's declared default.
void print_settings(const std::vector<CellRecord>& cells) {
  fmt::print("  engine settings (* differs from the method's default):\n");
  for (const auto& e : engine_settings(cells)) {
    std::vector<std::string> items;
    for (const auto& s : e.settings) items.push_back(s.name + "=" + s.value + (s.changed ? "*" : ""));
    fmt::print("    {:<16} {:<14} {}{}\n", e.engine, e.method, fmt::join(items, " "),
               e.method_known ? "" : "  (method not registered in this build)");
  }
  fmt::print("\n");
}

void print_run(Store& store, std::int64_t id) {
  const auto run = *store.run(id);
  fmt::print("run {}  suite {}  {}  {}\n  commit {}  {} build, {}\n  {} ({} cores, {:.1f} GiB)\n\n", run.id, run.suite,
             run.started_at, run.status, run.git_commit, run.build_type, run.compiler, run.cpu_model, run.cores,
             run.memory_bytes / 1073741824.0);
  const auto cells = store.cells(id);
  if (cells.empty()) {
    fmt::print("  run {} stored no cells (status: {}): nothing to report yet\n\n", id, run.status);
    return;
  }
  print_settings(cells);
  const auto loaded = std::count_if(cells.begin(), cells.end(), [](const CellRecord& c) { return c.under_load; });
  if (loaded) {
    const auto first = std::find_if(cells.begin(), cells.end(), [](const CellRecord& c) { return c.under_load; });
    fmt::print("  warning: {} of {} cells were timed under load (first: {}); their timings are not comparable\n\n",
               loaded, cells.size(), first->load ? first->load->describe() : "");
  }
  std::map<std::tuple<std::string, std::string, int>, std::vector<const CellRecord*>> groups;
  std::vector<const CellRecord*> failed;
  for (const auto& c : cells) {
    if (c.status == "ok")
      groups[{c.task, c.engine, c.context_length}].push_back(&c);
    else
      failed.push_back(&c);
  }
  const char* row = "  {:<20} {:<16} {:>9} {:>6} {:>9} {:>6} {:>10} {:>10} {:>11} {:>11} {:>6}  {}\n";
  fmt::print(fmt::runtime(row), "task", "engine", "context", "cells", "accuracy", "mass%", "rel_error", "decode_ms",
             "prefill_ms", "keys/query", "attn%", "speedup [95%]");
  for (const auto& [key, group] : groups) {
    const auto& [task, engine, length] = key;
    fmt::print(fmt::runtime(row), task, engine, length, group.size(), cell_text(mean_accuracy(group), "{:.1f}"),
               cell_text(100 * mean_of(group, {"attention_recall"}), "{:.1f}"),
               cell_text(mean_of(group, {"output_rel_error"}), "{:.2e}"),
               cell_text(1e3 * mean_of(group, {"decode_seconds_per_step", "decode_seconds_per_token"}), "{:.3f}"),
               cell_text(1e3 * mean_of(group, {"prefill_seconds"}), "{:.2f}"),
               cell_text(mean_of(group, {"keys_attended_mean", "keys_per_query"}), "{:.0f}"),
               cell_text(100 * mean_of(group, {"attention_share"}), "{:.0f}"), group_speedup(group));
  }
  if (!failed.empty()) {
    fmt::print("\n  failed cells:\n");
    for (const auto* c : failed) {
      fmt::print("    {} / {} T={} depth={} seed={}: {}\n", c->engine, c->task, c->context_length, c->depth, c->seed,
                 c->error);
    }
  }
  fmt::print("\n");
}

// Two runs side by side: each matched cell's headline metrics in both, the change, and compare's judgement.
void print_run_to_run(Store& store, std::int64_t a, std::int64_t b) {
  fmt::print(
      "run {} -> run {} (cells matched by label, context length, depth and seed; timings judged as compare "
      "does)\n",
      a, b);
  try {
    const auto view = run_to_run(store, a, b, 0.05);
    const char* row = "  {:<18} {:<16} {:>8} {:>5} {:>4}  {:<24} {:>36} {:>36} {:>9}  {}\n";
    fmt::print(fmt::runtime(row), "engine", "task", "context", "depth", "seed", "metric", "run A", "run B", "change",
               "judgement");
    for (const auto& r : view.rows) {
      fmt::print(fmt::runtime(row), r.cell->engine, r.cell->task, r.cell->context_length, r.cell->depth, r.cell->seed,
                 r.metric, r.before, r.after, r.change, r.judgement);
    }
    for (const auto& note : view.notes) fmt::print("  note: {}\n", note);
  } catch (const InputError& e) {
    fmt::print("  cannot be compared cell by cell: {}\n", e.what());
  }
  fmt::print("\n");
}

void write_html(Store& store, const std::vector<std::int64_t>& runs, const std::string& path) {
  const std::string html = render_html_report(store, runs);
  std::ofstream out(path, std::ios::binary);
  if (!out || !(out << html) || !out.flush()) throw InputError(fmt::format("{}: cannot write the report", path));
  fmt::print("wrote {} ({} KiB, run {})\n", path, (html.size() + 1023) / 1024, fmt::join(runs, ", "));
}

int report_command(const Args& args) {
  args.expect_positionals(0, 0);
  const std::string path = args.text("--db");
  check_readable_database(path);
  Store store(path);
  const auto runs = select_runs(store, args.integers("--run"));
  if (args.given("--html")) {
    write_html(store, runs, args.text("--html"));
    return 0;
  }
  for (const auto id : runs) print_run(store, id);
  if (runs.size() == 2) print_run_to_run(store, runs[0], runs[1]);
  return 0;
}

const RegisterCommand registration{{
    .name = "report",
    .summary = "summarise stored runs: metadata, a table per task, engine and context length, failed cells",
    .usage = "ctxbench report [--db FILE] [--run ID ...] [--html OUT.html]",
    .description =
        "Means over depths and seeds of each (task, engine, context length) group. Without --run, the newest run.\n"
        "First each engine label's parameters, \"*\" after those that differ from the method's declared default.\n"
        "Columns: accuracy in points (the task's metric; needle recall x 100 at attention level), the share of\n"
        "dense attention's mass on the keys attended (attention level), output error against float64 dense,\n"
        "decode time per step or token, prefill time, keys attended per query,\n"
        "attention's share of generation time (model level), and the paired speedup over the suite's baseline\n"
        "engine with its 95% interval (geometric mean of the cells' speedups; the lowest and highest bound).\n"
        "With two --run, the runs side by side: each matched cell's headline metrics in both, the change and\n"
        "compare's judgement of timings (the interquartile range of their repetitions shown).\n"
        "--html writes one self-contained page instead (inline SVG, no script, nothing fetched): run metadata,\n"
        "engine settings, accuracy per task and engine, trade-off charts (accuracy and dense mass kept against\n"
        "keys attended, KV bytes resident and speedup, with the Pareto front), a depth x length heatmap per engine\n"
        "for tasks with several depths, time and speedup-over-dense curves for prefill and decode, memory held\n"
        "against context length, failed cells with their errors; every point and cell has a tooltip and a table\n"
        "of numbers.",
    .options = {database_option(),
                run_option(),
                {.name = "--html", .type = ParamType::string, .help = "writes the report to this HTML file"}},
    .run = report_command,
}};

}  // namespace
}  // namespace ctxbench::reports
