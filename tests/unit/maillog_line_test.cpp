// The Postfix log line parser (sidecar/maillog/line.hpp): stamps and year inference, program
// tags, queue ids, delivery records and their reply codes, hops, bind/connect failures, bad input.
// Lines are written here with documentation addresses and domains. Pure.
#include <doctest/doctest.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/limits.hpp"
#include "maillog/line.hpp"

using namespace rampart;
using namespace rampart::maillog;

namespace {

// 2026-06-09T12:00:00Z
constexpr core::UnixTime kJune9Noon = 1781006400;

constexpr Clock kUtc{kJune9Noon, 0};

// A repeatable stream of pseudo-random numbers (xorshift64) for generated cases.
struct XorShift {
  std::uint64_t seed;
  std::uint64_t operator()() {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
  }
};

}  // namespace

TEST_CASE("parse_line: timestamps, classic and RFC 3339, in UTC seconds") {
  struct Case {
    const char* label;
    std::string stamp;
    Clock clock;
    const char* want;  // format_utc() of the result
  };
  const Case cases[] = {
      {"classic, padded day", "Jun  9 08:50:20", kUtc, "2026-06-09T08:50:20Z"},
      {"classic, two-digit day",
       "Jun 19 08:50:20",
       {kJune9Noon + 10 * 86400, 0},
       "2026-06-19T08:50:20Z"},
      {"classic, unpadded day", "Jun 9 08:50:20", kUtc, "2026-06-09T08:50:20Z"},
      {"classic, local time east of UTC",
       "Jun  9 08:50:20",
       {kJune9Noon, 7200},
       "2026-06-09T06:50:20Z"},
      {"classic, up to a day ahead of the reference stays this year", "Jun 10 11:00:00", kUtc,
       "2026-06-10T11:00:00Z"},
      {"classic, more than a day ahead is last year", "Jun 11 08:00:00", kUtc,
       "2025-06-11T08:00:00Z"},
      {"classic, December read in January rolls back",
       "Dec 31 23:59:59",
       {1767225600 /* 2026-01-01T00:00:00Z */ + 3600, 0},
       "2025-12-31T23:59:59Z"},
      {"classic, January read in January",
       "Jan  1 00:30:00",
       {1767225600 + 3600, 0},
       "2026-01-01T00:30:00Z"},
      {"classic, Feb 29 walks back to a leap year", "Feb 29 10:00:00", kUtc,
       "2024-02-29T10:00:00Z"},
      {"rfc3339, microseconds and offset", "2026-06-09T08:50:20.123456+02:00", kUtc,
       "2026-06-09T06:50:20Z"},
      {"rfc3339, Z", "2026-06-09T08:50:20Z", kUtc, "2026-06-09T08:50:20Z"},
      {"rfc3339, milliseconds, negative offset", "2026-06-09T08:50:20.000-05:30", kUtc,
       "2026-06-09T14:20:20Z"},
      {"rfc3339, no fraction, +00:00", "2026-06-09T08:50:20+00:00", kUtc, "2026-06-09T08:50:20Z"},
      {"rfc3339, crossing midnight backwards", "2026-01-01T00:10:00+01:00", kUtc,
       "2025-12-31T23:10:00Z"},
      {"iso-like, space and no zone: clock offset",
       "2026-06-09 08:50:20",
       {kJune9Noon, 3600},
       "2026-06-09T07:50:20Z"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto line = c.stamp + " mx1 postfix/qmgr[42]: 4F1A2B3C5D: removed";
    const auto got = parse_line(line, c.clock);
    REQUIRE(got.kind == Kind::OtherPostfix);
    CHECK(core::format_utc(got.header.time) == c.want);
    CHECK(got.header.host == "mx1");
  }
}

TEST_CASE("parse_line: classic stamps of every day, read in runs as a log has them") {
  // Consecutive lines of one day reuse that day's start; the day the reference year turns (a
  // stamp more than a day ahead of the reference is last year's) and Feb 29 must not. Expected
  // values come from the RFC 3339 form of the year the rule picks.
  constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  for (const std::int32_t offset : {0, 7200, -18000}) {
    // 2026-07-01T12:00:00Z and 2028-03-01T00:00:00Z (after a Feb 29), local offsets aside.
    for (const core::UnixTime ref : {core::UnixTime{1782907200}, core::UnixTime{1835481600}}) {
      const Clock clock{ref, offset};
      for (int m = 0; m < 12; ++m) {
        for (int d = 1; d <= kDays[m]; ++d) {
          for (const char* hms : {"00:00:00", "00:00:01", "12:34:56", "23:59:59", "23:59:60"}) {
            char classic[32];
            std::snprintf(classic, sizeof classic, "%s %2d %s", kMonths[m], d, hms);
            std::optional<core::UnixTime> want;
            std::size_t used = 0;
            for (int y = 2029; y > 2018 && !want; --y) {
              char iso[40];
              const int oh = std::abs(offset) / 3600, om = std::abs(offset) / 60 % 60;
              std::snprintf(iso, sizeof iso, "%04d-%02d-%02dT%s%c%02d:%02d", y, m + 1, d, hms,
                            offset < 0 ? '-' : '+', oh, om);
              const auto t = parse_rfc3339_stamp(iso, clock, used);
              if (!t) continue;  // Feb 29 of a common year
              if (*t + offset <= ref + offset + 86400) want = t;
            }
            CAPTURE(classic);
            CAPTURE(offset);
            CAPTURE(ref);
            const std::string l = std::string(classic) + " mx1 postfix/qmgr[1]: x";
            const auto got = parse_line(l, clock);
            REQUIRE(want.has_value());
            CHECK(got.kind != Kind::Malformed);
            CHECK(got.header.time == *want);
          }
        }
      }
    }
  }
}

TEST_CASE("parse_line: classic stamps second by second, across the minute and the year turn") {
  // A busy log's next line is mostly the next second of the same minute, which parse_line()
  // reads off the stamp before it. Where the year turns inside a minute (the reference is
  // 2026-07-01T12:00:30Z: a stamp after 2026-07-02T12:00:30 is last year's), and around a leap
  // second, it must give what a fresh reading of each stamp gives; so must stamps going back.
  const Clock clock{1782907230, 0};
  const auto want_of = [&](int day, int h, int mi, int se) {
    std::optional<core::UnixTime> want;
    std::size_t used = 0;
    for (int y = 2027; y > 2020 && !want; --y) {
      char iso[40];
      std::snprintf(iso, sizeof iso, "%04d-07-%02dT%02d:%02d:%02dZ", y, day, h, mi, se);
      const auto t = parse_rfc3339_stamp(iso, clock, used);
      if (t && *t <= clock.reference + 86400) want = t;
    }
    return want;
  };
  struct Stamp {
    int day, h, mi, se;
  };
  std::vector<Stamp> run;
  for (int t = 11 * 3600 + 59 * 60; t < 12 * 3600 + 2 * 60; ++t)
    run.push_back({2, t / 3600, t / 60 % 60, t % 60});  // the turn, second by second
  for (const Stamp st :
       {Stamp{1, 10, 0, 58}, Stamp{1, 10, 0, 59}, Stamp{1, 10, 0, 60}, Stamp{1, 10, 0, 30},
        Stamp{1, 10, 1, 0}, Stamp{1, 10, 1, 59}, Stamp{1, 10, 1, 5}, Stamp{2, 12, 0, 10},
        Stamp{2, 12, 0, 50}, Stamp{2, 12, 0, 20}})
    run.push_back(st);
  std::size_t last_year = 0;
  for (const auto& st : run) {
    char classic[32];
    std::snprintf(classic, sizeof classic, "Jul %2d %02d:%02d:%02d", st.day, st.h, st.mi, st.se);
    CAPTURE(classic);
    const auto want = want_of(st.day, st.h, st.mi, st.se);
    REQUIRE(want.has_value());
    const auto got = parse_line(std::string(classic) + " mx1 postfix/qmgr[1]: x", clock);
    REQUIRE(got.dated);
    CHECK(got.header.time == *want);
    if (core::format_utc(*want).starts_with("2025")) ++last_year;
  }
  CHECK(last_year == 89 + 1);  // 12:00:31-12:01:59, and 12:00:50 again
}

TEST_CASE("parse_line: bad timestamps are Malformed, never guessed") {
  const char* lines[] = {
      "",
      "Jnu  9 08:50:20 mx1 postfix/qmgr[1]: x",
      "Jun 32 08:50:20 mx1 postfix/qmgr[1]: x",
      "Jun  9 24:00:00 mx1 postfix/qmgr[1]: x",
      "Jun  9 08:5:20 mx1 postfix/qmgr[1]: x",
      "2026-02-30T08:50:20Z mx1 postfix/qmgr[1]: x",
      "2026-06-09T08:50:20.Z mx1 postfix/qmgr[1]: x",
      "2026-06-09T08:50:20+2:00 mx1 postfix/qmgr[1]: x",
      "2026-13-09T08:50:20Z mx1 postfix/qmgr[1]: x",
  };
  for (const auto* l : lines) {
    CAPTURE(l);
    const auto got = parse_line(l, kUtc);
    CHECK(got.kind == Kind::Malformed);
    CHECK(got.why == "no timestamp");
  }
}

TEST_CASE("parse_line: a stamp's time of day is read exactly as a plain reading reads it") {
  // "HH:MM:SS" is read with one 8-byte load (parse_hms). Random times and bytes from a set
  // with every edge (digits, the colon, the bytes next to '0' and '9', a space, high bytes),
  // one to three positions at a time, against a plain reading of the same 8 bytes; in both
  // stamp forms, so every path to it runs.
  const char bytes[] = {'0', '1', '2', '3', '5', '6', '9', ':', '/', ';', ' ', 'a', '\x80', '\xba'};
  std::uint64_t seed = 0x9E3779B97F4A7C15ULL;
  const auto next = [&] {
    seed += 0x9E3779B97F4A7C15ULL;
    std::uint64_t z = seed;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  };
  const auto plain = [](const std::string& t) -> long {
    const auto d = [&](int i) { return t[i] >= '0' && t[i] <= '9'; };
    if (t.size() != 8 || t[2] != ':' || t[5] != ':') return -1;
    for (const int i : {0, 1, 3, 4, 6, 7}) {
      if (!d(i)) return -1;
    }
    const auto n = [&](int i) { return (t[i] - '0') * 10 + (t[i + 1] - '0'); };
    if (n(0) > 23 || n(3) > 59 || n(6) > 60) return -1;
    return n(0) * 3600L + n(3) * 60L + n(6);
  };
  const auto base_classic = parse_line("Jun  9 00:00:00 mx1 postfix/qmgr[1]: x", kUtc);
  const auto base_iso = parse_line("2026-06-09T00:00:00Z mx1 postfix/qmgr[1]: x", kUtc);
  REQUIRE(base_classic.kind != Kind::Malformed);
  REQUIRE(base_iso.kind != Kind::Malformed);
  int valid = 0;
  for (int i = 0; i < 20000; ++i) {
    char t[9];
    std::snprintf(t, sizeof t, "%02d:%02d:%02d", static_cast<int>(next() % 25),
                  static_cast<int>(next() % 61), static_cast<int>(next() % 62));
    for (std::uint64_t k = next() % 4; k > 0; --k) t[next() % 8] = bytes[next() % sizeof bytes];
    const std::string hms(t, 8);
    CAPTURE(hms);
    const long want = plain(hms);
    valid += want >= 0 ? 1 : 0;
    const auto classic = parse_line("Jun  9 " + hms + " mx1 postfix/qmgr[1]: x", kUtc);
    const auto iso = parse_line("2026-06-09T" + hms + "Z mx1 postfix/qmgr[1]: x", kUtc);
    if (want < 0) {
      CHECK(classic.why == "no timestamp");
      CHECK(iso.why == "no timestamp");
    } else {
      CHECK(classic.header.time == base_classic.header.time + want);
      CHECK(iso.header.time == base_iso.header.time + want);
    }
  }
  // Both outcomes are well represented (about half the cases are times).
  CHECK(valid > 5000);
  CHECK(valid < 15000);
}

TEST_CASE("parse_line: program tags split into syslog_name, service and pid") {
  struct Case {
    const char* label;
    const char* tag;
    Kind want_kind;
    const char* want_program;
    const char* want_syslog_name;
    const char* want_service;
    bool want_pid;
  };
  const Case cases[] = {
      {"stock", "postfix/smtp[123]", Kind::OtherPostfix, "postfix/smtp", "postfix", "smtp", true},
      {"per-transport", "postfix/out05/smtp[123]", Kind::OtherPostfix, "postfix/out05/smtp",
       "postfix/out05", "smtp", true},
      {"multi-instance", "postfix-out/smtp[123]", Kind::OtherPostfix, "postfix-out/smtp",
       "postfix-out", "smtp", true},
      {"per-stream", "postfix/hcout1/smtp[123]", Kind::OtherPostfix, "postfix/hcout1/smtp",
       "postfix/hcout1", "smtp", true},
      {"odd syslog_name, known daemon", "mta/cleanup[123]", Kind::OtherPostfix, "mta/cleanup",
       "mta", "cleanup", true},
      {"no pid", "postfix/postfix-script", Kind::OtherPostfix, "postfix/postfix-script", "postfix",
       "postfix-script", false},
      {"opendkim", "opendkim[77]", Kind::NotPostfix, "opendkim", "", "", true},
      {"rampart-milter", "rampart-milter[78]", Kind::NotPostfix, "rampart-milter", "", "", true},
      {"bare postfix", "postfix[79]", Kind::NotPostfix, "postfix", "", "", true},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto line = std::string("Jun  9 08:50:20 mx1 ") + c.tag + ": hello: world";
    const auto got = parse_line(line, kUtc);
    CHECK(got.kind == c.want_kind);
    CHECK(got.header.program == c.want_program);
    CHECK(got.header.syslog_name == c.want_syslog_name);
    CHECK(got.header.service == c.want_service);
    CHECK(got.header.pid().has_value() == c.want_pid);
    CHECK(got.header.message == "hello: world");
  }
  const auto dkim = parse_line(
      "Jun  9 08:50:20 mx1 opendkim[77]: 4F1A2B3C5D: DKIM-Signature field added (s=s1, "
      "d=send.example.com)",
      kUtc);
  CHECK(dkim.kind == Kind::NotPostfix);
  CHECK(dkim.header.pid() == 77U);
  CHECK(dkim.header.message == "4F1A2B3C5D: DKIM-Signature field added (s=s1, d=send.example.com)");
}

TEST_CASE("is_queue_id: short hex, long base-52 with a 'z' separator, nothing else") {
  struct Case {
    const char* id;
    bool want;
  };
  const Case cases[] = {
      {"4F1A2B3C5D", true},
      {"0F5383D", true},
      {"3E29030F8637E", true},
      {"4PbC4x469Jz3tBr", true},
      {"4PcV4K5tFpz3tG5", true},
      {"4PbzC4x469Jz3tBr", true},
      {"NOQUEUE", false},
      {"4f1a2b3c5d", false},
      {"ABCDE", false},
      {"4PbC4x469Jz", false},
      {"4PbC4z3tBr", false},
      {"4PbCax469Jz3tBr", false},
      {"", false},
      {"warning", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.id);
    CHECK(is_queue_id(c.id) == c.want);
  }
}

TEST_CASE("parse_line: delivery records, field by field") {
  struct Case {
    const char* label;
    const char* line;
    Status want_status;
    Hop want_hop;
    const char* want_qid;
    const char* want_rcpt;
    const char* want_orig;
    const char* want_relay_host;
    const char* want_relay_ip;
    unsigned want_port;
    const char* want_dsn;
    const char* want_code;
    const char* want_enhanced;
    bool want_from_reply;
    const char* want_text;
  };
  const Case cases[] = {
      {"sent, short id",
       "Jun  9 08:50:20 mx1 postfix/out05/smtp[901]: 4F1A2B3C5D: to=<a@example.com>, "
       "relay=mx.example.com[192.0.2.10]:25, delay=1.2, delays=0.1/0.01/0.5/0.59, dsn=2.0.0, "
       "status=sent (250 2.0.0 OK 1717923020 x1si - gsmtp)",
       Status::Sent, Hop::Remote, "4F1A2B3C5D", "a@example.com", "", "mx.example.com", "192.0.2.10",
       25, "2.0.0", "250", "2.0.0", true, "250 2.0.0 OK 1717923020 x1si - gsmtp"},
      {"sent, long id, orig_to, conn_use",
       "2026-06-09T08:50:20.5+00:00 mx1 postfix-out/smtp[9]: 4PbC4x469Jz3tBr: "
       "to=<b@example.net>, orig_to=<alias@example.org>, relay=mx2.example.net[198.51.100.7]:25, "
       "conn_use=3, delay=0.4, delays=0/0/0.1/0.3, dsn=2.0.0, status=sent (250 ok)",
       Status::Sent, Hop::Remote, "4PbC4x469Jz3tBr", "b@example.net", "alias@example.org",
       "mx2.example.net", "198.51.100.7", 25, "2.0.0", "250", "2.0.0", false, "250 ok"},
      {"deferred, Microsoft throttle",
       "Jun  9 08:50:20 mx1 postfix/out05/smtp[901]: 4F1A2B3C5D: to=<c@example.com>, "
       "relay=example-com.mail.protection.outlook.test[203.0.113.5]:25, delay=2, "
       "delays=0/0/1/1, dsn=4.7.500, status=deferred (host "
       "example-com.mail.protection.outlook.test[203.0.113.5] said: 451 4.7.500 Server busy. "
       "Please try again later from [192.0.2.94]. (S77719) (in reply to RCPT TO command))",
       Status::Deferred, Hop::Remote, "4F1A2B3C5D", "c@example.com", "",
       "example-com.mail.protection.outlook.test", "203.0.113.5", 25, "4.7.500", "451", "4.7.500",
       true, nullptr},
      {"bounced, flattened multi-line Google reply",
       "Jun  9 08:50:20 mx1 postfix/hcout1/smtp[902]: 4F1A2B3C5E: to=<d@example.org>, "
       "relay=aspmx.l.google.test[2001:db8::1b]:25, delay=1.9, delays=0.05/0/1.1/0.71, "
       "dsn=5.7.1, status=bounced (host aspmx.l.google.test[2001:db8::1b] said: 550-5.7.1 "
       "[192.0.2.94 12] Our system has detected that this message is 550-5.7.1 likely "
       "unsolicited mail. 550 5.7.1 https://support.example.com/mail x1si - gsmtp (in reply to "
       "end of DATA command))",
       Status::Bounced, Hop::Remote, "4F1A2B3C5E", "d@example.org", "", "aspmx.l.google.test",
       "2001:db8::1b", 25, "5.7.1", "550", "5.7.1", true, nullptr},
      {"reply enhanced status differs from dsn: reply wins",
       "Jun  9 08:50:20 mx1 postfix/smtp[9]: 4F1A2B3C5D: to=<e@example.com>, "
       "relay=mx.example.com[192.0.2.10]:25, delay=1, delays=0/0/0/1, dsn=5.0.0, "
       "status=bounced (host mx.example.com[192.0.2.10] said: 550 5.1.1 <e@example.com>: "
       "Recipient address rejected: User unknown (in reply to RCPT TO command))",
       Status::Bounced, Hop::Remote, "4F1A2B3C5D", "e@example.com", "", "mx.example.com",
       "192.0.2.10", 25, "5.0.0", "550", "5.1.1", true, nullptr},
      {"reply without enhanced status: dsn",
       "Jun  9 08:50:20 mx1 postfix/smtp[9]: 4F1A2B3C5D: to=<f@example.com>, "
       "relay=mx.example.com[192.0.2.10]:25, delay=1, delays=0/0/0/1, dsn=4.0.0, "
       "status=deferred (host mx.example.com[192.0.2.10] said: 421 [TSS04] Messages from "
       "192.0.2.94 temporarily deferred (in reply to MAIL FROM command))",
       Status::Deferred, Hop::Remote, "4F1A2B3C5D", "f@example.com", "", "mx.example.com",
       "192.0.2.10", 25, "4.0.0", "421", "4.0.0", false, nullptr},
      {"dsn only: no connection (relay=none) is still remote",
       "Jun  9 08:50:20 mx1 postfix/out05/smtp[9]: 4F1A2B3C5D: to=<g@example.net>, relay=none, "
       "delay=30, delays=0.1/0/29.9/0, dsn=4.4.1, status=deferred (connect to "
       "mx.example.net[198.51.100.9]:25: Connection timed out)",
       Status::Deferred, Hop::Remote, "4F1A2B3C5D", "g@example.net", "", "none", "", 0, "4.4.1", "",
       "4.4.1", false, "connect to mx.example.net[198.51.100.9]:25: Connection timed out"},
      {"tls= field (Postfix 3.10) between delays and dsn",
       "Jun  9 08:50:20 mx1 postfix/smtp[9]: 4F1A2B3C5D: to=<h@example.com>, "
       "relay=mx.example.com[192.0.2.10]:25, delay=3.6, delays=0.08/0.02/0.85/0.14, "
       "tls=dane/!requiretls:nocertmatch, dsn=2.1.5, status=sent (250 2.0.0 Ok: queued as 1A2B3C)",
       Status::Sent, Hop::Remote, "4F1A2B3C5D", "h@example.com", "", "mx.example.com", "192.0.2.10",
       25, "2.1.5", "250", "2.0.0", true, nullptr},
      {"unknown field anywhere",
       "Jun  9 08:50:20 mx1 postfix/smtp[9]: 4F1A2B3C5D: to=<i@example.com>, future=x y, "
       "relay=mx.example.com[192.0.2.10]:2525, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent "
       "(250 ok)",
       Status::Sent, Hop::Remote, "4F1A2B3C5D", "i@example.com", "", "mx.example.com", "192.0.2.10",
       2525, "2.0.0", "250", "2.0.0", false, "250 ok"},
      {"hand-written queue id in front of to=",
       "Jun  9 08:50:20 mx1 postfix/smtp[9]: FGHIJ67890: to=<s@example.com>, "
       "relay=mx.example.com[192.0.2.10]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent "
       "(250 OK)",
       Status::Sent, Hop::Remote, "FGHIJ67890", "s@example.com", "", "mx.example.com", "192.0.2.10",
       25, "2.0.0", "250", "2.0.0", false, "250 OK"},
      {"content filter on loopback",
       "2026-06-09T08:50:20+01:00 mx1 postfix/amavis/smtp[3]: 4PbC4x469Jz3tBr: "
       "to=<j@example.com>, relay=127.0.0.1[127.0.0.1]:10024, delay=2.4, "
       "delays=0.29/0.02/0.01/2.1, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:"
       "10025): 250 2.0.0 Ok: queued as 4PbC4z6W5Qz3tG3)",
       Status::Sent, Hop::Loopback, "4PbC4x469Jz3tBr", "j@example.com", "", "127.0.0.1",
       "127.0.0.1", 10024, "2.0.0", "250", "2.0.0", true, nullptr},
      {"lmtp to ::1",
       "Jun  9 08:50:20 mx1 postfix/lmtp[3]: 4F1A2B3C5D: to=<k@example.com>, "
       "relay=localhost[::1]:24, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 "
       "<k@example.com> Saved)",
       Status::Sent, Hop::Loopback, "4F1A2B3C5D", "k@example.com", "", "localhost", "::1", 24,
       "2.0.0", "250", "2.0.0", true, nullptr},
      {"lmtp to a unix socket",
       "Jun  9 08:50:20 mx1 postfix/lmtp[3]: 4F1A2B3C5D: to=<l@example.com>, "
       "relay=mx1.example.com[private/dovecot-lmtp], delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, "
       "status=sent (250 2.0.0 <l@example.com> Saved)",
       Status::Sent, Hop::Loopback, "4F1A2B3C5D", "l@example.com", "", "mx1.example.com",
       "private/dovecot-lmtp", 0, "2.0.0", "250", "2.0.0", true, nullptr},
      {"pipe to dovecot is local",
       "Jun  9 08:50:20 mx1 postfix/pipe[3]: 4F1A2B3C5D: to=<m@example.com>, relay=dovecot, "
       "delay=0.12, delays=0.01/0.01/0/0.1, dsn=2.0.0, status=sent (delivered via dovecot "
       "service)",
       Status::Sent, Hop::Local, "4F1A2B3C5D", "m@example.com", "", "dovecot", "", 0, "2.0.0", "",
       "2.0.0", false, "delivered via dovecot service"},
      {"local, address without <>",
       "Jun  9 08:50:20 mx1 postfix/local[3]: 4F1A2B3C5D: to=n@mx1.example.com, "
       "orig_to=root@localhost, relay=local, delay=0.07, delays=0.04/0/0/0.03, dsn=5.1.1, "
       "status=bounced (unknown user: \"n\")",
       Status::Bounced, Hop::Local, "4F1A2B3C5D", "n@mx1.example.com", "root@localhost", "local",
       "", 0, "5.1.1", "", "5.1.1", false, "unknown user: \"n\""},
      {"expired per recipient",
       "Jun  9 08:50:20 mx1 postfix/smtp[9]: 4F1A2B3C5D: to=<o@example.com>, relay=none, "
       "delay=432000, delays=431990/0/10/0, dsn=4.4.1, status=expired (connect to "
       "mx.example.com[192.0.2.10]:25: Connection refused)",
       Status::Expired, Hop::Remote, "4F1A2B3C5D", "o@example.com", "", "none", "", 0, "4.4.1", "",
       "4.4.1", false, nullptr},
      {"address verification probe",
       "Jun  9 08:50:20 mx1 postfix/smtp[9]: 4F1A2B3C5D: to=<p@example.com>, "
       "relay=mx.example.com[192.0.2.10]:25, delay=1, delays=0/0/0/1, dsn=5.1.1, "
       "status=undeliverable (host mx.example.com[192.0.2.10] said: 550 5.1.1 no such user (in "
       "reply to RCPT TO command))",
       Status::Other, Hop::Remote, "4F1A2B3C5D", "p@example.com", "", "mx.example.com",
       "192.0.2.10", 25, "5.1.1", "550", "5.1.1", true, nullptr},
      {"refused to talk to me",
       "Jun  9 08:50:20 mx1 postfix/smtp[9]: 4F1A2B3C5D: to=<q@example.com>, "
       "relay=mx.example.com[192.0.2.10]:25, delay=1, delays=0/0/1/0, dsn=5.7.1, "
       "status=bounced (host mx.example.com[192.0.2.10] refused to talk to me: 554 5.7.1 "
       "Service unavailable; Client host [192.0.2.94] blocked using zen.example.org)",
       Status::Bounced, Hop::Remote, "4F1A2B3C5D", "q@example.com", "", "mx.example.com",
       "192.0.2.10", 25, "5.7.1", "554", "5.7.1", true, nullptr},
      {"truncated reply: no closing parenthesis",
       "Jun  9 08:50:20 mx1 postfix/smtp[9]: 4F1A2B3C5D: to=<r@example.com>, "
       "relay=mx.example.com[192.0.2.10]:25, delay=1, delays=0/0/1/0, dsn=5.7.1, "
       "status=bounced (host mx.example.com[192.0.2.10] said: 550-5.7.1 [192.0.2.94] Our",
       Status::Bounced, Hop::Remote, "4F1A2B3C5D", "r@example.com", "", "mx.example.com",
       "192.0.2.10", 25, "5.7.1", "550", "5.7.1", true, nullptr},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = parse_line(c.line, kUtc);
    REQUIRE_MESSAGE(got.kind == Kind::Delivery, got.why);
    REQUIRE(got.delivery.has_value());
    const auto& d = *got.delivery;
    CHECK(d.status == c.want_status);
    CHECK(d.hop == c.want_hop);
    CHECK(d.queue_id == c.want_qid);
    CHECK(got.queue_id == c.want_qid);
    CHECK(d.recipient == c.want_rcpt);
    CHECK(d.orig_to == c.want_orig);
    CHECK(d.relay_host == c.want_relay_host);
    CHECK(d.relay_ip == c.want_relay_ip);
    CHECK(d.relay_port == c.want_port);
    CHECK(d.dsn == c.want_dsn);
    CHECK(d.reply_code == c.want_code);
    CHECK(d.enhanced_status == c.want_enhanced);
    CHECK(d.status_from_reply == c.want_from_reply);
    if (c.want_text != nullptr) CHECK(d.text == c.want_text);
  }
}

TEST_CASE("parse_line: delays and the remote host of the reply") {
  const auto got = parse_line(
      "Jun  9 08:50:20 mx1 postfix/smtp[9]: 4F1A2B3C5D: to=<a@example.com>, "
      "relay=mx.example.com[192.0.2.10]:25, delay=2017, delays=0.1/2017/0.03/0.05, dsn=4.0.0, "
      "status=deferred (host mx.example.com[192.0.2.10] said: 451 try later (in reply to end "
      "of DATA command))",
      kUtc);
  REQUIRE(got.delivery.has_value());
  CHECK(got.delivery->delay() == doctest::Approx(2017));
  CHECK(got.delivery->delays()[0] == doctest::Approx(0.1));
  CHECK(got.delivery->delays()[1] == doctest::Approx(2017));
  CHECK(got.delivery->delays()[2] == doctest::Approx(0.03));
  CHECK(got.delivery->delays()[3] == doctest::Approx(0.05));
  CHECK(got.delivery->remote_host == "mx.example.com");
  CHECK(got.delivery->text_truncated == false);
  CHECK(got.header.pid() == 9U);
}

TEST_CASE("parse_line: a relay's port, and the services that deliver on the host") {
  const auto delivery = [](const std::string& service, const std::string& relay) {
    return parse_line("Jun  9 08:50:20 mx1 postfix/" + service +
                          "[9]: 4F1A2B3C5D: to=<a@example.com>, relay=" + relay +
                          ", delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)",
                      kUtc);
  };
  const struct {
    const char* relay;
    unsigned want;
  } ports[] = {
      {"mx.example.com[192.0.2.1]:25", 25},
      {"mx.example.com[192.0.2.1]:025", 25},
      {"mx.example.com[192.0.2.1]:65535", 65535},
      {"mx.example.com[192.0.2.1]:65536", 0},
      {"mx.example.com[192.0.2.1]:99999999999", 0},
      {"mx.example.com[192.0.2.1]:25x", 0},
      {"mx.example.com[192.0.2.1]:", 0},
      {"mx.example.com[192.0.2.1]", 0},
      {"mx.example.com[192.0.2.1]:-25", 0},
  };
  for (const auto& c : ports) {
    CAPTURE(c.relay);
    const auto got = delivery("smtp", c.relay);
    REQUIRE(got.delivery.has_value());
    CHECK(got.delivery->relay_port == c.want);
  }
  const struct {
    const char* service;
    Hop want;
  } hops[] = {
      {"local", Hop::Local}, {"virtual", Hop::Local}, {"pipe", Hop::Local},
      {"error", Hop::Local}, {"retry", Hop::Local},   {"discard", Hop::Local},
      {"smtp", Hop::Remote}, {"lmtp", Hop::Remote},   {"lmtpd", Hop::Remote},
  };
  for (const auto& c : hops) {
    CAPTURE(c.service);
    const auto got = delivery(c.service, "mx.example.com[192.0.2.1]:25");
    REQUIRE(got.delivery.has_value());
    CHECK(got.delivery->hop == c.want);
  }
}

TEST_CASE("remote_reply: the server's words, without Postfix's note of the command") {
  const struct {
    const char* text;
    const char* want;
  } cases[] = {
      {"host mx.example.com[192.0.2.10] said: 451 try later (in reply to end of DATA command)",
       "451 try later"},
      {"host mx.example.com[192.0.2.10] said: 550 5.1.1 no (such) user (in reply to RCPT TO "
       "command)",
       "550 5.1.1 no (such) user"},
      // The last note is cut, as a search from the end finds it.
      {"host x[192.0.2.1] said: 550 no (in reply to RCPT TO command) (in reply to DATA command)",
       "550 no (in reply to RCPT TO command)"},
      {"host x[192.0.2.1] said: 550 no (in reply to (RCPT) TO command)", "550 no"},
      {"host x[192.0.2.1] said: 421 busy (in reply to", "421 busy (in reply to"},
      {"host x[192.0.2.1] said: 421 ends with command)", "421 ends with command)"},
      {"(in reply to DATA command)", "(in reply to DATA command)"},  // no space: no note
      {"250 2.0.0 Ok: queued as 4F1A2B3C5D", "250 2.0.0 Ok: queued as 4F1A2B3C5D"},
      // A text that starts with a reply code is the reply, whatever it says.
      {"250 ok, host relay said: fine (in reply to end of DATA command)",
       "250 ok, host relay said: fine"},
      {"550-5.7.1 host x said: no", "550-5.7.1 host x said: no"},
      // The first " said: " is the server's; later ones are its words.
      {"host x[192.0.2.1] said: 554 host y said: no", "554 host y said: no"},
      {"host x[192.0.2.1] refused to talk to me: 554 go away",
       "host x[192.0.2.1] refused to talk to me: 554 go away"},
      {"connect to x[192.0.2.1]:25: Connection refused",
       "connect to x[192.0.2.1]:25: Connection refused"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    CHECK(remote_reply(c.text) == c.want);
    // A delivery carries the same, read once by the parser.
    const std::string line = std::string("Jun  9 08:50:20 mx1 postfix/smtp[9]: 4F1A2B3C5D: ") +
                             "to=<a@example.com>, relay=x[192.0.2.1]:25, dsn=4.0.0, "
                             "status=deferred (" +
                             c.text + ")";
    const auto got = parse_line(line, kUtc);
    REQUIRE(got.delivery.has_value());
    CHECK(got.delivery->reply == c.want);
  }
}

TEST_CASE("parse_line: qmgr expiry, bind and connect failures") {
  const auto expired = parse_line(
      "Jun  9 08:50:20 mx1 postfix/qmgr[5]: 4F1A2B3C5D: from=<news@send.example.com>, "
      "status=expired, returned to sender",
      kUtc);
  CHECK(expired.kind == Kind::MessageExpired);
  CHECK(expired.queue_id == "4F1A2B3C5D");

  struct Case {
    const char* label;
    const char* line;
    Kind want_kind;
    const char* want_address;
    const char* want_host;
    unsigned want_port;
    const char* want_qid;
    bool want_cannot_assign;
  };
  const Case cases[] = {
      {"bind failure",
       "Jun  9 08:50:20 mx1 postfix/out05/smtp[7]: warning: smtp_connect_addr: bind "
       "203.0.113.94: Cannot assign requested address",
       Kind::BindFailure, "203.0.113.94", "", 0, "", true},
      {"bind failure, IPv6, other errno",
       "Jun  9 08:50:20 mx1 postfix/smtp[7]: warning: smtp_connect_sock: bind 2001:db8::5: "
       "Address already in use",
       Kind::BindFailure, "2001:db8::5", "", 0, "", false},
      {"connect failure, no queue id",
       "Jun  9 08:50:20 mx1 postfix/out05/smtp[7]: connect to mx.example.com[192.0.2.10]:25: "
       "Cannot assign requested address",
       Kind::ConnectFailure, "192.0.2.10", "mx.example.com", 25, "", true},
      {"connect failure, queue id",
       "Jun  9 08:50:20 mx1 postfix/smtp[7]: 4F1A2B3C5D: connect to mx.example.com[192.0.2.10]:25: "
       "Connection timed out",
       Kind::ConnectFailure, "192.0.2.10", "mx.example.com", 25, "4F1A2B3C5D", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = parse_line(c.line, kUtc);
    REQUIRE(got.kind == c.want_kind);
    REQUIRE(got.failure.has_value());
    CHECK(got.failure->address == c.want_address);
    CHECK(got.failure->host == c.want_host);
    CHECK(got.failure->port == c.want_port);
    CHECK(got.failure->queue_id == c.want_qid);
    CHECK(got.failure->cannot_assign == c.want_cannot_assign);
  }
}

TEST_CASE("parse_line: lines it does not understand say why") {
  struct Case {
    const char* label;
    std::string line;
    Kind want_kind;
    const char* want_why;
  };
  const Case cases[] = {
      {"empty", "", Kind::Malformed, "no timestamp"},
      {"binary garbage", std::string("\x00\xff\xfe\x01 status=sent", 17), Kind::Malformed,
       "no timestamp"},
      {"stamp only", "Jun  9 08:50:20", Kind::Malformed, "no host"},
      {"stamp and host", "Jun  9 08:50:20 mx1", Kind::Malformed, "no host"},
      {"no tag separator", "Jun  9 08:50:20 mx1 postfix/smtp[1]", Kind::Malformed,
       "no message after program tag"},
      {"tag with spaces", "Jun  9 08:50:20 mx1 last message repeated 3 times", Kind::Malformed,
       "no program tag"},
      {"bad pid", "Jun  9 08:50:20 mx1 postfix/smtp[12x]: hi", Kind::Malformed,
       "bad pid in program tag"},
      {"pid with a letter first", "Jun  9 08:50:20 mx1 postfix/smtp[x12]: hi", Kind::Malformed,
       "bad pid in program tag"},
      {"empty pid", "Jun  9 08:50:20 mx1 postfix/smtp[]: hi", Kind::Malformed,
       "bad pid in program tag"},
      {"pid and no program", "Jun  9 08:50:20 mx1 [12]: hi", Kind::Malformed,
       "bad pid in program tag"},
      {"pid without its bracket", "Jun  9 08:50:20 mx1 smtp12]: hi", Kind::Malformed,
       "bad pid in program tag"},
      {"pid of 11 digits", "Jun  9 08:50:20 mx1 postfix/smtp[00000000001]: hi", Kind::Malformed,
       "bad pid in program tag"},
      {"pid over 2^32-1", "Jun  9 08:50:20 mx1 postfix/smtp[4294967296]: hi", Kind::Malformed,
       "bad pid in program tag"},
      {"pid of 2^32-1", "Jun  9 08:50:20 mx1 postfix/smtp[4294967295]: hi", Kind::OtherPostfix, ""},
      {"pid of 10 digits with zeros", "Jun  9 08:50:20 mx1 postfix/smtp[0000000001]: hi",
       Kind::OtherPostfix, ""},
      {"delivery cut before status",
       "Jun  9 08:50:20 mx1 postfix/smtp[9]: 4F1A2B3C5D: to=<a@example.com>, relay=mx.ex",
       Kind::Malformed, "delivery record without status="},
      {"delivery cut in the address", "Jun  9 08:50:20 mx1 postfix/smtp[9]: 4F1A2B3C5D: to=<a@ex",
       Kind::Malformed, "delivery field address without '>, '"},
      {"smtpd NOQUEUE reject",
       "Jun  9 08:50:20 mx1 postfix/smtpd[9]: NOQUEUE: reject: RCPT from "
       "unknown[192.0.2.77]: 554 5.7.1 <x@example.com>: Relay access denied; from=<y@example.org> "
       "to=<x@example.com> proto=ESMTP helo=<h>",
       Kind::OtherPostfix, ""},
      {"non-UTF-8 bytes in a Postfix line",
       "Jun  9 08:50:20 mx1 postfix/cleanup[9]: 4F1A2B3C5D: message-id=<\xe9\xff@example.com>",
       Kind::OtherPostfix, ""},
      {"another program", "Jun  9 08:50:20 mx1 amavis[3]: (3-11) Passed CLEAN", Kind::NotPostfix,
       ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = parse_line(c.line, kUtc);
    CHECK(got.kind == c.want_kind);
    CHECK(got.why == c.want_why);
  }
}

TEST_CASE("parse_line: what a line says of its message: reception, removal, pin, signature") {
  const struct {
    const char* line;
    Event want;
  } cases[] = {
      {"Jun  9 08:50:20 mx1 postfix/smtpd[9]: 4F1A2B3C5D: client=a.example.com[192.0.2.1]",
       Event::Received},
      {"Jun  9 08:50:20 mx1 postfix/submission/smtpd[9]: 4F1A2B3C5D: client=x[192.0.2.1]",
       Event::Received},
      {"Jun  9 08:50:20 mx1 postfix/pickup[9]: 4F1A2B3C5D: uid=0 from=<root>", Event::Received},
      {"Jun  9 08:50:20 mx1 postfix/pickup[9]: 4F1A2B3C5D: sender=<root>", Event::Received},
      {"Jun  9 08:50:20 mx1 postfix/qmgr[9]: 4F1A2B3C5D: removed", Event::Removed},
      {"Jun  9 08:50:20 mx1 postfix/qmgr[9]: 4F1A2B3C5D: removed later", Event::None},
      {"Jun  9 08:50:20 mx1 postfix/qmgr[9]: 4F1A2B3C5D: from=<a@example.com>, size=1, nrcpt=1 "
       "(queue active)",
       Event::None},
      {"Jun  9 08:50:20 mx1 postfix/cleanup[9]: 4F1A2B3C5D: client=x", Event::None},
      {"Jun  9 08:50:20 mx1 postfix/smtpd[9]: connect from a.example.com[192.0.2.1]", Event::None},
      {"Jun  9 08:50:20 mx1 postfix/smtpd[9]: NOQUEUE: client=x", Event::None},
      {"Jun  9 08:50:20 mx1 opendkim[9]: 4F1A2B3C5D: removed", Event::OpenDkim},
      // rampart-milter's and OpenDKIM's lines name a message by its leading id (1-32 letters
      // and digits, not only what Postfix writes).
      {"Jun  9 08:50:20 mx1 opendkim[9]: 4F1A2B3C5D: DKIM-Signature field added (s=s1, "
       "d=send.example.com)",
       Event::Signed},
      {"Jun  9 08:50:20 mx1 mail/opendkim[9]: FGHIJ67890: DKIM-Signature field added",
       Event::Signed},
      {"Jun  9 08:50:20 mx1 opendkim[9]: 4F1A-2B3C5D: DKIM-Signature field added", Event::OpenDkim},
      {"Jun  9 08:50:20 mx1 opendkim[9]: DKIM-Signature field added", Event::OpenDkim},
      {"Jun  9 08:50:20 mx1 opendkim[9]: 0123456789012345678901234567890123: DKIM-Signature "
       "field added",
       Event::OpenDkim},
      {"Jun  9 08:50:20 mx1 opendkim2[9]: 4F1A2B3C5D: DKIM-Signature field added", Event::None},
      {"Jun  9 08:50:20 mx1 xopendkim[9]: 4F1A2B3C5D: DKIM-Signature field added", Event::None},
      {"Jun  9 08:50:20 mx1 pendkim[9]: 4F1A2B3C5D: DKIM-Signature field added", Event::None},
      {"Jun  9 08:50:20 mx1 a/rampart-milter[9]: 4F1A2B3C5D: pin stream=bulk", Event::Pinned},
      {"Jun  9 08:50:20 mx1 a-rampart-milter[9]: 4F1A2B3C5D: pin stream=bulk", Event::None},
      {"Jun  9 08:50:20 mx1 rampart-milter[9]: 4F1A2B3C5D: pin stream=bulk transport=out05",
       Event::Pinned},
      {"Jun  9 08:50:20 mx1 rampart-milter[9]: 4F1A2B3C5D: hygiene ok", Event::None},
      {"Jun  9 08:50:20 mx1 rampart-milter[9]: pin stream=bulk", Event::None},
      {"Jun  9 08:50:20 mx1 amavis[9]: 4F1A2B3C5D: pin stream=bulk", Event::None},
  };
  for (const auto& c : cases) {
    CAPTURE(c.line);
    const auto got = parse_line(c.line, kUtc);
    CHECK(got.event == c.want);
    if (c.want == Event::Pinned || c.want == Event::Signed || c.want == Event::Received ||
        c.want == Event::Removed) {
      const std::string_view l = c.line;
      const auto colon = l.find(": ", l.find("]: ") + 3);
      CHECK(got.queue_id == l.substr(l.find("]: ") + 3, colon - l.find("]: ") - 3));
    }
  }
}

TEST_CASE("parse_line: pids of every length, and what stands before them") {
  // The pid is read 8 bytes at a time where it can be: every length from 0 to 11 digits, with
  // and without leading zeros, after programs of several lengths, against a plain reading.
  XorShift next{88172645463325252ULL};
  for (const std::string program : {"p", "ab", "postfix/smtp", "postfix/out05/smtp", "x[1"}) {
    for (std::size_t len = 0; len <= 11; ++len) {
      for (int k = 0; k < 40; ++k) {
        std::string digits;
        for (std::size_t i = 0; i < len; ++i)
          digits += static_cast<char>('0' + (i == 0 && k % 2 == 0 ? 0 : next() % 10));
        const std::string l = "Jun  9 08:50:20 mx1 " + program + "[" + digits + "]: hi";
        CAPTURE(l);
        const auto got = parse_line(l, kUtc);
        std::uint64_t want = 0;
        for (char c : digits) want = want * 10 + static_cast<std::uint64_t>(c - '0');
        const bool ok = len >= 1 && len <= 10 && want <= 0xffffffffULL;
        if (!ok) {
          CHECK(got.kind == Kind::Malformed);
          CHECK(got.why == "bad pid in program tag");
          continue;
        }
        CHECK(got.kind != Kind::Malformed);
        REQUIRE(got.header.pid().has_value());
        CHECK(*got.header.pid() == want);
        CHECK(got.header.program == program);
      }
    }
  }
  // Bytes before the '[' that are digits, or high bytes, do not join the pid.
  const auto odd = parse_line(
      "Jun  9 08:50:20 mx1 a9\xff"
      "7[123]: hi",
      kUtc);
  CHECK(odd.header.pid() == 123U);
  CHECK(odd.header.program ==
        "a9\xff"
        "7");
  const auto digit_program = parse_line("Jun  9 08:50:20 mx1 12345678[9]: hi", kUtc);
  CHECK(digit_program.header.pid() == 9U);
  CHECK(digit_program.header.program == "12345678");
  const auto short_line = parse_line("Jun  9 08:50:20 h 7[1]: m", kUtc);
  CHECK(short_line.header.pid() == 1U);
  CHECK(short_line.header.program == "7");
}

TEST_CASE("parse_line: the service after the tag's last '/', for tags of every length") {
  // The last '/' is found 16 bytes at a time: programs of 1 to 40 bytes with slashes anywhere,
  // after hosts of several lengths (one with a '/' of its own), against string_view::rfind.
  XorShift next{0x9e3779b97f4a7c15ULL};
  constexpr std::string_view kBytes = "ab/-x0";  // no Postfix daemon's name can come of these
  for (const std::string host : {"h", "mx1", "relay-out-07.example.net", "gw/1"}) {
    for (std::size_t len = 1; len <= 40; ++len) {
      for (int k = 0; k < 30; ++k) {
        std::string program = k % 2 == 0 ? "postfix" : "";
        while (program.size() < len) program += kBytes[next() % kBytes.size()];
        program.resize(len);
        const std::string l = "Jun  9 08:50:20 " + host + " " + program + "[7]: hi";
        CAPTURE(l);
        const auto got = parse_line(l, kUtc);
        const std::string_view p = program;
        const auto slash = p.rfind('/');
        const bool postfix = p.starts_with("postfix") && slash != std::string_view::npos &&
                             slash > 0 && slash + 1 < p.size();
        CHECK(got.kind == (postfix ? Kind::OtherPostfix : Kind::NotPostfix));
        CHECK(got.header.program == program);
        CHECK(got.header.syslog_name == (postfix ? p.substr(0, slash) : ""));
        CHECK(got.header.service == (postfix ? p.substr(slash + 1) : ""));
      }
    }
  }
}

TEST_CASE("parse_line: a message's queue id agrees with is_queue_id") {
  // Queue ids up to 16 bytes are classified 16 bytes at a time when the message has them:
  // ids of 4 to 22 bytes over alphabets that make short, long and no ids, in messages long and
  // short, against is_queue_id.
  XorShift next{0x2545f4914f6cdd1dULL};
  constexpr std::string_view kAlphabets[] = {
      "0123456789ABCDEF",                                    // short ids
      "0123456789BCDFGHJKLMNPQRSTVWXYbcdfghjklmnpqrstvwxy",  // long ids, with a 'z' put in
      "0123456789ABCDEFabcdefz",                             // lower case and 'z': mixed
      "AEIOUaeiouz0123456789BCD",                            // vowels
  };
  for (std::size_t len = 4; len <= 22; ++len) {
    for (const auto alphabet : kAlphabets) {
      for (int k = 0; k < 40; ++k) {
        std::string id;
        for (std::size_t i = 0; i < len; ++i) id += alphabet[next() % alphabet.size()];
        if (alphabet[1] == '1' && alphabet[10] == 'B' && k % 2 == 0) id[next() % len] = 'z';
        for (const std::string rest : {": client=a.example.com[192.0.2.1]", ": x"}) {
          const std::string l = "Jun  9 08:50:20 mx1 postfix/smtpd[7]: " + id + rest;
          CAPTURE(l);
          const auto got = parse_line(l, kUtc);
          CHECK(got.queue_id == (is_queue_id(id) ? std::string_view(id) : ""));
        }
      }
    }
  }
}

TEST_CASE("parse_line: a delivery record is one whatever stands before its queue id") {
  // Only a message with an '=' near its start is searched for ": to=": one without is no
  // delivery, one with it is a delivery or says why not.
  const struct {
    const char* line;
    Kind want_kind;
    const char* want_why;
  } cases[] = {
      {"Jun  9 08:50:20 mx1 postfix/smtp[9]: 4F1A-2B3C5D: to=<a@example.com>, relay=none, "
       "delay=1, delays=0/0/0/1, dsn=4.4.1, status=deferred (connect to x: refused)",
       Kind::Malformed, "delivery record without a queue id"},
      {"Jun  9 08:50:20 mx1 postfix/smtp[9]: connect to mx.example.com[192.0.2.1]:25: refused",
       Kind::ConnectFailure, ""},
      {"Jun  9 08:50:20 mx1 postfix/smtpd[9]: warning: a long message well past column 64 "
       "before its first: to=<a@example.com>",
       Kind::OtherPostfix, ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.line);
    const auto got = parse_line(c.line, kUtc);
    CHECK(got.kind == c.want_kind);
    CHECK(got.why == c.want_why);
  }
}

TEST_CASE("parse_line: lines of services that log nothing classify needs are counted, not read") {
  // postscreen, dnsblog, anvil, tlsproxy, tlsmgr, scache: their messages are never read, so even
  // one shaped like a delivery record is only a Postfix line; nor are smtpd's, but for those
  // that start with a queue id ("QID: client=..."). Other services of the same name lengths are
  // read as before.
  struct Case {
    const char* tag;
    const char* message;
    Kind kind;
    const char* queue_id;
  };
  const std::string record =
      "3A4B000000: to=<a@example.com>, relay=mx.example.com[192.0.2.1]:25, delay=1, "
      "delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok)";
  const Case cases[] = {
      {"postfix/postscreen[1]", "CONNECT from [192.0.2.7]:1234 to [198.51.100.1]:25",
       Kind::OtherPostfix, ""},
      {"postfix/postscreen[1]", record.c_str(), Kind::OtherPostfix, ""},
      {"postfix/dnsblog[2]", "addr 192.0.2.7 listed by domain zen.example.org as 127.0.0.2",
       Kind::OtherPostfix, ""},
      {"postfix/anvil[3]",
       "statistics: max connection rate 1/60s for (smtp:192.0.2.7) at Jun  9 08:50:20",
       Kind::OtherPostfix, ""},
      {"postfix/tlsproxy[4]", "3A4B000000: removed", Kind::OtherPostfix, ""},
      {"postfix/tlsmgr[5]", record.c_str(), Kind::OtherPostfix, ""},
      {"postfix/scache[6]", record.c_str(), Kind::OtherPostfix, ""},
      // Read: services that do log such things, and names that only share a length.
      {"postfix/smtp[7]", record.c_str(), Kind::Delivery, "3A4B000000"},
      {"postfix/cleanup[8]", "3A4B000000: message-id=<x@example.com>", Kind::OtherPostfix,
       "3A4B000000"},
      {"postfix/bounce[9]", "3A4B000000: sender non-delivery notification: 3C4D000000",
       Kind::OtherPostfix, "3A4B000000"},
      {"postfix/postscreen2[10]", "3A4B000000: removed", Kind::OtherPostfix, "3A4B000000"},
      {"postfix/smtpd[11]", "connect from unknown[192.0.2.7]", Kind::OtherPostfix, ""},
      {"postfix/smtpd[11]", "odd text: to=<a@example.com>, relay=none, status=sent (x)",
       Kind::OtherPostfix, ""},
      {"postfix/smtp[12]", "odd text: to=<a@example.com>, relay=none, status=sent (x)",
       Kind::Malformed, ""},
      {"postfix/submission/smtpd[13]", "3A4B000000: client=unknown[192.0.2.7]", Kind::OtherPostfix,
       "3A4B000000"},
  };
  for (const auto& c : cases) {
    // Long and short lines: the fast header path and the general one.
    for (const std::string host : {"mx1", "relay-out-07.mail.example.net"}) {
      const std::string l = std::string("Jun  9 08:50:20 ") + host + " " + c.tag + ": " + c.message;
      CAPTURE(l);
      const auto got = parse_line(l, kUtc);
      CHECK(got.kind == c.kind);
      CHECK(got.queue_id == c.queue_id);
      CHECK(got.header.postfix);
    }
  }
}

TEST_CASE("parse_line: the fast reading of a header agrees with the general one, field for field") {
  // parse_line() reads the common header shape (" host program[pid]: " within the 64 bytes after
  // the stamp, in a line of 64 bytes or more) from bit masks; everything else, and every line it
  // would find malformed, goes the general way (detail::parse_line_general). Random lines built
  // from the pieces of both, short and long, well and badly formed, must read the same both ways.
  XorShift next{0x853c49e6748fea9bULL};
  const auto pick = [&](const auto& options) { return options[next() % std::size(options)]; };
  const auto noise = [&](std::size_t n, std::string_view bytes) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out += bytes[next() % bytes.size()];
    return out;
  };
  const std::string_view stamps[] = {"Jun  9 08:50:20", "Jun  9 08:50:21", "Dec 31 23:59:59",
                                     "2026-06-09T08:50:20.123456+02:00", "Jun  9 08:50"};
  const std::string_view hosts[] = {
      "mx1", "h", "relay-out-07.mail.example.net", "gw/1", "a:b", "x[1]", "192.0.2.1"};
  const std::string_view programs[] = {"postfix/smtp",
                                       "postfix/out05/smtp",
                                       "postfix-out/qmgr",
                                       "postfix/postscreen",
                                       "postfix/submission/smtpd",
                                       "postfix",
                                       "smtpd",
                                       "opendkim",
                                       "rampart-milter",
                                       "/smtp",
                                       "postfix/",
                                       "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/qmgr",
                                       "p"};
  const std::string_view pids[] = {"[1]", "[3163107]", "[12345678]", "", "[0]"};
  const std::string_view bad_pids[] = {"[4294967295]", "[4294967296]",  "[]", "[", "]",
                                       "[12a]",        "[123456789012]"};
  const std::string_view messages[] = {
      "connect from unknown[192.0.2.7]",
      "3A4B000000: client=app30.send.example.net[192.0.2.30]",
      "3A4B000000: removed",
      "3A4B000000: from=<a@example.net>, size=1, nrcpt=1 (queue active)",
      "3A4B000000: from=<a@example.net>, status=expired, returned to sender",
      "3A4B000000: to=<b@example.com>, relay=mx.example.com[192.0.2.1]:25, delay=1, "
      "delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
      "3A4B000000: DKIM-Signature field added (s=s1, d=example.net)",
      "3A4B000000: pin stream=news",
      "warning: smtp_connect_addr: bind 203.0.113.94: Cannot assign requested address",
      "connect to mx.example.com[192.0.2.1]:25: Cannot assign requested address",
      "odd: to=<b@example.com>, status=sent",
      "",
  };
  std::size_t long_postfix = 0, long_other = 0, malformed = 0;
  // One ParsedLine for every line, as classify's loop reuses its slots: whatever the line
  // before left in it, the reading is a fresh one's (parse_line clears header fields only
  // where a reading leaves them unset).
  ParsedLine reused;
  for (int i = 0; i < 40000; ++i) {
    std::string l(pick(stamps));
    const auto r = next() % 20;
    l += r == 0 ? "" : r == 1 ? "  " : " ";
    l += next() % 8 == 0 ? noise(next() % 40, "ab: /[]1") : std::string(pick(hosts));
    l += next() % 16 == 0 ? "  " : " ";
    l += next() % 8 == 0 ? noise(1 + next() % 50, "ab/:[]19 ") : std::string(pick(programs));
    l += next() % 4 == 0 ? pick(bad_pids) : pick(pids);
    const auto c = next() % 16;
    l += c == 0 ? "" : c == 1 ? "::" : c == 2 ? ":" : ": ";
    if (c != 2) l += pick(messages);
    if (next() % 2 == 0) l += noise(next() % 80, "ab =:,");
    if (next() % 16 == 0) l += '\r';
    CAPTURE(l);
    ParsedLine fast, general;
    parse_line(l, kUtc, fast);
    detail::parse_line_general(l, kUtc, general);
    CHECK(detail::first_difference(fast, general) == "");
    parse_line(l, kUtc, reused);
    CHECK(detail::first_difference(reused, fast) == "");
    if (general.kind == Kind::Malformed) {
      ++malformed;
    } else if (l.size() >= 64) {
      ++(general.header.postfix ? long_postfix : long_other);
    }
  }
  // A stamp that takes the whole line (RFC 3339 allows any number of fraction digits): nothing
  // is left after it, the fast reading must not run on it.
  const std::string all_stamp = "2026-06-09T08:50:20." + std::string(70, '1') + "Z";
  ParsedLine fast, general;
  parse_line(all_stamp, kUtc, fast);
  detail::parse_line_general(all_stamp, kUtc, general);
  CHECK(fast.why == "no host");
  CHECK(detail::first_difference(fast, general) == "");
  // Every kind of case is well represented.
  CHECK(long_postfix > 3500);
  CHECK(long_other > 4500);
  CHECK(malformed > 11000);
}

TEST_CASE("parse_line: a 1 MB line is parsed in one pass") {
  std::string line =
      "Jun  9 08:50:20 mx1 postfix/smtp[9]: 4F1A2B3C5D: to=<a@example.com>, "
      "relay=mx.example.com[192.0.2.10]:25, delay=1, delays=0/0/0/1, dsn=5.7.1, status=bounced "
      "(host mx.example.com[192.0.2.10] said: 550 5.7.1 ";
  line.append(1 << 20, 'x');
  line += ")";
  const auto got = parse_line(line, kUtc);
  REQUIRE(got.kind == Kind::Delivery);
  CHECK(got.delivery->text.size() > (1U << 20));
  CHECK(got.delivery->enhanced_status == "5.7.1");

  const std::string junk(1 << 20, '=');
  CHECK(parse_line(junk, kUtc).kind == Kind::Malformed);
  const auto many_fields = "Jun  9 08:50:20 mx1 postfix/smtp[9]: 4F1A2B3C5D: to=<a@example.com>, " +
                           std::string(1 << 20, ',');
  CHECK(parse_line(many_fields, kUtc).kind == Kind::Malformed);
}

TEST_CASE("is_loopback: 127.0.0.0/8 and ::1 only") {
  CHECK(is_loopback("127.0.0.1"));
  CHECK(is_loopback("127.1.2.3"));
  CHECK(is_loopback("::1"));
  CHECK(is_loopback("::ffff:127.0.0.1"));
  CHECK_FALSE(is_loopback("127.example.com"));
  CHECK_FALSE(is_loopback("192.0.2.1"));
  CHECK_FALSE(is_loopback("::2"));
  CHECK_FALSE(is_loopback(""));
}

TEST_CASE("parse_delivery: delays read exactly as from_chars reads them") {
  // The fast path (digits, a dot, digits) against from_chars on the same text.
  std::uint64_t x = 88172645463325252ULL;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (int i = 0; i < 20000; ++i) {
    const auto ip = next() % (i % 3 == 0 ? 10 : 100000);
    const auto fd = static_cast<int>(next() % 9);
    std::string text = std::to_string(ip);
    if (fd > 0) {
      std::string frac = std::to_string(next() % 1000000000ULL);
      frac.resize(static_cast<std::size_t>(fd), '0');
      text += "." + frac;
    }
    // The record's views (the delays' text among them) point into the message: keep it.
    const std::string message = "ABCDEF1234: to=<a@example.com>, relay=none, delay=" + text +
                                ", delays=" + text + "/0/0/" + text +
                                ", dsn=4.4.1, status=deferred (x)";
    const auto d = parse_delivery(message, "smtp");
    REQUIRE(d.has_value());
    double want = 0;
    std::from_chars(text.data(), text.data() + text.size(), want);
    CAPTURE(text);
    CHECK(d->delay() == want);
    CHECK(d->delays()[0] == want);
    CHECK(d->delays()[3] == want);
  }
  // Not the plain form: still read (by from_chars) or refused, as before.
  const auto odd = parse_delivery(
      "ABCDEF1234: to=<a@example.com>, relay=none, delay=1e3, delays=.5/5./-1/12345678901234567, "
      "dsn=4.4.1, status=deferred (x)",
      "smtp");
  REQUIRE(odd.has_value());
  CHECK(odd->delay() == 1000.0);
  CHECK(odd->delays()[0] == 0.5);  // from_chars takes ".5" and "5."
  CHECK(odd->delays()[1] == 5.0);
  CHECK(odd->delays()[2] == -1);  // negative
  CHECK(odd->delays()[3] == 12345678901234567.0);
}
