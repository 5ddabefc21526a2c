#!/bin/bash
# dkim_test.sh: OpenDKIM in the lab. (a) A message submitted from 127.0.0.1 with a From in the
# signing domain leaves signed: OpenDKIM logs "DKIM-Signature field added (s=lab, d=shop.example)"
# for its queue id, and the operator MX receives it with a DKIM-Signature (d=shop.example, s=lab)
# that verifies against the key published in the lab DNS. (b) Field-notes incident 5: once
# InternalHosts no longer covers the client (192.0.2.0/24 only), the next message leaves unsigned,
# and nothing in Postfix's log says so. (c) lab_pg_start gives a PostgreSQL URL psql can use.
set -euo pipefail

# shellcheck source=lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"

readonly MX_IP=198.51.100.10
readonly MX_HOST=contoso-example.mail.protection.outlook.com.test
readonly SENDER=news@shop.example
readonly RCPT=alice@contoso.example

lab_require unbound postfix postconf swaks opendkim opendkim-genkey opendkim-testmsg psql
lab_init dkim

# --- the lab: DNS, one operator MX that keeps what it receives, OpenDKIM, Postfix ----------------
lab_addr "$MX_IP"
lab_dns_zone example
lab_dns_zone test
lab_dns_mx contoso.example 10 "$MX_HOST"
lab_dns_a "$MX_HOST" "$MX_IP"
mail_dir=$LAB_DIR/mx-mail
mkdir -p "$mail_dir"
lab_mx_start "$MX_IP" 25 "" --hostname "$MX_HOST" --save-dir "$mail_dir"
lab_opendkim_start shop.example:lab  # publishes lab._domainkey.shop.example: before lab_dns_start
lab_dns_start
lab_postfix_start
maillog=$(lab_postfix_maillog)
odk_log=$(lab_opendkim_log)
mx_log=$(lab_mx_log "$MX_IP")

# send TAG: submits one message from $SENDER to $RCPT, waits until Postfix delivered it, and sets
# QID (Postfix's queue id) and EML (the file the MX saved).
send() {
  local tag=$1 mx_id
  QID=$(lab_submit "$SENDER" "$RCPT" --header "Subject: lab dkim $tag") ||
    lab_fatal "submission '$tag' failed"
  lab_wait_for "$maillog" "$QID: to=<$RCPT>, .*status=" 30 ||
    lab_fatal "no delivery attempt for $QID"
  mx_id=$(sed -n \
    "s/.* $QID: to=<$RCPT>, .*status=sent (250 2\.0\.0 Ok: queued as \(LAB[0-9A-F]*\))$/\1/p" \
    "$maillog" | tail -n 1)
  if [[ -z $mx_id ]]; then
    lab_fail "message '$tag' ($QID) was delivered to the MX"
    printf '      expected: %s: to=<%s>, ... status=sent (250 2.0.0 Ok: queued as LAB...)\n' \
      "$QID" "$RCPT"
    printf '      found:\n'
    grep -F "$QID" "$maillog" | sed 's/^/        /'
    lab_fatal "cannot go on without the delivered message"
  fi
  EML=$(sed -n "s/^accepted .* queue_id=$mx_id saved=\(.*\)$/\1/p" "$mx_log" | tail -n 1)
  [[ -n $EML && -f $EML ]] ||
    lab_fatal "the MX did not save $mx_id (accepted lines: $(grep '^accepted' "$mx_log"))"
}

# headers FILE: the header section of a saved message, one field per line (CRs removed, folded
# lines joined with one space).
headers() {
  tr -d '\r' <"$1" | awk '
    /^$/ { exit }
    /^[ \t]/ { sub(/^[ \t]+/, " "); field = field $0; next }
    { if (field != "") print field; field = $0 }
    END { if (field != "") print field }'
}

# tag FIELD NAME: the value of tag NAME in a DKIM-Signature field (RFC 6376 tag=value list).
tag() {
  printf '%s\n' "${1#*:}" | tr ';' '\n' | sed -n "s/^[[:space:]]*$2[[:space:]]*=[[:space:]]*//p" |
    sed 's/[[:space:]]*$//' | head -n 1
}

# --- (a) signed: a trusted client (127.0.0.1, in the default InternalHosts) ---------------------
send signed
qid1=$QID
eml1=$EML
# OpenDKIM logged before Postfix accepted the message; the receiver may still be writing it.
signed_re="opendkim\[[0-9]+\]: $qid1: DKIM-Signature field added \(s=lab, d=shop\.example\)$"
lab_wait_for "$odk_log" "$signed_re" 10 || true
lab_expect_line "$odk_log" "$signed_re" "OpenDKIM logged the signature for $qid1" "$qid1"
sigs=$(headers "$eml1" | grep -i '^DKIM-Signature:' || true)
lab_expect_eq 1 "$(grep -c . <<<"$sigs" || true)" "the MX received exactly one DKIM-Signature field"
lab_expect_eq shop.example "$(tag "$sigs" d)" "the signature's d= is the From domain"
lab_expect_eq lab "$(tag "$sigs" s)" "the signature's s= is the lab selector"
lab_expect_eq "$SENDER" "$(headers "$eml1" | sed -n 's/^From: *<\{0,1\}\([^>]*\)>\{0,1\}$/\1/Ip')" \
  "the signed message's From is $SENDER"
# The key in the lab DNS matches the signing key: the received message verifies there.
if out=$(lab_exec opendkim-testmsg <"$eml1" 2>&1); then
  lab_pass "the received signature verifies against lab._domainkey.shop.example in the lab DNS"
else
  lab_fail "the received signature verifies against lab._domainkey.shop.example in the lab DNS"
  printf '      expected: opendkim-testmsg exits 0 with no output\n      found: %s\n' \
    "${out:-(no output, non-zero exit)}"
fi
# ... and that check can fail: a copy with an altered Subject does not verify.
sed 's/^Subject: lab dkim signed/Subject: lab dkim altered/' "$eml1" >"$LAB_DIR/altered.eml"
if out=$(lab_exec opendkim-testmsg <"$LAB_DIR/altered.eml" 2>&1); then
  lab_fail "an altered copy of the signed message does not verify"
  printf '      expected: opendkim-testmsg fails\n      found: exit 0%s\n' "${out:+, output: $out}"
else
  lab_pass "an altered copy of the signed message does not verify (${out:-non-zero exit})"
fi

# --- (b) incident 5: InternalHosts no longer covers the client --------------------------------
lab_opendkim_internal_hosts 192.0.2.0/24
send unsigned
qid2=$QID
eml2=$EML
# OpenDKIM did see the message (so the checks below are not vacuous): with LogWhy it says why it
# only verified, and its end-of-message line for it is there, so no signature line can follow.
lab_wait_for "$odk_log" "opendkim\[[0-9]+\]: $qid2: no signature data$" 10 || true
lab_expect_line "$odk_log" "opendkim\[[0-9]+\]: $qid2: localhost \[127\.0\.0\.1\] not internal$" \
  "OpenDKIM handled $qid2 and found its client not internal" "$qid2"
lab_expect_line "$odk_log" "opendkim\[[0-9]+\]: $qid2: no signature data$" \
  "OpenDKIM finished $qid2 as a verifier (no signature data)" "$qid2"
lab_expect_no_line "$odk_log" "$qid2: DKIM-Signature field added" \
  "OpenDKIM logged no signature for $qid2"
lab_expect_eq "" "$(headers "$eml2" | grep -i '^DKIM-Signature:' || true)" \
  "the MX received $qid2 without a DKIM-Signature field"
lab_expect_line "$maillog" "$qid2: to=<$RCPT>, .*status=sent " \
  "and Postfix delivered it as usual (the incident was silent)" "$qid2"
lab_expect_no_line "$maillog" "$qid2: .*(milter|warning)" \
  "Postfix logged no milter trouble for $qid2"

# --- (c) the lab's PostgreSQL -----------------------------------------------------------------
lab_pg_start
url=$(lab_pg_url)
lab_expect_eq "postgresql:///rampart?host=$LAB_DIR/pg&user=postgres" "$url" \
  "lab_pg_url names the lab's socket directory"
if [[ -S $LAB_DIR/pg/.s.PGSQL.5432 ]]; then
  lab_pass "the PostgreSQL socket is in \$LAB_DIR/pg"
else
  lab_fail "the PostgreSQL socket is in \$LAB_DIR/pg"
  printf '      expected: a socket %s\n      found in that directory: %s\n' \
    "$LAB_DIR/pg/.s.PGSQL.5432" "$(find "$LAB_DIR/pg" -maxdepth 1 -printf '%f ')"
fi
got=$(psql "$url" -v ON_ERROR_STOP=1 -qAtc \
  "create table lab_check (id int primary key, note text);
   insert into lab_check values (1, 'dkim lab');
   select current_database() || ' ' || note from lab_check" 2>&1) || true
lab_expect_eq "rampart dkim lab" "$got" "psql creates, writes and reads a table through the URL"
pg_pid=$(pg_cluster_pid "$LAB_DIR/pg")
lab_expect_eq "$LAB_NS" "$(ip netns identify "${pg_pid:-0}" 2>/dev/null || true)" \
  "the postmaster runs inside the lab's namespace"

lab_finish
