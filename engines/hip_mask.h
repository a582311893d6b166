// HiP v1.1 mask generation (DeepAuto-AI/hip-attention, src/hip_attn/v1_1/attention2_draft_prefetch.py):
// for one query head and one block of queries, a hierarchical top-k over key blocks. K' = ceil(k / b_k)
// nodes split the candidate key blocks into near-equal ranges; each iteration splits every node in two,
// scores each half by its centre key block (max over the block's sampled queries and the block's b_k keys
// of q.k) and keeps the best K' halves, until every node is a single key block. O(T log T) per block.
//
// Semantics (the original's GPU details are replaced by exact rules; see engines/README.md):
//  - candidates are the key blocks after the sinks up to the last query's position minus the window
//    (rounded up to a whole block); with no more than k candidate keys every candidate is selected;
//  - initial node boundaries are the original's floor(B * i / K') aligned down to 2^floor(log2 B) / K',
//    computed in exact integers;
//  - a sampled query scores only keys at least `window` positions before it (the original's window mask);
//  - halves are ranked by raw q.k (the scale does not change the order) in float, ties to the lower block;
//    empty halves and halves without any scorable key rank last. The original ranks bf16 sigmoid values,
//    which tie every score above ~6: that GPU shortcut is not reproduced.
#pragma once

#include <string>
#include <vector>

#include "engines/hip_common.h"

namespace ctxbench::engines::hip {

struct HipMaskParams {
  int mask_k = 512;        // k: keys chosen by the top-k, besides sinks and window
  int block_size_q = 64;   // b_q: queries sharing one mask
  int block_stride_q = 2;  // b_sq: every b_sq-th query of a block scores keys
  int block_size_k = 2;    // b_k: keys per selectable block
  int sinks = 256;         // leading keys always attended
  int window = 1024;       // trailing keys always attended

  // Throws InputError naming `where` and the field.
  void validate(const std::string& where) const;
};

// The queries of one query block of one query head.
struct QueryBlock {
  const float* queries = nullptr;  // [count][dim], row-major
  int count = 0;
  int first_position = 0;  // key position of queries[0]; query i sits at first_position + i
};

// Offsets (within the block) of the queries that score keys: b_sq - 1, 2 b_sq - 1, ... (the first query
// when the block has a single query).
std::vector<int> sampled_query_offsets(const HipMaskParams& p, int count);

// First keys of the selected key blocks, ascending and distinct; block j spans [j, j + b_k) clipped to the
// cache. Sinks and the window are not included.
std::vector<int> select_key_blocks(const HipMaskParams& p, const QueryBlock& block, const KeyRows& keys, int kv_head,
                                   MaskCounters* counters = nullptr);

// select_key_blocks for query blocks at the same positions (those of the query heads of one KV group), one
// result per block: the same blocks as separate calls, with each shared key row fetched once for the group.
std::vector<std::vector<int>> select_key_blocks_for_group(const HipMaskParams& p, const std::vector<QueryBlock>& blocks,
                                                          const KeyRows& keys, int kv_head,
                                                          MaskCounters* counters = nullptr);

}  // namespace ctxbench::engines::hip
