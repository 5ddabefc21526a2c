#!/usr/bin/env bash
# End-to-end test of `rampart dmarc ingest` and `rampart report dmarc` against one store engine
# (RAMPART_TEST_STORE=sqlite|pgsql; pgsql runs under tests/lab/with-postgres.sh). Every report is
# written here (documentation addresses, example domains): exact JSON per report for each wrapper
# (xml, gzip, zip, a message with a base64 attachment, a message whose quoted-printable body is the
# report, a Maildir, a directory tree) in both namespaces, re-ingest as duplicates, --dry-run, bad
# input beside good reports (each refused, naming the limit), an unreadable path, then the report's
# flags, percentages, csv and exit codes. The shared corpus, when present, is read in place only.
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"
need=(python3)
[ "${RAMPART_TEST_STORE:-sqlite}" = sqlite ] && need+=(sqlite3)
cli_init "dmarc cli" "${need[@]}"
cli_store
corpus=${RAMPART_DMARC_CORPUS:-/work/shared/corpus/dmarc}

val() {  # val SQL: one value from the store
  if [ "$engine" = pgsql ]; then psql -At "$url" -c "$1"; else sqlite3 "$work/rampart.db" "$1"; fi
}
totals() { val 'SELECT COUNT(*) FROM dmarc_report'; val 'SELECT COUNT(*), SUM(count) FROM dmarc_record'; }
# same LABEL FILE: $work/out is FILE line for line ($work/ written as WORK/ in FILE).
same() {
  sed "s|WORK/|$work/|g" "$2" >"$work/want"
  diff -u "$work/want" "$work/out" >"$work/diff" || fail "$1: output differs from the expected:
$(cat "$work/diff")"
}
# pyq EXPR: a python expression over `rows` (per-IP or per-report objects) and `summary` from $work/out.
pyq() {
  python3 -c '
import json, sys
rows, summary = [], None
for line in open(sys.argv[1]):
    o = json.loads(line)
    if "summary" in o: summary = o["summary"]
    else: rows.append(o)
by_ip = {r.get("source_ip"): r for r in rows}
print(eval(sys.argv[2]))' "$work/out" "$1"
}
check() {  # check LABEL EXPR WANT
  local got
  got=$(pyq "$2")
  [ "$got" = "$3" ] || fail "$1: $2 = $got, want $3"
}

# --- the report writer ----------------------------------------------------------------------------
cat >"$work/gen.py" <<'PY'
# Aggregate reports and their wrappers, for dmarc_cli_test.sh. Documentation addresses only.
import base64, gzip, io, os, quopri, struct, sys, time, zipfile

RFC = "http://dmarc.org/dmarc-xml/0.1"     # RFC 7489 appendix C
BIS = "urn:ietf:params:xml:ns:dmarc-2.0"   # DMARCbis

def report(org, rid, dom, begin, end, recs, ns=None, bis=False):
    """recs: (source_ip, count, policy-evaluated dkim, spf[, header_from])"""
    x = ['<?xml version="1.0" encoding="UTF-8"?>', '<feedback%s>' % (' xmlns="%s"' % ns if ns else '')]
    x.append('  <version>%s</version>' % ('2.0' if bis else '1.0'))
    x.append('  <report_metadata>\n    <org_name>%s</org_name>\n    <email>noreply-dmarc@%s</email>\n'
             '    <report_id>%s</report_id>\n    <date_range>\n      <begin>%d</begin>\n'
             '      <end>%d</end>\n    </date_range>\n  </report_metadata>' % (org, org, rid, begin, end))
    if bis:
        x.append('  <policy_published>\n    <domain>%s</domain>\n    <adkim>r</adkim>\n    <aspf>r</aspf>\n'
                 '    <p>reject</p>\n    <sp>reject</sp>\n    <np>reject</np>\n    <testing>n</testing>\n'
                 '    <discovery_method>treewalk</discovery_method>\n  </policy_published>' % dom)
    else:
        x.append('  <policy_published>\n    <domain>%s</domain>\n    <adkim>r</adkim>\n    <aspf>r</aspf>\n'
                 '    <p>none</p>\n    <sp>none</sp>\n    <pct>100</pct>\n  </policy_published>' % dom)
    for r in recs:
        ip, n, dk, sp = r[:4]
        hf = r[4] if len(r) > 4 else dom
        x.append('  <record>\n    <row>\n      <source_ip>%s</source_ip>\n      <count>%d</count>\n'
                 '      <policy_evaluated>\n        <disposition>none</disposition>\n'
                 '        <dkim>%s</dkim>\n        <spf>%s</spf>\n      </policy_evaluated>\n    </row>\n'
                 '    <identifiers>\n      <header_from>%s</header_from>\n    </identifiers>\n'
                 '    <auth_results>\n      <dkim>\n        <domain>%s</domain>\n'
                 '        <selector>s1</selector>\n        <result>%s</result>\n      </dkim>\n'
                 '      <spf>\n        <domain>%s</domain>\n        <result>%s</result>\n      </spf>\n'
                 '    </auth_results>\n  </record>' % (ip, n, dk, sp, hf, hf, dk, hf, sp))
    x.append('</feedback>\n')
    return "\n".join(x).encode()

def gz(data, fname=""):
    b = io.BytesIO()
    with gzip.GzipFile(filename=fname, mode="wb", fileobj=b, mtime=0) as f:
        f.write(data)
    return b.getvalue()

def zp(entries, method=zipfile.ZIP_DEFLATED):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", method) as z:
        for name, data in entries:
            z.writestr(name, data)
    return b.getvalue()

HDR = [("From", "noreply-dmarc@mail.example"), ("To", "dmarc@example.com"),
       ("Date", "Mon, 01 Jan 2024 00:00:00 +0000"), ("MIME-Version", "1.0")]

def msg(headers, body):
    return ("".join("%s: %s\r\n" % kv for kv in headers) + "\r\n").encode() + body

def part(bnd, ctype, data, name=None):
    if name is None:
        return ("--%s\r\nContent-Type: %s\r\n\r\n" % (bnd, ctype)).encode() + data + b"\r\n"
    return (("--%s\r\nContent-Type: %s; name=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n"
             "Content-Disposition: attachment; filename=\"%s\"\r\n\r\n" % (bnd, ctype, name, name)).encode()
            + base64.encodebytes(data).replace(b"\n", b"\r\n"))

def mail(subject, mid, parts, bnd):
    return msg(HDR + [("Subject", subject), ("Message-ID", "<%s@mail.example>" % mid),
                      ("Content-Type", 'multipart/mixed; boundary="%s"' % bnd)],
               b"".join(parts) + ("--%s--\r\n" % bnd).encode())

def attach(subject, mid, name, ctype, data):
    bnd = "=_b_" + mid
    return mail(subject, mid, [part(bnd, "text/plain", b"This is a DMARC aggregate report."),
                               part(bnd, ctype, data, name)], bnd)

def body_qp(subject, mid, xml):
    return msg(HDR + [("Subject", subject), ("Message-ID", "<%s@mail.example>" % mid),
                      ("Content-Type", "text/xml; charset=utf-8"),
                      ("Content-Transfer-Encoding", "quoted-printable")], quopri.encodestring(xml))

def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)

def good(d):
    B, E = 1704067200, 1704067200 + 86399  # 2024-01-01
    recs = [("192.0.2.10", 3, "pass", "pass"), ("198.51.100.7", 2, "fail", "fail")]
    write(d + "/plain.xml", report("google.com", "r-plain", "example.com", B, E, recs, ns=RFC))
    write(d + "/gz.xml.gz", gz(report("yahoo.example", "r-gz", "example.com", B, E,
                                      recs + [("203.0.113.5", 1, "fail", "pass")]),
                               "yahoo.example!example.com!1704067200!1704153599.xml"))
    write(d + "/z.zip", zp([("outlook!example.com!r-zip.xml", report(
        "outlook.example", "r-zip", "example.com", B, E, [("192.0.2.11", 7, "pass", "fail")]))]))
    write(d + "/att.eml", attach(
        "Report Domain: example.com Submitter: mail.example Report-ID: r-eml", "m1",
        "mail.example!example.com!1704067200!1704153599.xml.gz", "application/gzip",
        gz(report("mail.example", "r-eml", "example.com", B, E, [("192.0.2.12", 4, "pass", "pass")],
                  ns=BIS, bis=True))))
    write(d + "/body.eml", body_qp(
        "Report Domain: example.org Submitter: qp.example Report-ID: r-qp", "m2",
        report("qp.example", "r-qp", "example.org", B, E,
               [("198.51.100.8", 5, "fail", "fail"), ("192.0.2.13", 6, "pass", "fail")])))
    write(d + "/Maildir/new/1704067200.M1P1.mx", attach(
        "Report-ID: r-md-new", "m3", "r.xml", "text/xml",
        report("md.example", "r-md-new", "example.com", B, E, [("192.0.2.14", 1, "pass", "pass")])))
    write(d + "/Maildir/cur/1704067201.M2P1.mx:2,S", attach(
        "Report-ID: r-md-cur", "m4", "r.zip", "application/zip",
        zp([("r.xml", report("md.example", "r-md-cur", "example.com", B, E,
                             [("192.0.2.15", 2, "fail", "fail")], ns=BIS, bis=True))])))
    os.makedirs(d + "/Maildir/tmp", exist_ok=True)
    write(d + "/tree/a/b/deep.xml", report("tree.example", "r-tree-1", "example.net", B, E,
                                           [("203.0.113.6", 8, "pass", "pass")], ns=BIS, bis=True))
    write(d + "/tree/c/other.xml.gz", gz(report("tree.example", "r-tree-2", "example.net", B, E,
                                                [("203.0.113.7", 9, "fail", "pass")])))

def bad(d):
    B, E = 1704153600, 1704153600 + 86399  # 2024-01-02
    write(d + "/good1.xml", report("bad-neighbour.example", "r-good-1", "example.com", B, E,
                                   [("192.0.2.20", 2, "pass", "pass")], ns=RFC))
    write(d + "/good2.xml.gz", gz(report("bad-neighbour.example", "r-good-2", "example.com", B, E,
                                         [("192.0.2.21", 3, "fail", "fail")], ns=BIS, bis=True)))
    write(d + "/empty.xml", b"")
    write(d + "/zero-attachment.eml", attach("Report-ID: r-zero", "m5", "zero.xml.gz",
                                             "application/gzip", b""))
    write(d + "/many-entries.zip", zp([("r%05d.xml" % i, b"<feedback/>") for i in range(10000)],
                                      zipfile.ZIP_STORED))
    # One deflated entry whose headers declare 2 GiB uncompressed (APPNOTE 4.3.7, 4.3.12, 4.3.16).
    name, data = b"huge.xml", b"\x03\x00"
    lfh = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, 0, len(data), 0x80000000,
                      len(name), 0) + name + data
    cdh = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, 0, len(data), 0x80000000,
                      len(name), 0, 0, 0, 0, 0, 0) + name
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(cdh), len(lfh), 0)
    write(d + "/declares-2g.zip", lfh + cdh + eocd)
    b = io.BytesIO()  # 300 MiB of zeros, about 300 KB gzip'd
    with gzip.GzipFile(fileobj=b, mode="wb", mtime=0, compresslevel=9) as f:
        for _ in range(300):
            f.write(bytes(1 << 20))
    write(d + "/bomb.xml.gz", b.getvalue())
    lol = ['<?xml version="1.0"?>', '<!DOCTYPE feedback [', '  <!ENTITY lol "lol">']
    lol += ['  <!ENTITY lol%d "%s">' % (i, ("&lol%s;" % (i - 1 if i > 1 else "")) * 10) for i in range(1, 10)]
    lol += [']>', '<feedback><report_metadata><org_name>&lol9;</org_name></report_metadata></feedback>', '']
    write(d + "/laughs.xml", "\n".join(lol).encode())
    bnd = "=_many"  # 500 parts: a cover note, the report in part 2, then 498 more notes
    parts = [part(bnd, "text/plain", b"cover note"),
             part(bnd, "application/gzip", gz(report("parts.example", "r-parts", "example.com", B, E,
                                                     [("192.0.2.22", 4, "pass", "fail")])), "r.xml.gz")]
    parts += [part(bnd, "text/plain", b"part %d" % i) for i in range(3, 501)]
    write(d + "/500-parts.eml", mail("Report-ID: r-parts", "m6", parts, bnd))

def period(d):
    now, day = int(time.time()), 86400
    b, e = now - 3 * day, now - 2 * day  # set A: ended two days ago
    write(d + "/a-google.xml", report("google.com", "rep-a-1", "example.com", b, e, [
        ("203.0.113.94", 60, "pass", "pass"), ("203.0.113.94", 30, "fail", "pass"),
        ("203.0.113.94", 10, "fail", "fail"), ("198.51.100.25", 20, "fail", "fail"),
        ("198.51.100.10", 10, "fail", "fail"), ("198.51.100.10", 30, "pass", "fail")], ns=RFC))
    write(d + "/a-yahoo.xml.gz", gz(report("yahoo.example", "rep-a-2", "example.com", b, e, [
        ("198.51.100.25", 5, "fail", "fail", "news.example.com")], ns=BIS, bis=True)))
    b, e = now - day, now - 3600  # set B: ended an hour ago
    write(d + "/b-outlook.xml", report("outlook.example", "rep-b-1", "example.com", b, e, [
        ("192.0.2.50", 10, "fail", "fail"), ("192.0.2.50", 2, "pass", "pass"),
        ("192.0.2.51", 3, "pass", "fail")]))

globals()[sys.argv[1]](sys.argv[2])
PY
python3 "$work/gen.py" good "$work/in" && python3 "$work/gen.py" bad "$work/bad" &&
  python3 "$work/gen.py" period "$work/period" || { echo "cannot write the reports" >&2; exit 1; }
ri() { (cd "$work/in" && r "$@"); }  # paths relative to in/, so the expected sources are fixed

cat >"$work/site.toml" <<'TOML'
[[stream]]
name = "bulk"
ports = [25]
transport = "out05"
egress_ip = "203.0.113.94"
TOML

# --- usage ----------------------------------------------------------------------------------------
expect 0 "dmarc --help" -- r dmarc --help && contains "dmarc --help" "$out" "--dry-run"
expect 0 "report --help" -- r report --help && contains "report --help" "$out" "--days N"
expect 64 "no path" -- r dmarc ingest && contains "no path" "$err" "no PATH given"
expect 64 "bad format" -- r dmarc ingest --format csv "$work/in" && contains "bad format" "$err" "table or json"
expect 64 "bad subcommand" -- r dmarc eat "$work/in"
expect 64 "bad days" -- r report dmarc --days 0 && contains "bad days" "$err" "positive number"
expect 64 "report bad format" -- r report dmarc --format xml && contains "report bad format" "$err" "table, json or csv"
expect 0 "db migrate" -- r db migrate
expect 0 "rules apply" -- r rules apply "$work/site.toml"

# --- a fresh store: nothing stored yet is a flag ----------------------------------------------------
if expect 1 "report on a fresh store" -- r report dmarc --format json; then
  check "fresh: no rows" 'len(rows)' 0
  check "fresh: arrival" '(summary["reports_stored"], summary["last_ingested"], summary["flagged"], summary["arrival"])' \
    "(0, None, 1, 'no DMARC report stored yet')"
fi

# --- every wrapper, both namespaces: exact JSON ---------------------------------------------------
cat >"$work/want-good" <<'EOF'
{"source": "plain.xml", "org_name": "google.com", "report_id": "r-plain", "policy_domain": "example.com", "begin": "2024-01-01T00:00:00Z", "end": "2024-01-01T23:59:59Z", "records": 2, "messages": 5, "dmarc_pass_messages": 3, "status": "stored", "reason": null}
{"source": "gz.xml.gz > yahoo.example!example.com!1704067200!1704153599.xml", "org_name": "yahoo.example", "report_id": "r-gz", "policy_domain": "example.com", "begin": "2024-01-01T00:00:00Z", "end": "2024-01-01T23:59:59Z", "records": 3, "messages": 6, "dmarc_pass_messages": 4, "status": "stored", "reason": null}
{"source": "z.zip > outlook!example.com!r-zip.xml", "org_name": "outlook.example", "report_id": "r-zip", "policy_domain": "example.com", "begin": "2024-01-01T00:00:00Z", "end": "2024-01-01T23:59:59Z", "records": 1, "messages": 7, "dmarc_pass_messages": 7, "status": "stored", "reason": null}
{"source": "att.eml > part 2 (application/gzip) > mail.example!example.com!1704067200!1704153599.xml.gz", "org_name": "mail.example", "report_id": "r-eml", "policy_domain": "example.com", "begin": "2024-01-01T00:00:00Z", "end": "2024-01-01T23:59:59Z", "records": 1, "messages": 4, "dmarc_pass_messages": 4, "status": "stored", "reason": null}
{"source": "body.eml > part 1 (text/xml)", "org_name": "qp.example", "report_id": "r-qp", "policy_domain": "example.org", "begin": "2024-01-01T00:00:00Z", "end": "2024-01-01T23:59:59Z", "records": 2, "messages": 11, "dmarc_pass_messages": 6, "status": "stored", "reason": null}
{"source": "Maildir/cur/1704067201.M2P1.mx:2,S > part 2 (application/zip) > r.zip > r.xml", "org_name": "md.example", "report_id": "r-md-cur", "policy_domain": "example.com", "begin": "2024-01-01T00:00:00Z", "end": "2024-01-01T23:59:59Z", "records": 1, "messages": 2, "dmarc_pass_messages": 0, "status": "stored", "reason": null}
{"source": "Maildir/new/1704067200.M1P1.mx > part 2 (text/xml) > r.xml", "org_name": "md.example", "report_id": "r-md-new", "policy_domain": "example.com", "begin": "2024-01-01T00:00:00Z", "end": "2024-01-01T23:59:59Z", "records": 1, "messages": 1, "dmarc_pass_messages": 1, "status": "stored", "reason": null}
{"source": "tree/a/b/deep.xml", "org_name": "tree.example", "report_id": "r-tree-1", "policy_domain": "example.net", "begin": "2024-01-01T00:00:00Z", "end": "2024-01-01T23:59:59Z", "records": 1, "messages": 8, "dmarc_pass_messages": 8, "status": "stored", "reason": null}
{"source": "tree/c/other.xml.gz", "org_name": "tree.example", "report_id": "r-tree-2", "policy_domain": "example.net", "begin": "2024-01-01T00:00:00Z", "end": "2024-01-01T23:59:59Z", "records": 1, "messages": 9, "dmarc_pass_messages": 9, "status": "stored", "reason": null}
{"summary": {"dry_run": false, "inputs": 9, "messages": 4, "reports": 9, "stored": 9, "duplicate": 0, "refused": 0, "not_reports": 0, "unreadable": 0, "records": 13, "report_messages": 53}}
EOF
good_paths=(plain.xml gz.xml.gz z.zip att.eml body.eml Maildir tree)

# --dry-run first: the same reports, "stored" meaning "would be stored"; nothing written.
if expect 0 "dry run" -- ri dmarc ingest --dry-run --format json "${good_paths[@]}"; then
  sed 's/"dry_run": false/"dry_run": true/' "$work/want-good" >"$work/want-dry"
  same "dry run" "$work/want-dry"
fi
[ "$(val 'SELECT COUNT(*) FROM dmarc_report')" = 0 ] || fail "dry run stored reports"
[ "$(val 'SELECT COUNT(*) FROM dmarc_record')" = 0 ] || fail "dry run stored records"

expect 0 "ingest" -- ri dmarc ingest --format json "${good_paths[@]}" && same "ingest" "$work/want-good"
[ "$(totals | tr '\n' ' ')" = "9 13|53 " ] || fail "store after ingest: $(totals | tr '\n' ' '), want 9 reports, 13 records, 53 messages"
[ "$(val "SELECT report_id FROM dmarc_report WHERE dmarcbis = 1 ORDER BY report_id" | tr '\n' ' ')" = "r-eml r-md-cur r-tree-1 " ] ||
  fail "DMARCbis namespace not recorded: $(val "SELECT report_id FROM dmarc_report WHERE dmarcbis = 1" | tr '\n' ' ')"
[ "$(val "SELECT np || '/' || testing || '/' || discovery_method || '/' || COALESCE(CAST(pct AS TEXT), 'null') FROM dmarc_report WHERE report_id = 'r-tree-1'")" = "reject/n/treewalk/null" ] ||
  fail "DMARCbis policy fields: $(val "SELECT np, testing, discovery_method, pct FROM dmarc_report WHERE report_id = 'r-tree-1'")"
[ "$(val "SELECT COALESCE(CAST(pct AS TEXT), 'null') || '/' || np FROM dmarc_report WHERE report_id = 'r-plain'")" = "100/" ] ||
  fail "RFC 7489 policy fields: $(val "SELECT pct, np FROM dmarc_report WHERE report_id = 'r-plain'")"
[ "$(val "SELECT source_ip || ' ' || count || ' ' || dkim || ' ' || spf FROM dmarc_record d JOIN dmarc_report r ON r.id = d.report WHERE r.report_id = 'r-qp' ORDER BY position" | tr '\n' ';')" = \
  "198.51.100.8 5 fail fail;192.0.2.13 6 pass fail;" ] || fail "quoted-printable report's records"

# --- re-ingest: all duplicates, nothing changes -----------------------------------------------------
if expect 0 "re-ingest" -- ri dmarc ingest --format json "${good_paths[@]}"; then
  sed -e 's/"status": "stored"/"status": "duplicate"/' \
    -e 's/"stored": 9, "duplicate": 0/"stored": 0, "duplicate": 9/' "$work/want-good" >"$work/want-dup"
  same "re-ingest" "$work/want-dup"
fi
[ "$(totals | tr '\n' ' ')" = "9 13|53 " ] || fail "re-ingest changed the store: $(totals | tr '\n' ' ')"
# The help says a dry run still recognises duplicates: reports already stored are not "to store".
if expect 0 "dry run over stored reports" -- ri dmarc ingest --dry-run --format json "${good_paths[@]}"; then
  check "dry run over stored reports: duplicates" '(summary["stored"], summary["duplicate"])' "(0, 9)"
fi
[ "$(totals | tr '\n' ' ')" = "9 13|53 " ] || fail "dry run changed the store: $(totals | tr '\n' ' ')"

# --- bad input beside good reports: each refused naming the limit, the good ones stored, 65 -------
cat >"$work/want-bad" <<'EOF'
{"source": "WORK/bad/500-parts.eml > part 257", "org_name": null, "report_id": null, "policy_domain": null, "begin": null, "end": null, "records": null, "messages": null, "dmarc_pass_messages": null, "status": "refused", "reason": "mime: more than 256 parts (limit max_parts); the rest skipped"}
{"source": "WORK/bad/500-parts.eml > part 2 (application/gzip) > r.xml.gz", "org_name": "parts.example", "report_id": "r-parts", "policy_domain": "example.com", "begin": "2024-01-02T00:00:00Z", "end": "2024-01-02T23:59:59Z", "records": 1, "messages": 4, "dmarc_pass_messages": 4, "status": "stored", "reason": null}
{"source": "WORK/bad/bomb.xml.gz", "org_name": null, "report_id": null, "policy_domain": null, "begin": null, "end": null, "records": null, "messages": null, "dmarc_pass_messages": null, "status": "refused", "reason": "gzip: inflates past 200 MiB (limit max_decompressed)"}
{"source": "WORK/bad/declares-2g.zip > huge.xml", "org_name": null, "report_id": null, "policy_domain": null, "begin": null, "end": null, "records": null, "messages": null, "dmarc_pass_messages": null, "status": "refused", "reason": "zip: declares 2048 MiB uncompressed (limit max_decompressed 200 MiB)"}
{"source": "WORK/bad/empty.xml", "org_name": null, "report_id": null, "policy_domain": null, "begin": null, "end": null, "records": null, "messages": null, "dmarc_pass_messages": null, "status": "refused", "reason": "empty"}
{"source": "WORK/bad/good1.xml", "org_name": "bad-neighbour.example", "report_id": "r-good-1", "policy_domain": "example.com", "begin": "2024-01-02T00:00:00Z", "end": "2024-01-02T23:59:59Z", "records": 1, "messages": 2, "dmarc_pass_messages": 2, "status": "stored", "reason": null}
{"source": "WORK/bad/good2.xml.gz", "org_name": "bad-neighbour.example", "report_id": "r-good-2", "policy_domain": "example.com", "begin": "2024-01-02T00:00:00Z", "end": "2024-01-02T23:59:59Z", "records": 1, "messages": 3, "dmarc_pass_messages": 0, "status": "stored", "reason": null}
{"source": "WORK/bad/laughs.xml", "org_name": null, "report_id": null, "policy_domain": null, "begin": null, "end": null, "records": null, "messages": null, "dmarc_pass_messages": null, "status": "refused", "reason": "DTD with entity declarations refused (entities are never expanded)"}
{"source": "WORK/bad/many-entries.zip", "org_name": null, "report_id": null, "policy_domain": null, "begin": null, "end": null, "records": null, "messages": null, "dmarc_pass_messages": null, "status": "refused", "reason": "zip: 10000 entries (limit max_zip_entries 64)"}
{"source": "WORK/bad/zero-attachment.eml > part 2 (application/gzip) > zero.xml.gz", "org_name": null, "report_id": null, "policy_domain": null, "begin": null, "end": null, "records": null, "messages": null, "dmarc_pass_messages": null, "status": "refused", "reason": "empty"}
{"summary": {"dry_run": false, "inputs": 9, "messages": 2, "reports": 3, "stored": 3, "duplicate": 0, "refused": 7, "not_reports": 0, "unreadable": 0, "records": 3, "report_messages": 9}}
EOF
t0=$EPOCHREALTIME
expect 65 "bad input" -- r dmarc ingest --format json "$work/bad" && same "bad input" "$work/want-bad"
secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
# 300 MiB of zeros inflate in well under a second; 20 s allows for sanitizer builds.
awk -v s="$secs" 'BEGIN { exit !(s < 20) }' || fail "bad input took ${secs}s (the gzip bomb was inflated?)"
[ "$(totals | tr '\n' ' ')" = "12 16|62 " ] || fail "store after bad input: $(totals | tr '\n' ' '), want 12 reports, 16 records, 62 messages"
# A lower max_decompressed refuses the bomb at that limit, and sooner.
cp "$cfg" "$work/small.toml"
printf '[sidecar.dmarc]\nmax_decompressed = "1MB"\n' >>"$work/small.toml"
expect 65 "bomb, 1 MB limit" -- "$bin" --config "$work/small.toml" dmarc ingest --dry-run --format json "$work/bad/bomb.xml.gz" &&
  has_line "bomb, 1 MB limit" "$out" '"status": "refused", "reason": "gzip: inflates past 1 MiB \(limit max_decompressed\)"'

# --- an unreadable path: 66, named on stderr; the rest still read ---------------------------------
expect 66 "unreadable path" -- r dmarc ingest --format json "$work/nonexistent.xml" "$work/in/plain.xml"
contains "unreadable path named" "$err" "$work/nonexistent.xml"
check "unreadable path: the rest read" '(summary["unreadable"], summary["duplicate"], [r["status"] for r in rows])' "(1, 1, ['duplicate'])"

# --- report dmarc over a period written here ---------------------------------------------------------
expect 0 "ingest the period" -- r dmarc ingest --format json "$work/period"
if expect 1 "report json" -- r report dmarc --format json; then
  row() { printf '{"source_ip": "%s", "stream": %s, "messages": %s, "dmarc_pass_percent": %s, "dkim_aligned_percent": %s, "spf_aligned_percent": %s, "reports": %s, "reporters": [%s], "domains": [%s], "flag": %s}\n' "$@"; }
  {
    row 203.0.113.94 '"bulk"' 100 90.0 60.0 90.0 1 '"google.com"' '"example.com"' '"egress below 95% pass"'
    row 198.51.100.10 null 40 75.0 75.0 0.0 1 '"google.com"' '"example.com"' null
    row 198.51.100.25 null 25 0.0 0.0 0.0 2 '"google.com", "yahoo.example"' '"example.com", "news.example.com"' '"outside IP: 25 failing messages as you"'
    row 192.0.2.50 null 12 16.7 16.7 16.7 1 '"outlook.example"' '"example.com"' null
    row 192.0.2.51 null 3 100.0 100.0 0.0 1 '"outlook.example"' '"example.com"' null
  } >"$work/want-report"
  head -n -1 "$work/out" >"$work/out.rows"
  diff -u "$work/want-report" "$work/out.rows" >"$work/diff" || fail "report json rows:
$(cat "$work/diff")"
  check "report: summary" '(summary["days"], summary["sources"], summary["flagged"], summary["reports_stored"], summary["arrival"])' \
    "(7, 5, 2, 15, None)"
fi
if expect 1 "report csv" -- r report dmarc --format csv; then
  [ "$(head -n 1 <<<"$out")" = "source_ip,stream,messages,dmarc_pass_percent,dkim_aligned_percent,spf_aligned_percent,reports,reporters,flag" ] ||
    fail "csv header: $(head -n 1 <<<"$out")"
  has_line "csv egress row" "$out" '^203\.0\.113\.94,bulk,100,90\.0,60\.0,90\.0,1,google\.com,egress below 95% pass$'
  has_line "csv outside row" "$out" '^198\.51\.100\.25,,25,0\.0,0\.0,0\.0,2,google\.com yahoo\.example,outside IP: 25 failing messages as you$'
  has_line "csv unflagged row" "$out" '^198\.51\.100\.10,,40,75\.0,75\.0,0\.0,1,google\.com,$'
  [ "$(wc -l <<<"$out")" = 6 ] || fail "csv: $(wc -l <<<"$out") lines, want 6"
fi
expect 1 "report table" -- r report dmarc && contains "table flags egress" "$out" "! egress below 95% pass"
# Only the last day: set B, nothing flagged.
if expect 0 "report, last day" -- r report dmarc --days 1 --format json; then
  check "last day: rows" '[(r["source_ip"], r["messages"], r["dmarc_pass_percent"], r["flag"]) for r in rows]' \
    "[('192.0.2.50', 12, 16.7, None), ('192.0.2.51', 3, 100.0, None)]"
  check "last day: nothing flagged" '(summary["flagged"], summary["arrival"])' "(0, None)"
fi
# Reports stop arriving: the last stored 5 days ago.
last=$(($(date +%s) - 5 * 86400 - 60))
sql "UPDATE dmarc_report SET ingested_at = $last"
if expect 1 "report, no arrivals" -- r report dmarc --days 1 --format json; then
  check "no arrivals: flag" 'summary["arrival"]' "no DMARC report stored for 5 days (the last on $(date -u -d "@$last" +%Y-%m-%dT%H:%M:%SZ))"
  check "no arrivals: only that" '(summary["flagged"], [r["flag"] for r in rows])' "(1, [None, None])"
fi

# --- the shared corpus, read in place, when present --------------------------------------------------
if [ -d "$corpus" ]; then
  before=$(totals | tr '\n' ' ')
  expect 65 "corpus dry run" -- r dmarc ingest --dry-run --format json "$corpus" &&
    check "corpus dry run: reports found" 'summary["reports"] > 0 and summary["unreadable"] == 0' True
  [ "$(totals | tr '\n' ' ')" = "$before" ] || fail "corpus dry run changed the store"
  if expect 65 "corpus ingest" -- r dmarc ingest --format json "$corpus"; then
    found=$(pyq 'summary["reports"]')
    after=$(totals | tr '\n' ' ')
    expect 65 "corpus re-ingest" -- r dmarc ingest --format json "$corpus" &&
      check "corpus re-ingest: all duplicates" '(summary["stored"], summary["duplicate"])' "(0, $found)"
    [ "$(totals | tr '\n' ' ')" = "$after" ] || fail "corpus re-ingest changed the store"
  fi
else
  echo "dmarc cli: $corpus absent; the shared-corpus checks are skipped"
fi

cli_finish
