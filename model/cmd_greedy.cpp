// `ctxbench greedy`: the runtime's greedy continuation of given token ids, with its timings and memory, as one
// JSON line per prompt: what bench/peer_llamacpp.sh sets beside llama.cpp's (tests/peers-llamacpp/greedy.mjs).
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <iostream>

#include "core/command.h"
#include "engines/engine.h"
#include "model/llama_generator.h"

namespace ctxbench::model {
namespace {

std::vector<std::vector<int>> read_prompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(fmt::format("--ids {}: cannot be read", path));
  Json doc;
  try {
    doc = Json::parse(in);
  } catch (const Json::exception& e) {
    throw InputError(fmt::format("--ids {}: not valid JSON: {}", path, e.what()));
  }
  const auto bad = [&] {
    return InputError(fmt::format("--ids {}: expected [[id, ...], ...] of non-empty lists", path));
  };
  if (!doc.is_array() || doc.empty()) throw bad();
  std::vector<std::vector<int>> prompts;
  for (const Json& prompt : doc) {
    if (!prompt.is_array() || prompt.empty()) throw bad();
    std::vector<int>& ids = prompts.emplace_back();
    for (const Json& id : prompt) {
      if (!id.is_number_integer()) throw bad();
      ids.push_back(id.get<int>());
    }
  }
  return prompts;
}

int greedy_command(const Args& args) {
  args.expect_positionals(1, 1);
  const auto& engine = engines::EngineRegistry::instance().get(args.text("--engine"), "--engine");
  if (!engine.make) throw InputError(fmt::format("--engine: {} is not an attention engine", engine.name));
  const int threads = static_cast<int>(args.integer("--threads"));
  Json given = Json::object();
  if (args.given("--engine-params")) {
    try {
      given = Json::parse(args.text("--engine-params"));
    } catch (const Json::exception& e) {
      throw InputError(fmt::format("--engine-params: not valid JSON: {}", e.what()));
    }
  }
  const bool takes_threads =
      std::any_of(engine.params.begin(), engine.params.end(), [](const ParamSpec& p) { return p.name == "threads"; });
  if (takes_threads && given.is_object() && !given.contains("threads")) given["threads"] = threads;
  const Json params = resolve_params(engine.params, given, "--engine-params");
  const ModelParams model_params =
      ModelParams::parse({{"model", args.positionals()[0]}, {"kv_dtype", args.text("--kv-dtype")}});
  LlamaGenerator generator(std::make_shared<const LlamaModel>(model_params.dir, model_params.rope_scaling, threads),
                           std::shared_ptr<const engines::Engine>(engine.make(params)), model_params.options);
  const int tokens = static_cast<int>(args.integer("--tokens"));
  for (const auto& prompt : read_prompts(args.text("--ids"))) {
    const Generation g = generator.generate_ids(prompt, tokens);
    Json line = {
        {"tokens", generator.last_tokens()},
        {"prefill_seconds", g.prefill_seconds},
        {"decode_seconds_per_token", g.generated_tokens > 1 ? g.decode_seconds / (g.generated_tokens - 1) : 0}};
    for (const auto& m : generator.extra_measurements()) {
      if (m.metric == "peak_rss_bytes" || m.metric == "memory_estimate_bytes") line[m.metric] = m.value();
    }
    std::cout << line.dump() << std::endl;
  }
  return 0;
}

const RegisterCommand registration{{
    .name = "greedy",
    .summary = "greedy tokens of the model runtime from given token ids, with timings and memory (JSON lines)",
    .usage = "ctxbench greedy MODEL_DIR --ids FILE [--tokens N] [--engine NAME] [--engine-params JSON] [--threads N] "
             "[--kv-dtype f32|f16|bf16]",
    .description =
        "Reads prompts as token ids ([[id, ...], ...] in FILE: nothing is added, no BOS, no template), continues\n"
        "each greedily for N tokens or up to EOS and prints one JSON object per prompt: tokens (the EOS that\n"
        "ended them included), prefill_seconds, decode_seconds_per_token, memory_estimate_bytes (the memory\n"
        "plan) and peak_rss_bytes (the process's peak resident set so far). bench/peer_llamacpp.sh sets these\n"
        "beside llama.cpp's on the same ids.",
    .options = {{.name = "--ids", .type = ParamType::string, .help = "the prompts' token ids (JSON); required"},
                {.name = "--tokens",
                 .type = ParamType::integer,
                 .default_value = 16,
                 .help = "greedy tokens per prompt",
                 .min = 1,
                 .max = 1 << 20},
                {.name = "--engine", .type = ParamType::string, .default_value = "dense", .help = "attention engine"},
                {.name = "--engine-params",
                 .type = ParamType::string,
                 .help = "its parameters (checked like a suite's)"},
                {.name = "--kv-dtype",
                 .type = ParamType::string,
                 .default_value = "f32",
                 .help = "the K/V cache's element type",
                 .choices = {"f32", "f16", "bf16"}},
                {.name = "--threads",
                 .type = ParamType::integer,
                 .default_value = 0,
                 .help = "threads of the matrix products and of the engine (0: all cores)",
                 .min = 0,
                 .max = 1024}},
    .run = greedy_command,
}};

}  // namespace
}  // namespace ctxbench::model
