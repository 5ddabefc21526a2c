// IPv4/IPv6 networks and a set of them, for stream client matching. Parsing uses inet_pton
// only (no sockets); pure.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rampart::core {

struct IpAddress {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  // v4 uses the first 4
  // Accepts "192.0.2.1", "2001:db8::1", "[2001:db8::1]", "IPv6:2001:db8::1" (Postfix/milter form)
  // and v4-mapped v6 ("::ffff:192.0.2.1", treated as the v4 address).
  static std::optional<IpAddress> parse(std::string_view text);
  std::string str() const;
  bool operator==(const IpAddress&) const = default;
};

struct Cidr {
  IpAddress network;
  std::uint8_t prefix = 0;
  // "192.0.2.0/24", "2001:db8::/32", or a bare address (a /32 or /128). Host bits set after the
  // prefix are an error (explains itself in `error`).
  static std::optional<Cidr> parse(std::string_view text, std::string* error = nullptr);
  bool contains(const IpAddress& a) const;
  std::string str() const;
};

class CidrSet {
 public:
  void add(const Cidr& c) { nets_.push_back(c); }
  bool contains(const IpAddress& a) const;
  bool empty() const { return nets_.empty(); }

 private:
  std::vector<Cidr> nets_;  // streams list a handful; a linear scan beats anything fancier
};

}  // namespace rampart::core
