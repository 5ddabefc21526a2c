// Finding the aggregate reports inside what arrives (issue 6): content sniffing, bounded gzip and
// zip readers over zlib in memory, and an RFC 5322 / MIME walker (RFC 2045, 2046, 2047).
// Pure: no file or network I/O, no clock, no logging; never throws (bad_alloc aside).
#include "dmarc/unpack.hpp"

#include "core/text.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <limits>
#include <optional>
#include <utility>

#include <fmt/format.h>

namespace rampart::dmarc {

namespace {

// Multipart inside multipart: deep nesting is only ever an attack on the walker's stack.
constexpr int kMaxMultipartNesting = 16;

// ---------------------------------------------------------------------------------------------
// Small text helpers.

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = lower(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

bool iends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && iequals(s.substr(s.size() - suffix.size()), suffix);
}

bool is_wsp(char c) { return c == ' ' || c == '\t'; }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::uint8_t byte_at(std::string_view s, std::size_t i) { return static_cast<std::uint8_t>(s[i]); }

std::uint32_t le16(std::string_view s, std::size_t at) {
  return static_cast<std::uint32_t>(byte_at(s, at)) |
         (static_cast<std::uint32_t>(byte_at(s, at + 1)) << 8);
}

std::uint32_t le32(std::string_view s, std::size_t at) {
  return le16(s, at) | (le16(s, at + 2) << 16);
}

// "200 MiB", "64 KiB", "1234 bytes": limits read as the operator wrote them.
std::string size_text(std::size_t n) {
  if (n >= (1u << 20) && n % (1u << 20) == 0) return fmt::format("{} MiB", n >> 20);
  if (n >= (1u << 10) && n % (1u << 10) == 0) return fmt::format("{} KiB", n >> 10);
  return fmt::format("{} bytes", n);
}

// Names from archives and headers go into `where` strings, which end up in logs: keep them on
// one line and short.
// Valid UTF-8 too (a Latin-1 file name in a zip is common): `where` is stored as TEXT, which
// PostgreSQL refuses to hold invalid bytes in.
std::string printable(std::string_view s) {
  constexpr std::size_t kMax = 200;
  std::string out = core::utf8_clean(s.substr(0, kMax));
  if (s.size() > kMax) out += "...";
  return out;
}

// ---------------------------------------------------------------------------------------------
// Sniffing.

std::string_view skip_bom_and_space(std::string_view s) {
  if (s.size() >= 3 && s.substr(0, 3) == "\xEF\xBB\xBF") s.remove_prefix(3);
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  return s;
}

bool looks_like_xml(std::string_view s) {
  s = skip_bom_and_space(s);
  if (s.starts_with("<?xml")) return true;
  if (!s.starts_with("<")) return false;
  // "<feedback" or a prefixed "<rua:feedback"; the parser decides whether it is a report.
  std::size_t i = 1;
  while (i < s.size() && i < 64 && s[i] != ':' && s[i] != '>' && !is_space(s[i]) && s[i] != '/') {
    ++i;
  }
  std::string_view name = s.substr(1, i - 1);
  if (i < s.size() && s[i] == ':') {
    const std::size_t start = i + 1;
    std::size_t j = start;
    while (j < s.size() && j < start + 64 && s[j] != '>' && !is_space(s[j]) && s[j] != '/') ++j;
    name = s.substr(start, j - start);
  }
  return iequals(name, "feedback");
}

bool is_field_name_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 33 && u <= 126 && c != ':';
}

// Length of the field name when `line` is "Name: value" (RFC 5322 §2.2), else 0.
std::size_t field_name_length(std::string_view line) {
  std::size_t i = 0;
  while (i < line.size() && is_field_name_char(line[i])) ++i;
  std::size_t j = i;
  while (j < line.size() && is_wsp(line[j])) ++j;  // obsolete "Name : value" (RFC 5322 §4.5)
  if (i == 0 || j >= line.size() || line[j] != ':') return 0;
  return i;
}

// Next line of `s` from `pos`, without its CRLF or LF; `pos` moves past the line break.
std::string_view next_line(std::string_view s, std::size_t& pos) {
  const std::size_t nl = s.find('\n', pos);
  const std::size_t end = nl == std::string_view::npos ? s.size() : nl;
  std::string_view line = s.substr(pos, end - pos);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  pos = nl == std::string_view::npos ? s.size() : nl + 1;
  return line;
}

bool looks_like_message(std::string_view s) {
  constexpr std::array<std::string_view, 9> kKnown = {"from",     "to",           "subject",
                                                      "date",     "content-type", "mime-version",
                                                      "received", "return-path",  "message-id"};
  std::size_t pos = 0;
  if (s.starts_with("From ")) next_line(s, pos);  // an mbox separator line
  // The first line must be a field; the known field must come within the first few dozen.
  for (int n = 0; n < 64 && pos < s.size(); ++n) {
    const std::string_view line = next_line(s, pos);
    if (line.empty()) return false;
    if (is_wsp(line.front())) {
      if (n == 0) return false;
      continue;
    }
    const std::size_t len = field_name_length(line);
    if (len == 0) return false;
    const std::string_view name = line.substr(0, len);
    for (const auto known : kKnown) {
      if (iequals(name, known)) return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// The walk.

struct Walk {
  const UnpackLimits& limits;
  Unpacked& out;
  std::size_t inflated = 0;  // everything decompressed so far (max_total)
  bool parts_exhausted = false;

  void refuse(std::string where, std::string reason) {
    out.refused.push_back({std::move(where), std::move(reason)});
  }
  void take(std::string_view bytes, const std::string& where, int depth, bool top);
  void gzip(std::string_view bytes, const std::string& where, int depth);
  void zip(std::string_view bytes, const std::string& where, int depth);
  void message(std::string_view bytes, const std::string& where, int depth, bool top);
  void entity(std::string_view bytes, const std::string& where, const std::string& number,
              int depth, int nesting);
};

// Inflates `in` with `window_bits` into `out`, at most `cap` bytes. Returns the number of input
// bytes consumed through the end of the stream, or an error text.
struct InflateResult {
  bool ok = false;
  bool over = false;  // stopped: would exceed `cap`
  std::size_t consumed = 0;
  std::string error;
};

InflateResult inflate_one(z_stream& zs, std::string_view in, std::string& out, std::size_t cap) {
  InflateResult r;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  // zlib counts in uInt; the caller has already bounded `in` by max_compressed.
  const std::size_t avail = std::min<std::size_t>(in.size(), std::numeric_limits<uInt>::max());
  zs.avail_in = static_cast<uInt>(avail);
  std::array<char, 64 * 1024> buf{};
  for (;;) {
    zs.next_out = reinterpret_cast<Bytef*>(buf.data());
    zs.avail_out = static_cast<uInt>(buf.size());
    const int rc = inflate(&zs, Z_NO_FLUSH);
    const std::size_t got = buf.size() - zs.avail_out;
    if (out.size() + got > cap) {
      r.over = true;
      return r;
    }
    out.append(buf.data(), got);
    if (rc == Z_STREAM_END) {
      r.ok = true;
      r.consumed = avail - zs.avail_in;
      return r;
    }
    if (rc == Z_BUF_ERROR || (rc == Z_OK && zs.avail_in == 0 && got == 0)) {
      r.error = "truncated";
      return r;
    }
    if (rc != Z_OK) {
      r.error = zs.msg != nullptr ? std::string(zs.msg) : fmt::format("zlib error {}", rc);
      if (rc == Z_NEED_DICT) r.error = "needs a preset dictionary";
      if (rc == Z_MEM_ERROR) r.error = "out of memory";
      return r;
    }
  }
}

void Walk::take(std::string_view bytes, const std::string& where, int depth, bool top) {
  const std::string_view kind = sniff(bytes);
  if (kind == "xml") {
    out.documents.push_back({where, std::string(bytes)});
    return;
  }
  if (kind == "empty") {
    refuse(where, bytes.empty() ? "empty" : "only white space");
    return;
  }
  if (kind == "unknown") {
    refuse(where, "not xml, gzip, zip or a message");
    return;
  }
  if (depth >= limits.max_depth) {
    refuse(where, fmt::format("{} nested {} deep (limit max_depth {})", kind, depth + 1,
                              limits.max_depth));
    return;
  }
  if (kind == "gzip") return gzip(bytes, where, depth);
  if (kind == "zip") return zip(bytes, where, depth);
  return message(bytes, where, depth, top);
}

// RFC 1952. Members are concatenated into one stream, as gunzip does; ISIZE is never trusted.
void Walk::gzip(std::string_view bytes, const std::string& where, int depth) {
  if (bytes.size() > limits.max_compressed) {
    refuse(where, fmt::format("gzip: {} compressed (limit max_compressed {})",
                              size_text(bytes.size()), size_text(limits.max_compressed)));
    return;
  }
  // The first member's FNAME (RFC 1952 §2.3.1), when there is one, names the content.
  std::string inner = where;
  if (bytes.size() > 10 && (byte_at(bytes, 3) & 0x08) != 0) {
    std::size_t at = 10;
    if ((byte_at(bytes, 3) & 0x04) != 0 && bytes.size() >= 12) at = 12 + le16(bytes, 10);
    const std::size_t end = at < bytes.size() ? bytes.find('\0', at) : std::string_view::npos;
    if (end != std::string_view::npos && end > at)
      inner += " > " + printable(bytes.substr(at, end - at));
  }
  const std::size_t total_left = limits.max_total - std::min(limits.max_total, inflated);
  const std::size_t cap = std::min(limits.max_decompressed, total_left);
  std::string data;
  std::size_t complete = 0;  // bytes of `data` from members that ended properly
  std::size_t pos = 0;
  int members = 0;
  while (pos < bytes.size()) {
    const std::string_view rest = bytes.substr(pos);
    if (members > 0 &&
        !(rest.size() >= 2 && byte_at(rest, 0) == 0x1f && byte_at(rest, 1) == 0x8b)) {
      // Trailing garbage (RFC 1952 says nothing; gzip(1) warns and keeps the content). Padding
      // with NULs or a stray line break is silent; anything else is noted.
      const bool padding =
          std::all_of(rest.begin(), rest.end(), [](char c) { return c == '\0' || is_space(c); });
      if (!padding) {
        refuse(where, fmt::format("gzip: {} bytes of trailing garbage after member {} ignored",
                                  rest.size(), members));
      }
      break;
    }
    z_stream zs{};
    if (inflateInit2(&zs, 15 + 16) != Z_OK) {
      refuse(where, "gzip: zlib initialisation failed");
      return;
    }
    const InflateResult r = inflate_one(zs, rest, data, cap);
    inflateEnd(&zs);
    if (r.over) {
      inflated += data.size();
      refuse(where,
             cap == limits.max_decompressed
                 ? fmt::format("gzip: inflates past {} (limit max_decompressed)", size_text(cap))
                 : fmt::format("gzip: inflates past the {} left of max_total {}", size_text(cap),
                               size_text(limits.max_total)));
      return;
    }
    if (!r.ok) {
      if (members == 0) {
        inflated += data.size();
        refuse(where, fmt::format("gzip: {}", r.error));
        return;
      }
      // A later member is damaged: keep the complete members, say what was lost.
      refuse(where, fmt::format("gzip: member {}: {}; the {} bytes from it on ignored", members + 1,
                                r.error, rest.size()));
      data.resize(complete);
      break;
    }
    ++members;
    complete = data.size();
    pos += r.consumed;
  }
  inflated += data.size();
  take(data, inner, depth + 1, false);
}

// APPNOTE.TXT (PKWARE) §4.3: the central directory is the truth; local headers only locate data.
void Walk::zip(std::string_view bytes, const std::string& where, int depth) {
  if (bytes.size() > limits.max_compressed) {
    refuse(where, fmt::format("zip: {} compressed (limit max_compressed {})",
                              size_text(bytes.size()), size_text(limits.max_compressed)));
    return;
  }
  // End of central directory: 22 bytes plus a comment of up to 65535, searched from the end.
  constexpr std::size_t kEocd = 22;
  if (bytes.size() < kEocd) {
    refuse(where, "zip: no end of central directory record");
    return;
  }
  std::size_t eocd = std::string_view::npos;
  const std::size_t lowest = bytes.size() - kEocd > 65535 ? bytes.size() - kEocd - 65535 : 0;
  for (std::size_t at = bytes.size() - kEocd + 1; at-- > lowest;) {
    if (bytes.compare(at, 4, "PK\x05\x06") == 0 &&
        at + kEocd + le16(bytes, at + 20) <= bytes.size()) {
      eocd = at;
      break;
    }
  }
  if (eocd == std::string_view::npos) {
    refuse(where, "zip: no end of central directory record");
    return;
  }
  const std::uint32_t disk = le16(bytes, eocd + 4);
  const std::uint32_t cd_disk = le16(bytes, eocd + 6);
  const std::uint32_t on_disk = le16(bytes, eocd + 8);
  const std::uint32_t entries = le16(bytes, eocd + 10);
  const std::uint32_t cd_size = le32(bytes, eocd + 12);
  const std::uint32_t cd_offset = le32(bytes, eocd + 16);
  if (entries == 0xffff || cd_size == 0xffffffff || cd_offset == 0xffffffff ||
      (eocd >= 20 && bytes.compare(eocd - 20, 4, "PK\x06\x07") == 0)) {
    refuse(where, "zip: zip64 archives are not supported");
    return;
  }
  if (disk != 0 || cd_disk != 0 || on_disk != entries) {
    refuse(where, "zip: multi-volume archives are not supported");
    return;
  }
  if (entries == 0) {
    refuse(where, "zip: no entries");
    return;
  }
  if (entries > limits.max_zip_entries) {
    refuse(where, fmt::format("zip: {} entries (limit max_zip_entries {})", entries,
                              limits.max_zip_entries));
    return;
  }
  if (static_cast<std::size_t>(cd_size) > eocd ||
      static_cast<std::size_t>(cd_offset) > eocd - cd_size) {
    refuse(where, "zip: central directory outside the archive");
    return;
  }
  // Data prepended to the archive (a self-extractor stub) shifts every offset by this much.
  const std::size_t base = eocd - cd_size - cd_offset;
  std::size_t at = eocd - cd_size;
  for (std::uint32_t i = 0; i < entries; ++i) {
    if (at + 46 > eocd || bytes.compare(at, 4, "PK\x01\x02") != 0) {
      refuse(where, fmt::format("zip: central directory entry {} is damaged", i + 1));
      return;
    }
    const std::uint32_t flags = le16(bytes, at + 8);
    const std::uint32_t method = le16(bytes, at + 10);
    const std::uint32_t crc = le32(bytes, at + 16);
    const std::uint32_t csize = le32(bytes, at + 20);
    const std::uint32_t usize = le32(bytes, at + 24);
    const std::size_t name_len = le16(bytes, at + 28);
    const std::size_t extra_len = le16(bytes, at + 30);
    const std::size_t comment_len = le16(bytes, at + 32);
    const std::size_t local = base + le32(bytes, at + 42);
    if (at + 46 + name_len + extra_len + comment_len > eocd) {
      refuse(where, fmt::format("zip: central directory entry {} is damaged", i + 1));
      return;
    }
    const std::string_view name = bytes.substr(at + 46, name_len);
    at += 46 + name_len + extra_len + comment_len;
    const std::string entry = where + " > " + (name.empty() ? "(unnamed)" : printable(name));

    if (name.ends_with("/") && usize == 0) continue;  // a directory
    if (name.starts_with("__MACOSX/")) continue;      // AppleDouble metadata beside the files
    if ((flags & 0x0001) != 0) {
      refuse(entry, "zip: encrypted entry");
      continue;
    }
    if (csize == 0xffffffff || usize == 0xffffffff) {
      refuse(entry, "zip: zip64 entries are not supported");
      continue;
    }
    if (method != 0 && method != 8) {
      refuse(entry, fmt::format("zip: compression method {} is not supported (only stored and "
                                "deflate)",
                                method));
      continue;
    }
    // Declared sizes are checked before anything is inflated; they are not trusted afterwards.
    if (usize > limits.max_decompressed) {
      refuse(entry, fmt::format("zip: declares {} uncompressed (limit max_decompressed {})",
                                size_text(usize), size_text(limits.max_decompressed)));
      continue;
    }
    if (csize > limits.max_compressed) {
      refuse(entry, fmt::format("zip: declares {} compressed (limit max_compressed {})",
                                size_text(csize), size_text(limits.max_compressed)));
      continue;
    }
    if (local > bytes.size() || bytes.size() - local < 30 ||
        bytes.compare(local, 4, "PK\x03\x04") != 0) {
      refuse(entry, "zip: local header missing or damaged");
      continue;
    }
    const std::size_t data_at = local + 30 + le16(bytes, local + 26) + le16(bytes, local + 28);
    if (data_at > bytes.size() || bytes.size() - data_at < csize) {
      refuse(entry, "zip: entry data runs past the end of the archive");
      continue;
    }
    const std::string_view raw = bytes.substr(data_at, csize);
    const std::size_t total_left = limits.max_total - std::min(limits.max_total, inflated);
    if (usize > total_left) {
      refuse(entry,
             fmt::format("zip: declares {} uncompressed, past the {} left of max_total {}",
                         size_text(usize), size_text(total_left), size_text(limits.max_total)));
      continue;
    }
    std::string data;
    if (method == 0) {
      if (csize != usize) {
        refuse(entry, "zip: stored entry with different compressed and uncompressed sizes");
        continue;
      }
      data.assign(raw);
      inflated += data.size();
    } else {
      z_stream zs{};
      if (inflateInit2(&zs, -15) != Z_OK) {
        refuse(entry, "zip: zlib initialisation failed");
        continue;
      }
      // Never more than declared: an entry inflating past its declared size is a bomb.
      const InflateResult r = inflate_one(zs, raw, data, usize);
      inflateEnd(&zs);
      inflated += data.size();
      if (r.over) {
        refuse(entry, fmt::format("zip: inflates past its declared {}", size_text(usize)));
        continue;
      }
      if (!r.ok) {
        refuse(entry, fmt::format("zip: deflate: {}", r.error));
        continue;
      }
    }
    if (data.size() != usize) {
      refuse(entry,
             fmt::format("zip: inflates to {} bytes, not the declared {}", data.size(), usize));
      continue;
    }
    const uLong got_crc = crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(data.data()),
                                static_cast<uInt>(data.size()));
    if (got_crc != crc) {
      refuse(entry, "zip: crc-32 mismatch");
      continue;
    }
    take(data, entry, depth + 1, false);
  }
}

// ---------------------------------------------------------------------------------------------
// RFC 5322 headers and MIME.

struct Field {
  std::string name;   // lower case
  std::string value;  // unfolded, trimmed
};

struct Headers {
  std::vector<Field> fields;
  std::size_t body_at = 0;  // offset of the body in the entity
  bool too_long = false;

  const std::string* find(std::string_view name) const {
    for (const auto& f : fields) {
      if (f.name == name) return &f.value;
    }
    return nullptr;
  }
};

// The header section ends at the first empty line; a line that is neither a field nor a
// continuation also ends it (lenient: it starts the body). RFC 5322 §2.2.3 unfolding.
Headers parse_headers(std::string_view s, std::size_t max_bytes) {
  Headers h;
  std::size_t pos = 0;
  if (s.starts_with("From ")) next_line(s, pos);
  while (pos < s.size()) {
    if (pos > max_bytes) {
      h.too_long = true;
      return h;
    }
    const std::size_t line_at = pos;
    const std::string_view line = next_line(s, pos);
    if (!line.empty() && pos > max_bytes) {
      h.too_long = true;
      return h;
    }
    if (line.empty()) {
      h.body_at = pos;
      return h;
    }
    if (is_wsp(line.front())) {
      if (!h.fields.empty()) {
        auto& v = h.fields.back().value;
        v += ' ';
        v += trim(line);
      }
      continue;
    }
    const std::size_t len = field_name_length(line);
    if (len == 0) {
      h.body_at = line_at;
      return h;
    }
    const std::size_t colon = line.find(':', len);
    h.fields.push_back({to_lower(line.substr(0, len)), std::string(trim(line.substr(colon + 1)))});
  }
  h.body_at = s.size();
  if (s.size() > max_bytes) h.too_long = true;
  return h;
}

struct ContentType {
  std::string type = "text/plain";  // RFC 2045 §5.2 default
  std::string boundary;
  std::string name;  // the "name" parameter
};

// "; name=value; name2="quoted \" value"", names case-insensitive. RFC 2231 continuations and
// charset'lang'%XX values are joined and percent-decoded, best effort.
std::vector<std::pair<std::string, std::string>> parse_params(std::string_view s) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (is_space(s[i]) || s[i] == ';')) ++i;
    const std::size_t name_at = i;
    while (i < s.size() && s[i] != '=' && s[i] != ';' && !is_space(s[i])) ++i;
    std::string name = to_lower(s.substr(name_at, i - name_at));
    while (i < s.size() && is_space(s[i])) ++i;
    if (i >= s.size() || s[i] != '=') {
      while (i < s.size() && s[i] != ';') ++i;
      continue;
    }
    ++i;
    while (i < s.size() && is_space(s[i])) ++i;
    std::string value;
    if (i < s.size() && s[i] == '"') {
      ++i;
      while (i < s.size() && s[i] != '"') {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        value += s[i++];
      }
      if (i < s.size()) ++i;
    } else {
      const std::size_t v_at = i;
      while (i < s.size() && s[i] != ';' && !is_space(s[i])) ++i;
      value = std::string(s.substr(v_at, i - v_at));
    }
    if (!name.empty()) out.emplace_back(std::move(name), std::move(value));
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The value of parameter `want`, RFC 2231 forms included ("name*", "name*0", "name*1*").
std::string param(const std::vector<std::pair<std::string, std::string>>& params,
                  std::string_view want) {
  for (const auto& [n, v] : params) {
    if (n == want) return v;
  }
  std::string joined;
  bool found = false;
  const std::string bare_star = fmt::format("{}*", want);
  for (int k = 0; k < 100; ++k) {
    bool part = false;
    const std::string plain = fmt::format("{}*{}", want, k);
    const std::string plain_star = plain + "*";
    for (const auto& [n, v] : params) {
      if (n == plain) {
        joined += v;
        part = true;
      } else if (n == plain_star || (k == 0 && n == bare_star)) {
        std::string_view val = v;
        if (k == 0) {
          // charset'language'value
          const std::size_t q1 = val.find('\'');
          const std::size_t q2 = q1 == std::string_view::npos ? q1 : val.find('\'', q1 + 1);
          if (q2 != std::string_view::npos) val.remove_prefix(q2 + 1);
        }
        joined += percent_decode(val);
        part = true;
      }
    }
    if (!part) break;
    found = true;
  }
  return found ? joined : std::string();
}

ContentType parse_content_type(const std::string* value) {
  ContentType ct;
  if (value == nullptr) return ct;
  const std::string_view v = *value;
  const std::size_t semi = v.find(';');
  std::string type = to_lower(trim(v.substr(0, semi)));
  if (type.find('/') != std::string::npos) ct.type = std::move(type);
  if (semi != std::string_view::npos) {
    const auto params = parse_params(v.substr(semi + 1));
    ct.boundary = param(params, "boundary");
    ct.name = param(params, "name");
  }
  return ct;
}

std::string filename_of(const Headers& h, const ContentType& ct) {
  if (const auto* cd = h.find("content-disposition")) {
    const std::size_t semi = cd->find(';');
    if (semi != std::string::npos) {
      std::string f = param(parse_params(std::string_view(*cd).substr(semi + 1)), "filename");
      if (!f.empty()) return f;
    }
  }
  return ct.name;
}

bool is_attachment(const Headers& h) {
  const auto* cd = h.find("content-disposition");
  return cd != nullptr && istarts_with(trim(*cd), "attachment");
}

// RFC 2045 §6.8, tolerant of line breaks and white space anywhere, of missing padding and of
// concatenated encodings (data after "="); anything else outside the alphabet is refused.
std::optional<std::string> base64_decode(std::string_view s, std::string& error) {
  std::string out;
  out.reserve(s.size() / 4 * 3);
  std::uint32_t acc = 0;
  int bits = 0;
  int quantum = 0;  // characters in the current 4-character group
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    int v = 0;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else if (is_space(c)) {
      continue;
    } else if (c == '=') {
      if (quantum == 1) {
        error = fmt::format("base64: invalid padding at byte {}", i);
        return std::nullopt;
      }
      // The group ends here; its leftover bits are padding. Further '=' are ignored.
      acc = 0;
      bits = 0;
      quantum = 0;
      continue;
    } else {
      error = fmt::format("base64: invalid character {:#04x} at byte {}",
                          static_cast<unsigned char>(c), i);
      return std::nullopt;
    }
    acc = ((acc << 6) | static_cast<std::uint32_t>(v)) & 0xffffff;
    bits += 6;
    quantum = (quantum + 1) % 4;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
    if (quantum == 0) {
      acc = 0;
      bits = 0;
    }
  }
  if (quantum == 1) {
    error = "base64: truncated (one character left over)";
    return std::nullopt;
  }
  return out;
}

// RFC 2045 §6.7: "=XX", soft line breaks, trailing white space dropped; a malformed "=" is kept.
std::string qp_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t pos = 0;
  while (pos < s.size()) {
    const std::size_t nl = s.find('\n', pos);
    const bool has_nl = nl != std::string_view::npos;
    std::string_view line = s.substr(pos, (has_nl ? nl : s.size()) - pos);
    pos = has_nl ? nl + 1 : s.size();
    bool crlf = false;
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
      crlf = true;
    }
    while (!line.empty() && is_wsp(line.back())) line.remove_suffix(1);
    bool soft = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
      if (line[i] != '=') {
        out += line[i];
      } else if (i + 1 == line.size()) {
        soft = true;
      } else if (i + 2 < line.size() && hex_value(line[i + 1]) >= 0 &&
                 hex_value(line[i + 2]) >= 0) {
        out += static_cast<char>(hex_value(line[i + 1]) * 16 + hex_value(line[i + 2]));
        i += 2;
      } else {
        out += '=';
      }
    }
    if (has_nl && !soft) out += crlf ? "\r\n" : "\n";
  }
  return out;
}

// ISO-8859-1 (and, near enough, windows-1252) to UTF-8.
std::string latin1_to_utf8(std::string_view s) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80) {
      out += c;
    } else {
      out += static_cast<char>(0xc0 | (u >> 6));
      out += static_cast<char>(0x80 | (u & 0x3f));
    }
  }
  return out;
}

// One "=?charset?B|Q?text?=" (RFC 2047 §2), or nullopt when it is not one we can decode.
std::optional<std::string> decode_word(std::string_view word) {
  if (!word.starts_with("=?") || !word.ends_with("?=") || word.size() < 8) return std::nullopt;
  const std::string_view inner = word.substr(2, word.size() - 4);
  const std::size_t q1 = inner.find('?');
  if (q1 == std::string_view::npos || q1 + 2 >= inner.size() || inner[q1 + 2] != '?') {
    return std::nullopt;
  }
  std::string charset = to_lower(inner.substr(0, q1));
  if (const std::size_t star = charset.find('*'); star != std::string::npos) charset.resize(star);
  const char enc = lower(inner[q1 + 1]);
  const std::string_view text = inner.substr(q1 + 3);
  std::string raw;
  if (enc == 'b') {
    std::string error;
    auto d = base64_decode(text, error);
    if (!d) return std::nullopt;
    raw = std::move(*d);
  } else if (enc == 'q') {
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '_') {
        raw += ' ';
      } else if (text[i] == '=' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
                 hex_value(text[i + 2]) >= 0) {
        raw += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
        i += 2;
      } else {
        raw += text[i];
      }
    }
  } else {
    return std::nullopt;
  }
  if (charset == "utf-8" || charset == "utf8" || charset == "us-ascii") return raw;
  if (charset == "iso-8859-1" || charset == "latin1" || charset == "iso-8859-15" ||
      charset == "windows-1252" || charset == "cp1252") {
    return latin1_to_utf8(raw);
  }
  return std::nullopt;
}

// RFC 2047 §6.2: encoded-words decoded; white space between two adjacent ones dropped.
std::string decode_header(std::string_view s) {
  std::string out;
  std::size_t i = 0;
  bool last_was_word = false;
  std::string pending_space;
  while (i < s.size()) {
    if (s.compare(i, 2, "=?") == 0) {
      // An encoded-word has exactly four '?' and no white space.
      // RFC 2047 §2: an encoded-word is at most 75 characters, which also keeps this scan
      // linear over a header of nothing but "=?".
      std::size_t j = i + 2;
      int marks = 0;
      while (j < s.size() && j < i + 75 && !is_space(s[j])) {
        if (s[j] == '?') {
          ++marks;
          if (marks == 3 && j + 1 < s.size() && s[j + 1] == '=') break;
        }
        ++j;
      }
      if (j < s.size() && marks == 3 && s[j] == '?') {
        const std::string_view word = s.substr(i, j + 2 - i);
        if (auto d = decode_word(word)) {
          if (!last_was_word) out += pending_space;
          pending_space.clear();
          out += *d;
          i = j + 2;
          last_was_word = true;
          continue;
        }
      }
    }
    if (is_space(s[i])) {
      pending_space += s[i++];
      continue;
    }
    out += pending_space;
    pending_space.clear();
    out += s[i++];
    last_was_word = false;
  }
  out += pending_space;
  return out;
}

// Declared types under which a part is expected to hold a report: content that is none of ours
// is then refused rather than skipped as noise (a text/plain cover note, an HTML rendering).
bool declared_as_report(const ContentType& ct, std::string_view filename, bool attachment) {
  static constexpr std::array<std::string_view, 11> kTypes = {"application/gzip",
                                                              "application/x-gzip",
                                                              "application/zip",
                                                              "application/x-zip",
                                                              "application/x-zip-compressed",
                                                              "application/octet-stream",
                                                              "application/xml",
                                                              "text/xml",
                                                              "application/x-gunzip",
                                                              "application/gzip-compressed",
                                                              "application/x-gzip-compressed"};
  for (const auto t : kTypes) {
    if (ct.type == t) return true;
  }
  if (iends_with(filename, ".xml") || iends_with(filename, ".gz") || iends_with(filename, ".zip") ||
      iends_with(filename, ".gzip")) {
    return true;
  }
  // An attachment of no particular type (not a signature, not an image, ...).
  return attachment && ct.type.starts_with("application/") &&
         ct.type.find("signature") == std::string::npos;
}

void Walk::message(std::string_view bytes, const std::string& where, int depth, bool top) {
  const Headers h = parse_headers(bytes, limits.max_header_bytes);
  if (top) out.message = true;
  if (h.too_long) {
    refuse(where, fmt::format("message: header section longer than {} (limit max_header_bytes)",
                              size_text(limits.max_header_bytes)));
    return;
  }
  if (top) {
    if (const auto* s = h.find("subject")) out.subject = decode_header(*s);
    if (const auto* m = h.find("message-id")) out.message_id = *m;
  }
  // A message without MIME headers is one text/plain part (RFC 2045 §5.2); entity() copes.
  entity(bytes, where, "", depth + 1, 0);
}

// One MIME entity (headers + body) at section `number` ("" = the message itself): a multipart's
// children are walked; a leaf is decoded and taken by its content.
void Walk::entity(std::string_view bytes, const std::string& where, const std::string& number,
                  int depth, int nesting) {
  const Headers h = parse_headers(bytes, limits.max_header_bytes);
  const ContentType ct = parse_content_type(h.find("content-type"));
  const std::string label = number.empty() ? "part 1" : "part " + number;
  if (h.too_long) {
    refuse(where + " > " + label,
           fmt::format("mime: header section longer than {} (limit max_header_bytes)",
                       size_text(limits.max_header_bytes)));
    return;
  }
  const std::string_view body = bytes.substr(std::min(h.body_at, bytes.size()));

  if (ct.type.starts_with("multipart/") && !ct.boundary.empty()) {
    if (nesting >= kMaxMultipartNesting) {
      refuse(where + " > " + label,
             fmt::format("mime: multipart nested more than {} deep", kMaxMultipartNesting));
      return;
    }
    // RFC 2046 §5.1.1: a delimiter is CRLF "--" boundary at the start of a line; the CRLF
    // before it belongs to it. Preamble and epilogue are ignored.
    const std::string delim = "--" + ct.boundary;
    std::vector<std::string_view> parts;
    std::size_t part_at = std::string_view::npos;
    std::size_t pos = 0;
    bool closed = false;
    while (pos < body.size()) {
      const std::size_t line_at = pos;
      const std::string_view line = next_line(body, pos);
      if (!line.starts_with(delim)) continue;
      std::string_view tail = line.substr(delim.size());
      const bool close = tail.starts_with("--");
      if (close) tail.remove_prefix(2);
      if (!trim(tail).empty()) continue;  // a longer boundary that merely starts the same
      if (part_at != std::string_view::npos) {
        std::size_t end = line_at;
        if (end > part_at && body[end - 1] == '\n') --end;
        if (end > part_at && body[end - 1] == '\r') --end;
        parts.push_back(body.substr(part_at, end - part_at));
      }
      if (close) {
        closed = true;
        break;
      }
      part_at = pos;
    }
    if (!closed && part_at != std::string_view::npos) {
      parts.push_back(body.substr(part_at));  // truncated message: keep the last part
    }
    for (std::size_t i = 0; i < parts.size(); ++i) {
      const std::string child =
          number.empty() ? fmt::format("{}", i + 1) : fmt::format("{}.{}", number, i + 1);
      if (out.parts >= limits.max_parts) {
        if (!parts_exhausted) {
          parts_exhausted = true;
          refuse(where + " > part " + child,
                 fmt::format("mime: more than {} parts (limit max_parts); the rest skipped",
                             limits.max_parts));
        }
        return;
      }
      ++out.parts;
      entity(parts[i], where, child, depth, nesting + 1);
    }
    return;
  }

  if (number.empty()) {
    // The body of a single-part message is part 1 and counts as one.
    if (out.parts >= limits.max_parts) {
      if (!parts_exhausted) {
        parts_exhausted = true;
        refuse(where + " > part 1",
               fmt::format("mime: more than {} parts (limit max_parts)", limits.max_parts));
      }
      return;
    }
    ++out.parts;
  }

  const std::string filename = filename_of(h, ct);
  std::string here = where + " > " + label + " (" + printable(ct.type) + ")";
  if (!filename.empty()) here += " > " + printable(decode_header(filename));

  std::string decoded;
  std::string_view content = body;
  const std::string cte = h.find("content-transfer-encoding") != nullptr
                              ? to_lower(trim(*h.find("content-transfer-encoding")))
                              : std::string();
  if (cte == "base64") {
    std::string error;
    auto d = base64_decode(body, error);
    if (!d) {
      // Damage in a cover note or in quoted original headers (ARF) is not ours to report.
      if (declared_as_report(ct, filename, is_attachment(h))) refuse(here, error);
      return;
    }
    decoded = std::move(*d);
    content = decoded;
  } else if (cte == "quoted-printable") {
    decoded = qp_decode(body);
    content = decoded;
  }  // 7bit, 8bit, binary, and anything unknown: as is

  const std::string_view kind = sniff(content);
  if (kind == "empty" || kind == "unknown") {
    // Cover notes, HTML renderings, signatures, images: noise, skipped without a word. A part
    // that was meant to carry a report says why it yields nothing.
    if (ct.type.starts_with("multipart/")) {
      refuse(here, "mime: multipart without a boundary parameter");
    } else if (declared_as_report(ct, filename, is_attachment(h))) {
      refuse(here, kind == "empty" ? (content.empty() ? "empty" : "only white space")
                                   : "not xml, gzip, zip or a message");
    }
    return;
  }
  take(content, here, depth, false);
}

}  // namespace

std::string_view sniff(std::string_view bytes) {
  if (bytes.empty()) return "empty";
  if (bytes.size() >= 2 && byte_at(bytes, 0) == 0x1f && byte_at(bytes, 1) == 0x8b) return "gzip";
  if (bytes.size() >= 4 && (bytes.starts_with("PK\x03\x04") || bytes.starts_with("PK\x05\x06"))) {
    return "zip";
  }
  if (skip_bom_and_space(bytes).empty()) return "empty";
  if (looks_like_xml(bytes)) return "xml";
  if (looks_like_message(bytes)) return "message";
  return "unknown";
}

Unpacked unpack(std::string_view bytes, std::string_view name, const UnpackLimits& limits) {
  Unpacked out;
  Walk walk{limits, out};
  walk.take(bytes, name.empty() ? std::string("(input)") : std::string(name), 0, true);
  return out;
}

}  // namespace rampart::dmarc
