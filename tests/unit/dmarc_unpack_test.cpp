// Unit tests for dmarc::unpack() and sniff(): every wrapper a report arrives in, built here in
// memory (zlib for gzip and deflate, a tiny zip writer, hand-made MIME), and every bound. The
// last case reads the shared corpus in place when it is there.
#include "dmarc/unpack.hpp"

#include <zlib.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using rampart::dmarc::sniff;
using rampart::dmarc::unpack;
using rampart::dmarc::Unpacked;
using rampart::dmarc::UnpackLimits;

const std::string kXml =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n  <report_metadata>\n"
    "    <org_name>example.net</org_name>\n    <report_id>42</report_id>\n"
    "  </report_metadata>\n</feedback>\n";
const std::string kXml2 =
    "<feedback><report_metadata><report_id>2</report_id>"
    "</report_metadata></feedback>";

// zlib deflate with `window_bits` (31 = gzip, -15 = raw); an optional gzip FNAME.
std::string deflate_with(std::string_view data, int window_bits, const char* fname = nullptr) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 9, Z_DEFLATED, window_bits, 9, Z_DEFAULT_STRATEGY) == Z_OK);
  gz_header head{};
  if (fname != nullptr) {
    head.name = reinterpret_cast<Bytef*>(const_cast<char*>(fname));
    REQUIRE(deflateSetHeader(&zs, &head) == Z_OK);
  }
  std::string out(deflateBound(&zs, static_cast<uLong>(data.size())) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string gz(std::string_view data, const char* fname = nullptr) {
  return deflate_with(data, 31, fname);
}

void put16(std::string& s, std::uint32_t v) {
  s += static_cast<char>(v & 0xff);
  s += static_cast<char>((v >> 8) & 0xff);
}
void put32(std::string& s, std::uint32_t v) {
  put16(s, v & 0xffff);
  put16(s, v >> 16);
}

// A zip entry; the sizes, flags and crc can be overridden to forge archives.
struct ZipEntry {
  std::string name;
  std::string data;
  bool deflated = true;
  std::optional<std::uint32_t> usize{};
  std::uint32_t flags = 0;
};

std::string make_zip(const std::vector<ZipEntry>& entries,
                     std::optional<std::uint16_t> count = {}) {
  std::string out;
  std::string cd;
  for (const auto& e : entries) {
    const std::string body = e.deflated ? deflate_with(e.data, -15) : e.data;
    const auto crc = static_cast<std::uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(e.data.data()), static_cast<uInt>(e.data.size())));
    const std::uint32_t usize = e.usize.value_or(static_cast<std::uint32_t>(e.data.size()));
    const auto offset = static_cast<std::uint32_t>(out.size());
    out += "PK\x03\x04";
    put16(out, 20);
    put16(out, e.flags);
    put16(out, e.deflated ? 8 : 0);
    put32(out, 0);  // time, date
    put32(out, crc);
    put32(out, static_cast<std::uint32_t>(body.size()));
    put32(out, usize);
    put16(out, static_cast<std::uint32_t>(e.name.size()));
    put16(out, 0);
    out += e.name;
    out += body;
    cd += "PK\x01\x02";
    put16(cd, 20);
    put16(cd, 20);
    put16(cd, e.flags);
    put16(cd, e.deflated ? 8 : 0);
    put32(cd, 0);
    put32(cd, crc);
    put32(cd, static_cast<std::uint32_t>(body.size()));
    put32(cd, usize);
    put16(cd, static_cast<std::uint32_t>(e.name.size()));
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, 0);
    put32(cd, 0);
    put32(cd, offset);
    cd += e.name;
  }
  const auto cd_offset = static_cast<std::uint32_t>(out.size());
  out += cd;
  out += "PK\x05\x06";
  put16(out, 0);
  put16(out, 0);
  const std::uint16_t n = count.value_or(static_cast<std::uint16_t>(entries.size()));
  put16(out, n);
  put16(out, n);
  put32(out, static_cast<std::uint32_t>(cd.size()));
  put32(out, cd_offset);
  put16(out, 0);
  return out;
}

std::string base64(std::string_view data, std::size_t line = 76, bool pad = true,
                   const char* eol = "\r\n") {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string flat;
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const std::uint32_t v = (static_cast<std::uint8_t>(data[i]) << 16) |
                            (static_cast<std::uint8_t>(data[i + 1]) << 8) |
                            static_cast<std::uint8_t>(data[i + 2]);
    for (int k = 3; k >= 0; --k) flat += kAlphabet[(v >> (6 * k)) & 63];
  }
  if (i < data.size()) {
    std::uint32_t v = static_cast<std::uint8_t>(data[i]) << 16;
    if (i + 1 < data.size()) v |= static_cast<std::uint8_t>(data[i + 1]) << 8;
    flat += kAlphabet[(v >> 18) & 63];
    flat += kAlphabet[(v >> 12) & 63];
    if (i + 1 < data.size()) flat += kAlphabet[(v >> 6) & 63];
    if (pad) flat += i + 1 < data.size() ? "=" : "==";
  }
  std::string out;
  for (std::size_t at = 0; at < flat.size(); at += line) {
    out += flat.substr(at, line);
    out += eol;
  }
  return out;
}

// Quoted-printable with short soft-broken lines and '=' encoded.
std::string qp(std::string_view data) {
  std::string out;
  std::size_t col = 0;
  for (char c : data) {
    std::string piece;
    if (c == '\n') {
      out += "\r\n";
      col = 0;
      continue;
    }
    if (c == '=' || c == '"') {
      static const char* kHex = "0123456789ABCDEF";
      piece = {'=', kHex[(static_cast<unsigned char>(c) >> 4) & 15],
               kHex[static_cast<unsigned char>(c) & 15]};
    } else {
      piece = std::string(1, c);
    }
    if (col + piece.size() > 30) {
      out += "=\r\n";
      col = 0;
    }
    out += piece;
    col += piece.size();
  }
  return out;
}

// A MIME part: headers, blank line, body.
std::string part(std::string_view headers, std::string_view body) {
  return std::string(headers) + "\r\n" + std::string(body);
}

std::string multipart(std::string_view boundary, const std::vector<std::string>& parts,
                      const char* type = "multipart/mixed") {
  std::string out = std::string("Content-Type: ") + type + "; boundary=\"" + std::string(boundary) +
                    "\"\r\n\r\nThis is a preamble.\r\n";
  for (const auto& p : parts) out += "--" + std::string(boundary) + "\r\n" + p + "\r\n";
  out += "--" + std::string(boundary) + "--\r\nepilogue\r\n";
  return out;
}

const std::string kMessageHead =
    "Return-Path: <noreply@example.net>\r\nFrom: noreply@example.net\r\nTo: dmarc@example.com\r\n"
    "Subject: Report Domain: example.com Submitter: example.net\r\n"
    "Message-ID: <r1@example.net>\r\nMIME-Version: 1.0\r\n";

std::string describe(const Unpacked& u) {
  std::string s;
  for (const auto& d : u.documents) s += "found " + d.where + "\n";
  for (const auto& r : u.refused) s += "refused " + r.where + ": " + r.reason + "\n";
  return s;
}

bool any_reason(const Unpacked& u, std::string_view needle) {
  return std::any_of(u.refused.begin(), u.refused.end(),
                     [&](const auto& r) { return r.reason.find(needle) != std::string::npos; });
}

}  // namespace

TEST_CASE("unpack: a Subject of nothing but \"=?\" decodes in linear time") {
  std::string subject;
  for (int i = 0; i < 80000; ++i) subject += "=?x";
  const std::string msg = "From: a@example.org\r\nSubject: " + subject +
                          "\r\nContent-Type: text/plain\r\n\r\nhello\r\n";
  const auto got = unpack(msg, "m.eml");  // quadratic before: seconds; now well under one
  CHECK(got.message);
  CHECK(got.subject.size() == subject.size());
}

TEST_CASE("sniff: names what the bytes start as") {
  struct Case {
    const char* label;
    std::string bytes;
    const char* want;
  };
  const Case cases[] = {
      {"nothing", "", "empty"},
      {"white space", " \r\n\t", "empty"},
      {"xml declaration", kXml, "xml"},
      {"bom and feedback", "\xEF\xBB\xBF\n<feedback>", "xml"},
      {"prefixed feedback", "<rua:feedback xmlns:rua=\"x\">", "xml"},
      {"html", "<html><body>hi</body></html>", "unknown"},
      {"gzip", gz("x"), "gzip"},
      {"zip", make_zip({{"a.xml", kXml}}), "zip"},
      {"message", kMessageHead + "\r\nbody", "message"},
      {"mbox line first", "From x@y Mon Jan  1 00:00:00 2024\nSubject: s\n\nb", "message"},
      {"header of unknown fields only", "X-Foo: bar\n\nbody", "unknown"},
      {"prose", "Hello: this is not a header\nand this is prose", "unknown"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    CHECK(sniff(c.bytes) == c.want);
  }
}

TEST_CASE("unpack: xml and gzip wrappers yield the document") {
  struct Case {
    const char* label;
    std::string bytes;
    std::string want_xml;
    const char* want_where;
    std::size_t want_refused;
  };
  const std::string multi = gz(kXml.substr(0, 50)) + gz(kXml.substr(50));
  const Case cases[] = {
      {"bare xml", kXml, kXml, "r.xml", 0},
      {"gzip", gz(kXml), kXml, "r.xml", 0},
      {"gzip with fname", gz(kXml, "report.xml"), kXml, "r.xml > report.xml", 0},
      {"gzip of gzip", gz(gz(kXml)), kXml, "r.xml", 0},
      {"multi-member gzip", multi, kXml, "r.xml", 0},
      {"gzip then crlf (mimecast)", gz(kXml) + "\r\n", kXml, "r.xml", 0},
      {"gzip then nul padding", gz(kXml) + std::string(512, '\0'), kXml, "r.xml", 0},
      {"gzip then garbage: kept and noted", gz(kXml) + "garbage!", kXml, "r.xml", 1},
      {"gzip then damaged member: first kept", gz(kXml) + gz("xx").substr(0, 12), kXml, "r.xml", 1},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = unpack(c.bytes, "r.xml");
    CAPTURE(describe(got));
    REQUIRE(got.documents.size() == 1);
    CHECK(got.documents[0].xml == c.want_xml);
    CHECK(got.documents[0].where == c.want_where);
    CHECK(got.refused.size() == c.want_refused);
    CHECK_FALSE(got.message);
  }
}

TEST_CASE("unpack: damaged and oversized gzip is refused with the reason") {
  UnpackLimits small;
  small.max_decompressed = 1u << 20;
  small.max_compressed = 64u << 10;
  struct Case {
    const char* label;
    std::string bytes;
    const char* want_reason;
  };
  const std::string zeros(20u << 20, '\0');  // 20 MiB of zeros: ~20 KiB of gzip
  const std::string bomb = gz(zeros);
  std::string big_random;
  for (std::uint32_t i = 0, x = 1; i < (100u << 10); ++i) {
    x = x * 1103515245u + 12345u;
    big_random += static_cast<char>(x >> 24);
  }
  const Case cases[] = {
      {"bomb", bomb, "gzip: inflates past 1 MiB (limit max_decompressed)"},
      {"compressed too big", gz(big_random), "(limit max_compressed 64 KiB)"},
      {"truncated", gz(kXml).substr(0, 30), "gzip: truncated"},
      {"corrupt", std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage", 17), "gzip: "},
      {"content unknown", gz("just text"), "not xml, gzip, zip or a message"},
      {"content empty", gz(""), "empty"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = unpack(c.bytes, "r.gz", small);
    CAPTURE(describe(got));
    CHECK(got.documents.empty());
    REQUIRE(got.refused.size() == 1);
    CHECK(got.refused[0].where == "r.gz");
    CHECK(got.refused[0].reason.find(c.want_reason) != std::string::npos);
  }
}

TEST_CASE("unpack: max_total bounds everything unpacked from one input") {
  UnpackLimits limits;
  limits.max_total = 1000;
  const std::string a(600, ' ');
  const auto got = unpack(make_zip({{"a.xml", kXml + a}, {"b.xml", kXml + a}}), "x.zip", limits);
  CAPTURE(describe(got));
  CHECK(got.documents.size() == 1);
  CHECK(any_reason(got, "max_total"));
}

TEST_CASE("unpack: zip entries stored and deflated, bounded") {
  SUBCASE("stored and deflated, directories skipped") {
    const auto z = make_zip({{"dir/", "", false},
                             {"a.xml", kXml, false},
                             {"b.xml.gz", gz(kXml2), true},
                             {"__MACOSX/._a.xml", "junk", false}});
    const auto got = unpack(z, "x.zip");
    CAPTURE(describe(got));
    REQUIRE(got.documents.size() == 2);
    CHECK(got.documents[0].where == "x.zip > a.xml");
    CHECK(got.documents[0].xml == kXml);
    CHECK(got.documents[1].where == "x.zip > b.xml.gz");
    CHECK(got.documents[1].xml == kXml2);
    CHECK(got.refused.empty());
  }
  SUBCASE("a Latin-1 entry name comes out as valid UTF-8 (where is stored as TEXT)") {
    const auto z = make_zip({{"r\xfc.xml", kXml, false}});
    const auto got = unpack(z, "x.zip");
    REQUIRE(got.documents.size() == 1);
    CHECK(got.documents[0].where == "x.zip > r?.xml");
  }
  SUBCASE("10,000 entries refused whole") {
    std::vector<ZipEntry> many;
    for (int i = 0; i < 10000; ++i)
      many.push_back({"e" + std::to_string(i) + ".xml", kXml2, false});
    const auto got = unpack(make_zip(many), "x.zip");
    REQUIRE(got.refused.size() == 1);
    CHECK(got.refused[0].where == "x.zip");
    CHECK(got.refused[0].reason == "zip: 10000 entries (limit max_zip_entries 64)");
    CHECK(got.documents.empty());
  }
  SUBCASE("2 GB declared size refused before inflating; the other entry kept") {
    const auto z = make_zip({{"big.xml", kXml, true, 0x80000000u}, {"ok.xml", kXml}});
    const auto got = unpack(z, "x.zip");
    CAPTURE(describe(got));
    REQUIRE(got.refused.size() == 1);
    CHECK(got.refused[0].where == "x.zip > big.xml");
    CHECK(got.refused[0].reason ==
          "zip: declares 2048 MiB uncompressed (limit max_decompressed 200 MiB)");
    REQUIRE(got.documents.size() == 1);
    CHECK(got.documents[0].where == "x.zip > ok.xml");
  }
  SUBCASE("inflating past the declared size is a bomb") {
    const auto z = make_zip({{"a.xml", std::string(1u << 20, 'a'), true, 1000u}});
    const auto got = unpack(z, "x.zip");
    REQUIRE(got.refused.size() == 1);
    CHECK(got.refused[0].reason == "zip: inflates past its declared 1000 bytes");
  }
  SUBCASE("encrypted entry refused, the rest kept") {
    const auto z = make_zip({{"secret.xml", kXml, true, std::nullopt, 1}, {"ok.xml", kXml}});
    const auto got = unpack(z, "x.zip");
    REQUIRE(got.refused.size() == 1);
    CHECK(got.refused[0].reason == "zip: encrypted entry");
    CHECK(got.documents.size() == 1);
  }
  SUBCASE("damaged archives") {
    struct Case {
      const char* label;
      std::string bytes;
      const char* want_reason;
    };
    const std::string good = make_zip({{"a.xml", kXml}});
    std::string bad_crc = make_zip({{"a.xml", kXml, false}});
    bad_crc[30 + 5 + 10] ^= 1;  // a byte of the stored data
    std::string deflate64 = make_zip({{"a.xml", kXml, false}});
    deflate64[8] = 9;                                // local header method
    deflate64[deflate64.size() - 22 - 51 + 10] = 9;  // central directory method
    const Case cases[] = {
        {"zip64", make_zip({{"a.xml", kXml}}, 0xffff), "zip: zip64 archives are not supported"},
        {"method 9", deflate64, "zip: compression method 9 is not supported"},
        {"no eocd", good.substr(0, good.size() - 22), "zip: no end of central directory record"},
        {"empty", make_zip({}), "zip: no entries"},
        {"truncated data", good.substr(0, 40) + good.substr(good.size() - 70), "zip: "},
        {"crc", bad_crc, "zip: crc-32 mismatch"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.label);
      const auto got = unpack(c.bytes, "x.zip");
      CAPTURE(describe(got));
      CHECK(got.documents.empty());
      REQUIRE_FALSE(got.refused.empty());
      CHECK(got.refused[0].reason.find(c.want_reason) != std::string::npos);
    }
  }
}

TEST_CASE("unpack: nesting deeper than max_depth is refused") {
  UnpackLimits limits;
  limits.max_depth = 2;
  CHECK(unpack(gz(gz(kXml)), "r", limits).documents.size() == 1);
  const auto got = unpack(gz(gz(gz(kXml))), "r", limits);
  CHECK(got.documents.empty());
  REQUIRE(got.refused.size() == 1);
  CHECK(got.refused[0].reason == "gzip nested 3 deep (limit max_depth 2)");
}

TEST_CASE("unpack: a message's attachment is taken by content under any declared type") {
  struct Case {
    const char* label;
    const char* type;
    std::string payload;
  };
  const Case cases[] = {
      {"gzip", "application/gzip", gz(kXml)},
      {"x-gzip", "application/x-gzip", gz(kXml)},
      {"zip", "application/zip", make_zip({{"r.xml", kXml}})},
      {"text/xml", "text/xml", kXml},
      {"octet-stream holding zip", "application/octet-stream", make_zip({{"r.xml", kXml}})},
      {"declared zip, is gzip", "application/zip", gz(kXml)},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const std::string msg =
        kMessageHead +
        multipart("b1", {part("Content-Type: text/plain; charset=us-ascii\r\n",
                              "This is a DMARC aggregate report.\r\n"),
                         part(std::string("Content-Type: ") + c.type +
                                  "; name=\"r.bin\"\r\nContent-Transfer-Encoding: base64\r\n"
                                  "Content-Disposition: attachment; filename=\"r.bin\"\r\n",
                              base64(c.payload))});
    const auto got = unpack(msg, "m.eml");
    CAPTURE(describe(got));
    CHECK(got.message);
    CHECK(got.message_id == "<r1@example.net>");
    CHECK(got.subject == "Report Domain: example.com Submitter: example.net");
    CHECK(got.parts == 2);
    CHECK(got.refused.empty());
    REQUIRE(got.documents.size() == 1);
    CHECK(got.documents[0].xml == kXml);
    CHECK(
        got.documents[0].where.starts_with(std::string("m.eml > part 2 (") + c.type + ") > r.bin"));
  }
}

TEST_CASE("unpack: the report as the whole body of a message") {
  struct Case {
    const char* label;
    std::string headers;
    std::string body;
  };
  const Case cases[] = {
      {"base64 gzip, LF line ends",
       "From: a@b\nContent-Type: application/gzip\nContent-Transfer-Encoding: base64\n",
       base64(gz(kXml), 76, true, "\n")},
      {"8bit xml, no MIME headers", "From: a@b\r\nSubject: report\r\n", kXml},
      {"uppercase type, unquoted params", "From: a@b\r\nCONTENT-TYPE: Text/XML; Charset=UTF-8\r\n",
       kXml},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = unpack(
        c.headers + (c.headers.find('\r') != std::string::npos ? "\r\n" : "\n") + c.body, "m");
    CAPTURE(describe(got));
    CHECK(got.message);
    CHECK(got.parts == 1);
    REQUIRE(got.documents.size() == 1);
    CHECK(got.documents[0].xml == kXml);
    CHECK(got.documents[0].where.starts_with("m > part 1 ("));
  }
}

TEST_CASE("unpack: transfer encodings") {
  struct Case {
    const char* label;
    std::string cte;
    std::string body;
    bool want_found;
    const char* want_reason;
  };
  std::string spaced = base64(gz(kXml), 7);
  spaced.insert(3, " \t");
  const Case cases[] = {
      {"base64, 76 columns", "base64", base64(gz(kXml)), true, ""},
      {"base64, odd line lengths", "base64", base64(gz(kXml), 13), true, ""},
      {"base64, 1 column", "base64", base64(kXml, 1, true, "\n"), true, ""},
      {"base64, stray white space", "base64", spaced, true, ""},
      {"base64, no padding", "BASE64", base64(kXml + "x", 60, false), true, ""},
      {"base64, garbage", "base64", base64(gz(kXml)) + "!!not base64!!", false, "base64: invalid"},
      {"base64, one char left over", "base64", base64(gz(kXml), 76, false) + "Q", false,
       "base64: truncated"},
      {"quoted-printable xml", "quoted-printable", qp(kXml), true, ""},
      {"7bit", "7bit", kXml, true, ""},
      {"binary", "binary", gz(kXml), true, ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const std::string msg =
        kMessageHead + multipart("=_b", {part("Content-Type: application/octet-stream\r\n"
                                              "Content-Transfer-Encoding: " +
                                                  c.cte + "\r\n",
                                              c.body)});
    const auto got = unpack(msg, "m");
    CAPTURE(describe(got));
    if (c.want_found) {
      REQUIRE(got.documents.size() == 1);
      std::string xml = got.documents[0].xml;  // quoted-printable made its line ends CRLF
      xml.erase(std::remove(xml.begin(), xml.end(), '\r'), xml.end());
      CHECK(xml.starts_with(kXml));
      CHECK(got.refused.empty());
    } else {
      CHECK(got.documents.empty());
      REQUIRE(got.refused.size() == 1);
      CHECK(got.refused[0].reason.find(c.want_reason) != std::string::npos);
    }
  }
}

TEST_CASE("unpack: nested multipart and message/rfc822 are walked") {
  const std::string inner_msg =
      "From: r@example.org\r\nSubject: inner\r\nMIME-Version: 1.0\r\n" +
      multipart("in", {part("Content-Type: text/plain\r\n", "see attached\r\n"),
                       part("Content-Type: application/zip\r\nContent-Transfer-Encoding: "
                            "base64\r\n",
                            base64(make_zip({{"inner.xml", kXml2}}), 64))});
  const std::string msg =
      kMessageHead +
      multipart("outer",
                {multipart("alt",
                           {part("Content-Type: text/plain\r\n", "hello\r\n"),
                            part("Content-Type: text/html\r\n", "<html><p>hello</p></html>\r\n")},
                           "multipart/alternative"),
                 multipart("rel",
                           {part("Content-Type: application/gzip\r\n"
                                 "Content-Transfer-Encoding: base64\r\n",
                                 base64(gz(kXml)))},
                           "multipart/related"),
                 part("Content-Type: message/rfc822\r\n", inner_msg)});
  const auto got = unpack(msg, "m");
  CAPTURE(describe(got));
  CHECK(got.refused.empty());
  REQUIRE(got.documents.size() == 2);
  CHECK(got.documents[0].where == "m > part 2.1 (application/gzip)");
  CHECK(got.documents[0].xml == kXml);
  CHECK(got.documents[1].where ==
        "m > part 3 (message/rfc822) > part 2 (application/zip) > inner.xml");
  CHECK(got.documents[1].xml == kXml2);
  CHECK(got.subject == "Report Domain: example.com Submitter: example.net");
}

TEST_CASE("unpack: 500 parts are bounded, reports before the limit are found") {
  std::vector<std::string> parts;
  parts.push_back(part("Content-Type: application/gzip\r\nContent-Transfer-Encoding: base64\r\n",
                       base64(gz(kXml))));
  for (int i = 0; i < 498; ++i) parts.push_back(part("Content-Type: text/plain\r\n", "noise"));
  parts.push_back(part("Content-Type: text/xml\r\n", kXml2));
  const auto got = unpack(kMessageHead + multipart("b", parts), "m");
  CAPTURE(describe(got));
  CHECK(got.parts == 256);
  REQUIRE(got.documents.size() == 1);
  CHECK(got.documents[0].xml == kXml);
  REQUIRE(got.refused.size() == 1);
  CHECK(got.refused[0].where == "m > part 257");
  CHECK(got.refused[0].reason == "mime: more than 256 parts (limit max_parts); the rest skipped");
}

TEST_CASE("unpack: empty things are refused, noise is skipped") {
  SUBCASE("empty input") {
    const auto got = unpack("", "e.xml");
    REQUIRE(got.refused.size() == 1);
    CHECK(got.refused[0].where == "e.xml");
    CHECK(got.refused[0].reason == "empty");
  }
  SUBCASE("unknown input") {
    const auto got = unpack("%PDF-1.4", "x.pdf");
    REQUIRE(got.refused.size() == 1);
    CHECK(got.refused[0].reason == "not xml, gzip, zip or a message");
  }
  SUBCASE("0-byte attachment; the other attachment still found") {
    const std::string msg =
        kMessageHead +
        multipart("b", {part("Content-Type: application/gzip\r\nContent-Transfer-Encoding: "
                             "base64\r\nContent-Disposition: attachment; filename=e.xml.gz\r\n",
                             ""),
                        part("Content-Type: text/html\r\n", "<html>noise</html>"),
                        part("Content-Type: image/png\r\n", "\x89PNG"),
                        part("Content-Type: text/xml\r\n", kXml)});
    const auto got = unpack(msg, "m");
    CAPTURE(describe(got));
    REQUIRE(got.refused.size() == 1);
    CHECK(got.refused[0].where == "m > part 1 (application/gzip) > e.xml.gz");
    CHECK(got.refused[0].reason == "empty");
    REQUIRE(got.documents.size() == 1);
    CHECK(got.documents[0].where == "m > part 4 (text/xml)");
  }
}

TEST_CASE("unpack: malformed messages are refused with the reason") {
  UnpackLimits limits;
  limits.max_header_bytes = 1024;
  struct Case {
    const char* label;
    std::string bytes;
    const char* want_where;
    const char* want_reason;
  };
  const Case cases[] = {
      {"header section too long",
       "From: a@b\r\nX-Long: " + std::string(2000, 'x') + "\r\n\r\n" + kXml, "m",
       "message: header section longer than 1 KiB (limit max_header_bytes)"},
      {"part header too long",
       "From: a@b\r\n" + multipart("b", {"X-Long: " + std::string(2000, 'x') + "\r\n\r\n" + kXml}),
       "m > part 1", "mime: header section longer than 1 KiB (limit max_header_bytes)"},
      {"multipart without boundary", "From: a@b\r\nContent-Type: multipart/mixed\r\n\r\nx",
       "m > part 1 (multipart/mixed)", "mime: multipart without a boundary parameter"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = unpack(c.bytes, "m", limits);
    CAPTURE(describe(got));
    CHECK(got.message);
    CHECK(got.documents.empty());
    REQUIRE(got.refused.size() == 1);
    CHECK(got.refused[0].where == c.want_where);
    CHECK(got.refused[0].reason == c.want_reason);
  }
}

TEST_CASE("unpack: Subject encoded-words and header forms") {
  struct Case {
    const char* label;
    std::string subject;
    const char* want;
  };
  const Case cases[] = {
      {"plain", "Report Domain: example.com", "Report Domain: example.com"},
      {"utf-8 B", "=?UTF-8?B?UmFwcG9ydCBkb21haW5lIMOp?=", "Rapport domaine \xC3\xA9"},
      {"latin1 Q", "=?iso-8859-1?q?Rapport_domaine_=E9?=", "Rapport domaine \xC3\xA9"},
      {"adjacent words joined", "=?utf-8?q?a?= =?utf-8?q?b?= c", "ab c"},
      {"folded", "Report Domain:\r\n example.com", "Report Domain: example.com"},
      {"unknown charset kept", "=?x-unknown?q?a?=", "=?x-unknown?q?a?="},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = unpack("From: a@b\r\nSubject: " + c.subject + "\r\n\r\n" + kXml, "m");
    CHECK(got.subject == c.want);
    CHECK(got.documents.size() == 1);
  }
}

TEST_CASE("unpack: boundary parameter forms") {
  struct Case {
    const char* label;
    const char* content_type;
  };
  const Case cases[] = {
      {"quoted", "multipart/mixed; boundary=\"XyZ\""},
      {"unquoted", "multipart/mixed; boundary=XyZ"},
      {"upper-case name, folded", "Multipart/Mixed;\r\n\tBOUNDARY=\"XyZ\""},
      {"other params first", "multipart/mixed; charset=utf-8; boundary=XyZ; x=y"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const std::string msg = std::string("From: a@b\r\nContent-Type: ") + c.content_type +
                            "\r\n\r\n--XyZ\r\nContent-Type: text/xml\r\n\r\n" + kXml +
                            "\r\n--XyZ--\r\n";
    const auto got = unpack(msg, "m");
    CAPTURE(describe(got));
    REQUIRE(got.documents.size() == 1);
    CHECK(got.documents[0].xml == kXml);
  }
}

// The shared corpus, read in place: no crash, and every aggregate report wrapped in gzip, zip or
// a message yields at least one document. ARF and failure (ruf) reports may yield nothing.
TEST_CASE("unpack: shared corpus") {
  namespace fs = std::filesystem;
  const fs::path root = "/work/shared/corpus/dmarc";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    MESSAGE("corpus " << root << " absent: skipped");
    return;
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(root, ec)) {
    if (e.is_regular_file() && e.path().extension() != ".json") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto rel = path.lexically_relative(root).string();
    const auto got = unpack(bytes, rel);
    MESSAGE(rel << ": " << sniff(bytes) << ", " << got.documents.size() << " documents, "
                << got.refused.size() << " refused, " << got.parts << " parts\n"
                << describe(got));
    const bool wrapped = rel.ends_with(".gz") || rel.ends_with(".zip") || rel.ends_with(".eml");
    const bool not_aggregate = rel.find("sisimai-arf/") != std::string::npos ||
                               rel.find("/failure/") != std::string::npos ||
                               rel.find("/smtp_tls/") != std::string::npos;
    if (wrapped && !not_aggregate) {
      CAPTURE(rel);
      CHECK(!got.documents.empty());
    }
  }
}
