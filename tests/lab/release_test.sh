#!/bin/bash
# release_test.sh: `rampart release` against a real Postfix hold queue. Mail is held at submission
# by an access table's HOLD (standing in for rampart-policyd's HOLD, which is its own test); one
# message carries an X-Rampart-Stream header, the others are found by their envelope (server
# port 25), one came in on a port of no stream. The rules let exactly two recipients a day go to
# the google-like operator: --dry-run plans without touching anything, then the two oldest google
# messages and the microsoft one are released and delivered by Postfix through the real MX
# lookup, the rest stay held, the counters are charged once, and a second run releases nothing.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"

readonly MS_MX_IP=198.51.100.10
readonly GOOGLE_MX_IP=198.51.100.20
readonly MS_MX=contoso-example.mail.protection.outlook.com.test
readonly GOOGLE_MX=aspmx.l.google.com.test

lab_require unbound postfix postconf postqueue postsuper postcat swaks python3
bin=${RAMPART_BIN:?RAMPART_BIN must point at the rampart binary}
lab_init release

# --- the miniature internet ----------------------------------------------------------------------
lab_addr "$MS_MX_IP"
lab_addr "$GOOGLE_MX_IP"
lab_dns_zone example
lab_dns_zone test
lab_dns_mx contoso.example 10 "$MS_MX"
lab_dns_a "$MS_MX" "$MS_MX_IP"
lab_dns_mx fabrikam.example 1 "$GOOGLE_MX"
lab_dns_a "$GOOGLE_MX" "$GOOGLE_MX_IP"
lab_dns_start
lab_mx_start "$MS_MX_IP" 25 "" --hostname "$MS_MX"
lab_mx_start "$GOOGLE_MX_IP" 25 "" --hostname "$GOOGLE_MX"

# Every recipient is held at submission; port 2525 is a listener of no stream.
lab_postfix_conf "smtpd_recipient_restrictions = check_recipient_access static:HOLD, permit_mynetworks, reject"
lab_postfix_listener 127.0.0.1 2525
lab_postfix_start
lab_wait_port 127.0.0.1 2525 10 || lab_fatal "no listener on 127.0.0.1:2525"
maillog=$(lab_postfix_maillog)
etc=$(lab_postfix_etc)

# --- rampart: store, rules, configuration ---------------------------------------------------------
cfg=$LAB_DIR/rampart.toml
cat >"$cfg" <<EOF
[store]
url = "sqlite://$LAB_DIR/rampart.db"

[policyd]
dns_servers = ["127.0.0.1"]
host_id = "lab"

[sidecar]
postfix_config_dir = "$etc"
EOF
cat >"$LAB_DIR/rules.toml" <<'EOF'
[[stream]]
name = "bulk"
ports = [25]
transport = "smtp"
warmup = { start = "2020-01-01", count = "calendar", ramp = "flat" }
over_cap = "hold"

[[ramp]]
name = "flat"
steps = [ { day = 0, hourly = 50 } ]

[[operator]]
name = "google"
mx = [".google.com.test"]

[[operator]]
name = "microsoft"
mx = [".mail.protection.outlook.com.test"]

[[cap]]
stream = "bulk"
operator = "google"
daily = 2
EOF
r() { lab_exec "$bin" --config "$cfg" "$@"; }
r db migrate >/dev/null || lab_fatal "rampart db migrate failed"
r rules apply "$LAB_DIR/rules.toml" >/dev/null || lab_fatal "rampart rules apply failed"

# --- the held mail ------------------------------------------------------------------------------
g1=$(lab_submit news@shop.example a1@fabrikam.example --add-header "X-Rampart-Stream: bulk transport=smtp") ||
  lab_fatal "submission g1 failed"
g2=$(lab_submit news@shop.example a2@fabrikam.example) || lab_fatal "submission g2 failed"
g3=$(lab_submit news@shop.example a3@fabrikam.example) || lab_fatal "submission g3 failed"
g4=$(lab_submit news@shop.example a4@fabrikam.example) || lab_fatal "submission g4 failed"
c1=$(lab_submit news@shop.example c1@contoso.example) || lab_fatal "submission c1 failed"
lab_swaks "$LAB_DIR/n1.log" --server 127.0.0.1:2525 --helo submit.lab.example \
  --from news@shop.example --to n1@contoso.example
n1=$(lab_swaks_queue_id "$LAB_DIR/n1.log") || lab_fatal "submission n1 failed"
# "queued as" came after cleanup wrote the queue file straight into the hold queue.
lab_postqueue -j >"$LAB_DIR/queue.before"
# rampart sorts the hold queue by (arrival_time, queue_id); so does the expectation.
order=$(python3 - "$LAB_DIR/queue.before" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
held = sorted((r["arrival_time"], r["queue_id"]) for r in rows if r["queue_name"] == "hold")
print(" ".join(q for _, q in held))
PY
)
lab_expect_eq 6 "$(wc -w <<<"$order")" "six messages in the hold queue"
google_order=$(for q in $order; do case $q in "$g1" | "$g2" | "$g3" | "$g4") printf '%s ' "$q" ;; esac; done)
read -r first second third fourth <<<"$google_order"

# --- dry run: the plan; nothing leased, nothing released ------------------------------------------
r release --dry-run --format json >"$LAB_DIR/dry.json" 2>"$LAB_DIR/dry.err" ||
  lab_fail "release --dry-run exited $? ($(cat "$LAB_DIR/dry.err"))"
check=$(python3 - "$LAB_DIR/dry.json" "$first $second" "$third $fourth" "$c1" "$n1" "$g1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
summary = rows.pop()["summary"]
go, stay, c1, n1, g1 = sys.argv[2].split(), sys.argv[3].split(), sys.argv[4], sys.argv[5], sys.argv[6]
res = {r["queue_id"]: r for r in rows}
bad = []
for q in go + [c1]:
    if res[q]["result"] != "would_release": bad.append("%s: %s" % (q, res[q]))
for q in stay:
    if res[q]["result"] != "kept" or not res[q]["reason"].startswith("cap (2/2) for stream bulk operator google; needs 1"):
        bad.append("%s: %s" % (q, res[q]))
if res[n1]["result"] != "not_a_stream": bad.append("n1: %s" % res[n1])
if res[g1]["stream_source"] != "header": bad.append("g1 source: %s" % res[g1])
if res[c1]["stream_source"] != "envelope" or res[c1]["operators"] != [{"operator": "microsoft", "recipients": 1}]:
    bad.append("c1: %s" % res[c1])
if summary["would_release"] != 3 or summary["kept"] != 2 or summary["held"] != 6:
    bad.append("summary: %s" % summary)
print("; ".join(bad) or "ok")
PY
)
lab_expect_eq ok "$check" "dry run: the two oldest google messages and the microsoft one would go"
lab_postqueue -j >"$LAB_DIR/queue.dry"
lab_expect_eq "$(grep -c '"queue_name": "hold"' "$LAB_DIR/queue.before")" \
  "$(grep -c '"queue_name": "hold"' "$LAB_DIR/queue.dry")" "dry run released nothing"
used=$(r caps --stream bulk --format json | python3 -c 'import json,sys; b=json.load(sys.stdin); print(b["day"]["used"])')
lab_expect_eq 0 "$used" "dry run charged nothing"

# --- the real run ---------------------------------------------------------------------------------
r release >"$LAB_DIR/release.out" 2>"$LAB_DIR/release.err" ||
  lab_fail "release exited $? ($(cat "$LAB_DIR/release.err"))"
lab_expect_line "$LAB_DIR/release.out" \
  '^3 of 6 held messages released \(3 recipients\); 2 kept, 1 not a stream, 0 not rampart.s, 0 gone, 0 errors$' \
  "release: 3 released, 2 kept, 1 not a stream"
for q in "$first" "$second"; do
  lab_expect_line "$LAB_DIR/release.out" "^$q .* bulk +1 +google:1 +released$" "$q (google, among the two oldest) released"
done
for q in "$third" "$fourth"; do
  lab_expect_line "$LAB_DIR/release.out" "^$q .* kept: cap \(2/2\) for stream bulk operator google; needs 1; reopens " \
    "$q (google, newer) kept, naming the cap"
done
lab_expect_line "$maillog" "postsuper\[[0-9]+\]: $first: released from hold" "Postfix logs the release of $first"
for q in "$first" "$second" "$c1"; do
  lab_wait_for "$maillog" "$q: to=<[^>]*>, relay=.*status=sent" 30 || true
  lab_expect_line "$maillog" "$q: to=<[^>]*>, relay=.*status=sent" "$q delivered after release"
done
lab_expect_line "$maillog" "$c1: to=<c1@contoso\.example>, relay=${MS_MX//./\\.}\[" "c1 went to the microsoft-like MX"
lab_postqueue -j >"$LAB_DIR/queue.after"
still=$(python3 - "$LAB_DIR/queue.after" <<'PY'
import json, sys
print(" ".join(sorted(r["queue_id"] for r in (json.loads(l) for l in open(sys.argv[1]) if l.strip())
                      if r["queue_name"] == "hold")))
PY
)
lab_expect_eq "$(printf '%s\n' "$third" "$fourth" "$n1" | sort | tr '\n' ' ' | sed 's/ $//')" "$still" \
  "the kept messages and the one of no stream are still held"

r caps --stream bulk --format json >"$LAB_DIR/caps.json"
check=$(python3 - "$LAB_DIR/caps.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
ops = {o["operator"]: o for o in b["operators"]}
# microsoft has no cap: like rampart-policyd, release counts no operator scope for it.
got = (b["hourly"]["used"], b["day"]["used"], ops["google"]["used"], ops["google"]["limit"],
       sorted(ops), b["leases"])
print("ok" if got == (3, 3, 2, 2, ["google"], []) else "got %s" % (got,))
PY
)
lab_expect_eq ok "$check" "counters charged once per released recipient, no lease left"

# --- a second run: the google budget is spent, nothing more goes --------------------------------
r release --format json >"$LAB_DIR/again.json" 2>"$LAB_DIR/again.err" ||
  lab_fail "second release exited $? ($(cat "$LAB_DIR/again.err"))"
summary=$(tail -n 1 "$LAB_DIR/again.json" | python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]; print(s["held"], s["released"], s["kept"], s["not_a_stream"])')
lab_expect_eq "3 0 2 1" "$summary" "second run: 3 held, none released, 2 kept, 1 not a stream"

lab_finish
