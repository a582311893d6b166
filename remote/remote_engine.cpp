// The "remote" engine: text tasks answered by an OpenAI-compatible server (vLLM, SGLang, llama.cpp's server,
// ctxbench serve), measured like the in-process runtime plus load figures (latency percentiles, throughput).
#include <fmt/format.h>

#include <cstdlib>

#include "core/timer.h"
#include "engines/engine.h"
#include "remote/byte_tokenizer.h"
#include "remote/client.h"
#include "remote/load.h"
#include "remote/stop_filter.h"

namespace ctxbench::remote {
namespace {

std::string api_key(const std::string& variable) {
  if (variable.empty()) return "";
  const char* value = std::getenv(variable.c_str());
  if (!value || !*value) throw InputError(fmt::format("api_key_env: the environment variable {} is not set", variable));
  return value;
}

struct RemoteParams {
  Required<std::string> base_url;
  Required<std::string> model;
  Endpoint endpoint = Endpoint::completions;
  std::string api_key_env;
  int concurrency = 1;
  double timeout_seconds = 120;
  int retries = 2;
  double backoff_seconds = 1;
  bool stream = true;

  ClientOptions options() const {
    return {.url = parse_base_url(base_url.value),
            .endpoint = endpoint,
            .model = model.value,
            .api_key = api_key(api_key_env),
            .concurrency = concurrency,
            .timeout_seconds = timeout_seconds,
            .retries = retries,
            .backoff_seconds = backoff_seconds,
            .stream = stream};
  }

  static ParamFields<RemoteParams> fields() {
    using P = RemoteParams;
    return ParamFields<P>()
        .field(&P::base_url, "base_url", "http://HOST:PORT[/PATH] (http only; a trailing /v1 is optional)")
        .field(&P::model, "model", "model name sent to the server")
        .choice(&P::endpoint, "endpoint", "/v1/completions or /v1/chat/completions",
                {{"completions", Endpoint::completions}, {"chat", Endpoint::chat}})
        .field(&P::api_key_env, "api_key_env", "environment variable holding the API key (sent as a Bearer token)")
        .field(&P::concurrency, "concurrency", "requests kept in flight over a cell's samples", {.min = 1, .max = 1024})
        .field(&P::timeout_seconds, "timeout_seconds", "limit on connecting and on each wait for more of a reply",
               {.min = 0.001, .max = 86400})
        .field(&P::retries, "retries",
               "further attempts after a connection failure, timeout, truncated reply or HTTP 408/429/5xx",
               {.min = 0, .max = 100})
        .field(&P::backoff_seconds, "backoff_seconds", "wait before retry k: backoff_seconds * 2^(k-1)",
               {.min = 0, .max = 600})
        .field(&P::stream, "stream", "stream the reply (SSE): needed for time to first token");
  }
};

class RemoteGenerator final : public Generator {
 public:
  explicit RemoteGenerator(const RemoteParams& params) : options_(params.options()) {
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

  // Hands the text on as the server's events bring it (serve proxies it token by token), held back only while it
  // may be the start of a stop string: a server that ignores stop strings does not get one through.
  Generation generate_stream(const TextSample& sample, const std::function<void(std::string_view)>& on_text) override {
    StopFilter filter(sample.stop);
    std::string text;
    const auto hand_on = [&](const std::string& ready) {
      if (ready.empty()) return;
      text += ready;
      on_text(ready);
    };
    const Stopwatch watch;
    const Outcome outcome =
        complete_streaming(options_, sample, [&](std::string_view piece) { hand_on(filter.push(piece)); });
    load_.wall_seconds += watch.seconds();
    if (!outcome.reply) throw std::runtime_error(outcome.error);
    hand_on(filter.finish());
    Generation g = record(sample, *outcome.reply, outcome.attempts);
    g.text = std::move(text);
    return g;
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
    // The time between tokens is read off the streamed events; a reply whose text came in one piece (not
    // streamed, or a server that does not stream token by token) did not measure it.
    g.decode_seconds = reply.text_chunks > 1 ? reply.last_text_seconds - reply.first_token_seconds : kNotMeasured;
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

const engines::RegisterEngine registration{engines::declared_engine<RemoteGenerator, RemoteParams>({
    .name = "remote",
    .description = "an OpenAI-compatible server over HTTP (text tasks only; lengths in bytes)",
    .policy = engines::KvPolicy::full,
})};

}  // namespace
}  // namespace ctxbench::remote
