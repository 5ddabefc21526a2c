#!/usr/bin/env bash
# The README's test command: on a fresh Debian 12 machine, as root, installs every build and test
# dependency, then builds and runs every test tier three times over:
#   1. preset ci    (-Werror, optimised; unit, lint, store and CLI on SQLite and PostgreSQL,
#                    the lab integration tests; benchmarks are built, not run)
#   2. preset asan  (the same suite under AddressSanitizer + UndefinedBehaviorSanitizer)
#   3. preset fuzz  (clang libFuzzer harnesses, a short bounded run each)
# Exits non-zero on the first failure. Set RAMPART_TEST_SKIP_ASAN=1 / RAMPART_TEST_SKIP_FUZZ=1
# to shorten a local run.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

# A skipped integration test (missing tool, not root) is a failure here: this command promises
# that every test ran.
export RAMPART_REQUIRE_INTEGRATION=1
jobs=$(nproc)

run_preset() {
  local preset=$1
  echo "==> preset $preset: configure and build"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  echo "==> preset $preset: test"
  ctest --preset "$preset" -j "$jobs"
}

run_preset ci
if [ "${RAMPART_TEST_SKIP_ASAN:-0}" != 1 ]; then run_preset asan; fi
if [ "${RAMPART_TEST_SKIP_FUZZ:-0}" != 1 ]; then run_preset fuzz; fi
echo "==> all test tiers passed"
