#include "reports/metrics.h"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <map>

#include "tasks/task.h"

namespace ctxbench::reports {
namespace {

const std::map<std::string, MetricInfo>& known_metrics() {
  using K = MetricKind;
  static const std::map<std::string, MetricInfo> known = {
      {"prefill_seconds", {"Prefill time", K::time, false, "prefill"}},
      {"decode_seconds_per_step", {"Decode time per step", K::time, false, "decode"}},
      {"decode_seconds_per_token", {"Decode time per token", K::time, false, "decode"}},
      {"first_token_seconds", {"Time to first token", K::time, false, ""}},
      {"observe_seconds", {"Observation-window time", K::time, false, ""}},
      {"mask_seconds", {"Mask selection time (last repetition)", K::time, false, ""}},
      {"attention_seconds", {"Attention time (last repetition)", K::time, false, ""}},
      {"keys_attended_mean", {"Keys attended per query (mean)", K::count, false, ""}},
      {"keys_attended_max", {"Keys attended per query (max)", K::count, false, ""}},
      {"kv_bytes_read", {"KV bytes read", K::memory, false, ""}},
      {"kv_bytes_resident", {"KV cache resident", K::memory, true, ""}},
      {"kv_bytes_full", {"KV cache of full attention", K::memory, false, ""}},
      {"device_bytes", {"Device memory", K::memory, true, ""}},
      {"offload_hit_ratio", {"Offload cache hit ratio", K::other, false, ""}},
      {"output_rel_error", {"Output relative error", K::error, false, ""}},
      {"needle_recall", {"Needle recall", K::accuracy, false, ""}},
      {"attention_recall", {"Attention mass recall", K::accuracy, false, ""}},
      {"samples", {"Samples", K::count, false, ""}},
      {"prompt_tokens", {"Prompt tokens", K::count, false, ""}},
      {"generated_tokens", {"Generated tokens", K::count, false, ""}},
      {"attention_share", {"Attention share of generation time", K::other, false, ""}},
  };
  return known;
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
  if (const auto it = known_metrics().find(name); it != known_metrics().end()) return it->second;
  MetricInfo info{readable(name), classify(name, unit), false, ""};
  info.resident_memory = info.kind == MetricKind::memory &&
                         (contains(name, "resident") || contains(name, "device") || contains(name, "peak"));
  return info;
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
  if (unit == "ratio") return fmt::format("{:.4g}", value);
  if (unit.empty()) return fmt::format("{:.4g}", value);
  return fmt::format("{:.4g} {}", value, unit);
}

std::string kind_name(MetricKind kind) {
  switch (kind) {
    case MetricKind::time: return "time";
    case MetricKind::memory: return "memory";
    case MetricKind::accuracy: return "accuracy";
    case MetricKind::error: return "error";
    case MetricKind::count: return "count";
    case MetricKind::other: return "other";
  }
  return "other";
}

}  // namespace ctxbench::reports
