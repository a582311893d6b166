// Load figures of a remote cell: latency percentiles and throughput over the requests of a cell.
#pragma once

#include <vector>

#include "core/measurement.h"

namespace ctxbench::remote {

// The p-th percentile (0..100) with linear interpolation between closest ranks (NumPy's default).
// Throws std::invalid_argument for no values or p outside [0, 100].
double percentile(std::vector<double> values, double p);

struct LoadRecord {
  std::vector<double> latency_seconds;           // end to end, one per request
  std::vector<double> first_token_seconds;       // one per request
  std::vector<double> server_prompt_tokens;      // when the server reported usage
  std::vector<double> server_completion_tokens;  // when the server reported usage
  double output_tokens = 0;                      // the server's counts where reported, else the generator's own
  double wall_seconds = 0;                       // time the requests were in flight (overlapping requests count once)
  int retries = 0;                               // attempts beyond the first, summed
  int concurrency = 1;
};

std::vector<Measurement> load_measurements(const LoadRecord& record);

}  // namespace ctxbench::remote
