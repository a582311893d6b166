#include "kernels/quantized_kv.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>

namespace ctxbench::kernels {
namespace {

int levels(const QuantSpec& spec) { return (1 << spec.bits) - 1; }

void check_spec(const QuantSpec& spec, int dim) {
  if ((spec.bits != 2 && spec.bits != 4) || spec.group < 1 || dim < 1) {
    throw std::invalid_argument("quantized KV: bits must be 2 or 4, group and head_dim positive");
  }
}

int packed_bytes(int dim, int bits) { return (dim * bits + 7) / 8; }

int code_at(const std::uint8_t* row, int index, int bits) {
  const int bit = index * bits;
  return (row[bit / 8] >> (bit % 8)) & ((1 << bits) - 1);
}

// Fits the scale and zero of n values (stride apart) and hands each value's code to put(i, code).
void quantize_group(const float* x, int n, std::size_t stride, const QuantSpec& spec, float& scale, float& zero,
                    const std::function<void(int i, int code)>& put) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::min(lo, x[i * stride]);
    hi = std::max(hi, x[i * stride]);
  }
  scale = round_to(spec.meta, (hi - lo) / static_cast<float>(levels(spec)));
  zero = round_to(spec.meta, lo);
  for (int i = 0; i < n; ++i) {
    const float code = scale > 0.0f ? std::nearbyint((x[i * stride] - zero) / scale) : 0.0f;
    put(i, static_cast<int>(std::clamp(code, 0.0f, static_cast<float>(levels(spec)))));
  }
}

void put_code(std::uint8_t* row, int index, int code, int bits) {
  const int bit = index * bits;
  row[bit / 8] = static_cast<std::uint8_t>(row[bit / 8] | (code << (bit % 8)));
}

}  // namespace

float round_to(DType dtype, float x) {
  switch (dtype) {
    case DType::f32: return x;
    case DType::f16: return half_to_float(float_to_half(x));
    case DType::bf16: return bf16_to_float(float_to_bf16(x));
  }
  return x;
}

ChannelQuantizedKeys::ChannelQuantizedKeys(int dim, QuantSpec spec)
    : dim_(dim), row_bytes_(packed_bytes(dim, spec.bits)), spec_(spec) {
  check_spec(spec, dim);
}

void ChannelQuantizedKeys::add_block(const float* rows) {
  const std::size_t first_code = codes_.size();
  codes_.resize(first_code + static_cast<std::size_t>(spec_.group) * row_bytes_, 0);
  scale_.resize(scale_.size() + dim_);
  zero_.resize(zero_.size() + dim_);
  float* scale = scale_.data() + scale_.size() - dim_;
  float* zero = zero_.data() + zero_.size() - dim_;
  for (int c = 0; c < dim_; ++c) {
    quantize_group(rows + c, spec_.group, dim_, spec_, scale[c], zero[c], [&](int t, int code) {
      put_code(codes_.data() + first_code + static_cast<std::size_t>(t) * row_bytes_, c, code, spec_.bits);
    });
  }
  tokens_ += spec_.group;
}

void ChannelQuantizedKeys::logits(const float* q, float scale, float* out) const {
  std::vector<float> scaled_q(dim_);
  for (int block = 0; block * spec_.group < tokens_; ++block) {
    const float* s = scale_.data() + static_cast<std::size_t>(block) * dim_;
    const float* z = zero_.data() + static_cast<std::size_t>(block) * dim_;
    float bias = 0.0f;  // q . zero, shared by the block's tokens
    for (int c = 0; c < dim_; ++c) {
      scaled_q[c] = q[c] * s[c];
      bias += q[c] * z[c];
    }
    for (int t = block * spec_.group; t < (block + 1) * spec_.group; ++t) {
      const std::uint8_t* row = codes_.data() + static_cast<std::size_t>(t) * row_bytes_;
      float sum = bias;
      for (int c = 0; c < dim_; ++c) sum += scaled_q[c] * static_cast<float>(code_at(row, c, spec_.bits));
      out[t] = scale * sum;
    }
  }
}

float ChannelQuantizedKeys::dequantized(int token, int channel) const {
  const std::size_t meta = static_cast<std::size_t>(token / spec_.group) * dim_ + channel;
  const int code = code_at(codes_.data() + static_cast<std::size_t>(token) * row_bytes_, channel, spec_.bits);
  return static_cast<float>(code) * scale_[meta] + zero_[meta];
}

std::uint64_t ChannelQuantizedKeys::bytes() const {
  return codes_.size() + 2 * scale_.size() * dtype_bytes(spec_.meta);
}

TokenQuantizedValues::TokenQuantizedValues(int dim, QuantSpec spec)
    : dim_(dim), row_bytes_(packed_bytes(dim, spec.bits)), groups_((dim + spec.group - 1) / spec.group), spec_(spec) {
  check_spec(spec, dim);
}

void TokenQuantizedValues::add_token(const float* row) {
  const std::size_t first_code = codes_.size();
  codes_.resize(first_code + row_bytes_, 0);
  scale_.resize(scale_.size() + groups_);
  zero_.resize(zero_.size() + groups_);
  float* scale = scale_.data() + scale_.size() - groups_;
  float* zero = zero_.data() + zero_.size() - groups_;
  for (int g = 0; g < groups_; ++g) {
    const int begin = g * spec_.group, width = std::min(spec_.group, dim_ - begin);
    quantize_group(row + begin, width, 1, spec_, scale[g], zero[g],
                   [&](int i, int code) { put_code(codes_.data() + first_code, begin + i, code, spec_.bits); });
  }
  ++tokens_;
}

void TokenQuantizedValues::accumulate(const float* weights, float* out) const {
  for (int t = 0; t < tokens_; ++t) {
    if (weights[t] == 0.0f) continue;
    const std::uint8_t* row = codes_.data() + static_cast<std::size_t>(t) * row_bytes_;
    for (int g = 0; g < groups_; ++g) {
      const std::size_t meta = static_cast<std::size_t>(t) * groups_ + g;
      const float a = weights[t] * scale_[meta], b = weights[t] * zero_[meta];
      const int end = std::min(dim_, (g + 1) * spec_.group);
      for (int c = g * spec_.group; c < end; ++c) out[c] += a * static_cast<float>(code_at(row, c, spec_.bits)) + b;
    }
  }
}

float TokenQuantizedValues::dequantized(int token, int channel) const {
  const std::size_t meta = static_cast<std::size_t>(token) * groups_ + channel / spec_.group;
  const int code = code_at(codes_.data() + static_cast<std::size_t>(token) * row_bytes_, channel, spec_.bits);
  return static_cast<float>(code) * scale_[meta] + zero_[meta];
}

std::uint64_t TokenQuantizedValues::bytes() const {
  return codes_.size() + 2 * scale_.size() * dtype_bytes(spec_.meta);
}

}  // namespace ctxbench::kernels
