// Postfix policy protocol codec: see protocol.hpp. Pure.
#include "policyd/core/protocol.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace rampart::policyd {

std::string_view Request::get(std::string_view name) const {
  for (const auto& [k, v] : attributes) {
    if (k == name) return v;
  }
  return {};
}

bool Request::has(std::string_view name) const {
  return std::any_of(attributes.begin(), attributes.end(),
                     [&](const auto& a) { return a.first == name; });
}

namespace {

bool valid_name(std::string_view n) {
  return !n.empty() && std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
  });
}

ParseResult invalid(std::string error) {
  ParseResult r;
  r.status = ParseStatus::Invalid;
  r.error = std::move(error);
  return r;
}

}  // namespace

ParseResult parse_request(std::string_view buffer, const Limits& limits) {
  ParseResult r;
  std::size_t pos = 0;
  std::size_t line_no = 0;
  for (;;) {
    const auto nl = buffer.find('\n', pos);
    if (nl == std::string_view::npos) {
      // Incomplete: only too long if what we already hold breaks a limit.
      if (buffer.size() - pos > limits.max_line + 1) {
        return invalid(fmt::format("line {}: longer than {} bytes", line_no + 1, limits.max_line));
      }
      if (buffer.size() > limits.max_request) {
        return invalid(fmt::format("request longer than {} bytes", limits.max_request));
      }
      return r;  // NeedMore
    }
    ++line_no;
    std::string_view line = buffer.substr(pos, nl - pos);
    pos = nl + 1;
    if (pos > limits.max_request)
      return invalid(fmt::format("request longer than {} bytes", limits.max_request));
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > limits.max_line) {
      return invalid(fmt::format("line {}: longer than {} bytes", line_no, limits.max_line));
    }
    if (line.empty()) {
      if (r.request.attributes.empty())
        return invalid(fmt::format("line {}: empty request", line_no));
      if (r.request.get("request") != "smtpd_access_policy") {
        return invalid(fmt::format("request={:?}: want smtpd_access_policy",
                                   std::string(r.request.get("request")).substr(0, 64)));
      }
      r.status = ParseStatus::Complete;
      r.consumed = pos;
      return r;
    }
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) {
      return invalid(
          fmt::format("line {}: no '=' in {:?}", line_no, std::string(line.substr(0, 64))));
    }
    const auto name = line.substr(0, eq);
    if (!valid_name(name)) {
      return invalid(fmt::format("line {}: bad attribute name {:?}", line_no,
                                 std::string(name.substr(0, 64))));
    }
    if (r.request.has(name))
      return invalid(fmt::format("line {}: attribute {:?} repeated", line_no, std::string(name)));
    if (r.request.attributes.size() == limits.max_attributes) {
      return invalid(fmt::format("more than {} attributes", limits.max_attributes));
    }
    r.request.attributes.emplace_back(std::string(name), std::string(line.substr(eq + 1)));
  }
}

std::string format_reply(std::string_view action) {
  std::string out = "action=";
  out.reserve(action.size() + 9);
  for (char c : action) out += (c == '\n' || c == '\r' || c == '\0') ? ' ' : c;
  out += "\n\n";
  return out;
}

}  // namespace rampart::policyd
