#include <fmt/format.h>

#include <fstream>
#include <iostream>

#include "core/command.h"
#include "reports/results.h"

namespace ctxbench::reports {
namespace {

// What is exported: a row per cell and metric, or (--samples) a row per kept prediction.
struct Rows {
  const std::vector<std::string>& columns;
  std::vector<std::vector<Json>> (*of_run)(Store& store, std::int64_t run_id);
  const char* json_key;
};

void write_csv(std::ostream& out, Store& store, const std::vector<std::int64_t>& runs, const Rows& rows) {
  out << fmt::format("{}\n", fmt::join(rows.columns, ","));
  for (const auto id : runs) {
    for (const auto& row : rows.of_run(store, id)) {
      std::vector<std::string> escaped;
      for (const auto& field : row) escaped.push_back(csv_escape(csv_field(field)));
      out << fmt::format("{}\n", fmt::join(escaped, ","));
    }
  }
}

void write_json(std::ostream& out, Store& store, const std::vector<std::int64_t>& runs, const Rows& rows) {
  Json doc = {{"runs", Json::array()}};
  for (const auto id : runs) {
    Json results = Json::array();
    for (const auto& row : rows.of_run(store, id)) {
      Json item;
      for (std::size_t i = 0; i < rows.columns.size(); ++i) item[rows.columns[i]] = row[i];
      results.push_back(std::move(item));
    }
    doc["runs"].push_back({{"context", run_context(*store.run(id))}, {rows.json_key, std::move(results)}});
  }
  out << doc.dump(2) << "\n";
}

int export_command(const Args& args) {
  args.expect_positionals(0, 0);
  const std::string format = args.text("--format");
  const std::string path = args.text("--db");
  check_readable_database(path);
  Store store(path);
  const auto runs = select_runs(store, args.integers("--run"));
  const std::string output = args.text("--output");
  std::ofstream file;
  if (output != "-") {
    file.open(output);
    if (!file) throw InputError(fmt::format("{}: cannot write", output));
  }
  std::ostream& out = output == "-" ? std::cout : file;
  const Rows rows = args.flag("--samples") ? Rows{sample_columns(), sample_rows, "samples"}
                                           : Rows{export_columns(), export_rows, "results"};
  if (format == "csv")
    write_csv(out, store, runs, rows);
  else
    write_json(out, store, runs, rows);
  return 0;
}

const RegisterCommand registration{{
    .name = "export",
    .summary = "print stored results as CSV or JSON, one row per cell and metric",
    .usage = "ctxbench export --format csv|json [--db FILE] [--run ID ...] [--output FILE] [--samples]",
    .description = "One row per cell and metric with the stable columns documented in README.md; a failed cell is one\n"
                   "row with its error and no metric. JSON groups rows by run, each with a \"context\" block (commit,\n"
                   "compiler, CPU, cores, memory); its numbers are numbers (null when not measured) and the\n"
                   "engine and task parameters objects. Without --run, the newest run. --samples exports the\n"
                   "predictions text cells kept instead, one row per sample: the cell, an excerpt of the input (its\n"
                   "start and end), the prediction, the references and the score (JSON: under \"samples\").",
    .options =
        {{.name = "--format",
          .type = ParamType::string,
          .default_value = "csv",
          .help = "the output format",
          .choices = {"csv", "json"}},
         database_option(),
         run_option(),
         {.name = "--output", .type = ParamType::string, .default_value = "-", .help = "the file written; - is stdout"},
         {.name = "--samples",
          .type = ParamType::boolean,
          .help = "one row per kept prediction instead of one per cell and metric"}},
    .run = export_command,
}};

}  // namespace
}  // namespace ctxbench::reports
