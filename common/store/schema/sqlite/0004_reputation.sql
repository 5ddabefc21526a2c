-- 0004: what `rampart classify` stores (issue 5 points 5-7; core/reputation.hpp) and the
-- [feedback] table of the rules. Times are unix seconds (UTC), days UTC day numbers. Key columns
-- hold '' for "not attributed", never NULL, so the primary keys make rows unique.

-- Where reading a log stopped, by content identity (the hash of its first line).
CREATE TABLE classify_cursors (
  identity TEXT PRIMARY KEY,
  byte_offset INTEGER NOT NULL CHECK (byte_offset >= 0),
  path TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);

-- Reputation aggregates: counts per UTC day x stream x egress IP x operator x outcome x category
-- x enhanced status; `sample` is the first reply text seen for the row (later adds keep it).
CREATE TABLE reputation (
  day INTEGER NOT NULL,
  stream TEXT NOT NULL,
  egress_ip TEXT NOT NULL,
  operator TEXT NOT NULL,
  outcome TEXT NOT NULL,
  category TEXT NOT NULL,
  status TEXT NOT NULL,
  count INTEGER NOT NULL,
  sample TEXT NOT NULL,
  PRIMARY KEY (day, stream, egress_ip, operator, outcome, category, status)
);

-- Replies that count towards suppressing a recipient domain, per UTC day.
CREATE TABLE domain_hits (
  domain TEXT NOT NULL,
  day INTEGER NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (domain, day)
);
CREATE INDEX domain_hits_day ON domain_hits (day);

-- Delivery anomalies; (kind, day, stream, subject) is the identity of one.
CREATE TABLE anomalies (
  kind TEXT NOT NULL,
  day INTEGER NOT NULL,
  stream TEXT NOT NULL,
  subject TEXT NOT NULL,
  first_at INTEGER NOT NULL,
  count INTEGER NOT NULL,
  detail TEXT NOT NULL,
  PRIMARY KEY (kind, day, stream, subject)
);
CREATE INDEX anomalies_day ON anomalies (day);

-- The [feedback] table of the applied rules (core::FeedbackSpec): at most one row; no row means
-- no file had one (RulesSpec::feedback unset). Booleans are 0/1. File rules: apply replaces it.
CREATE TABLE feedback (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  category TEXT NOT NULL,
  suppress_addresses INTEGER NOT NULL,
  address_expiry_days INTEGER NOT NULL,
  suppress_domains INTEGER NOT NULL,
  domain_replies INTEGER NOT NULL,
  domain_days INTEGER NOT NULL,
  domain_expiry_days INTEGER NOT NULL,
  backoff INTEGER NOT NULL,
  backoff_percent INTEGER NOT NULL,
  backoff_min_attempts INTEGER NOT NULL,
  backoff_factor_percent INTEGER NOT NULL,
  backoff_hours INTEGER NOT NULL,
  pause INTEGER NOT NULL,
  pause_hours INTEGER NOT NULL,
  origin TEXT NOT NULL
);
