// DMARC aggregate report XML -> core::dmarc::Report: see parse.hpp. One forward pass over the
// bytes: a pull tokenizer (markup, text, entities, UTF-8) feeding a path-driven mapper. Every scan
// moves forward and every backward look is bounded (entity names, the open-element stack), so the
// time is linear in the input. Pure; no I/O, no DTD, no entity expansion beyond XML's own five.
#include "dmarc/parse.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "core/text.hpp"

namespace rampart::dmarc {
namespace {

using core::dmarc::AuthResult;
using core::dmarc::Reason;
using core::dmarc::Record;
using core::dmarc::Report;

constexpr std::string_view kDmarcbisNamespace = "urn:ietf:params:xml:ns:dmarc-2.0";
constexpr std::size_t kMaxRepairLines = 100;  // the rest are counted, not listed
// Per record. A billion messages from one IP in one report is far beyond any real one; summed
// over a million records and any number of reports it stays far from int64 overflow.
constexpr std::int64_t kMaxCount = 1'000'000'000;
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

constexpr bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }
constexpr bool is_name_start(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || u >= 0x80;
}
constexpr bool is_name_char(char c) {
  return is_name_start(c) || is_digit(c) || c == '-' || c == '.';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view local_name(std::string_view qname) {
  const auto colon = qname.rfind(':');
  return colon == std::string_view::npos ? qname : qname.substr(colon + 1);
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// XML 1.0 §2.2 Char.
constexpr bool is_xml_char(std::uint32_t cp) {
  return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
         (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629 table 3: no overlongs, no
// surrogates, nothing past U+10FFFF), or 0.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const auto b0 = at(i);
  std::size_t len = 0;
  unsigned lo = 0x80;
  unsigned hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < len; ++k) {
    if (at(i + k) < 0x80 || at(i + k) > 0xBF) return 0;
  }
  return len;
}

// Windows-1252 0x80..0x9F (0 = undefined there; read as Latin-1's C1 control -> replaced).
constexpr std::array<std::uint16_t, 32> kCp1252High = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

enum class Encoding : std::uint8_t { Utf8, Latin1, Cp1252 };

// The element names the mapper knows (local names; any namespace prefix is dropped).
enum class Tag : std::uint8_t {
  Other,
  Feedback,
  Version,
  ReportMetadata,
  OrgName,
  Email,
  ExtraContactInfo,
  ReportId,
  DateRange,
  Begin,
  End,
  Error,
  PolicyPublished,
  Domain,
  Adkim,
  Aspf,
  P,
  Sp,
  Np,
  Pct,
  Fo,
  Testing,
  DiscoveryMethod,
  Record,
  Row,
  SourceIp,
  Count,
  PolicyEvaluated,
  Disposition,
  Dkim,
  Spf,
  Reason,
  Type,
  Comment,
  Identifiers,
  HeaderFrom,
  EnvelopeFrom,
  EnvelopeTo,
  AuthResults,
  Selector,
  Scope,
  Result,
  HumanResult
};

Tag tag_of(std::string_view local) {
  struct Name {
    std::string_view name;
    Tag tag;
  };
  static constexpr Name kNames[] = {
      {"feedback", Tag::Feedback},
      {"version", Tag::Version},
      {"report_metadata", Tag::ReportMetadata},
      {"org_name", Tag::OrgName},
      {"email", Tag::Email},
      {"extra_contact_info", Tag::ExtraContactInfo},
      {"report_id", Tag::ReportId},
      {"date_range", Tag::DateRange},
      {"begin", Tag::Begin},
      {"end", Tag::End},
      {"error", Tag::Error},
      {"policy_published", Tag::PolicyPublished},
      {"domain", Tag::Domain},
      {"adkim", Tag::Adkim},
      {"aspf", Tag::Aspf},
      {"p", Tag::P},
      {"sp", Tag::Sp},
      {"np", Tag::Np},
      {"pct", Tag::Pct},
      {"fo", Tag::Fo},
      {"testing", Tag::Testing},
      {"discovery_method", Tag::DiscoveryMethod},
      {"record", Tag::Record},
      {"row", Tag::Row},
      {"source_ip", Tag::SourceIp},
      {"count", Tag::Count},
      {"policy_evaluated", Tag::PolicyEvaluated},
      {"disposition", Tag::Disposition},
      {"dkim", Tag::Dkim},
      {"spf", Tag::Spf},
      {"reason", Tag::Reason},
      {"type", Tag::Type},
      {"comment", Tag::Comment},
      {"identifiers", Tag::Identifiers},
      {"identities", Tag::Identifiers},  // early drafts of the schema
      {"header_from", Tag::HeaderFrom},
      {"envelope_from", Tag::EnvelopeFrom},
      {"envelope_to", Tag::EnvelopeTo},
      {"auth_results", Tag::AuthResults},
      {"selector", Tag::Selector},
      {"scope", Tag::Scope},
      {"result", Tag::Result},
      {"human_result", Tag::HumanResult},
  };
  for (const auto& n : kNames) {
    if (n.name == local) return n.tag;
  }
  return Tag::Other;
}

// What an open element means at its place in the document (its path from <feedback>). Leaves
// collect their text; Record, Reason and Auth open an entry.
enum class Field : std::uint8_t {
  None,
  Version,
  OrgName,
  Email,
  ExtraContactInfo,
  ReportId,
  Begin,
  End,
  MetadataError,
  PolicyDomain,
  PolicyAdkim,
  PolicyAspf,
  PolicyP,
  PolicySp,
  PolicyNp,
  PolicyPct,
  PolicyFo,
  PolicyTesting,
  PolicyDiscovery,
  Record,
  SourceIp,
  Count,
  Disposition,
  EvaluatedDkim,
  EvaluatedSpf,
  Reason,
  ReasonType,
  ReasonComment,
  HeaderFrom,
  EnvelopeFrom,
  EnvelopeTo,
  Auth,
  AuthDomain,
  AuthSelector,
  AuthScope,
  AuthResult,
  AuthHumanResult
};

constexpr bool collects(Field f) {
  return f != Field::None && f != Field::Record && f != Field::Reason && f != Field::Auth;
}

constexpr std::uint64_t bit(Field f) { return std::uint64_t{1} << static_cast<unsigned>(f); }

// `path` starts at the root (<feedback>, already checked).
Field field_of(const Tag* path, std::size_t n) {
  if (n < 2) return Field::None;
  const Tag t = path[n - 1];
  switch (n) {
    case 2:
      if (t == Tag::Version) return Field::Version;
      if (t == Tag::Record) return Field::Record;
      return Field::None;
    case 3:
      if (path[1] == Tag::ReportMetadata) {
        switch (t) {
          case Tag::OrgName: return Field::OrgName;
          case Tag::Email: return Field::Email;
          case Tag::ExtraContactInfo: return Field::ExtraContactInfo;
          case Tag::ReportId: return Field::ReportId;
          case Tag::Error: return Field::MetadataError;
          default: return Field::None;
        }
      }
      if (path[1] == Tag::PolicyPublished) {
        switch (t) {
          case Tag::Domain: return Field::PolicyDomain;
          case Tag::Adkim: return Field::PolicyAdkim;
          case Tag::Aspf: return Field::PolicyAspf;
          case Tag::P: return Field::PolicyP;
          case Tag::Sp: return Field::PolicySp;
          case Tag::Np: return Field::PolicyNp;
          case Tag::Pct: return Field::PolicyPct;
          case Tag::Fo: return Field::PolicyFo;
          case Tag::Testing: return Field::PolicyTesting;
          case Tag::DiscoveryMethod: return Field::PolicyDiscovery;
          default: return Field::None;
        }
      }
      return Field::None;
    case 4:
      if (path[1] == Tag::ReportMetadata && path[2] == Tag::DateRange) {
        if (t == Tag::Begin) return Field::Begin;
        if (t == Tag::End) return Field::End;
        return Field::None;
      }
      if (path[1] != Tag::Record) return Field::None;
      if (path[2] == Tag::Row) {
        if (t == Tag::SourceIp) return Field::SourceIp;
        if (t == Tag::Count) return Field::Count;
        return Field::None;
      }
      if (path[2] == Tag::Identifiers) {
        if (t == Tag::HeaderFrom) return Field::HeaderFrom;
        if (t == Tag::EnvelopeFrom) return Field::EnvelopeFrom;
        if (t == Tag::EnvelopeTo) return Field::EnvelopeTo;
        return Field::None;
      }
      if (path[2] == Tag::AuthResults && (t == Tag::Dkim || t == Tag::Spf)) return Field::Auth;
      return Field::None;
    case 5:
      if (path[1] != Tag::Record) return Field::None;
      if (path[2] == Tag::Row && path[3] == Tag::PolicyEvaluated) {
        switch (t) {
          case Tag::Disposition: return Field::Disposition;
          case Tag::Dkim: return Field::EvaluatedDkim;
          case Tag::Spf: return Field::EvaluatedSpf;
          case Tag::Reason: return Field::Reason;
          default: return Field::None;
        }
      }
      if (path[2] == Tag::AuthResults && (path[3] == Tag::Dkim || path[3] == Tag::Spf)) {
        switch (t) {
          case Tag::Domain: return Field::AuthDomain;
          case Tag::Selector: return Field::AuthSelector;
          case Tag::Scope: return Field::AuthScope;
          case Tag::Result: return Field::AuthResult;
          case Tag::HumanResult: return Field::AuthHumanResult;
          default: return Field::None;
        }
      }
      return Field::None;
    case 6:
      if (path[1] == Tag::Record && path[2] == Tag::Row && path[3] == Tag::PolicyEvaluated &&
          path[4] == Tag::Reason) {
        if (t == Tag::Type) return Field::ReasonType;
        if (t == Tag::Comment) return Field::ReasonComment;
      }
      return Field::None;
    default: return Field::None;
  }
}

// Digits, optionally followed by a fraction that is dropped ("1538690400.0"); at most 18
// integer digits, so the value fits. Surrounding whitespace was trimmed already.
std::optional<std::int64_t> parse_number(std::string_view s, bool allow_fraction) {
  std::size_t i = 0;
  std::int64_t v = 0;
  while (i < s.size() && is_digit(s[i])) {
    if (i == 18) return std::nullopt;
    v = v * 10 + (s[i] - '0');
    ++i;
  }
  if (i == 0) return std::nullopt;
  if (i < s.size() && allow_fraction && s[i] == '.') {
    ++i;
    while (i < s.size() && is_digit(s[i])) ++i;
  }
  if (i != s.size()) return std::nullopt;
  return v;
}

class Reader {
 public:
  Reader(std::string_view xml, const XmlLimits& limits, Repairs* repairs)
      : s_(xml), limits_(limits), repairs_(repairs) {}

  Result<Report> run() {
    const bool ok = document() && finish();
    if (repairs_ != nullptr && repair_total_ > repair_listed_) {
      repairs_->push_back(
          fmt::format("{} more repairs not listed", repair_total_ - repair_listed_));
    }
    if (!ok) return fail(Errc::Invalid, error_.value_or("internal: refused without a reason"));
    return std::move(report_);
  }

 private:
  struct Frame {
    std::string_view qname;
    std::size_t at = 0;  // byte offset of its '<'
    Field field = Field::None;
    std::string text;  // leaves only
  };

  template <class... Args>
  bool refuse(fmt::format_string<Args...> f, Args&&... args) {
    if (!error_) error_ = fmt::format(f, std::forward<Args>(args)...);
    return false;
  }

  template <class... Args>
  void repair(fmt::format_string<Args...> f, Args&&... args) {
    ++repair_total_;
    if (repairs_ == nullptr || repair_listed_ >= kMaxRepairLines) return;
    repairs_->push_back(fmt::format(f, std::forward<Args>(args)...));
    ++repair_listed_;
  }

  bool starts(std::size_t i, std::string_view what) const {
    return s_.substr(std::min(i, s_.size()), what.size()) == what;
  }

  std::size_t scan_name(std::size_t i) const {
    while (i < s_.size() && is_name_char(s_[i])) ++i;
    return i;
  }

  Frame* top() { return depth_ > 0 ? &frames_[depth_ - 1] : nullptr; }

  // ---- tokenizer ----------------------------------------------------------------------------

  bool document() {
    if (s_.size() > limits_.max_bytes) {
      return refuse("document is {} bytes (limit {})", s_.size(), limits_.max_bytes);
    }
    if (s_.empty()) return refuse("empty document");
    if (starts(0, "\xFE\xFF") || starts(0, "\xFF\xFE") ||
        (s_.size() >= 2 && (s_[0] == '\0' || s_[1] == '\0'))) {
      return refuse("utf-16 documents are not supported");
    }
    if (starts(0, "\xEF\xBB\xBF")) pos_ = 3;  // UTF-8 byte order mark
    while (pos_ < s_.size() && !stop_) {
      if (depth_ > 0) {
        if (!(s_[pos_] == '<' ? markup() : text())) return false;
        continue;
      }
      // Outside the root element: the prolog, or what follows the root.
      if (is_space(s_[pos_])) {
        ++pos_;
      } else if (starts(pos_, "<?")) {
        if (!processing_instruction()) return false;
      } else if (starts(pos_, "<!--")) {
        if (!comment()) return false;
      } else if (root_done_) {
        if (!trailing()) return false;
      } else if (starts(pos_, "<!DOCTYPE")) {
        if (!doctype()) return false;
      } else if (s_[pos_] == '<' && pos_ + 1 < s_.size() && is_name_start(s_[pos_ + 1])) {
        if (!start_tag()) return false;
      } else {
        return refuse("text before the root element at byte {}", pos_);
      }
    }
    if (depth_ > 0) return end_of_document();
    if (!root_done_) return refuse("no root element");
    return true;
  }

  // At '<' inside the root element.
  bool markup() {
    if (starts(pos_, "<!--")) return comment();
    if (starts(pos_, "<![CDATA[")) return cdata();
    if (starts(pos_, "<?")) return processing_instruction();
    if (starts(pos_, "<!DOCTYPE"))
      return refuse("DOCTYPE inside the root element at byte {}", pos_);
    if (pos_ + 1 < s_.size() && s_[pos_ + 1] == '/') return end_tag();
    if (pos_ + 1 < s_.size() && is_name_start(s_[pos_ + 1])) return start_tag();
    return literal_lt(pos_);
  }

  // A '<' that starts no markup ("<bad-xml@example.net>", "a < b"): unambiguous as text.
  bool literal_lt(std::size_t at) {
    if (depth_ == 0) {
      if (root_done_) return trailing();
      return refuse("text before the root element at byte {}", at);
    }
    Frame& f = *top();
    if (collects(f.field)) {
      repair("unescaped '<' at byte {} kept as text", at);
      f.text += '<';
    }
    pos_ = at + 1;
    return true;
  }

  bool text() {
    auto end = s_.find('<', pos_);
    if (end == std::string_view::npos) end = s_.size();
    Frame& f = *top();
    if (collects(f.field)) {
      decode(f.text, pos_, end, true);
      if (!check_text(f)) return false;
    }
    pos_ = end;
    return true;
  }

  bool check_text(const Frame& f) {
    if (f.text.size() <= limits_.max_text) return true;
    return refuse("text of <{}> at byte {} is longer than {} bytes", f.qname, f.at,
                  limits_.max_text);
  }

  // Appends s_[b, e) as character data: entities (when `entities`), UTF-8 checked, or Latin-1 /
  // Windows-1252 transcoded.
  void decode(std::string& out, std::size_t b, std::size_t e, bool entities) {
    std::size_t i = b;
    while (i < e) {
      std::size_t run = i;
      while (run < e) {
        const char c = s_[run];
        const auto u = static_cast<unsigned char>(c);
        if ((u >= 0x20 && u < 0x80 && c != '&') || c == '\t' || c == '\n' || c == '\r') {
          ++run;
        } else {
          break;
        }
      }
      out.append(s_.data() + i, run - i);
      i = run;
      if (i >= e) break;
      const auto u = static_cast<unsigned char>(s_[i]);
      if (s_[i] == '&') {
        if (entities) {
          i = entity(out, i, e);
        } else {
          out += '&';
          ++i;
        }
      } else if (u < 0x80) {
        repair("control character at byte {} replaced", i);
        out += kReplacement;
        ++i;
      } else if (encoding_ != Encoding::Utf8) {
        std::uint32_t cp = u;
        if (encoding_ == Encoding::Cp1252 && u < 0xA0) cp = kCp1252High[u - 0x80];
        if (cp >= 0x80 && cp < 0xA0) cp = 0;  // C1 controls
        if (cp == 0) {
          repair("control character at byte {} replaced", i);
          out += kReplacement;
        } else {
          append_utf8(out, cp);
        }
        ++i;
      } else if (const auto len = utf8_length(s_.substr(0, e), i); len > 0) {
        out.append(s_.data() + i, len);
        i += len;
      } else {
        repair("invalid UTF-8 at byte {} replaced", i);
        out += kReplacement;
        ++i;
      }
    }
  }

  // At '&' in text ending at e; returns where decoding continues. XML 1.0 §4.6: the five
  // predefined entities and character references are all there is; nothing else is expanded.
  std::size_t entity(std::string& out, std::size_t i, std::size_t e) {
    std::size_t j = i + 1;
    if (j < e && s_[j] == '#') {
      ++j;
      const bool hex = j < e && s_[j] == 'x';
      if (hex) ++j;
      const std::size_t digits = j;
      std::uint32_t cp = 0;
      while (j < e && j - digits < 12) {
        const char c = s_[j];
        std::uint32_t v = 0;
        if (is_digit(c)) {
          v = static_cast<std::uint32_t>(c - '0');
        } else if (hex && c >= 'a' && c <= 'f') {
          v = static_cast<std::uint32_t>(c - 'a' + 10);
        } else if (hex && c >= 'A' && c <= 'F') {
          v = static_cast<std::uint32_t>(c - 'A' + 10);
        } else {
          break;
        }
        cp = cp > 0x10FFFF ? cp : cp * (hex ? 16 : 10) + v;  // saturates past the last code point
        ++j;
      }
      if (j > digits && j < e && s_[j] == ';') {
        if (is_xml_char(cp)) {
          append_utf8(out, cp);
        } else {
          repair("invalid character reference {:?} at byte {} replaced", s_.substr(i, j + 1 - i),
                 i);
          out += kReplacement;
        }
        return j + 1;
      }
    } else if (j < e && is_name_start(s_[j])) {
      while (j < e && j - i <= 32 && is_name_char(s_[j])) ++j;
      if (j < e && s_[j] == ';') {
        const auto name = s_.substr(i + 1, j - i - 1);
        if (name == "lt") {
          out += '<';
        } else if (name == "gt") {
          out += '>';
        } else if (name == "amp") {
          out += '&';
        } else if (name == "quot") {
          out += '"';
        } else if (name == "apos") {
          out += '\'';
        } else {
          repair("unknown entity {:?} at byte {} kept as text", s_.substr(i, j + 1 - i), i);
          out += '&';
          decode(out, i + 1, j + 1, false);  // the name, UTF-8 checked like any text
        }
        return j + 1;
      }
    }
    repair("unescaped '&' at byte {} kept as text", i);
    out += '&';
    return i + 1;
  }

  bool comment() {
    const auto end = s_.find("-->", pos_ + 4);
    if (end == std::string_view::npos) {
      if (root_done_) return trailing();
      return refuse("unterminated comment at byte {}", pos_);
    }
    pos_ = end + 3;
    return true;
  }

  bool cdata() {
    const std::size_t b = pos_ + 9;
    const auto end = s_.find("]]>", b);
    if (end == std::string_view::npos) return refuse("unterminated CDATA section at byte {}", pos_);
    Frame& f = *top();
    if (collects(f.field)) {
      decode(f.text, b, end, false);
      if (!check_text(f)) return false;
    }
    pos_ = end + 3;
    return true;
  }

  bool processing_instruction() {
    const auto end = s_.find("?>", pos_ + 2);
    if (end == std::string_view::npos) {
      if (root_done_) return trailing();
      return refuse("unterminated processing instruction at byte {}", pos_);
    }
    const auto target = s_.substr(pos_ + 2, scan_name(pos_ + 2) - (pos_ + 2));
    if (core::iequals(target, "xml")) {
      if (root_done_) return refuse("another document follows </{}> at byte {}", root_, pos_);
      if (!root_seen_) declaration(s_.substr(pos_ + 5, end - (pos_ + 5)));
    }
    pos_ = end + 2;
    return true;
  }

  // <?xml version="1.0" encoding="..."?>: only the encoding matters. UTF-8 and its ASCII subset
  // are read as they are, Latin-1 and Windows-1252 transcoded; anything else is read as UTF-8
  // (DMARC reports are ASCII but for the odd comment), which is a repair.
  void declaration(std::string_view attrs) {
    auto k = attrs.find("encoding");
    if (k == std::string_view::npos) return;
    k += 8;
    while (k < attrs.size() && (is_space(attrs[k]) || attrs[k] == '=')) ++k;
    if (k >= attrs.size() || (attrs[k] != '"' && attrs[k] != '\'')) return;
    const auto close = attrs.find(attrs[k], k + 1);
    if (close == std::string_view::npos) return;
    const auto name = core::ascii_lower(trim(attrs.substr(k + 1, close - k - 1)));
    if (name == "utf-8" || name == "utf8" || name == "us-ascii" || name == "ascii") return;
    if (name == "iso-8859-1" || name == "latin1" || name == "latin-1" || name == "iso8859-1" ||
        name == "l1") {
      encoding_ = Encoding::Latin1;
    } else if (name == "windows-1252" || name == "cp1252") {
      encoding_ = Encoding::Cp1252;
    } else {
      repair("encoding {:?} is not supported, read as UTF-8", name);
    }
  }

  // <!DOCTYPE ...>, before the root only. Skipped, internal subset and all, unless it declares
  // an entity: then the document is refused, because those entities would be needed to read it
  // and they are never expanded (billion laughs, XXE). Nothing is ever fetched.
  bool doctype() {
    const std::size_t at = pos_;
    if (doctype_seen_) return refuse("second DOCTYPE at byte {}", at);
    doctype_seen_ = true;
    char quote = 0;
    bool subset = false;
    for (std::size_t i = at + 9; i < s_.size(); ++i) {
      const char c = s_[i];
      if (quote != 0) {
        if (c == quote) quote = 0;
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (subset && starts(i, "<!--")) {
        const auto end = s_.find("-->", i + 4);
        if (end == std::string_view::npos) return refuse("unterminated comment at byte {}", i);
        i = end + 2;
      } else if (subset && starts(i, "<!ENTITY")) {
        return refuse("DTD with entity declarations refused (entities are never expanded)");
      } else if (c == '[' && !subset) {
        subset = true;
      } else if (c == ']' && subset) {
        subset = false;
      } else if (c == '>' && !subset) {
        pos_ = i + 1;
        return true;
      }
    }
    return refuse("unterminated DOCTYPE at byte {}", at);
  }

  // At '<' followed by a name start character.
  bool start_tag() {
    const std::size_t at = pos_;
    const std::size_t name_end = scan_name(at + 1);
    if (name_end >= s_.size()) return refuse("truncated tag at byte {}", at);
    const char after = s_[name_end];
    if (!is_space(after) && after != '/' && after != '>') return literal_lt(at);
    const auto qname = s_.substr(at + 1, name_end - at - 1);
    bool dmarcbis = false;
    bool empty = false;
    std::size_t i = name_end;
    for (;;) {
      while (i < s_.size() && is_space(s_[i])) ++i;
      if (i >= s_.size()) return refuse("truncated tag at byte {}", at);
      if (s_[i] == '>') {
        ++i;
        break;
      }
      if (s_[i] == '/') {
        if (i + 1 >= s_.size()) return refuse("truncated tag at byte {}", at);
        if (s_[i + 1] != '>') return refuse("malformed attribute in <{}> at byte {}", qname, i);
        empty = true;
        i += 2;
        break;
      }
      if (!is_name_start(s_[i])) return refuse("malformed attribute in <{}> at byte {}", qname, i);
      const std::size_t a = i;
      i = scan_name(i);
      const auto attr = s_.substr(a, i - a);
      while (i < s_.size() && is_space(s_[i])) ++i;
      if (i >= s_.size()) return refuse("truncated tag at byte {}", at);
      if (s_[i] != '=') return refuse("malformed attribute in <{}> at byte {}", qname, a);
      ++i;
      while (i < s_.size() && is_space(s_[i])) ++i;
      if (i >= s_.size()) return refuse("truncated tag at byte {}", at);
      const char quote = s_[i];
      if (quote != '"' && quote != '\'') {
        return refuse("malformed attribute in <{}> at byte {}", qname, a);
      }
      const auto close = s_.find(quote, i + 1);
      if (close == std::string_view::npos) return refuse("truncated tag at byte {}", at);
      const auto value = trim(s_.substr(i + 1, close - i - 1));
      i = close + 1;
      // RFC 7489 appendix C and DMARCbis differ in their namespace only (and DMARCbis' new
      // elements); either may be the default namespace or bound to any prefix.
      if ((attr == "xmlns" || attr.substr(0, 6) == "xmlns:") && value == kDmarcbisNamespace) {
        dmarcbis = true;
      }
    }
    pos_ = i;
    if (!open(qname, at)) return false;
    if (dmarcbis) report_.dmarcbis = true;
    return !empty || close_top();
  }

  // At "</".
  bool end_tag() {
    const std::size_t at = pos_;
    if (at + 2 >= s_.size()) return refuse("truncated tag at byte {}", at);
    if (!is_name_start(s_[at + 2])) return literal_lt(at);
    const std::size_t name_end = scan_name(at + 2);
    std::size_t i = name_end;
    while (i < s_.size() && is_space(s_[i])) ++i;
    if (i >= s_.size()) return refuse("truncated tag at byte {}", at);
    if (s_[i] != '>') {
      if (i == name_end) return literal_lt(at);  // "a</b@c": no tag
      return refuse("malformed end tag at byte {}", at);
    }
    pos_ = i + 1;
    const auto qname = s_.substr(at + 2, name_end - at - 2);
    // The innermost open element of that name; anything open inside it was left unclosed.
    // The stack is at most max_depth deep, so this stays linear in the input.
    std::size_t k = depth_;
    while (k > 0 && frames_[k - 1].qname != qname) --k;
    if (k == 0) {
      repair("stray </{}> at byte {} ignored", qname, at);
      return true;
    }
    while (depth_ > k) {
      const Frame& f = *top();
      repair("unclosed <{}> at byte {} closed by </{}> at byte {}", f.qname, f.at, qname, at);
      if (!close_top()) return false;
    }
    return close_top();
  }

  // After the root element: whitespace, comments and processing instructions are fine; another
  // document is refused (which one would be meant?); anything else is garbage, e.g. what follows
  // a gzip member, and ignored.
  bool trailing() {
    const bool root_tag =
        starts(pos_, "<") &&
        local_name(s_.substr(pos_ + 1, scan_name(pos_ + 1) - (pos_ + 1))) == "feedback";
    if (starts(pos_, "<!DOCTYPE") || root_tag) {
      return refuse("another document follows </{}> at byte {}", root_, pos_);
    }
    repair("trailing bytes after </{}> at byte {} ignored", root_, pos_);
    stop_ = true;
    return true;
  }

  bool end_of_document() {
    for (std::size_t k = 0; k < depth_; ++k) {
      if (frames_[k].field == Field::Record) {
        return refuse("document ends inside <{}> at byte {} (truncated)", frames_[k].qname,
                      frames_[k].at);
      }
    }
    while (depth_ > 0) {
      repair("unclosed <{}> at byte {} closed at end of document", top()->qname, top()->at);
      if (!close_top()) return false;
    }
    return true;
  }

  bool open(std::string_view qname, std::size_t at) {
    if (depth_ >= limits_.max_depth) {
      return refuse("elements nested deeper than {} at byte {}", limits_.max_depth, at);
    }
    if (++elements_ > limits_.max_elements) {
      return refuse("more than {} elements", limits_.max_elements);
    }
    const Tag tag = tag_of(local_name(qname));
    if (depth_ == 0) {
      root_seen_ = true;
      root_ = qname;
      // Some reporters wrap the report in another element (IKEA: an unclosed <xs:schema>).
      // With <feedback> as the wrapper's first child that is still unambiguous.
      base_ = tag == Tag::Feedback ? 0 : 1;
    } else if (depth_ == 1 && base_ == 1) {
      if (tag == Tag::Feedback && feedback_seen_) {
        return refuse("another <{}> at byte {} in <{}>", qname, at, root_);
      }
      if (tag != Tag::Feedback && !feedback_seen_) {
        return refuse("not a DMARC aggregate report: root element <{}>", root_);
      }
      if (tag == Tag::Feedback) {
        repair("report wrapped in <{}> at byte {} unwrapped", root_, frames_[0].at);
      }
    }
    if (depth_ == base_ && tag == Tag::Feedback) feedback_seen_ = true;
    if (tag == Tag::Record && in_record()) {
      return refuse("<{}> inside <record> at byte {} (unclosed <record>?)", qname, at);
    }
    if (frames_.size() <= depth_) frames_.emplace_back();
    if (path_.size() <= depth_) path_.emplace_back();
    path_[depth_] = tag;
    Frame& f = frames_[depth_];
    ++depth_;
    f.qname = qname;
    f.at = at;
    f.text.clear();
    // Only inside <feedback>: whatever else a wrapper holds is not the report.
    f.field = depth_ > base_ && path_[base_] == Tag::Feedback
                  ? field_of(path_.data() + base_, depth_ - base_)
                  : Field::None;
    return on_open(f);
  }

  bool close_top() {
    const Frame& f = *top();
    const bool ok = on_close(f);
    --depth_;
    if (depth_ == 0) root_done_ = true;
    return ok;
  }

  // ---- mapping ------------------------------------------------------------------------------

  Record& record() { return report_.records.back(); }
  bool in_record() const { return depth_ >= base_ + 2 && path_[base_ + 1] == Tag::Record; }
  // "record 3: " inside a record (errors only: formatting it costs).
  std::string context(bool in_record) const {
    return in_record ? fmt::format("record {}: ", report_.records.size()) : std::string();
  }

  bool on_open(const Frame& f) {
    switch (f.field) {
      case Field::Record:
        if (report_.records.size() >= limits_.max_records) {
          return refuse("more than {} records", limits_.max_records);
        }
        report_.records.emplace_back();
        record_seen_ = 0;
        return true;
      case Field::Reason:
        record().reasons.emplace_back();
        entry_seen_ = 0;
        return true;
      case Field::Auth:
        record().auth.emplace_back();
        record().auth.back().method = path_[depth_ - 1] == Tag::Dkim ? "dkim" : "spf";
        entry_seen_ = 0;
        return true;
      default: return true;
    }
  }

  // Sets a single-valued field. A repeated element with the same value is harmless; with
  // another value the report contradicts itself and is refused.
  bool set(std::string& dst, std::string value, Field f, std::uint64_t& seen, bool in_record,
           std::string_view qname) {
    if ((seen & bit(f)) != 0) {
      if (dst == value) return true;
      return refuse("{}two different <{}> values ({:?}, {:?})", context(in_record),
                    local_name(qname), dst, value);
    }
    seen |= bit(f);
    dst = std::move(value);
    return true;
  }

  bool set_number(std::int64_t& dst, std::int64_t value, Field f, std::uint64_t& seen,
                  bool in_record, std::string_view qname) {
    if ((seen & bit(f)) != 0) {
      if (dst == value) return true;
      return refuse("{}two different <{}> values ({}, {})", context(in_record), local_name(qname),
                    dst, value);
    }
    seen |= bit(f);
    dst = value;
    return true;
  }

  bool on_close(const Frame& f) {
    const std::string_view v = trim(f.text);
    const bool in_record = this->in_record();
    const auto keep = [&](std::string& dst, std::uint64_t& seen) {
      return v.empty() || set(dst, std::string(v), f.field, seen, in_record, f.qname);
    };
    const auto lower = [&](std::string& dst, std::uint64_t& seen) {
      return v.empty() || set(dst, core::ascii_lower(v), f.field, seen, in_record, f.qname);
    };
    auto& pol = report_.policy;
    switch (f.field) {
      case Field::None: return true;
      case Field::Version: return keep(report_.version, report_seen_);
      case Field::OrgName:
        // Present but empty is schema-valid (xs:string) and seen in the wild: accepted.
        org_name_seen_ = true;
        return keep(report_.org_name, report_seen_);
      case Field::Email: return keep(report_.email, report_seen_);
      case Field::ExtraContactInfo: return keep(report_.extra_contact_info, report_seen_);
      case Field::ReportId: return keep(report_.report_id, report_seen_);
      case Field::MetadataError:
        if (!v.empty()) report_.errors.emplace_back(v);
        return true;
      case Field::Begin:
      case Field::End: {
        if (v.empty()) return true;
        // Unix seconds; some reporters write "1538690400.0" (RFC 7489 appendix C: xs:integer).
        const auto t = parse_number(v, true);
        if (!t) return refuse("<{}> {:?} is not a unix time", local_name(f.qname), v);
        return set_number(f.field == Field::Begin ? report_.begin : report_.end, *t, f.field,
                          report_seen_, false, f.qname);
      }
      case Field::PolicyDomain: return keep(pol.domain, report_seen_);
      case Field::PolicyAdkim: return lower(pol.adkim, report_seen_);
      case Field::PolicyAspf: return lower(pol.aspf, report_seen_);
      case Field::PolicyP: return lower(pol.p, report_seen_);
      case Field::PolicySp: return lower(pol.sp, report_seen_);
      case Field::PolicyNp: return lower(pol.np, report_seen_);
      case Field::PolicyFo: return keep(pol.fo, report_seen_);
      case Field::PolicyTesting: return lower(pol.testing, report_seen_);
      case Field::PolicyDiscovery: return lower(pol.discovery_method, report_seen_);
      case Field::PolicyPct: {
        if (v.empty()) return true;
        // Optional and informative only: a bad value is dropped, not worth the report.
        const auto pct = parse_number(v, false);
        if (!pct || *pct > 100) {
          repair("<pct> {:?} is not a number from 0 to 100, ignored", v);
          return true;
        }
        std::int64_t n = pol.pct.value_or(*pct);
        if (!set_number(n, *pct, f.field, report_seen_, false, f.qname)) return false;
        pol.pct = n;
        return true;
      }
      case Field::Record: return end_record();
      case Field::SourceIp: return keep(record().source_ip, record_seen_);
      case Field::Count: {
        if (v.empty()) return true;
        const auto n = parse_number(v, false);
        if (!n) return refuse("{}<count> {:?} is not a number", context(true), v);
        if (*n > kMaxCount) return refuse("{}<count> {:?} is out of range", context(true), v);
        return set_number(record().count, *n, f.field, record_seen_, true, f.qname);
      }
      case Field::Disposition: return lower(record().disposition, record_seen_);
      case Field::EvaluatedDkim: return lower(record().dkim, record_seen_);
      case Field::EvaluatedSpf: return lower(record().spf, record_seen_);
      case Field::HeaderFrom: return keep(record().header_from, record_seen_);
      case Field::EnvelopeFrom: return keep(record().envelope_from, record_seen_);
      case Field::EnvelopeTo: return keep(record().envelope_to, record_seen_);
      case Field::Reason: {
        // <reason><type></type><comment></comment></reason> says nothing: dropped.
        const Reason& r = record().reasons.back();
        if (r.type.empty() && r.comment.empty()) record().reasons.pop_back();
        return true;
      }
      case Field::ReasonType: return lower(record().reasons.back().type, entry_seen_);
      case Field::ReasonComment: return keep(record().reasons.back().comment, entry_seen_);
      case Field::Auth: {
        const AuthResult& a = record().auth.back();
        if (a.domain.empty() && a.selector.empty() && a.scope.empty() && a.result.empty() &&
            a.human_result.empty()) {
          record().auth.pop_back();
        }
        return true;
      }
      case Field::AuthDomain: return keep(record().auth.back().domain, entry_seen_);
      case Field::AuthSelector: return keep(record().auth.back().selector, entry_seen_);
      case Field::AuthScope: return lower(record().auth.back().scope, entry_seen_);
      case Field::AuthResult: return lower(record().auth.back().result, entry_seen_);
      case Field::AuthHumanResult: return keep(record().auth.back().human_result, entry_seen_);
    }
    return true;
  }

  bool end_record() {
    if (record().source_ip.empty()) return refuse("{}no <source_ip>", context(true));
    if ((record_seen_ & bit(Field::Count)) == 0) return refuse("{}no <count>", context(true));
    return true;
  }

  bool finish() {
    if (!feedback_seen_) return refuse("not a DMARC aggregate report: root element <{}>", root_);
    if (!org_name_seen_) return refuse("no <org_name>");
    if (report_.report_id.empty()) return refuse("no <report_id>");
    if ((report_seen_ & bit(Field::Begin)) == 0) return refuse("no <begin> in <date_range>");
    if ((report_seen_ & bit(Field::End)) == 0) return refuse("no <end> in <date_range>");
    if (report_.policy.domain.empty()) return refuse("no <domain> in <policy_published>");
    return true;
  }

  std::string_view s_;
  const XmlLimits& limits_;
  Repairs* repairs_;
  std::size_t repair_total_ = 0;
  std::size_t repair_listed_ = 0;
  std::optional<std::string> error_;

  std::size_t pos_ = 0;
  Encoding encoding_ = Encoding::Utf8;
  bool doctype_seen_ = false;
  bool root_seen_ = false;
  bool root_done_ = false;
  bool feedback_seen_ = false;
  bool org_name_seen_ = false;  // the element, empty or not
  std::size_t base_ = 0;        // depth of <feedback>: 1 when wrapped
  bool stop_ = false;
  std::string_view root_;
  std::vector<Frame> frames_;  // [0, depth_) are open; the rest keep their buffers for reuse
  std::vector<Tag> path_;
  std::size_t depth_ = 0;
  std::size_t elements_ = 0;

  Report report_;
  std::uint64_t report_seen_ = 0;  // single-valued report fields set so far
  std::uint64_t record_seen_ = 0;  // ... of the current record
  std::uint64_t entry_seen_ = 0;   // ... of the current reason or auth result
};

}  // namespace

Result<core::dmarc::Report> parse_report(std::string_view xml, const XmlLimits& limits,
                                         Repairs* repairs) {
  return Reader(xml, limits, repairs).run();
}

}  // namespace rampart::dmarc
