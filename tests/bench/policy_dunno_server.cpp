// rampart-policy-dunno: the cheapest possible Postfix policy server, answering every complete
// request (name=value lines up to an empty line) with `action=DUNNO` and looking at nothing else.
// Benchmark tooling only (tests/bench/policyd_bench.sh): its throughput is the ceiling of the
// load generator and the loopback path, the baseline real policy servers are measured against.
// It must not parse, validate or log requests: that would stop it being a ceiling.
//
// Usage: rampart-policy-dunno [--listen inet:HOST:PORT|unix:/path]   (default inet:127.0.0.1:0)
// Once listening it prints "listening on inet:HOST:PORT" (the real port, for port 0) or
// "listening on unix:/path" on stdout. Single-threaded epoll; SIGTERM/SIGINT exit 0. A request
// over 64 KiB without its empty line closes that connection, as does any socket error.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace {

constexpr std::size_t kMaxRequest = std::size_t{64} * 1024;
constexpr std::string_view kReply = "action=DUNNO\n\n";
constexpr std::uint64_t kListenTag = 0;
constexpr std::uint64_t kSignalTag = 1;

struct Conn {
  int fd = -1;
  std::string in;
  std::string out;
  std::size_t out_off = 0;
  bool want_out = false;
};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "rampart-policy-dunno: %s: %s\n", what, std::strerror(errno));
  std::exit(71);
}

[[noreturn]] void usage() {
  std::fputs("usage: rampart-policy-dunno [--listen inet:HOST:PORT|unix:/path]\n", stderr);
  std::exit(64);
}

// Binds and listens on `spec`; returns the socket and the address it reports.
std::pair<int, std::string> listen_on(const std::string& spec) {
  if (spec.rfind("unix:", 0) == 0) {
    const std::string path = spec.substr(5);
    sockaddr_un un{};
    if (path.empty() || path.size() >= sizeof un.sun_path) usage();
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path.c_str(), path.size() + 1);
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    unlink(path.c_str());
    if (bind(fd, reinterpret_cast<const sockaddr*>(&un), sizeof un) < 0) die("bind");
    if (listen(fd, SOMAXCONN) < 0) die("listen");
    return {fd, spec};
  }
  if (spec.rfind("inet:", 0) != 0) usage();
  const std::string rest = spec.substr(5);
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) usage();
  const std::string host = rest.substr(0, colon);
  const std::string port = rest.substr(colon + 1);
  sockaddr_in in{};
  in.sin_family = AF_INET;
  char* end = nullptr;
  const unsigned long p = std::strtoul(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p > 65535) usage();
  in.sin_port = htons(static_cast<std::uint16_t>(p));
  if (inet_pton(AF_INET, host.c_str(), &in.sin_addr) != 1) usage();
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&in), sizeof in) < 0) die("bind");
  if (listen(fd, SOMAXCONN) < 0) die("listen");
  socklen_t len = sizeof in;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&in), &len) < 0) die("getsockname");
  return {fd, "inet:" + host + ":" + std::to_string(ntohs(in.sin_port))};
}

class Server {
 public:
  Server(int listen_fd, int signal_fd) : listen_fd_(listen_fd) {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) die("epoll_create1");
    add(listen_fd, EPOLLIN, kListenTag);
    add(signal_fd, EPOLLIN, kSignalTag);
  }

  void run() {
    epoll_event events[256];
    for (;;) {
      const int n = epoll_wait(epfd_, events, 256, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        die("epoll_wait");
      }
      for (int k = 0; k < n; ++k) {
        const auto tag = events[k].data.u64;
        if (tag == kSignalTag) return;
        if (tag == kListenTag) {
          accept_all();
        } else {
          on_event(static_cast<int>(tag - 2), events[k].events);
        }
      }
    }
  }

 private:
  void add(int fd, std::uint32_t ev, std::uint64_t tag) {
    epoll_event e{};
    e.events = ev;
    e.data.u64 = tag;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &e) < 0) die("epoll_ctl");
  }

  void accept_all() {
    for (;;) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // EAGAIN, or out of descriptors: try again on the next wake-up
      }
      auto c = std::make_unique<Conn>();
      c->fd = fd;
      conns_[fd] = std::move(c);
      add(fd, EPOLLIN, static_cast<std::uint64_t>(fd) + 2);
    }
  }

  void drop(int fd) {
    epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    conns_.erase(fd);
  }

  void on_event(int fd, std::uint32_t events) {
    auto it = conns_.find(fd);
    if (it == conns_.end()) return;
    Conn& c = *it->second;
    if ((events & EPOLLOUT) != 0U && !flush(c)) return drop(fd);
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) == 0U) return;
    char buf[16384];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) return drop(fd);
    const std::size_t old_size = c.in.size();
    c.in.append(buf, static_cast<std::size_t>(n));
    // SMTPD_POLICY_README: a request ends with an empty line. Answer each complete one; the
    // search starts one byte before the new data, where the first newline may be.
    std::size_t from = old_size > 0 ? old_size - 1 : 0;
    std::size_t consumed = 0;
    for (;;) {
      const auto end = c.in.find("\n\n", from);
      if (end == std::string::npos) break;
      c.out += kReply;
      consumed = from = end + 2;
    }
    c.in.erase(0, consumed);
    if (c.in.size() > kMaxRequest) return drop(fd);
    if (!flush(c)) return drop(fd);
  }

  // Writes what it can; false on a socket error.
  bool flush(Conn& c) {
    while (c.out_off < c.out.size()) {
      const ssize_t n =
          send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
      if (n > 0) {
        c.out_off += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        set_want_out(c, true);
        return true;
      }
      return false;
    }
    c.out.clear();
    c.out_off = 0;
    set_want_out(c, false);
    return true;
  }

  void set_want_out(Conn& c, bool want) {
    if (c.want_out == want) return;
    c.want_out = want;
    epoll_event e{};
    e.events = EPOLLIN | (want ? static_cast<std::uint32_t>(EPOLLOUT) : 0U);
    e.data.u64 = static_cast<std::uint64_t>(c.fd) + 2;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &e);
  }

  int listen_fd_;
  int epfd_ = -1;
  std::unordered_map<int, std::unique_ptr<Conn>> conns_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string spec = "inet:127.0.0.1:0";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--listen" && i + 1 < argc) {
      spec = argv[++i];
    } else {
      usage();
    }
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  const int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) die("signalfd");
  signal(SIGPIPE, SIG_IGN);
  auto [fd, where] = listen_on(spec);
  std::printf("listening on %s\n", where.c_str());
  std::fflush(stdout);
  Server server(fd, sfd);
  server.run();
  return 0;
}
