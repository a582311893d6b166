// Where the bundled data lives: relative paths in suites and options (the bundled model, data sets, haystacks)
// are taken from the source tree, so that a suite runs from any working directory.
#pragma once

#include <filesystem>
#include <string>

namespace ctxbench {

// The source tree's root, as built.
std::filesystem::path source_tree();

// `path` itself when absolute, else the same path under the source tree.
std::filesystem::path from_source_tree(const std::string& path);

}  // namespace ctxbench
