// The hip and infinite_hip engines end to end: outputs equal float64 attention over exactly the keys each
// query reports as attended; the decode refresh schedules; dense layers in a model; the offload tiers;
// needle recall on the attention-level needle task. (Equality with dense under a covering budget is the
// shared conformance test's job, through exact_params.)
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <numeric>

#include "engines/engine.h"
#include "harness/attention_driver.h"
#include "kernels/reference.h"
#include "tasks/task.h"
#include "tests/engine_problems.h"
#include "tests/helpers.h"

using namespace ctxbench;
using engines::Phase;

namespace {

struct Problem {
  engines::HeadLayout layout;
  int tokens, queries;
  std::vector<float> q, k, v;
};

Problem random_problem(int heads_q, int heads_kv, int dim, int tokens, int queries, kernels::DType dtype,
                       std::uint64_t seed) {
  Rng rng(seed);
  Problem p{{heads_q, heads_kv, dim, dtype, 0, 1}, tokens, queries, {}, {}, {}};
  p.q = testing::random_vector(rng, static_cast<std::size_t>(heads_q) * queries * dim);
  p.k = testing::random_vector(rng, static_cast<std::size_t>(heads_kv) * tokens * dim);
  p.v = testing::random_vector(rng, p.k.size());
  for (auto* buffer : {&p.k, &p.v}) {
    for (float& x : *buffer) {
      if (dtype == kernels::DType::f16) x = kernels::half_to_float(kernels::float_to_half(x));
    }
  }
  return p;
}

std::unique_ptr<engines::Engine> make_engine(const std::string& name, const Json& params) {
  const auto& info = engines::EngineRegistry::instance().get(name, "test");
  return info.make(resolve_params(info.params, params, name));
}

// Float64 attention of query t (all heads) restricted to what the session says it attended.
std::vector<double> reference_for(const Problem& p, const engines::Session& session, int query_index, int position,
                                  int t_in_call) {
  const auto& L = p.layout;
  kernels::SparsePlan plan{.query_block = 1, .ranges = {}};
  for (int h = 0; h < L.heads_q; ++h) plan.ranges.push_back(session.attended(h, t_in_call));
  const auto q = testing::slice_tokens(p.q, L.heads_q, p.queries, L.head_dim, query_index, 1);
  const kernels::QueryView query{q.data(), L.heads_q, 1, L.head_dim};
  const kernels::KvView k{p.k.data(), kernels::DType::f32, L.heads_kv,
                          p.tokens,   L.head_dim,          static_cast<std::size_t>(p.tokens) * L.head_dim};
  kernels::KvView v = k;
  v.data = p.v.data();
  const kernels::CausalLayout causal{position, 1.0f / std::sqrt(static_cast<float>(L.head_dim))};
  return kernels::reference_attention(query, k, v, causal, &plan).out;
}

std::vector<float> head_rows(const std::vector<float>& out, int heads, int tokens, int dim, int t) {
  return testing::slice_tokens(out, heads, tokens, dim, t, 1);
}

// Runs decode steps over the problem's last `queries` tokens; returns every step's session measurements.
struct DecodeRun {
  std::vector<float> out;
  std::vector<double> max_error;
  engines::SessionStats stats;
  std::map<std::string, double> extra;
  std::vector<std::vector<kernels::KeyRange>> head0;  // ranges head 0 attended at each step
};

DecodeRun run_decode(const engines::Engine& engine, const Problem& p, bool check) {
  const auto& L = p.layout;
  auto session = engine.open(L);
  const int prompt = p.tokens - p.queries;
  session->append(testing::slice_tokens(p.k, L.heads_kv, p.tokens, L.head_dim, 0, prompt).data(),
                  testing::slice_tokens(p.v, L.heads_kv, p.tokens, L.head_dim, 0, prompt).data(), prompt);
  DecodeRun run;
  std::vector<float> step(static_cast<std::size_t>(L.heads_q) * L.head_dim);
  for (int t = 0; t < p.queries; ++t) {
    session->append(testing::slice_tokens(p.k, L.heads_kv, p.tokens, L.head_dim, prompt + t, 1).data(),
                    testing::slice_tokens(p.v, L.heads_kv, p.tokens, L.head_dim, prompt + t, 1).data(), 1);
    session->attend(testing::slice_tokens(p.q, L.heads_q, p.queries, L.head_dim, t, 1).data(), 1, Phase::decode,
                    step.data());
    run.head0.push_back(session->attended(0, 0));
    if (check) run.max_error.push_back(relative_l2_error(step, reference_for(p, *session, t, prompt + t, 0)));
  }
  run.stats = session->stats();
  for (const auto& m : session->extra_measurements()) run.extra[m.metric] = m.value();
  return run;
}

// The keys of `ranges` outside the sinks and the window of a query at `position`.
std::vector<int> selected_keys(const std::vector<kernels::KeyRange>& ranges, int sinks, int window, int position) {
  std::vector<int> out;
  for (const auto& r : ranges) {
    for (int t = r.begin; t < r.end; ++t) {
      if (t >= sinks && t <= position - window) out.push_back(t);
    }
  }
  return out;
}

const Json kSmallHip = {{"budget", 128}, {"sinks", 32}, {"window", 128}, {"block_size_q", 32}};
const Json kSmallInfinite = {
    {"budget", 128},    {"sinks", 32}, {"window", 128}, {"stage_chunks", {64, 16, 4}}, {"stage_keeps", {1024, 512}},
    {"query_block", 32}};

}  // namespace

TEST_CASE("hip engines: outputs equal float64 attention over the keys they report", "[hip][engine]") {
  for (const auto& [name, params] : {std::pair{"hip", kSmallHip}, std::pair{"infinite_hip", kSmallInfinite}}) {
    for (auto dtype : {kernels::DType::f32, kernels::DType::f16}) {
      DYNAMIC_SECTION(name << " " << kernels::dtype_name(dtype)) {
        const Problem p = random_problem(8, 2, 32, 3000, 70, dtype, 17);
        const auto engine = make_engine(name, params);
        const auto& L = p.layout;
        // Prefill: a chunk of 70 queries (two full blocks and a partial one).
        auto session = engine->open(L);
        session->append(p.k.data(), p.v.data(), p.tokens);
        std::vector<float> out(p.q.size());
        session->attend(p.q.data(), p.queries, Phase::prefill, out.data());
        const int first = p.tokens - p.queries;
        for (int t : {0, 31, 32, 69}) {
          CHECK(relative_l2_error(head_rows(out, L.heads_q, p.queries, L.head_dim, t),
                                  reference_for(p, *session, t, first + t, t)) < 1e-5);
        }
        const auto stats = session->stats();
        CHECK(stats.keys_attended_max < static_cast<std::uint64_t>(p.tokens) / 4);  // really sparse
        CHECK(stats.keys_attended > 0);
        CHECK(stats.kv_bytes_read < stats.kv_bytes_resident);
        // Decode: every step.
        const auto run = run_decode(*engine, p, true);
        for (double e : run.max_error) CHECK(e < 1e-5);
      }
    }
  }
}

TEST_CASE("hip engines: attended keys are the sinks, the window and at most the budget", "[hip][engine]") {
  const Problem p = random_problem(4, 1, 32, 5000, 1, kernels::DType::f32, 3);
  for (const auto& [name, params] : {std::pair{"hip", kSmallHip}, std::pair{"infinite_hip", kSmallInfinite}}) {
    DYNAMIC_SECTION(name) {
      const auto run = run_decode(*make_engine(name, params), p, false);
      const int position = p.tokens - 1;
      const auto& ranges = run.head0.back();
      CHECK(ranges.front().begin == 0);
      CHECK(ranges.front().end >= 32);                   // the sinks
      CHECK(ranges.back().end == position + 1);          // the query itself
      CHECK(ranges.back().begin <= position + 1 - 128);  // the window
      const auto chosen = selected_keys(ranges, 32, 128, position);
      CHECK(chosen.size() > 64);
      CHECK(chosen.size() <= 128);
    }
  }
}

TEST_CASE("hip: the decode mask is rebuilt every refresh_interval steps, the window moves every step",
          "[hip][engine]") {
  const Problem p = random_problem(4, 2, 32, 4000, 10, kernels::DType::f32, 5);
  Json params = kSmallHip;
  params["refresh_interval"] = 4;
  const auto run = run_decode(*make_engine("hip", params), p, true);
  CHECK(run.extra.at("mask_builds") == 3);  // steps 0, 4, 8
  CHECK(run.extra.at("mask_key_bytes_read") > 0);
  const int prompt = p.tokens - p.queries;
  for (int s = 1; s < 4; ++s) {
    // Between refreshes the chosen keys stay, the window follows the query.
    CHECK(selected_keys(run.head0[s], 32, 128 + 8, prompt + s) == selected_keys(run.head0[0], 32, 128 + 8, prompt));
    CHECK(run.head0[s].back().end == prompt + s + 1);
  }
  for (double e : run.max_error) CHECK(e < 1e-5);
  params["refresh_interval"] = 1;
  CHECK(run_decode(*make_engine("hip", params), p, false).extra.at("mask_builds") == 10);
}

TEST_CASE("infinite_hip: the three-level decode refresh schedule", "[hip][engine]") {
  const Problem p = random_problem(4, 2, 32, 4000, 9, kernels::DType::f32, 6);
  Json params = kSmallInfinite;
  params["refresh_intervals"] = {8, 4, 2};
  const auto run = run_decode(*make_engine("infinite_hip", params), p, true);
  // Step 0 all three stages, 2 the last, 4 the last two, 6 the last, 8 all three: 3 + 1 + 2 + 1 + 3.
  CHECK(run.extra.at("mask_stage_scans") == 10);
  CHECK(selected_keys(run.head0[1], 32, 136, p.tokens - 8) == selected_keys(run.head0[0], 32, 136, p.tokens - 9));
  for (double e : run.max_error) CHECK(e < 1e-5);
}

TEST_CASE("hip engines: dense layers of a model", "[hip][engine]") {
  Problem p = random_problem(4, 2, 32, 6000, 1, kernels::DType::f32, 8);
  SECTION("hip: layers below dense_layers attend to everything") {
    p.layout.num_layers = 32;
    p.layout.layer = 2;
    auto run = run_decode(*make_engine("hip", kSmallHip), p, true);
    CHECK(run.stats.keys_attended_max == static_cast<std::uint64_t>(p.tokens));
    CHECK(run.max_error[0] < 1e-5);
    p.layout.layer = 3;
    run = run_decode(*make_engine("hip", kSmallHip), p, true);
    CHECK(run.stats.keys_attended_max < static_cast<std::uint64_t>(p.tokens) / 4);
  }
  SECTION("infinite_hip: dense layers keep dense_layer_budget tokens, the last layer included") {
    Json params = kSmallInfinite;
    params["dense_layer_budget"] = 512;
    p.layout.num_layers = 8;
    std::map<int, std::uint64_t> keys;
    for (int layer : {0, 4, 7}) {
      p.layout.layer = layer;
      keys[layer] = run_decode(*make_engine("infinite_hip", params), p, false).stats.keys_attended_max;
    }
    CHECK(keys[0] > keys[4] + 256);
    CHECK(keys[7] == keys[0]);
  }
}

TEST_CASE("infinite_hip: offload tiers count every row the pruning and the attention read", "[hip][engine]") {
  const Problem p = random_problem(4, 2, 32, 5000, 6, kernels::DType::f16, 9);
  Json params = kSmallInfinite;
  params["offload_mask_tokens"] = 100000;  // larger than the context: only first touches miss
  params["offload_sa_bytes"] = 1e9;
  const auto run = run_decode(*make_engine("infinite_hip", params), p, false);
  const double key_row = 32 * 2, kv_row = 2 * key_row;
  CHECK(run.extra.at("offload_mask_accesses") * key_row == Approx(run.extra.at("mask_key_bytes_read")));
  CHECK(run.extra.at("offload_sa_accesses") * kv_row == Approx(static_cast<double>(run.stats.kv_bytes_read)));
  CHECK(run.extra.at("offload_sa_bytes_to_device") == Approx(run.extra.at("offload_sa_device_bytes")));
  CHECK(run.extra.at("offload_sa_hit_ratio") > 0.8);  // later steps reuse the first step's rows
  CHECK(run.extra.at("offload_total_accesses") ==
        run.extra.at("offload_mask_accesses") + run.extra.at("offload_sa_accesses"));
  // A tier far smaller than what a step reads cannot hold it.
  params["offload_sa_bytes"] = 0;
  params["offload_sa_tokens"] = 16;
  const auto small = run_decode(*make_engine("infinite_hip", params), p, false);
  CHECK(small.extra.at("offload_sa_hit_ratio") < 0.1);
  CHECK(small.extra.at("offload_sa_device_bytes") == 16 * 2 * kv_row);
}

TEST_CASE("hip engines: bad parameters name the field", "[hip][engine]") {
  CHECK_THROWS_WITH(make_engine("hip", {{"sinks", 255}}), Catch::Contains("hip") && Catch::Contains("sinks"));
  CHECK_THROWS_WITH(make_engine("infinite_hip", {{"stage_chunks", {256, 32}}}), Catch::Contains("stage_query_strides"));
  CHECK_THROWS_WITH(make_engine("infinite_hip", {{"refresh_intervals", {32, 16}}}),
                    Catch::Contains("refresh_intervals"));
  CHECK_THROWS_WITH(make_engine("infinite_hip", {{"stage_keeps", {1000, 8192}}}), Catch::Contains("stage 0"));
  CHECK_THROWS_WITH(make_engine("infinite_hip", {{"offload_sa_tokens", 10}, {"offload_sa_bytes", 10}}),
                    Catch::Contains("not both"));
}

TEST_CASE("hip engines: needle recall on the attention-level needle task", "[hip][engine][recall]") {
  // A sentence-long needle (64 keys): the pruning finds it through any sample that lands in it. (With the
  // task's default 4-key needle in an i.i.d. haystack there is no locality to exploit; engines/README.md
  // reports both.)
  const auto& task = tasks::TaskRegistry::instance().get("attention_needle", "test");
  const Json task_params =
      resolve_params(task.params, {{"queries", 2}, {"observe", 0}, {"needles", 64}, {"error_queries", 1}}, "task");
  std::map<std::string, std::vector<double>> recall;
  for (double depth : {20.0, 60.0, 95.0}) {
    const auto problem = task.make_attention_problem({task_params, 16384, depth, 1});
    for (const std::string name : {"hip", "infinite_hip"}) {
      for (const auto& m : run_attention_problem(*make_engine(name, Json::object()), problem, 1)) {
        if (m.metric == "needle_recall") recall[name].push_back(m.value());
      }
    }
  }
  auto mean = [](const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / v.size(); };
  REQUIRE(recall["infinite_hip"].size() == 3);
  CHECK(mean(recall["infinite_hip"]) >= 0.99);
  CHECK(mean(recall["hip"]) >= 0.95);  // HiP's 2-key blocks lose a few keys at the needle's edges
}
