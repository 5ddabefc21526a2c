// libFuzzer harness for the policy protocol codec: arbitrary bytes as a connection's stream,
// parsed request by request as the server will. Must never crash, hang or read past the buffer;
// a Complete request must consume at least one byte and never more than it was given; and the
// server's form, parsing into one reused ParseResult, must agree with a fresh parse every time.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "policyd/core/protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace rampart::policyd;
  std::string_view buf(reinterpret_cast<const char*>(data), size);
  Limits limits;
  limits.max_line = 512;
  limits.max_attributes = 16;
  limits.max_request = 4096;
  ParseResult reused;
  for (;;) {
    const auto r = parse_request(buf, limits);
    parse_request(buf, limits, reused);
    if (reused.status != r.status || reused.consumed != r.consumed || reused.error != r.error ||
        reused.request.attributes != r.request.attributes)
      std::abort();
    if (r.status != ParseStatus::Complete) break;
    if (r.consumed == 0 || r.consumed > buf.size()) std::abort();
    (void)format_reply(r.request.get("recipient"));
    buf.remove_prefix(r.consumed);
  }
  return 0;
}
