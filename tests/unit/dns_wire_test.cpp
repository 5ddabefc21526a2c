// The MX resolver's pure half (common/dns/wire.hpp): MX rdata and null MX decoding, SOA negative
// TTLs, name syntax, server notation, cache lifetimes. Pure; no network.
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dns/wire.hpp"

using namespace rampart::dns;
using Bytes = std::vector<std::uint8_t>;

namespace {

// "\x0amx1.example" style is unreadable: build wire names from text. "" is the root.
Bytes wire_name(std::string_view name) {
  Bytes out;
  while (!name.empty()) {
    const auto dot = name.find('.');
    const auto label = name.substr(0, dot);
    out.push_back(static_cast<std::uint8_t>(label.size()));
    out.insert(out.end(), label.begin(), label.end());
    name = dot == std::string_view::npos ? std::string_view{} : name.substr(dot + 1);
  }
  out.push_back(0);
  return out;
}

Bytes mx_rdata(std::uint16_t preference, std::string_view host) {
  Bytes out{static_cast<std::uint8_t>(preference >> 8), static_cast<std::uint8_t>(preference)};
  const auto name = wire_name(host);
  out.insert(out.end(), name.begin(), name.end());
  return out;
}

Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void put16(Bytes& b, std::uint32_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}

void put32(Bytes& b, std::uint32_t v) {
  put16(b, v >> 16);
  put16(b, v & 0xFFFF);
}

struct Rr {
  std::uint16_t type;
  std::uint32_t ttl;
  Bytes rdata;
};

// A response to "nothing.example MX": the question, then `answers` and `authority` records, each
// owned by a compression pointer to the question name (offset 12), as servers write them.
Bytes response(const std::vector<Rr>& answers, const std::vector<Rr>& authority) {
  Bytes m{0x12, 0x34, 0x81, 0x83};  // id, QR RD RA, NXDOMAIN
  put16(m, 1);
  put16(m, static_cast<std::uint32_t>(answers.size()));
  put16(m, static_cast<std::uint32_t>(authority.size()));
  put16(m, 0);
  m = cat(m, wire_name("nothing.example"));
  put16(m, 15);
  put16(m, 1);
  for (const auto* section : {&answers, &authority}) {
    for (const auto& rr : *section) {
      m.push_back(0xC0);
      m.push_back(12);
      put16(m, rr.type);
      put16(m, 1);
      put32(m, rr.ttl);
      put16(m, static_cast<std::uint32_t>(rr.rdata.size()));
      m = cat(m, rr.rdata);
    }
  }
  return m;
}

Bytes soa_rdata(std::uint32_t minimum) {
  Bytes r = cat(wire_name("ns.example"), wire_name("hostmaster.example"));
  for (std::uint32_t v : {1U, 3600U, 600U, 86400U, minimum}) put32(r, v);
  return r;
}

Bytes from_hex(std::string_view hex) {
  Bytes out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

}  // namespace

TEST_CASE("dns::normalize_domain: lower case without the final dot; non-host names refused") {
  struct Case {
    const char* label;
    std::string name;
    std::optional<std::string> want;
  };
  const Case cases[] = {
      {"plain", "example.com", "example.com"},
      {"case folded, final dot dropped", "Mail.EXAMPLE.Com.", "mail.example.com"},
      {"one label", "localhost", "localhost"},
      {"underscore and hyphen", "_dmarc.a-b.example", "_dmarc.a-b.example"},
      {"253 characters",
       std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
           std::string(61, 'd'),
       std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
           std::string(61, 'd')},
      {"254 characters",
       std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
           std::string(62, 'd'),
       std::nullopt},
      {"label of 64", std::string(64, 'a') + ".example", std::nullopt},
      {"empty", "", std::nullopt},
      {"only a dot", ".", std::nullopt},
      {"two final dots", "example.com..", std::nullopt},
      {"empty label", "a..example", std::nullopt},
      {"leading dot", ".example", std::nullopt},
      {"address literal", "[192.0.2.1]", std::nullopt},
      {"space", "exa mple.com", std::nullopt},
      {"NUL", std::string("exa\0mple.com", 12), std::nullopt},
      {"8-bit (IDN must come as A-labels)",
       "b\xc3\xbc"
       "cher.example",
       std::nullopt},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    std::array<char, k_max_domain> buf{};
    const auto got = normalize_domain(c.name, buf);
    REQUIRE(got.has_value() == c.want.has_value());
    if (c.want) CHECK(*got == *c.want);
  }
}

TEST_CASE("dns::decode_mx: preference and lower-case host; malformed rdata refused") {
  struct Case {
    const char* label;
    Bytes rdata;
    std::optional<MxHost> want;
  };
  const Case cases[] = {
      {"preference 10", mx_rdata(10, "mx1.example.com"), MxHost{10, "mx1.example.com"}},
      {"preference 65535, case folded", mx_rdata(65535, "MX.Example.COM"),
       MxHost{65535, "mx.example.com"}},
      {"root (null MX)", mx_rdata(0, ""), MxHost{0, ""}},
      {"underscore and hyphen", mx_rdata(5, "a_b-c.example"), MxHost{5, "a_b-c.example"}},
      {"empty", {}, std::nullopt},
      {"preference only", {0, 10}, std::nullopt},
      {"no root label", {0, 10, 2, 'm', 'x'}, std::nullopt},
      {"label runs past the end", {0, 10, 5, 'm', 'x', 0}, std::nullopt},
      {"compression pointer", {0, 10, 0xC0, 0x0C}, std::nullopt},
      {"reserved label type 0x40", {0, 10, 0x41, 'a', 0}, std::nullopt},
      {"reserved label type 0x80", {0, 10, 0x81, 'a', 0}, std::nullopt},
      {"octets after the name", cat(mx_rdata(10, "mx.example"), {0}), std::nullopt},
      {"a dot inside a label", {0, 10, 3, 'a', '.', 'b', 0}, std::nullopt},
      {"a space inside a label", {0, 10, 3, 'a', ' ', 'b', 0}, std::nullopt},
      {"a NUL inside a label", {0, 10, 3, 'a', 0, 'b', 0}, std::nullopt},
      {"label of 63 is fine", mx_rdata(1, std::string(63, 'a') + ".example"),
       MxHost{1, std::string(63, 'a') + ".example"}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = decode_mx(c.rdata);
    REQUIRE(got.has_value() == c.want.has_value());
    if (c.want) CHECK(*got == *c.want);
  }

  // 255 octets of wire name is the limit (RFC 1035 section 2.3.4): four labels of 63 take
  // 4 x 64 + 1 = 257 octets; 63, 63, 63 and 61 take 3 x 64 + 62 + 1 = 255.
  Bytes too_long{0, 1};
  for (int i = 0; i < 4; ++i) too_long = cat(too_long, cat({63}, Bytes(63, 'a')));
  too_long.push_back(0);
  CHECK_FALSE(decode_mx(too_long).has_value());
  const auto longest = mx_rdata(1, std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                                       std::string(63, 'c') + "." + std::string(61, 'd'));
  CHECK(decode_mx(longest).has_value());
}

TEST_CASE("dns::decode_mx_set: null MX, root among hosts, only root, malformed; sorted") {
  struct Case {
    const char* label;
    std::vector<Bytes> rdatas;
    MxSetKind want_kind;
    std::vector<MxHost> want_hosts;
    std::size_t want_malformed;
  };
  const Bytes garbage{0, 10, 0xC0, 0x0C};
  const Case cases[] = {
      {"two preferences, sorted",
       {mx_rdata(20, "mx2.example"), mx_rdata(10, "mx1.example")},
       MxSetKind::Hosts,
       {{10, "mx1.example"}, {20, "mx2.example"}},
       0},
      {"equal preferences by host, duplicates dropped",
       {mx_rdata(10, "b.example"), mx_rdata(10, "A.example"), mx_rdata(10, "b.example")},
       MxSetKind::Hosts,
       {{10, "a.example"}, {10, "b.example"}},
       0},
      {"RFC 7505 null MX", {mx_rdata(0, "")}, MxSetKind::NullMx, {}, 0},
      {"null MX next to a real host: the host wins",
       {mx_rdata(0, ""), mx_rdata(10, "mx.example")},
       MxSetKind::Hosts,
       {{10, "mx.example"}},
       0},
      {"root with preference 10 is no null MX", {mx_rdata(10, "")}, MxSetKind::OnlyRoot, {}, 0},
      {"two root records", {mx_rdata(0, ""), mx_rdata(0, "")}, MxSetKind::OnlyRoot, {}, 0},
      {"malformed records skipped beside a good one",
       {garbage, mx_rdata(10, "mx.example")},
       MxSetKind::Hosts,
       {{10, "mx.example"}},
       1},
      {"only malformed", {garbage, garbage}, MxSetKind::Malformed, {}, 2},
      {"null MX plus garbage is not a null MX",
       {mx_rdata(0, ""), garbage},
       MxSetKind::Malformed,
       {},
       1},
      {"empty set", {}, MxSetKind::Malformed, {}, 0},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    std::vector<std::span<const std::uint8_t>> spans(c.rdatas.begin(), c.rdatas.end());
    const auto got = decode_mx_set(spans);
    CHECK(got.kind == c.want_kind);
    CHECK(got.hosts == c.want_hosts);
    CHECK(got.malformed == c.want_malformed);
  }
}

TEST_CASE("dns::soa_negative_ttl: min(SOA TTL, MINIMUM) from the authority section") {
  struct Case {
    const char* label;
    Bytes message;
    std::optional<std::uint32_t> want;
  };
  const auto with_soa = response({}, {{6, 600, soa_rdata(120)}});
  const Case cases[] = {
      {"MINIMUM below the TTL", with_soa, 120},
      {"TTL below the MINIMUM", response({}, {{6, 60, soa_rdata(300)}}), 60},
      {"TTL with the top bit set counts as 0", response({}, {{6, 0x80000000U, soa_rdata(300)}}), 0},
      {"an NS before the SOA is skipped",
       response({}, {{2, 300, wire_name("ns.example")}, {6, 900, soa_rdata(900)}}), 900},
      {"an SOA in the answer section is not a negative answer",
       response({{6, 600, soa_rdata(120)}}, {}), std::nullopt},
      {"no authority", response({}, {}), std::nullopt},
      {"SOA rdata too short", response({}, {{6, 600, Bytes(21, 0)}}), std::nullopt},
      {"truncated in the SOA", Bytes(with_soa.begin(), with_soa.end() - 3), std::nullopt},
      {"truncated in the header", Bytes(with_soa.begin(), with_soa.begin() + 11), std::nullopt},
      {"empty", {}, std::nullopt},
      // libunbound 1.17's own answer for nothing.test (its built-in RFC 6761 zone, SOA TTL and
      // MINIMUM 10800), and the lab unbound's NXDOMAIN for a zone without an SOA (only an OPT).
      {"libunbound's local .test zone",
       from_hex("000085830001000000010001076e6f7468696e67047465737400000f0001c0140006000100002a30"
                "002f096c6f63616c686f737400066e6f626f647907696e76616c6964000000000100000e1000"
                "0004b000093a8000002a3000002904d0000080000000"),
       10800},
      {"NXDOMAIN without an SOA",
       from_hex("000081830001000000000001076e6f7468696e67076578616d706c6500000f000100002904d000"
                "0080000000"),
       std::nullopt},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    CHECK(soa_negative_ttl(c.message) == c.want);
  }
}

TEST_CASE("dns::forwarder_address: operator notation to libunbound's IP@PORT") {
  struct Case {
    const char* label;
    const char* server;
    const char* want;  // nullptr: Errc::Config
  };
  const Case cases[] = {
      {"IPv4, default port", "127.0.0.1", "127.0.0.1@53"},
      {"IPv4 with port", "192.0.2.53:5353", "192.0.2.53@5353"},
      {"bare IPv6", "::1", "::1@53"},
      {"bracketed IPv6 with port", "[2001:db8::53]:5353", "2001:db8::53@5353"},
      {"port 65535", "127.0.0.1:65535", "127.0.0.1@65535"},
      {"empty", "", nullptr},
      {"host name", "dns.example:53", nullptr},
      {"port 0", "127.0.0.1:0", nullptr},
      {"port too big", "127.0.0.1:65536", nullptr},
      {"empty port", "127.0.0.1:", nullptr},
      {"port with junk", "127.0.0.1:53x", nullptr},
      {"brackets without port", "[::1]", nullptr},
      {"IPv4 in brackets", "[127.0.0.1]:53", nullptr},
      {"unclosed bracket", "[::1:53", nullptr},
      {"unbound's own notation is not ours", "127.0.0.1@53", nullptr},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = forwarder_address(c.server);
    if (c.want == nullptr) {
      REQUIRE_FALSE(got.has_value());
      CHECK(got.error().code == rampart::Errc::Config);
      CHECK(got.error().what.find(c.server) != std::string::npos);
    } else {
      REQUIRE_MESSAGE(got.has_value(), got.error().what);
      CHECK(*got == c.want);
    }
  }
}

TEST_CASE("dns::positive_ttl and dns::negative_ttl: clamped cache lifetimes") {
  using std::chrono::seconds;
  const TtlRules rules{seconds{86400}, seconds{30}, seconds{3600}};
  struct Case {
    const char* label;
    long long ttl;
    seconds want_positive;
    seconds want_negative;
  };
  const Case cases[] = {
      {"ordinary", 300, seconds{300}, seconds{300}},
      {"zero: positive not cached, negative floored", 0, seconds{0}, seconds{30}},
      {"negative input", -5, seconds{0}, seconds{30}},
      {"one second", 1, seconds{1}, seconds{30}},
      {"above the negative ceiling", 7200, seconds{7200}, seconds{3600}},
      {"above max_ttl", 200000, seconds{86400}, seconds{3600}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    CHECK(positive_ttl(c.ttl, rules) == c.want_positive);
    CHECK(negative_ttl(c.ttl, rules) == c.want_negative);
  }
  // max_ttl caps the negative lifetime too.
  const TtlRules tight{seconds{10}, seconds{30}, seconds{3600}};
  CHECK(negative_ttl(0, tight) == seconds{10});
}
