// The pure half of `rampart release`: reading what Postfix says about its hold queue
// (`postqueue -j` lines, `postcat -e -h` output), finding a held message's stream, and the
// all-or-nothing budget arithmetic: what releasing one message spends per scope, and (for
// --dry-run) a ledger of the counters with pretend charges on top. Pure; no I/O, no clock.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/limits.hpp"
#include "core/result.hpp"
#include "core/ruleset.hpp"

namespace rampart::core {

// One message of `postqueue -j` (Postfix 3.1+, one JSON object per line).
struct QueuedMessage {
  std::string queue_name;  // "hold", "deferred", "active", "incoming", "maildrop"
  std::string queue_id;
  UnixTime arrival_time = 0;
  std::int64_t message_size = 0;
  std::string sender;
  std::vector<std::string> recipients;  // still to be delivered
};
// Errc::Invalid when the line is no JSON object or lacks queue_name, queue_id, arrival_time or
// the recipients array (postqueue -j's own fields; unknown fields are ignored).
[[nodiscard]] Result<QueuedMessage> parse_postqueue_line(std::string_view line);

// What `postcat -e -h` shows of a queue file: the envelope's named attributes (client_address,
// server_port, sasl_username, ... as Postfix's cleanup recorded them), the envelope sender, and
// every X-Rampart-Stream header value (folded lines joined), in header order.
struct QueueFileInfo {
  std::map<std::string, std::string, std::less<>> attributes;
  std::optional<std::string> sender;  // the `sender:` record; "" for the null sender
  std::vector<std::string> stream_headers;
};
QueueFileInfo parse_postcat(std::string_view text);

// The stream named by an X-Rampart-Stream value ("bulk transport=out05" -> "bulk"); "" for "-"
// (the milter found no stream) or an empty value.
std::string_view stream_header_name(std::string_view value);

// How a held message's stream was found, for the report.
enum class StreamSource : std::uint8_t {
  Header,    // the single X-Rampart-Stream value rampart-milter added
  Envelope,  // no usable header: resolve_stream over the queue file's envelope (server_port,
             // client_address, sender, sasl_username), as rampart-policyd resolves it
  None,      // neither names a stream in the rules
};
std::string_view to_string(StreamSource);
struct StreamFound {
  const StreamSpec* stream = nullptr;
  StreamSource source = StreamSource::None;
  std::string
      detail;  // why there is none: "X-Rampart-Stream: -", "stream \"x\" is not in the rules"
};
// The header wins when there is exactly one distinct value (the milter deletes forged ones and
// adds its own; the header is also what routes the message to the stream's transport). Several
// different values (no milter, a forging client) or none: the envelope decides.
StreamFound find_stream(const RuleSet& rules, const QueueFileInfo& info);

// One recipient of a held message and what its domain's MX lookup said.
struct ReleaseRecipient {
  std::string address;
  const OperatorSpec* op = nullptr;  // the domain's operator; nullptr when none matched or the
                                     // lookup failed and only the stream's own limits apply
  bool charged = true;  // false: the domain takes no mail (null MX, NXDOMAIN, no host); Postfix
                        // bounces it without sending anything, so it spends nothing
};

// A limit with the units one message needs from it.
struct Need {
  Limit limit;
  std::int64_t units = 0;
};
// What releasing one message of `stream` spends: every charged recipient spends one unit of each
// limit core::limits_for gives for its operator, as rampart-policyd charges an accepted recipient
// (the stream's day scope included, kNoLimit without a ceiling). One Need per scope, in first use
// order (hour, day, then operators); limits of one scope agree (same rules, history, back-offs
// and time).
std::vector<Need> release_needs(const RuleSet& rules, const StreamSpec& stream,
                                std::span<const ReleaseRecipient> recipients,
                                std::span<const DayCount> history,
                                std::span<const Backoff> backoffs, UnixTime now);

// The first recipient an exclusion with action hold covers in `stream`, with that exclusion:
// rampart-milter held the message for it, not for want of budget, so it stays held.
struct ExcludedRecipient {
  std::string address;
  const ExclusionSpec* rule = nullptr;
};
std::optional<ExcludedRecipient> held_by_exclusion(const RuleSet& rules, const StreamSpec* stream,
                                                   std::span<const std::string> recipients);

// A need that cannot be met: the binding limit, its use before this message, and the text the
// report shows ("cap (118/120) for stream bulk operator google; needs 5; reopens ...").
struct Shortfall {
  std::size_t index = 0;  // into the needs
  std::int64_t used = 0;
  std::optional<UnixTime> reopens;  // when `units` fit again with no other charges; nullopt: never
                                    // by time alone (a gate lifting on a send-days warm-up day, a
                                    // message needing more than the whole limit)
  std::string text;
};
// The shortfall for `need` given the scope's use and (hour scope) live minute buckets.
Shortfall shortfall(const Need& need, std::size_t index, std::int64_t used,
                    std::span<const Bucket> window, UnixTime now);
// Lease expiry for a release charge: now + ttl, for a day scope never past its day's end.
UnixTime lease_expiry(const Scope& scope, UnixTime now, std::int64_t ttl);

// The shared counters as read at one moment, with charges added on top (the dry run's pretend
// leases). Charges land where a store lease would put them (Scope::charge_bucket with
// lease_expiry(scope, now, ttl)).
class Ledger {
 public:
  explicit Ledger(std::int64_t lease_ttl = 60) : ttl_(lease_ttl) {}
  // One counter row (scope key, bucket, used); rows of the same (scope, bucket) add up.
  void add(std::string_view scope, std::int64_t bucket, std::int64_t used);
  // The scope's use at `now`: the sliding hour's window, or the day bucket of `now`.
  std::int64_t used(const Scope& scope, UnixTime now) const;
  std::vector<Bucket> window(std::string_view scope) const;  // hour scopes: every minute bucket
  // All or nothing: when every need fits (used + units <= limit), charges them all and returns
  // nullopt; otherwise charges nothing and returns the need that does not fit and reopens last
  // (never counts as last; on a tie the first), which is when the message can go at the earliest.
  std::optional<Shortfall> take(std::span<const Need> needs, UnixTime now);

 private:
  std::int64_t ttl_;
  std::map<std::string, std::map<std::int64_t, std::int64_t>, std::less<>> rows_;
};

}  // namespace rampart::core
