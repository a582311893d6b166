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
      "status",      "error",       "metric",         "value",         "unit",          "repetition_values",
      "under_load"};
  return columns;
}

std::string format_number(double value) {
  if (std::isnan(value)) return "";
  return fmt::format("{}", value);
}

std::string csv_field(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "";
  if (value.is_boolean()) return value.get<bool>() ? "1" : "0";
  if (value.is_number_float()) return format_number(value.get<double>());
  return value.dump();  // integers exactly, objects and arrays as JSON
}

namespace {

Json number_or_null(double value) { return std::isfinite(value) ? Json(value) : Json(); }

Json values_or_null(const Measurement& m) {
  if (m.repetitions.size() < 2) return Json();
  Json values = Json::array();
  for (const double v : m.repetitions) values.push_back(number_or_null(v));
  return values;
}

}  // namespace

std::vector<std::vector<Json>> export_rows(Store& store, std::int64_t run_id) {
  std::vector<std::vector<Json>> rows;
  for (const auto& c : store.cells(run_id)) {
    const std::vector<Json> prefix = {run_id,           c.key,
                                      c.engine,         c.engine_method,
                                      c.engine_params,  c.task,
                                      c.task_method,    c.task_params,
                                      c.context_length, c.depth,
                                      c.seed,           c.repetitions,
                                      c.status,         c.error.empty() ? Json() : Json(c.error)};
    const auto row_of = [&](Json metric, Json value, Json unit, Json values) {
      auto row = prefix;
      row.insert(row.end(), {std::move(metric), std::move(value), std::move(unit), std::move(values), c.under_load});
      return row;
    };
    if (c.measurements.empty()) rows.push_back(row_of(Json(), Json(), Json(), Json()));
    for (const auto& m : c.measurements)
      rows.push_back(row_of(m.metric, number_or_null(m.value()), m.unit, values_or_null(m)));
  }
  return rows;
}

const std::vector<std::string>& sample_columns() {
  static const std::vector<std::string> columns = {"run_id",         "cell_key",   "engine",    "task",
                                                   "context_length", "depth",      "seed",      "sample",
                                                   "input_excerpt",  "prediction", "reference", "score"};
  return columns;
}

namespace {

bool continuation_byte(char ch) { return (static_cast<unsigned char>(ch) & 0xC0) == 0x80; }

}  // namespace

std::string excerpt(const std::string& text, std::size_t keep) {
  if (text.size() <= 2 * keep + 5) return text;
  std::size_t head = keep, tail = text.size() - keep;
  while (head > 0 && continuation_byte(text[head])) --head;
  while (tail < text.size() && continuation_byte(text[tail])) ++tail;
  return text.substr(0, head) + " … " + text.substr(tail);
}

std::vector<std::vector<Json>> sample_rows(Store& store, std::int64_t run_id) {
  constexpr std::size_t kExcerptBytes = 160;
  std::vector<std::vector<Json>> rows;
  for (const auto& c : store.cells(run_id)) {
    for (const auto& sample : store.samples(c.id)) {
      rows.push_back({run_id, c.key, c.engine, c.task, c.context_length, c.depth, c.seed, sample.index,
                      excerpt(sample.input, kExcerptBytes), sample.prediction, sample.references,
                      number_or_null(sample.score)});
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
