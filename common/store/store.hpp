// The store: one logical schema behind one narrow interface, two engines (SQLite for one host,
// PostgreSQL for several). Every method catches its engine's exceptions and returns Errc:
// Temporary = unreachable/busy (retry), Config = wrong URL or schema, Internal = a bug.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dmarc.hpp"
#include "core/limits.hpp"
#include "core/reputation.hpp"
#include "core/result.hpp"
#include "core/rules.hpp"
#include "core/ruleset.hpp"

namespace rampart::store {

struct OpenOptions {
  std::chrono::milliseconds connect_timeout{5000};  // PostgreSQL connect
  std::chrono::milliseconds busy_timeout{5000};     // SQLite lock wait
};

// One lease of budget from a shared counter (core/limits.hpp explains scopes and buckets).
struct LeaseRequest {
  std::string scope;        // core::Scope::key()
  bool hourly = false;      // sliding-hour scope (minute buckets) or a day scope
  std::int64_t bucket = 0;  // core::Scope::charge_bucket(now, expires)
  std::int64_t limit = 0;   // the limit in force, as the caller computed it from the rules
  std::int64_t want = 0;    // units asked for (core::lease_block)
  core::UnixTime now = 0;
  core::UnixTime expires = 0;  // the lease may be spent until then
  std::string host;            // [policyd] host_id
};
struct LeaseGrant {
  std::int64_t id = 0;               // lease row id (0 when nothing was granted)
  std::int64_t granted = 0;          // 0..want
  std::int64_t used = 0;             // the scope's use after the grant (window or day)
  std::vector<core::Bucket> window;  // hourly only: live minute buckets after the grant
};
struct LeaseRow {
  std::int64_t id = 0;
  std::string host;
  std::string scope;
  std::int64_t bucket = 0;
  std::int64_t units = 0;  // granted and not handed back (spent or still held)
  core::UnixTime expires = 0;
};
struct CounterRow {
  std::string scope;
  std::int64_t bucket = 0;
  std::int64_t used = 0;
};

// What one `rampart classify` pass read from one log, committed in one transaction with its
// cursor (commit_classify): all of it or nothing, so a kill -9 mid-run leaves the store as it was.
struct ClassifyBatch {
  // The cursor before (offset 0 and no row: a file never read) and after this batch.
  std::string identity;
  std::int64_t from_offset = 0;
  std::int64_t to_offset = 0;
  std::string path;
  std::vector<core::Aggregate> aggregates;   // counts to ADD to the stored rows
  std::vector<core::DomainHit> domain_hits;  // counts to ADD
  // New rows; a known (kind, day, stream, subject) adds count and keeps its detail and the
  // earlier first.
  std::vector<core::Anomaly> anomalies;
};

// `rampart report dmarc`: one source IP over the reports in a period.
struct DmarcSourceRow {
  std::string source_ip;
  std::int64_t messages = 0;
  std::int64_t dmarc_pass = 0;         // messages whose policy-evaluated DKIM or SPF passed
  std::int64_t dkim_aligned = 0;       // messages whose policy-evaluated DKIM passed
  std::int64_t spf_aligned = 0;        // messages whose policy-evaluated SPF passed
  std::int64_t reports = 0;            // distinct reports naming the IP
  std::vector<std::string> reporters;  // distinct org names, sorted
  std::vector<std::string> domains;    // distinct header_from domains, sorted
};

// What is known about DMARC report arrival (the "no report for N days" alarm).
struct DmarcArrival {
  std::int64_t reports = 0;                     // stored reports
  std::optional<core::UnixTime> last_ingested;  // when the newest was stored
  std::optional<core::UnixTime> last_end;       // the latest end of a report's date range
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

  // Budget counters (rampart-policyd, rampart release, rampart caps). Each call is one
  // transaction; concurrent callers on any number of hosts never grant past `limit` together.
  // Charges `granted` units to (scope, bucket) and records the lease.
  [[nodiscard]] virtual Result<LeaseGrant> lease(const LeaseRequest& request) = 0;
  // Hands back `unused` units of a lease (subtracted from its counter row) and forgets the lease.
  // An unknown id (already returned, or expired and swept) changes nothing.
  [[nodiscard]] virtual Result<void> return_lease(std::int64_t id, std::int64_t unused) = 0;
  // Takes `units` back off the counter row (scope, bucket), never below 0, whatever lease they
  // came from: units charged for a message that then went to the hold queue (rampart release
  // charges them again). A missing row changes nothing.
  [[nodiscard]] virtual Result<void> uncharge(std::string_view scope, std::int64_t bucket,
                                              std::int64_t units) = 0;
  // Forgets leases that expired before `before` without being returned (a crashed host): their
  // units stay charged (forfeited). Returns how many were swept.
  [[nodiscard]] virtual Result<std::int64_t> sweep_leases(core::UnixTime before) = 0;
  [[nodiscard]] virtual Result<std::vector<LeaseRow>> leases() = 0;
  // Counter rows whose scope starts with `scope_prefix` ("" = all) and bucket >= min_bucket.
  [[nodiscard]] virtual Result<std::vector<CounterRow>> counters(std::string_view scope_prefix,
                                                                 std::int64_t min_bucket) = 0;
  // Day counts of one day scope ("day:<stream>"), for send-days warm-up.
  [[nodiscard]] virtual Result<std::vector<core::DayCount>> day_history(std::string_view scope) = 0;
  // Deletes minute buckets that left every window before `now` (hour scopes only).
  [[nodiscard]] virtual Result<std::int64_t> prune_counters(core::UnixTime now) = 0;

  // Back-offs, keyed by (stream, operator): set replaces, clear removes (false: there was none).
  // A permille outside 0..1000 is the caller's bug: Errc::Internal, nothing stored.
  [[nodiscard]] virtual Result<void> set_backoff(const core::Backoff& backoff) = 0;
  [[nodiscard]] virtual Result<bool> clear_backoff(std::string_view stream,
                                                   std::string_view op) = 0;
  // Back-offs still active at `now` (until > now); every stored one when now is 0.
  [[nodiscard]] virtual Result<std::vector<core::Backoff>> backoffs(core::UnixTime now) = 0;

  // `rampart classify` (issue 5). The cursor of a log by content identity; nullopt: never read.
  [[nodiscard]] virtual Result<std::optional<core::Cursor>> cursor(std::string_view identity) = 0;
  // Every stored cursor, newest first.
  [[nodiscard]] virtual Result<std::vector<core::Cursor>> cursors() = 0;
  // In one transaction: checks the stored cursor of batch.identity is still at from_offset (no
  // row counts as 0), adds the aggregates (count += n; the first sample stays), domain hits and
  // anomalies, and moves the cursor to to_offset. Returns false, changing nothing, when another
  // run moved the cursor meanwhile (the caller re-reads from the stored offset).
  [[nodiscard]] virtual Result<bool> commit_classify(const ClassifyBatch& batch) = 0;
  // Aggregate rows with from_day <= day <= to_day, ordered by day then key.
  [[nodiscard]] virtual Result<std::vector<core::Aggregate>> aggregates(std::int64_t from_day,
                                                                        std::int64_t to_day) = 0;
  // Domain hit totals per domain over from_day..to_day (count = the sum; day = the last day).
  [[nodiscard]] virtual Result<std::vector<core::DomainHit>> domain_hits(std::int64_t from_day,
                                                                         std::int64_t to_day) = 0;
  // Anomalies with day >= from_day, newest first.
  [[nodiscard]] virtual Result<std::vector<core::Anomaly>> anomalies(std::int64_t from_day) = 0;
  // Adds anomalies outside a batch (zero-delivery days found after a commit). No cursor guards
  // them, so it is idempotent by itself: a known (kind, day, stream, subject) keeps the larger
  // count (not the sum), its detail and the earlier first.
  [[nodiscard]] virtual Result<void> add_anomalies(const std::vector<core::Anomaly>& anomalies) = 0;
  // Adds suppressions as exclusion entries with source 'bounce' in exclusion `category` (created
  // with action reject, all streams, position after every file entry, origin "bounce", when it
  // does not exist) in one transaction. An entry that exists (any source) is left as it is, except
  // that a later expiry (or none) of a bounce entry extends it. Bumps rules_version (note
  // "classify: N suppressions") only when a row was added or changed, so the milter reloads.
  // Returns how many were added or changed. Values are normalised (core::normalize_address /
  // normalize_domain); one that is no valid address or domain is skipped, since it would make
  // every later load_rules fail validation. `now` stamps created_at and the version.
  [[nodiscard]] virtual Result<std::int64_t> add_suppressions(
      std::string_view category, const std::vector<core::Suppression>& suppressions,
      core::UnixTime now) = 0;

  // `rampart dmarc` (issue 6). Stores the report and its records in one transaction, keyed by
  // (org name, report id, policy domain, begin, end): false, changing nothing, when that report
  // is already stored. `source` says where it came from (a path, "imap INBOX uid 42"). A value
  // holding a NUL character (which XML cannot carry) is Errc::Invalid, nothing stored.
  [[nodiscard]] virtual Result<bool> add_dmarc_report(const core::dmarc::Report& report,
                                                      std::string_view source,
                                                      core::UnixTime now) = 0;
  // The same for many reports in one transaction (ingest throughput: one commit per report
  // rewrites the shared index pages every time): for each, true when stored, false when it was
  // already there. A report with a NUL refuses the whole batch (Errc::Invalid) before anything
  // is written; the caller then adds them one by one.
  struct DmarcNew {
    const core::dmarc::Report* report = nullptr;
    std::string_view source;
  };
  [[nodiscard]] virtual Result<std::vector<bool>> add_dmarc_reports(std::span<const DmarcNew> batch,
                                                                    core::UnixTime now) = 0;
  // Whether add_dmarc_report() would find this report already stored (dry runs).
  [[nodiscard]] virtual Result<bool> has_dmarc_report(const core::dmarc::Report& report) = 0;
  // Per source IP over the reports whose date range ends at or after `from`, by messages desc,
  // then IP (byte order). Empty org names and header_from domains (absent) are not listed.
  [[nodiscard]] virtual Result<std::vector<DmarcSourceRow>> dmarc_sources(core::UnixTime from) = 0;
  [[nodiscard]] virtual Result<DmarcArrival> dmarc_arrival() = 0;
  // Stored reports and records (tests, `db status`): {reports, records, messages}.
  [[nodiscard]] virtual Result<std::array<std::int64_t, 3>> dmarc_totals() = 0;
};

// open(), then migrate(): what a daemon does at start. The error names the step that failed.
[[nodiscard]] Result<std::unique_ptr<Store>> open_migrated(std::string_view url,
                                                           const OpenOptions& options = {});

// The rules in the store, compiled (core::RuleSet::compile, ClassifyCheck::Structure: they were
// checked in full when applied) and stamped with their rules_version: what every program serves
// or reports from.
[[nodiscard]] Result<std::shared_ptr<const core::RuleSet>> load_ruleset(Store& store);

// The schema version this build knows (the newest migration it carries).
int latest_schema_version();

// `sqlite:///abs/path.db`, `sqlite://relative.db`, `sqlite://:memory:`, or
// `postgresql://...` / `postgres://...` (a libpq URI). Creates nothing but the SQLite file.
[[nodiscard]] Result<std::unique_ptr<Store>> open(std::string_view url,
                                                  const OpenOptions& options = {});

}  // namespace rampart::store
