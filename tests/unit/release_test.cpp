// core/release: reading postqueue -j and postcat output, finding a held message's stream, what
// releasing it spends, and the all-or-nothing ledger the dry run plans with. Pure; time is
// passed in.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/release.hpp"
#include "rules/reader.hpp"

using namespace rampart;
using namespace rampart::core;

namespace {

std::shared_ptr<const RuleSet> compile_text(const std::string& text) {
  auto p = rules::parse(text, "t.toml");
  REQUIRE_MESSAGE(p, p.error().what);
  auto c = RuleSet::compile(std::move(p->spec));
  REQUIRE_MESSAGE(c, c.error().what);
  return *c;
}

const char* kRules = R"(
[[stream]]
name = "bulk"
ports = [25]
clients = ["172.18.0.0/16"]
transport = "out05"
warmup = { start = "2026-11-19", count = "calendar", ramp = "consumer" }
over_cap = "hold"

[[stream]]
name = "quiet"
ports = [587]
daily_ceiling = 10
over_cap = "hold"

[[ramp]]
name = "consumer"
steps = [ { day = 0, hourly = 5 }, { day = 2, hourly = 8 } ]

[[operator]]
name = "google"
mx = [".google.com"]

[[operator]]
name = "microsoft"
mx = [".mail.protection.outlook.com"]

[[cap]]
stream = "bulk"
operator = "google"
daily = 3

[[cap]]
stream = "bulk"
operator = "microsoft"
daily = 0
until_day = 30

[[exclusion]]
category = "legal-hold"
action = "hold"
streams = ["*"]
addresses = ["ceo@example.org"]

[[exclusion]]
category = "dead"
action = "reject"
streams = ["*"]
domains = ["dead.example"]
)";

// 2026-11-22T10:00:00Z: warm-up day 3 of bulk (calendar from 2026-11-19), hourly 8.
UnixTime at(const char* date, std::int64_t secs) {
  return std::int64_t{Date::parse(date)->days} * kDaySeconds + secs;
}
const UnixTime kNow = at("2026-11-22", 10 * 3600);

// What `postcat -c DIR -e -h -q ID` printed for a held message on Postfix 3.7 (lab run), plus a
// folded header.
const char* kPostcat = R"(*** ENVELOPE RECORDS hold/78CE5A7AFA7 ***
message_size:             484             779               2               0             484               0
message_arrival_time: Sun Nov 22 02:04:58 2026
create_time: Sun Nov 22 02:04:58 2026
named_attribute: log_ident=78CE5A7AFA7
named_attribute: rewrite_context=local
sender: news@shop.example
named_attribute: log_client_name=localhost
named_attribute: log_client_address=127.0.0.1
named_attribute: log_client_port=34552
named_attribute: log_message_origin=localhost[127.0.0.1]
named_attribute: client_name=localhost
named_attribute: client_address=172.18.0.5
named_attribute: client_port=34552
named_attribute: server_address=127.0.0.1
named_attribute: server_port=25
named_attribute: protocol_name=ESMTP
named_attribute: dsn_orig_rcpt=rfc822;alice@contoso.example
original_recipient: alice@contoso.example
recipient: alice@contoso.example
*** MESSAGE CONTENTS hold/78CE5A7AFA7 ***
Received: from submit.lab.example (localhost [127.0.0.1])
	by mta.lab.example (Postfix) with ESMTP id 78CE5A7AFA7;
	Sun, 22 Nov 2026 02:04:58 +0000 (UTC)
Subject: a subject: with colons
x-rampart-stream: bulk
 transport=out05
From: news@shop.example
*** HEADER EXTRACTED hold/78CE5A7AFA7 ***
*** MESSAGE FILE END hold/78CE5A7AFA7 ***
)";

QueueFileInfo info_with(std::vector<std::string> headers,
                        std::vector<std::pair<std::string, std::string>> attrs,
                        std::optional<std::string> sender = std::nullopt) {
  QueueFileInfo info;
  info.stream_headers = std::move(headers);
  for (auto& [k, v] : attrs) info.attributes.emplace(k, v);
  info.sender = std::move(sender);
  return info;
}

}  // namespace

TEST_CASE("parse_postqueue_line: postqueue -j fields; bad lines are Invalid") {
  auto m = parse_postqueue_line(
      R"({"queue_name": "hold", "queue_id": "78CE5A7AFA7", "arrival_time": 1795313098, )"
      R"("message_size": 484, "forced_expire": false, "sender": "", "recipients": )"
      R"([{"address": "alice@contoso.example"}, {"address": "bob@fabrikam.example", )"
      R"("delay_reason": "held"}]})");
  REQUIRE_MESSAGE(m, m.error().what);
  CHECK(m->queue_name == "hold");
  CHECK(m->queue_id == "78CE5A7AFA7");
  CHECK(m->arrival_time == 1795313098);
  CHECK(m->message_size == 484);
  CHECK(m->sender.empty());
  CHECK(m->recipients == std::vector<std::string>{"alice@contoso.example", "bob@fabrikam.example"});

  struct Case {
    const char* label;
    const char* line;
    const char* want;
  };
  const Case cases[] = {
      {"not json", "postqueue: fatal: Queue report unavailable", "json:"},
      {"not an object", "[1]", "line is no object"},
      {"no queue id", R"({"queue_name": "hold", "arrival_time": 1, "recipients": []})",
       "queue_id missing"},
      {"time as text",
       R"({"queue_name": "hold", "queue_id": "A", "arrival_time": "1", "recipients": []})",
       "arrival_time missing or not an integer"},
      {"no recipients", R"({"queue_name": "hold", "queue_id": "A", "arrival_time": 1})",
       "recipients missing"},
      {"recipient without address",
       R"({"queue_name": "hold", "queue_id": "A", "arrival_time": 1, "recipients": [{}]})",
       "a recipient has no address"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    auto r = parse_postqueue_line(c.line);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::Invalid);
    CHECK_MESSAGE(r.error().what.find(c.want) != std::string::npos, r.error().what);
  }
}

TEST_CASE("parse_postcat: envelope attributes, sender, X-Rampart-Stream unfolded") {
  const auto info = parse_postcat(kPostcat);
  CHECK(info.attributes.at("client_address") == "172.18.0.5");
  CHECK(info.attributes.at("server_port") == "25");
  CHECK(info.attributes.at("log_message_origin") == "localhost[127.0.0.1]");
  CHECK(info.attributes.count("sasl_username") == 0);
  CHECK(info.sender == "news@shop.example");
  REQUIRE(info.stream_headers.size() == 1);
  CHECK(info.stream_headers[0] == "bulk transport=out05");

  // The null sender; no -e (headers only); a blank line ends the headers (postcat -h -b).
  const auto null_sender = parse_postcat("*** ENVELOPE RECORDS x ***\nsender: \n");
  CHECK(null_sender.sender == "");
  const auto headers_only = parse_postcat("X-Rampart-Stream: quiet transport=-\nTo: a@b\n");
  CHECK(headers_only.stream_headers == std::vector<std::string>{"quiet transport=-"});
  CHECK_FALSE(headers_only.sender);
  const auto with_body = parse_postcat("X-Rampart-Stream: a\n\nX-Rampart-Stream: in the body\n");
  CHECK(with_body.stream_headers == std::vector<std::string>{"a"});
  CHECK(parse_postcat("").stream_headers.empty());
}

TEST_CASE("stream_header_name: the stream word of the milter's header") {
  CHECK(stream_header_name("bulk transport=out05") == "bulk");
  CHECK(stream_header_name("  bulk\ttransport=out05") == "bulk");
  CHECK(stream_header_name("bulk") == "bulk");
  CHECK(stream_header_name("-") == "");
  CHECK(stream_header_name("") == "");
}

TEST_CASE("find_stream: the header when it is unambiguous, else the envelope") {
  const auto rules = compile_text(kRules);
  const std::vector<std::pair<std::string, std::string>> bulk_env{{"server_port", "25"},
                                                                  {"client_address", "172.18.0.5"}};
  const std::vector<std::pair<std::string, std::string>> quiet_env{{"server_port", "587"}};
  struct Case {
    const char* label;
    QueueFileInfo info;
    const char* want_stream;  // "" = none
    StreamSource want_source;
    const char* want_detail;
  };
  const Case cases[] = {
      {"header", info_with({"bulk transport=out05"}, quiet_env), "bulk", StreamSource::Header, ""},
      {"same header twice", info_with({"bulk transport=out05", "bulk"}, {}), "bulk",
       StreamSource::Header, ""},
      {"no header: envelope", info_with({}, bulk_env), "bulk", StreamSource::Envelope, ""},
      {"conflicting headers: envelope", info_with({"bulk", "quiet"}, quiet_env), "quiet",
       StreamSource::Envelope, ""},
      {"milter found none", info_with({"-"}, bulk_env), "", StreamSource::None,
       "rampart-milter found no stream"},
      {"stream gone from the rules", info_with({"gone transport=out09"}, bulk_env), "",
       StreamSource::None, "names stream \"gone\", which is not in the rules"},
      {"nothing matches", info_with({}, {{"server_port", "2525"}}), "", StreamSource::None,
       "no X-Rampart-Stream header and no stream matches"},
      {"bad port", info_with({}, {{"server_port", "25x"}, {"client_address", "172.18.0.5"}}), "",
       StreamSource::None, "no X-Rampart-Stream header"},
      {"conflicting and nothing matches", info_with({"bulk", "quiet"}, {}), "", StreamSource::None,
       "conflicting X-Rampart-Stream headers"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = find_stream(*rules, c.info);
    CHECK(std::string(got.stream != nullptr ? got.stream->name : "") == c.want_stream);
    CHECK(got.source == c.want_source);
    CHECK_MESSAGE(got.detail.find(c.want_detail) != std::string::npos, got.detail);
  }
}

TEST_CASE("held_by_exclusion: only hold exclusions keep a message held") {
  const auto rules = compile_text(kRules);
  const auto* bulk = rules->stream("bulk");
  const std::vector<std::string> plain{"a@gmail.com", "b@dead.example"};
  CHECK_FALSE(held_by_exclusion(*rules, bulk, plain));  // a reject exclusion is not a hold
  const std::vector<std::string> legal{"a@gmail.com", "CEO@example.org"};
  const auto hit = held_by_exclusion(*rules, bulk, legal);
  REQUIRE(hit);
  CHECK(hit->address == "CEO@example.org");
  CHECK(hit->rule->category == "legal-hold");
  CHECK(held_by_exclusion(*rules, nullptr, legal));  // streams = ["*"] covers no stream too
}

TEST_CASE("release_needs: per scope sums, the day scope always counted, back-offs applied") {
  const auto rules = compile_text(kRules);
  const auto* google = rules->op("google");
  const auto* microsoft = rules->op("microsoft");
  const auto* bulk = rules->stream("bulk");
  const auto* quiet = rules->stream("quiet");
  const std::vector<ReleaseRecipient> rcpts{{"a@gmail.com", google, true},
                                            {"b@unknown.example", nullptr, true},
                                            {"c@gmail.com", google, true},
                                            {"d@nomx.example", nullptr, false}};
  struct Want {
    std::string scope;
    LimitKind kind;
    std::int64_t limit;
    std::int64_t units;
  };
  auto check = [](const std::vector<Need>& got, const std::vector<Want>& want) {
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
      CAPTURE(i);
      CHECK(got[i].limit.scope.key() == want[i].scope);
      CHECK(got[i].limit.kind == want[i].kind);
      CHECK(got[i].limit.limit == want[i].limit);
      CHECK(got[i].units == want[i].units);
    }
  };
  SUBCASE("ramp hour, uncapped day, operator cap") {
    check(release_needs(*rules, *bulk, rcpts, {}, {}, kNow),
          {{"hour:bulk", LimitKind::Hourly, 8, 3},
           {"day:bulk", LimitKind::DailyCeiling, kNoLimit, 3},
           {"op:bulk/google", LimitKind::Cap, 3, 2}});
  }
  SUBCASE("a back-off halves the cap; an expired one does nothing") {
    const std::vector<Backoff> backoffs{
        {"bulk", "google", 500, kNow + 3600, "421 4.7.0", "cli", kNow - 60},
        {"bulk", "microsoft", 0, kNow - 1, "old", "cli", kNow - 7200}};
    const auto got = release_needs(*rules, *bulk, rcpts, {}, backoffs, kNow);
    check(got, {{"hour:bulk", LimitKind::Hourly, 8, 3},
                {"day:bulk", LimitKind::DailyCeiling, kNoLimit, 3},
                {"op:bulk/google", LimitKind::Backoff, 1, 2}});
    CHECK(got[2].limit.lifts == kNow + 3600);
  }
  SUBCASE("a gate is a need like any other") {
    const std::vector<ReleaseRecipient> ms{{"x@contoso.example", microsoft, true}};
    check(release_needs(*rules, *bulk, ms, {}, {}, kNow),
          {{"hour:bulk", LimitKind::Hourly, 8, 1},
           {"day:bulk", LimitKind::DailyCeiling, kNoLimit, 1},
           {"op:bulk/microsoft", LimitKind::Gate, 0, 1}});
  }
  SUBCASE("a ceiling is the day scope; no ramp, no hour") {
    check(release_needs(*rules, *quiet, rcpts, {}, {}, kNow),
          {{"day:quiet", LimitKind::DailyCeiling, 10, 3}});
  }
  SUBCASE("nothing charged: nothing needed") {
    const std::vector<ReleaseRecipient> none{{"d@nomx.example", nullptr, false}};
    CHECK(release_needs(*rules, *bulk, none, {}, {}, kNow).empty());
  }
}

TEST_CASE("Ledger::take: oldest first, all or nothing, later messages still get their turn") {
  const auto rules = compile_text(kRules);
  const auto* google = rules->op("google");
  const auto* microsoft = rules->op("microsoft");
  const auto* bulk = rules->stream("bulk");
  const auto today = day_of(kNow);
  const auto minute = minute_of(kNow);

  Ledger ledger(60);
  ledger.add("hour:bulk", minute - 50, 4);    // leaves the window at 10:11:00
  ledger.add("hour:bulk", minute - 200, 99);  // long gone from the window
  ledger.add("op:bulk/google", today, 1);
  ledger.add("op:bulk/google", today - 1, 50);  // yesterday's use does not count
  ledger.add("day:bulk", today, 5);

  struct Case {
    const char* label;
    std::vector<ReleaseRecipient> rcpts;
    bool want_release;
    const char* want_text;
    std::optional<UnixTime> want_reopens;
  };
  auto g = [&](const char* a) { return ReleaseRecipient{a, google, true}; };
  auto u = [&](const char* a) { return ReleaseRecipient{a, nullptr, true}; };
  const Case cases[] = {
      {"fits: two to google", {g("a@gmail.com"), g("b@gmail.com")}, true, "", std::nullopt},
      {"google cap spent",
       {g("c@gmail.com")},
       false,
       "cap (3/3) for stream bulk operator google; needs 1; reopens 2026-11-23T00:00:00Z",
       at("2026-11-23", 0)},
      {"gate: the hour fits, the operator never today",
       {u("d@unknown.example"), {"e@contoso.example", microsoft, true}},
       false,
       "gate (0/0) for stream bulk operator microsoft (until warm-up day 30); needs 1; reopens "
       "2026-12-19T00:00:00Z",
       at("2026-12-19", 0)},
      {"hour: 6 of 8 used, 3 needed",
       {u("f@a.example"), u("g@a.example"), u("h@a.example")},
       false,
       "hourly (6/8) for stream bulk; needs 3; reopens 2026-11-22T10:11:00Z",
       kNow + 11 * 60},
      {"hour and gate both short: the gate, which reopens later, is named",
       {u("f2@a.example"), u("g2@a.example"), {"e2@contoso.example", microsoft, true}},
       false,
       "gate (0/0) for stream bulk operator microsoft (until warm-up day 30); needs 1; reopens "
       "2026-12-19T00:00:00Z",
       at("2026-12-19", 0)},
      {"a later, smaller message still fits", {u("i@a.example")}, true, "", std::nullopt},
      {"more than the whole hourly limit",
       std::vector<ReleaseRecipient>(9, ReleaseRecipient{"j@a.example", nullptr, true}), false,
       "hourly (7/8) for stream bulk; needs 9, more than the whole limit: release it by hand",
       std::nullopt},
      {"uncharged recipients need nothing",
       {{"k@nomx.example", nullptr, false}},
       true,
       "",
       std::nullopt},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto needs = release_needs(*rules, *bulk, c.rcpts, {}, {}, kNow);
    const auto got = ledger.take(needs, kNow);
    CHECK(!got.has_value() == c.want_release);
    if (got) {
      CHECK(got->text == c.want_text);
      CHECK(got->reopens == c.want_reopens);
    }
  }
  // Charges: 2 + 1 released recipients, on the minute a 60 s lease would charge.
  CHECK(ledger.used(Scope{ScopeKind::StreamHour, "bulk", {}}, kNow) == 7);
  CHECK(ledger.window("hour:bulk").back() == Bucket{minute_of(kNow + 60), 3});
  CHECK(ledger.used(Scope{ScopeKind::StreamDay, "bulk", {}}, kNow) == 8);
  CHECK(ledger.used(Scope{ScopeKind::OperatorDay, "bulk", "google"}, kNow) == 3);
  CHECK(ledger.used(Scope{ScopeKind::OperatorDay, "bulk", "microsoft"}, kNow) == 0);
  // An hour later the window has emptied but the day counts stay.
  CHECK(ledger.used(Scope{ScopeKind::StreamHour, "bulk", {}}, kNow + 3720) == 0);
  CHECK(ledger.used(Scope{ScopeKind::StreamDay, "bulk", {}}, kNow + 3720) == 8);
}

TEST_CASE("lease_expiry: a day lease never outlives its day") {
  const Scope day{ScopeKind::StreamDay, "bulk", {}};
  const Scope hour{ScopeKind::StreamHour, "bulk", {}};
  const UnixTime late = at("2026-11-22", 86400 - 30);
  CHECK(lease_expiry(day, kNow, 60) == kNow + 60);
  CHECK(lease_expiry(day, late, 60) == at("2026-11-23", 0));
  CHECK(lease_expiry(hour, late, 60) == late + 60);
}
