#include "reports/html_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "core/metrics.h"
#include "reports/metrics.h"
#include "reports/results.h"
#include "reports/run_to_run.h"
#include "reports/settings.h"
#include "reports/stats.h"
#include "reports/svg.h"

namespace ctxbench::reports {
namespace {

const char* kStyle = R"css(
:root { --ink: #1f2933; --muted: #616e7c; --line: #e4e7eb; --card: #fff; --accent: #4e79a7; }
* { box-sizing: border-box; }
body { margin: 0; background: #f3f4f6; color: var(--ink);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header.page { background: #1f2933; color: #f5f7fa; padding: 18px 32px; }
header.page h1 { margin: 0; font-size: 22px; font-weight: 600; letter-spacing: .2px; }
header.page p { margin: 4px 0 0; color: #cbd2d9; font-size: 13px; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 24px 48px; }
section.run > h2 { font-size: 20px; margin: 18px 0 10px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 18px 16px;
        margin: 0 0 16px; box-shadow: 0 1px 2px rgba(16,24,40,.04); }
.card > h3 { margin: 0 0 4px; font-size: 16px; }
.card > p.note { margin: 0 0 10px; color: var(--muted); font-size: 13px; }
dl.meta { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 6px 22px; margin: 0; }
dl.meta div { display: flex; gap: 8px; min-width: 0; }
dl.meta dt { color: var(--muted); min-width: 88px; }
dl.meta dd { margin: 0; overflow-wrap: anywhere; font-variant-numeric: tabular-nums; }
.notice { padding: 10px 14px; border-radius: 6px; background: #fff8e1; border: 1px solid #f5d67b; }
.notice.bad { background: #fdecec; border-color: #f3b3b3; }
.figures { display: flex; flex-wrap: wrap; gap: 12px 22px; align-items: flex-start; }
figure { margin: 0; }
figure.chart-figure { flex: 1 1 520px; max-width: 600px; }
figcaption { font-weight: 600; font-size: 13.5px; margin: 2px 0 4px; }
ul.legend { list-style: none; margin: 0 0 2px; padding: 0; display: flex; flex-wrap: wrap; gap: 2px 14px;
            font-size: 12.5px; color: var(--muted); }
ul.legend li { display: flex; align-items: center; gap: 5px; }
.swatch { display: inline-block; width: 14px; height: 4px; border-radius: 2px; }
.swatch.dashed { background: repeating-linear-gradient(90deg, #7b8794 0 4px, transparent 4px 7px); }
svg { display: block; max-width: 100%; height: auto; font-size: 11.5px; }
svg .grid { stroke: #edf0f3; }
svg .axis, svg .tick-mark { stroke: #9aa5b1; }
svg .tick { fill: #52606d; }
svg .axis-label { fill: #3e4c59; font-size: 12px; }
svg .series path { fill: none; stroke-width: 2.2; stroke-linejoin: round; }
svg .series circle { stroke: #fff; stroke-width: 1.5; }
svg .series path.error-bar { fill: none; stroke-width: 1.3; }
svg .series.bars rect { stroke: none; }
svg .reference { stroke: #7b8794; stroke-width: 1.4; stroke-dasharray: 5 4; }
svg .empty { fill: var(--muted); }
svg .front-line { fill: none; stroke: #3e4c59; stroke-width: 1.6; stroke-dasharray: 6 3; }
svg .point circle, svg .point path { stroke-width: 2; }
svg .point circle { stroke: #fff; }
svg .point.front circle { stroke: #1f2933; }
svg .point-label { fill: #3e4c59; font-size: 11px; }
svg.heatmap .cell rect { stroke: #fff; stroke-width: 1; }
svg.heatmap .cell text { fill: #1f2933; font-size: 10.5px; }
svg.heatmap .scale { stroke: #d5dae0; }
table { border-collapse: collapse; font-size: 12.5px; font-variant-numeric: tabular-nums; margin: 4px 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #f7f8fa; font-weight: 600; color: #3e4c59; }
td.num, th.num { text-align: right; }
td.score { text-align: right; font-weight: 600; }
tr.worse td.change { background: #fdecec; color: #9b1c1c; font-weight: 600; }
tr.better td.change { background: #e3f4e8; color: #1e6b3a; font-weight: 600; }
td.change { text-align: right; }
ul.notes { margin: 8px 0; padding-left: 20px; color: #7c5e10; }
td.error { white-space: pre-wrap; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; color: #9b1c1c; }
.scroll { overflow-x: auto; }
td.settings { line-height: 1.9; }
.setting { display: inline-block; margin: 0 6px 0 0; padding: 0 6px; border-radius: 4px; background: #f3f4f6;
           color: var(--muted); font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
.setting.changed { background: #fff1c2; border: 1px solid #e9c46a; color: var(--ink); font-weight: 600; }
details { margin-top: 8px; }
details > summary { cursor: pointer; color: var(--accent); font-size: 13px; }
)css";

template <typename Key>
void add_unique(std::vector<Key>& list, const Key& key) {
  if (std::find(list.begin(), list.end(), key) == list.end()) list.push_back(key);
}

double geometric_mean(const std::vector<double>& values) {
  double sum = 0;
  for (double v : values) sum += std::log(v);
  return values.empty() ? std::nan("") : std::exp(sum / values.size());
}

std::string percent(double points) { return std::isnan(points) ? "-" : fmt::format("{:.1f}%", points); }

std::string speedup_text(double x) { return fmt::format("{:.3g}×", x); }

// One run's cells, grouped the ways the sections need them.
struct RunView {
  RunInfo run;
  Json suite;
  std::vector<CellRecord> cells;
  std::vector<const CellRecord*> ok, failed;
  std::vector<std::string> engines, tasks;  // in order of first appearance
  std::vector<int> lengths;                 // sorted

  RunView(Store& store, std::int64_t id)
      : run(*store.run(id)), suite(store.suite_document(id)), cells(store.cells(id)) {
    std::set<int> distinct_lengths;
    for (const auto& c : cells) {
      (c.status == "ok" ? ok : failed).push_back(&c);
      add_unique(engines, c.engine);
      add_unique(tasks, c.task);
      distinct_lengths.insert(c.context_length);
    }
    lengths.assign(distinct_lengths.begin(), distinct_lengths.end());
  }

  std::vector<const CellRecord*> ok_cells(const std::string& engine, const std::string& task) const {
    std::vector<const CellRecord*> out;
    for (const auto* c : ok) {
      if (c->engine == engine && c->task == task) out.push_back(c);
    }
    return out;
  }
};

// Series are named by engine, and by engine and task when several tasks share the chart.
std::string series_name(const std::string& engine, const std::string& task, bool several_tasks) {
  return several_tasks ? engine + " · " + task : engine;
}

std::string table_html(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                       std::size_t text_columns) {
  std::string out = R"(<div class="scroll"><table><thead><tr>)";
  for (std::size_t i = 0; i < header.size(); ++i)
    out += fmt::format("<th{}>{}</th>", i < text_columns ? "" : R"( class="num")", html_escape(header[i]));
  out += "</tr></thead><tbody>";
  for (const auto& row : rows) {
    out += "<tr>";
    for (std::size_t i = 0; i < row.size(); ++i)
      out += fmt::format("<td{}>{}</td>", i < text_columns ? "" : R"( class="num")", html_escape(row[i]));
    out += "</tr>";
  }
  return out + "</tbody></table></div>";
}

std::string numbers(const std::string& what, const std::string& table) {
  return "<details><summary>Numbers: " + html_escape(what) + "</summary>" + table + "</details>";
}

// The chart's own numbers as a table: a row per series, a column per context length.
std::string chart_table(const LineChart& chart) {
  std::set<double> xs;
  for (const auto& s : chart.series) {
    for (const auto& p : s.points) xs.insert(p.x);
  }
  std::vector<std::string> header = {"series"};
  for (double x : xs) header.push_back(fmt::format("T={}", short_length(x)));
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : chart.series) {
    std::vector<std::string> row = {s.name};
    for (double x : xs) {
      const auto it = std::find_if(s.points.begin(), s.points.end(), [&](const auto& p) { return p.x == x; });
      row.push_back(it == s.points.end() ? "" : chart.format_y(it->y));
    }
    rows.push_back(std::move(row));
  }
  return numbers(chart.title, table_html(header, rows, 1));
}

std::string card(const std::string& title, const std::string& note, const std::string& body) {
  return fmt::format(R"(<div class="card"><h3>{}</h3>{}{}</div>)", html_escape(title),
                     note.empty() ? "" : fmt::format(R"(<p class="note">{}</p>)", note), body);
}

std::string metadata(const RunView& v) {
  const auto& r = v.run;
  std::vector<std::pair<std::string, std::string>> items = {
      {"Suite", r.suite},
      {"Status", r.status},
      {"Started", r.started_at},
      {"Finished", r.finished_at.empty() ? "-" : r.finished_at},
      {"Commit", r.git_commit.empty() ? "-" : r.git_commit},
      {"Build", r.build_type},
      {"Compiler", r.compiler},
      {"CPU", r.cpu_model},
      {"Cores", std::to_string(r.cores)},
      {"Memory", format_value(static_cast<double>(r.memory_bytes), "B")},
      {"Host", r.host},
      {"Cells", fmt::format("{} ok, {} failed", v.ok.size(), v.failed.size())},
      {"Engines", fmt::format("{}", fmt::join(v.engines, ", "))},
      {"Tasks", fmt::format("{}", fmt::join(v.tasks, ", "))},
  };
  std::string about;
  if (v.suite.is_object() && v.suite.contains("description") && v.suite["description"].is_string())
    about = html_escape(v.suite["description"].get<std::string>());
  std::string out = R"(<dl class="meta">)";
  for (const auto& [name, value] : items)
    out += fmt::format("<div><dt>{}</dt><dd>{}</dd></div>", html_escape(name), html_escape(value));
  return card("Run", about, out + "</dl>");
}

std::string setting_chip(const Setting& s) {
  const std::string text = html_escape(s.name + " = " + s.value);
  if (!s.changed) return fmt::format(R"(<span class="setting">{}</span>)", text);
  return fmt::format(R"(<span class="setting changed" title="default: {}">{}</span>)", html_escape(s.default_value),
                     text);
}

// Each engine label's resolved parameters, those that differ from the method's declared defaults highlighted.
std::string settings_card(const RunView& v) {
  std::string rows;
  for (const auto& e : engine_settings(v.cells)) {
    std::string chips;
    for (const auto& s : e.settings) chips += setting_chip(s);
    if (!e.method_known) chips += R"( <em>(method not registered in this build: no defaults to compare)</em>)";
    rows += fmt::format(R"(<tr data-engine="{0}"><td>{0}</td><td>{1}</td><td class="settings">{2}</td></tr>)",
                        html_escape(e.engine), html_escape(e.method), chips);
  }
  if (rows.empty()) return "";
  return card("Engine settings",
              "Each engine label's parameters as the run resolved them; highlighted: a value that differs from the "
              "method's declared default (hover it for the default).",
              R"(<div class="scroll"><table class="settings"><thead><tr><th>engine</th><th>method</th>)"
              R"(<th>parameters</th></tr></thead><tbody>)" +
                  rows + "</tbody></table></div>");
}

std::string accuracy_table(const RunView& v) {
  std::vector<std::vector<std::string>> rows;
  std::vector<double> means;
  bool any_samples = false, any_error = false;
  for (const auto& task : v.tasks) {
    for (const auto& engine : v.engines) {
      std::vector<double> points, errors, masses;
      double samples = 0;
      std::string metric, label;
      int cells = 0;
      for (const auto* c : v.ok_cells(engine, task)) {
        ++cells;
        if (const auto* m = accuracy_measurement(*c)) {
          points.push_back(accuracy_points(*m));
          metric = m->metric;
          label = metric_info(m->metric, m->unit).label;
        }
        const auto* s = find_metric(*c, "samples");
        samples += s ? s->value() : 1;
        any_samples |= s != nullptr;
        if (const auto* e = find_metric(*c, "output_rel_error")) errors.push_back(e->value());
        if (const auto* kept = find_metric(*c, "attention_recall")) masses.push_back(100 * kept->value());
      }
      if (points.empty()) continue;
      any_error |= !errors.empty();
      const auto [lo, hi] = std::minmax_element(points.begin(), points.end());
      means.push_back(across_cells(metric, points));
      rows.push_back({task, engine, label, percent(means.back()), percent(*lo), percent(*hi), std::to_string(cells),
                      fmt::format("{:.0f}", samples),
                      masses.empty() ? "-" : percent(across_cells("attention_recall", masses)),
                      errors.empty() ? "-" : fmt::format("{:.3g}", across_cells("output_rel_error", errors))});
    }
  }
  if (rows.empty()) return "";
  std::string out = R"(<div class="scroll"><table><thead><tr><th>task</th><th>engine</th><th>metric</th>)"
                    R"(<th class="num">mean</th><th class="num">worst cell</th><th class="num">best cell</th>)"
                    R"(<th class="num">cells</th><th class="num">samples</th><th class="num">dense mass kept</th>)"
                    R"(<th class="num">output rel. error</th>)"
                    "</tr></thead><tbody>";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    out += fmt::format(R"(<tr><td>{}</td><td>{}</td><td>{}</td><td class="score" style="background:{}">{}</td>)",
                       html_escape(row[0]), html_escape(row[1]), html_escape(row[2]), score_color(means[i]), row[3]);
    for (std::size_t j = 4; j < row.size(); ++j) out += fmt::format(R"(<td class="num">{}</td>)", row[j]);
    out += "</tr>";
  }
  out += "</tbody></table></div>";
  std::string note = "Mean accuracy over the cells (lengths, depths and seeds) of each task and engine.";
  if (!any_samples) note += " Attention-level cells are one problem each, so samples = cells.";
  if (!any_error) note += " No output error was measured.";
  note +=
      " Dense mass kept: the share of float64 dense attention's probability mass on the keys attended "
      "(attention level).";
  return card("Accuracy", note, out);
}

// Tasks whose cells span several depths get a depth x length heatmap per engine.
std::string heatmaps(const RunView& v) {
  std::string out;
  for (const auto& task : v.tasks) {
    std::set<double> depths;
    std::set<int> lengths;
    std::string metric, label;
    for (const auto* c : v.ok) {
      if (c->task != task) continue;
      if (const auto* m = accuracy_measurement(*c)) {
        depths.insert(c->depth);
        lengths.insert(c->context_length);
        metric = m->metric;
        label = metric_info(m->metric, m->unit).label;
      }
    }
    if (depths.size() < 2) continue;
    std::string figures, tables;
    for (const auto& engine : v.engines) {
      const auto cells = v.ok_cells(engine, task);
      if (cells.empty()) continue;
      Heatmap map{engine, engine, "context length (tokens)", "depth", {}, {}, {}, {}};
      for (int t : lengths) map.columns.push_back(short_length(t));
      for (double d : depths) {
        map.rows.push_back(fmt::format("{:g}%", d));
        std::vector<double> row;
        std::vector<std::string> tips;
        for (int t : lengths) {
          std::vector<double> points;
          for (const auto* c : cells) {
            if (c->depth != d || c->context_length != t) continue;
            if (const auto* m = accuracy_measurement(*c)) points.push_back(accuracy_points(*m));
          }
          row.push_back(across_cells(metric, points));
          tips.push_back(points.empty()
                             ? fmt::format("{} · {}\ncontext {} tokens, depth {:g}%: no result", engine, task, t, d)
                             : fmt::format("{} · {}\ncontext {} tokens, depth {:g}%\n{}: {:.1f}% ({} cells)", engine,
                                           task, t, d, label, row.back(), points.size()));
        }
        map.values.push_back(std::move(row));
        map.tooltips.push_back(std::move(tips));
      }
      figures += render_heatmap(map);
      std::vector<std::string> header = {"engine", "depth"};
      header.insert(header.end(), map.columns.begin(), map.columns.end());
      std::vector<std::vector<std::string>> rows;
      for (std::size_t r = 0; r < map.rows.size(); ++r) {
        std::vector<std::string> row = {engine, map.rows[r]};
        for (double value : map.values[r]) row.push_back(percent(value));
        rows.push_back(std::move(row));
      }
      tables += table_html(header, rows, 2);
    }
    out += card("Needle heatmap: " + task,
                html_escape(label + " by needle depth (rows) and context length (columns), mean over seeds; "
                                    "hover a cell for its numbers."),
                R"(<div class="figures">)" + figures + "</div>" + numbers(label + " by depth and length", tables));
  }
  return out;
}

// The engine whose cells speedups are measured against: the one labelled "dense", else any dense engine.
std::string reference_engine(const RunView& v) {
  std::string fallback;
  for (const auto* c : v.ok) {
    if (c->engine == "dense") return c->engine;
    if (c->engine_method == "dense" && fallback.empty()) fallback = c->engine;
  }
  return fallback;
}

using CellPlace = std::tuple<std::string, int, double, std::int64_t>;  // task, length, depth, seed

// One engine configuration on one task: means over the task's cells, for the trade-off charts.
struct Configuration {
  std::string engine, method;
  double accuracy = std::nan(""), mass_kept = std::nan(""), keys = std::nan(""), kv_bytes = std::nan("");
  double speedup = std::nan("");  // over the reference engine: geometric mean over the cells
  std::string accuracy_label;
  bool reference() const { return method == "dense" || method == "oracle_topk"; }
};

double mean_or_nan(const std::vector<double>& values) {
  double sum = 0;
  for (const double v : values) sum += v;
  return values.empty() ? std::nan("") : sum / values.size();
}

// The timing a speedup is read from when a cell stored none paired: decode, else prefill.
const Measurement* speed_timing(const CellRecord& cell) {
  for (const char* name : {"decode_seconds_per_step", "decode_seconds_per_token", "prefill_seconds"}) {
    if (const auto* m = find_metric(cell, name); m && m->value() > 0) return m;
  }
  return nullptr;
}

// A cell's speedup over the reference engine: its paired speedup, else the reference cell's time over its own.
std::optional<double> cell_speedup(const CellRecord& cell, const CellRecord* reference_cell) {
  if (const auto* paired = find_metric(cell, "speedup")) return paired->value();
  const auto* own = speed_timing(cell);
  if (!own || !reference_cell) return std::nullopt;
  const auto* base = find_metric(*reference_cell, own->metric);
  if (!base || !(base->value() > 0)) return std::nullopt;
  return base->value() / own->value();
}

Configuration configuration(const RunView& v, const std::string& engine, const std::string& task,
                            const std::map<CellPlace, const CellRecord*>& reference_cells) {
  Configuration out{engine, "", std::nan(""), std::nan(""), std::nan(""), std::nan(""), std::nan(""), ""};
  std::vector<double> accuracy, mass, keys, bytes, speedups;
  for (const auto* c : v.ok_cells(engine, task)) {
    out.method = c->engine_method;
    if (const auto* m = accuracy_measurement(*c)) {
      accuracy.push_back(accuracy_points(*m));
      out.accuracy_label = metric_info(m->metric, m->unit).label;
    }
    if (const auto* m = find_metric(*c, "attention_recall")) mass.push_back(100 * m->value());
    for (const char* name : {"keys_attended_mean", "keys_per_query"}) {
      if (const auto* m = find_metric(*c, name)) {
        keys.push_back(m->value());
        break;
      }
    }
    if (const auto* m = find_metric(*c, "kv_bytes_resident")) bytes.push_back(m->value());
    const auto it = reference_cells.find({c->task, c->context_length, c->depth, c->seed});
    const auto speedup = cell_speedup(*c, it == reference_cells.end() ? nullptr : it->second);
    if (speedup && *speedup > 0) speedups.push_back(*speedup);
  }
  out.accuracy = mean_or_nan(accuracy);
  out.mass_kept = mean_or_nan(mass);
  out.keys = mean_or_nan(keys);
  out.kv_bytes = mean_or_nan(bytes);
  out.speedup = speedups.empty() ? std::nan("") : geometric_mean(speedups);
  return out;
}

struct TradeoffAxis {
  std::string kind, label;
  double Configuration::*value;
  std::function<std::string(double)> format;
  bool lower_is_better, binary;
};

// A chart of `y` against `x` over the configurations that have both; "" with fewer than two.
std::string tradeoff_chart(const std::vector<Configuration>& configurations, const RunView& v, const TradeoffAxis& y,
                           const TradeoffAxis& x, const std::string& task) {
  ScatterChart chart{"tradeoff-" + x.kind,
                     y.label + " vs " + x.label,
                     x.label,
                     y.label,
                     x.format,
                     percent,
                     {},
                     x.lower_is_better,
                     x.binary};
  for (const auto& c : configurations) {
    const double px = c.*x.value, py = c.*y.value;
    if (!std::isfinite(px) || !std::isfinite(py) || !(px > 0)) continue;
    const auto index = std::find(v.engines.begin(), v.engines.end(), c.engine) - v.engines.begin();
    chart.points.push_back(
        {px, py, c.engine, series_color(index),
         fmt::format("{} ({}) · {}\n{}: {}\n{}: {}{}", c.engine, c.method, task, y.label, percent(py), x.label,
                     x.format(px), c.reference() ? "\nreference: not part of the front" : ""),
         c.reference()});
  }
  if (chart.points.size() < 2) return "";
  return render_scatter_chart(chart);
}

std::string tradeoff_table(const std::vector<Configuration>& configurations) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : configurations) {
    rows.push_back({c.engine, c.method, percent(c.accuracy), percent(c.mass_kept),
                    std::isnan(c.keys) ? "-" : fmt::format("{:.0f}", c.keys), format_value(c.kv_bytes, "B"),
                    std::isnan(c.speedup) ? "-" : speedup_text(c.speedup)});
  }
  return table_html({"engine", "method", "accuracy", "dense mass kept", "keys per query", "KV resident", "speedup"},
                    rows, 2);
}

// Per task: accuracy (and, at attention level, the dense attention mass kept) against keys attended per query, KV
// bytes resident and speedup, a mark per engine configuration and the Pareto front.
std::string tradeoffs(const RunView& v, const std::string& reference) {
  std::map<CellPlace, const CellRecord*> reference_cells;
  for (const auto* c : v.ok) {
    if (c->engine == reference) reference_cells[{c->task, c->context_length, c->depth, c->seed}] = c;
  }
  // Names and directions from the metric catalogue: keys attended (neither way there) count as a cost.
  const auto label = [](const char* metric, const char* unit) { return metric_info(metric, unit).label; };
  const auto lower_is_better = [](const char* metric) {
    const Metric* catalogued = MetricCatalogue::instance().find(metric);
    return !catalogued || catalogued->better != Better::higher;
  };
  const std::vector<TradeoffAxis> costs = {
      {"keys", label("keys_attended_mean", "keys"), &Configuration::keys,
       [](double k) { return fmt::format("{:g}", k); }, lower_is_better("keys_attended_mean"), true},
      {"kv-bytes", label("kv_bytes_resident", "B"), &Configuration::kv_bytes,
       [](double b) { return format_value(b, "B"); }, lower_is_better("kv_bytes_resident"), true},
      {"speedup", "speedup over " + reference, &Configuration::speedup, speedup_text, lower_is_better("speedup"),
       false}};
  std::string out;
  for (const auto& task : v.tasks) {
    std::vector<Configuration> configurations;
    for (const auto& engine : v.engines) {
      auto c = configuration(v, engine, task, reference_cells);
      if (!c.method.empty()) configurations.push_back(std::move(c));
    }
    const std::string accuracy_label = configurations.empty() ? "" : configurations.front().accuracy_label;
    const std::vector<TradeoffAxis> gains = {
        {"accuracy", accuracy_label.empty() ? "accuracy" : accuracy_label, &Configuration::accuracy, percent, false,
         false},
        {"mass", label("attention_recall", "ratio"), &Configuration::mass_kept, percent, false, false}};
    std::string figures;
    for (const auto& y : gains) {
      for (const auto& x : costs) figures += tradeoff_chart(configurations, v, y, x, task);
    }
    if (figures.empty()) continue;
    out += card("Trade-offs: " + task,
                "One mark per engine configuration: the mean over the task's cells (lengths, depths and seeds); the "
                "speedup is the geometric mean of each cell's paired speedup, else of the reference engine's time "
                "over the engine's on the same cell. Hollow diamonds: dense and exact top-k, references left out "
                "of the front. The step line is the Pareto front: no other configuration is at least as accurate "
                "and at least as cheap (or fast), and better in one.",
                R"(<div class="figures">)" + figures + "</div>" +
                    numbers("trade-offs of " + task, tradeoff_table(configurations)));
  }
  return out;
}

std::string phase_title(const std::string& phase) { return phase == "prefill" ? "Prefill" : "Decode"; }

struct Charts {
  std::string figures, tables;
};

// A point of a time chart: the mean over the cells, with the interquartile range of their repetitions pooled as its
// error bar, and the repetition count in its tooltip.
ChartPoint timing_point(const std::string& series, const std::string& label, int length, double seconds,
                        std::size_t cells, const std::vector<double>& repetitions) {
  ChartPoint point{static_cast<double>(length), seconds,
                   fmt::format("{}\ncontext {} tokens: {} ({}, mean of {} cells)", series, length,
                               format_value(seconds, "s"), label, cells)};
  if (repetitions.size() < 2) return point;
  const auto q = quartiles(repetitions);
  point.low = q.q1;
  point.high = q.q3;
  point.tooltip += fmt::format("\ninterquartile range of the {} repetitions: {}–{}", repetitions.size(),
                               format_value(q.q1, "s"), format_value(q.q3, "s"));
  return point;
}

// "2 repetitions per cell", or "2-5 repetitions per cell" when cells differ.
std::string repetitions_per_cell(const RunView& v, const std::string& metric) {
  std::set<std::size_t> counts;
  for (const auto* c : v.ok) {
    if (const auto* m = find_metric(*c, metric)) counts.insert(std::max<std::size_t>(1, m->repetitions.size()));
  }
  if (counts.empty()) return "";
  const auto low = *counts.begin(), high = *counts.rbegin();
  return low == high ? fmt::format("{} repetition{} per cell", low, low == 1 ? "" : "s")
                     : fmt::format("{}-{} repetitions per cell", low, high);
}

// Time against context length, and speedup against the reference engine, for one headline timing metric.
Charts speed_charts(const RunView& v, const std::string& metric, const MetricInfo& info, const std::string& reference) {
  std::vector<std::string> tasks;
  for (const auto* c : v.ok) {
    if (find_metric(*c, metric)) add_unique(tasks, c->task);
  }
  const bool several_tasks = tasks.size() > 1;
  std::map<CellPlace, const CellRecord*> reference_cells;
  for (const auto* c : v.ok) {
    if (c->engine == reference) reference_cells[{c->task, c->context_length, c->depth, c->seed}] = c;
  }
  LineChart times{"time",
                  fmt::format("{} vs context length ({})", info.label, repetitions_per_cell(v, metric)),
                  "context length (tokens)",
                  info.label,
                  [](double y) { return format_value(y, "s"); },
                  {},
                  true,
                  false,
                  std::nullopt,
                  ""};
  LineChart speedups{"speedup",
                     fmt::format("{} speedup over {}", phase_title(info.phase), reference),
                     "context length (tokens)",
                     "speedup (×)",
                     speedup_text,
                     {},
                     true,
                     false,
                     1.0,
                     reference + " (1×)"};
  for (const auto& engine : v.engines) {
    for (const auto& task : tasks) {
      const std::string name = series_name(engine, task, several_tasks);
      ChartSeries time{name, series_color(times.series.size()), {}};
      ChartSeries speedup{name, series_color(times.series.size()), {}};
      std::map<int, std::vector<double>> seconds, ratios, reference_seconds, repetitions;
      for (const auto* c : v.ok_cells(engine, task)) {
        const auto* m = find_metric(*c, metric);
        if (!m || !(m->value() > 0)) continue;
        seconds[c->context_length].push_back(m->value());
        auto& pooled = repetitions[c->context_length];
        pooled.insert(pooled.end(), m->repetitions.begin(), m->repetitions.end());
        const auto it = reference_cells.find({task, c->context_length, c->depth, c->seed});
        const Measurement* base = it == reference_cells.end() ? nullptr : find_metric(*it->second, metric);
        if (engine != reference && base && base->value() > 0) {
          ratios[c->context_length].push_back(base->value() / m->value());
          reference_seconds[c->context_length].push_back(base->value());
        }
      }
      for (const auto& [t, values] : seconds) {
        time.points.push_back(
            timing_point(name, info.label, t, across_cells(metric, values), values.size(), repetitions[t]));
      }
      for (const auto& [t, values] : ratios) {
        const double x = geometric_mean(values);
        speedup.points.push_back(
            {static_cast<double>(t), x,
             fmt::format("{}\ncontext {} tokens: {} {} than {}\n{} {} vs {} (geometric means of {} matched cells)",
                         name, t, speedup_text(x >= 1 ? x : 1 / x), x >= 1 ? "faster" : "slower", reference, engine,
                         format_value(geometric_mean(seconds[t]), "s"),
                         format_value(geometric_mean(reference_seconds[t]), "s"), values.size())});
      }
      if (!time.points.empty()) times.series.push_back(std::move(time));
      if (!speedup.points.empty()) speedups.series.push_back(std::move(speedup));
    }
  }
  Charts out{render_line_chart(times), chart_table(times)};
  if (!speedups.series.empty()) {
    out.figures += render_line_chart(speedups);
    out.tables += chart_table(speedups);
  }
  return out;
}

// Prefill and decode: time against context length and, when a dense engine ran, speedup over it.
std::string speed(const RunView& v) {
  std::map<std::string, MetricInfo> headline;
  for (const auto* c : v.ok) {
    for (const auto& m : c->measurements) {
      const auto info = metric_info(m.metric, m.unit);
      if (info.kind == MetricKind::time && !info.phase.empty()) headline.emplace(m.metric, info);
    }
  }
  const std::string reference = reference_engine(v);
  Charts all;
  std::vector<std::string> names;
  for (const char* phase : {"prefill", "decode"}) {
    for (const auto& [metric, info] : headline) {
      if (info.phase != phase) continue;
      const auto charts = speed_charts(v, metric, info, reference);
      all.figures += charts.figures;
      all.tables += charts.tables;
      names.push_back(metric);
    }
  }
  if (names.empty()) return "";
  std::string note = fmt::format(
      "Timings ({}): mean over depths and seeds of each cell's median over repetitions; error bars: the "
      "interquartile range of the repetitions of the point's cells; one context length is drawn as bars.",
      fmt::join(names, ", "));
  bool any_speedup = false;
  for (const auto* c : v.ok) any_speedup |= !reference.empty() && c->engine != reference;
  if (reference.empty())
    note += " No dense engine ran, so no speedups are shown.";
  else if (!any_speedup)
    note += fmt::format(" Only the reference engine {} ran, so no speedups are shown.", reference);
  else
    note += fmt::format(
        " Speedup = {} time / engine time on the same task, length, depth and seed (geometric mean);"
        " the dashed line is {}.",
        reference, reference);
  return card("Speed", html_escape(note), R"(<div class="figures">)" + all.figures + "</div>" + all.tables);
}

std::string memory(const RunView& v) {
  std::map<std::string, MetricInfo> held;
  for (const auto* c : v.ok) {
    for (const auto& m : c->measurements) {
      const auto info = metric_info(m.metric, m.unit);
      if (info.resident_memory) held.emplace(m.metric, info);
    }
  }
  std::string figures, tables;
  for (const auto& [metric, info] : held) {
    std::vector<std::string> tasks;
    for (const auto* c : v.ok) {
      if (find_metric(*c, metric)) add_unique(tasks, c->task);
    }
    LineChart chart{"memory",
                    info.label + " vs context length",
                    "context length (tokens)",
                    info.label,
                    [](double y) { return format_value(y, "B"); },
                    {},
                    true,
                    true,
                    std::nullopt,
                    ""};
    for (const auto& task : tasks) {
      // Engines that hold the same bytes at every length (every full-cache method) share one line.
      std::vector<std::pair<std::map<int, double>, std::vector<std::string>>> lines;
      for (const auto& engine : v.engines) {
        std::map<int, std::vector<double>> bytes;
        for (const auto* c : v.ok_cells(engine, task)) {
          if (const auto* m = find_metric(*c, metric); m && m->value() > 0)
            bytes[c->context_length].push_back(m->value());
        }
        if (bytes.empty()) continue;
        std::map<int, double> means;
        for (const auto& [t, values] : bytes) means[t] = across_cells(metric, values);
        const auto same = std::find_if(lines.begin(), lines.end(), [&](const auto& l) { return l.first == means; });
        if (same == lines.end())
          lines.push_back({means, {engine}});
        else
          same->second.push_back(engine);
      }
      for (const auto& [means, engines] : lines) {
        const std::string name = series_name(fmt::format("{}", fmt::join(engines, ", ")), task, tasks.size() > 1);
        ChartSeries series{name, series_color(chart.series.size()), {}};
        for (const auto& [t, value] : means) {
          series.points.push_back({static_cast<double>(t), value,
                                   fmt::format("{}\ncontext {} tokens: {} {} (mean over depths and seeds)", name, t,
                                               format_value(value, "B"), info.label)});
        }
        chart.series.push_back(std::move(series));
      }
    }
    figures += render_line_chart(chart);
    tables += chart_table(chart);
  }
  if (figures.empty()) return "";
  return card("Memory",
              "Memory held against context length, mean over depths and seeds; engines holding the same bytes share "
              "a line.",
              R"(<div class="figures">)" + figures + "</div>" + tables);
}

std::string failures(const RunView& v) {
  if (v.failed.empty()) return "";
  std::string rows;
  for (const auto* c : v.failed) {
    rows += fmt::format(
        R"(<tr><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{:g}</td><td class="num">{}</td><td class="error">{}</td></tr>)",
        html_escape(c->engine), html_escape(c->task), c->context_length, c->depth, c->seed, html_escape(c->error));
  }
  return card(fmt::format("Failed cells ({})", v.failed.size()), "Stored with their error; they have no measurements.",
              R"(<div class="scroll"><table><thead><tr><th>engine</th><th>task</th><th class="num">context</th>)"
              R"(<th class="num">depth</th><th class="num">seed</th><th>error</th></tr></thead><tbody>)" +
                  rows + "</tbody></table></div>");
}

// Every metric's mean per task, engine and context length: the numbers behind everything above.
std::string all_metrics(const RunView& v) {
  std::string tables;
  for (const auto& task : v.tasks) {
    std::vector<std::pair<std::string, std::string>> metrics;  // name, unit
    for (const auto* c : v.ok) {
      if (c->task != task) continue;
      for (const auto& m : c->measurements) {
        if (std::none_of(metrics.begin(), metrics.end(), [&](const auto& x) { return x.first == m.metric; }))
          metrics.push_back({m.metric, m.unit});
      }
    }
    if (metrics.empty()) continue;
    std::vector<std::string> header = {"engine", "context", "cells"};
    for (const auto& [name, unit] : metrics) header.push_back(metric_info(name, unit).label);
    std::vector<std::vector<std::string>> rows;
    for (const auto& engine : v.engines) {
      std::map<int, std::vector<const CellRecord*>> by_length;
      for (const auto* c : v.ok_cells(engine, task)) by_length[c->context_length].push_back(c);
      for (const auto& [t, cells] : by_length) {
        std::vector<std::string> row = {engine, std::to_string(t), std::to_string(cells.size())};
        for (const auto& [name, unit] : metrics) {
          std::vector<double> values;
          for (const auto* c : cells) {
            if (const auto* m = find_metric(*c, name)) values.push_back(m->value());
          }
          row.push_back(format_value(across_cells(name, values), unit));
        }
        rows.push_back(std::move(row));
      }
    }
    tables += fmt::format("<h4>{}</h4>", html_escape(task)) + table_html(header, rows, 1);
  }
  if (tables.empty()) return "";
  return card("All metrics", "Mean over depths and seeds; timings are medians over repetitions.",
              "<details><summary>Show the table</summary>" + tables + "</details>");
}

// Each cell's paired speedup over the suite's baseline engine, with its interval: the charts above divide medians
// of separately taken repetitions, these pair repetitions that took turns.
std::string paired_speedups(const RunView& v) {
  std::vector<std::vector<std::string>> rows;
  for (const auto* c : v.ok) {
    const std::string text = paired_speedup_text(*c);
    if (!text.empty())
      rows.push_back({c->engine, c->task, std::to_string(c->context_length), fmt::format("{:g}", c->depth),
                      std::to_string(c->seed), text});
  }
  if (rows.empty()) return "";
  return card("Paired speedups",
              "Engines on the same cell took turns repetition by repetition; speedup = the median over repetition "
              "pairs of baseline time / engine time, with its bootstrap 95% interval.",
              table_html({"engine", "task", "context", "depth", "seed", "speedup [95%]"}, rows, 2));
}

// The references of a sample as text: "a | b" for several accepted answers.
std::string references_text(const Json& references) {
  if (!references.is_array()) return setting_text(references);
  std::vector<std::string> parts;
  for (const auto& r : references) parts.push_back(setting_text(r));
  return fmt::format("{}", fmt::join(parts, " | "));
}

// For each model-level cell, its lowest-scoring samples with what the model said and what was expected: where to
// start reading when a score is low. Text is escaped (table_html), long text cut to its start and end.
std::string worst_samples(Store& store, const RunView& v) {
  constexpr std::size_t kPerCell = 3, kExcerptBytes = 160;
  std::vector<std::vector<std::string>> rows;
  for (const auto* c : v.ok) {
    auto samples = store.samples(c->id);
    std::stable_sort(samples.begin(), samples.end(), [](const auto& a, const auto& b) { return a.score < b.score; });
    if (samples.size() > kPerCell) samples.resize(kPerCell);
    for (const auto& sample : samples) {
      rows.push_back({c->engine, c->task, excerpt(sample.prediction, kExcerptBytes),
                      excerpt(references_text(sample.references), kExcerptBytes), std::to_string(c->context_length),
                      fmt::format("{:g}", c->depth), std::to_string(c->seed), std::to_string(sample.index),
                      fmt::format("{:.3g}", sample.score)});
    }
  }
  if (rows.empty()) return "";
  return card("Worst samples",
              fmt::format("The {} lowest-scoring samples of each model-level cell (score 0 to 1); all of them with "
                          "their inputs: `ctxbench export --samples`.",
                          kPerCell),
              table_html({"engine", "task", "prediction", "reference", "context", "depth", "seed", "sample", "score"},
                         rows, 4));
}

// Timings taken while other work competed for the machine are named before any chart shows them.
std::string load_notice(const RunView& v) {
  std::vector<std::string> loaded;
  for (const auto& c : v.cells) {
    if (c.under_load)
      loaded.push_back(fmt::format("{} / {} T={} ({})", c.engine, c.task, c.context_length,
                                   c.load ? c.load->describe() : "no figures"));
  }
  if (loaded.empty()) return "";
  return fmt::format(
      R"(<p class="notice bad">{} of {} cells were timed under load; their timings are not comparable: {}.</p>)",
      loaded.size(), v.cells.size(), html_escape(fmt::format("{}", fmt::join(loaded, "; "))));
}

std::string run_section(Store& store, std::int64_t id) {
  const RunView v(store, id);
  std::string body = metadata(v) + settings_card(v);
  if (v.cells.empty()) {
    body += fmt::format(R"(<p class="notice">Run {} stored no cells (status: {}): there is nothing to report yet.</p>)",
                        id, html_escape(v.run.status));
  } else if (v.ok.empty()) {
    body += fmt::format(
        R"(<p class="notice bad">All {} cells of run {} failed, so there is nothing to chart; their errors are listed below.</p>)",
        v.failed.size(), id);
  }
  body += load_notice(v) + accuracy_table(v) + tradeoffs(v, reference_engine(v)) + heatmaps(v) + speed(v) +
          paired_speedups(v) + memory(v) + worst_samples(store, v) + failures(v) + all_metrics(v);
  return fmt::format(R"(<section class="run" id="run-{}"><h2>Run {} · {}</h2>{}</section>)", id, id,
                     html_escape(v.run.suite), body);
}

std::string direction_class(Direction direction) {
  switch (direction) {
    case Direction::worse: return R"( class="worse")";
    case Direction::better: return R"( class="better")";
    case Direction::neither: return "";
  }
  return "";
}

// The two runs' metadata in two columns.
std::string run_pair_table(const RunInfo& a, const RunInfo& b) {
  const auto row = [](const char* what, const std::string& x, const std::string& y) {
    return std::vector<std::string>{what, x, y};
  };
  return table_html(
      {"", fmt::format("run {} (A)", a.id), fmt::format("run {} (B)", b.id)},
      {row("suite", a.suite, b.suite), row("started", a.started_at, b.started_at), row("status", a.status, b.status),
       row("commit", a.git_commit, b.git_commit), row("CPU", a.cpu_model, b.cpu_model), row("host", a.host, b.host)},
      3);
}

// Two runs side by side: every matched cell's headline metrics in both, the change, and compare's judgement of
// timings against the noise of their repetitions.
std::string run_to_run_section(Store& store, std::int64_t a, std::int64_t b) {
  std::string body;
  try {
    const auto view = run_to_run(store, a, b, 0.05);
    std::string rows;
    for (const auto& r : view.rows) {
      const auto& c = *r.cell;
      rows += fmt::format(
          R"(<tr{}><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{:g}</td><td class="num">{}</td>)"
          R"(<td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="change">{}</td><td>{}</td></tr>)",
          direction_class(r.direction), html_escape(c.engine), html_escape(c.task), c.context_length, c.depth, c.seed,
          html_escape(r.metric), html_escape(r.before), html_escape(r.after), html_escape(r.change),
          html_escape(r.judgement));
    }
    std::string notes;
    for (const auto& note : view.notes) notes += "<li>" + html_escape(note) + "</li>";
    body = run_pair_table(view.comparison.before_run, view.comparison.after_run) +
           (notes.empty() ? "" : "<ul class=\"notes\">" + notes + "</ul>") +
           R"(<div class="scroll"><table class="run-to-run"><thead><tr><th>engine</th><th>task</th>)"
           R"(<th class="num">context</th><th class="num">depth</th><th class="num">seed</th><th>metric</th>)"
           R"(<th class="num">run A</th><th class="num">run B</th><th class="num">change</th><th>judgement</th>)"
           "</tr></thead><tbody>" +
           rows + "</tbody></table></div>";
  } catch (const InputError& e) {
    body = fmt::format(R"(<p class="notice">Runs {} and {} cannot be compared cell by cell: {}</p>)", a, b,
                       html_escape(e.what()));
  }
  return fmt::format(R"(<section class="run-to-run" id="run-{}-to-{}"><h2>Run {} → run {}</h2>{}</section>)", a, b, a,
                     b,
                     card("Run to run",
                          "Cells matched by engine and task label, context length, depth and seed. Timings: the "
                          "median with the interquartile range of the repetitions, judged by a two-sided Mann-Whitney "
                          "test at alpha 0.05 (as `ctxbench compare`); red: slower or less accurate, green: faster or "
                          "more accurate.",
                          body));
}

}  // namespace

std::string render_html_report(Store& store, const std::vector<std::int64_t>& runs) {
  std::string sections;
  if (runs.size() == 2) sections += run_to_run_section(store, runs[0], runs[1]);
  for (const auto id : runs) sections += run_section(store, id);
  std::vector<std::string> ids;
  for (const auto id : runs) ids.push_back(std::to_string(id));
  const std::string title = fmt::format("ctxbench report: run {}", fmt::join(ids, ", "));
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{}</style>"
      "</head><body><header class=\"page\"><h1>ctxbench report</h1><p>{} · database {} · generated {}</p></header>"
      "<main>{}</main></body></html>\n",
      html_escape(title), kStyle, html_escape(title), html_escape(store.path()), utc_now(), sections);
}

}  // namespace ctxbench::reports
