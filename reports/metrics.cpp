#include "reports/metrics.h"

#include <fmt/format.h>

#include <array>
#include <cmath>

#include "core/metrics.h"
#include "tasks/task.h"

namespace ctxbench::reports {
namespace {

// The headline timings, charted as speedups per phase.
std::string headline_phase(const std::string& name) {
  if (name == "prefill_seconds") return "prefill";
  if (name == "decode_seconds_per_step" || name == "decode_seconds_per_token") return "decode";
  return "";
}

bool contains(const std::string& text, const char* part) { return text.find(part) != std::string::npos; }

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "qa_f1_score" -> "Qa f1 score".
std::string readable(const std::string& name) {
  std::string out = name;
  for (char& ch : out) ch = ch == '_' ? ' ' : ch;
  if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}

MetricKind kind_of(const Metric& metric) {
  if (metric.unit == "s") return MetricKind::time;
  if (metric.unit == "B") return MetricKind::memory;
  const bool fraction = metric.unit == "%" || metric.unit == "ratio";
  if (metric.better == Better::higher && fraction) return MetricKind::accuracy;
  if (metric.better == Better::lower) return MetricKind::error;
  if (metric.better == Better::neither && !fraction) return MetricKind::count;
  return MetricKind::other;
}

// A name the catalogue does not know (a database from an older build): classified by its unit and name.
MetricKind classify(const std::string& name, const std::string& unit) {
  if (unit == "s" || ends_with(name, "_seconds")) return MetricKind::time;
  if (unit == "B" || contains(name, "bytes")) return MetricKind::memory;
  if (ends_with(name, "_error")) return MetricKind::error;
  for (const char* word : {"accuracy", "score", "recall", "match", "f1", "rouge", "exact"}) {
    if (contains(name, word)) return MetricKind::accuracy;
  }
  if (unit == "count" || unit == "tokens" || unit == "keys") return MetricKind::count;
  return MetricKind::other;
}

}  // namespace

MetricInfo metric_info(const std::string& name, const std::string& unit) {
  const Metric* catalogued = MetricCatalogue::instance().find(name);
  MetricInfo info{catalogued ? catalogued->display : readable(name),
                  catalogued ? kind_of(*catalogued) : classify(name, unit), false, headline_phase(name)};
  info.resident_memory = info.kind == MetricKind::memory &&
                         (contains(name, "resident") || contains(name, "device") || contains(name, "peak"));
  return info;
}

double across_cells(const std::string& metric, std::vector<double> values) {
  const Metric* catalogued = MetricCatalogue::instance().find(metric);
  return combine(catalogued ? catalogued->across_cells : Combine::mean, std::move(values));
}

const Measurement* find_metric(const CellRecord& cell, const std::string& name) {
  for (const auto& m : cell.measurements) {
    if (m.metric == name) return &m;
  }
  return nullptr;
}

const Measurement* accuracy_measurement(const CellRecord& cell) {
  if (const auto* task = tasks::TaskRegistry::instance().find(cell.task_method); task && task->make_text_samples) {
    if (const auto* m = find_metric(cell, task->metric)) return m;
  }
  if (const auto* m = find_metric(cell, "needle_recall")) return m;
  for (const auto& m : cell.measurements) {
    if (metric_info(m.metric, m.unit).kind == MetricKind::accuracy) return &m;
  }
  return nullptr;
}

double accuracy_points(const Measurement& m) { return m.unit == "%" ? m.value() : 100.0 * m.value(); }

std::string format_value(double value, const std::string& unit) {
  if (std::isnan(value)) return "-";
  if (unit == "s") {
    const double magnitude = std::fabs(value);
    if (magnitude >= 1 || magnitude == 0) return fmt::format("{:.3g} s", value);
    if (magnitude >= 1e-3) return fmt::format("{:.3g} ms", value * 1e3);
    if (magnitude >= 1e-6) return fmt::format("{:.3g} µs", value * 1e6);
    return fmt::format("{:.3g} ns", value * 1e9);
  }
  if (unit == "B") {
    static const std::array<const char*, 5> units = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = value;
    std::size_t i = 0;
    while (std::fabs(v) >= 1024 && i + 1 < units.size()) {
      v /= 1024;
      ++i;
    }
    return i == 0 ? fmt::format("{:.0f} B", v) : fmt::format("{:.3g} {}", v, units[i]);
  }
  if (unit == "%") return fmt::format("{:.4g}%", value);
  if (unit == "x") return fmt::format("{:.3g}×", value);
  if (unit == "ratio") return fmt::format("{:.4g}", value);
  if (unit.empty()) return fmt::format("{:.4g}", value);
  return fmt::format("{:.4g} {}", value, unit);
}

std::string speedup_with_interval(double speedup, double low, double high) {
  return fmt::format("{:.3g}× [{:.3g}–{:.3g}]", speedup, low, high);
}

std::string paired_speedup_text(const CellRecord& cell) {
  const auto *speedup = find_metric(cell, "speedup"), *low = find_metric(cell, "speedup_low"),
             *high = find_metric(cell, "speedup_high");
  if (!speedup || !low || !high) return "";
  return speedup_with_interval(speedup->value(), low->value(), high->value());
}

}  // namespace ctxbench::reports
