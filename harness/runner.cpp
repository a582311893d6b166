#include "harness/runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/metrics.h"
#include "engines/engine.h"
#include "harness/attention_driver.h"
#include "harness/environment.h"
#include "harness/interrupt.h"
#include "harness/isolation.h"
#include "harness/machine_load.h"
#include "harness/paired_timing.h"
#include "harness/progress.h"
#include "model/backend.h"
#include "tasks/task.h"

namespace ctxbench {

namespace {

std::unique_ptr<Generator> make_generator(const Cell& cell, const engines::EngineInfo& engine_info) {
  if (engine_info.make_generator) {
    if (cell.task.params.contains("prompt_template"))  // a server applies its own chat template
      throw InputError(fmt::format("{}: prompt_template: engine {} answers text itself and applies no template",
                                   cell.task.label, engine_info.name));
    return engine_info.make_generator(cell.engine.params);
  }
  if (!engine_info.make)
    throw InputError(fmt::format("engine {} can run neither attention nor text", engine_info.name));
  return model::open_generator(model::model_params_of(cell.task.params),
                               std::shared_ptr<const engines::Engine>(engine_info.make(cell.engine.params)));
}

CellOutput run_text_cell(const Cell& cell, const engines::EngineInfo& engine_info, const tasks::TaskInfo& task_info,
                         const tasks::CellContext& context) {
  auto generator = make_generator(cell, engine_info);
  const auto samples = task_info.make_text_samples(context, generator->tokenizer());
  CellOutput out;
  const Metric& score_metric = catalogued_metric(task_info.metric);
  Measurement prompt = make_measurement("prompt_tokens"), generated = make_measurement("generated_tokens");
  Measurement prefill = make_measurement("prefill_seconds"), first = make_measurement("first_token_seconds");
  Measurement decode = make_measurement("decode_seconds_per_token"), share = make_measurement("attention_share");
  double score_sum = 0;
  bool decode_unmeasured = false;  // a sample generated several tokens without their times
  // Generating tasks hand over every sample at once (a remote engine keeps several requests in flight); tasks
  // that evaluate without generating (perplexity) go sample by sample.
  std::vector<Generation> generations;
  if (!task_info.evaluate) {
    generations = generator->generate_all(samples);
    if (generations.size() != samples.size())
      throw std::logic_error("generate_all answered the wrong number of samples");
  }
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const auto& sample = samples[i];
    tasks::SampleOutcome outcome;
    if (task_info.evaluate) {
      outcome = task_info.evaluate(*generator, sample);
    } else {
      outcome.generation = std::move(generations[i]);
      outcome.score = task_info.score(sample, outcome.generation.text);
    }
    const auto& g = outcome.generation;
    const double s = outcome.score;
    score_sum += s;
    out.samples.push_back(
        {static_cast<int>(i),
         sample.prompt.size() > 2000 ? sample.prompt.substr(sample.prompt.size() - 2000) : sample.prompt, g.text,
         Json(sample.references), s});
    prompt.repetitions.push_back(g.prompt_tokens);
    generated.repetitions.push_back(g.generated_tokens);
    prefill.repetitions.push_back(g.prefill_seconds);
    first.repetitions.push_back(g.first_token_seconds);
    if (g.generated_tokens > 1 && std::isfinite(g.decode_seconds))
      decode.repetitions.push_back(g.decode_seconds / (g.generated_tokens - 1));
    decode_unmeasured |= g.generated_tokens > 1 && !std::isfinite(g.decode_seconds);
    const double total = g.prefill_seconds + g.decode_seconds;
    if (total > 0 && g.attention_seconds > 0) share.repetitions.push_back(g.attention_seconds / total);
  }
  if (samples.empty()) throw std::runtime_error("the task produced no samples");
  out.measurements = {make_measurement(score_metric.name, {score_metric.scale() * score_sum / samples.size()}),
                      make_measurement("samples", {static_cast<double>(samples.size())}),
                      prompt,
                      generated,
                      prefill,
                      first};
  // Not measured for any sample: stored as NULL (shown "-"), never as a time of 0.
  if (decode.repetitions.empty() && decode_unmeasured) decode.repetitions = {kNotMeasured};
  for (auto* m : {&decode, &share}) {
    if (!m->repetitions.empty()) out.measurements.push_back(*m);
  }
  for (auto& m : generator->extra_measurements()) out.measurements.push_back(std::move(m));
  return out;
}

int stored_among(const std::vector<Cell>& cells, const std::set<std::string>& keys) {
  return static_cast<int>(
      std::count_if(cells.begin(), cells.end(), [&](const Cell& c) { return keys.contains(c.key); }));
}

// Refuses to go on with a run whose process still lives, or whose suite differs from the one given, unless
// allowed. A run left `running` on another host cannot be told from a live one; it is taken over (a Slurm task
// killed past its grace period and resubmitted on another node), with a word in the log.
void resume_run(const Suite& suite, Store& store, std::int64_t run_id, bool allow_suite_change, std::FILE* log) {
  if (store.run(run_id)->status == "running") {
    const ProcessIdentity owner = store.run_owner(run_id);
    if (process_alive(owner) == true) {
      throw InputError(fmt::format("{}: run {} of suite \"{}\" is still running (process {}); wait for it, or stop it",
                                   store.path(), run_id, suite.name, owner.pid));
    }
    fmt::print(log, "run {} was left running by process {} on host {}; taking it over\n", run_id, owner.pid,
               owner.host);
  }
  const std::string differences = suite_differences(store.suite_document(run_id), suite);
  if (!differences.empty() && !allow_suite_change) {
    throw InputError(fmt::format(
        "{}: differs from the suite run {} was started with: {}. Pass --allow-suite-change to continue run {} with "
        "this suite, or run without --resume for a new run",
        suite.source, run_id, differences, run_id));
  }
  if (!differences.empty()) store.replace_suite(run_id, suite);
  store.claim_run(run_id);
}

// Stores a cell that ran (ok, or failed with `error`) with the machine's load while it ran, and reports it.
void store_cell(const Cell& cell, const CellOutput& output, const std::string& error, double seconds,
                const MachineLoad& load, Store& store, RunSummary& summary, Progress& progress) {
  if (!error.empty()) ++summary.failed;
  store.save_cell(summary.run_id, cell, error.empty() ? "ok" : "failed", error, seconds, output.measurements,
                  output.samples, load);
  const std::string flagged = load.under_load_here() ? " [timed under load: " + load.describe() + "]" : "";
  progress.cell_done(describe_cell(cell) + (error.empty() ? "" : ": " + error) + flagged, error.empty(), seconds);
}

// Runs one cell and stores it; false when a second signal abandoned it (nothing stored).
bool run_and_store(const Cell& cell, const Suite& suite, Store& store, const RunOptions& options, RunSummary& summary,
                   Progress& progress) {
  Stopwatch watch;
  const MachineLoad load_before = sample_load();
  CellOutput output;
  std::string error;
  try {
    output = options.isolate ? run_cell_isolated(cell, suite.limits) : run_cell(cell);
  } catch (const CellAbandoned&) {
    progress.cell_done(describe_cell(cell) + ": abandoned", false, watch.seconds());
    return false;
  } catch (const std::exception& e) {
    error = e.what();
  }
  store_cell(cell, output, error, watch.seconds(), worst(load_before, sample_load()), store, summary, progress);
  return true;
}

// The timed phase of an attention-level cell.
const Measurement& phase_time(const CellOutput& output) {
  for (const auto& m : output.measurements) {
    if (m.metric == "prefill_seconds" || m.metric == "decode_seconds_per_step") return m;
  }
  throw std::logic_error("an attention-level cell without its phase's time");
}

// Each cell's speedup over the group's baseline engine: the median of its paired repetition ratios, with the
// bootstrap interval. Nothing when the baseline engine is not in the group.
void add_speedups(const std::vector<Cell>& group, const std::string& baseline, std::vector<CellOutput>& outputs) {
  const auto base = std::find_if(group.begin(), group.end(), [&](const Cell& c) { return c.engine.label == baseline; });
  if (base == group.end()) return;
  const std::vector<double> base_times = phase_time(outputs[base - group.begin()]).repetitions;
  for (std::size_t i = 0; i < group.size(); ++i) {
    if (group[i].engine.label == baseline) continue;
    const PairedSpeedup s = paired_speedup(base_times, phase_time(outputs[i]).repetitions);
    outputs[i].measurements.push_back(make_measurement("speedup", s.ratios));
    outputs[i].measurements.push_back(make_measurement("speedup_low", {s.low}));
    outputs[i].measurements.push_back(make_measurement("speedup_high", {s.high}));
  }
}

// Runs cells that differ only by engine with their repetitions taking turns, and stores each whole. An engine
// past its own time budget fails its cell at once, and its partners run again paired without it. When the paired
// run fails otherwise (one engine's crash would fail its partners), each cell runs alone instead. False when a
// second signal abandoned them.
bool run_and_store_group(const std::vector<Cell>& group, const Suite& suite, Store& store, const RunOptions& options,
                         RunSummary& summary, Progress& progress) {
  if (group.size() == 1) return run_and_store(group[0], suite, store, options, summary, progress);
  Stopwatch watch;
  const MachineLoad load_before = sample_load();
  std::vector<CellOutput> outputs;
  try {
    outputs = options.isolate ? run_cells_paired_isolated(group, suite.limits) : run_cells_paired(group);
  } catch (const CellAbandoned&) {
    for (const Cell& cell : group) progress.cell_done(describe_cell(cell) + ": abandoned", false, 0.0);
    return false;
  } catch (const EngineOverBudget& e) {
    const MachineLoad load = worst(load_before, sample_load());
    store_cell(group.at(e.engine), {}, e.what(), e.seconds, load, store, summary, progress);
    fmt::print(options.log, "{} ran past its time budget among {} paired cells; the others run again without it\n",
               describe_cell(group[e.engine]), group.size());
    if (stop_signal()) return true;
    std::vector<Cell> partners = group;
    partners.erase(partners.begin() + static_cast<std::ptrdiff_t>(e.engine));
    return run_and_store_group(partners, suite, store, options, summary, progress);
  } catch (const std::exception& e) {
    fmt::print(options.log, "the {} cells of {} failed together ({}); running them one by one\n", group.size(),
               describe_cell(group[0]), e.what());
    for (const Cell& cell : group) {
      if (stop_signal()) return true;
      if (!run_and_store(cell, suite, store, options, summary, progress)) return false;
    }
    return true;
  }
  add_speedups(group, suite.baseline, outputs);
  const double seconds = watch.seconds() / static_cast<double>(group.size());
  const MachineLoad load = worst(load_before, sample_load());
  for (std::size_t i = 0; i < group.size(); ++i)
    store_cell(group[i], outputs[i], "", seconds, load, store, summary, progress);
  return true;
}

bool attention_level(const Cell& cell) {
  const auto* task = tasks::TaskRegistry::instance().find(cell.task.method);
  const auto* engine = engines::EngineRegistry::instance().find(cell.engine.method);
  return task && engine && task->make_attention_problem && engine->make;
}

// The cells left to run, in suite order; in a paired suite each gathered with the later cells that differ from it
// only by engine (attention level: the same problem): those are timed paired.
std::vector<std::vector<Cell>> groups_to_run(const std::vector<Cell>& cells, const std::set<std::string>& done,
                                             bool paired) {
  std::vector<std::vector<Cell>> groups;
  std::map<std::string, std::size_t> group_of;
  for (const Cell& cell : cells) {
    if (done.contains(cell.key)) continue;
    if (!paired || !attention_level(cell)) {
      groups.push_back({cell});
      continue;
    }
    const std::string problem = fmt::format("{}\n{}\n{}\n{}\n{}\n{}\n{}", cell.task.method, cell.task.params.dump(),
                                            cell.context_length, cell.depth, cell.seed, cell.repetitions, cell.warmup);
    const auto [at, added] = group_of.try_emplace(problem, groups.size());
    if (added) groups.emplace_back();
    groups[at->second].push_back(cell);
  }
  return groups;
}

}  // namespace

CellOutput run_cell(const Cell& cell) {
  const auto& engine_info = engines::EngineRegistry::instance().get(cell.engine.method, "engine");
  const auto& task_info = tasks::TaskRegistry::instance().get(cell.task.method, "task");
  const tasks::CellContext context{cell.task.params, cell.context_length, cell.depth, cell.seed};
  if (task_info.make_text_samples) return run_text_cell(cell, engine_info, task_info, context);
  if (!engine_info.make) throw InputError(fmt::format("engine {} cannot run attention-level tasks", engine_info.name));
  const auto problem = task_info.make_attention_problem(context);
  const auto engine = engine_info.make(cell.engine.params);
  return {run_attention_problem(*engine, problem, cell.repetitions, cell.warmup), {}};
}

std::vector<CellOutput> run_cells_paired(const std::vector<Cell>& cells, const TurnObserver& on_turn) {
  const Cell& first = cells.at(0);
  const auto& task_info = tasks::TaskRegistry::instance().get(first.task.method, "task");
  const auto problem = task_info.make_attention_problem(
      tasks::CellContext{first.task.params, first.context_length, first.depth, first.seed});
  std::vector<std::unique_ptr<engines::Engine>> owned;
  std::vector<const engines::Engine*> engines;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    if (on_turn) on_turn(static_cast<int>(i));
    owned.push_back(
        engines::EngineRegistry::instance().get(cells[i].engine.method, "engine").make(cells[i].engine.params));
    engines.push_back(owned.back().get());
  }
  if (on_turn) on_turn(kNoEngine);
  std::vector<CellOutput> out;
  for (auto& measurements : run_attention_problem_paired(engines, problem, first.repetitions, first.warmup, on_turn))
    out.push_back({std::move(measurements), {}});
  return out;
}

RunSummary run_suite(const Suite& suite, Store& store, const RunOptions& options) {
  const InterruptScope interrupts;
  RunSummary summary;
  const auto cells = cells_of_shard(suite.cells(), options.shard);
  const std::string shard = options.shard.count > 1 ? options.shard.text() : "";
  summary.cells = static_cast<int>(cells.size());
  const auto previous = options.resume ? store.latest_run(suite.name, shard) : std::nullopt;
  std::set<std::string> done;
  if (previous) {
    summary.run_id = *previous;
    resume_run(suite, store, *previous, options.allow_suite_change, options.log);
    for (auto& key : store.finished_keys(*previous)) done.insert(std::move(key));
    fmt::print(options.log, "resuming run {} of suite \"{}\": {} of {} cells already stored\n", summary.run_id,
               suite.name, stored_among(cells, done), cells.size());
  } else {
    RunInfo environment = current_environment();
    environment.shard = shard;
    summary.run_id = store.begin_run(suite, environment);
    fmt::print(options.log, "run {} of suite \"{}\": {} cells into {}\n", summary.run_id, suite.name, cells.size(),
               store.path());
  }
  Progress progress(summary.cells, 0, options.log);
  for (const Cell& cell : cells) {
    if (!done.contains(cell.key)) continue;
    ++summary.skipped;
    progress.cell_done(describe_cell(cell) + " (stored)", true, 0.0);
  }
  for (const auto& group : groups_to_run(cells, done, suite.paired)) {
    if (stop_signal()) break;
    if (!run_and_store_group(group, suite, store, options, summary, progress)) break;
  }
  progress.finish();
  std::set<std::string> stored;
  for (auto& key : store.finished_keys(summary.run_id)) stored.insert(std::move(key));
  summary.stored = stored_among(cells, stored);
  summary.stop_signal = stop_signal();
  store.finish_run(summary.run_id, summary.stop_signal               ? "interrupted"
                                   : summary.stored == summary.cells ? "finished"
                                                                     : "finished with failures");
  return summary;
}

}  // namespace ctxbench
