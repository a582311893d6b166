// GEAR's compressed K/V of one KV head (Kang et al. 2024, arXiv 2403.05527; opengear-project/GEAR): KIVI's
// quantization (kernels/quantized_kv.h: keys per channel over blocks of tokens, values per token over groups of
// channels) plus two corrections of its error, fitted per segment of tokens compressed together:
//  - sparse: in every row the quantization runs along (a key channel over the segment's tokens, a value token over
//    the head's channels) the int(n * sparsity / 2) smallest and as many largest of its n entries are outliers.
//    Before quantizing they are replaced by the row's mean, so they do not stretch the min-max range, and their
//    exact values are kept (the original's gears_channelQ / gears_tokenQ);
//  - low rank: the error E = x - dequantized, 0 at the outliers, is approximated by Q P^T of rank r (at most the
//    segment's tokens and the head dimension) with the original's power iteration (fake_poweriteration_group):
//    P [dim][r] starts uniform in [0, 1), each of `iterations` rounds computes Q = E P then P = E^T Q, and the last
//    round makes P and then Q orthonormal, so Q Q^T is the projection on span(E (E^T E)^(iterations - 1) P_0) and
//    P = E^T Q. Q and P are stored in the KV dtype.
// Reconstruction: x^ = dequantized + Q P^T, except at outliers, where x^ = x.
//
// Attention reads this form, never a reconstructed copy. For a segment s with factors Q_s, P_s and the outlier
// entries (t, c) of token t:
//   q . k^_t = q . dequantized_t + Q_s[t] . (P_s^T q) + sum over outliers (t, c) of q_c d_tc,
//   sum_t w_t v^_t = sum_t w_t dequantized_t + P_s (Q_s^T w) + sum over outliers (t, c) of w_t d_tc e_c,
// where d_tc = x_tc - dequantized_tc - (Q_s P_s^T)_tc, the outlier's correction. Resident bytes count what GEAR
// stores: KIVI's codes, scales and zeros, the factors (r (tokens + dim) elements of the KV dtype per segment), and
// each outlier as its value in the KV dtype plus a 4-byte index (token * dim + channel); in memory an outlier is
// held as its fp32 correction d_tc, which the stored value determines.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/quantized_kv.h"

namespace ctxbench::kernels {

struct GearSpec {
  QuantSpec quant;         // bits, group, and the dtype of scales, zeros, factors and outlier values
  double sparsity = 0.02;  // share of each row kept exactly, half from each end
  int iterations = 3;      // power-iteration rounds
};

// Seed of the uniform start of a segment's power iteration (Rng, drawn column by column: P_0[i][j] is draw
// j * dim + i), from the segment's first token and whether it holds values.
std::uint64_t power_iteration_seed(int first_token, bool values);

// The low-rank factors and outlier corrections of one tensor (keys or values of one KV head), segment by segment.
class ErrorCorrection {
 public:
  ErrorCorrection(int dim, DType stored);
  struct Outlier {
    int token, channel;  // token within the segment
    double exact, dequantized;
  };
  // Fits the next segment of `tokens` rows: the factors to `error` [tokens][dim] (0 at the outliers), then each
  // outlier's correction against the stored factors.
  void add_segment(const std::vector<double>& error, int tokens, const std::vector<Outlier>& outliers, int rank,
                   int iterations, std::uint64_t seed);
  int tokens() const { return tokens_; }
  // logits[t] += scale * q . correction_t for every corrected token t.
  void add_logits(const float* q, float scale, float* logits) const;
  // out[c] += sum over corrected tokens t of weights[t] * correction_t[c].
  void accumulate(const float* weights, float* out) const;
  // The low-rank part at (token, channel), and whether the entry is an outlier (and then its correction).
  double low_rank(int token, int channel) const;
  bool is_outlier(int token, int channel, float* correction = nullptr) const;
  int rank_of(int token) const;
  std::uint64_t outliers() const { return sparse_index_.size(); }
  std::uint64_t bytes() const;

 private:
  struct Segment {
    int first, tokens, rank;
    std::vector<float> token_factors;    // Q [tokens][rank]
    std::vector<float> channel_factors;  // P [dim][rank]
  };
  const Segment& segment_of(int token) const;

  int dim_;
  DType stored_;
  int tokens_ = 0;
  std::vector<Segment> segments_;
  std::vector<std::uint32_t> sparse_index_;  // token * dim + channel, ascending
  std::vector<float> sparse_correction_;
};

// GEAR keys of one KV head: channel-quantized (KIVI) plus their correction.
class GearKeys {
 public:
  GearKeys(int dim, GearSpec spec);
  // Compresses the next `tokens` rows [tokens][dim] (a multiple of spec.quant.group) as one segment.
  void add_segment(const float* rows, int tokens, int rank);
  int tokens() const { return quantized_.tokens(); }
  // logits[t] = scale * q . reconstructed key t, for every compressed token.
  void logits(const float* q, float scale, float* out) const;
  double reconstructed(int token, int channel) const;
  const ErrorCorrection& correction() const { return correction_; }
  std::uint64_t bytes() const { return quantized_.bytes() + correction_.bytes(); }

 private:
  int dim_;
  GearSpec spec_;
  ChannelQuantizedKeys quantized_;
  ErrorCorrection correction_;
};

// GEAR values of one KV head: token-quantized (KIVI) plus their correction.
class GearValues {
 public:
  GearValues(int dim, GearSpec spec);
  void add_segment(const float* rows, int tokens, int rank);
  int tokens() const { return quantized_.tokens(); }
  // out[c] += sum over compressed tokens t of weights[t] * reconstructed value t [c].
  void accumulate(const float* weights, float* out) const;
  double reconstructed(int token, int channel) const;
  const ErrorCorrection& correction() const { return correction_; }
  std::uint64_t bytes() const { return quantized_.bytes() + correction_.bytes(); }

 private:
  int dim_;
  GearSpec spec_;
  TokenQuantizedValues quantized_;
  ErrorCorrection correction_;
};

}  // namespace ctxbench::kernels
