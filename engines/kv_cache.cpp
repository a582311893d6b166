#include "engines/kv_cache.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace ctxbench::engines {

using kernels::DType;

KvStorage zeroed_storage(std::size_t bytes) {
  constexpr std::uintptr_t kHugePage = std::uintptr_t{2} << 20;
  KvStorage storage;
  storage.reserve(bytes);
  const auto begin = reinterpret_cast<std::uintptr_t>(storage.data());
  const std::uintptr_t first = (begin + kHugePage - 1) & ~(kHugePage - 1), last = (begin + bytes) & ~(kHugePage - 1);
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  storage.resize(bytes);
  return storage;
}

std::string_view policy_name(KvPolicy policy) {
  switch (policy) {
    case KvPolicy::full: return "full";
    case KvPolicy::evicts: return "evicts";
    case KvPolicy::masks: return "masks";
    case KvPolicy::compresses: return "compresses";
  }
  return "?";
}

KvCache::KvCache(const HeadLayout& layout) : layout_(layout) {}

std::uint64_t KvCache::bytes_per_token() const {
  return 2ull * layout_.heads_kv * layout_.head_dim * kernels::dtype_bytes(layout_.kv_dtype);
}

std::uint64_t KvCache::resident_bytes() const { return bytes_per_token() * static_cast<std::uint64_t>(tokens_); }

kernels::KvView KvCache::view(const KvStorage& storage) const {
  return {storage.data(), layout_.kv_dtype, layout_.heads_kv,
          tokens_,        layout_.head_dim, static_cast<std::size_t>(capacity_) * layout_.head_dim};
}

// Grows geometrically; the head-major layout means each head's rows move to their new offset.
void KvCache::reserve(int tokens) {
  if (tokens <= capacity_) return;
  const int new_capacity = std::max({tokens, 2 * capacity_, 16});
  const std::size_t row = static_cast<std::size_t>(layout_.head_dim) * kernels::dtype_bytes(layout_.kv_dtype);
  for (auto* storage : {&k_, &v_}) {
    KvStorage grown = zeroed_storage(static_cast<std::size_t>(layout_.heads_kv) * new_capacity * row);
    for (int h = 0; h < layout_.heads_kv && tokens_ > 0; ++h) {  // an empty cache has no buffer to copy from
      std::memcpy(grown.data() + h * new_capacity * row, storage->data() + h * capacity_ * row, tokens_ * row);
    }
    storage->swap(grown);
  }
  capacity_ = new_capacity;
}

void KvCache::store(KvStorage& storage, const float* src, int n) {
  const int d = layout_.head_dim;
  for (int h = 0; h < layout_.heads_kv; ++h) {
    const float* from = src + static_cast<std::size_t>(h) * n * d;
    const std::size_t first = (static_cast<std::size_t>(h) * capacity_ + tokens_) * d;
    switch (layout_.kv_dtype) {
      case DType::f32: std::memcpy(storage.data() + first * 4, from, static_cast<std::size_t>(n) * d * 4); break;
      case DType::f16:
      case DType::bf16: {
        auto* to = reinterpret_cast<std::uint16_t*>(storage.data()) + first;
        const bool half = layout_.kv_dtype == DType::f16;
        for (std::size_t i = 0; i < static_cast<std::size_t>(n) * d; ++i) {
          to[i] = half ? kernels::float_to_half(from[i]) : kernels::float_to_bf16(from[i]);
        }
        break;
      }
    }
  }
}

void KvCache::append(const float* k, const float* v, int n) {
  reserve(tokens_ + n);
  store(k_, k, n);
  store(v_, v, n);
  for (int i = 0; i < n; ++i) positions_.push_back(appended_ + i);
  tokens_ += n;
  appended_ += n;
}

void KvCache::keep(const std::vector<int>& indices) {
  const std::size_t row = static_cast<std::size_t>(layout_.head_dim) * kernels::dtype_bytes(layout_.kv_dtype);
  for (auto* storage : {&k_, &v_}) {
    for (int h = 0; h < layout_.heads_kv; ++h) {
      std::uint8_t* base = storage->data() + h * capacity_ * row;
      for (std::size_t i = 0; i < indices.size(); ++i) {
        if (indices[i] != static_cast<int>(i)) std::memmove(base + i * row, base + indices[i] * row, row);
      }
    }
  }
  std::vector<int> kept;
  kept.reserve(indices.size());
  for (int index : indices) kept.push_back(positions_[index]);
  positions_.swap(kept);
  tokens_ = static_cast<int>(indices.size());
}

void KvCache::zero_key_channels(int head, int begin, int end, const std::vector<int>& channels) {
  const std::size_t bytes = kernels::dtype_bytes(layout_.kv_dtype);
  for (int t = begin; t < end; ++t) {
    std::uint8_t* row = k_.data() + ((static_cast<std::size_t>(head) * capacity_ + t) * layout_.head_dim) * bytes;
    for (int c : channels) std::memset(row + c * bytes, 0, bytes);  // +0.0 in fp32, fp16 and bf16 alike
  }
}

}  // namespace ctxbench::engines
