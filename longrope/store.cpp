#include "longrope/store.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>

#include "harness/store.h"

namespace ctxbench::longrope {
namespace {

// One prepared statement; binds by position and finalizes on scope exit.
class Query {
 public:
  Query(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) fail();
  }
  ~Query() { sqlite3_finalize(stmt_); }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& bind(int i, std::int64_t v) { return check(sqlite3_bind_int64(stmt_, i, v)); }
  Query& bind(int i, const std::string& v) {
    return check(sqlite3_bind_text(stmt_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  // Non-finite perplexities are stored as NULL.
  Query& bind_perplexity(int i, double v) {
    return check(std::isfinite(v) ? sqlite3_bind_double(stmt_, i, v) : sqlite3_bind_null(stmt_, i));
  }
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) fail();
    return false;
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  double perplexity(int col) const {
    return sqlite3_column_type(stmt_, col) == SQLITE_NULL ? std::numeric_limits<double>::infinity()
                                                          : sqlite3_column_double(stmt_, col);
  }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p ? reinterpret_cast<const char*>(p) : "";
  }

 private:
  [[noreturn]] void fail() const { throw std::runtime_error(fmt::format("sqlite: {}", sqlite3_errmsg(db_))); }
  Query& check(int rc) {
    if (rc != SQLITE_OK) fail();
    return *this;
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace

SearchStore::SearchStore(const std::string& path) : path_(path) {
  { const Store schema(path); }  // creates or migrates the file to the current schema
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw InputError(fmt::format("{}: cannot open database: {}", path, message));
  }
  sqlite3_busy_timeout(db_, 60000);
  exec("PRAGMA foreign_keys=ON");
}

SearchStore::~SearchStore() { sqlite3_close(db_); }

void SearchStore::exec(const std::string& sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    const std::string text = message ? message : "unknown error";
    sqlite3_free(message);
    throw std::runtime_error(fmt::format("{}: sqlite: {}", path_, text));
  }
}

std::int64_t SearchStore::open_search(const Json& settings) {
  const std::string key = settings.dump();
  Query insert(db_,
               "INSERT INTO longrope_searches (settings, started_at, status) VALUES (?, ?, 'running') "
               "ON CONFLICT (settings) DO NOTHING");
  insert.bind(1, key).bind(2, utc_now()).step();
  Query find(db_, "SELECT id FROM longrope_searches WHERE settings = ?");
  find.bind(1, key);
  if (!find.step()) throw std::runtime_error(fmt::format("{}: the longrope search row was not stored", path_));
  return find.integer(0);
}

std::vector<Generation> SearchStore::generations(std::int64_t search_id) {
  Query q(db_,
          "SELECT generation, factors, n_hat, perplexity, origin FROM longrope_individuals WHERE search_id = ? "
          "ORDER BY generation, idx");
  q.bind(1, search_id);
  std::vector<Generation> out;
  while (q.step()) {
    const auto generation = static_cast<std::size_t>(q.integer(0));
    // Generations are written whole and in order; a gap would mean a foreign writer.
    if (generation > out.size()) {
      throw std::runtime_error(fmt::format("{}: longrope search {} lacks generation {}", path_, search_id, out.size()));
    }
    if (generation == out.size()) out.emplace_back();
    Individual member;
    member.candidate.factors = Json::parse(q.text(1)).get<std::vector<int>>();
    member.candidate.n_hat = static_cast<int>(q.integer(2));
    member.perplexity = q.perplexity(3);
    member.origin = q.text(4);
    out[generation].push_back(std::move(member));
  }
  return out;
}

void SearchStore::save_generation(std::int64_t search_id, int index, const Generation& generation) {
  exec("BEGIN IMMEDIATE");
  try {
    Query clear(db_, "DELETE FROM longrope_individuals WHERE search_id = ? AND generation = ?");
    clear.bind(1, search_id).bind(2, index).step();
    Query row(db_,
              "INSERT INTO longrope_individuals (search_id, generation, idx, factors, n_hat, perplexity, origin) "
              "VALUES (?, ?, ?, ?, ?, ?, ?)");
    for (std::size_t i = 0; i < generation.size(); ++i) {
      const Individual& m = generation[i];
      row.reset();
      row.bind(1, search_id).bind(2, index).bind(3, static_cast<std::int64_t>(i));
      row.bind(4, Json(m.candidate.factors).dump()).bind(5, m.candidate.n_hat);
      row.bind_perplexity(6, m.perplexity).bind(7, m.origin).step();
    }
    exec("COMMIT");
  } catch (...) {
    exec("ROLLBACK");
    throw;
  }
}

void SearchStore::finish(std::int64_t search_id, const Json& result) {
  Query q(db_, "UPDATE longrope_searches SET finished_at = ?, status = 'finished', result = ? WHERE id = ?");
  q.bind(1, utc_now()).bind(2, result.dump()).bind(3, search_id).step();
}

}  // namespace ctxbench::longrope
