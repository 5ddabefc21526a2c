// One Postfix syslog line -> a typed record: timestamp, host, program tag, and for the lines
// `rampart classify` needs, the delivery record (smtp/lmtp/local/virtual/pipe `status=` lines),
// qmgr's expiry, and the SMTP client's bind/connect failures (incident 10). Pure; no I/O, no
// clock: the reference time for year-less stamps is passed in. Works on bytes (non-UTF-8 is
// fine), never throws, and does work linear in the line's length whatever it holds.
//
// Every string_view in a result points into the line given to parse_line(): keep the line alive.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "core/limits.hpp"

namespace rampart::maillog {

// What to assume about stamps that do not say.
struct Clock {
  // Classic syslog stamps (`Jun  9 08:50:20`) carry no year: the year is the one that puts the
  // stamp at or before reference + 1 day (so a December line read in January is last year's).
  // Callers pass the file's mtime, or now for stdin.
  core::UnixTime reference = 0;
  // Seconds east of UTC that classic stamps (and RFC 3339-like stamps without an offset) are in:
  // syslog writes local time. RFC 3339 stamps with `Z` or an offset ignore it.
  std::int32_t utc_offset = 0;
};

// What a line turned out to be. Every kind but Malformed has `header` filled.
enum class Kind : std::uint8_t {
  Delivery,        // `QID: to=<..>, relay=.., ..., status=..`: `delivery` is set
  MessageExpired,  // qmgr `QID: from=<..>, status=expired, returned to sender`: `queue_id` set
  BindFailure,     // `warning: smtp_connect_addr: bind ADDR: REASON`: `failure` is set
  ConnectFailure,  // `[QID: ]connect to HOST[IP]:PORT: REASON`: `failure` is set
  OtherPostfix,    // a Postfix line of no interest to classify (smtpd, cleanup, qmgr from=, ...)
  NotPostfix,      // a well-formed syslog line from another program (opendkim, rampart-milter)
  Malformed,       // not a syslog line, or a Postfix `status=` line that does not parse: `why`
};
std::string_view to_string(Kind k);

// Timestamp, host and tag: `<stamp> <host> <program>[<pid>]: <message>`.
struct Header {
  core::UnixTime time = 0;       // UTC seconds (fractions dropped)
  std::string_view host;         // as logged
  std::string_view program;      // the whole tag: "postfix/out05/smtp", "opendkim"
  std::string_view syslog_name;  // Postfix only: all but the last component ("postfix/out05")
  std::string_view service;      // Postfix only: the last component ("smtp", "qmgr")
  std::string_view pid_text;     // the digits inside [..] (at most 2^32 - 1); empty when none
  std::optional<std::uint32_t> pid() const;  // pid_text read, nullopt without one
  std::string_view message;                  // after "]: " (or ": " when there is no pid)
  bool postfix = false;  // tag is syslog_name/service with a Postfix daemon or name
};

enum class Status : std::uint8_t {
  Sent,      // status=sent
  Deferred,  // status=deferred: Postfix retries
  Bounced,   // status=bounced: a non-delivery notice is (or would be) sent
  Expired,   // status=expired: Postfix gave up (maximal_queue_lifetime)
  Other,     // anything else (undeliverable, deliverable, undeliverable-but-not-cached: address
             // verification probes): see `status_word`
};
std::string_view to_string(Status s);

// Where a delivery went: only Remote hops are deliveries for reputation purposes.
enum class Hop : std::uint8_t {
  Remote,    // smtp/lmtp to a non-loopback relay, or relay=none (no connection could be made)
  Loopback,  // smtp/lmtp to 127.0.0.0/8, ::1 or a unix socket (`[private/...]`): content
             // filter or local LMTP hop; not counted
  Local,     // local/virtual/pipe/error/discard/retry services, or relay=local|virtual|...
};
std::string_view to_string(Hop h);

struct Delivery {
  std::string_view queue_id;
  std::string_view recipient;    // `to=` without the <>
  std::string_view orig_to;      // `orig_to=` without the <>; empty when absent
  std::string_view relay;        // as logged: "mx.example.com[192.0.2.1]:25", "none", "dovecot"
  std::string_view relay_host;   // "mx.example.com"; the whole relay when it has no [..]
  std::string_view relay_ip;     // inside [..]: an address, or "private/dovecot-lmtp"
  std::uint16_t relay_port = 0;  // 0 when absent
  // `delay=` and `delays=` as logged ("1.2", "0.1/0.01/0.4/0.69"): read into numbers only when
  // asked for (delay(), delays()), since classify itself never needs them.
  std::string_view delay_text;
  std::string_view delays_text;
  std::string_view dsn;  // "5.7.1"
  Status status = Status::Other;
  std::string_view status_word;  // "sent", "undeliverable-but-not-cached"
  std::string_view text;         // inside the parentheses after status=..., without them
  bool text_truncated = false;   // no closing parenthesis (line cut short)
  std::string_view reply_code;   // first SMTP reply code in text ("550"), else empty
  // Enhanced status: the first one in the remote reply (a flattened multi-line
  // `550-5.7.1 ... 550 5.7.1 ...` gives 5.7.1), else `dsn`.
  std::string_view enhanced_status;
  bool status_from_reply = false;  // enhanced_status came from the reply text, not dsn=
  std::string_view remote_host;    // "host X[IP] said:" host, when the text has it
  // The remote server's reply: remote_reply(text), read once here for the classifier.
  std::string_view reply;
  Hop hop = Hop::Remote;

  // Seconds, -1 when absent or not a number.
  double delay() const;
  // Before qmgr / in qmgr / connect / transmit; -1 for each one absent or not a number.
  std::array<double, 4> delays() const;
};

// `warning: smtp_connect_addr: bind 203.0.113.94: Cannot assign requested address`, and
// `connect to mx.example.com[192.0.2.1]:25: Cannot assign requested address`.
struct Failure {
  std::string_view queue_id;   // ConnectFailure only, when the line has one
  std::string_view address;    // the bind address, or the connect target's IP
  std::string_view host;       // ConnectFailure only: the target's name
  std::uint16_t port = 0;      // ConnectFailure only
  std::string_view reason;     // "Cannot assign requested address"
  bool cannot_assign = false;  // reason is EADDRNOTAVAIL: the egress address is not on the host
};

// What an OtherPostfix line says of its message's life in the queue, and what a NotPostfix line
// of rampart-milter or OpenDKIM says of a message (their leading queue id in `queue_id`: any
// 1-32 letters and digits).
enum class Event : std::uint8_t {
  None,
  Received,  // smtpd `QID: client=...`, pickup `QID: uid=...` / `QID: sender=...`
  Removed,   // qmgr `QID: removed`
  Pinned,    // rampart-milter `QID: pin ...`: the stream is in the message
  Signed,    // OpenDKIM `QID: DKIM-Signature field added ...`
  OpenDkim,  // any other OpenDKIM line: no queue id needed, OpenDKIM logs where this log is
};

struct ParsedLine {
  Kind kind = Kind::Malformed;
  Event event = Event::None;  // OtherPostfix and NotPostfix only
  std::string_view why;       // Malformed only: a constant lower-case reason ("no timestamp")
  bool dated = false;  // header.time holds the line's stamp (every kind but a line without one)
  Header header;
  // Delivery, MessageExpired and Postfix lines that carry one; Pinned and Signed lines.
  std::string_view queue_id;
  std::optional<Delivery> delivery;
  std::optional<Failure> failure;
};

// Parses one line (without its newline; a trailing CR is ignored). Never throws.
ParsedLine parse_line(std::string_view line, const Clock& clock);
// The same into `out`, every field of which it sets: for loops that reuse one ParsedLine.
void parse_line(std::string_view line, const Clock& clock, ParsedLine& out);

namespace detail {
// parse_line() without its fast reading of the common header shape: the general reading, which
// the fast one must agree with field for field (the unit tests and the fuzz harness compare them).
void parse_line_general(std::string_view line, const Clock& clock, ParsedLine& out);
// The first field in which two readings of one line differ ("kind", "header.host", ...), empty
// when none does. Views are the same when they are the same bytes of the line (same place, same
// size); the delivery and failure records are compared field by field.
std::string_view first_difference(const ParsedLine& a, const ParsedLine& b);
}  // namespace detail

// The delivery record alone, from a Postfix message body (`QID: to=<...>, ..., status=...`) of a
// given service: for callers (and corpora) that have no syslog prefix. Sets `why` on failure.
// In front of `to=` any alphanumeric token of 5-32 characters is taken as the queue id (sample
// logs use ids Postfix never would); elsewhere only is_queue_id() ids count.
std::optional<Delivery> parse_delivery(std::string_view message, std::string_view service,
                                       std::string_view* why = nullptr);

// Stamp parsers, exposed for tests. nullopt when `text` does not start with a valid stamp;
// `consumed` is set to the stamp's length.
std::optional<core::UnixTime> parse_classic_stamp(std::string_view text, const Clock& clock,
                                                  std::size_t& consumed);
std::optional<core::UnixTime> parse_rfc3339_stamp(std::string_view text, const Clock& clock,
                                                  std::size_t& consumed);

// The remote reply inside a delivery's text: after the first "host X[ip] said: ", without the
// trailing " (in reply to ... command)"; the whole text when it quotes no server's reply, and
// when it starts with a reply code (then it is the reply: "250 2.0.0 Ok ...").
std::string_view remote_reply(std::string_view text);

// A Postfix queue id: short (hex, 6+ chars) or long (enable_long_queue_ids: base-52 time digits
// without vowels, a 'z', then the inode digits). `NOQUEUE` is not a queue id.
bool is_queue_id(std::string_view s);

// 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z).
bool is_loopback(std::string_view ip);

}  // namespace rampart::maillog
