#include "longrope/fitness.h"

#include <fmt/format.h>

#include <cmath>

#include "engines/engine.h"
#include "model/llama_generator.h"
#include "model/tokenizer.h"
#include "tasks/task.h"

namespace ctxbench::longrope {
namespace {

std::shared_ptr<const engines::Engine> single_thread_dense() {
  const auto& info = engines::EngineRegistry::instance().get("dense", "engine");
  return info.make(resolve_params(info.params, Json{{"threads", 1}}, "longrope fitness engine"));
}

}  // namespace

PerplexityFitness::PerplexityFitness(FitnessSettings settings)
    : settings_(std::move(settings)), config_(model::LlamaConfig::from_dir(settings_.model_dir)) {
  const kernels::RopeConfig& rope = config_.rope;
  original_length_ =
      rope.original_max_position_embeddings > 0 ? rope.original_max_position_embeddings : rope.max_position_embeddings;
  if (original_length_ < 1) {
    throw InputError(settings_.model_dir + "/config.json: max_position_embeddings: expected the training length");
  }
  if (settings_.target_length <= original_length_) {
    throw InputError(fmt::format("--target-length: expected more than the model's original length {}, got {}",
                                 original_length_, settings_.target_length));
  }
  if (settings_.attention_factor && !(*settings_.attention_factor > 0)) {
    throw InputError(fmt::format("--attention-factor: expected a number > 0, got {}", *settings_.attention_factor));
  }
  const auto tokenizer = model::load_tokenizer(settings_.model_dir, config_.vocab_size);
  const int bos = config_.bos_token_id.value_or(-1);
  if (settings_.kind == "perplexity") {
    const Json given = {{"documents", settings_.documents},
                        {"samples", settings_.samples},
                        {"offset", settings_.offset},
                        {"bos_token_id", bos}};
    const auto& task = tasks::TaskRegistry::instance().get("perplexity", "task");
    const Json params = resolve_params(task.params, given, "longrope-search perplexity windows");
    const tasks::CellContext cell{params, static_cast<int>(settings_.target_length), 0.0, settings_.seed};
    for (const auto& sample : task.make_text_samples(cell, *tokenizer)) {
      windows_.push_back({sample.extra.at("tokens").get<std::vector<int>>(), 1});
    }
  } else if (settings_.kind == "passkey") {
    const auto& task = tasks::TaskRegistry::instance().get("passkey", "task");
    const Json params = resolve_params(task.params, Json{{"samples", settings_.samples}}, "longrope-search passkey");
    // Room for BOS and the answer within the target length.
    const int prompt_tokens = static_cast<int>(settings_.target_length) - 16;
    const tasks::CellContext cell{params, prompt_tokens, 50.0, settings_.seed};
    for (const auto& sample : task.make_text_samples(cell, *tokenizer)) {
      Window window;
      if (bos >= 0) window.tokens.push_back(bos);
      const auto prompt = tokenizer->encode(sample.prompt);
      window.tokens.insert(window.tokens.end(), prompt.begin(), prompt.end());
      window.scored_from = window.tokens.size();
      const auto answer = tokenizer->encode(" " + sample.references.at(0) + ".");
      window.tokens.insert(window.tokens.end(), answer.begin(), answer.end());
      windows_.push_back(std::move(window));
    }
  } else {
    throw InputError("--fitness: expected perplexity or passkey, got \"" + settings_.kind + "\"");
  }
}

double PerplexityFitness::scale() const {
  return static_cast<double>(settings_.target_length) / static_cast<double>(original_length_);
}

Json PerplexityFitness::rope_scaling(const Candidate& candidate) const {
  return rope_scaling_json(candidate, original_length_, settings_.target_length, settings_.attention_factor);
}

double PerplexityFitness::perplexity(const Json& rope_scaling) const {
  auto model = std::make_shared<const model::LlamaModel>(settings_.model_dir, rope_scaling, 1);
  model::LlamaGenerator generator(std::move(model), single_thread_dense());
  double sum = 0;
  for (const auto& window : windows_) {
    const auto logprobs = generator.token_logprobs(window.tokens);
    double nll = 0;
    for (std::size_t i = window.scored_from; i < logprobs.size(); ++i) nll -= logprobs[i];
    sum += std::exp(nll / static_cast<double>(logprobs.size() - window.scored_from));
  }
  return sum / static_cast<double>(windows_.size());
}

double PerplexityFitness::operator()(const Candidate& candidate) const { return perplexity(rope_scaling(candidate)); }

}  // namespace ctxbench::longrope
