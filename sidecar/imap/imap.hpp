// rampart::imap: a small synchronous IMAP4rev1 client (RFC 3501) for `rampart dmarc fetch`, on
// Boost.Asio and OpenSSL. It lists unseen messages, fetches their raw bytes and marks them \Seen
// or moves them. Not pure: it talks to the network and reads the password file. It never logs
// (callers log what it returns) and never puts the password into an error text.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace rampart::imap {

// What a Session connects to and how; mirrors [sidecar.dmarc] imap_* in rampart.toml.
struct Config {
  // imaps://HOST[:PORT] (implicit TLS, port 993) or imap://HOST[:PORT] (STARTTLS, port 143).
  // IPv6 hosts in brackets. A path or user information in the URL is refused.
  std::string url;
  std::string user;
  // The password is the file's first line (without its line end). The file is read once, by
  // open(); the password travels only inside the TLS session.
  std::string password_file;
  std::string mailbox = "INBOX";  // sent as given: non-ASCII names need modified UTF-7
  std::string move_to;            // empty: done() marks \Seen; else done() moves there
  // verify:   TLS, certificate checked against ca_file (or the system CAs) and the URL's host
  // insecure: TLS, certificate not checked (encrypted, not authenticated)
  // none:     plain text, only with imap:// (for tests); without it a server that does not
  //           offer STARTTLS is refused
  std::string tls = "verify";
  std::string ca_file;                       // PEM; empty: the system's default CA store
  std::chrono::milliseconds timeout{30000};  // bound on each step: connect, handshake, one read
  std::size_t max_message = std::size_t{50} << 20;  // larger messages are skipped, not fetched
};

// One message as fetch() found it.
struct Message {
  std::uint32_t uid = 0;
  std::uint64_t size = 0;            // RFC822.SIZE, as the server reports it
  std::optional<std::string> bytes;  // raw RFC 5322 message; nullopt: size > max_message, skipped
};

// A logged-in connection with Config::mailbox selected. Not thread-safe. Errors (all texts name
// "imap HOST:PORT" and the step that failed):
//   Errc::Temporary  network trouble, a timeout, the server closing or going away, or a NO
//                    that says retry ([UNAVAILABLE], [INUSE], [SERVERBUG], [LIMIT], [OVERQUOTA]);
//                    the session is then broken and every later call fails at once
//   Errc::Config     bad URL or tls word, unreadable or empty password file, unreadable CA
//                    file, TLS certificate verification failed, no STARTTLS on imap://
//                    without tls = "none", no usable login method, login refused, mailbox
//                    missing or not accessible
//   Errc::Invalid    the server broke the protocol (unparsable reply, oversized line or literal,
//                    data injected after STARTTLS); the session is broken
//   Errc::Internal   the server answered BAD: a command of ours it did not understand
class Session {
 public:
  // Parses the URL, reads the password file, connects (implicit TLS or STARTTLS unless
  // tls = "none"), logs in (AUTHENTICATE PLAIN when the server offers it, else LOGIN) and
  // SELECTs cfg.mailbox.
  [[nodiscard]] static Result<Session> open(const Config& cfg);

  // UIDs of the messages without \Seen in the mailbox, ascending (UID SEARCH UNSEEN).
  [[nodiscard]] Result<std::vector<std::uint32_t>> unseen();

  // The message's size, then (when size <= max_message) its raw bytes via BODY.PEEK[], so the
  // fetch itself does not set \Seen. A UID that no longer exists is Errc::Invalid.
  [[nodiscard]] Result<Message> fetch(std::uint32_t uid);

  // Marks the message \Seen; with move_to, then moves it there: UID MOVE when the server has
  // MOVE, else UID COPY + \Deleted + UID EXPUNGE (UIDPLUS) or EXPUNGE (which also removes any
  // other message already flagged \Deleted in the mailbox). A missing move_to folder is created
  // (on NO [TRYCREATE]) once.
  [[nodiscard]] Result<void> done(std::uint32_t uid);

  // LOGOUT and TLS close. Afterwards every call fails; the destructor of an open session only
  // drops the connection (no LOGOUT: it never blocks).
  [[nodiscard]] Result<void> close();

  // The server's capabilities (upper-case), as last announced: for tests and diagnostics.
  [[nodiscard]] const std::vector<std::string>& capabilities() const;

  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  struct Impl;

 private:
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Where a URL points. Pure.
struct Endpoint {
  std::string host;  // without brackets
  std::uint16_t port = 0;
  bool implicit_tls = false;  // imaps://
};

// Parses imap://HOST[:PORT] and imaps://HOST[:PORT] (optional trailing "/"). Errc::Config on
// anything else, naming the URL.
[[nodiscard]] Result<Endpoint> parse_url(std::string_view url);

}  // namespace rampart::imap
