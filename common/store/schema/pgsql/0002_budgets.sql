-- 0002: budget counters, leases and back-offs (DESIGN.md "rampart-policyd"; core/limits.hpp).
-- Times are unix seconds (UTC). counters.bucket is the UTC day number for day scopes
-- ("day:<stream>", "op:<stream>/<operator>") and the minute number for the hour scope
-- ("hour:<stream>"), whose rows `rampart` prunes once they left every window.
CREATE TABLE counters (
  scope TEXT NOT NULL,
  bucket BIGINT NOT NULL,
  used BIGINT NOT NULL,
  PRIMARY KEY (scope, bucket)
);

-- Budget a host took from a counter and may still hand back; a lease past expires_at that was
-- never returned is swept and its units stay charged (a crashed host forfeits them).
CREATE TABLE leases (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  host TEXT NOT NULL,
  scope TEXT NOT NULL,
  bucket BIGINT NOT NULL,
  units BIGINT NOT NULL CHECK (units >= 0),
  expires_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX leases_expires_at ON leases (expires_at);

-- One back-off per stream x operator: the operator's budget times permille/1000 (0 = pause)
-- while now < until_at. source: cli (rampart backoff set) | classify.
CREATE TABLE backoffs (
  stream TEXT NOT NULL,
  operator TEXT NOT NULL,
  permille INTEGER NOT NULL CHECK (permille BETWEEN 0 AND 1000),
  until_at BIGINT NOT NULL,
  reason TEXT NOT NULL,
  source TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (stream, operator)
);
