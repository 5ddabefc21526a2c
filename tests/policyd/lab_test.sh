#!/bin/bash
# lab_test.sh: rampart-policyd behind a real Postfix (check_policy_service, wired as the shipped
# main.cf.fragment does) with the lab DNS (tests/lab/lab.sh). The campaign software submits from
# 192.0.2.25 (tests/policyd/smtp_burst.py). rampart-policyd runs under libfaketime so the test
# can move its clock forward (an hour, a day) without waiting; Postfix keeps real time.
#   (a) incident 1: 2,000 recipients on stream "bulk" at warm-up day 0 (50/hour): exactly 50 are
#       accepted and delivered, 1,950 get 450 4.7.1 naming the hourly limit; an hour later the
#       client's retry gets exactly 50 more; on warm-up day 1 (5,000/hour) the rest; every
#       recipient delivered exactly once, nothing lost.
#   (b) incident 3: on stream "inst" (warm-up day 0) recipients at Google-hosted domains, by MX
#       (gmail-like and a vanity domain on Google Workspace), are gated with 450 4.7.1 naming the
#       gate; the Microsoft-hosted one is accepted and delivered.
#   (c) DNS: a null MX domain gets 5.1.10, a domain that does not exist 5.1.2, a domain whose DNS
#       never answers 4.4.3 after dns_timeout.
#   (d) restart mid-burst: stream "steady" (40/hour): 25 accepted, rampart-policyd stopped (TERM)
#       and started again, 25 more give exactly 15; killed (KILL) and started again, nothing more.
#   (e) over_cap = "hold": stream "held" (5/hour): the messages that do not fit wait in the hold
#       queue (their earlier recipients uncharged); `rampart release` keeps them while the hour
#       is full and delivers them, all or nothing, never over 5, once it reopens.
#   (f) the unix socket answers too; a `rules apply` is picked up by the rules_version poll, and
#       SIGHUP reloads at once.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lab/lab.sh
source "$here/../lab/lab.sh"

readonly SRC=${RAMPART_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
readonly CLIENT_IP=192.0.2.25 CLIENT_NET=192.0.2.0/24
readonly BULK_IP=203.0.113.94
readonly MS_MX_IP=198.51.100.10 GOOGLE_MX_IP=198.51.100.20
readonly MS_MX=contoso-example.mail.protection.outlook.com.test
readonly GOOGLE_MX=aspmx.l.google.com.test
readonly FROM=news@send.example.net
readonly INST_PORT=2526 STEADY_PORT=2527 HELD_PORT=2528 POLICY_PORT=10040
readonly FAKETIME_LIB=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1

lab_require unbound postfix postconf python3 awk sqlite3
[[ -f $FAKETIME_LIB ]] || lab_skip "libfaketime not found ($FAKETIME_LIB; Debian package faketime)"
policyd_bin=${RAMPART_POLICYD_BIN:-}
cli_bin=${RAMPART_BIN:-}
[[ -n $policyd_bin && -x $policyd_bin ]] || lab_skip "rampart-policyd not found (set RAMPART_POLICYD_BIN)"
[[ -n $cli_bin && -x $cli_bin ]] || lab_skip "rampart not found (set RAMPART_BIN)"
[[ -f $SRC/postfix-conf/main.cf.fragment ]] || lab_fatal "no $SRC/postfix-conf (set RAMPART_SOURCE_DIR)"

lab_init policyd

# --- helpers ------------------------------------------------------------------------------------

# The clock rampart-policyd sees: real time plus the offset in this file (libfaketime re-reads it).
clock_file=$LAB_DIR/faketime
printf '+0\n' >"$clock_file"
set_clock() { printf '%s\n' "$1" >"$clock_file"; }

# burst TAG PORT RCPT_FILE: submits RCPT_FILE's recipients in messages of 100 from $CLIENT_IP;
# the transcript (RCPT/QUEUED lines) goes to $LAB_DIR/burst-TAG.out, OUT names it.
burst() {
  local tag=$1 port=$2 rcpts=$3
  OUT=$LAB_DIR/burst-$tag.out
  lab_exec python3 "$here/smtp_burst.py" --port "$port" --source "$CLIENT_IP" --sender "$FROM" \
    --tag "$tag" "$rcpts" >"$OUT" 2>&1 || { cat "$OUT" >&2; lab_fatal "burst $tag: a session failed"; }
}
# accepted FILE / deferred FILE: recipients whose RCPT got 250 / 450 in a burst transcript.
accepted() { awk '$1 == "RCPT" && $3 == 250 { print $2 }' "$1"; }
deferred() { awk '$1 == "RCPT" && $3 == 450 { print $2 }' "$1"; }
count() { grep -c . || true; }

# delivered DOMAIN: recipients at DOMAIN that Postfix delivered (status=sent), one per line, sorted.
delivered() {
  grep -E "postfix/[a-z0-9]+/smtp\[[0-9]+\]: [0-9A-F]+: to=<[^>]*@$(lab_esc "$1")>, .*status=sent " \
    "$maillog" | sed -E 's/.* to=<([^>]*)>.*/\1/' | sort
}
# wait_delivered DOMAIN N: waits until N deliveries to DOMAIN have been logged.
wait_delivered() {
  lab_wait_count "$maillog" "to=<[^>]*@$(lab_esc "$1")>, .*status=sent " "$2" 60 || true
}

policyd_log() { printf '%s/%s.log\n' "$LAB_DIR" "$1"; }
# start_policyd NAME: runs rampart-policyd under libfaketime, as NAME, and waits for it.
start_policyd() {
  local name=$1
  # (an ASan build wants its runtime first; libfaketime before it is fine here)
  lab_spawn "$name" env LD_PRELOAD="$FAKETIME_LIB" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" FAKETIME_TIMESTAMP_FILE="$clock_file" \
    FAKETIME_NO_CACHE=1 DONT_FAKE_MONOTONIC=1 "$policyd_bin" --config "$LAB_DIR/rampart.toml"
  lab_wait_for "$(policyd_log "$name")" "^listening on inet:127\.0\.0\.1:$POLICY_PORT$" 10 ||
    { cat "$(policyd_log "$name")" >&2; lab_fatal "rampart-policyd ($name) did not start"; }
}

# --- the lab ------------------------------------------------------------------------------------
for ip in "$CLIENT_IP" "$BULK_IP" "$MS_MX_IP" "$GOOGLE_MX_IP"; do lab_addr "$ip"; done
lab_dns_zone example
lab_dns_zone test
lab_dns_mx contoso.example 10 "$MS_MX"
lab_dns_a "$MS_MX" "$MS_MX_IP"
lab_dns_mx fabrikam.example 1 "$GOOGLE_MX"       # gmail-like: Google's own domain
lab_dns_mx clinic.example 1 "$GOOGLE_MX"         # a vanity domain on Google Workspace
lab_dns_mx clinic.example 5 "alt1.$GOOGLE_MX"
lab_dns_a "$GOOGLE_MX" "$GOOGLE_MX_IP"
lab_dns_a "alt1.$GOOGLE_MX" "$GOOGLE_MX_IP"
lab_dns_null_mx nomail.example
lab_dns_drop dead.example  # its DNS server never answers
lab_mx_start "$MS_MX_IP" 25 "" --hostname "$MS_MX"
lab_mx_start "$GOOGLE_MX_IP" 25 "" --hostname "$GOOGLE_MX"
lab_dns_start

today=$(date -u +%F)
cat >"$LAB_DIR/rules.toml" <<EOF
# Policy lab rules: every stream starts its calendar warm-up today (day 0).
[[stream]]
name = "bulk"
ports = [25]
clients = ["$CLIENT_NET"]
transport = "out05"
egress_ip = "$BULK_IP"
warmup = { start = "$today", count = "calendar", ramp = "lab" }
over_cap = "defer"

[[stream]]
name = "inst"
ports = [$INST_PORT]
clients = ["$CLIENT_NET"]
transport = "out05"
warmup = { start = "$today", count = "calendar", ramp = "wide" }

[[stream]]
name = "steady"
ports = [$STEADY_PORT]
clients = ["$CLIENT_NET"]
transport = "out05"
warmup = { start = "$today", count = "calendar", ramp = "forty" }

[[stream]]
name = "held"
ports = [$HELD_PORT]
clients = ["$CLIENT_NET"]
transport = "out05"
warmup = { start = "$today", count = "calendar", ramp = "five" }
over_cap = "hold"

[[ramp]]
name = "five"
steps = [ { day = 0, hourly = 5 } ]
[[ramp]]
name = "lab"
steps = [ { day = 0, hourly = 50 }, { day = 1, hourly = 5000 } ]
[[ramp]]
name = "wide"
steps = [ { day = 0, hourly = 10000 } ]
[[ramp]]
name = "forty"
steps = [ { day = 0, hourly = 40 } ]

[[operator]]
name = "microsoft"
mx = [".mail.protection.outlook.com.test"]
[[operator]]
name = "google"
mx = [".google.com.test"]

[[cap]]
stream = "inst"
operator = "google"
daily = 0
until_day = 30
EOF
cat >"$LAB_DIR/rampart.toml" <<EOF
[store]
url = "sqlite://$LAB_DIR/rampart.db"
[policyd]
listen = ["inet:127.0.0.1:$POLICY_PORT", "unix:$LAB_DIR/policy.sock"]
dns_servers = ["127.0.0.1:53"]
dns_timeout = "700ms"
rules_poll_interval = "1s"
[sidecar]
postfix_config_dir = "$LAB_DIR/postfix/etc"
EOF
"$cli_bin" --config "$LAB_DIR/rampart.toml" db migrate >"$LAB_DIR/db-migrate.log" 2>&1 ||
  { cat "$LAB_DIR/db-migrate.log" >&2; lab_fatal "rampart db migrate failed"; }
"$cli_bin" --config "$LAB_DIR/rampart.toml" rules apply "$LAB_DIR/rules.toml" \
  >"$LAB_DIR/rules-apply.log" 2>&1 || { cat "$LAB_DIR/rules-apply.log" >&2; lab_fatal "rules apply failed"; }
"$policyd_bin" --config "$LAB_DIR/rampart.toml" --check-config >"$LAB_DIR/check-config.log" 2>&1 ||
  { cat "$LAB_DIR/check-config.log" >&2; lab_fatal "rampart-policyd --check-config failed"; }
start_policyd policyd

# Postfix: the restrictions exactly as main.cf.fragment ships them, pointed at the lab daemon.
relay_line=$(grep -E '^smtpd_relay_restrictions[[:space:]]*=' "$SRC/postfix-conf/main.cf.fragment") ||
  lab_fatal "main.cf.fragment has no smtpd_relay_restrictions line"
# (main.cf continuation lines start with white space)
policy_line=$(awk 'p && /^[^[:space:]]/ { exit }
                   /^smtpd_recipient_restrictions[[:space:]]*=/ { p = 1 }
                   p { sub(/^[[:space:]]+/, " "); printf "%s", $0 }' \
  "$SRC/postfix-conf/main.cf.fragment")
[[ $policy_line == *check_policy_service* ]] || lab_fatal "main.cf.fragment: no check_policy_service"
policy_line=${policy_line//unix:\/var\/spool\/postfix\/rampart\/policy.sock/inet:127.0.0.1:$POLICY_PORT}
lab_postfix_transport out05 "$BULK_IP" out05.send.example.net
lab_postfix_listener 127.0.0.1 "$INST_PORT"
lab_postfix_listener 127.0.0.1 "$STEADY_PORT"
lab_postfix_listener 127.0.0.1 "$HELD_PORT"
# A campaign client gets hundreds of 4xx on purpose here: no tarpit for it (smtpd(8) sleeps
# smtpd_error_sleep_time per error past smtpd_soft_error_limit).
lab_postfix_conf \
  "mynetworks = 127.0.0.0/8 $CLIENT_NET" \
  "$relay_line" "$policy_line" \
  "smtpd_soft_error_limit = 100000" "smtpd_hard_error_limit = 100000" \
  "smtpd_error_sleep_time = 0" \
  "default_transport = out05"
lab_postfix_start
lab_wait_port 127.0.0.1 "$INST_PORT" 10 || lab_fatal "no listener on $INST_PORT"
lab_wait_port 127.0.0.1 "$STEADY_PORT" 10 || lab_fatal "no listener on $STEADY_PORT"
lab_wait_port 127.0.0.1 "$HELD_PORT" 10 || lab_fatal "no listener on $HELD_PORT"
maillog=$(lab_postfix_maillog)
plog=$(policyd_log policyd)

# --- (a) incident 1: a 2,000-recipient burst at warm-up day 0 ----------------------------------
seq -f 'r%04g@contoso.example' 1 2000 >"$LAB_DIR/a.rcpts"
burst a 25 "$LAB_DIR/a.rcpts"
lab_expect_eq 50 "$(accepted "$OUT" | count)" "(a) exactly 50 of 2,000 recipients accepted in the hour"
lab_expect_eq 1950 "$(deferred "$OUT" | count)" "(a) the other 1,950 deferred (450)"
want_text="4\.7\.1 <r[0-9]+@contoso\.example>: Recipient address rejected: rampart: hourly \(50/50\) for stream bulk operator microsoft; reopens [0-9-]+T[0-9:]+Z$"
lab_expect_eq 1950 "$(awk '$1 == "RCPT" && $3 == 450' "$OUT" | grep -Ec " 450 $want_text" || true)" \
  "(a) every deferral names the hourly limit, the counts, stream, operator and reopening"
wait_delivered contoso.example 50
lab_expect_eq 50 "$(delivered contoso.example | count)" "(a) 50 delivered"
lab_expect_eq 1950 "$(grep -Ec 'rampart-policyd\[[0-9]+\]: [0-9A-Z]+: defer rcpt=<r[0-9]+@contoso\.example> stream=bulk operator=microsoft reason=hourly used=50 max=50 status=4\.7\.1 ' "$plog" || true)" \
  "(a) rampart-policyd logged one defer line per refused recipient, with the counts"

deferred "$OUT" >"$LAB_DIR/a2.rcpts"
set_clock "+3720"  # 62 minutes on: the first 50 have left the sliding hour
burst a2 25 "$LAB_DIR/a2.rcpts"
lab_expect_eq 50 "$(accepted "$OUT" | count)" "(a) an hour later the client's retry gets exactly 50 more"
deferred "$OUT" >"$LAB_DIR/a3.rcpts"
lab_expect_eq 1900 "$(count <"$LAB_DIR/a3.rcpts")" "(a) the other 1,900 deferred again"
set_clock "+1d"  # warm-up day 1: 5,000/hour
burst a3 25 "$LAB_DIR/a3.rcpts"
lab_expect_eq 1900 "$(accepted "$OUT" | count)" "(a) on warm-up day 1 the client's retry gets the rest"
wait_delivered contoso.example 2000
lab_expect_eq "$(sort "$LAB_DIR/a.rcpts")" "$(delivered contoso.example)" \
  "(a) nothing lost: every one of the 2,000 recipients delivered exactly once"
set_clock "+0"

# --- (b) incident 3: Google-hosted domains gated by MX on day 0 --------------------------------
printf '%s\n' g1@fabrikam.example g2@clinic.example m1@contoso.example >"$LAB_DIR/b.rcpts"
burst b "$INST_PORT" "$LAB_DIR/b.rcpts"
gate_re="4\.7\.1 <g[12]@[a-z]+\.example>: Recipient address rejected: rampart: gate \(0/0\) for stream inst operator google \(until warm-up day 30\); reopens [0-9-]+T00:00:00Z$"
lab_expect_eq 2 "$(grep -Ec "^RCPT g[12]@[a-z.]+ 450 $gate_re" "$OUT" || true)" \
  "(b) gmail-like and vanity Google Workspace recipients gated (450 4.7.1 naming the gate)"
lab_expect_eq m1@contoso.example "$(accepted "$OUT")" "(b) the Microsoft-hosted recipient accepted"
wait_delivered contoso.example 2001
lab_expect_eq 1 "$(delivered contoso.example | grep -c '^m1@' || true)" "(b) and delivered"

# --- (c) DNS verdicts -------------------------------------------------------------------------
printf '%s\n' x@nomail.example y@nosuch.example z@dead.example >"$LAB_DIR/c.rcpts"
burst c 25 "$LAB_DIR/c.rcpts"
lab_expect_line "$OUT" '^RCPT z@dead\.example 450 4\.4\.3 .*rampart: MX lookup for dead\.example failed \(timed out after 700 ms\); try again later$' \
  "(c) a domain whose DNS does not answer is deferred with 4.4.3 after dns_timeout" "^RCPT z@"
# rampart-policyd answers 5.1.10 (RFC 7505); Postfix 3.7's smtpd_dsn_fix() knows no X.1.10 and
# turns it into 5.1.0 on the wire, so the 5.1.10 is checked in rampart-policyd's own log.
lab_expect_line "$OUT" '^RCPT x@nomail\.example 5[0-9][0-9] 5\.1\.(10|0) .*rampart: recipient domain nomail\.example accepts no mail \(null MX, RFC 7505\)$' \
  "(c) a null MX domain is rejected (5xx naming the null MX)" "^RCPT x@"
lab_expect_line "$plog" 'rampart-policyd\[[0-9]+\]: NOQUEUE: reject rcpt=<x@nomail\.example> stream=bulk operator=- reason=null_mx status=5\.1\.10 ' \
  "(c) rampart-policyd logged the null MX reject" "nomail"
lab_expect_line "$OUT" '^RCPT y@nosuch\.example 5[0-9][0-9] 5\.1\.2 .*rampart: recipient domain nosuch\.example has no mail host \(NXDOMAIN\)$' \
  "(c) a domain that does not exist is rejected with 5.1.2" "^RCPT y@"

# --- (d) restart mid-burst: no limit resets ---------------------------------------------------
seq -f 's%02g@contoso.example' 1 25 >"$LAB_DIR/d1.rcpts"
seq -f 's%02g@contoso.example' 26 50 >"$LAB_DIR/d2.rcpts"
seq -f 's%02g@contoso.example' 51 60 >"$LAB_DIR/d3.rcpts"
burst d1 "$STEADY_PORT" "$LAB_DIR/d1.rcpts"
lab_expect_eq 25 "$(accepted "$OUT" | count)" "(d) stream steady (40/hour): 25 of 25 accepted"
lab_stop policyd
lab_expect_line "$plog" 'policyd\.leases_returned leases=[0-9]+ units=[0-9]+' \
  "(d) on TERM rampart-policyd handed its unspent leases back" "leases_returned"
start_policyd policyd2
burst d2 "$STEADY_PORT" "$LAB_DIR/d2.rcpts"
lab_expect_eq 15 "$(accepted "$OUT" | count)" "(d) after a restart: 15 more, not 25 (the hour was not reset)"
kill -KILL "$(lab_pid policyd2)"
start_policyd policyd3
burst d3 "$STEADY_PORT" "$LAB_DIR/d3.rcpts"
lab_expect_eq 0 "$(accepted "$OUT" | count)" "(d) after a crash (KILL): still nothing over 40"
lab_expect_eq 10 "$(grep -Ec ' 450 4\.7\.1 .*rampart: hourly \(40/40\) for stream steady' "$OUT" || true)" \
  "(d) and the refusals say hourly (40/40)"

# --- (e) over_cap = "hold", then rampart release --------------------------------------------
# release runs in the namespace (the lab DNS) and under the same fake clock as the daemon.
release() {
  lab_exec env LD_PRELOAD="$FAKETIME_LIB" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" FAKETIME_TIMESTAMP_FILE="$clock_file" \
    FAKETIME_NO_CACHE=1 "$cli_bin" --config "$LAB_DIR/rampart.toml" release "$@"
}
held_queue() { lab_postqueue -j | python3 -c '
import json, sys
print(" ".join(sorted(m["queue_id"] for m in map(json.loads, sys.stdin) if m["queue_name"] == "hold")))'
}
plog=$(policyd_log policyd3)
base=$(delivered contoso.example | count)
seq -f 'h%02g@contoso.example' 1 4 >"$LAB_DIR/e1.rcpts"
seq -f 'h%02g@contoso.example' 5 7 >"$LAB_DIR/e2.rcpts"
seq -f 'h%02g@contoso.example' 8 9 >"$LAB_DIR/e3.rcpts"
burst e1 "$HELD_PORT" "$LAB_DIR/e1.rcpts"
lab_expect_eq 4 "$(accepted "$OUT" | count)" "(e) message 1: 4 recipients accepted (4/5)"
burst e2 "$HELD_PORT" "$LAB_DIR/e2.rcpts"
held_b=$(awk '$1 == "QUEUED" { print $2 }' "$OUT")
burst e3 "$HELD_PORT" "$LAB_DIR/e3.rcpts"
held_c=$(awk '$1 == "QUEUED" { print $2 }' "$OUT")
lab_expect_eq "$(printf '%s\n' "$held_b" "$held_c" | sort | xargs)" "$(held_queue)" \
  "(e) messages 2 and 3 went over the hour and wait in the hold queue"
# The held messages' accepted recipients (h05, h08) were given back: the hour holds 4, not 6.
hour_held() { sqlite3 "$LAB_DIR/rampart.db" "SELECT COALESCE(SUM(used), 0) FROM counters WHERE scope = 'hour:held'"; }
deadline=$((SECONDS + 5))
while [[ $(hour_held) != 4 ]] && ((SECONDS < deadline)); do sleep 0.1; done
lab_expect_eq 4 "$(hour_held)" "(e) held messages are not charged: the hour counter holds message 1's 4"
lab_expect_line "$plog" "rampart-policyd\[[0-9]+\]: $held_b: hold rcpt=<h0[67]@contoso\.example> stream=held operator=microsoft reason=(hourly|held) " \
  "(e) rampart-policyd logged the hold with the queue id" "hold rcpt"
wait_delivered contoso.example $((base + 4))
release >"$LAB_DIR/release-1.out" 2>&1 || lab_fail "(e) rampart release exited $?"
lab_expect_eq "$(printf '%s\n' "$held_b" "$held_c" | sort | xargs)" "$(held_queue)" \
  "(e) while the hour is full (4 + 1 of 5), release keeps both (all or nothing)"
lab_expect_line "$LAB_DIR/release-1.out" "^$held_b .*kept: hourly" "(e) and says the hourly limit keeps $held_b" "$held_b"
set_clock "+3720"
release --dry-run >"$LAB_DIR/release-dry.out" 2>&1 || lab_fail "(e) rampart release --dry-run exited $?"
lab_expect_eq "$(printf '%s\n' "$held_b" "$held_c" | sort | xargs)" "$(held_queue)" \
  "(e) --dry-run releases nothing"
release >"$LAB_DIR/release-2.out" 2>&1 || lab_fail "(e) rampart release exited $?"
lab_expect_eq "" "$(held_queue)" "(e) an hour later release lets both go (3 + 2 = 5 of 5)"
wait_delivered contoso.example $((base + 9))
lab_expect_eq "$(seq -f 'h%02g@contoso.example' 1 9)" "$(delivered contoso.example | grep '^h')" \
  "(e) all 9 recipients delivered, none twice"
echo h10@contoso.example >"$LAB_DIR/e4.rcpts"
burst e4 "$HELD_PORT" "$LAB_DIR/e4.rcpts"
held_d=$(awk '$1 == "QUEUED" { print $2 }' "$OUT")
lab_expect_eq "${held_d:-none}" "$(held_queue)" \
  "(e) the released mail was charged: the hour is full again and the next message is held"
set_clock "+0"

# --- (f) the unix socket; reloads ---------------------------------------------------------------
reply=$(python3 - "$LAB_DIR/policy.sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b"request=smtpd_access_policy\nprotocol_state=RCPT\nserver_port=2526\n"
          b"client_address=192.0.2.25\nsender=news@send.example.net\nrecipient=u1@fabrikam.example\n"
          b"instance=f1\n\n")
buf = b""
while not buf.endswith(b"\n\n"):
    chunk = s.recv(4096)
    if not chunk:
        break
    buf += chunk
print(buf.decode().strip())
PY
)
lab_expect_eq "action=DEFER_IF_PERMIT 4.7.1 rampart: gate (0/0) for stream inst operator google (until warm-up day 30); reopens $(date -u -d "$today +30 days" +%F)T00:00:00Z" \
  "$reply" "(f) the unix socket answers (the Google gate of stream inst)"
loads=$(grep -c 'rules\.loaded' "$plog" || true)
sed 's/hourly = 40 }/hourly = 45 }/' "$LAB_DIR/rules.toml" >"$LAB_DIR/rules2.toml"
"$cli_bin" --config "$LAB_DIR/rampart.toml" rules apply "$LAB_DIR/rules2.toml" >"$LAB_DIR/rules-apply2.log" 2>&1 ||
  { cat "$LAB_DIR/rules-apply2.log" >&2; lab_fatal "rules apply failed"; }
if lab_wait_for "$plog" 'info rules\.loaded version=2 streams=4$' 5; then
  lab_pass "(f) a rules apply is picked up within the poll interval (version 2)"
else
  lab_fail "(f) a rules apply is picked up within the poll interval (version 2)"
fi
kill -HUP "$(lab_pid policyd3)"
lab_wait_count "$plog" 'rules\.loaded' $((loads + 2)) 5 || true
lab_expect_line "$plog" 'info rules\.reload_requested signal=HUP' "(f) SIGHUP asks for a reload" "reload"
lab_expect_eq $((loads + 2)) "$(grep -c 'rules\.loaded' "$plog" || true)" "(f) and reloads at once"
lab_expect_eq 1 "$(lab_pid policyd3 | xargs -I{} sh -c 'kill -0 {} && echo 1')" "(f) still running after SIGHUP"

for name in policyd policyd2 policyd3; do  # an ASan/UBSan build reports into the daemon's log
  lab_expect_no_line "$LAB_DIR/$name.log" 'Sanitizer|runtime error:|internal error' \
    "rampart-policyd ($name) logged no sanitizer report or internal error"
done
lab_finish
