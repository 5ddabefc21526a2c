// The in-memory budget (see wallet.hpp). Pure.
#include "policyd/core/wallet.hpp"

#include <algorithm>

namespace rampart::policyd {

bool Wallet::current(const Holding& h, const core::Limit& l, core::UnixTime now) {
  // A holding serves only the limit it was leased under (a reload, a new warm-up day or a
  // back-off changes the limit; its units then go back) and, for a day, only that day.
  if (h.limit != l.limit) return false;
  if (!l.scope.hourly() && h.bucket != core::day_of(now)) return false;
  return true;
}

void Wallet::retire(Holding& h) {
  // A spent lease goes back too, with nothing unused: the store then forgets it, so its lease
  // rows are the leases really outstanding (`rampart caps`), not history waiting for a sweep.
  if (h.lease_id != 0) returns_.push_back({h.lease_id, h.units});
  h.lease_id = 0;
  h.units = 0;
}

namespace {
std::vector<std::string> keys_of(std::span<const core::Limit> limits) {
  std::vector<std::string> keys;
  keys.reserve(limits.size());
  for (const auto& l : limits) keys.push_back(l.scope.key());
  return keys;
}
}  // namespace

Wallet::Check Wallet::check(std::span<const core::Limit> limits, core::UnixTime now) {
  const auto keys = keys_of(limits);
  return check(limits, keys, now);
}

Wallet::Check Wallet::check(std::span<const core::Limit> limits, std::span<const std::string> keys,
                            core::UnixTime now) {
  Check out;
  for (std::size_t i = 0; i < limits.size(); ++i) {
    const auto& l = limits[i];
    if (l.limit <= 0) {
      // The use to name is the scope's today; a day holding from yesterday says nothing of it.
      auto it = holdings_.find(keys[i]);
      const bool today =
          it != holdings_.end() && (l.scope.hourly() || it->second.bucket == core::day_of(now));
      return {State::Exhausted, i, today ? it->second.used : 0, {}};
    }
    auto it = holdings_.find(keys[i]);
    if (it == holdings_.end()) {
      out.refill.push_back(i);
      continue;
    }
    Holding& h = it->second;
    if (!current(h, l, now)) {
      retire(h);
      h.exhausted_until = 0;
      out.refill.push_back(i);
      continue;
    }
    if (h.units > 0 && h.expires > now) continue;
    if (h.units > 0) retire(h);  // expired: hand back, lease again
    if (h.exhausted_until > now) return {State::Exhausted, i, h.used, {}};
    out.refill.push_back(i);
  }
  out.state = out.refill.empty() ? State::Ready : State::Refill;
  return out;
}

void Wallet::spend(std::span<const core::Limit> limits) {
  const auto keys = keys_of(limits);
  spend(std::span<const std::string>(keys));
}

void Wallet::spend(std::span<const std::string> keys) {
  for (const auto& key : keys) {
    auto it = holdings_.find(key);
    if (it == holdings_.end() || it->second.units <= 0) continue;  // check() said Ready
    // `used` stays: the store charged the whole block when it granted it.
    --it->second.units;
  }
}

bool Wallet::refund(const std::string& scope_key, std::int64_t lease_id, std::int64_t bucket,
                    std::int64_t units) {
  if (lease_id == 0 || units <= 0) return false;
  auto it = holdings_.find(scope_key);
  if (it != holdings_.end() && it->second.lease_id == lease_id) {
    it->second.units += units;
    return true;
  }
  // The unit's lease is no longer in hand (small limits lease one unit at a time, and a spent
  // lease is forgotten by the store): take the units off the counter row itself.
  for (auto& r : refunds_) {
    if (r.scope == scope_key && r.bucket == bucket) {
      r.units += units;
      return false;
    }
  }
  refunds_.push_back({scope_key, bucket, units});
  return false;
}

std::vector<Refund> Wallet::refunds() {
  std::vector<Refund> out;
  out.swap(refunds_);
  return out;
}

void Wallet::credit(const core::Limit& limit, const Grant& grant, core::UnixTime now,
                    core::UnixTime expires) {
  Holding& h = holdings_[limit.scope.key()];
  auto exhausted_until = [&](const std::vector<core::Bucket>& window) {
    auto until = now + recheck_;
    if (const auto reopen = core::reopens(limit, window, now); reopen && *reopen > now) {
      until = std::min(until, *reopen);
    }
    return until;
  };
  if (grant.granted <= 0 && h.lease_id != 0 && h.units > 0 && h.expires > now &&
      current(h, limit, now)) {
    // An early (prefetch) ask found nothing more: keep spending what is in hand, and do not
    // ask again before the recheck.
    h.used = grant.used;
    h.window = grant.window;
    h.exhausted_until = exhausted_until(h.window);
    return;
  }
  retire(h);
  h.lease_id = grant.granted > 0 ? grant.lease_id : 0;
  h.bucket = limit.scope.hourly() ? core::minute_of(expires) : core::day_of(now);
  h.units = grant.granted;
  h.granted = grant.granted;
  h.limit = limit.limit;
  h.expires = expires;
  h.used = grant.used;
  h.window = grant.window;
  h.exhausted_until = grant.granted <= 0 ? exhausted_until(h.window) : 0;
}

bool Wallet::wants_prefetch(const core::Limit& limit, core::UnixTime now,
                            core::UnixTime margin) const {
  return wants_prefetch(limit, limit.scope.key(), now, margin);
}

bool Wallet::wants_prefetch(const core::Limit& limit, const std::string& key, core::UnixTime now,
                            core::UnixTime margin) const {
  if (limit.limit <= 0) return false;
  auto it = holdings_.find(key);
  if (it == holdings_.end()) return false;
  const Holding& h = it->second;
  if (h.lease_id == 0 || h.units <= 0 || h.expires <= now || !current(h, limit, now)) return false;
  if (h.exhausted_until > now) return false;  // an early ask just found nothing more
  // A day lease ends with its day; asking early would only lease the same day again.
  return h.units * 4 <= h.granted || (h.expires - now <= margin && limit.scope.hourly());
}

std::vector<HandBack> Wallet::hand_backs(core::UnixTime now) {
  for (auto& [key, h] : holdings_) {
    if (h.units > 0 && h.expires <= now) retire(h);
  }
  std::vector<HandBack> out;
  out.swap(returns_);
  return out;
}

std::vector<HandBack> Wallet::take_all() {
  for (auto& [key, h] : holdings_) retire(h);
  std::vector<HandBack> out;
  out.swap(returns_);
  holdings_.clear();
  return out;
}

const Holding* Wallet::holding(const std::string& scope_key) const {
  auto it = holdings_.find(scope_key);
  return it == holdings_.end() ? nullptr : &it->second;
}

}  // namespace rampart::policyd
