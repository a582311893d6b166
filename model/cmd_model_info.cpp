// `ctxbench model-info`: what a model directory is, what a prompt template can name, the chat template it ships
// (reported, never executed) and the memory plan of a context.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "core/command.h"
#include "engines/engine.h"
#include "model/llama_generator.h"
#include "model/memory_plan.h"
#include "model/tokenizer.h"

namespace ctxbench::model {
namespace {

// A JSON file of the model directory, or null when it is not there.
Json optional_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return nullptr;
  try {
    return Json::parse(in);
  } catch (const Json::exception& e) {
    throw InputError(fmt::format("{}: not valid JSON: {}", path.string(), e.what()));
  }
}

void print_added_tokens(const std::filesystem::path& dir) {
  const Json tokenizer = optional_json(dir / "tokenizer.json");
  if (tokenizer.is_null() || !tokenizer.contains("added_tokens")) {
    fmt::print("added tokens  none (a prompt_template can name no special token)\n");
    return;
  }
  fmt::print("added tokens  (a prompt_template names them by their content)\n");
  for (const Json& token : tokenizer.at("added_tokens")) {
    fmt::print("  {:>8}  {}{}\n", token.value("id", -1), token.value("content", ""),
               token.value("special", false) ? "  (special)" : "");
  }
}

void print_chat_template(const std::filesystem::path& dir) {
  const Json config = optional_json(dir / "tokenizer_config.json");
  const Json chat = config.is_object() ? config.value("chat_template", Json()) : Json();
  if (chat.is_null()) {
    fmt::print("chat_template none (no tokenizer_config.json chat_template)\n");
    return;
  }
  fmt::print(
      "chat_template from tokenizer_config.json, reported and not executed: write the model's format as a "
      "task's prompt_template\n{}\n",
      chat.is_string() ? chat.get<std::string>() : chat.dump(2));
}

int model_info_command(const Args& args) {
  args.expect_positionals(1, 1);
  const ModelParams params = ModelParams::parse({{"model", args.positionals()[0]}});
  const LlamaModel model(params.dir, params.rope_scaling, 1);
  const LlamaConfig& c = model.config();
  fmt::print("model         {} ({}, {} layers, hidden {}, {} query heads, {} KV heads of {}, vocab {})\n", params.dir,
             c.model_type, c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim, c.vocab_size);
  fmt::print("tokenizer     {}\n", load_tokenizer(params.dir, c.vocab_size)->name());
  print_added_tokens(params.dir);
  print_chat_template(params.dir);
  const auto& engine = engines::EngineRegistry::instance().get(args.text("--engine"), "--engine");
  if (!engine.make) throw InputError(fmt::format("--engine: {} is not an attention engine", engine.name));
  const auto attention = engine.make(resolve_params(engine.params, Json::object(), "--engine"));
  const MemoryPlan plan =
      plan_memory(model, *attention, args.integer("--length"), params.options.prefill_chunk, params.options.kv_dtype);
  fmt::print("memory plan   {} under {}\n", plan.describe(), engine.name);
  if (const auto room = memory_room(model)) {
    fmt::print("room          {:.1f} MiB ({})\n", static_cast<double>(room->bytes) / (1 << 20), room->source);
  }
  return 0;
}

const RegisterCommand registration{{
    .name = "model-info",
    .summary = "a model directory: its shape, added tokens, chat template and the memory plan of a context",
    .usage = "ctxbench model-info MODEL_DIR [--length N] [--engine NAME]",
    .description = "Prints the config's shape, the tokenizer, its added tokens (what a task's prompt_template can\n"
                   "name), the chat_template of tokenizer_config.json (reported, not executed) and the memory plan\n"
                   "of a sequence of N tokens under the engine at its default parameters, beside the room the\n"
                   "machine leaves.",
    .options = {{.name = "--length",
                 .type = ParamType::integer,
                 .default_value = 4096,
                 .help = "tokens of the planned sequence",
                 .min = 1,
                 .max = 1 << 24},
                {.name = "--engine", .type = ParamType::string, .default_value = "dense", .help = "attention engine"}},
    .run = model_info_command,
}};

}  // namespace
}  // namespace ctxbench::model
