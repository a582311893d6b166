// Small utilities shared by the tests.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "core/measurement.h"
#include "core/metrics.h"
#include "core/random.h"

namespace ctxbench::testing {

// The ctxbench executable built beside the tests (tests/main.cpp knows where).
std::string ctxbench_binary();

// A fresh directory under the system temp dir, removed when the object goes away.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "ctxbench-test-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A test that cannot run here prints this line and returns: ctest reports it as skipped (the
// SKIP_REGULAR_EXPRESSION in CMakeLists.txt) and scripts/test.sh counts it, so a skip never reads as a pass.
inline void report_skipped(const std::string& reason) { std::cout << "CTXBENCH-SKIPPED: " << reason << std::endl; }

// CI sets CI=true: there a test that scripts/setup.sh makes possible must run, not skip.
inline bool running_in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

inline void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

inline std::vector<float> random_vector(Rng& rng, std::size_t n) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.normal());
  return v;
}

// Runs a shell command, returning its exit status and writing its combined output to `output`.
inline int run_shell(const std::string& command, std::string* output = nullptr) {
  const std::string capture = std::filesystem::temp_directory_path() / ("ctxbench-cmd-" + std::to_string(getpid()));
  const int status = std::system((command + " >" + capture + " 2>&1").c_str());
  if (output) {
    std::ifstream in(capture);
    output->assign(std::istreambuf_iterator<char>(in), {});
  }
  std::filesystem::remove(capture);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The measurements whose metric is not catalogued, or stored in another unit than the catalogue's: empty when
// every one is (core/metrics.h).
inline std::vector<std::string> uncatalogued(const std::vector<Measurement>& measurements) {
  std::vector<std::string> out;
  for (const auto& m : measurements) {
    const Metric* metric = MetricCatalogue::instance().find(m.metric);
    if (!metric || metric->unit != m.unit) out.push_back(m.metric + " [" + m.unit + "]");
  }
  return out;
}

}  // namespace ctxbench::testing

namespace ctxbench::testing {

// Starts `ctxbench ARGS...` in the background, its stdout and stderr going to `output` (discarded when empty).
inline pid_t spawn_ctxbench(const std::vector<std::string>& args, const std::string& output = "") {
  const std::string binary = ctxbench_binary();
  const pid_t child = fork();
  if (child == 0) {
    const char* sink = output.empty() ? "/dev/null" : output.c_str();
    if (!freopen(sink, "w", stdout) || !freopen(sink, "a", stderr)) _exit(126);
    std::vector<char*> argv{const_cast<char*>(binary.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  return child;
}

// How far a row of logits is from a golden row: max |difference| over max |golden logit|.
inline double golden_logit_error(const float* row, const std::vector<double>& expected) {
  double diff = 0, scale = 0;
  for (std::size_t v = 0; v < expected.size(); ++v) {
    diff = std::max(diff, std::abs(row[v] - expected[v]));
    scale = std::max(scale, std::abs(expected[v]));
  }
  return diff / scale;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace ctxbench::testing
