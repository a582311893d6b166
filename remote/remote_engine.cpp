// The "remote" engine: text tasks answered by an OpenAI-compatible server (vLLM, SGLang, llama.cpp's server,
// ctxbench serve), measured like the in-process runtime plus load figures (latency percentiles, throughput).
#include <fmt/format.h>

#include <cstdlib>

#include "core/timer.h"
#include "engines/engine.h"
#include "remote/byte_tokenizer.h"
#include "remote/client.h"
#include "remote/load.h"

namespace ctxbench::remote {
namespace {

class RemoteGenerator final : public Generator {
 public:
  explicit RemoteGenerator(ClientOptions options) : options_(std::move(options)) {
    load_.concurrency = options_.concurrency;
  }

  const Tokenizer& tokenizer() const override { return tokenizer_; }

  Generation generate(const TextSample& sample) override { return generate_all({sample}).at(0); }

  std::vector<Generation> generate_all(const std::vector<TextSample>& samples) override {
    const Stopwatch watch;
    const auto outcomes = complete_all(options_, samples);
    load_.wall_seconds += watch.seconds();
    std::vector<Generation> out;
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
      if (!outcomes[i].reply) throw std::runtime_error(fmt::format("sample {}: {}", i, outcomes[i].error));
      out.push_back(record(samples[i], *outcomes[i].reply, outcomes[i].attempts));
    }
    return out;
  }

  std::vector<double> token_logprobs(const std::vector<int>&) override {
    throw std::runtime_error("the remote engine cannot score tokens (no perplexity over the completion API)");
  }

  std::vector<Measurement> extra_measurements() const override { return load_measurements(load_); }

 private:
  // Prompt lengths are the tokenizer's (bytes); generated tokens are the server's count when it reports one, else
  // the streamed text events (one per token on the common servers), else bytes.
  Generation record(const TextSample& sample, const Reply& reply, int attempts) {
    Generation g;
    g.text = reply.text;
    g.prompt_tokens = static_cast<int>(sample.prompt.size());
    g.generated_tokens = reply.usage             ? reply.usage->completion_tokens
                         : reply.text_chunks > 0 ? reply.text_chunks
                                                 : static_cast<int>(reply.text.size());
    g.first_token_seconds = reply.first_token_seconds;
    g.prefill_seconds = reply.first_token_seconds;  // the server's prefill, queueing and the network
    g.decode_seconds = reply.total_seconds - reply.first_token_seconds;
    load_.latency_seconds.push_back(reply.total_seconds);
    load_.first_token_seconds.push_back(reply.first_token_seconds);
    load_.output_tokens += g.generated_tokens;
    load_.retries += attempts - 1;
    if (reply.usage) {
      load_.server_prompt_tokens.push_back(reply.usage->prompt_tokens);
      load_.server_completion_tokens.push_back(reply.usage->completion_tokens);
    }
    return g;
  }

  ClientOptions options_;
  ByteTokenizer tokenizer_;
  LoadRecord load_;
};

std::string api_key(const std::string& variable) {
  if (variable.empty()) return "";
  const char* value = std::getenv(variable.c_str());
  if (!value || !*value) throw InputError(fmt::format("api_key_env: the environment variable {} is not set", variable));
  return value;
}

std::unique_ptr<Generator> make_remote(const Json& p) {
  ClientOptions options;
  options.url = parse_base_url(p.at("base_url").get<std::string>());
  options.endpoint = parse_endpoint(p.at("endpoint").get<std::string>());
  options.model = p.at("model").get<std::string>();
  options.api_key = api_key(p.at("api_key_env").get<std::string>());
  options.concurrency = p.at("concurrency").get<int>();
  options.timeout_seconds = p.at("timeout_seconds").get<double>();
  options.retries = p.at("retries").get<int>();
  options.backoff_seconds = p.at("backoff_seconds").get<double>();
  options.stream = p.at("stream").get<bool>();
  return std::make_unique<RemoteGenerator>(std::move(options));
}

const engines::RegisterEngine registration{{
    .name = "remote",
    .description = "an OpenAI-compatible server over HTTP (text tasks only; lengths in bytes)",
    .policy = engines::KvPolicy::full,
    .params =
        {
            {.name = "base_url",
             .type = ParamType::string,
             .default_value = nullptr,
             .help = "http://HOST:PORT[/PATH] (http only; a trailing /v1 is optional)"},
            {.name = "model",
             .type = ParamType::string,
             .default_value = nullptr,
             .help = "model name sent to the server"},
            {.name = "endpoint",
             .type = ParamType::string,
             .default_value = "completions",
             .help = "/v1/completions or /v1/chat/completions",
             .choices = {"completions", "chat"}},
            {.name = "api_key_env",
             .type = ParamType::string,
             .default_value = "",
             .help = "environment variable holding the API key (sent as a Bearer token)"},
            {.name = "concurrency",
             .type = ParamType::integer,
             .default_value = 1,
             .help = "requests kept in flight over a cell's samples",
             .min = 1,
             .max = 1024},
            {.name = "timeout_seconds",
             .type = ParamType::number,
             .default_value = 120.0,
             .help = "limit on connecting and on each wait for more of a reply",
             .min = 0.001,
             .max = 86400},
            {.name = "retries",
             .type = ParamType::integer,
             .default_value = 2,
             .help = "further attempts after a connection failure, timeout, truncated reply or HTTP 408/429/5xx",
             .min = 0,
             .max = 100},
            {.name = "backoff_seconds",
             .type = ParamType::number,
             .default_value = 1.0,
             .help = "wait before retry k: backoff_seconds * 2^(k-1)",
             .min = 0,
             .max = 600},
            {.name = "stream",
             .type = ParamType::boolean,
             .default_value = true,
             .help = "stream the reply (SSE): needed for time to first token"},
        },
    .make_generator = make_remote,
}};

}  // namespace
}  // namespace ctxbench::remote
