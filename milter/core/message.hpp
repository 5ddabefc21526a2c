// rampart-milter's decision core: one SMTP transaction's state and every verdict the milter
// gives (RCPT exclusions and suppressions; at end of message the stream pin, From identity,
// DKIM signing scope and hygiene). Pure: no libmilter, no I/O; the adapter feeds it what
// libmilter hands over and applies the returned Verdicts. Never throws on peer input.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/dkim_scope.hpp"
#include "core/ruleset.hpp"

namespace rampart::milter {

enum class OnUnsigned : std::uint8_t {
  Tempfail,    // 451 4.7.0: the client retries once OpenDKIM is fixed (default)
  Quarantine,  // accept into Postfix's hold queue
  Reject,      // 550 5.7.1
  Warn,        // accept, log and add X-Rampart-Warning
};
enum class OnNoStream : std::uint8_t {
  Accept,    // deliver unpinned (default)
  Tempfail,  // 451 4.7.1: every message must resolve to a stream
};

struct Settings {
  OnUnsigned on_unsigned = OnUnsigned::Tempfail;
  OnNoStream on_no_stream = OnNoStream::Accept;
};

std::optional<OnUnsigned> parse_on_unsigned(std::string_view);
std::optional<OnNoStream> parse_on_no_stream(std::string_view);

// What to tell libmilter. The adapter maps it to SMFIS_* and smfi_setreply.
enum class Act : std::uint8_t {
  Continue,  // no objection (SMFIS_CONTINUE)
  Reject,    // 5xx with reply (SMFIS_REJECT); at RCPT only that recipient
  Tempfail,  // 4xx with reply (SMFIS_TEMPFAIL)
};

struct Reply {
  std::string code;    // "550"
  std::string status;  // "5.7.1"
  std::string text;    // "rampart: ..."
};

// One decision worth a log line: `<queue id>: <verdict> <fields>`.
struct Event {
  std::string verdict;  // reject, tempfail, hold, discard, warn, pin, accept
  std::string fields;   // "rcpt=<a@aol.com> stream=bulk rule=yahoo-family"
};

struct Verdict {
  Act act = Act::Continue;
  Reply reply;
  std::vector<Event> events;
};

struct HeaderEdit {
  enum class Kind : std::uint8_t { Delete, Insert } kind;
  std::string name;
  int index = 0;      // Delete: 1-based occurrence among same-name headers; Insert: position
  std::string value;  // Insert only
};

// What end-of-message asks for beyond the verdict.
struct EomVerdict : Verdict {
  std::vector<HeaderEdit> edits;          // apply in order
  std::vector<std::string> delete_rcpts;  // discarded recipients (smfi_delrcpt)
  std::optional<std::string> quarantine;  // hold reason (smfi_quarantine)
  bool discard_all = false;               // every recipient discarded: SMFIS_DISCARD
};

inline constexpr std::string_view kStreamHeader = "X-Rampart-Stream";
inline constexpr std::string_view kWarningHeader = "X-Rampart-Warning";

// Bounds on what one message may make us keep (a 10 MB header block must not cost 10 MB).
inline constexpr std::size_t kMaxKeptHeaderValue = 4096;
inline constexpr std::size_t kMaxDkimSignatures = 32;
inline constexpr std::size_t kMaxKeptRecipients = 1000;  // for OpenDKIM's DontSignMailTo

// One connection's facts (CONNECT macros), kept across transactions.
struct Connection {
  std::optional<std::int64_t> port;  // {daemon_port}
  std::string daemon_name;           // {daemon_name}
  std::string client_addr;           // {client_addr}
  std::string client_name;           // {client_name} / the hostname libmilter passes at connect
};

// One transaction (MAIL FROM .. end of message or abort). Not thread-safe: one per connection.
class Message {
 public:
  Message(std::shared_ptr<const core::RuleSet> rules,
          std::shared_ptr<const core::dkim::Config> dkim, Settings settings)
      : rules_(std::move(rules)), dkim_(std::move(dkim)), settings_(settings) {}

  // MAIL FROM: resolves the stream from the connection and the envelope.
  Verdict mail(const Connection& conn, std::string_view sender, std::string_view auth_user);
  // RCPT TO: exclusions and suppressions for this recipient.
  Verdict rcpt(std::string_view recipient);
  void header(std::string_view name, std::string_view value);
  void body(std::string_view chunk);
  // End of message: everything decided on the whole message.
  EomVerdict eom(const std::vector<std::pair<std::string, std::string>>& macros);

  const core::StreamSpec* stream() const { return stream_; }
  std::size_t accepted_recipients() const { return accepted_; }

 private:
  std::string stream_field() const;

  std::shared_ptr<const core::RuleSet> rules_;
  std::shared_ptr<const core::dkim::Config> dkim_;
  Settings settings_;
  const Connection* conn_ = nullptr;
  const core::StreamSpec* stream_ = nullptr;
  std::string sender_;
  bool authenticated_ = false;
  std::size_t accepted_ = 0;
  std::vector<std::string> recipients_;  // accepted ones, bounded
  std::vector<std::string> discards_;
  std::vector<std::string> holds_;  // "rcpt rule" pairs for the log and the quarantine reason
  std::string hold_rule_;

  // Headers we care about, bounded.
  int from_count_ = 0;
  std::string from_value_;
  std::string message_id_;
  std::string content_type_;
  int stream_headers_ = 0;
  std::vector<std::string> dkim_signatures_;

  // Body scan for MIME part types (streaming, bounded carry).
  std::string carry_;
  bool saw_plain_ = false;
  bool saw_html_ = false;
};

// Pure helpers, exposed for tests and the fuzz harness.
// The address in a From: value (`"Name" <a@b>`, `a@b (c)`, groups not supported); "" if none.
std::string from_address(std::string_view header_value);
// The d= tag of a DKIM-Signature value (lower case), "" if none.
std::string dkim_domain(std::string_view signature);
// Relaxed alignment without a public-suffix list: equal, or one is a subdomain of the other.
bool aligned(std::string_view d, std::string_view from_domain);
// The host of a Message-ID value (`<local@host>`), lower case; "" if none.
std::string message_id_host(std::string_view value);
// "%" doubled and CR/LF replaced, as smfi_setreply needs.
std::string reply_safe(std::string_view text);

}  // namespace rampart::milter
