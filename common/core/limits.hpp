// The limit engine: which budgets one accepted recipient of a stream spends (hourly ramp window,
// daily ceiling, stream x operator cap or gate, back-off), how the warm-up day is counted, and the
// arithmetic of the shared counters that rampart-policyd leases from and `rampart release` and
// `rampart caps` read. Pure; no I/O, no clock: time is always passed in (UTC seconds).
//
// Counters are rows (scope, bucket, used). Day scopes use the UTC day number as bucket; the hourly
// scope uses the minute number. A charge in minute bucket m may stand for a recipient accepted at
// any moment up to the end of that minute, so it keeps counting in the sliding hour until
// bucket_expiry(m) = 60*(m+1) + 3600: the window can reopen up to a minute late, never early.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/rules.hpp"

namespace rampart::core {

class RuleSet;
using UnixTime = std::int64_t;  // seconds since 1970-01-01T00:00:00Z

constexpr std::int64_t kWindowSeconds = 3600;
constexpr std::int64_t kBucketSeconds = 60;
constexpr std::int64_t kDaySeconds = 86400;
// The limit of a scope that is counted but not limited (a stream's day without daily_ceiling).
constexpr std::int64_t kNoLimit = std::int64_t{1} << 40;

constexpr std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0);
}
constexpr std::int64_t day_of(UnixTime t) { return floor_div(t, kDaySeconds); }
constexpr std::int64_t minute_of(UnixTime t) { return floor_div(t, kBucketSeconds); }
constexpr UnixTime bucket_expiry(std::int64_t minute) {
  return (minute + 1) * kBucketSeconds + kWindowSeconds;
}
// "2026-11-22T13:05:00Z"
std::string format_utc(UnixTime t);

struct Bucket {
  std::int64_t bucket = 0;
  std::int64_t used = 0;
  friend bool operator==(const Bucket&, const Bucket&) = default;
};
// Charges in `minutes` still inside the sliding hour at `now` (buckets may be in any order; the
// future buckets that leases charge count too).
std::int64_t window_used(std::span<const Bucket> minutes, UnixTime now);
// The earliest moment >= now at which window_used < limit with no new charges; `now` when it
// already is. A limit <= 0 never reopens: returns nullopt.
std::optional<UnixTime> window_reopens(std::span<const Bucket> minutes, std::int64_t limit,
                                       UnixTime now);

// One budget a recipient spends. key() is the counter row's scope: "hour:<stream>",
// "day:<stream>", "op:<stream>/<operator>".
enum class ScopeKind : std::uint8_t {
  StreamHour,   // sliding 60 minutes, minute buckets
  StreamDay,    // UTC day, also the history send-days count from
  OperatorDay,  // UTC day, per stream x operator
};
struct Scope {
  ScopeKind kind = ScopeKind::StreamDay;
  std::string stream;
  std::string op;  // OperatorDay only
  std::string key() const;
  bool hourly() const { return kind == ScopeKind::StreamHour; }
  // The bucket a lease taken at `now` that may be spent until `expires` is charged to: the day of
  // `now` for day scopes (a day lease never outlives its day), the minute of `expires` for the
  // hour (conservative, see above).
  std::int64_t charge_bucket(UnixTime now, UnixTime expires) const;
  friend bool operator==(const Scope&, const Scope&) = default;
};

// Which rule set the binding value of a limit: named in the DEFER text, logs and `rampart caps`.
enum class LimitKind : std::uint8_t {
  Hourly,        // ramp step of the warm-up day, sliding hour
  DailyCeiling,  // stream daily_ceiling
  Cap,           // [[cap]] daily for stream x operator
  Gate,          // [[cap]] daily = 0 before until_day: nothing to this operator
  Backoff,       // back-off factor applied to the operator's budget
  Pause,         // back-off with factor 0: nothing to this operator until it expires
};
std::string_view to_string(LimitKind);  // "hourly", "daily_ceiling", "cap", "gate", ...

// A back-off on stream x operator, written by `rampart backoff set` or by classify.
struct Backoff {
  std::string stream;
  std::string op;
  std::int64_t permille = 0;  // budget factor in 1/1000: 500 = half, 0 = full pause
  UnixTime until = 0;         // active while now < until
  std::string reason;
  std::string source;  // "cli" | "classify"
  UnixTime created = 0;
  friend bool operator==(const Backoff&, const Backoff&) = default;
};

struct DayCount {
  std::int64_t day = 0;  // day_of()
  std::int64_t used = 0;
  friend bool operator==(const DayCount&, const DayCount&) = default;
};

// The warm-up day of `stream` on UTC day `today`: calendar = whole days since start (0 before and
// on the start day); send-days = days d with start <= d < today on which `history` (the stream's
// StreamDay counts, any order) reached min_daily. nullopt when the stream has no warm-up.
std::optional<std::int64_t> warmup_day(const StreamSpec& stream, std::span<const DayCount> history,
                                       std::int64_t today);
// Hourly limit of the ramp step in force on warm-up day `day` (last step whose day <= `day`).
std::optional<std::int64_t> ramp_hourly(const RampSpec& ramp, std::int64_t day);

struct Limit {
  Scope scope;
  LimitKind kind = LimitKind::Hourly;
  std::int64_t limit = 0;         // recipients per window; 0 = nothing passes (gate, pause)
  std::string detail;             // gate: "until warm-up day 30"; back-off: its reason
  std::optional<UnixTime> lifts;  // gate/back-off/pause: when it stops applying, when known
  // Largest lease block for this limit, 0 = lease_block(limit) alone. Set on the day scope of a
  // send-days stream: a crashed host's forfeited block must not make a quiet day a send-day.
  std::int64_t max_block = 0;
};

struct LimitSet {
  std::optional<std::int64_t> warm_day;  // the stream's warm-up day, when it has a warm-up
  // One per scope, in order hourly, day, operator. The stream's day scope is always there (with
  // kNoLimit when the stream has no daily_ceiling): it is the history send-days count from.
  std::vector<Limit> limits;
};

// The limits one more accepted recipient of `stream` to operator `op` (nullptr = unknown or not
// resolved: only stream limits apply) must fit at `now`. `backoffs` may hold any back-offs; only
// active ones for this stream x operator apply. A back-off scales the operator's cap, or when the
// stream has no cap for it, the stream's daily budget (ceiling, else 24 x hourly); with neither it
// only pauses (factor 0) or does nothing. A factor never opens a gate; of a pause and a gate, the
// one that lifts later is the limit.
LimitSet limits_for(const RuleSet& rules, const StreamSpec& stream, const OperatorSpec* op,
                    std::span<const DayCount> history, std::span<const Backoff> backoffs,
                    UnixTime now);

// Lease sizing: how many units a daemon asks for at once for a limit. Small limits lease one at a
// time; large ones a fiftieth, at most 1000. A crashed host forfeits at most this per scope.
std::int64_t lease_block(std::int64_t limit);
// lease_block(limit.limit), no larger than limit.max_block when that is set.
std::int64_t lease_block(const Limit& limit);
// What the shared counter can give: min(want, limit - used), never negative.
constexpr std::int64_t grant(std::int64_t limit, std::int64_t used, std::int64_t want) {
  const std::int64_t room = limit - used;
  return room <= 0 || want <= 0 ? 0 : (want < room ? want : room);
}

// When an exhausted limit reopens: the hourly window per window_reopens, a day scope at the next
// 00:00 UTC, a gate or back-off when it lifts (nullopt when it only lifts at a send-days warm-up
// day, which has no date).
std::optional<UnixTime> reopens(const Limit& limit, std::span<const Bucket> minutes, UnixTime now);

// The text after "DEFER_IF_PERMIT 4.7.1 " or "HOLD ": "rampart: cap (120/120) for stream bulk
// operator google; reopens 2026-11-23T00:00:00Z".
std::string over_limit_text(const Limit& limit, std::int64_t used, std::string_view op,
                            std::optional<UnixTime> reopens_at);

}  // namespace rampart::core
