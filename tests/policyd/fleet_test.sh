#!/bin/bash
# fleet_test.sh: two rampart-policyd processes (two "MTA hosts") share one PostgreSQL store and
# are hammered at once on the same limits (tests/policyd/policy_hammer.py):
#   (a) a stream x operator daily cap of 200: the fleet accepts at most 200, and at least 200
#       minus the lease slack (one lease block, core::lease_block(200) = 4, that the other host
#       may still hold when the requests run out);
#   (b) a stream's sliding-hour ramp step of 150 (lease block 3): at most 150, at least 147;
#   (c) after both stop (TERM hands unspent leases back), the shared counters equal exactly what
#       the fleet accepted, and no lease is left outstanding;
#   (d) PostgreSQL goes away under a running daemon: it keeps spending the budget it holds, then
#       answers per on_store_error (DEFER_IF_PERMIT 4.3.0) where it would need a new lease.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lab/lab.sh
source "$here/../lab/lab.sh"

readonly CLIENT_IP=192.0.2.25
readonly MS_MX=contoso-example.mail.protection.outlook.com.test MS_MX_IP=198.51.100.10
readonly CAP=200 HOURLY=150 CAP_SLACK=4 HOURLY_SLACK=3

lab_require unbound python3 psql
policyd_bin=${RAMPART_POLICYD_BIN:-}
cli_bin=${RAMPART_BIN:-}
[[ -n $policyd_bin && -x $policyd_bin ]] || lab_skip "rampart-policyd not found (set RAMPART_POLICYD_BIN)"
[[ -n $cli_bin && -x $cli_bin ]] || lab_skip "rampart not found (set RAMPART_BIN)"

lab_init fleet
lab_addr "$CLIENT_IP"
lab_dns_zone example
lab_dns_zone test
lab_dns_mx contoso.example 10 "$MS_MX"
lab_dns_a "$MS_MX" "$MS_MX_IP"
lab_dns_start
lab_pg_start
url=$(lab_pg_url)

today=$(date -u +%F)
{
  printf '[[stream]]\nname = "fleet"\nports = [25]\ntransport = "out05"\n\n'
  printf '[[stream]]\nname = "spare"\nports = [2527]\ntransport = "out05"\n'
  printf 'daily_ceiling = 100000\n\n'
  printf '[[stream]]\nname = "fresh"\nports = [2528]\ntransport = "out05"\n\n'
  printf '[[stream]]\nname = "paused"\nports = [2529]\ntransport = "out05"\n\n'
  printf '[[stream]]\nname = "ramped"\nports = [2526]\ntransport = "out05"\n'
  printf 'warmup = { start = "%s", count = "calendar", ramp = "r150" }\n\n' "$today"
  printf '[[ramp]]\nname = "r150"\nsteps = [ { day = 0, hourly = %s } ]\n\n' "$HOURLY"
  printf '[[operator]]\nname = "microsoft"\nmx = [".mail.protection.outlook.com.test"]\n\n'
  printf '[[cap]]\nstream = "fleet"\noperator = "microsoft"\ndaily = %s\n' "$CAP"
} >"$LAB_DIR/rules.toml"
for host in a b; do
  port=10041
  [[ $host == b ]] && port=10042
  {
    printf '[store]\nurl = "%s"\nconnect_timeout = "1s"\n' "$url"
    printf '[policyd]\nlisten = ["inet:127.0.0.1:%s"]\ndns_servers = ["127.0.0.1:53"]\n' "$port"
    printf 'host_id = "host-%s"\nrules_poll_interval = "1s"\n' "$host"
  } >"$LAB_DIR/$host.toml"
done
lab_exec "$cli_bin" --config "$LAB_DIR/a.toml" db migrate >"$LAB_DIR/migrate.log" 2>&1 ||
  { cat "$LAB_DIR/migrate.log" >&2; lab_fatal "db migrate failed"; }
lab_exec "$cli_bin" --config "$LAB_DIR/a.toml" rules apply "$LAB_DIR/rules.toml" \
  >"$LAB_DIR/apply.log" 2>&1 || { cat "$LAB_DIR/apply.log" >&2; lab_fatal "rules apply failed"; }
lab_spawn policyd-a "$policyd_bin" --config "$LAB_DIR/a.toml"
lab_spawn policyd-b "$policyd_bin" --config "$LAB_DIR/b.toml"
lab_wait_for "$LAB_DIR/policyd-a.log" '^listening on inet:127\.0\.0\.1:10041$' 10 ||
  lab_fatal "host a did not start"
lab_wait_for "$LAB_DIR/policyd-b.log" '^listening on inet:127\.0\.0\.1:10042$' 10 ||
  lab_fatal "host b did not start"

# total WORD FILE: the hammer's TOTAL count for an action word (0 when absent).
total() { awk -v w="$1" '$1 == "TOTAL" && $2 == w { n = $3 } END { print n + 0 }' "$2"; }
# of ENDPOINT WORD FILE: one endpoint's count for an action word.
of() { awk -v e="$1" -v w="$2" '$1 == e && $2 == w { n = $3 } END { print n + 0 }' "$3"; }
within() {  # within WHAT GOT LOW HIGH
  local what=$1 got=$2 low=$3 high=$4
  if ((got >= low && got <= high)); then
    lab_pass "$what ($got)"
  else
    lab_fail "$what"
    printf '      expected: %s..%s\n      found:    %s\n' "$low" "$high" "$got"
  fi
}
hammer() {  # hammer OUT REQUESTS SERVER_PORT
  lab_exec python3 "$here/policy_hammer.py" --requests "$2" --connections 4 --server-port "$3" \
    127.0.0.1:10041 127.0.0.1:10042 >"$1" 2>&1 || { cat "$1" >&2; lab_fatal "the hammer failed"; }
}

# --- (a) the cap ------------------------------------------------------------------------------
hammer "$LAB_DIR/a.out" 600 25
cap_ok=$(total DUNNO "$LAB_DIR/a.out")
within "(a) the fleet accepted at most the cap of $CAP and at least $CAP - $CAP_SLACK" \
  "$cap_ok" $((CAP - CAP_SLACK)) "$CAP"
lab_expect_eq $((1200 - cap_ok)) "$(total DEFER_IF_PERMIT "$LAB_DIR/a.out")" \
  "(a) every other request of the 1,200 was deferred"
within "(a) host a took part" "$(of 127.0.0.1:10041 DUNNO "$LAB_DIR/a.out")" 1 "$CAP"
within "(a) host b took part" "$(of 127.0.0.1:10042 DUNNO "$LAB_DIR/a.out")" 1 "$CAP"

lab_expect_no_line "$LAB_DIR/policyd-a.log" 'reason=(store_error|contention) ' \
  "(a) host a deferred only for the cap, never for store trouble or contention"
lab_expect_no_line "$LAB_DIR/policyd-b.log" 'reason=(store_error|contention) ' \
  "(a) host b deferred only for the cap, never for store trouble or contention"

# --- (b) the sliding hour ---------------------------------------------------------------------
hammer "$LAB_DIR/b.out" 400 2526
hour_ok=$(total DUNNO "$LAB_DIR/b.out")
within "(b) the fleet accepted at most the hourly $HOURLY and at least $HOURLY - $HOURLY_SLACK" \
  "$hour_ok" $((HOURLY - HOURLY_SLACK)) "$HOURLY"

# --- (c) the shared counters after a clean stop -----------------------------------------------
lab_stop policyd-a
lab_stop policyd-b
psql_q() { lab_exec psql "$url" -X -A -t -q -c "$1"; }
lab_expect_eq "$cap_ok" \
  "$(psql_q "SELECT COALESCE(SUM(used), 0) FROM counters WHERE scope = 'op:fleet/microsoft'")" \
  "(c) the shared cap counter equals what the fleet accepted"
lab_expect_eq "$hour_ok" \
  "$(psql_q "SELECT COALESCE(SUM(used), 0) FROM counters WHERE scope = 'hour:ramped'")" \
  "(c) the shared hour counter equals what the fleet accepted"
lab_expect_eq 0 "$(psql_q "SELECT COUNT(*) FROM leases WHERE units > 0 AND scope IN ('op:fleet/microsoft', 'hour:ramped')")" \
  "(c) no lease is left outstanding"
# --- (d) the store goes away ------------------------------------------------------------------
lab_exec "$cli_bin" --config "$LAB_DIR/a.toml" backoff set paused microsoft --pause --until 2h \
  --reason "fleet test pause" >"$LAB_DIR/backoff.log" 2>&1 ||
  { cat "$LAB_DIR/backoff.log" >&2; lab_fatal "backoff set failed"; }
lab_spawn policyd-a2 "$policyd_bin" --config "$LAB_DIR/a.toml"
lab_wait_for "$LAB_DIR/policyd-a2.log" '^listening on inet:127\.0\.0\.1:10041$' 10 ||
  lab_fatal "host a did not start again"
hammer1() {  # hammer1 OUT REQUESTS SERVER_PORT: host a only, one connection
  lab_exec python3 "$here/policy_hammer.py" --requests "$2" --connections 1 --server-port "$3" \
    127.0.0.1:10041 >"$1" 2>&1 || { cat "$1" >&2; lab_fatal "the hammer failed"; }
}
hammer1 "$LAB_DIR/d1.out" 10 2527  # stream spare: host a leases a block (100000 / 50, at most 1000)
lab_expect_eq 10 "$(total DUNNO "$LAB_DIR/d1.out")" "(d) with the store up, stream spare accepts"
lab_pg_stop
hammer1 "$LAB_DIR/d2.out" 200 2527
lab_expect_eq 200 "$(total DUNNO "$LAB_DIR/d2.out")" \
  "(d) with the store gone, host a keeps spending the block it holds (200 more accepted)"
hammer1 "$LAB_DIR/d3.out" 20 2528
lab_expect_eq 20 "$(total DEFER_IF_PERMIT "$LAB_DIR/d3.out")" \
  "(d) a stream that needs a new lease is deferred (on_store_error = defer)"
lab_expect_line "$LAB_DIR/d3.out" '^FIRST DEFER_IF_PERMIT DEFER_IF_PERMIT 4\.3\.0 rampart: budget store unavailable; try again later$' \
  "(d) with 4.3.0 naming the store" "FIRST"
lab_expect_line "$LAB_DIR/policyd-a2.log" 'warning store\.lease_failed scope=day:fresh ' \
  "(d) and logged the failed lease" "lease_failed"
# A poll that cannot read the store keeps the back-offs it has: the pause stays in force.
n=$(grep -c 'rules\.reload_failed' "$LAB_DIR/policyd-a2.log" || true)
lab_wait_count "$LAB_DIR/policyd-a2.log" 'rules\.reload_failed' $((n + 2)) 10 ||
  lab_fatal "host a did not poll the stopped store"
hammer1 "$LAB_DIR/d4.out" 5 2529
lab_expect_line "$LAB_DIR/d4.out" '^FIRST DEFER_IF_PERMIT DEFER_IF_PERMIT 4\.7\.1 rampart: pause \(0/0\) for stream paused operator microsoft' \
  "(d) a pause set before the store went away is still enforced after failed polls" "FIRST"
lab_stop policyd-a2

for name in policyd-a policyd-b policyd-a2; do  # an ASan/UBSan build reports into the daemon's log
  lab_expect_no_line "$LAB_DIR/$name.log" 'Sanitizer|runtime error:|internal error' \
    "rampart-policyd ($name) logged no sanitizer report or internal error"
done
lab_finish
