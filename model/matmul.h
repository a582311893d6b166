// Matrix products of the forward pass: activations (fp32, one row per token) times HF Linear weights
// ([out_features][in_features], fp32/fp16/bf16, used in place from the memory map).
#pragma once

#include <cstddef>

#include "kernels/attention.h"

namespace ctxbench::model {

struct WeightMatrix {
  const std::byte* data = nullptr;
  kernels::DType dtype = kernels::DType::f32;
  int rows = 0;  // out features
  int cols = 0;  // in features
};

// y[i][j] (+)= sum_k x[i][k] * w[j][k] for i < m, j < w.rows. x is [m][w.cols], y is [m][w.rows], both
// contiguous. Products with little work run on the calling thread; the others on up to `threads` threads of
// the kernels' pool.
void matmul(const float* x, int m, const WeightMatrix& w, float* y, bool accumulate, int threads);

// Row `row` of w as fp32 (an embedding lookup).
void load_row(const WeightMatrix& w, int row, float* out);

}  // namespace ctxbench::model
