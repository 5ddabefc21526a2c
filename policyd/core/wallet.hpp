// The budget one rampart-policyd holds in memory: per scope, the unspent part of the last lease
// taken from the shared counter, so a request is answered from memory and the store is asked
// only once per block. Knows when a holding went stale (its day ended, its lease expired, the
// limit it was leased under changed) and hands those back; remembers an exhausted scope for a
// moment so refused requests do not hammer the store. Pure; no I/O, no clock.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/limits.hpp"

namespace rampart::policyd {

struct Grant {  // what the store answered to one lease request
  std::int64_t lease_id = 0;
  std::int64_t granted = 0;
  std::int64_t used = 0;  // the scope's shared use after the grant
  std::vector<core::Bucket> window;
};

struct Holding {
  std::int64_t lease_id = 0;
  std::int64_t bucket = 0;   // day scopes: the day it was leased for
  std::int64_t units = 0;    // unspent
  std::int64_t granted = 0;  // the lease's size
  std::int64_t limit = 0;    // the limit it was leased under
  core::UnixTime expires = 0;
  std::int64_t used = 0;  // shared use at the last grant (leased units count as used)
  std::vector<core::Bucket> window;
  core::UnixTime exhausted_until = 0;  // a grant of 0: answer from memory until then
};

struct HandBack {  // an unspent lease to return to the store
  std::int64_t lease_id = 0;
  std::int64_t unused = 0;
};

struct Refund {  // units to take back off a counter row (their lease is no longer in hand)
  std::string scope;
  std::int64_t bucket = 0;
  std::int64_t units = 0;
};

class Wallet {
 public:
  enum class State : std::uint8_t {
    Ready,      // every limit has a unit in hand: spend() and answer DUNNO
    Refill,     // `refill` limits need a lease first (the store is asked, then check again)
    Exhausted,  // limits[index] has no budget: over that limit
  };
  struct Check {
    State state = State::Ready;
    std::size_t index = 0;            // Exhausted: the limit that is spent
    std::int64_t used = 0;            // Exhausted: its shared use, for the reply text
    std::vector<std::size_t> refill;  // Refill: indexes into limits
  };
  // How long an exhausted scope is believed without asking the store again (another host may
  // hand units back, a back-off may end); never past the limit's own reopening.
  explicit Wallet(core::UnixTime recheck_seconds = 5) : recheck_(recheck_seconds) {}

  // Limits with limit 0 (gates, pauses) are Exhausted without a lease.
  Check check(std::span<const core::Limit> limits, core::UnixTime now);
  // The same with each limit's scope key given (keys[i] == limits[i].scope.key()), so a caller
  // that keeps its limits does not build the keys again for every request.
  Check check(std::span<const core::Limit> limits, std::span<const std::string> keys,
              core::UnixTime now);
  // Spends one unit of every limit; only after check() said Ready at the same `now`.
  void spend(std::span<const core::Limit> limits);
  // The same by the limits' scope keys.
  void spend(std::span<const std::string> keys);
  // Puts back `units` spent from lease `lease_id` (charged to counter row `bucket`) of
  // `scope_key`, so a held message is charged once, by `rampart release`: into the holding when
  // it is still that lease (true), else to the store through refunds() (false). Lease 0: nothing.
  bool refund(const std::string& scope_key, std::int64_t lease_id, std::int64_t bucket,
              std::int64_t units = 1);
  // Refunds for the store to take off its counters (Store::uncharge), emptying the list.
  std::vector<Refund> refunds();
  // Whether the next lease for `limit` should be asked for now, before this one runs out: a
  // quarter or less of it is left, or it expires within `margin` seconds. Keeps requests from
  // waiting on the store while the budget lasts.
  bool wants_prefetch(const core::Limit& limit, core::UnixTime now,
                      core::UnixTime margin = 10) const;
  // The same with the limit's scope key given.
  bool wants_prefetch(const core::Limit& limit, const std::string& key, core::UnixTime now,
                      core::UnixTime margin = 10) const;
  // Records a store answer for `limit`; the holding it replaces goes to hand_backs().
  void credit(const core::Limit& limit, const Grant& grant, core::UnixTime now,
              core::UnixTime expires);
  // Leases to return now: stale ones found by check()/credit(), plus those expired at `now`.
  std::vector<HandBack> hand_backs(core::UnixTime now);
  // Every lease still holding units (shutdown), emptying the wallet.
  std::vector<HandBack> take_all();

  // Whether check()/refund() left hand-backs or refunds waiting (expired leases are found by
  // hand_backs(now) itself, on a timer).
  bool has_pending() const { return !returns_.empty() || !refunds_.empty(); }
  const Holding* holding(const std::string& scope_key) const;
  std::size_t size() const { return holdings_.size(); }

 private:
  static bool current(const Holding& h, const core::Limit& l, core::UnixTime now);
  void retire(Holding& h);

  core::UnixTime recheck_;
  std::unordered_map<std::string, Holding> holdings_;
  std::vector<HandBack> returns_;
  std::vector<Refund> refunds_;
};

}  // namespace rampart::policyd
