// LongRoPE's evolutionary search for per-frequency RoPE rescale factors (microsoft/LongRoPE `evolution/`,
// SPEC section 6), without the model: the search space, the seeds (PI, NTK, YaRN), the mutation and crossover
// operators, and the generation loop over a caller-supplied fitness (lower is better: perplexity). Each
// generation is handed to a callback as soon as it is evaluated, and a search restarts from stored
// generations, so that an interrupted search ends exactly where an uninterrupted one would.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/params.h"
#include "core/random.h"
#include "kernels/rope.h"

namespace ctxbench::longrope {

// Factors are held in hundredths (the 0.01 grid of the original): lambda_i = factors[i] / 100.
inline constexpr int kGridSteps = 100;

struct Candidate {
  std::vector<int> factors;  // one per rotary pair, non-decreasing, in [kGridSteps, SearchSpace::max_factor]
  int n_hat = 0;             // LongRoPE start tokens: positions below n_hat keep the unscaled angles

  auto operator<=>(const Candidate&) const = default;
  std::vector<double> lambdas() const;
};

struct Individual {
  Candidate candidate;
  double perplexity = 0;  // +inf when the model's output was not finite
  std::string origin;     // pi, ntk, yarn, dynamic, mutation, crossover, parent
};

using Generation = std::vector<Individual>;

struct SearchSpace {
  int pairs = 0;       // rotary_dim / 2
  int max_factor = 0;  // grid units: round(100 * (1 + scale)), the original's evo_list maximum, unless widened
  std::vector<int> n_hat_choices = {0};

  // The space for extending a model to scale = target / original length (> 1).
  static SearchSpace for_scale(int pairs, double scale, bool search_n_hat);
  bool contains(const Candidate& c) const;
};

// The n_hat values of the paper.
const std::vector<int>& paper_n_hat_choices();

// Factors of the classic extensions as LongRoPE rescale factors (inv_freq_default / inv_freq_method) on the grid
// (rounded to the nearest step, clamped to the space): PI = scale everywhere, static NTK = scale^(2i/(d-2)),
// YaRN = 1 / (ramp_i / scale + 1 - ramp_i) (beta_fast 32, beta_slow 1; the factor YaRN's blend of inverse
// frequencies amounts to, where LongRoPE's search.py blends the factors linearly), all at n_hat 0. `rope`
// gives rotary_dim, theta and the original length.
Candidate pi_candidate(const kernels::RopeConfig& rope, double scale, const SearchSpace& space);
Candidate ntk_candidate(const kernels::RopeConfig& rope, double scale, const SearchSpace& space);
Candidate yarn_candidate(const kernels::RopeConfig& rope, double scale, const SearchSpace& space);
// Dynamic NTK (HF) at the target length: base theta * (scale * N / L0 - (scale - 1))^(d/(d-2)), so
// lambda_i = (scale^2 - scale + 1)^(2i/(d-2)) at N = scale * L0; mostly beyond 1 + scale (clamped), so it is
// only a seed of its own with a wider --max-factor. Not one of the original's seeds.
Candidate dynamic_ntk_candidate(const kernels::RopeConfig& rope, double scale, std::int64_t target_length,
                                const SearchSpace& space);

struct Operators {
  double mutation_prob = 0.3;   // per dimension: resampled between its neighbours
  double crossover_prob = 0.3;  // per dimension: considered for a swap (then taken with p = 0.5)
  int max_crossover_tries = 20;
  int max_mutation_sweeps = 10000;  // the original loops until it finds a new candidate; we give up here
};

// A new candidate not in `seen`: sweeps over the dimensions, each with probability mutation_prob drawn
// uniformly from the grid between its (already updated) left neighbour and its right neighbour (1.0 and the
// space maximum at the ends), until the result is new. With n_hat in the search, n_hat is redrawn from its
// choices with the same probability. nullopt when max_mutation_sweeps found nothing new.
std::optional<Candidate> mutate(const Candidate& parent, const SearchSpace& space, const Operators& ops,
                                const std::set<Candidate>& seen, Rng& rng);

// The original's crossover: starting from `first`, each dimension (n_hat first, when searched) is with
// probability crossover_prob considered, and then with p = 0.5 takes `second`'s value; the first change that
// gives a new monotone candidate is returned. Up to max_crossover_tries passes; nullopt when the parents are
// equal or nothing new was found (the caller then mutates `first`, as the original does).
std::optional<Candidate> crossover(const Candidate& first, const Candidate& second, const SearchSpace& space,
                                   const Operators& ops, const std::set<Candidate>& seen, Rng& rng);

bool is_monotone(const std::vector<int>& factors);

struct SearchSettings {
  int population = 64;
  int iterations = 40;
  int parents = 32;
  int mutations = 16;
  int crossovers = 16;
  std::uint64_t seed = 0;
  Operators ops;

  void validate() const;  // throws InputError naming the setting
};

// Fitness of a candidate, called from `workers` threads at once for different candidates: it must be
// thread-safe and depend on the candidate only.
using Fitness = std::function<double(const Candidate&)>;

struct SearchHooks {
  // Called with each generation once every member is evaluated (generation 0 = the initial population).
  std::function<void(int generation, const Generation&)> on_generation;
  std::FILE* log = nullptr;  // progress lines (null: silent)
};

struct SearchResult {
  Individual best;
  std::vector<Generation> generations;  // every generation, resumed ones included
};

// Runs generations 0..settings.iterations. `stored` holds generations already evaluated (0..k, in order,
// from an interrupted run with the same settings): the search continues after the last one. Generation g
// draws from an Rng seeded by (seed, g) only, so a resumed search makes exactly the choices of an
// uninterrupted one.
SearchResult run_search(const SearchSpace& space, const std::vector<Candidate>& seeds, const SearchSettings& settings,
                        const Fitness& fitness, int workers, std::vector<Generation> stored = {},
                        const SearchHooks& hooks = {});

// The best (lowest perplexity, earliest on ties) members of a generation, at most `count`.
Generation best_of(const Generation& generation, int count);

// The rope_scaling object for a result: long_factor = the lambdas, short_factor = 1.0 (plain RoPE up to the
// original length), factor = target / original, the derived attention factor made explicit, and
// "start_token" (not an HF field) when n_hat > 0.
Json rope_scaling_json(const Candidate& best, std::int64_t original_length, std::int64_t target_length,
                       std::optional<double> attention_factor = std::nullopt);

}  // namespace ctxbench::longrope
