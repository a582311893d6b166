#include "engines/infinite_hip_mask.h"

#include <algorithm>
#include <bit>
#include <limits>
#include <numeric>

#include "core/params.h"

namespace ctxbench::engines::hip {
namespace {

constexpr float kNoScore = -std::numeric_limits<float>::infinity();
constexpr int kChunksPerTask = 64;  // chunks one worker scans before taking the next task

int descent_steps(int size) {
  return size <= 2 ? 1 : static_cast<int>(std::bit_width(static_cast<unsigned>(size - 1)));
}

// Scans one stage's chunks for a set of heads and reduces their scores per chunk.
class StageScanner {
 public:
  // `input` is the stage's chunk lists per group (their lengths place chunk-indexed queries).
  StageScanner(const PruningParams& p, const QueryTile& tile, const KeyRows& keys, int heads_kv, int stride,
               const ChunkLists& input, const ScanRope* rope)
      : keys_(keys), group_(tile.heads / heads_kv), limit_(tile.first_position - p.scan_window()), rope_(rope) {
    for (int h = 0; h < tile.heads; ++h) {
      if (!rope) {
        pooled_.push_back(pool_queries(tile.head_queries(h), tile.count, tile.dim, stride));
        continue;
      }
      const kernels::HipScanGeometry geometry{static_cast<std::int64_t>(input[input.size() == 1 ? 0 : h].size()),
                                              p.window, p.stages.front().chunk};
      std::vector<float> rotated(tile.head_queries(h),
                                 tile.head_queries(h) + static_cast<std::size_t>(tile.count) * tile.dim);
      for (int t = 0; t < tile.count; ++t) {
        const std::int64_t position = tile.first_position + t;
        const std::int64_t pooled_first = tile.first_position + t / stride * stride;
        rope->rotator->rotate(rotated.data() + static_cast<std::size_t>(t) * tile.dim,
                              kernels::hip_prune_query_position(rope->positions, position, pooled_first, geometry));
      }
      pooled_.push_back(pool_queries(rotated.data(), tile.count, tile.dim, stride));
    }
    vectors_ = (tile.count + stride - 1) / stride;
  }

  // Max over `heads` of each chunk's descent score, for chunks [begin, end) of `chunks`, into `scores`.
  // Rows read are appended to `rows` (token * heads_kv + kv_head) when it is non-null.
  void scan(const std::vector<Chunk>& chunks, int begin, int end, const std::vector<int>& heads, float* scores,
            std::uint64_t* rows_read, std::vector<std::uint64_t>* rows) const {
    const int n = end - begin;
    std::vector<int> left(n), right(n), steps(n);
    std::vector<float> best(n);
    std::vector<float> rotated(rope_ ? keys_.dim() : 0);
    const int heads_kv = static_cast<int>(pooled_.size()) / group_;
    for (int head : heads) {
      const int kv = head / group_;
      const float* q = pooled_[head].data();
      int max_steps = 0;
      for (int i = 0; i < n; ++i) {
        left[i] = chunks[begin + i].begin;
        right[i] = chunks[begin + i].end;
        best[i] = kNoScore;
        steps[i] = descent_steps(right[i] - left[i]);
        max_steps = std::max(max_steps, steps[i]);
      }
      // Scores `token` as the left or right representative of chunk `chunk` (an index into `chunks`).
      auto score = [&](int token, int chunk, bool right_half) {
        ++*rows_read;
        if (rows) rows->push_back(static_cast<std::uint64_t>(token) * heads_kv + kv);
        if (!rope_) return keys_.max_dot(q, vectors_, kv, token);
        keys_.widen(kv, token, rotated.data());
        rope_->rotator->rotate(rotated.data(),
                               kernels::hip_prune_key_position(rope_->positions, token, chunk, right_half));
        return max_dot<kernels::DType::f32>(q, vectors_, rotated.data(), keys_.dim());
      };
      auto active = [&](int i, int step) { return step < steps[i] && left[i] < right[i] && left[i] <= limit_; };
      constexpr int kAhead = 4;  // rows of a few chunks ahead are fetched while one is scored
      for (int step = 0; step < max_steps; ++step) {
        for (int i = 0; i < n; ++i) {
          if (i + kAhead < n && active(i + kAhead, step)) {
            const int l = left[i + kAhead], c = (l + right[i + kAhead]) / 2;
            keys_.prefetch(kv, (l + c) / 2);
            keys_.prefetch(kv, (c + right[i + kAhead]) / 2);
          }
          if (!active(i, step)) continue;
          const int centre = (left[i] + right[i]) / 2;
          const float score_left = score((left[i] + centre) / 2, begin + i, false);
          const float score_right = score((centre + right[i]) / 2, begin + i, true);
          if (score_left > score_right) {
            right[i] = centre;
            best[i] = std::max(best[i], score_left);
          } else {
            left[i] = centre;
            best[i] = std::max(best[i], score_right);
          }
        }
      }
      for (int i = 0; i < n; ++i) scores[begin + i] = std::max(scores[begin + i], best[i]);
    }
  }

 private:
  const KeyRows& keys_;
  int group_;
  int limit_;  // a chunk is scanned while its left end is at most this position
  const ScanRope* rope_;
  int vectors_ = 0;
  std::vector<std::vector<float>> pooled_;
};

// Indices of the `keep` best scanned chunks (ties to the lower position), in position order.
std::vector<int> top_chunks(const std::vector<Chunk>& chunks, const std::vector<float>& scores, int keep) {
  std::vector<int> order;
  for (int i = 0; i < static_cast<int>(chunks.size()); ++i) {
    if (scores[i] != kNoScore) order.push_back(i);
  }
  auto better = [&](int a, int b) { return scores[a] != scores[b] ? scores[a] > scores[b] : a < b; };
  if (static_cast<int>(order.size()) > keep) {
    std::nth_element(order.begin(), order.begin() + keep, order.end(), better);
    order.resize(keep);
  }
  std::sort(order.begin(), order.end());
  return order;
}

std::vector<Chunk> split(const std::vector<Chunk>& chunks, const std::vector<int>& kept, int size) {
  std::vector<Chunk> out;
  for (int i : kept) {
    for (int b = chunks[i].begin; b < chunks[i].end; b += size) out.push_back({b, std::min(b + size, chunks[i].end)});
  }
  return out;
}

}  // namespace

void PruningParams::validate(const std::string& where) const {
  auto fail = [&](const std::string& what) { throw InputError(where + ": " + what); };
  if (stages.empty()) fail("at least one pruning stage is needed");
  if (query_block < 1) fail("query_block must be >= 1");
  if (sinks < 0 || window < 0) fail("sinks and window must be >= 0");
  for (std::size_t s = 0; s < stages.size(); ++s) {
    const PruningStage& st = stages[s];
    const std::string name = "stage " + std::to_string(s);
    if (st.chunk < 1) fail(name + ": chunk must be >= 1");
    if (st.query_stride < 1 || st.query_stride > query_block) fail(name + ": query stride must be in [1, query_block]");
    if (st.keep < st.chunk || st.keep % st.chunk != 0)
      fail(name + ": kept tokens must be a positive multiple of the chunk");
    if (s > 0 && stages[s - 1].chunk % st.chunk != 0) fail(name + ": chunk must divide the previous stage's chunk");
  }
}

int PruningParams::scan_window() const { return std::max(0, window - stages.front().chunk); }

std::vector<float> pool_queries(const float* queries, int count, int dim, int stride) {
  const int vectors = (count + stride - 1) / stride;
  std::vector<float> out(static_cast<std::size_t>(vectors) * dim, 0.0f);
  for (int v = 0; v < vectors; ++v) {
    const int first = v * stride, last = std::min(count, first + stride);
    float* dst = out.data() + static_cast<std::size_t>(v) * dim;
    for (int t = first; t < last; ++t) {
      for (int i = 0; i < dim; ++i) dst[i] += queries[static_cast<std::size_t>(t) * dim + i];
    }
    for (int i = 0; i < dim; ++i) dst[i] /= static_cast<float>(last - first);
  }
  return out;
}

std::vector<Chunk> initial_chunks(const PruningParams& p, int tokens) {
  const int chunk = p.stages.front().chunk;
  const int count = (std::max(0, tokens - p.sinks - p.window) + chunk - 1) / chunk;
  const int limit = tokens - p.scan_window();
  std::vector<Chunk> out;
  for (int i = 0; i < count; ++i) {
    const int begin = p.sinks + i * chunk;
    out.push_back({begin, std::min(begin + chunk, limit)});
  }
  return out;
}

ChunkLists prune(const PruningParams& p, const QueryTile& tile, const KeyRows& keys, int heads_kv, int from_stage,
                 std::vector<ChunkLists>& stage_inputs, int threads, MaskCounters* counters, OffloadTier* tier,
                 const ScanRope* rope) {
  const int groups = p.head_reduction ? 1 : tile.heads;
  stage_inputs.resize(p.stages.size());
  if (from_stage == 0) stage_inputs[0] = ChunkLists(groups, initial_chunks(p, keys.tokens()));
  ChunkLists kept_chunks;
  for (int s = from_stage; s < static_cast<int>(p.stages.size()); ++s) {
    const PruningStage& stage = p.stages[s];
    const ChunkLists& input = stage_inputs[s];
    const StageScanner scanner(p, tile, keys, heads_kv, stage.query_stride, input, rope);
    std::vector<std::vector<float>> scores(groups);
    struct Task {
      int group, begin, end;
    };
    std::vector<Task> tasks;
    for (int g = 0; g < groups; ++g) {
      const int n = static_cast<int>(input[g].size());
      scores[g].assign(n, kNoScore);
      for (int b = 0; b < n; b += kChunksPerTask) tasks.push_back({g, b, std::min(n, b + kChunksPerTask)});
    }
    std::vector<std::uint64_t> rows_read(tasks.size(), 0);
    std::vector<std::vector<std::uint64_t>> rows(tier ? tasks.size() : 0);
    std::vector<int> all_heads(tile.heads);
    std::iota(all_heads.begin(), all_heads.end(), 0);
    parallel_for(static_cast<int>(tasks.size()), threads, [&](int t) {
      const Task& task = tasks[t];
      const std::vector<int> heads = p.head_reduction ? all_heads : std::vector<int>{task.group};
      scanner.scan(input[task.group], task.begin, task.end, heads, scores[task.group].data(), &rows_read[t],
                   tier ? &rows[t] : nullptr);
    });
    for (std::size_t t = 0; t < tasks.size(); ++t) {
      if (counters) counters->key_rows_read += rows_read[t];
      if (tier) {
        for (std::uint64_t entry : rows[t]) tier->access(entry);
      }
    }
    const bool last = s + 1 == static_cast<int>(p.stages.size());
    ChunkLists next(groups);
    for (int g = 0; g < groups; ++g) {
      const auto top = top_chunks(input[g], scores[g], stage.keep / stage.chunk);
      next[g] = split(input[g], top, last ? stage.chunk : p.stages[s + 1].chunk);
    }
    if (last) {
      kept_chunks = std::move(next);
    } else {
      stage_inputs[s + 1] = std::move(next);
    }
  }
  return kept_chunks;
}

}  // namespace ctxbench::engines::hip
