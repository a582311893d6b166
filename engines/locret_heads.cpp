#include "engines/locret_heads.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "core/params.h"
#include "core/random.h"

namespace ctxbench::engines {
namespace {

int input_width(const HeadLayout& layout) { return (layout.heads_q + 2 * layout.heads_kv) * layout.head_dim; }
int query_width(const HeadLayout& layout) { return layout.heads_q * layout.head_dim; }

std::string shape_text(const std::vector<std::int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

}  // namespace

void RetainingHead::key_value_part(const float* kv, float* pre) const {
  for (int j = 0; j < hidden; ++j) {
    const float* row = fc1.data() + static_cast<std::size_t>(j) * width + query_width;
    float sum = 0.0f;
    for (int i = 0; i < width - query_width; ++i) sum += row[i] * kv[i];
    pre[j] = sum;
  }
}

void RetainingHead::add_query_part(const float* q, float* pre) const {
  for (int j = 0; j < hidden; ++j) {
    const float* row = fc1.data() + static_cast<std::size_t>(j) * width;
    float sum = 0.0f;
    for (int i = 0; i < query_width; ++i) sum += row[i] * q[i];
    pre[j] += sum;
  }
}

void RetainingHead::finish(const float* pre, float* out) const {
  std::vector<float> activation(hidden);
  for (int j = 0; j < hidden; ++j) activation[j] = pre[j] / (1.0f + std::exp(-pre[j]));
  for (int o = 0; o < outputs; ++o) {
    const float* row = fc2.data() + static_cast<std::size_t>(o) * hidden;
    float sum = 0.0f;
    for (int j = 0; j < hidden; ++j) sum += row[j] * activation[j];
    out[o] = sum;
  }
}

void RetainingHead::score(const float* x, float* out) const {
  std::vector<float> pre(hidden);
  key_value_part(x + query_width, pre.data());
  add_query_part(x, pre.data());
  finish(pre.data(), out);
}

RetainingHeadsFile::RetainingHeadsFile(const std::string& path) : path_(path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw InputError(fmt::format("locret.heads: cannot open {} (train it: scripts/train_model.py locret)", path));
  std::uint64_t header_bytes = 0;
  if (!in.read(reinterpret_cast<char*>(&header_bytes), sizeof header_bytes) || header_bytes > (1u << 24)) {
    throw InputError(fmt::format("locret.heads: {} is not a safetensors file (no header length)", path));
  }
  std::string header_text(header_bytes, '\0');
  in.read(header_text.data(), static_cast<std::streamsize>(header_bytes));
  const Json header = Json::parse(header_text, nullptr, false);
  if (!in || header.is_discarded() || !header.is_object()) {
    throw InputError(fmt::format("locret.heads: {} is not a safetensors file (bad header)", path));
  }
  const std::vector<char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    if (info.value("dtype", "") != "F32") {
      throw InputError(fmt::format("locret.heads: {} tensor {} has dtype {}, expected F32", path, name,
                                   info.value("dtype", "(none)")));
    }
    Tensor tensor{info.at("shape").get<std::vector<std::int64_t>>(), {}};
    const auto offsets = info.at("data_offsets").get<std::vector<std::uint64_t>>();
    std::uint64_t elements = 1;
    for (std::int64_t extent : tensor.shape) elements *= static_cast<std::uint64_t>(extent);
    if (offsets.size() != 2 || offsets[1] > data.size() || offsets[1] - offsets[0] != elements * sizeof(float)) {
      throw InputError(fmt::format("locret.heads: {} tensor {}: data offsets do not match its shape {}", path, name,
                                   shape_text(tensor.shape)));
    }
    tensor.values.resize(elements);
    std::memcpy(tensor.values.data(), data.data() + offsets[0], elements * sizeof(float));
    tensors_.emplace(name, std::move(tensor));
  }
}

const RetainingHeadsFile::Tensor& RetainingHeadsFile::tensor(const std::string& name) const {
  const auto found = tensors_.find(name);
  if (found == tensors_.end()) throw InputError(fmt::format("locret.heads: {} has no tensor {}", path_, name));
  return found->second;
}

RetainingHead RetainingHeadsFile::layer(const HeadLayout& layout) const {
  const std::string prefix = fmt::format("layers.{}.", layout.layer);
  const Tensor& fc1 = tensor(prefix + "fc1.weight");
  const Tensor& fc2 = tensor(prefix + "fc2.weight");
  const int width = input_width(layout);
  if (fc1.shape.size() != 2 || fc1.shape[0] < 1 || fc1.shape[1] != width) {
    throw InputError(fmt::format(
        "locret.heads: {} tensor {}fc1.weight has shape {}, expected [hidden, {}] ((heads_q {} + 2 x heads_kv {}) x "
        "head_dim {}): the heads were trained for another model",
        path_, prefix, shape_text(fc1.shape), width, layout.heads_q, layout.heads_kv, layout.head_dim));
  }
  if (fc2.shape != std::vector<std::int64_t>{layout.heads_kv, fc1.shape[0]}) {
    throw InputError(fmt::format("locret.heads: {} tensor {}fc2.weight has shape {}, expected [{}, {}]", path_, prefix,
                                 shape_text(fc2.shape), layout.heads_kv, fc1.shape[0]));
  }
  return {width, query_width(layout), static_cast<int>(fc1.shape[0]), layout.heads_kv, fc1.values, fc2.values};
}

RetainingHead untrained_head(const HeadLayout& layout, int hidden) {
  RetainingHead head{input_width(layout), query_width(layout), hidden, layout.heads_kv, {}, {}};
  Rng rng(0x10c7e7ull ^ (static_cast<std::uint64_t>(layout.layer) << 32) ^ static_cast<std::uint64_t>(head.width));
  auto fill = [&rng](std::vector<float>& weights, std::size_t count, int fan_in) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    weights.resize(count);
    for (float& w : weights) w = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
  };
  fill(head.fc1, static_cast<std::size_t>(hidden) * head.width, head.width);
  fill(head.fc2, static_cast<std::size_t>(head.outputs) * hidden, hidden);
  return head;
}

}  // namespace ctxbench::engines
