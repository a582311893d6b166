// The views a person comparing sparse-attention methods looks for first: each engine's settings against its
// method's defaults, accuracy against cost, and two runs side by side. On small real runs and on cells built here.
#include <fmt/format.h>

#include <array>
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "core/metrics.h"
#include "harness/store.h"
#include "harness/suite.h"
#include "reports/metrics.h"
#include "reports/results.h"
#include "reports/settings.h"
#include "reports/svg.h"
#include "tests/helpers.h"

using namespace ctxbench;
using testing::run_shell;

namespace {

const std::string kBinary = testing::ctxbench_binary();

// Dense, StreamingLLM at its default budget and at a small one, and exact top-k, on one tiny decode cell each.
std::string views_suite(int small_budget) {
  return fmt::format(R"({{"name": "views",
  "engines": [{{"name": "dense", "params": {{"threads": 1}}}},
              {{"name": "streaming_llm", "label": "streaming-default", "params": {{"threads": 1}}}},
              {{"name": "streaming_llm", "label": "streaming-small", "params": {{"threads": 1, "budget": {}}}}},
              {{"name": "oracle_topk", "label": "topk", "params": {{"threads": 1, "budget": 32}}}}],
  "tasks": [{{"name": "attention_needle", "label": "needle",
             "params": {{"mode": "decode", "heads_q": 2, "heads_kv": 1, "head_dim": 16, "queries": 2}}}}],
  "context_lengths": [256], "depths": [50], "repetitions": 2}})",
                     small_budget);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A database holding one run of views_suite(small_budget) per budget given, in that order.
struct ViewRuns {
  testing::TempDir dir;
  std::string db = dir.file("views.db");

  explicit ViewRuns(const std::vector<int>& small_budgets) {
    for (const int budget : small_budgets) {
      const std::string suite = dir.file(fmt::format("views-{}.json", budget));
      testing::write_file(suite, views_suite(budget));
      REQUIRE(run_shell(kBinary + " run " + suite + " --db " + db) == 0);
    }
  }

  std::string html(const std::string& options) {
    const std::string out = dir.file("report.html");
    REQUIRE(run_shell(kBinary + " report --db " + db + " " + options + " --html " + out) == 0);
    return read_text(out);
  }
  std::string terminal(const std::string& options) {
    std::string out;
    REQUIRE(run_shell(kBinary + " report --db " + db + " " + options, &out) == 0);
    return out;
  }
};

std::size_t count(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++n;
  return n;
}

CellRecord cell_of(const std::string& engine, const std::string& method, Json params) {
  CellRecord cell;
  cell.engine = engine;
  cell.engine_method = method;
  cell.engine_params = std::move(params);
  return cell;
}

const reports::Setting& setting(const reports::EngineSettings& engine, const std::string& name) {
  for (const auto& s : engine.settings) {
    if (s.name == name) return s;
  }
  FAIL("no setting " << name << " for " << engine.engine);
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("engine settings: resolved values against the method's declared defaults", "[reports][settings]") {
  const std::vector<CellRecord> cells = {
      cell_of("slow", "dense", {{"threads", 0}, {"extra_passes", 2}}),
      cell_of("slow", "dense", {{"threads", 0}, {"extra_passes", 2}}),  // a second cell of the label: one entry
      cell_of("plain", "dense", Json::object()),
      cell_of("old", "method_of_another_build", {{"window", 8}}),
  };
  const auto settings = reports::engine_settings(cells);
  REQUIRE(settings.size() == 3);
  CHECK(settings[0].engine == "slow");
  CHECK(setting(settings[0], "extra_passes").changed);
  CHECK(setting(settings[0], "extra_passes").value == "2");
  CHECK(setting(settings[0], "extra_passes").default_value == "0");
  CHECK_FALSE(setting(settings[0], "threads").changed);
  // Parameters a cell left out take the declared default, and are not highlighted.
  CHECK(setting(settings[1], "extra_passes").value == "0");
  CHECK_FALSE(setting(settings[1], "extra_passes").changed);
  // A method this build does not register: its values, nothing to compare them with.
  CHECK_FALSE(settings[2].method_known);
  CHECK(setting(settings[2], "window").value == "8");
  CHECK_FALSE(setting(settings[2], "window").changed);
}

TEST_CASE("the report shows each engine's settings, non-default values highlighted", "[reports][settings]") {
  ViewRuns runs({64});
  const auto html = runs.html("");
  CHECK_THAT(html, Catch::Contains("<h3>Engine settings</h3>"));
  CHECK_THAT(html, Catch::Contains(R"(<tr data-engine="streaming-small"><td>streaming-small</td><td>streaming_llm</td>)"
                                   R"(<td class="settings"><span class="setting changed" title="default: 516">)"
                                   R"(budget = 64</span>)"));
  CHECK_THAT(html, Catch::Contains(R"(<tr data-engine="streaming-default"><td>streaming-default</td>)"
                                   R"(<td>streaming_llm</td><td class="settings"><span class="setting">budget = 516)"
                                   "</span>"));
  // threads = 1 differs from the default 0 in every row; sinks = 4 is the default in both StreamingLLM rows.
  CHECK(count(html, R"(<span class="setting changed" title="default: 0">threads = 1</span>)") == 4);
  CHECK(count(html, R"(<span class="setting">sinks = 4</span>)") == 2);

  const auto text = runs.terminal("");
  CHECK_THAT(text, Catch::Contains("engine settings (* differs from the method's default)"));
  CHECK_THAT(text, Catch::Contains("streaming-small  streaming_llm  budget=64* budget_per_layer=[] sinks=4 "
                                   "threads=1*"));
  CHECK_THAT(text, Catch::Contains("streaming-default streaming_llm  budget=516 "));
}

TEST_CASE("the report charts accuracy and dense mass kept against keys, KV bytes and speedup, a mark per engine",
          "[reports][tradeoff]") {
  ViewRuns runs({64});
  const auto html = runs.html("");
  CHECK_THAT(html, Catch::Contains("<h3>Trade-offs: needle</h3>"));
  // Needle recall and dense mass kept, each against keys attended, KV bytes resident and speedup over dense.
  for (const char* kind : {"tradeoff-keys", "tradeoff-kv-bytes", "tradeoff-speedup"})
    CHECK(count(html, fmt::format(R"(<svg class="chart" data-kind="{}")", kind)) == 2);
  // Four configurations on each of the six charts; dense and exact top-k are the references.
  CHECK(count(html, R"(<g class="point)") == 6 * 4);
  CHECK(count(html, R"(<g class="point reference" data-engine="dense">)") == 6);
  CHECK(count(html, R"(<g class="point reference" data-engine="topk">)") == 6);
  // The small budget attends fewer keys than the default one (which covers the 256-key context), so it is on the
  // front of every keys chart whatever its accuracy.
  CHECK(count(html, R"(<g class="point front" data-engine="streaming-small">)") >= 2);
}

TEST_CASE("report --run A --run B puts two runs side by side with compare's judgement", "[reports][run-to-run]") {
  ViewRuns runs({64, 32});  // run 1 and run 2: streaming-small's budget changes
  const auto html = runs.html("--run 1 --run 2");
  CHECK_THAT(html, Catch::Contains("<h2>Run 1 → run 2</h2>"));
  CHECK_THAT(html, Catch::Contains("<th>run 1 (A)</th><th>run 2 (B)</th>"));
  CHECK_THAT(html,
             Catch::Contains("<li>streaming-small / needle has other parameters: engine budget 64 -&gt; 32</li>"));
  // Two repetitions a side cannot show a timing change at alpha 0.05; compare says why, for the decode step and the
  // observation window of each of the four cells.
  const std::string not_judged = "not judged: 2 and 2 repetitions cannot reach p &lt; 0.05 (smallest p 0.333)";
  CHECK(count(html, "<td>" + not_judged + "</td>") == 2 * 4);
  // Each side's timing with the interquartile range of its two repetitions, as stored.
  Store store(runs.db);
  for (const std::int64_t run : {1, 2}) {
    for (const auto& cell : store.cells(run)) {
      if (cell.engine != "dense") continue;
      for (const auto& m : cell.measurements) {
        if (m.metric != "decode_seconds_per_step") continue;
        REQUIRE(m.repetitions.size() == 2);
        const double lo = std::min(m.repetitions[0], m.repetitions[1]),
                     hi = std::max(m.repetitions[0], m.repetitions[1]);
        CHECK_THAT(html,
                   Catch::Contains(fmt::format("{} (IQR {}–{}, 2 reps)", reports::format_value((lo + hi) / 2, "s"),
                                               reports::format_value(lo + 0.25 * (hi - lo), "s"),
                                               reports::format_value(lo + 0.75 * (hi - lo), "s"))));
      }
    }
  }
  // The runs' own sections follow.
  CHECK(count(html, R"(<section class="run" id="run-)") == 2);

  const auto text = runs.terminal("--run 1 --run 2");
  CHECK_THAT(text, Catch::Contains("run 1 -> run 2"));
  CHECK_THAT(text, Catch::Contains("note: streaming-small / needle has other parameters: engine budget 64 -> 32"));
  CHECK(count(text, "not judged: 2 and 2 repetitions cannot reach p < 0.05") == 2 * 4);
}

TEST_CASE("the score scale is neutral: no score is shaded green, higher scores are darker", "[reports][html]") {
  const auto channels = [](const std::string& hex) {
    return std::array<int, 3>{std::stoi(hex.substr(1, 2), nullptr, 16), std::stoi(hex.substr(3, 2), nullptr, 16),
                              std::stoi(hex.substr(5, 2), nullptr, 16)};
  };
  int previous_brightness = 3 * 256;
  for (double points = 0; points <= 100; points += 100.0 / 12) {
    const auto [r, g, b] = channels(reports::score_color(points));
    INFO(points << "%: " << reports::score_color(points));
    CHECK_FALSE((g > r && g > b));  // not green
    CHECK(r + g + b < previous_brightness);
    previous_brightness = r + g + b;
  }
}

TEST_CASE("time charts: interquartile error bars, and bars instead of lone dots for one context length",
          "[reports][html]") {
  reports::LineChart chart{"time", "t", "context", "seconds", nullptr, {}, true, false, std::nullopt, ""};
  chart.series = {{"a", "#111", {{1024, 2.0, "a 1K", 1.5, 2.5}, {2048, 4.0, "a 2K"}}}};
  auto svg = reports::render_line_chart(chart);
  CHECK(count(svg, R"(<path class="error-bar")") == 1);  // only the point with a range
  CHECK(count(svg, "<circle") == 2);
  CHECK(count(svg, R"(<rect class="bar")") == 0);

  chart.series = {{"a", "#111", {{1024, 2.0, "a", 1.5, 2.5}}}, {"b", "#222", {{1024, 3.0, "b", 2.0, 3.5}}}};
  svg = reports::render_line_chart(chart);
  CHECK(count(svg, R"(<rect class="bar")") == 2);
  CHECK(count(svg, R"(<path class="error-bar")") == 2);
  CHECK(count(svg, "<circle") == 0);
  CHECK_THAT(svg, Catch::Contains("context length 1K"));
}

TEST_CASE("a one-length run's time charts are bars with error bars and say how many repetitions", "[reports][html]") {
  ViewRuns runs({64});
  const auto html = runs.html("");
  CHECK_THAT(html, Catch::Contains("Decode time per step vs context length (2 repetitions per cell)"));
  // Bars in the time chart (four engines), the speedup chart over dense (three) and the memory chart (where the
  // engines holding every key share one bar).
  CHECK(count(html, R"(<g class="series bars" data-series="streaming-small">)") == 3);
  CHECK(count(html, R"(<g class="series bars" data-series="dense">)") == 1);
  CHECK(count(html, R"(<g class="series bars" data-series="dense, streaming-default, topk">)") == 1);
  // Every time bar has its interquartile range; the speedup bars have none.
  CHECK(count(html, R"(<path class="error-bar")") == 4);
  CHECK(count(html, "interquartile range of the 2 repetitions") == 4);
}

TEST_CASE("excerpts keep a long text's start and end, cut between UTF-8 characters", "[reports][samples]") {
  CHECK(reports::excerpt("short", 4) == "short");
  // Keep 10 bytes a side: the head would end inside "é" (bytes 9-10), the tail begin inside "ü" (bytes 31-32); both
  // partial characters are left out.
  const std::string long_text = std::string(9, 'a') + "é" + std::string(20, 'b') + "ü" + std::string(9, 'c');
  CHECK(reports::excerpt(long_text, 10) == std::string(9, 'a') + " … " + std::string(9, 'c'));
  // Cut between whole characters, both are kept.
  CHECK(reports::excerpt(long_text, 11) == std::string(9, 'a') + "é … ü" + std::string(9, 'c'));
}

TEST_CASE("export --samples and the report's worst samples: predictions beside references, escaped",
          "[reports][samples]") {
  testing::TempDir dir;
  const std::string db = dir.file("samples.db");
  {
    Store store(db);
    const Suite suite = parse_suite(Json::parse(R"({"name": "samples", "engines": [{"name": "dense"}],
        "tasks": [{"name": "attention_needle"}], "context_lengths": [1024]})"),
                                    "samples.json");
    const auto run = store.begin_run(suite, RunInfo{});
    const std::string input = "Question: " + std::string(400, 'x') + " where is the key?";
    store.save_cell(run, suite.cells().at(0), "ok", "", 1.0, {make_measurement("accuracy", {50})},
                    {{0, input, "in the drawer", Json::array({"in the drawer"}), 1.0},
                     {1, input, "<script>alert(1)</script>", Json::array({"under the mat", "mat"}), 0.0},
                     {2, input, "on the table", Json::array({"on the shelf"}), 0.5}});
  }
  std::string csv;
  REQUIRE(run_shell(kBinary + " export --samples --db " + db, &csv) == 0);
  CHECK_THAT(csv, Catch::StartsWith("run_id,cell_key,engine,task,context_length,depth,seed,sample,input_excerpt,"
                                    "prediction,reference,score\n"));
  CHECK(count(csv, "\n") == 4);
  CHECK_THAT(csv, Catch::Contains(",1,Question: xxx"));
  CHECK_THAT(csv, Catch::Contains("x … xxx"));
  CHECK_THAT(csv, Catch::Contains(R"(,<script>alert(1)</script>,"[""under the mat"",""mat""]",0)"));
  std::string json;
  REQUIRE(run_shell(kBinary + " export --samples --format json --db " + db, &json) == 0);
  const auto doc = Json::parse(json);
  const auto& samples = doc["runs"][0]["samples"];
  REQUIRE(samples.size() == 3);
  CHECK(samples[2]["prediction"] == "on the table");
  CHECK(samples[2]["score"] == 0.5);
  CHECK(samples[1]["reference"] == Json::array({"under the mat", "mat"}));

  const std::string html_path = dir.file("samples.html");
  REQUIRE(run_shell(kBinary + " report --db " + db + " --html " + html_path) == 0);
  const auto html = read_text(html_path);
  CHECK_THAT(html, Catch::Contains("<h3>Worst samples</h3>"));
  CHECK(count(html, "<script") == 0);
  // The worst first: score 0, then 0.5, then 1.
  const auto worst = html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), middle = html.find("on the table"),
             best = html.find("<td>in the drawer</td>");
  REQUIRE(worst != std::string::npos);
  REQUIRE(middle != std::string::npos);
  REQUIRE(best != std::string::npos);
  CHECK((worst < middle && middle < best));
  CHECK_THAT(html, Catch::Contains("<td>under the mat | mat</td>"));
}
