#!/bin/bash
# classify_bench.sh: `rampart classify --dry-run` against pflogsumm (the Postfix log summariser it
# is measured against) and against `wc -l` (the floor: reading the bytes and finding the
# newlines) on the same generated mail log, side by side in one run. Run on demand, never in CI's
# tests (about a minute at the default 1 GiB on 2 CPUs, most of it pflogsumm):
#   tests/bench/classify_bench.sh [BUILD_DIR=build/ci]
# BUILD_DIR holds sidecar/rampart and tests/bench/rampart-maillog-gen (`cmake --build --preset ci
# --target rampart rampart-maillog-gen`); measure an optimised build (ci or release).
#
# The targets (issue "classify throughput"): rampart's throughput at least 20x pflogsumm's, its
# wall time within 3x of wc -l's, and flat memory (its max RSS on the whole log within 1.5x of
# its max RSS on the first quarter). PASS/FAIL is printed for each, but the exit status is 0
# whatever the numbers: 1 only when a tool failed or rampart's counts disagree with the
# independent ones (see "sanity" below).
#
# The log (tests/bench/maillog_gen.cpp): half of its bytes are the lines of a real Postfix log
# (CLASSIFY_BENCH_CORPUS, default the pixelpark-postfix-logsums mail.log of the shared corpus,
# read in place: an inbound MX with postscreen, dnsblog, smtpd, amavis and dovecot deliveries),
# repeated with fresh queue ids; the other half synthetic outbound mail: smtpd connect, cleanup
# message-id, opendkim signature, qmgr from=, then one smtp delivery to Microsoft 365
# (contoso-example.mail.protection.outlook.com[198.51.100.10]), Google (aspmx.l.google.com) or
# Yahoo (mta5.am0.yahoodns.net) with 250, 451 4.7.500 Server busy, 421-4.7.28, 421 4.7.0 [TSS04],
# 550-5.1.1 / 550 5.4.1 / 554 replies (a deferral is followed by its successful retry), qmgr
# removed; 80% through transport out05 (stream "bench"), 20% through plain smtp. Classic syslog
# stamps, always increasing (8 lines a second); every message has its own queue id, so a
# classifier that never forgets a queue id grows with the log. Documentation addresses and
# example domains only. The quarter-size log is the same stream cut earlier.
#
# rampart runs with a throwaway SQLite store holding packaging/rules/classify.toml,
# packaging/rules/operators.toml and stream "bench" (transport out05, egress 203.0.113.94):
#   rampart --store sqlite://DIR/rampart.db classify --dry-run --from-start --format json LOG
# pflogsumm runs with its defaults (`pflogsumm LOG`), the Debian package's /usr/sbin/pflogsumm;
# when it is missing the script installs it as root (apt-get install -y --no-install-recommends
# pflogsumm), and otherwise says "pflogsumm: not available" and still measures the other two.
#
# Each tool reads the log from a warm page cache (it is read once before every tool). Wall time is
# taken around the command (EPOCHREALTIME), user and system CPU and max RSS from /usr/bin/time
# (without it, CPU from bash's `times` and no RSS). Each tool runs CLASSIFY_BENCH_RUNS times
# (wc -l and rampart on the whole log by turns; default 7; pflogsumm
# CLASSIFY_BENCH_PFLOGSUMM_RUNS, default 1) and the run with the median wall
# time is reported. MB/s are 10^6 bytes per wall-clock second. The wc -l target is judged on the
# median of the per-turn ratios (each rampart run against the wc -l run right before it: the
# same stretch of a shared machine, whose speed drifts by 30% and more from one second to the
# next on the 2-CPU VMs this was written on); the ratio of the medians is printed beside it.
#
# Sanity: rampart's summary "deliveries" must equal the remote delivery records counted by
# grep and awk straight from the log (to=<...> records with status sent, deferred, bounced or
# expired, not from local, virtual, pipe, error, retry or discard, and relay=none or a relay with
# an address that is not loopback or a socket path), and its "lines" must equal wc -l's count.
#
# Environment: CLASSIFY_BENCH_MB (log size in MiB, default 1024; e.g. 200 for a quick run),
# CLASSIFY_BENCH_RUNS, CLASSIFY_BENCH_PFLOGSUMM_RUNS, CLASSIFY_BENCH_CORPUS, CLASSIFY_BENCH_KEEP=1
# (keep the temp directory with the logs and every output), TMPDIR (where the logs go: needs
# 1.25x the log size free).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_dir=$(cd "$here/../.." && pwd)

usage() {
  printf 'usage: %s [BUILD_DIR=build/ci]\n' "$0" >&2
  exit 64
}
(($# <= 1)) || usage
build_arg=${1:-build/ci}
[[ -d $build_arg ]] || { printf 'classify_bench.sh: no build directory %s\n' "$build_arg" >&2; exit 1; }
build=$(cd "$build_arg" && pwd)
size_mb=${CLASSIFY_BENCH_MB:-1024}
runs=${CLASSIFY_BENCH_RUNS:-7}
pf_runs=${CLASSIFY_BENCH_PFLOGSUMM_RUNS:-1}
corpus=${CLASSIFY_BENCH_CORPUS:-/work/shared/corpus/postfix-logs/pixelpark-postfix-logsums/mail.log}
for n in "$size_mb" "$runs" "$pf_runs"; do [[ $n =~ ^[1-9][0-9]*$ ]] || usage; done

cli_bin=$build/sidecar/rampart
gen_bin=$build/tests/bench/rampart-maillog-gen
for bin in "$cli_bin" "$gen_bin"; do
  [[ -x $bin ]] || {
    printf 'classify_bench.sh: %s not built (cmake --build --preset ci --target rampart rampart-maillog-gen)\n' "$bin" >&2
    exit 1
  }
done
[[ -r $corpus ]] || { printf 'classify_bench.sh: cannot read the real log %s (CLASSIFY_BENCH_CORPUS)\n' "$corpus" >&2; exit 1; }

pflogsumm_bin=$(command -v pflogsumm || true)
pf_why=""
if [[ -z $pflogsumm_bin ]]; then
  if ((EUID == 0)); then
    printf 'installing pflogsumm (apt-get install -y --no-install-recommends pflogsumm)\n'
    if DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends pflogsumm >/dev/null 2>&1 ||
      { apt-get update >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends pflogsumm >/dev/null 2>&1; }; then
      pflogsumm_bin=$(command -v pflogsumm || true)
    fi
    [[ -n $pflogsumm_bin ]] || pf_why="apt-get install pflogsumm failed"
  else
    pf_why="not installed, and not root to install it (apt-get install pflogsumm)"
  fi
fi
[[ -z $pf_why ]] || printf 'pflogsumm: not available (%s); measuring rampart and wc -l only\n' "$pf_why"

have_time=0
[[ -x /usr/bin/time ]] && have_time=1

work=$(mktemp -d "${TMPDIR:-/tmp}/classify-bench.XXXXXX")
if [[ ${CLASSIFY_BENCH_KEEP:-} == 1 ]]; then
  trap 'printf "kept %s\n" "$work"' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi

crashed=0
crash() {
  printf 'CRASH: %s\n' "$*"
  crashed=1
}
fnum() { awk -v x="$1" -v f="$2" 'BEGIN { printf f, x }'; }

# --- the logs -------------------------------------------------------------------------------------

log=$work/mail.log
qlog=$work/mail-quarter.log
t0=$EPOCHREALTIME
"$gen_bin" --bytes "${size_mb}M" --real "$corpus" >"$log"
"$gen_bin" --bytes "$((size_mb * 1024 * 1024 / 4))" --real "$corpus" >"$qlog"
bytes=$(stat -c %s "$log")
qbytes=$(stat -c %s "$qlog")
printf 'generated %s (%s bytes) and its first quarter (%s bytes) in %s s\n' "$log" "$bytes" "$qbytes" \
  "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"

# --- rampart's store ------------------------------------------------------------------------------

store=sqlite://$work/rampart.db
cat >"$work/bench-stream.toml" <<'EOF'
# Written by tests/bench/classify_bench.sh: the stream whose transport the generated log names.
[[stream]]
name = "bench"
ports = [25]
clients = ["192.0.2.0/24"]
senders = ["@send.example.net"]
transport = "out05"
egress_ip = "203.0.113.94"
from_domains = ["send.example.net"]
daily_ceiling = 1000000000
over_cap = "defer"
EOF
if ! "$cli_bin" --store "$store" db migrate >"$work/setup.log" 2>&1 ||
  ! "$cli_bin" --store "$store" rules apply "$source_dir/packaging/rules/classify.toml" \
    "$source_dir/packaging/rules/operators.toml" "$work/bench-stream.toml" >>"$work/setup.log" 2>&1; then
  cat "$work/setup.log" >&2
  printf 'classify_bench.sh: could not set up the store %s\n' "$store" >&2
  exit 1
fi

# --- measuring ------------------------------------------------------------------------------------

# Results, keyed "TOOL/SIZE" (SIZE full or quarter): wall and CPU seconds, max RSS in KiB.
declare -A R_WALL=() R_USER=() R_SYS=() R_RSS=() R_BYTES=()

# measure_once OUT FILE CMD...: runs CMD (stdout to OUT) and prints "wall user sys rss_kib".
measure_once() {
  local out=$1 file=$2 t_start t_end rc=0
  shift 2
  cat "$file" >/dev/null  # warm page cache
  if ((have_time)); then
    t_start=$EPOCHREALTIME
    /usr/bin/time -f '%U %S %M' -o "$work/time.out" "$@" >"$out" 2>>"$work/stderr.log" || rc=$?
    t_end=$EPOCHREALTIME
    ((rc == 0)) || return "$rc"
    local u s m
    read -r u s m <"$work/time.out"
    printf '%s %s %s %s\n' "$(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.4f", b - a }')" "$u" "$s" "$m"
  else
    # bash's `times`: the second line is the children's user and system time (e.g. 0m1.230s).
    # It runs in this shell, not in a $(...) subshell, which has no children of its own.
    local before after
    times >"$work/times.out"
    before=$(tail -n 1 "$work/times.out")
    t_start=$EPOCHREALTIME
    "$@" >"$out" 2>>"$work/stderr.log" || rc=$?
    t_end=$EPOCHREALTIME
    times >"$work/times.out"
    after=$(tail -n 1 "$work/times.out")
    ((rc == 0)) || return "$rc"
    awk -v a="$t_start" -v b="$t_end" -v x="$before" -v y="$after" '
      function secs(t,  m) { m = t; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", t); sub(/s$/, "", t); return m * 60 + t }
      BEGIN { split(x, p, " "); split(y, q, " ")
              printf "%.4f %.2f %.2f -\n", b - a, secs(q[1]) - secs(p[1]), secs(q[2]) - secs(p[2]) }'
  fi
}

# Runs so far, keyed like the results: "wall user sys rss_kib" lines; FAILED: a run failed (the
# key then gets no result).
declare -A RUNS=() FAILED=()

# measure_run KEY FILE CMD...: one run of CMD on FILE, added to RUNS[KEY]. CMD's stdout is kept in
# $work/KEY.out (KEY with / as -).
measure_run() {
  local key=$1 file=$2 line
  shift 2
  if ! line=$(measure_once "$work/${key//\//-}.out" "$file" "$@"); then
    crash "$key: $* failed (see below)"
    tail -n 5 "$work/stderr.log" | sed 's/^/    /'
    FAILED[$key]=1
    return 1
  fi
  RUNS[$key]+="$line"$'\n'
}

# settle KEY FILE: records KEY's run with the median wall time.
settle() {
  local key=$1 file=$2 n line
  [[ -n ${RUNS[$key]:-} && -z ${FAILED[$key]:-} ]] || return 0
  n=$(printf '%s' "${RUNS[$key]}" | wc -l)
  line=$(printf '%s' "${RUNS[$key]}" | sort -n -k1,1 | sed -n "$(((n + 1) / 2))p")
  local w u s m
  read -r w u s m <<<"$line"
  R_WALL[$key]=$w
  R_USER[$key]=$u
  R_SYS[$key]=$s
  R_RSS[$key]=$m
  R_BYTES[$key]=$(stat -c %s "$file")
}

# measure KEY N FILE CMD...: N runs, then the median.
measure() {
  local key=$1 n=$2 file=$3 i
  shift 3
  for ((i = 0; i < n; i++)); do
    measure_run "$key" "$file" "$@" || return 1
  done
  settle "$key" "$file"
}

rampart_cmd=("$cli_bin" --store "$store" classify --dry-run --from-start --format json)
# wc -l and rampart on the whole log by turns (wc, rampart, wc, rampart, ...): on a shared
# machine whose speed drifts, both then see the same stretches of it, and their ratio does not
# depend on which ran first.
for ((i = 0; i < runs; i++)); do
  measure_run "wc/full" "$log" wc -l "$log" || break
  measure_run "rampart/full" "$log" "${rampart_cmd[@]}" "$log" || break
done
settle "wc/full" "$log"
settle "rampart/full" "$log"
measure "rampart/quarter" "$runs" "$qlog" "${rampart_cmd[@]}" "$qlog" || true
if [[ -n $pflogsumm_bin ]]; then
  measure "pflogsumm/full" "$pf_runs" "$log" "$pflogsumm_bin" "$log" || true
fi

# --- sanity ---------------------------------------------------------------------------------------

# The remote delivery records, counted without rampart (see the header).
want_deliveries=$(LC_ALL=C grep -F ' status=' "$log" | LC_ALL=C awk '
  / to=</ && / status=(sent|deferred|bounced|expired) / {
    if ($5 ~ /\/(local|virtual|pipe|error|retry|discard)\[/) next
    if (match($0, / relay=[^,]*,/)) r = substr($0, RSTART + 7, RLENGTH - 8); else next
    if (r != "none" && (r !~ /\[/ || r ~ /\[(127\.|::1\]|[^]]*\/)/)) next
    n++ }
  END { print n + 0 }')
want_lines=$(wc -l <"$log")
summary_field() {  # summary_field FILE NAME: a number from rampart's {"summary": {...}} line
  grep -F '{"summary": ' "$1" 2>/dev/null | grep -o "\"$2\": [0-9]*" | head -n 1 | awk '{ print $2 }'
}
got_deliveries=""
got_lines=""
if [[ -n ${R_WALL[rampart/full]:-} ]]; then
  got_deliveries=$(summary_field "$work/rampart-full.out" deliveries)
  got_lines=$(summary_field "$work/rampart-full.out" lines)
fi
pf_delivered=""
if [[ -n ${R_WALL[pflogsumm/full]:-} ]]; then
  pf_delivered=$(awk '$2 == "delivered" { print $1; exit }' "$work/pflogsumm-full.out")
fi

# --- result ---------------------------------------------------------------------------------------

mbps() { awk -v b="${R_BYTES[$1]}" -v w="${R_WALL[$1]}" 'BEGIN { printf "%.1f", (w > 0 ? b / 1e6 / w : 0) }'; }
row() {
  local label=$1 key=$2
  if [[ -z ${R_WALL[$key]:-} ]]; then
    printf '%-22s  %s\n' "$label" "no result"
    return
  fi
  printf '%-22s %9.1f %9.3f %8.2f %8.2f %10s %9s\n' "$label" \
    "$(awk -v b="${R_BYTES[$key]}" 'BEGIN { print b / 1e6 }')" "${R_WALL[$key]}" "${R_USER[$key]}" \
    "${R_SYS[$key]}" "$(mbps "$key")" \
    "$(if [[ ${R_RSS[$key]} == - ]]; then echo n/a; else fnum "${R_RSS[$key]}" '%.0f'; fi)"
}
printf '\n%-22s %9s %9s %8s %8s %10s %9s\n' tool MB wall_s user_s sys_s MB/s maxrss_KiB
row "wc -l (floor)" "wc/full"
if [[ -n $pflogsumm_bin ]]; then
  row "pflogsumm $("$pflogsumm_bin" --version 2>/dev/null | awk '{ print $2 }')" "pflogsumm/full"
else
  printf '%-22s  not available (%s)\n' pflogsumm "$pf_why"
fi
row "rampart (1/4 log)" "rampart/quarter"
row "rampart" "rampart/full"
printf '\n'

verdict() { if [[ $1 == 1 ]]; then echo PASS; else echo FAIL; fi; }
if [[ -n ${R_WALL[rampart/full]:-} ]]; then
  if [[ -n ${R_WALL[pflogsumm/full]:-} ]]; then
    read -r q ok < <(awk -v r="${R_WALL[rampart/full]}" -v p="${R_WALL[pflogsumm/full]}" \
      'BEGIN { q = r > 0 ? p / r : 0; printf "%.1f %d\n", q, (q >= 20) }')
    printf 'rampart vs pflogsumm: %sx the throughput (%s vs %s MB/s; target >= 20x): %s\n' "$q" \
      "$(mbps rampart/full)" "$(mbps pflogsumm/full)" "$(verdict "$ok")"
  fi
  if [[ -n ${R_WALL[wc/full]:-} ]]; then
    # Judged per pair: the i-th rampart run against the wc -l run just before it. Both then met
    # the same stretch of a shared machine, whose speed drifts by more than the margin between
    # runs; the median of those ratios is what is compared with 3. The ratio of the two tools'
    # medians is printed too.
    read -r q ok n lo hi < <(paste -d ' ' <(printf '%s' "${RUNS[wc/full]}" | awk '{ print $1 }') \
      <(printf '%s' "${RUNS[rampart/full]}" | awk '{ print $1 }') |
      awk '$1 > 0 && $2 != "" { printf "%.6f\n", $2 / $1 }' | sort -n |
      awk '{ r[++n] = $1 }
        END { m = n == 0 ? 0 : n % 2 ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
              printf "%.2f %d %d %.2f %.2f\n", m, (n > 0 && m <= 3), n, r[1], r[n] }')
    read -r qm < <(awk -v r="${R_WALL[rampart/full]}" -v w="${R_WALL[wc/full]}" \
      'BEGIN { printf "%.2f\n", (w > 0 ? r / w : 0) }')
    printf 'rampart vs wc -l: %sx the wall time, median of %s back-to-back pairs (%s-%sx; the' \
      "$q" "$n" "$lo" "$hi"
    printf ' medians alone: %sx, %s vs %s MB/s; target <= 3x): %s\n' "$qm" "$(mbps rampart/full)" \
      "$(mbps "wc/full")" "$(verdict "$ok")"
  fi
  if [[ -n ${R_WALL[rampart/quarter]:-} && ${R_RSS[rampart/full]} != - ]]; then
    read -r q ok < <(awk -v f="${R_RSS[rampart/full]}" -v h="${R_RSS[rampart/quarter]}" \
      'BEGIN { q = h > 0 ? f / h : 0; printf "%.2f %d\n", q, (q <= 1.5) }')
    printf 'rampart max RSS: %s KiB on %s MB, %s KiB on %s MB, ratio %s (flat: target <= 1.5): %s\n' \
      "${R_RSS[rampart/quarter]}" "$(awk -v b="$qbytes" 'BEGIN { printf "%.0f", b / 1e6 }')" \
      "${R_RSS[rampart/full]}" "$(awk -v b="$bytes" 'BEGIN { printf "%.0f", b / 1e6 }')" "$q" \
      "$(verdict "$ok")"
  fi
  if [[ $got_deliveries == "$want_deliveries" ]]; then
    printf 'sanity: rampart deliveries %s = %s remote delivery records by grep: ok\n' "$got_deliveries" \
      "$want_deliveries"
  else
    crash "sanity: rampart deliveries ${got_deliveries:-?} != $want_deliveries remote delivery records by grep"
  fi
  if [[ $got_lines == "$want_lines" ]]; then
    printf 'sanity: rampart lines %s = wc -l %s: ok\n' "$got_lines" "$want_lines"
  else
    crash "sanity: rampart lines ${got_lines:-?} != wc -l $want_lines"
  fi
else
  printf 'targets: not measured (no rampart result)\n'
fi
if [[ -n $pf_delivered ]]; then
  printf '(pflogsumm counts %s "delivered", local and content-filter hops included)\n' "$pf_delivered"
fi
printf 'setup: %s CPUs, %s, %s runs per tool (pflogsumm %s), median reported; %s\n' "$(nproc)" \
  "$([[ $have_time == 1 ]] && echo "/usr/bin/time" || echo "bash times, no RSS")" "$runs" "$pf_runs" \
  "$(readlink -f "$cli_bin")"
if ((crashed)); then
  printf 'something failed (see CRASH above); stderr of the tools: %s\n' "$work/stderr.log"
  [[ ${CLASSIFY_BENCH_KEEP:-} == 1 ]] || tail -n 20 "$work/stderr.log" || true
  exit 1
fi
exit 0
