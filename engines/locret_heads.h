// Locret's retaining heads (Huang et al. 2024, arXiv 2410.01805): per layer a small MLP that reads one token's
// concat(q, k, v) (all query heads, then the KV heads' keys, then their values; width (heads_q + 2 heads_kv) x
// head_dim) and predicts, per KV head, the causal importance of the token's key and value:
// score = fc2 . silu(fc1 . x), no biases. Trained by `scripts/train_model.py locret` and stored as safetensors
// (F32 tensors `layers.<i>.fc1.weight` [hidden, width] and `layers.<i>.fc2.weight` [heads_kv, hidden]).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engines/engine.h"

namespace ctxbench::engines {

// One layer's heads. fc1 is linear, so a token's hidden pre-activation is the sum of its keys' and values' part,
// computed when they arrive, and its query's part, added when the query is attended: a session holds `hidden`
// floats per token waiting for its query, not its whole input.
struct RetainingHead {
  int width = 0;                // input: (heads_q + 2 heads_kv) x head_dim
  int query_width = 0;          // the leading heads_q x head_dim of it
  int hidden = 0;               // fc1's outputs
  int outputs = 0;              // one score per KV head
  std::vector<float> fc1, fc2;  // row-major [hidden][width], [outputs][hidden]

  // pre [hidden] = fc1's columns of the keys and values times kv [width - query_width].
  void key_value_part(const float* kv, float* pre) const;
  // pre [hidden] += fc1's columns of the queries times q [query_width].
  void add_query_part(const float* q, float* pre) const;
  // out [outputs] = fc2 . silu(pre).
  void finish(const float* pre, float* out) const;
  // Scores of one token: x [width] -> out [outputs].
  void score(const float* x, float* out) const;
};

// A file of retaining heads, every layer, read whole. Errors (missing or unreadable file, a header that is not
// safetensors, a dtype other than F32, a missing tensor, a shape that does not fit the layout) are InputErrors
// naming the file and the tensor.
class RetainingHeadsFile {
 public:
  explicit RetainingHeadsFile(const std::string& path);
  // Layer `layout.layer`'s heads, checked against the layout's widths.
  RetainingHead layer(const HeadLayout& layout) const;

 private:
  struct Tensor {
    std::vector<std::int64_t> shape;
    std::vector<float> values;
  };
  const Tensor& tensor(const std::string& name) const;

  std::string path_;
  std::map<std::string, Tensor> tensors_;
};

// Untrained heads for any layout: weights uniform in +-1/sqrt(fan_in) (PyTorch's Linear initialisation) from a
// fixed seed per layout and layer. They exercise the mechanics where no trained heads fit (attention-level
// problems, the conformance test); their scores mean nothing.
RetainingHead untrained_head(const HeadLayout& layout, int hidden = 16);

}  // namespace ctxbench::engines
