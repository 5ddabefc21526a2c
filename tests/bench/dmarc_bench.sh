#!/bin/bash
# dmarc_bench.sh: `rampart dmarc ingest` checked and timed against dmarc-cat (Debian package
# dmarc-cat, keltia/dmarc-cat), on demand, never in CI's tests:
#   tests/bench/dmarc_bench.sh [BUILD_DIR=build/ci]
# BUILD_DIR holds sidecar/rampart (`cmake --build --preset ci --target rampart`); measure an
# optimised build (ci or release).
#
# 1. Cross-check. Every .xml, .gz and .zip under DMARC_BENCH_CORPUS (default the shared corpus
#    /work/shared/corpus/dmarc, read in place) that rampart finds exactly one aggregate report in:
#    its record and message counts from `rampart dmarc ingest --dry-run --format json` against
#    dmarc-cat's ("Reports(N):" is the record count, the sum of the table's Count column the
#    messages). dmarc-cat only reads files named like "org!domain!begin!end.xml|.xml.gz|.zip"
#    and picks the unpacker by that suffix, so each file is given to it through a symlink of that
#    form in the temp directory (suffix by content). A table is printed; a count that differs
#    fails the script (exit 1); a file dmarc-cat cannot read is listed, not a failure.
# 2. Throughput. DMARC_BENCH_REPORTS (default 10,000) reports: the cross-checked ones (both tools
#    read them) repeated, each copy with its own <report_id> and in its own wrapper (xml, gzip or
#    zip as the original), in one directory. Timed over it: rampart's real ingest into a fresh
#    SQLite store, rampart --dry-run, and dmarc-cat. dmarc-cat reads only its first argument, so
#    it runs once per file, `xargs -P $(nproc)` (rampart is one process, one thread). Printed:
#    wall time, reports/s, records/s, and the ratio (target: rampart at least 10x dmarc-cat).
#    PASS/FAIL is printed; the exit status is 0 whatever the speed.
#
# dmarc-cat missing: installed with apt-get when root; otherwise both dmarc-cat parts are skipped
# (said so) and rampart alone is timed. Environment: DMARC_BENCH_CORPUS, DMARC_BENCH_REPORTS,
# DMARC_BENCH_KEEP=1 (keep the temp directory), TMPDIR.
set -euo pipefail

usage() {
  printf 'usage: %s [BUILD_DIR=build/ci]\n' "$0" >&2
  exit 64
}
(($# <= 1)) || usage
build_arg=${1:-build/ci}
[[ -d $build_arg ]] || { printf 'dmarc_bench.sh: no build directory %s\n' "$build_arg" >&2; exit 1; }
build=$(cd "$build_arg" && pwd)
cli_bin=$build/sidecar/rampart
[[ -x $cli_bin ]] || { printf 'dmarc_bench.sh: %s not built (cmake --build --preset ci --target rampart)\n' "$cli_bin" >&2; exit 1; }
corpus=${DMARC_BENCH_CORPUS:-/work/shared/corpus/dmarc}
[[ -d $corpus ]] || { printf 'dmarc_bench.sh: no corpus directory %s (DMARC_BENCH_CORPUS)\n' "$corpus" >&2; exit 1; }
want_reports=${DMARC_BENCH_REPORTS:-10000}
[[ $want_reports =~ ^[1-9][0-9]*$ ]] || usage
command -v python3 >/dev/null || { printf 'dmarc_bench.sh: needs python3\n' >&2; exit 1; }

dc_bin=$(command -v dmarc-cat || true)
dc_why=""
if [[ -z $dc_bin ]]; then
  if ((EUID == 0)); then
    printf 'installing dmarc-cat (apt-get install -y --no-install-recommends dmarc-cat)\n'
    if DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dmarc-cat >/dev/null 2>&1 ||
      { apt-get update >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dmarc-cat >/dev/null 2>&1; }; then
      dc_bin=$(command -v dmarc-cat || true)
    fi
    [[ -n $dc_bin ]] || dc_why="apt-get install dmarc-cat failed"
  else
    dc_why="not installed, and not root to install it (apt-get install dmarc-cat)"
  fi
fi
[[ -z $dc_why ]] || printf 'dmarc-cat: not available (%s); skipping the cross-check and timing rampart only\n' "$dc_why"

work=$(mktemp -d "${TMPDIR:-/tmp}/dmarc-bench.XXXXXX")
if [[ ${DMARC_BENCH_KEEP:-} == 1 ]]; then
  trap 'printf "kept %s\n" "$work"' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi
failed=0

# --- 1. cross-check -------------------------------------------------------------------------------

mapfile -d '' files < <(find "$corpus" -type f \( -name '*.xml' -o -name '*.gz' -o -name '*.zip' \) -print0 | sort -z)
"$cli_bin" --store "sqlite://$work/none.db" dmarc ingest --dry-run --format json "${files[@]}" \
  >"$work/rampart-corpus.json" 2>"$work/rampart-corpus.err" || true
grep -q '"summary"' "$work/rampart-corpus.json" ||
  { cat "$work/rampart-corpus.err" >&2; printf 'dmarc_bench.sh: rampart failed on the corpus\n' >&2; exit 1; }

# dmarc-cat per file, through a symlink it accepts; its output kept as dc/N.out.
mkdir -p "$work/dc"
if [[ -n $dc_bin ]]; then
  i=0
  for f in "${files[@]}"; do
    i=$((i + 1))
    case $(head -c 4 "$f" | od -An -tx1 | tr -d ' \n') in
      1f8b*) ext=xml.gz ;;
      504b0304) ext=zip ;;
      *) ext=xml ;;
    esac
    link="$work/dc/bench.example!example.com!$i!$((i + 1)).$ext"
    ln -s "$f" "$link"
    "$dc_bin" -N "$link" >"$work/dc/$i.out" 2>&1 || true
  done
fi

# The table, the verdict, and the list of reports both read (for part 2) in $work/both.
python3 - "$work" "$([[ -n $dc_bin ]] && echo 1 || echo 0)" "${files[@]}" <<'PY' || failed=1
import json, re, sys
work, have_dc, files = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
per = {f: [] for f in files}
for line in open(work + "/rampart-corpus.json"):
    o = json.loads(line)
    if "summary" in o: continue
    src = o["source"]
    f = next((f for f in files if src == f or src.startswith(f + " > ")), None)
    if f is not None: per[f].append(o)

def dmarc_cat(i):
    text = open("%s/dc/%d.out" % (work, i), errors="replace").read()
    m = re.search(r"^Reports\((\d+)\):$", text, re.M)
    if not m:
        last = text.strip().splitlines()[-1] if text.strip() else "no output"
        return None, re.sub(r"\S*/dc/\S*", "FILE", re.sub(r"^.*?Error: ", "", last))[:90]
    rows, msgs, started = int(m.group(1)), 0, False
    for l in text[m.end():].splitlines():
        if l.startswith("IP "): started = True; continue
        if started and l.strip():
            msgs += int(l.split()[1])
    return (rows, msgs), None

mismatch, both, unread = 0, [], []
print("%-68s %9s %9s %9s %9s  %s" % ("report (corpus path)", "rp_recs", "dc_recs", "rp_msgs", "dc_msgs", "result"))
for i, f in enumerate(files, 1):
    name = f if len(f) <= 68 else "..." + f[-65:]
    reps = [o for o in per[f] if o["status"] != "refused"]
    if len(reps) != 1:
        why = "rampart: %d reports%s" % (len(reps), (" (" + per[f][0]["reason"][:40] + ")") if per[f] and not reps else "")
        print("%-68s %9s %9s %9s %9s  %s" % (name, "-", "-", "-", "-", "not compared: " + why))
        continue
    r = reps[0]
    if not have_dc:
        print("%-68s %9d %9s %9d %9s  %s" % (name, r["records"], "-", r["messages"], "-", "dmarc-cat not available"))
        continue
    got, err = dmarc_cat(i)
    if got is None:
        unread.append(f)
        print("%-68s %9d %9s %9d %9s  %s" % (name, r["records"], "-", r["messages"], "-", "dmarc-cat cannot read: " + err))
        continue
    ok = got == (r["records"], r["messages"])
    mismatch += not ok
    if ok: both.append(f)
    print("%-68s %9d %9d %9d %9d  %s" % (name, r["records"], got[0], r["messages"], got[1], "ok" if ok else "MISMATCH"))
open(work + "/both", "w").write("".join(f + "\n" for f in (both if have_dc else [f for f in files if len([o for o in per[f] if o["status"] != "refused"]) == 1])))
print("\ncross-check: %d reports agree, %d differ, %d dmarc-cat cannot read" % (len(both), mismatch, len(unread)))
sys.exit(1 if mismatch else 0)
PY

# --- 2. throughput --------------------------------------------------------------------------------

[[ -s $work/both ]] || { printf 'throughput: no report to repeat\n'; exit 1; }
mkdir -p "$work/many"
python3 - "$work/both" "$work/many" "$want_reports" <<'PY'
# Each copy: the original report with <report_id> made unique, in the original's wrapper.
import gzip, io, re, sys, zipfile
srcs = [l.rstrip("\n") for l in open(sys.argv[1])]
out, n = sys.argv[2], int(sys.argv[3])
docs = []
for f in srcs:
    data = open(f, "rb").read()
    if data[:2] == b"\x1f\x8b":
        kind, xml = "xml.gz", gzip.decompress(data)
    elif data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            kind, xml = "zip", z.read(z.namelist()[0])
    else:
        kind, xml = "xml", data
    docs.append((kind, xml))
rid = re.compile(rb"(<(?:[\w-]+:)?report_id>)\s*(.*?)\s*(</(?:[\w-]+:)?report_id>)", re.S)
for i in range(n):
    kind, xml = docs[i % len(docs)]
    x = rid.sub(lambda m: m.group(1) + m.group(2) + b"-bench-%d" % i + m.group(3), xml, count=1)
    path = "%s/bench.example!example.com!%d!%d.%s" % (out, i, i + 1, kind)
    if kind == "xml.gz":
        data = gzip.compress(x, mtime=0)
    elif kind == "zip":
        b = io.BytesIO()
        with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("bench.example!example.com!%d!%d.xml" % (i, i + 1), x)
        data = b.getvalue()
    else:
        data = x
    open(path, "wb").write(data)
PY
nfiles=$(find "$work/many" -type f | wc -l)
printf '\nthroughput input: %s reports (%s distinct originals repeated), %s bytes on disk\n' "$nfiles" \
  "$(wc -l <"$work/both")" "$(du -sb "$work/many" | cut -f1)"

declare -A WALL=()
timed() {  # timed KEY CMD...: wall seconds in WALL[KEY], stdout in $work/KEY.out
  local key=$1 t0 rc=0
  shift
  find "$work/many" -type f -exec cat {} + >/dev/null  # warm page cache
  t0=$EPOCHREALTIME
  "$@" >"$work/$key.out" 2>"$work/$key.err" || rc=$?
  WALL[$key]=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
  return "$rc"
}
store=sqlite://$work/bench.db
"$cli_bin" --store "$store" db migrate >/dev/null
rc=0
timed ingest "$cli_bin" --store "$store" dmarc ingest --format json "$work/many" || rc=$?
((rc == 0)) || { printf 'rampart ingest exited %s\n' "$rc"; tail -n 3 "$work/ingest.err"; failed=1; }
rc=0
timed dry "$cli_bin" --store "sqlite://$work/none.db" dmarc ingest --dry-run --format json "$work/many" || rc=$?
((rc == 0)) || { printf 'rampart --dry-run exited %s\n' "$rc"; tail -n 3 "$work/dry.err"; failed=1; }
if [[ -n $dc_bin ]]; then
  dc_one() { for f in "$@"; do "$DC_BIN" -N "$f" || printf 'dmarc-cat failed: %s\n' "$f" >&2; done; }
  export -f dc_one
  export DC_BIN=$dc_bin
  timed dc bash -c 'find "$1" -type f -print0 | xargs -0 -n 50 -P "$(nproc)" bash -c '"'"'dc_one "$@"'"'"' _' _ "$work/many" || true
fi

field() { grep -F '{"summary": ' "$work/$1.out" | grep -o "\"$2\": [0-9]*" | head -n 1 | awk '{ print $2 }'; }
records=$(field ingest records)
stored=$(field ingest stored)
dry_reports=$(field dry reports)
[[ $stored == "$nfiles" ]] || { printf 'sanity: rampart stored %s of %s reports\n' "${stored:-?}" "$nfiles"; failed=1; }
[[ $dry_reports == "$nfiles" ]] || { printf 'sanity: rampart --dry-run read %s of %s reports\n' "${dry_reports:-?}" "$nfiles"; failed=1; }
dc_reports=""
if [[ -n ${WALL[dc]:-} ]]; then
  dc_reports=$(grep -c '^Reports(' "$work/dc.out" || true)
  [[ $dc_reports == "$nfiles" ]] || printf 'note: dmarc-cat printed %s of %s reports (see %s)\n' "$dc_reports" "$nfiles" "$work/dc.err"
fi
rate() { awk -v n="$1" -v w="$2" 'BEGIN { printf "%.0f", (w > 0 ? n / w : 0) }'; }
printf '\n%-34s %9s %10s %11s\n' tool wall_s reports/s records/s
printf '%-34s %9s %10s %11s\n' "rampart ingest (fresh SQLite)" "${WALL[ingest]}" "$(rate "$nfiles" "${WALL[ingest]}")" "$(rate "$records" "${WALL[ingest]}")"
printf '%-34s %9s %10s %11s\n' "rampart ingest --dry-run" "${WALL[dry]}" "$(rate "$nfiles" "${WALL[dry]}")" "$(rate "$records" "${WALL[dry]}")"
if [[ -n ${WALL[dc]:-} ]]; then
  printf '%-34s %9s %10s %11s\n' "dmarc-cat -N (per file, -P $(nproc))" "${WALL[dc]}" "$(rate "$nfiles" "${WALL[dc]}")" "$(rate "$records" "${WALL[dc]}")"
  for key in ingest dry; do
    read -r q ok < <(awk -v r="${WALL[$key]}" -v d="${WALL[dc]}" 'BEGIN { q = r > 0 ? d / r : 0; printf "%.1f %d\n", q, (q >= 10) }')
    printf 'rampart %s vs dmarc-cat: %sx the throughput (target >= 10x): %s\n' \
      "$([[ $key == ingest ]] && echo ingest || echo --dry-run)" "$q" "$([[ $ok == 1 ]] && echo PASS || echo FAIL)"
  done
else
  printf '%-34s  not available (%s)\n' dmarc-cat "$dc_why"
fi
printf 'setup: %s CPUs, %s records in %s reports, %s, %s\n' "$(nproc)" "$records" "$nfiles" \
  "$(readlink -f "$cli_bin")" "$([[ -n $dc_bin ]] && "$dc_bin" -version 2>&1 | head -n 1)"
exit "$failed"
