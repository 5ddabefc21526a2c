// The store side of rampart-policyd: one thread owns the store connection (a slow or dead
// database never blocks the event loop), leases budget blocks into the in-memory Wallet, hands
// unspent leases back, and refreshes what decisions read besides the rules (back-offs, each
// stream's day history). Everything here but the worker's jobs runs on the event loop thread.
#pragma once

#include <utility>  // before asio (GCC 12)

#include <boost/asio.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/limits.hpp"
#include "core/ruleset.hpp"
#include "obs/clock.hpp"
#include "policyd/core/wallet.hpp"
#include "store/store.hpp"

namespace rampart::policyd {

// What a refresh brings back from the store.
struct Snapshot {
  std::shared_ptr<const core::RuleSet> rules;  // nullptr: unchanged (or the reload failed)
  std::int64_t version = -1;                   // rules_version of `rules`
  std::string error;                           // a failed read or reload, for the log
  // Read this time? A failed read keeps what the daemon holds: with the store unreachable, a
  // pause must not lapse (nor a send-days warm-up restart) because a poll failed.
  bool backoffs_read = false;
  std::vector<core::Backoff> backoffs;
  bool history_read = false;
  std::map<std::string, std::vector<core::DayCount>, std::less<>> history;  // by stream
};

class Budget {
 public:
  struct Settings {
    std::string host;
    std::chrono::seconds lease_ttl{60};
    std::chrono::seconds store_retry{5};  // after a store failure, fail fast for this long
  };
  Budget(boost::asio::io_context& io, std::unique_ptr<store::Store> store, Settings settings);
  ~Budget();
  Budget(const Budget&) = delete;
  Budget& operator=(const Budget&) = delete;

  Wallet& wallet() { return wallet_; }

  // Leases every limit in `limits` (copied) that the wallet needs, coalescing with refills
  // already under way for the same scope; `done(store_ok)` runs on the event loop once all
  // have answered. store_ok false: at least one lease failed for want of the store.
  void refill(std::vector<core::Limit> limits, std::function<void(bool store_ok)> done);

  // Leases the next block of each limit in the background (Wallet::wants_prefetch), unless a
  // lease for that scope is already on its way. Nobody waits for it.
  void prefetch(std::vector<core::Limit> limits);

  // Reads rules (when rules_version moved or `force`), back-offs and day histories on the
  // worker; `done` gets them on the event loop. Also sweeps forfeited leases and old buckets.
  void refresh(bool force, std::function<void(Snapshot)> done);

  // Hands back the wallet's stale and expired leases (call periodically).
  void hand_back(core::UnixTime now);
  // Shutdown: hands back every lease, waits for the worker to finish, and stops it.
  void drain();

 private:
  template <class Job>
  void on_worker(Job&& job) {
    boost::asio::post(worker_, std::forward<Job>(job));
  }

  boost::asio::io_context& io_;
  std::unique_ptr<store::Store> store_;  // used on the worker thread only
  Settings settings_;
  boost::asio::thread_pool worker_{1};
  Wallet wallet_;
  std::unordered_map<std::string, std::vector<std::function<void(bool)>>> pending_;
  core::UnixTime store_down_until_ = 0;
  std::int64_t seen_version_ = -1;  // worker thread only
};

using obs::now_utc;

}  // namespace rampart::policyd
