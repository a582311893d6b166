// CUDA attention kernels against the float64 reference. Skipped (ctest reports them as skipped) when the build
// has no CUDA toolkit or the machine has no CUDA device; CTXBENCH_REQUIRE_GPU=1 makes that a failure
// (scripts/gpu-check.sh sets it).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "core/timer.h"
#include "tests/attention_cases.h"
#include "tests/helpers.h"

#ifdef CTXBENCH_HAVE_CUDA
#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/rope_cuda.h"
#include "kernels/rope.h"
#endif

namespace {

using namespace ctxbench::kernels;
using namespace ctxbench::testing;

std::string why_cuda_cannot_run() {
#ifdef CTXBENCH_HAVE_CUDA
  return cuda::device_count() > 0 ? "" : "no CUDA device (cudaGetDeviceCount found none)";
#else
  return "built without CUDA (no nvcc)";
#endif
}

// True when the CUDA kernels can run here; otherwise the test is skipped, or fails under CTXBENCH_REQUIRE_GPU=1.
bool cuda_available() {
  const std::string reason = why_cuda_cannot_run();
  if (reason.empty()) return true;
  const char* require = std::getenv("CTXBENCH_REQUIRE_GPU");
  if (require && std::string(require) == "1") FAIL("CTXBENCH_REQUIRE_GPU=1, but " << reason);
  report_skipped(reason);
  return false;
}

#ifdef CTXBENCH_HAVE_CUDA
// One row of scripts/gpu-check.sh's table: a kernel on one case, its largest absolute error against the CPU
// reference, and its time (the first call also pays CUDA's start-up).
void report_row(const std::string& kernel, const std::string& what, double max_error, double seconds) {
  std::cout << "gpu-check\t" << kernel << "\t" << what << "\t" << max_error << "\t" << seconds * 1e3 << std::endl;
}

template <class Want>
double max_abs_error(const std::vector<float>& got, const std::vector<Want>& want) {
  double most = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) most = std::max(most, std::abs(got[i] - static_cast<double>(want[i])));
  return most;
}

void check_dense(const Problem& p) {
  INFO(describe(p, 0));
  const Inputs in(p);
  Outputs got(in.q);
  const ctxbench::Stopwatch watch;
  cuda::dense_attention(in.q, in.k.view, in.v.view, in.layout, got.view());
  const double seconds = watch.seconds();
  check_against_reference(in, got, nullptr);
  const auto want = reference_attention(in.q, in.k.view, in.v.view, in.layout).out;
  report_row("dense_attention", describe(p, 0), max_abs_error(got.out, want), seconds);
}

void check_sparse(const Problem& p, int query_block) {
  INFO(describe(p, 0) << " query_block " << query_block);
  const Inputs in(p);
  const SparsePlan plan = random_plan(p, query_block);
  Outputs got(in.q);
  const ctxbench::Stopwatch watch;
  cuda::sparse_attention(in.q, in.k.view, in.v.view, in.layout, plan, got.view());
  const double seconds = watch.seconds();
  check_against_reference(in, got, &plan);
  const auto want = reference_attention(in.q, in.k.view, in.v.view, in.layout, &plan).out;
  report_row("sparse_attention", describe(p, 0) + " query_block " + std::to_string(query_block),
             max_abs_error(got.out, want), seconds);
}
#endif

}  // namespace

TEST_CASE("CUDA dense attention matches the float64 reference", "[cuda]") {
  if (!cuda_available()) return;
#ifdef CTXBENCH_HAVE_CUDA
  const std::vector<Problem> problems = {
      {1, 1, 1, 1, 64},                       // a single key
      {4, 1, 1, 300, 128},                    // decode, GQA 4, keys not a multiple of the tile
      {8, 1, 1, 257, 96, DType::f16},         // decode, GQA 8
      {2, 2, 3, 130, 37},                     // odd head_dim
      {8, 2, 37, 200, 128, DType::bf16},      // prefill chunk
      {4, 4, 50, 50, 64, DType::f16},         // whole-sequence prefill, GQA 1
      {2, 1, 5, 90, 256},                     // the largest head_dim
      {4, 1, 9, 400, 128, DType::bf16, 200},  // queries in the middle: later keys are invisible
      {4, 1, 1, 20000, 128, DType::f16},      // long decode: keys split across blocks and merged
  };
  for (const Problem& p : problems) check_dense(p);
#endif
}

TEST_CASE("CUDA sparse attention over random ranges matches the float64 reference", "[cuda]") {
  if (!cuda_available()) return;
#ifdef CTXBENCH_HAVE_CUDA
  const std::vector<std::pair<Problem, int>> cases = {
      {{4, 1, 1, 500, 128}, 64},
      {{8, 2, 40, 300, 64, DType::f16}, 16},
      {{8, 1, 24, 400, 37, DType::bf16}, 8},
      {{4, 1, 64, 9000, 128, DType::f16}, 64},
  };
  for (const auto& [p, block] : cases) check_sparse(p, block);
#endif
}

TEST_CASE("CUDA attention rejects head dimensions it does not support", "[cuda]") {
  if (!cuda_available()) return;
#ifdef CTXBENCH_HAVE_CUDA
  const Inputs in(Problem{1, 1, 1, 4, cuda::kMaxDim + 1});
  Outputs got(in.q);
  CHECK_THROWS_WITH(cuda::dense_attention(in.q, in.k.view, in.v.view, in.layout, got.view()),
                    Catch::Contains("exceeds the supported"));
#endif
}

TEST_CASE("CUDA RoPE matches the CPU rotation", "[cuda]") {
  if (!cuda_available()) return;
#ifdef CTXBENCH_HAVE_CUDA
  const int heads = 3, tokens = 37;
  std::vector<std::int64_t> positions(tokens);
  for (std::int64_t& p : positions) p = uniform_int(0, 2'000'000);
  positions[0] = 0;
  positions[1] = 2;  // inside the start tokens below
  for (RopeLayout layout : {RopeLayout::neox, RopeLayout::interleaved}) {
    for (int head_dim : {128, 96}) {
      RopeConfig config = RopeConfig::standard_rope(head_dim, 500000.0);
      config.rotary_dim = head_dim == 96 ? 64 : head_dim;  // partial rotation leaves the tail untouched
      RopeFrequencies freqs = config.frequencies(2'000'001);
      if (head_dim == 96) {  // LongRoPE-style start tokens: unscaled angles and no magnitude
        freqs.unscaled_inv_freq = freqs.inv_freq;
        for (double& f : freqs.inv_freq) f /= 4.0;
        freqs.attention_factor = 1.19;
        freqs.start_tokens = 4;
      }
      INFO("head_dim " << head_dim << " layout " << (layout == RopeLayout::neox ? "neox" : "interleaved"));
      const std::vector<float> x = random_floats(static_cast<std::size_t>(heads) * tokens * head_dim, 1.0f);
      std::vector<float> cpu = x, gpu = x;
      apply_rope(cpu.data(), heads, tokens, head_dim, freqs, positions, layout);
      const ctxbench::Stopwatch watch;
      cuda::apply_rope(gpu.data(), heads, tokens, head_dim, freqs, positions, layout);
      report_row("apply_rope",
                 "head_dim " + std::to_string(head_dim) + (layout == RopeLayout::neox ? " neox" : " interleaved"),
                 max_abs_error(gpu, cpu), watch.seconds());
      for (std::size_t i = 0; i < x.size(); ++i) {
        INFO("element " << i);
        REQUIRE(std::abs(gpu[i] - cpu[i]) <= 2e-6f * std::max(1.0f, std::abs(cpu[i])));
      }
    }
  }
#endif
}
