#include "engines/hip_common.h"

#include <algorithm>
#include <vector>

namespace ctxbench::engines::hip {

std::vector<KeyRange> block_ranges(int sinks, int window, std::vector<KeyRange> selected, int first_position,
                                   int last_position) {
  selected.push_back({0, sinks});
  selected.push_back({std::max(0, first_position + 1 - window), last_position + 1});
  return visible_ranges(merge_ranges(std::move(selected)), last_position);
}

std::uint64_t visible_keys(const std::vector<KeyRange>& ranges, int position) {
  std::uint64_t keys = 0;
  for (const KeyRange& r : ranges) {
    if (r.begin > position) break;
    keys += std::min(r.end, position + 1) - r.begin;
  }
  return keys;
}

std::vector<KeyRange> visible_ranges(const std::vector<KeyRange>& ranges, int position) {
  std::vector<KeyRange> out;
  for (const KeyRange& r : ranges) {
    if (r.begin > position) break;
    out.push_back({r.begin, std::min(r.end, position + 1)});
  }
  return out;
}

}  // namespace ctxbench::engines::hip
