// Memory-mapped safetensors files and HF model directories (model.safetensors, or shards listed by
// model.safetensors.index.json). Tensors are views into the mapping; every error names the file and, where
// there is one, the tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/attention.h"

namespace ctxbench::model {

using kernels::DType;

struct TensorView {
  std::string name;
  std::string file;        // the safetensors file it lives in
  std::string dtype_name;  // as written in the header ("F32", "BF16", "I64", ...)
  std::vector<std::int64_t> shape;
  const std::byte* data = nullptr;  // aligned to the element size
  std::size_t bytes = 0;

  std::int64_t elements() const;
  // F32, F16 and BF16 only; throws std::runtime_error naming file, tensor and dtype otherwise.
  DType dtype() const;
};

class SafetensorsFile {
 public:
  // Maps the file and checks its header: the 8-byte length, the JSON, each tensor's dtype, shape and
  // data_offsets against the data section. Throws std::runtime_error naming the file (and tensor).
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const TensorView* find(const std::string& name) const;
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }

 private:
  void parse_header();

  std::string path_;
  void* map_ = nullptr;
  std::size_t size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::vector<std::unique_ptr<std::byte[]>> realigned_;  // copies of tensors whose offset breaks alignment
};

// The weights of an HF model directory.
class WeightStore {
 public:
  // model.safetensors.index.json (its weight_map names the shards) if present, else model.safetensors.
  explicit WeightStore(const std::string& dir);

  const TensorView* find(const std::string& name) const;
  // The tensor with exactly this shape. Throws std::runtime_error naming the file and the tensor when it
  // is missing, has another shape, or is not F32/F16/BF16.
  const TensorView& get(const std::string& name, const std::vector<std::int64_t>& shape) const;
  // Where a missing tensor was looked for (the index or the single file).
  const std::string& source() const { return source_; }
  // Bytes of every tensor's data: what the mapped weights occupy once read.
  std::uint64_t tensor_bytes() const;

 private:
  std::string source_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> tensors_;
};

std::string shape_string(const std::vector<std::int64_t>& shape);

}  // namespace ctxbench::model
