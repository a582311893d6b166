#include "harness/isolation.h"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <new>
#include <string_view>

#include "core/timer.h"
#include "harness/interrupt.h"

namespace ctxbench {
namespace {

constexpr int kSignalCheckMs = 200;

void write_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

// The child's report that engine N of a paired group runs now (N = kNoEngine: none), a line before the result (a
// JSON document in one line).
constexpr std::string_view kTurnReport = "turn ";

using ChildWork = std::function<Json(const TurnObserver& on_turn)>;

[[noreturn]] void child_main(const ChildWork& work, const Limits& limits, int fd, pid_t parent, const sigset_t& mask) {
  // A crash must end this process with its signal (which the parent reports), not run a handler inherited
  // from the parent (a test framework's, say).
  for (const int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) signal(sig, SIG_DFL);
  // Ctrl-C reaches the whole process group: the parent decides whether the cell finishes or is abandoned. A
  // parent killed outright takes the cell with it.
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  sigprocmask(SIG_SETMASK, &mask, nullptr);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(1);
  if (limits.cell_memory_mb > 0) {
    const rlim_t bytes = static_cast<rlim_t>(limits.cell_memory_mb * 1024 * 1024);
    const rlimit limit{bytes, bytes};
    setrlimit(RLIMIT_AS, &limit);
  }
  const TurnObserver report_turn = [fd](int engine) { write_all(fd, fmt::format("{}{}\n", kTurnReport, engine)); };
  Json message;
  try {
    message = {{"ok", work(report_turn)}};
  } catch (const std::bad_alloc&) {
    message = {
        {"error", fmt::format("exceeded the memory budget of {} MB (allocation failed)", limits.cell_memory_mb)}};
  } catch (const std::exception& e) {
    message = {{"error", e.what()}};
  }
  // Text cut at a token boundary (a byte tokenizer's window) may end inside a UTF-8 character. Nothing may
  // unwind out of here: the child would go on running the parent's suite loop.
  try {
    write_all(fd, message.dump(-1, ' ', false, Json::error_handler_t::replace));
  } catch (...) {
    _exit(1);
  }
  close(fd);
  _exit(0);
}

std::string describe_exit(int status, const Limits& limits) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    if (sig == SIGKILL && limits.cell_memory_mb > 0) {
      return fmt::format("killed by SIGKILL (possibly the system's out-of-memory killer; memory budget {} MB)",
                         limits.cell_memory_mb);
    }
    return fmt::format("the cell's process crashed with signal {} ({})", sig, strsignal(sig));
  }
  return fmt::format("the cell's process exited with status {} without a result", WEXITSTATUS(status));
}

}  // namespace

Json cell_output_to_json(const CellOutput& output) {
  Json measurements = Json::array(), samples = Json::array();
  for (const auto& m : output.measurements) {
    Json reps = Json::array();
    for (const double v : m.repetitions) reps.push_back(std::isfinite(v) ? Json(v) : Json());
    measurements.push_back({{"metric", m.metric}, {"unit", m.unit}, {"repetitions", reps}});
  }
  for (const auto& s : output.samples) {
    samples.push_back({{"index", s.index},
                       {"input", s.input},
                       {"prediction", s.prediction},
                       {"references", s.references},
                       {"score", s.score}});
  }
  return {{"measurements", measurements}, {"samples", samples}};
}

CellOutput cell_output_from_json(const Json& json) {
  CellOutput out;
  for (const auto& m : json.at("measurements")) {
    Measurement measurement{m.at("metric"), m.at("unit"), {}};
    for (const auto& v : m.at("repetitions"))
      measurement.repetitions.push_back(v.is_null() ? std::nan("") : v.get<double>());
    out.measurements.push_back(std::move(measurement));
  }
  for (const auto& s : json.at("samples")) {
    out.samples.push_back({s.at("index"), s.at("input"), s.at("prediction"), s.at("references"), s.at("score")});
  }
  return out;
}

EngineOverBudget::EngineOverBudget(std::size_t engine, double seconds, double budget)
    : std::runtime_error(fmt::format("exceeded the time budget of {} s", budget)), engine(engine), seconds(seconds) {}

namespace {

// Each engine's own time in a paired group's process, from the child's reports of whose turn it is.
class EngineClock {
 public:
  void turn(int engine, double now) {
    if (running_ != kNoEngine) spent_[running_] += now - since_;
    running_ = engine;
    since_ = now;
  }
  int running() const { return running_; }
  // The running engine's time, its current turn included.
  double running_seconds(double now) const {
    const auto it = spent_.find(running_);
    return (it == spent_.end() ? 0.0 : it->second) + now - since_;
  }

 private:
  std::map<int, double> spent_;
  int running_ = kNoEngine;
  double since_ = 0;
};

// Consumes the complete turn reports at the front of `data` (what follows them is the result).
void read_turn_reports(std::string& data, EngineClock& clock, double now) {
  for (;;) {
    const std::size_t end = data.find('\n');
    if (!data.starts_with(kTurnReport) || end == std::string::npos) return;
    int engine = kNoEngine;
    std::from_chars(data.data() + kTurnReport.size(), data.data() + end, engine);
    clock.turn(engine, now);
    data.erase(0, end + 1);
  }
}

// Runs `work` in a child process under the limits and returns what it returned. With `engine_seconds` > 0, an
// engine whose reported turns add up to more than that stops the child (EngineOverBudget).
Json run_in_child(const ChildWork& work, const Limits& limits, double engine_seconds = 0) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error(fmt::format("pipe: {}", std::strerror(errno)));
  std::fflush(nullptr);
  const pid_t parent = getpid();
  // Held back until the child ignores them: an early Ctrl-C must not kill the cell it is meant to let finish.
  sigset_t interrupts, previous;
  sigemptyset(&interrupts);
  sigaddset(&interrupts, SIGINT);
  sigaddset(&interrupts, SIGTERM);
  sigprocmask(SIG_BLOCK, &interrupts, &previous);
  const pid_t child = fork();
  if (child == 0) {
    close(fds[0]);
    child_main(work, limits, fds[1], parent, previous);
  }
  sigprocmask(SIG_SETMASK, &previous, nullptr);
  if (child < 0) throw std::runtime_error(fmt::format("fork: {}", std::strerror(errno)));
  close(fds[1]);
  std::string data;
  bool timed_out = false, abandoned = false;
  int over_budget = kNoEngine;
  double over_budget_seconds = 0;
  EngineClock clock;
  const Stopwatch watch;
  char buffer[1 << 16];
  for (;;) {
    if (abandon_requested()) {
      abandoned = true;
      break;
    }
    // A signal landing between the check above and poll() is seen at the next wake-up.
    int wait_ms = kSignalCheckMs;
    if (limits.cell_seconds > 0) {
      const double left = limits.cell_seconds - watch.seconds();
      if (left <= 0) {
        timed_out = true;
        break;
      }
      wait_ms = std::min(wait_ms, static_cast<int>(std::ceil(left * 1000)));
    }
    if (engine_seconds > 0 && clock.running() != kNoEngine) {
      const double spent = clock.running_seconds(watch.seconds());
      if (spent >= engine_seconds) {
        over_budget = clock.running();
        over_budget_seconds = spent;
        break;
      }
      wait_ms = std::min(wait_ms, static_cast<int>(std::ceil((engine_seconds - spent) * 1000)));
    }
    pollfd p{fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) continue;  // the deadline check above decides
    const ssize_t n = read(fds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data.append(buffer, static_cast<std::size_t>(n));
    read_turn_reports(data, clock, watch.seconds());
  }
  close(fds[0]);
  if (timed_out || abandoned || over_budget != kNoEngine) kill(child, SIGKILL);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (abandoned) throw CellAbandoned();
  if (timed_out) throw std::runtime_error(fmt::format("exceeded the time budget of {} s", limits.cell_seconds));
  if (over_budget != kNoEngine)
    throw EngineOverBudget(static_cast<std::size_t>(over_budget), over_budget_seconds, engine_seconds);
  if (data.empty()) throw std::runtime_error(describe_exit(status, limits));
  const Json message = Json::parse(data, nullptr, false);
  if (message.is_discarded()) throw std::runtime_error("the cell's process sent an unreadable result");
  if (message.contains("error")) throw std::runtime_error(message.at("error").get<std::string>());
  return message.at("ok");
}

}  // namespace

CellOutput run_cell_isolated(const Cell& cell, const Limits& limits) {
  return cell_output_from_json(
      run_in_child([&](const TurnObserver&) { return cell_output_to_json(run_cell(cell)); }, limits));
}

std::vector<CellOutput> run_cells_paired_isolated(const std::vector<Cell>& cells, const Limits& limits) {
  Limits together = limits;
  together.cell_seconds *= static_cast<double>(cells.size());
  const Json outputs = run_in_child(
      [&](const TurnObserver& on_turn) {
        Json out = Json::array();
        for (const auto& output : run_cells_paired(cells, on_turn)) out.push_back(cell_output_to_json(output));
        return out;
      },
      together, limits.cell_seconds);
  std::vector<CellOutput> out;
  for (const auto& output : outputs) out.push_back(cell_output_from_json(output));
  return out;
}

}  // namespace ctxbench
