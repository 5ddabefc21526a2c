-- 0005: DMARC aggregate reports (issue 6; core/dmarc.hpp), as `rampart dmarc` stores them. Times
-- are unix seconds (UTC). Text the report leaves out is stored as '' (core/dmarc.hpp: empty =
-- absent); only pct, a number, is NULL when absent.
--
-- Lists (errors, reasons, auth) are one line per item, each line ending in "\n"; an item's fields
-- are separated by "\t"; inside a field "\" is written "\\", a tab "\t" and a newline "\n"
-- (backslash + letter). '' is the empty list. store.cpp (encode_lines/decode_lines) reads and
-- writes this form:
--   errors   one field per line: the error text
--   reasons  type \t comment
--   auth     method \t domain \t selector \t scope \t result \t human_result

-- One report, identified by who sent it and what it covers: the same report id from another
-- org, for another policy domain or another date range is another report.
CREATE TABLE dmarc_report (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  org_name TEXT NOT NULL,
  report_id TEXT NOT NULL,
  policy_domain TEXT NOT NULL,
  begin_at INTEGER NOT NULL,
  end_at INTEGER NOT NULL,
  email TEXT NOT NULL,
  extra_contact_info TEXT NOT NULL,
  version TEXT NOT NULL,
  dmarcbis INTEGER NOT NULL,        -- 0/1: the DMARCbis namespace was declared
  adkim TEXT NOT NULL,
  aspf TEXT NOT NULL,
  p TEXT NOT NULL,
  sp TEXT NOT NULL,
  np TEXT NOT NULL,
  pct INTEGER,
  fo TEXT NOT NULL,
  testing TEXT NOT NULL,
  discovery_method TEXT NOT NULL,
  errors TEXT NOT NULL,             -- <report_metadata><error>, in the list form above
  records INTEGER NOT NULL,         -- rows in dmarc_record
  messages INTEGER NOT NULL,        -- sum of their counts
  pass_messages INTEGER NOT NULL,   -- of those, DMARC passes (policy-evaluated DKIM or SPF)
  source TEXT NOT NULL,             -- where it came from: a path, "imap INBOX uid 42"
  ingested_at INTEGER NOT NULL,
  UNIQUE (org_name, report_id, policy_domain, begin_at, end_at)
);
CREATE INDEX dmarc_report_end ON dmarc_report (end_at);

-- The report's <record>s in document order (position 1..n).
CREATE TABLE dmarc_record (
  report INTEGER NOT NULL REFERENCES dmarc_report (id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  source_ip TEXT NOT NULL,
  count INTEGER NOT NULL,
  disposition TEXT NOT NULL,
  dkim TEXT NOT NULL,               -- policy-evaluated (aligned) result
  spf TEXT NOT NULL,
  header_from TEXT NOT NULL,
  envelope_from TEXT NOT NULL,
  envelope_to TEXT NOT NULL,
  reasons TEXT NOT NULL,            -- list form above
  auth TEXT NOT NULL,               -- list form above, <dkim> and <spf> in document order
  PRIMARY KEY (report, position)
);
-- No index on source_ip: the views aggregate by report period (dmarc_report_end), and a second
-- B-tree written in random order per record costs ingest about 40% of its time.
