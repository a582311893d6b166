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
    "ctxbench serve --engine NAME [--engine-params JSON] [--model DIR] [--rope-scaling JSON] [--port P]\n"
    "               [--host 127.0.0.1] [--served-model-name NAME] [--max-connections N] [--max-request-mb M]\n"
    "               [--idle-timeout S]\n\n"
    "Serves a model over the OpenAI-compatible API: POST /v1/completions and /v1/chat/completions (streaming\n"
    "with \"stream\": true), GET /v1/models and /health. Attention engines run inside the model runtime on --model;\n"
    "text engines (e.g. remote) answer by themselves. Decoding is greedy; requests asking for echo, logprobs or\n"
    "n > 1 get 400. Chat messages are joined by newlines (no chat template). One request is generated at a time.\n"
    "  --engine NAME         a registered engine (`ctxbench list engines`)\n"
    "  --engine-params JSON  its parameters (checked like a suite's)\n"
    "  --model DIR           HF-style model directory (default: the bundled model)\n"
    "  --rope-scaling JSON   overrides the config's rope_scaling\n"
    "  --port P              default 8000; 0 picks a free port (printed at start)\n"
    "  --host ADDR           default 127.0.0.1 (loopback only unless you say otherwise)\n"
    "  --served-model-name   the model id in replies and /v1/models (default: the directory's name or the engine)\n"
    "  --max-connections N   default 64; more connections get 503\n"
    "  --max-request-mb M    default 16; bigger requests get 413\n"
    "  --idle-timeout S      default 30: seconds to wait for a request or for a client to read\n"
    "SIGINT/SIGTERM: stop accepting, finish replies in progress (up to 30 s), exit 0. A second signal exits at once.";

Json parse_json_option(const Args& args, const std::string& name, const Json& fallback) {
  const std::string text = args.option(name, "");
  if (text.empty()) return fallback;
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {  // parse_error, or out_of_range: a number beyond a double
    throw InputError(fmt::format("{}: not valid JSON: {}", name, e.what()));
  }
}

double number_option(const Args& args, const std::string& name, double fallback, double min, double max) {
  const std::string text = args.option(name, "");
  if (text.empty()) return fallback;
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || !(value >= min && value <= max))
    throw InputError(fmt::format("{}: expected a number in [{}, {}], got \"{}\"", name, min, max, text));
  return value;
}

std::unique_ptr<Generator> make_served_generator(const Args& args, const engines::EngineInfo& engine,
                                                 const Json& params) {
  if (engine.make_generator) {
    if (!args.option("--model", "").empty())
      throw InputError(fmt::format("--model: engine {} answers text itself and takes no model", engine.name));
    return engine.make_generator(params);
  }
  const Json model_params = {{"model", args.option("--model", model::kBundledModel)},
                             {"rope_scaling", parse_json_option(args, "--rope-scaling", Json::object())}};
  return model::open_generator(model_params, std::shared_ptr<const engines::Engine>(engine.make(params)));
}

int serve_command(const Args& args) {
  args.expect_positionals(0, 0, kUsage);
  const std::string engine_name = args.option("--engine", "");
  if (engine_name.empty()) throw InputError("--engine is required; usage: " + std::string(kUsage));
  const auto& engine = engines::EngineRegistry::instance().get(engine_name, "--engine");
  const Json params =
      resolve_params(engine.params, parse_json_option(args, "--engine-params", Json::object()), "--engine-params");
  ServeOptions options;
  options.host = args.option("--host", "127.0.0.1");
  options.port = static_cast<int>(number_option(args, "--port", 8000, 0, 65535));
  options.max_connections = static_cast<int>(number_option(args, "--max-connections", 64, 1, 100000));
  options.max_request_bytes =
      static_cast<std::size_t>(number_option(args, "--max-request-mb", 16, 0.001, 4096) * (1 << 20));
  options.idle_timeout_seconds = number_option(args, "--idle-timeout", 30, 0.001, 86400);
  const std::string model = args.option("--model", "");
  options.model_name = args.option("--served-model-name",
                                   model.empty() ? engine_name : std::filesystem::path(model).filename().string());
  options.log = stdout;
  Server server(make_served_generator(args, engine, params), options);
  server.run(true);
  return 0;
}

const RegisterCommand registration{{
    .name = "serve",
    .summary = "serve an engine over the OpenAI-compatible HTTP API (SSE streaming)",
    .usage = kUsage,
    .options = {"--engine", "--engine-params", "--model", "--rope-scaling", "--port", "--host", "--served-model-name",
                "--max-connections", "--max-request-mb", "--idle-timeout"},
    .flags = {},
    .run = serve_command,
}};

}  // namespace
}  // namespace ctxbench::remote
