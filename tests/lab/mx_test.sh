#!/bin/bash
# mx_test.sh: tests rampart-lab-mx on the host's loopback (ephemeral ports, no namespace, no
# root): per-recipient script replies (including a multi-line one), @MAIL/@DATA rules, 421
# closing the session, SIGHUP reload, dot-unstuffing, pipelining, and refusal of garbage.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"

lab_require swaks timeout
lab_init_local mx
mx_bin=$(lab_mx_bin) || exit $?

# start_mx NAME SCRIPT [ARGS...]: rampart-lab-mx on 127.0.0.1:0; sets PORT to the port it bound.
start_mx() {
  local name=$1 script=$2
  shift 2
  lab_spawn "$name" "$mx_bin" --listen 127.0.0.1:0 --script "$script" \
    --log "$LAB_DIR/$name.transcript" --hostname "$name.lab.test" "$@"
  _lab_wait "$LAB_DIR/$name.log" '^listening on ' 1 10 "$(lab_pid "$name")" ||
    lab_fatal "$name did not start"
  PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$LAB_DIR/$name.log")
  [[ -n $PORT ]] || lab_fatal "$name: no port in $(cat "$LAB_DIR/$name.log")"
}

# raw PORT BYTES: sends BYTES (printf format) on one connection and prints every reply until
# the server closes it; bounded by timeout(1).
raw() {
  # shellcheck disable=SC2016  # $1/$2 are expanded by the inner bash
  timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1; printf "$2" >&3; cat <&3' _ "$1" "$2" |
    tr -d '\r'
}

# --- per-recipient replies ----------------------------------------------------------------------
cat >"$LAB_DIR/ops.script" <<'EOF'
# an operator-like mix; first match wins
busy@contoso.example 451 4.7.500 Server busy. Please try again later from [203.0.113.94]. (S77714)
bob@fabrikam.example 550-5.7.1 [203.0.113.94] Our system has detected that this message is\n550-5.7.1 likely unsolicited mail. To reduce the amount of spam sent to Gmail,\n5.7.1 this message has been blocked.
gone@fabrikam.example 550 5.1.1 <gone@fabrikam.example>: Recipient address rejected: User unknown
@yahoo.example 421 4.7.0 [TSS04] Messages from 203.0.113.94 temporarily deferred due to unexpected volume or user complaints
@contoso.example 250 2.1.5 Recipient OK
EOF
start_mx ops "$LAB_DIR/ops.script"
ops_port=$PORT
out=$LAB_DIR/swaks-1.out
swaks --server "127.0.0.1:$ops_port" --pipeline --helo client.lab.example --from news@shop.example \
  --to alice@contoso.example,busy@contoso.example,bob@fabrikam.example,gone@fabrikam.example,carol@fabrikam.example \
  >"$out" 2>&1 || true
lab_expect_line "$out" '^<- +250-PIPELINING$' "EHLO advertises PIPELINING" "^<-"
lab_expect_line "$out" '^<- +250-SIZE [0-9]+$' "EHLO advertises SIZE" "^<-"
lab_expect_line "$out" '^<- +250 8BITMIME$' "EHLO advertises 8BITMIME" "^<-"
lab_expect_no_line "$out" 'STARTTLS' "EHLO does not advertise STARTTLS"
lab_expect_line "$out" '^<- +250 2\.1\.5 Recipient OK$' "@domain rule answers alice" "^<"
lab_expect_line "$out" '^<\*\* +451 4\.7\.500 Server busy\. Please try again later from \[203\.0\.113\.94\]\. \(S77714\)$' \
  "exact rule wins over the later @domain rule (Microsoft throttle)" "^<"
lab_expect_line "$out" '^<\*\* +550-5\.7\.1 \[203\.0\.113\.94\] Our system has detected that this message is$' \
  "multi-line reply, first line uses 550-" "^<"
lab_expect_line "$out" '^<\*\* +550-5\.7\.1 likely unsolicited mail\. To reduce the amount of spam sent to Gmail,$' \
  "multi-line reply, middle line uses 550-" "^<"
lab_expect_line "$out" '^<\*\* +550 5\.7\.1 this message has been blocked\.$' \
  "multi-line reply, last line uses '550 ' (code added to a line written without it)" "^<"
lab_expect_line "$out" '^<\*\* +550 5\.1\.1 <gone@fabrikam\.example>: Recipient address rejected: User unknown$' \
  "user unknown" "^<"
lab_expect_line "$out" '^<- +250 2\.1\.5 Ok$' "unmatched recipient gets the default 250 2.1.5 Ok" "^<"
lab_expect_line "$out" '^<- +250 2\.0\.0 Ok: queued as LAB' "message accepted" "^<"
lab_expect_line "$LAB_DIR/ops.log" \
  '^accepted from=<news@shop\.example> rcpt=<alice@contoso\.example>,<carol@fabrikam\.example> size=[0-9]+ conn=1 client=127\.0\.0\.1 ' \
  "accepted line lists exactly the accepted recipients" "^accepted"
lab_expect_line "$LAB_DIR/ops.transcript" '^conn=1 < RCPT TO:<bob@fabrikam\.example>$' "transcript logs commands"
lab_expect_line "$LAB_DIR/ops.transcript" '^conn=1 > 550-5\.7\.1 likely unsolicited' "transcript logs reply lines"

# A 421 closes the session, as a real server does.
out=$LAB_DIR/swaks-2.out
swaks --server "127.0.0.1:$ops_port" --from news@shop.example --to x@yahoo.example >"$out" 2>&1 || true
lab_expect_line "$out" '^<\*\* +421 4\.7\.0 \[TSS04\] Messages from 203\.0\.113\.94 temporarily deferred' \
  "Yahoo-like 421 at RCPT" "^<"
lab_expect_line "$LAB_DIR/ops.log" '^disconnect conn=2 reason=sent 421$' "the server closed the session after 421" "^disconnect"

# --- raw protocol: pipelining, dot-unstuffing, RSET, ordering ------------------------------------
got=$(raw "$ops_port" 'EHLO raw.lab.example\r\nMAIL FROM:<a@shop.example> SIZE=10\r\nRCPT TO:<b@fabrikam.example>\r\nRCPT TO:<gone@fabrikam.example>\r\nDATA\r\n..x\r\n..\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n' | grep -v '^250-')
want=$'220 ops.lab.test ESMTP rampart-lab-mx\n250 8BITMIME\n250 2.1.0 Ok\n250 2.1.5 Ok\n550 5.1.1 <gone@fabrikam.example>: Recipient address rejected: User unknown\n354 End data with <CR><LF>.<CR><LF>\n250 2.0.0 Ok: queued as LAB00030001\n250 2.0.0 Ok\n250 2.0.0 Ok\n221 2.0.0 Bye'
lab_expect_eq "$want" "$got" "a whole pipelined session in one write gets every reply in order"
# "..x" is ".x" after unstuffing, and ".." + "." are 2 lines: ".x\r\n" + ".\r\n" = 7 octets.
lab_expect_line "$LAB_DIR/ops.log" '^accepted from=<a@shop\.example> rcpt=<b@fabrikam\.example> size=7 conn=3 ' \
  "dot-unstuffing: size counts unstuffed lines" "^accepted"

got=$(raw "$ops_port" 'HELO x\r\nRCPT TO:<a@b.example>\r\nDATA\r\nMAIL FROM:<a@b.example>\r\nMAIL FROM:<a@b.example>\r\nDATA\r\nQUIT\r\n' | tail -n +2)
want=$'250 ops.lab.test\n503 5.5.1 Error: need MAIL command\n503 5.5.1 Error: need RCPT command\n250 2.1.0 Ok\n503 5.5.1 Error: nested MAIL command\n554 5.5.1 Error: no valid recipients\n221 2.0.0 Bye'
lab_expect_eq "$want" "$got" "sequence errors are answered, not fatal"

# --- garbage is refused and the session closed ----------------------------------------------------
long=$(printf 'x%.0s' {1..3000})
got=$(raw "$ops_port" "EHLO $long\r\nNOOP\r\n" | tail -n 1)
lab_expect_eq "500 5.5.2 Error: line too long" "$got" "an over-long command line ends the session"
got=$(raw "$ops_port" 'HELO x\r\nNO\0OP\r\nNOOP\r\n' | tail -n 1)
lab_expect_eq "500 5.5.2 Error: NUL character in command" "$got" "a NUL byte ends the session"
got=$(raw "$ops_port" 'FOO\r\nBAR\r\n\r\nBAZ\r\nQUX\r\nNOOP\r\n' | tail -n 2)
lab_expect_eq $'502 5.5.2 Error: command not recognized\n421 4.7.0 Error: too many errors' "$got" \
  "five protocol errors end the session"
got=$(raw "$ops_port" '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\nNOOP\r\n' | tail -n 1)
lab_expect_eq "500 5.5.2 Error: NUL character in command" "$got" "binary junk (a TLS ClientHello) ends the session"

# --- concurrency: two sessions open at once ------------------------------------------------------
exec {c1}<>"/dev/tcp/127.0.0.1/$ops_port" {c2}<>"/dev/tcp/127.0.0.1/$ops_port"
printf 'HELO one.lab.example\r\n' >&"$c1"
printf 'HELO two.lab.example\r\nQUIT\r\n' >&"$c2"
got2=$(timeout 10 cat <&"$c2" | tr -d '\r' | tail -n 2 | tr '\n' ' ')
printf 'QUIT\r\n' >&"$c1"
got1=$(timeout 10 cat <&"$c1" | tr -d '\r' | tail -n 2 | tr '\n' ' ')
exec {c1}>&- {c2}>&-
lab_expect_eq "250 ops.lab.test 221 2.0.0 Bye " "$got2" "second session served while the first is open"
lab_expect_eq "250 ops.lab.test 221 2.0.0 Bye " "$got1" "first session still served afterwards"

# --- @MAIL and @DATA rules, SIGHUP reload --------------------------------------------------------
cat >"$LAB_DIR/content.script" <<'EOF'
@DATA 550 5.7.1 Message rejected: classified as SPAM
EOF
start_mx content "$LAB_DIR/content.script"
content_port=$PORT
out=$LAB_DIR/swaks-3.out
swaks --server "127.0.0.1:$content_port" --from news@shop.example --to a@contoso.example >"$out" 2>&1 || true
lab_expect_line "$out" '^<\*\* +550 5\.7\.1 Message rejected: classified as SPAM$' "@DATA rule answers after the body" "^<"
lab_expect_no_line "$LAB_DIR/content.log" '^accepted' "a message refused at DATA is not logged as accepted"

cat >"$LAB_DIR/content.script" <<'EOF'
@MAIL 451 4.7.1 Sender throttled, try again later
EOF
lab_mx_reload_local() {  # lab_mx_reload works on lab_mx_start's names; this MX is local
  local n
  n=$(grep -c '^script loaded' "$LAB_DIR/content.log" || true)
  kill -HUP "$(lab_pid content)"
  lab_wait_count "$LAB_DIR/content.log" '^script loaded' $((n + 1)) 10 || lab_fatal "no reload"
}
lab_mx_reload_local
out=$LAB_DIR/swaks-4.out
swaks --server "127.0.0.1:$content_port" --from news@shop.example --to a@contoso.example >"$out" 2>&1 || true
lab_expect_line "$out" '^<\*\* +451 4\.7\.1 Sender throttled, try again later$' "SIGHUP reload: @MAIL rule now applies" "^<"

printf 'not-a-rule\n' >"$LAB_DIR/content.script"
kill -HUP "$(lab_pid content)"
lab_wait_for "$LAB_DIR/content.log" '^script reload failed, keeping old rules: .*:1: expected "PATTERN REPLY"' 10 ||
  lab_fatal "bad script not reported"
lab_pass "a bad script on reload is reported and the old rules kept"

# --- --save-dir: accepted messages are kept as received, one file each ---------------------------
mkdir -p "$LAB_DIR/saved"
printf '@contoso.example 550 5.1.1 no such user\n' >"$LAB_DIR/keep.script"
start_mx keep "$LAB_DIR/keep.script" --save-dir "$LAB_DIR/saved"
keep_port=$PORT
raw "$keep_port" 'EHLO raw.lab.example\r\nMAIL FROM:<a@shop.example>\r\nRCPT TO:<b@fabrikam.example>\r\nDATA\r\nSubject: one\r\n\r\n..dot\r\nbody\n.\r\nMAIL FROM:<a@shop.example>\r\nRCPT TO:<c@contoso.example>\r\nQUIT\r\n' >/dev/null
lab_expect_line "$LAB_DIR/keep.log" \
  "^accepted from=<a@shop\.example> rcpt=<b@fabrikam\.example> size=[0-9]+ conn=1 client=127\.0\.0\.1 queue_id=LAB00010001 saved=$LAB_DIR/saved/LAB00010001\.eml$" \
  "the accepted line names the saved file" "^accepted"
got=$(od -An -c "$LAB_DIR/saved/LAB00010001.eml" 2>&1 | tr -s ' \n' ' ')
want=$(printf 'Subject: one\r\n\r\n.dot\r\nbody\r\n' | od -An -c | tr -s ' \n' ' ')
lab_expect_eq "$want" "$got" "the saved message is the data as received: dot-unstuffed, CRLF line ends"
lab_expect_eq "LAB00010001.eml" "$(find "$LAB_DIR/saved" -mindepth 1 -printf '%f ' | sed 's/ $//')" \
  "one file for the one accepted message, no temporary file left"

# --- bad invocations exit 2 with a reason ---------------------------------------------------------
printf 'a@b.example hello\n' >"$LAB_DIR/bad.script"
if "$mx_bin" --listen 127.0.0.1:0 --script "$LAB_DIR/bad.script" >"$LAB_DIR/bad.out" 2>&1; then rc=0; else rc=$?; fi
lab_expect_eq 2 "$rc" "a reply without a code is refused at load"
lab_expect_line "$LAB_DIR/bad.out" 'bad\.script:1: reply must start with a three-digit code' "and the error names file and line"
if "$mx_bin" --listen nonsense >"$LAB_DIR/bad.out" 2>&1; then rc=0; else rc=$?; fi
lab_expect_eq 1 "$rc" "a bad --listen fails"
if "$mx_bin" --listen 127.0.0.1:0 --save-dir "$LAB_DIR/no-such-dir" >"$LAB_DIR/bad.out" 2>&1; then rc=0; else rc=$?; fi
lab_expect_eq 2 "$rc" "a --save-dir that is not a directory is refused"

# The server survived all of the above.
lab_expect_no_line "$LAB_DIR/ops.log" '^stopping' "the MX is still running"
if kill -0 "$(lab_pid ops)"; then lab_pass "the MX process is alive"; else lab_fail "the MX process died"; fi

lab_finish
