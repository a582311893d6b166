// The machine's load while a cell ran: a timing taken while other work competed for the CPU or memory does not
// measure the method, and nothing else in the numbers says so.
#pragma once

#include <optional>
#include <string>

namespace ctxbench {

// Above this share of the last 10 s in which some runnable task waited for a CPU (or for memory), a cell counts
// as timed under load. The cell's own threads on their own cores wait for nothing, so waiting means another
// process competed with them.
inline constexpr double kPressureThresholdPercent = 10.0;

struct MachineLoad {
  double load_average = 0;                // 1-minute load average
  std::optional<double> cpu_pressure;     // PSI "some avg10" of /proc/pressure/cpu, percent; none without PSI
  std::optional<double> memory_pressure;  // the same of /proc/pressure/memory

  // With PSI: either pressure above the threshold. Without: more runnable tasks on average than `cores`.
  bool under_load(int cores) const;
  // The same on this machine's cores: what the runner records with each cell.
  bool under_load_here() const;
  std::string describe() const;  // "load 5.20, cpu pressure 51.0%, memory pressure 0.0%"
};

// The "some avg10=" figure of a PSI file's text ("some avg10=1.50 avg60=... total=..."), none when the text is
// not of that form.
std::optional<double> pressure_some_avg10(const std::string& psi_text);

// The load now. A cell records the larger of each figure at its start and at its end (`worst`).
MachineLoad sample_load();
MachineLoad worst(const MachineLoad& a, const MachineLoad& b);

}  // namespace ctxbench
