// The pure limit engine (common/core/limits.hpp): warm-up days, ramp steps, the sliding hour of
// minute buckets, limits_for (caps, gates, back-offs, day rollover), reopen times, lease sizing
// and the over-limit text. Time is always passed in. Pure.
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/limits.hpp"
#include "core/ruleset.hpp"

using namespace rampart;
using namespace rampart::core;

namespace {

std::int64_t day_num(std::string_view ymd) {
  const auto d = Date::parse(ymd);
  REQUIRE_MESSAGE(d.has_value(), std::string(ymd));
  return d->days;
}

// Seconds since the epoch of `ymd` plus `days` days at hh:mm:ss UTC.
UnixTime at(std::string_view ymd, std::int64_t days = 0, std::int64_t h = 0, std::int64_t m = 0,
            std::int64_t s = 0) {
  return (day_num(ymd) + days) * kDaySeconds + h * 3600 + m * 60 + s;
}

constexpr std::string_view kStart = "2026-06-02";  // warm-up start of the streams below

// FIELD-NOTES "Numbers the rules use": the consumer-facing ramp.
RampSpec consumer_ramp() { return {"consumer", {{0, 50}, {2, 150}, {4, 250}, {7, 300}}, {}}; }
// ... and the institutional one.
RampSpec institutional_ramp() {
  return {"institutional", {{0, 100}, {2, 300}, {5, 600}, {10, 1000}}, {}};
}

StreamSpec stream(std::string name, std::optional<WarmupCount> count,
                  std::optional<std::int64_t> ceiling, std::int64_t port,
                  OverCap over_cap = OverCap::Defer) {
  StreamSpec s;
  s.name = std::move(name);
  s.ports = {port};
  if (count) s.warmup = Warmup{*Date::parse(kStart), *count, "consumer", 50};
  s.daily_ceiling = ceiling;
  s.over_cap = over_cap;
  return s;
}

CapSpec cap(std::string s, std::string op, std::int64_t daily, std::optional<std::int64_t> until) {
  return {std::move(s), std::move(op), daily, until, {}};
}

// Streams: bulk (calendar, ceiling 4000), warm (send-days, ceiling 4000), noceil (calendar, no
// ceiling), nowarm (no warm-up, ceiling 10000), plain (neither), held (calendar, over_cap hold).
std::shared_ptr<const RuleSet> rules() {
  RulesSpec spec;
  spec.ramps = {consumer_ramp(), institutional_ramp()};
  spec.streams = {stream("bulk", WarmupCount::Calendar, 4000, 25),
                  stream("warm", WarmupCount::SendDays, 4000, 2526),
                  stream("noceil", WarmupCount::Calendar, std::nullopt, 2527),
                  stream("nowarm", std::nullopt, 10000, 2528),
                  stream("plain", std::nullopt, std::nullopt, 2529),
                  stream("held", WarmupCount::Calendar, 4000, 2530, OverCap::Hold)};
  spec.operators = {{"google", {".google.com"}, {}},
                    {"microsoft", {".mail.protection.outlook.com"}, {}},
                    {"yahoo", {".yahoodns.net"}, {}},
                    {"other", {".example.org"}, {}}};
  spec.caps = {cap("bulk", "google", 0, 30),   cap("bulk", "microsoft", 120, 30),
               cap("bulk", "yahoo", 120, {}),  cap("warm", "google", 0, 3),
               cap("nowarm", "google", 0, 30), cap("nowarm", "microsoft", 500, {}),
               cap("plain", "google", 0, {})};
  auto c = RuleSet::compile(std::move(spec));
  REQUIRE_MESSAGE(c.has_value(), c.error().what);
  return *c;
}

// "day=4 hourly=250 daily_ceiling=4000 gate=0": the warm-up day, then each limit's kind and
// value (kNoLimit is "none").
std::string summary(const LimitSet& set) {
  std::string out;
  if (set.warm_day) out = "day=" + std::to_string(*set.warm_day);
  for (const auto& l : set.limits) {
    if (!out.empty()) out += ' ';
    out += std::string(to_string(l.kind)) + "=" +
           (l.limit == kNoLimit ? std::string("none") : std::to_string(l.limit));
  }
  return out;
}

// Every limit counts for `stream`, in the scope its kind belongs to (the operator's for caps,
// gates and back-offs), in the order hourly, day, operator.
bool scopes_are_for(const LimitSet& set, std::string_view stream, const char* op) {
  int last = -1;
  for (const auto& l : set.limits) {
    const bool op_kind = l.kind == LimitKind::Cap || l.kind == LimitKind::Gate ||
                         l.kind == LimitKind::Backoff || l.kind == LimitKind::Pause;
    const ScopeKind want = l.kind == LimitKind::Hourly         ? ScopeKind::StreamHour
                           : l.kind == LimitKind::DailyCeiling ? ScopeKind::StreamDay
                                                               : ScopeKind::OperatorDay;
    if (l.scope.kind != want || l.scope.stream != stream) return false;
    if (op_kind && (op == nullptr || l.scope.op != op)) return false;
    if (static_cast<int>(l.scope.kind) <= last) return false;
    last = static_cast<int>(l.scope.kind);
  }
  return true;
}

// Send-days history: `n` consecutive days from `first`, each with `used` recipients.
std::vector<DayCount> run_of_days(std::int64_t first, std::int64_t n, std::int64_t used) {
  std::vector<DayCount> out;
  for (std::int64_t i = 0; i < n; ++i) out.push_back({first + i, used});
  return out;
}

Limit limit_of(ScopeKind scope, LimitKind kind, std::int64_t n, std::string op = {}) {
  return {Scope{scope, "bulk", std::move(op)}, kind, n, {}, {}};
}

}  // namespace

TEST_CASE("warmup_day: calendar days since start, 0 before and on it") {
  const StreamSpec s = stream("bulk", WarmupCount::Calendar, 4000, 25);
  const std::int64_t start = day_num(kStart);
  struct Case {
    std::string_view label;
    std::int64_t today;
    std::int64_t want;
  };
  const Case cases[] = {
      {"long before start", start - 400, 0},
      {"day before start", start - 1, 0},
      {"on the start day", start, 0},
      {"day after start", start + 1, 1},
      {"weekends count on the calendar", start + 7, 7},
      {"gate day", start + 30, 30},
  };
  const std::vector<DayCount> history = run_of_days(start, 3, 1000);  // ignored by calendar
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = warmup_day(s, history, c.today);
    REQUIRE(got.has_value());
    CHECK(*got == c.want);
  }
}

TEST_CASE("warmup_day: send-days count earlier days that reached min_daily, once each") {
  const StreamSpec s = stream("warm", WarmupCount::SendDays, 4000, 2526);  // min_daily 50
  const std::int64_t st = day_num(kStart);                                 // a Tuesday
  struct Case {
    std::string_view label;
    std::vector<DayCount> history;
    std::int64_t today;
    std::int64_t want;
  };
  // Tuesday to Friday send, Saturday a trickle, Sunday nothing, Monday sends again.
  std::vector<DayCount> week = run_of_days(st, 4, 400);
  week.push_back({st + 4, 3});
  week.push_back({st + 6, 400});
  const Case cases[] = {
      {"no history", {}, st + 5, 0},
      {"before start", {}, st - 1, 0},
      {"on the start day", {{st, 400}}, st, 0},
      {"below min_daily does not count", {{st, 49}}, st + 1, 0},
      {"exactly min_daily counts", {{st, 50}}, st + 1, 1},
      {"above min_daily counts", {{st, 4000}}, st + 1, 1},
      {"today is not counted yet", {{st, 400}, {st + 1, 400}}, st + 1, 1},
      {"weekend gap with 0 sends does not count", week, st + 7, 5},
      {"a dead job's silent days do not count", {{st, 400}, {st + 1, 400}}, st + 20, 2},
      {"duplicate rows for one day count once", {{st, 400}, {st, 400}, {st + 1, 60}}, st + 2, 2},
      {"days before start are ignored", {{st - 3, 400}, {st - 1, 400}, {st, 400}}, st + 1, 1},
      {"rows after today are ignored", {{st, 400}, {st + 5, 400}}, st + 2, 1},
      {"any order", {{st + 2, 400}, {st, 400}, {st + 1, 400}}, st + 3, 3},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = warmup_day(s, c.history, c.today);
    REQUIRE(got.has_value());
    CHECK(*got == c.want);
  }
}

TEST_CASE("warmup_day: a stream without warm-up has no warm-up day") {
  const StreamSpec s = stream("nowarm", std::nullopt, 10000, 2528);
  CHECK_FALSE(warmup_day(s, run_of_days(day_num(kStart), 3, 400), day_num(kStart) + 5));
}

TEST_CASE("ramp_hourly: the step in force on each warm-up day (FIELD-NOTES ramps)") {
  const RampSpec consumer = consumer_ramp();
  const RampSpec institutional = institutional_ramp();
  struct Case {
    std::string_view label;
    const RampSpec* ramp;
    std::int64_t day;
    std::optional<std::int64_t> want;
  };
  const Case cases[] = {
      {"consumer before day 0", &consumer, -1, std::nullopt},
      {"consumer day 0", &consumer, 0, 50},
      {"consumer day 1", &consumer, 1, 50},
      {"consumer day 2", &consumer, 2, 150},
      {"consumer day 3", &consumer, 3, 150},
      {"consumer day 4", &consumer, 4, 250},
      {"consumer day 6", &consumer, 6, 250},
      {"consumer day 7", &consumer, 7, 300},
      {"consumer day 8", &consumer, 8, 300},
      {"consumer day 365", &consumer, 365, 300},
      {"institutional day 1", &institutional, 1, 100},
      {"institutional day 2", &institutional, 2, 300},
      {"institutional day 4", &institutional, 4, 300},
      {"institutional day 5", &institutional, 5, 600},
      {"institutional day 9", &institutional, 9, 600},
      {"institutional day 10", &institutional, 10, 1000},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    CHECK(ramp_hourly(*c.ramp, c.day) == c.want);
  }
}

TEST_CASE("bucket_expiry: a minute's charges leave the window an hour after the minute ends") {
  const std::int64_t m = minute_of(at(kStart, 0, 12, 0, 30));
  CHECK(m * 60 == at(kStart, 0, 12, 0, 0));
  CHECK(bucket_expiry(m) == 60 * (m + 1) + 3600);
  CHECK(bucket_expiry(m) == at(kStart, 0, 13, 1, 0));
  static_assert(bucket_expiry(0) == 3660);
  static_assert(minute_of(-1) == -1 && day_of(-1) == -1 && day_of(kDaySeconds) == 1);
}

TEST_CASE("window_used: charges count until bucket_expiry, not one second longer") {
  const std::int64_t m = minute_of(at(kStart, 0, 12, 0, 0));
  const UnixTime e = bucket_expiry(m);
  struct Case {
    std::string_view label;
    std::vector<Bucket> minutes;
    UnixTime now;
    std::int64_t want;
  };
  const Case cases[] = {
      {"empty", {}, e, 0},
      {"in its own minute", {{m, 7}}, 60 * m, 7},
      {"half an hour later", {{m, 7}}, 60 * m + 1800, 7},
      {"one second before expiry", {{m, 7}}, e - 1, 7},
      {"at expiry it is gone", {{m, 7}}, e, 0},
      {"one second after expiry", {{m, 7}}, e + 1, 0},
      {"future buckets count (leases charge the minute they expire)", {{m + 5, 3}}, 60 * m, 3},
      {"live and expired mixed, any order", {{m + 2, 4}, {m - 70, 100}, {m, 7}}, 60 * m + 60, 11},
      {"the older one leaves first", {{m + 2, 4}, {m, 7}}, e, 4},
      {"both gone", {{m + 2, 4}, {m, 7}}, bucket_expiry(m + 2), 0},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    CHECK(window_used(c.minutes, c.now) == c.want);
  }
}

TEST_CASE("window_reopens: the first moment the window holds less than the limit") {
  const std::int64_t m = minute_of(at(kStart, 0, 9, 0, 0));
  const UnixTime now = 60 * (m + 30) + 17;
  // Unsorted on purpose; 50 live units in all, one expired bucket, one empty bucket.
  const std::vector<Bucket> three = {{m + 30, 10}, {m, 20}, {m - 61, 99}, {m + 10, 20}, {m + 5, 0}};
  struct Case {
    std::string_view label;
    std::vector<Bucket> minutes;
    std::int64_t limit;
    UnixTime now;
    std::optional<UnixTime> want;
  };
  const Case cases[] = {
      {"limit 0 never reopens", three, 0, now, std::nullopt},
      {"negative limit never reopens", three, -1, now, std::nullopt},
      {"limit 0 on an empty window never reopens", {}, 0, now, std::nullopt},
      {"empty window: open now", {}, 50, now, now},
      {"under the limit: open now", three, 51, now, now},
      {"full: the oldest bucket leaving is enough", three, 50, now, bucket_expiry(m)},
      {"the two oldest must leave", three, 30, now, bucket_expiry(m + 10)},
      {"every bucket must leave", three, 10, now, bucket_expiry(m + 30)},
      {"over the limit (limit lowered)", three, 5, now, bucket_expiry(m + 30)},
      {"one full bucket", {{m, 50}}, 50, 60 * m, bucket_expiry(m)},
      {"a future bucket leaves last", {{m + 2, 1}, {m, 49}}, 50, 60 * m, bucket_expiry(m)},
      {"a future bucket alone", {{m + 2, 50}}, 50, 60 * m, bucket_expiry(m + 2)},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = window_reopens(c.minutes, c.limit, c.now);
    CHECK(got == c.want);
    // Consistent with window_used: open at the answer, still full one second before it.
    if (got && *got > c.now) {
      CHECK(window_used(c.minutes, *got) < c.limit);
      CHECK(window_used(c.minutes, *got - 1) >= c.limit);
    }
  }
}

TEST_CASE("Scope: counter keys and the bucket a lease charges") {
  const UnixTime now = at(kStart, 0, 23, 59, 30);
  const UnixTime expires = now + 60;  // past midnight, into the next minute
  struct Case {
    std::string_view label;
    Scope scope;
    std::string_view want_key;
    std::int64_t want_bucket;
  };
  const Case cases[] = {
      {"hour: the minute the lease expires in",
       {ScopeKind::StreamHour, "bulk", {}},
       "hour:bulk",
       minute_of(expires)},
      {"day: the day it was taken",
       {ScopeKind::StreamDay, "bulk", {}},
       "day:bulk",
       day_num(kStart)},
      {"operator day",
       {ScopeKind::OperatorDay, "bulk", "google"},
       "op:bulk/google",
       day_num(kStart)},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    CHECK(c.scope.key() == c.want_key);
    CHECK(c.scope.charge_bucket(now, expires) == c.want_bucket);
  }
}

TEST_CASE("limits_for: ramp, ceiling, caps and gates by warm-up day") {
  const auto rs = rules();
  const std::int64_t st = day_num(kStart);
  const auto t = [](std::int64_t d, std::int64_t h = 10, std::int64_t m = 0, std::int64_t s = 0) {
    return at(kStart, d, h, m, s);
  };
  const std::vector<DayCount> none;
  const std::vector<DayCount> two_days = run_of_days(st, 2, 400);
  const std::vector<DayCount> three_days = run_of_days(st, 3, 400);
  const std::vector<DayCount> third_too_small = {{st, 400}, {st + 1, 400}, {st + 2, 49}};
  struct Case {
    std::string_view label;
    const char* stream;
    const char* op;  // nullptr: operator unknown
    const std::vector<DayCount>* history;
    UnixTime now;
    std::string_view want;
    std::string_view want_detail = "";  // of the operator limit, when there is one
    std::optional<UnixTime> want_lifts = std::nullopt;
  };
  const Case cases[] = {
      {"no operator: stream limits only", "bulk", nullptr, &none, t(0),
       "day=0 hourly=50 daily_ceiling=4000"},
      {"before the start day", "bulk", nullptr, &none, t(-3), "day=0 hourly=50 daily_ceiling=4000"},
      {"ramp day 4", "bulk", nullptr, &none, t(4), "day=4 hourly=250 daily_ceiling=4000"},
      {"operator without a cap", "bulk", "other", &none, t(4),
       "day=4 hourly=250 daily_ceiling=4000"},
      {"gate before until_day (calendar)", "bulk", "google", &none, t(29, 23, 59, 59),
       "day=29 hourly=300 daily_ceiling=4000 gate=0", "until warm-up day 30", t(30, 0)},
      {"gate lifted on until_day (calendar)", "bulk", "google", &none, t(30, 0),
       "day=30 hourly=300 daily_ceiling=4000"},
      {"cap before until_day", "bulk", "microsoft", &none, t(10),
       "day=10 hourly=300 daily_ceiling=4000 cap=120", "until warm-up day 30", t(30, 0)},
      {"cap lifted on until_day", "bulk", "microsoft", &none, t(30),
       "day=30 hourly=300 daily_ceiling=4000"},
      {"cap without until_day applies for good", "bulk", "yahoo", &none, t(400),
       "day=400 hourly=300 daily_ceiling=4000 cap=120"},
      {"gate before until_day (send-days)", "warm", "google", &two_days, t(10),
       "day=2 hourly=150 daily_ceiling=4000 gate=0", "until warm-up day 3"},
      {"send-days gate holds while days do not count", "warm", "google", &third_too_small, t(10),
       "day=2 hourly=150 daily_ceiling=4000 gate=0", "until warm-up day 3"},
      {"gate lifted on until_day (send-days)", "warm", "google", &three_days, t(10),
       "day=3 hourly=150 daily_ceiling=4000"},
      {"no warm-up: until_day caps no longer apply", "nowarm", "google", &none, t(0),
       "daily_ceiling=10000"},
      {"no warm-up: caps without until_day apply", "nowarm", "microsoft", &none, t(0),
       "daily_ceiling=10000 cap=500"},
      {"no warm-up: a gate without until_day applies", "plain", "google", &none, t(0),
       "daily_ceiling=none gate=0"},
      {"no warm-up, no ceiling: the day is counted, not limited", "plain", nullptr, &none, t(0),
       "daily_ceiling=none"},
      {"no ceiling", "noceil", "other", &none, t(7), "day=7 hourly=300 daily_ceiling=none"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const StreamSpec* s = rs->stream(c.stream);
    REQUIRE(s != nullptr);
    const OperatorSpec* op = c.op != nullptr ? rs->op(c.op) : nullptr;
    REQUIRE((c.op == nullptr || op != nullptr));
    const LimitSet got = limits_for(*rs, *s, op, *c.history, {}, c.now);
    CHECK(summary(got) == c.want);
    CHECK(scopes_are_for(got, c.stream, c.op));
    if (!got.limits.empty() && got.limits.back().scope.kind == ScopeKind::OperatorDay) {
      CHECK(got.limits.back().detail == c.want_detail);
      CHECK(got.limits.back().lifts == c.want_lifts);
    }
  }
}

TEST_CASE("limits_for: back-offs scale the budget, pause, expire, and stay on their pair") {
  const auto rs = rules();
  const UnixTime now = at(kStart, 10, 14, 0, 0);  // warm-up day 10: hourly 300
  const UnixTime later = now + 3600;
  const UnixTime gate_lifts = at(kStart, 30);
  const auto bo = [](const char* s, const char* op, std::int64_t permille, UnixTime until) {
    return Backoff{s, op, permille, until, "451 4.7.500 throttled", "classify", 0};
  };
  struct Case {
    std::string_view label;
    const char* stream;
    const char* op;
    Backoff backoff;
    std::string_view want;
    std::optional<UnixTime> want_lifts = std::nullopt;
  };
  const char* plain = "daily_ceiling=none";
  const char* bulk = "day=10 hourly=300 daily_ceiling=4000";
  const Case cases[] = {
      {"half the cap", "bulk", "microsoft", bo("bulk", "microsoft", 500, later),
       "day=10 hourly=300 daily_ceiling=4000 backoff=60", later},
      {"a factor of 1000 keeps the cap but names the back-off", "bulk", "microsoft",
       bo("bulk", "microsoft", 1000, later), "day=10 hourly=300 daily_ceiling=4000 backoff=120",
       later},
      {"a factor above 1000 never raises the cap", "bulk", "microsoft",
       bo("bulk", "microsoft", 2000, later), "day=10 hourly=300 daily_ceiling=4000 backoff=120",
       later},
      {"no cap: a share of the daily ceiling", "bulk", "other", bo("bulk", "other", 250, later),
       "day=10 hourly=300 daily_ceiling=4000 backoff=1000", later},
      {"no cap, no ceiling: a share of 24 x hourly", "noceil", "other",
       bo("noceil", "other", 500, later), "day=10 hourly=300 daily_ceiling=none backoff=3600",
       later},
      {"nothing to scale: a factor does nothing", "plain", "other",
       bo("plain", "other", 500, later), plain},
      {"nothing to scale: a pause still pauses", "plain", "other", bo("plain", "other", 0, later),
       "daily_ceiling=none pause=0", later},
      {"pause", "bulk", "microsoft", bo("bulk", "microsoft", 0, later),
       "day=10 hourly=300 daily_ceiling=4000 pause=0", later},
      {"pause of an operator without a cap", "bulk", "other", bo("bulk", "other", 0, later),
       "day=10 hourly=300 daily_ceiling=4000 pause=0", later},
      {"expired exactly now: ignored", "bulk", "microsoft", bo("bulk", "microsoft", 0, now),
       "day=10 hourly=300 daily_ceiling=4000 cap=120", gate_lifts},
      {"expired before now: ignored", "bulk", "other", bo("bulk", "other", 0, now - 1), bulk},
      {"another stream's back-off: ignored", "bulk", "other", bo("warm", "other", 0, later), bulk},
      {"another operator's back-off: ignored", "bulk", "other", bo("bulk", "microsoft", 0, later),
       bulk},
      {"unknown operator: back-offs do not apply", "bulk", nullptr, bo("bulk", "other", 0, later),
       bulk},
      {"a factor does not open a gate", "bulk", "google", bo("bulk", "google", 500, later),
       "day=10 hourly=300 daily_ceiling=4000 gate=0", gate_lifts},
      {"a pause shorter than a gate does not hide it", "bulk", "google",
       bo("bulk", "google", 0, later), "day=10 hourly=300 daily_ceiling=4000 gate=0", gate_lifts},
      {"a pause longer than a gate binds", "bulk", "google",
       bo("bulk", "google", 0, at(kStart, 40)), "day=10 hourly=300 daily_ceiling=4000 pause=0",
       at(kStart, 40)},
      {"a pause never outlasts a gate with no date", "plain", "google",
       bo("plain", "google", 0, later), "daily_ceiling=none gate=0"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const StreamSpec* s = rs->stream(c.stream);
    REQUIRE(s != nullptr);
    const OperatorSpec* op = c.op != nullptr ? rs->op(c.op) : nullptr;
    const std::vector<Backoff> backoffs = {c.backoff};
    const LimitSet got = limits_for(*rs, *s, op, {}, backoffs, now);
    CHECK(summary(got) == c.want);
    CHECK(scopes_are_for(got, c.stream, c.op));
    if (!got.limits.empty() && got.limits.back().scope.kind == ScopeKind::OperatorDay) {
      const Limit& l = got.limits.back();
      CHECK(l.lifts == c.want_lifts);
      if (l.kind == LimitKind::Backoff || l.kind == LimitKind::Pause) {
        CHECK(l.detail == "451 4.7.500 throttled");
      }
    }
  }
}

TEST_CASE("limits_for: of several active back-offs the strongest applies") {
  const auto rs = rules();
  const UnixTime now = at(kStart, 10, 14, 0, 0);
  const std::vector<Backoff> backoffs = {
      {"bulk", "microsoft", 750, now + 3600, "a", "cli", 0},
      {"bulk", "microsoft", 250, now + 7200, "b", "classify", 0},
      {"bulk", "microsoft", 100, now, "expired", "classify", 0},
  };
  const LimitSet got = limits_for(*rs, *rs->stream("bulk"), rs->op("microsoft"), {}, backoffs, now);
  CHECK(summary(got) == "day=10 hourly=300 daily_ceiling=4000 backoff=30");
  REQUIRE_FALSE(got.limits.empty());
  CHECK(got.limits.back().detail == "b");
  CHECK(got.limits.back().lifts == now + 7200);
}

TEST_CASE("limits_for: day rollover at 00:00 UTC moves the warm-up day") {
  const auto rs = rules();
  const std::int64_t st = day_num(kStart);
  // Send-days: the start day reached min_daily, and the next day does so before midnight.
  const std::vector<DayCount> history = {{st, 400}, {st + 1, 60}};
  struct Case {
    std::string_view label;
    const char* stream;
    UnixTime now;
    std::int64_t want_day;
    std::int64_t want_hourly;
  };
  const Case cases[] = {
      {"calendar: last second of day 1", "bulk", at(kStart, 1, 23, 59, 59), 1, 50},
      {"calendar: first second of day 2", "bulk", at(kStart, 2, 0, 0, 0), 2, 150},
      {"calendar: last second of day 6", "bulk", at(kStart, 6, 23, 59, 59), 6, 250},
      {"calendar: first second of day 7", "bulk", at(kStart, 7, 0, 0, 0), 7, 300},
      {"calendar: last second before start", "bulk", at(kStart, 0, 0, 0, 0) - 1, 0, 50},
      {"send-days: today's sends count only tomorrow", "warm", at(kStart, 1, 23, 59, 59), 1, 50},
      {"send-days: after midnight they count", "warm", at(kStart, 2, 0, 0, 0), 2, 150},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const LimitSet got = limits_for(*rs, *rs->stream(c.stream), nullptr, history, {}, c.now);
    REQUIRE(got.warm_day.has_value());
    CHECK(*got.warm_day == c.want_day);
    REQUIRE_FALSE(got.limits.empty());
    CHECK(got.limits.front().kind == LimitKind::Hourly);
    CHECK(got.limits.front().limit == c.want_hourly);
  }
}

TEST_CASE("reopens: the window, the next 00:00 UTC, or when a gate or back-off lifts") {
  const UnixTime now = at("2026-11-22", 0, 13, 5, 0);
  const UnixTime midnight = at("2026-11-23");
  const std::int64_t m = minute_of(now) - 10;
  const std::vector<Bucket> full = {{m, 30}, {m + 5, 20}};
  const auto lim = [](ScopeKind s, LimitKind k, std::int64_t n, std::optional<UnixTime> lifts) {
    Limit l = limit_of(s, k, n, s == ScopeKind::OperatorDay ? "google" : "");
    l.lifts = lifts;
    return l;
  };
  struct Case {
    std::string_view label;
    Limit limit;
    UnixTime now;
    std::optional<UnixTime> want;
  };
  const Case cases[] = {
      {"hourly: when the window drops below the limit",
       lim(ScopeKind::StreamHour, LimitKind::Hourly, 50, {}), now, bucket_expiry(m)},
      {"hourly with room: now", lim(ScopeKind::StreamHour, LimitKind::Hourly, 51, {}), now, now},
      {"hourly limit 0: never", lim(ScopeKind::StreamHour, LimitKind::Hourly, 0, {}), now,
       std::nullopt},
      {"daily ceiling: next midnight", lim(ScopeKind::StreamDay, LimitKind::DailyCeiling, 4000, {}),
       now, midnight},
      {"cap: next midnight", lim(ScopeKind::OperatorDay, LimitKind::Cap, 120, {}), now, midnight},
      {"cap at 23:59:59: one second later", lim(ScopeKind::OperatorDay, LimitKind::Cap, 120, {}),
       midnight - 1, midnight},
      {"cap at 00:00:00: the midnight after", lim(ScopeKind::OperatorDay, LimitKind::Cap, 120, {}),
       midnight, midnight + kDaySeconds},
      {"calendar gate: its day", lim(ScopeKind::OperatorDay, LimitKind::Gate, 0, midnight + 7), now,
       midnight + 7},
      {"send-days gate: no date", lim(ScopeKind::OperatorDay, LimitKind::Gate, 0, {}), now,
       std::nullopt},
      {"pause: when it ends", lim(ScopeKind::OperatorDay, LimitKind::Pause, 0, now + 900), now,
       now + 900},
      {"back-off ending today: when it ends",
       lim(ScopeKind::OperatorDay, LimitKind::Backoff, 60, now + 900), now, now + 900},
      {"back-off ending after midnight: the day renews first",
       lim(ScopeKind::OperatorDay, LimitKind::Backoff, 60, midnight + 900), now, midnight},
      {"back-off with no end: next midnight",
       lim(ScopeKind::OperatorDay, LimitKind::Backoff, 60, {}), now, midnight},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    CHECK(reopens(c.limit, full, c.now) == c.want);
  }
}

TEST_CASE("format_utc: RFC 3339 UTC seconds") {
  struct Case {
    std::string_view label;
    UnixTime t;
    std::string_view want;
  };
  const Case cases[] = {
      {"epoch", 0, "1970-01-01T00:00:00Z"},
      {"one second before the epoch", -1, "1969-12-31T23:59:59Z"},
      {"leap day 2024", 1709210096, "2024-02-29T12:34:56Z"},
      {"last second of leap day 2000", 951868799, "2000-02-29T23:59:59Z"},
      {"2100 is no leap year", 4107542400, "2100-03-01T00:00:00Z"},
      {"a reopen time", 1795352700, "2026-11-22T13:05:00Z"},
      {"warm-up start", 1780358400, "2026-06-02T00:00:00Z"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    CHECK(format_utc(c.t) == c.want);
  }
}

TEST_CASE("over_limit_text: names the limit, counts, stream, operator and reopening") {
  const UnixTime tomorrow = at("2026-11-23");
  const auto lim = [](ScopeKind s, LimitKind k, std::int64_t n, std::string detail,
                      std::string op = "") {
    Limit l = limit_of(s, k, n, std::move(op));
    l.detail = std::move(detail);
    return l;
  };
  struct Case {
    std::string_view label;
    Limit limit;
    std::int64_t used;
    const char* op;
    std::optional<UnixTime> reopens_at;
    std::string_view want;
  };
  const Case cases[] = {
      {"cap", lim(ScopeKind::OperatorDay, LimitKind::Cap, 120, "", "google"), 120, "google",
       tomorrow,
       "rampart: cap (120/120) for stream bulk operator google; reopens 2026-11-23T00:00:00Z"},
      {"hourly, operator unknown", lim(ScopeKind::StreamHour, LimitKind::Hourly, 50, ""), 50, "",
       1795352700, "rampart: hourly (50/50) for stream bulk; reopens 2026-11-22T13:05:00Z"},
      {"daily ceiling", lim(ScopeKind::StreamDay, LimitKind::DailyCeiling, 4000, ""), 4000,
       "microsoft", tomorrow,
       "rampart: daily_ceiling (4000/4000) for stream bulk operator microsoft; reopens "
       "2026-11-23T00:00:00Z"},
      {"calendar gate", lim(ScopeKind::OperatorDay, LimitKind::Gate, 0, "until warm-up day 30"), 0,
       "google", at("2026-07-02"),
       "rampart: gate (0/0) for stream bulk operator google (until warm-up day 30); reopens "
       "2026-07-02T00:00:00Z"},
      {"send-days gate", lim(ScopeKind::OperatorDay, LimitKind::Gate, 0, "until warm-up day 30"), 0,
       "google", std::nullopt,
       "rampart: gate (0/0) for stream bulk operator google (until warm-up day 30); reopens at "
       "that warm-up day"},
      {"gate for good", lim(ScopeKind::OperatorDay, LimitKind::Gate, 0, ""), 0, "google",
       std::nullopt, "rampart: gate (0/0) for stream bulk operator google"},
      {"pause", lim(ScopeKind::OperatorDay, LimitKind::Pause, 0, "451 4.7.500 throttled"), 37,
       "microsoft", 1795352700,
       "rampart: pause (37/0) for stream bulk operator microsoft (451 4.7.500 throttled); reopens "
       "2026-11-22T13:05:00Z"},
      {"back-off", lim(ScopeKind::OperatorDay, LimitKind::Backoff, 60, "throttled"), 60,
       "microsoft", tomorrow,
       "rampart: backoff (60/60) for stream bulk operator microsoft (throttled); reopens "
       "2026-11-23T00:00:00Z"},
      {"no reopen time known", lim(ScopeKind::StreamHour, LimitKind::Hourly, 0, ""), 0, "",
       std::nullopt, "rampart: hourly (0/0) for stream bulk"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    CHECK(over_limit_text(c.limit, c.used, c.op, c.reopens_at) == c.want);
  }
}

TEST_CASE("lease_block: one at a time for small limits, a fiftieth, at most 1000") {
  struct Case {
    std::string_view label;
    std::int64_t limit;
    std::int64_t want;
  };
  const Case cases[] = {
      {"negative", -5, 1},
      {"zero", 0, 1},
      {"one", 1, 1},
      {"ramp day 0", 50, 1},
      {"99", 99, 1},
      {"100", 100, 2},
      {"ramp day 7", 300, 6},
      {"ceiling", 4000, 80},
      {"just below max", 49999, 999},
      {"max", 50000, 1000},
      {"above max", 10000000, 1000},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    CHECK(lease_block(c.limit) == c.want);
  }
}

TEST_CASE("lease_block: a send-days stream leases its day in blocks under min_daily") {
  const auto rs = rules();
  const UnixTime now = (*Date::parse(kStart)).days * kDaySeconds + 12 * 3600;
  struct Case {
    std::string_view label;
    std::string_view stream;
    std::int64_t want_max_block;
    std::int64_t want_block;
  };
  const Case cases[] = {
      {"send-days (min_daily 50): at most 12 at a time", "warm", 12, 12},
      {"calendar: a fiftieth of the ceiling", "bulk", 0, 80},
      {"calendar, no ceiling: counting only, 1000 at a time", "noceil", 0, 1000},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto set = limits_for(*rs, *rs->stream(c.stream), nullptr, {}, {}, now);
    const Limit* day = nullptr;
    for (const auto& l : set.limits) {
      if (l.scope.kind == ScopeKind::StreamDay) day = &l;
    }
    REQUIRE(day != nullptr);
    CHECK(day->max_block == c.want_max_block);
    CHECK(lease_block(*day) == c.want_block);
  }
}

TEST_CASE("grant: min(want, limit - used), never negative") {
  struct Case {
    std::string_view label;
    std::int64_t limit, used, want;
    std::int64_t want_granted;
  };
  const Case cases[] = {
      {"empty counter", 50, 0, 1, 1},
      {"the whole block fits", 100, 10, 20, 20},
      {"the block is cut to the room left", 50, 47, 6, 3},
      {"the last unit", 50, 49, 5, 1},
      {"full", 50, 50, 1, 0},
      {"over (limit lowered)", 50, 60, 1, 0},
      {"limit 0", 0, 0, 1, 0},
      {"negative limit", -1, 0, 1, 0},
      {"want 0", 50, 0, 0, 0},
      {"negative want", 50, 0, -3, 0},
      {"negative used (handed back past zero) is capped by want", 50, -5, 80, 55},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    CHECK(grant(c.limit, c.used, c.want) == c.want_granted);
  }
  static_assert(grant(50, 49, 5) == 1 && grant(50, 50, 5) == 0);
}
