// The K/V cache's storage: rows start on cache lines (the mask builders' scattered reads count on it) and
// survive the growth that moves them.
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "core/random.h"
#include "engines/kv_cache.h"

using namespace ctxbench;

namespace {

bool on_cache_line(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 64 == 0; }

}  // namespace

TEST_CASE("KvCache rows start on cache lines and keep their values as the cache grows", "[engines][kv_cache]") {
  const int heads_kv = GENERATE(1, 3);
  const int dim = GENERATE(32, 128);
  const auto dtype = GENERATE(kernels::DType::f32, kernels::DType::f16);
  engines::KvCache cache({.heads_q = heads_kv, .heads_kv = heads_kv, .head_dim = dim, .kv_dtype = dtype});
  Rng rng(0x6b76 + static_cast<std::uint64_t>(heads_kv * dim));
  std::vector<std::vector<float>> appended_keys, appended_values;  // per append, [heads_kv][n][dim]
  std::vector<int> appended_counts;
  for (int n : {1, 15, 40, 7, 200}) {
    std::vector<float> k(static_cast<std::size_t>(heads_kv) * n * dim), v(k.size());
    for (float& x : k) x = static_cast<float>(rng.normal());
    for (float& x : v) x = static_cast<float>(rng.normal());
    cache.append(k.data(), v.data(), n);
    appended_keys.push_back(k);
    appended_values.push_back(v);
    appended_counts.push_back(n);
    const kernels::KvView keys = cache.keys(), values = cache.values();
    CHECK(on_cache_line(keys.data));
    CHECK(on_cache_line(values.data));
    const auto as_stored = [&](float x) {
      return dtype == kernels::DType::f16 ? kernels::half_to_float(kernels::float_to_half(x)) : x;
    };
    int first = 0;
    for (std::size_t a = 0; a < appended_keys.size(); ++a) {
      const int count = appended_counts[a];
      for (int h = 0; h < heads_kv; ++h) {
        CHECK(on_cache_line(keys.row(h, first)));
        CHECK(on_cache_line(values.row(h, first)));
        for (int t = 0; t < count; ++t) {
          for (int i = 0; i < dim; ++i) {
            const std::size_t at = (static_cast<std::size_t>(h) * count + t) * dim + i;
            REQUIRE(keys.load(h, first + t, i) == as_stored(appended_keys[a][at]));
            REQUIRE(values.load(h, first + t, i) == as_stored(appended_values[a][at]));
          }
        }
      }
      first += count;
    }
  }
}
