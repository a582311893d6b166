// The SQLite results store. WAL mode, one transaction per finished cell, a schema version with migrations,
// and a refusal to open a database written by a newer ctxbench. The schema is documented in README.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/measurement.h"
#include "core/params.h"
#include "harness/environment.h"
#include "harness/machine_load.h"
#include "harness/sqlite.h"

namespace ctxbench {

struct Cell;
struct Suite;

inline constexpr int kSchemaVersion = 5;

struct RunInfo {
  std::int64_t id = 0;
  std::string suite;
  std::string started_at;
  std::string finished_at;
  std::string status;
  std::string git_commit;
  std::string build_type;
  std::string compiler;
  std::string cpu_model;
  int cores = 0;
  std::int64_t memory_bytes = 0;
  std::string host;
  std::string shard;  // "I/N" for one shard of a suite, empty for a whole run (or a merged one)
};

struct CellRecord {
  std::int64_t id = 0;
  std::int64_t run_id = 0;
  std::string key;
  std::string engine;
  std::string engine_method;
  Json engine_params;
  std::string task;
  std::string task_method;
  Json task_params;
  int context_length = 0;
  double depth = 0;
  std::int64_t seed = 0;
  int repetitions = 1;
  std::string status;  // "ok" or "failed"
  std::string error;
  double seconds = 0;
  std::optional<MachineLoad> load;  // while the cell ran; none for cells stored without it
  bool under_load = false;          // its timings were taken while other work competed (machine_load.h)
  std::vector<Measurement> measurements;
};

// One prediction of a text task, kept so that scores can be audited.
struct SampleRecord {
  int index = 0;
  std::string input;
  std::string prediction;
  Json references;
  double score = 0;
};

class Store {
 public:
  // Creates or migrates the database. Throws InputError for a newer schema or a file that is not SQLite.
  explicit Store(const std::string& path);
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return db_.path(); }
  // The connection, for what else keeps its state in this database (one connection per process).
  sqlite::Database& database() { return db_; }
  int schema_version();

  // Records the run as `running`, owned by this process.
  std::int64_t begin_run(const Suite& suite, const RunInfo& environment);
  // The newest run of this suite name and shard, if any (for --resume).
  std::optional<std::int64_t> latest_run(const std::string& suite_name, const std::string& shard = "");
  // The process recorded as running this run (empty fields for runs stored before owners were recorded).
  ProcessIdentity run_owner(std::int64_t run_id);
  // A resumed run: `running` again, owned by this process.
  void claim_run(std::int64_t run_id);
  // The suite a resumed run goes on with, when the user allowed it to differ from the one it started with.
  void replace_suite(std::int64_t run_id, const Suite& suite);
  void finish_run(std::int64_t run_id, const std::string& status);

  // Keys of cells stored with status ok in this run.
  std::vector<std::string> finished_keys(std::int64_t run_id);
  // Atomically replaces any earlier attempt of the same cell in this run.
  void save_cell(std::int64_t run_id, const Cell& cell, const std::string& status, const std::string& error,
                 double seconds, const std::vector<Measurement>& measurements,
                 const std::vector<SampleRecord>& samples = {}, const std::optional<MachineLoad>& load = {});

  std::vector<RunInfo> runs();
  std::optional<RunInfo> run(std::int64_t run_id);
  // The suite file as it was run (null for an unknown run).
  Json suite_document(std::int64_t run_id);
  std::vector<CellRecord> cells(std::int64_t run_id);
  // The predictions a text cell kept (CellRecord::id), in sample order; none for attention-level cells.
  std::vector<SampleRecord> samples(std::int64_t cell_id);

  // Adds the cells of every run in `input` (a database of the same schema and suite) to this database's run of
  // that suite, creating it if needed. Cells already stored ok are kept; a failed one is replaced by an ok one.
  // Returns the number of cells added or replaced. Idempotent.
  int merge_from(const std::string& input);

 private:
  void migrate();
  // Runs left `running` by a process of this host that no longer lives (kill -9, a crash) become `interrupted`.
  void mark_dead_runs_interrupted();

  sqlite::Database db_;
};

std::string utc_now();

}  // namespace ctxbench
