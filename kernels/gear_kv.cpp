#include "kernels/gear_kv.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <utility>

#include "core/random.h"

namespace ctxbench::kernels {
namespace {

// A segment's outliers (flags over [tokens][dim]) and the segment with each replaced by its row's mean. Rows run
// along one channel over the tokens (keys) or along one token over the channels (values).
struct FilteredSegment {
  std::vector<float> cleaned;
  std::vector<char> outlier;
};

FilteredSegment filter_outliers(const float* rows, int tokens, int dim, bool along_channels, double sparsity) {
  const std::size_t size = static_cast<std::size_t>(tokens) * dim;
  FilteredSegment filtered{std::vector<float>(rows, rows + size), std::vector<char>(size, 0)};
  const int row_count = along_channels ? dim : tokens, length = along_channels ? tokens : dim;
  const std::size_t stride = along_channels ? dim : 1;
  const int side = static_cast<int>(length * sparsity / 2);  // the original's int(numel * left / 2) per row
  if (side == 0) return filtered;
  std::vector<int> order(length);
  for (int row = 0; row < row_count; ++row) {
    const std::size_t start = along_channels ? row : static_cast<std::size_t>(row) * dim;
    const auto at = [&](int i) { return rows[start + i * stride]; };
    double sum = 0.0;
    for (int i = 0; i < length; ++i) sum += at(i);
    const float mean = static_cast<float>(sum / length);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return at(a) < at(b) || (at(a) == at(b) && a < b); });
    for (int k = 0; k < length; ++k) {
      if (k == side) k = length - side;  // the `side` smallest, then the `side` largest
      const std::size_t index = start + order[k] * stride;
      filtered.outlier[index] = 1;
      filtered.cleaned[index] = mean;
    }
  }
  return filtered;
}

// The columns of a [rows][cols] row-major matrix made orthonormal (modified Gram-Schmidt, two passes); a column
// (numerically) in the span of the earlier ones becomes zero, so Q Q^T stays a projection.
void orthonormalize(std::vector<double>& a, int rows, int cols) {
  for (int j = 0; j < cols; ++j) {
    const auto column_dot = [&](int x, int y) {
      double sum = 0.0;
      for (int i = 0; i < rows; ++i)
        sum += a[static_cast<std::size_t>(i) * cols + x] * a[static_cast<std::size_t>(i) * cols + y];
      return sum;
    };
    const double before = std::sqrt(column_dot(j, j));
    for (int pass = 0; pass < 2; ++pass) {
      for (int k = 0; k < j; ++k) {
        const double projection = column_dot(k, j);
        for (int i = 0; i < rows; ++i)
          a[static_cast<std::size_t>(i) * cols + j] -= projection * a[static_cast<std::size_t>(i) * cols + k];
      }
    }
    const double after = std::sqrt(column_dot(j, j));
    const double factor = after > 1e-10 * before && after > 0.0 ? 1.0 / after : 0.0;
    for (int i = 0; i < rows; ++i) a[static_cast<std::size_t>(i) * cols + j] *= factor;
  }
}

// out [n][r] = m [n][k] (transposed: [k][n]) times b [k][r].
void multiply(const std::vector<double>& m, bool transposed, int n, int k, const std::vector<double>& b, int r,
              std::vector<double>& out) {
  out.assign(static_cast<std::size_t>(n) * r, 0.0);
  for (int i = 0; i < n; ++i) {
    for (int l = 0; l < k; ++l) {
      const double x = transposed ? m[static_cast<std::size_t>(l) * n + i] : m[static_cast<std::size_t>(i) * k + l];
      if (x == 0.0) continue;
      for (int j = 0; j < r; ++j)
        out[static_cast<std::size_t>(i) * r + j] += x * b[static_cast<std::size_t>(l) * r + j];
    }
  }
}

}  // namespace

std::uint64_t power_iteration_seed(int first_token, bool values) {
  return (static_cast<std::uint64_t>(first_token) << 1) | (values ? 1u : 0u);
}

ErrorCorrection::ErrorCorrection(int dim, DType stored) : dim_(dim), stored_(stored) {}

void ErrorCorrection::add_segment(const std::vector<double>& error, int tokens, const std::vector<Outlier>& outliers,
                                  int rank, int iterations, std::uint64_t seed) {
  if (static_cast<std::uint64_t>(tokens_ + tokens) * dim_ > std::numeric_limits<std::uint32_t>::max()) {
    throw std::length_error("GEAR: tokens x head_dim of one KV head exceed 32-bit outlier indices");
  }
  const int r = std::max(0, std::min({rank, tokens, dim_}));
  Segment segment{tokens_, tokens, r, {}, {}};
  if (r > 0) {
    // P_0 uniform in [0, 1) as torch.rand, column by column. P is made orthonormal in every round, not only the
    // last as in the original: the same subspace (each round multiplies by an invertible matrix on the right),
    // without the growth of (E^T E)^k.
    Rng rng(seed);
    std::vector<double> p(static_cast<std::size_t>(dim_) * r), q;
    for (int j = 0; j < r; ++j)
      for (int i = 0; i < dim_; ++i) p[static_cast<std::size_t>(i) * r + j] = rng.uniform();
    for (int round = 0; round < iterations; ++round) {
      orthonormalize(p, dim_, r);
      multiply(error, false, tokens, dim_, p, r, q);  // Q = E P
      if (round == iterations - 1) orthonormalize(q, tokens, r);
      multiply(error, true, dim_, tokens, q, r, p);  // P = E^T Q
    }
    for (double x : q) segment.token_factors.push_back(round_to(stored_, static_cast<float>(x)));
    for (double x : p) segment.channel_factors.push_back(round_to(stored_, static_cast<float>(x)));
  }
  segments_.push_back(std::move(segment));
  tokens_ += tokens;
  std::vector<std::pair<std::uint32_t, float>> entries;
  for (const Outlier& o : outliers) {
    const int token = segments_.back().first + o.token;
    const double correction = o.exact - o.dequantized - low_rank(token, o.channel);
    entries.emplace_back(static_cast<std::uint32_t>(token) * dim_ + o.channel, static_cast<float>(correction));
  }
  std::sort(entries.begin(), entries.end());
  for (const auto& [index, correction] : entries) {
    sparse_index_.push_back(index);
    sparse_correction_.push_back(correction);
  }
}

void ErrorCorrection::add_logits(const float* q, float scale, float* logits) const {
  std::vector<float> projected;  // P^T q
  for (const Segment& s : segments_) {
    if (s.rank == 0) continue;
    projected.assign(s.rank, 0.0f);
    for (int c = 0; c < dim_; ++c)
      for (int j = 0; j < s.rank; ++j)
        projected[j] += s.channel_factors[static_cast<std::size_t>(c) * s.rank + j] * q[c];
    for (int t = 0; t < s.tokens; ++t) {
      const float* factors = s.token_factors.data() + static_cast<std::size_t>(t) * s.rank;
      float sum = 0.0f;
      for (int j = 0; j < s.rank; ++j) sum += factors[j] * projected[j];
      logits[s.first + t] += scale * sum;
    }
  }
  for (std::size_t k = 0; k < sparse_index_.size(); ++k)
    logits[sparse_index_[k] / dim_] += scale * q[sparse_index_[k] % dim_] * sparse_correction_[k];
}

void ErrorCorrection::accumulate(const float* weights, float* out) const {
  std::vector<float> mixed;  // Q^T w
  for (const Segment& s : segments_) {
    if (s.rank == 0) continue;
    mixed.assign(s.rank, 0.0f);
    for (int t = 0; t < s.tokens; ++t) {
      const float w = weights[s.first + t];
      for (int j = 0; j < s.rank; ++j) mixed[j] += w * s.token_factors[static_cast<std::size_t>(t) * s.rank + j];
    }
    for (int c = 0; c < dim_; ++c) {
      const float* factors = s.channel_factors.data() + static_cast<std::size_t>(c) * s.rank;
      for (int j = 0; j < s.rank; ++j) out[c] += factors[j] * mixed[j];
    }
  }
  for (std::size_t k = 0; k < sparse_index_.size(); ++k)
    out[sparse_index_[k] % dim_] += weights[sparse_index_[k] / dim_] * sparse_correction_[k];
}

const ErrorCorrection::Segment& ErrorCorrection::segment_of(int token) const {
  const auto after =
      std::upper_bound(segments_.begin(), segments_.end(), token, [](int t, const Segment& s) { return t < s.first; });
  return *(after - 1);
}

double ErrorCorrection::low_rank(int token, int channel) const {
  const Segment& s = segment_of(token);
  double sum = 0.0;
  for (int j = 0; j < s.rank; ++j) {
    sum += static_cast<double>(s.token_factors[static_cast<std::size_t>(token - s.first) * s.rank + j]) *
           s.channel_factors[static_cast<std::size_t>(channel) * s.rank + j];
  }
  return sum;
}

bool ErrorCorrection::is_outlier(int token, int channel, float* correction) const {
  const std::uint32_t index = static_cast<std::uint32_t>(token) * dim_ + channel;
  const auto found = std::lower_bound(sparse_index_.begin(), sparse_index_.end(), index);
  if (found == sparse_index_.end() || *found != index) return false;
  if (correction) *correction = sparse_correction_[found - sparse_index_.begin()];
  return true;
}

int ErrorCorrection::rank_of(int token) const { return segment_of(token).rank; }

std::uint64_t ErrorCorrection::bytes() const {
  const std::uint64_t element = dtype_bytes(stored_);
  std::uint64_t factors = 0;
  for (const Segment& s : segments_) factors += static_cast<std::uint64_t>(s.rank) * (s.tokens + dim_);
  return factors * element + sparse_index_.size() * (element + sizeof(std::uint32_t));
}

namespace {

// Fits `correction` to a segment of `rows` whose (cleaned) rows were quantized as `dequantized(t, c)` gives.
template <class Dequantized>
void fit_correction(const float* rows, int tokens, int dim, const FilteredSegment& filtered,
                    const Dequantized& dequantized, ErrorCorrection& correction, int rank, int iterations,
                    std::uint64_t seed) {
  std::vector<double> error(static_cast<std::size_t>(tokens) * dim, 0.0);
  std::vector<ErrorCorrection::Outlier> outliers;
  for (int t = 0; t < tokens; ++t) {
    for (int c = 0; c < dim; ++c) {
      const std::size_t i = static_cast<std::size_t>(t) * dim + c;
      const double quantized = dequantized(t, c);
      if (filtered.outlier[i]) {
        outliers.push_back({t, c, rows[i], quantized});
      } else {
        error[i] = rows[i] - quantized;
      }
    }
  }
  correction.add_segment(error, tokens, outliers, rank, iterations, seed);
}

}  // namespace

GearKeys::GearKeys(int dim, GearSpec spec)
    : dim_(dim), spec_(spec), quantized_(dim, spec.quant), correction_(dim, spec.quant.meta) {}

void GearKeys::add_segment(const float* rows, int tokens, int rank) {
  if (tokens % spec_.quant.group != 0) throw std::invalid_argument("GEAR keys: a segment is whole quantization groups");
  const int first = this->tokens();
  const FilteredSegment filtered = filter_outliers(rows, tokens, dim_, true, spec_.sparsity);
  for (int block = 0; block < tokens; block += spec_.quant.group)
    quantized_.add_block(filtered.cleaned.data() + static_cast<std::size_t>(block) * dim_);
  fit_correction(
      rows, tokens, dim_, filtered, [&](int t, int c) { return quantized_.dequantized(first + t, c); }, correction_,
      rank, spec_.iterations, power_iteration_seed(first, false));
}

void GearKeys::logits(const float* q, float scale, float* out) const {
  quantized_.logits(q, scale, out);
  correction_.add_logits(q, scale, out);
}

double GearKeys::reconstructed(int token, int channel) const {
  float correction = 0.0f;
  correction_.is_outlier(token, channel, &correction);
  return quantized_.dequantized(token, channel) + correction_.low_rank(token, channel) + correction;
}

GearValues::GearValues(int dim, GearSpec spec)
    : dim_(dim), spec_(spec), quantized_(dim, spec.quant), correction_(dim, spec.quant.meta) {}

void GearValues::add_segment(const float* rows, int tokens, int rank) {
  const int first = this->tokens();
  const FilteredSegment filtered = filter_outliers(rows, tokens, dim_, false, spec_.sparsity);
  for (int t = 0; t < tokens; ++t) quantized_.add_token(filtered.cleaned.data() + static_cast<std::size_t>(t) * dim_);
  fit_correction(
      rows, tokens, dim_, filtered, [&](int t, int c) { return quantized_.dequantized(first + t, c); }, correction_,
      rank, spec_.iterations, power_iteration_seed(first, true));
}

void GearValues::accumulate(const float* weights, float* out) const {
  quantized_.accumulate(weights, out);
  correction_.accumulate(weights, out);
}

double GearValues::reconstructed(int token, int channel) const {
  float correction = 0.0f;
  correction_.is_outlier(token, channel, &correction);
  return quantized_.dequantized(token, channel) + correction_.low_rank(token, channel) + correction;
}

}  // namespace ctxbench::kernels
