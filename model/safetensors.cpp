#include "model/safetensors.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace ctxbench::model {

using Json = nlohmann::json;

namespace {

// Header sizes beyond this are corruption, not models (the format caps them at 100 MB).
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

std::size_t dtype_size(const std::string& dtype) {
  static const std::map<std::string, std::size_t> sizes = {
      {"F64", 8}, {"I64", 8}, {"U64", 8}, {"F32", 4}, {"I32", 4},  {"U32", 4},     {"F16", 2},    {"BF16", 2},
      {"I16", 2}, {"U16", 2}, {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

[[noreturn]] void fail(const std::string& file, const std::string& what) {
  throw std::runtime_error(fmt::format("{}: {}", file, what));
}

[[noreturn]] void fail_tensor(const std::string& file, const std::string& tensor, const std::string& what) {
  throw std::runtime_error(fmt::format("{}: tensor \"{}\": {}", file, tensor, what));
}

}  // namespace

std::string shape_string(const std::vector<std::int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

std::int64_t TensorView::elements() const {
  std::int64_t n = 1;
  for (const auto d : shape) n *= d;
  return n;
}

DType TensorView::dtype() const {
  if (dtype_name == "F32") return DType::f32;
  if (dtype_name == "F16") return DType::f16;
  if (dtype_name == "BF16") return DType::bf16;
  fail_tensor(file, name, "dtype " + dtype_name + " is not supported (expected F32, F16 or BF16)");
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail(path, std::string("cannot stat: ") + std::strerror(errno));
  }
  size_ = static_cast<std::size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    fail(path, fmt::format("truncated: {} bytes, shorter than the 8-byte header length", size_));
  }
  map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    fail(path, std::string("cannot map: ") + std::strerror(errno));
  }
  try {
    parse_header();
  } catch (...) {
    ::munmap(map_, size_);
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

void SafetensorsFile::parse_header() {
  const auto* bytes = static_cast<const std::byte*>(map_);
  std::uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes, 8);  // little-endian, as the format and this machine are
  if (header_bytes > kMaxHeaderBytes || header_bytes > size_ - 8) {
    fail(path_, fmt::format("corrupt or truncated header: it claims {} bytes but the file has {} after the length",
                            header_bytes, size_ - 8));
  }
  Json header;
  try {
    header =
        Json::parse(reinterpret_cast<const char*>(bytes + 8), reinterpret_cast<const char*>(bytes + 8 + header_bytes));
  } catch (const Json::exception& e) {  // parse_error, or out_of_range: a number beyond a double
    fail(path_, std::string("corrupt header: not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(path_, "corrupt header: expected a JSON object of tensors");
  const std::byte* data = bytes + 8 + header_bytes;
  const std::uint64_t data_bytes = size_ - 8 - header_bytes;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    if (!entry.is_object() || !entry.contains("dtype") || !entry["dtype"].is_string() || !entry.contains("shape") ||
        !entry["shape"].is_array() || !entry.contains("data_offsets") || !entry["data_offsets"].is_array() ||
        entry["data_offsets"].size() != 2) {
      fail_tensor(path_, name, "header entry needs \"dtype\", \"shape\" and two \"data_offsets\", got " + entry.dump());
    }
    TensorView t;
    t.name = name;
    t.file = path_;
    t.dtype_name = entry["dtype"].get<std::string>();
    const std::size_t element_bytes = dtype_size(t.dtype_name);
    if (element_bytes == 0) fail_tensor(path_, name, "unknown dtype " + t.dtype_name);
    // The element and byte counts must not overflow, even where a later 0 would make them small (as the
    // reference implementation checks): a wrapped product could match a short data range.
    std::uint64_t elements = 1, expected_bytes = 0;
    for (const Json& d : entry["shape"]) {
      if (!d.is_number_integer() || d.get<std::int64_t>() < 0) {
        fail_tensor(path_, name, "shape must be non-negative integers, got " + entry["shape"].dump());
      }
      t.shape.push_back(d.get<std::int64_t>());
      if (__builtin_mul_overflow(elements, static_cast<std::uint64_t>(t.shape.back()), &elements) ||
          elements > static_cast<std::uint64_t>(INT64_MAX)) {
        fail_tensor(path_, name, "shape " + entry["shape"].dump() + " has more elements than can be counted");
      }
    }
    if (__builtin_mul_overflow(elements, element_bytes, &expected_bytes)) {
      fail_tensor(path_, name, "shape " + entry["shape"].dump() + " has more bytes than can be counted");
    }
    const Json& offsets = entry["data_offsets"];
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
      fail_tensor(path_, name, "data_offsets must be non-negative integers, got " + offsets.dump());
    }
    const auto begin = offsets[0].get<std::uint64_t>(), end = offsets[1].get<std::uint64_t>();
    if (begin > end || end > data_bytes) {
      fail_tensor(path_, name,
                  fmt::format("data_offsets [{}, {}] fall outside the {} data bytes (truncated file?)", begin, end,
                              data_bytes));
    }
    t.bytes = end - begin;
    if (t.bytes != expected_bytes) {
      fail_tensor(path_, name,
                  fmt::format("{} bytes of data for shape {} of {} ({} expected)", t.bytes, shape_string(t.shape),
                              t.dtype_name, expected_bytes));
    }
    t.data = data + begin;
    if (reinterpret_cast<std::uintptr_t>(t.data) % element_bytes != 0) {
      auto copy = std::make_unique<std::byte[]>(t.bytes);
      std::memcpy(copy.get(), t.data, t.bytes);
      t.data = copy.get();
      realigned_.push_back(std::move(copy));
    }
    tensors_.emplace(name, std::move(t));
  }
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::uint64_t WeightStore::tensor_bytes() const {
  std::uint64_t sum = 0;
  for (const auto& [name, tensor] : tensors_) sum += tensor->bytes;
  return sum;
}

WeightStore::WeightStore(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  const fs::path single_path = fs::path(dir) / "model.safetensors";
  if (!fs::exists(index_path)) {
    source_ = single_path.string();
    if (!fs::exists(single_path)) {
      fail(source_, "not found (a model directory needs model.safetensors or model.safetensors.index.json)");
    }
    files_.push_back(std::make_unique<SafetensorsFile>(source_));
    for (const auto& [name, t] : files_.back()->tensors()) tensors_[name] = &t;
    return;
  }
  source_ = index_path.string();
  std::ifstream in(index_path);
  Json index;
  try {
    index = Json::parse(in);
  } catch (const Json::exception& e) {  // parse_error, or out_of_range: a number beyond a double
    fail(source_, std::string("not valid JSON: ") + e.what());
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    fail(source_, "expected an object with a \"weight_map\" object (tensor -> shard file)");
  }
  std::map<std::string, SafetensorsFile*> shards;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) fail(source_, fmt::format("weight_map.{}: expected a file name", name));
    const std::string file = shard.get<std::string>();
    auto& open = shards[file];
    if (!open) {
      files_.push_back(std::make_unique<SafetensorsFile>((fs::path(dir) / file).string()));
      open = files_.back().get();
    }
    const TensorView* t = open->find(name);
    if (!t) fail_tensor(open->path(), name, "listed in " + source_ + " but missing from the shard");
    tensors_[name] = t;
  }
}

const TensorView* WeightStore::find(const std::string& name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second;
}

const TensorView& WeightStore::get(const std::string& name, const std::vector<std::int64_t>& shape) const {
  const TensorView* t = find(name);
  if (!t) fail_tensor(source_, name, "missing");
  if (t->shape != shape) {
    fail_tensor(t->file, name,
                fmt::format("shape {} disagrees with the config, which implies {}", shape_string(t->shape),
                            shape_string(shape)));
  }
  t->dtype();  // throws for dtypes the runtime cannot use
  return *t;
}

}  // namespace ctxbench::model
