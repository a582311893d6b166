#include "longrope/store.h"

#include <fmt/format.h>

#include <limits>
#include <stdexcept>

namespace ctxbench::longrope {

std::int64_t SearchStore::open_search(const Json& settings) {
  const std::string key = settings.dump();
  auto insert = db_.prepare(
      "INSERT INTO longrope_searches (settings, started_at, status) VALUES (?, ?, 'running') "
      "ON CONFLICT (settings) DO NOTHING");
  insert.bind(1, key).bind(2, utc_now()).step();
  auto find = db_.prepare("SELECT id FROM longrope_searches WHERE settings = ?");
  find.bind(1, key);
  if (!find.step()) throw std::runtime_error(fmt::format("{}: the longrope search row was not stored", db_.path()));
  return find.integer(0);
}

std::vector<Generation> SearchStore::generations(std::int64_t search_id) {
  auto q = db_.prepare(
      "SELECT generation, factors, n_hat, perplexity, origin FROM longrope_individuals WHERE search_id = ? "
      "ORDER BY generation, idx");
  q.bind(1, search_id);
  std::vector<Generation> out;
  while (q.step()) {
    const auto generation = static_cast<std::size_t>(q.integer(0));
    // Generations are written whole and in order; a gap would mean a foreign writer.
    if (generation > out.size()) {
      throw std::runtime_error(
          fmt::format("{}: longrope search {} lacks generation {}", db_.path(), search_id, out.size()));
    }
    if (generation == out.size()) out.emplace_back();
    Individual member;
    member.candidate.factors = Json::parse(q.text(1)).get<std::vector<int>>();
    member.candidate.n_hat = static_cast<int>(q.integer(2));
    member.perplexity = q.real_or(3, std::numeric_limits<double>::infinity());
    member.origin = q.text(4);
    out[generation].push_back(std::move(member));
  }
  return out;
}

void SearchStore::save_generation(std::int64_t search_id, int index, const Generation& generation) {
  db_.transaction([&] {
    auto clear = db_.prepare("DELETE FROM longrope_individuals WHERE search_id = ? AND generation = ?");
    clear.bind(1, search_id).bind(2, index).step();
    auto row = db_.prepare(
        "INSERT INTO longrope_individuals (search_id, generation, idx, factors, n_hat, perplexity, origin) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)");
    for (std::size_t i = 0; i < generation.size(); ++i) {
      const Individual& m = generation[i];
      row.reset();
      row.bind(1, search_id).bind(2, index).bind(3, static_cast<std::int64_t>(i));
      row.bind(4, Json(m.candidate.factors).dump()).bind(5, m.candidate.n_hat);
      row.bind_finite_or_null(6, m.perplexity).bind(7, m.origin).step();
    }
  });
}

void SearchStore::finish(std::int64_t search_id, const Json& result) {
  auto q = db_.prepare("UPDATE longrope_searches SET finished_at = ?, status = 'finished', result = ? WHERE id = ?");
  q.bind(1, utc_now()).bind(2, result.dump()).bind(3, search_id).step();
}

}  // namespace ctxbench::longrope
