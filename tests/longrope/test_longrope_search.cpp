// LongRoPE factor search: the operators stay on the grid and monotone, the seeds are the PI/NTK/YaRN factors
// of their closed formulas, the fitness equals a float64 reference perplexity, a fixed seed gives one result,
// and an interrupted search resumes to the result of an uninterrupted one (in the library and through the
// CLI), whose rope_scaling output the config parsers accept.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <numbers>
#include <stdexcept>

#include "harness/isolation.h"
#include "harness/store.h"
#include "harness/suite.h"
#include "longrope/fitness.h"
#include "longrope/search.h"
#include "longrope/store.h"
#include "model/llama_config.h"
#include "model/tokenizer.h"
#include "tasks/task.h"
#include "tests/helpers.h"
#include "tests/test_model_fixture.h"

using namespace ctxbench;
using namespace ctxbench::longrope;

namespace {

// A random monotone candidate of the space.
Candidate random_candidate(const SearchSpace& space, Rng& rng) {
  Candidate c;
  for (int i = 0; i < space.pairs; ++i)
    c.factors.push_back(static_cast<int>(rng.integer(kGridSteps, space.max_factor)));
  std::sort(c.factors.begin(), c.factors.end());
  c.n_hat = space.n_hat_choices[rng.integer(0, static_cast<std::int64_t>(space.n_hat_choices.size()) - 1)];
  return c;
}

kernels::RopeConfig llama2_like_rope() {
  auto rope = kernels::RopeConfig::standard_rope(128, 10000.0);
  rope.max_position_embeddings = 4096;
  rope.original_max_position_embeddings = 4096;
  return rope;
}

// A smooth synthetic fitness with its optimum inside the space (lower is better).
double synthetic_fitness(const Candidate& c) {
  double sum = 0;
  for (std::size_t i = 0; i < c.factors.size(); ++i) {
    const double target = 100.0 + 25.0 * static_cast<double>(i);
    sum += (c.factors[i] - target) * (c.factors[i] - target);
  }
  return 1.0 + sum / 1e4 + 0.01 * c.n_hat;
}

std::vector<Candidate> seeds_for(const SearchSpace& space, double scale) {
  auto rope = kernels::RopeConfig::standard_rope(2 * space.pairs, 10000.0);
  rope.max_position_embeddings = 64;
  rope.original_max_position_embeddings = 64;
  return {pi_candidate(rope, scale, space), ntk_candidate(rope, scale, space), yarn_candidate(rope, scale, space)};
}

SearchSettings small_settings(std::uint64_t seed) {
  SearchSettings s;
  s.population = 12;
  s.parents = 6;
  s.mutations = 3;
  s.crossovers = 3;
  s.iterations = 6;
  s.seed = seed;
  return s;
}

bool same_generations(const std::vector<longrope::Generation>& a, const std::vector<longrope::Generation>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t g = 0; g < a.size(); ++g) {
    if (a[g].size() != b[g].size()) return false;
    for (std::size_t i = 0; i < a[g].size(); ++i) {
      if (a[g][i].candidate != b[g][i].candidate || a[g][i].perplexity != b[g][i].perplexity ||
          a[g][i].origin != b[g][i].origin) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace

TEST_CASE("longrope search: mutation and crossover keep the factors monotone and on the grid", "[longrope]") {
  for (const bool n_hat : {false, true}) {
    const auto space = SearchSpace::for_scale(16, 4.0, n_hat);
    CHECK(space.max_factor == 500);  // [1, 1 + scale] as the original's evo_list
    Rng rng(7);
    std::set<Candidate> seen;
    int crossovers = 0;
    for (int trial = 0; trial < 300; ++trial) {
      const Candidate a = random_candidate(space, rng), b = random_candidate(space, rng);
      REQUIRE(space.contains(a));
      seen.insert(a);
      seen.insert(b);
      const auto child = mutate(a, space, Operators{}, seen, rng);
      REQUIRE(child);
      CHECK(space.contains(*child));
      CHECK(!seen.contains(*child));
      const auto mixed = crossover(a, b, space, Operators{}, seen, rng);
      if (mixed) {
        ++crossovers;
        CHECK(space.contains(*mixed));
        CHECK(!seen.contains(*mixed));
        // Every entry comes from one of the parents.
        for (int i = 0; i < space.pairs; ++i) {
          CHECK((mixed->factors[i] == a.factors[i] || mixed->factors[i] == b.factors[i]));
        }
        CHECK((mixed->n_hat == a.n_hat || mixed->n_hat == b.n_hat));
      }
    }
    CHECK(crossovers > 0);
  }
  const auto space = SearchSpace::for_scale(4, 2.0, false);
  const Candidate same{{100, 120, 150, 300}, 0};
  Rng rng(1);
  CHECK_FALSE(crossover(same, same, space, Operators{}, {}, rng).has_value());
  CHECK(Candidate{{100, 125, 300}, 0}.lambdas() == std::vector<double>{1.0, 1.25, 3.0});
}

TEST_CASE("longrope search: the seeds are the PI, NTK and YaRN factors of their formulas", "[longrope]") {
  const double scale = 4.0;
  const auto rope = llama2_like_rope();
  const int d = 128, pairs = 64;
  const auto space = SearchSpace::for_scale(pairs, scale, false);
  const auto grid = [](double lambda) { return static_cast<int>(std::lround(lambda * 100)); };
  // YaRN's blend range for Llama-2 (SPEC section 1): 20 / 46.
  const auto corr = [&](double rotations) {
    return d * std::log(4096.0 / (2 * std::numbers::pi * rotations)) / (2 * std::log(10000.0));
  };
  const double low = std::floor(corr(32)), high = std::ceil(corr(1));
  REQUIRE(low == 20);
  REQUIRE(high == 46);
  const Candidate pi = pi_candidate(rope, scale, space), ntk = ntk_candidate(rope, scale, space),
                  yarn = yarn_candidate(rope, scale, space);
  for (int i = 0; i < pairs; ++i) {
    CHECK(pi.factors[i] == 400);
    CHECK(ntk.factors[i] == grid(std::pow(scale, 2.0 * i / (d - 2))));
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    // YaRN blends the inverse frequencies: inv * (ramp / scale + 1 - ramp).
    CHECK(yarn.factors[i] == grid(1.0 / (ramp / scale + 1.0 - ramp)));
  }
  CHECK(ntk.factors.front() == 100);
  CHECK(ntk.factors.back() == 400);

  // The initial population starts with them, followed by mutations.
  std::vector<longrope::Generation> seen;
  SearchSettings initial_only;
  initial_only.population = 10;
  initial_only.parents = 5;
  initial_only.iterations = 0;
  const auto result = run_search(space, {pi, ntk, yarn}, initial_only, synthetic_fitness, 1, {},
                                 {.on_generation = [&](int, const longrope::Generation& g) { seen.push_back(g); }});
  REQUIRE(seen.size() == 1);
  CHECK(result.generations.size() == 1);
  const longrope::Generation& initial = seen[0];
  REQUIRE(initial.size() == 10);
  CHECK(initial[0].candidate == pi);
  CHECK(initial[0].origin == "pi");
  CHECK(initial[1].candidate == ntk);
  CHECK(initial[1].origin == "ntk");
  CHECK(initial[2].candidate == yarn);
  CHECK(initial[2].origin == "yarn");
  for (std::size_t i = 3; i < initial.size(); ++i) {
    CHECK(initial[i].origin == "mutation");
    CHECK(space.contains(initial[i].candidate));
    CHECK(initial[i].perplexity == synthetic_fitness(initial[i].candidate));
  }
}

TEST_CASE("longrope search: a fixed seed gives the same search, any worker count", "[longrope]") {
  const auto space = SearchSpace::for_scale(8, 3.0, true);
  const auto seeds = seeds_for(space, 3.0);
  const auto one = run_search(space, seeds, small_settings(5), synthetic_fitness, 1);
  const auto two = run_search(space, seeds, small_settings(5), synthetic_fitness, 2);
  const auto other = run_search(space, seeds, small_settings(6), synthetic_fitness, 2);
  REQUIRE(one.generations.size() == 7);
  CHECK(same_generations(one.generations, two.generations));
  CHECK_FALSE(same_generations(one.generations, other.generations));
  CHECK(one.best.candidate == two.best.candidate);
  // Elitism: the best perplexity never gets worse, and the search improves on the seeds.
  for (std::size_t g = 1; g < one.generations.size(); ++g) {
    CHECK(best_of(one.generations[g], 1)[0].perplexity <= best_of(one.generations[g - 1], 1)[0].perplexity);
  }
  CHECK(one.best.perplexity < best_of(one.generations[0], 3)[0].perplexity);
  for (const auto& generation : one.generations) {
    std::set<Candidate> distinct;
    for (const auto& m : generation) {
      CHECK(space.contains(m.candidate));
      distinct.insert(m.candidate);
    }
    CHECK(distinct.size() == generation.size());
  }
}

TEST_CASE("longrope search: an interrupted search resumes to the uninterrupted result", "[longrope]") {
  const auto space = SearchSpace::for_scale(8, 3.0, true);
  const auto seeds = seeds_for(space, 3.0);
  const auto settings = small_settings(11);
  const auto reference = run_search(space, seeds, settings, synthetic_fitness, 2);

  testing::TempDir dir;
  const std::string db = dir.file("search.db");
  const Json key = {{"test", "resume"}};
  {
    Store results(db);
    SearchStore store(results);
    const auto id = store.open_search(key);
    // Dies in the middle of generation 3, after generations 0-2 were stored.
    int calls = 0;
    const int budget = 12 + 2 * 6 + 3;
    const Fitness dying = [&](const Candidate& c) {
      if (++calls > budget) throw std::runtime_error("killed");
      return synthetic_fitness(c);
    };
    const SearchHooks hooks{
        .on_generation = [&](int g, const longrope::Generation& gen) { store.save_generation(id, g, gen); }};
    CHECK_THROWS_WITH(run_search(space, seeds, settings, dying, 1, {}, hooks), "killed");
  }
  Store results(db);
  SearchStore store(results);
  const auto id = store.open_search(key);
  auto stored = store.generations(id);
  REQUIRE(stored.size() == 3);
  CHECK(same_generations(stored, {reference.generations.begin(), reference.generations.begin() + 3}));
  int evaluated = 0;
  const Fitness counting = [&](const Candidate& c) {
    ++evaluated;
    return synthetic_fitness(c);
  };
  const SearchHooks hooks{
      .on_generation = [&](int g, const longrope::Generation& gen) { store.save_generation(id, g, gen); }};
  const auto resumed = run_search(space, seeds, settings, counting, 2, std::move(stored), hooks);
  CHECK(evaluated == 4 * 6);  // generations 3..6, six new members each: nothing stored is evaluated again
  CHECK(same_generations(resumed.generations, reference.generations));
  CHECK(resumed.best.candidate == reference.best.candidate);
  CHECK(same_generations(store.generations(id), reference.generations));
  CHECK(store.open_search(key) == id);
  CHECK(store.open_search({{"test", "other"}}) != id);
}

TEST_CASE("longrope search: the rope_scaling output loads through the config parsers", "[longrope]") {
  const Candidate best{{100, 100, 112, 150, 210, 330, 400, 410}, 4};
  const Json scaling = rope_scaling_json(best, 1024, 4096);
  CHECK(scaling.at("rope_type") == "longrope");
  CHECK(scaling.at("factor").get<double>() == 4.0);
  CHECK(scaling.at("start_token") == 4);
  Json config = {{"hidden_size", 64},
                 {"intermediate_size", 96},
                 {"num_hidden_layers", 1},
                 {"num_attention_heads", 4},
                 {"head_dim", 16},
                 {"vocab_size", 258},
                 {"max_position_embeddings", 1024},
                 {"rope_theta", 10000.0},
                 {"rope_scaling", scaling}};
  const auto rope = kernels::RopeConfig::from_hf_json(config);
  CHECK(rope.type == kernels::RopeType::longrope);
  CHECK(rope.long_factor == best.lambdas());
  CHECK(rope.short_factor == std::vector<double>(8, 1.0));
  CHECK(rope.original_max_position_embeddings == 1024);
  CHECK(rope.start_tokens == 4);
  CHECK(rope.attention_factor() == Approx(std::sqrt(1 + std::log(4.0) / std::log(1024.0))));
  const auto inv = rope.inv_freq(4096);
  for (int i = 0; i < 8; ++i) CHECK(inv[i] == Approx(1.0 / (best.lambdas()[i] * std::pow(10000.0, 2.0 * i / 16))));
  // The same object as a model's rope_scaling override (what a suite's "rope_scaling" parameter does).
  config["rope_scaling"] = nullptr;
  const auto llama = model::LlamaConfig::from_json(config, "config.json", scaling);
  CHECK(llama.rope.long_factor == best.lambdas());
  CHECK(rope_scaling_json(Candidate{{100, 200}, 0}, 1024, 2048, 1.0).at("attention_factor") == 1.0);
  CHECK_FALSE(rope_scaling_json(Candidate{{100, 200}, 0}, 1024, 2048).contains("start_token"));
}

namespace {

// Perplexity of one window with plain RoPE from the float64 reference forward pass.
double reference_perplexity(const testing::TinyModel& m, const std::vector<int>& tokens) {
  const auto freqs = kernels::RopeConfig::standard_rope(m.spec.head_dim).frequencies(static_cast<int>(tokens.size()));
  const auto logits = testing::reference_logits(m, tokens, freqs);
  double nll = 0;
  for (std::size_t t = 1; t < tokens.size(); ++t) {
    const auto& row = logits[t - 1];
    const double top = *std::max_element(row.begin(), row.end());
    double sum = 0;
    for (const double v : row) sum += std::exp(v - top);
    nll -= row[tokens[t]] - top - std::log(sum);
  }
  return std::exp(nll / static_cast<double>(tokens.size() - 1));
}

const char* kText =
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
    "it was the season of Darkness, it was the spring of hope, it was the winter of despair.";

}  // namespace

TEST_CASE("longrope search: factors of 1.0 have the perplexity of plain RoPE", "[longrope][model]") {
  testing::TempDir dir;
  std::filesystem::create_directory(dir.file("model"));
  std::filesystem::create_directory(dir.file("docs"));
  const auto m = testing::write_tiny_model(dir.file("model"), testing::TinySpec{.max_positions = 32}, 3);
  testing::write_file(dir.file("docs/a.txt"), kText);
  testing::write_file(dir.file("docs/b.txt"), std::string(kText).substr(40));
  const PerplexityFitness fitness({.model_dir = dir.file("model"),
                                   .target_length = 80,
                                   .documents = dir.file("docs"),
                                   .samples = 2,
                                   .attention_factor = 1.0});
  CHECK(fitness.original_length() == 32);
  CHECK(fitness.scale() == 2.5);
  const Candidate ones{std::vector<int>(4, 100), 0};
  const double plain = fitness.perplexity(Json::object());
  CHECK(fitness(ones) == plain);

  // The reference: BOS + the first 79 bytes of each document.
  double expected = 0;
  for (const std::string& text : {std::string(kText), std::string(kText).substr(40)}) {
    std::vector<int> tokens = {256};
    for (int i = 0; i < 79; ++i) tokens.push_back(static_cast<unsigned char>(text[i]));
    expected += reference_perplexity(m, tokens) / 2;
  }
  CHECK(plain == Approx(expected).epsilon(1e-4));
  // Other factors change it.
  CHECK(fitness(Candidate{{100, 150, 200, 250}, 0}) != plain);
  FitnessSettings too_short = fitness.settings();
  too_short.target_length = 32;
  CHECK_THROWS_AS(PerplexityFitness(too_short), InputError);
}

TEST_CASE("longrope-search command: resumes a stored search and writes a loadable rope_scaling", "[longrope][cli]") {
  testing::TempDir dir;
  std::filesystem::create_directory(dir.file("model"));
  std::filesystem::create_directory(dir.file("docs"));
  testing::write_tiny_model(dir.file("model"), testing::TinySpec{.max_positions = 32}, 4);
  testing::write_file(dir.file("docs/a.txt"), kText);
  const std::string command = fmt::format(
      "{} longrope-search --model {} --target-length 64 --documents {} --samples 1 --population 6 --parents 3 "
      "--mutations 2 --crossovers 1 --seed 3 --workers 2",
      testing::ctxbench_binary(), dir.file("model"), dir.file("docs"));
  std::string output;
  REQUIRE(testing::run_shell(command + " --iterations 1 --db " + dir.file("a.db"), &output) == 0);
  CHECK_THAT(output, Catch::Contains("generation 1"));
  REQUIRE(testing::run_shell(command + " --iterations 3 --db " + dir.file("a.db") + " --out " + dir.file("a.json"),
                             &output) == 0);
  CHECK_THAT(output, Catch::Contains("resuming after generation 1"));
  REQUIRE(testing::run_shell(
              command + " --iterations 3 --compare --db " + dir.file("b.db") + " --out " + dir.file("b.json"),
              &output) == 0);
  CHECK_THAT(output, Catch::Contains("YaRN"));
  const Json resumed = Json::parse(std::ifstream(dir.file("a.json")));
  const Json fresh = Json::parse(std::ifstream(dir.file("b.json")));
  CHECK(resumed == fresh);
  REQUIRE(resumed.at("long_factor").size() == 4);
  const auto config = model::LlamaConfig::from_dir(dir.file("model"), resumed);
  CHECK(config.rope.type == kernels::RopeType::longrope);
  CHECK(config.rope.factor == 2.0);
  const std::string too_short =
      fmt::format("{} longrope-search --model {} --target-length 16 --documents {} --db {}", testing::ctxbench_binary(),
                  dir.file("model"), dir.file("docs"), dir.file("c.db"));
  CHECK(testing::run_shell(too_short, &output) == 2);
  CHECK_THAT(output, Catch::Contains("--target-length"));
}

TEST_CASE("longrope search: the passkey fitness scores the answer tokens only", "[longrope][model]") {
  testing::TempDir dir;
  const auto m = testing::write_tiny_model(dir.file(""), testing::TinySpec{.max_positions = 64}, 5);
  FitnessSettings settings;
  settings.model_dir = dir.file("");
  settings.target_length = 320;
  settings.samples = 2;
  settings.kind = "passkey";
  settings.attention_factor = 1.0;
  const PerplexityFitness fitness(settings);
  REQUIRE(fitness.windows() == 2);

  // The same prompts from the passkey task, the answer " KEY." after them, plain RoPE in float64.
  const auto& task = tasks::TaskRegistry::instance().get("passkey", "task");
  const Json params = resolve_params(task.params, Json{{"samples", 2}}, "test");
  const auto tokenizer = model::load_tokenizer(dir.file(""), 258);
  double expected = 0;
  for (const auto& sample : task.make_text_samples({params, 320 - 16, 50.0, 0}, *tokenizer)) {
    std::vector<int> tokens = {256};
    for (const unsigned char c : sample.prompt) tokens.push_back(c);
    const std::size_t answer = tokens.size();
    for (const unsigned char c : " " + sample.references[0] + ".") tokens.push_back(c);
    REQUIRE(static_cast<int>(tokens.size()) <= 320);
    const auto freqs = kernels::RopeConfig::standard_rope(m.spec.head_dim).frequencies(320);
    const auto logits = testing::reference_logits(m, tokens, freqs);
    double nll = 0;
    for (std::size_t t = answer; t < tokens.size(); ++t) {
      const auto& row = logits[t - 1];
      const double top = *std::max_element(row.begin(), row.end());
      double sum = 0;
      for (const double v : row) sum += std::exp(v - top);
      nll -= row[tokens[t]] - top - std::log(sum);
    }
    expected += std::exp(nll / static_cast<double>(tokens.size() - answer)) / 2;
  }
  CHECK(fitness(Candidate{std::vector<int>(4, 100), 0}) == Approx(expected).epsilon(1e-4));
  settings.kind = "accuracy";
  CHECK_THROWS_WITH(PerplexityFitness(settings), Catch::Contains("--fitness"));
}

TEST_CASE("isolated cells: a perplexity window that ends inside a UTF-8 character is stored", "[longrope][runner]") {
  testing::TempDir dir;
  std::filesystem::create_directory(dir.file("model"));
  std::filesystem::create_directory(dir.file("docs"));
  testing::write_tiny_model(dir.file("model"), testing::TinySpec{}, 6);
  std::string text = "ab";
  for (int i = 0; i < 40; ++i) text += "\xc3\xa9";  // e-acute: two bytes each
  testing::write_file(dir.file("docs/a.txt"), text);
  const Json suite_json = {
      {"name", "t"},
      {"engines", {{{"name", "dense"}, {"params", {{"threads", 1}}}}}},
      {"tasks",
       {{{"name", "perplexity"},
         {"params", {{"model", dir.file("model")}, {"documents", dir.file("docs")}, {"samples", 1}}}}}},
      {"context_lengths", {3}}};  // "ab" and the first byte of an e-acute
  const auto cells = parse_suite(suite_json, "t.json").cells();
  REQUIRE(cells.size() == 1);
  const auto out = run_cell_isolated(cells[0], Limits{});
  REQUIRE(out.samples.size() == 1);
  CHECK(out.samples[0].input.substr(0, 2) == "ab");
  CHECK(out.samples[0].score > 1.0);
}

TEST_CASE("longrope search: the dynamic NTK seed follows HF's base at the target length", "[longrope]") {
  const auto rope = llama2_like_rope();
  auto space = SearchSpace::for_scale(64, 4.0, false);
  space.max_factor = 2000;  // wide enough for every factor
  const Candidate dynamic = dynamic_ntk_candidate(rope, 4.0, 16384, space);
  for (int i = 0; i < 64; ++i) {
    // base * (4 * 16384 / 4096 - 3)^(d/(d-2)): lambda_i = 13^(2i/(d-2))
    CHECK(dynamic.factors[i] == static_cast<int>(std::lround(100 * std::pow(13.0, 2.0 * i / 126))));
  }
  const Candidate clamped = dynamic_ntk_candidate(rope, 4.0, 16384, SearchSpace::for_scale(64, 4.0, false));
  CHECK(clamped.factors.back() == 500);
  CHECK(is_monotone(clamped.factors));
}
