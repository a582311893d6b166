#include "engines/hip_mask.h"

#include <algorithm>
#include <bit>
#include <limits>
#include <string>
#include <utility>

#include "core/params.h"

namespace ctxbench::engines::hip {
namespace {

constexpr float kNoScore = -std::numeric_limits<float>::infinity();

// A node: `size` consecutive candidate key blocks starting at candidate block `start`.
struct Node {
  int start = 0;
  int size = 0;
};

struct ScoredNode {
  Node node;
  float score = kNoScore;
};

bool ranks_before(const ScoredNode& a, const ScoredNode& b) {
  if (a.score != b.score) return a.score > b.score;
  return a.node.start < b.node.start;
}

// K' nodes over `candidates` blocks with the original's aligned boundaries; empty nodes are dropped.
std::vector<Node> initial_nodes(std::int64_t candidates, std::int64_t nodes) {
  const std::int64_t aligned = std::int64_t{1} << (std::bit_width(static_cast<std::uint64_t>(candidates)) - 1);
  const std::int64_t step = (aligned + nodes - 1) / nodes;
  auto boundary = [&](std::int64_t i) { return std::min(candidates * i / nodes / step * step, candidates); };
  std::vector<Node> out;
  for (std::int64_t i = 0; i < nodes; ++i) {
    const std::int64_t start = boundary(i);
    const std::int64_t size = std::min(candidates, boundary(i + 1) - start);
    if (size > 0) out.push_back({static_cast<int>(start), static_cast<int>(size)});
  }
  return out;
}

// The first key of candidate block `candidate_block`: candidates start after the sink blocks.
int candidate_first_key(const HipMaskParams& p, int sink_blocks, int candidate_block) {
  return (sink_blocks + candidate_block) * p.block_size_k;
}

// Scores candidate key blocks for one query block: max over the sampled queries allowed to see a key.
class BlockScorer {
 public:
  BlockScorer(const HipMaskParams& p, const QueryBlock& block, const KeyRows& keys, int kv_head, int sink_blocks)
      : p_(p), keys_(keys), kv_head_(kv_head), sink_blocks_(sink_blocks) {
    for (int offset : sampled_query_offsets(p, block.count)) {
      positions_.push_back(block.first_position + offset);
      queries_.insert(queries_.end(), block.queries + static_cast<std::size_t>(offset) * keys.dim(),
                      block.queries + static_cast<std::size_t>(offset + 1) * keys.dim());
    }
  }

  int first_key(int candidate_block) const { return candidate_first_key(p_, sink_blocks_, candidate_block); }

  void prefetch(int candidate_block) const {
    const int first = first_key(candidate_block);
    for (int t = first; t < std::min(first + p_.block_size_k, keys_.tokens()); ++t) keys_.prefetch(kv_head_, t);
  }

  float score(int candidate_block, MaskCounters* counters) const {
    const int first = first_key(candidate_block);
    const int end = std::min(first + p_.block_size_k, keys_.tokens());
    float best = kNoScore;
    for (int t = first; t < end; ++t) {
      // Sampled queries are in position order: those at least `window` after t form a suffix.
      const auto visible = std::lower_bound(positions_.begin(), positions_.end(), t + p_.window);
      if (visible == positions_.end()) continue;
      const int from = static_cast<int>(visible - positions_.begin());
      best = std::max(best, keys_.max_dot(queries_.data() + static_cast<std::size_t>(from) * keys_.dim(),
                                          static_cast<int>(positions_.size()) - from, kv_head_, t));
      if (counters) ++counters->key_rows_read;
    }
    return best;
  }

 private:
  const HipMaskParams& p_;
  const KeyRows& keys_;
  int kv_head_;
  int sink_blocks_;
  std::vector<int> positions_;
  std::vector<float> queries_;
};

// One query block's hierarchical search: the nodes it keeps and the children an iteration scores.
class BlockSearch {
 public:
  BlockSearch(const HipMaskParams& p, const QueryBlock& block, const KeyRows& keys, int kv_head, int sink_blocks,
              std::vector<Node> nodes)
      : scorer_(p, block, keys, kv_head, sink_blocks), nodes_(std::move(nodes)) {}

  // Splits every node into the halves to score; false once every node is a single key block (done).
  bool split() {
    const auto widest = std::max_element(nodes_.begin(), nodes_.end(), [](Node a, Node b) { return a.size < b.size; });
    if (widest->size <= 1) return false;
    children_.clear();
    for (const Node& n : nodes_) {
      const int half = n.size / 2;
      if (half > 0) children_.push_back({{n.start, half}, kNoScore});
      children_.push_back({{n.start + half, n.size - half}, kNoScore});
    }
    return true;
  }

  std::size_t children() const { return children_.size(); }

  // Hints the rows child i scores.
  void prefetch_child(std::size_t i) const { scorer_.prefetch(centre(children_[i].node)); }

  // Scores child i by its centre key block.
  void score_child(std::size_t i, MaskCounters* counters) {
    children_[i].score = scorer_.score(centre(children_[i].node), counters);
  }

  // The best `max_nodes` children become the nodes.
  void keep_best(int max_nodes) {
    if (children_.size() > static_cast<std::size_t>(max_nodes)) {
      std::nth_element(children_.begin(), children_.begin() + max_nodes, children_.end(), ranks_before);
      children_.resize(max_nodes);
    }
    nodes_.clear();
    for (const ScoredNode& c : children_) nodes_.push_back(c.node);
  }

  // First keys of the nodes' key blocks, ascending.
  std::vector<int> selected() const {
    std::vector<int> out;
    for (const Node& n : nodes_) out.push_back(scorer_.first_key(n.start));
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  static int centre(const Node& n) { return n.start + n.size / 2; }

  BlockScorer scorer_;
  std::vector<Node> nodes_;
  std::vector<ScoredNode> children_;
};

// Scores every child of the `active` searches: child i of every search in turn. The searches start from the
// same nodes, so their first iterations score the same centre blocks, and each such row comes from memory
// once for the group (the other searches find it in L1). The rows of the child kAhead places later in that
// order are prefetched meanwhile: with one query per head the scoring is short next to a row's trip from
// memory, so many rows must be in flight.
void score_children(const std::vector<BlockSearch*>& active, MaskCounters* counters) {
  constexpr std::size_t kAhead = 16;
  struct Work {
    BlockSearch* search;
    std::size_t child;
  };
  std::vector<Work> order;
  std::size_t most = 0;
  for (const BlockSearch* s : active) most = std::max(most, s->children());
  for (std::size_t i = 0; i < most; ++i) {
    for (BlockSearch* s : active) {
      if (i < s->children()) order.push_back({s, i});
    }
  }
  for (std::size_t j = 0; j < std::min(kAhead, order.size()); ++j) order[j].search->prefetch_child(order[j].child);
  for (std::size_t j = 0; j < order.size(); ++j) {
    if (j + kAhead < order.size()) order[j + kAhead].search->prefetch_child(order[j + kAhead].child);
    order[j].search->score_child(order[j].child, counters);
  }
}

}  // namespace

void HipMaskParams::validate(const std::string& where) const {
  auto fail = [&](const std::string& what) { throw InputError(where + ": " + what); };
  if (mask_k < 1) fail("k (budget) must be at least 1");
  if (block_size_q < 1 || block_stride_q < 1 || block_size_k < 1) fail("block sizes and strides must be >= 1");
  if (block_stride_q > block_size_q) fail("block_stride_q must not exceed block_size_q");
  if (sinks < 0 || window < 0) fail("sinks and window must be >= 0");
  if (sinks % block_size_k != 0) fail("sinks must be a multiple of block_size_k");
  if (window % block_size_k != 0) fail("window must be a multiple of block_size_k");
}

std::vector<int> sampled_query_offsets(const HipMaskParams& p, int count) {
  std::vector<int> out;
  const int first = std::min(count, p.block_stride_q) - 1;
  for (int j = 0; j < p.block_size_q / p.block_stride_q; ++j) {
    const int offset = j * p.block_stride_q + first;
    if (offset < count) out.push_back(offset);
  }
  return out;
}

std::vector<std::vector<int>> select_key_blocks_for_group(const HipMaskParams& p, const std::vector<QueryBlock>& blocks,
                                                          const KeyRows& keys, int kv_head, MaskCounters* counters) {
  const QueryBlock& block = blocks.front();
  const int last_position = block.first_position + block.count - 1;
  const int candidate_keys = std::max(0, last_position + 1 - p.window - p.sinks);
  const int sink_blocks = p.sinks / p.block_size_k;
  const int candidates = (candidate_keys + p.block_size_k - 1) / p.block_size_k;
  if (candidate_keys <= p.mask_k) {
    std::vector<int> every;
    for (int b = 0; b < candidates; ++b) every.push_back(candidate_first_key(p, sink_blocks, b));
    return std::vector<std::vector<int>>(blocks.size(), every);
  }
  const int max_nodes = (p.mask_k + p.block_size_k - 1) / p.block_size_k;
  const std::vector<Node> nodes = initial_nodes(candidates, max_nodes);
  std::vector<BlockSearch> searches;
  searches.reserve(blocks.size());
  for (const QueryBlock& b : blocks) searches.emplace_back(p, b, keys, kv_head, sink_blocks, nodes);
  std::vector<BlockSearch*> active;
  for (;;) {
    active.clear();
    for (BlockSearch& s : searches) {
      if (s.split()) active.push_back(&s);
    }
    if (active.empty()) break;
    score_children(active, counters);
    for (BlockSearch* s : active) s->keep_best(max_nodes);
  }
  std::vector<std::vector<int>> selected;
  for (const BlockSearch& s : searches) selected.push_back(s.selected());
  return selected;
}

std::vector<int> select_key_blocks(const HipMaskParams& p, const QueryBlock& block, const KeyRows& keys, int kv_head,
                                   MaskCounters* counters) {
  return select_key_blocks_for_group(p, {block}, keys, kv_head, counters).front();
}

}  // namespace ctxbench::engines::hip
