// SirLLM (engines/sirllm.cpp): the keys it keeps against a direct transcription of the original's eviction
// (Zoeyyao27/SirLLM `evict_for_space_token_entropy` and the decay of its streaming loops) on fresh random problems
// and surprisals, through prefill chunks and decode steps; its edge cases; and, through the model runtime, the
// surprisal the runtime reports (Session::token_surprisal) against a float64 transcription of the model.
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <numeric>
#include <set>
#include <span>

#include "engines/engine.h"
#include "model/llama_model.h"
#include "tests/engine_problems.h"
#include "tests/test_model_fixture.h"

using namespace ctxbench;
using namespace ctxbench::testing;

namespace {

struct SirSettings {
  int budget, sinks, recent;
  double decay;
};

std::unique_ptr<engines::Engine> sirllm(const SirSettings& s) {
  const auto& info = engines::EngineRegistry::instance().get("sirllm", "test");
  const Json params{{"budget", s.budget}, {"sinks", s.sinks}, {"recent", s.recent}, {"decay", s.decay}, {"threads", 1}};
  return info.make(resolve_params(info.params, params, "sirllm"));
}

// The original's cache, by original position, with each held token's score.
struct Transcription {
  SirSettings s;
  std::vector<int> positions;
  std::vector<float> scores;
  int appended = 0;

  // One call of n tokens: evict_for_space_token_entropy(past_key_values, token_entropy, num_coming = n), then
  // the loop's `token_entropy * decay_ratio`, then the call's tokens join with their surprisal.
  void call(const std::vector<float>& surprisal) {
    const int n = static_cast<int>(surprisal.size());
    if (!positions.empty()) {
      const int cache_size = std::min(s.budget, appended + n);
      const int seq_len = static_cast<int>(positions.size());
      if (seq_len + n > cache_size) {
        const int token_entropy_size = cache_size - s.sinks - s.recent - n;
        std::vector<int> by_score(seq_len);
        std::iota(by_score.begin(), by_score.end(), 0);
        std::stable_sort(by_score.begin(), by_score.end(), [&](int a, int b) { return scores[a] > scores[b]; });
        std::set<int> save;
        for (int i = 0; i < token_entropy_size; ++i) save.insert(by_score[i]);
        for (int i = 0; i < std::min(s.sinks, seq_len); ++i) save.insert(i);
        for (int i = seq_len - 1; i >= 0 && static_cast<int>(save.size()) < cache_size - n; --i) save.insert(i);
        std::vector<int> kept_positions;
        std::vector<float> kept_scores;
        for (int i : save) kept_positions.push_back(positions[i]), kept_scores.push_back(scores[i]);
        positions = std::move(kept_positions);
        scores = std::move(kept_scores);
      }
      for (float& score : scores) score *= static_cast<float>(s.decay);
    }
    for (int i = 0; i < n; ++i) positions.push_back(appended + i), scores.push_back(surprisal[i]);
    appended += n;
  }

  // What query `position` of the last call may attend: every held position up to it.
  std::vector<int> visible(int position) const {
    std::vector<int> seen;
    for (int p : positions) {
      if (p <= position) seen.push_back(p);
    }
    return seen;
  }
};

std::vector<float> random_surprisal(Rng& rng, int n) {
  std::vector<float> out(n);
  for (float& x : out) x = static_cast<float>(10.0 * rng.uniform());
  return out;
}

// Runs the problem's tokens through a session in calls of the given sizes (a call of one token after the first is
// a decode step), each call's tokens reported with fresh random surprisal; after each call the keys of every query
// row must be the transcription's and the output exact attention over them. Returns the positions held at the end.
std::vector<int> run_calls(const engines::Engine& engine, const Problem& p, const SirSettings& settings,
                           const std::vector<int>& calls, std::uint64_t seed) {
  const auto& L = p.layout;
  REQUIRE(p.queries == p.tokens);  // a query for every position
  auto session = engine.open(L);
  Transcription expected{settings, {}, {}, 0};
  Rng rng(seed);
  int first = 0;
  for (const int n : calls) {
    INFO("call of " << n << " tokens at " << first);
    session->append(slice_tokens(p.k, L.heads_kv, p.tokens, L.head_dim, first, n).data(),
                    slice_tokens(p.v, L.heads_kv, p.tokens, L.head_dim, first, n).data(), n);
    const auto surprisal = random_surprisal(rng, n);
    expected.call(surprisal);
    const auto q = slice_tokens(p.q, L.heads_q, p.queries, L.head_dim, first, n);
    std::vector<float> out(q.size());
    const auto phase = n == 1 && first > 0 ? engines::Phase::decode : engines::Phase::prefill;
    session->attend(q.data(), n, phase, out.data());
    // The model runtime reports after the forward call, so after attend here.
    session->token_surprisal(surprisal.data(), n);
    for (int h = 0; h < L.heads_q; ++h) {
      for (int i = 0; i < n; ++i) {
        INFO("head " << h << " query " << first + i);
        REQUIRE(expand(session->attended(h, i)) == expected.visible(first + i));
      }
    }
    check_matches_attended(*session, p, q.data(), n, first, out.data());
    first += n;
  }
  REQUIRE(first == p.tokens);
  return expected.positions;
}

}  // namespace

TEST_CASE("sirllm: the keys kept equal the transcription of the original's eviction and decay", "[engines][sirllm]") {
  struct Case {
    engines::HeadLayout layout;
    int tokens, prefill, largest;
    SirSettings settings;
  };
  const Case cases[] = {
      {head_layout(4, 4, 16, kernels::DType::f32), 150, 40, 6, {32, 4, 0, 1.0}},  // the original's README settings
      {head_layout(8, 2, 32, kernels::DType::f32), 203, 17, 9, {40, 3, 5, 0.5}},  // GQA 4, recent room, decay
      {head_layout(8, 1, 16, kernels::DType::f16), 171, 64, 1, {48, 4, 0, 0.7}},  // GQA 8, fp16, decode steps only
      {head_layout(4, 2, 16, kernels::DType::bf16), 97, 5, 12, {24, 0, 2, 0.9}},  // no start tokens, bf16
      {head_layout(2, 1, 8, kernels::DType::f32), 120, 10, 20, {30, 4, 0, 0.5}},  // calls near the cache's size
  };
  std::uint64_t seed = 2405'12528;
  for (const Case& c : cases) {
    DYNAMIC_SECTION("budget " << c.settings.budget << " sinks " << c.settings.sinks << " recent " << c.settings.recent
                              << " decay " << c.settings.decay << " T=" << c.tokens) {
      Rng rng(++seed);
      const Problem p = random_problem(c.layout, c.tokens, c.tokens, rng.next());
      const auto engine = sirllm(c.settings);
      const auto held = run_calls(*engine, p, c.settings, call_sizes(rng, c.tokens, c.prefill, c.largest), seed);
      CHECK(static_cast<int>(held.size()) <= std::max(c.settings.budget, c.settings.sinks + c.largest));
    }
  }
}

TEST_CASE("sirllm: memory decay changes which tokens stay (the rule test sees it)", "[engines][sirllm]") {
  Rng rng(77);
  const Problem p = random_problem(head_layout(2, 1, 8, kernels::DType::f32), 160, 160, 78);
  const auto calls = call_sizes(rng, 160, 20, 4);
  const SirSettings no_decay{24, 4, 0, 1.0}, decay{24, 4, 0, 0.5};
  const auto kept_without = run_calls(*sirllm(no_decay), p, no_decay, calls, 79);
  const auto kept_with = run_calls(*sirllm(decay), p, decay, calls, 79);
  CHECK(kept_without != kept_with);
}

TEST_CASE("sirllm: a single token, and a context that fits the cache, attend to everything", "[engines][sirllm]") {
  const SirSettings settings{64, 4, 0, 0.5};
  for (const int tokens : {1, 7, 63}) {
    const Problem p = random_problem(head_layout(4, 2, 16, kernels::DType::f32), tokens, tokens, 100 + tokens);
    Rng rng(tokens);
    const auto held = run_calls(*sirllm(settings), p, settings, call_sizes(rng, tokens, 3, 5), 200 + tokens);
    CHECK(static_cast<int>(held.size()) == tokens);
  }
}

TEST_CASE("sirllm: a call larger than the rest of the cache is attended beside the start tokens only",
          "[engines][sirllm]") {
  const SirSettings settings{16, 4, 0, 1.0};
  const Problem p = random_problem(head_layout(2, 2, 8, kernels::DType::f32), 40, 40, 5);
  const auto held = run_calls(*sirllm(settings), p, settings, {10, 30}, 6);
  std::vector<int> expected = {0, 1, 2, 3};
  for (int t = 10; t < 40; ++t) expected.push_back(t);
  CHECK(held == expected);
}

TEST_CASE("sirllm: keys without the model's surprisal are refused once they must be ranked", "[engines][sirllm]") {
  const auto L = head_layout(2, 1, 8, kernels::DType::f32);
  const Problem p = random_problem(L, 41, 41, 9);
  std::vector<float> out(static_cast<std::size_t>(L.heads_q) * L.head_dim);
  const auto last_query = slice_tokens(p.q, L.heads_q, p.queries, L.head_dim, 40, 1);
  const auto append = [&](engines::Session& s, int first, int n) {
    s.append(slice_tokens(p.k, L.heads_kv, p.tokens, L.head_dim, first, n).data(),
             slice_tokens(p.v, L.heads_kv, p.tokens, L.head_dim, first, n).data(), n);
  };
  // Start tokens + best-scoring room: the ranking needs the surprisal an attention-level problem never reports.
  auto ranking = sirllm({16, 4, 0, 1.0})->open(L);
  append(*ranking, 0, 40);
  CHECK_THROWS_AS(append(*ranking, 40, 1), InputError);
  // No room for best-scoring tokens (sinks + recent + the call fill the cache): start + newest, no surprisal needed.
  auto streaming = sirllm({16, 4, 11, 1.0})->open(L);
  append(*streaming, 0, 40);
  append(*streaming, 40, 1);
  streaming->attend(last_query.data(), 1, engines::Phase::decode, out.data());
  std::vector<int> start_and_newest = {0, 1, 2, 3};
  for (int t = 29; t <= 40; ++t) start_and_newest.push_back(t);
  CHECK(expand(streaming->attended(0, 0)) == start_and_newest);
}

TEST_CASE("sirllm: the memory plan's peak is what a session holds", "[engines][sirllm]") {
  const auto engine = sirllm({32, 4, 0, 1.0});
  CHECK(engine->wants_token_surprisal());
  CHECK(engine->peak_resident_keys(1000, 16, 0) == 32);
  CHECK(engine->peak_resident_keys(1000, 100, 0) == 104);
  CHECK(engine->peak_resident_keys(20, 16, 0) == 20);
}

namespace {

// Wraps an engine and records, for layer 0, the surprisal reported after each call, and the keys the last query
// row of each call attended.
struct Reports {
  std::vector<std::vector<float>> surprisal;
  std::vector<std::vector<int>> last_row_keys;
  int sessions_reported = 0;
};

class ReportingEngine final : public engines::Engine {
 public:
  ReportingEngine(std::unique_ptr<engines::Engine> inner, bool wants, Reports& reports)
      : inner_(std::move(inner)), wants_(wants), reports_(reports) {}
  std::unique_ptr<engines::Session> open(const engines::HeadLayout& layout) const override {
    return std::make_unique<Session>(inner_->open(layout), layout.layer == 0, reports_);
  }
  bool wants_token_surprisal() const override { return wants_; }

 private:
  class Session final : public engines::Session {
   public:
    Session(std::unique_ptr<engines::Session> inner, bool records, Reports& reports)
        : inner_(std::move(inner)), records_(records), reports_(reports) {}
    void append(const float* k, const float* v, int n) override { inner_->append(k, v, n); }
    void attend(const float* q, int n, engines::Phase phase, float* out) override {
      inner_->attend(q, n, phase, out);
      if (records_) reports_.last_row_keys.push_back(expand(inner_->attended(0, n - 1)));
    }
    void token_surprisal(const float* surprisal, int n) override {
      ++reports_.sessions_reported;
      if (records_) reports_.surprisal.emplace_back(surprisal, surprisal + n);
      inner_->token_surprisal(surprisal, n);
    }
    std::vector<kernels::KeyRange> attended(int head, int query) const override {
      return inner_->attended(head, query);
    }
    engines::SessionStats stats() const override { return inner_->stats(); }

   private:
    std::unique_ptr<engines::Session> inner_;
    bool records_;
    Reports& reports_;
  };
  std::unique_ptr<engines::Engine> inner_;
  bool wants_;
  Reports& reports_;
};

std::unique_ptr<engines::Engine> dense() {
  const auto& info = engines::EngineRegistry::instance().get("dense", "test");
  return info.make(resolve_params(info.params, Json{{"threads", 1}}, "dense"));
}

// Feeds the tokens in calls of the given sizes; returns the logits of every position.
std::vector<float> run_model(const model::LlamaModel& m, const engines::Engine& engine, const std::vector<int>& tokens,
                             const std::vector<int>& calls) {
  auto seq = m.start(engine, static_cast<std::int64_t>(tokens.size()), kernels::DType::f32);
  std::vector<float> all, hidden, logits;
  int at = 0;
  for (const int n : calls) {
    const auto phase = n == 1 && at > 0 ? engines::Phase::decode : engines::Phase::prefill;
    m.forward(seq, std::span(tokens).subspan(at, n), phase, hidden);
    m.logits(hidden.data(), n, logits);
    all.insert(all.end(), logits.begin(), logits.end());
    at += n;
  }
  return all;
}

}  // namespace

TEST_CASE("model runtime: each token's surprisal reaches the sessions of engines that want it, after its call",
          "[engines][sirllm][model]") {
  TempDir dir;
  const TinySpec spec{.layers = 3, .heads = 4, .kv_heads = 2, .head_dim = 8};
  const TinyModel tiny = write_tiny_model(dir.file(""), spec, 53);
  const model::LlamaModel m(dir.file(""));
  Rng rng(54);
  std::vector<int> tokens(23);
  for (int& t : tokens) t = static_cast<int>(rng.integer(0, 255));
  const std::vector<int> calls = {5, 16, 1, 1};

  Reports ignored;
  run_model(m, ReportingEngine(dense(), false, ignored), tokens, calls);
  CHECK(ignored.sessions_reported == 0);

  Reports reports;
  run_model(m, ReportingEngine(dense(), true, reports), tokens, calls);
  CHECK(reports.sessions_reported == spec.layers * static_cast<int>(calls.size()));
  REQUIRE(reports.surprisal.size() == calls.size());

  // Surprisal of token t from the float64 model's logits at t - 1; token 0 takes the largest of its call.
  const auto ref =
      reference_logits(tiny, tokens, m.config().rope.frequencies(static_cast<std::int64_t>(tokens.size())));
  std::vector<double> expected(tokens.size());
  for (std::size_t t = 1; t < tokens.size(); ++t) {
    const auto& row = ref[t - 1];
    const double top = *std::max_element(row.begin(), row.end());
    double sum = 0;
    for (double x : row) sum += std::exp(x - top);
    expected[t] = top + std::log(sum) - row[tokens[t]];
  }
  expected[0] = *std::max_element(expected.begin() + 1, expected.begin() + calls[0]);
  std::size_t at = 0;
  for (std::size_t c = 0; c < calls.size(); ++c) {
    REQUIRE(static_cast<int>(reports.surprisal[c].size()) == calls[c]);
    for (int i = 0; i < calls[c]; ++i, ++at) {
      INFO("token " << at);
      CHECK(reports.surprisal[c][i] == Approx(expected[at]).margin(1e-3));
    }
  }
}

TEST_CASE("sirllm in the model runtime: dense under a covering cache, otherwise the transcription's keys",
          "[engines][sirllm][model]") {
  TempDir dir;
  const TinySpec spec{.layers = 2, .heads = 4, .kv_heads = 2, .head_dim = 8, .max_positions = 128};
  write_tiny_model(dir.file(""), spec, 61);
  const model::LlamaModel m(dir.file(""));
  Rng rng(62);
  std::vector<int> tokens(70);
  for (int& t : tokens) t = static_cast<int>(rng.integer(0, 255));
  std::vector<int> calls = {24, 24};
  while (std::accumulate(calls.begin(), calls.end(), 0) < 70) calls.push_back(1);

  const auto dense_logits = run_model(m, *dense(), tokens, calls);
  const auto covering = run_model(m, *sirllm({70, 4, 0, 0.5}), tokens, calls);
  CHECK(relative_l2_error(covering, {dense_logits.begin(), dense_logits.end()}) < 1e-5);

  const SirSettings settings{32, 4, 2, 0.9};
  Reports reports;
  const auto evicting = run_model(m, ReportingEngine(sirllm(settings), true, reports), tokens, calls);
  CHECK(relative_l2_error(evicting, {dense_logits.begin(), dense_logits.end()}) > 1e-4);
  REQUIRE(reports.surprisal.size() == calls.size());
  Transcription expected{settings, {}, {}, 0};
  for (std::size_t c = 0; c < calls.size(); ++c) {
    INFO("call " << c);
    expected.call(reports.surprisal[c]);
    CHECK(reports.last_row_keys[c] == expected.visible(expected.appended - 1));
  }
}
