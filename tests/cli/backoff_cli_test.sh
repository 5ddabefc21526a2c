#!/usr/bin/env bash
# End-to-end test of `rampart backoff set|clear|list` against one store engine
# (RAMPART_TEST_STORE=sqlite|pgsql; pgsql runs under tests/lab/with-postgres.sh, which sets
# RAMPART_PG_URL). Checks exit codes (64 usage, 65 unknown name, 78 unmigrated store), error
# texts naming the bad value, replace/clear semantics, and the JSON form of list.
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"
need=(python3)
[ "${RAMPART_TEST_STORE:-sqlite}" = sqlite ] && need+=(sqlite3)
cli_init "backoff cli" "${need[@]}"
cli_store

cat >"$work/rules.toml" <<'TOML'
[[stream]]
name = "bulk"
ports = [25]

[[stream]]
name = "alerts"
ports = [587]

[[operator]]
name = "google"
mx = [".google.com"]

[[operator]]
name = "microsoft"
mx = [".mail.protection.outlook.com"]
TOML

# --- help and a store that is not migrated yet ------------------------------------------------
expect 0 "--help lists backoff" -- r --help && contains "--help" "$out" "backoff set STREAM OPERATOR"
expect 0 "backoff --help" -- r backoff --help && contains "backoff --help" "$out" "rampart backoff clear"
expect 0 "backoff set --help" -- r backoff set --help && contains "set --help" "$out" "--until WHEN"
expect 0 "backoff list --help" -- r backoff list --help && contains "list --help" "$out" "--format"
expect 64 "backoff alone" -- r backoff && contains "backoff alone" "$err" "want set, clear or list"
expect 64 "unknown subcommand" -- r backoff frob && contains "unknown subcommand" "$err" '"frob"'
expect 78 "list before migrate" -- r backoff list && contains "list before migrate" "$err" "rampart db migrate"
expect 0 "db migrate" -- r db migrate
expect 0 "rules apply" -- r rules apply "$work/rules.toml"

# --- set, validation --------------------------------------------------------------------------
set_ok=(--until 6h --reason "421 4.7.0 [TSS04] rate limited")
expect 65 "unknown stream" -- r backoff set bluk google --factor 0.5 "${set_ok[@]}"
contains "unknown stream" "$err" 'unknown stream "bluk"'
contains "unknown stream lists known" "$err" "bulk, alerts"
expect 65 "unknown operator" -- r backoff set bulk gmail --factor 0.5 "${set_ok[@]}"
contains "unknown operator" "$err" 'unknown operator "gmail"'
contains "unknown operator lists known" "$err" "google, microsoft"
for f in 1.5 0 -0.5 abc 0.1234 1. 2; do
  expect 64 "bad factor $f" -- r backoff set bulk google --factor "$f" "${set_ok[@]}" &&
    contains "bad factor $f" "$err" "bad --factor \"$f\""
done
expect 64 "factor and pause" -- r backoff set bulk google --factor 0.5 --pause "${set_ok[@]}"
expect 64 "neither factor nor pause" -- r backoff set bulk google "${set_ok[@]}"
for u in tomorrow 6 2026-13-01 2026-11-23T25:00:00Z 2026-11-23T06:00:00; do
  expect 64 "bad until $u" -- r backoff set bulk google --factor 0.5 --until "$u" --reason x &&
    contains "bad until $u" "$err" "bad --until \"$u\""
done
expect 64 "until in the past" -- r backoff set bulk google --factor 0.5 --until 2020-01-01 --reason x
contains "until in the past" "$err" "not in the future"
expect 64 "missing until" -- r backoff set bulk google --factor 0.5 --reason x && contains "missing until" "$err" "--until WHEN is required"
expect 64 "missing reason" -- r backoff set bulk google --factor 0.5 --until 6h && contains "missing reason" "$err" "--reason TEXT is required"
expect 64 "reason without value" -- r backoff set bulk google --factor 0.5 --until 6h --reason
expect 64 "empty reason" -- r backoff set bulk google --factor 0.5 --until 6h --reason ""
expect 64 "missing operator" -- r backoff set bulk --factor 0.5 "${set_ok[@]}" && contains "missing operator" "$err" "want STREAM OPERATOR"
expect 64 "unknown option" -- r backoff set bulk google --factr 0.5 "${set_ok[@]}" && contains "unknown option" "$err" '"--factr"'
expect 0 "nothing stored by refusals" -- r backoff list --all --format json
[ "$out" = "[]" ] || fail "refused sets stored something: $out"

expect 0 "set factor" -- r backoff set bulk google --factor 0.5 "${set_ok[@]}"
contains "set factor" "$out" "set back-off: stream bulk operator google factor 0.50 until "
expect 0 "set pause" -- r backoff set bulk microsoft --pause --until 2099-01-01T06:00:00Z --reason "S3150 block"
contains "set pause" "$out" "factor pause until 2099-01-01T06:00:00Z"
expect 0 "replace" -- r backoff set bulk microsoft --factor=.25 --until=2099-01-02 --reason=delisted
contains "replace" "$out" "replaced back-off: stream bulk operator microsoft factor 0.25 until 2099-01-02T00:00:00Z"

# --- list --------------------------------------------------------------------------------------
expect 0 "list table" -- r backoff list
contains "list header" "$out" "STREAM"
contains "list header" "$out" "REMAINING"
contains "list google" "$out" "421 4.7.0 [TSS04] rate limited"
contains "list microsoft" "$out" "2099-01-02T00:00:00Z"
contains "list microsoft factor" "$out" "0.25"
lacks "list replaced pause" "$out" "S3150"
expect 0 "list json" -- r backoff list --format json
python3 - "$work/out" <<'PY' || fail "list json: unexpected content: $out"
import json, sys
rows = json.load(open(sys.argv[1]))
assert [(r["stream"], r["operator"]) for r in rows] == [("bulk", "google"), ("bulk", "microsoft")], rows
g, m = rows
assert g["permille"] == 500 and g["factor"] == "0.50" and g["active"] is True, g
assert 6 * 3600 - 120 <= g["remaining_seconds"] <= 6 * 3600, g
assert g["reason"] == "421 4.7.0 [TSS04] rate limited" and g["source"] == "cli", g
assert g["until"].endswith("Z") and g["created"].endswith("Z"), g
assert m["permille"] == 250 and m["factor"] == "0.25" and m["until"] == "2099-01-02T00:00:00Z", m
PY

# An expired back-off (classify wrote it long ago): shown only with --all.
sql "INSERT INTO backoffs (stream, operator, permille, until_at, reason, source, created_at) VALUES ('alerts', 'google', 0, 1000, 'old \"quoted\" reason', 'classify', 900)"
expect 0 "list hides expired" -- r backoff list --format json
lacks "list hides expired" "$out" '"alerts"'
expect 0 "list --all" -- r backoff list --all --format json
python3 - "$work/out" <<'PY' || fail "list --all json: unexpected content: $out"
import json, sys
rows = json.load(open(sys.argv[1]))
old = [r for r in rows if r["stream"] == "alerts"]
assert len(rows) == 3 and len(old) == 1, rows
o = old[0]
assert o["active"] is False and o["remaining_seconds"] == 0 and o["factor"] == "pause", o
assert o["until"] == "1970-01-01T00:16:40Z" and o["reason"] == 'old "quoted" reason', o
assert o["source"] == "classify", o
PY
expect 0 "list --all table" -- r backoff list --all && contains "list --all table" "$out" "expired"
expect 64 "list bad format" -- r backoff list --format yaml && contains "list bad format" "$err" 'bad --format "yaml"'
expect 64 "list extra arg" -- r backoff list bulk

# --- clear -------------------------------------------------------------------------------------
expect 0 "clear" -- r backoff clear bulk google && contains "clear" "$out" "cleared back-off for stream bulk operator google"
expect 0 "clear again" -- r backoff clear bulk google && contains "clear again" "$out" "no back-off for stream bulk operator google"
# Not checked against the rules: a pair whose stream was removed must stay clearable.
expect 0 "clear unknown pair" -- r backoff clear gone google && contains "clear unknown pair" "$out" "no back-off"
expect 0 "clear expired" -- r backoff clear alerts google && contains "clear expired" "$out" "cleared"
expect 64 "clear one name" -- r backoff clear bulk
expect 0 "list after clear" -- r backoff list --all --format json
python3 - "$work/out" <<'PY' || fail "list after clear: unexpected content: $out"
import json, sys
rows = json.load(open(sys.argv[1]))
assert [(r["stream"], r["operator"]) for r in rows] == [("bulk", "microsoft")], rows
PY

# --- a store that cannot be reached ------------------------------------------------------------
expect 75 "postgres down" -- "$bin" --config "$cfg" --store "postgresql:///rampart?host=/nonexistent-rampart-sock&connect_timeout=1" backoff list

cli_finish
