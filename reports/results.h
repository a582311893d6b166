// Reading stored results for reports: which runs, and one flat row per cell and metric.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/database_file.h"
#include "harness/store.h"

namespace ctxbench::reports {

// --run ID, repeatable, of the commands that read runs through select_runs.
ParamSpec run_option();

// Run ids from the command line, or the newest run when none is given. Throws InputError for unknown ids
// or an empty database.
std::vector<std::int64_t> select_runs(Store& store, const std::vector<long long>& ids);

// The environment of a run as a JSON object (like Google Benchmark's "context" block).
Json run_context(const RunInfo& run);

// Stable column names of `ctxbench export` (documented in README.md).
const std::vector<std::string>& export_columns();
// One row per (cell, metric), in the order of export_columns(), typed: numbers are numbers (null when not
// measured), parameters are objects, repetition values an array. A failed cell gives one row with a null metric
// and its error.
std::vector<std::vector<Json>> export_rows(Store& store, std::int64_t run_id);
// Stable column names of `ctxbench export --samples` (documented in README.md).
const std::vector<std::string>& sample_columns();
// One row per prediction a text cell kept, in the order of sample_columns(): the cell, the sample's index, an
// excerpt of its input, the prediction, the references (an array) and the score. Attention-level cells keep none.
std::vector<std::vector<Json>> sample_rows(Store& store, std::int64_t run_id);
// A long text as its first and last `keep` bytes with " … " between, cut at UTF-8 character boundaries; a text of
// at most 2 * keep + 5 bytes whole.
std::string excerpt(const std::string& text, std::size_t keep);

// A value of such a row as a CSV field: numbers as numbers, null empty, objects and arrays as JSON text.
std::string csv_field(const Json& value);

// --alpha of compare and gate, and its check: a number in (0, 1), else InputError.
ParamSpec alpha_option();
double checked_alpha(double alpha);

std::string csv_escape(const std::string& field);
std::string format_number(double value);

}  // namespace ctxbench::reports
