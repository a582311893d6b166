#include "harness/suite.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "core/slowdown.h"
#include "engines/engine.h"
#include "tasks/task.h"

namespace ctxbench {
namespace {

constexpr int kMaxContextLength = 1 << 24;

class Checker {
 public:
  explicit Checker(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw InputError(fmt::format("{}: {}: {}", source_, path, what));
  }
  std::string where(const std::string& path) const { return fmt::format("{}: {}", source_, path); }

  const Json& required(const Json& object, const std::string& key, const std::string& path) const {
    if (!object.contains(key)) fail(path + "." + key, "required field is missing");
    return object.at(key);
  }

  std::string string(const Json& value, const std::string& path) const {
    if (!value.is_string()) fail(path, "expected a string, got " + value.dump());
    return value.get<std::string>();
  }

 private:
  std::string source_;
};

// A grid is a list of numbers, or {"linspace": [from, to, count]}, or {"sigmoid": [from, to, count]}.
std::vector<double> parse_grid(const Checker& c, const Json& value, const std::string& path) {
  if (value.is_array()) {
    std::vector<double> out;
    for (std::size_t i = 0; i < value.size(); ++i) {
      if (!value[i].is_number()) c.fail(fmt::format("{}[{}]", path, i), "expected a number, got " + value[i].dump());
      out.push_back(value[i].get<double>());
    }
    if (out.empty()) c.fail(path, "expected a non-empty list");
    return out;
  }
  if (value.is_object() && value.size() == 1) {
    // value.begin() lives as long as `value`; a structured binding into items() would dangle.
    const std::string kind = value.begin().key();
    const Json& spec = value.begin().value();
    const bool ok = spec.is_array() && spec.size() == 3 && spec[0].is_number() && spec[1].is_number() &&
                    spec[2].is_number_integer() && spec[2].get<int>() >= 1;
    if ((kind == "linspace" || kind == "sigmoid") && ok) {
      const double from = spec[0].get<double>(), to = spec[1].get<double>();
      const int count = spec[2].get<int>();
      if (kind == "sigmoid") return sigmoid_depths(from, to, count);
      std::vector<double> out;
      for (int i = 0; i < count; ++i) out.push_back(count == 1 ? from : from + (to - from) * i / (count - 1));
      return out;
    }
  }
  c.fail(path, "expected a list of numbers, {\"linspace\": [from, to, count]} or {\"sigmoid\": [from, to, count]}");
}

// Rules between parameters (one interval per pruning stage, sinks a multiple of the block, ...) are checked
// when an engine is made: making each one here reports them before any cell runs, not once per cell.
void check_engine_params(const Checker& c, const engines::EngineInfo& info, const Json& params,
                         const std::string& path) {
  if (!info.make) return;
  try {
    info.make(params);
  } catch (const InputError& e) {
    c.fail(path, e.what());
  }
}

std::vector<int> parse_lengths(const Checker& c, const Json& value, const std::string& path) {
  std::vector<int> lengths;
  for (std::size_t i = 0; const double length : parse_grid(c, value, path)) {
    if (length != std::floor(length) || length < 1 || length > kMaxContextLength) {
      c.fail(fmt::format("{}[{}]", path, i),
             fmt::format("expected an integer in [1, {}], got {}", kMaxContextLength, length));
    }
    lengths.push_back(static_cast<int>(length));
    ++i;
  }
  return lengths;
}

std::vector<double> parse_depths(const Checker& c, const Json& value, const std::string& path) {
  const std::vector<double> depths = parse_grid(c, value, path);
  for (std::size_t i = 0; i < depths.size(); ++i) {
    if (depths[i] < 0 || depths[i] > 100) c.fail(fmt::format("{}[{}]", path, i), "expected a percentage in [0, 100]");
  }
  return depths;
}

std::vector<ComponentSpec> parse_components(const Checker& c, const Json& doc, const std::string& field, bool engines) {
  const std::string path = "$." + field;
  const Json& list = c.required(doc, field, "$");
  if (!list.is_array() || list.empty()) c.fail(path, "expected a non-empty list");
  std::vector<ComponentSpec> out;
  std::set<std::string> labels;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string item = fmt::format("{}[{}]", path, i);
    const Json& entry = list[i];
    const std::set<std::string> fields =
        engines ? std::set<std::string>{"name", "label", "params"}
                : std::set<std::string>{"name", "label", "params", "context_lengths", "depths"};
    if (!entry.is_object())
      c.fail(item, fmt::format("expected an object with \"name\" (fields: {})", fmt::join(fields, ", ")));
    for (const auto& [key, value] : entry.items()) {
      if (!fields.contains(key))
        c.fail(item + "." + key, fmt::format("unknown field (expected one of {})", fmt::join(fields, ", ")));
    }
    ComponentSpec spec;
    spec.method = c.string(c.required(entry, "name", item), item + ".name");
    spec.label = entry.contains("label") ? c.string(entry.at("label"), item + ".label") : spec.method;
    const Json given = entry.value("params", Json::object());
    if (engines) {
      const auto& info = engines::EngineRegistry::instance().get(spec.method, c.where(item + ".name"));
      spec.params = resolve_params(info.params, given, c.where(item + ".params"));
      check_engine_params(c, info, spec.params, item + ".params");
    } else {
      const auto& info = tasks::TaskRegistry::instance().get(spec.method, c.where(item + ".name"));
      spec.params = resolve_params(info.params, given, c.where(item + ".params"));
      if (entry.contains("context_lengths"))
        spec.context_lengths = parse_lengths(c, entry.at("context_lengths"), item + ".context_lengths");
      if (entry.contains("depths")) spec.depths = parse_depths(c, entry.at("depths"), item + ".depths");
    }
    if (!labels.insert(spec.label).second) {
      c.fail(item + ".label",
             fmt::format("label \"{}\" is used twice; give each entry a distinct \"label\"", spec.label));
    }
    out.push_back(std::move(spec));
  }
  return out;
}

std::optional<double> optional_fraction(const Checker& c, const Json& object, const std::string& key,
                                        const std::string& path) {
  if (!object.contains(key)) return std::nullopt;
  const Json& v = object.at(key);
  if (!v.is_number() || v.get<double>() < 0) c.fail(path + "." + key, "expected a number >= 0, got " + v.dump());
  return v.get<double>();
}

// "max_slowdown": a fraction, or a string as gate --max-slowdown takes it ("5%", "0.05", "off").
std::optional<double> optional_slowdown(const Checker& c, const Json& thresholds) {
  if (!thresholds.contains("max_slowdown") || !thresholds.at("max_slowdown").is_string())
    return optional_fraction(c, thresholds, "max_slowdown", "$.thresholds");
  return parse_slowdown(thresholds.at("max_slowdown").get<std::string>(), c.where("$.thresholds.max_slowdown"));
}

std::uint64_t fnv1a(const std::string& text) {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char ch : text) hash = (hash ^ ch) * 0x100000001b3ull;
  return hash;
}

}  // namespace

std::vector<double> sigmoid_depths(double from, double to, int count) {
  std::vector<double> out;
  for (int i = 0; i < count; ++i) {
    const double x = count == 1 ? from : from + (to - from) * i / (count - 1);
    if (x == 0.0 || x == 100.0) {
      out.push_back(x);
      continue;
    }
    const double y = 100.0 / (1.0 + std::exp(-0.1 * (x - 50.0)));
    out.push_back(std::round(y * 1000.0) / 1000.0);
  }
  return out;
}

// The engine speedups are measured against: the one named by "baseline", else the one labelled "dense" (as the
// HTML report's charts), else the first dense engine, else none.
std::string parse_baseline(const Checker& c, const Json& doc, const std::vector<ComponentSpec>& engines) {
  if (!doc.contains("baseline")) {
    const auto labelled =
        std::find_if(engines.begin(), engines.end(), [](const auto& e) { return e.label == "dense"; });
    const auto dense = std::find_if(engines.begin(), engines.end(), [](const auto& e) { return e.method == "dense"; });
    return labelled != engines.end() ? labelled->label : dense != engines.end() ? dense->label : "";
  }
  const std::string label = c.string(doc.at("baseline"), "$.baseline");
  std::vector<std::string> labels;
  for (const auto& engine : engines) labels.push_back(engine.label);
  if (std::find(labels.begin(), labels.end(), label) == labels.end())
    c.fail("$.baseline", fmt::format("expected the label of one of the suite's engines ({}), got \"{}\"",
                                     fmt::join(labels, ", "), label));
  return label;
}

Suite parse_suite(const Json& doc, const std::string& source) {
  const Checker c(source);
  if (!doc.is_object()) c.fail("$", "expected a JSON object");
  static const std::set<std::string> known = {"name",   "description", "engines",     "tasks",  "context_lengths",
                                              "depths", "seeds",       "repetitions", "warmup", "thresholds",
                                              "limits", "baseline",    "paired"};
  for (const auto& [key, value] : doc.items()) {
    if (!known.contains(key))
      c.fail("$." + key, fmt::format("unknown field (expected one of {})", fmt::join(known, ", ")));
  }
  Suite suite;
  suite.source = source;
  suite.document = doc;
  suite.name = c.string(c.required(doc, "name", "$"), "$.name");
  if (doc.contains("description")) suite.description = c.string(doc.at("description"), "$.description");
  suite.engines = parse_components(c, doc, "engines", true);
  suite.baseline = parse_baseline(c, doc, suite.engines);
  if (doc.contains("paired")) {
    if (!doc.at("paired").is_boolean()) c.fail("$.paired", "expected true or false, got " + doc.at("paired").dump());
    suite.paired = doc.at("paired").get<bool>();
  }
  suite.tasks = parse_components(c, doc, "tasks", false);
  suite.context_lengths = parse_lengths(c, c.required(doc, "context_lengths", "$"), "$.context_lengths");
  suite.depths = doc.contains("depths") ? parse_depths(c, doc.at("depths"), "$.depths") : std::vector<double>{50.0};
  const Json seeds = doc.value("seeds", Json::array({0}));
  if (!seeds.is_array() || seeds.empty()) c.fail("$.seeds", "expected a non-empty list of non-negative integers");
  for (std::size_t i = 0; i < seeds.size(); ++i) {
    if (!seeds[i].is_number_integer() || seeds[i].get<std::int64_t>() < 0)
      c.fail(fmt::format("$.seeds[{}]", i), "expected a non-negative integer, got " + seeds[i].dump());
    suite.seeds.push_back(seeds[i].get<std::uint64_t>());
  }
  const Json reps = doc.value("repetitions", Json(1));
  if (!reps.is_number_integer() || reps.get<int>() < 1 || reps.get<int>() > 1000) {
    c.fail("$.repetitions", "expected an integer in [1, 1000], got " + reps.dump());
  }
  suite.repetitions = reps.get<int>();
  const Json warmup = doc.value("warmup", Json(1));
  if (!warmup.is_number_integer() || warmup.get<int>() < 0 || warmup.get<int>() > 1000) {
    c.fail("$.warmup", "expected an integer in [0, 1000], got " + warmup.dump());
  }
  suite.warmup = warmup.get<int>();
  if (doc.contains("thresholds")) {
    const Json& t = doc.at("thresholds");
    if (!t.is_object()) c.fail("$.thresholds", "expected an object with max_slowdown and/or max_accuracy_drop");
    for (const auto& [key, value] : t.items()) {
      if (key != "max_slowdown" && key != "max_accuracy_drop")
        c.fail("$.thresholds." + key, "unknown field (expected max_slowdown, max_accuracy_drop)");
    }
    suite.thresholds.max_slowdown = optional_slowdown(c, t);
    suite.thresholds.max_accuracy_drop = optional_fraction(c, t, "max_accuracy_drop", "$.thresholds");
  }
  if (doc.contains("limits")) {
    const Json& l = doc.at("limits");
    if (!l.is_object()) c.fail("$.limits", "expected an object with cell_seconds and/or cell_memory_mb");
    for (const auto& [key, value] : l.items()) {
      if (key != "cell_seconds" && key != "cell_memory_mb")
        c.fail("$.limits." + key, "unknown field (expected cell_seconds, cell_memory_mb)");
    }
    suite.limits.cell_seconds = optional_fraction(c, l, "cell_seconds", "$.limits").value_or(0);
    suite.limits.cell_memory_mb = optional_fraction(c, l, "cell_memory_mb", "$.limits").value_or(0);
  }
  return suite;
}

Suite load_suite(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(fmt::format("{}: cannot open the suite file", path));
  std::stringstream text;
  text << in.rdbuf();
  Json doc;
  try {
    doc = Json::parse(text.str());
  } catch (const Json::exception& e) {  // parse_error, or out_of_range: a number beyond a double
    throw InputError(fmt::format("{}: not valid JSON: {}", path, e.what()));
  }
  return parse_suite(doc, path);
}

std::vector<Cell> Suite::cells() const {
  std::vector<Cell> out;
  for (const auto& task : tasks) {
    for (const int length : task.context_lengths.empty() ? context_lengths : task.context_lengths) {
      for (const double depth : task.depths.empty() ? depths : task.depths) {
        for (const auto& engine : engines) {
          for (const auto seed : seeds) {
            Cell cell{"", engine, task, length, depth, seed, repetitions, warmup};
            cell.key = cell_key(cell);
            out.push_back(std::move(cell));
          }
        }
      }
    }
  }
  return out;
}

Json canonical_cell(const Cell& cell) {
  // nlohmann's object keeps keys sorted, so the dump is canonical.
  return Json{
      {"engine", {{"label", cell.engine.label}, {"method", cell.engine.method}, {"params", cell.engine.params}}},
      {"task", {{"label", cell.task.label}, {"method", cell.task.method}, {"params", cell.task.params}}},
      {"context_length", cell.context_length},
      {"depth", cell.depth},
      {"seed", cell.seed},
      {"repetitions", cell.repetitions}};
}

const ParamSchema* engine_schema(const std::string& method) {
  const auto* info = engines::EngineRegistry::instance().find(method);
  return info ? &info->params : nullptr;
}

std::string describe_cell(const Cell& cell) {
  return fmt::format("{} / {} T={} depth={} seed={}", cell.engine.label, cell.task.label, cell.context_length,
                     cell.depth, cell.seed);
}

namespace {

// "2 cells added (first: dense / niah T=4096 depth=50 seed=0)" for the cells of `a` missing from `b`.
std::string cells_missing(const std::vector<Cell>& a, const std::vector<Cell>& b, const char* how) {
  std::set<std::string> keys;
  for (const auto& cell : b) keys.insert(cell.key);
  std::vector<const Cell*> missing;
  for (const auto& cell : a) {
    if (!keys.contains(cell.key)) missing.push_back(&cell);
  }
  if (missing.empty()) return "";
  return fmt::format("{} cells {} (first: {})", missing.size(), how, describe_cell(*missing.front()));
}

}  // namespace

std::string suite_differences(const Json& stored, const Suite& suite) {
  std::vector<std::string> out;
  std::set<std::string> fields;
  for (const auto* doc : {&stored, &suite.document}) {
    if (!doc->is_object()) continue;
    for (const auto& [key, value] : doc->items()) fields.insert(key);
  }
  std::vector<std::string> changed;
  for (const auto& field : fields) {
    if (!stored.is_object() || stored.value(field, Json()) != suite.document.value(field, Json()))
      changed.push_back(field);
  }
  if (changed.empty()) return "";
  std::vector<Cell> before;
  try {
    before = parse_suite(stored, "the stored suite").cells();
  } catch (const InputError& e) {
    out.push_back(fmt::format("the stored suite no longer loads ({})", e.what()));
  }
  const auto now = suite.cells();
  for (const auto& text : {cells_missing(now, before, "added"), cells_missing(before, now, "removed")}) {
    if (!text.empty() && !before.empty()) out.push_back(text);
  }
  out.push_back(fmt::format("changed fields: {}", fmt::join(changed, ", ")));
  return fmt::format("{}", fmt::join(out, "; "));
}

std::string cell_key(const Cell& cell) { return fmt::format("{:016x}", fnv1a(canonical_cell(cell).dump())); }

}  // namespace ctxbench
