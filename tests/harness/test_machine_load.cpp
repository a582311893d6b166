// The load figures a cell records, and the rule that flags a cell as timed under load.
#include <catch2/catch.hpp>
#include <filesystem>

#include "harness/machine_load.h"

using namespace ctxbench;

TEST_CASE("PSI's \"some avg10\" is read from the kernel's text, and anything else is no figure", "[load]") {
  CHECK(pressure_some_avg10("some avg10=13.34 avg60=6.47 avg300=12.00 total=9530364995") == 13.34);
  CHECK(pressure_some_avg10("some avg10=0.00 avg60=0.00 avg300=0.00 total=0") == 0.0);
  CHECK_FALSE(pressure_some_avg10("").has_value());
  CHECK_FALSE(pressure_some_avg10("full avg10=3.00 avg60=0.00").has_value());
  CHECK_FALSE(pressure_some_avg10("some avg60=3.00").has_value());
  CHECK_FALSE(pressure_some_avg10("some avg10=abc avg60=0.00").has_value());
  CHECK_FALSE(pressure_some_avg10("some avg10=1.5x avg60=0.00").has_value());
}

TEST_CASE("a cell is under load when a pressure passes the threshold, or without PSI the load average the cores",
          "[load]") {
  const double above = kPressureThresholdPercent + 0.5, below = kPressureThresholdPercent - 0.5;
  // With PSI the load average does not count: runnable tasks of the cell itself raise it.
  CHECK(MachineLoad{0.1, above, 0.0}.under_load(4));
  CHECK(MachineLoad{0.1, 0.0, above}.under_load(4));
  CHECK(MachineLoad{0.1, std::nullopt, above}.under_load(4));
  CHECK_FALSE(MachineLoad{9.0, below, below}.under_load(4));
  // Without PSI: more runnable tasks than cores.
  CHECK(MachineLoad{4.5, std::nullopt, std::nullopt}.under_load(4));
  CHECK_FALSE(MachineLoad{3.9, std::nullopt, std::nullopt}.under_load(4));
}

TEST_CASE("a cell's load is the larger of each figure at its start and its end", "[load]") {
  const MachineLoad start{1.0, 20.0, std::nullopt}, end{3.0, 5.0, 2.0};
  const MachineLoad w = worst(start, end);
  CHECK(w.load_average == 3.0);
  CHECK(w.cpu_pressure == 20.0);
  CHECK(w.memory_pressure == 2.0);
  CHECK(w.describe() == "load 3.00, cpu pressure 20.0%, memory pressure 2.0%");
  CHECK(MachineLoad{0.5, std::nullopt, std::nullopt}.describe() == "load 0.50");
}

TEST_CASE("the load sampled here has PSI figures exactly where the kernel has /proc/pressure", "[load]") {
  const MachineLoad now = sample_load();
  CHECK(now.load_average >= 0);
  CHECK(now.cpu_pressure.has_value() == std::filesystem::exists("/proc/pressure/cpu"));
  CHECK(now.memory_pressure.has_value() == std::filesystem::exists("/proc/pressure/memory"));
}
