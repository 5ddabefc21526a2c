#!/usr/bin/env bash
# Runs the benchmarks on demand (never in CI's test run) from a ci or release build and prints
# rampart's ns/lookup next to the peer's, with the ratio. Usage: tests/bench/run.sh [BUILD_DIR]
# The policy daemon's benchmark runs on its own (root, a lab namespace, about 2 minutes):
# tests/bench/policyd_bench.sh [BUILD_DIR], rampart-policyd against postfwd and an always-DUNNO
# ceiling server over real sockets (throughput, p50/p99 latency, server CPU per request).
# The log classifier's benchmark also runs on its own (about a minute at 1 GiB):
# tests/bench/classify_bench.sh [BUILD_DIR], `rampart classify --dry-run` against pflogsumm and
# wc -l on the same generated ~1 GiB mail log (MB/s, ratios, max RSS at 1/4 and full size);
# `tests/bench/run.sh BUILD_DIR --classify` runs it after the Google Benchmark programs.
# DMARC ingest likewise (about a minute): tests/bench/dmarc_bench.sh [BUILD_DIR], `rampart dmarc
# ingest` cross-checked and timed against dmarc-cat on the shared corpus and 10,000 reports built
# from it; `tests/bench/run.sh BUILD_DIR --dmarc` runs it after the Google Benchmark programs.
set -euo pipefail
build=${1:-build/ci}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for name in rules milter classify; do
  bin="$build/tests/bench/rampart_bench_$name"
  [ -x "$bin" ] || { echo "run.sh: $bin not built (cmake --preset ci && cmake --build --preset ci)" >&2; exit 1; }
  "$bin" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true --benchmark_format=json >"$out/$name.json"
done
python3 - "$out" <<'PY'
import json, sys, os
runs = {}
for f in os.listdir(sys.argv[1]):
    for b in json.load(open(os.path.join(sys.argv[1], f)))["benchmarks"]:
        if b.get("aggregate_name") == "median":
            runs[b["run_name"]] = b
def ns(name):
    b = runs[name]
    scale = {"ns": 1, "us": 1e3, "ms": 1e6}[b["time_unit"]]
    return b["cpu_time"] * scale
ours, peer = ns("BM_exclusion_lookup_rampart"), ns("BM_exclusion_lookup_naive_unordered_set")
print(f"exclusion lookup, 10,000 domains: rampart {ours:.1f} ns/lookup, naive unordered_set {peer:.1f} ns/lookup, "
      f"ratio {peer/ours:.2f}x (target < 200 ns)")
print(f"stream resolution: {ns('BM_stream_resolution'):.1f} ns/message")
for arg, label in ((0, "delivery mix"), (1, "late rule"), (2, "no rule (fallback)")):
    s, l = ns(f"BM_classify_set/{arg}"), ns(f"BM_classify_linear/{arg}")
    print(f"classify, shipped table, {label}: RE2::Set {s:.0f} ns/reply, rule-by-rule {l:.0f} ns/reply, ratio {l/s:.2f}x")
rcpt, lookup = ns("BM_milter_rcpt_decision"), ns("BM_ruleset_lookup_only")
print(f"milter RCPT decision: {rcpt:.1f} ns/recipient (bare RuleSet lookup {lookup:.1f} ns, ratio {rcpt/lookup:.2f}x; "
      f"target < 2000 ns)")
print(f"milter whole-message decision (MAIL, 3 RCPT, 6 headers, 2-part body, EOM): "
      f"{ns('BM_milter_message_decision'):.0f} ns/message")
PY

# On request, the same question through a real Postfix: `tests/bench/run.sh BUILD_DIR --postfix
# [MESSAGES [SESSIONS [SIZE]]]` then runs tests/bench/milter_throughput.sh (root; smtp-source through
# Postfix+OpenDKIM with and without rampart-milter, rounds A B B A; see its header).
postfix_args=()
want_postfix=""
want_classify=""
want_dmarc=""
for arg in "${@:2}"; do
  if [[ $arg == --classify ]]; then
    want_classify=1
  elif [[ $arg == --dmarc ]]; then
    want_dmarc=1
  elif [[ $arg == --postfix ]]; then
    want_postfix=1
  elif [[ -n $want_postfix ]]; then
    postfix_args+=("$arg")
  fi
done
if [[ -n $want_postfix ]]; then
  "$(dirname "$0")/milter_throughput.sh" "$build" "${postfix_args[@]}"
fi
if [[ -n $want_classify ]]; then
  "$(dirname "$0")/classify_bench.sh" "$build"
fi
if [[ -n $want_dmarc ]]; then
  "$(dirname "$0")/dmarc_bench.sh" "$build"
fi
