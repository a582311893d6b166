// InfiniteHiP multi-stage chunk pruning (DeepAuto-AI/hip-attention, src/hip_attn/v1_2/attention_extend.py
// and scan_stage.py). Stage 0 tiles the keys between the sinks and the window into chunks; every stage
// finds each chunk's representative token by a binary descent (split [l, r) at c = (l + r) / 2, score the
// centre token of each half by the max over the block's query vectors of q.k, keep the better half) and
// scores the chunk with the best score seen on the way; the top chunks are kept, split into the next
// stage's smaller chunks and rescanned. The last stage's kept chunks are the attended key blocks.
//
// Semantics (exact rules where the original relies on GPU tiling; see engines/README.md):
//  - the scan window is window - first chunk: a chunk is scanned while its left end is at most the block's
//    first query position minus that; chunks that were never scanned are not kept;
//  - a chunk of n tokens takes max(1, ceil(log2 n)) descent steps (the original runs the tile's maximum,
//    which only repeats the final token), ties go to the right half as in the original;
//  - with head reduction a chunk's score is the max over every query head, so all heads share one mask;
//    otherwise each query head keeps its own chunks;
//  - chunks are ranked by score, ties to the lower position; a kept chunk is split into whole sub-chunks
//    (the last chunk is cut at the end of the tiling instead of being realigned past it).
#pragma once

#include <string>
#include <vector>

#include "engines/hip_common.h"
#include "engines/kv_offload.h"
#include "kernels/rope.h"

namespace ctxbench::engines::hip {

using Chunk = kernels::KeyRange;

struct PruningStage {
  int chunk = 256;       // tokens per chunk scanned in this stage
  int query_stride = 4;  // consecutive queries averaged into one query vector
  int keep = 32768;      // tokens kept after the stage (a multiple of chunk); the last stage's is the budget
};

struct PruningParams {
  std::vector<PruningStage> stages = {{256, 4, 32768}, {32, 4, 8192}, {8, 1, 2048}};
  int query_block = 64;  // queries sharing one mask
  int sinks = 256;
  int window = 1024;
  bool head_reduction = true;

  // Throws InputError naming `where` and the offending field.
  void validate(const std::string& where) const;
  int scan_window() const;
};

// The queries of one query block, every query head.
struct QueryTile {
  const float* queries = nullptr;  // [heads][tokens][dim]: the whole attend call
  int heads = 0;
  int tokens = 0;
  int dim = 0;
  int first = 0;  // the block is queries [first, first + count)
  int count = 0;
  int first_position = 0;  // key position of query `first`

  const float* head_queries(int head) const {
    return queries + (static_cast<std::size_t>(head) * tokens + first) * dim;
  }
};

// Pruning over un-rotated queries and keys: each query is rotated to its mode position before pooling and
// each key row to its mode position as it is read (kernels/rope.h, hip_prune_*_position). The rotator must
// cover every position in play (the cache's tokens and window + 2).
struct ScanRope {
  const kernels::RopeRotator* rotator = nullptr;
  kernels::HipPrunePositions positions = kernels::HipPrunePositions::real;
};

// Chunk lists per mask group: one group shared by every head with head reduction, else one per query head.
using ChunkLists = std::vector<std::vector<Chunk>>;

// Mean of each run of `stride` consecutive queries of one head: [ceil(count / stride)][dim].
std::vector<float> pool_queries(const float* queries, int count, int dim, int stride);

// Stage 0's chunks for a cache of `tokens` keys: [sinks + i c, ...) up to tokens - scan_window().
std::vector<Chunk> initial_chunks(const PruningParams& p, int tokens);

// Runs stages from_stage..last for one query block. stage_inputs[s] holds stage s's input chunks: stage 0's
// is built here, later ones are filled in as stages run (a decode step may restart from a cached stage by
// passing its input). Returns the last stage's kept chunks per group, ascending. Key rows read are counted
// in `counters` and, in order, accessed in `tier` as entries token * heads_kv + kv_head (both optional).
// Without `rope` the queries and keys are scored as given (rotated already, or position-free).
ChunkLists prune(const PruningParams& p, const QueryTile& tile, const KeyRows& keys, int heads_kv, int from_stage,
                 std::vector<ChunkLists>& stage_inputs, int threads, MaskCounters* counters = nullptr,
                 OffloadTier* tier = nullptr, const ScanRope* rope = nullptr);

}  // namespace ctxbench::engines::hip
