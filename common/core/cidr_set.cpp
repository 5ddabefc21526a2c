// IpAddress, Cidr, CidrSet: see cidr_set.hpp. Pure (inet_pton/inet_ntop are string functions).
#include "core/cidr_set.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include "core/text.hpp"

namespace rampart::core {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']')
    text = text.substr(1, text.size() - 2);
  if (text.size() > 5 && iequals(text.substr(0, 5), "ipv6:")) text.remove_prefix(5);
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress a;
  if (inet_pton(AF_INET, buf, a.bytes.data()) == 1) return a;
  if (inet_pton(AF_INET6, buf, a.bytes.data()) != 1) return std::nullopt;
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a.bytes.data(), kMapped, 12) == 0) {
    std::memmove(a.bytes.data(), a.bytes.data() + 12, 4);
    std::memset(a.bytes.data() + 4, 0, 12);
    return a;
  }
  a.v6 = true;
  return a;
}

std::string IpAddress::str() const {
  char buf[INET6_ADDRSTRLEN];
  if (inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf) == nullptr) return {};
  return buf;
}

namespace {
bool prefix_equal(const IpAddress& a, const IpAddress& b, unsigned prefix) {
  const unsigned full = prefix / 8;
  if (std::memcmp(a.bytes.data(), b.bytes.data(), full) != 0) return false;
  const unsigned rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a.bytes[full] & mask) == (b.bytes[full] & mask);
}
}  // namespace

std::optional<Cidr> Cidr::parse(std::string_view text, std::string* error) {
  auto set_error = [&](std::string msg) {
    if (error != nullptr) *error = std::move(msg);
    return std::nullopt;
  };
  const auto slash = text.find('/');
  auto addr = IpAddress::parse(text.substr(0, slash));
  if (!addr) return set_error("not an IP address or network");
  const unsigned max = addr->v6 ? 128 : 32;
  unsigned prefix = max;
  if (slash != std::string_view::npos) {
    const auto p = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || ec != std::errc{} || end != p.data() + p.size() || prefix > max) {
      return set_error("bad prefix length");
    }
  }
  Cidr c{*addr, static_cast<std::uint8_t>(prefix)};
  // Host bits after the prefix must be zero: "172.18.0.5/16" is almost always a typo.
  IpAddress masked = *addr;
  for (unsigned bit = prefix; bit < max; ++bit) {
    masked.bytes[bit / 8] =
        static_cast<std::uint8_t>(masked.bytes[bit / 8] & ~(0x80u >> (bit % 8)));
  }
  if (!(masked == *addr)) {
    Cidr suggestion{masked, c.prefix};
    return set_error("host bits set after the prefix (did you mean " + suggestion.str() + "?)");
  }
  return c;
}

bool Cidr::contains(const IpAddress& a) const {
  return a.v6 == network.v6 && prefix_equal(a, network, prefix);
}

std::string Cidr::str() const { return network.str() + "/" + std::to_string(prefix); }

bool CidrSet::contains(const IpAddress& a) const {
  for (const auto& n : nets_) {
    if (n.contains(a)) return true;
  }
  return false;
}

}  // namespace rampart::core
