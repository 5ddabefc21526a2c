// rampart-lab-syslog: a minimal syslog receiver for the lab. Some daemons (OpenDKIM) can log only
// through syslog(3), which glibc sends as datagrams to /dev/log; the lab has no syslog daemon and
// must not rely on the host's. The lab binds this receiver to a socket in its own directory and
// points the daemon's /dev/log at it in a private mount namespace (tests/lab/lab.sh). Test
// tooling only: it never forwards, rotates or parses beyond the priority prefix.
//
// Usage: rampart-lab-syslog --socket PATH
//   Binds a Unix datagram socket at PATH (a stale socket file there is replaced; any other file is
//   an error), makes it writable by every user (daemons log after dropping root), prints
//   "listening on PATH", then prints one line per datagram on stdout, flushed at once:
//   the message without its "<PRI>" prefix and trailing newlines, e.g.
//   "Nov 22 00:10:52 opendkim[14872]: 4XYZ: DKIM-Signature field added (s=lab, d=shop.example)".
//   Control characters inside a message are written as #ooo (octal), as rsyslog does, so one
//   datagram is always one line. SIGTERM/SIGINT remove the socket and exit 0.

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace {

volatile sig_atomic_t g_stop = 0;

extern "C" void on_stop_signal(int) { g_stop = 1; }

void usage(std::FILE* to) { std::fprintf(to, "usage: rampart-lab-syslog --socket PATH\n"); }

// "<13>Nov 22 ... text\n" -> "Nov 22 ... text", control characters escaped.
std::string format_line(std::string_view msg) {
  if (msg.size() >= 3 && msg.front() == '<') {
    const std::size_t close = msg.find('>');
    if (close != std::string_view::npos && close <= 4 && close > 1) msg.remove_prefix(close + 1);
  }
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\0' || msg.back() == '\r')) {
    msg.remove_suffix(1);
  }
  std::string out;
  out.reserve(msg.size());
  for (const char c : msg) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 && c != '\t') {
      char esc[8];
      std::snprintf(esc, sizeof esc, "#%03o", u);
      out += esc;
    } else {
      out += c;
    }
  }
  return out;
}

int run(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    std::fprintf(stderr, "rampart-lab-syslog: socket path is empty or too long: %s\n",
                 path.c_str());
    return 2;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);

  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      std::fprintf(stderr, "rampart-lab-syslog: %s exists and is not a socket\n", path.c_str());
      return 2;
    }
    unlink(path.c_str());
  }
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    std::fprintf(stderr, "rampart-lab-syslog: socket: %s\n", std::strerror(errno));
    return 1;
  }
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    std::fprintf(stderr, "rampart-lab-syslog: bind %s: %s\n", path.c_str(), std::strerror(errno));
    close(fd);
    return 1;
  }
  // glibc's syslog(3) connects with the caller's credentials: a daemon that dropped root must
  // still be able to write.
  if (chmod(path.c_str(), 0666) != 0) {
    std::fprintf(stderr, "rampart-lab-syslog: chmod %s: %s\n", path.c_str(), std::strerror(errno));
    close(fd);
    unlink(path.c_str());
    return 1;
  }
  // A stop signal that lands between the loop's check and recv() is noticed within 0.5 s.
  const timeval tick{0, 500 * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof tick);
  std::printf("listening on %s\n", path.c_str());
  std::fflush(stdout);

  static char buf[64 * 1024];
  while (g_stop == 0) {
    const ssize_t n = recv(fd, buf, sizeof buf, MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      std::fprintf(stderr, "rampart-lab-syslog: recv: %s\n", std::strerror(errno));
      break;
    }
    const std::size_t len =
        static_cast<std::size_t>(n) > sizeof buf ? sizeof buf : static_cast<std::size_t>(n);
    std::string line = format_line(std::string_view(buf, len));
    if (static_cast<std::size_t>(n) > sizeof buf) line += " #truncated";
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  close(fd);
  unlink(path.c_str());
  return g_stop != 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_stop_signal;  // no SA_RESTART: recv() returns EINTR and the loop ends
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  std::string path;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    }
    if (arg == "--socket" && i + 1 < argc) {
      path = argv[++i];
      continue;
    }
    std::fprintf(stderr, "rampart-lab-syslog: bad argument \"%s\"\n", arg.c_str());
    usage(stderr);
    return 2;
  }
  if (path.empty()) {
    usage(stderr);
    return 2;
  }
  return run(path);
}
