// KIVI (Liu et al. 2024, arXiv 2402.02750; jy-yuan/KIVI `models/llama_kivi.py`, `quant/new_pack.py`): keys
// quantized per channel in blocks of `group_size` tokens, values per token in groups of `group_size` channels,
// to 2 or 4 bits, with the newest tokens in full precision (kernels/quantized_kv.h). Tokens arrive in full
// precision; after each attend call the keys are quantized in whole blocks of `residual` tokens (all full-
// precision keys but the last partial block of `residual`), and the values of all but the `residual` newest
// tokens. So, as in the original, a decode step reads between 0 and residual - 1 full-precision keys and
// residual + 1 values, a prefill is exact and compresses at its end, and every attend call after it reads the
// compressed cache: dequantization happens inside its dot products and weighted sums.

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/timer.h"
#include "engines/baseline.h"
#include "engines/quantized_params.h"
#include "kernels/quantized_kv.h"
#include "kernels/thread_pool.h"

namespace ctxbench::engines {
namespace {

struct KiviParams {
  int bits = 2;
  int group_size = 32;
  int residual = 128;
  int threads = 0;

  static ParamFields<KiviParams> fields() {
    using P = KiviParams;
    return with_threads(
        quantized_kv_fields(ParamFields<P>())
            .field(&P::residual, "residual",
                   "newest tokens kept in full precision (R; keys are quantized R at a time, a multiple of "
                   "group_size)",
                   {.min = 1})
            .check([](const P& p) { check_quantized_kv("kivi", p, "residual", p.residual); }));
  }
};

// One KV head: quantized keys [0, keys.tokens()) then full-precision keys; quantized values then full ones.
struct HeadState {
  kernels::ChannelQuantizedKeys keys;
  kernels::TokenQuantizedValues values;
  std::vector<float> full_keys, full_values;  // rows of the tokens after the quantized ones
};

class KiviSession final : public LoggedSession {
 public:
  KiviSession(const HeadLayout& layout, const KiviParams& params) : LoggedSession(layout), params_(params) {
    const kernels::QuantSpec spec{params.bits, params.group_size, layout.kv_dtype};
    for (int g = 0; g < layout.heads_kv; ++g)
      heads_.push_back({{layout.head_dim, spec}, {layout.head_dim, spec}, {}, {}});
  }

  // Stored in the KV dtype, as a cache of that dtype would hold them.
  void append(const float* k, const float* v, int n) override {
    const std::size_t size = static_cast<std::size_t>(n) * layout_.head_dim;
    for (int g = 0; g < layout_.heads_kv; ++g) {
      for (std::size_t i = 0; i < size; ++i) {
        heads_[g].full_keys.push_back(kernels::round_to(layout_.kv_dtype, k[g * size + i]));
        heads_[g].full_values.push_back(kernels::round_to(layout_.kv_dtype, v[g * size + i]));
      }
    }
    tokens_ += n;
  }

  void attend(const float* q, int n, Phase, float* out) override {
    const int first = tokens_ - n;
    log_.begin(layout_.heads_q, n, first, n);
    for (int h = 0; h < layout_.heads_q; ++h) log_.set(h, 0, {{0, tokens_}});
    Stopwatch watch;
    kernels::parallel_for(layout_.heads_q * n, params_.threads, [&](int row) {
      const int h = row / n, i = row % n;
      attend_row(heads_[h / group()], query_row(q, h, n, i, layout_.head_dim), first + i,
                 out + static_cast<std::size_t>(row) * layout_.head_dim);
    });
    stats_.attention_seconds += watch.seconds();
    const std::uint64_t read_before = stats_.kv_bytes_read;
    log_.account(stats_, layout_.heads_kv, key_bytes(layout_));
    stats_.kv_bytes_read = read_before + resident_bytes();  // every KV head's whole compressed cache, once
    Stopwatch select;
    for (HeadState& head : heads_) compress(head);
    stats_.mask_seconds += select.seconds();
    stats_.kv_bytes_resident = resident_bytes();
  }

 private:
  // The query at `position` over every key up to it, reading the quantized keys and values in packed form.
  void attend_row(const HeadState& head, const float* q, int position, float* out) const {
    const int dim = layout_.head_dim, visible = position + 1;
    const int quant_keys = head.keys.tokens(), quant_values = head.values.tokens();
    std::vector<float> weights(visible);
    head.keys.logits(q, scale(), weights.data());
    for (int t = quant_keys; t < visible; ++t)
      weights[t] = scale() * dot(q, head.full_keys.data() + static_cast<std::size_t>(t - quant_keys) * dim, dim);
    const float top = *std::max_element(weights.begin(), weights.end());
    float sum = 0.0f;
    for (float& w : weights) sum += w = std::exp(w - top);
    for (float& w : weights) w /= sum;
    std::fill_n(out, dim, 0.0f);
    head.values.accumulate(weights.data(), out);
    for (int t = quant_values; t < visible; ++t) {
      const float* v = head.full_values.data() + static_cast<std::size_t>(t - quant_values) * dim;
      for (int c = 0; c < dim; ++c) out[c] += weights[t] * v[c];
    }
  }

  // Keys: every whole block of `residual` full-precision keys; values: all but the `residual` newest.
  void compress(HeadState& head) const {
    const int dim = layout_.head_dim;
    const int full_keys = tokens_ - head.keys.tokens();
    const int key_blocks = full_keys / params_.residual * (params_.residual / params_.group_size);
    for (int b = 0; b < key_blocks; ++b)
      head.keys.add_block(head.full_keys.data() + static_cast<std::size_t>(b) * params_.group_size * dim);
    head.full_keys.erase(head.full_keys.begin(),
                         head.full_keys.begin() + static_cast<std::ptrdiff_t>(key_blocks) * params_.group_size * dim);
    const int value_tokens = std::max(0, tokens_ - params_.residual - head.values.tokens());
    for (int t = 0; t < value_tokens; ++t)
      head.values.add_token(head.full_values.data() + static_cast<std::size_t>(t) * dim);
    head.full_values.erase(head.full_values.begin(),
                           head.full_values.begin() + static_cast<std::ptrdiff_t>(value_tokens) * dim);
  }

  std::uint64_t resident_bytes() const {
    const std::uint64_t element = kernels::dtype_bytes(layout_.kv_dtype);
    std::uint64_t total = 0;
    for (const HeadState& head : heads_)
      total += head.keys.bytes() + head.values.bytes() + (head.full_keys.size() + head.full_values.size()) * element;
    return total;
  }

  KiviParams params_;
  std::vector<HeadState> heads_;
  int tokens_ = 0;
};

// The residual rounded up to a multiple of the group size so that nothing of `tokens` gets quantized.
Json covering_residual(int tokens) {
  const int group = KiviParams{}.group_size;
  return Json{{"residual", (tokens / group + 1) * group}};
}

const RegisterEngine registration{declared_engine<KiviSession, KiviParams>({
    .name = "kivi",
    .description = "KIVI: keys quantized per channel, values per token (2/4 bits), newest tokens in full precision",
    .policy = KvPolicy::compresses,
    .test_params = Json{{"bits", 2}, {"group_size", 8}, {"residual", 32}},
    .exact_params = covering_residual,
    // Measured at most 0.44 on the conformance test's problems (random Gaussian K/V at 2 bits in groups of 8).
    .output_tolerance = 0.6,
})};

}  // namespace
}  // namespace ctxbench::engines
