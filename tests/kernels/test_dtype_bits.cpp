// The fp16 and bf16 conversions against known IEEE 754 bit patterns (normals, subnormals, signed zero,
// infinities, NaN, ties in rounding), and, where the compiler has _Float16 (GCC on x86-64), against its
// conversions over every half and a sweep of floats: checks that do not go through the code under test.
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/attention.h"

using namespace ctxbench::kernels;

namespace {

struct Pair {
  std::uint16_t bits;
  float value;
};

float from_bits(std::uint32_t bits) { return std::bit_cast<float>(bits); }
std::uint32_t float_bits(float value) { return std::bit_cast<std::uint32_t>(value); }

// Exactly representable values: each widens to `value` and narrows back to `bits`.
const Pair kHalves[] = {
    {0x0000, 0.0f},
    {0x8000, -0.0f},
    {0x3c00, 1.0f},
    {0xc000, -2.0f},
    {0x3555, 0.333251953125f},
    {0x7bff, 65504.0f},                // largest finite
    {0x0400, 6.103515625e-05f},        // smallest normal, 2^-14
    {0x03ff, 6.097555160522461e-05f},  // largest subnormal, 1023 x 2^-24
    {0x0001, 5.960464477539063e-08f},  // smallest subnormal, 2^-24
    {0x8001, -5.960464477539063e-08f},
    {0x7c00, std::numeric_limits<float>::infinity()},
    {0xfc00, -std::numeric_limits<float>::infinity()},
};

const Pair kBfloats[] = {
    {0x0000, 0.0f},
    {0x8000, -0.0f},
    {0x3f80, 1.0f},
    {0xc000, -2.0f},
    {0x3eab, 0.333984375f},
    {0x7f7f, 3.3895313892515355e+38f},  // largest finite
    {0x0080, 1.1754943508222875e-38f},  // smallest normal, 2^-126
    {0x0001, 9.183549615799121e-41f},   // smallest subnormal, 2^-133
    {0x7f80, std::numeric_limits<float>::infinity()},
    {0xff80, -std::numeric_limits<float>::infinity()},
};

// Floats that are not representable, and the pattern round-to-nearest-even gives.
struct Rounding {
  float value;
  std::uint16_t bits;
  const char* why;
};

const Rounding kHalfRounding[] = {
    {1.0f + 0x1p-11f, 0x3c00, "tie between 1 and 1+2^-10 goes to the even mantissa"},
    {1.0f + 3 * 0x1p-11f, 0x3c02, "tie between odd 0x3c01 and even 0x3c02 goes up"},
    {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01, "just above the tie goes up"},
    {65519.0f, 0x7bff, "below the midpoint to 2^16 stays finite"},
    {65520.0f, 0x7c00, "the midpoint to 2^16 rounds to even: infinity"},
    {1e10f, 0x7c00, "beyond the range: infinity"},
    {-1e10f, 0xfc00, "beyond the range, negative: -infinity"},
    {0x1p-25f, 0x0000, "subnormal tie between 0 and 2^-24 goes to 0"},
    {3 * 0x1p-25f, 0x0002, "subnormal tie between 1 and 2 (x 2^-24) goes to 2"},
    {0x1p-25f * 1.0001f, 0x0001, "just above the subnormal tie goes up"},
    {0x1p-14f - 0x1p-25f, 0x0400, "tie between the largest subnormal and the smallest normal goes to the normal"},
    {1e-10f, 0x0000, "underflow to +0"},
    {-1e-10f, 0x8000, "underflow to -0 keeps the sign"},
};

const Rounding kBfloatRounding[] = {
    {from_bits(0x3f808000), 0x3f80, "tie between 0x3f80 and 0x3f81 goes to the even one"},
    {from_bits(0x3f818000), 0x3f82, "tie between odd 0x3f81 and even 0x3f82 goes up"},
    {from_bits(0x3f808001), 0x3f81, "just above the tie goes up"},
    {from_bits(0x3f807fff), 0x3f80, "just below the tie goes down"},
    {std::numeric_limits<float>::max(), 0x7f80, "the largest float is above the last midpoint: infinity"},
    {from_bits(0x00008000), 0x0000, "subnormal tie goes to 0"},
    {from_bits(0x00018000), 0x0002, "subnormal tie between 1 and 2 goes to 2"},
    {from_bits(0x80000001), 0x8000, "tiny negative underflows to -0"},
};

bool is_half_nan(std::uint16_t bits) { return (bits & 0x7c00) == 0x7c00 && (bits & 0x03ff) != 0; }
bool is_bf16_nan(std::uint16_t bits) { return (bits & 0x7f80) == 0x7f80 && (bits & 0x007f) != 0; }

}  // namespace

TEST_CASE("fp16: known bit patterns widen to their values and narrow back", "[kernels][dtype]") {
  for (const auto& [bits, value] : kHalves) {
    INFO("half bits 0x" << std::hex << bits);
    CHECK(float_bits(half_to_float(bits)) == float_bits(value));  // bitwise: -0 is not +0
    CHECK(float_to_half(value) == bits);
  }
}

TEST_CASE("fp16: floats between halves round to nearest, ties to even, at every range edge", "[kernels][dtype]") {
  for (const auto& [value, bits, why] : kHalfRounding) {
    INFO(why << " (float bits 0x" << std::hex << float_bits(value) << ")");
    CHECK(float_to_half(value) == bits);
  }
}

TEST_CASE("fp16: NaN stays NaN both ways, with its sign", "[kernels][dtype]") {
  for (std::uint16_t bits : {0x7e00, 0x7c01, 0xfe00, 0x7fff}) {
    INFO("half bits 0x" << std::hex << bits);
    const float wide = half_to_float(bits);
    CHECK(std::isnan(wide));
    CHECK(std::signbit(wide) == ((bits & 0x8000) != 0));
  }
  for (std::uint32_t bits : {0x7fc00000u, 0x7f800001u, 0xffc00000u, 0x7fbfffffu}) {
    INFO("float bits 0x" << std::hex << bits);
    const std::uint16_t narrow = float_to_half(from_bits(bits));
    CHECK(is_half_nan(narrow));
    CHECK(((narrow & 0x8000) != 0) == ((bits & 0x80000000u) != 0));
  }
}

TEST_CASE("bf16: known bit patterns widen to their values and narrow back", "[kernels][dtype]") {
  for (const auto& [bits, value] : kBfloats) {
    INFO("bf16 bits 0x" << std::hex << bits);
    CHECK(float_bits(bf16_to_float(bits)) == float_bits(value));
    CHECK(float_to_bf16(value) == bits);
  }
}

TEST_CASE("bf16: floats between bfloats round to nearest, ties to even", "[kernels][dtype]") {
  for (const auto& [value, bits, why] : kBfloatRounding) {
    INFO(why << " (float bits 0x" << std::hex << float_bits(value) << ")");
    CHECK(float_to_bf16(value) == bits);
  }
}

TEST_CASE("bf16: NaN stays NaN both ways (a signaling NaN does not truncate to infinity)", "[kernels][dtype]") {
  for (std::uint16_t bits : {0x7fc0, 0x7f81, 0xffc0}) {
    INFO("bf16 bits 0x" << std::hex << bits);
    CHECK(std::isnan(bf16_to_float(bits)));
  }
  for (std::uint32_t bits : {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu}) {
    INFO("float bits 0x" << std::hex << bits);
    const std::uint16_t narrow = float_to_bf16(from_bits(bits));
    CHECK(is_bf16_nan(narrow));
    CHECK(((narrow & 0x8000) != 0) == ((bits & 0x80000000u) != 0));
  }
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
TEST_CASE("fp16: every half and a sweep of floats convert as the compiler's _Float16 does", "[kernels][dtype]") {
  for (std::uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const auto half = static_cast<std::uint16_t>(bits);
    const float want = static_cast<float>(std::bit_cast<_Float16>(half));
    INFO("half bits 0x" << std::hex << bits);
    if (std::isnan(want)) {
      REQUIRE(std::isnan(half_to_float(half)));
    } else {
      REQUIRE(float_bits(half_to_float(half)) == float_bits(want));
    }
  }
  // Every 4099th float pattern (a prime stride, so every mantissa residue and every exponent is visited).
  for (std::uint64_t bits = 0; bits <= 0xffffffffu; bits += 4099) {
    const float value = from_bits(static_cast<std::uint32_t>(bits));
    if (std::isnan(value)) continue;  // NaN payloads may differ; the NaN case above checks NaN stays NaN
    INFO("float bits 0x" << std::hex << bits);
    REQUIRE(float_to_half(value) == std::bit_cast<std::uint16_t>(static_cast<_Float16>(value)));
  }
}
#endif
