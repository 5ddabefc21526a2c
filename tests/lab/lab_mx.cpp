// rampart-lab-mx: a scriptable receiving SMTP server that plays an operator's MX in the lab.
// A script gives per-recipient, MAIL and end-of-DATA replies so tests can replay what real
// operators answer (451 4.7.500, 421 4.7.0 [TSS04], 550-5.7.1 ...). Test tooling only: it
// keeps mail only when asked (--save-dir), relays nothing, never speaks TLS, and must survive any
// peer input.
//
// Usage: rampart-lab-mx --listen IP:PORT [--script FILE] [--banner TEXT] [--hostname NAME]
//                       [--log FILE] [--save-dir DIR]
//   --listen    IPv4 "192.0.2.1:25" or IPv6 "[::1]:25"; port 0 picks a free port. Once bound it
//               prints "listening on IP:PORT" (the real port) on stdout; the lab waits for it.
//   --banner    greeting text after "220 "; a TEXT that starts with its own code ("421 4.7.0 ...")
//               is sent as is, and a non-2xx banner closes the connection after sending it.
//   --log       full transcript: every command ("conn=N < ...") and reply line ("conn=N > ...").
//   --save-dir  write every accepted message to DIR/ID.eml (ID as in the "accepted" line's
//               queue_id= and the default 250 reply, e.g. LAB00010001), as received after
//               dot-unstuffing, each line ending in CRLF; the file is complete (written, then
//               renamed) before the "accepted" line appears, which then ends in
//               " saved=DIR/ID.eml". IDs restart with each process: give each MX its own DIR.
//               A message that cannot be saved is refused with 451 4.3.0.
// stdout (and the --log file) get one line per event: "listening on ...", "connect conn=N
// client=IP:PORT server=IP:PORT", "accepted from=<a> rcpt=<b>,<c> size=N conn=N client=IP
// queue_id=ID [saved=FILE]", "save failed conn=N file=FILE error=...", "disconnect conn=N
// reason=...", "script loaded rules=N".
// SIGHUP re-reads the script (a bad script keeps the old rules); SIGTERM/SIGINT exit 0.
//
// Script: one rule per line, "PATTERN REPLY", '#' starts a comment line; first match wins.
//   PATTERN   user@domain   exact recipient (case-insensitive)
//             @domain       any recipient in that domain (case-insensitive)
//             *             any recipient
//             @MAIL         reply to every MAIL FROM (default "250 2.1.0 Ok")
//             @DATA         reply after the message body, i.e. after "." (default
//                           "250 2.0.0 Ok: queued as ID")
//   REPLY     full reply text with its code: "451 4.7.500 Server busy. Please try again later."
//             A multi-line reply separates lines with the two characters \n:
//             "550-5.7.1 first line\n550 5.7.1 last line" (each line may omit the code, the
//             '-'/' ' separators are fixed up, so "550 5.7.1 a\n5.7.1 b" works too).
// A recipient without a matching rule gets "250 2.1.5 Ok". A 2xx reply accepts the recipient
// (or starts the transaction, or accepts the message); a 421 reply also closes the connection,
// as a real server shutting the session does.
//
// Limits: command lines of at most 2048 octets; a longer line, a NUL byte, or 5 protocol
// errors end the session. Messages over the advertised SIZE are read to "." and refused (552).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

constexpr std::size_t kMaxCommandLine = 2048;  // Postfix smtpd's line_length_limit
constexpr std::size_t kMaxDataLine = 64 * 1024;
constexpr std::size_t kMaxMessageSize = 10 * 1024 * 1024;  // advertised as SIZE
constexpr std::size_t kMaxRecipients = 1000;
constexpr std::size_t kMaxPendingOutput = 256 * 1024;  // stop reading a peer that never reads
constexpr std::size_t kMaxSessions = 512;
constexpr int kMaxErrors = 5;
constexpr auto kIdleTimeout = std::chrono::seconds(120);
constexpr auto kLingerTime = std::chrono::seconds(2);

volatile sig_atomic_t g_stop = 0;
volatile sig_atomic_t g_reload = 0;

extern "C" void on_stop_signal(int) { g_stop = 1; }
extern "C" void on_reload_signal(int) { g_reload = 1; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && lower(s.substr(0, prefix.size())) == lower(prefix);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// --- replies and the script -------------------------------------------------------------------

// A reply ready for the wire: every line ends in CRLF, all but the last use "CODE-".
struct Reply {
  int code = 0;
  std::string wire;
};

// Turns "550-5.7.1 a\n550 5.7.1 b" (literal backslash-n separators) into a wire reply.
// Returns nullopt and sets err when a line has no code, codes differ, or text has control chars.
std::optional<Reply> make_reply(std::string_view spec, std::string& err) {
  std::vector<std::string_view> parts;
  for (std::size_t pos = 0;;) {
    const std::size_t sep = spec.find("\\n", pos);
    parts.push_back(spec.substr(pos, sep == std::string_view::npos ? sep : sep - pos));
    if (sep == std::string_view::npos) break;
    pos = sep + 2;
  }
  Reply reply;
  std::string code_text;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    std::string_view part = parts[i];
    const bool has_code = part.size() >= 3 && is_digit(part[0]) && is_digit(part[1]) &&
                          is_digit(part[2]) &&
                          (part.size() == 3 || part[3] == ' ' || part[3] == '-');
    if (has_code) {
      const std::string this_code(part.substr(0, 3));
      if (i == 0) {
        code_text = this_code;
      } else if (this_code != code_text) {
        err = "reply lines have different codes: " + code_text + " and " + this_code;
        return std::nullopt;
      }
      part.remove_prefix(part.size() > 3 ? 4 : 3);
    } else if (i == 0) {
      err = "reply must start with a three-digit code: \"" + std::string(spec) + "\"";
      return std::nullopt;
    }
    if (std::any_of(part.begin(), part.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
      err = "reply contains a control character";
      return std::nullopt;
    }
    reply.wire += code_text;
    reply.wire += (i + 1 < parts.size()) ? '-' : ' ';
    reply.wire += part;
    reply.wire += "\r\n";
  }
  if (code_text[0] < '2' || code_text[0] > '5') {
    err = "reply code must be 2xx..5xx, got " + code_text;
    return std::nullopt;
  }
  reply.code = std::stoi(code_text);
  return reply;
}

Reply fixed_reply(std::string_view spec) {
  std::string err;
  auto r = make_reply(spec, err);
  return r ? *r : Reply{451, "451 4.3.0 Error: internal\r\n"};
}

enum class RuleKind : std::uint8_t {
  Exact,   // the recipient equals pattern (lower-cased)
  Domain,  // the recipient's domain equals pattern (lower-cased, without '@')
  Any,     // every recipient
  Mail,    // the reply to MAIL FROM
  Data,    // the reply after the message body
};

struct Rule {
  RuleKind kind;
  std::string pattern;
  Reply reply;
};

struct Script {
  std::vector<Rule> rules;

  const Rule* find(RuleKind kind) const {
    for (const auto& r : rules) {
      if (r.kind == kind) return &r;
    }
    return nullptr;
  }

  // First rule that matches the recipient, or nullptr (then the default 250 applies).
  const Rule* match_rcpt(std::string_view address) const {
    const std::string addr = lower(address);
    const std::size_t at = addr.rfind('@');
    const std::string domain = at == std::string::npos ? std::string() : addr.substr(at + 1);
    for (const auto& r : rules) {
      if ((r.kind == RuleKind::Exact && r.pattern == addr) ||
          (r.kind == RuleKind::Domain && !domain.empty() && r.pattern == domain) ||
          r.kind == RuleKind::Any) {
        return &r;
      }
    }
    return nullptr;
  }
};

std::optional<Script> load_script(const std::string& path, std::string& err) {
  std::ifstream in(path);
  if (!in) {
    err = "cannot open script " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  Script script;
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string_view text = trim(line);
    if (text.empty() || text.front() == '#') continue;
    const std::size_t space = text.find_first_of(" \t");
    const std::string where = path + ":" + std::to_string(lineno) + ": ";
    if (space == std::string_view::npos) {
      err = where + "expected \"PATTERN REPLY\"";
      return std::nullopt;
    }
    const std::string_view pattern = text.substr(0, space);
    std::string reply_err;
    auto reply = make_reply(trim(text.substr(space)), reply_err);
    if (!reply) {
      err = where + reply_err;
      return std::nullopt;
    }
    Rule rule{RuleKind::Any, "", *reply};
    if (pattern == "*") {
      rule.kind = RuleKind::Any;
    } else if (pattern == "@MAIL") {
      rule.kind = RuleKind::Mail;
    } else if (pattern == "@DATA") {
      rule.kind = RuleKind::Data;
    } else if (pattern.front() == '@') {
      if (pattern.size() == 1) {
        err = where + "empty domain pattern";
        return std::nullopt;
      }
      rule.kind = RuleKind::Domain;
      rule.pattern = lower(pattern.substr(1));
    } else {
      rule.kind = RuleKind::Exact;
      rule.pattern = lower(pattern);
    }
    script.rules.push_back(std::move(rule));
  }
  return script;
}

// --- logging ------------------------------------------------------------------------------------

// Event lines go to stdout and the log file; transcript lines only to the log file. Both are
// flushed per line because the lab reads them while this process runs.
class Log {
 public:
  bool open(const std::string& path) {
    file_ = std::fopen(path.c_str(), "a");
    return file_ != nullptr;
  }
  ~Log() {
    if (file_ != nullptr) std::fclose(file_);
  }
  Log() = default;
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  void event(const std::string& line) {
    std::fprintf(stdout, "%s\n", line.c_str());
    std::fflush(stdout);
    transcript(line);
  }
  void transcript(const std::string& line) {
    if (file_ == nullptr) return;
    std::fprintf(file_, "%s\n", line.c_str());
    std::fflush(file_);
  }

 private:
  std::FILE* file_ = nullptr;
};

// --- addresses ----------------------------------------------------------------------------------

std::string format_endpoint(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = {};
  unsigned port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
    port = ntohs(sin->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
  inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
  port = ntohs(sin6->sin6_port);
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

std::string endpoint_host(const std::string& endpoint) {
  if (!endpoint.empty() && endpoint.front() == '[')
    return endpoint.substr(1, endpoint.find(']') - 1);
  return endpoint.substr(0, endpoint.rfind(':'));
}

// Parses "IP:PORT" or "[IPv6]:PORT" into a bound, listening, non-blocking socket.
int open_listener(const std::string& spec, std::string& err) {
  std::string host;
  std::string port;
  if (!spec.empty() && spec.front() == '[') {
    const std::size_t close = spec.find("]:");
    if (close == std::string::npos) {
      err = "bad --listen \"" + spec + "\": want [IPv6]:PORT";
      return -1;
    }
    host = spec.substr(1, close - 1);
    port = spec.substr(close + 2);
  } else {
    const std::size_t colon = spec.rfind(':');
    if (colon == std::string::npos) {
      err = "bad --listen \"" + spec + "\": want IP:PORT";
      return -1;
    }
    host = spec.substr(0, colon);
    port = spec.substr(colon + 1);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* res = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    err = "bad --listen \"" + spec + "\": " + gai_strerror(rc);
    return -1;
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
  const int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 128) != 0) {
    err = "bind/listen " + spec + ": " + std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

// --- one SMTP session ---------------------------------------------------------------------------

struct Settings {
  std::string hostname = "mx.lab.test";
  Reply banner;
  std::string save_dir;  // empty: message data is counted, never kept
};

// Writes data to dir/name via a temporary file and rename(2), so a reader never sees half a
// message. Returns the final path, or an empty string with err set.
std::string save_message(const std::string& dir, const std::string& name, const std::string& data,
                         std::string& err) {
  const std::string path = dir + "/" + name;
  const std::string tmp = dir + "/." + name + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    err = std::strerror(errno);
    return {};
  }
  const bool written = std::fwrite(data.data(), 1, data.size(), f) == data.size();
  const int write_errno = errno;
  if (std::fclose(f) != 0 || !written) {
    err = std::strerror(written ? errno : write_errno);
    std::remove(tmp.c_str());
    return {};
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    err = std::strerror(errno);
    std::remove(tmp.c_str());
    return {};
  }
  return path;
}

class Session {
 public:
  Session(int fd, unsigned id, std::string client, std::string server, const Settings& settings,
          const Script& script, Log& log)
      : fd_(fd),
        id_(id),
        client_(std::move(client)),
        server_(std::move(server)),
        settings_(settings),
        script_(script),
        log_(log),
        last_activity_(std::chrono::steady_clock::now()) {}

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() {
    if (fd_ >= 0) close(fd_);
  }

  void start() {
    log_.event("connect conn=" + std::to_string(id_) + " client=" + client_ + " server=" + server_);
    send(settings_.banner);
    if (settings_.banner.code / 100 != 2) finish("banner");
  }

  int fd() const { return fd_; }
  // Hands the socket over (to the lingering close); the session no longer closes it.
  int release_fd() { return std::exchange(fd_, -1); }
  unsigned id() const { return id_; }
  bool done() const { return closing_ && out_.empty(); }
  bool wants_read() const { return !closing_ && out_.size() < kMaxPendingOutput; }
  bool wants_write() const { return !out_.empty(); }
  const std::string& reason() const { return reason_; }
  bool idle_expired(std::chrono::steady_clock::time_point now) const {
    return now - last_activity_ > kIdleTimeout;
  }
  // The peer hung up or the socket failed while we were not reading from it.
  void hangup() { abort_session("peer hangup"); }

  void timeout() {
    if (closing_) {
      out_.clear();  // the peer never read what we sent: drop it
      return;
    }
    send(fixed_reply("421 4.4.2 Error: timeout exceeded"));
    finish("timeout");
  }

  // Reads what is available and answers every complete line.
  void on_readable() {
    char buf[16384];
    const ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) abort_session("read error");
      return;
    }
    if (n == 0) {
      abort_session("peer closed");
      return;
    }
    last_activity_ = std::chrono::steady_clock::now();
    in_.append(buf, static_cast<std::size_t>(n));
    process();
  }

  void on_writable() {
    const ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) abort_session("write error");
      return;
    }
    out_.erase(0, static_cast<std::size_t>(n));
    last_activity_ = std::chrono::steady_clock::now();
    process();  // input held back while the output was full
  }

 private:
  enum class Phase : std::uint8_t { Command, Data };

  void abort_session(const std::string& why) {
    out_.clear();
    finish(why);
  }

  void finish(const std::string& why) {
    if (!closing_) reason_ = why;
    closing_ = true;
    in_.clear();
  }

  void send(const Reply& reply) {
    out_ += reply.wire;
    for (std::size_t pos = 0; pos < reply.wire.size();) {
      const std::size_t end = reply.wire.find("\r\n", pos);
      log_.transcript("conn=" + std::to_string(id_) + " > " + reply.wire.substr(pos, end - pos));
      pos = end + 2;
    }
    if (reply.code == 421) finish("sent 421");  // RFC 5321 4.2.2: 421 closes the channel
  }

  void reset_transaction() {
    in_mail_ = false;
    from_.clear();
    rcpts_.clear();
    data_.clear();
  }

  void process() {
    while (!closing_ && out_.size() < kMaxPendingOutput) {
      const std::size_t nl = in_.find('\n');
      if (nl == std::string::npos) {
        if (phase_ == Phase::Command && in_.size() > kMaxCommandLine) {
          send(fixed_reply("500 5.5.2 Error: line too long"));
          finish("line too long");
        } else if (phase_ == Phase::Data && in_.size() > kMaxDataLine) {
          data_size_ += in_.size();  // keep counting, never buffering, an endless data line
          keep_data(in_, false);
          in_.clear();
          data_midline_ = true;
        }
        return;
      }
      std::string line = in_.substr(0, nl);
      in_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (phase_ == Phase::Data) {
        on_data_line(line);
      } else {
        if (line.size() > kMaxCommandLine) {
          send(fixed_reply("500 5.5.2 Error: line too long"));
          finish("line too long");
          return;
        }
        on_command(line);
      }
    }
  }

  void on_data_line(const std::string& line) {
    if (data_midline_) {  // tail of an over-long line: it cannot be the terminating "."
      data_midline_ = false;
      data_size_ += line.size() + 2;
      keep_data(line, true);
      return;
    }
    if (line == ".") {
      end_of_data();
      return;
    }
    // RFC 5321 4.5.2: a leading dot was doubled by the client; remove it.
    const bool stuffed = !line.empty() && line.front() == '.';
    data_size_ += (stuffed ? line.size() - 1 : line.size()) + 2;
    keep_data(stuffed ? std::string_view(line).substr(1) : std::string_view(line), true);
  }

  // With --save-dir, appends message data (a whole line gets CRLF); never beyond the size limit,
  // since such a message is refused anyway.
  void keep_data(std::string_view text, bool end_of_line) {
    if (settings_.save_dir.empty() || data_.size() > kMaxMessageSize) return;
    data_ += text;
    if (end_of_line) data_ += "\r\n";
  }

  void end_of_data() {
    phase_ = Phase::Command;
    if (data_size_ > kMaxMessageSize) {
      send(fixed_reply("552 5.3.4 Error: message file too big"));
      reset_transaction();
      return;
    }
    const Rule* rule = script_.find(RuleKind::Data);
    ++messages_;
    char queue_id[32];
    std::snprintf(queue_id, sizeof queue_id, "LAB%04X%04X", id_ & 0xffffu, messages_ & 0xffffu);
    Reply reply = rule != nullptr ? rule->reply
                                  : fixed_reply(std::string("250 2.0.0 Ok: queued as ") + queue_id);
    std::string saved;
    if (reply.code / 100 == 2 && !settings_.save_dir.empty()) {
      std::string err;
      saved = save_message(settings_.save_dir, std::string(queue_id) + ".eml", data_, err);
      if (saved.empty()) {
        log_.event("save failed conn=" + std::to_string(id_) + " file=" + settings_.save_dir + "/" +
                   queue_id + ".eml error=" + err);
        reply = fixed_reply("451 4.3.0 Error: cannot save the message");
      }
    }
    if (reply.code / 100 == 2) {
      std::string rcpts;
      for (const auto& r : rcpts_) rcpts += (rcpts.empty() ? "<" : ",<") + r + ">";
      log_.event("accepted from=<" + from_ + "> rcpt=" + rcpts +
                 " size=" + std::to_string(data_size_) + " conn=" + std::to_string(id_) +
                 " client=" + endpoint_host(client_) + " queue_id=" + queue_id +
                 (saved.empty() ? "" : " saved=" + saved));
    }
    reset_transaction();
    send(reply);
  }

  void protocol_error(const char* reply) {
    send(fixed_reply(reply));
    if (++errors_ >= kMaxErrors) {
      send(fixed_reply("421 4.7.0 Error: too many errors"));
      finish("too many errors");
    }
  }

  // Extracts the path from "FROM:<a@b> PARAMS" / "TO:<a@b>"; returns false on bad syntax.
  static bool parse_path(std::string_view arg, std::string& address, std::string& params) {
    arg = trim(arg);
    if (arg.empty()) return false;
    if (arg.front() == '<') {
      const std::size_t close = arg.find('>');
      if (close == std::string_view::npos) return false;
      address = std::string(arg.substr(1, close - 1));
      params = std::string(trim(arg.substr(close + 1)));
    } else {  // lenient, as Postfix is: a bare address
      const std::size_t space = arg.find(' ');
      address = std::string(arg.substr(0, space));
      params = space == std::string_view::npos ? "" : std::string(trim(arg.substr(space)));
    }
    if (!address.empty() && address.front() == '@') {  // drop an RFC 5321 source route
      const std::size_t colon = address.find(':');
      if (colon == std::string::npos) return false;
      address.erase(0, colon + 1);
    }
    return address.find_first_of("<> \t") == std::string::npos;
  }

  void on_command(const std::string& line) {
    log_.transcript("conn=" + std::to_string(id_) + " < " + line);
    if (line.find('\0') != std::string::npos) {
      send(fixed_reply("500 5.5.2 Error: NUL character in command"));
      finish("garbage");
      return;
    }
    const std::size_t space = line.find(' ');
    const std::string verb = lower(line.substr(0, space));
    const std::string_view arg =
        space == std::string::npos ? std::string_view() : std::string_view(line).substr(space + 1);

    if (verb == "ehlo" || verb == "helo") {
      if (trim(arg).empty()) return protocol_error("501 5.5.4 Syntax: EHLO hostname");
      greeted_ = true;
      reset_transaction();
      if (verb == "helo") return send(fixed_reply("250 " + settings_.hostname));
      return send(fixed_reply("250-" + settings_.hostname + "\\n250-PIPELINING\\n250-SIZE " +
                              std::to_string(kMaxMessageSize) +
                              "\\n250-ENHANCEDSTATUSCODES\\n250 8BITMIME"));
    }
    if (verb == "mail") {
      if (!greeted_) return protocol_error("503 5.5.1 Error: send HELO/EHLO first");
      if (in_mail_) return protocol_error("503 5.5.1 Error: nested MAIL command");
      std::string address;
      std::string params;
      if (!iequals_prefix(arg, "from:") || !parse_path(arg.substr(5), address, params)) {
        return protocol_error("501 5.5.4 Syntax: MAIL FROM:<address>");
      }
      const std::string lparams = lower(params);
      if (const std::size_t p = lparams.find("size="); p != std::string::npos) {
        const unsigned long long size = std::strtoull(lparams.c_str() + p + 5, nullptr, 10);
        if (size > kMaxMessageSize) {
          return send(fixed_reply("552 5.3.4 Message size exceeds fixed limit"));
        }
      }
      const Rule* rule = script_.find(RuleKind::Mail);
      const Reply reply = rule != nullptr ? rule->reply : fixed_reply("250 2.1.0 Ok");
      if (reply.code / 100 == 2) {
        in_mail_ = true;
        from_ = address;
      }
      return send(reply);
    }
    if (verb == "rcpt") {
      if (!in_mail_) return protocol_error("503 5.5.1 Error: need MAIL command");
      std::string address;
      std::string params;
      if (!iequals_prefix(arg, "to:") || !parse_path(arg.substr(3), address, params) ||
          address.empty()) {
        return protocol_error("501 5.5.4 Syntax: RCPT TO:<address>");
      }
      if (rcpts_.size() >= kMaxRecipients) {
        return send(fixed_reply("452 4.5.3 Error: too many recipients"));
      }
      const Rule* rule = script_.match_rcpt(address);
      const Reply reply = rule != nullptr ? rule->reply : fixed_reply("250 2.1.5 Ok");
      if (reply.code / 100 == 2) rcpts_.push_back(address);
      return send(reply);
    }
    if (verb == "data") {
      if (!trim(arg).empty()) return protocol_error("501 5.5.4 Syntax: DATA");
      if (!in_mail_) return protocol_error("503 5.5.1 Error: need RCPT command");
      if (rcpts_.empty()) return send(fixed_reply("554 5.5.1 Error: no valid recipients"));
      phase_ = Phase::Data;
      data_size_ = 0;
      data_.clear();
      data_midline_ = false;
      return send(fixed_reply("354 End data with <CR><LF>.<CR><LF>"));
    }
    if (verb == "rset") {
      reset_transaction();
      return send(fixed_reply("250 2.0.0 Ok"));
    }
    if (verb == "noop") return send(fixed_reply("250 2.0.0 Ok"));
    if (verb == "vrfy") return send(fixed_reply("252 2.0.0 Cannot VRFY user"));
    if (verb == "quit") {
      send(fixed_reply("221 2.0.0 Bye"));
      return finish("quit");
    }
    protocol_error("502 5.5.2 Error: command not recognized");
  }

  int fd_;
  unsigned id_;
  std::string client_;
  std::string server_;
  const Settings& settings_;
  const Script& script_;
  Log& log_;
  std::chrono::steady_clock::time_point last_activity_;
  std::string in_;
  std::string out_;
  std::string reason_;
  Phase phase_ = Phase::Command;
  bool closing_ = false;
  bool greeted_ = false;
  bool in_mail_ = false;
  bool data_midline_ = false;
  std::string from_;
  std::vector<std::string> rcpts_;
  std::string data_;  // the message, kept only with --save-dir
  std::size_t data_size_ = 0;
  unsigned messages_ = 0;
  int errors_ = 0;
};

// --- main loop ----------------------------------------------------------------------------------

// A finished session's socket, closed gracefully: closing a socket that still has unread input
// (the rest of an over-long line, commands pipelined after QUIT or a 421) makes the kernel send
// an RST, and the client may then lose the last reply before it reads it. So the server sends
// FIN (shutdown SHUT_WR) and reads and discards until the client closes too, for at most
// kLingerTime.
struct Lingering {
  int fd;
  std::chrono::steady_clock::time_point deadline;
};

Lingering linger_start(int fd, std::chrono::steady_clock::time_point now) {
  shutdown(fd, SHUT_WR);
  return {fd, now + kLingerTime};
}

// Discards what is readable; closes the socket (fd = -1) at end of input or on an error.
void linger_read(Lingering& l) {
  char buf[16384];
  for (;;) {
    const ssize_t n = recv(l.fd, buf, sizeof buf, 0);
    if (n > 0) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    close(l.fd);
    l.fd = -1;
    return;
  }
}

struct Options {
  std::string listen;
  std::string script;
  std::string banner;
  std::string hostname = "mx.lab.test";
  std::string log;
  std::string save_dir;
};

void usage(std::FILE* to) {
  std::fprintf(to,
               "usage: rampart-lab-mx --listen IP:PORT [--script FILE] [--banner TEXT] "
               "[--hostname NAME] [--log FILE] [--save-dir DIR]\n");
}

std::optional<Options> parse_options(int argc, char** argv) {
  Options o;
  const std::map<std::string, std::string Options::*> flags = {
      {"--listen", &Options::listen}, {"--script", &Options::script},
      {"--banner", &Options::banner}, {"--hostname", &Options::hostname},
      {"--log", &Options::log},       {"--save-dir", &Options::save_dir},
  };
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      std::exit(0);
    }
    const auto it = flags.find(arg);
    if (it == flags.end() || i + 1 >= argc) {
      std::fprintf(stderr, "rampart-lab-mx: bad argument \"%s\"\n", arg.c_str());
      return std::nullopt;
    }
    o.*(it->second) = argv[++i];
  }
  if (o.listen.empty()) {
    std::fprintf(stderr, "rampart-lab-mx: --listen is required\n");
    return std::nullopt;
  }
  return o;
}

void install_signals() {
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_stop_signal;  // no SA_RESTART: poll() returns EINTR and the loop notices
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sa.sa_handler = on_reload_signal;
  sigaction(SIGHUP, &sa, nullptr);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, nullptr);
}

int run(const Options& opt) {
  Log log;
  if (!opt.log.empty() && !log.open(opt.log)) {
    std::fprintf(stderr, "rampart-lab-mx: cannot open log %s: %s\n", opt.log.c_str(),
                 std::strerror(errno));
    return 2;
  }
  Script script;
  std::string err;
  if (!opt.script.empty()) {
    auto loaded = load_script(opt.script, err);
    if (!loaded) {
      std::fprintf(stderr, "rampart-lab-mx: %s\n", err.c_str());
      return 2;
    }
    script = std::move(*loaded);
    log.event("script loaded rules=" + std::to_string(script.rules.size()));
  }
  Settings settings;
  settings.hostname = opt.hostname;
  if (!opt.save_dir.empty()) {
    struct stat st {};
    if (stat(opt.save_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      std::fprintf(stderr, "rampart-lab-mx: --save-dir %s is not a directory\n",
                   opt.save_dir.c_str());
      return 2;
    }
    settings.save_dir = opt.save_dir;
  }
  const std::string banner =
      opt.banner.empty() ? opt.hostname + " ESMTP rampart-lab-mx" : opt.banner;
  const bool has_code = banner.size() >= 4 && is_digit(banner[0]) && is_digit(banner[1]) &&
                        is_digit(banner[2]) && (banner[3] == ' ' || banner[3] == '-');
  auto banner_reply = make_reply(has_code ? banner : "220 " + banner, err);
  if (!banner_reply) {
    std::fprintf(stderr, "rampart-lab-mx: bad --banner: %s\n", err.c_str());
    return 2;
  }
  settings.banner = *banner_reply;

  const int listener = open_listener(opt.listen, err);
  if (listener < 0) {
    std::fprintf(stderr, "rampart-lab-mx: %s\n", err.c_str());
    return 1;
  }
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof bound;
  getsockname(listener, reinterpret_cast<sockaddr*>(&bound), &bound_len);
  log.event("listening on " + format_endpoint(bound));

  std::vector<std::unique_ptr<Session>> sessions;
  std::vector<Lingering> lingering;
  unsigned next_id = 1;
  while (g_stop == 0) {
    if (g_reload != 0) {
      g_reload = 0;
      if (opt.script.empty()) {
        log.event("script reload skipped: no --script");
      } else if (auto loaded = load_script(opt.script, err)) {
        script = std::move(*loaded);  // sessions hold a reference to `script`: same object
        log.event("script loaded rules=" + std::to_string(script.rules.size()));
      } else {
        log.event("script reload failed, keeping old rules: " + err);
      }
    }
    std::vector<pollfd> fds;
    fds.push_back({listener, POLLIN, 0});
    for (const auto& s : sessions) {
      short events = 0;
      if (s->wants_read()) events = static_cast<short>(events | POLLIN);
      if (s->wants_write()) events = static_cast<short>(events | POLLOUT);
      fds.push_back({s->fd(), events, 0});
    }
    const std::size_t sessions_end = fds.size();
    for (const auto& l : lingering) fds.push_back({l.fd, POLLIN, 0});
    // The 1 s timeout only bounds how late idle sessions are noticed.
    if (poll(fds.data(), fds.size(), 1000) < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "rampart-lab-mx: poll: %s\n", std::strerror(errno));
      return 1;
    }
    for (std::size_t i = 1; i < sessions_end; ++i) {
      Session& s = *sessions[i - 1];
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0 && s.wants_read()) s.on_readable();
      if ((fds[i].revents & POLLOUT) != 0 && s.wants_write()) s.on_writable();
      if ((fds[i].revents & (POLLHUP | POLLERR)) != 0 && !s.wants_read() && !s.done()) s.hangup();
    }
    const auto now = std::chrono::steady_clock::now();
    for (auto& s : sessions) {
      if (s->idle_expired(now)) s->timeout();
    }
    std::erase_if(sessions, [&log, &lingering, now](const std::unique_ptr<Session>& s) {
      if (!s->done()) return false;
      log.event("disconnect conn=" + std::to_string(s->id()) + " reason=" + s->reason());
      lingering.push_back(linger_start(s->release_fd(), now));
      return true;
    });
    std::erase_if(lingering, [&fds, sessions_end, now](Lingering& l) {
      for (std::size_t i = sessions_end; i < fds.size(); ++i) {
        if (fds[i].fd == l.fd && fds[i].revents != 0) linger_read(l);
      }
      if (l.fd >= 0 && now < l.deadline) return false;
      if (l.fd >= 0) close(l.fd);
      return true;
    });
    if ((fds[0].revents & POLLIN) != 0) {
      for (;;) {
        sockaddr_storage peer{};
        socklen_t peer_len = sizeof peer;
        const int fd = accept4(listener, reinterpret_cast<sockaddr*>(&peer), &peer_len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;  // EAGAIN, or a transient error: try again on the next poll
        if (sessions.size() >= kMaxSessions) {
          static constexpr char kBusy[] = "421 4.3.2 Error: too many connections\r\n";
          (void)::send(fd, kBusy, sizeof kBusy - 1, MSG_NOSIGNAL);
          close(fd);
          continue;
        }
        sockaddr_storage local{};
        socklen_t local_len = sizeof local;
        getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len);
        sessions.push_back(std::make_unique<Session>(
            fd, next_id++, format_endpoint(peer), format_endpoint(local), settings, script, log));
        sessions.back()->start();
      }
    }
  }
  for (const auto& l : lingering) close(l.fd);
  close(listener);
  log.event("stopping");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  install_signals();
  const auto options = parse_options(argc, argv);
  if (!options) {
    usage(stderr);
    return 2;
  }
  try {
    return run(*options);
  } catch (const std::exception& e) {  // bad_alloc and friends: report, never crash silently
    std::fprintf(stderr, "rampart-lab-mx: fatal: %s\n", e.what());
    return 1;
  }
}
