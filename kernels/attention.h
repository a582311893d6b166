// Attention kernels shared by every engine: dense causal attention and block-sparse attention over
// explicit key ranges, both returning the log-sum-exp so that partial results can be merged.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace ctxbench::kernels {

enum class DType { f32, f16, bf16 };

inline std::size_t dtype_bytes(DType dtype) { return dtype == DType::f32 ? 4 : 2; }
std::string_view dtype_name(DType dtype);
// Throws std::invalid_argument naming the accepted spellings.
DType parse_dtype(std::string_view name);

float half_to_float(std::uint16_t bits);
std::uint16_t float_to_half(float value);
float bf16_to_float(std::uint16_t bits);
std::uint16_t float_to_bf16(float value);
// Widens n elements stored as `dtype` to float (exact; vectorised).
void widen_to_float(const void* src, DType dtype, float* dst, std::size_t n);

// Keys or values laid out [heads][tokens][dim]; `head_stride` (in elements) may exceed tokens*dim so
// that a cache can grow in place.
struct KvView {
  const void* data = nullptr;
  DType dtype = DType::f32;
  int heads = 0;
  int tokens = 0;
  int dim = 0;
  std::size_t head_stride = 0;

  // Inline: the float64 references read every element through load().
  const std::byte* row(int head, int token) const {
    const std::size_t index = static_cast<std::size_t>(head) * head_stride + static_cast<std::size_t>(token) * dim;
    return static_cast<const std::byte*>(data) + index * dtype_bytes(dtype);
  }
  float load(int head, int token, int i) const {
    const std::byte* p = row(head, token);
    switch (dtype) {
      case DType::f32: return reinterpret_cast<const float*>(p)[i];
      case DType::f16: return half_to_float(reinterpret_cast<const std::uint16_t*>(p)[i]);
      case DType::bf16: return bf16_to_float(reinterpret_cast<const std::uint16_t*>(p)[i]);
    }
    return 0.0f;
  }
};

// Queries laid out [heads][tokens][dim], contiguous.
struct QueryView {
  const float* data = nullptr;
  int heads = 0;
  int tokens = 0;
  int dim = 0;
};

// Where results go: out [q.heads][q.tokens][dim]; lse [q.heads][q.tokens] (natural log of the softmax
// denominator, already including the scale; -inf when a query attended to nothing). lse may be null.
struct AttentionOutput {
  float* out = nullptr;
  float* lse = nullptr;
};

// Query i sits at key position `first_query_pos + i` and may see keys up to and including it.
struct CausalLayout {
  int first_query_pos = 0;
  float scale = 1.0f;
};

// Half-open range of key indices.
struct KeyRange {
  int begin = 0;
  int end = 0;
};

// Which keys each (query head, query block) attends to. Ranges are sorted and disjoint; causality is
// still applied per query on top of them.
struct SparsePlan {
  int query_block = 64;
  // Indexed [head * num_query_blocks + block].
  std::vector<std::vector<KeyRange>> ranges;

  int num_query_blocks(int query_tokens) const;
  const std::vector<KeyRange>& at(int head, int block, int query_tokens) const;
};

// Throws std::invalid_argument when shapes disagree (dims, GQA divisibility, key count vs layout).
void check_shapes(const QueryView& q, const KvView& k, const KvView& v, const CausalLayout& layout);

// Exact causal attention, GQA by head group. threads <= 0 uses the hardware concurrency.
void dense_attention(const QueryView& q, const KvView& k, const KvView& v, const CausalLayout& layout,
                     AttentionOutput out, int threads = 0);

// Attention restricted to the plan's key ranges (and to causality).
void sparse_attention(const QueryView& q, const KvView& k, const KvView& v, const CausalLayout& layout,
                      const SparsePlan& plan, AttentionOutput out, int threads = 0);

// Merges partial result b into a (same shape) by log-sum-exp weights.
void merge_partials(float* out_a, float* lse_a, const float* out_b, const float* lse_b, int rows, int dim);

}  // namespace ctxbench::kernels
