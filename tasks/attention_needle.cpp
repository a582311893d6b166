// Attention-level needle in a haystack: seeded Q/K/V whose score structure looks like real attention (a
// strong sink at the start, a local band before the query, heavy-tailed noise) with a few consecutive
// "needle" keys at the cell's depth that align with every query. A method keeps the answer only if it
// attends to the needles, which needle_recall measures directly.
//
// Two properties of real long-context attention are opt-in (the defaults keep the recorded evidence of
// suites/baselines.json and suites/hip-128k*.json reproducible):
// - correlation_length: the haystack has locality. Keys of real text are contextualised token by token and
//   rotated by RoPE, whose low frequencies barely turn between neighbours, so neighbouring keys are alike and
//   score alike (the "attention locality" HiP prunes by). Here each key's random part (direction and
//   log-magnitude) is a stationary AR(1) process along the sequence with correlation exp(-|dt| / length):
//   every key has the same distribution as in the i.i.d. case, only neighbours are correlated.
// - needle_above "noise_max": the needle dominates at every length. A model that answers the needle question
//   attends to the needle more than to anything in the haystack, however long; with a fixed logit the
//   haystack's largest noise logits (growing like sqrt(2 ln T) x their spread) overtake it, and at 128K
//   more than a budget's worth of noise keys outscore it (recall then measures keys dense attention barely
//   uses). With "noise_max" needle_logit is a margin above the typical maximum noise logit of the context,
//   the (1 - 1/T) quantile of the noise logit distribution.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/random.h"
#include "tasks/task.h"

namespace ctxbench::tasks {
namespace {

// Three orthonormal directions (needle, sink, local band) from Gram-Schmidt on random vectors.
std::vector<std::vector<float>> directions(Rng& rng, int dim) {
  std::vector<std::vector<float>> basis;
  for (int b = 0; b < 3; ++b) {
    std::vector<double> x(dim);
    for (double& e : x) e = rng.normal();
    for (const auto& prev : basis) {
      double dot = 0;
      for (int i = 0; i < dim; ++i) dot += x[i] * prev[i];
      for (int i = 0; i < dim; ++i) x[i] -= dot * prev[i];
    }
    double norm = 0;
    for (double e : x) norm += e * e;
    norm = std::sqrt(norm);
    std::vector<float> unit(dim);
    for (int i = 0; i < dim; ++i) unit[i] = static_cast<float>(x[i] / norm);
    basis.push_back(unit);
  }
  return basis;
}

// needle_logit counts from zero or from the typical largest noise logit of the context.
enum class NeedleBase { zero, noise_max };

struct NeedleParams : AttentionDrive<4> {
  int heads_q = 8;
  int heads_kv = 2;
  int head_dim = 64;
  int needles = 4;
  double needle_logit = 8.0;
  NeedleBase needle_above = NeedleBase::zero;
  int sinks = 4;
  double sink_logit = 6.0;
  double band_logit = 4.0;
  double band_width = 64.0;
  double tail_sigma = 0.5;
  double correlation_length = 0.0;

  static ParamFields<NeedleParams> fields() {
    using P = NeedleParams;
    return with_attention_drive(
        ParamFields<P>()
            .field(&P::heads_q, "heads_q", "query heads", {.min = 1})
            .field(&P::heads_kv, "heads_kv", "key/value heads", {.min = 1})
            .field(&P::head_dim, "head_dim", "head dimension", {.min = 1, .max = 512})
            .field(&P::needles, "needles", "consecutive needle keys", {.min = 0})
            .field(&P::needle_logit, "needle_logit", "score boost of a needle key, counted from needle_above")
            .choice(&P::needle_above, "needle_above",
                    "needle_logit counts from 0, or from the typical largest noise logit of the context "
                    "(its 1 - 1/T quantile), so that the needle stands out at every length",
                    {{"zero", NeedleBase::zero}, {"noise_max", NeedleBase::noise_max}})
            .field(&P::sinks, "sinks", "attention-sink keys at the start", {.min = 0})
            .field(&P::sink_logit, "sink_logit", "score boost of a sink key")
            .field(&P::band_logit, "band_logit", "score boost of the newest key")
            .field(&P::band_width, "band_width", "decay length of the local band", {.min = 1e-6})
            .field(&P::tail_sigma, "tail_sigma", "log-normal spread of key magnitudes (heavy tail)", {.min = 0})
            .field(&P::correlation_length, "correlation_length",
                   "keys whose distance is dt have noise correlated by exp(-dt / length): the locality of "
                   "real text's keys (0: i.i.d.)",
                   {.min = 0})
            .check([](const P& p) {
              if (p.heads_q % p.heads_kv != 0)
                throw InputError("attention_needle: heads_q must be a multiple of heads_kv");
            }),
        "decode steps, or prefill chunk size");
  }
};

// A query is a standard normal vector plus sqrt(d) along each of the three role directions, so against a
// key with random direction z (standard normal entries) and magnitude m its scaled logit q.k / sqrt(d) is
// about m N(0, 1 + 3): the noise logit's spread per unit of key magnitude.
constexpr double noise_logit_sigma = 2.0;

// The (1 - 1/T) quantile of the noise logit m g, g ~ N(0, noise_logit_sigma^2), ln m ~ N(-tail^2/2, tail^2):
// the typical largest noise logit among T keys. P(m g > x) = E_u[Q(x / (sigma m(u)))] over u ~ N(0, 1),
// integrated with the trapezoid rule on [-8, 8], and solved for x by bisection.
double noise_logit_quantile(int tokens, double tail_sigma) {
  auto exceedance = [&](double x) {
    constexpr int steps = 1600;
    constexpr double lo = -8.0, hi = 8.0, du = (hi - lo) / steps;
    double sum = 0;
    for (int i = 0; i <= steps; ++i) {
      const double u = lo + i * du;
      const double m = std::exp(tail_sigma * u - 0.5 * tail_sigma * tail_sigma);
      const double tail = 0.5 * std::erfc(x / (noise_logit_sigma * m * std::sqrt(2.0)));
      sum += (i == 0 || i == steps ? 0.5 : 1.0) * tail * std::exp(-0.5 * u * u);
    }
    return sum * du / std::sqrt(2.0 * std::numbers::pi);
  };
  const double target = 1.0 / std::max(tokens, 2);
  double lo = 0, hi = 1000;
  for (int i = 0; i < 100; ++i) {
    const double mid = 0.5 * (lo + hi);
    (exceedance(mid) > target ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t with x_0 = e_0: stationary, unit variance, correlation rho^|dt|.
// rho 0 (correlation_length 0) gives x_t = e_t exactly: the i.i.d. haystack, bit for bit.
struct Ar1 {
  double rho, innovation;
  explicit Ar1(double length) : rho(length > 0 ? std::exp(-1.0 / length) : 0.0), innovation(std::sqrt(1 - rho * rho)) {}
  double step(double previous, double e) const { return rho * previous + innovation * e; }
};

// Key t: heavy-tailed noise plus the components that give it its role. A query with sqrt(d) along a
// direction turns a key component c along it into a logit of about c.
void fill_keys(AttentionProblem& p, Rng& rng, const NeedleParams& params, double needle_logit,
               const std::vector<std::vector<float>>& dir, const std::vector<int>& needles) {
  const int d = p.layout.head_dim, T = p.tokens;
  p.k.resize(static_cast<std::size_t>(p.layout.heads_kv) * T * d);
  p.v.resize(p.k.size());
  const Ar1 ar1(params.correlation_length);
  for (int h = 0; h < p.layout.heads_kv; ++h) {
    double log_magnitude = 0;
    std::vector<double> direction(d, 0.0);
    for (int t = 0; t < T; ++t) {
      float* k = &p.k[(static_cast<std::size_t>(h) * T + t) * d];
      float* v = &p.v[(static_cast<std::size_t>(h) * T + t) * d];
      log_magnitude = ar1.step(log_magnitude, rng.normal());
      const double magnitude =
          std::exp(params.tail_sigma * log_magnitude - 0.5 * params.tail_sigma * params.tail_sigma);
      for (int i = 0; i < d; ++i) {
        direction[i] = ar1.step(direction[i], rng.normal());
        k[i] = static_cast<float>(magnitude * direction[i]);
        v[i] = static_cast<float>(rng.normal());
      }
      double needle = 0, sink = t < params.sinks ? params.sink_logit : 0;
      if (std::binary_search(needles.begin(), needles.end(), t)) needle = needle_logit;
      const double band = params.band_logit * std::exp(-(T - 1 - t) / params.band_width);
      for (int i = 0; i < d; ++i) k[i] += static_cast<float>(needle * dir[0][i] + sink * dir[1][i] + band * dir[2][i]);
    }
  }
}

std::vector<float> make_queries(Rng& rng, int heads, int n, int d, const std::vector<std::vector<float>>& dir) {
  std::vector<float> q(static_cast<std::size_t>(heads) * n * d);
  const double along = std::sqrt(static_cast<double>(d));
  for (std::size_t row = 0; row < static_cast<std::size_t>(heads) * n; ++row) {
    for (int i = 0; i < d; ++i) {
      q[row * d + i] = static_cast<float>(rng.normal() + along * (dir[0][i] + dir[1][i] + dir[2][i]));
    }
  }
  return q;
}

AttentionProblem make_problem(const NeedleParams& p, const CellContext& cell) {
  AttentionProblem problem;
  problem.layout = {p.heads_q, p.heads_kv, p.head_dim, p.kv_dtype};
  p.drive(problem, cell.context_length, cell.context_length);
  const int prompt = problem.tokens - problem.queries;

  // Needles sit inside the prompt (visible to every query), the first at the cell's depth.
  const int count = std::min(p.needles, std::max(prompt, 1));
  const int last_start = std::max(0, prompt - count);
  const int start = static_cast<int>(std::lround(cell.depth / 100.0 * last_start));
  for (int i = 0; i < count && start + i < prompt; ++i) problem.important_keys.push_back(start + i);

  const double needle_base =
      p.needle_above == NeedleBase::noise_max ? noise_logit_quantile(problem.tokens, p.tail_sigma) : 0.0;
  Rng rng(cell.seed * 0x9e3779b97f4a7c15ull + static_cast<std::uint64_t>(cell.context_length));
  const auto dir = directions(rng, problem.layout.head_dim);
  fill_keys(problem, rng, p, needle_base + p.needle_logit, dir, problem.important_keys);
  problem.q = make_queries(rng, problem.layout.heads_q, problem.queries, problem.layout.head_dim, dir);
  problem.q_observe = make_queries(rng, problem.layout.heads_q, problem.observe, problem.layout.head_dim, dir);
  return problem;
}

const RegisterTask registration{declared_attention_task<NeedleParams>(
    {
        .name = "attention_needle",
        .description = "seeded Q/K/V with a sink, a local band, heavy-tailed (optionally locally correlated) noise "
                       "and needle keys at the cell's depth",
    },
    make_problem)};

}  // namespace
}  // namespace ctxbench::tasks
