#include "model/windowed_session.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace ctxbench::model {

using kernels::KeyRange;

WindowedSession::WindowedSession(std::unique_ptr<engines::Session> inner, const engines::HeadLayout& layout,
                                 std::int64_t window)
    : inner_(std::move(inner)), layout_(layout), window_(window) {
  if (window < 1) throw std::invalid_argument("a sliding window needs at least one key");
}

void WindowedSession::append(const float* k, const float* v, int n) {
  inner_->append(k, v, n);
  const int hd = layout_.head_dim;
  for (int t = 0; t < n; ++t) {
    std::vector<float> key_row(static_cast<std::size_t>(layout_.heads_kv) * hd), value_row(key_row.size());
    for (int h = 0; h < layout_.heads_kv; ++h) {
      const std::size_t src = (static_cast<std::size_t>(h) * n + t) * hd;
      std::copy_n(k + src, hd, key_row.begin() + static_cast<std::ptrdiff_t>(h) * hd);
      std::copy_n(v + src, hd, value_row.begin() + static_cast<std::ptrdiff_t>(h) * hd);
    }
    keys_.push_back(std::move(key_row));
    values_.push_back(std::move(value_row));
  }
  length_ += n;
}

void WindowedSession::attend(const float* q, int n, engines::Phase phase, float* out) {
  inner_->attend(q, n, phase, out);
  last_queries_ = n;
  const int hd = layout_.head_dim;
  for (int h = 0; h < layout_.heads_q; ++h) {
    for (int i = 0; i < n; ++i) {
      const std::int64_t position = length_ - n + i;
      if (position < window_) continue;  // the whole causal past is inside the window
      const std::size_t row = (static_cast<std::size_t>(h) * n + i) * hd;
      attend_row(q + row, h, in_window(inner_->attended(h, i), position), out + row);
    }
  }
  // The next call's first query sits at length_ or later and needs no key before length_ - window + 1.
  while (first_kept_ < length_ - window_ + 1) {
    keys_.pop_front(), values_.pop_front();
    ++first_kept_;
  }
}

std::vector<KeyRange> WindowedSession::attended(int head, int query) const {
  return in_window(inner_->attended(head, query), length_ - last_queries_ + query);
}

std::vector<KeyRange> WindowedSession::in_window(const std::vector<KeyRange>& ranges, std::int64_t query) const {
  const auto lowest = static_cast<int>(std::max<std::int64_t>(0, query - window_ + 1));
  std::vector<KeyRange> out;
  for (const KeyRange& r : ranges) {
    const KeyRange clipped{std::max(r.begin, lowest), std::min(r.end, static_cast<int>(query) + 1)};
    if (clipped.begin < clipped.end) out.push_back(clipped);
  }
  return out;
}

const float* WindowedSession::key(std::int64_t position, int kv_head) const {
  return keys_[static_cast<std::size_t>(position - first_kept_)].data() +
         static_cast<std::size_t>(kv_head) * layout_.head_dim;
}

const float* WindowedSession::value(std::int64_t position, int kv_head) const {
  return values_[static_cast<std::size_t>(position - first_kept_)].data() +
         static_cast<std::size_t>(kv_head) * layout_.head_dim;
}

// Softmax attention of one query row over `keys`, in double, scaled by 1/sqrt(head_dim) as the engines are.
void WindowedSession::attend_row(const float* q, int head, const std::vector<KeyRange>& keys, float* out) const {
  const int hd = layout_.head_dim;
  const int kv_head = head / (layout_.heads_q / layout_.heads_kv);
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  std::vector<double> scores, sum(hd, 0.0);
  double top = -INFINITY;
  for (const KeyRange& r : keys) {
    for (int p = r.begin; p < r.end; ++p) {
      const float* k = key(p, kv_head);
      double dot = 0;
      for (int d = 0; d < hd; ++d) dot += static_cast<double>(q[d]) * k[d];
      scores.push_back(dot * scale);
      top = std::max(top, scores.back());
    }
  }
  double total = 0;
  std::size_t next = 0;
  for (const KeyRange& r : keys) {
    for (int p = r.begin; p < r.end; ++p) {
      const double weight = std::exp(scores[next++] - top);
      total += weight;
      const float* v = value(p, kv_head);
      for (int d = 0; d < hd; ++d) sum[d] += weight * v[d];
    }
  }
  for (int d = 0; d < hd; ++d) out[d] = total > 0 ? static_cast<float>(sum[d] / total) : 0.0f;
}

}  // namespace ctxbench::model
