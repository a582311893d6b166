#include "core/command.h"

#include <fmt/format.h>

namespace ctxbench {

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& options,
           const std::set<std::string>& flags) {
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.rfind("--", 0) != 0 || a == "--") {
      positionals_.push_back(a);
      continue;
    }
    const auto eq = a.find('=');
    const std::string name = a.substr(0, eq);
    if (flags.contains(name) && eq == std::string::npos) {
      flags_.insert(name);
    } else if (options.contains(name)) {
      if (eq != std::string::npos) {
        options_.emplace(name, a.substr(eq + 1));
      } else if (i + 1 < argv.size()) {
        options_.emplace(name, argv[++i]);
      } else {
        throw InputError(fmt::format("option {} needs a value", name));
      }
    } else {
      std::vector<std::string> known(options.begin(), options.end());
      known.insert(known.end(), flags.begin(), flags.end());
      throw InputError(fmt::format("unknown option {} (known: {})", name,
                                   known.empty() ? "none" : fmt::format("{}", fmt::join(known, " "))));
    }
  }
}

std::string Args::option(const std::string& name, const std::string& fallback) const {
  const auto it = options_.find(name);
  return it == options_.end() ? fallback : it->second;
}

std::vector<std::string> Args::all(const std::string& name) const {
  std::vector<std::string> out;
  for (auto [it, end] = options_.equal_range(name); it != end; ++it) out.push_back(it->second);
  return out;
}

void Args::expect_positionals(std::size_t min, std::size_t max, const std::string& usage) const {
  if (positionals_.size() < min || positionals_.size() > max) throw InputError("usage: " + usage);
}

}  // namespace ctxbench
