// The HiP and InfiniteHiP sessions attend exactly the keys their masks choose: for every query row, the
// session's attended set equals sinks + the window of its query block + the key blocks (HiP) or chunks
// (InfiniteHiP) that the mask generator selects on the same inputs, cut after the query. Checked at block and
// chunk edges (contexts and query counts that are not multiples of them) and across decode steps, where a
// mask is rebuilt every refresh interval and reused in between while the window moves with the query; InfiniteHiP
// with a different interval per stage, so that a step reruns from stage 0, from a later stage on the stage inputs
// cached at an earlier step, or not at all.
#include <algorithm>
#include <catch2/catch.hpp>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engines/engine.h"
#include "engines/hip_mask.h"
#include "engines/infinite_hip_mask.h"
#include "tests/engine_problems.h"

using namespace ctxbench;
using namespace ctxbench::testing;
using engines::KeyRange;

namespace {

constexpr int kSinks = 16, kWindow = 32, kBudget = 32;

// The keys a query at `position` attends when its block's queries sit at [first, last]: the sinks, the window
// ending at the block's last query and starting `window` before its first, the selected ranges; none after it.
std::set<int> expected_keys(int position, int first, const std::vector<KeyRange>& selected) {
  std::set<int> keys;
  for (int k = 0; k < kSinks; ++k) keys.insert(k);
  for (int k = std::max(0, first + 1 - kWindow); k <= position; ++k) keys.insert(k);
  for (const KeyRange& r : selected) {
    for (int k = r.begin; k < r.end; ++k) keys.insert(k);
  }
  std::set<int> visible;
  for (int k : keys) {
    if (k <= position) visible.insert(k);
  }
  return visible;
}

std::set<int> attended_keys(const engines::Session& session, int head, int query) {
  std::set<int> keys;
  for (const KeyRange& r : session.attended(head, query)) {
    for (int k = r.begin; k < r.end; ++k) keys.insert(k);
  }
  return keys;
}

// The keys of the problem as the cache holds them after `tokens` tokens.
kernels::KvView keys_up_to(const Problem& p, int tokens) {
  kernels::KvView view = full_view(p, p.k);
  view.tokens = tokens;
  return view;
}

// A method's mask: per query head, the selected key ranges for the queries [first, first + count) of a call whose
// queries `q` ([heads_q][n][dim]) sit at positions from `call_first`, over `keys`. `decode` masks are built from
// `from_stage` on, on the stage inputs of the last decode mask; prefill masks start afresh.
using Mask = std::function<std::vector<std::vector<KeyRange>>(const std::vector<float>& q, int n, int first, int count,
                                                              int call_first, const kernels::KvView& keys, bool decode,
                                                              int from_stage)>;

// The stage a decode step's mask is rebuilt from, or nothing when the step reuses the last mask.
using Refresh = std::function<std::optional<int>(int decode_step)>;

// The first stage whose interval divides the step (InfiniteHiP's per-stage intervals; HiP has one stage).
Refresh refresh_every(std::vector<int> intervals) {
  return [intervals](int step) -> std::optional<int> {
    for (std::size_t s = 0; s < intervals.size(); ++s) {
      if (step % intervals[s] == 0) return static_cast<int>(s);
    }
    return std::nullopt;
  };
}

struct Case {
  int tokens, queries, prefilled;
};

// Prefill of `prefilled` queries, then one decode step per remaining query; after each call every query row's
// attended set must be the expected one.
void check_wiring(const std::string& engine_name, const Json& params, int query_block, const Mask& mask,
                  const Refresh& refresh, const Case& c) {
  const auto& info = engines::EngineRegistry::instance().get(engine_name, "test");
  const auto engine = info.make(resolve_params(info.params, params, engine_name));
  const Problem p = random_problem({4, 2, 32, kernels::DType::f32, 0, 1}, c.tokens, c.queries, 77 + c.tokens);
  const int heads = p.layout.heads_q, dim = p.layout.head_dim;
  auto session = engine->open(p.layout);
  const int call_first = c.tokens - c.queries;
  append_tokens(*session, p, 0, call_first + c.prefilled);
  std::vector<float> out(p.q.size());
  prefill_queries(*session, p, 0, c.prefilled, out);
  const auto prefill_q = slice_tokens(p.q, heads, c.queries, dim, 0, c.prefilled);
  for (int t = 0; t < c.prefilled; ++t) {
    const int first = t / query_block * query_block;
    const int count = std::min(query_block, c.prefilled - first);
    const auto selected =
        mask(prefill_q, c.prefilled, first, count, call_first, keys_up_to(p, call_first + c.prefilled), false, 0);
    for (int h = 0; h < heads; ++h) {
      INFO("prefill: head " << h << " query " << t << " at position " << call_first + t);
      REQUIRE(attended_keys(*session, h, t) == expected_keys(call_first + t, call_first + first, selected[h]));
    }
  }
  std::vector<float> step(static_cast<std::size_t>(heads) * dim);
  std::vector<std::vector<KeyRange>> selected;
  for (int t = c.prefilled, i = 0; t < c.queries; ++t, ++i) {
    const int position = call_first + t;
    append_tokens(*session, p, position, 1);
    const auto q = slice_tokens(p.q, heads, c.queries, dim, t, 1);
    session->attend(q.data(), 1, engines::Phase::decode, step.data());
    const std::optional<int> from_stage = i == 0 ? 0 : refresh(i);
    if (from_stage) selected = mask(q, 1, 0, 1, position, keys_up_to(p, position + 1), true, *from_stage);
    for (int h = 0; h < heads; ++h) {
      INFO("decode step " << i << ": head " << h << " at position " << position << ", mask rebuilt "
                          << (from_stage ? "from stage " + std::to_string(*from_stage) : std::string("never")));
      REQUIRE(attended_keys(*session, h, 0) == expected_keys(position, position, selected[h]));
    }
  }
}

const Case kCases[] = {
    {301, 40, 33},  // neither context nor queries a multiple of a block or chunk; 7 decode steps
    {256, 22, 16},  // the prefill ends on a block edge; 6 decode steps
    {130, 9, 1},    // a single prefilled query; candidates barely beyond sinks + window
};

}  // namespace

TEST_CASE("hip: the session attends exactly sinks + window + the key blocks select_key_blocks chooses",
          "[hip][mask][wiring]") {
  constexpr int block_q = 16, block_k = 4, refresh = 3;
  const Json params{{"budget", kBudget},          {"block_size_q", block_q}, {"block_stride_q", 2},
                    {"block_size_k", block_k},    {"sinks", kSinks},         {"window", kWindow},
                    {"refresh_interval", refresh}};
  const Mask mask = [&](const std::vector<float>& q, int n, int first, int count, int call_first,
                        const kernels::KvView& keys, bool, int) {
    const engines::hip::HipMaskParams mp{.mask_k = std::min(kBudget, keys.tokens),
                                         .block_size_q = block_q,
                                         .block_stride_q = 2,
                                         .block_size_k = block_k,
                                         .sinks = kSinks,
                                         .window = kWindow};
    const int dim = keys.dim;
    std::vector<std::vector<KeyRange>> heads(4);
    for (int head = 0; head < 4; ++head) {
      const engines::hip::QueryBlock block{q.data() + (static_cast<std::size_t>(head) * n + first) * dim, count,
                                           call_first + first};
      for (int key : engines::hip::select_key_blocks(mp, block, engines::hip::KeyRows(keys), head / 2)) {
        heads[head].push_back({key, key + block_k});
      }
    }
    return heads;
  };
  for (const Case& c : kCases) {
    DYNAMIC_SECTION("tokens " << c.tokens << " queries " << c.queries << " prefilled " << c.prefilled) {
      check_wiring("hip", params, block_q, mask, refresh_every({refresh}), c);
    }
  }
}

TEST_CASE("infinite_hip: the session attends exactly sinks + window + the chunks prune keeps, with per-stage refreshes",
          "[hip][mask][wiring]") {
  constexpr int query_block = 16;
  const Json params{{"budget", kBudget},          {"stage_chunks", {32, 8, 2}},
                    {"stage_keeps", {128, 64}},   {"stage_query_strides", {4, 4, 1}},
                    {"query_block", query_block}, {"sinks", kSinks},
                    {"window", kWindow},          {"refresh_intervals", {6, 3, 2}}};
  const engines::hip::PruningParams pp{.stages = {{32, 4, 128}, {8, 4, 64}, {2, 1, kBudget}},
                                       .query_block = query_block,
                                       .sinks = kSinks,
                                       .window = kWindow,
                                       .head_reduction = true};
  std::vector<engines::hip::ChunkLists> decode_inputs;  // the stage inputs of the last decode mask
  const Mask mask = [&](const std::vector<float>& q, int n, int first, int count, int call_first,
                        const kernels::KvView& keys, bool decode, int from_stage) {
    const engines::hip::QueryTile tile{q.data(), 4, n, keys.dim, first, count, call_first + first};
    std::vector<engines::hip::ChunkLists> fresh;
    const auto groups =
        engines::hip::prune(pp, tile, engines::hip::KeyRows(keys), 2, from_stage, decode ? decode_inputs : fresh, 1);
    std::vector<std::vector<KeyRange>> heads;
    for (int head = 0; head < 4; ++head) heads.push_back(groups[groups.size() == 1 ? 0 : head]);
    return heads;
  };
  // Steps 0 and 6 rerun every stage, 3 from stage 1, 2 and 4 only the last stage, 1 and 5 reuse the mask.
  for (const Case& c : kCases) {
    DYNAMIC_SECTION("tokens " << c.tokens << " queries " << c.queries << " prefilled " << c.prefilled) {
      decode_inputs.clear();
      check_wiring("infinite_hip", params, query_block, mask, refresh_every({6, 3, 2}), c);
    }
  }
}
