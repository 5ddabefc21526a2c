#!/bin/bash
# lab_test.sh: `rampart classify` over the lab's maillog (tests/lab/lab.sh). The campaign software
# (192.0.2.25) submits to a real Postfix with rampart-milter (stream pinning through the shipped
# milter_header_checks, exclusions) and rampart-policyd (check_policy_service, wired as the shipped
# main.cf.fragment does); stream "bulk" leaves through transport out05 bound to 203.0.113.94
# (lab_rules.toml, after the shipped operators.toml and classify.toml). Three fake operators, found
# by MX as in real life, answer with the field-notes replies (rampart-lab-mx scripts):
#   contoso.example   -> contoso-example.mail.protection.outlook.com  microsoft-365: 250, and
#                        "451 4.7.500 Server busy" for two recipients (incident 8)
#   fabrikam.example  -> aspmx.l.google.com                            google: 250, and a
#                        multi-line "550-5.1.1 ... NoSuchUser" for ghost@ (incident 7)
#   northwind.example -> mta5.am0.yahoodns.net                         yahoo: "421 4.7.0 [TSS04]"
#   (a) classify counts exactly the 10 delivery attempts per operator, outcome, category and
#       status (one bounce notice to the sender goes to discard(8): a local hop, not counted);
#       the store holds what it reported; no anomaly (the lab has no OpenDKIM, and a maillog with
#       no OpenDKIM line at all proves nothing about signatures).
#   (b) a second run counts nothing (the cursor), and neither it nor a --dry-run --from-start
#       (which reports the same counts again) changes the store.
#   (c) the 5.1.1 recipient is now suppressed (exclusion category "bounces", source bounce):
#       rampart-milter reloads by itself and refuses it at RCPT naming the category.
#   (d) the [TSS04] reply paused yahoo for stream bulk (a classify back-off): rampart-policyd
#       reloads by itself and defers a Yahoo-hosted recipient naming the pause; a Microsoft one in
#       the same session goes through.
#   (e) incident 10: with the stream's egress address removed from the namespace and
#       smtp_bind_address_enforce = no on out05, Postfix logs the bind failure and delivers from
#       another address; classify raises a bind-failure and an unexpected-egress anomaly for
#       203.0.113.94 and counts that delivery under no egress address.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lab/lab.sh
source "$here/../lab/lab.sh"

readonly SRC=${RAMPART_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
readonly CLIENT_IP=192.0.2.25 CLIENT_NET=192.0.2.0/24
readonly BULK_IP=203.0.113.94
readonly MS_MX_IP=198.51.100.10 GOOGLE_MX_IP=198.51.100.20 YAHOO_MX_IP=198.51.100.30
readonly MS_MX=contoso-example.mail.protection.outlook.com
readonly GOOGLE_MX=aspmx.l.google.com
readonly YAHOO_MX=mta5.am0.yahoodns.net
readonly FROM=news@send.example.net
readonly MILTER_PORT=8893 POLICY_PORT=10040
# The field-notes replies, as the operators send them.
readonly MS_BUSY="451 4.7.500 Server busy. Please try again later from [$BULK_IP]. (S77719) [BN8NAM12FT045.eop-nam12.prod.protection.outlook.com 2026-06-09T08:50:20.123Z 08DC88B2A1B2C3D4]"
readonly GOOGLE_NOUSER='550-5.1.1 The email account that you tried to reach does not exist. Please try\n550-5.1.1 double-checking the recipient'"'"'s email address for typos or\n550-5.1.1 unnecessary spaces. For more information, go to\n550 5.1.1  https://support.google.com/mail/?p=NoSuchUser d2e1a72fcca58-70af1b2c3d4si1234567b3a.123 - gsmtp'
readonly YAHOO_TSS04="421 4.7.0 [TSS04] Messages from $BULK_IP temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes"

lab_require unbound postfix postconf swaks python3 sqlite3 awk
milter_bin=${RAMPART_MILTER_BIN:-}
policyd_bin=${RAMPART_POLICYD_BIN:-}
cli_bin=${RAMPART_BIN:-}
[[ -n $milter_bin && -x $milter_bin ]] || lab_skip "rampart-milter not found (set RAMPART_MILTER_BIN)"
[[ -n $policyd_bin && -x $policyd_bin ]] || lab_skip "rampart-policyd not found (set RAMPART_POLICYD_BIN)"
[[ -n $cli_bin && -x $cli_bin ]] || lab_skip "rampart not found (set RAMPART_BIN)"
for f in postfix-conf/milter_header_checks postfix-conf/smtp_header_checks \
  postfix-conf/main.cf.fragment packaging/rules/operators.toml packaging/rules/classify.toml; do
  [[ -f $SRC/$f ]] || lab_fatal "no $SRC/$f (set RAMPART_SOURCE_DIR)"
done

lab_init classify
t_start=$EPOCHREALTIME

# --- helpers ------------------------------------------------------------------------------------

t_mark=$t_start
took() {
  local now=$EPOCHREALTIME
  _lab_log "$1 took $(awk -v a="$t_mark" -v b="$now" 'BEGIN { printf "%.1f", b - a }')s"
  t_mark=$now
}

rampart() { "$cli_bin" --config "$LAB_DIR/rampart.toml" "$@"; }
db() { sqlite3 "$LAB_DIR/rampart.db" "$@"; }

# session TAG TO[,TO...]: one SMTP session from $CLIENT_IP to the lab Postfix on port 25 (stream
# bulk). Sets LOG (the swaks transcript) and QID ("" when the message was not queued).
session() {
  local tag=$1 to=$2
  LOG=$LAB_DIR/swaks-$tag.log
  lab_swaks "$LOG" --server 127.0.0.1 --port 25 --local-interface "$CLIENT_IP" \
    --helo campaigns.lab.example --from "$FROM" --to "$to" \
    --header "Subject: lab classify $tag" --header "Message-Id: <$tag@send.example.net>"
  QID=$(lab_swaks_queue_id "$LOG") || QID=""
}

# queued WHAT: the last session's message was queued; fatal otherwise (nothing after it can pass).
queued() {
  if [[ -n $QID ]]; then
    lab_pass "$1 (queue id $QID)"
    return 0
  fi
  lab_fail "$1"
  printf '      expected: 250 ... queued as ID\n      found (%s):\n' "$LOG"
  grep -E '^ *(<-|<\*\*|\*\*\*) ' "$LOG" | sed 's/^/        /'
  lab_fatal "cannot go on without that message"
}


# wait_attempts QID RCPT...: waits until Postfix logged a delivery attempt (any status) of QID to
# each RCPT through out05.
wait_attempts() {
  local qid=$1 rcpt
  shift
  for rcpt in "$@"; do
    lab_wait_for "$maillog" "postfix/out05/smtp\[[0-9]+\]: $qid: to=<$(lab_esc "$rcpt")>, .*status=" 30 ||
      lab_fatal "no delivery attempt of $qid to <$rcpt>"
  done
}

# classify NAME [ARGS...]: `rampart classify --format json [ARGS] MAILLOG`; output in
# $LAB_DIR/NAME.json, stderr in NAME.err; OUT names the output. A non-zero exit is a failure.
classify() {
  local name=$1 rc=0
  shift
  OUT=$LAB_DIR/$name.json
  rampart classify --format json "$@" "$maillog" >"$OUT" 2>"$LAB_DIR/$name.err" || rc=$?
  lab_expect_eq 0 "$rc" "$name: rampart classify exits 0"
  if [[ -s $LAB_DIR/$name.err ]]; then
    lab_fail "$name: rampart classify wrote nothing on stderr"
    sed 's/^/        /' "$LAB_DIR/$name.err"
  fi
}

# rows FILE: classify's aggregate lines summed over days (a run may straddle midnight), one per
# line: "stream egress operator outcome category status count" ("-" for empty), sorted.
rows() {
  python3 - "$1" <<'PY'
import json, sys
sums = {}
for line in open(sys.argv[1]):
    o = json.loads(line)
    if "summary" in o:
        continue
    k = tuple(o[f] or "-" for f in ("stream", "egress_ip", "operator", "outcome", "category", "status"))
    sums[k] = sums.get(k, 0) + o["count"]
for k in sorted(sums):
    print(" ".join(k), sums[k])
PY
}

# summary FILE KEY...: the summary's values, space-separated (lists and objects as JSON).
summary() {
  python3 - "$@" <<'PY'
import json, sys
s = None
for line in open(sys.argv[1]):
    o = json.loads(line)
    if "summary" in o:
        s = o["summary"]
if s is None:
    print("(no summary)")
    sys.exit(0)
print(" ".join(json.dumps(s.get(k)) if isinstance(s.get(k), (list, dict)) else str(s.get(k)).lower()
               for k in sys.argv[2:]))
PY
}

# anomalies FILE: "kind stream subject count" per anomaly in the summary, sorted.
anomalies() {
  python3 - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    if "summary" in o:
        for a in sorted(o["summary"]["anomaly_list"], key=lambda a: (a["kind"], a["subject"])):
            print(a["kind"], a["stream"] or "-", a["subject"], a["count"])
PY
}

# store_rows: the reputation table summed over days, in rows' format.
store_rows() {
  db "SELECT stream, egress_ip, operator, outcome, category, status, SUM(count) FROM reputation
      GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6" |
    awk -F'|' '{ for (i = 1; i <= 6; i++) if ($i == "") $i = "-"; print $1, $2, $3, $4, $5, $6, $7 }' |
    LC_ALL=C sort
}
# store_snapshot: everything classify writes, for "nothing changed" checks.
store_snapshot() {
  db "SELECT 'rep', * FROM reputation ORDER BY 2, 3, 4, 5, 6, 7, 8;
      SELECT 'anom', kind, day, stream, subject, count FROM anomalies ORDER BY 2, 3, 4, 5;
      SELECT 'hits', * FROM domain_hits ORDER BY 2, 3;
      SELECT 'backoff', * FROM backoffs ORDER BY 2, 3;
      SELECT 'rules', version FROM rules_version;
      SELECT 'cursor', identity, byte_offset FROM classify_cursors ORDER BY 2"
  rampart rules export --format json
}

# --- the lab ------------------------------------------------------------------------------------
for ip in "$CLIENT_IP" "$BULK_IP" "$MS_MX_IP" "$GOOGLE_MX_IP" "$YAHOO_MX_IP"; do lab_addr "$ip"; done
lab_dns_zone example
lab_dns_zone outlook.com
lab_dns_zone google.com
lab_dns_zone yahoodns.net
lab_dns_mx contoso.example 10 "$MS_MX"
lab_dns_a "$MS_MX" "$MS_MX_IP"
lab_dns_mx fabrikam.example 1 "$GOOGLE_MX"
lab_dns_a "$GOOGLE_MX" "$GOOGLE_MX_IP"
lab_dns_mx northwind.example 1 "$YAHOO_MX"
lab_dns_a "$YAHOO_MX" "$YAHOO_MX_IP"

cat >"$LAB_DIR/ms.script" <<EOF
# Microsoft 365 throttling a warming IP (incident 8); everyone else: 250.
busy1@contoso.example $MS_BUSY
busy2@contoso.example $MS_BUSY
EOF
cat >"$LAB_DIR/google.script" <<EOF
# A dead Gmail/Workspace mailbox (incident 7), multi-line as Google sends it.
ghost@fabrikam.example $GOOGLE_NOUSER
EOF
cat >"$LAB_DIR/yahoo.script" <<EOF
# Yahoo deferring the IP's volume (incidents 1 and 2): 421 closes the session.
* $YAHOO_TSS04
EOF
lab_mx_start "$MS_MX_IP" 25 "$LAB_DIR/ms.script" --hostname "$MS_MX"
lab_mx_start "$GOOGLE_MX_IP" 25 "$LAB_DIR/google.script" --hostname "$GOOGLE_MX"
lab_mx_start "$YAHOO_MX_IP" 25 "$LAB_DIR/yahoo.script" --hostname "$YAHOO_MX"
lab_dns_start

cat >"$LAB_DIR/rampart.toml" <<EOF
[store]
url = "sqlite://$LAB_DIR/rampart.db"
[milter]
listen = "inet:$MILTER_PORT@127.0.0.1"
opendkim_config = ""
rules_poll_interval = "1s"
[policyd]
listen = ["inet:127.0.0.1:$POLICY_PORT"]
dns_servers = ["127.0.0.1:53"]
rules_poll_interval = "1s"
EOF
rampart db migrate >"$LAB_DIR/db-migrate.log" 2>&1 ||
  { cat "$LAB_DIR/db-migrate.log" >&2; lab_fatal "rampart db migrate failed"; }
rampart rules apply "$SRC/packaging/rules/operators.toml" "$SRC/packaging/rules/classify.toml" \
  "$here/lab_rules.toml" >"$LAB_DIR/rules-apply.log" 2>&1 ||
  { cat "$LAB_DIR/rules-apply.log" >&2; lab_fatal "rampart rules apply failed"; }
for bin in "$milter_bin" "$policyd_bin"; do
  "$bin" --config "$LAB_DIR/rampart.toml" --check-config >"$LAB_DIR/check-config.log" 2>&1 ||
    { cat "$LAB_DIR/check-config.log" >&2; lab_fatal "$bin --check-config failed"; }
done
lab_spawn rampart-milter "$milter_bin" --config "$LAB_DIR/rampart.toml"
milter_log=$LAB_DIR/rampart-milter.log
lab_wait_for "$milter_log" '^listening on inet:' 10 || lab_fatal "rampart-milter did not start"
lab_spawn rampart-policyd "$policyd_bin" --config "$LAB_DIR/rampart.toml"
policyd_log=$LAB_DIR/rampart-policyd.log
lab_wait_for "$policyd_log" "^listening on inet:127\.0\.0\.1:$POLICY_PORT$" 10 ||
  lab_fatal "rampart-policyd did not start"

# Postfix: out05 bound to the stream's address, the shipped header checks and milter macros, the
# policy service as main.cf.fragment ships it. Deferred mail is not retried within the test
# (every count below is exact), connections are not cached (each delivery binds anew), and the
# bounce notice to the sender's domain goes to discard(8).
lab_postfix_transport out05 "$BULK_IP" out05.send.example.net
cp "$SRC/postfix-conf/milter_header_checks" "$SRC/postfix-conf/smtp_header_checks" "$LAB_DIR/"
chmod 0644 "$LAB_DIR/milter_header_checks" "$LAB_DIR/smtp_header_checks"
fragment_params=()
for p in milter_default_action milter_connect_macros milter_mail_macros smtpd_relay_restrictions; do
  line=$(grep -E "^${p}[[:space:]]*=" "$SRC/postfix-conf/main.cf.fragment" | tail -n 1) ||
    lab_fatal "postfix-conf/main.cf.fragment has no $p line"
  fragment_params+=("$line")
done
policy_line=$(awk 'p && /^[^[:space:]]/ { exit }
                   /^smtpd_recipient_restrictions[[:space:]]*=/ { p = 1 }
                   p { sub(/^[[:space:]]+/, " "); printf "%s", $0 }' \
  "$SRC/postfix-conf/main.cf.fragment")
[[ $policy_line == *check_policy_service* ]] || lab_fatal "main.cf.fragment: no check_policy_service"
policy_line=${policy_line//unix:\/var\/spool\/postfix\/rampart\/policy.sock/inet:127.0.0.1:$POLICY_PORT}
lab_postfix_conf \
  "mynetworks = 127.0.0.0/8 $CLIENT_NET" \
  "${fragment_params[@]}" "$policy_line" \
  "smtpd_milters = inet:127.0.0.1:$MILTER_PORT" \
  "milter_header_checks = regexp:$LAB_DIR/milter_header_checks" \
  "smtp_header_checks = regexp:$LAB_DIR/smtp_header_checks" \
  "transport_maps = inline:{send.example.net=discard:}" \
  "minimal_backoff_time = 3600s" "maximal_backoff_time = 3600s" \
  "smtp_connection_cache_on_demand = no"
lab_postfix_start
maillog=$(lab_postfix_maillog)
ms_log=$(lab_mx_log "$MS_MX_IP")
yahoo_log=$(lab_mx_log "$YAHOO_MX_IP")
took setup

# --- (a) the field-notes replies, counted -------------------------------------------------------
session a-ms m1@contoso.example,m2@contoso.example,busy1@contoso.example,m3@contoso.example,busy2@contoso.example,m4@contoso.example
queued "(a) a message to six Microsoft-hosted recipients"
qid_ms=$QID
session a-google g1@fabrikam.example,ghost@fabrikam.example,g2@fabrikam.example
queued "(a) a message to three Google-hosted recipients"
qid_google=$QID
session a-yahoo y1@northwind.example
queued "(a) a message to a Yahoo-hosted recipient"
qid_yahoo=$QID
wait_attempts "$qid_ms" m1@contoso.example m2@contoso.example busy1@contoso.example \
  m3@contoso.example busy2@contoso.example m4@contoso.example
wait_attempts "$qid_google" g1@fabrikam.example ghost@fabrikam.example g2@fabrikam.example
wait_attempts "$qid_yahoo" y1@northwind.example
# The bounce notice for ghost@ (to the sender) goes to discard(8).
lab_wait_for "$maillog" "postfix/discard\[[0-9]+\]: [0-9A-F]+: to=<$(lab_esc "$FROM")>, .*status=sent" 30 ||
  lab_fatal "no bounce notice for ghost@fabrikam.example"
lab_expect_line "$maillog" \
  "postfix/out05/smtp\[[0-9]+\]: $qid_google: to=<ghost@fabrikam\.example>, relay=$(lab_esc "$GOOGLE_MX")\[$(lab_esc "$GOOGLE_MX_IP")\]:25, .*dsn=5\.1\.1, status=bounced \(host .* said: 550-5\.1\.1 The email account .* 550 5\.1\.1 .*NoSuchUser" \
  "(a) Postfix bounced ghost@fabrikam.example with Google's flattened 550-5.1.1 reply" "ghost"
lab_expect_line "$maillog" \
  "postfix/out05/smtp\[[0-9]+\]: $qid_yahoo: to=<y1@northwind\.example>, relay=$(lab_esc "$YAHOO_MX")\[$(lab_esc "$YAHOO_MX_IP")\]:25, .*status=deferred \(host .* said: 421 4\.7\.0 \[TSS04\] " \
  "(a) Postfix deferred y1@northwind.example with Yahoo's [TSS04] reply" "y1@"

milter_loads=$(grep -c 'rules\.loaded' "$milter_log" || true)
classify run1
rows "$OUT" >"$LAB_DIR/run1.rows"
want_rows="bulk $BULK_IP google accepted other 2.0.0 2
bulk $BULK_IP google reject_recipient bad-mailbox 5.1.1 1
bulk $BULK_IP microsoft-365 accepted other 2.0.0 4
bulk $BULK_IP microsoft-365 throttled policy-related 4.7.500 2
bulk $BULK_IP yahoo throttled policy-related 4.7.0 1"
lab_expect_eq "$want_rows" "$(cat "$LAB_DIR/run1.rows")" \
  "(a) run 1: the right operators, outcomes, categories, statuses and counts"
lab_expect_eq "10 6 3 1 0 1 0 0 0 0" \
  "$(summary "$OUT" deliveries sent deferred bounced expired local_hops filter_hops unattributed unknown_operator unparsed)" \
  "(a) run 1 summary: 10 deliveries (6 sent, 3 deferred, 1 bounced), the bounce notice a local hop, all attributed, nothing unparsed"
lab_expect_eq "" "$(anomalies "$OUT")" \
  "(a) run 1: no anomaly (no unsigned one either: this maillog has no OpenDKIM line at all)"
lab_expect_eq '[["ghost@fabrikam.example", "address", null]]' \
  "$(summary "$OUT" suppressions | python3 -c 'import json,sys; print(json.dumps([[s["value"], s["kind"], s["expires"]] for s in json.load(sys.stdin)]))')" \
  "(a) run 1 suppressed ghost@fabrikam.example (an address, for good)"
lab_expect_eq '[["bulk", "yahoo", 0]]' \
  "$(summary "$OUT" backoffs | python3 -c 'import json,sys; print(json.dumps([[b["stream"], b["operator"], b["factor"]] for b in json.load(sys.stdin)]))')" \
  "(a) run 1 paused yahoo for stream bulk, and set no other back-off (Microsoft's 2 of 6 is under backoff_min_attempts)"
lab_expect_eq "$want_rows" "$(store_rows)" "(a) the store's reputation table holds what run 1 reported"
took "(a)"

# --- (b) the cursor: nothing is counted twice ---------------------------------------------------
snap1=$(store_snapshot)
classify run2
lab_expect_eq "1 0 0" "$(summary "$OUT" files deliveries anomalies)" \
  "(b) run 2 over the same maillog: no delivery counted again, no anomaly"
skipped=$(summary "$OUT" skipped_bytes)
if [[ $skipped =~ ^[0-9]+$ ]] && ((skipped > 0)); then
  lab_pass "(b) run 2 started at run 1's cursor ($skipped bytes skipped)"
else
  lab_fail "(b) run 2 started at run 1's cursor"
  printf '      expected: skipped_bytes > 0\n      found: %s\n' "$skipped"
fi
lab_expect_eq "" "$(rows "$OUT")" "(b) run 2 reports no aggregate line"
classify dry --dry-run --from-start
lab_expect_eq "true" "$(summary "$OUT" dry_run)" "(b) --dry-run --from-start says it is a dry run"
lab_expect_eq "$want_rows" "$(rows "$OUT")" "(b) --dry-run --from-start reads the whole log again: the same counts"
# The cursors moved only over lines run 1 left (Postfix keeps logging): compare all but them.
snap2=$(store_snapshot)
if [[ $(grep -v '^cursor|' <<<"$snap1") == "$(grep -v '^cursor|' <<<"$snap2")" ]]; then
  lab_pass "(b) the store is unchanged by run 2 and the dry run (aggregates, anomalies, rules, back-offs)"
else
  lab_fail "(b) the store is unchanged by run 2 and the dry run (aggregates, anomalies, rules, back-offs)"
  diff <(grep -v '^cursor|' <<<"$snap1") <(grep -v '^cursor|' <<<"$snap2") | head -n 20 | sed 's/^/        /'
fi
lab_expect_eq 1 "$(db 'SELECT COUNT(*) FROM classify_cursors')" "(b) one cursor for the one maillog"
took "(b)"

# --- (c) the 5.1.1 recipient is suppressed and the milter refuses it ---------------------------
rampart rules list --kind exclusion >"$LAB_DIR/exclusions.txt"
lab_expect_line "$LAB_DIR/exclusions.txt" \
  '^exclusion +bounces +action=reject streams=\* domains=0 addresses=1 +bounce$' \
  "(c) rules list: exclusion category bounces (reject, every stream, 1 address, origin bounce)"
lab_expect_eq '[["reject", ["*"], ["ghost@fabrikam.example"]]]' \
  "$(rampart rules export --format json | python3 -c 'import json,sys
print(json.dumps([[e["action"], e["streams"], e["addresses"]] for e in json.load(sys.stdin)["exclusions"] if e["category"] == "bounces"]))')" \
  "(c) rules export: the bounces category lists exactly ghost@fabrikam.example"
# rampart-milter polls rules_version every second: no signal.
if lab_wait_count "$milter_log" 'rules\.loaded' $((milter_loads + 1)) 10; then
  lab_pass "(c) rampart-milter reloaded the rules by itself after classify"
else
  lab_fail "(c) rampart-milter reloaded the rules by itself after classify"
fi
session c g3@fabrikam.example,ghost@fabrikam.example
lab_expect_reply "$LOG" "RCPT TO:<ghost@fabrikam.example>" \
  '^550 5\.7\.1 rampart: recipient ghost@fabrikam\.example excluded \(bounces\)$' \
  "(c) RCPT ghost@fabrikam.example: 550 5.7.1 naming the bounces category"
lab_expect_reply "$LOG" "RCPT TO:<g3@fabrikam.example>" '^250 ' "(c) RCPT g3@fabrikam.example: 250"
queued "(c) the message is accepted for g3"
qid_c=$QID
lab_expect_line "$milter_log" \
  "rampart-milter\[[0-9]+\]: $qid_c: reject rcpt=<ghost@fabrikam\.example> stream=bulk rule=bounces$" \
  "(c) rampart-milter logged the reject with rule=bounces" "reject rcpt="
wait_attempts "$qid_c" g3@fabrikam.example
lab_expect_no_line "$maillog" " $qid_c: to=<ghost@fabrikam\.example>" "(c) Postfix never tried ghost again"
took "(c)"

# --- (d) the [TSS04] pause and the policy daemon -------------------------------------------------
rampart backoff list --format json >"$LAB_DIR/backoffs.json"
backoff=$(python3 - "$LAB_DIR/backoffs.json" <<'PY'
import json, sys
bs = json.load(open(sys.argv[1]))
for b in bs:
    fresh = 86400 - 600 <= b["remaining_seconds"] <= 86400
    print(b["stream"], b["operator"], b["factor"], b["source"], str(b["active"]).lower(),
          "24h" if fresh else "remaining=%s" % b["remaining_seconds"],
          b["reason"].startswith("classify: rule yahoo-tss04 at ") and "[TSS04]" in b["reason"])
PY
)
lab_expect_eq "bulk yahoo pause classify true 24h True" "$backoff" \
  "(d) backoff list: one active pause of yahoo for stream bulk, from classify, for 24 hours, naming rule yahoo-tss04"
pause_until=$(python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["until"])' <"$LAB_DIR/backoffs.json" 2>/dev/null || echo NONE)
if lab_wait_for "$policyd_log" 'backoffs\.loaded active=1$' 10; then
  lab_pass "(d) rampart-policyd loaded the back-off by itself"
else
  lab_fail "(d) rampart-policyd loaded the back-off by itself"
fi
yahoo_connects=$(grep -c '^connect ' "$yahoo_log" || true)
session d m6@contoso.example,y2@northwind.example
lab_expect_reply "$LOG" "RCPT TO:<y2@northwind.example>" \
  "^450 4\.7\.1 <y2@northwind\.example>: Recipient address rejected: rampart: pause \(0/0\) for stream bulk operator yahoo \(classify: rule yahoo-tss04 at [0-9T:-]+Z: 421 4\.7\.0 \[TSS04\] Messages from $(lab_esc "$BULK_IP") .*\); reopens $(lab_esc "$pause_until")$" \
  "(d) RCPT y2@northwind.example: 450 4.7.1 naming the pause, its reason and when it lifts"
lab_expect_reply "$LOG" "RCPT TO:<m6@contoso.example>" '^250 ' \
  "(d) RCPT m6@contoso.example (Microsoft, same stream): 250"
queued "(d) the message is accepted for m6"
qid_d=$QID
lab_expect_line "$policyd_log" \
  "rampart-policyd\[[0-9]+\]: $qid_d: defer rcpt=<y2@northwind\.example> stream=bulk operator=yahoo reason=pause " \
  "(d) rampart-policyd logged the deferral with reason=pause" "defer rcpt="
wait_attempts "$qid_d" m6@contoso.example
lab_expect_eq "$yahoo_connects" "$(grep -c '^connect ' "$yahoo_log" || true)" \
  "(d) the Yahoo MX saw no new connection"
took "(d)"

# --- (e) incident 10: the stream's address is gone ------------------------------------------------
lab_postconf -P out05/unix/smtp_bind_address_enforce=no || lab_fatal "cannot set enforce = no on out05"
lab_postfix_reload
lab_del_addr "$BULK_IP"
session e m7@contoso.example
queued "(e) a message to a Microsoft-hosted recipient"
qid_e=$QID
bind_re="postfix/out05/smtp\[[0-9]+\]: warning: smtp_connect_addr: bind $(lab_esc "$BULK_IP"): Cannot assign requested address"
lab_wait_for "$maillog" "$bind_re" 30 || true
lab_expect_line "$maillog" "$bind_re" "(e) Postfix logged the bind failure" "bind"
wait_attempts "$qid_e" m7@contoso.example
lab_expect_line "$maillog" "postfix/out05/smtp\[[0-9]+\]: $qid_e: to=<m7@contoso\.example>, .*status=sent " \
  "(e) and delivered anyway (smtp_bind_address_enforce = no)" "$qid_e"
mx_id=$(sed -n "s/.* $qid_e: to=<m7@contoso\.example>, .*status=sent (250 2\.0\.0 Ok: queued as \(LAB[0-9A-F]*\))$/\1/p" "$maillog")
lab_expect_line "$ms_log" "^accepted .* client=$(lab_esc "$MS_MX_IP") queue_id=${mx_id:-NONE}( |$)" \
  "(e) the Microsoft MX saw it come from $MS_MX_IP, not the stream's $BULK_IP" "^accepted"
classify run3
want_rows3="bulk - microsoft-365 accepted other 2.0.0 1
bulk $BULK_IP google accepted other 2.0.0 1
bulk $BULK_IP microsoft-365 accepted other 2.0.0 1"
lab_expect_eq "$want_rows3" "$(rows "$OUT")" \
  "(e) run 3 counts only what came after run 2: g3, m6 from $BULK_IP, m7 from no stream address"
lab_expect_eq "3 3 0" "$(summary "$OUT" deliveries sent unparsed)" "(e) run 3 summary: 3 deliveries, all sent"
lab_expect_eq "bind-failure bulk $BULK_IP 1
unexpected-egress bulk $BULK_IP 1" "$(anomalies "$OUT")" \
  "(e) run 3: a bind-failure and an unexpected-egress anomaly for $BULK_IP, nothing else"
lab_expect_eq "bind-failure|bulk|$BULK_IP|1
unexpected-egress|bulk|$BULK_IP|1" \
  "$(db "SELECT kind, stream, subject, SUM(count) FROM anomalies GROUP BY 1, 2, 3 ORDER BY 1, 3")" \
  "(e) the store's anomalies: the bind failure and the unexpected egress, nothing else"
db "SELECT detail FROM anomalies WHERE kind = 'bind-failure'" >"$LAB_DIR/bind-detail.txt"
lab_expect_line "$LAB_DIR/bind-detail.txt" \
  "bind $(lab_esc "$BULK_IP"): Cannot assign requested address" \
  "(e) the bind-failure anomaly quotes Postfix's reason"
took "(e)"

# --- everything together ------------------------------------------------------------------------
for name in rampart-milter rampart-policyd; do
  lab_expect_no_line "$LAB_DIR/$name.log" 'Sanitizer|runtime error:|internal error| error ' \
    "$name logged no error or sanitizer report"
done
t_mark=$t_start
took "everything"
lab_finish
