// The simulated KV offload tier against an obviously-correct LRU (a recency-ordered vector scanned in full),
// and the capacity parameters.
#include <algorithm>
#include <catch2/catch.hpp>

#include "core/metrics.h"
#include "core/random.h"
#include "engines/kv_offload.h"

using namespace ctxbench;
using engines::OffloadTier;

namespace {

// Most recent first; a miss inserts at the front and drops the back when over capacity.
class SlowLru {
 public:
  explicit SlowLru(std::size_t capacity) : capacity_(capacity) {}
  bool access(std::uint64_t entry) {
    const auto it = std::find(order_.begin(), order_.end(), entry);
    const bool hit = it != order_.end();
    if (hit) order_.erase(it);
    order_.insert(order_.begin(), entry);
    if (order_.size() > capacity_) order_.pop_back();
    return hit;
  }
  std::size_t size() const { return order_.size(); }

 private:
  std::size_t capacity_;
  std::vector<std::uint64_t> order_;
};

// offload_measurements of a tier named "tier".
const RegisterMetric tier_hit_ratio{{"tier_hit_ratio", "ratio", Better::neither, "Tier hit ratio"}};
const RegisterMetric tier_accesses{{"tier_accesses", "entries", Better::neither, "Tier accesses"}};
const RegisterMetric tier_bytes_to_device{{"tier_bytes_to_device", "B", Better::lower, "Tier bytes to device"}};
const RegisterMetric tier_device_bytes{{"tier_device_bytes", "B", Better::lower, "Tier device memory"}};
const RegisterMetric tier_capacity_bytes{{"tier_capacity_bytes", "B", Better::neither, "Tier capacity"}};

}  // namespace

TEST_CASE("offload tier: LRU hits, bytes and residency match a slow LRU", "[hip][offload]") {
  for (std::uint64_t capacity : {1u, 3u, 16u, 100u}) {
    for (std::uint64_t universe : {5u, 40u, 400u}) {
      Rng rng(capacity * 1000 + universe);
      OffloadTier tier(capacity, 24);
      SlowLru slow(capacity);
      std::uint64_t hits = 0;
      for (int i = 0; i < 3000; ++i) {
        // A skewed stream (recently used ids come back often), so both hits and evictions happen.
        const auto entry =
            static_cast<std::uint64_t>(rng.uniform() < 0.5 ? rng.integer(0, 4) : rng.integer(0, universe));
        const bool hit = tier.access(entry);
        REQUIRE(hit == slow.access(entry));
        hits += hit;
      }
      const auto s = tier.stats();
      CHECK(s.accesses == 3000);
      CHECK(s.hits == hits);
      CHECK(s.bytes_to_device == (3000 - hits) * 24);
      CHECK(s.device_bytes == slow.size() * 24);
      CHECK(s.capacity_bytes == capacity * 24);
      CHECK(s.hit_ratio() == Approx(static_cast<double>(hits) / 3000));
    }
  }
}

TEST_CASE("offload tier: a scan larger than the tier never hits, one that fits always does after the first pass",
          "[hip][offload]") {
  OffloadTier small(10, 8), large(11, 8);
  for (int pass = 0; pass < 3; ++pass) {
    for (std::uint64_t e = 0; e < 11; ++e) {
      CHECK_FALSE(small.access(e));  // LRU's worst case: cyclic access one entry over capacity
      CHECK(large.access(e) == (pass > 0));
    }
  }
  engines::OffloadStats total = small.stats();
  total += large.stats();
  CHECK(total.accesses == 66);
  CHECK(total.hits == 22);
  CHECK(total.hit_ratio() == Approx(1.0 / 3));
  CHECK(total.device_bytes == (10 + 11) * 8);
  CHECK(engines::OffloadStats{}.hit_ratio() == 1.0);
}

TEST_CASE("offload capacity parameters", "[hip][offload]") {
  using Traits = ParamTraits<engines::OffloadCapacity>;
  const ParamSchema schema = Traits::specs("cache", {}, "rows", {});
  auto entries = [&](const Json& given) {
    return Traits::parse(resolve_params(schema, given, "engine"), "cache").entries(8, 256, "engine");
  };
  CHECK_FALSE(entries({}).has_value());
  CHECK(entries({{"cache_tokens", 1000}}) == 8000u);
  CHECK(entries({{"cache_bytes", 1e6}}) == 3906u);
  CHECK_THROWS_WITH(entries({{"cache_tokens", 1}, {"cache_bytes", 1}}), Catch::Contains("not both"));
  CHECK_THROWS_WITH(entries({{"cache_bytes", 100}}),
                    Catch::Contains("engine.cache_bytes") && Catch::Contains("hold no entry"));
  CHECK_THROWS_AS(OffloadTier(0, 8), std::invalid_argument);
  const auto m = engines::offload_measurements("tier", {.accesses = 4, .hits = 3});
  REQUIRE(m.size() == 5);
  CHECK(m[0].metric == "tier_hit_ratio");
  CHECK(m[0].value() == Approx(0.75));
}
