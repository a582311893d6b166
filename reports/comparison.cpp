#include "reports/comparison.h"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <set>

#include "reports/results.h"

namespace ctxbench::reports {
namespace {

bool has_repetitions(const Measurement& m) { return m.repetitions.size() >= 2; }

std::string too_few_repetitions(const Measurement& before, const Measurement& after, double smallest_p, double alpha) {
  if (!has_repetitions(before) || !has_repetitions(after)) {
    return fmt::format("{} and {} values: the runs need repetitions", before.repetitions.size(),
                       after.repetitions.size());
  }
  return fmt::format("{} and {} repetitions cannot reach p < {} (smallest p {:.3g})", before.repetitions.size(),
                     after.repetitions.size(), alpha, smallest_p);
}

void require_cells(const std::vector<CellRecord>& cells, std::int64_t run, const std::string& path) {
  if (cells.empty()) throw InputError(fmt::format("{}: run {} has no stored cells: nothing to compare", path, run));
  for (const auto& c : cells) {
    if (c.status == "ok") return;
  }
  throw InputError(fmt::format("{}: every cell of run {} failed ({} cells; first error: {}): nothing to compare", path,
                               run, cells.size(), cells.front().error));
}

CellPair pair_cells(const CellRecord& before, const CellRecord& after, double alpha) {
  CellPair pair{
      &before, &after, {}, before.engine_params != after.engine_params || before.task_params != after.task_params};
  for (const auto& b : after.measurements) {
    const auto* a = find_metric(before, b.metric);
    if (!a) continue;
    MetricDelta delta{b.metric, b.unit, metric_info(b.metric, b.unit), a, &b, std::nullopt, Verdict::not_judged, ""};
    if (delta.info.kind == MetricKind::time) judge_timing(delta, alpha);
    pair.deltas.push_back(std::move(delta));
  }
  return pair;
}

}  // namespace

double MetricDelta::ratio() const {
  const double a = before->value(), b = after->value();
  return a != 0 ? b / a : std::nan("");
}

CellIdentity identity(const CellRecord& c) { return {c.engine, c.task, c.context_length, c.depth, c.seed}; }

std::string describe(const CellRecord& c) {
  return fmt::format("{} / {} T={} depth={} seed={}", c.engine, c.task, c.context_length, c.depth, c.seed);
}

std::string parameter_changes(const CellRecord& before, const CellRecord& after) {
  std::vector<std::string> changes;
  const auto diff = [&](const char* what, const Json& a, const Json& b) {
    std::set<std::string> keys;
    for (const auto* params : {&a, &b}) {
      if (!params->is_object()) continue;
      for (const auto& [key, value] : params->items()) keys.insert(key);
    }
    for (const auto& key : keys) {
      const Json x = a.is_object() ? a.value(key, Json()) : Json(), y = b.is_object() ? b.value(key, Json()) : Json();
      if (x != y) changes.push_back(fmt::format("{} {} {} -> {}", what, key, x.dump(), y.dump()));
    }
  };
  diff("engine", before.engine_params, after.engine_params);
  diff("task", before.task_params, after.task_params);
  return fmt::format("{}", fmt::join(changes, ", "));
}

void judge_timing(MetricDelta& delta, double alpha) {
  const auto& a = *delta.before;
  const auto& b = *delta.after;
  const double smallest =
      smallest_two_sided_p(static_cast<int>(a.repetitions.size()), static_cast<int>(b.repetitions.size()));
  if (!has_repetitions(a) || !has_repetitions(b) || smallest >= alpha) {
    delta.verdict = Verdict::not_judged;
    delta.why_not_judged = too_few_repetitions(a, b, smallest, alpha);
    return;
  }
  delta.test = mann_whitney(a.repetitions, b.repetitions);
  if (delta.test->p_two_sided >= alpha)
    delta.verdict = Verdict::unchanged;
  else
    delta.verdict = delta.test->p_greater < delta.test->p_less ? Verdict::slower : Verdict::faster;
}

SlowdownTest significantly_slower(const Measurement& before, const Measurement& after, double max_slowdown,
                                  double alpha) {
  SlowdownTest out;
  const int n1 = static_cast<int>(before.repetitions.size()), n2 = static_cast<int>(after.repetitions.size());
  // One-sided: the smallest reachable p is half the two-sided one.
  const double smallest = smallest_two_sided_p(n1, n2) / 2;
  if (!has_repetitions(before) || !has_repetitions(after) || smallest >= alpha) {
    out.why_not_judged = too_few_repetitions(before, after, smallest, alpha);
    return out;
  }
  out.judged = true;
  out.p = mann_whitney(scaled(before.repetitions, 1 + max_slowdown), after.repetitions).p_greater;
  out.slower = out.p < alpha;
  return out;
}

Comparison compare_runs(Store& store, std::int64_t before, std::int64_t after, double alpha) {
  Comparison c;
  c.alpha = alpha;
  c.before_run = *store.run(before);
  c.after_run = *store.run(after);
  c.before_cells = store.cells(before);
  c.after_cells = store.cells(after);
  require_cells(c.before_cells, before, store.path());
  require_cells(c.after_cells, after, store.path());
  std::map<CellIdentity, const CellRecord*> by_identity;
  for (const auto& cell : c.before_cells) by_identity[identity(cell)] = &cell;
  for (const auto& cell : c.after_cells) {
    const auto it = by_identity.find(identity(cell));
    if (it == by_identity.end()) {
      c.only_after.push_back(&cell);
      continue;
    }
    const CellRecord& old = *it->second;
    by_identity.erase(it);
    if (old.status == "ok" && cell.status == "ok")
      c.pairs.push_back(pair_cells(old, cell, alpha));
    else if (old.status == "ok")
      c.newly_failed.push_back(&cell);
    else if (cell.status == "ok")
      c.fixed.push_back(&cell);
  }
  for (const auto& [key, cell] : by_identity) c.only_before.push_back(cell);
  if (c.pairs.empty() && c.newly_failed.empty()) {
    throw InputError(
        fmt::format("{}: runs {} and {} have no cells in common (cells are matched by engine and task "
                    "label, context length, depth and seed)",
                    store.path(), before, after));
  }
  return c;
}

std::string cells_timed_under_load(const Comparison& c) {
  std::vector<const CellRecord*> loaded;
  for (const auto& pair : c.pairs) {
    for (const auto* cell : {pair.before, pair.after}) {
      if (cell->under_load) loaded.push_back(cell);
    }
  }
  if (loaded.empty()) return "";
  const CellRecord& first = *loaded.front();
  return fmt::format("{} of {} matched cells (first: run {} {}: {})", loaded.size(), 2 * c.pairs.size(), first.run_id,
                     describe(first), first.load ? first.load->describe() : "");
}

std::string verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::slower: return "slower";
    case Verdict::faster: return "faster";
    case Verdict::unchanged: return "no significant change";
    case Verdict::not_judged: return "not judged";
  }
  return "";
}

bool is_headline(const MetricDelta& d, const CellRecord& cell) {
  if (d.metric == "speedup") return true;  // paired, over the suite's baseline engine
  // Timings of every repetition, judged or not (1-repetition runs are shown, marked "not judged"); the engine's
  // own single-valued split of a repeated cell is not.
  if (d.info.kind == MetricKind::time)
    return d.before->repetitions.size() >= 2 || d.after->repetitions.size() >= 2 || cell.repetitions == 1;
  if (d.info.kind == MetricKind::memory) return d.info.resident_memory;
  return d.info.kind == MetricKind::accuracy && accuracy_measurement(cell) == d.after;
}

std::string shown_value(const MetricDelta& d, const CellRecord& cell, const Measurement& m) {
  if (d.metric == "speedup") return paired_speedup_text(cell);
  return d.info.kind == MetricKind::accuracy ? fmt::format("{:.2f}%", accuracy_points(m))
                                             : format_value(m.value(), d.unit);
}

std::string change_text(const MetricDelta& d) {
  if (d.info.kind == MetricKind::accuracy) {
    const double points = accuracy_points(*d.after) - accuracy_points(*d.before);
    return points == 0 ? "=" : fmt::format("{:+.2f} pt", points);
  }
  if (d.after->value() == d.before->value()) return "=";
  const double r = d.ratio();
  return std::isnan(r) ? "-" : fmt::format("{:+.1f}%", 100 * (r - 1));
}

std::string judgement_text(const MetricDelta& d) {
  if (d.info.kind != MetricKind::time) return "";
  if (d.verdict == Verdict::not_judged) return "not judged: " + d.why_not_judged;
  return fmt::format("p={:.2g} {}", d.test->p_two_sided, verdict_name(d.verdict));
}

}  // namespace ctxbench::reports
