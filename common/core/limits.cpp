// The limit engine (see limits.hpp). Pure; no I/O, no clock.
#include "core/limits.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "core/ruleset.hpp"

namespace rampart::core {

std::string format_utc(UnixTime t) {
  const std::int64_t day = day_of(t);
  const std::int64_t secs = t - day * kDaySeconds;
  const Date d{static_cast<std::int32_t>(day)};
  return fmt::format("{}T{:02}:{:02}:{:02}Z", d.str(), secs / 3600, secs / 60 % 60, secs % 60);
}

std::int64_t window_used(std::span<const Bucket> minutes, UnixTime now) {
  std::int64_t used = 0;
  for (const auto& b : minutes) {
    if (bucket_expiry(b.bucket) > now) used += b.used;
  }
  return used;
}

std::optional<UnixTime> window_reopens(std::span<const Bucket> minutes, std::int64_t limit,
                                       UnixTime now) {
  if (limit <= 0) return std::nullopt;
  std::vector<Bucket> live;
  std::int64_t used = 0;
  for (const auto& b : minutes) {
    if (bucket_expiry(b.bucket) > now && b.used > 0) {
      live.push_back(b);
      used += b.used;
    }
  }
  if (used < limit) return now;
  std::sort(live.begin(), live.end(),
            [](const Bucket& a, const Bucket& b) { return a.bucket < b.bucket; });
  for (const auto& b : live) {
    used -= b.used;
    if (used < limit) return bucket_expiry(b.bucket);
  }
  return now;  // unreachable: once every bucket has left, used is 0 < limit
}

std::string Scope::key() const {
  switch (kind) {
    case ScopeKind::StreamHour: return "hour:" + stream;
    case ScopeKind::StreamDay: return "day:" + stream;
    case ScopeKind::OperatorDay: return fmt::format("op:{}/{}", stream, op);
  }
  return {};
}

std::int64_t Scope::charge_bucket(UnixTime now, UnixTime expires) const {
  return hourly() ? minute_of(expires) : day_of(now);
}

std::string_view to_string(LimitKind k) {
  switch (k) {
    case LimitKind::Hourly: return "hourly";
    case LimitKind::DailyCeiling: return "daily_ceiling";
    case LimitKind::Cap: return "cap";
    case LimitKind::Gate: return "gate";
    case LimitKind::Backoff: return "backoff";
    case LimitKind::Pause: return "pause";
  }
  return "?";
}

std::optional<std::int64_t> warmup_day(const StreamSpec& stream, std::span<const DayCount> history,
                                       std::int64_t today) {
  if (!stream.warmup) return std::nullopt;
  const auto& w = *stream.warmup;
  const std::int64_t start = w.start.days;
  if (today <= start) return 0;
  if (w.count == WarmupCount::Calendar) return today - start;
  // Send-days: only days that really sent count (incident 4: weekends and dead jobs must not
  // advance the ramp). Each day appears once per counter row, so count days, not rows.
  std::vector<std::int64_t> days;
  for (const auto& d : history) {
    if (d.day >= start && d.day < today && d.used >= w.min_daily) days.push_back(d.day);
  }
  std::sort(days.begin(), days.end());
  return static_cast<std::int64_t>(std::unique(days.begin(), days.end()) - days.begin());
}

std::optional<std::int64_t> ramp_hourly(const RampSpec& ramp, std::int64_t day) {
  std::optional<std::int64_t> hourly;
  for (const auto& step : ramp.steps) {
    if (step.day <= day) hourly = step.hourly;
  }
  return hourly;
}

namespace {

const CapSpec* find_cap(const RulesSpec& spec, std::string_view stream, std::string_view op) {
  for (const auto& c : spec.caps) {
    if (c.stream == stream && c.op == op) return &c;
  }
  return nullptr;
}

const Backoff* find_backoff(std::span<const Backoff> backoffs, std::string_view stream,
                            std::string_view op, UnixTime now) {
  const Backoff* best = nullptr;
  for (const auto& b : backoffs) {
    if (b.stream != stream || b.op != op || b.until <= now) continue;
    if (best == nullptr || b.permille < best->permille) best = &b;
  }
  return best;
}

}  // namespace

LimitSet limits_for(const RuleSet& rules, const StreamSpec& stream, const OperatorSpec* op,
                    std::span<const DayCount> history, std::span<const Backoff> backoffs,
                    UnixTime now) {
  LimitSet out;
  const std::int64_t today = day_of(now);
  out.warm_day = warmup_day(stream, history, today);

  std::optional<std::int64_t> hourly;
  if (stream.warmup && out.warm_day) {
    if (const RampSpec* ramp = rules.ramp(stream.warmup->ramp)) {
      hourly = ramp_hourly(*ramp, *out.warm_day);
    }
  }
  if (hourly) {
    out.limits.push_back(
        {Scope{ScopeKind::StreamHour, stream.name, {}}, LimitKind::Hourly, *hourly, {}, {}});
  }
  // The day scope is always counted, with or without a ceiling: send-days warm-ups count from
  // it and `rampart caps` shows it. Without a ceiling its limit is kNoLimit.
  Limit day{Scope{ScopeKind::StreamDay, stream.name, {}},
            LimitKind::DailyCeiling,
            stream.daily_ceiling.value_or(kNoLimit),
            {},
            {}};
  if (stream.warmup && stream.warmup->count == WarmupCount::SendDays) {
    // A block leased and lost in a crash stays counted: keep it well under min_daily.
    day.max_block = std::max<std::int64_t>(1, stream.warmup->min_daily / 4);
  }
  out.limits.push_back(std::move(day));
  if (op == nullptr) return out;

  Scope op_scope{ScopeKind::OperatorDay, stream.name, op->name};
  std::optional<Limit> op_limit;
  if (const CapSpec* cap = find_cap(rules.spec(), stream.name, op->name)) {
    // until_day: the cap (or gate) applies before that warm-up day and lifts on it. A stream with
    // no warm-up is warm: caps with until_day no longer apply.
    const bool applies = !cap->until_day || (out.warm_day && *out.warm_day < *cap->until_day);
    if (applies) {
      Limit l{op_scope, cap->daily == 0 ? LimitKind::Gate : LimitKind::Cap, cap->daily, {}, {}};
      if (cap->until_day) {
        l.detail = fmt::format("until warm-up day {}", *cap->until_day);
        if (stream.warmup && stream.warmup->count == WarmupCount::Calendar) {
          l.lifts = (stream.warmup->start.days + *cap->until_day) * kDaySeconds;
        }
      }
      op_limit = std::move(l);
    }
  }
  if (const Backoff* b = find_backoff(backoffs, stream.name, op->name, now)) {
    if (b->permille <= 0) {
      // A pause over a gate: whichever lifts later binds (a gate lifting on a send-day has no
      // date, so it outlasts any pause); otherwise the reply would name a reopen time at which
      // the operator is still gated.
      const bool gated =
          op_limit && op_limit->limit == 0 && (!op_limit->lifts || *op_limit->lifts >= b->until);
      if (!gated) op_limit = Limit{op_scope, LimitKind::Pause, 0, b->reason, b->until};
    } else if (!op_limit || op_limit->limit > 0) {
      // The budget the factor scales: the operator's cap, else the stream's day.
      std::optional<std::int64_t> base;
      if (op_limit) {
        base = op_limit->limit;
      } else if (stream.daily_ceiling) {
        base = *stream.daily_ceiling;
      } else if (hourly) {
        base = *hourly * 24;
      }
      if (base) {
        const std::int64_t scaled = *base * std::min<std::int64_t>(b->permille, 1000) / 1000;
        op_limit = Limit{op_scope, LimitKind::Backoff, scaled, b->reason, b->until};
      }
    }
  }
  if (op_limit) out.limits.push_back(std::move(*op_limit));
  return out;
}

std::int64_t lease_block(std::int64_t limit) {
  return std::clamp<std::int64_t>(limit / 50, 1, 1000);
}

std::int64_t lease_block(const Limit& limit) {
  const std::int64_t block = lease_block(limit.limit);
  return limit.max_block > 0 ? std::min(block, limit.max_block) : block;
}

std::optional<UnixTime> reopens(const Limit& limit, std::span<const Bucket> minutes, UnixTime now) {
  switch (limit.kind) {
    case LimitKind::Hourly: return window_reopens(minutes, limit.limit, now);
    case LimitKind::Gate:
    case LimitKind::Pause: return limit.lifts;
    case LimitKind::Backoff: {
      // Whichever comes first: the back-off ends, or the day's budget renews.
      const UnixTime tomorrow = (day_of(now) + 1) * kDaySeconds;
      return limit.lifts ? std::min(*limit.lifts, tomorrow) : tomorrow;
    }
    case LimitKind::DailyCeiling:
    case LimitKind::Cap: return (day_of(now) + 1) * kDaySeconds;
  }
  return std::nullopt;
}

std::string over_limit_text(const Limit& limit, std::int64_t used, std::string_view op,
                            std::optional<UnixTime> reopens_at) {
  std::string text = fmt::format("rampart: {} ({}/{}) for stream {}", to_string(limit.kind), used,
                                 limit.limit, limit.scope.stream);
  if (!op.empty()) fmt::format_to(std::back_inserter(text), " operator {}", op);
  if (!limit.detail.empty()) fmt::format_to(std::back_inserter(text), " ({})", limit.detail);
  if (reopens_at) {
    fmt::format_to(std::back_inserter(text), "; reopens {}", format_utc(*reopens_at));
  } else if (limit.kind == LimitKind::Gate && !limit.detail.empty()) {
    // A gate with until_day on a send-days stream lifts on a day that has no date yet; a gate
    // without until_day (its detail is empty) never lifts.
    text += "; reopens at that warm-up day";
  }
  return text;
}

}  // namespace rampart::core
