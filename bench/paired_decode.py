#!/usr/bin/env python3
"""Decode benchmarks paired with the roofline, for a machine whose load moves while it is measured.

For every dtype and key count, one ctxbench-bench process runs the read-bandwidth roofline and the decode
benchmark back to back (5 repetitions, medians), so each ratio compares figures taken under the same load;
each given binary runs in turn for the same configuration. Prints one line per (binary, dtype, keys) and
writes them all as JSON.

    python3 bench/paired_decode.py OUT.json BINARY [BINARY ...]
"""
import json
import re
import subprocess
import sys
import time

REPS = ["--benchmark_repetitions=5", "--benchmark_report_aggregates_only=true"]
MEDIAN = re.compile(r"(\S+)_median\s+[\d.]+ ms\s+[\d.]+ ms\s+\d+\s+(.*)")


def run(binary, pattern):
    out = subprocess.run(["nice", "-n", "19", binary, f"--benchmark_filter={pattern}"] + REPS,
                         capture_output=True, text=True, check=True).stdout
    medians = {}
    for line in out.splitlines():
        m = MEDIAN.match(line)
        if m:
            counters = dict(re.findall(r"(\w+)=([\d.]+)", m.group(2)))
            medians[m.group(1).replace("/real_time", "")] = {k: float(v) for k, v in counters.items()}
    return medians


def measure(binary, dtype, keys):
    two = run(binary, f"BM_roofline_read_bandwidth/2|^decode/dense/{dtype}/{keys}/")
    one = run(binary, f"BM_roofline_read_bandwidth/1|^decode_1thread/dense/{dtype}/{keys}/")
    # Sparse over 1/8 of the blocks against dense over as many keys: the dense rate over the sparse rate.
    sparse = run(binary, f"^decode/sparse8_gqa/{dtype}/{keys}/|^decode/dense/{dtype}/{keys // 8}/")
    return {
        "roofline_2": two["BM_roofline_read_bandwidth/2"]["GBps"],
        "dense_2": two[f"decode/dense/{dtype}/{keys}"]["GBps"],
        "roofline_1": one["BM_roofline_read_bandwidth/1"]["GBps"],
        "dense_1": one[f"decode_1thread/dense/{dtype}/{keys}"]["GBps"],
        "sparse_cost_per_key": sparse[f"decode/dense/{dtype}/{keys // 8}"]["GFLOPs"] /
        sparse[f"decode/sparse8_gqa/{dtype}/{keys}"]["GFLOPs"],
        "utc": time.strftime("%H:%M:%S", time.gmtime()),
        "load": float(open("/proc/loadavg").read().split()[0]),
    }


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out_path, binaries = sys.argv[1], sys.argv[2:]
    results = []
    for dtype in ["f32", "f16", "bf16"]:
        for keys in [4096, 16384, 65536, 262144]:
            for binary in binaries:
                r = {"binary": binary, "dtype": dtype, "keys": keys, **measure(binary, dtype, keys)}
                results.append(r)
                print(f"{binary} {dtype} {keys}: 2 threads {r['dense_2']:.1f} GB/s "
                      f"({r['dense_2'] / r['roofline_2']:.2f}), 1 thread {r['dense_1']:.1f} "
                      f"({r['dense_1'] / r['roofline_1']:.2f}), sparse/dense per key "
                      f"{r['sparse_cost_per_key']:.2f}, load {r['load']}", flush=True)
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
