#!/bin/bash
# milter_throughput.sh: what rampart-milter costs a real Postfix, measured end to end in the lab
# (tests/lab/lab.sh). Run on demand, never in CI's tests (root; with 10,000 messages about 7
# minutes on 2 CPUs, 3 with RAMPART_BENCH_QUICKACK=1):
#   tests/bench/milter_throughput.sh BUILD_DIR [MESSAGES=10000] [SESSIONS=10] [SIZE=10240]
#   tests/bench/run.sh BUILD_DIR --postfix [MESSAGES] [SESSIONS] [SIZE]
# BUILD_DIR holds rampart-milter, rampart, rampart-lab-mx and rampart-lab-syslog (an optimised
# build: `cmake --build --preset ci --target rampart_cli rampart-milter rampart-lab-mx
# rampart-lab-syslog`, then BUILD_DIR = build/ci).
#
# The workload, run in rounds in one lab and one private Postfix:
#   smtp-source -s SESSIONS -m MESSAGES -l SIZE -f bench@send.example.net -t rcpt@contoso.example
#   against the Postfix submission address 192.0.2.1:25, from the campaign client 192.0.2.25.
#   A) smtpd_milters = OpenDKIM only;
#   B) smtpd_milters = OpenDKIM, rampart-milter (rules: stream "bulk" on port 25 for 192.0.2.0/24,
#      from_domains = send.example.net, pinned to transport out05 / 203.0.113.94, plus a generated
#      10,000-domain exclusion list that the recipient domain does not hit).
# The milter sockets are the shipped ones (postfix-conf/main.cf.fragment): OpenDKIM on
# inet:127.0.0.1:8891, rampart-milter on a unix socket (its default; here $LAB_DIR/rampart/
# milter.sock, group postfix as _rampart is in production).
# Rounds go A B B A (RAMPART_BENCH_ORDER, e.g. "A B" for a quick look) so warm-up and drift fall
# on both sides alike; a short unmeasured warm-up comes first. Every round starts after a Postfix
# reload with an empty queue. The time of a round is the wall-clock time of smtp-source alone
# (messages accepted by smtpd, with the milters in the path: that is where milters cost);
# a configuration's throughput is its messages over its seconds summed over its rounds, and
# "rampart cost" is 1 - throughput(B) / throughput(A). It also prints the CPU time rampart-milter
# and OpenDKIM used per message.
#
# Decisions:
# - From and signing. smtp-source writes its own header: `From: <SENDER>` (its -f address), To,
#   Date, `Message-Id: <...@HOST>` (HOST its -M name) and Subject (-S); no Content-Type, so a
#   text/plain body of SIZE bytes. So -f bench@send.example.net gives an envelope and a header
#   From in the stream's from_domains, OpenDKIM's SigningTable (*@send.example.net) signs every
#   message because InternalHosts covers 192.0.2.0/24, and rampart-milter runs its whole decision
#   path (stream, exclusions at RCPT, From domain, DKIM scope, hygiene, pin): no check is turned
#   off and no message file (-F) is needed. A probe checks this at run time before measuring: one
#   smtp-source message through configuration B to a saving MX must arrive with that From, one
#   DKIM-Signature with d=send.example.net that verifies (opendkim-testmsg), no X-Rampart-Stream
#   field, from the egress address.
# - The client address. smtp-source cannot bind a source address, and a client on 127.0.0.1
#   would be "local" to Postfix and OpenDKIM. So Postfix gets a listener on 192.0.2.1:25 and
#   lab_route_src makes connections to 192.0.2.1 leave from 192.0.2.25, as from a campaign host.
# - Delivery, kept identical in A and B and out of the measurement: default_transport = out05
#   (bound to 203.0.113.94), so A's messages take the same transport that B's pin (FILTER out05:
#   via the shipped milter_header_checks) selects; contoso.example's MX is smtp-sink on
#   198.51.100.10, which accepts everything and stores nothing. in_flow_delay = 0: by default
#   smtpd pauses up to 1 s per message whenever arrivals outpace deliveries, which would time the
#   delivery side instead of smtpd. Deliveries still run during a round (as in production), and
#   the next round starts only once qmgr has removed every message of this one.
# - Checks that make the numbers worth something; any failure fails the run, no result printed:
#   smtp-source exits 0 (it aborts on any unexpected reply, e.g. a 4xx from a milter), every
#   message of every round is signed (OpenDKIM's "DKIM-Signature field added" lines), in B
#   rampart-milter logs exactly one "pin stream=bulk transport=out05" line per message and in A
#   none, rampart-milter logs no other decision (tempfail, reject, hold, warn...) and no warning
#   or error, Postfix logs no milter-reject, deferral, bounce or milter warning, and every
#   message was delivered (status=sent) and removed.
# - TCP milters and delayed ACKs. libmilter answers a message's end with two writes (the header
#   edit, then "accept"); on TCP, Nagle holds the second until Postfix ACKs the first, and Linux
#   delays that ACK by 40 ms. So a TCP milter that edits headers costs each message about 40 ms
#   of waiting, no CPU; OpenDKIM on inet:8891 stalls twice (about 90 ms a message, seen with
#   strace), which bounds the default run (10 sessions: about 105 msg/s) and is the same in A
#   and B. Unix sockets have no such stall. Two knobs show the other cases:
#     RAMPART_BENCH_MILTER_SOCKET=inet  rampart-milter on inet:127.0.0.1:8893 instead (it then
#                                       adds its own ~40 ms stall per message);
#     RAMPART_BENCH_QUICKACK=1          every local route of the namespace gets `quickack 1` (no
#                                       delayed ACKs, hence no stalls): the run is CPU-bound and
#                                       shows what the milters cost in CPU.
# Environment: RAMPART_BENCH_ORDER (rounds, default "A B B A"), RAMPART_BENCH_MILTER_SOCKET (unix,
# the default, or inet), RAMPART_BENCH_QUICKACK (0, the default, or 1), RAMPART_LAB_KEEP=1 (keep
# the lab directory with every log). A missing tool is a failure here, not a skip.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SRC=${RAMPART_SOURCE_DIR:-$(cd "$here/../.." && pwd)}

usage() {
  printf 'usage: %s BUILD_DIR [MESSAGES=10000] [SESSIONS=10] [SIZE=10240]\n' "$0" >&2
  exit 64
}
(($# >= 1 && $# <= 4)) || usage
[[ -d $1 ]] || { printf 'milter_throughput.sh: no build directory %s\n' "$1" >&2; exit 1; }
build=$(cd "$1" && pwd)
messages=${2:-10000}
sessions=${3:-10}
size=${4:-10240}
order=${RAMPART_BENCH_ORDER:-A B B A}
for n in "$messages" "$sessions" "$size"; do [[ $n =~ ^[1-9][0-9]*$ ]] || usage; done
read -r -a rounds <<<"$order"
((${#rounds[@]} > 0)) || usage
for r in "${rounds[@]}"; do
  [[ $r == A || $r == B ]] || { printf 'RAMPART_BENCH_ORDER: %s is not A or B\n' "$r" >&2; exit 64; }
done
milter_socket=${RAMPART_BENCH_MILTER_SOCKET:-unix}
quickack=${RAMPART_BENCH_QUICKACK:-0}
[[ $milter_socket == unix || $milter_socket == inet ]] ||
  { printf 'RAMPART_BENCH_MILTER_SOCKET: %s is not unix or inet\n' "$milter_socket" >&2; exit 64; }
[[ $quickack == 0 || $quickack == 1 ]] ||
  { printf 'RAMPART_BENCH_QUICKACK: %s is not 0 or 1\n' "$quickack" >&2; exit 64; }
[[ " ${rounds[*]} " == *" A "* && " ${rounds[*]} " == *" B "* ]] ||
  { printf 'RAMPART_BENCH_ORDER needs at least one A and one B round\n' >&2; exit 64; }

export RAMPART_REQUIRE_INTEGRATION=1  # on demand: a missing tool is an error, not a skip
export RAMPART_LAB_MX=$build/tests/lab/rampart-lab-mx
export RAMPART_LAB_SYSLOG=$build/tests/lab/rampart-lab-syslog
milter_bin=$build/milter/rampart-milter
cli_bin=$build/sidecar/rampart
for bin in "$milter_bin" "$cli_bin" "$RAMPART_LAB_MX" "$RAMPART_LAB_SYSLOG"; do
  [[ -x $bin ]] || {
    printf 'milter_throughput.sh: %s not built (cmake --build --preset ci --target rampart_cli rampart-milter rampart-lab-mx rampart-lab-syslog)\n' "$bin" >&2
    exit 1
  }
done

# shellcheck source=../lab/lab.sh
source "$here/../lab/lab.sh"

readonly CLIENT_IP=192.0.2.25 CLIENT_NET=192.0.2.0/24 MTA_IP=192.0.2.1
readonly EGRESS_IP=203.0.113.94 SINK_IP=198.51.100.10 PROBE_MX_IP=198.51.100.20
readonly SENDER_DOMAIN=send.example.net SENDER=bench@send.example.net
readonly RCPT=rcpt@contoso.example PROBE_RCPT=probe@fabrikam.example
readonly SINK_MX=mx.contoso.example PROBE_MX=mx.fabrikam.example
readonly CLIENT_HELO=campaigns.lab.example MILTER_PORT=8893 EXCLUDED_DOMAINS=10000

lab_require smtp-source smtp-sink unbound postfix postconf swaks opendkim opendkim-genkey \
  opendkim-testmsg awk timeout getconf setpriv python3
for f in milter_header_checks smtp_header_checks main.cf.fragment; do
  [[ -f $SRC/postfix-conf/$f ]] || lab_fatal "no $SRC/postfix-conf/$f (set RAMPART_SOURCE_DIR)"
done

lab_init bench
t_start=$EPOCHREALTIME

# --- helpers ------------------------------------------------------------------------------------

secs_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
count() { if [[ -f $2 ]]; then grep -Ec -- "$1" "$2" || true; else echo 0; fi; }

# CPU time (user + system, all threads) of PID so far, in clock ticks.
clk_tck=$(getconf CLK_TCK)
cpu_ticks() {
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || lab_fatal "process $1 is gone"
  stat=${stat##*) }
  awk '{ print $12 + $13 }' <<<"$stat"
}

# expect_count WHAT WANT GOT [LOG REGEX]: a fatal failure (with the matching lines) unless equal.
expect_count() {
  local what=$1 want=$2 got=$3 log=${4:-} regex=${5:-}
  if [[ $want == "$got" ]]; then
    lab_pass "$what: $got"
    return 0
  fi
  lab_fail "$what"
  printf '      expected: %s\n      found:    %s\n' "$want" "$got"
  if [[ -n $log && -n $regex && -f $log ]]; then
    printf '      (%s, lines matching %s)\n' "$log" "$regex"
    { grep -E -- "$regex" "$log" || true; } | tail -n 10 | sed 's/^/        /'
  fi
  lab_fatal "the benchmark is meaningless without this: no result"
}

# --- the lab ------------------------------------------------------------------------------------
for ip in "$CLIENT_IP" "$MTA_IP" "$EGRESS_IP" "$SINK_IP" "$PROBE_MX_IP"; do lab_addr "$ip"; done
lab_route_src "$MTA_IP" "$CLIENT_IP"
if [[ $quickack == 1 ]]; then
  while read -r route; do
    # shellcheck disable=SC2086  # the route's words, as ip printed them
    ip -n "$LAB_NS" route replace $route table local quickack 1 ||
      lab_fatal "cannot set quickack on '$route'"
  done < <(ip -n "$LAB_NS" route show table local type local)
fi
lab_dns_zone example
lab_dns_zone example.net
lab_dns_mx contoso.example 10 "$SINK_MX"
lab_dns_a "$SINK_MX" "$SINK_IP"
lab_dns_mx fabrikam.example 10 "$PROBE_MX"
lab_dns_a "$PROBE_MX" "$PROBE_MX_IP"

# The bulk receiver: smtp-sink, event-driven, stores nothing (it must drop root: -u).
lab_spawn sink smtp-sink -u nobody -h "$SINK_MX" "$SINK_IP:25" 256
lab_wait_port "$SINK_IP" 25 10 || lab_fatal "smtp-sink did not start (see $LAB_DIR/sink.log)"
# The probe's receiver keeps what it gets.
mkdir -p "$LAB_DIR/probe-mail"
lab_mx_start "$PROBE_MX_IP" 25 "" --hostname "$PROBE_MX" --save-dir "$LAB_DIR/probe-mail"

lab_opendkim_start "$SENDER_DOMAIN:lab"
lab_dns_start
lab_opendkim_internal_hosts 127.0.0.1 ::1 "$CLIENT_NET"

# rampart: the stream and a 10,000-domain exclusion list (reject, every stream) that neither
# recipient domain nor any parent of it is in (an exclusion covers subdomains).
rules=$LAB_DIR/bench_rules.toml
{
  cat <<EOF
# Generated by tests/bench/milter_throughput.sh.
[[stream]]
name = "bulk"
ports = [25]
clients = ["$CLIENT_NET"]
transport = "out05"
egress_ip = "$EGRESS_IP"
from_domains = ["$SENDER_DOMAIN"]
hygiene = "warn"

[[exclusion]]
category = "bench-excluded"
action = "reject"
streams = ["*"]
domains = [
EOF
  awk -v n="$EXCLUDED_DOMAINS" 'BEGIN {
    split("com net org de fr co.uk nl it es example", tld, " ")
    for (i = 1; i <= n; i++) printf "  \"mail%05d-%x.%s\",\n", i, (i * 2654435761) % 65536, tld[i % 10 + 1]
  }'
  printf ']\n'
} >"$rules"
excluded=$(grep -Ec '^  "[^"]+",$' "$rules" || true)
[[ $excluded == "$EXCLUDED_DOMAINS" ]] || lab_fatal "generated $excluded exclusion domains"
grep -Eq '"(contoso\.example|fabrikam\.example|example)",$' "$rules" &&
  lab_fatal "a test recipient domain is in the generated exclusion list"
if [[ $milter_socket == unix ]]; then
  mkdir -p "$LAB_DIR/rampart"
  milter_listen=unix:$LAB_DIR/rampart/milter.sock
  milter_postfix=$milter_listen
else
  milter_listen=inet:$MILTER_PORT@127.0.0.1
  milter_postfix=inet:127.0.0.1:$MILTER_PORT
fi
cat >"$LAB_DIR/rampart.toml" <<EOF
[store]
url = "sqlite://$LAB_DIR/rampart.db"
[milter]
listen = "$milter_listen"
opendkim_config = "$(lab_opendkim_conf)"
EOF
"$cli_bin" --config "$LAB_DIR/rampart.toml" db migrate >"$LAB_DIR/db-migrate.log" 2>&1 ||
  { cat "$LAB_DIR/db-migrate.log" >&2; lab_fatal "rampart db migrate failed"; }
"$cli_bin" --config "$LAB_DIR/rampart.toml" rules apply "$rules" >"$LAB_DIR/rules-apply.log" 2>&1 ||
  { cat "$LAB_DIR/rules-apply.log" >&2; lab_fatal "rampart rules apply failed"; }
"$milter_bin" --config "$LAB_DIR/rampart.toml" --check-config >"$LAB_DIR/check-config.log" 2>&1 ||
  { cat "$LAB_DIR/check-config.log" >&2; lab_fatal "rampart-milter --check-config failed"; }
# Group postfix (uid stays root): its unix socket is 0770, and Postfix's smtpd must reach it.
lab_spawn rampart-milter setpriv --regid=postfix --clear-groups -- \
  "$milter_bin" --config "$LAB_DIR/rampart.toml"
milter_log=$LAB_DIR/rampart-milter.log
lab_wait_for "$milter_log" "^listening on $(lab_esc "$milter_listen")\$" 10 ||
  lab_fatal "rampart-milter did not start"

# stop_milter: TERM, and since libmilter acts on it only when its listener wakes up, a connection
# that sends nothing every second; fails unless it exits 0 within 10 s.
stop_milter() {
  if [[ $milter_socket == inet ]]; then
    lab_stop_milter rampart-milter 127.0.0.1 "$MILTER_PORT"
    return
  fi
  local pid rc=0 deadline
  pid=$(lab_pid rampart-milter)
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(($(_lab_now_ms) + 10000))
  while _lab_alive "$pid" && (($(_lab_now_ms) < deadline)); do
    python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])' "${milter_listen#unix:}" 2>/dev/null || true
    sleep 1
  done
  _lab_alive "$pid" && kill -KILL "$pid"
  wait "$pid" 2>/dev/null || rc=$?
  return "$rc"
}

# Postfix: the stream transport, the submission listener, the shipped header checks and milter
# macros; A and B differ in smtpd_milters only.
lab_postfix_transport out05 "$EGRESS_IP" out05.send.example.net
lab_postfix_listener "$MTA_IP" 25
cp "$SRC/postfix-conf/milter_header_checks" "$SRC/postfix-conf/smtp_header_checks" "$LAB_DIR/"
chmod 0644 "$LAB_DIR/milter_header_checks" "$LAB_DIR/smtp_header_checks"
fragment_params=()
for p in milter_default_action milter_connect_macros milter_mail_macros; do
  line=$(grep -E "^${p}[[:space:]]*=" "$SRC/postfix-conf/main.cf.fragment" | tail -n 1) ||
    lab_fatal "postfix-conf/main.cf.fragment has no $p line"
  fragment_params+=("$line")
done
milters_a="inet:127.0.0.1:$LAB_OPENDKIM_PORT"
milters_b="inet:127.0.0.1:$LAB_OPENDKIM_PORT, $milter_postfix"
lab_postfix_conf \
  "mynetworks = 127.0.0.0/8 $CLIENT_NET" \
  "default_transport = out05" \
  "in_flow_delay = 0s" \
  "smtpd_milters = $milters_b" \
  "${fragment_params[@]}" \
  "milter_header_checks = regexp:$LAB_DIR/milter_header_checks" \
  "smtp_header_checks = regexp:$LAB_DIR/smtp_header_checks"
lab_postfix_start
lab_wait_port "$MTA_IP" 25 10 || lab_fatal "the lab Postfix is not listening on $MTA_IP:25"
maillog=$(lab_postfix_maillog)
odk_log=$(lab_opendkim_log)
milter_pid=$(lab_pid rampart-milter)
odk_pid=$(lab_opendkim_pid)
_lab_log "lab ready in $(secs_since "$t_start") s"

# Log lines counted per round.
re_removed='postfix/qmgr\[[0-9]+\]: [0-9A-F]+: removed$'
re_sent="postfix/out05/smtp\[[0-9]+\]: [0-9A-F]+: to=<[^>]*>, relay=[^ ]*\[($(lab_esc "$SINK_IP")|$(lab_esc "$PROBE_MX_IP"))\]:25, .*status=sent "
re_signed="opendkim\[[0-9]+\]: [0-9A-F]+: DKIM-Signature field added \(s=lab, d=$(lab_esc "$SENDER_DOMAIN")\)$"
re_pin='rampart-milter\[[0-9]+\]: [0-9A-Za-z]+: pin stream=bulk transport=out05$'
re_decision='rampart-milter\[[0-9]+\]: [0-9A-Za-z]+: [a-z]+ '
re_milter_bad='rampart-milter\[[0-9]+\]: (error|warning) '
re_pf_bad='milter-reject|status=(deferred|bounced)|warning: .*milter|: reject: '

# --- rounds -------------------------------------------------------------------------------------

# round CONFIG N TAG: reloads Postfix with CONFIG's milters, runs smtp-source for N messages to
# RCPT (waits for all to be delivered and removed) and checks every count. Sets ROUND_SECS (the
# time smtp-source took) and ROUND_MILTER_TICKS / ROUND_ODK_TICKS (CPU used during it).
round() {
  local config=$1 n=$2 tag=$3 rcpt=${4:-$RCPT} msize=${5:-$size} milters t0 t1
  local removed0 sent0 signed0 pins0 decisions0 m0 o0 out=$LAB_DIR/smtp-source-$tag.log
  milters=$milters_a
  [[ $config == B ]] && milters=$milters_b
  lab_postfix_conf "smtpd_milters = $milters"
  removed0=$(count "$re_removed" "$maillog")
  sent0=$(count "$re_sent" "$maillog")
  signed0=$(count "$re_signed" "$odk_log")
  pins0=$(count "$re_pin" "$milter_log")
  decisions0=$(count "$re_decision" "$milter_log")
  m0=$(cpu_ticks "$milter_pid")
  o0=$(cpu_ticks "$odk_pid")
  _lab_log "round $tag ($config): $n messages of $msize bytes, $sessions sessions"
  t0=$EPOCHREALTIME
  if ! lab_exec timeout --kill-after=10 $((120 + n / 10)) smtp-source -s "$sessions" -m "$n" \
    -l "$msize" -M "$CLIENT_HELO" -S "rampart bench $tag" -f "$SENDER" -t "$rcpt" \
    "$MTA_IP:25" >"$out" 2>&1; then
    t1=$EPOCHREALTIME
    sed 's/^/    /' "$out" >&2
    grep -E "$re_pf_bad" "$maillog" | tail -n 5 | sed 's/^/    /' >&2 || true
    lab_fatal "round $tag: smtp-source failed after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
  fi
  t1=$EPOCHREALTIME
  ROUND_MILTER_TICKS=$(($(cpu_ticks "$milter_pid") - m0))
  ROUND_ODK_TICKS=$(($(cpu_ticks "$odk_pid") - o0))
  ROUND_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  # Drained: every message delivered and removed (the queue is empty for the next round).
  lab_wait_count "$maillog" "$re_removed" $((removed0 + n)) $((60 + n / 20)) ||
    lab_fatal "round $tag: the queue did not drain ($(lab_postqueue -j 2>/dev/null | wc -l) left)"
  lab_wait_count "$odk_log" "$re_signed" $((signed0 + n)) 30 || true
  expect_count "round $tag: messages removed from the queue" "$n" \
    $(($(count "$re_removed" "$maillog") - removed0))
  expect_count "round $tag: messages delivered (status=sent)" "$n" \
    $(($(count "$re_sent" "$maillog") - sent0)) "$maillog" 'status='
  expect_count "round $tag: messages signed by OpenDKIM (d=$SENDER_DOMAIN)" "$n" \
    $(($(count "$re_signed" "$odk_log") - signed0)) "$odk_log" 'opendkim\['
  local want_pins=0
  [[ $config == B ]] && want_pins=$n
  expect_count "round $tag: rampart-milter pin decisions" "$want_pins" \
    $(($(count "$re_pin" "$milter_log") - pins0)) "$milter_log" "$re_decision"
  expect_count "round $tag: other rampart-milter decisions (tempfail, reject, warn...)" 0 \
    $(($(count "$re_decision" "$milter_log") - decisions0 - want_pins)) "$milter_log" "$re_decision"
  expect_count "rampart-milter warnings and errors so far" 0 "$(count "$re_milter_bad" "$milter_log")" \
    "$milter_log" "$re_milter_bad"
  expect_count "Postfix milter rejects, deferrals, bounces, milter warnings so far" 0 \
    "$(count "$re_pf_bad" "$maillog")" "$maillog" "$re_pf_bad"
  expect_count "round $tag: messages left in the queue" 0 "$(lab_postqueue -j 2>&1 | wc -l)"
}

# The probe: one smtp-source message through B to the saving MX, checked as it arrived.
round B 1 probe "$PROBE_RCPT" 512
eml=$(find "$LAB_DIR/probe-mail" -name '*.eml' | head -n 1)
[[ -n $eml ]] || lab_fatal "the probe MX saved no message"
hdr=$(awk '{ sub(/\r$/, "") } /^$/ { exit } /^[ \t]/ { sub(/^[ \t]+/, " "); cur = cur $0; next }
           { if (cur != "") print cur; cur = $0 } END { if (cur != "") print cur }' "$eml")
expect_count "probe: From header is <$SENDER>" 1 "$(grep -cxiF "From: <$SENDER>" <<<"$hdr" || true)"
expect_count "probe: DKIM-Signature fields" 1 "$(grep -ci '^DKIM-Signature:' <<<"$hdr" || true)"
expect_count "probe: DKIM-Signature with d=$SENDER_DOMAIN" 1 \
  "$(grep -i '^DKIM-Signature:' <<<"$hdr" | grep -Ec "[; ]d=$(lab_esc "$SENDER_DOMAIN");" || true)"
expect_count "probe: X-Rampart-Stream fields at the MX" 0 "$(grep -ci '^X-Rampart-Stream:' <<<"$hdr" || true)"
if ! odk_out=$(lab_exec opendkim-testmsg <"$eml" 2>&1); then
  lab_fatal "probe: the signature does not verify in the lab DNS: ${odk_out:-opendkim-testmsg failed}"
fi
lab_pass "probe: the signature verifies against the lab DNS"
expect_count "probe: delivered from the egress address $EGRESS_IP" 1 \
  "$(grep -Ec "^accepted .* client=$(lab_esc "$EGRESS_IP") " "$(lab_mx_log "$PROBE_MX_IP")" || true)"

# Warm-up (not measured): processes, caches, the queue directories.
warmup=$((messages / 20))
((warmup < 50)) && warmup=50
((warmup > 500)) && warmup=500
round B "$warmup" warmup-B
round A "$warmup" warmup-A

declare -A secs=([A]=0 [B]=0) msgs=([A]=0 [B]=0) mticks=([A]=0 [B]=0) oticks=([A]=0 [B]=0)
results=()
i=0
for config in "${rounds[@]}"; do
  i=$((i + 1))
  round "$config" "$messages" "$i$config"
  secs[$config]=$(awk -v a="${secs[$config]}" -v b="$ROUND_SECS" 'BEGIN { printf "%.3f", a + b }')
  msgs[$config]=$((msgs[$config] + messages))
  mticks[$config]=$((mticks[$config] + ROUND_MILTER_TICKS))
  oticks[$config]=$((oticks[$config] + ROUND_ODK_TICKS))
  results+=("$(awk -v c="$config" -v i="$i" -v n="$messages" -v s="$ROUND_SECS" 'BEGIN {
    printf "round %d %s: %d msgs in %.1f s = %.1f msg/s", i,
      (c == "A" ? "postfix+opendkim              " : "postfix+opendkim+rampart-milter"), n, s, n / s }')")
done

# --- result -------------------------------------------------------------------------------------
printf '\n'
printf '%s\n' "${results[@]}"
awk -v na="${msgs[A]}" -v sa="${secs[A]}" -v nb="${msgs[B]}" -v sb="${secs[B]}" \
  -v mt="${mticks[B]}" -v oa="${oticks[A]}" -v ob="${oticks[B]}" -v hz="$clk_tck" 'BEGIN {
  ra = na / sa; rb = nb / sb; cost = (1 - rb / ra) * 100
  printf "postfix+opendkim: %d msgs in %.1f s = %.1f msg/s; +rampart-milter: %d msgs in %.1f s = %.1f msg/s; rampart cost %.1f%% (target < 5%%: %s)\n",
    na, sa, ra, nb, sb, rb, cost, (cost < 5 ? "met" : "NOT met")
  printf "CPU per message: rampart-milter %.3f ms; opendkim %.3f ms (A) / %.3f ms (B)\n",
    mt * 1000 / hz / nb, oa * 1000 / hz / na, ob * 1000 / hz / nb
}'
printf 'setup: %s CPUs, %s-byte messages, %s sessions, rounds %s, %d excluded domains, 1 stream, OpenDKIM on inet:127.0.0.1:%s, rampart-milter on %s, delayed ACKs %s\n' \
  "$(nproc)" "$size" "$sessions" "${rounds[*]}" "$EXCLUDED_DOMAINS" "$LAB_OPENDKIM_PORT" \
  "$milter_postfix" "$([[ $quickack == 1 ]] && echo "off (quickack)" || echo on)"
printf 'reproduce: RAMPART_BENCH_ORDER="%s" RAMPART_BENCH_MILTER_SOCKET=%s RAMPART_BENCH_QUICKACK=%s %s %s %s %s %s\n' \
  "${rounds[*]}" "$milter_socket" "$quickack" "tests/bench/milter_throughput.sh" "$build" \
  "$messages" "$sessions" "$size"
rc=0
stop_milter || rc=$?
lab_expect_eq 0 "$rc" "rampart-milter exited 0 on SIGTERM"
_lab_log "total time $(secs_since "$t_start") s"
lab_finish
