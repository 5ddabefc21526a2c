#!/usr/bin/env bash
# End-to-end test of the `rampart` CLI against one store engine (RAMPART_TEST_STORE=sqlite|pgsql;
# pgsql runs under tests/lab/with-postgres.sh, which sets RAMPART_PG_URL). Checks exit codes,
# error texts naming file:line and key, "a bad file changes nothing", and the rules round trip.
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"
cli_init cli
src=${RAMPART_SOURCE_DIR:?}
cli_store
shipped=("$src"/packaging/rules/*.toml "$src/packaging/rules/rules.toml.example")

# --- usage and configuration -------------------------------------------------------------
expect 0 "--help" -- r --help && contains "--help" "$out" "rules apply"
expect 64 "unknown command" -- r frobnicate && contains "unknown command" "$err" "unknown command 'frobnicate'"
expect 64 "rules without files" -- r rules check
expect 0 "--print-defaults" -- r --print-defaults && contains "--print-defaults" "$out" "[store]"
r --print-defaults >"$work/defaults.toml"
expect 0 "defaults parse back" -- "$bin" --config "$work/defaults.toml" --check-config
printf '[store]\nurll = "x"\n' >"$work/bad.conf"
expect 78 "bad config" -- "$bin" --config "$work/bad.conf" --check-config && contains "bad config" "$err" 'unknown key "urll"'
expect 78 "missing explicit config" -- "$bin" --config "$work/nope.toml" rules list

# --- rules check (no store) -----------------------------------------------------------------
expect 0 "check shipped + example" -- r rules check "${shipped[@]}" && contains "check" "$out" "ok: 2 streams"

# --- a store that is not migrated yet ---------------------------------------------------------
expect 78 "apply before migrate" -- r rules apply "${shipped[@]}" && contains "apply before migrate" "$err" "rampart db migrate"
expect 0 "db migrate" -- r db migrate && contains "db migrate" "$out" "schema version 0 -> 5"
expect 0 "db migrate again" -- r db migrate && contains "db migrate again" "$out" "up to date"

# --- apply, list, export ----------------------------------------------------------------------
expect 0 "apply shipped + example" -- r rules apply "${shipped[@]}" && contains "apply" "$out" "applied rules version 1"
expect 0 "list operators" -- r rules list --kind operator
contains "list operators" "$out" "microsoft-365"
contains "list operators origin" "$out" "operators.toml:"
case "$out" in *stream*trucking*) fail "list --kind operator showed a stream" ;; esac
expect 0 "list classify" -- r rules list --kind classify
contains "list classify" "$out" "ms-server-busy"
contains "list classify detail" "$out" "outcome=throttled category=policy-related"
contains "list classify origin" "$out" "classify.toml:"
case "$out" in *operator*microsoft-365*mx=*) fail "list --kind classify showed an operator" ;; esac
expect 64 "list bad kind" -- r rules list --kind streams
expect 0 "export json" -- r rules export --format json
cp "$work/out" "$work/v1.json"
expect 0 "export toml" -- r rules export --format toml
cp "$work/out" "$work/v1.toml"

# --- bad files are refused with file:line and key, exit 78, and change nothing ----------------
bad() {  # bad LABEL WANT TEXT
  printf '%s' "$3" >"$work/bad.toml"
  expect 78 "$1" -- r rules apply "$work/bad.toml" && contains "$1" "$err" "$2"
  expect 78 "$1 (check)" -- r rules check "$work/bad.toml"
}
bad "malformed TOML" "bad.toml:2:" $'[[stream]]\nname = "x\n'
bad "unknown key" 'bad.toml:3: stream "bulk": unknown key "port"' $'[[stream]]\nname = "bulk"\nport = 25\n'
bad "bad CIDR" 'bad.toml:3: stream "bulk": bad CIDR "10.0.0.0/40"' $'[[stream]]\nname = "bulk"\nclients = ["10.0.0.0/40"]\n'
bad "duplicate name" 'duplicate name (first defined at' $'[[ramp]]\nname = "r"\nsteps = [{day = 0, hourly = 1}]\n[[ramp]]\nname = "r"\nsteps = [{day = 0, hourly = 1}]\n'
bad "cap unknown stream" 'unknown stream "nope"' $'[[operator]]\nname = "g"\nmx = [".example.net"]\n[[cap]]\nstream = "nope"\noperator = "g"\ndaily = 1\n'
bad "cap unknown operator" 'unknown operator "nope"' $'[[stream]]\nname = "s"\nports = [25]\n[[cap]]\nstream = "s"\noperator = "nope"\ndaily = 1\n'
bad "unsorted ramp" 'steps must be sorted by day' $'[[ramp]]\nname = "r"\nsteps = [{day = 0, hourly = 1}, {day = 5, hourly = 2}, {day = 3, hourly = 3}]\n'
bad "classify dead test line" 'classify "b": test "550 user unknown" hits rule "a"' $'[[classify]]\nid = "a"\nreply = \'unknown\'\noutcome = "reject_recipient"\ncategory = "bad-mailbox"\ntests = ["550 unknown"]\n[[classify]]\nid = "b"\nreply = \'user unknown\'\noutcome = "reject_recipient"\ncategory = "bad-mailbox"\ntests = ["550 user unknown"]\n'
bad "classify bad pattern" 'bad.toml:3: classify "a": bad pattern "(x"' $'[[classify]]\nid = "a"\nreply = \'(x\'\noutcome = "reject_other"\ncategory = "other"\ntests = ["550 x"]\n'
bad "reject without 5.x.x" 'a reject needs a 5.x.x status' $'[[exclusion]]\ncategory = "c"\naction = "reject"\nstatus = "4.2.0"\n'
expect 78 "missing file" -- r rules apply "$work/does-not-exist.toml" && contains "missing file" "$err" "does-not-exist.toml"
expect 0 "export after refusals" -- r rules export --format json
cmp -s "$work/out" "$work/v1.json" || fail "a refused apply changed the store"
expect 0 "db status" -- r db status && contains "db status" "$out" "rules_version: 1"

# --- round trip: the TOML export applies back to the same rules -------------------------------
expect 0 "apply export" -- r rules apply "$work/v1.toml" && contains "apply export" "$out" "applied rules version 2"
expect 0 "export json again" -- r rules export --format json
cmp -s "$work/out" "$work/v1.json" || { fail "round trip changed the rules"; diff "$work/v1.json" "$work/out" | head -20 >&2; }
# ... and into a second, SQLite store: both engines give the same JSON.
expect 0 "second store migrate" -- "$bin" --config "$cfg" --store "sqlite://$work/second.db" db migrate
expect 0 "second store apply" -- "$bin" --config "$cfg" --store "sqlite://$work/second.db" rules apply "${shipped[@]}"
expect 0 "second store export" -- "$bin" --config "$cfg" --store "sqlite://$work/second.db" rules export --format json
cmp -s "$work/out" "$work/v1.json" || fail "the same files gave different JSON in a second store"

# --- a store that cannot be reached ------------------------------------------------------------
expect 75 "postgres down" -- "$bin" --config "$cfg" --store "postgresql:///rampart?host=/nonexistent-rampart-sock&connect_timeout=1" rules list
expect 78 "sqlite dir missing" -- "$bin" --config "$cfg" --store "sqlite:///nonexistent-rampart-dir/x.db" rules list
expect 78 "bad url" -- "$bin" --config "$cfg" --store "mysql://x" rules list

# --- the PostgreSQL engine is a module, loaded for postgresql:// only -------------------------
# No libpq at start (it brought twenty-odd libraries into every command on SQLite), and a copy
# of the program outside the build tree looks for the installed engine: without one it says
# so, exit 78, rather than failing to start.
if ldd "$bin" | grep -q 'libpq'; then fail "rampart links libpq: the engine should be a module"; fi
cp "$bin" "$work/rampart-elsewhere"
expect 78 "engine not installed" -- "$work/rampart-elsewhere" --config "$cfg" --store "postgresql:///rampart?host=/nonexistent-rampart-sock&connect_timeout=1" rules list
case "$err" in
  *"cannot load the PostgreSQL store engine"*"store-pgsql.so"* | *"built without PostgreSQL support"*) ;;
  *) fail "engine not installed: unexpected message: $err" ;;
esac

cli_finish
