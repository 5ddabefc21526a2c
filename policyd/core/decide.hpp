// The pure half of one policy decision: what a request says (envelope), and the policy reply
// for each outcome the adapter reaches (no stream, MX verdicts, over a limit, store trouble).
// Postfix action words appear only here and in the adapter. Pure; no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/limits.hpp"
#include "core/ruleset.hpp"
#include "policyd/core/protocol.hpp"

namespace rampart::policyd {

// The attributes a decision reads (SMTPD_POLICY_README), viewing into the Request.
struct Envelope {
  std::string_view protocol_state;  // "RCPT" is the only state rampart charges at
  std::string_view queue_id;        // empty at the first RCPT of a message
  std::string_view instance;        // one per message within a connection
  std::string_view recipient;
  std::string_view domain;  // of the recipient, without the trailing dot; "" when none
  core::StreamQuery stream_query;
};
Envelope read_envelope(const Request& request);

enum class Action : std::uint8_t {
  Dunno,   // no opinion: Postfix's other restrictions decide; the recipient was charged
  Defer,   // DEFER_IF_PERMIT: 450 unless a later restriction rejects
  Hold,    // HOLD: the whole message waits in the hold queue for `rampart release`
  Reject,  // REJECT: 5xx
};

struct Reply {
  Action action = Action::Dunno;
  std::string status;                // enhanced status code, "" for DUNNO and HOLD
  std::string text;                  // "rampart: ..."
  std::string reason;                // the log's `limit=` / `reason=` value ("cap", "null_mx", ...)
  std::optional<std::int64_t> used;  // over a limit: its use and its size, for the log
  std::optional<std::int64_t> max;
  // The policy action line without "action=": "DEFER_IF_PERMIT 4.7.1 rampart: ...".
  std::string line() const;
};
std::string_view verdict_word(Action a);  // "dunno", "defer", "hold", "reject" (log verdicts)

Reply dunno();
// RFC 7505: a null MX says the domain accepts no mail.
Reply null_mx(std::string_view domain);
// NXDOMAIN, or neither MX nor address records: there is no host to deliver to.
Reply no_mail_domain(std::string_view domain, std::string_view detail);
// The MX lookup did not finish (timeout, SERVFAIL): 4.4.3, "try again later".
Reply dns_failed(std::string_view domain, std::string_view detail);
// Budget exhausted and the store cannot be reached to lease more.
Reply store_failed();
// Leases kept going to other requests before this one could spend a unit: try again.
Reply budget_busy();
// Over `limit`: DEFER_IF_PERMIT 4.7.1 or HOLD per the stream's over_cap, naming the limit, the
// counts, the stream and operator and when it reopens.
Reply over_limit(const core::StreamSpec& stream, const core::Limit& limit, std::int64_t used,
                 std::string_view op, std::optional<core::UnixTime> reopens_at);

}  // namespace rampart::policyd
