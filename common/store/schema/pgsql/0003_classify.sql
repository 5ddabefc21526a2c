-- 0003: the reply classification table ([[classify]], issue 5 point 4). First match in
-- `position` order wins. dsn/operator are '' when the rule does not restrict them; suppress and
-- backoff are NULL when unset; tests holds the rule's test lines newline-separated (validation
-- forbids newlines inside a line). File rules only: `rules apply` replaces them wholesale.
CREATE TABLE classify_rules (
  id TEXT PRIMARY KEY,
  position BIGINT NOT NULL,
  reply TEXT NOT NULL,
  dsn TEXT NOT NULL,
  operator TEXT NOT NULL,
  outcome TEXT NOT NULL,
  category TEXT NOT NULL,
  suppress TEXT,
  backoff TEXT,
  tests TEXT NOT NULL,
  origin TEXT NOT NULL
);
