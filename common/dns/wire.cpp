// The pure half of the MX resolver: MX rdata and null MX decoding, name syntax, server notation,
// cache lifetimes. No I/O, no clock; every loop is bounded by its input.
#include "dns/wire.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

namespace rampart::dns {

namespace {

constexpr char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c; }

constexpr bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

std::uint16_t read16(std::span<const std::uint8_t> m, std::size_t at) {
  return static_cast<std::uint16_t>((m[at] << 8) | m[at + 1]);
}

std::uint32_t read32(std::span<const std::uint8_t> m, std::size_t at) {
  return (std::uint32_t{m[at]} << 24) | (std::uint32_t{m[at + 1]} << 16) |
         (std::uint32_t{m[at + 2]} << 8) | std::uint32_t{m[at + 3]};
}

// Moves `pos` past the name that starts there (RFC 1035 §4.1.4: labels, ending in the root label
// or in a 2-octet compression pointer). False when it runs off the message or is not a name.
bool skip_name(std::span<const std::uint8_t> m, std::size_t& pos) {
  for (std::size_t wire = 0;;) {
    if (pos >= m.size()) return false;
    const std::size_t len = m[pos];
    if ((len & 0xC0) == 0xC0) {
      if (m.size() - pos < 2) return false;
      pos += 2;
      return true;
    }
    if ((len & 0xC0) != 0) return false;
    wire += len + 1;
    if (wire > k_max_wire_name || len >= m.size() - pos) return false;
    pos += len + 1;
    if (len == 0) return true;
  }
}

}  // namespace

std::optional<std::string_view> normalize_domain(std::string_view name,
                                                 std::array<char, k_max_domain>& out) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > k_max_domain) return std::nullopt;
  std::size_t label = 0;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = lower(name[i]);
    if (c == '.') {
      if (label == 0) return std::nullopt;
      label = 0;
    } else if (host_char(c)) {
      if (++label > k_max_label) return std::nullopt;
    } else {
      return std::nullopt;
    }
    out[i] = c;
  }
  if (label == 0) return std::nullopt;
  return std::string_view(out.data(), name.size());
}

std::optional<MxHost> decode_mx(std::span<const std::uint8_t> rdata) {
  // RFC 1035 §3.3.9: PREFERENCE (16 bits), EXCHANGE (a domain name).
  if (rdata.size() < 3) return std::nullopt;
  MxHost mx;
  mx.preference = static_cast<std::uint16_t>((rdata[0] << 8) | rdata[1]);
  const auto name = rdata.subspan(2);
  std::size_t pos = 0;
  std::size_t wire = 0;  // octets of the name so far, length octets included
  for (;;) {
    if (pos >= name.size()) return std::nullopt;  // ran off the end without the root label
    const std::size_t len = name[pos];
    // RFC 1035 §4.1.4 / RFC 6891 §5: 0b11 is a pointer, 0b01 and 0b10 are extended or reserved
    // label types. libunbound decompresses names, so any of them here is garbage.
    if ((len & 0xC0) != 0) return std::nullopt;
    wire += len + 1;
    if (wire > k_max_wire_name) return std::nullopt;
    if (len == 0) {
      ++pos;
      break;
    }
    if (len > name.size() - pos - 1) return std::nullopt;
    if (!mx.host.empty()) mx.host.push_back('.');
    for (std::size_t i = 0; i < len; ++i) {
      const char c = lower(static_cast<char>(name[pos + 1 + i]));
      if (!host_char(c)) return std::nullopt;
      mx.host.push_back(c);
    }
    pos += len + 1;
  }
  if (pos != name.size()) return std::nullopt;  // trailing octets: not one MX rdata
  return mx;
}

MxSet decode_mx_set(std::span<const std::span<const std::uint8_t>> rdatas) {
  MxSet set;
  std::size_t roots = 0;
  bool null_mx_candidate = false;
  for (const auto& rdata : rdatas) {
    auto mx = decode_mx(rdata);
    if (!mx) {
      ++set.malformed;
      continue;
    }
    if (mx->host.empty()) {
      ++roots;
      null_mx_candidate = mx->preference == 0;
      continue;
    }
    set.hosts.push_back(std::move(*mx));
  }
  if (!set.hosts.empty()) {
    std::sort(set.hosts.begin(), set.hosts.end(), [](const MxHost& a, const MxHost& b) {
      return a.preference != b.preference ? a.preference < b.preference : a.host < b.host;
    });
    set.hosts.erase(std::unique(set.hosts.begin(), set.hosts.end()), set.hosts.end());
    set.kind = MxSetKind::Hosts;
  } else if (roots == 1 && set.malformed == 0 && rdatas.size() == 1 && null_mx_candidate) {
    set.kind = MxSetKind::NullMx;  // RFC 7505 §3: "a single MX RR with RDATA 0 ."
  } else if (roots > 0 && set.malformed == 0) {
    set.kind = MxSetKind::OnlyRoot;
  } else {
    set.kind = MxSetKind::Malformed;
  }
  return set;
}

std::optional<std::uint32_t> soa_negative_ttl(std::span<const std::uint8_t> message) {
  // RFC 1035 §4.1: a 12-octet header with the section counts, then question, answer, authority.
  constexpr std::size_t k_header = 12;
  constexpr std::uint16_t k_type_soa = 6;
  if (message.size() < k_header) return std::nullopt;
  const std::size_t questions = read16(message, 4);
  const std::size_t answers = read16(message, 6);
  const std::size_t authority = read16(message, 8);
  std::size_t pos = k_header;
  // Every entry takes at least one octet, so these loops end within the message.
  for (std::size_t i = 0; i < questions; ++i) {
    if (!skip_name(message, pos) || message.size() - pos < 4) return std::nullopt;
    pos += 4;  // QTYPE, QCLASS
  }
  for (std::size_t i = 0; i < answers + authority; ++i) {
    if (!skip_name(message, pos) || message.size() - pos < 10) return std::nullopt;
    const std::uint16_t type = read16(message, pos);
    const std::uint32_t ttl = read32(message, pos + 4);
    const std::size_t rdlength = read16(message, pos + 8);
    pos += 10;
    if (message.size() - pos < rdlength) return std::nullopt;
    // SOA RDATA: MNAME, RNAME (at least the root label each), then SERIAL, REFRESH, RETRY,
    // EXPIRE and MINIMUM: MINIMUM is the last 4 octets.
    if (i >= answers && type == k_type_soa && rdlength >= 22) {
      const std::uint32_t minimum = read32(message, pos + rdlength - 4);
      const auto sane = [](std::uint32_t t) { return (t & 0x80000000U) != 0 ? 0U : t; };
      return std::min(sane(ttl), sane(minimum));
    }
    pos += rdlength;
  }
  return std::nullopt;
}

Result<std::string> forwarder_address(std::string_view server) {
  std::string_view ip = server;
  std::string_view port;
  if (!server.empty() && server.front() == '[') {
    const auto close = server.find(']');
    if (close == std::string_view::npos || close + 1 >= server.size() || server[close + 1] != ':') {
      return fail(Errc::Config, fmt::format("dns server {:?}: want [IPv6]:PORT", server));
    }
    ip = server.substr(1, close - 1);
    port = server.substr(close + 2);
  } else if (std::count(server.begin(), server.end(), ':') == 1) {
    const auto colon = server.find(':');
    ip = server.substr(0, colon);
    port = server.substr(colon + 1);
  }
  // inet_pton wants a NUL-terminated string; an IPv6 literal is at most 45 characters.
  std::array<char, 64> text{};
  if (ip.empty() || ip.size() >= text.size()) {
    return fail(Errc::Config, fmt::format("dns server {:?}: not an IP address", server));
  }
  std::copy(ip.begin(), ip.end(), text.begin());
  std::array<unsigned char, 16> addr{};
  const bool v4 = inet_pton(AF_INET, text.data(), addr.data()) == 1;
  const bool v6 = !v4 && inet_pton(AF_INET6, text.data(), addr.data()) == 1;
  if (!v4 && !v6) {
    return fail(Errc::Config, fmt::format("dns server {:?}: not an IP address", server));
  }
  if (server.front() == '[' && !v6) {
    return fail(Errc::Config,
                fmt::format("dns server {:?}: brackets hold an IPv6 address", server));
  }
  unsigned number = 53;
  if (!port.empty() || ip.size() != server.size()) {
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || number == 0 ||
        number > 65535) {
      return fail(Errc::Config, fmt::format("dns server {:?}: bad port", server));
    }
  }
  return fmt::format("{}@{}", ip, number);
}

std::chrono::seconds positive_ttl(long long ttl, const TtlRules& rules) {
  if (ttl <= 0) return std::chrono::seconds{0};
  return std::min(std::chrono::seconds{ttl}, rules.max_ttl);
}

std::chrono::seconds negative_ttl(long long ttl, const TtlRules& rules) {
  std::chrono::seconds t{std::max(ttl, 0LL)};
  t = std::max(t, rules.min_negative_ttl);
  t = std::min(t, rules.max_negative_ttl);
  return std::min(t, rules.max_ttl);
}

}  // namespace rampart::dns
