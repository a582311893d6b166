#include "reports/results.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <cmath>
#include <filesystem>

namespace ctxbench::reports {

ParamSpec run_option() {
  return {.name = "--run", .type = ParamType::integer_list, .help = "a run to read (default the newest)", .min = 1};
}

std::vector<std::int64_t> select_runs(Store& store, const std::vector<long long>& ids) {
  const auto runs = store.runs();
  if (runs.empty()) throw InputError(fmt::format("{}: the database holds no runs yet", store.path()));
  if (ids.empty()) return {runs.back().id};
  std::vector<std::int64_t> out;
  for (const auto id : ids) {
    if (!store.run(id)) throw InputError(fmt::format("{}: no run {} (see `ctxbench list runs`)", store.path(), id));
    out.push_back(id);
  }
  return out;
}

Json run_context(const RunInfo& r) {
  return {{"run_id", r.id},
          {"suite", r.suite},
          {"started_at", r.started_at},
          {"finished_at", r.finished_at},
          {"status", r.status},
          {"git_commit", r.git_commit},
          {"build_type", r.build_type},
          {"compiler", r.compiler},
          {"cpu_model", r.cpu_model},
          {"num_cpus", r.cores},
          {"memory_bytes", r.memory_bytes},
          {"host_name", r.host}};
}

const std::vector<std::string>& export_columns() {
  static const std::vector<std::string> columns = {
      "run_id",      "cell_key",    "engine",         "engine_method", "engine_params", "task",
      "task_method", "task_params", "context_length", "depth",         "seed",          "repetitions",
      "status",      "error",       "metric",         "value",         "unit",          "repetition_values"};
  return columns;
}

std::string format_number(double value) {
  if (std::isnan(value)) return "";
  return fmt::format("{}", value);
}

std::vector<std::vector<std::string>> export_rows(Store& store, std::int64_t run_id) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : store.cells(run_id)) {
    const std::vector<std::string> prefix = {std::to_string(run_id),
                                             c.key,
                                             c.engine,
                                             c.engine_method,
                                             c.engine_params.dump(),
                                             c.task,
                                             c.task_method,
                                             c.task_params.dump(),
                                             std::to_string(c.context_length),
                                             format_number(c.depth),
                                             std::to_string(c.seed),
                                             std::to_string(c.repetitions),
                                             c.status,
                                             c.error};
    if (c.measurements.empty()) {
      auto row = prefix;
      row.insert(row.end(), {"", "", "", ""});
      rows.push_back(std::move(row));
    }
    for (const auto& m : c.measurements) {
      auto row = prefix;
      row.insert(row.end(), {m.metric, format_number(m.value()), m.unit,
                             m.repetitions.size() > 1 ? Json(m.repetitions).dump() : ""});
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

ParamSpec alpha_option() {
  return {.name = "--alpha",
          .type = ParamType::number,
          .default_value = 0.05,
          .help = "the significance level of the timing tests, in (0, 1)"};
}

double checked_alpha(double alpha) {
  if (!(alpha > 0 && alpha < 1)) throw InputError(fmt::format("--alpha: expected a number in (0, 1), got {}", alpha));
  return alpha;
}

std::string csv_escape(const std::string& field) {
  if (field.find_first_of(",\"\n\r") == std::string::npos) return field;
  std::string out = "\"";
  for (char ch : field) {
    if (ch == '"') out += '"';
    out += ch;
  }
  return out + "\"";
}

}  // namespace ctxbench::reports
