-- 0004: what `rampart classify` stores (issue 5 points 5-7; core/reputation.hpp) and the
-- [feedback] table of the rules. Times are unix seconds (UTC), days UTC day numbers. Key columns
-- hold '' for "not attributed", never NULL, so the primary keys make rows unique.

-- Where reading a log stopped, by content identity (the hash of its first line).
CREATE TABLE classify_cursors (
  identity TEXT PRIMARY KEY,
  byte_offset BIGINT NOT NULL CHECK (byte_offset >= 0),
  path TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);

-- Reputation aggregates: counts per UTC day x stream x egress IP x operator x outcome x category
-- x enhanced status; `sample` is the first reply text seen for the row (later adds keep it).
CREATE TABLE reputation (
  day BIGINT NOT NULL,
  stream TEXT NOT NULL,
  egress_ip TEXT NOT NULL,
  operator TEXT NOT NULL,
  outcome TEXT NOT NULL,
  category TEXT NOT NULL,
  status TEXT NOT NULL,
  count BIGINT NOT NULL,
  sample TEXT NOT NULL,
  PRIMARY KEY (day, stream, egress_ip, operator, outcome, category, status)
);

-- Replies that count towards suppressing a recipient domain, per UTC day.
CREATE TABLE domain_hits (
  domain TEXT NOT NULL,
  day BIGINT NOT NULL,
  count BIGINT NOT NULL,
  PRIMARY KEY (domain, day)
);
CREATE INDEX domain_hits_day ON domain_hits (day);

-- Delivery anomalies; (kind, day, stream, subject) is the identity of one.
CREATE TABLE anomalies (
  kind TEXT NOT NULL,
  day BIGINT NOT NULL,
  stream TEXT NOT NULL,
  subject TEXT NOT NULL,
  first_at BIGINT NOT NULL,
  count BIGINT NOT NULL,
  detail TEXT NOT NULL,
  PRIMARY KEY (kind, day, stream, subject)
);
CREATE INDEX anomalies_day ON anomalies (day);

-- The [feedback] table of the applied rules (core::FeedbackSpec): at most one row; no row means
-- no file had one (RulesSpec::feedback unset). Booleans are 0/1. File rules: apply replaces it.
CREATE TABLE feedback (
  id BIGINT PRIMARY KEY CHECK (id = 1),
  category TEXT NOT NULL,
  suppress_addresses INTEGER NOT NULL,
  address_expiry_days BIGINT NOT NULL,
  suppress_domains INTEGER NOT NULL,
  domain_replies BIGINT NOT NULL,
  domain_days BIGINT NOT NULL,
  domain_expiry_days BIGINT NOT NULL,
  backoff INTEGER NOT NULL,
  backoff_percent BIGINT NOT NULL,
  backoff_min_attempts BIGINT NOT NULL,
  backoff_factor_percent BIGINT NOT NULL,
  backoff_hours BIGINT NOT NULL,
  pause INTEGER NOT NULL,
  pause_hours BIGINT NOT NULL,
  origin TEXT NOT NULL
);
