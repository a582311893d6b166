#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/command.h"
#include "harness/suite.h"

namespace ctxbench {
namespace {

namespace fs = std::filesystem;

std::string quoted(const std::string& text) {
  std::string out = "'";
  for (char ch : text) {
    if (ch == '\'') {
      out.append("'\\''");
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('\'');
  return out;
}

void write_script(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  if (!out) throw InputError(fmt::format("{}: cannot write", path.string()));
  out << text;
  out.close();
  fs::permissions(path, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec, fs::perm_options::add);
}

std::string sbatch_options(const Args& args) {
  std::string out;
  for (const auto& [option, directive] : {std::pair{"--partition", "partition"},
                                          {"--gpus-per-task", "gpus-per-task"},
                                          {"--time", "time"},
                                          {"--cpus-per-task", "cpus-per-task"},
                                          {"--mem", "mem"}}) {
    if (args.given(option) && !args.text(option).empty())
      out += fmt::format("#SBATCH --{}={}\n", directive, args.text(option));
  }
  return out;
}

int slurm_command(const Args& args) {
  args.expect_positionals(1, 1);
  const std::string suite_path = fs::absolute(args.positionals()[0]).string();
  const Suite suite = load_suite(suite_path);  // a malformed suite fails here, not on the cluster
  const long long shards = args.integer("--shards");
  const fs::path dir = fs::absolute(args.given("--dir") ? args.text("--dir") : "slurm-" + suite.name);
  const std::string db = fs::absolute(args.given("--db") ? fs::path(args.text("--db")) : dir / "merged.db").string();
  const std::string binary = fs::read_symlink("/proc/self/exe").string();
  fs::create_directories(dir);
  const std::string common = sbatch_options(args);

  // Exit status 3 means some cells failed and were stored: the shard itself completed.
  write_script(
      dir / "array.sbatch",
      fmt::format("#!/bin/bash\n#SBATCH --job-name=ctxbench-{0}\n#SBATCH --array=0-{1}\n"
                  "#SBATCH --output={2}/shard-%a.log\n{3}"
                  "set -u\nshard=${{SLURM_ARRAY_TASK_ID}}\n"
                  "{4} run {5} --shard \"$shard/{6}\" --db {2}/shard-\"$shard\".db --resume\n"
                  "status=$?\n[ $status -eq 3 ] && exit 0\nexit $status\n",
                  suite.name, shards - 1, quoted(dir.string()), common, quoted(binary), quoted(suite_path), shards));
  std::string inputs;
  for (long long i = 0; i < shards; ++i)
    inputs += fmt::format(" {}", quoted((dir / fmt::format("shard-{}.db", i)).string()));
  write_script(dir / "merge.sbatch",
               fmt::format("#!/bin/bash\n#SBATCH --job-name=ctxbench-{0}-merge\n#SBATCH --output={1}/merge.log\n{2}"
                           "set -eu\nexec {3} merge {4}{5}\n",
                           suite.name, quoted(dir.string()), common, quoted(binary), quoted(db), inputs));
  write_script(
      dir / "submit.sh",
      fmt::format("#!/bin/bash\n# Submits the shard array, then the merge once every shard has finished.\n"
                  "set -euo pipefail\narray=$(sbatch --parsable {0}/array.sbatch)\n"
                  "merge=$(sbatch --parsable --dependency=afterok:\"${{array%%;*}}\" --kill-on-invalid-dep=yes "
                  "{0}/merge.sbatch)\necho \"array job ${{array%%;*}}, merge job ${{merge%%;*}}\"\n",
                  quoted(dir.string())));
  fmt::print("wrote {0}/array.sbatch ({1} shards), {0}/merge.sbatch and {0}/submit.sh; results go to {2}\n",
             dir.string(), shards, db);
  if (!args.flag("--submit")) {
    fmt::print("submit with: {}/submit.sh\n", dir.string());
    return 0;
  }
  std::fflush(stdout);
  const int status = std::system(quoted((dir / "submit.sh").string()).c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

const RegisterCommand registration{{
    .name = "slurm",
    .summary = "write (and optionally submit) a Slurm array job that runs a suite in shards, then merges them",
    .usage = "ctxbench slurm SUITE.json --shards N [--dir DIR] [--db MERGED.db] [--partition P] [--gpus-per-task G]\n"
             "                [--time T] [--cpus-per-task C] [--mem M] [--submit]",
    .description =
        "Writes DIR/array.sbatch (one array task per shard: `ctxbench run --shard I/N --resume` into\n"
        "DIR/shard-I.db, so a resubmitted array continues where it stopped), DIR/merge.sbatch (`ctxbench merge`\n"
        "into MERGED.db) and DIR/submit.sh, which submits the array and the merge with an afterok dependency.",
    .options =
        {{.name = "--shards",
          .type = ParamType::integer,
          .help = "the number of shards (array tasks); required",
          .min = 1},
         {.name = "--dir", .type = ParamType::string, .help = "where the scripts go, by default slurm-SUITENAME"},
         {.name = "--db", .type = ParamType::string, .help = "the merged results database, by default DIR/merged.db"},
         {.name = "--partition", .type = ParamType::string, .help = "#SBATCH --partition"},
         {.name = "--gpus-per-task", .type = ParamType::string, .help = "#SBATCH --gpus-per-task"},
         {.name = "--time", .type = ParamType::string, .help = "#SBATCH --time"},
         {.name = "--cpus-per-task", .type = ParamType::string, .help = "#SBATCH --cpus-per-task"},
         {.name = "--mem", .type = ParamType::string, .help = "#SBATCH --mem"},
         {.name = "--submit", .type = ParamType::boolean, .help = "runs submit.sh"}},
    .run = slurm_command,
}};

}  // namespace
}  // namespace ctxbench
