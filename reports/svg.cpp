#include "reports/svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <set>

#include "reports/pareto.h"

namespace ctxbench::reports {
namespace {

constexpr double kWidth = 560, kHeight = 320;
constexpr double kLeft = 72, kRight = 24, kTop = 14, kBottom = 50;

struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  bool binary = false;
  double pixel_lo = 0, pixel_hi = 1;

  double operator()(double v) const {
    const double t = log ? (std::log(v) - std::log(lo)) / (std::log(hi) - std::log(lo)) : (v - lo) / (hi - lo);
    return pixel_lo + t * (pixel_hi - pixel_lo);
  }
};

std::vector<double> linear_ticks(const Axis& axis) {
  std::vector<double> out;
  const double raw = (axis.hi - axis.lo) / 5;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * magnitude >= raw) {
      step = m * magnitude;
      break;
    }
  }
  for (double v = std::ceil(axis.lo / step) * step; v <= axis.hi + step * 1e-9; v += step)
    out.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  return out;
}

// Log axes: 1, 2, 5 x 10^k (or powers of two, thinned to at most 8) inside [lo, hi]; a range too narrow for
// three of those gets linear steps instead. Linear axes: a 1-2-5 step.
std::vector<double> ticks(const Axis& axis) {
  if (!axis.log) return linear_ticks(axis);
  std::vector<double> out;
  if (axis.binary) {
    const int first = static_cast<int>(std::ceil(std::log2(axis.lo))),
              last = static_cast<int>(std::floor(std::log2(axis.hi)));
    const int every = std::max(1, (last - first + 8) / 8);
    for (int e = first; e <= last; e += every) out.push_back(std::exp2(e));
  } else {
    for (int e = static_cast<int>(std::floor(std::log10(axis.lo))); e <= std::ceil(std::log10(axis.hi)); ++e) {
      for (double m : {1.0, 2.0, 5.0}) {
        const double v = m * std::pow(10.0, e);
        if (v >= axis.lo && v <= axis.hi) out.push_back(v);
      }
    }
  }
  if (out.size() >= 3) return out;
  Axis linear = axis;
  linear.log = false;
  out = linear_ticks(linear);
  std::erase_if(out, [](double v) { return v <= 0; });
  return out;
}

Axis y_axis(const LineChart& chart) {
  std::vector<double> ys;
  for (const auto& s : chart.series) {
    for (const auto& p : s.points) {
      for (const double v : {p.y, p.low, p.high}) {
        if (std::isfinite(v) && (!chart.log_y || v > 0)) ys.push_back(v);
      }
    }
  }
  if (chart.reference_y) ys.push_back(*chart.reference_y);
  Axis axis{0, 1, chart.log_y, chart.binary_y, kHeight - kBottom, kTop};
  if (ys.empty()) return axis;
  const auto [min_it, max_it] = std::minmax_element(ys.begin(), ys.end());
  double lo = *min_it, hi = *max_it;
  if (chart.log_y) {
    if (lo == hi) {
      lo /= 2;
      hi *= 2;
    }
    axis.lo = lo / 1.25;
    axis.hi = hi * 1.25;
  } else {
    axis.lo = lo >= 0 ? 0 : lo - 0.08 * (hi - lo);
    axis.hi = hi == axis.lo ? axis.lo + 1 : hi + 0.08 * (hi - axis.lo);
  }
  return axis;
}

std::string axis_number(double v) {
  if (v == 0) return "0";
  const double a = std::fabs(v);
  if (a >= 1e4 || a < 1e-3) return fmt::format("{:.0e}", v);
  return fmt::format("{:g}", v);
}

std::string gridlines_and_y_labels(const std::function<std::string(double)>& format_y, const std::string& y_label,
                                   const Axis& y) {
  std::string out;
  for (const double v : ticks(y)) {
    const double py = y(v);
    out +=
        fmt::format(R"(<line class="grid" x1="{}" y1="{:.1f}" x2="{}" y2="{:.1f}"/>)", kLeft, py, kWidth - kRight, py);
    out += fmt::format(R"(<text class="tick" x="{}" y="{:.1f}" text-anchor="end" dy="0.32em">{}</text>)", kLeft - 6, py,
                       html_escape(format_y ? format_y(v) : axis_number(v)));
  }
  out += fmt::format(
      R"~(<text class="axis-label" transform="translate(14,{:.1f}) rotate(-90)" text-anchor="middle">{}</text>)~",
      (kTop + kHeight - kBottom) / 2, html_escape(y_label));
  return out;
}

std::string x_labels(const std::set<double>& xs, const Axis& x, const std::string& label,
                     const std::function<std::string(double)>& format_x) {
  std::string out;
  const std::size_t every = std::max<std::size_t>(1, (xs.size() + 9) / 10);
  std::size_t i = 0;
  for (const double v : xs) {
    if (i++ % every) continue;
    const double px = x(v);
    out += fmt::format(R"(<line class="tick-mark" x1="{0:.1f}" y1="{1}" x2="{0:.1f}" y2="{2}"/>)", px,
                       kHeight - kBottom, kHeight - kBottom + 5);
    out += fmt::format(R"(<text class="tick" x="{:.1f}" y="{}" text-anchor="middle">{}</text>)", px,
                       kHeight - kBottom + 18, html_escape(format_x(v)));
  }
  out += fmt::format(R"(<text class="axis-label" x="{:.1f}" y="{}" text-anchor="middle">{}</text>)",
                     (kLeft + kWidth - kRight) / 2, kHeight - 8, html_escape(label));
  return out;
}

std::vector<ChartPoint> drawable(const ChartSeries& s, const Axis& y) {
  auto points = s.points;
  std::erase_if(points, [&](const ChartPoint& p) { return !std::isfinite(p.y) || (y.log && p.y <= 0); });
  std::sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return a.x < b.x; });
  return points;
}

// A vertical bar from low to high with caps, at pixel column px; "" when the point has none.
std::string error_bar(const ChartPoint& p, double px, const Axis& y, const std::string& color) {
  if (!std::isfinite(p.low) || !std::isfinite(p.high) || (y.log && p.low <= 0)) return "";
  const double top = y(p.high), bottom = y(p.low);
  return fmt::format(
      R"(<path class="error-bar" d="M{0:.1f},{1:.1f} L{0:.1f},{2:.1f} M{3:.1f},{1:.1f} L{4:.1f},{1:.1f} M{3:.1f},{2:.1f} L{4:.1f},{2:.1f}" stroke="{5}"/>)",
      px, top, bottom, px - 4, px + 4, color);
}

std::string series_marks(const ChartSeries& s, const Axis& x, const Axis& y) {
  std::string path, dots;
  for (const auto& p : drawable(s, y)) {
    path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "M" : " L", x(p.x), y(p.y));
    dots += error_bar(p, x(p.x), y, s.color);
    dots += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="4.5" fill="{}"><title>{}</title></circle>)", x(p.x),
                        y(p.y), s.color, html_escape(p.tooltip));
  }
  return fmt::format(R"(<g class="series" data-series="{}"><path d="{}" stroke="{}"/>{}</g>)", html_escape(s.name),
                     path, s.color, dots);
}

// One context length: a bar per series side by side, from the bottom of the plot to the value.
std::string series_bars(const std::vector<ChartSeries>& series, double length, const Axis& y) {
  const double slot = (kWidth - kRight - kLeft) / static_cast<double>(series.size());
  std::string out;
  for (std::size_t i = 0; i < series.size(); ++i) {
    const auto& s = series[i];
    const double center = kLeft + (i + 0.5) * slot, width = std::min(56.0, slot * 0.6);
    std::string bars;
    for (const auto& p : drawable(s, y)) {
      const double top = y(p.y), bottom = kHeight - kBottom;
      bars += fmt::format(
          R"(<rect class="bar" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"><title>{}</title></rect>)",
          center - width / 2, top, width, std::max(0.0, bottom - top), s.color, html_escape(p.tooltip));
      bars += error_bar(p, center, y, "#1f2933");
    }
    out += fmt::format(R"(<g class="series bars" data-series="{}">{}</g>)", html_escape(s.name), bars);
  }
  out += fmt::format(R"(<text class="axis-label" x="{:.1f}" y="{}" text-anchor="middle">context length {}</text>)",
                     (kLeft + kWidth - kRight) / 2, kHeight - 8, short_length(length));
  return out;
}

std::string legend(const std::vector<ChartSeries>& series, const std::string& reference) {
  std::string out = R"(<ul class="legend">)";
  for (const auto& s : series) {
    out +=
        fmt::format(R"(<li><span class="swatch" style="background:{}"></span>{}</li>)", s.color, html_escape(s.name));
  }
  if (!reference.empty())
    out += fmt::format(R"(<li><span class="swatch dashed"></span>{}</li>)", html_escape(reference));
  return out + "</ul>";
}

struct Rgb {
  double r, g, b;
};

Rgb mix(const Rgb& a, const Rgb& b, double t) {
  return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
}

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::string short_length(double tokens) {
  const auto n = static_cast<long long>(std::llround(tokens));
  if (n >= 1048576 && n % 1048576 == 0) return fmt::format("{}M", n / 1048576);
  if (n >= 1024 && n % 1024 == 0) return fmt::format("{}K", n / 1024);
  return std::to_string(n);
}

std::string render_line_chart(const LineChart& chart) {
  std::set<double> xs;
  for (const auto& s : chart.series) {
    for (const auto& p : s.points) xs.insert(p.x);
  }
  std::string body;
  if (xs.empty()) {
    body = fmt::format(R"(<text class="empty" x="{}" y="{}" text-anchor="middle">no data</text>)", kWidth / 2,
                       kHeight / 2);
  } else {
    // Log2 context-length axis with a little room on both sides; one length gets a symmetric range.
    const double lo = *xs.begin(), hi = *xs.rbegin();
    const double pad = lo == hi ? 2.0 : std::pow(hi / lo, 0.05);
    const Axis x{lo / pad, hi * pad, true, false, kLeft, kWidth - kRight};
    const Axis y = y_axis(chart);
    body += gridlines_and_y_labels(chart.format_y, chart.y_label, y);
    body += fmt::format(R"(<line class="axis" x1="{0}" y1="{1}" x2="{2}" y2="{1}"/>)", kLeft, kHeight - kBottom,
                        kWidth - kRight);
    if (xs.size() > 1) body += x_labels(xs, x, chart.x_label, short_length);
    if (xs.size() == 1) body += series_bars(chart.series, *xs.begin(), y);  // under the reference line
    if (chart.reference_y) {
      const double py = y(*chart.reference_y);
      body += fmt::format(R"(<line class="reference" x1="{}" y1="{:.1f}" x2="{}" y2="{:.1f}"><title>{}</title></line>)",
                          kLeft, py, kWidth - kRight, py, html_escape(chart.reference_label));
    }
    if (xs.size() > 1) {
      for (const auto& s : chart.series) body += series_marks(s, x, y);
    }
  }
  return fmt::format(
      R"(<figure class="chart-figure"><figcaption>{}</figcaption>{}<svg class="chart" data-kind="{}" viewBox="0 0 {} {}" role="img" aria-label="{}">{}</svg></figure>)",
      html_escape(chart.title), legend(chart.series, chart.reference_y ? chart.reference_label : ""),
      html_escape(chart.kind), kWidth, kHeight, html_escape(chart.title), body);
}

std::string score_color(double points) {
  // A neutral sequential scale, light grey to blue: a score is not good or bad in itself (66.7% may be all a task
  // allows), so no colour says so; the engines' scores side by side do.
  static const Rgb low{243, 245, 247}, high{90, 140, 205};
  const Rgb c = mix(low, high, std::clamp(points / 100.0, 0.0, 1.0));
  return fmt::format("#{:02x}{:02x}{:02x}", static_cast<int>(std::lround(c.r)), static_cast<int>(std::lround(c.g)),
                     static_cast<int>(std::lround(c.b)));
}

std::string render_heatmap(const Heatmap& map) {
  static int instance = 0;  // gradient ids must be unique within the page
  const std::string gradient = fmt::format("score-scale-{}", ++instance);
  const double cols = std::max<double>(1, static_cast<double>(map.columns.size()));
  const double rows = std::max<double>(1, static_cast<double>(map.rows.size()));
  const double cell_w = std::clamp(400.0 / cols, 26.0, 64.0), cell_h = rows > 12 ? 18.0 : 26.0;
  const double left = 58, top = 8, bottom = 44, bar = 12;
  const double grid_w = cell_w * cols, grid_h = cell_h * rows;
  const double width = left + grid_w + 22 + bar + 44, height = top + grid_h + bottom;
  std::string body;
  for (std::size_t r = 0; r < map.rows.size(); ++r) {
    const double py = top + r * cell_h;
    body += fmt::format(R"(<text class="tick" x="{}" y="{:.1f}" text-anchor="end" dy="0.32em">{}</text>)", left - 6,
                        py + cell_h / 2, html_escape(map.rows[r]));
    for (std::size_t c = 0; c < map.columns.size(); ++c) {
      const double v = map.values[r][c], px = left + c * cell_w;
      const bool missing = std::isnan(v);
      body += fmt::format(
          R"(<g class="cell"><rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"/>{}<title>{}</title></g>)",
          px, py, cell_w, cell_h, missing ? "#eceef1" : score_color(v),
          missing || cell_w < 30
              ? ""
              : fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle" dy="0.32em">{}</text>)",
                            px + cell_w / 2, py + cell_h / 2, fmt::format("{:.0f}", v)),
          html_escape(map.tooltips[r][c]));
    }
  }
  for (std::size_t c = 0; c < map.columns.size(); ++c) {
    body += fmt::format(R"(<text class="tick" x="{:.1f}" y="{:.1f}" text-anchor="middle">{}</text>)",
                        left + (c + 0.5) * cell_w, top + grid_h + 16, html_escape(map.columns[c]));
  }
  body += fmt::format(R"(<text class="axis-label" x="{:.1f}" y="{:.1f}" text-anchor="middle">{}</text>)",
                      left + grid_w / 2, height - 6, html_escape(map.x_label));
  body += fmt::format(
      R"~(<text class="axis-label" transform="translate(12,{:.1f}) rotate(-90)" text-anchor="middle">{}</text>)~",
      top + grid_h / 2, html_escape(map.y_label));
  // The colour scale: 100 at the top, 0 at the bottom.
  const double bx = left + grid_w + 22;
  body += fmt::format(
      R"(<defs><linearGradient id="{}" x1="0" y1="1" x2="0" y2="0"><stop offset="0" stop-color="{}"/><stop offset="0.5" stop-color="{}"/><stop offset="1" stop-color="{}"/></linearGradient></defs>)",
      gradient, score_color(0), score_color(50), score_color(100));
  body += fmt::format(R"~(<rect class="scale" x="{:.1f}" y="{}" width="{}" height="{:.1f}" fill="url(#{})"/>)~", bx,
                      top, bar, grid_h, gradient);
  for (const int v : {0, 50, 100}) {
    body += fmt::format(R"(<text class="tick" x="{:.1f}" y="{:.1f}" dy="0.32em">{}%</text>)", bx + bar + 4,
                        top + grid_h * (1 - v / 100.0), v);
  }
  return fmt::format(
      R"(<figure class="heatmap-figure"><figcaption>{}</figcaption><svg class="heatmap" data-engine="{}" viewBox="0 0 {:.0f} {:.0f}" width="{:.0f}" role="img" aria-label="{}">{}</svg></figure>)",
      html_escape(map.title), html_escape(map.engine), width, height, width, html_escape(map.title), body);
}

namespace {

// An axis over `values` with a little room on both sides: log (one value gets a factor of 2 each way) or linear.
Axis fitted_axis(const std::vector<double>& values, bool log, bool binary, double pixel_lo, double pixel_hi) {
  const auto [min_it, max_it] = std::minmax_element(values.begin(), values.end());
  double lo = *min_it, hi = *max_it;
  if (log) {
    const double pad = lo == hi ? 2.0 : std::pow(hi / lo, 0.08);
    return {lo / pad, hi * pad, true, binary, pixel_lo, pixel_hi};
  }
  const double pad = lo == hi ? std::max(1.0, std::fabs(lo) * 0.05) : 0.08 * (hi - lo);
  return {lo - pad, hi + pad, false, false, pixel_lo, pixel_hi};
}

// The front as a staircase: at each x the best accuracy a front configuration reaches there (costs: the cheapest
// one at least as cheap; gains: the one with at least that gain).
std::string front_path(const std::vector<ScatterPoint>& front, bool lower_x_is_better, const Axis& x, const Axis& y) {
  std::string path;
  for (std::size_t i = 0; i < front.size(); ++i) {
    const double px = x(front[i].x), py = y(front[i].y);
    if (i == 0) {
      path += fmt::format("M{:.1f},{:.1f}", px, py);
      continue;
    }
    const double corner_y = lower_x_is_better ? y(front[i - 1].y) : py;
    const double corner_x = lower_x_is_better ? px : x(front[i - 1].x);
    path += fmt::format(" L{:.1f},{:.1f} L{:.1f},{:.1f}", corner_x, corner_y, px, py);
  }
  return fmt::format(R"(<path class="front-line" d="{}"><title>Pareto front</title></path>)", path);
}

std::string scatter_mark(const ScatterPoint& p, bool on_front, const Axis& x, const Axis& y) {
  const double px = x(p.x), py = y(p.y);
  const std::string shape =
      p.reference ? fmt::format(R"(<path d="M{0:.1f},{1:.1f} l6,6 l-6,6 l-6,-6 z" fill="#fff" stroke="{2}"/>)", px,
                                py - 6, p.color)
                  : fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="5" fill="{}"/>)", px, py, p.color);
  // Labels go right of the mark, or left of it in the right third of the plot, so that they stay inside it.
  const bool left = px > kLeft + (kWidth - kRight - kLeft) * 2 / 3;
  const char* role = on_front ? " front" : p.reference ? " reference" : "";
  return fmt::format(
      R"(<g class="point{}" data-engine="{}">{}<text class="point-label" x="{:.1f}" y="{:.1f}" text-anchor="{}">{}</text><title>{}</title></g>)",
      role, html_escape(p.label), shape, left ? px - 8 : px + 8, py - 7, left ? "end" : "start", html_escape(p.label),
      html_escape(p.tooltip));
}

}  // namespace

std::string render_scatter_chart(const ScatterChart& chart) {
  std::vector<ScatterPoint> points;
  for (const auto& p : chart.points) {
    if (std::isfinite(p.x) && std::isfinite(p.y) && p.x > 0) points.push_back(p);
  }
  std::string body;
  if (points.empty()) {
    body = fmt::format(R"(<text class="empty" x="{}" y="{}" text-anchor="middle">no data</text>)", kWidth / 2,
                       kHeight / 2);
  } else {
    std::vector<double> xs, ys;
    std::vector<TradeoffPoint> candidates;
    std::vector<std::size_t> candidate_index;
    for (std::size_t i = 0; i < points.size(); ++i) {
      xs.push_back(points[i].x);
      ys.push_back(points[i].y);
      if (points[i].reference) continue;
      candidates.push_back({points[i].x, points[i].y});
      candidate_index.push_back(i);
    }
    const Axis x = fitted_axis(xs, true, chart.binary_x, kLeft, kWidth - kRight);
    const Axis y = fitted_axis(ys, false, false, kHeight - kBottom, kTop);
    body += gridlines_and_y_labels(chart.format_y, chart.y_label, y);
    body += fmt::format(R"(<line class="axis" x1="{0}" y1="{1}" x2="{2}" y2="{1}"/>)", kLeft, kHeight - kBottom,
                        kWidth - kRight);
    const auto x_ticks = ticks(x);
    body += x_labels(std::set<double>(x_ticks.begin(), x_ticks.end()), x, chart.x_label, chart.format_x);
    std::vector<bool> on_front(points.size(), false);
    std::vector<ScatterPoint> front;
    for (const std::size_t k : pareto_front(candidates, chart.lower_x_is_better)) {
      on_front[candidate_index[k]] = true;
      front.push_back(points[candidate_index[k]]);
    }
    if (!front.empty()) body += front_path(front, chart.lower_x_is_better, x, y);
    for (std::size_t i = 0; i < points.size(); ++i) body += scatter_mark(points[i], on_front[i], x, y);
  }
  return fmt::format(
      R"(<figure class="chart-figure"><figcaption>{}</figcaption><svg class="chart" data-kind="{}" viewBox="0 0 {} {}" role="img" aria-label="{}">{}</svg></figure>)",
      html_escape(chart.title), html_escape(chart.kind), kWidth, kHeight, html_escape(chart.title), body);
}

std::string series_color(std::size_t index) {
  static const std::array<const char*, 10> palette = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
  return palette[index % palette.size()];
}

}  // namespace ctxbench::reports
