// Inline SVG charts for the HTML report: no script, no network. Every point and heatmap cell carries a
// <title> tooltip with its numbers.
#pragma once

#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace ctxbench::reports {

std::string html_escape(const std::string& text);

struct ChartPoint {
  double x = 0, y = 0;
  std::string tooltip;
  double low = std::nan(""), high = std::nan("");  // an error bar (the interquartile range of repetitions); NaN: none
};

struct ChartSeries {
  std::string name;
  std::string color;
  std::vector<ChartPoint> points;
};

// A line chart with a log2 x axis (context lengths, ticked at the values present) and a linear or log y axis. With a
// single context length it is drawn as bars, one per series, instead of lone dots.
struct LineChart {
  std::string kind;  // data-kind attribute: "speedup", "time", "memory"
  std::string title;
  std::string x_label, y_label;
  std::function<std::string(double)> format_y;
  std::vector<ChartSeries> series;
  bool log_y = false;
  bool binary_y = false;              // log y ticked at powers of two (bytes)
  std::optional<double> reference_y;  // a dashed horizontal line (e.g. speedup 1 = the reference engine)
  std::string reference_label;
};

std::string render_line_chart(const LineChart& chart);

// One engine configuration on a trade-off chart.
struct ScatterPoint {
  double x = 0, y = 0;
  std::string label;  // the engine label, written beside the mark
  std::string color;
  std::string tooltip;
  bool reference = false;  // dense or exact top-k: a hollow diamond, left out of the front
};

// Accuracy (y, linear) against a cost or a gain (x, log): a mark per configuration, and the Pareto front of the
// configurations that are not references drawn as a step line (the best accuracy reached up to each x).
struct ScatterChart {
  std::string kind;  // data-kind attribute
  std::string title;
  std::string x_label, y_label;
  std::function<std::string(double)> format_x, format_y;
  std::vector<ScatterPoint> points;
  bool lower_x_is_better = true;  // costs; false for gains such as speedup
  bool binary_x = false;          // ticked at powers of two (bytes)
};

std::string render_scatter_chart(const ScatterChart& chart);

// Rows x columns of values on a 0-100 scale, light grey (0) to blue (100); NaN cells are blank.
struct Heatmap {
  std::string title;
  std::string engine;  // data-engine attribute
  std::string x_label, y_label;
  std::vector<std::string> columns, rows;
  std::vector<std::vector<double>> values;  // [row][column]
  std::vector<std::vector<std::string>> tooltips;
};

std::string render_heatmap(const Heatmap& map);

// "1K", "4K", "128K", "1M" for powers of two; plain numbers otherwise.
std::string short_length(double tokens);

// The colour of a 0-100 score on the heatmap scale, as #rrggbb: neutral, so that no score is shaded as good.
std::string score_color(double points);

// A categorical colour per index (Tableau 10).
std::string series_color(std::size_t index);

}  // namespace ctxbench::reports
