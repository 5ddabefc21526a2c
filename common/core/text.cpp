// Text helpers: see text.hpp. Pure.
#include "core/text.hpp"

#include <algorithm>

namespace rampart::core {

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return ascii_lower(x) == ascii_lower(y);
         });
}

std::optional<std::string> normalize_domain(std::string_view domain) {
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  if (domain.empty() || domain.size() > 253) return std::nullopt;
  std::string out;
  out.reserve(domain.size());
  std::size_t label = 0;
  for (char c : domain) {
    c = ascii_lower(c);
    if (c == '.') {
      if (label == 0) return std::nullopt;
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') {
      if (++label > 63) return std::nullopt;
    } else {
      return std::nullopt;
    }
    out.push_back(c);
  }
  if (label == 0) return std::nullopt;
  return out;
}

std::string_view address_domain(std::string_view address) {
  if (!address.empty() && address.front() == '<') address.remove_prefix(1);
  if (!address.empty() && address.back() == '>') address.remove_suffix(1);
  const auto at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view{} : address.substr(at + 1);
}

std::optional<std::string> normalize_address(std::string_view address) {
  if (address.size() >= 2 && address.front() == '<' && address.back() == '>') {
    address = address.substr(1, address.size() - 2);
  }
  const auto at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at > 64 * 4) return std::nullopt;
  const auto local = address.substr(0, at);
  for (char c : local) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '<' || c == '>' || c == 0x7f)
      return std::nullopt;
  }
  auto domain = normalize_domain(address.substr(at + 1));
  if (!domain) return std::nullopt;
  return ascii_lower(local) + "@" + *domain;
}

bool is_enhanced_status(std::string_view s, char klass) {
  // c.sss.ddd: class digit, subject 1-3 digits, detail 1-3 digits (RFC 3463 section 2).
  if (s.size() < 5 || s[0] != klass || s[1] != '.') return false;
  std::size_t i = 2;
  auto digits = [&](std::size_t max) {
    std::size_t n = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      ++i;
      ++n;
    }
    return n >= 1 && n <= max;
  };
  if (!digits(3) || i >= s.size() || s[i] != '.') return false;
  ++i;
  return digits(3) && i == s.size();
}

}  // namespace rampart::core
