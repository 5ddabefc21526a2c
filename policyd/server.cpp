// rampart-policyd listeners, sessions and the decision pipeline (see server.hpp).
#include "policyd/server.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "obs/log.hpp"

namespace rampart::policyd {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;

namespace {

// Log values come from peers: keep them on one line, unquoted-safe.
std::string clean(std::string_view s, std::size_t max = 200) {
  std::string out;
  for (char c : s.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f || c == '"') ? '?' : c;
  }
  return out;
}

template <class Socket>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<Socket>> {
 public:
  Session(Server& server, Socket socket, std::string peer)
      : server_(server),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        peer_(std::move(peer)) {}
  ~Session() override { server_.detach(this); }

  void start() {
    server_.attach(this);
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);  // replies are written at once when the socket takes them
    arm_timer();
    pump();
  }
  bool busy() const override { return busy_; }
  void close() override {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ignored;
    timer_.cancel(ignored);
    socket_.close(ignored);
  }

 private:
  void arm_timer() {
    // Boost 1.74 has no cancellation slots: the timer closes the socket, which ends the read.
    // Re-armed only when a request completes, so the whole next request must arrive within
    // the idle timeout (a client trickling bytes is bounded too). Moving the deadline does not
    // touch the pending wait (a cancel per request would cost a handler per request): the wait
    // checks the deadline when it fires and waits again for what is left.
    deadline_ = std::chrono::steady_clock::now() + server_.settings().idle_timeout;
    if (!timer_waiting_) wait_deadline();
  }
  void wait_deadline() {
    timer_waiting_ = true;
    timer_.expires_at(deadline_);
    timer_.async_wait([weak = this->weak_from_this()](boost::system::error_code ec) {
      auto self = weak.lock();
      if (!self) return;
      self->timer_waiting_ = false;
      if (ec || self->closed_) return;
      if (std::chrono::steady_clock::now() < self->deadline_) {
        self->wait_deadline();
        return;
      }
      obs::log(obs::Level::Debug, "policyd.idle_closed", fmt::format("peer={}", self->peer_));
      self->close();
    });
  }

  // Parses and answers what the buffer holds, one request at a time, then writes and reads.
  void pump() {
    if (closed_) return;
    in_pump_ = true;
    while (!busy_ && !closed_) {
      // The request views in_: it stays put until the answer is in (no read while busy).
      parse_request(std::string_view(in_.data() + head_, tail_ - head_), server_.settings().limits,
                    parsed_);
      if (parsed_.status == ParseStatus::NeedMore) break;
      if (parsed_.status == ParseStatus::Invalid) {
        // SMTPD_POLICY_README: a server must not reply to a malformed request; log and close.
        obs::log(obs::Level::Warning, "policyd.bad_request",
                 fmt::format("peer={} error=\"{}\" effect=\"connection closed\"", peer_,
                             clean(parsed_.error)));
        bad_ = true;
        head_ = tail_ = 0;
        break;
      }
      head_ += parsed_.consumed;
      busy_ = true;
      arm_timer();
      server_.decide(parsed_.request, conn_, [self = this->shared_from_this()](const Reply& reply) {
        if (reply.action == Action::Dunno) {
          self->out_ += kDunnoReply;
        } else {
          append_reply(self->out_, reply.line());
        }
        self->busy_ = false;
        if (!self->in_pump_) self->pump();
      });
    }
    in_pump_ = false;
    if (closed_) return;
    if (!out_.empty() && !writing_ && !write()) return;  // the rest goes out asynchronously
    if ((bad_ || (server_.draining() && !busy_)) && !writing_) {
      close();
    } else if (!busy_ && !reading_ && !writing_ && !bad_) {
      read();
    }
  }

  // Reads straight into in_ after what is unparsed (moved to the front first), with room for a
  // whole request of the usual size in one read.
  void read() {
    if (head_ > 0) {
      std::memmove(in_.data(), in_.data() + head_, tail_ - head_);
      tail_ -= head_;
      head_ = 0;
    }
    if (in_.size() - tail_ < kReadSize) in_.resize(tail_ + kReadSize);  // capacity grows 2x
    reading_ = true;
    socket_.async_read_some(
        asio::buffer(in_.data() + tail_, in_.size() - tail_),
        [self = this->shared_from_this()](boost::system::error_code ec, std::size_t n) {
          self->reading_ = false;
          if (ec) {
            self->close();
            return;
          }
          self->tail_ += n;
          self->pump();
        });
  }

  // Writes out_ now if the socket takes it all (the usual case: a reply is tens of bytes), which
  // saves a trip through the event loop per request; else sends the rest asynchronously and
  // returns false (pump() runs again when it is out). False also when the connection failed.
  bool write() {
    boost::system::error_code wec;
    const std::size_t n = socket_.write_some(asio::buffer(out_), wec);
    if (wec && wec != asio::error::would_block && wec != asio::error::try_again) {
      close();
      return false;
    }
    out_.erase(0, wec ? 0 : n);
    if (out_.empty()) return true;
    writing_ = true;
    wbuf_.swap(out_);
    out_.clear();
    asio::async_write(socket_, asio::buffer(wbuf_),
                      [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
                        self->writing_ = false;
                        self->wbuf_.clear();
                        if (ec) {
                          self->close();
                          return;
                        }
                        self->pump();
                      });
    return false;
  }

  Server& server_;
  Socket socket_;
  asio::steady_timer timer_;
  std::chrono::steady_clock::time_point deadline_;
  bool timer_waiting_ = false;
  std::string peer_;
  static constexpr std::size_t kReadSize = 4096;
  static constexpr std::string_view kDunnoReply = "action=DUNNO\n\n";
  std::string in_;                   // bytes [head_, tail_) are read and not yet parsed
  std::size_t head_ = 0, tail_ = 0;  // in_.size() is only ever grown: no clearing per read
  std::string out_, wbuf_;
  ParseResult parsed_;  // the request being decided (its storage reused)
  ConnState conn_;
  bool busy_ = false, reading_ = false, writing_ = false, in_pump_ = false, closed_ = false,
       bad_ = false;
};

std::string peer_name(const tcp::socket& s) {
  boost::system::error_code ec;
  const auto ep = s.remote_endpoint(ec);
  return ec ? std::string("?") : fmt::format("{}:{}", ep.address().to_string(), ep.port());
}
std::string peer_name(const unix_socket::socket&) { return "unix"; }

}  // namespace

void ConnState::charge(const std::string& scope, std::int64_t lease, std::int64_t bucket) {
  for (auto& c : charges) {
    if (c.lease == lease && c.scope == scope) {
      ++c.units;
      return;
    }
  }
  charges.push_back({scope, lease, bucket, 1});
}

// How many times one request may go back to the store for a lease before it is told to retry.
constexpr int kMaxRefills = 20;

struct Server::Pending {
  const Request* request = nullptr;
  ConnState* conn = nullptr;
  std::function<void(const Reply&)> done;
  std::shared_ptr<const core::RuleSet> rules;  // pinned for the whole request
  Envelope env;
  const core::StreamSpec* stream = nullptr;
  const core::OperatorSpec* op = nullptr;
  std::shared_ptr<const LimitsEntry> limits;
};

Server::Server(asio::io_context& io, ServerSettings settings, Budget& budget,
               dns::MxResolver& resolver)
    : io_(io), settings_(std::move(settings)), budget_(budget), resolver_(resolver) {}

Server::~Server() {
  for (auto& c : closers_) c();
}

void Server::attach(SessionBase* s) { sessions_.push_back(s); }

void Server::detach(SessionBase* s) {
  sessions_.erase(std::remove(sessions_.begin(), sessions_.end(), s), sessions_.end());
  if (draining_ && sessions_.empty() && drained_) {
    auto done = std::move(drained_);
    drained_ = nullptr;
    asio::post(io_, std::move(done));
  }
}

template <class Socket>
void Server::admit(Socket socket) {
  if (draining_) {
    socket.close();
  } else if (sessions_.size() >= settings_.max_connections) {
    // Over the bound: close at once (Postfix then uses its default action) and say so, at most
    // once per thousand refusals so a flood does not flood the log too.
    if (refused_connections_++ % 1000 == 0) {
      obs::log(obs::Level::Warning, "policyd.too_many_connections",
               fmt::format("max_connections={} refused={}", settings_.max_connections,
                           refused_connections_));
    }
    socket.close();
  } else {
    std::string peer = peer_name(socket);
    std::make_shared<Session<Socket>>(*this, std::move(socket), std::move(peer))->start();
  }
}

template <class Acceptor>
void Server::accept(std::shared_ptr<Acceptor> acceptor) {
  acceptor->async_accept([this, acceptor](boost::system::error_code ec,
                                          typename Acceptor::protocol_type::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
    if (ec) {
      // EMFILE and friends: the connection stays queued, so accepting again at once would spin
      // and log tens of thousands of lines a second. Log once per thousand failures and try
      // again in 100 ms (a closing session may have freed a descriptor by then).
      if (accept_failures_++ % 1000 == 0) {
        obs::log(obs::Level::Warning, "policyd.accept_failed",
                 fmt::format("error=\"{}\" failures={} effect=\"retry in 100ms\"", ec.message(),
                             accept_failures_));
      }
      auto retry = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(100));
      retry->async_wait([this, acceptor, retry](boost::system::error_code) { accept(acceptor); });
      return;
    }
    admit(std::move(socket));
    // Take the rest of a burst now: one accept per trip through the event loop starves new
    // connections behind a thousand busy ones (measured: 2,000 connecting at once waited up to
    // 0.75 s). Bounded, so a flood cannot starve the sessions either.
    acceptor->non_blocking(true, ec);
    for (int i = 0; i < 256 && !ec; ++i) {
      auto more = acceptor->accept(ec);
      if (!ec) admit(std::move(more));
    }
    accept(acceptor);
  });
}

Result<void> Server::listen() {
  for (const auto& ep : settings_.listen) {
    try {
      if (ep.rfind("inet:", 0) == 0) {
        const std::string rest = ep.substr(5);
        const auto colon = rest.rfind(':');
        if (colon == std::string::npos)
          return fail(Errc::Config, fmt::format("listen {:?}: no port", ep));
        std::string host = rest.substr(0, colon);
        if (host.size() > 1 && host.front() == '[' && host.back() == ']')
          host = host.substr(1, host.size() - 2);
        boost::system::error_code ec;
        auto addr = asio::ip::make_address(host, ec);
        if (ec) {
          // A host name (inet:localhost:10040, as Postfix allows): its first address, once, at
          // start.
          tcp::resolver resolver(io_);
          const auto found = resolver.resolve(host, "", ec);
          if (ec || found.empty()) {
            return fail(Errc::Config, fmt::format("listen {:?}: cannot resolve {:?}: {}", ep, host,
                                                  ec ? ec.message() : "no address"));
          }
          addr = found.begin()->endpoint().address();
        }
        const auto port = static_cast<unsigned short>(std::stoul(rest.substr(colon + 1)));
        auto acceptor = std::make_shared<tcp::acceptor>(io_);
        const tcp::endpoint endpoint(addr, port);
        acceptor->open(endpoint.protocol());
        acceptor->set_option(tcp::acceptor::reuse_address(true));
        acceptor->bind(endpoint);
        acceptor->listen(asio::socket_base::max_listen_connections);
        const auto bound = acceptor->local_endpoint();
        const std::string shown =
            addr.is_v6() ? fmt::format("inet:[{}]:{}", bound.address().to_string(), bound.port())
                         : fmt::format("inet:{}:{}", bound.address().to_string(), bound.port());
        std::printf("listening on %s\n", shown.c_str());
        obs::log(obs::Level::Info, "policyd.listening", fmt::format("listen={}", shown));
        closers_.push_back([acceptor] {
          boost::system::error_code ignored;
          acceptor->close(ignored);
        });
        accept(acceptor);
      } else if (ep.rfind("unix:", 0) == 0) {
        const std::string path = ep.substr(5);
        ::unlink(path.c_str());  // a stale socket from a crashed run
        auto acceptor = std::make_shared<unix_socket::acceptor>(io_);
        const unix_socket::endpoint endpoint(path);
        acceptor->open(endpoint.protocol());
        // 0660: Postfix's smtpd reaches it through the _rampart group.
        const mode_t old = ::umask(007);
        acceptor->bind(endpoint);
        ::umask(old);
        acceptor->listen(asio::socket_base::max_listen_connections);
        std::printf("listening on %s\n", ep.c_str());
        obs::log(obs::Level::Info, "policyd.listening", fmt::format("listen={}", ep));
        closers_.push_back([acceptor, path] {
          boost::system::error_code ignored;
          acceptor->close(ignored);
          ::unlink(path.c_str());
        });
        accept(acceptor);
      } else {
        return fail(Errc::Config,
                    fmt::format("listen {:?}: want inet:HOST:PORT or unix:/path", ep));
      }
    } catch (const boost::system::system_error& e) {
      return fail(Errc::Temporary, fmt::format("listen {:?}: {}", ep, e.code().message()));
    } catch (const std::exception& e) {
      return fail(Errc::Config, fmt::format("listen {:?}: {}", ep, e.what()));
    }
  }
  std::fflush(stdout);
  return {};
}

void Server::drain(std::chrono::seconds grace, std::function<void()> done) {
  draining_ = true;
  for (auto& c : closers_) c();
  closers_.clear();
  // Idle sessions close now; busy ones close once their answer is written (Session::pump), and
  // whatever is left when the grace ends is closed then.
  for (auto* s : std::vector<SessionBase*>(sessions_)) {
    if (!s->busy()) s->close();
  }
  if (sessions_.empty()) {
    asio::post(io_, std::move(done));
    return;
  }
  drained_ = std::move(done);
  auto timer = std::make_shared<asio::steady_timer>(io_, grace);
  timer->async_wait([this, timer](boost::system::error_code) {
    for (auto* s : std::vector<SessionBase*>(sessions_)) s->close();
  });
}

bool Server::apply(Snapshot snap) {
  if (snap.rules) {
    rules_ = std::move(snap.rules);
    version_ = snap.version;
    counter_ids_.clear();
    operators_.clear();
  }
  // Whatever changed, limits are computed afresh.
  limits_cache_.clear();
  limits_until_ = 0;
  // What could not be read this time stays as it was (see Snapshot).
  bool changed = false;
  if (snap.backoffs_read) {
    changed = snap.backoffs != backoffs_;
    backoffs_ = std::move(snap.backoffs);
  }
  if (snap.history_read) history_ = std::move(snap.history);
  return changed;
}

void Server::bump_counter(const Pending& p, const Reply& reply) {
  const bool cached = p.rules != nullptr && p.rules == rules_;
  if (cached) {
    counter_id_.action = reply.action;
    counter_id_.specs = {p.stream, p.op};
    counter_id_.reason = reply.reason;
    if (auto it = counter_ids_.find(counter_id_); it != counter_ids_.end()) {
      ++*it->second;
      return;
    }
  }
  counter_key_.clear();
  fmt::format_to(std::back_inserter(counter_key_), "{} stream={} operator={}",
                 verdict_word(reply.action), p.stream != nullptr ? p.stream->name : "-",
                 p.op != nullptr ? p.op->name : "-");
  if (!reply.reason.empty())
    fmt::format_to(std::back_inserter(counter_key_), " limit={}", reply.reason);
  auto& counter = counters_[counter_key_];
  ++counter;
  if (cached) counter_ids_.emplace(counter_id_, &counter);
}

void Server::finish(Pending& p, const Reply& reply) {
  // Counters by stream, operator and outcome; one log line per non-DUNNO decision.
  bump_counter(p, reply);
  if (reply.action != Action::Dunno) {
    std::string fields =
        fmt::format("rcpt=<{}> stream={} operator={} reason={}", clean(p.env.recipient),
                    p.stream != nullptr ? p.stream->name : "-", p.op != nullptr ? p.op->name : "-",
                    reply.reason);
    if (reply.used && reply.max) {
      fmt::format_to(std::back_inserter(fields), " used={} max={}", *reply.used, *reply.max);
    }
    if (!reply.status.empty())
      fmt::format_to(std::back_inserter(fields), " status={}", reply.status);
    fmt::format_to(std::back_inserter(fields), " text=\"{}\"", clean(reply.text));
    obs::decision(p.env.queue_id, verdict_word(reply.action), fields);
  }
  auto done = std::move(p.done);
  done(reply);
}

void Server::decide(const Request& request, ConnState& conn,
                    std::function<void(const Reply&)> done) {
  auto p = std::make_shared<Pending>();
  p->request = &request;
  p->conn = &conn;
  p->done = std::move(done);
  p->rules = rules_;
  p->env = read_envelope(request);
  // Only RCPT is charged: that is where one accepted recipient is decided.
  if (p->env.protocol_state != "RCPT" || p->rules == nullptr) {
    finish(*p, dunno());
    return;
  }
  if (conn.instance != p->env.instance) {
    conn.instance = std::string(p->env.instance);
    conn.charges.clear();
    conn.held = false;
  }
  p->stream = p->rules->resolve_stream(p->env.stream_query);
  if (p->stream == nullptr) {
    finish(*p, dunno());
    return;
  }
  if (conn.held && !p->env.instance.empty()) {
    // HOLD is for the whole message: later recipients follow it uncharged; `rampart release`
    // charges them all when it lets the message go.
    finish(*p, Reply{Action::Hold,
                     "",
                     "rampart: message held; an earlier recipient was over a limit",
                     "held",
                     {},
                     {}});
    return;
  }
  if (p->env.domain.empty()) {
    after_mx(std::move(p), nullptr);
    return;
  }
  if (auto cached = resolver_.cached(p->env.domain)) {
    after_mx(std::move(p), cached);
    return;
  }
  const std::string domain(p->env.domain);
  resolver_.resolve(domain, [this, p](std::shared_ptr<const dns::MxAnswer> answer) mutable {
    after_mx(std::move(p), answer);
  });
}

void Server::after_mx(std::shared_ptr<Pending> p,
                      const std::shared_ptr<const dns::MxAnswer>& answer) {
  if (answer != nullptr) {
    switch (answer->status) {
      case dns::MxStatus::NullMx: finish(*p, null_mx(p->env.domain)); return;
      case dns::MxStatus::NxDomain:
      case dns::MxStatus::NoMailHost:
        finish(*p, no_mail_domain(p->env.domain, answer->detail));
        return;
      case dns::MxStatus::Temporary:
        if (!settings_.dunno_on_dns_error) {
          finish(*p, dns_failed(p->env.domain, answer->detail));
          return;
        }
        break;  // only the stream's own limits apply
      case dns::MxStatus::Ok: p->op = operator_of(*p, answer); break;
    }
  }
  const auto now = now_utc();
  p->limits = limits_of(*p, now);
  charge(std::move(p), 0, now);
}

const core::OperatorSpec* Server::operator_of(const Pending& p,
                                              const std::shared_ptr<const dns::MxAnswer>& answer) {
  const bool cached = p.rules == rules_;
  if (cached) {
    // The weak_ptr tells a live answer from a new one at a freed one's address.
    auto it = operators_.find(answer.get());
    if (it != operators_.end() && !it->second.answer.expired()) return it->second.op;
  }
  std::array<core::MxRecord, 16> records{};
  std::size_t n = 0;
  for (const auto& h : answer->hosts) {
    if (n == records.size()) break;
    records[n++] = core::MxRecord{h.preference, h.host};
  }
  const auto* op = p.rules->operator_for_mx(std::span<const core::MxRecord>(records.data(), n));
  if (cached) {
    // Answers are replaced as their TTLs run out: start afresh rather than grow for ever.
    if (operators_.size() >= kMaxOperators) operators_.clear();
    operators_.insert_or_assign(answer.get(), MxOperator{answer, op});
  }
  return op;
}

std::shared_ptr<const Server::LimitsEntry> Server::limits_of(const Pending& p, core::UnixTime now) {
  const bool cached = p.rules == rules_;
  const SpecPair key{p.stream, p.op};
  if (cached) {
    if (now >= limits_until_ || now < limits_from_) {
      // A new day, a back-off ending (or the clock stepping back): compute afresh.
      limits_cache_.clear();
      limits_from_ = now;
      limits_until_ = (core::day_of(now) + 1) * core::kDaySeconds;
      for (const auto& b : backoffs_) {
        if (b.until > now) limits_until_ = std::min(limits_until_, b.until);
      }
    }
    if (auto it = limits_cache_.find(key); it != limits_cache_.end()) return it->second;
  }
  static const std::vector<core::DayCount> kNoHistory;
  auto h = history_.find(p.stream->name);
  auto set = core::limits_for(*p.rules, *p.stream, p.op,
                              h != history_.end() ? h->second : kNoHistory, backoffs_, now);
  auto entry = std::make_shared<LimitsEntry>();
  entry->keys.reserve(set.limits.size());
  for (const auto& l : set.limits) entry->keys.push_back(l.scope.key());
  entry->limits = std::move(set.limits);
  if (cached) limits_cache_.emplace(key, entry);
  return entry;
}

void Server::charge(std::shared_ptr<Pending> p, int attempt, core::UnixTime now) {
  auto& wallet = budget_.wallet();
  const auto& limits = p->limits->limits;
  const auto& keys = p->limits->keys;
  auto check = wallet.check(limits, keys, now);
  // Stale leases check() retired go back now; expired ones are swept every second by main.
  if (wallet.has_pending()) budget_.hand_back(now);
  switch (check.state) {
    case Wallet::State::Ready: {
      wallet.spend(std::span<const std::string>(keys));
      std::vector<core::Limit> ahead;
      for (std::size_t i = 0; i < limits.size(); ++i) {
        const Holding* h = wallet.holding(keys[i]);
        p->conn->charge(keys[i], h != nullptr ? h->lease_id : 0, h != nullptr ? h->bucket : 0);
        if (wallet.wants_prefetch(limits[i], keys[i], now)) ahead.push_back(limits[i]);
      }
      if (!ahead.empty()) budget_.prefetch(std::move(ahead));
      finish(*p, dunno());
      return;
    }
    case Wallet::State::Exhausted: {
      const auto& limit = limits[check.index];
      const Holding* h = wallet.holding(keys[check.index]);
      static const std::vector<core::Bucket> kNone;
      const auto when = core::reopens(limit, h != nullptr ? h->window : kNone, now);
      Reply reply =
          over_limit(*p->stream, limit, check.used, p->op != nullptr ? p->op->name : "", when);
      if (reply.action == Action::Hold) {
        // The held message's earlier recipients are charged again on release: refund them now.
        for (const auto& c : p->conn->charges) wallet.refund(c.scope, c.lease, c.bucket, c.units);
        p->conn->charges.clear();
        p->conn->held = true;
      }
      finish(*p, reply);
      return;
    }
    case Wallet::State::Refill: break;
  }
  if (attempt >= kMaxRefills) {
    // Every round of leasing gave units to someone (a round that finds nothing is Exhausted),
    // but never to this request: many connections competing for a small block. Rare; answer
    // "try again" rather than loop.
    finish(*p, budget_busy());
    return;
  }
  std::vector<core::Limit> need;
  need.reserve(check.refill.size());
  for (auto i : check.refill) need.push_back(limits[i]);
  budget_.refill(std::move(need), [this, p, attempt](bool store_ok) mutable {
    if (!store_ok) {
      finish(*p, settings_.dunno_on_store_error ? dunno() : store_failed());
      return;
    }
    charge(std::move(p), attempt + 1, now_utc());
  });
}

}  // namespace rampart::policyd
