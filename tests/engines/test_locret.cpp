// Locret (engines/locret.cpp, engines/locret_heads.h): the retaining heads' forward pass against a float64
// evaluation; loading errors named; each query row's keys after every call against a float64 transcription of the
// rule (scores from the heads on concat(q, k, v), a zero query for tokens never queried; after a prefill call that
// completes a chunk, every KV head keeps its newest `stabilizers` keys and its best-scored others up to the budget);
// through the bundled model with its shipped heads, a budget covering the context gives dense logits.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <set>

#include "core/source_tree.h"
#include "engines/engine.h"
#include "engines/locret_heads.h"
#include "model/backend.h"
#include "model/llama_model.h"
#include "tests/engine_problems.h"
#include "tests/model_logits.h"

using namespace ctxbench;
using namespace ctxbench::testing;

namespace {

struct TensorData {
  std::vector<std::int64_t> shape;
  std::vector<float> values;
  std::string dtype = "F32";
};

// A safetensors file of F32 tensors (a tensor marked F16 is written as 2-byte zeros).
void write_safetensors(const std::string& path, const std::map<std::string, TensorData>& tensors) {
  Json header = Json::object();
  std::string data;
  for (const auto& [name, t] : tensors) {
    const std::size_t bytes = t.values.size() * (t.dtype == "F32" ? 4 : 2);
    header[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + bytes}}};
    if (t.dtype == "F32")
      data.append(reinterpret_cast<const char*>(t.values.data()), bytes);
    else
      data.append(bytes, '\0');
  }
  const std::string text = header.dump();
  const std::uint64_t length = text.size();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&length), sizeof length);
  out << text << data;
}

// Random heads for `layers` layers of a layout, hidden units `hidden`.
struct Heads {
  int width, hidden, outputs;
  std::vector<std::vector<float>> fc1, fc2;  // per layer
};

Heads random_heads(const engines::HeadLayout& layout, int layers, int hidden, std::uint64_t seed) {
  Rng rng(seed);
  Heads heads{(layout.heads_q + 2 * layout.heads_kv) * layout.head_dim, hidden, layout.heads_kv, {}, {}};
  for (int l = 0; l < layers; ++l) {
    heads.fc1.push_back(random_vector(rng, static_cast<std::size_t>(hidden) * heads.width));
    heads.fc2.push_back(random_vector(rng, static_cast<std::size_t>(heads.outputs) * hidden));
    for (float& w : heads.fc1.back()) w *= 0.5f / std::sqrt(static_cast<float>(heads.width));
  }
  return heads;
}

void write_heads(const std::string& path, const Heads& heads) {
  std::map<std::string, TensorData> tensors;
  for (std::size_t l = 0; l < heads.fc1.size(); ++l) {
    tensors["layers." + std::to_string(l) + ".fc1.weight"] = {{heads.hidden, heads.width}, heads.fc1[l]};
    tensors["layers." + std::to_string(l) + ".fc2.weight"] = {{heads.outputs, heads.hidden}, heads.fc2[l]};
  }
  write_safetensors(path, tensors);
}

// fc2 . silu(fc1 . x) in float64.
std::vector<double> score64(const Heads& heads, int layer, const std::vector<double>& x) {
  std::vector<double> act(heads.hidden), out(heads.outputs, 0.0);
  for (int j = 0; j < heads.hidden; ++j) {
    double sum = 0.0;
    for (int i = 0; i < heads.width; ++i) sum += static_cast<double>(heads.fc1[layer][j * heads.width + i]) * x[i];
    act[j] = sum / (1.0 + std::exp(-sum));
  }
  for (int o = 0; o < heads.outputs; ++o) {
    for (int j = 0; j < heads.hidden; ++j)
      out[o] += static_cast<double>(heads.fc2[layer][o * heads.hidden + j]) * act[j];
  }
  return out;
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

std::unique_ptr<engines::Engine> locret(const Json& params) {
  const auto& info = engines::EngineRegistry::instance().get("locret", "test");
  return info.make(resolve_params(info.params, params, "locret"));
}

}  // namespace

TEST_CASE("locret: the heads' forward pass equals a float64 evaluation of fc2 . silu(fc1 . x)", "[engines][locret]") {
  TempDir dir;
  const engines::HeadLayout layouts[] = {head_layout(4, 2, 8, kernels::DType::f32, 1),
                                         head_layout(1, 1, 16, kernels::DType::f16, 1),
                                         head_layout(8, 1, 4, kernels::DType::bf16, 1)};
  for (const auto& layout : layouts) {
    for (int hidden : {1, 5, 24}) {
      const Heads heads = random_heads(layout, 3, hidden, 7 + hidden);
      write_heads(dir.file("heads.safetensors"), heads);
      const engines::RetainingHead head = engines::RetainingHeadsFile(dir.file("heads.safetensors")).layer(layout);
      REQUIRE(head.hidden == hidden);
      Rng rng(hidden);
      for (int trial = 0; trial < 5; ++trial) {
        const std::vector<float> x = random_vector(rng, heads.width);
        std::vector<float> got(heads.outputs);
        head.score(x.data(), got.data());
        const auto expected = score64(heads, 1, std::vector<double>(x.begin(), x.end()));
        CHECK(relative_l2_error(got, expected) < 1e-5);
        // Layer 1's weights, not another layer's.
        CHECK(relative_l2_error(got, score64(heads, 0, std::vector<double>(x.begin(), x.end()))) > 1e-3);
      }
    }
  }
}

TEST_CASE("locret: loading errors name the file and the tensor", "[engines][locret]") {
  TempDir dir;
  const auto layout = head_layout(4, 2, 8);
  const Heads heads = random_heads(layout, 2, 6, 3);
  const std::string path = dir.file("heads.safetensors");
  write_heads(path, heads);

  CHECK_THAT(error_of([&] { engines::RetainingHeadsFile(dir.file("absent.safetensors")); }),
             Catch::Contains("cannot open") && Catch::Contains("absent.safetensors"));
  write_file(dir.file("text.safetensors"), "not a safetensors file");
  CHECK_THAT(error_of([&] { engines::RetainingHeadsFile(dir.file("text.safetensors")); }),
             Catch::Contains("text.safetensors") && Catch::Contains("not a safetensors file"));
  // A layer the file does not have.
  auto beyond = layout;
  beyond.layer = 2;
  CHECK_THAT(error_of([&] { engines::RetainingHeadsFile(path).layer(beyond); }),
             Catch::Contains("has no tensor layers.2.fc1.weight"));
  // Heads trained for another layout: fc1's width.
  CHECK_THAT(error_of([&] { engines::RetainingHeadsFile(path).layer(head_layout(4, 2, 16)); }),
             Catch::Contains("layers.0.fc1.weight has shape [6, 64]") && Catch::Contains("expected [hidden, 128]"));
  // fc2 with the wrong number of KV heads.
  write_safetensors(dir.file("fc2.safetensors"), {{"layers.0.fc1.weight", {{6, 64}, heads.fc1[0]}},
                                                  {"layers.0.fc2.weight", {{3, 6}, std::vector<float>(18)}}});
  CHECK_THAT(error_of([&] { engines::RetainingHeadsFile(dir.file("fc2.safetensors")).layer(layout); }),
             Catch::Contains("layers.0.fc2.weight has shape [3, 6], expected [2, 6]"));
  write_safetensors(dir.file("f16.safetensors"), {{"layers.0.fc1.weight", {{6, 64}, heads.fc1[0], "F16"}}});
  CHECK_THAT(error_of([&] { engines::RetainingHeadsFile(dir.file("f16.safetensors")); }),
             Catch::Contains("layers.0.fc1.weight has dtype F16, expected F32"));
  // Through the engine: a missing file when the engine is made, a misfit when a session opens.
  CHECK_THAT(error_of([&] { locret({{"heads", dir.file("absent.safetensors")}}); }), Catch::Contains("cannot open"));
  const auto engine = locret({{"heads", path}});
  CHECK_THAT(error_of([&] { engine->open(head_layout(8, 2, 8)); }), Catch::Contains("fc1.weight has shape"));
  CHECK_NOTHROW(engine->open(layout));
}

namespace {

struct Rule {
  int budget, chunk_size, stabilizers;
};

// One call of the driver: n tokens appended, then attended in `phase`; `queried` of the newest n bring their
// queries (an attention-level prompt brings fewer).
struct Call {
  int n;
  engines::Phase phase;
  int queried;
};

// The rule, transcribed in float64: per KV head the kept positions (ascending) with their scores.
class Transcription {
 public:
  Transcription(const Problem& p, const Heads& heads, Rule rule)
      : p_(p), heads_(heads), rule_(rule), kept_(p.layout.heads_kv) {}

  void append(int n) {
    for (int i = 0; i < n; ++i) pending_.push_back(appended_ + i);
    appended_ += n;
    since_ += n;
    for (auto& held : kept_) {
      for (int t = appended_ - n; t < appended_; ++t) held.emplace_back(t, 0.0);
    }
  }

  // Keys query row (head, position) attends: what its KV head holds, up to the query.
  std::vector<int> keys(int head, int position) const {
    std::vector<int> out;
    for (const auto& [t, score] : kept_[head / (p_.layout.heads_q / p_.layout.heads_kv)]) {
      if (t <= position) out.push_back(t);
    }
    return out;
  }

  void attended(int queried, engines::Phase phase) {
    for (int t : pending_) {
      const auto scores = score64(heads_, 0, input(t, t >= appended_ - queried));
      for (auto& held : kept_) {
        for (auto& [position, score] : held) {
          if (position == t) score = scores[&held - kept_.data()];
        }
      }
    }
    pending_.clear();
    if (phase == engines::Phase::prefill && since_ >= rule_.chunk_size) {
      for (auto& held : kept_) evict(held);
      since_ = 0;
    }
  }

  int evictions_that_skipped_newest = 0;  // kept keys older than the budget's newest (scores mattered)

 private:
  std::vector<double> input(int t, bool queried) const {
    const auto& L = p_.layout;
    std::vector<double> x;
    for (int h = 0; h < L.heads_q; ++h) {
      for (int d = 0; d < L.head_dim; ++d)
        x.push_back(queried ? p_.q[(static_cast<std::size_t>(h) * p_.queries + t) * L.head_dim + d] : 0.0);
    }
    for (const auto* source : {&p_.k, &p_.v}) {
      for (int g = 0; g < L.heads_kv; ++g) {
        for (int d = 0; d < L.head_dim; ++d)
          x.push_back((*source)[(static_cast<std::size_t>(g) * p_.tokens + t) * L.head_dim + d]);
      }
    }
    return x;
  }

  void evict(std::vector<std::pair<int, double>>& held) {
    const int size = static_cast<int>(held.size()), budget = std::min(rule_.budget, appended_);
    if (size <= budget) return;
    const int newest = std::min(rule_.stabilizers, budget);
    std::vector<int> order(size - newest);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return held[a].second > held[b].second; });
    std::set<int> keep(order.begin(), order.begin() + (budget - newest));
    for (int i = size - newest; i < size; ++i) keep.insert(i);
    if (*keep.begin() < size - budget) ++evictions_that_skipped_newest;
    std::vector<std::pair<int, double>> kept;
    for (int i : keep) kept.push_back(held[i]);
    held = std::move(kept);
  }

  const Problem& p_;
  const Heads& heads_;
  Rule rule_;
  std::vector<std::vector<std::pair<int, double>>> kept_;
  std::vector<int> pending_;
  int appended_ = 0, since_ = 0;
};

// Runs the calls through a session and the transcription; every row's keys must agree and every output be exact
// over them. Returns how many evictions kept a key older than the budget's newest.
int run_rule(const Problem& p, const std::string& heads_path, const Heads& heads, Rule rule,
             const std::vector<Call>& calls) {
  const auto engine = locret({{"budget", rule.budget},
                              {"chunk_size", rule.chunk_size},
                              {"stabilizers", rule.stabilizers},
                              {"heads", heads_path}});
  const auto session = engine->open(p.layout);
  Transcription expected(p, heads, rule);
  const auto& L = p.layout;
  int at = 0;
  for (const Call& call : calls) {
    append_tokens(*session, p, at, call.n);
    expected.append(call.n);
    const int first = at + call.n - call.queried;
    const auto q = slice_tokens(p.q, L.heads_q, p.queries, L.head_dim, first, call.queried);
    std::vector<float> out(q.size());
    session->attend(q.data(), call.queried, call.phase, out.data());
    check_matches_attended(*session, p, q.data(), call.queried, first, out.data());
    for (int h = 0; h < L.heads_q; ++h) {
      for (int i = 0; i < call.queried; ++i) {
        INFO("call at " << at << " head " << h << " query " << i);
        REQUIRE(expand(session->attended(h, i)) == expected.keys(h, first + i));
      }
    }
    expected.attended(call.queried, call.phase);
    at += call.n;
  }
  return expected.evictions_that_skipped_newest;
}

std::vector<Call> mixed_calls(Rng& rng, int tokens, int decode_steps, int largest) {
  std::vector<Call> calls;
  for (int n : call_sizes(rng, tokens - decode_steps, largest, largest))
    calls.push_back({n, engines::Phase::prefill, n});
  for (int i = 0; i < decode_steps; ++i) calls.push_back({1, engines::Phase::decode, 1});
  return calls;
}

}  // namespace

TEST_CASE("locret: each row's keys after every call equal a float64 transcription of the rule", "[engines][locret]") {
  TempDir dir;
  struct Case {
    engines::HeadLayout layout;
    Rule rule;
    int tokens, decode_steps, largest, unqueried;
  };
  const Case cases[] = {
      {head_layout(4, 2, 8), {40, 32, 8}, 180, 12, 24, 0},                        // chunks of several calls
      {head_layout(8, 1, 16, kernels::DType::f16), {24, 1, 0}, 120, 6, 9, 0},     // GQA 8, every call, no stabilizers
      {head_layout(4, 4, 8, kernels::DType::bf16), {30, 16, 50}, 100, 4, 16, 0},  // stabilizers beyond the budget
      {head_layout(4, 2, 8), {20, 16, 4}, 90, 5, 12, 60},                         // a prompt without most queries
      {head_layout(2, 1, 8), {500, 8, 4}, 60, 3, 10, 0},                          // a budget above the context
  };
  int index = 0;
  for (const Case& c : cases) {
    DYNAMIC_SECTION("case " << index++) {
      const Heads heads = random_heads(c.layout, 1, 6, 40 + index);
      const std::string path = dir.file("heads.safetensors");
      write_heads(path, heads);
      const Problem p = random_problem(c.layout, c.tokens, c.tokens, 90 + index);
      Rng rng(index);
      std::vector<Call> calls;
      if (c.unqueried > 0) calls.push_back({c.unqueried, engines::Phase::prefill, 5});
      for (const Call& call : mixed_calls(rng, c.tokens - c.unqueried, c.decode_steps, c.largest))
        calls.push_back(call);
      const int scored_evictions = run_rule(p, path, heads, c.rule, calls);
      // The scores decide: some eviction kept a key the newest-only rule would drop (none can when every kept key
      // is a stabilizer or nothing is evicted).
      if (c.rule.stabilizers < c.rule.budget && c.rule.budget < c.tokens) CHECK(scored_evictions > 0);
    }
  }
}

TEST_CASE("locret: the bundled model's logits equal dense ones when the budget covers the context",
          "[engines][locret][model]") {
  const model::LlamaModel m((source_tree() / model::kBundledModel).string());
  const std::vector<int> tokens = printable_tokens(400, 12);
  auto logits = [&](const engines::Engine& engine) { return logits_under(m, engine, tokens, 6); };
  const auto& dense_info = engines::EngineRegistry::instance().get("dense", "test");
  const auto dense = logits(*dense_info.make(resolve_params(dense_info.params, Json::object(), "dense")));
  const std::vector<double> reference(dense.begin(), dense.end());
  // The shipped heads (the default), rotated by the session.
  CHECK(relative_l2_error(logits(*locret({{"budget", 400}, {"chunk_size", 100}, {"stabilizers", 16}})), reference) <
        1e-5);
  // A small budget evicts: the comparison has teeth.
  CHECK(relative_l2_error(logits(*locret({{"budget", 64}, {"chunk_size", 100}, {"stabilizers", 16}})), reference) >
        1e-3);
}
