// rampart-policyd's event loop side: listeners (inet and unix), one session per Postfix
// connection speaking the policy protocol (pipelined, bounded, idle-timed), and the decision
// pipeline per request: stream, MX -> operator, limits, wallet. Single-threaded: everything
// here runs on the io_context thread; the store and the resolver call back onto it.
#pragma once

#include <utility>  // before asio (GCC 12)

#include <boost/asio.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/limits.hpp"
#include "core/result.hpp"
#include "core/ruleset.hpp"
#include "dns/resolver.hpp"
#include "policyd/budget.hpp"
#include "policyd/core/decide.hpp"
#include "policyd/core/protocol.hpp"

namespace rampart::policyd {

struct ServerSettings {
  std::vector<std::string> listen;  // inet:HOST:PORT | unix:/path
  std::chrono::seconds idle_timeout{300};
  std::size_t max_connections = 2000;
  bool dunno_on_dns_error = false;    // on_dns_error = "dunno"
  bool dunno_on_store_error = false;  // on_store_error = "dunno"
  Limits limits;
};

// State of one connection that outlives one request: the message it is in (Postfix sends
// `instance`), what was charged for it, and whether it was held.
struct ConnState {
  std::string instance;
  struct Charge {
    std::string scope;  // scope key
    std::int64_t lease = 0;
    std::int64_t bucket = 0;  // the counter row the lease charged
    std::int64_t units = 0;
  };
  // One entry per (scope, lease): bounded by scopes x leases, not by recipients.
  std::vector<Charge> charges;
  void charge(const std::string& scope, std::int64_t lease, std::int64_t bucket);
  bool held = false;
};

class SessionBase;

class Server {
 public:
  Server(boost::asio::io_context& io, ServerSettings settings, Budget& budget,
         dns::MxResolver& resolver);
  ~Server();
  // Opens every endpoint; prints `listening on <endpoint>` per endpoint on stdout (port 0 shows
  // the port the kernel chose). Config error for a bad endpoint, Temporary for a bind failure.
  [[nodiscard]] Result<void> listen();
  // Stops accepting, closes idle sessions, lets busy ones answer; `done` when none is left
  // (or after `grace`).
  void drain(std::chrono::seconds grace, std::function<void()> done);

  // New rules (when set), back-offs, histories; true when the active back-offs changed.
  bool apply(Snapshot snap);
  std::size_t backoffs() const { return backoffs_.size(); }
  bool draining() const { return draining_; }
  std::size_t streams() const { return rules_ != nullptr ? rules_->spec().streams.size() : 0; }
  std::int64_t rules_version() const { return version_; }

  // One request, answered through `done` (now or later, always exactly once).
  void decide(const Request& request, ConnState& conn, std::function<void(const Reply&)> done);

  // Decision counters: "<verdict> stream=<s> operator=<o> limit=<l>" -> count.
  const std::unordered_map<std::string, std::uint64_t>& counters() const { return counters_; }
  std::size_t sessions() const { return sessions_.size(); }

  // Sessions register themselves; the server closes them on drain.
  void attach(SessionBase* s);
  void detach(SessionBase* s);
  const ServerSettings& settings() const { return settings_; }

 private:
  struct Pending;
  // The limits of one stream x operator (core::limits_for) and their scope keys.
  struct LimitsEntry {
    std::vector<core::Limit> limits;
    std::vector<std::string> keys;  // keys[i] == limits[i].scope.key()
  };
  std::shared_ptr<const LimitsEntry> limits_of(const Pending& p, core::UnixTime now);
  void bump_counter(const Pending& p, const Reply& reply);
  void after_mx(std::shared_ptr<Pending> p, const std::shared_ptr<const dns::MxAnswer>& answer);
  void charge(std::shared_ptr<Pending> p, int attempt, core::UnixTime now);
  const core::OperatorSpec* operator_of(const Pending& p,
                                        const std::shared_ptr<const dns::MxAnswer>& answer);
  void finish(Pending& p, const Reply& reply);
  template <class Acceptor>
  void accept(std::shared_ptr<Acceptor> acceptor);
  template <class Socket>
  void admit(Socket socket);

  boost::asio::io_context& io_;
  ServerSettings settings_;
  Budget& budget_;
  dns::MxResolver& resolver_;
  std::shared_ptr<const core::RuleSet> rules_;
  std::int64_t version_ = -1;
  std::vector<core::Backoff> backoffs_;
  std::map<std::string, std::vector<core::DayCount>, std::less<>> history_;
  std::vector<std::function<void()>> closers_;  // close each acceptor
  std::vector<SessionBase*> sessions_;
  std::unordered_map<std::string, std::uint64_t> counters_;
  std::string counter_key_;  // reused buffer

  // limits_for per stream x operator of the current rules: what it reads changes only through
  // apply() (rules, back-offs, histories), at 00:00 UTC (the warm-up day, day scopes, gates) and
  // when a back-off ends, so the cache is emptied then. Keyed by the specs' addresses, which
  // only mean something while rules_ is the rule set they came from: a request pinned to older
  // rules neither reads nor fills it.
  struct SpecPair {
    const void* stream = nullptr;
    const void* op = nullptr;
    friend bool operator==(const SpecPair&, const SpecPair&) = default;
  };
  struct SpecPairHash {
    std::size_t operator()(const SpecPair& k) const noexcept {
      return std::hash<const void*>()(k.stream) * 31 + std::hash<const void*>()(k.op);
    }
  };
  std::unordered_map<SpecPair, std::shared_ptr<const LimitsEntry>, SpecPairHash> limits_cache_;
  core::UnixTime limits_from_ = 0, limits_until_ = 0;  // the cache holds for [from, until)
  // Where each outcome's counter is, so a decision does not format its counter key: same rules
  // caveat as limits_cache_. The counters themselves are never erased (their nodes stay put).
  struct CounterId {
    Action action = Action::Dunno;
    SpecPair specs;
    std::string reason;
    friend bool operator==(const CounterId&, const CounterId&) = default;
  };
  struct CounterIdHash {
    std::size_t operator()(const CounterId& k) const noexcept {
      return SpecPairHash()(k.specs) * 7 + static_cast<std::size_t>(k.action) +
             std::hash<std::string>()(k.reason);
    }
  };
  std::unordered_map<CounterId, std::uint64_t*, CounterIdHash> counter_ids_;
  CounterId counter_id_;  // reused for lookups
  // The operator of each MX answer (RuleSet::operator_for_mx) under the current rules: same
  // rules caveat as limits_cache_.
  struct MxOperator {
    std::weak_ptr<const dns::MxAnswer> answer;
    const core::OperatorSpec* op = nullptr;
  };
  static constexpr std::size_t kMaxOperators = 4096;
  std::unordered_map<const dns::MxAnswer*, MxOperator> operators_;
  bool draining_ = false;
  std::function<void()> drained_;
  std::uint64_t refused_connections_ = 0;
  std::uint64_t accept_failures_ = 0;  // EMFILE and friends, for the log
};

// What a session exposes to the server.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual bool busy() const = 0;
  virtual void close() = 0;
};

}  // namespace rampart::policyd
