// The Llama runtime against a float64 transcription of the forward pass on tiny random models written by
// the test: dtypes, GQA, biases, tied heads, RoPE scaling; chunked prefill against one-shot prefill and
// token-by-token decoding; greedy generation, stop strings, EOS and max new tokens; log-probabilities.
#include <catch2/catch.hpp>
#include <cmath>

#include "engines/engine.h"
#include "model/llama_generator.h"
#include "model/llama_model.h"
#include "tests/helpers.h"
#include "tests/test_model_fixture.h"

using namespace ctxbench;
using namespace ctxbench::testing;
using model::LlamaModel;

namespace {

std::shared_ptr<const engines::Engine> dense_engine() {
  const auto& info = engines::EngineRegistry::instance().get("dense", "test");
  return info.make(json{{"threads", 1}});
}

std::vector<int> random_tokens(Rng& rng, int n, int vocab) {
  std::vector<int> tokens(n);
  for (int& t : tokens) t = static_cast<int>(rng.integer(0, vocab - 1));
  return tokens;
}

// Logits [tokens][vocab] from the runtime, the prompt fed in chunks of `chunk` tokens (decode phase for
// chunks of one token after the first).
std::vector<float> runtime_logits(const LlamaModel& m, const engines::Engine& engine, const std::vector<int>& tokens,
                                  int chunk, std::int64_t capacity = 0) {
  auto seq = m.start(engine, capacity ? capacity : tokens.size(), kernels::DType::f32);
  std::vector<float> all, hidden, logits;
  for (std::size_t at = 0; at < tokens.size(); at += chunk) {
    const std::size_t size = std::min<std::size_t>(chunk, tokens.size() - at);
    const auto phase = size == 1 && at > 0 ? engines::Phase::decode : engines::Phase::prefill;
    m.forward(seq, std::span(tokens).subspan(at, size), phase, hidden);
    m.logits(hidden.data(), static_cast<int>(size), logits);
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

TextSample sample(const std::string& prompt, int max_new_tokens, std::vector<std::string> stop = {}) {
  TextSample s;
  s.prompt = prompt;
  s.max_new_tokens = max_new_tokens;
  s.stop = std::move(stop);
  return s;
}

std::vector<double> flatten(const std::vector<std::vector<double>>& rows) {
  std::vector<double> out;
  for (const auto& r : rows) out.insert(out.end(), r.begin(), r.end());
  return out;
}

struct Case {
  const char* name;
  TinySpec spec;
};

std::vector<Case> reference_cases() {
  std::vector<Case> cases;
  cases.push_back({"multi-head, fp32, untied", {.heads = 4, .kv_heads = 4}});
  cases.push_back({"GQA 4/2, bf16, tied", {.tied = true, .dtype = kernels::DType::bf16}});
  cases.push_back({"GQA 6/2, Qwen2 q/k/v biases, fp16",
                   {.hidden = 36,
                    .inner = 50,
                    .heads = 6,
                    .kv_heads = 2,
                    .head_dim = 6,
                    .qwen2_biases = true,
                    .dtype = kernels::DType::f16}});
  cases.push_back({"multi-query 3/1, Llama attention_bias (o too), odd sizes",
                   {.hidden = 37,
                    .inner = 71,
                    .layers = 3,
                    .heads = 3,
                    .kv_heads = 1,
                    .head_dim = 10,
                    .vocab = 300,
                    .llama_biases = true}});
  cases.push_back(
      {"YaRN rope_scaling", {.rope_scaling = {{"rope_type", "yarn"}, {"factor", 4.0}}, .max_positions = 16}});
  cases.push_back({"LongRoPE with start tokens",
                   {.head_dim = 8,
                    .rope_scaling = {{"rope_type", "longrope"},
                                     {"short_factor", {1.0, 1.0, 1.0, 1.0}},
                                     {"long_factor", {1.0, 1.5, 2.5, 4.0}},
                                     {"factor", 4.0},
                                     {"original_max_position_embeddings", 8},
                                     {"start_token", 3}},
                    .max_positions = 32}});
  cases.push_back({"wide enough for the blocked kernels (k > 512, panels, threads)",
                   {.hidden = 544,
                    .inner = 1040,
                    .layers = 1,
                    .heads = 8,
                    .kv_heads = 2,
                    .head_dim = 68,
                    .dtype = kernels::DType::bf16}});
  return cases;
}

}  // namespace

TEST_CASE("model: logits equal a float64 transcription of the forward pass", "[model]") {
  const auto engine = dense_engine();
  std::uint64_t seed = 100;
  for (const Case& c : reference_cases()) {
    SECTION(c.name) {
      TempDir dir;
      const TinyModel tiny = write_tiny_model(dir.file(""), c.spec, ++seed);
      const LlamaModel m(dir.file(""));
      Rng rng(seed);
      const int n = c.spec.hidden > 500 ? 9 : 20;
      const auto tokens = random_tokens(rng, n, c.spec.vocab);
      const auto reference = flatten(reference_logits(tiny, tokens, m.config().rope.frequencies(n)));
      const auto logits = runtime_logits(m, *engine, tokens, n);
      INFO("relative error " << relative_error(logits, reference));
      CHECK(relative_error(logits, reference) < 2e-5);
    }
  }
}

TEST_CASE("model: the reference comparison notices a wrong model", "[model]") {
  // Guards the test above: the same check fails when the runtime's weights differ from the reference's.
  TempDir dir;
  const TinySpec spec{};
  TinyModel tiny = write_tiny_model(dir.file(""), spec, 7);
  const LlamaModel m(dir.file(""));
  const std::vector<int> tokens = {1, 2, 3, 4, 5};
  tiny.w["model.layers.1.mlp.down_proj.weight"][3] += 0.05;
  const auto reference = flatten(reference_logits(tiny, tokens, m.config().rope.frequencies(5)));
  CHECK(relative_error(runtime_logits(m, *dense_engine(), tokens, 5), reference) > 1e-4);
}

TEST_CASE("model: rope_scaling from the model params overrides the config's, {} keeps it", "[model]") {
  TempDir dir;
  TinySpec spec{.rope_scaling = {{"rope_type", "linear"}, {"factor", 2.0}}};
  const TinyModel tiny = write_tiny_model(dir.file(""), spec, 11);
  const LlamaModel kept(dir.file(""), json::object());
  CHECK(kept.config().rope.type == kernels::RopeType::linear);
  const LlamaModel yarn(dir.file(""),
                        {{"rope_type", "yarn"}, {"factor", 8.0}, {"original_max_position_embeddings", 16}});
  CHECK(yarn.config().rope.type == kernels::RopeType::yarn);
  CHECK(yarn.config().rope.factor == 8.0);
  const std::vector<int> tokens = {5, 4, 3, 2, 1, 0, 9, 8};
  const auto reference = flatten(reference_logits(tiny, tokens, yarn.config().rope.frequencies(8)));
  CHECK(relative_error(runtime_logits(yarn, *dense_engine(), tokens, 8), reference) < 2e-5);
}

TEST_CASE("model: chunked prefill equals one-shot prefill equals token-by-token decoding", "[model]") {
  TempDir dir;
  const TinySpec spec{.layers = 3, .rope_scaling = {{"rope_type", "dynamic"}, {"factor", 2.0}}, .max_positions = 16};
  write_tiny_model(dir.file(""), spec, 21);
  const LlamaModel m(dir.file(""));
  const auto engine = dense_engine();
  Rng rng(5);
  const auto tokens = random_tokens(rng, 37, spec.vocab);
  const auto one_shot = runtime_logits(m, *engine, tokens, 37);
  std::vector<double> reference(one_shot.begin(), one_shot.end());
  for (const int chunk : {1, 2, 5, 16}) {
    INFO("chunk " << chunk);
    CHECK(relative_error(runtime_logits(m, *engine, tokens, chunk), reference) < 1e-5);
  }
}

TEST_CASE("model: a sequence's RoPE frequencies follow its capacity (dynamic NTK), fixed for every chunk", "[model]") {
  TempDir dir;
  const TinySpec spec{.rope_scaling = {{"rope_type", "dynamic"}, {"factor", 2.0}}, .max_positions = 8};
  const TinyModel tiny = write_tiny_model(dir.file(""), spec, 23);
  const LlamaModel m(dir.file(""));
  const std::vector<int> tokens = {10, 20, 30, 40, 50, 60};
  // Room for 40 tokens: every position uses the base grown for 40 (HF's dynamic NTK at that length).
  const auto reference = flatten(reference_logits(tiny, tokens, m.config().rope.frequencies(40)));
  CHECK(relative_error(runtime_logits(m, *dense_engine(), tokens, 4, 40), reference) < 2e-5);
  const auto short_reference = flatten(reference_logits(tiny, tokens, m.config().rope.frequencies(6)));
  CHECK(relative_error(runtime_logits(m, *dense_engine(), tokens, 4, 40), short_reference) > 1e-4);
}

TEST_CASE("model: forward rejects ids outside the vocabulary and sequences past their capacity", "[model]") {
  TempDir dir;
  write_tiny_model(dir.file(""), TinySpec{}, 3);
  const LlamaModel m(dir.file(""));
  const auto engine = dense_engine();
  auto seq = m.start(*engine, 4, kernels::DType::f32);
  std::vector<float> hidden;
  const std::vector<int> bad = {1, 258};
  CHECK_THROWS_WITH(m.forward(seq, bad, engines::Phase::prefill, hidden), Catch::Contains("258"));
  const std::vector<int> five = {1, 2, 3, 4, 5};
  CHECK_THROWS_WITH(m.forward(seq, five, engines::Phase::prefill, hidden), Catch::Contains("started for"));
}

namespace {

// Wraps dense attention and records what the runtime asks of it.
struct Recorded {
  std::vector<engines::HeadLayout> layouts;
  int prefill_calls = 0, decode_calls = 0, appended = 0;
};

class RecordingEngine final : public engines::Engine {
 public:
  RecordingEngine(std::shared_ptr<const engines::Engine> inner, Recorded& log) : inner_(std::move(inner)), log_(log) {}
  std::unique_ptr<engines::Session> open(const engines::HeadLayout& layout) const override {
    log_.layouts.push_back(layout);
    return std::make_unique<Session>(inner_->open(layout), log_);
  }

 private:
  class Session final : public engines::Session {
   public:
    Session(std::unique_ptr<engines::Session> inner, Recorded& log) : inner_(std::move(inner)), log_(log) {}
    void append(const float* k, const float* v, int n) override {
      log_.appended += n;
      inner_->append(k, v, n);
    }
    void attend(const float* q, int n, engines::Phase phase, float* out) override {
      (phase == engines::Phase::prefill ? log_.prefill_calls : log_.decode_calls)++;
      inner_->attend(q, n, phase, out);
    }
    std::vector<kernels::KeyRange> attended(int head, int query) const override {
      return inner_->attended(head, query);
    }
    engines::SessionStats stats() const override { return inner_->stats(); }

   private:
    std::unique_ptr<engines::Session> inner_;
    Recorded& log_;
  };
  std::shared_ptr<const engines::Engine> inner_;
  Recorded& log_;
};

}  // namespace

TEST_CASE("generator: one session per layer, prefill in chunks, then one decode step per token", "[model]") {
  TempDir dir;
  const TinySpec spec{.layers = 3, .heads = 6, .kv_heads = 3, .head_dim = 4};
  write_tiny_model(dir.file(""), spec, 31);
  Recorded log;
  auto engine = std::make_shared<RecordingEngine>(dense_engine(), log);
  model::LlamaGenerator gen(std::make_shared<const LlamaModel>(dir.file("")), engine, {.prefill_chunk = 4});
  const auto g = gen.generate(sample("abcdefghij", 5));
  REQUIRE(log.layouts.size() == 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(log.layouts[i].layer == i);
    CHECK(log.layouts[i].num_layers == 3);
    CHECK(log.layouts[i].heads_q == 6);
    CHECK(log.layouts[i].heads_kv == 3);
    CHECK(log.layouts[i].head_dim == 4);
  }
  CHECK(g.prompt_tokens == 11);  // BOS + 10 bytes
  CHECK(g.generated_tokens == 5);
  CHECK(log.prefill_calls == 3 * 3);  // chunks of 4: 4 + 4 + 3, per layer
  CHECK(log.decode_calls == 3 * 4);
  CHECK(log.appended == 3 * (11 + 4));
  CHECK(g.attention_seconds > 0);
  CHECK(g.attention_seconds <= g.prefill_seconds + g.decode_seconds);
  CHECK(g.first_token_seconds >= g.prefill_seconds);
  const auto extra = gen.extra_measurements();
  REQUIRE(extra.size() == 4);
  CHECK(extra[0].metric == "keys_per_query");
  CHECK(extra[0].value() > 1.0);
  CHECK(extra[2].metric == "memory_estimate_bytes");  // tests/model/test_memory_plan.cpp checks the values
  CHECK(extra[3].metric == "peak_rss_bytes");
}

TEST_CASE("generator: greedy tokens are the reference's argmax, stop strings, EOS and max_new_tokens end it",
          "[model]") {
  TempDir dir;
  const TinySpec spec{.eos = nullptr};
  const TinyModel tiny = write_tiny_model(dir.file(""), spec, 41);
  auto m = std::make_shared<const LlamaModel>(dir.file(""));
  model::LlamaGenerator gen(m, dense_engine(), {.prefill_chunk = 3});
  const std::string prompt = "The key is 42.";
  const auto g = gen.generate(sample(prompt, 12));
  CHECK(g.generated_tokens == 12);
  const std::vector<int> generated = gen.last_tokens();
  REQUIRE(generated.size() == 12);
  CHECK(g.text == gen.tokenizer().decode(generated));

  // Each token is the float64 model's best choice given the ones before it (up to rounding).
  std::vector<int> tokens = {256};
  for (const char c : prompt) tokens.push_back(static_cast<unsigned char>(c));
  const std::size_t prompt_size = tokens.size();
  tokens.insert(tokens.end(), generated.begin(), generated.end() - 1);
  const auto reference = reference_logits(tiny, tokens, m->config().rope.frequencies(prompt_size + 12));
  for (std::size_t i = 0; i < generated.size(); ++i) {
    const auto& row = reference[prompt_size - 1 + i];
    const double best = *std::max_element(row.begin(), row.end());
    CHECK(row[generated[i]] > best - 1e-4 * std::abs(best));
  }

  SECTION("a stop string cuts the text before it and ends the generation") {
    REQUIRE(g.text.size() >= 6);
    const std::string stop = g.text.substr(4, 2);
    const auto cut = gen.generate(sample(prompt, 12, {std::string(20, 'z'), stop}));
    CHECK(cut.text == g.text.substr(0, g.text.find(stop)));
    CHECK(cut.generated_tokens == static_cast<int>(g.text.find(stop) + stop.size()));
  }
  SECTION("max_new_tokens bounds the generation") {
    const auto two = gen.generate(sample(prompt, 2));
    CHECK(two.generated_tokens == 2);
    CHECK(two.text == g.text.substr(0, 2));
    CHECK(two.decode_seconds > 0);
    const auto none = gen.generate(sample(prompt, 0));
    CHECK(none.generated_tokens == 0);
    CHECK(none.text.empty());
  }
  SECTION("an EOS id ends the generation and stays out of the text") {
    // Same weights, with the fourth generated token declared EOS (next to an id never produced).
    json config = tiny.config;
    config["eos_token_id"] = {257, generated[3]};
    std::ofstream(dir.file("config.json")) << config.dump();
    model::LlamaGenerator eos_gen(std::make_shared<const LlamaModel>(dir.file("")), dense_engine());
    const auto stopped = eos_gen.generate(sample(prompt, 12));
    const auto first = std::find(generated.begin(), generated.end(), generated[3]) - generated.begin();
    CHECK(stopped.generated_tokens == first + 1);
    CHECK(eos_gen.last_tokens().back() == generated[3]);
    CHECK(stopped.text == g.text.substr(0, first));
  }
}

TEST_CASE("generator: generate_stream hands the answer over as it is decoded, never a stop string", "[model]") {
  TempDir dir;
  write_tiny_model(dir.file(""), TinySpec{.eos = nullptr}, 41);
  model::LlamaGenerator gen(std::make_shared<const LlamaModel>(dir.file("")), dense_engine());
  const std::string prompt = "The key is 42.";
  const auto whole = gen.generate(sample(prompt, 12));
  std::vector<std::string> pieces;
  const auto collect = [&](std::string_view piece) { pieces.emplace_back(piece); };

  const auto streamed = gen.generate_stream(sample(prompt, 12), collect);
  CHECK(streamed.text == whole.text);
  std::string joined;
  for (const auto& piece : pieces) joined += piece;
  CHECK(joined == whole.text);
  CHECK(pieces.size() >= 6);  // 12 byte tokens: one piece each, but for bytes of a character not yet complete

  SECTION("the beginning of a stop string waits, and a completed one is never sent") {
    REQUIRE(whole.text.size() >= 8);
    const std::string stop = whole.text.substr(5, 3);
    pieces.clear();
    const auto cut = gen.generate_stream(sample(prompt, 12, {stop}), collect);
    joined.clear();
    for (const auto& piece : pieces) joined += piece;
    CHECK(joined == cut.text);
    CHECK(joined == whole.text.substr(0, whole.text.find(stop)));
  }
}

TEST_CASE("text stream: holds back an incomplete UTF-8 character, a replacement character and a stop prefix",
          "[model]") {
  std::vector<std::string> pieces;
  const std::function<void(std::string_view)> collect = [&](std::string_view piece) { pieces.emplace_back(piece); };
  model::TextStream stream(collect);
  const std::vector<std::string> stop = {"STOP"};
  stream.update("ab", stop, false);
  stream.update("ab\xE2\x82", stop, false);  // the first two bytes of the euro sign
  stream.update("ab\xE2\x82\xAC", stop, false);
  stream.update("ab\xE2\x82\xAC x\xEF\xBF\xBD", stop, false);  // a decoder's replacement for a cut character
  stream.update("ab\xE2\x82\xAC xy ST", stop, false);
  stream.update("ab\xE2\x82\xAC xy STA", stop, false);
  stream.update("ab\xE2\x82\xAC xy STA", stop, true);
  const std::vector<std::string> expected = {"ab", "\xE2\x82\xAC", " x", "y ", "STA"};
  CHECK(pieces == expected);
}

TEST_CASE("generator: token_logprobs are the reference's log-softmax, first entry 0", "[model]") {
  TempDir dir;
  const TinySpec spec{.vocab = 270};
  const TinyModel tiny = write_tiny_model(dir.file(""), spec, 51);
  auto m = std::make_shared<const LlamaModel>(dir.file(""));
  model::LlamaGenerator gen(m, dense_engine(), {.prefill_chunk = 7});
  Rng rng(9);
  const auto tokens = random_tokens(rng, 45, spec.vocab);
  const auto logprobs = gen.token_logprobs(tokens);
  const auto reference = reference_logits(tiny, tokens, m->config().rope.frequencies(45));
  REQUIRE(logprobs.size() == tokens.size());
  CHECK(logprobs[0] == 0.0);
  for (std::size_t i = 1; i < tokens.size(); ++i) {
    const auto& row = reference[i - 1];
    const double top = *std::max_element(row.begin(), row.end());
    double sum = 0;
    for (const double v : row) sum += std::exp(v - top);
    CHECK(logprobs[i] == Approx(row[tokens[i]] - top - std::log(sum)).epsilon(1e-5).margin(1e-5));
  }
  CHECK(gen.token_logprobs({}).empty());
}
