// The estimate behind MInference's vertical-slash pattern, shared by `vertical_slash` and FlexPrefill (whose
// vertical-slash heads choose blocks from the same column and diagonal sums).
#pragma once

#include <vector>

#include "engines/selection.h"

namespace ctxbench::engines {

// Softmax probabilities of the last `observed` of a prefill call's n queries (query head `head` of q
// [heads][n][dim], the queries sitting at the last n of `context` positions) over every key each query can see,
// summed per key (`vertical`, indexed by key position) and per diagonal (`slash`, indexed by query position - key
// position). `keys` holds the query head's KV head.
struct ColumnDiagonalMass {
  std::vector<float> vertical, slash;
};
ColumnDiagonalMass column_diagonal_mass(const float* q, int n, int head, int observed, const WideKeys& keys,
                                        int context, int dim, float scale);

}  // namespace ctxbench::engines
