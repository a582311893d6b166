#include "remote/load.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/metrics.h"

namespace ctxbench::remote {

double percentile(std::vector<double> values, double p) {
  if (values.empty()) throw std::invalid_argument("percentile of no values");
  if (!(p >= 0 && p <= 100)) throw std::invalid_argument("percentile outside [0, 100]");
  std::sort(values.begin(), values.end());
  const double rank = p / 100 * static_cast<double>(values.size() - 1);
  const auto below = static_cast<std::size_t>(std::floor(rank));
  const std::size_t above = std::min(below + 1, values.size() - 1);
  return values[below] + (rank - static_cast<double>(below)) * (values[above] - values[below]);
}

std::vector<Measurement> load_measurements(const LoadRecord& r) {
  std::vector<Measurement> out;
  if (!r.latency_seconds.empty()) {
    out.push_back(make_measurement("latency_seconds", r.latency_seconds));
    for (const double p : {50.0, 90.0, 99.0}) {
      const std::string rank = std::to_string(static_cast<int>(p));
      out.push_back(make_measurement("latency_p" + rank + "_seconds", {percentile(r.latency_seconds, p)}));
      out.push_back(make_measurement("first_token_p" + rank + "_seconds", {percentile(r.first_token_seconds, p)}));
    }
  }
  if (r.wall_seconds > 0) {
    const double requests = static_cast<double>(r.latency_seconds.size());
    out.push_back(make_measurement("throughput_requests_per_second", {requests / r.wall_seconds}));
    out.push_back(make_measurement("throughput_output_tokens_per_second", {r.output_tokens / r.wall_seconds}));
  }
  if (!r.server_prompt_tokens.empty()) out.push_back(make_measurement("server_prompt_tokens", r.server_prompt_tokens));
  if (!r.server_completion_tokens.empty())
    out.push_back(make_measurement("server_completion_tokens", r.server_completion_tokens));
  out.push_back(make_measurement("retries", {static_cast<double>(r.retries)}));
  out.push_back(make_measurement("concurrency", {static_cast<double>(r.concurrency)}));
  return out;
}

}  // namespace ctxbench::remote
