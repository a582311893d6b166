// Simulated KV offload (InfiniteHiP's "KV cache offloading", used by any method that keeps K/V in host
// memory): all K/V stay in host memory and a device-side cache of fixed capacity holds the entries used
// most recently, with least-recently-used replacement. On a CPU nothing moves; the tier only counts, so a
// run can answer "how much device memory does a 1M-token context need for a 95% hit ratio".
//
// An entry is whatever unit a method fetches (InfiniteHiP: one token's row of one KV head; InfLLM: a
// memory block); the engine names entries with integer ids and says how many bytes one entry is.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/measurement.h"
#include "core/param_fields.h"
#include "core/params.h"

namespace ctxbench::engines {

struct OffloadStats {
  std::uint64_t accesses = 0;
  std::uint64_t hits = 0;
  std::uint64_t bytes_to_device = 0;  // bytes that would cross the host-device link: every miss loads an entry
  std::uint64_t device_bytes = 0;     // bytes held on the device after the last access
  std::uint64_t capacity_bytes = 0;

  // 1 - misses / accesses (1 when nothing was accessed).
  double hit_ratio() const;
  // Sums the counts (totals over layers or tiers).
  OffloadStats& operator+=(const OffloadStats& other);
};

class OffloadTier {
 public:
  // Throws std::invalid_argument when capacity_entries or entry_bytes is 0.
  OffloadTier(std::uint64_t capacity_entries, std::uint64_t entry_bytes);

  // Records one access; returns true on a hit. A miss loads the entry, evicting the least recently used
  // one when the tier is full.
  bool access(std::uint64_t entry);
  // Whether the entry is on the device now; not an access.
  bool holds(std::uint64_t entry) const { return where_.contains(entry); }

  OffloadStats stats() const;

 private:
  std::uint64_t capacity_;
  std::uint64_t entry_bytes_;
  std::uint64_t accesses_ = 0;
  std::uint64_t hits_ = 0;
  std::list<std::uint64_t> recency_;  // most recent first
  std::unordered_map<std::uint64_t, std::list<std::uint64_t>::iterator> where_;
};

// A tier's size as a suite gives it: a field of this type named NAME declares the parameters "NAME_tokens" and
// "NAME_bytes" (0: unset; at most one of the two).
struct OffloadCapacity {
  std::uint64_t tokens = 0;
  double bytes = 0;
  std::string name = {};  // the field's, for errors

  // The capacity in entries, one token being `entries_per_token` entries of `entry_bytes` each, or nothing when
  // both sizes are 0. Throws InputError naming `where` when both are set or the size holds no entry.
  std::optional<std::uint64_t> entries(std::uint64_t entries_per_token, std::uint64_t entry_bytes,
                                       const std::string& where) const;
};

// "<prefix>_hit_ratio", "<prefix>_accesses", "<prefix>_bytes_to_device", "<prefix>_device_bytes",
// "<prefix>_capacity_bytes".
std::vector<Measurement> offload_measurements(const std::string& prefix, const OffloadStats& stats);

}  // namespace ctxbench::engines

namespace ctxbench {

// The help of an OffloadCapacity field says what the tier caches.
template <>
struct ParamTraits<engines::OffloadCapacity> {
  static ParamSchema specs(const std::string& name, const engines::OffloadCapacity& value, const std::string& help,
                           const ParamLimits&);
  static engines::OffloadCapacity parse(const Json& resolved, const std::string& name);
};

}  // namespace ctxbench
