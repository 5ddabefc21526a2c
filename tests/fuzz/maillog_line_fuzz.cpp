// libFuzzer harness for the Postfix log line parser: arbitrary bytes as one log line, with the
// reference time taken from the first bytes. Must never crash, hang or throw, and every view it
// returns must point into the line; a Delivery always carries its record, a failure kind its
// Failure, and Malformed a reason. A delivery's reply is the one a plain reading finds, and the
// whole reading is the general one's (detail::parse_line_general), fast header path or not, and
// the same into a ParsedLine reused from the input before.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "maillog/line.hpp"

namespace {

std::string_view g_line;

void inside(std::string_view v) {
  if (v.empty()) return;
  if (v.data() < g_line.data() || v.data() + v.size() > g_line.data() + g_line.size()) std::abort();
}

// remote_reply() written plainly: unless the text starts with a reply code, the first
// " said: ", then the last " (in reply to " when the text ends in " command)".
std::string_view plain_remote_reply(std::string_view text) {
  std::string_view r = text;
  const auto digit = [&](std::size_t i) { return text[i] >= '0' && text[i] <= '9'; };
  const bool coded = text.size() >= 3 && text[0] >= '2' && text[0] <= '5' && digit(1) && digit(2) &&
                     (text.size() == 3 || text[3] == ' ' || text[3] == '-');
  for (auto c = coded ? std::string_view::npos : text.find(": "); c != std::string_view::npos;
       c = text.find(": ", c + 1)) {
    if (text.substr(0, c).ends_with(" said")) {
      r = text.substr(c + 2);
      break;
    }
  }
  if (r.ends_with(" command)")) {
    if (const auto p = r.rfind(" (in reply to "); p != std::string_view::npos) r = r.substr(0, p);
  }
  return r;
}

void check_delivery(const rampart::maillog::Delivery& d) {
  for (auto v : {d.queue_id, d.recipient, d.orig_to, d.relay, d.relay_host, d.relay_ip, d.dsn,
                 d.status_word, d.text, d.reply_code, d.enhanced_status, d.remote_host, d.reply}) {
    inside(v);
  }
  const auto want = plain_remote_reply(d.text);
  if (d.reply.data() != want.data() || d.reply.size() != want.size()) std::abort();
  if (rampart::maillog::remote_reply(d.text) != want) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace rampart::maillog;
  std::int64_t ref = 1767225600;  // 2026-01-01T00:00:00Z, shifted by the first bytes
  if (size >= 4) {
    std::uint32_t shift = 0;
    std::memcpy(&shift, data, 4);
    ref += static_cast<std::int64_t>(shift) - (std::int64_t{1} << 31);
  }
  g_line = std::string_view(reinterpret_cast<const char*>(data), size);
  const Clock clock{ref, 3600};
  const auto p = parse_line(g_line, clock);
  const auto& h = p.header;
  for (auto v : {h.host, h.program, h.syslog_name, h.service, h.pid_text, h.message, p.queue_id})
    inside(v);
  if (p.kind == Kind::Delivery) {
    if (!p.delivery) std::abort();
    check_delivery(*p.delivery);
  }
  if ((p.kind == Kind::BindFailure || p.kind == Kind::ConnectFailure) && !p.failure) std::abort();
  if (p.failure) {
    for (auto v : {p.failure->queue_id, p.failure->address, p.failure->host, p.failure->reason})
      inside(v);
  }
  if (p.kind == Kind::Malformed && p.why.empty()) std::abort();
  ParsedLine general;
  detail::parse_line_general(g_line, clock, general);
  if (!detail::first_difference(p, general).empty()) std::abort();
  // Into a ParsedLine the previous input was read into (views compared by place, never read):
  // nothing of that reading may remain.
  static ParsedLine reused;
  parse_line(g_line, clock, reused);
  if (!detail::first_difference(reused, p).empty()) std::abort();
  if (const auto d = parse_delivery(g_line, "smtp")) check_delivery(*d);
  return 0;
}
