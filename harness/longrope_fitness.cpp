#include "harness/longrope_fitness.h"

#include <fmt/format.h>

#include "engines/engine.h"
#include "model/llama_generator.h"
#include "model/tokenizer.h"
#include "tasks/task.h"

namespace ctxbench::longrope {
namespace {

const tasks::TaskInfo& perplexity_task() { return tasks::TaskRegistry::instance().get("perplexity", "task"); }

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
  const Json given = {{"documents", settings_.documents},
                      {"samples", settings_.samples},
                      {"offset", settings_.offset},
                      {"bos_token_id", config_.bos_token_id.value_or(-1)}};
  const Json params = resolve_params(perplexity_task().params, given, "longrope-search perplexity windows");
  const auto tokenizer = model::load_tokenizer(settings_.model_dir, config_.vocab_size);
  const tasks::CellContext cell{params, static_cast<int>(settings_.target_length), 0.0, settings_.seed};
  samples_ = perplexity_task().make_text_samples(cell, *tokenizer);
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
  for (const auto& sample : samples_) sum += perplexity_task().evaluate(generator, sample).score;
  return sum / static_cast<double>(samples_.size());
}

double PerplexityFitness::operator()(const Candidate& candidate) const { return perplexity(rope_scaling(candidate)); }

}  // namespace ctxbench::longrope
