// LongHeads (Lu et al. 2024, arXiv 2402.10685; LuLuLuyi/LongHeads `modeling_longheads/modeling_llama.py`): each
// query head attends the chunks it picks, so that no head attends more than `chunks` x `chunk_size` keys.
//
// The context is cut into chunks of chunk_size tokens. A complete chunk gets a representative key: the chunk's
// queries attend the chunk's keys (every pair, no mask), the outputs are averaged into one vector u, and u attends
// the chunk's keys with the keys as values: rep = softmax(u K^T / sqrt(d)) K. Query p (at or past
// begin_selective_length, in chunk c = p / chunk_size) attends the first chunk, chunk c - 1, its own chunk up to
// itself, and the chunks - 3 chunks among 1 .. c - 2 with the largest q.rep; a query with at most `chunks` chunks
// behind it, or before begin_selective_length, attends every key.
//
// The queries are those the session was given; a chunk with a position whose query it never saw (a prompt appended
// without its queries, as attention-level problems do) uses its keys in their place, for every head of the KV head.
//
// Simplified here (engines/BASELINES.md): RoPE positions are not remapped. The original rotates a chunk's queries and
// keys to chunk-local positions for its representative, scores with the un-rotated query, and places each head's
// selected keys contiguously so that the window fits the trained length; here queries and keys are used as given
// (rotated at their real positions in a model).
#include <algorithm>
#include <cmath>
#include <map>

#include "core/timer.h"
#include "engines/baseline.h"

namespace ctxbench::engines {
namespace {

struct LongHeadsParams {
  int chunk_size = 256;
  int chunks = 16;
  int begin_selective_length = 4096;
  int threads = 0;

  static ParamFields<LongHeadsParams> fields() {
    using P = LongHeadsParams;
    return with_threads(
        ParamFields<P>()
            .field(&P::chunk_size, "chunk_size", "tokens per chunk (window_size)", {.min = 1})
            .field(&P::chunks, "chunks",
                   "chunks each query head attends (atten_length / chunk_size): the first, the previous, its own and "
                   "chunks - 3 chosen",
                   {.min = 3})
            .field(&P::begin_selective_length, "begin_selective_length",
                   "queries at positions below this attend every key", {.min = 0}));
  }

  // The ranges query `position` attends, `score(j)` being its q.rep of complete chunk j.
  template <class Score>
  std::vector<KeyRange> select(int position, Score score) const {
    const int own = position / chunk_size;
    if (position < begin_selective_length || own + 1 <= chunks) return {{0, position + 1}};
    std::vector<float> scores(own - 2);  // chunks 1 .. own - 2
    for (int j = 1; j <= own - 2; ++j) scores[j - 1] = score(j);
    std::vector<KeyRange> ranges = {chunk(0), chunk(own - 1), {own * chunk_size, position + 1}};
    for (const int j : top_k(scores, chunks - 3)) ranges.push_back(chunk(j + 1));
    return merge_ranges(std::move(ranges));
  }

  KeyRange chunk(int j) const { return {j * chunk_size, (j + 1) * chunk_size}; }
};

// softmax(scale x K^T) W over rows [begin, end) of K and W; accumulates into out (dim doubles).
void attend_rows(const double* x, const WideKeys& keys, const WideKeys& weighted, int begin, int end, int dim,
                 double scale, double* out) {
  std::vector<double> logits(end - begin);
  for (int t = begin; t < end; ++t) {
    double s = 0.0;
    for (int c = 0; c < dim; ++c) s += x[c] * keys.row(t)[c];
    logits[t - begin] = scale * s;
  }
  const double top = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  std::vector<double> acc(dim, 0.0);
  for (int t = begin; t < end; ++t) {
    const double w = std::exp(logits[t - begin] - top);
    sum += w;
    for (int c = 0; c < dim; ++c) acc[c] += w * weighted.row(t)[c];
  }
  for (int c = 0; c < dim; ++c) out[c] += acc[c] / sum;
}

class LongHeadsSession final : public LoggedSession {
 public:
  LongHeadsSession(const HeadLayout& layout, const LongHeadsParams& params)
      : LoggedSession(layout), params_(params), cache_(layout), representatives_(layout.heads_q) {}

  void append(const float* k, const float* v, int n) override { cache_.append(k, v, n); }

  void attend(const float* q, int n, Phase, float* out) override {
    Stopwatch select;
    const int first = cache_.tokens() - n;
    const int dim = layout_.head_dim;
    keep_queries(q, n, first);
    represent_complete_chunks();
    log_.begin(layout_.heads_q, n, first, 1);
    std::uint64_t scored = 0;
    for (int h = 0; h < layout_.heads_q; ++h) {
      const std::vector<double>& reps = representatives_[h];
      for (int i = 0; i < n; ++i) {
        const float* query = query_row(q, h, n, i, dim);
        log_.set(h, i, params_.select(first + i, [&](int j) {
          ++scored;
          double s = 0.0;
          for (int c = 0; c < dim; ++c) s += query[c] * reps[static_cast<std::size_t>(j) * dim + c];
          return static_cast<float>(s);
        }));
      }
    }
    stats_.mask_seconds += select.seconds();
    // Each representative scored is one key row read.
    stats_.kv_bytes_read += scored * key_bytes(layout_) / 2;
    attend_logged(q, n, cache_, out, params_.threads);
  }

 private:
  // Queries of positions whose chunk has no representative yet, [heads_q][dim] per position.
  void keep_queries(const float* q, int n, int first) {
    const int dim = layout_.head_dim;
    for (int i = 0; i < n; ++i) {
      std::vector<float>& rows = queries_[first + i];
      rows.resize(static_cast<std::size_t>(layout_.heads_q) * dim);
      for (int h = 0; h < layout_.heads_q; ++h) std::copy_n(query_row(q, h, n, i, dim), dim, &rows[h * dim]);
    }
  }

  void represent_complete_chunks() {
    const int complete = cache_.tokens() / params_.chunk_size;
    for (int j = static_cast<int>(representatives_[0].size()) / layout_.head_dim; j < complete; ++j) {
      const int begin = j * params_.chunk_size, end = begin + params_.chunk_size;
      const bool queried = count_queried(begin, end) == params_.chunk_size;
      for (int g = 0; g < layout_.heads_kv; ++g) {
        const WideKeys keys(cache_.keys(), g, end, begin), values(cache_.values(), g, end, begin);
        std::vector<double> rep;
        for (int h = g * group(); h < (g + 1) * group(); ++h) {
          if (queried || rep.empty()) rep = representative(keys, values, begin, end, queried ? h : -1);
          representatives_[h].insert(representatives_[h].end(), rep.begin(), rep.end());
        }
      }
      queries_.erase(queries_.begin(), queries_.lower_bound(end));
    }
  }

  int count_queried(int begin, int end) const {
    return static_cast<int>(std::distance(queries_.lower_bound(begin), queries_.lower_bound(end)));
  }

  // The chunk's queries of head h (its keys when h is -1: the session did not see them) attend its keys; their
  // outputs' mean u attends the keys with the keys as values.
  std::vector<double> representative(const WideKeys& keys, const WideKeys& values, int begin, int end, int h) const {
    const int dim = layout_.head_dim;
    const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
    std::vector<double> summary(dim, 0.0), query(dim);
    for (int t = begin; t < end; ++t) {
      const float* row = h < 0 ? keys.row(t) : &queries_.at(t)[static_cast<std::size_t>(h) * dim];
      std::copy_n(row, dim, query.begin());
      attend_rows(query.data(), keys, values, begin, end, dim, scale, summary.data());
    }
    for (double& x : summary) x /= params_.chunk_size;
    std::vector<double> rep(dim, 0.0);
    attend_rows(summary.data(), keys, keys, begin, end, dim, scale, rep.data());
    return rep;
  }

  LongHeadsParams params_;
  KvCache cache_;
  std::map<int, std::vector<float>> queries_;         // by position
  std::vector<std::vector<double>> representatives_;  // [query head][chunk * dim + i]
};

const RegisterEngine registration{declared_engine<LongHeadsSession, LongHeadsParams>({
    .name = "longheads",
    .description = "LongHeads: each query head attends the first, previous and own chunk and its top chunks by "
                   "q.representative (attention-pooled chunk keys); positions not remapped; full cache kept",
    .policy = KvPolicy::masks,
    .test_params = Json{{"chunk_size", 16}, {"chunks", 4}, {"begin_selective_length", 64}},
    .exact_params =
        [](int tokens) {
          return Json{{"chunk_size", 16}, {"chunks", std::max(3, (tokens + 15) / 16)}, {"begin_selective_length", 0}};
        },
    .decode_matches_prefill = true,
})};

}  // namespace
}  // namespace ctxbench::engines
