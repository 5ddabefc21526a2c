#!/usr/bin/env bash
# End-to-end test of `rampart caps` against one store engine (RAMPART_TEST_STORE=sqlite|pgsql;
# pgsql runs under tests/lab/with-postgres.sh, which sets RAMPART_PG_URL). Applies rules with a
# send-days ramp, a daily ceiling, a cap and a gate; sets a back-off through the CLI; writes use
# straight into the counters (no CLI charges them) and a lease; checks the warm-up day, every
# limit and its use, reopening and lifting times, leases, --stream, and exit codes.
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"
need=(python3)
[ "${RAMPART_TEST_STORE:-sqlite}" = sqlite ] && need+=(sqlite3)
cli_init "caps cli" "${need[@]}"
cli_store

# Warm-up started three days ago, counted in send-days of at least 5 recipients; the ramp steps
# up on warm-up day 2; google is gated until day 30, microsoft capped at 120 a day.
now=$(date +%s)
day=$((now / 86400))
minute=$((now / 60))
start=$(date -u -d "@$(((day - 3) * 86400))" +%F)
tomorrow=$(date -u -d "@$(((day + 1) * 86400))" +%FT%TZ)
cat >"$work/rules.toml" <<TOML
[[stream]]
name = "bulk"
ports = [25]
transport = "out05"
warmup = { start = "$start", count = "send-days", ramp = "consumer", min_daily = 5 }
daily_ceiling = 40
over_cap = "hold"

[[stream]]
name = "alerts"
ports = [587]
transport = "out06"

[[ramp]]
name = "consumer"
steps = [ { day = 0, hourly = 10 }, { day = 2, hourly = 20 } ]

[[operator]]
name = "google"
mx = [".google.com"]

[[operator]]
name = "microsoft"
mx = [".mail.protection.outlook.com"]

[[operator]]
name = "yahoo"
mx = [".yahoodns.net"]

[[cap]]
stream = "bulk"
operator = "google"
daily = 0
until_day = 30

[[cap]]
stream = "bulk"
operator = "microsoft"
daily = 120
TOML

# --- help, usage and a store that is not migrated yet ------------------------------------------
expect 0 "--help lists caps" -- r --help && contains "--help" "$out" "caps [--stream S]"
expect 0 "caps --help" -- r caps --help && contains "caps --help" "$out" "usage: rampart caps"
expect 64 "bad format" -- r caps --format yaml && contains "bad format" "$err" 'bad --format "yaml"'
expect 64 "stray argument" -- r caps bulk && contains "stray argument" "$err" 'unexpected argument "bulk"'
expect 64 "--stream without value" -- r caps --stream
expect 78 "caps before migrate" -- r caps && contains "caps before migrate" "$err" "rampart db migrate"
expect 0 "db migrate" -- r db migrate
expect 0 "no rules yet" -- r caps && contains "no rules yet" "$out" "no streams in the rules"
expect 0 "no rules yet, json" -- r caps --format json
[ -z "$out" ] || fail "no rules yet, json: want no output, got: $out"
expect 0 "rules apply" -- r rules apply "$work/rules.toml"
expect 65 "unknown stream" -- r caps --stream bluk
contains "unknown stream" "$err" 'unknown stream "bluk" (known: bulk, alerts)'

# --- nothing used yet ------------------------------------------------------------------------------
expect 0 "fresh json" -- r caps --format json
python3 - "$work/out" <<'PY' || fail "fresh json: unexpected content: $out"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [s["stream"] for s in rows] == ["bulk", "alerts"], rows
b, a = rows
# Send-days: no day reached min_daily yet, so warm-up day 0 and the first ramp step.
assert b["warmup"]["day"] == 0 and b["warmup"]["count"] == "send-days", b["warmup"]
assert b["hourly"] == {"kind": "hourly", "scope": "hour:bulk", "used": 0, "limit": 10,
                       "reopens": None, "lifts": None, "detail": ""}, b["hourly"]
assert b["day"]["kind"] == "daily_ceiling" and b["day"]["limit"] == 40, b["day"]
ops = {o["operator"]: o for o in b["operators"]}
assert set(ops) == {"google", "microsoft"}, ops  # yahoo: no limit, no use
assert ops["google"]["kind"] == "gate" and ops["google"]["limit"] == 0, ops["google"]
assert ops["google"]["detail"] == "until warm-up day 30", ops["google"]
assert ops["microsoft"]["kind"] == "cap" and ops["microsoft"]["limit"] == 120, ops["microsoft"]
assert b["backoffs"] == [] and b["leases"] == [], b
assert a["warmup"] is None and a["hourly"] is None, a
assert a["day"]["kind"] == "day" and a["day"]["limit"] is None, a["day"]  # counted, no ceiling
assert a["operators"] == [], a
PY

# --- use, history, a back-off and a lease ------------------------------------------------------
# Days -3 and -1 reached min_daily (5): warm-up day 2, hourly 20. The hour holds 20 (full: it
# reopens when the oldest bucket leaves the window); the day 40 of 40; microsoft 60 of its
# backed-off 60; yahoo 4 with no limit; "gone", an operator no longer in the rules, 1.
sql "INSERT INTO counters (scope, bucket, used) VALUES
  ('day:bulk', $((day - 3)), 10), ('day:bulk', $((day - 2)), 2), ('day:bulk', $((day - 1)), 7),
  ('day:bulk', $day, 40),
  ('hour:bulk', $((minute - 30)), 15), ('hour:bulk', $((minute - 5)), 5),
  ('hour:bulk', $((minute - 300)), 99),
  ('op:bulk/microsoft', $day, 60), ('op:bulk/microsoft', $((day - 1)), 500),
  ('op:bulk/yahoo', $day, 4), ('op:bulk/gone', $day, 1), ('day:alerts', $day, 3)"
sql "INSERT INTO leases (host, scope, bucket, units, expires_at, created_at) VALUES
  ('mta1', 'hour:bulk', $((minute + 1)), 2, $((now + 60)), $now),
  ('mta2', 'day:alerts', $day, 1, $((now + 60)), $now),
  ('mta1', 'day:bulkier', $day, 1, $((now + 60)), $now)"
expect 0 "backoff set" -- r backoff set bulk microsoft --factor 0.5 --until 2099-01-01 --reason "421 4.7.0 [TSS04]"

expect 0 "used json" -- r caps --format json
python3 - "$work/out" "$minute" "$tomorrow" <<'PY' || fail "used json: unexpected content: $out"
import json, sys, datetime
rows = [json.loads(l) for l in open(sys.argv[1])]
minute, tomorrow = int(sys.argv[2]), sys.argv[3]
b, a = rows
assert b["warmup"]["day"] == 2, b["warmup"]
h = b["hourly"]
assert h["limit"] == 20 and h["used"] == 20, h
# Full: it reopens once bucket minute-30 leaves the sliding hour, at 60*(m+1)+3600.
want = datetime.datetime.fromtimestamp(60 * (minute - 30 + 1) + 3600, datetime.timezone.utc)
assert h["reopens"] == want.strftime("%Y-%m-%dT%H:%M:%SZ"), (h, want)
d = b["day"]
assert d["used"] == 40 and d["limit"] == 40 and d["reopens"] == tomorrow, d
ops = {o["operator"]: o for o in b["operators"]}
assert list(ops) == ["google", "microsoft", "yahoo", "gone"], list(ops)
m = ops["microsoft"]
assert m["kind"] == "backoff" and m["limit"] == 60 and m["used"] == 60, m
assert m["lifts"] == "2099-01-01T00:00:00Z" and m["reopens"] == tomorrow, m
assert m["detail"] == "421 4.7.0 [TSS04] (factor 0.5, cli)", m
assert ops["yahoo"]["kind"] == "none" and ops["yahoo"]["used"] == 4, ops["yahoo"]
assert ops["yahoo"]["limit"] is None, ops["yahoo"]
assert ops["gone"]["detail"] == "operator not in the rules" and ops["gone"]["used"] == 1
assert ops["google"]["used"] == 0 and ops["google"]["reopens"] is None, ops["google"]
assert b["backoffs"] == [{"operator": "microsoft", "permille": 500, "until": "2099-01-01T00:00:00Z",
                          "reason": "421 4.7.0 [TSS04]", "source": "cli"}], b["backoffs"]
assert [(l["host"], l["scope"], l["units"]) for l in b["leases"]] == [("mta1", "hour:bulk", 2)], b
assert a["day"]["used"] == 3, a["day"]
assert [(l["host"], l["scope"]) for l in a["leases"]] == [("mta2", "day:alerts")], a
PY

expect 0 "used table" -- r caps
contains "table header" "$out" "stream bulk: warm-up day 2 (send-days from $start, ramp consumer, min_daily 5); over_cap hold"
contains "table alerts" "$out" "stream alerts: no warm-up; over_cap defer"
has_line "table hourly" "$out" '^  hourly +- +20 +20 +[0-9T:-]+Z +- *$'
has_line "table ceiling" "$out" "^  daily_ceiling +- +40 +40 +$tomorrow +- *\$"
has_line "table gate" "$out" '^  gate +google +0 +0 +- +- +until warm-up day 30$'
has_line "table backoff" "$out" "^  backoff +microsoft +60 +60 +$tomorrow +2099-01-01T00:00:00Z +421 4\.7\.0 \[TSS04\] \(factor 0\.5, cli\)\$"
has_line "table yahoo" "$out" '^  none +yahoo +4 +- +- +- *$'
has_line "table lease" "$out" '^  mta1 +hour:bulk +2 +[0-9T:-]+Z$'
has_line "table alerts day" "$out" '^  day +- +3 +- +- +- *$'

expect 0 "--stream" -- r caps --stream=alerts --format json
python3 - "$work/out" <<'PY' || fail "--stream: unexpected content: $out"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [s["stream"] for s in rows] == ["alerts"], rows
PY
expect 0 "--stream table" -- r caps --stream bulk
lacks "--stream table" "$out" "stream alerts"

# --- a store that cannot be reached ------------------------------------------------------------
expect 75 "postgres down" -- "$bin" --config "$cfg" --store "postgresql:///rampart?host=/nonexistent-rampart-sock&connect_timeout=1" caps

cli_finish
