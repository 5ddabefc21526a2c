// The store: one logical schema behind one narrow interface, two engines (SQLite for one host,
// PostgreSQL for several). Every method catches its engine's exceptions and returns Errc:
// Temporary = unreachable/busy (retry), Config = wrong URL or schema, Internal = a bug.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "core/rules.hpp"

namespace rampart::store {

struct OpenOptions {
  std::chrono::milliseconds connect_timeout{5000};  // PostgreSQL connect
  std::chrono::milliseconds busy_timeout{5000};     // SQLite lock wait
};

struct RulesVersion {
  std::int64_t version = 0;  // bumped by every apply; 0 = never applied
  std::string applied_at;    // UTC, ISO 8601; empty when never applied
  std::string note;          // what was applied (file names)
};

class Store {
 public:
  virtual ~Store() = default;
  virtual std::string_view engine() const = 0;  // "sqlite" | "postgresql"

  // Applies every numbered migration newer than the database's; returns the version now.
  [[nodiscard]] virtual Result<int> migrate() = 0;
  // 0 for an empty database.
  [[nodiscard]] virtual Result<int> schema_version() = 0;

  [[nodiscard]] virtual Result<RulesVersion> rules_version() = 0;
  // Replaces every file-sourced rule with `spec` (validated by the caller) in one transaction and
  // bumps rules_version; entries the system added (bounce/cli suppressions) are kept. On any
  // error nothing changes.
  [[nodiscard]] virtual Result<RulesVersion> apply_rules(const core::RulesSpec& spec,
                                                         std::string_view note) = 0;
  // The whole rule set, in the order it was applied; origins say where each entry came from.
  [[nodiscard]] virtual Result<core::RulesSpec> load_rules() = 0;
};

// The schema version this build knows (the newest migration it carries).
int latest_schema_version();

// `sqlite:///abs/path.db`, `sqlite://relative.db`, `sqlite://:memory:`, or
// `postgresql://...` / `postgres://...` (a libpq URI). Creates nothing but the SQLite file.
[[nodiscard]] Result<std::unique_ptr<Store>> open(std::string_view url,
                                                  const OpenOptions& options = {});

}  // namespace rampart::store
