// The in-memory leased budget of rampart-policyd (policyd/core/wallet.hpp), and a simulation of
// incident 1 (FIELD-NOTES: ~29k sends in a day through cold IPs) against a fake shared counter
// that leases exactly as the real store does (core::grant, core::window_used). Time is passed
// in. Pure.
#include <doctest/doctest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/limits.hpp"
#include "core/ruleset.hpp"
#include "policyd/core/wallet.hpp"

using namespace rampart;
using namespace rampart::core;
using rampart::policyd::Grant;
using rampart::policyd::HandBack;
using rampart::policyd::Holding;
using rampart::policyd::Wallet;

namespace {

constexpr UnixTime kT0 = 1780394400;  // 2026-06-02T10:00:00Z
static_assert(kT0 % kDaySeconds == 10 * 3600);
constexpr UnixTime kMidnight = 1780444800;  // 2026-06-03T00:00:00Z
static_assert(kMidnight % kDaySeconds == 0 && kMidnight > kT0);

Limit hourly(std::int64_t n) {
  return {Scope{ScopeKind::StreamHour, "bulk", {}}, LimitKind::Hourly, n, {}, {}};
}
Limit daily(std::int64_t n) {
  return {Scope{ScopeKind::StreamDay, "bulk", {}}, LimitKind::DailyCeiling, n, {}, {}};
}
Limit cap(std::int64_t n) {
  return {Scope{ScopeKind::OperatorDay, "bulk", "microsoft"},
          n == 0 ? LimitKind::Gate : LimitKind::Cap,
          n,
          {},
          {}};
}

Grant granted(std::int64_t id, std::int64_t n, std::int64_t used, std::vector<Bucket> window = {}) {
  return {id, n, used, std::move(window)};
}

std::vector<HandBack> sorted(std::vector<HandBack> v) {
  std::sort(v.begin(), v.end(), [](const HandBack& a, const HandBack& b) {
    return a.lease_id != b.lease_id ? a.lease_id < b.lease_id : a.unused < b.unused;
  });
  return v;
}

// "11:3 12:7" for comparing hand-backs.
std::string str(const std::vector<HandBack>& v) {
  std::string out;
  for (const auto& h : sorted(v)) {
    if (!out.empty()) out += ' ';
    out += std::to_string(h.lease_id) + ":" + std::to_string(h.unused);
  }
  return out;
}

std::string refill_str(const Wallet::Check& c) {
  std::string out;
  for (auto i : c.refill) out += std::to_string(i);
  return out;
}

}  // namespace

TEST_CASE("Wallet::check: an empty wallet needs a lease for every limit") {
  Wallet w;
  const std::vector<Limit> limits = {hourly(50), daily(4000), cap(120)};
  const auto c = w.check(limits, kT0);
  CHECK(c.state == Wallet::State::Refill);
  CHECK(refill_str(c) == "012");
  CHECK(w.size() == 0);
  CHECK(w.hand_backs(kT0).empty());
}

TEST_CASE("Wallet: credit makes it Ready, spend decrements, running out asks for a refill") {
  Wallet w;
  const std::vector<Limit> limits = {hourly(300), daily(4000), cap(120)};
  const UnixTime exp = kT0 + 60;
  w.credit(limits[0], granted(11, 2, 2, {{minute_of(exp), 2}}), kT0, exp);
  w.credit(limits[1], granted(12, 80, 80), kT0, exp);
  w.credit(limits[2], granted(13, 3, 3), kT0, exp);
  CHECK(w.size() == 3);

  struct Step {
    std::string_view label;
    Wallet::State want;
    std::string_view want_refill;
    std::int64_t want_hour_units;  // after the step's spend, if Ready
  };
  const Step steps[] = {
      {"first", Wallet::State::Ready, "", 1},
      {"second", Wallet::State::Ready, "", 0},
      {"hourly ran out", Wallet::State::Refill, "0", 0},
  };
  for (const auto& s : steps) {
    CAPTURE(s.label);
    const auto c = w.check(limits, kT0 + 1);
    CHECK(c.state == s.want);
    CHECK(refill_str(c) == s.want_refill);
    if (c.state == Wallet::State::Ready) w.spend(limits);
    CHECK(w.holding("hour:bulk")->units == s.want_hour_units);
  }
  CHECK(w.holding("day:bulk")->units == 78);
  CHECK(w.holding("op:bulk/microsoft")->units == 1);
  // Spending does not move the shared use: leased units were charged when granted.
  CHECK(w.holding("day:bulk")->used == 80);
  CHECK(w.holding("op:bulk/microsoft")->used == 3);
  CHECK(w.holding("hour:bulk")->lease_id == 11);
  CHECK(w.holding("hour:bulk")->bucket == minute_of(exp));

  // A new lease for the hour; the spent one goes back with nothing unused (the store forgets it).
  w.credit(limits[0], granted(14, 6, 8), kT0 + 1, kT0 + 61);
  CHECK(w.check(limits, kT0 + 1).state == Wallet::State::Ready);
  CHECK(str(w.hand_backs(kT0 + 1)) == "11:0");
}

TEST_CASE("Wallet: a grant of 0 is believed until min(now + recheck, reopen), then Refill") {
  const std::int64_t m = minute_of(kT0);
  struct Case {
    std::string_view label;
    Limit limit;
    Grant grant;
    UnixTime now;
    UnixTime want_until;
  };
  const Case cases[] = {
      {"day ceiling: recheck first", daily(4000), granted(0, 0, 4000), kT0, kT0 + 5},
      {"day ceiling 2 s before midnight: the new day first", daily(4000), granted(0, 0, 4000),
       kMidnight - 2, kMidnight},
      {"hourly: the window reopens first", hourly(50), granted(0, 0, 50, {{m - 59, 50}}),
       bucket_expiry(m - 59) - 2, bucket_expiry(m - 59)},
      {"hourly: recheck first", hourly(50), granted(0, 0, 50, {{m, 50}}), kT0, kT0 + 5},
      {"hourly: the store's window has room (another host handed back)", hourly(50),
       granted(0, 0, 50, {{m, 10}}), kT0, kT0 + 5},
      {"cap: recheck first", cap(120), granted(0, 0, 120), kT0, kT0 + 5},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    Wallet w(5);
    const std::vector<Limit> limits = {c.limit};
    w.credit(c.limit, c.grant, c.now, c.now + 60);
    REQUIRE(w.holding(c.limit.scope.key()) != nullptr);
    CHECK(w.holding(c.limit.scope.key())->exhausted_until == c.want_until);
    CHECK(w.holding(c.limit.scope.key())->lease_id == 0);
    for (UnixTime t = c.now; t < c.want_until; ++t) {
      const auto got = w.check(limits, t);
      CHECK(got.state == Wallet::State::Exhausted);
      CHECK(got.index == 0);
      CHECK(got.used == c.grant.used);
      CHECK(got.refill.empty());
    }
    const auto after = w.check(limits, c.want_until);
    CHECK(after.state == Wallet::State::Refill);
    CHECK(refill_str(after) == "0");
    CHECK(w.hand_backs(c.want_until).empty());  // nothing was granted, nothing to give back
  }
}

TEST_CASE("Wallet: an exhausted limit stops the check, other limits keep their units") {
  Wallet w;
  const std::vector<Limit> limits = {hourly(50), daily(4000), cap(120)};
  w.credit(limits[1], granted(12, 80, 80), kT0, kT0 + 60);
  w.credit(limits[2], granted(0, 0, 120), kT0, kT0 + 60);
  // The hour needs a lease, but the cap is spent: no lease is asked for, the cap is named.
  const auto c = w.check(limits, kT0);
  CHECK(c.state == Wallet::State::Exhausted);
  CHECK(c.index == 2);
  CHECK(c.used == 120);
  CHECK(c.refill.empty());
  CHECK(w.holding("day:bulk")->units == 80);
}

TEST_CASE("Wallet: day rollover makes a day holding stale and hands its units back") {
  Wallet w;
  const std::vector<Limit> limits = {daily(4000), cap(120)};
  // Leased at 23:59:00 for the rest of the day, as the budget does (expires at midnight).
  const UnixTime now = kMidnight - 60;
  w.credit(limits[0], granted(7, 80, 80), now, kMidnight);
  w.credit(limits[1], granted(8, 2, 40), now, kMidnight);
  REQUIRE(w.check(limits, now).state == Wallet::State::Ready);
  w.spend(limits);
  REQUIRE(w.check(limits, kMidnight - 1).state == Wallet::State::Ready);
  w.spend(limits);
  CHECK(w.check(limits, kMidnight - 1).state == Wallet::State::Refill);  // the cap ran out

  struct Case {
    std::string_view label;
    UnixTime now;
    Wallet::State want;
    std::string_view want_refill;
    std::string_view want_back;
  };
  const Case cases[] = {
      {"00:00:00 the next day: stale, handed back once (the spent cap lease with 0)", kMidnight,
       Wallet::State::Refill, "01", "7:78 8:0"},
      {"asked again: nothing more to give", kMidnight + 1, Wallet::State::Refill, "01", ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = w.check(limits, c.now);
    CHECK(got.state == c.want);
    CHECK(refill_str(got) == c.want_refill);
    CHECK(str(w.hand_backs(c.now)) == c.want_back);
  }

  // A day holding that is still inside its lease but belongs to yesterday is stale too.
  Wallet w2;
  w2.credit(limits[0], granted(9, 80, 80), kMidnight - 10, kMidnight + 3600);
  CHECK(w2.check(limits, kMidnight - 1).refill == std::vector<std::size_t>{1});
  CHECK(w2.check(limits, kMidnight).refill == std::vector<std::size_t>{0, 1});
  CHECK(str(w2.hand_backs(kMidnight)) == "9:80");
}

TEST_CASE("Wallet: an exhausted day scope is retried on the new day at once") {
  Wallet w(3600);
  const std::vector<Limit> limits = {daily(4000)};
  w.credit(limits[0], granted(0, 0, 4000), kMidnight - 60, kMidnight);
  CHECK(w.holding("day:bulk")->exhausted_until == kMidnight);
  CHECK(w.check(limits, kMidnight - 1).state == Wallet::State::Exhausted);
  CHECK(w.check(limits, kMidnight).state == Wallet::State::Refill);
}

TEST_CASE("Wallet: an hourly holding is handed back when its lease expires") {
  const std::vector<Limit> limits = {hourly(300)};
  struct Case {
    std::string_view label;
    bool check_first;  // check() finds the expiry before hand_backs() does
  };
  const Case cases[] = {{"found by hand_backs", false}, {"found by check", true}};
  for (const auto& c : cases) {
    CAPTURE(c.label);
    Wallet w;
    w.credit(limits[0], granted(9, 6, 6), kT0, kT0 + 60);
    for (int i = 0; i < 2; ++i) {
      REQUIRE(w.check(limits, kT0 + 10).state == Wallet::State::Ready);
      w.spend(limits);
    }
    CHECK(w.hand_backs(kT0 + 59).empty());
    CHECK(w.check(limits, kT0 + 59).state == Wallet::State::Ready);
    if (c.check_first) {
      const auto got = w.check(limits, kT0 + 60);
      CHECK(got.state == Wallet::State::Refill);
    }
    CHECK(str(w.hand_backs(kT0 + 60)) == "9:4");
    CHECK(w.hand_backs(kT0 + 61).empty());
    CHECK(w.holding("hour:bulk")->units == 0);
    CHECK(w.check(limits, kT0 + 60).state == Wallet::State::Refill);
  }
}

TEST_CASE("Wallet: a changed limit retires the holding leased under the old one") {
  struct Case {
    std::string_view label;
    Limit old_limit;
    Limit new_limit;
  };
  Limit backoff = cap(60);
  backoff.kind = LimitKind::Backoff;
  const Case cases[] = {
      {"a back-off halves the cap", cap(120), backoff},
      {"a new ramp step", hourly(50), hourly(150)},
      {"a reload lowers the ceiling", daily(4000), daily(2000)},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    Wallet w;
    w.credit(c.old_limit, granted(5, 3, 3), kT0, kT0 + 60);
    CHECK(w.check(std::vector<Limit>{c.old_limit}, kT0).state == Wallet::State::Ready);
    const auto got = w.check(std::vector<Limit>{c.new_limit}, kT0 + 1);
    CHECK(got.state == Wallet::State::Refill);
    CHECK(refill_str(got) == "0");
    CHECK(str(w.hand_backs(kT0 + 1)) == "5:3");
    CHECK(w.hand_backs(kT0 + 2).empty());
  }
}

TEST_CASE("Wallet: a limit of 0 is Exhausted without a lease") {
  struct Case {
    std::string_view label;
    bool held_before;  // a holding leased under the old cap exists
    UnixTime now;
    std::int64_t want_used;
  };
  const Case cases[] = {
      {"gate on an empty wallet", false, kT0, 0},
      {"pause after sending today: today's use", true, kT0 + 10, 40},
      {"pause on the next day: yesterday's use is not today's", true, kMidnight + 10, 0},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    Wallet w;
    if (c.held_before) w.credit(cap(120), granted(8, 2, 40), kT0, kT0 + 60);
    Limit pause = cap(0);
    pause.kind = LimitKind::Pause;
    const std::vector<Limit> limits = {hourly(50), daily(4000), pause};
    const auto got = w.check(limits, c.now);
    CHECK(got.state == Wallet::State::Exhausted);
    CHECK(got.index == 2);
    CHECK(got.used == c.want_used);
    CHECK(got.refill.empty());
  }
}

TEST_CASE("Wallet::refund: into the lease the unit came from, else off the store's counter") {
  Wallet w;
  const std::vector<Limit> limits = {hourly(300)};
  const UnixTime exp = kT0 + 60;
  w.credit(limits[0], granted(21, 2, 2), kT0, exp);
  REQUIRE(w.check(limits, kT0).state == Wallet::State::Ready);
  w.spend(limits);
  REQUIRE(w.holding("hour:bulk")->units == 1);
  const std::int64_t bucket = w.holding("hour:bulk")->bucket;
  struct Case {
    std::string_view label;
    std::string key;
    std::int64_t lease;
    std::int64_t units;
    bool want;
    std::int64_t want_units;
  };
  const Case cases[] = {
      {"another lease id: off the counter", "hour:bulk", 99, 1, false, 1},
      {"lease id 0: nothing", "hour:bulk", 0, 1, false, 1},
      {"the same lease", "hour:bulk", 21, 1, true, 2},
      {"the same lease, several", "hour:bulk", 21, 3, true, 5},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    CHECK(w.refund(c.key, c.lease, bucket, c.units) == c.want);
    CHECK(w.holding("hour:bulk")->units == c.want_units);
  }
  CHECK(w.holding("hour:bulk")->used == 2);
  CHECK(w.has_pending());  // the refund off the counter waits for Budget::hand_back
  auto refunds = w.refunds();
  REQUIRE(refunds.size() == 1);
  CHECK(refunds[0].scope == "hour:bulk");
  CHECK(refunds[0].bucket == bucket);
  CHECK(refunds[0].units == 1);
  CHECK(w.refunds().empty());
  CHECK_FALSE(w.has_pending());
  CHECK(w.hand_backs(kT0).empty());
  // Once the lease is replaced (its unspent units went back with it), a unit refunded to it
  // comes off the counter row it was charged to: never into the new lease. Refunds to one row
  // add up.
  w.credit(limits[0], granted(22, 6, 8), kT0 + 1, kT0 + 61);
  CHECK_FALSE(w.refund("hour:bulk", 21, bucket));
  CHECK_FALSE(w.refund("hour:bulk", 21, bucket, 2));
  CHECK(w.holding("hour:bulk")->units == 6);
  CHECK(str(w.hand_backs(kT0 + 1)) == "21:5");
  refunds = w.refunds();
  REQUIRE(refunds.size() == 1);
  CHECK(refunds[0].units == 3);
}

TEST_CASE("Wallet::take_all: every unspent lease, once") {
  Wallet w;
  const std::vector<Limit> limits = {hourly(300), daily(4000), cap(120)};
  w.credit(limits[0], granted(1, 6, 6), kT0, kT0 + 60);
  w.credit(limits[1], granted(2, 80, 80), kT0, kT0 + 60);
  w.credit(limits[2], granted(3, 1, 120), kT0, kT0 + 60);
  REQUIRE(w.check(limits, kT0).state == Wallet::State::Ready);
  w.spend(limits);  // the cap's only unit is spent: lease 3 goes back with 0 unused
  // A replaced hour lease is waiting in the returns already.
  w.credit(limits[0], granted(4, 6, 12), kT0 + 1, kT0 + 61);
  CHECK(str(w.take_all()) == "1:5 2:79 3:0 4:6");
  CHECK(w.size() == 0);
  CHECK(w.take_all().empty());
  CHECK(w.hand_backs(kT0 + 3600).empty());
  CHECK(w.check(limits, kT0 + 2).state == Wallet::State::Refill);
}

namespace {

// The shared counter as the real store keeps it (common/store/store.cpp SqlStore::lease and
// return_lease): per scope, rows (bucket, used); a grant is core::grant() of the limit against
// core::window_used() of the minute rows read from minute_of(now) - 61 on (hour) or the day's row.
struct FakeStore {
  struct Lease {
    std::string scope;
    std::int64_t bucket = 0;
    std::int64_t units = 0;
  };
  std::map<std::string, std::map<std::int64_t, std::int64_t>> counters;
  std::map<std::int64_t, Lease> leases;
  std::int64_t next_id = 1;
  int calls = 0;

  std::vector<Bucket> window(const std::string& scope, UnixTime now) const {
    std::vector<Bucket> out;
    if (auto it = counters.find(scope); it != counters.end()) {
      for (const auto& [b, u] : it->second) {
        if (b >= minute_of(now) - 61) out.push_back({b, u});
      }
    }
    return out;
  }

  Grant lease(const Limit& limit, UnixTime now, UnixTime expires) {
    ++calls;
    const std::string scope = limit.scope.key();
    const std::int64_t bucket = limit.scope.charge_bucket(now, expires);
    Grant g;
    std::int64_t used = 0;
    if (limit.scope.hourly()) {
      g.window = window(scope, now);
      used = window_used(g.window, now);
    } else {
      used = counters[scope][bucket];
    }
    g.granted = grant(limit.limit, used, lease_block(limit.limit));
    g.used = used + g.granted;
    if (g.granted == 0) return g;
    counters[scope][bucket] += g.granted;
    if (limit.scope.hourly()) g.window = window(scope, now);
    g.lease_id = next_id++;
    leases[g.lease_id] = {scope, bucket, g.granted};
    return g;
  }

  void return_lease(std::int64_t id, std::int64_t unused) {
    auto it = leases.find(id);
    if (it == leases.end()) return;
    auto& used = counters[it->second.scope][it->second.bucket];
    used = std::max<std::int64_t>(0, used - std::min(unused, it->second.units));
    leases.erase(it);
  }
};

// One policy request the way policyd/server.cpp answers it: hand back stale leases, check,
// lease what is missing (hour leases live `ttl`, day leases at most until midnight), check
// again. True when the recipient is admitted (DUNNO, charged).
struct Host {
  Wallet wallet{5};
  UnixTime ttl = 60;

  bool request(FakeStore& store, const std::vector<Limit>& limits, UnixTime now) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      for (const auto& b : wallet.hand_backs(now)) store.return_lease(b.lease_id, b.unused);
      const auto c = wallet.check(limits, now);
      if (c.state == Wallet::State::Ready) {
        wallet.spend(limits);
        return true;
      }
      if (c.state == Wallet::State::Exhausted) return false;
      for (auto i : c.refill) {
        const Limit& l = limits[i];
        UnixTime expires = now + ttl;
        if (!l.scope.hourly()) expires = std::min(expires, (day_of(now) + 1) * kDaySeconds);
        wallet.credit(l, store.lease(l, now, expires), now, expires);
      }
    }
    FAIL("a request needed more than 3 rounds of leases");
    return false;
  }
};

// The largest number of admissions in any sliding hour (t - 3600, t].
std::int64_t max_per_sliding_hour(const std::vector<UnixTime>& admitted) {
  std::int64_t best = 0;
  std::size_t lo = 0;
  for (std::size_t hi = 0; hi < admitted.size(); ++hi) {
    while (admitted[lo] <= admitted[hi] - kWindowSeconds) ++lo;
    best = std::max<std::int64_t>(best, static_cast<std::int64_t>(hi - lo + 1));
  }
  return best;
}

// A stream at warm-up day `day` of the consumer ramp (day 0: 50/hour), ceiling 4000/day.
std::shared_ptr<const RuleSet> incident_rules() {
  RulesSpec spec;
  spec.ramps = {{"consumer", {{0, 50}, {2, 150}, {4, 250}, {7, 300}}, {}}};
  StreamSpec s;
  s.name = "bulk";
  s.ports = {25};
  s.warmup = Warmup{*Date::parse("2026-06-02"), WarmupCount::Calendar, "consumer", 50};
  s.daily_ceiling = 4000;
  spec.streams = {s};
  auto c = RuleSet::compile(std::move(spec));
  REQUIRE_MESSAGE(c.has_value(), c.error().what);
  return *c;
}

}  // namespace

TEST_CASE("incident 1: a burst at warm-up day 0 admits 50, the 51st waits for the window") {
  const auto rs = incident_rules();
  const StreamSpec& bulk = *rs->stream("bulk");
  const UnixTime t0 = kT0;  // 10:00:00 on the start day: warm-up day 0
  const auto limits = limits_for(*rs, bulk, nullptr, {}, {}, t0).limits;
  REQUIRE(limits.size() == 2);
  REQUIRE(limits[0].kind == LimitKind::Hourly);
  REQUIRE(limits[0].limit == 50);

  FakeStore store;
  Host host;
  // The campaign pushes 2,000 recipients within one minute.
  std::vector<UnixTime> admitted;
  for (std::int64_t i = 0; i < 2000; ++i) {
    const UnixTime now = t0 + i * 60 / 2000;
    if (host.request(store, limits, now)) admitted.push_back(now);
  }
  CHECK(admitted.size() == 50);
  // Refused requests are answered from memory: the store is asked about once per recheck.
  CHECK(store.calls <= 50 + 1 + 60 / 5 + 2);

  // When the window reopens, as the engine predicts it from the shared counter.
  const auto window = store.window("hour:bulk", t0 + 60);
  const auto predicted = window_reopens(window, 50, t0 + 60);
  REQUIRE(predicted.has_value());
  CHECK(*predicted >= admitted.back() + kWindowSeconds);  // never early
  CHECK(*predicted <= t0 + kWindowSeconds + 3 * 60);      // late by at most lease + minute
  CHECK(window_used(window, *predicted - 1) == 50);

  // Demand continues every second; the 51st gets in exactly when predicted.
  UnixTime first = 0;
  for (UnixTime now = t0 + 60; now <= t0 + 2 * kWindowSeconds && first == 0; ++now) {
    if (host.request(store, limits, now)) first = now;
  }
  CHECK(first == *predicted);
}

TEST_CASE("incident 1: steady demand for a day never passes the hourly limit in a sliding hour") {
  const auto rs = incident_rules();
  const StreamSpec& bulk = *rs->stream("bulk");
  struct Case {
    std::string_view label;
    UnixTime start;  // the simulated day begins here
    int hosts;       // daemons sharing the store (they take turns answering)
    UnixTime every;  // one request per `every` seconds
    std::int64_t want_hourly;
    std::int64_t want_min_total;  // the ramp is used, not starved
    std::int64_t want_max_total;  // 24 x hourly, or the daily ceiling when that binds first
  };
  const UnixTime day0 = kT0 - 10 * 3600;  // 2026-06-02T00:00:00Z, warm-up day 0
  const UnixTime day7 = day0 + 7 * kDaySeconds;
  const Case cases[] = {
      {"day 0, one host, a request a second", day0, 1, 1, 50, 22 * 50, 24 * 50},
      {"day 0, two hosts", day0, 2, 1, 50, 22 * 50, 24 * 50},
      {"day 0, one host, a request every 7 s", day0, 1, 7, 50, 22 * 50, 24 * 50},
      {"day 7, one host: blocks of 6, hand-backs, the ceiling", day7, 1, 1, 300, 4000, 4000},
      {"day 7, three hosts holding blocks", day7, 3, 1, 300, 4000 - 3 * 80, 4000},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    FakeStore store;
    std::vector<Host> hosts(static_cast<std::size_t>(c.hosts));
    std::vector<UnixTime> admitted;
    std::vector<Limit> limits;
    for (UnixTime now = c.start, i = 0; now < c.start + kDaySeconds; now += c.every, ++i) {
      if ((now - c.start) % 60 == 0 || limits.empty()) {
        limits = limits_for(*rs, bulk, nullptr, {}, {}, now).limits;  // as a reload would
      }
      auto& host = hosts[static_cast<std::size_t>(i % c.hosts)];
      if (host.request(store, limits, now)) admitted.push_back(now);
    }
    REQUIRE(limits.front().limit == c.want_hourly);
    CHECK(max_per_sliding_hour(admitted) <= c.want_hourly);
    CHECK(static_cast<std::int64_t>(admitted.size()) >= c.want_min_total);
    CHECK(static_cast<std::int64_t>(admitted.size()) <= c.want_max_total);
    // Once every host handed its leases back, the day counter is exactly what was admitted.
    for (auto& h : hosts) {
      for (const auto& b : h.wallet.take_all()) store.return_lease(b.lease_id, b.unused);
    }
    CHECK(store.counters["day:bulk"][day_of(c.start)] ==
          static_cast<std::int64_t>(admitted.size()));
  }
}

TEST_CASE("Wallet::wants_prefetch: a quarter left or an hour lease about to expire") {
  const Limit h = hourly(400);
  const Limit d = daily(4000);
  struct Case {
    std::string_view label;
    Limit limit;
    std::int64_t granted;
    std::int64_t spend;
    UnixTime now;
    bool want;
  };
  const Case cases[] = {
      {"fresh hour lease", h, 8, 0, kT0, false},
      {"hour: 3 of 8 left", h, 8, 5, kT0, false},
      {"hour: 2 of 8 left (a quarter)", h, 8, 6, kT0, true},
      {"hour: expires in 10 s", h, 8, 0, kT0 + 50, true},
      {"hour: expires in 11 s", h, 8, 0, kT0 + 49, false},
      {"hour: expired", h, 8, 0, kT0 + 60, false},
      {"hour: spent out (Refill, not prefetch)", h, 8, 8, kT0, false},
      {"day: expiring soon is no reason", d, 80, 0, kT0 + 55, false},
      {"day: a quarter left", d, 80, 60, kT0, true},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    Wallet w;
    const std::vector<Limit> limits = {c.limit};
    w.credit(c.limit, granted(5, c.granted, c.granted), kT0, kT0 + 60);
    for (std::int64_t i = 0; i < c.spend; ++i) {
      REQUIRE(w.check(limits, kT0).state == Wallet::State::Ready);
      w.spend(limits);
    }
    CHECK(w.wants_prefetch(c.limit, c.now) == c.want);
  }
}

TEST_CASE("Wallet::credit: an early ask that finds nothing keeps what is in hand") {
  Wallet w(5);
  const std::vector<Limit> limits = {hourly(400)};
  w.credit(limits[0], granted(5, 8, 8), kT0, kT0 + 60);
  for (int i = 0; i < 6; ++i) {
    REQUIRE(w.check(limits, kT0).state == Wallet::State::Ready);
    w.spend(limits);
  }
  REQUIRE(w.wants_prefetch(limits[0], kT0));
  w.credit(limits[0], granted(6, 0, 400), kT0 + 1, kT0 + 61);  // the store is out
  CHECK(w.holding("hour:bulk")->lease_id == 5);
  CHECK(w.holding("hour:bulk")->units == 2);
  CHECK(w.holding("hour:bulk")->used == 400);
  CHECK_FALSE(w.wants_prefetch(limits[0], kT0 + 1));  // not again before the recheck
  CHECK(w.hand_backs(kT0 + 1).empty());
  for (int i = 0; i < 2; ++i) {
    REQUIRE(w.check(limits, kT0 + 2).state == Wallet::State::Ready);
    w.spend(limits);
  }
  const auto got = w.check(limits, kT0 + 2);
  CHECK(got.state == Wallet::State::Exhausted);  // in hand spent, store out until the recheck
  CHECK(got.used == 400);
  CHECK(w.check(limits, kT0 + 6).state == Wallet::State::Refill);
}

TEST_CASE("Wallet: the overloads given scope keys agree with those that build them") {
  const std::vector<Limit> limits = {hourly(300), daily(4000), cap(120)};
  const std::vector<std::string> keys = {"hour:bulk", "day:bulk", "op:bulk/microsoft"};
  for (std::size_t i = 0; i < limits.size(); ++i) CHECK(limits[i].scope.key() == keys[i]);
  const UnixTime exp = kT0 + 60;
  Wallet by_limit;
  Wallet by_key;
  for (auto* w : {&by_limit, &by_key}) {
    CHECK(w->check(limits, kT0).state == Wallet::State::Refill);
    w->credit(limits[0], granted(11, 2, 2, {{minute_of(exp), 2}}), kT0, exp);
    w->credit(limits[1], granted(12, 80, 80), kT0, exp);
    w->credit(limits[2], granted(13, 8, 8), kT0, exp);
  }
  struct Step {
    std::string_view label;
    Wallet::State want;
    std::string_view want_refill;
  };
  const Step steps[] = {
      {"first", Wallet::State::Ready, ""},
      {"second", Wallet::State::Ready, ""},
      {"hourly ran out", Wallet::State::Refill, "0"},
  };
  for (const auto& s : steps) {
    CAPTURE(s.label);
    const auto a = by_limit.check(limits, kT0 + 1);
    const auto b = by_key.check(limits, keys, kT0 + 1);
    CHECK(a.state == s.want);
    CHECK(b.state == s.want);
    CHECK(refill_str(a) == s.want_refill);
    CHECK(refill_str(b) == s.want_refill);
    if (a.state == Wallet::State::Ready) by_limit.spend(limits);
    if (b.state == Wallet::State::Ready) by_key.spend(std::span<const std::string>(keys));
    for (std::size_t i = 0; i < limits.size(); ++i) {
      CAPTURE(keys[i]);
      CHECK(by_limit.holding(keys[i])->units == by_key.holding(keys[i])->units);
      CHECK(by_limit.wants_prefetch(limits[i], kT0 + 1) ==
            by_key.wants_prefetch(limits[i], keys[i], kT0 + 1));
    }
  }
  // 8 granted, 2 spent: still more than a quarter left; the day (80, 78 left) too.
  CHECK_FALSE(by_key.wants_prefetch(limits[2], keys[2], kT0 + 1));
  CHECK(by_key.holding("op:bulk/microsoft")->units == 6);
}
