// The HTML report of a small real run: its structure and numbers, then as a browser shows it (headless
// Chromium: a screenshot, the DOM, and the console).
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "harness/store.h"
#include "reports/metrics.h"
#include "tests/helpers.h"

using namespace ctxbench;
using testing::run_shell;

namespace {

const std::string kBinary = testing::ctxbench_binary();

// Two engines (one doing its attention twice) on a decode and a prefill needle task: 2 x 2 x 2 x 3 cells.
const char* kSuite = R"({"name": "html", "description": "report test",
  "engines": [{"name": "dense", "params": {"threads": 1}},
              {"name": "dense", "label": "dense-slow", "params": {"threads": 1, "extra_passes": 1}}],
  "tasks": [{"name": "attention_needle", "label": "needle-decode",
             "params": {"mode": "decode", "heads_q": 2, "heads_kv": 1, "head_dim": 16, "queries": 2}},
            {"name": "attention_needle", "label": "needle-prefill",
             "params": {"mode": "prefill", "heads_q": 2, "heads_kv": 1, "head_dim": 16, "queries": 8}}],
  "context_lengths": [256, 512], "depths": [0, 50, 100], "repetitions": 2})";

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::size_t count(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++n;
  return n;
}

std::size_t count_regex(const std::string& text, const std::string& pattern) {
  const std::regex re(pattern);
  return static_cast<std::size_t>(std::distance(std::sregex_iterator(text.begin(), text.end(), re), {}));
}

// A run of kSuite and its HTML report, in a fresh directory.
struct ReportedRun {
  testing::TempDir dir;
  std::string db = dir.file("r.db"), html = dir.file("report.html");

  ReportedRun() {
    testing::write_file(dir.file("suite.json"), kSuite);
    REQUIRE(run_shell(kBinary + " run " + dir.file("suite.json") + " --db " + db) == 0);
    std::string out;
    REQUIRE(run_shell(kBinary + " report --db " + db + " --html " + html, &out) == 0);
    REQUIRE_THAT(out, Catch::Contains("wrote " + html));
  }
};

// Mean over the depths of one metric for (engine, task, length), read back from the store.
double stored_mean(const std::vector<CellRecord>& cells, const std::string& engine, const std::string& task, int length,
                   const std::string& metric) {
  double sum = 0;
  int n = 0;
  for (const auto& c : cells) {
    if (c.engine != engine || c.task != task || c.context_length != length) continue;
    for (const auto& m : c.measurements) {
      if (m.metric == metric) {
        sum += m.value();
        ++n;
      }
    }
  }
  return sum / n;
}

std::string find_chromium() {
  for (const char* path : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (std::filesystem::exists(path)) return path;
  }
  return "";
}

// Headless Chromium with everything that would reach the network or a desktop session turned off.
std::string chromium_command(const std::string& chromium, const std::string& profile) {
  return "timeout 180 " + chromium +
         " --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update "
         "--disable-sync --no-first-run --user-data-dir=" +
         profile;
}

// Lines Chromium logs for the page's console (messages and uncaught errors).
std::vector<std::string> console_lines(const std::string& log) {
  std::vector<std::string> out;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.find(":CONSOLE") != std::string::npos || line.find("Uncaught") != std::string::npos) out.push_back(line);
  }
  return out;
}

std::pair<std::uint32_t, std::uint32_t> png_size(const std::string& png) {
  REQUIRE(png.size() > 24);
  REQUIRE(png.compare(1, 3, "PNG") == 0);
  const auto be32 = [&](std::size_t at) {
    return (std::uint32_t(std::uint8_t(png[at])) << 24) | (std::uint32_t(std::uint8_t(png[at + 1])) << 16) |
           (std::uint32_t(std::uint8_t(png[at + 2])) << 8) | std::uint32_t(std::uint8_t(png[at + 3]));
  };
  return {be32(16), be32(20)};
}

}  // namespace

TEST_CASE("the HTML report has a heatmap per engine, speedup and memory curves, and every number reachable",
          "[reports][html]") {
  ReportedRun run;
  const auto html = read_text(run.html);
  Store store(run.db);
  const auto cells = store.cells(1);

  // Self-contained: no script and nothing fetched.
  CHECK(count(html, "<script") == 0);
  CHECK(count_regex(html, R"((src|href)=["']?(https?:)?//)") == 0);
  CHECK(count(html, "url(http") == 0);

  CHECK_THAT(html, Catch::Contains("report test") && Catch::Contains("24 ok, 0 failed"));
  // 2 tasks x 2 engines heatmaps of 3 depths x 2 lengths, each cell with its tooltip.
  CHECK(count(html, R"(<svg class="heatmap")") == 4);
  CHECK(count(html, R"(<svg class="heatmap" data-engine="dense-slow")") == 2);
  CHECK(count(html, R"(<g class="cell">)") == 24);
  CHECK(count_regex(html, R"(<g class="cell"><rect [^>]*/>(<text[^<]*</text>)?<title>[^<]+</title></g>)") == 24);
  CHECK_THAT(html, Catch::Contains("dense-slow · needle-decode\ncontext 512 tokens, depth 50%\nNeedle recall: 100.0% "
                                   "(1 cells)"));

  // Time and speedup curves for prefill and decode; memory held.
  CHECK(count(html, R"(data-kind="time")") == 2);
  CHECK(count(html, R"(data-kind="speedup")") == 2);
  CHECK(count(html, R"(data-kind="memory")") == 1);
  // Every point has a tooltip: 2 engines x 2 lengths per time chart, dense-slow x 2 lengths per speedup chart,
  // one shared memory line (same bytes for both engines) per task x 2 lengths.
  const auto circles = count(html, "<circle");
  CHECK(circles == 2 * (2 * 2) + 2 * 2 + 2 * 2);
  CHECK(count_regex(html, R"(<circle [^>]*><title>[^<]+</title></circle>)") == circles);
  CHECK_THAT(html, Catch::Contains("dense, dense-slow · needle-decode"));

  // Dense attention keeps all of dense attention's mass; the accuracy table says so for both engines and tasks.
  CHECK_THAT(html, Catch::Contains(R"(<th class="num">dense mass kept</th>)"));
  CHECK(count_regex(html, R"(<td class="num">6</td><td class="num">6</td><td class="num">100\.0%</td>)") == 4);

  // The tables beneath hold the numbers the store holds.
  for (const int length : {256, 512}) {
    const double seconds = stored_mean(cells, "dense-slow", "needle-decode", length, "decode_seconds_per_step");
    CHECK_THAT(html, Catch::Contains("<td class=\"num\">" + reports::format_value(seconds, "s") + "</td>"));
    const double bytes = stored_mean(cells, "dense", "needle-prefill", length, "kv_bytes_resident");
    CHECK_THAT(html, Catch::Contains("<td class=\"num\">" + reports::format_value(bytes, "B") + "</td>"));
  }
  // A speedup point: dense time / dense-slow time over the matched cells, as a geometric mean.
  double log_sum = 0;
  int matched = 0;
  for (const auto& slow : cells) {
    if (slow.engine != "dense-slow" || slow.task != "needle-prefill" || slow.context_length != 512) continue;
    for (const auto& fast : cells) {
      if (fast.engine == "dense" && fast.task == slow.task && fast.context_length == 512 && fast.depth == slow.depth) {
        log_sum += std::log(reports::find_metric(fast, "prefill_seconds")->value() /
                            reports::find_metric(slow, "prefill_seconds")->value());
        ++matched;
      }
    }
  }
  REQUIRE(matched == 3);
  CHECK_THAT(html, Catch::Contains(fmt::format("<td class=\"num\">{:.3g}×</td>", std::exp(log_sum / matched))));
}

TEST_CASE("headless Chromium renders the report: screenshot, heatmaps and curves in the DOM, no console errors",
          "[reports][html][browser]") {
  const std::string chromium = find_chromium();
  if (chromium.empty()) {
    const std::string reason = "chromium is not installed (scripts/setup.sh installs it)";
    if (ctxbench::testing::running_in_ci()) FAIL("CI=true, but " << reason);
    ctxbench::testing::report_skipped(reason);
    return;
  }
  ReportedRun run;
  const std::string profile = run.dir.file("profile"), png = run.dir.file("report.png");
  std::filesystem::create_directories(profile);
  std::string log;
  REQUIRE(run_shell(chromium_command(chromium, profile) + " --screenshot=" + png + " --window-size=1280,2400 file://" +
                        run.html,
                    &log) == 0);
  INFO(log);
  REQUIRE(std::filesystem::exists(png));
  const auto image = read_text(png);
  CHECK(png_size(image) == std::make_pair(1280u, 2400u));
  // A blank page of this size compresses to a few KiB; text, tables and charts take far more.
  CHECK(image.size() > 60 * 1024);

  std::string dom;
  REQUIRE(
      run_shell(chromium_command(chromium, profile) + " --enable-logging=stderr --v=0 --dump-dom file://" + run.html,
                &dom) == 0);
  CHECK(count(dom, R"(<svg class="heatmap")") == 4);
  CHECK(count(dom, R"(data-kind="speedup")") == 2);
  CHECK(count(dom, R"(class="series")") > 0);
  CHECK(console_lines(dom).empty());

  // The console check itself: a page with a script error is caught.
  testing::write_file(run.dir.file("broken.html"), "<html><body><script>missingFunction();</script></body></html>");
  std::string broken;
  run_shell(chromium_command(chromium, profile) + " --enable-logging=stderr --v=0 --dump-dom file://" +
                run.dir.file("broken.html"),
            &broken);
  CHECK(console_lines(broken).size() == 1);
}
