// Small text helpers shared by the rules, the matchers and the adapters: ASCII case folding,
// domain and address normalisation, enhanced status codes. Pure; no I/O, no locale.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace rampart::core {

constexpr char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c;
}
std::string ascii_lower(std::string_view s);

// A quick hash for short keys from logs and rules (queue ids, host names, domains, replies),
// which come from logs, not from an attacker who could aim at a bucket's worth of collisions more
// cheaply than by writing more lines: 8 bytes at a time with a multiply, instead of std::hash's
// byte-oriented Murmur. Not stable across versions; never store it.
inline std::size_t fast_hash(std::string_view s) noexcept {
  constexpr std::uint64_t kMul = 0x9e3779b97f4a7c15ULL;
  const char* p = s.data();
  const std::size_t n = s.size();
  const auto load64 = [](const char* at) {
    std::uint64_t v = 0;
    std::memcpy(&v, at, sizeof v);
    return v;
  };
  const auto load32 = [](const char* at) {
    std::uint32_t v = 0;
    std::memcpy(&v, at, sizeof v);
    return std::uint64_t{v};
  };
  const auto mix = [](std::uint64_t h, std::uint64_t v) {
    h = (h ^ v) * kMul;
    return h ^ (h >> 29);
  };
  std::uint64_t h = n * kMul;
  if (n >= 8) {
    // Whole 8-byte words, then the last 8 bytes (overlapping the word before).
    for (std::size_t i = 0; i + 8 < n; i += 8) h = mix(h, load64(p + i));
    h = mix(h, load64(p + n - 8));
  } else if (n >= 4) {
    h = mix(h, (load32(p) << 32) | load32(p + n - 4));
  } else if (n > 0) {
    const auto b = [&](std::size_t i) { return std::uint64_t{static_cast<unsigned char>(p[i])}; };
    h = mix(h, b(0) | (b(n / 2) << 8) | (b(n - 1) << 16));
  }
  return static_cast<std::size_t>(h ^ (h >> 32));
}

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
