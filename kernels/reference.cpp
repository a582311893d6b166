#include "kernels/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ctxbench::kernels {
namespace {

std::vector<bool> allowed_keys(int keys, int visible_end, const SparsePlan* plan, int head, int token, int tokens) {
  std::vector<bool> allowed(keys, false);
  if (!plan) {
    std::fill(allowed.begin(), allowed.begin() + visible_end, true);
    return allowed;
  }
  for (const KeyRange& r : plan->at(head, token / plan->query_block, tokens)) {
    for (int t = std::max(0, r.begin); t < std::min(r.end, visible_end); ++t) allowed[t] = true;
  }
  return allowed;
}

// Rows [tokens][dim] of one head as floats, element by element (exact and independent of the kernels' SIMD
// widening), read once per head rather than once per query.
std::vector<float> widened_head(const KvView& kv, int head) {
  std::vector<float> rows(static_cast<std::size_t>(kv.tokens) * kv.dim);
  for (int t = 0; t < kv.tokens; ++t) {
    for (int i = 0; i < kv.dim; ++i) rows[static_cast<std::size_t>(t) * kv.dim + i] = kv.load(head, t, i);
  }
  return rows;
}

const float* query_row(const QueryView& q, int head, int token) {
  return q.data + (static_cast<std::size_t>(head) * q.tokens + token) * q.dim;
}

double dot(const float* query, const std::vector<float>& keys, int key, int dim) {
  const float* k = keys.data() + static_cast<std::size_t>(key) * dim;
  double sum = 0.0;
  for (int i = 0; i < dim; ++i) sum += static_cast<double>(query[i]) * k[i];
  return sum;
}

}  // namespace

ReferenceResult reference_attention(const QueryView& q, const KvView& k, const KvView& v, const CausalLayout& layout,
                                    const SparsePlan* plan) {
  check_shapes(q, k, v, layout);
  ReferenceResult result;
  result.out.assign(static_cast<std::size_t>(q.heads) * q.tokens * q.dim, 0.0);
  result.lse.assign(static_cast<std::size_t>(q.heads) * q.tokens, -std::numeric_limits<double>::infinity());
  const int group = q.heads / k.heads;
  for (int h = 0; h < q.heads; ++h) {
    const auto keys = widened_head(k, h / group);
    const auto values = widened_head(v, h / group);
    for (int t = 0; t < q.tokens; ++t) {
      const auto allowed = allowed_keys(k.tokens, layout.first_query_pos + t + 1, plan, h, t, q.tokens);
      std::vector<double> scores(k.tokens, -std::numeric_limits<double>::infinity());
      double max_score = -std::numeric_limits<double>::infinity();
      for (int key = 0; key < k.tokens; ++key) {
        if (!allowed[key]) continue;
        scores[key] = dot(query_row(q, h, t), keys, key, q.dim) * layout.scale;
        max_score = std::max(max_score, scores[key]);
      }
      if (max_score == -std::numeric_limits<double>::infinity()) continue;
      double sum = 0.0;
      const std::size_t row = static_cast<std::size_t>(h) * q.tokens + t;
      for (int key = 0; key < k.tokens; ++key) {
        if (!allowed[key]) continue;
        const double p = std::exp(scores[key] - max_score);
        sum += p;
        const float* value = values.data() + static_cast<std::size_t>(key) * q.dim;
        for (int i = 0; i < q.dim; ++i) result.out[row * q.dim + i] += p * value[i];
      }
      for (int i = 0; i < q.dim; ++i) result.out[row * q.dim + i] /= sum;
      result.lse[row] = max_score + std::log(sum);
    }
  }
  return result;
}

std::vector<double> reference_probabilities(const QueryView& q, const KvView& k, int head, int token,
                                            const CausalLayout& layout) {
  const int visible = layout.first_query_pos + token + 1;
  const auto keys = widened_head(k, head / (q.heads / k.heads));
  std::vector<double> p(visible);
  double max_score = -std::numeric_limits<double>::infinity();
  for (int key = 0; key < visible; ++key) {
    p[key] = dot(query_row(q, head, token), keys, key, q.dim) * layout.scale;
    max_score = std::max(max_score, p[key]);
  }
  double sum = 0.0;
  for (double& x : p) sum += (x = std::exp(x - max_score));
  for (double& x : p) x /= sum;
  return p;
}

}  // namespace ctxbench::kernels
