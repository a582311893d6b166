#include "harness/environment.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/source_tree.h"
#include "harness/store.h"

namespace ctxbench {
namespace {

std::string command_output(const std::string& command) {
  std::string out;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    std::array<char, 256> buffer{};
    while (fgets(buffer.data(), buffer.size(), pipe)) out += buffer.data();
    pclose(pipe);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string proc_field(const std::string& file, const std::string& field) {
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field, 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "";
}

std::string first_line(const std::string& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

// Field 22 of /proc/PID/stat, the process's start in clock ticks since boot; empty when there is no such process.
std::string start_ticks(std::int64_t pid) {
  const std::string stat = first_line("/proc/" + std::to_string(pid) + "/stat");
  const auto after_name = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (after_name == std::string::npos) return "";
  std::istringstream fields(stat.substr(after_name + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
  }
  return field;
}

std::string process_start(std::int64_t pid) {
  const std::string boot = first_line("/proc/sys/kernel/random/boot_id"), ticks = start_ticks(pid);
  return boot.empty() || ticks.empty() ? "" : boot + ":" + ticks;
}

}  // namespace

std::string host_name() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return host;
}

ProcessIdentity process_identity(std::int64_t pid) { return {host_name(), pid, process_start(pid)}; }

ProcessIdentity this_process() { return process_identity(getpid()); }

std::optional<bool> process_alive(const ProcessIdentity& process) {
  if (process.host != host_name() || process.start.empty()) return std::nullopt;
  return process_start(process.pid) == process.start;
}

RunInfo current_environment() {
  RunInfo env;
  const std::string git = "git -C '" + source_tree().string() + "' ";
  env.git_commit = command_output(git + "rev-parse HEAD 2>/dev/null");
  if (!env.git_commit.empty() && !command_output(git + "status --porcelain --untracked-files=no 2>/dev/null").empty()) {
    env.git_commit += "-dirty";
  }
  env.build_type = CTXBENCH_BUILD_TYPE;
  env.compiler = CTXBENCH_COMPILER;
  env.cpu_model = proc_field("/proc/cpuinfo", "model name");
  env.cores = static_cast<int>(std::thread::hardware_concurrency());
  const std::string mem = proc_field("/proc/meminfo", "MemTotal");
  env.memory_bytes = mem.empty() ? 0 : std::stoll(mem) * 1024;
  env.host = host_name();
  return env;
}

}  // namespace ctxbench
