#!/bin/bash
# dns_test.sh: the MX resolver policyd uses (rampart::dns::MxResolver, through rampart-dns-probe)
# against the lab's unbound: MX with two preferences, implicit MX from A or AAAA, null MX,
# NXDOMAIN, no mail host, CNAME, negative TTLs from the SOA (and the floor without one), the cache
# and its expiry and bound, coalesced lookups, temporary failures within the timeout (a server
# that drops queries, one that refuses, one that is not there), and lookups that time out not
# holding up the others.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"

lab_require unbound
lab_init dns
probe=${RAMPART_DNS_PROBE:-}
[[ -n $probe ]] || probe=$(command -v rampart-dns-probe 2>/dev/null) || true
[[ -n $probe && -x $probe ]] || lab_skip "rampart-dns-probe not found (set RAMPART_DNS_PROBE)"

# --- the zones ----------------------------------------------------------------------------------
# lab_dns_start checks the first A record with getent, whose getaddrinfo (AI_ADDRCONFIG) finds no
# IPv4 at all while the namespace has only loopback addresses: give it one.
lab_addr 192.0.2.1
lab_dns_zone example
lab_dns_mx two.example 20 mx2.two.example
lab_dns_mx two.example 10 mx1.two.example
lab_dns_a mx1.two.example 192.0.2.1
lab_dns_a aonly.example 192.0.2.10                 # implicit MX (RFC 5321 section 5.1)
lab_dns_a v6only.example 2001:db8::25              # implicit MX from AAAA only
lab_dns_null_mx nomail.example                     # RFC 7505
lab_dns_txt txtonly.example "v=spf1 -all"          # exists, but no MX and no address
lab_dns_rr alias.example 300 CNAME two.example.
lab_dns_rr ttl.example 42 MX 10 mx1.two.example.
lab_dns_rr attl.example 77 A 192.0.2.11
lab_dns_rr short.example 1 MX 10 mx1.two.example.
# A zone with an SOA: its negative answers carry min(SOA TTL, MINIMUM) = 120 s (RFC 2308).
lab_dns_zone neg.example
lab_dns_rr neg.example 600 SOA ns.neg.example. hostmaster.neg.example. 1 3600 600 86400 120
lab_dns_txt txt.neg.example "no mail here"
lab_dns_mx fresh1.example 10 mx1.two.example
lab_dns_mx fresh2.example 10 mx1.two.example
lab_dns_drop dead.example                          # unbound drops these queries: no answer
# libunbound answers RFC 6761 .test names itself unless told not to; the lab serves them.
lab_dns_zone test
lab_dns_mx shop.test 10 mx.shop.test
lab_dns_start

# run NAME ARGS...: the probe inside the namespace; output in $LAB_DIR/NAME.out, exit status in
# RC, wall time in MS.
run() {
  local name=$1 t0
  shift
  t0=$(_lab_now_ms)
  RC=0
  lab_exec "$probe" "$@" >"$LAB_DIR/$name.out" 2>"$LAB_DIR/$name.err" || RC=$?
  MS=$(($(_lab_now_ms) - t0))
}
# ms_of FILE REGEX: the ms= field of the first line matching REGEX.
ms_of() { grep -E -- "$2" "$1" | head -n 1 | sed -n 's/.* ms=\([0-9]*\).*/\1/p'; }

# --- 1. every kind of answer, then the same again from the cache ---------------------------------
run main --server 127.0.0.1:53 --timeout-ms 1000 \
  two.example TWO.Example. aonly.example v6only.example nomail.example nothing.example \
  txtonly.example alias.example ttl.example attl.example nothing.neg.example txt.neg.example \
  shop.test dead.example outside.org name.invalid bad..example
out=$LAB_DIR/main.out
lab_expect_eq 0 "$RC" "the probe ran (stderr: $(head -c 300 "$LAB_DIR/main.err"))"
lab_expect_line "$out" '^round=1 two\.example ok mx=10:mx1\.two\.example,20:mx2\.two\.example implicit=0 ttl=300 cached=0 ' \
  "MX with two preferences, sorted by preference, TTL of the MX rrset" "^round=1"
lab_expect_line "$out" '^round=1 TWO\.Example\. ok mx=10:mx1\.two\.example,20:mx2\.two\.example implicit=0 ttl=300 cached=0 ' \
  "case and a trailing dot do not matter" "^round=1"
lab_expect_line "$out" '^round=1 aonly\.example ok mx=0:aonly\.example implicit=1 ttl=300 cached=0 ms=[0-9]+ detail=implicit MX$' \
  "a domain with only an A record is its own implicit MX" "^round=1"
lab_expect_line "$out" '^round=1 v6only\.example ok mx=0:v6only\.example implicit=1 ttl=300 ' \
  "an AAAA record alone makes an implicit MX too" "^round=1"
lab_expect_line "$out" '^round=1 nomail\.example nullmx ttl=300 cached=0 ms=[0-9]+ detail=null MX$' \
  "null MX (RFC 7505) is its own status, cached for the record's TTL" "^round=1"
lab_expect_line "$out" '^round=1 nothing\.example nxdomain ttl=30 cached=0 ms=[0-9]+ detail=NXDOMAIN$' \
  "NXDOMAIN from a zone without an SOA is cached for the 30 s floor" "^round=1"
lab_expect_line "$out" '^round=1 txtonly\.example nomailhost ttl=30 cached=0 ms=[0-9]+ detail=no MX and no A/AAAA$' \
  "a name with neither MX nor address is no mail host" "^round=1"
lab_expect_line "$out" '^round=1 alias\.example ok mx=10:mx1\.two\.example,20:mx2\.two\.example implicit=0 ' \
  "a CNAME is followed to the MX records" "^round=1"
lab_expect_line "$out" '^round=1 ttl\.example ok mx=10:mx1\.two\.example implicit=0 ttl=42 ' \
  "a positive answer lives for its own TTL" "^round=1"
lab_expect_line "$out" '^round=1 attl\.example ok mx=0:attl\.example implicit=1 ttl=77 ' \
  "an implicit MX lives for its A record's TTL" "^round=1"
lab_expect_line "$out" '^round=1 nothing\.neg\.example nxdomain ttl=120 ' \
  "NXDOMAIN lives for the SOA's negative TTL" "^round=1"
lab_expect_line "$out" '^round=1 txt\.neg\.example nomailhost ttl=120 ' \
  "no data lives for the SOA's negative TTL" "^round=1"
lab_expect_line "$out" '^round=1 dead\.example temporary ttl=0 cached=0 ms=[0-9]+ detail=timed out after 1000 ms$' \
  "a server that never answers: temporary, timed out" "^round=1"
dead_ms=$(ms_of "$out" '^round=1 dead\.example ')
if [[ -n $dead_ms ]] && ((dead_ms >= 950 && dead_ms <= 1500)); then
  lab_pass "the timeout is kept: answered after ${dead_ms} ms (timeout 1000 ms)"
else
  lab_fail "the timeout is kept: answered after '${dead_ms}' ms, want 950-1500"
fi
lab_expect_line "$out" '^round=1 outside\.org temporary ttl=0 cached=0 ms=[0-9]+ detail=SERVFAIL$' \
  "a refusing server: temporary (libunbound reports SERVFAIL)" "^round=1"
lab_expect_line "$out" '^round=1 shop\.test ok mx=10:mx\.shop\.test implicit=0 ' \
  ".test domains are asked of the server, not answered by libunbound" "^round=1"
lab_expect_line "$out" '^round=1 name\.invalid nxdomain ' \
  ".invalid (RFC 6761) is NXDOMAIN" "^round=1"
lab_expect_line "$out" '^round=1 bad\.\.example nxdomain ttl=0 cached=0 ms=[0-9]+ detail=invalid domain name$' \
  "an invalid name is refused without a query" "^round=1"

for d in two.example TWO.Example. aonly.example v6only.example nomail.example nothing.example \
  txtonly.example alias.example ttl.example attl.example nothing.neg.example txt.neg.example \
  shop.test name.invalid; do
  lab_expect_line "$out" "^round=2 $(lab_esc "$d") [a-z]+ .*cached=1 " "round 2: $d comes from the cache" "^round=2"
done
lab_expect_line "$out" '^round=2 two\.example ok mx=10:mx1\.two\.example,20:mx2\.two\.example implicit=0 ttl=300 cached=1 ' \
  "the cached answer is the same answer" "^round=2"
lab_expect_line "$out" '^round=2 dead\.example temporary .*cached=0 .*detail=timed out after 1000 ms$' \
  "a timeout is not cached: asked again, timed out again" "^round=2"
lab_expect_line "$out" '^round=2 outside\.org temporary .*cached=0 ' "SERVFAIL is not cached" "^round=2"
# Round 1: 15 lookups (TWO.Example. shares two.example's); round 2: the two temporary ones again.
lab_expect_line "$out" '^stats hits=14 misses=17 timeouts=2 errors=2$' \
  "stats: coalesced lookups, cache hits, timeouts and errors are counted" "^stats"
if ((MS < 4000)); then
  lab_pass "both rounds took ${MS} ms: lookups run concurrently"
else
  lab_fail "both rounds took ${MS} ms, want < 4000 (two 1 s timeouts, run concurrently)"
fi

# --- 2. a cached answer expires with its TTL -----------------------------------------------------
run expiry --server 127.0.0.1 --pause-ms 1500 short.example
out=$LAB_DIR/expiry.out
lab_expect_line "$out" '^round=1 short\.example ok mx=10:mx1\.two\.example implicit=0 ttl=1 cached=0 ' \
  "a 1 s TTL is kept" "^round"
lab_expect_line "$out" '^round=2 short\.example ok .*cached=0 ' \
  "after 1.5 s the answer is no longer cached and is asked again" "^round"

# --- 3. the cache bound: with room for 2, the third answer evicts the oldest ----------------------
run bound --server 127.0.0.1 --cache-entries 2 two.example aonly.example nomail.example
out=$LAB_DIR/bound.out
lab_expect_eq 3 "$(grep -c '^round=1 .* cached=0 ' "$out")" "bounded cache: round 1 asks all three"
lab_expect_eq 2 "$(grep -c '^round=2 .* cached=1 ' "$out")" "bounded cache: two answers kept, one evicted"

# --- 4. no server at all: nothing listens on 127.0.0.9 ------------------------------------------
run nothing --server 127.0.0.9:53 --timeout-ms 800 two.example
out=$LAB_DIR/nothing.out
lab_expect_line "$out" '^round=1 two\.example temporary ttl=0 cached=0 ' \
  "a server that is not there: temporary" "^round"
gone_ms=$(ms_of "$out" '^round=1 two\.example ')
if [[ -n $gone_ms ]] && ((gone_ms <= 1300)); then
  lab_pass "and within the timeout (${gone_ms} ms, timeout 800 ms)"
else
  lab_fail "and within the timeout: '${gone_ms}' ms, want <= 1300"
fi

# --- 5. names that time out do not slow the server down for the others ---------------------------
# libunbound keeps retrying a query after ub_cancel, each holding a UDP socket, and opens only 16
# of them by default: a few dozen unanswered names used to hold names the server answers at once
# for ~1 s, or past their timeout (hence outgoing-range in resolver.cpp).
dead=()
for i in $(seq 1 32); do dead+=("n$i.dead.example"); done
run backoff --server 127.0.0.1 --timeout-ms 2000 --pause-ms 500 --later fresh1.example \
  --later fresh2.example "${dead[@]}"
out=$LAB_DIR/backoff.out
lab_expect_eq 32 "$(grep -Ec '^round=1 n[0-9]+\.dead\.example temporary .*detail=timed out after 2000 ms$' "$out")" \
  "32 names without an answer time out"
for d in fresh1.example fresh2.example; do
  lab_expect_line "$out" "^round=2 $(lab_esc "$d") ok mx=10:mx1\.two\.example " "$d answers after them" "^round=2"
  got_ms=$(ms_of "$out" "^round=2 $(lab_esc "$d") ")
  if [[ -n $got_ms ]] && ((got_ms < 500)); then
    lab_pass "$d is not held up by the timeouts (${got_ms} ms)"
  else
    lab_fail "$d is held up by the timeouts: '${got_ms}' ms, want < 500"
  fi
done

# --- 6. configuration errors ----------------------------------------------------------------------
run badserver --server 127.0.0.1:0 two.example
lab_expect_eq 1 "$RC" "a bad server address refuses to start"
lab_expect_line "$LAB_DIR/badserver.err" 'dns server "127\.0\.0\.1:0": bad port' "and says why"

lab_finish
