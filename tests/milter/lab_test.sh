#!/bin/bash
# lab_test.sh: rampart-milter behind a real Postfix and a real OpenDKIM in the lab (tests/lab/lab.sh),
# wired with the SHIPPED postfix-conf files (milter_header_checks, smtp_header_checks, the milter
# macros of main.cf.fragment). The campaign software submits from 192.0.2.25 (its network
# 192.0.2.0/24 stands in for the field notes' 172.18.0.0/16): port 25 is stream "bulk" (transport
# out05, 203.0.113.94, From send.example.net), port 2526 is stream "institutional" (hcout1,
# 203.0.113.95, From send.example.org); rules in lab_rules.toml.
#   (a) incident 5: while OpenDKIM's InternalHosts does not cover the client, a stream message is
#       refused at end of data with 451 4.7.0 naming the reason; after InternalHosts is fixed (and
#       rampart-milter has reloaded opendkim.conf by itself) the same message leaves signed, with
#       d=<From domain> and no X-Rampart-Stream header.
#   (b) incident 6: of three recipients, the one at an excluded consumer domain gets 550 5.7.1 at
#       RCPT with the category in the text; the other two are delivered.
#   (c) stream pinning: port 2526 leaves through hcout1 from 203.0.113.95, port 25 through out05
#       from 203.0.113.94, also with a forged "X-Rampart-Stream: institutional transport=hcout1"
#       (stripped before it leaves).
#   (d) incident 9: From outside the stream's from_domains is refused at end of data with 550 5.7.1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lab/lab.sh
source "$here/../lab/lab.sh"

readonly SRC=${RAMPART_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
readonly CLIENT_IP=192.0.2.25  # the campaign software
readonly CLIENT_NET=192.0.2.0/24
readonly BULK_IP=203.0.113.94 INST_IP=203.0.113.95
readonly MS_MX_IP=198.51.100.10 GOOGLE_MX_IP=198.51.100.20 WEBMAIL_MX_IP=198.51.100.30
readonly MS_MX=contoso-example.mail.protection.outlook.com.test
readonly GOOGLE_MX=aspmx.l.google.com.test
readonly WEBMAIL_MX=mx.webmail.example
readonly BULK_FROM=news@send.example.net INST_FROM=notices@send.example.org
readonly INST_PORT=2526 MILTER_PORT=8893

lab_require unbound postfix postconf swaks opendkim opendkim-genkey opendkim-testmsg awk
milter_bin=${RAMPART_MILTER_BIN:-}
cli_bin=${RAMPART_BIN:-}
[[ -n $milter_bin && -x $milter_bin ]] || lab_skip "rampart-milter not found (set RAMPART_MILTER_BIN)"
[[ -n $cli_bin && -x $cli_bin ]] || lab_skip "rampart not found (set RAMPART_BIN)"
for f in milter_header_checks smtp_header_checks main.cf.fragment; do
  [[ -f $SRC/postfix-conf/$f ]] || lab_fatal "no $SRC/postfix-conf/$f (set RAMPART_SOURCE_DIR)"
done

lab_init milter
t_start=$EPOCHREALTIME

# --- helpers ------------------------------------------------------------------------------------


# took WHAT: logs the seconds since the previous call (or the start).
t_mark=$t_start
took() {
  local now=$EPOCHREALTIME
  _lab_log "$1 took $(awk -v a="$t_mark" -v b="$now" 'BEGIN { printf "%.1f", b - a }')s"
  t_mark=$now
}

# session TAG PORT FROM TO[,TO...] [SWAKS-ARGS...]: one SMTP session from $CLIENT_IP to the lab
# Postfix on 127.0.0.1:PORT with Subject "lab milter TAG" and Message-Id <TAG@lab.example>.
# Sets LOG (the swaks transcript) and QID (the queue id, "" when the message was not queued).
session() {
  local tag=$1 port=$2 from=$3 to=$4
  shift 4
  LOG=$LAB_DIR/swaks-$tag.log
  lab_swaks "$LOG" --server 127.0.0.1 --port "$port" --local-interface "$CLIENT_IP" \
    --helo campaigns.lab.example --from "$from" --to "$to" \
    --header "Subject: lab milter $tag" --header "Message-Id: <$tag@lab.example>" "$@"
  QID=$(lab_swaks_queue_id "$LOG") || QID=""
}


# queued WHAT: the last session's message was queued (QID set); a fatal failure otherwise.
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

# delivery QID RCPT: waits for Postfix's delivery attempt; sets DLINE (the maillog line), and, when
# it was sent to a lab MX, MX_LOG (that MX's log), MX_ID (its queue id), EML (the copy it saved)
# and MX_CLIENT (the address the MX saw the message come from); otherwise they are "".
delivery() {
  local qid=$1 rcpt=$2 ip accepted
  DLINE="" MX_LOG="" MX_ID="" EML="" MX_CLIENT=""
  lab_wait_for "$maillog" " $qid: to=<$(lab_esc "$rcpt")>, .*status=" 30 ||
    lab_fatal "no delivery attempt for $qid to <$rcpt>"
  DLINE=$(grep -E " $qid: to=<$(lab_esc "$rcpt")>, .*status=" "$maillog" | tail -n 1)
  ip=$(sed -n 's/.* relay=[^[]*\[\([0-9.]*\)\]:25, .*status=sent (250 .*/\1/p' <<<"$DLINE")
  MX_ID=$(sed -n 's/.*status=sent (250 2\.0\.0 Ok: queued as \(LAB[0-9A-F]*\))$/\1/p' <<<"$DLINE")
  [[ -n $ip && -n $MX_ID ]] || { MX_ID=""; return 0; }
  MX_LOG=$(lab_mx_log "$ip")
  accepted=$(grep -E "^accepted .* queue_id=$MX_ID saved=" "$MX_LOG" | tail -n 1) || true
  EML=$(sed -n 's/.* saved=\(.*\)$/\1/p' <<<"$accepted")
  MX_CLIENT=$(sed -n 's/.* client=\([^ ]*\) queue_id=.*/\1/p' <<<"$accepted")
}

# headers FILE: the header section of a saved message, one unfolded field per line.
headers() {
  awk '{ sub(/\r$/, "") }
       /^$/ { exit }
       /^[ \t]/ { sub(/^[ \t]+/, " "); cur = cur $0; next }
       { if (cur != "") print cur; cur = $0 }
       END { if (cur != "") print cur }' "$1"
}

# field FILE NAME: every NAME: field of a saved message (name case-insensitive), one per line.
field() { headers "$1" | grep -i "^$2:" || true; }

# dkim_tag SIGNATURE TAG: the value of TAG in a DKIM-Signature field.
dkim_tag() {
  printf '%s\n' "${1#*:}" | tr ';' '\n' |
    sed -n "s/^[[:space:]]*$2[[:space:]]*=[[:space:]]*\([^[:space:]]*\)[[:space:]]*$/\1/p" | head -n 1
}

# copies MSGID: how many messages the lab MXs saved with that Message-Id.
copies() {
  local n=0 f
  for f in "$LAB_DIR"/mail-*/*.eml; do
    [[ -f $f ]] || continue
    if field "$f" Message-Id | grep -qiF "<$1>"; then n=$((n + 1)); fi
  done
  printf '%s\n' "$n"
}

# expect_signed_copy WHAT DOMAIN: EML (set by delivery) has exactly one DKIM-Signature, with
# d=DOMAIN, that verifies in the lab DNS, and no X-Rampart-Stream field.
expect_signed_copy() {
  local what=$1 domain=$2 sigs out
  if [[ -z $EML || ! -f $EML ]]; then
    lab_fail "$what: the MX saved the message"
    printf '      expected: a saved copy\n      found: delivery line: %s\n' "$DLINE"
    return 0
  fi
  sigs=$(field "$EML" DKIM-Signature)
  lab_expect_eq 1 "$(grep -c . <<<"$sigs" || true)" "$what: the MX copy has one DKIM-Signature"
  lab_expect_eq "$domain" "$(dkim_tag "$sigs" d)" "$what: its d= is the From domain"
  lab_expect_eq "" "$(field "$EML" X-Rampart-Stream)" \
    "$what: the MX copy has no X-Rampart-Stream field (smtp_header_checks stripped it)"
  if out=$(lab_exec opendkim-testmsg <"$EML" 2>&1); then
    lab_pass "$what: the MX copy's signature verifies against the lab DNS"
  else
    lab_fail "$what: the MX copy's signature verifies against the lab DNS"
    printf '      expected: opendkim-testmsg exits 0\n      found: %s\n' "${out:-non-zero exit}"
  fi
}

# --- the lab ------------------------------------------------------------------------------------
for ip in "$CLIENT_IP" "$BULK_IP" "$INST_IP" "$MS_MX_IP" "$GOOGLE_MX_IP" "$WEBMAIL_MX_IP"; do
  lab_addr "$ip"
done
lab_dns_zone example
lab_dns_zone test
lab_dns_zone example.net
lab_dns_zone example.org
lab_dns_mx contoso.example 10 "$MS_MX"
lab_dns_a "$MS_MX" "$MS_MX_IP"
lab_dns_mx fabrikam.example 1 "$GOOGLE_MX"
lab_dns_a "$GOOGLE_MX" "$GOOGLE_MX_IP"
lab_dns_mx webmail.example 10 "$WEBMAIL_MX"
lab_dns_a "$WEBMAIL_MX" "$WEBMAIL_MX_IP"
for ip in "$MS_MX_IP" "$GOOGLE_MX_IP" "$WEBMAIL_MX_IP"; do
  mkdir -p "$LAB_DIR/mail-$ip"
done
lab_mx_start "$MS_MX_IP" 25 "" --hostname "$MS_MX" --save-dir "$LAB_DIR/mail-$MS_MX_IP"
lab_mx_start "$GOOGLE_MX_IP" 25 "" --hostname "$GOOGLE_MX" --save-dir "$LAB_DIR/mail-$GOOGLE_MX_IP"
lab_mx_start "$WEBMAIL_MX_IP" 25 "" --hostname "$WEBMAIL_MX" --save-dir "$LAB_DIR/mail-$WEBMAIL_MX_IP"
# OpenDKIM keeps its default InternalHosts (127.0.0.1, ::1): the client is not covered (incident 5).
lab_opendkim_start send.example.net:lab send.example.org:lab
lab_dns_start

# rampart: a SQLite store with the lab rules, the milter on 127.0.0.1:$MILTER_PORT in the namespace.
cat >"$LAB_DIR/rampart.toml" <<EOF
[store]
url = "sqlite://$LAB_DIR/rampart.db"
[milter]
listen = "inet:$MILTER_PORT@127.0.0.1"
opendkim_config = "$(lab_opendkim_conf)"
rules_poll_interval = "1s"
EOF
"$cli_bin" --config "$LAB_DIR/rampart.toml" db migrate >"$LAB_DIR/db-migrate.log" 2>&1 ||
  { cat "$LAB_DIR/db-migrate.log" >&2; lab_fatal "rampart db migrate failed"; }
"$cli_bin" --config "$LAB_DIR/rampart.toml" rules apply "$here/lab_rules.toml" \
  >"$LAB_DIR/rules-apply.log" 2>&1 ||
  { cat "$LAB_DIR/rules-apply.log" >&2; lab_fatal "rampart rules apply failed"; }
"$milter_bin" --config "$LAB_DIR/rampart.toml" --check-config >"$LAB_DIR/check-config.log" 2>&1 ||
  { cat "$LAB_DIR/check-config.log" >&2; lab_fatal "rampart-milter --check-config failed"; }
lab_spawn rampart-milter "$milter_bin" --config "$LAB_DIR/rampart.toml"
milter_log=$LAB_DIR/rampart-milter.log
lab_wait_for "$milter_log" '^listening on inet:' 10 || lab_fatal "rampart-milter did not start"
dkim_loaded_re='rampart-milter\[[0-9]+\]: info dkim\.loaded file='
lab_expect_line "$milter_log" "${dkim_loaded_re}$(lab_esc "$(lab_opendkim_conf)") " \
  "rampart-milter loaded the lab's opendkim.conf at start" "dkim\."

# Postfix: the stream transports, the second submission port, both milters (OpenDKIM first) and
# the shipped header checks, copied so the test runs exactly what ships.
lab_postfix_transport out05 "$BULK_IP" out05.send.example.net
lab_postfix_transport hcout1 "$INST_IP" hcout1.send.example.org
lab_postfix_listener 127.0.0.1 "$INST_PORT"
cp "$SRC/postfix-conf/milter_header_checks" "$SRC/postfix-conf/smtp_header_checks" "$LAB_DIR/"
chmod 0644 "$LAB_DIR/milter_header_checks" "$LAB_DIR/smtp_header_checks"
# The milter parameters exactly as main.cf.fragment ships them.
fragment_params=()
for p in milter_default_action milter_connect_macros milter_mail_macros; do
  line=$(grep -E "^${p}[[:space:]]*=" "$SRC/postfix-conf/main.cf.fragment" | tail -n 1) ||
    lab_fatal "postfix-conf/main.cf.fragment has no $p line"
  fragment_params+=("$line")
done
lab_postfix_conf \
  "mynetworks = 127.0.0.0/8 $CLIENT_NET" \
  "smtpd_milters = inet:127.0.0.1:$LAB_OPENDKIM_PORT, inet:127.0.0.1:$MILTER_PORT" \
  "${fragment_params[@]}" \
  "milter_header_checks = regexp:$LAB_DIR/milter_header_checks" \
  "smtp_header_checks = regexp:$LAB_DIR/smtp_header_checks"
lab_expect_eq tempfail "$(lab_postconf -h milter_default_action)" \
  "the shipped main.cf.fragment fails safe (milter_default_action = tempfail)"
lab_postfix_start
lab_wait_port 127.0.0.1 "$INST_PORT" 10 || lab_fatal "the lab Postfix is not listening on $INST_PORT"
maillog=$(lab_postfix_maillog)
odk_log=$(lab_opendkim_log)
ms_log=$(lab_mx_log "$MS_MX_IP")
google_log=$(lab_mx_log "$GOOGLE_MX_IP")
webmail_log=$(lab_mx_log "$WEBMAIL_MX_IP")
took setup

# --- (a) incident 5: OpenDKIM would not sign -> refused at SMTP time ----------------------------
session a 25 "$BULK_FROM" alice@contoso.example
unsigned_text="rampart: would leave unsigned: client $CLIENT_IP not in OpenDKIM InternalHosts"
lab_expect_reply "$LOG" . "^451 4\.7\.0 $(lab_esc "$unsigned_text")\$" \
  "(a) client outside InternalHosts: end of data gets 451 4.7.0 naming the reason"
lab_expect_eq "" "$QID" "(a) the message was not queued"
reject_re="postfix/cleanup\[[0-9]+\]: ([0-9A-F]+): milter-reject: END-OF-MESSAGE from [^ ]*\[$(lab_esc "$CLIENT_IP")\]: 4\.7\.0 $(lab_esc "$unsigned_text");"
lab_wait_for "$maillog" "$reject_re" 10 || true
lab_expect_line "$maillog" "$reject_re from=<$(lab_esc "$BULK_FROM")> to=<alice@contoso\.example>" \
  "(a) Postfix logged the milter's 4.7.0 refusal" "milter-reject"
qid_a=$(sed -En "s#.*$reject_re.*#\\1#p" "$maillog" | tail -n 1)
qid_a=${qid_a:-NONE}
lab_expect_line "$milter_log" \
  "rampart-milter\[[0-9]+\]: $qid_a: tempfail from=<$(lab_esc "$BULK_FROM")> stream=bulk rule=dkim-scope reason=\"client $(lab_esc "$CLIENT_IP") not in OpenDKIM InternalHosts\"$" \
  "(a) rampart-milter logged the tempfail for $qid_a with rule=dkim-scope" "$qid_a|dkim"
lab_wait_for "$odk_log" "opendkim\[[0-9]+\]: $qid_a: " 10 || true
lab_expect_line "$odk_log" "opendkim\[[0-9]+\]: $qid_a: .*\[$(lab_esc "$CLIENT_IP")\] not internal$" \
  "(a) OpenDKIM saw $qid_a and found its client not internal (the prediction was right)" "$qid_a"
lab_expect_no_line "$odk_log" "$qid_a: DKIM-Signature field added" "(a) OpenDKIM did not sign $qid_a"
lab_expect_no_line "$maillog" " $qid_a: to=<" "(a) Postfix never tried to deliver $qid_a"

dkim_loads=$(grep -Ec "$dkim_loaded_re" "$milter_log" || true)
lab_opendkim_internal_hosts 127.0.0.1 ::1 "$CLIENT_NET"
# rampart-milter polls the OpenDKIM files' mtimes every rules_poll_interval (1 s): no signal.
if lab_wait_count "$milter_log" "$dkim_loaded_re" $((dkim_loads + 1)) 10; then
  lab_pass "(a) rampart-milter reloaded opendkim.conf by itself after InternalHosts changed"
else
  lab_fail "(a) rampart-milter reloaded opendkim.conf by itself after InternalHosts changed"
  printf '      expected: %s dkim.loaded lines in %s\n      found: %s\n' $((dkim_loads + 1)) \
    "$milter_log" "$(grep -Ec "$dkim_loaded_re" "$milter_log" || true)"
  lab_fatal "the retry cannot pass without the reload"
fi

session a 25 "$BULK_FROM" alice@contoso.example  # the client retries the same message
queued "(a) after the fix the same message is accepted"
qid_a2=$QID
lab_wait_for "$odk_log" "opendkim\[[0-9]+\]: $qid_a2: DKIM-Signature field added" 10 || true
lab_expect_line "$odk_log" \
  "opendkim\[[0-9]+\]: $qid_a2: DKIM-Signature field added \(s=lab, d=send\.example\.net\)$" \
  "(a) OpenDKIM signed $qid_a2 (d=send.example.net)" "$qid_a2"
delivery "$qid_a2" alice@contoso.example
lab_expect_line "$maillog" \
  "postfix/out05/smtp\[[0-9]+\]: $qid_a2: to=<alice@contoso\.example>, relay=$(lab_esc "$MS_MX")\[$(lab_esc "$MS_MX_IP")\]:25, .*status=sent " \
  "(a) $qid_a2 was delivered (through out05)" "$qid_a2"
expect_signed_copy "(a) $qid_a2" send.example.net
lab_expect_eq 1 "$(copies a@lab.example)" \
  "(a) the MX received the message once (the refused attempt never left)"
took "(a)"

# --- (b) incident 6: an excluded consumer domain among the recipients ---------------------------
# carol comes second: Postfix creates the queue file at the first accepted recipient, so from then
# on the milter has the queue id ("i") and keys its RCPT decisions by it.
session b 25 "$BULK_FROM" alice@contoso.example,carol@webmail.example,bob@fabrikam.example
lab_expect_reply "$LOG" "RCPT TO:<carol@webmail.example>" \
  '^550 5\.7\.1 rampart: webmail\.example excluded \(consumer-webmail\)$' \
  "(b) RCPT carol@webmail.example: 550 5.7.1 naming the category"
lab_expect_reply "$LOG" "RCPT TO:<alice@contoso.example>" '^250 ' "(b) RCPT alice@contoso.example: 250"
lab_expect_reply "$LOG" "RCPT TO:<bob@fabrikam.example>" '^250 ' "(b) RCPT bob@fabrikam.example: 250"
queued "(b) the message is accepted for the other two"
qid_b=$QID
lab_expect_line "$milter_log" \
  "rampart-milter\[[0-9]+\]: $qid_b: reject rcpt=<carol@webmail\.example> stream=bulk rule=consumer-webmail$" \
  "(b) rampart-milter logged the reject, keyed by $qid_b, with stream and category" "reject rcpt="
lab_expect_line "$maillog" \
  "milter-reject: RCPT from [^ ]*\[$(lab_esc "$CLIENT_IP")\]: 550 5\.7\.1 rampart: webmail\.example excluded \(consumer-webmail\);.* to=<carol@webmail\.example>" \
  "(b) Postfix logged the milter's RCPT refusal" "milter-reject"
delivery "$qid_b" alice@contoso.example
lab_expect_line "$maillog" " $qid_b: to=<alice@contoso\.example>, .*status=sent " \
  "(b) alice: status=sent" "$qid_b"
lab_expect_line "$ms_log" "^accepted from=<$(lab_esc "$BULK_FROM")> rcpt=<alice@contoso\.example> .* queue_id=${MX_ID:-NONE} " \
  "(b) the Microsoft-like MX received alice's copy" "^accepted"
delivery "$qid_b" bob@fabrikam.example
lab_expect_line "$maillog" " $qid_b: to=<bob@fabrikam\.example>, .*status=sent " \
  "(b) bob: status=sent" "$qid_b"
lab_expect_line "$google_log" "^accepted from=<$(lab_esc "$BULK_FROM")> rcpt=<bob@fabrikam\.example> .* queue_id=${MX_ID:-NONE} " \
  "(b) the Google-like MX received bob's copy" "^accepted"
lab_expect_no_line "$maillog" " to=<carol@webmail\.example>, relay=" "(b) Postfix never tried carol"
lab_expect_no_line "$webmail_log" "^connect " "(b) the webmail MX never saw a connection"
took "(b)"

# --- (c) stream pinning -------------------------------------------------------------------------
# expect_egress TAG QID RCPT STREAM TRANSPORT IP: the shipped milter_header_checks turned the
# milter's "X-Rampart-Stream: STREAM transport=TRANSPORT" into FILTER TRANSPORT:, and QID's delivery
# to RCPT went through TRANSPORT from IP.
expect_egress() {
  local tag=$1 qid=$2 rcpt=$3 stream=$4 transport=$5 ip=$6
  lab_expect_line "$maillog" \
    "postfix/cleanup\[[0-9]+\]: $qid: milter-header-filter: header X-Rampart-Stream: $stream transport=$transport from .*: $transport:$" \
    "($tag) milter_header_checks turned $qid's stream header into FILTER $transport:" "$qid"
  delivery "$qid" "$rcpt"
  lab_expect_line "$maillog" \
    "postfix/$transport/smtp\[[0-9]+\]: $qid: to=<$(lab_esc "$rcpt")>, relay=$(lab_esc "$MS_MX")\[$(lab_esc "$MS_MX_IP")\]:25, .*status=sent " \
    "($tag) $qid left through transport $transport" "$qid"
  lab_expect_eq "$ip" "$MX_CLIENT" "($tag) the MX saw $qid come from $ip"
  lab_expect_eq "" "$(if [[ -n $EML ]]; then field "$EML" X-Rampart-Stream; else echo "(no copy)"; fi)" \
    "($tag) the MX copy of $qid has no X-Rampart-Stream field"
}

session c-inst "$INST_PORT" "$INST_FROM" dave@contoso.example
queued "(c) port $INST_PORT: accepted"
qid_c1=$QID
lab_expect_line "$milter_log" "rampart-milter\[[0-9]+\]: $qid_c1: pin stream=institutional transport=hcout1$" \
  "(c) rampart-milter pinned $qid_c1 to institutional/hcout1" "$qid_c1"
expect_egress c "$qid_c1" dave@contoso.example institutional hcout1 "$INST_IP"
lab_wait_for "$odk_log" "opendkim\[[0-9]+\]: $qid_c1: DKIM-Signature field added" 10 || true
lab_expect_line "$odk_log" \
  "opendkim\[[0-9]+\]: $qid_c1: DKIM-Signature field added \(s=lab, d=send\.example\.org\)$" \
  "(c) OpenDKIM signed $qid_c1 (d=send.example.org)" "$qid_c1"

session c-bulk 25 "$BULK_FROM" erin@contoso.example
queued "(c) port 25: accepted"
qid_c2=$QID
lab_expect_line "$milter_log" "rampart-milter\[[0-9]+\]: $qid_c2: pin stream=bulk transport=out05$" \
  "(c) rampart-milter pinned $qid_c2 to bulk/out05" "$qid_c2"
expect_egress c "$qid_c2" erin@contoso.example bulk out05 "$BULK_IP"

session c-forged 25 "$BULK_FROM" frank@contoso.example \
  --header "X-Rampart-Stream: institutional transport=hcout1"
lab_expect_line "$LOG" '^ *-> X-Rampart-Stream: institutional transport=hcout1' \
  "(c) the forged X-Rampart-Stream header was sent" "X-Rampart"
queued "(c) port 25 with a forged stream header: accepted"
qid_c3=$QID
lab_expect_line "$milter_log" \
  "rampart-milter\[[0-9]+\]: $qid_c3: strip header=X-Rampart-Stream count=1 stream=bulk$" \
  "(c) rampart-milter stripped the forged header of $qid_c3" "$qid_c3"
lab_expect_line "$milter_log" "rampart-milter\[[0-9]+\]: $qid_c3: pin stream=bulk transport=out05$" \
  "(c) and pinned $qid_c3 to bulk/out05" "$qid_c3"
expect_egress c "$qid_c3" frank@contoso.example bulk out05 "$BULK_IP"
lab_expect_no_line "$maillog" "postfix/hcout1/smtp\[[0-9]+\]: $qid_c3: " \
  "(c) the forged header did not move $qid_c3 to hcout1"
took "(c)"

# --- (d) incident 9: From outside the stream's domains ------------------------------------------
session d 25 "$BULK_FROM" grace@contoso.example --header "From: News <news@example.net>"
lab_expect_reply "$LOG" . \
  '^550 5\.7\.1 rampart: From domain example\.net not allowed in stream bulk \(allowed: send\.example\.net\)$' \
  "(d) From the root domain in stream bulk: end of data gets 550 5.7.1 naming stream and domains"
lab_expect_eq "" "$QID" "(d) the message was not queued"
from_re="postfix/cleanup\[[0-9]+\]: ([0-9A-F]+): milter-reject: END-OF-MESSAGE from [^ ]*\[$(lab_esc "$CLIENT_IP")\]: 5\.7\.1 rampart: From domain example\.net not allowed"
lab_wait_for "$maillog" "$from_re" 10 || true
lab_expect_line "$maillog" "$from_re" "(d) Postfix logged the milter's 5.7.1 refusal" "milter-reject"
qid_d=$(sed -En "s#.*$from_re.*#\\1#p" "$maillog" | tail -n 1)
qid_d=${qid_d:-NONE}
lab_expect_line "$milter_log" \
  "rampart-milter\[[0-9]+\]: $qid_d: reject from=<news@example\.net> stream=bulk rule=from-domain$" \
  "(d) rampart-milter logged the reject for $qid_d with rule=from-domain" "$qid_d|from-domain"
lab_expect_no_line "$maillog" " $qid_d: to=<" "(d) Postfix never tried to deliver $qid_d"
took "(d)"

# --- everything together ------------------------------------------------------------------------
# Every delivery above was awaited, so the MXs have all they will get.
lab_expect_eq 0 "$(copies d@lab.example)" "(d) no MX received the refused message"
accepted=$(cat "$ms_log" "$google_log" "$webmail_log" | grep -c '^accepted ' || true)
lab_expect_eq 6 "$accepted" "the MXs accepted exactly the 6 expected deliveries"
strays=$(cat "$ms_log" "$google_log" "$webmail_log" | grep '^connect ' |
  grep -v -E " client=($(lab_esc "$BULK_IP")|$(lab_esc "$INST_IP")):" || true)
lab_expect_eq "" "$strays" "every connection to an MX came from a stream egress address"
lab_expect_eq "" "$(lab_postqueue -j 2>&1)" "the lab Postfix queue is empty (nothing held or deferred)"
lab_expect_no_line "$milter_log" 'rampart-milter\[[0-9]+\]: (error|warning) ' \
  "rampart-milter logged no error or warning"
lab_expect_no_line "$maillog" 'warning: .*milter' "Postfix logged no milter warning"
rc=0
lab_stop_milter rampart-milter 127.0.0.1 "$MILTER_PORT" || rc=$?
lab_expect_eq 0 "$rc" "rampart-milter exited 0 on SIGTERM"

lab_expect_line "$milter_log" 'rampart-milter\[[0-9]+\]: info milter\.stopped counters:' \
  "rampart-milter logged its counters when it stopped" "milter\."
took "the final checks"
t_mark=$t_start
took "everything"

lab_finish
