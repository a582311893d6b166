// FlexPrefill against a slow float64 transcription of its selection (bytedance/FlexPrefill get_active_blocks, for a
// prefill call at the end of a longer context as engines/flex_prefill.cpp generalises it): per query head and call,
// the pattern (query-aware if the root Jensen-Shannon divergence of the estimated and the true block attention is
// below tau, else vertical-slash), the blocks kept, and so the keys of every query row, which must be exactly those
// attended() reports; every output must be float64 attention over exactly those keys (the drivers of
// engine_problems.h check each call). Each case runs with tau 0 (no head query-aware), tau 1 (every head: the root
// divergence is at most sqrt(ln 2)) and a tau between the middle divergences of the transcription (about half of
// them), on random problems (Catch's --rng-seed) and the edge cases: a single token, a context at the dense
// threshold and just above it, T not a multiple of the block, GQA, chunks not aligned to the blocks and shorter
// than a block, fp16 and bf16 keys, a max_budget, and dense decode.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <numeric>

#include "engines/engine.h"
#include "tests/engine_problems.h"

using namespace ctxbench;
using namespace ctxbench::testing;

namespace {

using Positions = std::vector<int>;  // sorted

struct Setting {
  int block;
  double gamma;
  int min_budget, max_budget;  // tokens; max_budget 0: none
};

struct Case {
  engines::HeadLayout layout;
  int tokens, queries;
  std::vector<int> chunks;  // prefill calls of the problem's queries in order; the rest decode one by one
  Setting setting;
  double query_scale;  // sharpens attention so that gamma leaves blocks out
};

const Case kCases[] = {
    {{1, 1, 16, kernels::DType::f32, 0, 1}, 1, 1, {1}, {16, 0.9, 16, 0}, 1.0},               // a single token
    {{2, 1, 16, kernels::DType::f32, 0, 1}, 48, 48, {48}, {16, 0.9, 40, 0}, 2.0},            // at the dense threshold
    {{2, 1, 16, kernels::DType::f32, 0, 1}, 49, 49, {49}, {16, 0.9, 40, 0}, 2.0},            // just above it
    {{4, 2, 32, kernels::DType::f32, 0, 1}, 203, 203, {203}, {16, 0.9, 16, 0}, 2.0},         // one whole prompt, GQA 2
    {{8, 2, 16, kernels::DType::f32, 0, 1}, 300, 90, {37, 40, 12}, {16, 0.6, 16, 48}, 2.5},  // unaligned chunks
    {{8, 1, 64, kernels::DType::f16, 0, 1}, 517, 70, {64, 5}, {32, 0.95, 64, 0}, 3.0},       // GQA 8, fp16
    {{4, 4, 32, kernels::DType::bf16, 0, 1}, 400, 400, {400}, {8, 0.8, 8, 32}, 2.0},         // bf16, small blocks
};

// Cases from this many tokens on are long enough for the selection to leave keys out and for the two patterns to
// keep different keys.
constexpr int kLongCase = 200;

double dot64(const float* a, const float* b, int dim) {
  double sum = 0;
  for (int c = 0; c < dim; ++c) sum += static_cast<double>(a[c]) * b[c];
  return sum;
}

std::vector<double> softmax64(std::vector<double> logits) {
  const double top = *std::max_element(logits.begin(), logits.end());
  double total = 0;
  for (double& x : logits) total += (x = std::exp(x - top));
  for (double& x : logits) x /= total;
  return logits;
}

int ceil_div(int a, int b) { return (a + b - 1) / b; }

Positions all_up_to(int position) {
  Positions out(position + 1);
  std::iota(out.begin(), out.end(), 0);
  return out;
}

// Entries of `mass` the largest need, counted as the original's score_cover_topk: those whose running sum stays
// within gamma, plus one.
int cover(std::vector<double> mass, double gamma) {
  std::sort(mass.rbegin(), mass.rend());
  int count = 0;
  double sum = 0;
  while (count < static_cast<int>(mass.size()) && (sum += mass[count]) <= gamma) ++count;
  return count + 1;
}

// Index 0 and the k - 1 others with the most mass (ties to the lower index).
Positions first_and_best(const std::vector<double>& mass, int k) {
  Positions others(mass.size() - 1);
  std::iota(others.begin(), others.end(), 1);
  std::stable_sort(others.begin(), others.end(), [&](int a, int b) { return mass[a] > mass[b]; });
  others.resize(std::max(0, k - 1));
  others.push_back(0);
  std::sort(others.begin(), others.end());
  return others;
}

// One prefill call of the problem's queries [from, from + n), as the transcription sees it.
struct Call {
  const Problem& p;
  int from, n;
  Setting s;

  int context() const { return p.tokens - p.queries + from + n; }
  int first() const { return context() - n; }  // position of the call's query 0
  int dim() const { return p.layout.head_dim; }
  const float* query(int h, int i) const {
    return p.q.data() + (static_cast<std::size_t>(h) * p.queries + from + i) * dim();
  }
  const float* key(int g, int t) const { return p.k.data() + (static_cast<std::size_t>(g) * p.tokens + t) * dim(); }
  int kv_head(int h) const { return h / (p.layout.heads_q / p.layout.heads_kv); }
  double scale() const { return 1.0 / std::sqrt(static_cast<double>(dim())); }
  bool dense() const { return n == 1 || context() <= std::max(2 * s.block, ceil_div(s.min_budget, s.block) * s.block); }

  std::vector<double> mean_query(int h, int begin, int end) const {
    std::vector<double> mean(dim(), 0.0);
    for (int i = begin; i < end; ++i) {
      for (int c = 0; c < dim(); ++c) mean[c] += query(h, i)[c] / static_cast<double>(end - begin);
    }
    return mean;
  }
  // Mean key of key block j.
  std::vector<float> mean_key(int g, int j) const {
    const int begin = j * s.block, end = std::min(context(), begin + s.block);
    std::vector<double> mean(dim(), 0.0);
    for (int t = begin; t < end; ++t) {
      for (int c = 0; c < dim(); ++c) mean[c] += key(g, t)[c] / static_cast<double>(end - begin);
    }
    return {mean.begin(), mean.end()};
  }
  double block_logit(const std::vector<double>& mean_q, const std::vector<float>& mean_k) const {
    double sum = 0;
    for (int c = 0; c < dim(); ++c) sum += mean_q[c] * mean_k[c];
    return scale() * sum;
  }
};

// The transcription's verdict on one query head in one call.
struct Head {
  double root_js = 0;
  bool query_aware = false;
  std::vector<Positions> rows;  // [call query]: key positions
};

Head transcribe(const Call& call, int h, double tau) {
  const Setting& s = call.s;
  const int B = s.block, T = call.context(), first = call.first(), n = call.n, g = call.kv_head(h);
  Head out;
  if (call.dense()) {
    for (int i = 0; i < n; ++i) out.rows.push_back(all_up_to(first + i));
    return out;
  }
  // Exact probabilities of the last block of queries (or all the call's queries if fewer), averaged.
  const int observed = std::min(B, n);
  std::vector<double> per_key(T, 0.0), per_diagonal(T, 0.0);
  for (int i = n - observed; i < n; ++i) {
    const int position = first + i;
    std::vector<double> logits;
    for (int t = 0; t <= position; ++t)
      logits.push_back(call.scale() * dot64(call.query(h, i), call.key(g, t), call.dim()));
    const auto probability = softmax64(logits);
    for (int t = 0; t <= position; ++t) {
      per_key[t] += probability[t] / observed;
      per_diagonal[position - t] += probability[t] / observed;
    }
  }
  // Verticals are key blocks. Slash o is the band [a - o B, a - o B + B) of the last query block (starting at a);
  // a diagonal counts in the band that holds its key for the call's last query, T - 1.
  const int key_blocks = ceil_div(T, B), last_block_start = first + (n - 1) / B * B;
  const auto band_of = [&](int key) { return (last_block_start + B - 1 - key) / B; };
  const int bands = band_of(0) + 1;
  std::vector<double> vertical(key_blocks, 0.0), slash(bands, 0.0);
  for (int t = 0; t < T; ++t) vertical[t / B] += per_key[t];
  for (int d = 0; d < T; ++d) slash[band_of(T - 1 - d)] += per_diagonal[d];

  // Estimated block attention: the observed queries' mean against each block's mean key.
  const auto mean_q = call.mean_query(h, n - observed, n);
  std::vector<double> logits;
  for (int j = 0; j < key_blocks; ++j) logits.push_back(call.block_logit(mean_q, call.mean_key(g, j)));
  const auto estimated = softmax64(logits);
  double js = 0;
  for (int j = 0; j < key_blocks; ++j) {
    const double m = (estimated[j] + vertical[j]) / 2;
    if (estimated[j] > 0) js += estimated[j] * std::log(estimated[j] / m) / 2;
    if (vertical[j] > 0) js += vertical[j] * std::log(vertical[j] / m) / 2;
  }
  out.root_js = std::sqrt(js);
  out.query_aware = out.root_js < tau;

  const int least = ceil_div(s.min_budget, B);
  const int most = s.max_budget > 0 ? ceil_div(s.max_budget, B) : std::numeric_limits<int>::max();
  const auto how_many = [&](const std::vector<double>& mass, int available) {
    if (out.query_aware) return std::min(least, available);
    return std::min({std::max(cover(mass, s.gamma) / B + 1, least), most, available});
  };
  const Positions verticals = first_and_best(vertical, how_many(per_key, key_blocks));
  const Positions slashes = first_and_best(slash, how_many(per_diagonal, bands));

  // Query-aware: (query block, key block) pairs by block attention, the best until gamma x query blocks.
  const int query_blocks = ceil_div(n, B);
  std::vector<std::vector<int>> aware(query_blocks);
  if (out.query_aware) {
    struct Pair {
      double p;
      int b, j;
    };
    std::vector<Pair> pairs;
    for (int b = 0; b < query_blocks; ++b) {
      const int end = std::min(n, (b + 1) * B);
      const auto mean_block_q = call.mean_query(h, b * B, end);
      std::vector<double> block_logits;
      for (int j = 0; j * B <= first + end - 1; ++j)
        block_logits.push_back(call.block_logit(mean_block_q, call.mean_key(g, j)));
      const auto p = softmax64(block_logits);
      for (int j = 0; j < static_cast<int>(p.size()); ++j) pairs.push_back({p[j], b, j});
    }
    std::stable_sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) { return a.p > b.p; });
    double sum = 0;
    for (const Pair& pair : pairs) {
      sum += pair.p;
      if (sum > s.gamma * query_blocks) break;
      aware[pair.b].push_back(pair.j);
    }
  }

  for (int i = 0; i < n; ++i) {
    const int b = i / B, start = first + b * B, position = first + i;
    std::vector<bool> kept(position + 1, false);
    const auto keep = [&](int begin, int end) {
      for (int t = std::max(0, begin); t < std::min(end, position + 1); ++t) kept[t] = true;
    };
    for (int j : verticals) keep(j * B, (j + 1) * B);
    for (int o : slashes) keep(start - o * B, start - o * B + B);
    for (int j : aware[b]) keep(j * B, (j + 1) * B);
    Positions row;
    for (int t = 0; t <= position; ++t) {
      if (kept[t]) row.push_back(t);
    }
    out.rows.push_back(row);
  }
  return out;
}

std::unique_ptr<engines::Engine> make_flex_prefill(const Setting& s, double tau) {
  const auto& info = engines::EngineRegistry::instance().get("flex_prefill", "test");
  const Json params = {{"block_size", s.block},
                       {"gamma", s.gamma},
                       {"tau", tau},
                       {"min_budget", s.min_budget},
                       {"max_budget", s.max_budget}};
  return info.make(resolve_params(info.params, params, "flex_prefill"));
}

Problem case_problem(const Case& c) {
  Problem p = random_problem(c.layout, c.tokens, c.queries, Catch::rngSeed() + c.tokens);  // --rng-seed replays
  for (float& x : p.q) x *= static_cast<float>(c.query_scale);
  return p;
}

// The transcription of one prefill call: whether it is sparse, and every head's verdict.
struct CallVerdict {
  bool sparse;
  std::vector<Head> heads;
};

std::vector<CallVerdict> transcribe_case(const Case& c, const Problem& p, double tau) {
  std::vector<CallVerdict> calls;
  int from = 0;
  for (int n : c.chunks) {
    const Call call{p, from, n, c.setting};
    calls.push_back({!call.dense(), {}});
    for (int h = 0; h < p.layout.heads_q; ++h) calls.back().heads.push_back(transcribe(call, h, tau));
    from += n;
  }
  return calls;
}

}  // namespace

TEST_CASE("flex_prefill chooses each head's pattern and blocks as the transcription, and decodes densely",
          "[baselines][flex_prefill]") {
  for (const Case& c : kCases) {
    const Problem problem = case_problem(c);
    // The root divergences do not depend on tau; a tau between the middle two splits the heads' patterns.
    std::vector<double> divergences;
    for (const CallVerdict& call : transcribe_case(c, problem, 0.0)) {
      for (const Head& head : call.heads) {
        if (call.sparse) divergences.push_back(head.root_js);
      }
    }
    // In the longer cases the two patterns keep different keys for most heads, so comparing rows checks each
    // head's pattern.
    if (c.tokens >= kLongCase) {
      const auto vertical_slash = transcribe_case(c, problem, 0.0), query_aware = transcribe_case(c, problem, 1.0);
      int differ = 0;
      for (std::size_t k = 0; k < vertical_slash.size(); ++k) {
        for (std::size_t h = 0; h < vertical_slash[k].heads.size(); ++h) {
          differ += vertical_slash[k].sparse && vertical_slash[k].heads[h].rows != query_aware[k].heads[h].rows;
        }
      }
      INFO("heads whose rows differ between the patterns: " << differ << " of " << divergences.size());
      CHECK(2 * differ > static_cast<int>(divergences.size()));
    }
    std::sort(divergences.begin(), divergences.end());
    std::vector<double> taus = {0.0, 1.0};
    if (divergences.size() >= 2) {
      const std::size_t k = divergences.size() / 2;
      REQUIRE(divergences[k] - divergences[k - 1] > 1e-6);  // a split float rounding cannot move
      taus.push_back((divergences[k - 1] + divergences[k]) / 2);
    }
    for (double tau : taus) {
      DYNAMIC_SECTION("T=" << c.tokens << " queries=" << c.queries << " Hq=" << c.layout.heads_q
                           << " Hkv=" << c.layout.heads_kv << " block=" << c.setting.block << " tau=" << tau) {
        Problem p = problem;
        const auto expected = transcribe_case(c, p, tau);
        const auto engine = make_flex_prefill(c.setting, tau);
        auto session = engine->open(p.layout);
        append_tokens(*session, p, 0, p.tokens - p.queries);
        std::vector<float> out(p.q.size(), std::nanf(""));
        int from = 0, query_aware = 0, decided = 0;
        bool left_keys_out = false;
        for (std::size_t k = 0; k < c.chunks.size(); ++k) {
          const int n = c.chunks[k];
          append_tokens(*session, p, p.tokens - p.queries + from, n);
          prefill_queries(*session, p, from, n, out);  // checks the outputs against the keys reported
          for (int h = 0; h < p.layout.heads_q; ++h) {
            const Head& head = expected[k].heads[h];
            decided += expected[k].sparse;
            query_aware += head.query_aware;
            for (int i = 0; i < n; ++i) {
              INFO("call " << k << " head " << h << " query " << i << " root JS " << head.root_js);
              const Positions row = expand(session->attended(h, i));
              CHECK(row == head.rows[i]);
              left_keys_out |= static_cast<int>(row.size()) < p.tokens - p.queries + from + i + 1;
            }
          }
          from += n;
        }
        for (; from < p.queries; ++from) {  // decode: dense
          const int position = p.tokens - p.queries + from;
          append_tokens(*session, p, position, 1);
          const auto q = slice_tokens(p.q, p.layout.heads_q, p.queries, p.layout.head_dim, from, 1);
          std::vector<float> step(q.size());
          session->attend(q.data(), 1, engines::Phase::decode, step.data());
          check_matches_attended(*session, p, q.data(), 1, position, step.data());
          for (int h = 0; h < p.layout.heads_q; ++h) CHECK(expand(session->attended(h, 0)) == all_up_to(position));
        }
        // The pattern of every head: the share the session reports is the transcription's.
        const auto measured = session->extra_measurements();
        if (decided == 0) {
          CHECK(measured.empty());
        } else {
          REQUIRE(measured.size() == 1);
          CHECK(measured[0].metric == "query_aware_head_share");
          CHECK(measured[0].value() == Approx(static_cast<double>(query_aware) / decided));
        }
        if (tau == 0.0) CHECK(query_aware == 0);
        if (tau == 1.0) CHECK(query_aware == decided);
        if (tau != 0.0 && tau != 1.0) {
          CHECK(query_aware > 0);
          CHECK(query_aware < decided);
        }
        // The longer cases leave keys out somewhere, so the comparison above is not one of dense rows.
        if (c.tokens >= kLongCase) CHECK(left_keys_out);
      }
    }
  }
}
