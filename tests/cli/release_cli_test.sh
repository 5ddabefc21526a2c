#!/usr/bin/env bash
# End-to-end test of `rampart release` against one store engine (RAMPART_TEST_STORE=sqlite|pgsql;
# pgsql runs under tests/lab/with-postgres.sh), with stand-ins for Postfix's postqueue, postcat
# and postsuper (first on PATH; they keep a fake hold queue in files and speak the real tools'
# output formats, checked on Postfix 3.7) and a real MX lookup through unbound on a loopback port.
# Checks oldest-first all-or-nothing release against an hourly ramp, an operator cap and a gate;
# streams found by header and by envelope; messages that are not rampart's; --dry-run charging
# nothing; counters charged exactly once (read back with `rampart caps`); exit codes.
# The real-Postfix scenario is tests/lab (release_test.sh).
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"
cli_init "release cli" python3 unbound
cli_store
unbound_bin=$(command -v unbound || echo /usr/sbin/unbound)
unbound_pid=""
cli_cleanup_hook() {
  if [ -n "$unbound_pid" ]; then
    kill "$unbound_pid" 2>/dev/null
    wait "$unbound_pid" 2>/dev/null
  fi
}

# --- DNS: unbound answering for the test zone on a free loopback port --------------------------
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/dns"
cat >"$work/dns/unbound.conf" <<EOF
server:
    verbosity: 1
    interface: 127.0.0.1
    port: $port
    do-ip6: no
    do-tcp: yes
    num-threads: 1
    so-reuseport: no
    username: ""
    chroot: ""
    directory: "$work/dns"
    pidfile: ""
    use-syslog: no
    logfile: ""
    module-config: "iterator"
    access-control: 127.0.0.0/8 allow
    local-zone: "." refuse
    local-zone: "example." static
    local-data: "gmail.example. 300 IN MX 5 gmail-smtp-in.l.google.com."
    local-data: "outlook.example. 300 IN MX 10 outlook-example.mail.protection.outlook.com."
    local-data: "other.example. 300 IN MX 10 mx.other.example."
    local-data: "nomx.example. 300 IN MX 0 ."
remote-control:
    control-enable: no
EOF
"$unbound_bin" -d -c "$work/dns/unbound.conf" >"$work/dns/log" 2>&1 &
unbound_pid=$!
for _ in $(seq 100); do
  grep -q 'start of service' "$work/dns/log" && break
  kill -0 "$unbound_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q 'start of service' "$work/dns/log" || { cat "$work/dns/log" >&2; echo "unbound did not start" >&2; exit 1; }

# --- stand-ins for Postfix's tools ----------------------------------------------------------------
pf=$work/postfix
mkdir -p "$pf" "$work/bin"
: >"$pf/queue.jsonl"
cat >"$work/bin/postqueue" <<'EOF'
#!/bin/bash
# postqueue -c DIR -j | -c DIR -i QUEUE_ID, over $FAKE_PF/queue.jsonl.
[ "$1" = -c ] && [ "$2" = "$FAKE_PF" ] || { echo "postqueue: fatal: unexpected -c '$2'" >&2; exit 64; }
case $3 in
  -j)
    [ -f "$FAKE_PF/down" ] && { echo "postqueue: fatal: Queue report unavailable - mail system is down" >&2; exit 69; }
    cat "$FAKE_PF/queue.jsonl" ;;
  -i) echo "$4" >>"$FAKE_PF/flushed" ;;
  *) exit 64 ;;
esac
EOF
cat >"$work/bin/postcat" <<'EOF'
#!/bin/bash
# postcat -c DIR -e -h -q QUEUE_ID: prints $FAKE_PF/QUEUE_ID.postcat.
[ "$1" = -c ] && [ "$2" = "$FAKE_PF" ] && [ "$3 $4 $5" = "-e -h -q" ] || exit 64
[ -f "$FAKE_PF/$6.postcat" ] || { echo "postcat: fatal: open queue file $6: No such file or directory" >&2; exit 1; }
cat "$FAKE_PF/$6.postcat"
EOF
cat >"$work/bin/postsuper" <<'EOF'
#!/bin/bash
# postsuper -c DIR -H QUEUE_ID: moves it from hold to deferred, talking like Postfix 3.7.
[ "$1" = -c ] && [ "$2" = "$FAKE_PF" ] && [ "$3" = -H ] || exit 64
echo "$4" >>"$FAKE_PF/postsuper.log"
exec python3 - "$FAKE_PF" "$4" <<'PY'
import json, os, sys
pf, qid = sys.argv[1], sys.argv[2]
path = os.path.join(pf, "queue.jsonl")
rows = [json.loads(l) for l in open(path) if l.strip()]
n = 0
if not os.path.exists(os.path.join(pf, "vanish-" + qid)):
    for r in rows:
        if r["queue_id"] == qid and r["queue_name"] == "hold":
            r["queue_name"], n = "deferred", n + 1
open(path, "w").write("".join(json.dumps(r) + "\n" for r in rows))
if n:
    sys.stderr.write("postsuper: %s: released from hold\n" % qid)
sys.stderr.write("postsuper: Released from hold: %d message%s\n" % (n, "" if n == 1 else "s"))
PY
EOF
chmod +x "$work/bin/"*
export FAKE_PF=$pf
export PATH="$work/bin:$PATH"

# msg QUEUE_ID ARRIVAL QUEUE STREAM_HEADER SERVER_PORT RCPT...: one message in the fake queue.
# STREAM_HEADER "" = none; "a|b" = two headers.
msg() {
  local qid=$1 arrival=$2 queue=$3 header=$4 sport=$5
  shift 5
  python3 - "$pf" "$qid" "$arrival" "$queue" "$header" "$sport" "$@" <<'PY'
import json, os, sys
pf, qid, arrival, queue, header, sport, *rcpts = sys.argv[1:]
with open(os.path.join(pf, "queue.jsonl"), "a") as f:
    f.write(json.dumps({"queue_name": queue, "queue_id": qid, "arrival_time": int(arrival),
                        "message_size": 400, "forced_expire": False, "sender": "news@shop.example",
                        "recipients": [{"address": r} for r in rcpts]}) + "\n")
lines = ["*** ENVELOPE RECORDS %s/%s ***" % (queue, qid),
         "message_size:             400             600               %d               0" % len(rcpts),
         "sender: news@shop.example",
         "named_attribute: client_address=127.0.0.1"]
if sport:
    lines.append("named_attribute: server_port=" + sport)
for r in rcpts:
    lines += ["original_recipient: " + r, "recipient: " + r]
lines += ["*** MESSAGE CONTENTS %s/%s ***" % (queue, qid),
          "Received: from submit.lab.example (localhost [127.0.0.1])",
          "\tby mta.lab.example (Postfix) with ESMTP id " + qid]
for h in filter(None, header.split("|")):
    lines.append("X-Rampart-Stream: " + h)
lines += ["From: news@shop.example", "*** HEADER EXTRACTED %s/%s ***" % (queue, qid),
          "*** MESSAGE FILE END %s/%s ***" % (queue, qid)]
open(os.path.join(pf, qid + ".postcat"), "w").write("\n".join(lines) + "\n")
PY
}

cfg="$work/rampart.toml"
cat >"$cfg" <<EOF
[store]
url = "$url"

[policyd]
dns_servers = ["127.0.0.1:$port"]
dns_timeout = "3s"
host_id = "testhost"

[sidecar]
postfix_config_dir = "$pf"
EOF

# Warm since 2020 (calendar): hourly 5. google capped at 3 a day; microsoft gated far ahead.
cat >"$work/rules.toml" <<'TOML'
[[stream]]
name = "bulk"
ports = [25]
transport = "out05"
warmup = { start = "2020-01-01", count = "calendar", ramp = "flat" }
over_cap = "hold"

[[stream]]
name = "quiet"
ports = [587]
transport = "out06"
over_cap = "defer"

[[ramp]]
name = "flat"
steps = [ { day = 0, hourly = 5 } ]

[[operator]]
name = "google"
mx = [".google.com"]

[[operator]]
name = "microsoft"
mx = [".mail.protection.outlook.com"]

[[cap]]
stream = "bulk"
operator = "google"
daily = 3

[[cap]]
stream = "bulk"
operator = "microsoft"
daily = 0
until_day = 100000

[[exclusion]]
category = "legal-hold"
action = "hold"
streams = ["*"]
addresses = ["ceo@other.example"]
TOML

# The hold queue, listed out of order (release sorts oldest first).
msg M09 900 hold "bulk transport=out05" 25 k@gmail.example
msg M01 100 hold "bulk transport=out05" 25 a@gmail.example b@gmail.example
msg M02 200 hold "bulk transport=out05" 25 c@gmail.example d@gmail.example
msg M03 300 hold "bulk transport=out05" 25 e@outlook.example
msg M04 400 hold "" 25 f@other.example g@nomx.example
msg M05 500 hold "-" 25 x@other.example
msg M06 600 hold "quiet transport=out06" 587 y@other.example
msg M07 700 hold "bulk transport=out05" 25 ceo@other.example
msg M08 800 hold "bulk transport=out05" 25 h@other.example i@other.example j@other.example
msg M10 50 deferred "bulk transport=out05" 25 z@gmail.example
msg M11 1000 hold "bulk transport=out05" 25 gone@other.example
rm "$pf/M11.postcat"  # delivered or deleted between postqueue -j and postcat
msg M12 1100 hold "bulk transport=out05" 25 l@other.example
touch "$pf/vanish-M12"  # released by someone else just before postsuper -H
msg M13 1200 hold "bulk|quiet" 25 m@other.example

# --- usage, configuration and trouble --------------------------------------------------------------
expect 0 "--help lists release" -- r --help && contains "--help" "$out" "release [--dry-run]"
expect 0 "release --help" -- r release --help && contains "release --help" "$out" "all or nothing"
expect 64 "bad format" -- r release --format yaml && contains "bad format" "$err" 'bad --format "yaml"'
expect 64 "bad limit" -- r release --limit 0 && contains "bad limit" "$err" 'bad --limit "0"'
expect 64 "stray argument" -- r release now
expect 78 "before migrate" -- r release && contains "before migrate" "$err" "rampart db migrate"
expect 0 "db migrate" -- r db migrate
expect 0 "rules apply" -- r rules apply "$work/rules.toml"
touch "$pf/down"
expect 75 "postqueue fails" -- r release && contains "postqueue fails" "$err" "mail system is down"
rm "$pf/down"
expect 75 "store down" -- "$bin" --config "$cfg" --store "postgresql:///rampart?host=/nonexistent-rampart-sock&connect_timeout=1" release
[ ! -f "$pf/postsuper.log" ] || fail "trouble runs released something: $(cat "$pf/postsuper.log")"

# --- dry run: the plan, nothing charged, nothing released -----------------------------------------
expect 0 "dry run" -- r release --dry-run --format json
python3 - "$work/out" <<'PY' || fail "dry run json: unexpected content: $out"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
summary = rows.pop()["summary"]
got = [(r["queue_id"], r["result"]) for r in rows]
want = [("M01", "would_release"), ("M02", "kept"), ("M03", "kept"), ("M04", "would_release"),
        ("M05", "not_a_stream"), ("M06", "not_rampart"), ("M07", "not_rampart"), ("M08", "kept"),
        ("M09", "would_release"), ("M11", "gone"), ("M12", "would_release"), ("M13", "kept")]
assert got == want, got
by = {r["queue_id"]: r for r in rows}
assert by["M01"]["operators"] == [{"operator": "google", "recipients": 2}], by["M01"]
assert by["M01"]["stream_source"] == "header" and by["M01"]["arrival_time"] == "1970-01-01T00:01:40Z"
assert by["M02"]["reason"].startswith("cap (2/3) for stream bulk operator google; needs 2; reopens "), by["M02"]
assert by["M02"]["reopens"].endswith("T00:00:00Z"), by["M02"]
assert by["M03"]["reason"].startswith("gate (0/0) for stream bulk operator microsoft (until warm-up day 100000)"), by["M03"]
assert by["M04"]["stream_source"] == "envelope" and by["M04"]["uncharged_recipients"] == 1, by["M04"]
assert by["M04"]["operators"] == [{"operator": None, "recipients": 1}], by["M04"]
assert "rampart-milter found no stream" in by["M05"]["reason"] and by["M05"]["stream"] is None
assert 'over_cap = "defer"' in by["M06"]["reason"], by["M06"]
assert "ceo@other.example is under hold exclusion legal-hold" in by["M07"]["reason"], by["M07"]
assert by["M08"]["reason"].startswith("hourly (3/5) for stream bulk; needs 3; reopens "), by["M08"]
assert by["M11"]["reason"] == "postcat: fatal: open queue file M11: No such file or directory", by["M11"]
# Conflicting headers: the envelope decides. The pretend charge of M12 fills the hour.
assert by["M13"]["stream_source"] == "envelope", by["M13"]
assert by["M13"]["reason"].startswith("hourly (5/5) for stream bulk; needs 1"), by["M13"]
assert summary == {"dry_run": True, "held": 12, "examined": 12, "would_release": 4,
                   "recipients_would_release": 6, "kept": 4, "not_a_stream": 1, "not_rampart": 2,
                   "gone": 1, "errors": 0, "limit_reached": False}, summary
PY
[ ! -f "$pf/postsuper.log" ] || fail "dry run ran postsuper: $(cat "$pf/postsuper.log")"
expect 0 "caps after dry run" -- r caps --stream bulk --format json
python3 - "$work/out" <<'PY' || fail "dry run charged something: $out"
import json, sys
b = json.loads(open(sys.argv[1]).readline())
assert b["hourly"]["used"] == 0 and b["day"]["used"] == 0 and b["leases"] == [], b
PY
expect 0 "dry run --limit" -- r release --dry-run --limit 2
contains "dry run --limit" "$out" "dry run: 2 of 12 held messages would be released"
contains "dry run --limit" "$out" "--limit reached"
contains "dry run table" "$out" "M02"
contains "dry run table" "$out" "kept: cap (2/3) for stream bulk operator google"

# --- the real run -------------------------------------------------------------------------------
expect 0 "release" -- r release
# M12 vanishes from hold before postsuper -H: its leases go back, so M13 fits after all.
contains "release table" "$out" "4 of 12 held messages released (6 recipients); 3 kept, 1 not a stream, 2 not rampart's, 2 gone, 0 errors"
if ! grep -Eq '^M01 +1970-01-01T00:01:40Z +bulk +2 +google:2 +released$' <<<"$out"; then
  fail "release table: no M01 row: $out"
fi
contains "release table M12" "$out" "gone: no longer on hold (postsuper released 0 messages)"
got=$(tr '\n' ' ' <"$pf/postsuper.log")
[ "$got" = "M01 M04 M09 M12 M13 " ] || fail "postsuper -H calls: $got"
got=$(tr '\n' ' ' <"$pf/flushed")
[ "$got" = "M01 M04 M09 M13 " ] || fail "postqueue -i calls: $got"
# Charged once: M01 2, M04 1 (g@nomx.example has no mail host), M09 1, M13 1; google 2 + 1.
expect 0 "caps after release" -- r caps --stream bulk --format json
python3 - "$work/out" <<'PY' || fail "counters after release: $out"
import json, sys
b = json.loads(open(sys.argv[1]).readline())
assert b["hourly"]["used"] == 5 and b["hourly"]["limit"] == 5, b["hourly"]
assert b["day"]["used"] == 5, b["day"]
ops = {o["operator"]: o for o in b["operators"]}
assert ops["google"]["used"] == 3 and ops["google"]["limit"] == 3, ops
assert ops["microsoft"]["used"] == 0, ops  # M03 was kept: nothing charged
assert b["leases"] == [], b["leases"]  # spent leases are forgotten, returned ones too
PY

# --- a second run: the budget is spent; nothing goes, nothing is charged ---------------------------
expect 0 "second run" -- r release --format json
python3 - "$work/out" <<'PY' || fail "second run json: unexpected content: $out"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
summary = rows.pop()["summary"]
got = [(r["queue_id"], r["result"]) for r in rows]
assert got == [("M02", "kept"), ("M03", "kept"), ("M05", "not_a_stream"), ("M06", "not_rampart"),
               ("M07", "not_rampart"), ("M08", "kept"), ("M11", "gone"), ("M12", "kept")], got
# Both the hour and the google cap are full: the cap, which reopens later, is named.
assert rows[0]["reason"].startswith("cap (3/3) for stream bulk operator google; needs 2; reopens "), rows[0]
assert rows[5]["reason"].startswith("hourly (5/5) for stream bulk; needs 3; reopens "), rows[5]
assert summary["released"] == 0 and summary["held"] == 8, summary
PY
expect 0 "caps after second run" -- r caps --stream bulk --format json
python3 - "$work/out" <<'PY' || fail "second run charged something: $out"
import json, sys
b = json.loads(open(sys.argv[1]).readline())
assert b["hourly"]["used"] == 5 and b["day"]["used"] == 5 and b["leases"] == [], b
PY

# --- DNS trouble keeps the message held (on_dns_error = "defer") ---------------------------------
kill "$unbound_pid" && wait "$unbound_pid" 2>/dev/null
unbound_pid=""
: >"$pf/queue.jsonl"
msg N01 100 hold "bulk transport=out05" 25 n@fresh.example
sed -i 's/dns_timeout = "3s"/dns_timeout = "500ms"/' "$cfg"
expect 0 "dns down" -- r release --format json
contains "dns down" "$out" '"result": "kept", "reason": "MX lookup for fresh.example failed'

cli_finish
