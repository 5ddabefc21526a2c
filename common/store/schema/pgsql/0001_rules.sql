-- 0001: rule tables (DESIGN.md "Rule tables"). Lists of simple values (ports, CIDRs, domains)
-- are stored newline-separated in one TEXT column: validation forbids whitespace inside them.
-- `position` keeps the applied order (stream resolution breaks ties by it).
CREATE TABLE rules_version (
  id BIGINT PRIMARY KEY CHECK (id = 1),
  version BIGINT NOT NULL,
  applied_at TEXT NOT NULL,
  note TEXT NOT NULL
);
INSERT INTO rules_version (id, version, applied_at, note) VALUES (1, 0, '', '');

CREATE TABLE streams (
  name TEXT PRIMARY KEY,
  position BIGINT NOT NULL,
  ports TEXT NOT NULL,
  clients TEXT NOT NULL,
  senders TEXT NOT NULL,
  sasl_users TEXT NOT NULL,
  transport TEXT NOT NULL,
  egress_ip TEXT NOT NULL,
  from_domains TEXT NOT NULL,
  warmup_start TEXT,
  warmup_count TEXT,
  warmup_ramp TEXT,
  warmup_min_daily BIGINT,
  daily_ceiling BIGINT,
  over_cap TEXT NOT NULL,
  hygiene TEXT NOT NULL,
  origin TEXT NOT NULL
);

CREATE TABLE ramps (
  name TEXT PRIMARY KEY,
  position BIGINT NOT NULL,
  origin TEXT NOT NULL
);
CREATE TABLE ramp_steps (
  ramp TEXT NOT NULL REFERENCES ramps (name) ON DELETE CASCADE,
  day BIGINT NOT NULL,
  hourly BIGINT NOT NULL,
  PRIMARY KEY (ramp, day)
);

CREATE TABLE operators (
  name TEXT PRIMARY KEY,
  position BIGINT NOT NULL,
  origin TEXT NOT NULL
);
CREATE TABLE operator_mx (
  suffix TEXT PRIMARY KEY,
  operator TEXT NOT NULL REFERENCES operators (name) ON DELETE CASCADE,
  position BIGINT NOT NULL
);

CREATE TABLE caps (
  stream TEXT NOT NULL,
  operator TEXT NOT NULL,
  position BIGINT NOT NULL,
  daily BIGINT NOT NULL,
  until_day BIGINT,
  origin TEXT NOT NULL,
  PRIMARY KEY (stream, operator)
);

-- source: file (rules apply replaces these wholesale) | bounce | cli (kept across applies).
CREATE TABLE exclusions (
  category TEXT PRIMARY KEY,
  position BIGINT NOT NULL,
  action TEXT,
  streams TEXT,
  status TEXT,
  source TEXT NOT NULL CHECK (source IN ('file', 'bounce', 'cli')),
  origin TEXT NOT NULL
);
CREATE TABLE exclusion_entries (
  category TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('domain', 'address')),
  value TEXT NOT NULL,
  position BIGINT NOT NULL,
  source TEXT NOT NULL CHECK (source IN ('file', 'bounce', 'cli')),
  expires_at TEXT,
  created_at TEXT NOT NULL,
  PRIMARY KEY (category, kind, value)
);
CREATE INDEX exclusion_entries_source ON exclusion_entries (source);
