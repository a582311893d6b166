#include "longrope/search.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <limits>
#include <mutex>
#include <numeric>
#include <thread>

#include "core/timer.h"

namespace ctxbench::longrope {
namespace {

int to_grid(double lambda) { return static_cast<int>(std::lround(lambda * kGridSteps)); }

// The rescale factors of a classic method: inv_freq of plain RoPE over the method's inv_freq, on the grid.
// `seq_len` matters to dynamic NTK only.
Candidate method_candidate(kernels::RopeConfig rope, kernels::RopeType type, double scale, const SearchSpace& space,
                           std::int64_t seq_len = 0) {
  rope.type = type;
  rope.factor = scale;
  if (rope.original_max_position_embeddings < 1) rope.original_max_position_embeddings = rope.max_position_embeddings;
  if (rope.max_position_embeddings < 1) rope.max_position_embeddings = rope.original_max_position_embeddings;
  rope.validate();
  kernels::RopeConfig plain = rope;
  plain.type = kernels::RopeType::standard;
  const auto scaled = rope.inv_freq(std::max(seq_len, rope.original_max_position_embeddings));
  const auto original = plain.inv_freq(rope.original_max_position_embeddings);
  Candidate c;
  for (std::size_t i = 0; i < scaled.size(); ++i) {
    c.factors.push_back(std::clamp(to_grid(original[i] / scaled[i]), kGridSteps, space.max_factor));
  }
  return c;
}

// Uniform on the grid in [lo, hi] (hi >= lo).
int draw(int lo, int hi, Rng& rng) { return static_cast<int>(rng.integer(lo, hi)); }

std::uint64_t generation_seed(std::uint64_t seed, int generation) {
  return seed * 0x9e3779b97f4a7c15ull + static_cast<std::uint64_t>(generation) * 0xbf58476d1ce4e5b9ull + 0x4c52;
}

double finite_or_inf(double value) { return std::isfinite(value) ? value : std::numeric_limits<double>::infinity(); }

class Evaluator {
 public:
  Evaluator(const Fitness& fitness, int workers, std::FILE* log) : fitness_(fitness), workers_(workers), log_(log) {
    terminal_ = log_ && isatty(fileno(log_));
  }

  // Fills in the perplexity of members [first, end) in parallel.
  void evaluate(Generation& generation, std::size_t first, int index) {
    const std::size_t total = generation.size() - first;
    std::atomic<std::size_t> next{first};
    std::size_t done = 0;
    std::exception_ptr error;
    std::mutex mutex;
    double best = std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < first; ++i) best = std::min(best, generation[i].perplexity);
    const Stopwatch clock;
    const auto work = [&] {
      for (std::size_t i = next++; i < generation.size(); i = next++) {
        double value = 0;
        try {
          value = finite_or_inf(fitness_(generation[i].candidate));
        } catch (...) {
          const std::lock_guard lock(mutex);
          if (!error) error = std::current_exception();
          next = generation.size();
          return;
        }
        const std::lock_guard lock(mutex);
        generation[i].perplexity = value;
        best = std::min(best, value);
        ++done;
        if (terminal_) {
          fmt::print(log_, "\r  generation {}: {}/{} evaluated, best perplexity {:.4f}, {:.0f} s   ", index, done,
                     total, best, clock.seconds());
          std::fflush(log_);
        }
      }
    };
    std::vector<std::thread> threads;
    const int count = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(workers_), total));
    for (int t = 1; t < count; ++t) threads.emplace_back(work);
    work();
    for (auto& t : threads) t.join();
    if (error) std::rethrow_exception(error);
    if (log_) {
      fmt::print(log_, "{}generation {}: {} new candidates in {:.1f} s, best perplexity {:.4f}\n",
                 terminal_ ? "\r" : "", index, total, clock.seconds(), best);
      std::fflush(log_);
    }
  }

 private:
  const Fitness& fitness_;
  int workers_;
  std::FILE* log_;
  bool terminal_ = false;
};

Generation initial_population(const SearchSpace& space, const std::vector<Candidate>& seeds,
                              const SearchSettings& settings, std::set<Candidate>& seen) {
  static const char* kSeedNames[] = {"pi", "ntk", "yarn", "dynamic"};
  Generation out;
  for (std::size_t i = 0; i < seeds.size() && out.size() < static_cast<std::size_t>(settings.population); ++i) {
    if (!space.contains(seeds[i])) throw std::invalid_argument("longrope search: a seed is outside the search space");
    if (!seen.insert(seeds[i]).second) continue;
    out.push_back({seeds[i], 0, i < 4 ? kSeedNames[i] : "seed"});
  }
  const std::size_t distinct = out.size();
  Rng rng(generation_seed(settings.seed, 0));
  for (std::size_t i = 0; out.size() < static_cast<std::size_t>(settings.population); ++i) {
    if (i >= static_cast<std::size_t>(settings.population) * 4) break;  // a space too small for the population
    auto child = mutate(out[i % distinct].candidate, space, settings.ops, seen, rng);
    if (!child) continue;
    seen.insert(*child);
    out.push_back({std::move(*child), 0, "mutation"});
  }
  return out;
}

Generation next_generation(const Generation& previous, const SearchSpace& space, const SearchSettings& settings,
                           int index, std::set<Candidate>& seen) {
  Rng rng(generation_seed(settings.seed, index));
  Generation out = best_of(previous, settings.parents);
  for (auto& parent : out) parent.origin = "parent";
  const auto parents = static_cast<std::int64_t>(out.size());
  const auto add = [&](std::optional<Candidate> child, const char* origin) {
    if (!child) return;
    seen.insert(*child);
    out.push_back({std::move(*child), 0, origin});
  };
  for (int j = 0; j < settings.mutations; ++j) {
    add(mutate(out[rng.integer(0, parents - 1)].candidate, space, settings.ops, seen, rng), "mutation");
  }
  for (int j = 0; j < settings.crossovers; ++j) {
    if (parents < 2) {
      add(mutate(out[0].candidate, space, settings.ops, seen, rng), "mutation");
      continue;
    }
    auto first = rng.integer(0, parents - 1), second = rng.integer(0, parents - 2);
    if (second >= first) ++second;
    if (second < first) std::swap(first, second);  // the better parent first, as the original sorts the pair
    auto child = crossover(out[first].candidate, out[second].candidate, space, settings.ops, seen, rng);
    if (child) {
      add(std::move(child), "crossover");
    } else {
      add(mutate(out[first].candidate, space, settings.ops, seen, rng), "mutation");
    }
  }
  return out;
}

}  // namespace

std::vector<double> Candidate::lambdas() const {
  std::vector<double> out;
  for (const int f : factors) out.push_back(static_cast<double>(f) / kGridSteps);
  return out;
}

const std::vector<int>& paper_n_hat_choices() {
  static const std::vector<int> choices = {0, 1, 2, 4, 8, 12, 16, 20, 24, 28, 32, 64, 128, 256};
  return choices;
}

SearchSpace SearchSpace::for_scale(int pairs, double scale, bool search_n_hat) {
  if (pairs < 1) throw InputError("longrope search: the model needs at least one rotary pair");
  if (!(scale > 1.0)) {
    throw InputError(fmt::format("longrope search: target length must exceed the original length (scale {})", scale));
  }
  SearchSpace space;
  space.pairs = pairs;
  space.max_factor = to_grid(1.0 + scale);
  if (search_n_hat) space.n_hat_choices = paper_n_hat_choices();
  return space;
}

bool SearchSpace::contains(const Candidate& c) const {
  if (static_cast<int>(c.factors.size()) != pairs || !is_monotone(c.factors)) return false;
  if (c.factors.front() < kGridSteps || c.factors.back() > max_factor) return false;
  return std::find(n_hat_choices.begin(), n_hat_choices.end(), c.n_hat) != n_hat_choices.end();
}

bool is_monotone(const std::vector<int>& factors) { return std::is_sorted(factors.begin(), factors.end()); }

Candidate pi_candidate(const kernels::RopeConfig& rope, double scale, const SearchSpace& space) {
  return method_candidate(rope, kernels::RopeType::linear, scale, space);
}

Candidate ntk_candidate(const kernels::RopeConfig& rope, double scale, const SearchSpace& space) {
  return method_candidate(rope, kernels::RopeType::ntk, scale, space);
}

Candidate dynamic_ntk_candidate(const kernels::RopeConfig& rope, double scale, std::int64_t target_length,
                                const SearchSpace& space) {
  kernels::RopeConfig dynamic = rope;
  dynamic.max_position_embeddings = rope.original_max_position_embeddings;
  return method_candidate(dynamic, kernels::RopeType::dynamic, scale, space, target_length);
}

Candidate yarn_candidate(const kernels::RopeConfig& rope, double scale, const SearchSpace& space) {
  kernels::RopeConfig yarn = rope;
  yarn.beta_fast = 32.0;
  yarn.beta_slow = 1.0;
  yarn.truncate = true;
  return method_candidate(yarn, kernels::RopeType::yarn, scale, space);
}

std::optional<Candidate> mutate(const Candidate& parent, const SearchSpace& space, const Operators& ops,
                                const std::set<Candidate>& seen, Rng& rng) {
  Candidate child = parent;
  const int n = static_cast<int>(child.factors.size());
  const bool search_n_hat = space.n_hat_choices.size() > 1;
  for (int sweep = 0; sweep < ops.max_mutation_sweeps; ++sweep) {
    if (search_n_hat && rng.uniform() < ops.mutation_prob) {
      child.n_hat = space.n_hat_choices[rng.integer(0, static_cast<std::int64_t>(space.n_hat_choices.size()) - 1)];
    }
    for (int i = 0; i < n; ++i) {
      if (rng.uniform() >= ops.mutation_prob) continue;
      const int lo = i == 0 ? kGridSteps : child.factors[i - 1];
      const int hi = i == n - 1 ? space.max_factor : child.factors[i + 1];
      if (hi >= lo) child.factors[i] = draw(lo, hi, rng);
    }
    if (!seen.contains(child) && is_monotone(child.factors)) return child;
  }
  return std::nullopt;
}

std::optional<Candidate> crossover(const Candidate& first, const Candidate& second, const SearchSpace& space,
                                   const Operators& ops, const std::set<Candidate>& seen, Rng& rng) {
  if (first == second) return std::nullopt;
  Candidate child = first;
  const int n = static_cast<int>(child.factors.size());
  const bool search_n_hat = space.n_hat_choices.size() > 1;
  for (int attempt = 0; attempt < ops.max_crossover_tries; ++attempt) {
    // Dimension -1 is n_hat (the original keeps it at index 0 of the individual).
    for (int i = search_n_hat ? -1 : 0; i < n; ++i) {
      if (rng.uniform() >= ops.crossover_prob) continue;
      if (rng.uniform() < 0.5) {
        if (i < 0) {
          child.n_hat = second.n_hat;
        } else {
          child.factors[i] = second.factors[i];
        }
      }
      if (seen.contains(child) || !is_monotone(child.factors)) continue;
      return child;
    }
  }
  return std::nullopt;
}

void SearchSettings::validate() const {
  const auto positive = [](int value, const char* name) {
    if (value < 1) throw InputError(fmt::format("--{}: expected a positive integer, got {}", name, value));
  };
  positive(population, "population");
  positive(parents, "parents");
  if (iterations < 0) throw InputError(fmt::format("--iterations: expected an integer >= 0, got {}", iterations));
  if (mutations < 0) throw InputError(fmt::format("--mutations: expected an integer >= 0, got {}", mutations));
  if (crossovers < 0) throw InputError(fmt::format("--crossovers: expected an integer >= 0, got {}", crossovers));
  if (parents > population) {
    throw InputError(fmt::format("--parents: expected at most --population ({}), got {}", population, parents));
  }
  for (const auto& [value, name] :
       {std::pair{ops.mutation_prob, "mutation-prob"}, {ops.crossover_prob, "crossover-prob"}}) {
    if (!(value > 0.0 && value <= 1.0)) {
      throw InputError(fmt::format("--{}: expected a probability in (0, 1], got {}", name, value));
    }
  }
}

Generation best_of(const Generation& generation, int count) {
  std::vector<std::size_t> order(generation.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return generation[a].perplexity < generation[b].perplexity; });
  order.resize(std::min(order.size(), static_cast<std::size_t>(std::max(count, 0))));
  Generation out;
  for (const std::size_t i : order) out.push_back(generation[i]);
  return out;
}

SearchResult run_search(const SearchSpace& space, const std::vector<Candidate>& seeds, const SearchSettings& settings,
                        const Fitness& fitness, int workers, std::vector<Generation> stored, const SearchHooks& hooks) {
  settings.validate();
  if (seeds.empty()) throw std::invalid_argument("longrope search: no seed candidates");
  Evaluator evaluator(fitness, std::max(workers, 1), hooks.log);
  std::set<Candidate> seen;
  for (const auto& generation : stored) {
    for (const auto& member : generation) seen.insert(member.candidate);
  }
  SearchResult result;
  result.generations = std::move(stored);
  if (result.generations.empty()) {
    Generation initial = initial_population(space, seeds, settings, seen);
    evaluator.evaluate(initial, 0, 0);
    if (hooks.on_generation) hooks.on_generation(0, initial);
    result.generations.push_back(std::move(initial));
  } else if (hooks.log) {
    fmt::print(hooks.log, "resuming after generation {} (best perplexity {:.4f})\n", result.generations.size() - 1,
               best_of(result.generations.back(), 1).front().perplexity);
  }
  for (int g = static_cast<int>(result.generations.size()); g <= settings.iterations; ++g) {
    const Generation& previous = result.generations.back();
    const std::size_t carried = std::min(previous.size(), static_cast<std::size_t>(settings.parents));
    Generation next = next_generation(previous, space, settings, g, seen);
    evaluator.evaluate(next, carried, g);
    if (hooks.on_generation) hooks.on_generation(g, next);
    result.generations.push_back(std::move(next));
  }
  result.best = best_of(result.generations.back(), 1).front();
  return result;
}

Json rope_scaling_json(const Candidate& best, std::int64_t original_length, std::int64_t target_length,
                       std::optional<double> attention_factor) {
  const double factor = static_cast<double>(target_length) / static_cast<double>(original_length);
  Json out = {{"rope_type", "longrope"},
              {"long_factor", best.lambdas()},
              {"short_factor", std::vector<double>(best.factors.size(), 1.0)},
              {"original_max_position_embeddings", original_length},
              {"factor", factor},
              {"attention_factor", attention_factor.value_or(kernels::rope_math::longrope_attention_factor(
                                       factor, static_cast<double>(original_length)))}};
  if (best.n_hat > 0) out["start_token"] = best.n_hat;
  return out;
}

}  // namespace ctxbench::longrope
