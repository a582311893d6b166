// InfiniteHiP pruning against a direct, unoptimized transcription of the original (the stage loop of
// dual_stage_quadratic_hip_attention in attention_extend.py and chunk_controllable_sampling_mask_cuda in
// scan_stage.py): per-head left/right arrays, the tile-wide descent count, head reduction by amax, topk,
// sort, realign and split with the original's floor arithmetic, in float64. On small integer inputs (exact dot
// products, many ties) and on real-valued ones, the kept chunks must agree exactly. With un-rotated inputs, the
// transcription rotates every query and scored key in float64 to the positions of the RoPE mode (load_keys_with_rope
// and pool_queries in scan_stage.py).
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/random.h"
#include "engines/infinite_hip_mask.h"

using namespace ctxbench;
using engines::hip::Chunk;
using engines::hip::ChunkLists;
using engines::hip::PruningParams;
using engines::hip::PruningStage;

namespace {

constexpr double kNever = -std::numeric_limits<double>::infinity();  // a chunk no step scanned

struct Problem {
  int heads, heads_kv, dim, tokens, count, first_position;
  PruningParams p;
  std::vector<float> q, k;  // q [heads][count][dim], k [heads_kv][tokens][dim]
};

enum class Values { small_integers, normal };  // integers give exact dot products and many ties

Problem make_problem(int heads, int heads_kv, int dim, int tokens, int count, PruningParams p, std::uint64_t seed,
                     Values values = Values::small_integers) {
  Problem pr{heads, heads_kv, dim, tokens, count, tokens - count, std::move(p), {}, {}};
  Rng rng(seed);
  pr.q.resize(static_cast<std::size_t>(heads) * count * dim);
  pr.k.resize(static_cast<std::size_t>(heads_kv) * tokens * dim);
  for (auto* v : {&pr.q, &pr.k}) {
    for (float& x : *v)
      x = static_cast<float>(values == Values::normal ? rng.normal() : static_cast<double>(rng.integer(-3, 3)));
  }
  return pr;
}

// Per head: left, right, score of every chunk (the original's [BSZ, BDST, HEAD, CHUNK] tensors).
struct HeadState {
  std::vector<long> left, right;
  std::vector<double> score;
};

// RoPE mode of the transcription: frequencies (NeoX layout) and which positions the scan uses.
struct TranscribedRope {
  kernels::RopeFrequencies freqs;
  kernels::HipPrunePositions mode;
};

// x rotated to `position` in float64, NeoX pairs (i, i + d/2), cos and sin times the magnitude.
void rotate_in_double(double* x, const kernels::RopeFrequencies& f, long position) {
  const int half = f.rotary_dim / 2;
  for (int i = 0; i < half; ++i) {
    const double angle = static_cast<double>(position) * f.inv_freq[i];
    const double a = x[i], b = x[i + half];
    x[i] = (a * std::cos(angle) - b * std::sin(angle)) * f.attention_factor;
    x[i + half] = (a * std::sin(angle) + b * std::cos(angle)) * f.attention_factor;
  }
}

ChunkLists transcribed_prune(const Problem& pr, const TranscribedRope* rope = nullptr) {
  const PruningParams& p = pr.p;
  const int group = pr.heads / pr.heads_kv;
  long chunk_size = p.stages[0].chunk;
  const long chunk_count = (std::max(0, pr.tokens - p.sinks - p.window) + chunk_size - 1) / chunk_size;
  const long sliding_window = std::max(0L, static_cast<long>(p.window) - chunk_size);  // args.sliding_window_size
  const long limit = pr.tokens - sliding_window;
  std::vector<HeadState> st(pr.heads);
  for (auto& s : st) {
    for (long i = 0; i < chunk_count; ++i) {
      s.left.push_back(i * chunk_size + p.sinks);
      s.right.push_back(std::min(s.left.back() + chunk_size, limit));
    }
    s.score.assign(chunk_count, kNever);
  }
  for (std::size_t i_stage = 0; i_stage < p.stages.size(); ++i_stage) {
    const PruningStage& stage = p.stages[i_stage];
    if (i_stage > 0) {
      for (auto& s : st) {
        // the previous post-sort left the best chunks first: keep stage_k // chunk_size of them
        const std::size_t keep = std::min<std::size_t>(p.stages[i_stage - 1].keep / chunk_size, s.left.size());
        s.left.resize(keep);
        s.score.resize(keep);
        // realign the descended left end to its chunk, sort by position
        for (auto& l : s.left) l = (l - p.sinks) / chunk_size * chunk_size + p.sinks;
        std::sort(s.left.begin(), s.left.end());
        // split each chunk with the original's floor arithmetic; pieces past the tiling end are cut there
        const long splits = chunk_size / stage.chunk;
        std::vector<long> left, right;
        for (long l : s.left) {
          const long r = l + chunk_size;
          const double piece = static_cast<double>(r - l) / splits;
          for (long j = 0; j < splits; ++j) {
            const long pl = l + static_cast<long>(std::floor(j * piece));
            const long pr_ = std::min(limit, r - static_cast<long>(std::floor((splits - 1 - j) * piece)));
            if (pl < pr_) {
              left.push_back(pl);
              right.push_back(pr_);
            }
          }
        }
        s.left = left;
        s.right = right;
        s.score.assign(left.size(), kNever);  // require_reset_score
      }
    }
    chunk_size = stage.chunk;
    std::vector<std::vector<long>> original_left;  // chunk identity for the ranking's tie-break
    for (const auto& s : st) original_left.push_back(s.left);
    // pooled queries: mean over each run of `stride` queries of the block
    const int vectors = (pr.count + stage.query_stride - 1) / stage.query_stride;
    const long pos_tdst_min = pr.first_position - sliding_window;
    using kernels::HipPrunePositions;
    for (int h = 0; h < pr.heads; ++h) {
      const long stage_chunks = static_cast<long>(st[h].left.size());
      std::vector<double> pooled(static_cast<std::size_t>(vectors) * pr.dim, 0.0);
      for (int v = 0; v < vectors; ++v) {
        int n = 0;
        for (int t = v * stage.query_stride; t < std::min(pr.count, (v + 1) * stage.query_stride); ++t, ++n) {
          std::vector<double> query(pr.dim);
          for (int i = 0; i < pr.dim; ++i) query[i] = pr.q[(static_cast<std::size_t>(h) * pr.count + t) * pr.dim + i];
          if (rope) {
            // relative: query at sliding_window + 1; streaming scan (chunk-indexed): min(pos_tdst, chunks + sw)
            const long group_first = pr.first_position + v * stage.query_stride;
            const long position = rope->mode == HipPrunePositions::relative ? sliding_window + 1
                                  : rope->mode == HipPrunePositions::chunk_indexed
                                      ? std::min(group_first, stage_chunks + sliding_window)
                                      : pr.first_position + t;
            rotate_in_double(query.data(), rope->freqs, position);
          }
          for (int i = 0; i < pr.dim; ++i) pooled[v * pr.dim + i] += query[i];
        }
        for (int i = 0; i < pr.dim; ++i) pooled[v * pr.dim + i] /= n;
      }
      // Scores `token` as the left or right representative of chunk c of this stage.
      auto sample = [&](long token, std::size_t c, bool right) {
        std::vector<double> key(pr.dim);
        for (int i = 0; i < pr.dim; ++i)
          key[i] = pr.k[(static_cast<std::size_t>(h / group) * pr.tokens + token) * pr.dim + i];
        if (rope) {
          const long position = rope->mode == HipPrunePositions::relative        ? (right ? 1 : 0)
                                : rope->mode == HipPrunePositions::chunk_indexed ? static_cast<long>(c)
                                                                                 : token;
          rotate_in_double(key.data(), rope->freqs, position);
        }
        double best = -std::numeric_limits<double>::infinity();
        for (int v = 0; v < vectors; ++v) {
          double sum = 0;
          for (int i = 0; i < pr.dim; ++i) sum += pooled[v * pr.dim + i] * key[i];
          best = std::max(best, sum);
        }
        return best;
      };
      HeadState& s = st[h];
      long max_chunk_size = 0;
      for (std::size_t c = 0; c < s.left.size(); ++c) max_chunk_size = std::max(max_chunk_size, s.right[c] - s.left[c]);
      // for _ in range(ceil(log2(max_chunk_size))): at least one step (see the engine's notes)
      const int steps = std::max(1, static_cast<int>(std::ceil(std::log2(static_cast<double>(max_chunk_size)))));
      for (int step = 0; step < steps; ++step) {
        for (std::size_t c = 0; c < s.left.size(); ++c) {
          const bool active = s.left[c] < s.right[c] && s.left[c] <= pos_tdst_min && s.left[c] >= 0;
          if (!active) continue;
          const long centre = (s.left[c] + s.right[c]) / 2;
          const double score_left = sample((s.left[c] + centre) / 2, c, false);
          const double score_right = sample((centre + s.right[c]) / 2, c, true);
          if (score_left > score_right) {
            s.right[c] = centre;
            s.score[c] = std::max(s.score[c], score_left);
          } else {
            s.left[c] = centre;
            s.score[c] = std::max(s.score[c], score_right);
          }
        }
      }
    }
    if (p.head_reduction) {
      for (std::size_t c = 0; c < st[0].score.size(); ++c) {
        double best = kNever;
        for (const auto& s : st) best = std::max(best, s.score[c]);
        for (auto& s : st) s.score[c] = best;
      }
    }
    // post-sort: best first, ties to the lower chunk; chunks never scanned are dropped
    for (int h = 0; h < pr.heads; ++h) {
      HeadState& s = st[h];
      std::vector<std::size_t> order(s.left.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return s.score[a] != s.score[b] ? s.score[a] > s.score[b] : original_left[h][a] < original_left[h][b];
      });
      HeadState sorted;
      for (std::size_t i : order) {
        if (s.score[i] == kNever) continue;
        sorted.left.push_back(s.left[i]);
        sorted.right.push_back(s.right[i]);
        sorted.score.push_back(s.score[i]);
      }
      s = sorted;
    }
  }
  // indices = left[..., :second_stage_k // chunk_size] // chunk_size * chunk_size
  ChunkLists out;
  for (int h = 0; h < (p.head_reduction ? 1 : pr.heads); ++h) {
    std::vector<Chunk> blocks;
    for (std::size_t i = 0; i < std::min<std::size_t>(st[h].left.size(), p.stages.back().keep / chunk_size); ++i) {
      const int begin = static_cast<int>(st[h].left[i] / chunk_size * chunk_size);
      blocks.push_back({begin, static_cast<int>(std::min<long>(begin + chunk_size, limit))});
    }
    std::sort(blocks.begin(), blocks.end(), [](Chunk a, Chunk b) { return a.begin < b.begin; });
    out.push_back(blocks);
  }
  return out;
}

ChunkLists run_prune(const Problem& pr, int threads, std::vector<ChunkLists>& inputs, int from_stage = 0,
                     engines::hip::MaskCounters* counters = nullptr, engines::OffloadTier* tier = nullptr,
                     const engines::hip::ScanRope* rope = nullptr) {
  const kernels::KvView k{
      pr.k.data(), kernels::DType::f32, pr.heads_kv, pr.tokens, pr.dim, static_cast<std::size_t>(pr.tokens) * pr.dim};
  const engines::hip::QueryTile tile{pr.q.data(), pr.heads, pr.count, pr.dim, 0, pr.count, pr.first_position};
  return engines::hip::prune(pr.p, tile, engines::hip::KeyRows(k), pr.heads_kv, from_stage, inputs, threads, counters,
                             tier, rope);
}

PruningParams small_params(bool head_reduction) {
  PruningParams p;
  p.stages = {{64, 4, 1024}, {16, 2, 256}, {4, 1, 64}};
  p.sinks = 32;
  p.window = 128;
  p.head_reduction = head_reduction;
  return p;
}

bool same(const ChunkLists& a, const ChunkLists& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t g = 0; g < a.size(); ++g) {
    if (a[g].size() != b[g].size()) return false;
    for (std::size_t i = 0; i < a[g].size(); ++i) {
      if (a[g][i].begin != b[g][i].begin || a[g][i].end != b[g][i].end) return false;
    }
  }
  return true;
}

}  // namespace

struct PruneCase {
  int heads, heads_kv, dim, tokens, count;
  bool head_reduction;
};

const PruneCase kPruneCases[] = {
    {4, 1, 16, 3000, 1, true},    // decode, GQA 4
    {4, 2, 16, 3000, 64, true},   // a full prefill block
    {4, 2, 16, 3001, 64, false},  // one mask per head
    {2, 2, 8, 5003, 32, true},    // tiling not a multiple of the chunk
    {8, 2, 16, 4000, 4, false},   // a short block, GQA 4
    {2, 1, 8, 400, 1, true},      // fewer chunks than any budget
};

TEST_CASE("InfiniteHiP pruning equals a direct transcription of the original on small integer inputs",
          "[hip][infinite][mask]") {
  for (const PruneCase& c : kPruneCases) {
    const Problem pr = make_problem(c.heads, c.heads_kv, c.dim, c.tokens, c.count, small_params(c.head_reduction),
                                    c.tokens * 7 + c.count);
    DYNAMIC_SECTION("H=" << c.heads << "/" << c.heads_kv << " T=" << c.tokens << " queries=" << c.count
                         << " head_reduction=" << c.head_reduction) {
      std::vector<ChunkLists> inputs;
      const auto mine = run_prune(pr, 2, inputs);
      const auto expected = transcribed_prune(pr);
      CHECK(same(mine, expected));
      for (const auto& blocks : mine) {
        CHECK(blocks.size() <= static_cast<std::size_t>(pr.p.stages.back().keep / pr.p.stages.back().chunk));
        for (const Chunk& b : blocks) {
          CHECK(b.begin >= pr.p.sinks);
          CHECK(b.end - b.begin <= pr.p.stages.back().chunk);
          CHECK(b.begin <= pr.first_position - pr.p.scan_window());  // scanned, so before the query's window
        }
      }
    }
  }
}

// Real values: the transcription scores in float64, ours in float32, so a near-tie could in principle rank two chunks
// differently; at these sizes none does, and the kept chunks must agree exactly.
TEST_CASE("InfiniteHiP pruning equals the float64 transcription of the original on real-valued inputs",
          "[hip][infinite][mask]") {
  for (const PruneCase& c : kPruneCases) {
    const Problem pr = make_problem(c.heads, c.heads_kv, c.dim, c.tokens, c.count, small_params(c.head_reduction),
                                    c.tokens * 13 + c.count, Values::normal);
    DYNAMIC_SECTION("H=" << c.heads << "/" << c.heads_kv << " T=" << c.tokens << " queries=" << c.count
                         << " head_reduction=" << c.head_reduction) {
      std::vector<ChunkLists> inputs;
      CHECK(same(run_prune(pr, 2, inputs), transcribed_prune(pr)));
    }
  }
}

TEST_CASE("InfiniteHiP pruning: the default stages on a longer context", "[hip][infinite][mask]") {
  PruningParams p;          // 256/32/8 keeping 32768/8192/2048; sinks 256, window 1024
  p.stages[0].keep = 8192;  // keep fewer chunks than exist so that every stage prunes
  p.stages[1].keep = 2048;
  p.stages[2].keep = 512;
  const Problem pr = make_problem(4, 1, 16, 40000, 1, p, 99);
  std::vector<ChunkLists> inputs;
  engines::hip::MaskCounters counters;
  const auto mine = run_prune(pr, 2, inputs, 0, &counters);
  CHECK(same(mine, transcribed_prune(pr)));
  CHECK(mine[0].size() == 64);
  CHECK(counters.key_rows_read > 0);
}

TEST_CASE("InfiniteHiP pruning restarts from a cached stage input", "[hip][infinite][mask]") {
  const Problem pr = make_problem(4, 2, 16, 3000, 1, small_params(true), 5);
  std::vector<ChunkLists> inputs;
  const auto full = run_prune(pr, 1, inputs);
  REQUIRE(inputs.size() == 3);
  CHECK_FALSE(inputs[1].empty());
  for (int from : {1, 2}) {
    auto cached = inputs;
    CHECK(same(run_prune(pr, 2, cached, from), full));  // same queries: the same mask
  }
  // Another query restarting from the cached second stage keeps only chunks the first stage kept.
  Problem other = make_problem(4, 2, 16, 3000, 1, small_params(true), 6);
  auto cached = inputs;
  const auto partial = run_prune(other, 1, cached, 1);
  for (const Chunk& b : partial[0]) {
    const bool inside = std::any_of(inputs[1][0].begin(), inputs[1][0].end(),
                                    [&](const Chunk& c) { return b.begin >= c.begin && b.end <= c.end; });
    CHECK(inside);
  }
}

TEST_CASE("InfiniteHiP pruning is the same on any number of threads and counts tier accesses",
          "[hip][infinite][mask]") {
  const Problem pr = make_problem(8, 2, 16, 6000, 16, small_params(false), 11);
  std::vector<ChunkLists> a, b;
  engines::hip::MaskCounters one, two;
  engines::OffloadTier tier_one(1000, 32), tier_two(1000, 32);
  CHECK(same(run_prune(pr, 1, a, 0, &one, &tier_one), run_prune(pr, 2, b, 0, &two, &tier_two)));
  CHECK(one.key_rows_read == two.key_rows_read);
  CHECK(tier_one.stats().accesses == one.key_rows_read);
  CHECK(tier_one.stats().hits == tier_two.stats().hits);  // accesses replay in a fixed order
}

TEST_CASE("InfiniteHiP query pooling averages runs of queries", "[hip][infinite][mask]") {
  const std::vector<float> q = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};  // 5 queries of dim 2
  const auto pooled = engines::hip::pool_queries(q.data(), 5, 2, 2);
  CHECK(pooled == std::vector<float>{2, 3, 6, 7, 9, 10});
}

TEST_CASE("InfiniteHiP pruning parameters are checked", "[hip][infinite][mask]") {
  PruningParams p;
  CHECK_NOTHROW(p.validate("x"));
  p.stages[1].chunk = 48;  // does not divide 256
  p.stages[1].keep = 48 * 170;
  CHECK_THROWS_WITH(p.validate("x"), Catch::Contains("stage 1: chunk must divide"));
  p = PruningParams{};
  p.stages[0].keep = 1000;  // not a multiple of 256
  CHECK_THROWS_WITH(p.validate("x"), Catch::Contains("stage 0: kept tokens"));
  p = PruningParams{};
  p.stages.clear();
  CHECK_THROWS_WITH(p.validate("x"), Catch::Contains("at least one"));
}

TEST_CASE("InfiniteHiP pruning on un-rotated inputs equals the transcription at each RoPE mode's positions",
          "[hip][infinite][mask][hip_rope]") {
  using kernels::HipPrunePositions;
  struct Case {
    int heads, heads_kv, dim, tokens, count;
    bool head_reduction;
  };
  const Case cases[] = {{4, 1, 16, 3000, 1, true}, {4, 2, 16, 3001, 64, false}, {2, 2, 16, 5003, 32, true}};
  const kernels::RopeConfig yarn = kernels::RopeConfig::from_hf_json(
      {{"hidden_size", 64},
       {"num_attention_heads", 4},
       {"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 1024}}}});
  for (const Case& c : cases) {
    for (HipPrunePositions mode :
         {HipPrunePositions::real, HipPrunePositions::relative, HipPrunePositions::chunk_indexed}) {
      for (bool scaled : {false, true}) {
        const Problem pr = make_problem(c.heads, c.heads_kv, c.dim, c.tokens, c.count, small_params(c.head_reduction),
                                        c.tokens * 3 + c.count);
        const kernels::RopeConfig config = scaled ? yarn : kernels::RopeConfig::standard_rope(c.dim);
        REQUIRE(config.head_dim == c.dim);
        const TranscribedRope reference{config.frequencies(c.tokens), mode};
        kernels::RopeRotator rotator(reference.freqs, kernels::RopeLayout::neox);
        rotator.reserve(c.tokens);
        const engines::hip::ScanRope rope{&rotator, mode};
        DYNAMIC_SECTION("T=" << c.tokens << " queries=" << c.count << " mode=" << static_cast<int>(mode)
                             << " yarn=" << scaled) {
          std::vector<ChunkLists> inputs;
          const auto mine = run_prune(pr, 2, inputs, 0, nullptr, nullptr, &rope);
          CHECK(same(mine, transcribed_prune(pr, &reference)));
          if (mode != HipPrunePositions::real) CHECK_FALSE(same(mine, transcribed_prune(pr)));  // positions matter
        }
      }
    }
  }
}
