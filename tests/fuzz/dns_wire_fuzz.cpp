// libFuzzer harness for the MX resolver's pure half (common/dns/wire.hpp): the same bytes as one
// MX rdata, as a list of rdatas (length-prefixed), as a whole DNS response, as a domain name and
// as a server string. Must never crash, hang or read past the buffer; decoded hosts must be
// valid host names, sets sorted and unique, and normalize_domain must agree with the core's.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

#include "core/text.hpp"
#include "dns/wire.hpp"

namespace {

void check_host(std::string_view host) {
  if (host.size() > rampart::dns::k_max_domain) std::abort();
  if (host.empty()) return;  // the root
  std::array<char, rampart::dns::k_max_domain> buf{};
  const auto norm = rampart::dns::normalize_domain(host, buf);
  if (!norm || *norm != host) std::abort();  // already normal: lower case, no final dot
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (const auto mx = rampart::dns::decode_mx(bytes)) check_host(mx->host);

  // Length-prefixed pieces: [len][len bytes][len][len bytes]...
  std::vector<std::span<const std::uint8_t>> rdatas;
  for (std::size_t pos = 0; pos < size;) {
    const std::size_t len = std::min<std::size_t>(data[pos], size - pos - 1);
    rdatas.push_back(bytes.subspan(pos + 1, len));
    pos += len + 1;
  }
  const auto set = rampart::dns::decode_mx_set(rdatas);
  if (set.malformed > rdatas.size()) std::abort();
  if ((set.kind == rampart::dns::MxSetKind::Hosts) == set.hosts.empty()) std::abort();
  for (std::size_t i = 0; i < set.hosts.size(); ++i) {
    check_host(set.hosts[i].host);
    if (set.hosts[i].host.empty()) std::abort();
    if (i > 0) {
      const auto& a = set.hosts[i - 1];
      const auto& b = set.hosts[i];
      if (a.preference > b.preference || (a.preference == b.preference && a.host >= b.host)) {
        std::abort();
      }
    }
  }

  if (const auto ttl = rampart::dns::soa_negative_ttl(bytes)) {
    if (*ttl >= 0x80000000U) std::abort();  // RFC 2181 section 8
  }

  std::array<char, rampart::dns::k_max_domain> buf{};
  const auto norm = rampart::dns::normalize_domain(text, buf);
  const auto core = rampart::core::normalize_domain(text);
  if (norm.has_value() != core.has_value() || (norm && *norm != *core)) std::abort();

  if (const auto fwd = rampart::dns::forwarder_address(text)) {
    if (fwd->find('@') == std::string_view::npos) std::abort();
  }
  return 0;
}
