// The IMAP4rev1 client of imap.hpp: one connection, one command at a time, every network step
// bounded by Config::timeout. Boost 1.74 has no cancellation slots, so each step runs the
// io_context for at most the timeout and closes the socket when it is not done (STYLE.md 8).
// Exceptions from Asio stop in this file; nothing here logs.
#include <utility>  // before Asio (STYLE.md section 8)

#include "imap/imap.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <exception>
#include <fstream>
#include <functional>
#include <sstream>

namespace rampart::imap {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// RAMPART_TRY for Result<void>: return the error, else go on.
#define RAMPART_IMAP_CHECK(expr)                                              \
  do {                                                                        \
    if (auto check_ = (expr); !check_) return tl::unexpected(check_.error()); \
  } while (false)

namespace {

// Longest line (outside literals) the server may send; a UID SEARCH of ~1 million messages fits.
constexpr std::size_t max_line = std::size_t{8} << 20;
// Longest literal outside a message fetch (a mailbox name, a header): generous, but bounded.
constexpr std::size_t max_small_literal = std::size_t{1} << 20;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) ==
                  std::toupper(static_cast<unsigned char>(y));
         });
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// Server text for an error message: bounded, no control characters.
std::string excerpt(std::string_view text) {
  constexpr std::size_t max = 200;
  std::string out;
  for (const char c : text.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  if (text.size() > max) out += "...";
  return out;
}

std::optional<std::uint64_t> to_number(std::string_view s) {
  std::uint64_t v = 0;
  if (s.empty()) return std::nullopt;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// "{123}" or "{123+}" at the end of a line: the size of the literal that follows.
std::optional<std::uint64_t> trailing_literal(std::string_view line) {
  if (!line.ends_with('}')) return std::nullopt;
  const auto open = line.rfind('{');
  if (open == std::string_view::npos) return std::nullopt;
  std::string_view n = line.substr(open + 1, line.size() - open - 2);
  if (n.ends_with('+')) n.remove_suffix(1);
  return to_number(n);
}

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// A command as the client sends it: text pieces, each but the last followed by a synchronizing
// literal (RFC 3501 section 4.3), for strings a quoted string cannot carry.
struct Command {
  std::vector<std::string> text{std::string()};
  std::vector<std::string> literals;

  explicit Command(std::string_view words) { text.back() = words; }
  Command& raw(std::string_view words) {
    text.back() += words;
    return *this;
  }
  // An astring: quoted when it is 7-bit without CR, LF or NUL, else a literal.
  Command& astring(std::string_view s) {
    const bool quotable = std::all_of(s.begin(), s.end(), [](char c) {
      const auto u = static_cast<unsigned char>(c);
      return u != 0 && u != '\r' && u != '\n' && u < 0x80;
    });
    if (quotable) {
      std::string q = "\"";
      for (const char c : s) {
        if (c == '"' || c == '\\') q += '\\';
        q += c;
      }
      q += '"';
      text.back() += q;
    } else {
      text.back() += fmt::format("{{{}}}", s.size());
      literals.emplace_back(s);
      text.emplace_back();
    }
    return *this;
  }
};

// One response line with its literals: text keeps the "{N}" markers, literals their bytes, in
// order.
struct Line {
  std::string text;
  std::vector<std::string> literals;
};

// The tagged completion of a command and the untagged responses that came with it.
struct Reply {
  std::string status;  // OK, NO or BAD (upper-case)
  std::string code;    // the response code's atom, upper-case: TRYCREATE, AUTHENTICATIONFAILED, ...
  std::string text;    // everything after the status
  std::vector<Line> untagged;  // without the leading "* "
};

// "[CODE ...] text" -> CODE.
std::string response_code(std::string_view text) {
  if (!text.starts_with('[')) return {};
  const auto end = text.find_first_of(" ]");
  if (end == std::string_view::npos) return {};
  return upper(text.substr(1, end - 1));
}

// What a NO means for the caller: a retry, or the operator's to fix (RFC 5530 codes).
Errc no_errc(std::string_view code, Errc otherwise) {
  for (const auto c : {"UNAVAILABLE", "INUSE", "SERVERBUG", "LIMIT", "OVERQUOTA", "EXPUNGEISSUED",
                       "CONTACTADMIN"}) {
    if (code == c) return Errc::Temporary;
  }
  for (const auto c : {"AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED", "PRIVACYREQUIRED",
                       "NONEXISTENT", "NOPERM", "CANNOT"}) {
    if (code == c) return Errc::Config;
  }
  return otherwise;
}

}  // namespace

Result<Endpoint> parse_url(std::string_view url) {
  const auto bad = [&](std::string_view why) {
    return fail(Errc::Config, fmt::format("imap url {:?}: {}", url, why));
  };
  Endpoint ep;
  std::string_view rest;
  if (url.starts_with("imaps://")) {
    ep.implicit_tls = true;
    ep.port = 993;
    rest = url.substr(8);
  } else if (url.starts_with("imap://")) {
    ep.port = 143;
    rest = url.substr(7);
  } else {
    return bad("expected imaps://HOST[:PORT] or imap://HOST[:PORT]");
  }
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.find_first_of("/@?#") != std::string_view::npos) {
    return bad("only HOST[:PORT] may follow the scheme");
  }
  std::string_view host = rest;
  std::string_view port;
  if (rest.starts_with('[')) {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return bad("missing ]");
    host = rest.substr(1, close - 1);
    const auto tail = rest.substr(close + 1);
    if (!tail.empty()) {
      if (tail[0] != ':') return bad("expected :PORT after ]");
      port = tail.substr(1);
    }
  } else if (const auto colon = rest.find(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty()) return bad("empty port");
  }
  if (host.empty()) return bad("missing host");
  if (!port.empty()) {
    const auto p = to_number(port);
    if (!p || *p == 0 || *p > 65535) return bad(fmt::format("bad port {:?}", port));
    ep.port = static_cast<std::uint16_t>(*p);
  }
  ep.host = std::string(host);
  return ep;
}

struct Session::Impl {
  Config cfg;
  Endpoint ep;
  std::string where;  // "imap HOST:PORT", the prefix of every error
  std::string password;
  asio::io_context io;
  ssl::context ctx{ssl::context::tls_client};
  std::unique_ptr<ssl::stream<tcp::socket>> stream;
  bool tls = false;     // reads and writes go through TLS
  bool broken = false;  // a step failed mid-conversation: nothing more is sent
  bool closed = false;
  std::string verify_error;  // why certificate verification failed, from the callback
  std::string bye;           // the text of an untagged BYE, if one came
  std::string rbuf;
  std::array<char, 65536> chunk{};
  unsigned next_tag = 0;
  std::vector<std::string> caps;
  bool tried_create = false;

  explicit Impl(const Config& c) : cfg(c) {}

  bool has_cap(std::string_view cap) const {
    return std::find(caps.begin(), caps.end(), cap) != caps.end();
  }

  tl::unexpected<Error> broke(Errc code, std::string what) {
    broken = true;
    error_code ignored;
    if (stream) stream->lowest_layer().close(ignored);
    return fail(code, fmt::format("{}: {}", where, what));
  }

  std::string timeout_text() const {
    const auto ms = cfg.timeout.count();
    return ms % 1000 == 0 ? fmt::format("{}s", ms / 1000) : fmt::format("{}ms", ms);
  }

  // Starts one asynchronous step (start(handler), handler(error_code, size_t)) and runs the
  // io_context until it completes or the timeout passes; then the socket is closed, which
  // completes it with operation_aborted.
  template <class Start>
  Result<std::size_t> step(std::string_view what, Start&& start) {
    if (broken) return fail(Errc::Temporary, fmt::format("{}: the connection is broken", where));
    std::optional<error_code> result;
    std::size_t n = 0;
    try {
      start([&result, &n](const error_code& ec, std::size_t k) {
        result = ec;
        n = k;
      });
      io.restart();
      io.run_for(cfg.timeout);
      if (!result) {
        error_code ignored;
        stream->lowest_layer().close(ignored);
        io.restart();
        io.run();  // the aborted step's handler
        return broke(Errc::Temporary,
                     fmt::format("no progress within {} while {}", timeout_text(), what));
      }
    } catch (const std::exception& e) {
      return broke(Errc::Temporary, fmt::format("{}: {}", what, e.what()));
    }
    if (*result) {
      const bool eof = *result == asio::error::eof || *result == ssl::error::stream_truncated;
      if (eof && !bye.empty()) {
        return broke(Errc::Temporary,
                     fmt::format("the server closed the connection ({:?}) while {}", bye, what));
      }
      if (eof)
        return broke(Errc::Temporary,
                     fmt::format("the server closed the connection while {}", what));
      return broke(Errc::Temporary, fmt::format("{} failed: {}", what, result->message()));
    }
    return n;
  }

  Result<void> write(std::string_view data) {
    auto r = step("sending a command", [&](auto handler) {
      if (tls) {
        asio::async_write(*stream, asio::buffer(data.data(), data.size()), handler);
      } else {
        asio::async_write(stream->next_layer(), asio::buffer(data.data(), data.size()), handler);
      }
    });
    if (!r) return tl::unexpected(r.error());
    return {};
  }

  Result<void> fill() {
    RAMPART_TRY(n, step("waiting for its reply", [&](auto handler) {
                  if (tls) {
                    stream->async_read_some(asio::buffer(chunk), handler);
                  } else {
                    stream->next_layer().async_read_some(asio::buffer(chunk), handler);
                  }
                }));
    rbuf.append(chunk.data(), n);
    return {};
  }

  // One CRLF-terminated line, without the CRLF. A bare LF ends a line too (lenient).
  Result<std::string> read_line() {
    std::size_t scanned = 0;
    for (;;) {
      const auto lf = rbuf.find('\n', scanned);
      if (lf != std::string::npos) {
        std::string line = rbuf.substr(0, lf > 0 && rbuf[lf - 1] == '\r' ? lf - 1 : lf);
        rbuf.erase(0, lf + 1);
        return line;
      }
      scanned = rbuf.size();
      if (rbuf.size() > max_line) {
        return broke(Errc::Invalid,
                     fmt::format("the server sent a line longer than {} bytes", max_line));
      }
      RAMPART_IMAP_CHECK(fill());
    }
  }

  Result<std::string> read_exact(std::size_t n) {
    std::string out;
    out.reserve(n);
    for (;;) {
      const std::size_t take = std::min(n - out.size(), rbuf.size());
      out.append(rbuf, 0, take);
      rbuf.erase(0, take);
      if (out.size() == n) return out;
      RAMPART_IMAP_CHECK(fill());
    }
  }

  // One response with its literals ({N}CRLF then N bytes, then the line goes on).
  Result<Line> read_response(std::size_t literal_limit) {
    Line line;
    for (;;) {
      RAMPART_TRY(part, read_line());
      line.text += part;
      if (line.text.size() > max_line) {
        return broke(Errc::Invalid,
                     fmt::format("the server sent a response longer than {} bytes", max_line));
      }
      const auto n = trailing_literal(part);
      if (!n) return line;
      if (*n > literal_limit) {
        return broke(Errc::Invalid,
                     fmt::format("the server sent a {}-byte literal, over the {}-byte limit", *n,
                                 literal_limit));
      }
      RAMPART_TRY(bytes, read_exact(static_cast<std::size_t>(*n)));
      line.literals.push_back(std::move(bytes));
    }
  }

  void note_capabilities(std::string_view list) {
    caps.clear();
    std::size_t i = 0;
    while (i < list.size()) {
      const auto sp = list.find(' ', i);
      const auto word = list.substr(i, sp == std::string_view::npos ? list.npos : sp - i);
      if (!word.empty()) caps.push_back(upper(word));
      if (sp == std::string_view::npos) break;
      i = sp + 1;
    }
  }

  // Untagged data every command may carry: CAPABILITY lists, BYE.
  void note_untagged(const Line& l) {
    const std::string_view t = l.text;
    if (istarts_with(t, "CAPABILITY ")) note_capabilities(t.substr(11));
    if (istarts_with(t, "BYE")) bye = excerpt(t.size() > 4 ? t.substr(4) : std::string_view());
  }

  void note_code(std::string_view text) {
    // "[CAPABILITY IMAP4rev1 ...] text": the new list comes with the status (RFC 3501 7.1).
    if (istarts_with(text, "[CAPABILITY ")) {
      const auto end = text.find(']');
      if (end != std::string_view::npos) note_capabilities(text.substr(12, end - 12));
    }
  }

  // Reads until the tagged reply to tag; continuation requests ("+ ...") end the read too when
  // want_continuation, reported as status "+".
  Result<Reply> read_until(const std::string& tag, std::size_t literal_limit,
                           bool want_continuation, Reply reply = {}) {
    for (;;) {
      RAMPART_TRY(line, read_response(literal_limit));
      const std::string_view t = line.text;
      if (t.starts_with("* ")) {
        line.text.erase(0, 2);
        note_untagged(line);
        reply.untagged.push_back(std::move(line));
        continue;
      }
      if (t.starts_with('+')) {
        if (!want_continuation) {
          return broke(Errc::Invalid,
                       fmt::format("unexpected continuation request {:?}", excerpt(t)));
        }
        reply.status = "+";
        reply.text = t.size() > 2 ? std::string(t.substr(2)) : std::string();
        return reply;
      }
      if (t.starts_with(tag) && t.size() > tag.size() && t[tag.size()] == ' ') {
        const std::string_view rest = t.substr(tag.size() + 1);
        const auto sp = rest.find(' ');
        reply.status = upper(rest.substr(0, sp));
        reply.text =
            sp == std::string_view::npos ? std::string() : std::string(rest.substr(sp + 1));
        if (reply.status != "OK" && reply.status != "NO" && reply.status != "BAD") {
          return broke(Errc::Invalid, fmt::format("unparsable reply {:?}", excerpt(t)));
        }
        reply.code = response_code(reply.text);
        note_code(reply.text);
        return reply;
      }
      return broke(Errc::Invalid, fmt::format("unparsable reply {:?}", excerpt(t)));
    }
  }

  // Sends cmd (waiting for "+" before each literal) and reads its reply.
  Result<Reply> exec(const Command& cmd, std::size_t literal_limit = max_small_literal) {
    const std::string tag = fmt::format("R{:04}", ++next_tag);
    std::string out = tag + " ";
    Reply early;
    for (std::size_t i = 0; i < cmd.text.size(); ++i) {
      out += cmd.text[i];
      if (i == cmd.literals.size()) break;
      out += "\r\n";
      RAMPART_IMAP_CHECK(write(out));
      out.clear();
      RAMPART_TRY(r, read_until(tag, literal_limit, true, std::move(early)));
      if (r.status != "+") return r;  // refused before the literal was sent
      r.status.clear();
      early = std::move(r);
      RAMPART_IMAP_CHECK(write(cmd.literals[i]));
    }
    out += "\r\n";
    RAMPART_IMAP_CHECK(write(out));
    return read_until(tag, literal_limit, false, std::move(early));
  }

  // The error for a reply that is not OK. what names the step ("selecting \"INBOX\"").
  tl::unexpected<Error> refused(const Reply& r, std::string_view what, Errc no_default) {
    if (r.status == "BAD") {
      return fail(Errc::Internal, fmt::format("{}: the server rejected {} as a bad command: {:?}",
                                              where, what, excerpt(r.text)));
    }
    return fail(no_errc(r.code, no_default),
                fmt::format("{}: {} failed: {:?}", where, what, excerpt(r.text)));
  }

  Result<Reply> exec_ok(const Command& cmd, std::string_view what, Errc no_default,
                        std::size_t literal_limit = max_small_literal) {
    RAMPART_TRY(r, exec(cmd, literal_limit));
    if (r.status != "OK") return refused(r, what, no_default);
    return r;
  }

  Result<void> handshake() {
    if (cfg.tls != "none") {
      // SNI for name-based servers; not for address literals (RFC 6066 section 3).
      error_code ec;
      asio::ip::make_address(ep.host, ec);
      // SSL_set_tlsext_host_name() spelt out: the macro hides a C-style cast.
      if (ec && SSL_ctrl(stream->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
                         TLSEXT_NAMETYPE_host_name, const_cast<char*>(ep.host.c_str())) != 1) {
        return broke(Errc::Internal, "cannot set the TLS server name");
      }
    }
    auto r = step("in the TLS handshake", [&](auto handler) {
      stream->async_handshake(ssl::stream_base::client,
                              [handler](const error_code& e) mutable { handler(e, 0); });
    });
    if (!r) {
      if (!verify_error.empty()) {
        return fail(Errc::Config, fmt::format("{}: tls certificate verification failed: {}", where,
                                              verify_error));
      }
      return tl::unexpected(r.error());
    }
    tls = true;
    return {};
  }

  Result<void> connect() {
    auto resolved = std::make_shared<tcp::resolver::results_type>();
    tcp::resolver resolver(io);
    RAMPART_TRY(
        r1, step(fmt::format("resolving {:?}", ep.host), [&](auto handler) {
          resolver.async_resolve(
              ep.host, std::to_string(ep.port),
              [handler, resolved](const error_code& e, tcp::resolver::results_type res) mutable {
                *resolved = std::move(res);
                handler(e, 0);
              });
        }));
    (void)r1;
    RAMPART_TRY(r2, step("connecting", [&](auto handler) {
                  asio::async_connect(stream->next_layer(), *resolved,
                                      [handler](const error_code& e, const tcp::endpoint&) mutable {
                                        handler(e, 0);
                                      });
                }));
    (void)r2;
    return {};
  }

  Result<void> capability() {
    RAMPART_TRY(r, exec_ok(Command("CAPABILITY"), "CAPABILITY", Errc::Temporary));
    (void)r;
    return {};
  }

  Result<void> starttls() {
    if (!has_cap("STARTTLS")) {
      return fail(
          Errc::Config,
          fmt::format("{}: the server does not offer STARTTLS; refusing to log in over plain "
                      "text (imap_tls = \"none\" allows it, for tests only)",
                      where));
    }
    RAMPART_TRY(r, exec_ok(Command("STARTTLS"), "STARTTLS", Errc::Temporary));
    (void)r;
    // Anything already buffered came before the handshake: an injection (CVE-2011-0411 style).
    if (!rbuf.empty()) return broke(Errc::Invalid, "the server sent data after its STARTTLS reply");
    RAMPART_IMAP_CHECK(handshake());
    caps.clear();  // RFC 3501 section 6.2.1: forget what was said in plain text
    return capability();
  }

  Result<void> login() {
    const auto what = fmt::format("logging in as {:?}", cfg.user);
    Reply r;
    if (has_cap("AUTH=PLAIN")) {
      // RFC 4616: authzid NUL authcid NUL passwd, base64 after the server's "+".
      const std::string tag = fmt::format("R{:04}", ++next_tag);
      RAMPART_IMAP_CHECK(write(tag + " AUTHENTICATE PLAIN\r\n"));
      RAMPART_TRY(cont, read_until(tag, max_small_literal, true));
      if (cont.status == "+") {
        std::string creds;
        creds += '\0';
        creds += cfg.user;
        creds += '\0';
        creds += password;
        RAMPART_IMAP_CHECK(write(base64(creds) + "\r\n"));
        RAMPART_TRY(done, read_until(tag, max_small_literal, false));
        r = std::move(done);
      } else {
        r = std::move(cont);
      }
    } else if (has_cap("LOGINDISABLED")) {
      return fail(
          Errc::Config,
          fmt::format("{}: the server allows no login here (LOGINDISABLED, no AUTH=PLAIN)", where));
    } else {
      Command cmd("LOGIN ");
      cmd.astring(cfg.user).raw(" ").astring(password);
      RAMPART_TRY(done, exec(cmd));
      r = std::move(done);
    }
    // A NO without a retry code is a bad user or password: the operator's to fix.
    if (r.status != "OK") return refused(r, what, Errc::Config);
    if (!istarts_with(r.text, "[CAPABILITY ")) {
      // Capabilities may change after login (MOVE, UIDPLUS): ask when the OK did not say.
      return capability();
    }
    return {};
  }

  Result<void> select() {
    Command cmd("SELECT ");
    cmd.astring(cfg.mailbox);
    RAMPART_TRY(r, exec_ok(cmd, fmt::format("selecting {:?}", cfg.mailbox), Errc::Config));
    (void)r;
    return {};
  }
};

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

Session::~Session() {
  if (impl_ && impl_->stream && !impl_->closed) {
    error_code ignored;
    impl_->stream->lowest_layer().close(ignored);
  }
}

const std::vector<std::string>& Session::capabilities() const { return impl_->caps; }

Result<Session> Session::open(const Config& cfg) {
  RAMPART_TRY(ep, parse_url(cfg.url));
  auto impl = std::make_unique<Impl>(cfg);
  Impl& s = *impl;
  s.ep = ep;
  s.where = ep.host.find(':') != std::string::npos ? fmt::format("imap [{}]:{}", ep.host, ep.port)
                                                   : fmt::format("imap {}:{}", ep.host, ep.port);
  if (cfg.tls != "verify" && cfg.tls != "insecure" && cfg.tls != "none") {
    return fail(Errc::Config, fmt::format("{}: bad tls {:?}: expected verify, insecure or none",
                                          s.where, cfg.tls));
  }
  if (cfg.tls == "none" && ep.implicit_tls) {
    return fail(Errc::Config,
                fmt::format("{}: tls \"none\" contradicts the imaps:// url", s.where));
  }
  if (cfg.user.empty()) return fail(Errc::Config, fmt::format("{}: no user name", s.where));

  // The password: the file's first line, without its line end. Never echoed back.
  {
    std::ifstream in(cfg.password_file, std::ios::binary);
    if (cfg.password_file.empty() || !in) {
      return fail(Errc::Config, fmt::format("{}: cannot read the password file {:?}", s.where,
                                            cfg.password_file));
    }
    std::getline(in, s.password);
    if (!s.password.empty() && s.password.back() == '\r') s.password.pop_back();
    if (s.password.empty()) {
      return fail(Errc::Config,
                  fmt::format("{}: the password file {:?} is empty", s.where, cfg.password_file));
    }
  }

  try {
    SSL_CTX_set_min_proto_version(s.ctx.native_handle(), TLS1_2_VERSION);
    if (cfg.tls == "verify") {
      error_code ec;
      if (cfg.ca_file.empty()) {
        s.ctx.set_default_verify_paths(ec);
      } else {
        s.ctx.load_verify_file(cfg.ca_file, ec);
      }
      if (ec) {
        return fail(Errc::Config,
                    fmt::format("{}: cannot load the CA certificates {:?}: {}", s.where,
                                cfg.ca_file.empty() ? std::string("(system default)") : cfg.ca_file,
                                ec.message()));
      }
      s.ctx.set_verify_mode(ssl::verify_peer);
    } else {
      s.ctx.set_verify_mode(ssl::verify_none);
    }
    s.stream = std::make_unique<ssl::stream<tcp::socket>>(s.io, s.ctx);
    if (cfg.tls == "verify") {
      s.stream->set_verify_callback([&s, check = ssl::host_name_verification(ep.host)](
                                        bool preverified, ssl::verify_context& vc) mutable {
        X509_STORE_CTX* x = vc.native_handle();
        if (!preverified) {
          if (s.verify_error.empty()) {
            s.verify_error = fmt::format("{} (depth {})",
                                         X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)),
                                         X509_STORE_CTX_get_error_depth(x));
          }
          return false;
        }
        if (!check(preverified, vc)) {
          if (s.verify_error.empty()) {
            s.verify_error = fmt::format("the certificate does not name {:?}", s.ep.host);
          }
          return false;
        }
        return true;
      });
    }
  } catch (const std::exception& e) {
    return fail(Errc::Internal, fmt::format("{}: tls setup: {}", s.where, e.what()));
  }

  RAMPART_IMAP_CHECK(s.connect());
  if (ep.implicit_tls) {
    RAMPART_IMAP_CHECK(s.handshake());
  }
  // The greeting: OK, PREAUTH (already logged in) or BYE (busy, refused).
  RAMPART_TRY(greeting, s.read_response(max_small_literal));
  std::string_view g = greeting.text;
  bool preauth = false;
  if (istarts_with(g, "* OK")) {
    s.note_code(g.size() > 5 ? g.substr(5) : std::string_view());
  } else if (istarts_with(g, "* PREAUTH")) {
    preauth = true;
    s.note_code(g.size() > 10 ? g.substr(10) : std::string_view());
  } else if (istarts_with(g, "* BYE")) {
    return s.broke(Errc::Temporary,
                   fmt::format("the server refused the connection: {:?}", excerpt(g.substr(2))));
  } else {
    return s.broke(Errc::Invalid, fmt::format("not an IMAP greeting: {:?}", excerpt(g)));
  }
  if (s.caps.empty()) {
    RAMPART_IMAP_CHECK(s.capability());
  }
  if (!ep.implicit_tls && cfg.tls != "none") {
    if (preauth) {
      return s.broke(Errc::Config, "the server pre-authenticated a plain-text connection");
    }
    RAMPART_IMAP_CHECK(s.starttls());
  }
  if (!preauth) {
    RAMPART_IMAP_CHECK(s.login());
  }
  RAMPART_IMAP_CHECK(s.select());
  return Session(std::move(impl));
}

Result<std::vector<std::uint32_t>> Session::unseen() {
  Impl& s = *impl_;
  if (s.closed) return fail(Errc::Internal, fmt::format("{}: session closed", s.where));
  RAMPART_TRY(
      r, s.exec_ok(Command("UID SEARCH UNSEEN"), "searching for unseen messages", Errc::Temporary));
  std::vector<std::uint32_t> uids;
  for (const auto& line : r.untagged) {
    std::string_view t = line.text;
    if (!istarts_with(t, "SEARCH")) continue;
    t.remove_prefix(6);
    while (!t.empty()) {
      while (t.starts_with(' ')) t.remove_prefix(1);
      const auto sp = t.find(' ');
      const auto word = t.substr(0, sp);
      if (!word.empty()) {
        const auto n = to_number(word);
        if (!n || *n == 0 || *n > 0xffffffffULL) {
          return s.broke(Errc::Invalid,
                         fmt::format("bad UID {:?} in a SEARCH reply", excerpt(word)));
        }
        uids.push_back(static_cast<std::uint32_t>(*n));
      }
      if (sp == std::string_view::npos) break;
      t.remove_prefix(sp);
    }
  }
  std::sort(uids.begin(), uids.end());
  uids.erase(std::unique(uids.begin(), uids.end()), uids.end());
  return uids;
}

namespace {

// The value after item (e.g. "RFC822.SIZE ") in a FETCH response's text, up to a space or ")".
std::optional<std::string_view> fetch_item(std::string_view text, std::string_view item) {
  const std::string u = upper(text);
  std::size_t at = 0;
  while ((at = u.find(item, at)) != std::string::npos) {
    if (at > 0 && text[at - 1] != '(' && text[at - 1] != ' ') {
      at += item.size();
      continue;
    }
    const auto start = at + item.size();
    const auto end = text.find_first_of(" )", start);
    return text.substr(start, end == std::string_view::npos ? text.npos : end - start);
  }
  return std::nullopt;
}

// "N FETCH (...)" with "UID uid" among its items.
bool is_fetch_of(std::string_view text, std::uint32_t uid) {
  const auto sp = text.find(' ');
  if (sp == std::string_view::npos || !istarts_with(text.substr(sp + 1), "FETCH (")) return false;
  const auto u = fetch_item(text, "UID ");
  return u && to_number(*u) == uid;
}

}  // namespace

Result<Message> Session::fetch(std::uint32_t uid) {
  Impl& s = *impl_;
  if (s.closed) return fail(Errc::Internal, fmt::format("{}: session closed", s.where));
  Message m;
  m.uid = uid;
  RAMPART_TRY(sized, s.exec_ok(Command(fmt::format("UID FETCH {} (UID RFC822.SIZE)", uid)),
                               fmt::format("fetching the size of uid {}", uid), Errc::Temporary));
  std::optional<std::uint64_t> size;
  for (const auto& line : sized.untagged) {
    if (!is_fetch_of(line.text, uid)) continue;
    if (const auto v = fetch_item(line.text, "RFC822.SIZE ")) size = to_number(*v);
  }
  if (!size) {
    return fail(Errc::Invalid,
                fmt::format("{}: uid {} is not in {:?} (any more)", s.where, uid, s.cfg.mailbox));
  }
  m.size = *size;
  if (m.size > s.cfg.max_message) return m;  // skipped: the caller reports it

  RAMPART_TRY(body,
              s.exec_ok(Command(fmt::format("UID FETCH {} (UID BODY.PEEK[])", uid)),
                        fmt::format("fetching uid {}", uid), Errc::Temporary, s.cfg.max_message));
  for (auto& line : body.untagged) {
    if (!is_fetch_of(line.text, uid)) continue;
    const std::string u = upper(line.text);
    const auto at = u.find("BODY[] ");
    if (at == std::string::npos) continue;
    const std::string_view after = std::string_view(line.text).substr(at + 7);
    if (after.starts_with('{')) {
      // The body is this line's literal: count the literals before it.
      const auto index = static_cast<std::size_t>(
          std::count(line.text.begin(), line.text.begin() + static_cast<std::ptrdiff_t>(at), '}'));
      if (index < line.literals.size()) m.bytes = std::move(line.literals[index]);
    } else if (istarts_with(after, "NIL")) {
      m.bytes = std::string();
    } else if (after.starts_with('"')) {
      std::string out;
      for (std::size_t i = 1; i < after.size() && after[i] != '"'; ++i) {
        if (after[i] == '\\' && i + 1 < after.size()) ++i;
        out += after[i];
      }
      m.bytes = std::move(out);
    }
    if (m.bytes) return m;
  }
  return fail(Errc::Invalid, fmt::format("{}: the server sent no body for uid {} in {:?}", s.where,
                                         uid, s.cfg.mailbox));
}

Result<void> Session::done(std::uint32_t uid) {
  Impl& s = *impl_;
  if (s.closed) return fail(Errc::Internal, fmt::format("{}: session closed", s.where));
  // \Seen first: a processed message stays processed even if the move below fails.
  RAMPART_TRY(seen, s.exec_ok(Command(fmt::format("UID STORE {} +FLAGS.SILENT (\\Seen)", uid)),
                              fmt::format("marking uid {} seen", uid), Errc::Temporary));
  (void)seen;
  if (s.cfg.move_to.empty()) return {};

  const bool move = s.has_cap("MOVE");
  const auto what =
      fmt::format("{} uid {} to {:?}", move ? "moving" : "copying", uid, s.cfg.move_to);
  Command transfer(fmt::format("UID {} {} ", move ? "MOVE" : "COPY", uid));
  transfer.astring(s.cfg.move_to);
  RAMPART_TRY(r, s.exec(transfer));
  if (r.status == "NO" && r.code == "TRYCREATE" && !s.tried_create) {
    // RFC 3501 6.4.7: the target does not exist; create it once, then try again.
    s.tried_create = true;
    Command create("CREATE ");
    create.astring(s.cfg.move_to);
    RAMPART_TRY(c, s.exec(create));
    if (c.status != "OK" && c.code != "ALREADYEXISTS") {
      return s.refused(c, fmt::format("creating {:?}", s.cfg.move_to), Errc::Config);
    }
    RAMPART_TRY(again, s.exec(transfer));
    r = std::move(again);
  }
  if (r.status != "OK") return s.refused(r, what, Errc::Temporary);
  if (move) return {};

  RAMPART_TRY(del, s.exec_ok(Command(fmt::format("UID STORE {} +FLAGS.SILENT (\\Deleted)", uid)),
                             fmt::format("flagging uid {} deleted", uid), Errc::Temporary));
  (void)del;
  // Only UID EXPUNGE removes just this message: a plain EXPUNGE would also remove whatever
  // someone else flagged \Deleted in a shared mailbox. Without UIDPLUS the copy is made and the
  // original stays flagged (seen, so it is not fetched again) for the mailbox's own expunge.
  if (!s.has_cap("UIDPLUS")) return {};
  RAMPART_TRY(gone, s.exec_ok(Command(fmt::format("UID EXPUNGE {}", uid)),
                              fmt::format("expunging uid {}", uid), Errc::Temporary));
  (void)gone;
  return {};
}

Result<void> Session::close() {
  Impl& s = *impl_;
  if (s.closed) return {};
  s.closed = true;
  auto r = s.exec(Command("LOGOUT"));
  if (!r) return tl::unexpected(r.error());
  if (s.tls) {
    // close_notify; a server that drops the connection first is fine.
    (void)s.step("closing TLS", [&](auto handler) {
      s.stream->async_shutdown([handler](const error_code& e) mutable { handler(e, 0); });
    });
  }
  error_code ignored;
  s.stream->lowest_layer().close(ignored);
  return {};
}

}  // namespace rampart::imap
