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
  return 0;
}

const RegisterCommand registration{{
    .name = "report",
    .summary = "summarise stored runs: metadata, a table per task, engine and context length, failed cells",
    .usage = "ctxbench report [--db FILE] [--run ID ...] [--html OUT.html]",
    .description =
        "Means over depths and seeds of each (task, engine, context length) group. Without --run, the newest run.\n"
        "Columns: accuracy in points (the task's metric; needle recall x 100 at attention level), the share of\n"
        "dense attention's mass on the keys attended (attention level), output error against float64 dense,\n"
        "decode time per step or token, prefill time, keys attended per query,\n"
        "attention's share of generation time (model level), and the paired speedup over the suite's baseline\n"
        "engine with its 95% interval (geometric mean of the cells' speedups; the lowest and highest bound).\n"
        "--html writes one self-contained page instead (inline SVG, no script, nothing fetched): run metadata,\n"
        "accuracy per task and engine, a depth x length heatmap per engine for tasks with several depths,\n"
        "time and speedup-over-dense curves for prefill and decode, memory held against context length,\n"
        "failed cells with their errors; every point and cell has a tooltip and a table of numbers.",
    .options = {database_option(),
                run_option(),
                {.name = "--html", .type = ParamType::string, .help = "writes the report to this HTML file"}},
    .run = report_command,
}};

}  // namespace
}  // namespace ctxbench::reports
