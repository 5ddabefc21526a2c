// The classify engine (sidecar/maillog/tally.hpp) and loop closing (feedback.hpp) over lines
// written here: attribution by transport and by rampart-milter's pin line, operators by relay
// host (and by domain for relay=none), content-filter hops not counted, the shipped reply table
// deciding outcomes, the anomalies of incidents 5 and 10, zero-delivery days, and which
// suppressions and back-offs follow. Documentation addresses and example domains only. Pure.
#include <doctest/doctest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "core/classify.hpp"
#include "core/ruleset.hpp"
#include "core/text.hpp"
#include "maillog/feedback.hpp"
#include "maillog/line.hpp"
#include "maillog/tally.hpp"
#include "rules/reader.hpp"

using namespace rampart;
using namespace rampart::maillog;

namespace {

// 2026-06-09T12:00:00Z
constexpr core::UnixTime kNoon = 1781006400;
constexpr std::int64_t kDay = 1781006400 / 86400;

const char* kStreams = R"(
[[stream]]
name = "bulk"
ports = [25]
transport = "out05"
egress_ip = "203.0.113.94"
[[stream]]
name = "notify"
ports = [587]
transport = "out07"
egress_ip = "203.0.113.96"
[[operator]]
name = "contoso-mail"
mx = [".mail.contoso.example"]
)";

struct Fixture {
  std::shared_ptr<const core::RuleSet> rules;
  core::Classifier classifier;
};

Fixture& fixture() {
  static Fixture f = [] {
    const std::string dir = std::string(RAMPART_SOURCE_DIR) + "/packaging/rules/";
    auto spec = rules::load_files({dir + "classify.toml", dir + "operators.toml"});
    REQUIRE(spec);
    auto extra = rules::parse(kStreams, "streams.toml");
    REQUIRE(extra);
    REQUIRE(core::merge_into(*spec, std::move(extra->spec)));
    auto rs = core::RuleSet::compile(*spec);
    REQUIRE(rs);
    auto cl = core::Classifier::compile((*rs)->spec().classify);
    REQUIRE(cl);
    return Fixture{std::move(*rs), std::move(*cl)};
  }();
  return f;
}

// "2026-06-09T08:50:20.123456+00:00 mta1 " + tag + ": " + message, `sec` seconds after 08:00.
std::string line(int sec, const std::string& tag, const std::string& msg, int day_offset = 0) {
  const int h = 8 + sec / 3600, m = (sec / 60) % 60, s = sec % 60;
  char stamp[64];
  std::snprintf(stamp, sizeof stamp, "2026-06-%02dT%02d:%02d:%02d.000001+00:00", 9 + day_offset, h,
                m, s);
  return std::string(stamp) + " mta1 " + tag + ": " + msg;
}

std::string delivery(const std::string& qid, const std::string& rcpt, const std::string& relay,
                     const std::string& dsn, const std::string& status, const std::string& text) {
  return qid + ": to=<" + rcpt + ">, relay=" + relay +
         ", delay=1.2, delays=0.1/0/0.5/0.6, dsn=" + dsn + ", status=" + status + " (" + text + ")";
}

void feed(Tally& t, const std::vector<std::string>& lines) {
  for (const auto& l : lines) t.feed(parse_line(l, Clock{kNoon, 0}));
}

std::int64_t count_of(const Batch& b, const std::string& stream, const std::string& egress,
                      const std::string& op, core::Outcome outcome, const std::string& status) {
  std::int64_t n = 0;
  for (const auto& a : b.aggregates) {
    if (a.key.stream == stream && a.key.egress_ip == egress && a.key.op == op &&
        a.key.outcome == outcome && a.key.status == status)
      n += a.count;
  }
  return n;
}

const core::Anomaly* find_anomaly(const Batch& b, core::AnomalyKind k) {
  for (const auto& a : b.anomalies) {
    if (a.kind == k) return &a;
  }
  return nullptr;
}

const std::string kMs = "contoso-example.mail.protection.outlook.com[198.51.100.10]:25";
const std::string kGoogle = "aspmx.l.google.com[198.51.100.20]:25";
const std::string kYahoo = "mta5.am0.yahoodns.net[198.51.100.30]:25";

}  // namespace

TEST_CASE("tally: attribution by transport, operator by relay host, outcomes by the table") {
  auto& f = fixture();
  Tally t(*f.rules, f.classifier);
  feed(t, {
              line(0, "postfix/out05/smtp[101]",
                   delivery("4F1A2B3C01", "ana@contoso.example", kMs, "2.0.0", "sent",
                            "250 2.6.0 <id@example.net> [InternalId=1] Queued mail for delivery")),
              line(1, "postfix/out05/smtp[101]",
                   delivery("4F1A2B3C02", "bo@contoso.example", kMs, "4.7.500", "deferred",
                            "host " + kMs.substr(0, kMs.find('[')) +
                                "[198.51.100.10] said: 451 4.7.500 Server busy. Please try again "
                                "later from [203.0.113.94]. (S77719) (in reply to RCPT TO "
                                "command)")),
              line(2, "postfix/out05/smtp[101]",
                   delivery("4F1A2B3C03", "cy@fabrikam.example", kGoogle, "5.1.1", "bounced",
                            "host aspmx.l.google.com[198.51.100.20] said: 550-5.1.1 The email "
                            "account that you tried to reach does not exist. 550 5.1.1 "
                            "https://support.google.com/mail/?p=NoSuchUser - gsmtp (in reply to "
                            "RCPT TO command)")),
              // A content-filter hop and a local delivery are not deliveries.
              line(3, "postfix/smtp[102]",
                   delivery("4F1A2B3C04", "ana@contoso.example", "127.0.0.1[127.0.0.1]:10024",
                            "2.0.0", "sent", "250 2.0.0 Ok: queued as 4F1A2B3C05")),
              line(4, "postfix/local[103]",
                   delivery("4F1A2B3C06", "root@mta1.example.net", "local", "2.0.0", "sent",
                            "delivered to mailbox")),
              // Through no stream's transport: unattributed, egress unknown.
              line(5, "postfix/smtp[104]",
                   delivery("4F1A2B3C07", "dee@unknown-op.example",
                            "mx.unknown-op.example[192.0.2.55]:25", "2.0.0", "sent", "250 ok")),
          });
  const auto& s = t.summary();
  CHECK(s.lines == 6);
  CHECK(s.deliveries == 4);
  CHECK(s.sent == 2);
  CHECK(s.deferred == 1);
  CHECK(s.bounced == 1);
  CHECK(s.filter_hops == 1);
  CHECK(s.local_hops == 1);
  CHECK(s.unattributed == 1);
  CHECK(s.unknown_operator == 1);
  const auto b = t.take();
  CHECK(count_of(b, "bulk", "203.0.113.94", "microsoft-365", core::Outcome::Accepted, "2.6.0") ==
        1);
  CHECK(count_of(b, "bulk", "203.0.113.94", "microsoft-365", core::Outcome::Throttled, "4.7.500") ==
        1);
  CHECK(count_of(b, "bulk", "203.0.113.94", "google", core::Outcome::RejectRecipient, "5.1.1") ==
        1);
  CHECK(count_of(b, "", "", "", core::Outcome::Accepted, "2.0.0") ==
        1);  // dsn= when the reply has none
  for (const auto& a : b.aggregates) CHECK(a.key.day == kDay);
  // The 5.1.1 bounce becomes an address hit; nothing else does.
  REQUIRE(b.addresses.size() == 1);
  CHECK(b.addresses[0].address == "cy@fabrikam.example");
  CHECK(b.addresses[0].rule == "unknown-mailbox");
  CHECK(b.anomalies.empty());
  // take() hands over once.
  CHECK(t.take().empty());
}

TEST_CASE("tally: the milter's pin line refines the stream; egress through another transport") {
  auto& f = fixture();
  Tally t(*f.rules, f.classifier);
  feed(t,
       {
           line(0, "postfix/smtpd[90]", "5A1B2C3D4E: client=app.example.net[192.0.2.7]"),
           line(1, "opendkim[80]", "5A1B2C3D4E: DKIM-Signature field added (s=s1, d=example.net)"),
           line(1, "rampart-milter[81]", "5A1B2C3D4E: pin stream=notify transport=out07"),
           // Delivered through the bulk transport: counted for notify, egress of out05.
           line(2, "postfix/out05/smtp[101]",
                delivery("5A1B2C3D4E", "ana@contoso.example", kMs, "2.0.0", "sent", "250 ok")),
       });
  const auto b = t.take();
  CHECK(count_of(b, "notify", "203.0.113.94", "microsoft-365", core::Outcome::Accepted, "2.0.0") ==
        1);
  const auto* a = find_anomaly(b, core::AnomalyKind::UnexpectedEgress);
  REQUIRE(a != nullptr);
  CHECK(a->stream == "notify");
  CHECK(a->subject == "out05");
  CHECK(find_anomaly(b, core::AnomalyKind::Unsigned) == nullptr);
}

TEST_CASE("tally: incident 10, bind failures and delivery from another address") {
  auto& f = fixture();
  Tally t(*f.rules, f.classifier);
  feed(t,
       {
           line(0, "postfix/out05/smtp[101]",
                "warning: smtp_connect_addr: bind 203.0.113.94: Cannot assign requested address"),
           // Without smtp_bind_address_enforce the delivery goes on from another address.
           line(1, "postfix/out05/smtp[101]",
                delivery("6B1C2D3E4F", "ana@contoso.example", kMs, "2.0.0", "sent", "250 ok")),
           // The next delivery of that process without a bind warning is from the right IP.
           line(2, "postfix/out05/smtp[101]",
                delivery("6B1C2D3E50", "bo@contoso.example", kMs, "2.0.0", "sent", "250 ok")),
           // With enforce: deferred, no connection, no egress anomaly.
           line(3, "postfix/out05/smtp[102]",
                "warning: smtp_connect_addr: bind 203.0.113.94: Cannot assign requested address"),
           line(4, "postfix/out05/smtp[102]",
                delivery("6B1C2D3E51", "cy@contoso.example", "none", "4.4.0", "deferred",
                         "server configuration error")),
       });
  const auto b = t.take();
  const auto* bind = find_anomaly(b, core::AnomalyKind::BindFailure);
  REQUIRE(bind != nullptr);
  CHECK(bind->subject == "203.0.113.94");
  CHECK(bind->stream == "bulk");
  CHECK(bind->count == 2);
  const auto* eg = find_anomaly(b, core::AnomalyKind::UnexpectedEgress);
  REQUIRE(eg != nullptr);
  CHECK(eg->count == 1);
  CHECK(count_of(b, "bulk", "", "microsoft-365", core::Outcome::Accepted, "2.0.0") == 1);
  CHECK(count_of(b, "bulk", "203.0.113.94", "microsoft-365", core::Outcome::Accepted, "2.0.0") ==
        1);
  // relay=none takes the operator last seen for the domain.
  CHECK(count_of(b, "bulk", "203.0.113.94", "microsoft-365", core::Outcome::DeferredOther,
                 "4.4.0") == 1);
  CHECK(t.summary().anomalies == 3);
}

TEST_CASE("tally: relay=none takes the operator last seen for the domain, however often seen") {
  // Repeated (relay host, domain) pairs are remembered; a repeat must still make its operator the
  // domain's latest, also after the domain map was emptied at its bound.
  auto& f = fixture();
  Tally t(*f.rules, f.classifier);
  const auto none = [](int i, const std::string& rcpt) {
    return line(i, "postfix/out05/smtp[101]",
                delivery("6B1C2D3F" + std::to_string(10 + i), rcpt, "none", "4.4.1", "deferred",
                         "connect to x[192.0.2.9]:25: Connection timed out"));
  };
  const auto via = [](int i, const std::string& rcpt, const std::string& relay) {
    return line(
        i, "postfix/out05/smtp[101]",
        delivery("6B1C2D3F" + std::to_string(10 + i), rcpt, relay, "2.0.0", "sent", "250 ok"));
  };
  feed(t, {via(1, "ana@contoso.example", kMs), via(2, "bo@contoso.example", kGoogle),
           via(3, "cy@contoso.example", kMs), none(4, "dd@contoso.example")});
  auto b = t.take();
  CHECK(count_of(b, "bulk", "203.0.113.94", "microsoft-365", core::Outcome::DeferredOther,
                 "4.4.1") == 1);
  // The domain as logged in another case is the same domain.
  feed(t, {via(5, "ed@Contoso.Example", kGoogle), none(6, "fi@contoso.example"),
           via(7, "gu@contoso.example", kMs), none(8, "ha@CONTOSO.example")});
  b = t.take();
  CHECK(count_of(b, "bulk", "203.0.113.94", "google", core::Outcome::DeferredOther, "4.4.1") == 1);
  CHECK(count_of(b, "bulk", "203.0.113.94", "microsoft-365", core::Outcome::DeferredOther,
                 "4.4.1") == 1);
  // Past 50,000 domains the map starts again; the remembered pairs must not point into it.
  // (Pairs remembered just before it are delivered to again just after.)
  std::vector<std::string> many;
  for (int i = 0; i < 50010; ++i)
    many.push_back(via(9, "x@d" + std::to_string(i) + ".example", kGoogle));
  for (int i = 49990; i < 50000; ++i)
    many.push_back(via(10, "y@d" + std::to_string(i) + ".example", kGoogle));
  feed(t, many);
  feed(t, {via(11, "ia@contoso.example", kMs), via(12, "jo@contoso.example", kMs),
           none(13, "ku@contoso.example"), none(14, "z@d49995.example")});
  b = t.take();
  CHECK(count_of(b, "bulk", "203.0.113.94", "microsoft-365", core::Outcome::DeferredOther,
                 "4.4.1") == 1);
  CHECK(count_of(b, "bulk", "203.0.113.94", "google", core::Outcome::DeferredOther, "4.4.1") == 1);
  CHECK(count_of(b, "bulk", "203.0.113.94", "google", core::Outcome::Accepted, "2.0.0") == 50020);
}

TEST_CASE("tally: incident 5, a stream's message delivered with no OpenDKIM signature line") {
  auto& f = fixture();
  const std::vector<std::string> unsigned_message{
      line(0, "postfix/smtpd[90]", "7C1D2E3F40: client=app.example.net[192.0.2.7]"),
      line(1, "rampart-milter[81]", "7C1D2E3F40: pin stream=bulk transport=out05"),
      line(2, "postfix/out05/smtp[101]",
           delivery("7C1D2E3F40", "ana@contoso.example", kMs, "2.0.0", "sent", "250 ok")),
  };
  SUBCASE("a log without any OpenDKIM line proves nothing") {
    Tally t(*f.rules, f.classifier);
    feed(t, unsigned_message);
    const auto b = t.take();
    CHECK(find_anomaly(b, core::AnomalyKind::Unsigned) == nullptr);
    CHECK(t.summary().unsigned_unjudged == 1);
    CHECK(t.summary().anomalies == 0);
  }
  Tally t(*f.rules, f.classifier);
  feed(t,
       {
           // OpenDKIM logs to this file: it signed another message.
           line(0, "opendkim[80]", "7C1D2E3F3F: DKIM-Signature field added (s=s1, d=example.net)"),
           line(0, "postfix/smtpd[90]", "7C1D2E3F40: client=app.example.net[192.0.2.7]"),
           line(1, "rampart-milter[81]", "7C1D2E3F40: pin stream=bulk transport=out05"),
           line(2, "postfix/out05/smtp[101]",
                delivery("7C1D2E3F40", "ana@contoso.example", kMs, "2.0.0", "sent", "250 ok")),
           line(3, "postfix/out05/smtp[101]",
                delivery("7C1D2E3F40", "bo@contoso.example", kMs, "2.0.0", "sent", "250 ok")),
           // A message whose reception is not in this log is not judged.
           line(4, "postfix/out05/smtp[101]",
                delivery("7C1D2E3F41", "cy@contoso.example", kMs, "2.0.0", "sent", "250 ok")),
           line(5, "postfix/qmgr[70]", "7C1D2E3F40: removed"),
           line(5, "postfix/qmgr[70]", "7C1D2E3F3F: removed"),
       });
  const auto b = t.take();
  const auto* u = find_anomaly(b, core::AnomalyKind::Unsigned);
  REQUIRE(u != nullptr);
  CHECK(u->stream == "bulk");
  CHECK(u->count == 1);  // one message, two recipients
  CHECK(t.tracked_messages() == 0);
}

TEST_CASE("tally: per-message state through many receptions, removals and a bound") {
  auto& f = fixture();
  // 6,000 messages: each received, the even ones signed, every third removed (in an order that
  // makes removals shift others along the table), then all delivered. Only the messages still
  // held can be judged: the odd ones not removed are the unsigned ones.
  const auto qid = [](int i) {
    char b[16];
    std::snprintf(b, sizeof b, "%010X", 0x1A0000 + i * 7919);
    return std::string(b);
  };
  constexpr int kN = 6000;
  Tally t(*f.rules, f.classifier);
  std::vector<std::string> lines;
  for (int i = 0; i < kN; ++i) {
    lines.push_back(line(1, "postfix/smtpd[90]", qid(i) + ": client=app.example.net[192.0.2.7]"));
    if (i % 2 == 0)
      lines.push_back(line(1, "opendkim[80]", qid(i) + ": DKIM-Signature field added (s=s1)"));
  }
  for (int i = kN - 1; i >= 0; --i) {
    if (i % 3 == 0) lines.push_back(line(2, "postfix/qmgr[70]", qid(i) + ": removed"));
  }
  feed(t, lines);
  CHECK(t.tracked_messages() == static_cast<std::size_t>(kN - kN / 3));
  lines.clear();
  for (int i = 0; i < kN; ++i) {
    lines.push_back(line(3, "postfix/out05/smtp[101]",
                         delivery(qid(i), "ana@contoso.example", kMs, "2.0.0", "sent", "250 ok")));
  }
  feed(t, lines);
  const auto b = t.take();
  const auto* u = find_anomaly(b, core::AnomalyKind::Unsigned);
  REQUIRE(u != nullptr);
  int want = 0;
  for (int i = 0; i < kN; ++i) want += i % 2 == 1 && i % 3 != 0 ? 1 : 0;
  CHECK(u->count == want);

  // Bounded: past the limit the oldest are forgotten first, the newest are still known.
  Tally small(*f.rules, f.classifier, 64);
  lines.clear();
  for (int i = 0; i < 1000; ++i)
    lines.push_back(line(1, "postfix/smtpd[90]", qid(i) + ": client=app.example.net[192.0.2.7]"));
  feed(small, lines);
  CHECK(small.tracked_messages() <= 64);
  CHECK(small.tracked_messages() >= 32);
  lines.clear();
  for (int i = 0; i < 1000; ++i) {
    lines.push_back(line(3, "postfix/out05/smtp[101]",
                         delivery(qid(i), "ana@contoso.example", kMs, "2.0.0", "sent", "250 ok")));
  }
  feed(small, lines);
  const auto bs = small.take();
  const auto* us = find_anomaly(bs, core::AnomalyKind::Unsigned);
  // Unsigned is judged only once OpenDKIM has logged: it has not here, so count the unjudged.
  CHECK(us == nullptr);
  CHECK(small.summary().unsigned_unjudged >= 32);
  CHECK(small.summary().unsigned_unjudged <= 64);
}

TEST_CASE("tally: unparsed lines are counted by reason, dates going backwards are counted") {
  auto& f = fixture();
  Tally t(*f.rules, f.classifier);
  feed(t, {
              line(100, "postfix/out05/smtp[101]",
                   delivery("8D1E2F3A40", "ana@contoso.example", kMs, "2.0.0", "sent", "250 ok")),
              "garbage \x01\xff\xfe without a stamp",
              line(0, "postfix/out05/smtp[101]",
                   delivery("8D1E2F3A41", "bo@contoso.example", kMs, "2.0.0", "sent", "250 ok")),
              line(1, "postfix/out05/smtp[101]", "8D1E2F3A42: to=<cut@contoso.example>, relay="),
          });
  t.overlong();
  const auto& s = t.summary();
  CHECK(s.lines == 5);
  CHECK(s.unparsed == 3);
  CHECK(s.overlong == 1);
  // The second delivery and the cut record: a line that does not parse still has its stamp.
  CHECK(s.backwards == 2);
  CHECK(s.first_time > 0);
  CHECK(s.last_time == s.first_time);  // the first line's stamp is the latest
  CHECK(s.deliveries == 2);
  std::int64_t by_reason = 0;
  for (const auto& [why, n] : s.unparsed_by_reason) by_reason += n;
  CHECK(by_reason == s.unparsed);
}

TEST_CASE("tally: dead-domain replies and [TSS04] pauses are collected for loop closing") {
  auto& f = fixture();
  Tally t(*f.rules, f.classifier);
  const std::string tenant =
      "host contoso-example.mail.protection.outlook.com[198.51.100.10] said: 451 4.4.4 Mail "
      "received as unauthenticated, incoming to a recipient domain configured in a hosted tenant "
      "which has no mail-enabled subscriptions. (in reply to RCPT TO command)";
  const std::string tss04 =
      "host mta5.am0.yahoodns.net[198.51.100.30] said: 421 4.7.0 [TSS04] Messages from "
      "203.0.113.94 temporarily deferred due to unexpected volume or user complaints - "
      "4.16.55.1; see https://postmaster.yahooinc.com/error-codes (in reply to MAIL FROM command)";
  feed(t,
       {
           line(0, "postfix/out05/smtp[101]",
                delivery("9E1F2A3B40", "a@Dead-Tenant.example", kMs, "4.4.4", "deferred", tenant)),
           line(1, "postfix/out05/smtp[101]",
                delivery("9E1F2A3B41", "b@dead-tenant.example", kMs, "4.4.4", "deferred", tenant)),
           line(2, "postfix/out05/smtp[101]",
                delivery("9E1F2A3B42", "c@yahoo.example", kYahoo, "4.7.0", "deferred", tss04)),
           line(7, "postfix/out07/smtp[102]",
                delivery("9E1F2A3B44", "e@yahoo.example", kYahoo, "4.7.0", "deferred", tss04)),
           // The latest reply is the sample, made valid UTF-8 when taken.
           line(9, "postfix/out05/smtp[101]",
                delivery("9E1F2A3B43", "d@yahoo.example", kYahoo, "4.7.0", "deferred",
                         "host mta5.am0.yahoodns.net[198.51.100.30] said: 421 4.7.0 [TSS04] "
                         "Messages from 203.0.113.94 deferred \xff (in reply to MAIL FROM "
                         "command)")),
       });
  const auto b = t.take();
  REQUIRE(b.domain_hits.size() == 1);
  CHECK(b.domain_hits[0].domain == "dead-tenant.example");
  CHECK(b.domain_hits[0].count == 2);
  REQUIRE(b.pauses.size() == 2);
  CHECK(b.pauses[0].stream == "bulk");
  CHECK(b.pauses[0].op == "yahoo");
  CHECK(b.pauses[0].rule == "yahoo-tss04");
  CHECK(b.pauses[0].time == kNoon - 4 * 3600 + 9);
  CHECK(b.pauses[0].sample == core::utf8_clean("421 4.7.0 [TSS04] Messages from 203.0.113.94 "
                                               "deferred \xff"));
  CHECK(b.pauses[1].stream == "notify");
  CHECK(
      b.pauses[1].sample.starts_with("421 4.7.0 [TSS04] Messages from 203.0.113.94 "
                                     "temporarily deferred"));
  CHECK(b.addresses.empty());  // deferrals never suppress an address
}

TEST_CASE("zero_delivery_days: judged only for days the log has finished") {
  std::map<std::pair<std::string, std::int64_t>, std::int64_t> acc{
      {{"bulk", 100}, 40}, {{"bulk", 101}, 0}, {{"bulk", 103}, 5}, {{"notify", 100}, 3}};
  const auto a = zero_delivery_days(acc, 104);
  // bulk: 101 (after 40 on 100); 102 follows a zero day; notify: 101 (after 3 on 100).
  REQUIRE(a.size() == 2);
  CHECK(a[0].stream == "bulk");
  CHECK(a[0].day == 101);
  CHECK(a[1].stream == "notify");
  CHECK(a[1].day == 101);
  // With the log ending on day 101, day 101 is not judged yet.
  CHECK(zero_delivery_days(acc, 101).empty());
}

TEST_CASE("feedback: suppressions follow the [feedback] thresholds") {
  core::FeedbackSpec fb;
  fb.address_expiry_days = 30;
  const std::vector<AddressHit> hits{
      {"a@example.org", kNoon, "unknown-mailbox", "550 5.1.1 no"},
      {"old@example.org", kNoon - 40 * 86400, "unknown-mailbox", "550 5.1.1 no"}};
  const auto s = address_suppressions(hits, fb, kNoon);
  REQUIRE(s.size() == 1);  // the old one would already have expired
  CHECK(s[0].value == "a@example.org");
  CHECK_FALSE(s[0].domain);
  CHECK(s[0].expires == kNoon + 30 * 86400);
  fb.suppress_addresses = false;
  CHECK(address_suppressions(hits, fb, kNoon).empty());

  core::FeedbackSpec d;
  d.domain_replies = 3;
  const std::vector<core::DomainHit> totals{{"dead.example", kDay, 3}, {"alive.example", kDay, 2}};
  const auto ds = domain_suppressions(totals, d, kNoon);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].value == "dead.example");
  CHECK(ds[0].domain);
  CHECK(ds[0].expires == (kDay + 1 + 90) * 86400);
}

TEST_CASE("feedback: back-offs from pauses and from the throttled share") {
  core::FeedbackSpec fb;  // 20% of at least 50 attempts, factor 50%, 24 h; pauses 24 h
  const std::vector<PauseHit> pauses{{"bulk", "yahoo", kNoon - 3600, "yahoo-tss04", "421 [TSS04]"}};
  auto p = pause_backoffs(pauses, fb, {}, kNoon);
  REQUIRE(p.size() == 1);
  CHECK(p[0].permille == 0);
  CHECK(p[0].until == kNoon - 3600 + 24 * 3600);
  CHECK(p[0].source == "classify");
  // Already paused as long: nothing; set by hand: never replaced; over already: nothing.
  CHECK(pause_backoffs(pauses, fb, {p[0]}, kNoon).empty());
  core::Backoff cli{"bulk", "yahoo", 900, kNoon + 600, "by hand", "cli", kNoon};
  CHECK(pause_backoffs(pauses, fb, {cli}, kNoon).empty());
  CHECK(pause_backoffs(pauses, fb, {}, kNoon + 30 * 3600).empty());

  auto agg = [](std::string op, core::Outcome o, std::int64_t n) {
    core::Aggregate a;
    a.key = {kDay, "bulk", "203.0.113.94", std::move(op), o, "policy-related", "4.7.500"};
    a.count = n;
    return a;
  };
  const std::vector<core::Aggregate> rows{
      agg("microsoft-365", core::Outcome::Accepted, 40),
      agg("microsoft-365", core::Outcome::Throttled, 10),  // 10/50 = 20%: crosses
      agg("google", core::Outcome::Accepted, 80),
      agg("google", core::Outcome::RejectReputation, 19),  // 19/99: under 20%
      agg("apple", core::Outcome::Throttled, 30),          // 30/30 but under 50 attempts
  };
  const auto s = share_backoffs(rows, fb, {}, kNoon, kNoon);
  REQUIRE(s.size() == 1);
  CHECK(s[0].op == "microsoft-365");
  CHECK(s[0].permille == 500);
  CHECK(s[0].until == kNoon + 24 * 3600);
  CHECK(s[0].reason.find("20% of 50 attempts") != std::string::npos);
  // A stricter active back-off (a pause) is not loosened.
  core::Backoff pause{"bulk", "microsoft-365", 0, kNoon + 3600, "pause", "classify", kNoon};
  CHECK(share_backoffs(rows, fb, {pause}, kNoon, kNoon).empty());
}

TEST_CASE("tally: stamps counted in runs as one by one, whatever the runs and the jumps back") {
  // A run counts its lines against each other; count_lines() recounts only the lines before
  // the run's own stamps pass the latest stamp before it. Runs of every length over stamps
  // that jump back and forth, with lines without a stamp, against a line-by-line reading.
  auto& f = fixture();
  std::uint64_t seed = 0x853c49e6748fea9bULL;
  const auto next = [&seed] {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
  };
  for (int trial = 0; trial < 60; ++trial) {
    std::vector<std::optional<core::UnixTime>> stamps;
    core::UnixTime t = kNoon + static_cast<core::UnixTime>(next() % 100);
    for (int i = 0; i < 400; ++i) {
      const auto r = next() % 100;
      if (r < 5) {
        stamps.push_back(std::nullopt);
        continue;
      }
      if (r < 12)
        t -= static_cast<core::UnixTime>(next() % 600);  // back, often past a minute
      else if (r < 15)
        t += static_cast<core::UnixTime>(next() % 600);
      else
        t += static_cast<core::UnixTime>(next() % 3);
      stamps.push_back(t);
    }
    std::int64_t lines = 0, backwards = 0;
    core::UnixTime first = 0, last = 0;
    for (const auto& st : stamps) {
      ++lines;
      if (!st) continue;
      if (first == 0) first = *st;
      if (*st + 60 < last) ++backwards;
      last = std::max(last, *st);
    }
    Tally tally(*f.rules, f.classifier);
    const std::size_t max_run = 1 + static_cast<std::size_t>(trial % 50);
    for (std::size_t at = 0; at < stamps.size();) {
      StampRun run;
      const auto n = std::min(stamps.size() - at, 1 + next() % max_run);
      for (std::size_t k = 0; k < n; ++k, ++at) {
        if (stamps[at]) {
          run.add(*stamps[at]);
        } else {
          run.add_undated();
        }
      }
      tally.count_lines(run);
    }
    CAPTURE(trial);
    const auto& s = tally.summary();
    CHECK(s.lines == lines);
    CHECK(s.first_time == first);
    CHECK(s.last_time == last);
    CHECK(s.backwards == backwards);
  }
}

TEST_CASE(
    "tally: fed in parts over three Tallies, as classify's two threads do, counts as feed()") {
  auto& f = fixture();
  const std::vector<std::string> lines = {
      line(100, "postfix/smtpd[90]", "5A1B2C3D4E: client=app.example.net[192.0.2.7]"),
      line(101, "opendkim[80]", "5A1B2C3D4E: DKIM-Signature field added (s=s1, d=example.net)"),
      line(101, "rampart-milter[81]", "5A1B2C3D4E: pin stream=notify transport=out07"),
      "garbage \x01\xff without a stamp",
      line(102, "postfix/out05/smtp[101]",
           delivery("5A1B2C3D4E", "ana@contoso.example", kMs, "2.0.0", "sent", "250 ok")),
      line(103, "postfix/qmgr[70]", "5A1B2C3D4E: removed"),
      line(0, "postfix/out05/smtp[101]", "8D1E2F3A42: to=<cut@contoso.example>, relay="),
      line(104, "postfix/out05/smtp[101]",
           "warning: smtp_connect_addr: bind 203.0.113.94: Cannot assign requested address"),
      line(105, "postfix/out05/smtp[101]",
           delivery("6B1C2D3E4F", "bo@contoso.example", kMs, "5.1.10", "bounced",
                    "host x[198.51.100.1] said: 550 5.1.10 RESOLVER.ADR.RecipientNotFound")),
      line(106, "postfix/anvil[60]", "statistics: max connection rate 1/60s"),
  };
  Tally whole(*f.rules, f.classifier);
  feed(whole, lines);
  whole.overlong();
  // As classify's reader: kinds counted in two Census objects, the stamps handed over in two
  // runs, the stateful lines fed in order.
  Tally shared(*f.rules, f.classifier);
  Census census[2];
  StampRun runs[2];
  ParsedLine pl;
  std::size_t stateful = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    parse_line(lines[i], Clock{kNoon, 0}, pl);
    auto& run = runs[i < 5 ? 0 : 1];
    if (pl.dated) {
      run.add(pl.header.time);
    } else {
      run.add_undated();
    }
    census[i % 2].count(pl);
    if (Tally::stateful(pl)) {
      ++stateful;
      shared.feed_state(pl);
    }
  }
  census[1].count_overlong();
  shared.count_lines(runs[0]);
  shared.count_lines(runs[1]);
  // client=, the OpenDKIM and milter lines, two deliveries, removed, the bind warning.
  CHECK(stateful == 7);
  shared.add_census(census[0]);
  shared.add_census(census[1]);
  const auto& w = whole.summary();
  const auto& s = shared.summary();
  CHECK(s.lines == w.lines);
  CHECK(s.lines == static_cast<std::int64_t>(lines.size()) + 1);
  CHECK(s.overlong == 1);
  CHECK(s.overlong == w.overlong);
  CHECK(s.postfix == w.postfix);
  CHECK(s.other_program == w.other_program);
  CHECK(s.unparsed == w.unparsed);
  CHECK(s.unparsed_by_reason == w.unparsed_by_reason);
  CHECK(s.backwards == w.backwards);
  CHECK(s.backwards == 1);
  CHECK(s.first_time == w.first_time);
  CHECK(s.last_time == w.last_time);
  CHECK(s.deliveries == w.deliveries);
  CHECK(s.deliveries == 2);
  CHECK(s.anomalies == w.anomalies);
  const auto bw = whole.take();
  const auto bs = shared.take();
  REQUIRE(bs.aggregates.size() == bw.aggregates.size());
  for (std::size_t i = 0; i < bw.aggregates.size(); ++i) {
    CHECK(bs.aggregates[i].key == bw.aggregates[i].key);
    CHECK(bs.aggregates[i].count == bw.aggregates[i].count);
  }
  CHECK(bs.addresses == bw.addresses);
  CHECK(bs.anomalies.size() == bw.anomalies.size());
}
