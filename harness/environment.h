#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ctxbench {

struct RunInfo;  // harness/store.h

// This machine and build: git commit of the source tree, compiler, CPU model, cores, memory.
RunInfo current_environment();

// A process as a run records its owner: the host, the pid, and the boot and start time of that pid, so that a
// pid reused after the owner died, or after a reboot, is not taken for it.
struct ProcessIdentity {
  std::string host;
  std::int64_t pid = 0;
  std::string start;  // "BOOT_ID:START_TICKS"; empty when /proc does not say
};

ProcessIdentity this_process();
// A process of this host (its start empty when there is no such process).
ProcessIdentity process_identity(std::int64_t pid);
std::string host_name();
// Whether that process still runs; nullopt when it cannot be told from here (another host, no start recorded).
std::optional<bool> process_alive(const ProcessIdentity& process);

}  // namespace ctxbench
