// libFuzzer harness for core::dkim: the input is opendkim.conf, and every file it names (tables,
// Includes) is another slice of the same input, so parse_config and predict see arbitrary
// configurations. Must never crash, hang or leak; errors must be Errc::Config, and predict must
// be deterministic and explain every "unsigned". Pure: no real files. Seeds:
// tests/data/fuzz/rampart_dkim_scope_fuzz/ (segments separated by a "\n====\n" line).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/dkim_scope.hpp"

namespace {

using rampart::Errc;
using namespace rampart::core::dkim;

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Segment 0 is the conf. A path ending in digit N reads segment N when it exists; any other path
// reads a segment chosen by its hash, a hash-chosen slice of the whole input when there is only
// one segment, or (one path in eight) fails like a missing file.
struct Carver {
  std::string_view input;
  std::vector<std::string_view> segments;

  explicit Carver(std::string_view in) : input(in) {
    constexpr std::string_view kSep = "\n====\n";
    while (true) {
      const auto at = in.find(kSep);
      segments.push_back(in.substr(0, at));
      if (at == std::string_view::npos) break;
      in.remove_prefix(at + kSep.size());
    }
  }

  rampart::Result<std::string> read(const std::string& path) const {
    const auto h = fnv1a(path);
    if (!path.empty() && path.back() >= '0' && path.back() <= '9') {
      const auto n = static_cast<std::size_t>(path.back() - '0');
      if (n < segments.size()) return std::string(segments[n]);
    }
    if (h % 8 == 0) return rampart::fail(Errc::Config, "No such file or directory");
    if (segments.size() > 1) return std::string(segments[1 + (h >> 3) % (segments.size() - 1)]);
    const auto off = input.empty() ? 0 : (h >> 8) % input.size();
    return std::string(input.substr(off, (h >> 32) % (input.size() - off + 1)));
  }
};

bool same(const Prediction& a, const Prediction& b) {
  return a.will_sign == b.will_sign && a.outcome == b.outcome && a.reason == b.reason &&
         a.domain == b.domain && a.selector == b.selector && a.key_name == b.key_name;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const Carver carver(input);
  const ReadFile read = [&carver](const std::string& path) { return carver.read(path); };
  const auto cfg = parse_config(carver.segments[0], "/etc/opendkim.conf", read);
  if (!cfg) {
    if (cfg.error().code != Errc::Config || cfg.error().what.empty()) std::abort();
    return 0;
  }

  const Macro macros[] = {{"daemon_name", "ORIGINATING"}, {"auth_type", ""}, {"{tag}", "x"}};
  const std::string_view rcpts[] = {"<r1@example.com>", "postmaster"};
  // Senders and clients, some taken from the input so table entries can be hit.
  const auto last = carver.segments.back();
  const std::string_view froms[] = {"news@send.example.net", "A@Example.COM",   "", "nodomain",
                                    "<u@a.b.example.org>",   last.substr(0, 64)};
  const std::string_view clients[] = {"127.0.0.1",         "172.18.0.5", "IPv6:2001:db8::5",
                                      "::ffff:172.18.0.5", "",           "garbage",
                                      last.substr(0, 40)};
  for (const auto client : clients) {
    for (const auto from : froms) {
      SigningRequest req;
      req.client_addr = client;
      req.client_name = from.size() % 2 == 0 ? "mx.example.net" : "";
      req.authenticated = client.size() % 3 == 0;
      req.from_address = from;
      req.macros = macros;
      req.recipients = rcpts;
      const auto a = predict(*cfg, req);
      const auto b = predict(*cfg, req);
      if (!same(a, b)) std::abort();
      if (a.will_sign && (a.domain.empty() || a.selector.empty() || !a.reason.empty()))
        std::abort();
      if (!a.will_sign && a.reason.empty()) std::abort();
    }
  }
  return 0;
}
