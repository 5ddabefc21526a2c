// The pure half of the MX resolver (dns/resolver.hpp): decoding what libunbound hands back (MX
// rdata, RFC 7505 null MX), domain-name syntax, DNS server notation and cache-lifetime rules.
// Pure: no I/O, no clock, no libunbound. Every decoder is bounded and safe on any bytes
// (tests/fuzz/dns_wire_fuzz.cpp).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace rampart::dns {

// RFC 1035 §2.3.4: a name is at most 255 octets in wire format, 253 characters as text (no
// trailing dot); a label is at most 63 octets.
inline constexpr std::size_t k_max_domain = 253;
inline constexpr std::size_t k_max_wire_name = 255;
inline constexpr std::size_t k_max_label = 63;

// DNS numbers the adapter needs (RFC 1035 §3.2.2, RFC 3596 §2.1, RFC 1035 §4.1.1).
inline constexpr int k_type_a = 1;
inline constexpr int k_type_mx = 15;
inline constexpr int k_type_aaaa = 28;
inline constexpr int k_class_in = 1;

struct MxHost {
  std::uint16_t preference = 0;
  std::string host;  // lower case, no trailing dot; "" is the root name "."
  friend bool operator==(const MxHost&, const MxHost&) = default;
};

// Lower-cases `name` into `out` and drops one trailing dot; returns a view into `out`. nullopt
// when `name` is not a host name: empty, longer than 253, an empty label ("a..b", ".a"), a label
// longer than 63, or a byte other than a letter, digit, '-', '_' or '.'. Same rules as
// core::normalize_domain, without allocating (the resolver's cache lookups use it).
std::optional<std::string_view> normalize_domain(std::string_view name,
                                                 std::array<char, k_max_domain>& out);

// Decodes one MX rdata as libunbound returns it (rdlength stripped, names uncompressed): a
// 16-bit preference in network order, then the exchange as a wire-format name. The host comes
// back in lower case without the trailing dot ("" for the root). nullopt when the rdata is
// malformed: shorter than 3 octets, a compression pointer or reserved label type, a label longer
// than 63, a name longer than 255 octets or than the rdata, octets after the name, or a label byte
// other than a letter, digit, '-' or '_' (such a name cannot be an SMTP server, RFC 5321 §2.3.5).
std::optional<MxHost> decode_mx(std::span<const std::uint8_t> rdata);

enum class MxSetKind : std::uint8_t {
  Hosts,      // `hosts` holds the usable exchanges -> MxStatus::Ok
  NullMx,     // RFC 7505 §3: exactly one record, "MX 0 ." -> MxStatus::NullMx (reject 5.1.10)
  OnlyRoot,   // every record decodes but names the root, not as a null MX ("MX 10 .", or two
              // root records) -> MxStatus::NoMailHost (no host to deliver to)
  Malformed,  // no record decodes to a host (or the set is empty) -> MxStatus::Temporary
};

struct MxSet {
  MxSetKind kind = MxSetKind::Malformed;
  std::vector<MxHost> hosts;  // kind Hosts: sorted by (preference, host), duplicates removed
  std::size_t malformed = 0;  // records skipped because decode_mx refused them
};

// Classifies the rdata list of one MX answer. A root exchange next to real ones is skipped (RFC
// 7505 §3: a null MX must be alone; the real hosts still receive mail), as are malformed records
// when at least one host decodes (Postfix skips them too).
MxSet decode_mx_set(std::span<const std::span<const std::uint8_t>> rdatas);

// The negative-caching TTL a DNS response carries (RFC 2308 §5): min(TTL, MINIMUM) of the first
// SOA record in its authority section, a TTL with the top bit set counting as 0 (RFC 2181 §8).
// nullopt when there is no SOA there, or the message is malformed or truncated. `message` is the
// whole response (libunbound's result->answer_packet); compressed names are skipped, not followed.
// Why not result->ttl: libunbound 1.17 reports junk there for a negative answer without an SOA
// (32768 was seen in the lab).
std::optional<std::uint32_t> soa_negative_ttl(std::span<const std::uint8_t> message);

// One DNS server in the operator's notation: "IP" (port 53), "IPv4:PORT", "[IPv6]:PORT" or a bare
// IPv6 address, turned into libunbound's forwarder notation "IP@PORT". Errc::Config on anything
// else: not an IP literal, a port outside 1-65535, brackets without a port.
[[nodiscard]] Result<std::string> forwarder_address(std::string_view server);

// How long the resolver caches an answer, from the TTLs in it.
struct TtlRules {
  std::chrono::seconds max_ttl{86400};          // every answer: at most this
  std::chrono::seconds min_negative_ttl{30};    // rejections: at least this ...
  std::chrono::seconds max_negative_ttl{3600};  // ... and at most this
};
// Ok answers: their TTL (the smallest TTL of the answer's rrsets), at most max_ttl; TTL 0 (or a
// negative value) means "do not cache" (RFC 1035 §3.2.1).
std::chrono::seconds positive_ttl(long long ttl, const TtlRules& rules);
// Answers that make the caller reject (NXDOMAIN, no mail host, null MX): `ttl` is the negative
// TTL (soa_negative_ttl; 0 without an SOA) or, for a null MX, the MX record's own TTL. Clamped
// to [min_negative_ttl, max_negative_ttl], then to max_ttl. The floor keeps a zone without an
// SOA, or with a tiny MINIMUM, from turning every message into a lookup.
std::chrono::seconds negative_ttl(long long ttl, const TtlRules& rules);

}  // namespace rampart::dns
