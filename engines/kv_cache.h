// K/V storage for one layer in the engine's dtype, growing by appends, with per-token original positions so
// that methods which evict can compact it and still report which tokens they kept.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

#include "engines/engine.h"

namespace ctxbench::engines {

// Allocates on cache-line boundaries, so that a row of 64 bytes or a multiple of them spans whole lines:
// from malloc's usual 16-byte offset a 256-byte row touches five lines, and the mask builders' scattered
// row reads, bound by the misses in flight, paid for the fifth.
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlignment{64};

  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlignment)); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, kAlignment); }
  friend bool operator==(const CacheLineAllocator&, const CacheLineAllocator&) { return true; }
};

using KvStorage = std::vector<std::uint8_t, CacheLineAllocator<std::uint8_t>>;

// `bytes` of zeroed storage whose whole 2 MiB pages are offered huge pages (Linux's transparent huge pages,
// where they are on "madvise"; refused, they stay small) before anything touches them. Mask builders read
// scattered rows of long caches, and on 4 KiB pages nearly every such row is a TLB miss and a page walk.
KvStorage zeroed_storage(std::size_t bytes);

class KvCache {
 public:
  explicit KvCache(const HeadLayout& layout);

  // k, v: [heads_kv][n][head_dim] fp32.
  void append(const float* k, const float* v, int n);
  // Keeps only the tokens at the given cache indices (sorted ascending), per all heads.
  void keep(const std::vector<int>& indices);
  // Sets the given channels of the keys at cache indices [begin, end) of KV head `head` to zero.
  void zero_key_channels(int head, int begin, int end, const std::vector<int>& channels);

  int tokens() const { return tokens_; }
  int appended() const { return appended_; }  // tokens ever appended (the next token's position)
  int position(int index) const { return positions_[index]; }
  const std::vector<int>& positions() const { return positions_; }
  kernels::KvView keys() const { return view(k_); }
  kernels::KvView values() const { return view(v_); }
  std::uint64_t resident_bytes() const;
  std::uint64_t bytes_per_token() const;  // K and V, all KV heads

 private:
  kernels::KvView view(const KvStorage& storage) const;
  void reserve(int tokens);
  void store(KvStorage& storage, const float* src, int n);

  HeadLayout layout_;
  int capacity_ = 0;
  int tokens_ = 0;
  int appended_ = 0;
  std::vector<int> positions_;
  KvStorage k_, v_;  // [heads_kv][capacity][head_dim] in layout_.kv_dtype
};

}  // namespace ctxbench::engines
