// InfiniteHiP: multi-stage chunk pruning (engines/infinite_hip_mask.h) picks key blocks per query block of
// 64 queries; the block attends to the sinks, those blocks and the sliding window. Decoding refreshes the
// mask on a three-level schedule: step % 32 == 0 reruns every stage, % 16 reruns from the second stage's
// cached input, % 8 reruns the last stage; other steps reuse the mask while the window moves on.
//
// RoPE: with prune_rope and attention_rope "none" the engine works on the queries and keys it is given
// (rotated at their real positions by a model runtime, or position-free at the attention level). Otherwise it
// declares wants_unrotated_kv(): the model runtime hands over un-rotated queries and keys plus its RoPE, the
// cache holds keys un-rotated as in the original, and the engine rotates them itself: pruning at
// "relative" or "chunk-indexed" positions (or "per_layer": chunk-indexed on the dense-ish layers, relative
// elsewhere, the original's choice), attention at "streaming" positions (the attended keys laid out
// contiguously ending at the query) or at their real positions (kernels/rope.h).
//
// KV offload accounting (engines/kv_offload.h): with a device cache size set, every key row the pruning
// reads goes through a simulated key tier and every K|V row the attention reads through a second tier,
// each with LRU replacement, reporting hit ratios, bytes that would cross the host link and device bytes.
#include <fmt/format.h>

#include <cmath>
#include <optional>

#include "core/metrics.h"
#include "core/timer.h"
#include "engines/block_sparse_session.h"
#include "engines/budget.h"
#include "engines/infinite_hip_mask.h"
#include "engines/kv_offload.h"

namespace ctxbench::engines {
namespace {

using hip::ChunkLists;
using hip::KeyRange;

enum class PruneRope { none, relative, chunk_indexed, per_layer };

struct InfiniteHipParams {
  Budget budget{2048};
  std::vector<int> stage_chunks = {256, 32, 8};
  std::vector<int> stage_keeps = {32768, 8192};  // one per stage but the last, whose keep is the budget
  std::vector<int> stage_query_strides = {4, 4, 1};
  int query_block = 64;
  int sinks = 256;
  int window = 1024;
  bool head_reduction = true;
  std::vector<int> refresh_intervals = {32, 16, 8};  // one per stage
  std::vector<int> dense_layers = {0, 1, 2, 3, -1};  // -1: the last layer
  int dense_layer_budget = 4096;
  PruneRope prune_rope = PruneRope::none;
  bool streaming_attention = false;  // attention_rope "streaming"
  int threads = 0;
  OffloadCapacity offload_mask;
  OffloadCapacity offload_sa;

  bool unrotated() const { return prune_rope != PruneRope::none || streaming_attention; }

  // The pruning stages; the last stage's keep is only a placeholder: each call resolves it from the budget.
  hip::PruningParams pruning() const {
    hip::PruningParams p{
        .stages = {}, .query_block = query_block, .sinks = sinks, .window = window, .head_reduction = head_reduction};
    for (std::size_t s = 0; s < stage_chunks.size(); ++s) {
      const bool last = s + 1 == stage_chunks.size();
      p.stages.push_back({stage_chunks[s], stage_query_strides[s], last ? stage_chunks[s] : stage_keeps[s]});
    }
    return p;
  }

  static ParamFields<InfiniteHipParams> fields();
};

class InfiniteHipSession final : public hip::BlockSparseSession {
 public:
  // `rope` is set when the session is fed un-rotated queries and keys (Engine::open_unrotated).
  InfiniteHipSession(const InfiniteHipParams& s, const HeadLayout& layout, const RopeSpec* rope)
      : BlockSparseSession(layout, s.threads), s_(s), dense_layer_(is_dense_layer(s, layout)) {
    if (s.unrotated()) {
      if (!rope) {
        throw InputError(
            "infinite_hip: prune_rope and attention_rope other than \"none\" need un-rotated keys and the model's "
            "RoPE, which only a model runtime provides; at the attention level set both to \"none\"");
      }
      rotator_.emplace(rope->frequencies, rope->layout);
      scan_rope_ = {&*rotator_, scan_positions(s.prune_rope, dense_layer_)};
    }
    const std::uint64_t key_row = static_cast<std::uint64_t>(layout.head_dim) * kernels::dtype_bytes(layout.kv_dtype);
    if (auto entries = s.offload_mask.entries(layout.heads_kv, key_row, "infinite_hip")) {
      mask_tier_.emplace(*entries, key_row);
    }
    if (auto entries = s.offload_sa.entries(layout.heads_kv, 2 * key_row, "infinite_hip")) {
      sa_tier_.emplace(*entries, 2 * key_row);
    }
  }

  void attend(const float* q, int n, Phase phase, float* out) override {
    const bool decode_step = phase == Phase::decode && n == 1;
    const std::optional<int> from_stage = decode_step ? decode_refresh_stage() : 0;
    if (rotator_) rotator_->reserve(std::max(cache_.tokens(), s_.window + 2));
    if (decode_step) ++decode_steps_;
    if (from_stage) {
      Stopwatch watch;
      build_masks(q, n, *from_stage, decode_step);
      stats_.mask_seconds += watch.seconds();
    }
    decode_mask_ = decode_step;
    if (rotator_) {
      attend_plan_rotated(q, n, plan(n), *rotator_, s_.streaming_attention, out);
    } else {
      attend_plan(q, n, plan(n), out);
    }
    if (sa_tier_) account_attention(n);
  }

  std::vector<Measurement> extra_measurements() const override {
    const std::uint64_t key_row = static_cast<std::uint64_t>(layout_.head_dim) * kernels::dtype_bytes(layout_.kv_dtype);
    std::vector<Measurement> out = {
        make_measurement("mask_key_bytes_read", {static_cast<double>(counters_.key_rows_read * key_row)}),
        make_measurement("mask_stage_scans", {static_cast<double>(stage_scans_)}),
    };
    OffloadStats total;
    if (mask_tier_) {
      const auto m = offload_measurements("offload_mask", mask_tier_->stats());
      out.insert(out.end(), m.begin(), m.end());
      total += mask_tier_->stats();
    }
    if (sa_tier_) {
      const auto m = offload_measurements("offload_sa", sa_tier_->stats());
      out.insert(out.end(), m.begin(), m.end());
      total += sa_tier_->stats();
    }
    if (mask_tier_ || sa_tier_) {
      const auto m = offload_measurements("offload_total", total);
      out.insert(out.end(), m.begin(), m.end());
    }
    return out;
  }

 private:
  static bool is_dense_layer(const InfiniteHipParams& s, const HeadLayout& layout) {
    if (layout.num_layers <= 1) return false;  // a lone attention-level layer uses the regular config
    for (int layer : s.dense_layers) {
      if (layer == layout.layer || (layer < 0 && layout.num_layers + layer == layout.layer)) return true;
    }
    return false;
  }

  static kernels::HipPrunePositions scan_positions(PruneRope mode, bool dense_layer) {
    switch (mode) {
      case PruneRope::none: return kernels::HipPrunePositions::real;
      case PruneRope::relative: return kernels::HipPrunePositions::relative;
      case PruneRope::chunk_indexed: return kernels::HipPrunePositions::chunk_indexed;
      case PruneRope::per_layer:
        return dense_layer ? kernels::HipPrunePositions::chunk_indexed : kernels::HipPrunePositions::relative;
    }
    return kernels::HipPrunePositions::real;
  }

  // The stage a decode step reruns from, or nothing to reuse the last mask.
  std::optional<int> decode_refresh_stage() const {
    if (!decode_mask_) return 0;
    for (std::size_t s = 0; s < s_.refresh_intervals.size(); ++s) {
      if (decode_steps_ % s_.refresh_intervals[s] != 0) continue;
      // A later stage needs its cached input from a full run of this decode mask.
      return s == 0 || !stage_inputs_.empty() ? static_cast<int>(s) : 0;
    }
    return std::nullopt;
  }

  hip::PruningParams pruning_params() const {
    hip::PruningParams p = s_.pruning();
    const int chunk = p.stages.back().chunk;
    const int budget = dense_layer_ ? s_.dense_layer_budget : s_.budget.tokens(cache_.tokens(), layout_.layer);
    p.stages.back().keep = std::max(chunk, (budget + chunk - 1) / chunk * chunk);
    return p;
  }

  void build_masks(const float* q, int n, int from_stage, bool decode_step) {
    const hip::PruningParams p = pruning_params();
    const int blocks = (n + p.query_block - 1) / p.query_block;
    const hip::KeyRows keys(cache_.keys());
    selected_.assign(blocks, {});
    for (int b = 0; b < blocks; ++b) {
      const int first = b * p.query_block;
      const hip::QueryTile tile{q,
                                layout_.heads_q,
                                n,
                                layout_.head_dim,
                                first,
                                std::min(p.query_block, n - first),
                                cache_.tokens() - n + first};
      // A decode step keeps its stage inputs for later partial refreshes; prefill blocks start afresh.
      std::vector<ChunkLists> scratch;
      auto& inputs = decode_step ? stage_inputs_ : scratch;
      selected_[b] = hip::prune(p, tile, keys, layout_.heads_kv, from_stage, inputs, s_.threads, &counters_,
                                mask_tier_ ? &*mask_tier_ : nullptr, rotator_ ? &scan_rope_ : nullptr);
      stage_scans_ += p.stages.size() - from_stage;
    }
    if (!decode_step) stage_inputs_.clear();
  }

  kernels::SparsePlan plan(int n) const {
    return block_plan(n, s_.query_block, s_.sinks, s_.window, [&](int h, int b) {
      const ChunkLists& groups = selected_[b];
      return groups[groups.size() == 1 ? 0 : h];
    });
  }

  // Every K|V row the attention read goes through the simulated device tier, block by block.
  void account_attention(int n) {
    const int blocks = plan_.num_query_blocks(n);
    for (int b = 0; b < blocks; ++b) {
      const auto per_kv = kv_ranges(b);
      for (int kv = 0; kv < layout_.heads_kv; ++kv) {
        for (const KeyRange& r : per_kv[kv]) {
          for (int t = r.begin; t < r.end; ++t) {
            sa_tier_->access(static_cast<std::uint64_t>(t) * layout_.heads_kv + kv);
          }
        }
      }
    }
  }

  InfiniteHipParams s_;
  bool dense_layer_;
  bool decode_mask_ = false;  // selected_ holds a decode step's mask that later steps may reuse
  std::uint64_t decode_steps_ = 0;
  std::uint64_t stage_scans_ = 0;
  std::vector<ChunkLists> selected_;      // per query block
  std::vector<ChunkLists> stage_inputs_;  // per stage, of the last decode mask
  hip::MaskCounters counters_;
  std::optional<OffloadTier> mask_tier_, sa_tier_;
  std::optional<kernels::RopeRotator> rotator_;  // when the queries and keys arrive un-rotated
  hip::ScanRope scan_rope_;
};

class InfiniteHipEngine final : public Engine {
 public:
  explicit InfiniteHipEngine(InfiniteHipParams s) : s_(std::move(s)) {}
  std::unique_ptr<Session> open(const HeadLayout& layout) const override {
    return std::make_unique<InfiniteHipSession>(s_, layout, nullptr);
  }
  bool wants_unrotated_kv() const override { return s_.unrotated(); }
  std::unique_ptr<Session> open_unrotated(const HeadLayout& layout, const RopeSpec& rope) const override {
    if (!s_.unrotated()) throw std::logic_error("infinite_hip: open_unrotated with prune_rope and attention_rope none");
    return std::make_unique<InfiniteHipSession>(s_, layout, &rope);
  }

 private:
  InfiniteHipParams s_;
};

ParamFields<InfiniteHipParams> InfiniteHipParams::fields() {
  using P = InfiniteHipParams;
  return with_threads(
             ParamFields<P>()
                 .field(&P::budget, "budget",
                        "tokens the last pruning stage keeps per query block, besides sinks and window")
                 .field(&P::stage_chunks, "stage_chunks",
                        "chunk size of each pruning stage (each divides the previous)", {.min = 1})
                 .field(&P::stage_keeps, "stage_keeps",
                        "tokens kept after each stage but the last (multiples of its chunk)", {.min = 1})
                 .field(&P::stage_query_strides, "stage_query_strides",
                        "per stage: consecutive queries averaged into one query vector", {.min = 1})
                 .field(&P::query_block, "query_block", "queries sharing one mask", {.min = 1})
                 .field(&P::sinks, "sinks", "leading keys always attended", {.min = 0})
                 .field(&P::window, "window", "sliding window of recent keys always attended", {.min = 0})
                 .field(&P::head_reduction, "head_reduction",
                        "score chunks by the max over all query heads so that heads share one mask")
                 .field(&P::refresh_intervals, "refresh_intervals",
                        "decode: rerun from stage i when step % intervals[i] == 0 (first match), else reuse the mask",
                        {.min = 1})
                 .field(&P::dense_layers, "dense_layers",
                        "in a model (num_layers > 1), layers using dense_layer_budget (-1: the last layer)",
                        {.min = -1})
                 .field(&P::dense_layer_budget, "dense_layer_budget", "final kept tokens on dense_layers", {.min = 1})
                 .choice(&P::prune_rope, "prune_rope",
                         "positions the pruning scores at: none (queries and keys as given, i.e. real positions), "
                         "relative (left half's key at 0, right at 1, query at window - first chunk + 1), "
                         "chunk_indexed (chunk j at j), per_layer (the original: chunk_indexed on dense_layers, "
                         "relative elsewhere); not none needs a model runtime (un-rotated keys)",
                         {{"none", PruneRope::none},
                          {"relative", PruneRope::relative},
                          {"chunk_indexed", PruneRope::chunk_indexed},
                          {"per_layer", PruneRope::per_layer}})
                 .choice(&P::streaming_attention, "attention_rope",
                         "positions the attention uses: none (keys at their real positions), streaming (attended "
                         "keys laid out contiguously ending at the query); streaming needs a model runtime "
                         "(un-rotated keys)",
                         {{"none", false}, {"streaming", true}}))
      .field(&P::offload_mask, "offload_mask", "the key rows the pruning stages read")
      .field(&P::offload_sa, "offload_sa", "the K|V rows the attention reads")
      .check([](const P& p) {
        if (p.stage_chunks.empty() || p.stage_query_strides.size() != p.stage_chunks.size() ||
            p.stage_keeps.size() + 1 != p.stage_chunks.size()) {
          throw InputError(fmt::format(
              "infinite_hip: stage_chunks ({} values) and stage_query_strides ({}) need one value per stage and "
              "stage_keeps ({}) one per stage but the last (whose keep is the budget)",
              p.stage_chunks.size(), p.stage_query_strides.size(), p.stage_keeps.size()));
        }
      })
      .check([](const P& p) {
        if (p.unrotated() && p.window < 1) {
          throw InputError(
              "infinite_hip.window: must be >= 1 when prune_rope or attention_rope is not \"none\" (each "
              "query's own key anchors its streaming positions)");
        }
      })
      .check([](const P& p) {
        if (p.refresh_intervals.size() != p.stage_chunks.size()) {
          throw InputError(fmt::format("infinite_hip.refresh_intervals: expected one interval per stage ({}), got {}",
                                       p.stage_chunks.size(), p.refresh_intervals.size()));
        }
      })
      .check([](const P& p) { p.pruning().validate("infinite_hip"); })
      // Both sizes of a tier at once is an input error worth reporting before any work starts.
      .check([](const P& p) {
        p.offload_mask.entries(1, 1, "infinite_hip");
        p.offload_sa.entries(1, 1, "infinite_hip");
      });
}

const RegisterEngine registration{declared_engine<InfiniteHipEngine, InfiniteHipParams>({
    .name = "infinite_hip",
    .description = "InfiniteHiP: multi-stage chunk pruning (256/32/8) + sinks + window, optional KV offload accounting",
    .policy = KvPolicy::masks,
    .test_params = Json{{"budget", 32},
                        {"stage_chunks", {32, 8, 2}},
                        {"stage_keeps", {128, 64}},
                        {"query_block", 16},
                        {"sinks", 16},
                        {"window", 32},
                        {"refresh_intervals", {4, 2, 1}}},
    .exact_params =
        [](int tokens) {
          const int covered = (std::max(tokens, 1) + 255) / 256 * 256;
          return Json{{"budget", covered}, {"stage_keeps", {covered, covered}}, {"refresh_intervals", {1, 1, 1}}};
        },
})};

}  // namespace
}  // namespace ctxbench::engines
