// A name -> entry registry. Engines, tasks and reporters register themselves from their own file with one
// line (a static Registrar), so adding one touches nothing else. The libraries are linked whole-archive so
// that these registrations are not dropped by the linker.
#pragma once

#include <fmt/format.h>

#include <map>
#include <string>
#include <vector>

#include "core/params.h"

namespace ctxbench {

template <typename Entry>
class Registry {
 public:
  static Registry& instance() {
    static Registry registry;
    return registry;
  }

  void add(Entry entry) {
    const std::string name = entry.name;
    if (!entries_.emplace(name, std::move(entry)).second) {
      throw std::logic_error("registered twice: " + name);
    }
  }

  const Entry* find(const std::string& name) const {
    const auto it = entries_.find(name);
    return it == entries_.end() ? nullptr : &it->second;
  }

  // Throws InputError naming `where` and the registered names.
  const Entry& get(const std::string& name, const std::string& where) const {
    if (const Entry* entry = find(name)) return *entry;
    throw InputError(fmt::format("{}: unknown name \"{}\" (registered: {})", where, name, fmt::join(names(), ", ")));
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, entry] : entries_) out.push_back(name);
    return out;
  }

  const std::map<std::string, Entry>& entries() const { return entries_; }

 private:
  std::map<std::string, Entry> entries_;
};

template <typename Entry>
struct Registrar {
  explicit Registrar(Entry entry) { Registry<Entry>::instance().add(std::move(entry)); }
};

}  // namespace ctxbench
