// What `rampart classify` stores (issue 5 points 5-7): reputation aggregates per (UTC day,
// stream, egress IP, operator, outcome, category, enhanced status), delivery anomalies, the
// per-domain tally that dead-domain suppression reads, and the cursor that makes re-runs
// idempotent. Plain data shared by the pure engine (sidecar/maillog) and the store. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/rules.hpp"

namespace rampart::core {

// One aggregate row's identity. Empty stream/egress_ip/operator mean "not attributed": a delivery
// through a transport that is no stream's, an operator no [[operator]] suffix names.
struct AggregateKey {
  std::int64_t day = 0;  // UTC day number (core::day_of)
  std::string stream;
  std::string egress_ip;
  std::string op;
  Outcome outcome = Outcome::DeferredOther;
  std::string category;
  std::string status;  // enhanced status ("5.1.1"), "" when neither the reply nor dsn= had one
  friend bool operator==(const AggregateKey&, const AggregateKey&) = default;
  friend auto operator<=>(const AggregateKey&, const AggregateKey&) = default;
};

struct Aggregate {
  AggregateKey key;
  std::int64_t count = 0;
  std::string sample;  // one reply text (the first seen), at most kSampleMax bytes
  friend bool operator==(const Aggregate&, const Aggregate&) = default;
};
constexpr std::size_t kSampleMax = 512;

// Anomaly kinds (stored as these words).
enum class AnomalyKind : std::uint8_t {
  BindFailure,       // `bind ADDR: Cannot assign requested address` (incident 10)
  UnexpectedEgress,  // delivered from an address that is no stream's egress_ip
  Unsigned,          // a stream's delivered message with no OpenDKIM signature line (incident 5)
  ZeroDeliveries,    // a stream delivered nothing on a day after a day it delivered
};
std::string_view to_string(AnomalyKind k);
std::optional<AnomalyKind> parse_anomaly_kind(std::string_view s);

// One anomaly. (kind, day, stream, subject) is its identity: the store adds the counts of
// batches (each line is read once, by the cursors) and keeps the first row's time and detail.
struct Anomaly {
  AnomalyKind kind = AnomalyKind::BindFailure;
  std::int64_t day = 0;    // UTC day number of the first occurrence
  std::string stream;      // "" when not attributable
  std::string subject;     // the address (bind, egress) or the queue id (unsigned) or the day
  std::int64_t first = 0;  // unix time of the first occurrence
  std::int64_t count = 1;  // occurrences in what was read
  std::string detail;      // one human sentence, e.g. the log line's reason
  friend bool operator==(const Anomaly&, const Anomaly&) = default;
};

// Replies that count towards suppressing a recipient domain (a [[classify]] rule with
// suppress = "domain"), per UTC day.
struct DomainHit {
  std::string domain;
  std::int64_t day = 0;
  std::int64_t count = 0;
  friend bool operator==(const DomainHit&, const DomainHit&) = default;
};

// Where reading a log stopped. `identity` names the content, not the path: a hash of the file's
// first line, so a renamed (rotated) or compressed copy is the same file and a truncated or new
// one is not. `offset` is in bytes of the (decompressed) content, always at a line start.
struct Cursor {
  std::string identity;
  std::int64_t offset = 0;
  std::string path;          // the path it was last read from (informative)
  std::int64_t updated = 0;  // unix time
  friend bool operator==(const Cursor&, const Cursor&) = default;
};

// A suppression `rampart classify` adds (exclusion entry with source `bounce`).
struct Suppression {
  std::string value;         // an address or a domain, lower case
  bool domain = false;       // false: address
  std::int64_t expires = 0;  // unix time; 0 = never
  std::string reason;        // "550 5.1.1 ... (rule unknown-mailbox)"
  friend bool operator==(const Suppression&, const Suppression&) = default;
};

}  // namespace rampart::core
