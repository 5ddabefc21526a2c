// Finding the aggregate reports inside what arrives (issue 6 points 1 and 5): a bare XML file, a
// gzip (also concatenated members, nested), a zip (stored or deflated entries), or an RFC 5322
// message whose MIME tree holds them as attachments or as the body, in any transfer encoding
// (base64, quoted-printable, 7bit/8bit/binary) and under any declared type: each part is taken by
// its content (magic bytes, then "<?xml" / "<feedback"), never by its Content-Type or name.
// Bounded everywhere; a bomb is refused with the reason, and one bad part never hides the others.
// Pure (zlib in memory); never throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rampart::dmarc {

// Every bound refuses the thing that passes it, with the limit's name in the reason, and
// unpacking goes on with the rest of the input.
struct UnpackLimits {
  std::size_t max_compressed = 10u << 20;     // one gzip stream or zip archive, as it arrives
  std::size_t max_decompressed = 200u << 20;  // what one gzip stream or zip entry may inflate to;
                                              // a zip entry declaring more is never inflated
  std::size_t max_total = 400u << 20;         // all inflated (and stored zip) bytes of one input
  int max_depth = 4;                          // containers (gzip, zip, message) inside each other
  std::size_t max_zip_entries = 64;           // entries in one zip; more refuses the whole archive
  std::size_t max_parts = 256;                // MIME parts walked in one input (all levels, nested
                                              // messages included); the rest are skipped
  std::size_t max_header_bytes = 256u << 10;  // one message's or part's header section
};
// Not configurable: multipart nested in multipart more than 16 deep is refused.

// One XML document found, and where: the caller's name, then one " > " step per level, e.g.
// "report.xml", "x.zip > a.xml", "r.xml.gz > r.xml" (the gzip FNAME, when there is one),
// "INBOX uid 42 > part 2 (application/gzip) > report.xml.gz" (MIME section number as in IMAP,
// declared type, file name when given), "m > part 3 (message/rfc822) > part 2 (...)".
// `xml` is the decompressed, decoded document.
struct Found {
  std::string where;
  std::string xml;
};

// Something that could not be unpacked, and why; `where` as in Found, the reason lower-case and
// led by the layer that refused: "gzip: inflates past 200 MiB (limit max_decompressed)",
// "zip: 10000 entries (limit max_zip_entries 64)", "base64: invalid character 0x21 at byte 80",
// "mime: more than 256 parts (limit max_parts); the rest skipped", "empty".
// Garbage after the last gzip member is refused ("gzip: 9 bytes of trailing garbage after member
// 1 ignored") while the members' content is kept and unpacked; NUL or white-space padding there
// is silently ignored. Parts that are noise (a text/plain cover note, HTML, images, signatures,
// quoted ARF headers) are skipped without a Refused; a part declared as a report (gzip, zip,
// xml or octet-stream type, an attachment, a .xml/.gz/.zip name) that holds nothing usable is
// refused.
struct Refused {
  std::string where;
  std::string reason;
};

struct Unpacked {
  bool message = false;          // the input was an RFC 5322 message
  std::string subject;           // its Subject (messages only), RFC 2047 encoded-words decoded
                                 // (utf-8, us-ascii, iso-8859-1/15, windows-1252; others kept)
  std::string message_id;        // its Message-ID (messages only), as written
  std::vector<Found> documents;  // XML documents (not yet known to be DMARC reports)
  std::vector<Refused> refused;
  std::size_t parts = 0;  // MIME parts walked (messages, nested ones included)
};

// `name` is what the caller calls the input (a path, "INBOX uid 42"), used in `where`.
[[nodiscard]] Unpacked unpack(std::string_view bytes, std::string_view name,
                              const UnpackLimits& limits = {});

// What `bytes` starts as, for errors and tests: "gzip", "zip", "xml", "message", "empty",
// "unknown".
std::string_view sniff(std::string_view bytes);

}  // namespace rampart::dmarc
