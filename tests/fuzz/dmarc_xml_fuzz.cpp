// libFuzzer harness for the DMARC aggregate report reader: arbitrary bytes as a report, under
// small limits (so depth, element, record and text limits are reached) and under the defaults.
// Must never crash, hang or throw; a refusal is Errc::Invalid with a reason; a report respects
// the limits, holds only trimmed, well-formed UTF-8 without control characters other than
// tab/LF/CR, lower-case results; and what parses under small limits parses identically under
// large ones (limits only ever refuse).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dmarc/parse.hpp"

namespace {

using rampart::core::dmarc::Report;

void check_utf8(std::string_view s) {
  if (!s.empty() && (s.front() == ' ' || s.back() == ' ' || s.front() == '\n' || s.back() == '\n'))
    std::abort();  // not trimmed
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      if (b < 0x20 && b != '\t' && b != '\n' && b != '\r') std::abort();
      ++i;
      continue;
    }
    std::size_t len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 ? 2 : 0;
    if (len == 0 || b > 0xF4 || i + len > s.size()) std::abort();
    for (std::size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) std::abort();
    }
    i += len;
  }
}

void check_lower(std::string_view s) {
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') std::abort();
  }
}

void check(const Report& r, const rampart::dmarc::XmlLimits& limits) {
  if (r.records.size() > limits.max_records) std::abort();
  for (const auto* s : {&r.version, &r.org_name, &r.email, &r.extra_contact_info, &r.report_id,
                        &r.policy.domain, &r.policy.fo}) {
    check_utf8(*s);
    if (s->size() > limits.max_text) std::abort();
  }
  if (r.report_id.empty() || r.policy.domain.empty()) std::abort();
  for (const auto* s : {&r.policy.p, &r.policy.sp, &r.policy.np, &r.policy.adkim, &r.policy.aspf,
                        &r.policy.testing, &r.policy.discovery_method}) {
    check_utf8(*s);
    check_lower(*s);
  }
  if (r.policy.pct && (*r.policy.pct < 0 || *r.policy.pct > 100)) std::abort();
  if (r.begin < 0 || r.end < 0) std::abort();
  for (const auto& e : r.errors) check_utf8(e);
  for (const auto& rec : r.records) {
    if (rec.source_ip.empty() || rec.count < 0) std::abort();
    for (const auto* s : {&rec.source_ip, &rec.header_from, &rec.envelope_from, &rec.envelope_to})
      check_utf8(*s);
    for (const auto* s : {&rec.disposition, &rec.dkim, &rec.spf}) {
      check_utf8(*s);
      check_lower(*s);
    }
    for (const auto& reason : rec.reasons) {
      check_utf8(reason.type);
      check_lower(reason.type);
      check_utf8(reason.comment);
    }
    for (const auto& a : rec.auth) {
      if (a.method != "dkim" && a.method != "spf") std::abort();
      for (const auto* s : {&a.domain, &a.selector, &a.human_result}) check_utf8(*s);
      check_lower(a.result);
      check_lower(a.scope);
    }
  }
  (void)r.messages();  // no overflow (UBSan)
  (void)r.pass_messages();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace rampart::dmarc;
  const std::string_view xml(reinterpret_cast<const char*>(data), size);
  XmlLimits small;
  small.max_depth = 8;
  small.max_elements = 200;
  small.max_records = 4;
  small.max_text = 64;
  Repairs repairs;
  const auto r = parse_report(xml, small, &repairs);
  if (repairs.size() > 101) std::abort();
  if (!r) {
    if (r.error().code != rampart::Errc::Invalid || r.error().what.empty()) std::abort();
  } else {
    check(*r, small);
  }
  const auto big = parse_report(xml);
  if (!big) {
    if (big.error().code != rampart::Errc::Invalid || big.error().what.empty()) std::abort();
    if (r) std::abort();  // the larger limits refused what the smaller accepted
  } else {
    check(*big, XmlLimits{});
    if (r && !(*r == *big)) std::abort();
  }
  return 0;
}
