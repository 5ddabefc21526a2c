// rampart-maillog-gen: writes a Postfix mail log of a given size to stdout for
// tests/bench/classify_bench.sh. Real lines from a log file (--real) come round again and again,
// restamped and with fresh queue ids, between synthetic outbound messages (smtpd, cleanup,
// opendkim, qmgr, smtp to Microsoft 365 / Google / Yahoo relays with sent, deferred and bounced
// replies, qmgr removed). Classic syslog stamps ("Jan  1 00:00:00") that only ever increase.
// Documentation addresses and example domains only. Standalone: no rampart code, no I/O but the
// --real file and stdout.
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

constexpr std::string_view kUsage =
    "usage: rampart-maillog-gen --bytes N [--real FILE] [--real-percent P] [--transport NAME]\n"
    "  --bytes N         stop after the line that reaches N bytes (suffixes K, M, G: 2^10...)\n"
    "  --real FILE       Postfix log whose lines are repeated (RFC 3339 or classic stamps)\n"
    "  --real-percent P  share of the output, in bytes, taken from FILE (default 50)\n"
    "  --transport NAME  syslog_name suffix of the stream's smtp transport (default out05)\n";

// A small, fast, deterministic generator (splitmix64): the same arguments write the same log,
// so a shorter run is a prefix of a longer one.
struct Rng {
  std::uint64_t s = 0x9E3779B97F4A7C15ULL;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  unsigned below(unsigned n) { return static_cast<unsigned>(next() % n); }
};

class Out {
 public:
  Out() { buf_.reserve(kCap + 4096); }
  ~Out() { flush(); }
  Out(const Out&) = delete;
  Out& operator=(const Out&) = delete;
  void put(std::string_view s) { buf_.append(s); }
  void put(char c) { buf_.push_back(c); }
  void num(std::uint64_t v) {
    char tmp[24];
    const auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
    buf_.append(tmp, r.ptr);
  }
  void hex(std::uint64_t v, int width) {
    char tmp[24];
    for (int i = width - 1; i >= 0; --i) {
      tmp[i] = "0123456789ABCDEF"[v & 15U];
      v >>= 4;
    }
    buf_.append(tmp, static_cast<std::size_t>(width));
  }
  // End of line: count it and write out the buffer when it is full.
  void eol() {
    buf_.push_back('\n');
    if (buf_.size() >= kCap) flush();
  }
  std::uint64_t written() const { return flushed_ + buf_.size(); }
  void flush() {
    if (buf_.empty()) return;
    if (std::fwrite(buf_.data(), 1, buf_.size(), stdout) != buf_.size()) {
      std::perror("rampart-maillog-gen: write");
      std::exit(1);
    }
    flushed_ += buf_.size();
    buf_.clear();
  }

 private:
  static constexpr std::size_t kCap = 1U << 20;
  std::string buf_;
  std::uint64_t flushed_ = 0;
};

// The clock: seconds since Jan 1 00:00:00 of a non-leap year, printed in classic syslog form.
class Clock {
 public:
  void tick(unsigned lines_per_second) {
    if (++lines_ % lines_per_second == 0) ++secs_;
  }
  std::uint64_t now() const { return secs_; }
  void stamp(Out& o) {
    if (secs_ != cached_secs_) render();
    o.put(std::string_view(text_, 15));
  }

 private:
  void render() {
    static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    static constexpr std::string_view kMon = "JanFebMarAprMayJunJulAugSepOctNovDec";
    std::uint64_t day = (secs_ / 86400) % 365;
    const std::uint64_t sod = secs_ % 86400;
    int m = 0;
    while (day >= static_cast<std::uint64_t>(kDays[m]))
      day -= static_cast<std::uint64_t>(kDays[m++]);
    const auto d = static_cast<unsigned>(day + 1);
    std::snprintf(text_, sizeof text_, "%.3s %2u %02u:%02u:%02u", kMon.data() + 3 * m, d,
                  static_cast<unsigned>(sod / 3600), static_cast<unsigned>(sod / 60 % 60),
                  static_cast<unsigned>(sod % 60));
    cached_secs_ = secs_;
  }
  std::uint64_t secs_ = 0;
  std::uint64_t lines_ = 0;
  std::uint64_t cached_secs_ = ~0ULL;
  char text_[32] = {};
};

// Long queue id alphabet (enable_long_queue_ids): no vowels; 'z' separates the inode part.
constexpr std::string_view kSafe52 = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz";

bool is_queue_id(std::string_view s) {
  if (s.size() >= 6 && s.find_first_not_of("0123456789ABCDEF") == std::string_view::npos)
    return true;
  const auto sep = s.rfind('z');
  if (sep == std::string_view::npos || sep < 10 || sep + 1 >= s.size()) return false;
  return s.find_first_not_of(kSafe52) == std::string_view::npos;
}

std::string long_queue_id(std::uint64_t serial, std::uint64_t cycle) {
  std::string id(10, '0');
  for (int i = 9; i >= 0; --i) {
    id[static_cast<std::size_t>(i)] = kSafe52[serial % 52];
    serial /= 52;
  }
  id.push_back('z');
  do {
    id.push_back(kSafe52[cycle % 51]);  // base 51: never 'z'
    cycle /= 51;
  } while (cycle != 0);
  return id;
}

// The real log, split into (host + rest) without its stamp: "helga postfix/smtpd[1]: ...".
struct RealLine {
  std::string rest;
  std::size_t qid_at = 0;  // offset in rest of a leading queue id, or 0
  std::size_t qid_len = 0;
};

std::vector<RealLine> load_real(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "rampart-maillog-gen: cannot read %s: %s\n", path, std::strerror(errno));
    std::exit(66);
  }
  std::vector<RealLine> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::size_t skip = 0;
    if (line.size() > 16 && line[3] == ' ' && line[6] == ' ' && line[9] == ':') {
      skip = 16;  // "Mmm dd HH:MM:SS "
    } else {
      skip = line.find(' ');
      if (skip == std::string::npos) continue;
      ++skip;
    }
    RealLine r{line.substr(skip)};
    const auto tag_end = r.rest.find("]: ");
    if (tag_end != std::string::npos) {
      const auto qid_start = tag_end + 3;
      const auto colon = r.rest.find(':', qid_start);
      if (colon != std::string::npos &&
          is_queue_id(std::string_view(r.rest).substr(qid_start, colon - qid_start))) {
        r.qid_at = qid_start;
        r.qid_len = colon - qid_start;
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

struct Relay {
  std::string_view host, ip, rcpt_domain;
  std::string_view sent, deferred, bounced;  // replies; "%Q" is replaced by the queue id
  std::string_view defer_dsn, bounce_dsn;
  unsigned share, defer_pct, bounce_pct;
};

constexpr Relay kRelays[] = {
    {"contoso-example.mail.protection.outlook.com", "198.51.100.10", "contoso.example.com",
     "250 2.6.0 <%Q@send.example.net> [InternalId=1234567890, "
     "Hostname=DM6PR01MB0001.example.prod.outlook.com] Queued mail for delivery",
     "host contoso-example.mail.protection.outlook.com[198.51.100.10] said: 451 4.7.500 Server "
     "busy. Please try again later from [203.0.113.94]. (S77719) "
     "[DM6PR01MB0001.example.prod.outlook.com] (in reply to RCPT TO command)",
     "host contoso-example.mail.protection.outlook.com[198.51.100.10] said: 550 5.4.1 Recipient "
     "address rejected: Access denied. AS(201806281) [DM6PR01MB0001.example.prod.outlook.com] (in "
     "reply to RCPT TO command)",
     "4.7.500", "5.4.1", 45, 8, 3},
    {"aspmx.l.google.com", "198.51.100.26", "gmail.example.org",
     "250 2.0.0 OK  1704067200 a1-20020a5d4b81000000b0033b2c3d4e5si123456wrp.42 - gsmtp",
     "host aspmx.l.google.com[198.51.100.26] said: 421-4.7.28 Gmail has detected an unusual rate "
     "of unsolicited mail originating from your IP address. 421 4.7.28 To protect our users from "
     "spam, mail sent from your IP address has been temporarily rate limited. - gsmtp (in reply to "
     "end of DATA command)",
     "host aspmx.l.google.com[198.51.100.26] said: 550-5.1.1 The email account that you tried to "
     "reach does not exist. Please try double-checking the recipient's email address for typos or "
     "unnecessary spaces. 550 5.1.1 https://support.google.com/mail/?p=NoSuchUser a1si123456wrp.42 "
     "- gsmtp (in reply to RCPT TO command)",
     "4.7.28", "5.1.1", 35, 5, 6},
    {"mta5.am0.yahoodns.net", "198.51.100.40", "yahoo.example.net", "250 ok dirdel",
     "host mta5.am0.yahoodns.net[198.51.100.40] said: 421 4.7.0 [TSS04] Messages from 203.0.113.94 "
     "temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see "
     "https://postmaster.yahooinc.com/error-codes (in reply to MAIL FROM command)",
     "host mta5.am0.yahoodns.net[198.51.100.40] said: 554 delivery error: dd This user doesn't "
     "have a yahoo.example.net account [0] - mta5.mail.bf2.yahoo.com (in reply to end of DATA "
     "command)",
     "4.7.0", "5.0.0", 20, 12, 4},
};

class Synth {
 public:
  Synth(Out& o, Clock& c, Rng& r, std::string transport)
      : o_(o), c_(c), r_(r), smtp_prog_("postfix/" + transport + "/smtp[") {}

  void message() {
    const std::uint64_t qid = 0x3A4B000000ULL + serial_++;
    const unsigned client = 10 + r_.below(40);
    const unsigned smtpd_pid = 20000 + r_.below(500);
    head("postfix/smtpd[", smtpd_pid);
    o_.put("connect from app");
    o_.num(client);
    o_.put(".send.example.net[192.0.2.");
    o_.num(client);
    o_.put(']');
    end();
    head("postfix/smtpd[", smtpd_pid);
    id(qid);
    o_.put("client=app");
    o_.num(client);
    o_.put(".send.example.net[192.0.2.");
    o_.num(client);
    o_.put(']');
    end();
    head("postfix/cleanup[", 31000 + r_.below(8));
    id(qid);
    o_.put("message-id=<");
    o_.num(c_.now());
    o_.put('.');
    o_.hex(qid, 10);
    o_.put("@send.example.net>");
    end();
    head("opendkim[", 812);
    id(qid);
    o_.put("DKIM-Signature field added (s=s2024, d=send.example.net)");
    end();
    head("postfix/qmgr[", 999);
    id(qid);
    o_.put("from=<news@send.example.net>, size=");
    o_.num(4000 + r_.below(60000));
    o_.put(", nrcpt=1 (queue active)");
    end();
    head("postfix/smtpd[", smtpd_pid);
    o_.put("disconnect from app");
    o_.num(client);
    o_.put(".send.example.net[192.0.2.");
    o_.num(client);
    o_.put("] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5");
    end();

    unsigned pick = r_.below(100);
    const Relay* relay = &kRelays[0];
    for (const auto& rl : kRelays) {
      if (pick < rl.share) {
        relay = &rl;
        break;
      }
      pick -= rl.share;
    }
    // 80% through the stream's transport, the rest through the default smtp transport.
    const bool streamed = r_.below(100) < 80;
    const unsigned outcome = r_.below(100);
    const std::uint64_t rcpt = r_.below(500000);
    if (outcome < relay->defer_pct) {
      delivery(*relay, streamed, qid, rcpt, "deferred", relay->defer_dsn, relay->deferred);
      delivery(*relay, streamed, qid, rcpt, "sent", "2.0.0", relay->sent);  // the retry
    } else if (outcome < relay->defer_pct + relay->bounce_pct) {
      delivery(*relay, streamed, qid, rcpt, "bounced", relay->bounce_dsn, relay->bounced);
      head("postfix/bounce[", 32000 + r_.below(8));
      id(qid);
      o_.put("sender non-delivery notification: ");
      o_.hex(qid ^ 0x5000000000ULL, 10);
      end();
    } else {
      delivery(*relay, streamed, qid, rcpt, "sent", "2.0.0", relay->sent);
    }
    head("postfix/qmgr[", 999);
    id(qid);
    o_.put("removed");
    end();
  }

 private:
  void head(std::string_view prog, unsigned pid) {
    c_.stamp(o_);
    o_.put(" mx1 ");
    o_.put(prog);
    o_.num(pid);
    o_.put("]: ");
  }
  void id(std::uint64_t qid) {
    o_.hex(qid, 10);
    o_.put(": ");
  }
  void end() {
    o_.eol();
    c_.tick(8);
  }
  void delivery(const Relay& rl, bool streamed, std::uint64_t qid, std::uint64_t rcpt,
                std::string_view status, std::string_view dsn, std::string_view reply) {
    head(streamed ? std::string_view(smtp_prog_) : std::string_view("postfix/smtp["),
         40000 + r_.below(200));
    id(qid);
    o_.put("to=<user");
    o_.num(rcpt);
    o_.put('@');
    o_.put(rl.rcpt_domain);
    o_.put(">, relay=");
    o_.put(rl.host);
    o_.put('[');
    o_.put(rl.ip);
    o_.put("]:25, delay=1.2, delays=0.1/0.01/0.4/0.69, dsn=");
    o_.put(dsn);
    o_.put(", status=");
    o_.put(status);
    o_.put(" (");
    for (std::size_t at = reply.find("%Q"); at != std::string_view::npos; at = reply.find("%Q")) {
      o_.put(reply.substr(0, at));
      o_.hex(qid, 10);
      reply.remove_prefix(at + 2);
    }
    o_.put(reply);
    o_.put(')');
    end();
  }

  Out& o_;
  Clock& c_;
  Rng& r_;
  std::string smtp_prog_;
  std::uint64_t serial_ = 0;
};

std::uint64_t parse_size(const char* s) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s, &end, 10);
  std::uint64_t mult = 1;
  if (end != nullptr && *end != '\0') {
    switch (*end) {
      case 'K': mult = 1ULL << 10; break;
      case 'M': mult = 1ULL << 20; break;
      case 'G': mult = 1ULL << 30; break;
      default: return 0;
    }
    if (end[1] != '\0') return 0;
  }
  return v * mult;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t bytes = 0;
  const char* real_path = nullptr;
  unsigned real_pct = 50;
  std::string transport = "out05";
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i + 1 >= argc) {
      std::fputs(kUsage.data(), stderr);
      return 64;
    }
    if (a == "--bytes") {
      bytes = parse_size(argv[++i]);
    } else if (a == "--real") {
      real_path = argv[++i];
    } else if (a == "--real-percent") {
      real_pct = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
    } else if (a == "--transport") {
      transport = argv[++i];
    } else {
      std::fputs(kUsage.data(), stderr);
      return 64;
    }
  }
  if (bytes == 0 || real_pct > 100 || (real_pct > 0 && real_path == nullptr)) {
    std::fputs(kUsage.data(), stderr);
    return 64;
  }
  const std::vector<RealLine> real =
      real_path != nullptr && real_pct > 0 ? load_real(real_path) : std::vector<RealLine>{};
  if (real_pct > 0 && real.empty()) {
    std::fprintf(stderr, "rampart-maillog-gen: no lines in %s\n", real_path);
    return 65;
  }

  Out out;
  Clock clock;
  Rng rng;
  Synth synth(out, clock, rng, transport);
  std::unordered_map<std::string, std::string> qids;  // this pass's real queue id -> fresh one
  std::uint64_t real_bytes = 0;
  std::uint64_t serial = 0;
  std::uint64_t cycle = 0;
  std::size_t next_real = 0;
  // Interleave in runs of 64 lines so that both halves stay near their share at any size.
  while (out.written() < bytes) {
    const bool take_real =
        real_pct > 0 && (real_pct == 100 || real_bytes * 100 < out.written() * real_pct);
    if (!take_real) {
      synth.message();
      continue;
    }
    for (int n = 0; n < 64 && out.written() < bytes; ++n) {
      const std::uint64_t before = out.written();
      const RealLine& r = real[next_real];
      clock.stamp(out);
      out.put(' ');
      if (r.qid_len == 0) {
        out.put(r.rest);
      } else {
        const std::string old = r.rest.substr(r.qid_at, r.qid_len);
        auto it = qids.find(old);
        if (it == qids.end()) it = qids.emplace(old, long_queue_id(serial++, cycle)).first;
        out.put(std::string_view(r.rest).substr(0, r.qid_at));
        out.put(it->second);
        out.put(std::string_view(r.rest).substr(r.qid_at + r.qid_len));
      }
      out.eol();
      clock.tick(8);
      real_bytes += out.written() - before;
      if (++next_real == real.size()) {
        next_real = 0;
        ++cycle;
        qids.clear();
      }
    }
  }
  out.flush();
  return 0;
}
