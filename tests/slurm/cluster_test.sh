#!/usr/bin/env bash
# Starts a single-node Slurm cluster on this machine, runs a small suite as a sharded array job through
# `ctxbench slurm --submit`, and checks the merged database equals a single-machine run of the same suite.
# Exits 77 (ctest: skipped) when Slurm or root is not available; under CI=true that is a failure, since
# scripts/setup.sh installs Slurm and CI runs as root.
set -euo pipefail
binary=$1
source_dir=$2
skip() {
  if [ "${CI:-}" = true ]; then
    echo "FAIL: CI=true, but $1"
    exit 1
  fi
  echo "SKIP: $1"
  exit 77
}
for tool in slurmctld slurmd sbatch scontrol munged; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || skip "$tool not installed (scripts/setup.sh installs Slurm)"
done
[ "$(id -u)" -eq 0 ] || skip "starting slurmctld here needs root"

work=$(mktemp -d /tmp/ctxbench-slurm-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$work" || true
}
trap cleanup EXIT

node=$(hostname -s)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p "$work/ctld" "$work/d" /run/munge
chown munge:munge /run/munge
if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged
  pids+=("$(pgrep -n -x munged)")
fi
cat > "$work/slurm.conf" <<CONF
ClusterName=ctxbench-test
SlurmctldHost=$node
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=$work/ctld
SlurmdSpoolDir=$work/d
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldPort=16817
SlurmdPort=16818
ReturnToService=2
MailProg=/bin/true
MpiDefault=none
DependencyParameters=kill_invalid_depend
NodeName=$node CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$work/slurm.conf
/usr/sbin/slurmctld -f "$SLURM_CONF" -L "$work/slurmctld.log"
/usr/sbin/slurmd -f "$SLURM_CONF" -L "$work/slurmd.log"
for _ in $(seq 50); do
  [ -s "$work/slurmctld.pid" ] && [ -s "$work/slurmd.pid" ] && break
  sleep 0.2
done
pids+=("$(cat "$work/slurmctld.pid")" "$(cat "$work/slurmd.pid")")
for _ in $(seq 60); do
  sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed" && break
  sleep 0.5
done
sinfo

cat > "$work/suite.json" <<'SUITE'
{"name": "slurm-check", "engines": [{"name": "dense"}],
 "tasks": [{"name": "attention_needle", "params": {"heads_q": 2, "heads_kv": 1, "head_dim": 16, "queries": 2}}],
 "context_lengths": [64, 128, 256, 512], "depths": [0, 50, 100], "seeds": [0, 1]}
SUITE
"$binary" slurm "$work/suite.json" --shards 3 --dir "$work/jobs" --db "$work/merged.db" --submit | tee "$work/submit.out"
merge_job=$(sed -n 's/.*merge job \([0-9]*\).*/\1/p' "$work/submit.out")
for _ in $(seq 240); do
  state=$(scontrol show job "$merge_job" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
  case "$state" in COMPLETED|FAILED|CANCELLED|TIMEOUT) break ;; esac
  sleep 0.5
done
echo "merge job $merge_job: $state"
cat "$work/jobs/merge.log" || true
[ "$state" = COMPLETED ] || { cat "$work/jobs"/shard-*.log "$work/slurmctld.log" | tail -50; exit 1; }

"$binary" run "$work/suite.json" --db "$work/single.db" > /dev/null
query="SELECT c.key, m.metric, m.value FROM cells c JOIN measurements m ON m.cell_id = c.id
       WHERE m.metric IN ('needle_recall', 'output_rel_error', 'kv_bytes_read', 'keys_attended_mean') ORDER BY 1, 2"
merged=$(sqlite3 "$work/merged.db" "$query")
single=$(sqlite3 "$work/single.db" "$query")
cells=$(sqlite3 "$work/merged.db" "SELECT COUNT(*) FROM cells")
[ "$cells" -eq 24 ] || { echo "FAIL: merged database has $cells cells, expected 24"; exit 1; }
[ "$merged" = "$single" ] || { echo "FAIL: merged values differ from a single-machine run"; diff <(echo "$merged") <(echo "$single") | head; exit 1; }
echo "PASS: 3 shards on Slurm merged into 24 cells equal to a single-machine run"
