// A cell that crashes, hangs, throws or allocates beyond its budget is stopped and stored as failed with the
// reason, and the run goes on. The faults come from a test engine that otherwise is dense attention (so it also
// passes the shared conformance test with its default "none").
#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/timer.h"
#include "engines/engine.h"
#include "harness/runner.h"
#include "tests/helpers.h"

using namespace ctxbench;

namespace {

class FaultySession final : public engines::Session {
 public:
  FaultySession(std::unique_ptr<engines::Session> inner, std::string fault)
      : inner_(std::move(inner)), fault_(std::move(fault)) {}
  void append(const float* k, const float* v, int n) override { inner_->append(k, v, n); }
  void attend(const float* q, int n, engines::Phase phase, float* out) override {
    if (fault_ == "hang") std::this_thread::sleep_for(std::chrono::hours(1));
    if (fault_ == "crash") std::raise(SIGSEGV);
    if (fault_ == "hog") {
      // Untouched allocations: the address-space budget stops this at once, whatever the machine's load.
      std::vector<std::unique_ptr<char[]>> hog;
      for (;;) hog.emplace_back(new char[std::size_t{64} << 20]);
    }
    if (fault_ == "throw") throw std::runtime_error("engine refused");
    inner_->attend(q, n, phase, out);
  }
  std::vector<kernels::KeyRange> attended(int head, int query) const override { return inner_->attended(head, query); }
  engines::SessionStats stats() const override { return inner_->stats(); }

 private:
  std::unique_ptr<engines::Session> inner_;
  std::string fault_;
};

class FaultyEngine final : public engines::Engine {
 public:
  explicit FaultyEngine(std::string fault)
      : dense_(engines::EngineRegistry::instance().get("dense", "test").make(Json{{"threads", 1}})),
        fault_(std::move(fault)) {}
  std::unique_ptr<engines::Session> open(const engines::HeadLayout& layout) const override {
    return std::make_unique<FaultySession>(dense_->open(layout), fault_);
  }

 private:
  std::unique_ptr<engines::Engine> dense_;
  std::string fault_;
};

const engines::RegisterEngine registration{{
    .name = "test_faulty",
    .description = "dense attention that can crash, hang, hog memory or throw (tests only)",
    .params = {{.name = "fault",
                .type = ParamType::string,
                .default_value = "none",
                .help = "which fault",
                .choices = {"none", "hang", "crash", "hog", "throw"}}},
    .make = [](const Json& p) { return std::make_unique<FaultyEngine>(p.at("fault").get<std::string>()); },
    .test_params = Json::object(),
    .exact_params = [](int) { return Json::object(); },
}};

}  // namespace

namespace {

// Runs a suite of test_faulty cells, one engine per label (its fault: the label when it names one, else none),
// with the suite's `settings` ("limits", "baseline", ...), and returns its cells by engine label.
std::map<std::string, CellRecord> run_engines(const std::vector<std::string>& labels, const std::string& settings) {
  Json engines = Json::array();
  for (const auto& label : labels) {
    const bool fault = label == "hang" || label == "crash" || label == "hog" || label == "throw";
    engines.push_back({{"name", "test_faulty"}, {"label", label}, {"params", {{"fault", fault ? label : "none"}}}});
  }
  Json doc = Json::parse(R"({"name": "faults", "context_lengths": [64],
      "tasks": [{"name": "attention_needle", "params": {"heads_q": 2, "heads_kv": 1, "head_dim": 16}}]})");
  doc["engines"] = engines;
  doc.update(Json::parse(settings));
  const auto suite = parse_suite(doc, "faults.json");
  testing::TempDir dir;
  Store store(dir.file("f.db"));
  std::FILE* sink = std::fopen("/dev/null", "w");
  const auto summary = run_suite(suite, store, {.resume = false, .log = sink});
  std::fclose(sink);
  std::map<std::string, CellRecord> by_engine;
  for (auto& c : store.cells(summary.run_id)) by_engine[c.engine] = c;
  REQUIRE(by_engine.size() == labels.size());
  CHECK(store.run(summary.run_id)->status == "finished with failures");
  return by_engine;
}

// One engine per fault and "fine" last; checks that exactly the faulty ones failed.
std::map<std::string, CellRecord> run_faults(std::vector<std::string> faults, const std::string& settings) {
  faults.push_back("fine");
  auto by_engine = run_engines(faults, settings);
  for (const auto& [label, cell] : by_engine) CHECK(cell.status == (label == "fine" ? "ok" : "failed"));
  CHECK_FALSE(by_engine["fine"].measurements.empty());  // the run went on after the failures
  return by_engine;
}

const Measurement* find_measurement(const CellRecord& cell, const std::string& metric) {
  const auto it = std::find_if(cell.measurements.begin(), cell.measurements.end(),
                               [&](const Measurement& m) { return m.metric == metric; });
  return it == cell.measurements.end() ? nullptr : &*it;
}

}  // namespace

// Paired by default: the four engines share one process, and the hang's own budget stops it.
TEST_CASE("crashes, hangs and exceptions fail their cell only, with the reason stored", "[runner][limits]") {
  const Stopwatch watch;
  auto cells = run_faults({"hang", "crash", "throw"}, R"({"limits": {"cell_seconds": 8}})");
  CHECK(watch.seconds() < 30);  // the hang was stopped by the budget, not waited out
  CHECK_THAT(cells["hang"].error, Catch::Contains("exceeded the time budget of 8 s"));
  CHECK_THAT(cells["crash"].error, Catch::Contains("signal 11"));
  CHECK(cells["throw"].error == "engine refused");
}

TEST_CASE("unpaired, crashes, hangs and exceptions fail their cell only too", "[runner][limits]") {
  auto cells = run_faults({"hang", "crash", "throw"}, R"({"limits": {"cell_seconds": 2}, "paired": false})");
  CHECK_THAT(cells["hang"].error, Catch::Contains("exceeded the time budget of 2 s"));
  CHECK_THAT(cells["crash"].error, Catch::Contains("signal 11"));
  CHECK(cells["throw"].error == "engine refused");
}

// The hang is the middle engine, so the first one's turns run before it and must not count against it.
TEST_CASE("an engine that hangs in a paired group fails on its own budget, its partners run again paired",
          "[runner][limits][paired]") {
  constexpr double budget = 3;
  const Stopwatch watch;
  auto cells = run_engines({"fine", "hang", "also_fine"},
                           R"({"limits": {"cell_seconds": 3}, "baseline": "fine", "repetitions": 3})");
  const double seconds = watch.seconds();
  CHECK(seconds < 2 * budget + 2);  // not the group's 9 s, nor a rerun of the hang
  CHECK(cells["hang"].status == "failed");
  CHECK(cells["hang"].error == "exceeded the time budget of 3 s");
  CHECK(cells["hang"].seconds >= budget);
  CHECK(cells["hang"].seconds < seconds);
  CHECK(cells["fine"].status == "ok");
  CHECK(find_measurement(cells["fine"], "speedup") == nullptr);  // the baseline
  REQUIRE(cells["also_fine"].status == "ok");
  const Measurement* speedup = find_measurement(cells["also_fine"], "speedup");
  REQUIRE(speedup);
  CHECK(speedup->repetitions.size() == 3);  // timed paired with the baseline, the hang left out
  CHECK(find_measurement(cells["also_fine"], "speedup_low"));
}

TEST_CASE("an engine that crashes in a paired group fails alone, its partners are stored unpaired",
          "[runner][limits][paired]") {
  auto cells = run_engines({"fine", "crash", "also_fine"}, R"({"baseline": "fine"})");
  CHECK(cells["crash"].status == "failed");
  CHECK_THAT(cells["crash"].error, Catch::Contains("signal 11"));
  for (const std::string label : {"fine", "also_fine"}) {
    INFO(label);
    CHECK(cells[label].status == "ok");
    CHECK(find_measurement(cells[label], "decode_seconds_per_step") != nullptr);
    CHECK(find_measurement(cells[label], "speedup") == nullptr);  // each ran alone after the crash
  }
}

// The memory-budget tests are skipped under AddressSanitizer (scripts/sanitize.sh): ASan reserves terabytes of
// address space at start, so under an RLIMIT_AS budget every cell's process fails, within budget or not.
TEST_CASE("memory budget: a cell that allocates without bound fails with the reason, the run goes on",
          "[runner][limits][memory]") {
  auto cells = run_faults({"hog"}, R"({"limits": {"cell_memory_mb": 1024}})");
  CHECK_THAT(cells["hog"].error, Catch::Contains("exceeded the memory budget of 1024 MB"));
}

// The same through the real binary and a real engine: a context too large for the budget, then a small one.
TEST_CASE("memory budget: a real cell over it fails, the next cell runs, and run exits 3", "[cli][limits][memory]") {
  testing::TempDir dir;
  const std::string suite = dir.file("budget.json"), db = dir.file("budget.db");
  testing::write_file(suite, R"({"name": "budget", "engines": [{"name": "dense", "params": {"threads": 1}}],
      "tasks": [{"name": "attention_needle", "params": {"heads_q": 2, "heads_kv": 1, "head_dim": 64}}],
      "context_lengths": [16000000, 64], "limits": {"cell_memory_mb": 512}})");
  std::string output;
  CHECK(testing::run_shell(testing::ctxbench_binary() + " run " + suite + " --db " + db, &output) == 3);
  Store store(db);
  std::map<int, CellRecord> by_length;
  for (auto& c : store.cells(1)) by_length[c.context_length] = c;
  REQUIRE(by_length.size() == 2);
  CHECK(by_length[16000000].status == "failed");
  CHECK_THAT(by_length[16000000].error, Catch::Contains("exceeded the memory budget of 512 MB"));
  CHECK(by_length[64].status == "ok");
  CHECK_THAT(output, Catch::Contains("1 failed"));
}

TEST_CASE("limits in a suite file are checked", "[suite][limits]") {
  CHECK_THROWS_WITH(parse_suite(Json::parse(R"({"name": "x", "engines": [{"name": "dense"}],
      "tasks": [{"name": "attention_needle"}], "context_lengths": [64], "limits": {"cell_secs": 1}})"),
                                "l.json"),
                    Catch::Contains("l.json: $.limits.cell_secs: unknown field"));
}
