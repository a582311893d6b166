// HyperAttention (engines/hyper_attention.cpp): the weighted keys of every query row of a prefill against a slow
// float64 transcription of the original's recursion (insuhan/hyper-attention `HyperAttention.forward` with causal
// masking and `forward_no_causal_mask`: zero rows padding odd halves, angular LSH with the Gray-code table, stable
// sorts, the sorted block diagonal, uniform samples up-weighted by |K| / sample_size and masked in the query's own
// block), with the engine's documented extensions (a chunked prefill's rectangle over earlier keys, blocks by share
// of the sorted order, no zero keys padding the last block) and its documented seeding; decode steps are dense.
#include <catch2/catch.hpp>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <map>
#include <numeric>

#include "engines/engine.h"
#include "tests/engine_problems.h"

using namespace ctxbench;
using namespace ctxbench::testing;

namespace {

struct Settings {
  int lsh_num_projs, block_size, sample_size, min_seq_len, seed;
};

std::unique_ptr<engines::Engine> hyper_attention(const Settings& s) {
  const auto& info = engines::EngineRegistry::instance().get("hyper_attention", "test");
  const Json params{{"lsh_num_projs", s.lsh_num_projs},
                    {"block_size", s.block_size},
                    {"sample_size", s.sample_size},
                    {"min_seq_len", s.min_seq_len},
                    {"seed", s.seed},
                    {"threads", 1}};
  return info.make(resolve_params(info.params, params, "hyper_attention"));
}

// The engine's documented seed derivation.
std::uint64_t stream_seed(std::initializer_list<std::uint64_t> parts) {
  std::uint64_t state = 0x243f6a8885a308d3ull;
  for (const std::uint64_t part : parts) state = Rng(state ^ part).next();
  return state;
}

// The original's `_unit_hamming_distance_array`: neighbours differ in one bit.
std::vector<int> unit_hamming_distance_array(int bits) {
  if (bits == 0) return {0};
  if (bits == 1) return {0, 1};
  auto a = unit_hamming_distance_array(bits - 1);
  const int n = static_cast<int>(a.size());
  for (int i = n - 1; i >= 0; --i) a.push_back(a[i] + n);
  return a;
}

constexpr int kPad = -1;  // a zero row

// The weighted keys of the n queries of one prefill call of query head h, by position.
class Transcription {
 public:
  Transcription(const Problem& p, const Settings& s, int h, const float* q, int n, int first)
      : p_(p), s_(s), h_(h), q_(q), n_(n), first_(first), perm_(unit_hamming_distance_array(s.lsh_num_projs)) {
    Rng rng(stream_seed({static_cast<std::uint64_t>(s.seed), static_cast<std::uint64_t>(p.layout.layer)}));
    projections_.assign(s.lsh_num_projs, std::vector<double>(p.layout.head_dim));
    for (auto& projection : projections_) {
      for (double& x : projection) x = static_cast<float>(rng.normal());
    }
    head_seed_ = stream_seed({static_cast<std::uint64_t>(s.seed), static_cast<std::uint64_t>(p.layout.layer),
                              static_cast<std::uint64_t>(h)});
    weights_.resize(n);
  }

  std::vector<std::map<int, double>> weights() {
    std::vector<int> call(n_);
    std::iota(call.begin(), call.end(), first_);
    causal(call);
    if (first_ > 0) {
      std::vector<int> earlier(first_);
      std::iota(earlier.begin(), earlier.end(), 0);
      no_causal_mask(call, earlier);
    }
    return weights_;
  }

 private:
  std::vector<double> query(int position) const {
    std::vector<double> x(p_.layout.head_dim, 0.0);
    if (position == kPad) return x;
    const float* row = q_ + (static_cast<std::size_t>(h_) * n_ + position - first_) * x.size();
    return {row, row + x.size()};
  }
  std::vector<double> key(int position) const {
    std::vector<double> x(p_.layout.head_dim, 0.0);
    if (position == kPad) return x;
    const int g = h_ / (p_.layout.heads_q / p_.layout.heads_kv);
    const float* row = p_.k.data() + (static_cast<std::size_t>(g) * p_.tokens + position) * x.size();
    return {row, row + x.size()};
  }
  int hash(const std::vector<double>& x) const {
    int bin = 0;
    for (int i = 0; i < s_.lsh_num_projs; ++i) {
      if (std::inner_product(x.begin(), x.end(), projections_[i].begin(), 0.0) > 0) bin += 1 << i;
    }
    return perm_[bin];
  }
  void add(int query_position, int key_position, double weight) {
    if (query_position != kPad) weights_[query_position - first_][key_position] += weight;
  }

  // Rows are positions (queries and keys of the same tokens) or pads.
  void causal(std::vector<int> rows) {
    if (static_cast<int>(rows.size()) <= s_.min_seq_len) {
      for (std::size_t a = 0; a < rows.size(); ++a) {
        for (std::size_t b = 0; b <= a; ++b) {
          if (rows[b] != kPad) add(rows[a], rows[b], 1.0);
        }
      }
      return;
    }
    if (rows.size() % 2 == 1) rows.push_back(kPad);
    const std::size_t half = rows.size() / 2;
    const std::vector<int> up(rows.begin(), rows.begin() + half), down(rows.begin() + half, rows.end());
    causal(up);
    causal(down);
    no_causal_mask(down, up);
  }

  void no_causal_mask(const std::vector<int>& queries, const std::vector<int>& keys) {
    const int n_query = static_cast<int>(queries.size()), n_key = static_cast<int>(keys.size());
    if (n_query < s_.min_seq_len) {
      for (const int i : queries) {
        for (const int t : keys) add(i, t, 1.0);
      }
      return;
    }
    auto argsort = [](std::vector<int> codes) {
      std::vector<int> idx(codes.size());
      std::iota(idx.begin(), idx.end(), 0);
      std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return codes[a] < codes[b]; });
      return idx;
    };
    std::vector<int> query_codes, key_codes;
    for (const int i : queries) query_codes.push_back(hash(query(i)));
    for (const int t : keys) key_codes.push_back(hash(key(t)));
    const auto query_sort_idx = argsort(query_codes), key_sort_idx = argsort(key_codes);
    const int num_blocks = (n_key + s_.block_size - 1) / s_.block_size;
    const int padded_queries = (n_query + s_.block_size - 1) / s_.block_size * s_.block_size;
    const double query_block_size = static_cast<double>(padded_queries) / num_blocks;
    auto query_block = [&](int rank) {
      return static_cast<int>(static_cast<long long>(rank) * num_blocks / padded_queries);
    };
    for (int rank = 0; rank < n_query; ++rank) {
      for (int r = query_block(rank) * s_.block_size; r < std::min(n_key, (query_block(rank) + 1) * s_.block_size);
           ++r) {
        add(queries[query_sort_idx[rank]], keys[key_sort_idx[r]], 1.0);
      }
    }
    if (s_.sample_size == 0 || n_query <= query_block_size || n_key <= s_.block_size) return;
    Rng rng(stream_seed({head_seed_, static_cast<std::uint64_t>(keys.front()), static_cast<std::uint64_t>(n_key)}));
    std::vector<int> sampled_set(s_.sample_size);
    for (int& x : sampled_set) x = static_cast<int>(rng.integer(0, n_key - 1));
    const double weight = static_cast<double>(n_key) / s_.sample_size;
    for (int rank = 0; rank < n_query; ++rank) {
      for (const int x : sampled_set) {
        if (x / s_.block_size != query_block(rank)) add(queries[query_sort_idx[rank]], keys[key_sort_idx[x]], weight);
      }
    }
  }

  const Problem& p_;
  Settings s_;
  int h_;
  const float* q_;
  int n_, first_;
  std::vector<int> perm_;
  std::vector<std::vector<double>> projections_;
  std::uint64_t head_seed_ = 0;
  std::vector<std::map<int, double>> weights_;
};

// sum_j w_j exp(s_j) v_j / sum_j w_j exp(s_j) for query row (h, i) of the call.
std::vector<double> weighted_attention(const Problem& p, int h, const float* q, const std::map<int, double>& weights) {
  const int d = p.layout.head_dim, g = h / (p.layout.heads_q / p.layout.heads_kv);
  double top = -std::numeric_limits<double>::infinity();
  std::map<int, double> logits;
  for (const auto& [t, w] : weights) {
    double s = 0.0;
    for (int c = 0; c < d; ++c)
      s += q[c] * static_cast<double>(p.k[(static_cast<std::size_t>(g) * p.tokens + t) * d + c]);
    logits[t] = s / std::sqrt(static_cast<double>(d)) + std::log(w);
    top = std::max(top, logits[t]);
  }
  std::vector<double> out(d, 0.0);
  double sum = 0.0;
  for (const auto& [t, logit] : logits) {
    const double e = std::exp(logit - top);
    sum += e;
    for (int c = 0; c < d; ++c) out[c] += e * p.v[(static_cast<std::size_t>(g) * p.tokens + t) * d + c];
  }
  for (double& x : out) x /= sum;
  return out;
}

// Appends the keys before the first call, then runs the prefill calls of the given sizes over the rest; each row's
// keys must be the transcription's and its output the transcription's weighted attention. Returns the number of rows
// attending fewer keys than their context and the number with up-weighted (sampled) keys.
std::pair<int, int> run_prefills(const Problem& p, const Settings& s, const std::vector<int>& calls) {
  const auto& L = p.layout;
  auto session = hyper_attention(s)->open(L);
  int first = p.tokens - std::accumulate(calls.begin(), calls.end(), 0);
  if (first > 0) {
    session->append(slice_tokens(p.k, L.heads_kv, p.tokens, L.head_dim, 0, first).data(),
                    slice_tokens(p.v, L.heads_kv, p.tokens, L.head_dim, 0, first).data(), first);
  }
  int sparse_rows = 0, sampled_rows = 0;
  for (const int n : calls) {
    INFO("prefill of " << n << " queries at " << first);
    session->append(slice_tokens(p.k, L.heads_kv, p.tokens, L.head_dim, first, n).data(),
                    slice_tokens(p.v, L.heads_kv, p.tokens, L.head_dim, first, n).data(), n);
    const auto q = slice_tokens(p.q, L.heads_q, p.queries, L.head_dim, first - (p.tokens - p.queries), n);
    std::vector<float> out(q.size());
    session->attend(q.data(), n, engines::Phase::prefill, out.data());
    std::vector<float> actual;
    std::vector<double> expected;
    for (int h = 0; h < L.heads_q; ++h) {
      const auto weights = Transcription(p, s, h, q.data(), n, first).weights();
      for (int i = 0; i < n; ++i) {
        INFO("head " << h << " query " << first + i);
        std::vector<int> keys;
        bool sampled = false;
        for (const auto& [t, w] : weights[i]) keys.push_back(t), sampled = sampled || w != 1.0;
        REQUIRE(expand(session->attended(h, i)) == keys);
        sparse_rows += static_cast<int>(keys.size()) < first + i + 1;
        sampled_rows += sampled;
        const float* row = q.data() + (static_cast<std::size_t>(h) * n + i) * L.head_dim;
        const auto reference = weighted_attention(p, h, row, weights[i]);
        expected.insert(expected.end(), reference.begin(), reference.end());
        actual.insert(actual.end(), out.begin() + (static_cast<std::ptrdiff_t>(h) * n + i) * L.head_dim,
                      out.begin() + (static_cast<std::ptrdiff_t>(h) * n + i + 1) * L.head_dim);
      }
    }
    CHECK(relative_l2_error(actual, expected) < 1e-5);
    first += n;
  }
  return {sparse_rows, sampled_rows};
}

}  // namespace

TEST_CASE("hyper_attention: each prefill row's weighted keys and output equal the float64 transcription",
          "[engines][hyper_attention]") {
  struct Case {
    engines::HeadLayout layout;
    int tokens;
    std::vector<int> calls;  // prefill calls ending the context; the keys before them are appended first
    Settings settings;
  };
  const Case cases[] = {
      {head_layout(4, 4, 16, kernels::DType::f32), 128, {128}, {7, 16, 16, 16, 0}},       // one whole prefill
      {head_layout(4, 2, 32, kernels::DType::f32), 301, {301}, {5, 8, 12, 10, 3}},        // odd halves (zero rows)
      {head_layout(8, 1, 16, kernels::DType::f16, 2), 257, {100, 57}, {4, 16, 8, 6, 1}},  // after earlier keys, GQA 8
      {head_layout(4, 2, 16, kernels::DType::bf16), 190, {37, 1, 50}, {3, 5, 7, 4, 9}},   // chunks, a lone query, bf16
      {head_layout(2, 1, 8, kernels::DType::f32), 150, {150}, {0, 8, 8, 2, 4}},           // no projections: one code
      {head_layout(2, 2, 16, kernels::DType::f32), 140, {140}, {6, 200, 16, 8, 5}},       // one block holds every key
  };
  std::uint64_t seed = 2310'05869;
  for (const Case& c : cases) {
    DYNAMIC_SECTION("projs " << c.settings.lsh_num_projs << " block " << c.settings.block_size << " samples "
                             << c.settings.sample_size << " min " << c.settings.min_seq_len << " T=" << c.tokens) {
      const Problem p = random_problem(c.layout, c.tokens, c.tokens, ++seed);
      const auto [sparse_rows, sampled_rows] = run_prefills(p, c.settings, c.calls);
      if (c.settings.block_size < c.tokens) {
        CHECK(sparse_rows > 0);
        CHECK(sampled_rows > 0);
      } else {
        CHECK(sparse_rows == 0);  // each unmasked part's one block is every key
      }
    }
  }
}

TEST_CASE("hyper_attention: the seed decides the projections and samples", "[engines][hyper_attention]") {
  const Problem p = random_problem(head_layout(2, 1, 16, kernels::DType::f32), 200, 200, 11);
  std::vector<std::vector<int>> keys_by_seed;
  for (const int seed : {0, 0, 1}) {
    auto session = hyper_attention({7, 16, 16, 16, seed})->open(p.layout);
    session->append(p.k.data(), p.v.data(), p.tokens);
    std::vector<float> out(p.q.size());
    session->attend(p.q.data(), p.queries, engines::Phase::prefill, out.data());
    keys_by_seed.push_back(expand(session->attended(0, 199)));
  }
  CHECK(keys_by_seed[0] == keys_by_seed[1]);
  CHECK(keys_by_seed[0] != keys_by_seed[2]);
}

TEST_CASE("hyper_attention: decode steps attend every key exactly", "[engines][hyper_attention]") {
  const Problem p = random_problem(head_layout(4, 2, 16, kernels::DType::f16), 120, 6, 12);
  const auto engine = hyper_attention({7, 8, 8, 4, 0});
  std::uint64_t last_step_keys = 0;
  run_prefill_then_decode(*engine, p, &last_step_keys);  // checks each step's output over the keys it reports
  CHECK(last_step_keys == 120);
  const auto decode = run_decode(*engine, p);
  const kernels::QueryView q{p.q.data(), p.layout.heads_q, p.queries, p.layout.head_dim};
  const auto dense = kernels::reference_attention(q, full_view(p, p.k), full_view(p, p.v),
                                                  {p.tokens - p.queries, 1.0f / std::sqrt(16.0f)});
  CHECK(relative_l2_error(decode, dense.out) < 1e-5);
}
