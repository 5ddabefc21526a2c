#include "maillog/feedback.hpp"

#include <algorithm>
#include <map>
#include <utility>

#include <fmt/format.h>

namespace rampart::maillog {

namespace {

constexpr std::int64_t kHour = 3600;

// Whether an active back-off for (stream, op) makes `b` moot: one an operator set by hand
// (classify never replaces it), a stricter one (the store keeps one per pair: a weaker one
// would loosen it early), or an equally strict one lasting at least as long.
bool covered(const std::vector<core::Backoff>& active, const core::Backoff& b) {
  for (const auto& a : active) {
    if (a.stream != b.stream || a.op != b.op) continue;
    if (a.source == "cli" || a.permille < b.permille) return true;
    if (a.permille == b.permille && a.until >= b.until) return true;
  }
  return false;
}

std::string percent(std::int64_t num, std::int64_t den) {
  return fmt::format("{:.0f}%", den > 0 ? 100.0 * static_cast<double>(num) / den : 0.0);
}

}  // namespace

std::vector<core::Suppression> address_suppressions(const std::vector<AddressHit>& hits,
                                                    const core::FeedbackSpec& fb,
                                                    core::UnixTime now) {
  std::vector<core::Suppression> out;
  if (!fb.suppress_addresses) return out;
  for (const auto& h : hits) {
    core::Suppression s;
    s.value = h.address;
    s.expires =
        fb.address_expiry_days > 0 ? h.time + fb.address_expiry_days * core::kDaySeconds : 0;
    if (s.expires != 0 && s.expires <= now) continue;
    s.reason = fmt::format("{} (rule {})", h.reply.substr(0, 200), h.rule);
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<core::Suppression> domain_suppressions(const std::vector<core::DomainHit>& totals,
                                                   const core::FeedbackSpec& fb,
                                                   core::UnixTime now) {
  std::vector<core::Suppression> out;
  if (!fb.suppress_domains) return out;
  for (const auto& t : totals) {
    if (t.count < fb.domain_replies || t.domain.empty()) continue;
    core::Suppression s;
    s.value = t.domain;
    s.domain = true;
    // From the end of the newest day with a hit.
    s.expires =
        fb.domain_expiry_days > 0 ? (t.day + 1 + fb.domain_expiry_days) * core::kDaySeconds : 0;
    if (s.expires != 0 && s.expires <= now) continue;
    s.reason = fmt::format("{} dead-domain replies within {} days", t.count, fb.domain_days);
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<core::Backoff> pause_backoffs(const std::vector<PauseHit>& pauses,
                                          const core::FeedbackSpec& fb,
                                          const std::vector<core::Backoff>& active,
                                          core::UnixTime now) {
  std::vector<core::Backoff> out;
  if (!fb.pause) return out;
  for (const auto& p : pauses) {
    core::Backoff b;
    b.stream = p.stream;
    b.op = p.op;
    b.permille = 0;
    b.until = p.time + fb.pause_hours * kHour;
    b.source = "classify";
    b.created = now;
    b.reason = fmt::format("classify: rule {} at {}: {}", p.rule, core::format_utc(p.time),
                           p.sample.substr(0, 160));
    if (b.until <= now || covered(active, b)) continue;
    out.push_back(std::move(b));
  }
  return out;
}

std::vector<core::Backoff> share_backoffs(const std::vector<core::Aggregate>& aggregates,
                                          const core::FeedbackSpec& fb,
                                          const std::vector<core::Backoff>& active,
                                          core::UnixTime last_time, core::UnixTime now) {
  std::vector<core::Backoff> out;
  if (!fb.backoff) return out;
  struct Share {
    std::int64_t attempts = 0, bad = 0;
  };
  std::map<std::tuple<std::int64_t, std::string, std::string>, Share> shares;
  for (const auto& a : aggregates) {
    if (a.key.stream.empty() || a.key.op.empty()) continue;
    auto& s = shares[{a.key.day, a.key.stream, a.key.op}];
    s.attempts += a.count;
    if (a.key.outcome == core::Outcome::Throttled ||
        a.key.outcome == core::Outcome::RejectReputation) {
      s.bad += a.count;
    }
  }
  // The newest qualifying day per pair decides.
  std::map<std::pair<std::string, std::string>, core::Backoff> best;
  const std::int64_t last_day = core::day_of(last_time);
  for (const auto& [k, s] : shares) {
    const auto& [day, stream, op] = k;
    if (s.attempts < fb.backoff_min_attempts) continue;
    if (s.bad * 100 < fb.backoff_percent * s.attempts) continue;
    const core::UnixTime at = day >= last_day ? last_time : (day + 1) * core::kDaySeconds - 1;
    core::Backoff b;
    b.stream = stream;
    b.op = op;
    b.permille = fb.backoff_factor_percent * 10;
    b.until = at + fb.backoff_hours * kHour;
    b.source = "classify";
    b.created = now;
    b.reason = fmt::format(
        "classify: {} of {} attempts throttled or refused for reputation on {} (threshold {}%)",
        percent(s.bad, s.attempts), s.attempts, core::Date{static_cast<std::int32_t>(day)}.str(),
        fb.backoff_percent);
    best[{stream, op}] = std::move(b);  // shares is ordered by day: the newest wins
  }
  for (auto& [k, b] : best) {
    if (b.until <= now || covered(active, b)) continue;
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace rampart::maillog
