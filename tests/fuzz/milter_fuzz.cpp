// libFuzzer harness for rampart-milter's decision core: the input is split into a recipient
// list, a header block and a body the way a hostile client might send them (malformed macros,
// missing or repeated From, huge or invalid-UTF-8 headers, MIME junk). Must never crash, hang
// or leak; any verdict is fine.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "milter/core/message.hpp"
#include "rules/reader.hpp"

namespace {

std::shared_ptr<const rampart::core::RuleSet> rules() {
  static const auto rs = [] {
    auto p = rampart::rules::parse(R"(
[[stream]]
name = "bulk"
ports = [25]
transport = "out05"
from_domains = ["send.example.net"]
hygiene = "refuse"
[[exclusion]]
category = "c"
action = "hold"
streams = ["*"]
domains = ["example.com"]
addresses = ["x@example.org"]
)",
                                   "fuzz.toml");
    return *rampart::core::RuleSet::compile(std::move(p->spec));
  }();
  return rs;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // Sections separated by a NUL: client address, sender, recipients (\n), headers (\n,
  // "name:value"), body.
  auto next = [&in]() {
    const auto nul = in.find('\0');
    auto part = in.substr(0, nul);
    in = nul == std::string_view::npos ? std::string_view{} : in.substr(nul + 1);
    return part;
  };
  const auto client = next();
  const auto sender = next();
  const auto rcpts = next();
  const auto headers = next();
  const auto body = in;

  rampart::milter::Connection conn{25, "smtpd", std::string(client), "fuzz.example"};
  rampart::milter::Message m(rules(), nullptr, {});
  m.mail(conn, sender, "");
  for (std::size_t pos = 0; pos <= rcpts.size();) {
    auto nl = rcpts.find('\n', pos);
    if (nl == std::string_view::npos) nl = rcpts.size();
    m.rcpt(rcpts.substr(pos, nl - pos));
    pos = nl + 1;
  }
  for (std::size_t pos = 0; pos < headers.size();) {
    auto nl = headers.find('\n', pos);
    if (nl == std::string_view::npos) nl = headers.size();
    const auto line = headers.substr(pos, nl - pos);
    const auto colon = line.find(':');
    m.header(line.substr(0, colon),
             colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1));
    pos = nl + 1;
  }
  for (std::size_t pos = 0; pos < body.size(); pos += 61) m.body(body.substr(pos, 61));
  (void)m.eom({});
  (void)rampart::milter::from_address(headers);
  (void)rampart::milter::dkim_domain(headers);
  (void)rampart::milter::message_id_host(headers);
  return 0;
}
