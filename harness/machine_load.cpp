#include "harness/machine_load.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <thread>

namespace ctxbench {
namespace {

// The first line of a /proc/pressure file; empty when the kernel has no such file (no PSI).
std::string first_line(const std::string& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

std::optional<double> larger(const std::optional<double>& a, const std::optional<double>& b) {
  if (!a || !b) return a ? a : b;
  return std::max(*a, *b);
}

}  // namespace

std::optional<double> pressure_some_avg10(const std::string& psi_text) {
  std::istringstream in(psi_text);
  std::string kind, avg10;
  if (!(in >> kind >> avg10) || kind != "some" || avg10.rfind("avg10=", 0) != 0) return std::nullopt;
  double value = 0;
  const char* first = avg10.data() + 6;
  const char* last = avg10.data() + avg10.size();
  const auto [end, error] = std::from_chars(first, last, value);
  if (error != std::errc() || end != last || first == last) return std::nullopt;
  return value;
}

bool MachineLoad::under_load(int cores) const {
  if (cpu_pressure || memory_pressure)
    return cpu_pressure.value_or(0) > kPressureThresholdPercent ||
           memory_pressure.value_or(0) > kPressureThresholdPercent;
  return load_average > cores;
}

bool MachineLoad::under_load_here() const { return under_load(static_cast<int>(std::thread::hardware_concurrency())); }

std::string MachineLoad::describe() const {
  std::string out = fmt::format("load {:.2f}", load_average);
  if (cpu_pressure) out += fmt::format(", cpu pressure {:.1f}%", *cpu_pressure);
  if (memory_pressure) out += fmt::format(", memory pressure {:.1f}%", *memory_pressure);
  return out;
}

MachineLoad sample_load() {
  MachineLoad load;
  std::ifstream("/proc/loadavg") >> load.load_average;
  load.cpu_pressure = pressure_some_avg10(first_line("/proc/pressure/cpu"));
  load.memory_pressure = pressure_some_avg10(first_line("/proc/pressure/memory"));
  return load;
}

MachineLoad worst(const MachineLoad& a, const MachineLoad& b) {
  return {std::max(a.load_average, b.load_average), larger(a.cpu_pressure, b.cpu_pressure),
          larger(a.memory_pressure, b.memory_pressure)};
}

}  // namespace ctxbench
