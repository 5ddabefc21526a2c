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
  void charge(std::string scope, std::int64_t lease, std::int64_t bucket);
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
  void after_mx(std::shared_ptr<Pending> p, std::shared_ptr<const dns::MxAnswer> answer);
  void charge(std::shared_ptr<Pending> p, int attempt);
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
