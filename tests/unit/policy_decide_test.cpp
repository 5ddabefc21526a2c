// The pure half of a policy decision (policyd/core/decide.hpp): the exact reply lines Postfix
// gets for each outcome, over-limit replies built from the limit engine, and reading the
// envelope from a request. Pure.
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <string_view>

#include "core/limits.hpp"
#include "core/ruleset.hpp"
#include "policyd/core/decide.hpp"
#include "policyd/core/protocol.hpp"

using namespace rampart;
using namespace rampart::policyd;

namespace {

core::StreamSpec stream(core::OverCap over_cap) {
  core::StreamSpec s;
  s.name = "bulk";
  s.over_cap = over_cap;
  return s;
}

core::Limit op_limit(core::LimitKind kind, std::int64_t n, std::string detail = "") {
  return {core::Scope{core::ScopeKind::OperatorDay, "bulk", "google"}, kind, n, std::move(detail),
          std::nullopt};
}

constexpr core::UnixTime kTomorrow = 1795392000;  // 2026-11-23T00:00:00Z

}  // namespace

TEST_CASE("Reply::line: the exact action line for each outcome") {
  const auto defer = stream(core::OverCap::Defer);
  const auto hold = stream(core::OverCap::Hold);
  const core::Limit hourly{
      core::Scope{core::ScopeKind::StreamHour, "bulk", {}}, core::LimitKind::Hourly, 50, {}, {}};
  struct Case {
    std::string_view label;
    Reply reply;
    std::string_view want_line;
    Action want_action;
    std::string_view want_reason;
  };
  const Case cases[] = {
      {"dunno", dunno(), "DUNNO", Action::Dunno, ""},
      {"over a cap, defer stream",
       over_limit(defer, op_limit(core::LimitKind::Cap, 120), 120, "google", kTomorrow),
       "DEFER_IF_PERMIT 4.7.1 rampart: cap (120/120) for stream bulk operator google; reopens "
       "2026-11-23T00:00:00Z",
       Action::Defer, "cap"},
      {"over a cap, hold stream",
       over_limit(hold, op_limit(core::LimitKind::Cap, 120), 120, "google", kTomorrow),
       "HOLD rampart: cap (120/120) for stream bulk operator google; reopens "
       "2026-11-23T00:00:00Z",
       Action::Hold, "cap"},
      {"hourly, operator unknown", over_limit(defer, hourly, 50, "", 1795352700),
       "DEFER_IF_PERMIT 4.7.1 rampart: hourly (50/50) for stream bulk; reopens "
       "2026-11-22T13:05:00Z",
       Action::Defer, "hourly"},
      {"send-days gate",
       over_limit(defer, op_limit(core::LimitKind::Gate, 0, "until warm-up day 30"), 0, "google",
                  std::nullopt),
       "DEFER_IF_PERMIT 4.7.1 rampart: gate (0/0) for stream bulk operator google (until warm-up "
       "day 30); reopens at that warm-up day",
       Action::Defer, "gate"},
      {"pause, hold stream",
       over_limit(hold, op_limit(core::LimitKind::Pause, 0, "451 4.7.500 throttled"), 12, "google",
                  1795352700),
       "HOLD rampart: pause (12/0) for stream bulk operator google (451 4.7.500 throttled); "
       "reopens 2026-11-22T13:05:00Z",
       Action::Hold, "pause"},
      {"null MX", null_mx("example.com"),
       "REJECT 5.1.10 rampart: recipient domain example.com accepts no mail (null MX, RFC 7505)",
       Action::Reject, "null_mx"},
      {"no mail host", no_mail_domain("nx.example.net", "NXDOMAIN"),
       "REJECT 5.1.2 rampart: recipient domain nx.example.net has no mail host (NXDOMAIN)",
       Action::Reject, "no_mail_domain"},
      {"DNS failed", dns_failed("slow.example.org", "timeout"),
       "DEFER_IF_PERMIT 4.4.3 rampart: MX lookup for slow.example.org failed (timeout); try again "
       "later",
       Action::Defer, "dns_error"},
      {"store down", store_failed(),
       "DEFER_IF_PERMIT 4.3.0 rampart: budget store unavailable; try again later", Action::Defer,
       "store_error"},
      {"leases taken by others", budget_busy(),
       "DEFER_IF_PERMIT 4.3.0 rampart: budget busy; try again later", Action::Defer, "contention"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    CHECK(c.reply.line() == c.want_line);
    CHECK(c.reply.action == c.want_action);
    CHECK(c.reply.reason == c.want_reason);
    // One line, always: what format_reply sends is "action=<line>\n\n".
    CHECK(format_reply(c.reply.line()) == "action=" + std::string(c.want_line) + "\n\n");
  }
  // Over a limit, the log line gets the counts as fields too; other replies have none.
  const auto over =
      over_limit(defer, op_limit(core::LimitKind::Cap, 120), 117, "google", kTomorrow);
  CHECK(over.used == 117);
  CHECK(over.max == 120);
  CHECK_FALSE(null_mx("nomail.example").used.has_value());
  CHECK_FALSE(store_failed().max.has_value());
}

TEST_CASE("over_limit: a limit from limits_for, named with its reopen time") {
  core::RulesSpec spec;
  spec.ramps = {{"consumer", {{0, 50}, {2, 150}, {4, 250}, {7, 300}}, {}}};
  core::StreamSpec s = stream(core::OverCap::Hold);
  s.ports = {25};
  s.warmup =
      core::Warmup{*core::Date::parse("2026-11-01"), core::WarmupCount::Calendar, "consumer", 50};
  s.daily_ceiling = 4000;
  spec.streams = {s};
  spec.operators = {{"google", {".google.com"}, {}}};
  spec.caps = {{"bulk", "google", 0, 30, {}}};
  auto rs = core::RuleSet::compile(std::move(spec));
  REQUIRE_MESSAGE(rs.has_value(), rs.error().what);
  const auto& rules = **rs;
  const core::UnixTime now = 1795352700;  // 2026-11-22T13:05:00Z: warm-up day 21
  const auto set = core::limits_for(rules, *rules.stream("bulk"), rules.op("google"), {}, {}, now);
  REQUIRE(set.limits.size() == 3);
  const auto& gate = set.limits.back();
  const auto reply =
      over_limit(*rules.stream("bulk"), gate, 0, "google", core::reopens(gate, {}, now));
  CHECK(reply.line() ==
        "HOLD rampart: gate (0/0) for stream bulk operator google (until warm-up day 30); "
        "reopens 2026-12-01T00:00:00Z");
  CHECK(verdict_word(reply.action) == "hold");
}

TEST_CASE("verdict_word: the log's verdicts") {
  struct Case {
    std::string_view label;
    Action action;
    std::string_view want;
  };
  const Case cases[] = {
      {"dunno", Action::Dunno, "dunno"},
      {"defer", Action::Defer, "defer"},
      {"hold", Action::Hold, "hold"},
      {"reject", Action::Reject, "reject"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    CHECK(verdict_word(c.action) == c.want);
  }
}

namespace {
// The fields both read_envelope cases send the same values for.
void check_fixed_fields(const Envelope& e) {
  CHECK(e.protocol_state == "RCPT");
  CHECK(e.queue_id == "4F1A2B3C");
  CHECK(e.instance == "a1b2.6f1c2d3e.1");
  CHECK(e.stream_query.client_addr == "172.18.0.5");
  CHECK(e.stream_query.sender == "news@send.example.net");
  CHECK(e.stream_query.sasl_user == "app2");
}
}  // namespace

TEST_CASE("read_envelope: the attributes a decision reads") {
  struct Case {
    std::string_view label;
    std::string recipient;
    std::string port;
    std::string_view want_domain;
    std::optional<std::int64_t> want_port;
  };
  const Case cases[] = {
      {"plain", "a@contoso.example", "25", "contoso.example", 25},
      {"trailing dots dropped", "a@contoso.example..", "2526", "contoso.example", 2526},
      {"last @ wins", "\"a@b\"@contoso.example", "25", "contoso.example", 25},
      {"no @: no domain", "postmaster", "25", "", 25},
      {"empty port", "a@contoso.example", "", "contoso.example", std::nullopt},
      {"junk after the port", "a@contoso.example", "25x", "contoso.example", std::nullopt},
      {"not a number", "a@contoso.example", "smtp", "contoso.example", std::nullopt},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const std::string text =
        "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=172.18.0.5\n"
        "server_port=" +
        c.port + "\nsender=news@send.example.net\nrecipient=" + c.recipient +
        "\nqueue_id=4F1A2B3C\ninstance=a1b2.6f1c2d3e.1\nsasl_username=app2\n\n";
    const auto parsed = parse_request(text);
    REQUIRE(parsed.status == ParseStatus::Complete);
    const Envelope e = read_envelope(parsed.request);
    check_fixed_fields(e);
    CHECK(e.recipient == c.recipient);
    CHECK(e.domain == c.want_domain);
    CHECK(e.stream_query.port == c.want_port);
  }
}

TEST_CASE(
    "read_envelope: other attributes, even of the same length, are not taken for those read") {
  // A Postfix 3.7 RCPT request in full, with names as long as the ones read ("stress" and
  // "sender", "helo_name" and "recipient", "sasl_sender" and "server_port", ...) before them.
  const std::string text =
      "request=smtpd_access_policy\nprotocol_state_x=END\nstress=yes\nhelo_name=app2.example\n"
      "client_name=app2.example\nsasl_sender=x\nsasl_method=PLAIN\netrn_domain=\n"
      "ccert_subject=CN=x\nprotocol_name=ESMTP\nreverse_client_name=app2.example\nsize=1234\n"
      "policy_context=\nccert_issuer=\nclient_port=51234\nqueue_id=4F1A2B3C\n"
      "instance=a1b2.6f1c2d3e.1\nprotocol_state=RCPT\nclient_address=172.18.0.5\n"
      "server_address=203.0.113.94\nserver_port=587\nsender=news@send.example.net\n"
      "recipient=a@contoso.example\nrecipient_count=0\nsasl_username=app2\n\n";
  const auto parsed = parse_request(text);
  REQUIRE(parsed.status == ParseStatus::Complete);
  const Envelope e = read_envelope(parsed.request);
  check_fixed_fields(e);
  CHECK(e.recipient == "a@contoso.example");
  CHECK(e.domain == "contoso.example");
  CHECK(e.stream_query.port == 587);
}
