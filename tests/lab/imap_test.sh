#!/bin/bash
# imap_test.sh: the IMAP client of `rampart dmarc fetch` (rampart::imap::Session, through
# rampart-imap-probe) against the lab's Dovecot: unseen messages listed, fetched byte for byte
# without setting \Seen, marked \Seen, moved into a folder it creates (UID MOVE, and UID COPY +
# EXPUNGE when the server does not announce MOVE), implicit TLS and STARTTLS, certificate and host
# name verification (without and with the CA file), insecure mode, a wrong password (config
# error), plain imap:// refused without STARTTLS unless tls = "none", a server stopped
# mid-session and a silent server (temporary errors, within the timeout), and a message over
# max_message skipped and left unseen.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"

lab_require dovecot openssl python3
lab_init imap
probe=${RAMPART_IMAP_PROBE:-}
[[ -n $probe ]] || probe=$(command -v rampart-imap-probe 2>/dev/null) || true
[[ -n $probe && -x $probe ]] || lab_skip "rampart-imap-probe not found (set RAMPART_IMAP_PROBE)"

# A password with a quote, a backslash, a space and a non-ASCII letter: AUTHENTICATE PLAIN must
# carry it intact.
password='s3cret "lab" \pw ü'
lab_dovecot_start dmarc "$password"
pwfile=$LAB_DIR/imap.pass
printf '%s\n' "$password" >"$pwfile"
chmod 0600 "$pwfile"
printf 'wrong\n' >"$LAB_DIR/wrong.pass"
ca=$(lab_dovecot_ca)
imaps=imaps://127.0.0.1:$LAB_DOVECOT_IMAPS_PORT
imap=imap://127.0.0.1:$LAB_DOVECOT_IMAP_PORT
mkdir -p "$LAB_DIR/out"

# run NAME ARGS...: the probe inside the namespace, as user dmarc with the CA unless ARGS say
# otherwise (later options win); output in $LAB_DIR/NAME.out, exit status in RC, time in MS.
run() {
  local name=$1 t0
  shift
  t0=$(_lab_now_ms)
  RC=0
  lab_exec "$probe" --user dmarc --password-file "$pwfile" --ca-file "$ca" --timeout-ms 5000 \
    --out "$LAB_DIR/out" "$@" >"$LAB_DIR/$name.out" 2>&1 || RC=$?
  MS=$(($(_lab_now_ms) - t0))
}
# message NAME MARKER [PAD_BYTES]: a small DMARC-report-like message with CRLF line ends (as IMAP
# sends it back), optionally padded to be large; prints its path.
message() {
  local file=$LAB_DIR/$1.eml marker=$2 pad=${3:-0}
  {
    printf 'From: noreply-dmarc-support@google.com\r\nTo: dmarc@shop.example\r\n'
    printf 'Subject: Report domain: shop.example Submitter: google.com Report-ID: %s\r\n' "$marker"
    printf 'Message-ID: <%s@google.com>\r\n\r\nmarker %s\r\n' "$marker" "$marker"
    if ((pad > 0)); then head -c "$pad" /dev/zero | tr '\0' 'x' | fold -w 76 | sed 's/$/\r/'; fi
  } >"$file"
  printf '%s\n' "$file"
}
flags_of() { lab_dovecot_flags dmarc "${2:-}" | awk -v n="$1" '$1 == n { print $2 }'; }

m1=$(lab_dovecot_deliver dmarc "$(message m1 report-one)")
m2=$(lab_dovecot_deliver dmarc "$(message m2 report-two)")

# --- implicit TLS, verified against the lab's CA: list and fetch without setting \Seen ----------
run list --url "$imaps" list fetch 1
lab_expect_eq 0 "$RC" "imaps with the CA file: open, list and fetch succeed"
lab_expect_line "$LAB_DIR/list.out" '^unseen uids=1,2$' "both delivered messages are unseen"
lab_expect_line "$LAB_DIR/list.out" '^fetched uid=1 size=[0-9]+ bytes=[0-9]+$' "uid 1 fetched"
if cmp -s "$LAB_DIR/m1.eml" "$LAB_DIR/out/1.eml"; then
  lab_pass "the fetched bytes are the delivered message"
else
  lab_fail "the fetched bytes differ from the delivered message"
fi
lab_expect_eq - "$(flags_of "$m1")" "fetching (BODY.PEEK[]) leaves the message unseen"

# --- STARTTLS on imap://, verified: mark seen ---------------------------------------------------
run seen --url "$imap" "done" 1 list
lab_expect_eq 0 "$RC" "imap:// with STARTTLS: open, done and list succeed"
lab_expect_line "$(lab_dovecot_log)" 'imap-login: Info: Login: user=<dmarc>, method=PLAIN, .*, TLS' \
  "logged in with AUTHENTICATE PLAIN inside TLS"
lab_expect_eq S "$(flags_of "$m1")" "done without move_to marks the message \\Seen"
lab_expect_eq - "$(flags_of "$m2")" "the other message stays unseen"
lab_expect_line "$LAB_DIR/seen.out" '^unseen uids=2$' "only uid 2 is unseen now"

# --- move into a folder that does not exist yet -------------------------------------------------
run move --url "$imaps" --move-to Processed fetch-all list
lab_expect_eq 0 "$RC" "fetch-all with move_to succeeds"
lab_expect_line "$LAB_DIR/move.out" '^done uid=2$' "uid 2 fetched and done"
lab_expect_line "$LAB_DIR/move.out" '^unseen uids=-$' "nothing unseen is left in INBOX"
lab_expect_eq "" "$(flags_of "$m2")" "the moved message has left INBOX"
moved=$({ grep -l 'marker report-two' "$(lab_dovecot_maildir dmarc Processed)"/cur/* 2>/dev/null ||
  true; } | wc -l)
lab_expect_eq 1 "$moved" "the folder Processed was created and holds the moved message"
lab_expect_eq "S" "$(lab_dovecot_flags dmarc Processed | awk '{ print $2 }')" \
  "the moved message is \\Seen in Processed"

# --- a server without MOVE: UID COPY, \Deleted, UID EXPUNGE -------------------------------------
m3=$(lab_dovecot_deliver dmarc "$(message m3 report-three)")
lab_dovecot_conf "imap_capability = IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE UIDPLUS"
run copy --url "$imaps" --move-to Archive.2024 fetch-all
lab_expect_eq 0 "$RC" "fetch-all with move_to on a server without MOVE succeeds"
lab_expect_no_line "$LAB_DIR/copy.out" 'caps=.*(^|,)MOVE(,|$)' "the server did not announce MOVE"
lab_expect_eq "" "$(flags_of "$m3")" "the copied message was expunged from INBOX"
copied=$({ grep -l 'marker report-three' "$(lab_dovecot_maildir dmarc Archive.2024)"/cur/* \
  2>/dev/null || true; } | wc -l)
lab_expect_eq 1 "$copied" "Archive.2024 was created and holds the copy"
lab_dovecot_conf_reset

# --- a server with no login we speak: Dovecot without the PLAIN mechanism announces LOGINDISABLED
lab_dovecot_conf "auth_mechanisms = login"
run login --url "$imaps" list
lab_expect_eq 78 "$RC" "no AUTH=PLAIN and LOGINDISABLED is a config error (78)"
lab_expect_line "$LAB_DIR/login.out" 'errc=config what=.*allows no login here' \
  "the error says why"
lab_dovecot_conf_reset

# --- certificate and host name verification -----------------------------------------------------
run noca --url "$imaps" --ca-file ""
lab_expect_eq 78 "$RC" "without the CA file the self-signed certificate is refused (config, 78)"
lab_expect_line "$LAB_DIR/noca.out" \
  "^error step=open errc=config what=imap 127\.0\.0\.1:$LAB_DOVECOT_IMAPS_PORT: tls certificate verification failed: " \
  "the error names the host and the failed verification"
run noca_starttls --url "$imap" --ca-file ""
lab_expect_line "$LAB_DIR/noca_starttls.out" 'errc=config what=.*tls certificate verification failed' \
  "STARTTLS verifies the certificate too"
run wrongname --url "imaps://localhost:$LAB_DOVECOT_IMAPS_PORT"
lab_expect_eq 78 "$RC" "a certificate for another name is refused (config, 78)"
lab_expect_line "$LAB_DIR/wrongname.out" 'errc=config what=.*the certificate does not name "localhost"' \
  "the error says the certificate does not name the host"
run insecure --url "$imaps" --ca-file "" --tls insecure list
lab_expect_eq 0 "$RC" "tls = insecure connects without checking the certificate"
run badca --url "$imaps" --ca-file "$LAB_DIR/no-such-ca.pem"
lab_expect_line "$LAB_DIR/badca.out" 'errc=config what=.*cannot load the CA certificates' \
  "a missing CA file is a config error"

# --- login failures -----------------------------------------------------------------------------
run wrongpw --url "$imaps" --password-file "$LAB_DIR/wrong.pass"
lab_expect_eq 78 "$RC" "a wrong password is a config error (78)"
lab_expect_line "$LAB_DIR/wrongpw.out" \
  'errc=config what=imap .*: logging in as "dmarc" failed: "\[AUTHENTICATIONFAILED\]' \
  "the error names the user and quotes the server"
run nopwfile --url "$imaps" --password-file "$LAB_DIR/missing.pass"
lab_expect_line "$LAB_DIR/nopwfile.out" 'errc=config what=.*cannot read the password file' \
  "an unreadable password file is a config error"
run nobox --url "$imaps" --mailbox NoSuchBox
lab_expect_line "$LAB_DIR/nobox.out" 'errc=config what=.*selecting "NoSuchBox" failed' \
  "a missing mailbox is a config error"
if grep -rqF -- "$password" "$LAB_DIR"/*.out "$(lab_dovecot_log)"; then
  lab_fail "the password appears in the probe output or the Dovecot log"
else
  lab_pass "the password appears in no output and no log"
fi

# --- a plain-text-only server -------------------------------------------------------------------
lab_dovecot_tls off
run plain --url "$imap"
lab_expect_eq 78 "$RC" "imap:// without STARTTLS is refused by default (config, 78)"
lab_expect_line "$LAB_DIR/plain.out" 'errc=config what=.*does not offer STARTTLS' \
  "the error says the server does not offer STARTTLS"
run plain_none --url "$imap" --tls none list
lab_expect_eq 0 "$RC" "tls = none allows the plain-text server explicitly"
lab_expect_line "$LAB_DIR/plain_none.out" '^unseen uids=-$' "and lists the mailbox"
lab_dovecot_tls on

# --- the server goes away mid-session -----------------------------------------------------------
m4=$(lab_dovecot_deliver dmarc "$(message m4 report-four)")
rm -f "$LAB_DIR/go"
lab_spawn midway "$probe" --user dmarc --password-file "$pwfile" --ca-file "$ca" \
  --timeout-ms 5000 --url "$imaps" list wait "$LAB_DIR/go" fetch 4
lab_wait_for "$LAB_DIR/midway.log" '^waiting ' 20 || lab_fatal "the probe did not get to wait"
lab_dovecot_stop
touch "$LAB_DIR/go"
rc=0
wait "$(lab_pid midway)" || rc=$?
lab_expect_eq 75 "$rc" "a server stopped mid-session is a temporary failure (75)"
lab_expect_line "$LAB_DIR/midway.log" '^error step=fetch errc=temporary what=imap 127\.0\.0\.1:[0-9]+: ' \
  "the error names the host and the step"
run refused --url "$imaps"
lab_expect_eq 75 "$RC" "no server listening is a temporary failure (75)"
lab_expect_line "$LAB_DIR/refused.out" 'errc=temporary what=.*connecting failed' \
  "the error says the connection failed"
lab_dovecot_restart

# --- a silent server: every step is bounded by the timeout --------------------------------------
lab_spawn silent python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 10993))
s.listen(8)
print("listening", flush=True)
conns = []
while True:
    c, _ = s.accept()
    conns.append(c)  # accepted, never answered
'
lab_wait_for "$LAB_DIR/silent.log" '^listening' 10 || lab_fatal "the silent server did not start"
run silent_tls --url imaps://127.0.0.1:10993 --timeout-ms 1000
lab_expect_eq 75 "$RC" "a silent server is a temporary failure (75)"
lab_expect_line "$LAB_DIR/silent_tls.out" 'errc=temporary what=.*no progress within 1s while in the TLS handshake' \
  "the error says what it waited for"
if ((MS < 4000)); then
  lab_pass "it gave up after about the timeout (${MS} ms)"
else
  lab_fail "it took ${MS} ms with a 1 s timeout"
fi
run silent_plain --url imap://127.0.0.1:10993 --timeout-ms 1000
lab_expect_line "$LAB_DIR/silent_plain.out" 'errc=temporary what=.*no progress within 1s while waiting for its reply' \
  "a silent greeting times out too"

# --- a message over max_message is skipped and stays unseen -------------------------------------
big=$(lab_dovecot_deliver dmarc "$(message big report-big 300000)")
run big --url "$imaps" --max-message 100000 fetch-all
lab_expect_eq 0 "$RC" "fetch-all with a small max_message succeeds"
lab_expect_line "$LAB_DIR/big.out" '^skipped uid=[0-9]+ size=3[0-9]{5}$' "the large message is skipped"
lab_expect_line "$LAB_DIR/big.out" '^fetched uid=4 ' "the small one is fetched"
lab_expect_eq - "$(flags_of "$big")" "the skipped message stays unseen"
lab_expect_eq S "$(flags_of "$m4")" "the fetched one is seen"
run big_ok --url "$imaps" --max-message 1000000 list
lab_expect_line "$LAB_DIR/big_ok.out" '^unseen uids=[0-9]+$' "the skipped message is listed again"

lab_finish
