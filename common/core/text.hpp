// Small text helpers shared by the rules, the matchers and the adapters: ASCII case folding,
// domain and address normalisation, enhanced status codes. Pure; no I/O, no locale.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace rampart::core {

constexpr char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c;
}
std::string ascii_lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);

// Lower case, one trailing dot removed, surrounding <> and whitespace not accepted.
// Returns nullopt when it is not a syntactically valid DNS name (labels 1-63 of [a-z0-9_-],
// total <= 253, no leading/trailing hyphen checks beyond that: mail domains in the wild vary).
std::optional<std::string> normalize_domain(std::string_view domain);

// "Local@Domain." -> "local@domain": the whole address is folded to lower case (mailbox
// providers treat local parts case-insensitively in practice). Accepts an optional <...> wrapper.
// nullopt when there is no '@', an empty local part, or an invalid domain.
std::optional<std::string> normalize_address(std::string_view address);

// The domain part of an address as written (after the last '@'), without <> and a trailing '>'.
std::string_view address_domain(std::string_view address);

// RFC 3463 enhanced status "c.sss.ddd" with c in {2,4,5}; `klass` is the required first digit.
bool is_enhanced_status(std::string_view s, char klass);

// `s` with every byte that is not part of a well-formed UTF-8 sequence (RFC 3629: no overlongs,
// no surrogates, nothing past U+10FFFF) replaced by '?', and control characters other than tab by
// ' ': log data made safe for JSON output and for PostgreSQL TEXT.
std::string utf8_clean(std::string_view s);

}  // namespace rampart::core
