#!/usr/bin/env bash
# The demo's second half (run by scripts/demo.sh as root): a private Postfix with OpenDKIM and
# rampart-milter and rampart-policyd on the embedded SQLite store, inside a network namespace built
# with the test lab (tests/lab/lab.sh), and a small campaign through it that replays field-notes
# incidents 5, 6 and 9 and the stream pinning (milter), then 3 and 1 and a back-off (policyd),
# then `rampart classify` over the delivery log: per-operator outcomes, a 5.1.1 bounce turned into
# a suppression the milter enforces, and Microsoft's throttling into a back-off; then a DMARC
# aggregate report delivered by this Postfix into a Maildir, ingested and reported per source IP.
# Prints what each message got and where it left from. Usage:
#   demo-campaign.sh RAMPART_BIN MILTER_BIN POLICYD_BIN LAB_MX_BIN LAB_SYSLOG_BIN
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
cli=$1 milter=$2 policyd=$3
export RAMPART_LAB_MX=$4 RAMPART_LAB_SYSLOG=$5
# shellcheck source=../tests/lab/lab.sh
source "$src/tests/lab/lab.sh"

readonly CLIENT=192.0.2.25 TRUCKING_IP=203.0.113.94 HEALTH_IP=203.0.113.95
readonly M365_IP=198.51.100.10 GOOGLE_IP=198.51.100.20
readonly M365_MX=contoso-example.mail.protection.outlook.com.test GOOGLE_MX=aspmx.l.google.com.test

lab_require unbound postfix postconf swaks opendkim opendkim-genkey python3
lab_init demo

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
# send TAG PORT FROM TO[,TO..]: one SMTP session from the campaign host; prints the server's
# reply to each RCPT and to the end of data.
send() {
  local tag=$1 port=$2 from=$3 to=$4 log=$LAB_DIR/swaks-$1.log
  lab_swaks "$log" --server 127.0.0.1 --port "$port" --local-interface "$CLIENT" --helo app.example \
    --from "$from" --to "$to" --header "Subject: demo $tag" --header "Message-Id: <$tag@send.example.net>" \
    --body "Hello from the demo ($tag)." || true
  awk '/^ *-> RCPT TO:|^ *-> \.$/ { cmd = $0; sub(/^ *-> /, "", cmd); want = 1; next }
       want && /^<[-*~]/ { line = $0; sub(/^<[-*~]* */, "", line); printf "    %-34s %s\n", cmd, line; want = 0 }' "$log"
}

for ip in "$CLIENT" "$TRUCKING_IP" "$HEALTH_IP" "$M365_IP" "$GOOGLE_IP"; do lab_addr "$ip"; done
lab_dns_zone example
lab_dns_zone test
lab_dns_zone example.net
lab_dns_zone example.org
lab_dns_mx contoso.example 10 "$M365_MX"
lab_dns_a "$M365_MX" "$M365_IP"
lab_dns_mx fabrikam.example 10 "$GOOGLE_MX"
lab_dns_mx legal-hold.example 10 "$M365_MX"
lab_dns_a "$GOOGLE_MX" "$GOOGLE_IP"
# Microsoft answers some of the burst the way it does on a bad day (field notes: 451 4.7.500
# throttling, 550 5.1.10 for a mailbox that is gone); everyone else gets 250.
cat >"$LAB_DIR/m365.script" <<'SCRIPT'
lead05@contoso.example 550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient lead05@contoso.example not found by SMTP address lookup
lead10@contoso.example 451 4.7.500 Server busy. Please try again later from [203.0.113.94]. (S77719)
lead11@contoso.example 451 4.7.500 Server busy. Please try again later from [203.0.113.94]. (S77719)
lead12@contoso.example 451 4.7.500 Server busy. Please try again later from [203.0.113.94]. (S77719)
SCRIPT
lab_mx_start "$M365_IP" 25 "$LAB_DIR/m365.script" --hostname "$M365_MX"
lab_mx_start "$GOOGLE_IP" 25 "" --hostname "$GOOGLE_MX"
lab_opendkim_start send.example.net:demo send.example.org:demo
lab_dns_start

cfg=$LAB_DIR/rampart.toml
cat >"$cfg" <<TOML
[store]
url = "sqlite://$LAB_DIR/rampart.db"
[milter]
listen = "inet:8893@127.0.0.1"
opendkim_config = "$(lab_opendkim_conf)"
rules_poll_interval = "1s"
[policyd]
listen = ["inet:127.0.0.1:10040"]
dns_servers = ["127.0.0.1:53"]
rules_poll_interval = "1s"
TOML
say "rules: the shipped lists plus the demo's site rules, into a fresh SQLite store"
"$cli" --config "$cfg" db migrate
"$cli" --config "$cfg" rules apply "$src"/packaging/rules/{consumer-webmail,yahoo-family,dead-isp,classify}.toml \
  "$here/demo-rules.toml"
lab_spawn rampart-milter "$milter" --config "$cfg"
lab_wait_for "$LAB_DIR/rampart-milter.log" '^listening on' 10 || lab_fatal "rampart-milter did not start"
lab_spawn rampart-policyd "$policyd" --config "$cfg"
lab_wait_for "$LAB_DIR/rampart-policyd.log" '^listening on' 10 || lab_fatal "rampart-policyd did not start"

lab_postfix_transport out05 "$TRUCKING_IP" out05.send.example.net
lab_postfix_transport hcout1 "$HEALTH_IP" hcout1.send.example.org
lab_postfix_listener 127.0.0.1 2526
cp "$src/postfix-conf/milter_header_checks" "$src/postfix-conf/smtp_header_checks" "$LAB_DIR/"
chmod 0644 "$LAB_DIR/milter_header_checks" "$LAB_DIR/smtp_header_checks"
# The restrictions as postfix-conf/main.cf.fragment ships them, on the lab's TCP endpoint. A bulk
# client gets 4xx on purpose here, so smtpd does not tarpit it (smtpd_error_sleep_time).
lab_postfix_conf "mynetworks = 127.0.0.0/8 192.0.2.0/24" \
  "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination" \
  "smtpd_recipient_restrictions = check_policy_service { inet:127.0.0.1:10040, { default_action = DEFER_IF_PERMIT 4.3.5 rampart-policyd unavailable } }" \
  "smtpd_soft_error_limit = 1000" "smtpd_error_sleep_time = 0" \
  "smtpd_milters = inet:127.0.0.1:$LAB_OPENDKIM_PORT, inet:127.0.0.1:8893" \
  "milter_default_action = tempfail" \
  "milter_connect_macros = j {daemon_name} {daemon_addr} {daemon_port} {client_addr} v _" \
  "milter_mail_macros = i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}" \
  "milter_header_checks = regexp:$LAB_DIR/milter_header_checks" \
  "smtp_header_checks = regexp:$LAB_DIR/smtp_header_checks" \
  "virtual_mailbox_domains = reports.example" "virtual_mailbox_base = $LAB_DIR/mail" \
  "virtual_mailbox_maps = inline:{dmarc@reports.example=dmarc/}" \
  "virtual_uid_maps = static:$(id -u nobody)" "virtual_gid_maps = static:$(id -g nobody)"
# The DMARC report mailbox (a Maildir Postfix's virtual(8) delivers into).
mkdir -p "$LAB_DIR/mail"
chown nobody: "$LAB_DIR/mail"
lab_postfix_start
maillog=$(lab_postfix_maillog)

say "incident 5: OpenDKIM's InternalHosts does not cover the campaign network 192.0.2.0/24"
send unsigned 25 news@send.example.net buyer@contoso.example
say "... fix InternalHosts; rampart-milter re-reads opendkim.conf by itself, the same message goes out signed"
lab_opendkim_internal_hosts 127.0.0.1 ::1 192.0.2.0/24
lab_wait_count "$LAB_DIR/rampart-milter.log" 'dkim\.loaded' 2 10 || lab_fatal "rampart-milter did not reload"
send signed 25 news@send.example.net buyer@contoso.example
say "incident 6 (milter) and 3 (policyd): excluded recipients are refused at RCPT; fabrikam.example is
  hosted by Google (its MX), an operator stream trucking is gated from until warm-up day 30;
  the others of the same message go out"
send list 25 news@send.example.net "ops@contoso.example,someone@legal-hold.example,unsubscribed@fabrikam.example,cto@fabrikam.example"
say "incident 9: a From outside the stream's domains is refused"
send wrongfrom 25 news@example.net buyer@contoso.example
say "stream pinning: port 2526 is stream healthcare, leaving through hcout1 from $HEALTH_IP"
send institutional 2526 notices@send.example.org clinic@contoso.example

say "incident 1: a 60-recipient burst on stream trucking at warm-up day 0 (50 an hour; the
  recipients above took some: a recipient is charged when its RCPT is accepted)"
seq -f 'lead%02g@contoso.example' 1 60 >"$LAB_DIR/burst.rcpts"
lab_exec python3 "$src/tests/policyd/smtp_burst.py" --port 25 --source "$CLIENT" \
  --sender news@send.example.net --tag burst "$LAB_DIR/burst.rcpts" >"$LAB_DIR/burst.out" || true
printf '    accepted (250): %s   deferred (450): %s\n' \
  "$(awk '$1 == "RCPT" && $3 == 250' "$LAB_DIR/burst.out" | wc -l)" \
  "$(awk '$1 == "RCPT" && $3 == 450' "$LAB_DIR/burst.out" | wc -l)"
awk '$1 == "RCPT" && $3 == 450 { $1 = ""; print "    first deferral:" $0; exit }' "$LAB_DIR/burst.out"
say "today's budgets as rampart-policyd counts them"
"$cli" --config "$cfg" caps | sed 's/^/    /'
say "incident 8: Microsoft throttles stream healthcare; an operator pauses it (rampart backoff)"
"$cli" --config "$cfg" backoff set healthcare microsoft-365 --pause --until 2h --reason "451 4.7.500 server busy"
# rampart-policyd re-reads back-offs every rules_poll_interval and says when they changed.
lab_wait_for "$LAB_DIR/rampart-policyd.log" 'backoffs\.loaded active=1' 10 ||
  lab_fatal "rampart-policyd did not see the back-off"
send paused 2526 notices@send.example.org nurse@contoso.example >"$LAB_DIR/paused.out"
cat "$LAB_DIR/paused.out"
"$cli" --config "$cfg" backoff list | sed 's/^/    /'
"$cli" --config "$cfg" backoff clear healthcare microsoft-365
lab_wait_for "$LAB_DIR/rampart-policyd.log" 'backoffs\.loaded active=0' 10 ||
  lab_fatal "rampart-policyd did not see the back-off cleared"

# Messages that leave: signed, the clean contoso recipient of the list, the institutional one,
# and the burst's first message.
lab_wait_count "$maillog" 'status=sent' 4 30 || echo "(not every delivery finished in 30 s)"
say "Postfix delivery log (relay = the operator's MX found by MX lookup; the transport names the stream)"
grep -E 'status=(sent|deferred|bounced)' "$maillog" |
  sed -E 's/^.*(postfix\/([a-z0-9]+\/)?smtp)\[[0-9]+\]: /    \1 /; s/, delay=[^ ]*, delays=[^ ]*,/,/' |
  awk '{ n[$2]++; if (n[$2] == 1) { order[++k] = $2; first[$2] = $0 } }
       END { for (i = 1; i <= k; i++) { q = order[i]; print first[q];
             qq = q; sub(/:$/, "", qq)
             if (n[q] > 1) printf "      ... and %d more recipients of %s, the same way\n", n[q] - 1, qq } }'
say "where each message came from, as the receiving MXs saw it"
grep -h '^connect ' "$(lab_mx_log "$M365_IP")" "$(lab_mx_log "$GOOGLE_IP")" | sed 's/^/    /'
say "rampart-milter's decisions (one line each, keyed by Postfix queue id, naming stream and rule)"
grep -E ': (reject|tempfail|hold|discard|warn|pin|strip) ' "$LAB_DIR/rampart-milter.log" | sed 's/^/    /'
say "rampart-policyd's decisions other than DUNNO (first of each kind; one line per recipient in its log)"
grep -E ': (defer|hold|reject) rcpt=' "$LAB_DIR/rampart-policyd.log" |
  awk '{ k = $3 " " $6 " " $7; if (!(k in seen)) { seen[k] = 1; print "    " $0 } }'
echo "    ($(grep -cE ': defer rcpt=' "$LAB_DIR/rampart-policyd.log") defer lines in all)"

say "rampart classify: the delivery log into reputation per stream, egress IP and operator (the
  shipped reply table decides each outcome); the 5.1.10 bounce becomes a suppression and the
  throttling (3 of the stream's attempts to Microsoft today) a back-off"
lab_wait_for "$maillog" 'to=<lead05@contoso\.example>.*status=bounced' 30 || echo "    (lead05's bounce not logged in 30 s)"
lab_wait_count "$maillog" 'to=<lead1[0-2]@contoso\.example>.*status=deferred' 3 30 ||
  echo "    (not every 451 logged in 30 s)"
# The demo's few attempts are far under the shipped back-off minimum (50 a day): a site [feedback]
# table lowers it, as a small sender would.
printf '[feedback]\nbackoff_min_attempts = 5\nbackoff_percent = 5\n' >"$LAB_DIR/feedback.toml"
"$cli" --config "$cfg" rules apply "$src"/packaging/rules/{consumer-webmail,yahoo-family,dead-isp,classify}.toml \
  "$here/demo-rules.toml" "$LAB_DIR/feedback.toml" >/dev/null
"$cli" --config "$cfg" classify "$maillog" | sed 's/^/    /'
say "... rampart-milter reloads (the suppression bumped the rules version) and refuses lead05 at RCPT"
version=$("$cli" --config "$cfg" db status | sed -n 's/^rules_version: //p')
lab_wait_for "$LAB_DIR/rampart-milter.log" "rules\\.loaded version=$version " 10 ||
  echo "    (rampart-milter did not load rules version $version in 10 s)"
# (On stream healthcare: trucking's hour is used up, and rampart-policyd answers RCPT first.)
send suppressed 2526 notices@send.example.org lead05@contoso.example
say "... and the back-off rampart-policyd now applies"
"$cli" --config "$cfg" backoff list | sed 's/^/    /'
say "a second run over the same log counts nothing twice (it resumes from its cursor)"
"$cli" --config "$cfg" classify "$maillog" | tail -n 1 | sed 's/^/    /'

say "DMARC: Microsoft's aggregate report about yesterday arrives at dmarc@reports.example (a gzip
  attachment, delivered by this Postfix into a Maildir); rampart dmarc ingest stores it"
python3 - "$LAB_DIR/report.eml" <<'PY'
import gzip, sys, time
from email.message import EmailMessage
day = int(time.time()) // 86400 * 86400 - 86400
def row(ip, n, dkim, spf):
    return f"""<record><row><source_ip>{ip}</source_ip><count>{n}</count><policy_evaluated>
<disposition>none</disposition><dkim>{dkim}</dkim><spf>{spf}</spf></policy_evaluated></row>
<identifiers><header_from>send.example.net</header_from></identifiers>
<auth_results><dkim><domain>send.example.net</domain><selector>demo</selector><result>{dkim}</result></dkim>
<spf><domain>send.example.net</domain><result>{spf}</result></spf></auth_results></record>"""
xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<feedback><report_metadata><org_name>Enterprise Outlook</org_name><email>dmarcreport@microsoft.test</email>
<report_id>demo-{day}</report_id><date_range><begin>{day}</begin><end>{day + 86399}</end></date_range></report_metadata>
<policy_published><domain>send.example.net</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct></policy_published>
{row("203.0.113.94", 180, "pass", "pass")}
{row("203.0.113.95", 18, "pass", "fail")}
{row("203.0.113.95", 2, "fail", "fail")}
{row("198.51.100.77", 31, "fail", "fail")}
</feedback>"""
m = EmailMessage()
m["From"] = "dmarcreport@microsoft.test"
m["To"] = "dmarc@reports.example"
m["Subject"] = f"Report Domain: send.example.net Submitter: enterprise.protection.outlook.com Report-ID: demo-{day}"
m.set_content("This is a DMARC aggregate report.")
m.add_attachment(gzip.compress(xml.encode()), maintype="application", subtype="gzip",
                 filename=f"enterprise.protection.outlook.com!send.example.net!{day}!{day + 86399}.xml.gz")
open(sys.argv[1], "wb").write(bytes(m))
PY
lab_exec sendmail -C "$(lab_postfix_etc)" -f dmarcreport@microsoft.test dmarc@reports.example <"$LAB_DIR/report.eml"
lab_wait_for "$maillog" 'to=<dmarc@reports\.example>.*relay=virtual.*status=sent' 30 ||
  echo "    (the report was not delivered in 30 s)"
"$cli" --config "$cfg" dmarc ingest "$LAB_DIR/mail/dmarc" | sed 's/^/    /'
say "rampart report dmarc: per source IP; a stream's egress IP under 95% DMARC pass and an outside
  IP sending failing mail as send.example.net are flagged"
"$cli" --config "$cfg" report dmarc | sed 's/^/    /' || true
say "... and the same report again is a duplicate: nothing changes"
"$cli" --config "$cfg" dmarc ingest "$LAB_DIR/mail/dmarc" | tail -n 1 | sed 's/^/    /'

lab_stop rampart-policyd
lab_stop_milter rampart-milter 127.0.0.1 8893 >/dev/null || true
