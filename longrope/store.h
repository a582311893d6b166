// Where a LongRoPE factor search keeps its state: the longrope_searches and longrope_individuals tables of the
// results database (schema version 3). A search is identified by its settings (model, target length,
// documents, operators, seed, ...; not the iteration count, so a finished search can be extended), and each
// evaluated generation is written in one transaction, so that a killed search resumes after the last one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/params.h"
#include "longrope/search.h"

struct sqlite3;

namespace ctxbench::longrope {

class SearchStore {
 public:
  // Opens (creating or migrating) the database. Throws InputError like Store.
  explicit SearchStore(const std::string& path);
  ~SearchStore();
  SearchStore(const SearchStore&) = delete;
  SearchStore& operator=(const SearchStore&) = delete;

  // The search with these settings, created when new.
  std::int64_t open_search(const Json& settings);
  // Its stored generations 0..k in order (members in their stored order).
  std::vector<Generation> generations(std::int64_t search_id);
  // Replaces any stored copy of this generation.
  void save_generation(std::int64_t search_id, int index, const Generation& generation);
  void finish(std::int64_t search_id, const Json& result);

 private:
  void exec(const std::string& sql);
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace ctxbench::longrope
