// The fitness of LongRoPE's factor search, with the model run through the in-process Llama runtime on dense
// attention, one thread per evaluation so that several candidates run side by side. Two kinds:
//  - "perplexity": the `perplexity` task's score at the target length (mean over its document windows of
//    exp(mean NLL of every token after BOS)), LongRoPE's fitness;
//  - "passkey": LongRoPE2's needle-driven perplexity: `passkey` task prompts of the target length followed by
//    the answer the bundled model is trained to give (" KEY."), NLL over the answer tokens only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/params.h"
#include "core/text.h"
#include "longrope/search.h"
#include "model/llama_config.h"

namespace ctxbench::longrope {

struct FitnessSettings {
  std::string model_dir;
  std::int64_t target_length = 0;
  std::string documents;         // the perplexity task's "documents": a directory of *.txt or a jsonl file
  int samples = 3;               // windows (one per document, round robin) or passkey prompts
  std::string offset = "start";  // "start" or "random" (seeded by `seed`)
  std::uint64_t seed = 0;
  std::optional<double> attention_factor;  // of the searched longrope scaling; default sqrt(1 + ln s / ln L0)
  std::string kind = "perplexity";         // or "passkey"
};

class PerplexityFitness {
 public:
  // Reads the model's config and tokenizes the windows once. Throws InputError for bad settings.
  explicit PerplexityFitness(FitnessSettings settings);

  // Mean perplexity of the windows with this rope_scaling ({} keeps the config's own). Thread-safe.
  double perplexity(const Json& rope_scaling) const;
  // The same for a candidate's longrope scaling (rope_scaling_json).
  double operator()(const Candidate& candidate) const;

  Json rope_scaling(const Candidate& candidate) const;
  const model::LlamaConfig& config() const { return config_; }
  std::int64_t original_length() const { return original_length_; }
  double scale() const;
  const FitnessSettings& settings() const { return settings_; }
  std::size_t windows() const { return windows_.size(); }

 private:
  // One scored sequence: tokens[scored_from..] count towards its perplexity.
  struct Window {
    std::vector<int> tokens;
    std::size_t scored_from = 1;
  };

  FitnessSettings settings_;
  model::LlamaConfig config_;
  std::int64_t original_length_ = 0;
  std::vector<Window> windows_;
};

}  // namespace ctxbench::longrope
