// Run records as a user meets them: Ctrl-C, SIGTERM and kill -9 in the middle of a run of the real binary,
// the status each leaves, and --resume with the same or a changed suite.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <thread>

#include "harness/environment.h"
#include "harness/sqlite.h"
#include "harness/store.h"
#include "harness/suite.h"
#include "tests/helpers.h"

using namespace ctxbench;

namespace {

// Cells of a few tenths of a second, so that a signal lands while one is in flight.
const char* kSuite = R"({"name": "records", "engines": [{"name": "dense"}],
  "tasks": [{"name": "attention_needle", "params": {"heads_q": 4, "heads_kv": 2, "head_dim": 32, "queries": 2}}],
  "context_lengths": [16384, 24576], "depths": [0, 20, 40, 60, 80, 100], "repetitions": 3})";
constexpr int kCells = 12;

std::string status_of(const std::string& db, std::int64_t run) {
  Store store(db);
  return store.run(run)->status;
}

int ok_cells(const std::string& db, std::int64_t run) {
  Store store(db);
  return static_cast<int>(store.finished_keys(run).size());
}

// Waits until `cells` cells of run 1 are stored (or a minute passed).
void wait_for_cells(const std::string& db, int cells) {
  for (int i = 0; i < 6000; ++i) {
    if (std::filesystem::exists(db) && ok_cells(db, 1) >= cells) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

int exit_status(pid_t child) {
  int status = 0;
  waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void resume_completes(const std::string& suite, const std::string& db) {
  std::string output;
  REQUIRE(testing::run_shell(testing::ctxbench_binary() + " run " + suite + " --db " + db + " --resume", &output) == 0);
  CHECK_THAT(output, Catch::Contains("resuming run 1"));
  CHECK(status_of(db, 1) == "finished");
  CHECK(ok_cells(db, 1) == kCells);
  CHECK(Store(db).runs().size() == 1);
}

}  // namespace

TEST_CASE("SIGINT and SIGTERM store the cell in flight, mark the run interrupted and say how to go on",
          "[run-records]") {
  const int sig = GENERATE(SIGINT, SIGTERM);
  testing::TempDir dir;
  const std::string suite = dir.file("records.json"), db = dir.file("r.db"), log = dir.file("log.txt");
  testing::write_file(suite, kSuite);
  const pid_t child = testing::spawn_ctxbench({"run", suite, "--db", db}, log);
  wait_for_cells(db, 2);
  kill(child, sig);
  CHECK(exit_status(child) == 128 + sig);
  const int stored = ok_cells(db, 1);
  CHECK(stored >= 3);  // the cell in flight when the signal came is finished and stored
  CHECK(stored < kCells);
  CHECK(status_of(db, 1) == "interrupted");
  CHECK_THAT(testing::read_file(log),
             Catch::Contains(
                 fmt::format("{} of {} cells stored; continue with ctxbench run {} --resume", stored, kCells, suite)));
  resume_completes(suite, db);
}

TEST_CASE("a second signal abandons the cell in flight, and the run is still interrupted, not finished",
          "[run-records]") {
  testing::TempDir dir;
  const std::string suite = dir.file("records.json"), db = dir.file("r.db"), log = dir.file("log.txt");
  testing::write_file(suite, kSuite);
  const pid_t child = testing::spawn_ctxbench({"run", suite, "--db", db}, log);
  wait_for_cells(db, 1);
  kill(child, SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  kill(child, SIGINT);
  CHECK(exit_status(child) == 130);
  CHECK(status_of(db, 1) == "interrupted");
  CHECK(Store(db).cells(1).size() == static_cast<std::size_t>(ok_cells(db, 1)));  // no failed cell left behind
  resume_completes(suite, db);
}

TEST_CASE("a run killed with SIGKILL reads as interrupted at the next open, and a live one stays running",
          "[run-records]") {
  testing::TempDir dir;
  const std::string suite = dir.file("records.json"), db = dir.file("r.db");
  testing::write_file(suite, kSuite);
  const pid_t child = testing::spawn_ctxbench({"run", suite, "--db", db});
  wait_for_cells(db, 2);
  CHECK(status_of(db, 1) == "running");  // opening the database beside a live run leaves it alone
  kill(child, SIGKILL);
  CHECK(exit_status(child) == 128 + SIGKILL);
  CHECK(status_of(db, 1) == "interrupted");
  resume_completes(suite, db);
}

TEST_CASE("a changed suite on --resume is refused naming the differences, and --allow-suite-change records it",
          "[run-records]") {
  testing::TempDir dir;
  const std::string suite = dir.file("records.json"), changed = dir.file("changed.json"), db = dir.file("r.db");
  Json small = Json::parse(kSuite);
  small["context_lengths"] = {256};
  testing::write_file(suite, small.dump());
  Json more = small;
  more["context_lengths"] = {256, 512};
  testing::write_file(changed, more.dump());
  const std::string run = testing::ctxbench_binary() + " run ";
  REQUIRE(testing::run_shell(run + suite + " --db " + db) == 0);
  std::string output;
  CHECK(testing::run_shell(run + changed + " --db " + db + " --resume", &output) == 2);
  CHECK_THAT(output, Catch::Contains("changed.json: differs from the suite run 1 was started with: 6 cells added "
                                     "(first: dense / attention_needle T=512 depth=0 seed=0); changed fields: "
                                     "context_lengths"));
  CHECK(Store(db).suite_document(1) == small);
  CHECK(testing::run_shell(run + changed + " --db " + db + " --resume --allow-suite-change", &output) == 0);
  CHECK(Store(db).suite_document(1) == more);
  CHECK(ok_cells(db, 1) == 12);
  CHECK(status_of(db, 1) == "finished");
}

TEST_CASE("resume refuses a run whose process lives here, and takes over one left running on another host",
          "[run-records]") {
  testing::TempDir dir;
  const std::string suite = dir.file("small.json"), db = dir.file("r.db");
  Json small = Json::parse(kSuite);
  small["context_lengths"] = {256};
  testing::write_file(suite, small.dump());
  const ProcessIdentity me = this_process();
  Store(db).begin_run(load_suite(suite), current_environment());  // owned by this (live) process
  const std::string resume = testing::ctxbench_binary() + " run " + suite + " --db " + db + " --resume";
  std::string output;
  CHECK(testing::run_shell(resume, &output) == 2);
  CHECK_THAT(output, Catch::Contains(fmt::format("run 1 of suite \"records\" is still running (process {})", me.pid)));
  // A Slurm task killed past its grace period leaves its run `running`, on a node this one cannot look into.
  sqlite::Database(db).exec("UPDATE runs SET host = 'node-elsewhere'");
  CHECK(status_of(db, 1) == "running");
  REQUIRE(testing::run_shell(resume, &output) == 0);
  CHECK_THAT(output, Catch::Contains(fmt::format(
                         "run 1 was left running by process {} on host node-elsewhere; taking it over", me.pid)));
  CHECK(status_of(db, 1) == "finished");
  CHECK(ok_cells(db, 1) == 6);
  CHECK(Store(db).run_owner(1).host == me.host);
}

TEST_CASE("a process is alive while it runs, not after, and another host's cannot be told", "[run-records]") {
  const ProcessIdentity me = this_process();
  CHECK(process_alive(me) == true);
  const pid_t child = fork();
  if (child == 0) {
    pause();
    _exit(0);
  }
  const ProcessIdentity other = process_identity(child);
  CHECK(process_alive(other) == true);
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(process_alive(other) == false);
  CHECK(process_identity(child).start.empty());
  CHECK_FALSE(process_alive({me.host + "-elsewhere", me.pid, me.start}).has_value());
}
