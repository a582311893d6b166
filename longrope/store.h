// Where a LongRoPE factor search keeps its state: the longrope_searches and longrope_individuals tables of the
// results database (schema version 3). A search is identified by its settings (model, target length,
// documents, operators, seed, ...; not the iteration count, so a finished search can be extended), and each
// evaluated generation is written in one transaction, so that a killed search resumes after the last one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/params.h"
#include "harness/sqlite.h"
#include "harness/store.h"
#include "longrope/search.h"

namespace ctxbench::longrope {

class SearchStore {
 public:
  // Works on the results store's connection, which has brought the schema to the current version.
  explicit SearchStore(Store& results) : db_(results.database()) {}

  // The search with these settings, created when new.
  std::int64_t open_search(const Json& settings);
  // Its stored generations 0..k in order (members in their stored order).
  std::vector<Generation> generations(std::int64_t search_id);
  // Replaces any stored copy of this generation.
  void save_generation(std::int64_t search_id, int index, const Generation& generation);
  void finish(std::int64_t search_id, const Json& result);

 private:
  sqlite::Database& db_;
};

}  // namespace ctxbench::longrope
