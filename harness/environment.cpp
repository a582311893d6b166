#include "harness/environment.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <thread>

#include "core/source_tree.h"

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

}  // namespace

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
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  env.host = host;
  return env;
}

}  // namespace ctxbench
