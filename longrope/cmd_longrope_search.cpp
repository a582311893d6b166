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

// --n-hat takes `search` or a count, read as this integer option.
const ParamSpec kFixedNHat{.name = "--n-hat", .type = ParamType::integer, .help = "", .min = 0};

// The search sizes whose defaults follow --population.
long long integer_or(const Args& args, const std::string& name, long long fallback) {
  return args.given(name) ? args.integer(name) : fallback;
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
  args.expect_positionals(0, 0);
  longrope::FitnessSettings fit;
  fit.model_dir = from_source_tree(args.text("--model")).string();
  fit.target_length = args.integer("--target-length");
  fit.documents = args.text("--documents");
  fit.samples = static_cast<int>(args.integer("--samples"));
  fit.offset = args.text("--offset");
  fit.kind = args.text("--fitness");
  fit.seed = static_cast<std::uint64_t>(args.integer("--seed"));
  if (args.given("--attention-factor")) fit.attention_factor = args.number("--attention-factor");

  longrope::SearchSettings search;
  search.population = static_cast<int>(args.integer("--population"));
  search.iterations = static_cast<int>(args.integer("--iterations"));
  search.parents = static_cast<int>(integer_or(args, "--parents", std::max(search.population / 2, 1)));
  search.mutations = static_cast<int>(integer_or(args, "--mutations", search.population / 4));
  search.crossovers = static_cast<int>(integer_or(args, "--crossovers", search.population / 4));
  search.seed = fit.seed;
  search.ops.mutation_prob = args.number("--mutation-prob");
  search.ops.crossover_prob = args.number("--crossover-prob");
  search.validate();
  const std::string n_hat = args.text("--n-hat");
  const bool search_n_hat = n_hat == "search";
  const int fixed_n_hat = search_n_hat ? 0 : static_cast<int>(parse_option_value(kFixedNHat, n_hat).get<long long>());
  const int workers = static_cast<int>(args.integer("--workers"));

  const longrope::PerplexityFitness fitness(fit);
  const kernels::RopeConfig& rope = fitness.config().rope;
  if (rope.type != kernels::RopeType::standard) {
    throw InputError(fit.model_dir + "/config.json: rope_scaling: expected none (the search starts from plain RoPE)");
  }
  auto space = longrope::SearchSpace::for_scale(rope.rotary_dim / 2, fitness.scale(), search_n_hat);
  if (!search_n_hat) space.n_hat_choices = {fixed_n_hat};
  if (args.given("--max-factor"))
    space.max_factor = static_cast<int>(std::lround(args.number("--max-factor") * longrope::kGridSteps));
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
  Store results(args.text("--db"));
  longrope::SearchStore store(results);
  const std::int64_t id = store.open_search(key);
  auto stored = store.generations(id);
  if (stored.size() > static_cast<std::size_t>(search.iterations) + 1) stored.resize(search.iterations + 1);

  fmt::print(
      "longrope search {} in {}: {} -> {} tokens (scale {:.3g}), {} rotary pairs, factors on [1, {:.2f}], "
      "{} {} windows, population {}, {} iterations, {} workers\n",
      id, args.text("--db"), fitness.original_length(), fit.target_length, fitness.scale(), space.pairs,
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
  if (args.given("--out")) {
    const std::string out = args.text("--out");
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
    .usage = "ctxbench longrope-search --model DIR --target-length N [--population 64] [--iterations 40]\n"
             "    [--parents P] [--mutations M] [--crossovers C] [--mutation-prob 0.3] [--crossover-prob 0.3]\n"
             "    [--n-hat 0|N|search] [--seed 0] [--documents PATH] [--samples 3] [--offset start|random]\n"
             "    [--fitness perplexity|passkey] [--attention-factor X] [--max-factor X] [--workers 2] [--db FILE]\n"
             "    [--out FILE] [--compare]",
    .description =
        "LongRoPE's evolutionary search (microsoft/LongRoPE evolution/, dim_mono): one rescale factor per\n"
        "rotary pair, non-decreasing, on a 0.01 grid in [1, 1 + scale], scale = N / the model's training length.\n"
        "The first generation holds the PI, NTK, YaRN and dynamic NTK factors (clamped to the range) and\n"
        "mutations of them; each later one keeps the best P (default population/2) and adds M mutations\n"
        "(default population/4; each factor resampled between its neighbours with --mutation-prob) and C\n"
        "crossovers (each factor taken from the other parent with --crossover-prob x 0.5) of random parents.\n"
        "Fitness: the perplexity task at N tokens (mean over --samples windows of --documents, default\n"
        "datasets/heldout: text the bundled model was not trained on), on dense attention, --workers\n"
        "candidates at a time.",
    .options =
        {{.name = "--model", .type = ParamType::string, .help = "the HF-style model directory; required"},
         {.name = "--target-length",
          .type = ParamType::integer,
          .help = "N, the context length searched for; required",
          .min = 2},
         {.name = "--population",
          .type = ParamType::integer,
          .default_value = 64,
          .help = "candidates per generation",
          .min = 1},
         {.name = "--iterations",
          .type = ParamType::integer,
          .default_value = 40,
          .help = "generations after the first",
          .min = 0},
         {.name = "--parents",
          .type = ParamType::integer,
          .help = "the best kept each generation, by default population/2",
          .min = 1},
         {.name = "--mutations",
          .type = ParamType::integer,
          .help = "mutations added each generation, by default population/4",
          .min = 0},
         {.name = "--crossovers",
          .type = ParamType::integer,
          .help = "crossovers added each generation, by default population/4",
          .min = 0},
         {.name = "--mutation-prob",
          .type = ParamType::number,
          .default_value = 0.3,
          .help = "the chance that a mutation resamples a factor"},
         {.name = "--crossover-prob",
          .type = ParamType::number,
          .default_value = 0.3,
          .help = "twice the chance that a crossover takes a factor from the other parent"},
         {.name = "--n-hat",
          .type = ParamType::string,
          .default_value = "0",
          .help = "start tokens kept at the original angles: a fixed count, or `search` over\n"
                  "{0,1,2,4,8,...,32,64,128,256}"},
         {.name = "--seed", .type = ParamType::integer, .default_value = 0, .help = "the search's seed", .min = 0},
         {.name = "--documents",
          .type = ParamType::string,
          .default_value = kHeldOutDocuments,
          .help = "the text the perplexity windows are cut from"},
         {.name = "--samples",
          .type = ParamType::integer,
          .default_value = 3,
          .help = "windows (or passkey prompts) per candidate",
          .min = 1},
         {.name = "--offset",
          .type = ParamType::string,
          .default_value = "start",
          .help = "start or random: where the windows begin in each document"},
         {.name = "--fitness",
          .type = ParamType::string,
          .default_value = "perplexity",
          .help = "perplexity (above), or passkey: LongRoPE2's needle-driven perplexity, on --samples\n"
                  "passkey prompts of N tokens followed by the answer \" KEY.\", counting the answer tokens only"},
         {.name = "--attention-factor",
          .type = ParamType::number,
          .help = "magnitude of the searched scaling, by default sqrt(1 + ln(scale) / ln(L0))"},
         {.name = "--max-factor",
          .type = ParamType::number,
          .help = "widens the factor range to [1, X]; by default [1, 1 + scale], as the original",
          .min = 1.01,
          .max = 10000},
         {.name = "--workers",
          .type = ParamType::integer,
          .default_value = 2,
          .help = "candidates evaluated at a time",
          .min = 1},
         database_option("every evaluated generation is stored there; running the same command again\n"
                         "resumes after the last stored generation (a larger --iterations extends a finished\n"
                         "search)"),
         {.name = "--out",
          .type = ParamType::string,
          .help = "writes the rope_scaling object (HF config.json form, also accepted by a suite's\n"
                  "\"rope_scaling\" task parameter)"},
         {.name = "--compare",
          .type = ParamType::boolean,
          .help = "also prints the perplexity of plain RoPE, PI, NTK, dynamic NTK and YaRN on the windows"}},
    .run = longrope_search_command,
}};

}  // namespace
}  // namespace ctxbench
