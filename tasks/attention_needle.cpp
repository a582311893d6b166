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

struct Shape {
  double needle_logit, sink_logit, band_logit, band_width, tail_sigma, correlation_length;
  int sinks;
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
void fill_keys(AttentionProblem& p, Rng& rng, const Shape& s, const std::vector<std::vector<float>>& dir,
               const std::vector<int>& needles) {
  const int d = p.layout.head_dim, T = p.tokens;
  p.k.resize(static_cast<std::size_t>(p.layout.heads_kv) * T * d);
  p.v.resize(p.k.size());
  const Ar1 ar1(s.correlation_length);
  for (int h = 0; h < p.layout.heads_kv; ++h) {
    double log_magnitude = 0;
    std::vector<double> direction(d, 0.0);
    for (int t = 0; t < T; ++t) {
      float* k = &p.k[(static_cast<std::size_t>(h) * T + t) * d];
      float* v = &p.v[(static_cast<std::size_t>(h) * T + t) * d];
      log_magnitude = ar1.step(log_magnitude, rng.normal());
      const double magnitude = std::exp(s.tail_sigma * log_magnitude - 0.5 * s.tail_sigma * s.tail_sigma);
      for (int i = 0; i < d; ++i) {
        direction[i] = ar1.step(direction[i], rng.normal());
        k[i] = static_cast<float>(magnitude * direction[i]);
        v[i] = static_cast<float>(rng.normal());
      }
      double needle = 0, sink = t < s.sinks ? s.sink_logit : 0;
      if (std::binary_search(needles.begin(), needles.end(), t)) needle = s.needle_logit;
      const double band = s.band_logit * std::exp(-(T - 1 - t) / s.band_width);
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

AttentionProblem make_problem(const CellContext& cell) {
  const Json& p = cell.params;
  AttentionProblem problem;
  problem.layout.heads_q = p.at("heads_q").get<int>();
  problem.layout.heads_kv = p.at("heads_kv").get<int>();
  problem.layout.head_dim = p.at("head_dim").get<int>();
  problem.layout.kv_dtype = kernels::parse_dtype(p.at("kv_dtype").get<std::string>());
  if (problem.layout.heads_q % problem.layout.heads_kv != 0) {
    throw InputError("attention_needle: heads_q must be a multiple of heads_kv");
  }
  problem.phase = p.at("mode").get<std::string>() == "prefill" ? engines::Phase::prefill : engines::Phase::decode;
  problem.tokens = cell.context_length;
  problem.queries = std::min(p.at("queries").get<int>(), cell.context_length);
  const int prompt = problem.tokens - problem.queries;
  problem.observe = problem.phase == engines::Phase::decode ? std::min(p.at("observe").get<int>(), prompt) : 0;
  problem.error_queries = p.at("error_queries").get<int>();

  // Needles sit inside the prompt (visible to every query), the first at the cell's depth.
  const int count = std::min(p.at("needles").get<int>(), std::max(prompt, 1));
  const int last_start = std::max(0, prompt - count);
  const int start = static_cast<int>(std::lround(cell.depth / 100.0 * last_start));
  for (int i = 0; i < count && start + i < prompt; ++i) problem.important_keys.push_back(start + i);

  const double tail_sigma = p.at("tail_sigma").get<double>();
  const double needle_base =
      p.at("needle_above").get<std::string>() == "noise_max" ? noise_logit_quantile(problem.tokens, tail_sigma) : 0.0;
  const Shape shape{needle_base + p.at("needle_logit").get<double>(),
                    p.at("sink_logit").get<double>(),
                    p.at("band_logit").get<double>(),
                    p.at("band_width").get<double>(),
                    tail_sigma,
                    p.at("correlation_length").get<double>(),
                    p.at("sinks").get<int>()};
  Rng rng(cell.seed * 0x9e3779b97f4a7c15ull + static_cast<std::uint64_t>(cell.context_length));
  const auto dir = directions(rng, problem.layout.head_dim);
  fill_keys(problem, rng, shape, dir, problem.important_keys);
  problem.q = make_queries(rng, problem.layout.heads_q, problem.queries, problem.layout.head_dim, dir);
  problem.q_observe = make_queries(rng, problem.layout.heads_q, problem.observe, problem.layout.head_dim, dir);
  return problem;
}

ParamSchema params() {
  ParamSchema schema = {
      {.name = "heads_q", .type = ParamType::integer, .default_value = 8, .help = "query heads", .min = 1},
      {.name = "heads_kv", .type = ParamType::integer, .default_value = 2, .help = "key/value heads", .min = 1},
      {.name = "head_dim",
       .type = ParamType::integer,
       .default_value = 64,
       .help = "head dimension",
       .min = 1,
       .max = 512},
      {.name = "needles", .type = ParamType::integer, .default_value = 4, .help = "consecutive needle keys", .min = 0},
      {.name = "needle_logit",
       .type = ParamType::number,
       .default_value = 8.0,
       .help = "score boost of a needle key, counted from needle_above"},
      {.name = "needle_above",
       .type = ParamType::string,
       .default_value = "zero",
       .help = "needle_logit counts from 0, or from the typical largest noise logit of the context "
               "(its 1 - 1/T quantile), so that the needle stands out at every length",
       .choices = {"zero", "noise_max"}},
      {.name = "sinks",
       .type = ParamType::integer,
       .default_value = 4,
       .help = "attention-sink keys at the start",
       .min = 0},
      {.name = "sink_logit", .type = ParamType::number, .default_value = 6.0, .help = "score boost of a sink key"},
      {.name = "band_logit", .type = ParamType::number, .default_value = 4.0, .help = "score boost of the newest key"},
      {.name = "band_width",
       .type = ParamType::number,
       .default_value = 64.0,
       .help = "decay length of the local band",
       .min = 1e-6},
      {.name = "tail_sigma",
       .type = ParamType::number,
       .default_value = 0.5,
       .help = "log-normal spread of key magnitudes (heavy tail)",
       .min = 0},
      {.name = "correlation_length",
       .type = ParamType::number,
       .default_value = 0.0,
       .help = "keys whose distance is dt have noise correlated by exp(-dt / length): the locality of "
               "real text's keys (0: i.i.d.)",
       .min = 0},
  };
  const ParamSchema drive = attention_problem_params(4, "decode steps, or prefill chunk size");
  schema.insert(schema.end(), drive.begin(), drive.end());
  return schema;
}

const RegisterTask registration{{
    .name = "attention_needle",
    .description = "seeded Q/K/V with a sink, a local band, heavy-tailed (optionally locally correlated) noise and "
                   "needle keys at the cell's depth",
    .params = params(),
    .make_attention_problem = make_problem,
}};

}  // namespace
}  // namespace ctxbench::tasks
