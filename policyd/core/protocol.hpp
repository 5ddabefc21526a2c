// The Postfix policy delegation protocol (SMTPD_POLICY_README) as a pure codec: requests are
// `name=value` lines ended by an empty line, replies `action=...` plus an empty line. Bounded:
// a request over the limits is Invalid, and the server then closes the connection without a
// reply, as the protocol requires. Pure; no I/O.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rampart::policyd {

struct Limits {
  std::size_t max_line = 8192;          // one name=value line, without its newline
  std::size_t max_attributes = 100;     // Postfix 3.7 sends about 30
  std::size_t max_request = 64 * 1024;  // a whole request, newlines included
};

// One request's attributes, in arrival order. Postfix sends every attribute every time (empty
// when unknown); names are unique within a request. Names and values view the buffer given to
// parse_request: a Request is valid only while that buffer is alive and unchanged.
struct Request {
  std::vector<std::pair<std::string_view, std::string_view>> attributes;
  // The value of `name`, or "" when absent (Postfix's own convention for unknown values).
  std::string_view get(std::string_view name) const;
  bool has(std::string_view name) const;
};

enum class ParseStatus {
  Complete,  // `request` holds one request; `consumed` bytes of the buffer belong to it
  NeedMore,  // no complete request yet and nothing wrong so far: read more
  Invalid,   // malformed or over a limit: log `error`, close without replying
};

struct ParseResult {
  ParseStatus status = ParseStatus::NeedMore;
  std::size_t consumed = 0;
  Request request;
  std::string error;  // Invalid only: lower case, names the line and the problem
};

// Parses the first request in `buffer` (which may hold several pipelined requests, or part of
// one). Lines end with LF; a CR before it is tolerated. Requires `request=smtpd_access_policy`.
// The request views `buffer` (see Request).
ParseResult parse_request(std::string_view buffer, const Limits& limits = {});
// The same into `out`, whose storage is reused (a server parses every request into one).
void parse_request(std::string_view buffer, const Limits& limits, ParseResult& out);

// `action=<text>\n\n`; CR, LF and NUL in the text become spaces so a reply is always one line.
std::string format_reply(std::string_view action);
// format_reply(action) appended to `out`.
void append_reply(std::string& out, std::string_view action);

}  // namespace rampart::policyd
