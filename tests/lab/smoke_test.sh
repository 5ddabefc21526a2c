#!/bin/bash
# smoke_test.sh: end-to-end check of the lab itself. A private Postfix delivers through a stream
# transport (out05, bound to 203.0.113.94) to a Microsoft-like and a Google-like operator MX
# found by real MX lookups in the lab DNS; then the egress address is removed to replay the
# reboot incident (bind failure -> deferred 4.4.0, never a silent egress from another address)
# and restored (the held message then leaves from the stream address).
set -euo pipefail

# shellcheck source=lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"

readonly EGRESS=203.0.113.94
readonly MS_MX_IP=198.51.100.10      # Microsoft-like operator
readonly GOOGLE_MX_IP=198.51.100.20  # Google-like operator
readonly SENDER_MX_IP=198.51.100.30  # the sender domain's own MX: receives the bounce
readonly MS_MX=contoso-example.mail.protection.outlook.com.test
readonly GOOGLE_MX=aspmx.l.google.com.test
readonly SENDER=news@shop.example

lab_require unbound postfix postconf swaks
lab_init smoke

# --- the miniature internet ---------------------------------------------------------------------
lab_addr "$EGRESS"
lab_addr "$MS_MX_IP"
lab_addr "$GOOGLE_MX_IP"
lab_addr "$SENDER_MX_IP"

lab_dns_zone example
lab_dns_zone test
lab_dns_mx contoso.example 10 "$MS_MX"
lab_dns_a "$MS_MX" "$MS_MX_IP"
lab_dns_mx fabrikam.example 1 "$GOOGLE_MX"
lab_dns_a "$GOOGLE_MX" "$GOOGLE_MX_IP"
lab_dns_mx shop.example 10 mx.shop.example
lab_dns_a mx.shop.example "$SENDER_MX_IP"
lab_dns_null_mx nomail.example
lab_dns_start

cat >"$LAB_DIR/google.script" <<EOF
# Google-like: a reputation reject for one recipient, 250 for everyone else.
bob@fabrikam.example 550-5.7.1 [$EGRESS] Our system has detected that this message is\n550-5.7.1 likely unsolicited mail. To reduce the amount of spam sent to Gmail,\n550 5.7.1 this message has been blocked. s7-20020a.lab - gsmtp
EOF
lab_mx_start "$MS_MX_IP" 25 "" --hostname "$MS_MX"
lab_mx_start "$GOOGLE_MX_IP" 25 "$LAB_DIR/google.script" --hostname "$GOOGLE_MX"
lab_mx_start "$SENDER_MX_IP" 25 "" --hostname mx.shop.example

lab_postfix_transport out05 "$EGRESS" out05.shop.example
lab_postfix_conf "default_transport = out05"
lab_postfix_start
maillog=$(lab_postfix_maillog)

# --- 1. deliveries from the stream address ------------------------------------------------------
qid1=$(lab_submit "$SENDER" alice@contoso.example) || lab_fatal "submission 1 failed"
qid2=$(lab_submit "$SENDER" bob@fabrikam.example,carol@fabrikam.example) ||
  lab_fatal "submission 2 failed"

lab_wait_for "$maillog" "$qid1: to=<alice@contoso.example>, .*status=" 30 ||
  lab_fatal "no delivery attempt for $qid1"
lab_wait_for "$maillog" "$qid2: to=<bob@fabrikam.example>, .*status=" 30 ||
  lab_fatal "no delivery attempt for $qid2 (bob)"
lab_wait_for "$maillog" "$qid2: to=<carol@fabrikam.example>, .*status=" 30 ||
  lab_fatal "no delivery attempt for $qid2 (carol)"
# The reject makes Postfix bounce to the sender; wait for that delivery too before the
# egress address goes away.
lab_wait_for "$maillog" "to=<$SENDER>, relay=mx\.shop\.example\[.*status=" 30 ||
  lab_fatal "no delivery attempt for the non-delivery notification"

lab_expect_line "$maillog" \
  "postfix/out05/smtp\[[0-9]+\]: $qid1: to=<alice@contoso\.example>, relay=${MS_MX//./\\.}\[${MS_MX_IP//./\\.}\]:25, .*dsn=2\.0\.0, status=sent " \
  "contoso.example: sent by out05 to the Microsoft-like MX found by the MX lookup" "$qid1"
lab_expect_line "$maillog" \
  "postfix/out05/smtp\[[0-9]+\]: $qid2: to=<bob@fabrikam\.example>, relay=${GOOGLE_MX//./\\.}\[${GOOGLE_MX_IP//./\\.}\]:25, .*dsn=5\.7\.1, status=bounced \(host ${GOOGLE_MX//./\\.}\[${GOOGLE_MX_IP//./\\.}\] said: 550-5\.7\.1 \[$EGRESS\] Our system has detected .* likely unsolicited mail\..* \(in reply to RCPT TO command\)\)" \
  "fabrikam.example/bob: multi-line 550-5.7.1 reject logged as bounced with its text" "$qid2"
lab_expect_line "$maillog" \
  "postfix/out05/smtp\[[0-9]+\]: $qid2: to=<carol@fabrikam\.example>, relay=${GOOGLE_MX//./\\.}\[${GOOGLE_MX_IP//./\\.}\]:25, .*status=sent " \
  "fabrikam.example/carol: accepted in the same session (per-recipient replies)" "$qid2"
lab_expect_line "$maillog" "postfix/bounce\[[0-9]+\]: $qid2: sender non-delivery notification" \
  "the reject produced a non-delivery notification" "$qid2"

ms_log=$(lab_mx_log "$MS_MX_IP")
google_log=$(lab_mx_log "$GOOGLE_MX_IP")
lab_expect_line "$ms_log" "^connect conn=[0-9]+ client=${EGRESS//./\\.}:[0-9]+ server=${MS_MX_IP//./\\.}:25$" \
  "the Microsoft-like MX saw the connection come from the stream address $EGRESS" "^connect"
lab_expect_line "$ms_log" "^accepted from=<$SENDER> rcpt=<alice@contoso\.example> size=[0-9]+ " \
  "the Microsoft-like MX accepted alice's message" "^accepted"
lab_expect_line "$google_log" "^connect conn=[0-9]+ client=${EGRESS//./\\.}:[0-9]+ " \
  "the Google-like MX saw the connection come from $EGRESS" "^connect"
lab_expect_line "$google_log" "^accepted from=<$SENDER> rcpt=<carol@fabrikam\.example> size=" \
  "the Google-like MX accepted carol only" "^accepted"
lab_expect_line "$(lab_mx_log "$SENDER_MX_IP")" "^accepted from=<> rcpt=<$SENDER> " \
  "the sender's MX received the bounce (null sender)" "^accepted"

# --- 2. the reboot incident: the stream address is gone ----------------------------------------
lab_del_addr "$EGRESS"
qid3=$(lab_submit "$SENDER" dave@contoso.example) || lab_fatal "submission 3 failed"
lab_wait_for "$maillog" "$qid3: to=<dave@contoso.example>, .*status=" 30 ||
  lab_fatal "no delivery attempt for $qid3"

lab_expect_line "$maillog" \
  "postfix/out05/smtp\[[0-9]+\]: warning: smtp_connect_addr: bind ${EGRESS//./\\.}: Cannot assign requested address" \
  "bind failure on the missing stream address is logged" "warning"
lab_expect_line "$maillog" \
  "postfix/out05/smtp\[[0-9]+\]: $qid3: to=<dave@contoso\.example>, relay=none, .*dsn=4\.4\.0, status=deferred \(server configuration error\)" \
  "bind-or-defer: the message is deferred with dsn=4.4.0" "$qid3"
lab_expect_no_line "$maillog" "$qid3: to=<dave@contoso\.example>, .*status=sent" \
  "the message did not leave from another address"
others=$(grep '^connect ' "$ms_log" "$google_log" | grep -v " client=${EGRESS}:" || true)
lab_expect_eq "" "$others" "the operator MXs never saw a connection from any other address"
lab_expect_no_line "$ms_log" "rcpt=<dave@contoso\.example>" "dave's message never reached the MX"
if lab_postqueue -j | grep -q "\"queue_id\": *\"$qid3\""; then
  lab_pass "the message stays queued"
else
  lab_fail "the message stays queued"
  printf '      expected %s in postqueue -j output, found:\n' "$qid3"
  lab_postqueue -j 2>&1 | sed 's/^/        /'
fi

# --- 3. the address comes back: the held message leaves from the stream address ----------------
lab_addr "$EGRESS"
lab_postqueue -f || lab_fatal "postqueue -f failed"
lab_wait_for "$maillog" "$qid3: to=<dave@contoso.example>, .*status=sent" 30 ||
  lab_fatal "$qid3 was not delivered after the address came back"
lab_expect_line "$maillog" \
  "postfix/out05/smtp\[[0-9]+\]: $qid3: to=<dave@contoso\.example>, relay=${MS_MX//./\\.}\[${MS_MX_IP//./\\.}\]:25, .*status=sent " \
  "after recovery the deferred message is delivered by out05" "$qid3"
lab_expect_line "$ms_log" "^accepted from=<$SENDER> rcpt=<dave@contoso\.example> .* client=${EGRESS//./\\.} " \
  "and it came from the stream address" "^accepted"

lab_finish
