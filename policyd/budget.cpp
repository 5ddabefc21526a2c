// The store side of rampart-policyd (see budget.hpp).
#include "policyd/budget.hpp"

#include <chrono>
#include <set>

#include <fmt/format.h>

#include "obs/clock.hpp"
#include "obs/log.hpp"

namespace rampart::policyd {

namespace {
std::string quoted(std::string_view s) {
  std::string out;
  for (char c : s) out += (c == '"' || c == '\n' || c == '\r') ? '\'' : c;
  return out;
}
}  // namespace

Budget::Budget(boost::asio::io_context& io, std::unique_ptr<store::Store> store, Settings settings)
    : io_(io), store_(std::move(store)), settings_(std::move(settings)) {}

Budget::~Budget() { worker_.join(); }

void Budget::refill(std::vector<core::Limit> limits, std::function<void(bool)> done) {
  const core::UnixTime now = obs::now_utc();
  if (now < store_down_until_) {
    done(false);
    return;
  }
  // One countdown shared by this request's scopes.
  struct Join {
    std::size_t left = 0;
    bool ok = true;
    std::function<void(bool)> done;
  };
  auto join = std::make_shared<Join>();
  join->done = std::move(done);
  join->left = limits.size();
  if (limits.empty()) {
    join->done(true);
    return;
  }
  for (auto& limit : limits) {
    auto waiter = [join](bool ok) {
      join->ok = join->ok && ok;
      if (--join->left == 0) join->done(join->ok);
    };
    const std::string key = limit.scope.key();
    auto [it, first] = pending_.try_emplace(key);
    it->second.push_back(std::move(waiter));
    if (!first) continue;  // a lease for this scope is already on its way

    const auto ttl = settings_.lease_ttl.count();
    core::UnixTime expires = now + ttl;
    if (!limit.scope.hourly())
      expires = std::min(expires, (core::day_of(now) + 1) * core::kDaySeconds);
    store::LeaseRequest req{key,
                            limit.scope.hourly(),
                            limit.scope.charge_bucket(now, expires),
                            limit.limit,
                            core::lease_block(limit),
                            now,
                            expires,
                            settings_.host};
    on_worker([this, req = std::move(req), limit = std::move(limit), key]() mutable {
      auto got = store_->lease(req);
      boost::asio::post(io_, [this, got = std::move(got), req = std::move(req),
                              limit = std::move(limit), key]() mutable {
        const bool ok = got.has_value();
        if (ok) {
          wallet_.credit(limit, Grant{got->id, got->granted, got->used, std::move(got->window)},
                         req.now, req.expires);
        } else {
          store_down_until_ = obs::now_utc() + settings_.store_retry.count();
          obs::log(obs::Level::Warning, "store.lease_failed",
                   fmt::format("scope={} error=\"{}\"", key, quoted(got.error().what)));
        }
        auto waiters = std::move(pending_[key]);
        pending_.erase(key);
        for (auto& w : waiters) w(ok);
      });
    });
  }
}

void Budget::prefetch(std::vector<core::Limit> limits) {
  std::vector<core::Limit> todo;
  for (auto& l : limits) {
    if (pending_.find(l.scope.key()) == pending_.end()) todo.push_back(std::move(l));
  }
  if (!todo.empty()) refill(std::move(todo), [](bool) {});
}

void Budget::refresh(bool force, std::function<void(Snapshot)> done) {
  on_worker([this, force, done = std::move(done)]() mutable {
    Snapshot snap;
    const core::UnixTime now = obs::now_utc();
    auto v = store_->rules_version();
    if (!v) {
      snap.error = v.error().what;
    } else if (force || v->version != seen_version_) {
      auto spec = store_->load_rules();
      if (!spec) {
        snap.error = spec.error().what;
      } else if (auto rs = core::RuleSet::compile(std::move(*spec), v->version,
                                                  core::ClassifyCheck::Structure);
                 !rs) {
        snap.error = rs.error().what;
        seen_version_ = v->version;  // a broken version stays broken: do not retry every poll
      } else {
        snap.rules = *rs;
        snap.version = v->version;
        seen_version_ = v->version;
      }
    }
    if (auto b = store_->backoffs(now)) {
      snap.backoffs = std::move(*b);
      snap.backoffs_read = true;
    } else if (snap.error.empty()) {
      snap.error = b.error().what;
    }
    // Every stream's day history: send-days warm-ups count from it, `rampart caps` shows it.
    if (auto rows = store_->counters("day:", core::day_of(now) - 400)) {
      for (const auto& r : *rows) {
        snap.history[r.scope.substr(4)].push_back({r.bucket, r.used});
      }
      snap.history_read = true;
    } else if (snap.error.empty()) {
      snap.error = rows.error().what;
    }
    (void)store_->sweep_leases(now - settings_.lease_ttl.count());
    (void)store_->prune_counters(now);
    boost::asio::post(
        io_, [snap = std::move(snap), done = std::move(done)]() mutable { done(std::move(snap)); });
  });
}

void Budget::hand_back(core::UnixTime now) {
  auto backs = wallet_.hand_backs(now);
  auto refunds = wallet_.refunds();
  if (!refunds.empty()) {
    on_worker([this, refunds = std::move(refunds)] {
      for (const auto& r : refunds) {
        if (auto u = store_->uncharge(r.scope, r.bucket, r.units); !u) {
          obs::log(obs::Level::Warning, "store.refund_failed",
                   fmt::format("scope={} units={} error=\"{}\" effect=\"units stay charged\"",
                               r.scope, r.units, quoted(u.error().what)));
        }
      }
    });
  }
  if (backs.empty()) return;
  on_worker([this, backs = std::move(backs)] {
    for (const auto& b : backs) {
      if (auto r = store_->return_lease(b.lease_id, b.unused); !r) {
        obs::log(obs::Level::Warning, "store.return_failed",
                 fmt::format("lease={} unused={} error=\"{}\" effect=\"units forfeited\"",
                             b.lease_id, b.unused, quoted(r.error().what)));
      }
    }
  });
}

void Budget::drain() {
  hand_back(0);  // refunds first (hand_backs(0) retires nothing unexpired)
  auto backs = wallet_.take_all();
  std::int64_t units = 0;
  for (const auto& b : backs) units += b.unused;
  const std::size_t leases = backs.size();
  on_worker([this, backs = std::move(backs)] {
    for (const auto& b : backs) (void)store_->return_lease(b.lease_id, b.unused);
  });
  worker_.join();
  obs::log(obs::Level::Info, "policyd.leases_returned",
           fmt::format("leases={} units={}", leases, units));
}

}  // namespace rampart::policyd
