// The forward pass's matrix product against a float64 transcription of its definition, for every weight
// dtype, on shapes that reach each path of the kernel: the decode path (fewer than 4 rows), the prefill path
// with its converted panels and k-blocks, partial tiles, k not a multiple of the vector width, several row
// chunks, and work large enough to run on the thread pool.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/attention.h"
#include "model/matmul.h"

using namespace ctxbench;

namespace {

// Random weights stored as `dtype`, with their values widened back to float (what the product must use).
struct StoredWeights {
  std::vector<std::byte> bytes;
  std::vector<float> values;
  model::WeightMatrix matrix;
};

StoredWeights random_weights(kernels::DType dtype, int rows, int cols, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  StoredWeights w;
  const std::size_t count = static_cast<std::size_t>(rows) * cols;
  w.values.resize(count);
  if (dtype == kernels::DType::f32) {
    std::vector<float> data(count);
    for (auto& v : data) v = uniform(rng);
    w.values = data;
    w.bytes.resize(count * sizeof(float));
    std::memcpy(w.bytes.data(), data.data(), w.bytes.size());
  } else {
    std::vector<std::uint16_t> data(count);
    for (std::size_t i = 0; i < count; ++i) {
      const float v = uniform(rng);
      data[i] = dtype == kernels::DType::bf16 ? kernels::float_to_bf16(v) : kernels::float_to_half(v);
      w.values[i] = dtype == kernels::DType::bf16 ? kernels::bf16_to_float(data[i]) : kernels::half_to_float(data[i]);
    }
    w.bytes.resize(count * sizeof(std::uint16_t));
    std::memcpy(w.bytes.data(), data.data(), w.bytes.size());
  }
  w.matrix = {w.bytes.data(), dtype, rows, cols};
  return w;
}

}  // namespace

TEST_CASE("matmul equals the float64 product for every weight dtype and shape", "[model][matmul]") {
  struct Shape {
    int m, n, k;
  };
  const Shape shapes[] = {
      {1, 1, 1},    {1, 7, 13},   {3, 5, 8},     {4, 4, 16},    {5, 17, 33},
      {2, 33, 600}, {9, 20, 530}, {300, 18, 70}, {64, 64, 300}, {1, 1100, 1030},
  };
  const auto dtype = GENERATE(kernels::DType::f32, kernels::DType::bf16, kernels::DType::f16);
  const bool accumulate = GENERATE(false, true);
  std::mt19937 rng(Catch::rngSeed());
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (const auto [m, n, k] : shapes) {
    CAPTURE(static_cast<int>(dtype), accumulate, m, n, k);
    const StoredWeights w = random_weights(dtype, n, k, rng);
    std::vector<float> x(static_cast<std::size_t>(m) * k);
    for (auto& v : x) v = uniform(rng);
    std::vector<float> y(static_cast<std::size_t>(m) * n);
    for (auto& v : y) v = uniform(rng);
    const std::vector<float> before = y;
    model::matmul(x.data(), m, w.matrix, y.data(), accumulate, 2);
    double worst = 0;
    for (int i = 0; i < m; ++i) {
      for (int j = 0; j < n; ++j) {
        double exact = accumulate ? before[i * n + j] : 0.0, magnitude = std::abs(exact);
        for (int c = 0; c < k; ++c) {
          const double term = static_cast<double>(x[i * k + c]) * w.values[static_cast<std::size_t>(j) * k + c];
          exact += term;
          magnitude += std::abs(term);
        }
        worst = std::max(worst, std::abs(y[i * n + j] - exact) / (magnitude + 1e-30));
      }
    }
    CHECK(worst < 1e-5);
  }
}

TEST_CASE("load_row widens one weight row exactly", "[model][matmul]") {
  const auto dtype = GENERATE(kernels::DType::f32, kernels::DType::bf16, kernels::DType::f16);
  std::mt19937 rng(Catch::rngSeed());
  const int rows = 5, cols = 37;  // cols not a multiple of the vector width
  const StoredWeights w = random_weights(dtype, rows, cols, rng);
  for (int row = 0; row < rows; ++row) {
    std::vector<float> out(cols);
    model::load_row(w.matrix, row, out.data());
    for (int c = 0; c < cols; ++c) REQUIRE(out[c] == w.values[static_cast<std::size_t>(row) * cols + c]);
  }
}
