// KIVI's asymmetric min-max quantization of one KV head (Liu et al. 2024, arXiv 2402.02750): keys per channel
// over blocks of `group` tokens, values per token over groups of `group` channels. Each group keeps a scale
// (max - min) / (2^bits - 1) and a zero (its min), both rounded to `meta` (the model's dtype, as the original
// keeps them); a value's code is round((x - zero) / scale) clamped to [0, 2^bits - 1] (0 when the scale is 0)
// and dequantizes to code * scale + zero. Codes are packed, 8 / bits per byte, lowest bits first. Attention
// reads the packed form: dequantization happens inside the dot products and the weighted sums.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/attention.h"

namespace ctxbench::kernels {

struct QuantSpec {
  int bits = 2;  // 2 or 4
  int group = 32;
  DType meta = DType::f16;  // dtype of scales and zeros
};

// x rounded to what `dtype` stores.
float round_to(DType dtype, float x);

// Keys of one KV head quantized per channel, in blocks of spec.group tokens.
class ChannelQuantizedKeys {
 public:
  ChannelQuantizedKeys(int dim, QuantSpec spec);
  // Appends one block: spec.group rows [group][dim].
  void add_block(const float* rows);
  int tokens() const { return tokens_; }
  // logits[t] = scale * q . key t (dequantized) for every token t.
  void logits(const float* q, float scale, float* out) const;
  float dequantized(int token, int channel) const;
  std::uint64_t bytes() const;  // codes, scales and zeros

 private:
  int dim_, row_bytes_;
  QuantSpec spec_;
  int tokens_ = 0;
  std::vector<std::uint8_t> codes_;  // [token][row_bytes_]
  std::vector<float> scale_, zero_;  // [block][dim]
};

// Values of one KV head quantized per token, in groups of spec.group channels (the last group may be shorter).
class TokenQuantizedValues {
 public:
  TokenQuantizedValues(int dim, QuantSpec spec);
  void add_token(const float* row);
  int tokens() const { return tokens_; }
  // out[c] += sum over tokens t of weights[t] * value t (dequantized)[c].
  void accumulate(const float* weights, float* out) const;
  float dequantized(int token, int channel) const;
  std::uint64_t bytes() const;

 private:
  int dim_, row_bytes_, groups_;
  QuantSpec spec_;
  int tokens_ = 0;
  std::vector<std::uint8_t> codes_;  // [token][row_bytes_]
  std::vector<float> scale_, zero_;  // [token][groups_]
};

}  // namespace ctxbench::kernels
