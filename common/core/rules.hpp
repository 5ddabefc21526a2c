// The rules language as data: what a rules file (or the store) says, before compilation.
// Pure; no I/O. Field names follow DESIGN.md ("Rule tables: the one language"); the TOML reader
// lives in common/rules, the compiled matchers in ruleset.hpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace rampart::core {

// Where an entry came from, so every error and `rules list` can name file:line.
struct Origin {
  std::string file;  // rules file path, or "store" / "bounce" / "cli" for system entries
  int line = 0;      // line of the [[table]] header; 0 when unknown
  // Lines of individual keys within the entry, for errors that name a key.
  std::vector<std::pair<std::string, int>> key_lines;

  int line_of(std::string_view key) const;
  std::string where() const;                      // "file:line" or "file"
  std::string where(std::string_view key) const;  // "file:<line of key>"
};

enum class OverCap : std::uint8_t {
  Defer,  // policyd answers DEFER_IF_PERMIT 4.7.1 naming the limit
  Hold,   // policyd answers HOLD; `rampart release` drains as budget reopens
};
enum class Hygiene : std::uint8_t {
  Warn,    // log + X-Rampart-Warning header
  Refuse,  // refuse the message (5.x.x)
};
enum class WarmupCount : std::uint8_t {
  Calendar,  // warm-up day = whole UTC days since start
  SendDays,  // warm-up day = earlier days on which the stream reached min_daily accepted recipients
};
enum class ExclusionAction : std::uint8_t {
  Reject,   // 5xx at RCPT naming the category
  Hold,     // message to the hold queue (smfi_quarantine at end of message)
  Discard,  // recipient silently dropped by Postfix (DISCARD), logged by rampart
};

// What a delivery attempt's reply means for reputation ([[classify]] rules, issue 5 point 4).
// Each value is one aggregate bucket of `rampart classify`; the loop-closing work reads them.
enum class Outcome : std::uint8_t {
  Accepted,          // 2xx: the operator took the message
  Throttled,         // 4xx rate/volume deferral (Microsoft 4.7.500, Yahoo TSS04): slow down
  DeferredOther,     // any other temporary failure (timeouts, greylisting, dead tenants)
  RejectReputation,  // 5xx (or 4xx blocklist) because of the sending IP/domain's reputation
  RejectContent,     // refused for what the message says (spam/virus/content filters)
  RejectRecipient,   // the recipient or its domain does not exist or cannot receive
  RejectPolicy,      // refused by a stated policy not about reputation (auth, DMARC, size)
  RejectOther,       // any other permanent failure
};
// Loop-closing hints a [[classify]] rule may carry (issue 5 point 6 acts on them).
enum class SuppressScope : std::uint8_t {
  Address,  // suppress the recipient address
  Domain,   // suppress the recipient domain (after the configured repeats)
};
enum class BackoffHint : std::uint8_t {
  Slow,   // counts towards the operator's throttled/reputation share (back-off when it crosses)
  Pause,  // pause the operator for the stream at once (Yahoo [TSS04])
};

std::string_view to_string(OverCap);
std::string_view to_string(Hygiene);
std::string_view to_string(WarmupCount);
std::string_view to_string(ExclusionAction);
std::string_view to_string(Outcome);
std::string_view to_string(SuppressScope);
std::string_view to_string(BackoffHint);
std::optional<OverCap> parse_over_cap(std::string_view);
std::optional<Outcome> parse_outcome(std::string_view);
std::optional<SuppressScope> parse_suppress_scope(std::string_view);
std::optional<BackoffHint> parse_backoff_hint(std::string_view);
std::optional<Hygiene> parse_hygiene(std::string_view);
std::optional<WarmupCount> parse_warmup_count(std::string_view);
std::optional<ExclusionAction> parse_exclusion_action(std::string_view);

// A calendar date (UTC), days since 1970-01-01 internally.
struct Date {
  std::int32_t days = 0;
  static std::optional<Date> parse(std::string_view yyyy_mm_dd);
  std::string str() const;  // YYYY-MM-DD
  friend bool operator==(Date, Date) = default;
};

struct Warmup {
  Date start;
  WarmupCount count = WarmupCount::SendDays;
  std::string ramp;             // name of a [[ramp]]
  std::int64_t min_daily = 50;  // send-days only: accepted recipients that make a day count
  bool operator==(const Warmup&) const = default;
};

struct StreamSpec {
  std::string name;                       // unique; the rule id
  std::vector<std::int64_t> ports;        // smtpd ports ({daemon_port}, policy server_port)
  std::vector<std::string> clients;       // client CIDRs (v4/v6)
  std::vector<std::string> senders;       // "@domain" (and subdomains) or exact "user@domain"
  std::vector<std::string> sasl_users;    // SASL login names ({auth_authen}, sasl_username)
  std::string transport;                  // master.cf service the stream egresses through
  std::string egress_ip;                  // the address that service binds
  std::vector<std::string> from_domains;  // From: header domains allowed in this stream
  std::optional<Warmup> warmup;
  std::optional<std::int64_t> daily_ceiling;
  OverCap over_cap = OverCap::Defer;
  Hygiene hygiene = Hygiene::Warn;
  Origin origin;
  bool operator==(const StreamSpec& o) const;  // ignores origin
};

struct RampStep {
  std::int64_t day = 0;     // warm-up day this step starts on
  std::int64_t hourly = 0;  // accepted recipients per sliding hour
  bool operator==(const RampStep&) const = default;
};

struct RampSpec {
  std::string name;
  std::vector<RampStep> steps;  // strictly increasing day, first day 0
  Origin origin;
  bool operator==(const RampSpec& o) const;
};

struct OperatorSpec {
  std::string name;
  std::vector<std::string> mx;  // ".suffix" = hosts under it; "host" = that host and hosts under it
  Origin origin;
  bool operator==(const OperatorSpec& o) const;
};

struct CapSpec {
  std::string stream;
  std::string op;                         // operator name ("operator" in TOML)
  std::int64_t daily = 0;                 // 0 = gated out
  std::optional<std::int64_t> until_day;  // the cap stops applying at this warm-up day
  Origin origin;
  std::string id() const;  // "<stream>/<operator>"
  bool operator==(const CapSpec& o) const;
};

struct ExclusionSpec {
  std::string category;                   // the rule id; same category merges across files
  std::optional<ExclusionAction> action;  // unset: not given by any file (defaults to reject)
  std::optional<std::vector<std::string>> streams;  // unset: not given; [] = no stream; "*" = all
  std::optional<std::string> status;                // enhanced status for reject; unset: 5.7.1
  std::vector<std::string> domains;
  std::vector<std::string> addresses;
  Origin origin;
  ExclusionAction effective_action() const { return action.value_or(ExclusionAction::Reject); }
  std::string_view effective_status() const { return status ? std::string_view(*status) : "5.7.1"; }
  bool operator==(const ExclusionSpec& o) const;
};

// One row of the reply classification table ([[classify]]): first match in order wins
// (core/classify.hpp compiles the table).
struct ClassifySpec {
  std::string id;     // stable kebab-case rule id, logged and counted
  std::string reply;  // RE2, unanchored, case-insensitive, against the reply text
  std::string dsn;    // "" = any; else a glob on the enhanced status: "5.1.1", "5.7.*", "4.*"
  std::string op;     // "" = any operator; else an [[operator]] name ("operator" in TOML)
  Outcome outcome = Outcome::RejectOther;
  std::string category;  // de-facto bounce category: bad-mailbox, quota-issues, ...
  std::optional<SuppressScope> suppress;
  std::optional<BackoffHint> backoff;
  // Reply lines that must hit this rule first ("no dead rules"). A line may start with
  // "dsn=X.Y.Z " to give the dsn Postfix logged (connection errors carry no reply code).
  std::vector<std::string> tests;
  Origin origin;
  bool operator==(const ClassifySpec& o) const;  // ignores origin
};

// What `rampart classify` does with what it classified ([feedback], issue 5 point 6): the
// thresholds of loop closing. One table per rule set (a later file's table replaces an earlier
// one whole: keys it leaves out take the defaults here, not the earlier file's values); every
// key is optional and defaults to the value here. Ranges (core::validate): expiry days >= 0
// (0 = never expires); domain_replies, domain_days, backoff_min_attempts, backoff_hours and
// pause_hours >= 1; the two percents 1..100; category as an [[exclusion]] category name.
struct FeedbackSpec {
  // The exclusion category bounce suppressions go into (created with action reject, all
  // streams, when no rules file defines it; a file that does sets its action/status/streams).
  std::string category = "bounces";
  bool suppress_addresses = true;        // suppress = "address" replies suppress the recipient
  std::int64_t address_expiry_days = 0;  // 0 = the address stays suppressed
  bool suppress_domains = true;          // suppress = "domain" replies count towards ...
  std::int64_t domain_replies = 3;       // ... this many of them (any recipients) ...
  std::int64_t domain_days = 7;          // ... within this many UTC days suppress the domain
  std::int64_t domain_expiry_days = 90;  // 0 = never expires
  // Back-off when throttled + reject_reputation reach this share of a stream's attempts to an
  // operator on one UTC day, counted once there were at least backoff_min_attempts attempts.
  bool backoff = true;
  std::int64_t backoff_percent = 20;  // 1..100
  std::int64_t backoff_min_attempts = 50;
  std::int64_t backoff_factor_percent = 50;  // the operator's budget while backed off, 1..100
  std::int64_t backoff_hours = 24;           // from the moment the share crossed
  bool pause = true;                         // backoff = "pause" replies ([TSS04]) ...
  std::int64_t pause_hours = 24;             // ... pause the operator for the stream this long
  Origin origin;
  bool operator==(const FeedbackSpec& o) const;  // ignores origin
};

// A whole rule set as written. Order is kept (it is the tie-break for stream resolution).
struct RulesSpec {
  std::vector<StreamSpec> streams;
  std::vector<RampSpec> ramps;
  std::vector<OperatorSpec> operators;
  std::vector<CapSpec> caps;
  std::vector<ExclusionSpec> exclusions;
  std::vector<ClassifySpec> classify;    // order is the match order
  std::optional<FeedbackSpec> feedback;  // unset: no file has a [feedback] table (defaults)
  FeedbackSpec effective_feedback() const { return feedback.value_or(FeedbackSpec{}); }
  bool operator==(const RulesSpec&) const = default;
};

// Adds `next` into `into` with the merge rules of DESIGN.md: exclusions with the same category
// merge (domains/addresses add up, streams/action/status from the later entry that sets them);
// any other duplicate name (and a duplicate classify id) is an error naming both places;
// classify rules keep file order (first match wins); a later [feedback] replaces an earlier one.
[[nodiscard]] Result<void> merge_into(RulesSpec& into, RulesSpec next);

// How much of the classify table validate() checks.
enum class ClassifyCheck : std::uint8_t {
  // Its patterns compile and every test line hits its own rule first: rule files on their way in
  // (`rules check`, `rules apply`).
  Full,
  // Names, references and dsn globs only: rules read back from the store, which were fully
  // checked when they were applied. Compiling some sixty patterns twice and running their test
  // lines cost each daemon reload and each sidecar command about 5 ms; the one program that
  // classifies (`rampart classify`) compiles the patterns itself and reports a bad one.
  Structure,
};

// Normalises and checks a whole rule set: names, references between tables, CIDRs, ramps, status
// codes, addresses, classify patterns and their test lines (each must hit its own rule first;
// only the structure with ClassifyCheck::Structure), [feedback] ranges.
// Errors are Errc::Config and name file:line and the key. Normalises domains
// (lower case, no trailing dot) and removes duplicate domains/addresses in place.
[[nodiscard]] Result<void> validate(RulesSpec& spec, ClassifyCheck classify = ClassifyCheck::Full);

// Things that are valid but probably not what the operator meant, worded like errors
// (`file:line: kind "name": ...`): an exclusion enabled for streams but listing nothing (the
// shipped lists were not included; not said of the [feedback] category, which classify fills),
// the [feedback] category defined but applied to no stream (suppressions would not be enforced),
// a stream with no transport (its mail is not pinned).
std::vector<std::string> lint(const RulesSpec& spec);

}  // namespace rampart::core
