// `ctxbench longrope-search`: LongRoPE's evolutionary search of RoPE rescale factors for a model and a target
// length, its state in the results database (an interrupted search resumes), and the result as a rope_scaling
// object for config.json or a suite's "rope_scaling" parameter.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/command.h"
#include "core/source_tree.h"
#include "core/timer.h"
#include "harness/store.h"
#include "longrope/fitness.h"
#include "longrope/search.h"
#include "longrope/store.h"

namespace ctxbench {
namespace {

using longrope::Candidate;

constexpr const char* kHeldOutDocuments = "datasets/heldout";

long long integer_option(const Args& args, const std::string& name, long long fallback, long long min) {
  const std::string text = args.option(name, std::to_string(fallback));
  std::size_t used = 0;
  long long value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || value < min) {
    throw InputError(fmt::format("{}: expected an integer >= {}, got \"{}\"", name, min, text));
  }
  return value;
}

double number_option(const Args& args, const std::string& name, double fallback) {
  const std::string text = args.option(name, fmt::format("{}", fallback));
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty())
    throw InputError(fmt::format("{}: expected a number, got \"{}\"", name, text));
  return value;
}

// FNV-1a over config.json and the safetensors files, so that a retrained model never resumes an old search.
std::string model_fingerprint(const std::string& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const auto name = entry.path().filename().string();
    if (name == "config.json" || name.ends_with(".safetensors")) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    char buffer[1 << 16];
    while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
      for (std::streamsize i = 0; i < in.gcount(); ++i) {
        hash = (hash ^ static_cast<unsigned char>(buffer[i])) * 0x100000001b3ull;
      }
    }
  }
  return fmt::format("{:016x}", hash);
}

// The classic extensions at the same scale, for --compare.
std::vector<std::pair<std::string, Json>> baselines(double scale, std::int64_t original) {
  return {{"plain RoPE", Json::object({{"rope_type", "default"}})},
          {"PI (linear)", {{"rope_type", "linear"}, {"factor", scale}}},
          {"NTK (static)", {{"rope_type", "ntk"}, {"factor", scale}}},
          {"dynamic NTK", {{"rope_type", "dynamic"}, {"factor", scale}}},
          {"YaRN", {{"rope_type", "yarn"}, {"factor", scale}, {"original_max_position_embeddings", original}}}};
}

int longrope_search_command(const Args& args) {
  args.expect_positionals(0, 0, "ctxbench longrope-search --model DIR --target-length N [options]");
  if (args.option("--model", "").empty()) throw InputError("--model: expected a model directory");
  longrope::FitnessSettings fit;
  fit.model_dir = from_source_tree(args.option("--model", "")).string();
  fit.target_length = integer_option(args, "--target-length", 0, 2);
  fit.documents = args.option("--documents", kHeldOutDocuments);
  fit.samples = static_cast<int>(integer_option(args, "--samples", 3, 1));
  fit.offset = args.option("--offset", "start");
  fit.kind = args.option("--fitness", "perplexity");
  fit.seed = static_cast<std::uint64_t>(integer_option(args, "--seed", 0, 0));
  if (!args.option("--attention-factor", "").empty())
    fit.attention_factor = number_option(args, "--attention-factor", 1);

  longrope::SearchSettings search;
  search.population = static_cast<int>(integer_option(args, "--population", 64, 1));
  search.iterations = static_cast<int>(integer_option(args, "--iterations", 40, 0));
  search.parents = static_cast<int>(integer_option(args, "--parents", std::max(search.population / 2, 1), 1));
  search.mutations = static_cast<int>(integer_option(args, "--mutations", search.population / 4, 0));
  search.crossovers = static_cast<int>(integer_option(args, "--crossovers", search.population / 4, 0));
  search.seed = fit.seed;
  search.ops.mutation_prob = number_option(args, "--mutation-prob", 0.3);
  search.ops.crossover_prob = number_option(args, "--crossover-prob", 0.3);
  search.validate();
  const std::string n_hat = args.option("--n-hat", "0");
  const bool search_n_hat = n_hat == "search";
  const int fixed_n_hat = search_n_hat ? 0 : static_cast<int>(integer_option(args, "--n-hat", 0, 0));
  const int workers = static_cast<int>(integer_option(args, "--workers", 2, 1));

  const longrope::PerplexityFitness fitness(fit);
  const kernels::RopeConfig& rope = fitness.config().rope;
  if (rope.type != kernels::RopeType::standard) {
    throw InputError(fit.model_dir + "/config.json: rope_scaling: expected none (the search starts from plain RoPE)");
  }
  auto space = longrope::SearchSpace::for_scale(rope.rotary_dim / 2, fitness.scale(), search_n_hat);
  if (!search_n_hat) space.n_hat_choices = {fixed_n_hat};
  if (!args.option("--max-factor", "").empty()) {
    const double max_factor = number_option(args, "--max-factor", 0);
    if (!(max_factor >= 1.01 && max_factor <= 1e4)) {
      throw InputError(fmt::format("--max-factor: expected a number in [1.01, 10000], got {}", max_factor));
    }
    space.max_factor = static_cast<int>(std::lround(max_factor * longrope::kGridSteps));
  }
  kernels::RopeConfig base = rope;
  base.original_max_position_embeddings = fitness.original_length();
  std::vector<Candidate> seeds = {longrope::pi_candidate(base, fitness.scale(), space),
                                  longrope::ntk_candidate(base, fitness.scale(), space),
                                  longrope::yarn_candidate(base, fitness.scale(), space),
                                  longrope::dynamic_ntk_candidate(base, fitness.scale(), fit.target_length, space)};
  for (auto& seed : seeds) seed.n_hat = fixed_n_hat;

  const Json key = {{"model", std::filesystem::weakly_canonical(fit.model_dir).string()},
                    {"model_fingerprint", model_fingerprint(fit.model_dir)},
                    {"target_length", fit.target_length},
                    {"fitness", fit.kind},
                    {"documents", fit.documents},
                    {"samples", fit.samples},
                    {"offset", fit.offset},
                    {"seed", fit.seed},
                    {"attention_factor", fit.attention_factor ? Json(*fit.attention_factor) : Json()},
                    {"population", search.population},
                    {"parents", search.parents},
                    {"mutations", search.mutations},
                    {"crossovers", search.crossovers},
                    {"mutation_prob", search.ops.mutation_prob},
                    {"crossover_prob", search.ops.crossover_prob},
                    {"n_hat", search_n_hat ? Json("search") : Json(fixed_n_hat)},
                    {"max_factor", space.max_factor}};
  Store results(args.option("--db", kDefaultDb));
  longrope::SearchStore store(results);
  const std::int64_t id = store.open_search(key);
  auto stored = store.generations(id);
  if (stored.size() > static_cast<std::size_t>(search.iterations) + 1) stored.resize(search.iterations + 1);

  fmt::print(
      "longrope search {} in {}: {} -> {} tokens (scale {:.3g}), {} rotary pairs, factors on [1, {:.2f}], "
      "{} {} windows, population {}, {} iterations, {} workers\n",
      id, args.option("--db", kDefaultDb), fitness.original_length(), fit.target_length, fitness.scale(), space.pairs,
      space.max_factor / 100.0, fitness.windows(), fit.kind == "passkey" ? "passkey" : fit.documents, search.population,
      search.iterations, workers);
  std::fflush(stdout);
  const longrope::SearchHooks hooks{
      .on_generation = [&](int g, const longrope::Generation& generation) { store.save_generation(id, g, generation); },
      .log = stdout};
  const Stopwatch clock;
  const auto result = longrope::run_search(
      space, seeds, search, [&](const Candidate& c) { return fitness(c); }, workers, std::move(stored), hooks);
  const Json scaling = fitness.rope_scaling(result.best.candidate);
  store.finish(id, {{"rope_scaling", scaling}, {"perplexity", result.best.perplexity}});
  fmt::print("best perplexity {:.4f} ({} of generation {}), {:.0f} s\n", result.best.perplexity, result.best.origin,
             result.generations.size() - 1, clock.seconds());
  fmt::print("{}\n", scaling.dump());
  if (const std::string out = args.option("--out", ""); !out.empty()) {
    std::ofstream file(out);
    if (!(file << scaling.dump(2) << "\n")) throw InputError(out + ": cannot be written");
    fmt::print("rope_scaling written to {}\n", out);
  }
  if (args.flag("--compare")) {
    fmt::print("{} at {} tokens on the same windows:\n", fit.kind == "passkey" ? "answer perplexity" : "perplexity",
               fit.target_length);
    for (const auto& [name, rope_scaling] : baselines(fitness.scale(), fitness.original_length())) {
      fmt::print("  {:<16} {:.4f}\n", name, fitness.perplexity(rope_scaling));
      std::fflush(stdout);
    }
    fmt::print("  {:<16} {:.4f}\n", "LongRoPE search", result.best.perplexity);
  }
  return 0;
}

const RegisterCommand registration{{
    .name = "longrope-search",
    .summary = "search LongRoPE rescale factors for a target length (evolutionary, resumable)",
    .usage =
        "ctxbench longrope-search --model DIR --target-length N [--population 64] [--iterations 40]\n"
        "    [--parents P] [--mutations M] [--crossovers C] [--mutation-prob 0.3] [--crossover-prob 0.3]\n"
        "    [--n-hat 0|N|search] [--seed 0] [--documents PATH] [--samples 3] [--offset start|random]\n"
        "    [--fitness perplexity|passkey] [--attention-factor X] [--max-factor X] [--workers 2] [--db FILE]\n"
        "    [--out FILE] [--compare]\n\n"
        "LongRoPE's evolutionary search (microsoft/LongRoPE evolution/, dim_mono): one rescale factor per\n"
        "rotary pair, non-decreasing, on a 0.01 grid in [1, 1 + scale], scale = N / the model's training length.\n"
        "The first generation holds the PI, NTK, YaRN and dynamic NTK factors (clamped to the range) and\n"
        "mutations of them; each later one keeps the best P (default population/2) and adds M mutations\n"
        "(default population/4; each factor resampled between its neighbours with --mutation-prob) and C\n"
        "crossovers (each factor taken from the other parent with --crossover-prob x 0.5) of random parents.\n"
        "Fitness: the perplexity task at N tokens (mean over --samples windows of --documents, default\n"
        "datasets/heldout: text the bundled model was not trained on), on dense attention, --workers\n"
        "candidates at a time.\n"
        "  --fitness    perplexity (above), or passkey: LongRoPE2's needle-driven perplexity, on --samples passkey\n"
        "               prompts of N tokens followed by the answer \" KEY.\", counting the answer tokens only\n"
        "  --n-hat      start tokens kept at the original angles: a fixed count, or `search` over\n"
        "               {0,1,2,4,8,...,32,64,128,256}\n"
        "  --attention-factor  magnitude of the searched scaling (default sqrt(1 + ln(scale) / ln(L0)))\n"
        "  --max-factor X  widens the factor range to [1, X] (default 1 + scale, the original's)\n"
        "  --db FILE    every evaluated generation is stored there (default ctxbench.db); running the same\n"
        "               command again resumes after the last stored generation (a larger --iterations extends\n"
        "               a finished search)\n"
        "  --out FILE   writes the rope_scaling object (HF config.json form, also accepted by a suite's\n"
        "               \"rope_scaling\" task parameter)\n"
        "  --compare    also prints the perplexity of plain RoPE, PI, NTK, dynamic NTK and YaRN on the windows",
    .options = {"--model",          "--target-length", "--population", "--iterations",
                "--parents",        "--mutations",     "--crossovers", "--mutation-prob",
                "--crossover-prob", "--n-hat",         "--seed",       "--documents",
                "--samples",        "--offset",        "--fitness",    "--attention-factor",
                "--max-factor",     "--workers",       "--db",         "--out"},
    .flags = {"--compare"},
    .run = longrope_search_command,
}};

}  // namespace
}  // namespace ctxbench
