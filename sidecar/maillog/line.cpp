// Postfix syslog line parser: see line.hpp. Pure; every scan is a bounded forward pass over the
// line's bytes, nothing allocates.
#include "maillog/line.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace rampart::maillog {

std::string_view to_string(Kind k) {
  switch (k) {
    case Kind::Delivery: return "delivery";
    case Kind::MessageExpired: return "message_expired";
    case Kind::BindFailure: return "bind_failure";
    case Kind::ConnectFailure: return "connect_failure";
    case Kind::OtherPostfix: return "other_postfix";
    case Kind::NotPostfix: return "not_postfix";
    case Kind::Malformed: return "malformed";
  }
  return "?";
}

std::string_view to_string(Status s) {
  switch (s) {
    case Status::Sent: return "sent";
    case Status::Deferred: return "deferred";
    case Status::Bounced: return "bounced";
    case Status::Expired: return "expired";
    case Status::Other: return "other";
  }
  return "?";
}

std::string_view to_string(Hop h) {
  switch (h) {
    case Hop::Remote: return "remote";
    case Hop::Loopback: return "loopback";
    case Hop::Local: return "local";
  }
  return "?";
}

namespace {

// The 8-byte loads below (parse_hms, trailing_digits) take byte i of the text as bits 8i-8i+7.
static_assert(std::endian::native == std::endian::little);

constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The n (4 to 16) bytes at a and b are the same: two overlapping loads of 4 or 8 bytes each, so
// a literal `b` folds into constants (GCC calls memcmp for some constant lengths).
template <std::size_t n>
[[gnu::always_inline]] inline bool same_bytes(const char* a, const char* b) {
  static_assert(n >= 4 && n <= 16);
  using Word = std::conditional_t<(n >= 8), std::uint64_t, std::uint32_t>;
  constexpr std::size_t w = sizeof(Word);
  Word a0 = 0, a1 = 0, b0 = 0, b1 = 0;
  std::memcpy(&a0, a, w);
  std::memcpy(&a1, a + n - w, w);
  std::memcpy(&b0, b, w);
  std::memcpy(&b1, b + n - w, w);
  return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

// starts_with against a literal: a constant-length compare inlined (the hot path checks a few
// of these per line; a libc memcmp call each costs more than the compare).
template <std::size_t N>
[[gnu::always_inline]] inline bool has_prefix(std::string_view s, const char (&lit)[N]) {
  constexpr std::size_t n = N - 1;
  if (s.size() < n) return false;
  if constexpr (n >= 4 && n <= 16) {
    return same_bytes<n>(s.data(), lit);
  } else if constexpr (n < 4) {
    // Byte by byte: GCC calls memcmp for these lengths too.
    bool same = true;
    for (std::size_t i = 0; i < n; ++i) same = same && s[i] == lit[i];
    return same;
  } else {
    return __builtin_memcmp(s.data(), lit, n) == 0;
  }
}
// s == lit the same way: a length check and a constant-length compare.
template <std::size_t N>
[[gnu::always_inline]] inline bool equals(std::string_view s, const char (&lit)[N]) {
  return s.size() == N - 1 && has_prefix(s, lit);
}

// The first `c` in [p, end), or nullptr: memchr for the short runs of a syslog header (host,
// tag), where a call costs more than the scan. 16 bytes at a time while 16 remain; the last
// bytes are one more load of the 16 bytes that end at `end` when they start at or after
// `readable` (bytes before p in it are masked off), else one at a time.
[[gnu::always_inline]] inline const char* find_byte(const char* p, const char* end, char c,
                                                    const char* readable) {
#if defined(__SSE2__)
  const __m128i needle = _mm_set1_epi8(c);
  for (; end - p >= 16; p += 16) {
    const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const auto mask = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(block, needle)));
    if (mask != 0) return p + __builtin_ctz(mask);
  }
  if (p < end && end - readable >= 16) {
    const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(end - 16));
    auto mask = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(block, needle)));
    mask &= ~0u << (16 - (end - p));
    return mask != 0 ? end - 16 + __builtin_ctz(mask) : nullptr;
  }
#else
  (void)readable;
#endif
  for (; p < end; ++p) {
    if (*p == c) return p;
  }
  return nullptr;
}
[[gnu::always_inline]] inline const char* find_byte(const char* p, const char* end, char c) {
  return find_byte(p, end, c, p);
}

// The position of the first `a` followed by `b` in s, or npos: a scan for the rarer first byte
// instead of string_view::find's memchr and memcmp calls at every candidate.
std::size_t find_pair(std::string_view s, char a, char b) {
  const char* const begin = s.data();
  const char* const end = begin + s.size();
  const char* p = begin;
  while (p < end) {
    const char* c = find_byte(p, end, a, begin);
    if (c == nullptr || c + 1 >= end) return std::string_view::npos;
    if (c[1] == b) return static_cast<std::size_t>(c - begin);
    p = c + 1;
  }
  return std::string_view::npos;
}

// The position of the first ": " in s, or npos.
std::size_t find_colon_space(std::string_view s) { return find_pair(s, ':', ' '); }

// Where a delivery's text quotes the remote server: " said: " (first choice) or
// " refused to talk to me: ". Found by their ": ", rarer in replies than the leading space.
struct Marker {
  std::size_t at = std::string_view::npos;  // the marker's leading space
  std::size_t size = 0;
  bool said = false;  // " said: " (else " refused to talk to me: ")
};
Marker find_reply_marker(std::string_view text) {
  // A text that starts with a reply code is the reply itself (a sent record's "250 2.0.0 Ok"):
  // whatever follows is the server's words, not Postfix's.
  if (text.size() >= 3 && text[0] >= '2' && text[0] <= '5' && is_digit(text[1]) &&
      is_digit(text[2]) && (text.size() == 3 || text[3] == ' ' || text[3] == '-'))
    return {};
  constexpr std::string_view kSaid = " said";
  constexpr std::string_view kRefused = " refused to talk to me";
  Marker refused;
  std::size_t from = 0;
  for (;;) {
    const auto c = find_pair(text.substr(from), ':', ' ');
    if (c == std::string_view::npos) return refused;
    const auto colon = from + c;
    const auto before = text.substr(0, colon);
    if (before.ends_with(kSaid)) return {colon - kSaid.size(), kSaid.size() + 2, true};
    if (refused.at == std::string_view::npos && before.ends_with(kRefused))
      refused = {colon - kRefused.size(), kRefused.size() + 2};
    from = colon + 2;
  }
}

// `reply` without a trailing " (in reply to ... command)": Postfix's note of the SMTP command
// the server answered. The last such note is the one cut, as string_view::rfind would find it.
std::string_view without_in_reply_to(std::string_view reply) {
  constexpr std::string_view kNote = " (in reply to ";
  if (!reply.ends_with(" command)")) return reply;
  for (std::size_t n = reply.size(); n > 0;) {
    const void* open = ::memrchr(reply.data(), '(', n);
    if (open == nullptr) break;
    const auto at = static_cast<std::size_t>(static_cast<const char*>(open) - reply.data());
    if (at > 0 && reply.substr(at - 1).starts_with(kNote)) return reply.substr(0, at - 1);
    n = at;
  }
  return reply;
}

// The decimal digits right before `close` (8 readable bytes before it), when there are up to
// seven of them (then a non-digit comes first): `open` moves back over them. false when all 8
// bytes are digits: the caller reads the longer run itself. Inlined: every line's pid goes here.
[[gnu::always_inline]] inline bool trailing_digits(const char* close, std::size_t& open) {
  std::uint64_t x = 0;
  std::memcpy(&x, close - 8, 8);  // byte 7 (the top one) is the one right before `close`
  constexpr std::uint64_t kLow = 0x0f0f0f0f0f0f0f0fULL, kHigh = 0xf0f0f0f0f0f0f0f0ULL;
  constexpr std::uint64_t k7f = 0x7f7f7f7f7f7f7f7fULL, k80 = 0x8080808080808080ULL;
  // Non-zero bytes where x is no digit: high nibble not 3, or low nibble above 9.
  const std::uint64_t bad =
      ((x & kHigh) ^ 0x3030303030303030ULL) | (((x & kLow) + 0x0606060606060606ULL) & kHigh);
  const std::uint64_t nonzero = (((bad & k7f) + k7f) | bad) & k80;
  if (nonzero == 0) return false;
  const auto last_bad = static_cast<unsigned>(63 - __builtin_clzll(nonzero)) / 8;  // 0..7
  open -= 7 - last_bad;
  return true;
}

// How many of s's first bytes are ASCII letters and digits, 16 at a time while 16 remain; the
// caller goes on one at a time from there.
[[gnu::always_inline]] inline std::size_t alnum_run(std::string_view s) {
  std::size_t n = 0;
#if defined(__SSE2__)
  const __m128i lower_a = _mm_set1_epi8('a' - 1), lower_z = _mm_set1_epi8('z' + 1);
  const __m128i zero = _mm_set1_epi8('0' - 1), nine = _mm_set1_epi8('9' + 1);
  const __m128i case_bit = _mm_set1_epi8(0x20);
  for (; s.size() - n >= 16; n += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + n));
    const __m128i l = _mm_or_si128(v, case_bit);
    const __m128i alpha = _mm_and_si128(_mm_cmpgt_epi8(l, lower_a), _mm_cmplt_epi8(l, lower_z));
    const __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, zero), _mm_cmplt_epi8(v, nine));
    const auto mask = static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(alpha, digit)));
    if (mask != 0xffff) return n + static_cast<std::size_t>(__builtin_ctz(~mask));
  }
#endif
  return n;
}

// The position of the last '/' in the n bytes at p, or npos; the 16 bytes before p + n must be
// readable from `readable` on (the line's start: a tag follows a stamp and a host). One 16-byte
// compare covers every Postfix tag's service name.
[[gnu::always_inline]] inline std::size_t last_slash(const char* readable, const char* p,
                                                     std::size_t n) {
#if defined(__SSE2__)
  if (p + n - readable >= 16) {
    const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + n - 16));
    auto mask = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(block, _mm_set1_epi8('/'))));
    if (n < 16) mask &= ~((1u << (16 - n)) - 1);  // bytes before p are not the tag's
    if (mask != 0) return n - 16 + static_cast<std::size_t>(31 - __builtin_clz(mask));
    if (n <= 16) return std::string_view::npos;
    n -= 16;
  }
#else
  (void)readable;
#endif
  return std::string_view(p, n).rfind('/');
}

// `n` decimal digits at s[pos], or -1.
int digits(std::string_view s, std::size_t pos, std::size_t n) {
  if (pos + n > s.size()) return -1;
  int v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = s[pos + i];
    if (!is_digit(c)) return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3U : 9U)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// The civil year of a day number (inverse of the above, year only).
constexpr std::int64_t year_of_day(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
}

constexpr bool leap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
constexpr int days_in_month(std::int64_t y, int m) {
  constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

// "HH:MM:SS" at s[pos] -> seconds of the day, or -1. One 8-byte load checks the six digits and
// the two colons at once (byte i of the load is s[pos + i]): a new second in a log is a new
// stamp, so this runs for a good share of all lines.
std::int64_t parse_hms(std::string_view s, std::size_t pos) {
  if (pos + 8 > s.size()) return -1;
  std::uint64_t x = 0;
  std::memcpy(&x, s.data() + pos, 8);
  constexpr std::uint64_t kDigits = 0xFFFF00FFFF00FFFFULL;  // bytes 0 1 . 3 4 . 6 7
  constexpr std::uint64_t kHigh = 0xF0F000F0F000F0F0ULL & kDigits;
  constexpr std::uint64_t kZeros = 0x3030003030003030ULL;
  constexpr std::uint64_t kColons = 0x00003A00003A0000ULL;
  // A digit's high nibble is 3, and adding 6 to its low nibble does not carry into it. A byte
  // 0x30-0x3F plus 6 stays within its byte, so no digit byte carries into the next.
  if ((x & ~kDigits) != kColons || (x & kHigh) != kZeros ||
      ((x + (0x0606000606000606ULL)) & kHigh) != kZeros)
    return -1;
  const std::uint64_t v = (x & kDigits) - kZeros;  // each digit byte now 0-9
  const auto at = [&](int i) { return static_cast<int>((v >> (8 * i)) & 0xFF); };
  const int h = at(0) * 10 + at(1);
  const int mi = at(3) * 10 + at(4);
  const int se = at(6) * 10 + at(7);
  if (h > 23 || mi > 59 || se > 60) return -1;  // 60: a leap second, as syslog may write it
  return std::int64_t{h} * 3600 + mi * 60 + se;
}

std::string_view unbracket(std::string_view v) {
  if (v.size() >= 2 && v.front() == '<' && v.back() == '>') return v.substr(1, v.size() - 2);
  return v;
}

std::optional<double> to_double(std::string_view s) {
  // Postfix writes delays as "1.2" or "0.01": digits, a dot, digits. Up to 15 digits the value
  // is an integer over a power of ten, both exact in a double, so one IEEE division rounds it
  // exactly as from_chars would; anything else goes to from_chars.
  if (!s.empty() && s.size() <= 16) {
    constexpr double kPow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    std::uint64_t m = 0;
    std::size_t digits_seen = 0, dot = s.size();
    bool plain = true;
    for (std::size_t i = 0; i < s.size(); ++i) {
      const char c = s[i];
      if (is_digit(c)) {
        m = m * 10 + static_cast<std::uint64_t>(c - '0');
        ++digits_seen;
      } else if (c == '.' && dot == s.size() && i > 0 && i + 1 < s.size()) {
        dot = i;
      } else {
        plain = false;
        break;
      }
    }
    if (plain && digits_seen <= 15) {
      const std::size_t frac = dot == s.size() ? 0 : s.size() - dot - 1;
      return static_cast<double>(m) / kPow10[frac];
    }
  }
  double v = 0;
  const auto* end = s.data() + s.size();
  const auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc{} || p != end || v < 0) return std::nullopt;
  return v;
}

// "host[ip]:port" (port optional), else the whole thing is the host.
struct Endpoint {
  std::string_view host, ip;
  std::uint16_t port = 0;
  bool bracketed = false;
};
Endpoint split_endpoint(std::string_view v) {
  Endpoint e;
  e.host = v;
  const char* const end = v.data() + v.size();
  const char* const open_at = find_byte(v.data(), end, '[');
  if (open_at == nullptr) return e;
  const char* const close_at = find_byte(open_at, end, ']');
  if (close_at == nullptr) return e;
  const auto open = static_cast<std::size_t>(open_at - v.data());
  const auto close = static_cast<std::size_t>(close_at - v.data());
  e.host = v.substr(0, open);
  e.ip = v.substr(open + 1, close - open - 1);
  e.bracketed = true;
  const auto rest = v.substr(close + 1);
  if (rest.size() > 1 && rest.front() == ':') {
    // Digits to the end, at most 65535; else no port.
    unsigned port = 0;
    std::size_t i = 1;
    while (i < rest.size() && is_digit(rest[i]) && port <= 65535) {
      port = port * 10 + static_cast<unsigned>(rest[i] - '0');
      ++i;
    }
    if (i == rest.size() && port <= 65535) e.port = static_cast<std::uint16_t>(port);
  }
  return e;
}

// Services whose deliveries never leave the host.
bool local_service(std::string_view service) {
  return equals(service, "local") || equals(service, "virtual") || equals(service, "pipe") ||
         equals(service, "error") || equals(service, "retry") || equals(service, "discard");
}

bool postfix_daemon(std::string_view s) {
  constexpr std::string_view kDaemons[] = {
      "smtp",       "lmtp",     "smtpd",           "cleanup",        "qmgr",
      "oqmgr",      "pickup",   "local",           "virtual",        "pipe",
      "error",      "retry",    "discard",         "bounce",         "defer",
      "trace",      "verify",   "flush",           "proxymap",       "spawn",
      "scache",     "showq",    "anvil",           "tlsmgr",         "tlsproxy",
      "postscreen", "dnsblog",  "master",          "postfix-script", "postsuper",
      "postdrop",   "sendmail", "trivial-rewrite", "qmqpd",          "postlog",
      "postqueue",  "postmap",  "postmulti",       "lmtpd"};
  return std::find(std::begin(kDaemons), std::end(kDaemons), s) != std::end(kDaemons);
}

// Reply code "550" or "550-" / "550 " at the start of `s`; enhanced status after it.
struct Reply {
  std::string_view code, enhanced;
};
Reply parse_reply(std::string_view s) {
  Reply r;
  if (s.size() < 3 || s[0] < '2' || s[0] > '5' || !is_digit(s[1]) || !is_digit(s[2])) return r;
  if (s.size() > 3 && s[3] != ' ' && s[3] != '-') return r;
  r.code = s.substr(0, 3);
  std::size_t pos = 3;
  while (pos < s.size() && (s[pos] == ' ' || s[pos] == '-')) ++pos;
  // RFC 3463: class "." subject (1-3 digits) "." detail (1-3 digits), same class as the code.
  std::size_t end = pos;
  if (end < s.size() && s[end] == s[0]) {
    ++end;
    for (int part = 0; part < 2; ++part) {
      if (end >= s.size() || s[end] != '.') return r;
      ++end;
      std::size_t n = 0;
      while (end < s.size() && is_digit(s[end]) && n < 4) ++end, ++n;
      if (n == 0 || n > 3) return r;
    }
    if (end == s.size() || s[end] == ' ' || s[end] == ',' || s[end] == ';')
      r.enhanced = s.substr(pos, end - pos);
  }
  return r;
}

constexpr std::string_view kWhyNoTo = "delivery record without to=";

}  // namespace

bool is_loopback(std::string_view ip) {
  if (has_prefix(ip, "::ffff:")) ip.remove_prefix(7);
  if (ip == "::1") return true;
  if (!has_prefix(ip, "127.")) return false;
  // The rest must be an IPv4 address: three more dotted decimal parts.
  int dots = 0;
  for (char c : ip) {
    if (c == '.')
      ++dots;
    else if (!is_digit(c))
      return false;
  }
  return dots == 3;
}

namespace {
// Character classes of queue ids: bit 0 upper-case hex, bit 1 the long-id alphabet, bit 2 any
// ASCII letter or digit.
constexpr auto kQidClass = [] {
  std::array<std::uint8_t, 256> t{};
  for (char c : std::string_view{"0123456789ABCDEF"}) t[static_cast<unsigned char>(c)] |= 1;
  for (char c : std::string_view{"0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"})
    t[static_cast<unsigned char>(c)] |= 2;
  for (int c = 0; c < 256; ++c) {
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) t[c] |= 4;
  }
  return t;
}();
}  // namespace

bool is_queue_id(std::string_view s) {
  // Both forms are at least 6 characters; the bits every character has decide the form.
  if (s.size() < 6) return false;
  unsigned all = 3;
  for (char c : s) all &= kQidClass[static_cast<unsigned char>(c)];
  if ((all & 1) != 0) return true;
  // enable_long_queue_ids (global/mail_queue.h): seconds (base 52, 6+ chars) and microseconds
  // (base 52, 4 chars) over the vowel-free alphabet [0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z], then the
  // separator 'z' (the last one), then the inode number in base 51 (no 'z').
  if ((all & 2) == 0) return false;
  const auto sep = s.rfind('z');
  return sep != std::string_view::npos && sep >= 10 && sep + 1 < s.size();
}

namespace {
// is_queue_id(s.substr(0, n)), 16 bytes at a time when s has them and n fits (every short id, most
// long ones): the classes of the bytes as bit masks instead of a table lookup per byte. Inlined:
// every line with a queue id goes here.
[[gnu::always_inline]] inline bool queue_id_at(std::string_view s, std::size_t n) {
#if defined(__SSE2__)
  if (n >= 6 && n <= 16 && s.size() >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data()));
    const auto in = [&v](char lo, char hi) {
      return _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8(static_cast<char>(lo - 1))),
                           _mm_cmplt_epi8(v, _mm_set1_epi8(static_cast<char>(hi + 1))));
    };
    const __m128i digit = in('0', '9');
    const unsigned want = (1u << n) - 1;
    const auto hex = static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(digit, in('A', 'F'))));
    if ((hex & want) == want) return true;
    // The long form's alphabet: letters and digits but the vowels.
    const __m128i l = _mm_or_si128(v, _mm_set1_epi8(0x20));
    const auto is = [&l](char c) { return _mm_cmpeq_epi8(l, _mm_set1_epi8(c)); };
    const __m128i vowel = _mm_or_si128(_mm_or_si128(is('a'), is('e')),
                                       _mm_or_si128(_mm_or_si128(is('i'), is('o')), is('u')));
    const __m128i alnum =
        _mm_or_si128(digit, _mm_and_si128(_mm_cmpgt_epi8(l, _mm_set1_epi8('a' - 1)),
                                          _mm_cmplt_epi8(l, _mm_set1_epi8('z' + 1))));
    const auto alphabet = static_cast<unsigned>(_mm_movemask_epi8(_mm_andnot_si128(vowel, alnum)));
    if ((alphabet & want) != want) return false;
    const auto z =
        static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('z')))) & want;
    if (z == 0) return false;
    const auto sep = static_cast<std::size_t>(31 - __builtin_clz(z));
    return sep >= 10 && sep + 1 < n;
  }
#endif
  return is_queue_id(s.substr(0, n));
}

// "Jan" -> 1 ... "Dec" -> 12, 0 for anything else (exact case, as syslog writes them).
int month_number(std::string_view m) {
  const auto key = (static_cast<unsigned>(static_cast<unsigned char>(m[0])) << 16) |
                   (static_cast<unsigned>(static_cast<unsigned char>(m[1])) << 8) |
                   static_cast<unsigned>(static_cast<unsigned char>(m[2]));
  constexpr auto k = [](const char(&n)[4]) {
    return (static_cast<unsigned>(n[0]) << 16) | (static_cast<unsigned>(n[1]) << 8) |
           static_cast<unsigned>(n[2]);
  };
  switch (key) {
    case k("Jan"): return 1;
    case k("Feb"): return 2;
    case k("Mar"): return 3;
    case k("Apr"): return 4;
    case k("May"): return 5;
    case k("Jun"): return 6;
    case k("Jul"): return 7;
    case k("Aug"): return 8;
    case k("Sep"): return 9;
    case k("Oct"): return 10;
    case k("Nov"): return 11;
    case k("Dec"): return 12;
    default: return 0;
  }
}
}  // namespace

namespace {
std::optional<core::UnixTime> classic_stamp(std::string_view s, const Clock& clock,
                                            std::size_t& consumed) {
  if (s.size() < 14 || s[3] != ' ') return std::nullopt;
  const int month = month_number(s.substr(0, 3));
  if (month == 0) return std::nullopt;
  std::size_t pos = 4;
  if (s[pos] == ' ') ++pos;  // "Jun  9": day padded with a space
  int day = digits(s, pos, 2);
  if (day >= 0) {
    pos += 2;
  } else {
    day = digits(s, pos, 1);
    if (day < 0) return std::nullopt;
    pos += 1;
  }
  if (pos >= s.size() || s[pos] != ' ') return std::nullopt;
  ++pos;
  if (pos + 8 > s.size()) return std::nullopt;
  const auto secs = parse_hms(s, pos);
  if (secs < 0 || day < 1 || day > 31) return std::nullopt;
  consumed = pos + 8;
  // The latest year that puts the stamp at most a day after the reference: a log read in
  // January holding December lines gets last year's. Feb 29 walks back to a leap year.
  const core::UnixTime local_ref = clock.reference + clock.utc_offset;
  // The reference year, computed once per clock (a whole log shares one).
  thread_local core::UnixTime cached_ref = 0;
  thread_local std::int64_t cached_year = 1970;
  if (cached_ref != local_ref) {
    cached_ref = local_ref;
    cached_year = year_of_day(core::day_of(local_ref));
  }
  const auto ref_year = cached_year;
  // Only a January stamp can be in the year after the reference's (read on Dec 31).
  for (auto y = month == 1 ? ref_year + 1 : ref_year; y > ref_year - 8; --y) {
    if (day > days_in_month(y, month)) continue;
    const core::UnixTime local =
        days_from_civil(y, static_cast<unsigned>(month), static_cast<unsigned>(day)) *
            core::kDaySeconds +
        secs;
    if (local <= local_ref + core::kDaySeconds) return local - clock.utc_offset;
  }
  return std::nullopt;
}

// The last classic stamp parsed on this thread: consecutive lines mostly share their second, and
// the same bytes under the same clock always give the same time.
struct StampCache {
  std::array<char, 16> text{};
  std::size_t size = 0;  // 0: empty
  Clock clock;
  core::UnixTime time = 0;
  // A classic stamp (15 bytes) of a day whose times all fall in one year under the clock (see
  // DayCache): a stamp of the same minute is then this one's time give or take its seconds.
  bool same_day_uniform = false;
  int seconds = 0;  // the stamp's seconds (same_day_uniform only)
};
thread_local StampCache stamp_cache;

// The day of the last classic stamp parsed on this thread: "Jun  9 " and the stamp of its
// 00:00:00, when every time of that day falls in the same year under the clock (then the
// stamp of any time that day is that plus the time: classic_stamp()'s year search is the same).
struct DayCache {
  std::array<char, 7> key{};
  Clock clock;
  core::UnixTime start = 0;
  bool valid = false;
};
thread_local DayCache day_cache;

void remember_day(std::string_view date, const Clock& clock) {
  auto& day = day_cache;
  day.valid = false;
  std::array<char, 15> first{}, last{};
  std::memcpy(first.data(), date.data(), 7);
  std::memcpy(first.data() + 7, "00:00:00", 8);
  std::memcpy(last.data(), date.data(), 7);
  std::memcpy(last.data() + 7, "23:59:60", 8);
  std::size_t used = 0;
  const auto t0 = classic_stamp({first.data(), first.size()}, clock, used);
  const auto t1 = classic_stamp({last.data(), last.size()}, clock, used);
  if (!t0 || !t1 || *t1 - *t0 != core::kDaySeconds) return;
  std::memcpy(day.key.data(), date.data(), 7);
  day.clock = clock;
  day.start = *t0;
  day.valid = true;
}

// The last stamp's time, when s starts with its bytes under the same clock: most lines repeat
// the stamp of the line before. And when only the seconds differ from a classic stamp of a
// uniform day (a busy log's next second), that time moved by the difference; the cache then
// holds the new stamp. Inlined where it is asked, without a call.
[[gnu::always_inline]] inline bool repeated_stamp(std::string_view s, const Clock& clock,
                                                  std::size_t& consumed, core::UnixTime& t) {
  auto& cache = stamp_cache;
  const std::size_t n = cache.size;
  if (n == 0 || cache.clock.reference != clock.reference ||
      cache.clock.utc_offset != clock.utc_offset || s.size() < n)
    return false;
  // Two overlapping 8-byte loads a side (n is 8 to 16).
  std::uint64_t a = 0, b = 0, c = 0, d = 0;
  std::memcpy(&a, s.data(), 8);
  std::memcpy(&b, cache.text.data(), 8);
  std::memcpy(&c, s.data() + n - 8, 8);
  std::memcpy(&d, cache.text.data() + n - 8, 8);
  if (a == b && c == d) {
    consumed = n;
    t = cache.time;
    return true;
  }
  // c and d are bytes 7-14 ("08:50:20"): the last two are the seconds, the rest must match.
  if (!cache.same_day_uniform || a != b || ((c ^ d) & 0x0000FFFFFFFFFFFFULL) != 0) return false;
  const auto tens = static_cast<unsigned>((c >> 48) & 0xFF) - '0';
  const auto ones = static_cast<unsigned>(c >> 56) - '0';
  if (tens > 5 || ones > 9) return false;  // second 60 (a leap second) goes the long way
  const int secs = static_cast<int>(tens * 10 + ones);
  t = cache.time + (secs - cache.seconds);
  cache.time = t;
  cache.seconds = secs;
  cache.text[13] = s[13];
  cache.text[14] = s[14];
  consumed = n;
  return true;
}
}  // namespace

namespace {
// parse_classic_stamp() past its check of the last stamp (parse_line makes that check itself).
std::optional<core::UnixTime> classic_stamp_uncached(std::string_view s, const Clock& clock,
                                                     std::size_t& consumed) {
  auto& cache = stamp_cache;
  // The day of the last stamp ("Jun  9 ", the 15-byte form): only the time of day is new.
  auto& day = day_cache;
  std::optional<core::UnixTime> t;
  const auto in_day = [&] {
    return day.valid && s.size() >= 15 && std::memcmp(s.data(), day.key.data(), 7) == 0 &&
           day.clock.reference == clock.reference && day.clock.utc_offset == clock.utc_offset;
  };
  bool uniform = in_day();
  if (uniform) {
    if (const auto secs = parse_hms(s, 7); secs >= 0) {
      consumed = 15;
      t = day.start + secs;
    }
  }
  if (!t) {
    t = classic_stamp(s, clock, consumed);
    if (t && consumed == 15 && s[6] == ' ') {
      remember_day(s.substr(0, 7), clock);
      uniform = in_day();
    }
  }
  if (t && consumed >= 8 && consumed <= cache.text.size()) {
    // A fixed-size copy when the line is long enough: no call.
    if (s.size() >= cache.text.size()) {
      std::memcpy(cache.text.data(), s.data(), cache.text.size());
    } else {
      std::memcpy(cache.text.data(), s.data(), consumed);
    }
    cache.size = consumed;
    cache.clock = clock;
    cache.time = *t;
    cache.same_day_uniform = uniform && consumed == 15;
    if (cache.same_day_uniform) cache.seconds = (s[13] - '0') * 10 + (s[14] - '0');
  }
  return t;
}
}  // namespace

std::optional<core::UnixTime> parse_classic_stamp(std::string_view s, const Clock& clock,
                                                  std::size_t& consumed) {
  if (core::UnixTime t = 0; repeated_stamp(s, clock, consumed, t)) return t;
  return classic_stamp_uncached(s, clock, consumed);
}

std::optional<core::UnixTime> parse_rfc3339_stamp(std::string_view s, const Clock& clock,
                                                  std::size_t& consumed) {
  if (s.size() < 19) return std::nullopt;
  const int y = digits(s, 0, 4);
  const int mo = digits(s, 5, 2);
  const int d = digits(s, 8, 2);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || s[4] != '-' || s[7] != '-') return std::nullopt;
  if (d > days_in_month(y, mo)) return std::nullopt;
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return std::nullopt;
  const auto secs = parse_hms(s, 11);
  if (secs < 0) return std::nullopt;
  std::size_t pos = 19;
  if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
    ++pos;
    const auto start = pos;
    while (pos < s.size() && is_digit(s[pos])) ++pos;
    if (pos == start) return std::nullopt;
  }
  std::int64_t offset = clock.utc_offset;  // no zone: local time, like classic stamps
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    offset = 0;
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    const int oh = digits(s, pos + 1, 2);
    std::size_t mpos = pos + 3;
    if (mpos < s.size() && s[mpos] == ':') ++mpos;
    const int om = digits(s, mpos, 2);
    if (oh < 0 || om < 0 || oh > 23 || om > 59) return std::nullopt;
    offset = (s[pos] == '-' ? -1 : 1) * (std::int64_t{oh} * 3600 + om * 60);
    pos = mpos + 2;
  }
  consumed = pos;
  const auto local =
      days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * core::kDaySeconds +
      secs;
  return local - offset;
}

namespace {
// A delivery record's field names, told apart by their length and bytes.
enum class Field : std::uint8_t { To, OrigTo, Relay, Delay, Delays, Dsn, Status, Other };
Field field_named(const char* p, std::size_t n) {
  switch (n) {
    case 2: return std::memcmp(p, "to", 2) == 0 ? Field::To : Field::Other;
    case 3: return std::memcmp(p, "dsn", 3) == 0 ? Field::Dsn : Field::Other;
    case 5:
      if (std::memcmp(p, "relay", 5) == 0) return Field::Relay;
      return std::memcmp(p, "delay", 5) == 0 ? Field::Delay : Field::Other;
    case 6:
      if (std::memcmp(p, "delays", 6) == 0) return Field::Delays;
      return std::memcmp(p, "status", 6) == 0 ? Field::Status : Field::Other;
    case 7: return std::memcmp(p, "orig_to", 7) == 0 ? Field::OrigTo : Field::Other;
    default: return Field::Other;
  }
}

Status status_named(std::string_view w) {
  switch (w.size()) {
    case 4: return std::memcmp(w.data(), "sent", 4) == 0 ? Status::Sent : Status::Other;
    case 7:
      if (std::memcmp(w.data(), "bounced", 7) == 0) return Status::Bounced;
      return std::memcmp(w.data(), "expired", 7) == 0 ? Status::Expired : Status::Other;
    case 8: return std::memcmp(w.data(), "deferred", 8) == 0 ? Status::Deferred : Status::Other;
    default: return Status::Other;
  }
}

// parse_delivery() into `d` (freshly constructed) when the queue id's ": " is at `colon`: false
// (and `why`) when it is no record.
bool parse_delivery_at(std::string_view message, std::size_t colon, std::string_view service,
                       Delivery& d, std::string_view* why) {
  const auto fail = [&](std::string_view reason) {
    if (why != nullptr) *why = reason;
    return false;
  };
  // In front of "to=" the queue id is unambiguous, so any alphanumeric token is taken: log
  // generators and hand-written samples use ids Postfix itself never would ("FGHIJ67890").
  if (colon == std::string_view::npos || colon < 5 || colon > 32 || alnum_run(message) < colon) {
    const auto qid = message.substr(0, colon == std::string_view::npos ? 0 : colon);
    if (qid.size() < 5 || qid.size() > 32 || !std::all_of(qid.begin(), qid.end(), [](char c) {
          return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
        }))
      return fail("delivery record without a queue id");
  }
  d.queue_id = message.substr(0, colon);
  const char* const readable = message.data();
  const char* const end = readable + message.size();
  const char* p = readable + colon + 2;
  bool have_to = false;
  bool have_status = false;
  // `name=value, name=value, ..., status=word (text)`. Unknown names (tls=, conn_use=, newer
  // Postfix additions) are skipped wherever they appear.
  while (p < end) {
    const char* const eq = find_byte(p, end, '=', readable);
    if (eq == nullptr || eq == p) return fail("delivery field without '='");
    const auto field = field_named(p, static_cast<std::size_t>(eq - p));
    if (field == Field::Other &&
        !std::all_of(p, eq, [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; }))
      return fail("bad delivery field name");
    p = eq + 1;
    if (field == Field::Status) {
      const char* w = p;
      while (w < end && *w != ' ' && *w != ',') ++w;
      d.status_word = std::string_view(p, static_cast<std::size_t>(w - p));
      while (w < end && (*w == ' ' || *w == ',')) ++w;
      std::string_view rest(w, static_cast<std::size_t>(end - w));
      if (!rest.empty() && rest.front() == '(') {
        if (rest.back() == ')') {
          d.text = rest.substr(1, rest.size() - 2);
        } else {
          d.text = rest.substr(1);
          d.text_truncated = true;
        }
      } else {
        d.text = rest;
      }
      have_status = true;
      break;
    }
    std::string_view value;
    if (p < end && *p == '<') {
      // An address may hold ", " inside a quoted local part; "<...>, " ends it.
      const char* close = p;
      for (;;) {
        close = find_byte(close, end, '>', readable);
        if (close == nullptr || close + 1 >= end)
          return fail("delivery field address without '>, '");
        if (close[1] == ',' && close + 2 < end && close[2] == ' ') break;
        ++close;
      }
      value = std::string_view(p + 1, static_cast<std::size_t>(close - p - 1));
      p = close + 3;
    } else {
      const char* comma = p;
      for (;;) {
        comma = find_byte(comma, end, ',', readable);
        if (comma == nullptr || comma + 1 >= end) return fail("delivery record without status=");
        if (comma[1] == ' ') break;
        ++comma;
      }
      value = std::string_view(p, static_cast<std::size_t>(comma - p));
      p = comma + 2;
    }
    switch (field) {
      case Field::To:
        d.recipient = unbracket(value);
        have_to = true;
        break;
      case Field::OrigTo: d.orig_to = unbracket(value); break;
      case Field::Relay: {
        d.relay = value;
        const auto e = split_endpoint(value);
        d.relay_host = e.host;
        d.relay_ip = e.ip;
        d.relay_port = e.port;
        break;
      }
      case Field::Delay: d.delay_text = value; break;
      case Field::Delays: d.delays_text = value; break;
      case Field::Dsn: d.dsn = value; break;
      case Field::Status:
      case Field::Other: break;
    }
  }
  if (!have_to) return fail(kWhyNoTo);
  if (!have_status) return fail("delivery record without status=");
  d.status = status_named(d.status_word);

  // The remote reply: "host X[IP] said: 550-5.7.1 ..." or "... refused to talk to me: 554 ...";
  // a sent record's text is the reply itself ("250 2.0.0 Ok: queued as ...").
  std::string_view reply = d.text;
  d.reply = d.text;
  if (const auto m = find_reply_marker(d.text); m.at != std::string_view::npos) {
    reply = d.text.substr(m.at + m.size);
    if (m.said) d.reply = reply;
    auto who = d.text.substr(0, m.at);
    if (has_prefix(who, "host ")) d.remote_host = split_endpoint(who.substr(5)).host;
  }
  d.reply = without_in_reply_to(d.reply);
  const auto r = parse_reply(reply);
  d.reply_code = r.code;
  d.enhanced_status = r.enhanced.empty() ? d.dsn : r.enhanced;
  d.status_from_reply = !r.enhanced.empty();

  if (local_service(service)) {
    d.hop = Hop::Local;
  } else if (d.relay == "none" || d.relay.empty()) {
    d.hop = Hop::Remote;  // no connection was made: still a remote destination's outcome
  } else if (d.relay_ip.empty()) {
    d.hop = Hop::Local;  // relay=local, relay=dovecot (a pipe transport), relay=virtual
  } else if (is_loopback(d.relay_ip) || d.relay_ip.find('/') != std::string_view::npos) {
    d.hop = Hop::Loopback;  // content filter (amavis on 127.0.0.1:10024) or LMTP on a socket
  } else {
    d.hop = Hop::Remote;
  }
  return true;
}

bool parse_delivery_into(std::string_view message, std::string_view service, Delivery& d,
                         std::string_view* why) {
  return parse_delivery_at(message, find_colon_space(message), service, d, why);
}
}  // namespace

std::string_view remote_reply(std::string_view text) {
  const auto m = find_reply_marker(text);
  return without_in_reply_to(m.said ? text.substr(m.at + m.size) : text);
}

std::optional<std::uint32_t> Header::pid() const {
  if (pid_text.empty()) return std::nullopt;
  std::uint64_t v = 0;
  for (const char c : pid_text) v = v * 10 + static_cast<std::uint64_t>(c - '0');
  return static_cast<std::uint32_t>(v);  // at most 2^32 - 1: parse_line checked
}

double Delivery::delay() const { return to_double(delay_text).value_or(-1); }

std::array<double, 4> Delivery::delays() const {
  std::array<double, 4> out = {-1, -1, -1, -1};
  std::string_view v = delays_text;
  for (std::size_t i = 0; i < 4 && !v.empty(); ++i) {
    const auto slash = v.find('/');
    out[i] = to_double(v.substr(0, slash)).value_or(-1);
    v = slash == std::string_view::npos ? std::string_view{} : v.substr(slash + 1);
  }
  return out;
}

std::optional<Delivery> parse_delivery(std::string_view message, std::string_view service,
                                       std::string_view* why) {
  std::optional<Delivery> d(std::in_place);
  if (!parse_delivery_into(message, service, *d, why)) return std::nullopt;
  return d;
}

namespace {
// How many of s's first bytes are ASCII letters and digits: alnum_run() and, only when it ran
// out of whole 16 bytes, one byte at a time.
[[gnu::always_inline]] inline std::size_t leading_alnum(std::string_view s) {
  std::size_t n = alnum_run(s);
  if (s.size() - n >= 16) return n;  // alnum_run() stopped at a byte that is neither
  while (n < s.size() && (kQidClass[static_cast<unsigned char>(s[n])] & 4) != 0) ++n;
  return n;
}

// Postfix services that log no message's delivery, queue event or connection failure: inbound
// screening, DNSBL lookups, connection counting, TLS and connection caches. Nothing in their
// messages matters to classify, which counts their lines and reads no further (an inbound MTA
// logs many of them: half the lines of the bench's real log are postscreen's and dnsblog's).
[[gnu::always_inline]] inline bool quiet_service(std::string_view s) {
  switch (s.size()) {  // each case is its name's size: the prefix compare is an equality
    case 5: return has_prefix(s, "anvil");
    case 6: return has_prefix(s, "tlsmgr") || has_prefix(s, "scache");
    case 7: return has_prefix(s, "dnsblog");
    case 8: return has_prefix(s, "tlsproxy");
    case 10: return has_prefix(s, "postscreen");
    default: return false;
  }
}

// `out` is a bind or connect failure `f` for `reason`.
void failed(ParsedLine& out, Kind kind, Failure f, std::string_view reason) {
  f.reason = reason;
  f.cannot_assign = has_prefix(reason, "Cannot assign requested address");
  out.failure = f;
  out.kind = kind;
}

// No '=' in s's first 68 bytes: five 16-byte compares (the last overlapping) and one test, where
// a scan that stops at the first '=' costs a branch per 16 bytes.
[[gnu::always_inline]] inline bool no_equals_in_68(std::string_view s) {
#if defined(__SSE2__)
  if (s.size() >= 68) {
    const __m128i eq = _mm_set1_epi8('=');
    const auto at = [&](std::size_t i) {
      return _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + i)), eq);
    };
    const __m128i any = _mm_or_si128(_mm_or_si128(at(0), at(16)),
                                     _mm_or_si128(_mm_or_si128(at(32), at(48)), at(52)));
    return _mm_movemask_epi8(any) == 0;
  }
#endif
  const auto head = s.substr(0, 68);
  return find_byte(head.data(), head.data() + head.size(), '=') == nullptr;
}

// `program` is `name`, or ends in "/name" (a syslog tag with a prefix).
// Against a literal, the compare inlined (has_prefix()): every other program's line asks twice.
template <std::size_t N>
bool program_is(std::string_view program, const char (&name)[N]) {
  constexpr std::size_t n = N - 1;
  if (program.size() < n || !has_prefix(program.substr(program.size() - n), name)) return false;
  return program.size() == n || program[program.size() - n - 1] == '/';
}

// The events of rampart-milter's and OpenDKIM's lines (a NotPostfix `out`): the queue id that
// leads the message (1-32 letters and digits, then ": ") and what it says of that message.
void note_tracked_program(ParsedLine& out) {
  const auto& h = out.header;
  const bool milter = program_is(h.program, "rampart-milter");
  if (!milter && !program_is(h.program, "opendkim")) return;
  const auto msg = h.message;
  const std::size_t colon = leading_alnum(msg);
  const bool qid = colon >= 1 && colon <= 32 && colon + 1 < msg.size() && msg[colon] == ':' &&
                   msg[colon + 1] == ' ';
  const auto rest = qid ? msg.substr(colon + 2) : std::string_view{};
  if (milter) {
    if (!qid || !has_prefix(rest, "pin ")) return;
    out.event = Event::Pinned;
  } else if (qid && has_prefix(rest, "DKIM-Signature field added")) {
    out.event = Event::Signed;
  } else {
    out.event = Event::OpenDkim;
    return;
  }
  out.queue_id = msg.substr(0, colon);
}
// The header after the stamp (`rest`: " host tag: message") in its common shape, read from bit
// masks of 64 bytes at once instead of a scan per field: one space, the host, one space, a tag
// whose ": " is within the 64 bytes, a pid of at most seven digits. Sets every header field but
// time (host, program, pid_text, message, and for a Postfix tag syslog_name, service and postfix;
// the absent ones empty) exactly as the general reading in parse_line_with() would, and returns
// true. false, having set nothing, for every other shape, and wherever the general reading would
// find the line malformed: that reading then runs and says why. Needs the 64 bytes that end at
// the line's end, or those from `rest` on, to be the line's (lines of fewer than 64 bytes take
// the general reading), and 8 bytes before `rest`.
[[gnu::always_inline]] inline bool fast_header(const char* line_start, std::string_view rest,
                                               Header& h) {
#if defined(__SSE2__)
  const char* const r = rest.data();
  const std::size_t n = rest.size();
  if (r - line_start < 8) return false;
  // The 64 bytes read: from `rest` on, or the line's last 64 (then bits for bytes before
  // `rest` are shifted out).
  const char* base = r;
  unsigned shift = 0;
  if (n < 64) {
    // An empty rest (a stamp with a long fraction can take a whole line) would shift by 64.
    if (n == 0 || r + n - line_start < 64) return false;
    base = r + n - 64;
    shift = static_cast<unsigned>(64 - n);
  }
  // The spaces of the i-th 16 bytes, as bits 16i to 16i + 15.
  const __m128i space = _mm_set1_epi8(' ');
  const auto spaces_in = [base, space](int i) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + 16 * i));
    const auto m = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(b, space)));
    return static_cast<std::uint64_t>(m) << (16 * i);
  };
  // Bit i: rest[i] is a space. Bit 0 is the one after the stamp; a second space right after it
  // (a padded host column) is left to the general reading.
  std::uint64_t spaces = (spaces_in(0) | spaces_in(1) | spaces_in(2) | spaces_in(3)) >> shift;
  if ((spaces & 3) != 1) return false;
  spaces &= spaces - 1;
  if (spaces == 0) return false;
  const auto host_end = static_cast<unsigned>(__builtin_ctzll(spaces));
  spaces &= spaces - 1;
  if (spaces == 0) return false;
  // The tag's ": ": the first space after the host's must follow a ':' and a tag of 1+ bytes.
  const auto tag_space = static_cast<unsigned>(__builtin_ctzll(spaces));
  const unsigned tag_begin = host_end + 1;
  if (tag_space < tag_begin + 2 || r[tag_space - 1] != ':') return false;
  const char* const tag = r + tag_begin;
  const std::size_t tag_size = tag_space - 1 - tag_begin;
  std::size_t program_size = tag_size;
  std::string_view pid_text;
  if (tag[tag_size - 1] == ']') {
    std::size_t open = tag_size - 1;
    if (!trailing_digits(tag + open, open)) return false;  // 8+ digits
    if (open <= 1 || tag[open - 1] != '[' || open == tag_size - 1) return false;
    pid_text = std::string_view(tag + open, tag_size - 1 - open);
    program_size = open - 1;
  }
  // From here on every header field is set, the absent ones to empty: parse_line() clears them
  // only for the other readings.
  h.host = std::string_view(r + 1, host_end - 1);
  h.program = std::string_view(tag, program_size);
  h.message = std::string_view(r + tag_space + 1, n - tag_space - 1);
  h.pid_text = pid_text;
  // The program's last '/': one 16-byte compare that ends at the program's end (a third of
  // the instructions of a 64-byte mask).
  const std::size_t slash = last_slash(line_start, tag, program_size);
  bool postfix = false;
  std::string_view syslog_name, service;
  if (slash != std::string_view::npos && slash > 0 && slash + 1 < program_size) {
    service = std::string_view(tag + slash + 1, program_size - slash - 1);
    postfix = has_prefix(std::string_view(tag, program_size), "postfix") || postfix_daemon(service);
    if (postfix) {
      syslog_name = std::string_view(tag, slash);
    } else {
      service = {};
    }
  }
  h.postfix = postfix;
  h.syslog_name = syslog_name;
  h.service = service;
  return true;
#else
  (void)line_start;
  (void)rest;
  (void)h;
  return false;
#endif
}

// parse_line() with or without fast_header(): the general reading alone is what the fast one
// must agree with (detail::parse_line_general, for the tests and the fuzz harness).
template <bool kFastHeader>
[[gnu::always_inline]] inline void parse_line_with(std::string_view line, const Clock& clock,
                                                   ParsedLine& out) {
  // Reset field by field: a whole `out = {}` costs more than the parse of most lines.
  out.kind = Kind::Malformed;
  out.event = Event::None;
  out.why = {};
  out.dated = false;
  // Field by field again: `out.header = Header{}` compiles to a slow `rep stos`.
  Header& h = out.header;
  h.time = 0;
  // The rest of the header is cleared where a reading leaves fields unset (fast_header() sets
  // them all). One by one: a chained `a = b = {}` reloads each view just stored, and a 16-byte
  // load of two 8-byte stores cannot be forwarded (a stall of some 20 cycles, every line).
  const auto clear_header = [&h] {
    h.host = {};
    h.program = {};
    h.syslog_name = {};
    h.service = {};
    h.message = {};
    h.pid_text = {};
    h.postfix = false;
  };
  out.queue_id = {};
  out.delivery.reset();
  out.failure.reset();
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const auto malformed = [&](std::string_view why) {
    out.kind = Kind::Malformed;
    out.why = why;
  };

  std::size_t used = 0;
  if (!repeated_stamp(line, clock, used, h.time)) {
    // RFC 3339 stamps start with the year's digits, classic ones with the month's name.
    auto t = !line.empty() && is_digit(line.front()) ? parse_rfc3339_stamp(line, clock, used)
                                                     : classic_stamp_uncached(line, clock, used);
    if (!t) {
      clear_header();
      return malformed("no timestamp");
    }
    h.time = *t;
  }
  out.dated = true;
  if (!kFastHeader || !fast_header(line.data(), line.substr(used), h)) {
    clear_header();
    std::string_view rest = line.substr(used);
    if (rest.empty() || rest.front() != ' ') return malformed("no host");
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const char* sp = find_byte(rest.data(), rest.data() + rest.size(), ' ');
    if (sp == nullptr || sp == rest.data()) return malformed("no host");
    const auto host_size = static_cast<std::size_t>(sp - rest.data());
    h.host = rest.substr(0, host_size);
    rest.remove_prefix(host_size + 1);

    // The tag: "program[pid]: " or "program: ", up to the first ": "; a space before it is no tag.
    // So the first space must be that of the first ": ".
    std::size_t tag_end = std::string_view::npos;
    if (const char* sp2 = find_byte(rest.data(), rest.data() + rest.size(), ' ')) {
      const auto at = static_cast<std::size_t>(sp2 - rest.data());
      if (at < 2 || rest[at - 1] != ':') return malformed("no program tag");
      tag_end = at - 1;
    }
    // Pointer and length, not a string_view: a view spilled and reloaded whole stalls here.
    const char* const tag = rest.data();
    const std::size_t tag_size = tag_end == std::string_view::npos ? rest.size() : tag_end;
    if (tag_size == 0) return malformed("no program tag");
    h.message = tag_end == std::string_view::npos ? std::string_view{} : rest.substr(tag_end + 2);
    std::size_t program_size = tag_size;
    if (tag[tag_size - 1] == ']') {
      // "[digits]" at the end; the '[' must be the tag's last and not its first character. Up to
      // seven digits (every Linux pid) are found in the 8 bytes before the ']' at once; the
      // number is read only when asked for (Header::pid()).
      std::size_t open = tag_size - 1;
      const char* const close = tag + open;
      if (close - line.data() < 8 || !trailing_digits(close, open)) {
        // Read backwards, one digit at a time, at most ten, no more than 2^32 - 1.
        std::uint64_t scale = 1, pid = 0;
        open = tag_size - 1;
        while (open > 0 && is_digit(tag[open - 1]) && scale <= 1'000'000'000) {
          pid += static_cast<std::uint64_t>(tag[open - 1] - '0') * scale;
          scale *= 10;
          --open;
        }
        if (pid > 0xffffffffu) return malformed("bad pid in program tag");
      }
      // Stopped short of a '[': not a digit, an eleventh digit, or the tag's start.
      if (open <= 1 || tag[open - 1] != '[' || open == tag_size - 1)
        return malformed("bad pid in program tag");
      h.pid_text = std::string_view(tag + open, tag_size - 1 - open);
      program_size = open - 1;
    }
    h.program = std::string_view(tag, program_size);
    if (tag_end == std::string_view::npos) return malformed("no message after program tag");

    const auto slash = last_slash(line.data(), tag, program_size);

    if (slash != std::string_view::npos && slash > 0 && slash + 1 < h.program.size()) {
      const auto service = h.program.substr(slash + 1);
      if (has_prefix(h.program, "postfix") || postfix_daemon(service)) {
        h.postfix = true;
        h.syslog_name = h.program.substr(0, slash);
        h.service = service;
      }
    }
  }
  if (!h.postfix) {
    out.kind = Kind::NotPostfix;
    note_tracked_program(out);
    return;
  }
  if (quiet_service(h.service)) {
    out.kind = Kind::OtherPostfix;
    return;
  }

  std::string_view msg = h.message;
  // The first ": ". When the message starts with a queue id it ends that id, so the leading
  // letters and digits are tried first; otherwise only a delivery record's (before column 64)
  // still matters.
  std::size_t colon = leading_alnum(msg);
  if (colon + 1 >= msg.size() || msg[colon] != ':' || msg[colon + 1] != ' ') {
    // smtpd logs nothing classify reads but a message's reception ("QID: client=..."): its
    // other lines (connect, disconnect, TLS, NOQUEUE rejects: most of an MTA's smtpd lines) are
    // only counted.
    if (equals(h.service, "smtpd")) {
      out.kind = Kind::OtherPostfix;
      return;
    }
    // A delivery record's "to=" ends by column 67: without an '=' before it, none can follow
    // the first ": ", and most of these messages ("connect from ...") have none.
    colon = no_equals_in_68(msg) ? std::string_view::npos : find_colon_space(msg.substr(0, 66));
  }
  if (colon != std::string_view::npos && colon < 64 && has_prefix(msg.substr(colon + 2), "to=")) {
    std::string_view why;
    auto& d = out.delivery.emplace();
    if (!parse_delivery_at(msg, colon, h.service, d, &why)) {
      out.delivery.reset();
      return malformed(why);
    }
    out.queue_id = d.queue_id;
    out.kind = Kind::Delivery;
    return;
  }
  if (colon != std::string_view::npos && queue_id_at(msg, colon))
    out.queue_id = msg.substr(0, colon);
  const auto body = out.queue_id.empty() ? msg : msg.substr(colon + 2);

  // The bodies that matter start with 'f', 'w' or 'c': one look at the first byte spares the
  // other lines these compares.
  switch (body.empty() ? '\0' : body.front()) {
    case 'f':
      if (!out.queue_id.empty() && has_prefix(body, "from=")) {
        // qmgr's "from=<...>, size=..., nrcpt=1 (queue active)" mostly: only ", status=expired"
        // or ", status=force-expired" makes it an expiry.
        for (std::size_t from = 0;;) {
          const auto at = find_pair(body.substr(from), ',', ' ');
          if (at == std::string_view::npos) break;
          from += at + 2;
          const auto after = body.substr(from);
          if (has_prefix(after, "status=expired") || has_prefix(after, "status=force-expired")) {
            out.kind = Kind::MessageExpired;
            return;
          }
        }
      }
      break;
    case 'w':
      // smtp_connect.c: msg_warn("%s: bind %s: %m", myname, bind_addr).
      if (out.queue_id.empty() && has_prefix(body, "warning: ")) {
        auto w = body.substr(9);
        const auto fn_end = w.find(": bind ");
        if (fn_end != std::string_view::npos &&
            w.substr(0, fn_end).find(' ') == std::string_view::npos) {
          w.remove_prefix(fn_end + 7);
          const auto addr_end = w.find(": ");
          if (addr_end != std::string_view::npos && addr_end > 0) {
            Failure f;
            f.address = w.substr(0, addr_end);
            return failed(out, Kind::BindFailure, f, w.substr(addr_end + 2));
          }
        }
      }
      break;
    case 'c':
      // smtp_connect.c: "connect to %s[%s]:%d: %s" (EADDRNOTAVAIL when the bind address is gone
      // and the kernel cannot pick a source).
      if (has_prefix(body, "connect to ")) {
        const auto target = body.substr(11);
        const auto end = target.find(": ");
        if (end != std::string_view::npos) {
          const auto e = split_endpoint(target.substr(0, end));
          Failure f;
          f.queue_id = out.queue_id;
          f.host = e.host;
          f.address = e.ip;
          f.port = e.port;
          return failed(out, Kind::ConnectFailure, f, target.substr(end + 2));
        }
      }
      break;
    default: break;
  }
  out.kind = Kind::OtherPostfix;
  if (!out.queue_id.empty()) {
    const auto sv = h.service;
    if (equals(sv, "smtpd")) {
      if (has_prefix(body, "client=")) out.event = Event::Received;
    } else if (equals(sv, "qmgr")) {
      if (equals(body, "removed")) out.event = Event::Removed;
    } else if (equals(sv, "pickup")) {
      if (has_prefix(body, "uid=") || has_prefix(body, "sender=")) out.event = Event::Received;
    }
  }
}

}  // namespace

void parse_line(std::string_view line, const Clock& clock, ParsedLine& out) {
  parse_line_with<true>(line, clock, out);
}

void detail::parse_line_general(std::string_view line, const Clock& clock, ParsedLine& out) {
  parse_line_with<false>(line, clock, out);
}

std::string_view detail::first_difference(const ParsedLine& a, const ParsedLine& b) {
  const auto same = [](std::string_view x, std::string_view y) {
    return x.size() == y.size() && (x.empty() || x.data() == y.data());
  };
  if (a.kind != b.kind) return "kind";
  if (a.event != b.event) return "event";
  if (a.why != b.why) return "why";
  if (a.dated != b.dated) return "dated";
  const Header &x = a.header, &y = b.header;
  if (x.time != y.time) return "header.time";
  if (!same(x.host, y.host)) return "header.host";
  if (!same(x.program, y.program)) return "header.program";
  if (!same(x.syslog_name, y.syslog_name)) return "header.syslog_name";
  if (!same(x.service, y.service)) return "header.service";
  if (!same(x.pid_text, y.pid_text)) return "header.pid_text";
  if (!same(x.message, y.message)) return "header.message";
  if (x.postfix != y.postfix) return "header.postfix";
  if (!same(a.queue_id, b.queue_id)) return "queue_id";
  if (a.delivery.has_value() != b.delivery.has_value()) return "delivery";
  if (a.delivery) {
    const Delivery &d = *a.delivery, &e = *b.delivery;
    constexpr std::string_view Delivery::*kViews[] = {
        &Delivery::queue_id,        &Delivery::recipient,   &Delivery::orig_to,
        &Delivery::relay,           &Delivery::relay_host,  &Delivery::relay_ip,
        &Delivery::delay_text,      &Delivery::delays_text, &Delivery::dsn,
        &Delivery::status_word,     &Delivery::text,        &Delivery::reply_code,
        &Delivery::enhanced_status, &Delivery::remote_host, &Delivery::reply};
    for (const auto view : kViews) {
      if (!same(d.*view, e.*view)) return "delivery field";
    }
    if (d.relay_port != e.relay_port || d.status != e.status ||
        d.text_truncated != e.text_truncated || d.status_from_reply != e.status_from_reply ||
        d.hop != e.hop)
      return "delivery field";
  }
  if (a.failure.has_value() != b.failure.has_value()) return "failure";
  if (a.failure) {
    const Failure &f = *a.failure, &g = *b.failure;
    if (!same(f.queue_id, g.queue_id) || !same(f.address, g.address) || !same(f.host, g.host) ||
        f.port != g.port || !same(f.reason, g.reason) || f.cannot_assign != g.cannot_assign)
      return "failure field";
  }
  return {};
}

ParsedLine parse_line(std::string_view line, const Clock& clock) {
  ParsedLine out;
  parse_line(line, clock, out);
  return out;
}

}  // namespace rampart::maillog
