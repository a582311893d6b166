#include "core/metrics.h"

#include <limits>
#include <stdexcept>

namespace ctxbench {
namespace {

constexpr Better higher = Better::higher, lower = Better::lower, neither = Better::neither;

// One table rather than a line beside each producer: several producers share metrics (the attention driver and
// the text runner both time prefill), and reports read the units and names side by side.
const Metric kBuiltIn[] = {
    // Attention level (harness/attention_driver.cpp).
    {"prefill_seconds", "s", lower, "Prefill time"},
    {"decode_seconds_per_step", "s", lower, "Decode time per step"},
    {"observe_seconds", "s", lower, "Observation-window time"},
    {"mask_seconds", "s", lower, "Mask selection time (last repetition)"},
    {"attention_seconds", "s", lower, "Attention time (last repetition)"},
    {"keys_attended_mean", "keys", neither, "Keys attended per query (mean)"},
    {"keys_attended_max", "keys", neither, "Keys attended per query (max)"},
    {"kv_bytes_read", "B", lower, "KV bytes read"},
    {"kv_bytes_resident", "B", lower, "KV cache resident"},
    {"kv_bytes_full", "B", neither, "KV cache of full attention"},
    {"output_rel_error", "ratio", lower, "Output relative error"},
    {"attention_recall", "ratio", higher, "Attention mass recall"},
    {"needle_recall", "ratio", higher, "Needle recall"},
    // Paired timing (harness/runner.cpp): the baseline engine's time over this engine's, per repetition pair.
    {"speedup", "x", higher, "Speedup over the baseline engine (median of paired ratios)"},
    {"speedup_low", "x", neither, "Speedup, 95% interval low"},
    {"speedup_high", "x", neither, "Speedup, 95% interval high"},
    // Engines' own (extra_measurements).
    {"mask_key_bytes_read", "B", lower, "Key bytes read by mask selection"},
    {"mask_builds", "calls", neither, "Mask builds"},
    {"mask_stage_scans", "scans", neither, "Mask stage scans"},
    {"device_kv_bytes", "B", lower, "KV bytes on the device"},
    {"query_aware_head_share", "ratio", neither, "Share of heads with a query-aware pattern"},
    // Simulated offload tiers (engines/kv_offload.cpp): the attention's, the mask selection's, and both.
    {"offload_sa_hit_ratio", "ratio", neither, "Attention offload cache hit ratio"},
    {"offload_sa_accesses", "entries", neither, "Attention offload cache accesses"},
    {"offload_sa_bytes_to_device", "B", lower, "Attention offload bytes to device"},
    {"offload_sa_device_bytes", "B", lower, "Attention offload device memory"},
    {"offload_sa_capacity_bytes", "B", neither, "Attention offload cache capacity"},
    {"offload_mask_hit_ratio", "ratio", neither, "Mask offload cache hit ratio"},
    {"offload_mask_accesses", "entries", neither, "Mask offload cache accesses"},
    {"offload_mask_bytes_to_device", "B", lower, "Mask offload bytes to device"},
    {"offload_mask_device_bytes", "B", lower, "Mask offload device memory"},
    {"offload_mask_capacity_bytes", "B", neither, "Mask offload cache capacity"},
    {"offload_total_hit_ratio", "ratio", neither, "Offload cache hit ratio"},
    {"offload_total_accesses", "entries", neither, "Offload cache accesses"},
    {"offload_total_bytes_to_device", "B", lower, "Offload bytes to device"},
    {"offload_total_device_bytes", "B", lower, "Offload device memory"},
    {"offload_total_capacity_bytes", "B", neither, "Offload cache capacity"},
    // Text level (harness/runner.cpp, the model runtime).
    {"samples", "count", neither, "Samples"},
    {"prompt_tokens", "tokens", neither, "Prompt tokens"},
    {"generated_tokens", "tokens", neither, "Generated tokens"},
    {"first_token_seconds", "s", lower, "Time to first token"},
    {"decode_seconds_per_token", "s", lower, "Decode time per token"},
    {"attention_share", "ratio", neither, "Attention share of generation time"},
    {"keys_per_query", "keys", neither, "Keys attended per query"},
    {"memory_estimate_bytes", "B", neither, "Memory estimate of the runtime"},
    {"peak_rss_bytes", "B", lower, "Peak resident memory of the process"},
    // Text tasks' scores (TaskInfo::metric).
    {"accuracy", "%", higher, "Accuracy"},
    {"score", "%", higher, "Score"},
    {"string_match", "%", higher, "String match"},
    {"phrase_recall_not_llm_judge", "%", higher, "Phrase recall"},
    {"perplexity", "perplexity", lower, "Perplexity"},
    // Remote engines: load over the requests of a cell (remote/load.cpp).
    {"latency_seconds", "s", lower, "Request latency"},
    {"latency_p50_seconds", "s", lower, "Request latency (p50)"},
    {"latency_p90_seconds", "s", lower, "Request latency (p90)"},
    {"latency_p99_seconds", "s", lower, "Request latency (p99)"},
    {"first_token_p50_seconds", "s", lower, "Time to first token (p50)"},
    {"first_token_p90_seconds", "s", lower, "Time to first token (p90)"},
    {"first_token_p99_seconds", "s", lower, "Time to first token (p99)"},
    {"throughput_requests_per_second", "1/s", higher, "Requests per second"},
    {"throughput_output_tokens_per_second", "tokens/s", higher, "Output tokens per second"},
    {"server_prompt_tokens", "tokens", neither, "Prompt tokens (server's count)"},
    {"server_completion_tokens", "tokens", neither, "Completion tokens (server's count)"},
    {"retries", "count", neither, "Retries"},
    {"concurrency", "count", neither, "Requests in flight"},
};

[[maybe_unused]] const bool kRegistered = [] {
  for (const Metric& metric : kBuiltIn) MetricCatalogue::instance().add(metric);
  return true;
}();

}  // namespace

const Metric& catalogued_metric(const std::string& name) {
  if (const Metric* metric = MetricCatalogue::instance().find(name)) return *metric;
  throw std::logic_error("metric \"" + name + "\" is not in the catalogue (core/metrics.cpp)");
}

Measurement make_measurement(const std::string& metric, std::vector<double> repetitions) {
  return {metric, catalogued_metric(metric).unit, std::move(repetitions)};
}

double combine(Combine how, std::vector<double> values) {
  if (how == Combine::median) return median(std::move(values));
  double sum = 0;
  for (const double v : values) sum += v;
  return values.empty() ? std::numeric_limits<double>::quiet_NaN() : sum / values.size();
}

}  // namespace ctxbench
