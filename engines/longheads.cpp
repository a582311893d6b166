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
// Positions (needs un-rotated queries and keys, which only a model runtime hands over: Engine::open_unrotated): a
// chunk's queries and keys are rotated to chunk-local positions (t mod chunk_size) for its representative, the
// query scores un-rotated, and each query row's attended keys are numbered contiguously (the i-th at position i,
// the query at its own key's), so no distance exceeds the keys attended. At the attention level keys arrive
// rotated (or without RoPE) and are used as given. engines/BASELINES.md lists what differs from the original.
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

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

// sum_t softmax_t(scale x.keys[t]) values[t] over `count` contiguous rows of `dim`, added to out.
void pool_rows(const double* x, const float* keys, const float* values, int count, int dim, double scale, double* out) {
  std::vector<double> logits(count);
  for (int t = 0; t < count; ++t) {
    double s = 0.0;
    for (int c = 0; c < dim; ++c) s += x[c] * keys[static_cast<std::size_t>(t) * dim + c];
    logits[t] = scale * s;
  }
  const double top = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  std::vector<double> acc(dim, 0.0);
  for (int t = 0; t < count; ++t) {
    const double w = std::exp(logits[t] - top);
    sum += w;
    for (int c = 0; c < dim; ++c) acc[c] += w * values[static_cast<std::size_t>(t) * dim + c];
  }
  for (int c = 0; c < dim; ++c) out[c] += acc[c] / sum;
}

class LongHeadsSession final : public LoggedSession {
 public:
  // `rope` is set when the session is fed un-rotated queries and keys (Engine::open_unrotated).
  LongHeadsSession(const HeadLayout& layout, const LongHeadsParams& params, const RopeSpec* rope)
      : LoggedSession(layout), params_(params), cache_(layout), representatives_(layout.heads_q) {
    if (rope) rotator_.emplace(rope->frequencies, rope->layout);
  }

  void append(const float* k, const float* v, int n) override { cache_.append(k, v, n); }

  void attend(const float* q, int n, Phase, float* out) override {
    Stopwatch select;
    const int first = cache_.tokens() - n;
    const int dim = layout_.head_dim;
    if (rotator_) rotator_->reserve(std::max(cache_.tokens(), params_.chunk_size));
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
    if (!rotator_) return attend_logged(q, n, cache_, out, params_.threads);
    attend_contiguous(q, n, out);
    finish_call(cache_.resident_bytes());
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
        const auto keys = chunk_rows(WideKeys(cache_.keys(), g, end, begin), begin, true);
        const auto values = chunk_rows(WideKeys(cache_.values(), g, end, begin), begin, false);
        std::vector<double> rep;
        for (int h = g * group(); h < (g + 1) * group(); ++h) {
          if (queried || rep.empty()) rep = representative(queried ? chunk_queries(h, begin) : keys, keys, values);
          representatives_[h].insert(representatives_[h].end(), rep.begin(), rep.end());
        }
      }
      queries_.erase(queries_.begin(), queries_.lower_bound(end));
    }
  }

  int count_queried(int begin, int end) const {
    return static_cast<int>(std::distance(queries_.lower_bound(begin), queries_.lower_bound(end)));
  }

  // The chunk's rows from `begin` as fp32, rotated to their chunk-local positions when the session applies RoPE.
  std::vector<float> chunk_rows(const WideKeys& rows, int begin, bool rotate) const {
    const int dim = layout_.head_dim;
    std::vector<float> out(static_cast<std::size_t>(params_.chunk_size) * dim);
    for (int t = 0; t < params_.chunk_size; ++t) {
      std::copy_n(rows.row(begin + t), dim, &out[static_cast<std::size_t>(t) * dim]);
      if (rotate && rotator_) rotate_to(&out[static_cast<std::size_t>(t) * dim], t);
    }
    return out;
  }

  std::vector<float> chunk_queries(int h, int begin) const {
    const int dim = layout_.head_dim;
    std::vector<float> out(static_cast<std::size_t>(params_.chunk_size) * dim);
    for (int t = 0; t < params_.chunk_size; ++t) {
      std::copy_n(&queries_.at(begin + t)[static_cast<std::size_t>(h) * dim], dim,
                  &out[static_cast<std::size_t>(t) * dim]);
      if (rotator_) rotate_to(&out[static_cast<std::size_t>(t) * dim], t);
    }
    return out;
  }

  // The chunk's queries attend its keys (no mask); their outputs' mean u attends the keys with the keys as values.
  std::vector<double> representative(const std::vector<float>& queries, const std::vector<float>& keys,
                                     const std::vector<float>& values) const {
    const int dim = layout_.head_dim, size = params_.chunk_size;
    const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
    std::vector<double> summary(dim, 0.0), query(dim);
    for (int t = 0; t < size; ++t) {
      std::copy_n(&queries[static_cast<std::size_t>(t) * dim], dim, query.begin());
      pool_rows(query.data(), keys.data(), values.data(), size, dim, scale, summary.data());
    }
    for (double& x : summary) x /= size;
    std::vector<double> rep(dim, 0.0);
    pool_rows(summary.data(), keys.data(), keys.data(), size, dim, scale, rep.data());
    return rep;
  }

  // Positions used here are below the context or the chunk size (reserved at each call).
  void rotate_to(float* row, int position) const { rotator_->rotate(row, position); }

  // Each query row over its logged keys numbered contiguously: the i-th key attended sits at position i and the
  // query at the last one's (its own key's), so no distance exceeds the keys attended. A row attending every key
  // keeps the real positions.
  void attend_contiguous(const float* q, int n, float* out) {
    Stopwatch watch;
    const int dim = layout_.head_dim;
    std::vector<float> query(dim), key(dim), logits;
    for (int g = 0; g < layout_.heads_kv; ++g) {
      const WideKeys keys(cache_.keys(), g, cache_.tokens()), values(cache_.values(), g, cache_.tokens());
      for (int h = g * group(); h < (g + 1) * group(); ++h) {
        for (int i = 0; i < n; ++i) {
          std::vector<int> positions;
          for (const KeyRange& r : log_.attended(h, i)) {
            for (int t = r.begin; t < r.end; ++t) positions.push_back(t);
          }
          const int count = static_cast<int>(positions.size());
          std::copy_n(query_row(q, h, n, i, dim), dim, query.begin());
          rotate_to(query.data(), count - 1);
          logits.resize(count);
          for (int j = 0; j < count; ++j) {
            std::copy_n(keys.row(positions[j]), dim, key.begin());
            rotate_to(key.data(), j);
            logits[j] = scale() * dot(query.data(), key.data(), dim);
          }
          const float top = *std::max_element(logits.begin(), logits.end());
          float* row_out = out + (static_cast<std::size_t>(h) * n + i) * dim;
          std::fill_n(row_out, dim, 0.0f);
          float sum = 0.0f;
          for (int j = 0; j < count; ++j) {
            const float w = std::exp(logits[j] - top);
            sum += w;
            for (int c = 0; c < dim; ++c) row_out[c] += w * values.row(positions[j])[c];
          }
          for (int c = 0; c < dim; ++c) row_out[c] /= sum;
        }
      }
    }
    stats_.attention_seconds += watch.seconds();
  }

  LongHeadsParams params_;
  KvCache cache_;
  std::map<int, std::vector<float>> queries_;         // by position
  std::vector<std::vector<double>> representatives_;  // [query head][chunk * dim + i]
  std::optional<kernels::RopeRotator> rotator_;
};

class LongHeadsEngine final : public Engine {
 public:
  explicit LongHeadsEngine(LongHeadsParams params) : params_(params) {}
  std::unique_ptr<Session> open(const HeadLayout& layout) const override {
    return std::make_unique<LongHeadsSession>(layout, params_, nullptr);
  }
  bool wants_unrotated_kv() const override { return true; }
  std::unique_ptr<Session> open_unrotated(const HeadLayout& layout, const RopeSpec& rope) const override {
    return std::make_unique<LongHeadsSession>(layout, params_, &rope);
  }

 private:
  LongHeadsParams params_;
};

const RegisterEngine registration{declared_engine<LongHeadsEngine, LongHeadsParams>({
    .name = "longheads",
    .description =
        "LongHeads: each query head attends the first, previous and own chunk and its top chunks by "
        "q.representative (attention-pooled chunk keys), its keys at contiguous positions in a model; full cache kept",
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
