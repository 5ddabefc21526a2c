// Policy replies and envelope reading (see decide.hpp). Pure.
#include "policyd/core/decide.hpp"

#include <charconv>

#include <fmt/format.h>

namespace rampart::policyd {

Envelope read_envelope(const Request& request) {
  Envelope e;
  std::string_view port;
  // One pass over the attributes (names are unique: parse_request refuses repeats).
  for (const auto& [name, value] : request.attributes) {
    switch (name.size()) {
      case 6:
        if (name == "sender") e.stream_query.sender = value;
        break;
      case 8:
        if (name == "queue_id") {
          e.queue_id = value;
        } else if (name == "instance") {
          e.instance = value;
        }
        break;
      case 9:
        if (name == "recipient") e.recipient = value;
        break;
      case 11:
        if (name == "server_port") port = value;
        break;
      case 13:
        if (name == "sasl_username") e.stream_query.sasl_user = value;
        break;
      case 14:
        if (name == "protocol_state") {
          e.protocol_state = value;
        } else if (name == "client_address") {
          e.stream_query.client_addr = value;
        }
        break;
      default: break;
    }
  }
  if (const auto at = e.recipient.rfind('@'); at != std::string_view::npos) {
    e.domain = e.recipient.substr(at + 1);
    while (!e.domain.empty() && e.domain.back() == '.') e.domain.remove_suffix(1);
  }
  std::int64_t p = 0;
  if (!port.empty()) {
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec == std::errc{} && end == port.data() + port.size()) e.stream_query.port = p;
  }
  return e;
}

std::string Reply::line() const {
  std::string word;
  switch (action) {
    case Action::Dunno: return "DUNNO";
    case Action::Defer: word = "DEFER_IF_PERMIT"; break;
    case Action::Hold: word = "HOLD"; break;
    case Action::Reject: word = "REJECT"; break;
  }
  if (!status.empty()) word += " " + status;
  if (!text.empty()) word += " " + text;
  return word;
}

std::string_view verdict_word(Action a) {
  switch (a) {
    case Action::Dunno: return "dunno";
    case Action::Defer: return "defer";
    case Action::Hold: return "hold";
    case Action::Reject: return "reject";
  }
  return "?";
}

Reply dunno() { return {}; }

Reply null_mx(std::string_view domain) {
  return {Action::Reject,
          "5.1.10",
          fmt::format("rampart: recipient domain {} accepts no mail (null MX, RFC 7505)", domain),
          "null_mx",
          {},
          {}};
}

Reply no_mail_domain(std::string_view domain, std::string_view detail) {
  return {Action::Reject,
          "5.1.2",
          fmt::format("rampart: recipient domain {} has no mail host ({})", domain, detail),
          "no_mail_domain",
          {},
          {}};
}

Reply dns_failed(std::string_view domain, std::string_view detail) {
  return {Action::Defer,
          "4.4.3",
          fmt::format("rampart: MX lookup for {} failed ({}); try again later", domain, detail),
          "dns_error",
          {},
          {}};
}

Reply store_failed() {
  return {Action::Defer, "4.3.0", "rampart: budget store unavailable; try again later",
          "store_error", {},      {}};
}

Reply budget_busy() {
  return {Action::Defer, "4.3.0", "rampart: budget busy; try again later", "contention", {}, {}};
}

Reply over_limit(const core::StreamSpec& stream, const core::Limit& limit, std::int64_t used,
                 std::string_view op, std::optional<core::UnixTime> reopens_at) {
  Reply r;
  r.reason = std::string(core::to_string(limit.kind));
  r.used = used;
  r.max = limit.limit;
  r.text = core::over_limit_text(limit, used, op, reopens_at);
  if (stream.over_cap == core::OverCap::Hold) {
    r.action = Action::Hold;
  } else {
    r.action = Action::Defer;
    r.status = "4.7.1";
  }
  return r;
}

}  // namespace rampart::policyd
