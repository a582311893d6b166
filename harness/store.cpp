#include "harness/store.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <stdexcept>

#include "harness/environment.h"
#include "harness/suite.h"

namespace ctxbench {

namespace {

// migrations[i] brings a database from version i to i + 1.
const std::vector<std::string> kMigrations = {
    R"sql(
CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  suite TEXT NOT NULL,
  suite_json TEXT NOT NULL,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  status TEXT NOT NULL,
  git_commit TEXT, build_type TEXT, compiler TEXT, cpu_model TEXT,
  cores INTEGER, memory_bytes INTEGER, host TEXT);
CREATE TABLE cells (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  key TEXT NOT NULL,
  engine TEXT NOT NULL, engine_method TEXT NOT NULL, engine_params TEXT NOT NULL,
  task TEXT NOT NULL, task_method TEXT NOT NULL, task_params TEXT NOT NULL,
  context_length INTEGER NOT NULL, depth REAL NOT NULL, seed INTEGER NOT NULL, repetitions INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
  error TEXT,
  finished_at TEXT NOT NULL,
  seconds REAL NOT NULL,
  UNIQUE (run_id, key));
CREATE TABLE measurements (
  cell_id INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,
  metric TEXT NOT NULL,
  value REAL,
  unit TEXT NOT NULL,
  repetitions TEXT,
  PRIMARY KEY (cell_id, metric));
CREATE TABLE samples (
  cell_id INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  input TEXT, prediction TEXT, reference TEXT, score REAL,
  PRIMARY KEY (cell_id, idx));
CREATE INDEX cells_by_run ON cells(run_id, status);
)sql",
    "ALTER TABLE runs ADD COLUMN shard TEXT NOT NULL DEFAULT '';",
    // LongRoPE factor searches (longrope/store.cpp): every evaluated generation, for resuming.
    R"sql(
CREATE TABLE IF NOT EXISTS longrope_searches (
  id INTEGER PRIMARY KEY,
  settings TEXT NOT NULL UNIQUE,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  status TEXT NOT NULL,
  result TEXT);
CREATE TABLE IF NOT EXISTS longrope_individuals (
  search_id INTEGER NOT NULL REFERENCES longrope_searches(id) ON DELETE CASCADE,
  generation INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  factors TEXT NOT NULL,
  n_hat INTEGER NOT NULL,
  perplexity REAL,
  origin TEXT NOT NULL,
  PRIMARY KEY (search_id, generation, idx));
)sql",
    // The process running a run (with the existing host column), to tell a dead run from a live one.
    "ALTER TABLE runs ADD COLUMN pid INTEGER; ALTER TABLE runs ADD COLUMN process_start TEXT;",
    // The machine's load while each cell ran (harness/machine_load.h).
    R"sql(
ALTER TABLE cells ADD COLUMN load_average REAL;
ALTER TABLE cells ADD COLUMN cpu_pressure REAL;
ALTER TABLE cells ADD COLUMN memory_pressure REAL;
ALTER TABLE cells ADD COLUMN under_load INTEGER NOT NULL DEFAULT 0;
)sql",
};

Json parse_or_null(const std::string& text) { return text.empty() ? Json() : Json::parse(text, nullptr, false); }

void bind_optional(sqlite::Statement& s, int i, const std::optional<double>& value) {
  if (value)
    s.bind(i, *value);
  else
    s.bind_null(i);
}

// Columns 17 to 20 of a cell: load average, cpu and memory pressure, under load.
void bind_load(sqlite::Statement& s, const std::optional<MachineLoad>& load) {
  bind_optional(s, 17, load ? std::optional(load->load_average) : std::nullopt);
  bind_optional(s, 18, load ? load->cpu_pressure : std::nullopt);
  bind_optional(s, 19, load ? load->memory_pressure : std::nullopt);
  s.bind(20, load && load->under_load_here() ? 1 : 0);
}

std::optional<double> optional_real(const sqlite::Statement& s, int column) {
  const double value = s.real_or(column, std::nan(""));
  return std::isnan(value) ? std::nullopt : std::optional(value);
}

std::optional<MachineLoad> read_load(const sqlite::Statement& s, int first) {
  const auto average = optional_real(s, first);
  if (!average) return std::nullopt;
  return MachineLoad{*average, optional_real(s, first + 1), optional_real(s, first + 2)};
}

}  // namespace

std::string utc_now() {
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

Store::Store(const std::string& path) try : db_(path) {
  migrate();
  mark_dead_runs_interrupted();
} catch (const InputError&) {
  throw;  // cannot be opened, or written by a newer ctxbench: the message says so
} catch (const std::runtime_error& e) {
  // A file that is not a database opens, and fails at its first read (the WAL switch or the migration).
  throw InputError(fmt::format("{}: not a usable ctxbench database: {}", path, e.what()));
}

int Store::schema_version() {
  auto s = db_.prepare("PRAGMA user_version");
  s.step();
  return static_cast<int>(s.integer(0));
}

void Store::migrate() {
  db_.transaction([&] {
    const int version = schema_version();
    if (version > kSchemaVersion) {
      throw InputError(
          fmt::format("{}: database schema version {} is newer than this ctxbench supports ({}); "
                      "use a newer ctxbench",
                      db_.path(), version, kSchemaVersion));
    }
    for (int v = version; v < kSchemaVersion; ++v) db_.exec(kMigrations[v]);
    if (version != kSchemaVersion) db_.exec(fmt::format("PRAGMA user_version = {}", kSchemaVersion));
  });
}

void Store::mark_dead_runs_interrupted() {
  db_.transaction([&] {
    auto s = db_.prepare(
        "SELECT id, IFNULL(host, ''), IFNULL(pid, 0), IFNULL(process_start, '') FROM runs WHERE status = 'running'");
    std::vector<std::int64_t> dead;
    while (s.step()) {
      if (process_alive({s.text(1), s.integer(2), s.text(3)}) == false) dead.push_back(s.integer(0));
    }
    for (const auto id : dead) finish_run(id, "interrupted");
  });
}

std::int64_t Store::begin_run(const Suite& suite, const RunInfo& env) {
  std::int64_t id = 0;
  const ProcessIdentity owner = this_process();
  db_.transaction([&] {
    auto s = db_.prepare(
        "INSERT INTO runs (suite, suite_json, started_at, status, git_commit, build_type, compiler, cpu_model, cores, "
        "memory_bytes, host, shard, pid, process_start) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, suite.name).bind(2, suite.document.dump()).bind(3, utc_now()).bind(4, env.git_commit);
    s.bind(5, env.build_type).bind(6, env.compiler).bind(7, env.cpu_model).bind(8, env.cores);
    s.bind(9, env.memory_bytes).bind(10, owner.host).bind(11, env.shard).bind(12, owner.pid).bind(13, owner.start);
    s.step();
    id = db_.last_insert_id();
  });
  return id;
}

ProcessIdentity Store::run_owner(std::int64_t run_id) {
  auto s = db_.prepare("SELECT IFNULL(host, ''), IFNULL(pid, 0), IFNULL(process_start, '') FROM runs WHERE id = ?");
  s.bind(1, run_id);
  if (!s.step()) return {};
  return {s.text(0), s.integer(1), s.text(2)};
}

void Store::claim_run(std::int64_t run_id) {
  const ProcessIdentity owner = this_process();
  auto s = db_.prepare(
      "UPDATE runs SET status = 'running', finished_at = NULL, host = ?, pid = ?, process_start = ? WHERE id = ?");
  s.bind(1, owner.host).bind(2, owner.pid).bind(3, owner.start).bind(4, run_id);
  s.step();
}

void Store::replace_suite(std::int64_t run_id, const Suite& suite) {
  auto s = db_.prepare("UPDATE runs SET suite_json = ? WHERE id = ?");
  s.bind(1, suite.document.dump()).bind(2, run_id);
  s.step();
}

std::optional<std::int64_t> Store::latest_run(const std::string& suite_name, const std::string& shard) {
  auto s = db_.prepare("SELECT id FROM runs WHERE suite = ? AND shard = ? ORDER BY id DESC LIMIT 1");
  s.bind(1, suite_name).bind(2, shard);
  if (!s.step()) return std::nullopt;
  return s.integer(0);
}

void Store::finish_run(std::int64_t run_id, const std::string& status) {
  auto s = db_.prepare("UPDATE runs SET finished_at = ?, status = ? WHERE id = ?");
  s.bind(1, utc_now()).bind(2, status).bind(3, run_id);
  s.step();
}

std::vector<std::string> Store::finished_keys(std::int64_t run_id) {
  auto s = db_.prepare("SELECT key FROM cells WHERE run_id = ? AND status = 'ok'");
  s.bind(1, run_id);
  std::vector<std::string> keys;
  while (s.step()) keys.push_back(s.text(0));
  return keys;
}

void Store::save_cell(std::int64_t run_id, const Cell& cell, const std::string& status, const std::string& error,
                      double seconds, const std::vector<Measurement>& measurements,
                      const std::vector<SampleRecord>& samples, const std::optional<MachineLoad>& load) {
  db_.transaction([&] {
    auto erase = db_.prepare("DELETE FROM cells WHERE run_id = ? AND key = ?");
    erase.bind(1, run_id).bind(2, cell.key);
    erase.step();
    auto s = db_.prepare(
        "INSERT INTO cells (run_id, key, engine, engine_method, engine_params, task, task_method, task_params, "
        "context_length, depth, seed, repetitions, status, error, finished_at, seconds, load_average, cpu_pressure, "
        "memory_pressure, under_load) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, run_id).bind(2, cell.key).bind(3, cell.engine.label).bind(4, cell.engine.method);
    s.bind(5, cell.engine.params.dump()).bind(6, cell.task.label).bind(7, cell.task.method);
    s.bind(8, cell.task.params.dump()).bind(9, cell.context_length).bind(10, cell.depth);
    s.bind(11, static_cast<std::int64_t>(cell.seed)).bind(12, cell.repetitions).bind(13, status);
    if (error.empty())
      s.bind_null(14);
    else
      s.bind(14, error);
    s.bind(15, utc_now()).bind(16, seconds);
    bind_load(s, load);
    s.step();
    const std::int64_t cell_id = db_.last_insert_id();
    auto m = db_.prepare("INSERT INTO measurements (cell_id, metric, value, unit, repetitions) VALUES (?, ?, ?, ?, ?)");
    for (const auto& measurement : measurements) {
      m.bind(1, cell_id).bind(2, measurement.metric);
      m.bind_finite_or_null(3, measurement.value()).bind(4, measurement.unit);
      if (measurement.repetitions.size() > 1)
        m.bind(5, Json(measurement.repetitions).dump());
      else
        m.bind_null(5);
      m.step();
      m.reset();
    }
    auto r = db_.prepare(
        "INSERT INTO samples (cell_id, idx, input, prediction, reference, score) VALUES (?, ?, ?, ?, ?, ?)");
    for (const auto& sample : samples) {
      r.bind(1, cell_id).bind(2, sample.index).bind(3, sample.input).bind(4, sample.prediction);
      r.bind(5, sample.references.dump()).bind(6, sample.score);
      r.step();
      r.reset();
    }
  });
}

std::vector<RunInfo> Store::runs() {
  auto s = db_.prepare(
      "SELECT id, suite, started_at, IFNULL(finished_at, ''), status, IFNULL(git_commit, ''), IFNULL(build_type, ''), "
      "IFNULL(compiler, ''), IFNULL(cpu_model, ''), IFNULL(cores, 0), IFNULL(memory_bytes, 0), IFNULL(host, ''), shard "
      "FROM runs ORDER BY id");
  std::vector<RunInfo> out;
  while (s.step()) {
    out.push_back({s.integer(0), s.text(1), s.text(2), s.text(3), s.text(4), s.text(5), s.text(6), s.text(7), s.text(8),
                   static_cast<int>(s.integer(9)), s.integer(10), s.text(11), s.text(12)});
  }
  return out;
}

std::optional<RunInfo> Store::run(std::int64_t run_id) {
  for (auto& r : runs()) {
    if (r.id == run_id) return r;
  }
  return std::nullopt;
}

Json Store::suite_document(std::int64_t run_id) {
  auto s = db_.prepare("SELECT suite_json FROM runs WHERE id = ?");
  s.bind(1, run_id);
  return s.step() ? parse_or_null(s.text(0)) : Json();
}

std::vector<SampleRecord> Store::samples(std::int64_t cell_id) {
  auto s = db_.prepare(
      "SELECT idx, IFNULL(input, ''), IFNULL(prediction, ''), IFNULL(reference, ''), IFNULL(score, 0) FROM samples "
      "WHERE cell_id = ? ORDER BY idx");
  s.bind(1, cell_id);
  std::vector<SampleRecord> out;
  while (s.step())
    out.push_back({static_cast<int>(s.integer(0)), s.text(1), s.text(2), parse_or_null(s.text(3)), s.real(4)});
  return out;
}

std::vector<CellRecord> Store::cells(std::int64_t run_id) {
  auto s = db_.prepare(
      "SELECT id, run_id, key, engine, engine_method, engine_params, task, task_method, task_params, context_length, "
      "depth, seed, repetitions, status, IFNULL(error, ''), seconds, load_average, cpu_pressure, memory_pressure, "
      "under_load FROM cells WHERE run_id = ? ORDER BY id");
  s.bind(1, run_id);
  std::vector<CellRecord> out;
  while (s.step()) {
    CellRecord c;
    c.id = s.integer(0);
    c.run_id = s.integer(1);
    c.key = s.text(2);
    c.engine = s.text(3);
    c.engine_method = s.text(4);
    c.engine_params = parse_or_null(s.text(5));
    c.task = s.text(6);
    c.task_method = s.text(7);
    c.task_params = parse_or_null(s.text(8));
    c.context_length = static_cast<int>(s.integer(9));
    c.depth = s.real(10);
    c.seed = s.integer(11);
    c.repetitions = static_cast<int>(s.integer(12));
    c.status = s.text(13);
    c.error = s.text(14);
    c.seconds = s.real(15);
    c.load = read_load(s, 16);
    c.under_load = s.integer(19) != 0;
    out.push_back(std::move(c));
  }
  auto m = db_.prepare(
      "SELECT m.cell_id, m.metric, m.value, m.unit, IFNULL(m.repetitions, '') FROM measurements m "
      "JOIN cells c ON c.id = m.cell_id WHERE c.run_id = ? ORDER BY m.cell_id, m.metric");
  m.bind(1, run_id);
  std::size_t at = 0;
  while (m.step()) {
    while (at < out.size() && out[at].id != m.integer(0)) ++at;
    if (at == out.size()) break;
    Measurement measurement{m.text(1), m.text(3), {}};
    const Json reps = parse_or_null(m.text(4));
    if (reps.is_array()) {
      measurement.repetitions = reps.get<std::vector<double>>();
    } else {
      measurement.repetitions = {m.real_or(2, std::nan(""))};
    }
    out[at].measurements.push_back(std::move(measurement));
  }
  return out;
}

}  // namespace ctxbench

namespace ctxbench {
namespace {

int input_schema_version(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    throw InputError(fmt::format("{}: cannot open database", path));
  }
  sqlite3_stmt* stmt = nullptr;
  int version = -1;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    version = sqlite3_column_int(stmt, 0);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  if (version < 0) throw InputError(fmt::format("{}: not a SQLite database", path));
  return version;
}

constexpr const char* kCellColumns =
    "key, engine, engine_method, engine_params, task, task_method, task_params, context_length, depth, seed, "
    "repetitions, status, error, finished_at, seconds, load_average, cpu_pressure, memory_pressure, under_load";

}  // namespace

int Store::merge_from(const std::string& input) {
  const int version = input_schema_version(input);
  if (version != kSchemaVersion) {
    throw InputError(
        fmt::format("{}: schema version {} differs from this database's ({}); open it with this ctxbench "
                    "once (`ctxbench list runs --db {}`) to migrate it first",
                    input, version, kSchemaVersion, input));
  }
  auto attach = db_.prepare("ATTACH DATABASE ? AS src");
  attach.bind(1, input);
  attach.step();
  int changed = 0;
  try {
    db_.transaction([&] {
      auto runs = db_.prepare("SELECT id, suite, suite_json FROM src.runs ORDER BY id");
      while (runs.step()) {
        const std::int64_t source_run = runs.integer(0);
        const std::string suite = runs.text(1), suite_json = runs.text(2);
        auto other = db_.prepare("SELECT COUNT(*) FROM runs WHERE suite_json != ? AND shard = ''");
        other.bind(1, suite_json);
        other.step();
        if (other.integer(0) > 0) {
          throw InputError(
              fmt::format("{}: holds a run of a different suite (\"{}\" or another version of it) than "
                          "{}; merge only shards of one suite",
                          input, suite, db_.path()));
        }
        std::int64_t target = 0;
        auto find = db_.prepare("SELECT id FROM runs WHERE suite_json = ? AND shard = '' ORDER BY id LIMIT 1");
        find.bind(1, suite_json);
        if (find.step()) {
          target = find.integer(0);
        } else {
          auto create = db_.prepare(
              "INSERT INTO runs (suite, suite_json, started_at, finished_at, status, git_commit, build_type, compiler, "
              "cpu_model, cores, memory_bytes, host, shard) SELECT suite, suite_json, started_at, finished_at, "
              "'merged', "
              "git_commit, build_type, compiler, cpu_model, cores, memory_bytes, host, '' FROM src.runs WHERE id = ?");
          create.bind(1, source_run);
          create.step();
          target = db_.last_insert_id();
        }
        // A failed cell here gives way to an ok one from the input.
        auto drop = db_.prepare(
            "DELETE FROM cells WHERE run_id = ?1 AND status = 'failed' AND key IN "
            "(SELECT key FROM src.cells WHERE run_id = ?2 AND status = 'ok')");
        drop.bind(1, target).bind(2, source_run);
        drop.step();
        auto last = db_.prepare("SELECT IFNULL(MAX(id), 0) FROM cells");
        last.step();
        const std::int64_t before = last.integer(0);
        auto cells = db_.prepare(fmt::format(
            "INSERT INTO cells (run_id, {0}) SELECT ?1, {0} FROM src.cells WHERE run_id = ?2 AND key NOT IN "
            "(SELECT key FROM cells WHERE run_id = ?1)",
            kCellColumns));
        cells.bind(1, target).bind(2, source_run);
        cells.step();
        changed += db_.changes();
        for (const char* table : {"measurements (cell_id, metric, value, unit, repetitions) SELECT c.id, x.metric, "
                                  "x.value, x.unit, x.repetitions FROM src.measurements x",
                                  "samples (cell_id, idx, input, prediction, reference, score) SELECT c.id, x.idx, "
                                  "x.input, x.prediction, x.reference, x.score FROM src.samples x"}) {
          auto copy = db_.prepare(fmt::format(
              "INSERT INTO {} JOIN src.cells s ON s.id = x.cell_id JOIN cells c ON c.run_id = ?1 AND c.key = s.key "
              "WHERE s.run_id = ?2 AND c.id > ?3",
              table));
          copy.bind(1, target).bind(2, source_run).bind(3, before);
          copy.step();
        }
      }
    });
  } catch (...) {
    db_.exec("DETACH DATABASE src");
    throw;
  }
  db_.exec("DETACH DATABASE src");
  return changed;
}

}  // namespace ctxbench
