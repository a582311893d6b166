// compare, gate and report as a user runs them: the real binary on real runs, and on stored runs built to
// exercise each verdict deterministically.
#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "harness/machine_load.h"
#include "harness/store.h"
#include "harness/suite.h"
#include "tests/helpers.h"

using namespace ctxbench;
using testing::run_shell;

namespace {

const std::string kBinary = testing::ctxbench_binary();

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void sql(const std::string& db, const std::string& statement) {
  sqlite3* handle = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &handle) == SQLITE_OK);
  REQUIRE(sqlite3_exec(handle, statement.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(handle);
}

// Two engines timed on one cell each; `steady` never changes, `dense` gets `extra_passes` more attention
// passes. A repetition is 8 decode steps over `context` keys (about 0.15 ms at 2048, 1 ms at 16384 here). Timed
// unpaired: gate's statistics across runs are under test, and pairing would add an untimed run per repetition.
std::string gate_suite(int extra_passes, int repetitions = 9, double max_slowdown = 2.0, int context = 2048) {
  return fmt::format(R"({{"name": "gate", "paired": false, "engines": [
      {{"name": "dense", "params": {{"threads": 1, "extra_passes": {}}}}},
      {{"name": "dense", "label": "steady", "params": {{"threads": 1}}}}],
    "tasks": [{{"name": "attention_needle", "label": "decode",
      "params": {{"mode": "decode", "heads_q": 2, "heads_kv": 1, "head_dim": 32, "queries": 8, "observe": 0}}}}],
    "context_lengths": [{}], "depths": [50], "repetitions": {},
    "thresholds": {{"max_slowdown": {}}}}})",
                     extra_passes, context, repetitions, max_slowdown);
}

// A stored run built cell by cell: lets a test state exactly what each run measured.
class SyntheticRuns {
 public:
  explicit SyntheticRuns(const std::string& db) : store_(db) {}

  std::int64_t begin(const std::string& thresholds = "") {
    Json doc = Json::parse(R"({"name": "synthetic", "engines": [{"name": "dense"}],
        "tasks": [{"name": "attention_needle"}], "context_lengths": [1024, 2048]})");
    if (!thresholds.empty()) doc["thresholds"] = Json::parse(thresholds);
    suite_ = parse_suite(doc, "synthetic.json");
    RunInfo env;
    env.git_commit = "abc";
    return store_.begin_run(suite_, env);
  }

  // Stores cell `index` (0 or 1: context 1024 or 2048) of the suite.
  void cell(std::int64_t run, int index, const std::vector<Measurement>& measurements, const std::string& error = "",
            const std::optional<MachineLoad>& load = {}) {
    store_.save_cell(run, suite_.cells().at(index), error.empty() ? "ok" : "failed", error, 1.0, measurements, {},
                     load);
  }

 private:
  Store store_;
  Suite suite_;
};

std::vector<Measurement> measured(std::vector<double> times, double recall) {
  return {{"decode_seconds_per_step", "s", std::move(times)},
          {"needle_recall", "ratio", {recall}},
          {"kv_bytes_resident", "B", {65536}}};
}

const std::vector<double> kTimes = {1.00e-3, 1.02e-3, 0.98e-3, 1.05e-3, 0.97e-3, 1.01e-3, 1.03e-3};
const std::vector<double> kSameTimes = {1.01e-3, 0.99e-3, 1.04e-3, 0.96e-3, 1.02e-3, 1.00e-3, 1.06e-3};

}  // namespace

// Runs `baseline` then `candidate` into a fresh database and gates the second against the first, up to
// three times until `accept` holds: another process on a shared machine can take the CPU away for whole
// seconds, which no statistic on one run's repetitions can tell from a slowdown. A systematic error still
// fails every attempt.
// Returns the database of the accepted attempt, or "" when none was.
std::string gate_attempts(const testing::TempDir& dir, const std::string& baseline, const std::string& candidate,
                          const std::function<bool(int status, const std::string& out)>& accept, std::string& log) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    const std::string path = dir.file(fmt::format("{}-{}-{}.db", baseline, candidate, attempt)), db = " --db " + path;
    REQUIRE(run_shell(kBinary + " run " + dir.file(baseline) + db) == 0);
    REQUIRE(run_shell(kBinary + " run " + dir.file(candidate) + db) == 0);
    std::string out;
    // The statistics are under test here, not the load check: this machine may well be busy.
    const int status = run_shell(kBinary + " gate --baseline 1 --candidate 2 --allow-load" + db, &out);
    log += fmt::format("attempt {} (exit {}):\n{}", attempt + 1, status, out);
    if (accept(status, out)) return path;
  }
  return "";
}

TEST_CASE("gate flags an engine made slower by extra passes, and passes a rerun of the same build",
          "[reports][cli][gate][timing]") {
  testing::TempDir dir;
  testing::write_file(dir.file("fast.json"), gate_suite(0));
  testing::write_file(dir.file("slow.json"), gate_suite(19));
  // The suite allows a 200% slowdown: above what sharing the machine usually does to 10 ms repetitions, far
  // below the 1900% that nineteen extra passes add.
  std::string log;
  CHECK_FALSE(gate_attempts(
                  dir, "fast.json", "fast.json",
                  [](int status, const std::string& out) {
                    return status == 0 &&
                           out.find("max slowdown 200% (suite \"gate\" of run 2)") != std::string::npos &&
                           out.find("PASS: 2 timings judged") != std::string::npos;
                  },
                  log)
                  .empty());
  INFO(log);
  const std::string slow_db = gate_attempts(
      dir, "fast.json", "slow.json",
      [](int status, const std::string& out) {
        return status == 4 && out.find("FAIL: 1 regressions") != std::string::npos &&
               out.find("dense / decode T=2048 depth=50 seed=0: decode_seconds_per_step") != std::string::npos &&
               out.find("steady / decode") == std::string::npos;
      },
      log);
  REQUIRE_FALSE(slow_db.empty());

  // The command line overrides the suite's threshold, and compare shows the change with its test and the
  // parameter that caused it.
  const std::string db = " --db " + slow_db;
  std::string out;
  CHECK(run_shell(kBinary + " gate --baseline 1 --candidate 2 --max-slowdown 10000% --allow-load" + db, &out) == 0);
  CHECK_THAT(out, Catch::Contains("max slowdown 10000% (--max-slowdown)"));
  CHECK(run_shell(kBinary + " compare 1 2" + db, &out) == 0);
  INFO(out);
  CHECK_THAT(out, Catch::Matches("(.|\\n)*dense +decode +2048 +50 +0 +decode_seconds_per_step .* slower\\n(.|\\n)*"));
  CHECK_THAT(out, Catch::Contains("note: dense / decode has different parameters: engine extra_passes 0 -> 19\n"));
  CHECK_THAT(out, Catch::Contains("significantly slower"));
  CHECK_THAT(out, !Catch::EndsWith("no significant change\n"));
}

TEST_CASE("gate fails a planted 2x slowdown at 5 warm repetitions and passes dense against itself",
          "[reports][cli][gate][timing]") {
  testing::TempDir dir;
  // One extra pass doubles the attention; the suite allows 50%, which the 2x clears by a third and which noise
  // between two runs seldom reaches on repetitions of 8 steps over 16K keys (about 1 ms; the one warm-up
  // repetition is not counted).
  testing::write_file(dir.file("dense.json"), gate_suite(0, 5, 0.5, 16384));
  testing::write_file(dir.file("doubled.json"), gate_suite(1, 5, 0.5, 16384));
  std::string log;
  const auto passes = [](int status, const std::string& out) {
    return status == 0 && out.find("PASS: 2 timings judged") != std::string::npos;
  };
  const bool self_passed = !gate_attempts(dir, "dense.json", "dense.json", passes, log).empty();
  const auto fails = [](int status, const std::string& out) {
    return status == 4 && out.find("FAIL: 1 regressions") != std::string::npos &&
           out.find("dense / decode T=16384 depth=50 seed=0: decode_seconds_per_step") != std::string::npos;
  };
  const bool doubled_failed = !gate_attempts(dir, "dense.json", "doubled.json", fails, log).empty();
  INFO(log);
  CHECK(self_passed);
  CHECK(doubled_failed);
}

TEST_CASE("cells timed under load are flagged by report, compare and the HTML, and gate will not judge them",
          "[reports][cli][gate][load]") {
  testing::TempDir dir;
  const std::string path = dir.file("l.db"), db = " --db " + path;
  {
    SyntheticRuns runs(path);
    const MachineLoad quiet{0.2, 1.0, 0.0}, busy{5.0, 50.0, 0.0};
    const auto a = runs.begin(), b = runs.begin();
    for (int i = 0; i < 2; ++i) {
      runs.cell(a, i, measured(kTimes, 1.0), "", quiet);
      runs.cell(b, i, measured(kSameTimes, 1.0), "", i == 0 ? busy : quiet);
    }
  }
  const std::string loaded =
      "1 of 4 matched cells (first: run 2 dense / attention_needle T=1024 depth=50 seed=0: load 5.00, cpu pressure "
      "50.0%, memory pressure 0.0%)";
  std::string out;
  CHECK(run_shell(kBinary + " gate --baseline 1 --candidate 2" + db, &out) == 2);
  CHECK_THAT(out, Catch::Contains("cannot judge: timed under load, " + loaded));
  CHECK(run_shell(kBinary + " gate --baseline 1 --candidate 2 --allow-load" + db, &out) == 0);
  CHECK_THAT(out, Catch::Contains("warning: judged although timed under load (--allow-load): " + loaded));
  CHECK(run_shell(kBinary + " gate --baseline 1 --candidate 1" + db, &out) == 0);  // run 1 was quiet
  CHECK(run_shell(kBinary + " compare 1 2" + db, &out) == 0);
  CHECK_THAT(out, Catch::Contains("warning: timed under load: " + loaded));
  CHECK(run_shell(kBinary + " report --run 2" + db, &out) == 0);
  CHECK_THAT(out, Catch::Contains("warning: 1 of 2 cells were timed under load (first: load 5.00, cpu pressure 50.0%"));
  CHECK(run_shell(kBinary + " report --run 1" + db, &out) == 0);
  CHECK_THAT(out, !Catch::Contains("under load"));
  CHECK(run_shell(kBinary + " report --run 2 --html " + dir.file("l.html") + db, &out) == 0);
  CHECK_THAT(read_text(dir.file("l.html")), Catch::Contains("1 of 2 cells were timed under load"));
}

// Processes that spin until this object goes away, or until the test process dies (PR_SET_PDEATHSIG): a failed
// or killed test leaves no hog behind.
class CpuHogs {
 public:
  explicit CpuHogs(unsigned count) {
    const pid_t parent = getpid();
    for (unsigned i = 0; i < count; ++i) {
      const pid_t hog = fork();
      if (hog == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(0);  // the parent died before the line above
        volatile unsigned long spin = 0;
        for (;;) spin = spin + 1;
      }
      pids_.push_back(hog);
    }
  }
  ~CpuHogs() {
    for (const pid_t hog : pids_) {
      kill(hog, SIGKILL);
      waitpid(hog, nullptr, 0);
    }
  }
  CpuHogs(const CpuHogs&) = delete;
  CpuHogs& operator=(const CpuHogs&) = delete;

 private:
  std::vector<pid_t> pids_;
};

// Tagged [timing] so that ctest runs it alone: its hogs would slow every test beside it.
TEST_CASE("with a CPU hog beside the runs, gate says it cannot judge", "[reports][cli][gate][load][timing]") {
  testing::TempDir dir;
  testing::write_file(dir.file("dense.json"), gate_suite(0, 5, 0.5));
  const CpuHogs hogs(2 * std::thread::hardware_concurrency() + 1);
  // PSI's 10 s average climbs within seconds; without PSI the 1-minute load average decides, within a minute
  // or two.
  for (int i = 0; i < 1800 && !sample_load().under_load_here(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  INFO("load with the hogs running: " << sample_load().describe());
  REQUIRE(sample_load().under_load_here());
  const std::string db = " --db " + dir.file("h.db");
  std::string out;
  REQUIRE(run_shell(kBinary + " run " + dir.file("dense.json") + db) == 0);
  REQUIRE(run_shell(kBinary + " run " + dir.file("dense.json") + db) == 0);
  CHECK(run_shell(kBinary + " gate --baseline 1 --candidate 2" + db, &out) == 2);
  CHECK_THAT(out, Catch::Contains("cannot judge: timed under load, 4 of 4 matched cells"));
}

TEST_CASE("compare says \"no significant change\" when timings differ only by noise", "[reports][cli][compare]") {
  testing::TempDir dir;
  const std::string path = dir.file("s.db"), db = " --db " + path;
  {
    SyntheticRuns runs(path);
    const auto a = runs.begin(), b = runs.begin();
    for (int i = 0; i < 2; ++i) {
      runs.cell(a, i, measured(kTimes, 1.0));
      runs.cell(b, i, measured(kSameTimes, 1.0));
    }
  }
  std::string out;
  REQUIRE(run_shell(kBinary + " compare 1 2" + db, &out) == 0);
  INFO(out);
  CHECK_THAT(out, Catch::Contains("timing: no significant change (2 timings judged at alpha 0.05)"));
  CHECK_THAT(out, Catch::EndsWith("no significant change\n"));
  CHECK_THAT(out, Catch::Contains("p=0.") && Catch::Contains("no significant change"));
  CHECK(run_shell(kBinary + " gate --baseline 1 --candidate 2" + db, &out) == 0);
  CHECK_THAT(out, Catch::Contains("max slowdown 5% (default)") && Catch::Contains("PASS: 2 timings judged"));
}

TEST_CASE("gate takes a suite's max_slowdown written as the option is (\"7%\")", "[reports][cli][gate]") {
  testing::TempDir dir;
  const std::string path = dir.file("p.db"), db = " --db " + path;
  {
    SyntheticRuns runs(path);
    const auto a = runs.begin(R"({"max_slowdown": "7%"})"), b = runs.begin(R"({"max_slowdown": "7%"})");
    for (int i = 0; i < 2; ++i) {
      runs.cell(a, i, measured(kTimes, 1.0));
      runs.cell(b, i, measured(kSameTimes, 1.0));
    }
  }
  std::string out;
  CHECK(run_shell(kBinary + " gate --baseline 1 --candidate 2" + db, &out) == 0);
  CHECK_THAT(out, Catch::Contains("max slowdown 7% (suite \"synthetic\" of run 2)"));
}

TEST_CASE("gate: accuracy drops, newly failing cells and unjudgeable timings", "[reports][cli][gate]") {
  testing::TempDir dir;
  const std::string path = dir.file("a.db"), db = " --db " + path;
  {
    SyntheticRuns runs(path);
    const auto base = runs.begin(R"({"max_accuracy_drop": 2})");
    runs.cell(base, 0, measured(kTimes, 1.0));
    runs.cell(base, 1, measured(kTimes, 1.0));
    const auto worse = runs.begin(R"({"max_accuracy_drop": 2})");  // run 2: recall 1.0 -> 0.9 on one cell
    runs.cell(worse, 0, measured(kSameTimes, 0.9));
    runs.cell(worse, 1, measured(kSameTimes, 1.0));
    const auto broken = runs.begin();  // run 3: one cell fails
    runs.cell(broken, 0, measured(kSameTimes, 1.0));
    runs.cell(broken, 1, {}, "engine exploded");
    const auto single = runs.begin();  // run 4: one repetition per cell
    runs.cell(single, 0, measured({1e-3}, 1.0));
    runs.cell(single, 1, measured({1e-3}, 1.0));
  }
  std::string out;
  CHECK(run_shell(kBinary + " gate --baseline 1 --candidate 2" + db, &out) == 4);
  INFO(out);
  CHECK_THAT(out, Catch::Contains("max accuracy drop 2 points (suite \"synthetic\" of run 2)"));
  CHECK_THAT(out, Catch::Contains("T=1024 depth=50 seed=0: needle_recall 100.00% -> 90.00% (-10.00 points"));
  CHECK_THAT(out, !Catch::Contains("T=2048"));
  CHECK(run_shell(kBinary + " gate --baseline 1 --candidate 2 --max-accuracy-drop 10" + db, &out) == 0);

  CHECK(run_shell(kBinary + " gate --baseline 1 --candidate 3" + db, &out) == 4);
  CHECK_THAT(out, Catch::Contains("T=2048 depth=50 seed=0: failed: engine exploded"));

  CHECK(run_shell(kBinary + " gate --baseline 4 --candidate 4" + db, &out) == 2);
  CHECK_THAT(out, Catch::Contains("cannot judge: no timing could be judged against its noise (dense / "
                                  "attention_needle T=1024 depth=50 seed=0 decode_seconds_per_step: 1 and 1 "
                                  "values: the runs need repetitions)"));
  CHECK(run_shell(kBinary + " gate --baseline 4 --candidate 4 --max-slowdown off" + db, &out) == 0);

  CHECK(run_shell(kBinary + " compare 1 4" + db, &out) == 0);
  CHECK_THAT(out, Catch::Contains("timing: not judged"));
  // The 1-repetition timings are shown anyway, with why they are not judged.
  CHECK_THAT(out, Catch::Matches("[\\s\\S]*decode_seconds_per_step +1\\.01 ms +1 ms +-1\\.0% +"
                                 "not judged: 7 and 1 values: the runs need repetitions\n[\\s\\S]*"));

  CHECK(run_shell(kBinary + " gate --baseline 1 --candidate 2 --max-slowdown 5" + db, &out) == 2);
  CHECK_THAT(out, Catch::Contains("--max-slowdown 5: ambiguous; write 5% for 5 percent"));
  CHECK(run_shell(kBinary + " gate --baseline 1" + db, &out) == 2);
  CHECK_THAT(out, Catch::Contains("--candidate RUN_ID is required"));
  CHECK(run_shell(kBinary + " compare 1 9" + db, &out) == 2);
  CHECK_THAT(out, Catch::Contains("no run 9"));
  CHECK(run_shell(kBinary + " compare 1 2 --alpha 2" + db, &out) == 2);
  CHECK_THAT(out, Catch::Contains("--alpha: expected a number in (0, 1), got 2"));
}

TEST_CASE("report's table shows attention-level and model-level cells in the same columns", "[reports][cli]") {
  testing::TempDir dir;
  const std::string path = dir.file("r.db"), db = " --db " + path;
  {
    SyntheticRuns runs(path);
    const auto run = runs.begin();
    auto attention = measured({2e-3, 4e-3}, 0.25);  // attention level: recall 0.25, decode 3 ms per step
    attention.push_back({"attention_recall", "ratio", {0.5}});
    runs.cell(run, 0, attention);
    runs.cell(run, 1,
              {{"accuracy", "%", {80}},  // model level: the task's metric, per-token decode, attention share
               {"decode_seconds_per_token", "s", {5e-4}},
               {"keys_per_query", "keys", {300}},
               {"attention_share", "ratio", {0.3}}});
  }
  std::string out;
  REQUIRE(run_shell(kBinary + " report" + db, &out) == 0);
  INFO(out);
  CHECK_THAT(out, Catch::Contains("accuracy") && Catch::Contains("mass%") && Catch::Contains("attn%"));
  CHECK_THAT(out, Catch::Matches(
                      "[\\s\\S]*attention_needle +dense +1024 +1 +25\\.0 +50\\.0 +- +3\\.000 +- +- +- +-\n[\\s\\S]*"));
  CHECK_THAT(out, Catch::Matches(
                      "[\\s\\S]*attention_needle +dense +2048 +1 +80\\.0 +- +- +0\\.500 +- +300 +30 +-\n[\\s\\S]*"));
}

TEST_CASE("an empty run and a run of failed cells give clear messages, not crashes", "[reports][cli]") {
  testing::TempDir dir;
  const std::string path = dir.file("e.db"), db = " --db " + path;
  {
    SyntheticRuns runs(path);
    runs.begin();  // run 1: killed before its first cell
  }
  std::string out;
  CHECK(run_shell(kBinary + " report" + db, &out) == 0);
  CHECK_THAT(out, Catch::Contains("run 1 stored no cells (status: running): nothing to report yet"));
  CHECK(run_shell(kBinary + " report --html " + dir.file("empty.html") + db, &out) == 0);
  CHECK_THAT(read_text(dir.file("empty.html")), Catch::Contains("Run 1 stored no cells (status: running)"));

  // Run 2: every cell fails (heads_q must be a multiple of heads_kv).
  testing::write_file(dir.file("bad.json"), R"({"name": "bad", "engines": [{"name": "dense"}],
      "tasks": [{"name": "attention_needle", "params": {"heads_q": 3, "heads_kv": 2}}],
      "context_lengths": [64, 128]})");
  CHECK(run_shell(kBinary + " run " + dir.file("bad.json") + db) == 3);
  CHECK(run_shell(kBinary + " report" + db, &out) == 0);
  CHECK_THAT(out, Catch::Contains("failed cells:") && Catch::Contains("heads_q must be a multiple of heads_kv"));
  CHECK(run_shell(kBinary + " report --html " + dir.file("failed.html") + db, &out) == 0);
  const auto html = read_text(dir.file("failed.html"));
  CHECK_THAT(html, Catch::Contains("All 2 cells of run 2 failed") && Catch::Contains("Failed cells (2)"));
  CHECK_THAT(html, Catch::Contains("heads_q must be a multiple of heads_kv"));

  CHECK(run_shell(kBinary + " compare 1 2" + db, &out) == 2);
  CHECK_THAT(out, Catch::Contains("run 1 has no stored cells: nothing to compare"));
  CHECK(run_shell(kBinary + " gate --baseline 2 --candidate 2" + db, &out) == 2);
  CHECK_THAT(out, Catch::Contains("every cell of run 2 failed (2 cells; first error: attention_needle: heads_q"));
}

TEST_CASE("reports refuse missing, foreign and newer databases without touching them", "[reports][cli]") {
  testing::TempDir dir;
  std::string out;
  const std::string missing = dir.file("missing.db");
  for (const char* command : {"report", "export", "compare 1 2", "gate --baseline 1 --candidate 2"}) {
    CHECK(run_shell(kBinary + " " + command + " --db " + missing, &out) == 2);
    CHECK_THAT(out, Catch::Contains(missing + ": no such database"));
  }
  CHECK_FALSE(std::filesystem::exists(missing));

  const std::string foreign = dir.file("foreign.db");
  sql(foreign, "CREATE TABLE notes (text TEXT)");
  CHECK(run_shell(kBinary + " report --db " + foreign, &out) == 2);
  CHECK_THAT(out, Catch::Contains("not a ctxbench results database"));
  CHECK(run_shell(kBinary + " report --db " + dir.file("none.db") + " --html x.html", &out) == 2);

  const std::string text = dir.file("text.db");
  testing::write_file(text, std::string(4096, 'x'));
  CHECK(run_shell(kBinary + " compare 1 2 --db " + text, &out) == 2);
  CHECK_THAT(out, Catch::Contains("not an SQLite database"));

  const std::string newer = dir.file("newer.db");
  { SyntheticRuns runs(newer); }
  sql(newer, "PRAGMA user_version = 99");
  for (const char* command : {"report", "export", "compare 1 2", "gate --baseline 1 --candidate 2"}) {
    CHECK(run_shell(kBinary + " " + command + " --db " + newer, &out) == 2);
    CHECK_THAT(
        out, Catch::Contains(fmt::format("schema version 99 is newer than this ctxbench reads ({})", kSchemaVersion)));
  }
}
