#!/usr/bin/env bash
# Runs the benchmarks on demand (never in CI's test run) from a ci or release build and prints
# rampart's ns/lookup next to the peer's, with the ratio. Usage: tests/bench/run.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build/ci}
bin="$build/tests/bench/rampart_bench_rules"
[ -x "$bin" ] || { echo "run.sh: $bin not built (cmake --preset ci && cmake --build --preset ci)" >&2; exit 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$bin" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true --benchmark_format=json >"$out"
python3 - "$out" <<'PY'
import json, sys
runs = {b["run_name"]: b for b in json.load(open(sys.argv[1]))["benchmarks"] if b.get("aggregate_name") == "median"}
def ns(name):
    b = runs[name]
    scale = {"ns": 1, "us": 1e3, "ms": 1e6}[b["time_unit"]]
    return b["cpu_time"] * scale
ours, peer = ns("BM_exclusion_lookup_rampart"), ns("BM_exclusion_lookup_naive_unordered_set")
print(f"exclusion lookup, 10,000 domains: rampart {ours:.1f} ns/lookup, naive unordered_set {peer:.1f} ns/lookup, "
      f"ratio {peer/ours:.2f}x (target < 200 ns)")
print(f"stream resolution: {ns('BM_stream_resolution'):.1f} ns/message")
PY
