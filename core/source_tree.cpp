#include "core/source_tree.h"

namespace ctxbench {

std::filesystem::path source_tree() { return CTXBENCH_SOURCE_DIR; }

std::filesystem::path from_source_tree(const std::string& path) {
  const std::filesystem::path p(path);
  return p.is_absolute() ? p : source_tree() / p;
}

}  // namespace ctxbench
