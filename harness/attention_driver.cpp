#include "harness/attention_driver.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/metrics.h"
#include "core/timer.h"
#include "kernels/reference.h"

namespace ctxbench {
namespace {

using engines::KeyRange;
using engines::Phase;
using tasks::AttentionProblem;
using tasks::slice_tokens;

// Needle recall and keys attended over the measured query rows only (decode mode's observe call excluded).
struct RecallCounter {
  std::uint64_t hits = 0;
  std::uint64_t total = 0;
  std::uint64_t rows = 0;
  std::uint64_t keys = 0;
  std::uint64_t keys_max = 0;

  // Scores every query row of the session's last attend call; query t sits at position first_pos + t.
  void count(const engines::Session& session, const AttentionProblem& p, int n, int first_pos) {
    for (int h = 0; h < p.layout.heads_q; ++h) {
      for (int t = 0; t < n; ++t) {
        const auto ranges = session.attended(h, t);
        std::uint64_t row_keys = 0;
        for (const auto& r : ranges) row_keys += static_cast<std::uint64_t>(r.end - r.begin);
        ++rows;
        keys += row_keys;
        keys_max = std::max(keys_max, row_keys);
        for (int key : p.important_keys) {
          if (key > first_pos + t) continue;
          ++total;
          hits +=
              std::any_of(ranges.begin(), ranges.end(), [&](const auto& r) { return key >= r.begin && key < r.end; });
        }
      }
    }
  }
};

// The query tokens whose outputs are checked against float64: up to `error_queries`, spread over the problem.
std::vector<int> checked_queries(const AttentionProblem& p) {
  const int checked = std::max(1, std::min(p.error_queries, p.queries));
  std::vector<int> out;
  for (int i = 0; i < checked; ++i) {
    out.push_back(checked == 1 ? p.queries - 1
                               : static_cast<int>(static_cast<long long>(i) * (p.queries - 1) / (checked - 1)));
  }
  return out;
}

struct RepetitionResult {
  double seconds = 0.0;          // the measured phase: the prefill chunk, or all decode steps
  double observe_seconds = 0.0;  // decode only
  std::vector<float> out;        // [heads_q][queries][head_dim]
  engines::SessionStats stats;
  std::uint64_t observe_bytes_read = 0;  // decode only: what the observe call read, left out of kv_bytes_read
  std::vector<Measurement> extra;
  RecallCounter recall;
  std::vector<std::vector<std::vector<KeyRange>>> checked_ranges;  // [checked query][head]: ranges attended
};

// Stores the attended ranges of every head for query token `t` when it is a checked one; `row` is its index
// within the session's last attend call.
void keep_checked_ranges(const engines::Session& session, const AttentionProblem& p, const std::vector<int>& checked,
                         int t, int row, RepetitionResult& r) {
  for (std::size_t i = 0; i < checked.size(); ++i) {
    if (checked[i] != t) continue;
    r.checked_ranges[i].resize(p.layout.heads_q);
    for (int h = 0; h < p.layout.heads_q; ++h) r.checked_ranges[i][h] = session.attended(h, row);
  }
}

RepetitionResult run_once(const engines::Engine& engine, const AttentionProblem& p) {
  const auto& L = p.layout;
  const int prompt = p.tokens - p.queries;
  auto session = engine.open(L);
  session->append(slice_tokens(p.k, L.heads_kv, p.tokens, L.head_dim, 0, prompt).data(),
                  slice_tokens(p.v, L.heads_kv, p.tokens, L.head_dim, 0, prompt).data(), prompt);
  RepetitionResult r;
  const auto checked = checked_queries(p);
  r.checked_ranges.resize(checked.size());
  r.out.assign(static_cast<std::size_t>(L.heads_q) * p.queries * L.head_dim, std::nanf(""));
  if (p.phase == Phase::prefill) {
    session->append(slice_tokens(p.k, L.heads_kv, p.tokens, L.head_dim, prompt, p.queries).data(),
                    slice_tokens(p.v, L.heads_kv, p.tokens, L.head_dim, prompt, p.queries).data(), p.queries);
    Stopwatch watch;
    session->attend(p.q.data(), p.queries, Phase::prefill, r.out.data());
    r.seconds = watch.seconds();
    r.recall.count(*session, p, p.queries, prompt);
    for (const int t : checked) keep_checked_ranges(*session, p, checked, t, t, r);
  } else {
    if (p.observe > 0) {
      std::vector<float> scratch(p.q_observe.size());
      Stopwatch watch;
      session->attend(p.q_observe.data(), p.observe, Phase::prefill, scratch.data());
      r.observe_seconds = watch.seconds();
      r.observe_bytes_read = session->stats().kv_bytes_read;
    }
    std::vector<float> step_out(static_cast<std::size_t>(L.heads_q) * L.head_dim);
    for (int s = 0; s < p.queries; ++s) {
      const auto k = slice_tokens(p.k, L.heads_kv, p.tokens, L.head_dim, prompt + s, 1);
      const auto v = slice_tokens(p.v, L.heads_kv, p.tokens, L.head_dim, prompt + s, 1);
      const auto q = slice_tokens(p.q, L.heads_q, p.queries, L.head_dim, s, 1);
      session->append(k.data(), v.data(), 1);
      Stopwatch watch;
      session->attend(q.data(), 1, Phase::decode, step_out.data());
      r.seconds += watch.seconds();
      r.recall.count(*session, p, 1, prompt + s);
      keep_checked_ranges(*session, p, checked, s, 0, r);
      for (int h = 0; h < L.heads_q; ++h) {
        std::copy_n(step_out.begin() + h * L.head_dim, L.head_dim,
                    r.out.begin() + (static_cast<std::size_t>(h) * p.queries + s) * L.head_dim);
      }
    }
  }
  r.stats = session->stats();
  r.extra = session->extra_measurements();
  return r;
}

struct Fidelity {
  double output_error = 0;      // relative L2 error of the checked outputs against float64 dense attention
  double attention_recall = 0;  // mean over checked rows of the dense attention mass on the keys attended
};

// Both on the checked query tokens, every head, against float64 dense attention over the stored K/V.
Fidelity fidelity(const AttentionProblem& p, const RepetitionResult& r) {
  const auto& L = p.layout;
  const kernels::KvView k{p.k.data(), kernels::DType::f32, L.heads_kv,
                          p.tokens,   L.head_dim,          static_cast<std::size_t>(p.tokens) * L.head_dim};
  kernels::KvView v = k;
  v.data = p.v.data();
  const float scale = 1.0f / std::sqrt(static_cast<float>(L.head_dim));  // the kernels' scale, as the reference
  const auto checked = checked_queries(p);
  std::vector<float> actual;
  std::vector<double> expected;
  double mass = 0;
  for (std::size_t i = 0; i < checked.size(); ++i) {
    const int t = checked[i], position = p.tokens - p.queries + t;
    const auto q = slice_tokens(p.q, L.heads_q, p.queries, L.head_dim, t, 1);
    const kernels::QueryView query{q.data(), L.heads_q, 1, L.head_dim};
    // The reference sees the stored precision of K/V, so only the method's error is measured.
    const auto reference = kernels::reference_attention(query, k, v, {position, scale});
    expected.insert(expected.end(), reference.out.begin(), reference.out.end());
    const auto mine = slice_tokens(r.out, L.heads_q, p.queries, L.head_dim, t, 1);
    actual.insert(actual.end(), mine.begin(), mine.end());
    for (int h = 0; h < L.heads_q; ++h) {
      const float* qh = q.data() + static_cast<std::size_t>(h) * L.head_dim;
      const int kv_head = h / (L.heads_q / L.heads_kv);
      for (const KeyRange& range : r.checked_ranges[i][h]) {
        for (int key = range.begin; key < std::min(range.end, position + 1); ++key) {
          const float* kt = p.k.data() + (static_cast<std::size_t>(kv_head) * p.tokens + key) * L.head_dim;
          double score = 0;
          for (int d = 0; d < L.head_dim; ++d) score += static_cast<double>(qh[d]) * kt[d];
          mass += std::exp(score * static_cast<double>(scale) - reference.lse[h]);
        }
      }
    }
  }
  return {relative_l2_error(actual, expected), mass / (static_cast<double>(checked.size()) * L.heads_q)};
}

void round_to_stored_precision(AttentionProblem& p) {
  if (p.layout.kv_dtype == kernels::DType::f32) return;
  const bool half = p.layout.kv_dtype == kernels::DType::f16;
  for (auto* buffer : {&p.k, &p.v}) {
    for (float& x : *buffer)
      x = half ? kernels::half_to_float(kernels::float_to_half(x)) : kernels::bf16_to_float(kernels::float_to_bf16(x));
  }
}

// One engine's repetitions: the timed phase and the observe call of each, and the last repetition in whole (the
// keys, bytes and fidelity are the same in every repetition).
struct Timings {
  explicit Timings(Phase phase)
      : time(make_measurement(phase == Phase::prefill ? "prefill_seconds" : "decode_seconds_per_step")),
        observe(make_measurement("observe_seconds")) {}

  void add(RepetitionResult r, const AttentionProblem& p) {
    time.repetitions.push_back(p.phase == Phase::prefill ? r.seconds : r.seconds / p.queries);
    observe.repetitions.push_back(r.observe_seconds);
    last = std::move(r);
  }

  Measurement time, observe;
  RepetitionResult last;
};

std::vector<Measurement> measurements_of(const AttentionProblem& p, const Timings& t) {
  const auto& last = t.last;
  const auto& s = last.stats;
  const Fidelity quality = fidelity(p, last);
  const double bytes_per_token = 2.0 * p.layout.heads_kv * p.layout.head_dim * kernels::dtype_bytes(p.layout.kv_dtype);
  std::vector<Measurement> out = {
      t.time,
      make_measurement("mask_seconds", {s.mask_seconds}),
      make_measurement("attention_seconds", {s.attention_seconds}),
      make_measurement("keys_attended_mean",
                       {last.recall.rows ? static_cast<double>(last.recall.keys) / last.recall.rows : 0.0}),
      make_measurement("keys_attended_max", {static_cast<double>(last.recall.keys_max)}),
      make_measurement("kv_bytes_read", {static_cast<double>(s.kv_bytes_read - last.observe_bytes_read)}),
      make_measurement("kv_bytes_resident", {static_cast<double>(s.kv_bytes_resident)}),
      make_measurement("kv_bytes_full", {bytes_per_token * p.tokens}),
      make_measurement("output_rel_error", {quality.output_error}),
      make_measurement("attention_recall", {quality.attention_recall}),
  };
  if (p.phase == Phase::decode && p.observe > 0) out.push_back(t.observe);
  out.insert(out.end(), last.extra.begin(), last.extra.end());
  if (last.recall.total > 0) {
    out.push_back(make_measurement("needle_recall", {static_cast<double>(last.recall.hits) / last.recall.total}));
  }
  return out;
}

}  // namespace

double relative_l2_error(const std::vector<float>& actual, const std::vector<double>& expected) {
  if (actual.size() != expected.size()) throw std::logic_error("relative_l2_error: sizes differ");
  double diff = 0.0, norm = 0.0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double d = actual[i] - expected[i];
    diff += d * d;
    norm += expected[i] * expected[i];
  }
  return norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

std::vector<Measurement> run_attention_problem(const engines::Engine& engine, const AttentionProblem& problem,
                                               int repetitions, int warmup) {
  return run_attention_problem_paired({&engine}, problem, repetitions, warmup).at(0);
}

std::vector<std::vector<Measurement>> run_attention_problem_paired(const std::vector<const engines::Engine*>& engines,
                                                                   const AttentionProblem& problem, int repetitions,
                                                                   int warmup, const TurnObserver& on_turn) {
  if (problem.queries < 1 || problem.queries > problem.tokens) {
    throw std::invalid_argument("attention problem: queries must be in [1, tokens]");
  }
  AttentionProblem p = problem;
  round_to_stored_precision(p);
  const auto turn = [&](std::size_t engine) {
    if (on_turn) on_turn(static_cast<int>(engine));
  };
  std::vector<Timings> timings(engines.size(), Timings(p.phase));
  for (int rep = 0; rep < warmup; ++rep) {
    for (std::size_t e = 0; e < engines.size(); ++e) {
      turn(e);
      run_once(*engines[e], p);
    }
  }
  const bool taking_turns = engines.size() > 1;
  for (int rep = 0; rep < std::max(1, repetitions); ++rep) {
    for (std::size_t e = 0; e < engines.size(); ++e) {
      turn(e);
      if (taking_turns) run_once(*engines[e], p);  // untimed: the engine before it evicted this one's data
      timings[e].add(run_once(*engines[e], p), p);
    }
  }
  if (on_turn) on_turn(kNoEngine);
  std::vector<std::vector<Measurement>> out;
  for (const auto& t : timings) out.push_back(measurements_of(p, t));
  return out;
}

}  // namespace ctxbench
