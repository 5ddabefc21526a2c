// Postfix policy protocol codec: see protocol.hpp. Pure.
#include "policyd/core/protocol.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

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

// The bytes an attribute name may hold: a-z 0-9 _ - . (a table: every name byte is looked up).
constexpr std::array<bool, 256> kNameChar = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) {
    t[static_cast<std::size_t>(c)] =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
  }
  return t;
}();
bool valid_name(std::string_view n) {
  bool ok = !n.empty();
  for (char c : n) ok &= kNameChar[static_cast<unsigned char>(c)];  // no early exit: no branch
  return ok;
}

// A name's bit in a 256-bit filter of the names seen so far: only a name whose bit is already set
// can be a repeat, so most names are not compared with every earlier one. Cheap rather than good:
// the length and three bytes (Postfix's names share prefixes, so not only the first).
std::size_t name_bit(std::string_view n) {
  const auto at = [&](std::size_t i) {
    return static_cast<std::size_t>(static_cast<unsigned char>(n[i]));
  };
  const std::size_t s = n.size();
  return (s * 37U + at(0) * 5U + at(s / 2) * 3U + at(s - 1)) & 255U;
}

void invalid(ParseResult& r, std::string error) {
  r.status = ParseStatus::Invalid;
  r.consumed = 0;
  r.error = std::move(error);
}

}  // namespace

ParseResult parse_request(std::string_view buffer, const Limits& limits) {
  ParseResult r;
  parse_request(buffer, limits, r);
  return r;
}

void parse_request(std::string_view buffer, const Limits& limits, ParseResult& r) {
  r.status = ParseStatus::NeedMore;
  r.consumed = 0;
  r.error.clear();
  auto& attributes = r.request.attributes;
  attributes.clear();
  std::string_view type;  // the value of `request`
  std::array<std::uint64_t, 4> seen{};
  std::size_t pos = 0;
  std::size_t line_no = 0;
  for (;;) {
    const auto nl = buffer.find('\n', pos);
    if (nl == std::string_view::npos) {
      // Incomplete: only too long if what we already hold breaks a limit.
      if (buffer.size() - pos > limits.max_line + 1) {
        return invalid(r,
                       fmt::format("line {}: longer than {} bytes", line_no + 1, limits.max_line));
      }
      if (buffer.size() > limits.max_request) {
        return invalid(r, fmt::format("request longer than {} bytes", limits.max_request));
      }
      attributes.clear();
      return;  // NeedMore
    }
    ++line_no;
    std::string_view line = buffer.substr(pos, nl - pos);
    pos = nl + 1;
    if (pos > limits.max_request)
      return invalid(r, fmt::format("request longer than {} bytes", limits.max_request));
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > limits.max_line) {
      return invalid(r, fmt::format("line {}: longer than {} bytes", line_no, limits.max_line));
    }
    if (line.empty()) {
      if (attributes.empty()) return invalid(r, fmt::format("line {}: empty request", line_no));
      if (type != "smtpd_access_policy") {
        return invalid(r, fmt::format("request={:?}: want smtpd_access_policy",
                                      std::string(type.substr(0, 64))));
      }
      r.status = ParseStatus::Complete;
      r.consumed = pos;
      return;
    }
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) {
      return invalid(
          r, fmt::format("line {}: no '=' in {:?}", line_no, std::string(line.substr(0, 64))));
    }
    const auto name = line.substr(0, eq);
    if (!valid_name(name)) {
      return invalid(r, fmt::format("line {}: bad attribute name {:?}", line_no,
                                    std::string(name.substr(0, 64))));
    }
    const std::size_t bit = name_bit(name);
    const std::uint64_t mask = std::uint64_t{1} << (bit & 63U);
    if ((seen[bit >> 6U] & mask) != 0 && r.request.has(name)) {
      return invalid(r,
                     fmt::format("line {}: attribute {:?} repeated", line_no, std::string(name)));
    }
    seen[bit >> 6U] |= mask;
    if (attributes.size() == limits.max_attributes) {
      return invalid(r, fmt::format("more than {} attributes", limits.max_attributes));
    }
    const auto value = line.substr(eq + 1);
    if (name == "request") type = value;
    attributes.emplace_back(name, value);
  }
}

std::string format_reply(std::string_view action) {
  std::string out;
  append_reply(out, action);
  return out;
}

void append_reply(std::string& out, std::string_view action) {
  out.reserve(out.size() + action.size() + 9);
  out += "action=";
  for (char c : action) out += (c == '\n' || c == '\r' || c == '\0') ? ' ' : c;
  out += "\n\n";
}

}  // namespace rampart::policyd
