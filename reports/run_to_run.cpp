#include "reports/run_to_run.h"

#include <fmt/format.h>

#include <map>

namespace ctxbench::reports {
namespace {

Direction direction_of(const MetricDelta& d) {
  if (d.info.kind == MetricKind::time) {
    if (d.verdict == Verdict::slower) return Direction::worse;
    if (d.verdict == Verdict::faster) return Direction::better;
  }
  if (d.info.kind == MetricKind::accuracy && d.after->value() != d.before->value())
    return d.after->value() < d.before->value() ? Direction::worse : Direction::better;
  return Direction::neither;
}

std::string side(const MetricDelta& d, const CellRecord& cell, const Measurement& m) {
  return d.info.kind == MetricKind::time ? timing_with_spread(m) : shown_value(d, cell, m);
}

std::vector<std::string> notes_of(const Comparison& c) {
  std::vector<std::string> notes;
  std::map<std::string, std::string> differing;
  for (const auto& pair : c.pairs) {
    if (pair.params_differ)
      differing[pair.after->engine + " / " + pair.after->task] = parameter_changes(*pair.before, *pair.after);
  }
  for (const auto& [what, changes] : differing)
    notes.push_back(fmt::format("{} has other parameters: {}", what, changes));
  for (const auto* cell : c.newly_failed)
    notes.push_back(fmt::format("newly failing: {}: {}", describe(*cell), cell->error));
  for (const auto* cell : c.fixed) notes.push_back("now passing: " + describe(*cell));
  if (!c.only_before.empty() || !c.only_after.empty())
    notes.push_back(fmt::format("{} cells only in run {}, {} only in run {}", c.only_before.size(), c.before_run.id,
                                c.only_after.size(), c.after_run.id));
  if (const auto loaded = cells_timed_under_load(c); !loaded.empty())
    notes.push_back("timed under load: " + loaded + "; timing changes may be the load's");
  return notes;
}

}  // namespace

std::string timing_with_spread(const Measurement& m) {
  if (m.repetitions.size() < 2) return format_value(m.value(), m.unit);
  const auto q = quartiles(m.repetitions);
  return fmt::format("{} (IQR {}–{}, {} reps)", format_value(m.value(), m.unit), format_value(q.q1, m.unit),
                     format_value(q.q3, m.unit), m.repetitions.size());
}

RunToRun run_to_run(Store& store, std::int64_t before, std::int64_t after, double alpha) {
  RunToRun out{compare_runs(store, before, after, alpha), {}, {}};
  for (const auto& pair : out.comparison.pairs) {
    for (const auto& d : pair.deltas) {
      if (!is_headline(d, *pair.after)) continue;
      out.rows.push_back({pair.after, d.info.label, side(d, *pair.before, *d.before), side(d, *pair.after, *d.after),
                          change_text(d), judgement_text(d), direction_of(d)});
    }
  }
  out.notes = notes_of(out.comparison);
  return out;
}

}  // namespace ctxbench::reports
