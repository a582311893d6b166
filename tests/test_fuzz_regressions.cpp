// The fuzz targets' bodies over every input that once made one fail (tests/fixtures/fuzz_regressions, named
// TARGET-what.ext) and over the seed corpora (fuzz/corpus/TARGET): each must parse or fail with the parser's
// documented exception. In the sanitize build this also runs under ASan and UBSan.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fuzz/targets.h"

using namespace ctxbench;

namespace {

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

}  // namespace

TEST_CASE("fuzz regressions: every input that once crashed a parser now parses or fails cleanly", "[fuzz]") {
  int inputs = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(CTXBENCH_SOURCE_DIR "/tests/fixtures/fuzz_regressions")) {
    const std::string name = entry.path().filename().string();
    INFO(entry.path().string());
    const auto target = fuzz::targets().find(name.substr(0, name.find('-')));
    REQUIRE(target != fuzz::targets().end());  // the file name starts with a target's name
    CHECK_NOTHROW(target->second(read_bytes(entry.path())));
    ++inputs;
  }
  CHECK(inputs > 0);
}

TEST_CASE("fuzz seed corpora: every target has seeds, and each parses or fails cleanly", "[fuzz]") {
  for (const auto& [name, target] : fuzz::targets()) {
    const std::filesystem::path dir = std::filesystem::path(CTXBENCH_SOURCE_DIR) / "fuzz/corpus" / name;
    INFO(dir.string());
    REQUIRE(std::filesystem::is_directory(dir));
    int seeds = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      INFO(entry.path().string());
      CHECK_NOTHROW(target(read_bytes(entry.path())));
      ++seeds;
    }
    CHECK(seeds > 0);
  }
}
