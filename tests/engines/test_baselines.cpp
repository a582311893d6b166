// Each baseline against a slow, direct float64 transcription of its selection rule on small random problems:
// the keys every query row attends to (as attended() reports them, in original positions) must be exactly
// the transcription's, and every output must be exact attention over those keys (checked by the drivers in
// engine_problems.h). Plus the shared helpers, the accounting, and the properties the methods rely on.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "engines/budget.h"
#include "engines/selection.h"
#include "engines/snapkv.h"
#include "tests/engine_problems.h"

using namespace ctxbench;
using namespace ctxbench::testing;
using engines::KeyRange;
using engines::Phase;

namespace {

using Positions = std::vector<int>;                // sorted
using Rows = std::vector<std::vector<Positions>>;  // [head][query]

Positions all_up_to(int position) {
  Positions out(position + 1);
  std::iota(out.begin(), out.end(), 0);
  return out;
}

Positions unite(Positions a, const Positions& b) {
  a.insert(a.end(), b.begin(), b.end());
  std::sort(a.begin(), a.end());
  a.erase(std::unique(a.begin(), a.end()), a.end());
  return a;
}

std::unique_ptr<engines::Engine> make_engine(const std::string& name, const Json& params) {
  const auto& info = engines::EngineRegistry::instance().get(name, "test");
  return info.make(resolve_params(info.params, params, name));
}

// Drives one session over a problem: a prompt, then prefill chunks and decode steps of the problem's queries
// in order. Each call's outputs are checked against exact attention over the keys the session reports.
struct Runner {
  Runner(const engines::Engine& engine, const Problem& problem, int prompt)
      : p(problem), session(engine.open(problem.layout)), out(problem.q.size()) {
    append_tokens(*session, p, 0, prompt);
  }

  int position(int query) const { return p.tokens - p.queries + query; }

  Rows prefill(int from, int count) {
    append_tokens(*session, p, position(from), count);
    prefill_queries(*session, p, from, count, out);
    return rows(count);
  }

  Rows decode(int query) {
    append_tokens(*session, p, position(query), 1);
    const auto& L = p.layout;
    const auto q = slice_tokens(p.q, L.heads_q, p.queries, L.head_dim, query, 1);
    std::vector<float> step(q.size());
    session->attend(q.data(), 1, Phase::decode, step.data());
    check_matches_attended(*session, p, q.data(), 1, position(query), step.data());
    return rows(1);
  }

  Rows rows(int count) const {
    Rows r(p.layout.heads_q, std::vector<Positions>(count));
    for (int h = 0; h < p.layout.heads_q; ++h) {
      for (int t = 0; t < count; ++t) r[h][t] = expand(session->attended(h, t));
    }
    return r;
  }

  const Problem& p;
  std::unique_ptr<engines::Session> session;
  std::vector<float> out;
};

const float* query_of(const Problem& p, int head, int query) {
  return p.q.data() + (static_cast<std::size_t>(head) * p.queries + query) * p.layout.head_dim;
}

const float* key_of(const Problem& p, int kv_head, int position) {
  return p.k.data() + (static_cast<std::size_t>(kv_head) * p.tokens + position) * p.layout.head_dim;
}

double dot64(const float* a, const float* b, int dim) {
  double s = 0.0;
  for (int i = 0; i < dim; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

int kv_head_of(const Problem& p, int head) { return head / (p.layout.heads_q / p.layout.heads_kv); }

// Softmax probabilities of a query row over the given key positions, in float64.
std::map<int, double> softmax(const Problem& p, const float* q, int kv_head, const Positions& keys) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(p.layout.head_dim));
  std::map<int, double> prob;
  double max_logit = -INFINITY, sum = 0.0;
  for (int t : keys) max_logit = std::max(max_logit, scale * dot64(q, key_of(p, kv_head, t), p.layout.head_dim));
  for (int t : keys) sum += prob[t] = std::exp(scale * dot64(q, key_of(p, kv_head, t), p.layout.head_dim) - max_logit);
  for (auto& [t, x] : prob) x /= sum;
  return prob;
}

// Indices of the `k` largest values, ties to the lower index, ascending: written out plainly.
Positions best(const std::vector<std::pair<int, double>>& scored, int k) {
  auto order = scored;
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
  });
  Positions out;
  for (int i = 0; i < std::min<int>(k, static_cast<int>(order.size())); ++i) out.push_back(order[i].first);
  std::sort(out.begin(), out.end());
  return out;
}

Positions range_of(int begin, int end) {
  Positions out;
  for (int t = begin; t < end; ++t) out.push_back(t);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
TEST_CASE("selection helpers: top-k ties, ranges, position mapping", "[baselines]") {
  const std::vector<float> scores = {1, 5, 5, 2, 5, 0};
  CHECK(engines::top_k(scores, 2) == std::vector<int>{1, 2});  // ties go to the lower index
  CHECK(engines::top_k(scores, 4) == std::vector<int>{1, 2, 3, 4});
  CHECK(engines::top_k(scores, 10).size() == scores.size());
  CHECK(engines::top_k(scores, 0).empty());
  const auto ranges = engines::ranges_from_indices({0, 1, 2, 5, 7, 8});
  REQUIRE(ranges.size() == 3);
  CHECK((ranges[1].begin == 5 && ranges[1].end == 6));
  const auto merged = engines::merge_ranges({{5, 9}, {0, 2}, {2, 3}, {8, 12}, {20, 20}});
  REQUIRE(merged.size() == 2);
  CHECK((merged[0].begin == 0 && merged[0].end == 3 && merged[1].begin == 5 && merged[1].end == 12));
  const std::vector<int> positions = {0, 1, 7, 8, 9, 20};  // a compacted cache
  const auto as_positions = engines::to_positions({{1, 4}, {5, 6}}, positions);
  CHECK(expand(as_positions) == Positions{1, 7, 8, 20});
  const auto as_indices = engines::to_indices({{0, 8}, {15, 30}}, positions);
  CHECK(expand(as_indices) == Positions{0, 1, 2, 5});
}

TEST_CASE("attend log: keys per row with causality, bytes read once per KV head", "[baselines]") {
  engines::AttendLog log;
  log.begin(/*heads_q=*/4, /*queries=*/3, /*first_position=*/10, /*query_block=*/2);
  for (int h = 0; h < 4; ++h) {
    log.set(h, 0, {{0, 4}, {9, 12}});   // queries 0, 1 (positions 10, 11)
    log.set(h, 1, {{2, 6}, {12, 13}});  // query 2 (position 12)
  }
  CHECK(expand(log.attended(0, 0)) == Positions{0, 1, 2, 3, 9, 10});
  CHECK(expand(log.attended(0, 1)) == Positions{0, 1, 2, 3, 9, 10, 11});
  CHECK_THROWS_AS(log.attended(0, 3), std::out_of_range);
  engines::SessionStats stats;
  log.account(stats, /*heads_kv=*/2, /*bytes_per_key=*/100);
  CHECK(stats.queries == 12);
  CHECK(stats.keys_attended == 4u * (6 + 7 + 5));
  CHECK(stats.keys_attended_max == 7);
  // Per KV head the union is {0..5, 9, 10, 11, 12}: 10 keys.
  CHECK(stats.kv_bytes_read == 2u * 10 * 100);
}

// ---------------------------------------------------------------------------------------------------------------
// Oracle top-k: sinks + window + the best remaining keys by exact score.
Positions oracle_rule(const Problem& p, int head, const float* q, int position, int keep, int sinks, int window) {
  const int context = position + 1;
  if (keep >= context) return all_up_to(position);
  const int s = std::min(sinks, keep), w = std::min(window, keep - s);
  std::vector<std::pair<int, double>> scored;
  for (int t = s; t < context - w; ++t)
    scored.push_back({t, dot64(q, key_of(p, kv_head_of(p, head), t), p.layout.head_dim)});
  return unite(unite(range_of(0, s), best(scored, keep - s - w)), range_of(context - w, context));
}

TEST_CASE("oracle_topk keeps exactly the best keys by exact score, on top of sinks and window", "[baselines]") {
  struct Case {
    engines::HeadLayout layout;
    Json params;
    int keep_of_context;  // -1: ratio 0.1
  };
  const Case cases[] = {
      {head_layout(8, 2, 32), {{"budget", 40}, {"sinks", 4}, {"window", 8}}, 40},
      {head_layout(4, 4, 16), {{"budget", 25}}, 25},
      {head_layout(6, 3, 24, kernels::DType::f16), {{"budget", 0.1}, {"window", 3}}, -1},
  };
  int seed = 0;
  for (const Case& c : cases) {
    const auto engine = make_engine("oracle_topk", c.params);
    const Problem p = random_problem(c.layout, 420, 9, 77 + seed++);
    const int sinks = c.params.value("sinks", 0), window = c.params.value("window", 0);
    Runner run(*engine, p, p.tokens - p.queries);
    const auto check = [&](const Rows& rows, int first_query) {
      for (int h = 0; h < p.layout.heads_q; ++h) {
        for (std::size_t t = 0; t < rows[h].size(); ++t) {
          const int query = first_query + static_cast<int>(t), position = run.position(query);
          const int keep =
              c.keep_of_context > 0 ? c.keep_of_context : static_cast<int>(std::ceil(0.1 * (position + 1)));
          CHECK(rows[h][t] == oracle_rule(p, h, query_of(p, h, query), position, keep, sinks, window));
        }
      }
    };
    check(run.prefill(0, 5), 0);
    for (int t = 5; t < p.queries; ++t) check(run.decode(t), t);
  }
}

// ---------------------------------------------------------------------------------------------------------------
TEST_CASE("streaming_llm attends to sinks + the newest keys and keeps only those resident", "[baselines]") {
  const auto L = head_layout(4, 2, 16);
  const Problem p = random_problem(L, 300, 60, 5);
  const int budget = 24, sinks = 4;
  const auto engine = make_engine("streaming_llm", {{"budget", budget}, {"sinks", sinks}});
  Runner run(*engine, p, p.tokens - p.queries);
  const std::uint64_t bytes_per_token = 2ull * L.heads_kv * L.head_dim * 4;
  auto expected = [&](int position) {
    return unite(range_of(0, sinks), range_of(position + 1 - (budget - sinks), position + 1));
  };
  const Rows chunk = run.prefill(0, 10);  // every query of a chunk has its own window
  for (int h = 0; h < L.heads_q; ++h) {
    for (int t = 0; t < 10; ++t) CHECK(chunk[h][t] == expected(run.position(t)));
  }
  CHECK(run.session->stats().kv_bytes_resident == bytes_per_token * (budget + 9));
  for (int t = 10; t < p.queries; ++t) {
    const Rows rows = run.decode(t);
    for (int h = 0; h < L.heads_q; ++h) CHECK(rows[h][0] == expected(run.position(t)));
    CHECK(run.session->stats().kv_bytes_resident == bytes_per_token * budget);  // constant memory
  }
  SECTION("a budget smaller than the sinks still attends to the query itself") {
    const auto tiny = make_engine("streaming_llm", {{"budget", 2}, {"sinks", 4}});
    Runner small(*tiny, p, p.tokens - p.queries);
    const Rows rows = small.decode(0);
    CHECK(rows[0][0] == Positions{0, small.position(0)});
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Quest: the page bound, then the best pages plus the query's own page.
double quest_bound(const Problem& p, int kv_head, const float* q, int first, int last) {
  double s = 0.0;
  for (int i = 0; i < p.layout.head_dim; ++i) {
    double lo = INFINITY, hi = -INFINITY;
    for (int t = first; t <= last; ++t) {
      lo = std::min<double>(lo, key_of(p, kv_head, t)[i]);
      hi = std::max<double>(hi, key_of(p, kv_head, t)[i]);
    }
    s += std::max(q[i] * hi, q[i] * lo);
  }
  return s;
}

Positions quest_rule(const Problem& p, int head, const float* q, int position, int budget, int page) {
  const int context = position + 1, pages = (context + page - 1) / page;
  const int keep = std::min(std::max(3, std::min(budget, context) / page), pages);
  if (budget >= context || keep >= pages) return all_up_to(position);
  std::vector<std::pair<int, double>> scored;
  for (int g = 0; g + 1 < pages; ++g) {
    scored.push_back({g, quest_bound(p, kv_head_of(p, head), q, g * page, g * page + page - 1)});
  }
  Positions out = range_of((pages - 1) * page, context);
  for (int g : best(scored, keep - 1)) out = unite(out, range_of(g * page, g * page + page));
  return out;
}

TEST_CASE("quest: the page bound is an upper bound of every score in the page", "[baselines]") {
  const Problem p = random_problem(head_layout(2, 1, 32), 160, 4, 9);
  for (int query = 0; query < 4; ++query) {
    const float* q = query_of(p, 0, query);
    for (int page = 0; page < 10; ++page) {
      const double bound = quest_bound(p, 0, q, page * 16, page * 16 + 15);
      for (int t = page * 16; t < page * 16 + 16; ++t) CHECK(dot64(q, key_of(p, 0, t), 32) <= bound + 1e-9);
    }
  }
}

TEST_CASE("quest selects the top pages by bound at decode, with dense prefill and early layers", "[baselines]") {
  for (const auto dtype : {kernels::DType::f32, kernels::DType::bf16}) {
    auto L = head_layout(8, 2, 32, dtype);
    L.num_layers = 4;
    const Problem p = random_problem(L, 500, 12, 21);
    const int budget = 64, page = 8;
    const auto engine = make_engine("quest", {{"budget", budget}, {"page_size", page}, {"dense_layers", 2}});
    L.layer = 2;  // the first sparse layer
    const Problem deep{L, p.tokens, p.queries, p.q, p.k, p.v};
    Runner run(*engine, deep, deep.tokens - deep.queries);
    const Rows chunk = run.prefill(0, 4);
    for (int t = 0; t < 4; ++t) CHECK(chunk[0][t] == all_up_to(run.position(t)));
    for (int t = 4; t < deep.queries; ++t) {
      const Rows rows = run.decode(t);
      for (int h = 0; h < L.heads_q; ++h) {
        CHECK(rows[h][0] == quest_rule(deep, h, query_of(deep, h, t), run.position(t), budget, page));
        CHECK(rows[h][0].size() < 80u);  // 8 pages at most
      }
    }
    CHECK(run.session->stats().kv_bytes_resident == 2ull * 2 * 32 * kernels::dtype_bytes(dtype) * deep.tokens);
    Runner early(*engine, p, p.tokens - p.queries);  // layer 0 < dense_layers
    CHECK(early.decode(0)[3][0] == all_up_to(early.position(0)));
    auto lone = p;  // one layer alone, as at the attention level: sparse whatever dense_layers says
    lone.layout.num_layers = 1;
    Runner single(*engine, lone, lone.tokens - lone.queries);
    for (int t = 0; t < 3; ++t) {
      CHECK(single.decode(t)[3][0] == quest_rule(lone, 3, query_of(lone, 3, t), single.position(t), budget, page));
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// SnapKV / PyramidKV: pooled observation-window scores, per KV head.
std::vector<Positions> snap_rule(const Problem& p, int prompt, int chunk, int window, int kernel, bool max_pool,
                                 int keep_prefix) {
  const int group = p.layout.heads_q / p.layout.heads_kv;
  const int prefix = prompt - window, observed = std::min(window, chunk);
  std::vector<Positions> kept(p.layout.heads_kv);
  for (int g = 0; g < p.layout.heads_kv; ++g) {
    std::vector<double> score(prefix, 0.0);
    for (int h = g * group; h < (g + 1) * group; ++h) {
      for (int i = chunk - observed; i < chunk; ++i) {
        const int position = prompt - chunk + i;
        const auto prob = softmax(p, query_of(p, h, i), g, all_up_to(position));
        for (int t = 0; t < prefix; ++t) score[t] += prob.at(t) / group;
      }
    }
    std::vector<std::pair<int, double>> pooled;
    for (int t = 0; t < prefix; ++t) {
      double acc = max_pool ? -INFINITY : 0.0;
      for (int j = t - kernel / 2; j <= t + kernel / 2; ++j) {
        if (j < 0 || j >= prefix) continue;  // padding: -inf for max, 0 for the average
        acc = max_pool ? std::max(acc, score[j]) : acc + score[j];
      }
      pooled.push_back({t, max_pool ? acc : acc / kernel});
    }
    kept[g] = unite(best(pooled, keep_prefix), range_of(prefix, prompt));
  }
  return kept;
}

TEST_CASE("snapkv keeps the top pooled window-attention keys per KV head after the prefill", "[baselines]") {
  struct Case {
    engines::HeadLayout layout;
    int capacity, window, kernel, chunk;
    std::string pooling;
  };
  const Case cases[] = {
      {head_layout(8, 2, 32), 64, 8, 7, 12, "max"},
      {head_layout(4, 4, 16), 50, 10, 5, 10, "avg"},
      {head_layout(6, 2, 32, kernels::DType::f16), 40, 16, 3, 6, "max"},  // fewer chunk queries than the window
  };
  int seed = 0;
  for (const Case& c : cases) {
    const int decode_steps = 3;
    const Problem p = random_problem(c.layout, 300, c.chunk + decode_steps, 40 + seed++);
    const auto engine = make_engine(
        "snapkv", {{"budget", c.capacity}, {"window", c.window}, {"kernel", c.kernel}, {"pooling", c.pooling}});
    Runner run(*engine, p, p.tokens - p.queries);
    const Rows chunk = run.prefill(0, c.chunk);  // the prefill itself is exact
    for (int t = 0; t < c.chunk; ++t) CHECK(chunk[1][t] == all_up_to(run.position(t)));
    const int prompt = run.position(c.chunk - 1) + 1;
    const auto kept = snap_rule(p, prompt, c.chunk, c.window, c.kernel, c.pooling == "max", c.capacity - c.window);
    const auto key_bytes = 2ull * c.layout.head_dim * kernels::dtype_bytes(c.layout.kv_dtype);
    CHECK(run.session->stats().kv_bytes_resident == key_bytes * c.layout.heads_kv * c.capacity);
    for (int t = c.chunk; t < p.queries; ++t) {
      const Rows rows = run.decode(t);
      for (int h = 0; h < c.layout.heads_q; ++h) {
        CHECK(rows[h][0] == unite(kept[kv_head_of(p, h)], range_of(prompt, run.position(t) + 1)));
      }
    }
  }
  SECTION("a prompt shorter than the capacity is kept whole") {
    const Problem p = random_problem(head_layout(2, 1, 16), 60, 5, 3);
    const auto engine = make_engine("snapkv", {{"budget", 80}, {"window", 8}});
    Runner run(*engine, p, p.tokens - p.queries);
    run.prefill(0, 4);
    CHECK(run.decode(4)[0][0] == all_up_to(run.position(4)));
  }
  SECTION("an even pooling kernel is refused naming the parameter") {
    CHECK_THROWS_WITH(make_engine("snapkv", {{"kernel", 6}}), Catch::Contains("snapkv.kernel"));
  }
}

TEST_CASE("pyramidkv layer budgets follow PyramidKV's integer formula", "[baselines]") {
  // A schedule is called as (layer, num_layers, capacity C, window W, prompt).
  const auto pyramid = engines::pyramidkv_schedule(20);
  // C 2048, W 32: min = 2016 / 20 = 100, max = 4032 - 100 = 3932, steps = 3832 / 31 = 123.
  CHECK(pyramid(0, 32, 2048, 32, 8000) == 3932);
  CHECK(pyramid(31, 32, 2048, 32, 8000) == 3932 - 31 * 123);
  CHECK(pyramid(10, 32, 2048, 32, 8000) == 3932 - 10 * 123);
  CHECK(pyramid(5, 32, 2048, 32, 3000) == 2016);  // below 2(C - W): SnapKV's
  CHECK(pyramid(5, 32, 2048, 32, 2000) == -1);    // shorter than C: no compression
  CHECK(pyramid(0, 1, 2048, 32, 8000) == 2016);   // one layer keeps the average
  // With beta 100 (min 20 < W) a prompt just over 2(C - W) caps the largest layer at the prompt:
  // max = 4040 - 32 = 4008, min = 4032 - 4008 = 24, steps = 3984 / 7 = 569.
  const auto steep = engines::pyramidkv_schedule(100);
  CHECK(steep(0, 8, 2048, 32, 4040) == 4008);
  CHECK(steep(7, 8, 2048, 32, 4040) == 4008 - 7 * 569);
  CHECK(engines::snapkv_schedule(31, 32, 2048, 32, 8000) == 2016);

  // In a session, layer l keeps its pyramid share of the same pooled scores.
  const int capacity = 40, window = 8, layers = 4, chunk = 10;
  auto L = head_layout(4, 2, 16);
  const Problem base = random_problem(L, 200, chunk + 1, 8);
  const auto engine = make_engine("pyramidkv", {{"budget", capacity}, {"window", window}, {"kernel", 5}});
  for (int layer : {0, 3}) {
    L.layer = layer;
    L.num_layers = layers;
    const Problem p{L, base.tokens, base.queries, base.q, base.k, base.v};
    Runner run(*engine, p, p.tokens - p.queries);
    run.prefill(0, chunk);
    const int prompt = run.position(chunk - 1) + 1;
    const int keep = engines::pyramidkv_schedule(20)(layer, layers, capacity, window, prompt);
    CHECK(keep == (layer == 0 ? 63 : 3));  // min 32 / 20 = 1, max 64 - 1 = 63; steps 62 / 3 = 20
    const auto kept = snap_rule(p, prompt, chunk, window, 5, true, keep);
    const Rows rows = run.decode(chunk);
    for (int h = 0; h < L.heads_q; ++h) CHECK(rows[h][0] == unite(kept[kv_head_of(p, h)], {run.position(chunk)}));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// H2O, simulated call by call: exact attention over what is kept, accumulated probabilities, heavy + recent.
struct H2OModel {
  const Problem& p;
  int budget;
  double heavy_share;
  std::vector<Positions> kept;               // per KV head
  std::vector<std::map<int, double>> score;  // per KV head

  H2OModel(const Problem& problem, int b, double share)
      : p(problem), budget(b), heavy_share(share), kept(problem.layout.heads_kv), score(problem.layout.heads_kv) {}

  void append(int first, int count) {
    for (auto& k : kept) {
      for (int t = first; t < first + count; ++t) k.push_back(t);
    }
  }

  // Queries [from, from + n) at positions first..; returns the expected rows, then evicts.
  Rows attend(int from, int n, int first, int appended) {
    const int group = p.layout.heads_q / p.layout.heads_kv;
    Rows rows(p.layout.heads_q, std::vector<Positions>(n));
    for (int h = 0; h < p.layout.heads_q; ++h) {
      const int g = h / group;
      for (int i = 0; i < n; ++i) {
        Positions visible;
        for (int t : kept[g]) {
          if (t <= first + i) visible.push_back(t);
        }
        rows[h][i] = visible;
        for (const auto& [t, x] : softmax(p, query_of(p, h, from + i), g, visible)) score[g][t] += x;
      }
    }
    for (int g = 0; g < p.layout.heads_kv; ++g) {
      const int capacity = std::min(budget, appended);
      const int size = static_cast<int>(kept[g].size());
      if (size <= capacity) continue;
      const int heavy = static_cast<int>(capacity * heavy_share), recent = capacity - heavy;
      std::vector<std::pair<int, double>> candidates;
      for (int i = 0; i < size - recent; ++i) candidates.push_back({kept[g][i], score[g][kept[g][i]]});
      kept[g] = unite(best(candidates, heavy), Positions(kept[g].end() - recent, kept[g].end()));
    }
    return rows;
  }
};

TEST_CASE("h2o keeps the heavy hitters by accumulated attention plus the recent window", "[baselines]") {
  for (const double share : {0.5, 0.75}) {
    const auto L = head_layout(4, 2, 16);
    const Problem p = random_problem(L, 260, 28, share > 0.6 ? 14 : 13);
    const int budget = 48, chunk = 8;
    const auto engine = make_engine("h2o", {{"budget", budget}, {"heavy_share", share}});
    Runner run(*engine, p, p.tokens - p.queries);
    H2OModel model(p, budget, share);
    model.append(0, p.tokens - p.queries + chunk);
    CHECK(run.prefill(0, chunk) == model.attend(0, chunk, run.position(0), run.position(chunk - 1) + 1));
    CHECK(run.session->stats().kv_bytes_resident == 2ull * L.heads_kv * L.head_dim * 4 * budget);
    for (int t = chunk; t < p.queries; ++t) {
      model.append(run.position(t), 1);
      CHECK(run.decode(t) == model.attend(t, 1, run.position(t), run.position(t) + 1));
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// InfLLM, simulated execution block by execution block in float64.
struct InfLLMModel {
  const Problem& p;
  int sinks, window, block, repr, exec, topk;
  int blocks = 0;
  std::vector<std::vector<std::vector<double>>> representative;  // [block][head][dim]
  std::map<std::pair<int, int>, double> local;                   // (position, head) -> local attention
  std::set<int> observed;
  std::vector<Positions> loaded;  // per execution block: the retrieved blocks, best first (torch topk order)

  std::vector<double> mean_query(int head, int from, int count) const {
    std::vector<double> m(p.layout.head_dim, 0.0);
    for (int i = from; i < from + count; ++i) {
      for (int d = 0; d < p.layout.head_dim; ++d) m[d] += query_of(p, head, i)[d] / count;
    }
    return m;
  }

  double dot_mean(const std::vector<double>& m, const float* k) const {
    double s = 0.0;
    for (std::size_t d = 0; d < m.size(); ++d) s += m[d] * k[d];
    return s;
  }

  void form(int end, const std::vector<std::vector<double>>& means) {
    while (sinks + (blocks + 1) * block <= end) {
      const int begin = sinks + blocks * block;
      bool seen = false;
      for (int t = begin; t < begin + block; ++t) seen = seen || observed.count(t);
      std::vector<std::vector<double>> reps;
      for (int h = 0; h < p.layout.heads_q; ++h) {
        std::vector<std::pair<int, double>> scored;
        for (int t = begin; t < begin + block; ++t) {
          const auto it = local.find({t, h});
          scored.push_back(
              {t, seen ? (it == local.end() ? 0.0 : it->second) : dot_mean(means[h], key_of(p, kv_head_of(p, h), t))});
        }
        const Positions chosen = best(scored, repr);
        std::vector<double> rep(p.layout.head_dim, 0.0);
        for (int t : chosen) {
          for (int d = 0; d < p.layout.head_dim; ++d) rep[d] += key_of(p, kv_head_of(p, h), t)[d] / chosen.size();
        }
        reps.push_back(rep);
      }
      representative.push_back(reps);
      ++blocks;
    }
  }

  // Queries [from, from + n) at positions first..; returns their expected rows and credits local attention.
  Rows attend(int from, int n, int first) {
    Rows rows(p.layout.heads_q, std::vector<Positions>(n));
    for (int e = 0; e < n; e += exec) {
      const int len = std::min(exec, n - e), start = first + e;
      std::vector<std::vector<double>> means;
      for (int h = 0; h < p.layout.heads_q; ++h) means.push_back(mean_query(h, from + e, len));
      form(start - window, means);
      std::vector<std::pair<int, double>> scored;
      for (int b = 0; b < blocks; ++b) {
        double s = 0.0;
        for (int h = 0; h < p.layout.heads_q; ++h) {
          for (int d = 0; d < p.layout.head_dim; ++d) s += means[h][d] * representative[b][h][d];
        }
        scored.push_back({b, s});
      }
      const Positions retrieved = blocks <= topk ? range_of(0, blocks) : best(scored, topk);
      Positions by_score = retrieved;
      std::stable_sort(by_score.begin(), by_score.end(),
                       [&](int a, int b) { return scored[a].second > scored[b].second; });
      loaded.push_back(by_score);
      for (int i = e; i < e + len; ++i) {
        const int position = first + i;
        Positions keys;
        for (int t = 0; t <= position; ++t) {
          const int b = t < sinks ? -1 : (t - sinks) / block;
          if (b < 0 || b >= blocks || std::binary_search(retrieved.begin(), retrieved.end(), b)) keys.push_back(t);
        }
        for (int h = 0; h < p.layout.heads_q; ++h) {
          rows[h][i] = keys;
          for (const auto& [t, x] : softmax(p, query_of(p, h, from + i), kv_head_of(p, h), keys)) {
            if (t > position - window) local[{t, h}] += x;
          }
        }
        for (int t = std::max(0, position + 1 - window); t <= position; ++t) observed.insert(t);
      }
    }
    return rows;
  }
};

// InfLLM's device cache as context_manager.py keeps it: cached_blocks maps a block to the load_count of its
// last use, in dict insertion order; before a set is loaded, remove_lru_blocks drops the blocks with the
// smallest counts (stable sort, so ties in insertion order) outside the set until the cache has room; then
// the set gets the new count and MemoryUnit.load copies what was not on the device.
struct OriginalBlockCache {
  int max_cached_block;
  std::vector<std::pair<int, int>> cached;  // (block, load_count) in insertion order
  int load_count = 0;
  std::uint64_t loads = 0, hits = 0;

  bool has(int b) const {
    return std::any_of(cached.begin(), cached.end(), [&](const auto& e) { return e.first == b; });
  }

  void load(const Positions& block_topk) {
    int num_remove = static_cast<int>(cached.size()) - max_cached_block;
    for (int b : block_topk) num_remove += has(b) ? 0 : 1;
    auto lst = cached;
    std::stable_sort(lst.begin(), lst.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    int removed = 0;
    for (const auto& [idx, count] : lst) {
      if (removed >= num_remove) break;
      if (std::find(block_topk.begin(), block_topk.end(), idx) != block_topk.end()) continue;
      cached.erase(std::find(cached.begin(), cached.end(), std::pair<int, int>(idx, count)));
      ++removed;
    }
    ++load_count;
    for (int b : block_topk) {
      ++loads;
      const auto it = std::find_if(cached.begin(), cached.end(), [&](const auto& e) { return e.first == b; });
      if (it != cached.end()) {
        ++hits;
        it->second = load_count;
      } else {
        cached.push_back({b, load_count});
      }
    }
  }
};

TEST_CASE("infllm: local window, sinks, top blocks by representative keys, per execution block", "[baselines]") {
  const auto L = head_layout(4, 2, 16);
  const Problem p = random_problem(L, 300, 44, 31);
  const int sinks = 4, window = 32, block = 8, repr = 2, exec = 16, topk = 3;
  const auto engine = make_engine("infllm", {{"budget", sinks + window + topk * block},
                                             {"sinks", sinks},
                                             {"window", window},
                                             {"block_size", block},
                                             {"repr_topk", repr},
                                             {"exec_block", exec}});
  Runner run(*engine, p, p.tokens - p.queries);
  InfLLMModel model{p, sinks, window, block, repr, exec, topk, 0, {}, {}, {}, {}};
  const int chunk = 20;  // two execution blocks: 16 + 4
  const Rows rows = run.prefill(0, chunk);
  CHECK(rows == model.attend(0, chunk, run.position(0)));
  // Later blocks are formed from tokens the queries' windows have seen, so their representatives come from
  // local attention rather than the stand-in.
  for (int t = chunk; t < p.queries; ++t) CHECK(run.decode(t) == model.attend(t, 1, run.position(t)));
  CHECK(model.blocks > (run.position(0) - window - sinks) / block);
  const std::size_t expected_keys = sinks + window + topk * block;
  CHECK(run.rows(1)[0][0].size() <= expected_keys + block);  // plus at most the tokens not yet in a block
  SECTION("the execution block may not exceed the window") {
    CHECK_THROWS_WITH(make_engine("infllm", {{"window", 64}, {"exec_block", 128}}),
                      Catch::Contains("infllm.exec_block"));
  }
}

TEST_CASE("infllm: the device cache of memory blocks counts what the original's LRU loads", "[baselines]") {
  for (const auto dtype : {kernels::DType::f32, kernels::DType::f16}) {
    const auto L = head_layout(4, 2, 16, dtype);
    Problem p = random_problem(L, 400, 60, dtype == kernels::DType::f32 ? 45 : 46);
    // Decode queries revisiting seven directions in a scrambled order retrieve overlapping sets again and
    // again, so hits, evictions and ties in recency all happen (checked by hand: touching the cached blocks
    // in another order, or the missing ones in index order, or every block in score order, fails this).
    for (int h = 0; h < L.heads_q; ++h) {
      for (int t = 45; t < p.queries; ++t) {
        std::copy_n(query_of(p, h, 40 + (t * t) % 7), L.head_dim,
                    p.q.begin() + (static_cast<std::size_t>(h) * p.queries + t) * L.head_dim);
      }
    }
    const int sinks = 4, window = 32, block = 8, repr = 2, exec = 16, topk = 4;
    const std::uint64_t block_bytes = 2ull * L.heads_kv * block * L.head_dim * kernels::dtype_bytes(dtype);
    for (int capacity : {4, 5, 6, 8}) {
      Json params = {{"budget", sinks + window + topk * block},
                     {"sinks", sinks},
                     {"window", window},
                     {"block_size", block},
                     {"repr_topk", repr},
                     {"exec_block", exec}};
      // The same cache given in tokens (whole blocks) and in bytes.
      params["offload_sa_tokens"] = capacity == 5 ? 0 : capacity * block + block - 1;
      params["offload_sa_bytes"] = capacity == 5 ? static_cast<double>(capacity * block_bytes + 1) : 0.0;
      const auto engine = make_engine("infllm", params);
      Runner run(*engine, p, p.tokens - p.queries);
      InfLLMModel model{p, sinks, window, block, repr, exec, topk, 0, {}, {}, {}, {}};
      CHECK(run.prefill(0, 40) == model.attend(0, 40, run.position(0)));
      for (int t = 40; t < p.queries; ++t) CHECK(run.decode(t) == model.attend(t, 1, run.position(t)));

      OriginalBlockCache original{capacity, {}};
      for (const auto& set : model.loaded) original.load(set);
      std::map<std::string, double> extra;
      for (const auto& m : run.session->extra_measurements()) extra[m.metric] = m.value();
      REQUIRE(original.hits > 0);
      REQUIRE(original.hits < original.loads);  // both hits and evictions happen
      CHECK(extra.at("offload_sa_accesses") == original.loads);
      CHECK(extra.at("offload_sa_hit_ratio") == Approx(static_cast<double>(original.hits) / original.loads));
      CHECK(extra.at("offload_sa_bytes_to_device") == (original.loads - original.hits) * block_bytes);
      CHECK(extra.at("offload_sa_device_bytes") == original.cached.size() * block_bytes);
      CHECK(extra.at("offload_sa_capacity_bytes") == capacity * block_bytes);
      // On the device besides the cached blocks: every token outside the memory blocks, and one
      // representative key per block and query head.
      const std::uint64_t outside = p.tokens - static_cast<std::uint64_t>(model.blocks) * block;
      const std::uint64_t reps =
          static_cast<std::uint64_t>(model.blocks) * L.heads_q * block_bytes / (2 * block * L.heads_kv);
      CHECK(extra.at("device_kv_bytes") == original.cached.size() * block_bytes + outside * block_bytes / block + reps);
    }
  }
  SECTION("cache sizes are checked") {
    CHECK_THROWS_WITH(make_engine("infllm", {{"offload_sa_bytes", 1e6}}), Catch::Contains("not both"));
    CHECK_THROWS_WITH(make_engine("infllm", {{"offload_sa_tokens", 100}}), Catch::Contains("offload_sa_tokens"));
    CHECK(make_engine("infllm", {{"offload_sa_tokens", 0}})->open(head_layout(2, 1, 8))->extra_measurements().empty());
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Vertical-slash: column and diagonal sums of the last queries' probabilities.
TEST_CASE("vertical_slash picks top columns and diagonals from the last queries, with dense decode", "[baselines]") {
  const auto L = head_layout(4, 2, 16);
  const int chunk = 10, last_q = 8, forced_v = 3, forced_s = 4, query_block = 4;
  const int budget = 120;
  const double share = 0.3;
  const Problem p = random_problem(L, 400, chunk + 1, 12);
  const auto engine = make_engine("vertical_slash", {{"budget", budget},
                                                     {"vertical_share", share},
                                                     {"last_q", last_q},
                                                     {"forced_vertical", forced_v},
                                                     {"forced_slash", forced_s},
                                                     {"query_block", query_block}});
  Runner run(*engine, p, p.tokens - p.queries);
  const Rows rows = run.prefill(0, chunk);
  const int context = run.position(chunk - 1) + 1;
  const int vertical_size = 36, slash_size = 84;  // round(120 * 0.3) and the rest
  for (int h = 0; h < L.heads_q; ++h) {
    std::vector<double> vertical(context, 0.0), slash(context, 0.0);
    for (int i = chunk - last_q; i < chunk; ++i) {
      const int position = run.position(i);
      for (const auto& [t, x] : softmax(p, query_of(p, h, i), kv_head_of(p, h), all_up_to(position))) {
        vertical[t] += x;
        slash[position - t] += x;
      }
    }
    std::vector<std::pair<int, double>> columns, offsets;
    for (int t = 0; t < context; ++t) {
      columns.push_back({t, t < forced_v ? INFINITY : vertical[t]});
      offsets.push_back({t, t < forced_s ? INFINITY : slash[t]});
    }
    const Positions chosen_columns = best(columns, vertical_size), chosen_offsets = best(offsets, slash_size);
    for (int i = 0; i < chunk; ++i) {
      const int block_first = run.position(i / query_block * query_block);
      const int block_last = run.position(std::min(chunk, (i / query_block + 1) * query_block) - 1);
      Positions expected;
      for (int c : chosen_columns) {
        if (c <= run.position(i)) expected.push_back(c);
      }
      for (int o : chosen_offsets) {
        for (int t = std::max(0, block_first - o); t <= std::min(block_last - o, run.position(i)); ++t) {
          expected.push_back(t);
        }
      }
      CHECK(rows[h][i] == unite({}, expected));
    }
  }
  CHECK(run.decode(chunk)[2][0] == all_up_to(run.position(chunk)));
}
