// The primitives of kernels/simd.h against their scalar definitions, on whichever path this build takes
// (AVX-512, AVX2 or portable), so that a primitive's bug is named here rather than found through a kernel.
#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernels/simd.h"
#include "tests/attention_cases.h"

namespace {

using namespace ctxbench::kernels;
using ctxbench::testing::rng;

constexpr int kLanes = simd::kLanes;

const char* simd_path() {
#if defined(CTXBENCH_SIMD_AVX512)
  return "AVX-512";
#elif defined(CTXBENCH_SIMD_AVX2)
  return "AVX2";
#else
  return "portable";
#endif
}

struct Lanes {
  float v[kLanes];
};

Lanes lanes_of(simd::Vec a) {
  Lanes out;
  simd::store(out.v, a);
  return out;
}

Lanes random_lanes(float stddev = 1.0f) {
  std::normal_distribution<float> dist(0.0f, stddev);
  Lanes out;
  for (float& x : out.v) x = dist(rng());
  return out;
}

simd::Vec vec_of(const Lanes& l) { return simd::load(l.v); }

bool lane_on(simd::Mask m, int i) { return (m >> i) & 1u; }

std::vector<simd::Mask> masks_to_test() {
  std::vector<simd::Mask> masks;
  for (int n = 0; n <= kLanes; ++n) masks.push_back(simd::first_lanes(n));
  for (int n = 1; n < kLanes; ++n) masks.push_back(static_cast<simd::Mask>(simd::kAllLanes << n));  // suffixes
  for (simd::Mask m : {0x5555, 0xaaaa, 0x8001, 0x0180, 0x7ffe}) masks.push_back(m);
  std::uniform_int_distribution<int> any(0, 0xffff);
  for (int i = 0; i < 64; ++i) masks.push_back(static_cast<simd::Mask>(any(rng())));
  return masks;
}

bool same_float(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
}

// Two pages: the first readable and writable, the second inaccessible, so that touching a byte past the
// first page's end kills the test.
class GuardedPage {
 public:
  GuardedPage() : size_(static_cast<std::size_t>(sysconf(_SC_PAGESIZE))) {
    base_ = mmap(nullptr, 2 * size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(base_ != MAP_FAILED);
    REQUIRE(mprotect(static_cast<char*>(base_) + size_, size_, PROT_NONE) == 0);
  }
  ~GuardedPage() { munmap(base_, 2 * size_); }
  // The last n elements of type T before the inaccessible page.
  template <typename T>
  T* last(int n) {
    return reinterpret_cast<T*>(static_cast<char*>(base_) + size_) - n;
  }

 private:
  std::size_t size_;
  void* base_;
};

}  // namespace

TEST_CASE("simd: masked float loads and stores touch only the lanes of the mask", "[kernels][simd]") {
  INFO("path " << simd_path());
  for (simd::Mask m : masks_to_test()) {
    INFO("mask " << m);
    const Lanes src = random_lanes();
    const Lanes loaded = lanes_of(simd::load(src.v, m));
    Lanes dst = random_lanes();
    const Lanes before = dst;
    simd::store(dst.v, vec_of(src), m);
    for (int i = 0; i < kLanes; ++i) {
      CHECK(same_float(loaded.v[i], lane_on(m, i) ? src.v[i] : 0.0f));
      CHECK(same_float(dst.v[i], lane_on(m, i) ? src.v[i] : before.v[i]));
    }
  }
  // Rows that end at an inaccessible page: a load or store of the first n lanes must not fault.
  GuardedPage page;
  for (int n = 0; n <= kLanes; ++n) {
    INFO("lanes " << n);
    float* row = page.last<float>(n);
    for (int i = 0; i < n; ++i) row[i] = static_cast<float>(i + 1);
    const Lanes loaded = lanes_of(simd::load(row, simd::first_lanes(n)));
    for (int i = 0; i < kLanes; ++i) CHECK(loaded.v[i] == (i < n ? static_cast<float>(i + 1) : 0.0f));
    simd::store(row, simd::set1(-1.0f), simd::first_lanes(n));
    for (int i = 0; i < n; ++i) CHECK(row[i] == -1.0f);
  }
}

TEST_CASE("simd: f16 and bf16 loads widen exactly, masked ones only the lanes of the mask", "[kernels][simd]") {
  INFO("path " << simd_path());
  std::uniform_int_distribution<int> any_bits(0, 0xffff);
  // Every 16-bit pattern once, in order, then masked loads of random patterns.
  for (int start = 0; start < 0x10000; start += kLanes) {
    std::uint16_t bits[kLanes];
    for (int i = 0; i < kLanes; ++i) bits[i] = static_cast<std::uint16_t>(start + i);
    const Lanes f16 = lanes_of(simd::load_f16(bits)), bf16 = lanes_of(simd::load_bf16(bits));
    for (int i = 0; i < kLanes; ++i) {
      INFO("bits " << bits[i]);
      CHECK(same_float(f16.v[i], half_to_float(bits[i])));
      CHECK(same_float(bf16.v[i], bf16_to_float(bits[i])));
    }
  }
  for (simd::Mask m : masks_to_test()) {
    INFO("mask " << m);
    std::uint16_t bits[kLanes];
    for (std::uint16_t& b : bits) b = static_cast<std::uint16_t>(any_bits(rng()));
    const Lanes f16 = lanes_of(simd::load_f16(bits, m)), bf16 = lanes_of(simd::load_bf16(bits, m));
    for (int i = 0; i < kLanes; ++i) {
      CHECK(same_float(f16.v[i], lane_on(m, i) ? half_to_float(bits[i]) : 0.0f));
      CHECK(same_float(bf16.v[i], lane_on(m, i) ? bf16_to_float(bits[i]) : 0.0f));
    }
  }
  GuardedPage page;
  for (int n = 0; n <= kLanes; ++n) {
    INFO("lanes " << n);
    std::uint16_t* row = page.last<std::uint16_t>(n);
    for (int i = 0; i < n; ++i) row[i] = float_to_half(static_cast<float>(i + 1));
    const Lanes f16 = lanes_of(simd::load_f16(row, simd::first_lanes(n)));
    for (int i = 0; i < n; ++i) row[i] = static_cast<std::uint16_t>(std::bit_cast<std::uint32_t>(i + 1.0f) >> 16);
    const Lanes bf16 = lanes_of(simd::load_bf16(row, simd::first_lanes(n)));
    for (int i = 0; i < kLanes; ++i) {
      CHECK(f16.v[i] == (i < n ? static_cast<float>(i + 1) : 0.0f));
      CHECK(bf16.v[i] == (i < n ? static_cast<float>(i + 1) : 0.0f));
    }
  }
}

TEST_CASE("simd: arithmetic, select and comparisons are lane-wise", "[kernels][simd]") {
  INFO("path " << simd_path());
  for (int trial = 0; trial < 50; ++trial) {
    Lanes a = random_lanes(), b = random_lanes(), c = random_lanes();
    b.v[trial % kLanes] = a.v[trial % kLanes];  // an equal pair for greater_equal
    const simd::Vec va = vec_of(a), vb = vec_of(b), vc = vec_of(c);
    const Lanes sum = lanes_of(simd::add(va, vb)), difference = lanes_of(simd::sub(va, vb));
    const Lanes product = lanes_of(simd::mul(va, vb)), larger = lanes_of(simd::max(va, vb));
    const Lanes fused = lanes_of(simd::fmadd(va, vb, vc)), broadcast = lanes_of(simd::set1(a.v[0]));
    const simd::Mask m = static_cast<simd::Mask>(std::uniform_int_distribution<int>(0, 0xffff)(rng()));
    const Lanes selected = lanes_of(simd::select(m, va, vb));
    const simd::Mask ge = simd::greater_equal(va, vb);
    for (int i = 0; i < kLanes; ++i) {
      CHECK(sum.v[i] == a.v[i] + b.v[i]);
      CHECK(difference.v[i] == a.v[i] - b.v[i]);
      CHECK(product.v[i] == a.v[i] * b.v[i]);
      CHECK(larger.v[i] == std::max(a.v[i], b.v[i]));
      // Fused on the SIMD paths, two roundings on the portable one.
      const double exact = static_cast<double>(a.v[i]) * b.v[i] + c.v[i];
      CHECK(std::abs(fused.v[i] - exact) <= 1e-6 * (std::abs(static_cast<double>(a.v[i]) * b.v[i]) + std::abs(c.v[i])));
      CHECK(broadcast.v[i] == a.v[0]);
      CHECK(selected.v[i] == (lane_on(m, i) ? a.v[i] : b.v[i]));
      CHECK(lane_on(ge, i) == (a.v[i] >= b.v[i]));
    }
    CHECK(lanes_of(simd::zero()).v[trial % kLanes] == 0.0f);
  }
  // NaN compares false; -inf and +inf compare as numbers.
  Lanes special = random_lanes();
  special.v[0] = std::numeric_limits<float>::quiet_NaN();
  special.v[1] = -INFINITY;
  special.v[2] = INFINITY;
  const simd::Mask ge = simd::greater_equal(vec_of(special), simd::set1(-1e30f));
  CHECK(!lane_on(ge, 0));
  CHECK(!lane_on(ge, 1));
  CHECK(lane_on(ge, 2));
}

TEST_CASE("simd: reductions and the transposing sum_each", "[kernels][simd]") {
  INFO("path " << simd_path());
  for (int trial = 0; trial < 50; ++trial) {
    Lanes a = random_lanes(10.0f);
    double total = 0.0, magnitude = 0.0;
    float largest = a.v[0];
    for (float x : a.v) {
      total += x;
      magnitude += std::abs(x);
      largest = std::max(largest, x);
    }
    CHECK(simd::reduce_max(vec_of(a)) == largest);
    CHECK(std::abs(simd::reduce_add(vec_of(a)) - total) <= 1e-6 * magnitude);

    simd::Vec rows[kLanes];
    Lanes values[kLanes];
    for (int r = 0; r < kLanes; ++r) {
      values[r] = random_lanes();
      rows[r] = vec_of(values[r]);
    }
    const Lanes sums = lanes_of(simd::sum_each(rows));
    for (int r = 0; r < kLanes; ++r) {
      double row_total = 0.0, row_magnitude = 0.0;
      for (float x : values[r].v) {
        row_total += x;
        row_magnitude += std::abs(x);
      }
      INFO("row " << r);
      CHECK(std::abs(sums.v[r] - row_total) <= 1e-6 * row_magnitude);
    }
  }
  // The maximum of a row with its largest value in each lane in turn (the halves of a split vector).
  for (int lane = 0; lane < kLanes; ++lane) {
    Lanes a = random_lanes();
    a.v[lane] = 100.0f;
    CHECK(simd::reduce_max(vec_of(a)) == 100.0f);
  }
}

TEST_CASE("simd: at_or_after compares positions with a key", "[kernels][simd]") {
  INFO("path " << simd_path());
  std::uniform_int_distribution<int> position(-5, 40);
  for (int trial = 0; trial < 100; ++trial) {
    int positions[kLanes];
    for (int& p : positions) p = position(rng());
    const int key = position(rng());
    const simd::Mask m = simd::at_or_after(positions, key);
    for (int i = 0; i < kLanes; ++i) CHECK(lane_on(m, i) == (positions[i] >= key));
  }
  int extremes[kLanes];
  for (int i = 0; i < kLanes; ++i) {
    extremes[i] = i % 2 ? std::numeric_limits<int>::max() : std::numeric_limits<int>::min();
  }
  CHECK(simd::at_or_after(extremes, std::numeric_limits<int>::min()) == simd::kAllLanes);
  CHECK(simd::at_or_after(extremes, std::numeric_limits<int>::max()) == 0xaaaa);
}

TEST_CASE("simd: exp2 follows tile::exp2_nonpositive from 0 to below the floor", "[kernels][simd]") {
  INFO("path " << simd_path());
  std::vector<float> xs = {0.0f,
                           -0.0f,
                           -0.5f,
                           -1.0f,
                           -126.0f,
                           -126.5f,
                           std::nextafter(-126.5f, 0.0f),
                           std::nextafter(-126.5f, -INFINITY),
                           tile::kExp2Floor,
                           std::nextafter(tile::kExp2Floor, 0.0f),
                           std::nextafter(tile::kExp2Floor, -INFINITY),
                           -127.5f,
                           -128.0f,
                           -130.0f,
                           -std::numeric_limits<float>::max(),
                           -INFINITY,
                           std::numeric_limits<float>::quiet_NaN()};
  for (int i = 0; i <= 130 * 64; ++i) xs.push_back(static_cast<float>(-i) / 64.0f);  // every 1/64 down to -130
  std::uniform_real_distribution<float> anywhere(-130.0f, 0.0f);
  for (int i = 0; i < 4096; ++i) xs.push_back(anywhere(rng()));
  while (xs.size() % kLanes != 0) xs.push_back(0.0f);

  for (std::size_t start = 0; start < xs.size(); start += kLanes) {
    const Lanes got = lanes_of(simd::exp2(simd::load(xs.data() + start)));
    for (int i = 0; i < kLanes; ++i) {
      const float x = xs[start + i], want = tile::exp2_nonpositive(x);
      INFO("x " << x << " (bits " << std::bit_cast<std::uint32_t>(x) << ")");
      if (!(x >= tile::kExp2Floor)) {
        CHECK(std::bit_cast<std::uint32_t>(got.v[i]) == 0u);  // +0 exactly, also for -inf and NaN
      } else {
        // The same polynomial; FMA contraction may differ from the scalar code by an ulp or two (and by
        // one unit of the smallest subnormal below 2^-126).
        CHECK(std::abs(got.v[i] - want) <= 0x1p-21f * want + 0x1p-149f);
        CHECK(got.v[i] > 0.0f);
      }
    }
  }
  CHECK(lanes_of(simd::exp2(simd::zero())).v[0] == 1.0f);
  // 2^-127 is subnormal: the n = -127 scaling must give it, not 0 or 2^-126.
  CHECK(lanes_of(simd::exp2(simd::set1(-127.0f))).v[kLanes - 1] == std::ldexp(1.0f, -127));
}

TEST_CASE("simd: first_lanes and prefetch", "[kernels][simd]") {
  for (int n = -2; n <= kLanes + 2; ++n) {
    const simd::Mask m = simd::first_lanes(n);
    for (int i = 0; i < kLanes; ++i) CHECK(lane_on(m, i) == (i < n));
  }
  // keep_in_register and prefetch change nothing.
  const Lanes a = random_lanes();
  simd::Vec v = vec_of(a);
  simd::keep_in_register(v);
  simd::prefetch(a.v);
  const Lanes b = lanes_of(v);
  for (int i = 0; i < kLanes; ++i) CHECK(b.v[i] == a.v[i]);
}
