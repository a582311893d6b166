#include "engines/kv_offload.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "core/metrics.h"

namespace ctxbench::engines {

double OffloadStats::hit_ratio() const {
  return accesses == 0 ? 1.0 : static_cast<double>(hits) / static_cast<double>(accesses);
}

OffloadStats& OffloadStats::operator+=(const OffloadStats& other) {
  accesses += other.accesses;
  hits += other.hits;
  bytes_to_device += other.bytes_to_device;
  device_bytes += other.device_bytes;
  capacity_bytes += other.capacity_bytes;
  return *this;
}

OffloadTier::OffloadTier(std::uint64_t capacity_entries, std::uint64_t entry_bytes)
    : capacity_(capacity_entries), entry_bytes_(entry_bytes) {
  if (capacity_entries == 0 || entry_bytes == 0) {
    throw std::invalid_argument("offload tier: capacity and entry size must be positive");
  }
  where_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(capacity_entries, 1u << 24)));
}

bool OffloadTier::access(std::uint64_t entry) {
  ++accesses_;
  const auto it = where_.find(entry);
  if (it != where_.end()) {
    ++hits_;
    recency_.splice(recency_.begin(), recency_, it->second);
    return true;
  }
  if (where_.size() == capacity_) {
    where_.erase(recency_.back());
    recency_.pop_back();
  }
  recency_.push_front(entry);
  where_.emplace(entry, recency_.begin());
  return false;
}

OffloadStats OffloadTier::stats() const {
  return {.accesses = accesses_,
          .hits = hits_,
          .bytes_to_device = (accesses_ - hits_) * entry_bytes_,
          .device_bytes = where_.size() * entry_bytes_,
          .capacity_bytes = capacity_ * entry_bytes_};
}

std::optional<std::uint64_t> OffloadCapacity::entries(std::uint64_t entries_per_token, std::uint64_t entry_bytes,
                                                      const std::string& where) const {
  if (tokens > 0 && bytes > 0) {
    throw InputError(fmt::format("{}: set {}_tokens or {}_bytes, not both", where, name, name));
  }
  if (tokens > 0) return tokens * entries_per_token;
  if (bytes <= 0) return std::nullopt;
  const auto count = static_cast<std::uint64_t>(bytes / static_cast<double>(entry_bytes));
  if (count == 0) {
    throw InputError(fmt::format("{}.{}_bytes: {} bytes hold no entry of {} bytes", where, name, bytes, entry_bytes));
  }
  return count;
}

std::vector<Measurement> offload_measurements(const std::string& prefix, const OffloadStats& stats) {
  return {
      make_measurement(prefix + "_hit_ratio", {stats.hit_ratio()}),
      make_measurement(prefix + "_accesses", {static_cast<double>(stats.accesses)}),
      make_measurement(prefix + "_bytes_to_device", {static_cast<double>(stats.bytes_to_device)}),
      make_measurement(prefix + "_device_bytes", {static_cast<double>(stats.device_bytes)}),
      make_measurement(prefix + "_capacity_bytes", {static_cast<double>(stats.capacity_bytes)}),
  };
}

}  // namespace ctxbench::engines

namespace ctxbench {

ParamSchema ParamTraits<engines::OffloadCapacity>::specs(const std::string& name, const engines::OffloadCapacity& value,
                                                         const std::string& help, const ParamLimits&) {
  // Defaults are JSON integers, as these parameters always had (a default size in bytes is whole).
  return {{.name = name + "_tokens",
           .type = ParamType::integer,
           .default_value = static_cast<long long>(value.tokens),
           .help = "simulated device cache for " + help + ", in tokens (0: no offload accounting)",
           .min = 0},
          {.name = name + "_bytes",
           .type = ParamType::number,
           .default_value = static_cast<long long>(value.bytes),
           .help = "the same cache given in bytes instead (0: unset)",
           .min = 0}};
}

engines::OffloadCapacity ParamTraits<engines::OffloadCapacity>::parse(const Json& resolved, const std::string& name) {
  return {.tokens = resolved.at(name + "_tokens").get<std::uint64_t>(),
          .bytes = resolved.at(name + "_bytes").get<double>(),
          .name = name};
}

}  // namespace ctxbench
