#!/usr/bin/env bash
# End-to-end test of `rampart classify` against one store engine (RAMPART_TEST_STORE=sqlite|pgsql;
# pgsql runs under tests/lab/with-postgres.sh). Logs written here (documentation addresses,
# example domains, today's date so loop-closing results are still in force): exact aggregates in
# the JSON form, --dry-run writing nothing, the loop closed (5.1.1 -> address suppression, dead
# tenant replies -> domain suppression, [TSS04] -> pause, throttled share -> back-off), anomalies,
# cursors (re-run, appended lines, gzip copy, stdin), a kill -9 mid-run, and bad input.
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"
need=(python3 gzip)
[ "${RAMPART_TEST_STORE:-sqlite}" = sqlite ] && need+=(sqlite3)
cli_init "classify cli" "${need[@]}"
cli_store
src=${RAMPART_SOURCE_DIR:?RAMPART_SOURCE_DIR must point at the source tree}

# val SQL: one value from the store.
val() {
  if [ "$engine" = pgsql ]; then psql -At "$url" -c "$1"; else sqlite3 "$work/rampart.db" "$1"; fi
}
# json_lines FILTER: evaluates a python expression over `rows` (aggregate objects) and `summary`.
pyq() {
  python3 -c '
import json, sys
rows, summary = [], None
for line in open(sys.argv[1]):
    o = json.loads(line)
    if "summary" in o: summary = o["summary"]
    else: rows.append(o)
def n(**kw):
    return sum(r["count"] for r in rows if all(r[k] == v for k, v in kw.items()))
print(eval(sys.argv[2]))' "$work/out" "$1"
}
check() {  # check LABEL EXPR WANT
  local got
  got=$(pyq "$2")
  [ "$got" = "$3" ] || fail "$1: $2 = $got, want $3"
}

cat >"$work/site.toml" <<'TOML'
[[stream]]
name = "bulk"
ports = [25]
transport = "out05"
egress_ip = "203.0.113.94"

[[exclusion]]
category = "bounces"
streams = ["*"]

[feedback]
domain_replies = 2
backoff_percent = 50
backoff_min_attempts = 4
TOML

today=$(date -u +%Y-%m-%d)
yesterday=$(date -u -d yesterday +%Y-%m-%d)
before=$(date -u -d '2 days ago' +%Y-%m-%d)
ms='contoso-example.mail.protection.outlook.com[198.51.100.10]:25'
g='aspmx.l.google.com[198.51.100.20]:25'
y='mta5.am0.yahoodns.net[198.51.100.30]:25'
n=0
# dl DAY RCPT RELAY DSN STATUS TEXT: one out05 delivery line, seconds counting up.
dl() {
  n=$((n + 1))
  printf '%sT00:00:%02d.000000+00:00 mta1 postfix/out05/smtp[101]: 4F1A2B3C%02d: to=<%s>, relay=%s, delay=1.2, delays=0.1/0/0.5/0.6, dsn=%s, status=%s (%s)\n' \
    "$1" "$n" "$n" "$2" "$3" "$4" "$5" "$6"
}
busy='host contoso-example.mail.protection.outlook.com[198.51.100.10] said: 451 4.7.500 Server busy. Please try again later from [203.0.113.94]. (S77719) (in reply to RCPT TO command)'
tenant='host contoso-example.mail.protection.outlook.com[198.51.100.10] said: 451 4.4.4 Mail received as unauthenticated, incoming to a recipient domain configured in a hosted tenant which has no mail-enabled subscriptions. (in reply to RCPT TO command)'
tss='host mta5.am0.yahoodns.net[198.51.100.30] said: 421 4.7.0 [TSS04] Messages from 203.0.113.94 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes (in reply to MAIL FROM command)'
nouser='host aspmx.l.google.com[198.51.100.20] said: 550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking the recipient'"'"'s email address for typos or 550 5.1.1 https://support.google.com/mail/?p=NoSuchUser - gsmtp (in reply to RCPT TO command)'
{
  dl "$before" ana@contoso.example "$ms" 2.0.0 sent '250 2.6.0 Queued mail for delivery'
  dl "$today" ana@contoso.example "$ms" 2.0.0 sent '250 2.6.0 Queued mail for delivery'
  dl "$today" bo@contoso.example "$ms" 4.7.500 deferred "$busy"
  dl "$today" cy@contoso.example "$ms" 4.7.500 deferred "$busy"
  dl "$today" dee@contoso.example "$ms" 4.7.500 deferred "$busy"
  dl "$today" a@dead-tenant.example "$ms" 4.4.4 deferred "$tenant"
  dl "$today" b@dead-tenant.example "$ms" 4.4.4 deferred "$tenant"
  dl "$today" Gone@Fabrikam.example "$g" 5.1.1 bounced "$nouser"
  dl "$today" eve@fabrikam.example "$g" 2.0.0 sent '250 2.0.0 OK 1781006400 - gsmtp'
  dl "$today" fay@yahoo.example "$y" 4.7.0 deferred "$tss"
  # Not deliveries: a content-filter hop and a local delivery.
  printf '%sT00:00:40.0+00:00 mta1 postfix/smtp[102]: 4F1A2B3C40: to=<ana@contoso.example>, relay=127.0.0.1[127.0.0.1]:10024, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4F1A2B3C41)\n' "$today"
  printf '%sT00:00:41.0+00:00 mta1 postfix/local[103]: 4F1A2B3C42: to=<root@mta1.example.net>, relay=local, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (delivered to mailbox)\n' "$today"
  printf '%sT00:00:42.0+00:00 mta1 postfix/out05/smtp[103]: warning: smtp_connect_addr: bind 203.0.113.94: Cannot assign requested address\n' "$today"
  printf 'binary \001\377\376 garbage without a stamp\n'
} >"$work/mail.log"

# --- usage --------------------------------------------------------------------------------------
expect 0 "--help lists classify" -- r --help && contains "--help" "$out" "classify [--dry-run]"
expect 0 "classify --help" -- r classify --help && contains "classify --help" "$out" "--follow"
expect 64 "no file" -- r classify && contains "no file" "$err" "no log given"
expect 64 "bad format" -- r classify --format xml "$work/mail.log" && contains "bad format" "$err" "table or json"
expect 64 "--from-start alone" -- r classify --from-start "$work/mail.log" && contains "--from-start" "$err" "only with --dry-run"
expect 64 "follow two" -- r classify --follow "$work/mail.log" "$work/mail.log" && contains "follow two" "$err" "exactly one FILE"
expect 0 "db migrate" -- r db migrate
expect 0 "rules apply" -- r rules apply "$src/packaging/rules/classify.toml" "$src/packaging/rules/operators.toml" "$work/site.toml"

# --- dry run: the numbers, nothing written --------------------------------------------------------
if expect 0 "dry run" -- r classify --dry-run --format json "$work/mail.log"; then
  check "dry: accepted microsoft" 'n(operator="microsoft-365", outcome="accepted")' 2
  check "dry: throttled microsoft" 'n(operator="microsoft-365", outcome="throttled", status="4.7.500", stream="bulk", egress_ip="203.0.113.94")' 3
  check "dry: dead tenant" 'n(outcome="reject_recipient", category="bad-domain", status="4.4.4")' 2
  check "dry: 5.1.1" 'n(operator="google", outcome="reject_recipient", status="5.1.1")' 1
  check "dry: tss04" 'n(operator="yahoo", outcome="throttled")' 1
  check "dry: days" 'sorted({r["day"] for r in rows}) == sorted({"'"$before"'", "'"$today"'"})' True
  check "dry: keys" 'all(list(r) == ["day","stream","egress_ip","operator","outcome","category","status","count","sample"] for r in rows)' True
  check "dry: summary" '(summary["lines"], summary["deliveries"], summary["unparsed"], summary["filter_hops"], summary["local_hops"], summary["dry_run"])' "(14, 10, 1, 1, 1, True)"
  check "dry: bind anomaly" '[a["subject"] for a in summary["anomaly_list"] if a["kind"] == "bind-failure"]' "['203.0.113.94']"
  check "dry: would suppress" 'sorted(s["value"] for s in summary["suppressions"])' "['dead-tenant.example', 'gone@fabrikam.example']"
  check "dry: would back off" 'sorted((b["operator"], b["factor"]) for b in summary["backoffs"])' "[('microsoft-365', 0.5), ('yahoo', 0)]"
fi
[ "$(val 'SELECT COUNT(*) FROM reputation')" = 0 ] || fail "dry run wrote aggregates"
[ "$(val 'SELECT COUNT(*) FROM classify_cursors')" = 0 ] || fail "dry run wrote a cursor"
[ "$(val "SELECT COUNT(*) FROM exclusion_entries WHERE source = 'bounce'")" = 0 ] || fail "dry run suppressed"

# --- the real run: stored, the loop closed --------------------------------------------------------
version_before=$(val 'SELECT version FROM rules_version')
if expect 0 "classify" -- r classify --format json "$work/mail.log"; then
  check "run: deliveries" 'summary["deliveries"]' 10
  check "run: zero-delivery day" '[(a["stream"], a["day"]) for a in summary["anomaly_list"] if a["kind"] == "zero-deliveries"]' "[('bulk', '$yesterday')]"
fi
[ "$(val 'SELECT SUM(count) FROM reputation')" = 10 ] || fail "stored aggregates: $(val 'SELECT SUM(count) FROM reputation'), want 10"
[ "$(val "SELECT value FROM exclusion_entries WHERE source = 'bounce' AND kind = 'address'")" = gone@fabrikam.example ] ||
  fail "5.1.1 address not suppressed"
[ "$(val "SELECT value FROM exclusion_entries WHERE source = 'bounce' AND kind = 'domain'")" = dead-tenant.example ] ||
  fail "dead-tenant domain not suppressed"
[ "$(val 'SELECT version FROM rules_version')" -gt "$version_before" ] || fail "suppressions did not bump rules_version"
expect 0 "backoff list" -- r backoff list --format json
contains "pause from classify" "$out" '"operator": "yahoo"'
contains "share back-off" "$out" '"operator": "microsoft-365"'
has_line "classify is the source" "$out" '"source": "classify"'
[ "$(val "SELECT COUNT(*) FROM anomalies WHERE kind = 'bind-failure' AND subject = '203.0.113.94'")" = 1 ] ||
  fail "bind-failure anomaly not stored"
# The suppressed recipient is refused by the rules the milter loads.
expect 0 "rules export" -- r rules export --format json && contains "export has the suppression" "$out" "gone@fabrikam.example"

# --- cursors: re-run, appended lines, gzip copy, stdin ---------------------------------------------
expect 0 "re-run" -- r classify --format json "$work/mail.log" && check "re-run counts nothing" 'summary["deliveries"]' 0
[ "$(val 'SELECT SUM(count) FROM reputation')" = 10 ] || fail "re-run changed the totals"
dl "$today" zed@contoso.example "$ms" 2.0.0 sent '250 2.6.0 Queued mail for delivery' >>"$work/mail.log"
expect 0 "appended" -- r classify --format json "$work/mail.log" && check "only the new line" 'summary["deliveries"]' 1
[ "$(val 'SELECT SUM(count) FROM reputation')" = 11 ] || fail "appended line not counted once"
gzip -c "$work/mail.log" >"$work/mail.log.1.gz"
expect 0 "gzip copy" -- r classify --format json "$work/mail.log.1.gz" && check "gzip copy is the same log" 'summary["deliveries"]' 0
expect 0 "stdin copy" -- bash -c "'$bin' --config '$cfg' classify --format json - <'$work/mail.log'" &&
  check "stdin copy is the same log" 'summary["deliveries"]' 0
[ "$(val 'SELECT SUM(count) FROM reputation')" = 11 ] || fail "copies were counted again"

# --- bad input: unreadable, 1 MB line, garbage; the rest still counted ----------------------------
{
  printf '%sT01:00:00.0+00:00 mta1 postfix/out05/smtp[101]: 5B1A2B3C01: to=<x@contoso.example>, relay=%s, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)\n' "$today" "$ms"
  head -c 1048576 /dev/zero | tr '\0' 'x'
  printf '\n'
  head -c 4096 /dev/urandom | tr '\n' ' '
  printf '\n%sT01:00:01.0+00:00 mta1 postfix/out05/smtp[101]: 5B1A2B3C02: to=<y@contoso.example>, relay=%s, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)\n' "$today" "$ms"
} >"$work/bad.log"
expect 66 "unreadable log" -- r classify --format json "$work/missing.log" "$work" "$work/bad.log"
contains "missing named" "$err" "$work/missing.log"
check "bad input: the good lines" 'summary["deliveries"]' 2
check "bad input: the rest unparsed" 'summary["unparsed"]' 2
check "bad input: files" '(summary["files"], summary["files_failed"])' "(1, 2)"

# --- kill -9 mid-run, then a re-run: the totals of one clean run ----------------------------------
python3 - "$today" "$ms" >"$work/big.log" <<'PY'
import sys
day, relay = sys.argv[1], sys.argv[2]
for i in range(200000):
    st = ("sent", "2.0.0", "250 ok") if i % 3 else ("deferred", "4.7.500", "451 4.7.500 Server busy. Please try again later from [203.0.113.94]. (S77719)")
    print(f"{day}T02:{(i // 3600) % 60:02d}:{i % 60:02d}.0+00:00 mta1 postfix/out05/smtp[7]: 6C{i:08X}: to=<u{i}@k{i % 50}.example>, relay={relay}, delay=1, delays=0/0/0/1, dsn={st[1]}, status={st[0]} ({st[2]})")
PY
expect 0 "clean count" -- r classify --dry-run --from-start --format json "$work/big.log" &&
  check "clean count" 'summary["deliveries"]' 200000
base=$(val 'SELECT SUM(count) FROM reputation')
"$bin" --config "$cfg" classify --batch 2000 "$work/big.log" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [ "$(val "SELECT COUNT(*) FROM classify_cursors WHERE path LIKE '%big.log'")" = 1 ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
partial=$(val 'SELECT SUM(count) FROM reputation')
expect 0 "after kill -9" -- r classify --format json "$work/big.log"
total=$(val 'SELECT SUM(count) FROM reputation')
[ $((total - base)) = 200000 ] || fail "after kill -9 and re-run: $((total - base)) counted, want 200000 (partial $((partial - base)))"
[ "$(val "SELECT count FROM reputation WHERE operator = 'microsoft-365' AND status = '4.7.500' AND day = (SELECT MAX(day) FROM reputation)")" = $((66667 + 3)) ] ||
  fail "throttled total after kill -9: $(val "SELECT count FROM reputation WHERE operator = 'microsoft-365' AND status = '4.7.500' AND day = (SELECT MAX(day) FROM reputation)")"
echo "kill -9 landed after $((partial - base)) of 200000 deliveries were committed"

# --- two runs over one log at once: each line counted once, by one of them -----------------------
sed 's/T02:/T03:/' "$work/big.log" >"$work/big2.log"
base=$(val 'SELECT SUM(count) FROM reputation')
"$bin" --config "$cfg" classify --batch 1000 "$work/big2.log" >/dev/null 2>"$work/run1.err" &
p1=$!
"$bin" --config "$cfg" classify --batch 1000 "$work/big2.log" >/dev/null 2>"$work/run2.err" &
p2=$!
wait "$p1"
c1=$?
wait "$p2"
c2=$?
for c in $c1 $c2; do
  [ "$c" = 0 ] || [ "$c" = 75 ] || fail "concurrent run exit $c: $(cat "$work"/run*.err)"
done
expect 0 "after concurrent runs" -- r classify --format json "$work/big2.log"
[ $(($(val 'SELECT SUM(count) FROM reputation') - base)) = 200000 ] ||
  fail "concurrent runs counted $(($(val 'SELECT SUM(count) FROM reputation') - base)), want 200000"

# --- the same log, the same report: batches end where the log says, not where a thread was ----
# Seven addresses hard-bounce again and again among sent lines; with --batch 1000 every read chunk
# ends a batch, and loop closing reports each address once per batch it bounced in.
python3 - "$today" "$g" "$nouser" >"$work/bounces.log" <<'PY'
import sys
day, relay, said = sys.argv[1], sys.argv[2], sys.argv[3]
for i in range(60000):
    rcpt, st = f"u{i}@k{i % 50}.example", ("sent", "2.0.0", "250 ok")
    if i % 997 == 0:
        rcpt, st = f"gone{i % 7}@bounce.example", ("bounced", "5.1.1", said)
    print(f"{day}T04:{(i // 3600) % 60:02d}:{i % 60:02d}.0+00:00 mta1 postfix/out05/smtp[7]: 7D{i:08X}: to=<{rcpt}>, relay={relay}, delay=1, delays=0/0/0/1, dsn={st[1]}, status={st[0]} ({st[2]})")
PY
for k in 1 2 3; do
  r classify --dry-run --from-start --batch 1000 --format json "$work/bounces.log" >"$work/report$k" ||
    fail "bounce log run $k failed"
done
cmp -s "$work/report1" "$work/report2" && cmp -s "$work/report1" "$work/report3" ||
  fail "three dry runs over one log gave different reports: $(diff "$work/report1" "$work/report2" | head -c 300)"
grep -q '"suppressions_total": [1-9]' "$work/report1" || fail "bounce log: no suppression reported"

# --- --follow: appended lines, rotation by rename, then by copytruncate; SIGTERM commits ---------
# followed: stored deliveries of the follow test (their replies carry enhanced status 2.1.7).
followed() { val "SELECT COALESCE(SUM(count), 0) FROM reputation WHERE status = '2.1.7'"; }
# wait_followed N: poll (0.1 s steps, 30 s) until the store holds N followed deliveries.
wait_followed() {
  local i
  for i in $(seq 1 300); do
    [ "$(followed)" = "$1" ] && return 0
    kill -0 "$fpid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
fl() {  # fl N: one follow-test delivery line
  printf '%sT04:00:%02d.0+00:00 mta1 postfix/out05/smtp[9]: 7D1A2B3C%02d: to=<f%d@contoso.example>, relay=%s, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.1.7 follow-test %d)\n' \
    "$today" "$1" "$1" "$1" "$ms" "$1"
}
flog=$work/follow/mail.log
mkdir -p "$work/follow"
{ fl 1; fl 2; } >"$flog"
"$bin" --config "$cfg" classify --follow --interval 1 "$flog" >"$work/follow.out" 2>"$work/follow.err" &
fpid=$!
wait_followed 2 || fail "follow: the first two lines were not committed: $(cat "$work/follow.err")"
fl 3 >>"$flog"
wait_followed 3 || fail "follow: an appended line was not committed"
mv "$flog" "$flog.1"         # logrotate's create mode: rename, then a new file
fl 4 >>"$flog.1"             # the writer still has the old file open
fl 5 >"$flog"
wait_followed 5 || fail "follow: lines around a rename rotation: $(followed) of 5"
cp "$flog" "$flog.2" && : >"$flog"  # copytruncate
fl 6 >>"$flog"
wait_followed 6 || fail "follow: lines after copytruncate: $(followed) of 6"
fl 7 >>"$flog"
kill -TERM "$fpid"
wait "$fpid"
fcode=$?
[ "$fcode" = 0 ] || fail "follow: exit $fcode after SIGTERM: $(cat "$work/follow.err")"
[ "$(followed)" = 7 ] || fail "follow: SIGTERM did not commit the last line: $(followed) of 7"
# The rotated files read again count nothing twice.
expect 0 "rotated files again" -- r classify --format json "$flog.1" "$flog.2" "$flog" &&
  check "rotated files again count nothing" 'summary["deliveries"]' 0

cli_finish
