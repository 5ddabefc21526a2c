// rampart-policy-load: a load generator for Postfix policy servers (check_policy_service): it
// sends the request stream a busy Postfix 3.7 smtpd would, over N persistent connections with one
// request in flight on each (as smtpd does), and prints one key=value result line. Benchmark
// tooling only (tests/bench/policyd_bench.sh); single-threaded epoll so that one process can
// outrun the servers it measures. Errors are counted, never fatal.
//
// Usage: rampart-policy-load --connect inet:HOST:PORT|unix:/path [--connections N]
//          [--requests TOTAL | --duration S] [--recipients FILE | --domains N] [--sender ADDR]
//          [--server-port PORT] [--client-address IP] [--timeout S]
//   --connections  persistent connections (default 1), all opened before the clock starts
//   --requests     stop after TOTAL requests answered or failed (default 10000)
//   --duration     instead: send for S seconds (fractions allowed), then wait for the answers
//   --recipients   recipient addresses, one a line, used in turn; default --domains 200:
//                  request n goes to rcpt<n>@d<n mod N>.bench.test
//   --sender, --server-port, --client-address   values of those request attributes (defaults
//                  bench@send.example.net, 25, 192.0.2.25); server_port selects a rampart stream
//   --timeout      a reply slower than S seconds is an error (the connection is reopened); no
//                  reply on any connection for 3 S seconds ends the run (default 10)
// Output (stdout, one line):
//   requests=N errors=N seconds=S rps=R p50_us=L p99_us=L max_us=L client_cpu_s=C
//   actions=DUNNO:n,REJECT:n,...
// requests counts answered requests; latency is from the request's write to its reply's end;
// client_cpu_s is this process's CPU time over the run (near seconds= means the generator, not
// the server, was the limit); actions counts replies by the action's first word, upper-cased.
// Errors (connect failure, connection closed or reset, malformed or unexpected reply, timeout)
// are summed in errors= and itemised on stderr. Exit status 0 once the line is printed, 64 on a
// usage error, 66 when --recipients cannot be read.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxReply = std::size_t{64} * 1024;  // a policy reply is one short line
constexpr auto kReconnectDelay = std::chrono::milliseconds(100);

struct Options {
  std::string connect;
  std::size_t connections = 1;
  std::uint64_t requests = 10000;
  std::optional<double> duration;
  std::string recipients_file;
  std::size_t domains = 200;
  std::string sender = "bench@send.example.net";
  std::string server_port = "25";
  std::string client_address = "192.0.2.25";
  double timeout = 10;
};

[[noreturn]] void usage(const char* why) {
  if (why != nullptr) std::fprintf(stderr, "rampart-policy-load: %s\n", why);
  std::fputs(
      "usage: rampart-policy-load --connect inet:HOST:PORT|unix:/path [--connections N]\n"
      "         [--requests TOTAL | --duration S] [--recipients FILE | --domains N]\n"
      "         [--sender ADDR] [--server-port PORT] [--client-address IP] [--timeout S]\n",
      stderr);
  std::exit(64);
}

template <class T>
T parse_number(std::string_view s, const char* what) {
  T v{};
  const auto* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc{} || p != end) {
    std::fprintf(stderr, "rampart-policy-load: bad %s \"%.*s\"\n", what, static_cast<int>(s.size()),
                 s.data());
    usage(nullptr);
  }
  return v;
}

double parse_seconds(std::string_view s, const char* what) {
  const std::string copy(s);
  char* end = nullptr;
  const double v = std::strtod(copy.c_str(), &end);
  if (copy.empty() || end != copy.c_str() + copy.size() || !(v > 0) || v > 1e6) {
    std::fprintf(stderr, "rampart-policy-load: bad %s \"%s\"\n", what, copy.c_str());
    usage(nullptr);
  }
  return v;
}

Options parse_args(int argc, char** argv) {
  Options o;
  bool have_requests = false;
  bool have_domains = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") usage(nullptr);
    if (i + 1 >= argc) usage("missing value after an option (see --help)");
    const std::string_view val = argv[++i];
    if (arg == "--connect") {
      o.connect = val;
    } else if (arg == "--connections") {
      o.connections = parse_number<std::size_t>(val, "--connections");
      if (o.connections == 0 || o.connections > 100000) usage("--connections: 1 to 100000");
    } else if (arg == "--requests") {
      o.requests = parse_number<std::uint64_t>(val, "--requests");
      if (o.requests == 0) usage("--requests: at least 1");
      have_requests = true;
    } else if (arg == "--duration") {
      o.duration = parse_seconds(val, "--duration");
    } else if (arg == "--recipients") {
      o.recipients_file = val;
    } else if (arg == "--domains") {
      o.domains = parse_number<std::size_t>(val, "--domains");
      if (o.domains == 0) usage("--domains: at least 1");
      have_domains = true;
    } else if (arg == "--sender") {
      o.sender = val;
    } else if (arg == "--server-port") {
      o.server_port = std::to_string(parse_number<unsigned>(val, "--server-port"));
    } else if (arg == "--client-address") {
      o.client_address = val;
    } else if (arg == "--timeout") {
      o.timeout = parse_seconds(val, "--timeout");
    } else {
      std::fprintf(stderr, "rampart-policy-load: unknown option \"%s\"\n", argv[i - 1]);
      usage(nullptr);
    }
  }
  if (o.connect.empty()) usage("--connect is required");
  if (have_requests && o.duration) usage("--requests and --duration exclude each other");
  if (have_domains && !o.recipients_file.empty()) {
    usage("--recipients and --domains exclude each other");
  }
  return o;
}

// Where to connect: a resolved socket address (inet:HOST:PORT, [v6] in brackets, or unix:/path).
struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_UNSPEC;
};

std::optional<Endpoint> resolve(const std::string& spec) {
  Endpoint ep;
  if (spec.rfind("unix:", 0) == 0) {
    const std::string path = spec.substr(5);
    sockaddr_un un{};
    if (path.empty() || path.size() >= sizeof un.sun_path) return std::nullopt;
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path.c_str(), path.size() + 1);
    std::memcpy(&ep.addr, &un, sizeof un);
    ep.len = static_cast<socklen_t>(sizeof un);
    ep.family = AF_UNIX;
    return ep;
  }
  if (spec.rfind("inet:", 0) != 0) return std::nullopt;
  std::string rest = spec.substr(5);
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  std::string host = rest.substr(0, colon);
  const std::string port = rest.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) {
    return std::nullopt;
  }
  std::memcpy(&ep.addr, res->ai_addr, res->ai_addrlen);
  ep.len = res->ai_addrlen;
  ep.family = res->ai_family;
  freeaddrinfo(res);
  return ep;
}

// The request stream: request n (0-based, in send order over all connections).
class Requests {
 public:
  Requests(const Options& o, std::vector<std::string> recipients)
      : recipients_(std::move(recipients)), domains_(o.domains) {
    // Postfix 3.7 smtpd_check.c check_policy_service(): the attributes in the order it sends
    // them, for a RCPT TO from an authenticated-by-network bulk client without TLS.
    head_ =
        "request=smtpd_access_policy\n"
        "protocol_state=RCPT\n"
        "protocol_name=ESMTP\n"
        "client_address=" +
        o.client_address +
        "\n"
        "client_name=campaigns.lab.example\n";
    mid_ =
        "reverse_client_name=campaigns.lab.example\n"
        "server_address=192.0.2.1\n"
        "server_port=" +
        o.server_port +
        "\n"
        "helo_name=campaigns.lab.example\n"
        "sender=" +
        o.sender + "\nrecipient=";
    tail_ =
        "size=10240\n"
        "etrn_domain=\n"
        "stress=\n"
        "sasl_method=\n"
        "sasl_username=\n"
        "sasl_sender=\n"
        "ccert_subject=\n"
        "ccert_issuer=\n"
        "ccert_fingerprint=\n"
        "ccert_pubkey_fingerprint=\n"
        "encryption_protocol=\n"
        "encryption_cipher=\n"
        "encryption_keysize=0\n"
        "policy_context=\n"
        "compatibility_level=3.7\n"
        "mail_version=3.7.11\n"
        "\n";
  }

  // Request n on a connection whose (fake) client port is `client_port`.
  void build(std::uint64_t n, unsigned client_port, std::string& out) const {
    out.clear();
    out += head_;
    out += "client_port=";
    append_number(out, client_port);
    out += '\n';
    out += mid_;
    if (!recipients_.empty()) {
      out += recipients_[n % recipients_.size()];
    } else {
      out += "rcpt";
      append_number(out, n);
      out += "@d";
      append_number(out, n % domains_);
      out += ".bench.test";
    }
    // One recipient per message: recipient_count is 0 at RCPT (SMTPD_POLICY_README: it is
    // known only in the DATA and END-OF-MESSAGE states), the queue id and instance per message.
    out += "\nrecipient_count=0\nqueue_id=4Z";
    append_hex(out, n);
    out += "\ninstance=";
    append_hex(out, n);
    out += ".65f1a2b3.1a2b3.0\n";
    out += tail_;
  }

 private:
  static void append_number(std::string& out, std::uint64_t v) {
    char buf[24] = {};
    auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, p);
  }
  static void append_hex(std::string& out, std::uint64_t v) {
    char buf[24] = {};
    auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v, 16);
    for (char* c = buf; c != p; ++c) {
      if (*c >= 'a' && *c <= 'f') *c = static_cast<char>(*c - 'a' + 'A');  // as Postfix writes them
    }
    out.append(buf, p);
  }

  std::vector<std::string> recipients_;
  std::size_t domains_;
  std::string head_, mid_, tail_;
};

enum class ErrorKind { Connect, Closed, Malformed, Timeout };

struct Conn {
  int fd = -1;
  bool connecting = false;
  bool busy = false;  // a request is in flight
  Clock::time_point sent_at{};
  Clock::time_point retry_at{};  // while fd < 0: when to reconnect
  std::string out;
  std::size_t out_off = 0;
  std::string in;
  unsigned client_port = 0;
};

class Load {
 public:
  Load(const Options& o, Endpoint ep, Requests reqs)
      : o_(o), ep_(ep), reqs_(std::move(reqs)), conns_(o.connections) {
    timeout_ =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.timeout));
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
      std::perror("rampart-policy-load: epoll_create1");
      std::exit(71);
    }
    if (!o.duration)
      latencies_.reserve(
          static_cast<std::size_t>(std::min<std::uint64_t>(o.requests, std::uint64_t{1} << 26)));
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      conns_[i].client_port = static_cast<unsigned>(40000 + i % 20000);
    }
  }

  int run() {
    // Open every connection first; the clock starts when each has connected or failed once.
    for (std::size_t i = 0; i < conns_.size(); ++i) open(i);
    std::size_t pending = conns_.size();
    std::vector<epoll_event> events(std::min<std::size_t>(conns_.size(), 4096));
    const auto setup_deadline = Clock::now() + timeout_;
    while (pending > 0 && Clock::now() < setup_deadline) {
      pending = 0;
      for (auto& c : conns_) pending += c.connecting ? 1 : 0;
      if (pending == 0) break;
      const int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), 100);
      for (int k = 0; k < n; ++k) {
        auto& c = conns_[events[static_cast<std::size_t>(k)].data.u64];
        if (c.connecting) finish_connect(events[static_cast<std::size_t>(k)].data.u64, false);
      }
    }
    start_ = Clock::now();
    last_progress_ = start_;
    if (o_.duration) {
      stop_sending_at_ = start_ + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(*o_.duration));
    }
    cpu_start_ = cpu_seconds();
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      auto& c = conns_[i];
      if (c.connecting) fail(i, ErrorKind::Connect, "connect timed out");
      if (c.fd >= 0) send_next(i);
    }
    last_reply_ = start_;
    while (!done()) {
      const int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), 50);
      if (n < 0 && errno != EINTR) {
        std::perror("rampart-policy-load: epoll_wait");
        break;
      }
      for (int k = 0; k < n; ++k) {
        const auto& ev = events[static_cast<std::size_t>(k)];
        handle(ev.data.u64, ev.events);
      }
      housekeeping();
    }
    const double cpu = cpu_seconds() - cpu_start_;
    report(cpu);
    return 0;
  }

 private:
  static double cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  }

  bool may_send() const {
    if (o_.duration) return Clock::now() < stop_sending_at_;
    return issued_ < o_.requests;
  }

  bool done() const {
    if (stalled_) return true;
    if (may_send()) return false;
    return std::none_of(conns_.begin(), conns_.end(), [](const Conn& c) { return c.busy; });
  }

  void open(std::size_t i) {
    auto& c = conns_[i];
    c.fd = socket(ep_.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
      fail(i, ErrorKind::Connect, std::strerror(errno));
      return;
    }
    if (ep_.family != AF_UNIX) {
      int one = 1;
      setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = i;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev) < 0) {
      fail(i, ErrorKind::Connect, std::strerror(errno));
      return;
    }
    c.connecting = true;
    c.sent_at = Clock::now();  // while connecting: when the connect started
    if (connect(c.fd, reinterpret_cast<const sockaddr*>(&ep_.addr), ep_.len) == 0) {
      finish_connect(i, true);
    } else if (errno != EINPROGRESS && errno != EAGAIN) {
      fail(i, ErrorKind::Connect, std::strerror(errno));
    }
  }

  // Returns true when the connection is up (EPOLLOUT is then dropped until a write blocks).
  bool finish_connect(std::size_t i, bool immediate) {
    auto& c = conns_[i];
    int err = 0;
    socklen_t len = sizeof err;
    if (!immediate && getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err == 0 && !immediate) {
      // An unconnected socket also reports EPOLLOUT on some kernels: confirm with getpeername.
      sockaddr_storage peer{};
      socklen_t plen = sizeof peer;
      if (getpeername(c.fd, reinterpret_cast<sockaddr*>(&peer), &plen) < 0) err = errno;
    }
    if (err != 0) {
      fail(i, ErrorKind::Connect, std::strerror(err));
      return false;
    }
    c.connecting = false;
    watch(i, false);
    return true;
  }

  void watch(std::size_t i, bool want_out) {
    epoll_event ev{};
    ev.events = EPOLLIN | (want_out ? static_cast<std::uint32_t>(EPOLLOUT) : 0U);
    ev.data.u64 = i;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, conns_[i].fd, &ev);
  }

  void close_conn(std::size_t i) {
    auto& c = conns_[i];
    if (c.fd >= 0) {
      epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
      ::close(c.fd);
    }
    c.fd = -1;
    c.connecting = false;
    c.busy = false;
    c.in.clear();
    c.out.clear();
    c.out_off = 0;
  }

  void fail(std::size_t i, ErrorKind kind, std::string_view why) {
    auto& c = conns_[i];
    const bool was_connecting = c.connecting;
    close_conn(i);
    ++errors_[static_cast<std::size_t>(kind)];
    if (first_error_[static_cast<std::size_t>(kind)].empty()) {
      first_error_[static_cast<std::size_t>(kind)] = std::string(why);
    }
    // A refused or failed connect is retried later; a broken connection at once, as smtpd
    // reconnects for its next request.
    c.retry_at = Clock::now() +
                 (was_connecting ? Clock::duration(kReconnectDelay) : Clock::duration::zero());
  }

  void send_next(std::size_t i) {
    auto& c = conns_[i];
    if (c.fd < 0 || c.connecting || c.busy || !may_send()) return;
    reqs_.build(issued_++, c.client_port, c.out);
    c.out_off = 0;
    c.busy = true;
    c.sent_at = Clock::now();
    flush(i);
  }

  void flush(std::size_t i) {
    auto& c = conns_[i];
    while (c.out_off < c.out.size()) {
      const ssize_t n =
          ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
      if (n > 0) {
        c.out_off += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        watch(i, true);
        return;
      }
      fail(i, ErrorKind::Closed, n < 0 ? std::strerror(errno) : "send returned 0");
      return;
    }
  }

  void handle(std::size_t i, std::uint32_t events) {
    auto& c = conns_[i];
    if (c.fd < 0) return;
    if (c.connecting) {
      if (finish_connect(i, false)) send_next(i);
      return;
    }
    if ((events & EPOLLOUT) != 0U && c.out_off < c.out.size()) {
      flush(i);
      if (c.fd < 0) return;
      if (c.out_off == c.out.size()) watch(i, false);
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) == 0U) return;
    char buf[16384];
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {
      if (c.busy) {
        fail(i, ErrorKind::Closed, n == 0 ? "closed by the server" : std::strerror(errno));
      } else {
        // Closed between requests (only after the last one): not an error.
        close_conn(i);
        c.retry_at = Clock::now();
      }
      return;
    }
    c.in.append(buf, static_cast<std::size_t>(n));
    for (;;) {
      const auto end = c.in.find("\n\n");
      if (end == std::string::npos) {
        if (c.in.size() > kMaxReply) fail(i, ErrorKind::Malformed, "reply too long");
        return;
      }
      if (!c.busy) {
        fail(i, ErrorKind::Malformed, "reply with no request in flight");
        return;
      }
      const auto now = Clock::now();
      const std::string_view reply = std::string_view(c.in).substr(0, end + 1);
      auto action = action_word(reply);
      if (!action) {
        fail(i, ErrorKind::Malformed,
             "no action= line in reply: " +
                 std::string(reply.substr(0, std::min<std::size_t>(end, 80))));
        return;
      }
      ++actions_[*action];
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.sent_at).count();
      latencies_.push_back(static_cast<std::uint32_t>(
          std::min<std::int64_t>(ns, std::numeric_limits<std::uint32_t>::max())));
      max_ns_ = std::max<std::int64_t>(max_ns_, ns);
      ++answered_;
      last_reply_ = now;
      last_progress_ = now;
      c.busy = false;
      c.in.erase(0, end + 2);
      send_next(i);
      if (c.fd < 0) return;
    }
  }

  // The action's first word, upper-cased, from a reply's `name=value` lines; nullopt when a line
  // has no '=' or there is no action. Postfix ignores other attributes.
  static std::optional<std::string> action_word(std::string_view reply) {
    std::optional<std::string> word;
    std::size_t pos = 0;
    while (pos < reply.size()) {
      auto nl = reply.find('\n', pos);
      if (nl == std::string_view::npos) nl = reply.size();
      std::string_view line = reply.substr(pos, nl - pos);
      pos = nl + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      const auto eq = line.find('=');
      if (eq == std::string_view::npos || eq == 0) return std::nullopt;
      if (line.substr(0, eq) != "action") continue;
      std::string_view v = line.substr(eq + 1);
      const auto sp = v.find_first_of(" \t");
      if (sp != std::string_view::npos) v = v.substr(0, sp);
      if (v.empty()) return std::nullopt;
      std::string w(v);
      for (auto& ch : w) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      word = std::move(w);
    }
    return word;
  }

  void housekeeping() {
    const auto now = Clock::now();
    if (now - last_check_ < std::chrono::milliseconds(20)) return;
    last_check_ = now;
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      auto& c = conns_[i];
      if (c.fd >= 0 && c.busy && now - c.sent_at > timeout_) {
        fail(i, ErrorKind::Timeout, "no reply in time");
      } else if (c.fd >= 0 && c.connecting && now - c.sent_at > timeout_) {
        fail(i, ErrorKind::Connect, "connect timed out");
      }
      if (c.fd < 0 && may_send() && now >= c.retry_at) {
        open(i);
        if (c.fd >= 0 && !c.connecting) send_next(i);
      }
    }
    if (now - last_progress_ > 3 * timeout_) {
      std::fprintf(stderr, "rampart-policy-load: no reply for %.1f s: stopping\n", 3 * o_.timeout);
      stalled_ = true;
      for (std::size_t i = 0; i < conns_.size(); ++i) {
        if (conns_[i].busy) fail(i, ErrorKind::Timeout, "no reply in time");
        close_conn(i);
      }
    }
  }

  double percentile_us(double q) {
    if (latencies_.empty()) return 0;
    const auto k = static_cast<std::size_t>(q * static_cast<double>(latencies_.size() - 1));
    std::nth_element(latencies_.begin(), latencies_.begin() + static_cast<std::ptrdiff_t>(k),
                     latencies_.end());
    return static_cast<double>(latencies_[k]) / 1000.0;
  }

  void report(double cpu) {
    const auto end = answered_ > 0 ? last_reply_ : Clock::now();
    const double secs = std::chrono::duration<double>(end - start_).count();
    std::uint64_t errors = 0;
    for (auto e : errors_) errors += e;
    const double p50 = percentile_us(0.50);
    const double p99 = percentile_us(0.99);
    std::string actions;
    for (const auto& [word, n] : actions_) {
      if (!actions.empty()) actions += ',';
      actions += word + ":" + std::to_string(n);
    }
    std::printf(
        "requests=%llu errors=%llu seconds=%.3f rps=%.1f p50_us=%.1f p99_us=%.1f max_us=%.1f "
        "client_cpu_s=%.3f actions=%s\n",
        static_cast<unsigned long long>(answered_), static_cast<unsigned long long>(errors), secs,
        secs > 0 ? static_cast<double>(answered_) / secs : 0.0, p50, p99,
        static_cast<double>(max_ns_) / 1000.0, cpu, actions.c_str());
    std::fflush(stdout);
    if (errors > 0) {
      static constexpr const char* kNames[] = {"connect", "closed", "malformed", "timeout"};
      for (std::size_t k = 0; k < errors_.size(); ++k) {
        if (errors_[k] == 0) continue;
        std::fprintf(stderr, "rampart-policy-load: %llu %s error(s), first: %s\n",
                     static_cast<unsigned long long>(errors_[k]), kNames[k],
                     first_error_[k].c_str());
      }
    }
  }

  const Options& o_;
  Endpoint ep_;
  Requests reqs_;
  std::vector<Conn> conns_;
  int epfd_ = -1;
  Clock::duration timeout_{};
  Clock::time_point start_{}, stop_sending_at_{}, last_reply_{}, last_progress_{}, last_check_{};
  double cpu_start_ = 0;
  std::uint64_t issued_ = 0;
  std::uint64_t answered_ = 0;
  std::int64_t max_ns_ = 0;
  bool stalled_ = false;
  std::vector<std::uint32_t> latencies_;  // nanoseconds, capped at ~4.3 s (max_us is exact)
  std::map<std::string, std::uint64_t> actions_;
  std::array<std::uint64_t, 4> errors_{};
  std::array<std::string, 4> first_error_{};
};

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  auto ep = resolve(o.connect);
  if (!ep) {
    std::fprintf(stderr, "rampart-policy-load: bad or unresolvable endpoint \"%s\"\n",
                 o.connect.c_str());
    return 64;
  }
  std::vector<std::string> recipients;
  if (!o.recipients_file.empty()) {
    std::ifstream in(o.recipients_file);
    if (!in) {
      std::fprintf(stderr, "rampart-policy-load: cannot read %s\n", o.recipients_file.c_str());
      return 66;
    }
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) recipients.push_back(line);
    }
    if (recipients.empty()) {
      std::fprintf(stderr, "rampart-policy-load: %s has no recipients\n",
                   o.recipients_file.c_str());
      return 66;
    }
  }
  // One descriptor per connection: lift the soft limit to the hard one.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  Load load(o, *ep, Requests(o, std::move(recipients)));
  return load.run();
}
