// libFuzzer harness for the policy protocol codec: arbitrary bytes as a connection's stream,
// parsed request by request as the server will. Must never crash, hang or read past the buffer;
// a Complete request must consume at least one byte and never more than it was given.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "policyd/core/protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view buf(reinterpret_cast<const char*>(data), size);
  rampart::policyd::Limits limits;
  limits.max_line = 512;
  limits.max_attributes = 16;
  limits.max_request = 4096;
  for (;;) {
    const auto r = rampart::policyd::parse_request(buf, limits);
    if (r.status != rampart::policyd::ParseStatus::Complete) break;
    if (r.consumed == 0 || r.consumed > buf.size()) std::abort();
    (void)rampart::policyd::format_reply(r.request.get("recipient"));
    buf.remove_prefix(r.consumed);
  }
  return 0;
}
