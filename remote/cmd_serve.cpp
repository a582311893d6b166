// ctxbench serve: an engine (through the in-process model runtime) or a text engine behind the OpenAI-compatible
// API on a local port.
#include <fmt/format.h>

#include <filesystem>

#include "core/command.h"
#include "engines/engine.h"
#include "model/backend.h"
#include "remote/server.h"

namespace ctxbench::remote {
namespace {

const char* kUsage =
    "ctxbench serve [--engine dense] [--engine-params JSON] [--model DIR] [--rope-scaling JSON]\n"
    "               [--prompt-template TEXT] [--port P]\n"
    "               [--host 127.0.0.1] [--served-model-name NAME] [--max-connections N] [--max-request-mb M]\n"
    "               [--idle-timeout S]";

Json parse_json_option(const Args& args, const std::string& name, const Json& fallback) {
  if (!args.given(name)) return fallback;
  const std::string text = args.text(name);
  if (text.empty()) return fallback;
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {  // parse_error, or out_of_range: a number beyond a double
    throw InputError(fmt::format("{}: not valid JSON: {}", name, e.what()));
  }
}

// --model, or "" when not given (an empty --model also means the default).
std::string model_option(const Args& args) { return args.given("--model") ? args.text("--model") : ""; }

std::unique_ptr<Generator> make_served_generator(const Args& args, const engines::EngineInfo& engine,
                                                 const Json& params) {
  if (engine.make_generator) {
    for (const char* option : {"--model", "--prompt-template"}) {
      if (args.given(option) && !args.text(option).empty())
        throw InputError(fmt::format("{}: engine {} answers text itself: it takes no model or prompt template", option,
                                     engine.name));
    }
    return engine.make_generator(params);
  }
  Json model_params = {{"model", model_option(args).empty() ? model::kBundledModel : model_option(args)},
                       {"rope_scaling", parse_json_option(args, "--rope-scaling", Json::object())}};
  if (args.given("--prompt-template")) model_params["prompt_template"] = args.text("--prompt-template");
  return model::open_generator(model_params, std::shared_ptr<const engines::Engine>(engine.make(params)));
}

int serve_command(const Args& args) {
  args.expect_positionals(0, 0);
  const std::string engine_name = args.text("--engine");
  const auto& engine = engines::EngineRegistry::instance().get(engine_name, "--engine");
  const Json params =
      resolve_params(engine.params, parse_json_option(args, "--engine-params", Json::object()), "--engine-params");
  ServeOptions options;
  options.host = args.text("--host");
  options.port = static_cast<int>(args.number("--port"));
  options.max_connections = static_cast<int>(args.number("--max-connections"));
  options.max_request_bytes = static_cast<std::size_t>(args.number("--max-request-mb") * (1 << 20));
  options.idle_timeout_seconds = args.number("--idle-timeout");
  const std::string model = model_option(args);
  options.model_name = args.given("--served-model-name") ? args.text("--served-model-name")
                       : model.empty()                   ? engine_name
                                                         : std::filesystem::path(model).filename().string();
  options.log = stdout;
  Server server(make_served_generator(args, engine, params), options);
  server.run(true);
  return 0;
}

const RegisterCommand registration{{
    .name = "serve",
    .summary = "serve an engine over the OpenAI-compatible HTTP API (SSE streaming)",
    .usage = kUsage,
    .description =
        "Serves a model over the OpenAI-compatible API: POST /v1/completions and /v1/chat/completions (streaming\n"
        "with \"stream\": true), GET /v1/models and /health. Attention engines run inside the model runtime on\n"
        "--model; text engines (e.g. remote) answer by themselves. Decoding is greedy; requests asking for echo,\n"
        "logprobs or n > 1 get 400. Chat messages are joined by newlines; --prompt-template, when given, wraps\n"
        "every prompt (completions and chat alike) as a text task's prompt_template does. One request is\n"
        "generated at a time.\n"
        "SIGINT/SIGTERM: stop accepting, finish replies in progress (up to 30 s), exit 0. A second signal exits\n"
        "at once.",
    .options =
        {{.name = "--engine",
          .type = ParamType::string,
          .default_value = "dense",
          .help = "a registered engine (`ctxbench list engines`)"},
         {.name = "--engine-params", .type = ParamType::string, .help = "its parameters (checked like a suite's)"},
         {.name = "--model",
          .type = ParamType::string,
          .help = "HF-style model directory, by default the bundled model"},
         {.name = "--rope-scaling", .type = ParamType::string, .help = "JSON that overrides the config's rope_scaling"},
         {.name = "--prompt-template",
          .type = ParamType::string,
          .help = "text with one {prompt} around every request's prompt (README: Instruct models)"},
         {.name = "--port",
          .type = ParamType::number,
          .default_value = 8000,
          .help = "0 picks a free port (printed at start)",
          .min = 0,
          .max = 65535},
         {.name = "--host",
          .type = ParamType::string,
          .default_value = "127.0.0.1",
          .help = "the address listened on (loopback only unless you say otherwise)"},
         {.name = "--served-model-name",
          .type = ParamType::string,
          .help = "the model id in replies and /v1/models, by default the directory's name or the engine"},
         {.name = "--max-connections",
          .type = ParamType::number,
          .default_value = 64,
          .help = "more connections get 503",
          .min = 1,
          .max = 100000},
         {.name = "--max-request-mb",
          .type = ParamType::number,
          .default_value = 16,
          .help = "bigger requests get 413",
          .min = 0.001,
          .max = 4096},
         {.name = "--idle-timeout",
          .type = ParamType::number,
          .default_value = 30,
          .help = "seconds to wait for a request or for a client to read",
          .min = 0.001,
          .max = 86400}},
    .run = serve_command,
}};

}  // namespace
}  // namespace ctxbench::remote
