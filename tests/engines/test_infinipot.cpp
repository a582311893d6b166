// InfiniPot (engines/infinipot.cpp): the keys each KV head keeps against a slow float64 transcription of the
// paper's continual context distillation (arXiv 2410.01518, Sec. 3.2-3.3: novelty slots first, then the catalyst's
// attention), with the session's catalyst stand-in (the newest query rows), on fresh random problems through
// prefill chunks and decode steps, with and without the model's surprisal; a context within the pot; the pot
// bound the memory plan counts; the parameter check.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>

#include "engines/engine.h"
#include "tests/engine_problems.h"

using namespace ctxbench;
using namespace ctxbench::testing;

namespace {

struct PotSettings {
  int pot, compressed;
  double nuc_ratio;
  int catalyst;
};

std::unique_ptr<engines::Engine> infinipot(const PotSettings& s) {
  const auto& info = engines::EngineRegistry::instance().get("infinipot", "test");
  const Json params{{"pot_size", s.pot},
                    {"compressed_size", s.compressed},
                    {"nuc_ratio", s.nuc_ratio},
                    {"catalyst", s.catalyst},
                    {"threads", 1}};
  return info.make(resolve_params(info.params, params, "infinipot"));
}

// Continual context distillation by original position: one pot per KV head, the surprisal of every position
// (NaN until reported), and the positions of the newest query rows attended (the catalyst).
struct Transcription {
  PotSettings s;
  const Problem& p;
  std::vector<std::vector<int>> held;
  std::vector<double> surprisal;
  std::vector<int> catalyst;

  Transcription(const PotSettings& settings, const Problem& problem)
      : s(settings), p(problem), held(problem.layout.heads_kv) {}

  int group() const { return p.layout.heads_q / p.layout.heads_kv; }

  // q_h(query) . k_g(key) / sqrt(d) in float64.
  double logit(int h, int query, int key) const {
    const int d = p.layout.head_dim, g = h / group();
    const float* q = p.q.data() + (static_cast<std::size_t>(h) * p.queries + query) * d;
    const float* k = p.k.data() + (static_cast<std::size_t>(g) * p.tokens + key) * d;
    double sum = 0;
    for (int c = 0; c < d; ++c) sum += static_cast<double>(q[c]) * k[c];
    return sum / std::sqrt(static_cast<double>(d));
  }

  // Per held key of KV head g: the softmax probability each catalyst row gives it among the held keys at or
  // before the row, summed over the rows, averaged over the group's query heads.
  std::vector<double> catalyst_scores(int g) const {
    const auto& keys = held[g];
    std::vector<double> score(keys.size(), 0.0);
    for (const int row : catalyst) {
      for (int h = g * group(); h < (g + 1) * group(); ++h) {
        double z = 0;
        for (const int key : keys) {
          if (key <= row) z += std::exp(logit(h, row, key));
        }
        for (std::size_t j = 0; j < keys.size(); ++j) {
          if (keys[j] <= row) score[j] += std::exp(logit(h, row, keys[j])) / z / group();
        }
      }
    }
    return score;
  }

  // |C| of KV head g's keys: round(alpha |C|) by surprisal when every held key has one, the rest by catalyst
  // score; ties to the earlier key.
  void distil(int g) {
    const auto& keys = held[g];
    const int size = static_cast<int>(keys.size()), keep = std::min(s.compressed, size);
    std::vector<char> chosen(size, 0);
    int kept = 0;
    std::vector<int> order(size);
    const bool novelty_known =
        std::none_of(keys.begin(), keys.end(), [&](int key) { return std::isnan(surprisal[key]); });
    if (novelty_known) {
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int a, int b) { return surprisal[keys[a]] > surprisal[keys[b]]; });
      const int slots = static_cast<int>(std::lround(s.nuc_ratio * s.compressed));
      for (int i = 0; i < std::min(slots, size); ++i) chosen[order[i]] = 1, ++kept;
    }
    const auto score = catalyst_scores(g);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return score[a] > score[b]; });
    for (const int j : order) {
      if (kept == keep) break;
      if (!chosen[j]) chosen[j] = 1, ++kept;
    }
    std::vector<int> kept_keys;
    for (int j = 0; j < size; ++j) {
      if (chosen[j]) kept_keys.push_back(keys[j]);
    }
    held[g] = std::move(kept_keys);
  }

  // Tokens [first, first + n) arrive: the pot is distilled first if they would overflow it (once a query was seen).
  void append(int first, int n) {
    if (static_cast<int>(held[0].size()) + n > s.pot && !catalyst.empty()) {
      for (int g = 0; g < p.layout.heads_kv; ++g) distil(g);
    }
    for (auto& keys : held) {
      for (int t = first; t < first + n; ++t) keys.push_back(t);
    }
    surprisal.resize(first + n, std::numeric_limits<double>::quiet_NaN());
  }

  void attended(int first, int n) {
    for (int t = std::max(first, first + n - s.catalyst); t < first + n; ++t) catalyst.push_back(t);
    if (static_cast<int>(catalyst.size()) > s.catalyst) catalyst.erase(catalyst.begin(), catalyst.end() - s.catalyst);
  }

  std::vector<int> visible(int g, int position) const {
    std::vector<int> seen;
    for (const int key : held[g]) {
      if (key <= position) seen.push_back(key);
    }
    return seen;
  }
};

// Runs the problem's tokens through a session in calls of the given sizes (one token after the first call is a
// decode step); with `report`, each call's tokens get fresh random surprisal after the call, as a model runtime
// reports it. After each call the keys of every query row must be the transcription's and the output exact
// attention over them, and the pot within the bound the memory plan counts. Returns the pots at the end.
std::vector<std::vector<int>> run_calls(const engines::Engine& engine, const Problem& p, const PotSettings& settings,
                                        const std::vector<int>& calls, bool report, std::uint64_t seed) {
  const auto& L = p.layout;
  REQUIRE(p.queries == p.tokens);  // a query for every position
  auto session = engine.open(L);
  Transcription expected(settings, p);
  const int largest = *std::max_element(calls.begin(), calls.end());
  Rng rng(seed);
  int first = 0;
  for (const int n : calls) {
    INFO("call of " << n << " tokens at " << first);
    session->append(slice_tokens(p.k, L.heads_kv, p.tokens, L.head_dim, first, n).data(),
                    slice_tokens(p.v, L.heads_kv, p.tokens, L.head_dim, first, n).data(), n);
    expected.append(first, n);
    const auto q = slice_tokens(p.q, L.heads_q, p.queries, L.head_dim, first, n);
    std::vector<float> out(q.size());
    const auto phase = n == 1 && first > 0 ? engines::Phase::decode : engines::Phase::prefill;
    session->attend(q.data(), n, phase, out.data());
    expected.attended(first, n);
    if (report) {
      std::vector<float> surprisal(n);
      for (int i = 0; i < n; ++i) {
        surprisal[i] = static_cast<float>(10.0 * rng.uniform());
        expected.surprisal[first + i] = surprisal[i];
      }
      session->token_surprisal(surprisal.data(), n);
    }
    for (int h = 0; h < L.heads_q; ++h) {
      for (int i = 0; i < n; ++i) {
        INFO("head " << h << " query " << first + i);
        REQUIRE(expand(session->attended(h, i)) == expected.visible(h / expected.group(), first + i));
      }
    }
    check_matches_attended(*session, p, q.data(), n, first, out.data());
    CHECK(static_cast<std::int64_t>(expected.held[0].size()) <= engine.peak_resident_keys(p.tokens, largest, 0));
    first += n;
  }
  REQUIRE(first == p.tokens);
  return expected.held;
}

struct Case {
  engines::HeadLayout layout;
  int tokens, prefill, largest;
  PotSettings settings;
};

const Case kCases[] = {
    {head_layout(4, 4, 16, kernels::DType::f32), 150, 40, 6, {32, 16, 0.5, 8}},   // the paper's alpha, no GQA
    {head_layout(8, 2, 32, kernels::DType::f32), 203, 17, 9, {40, 24, 0.25, 4}},  // GQA 4
    {head_layout(8, 1, 16, kernels::DType::f16), 171, 64, 1, {48, 20, 0.5, 16}},  // GQA 8, fp16, decode steps only
    {head_layout(4, 2, 16, kernels::DType::bf16), 97, 5, 12, {24, 12, 1.0, 3}},   // novelty only, bf16
    {head_layout(2, 1, 8, kernels::DType::f32), 120, 10, 20, {30, 10, 0.0, 6}},   // catalyst only, calls near the pot
};

}  // namespace

TEST_CASE("infinipot: the keys kept equal the transcription of continual context distillation",
          "[engines][infinipot]") {
  std::uint64_t seed = 2410'01518;
  for (const Case& c : kCases) {
    for (const bool report : {true, false}) {
      DYNAMIC_SECTION("pot " << c.settings.pot << " compressed " << c.settings.compressed << " alpha "
                             << c.settings.nuc_ratio << " catalyst " << c.settings.catalyst << " T=" << c.tokens
                             << (report ? " with" : " without") << " surprisal") {
        Rng rng(++seed);
        const Problem p = random_problem(c.layout, c.tokens, c.tokens, rng.next());
        const auto pots = run_calls(*infinipot(c.settings), p, c.settings,
                                    call_sizes(rng, c.tokens, c.prefill, c.largest), report, seed);
        CHECK(static_cast<int>(pots[0].size()) < c.tokens);  // the pot was distilled
      }
    }
  }
}

TEST_CASE(
    "infinipot: the model's surprisal changes which tokens stay, and novelty alone keeps the same tokens in "
    "every head",
    "[engines][infinipot]") {
  Rng rng(24);
  const Problem p = random_problem(head_layout(4, 2, 16, kernels::DType::f32), 160, 160, 25);
  const auto calls = call_sizes(rng, 160, 20, 4);
  const PotSettings mixed{32, 16, 0.5, 8};
  const auto with = run_calls(*infinipot(mixed), p, mixed, calls, true, 26);
  const auto without = run_calls(*infinipot(mixed), p, mixed, calls, false, 26);
  CHECK(with != without);
  const PotSettings novelty{32, 16, 1.0, 8};
  const auto pots = run_calls(*infinipot(novelty), p, novelty, calls, true, 27);
  CHECK(pots[0] == pots[1]);
}

TEST_CASE("infinipot: a single token, and a context within the pot, attend to everything", "[engines][infinipot]") {
  const PotSettings settings{32, 16, 0.5, 4};
  for (const int tokens : {1, 7, 32}) {
    const Problem p = random_problem(head_layout(4, 2, 16, kernels::DType::f32), tokens, tokens, 100 + tokens);
    Rng rng(tokens);
    const auto pots = run_calls(*infinipot(settings), p, settings, call_sizes(rng, tokens, 3, 5), true, 200 + tokens);
    for (const auto& pot : pots) CHECK(static_cast<int>(pot.size()) == tokens);
  }
}

TEST_CASE("infinipot: the memory plan's peak is the pot, or the distilled keys beside a larger call",
          "[engines][infinipot]") {
  const auto engine = infinipot({64, 32, 0.5, 8});
  CHECK(engine->wants_token_surprisal());
  CHECK(engine->peak_resident_keys(1000, 16, 0) == 64);
  CHECK(engine->peak_resident_keys(1000, 100, 0) == 132);
  CHECK(engine->peak_resident_keys(20, 16, 0) == 20);
}

TEST_CASE("infinipot: compressed_size must be below pot_size", "[engines][infinipot]") {
  CHECK_THROWS_WITH(infinipot({32, 32, 0.5, 4}), Catch::Matchers::Contains("compressed_size"));
  CHECK_NOTHROW(infinipot({32, 31, 0.5, 4}));
}
