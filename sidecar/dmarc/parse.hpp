// DMARC aggregate report XML -> core::dmarc::Report (issue 6 point 2): a small, bounded XML reader
// of our own (no DTD, no entity is ever fetched or expanded) and the mapping of both schemas onto
// the model. Pure: bytes in, a report or the reason it was refused out; never throws.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/dmarc.hpp"
#include "core/result.hpp"

namespace rampart::dmarc {

struct XmlLimits {
  std::size_t max_bytes = 200u << 20;  // the document
  std::size_t max_depth = 32;          // element nesting
  std::size_t max_elements = 5000000;  // every element
  std::size_t max_records = 1000000;   // <record> elements
  std::size_t max_text = 64u << 10;    // one field's text (not whitespace between elements)
};

// What parse_report() did about damage it could repair unambiguously, one line each with the
// byte offset: "unescaped '<' at byte 112 kept as text" (a '<' that starts no tag, e.g.
// "<bad@example.net>"), "unescaped '&' ...", "unknown entity \"&eacute;\" ... kept as text",
// "invalid character reference \"&#0;\" ... replaced", "invalid UTF-8 at byte 99 replaced" and
// "control character ... replaced" (by U+FFFD), "unclosed <br> at byte 7 closed by </email> at
// byte 9", "stray </b> at byte 7 ignored", "unclosed <feedback> at byte 40 closed at end of
// document", "trailing bytes after </feedback> at byte 900 ignored", "report wrapped in
// <xs:schema> at byte 22 unwrapped", "<pct> \"all\" is not a number from 0 to 100, ignored",
// "encoding \"koi8-r\" is not supported, read as UTF-8". At most 100 lines, then one
// "N more repairs not listed". (Latin-1 and Windows-1252 declared encodings are transcoded.)
using Repairs = std::vector<std::string>;

// The report in `xml`. Errors are Errc::Invalid with the reason, e.g. "not a DMARC aggregate
// report: root element <html>", "DTD with entity declarations refused (entities are never
// expanded)", "no <report_id>", "record 3: <count> \"x\" is not a number", "more than 1000000
// records", "document ends inside <record> at byte 812 (truncated)", "another document follows
// </feedback> at byte 900", "record 2: two different <count> values (3, 4)".
// Namespaces are accepted (any prefix, RFC 7489 or DMARCbis) or absent; <version> is not trusted
// to say which schema (Report::dmarcbis says whether the DMARCbis namespace was declared).
// Missing optional elements are fine; a missing report_metadata/org_name (present but empty is
// accepted: schema-valid and seen in the wild), an empty or missing report_id, date_range begin or
// end, policy_published/domain, or record/row/source_ip or count is an error. Linear time in the
// input; never throws.
[[nodiscard]] Result<core::dmarc::Report> parse_report(std::string_view xml,
                                                       const XmlLimits& limits = {},
                                                       Repairs* repairs = nullptr);

}  // namespace rampart::dmarc
