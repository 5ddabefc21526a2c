#!/usr/bin/env bash
# The demo's second half (run by scripts/demo.sh as root): a private Postfix with OpenDKIM and
# rampart-milter on the embedded SQLite store, inside a network namespace built with the test lab
# (tests/lab/lab.sh), and a small campaign through it that replays field-notes incidents 5, 6 and 9
# and the stream pinning. Prints what each message got and where it left from. Usage:
#   demo-campaign.sh RAMPART_BIN MILTER_BIN LAB_MX_BIN LAB_SYSLOG_BIN
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
cli=$1 milter=$2
export RAMPART_LAB_MX=$3 RAMPART_LAB_SYSLOG=$4
# shellcheck source=../tests/lab/lab.sh
source "$src/tests/lab/lab.sh"

readonly CLIENT=192.0.2.25 TRUCKING_IP=203.0.113.94 HEALTH_IP=203.0.113.95
readonly M365_IP=198.51.100.10 GOOGLE_IP=198.51.100.20
readonly M365_MX=contoso-example.mail.protection.outlook.com.test GOOGLE_MX=aspmx.l.google.com.test

lab_require unbound postfix postconf swaks opendkim opendkim-genkey
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
lab_dns_a "$GOOGLE_MX" "$GOOGLE_IP"
lab_mx_start "$M365_IP" 25 "" --hostname "$M365_MX"
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
TOML
say "rules: the shipped lists plus the demo's site rules, into a fresh SQLite store"
"$cli" --config "$cfg" db migrate
"$cli" --config "$cfg" rules apply "$src"/packaging/rules/*.toml "$here/demo-rules.toml"
lab_spawn rampart-milter "$milter" --config "$cfg"
lab_wait_for "$LAB_DIR/rampart-milter.log" '^listening on' 10 || lab_fatal "rampart-milter did not start"

lab_postfix_transport out05 "$TRUCKING_IP" out05.send.example.net
lab_postfix_transport hcout1 "$HEALTH_IP" hcout1.send.example.org
lab_postfix_listener 127.0.0.1 2526
cp "$src/postfix-conf/milter_header_checks" "$src/postfix-conf/smtp_header_checks" "$LAB_DIR/"
chmod 0644 "$LAB_DIR/milter_header_checks" "$LAB_DIR/smtp_header_checks"
lab_postfix_conf "mynetworks = 127.0.0.0/8 192.0.2.0/24" \
  "smtpd_milters = inet:127.0.0.1:$LAB_OPENDKIM_PORT, inet:127.0.0.1:8893" \
  "milter_default_action = tempfail" \
  "milter_connect_macros = j {daemon_name} {daemon_addr} {daemon_port} {client_addr} v _" \
  "milter_mail_macros = i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}" \
  "milter_header_checks = regexp:$LAB_DIR/milter_header_checks" \
  "smtp_header_checks = regexp:$LAB_DIR/smtp_header_checks"
lab_postfix_start
maillog=$(lab_postfix_maillog)

say "incident 5: OpenDKIM's InternalHosts does not cover the campaign network 192.0.2.0/24"
send unsigned 25 news@send.example.net buyer@contoso.example
say "... fix InternalHosts; rampart-milter re-reads opendkim.conf by itself, the same message goes out signed"
lab_opendkim_internal_hosts 127.0.0.1 ::1 192.0.2.0/24
lab_wait_count "$LAB_DIR/rampart-milter.log" 'dkim\.loaded' 2 10 || lab_fatal "rampart-milter did not reload"
send signed 25 news@send.example.net buyer@contoso.example
say "incident 6: excluded recipients are refused at RCPT, the others of the same message go out"
send list 25 news@send.example.net "ops@contoso.example,someone@legal-hold.example,unsubscribed@fabrikam.example,cto@fabrikam.example"
say "incident 9: a From outside the stream's domains is refused"
send wrongfrom 25 news@example.net buyer@contoso.example
say "stream pinning: port 2526 is stream healthcare, leaving through hcout1 from $HEALTH_IP"
send institutional 2526 notices@send.example.org clinic@contoso.example

# Four messages leave: signed, the two clean recipients of the list, and the institutional one.
lab_wait_count "$maillog" 'status=sent' 4 30 || echo "(not every delivery finished in 30 s)"
say "Postfix delivery log (relay = the operator's MX found by MX lookup; the transport names the stream)"
grep -E 'status=(sent|deferred|bounced)' "$maillog" | sed -E 's/^.*(postfix\/[a-z0-9]+\/smtp)\[[0-9]+\]: /    \1 /; s/, delay=[^ ]*, delays=[^ ]*,/,/'
say "where each message came from, as the receiving MXs saw it"
grep -h '^connect ' "$(lab_mx_log "$M365_IP")" "$(lab_mx_log "$GOOGLE_IP")" | sed 's/^/    /'
say "rampart-milter's decisions (one line each, keyed by Postfix queue id, naming stream and rule)"
grep -E ': (reject|tempfail|hold|discard|warn|pin|strip) ' "$LAB_DIR/rampart-milter.log" | sed 's/^/    /'
lab_stop_milter rampart-milter 127.0.0.1 8893 >/dev/null || true
