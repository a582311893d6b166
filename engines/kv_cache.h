// K/V storage for one layer in the engine's dtype, growing by appends, with per-token original positions so
// that methods which evict can compact it and still report which tokens they kept.
#pragma once

#include <cstdint>
#include <vector>

#include "engines/engine.h"

namespace ctxbench::engines {

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
  kernels::KvView view(const std::vector<std::uint8_t>& storage) const;
  void reserve(int tokens);
  void store(std::vector<std::uint8_t>& storage, const float* src, int n);

  HeadLayout layout_;
  int capacity_ = 0;
  int tokens_ = 0;
  int appended_ = 0;
  std::vector<int> positions_;
  std::vector<std::uint8_t> k_, v_;  // [heads_kv][capacity][head_dim] in layout_.kv_dtype
};

}  // namespace ctxbench::engines
