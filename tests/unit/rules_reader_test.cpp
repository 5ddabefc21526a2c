// rules::parse + core::validate: every kind of bad input is refused with file:line and the key
// named; good input reads back exactly. Pure (no files).
#include <doctest/doctest.h>

#include "core/ruleset.hpp"
#include "rules/reader.hpp"
#include "rules/writer.hpp"

using namespace rampart;

namespace {

// Parses and compiles one file's text; returns the error text or "" when it is accepted.
std::string error_of(const std::string& text) {
  auto p = rules::parse(text, "rules.toml");
  if (!p) {
    CHECK(p.error().code == Errc::Config);
    return p.error().what;
  }
  auto c = core::RuleSet::compile(std::move(p->spec));
  if (!c) {
    CHECK(c.error().code == Errc::Config);
    return c.error().what;
  }
  return "";
}

const std::string kRamp = "[[ramp]]\nname = \"r\"\nsteps = [ { day = 0, hourly = 5 } ]\n";
const std::string kStream = "[[stream]]\nname = \"bulk\"\nports = [25]\n";
const std::string kOperator = "[[operator]]\nname = \"google\"\nmx = [\".google.com\"]\n";

}  // namespace

TEST_CASE("rules::parse: bad input is refused naming file, line and key") {
  struct Case {
    const char* label;
    std::string text;
    const char* want;  // substring of the error
  };
  const Case cases[] = {
      {"malformed TOML", "[[stream]\nname = \"x\"\n", "rules.toml:1:"},
      {"unknown key names the entry", kStream + "port = 25\n",
       "rules.toml:4: stream \"bulk\": unknown key \"port\""},
      {"unknown top-level key", "streams = 1\n", "rules.toml:1: unknown top-level key \"streams\""},
      {"table instead of array of tables", "[stream]\nname = \"x\"\n",
       "rules.toml:1: stream: expected [[stream]] tables"},
      {"missing name", "[[stream]]\nports = [25]\n", "rules.toml:1: stream: missing key \"name\""},
      {"wrong type", "[[stream]]\nname = \"b\"\nports = \"25\"\n",
       "rules.toml:3: stream \"b\": ports: expected an array of integers, got string"},
      {"bad CIDR", kStream + "clients = [\"172.18.0.0/33\"]\n",
       "rules.toml:4: stream \"bulk\": bad CIDR \"172.18.0.0/33\""},
      {"CIDR with host bits", kStream + "clients = [\"172.18.0.5/16\"]\n",
       "did you mean 172.18.0.0/16"},
      {"bad v6 CIDR", kStream + "clients = [\"2001:db8::zz/32\"]\n", "bad CIDR"},
      {"duplicate stream", kStream + kStream,
       "rules.toml:4: stream \"bulk\": duplicate name (first defined at rules.toml:1)"},
      {"duplicate operator", kOperator + kOperator, "operator \"google\": duplicate name"},
      {"cap with unknown stream",
       kOperator + "[[cap]]\nstream = \"nope\"\noperator = \"google\"\ndaily = 1\n",
       "rules.toml:5: cap \"nope/google\": unknown stream \"nope\""},
      {"cap with unknown operator",
       kStream + "[[cap]]\nstream = \"bulk\"\noperator = \"nope\"\ndaily = 1\n",
       "rules.toml:6: cap \"bulk/nope\": unknown operator \"nope\""},
      {"ramp with unsorted days",
       "[[ramp]]\nname = \"r\"\nsteps = [ { day = 0, hourly = 5 }, { day = 4, hourly = 9 }, { day "
       "= 2, hourly = 7 } ]\n",
       "rules.toml:3: ramp \"r\": steps must be sorted by day: day 2 after day 4"},
      {"ramp not starting at day 0",
       "[[ramp]]\nname = \"r\"\nsteps = [ { day = 1, hourly = 5 } ]\n",
       "first step must be day = 0"},
      {"reject without 5.x.x",
       "[[exclusion]]\ncategory = \"c\"\naction = \"reject\"\nstatus = \"4.7.1\"\n",
       "rules.toml:4: exclusion \"c\": a reject needs a 5.x.x status, got \"4.7.1\""},
      {"reject with junk status", "[[exclusion]]\ncategory = \"c\"\nstatus = \"5.7\"\n",
       "a reject needs a 5.x.x status"},
      {"bad exclusion action", "[[exclusion]]\ncategory = \"c\"\naction = \"drop\"\n",
       "action: want \"reject\", \"hold\" or \"discard\""},
      {"exclusion names unknown stream", "[[exclusion]]\ncategory = \"c\"\nstreams = [\"nope\"]\n",
       "unknown stream \"nope\""},
      {"bad domain", "[[exclusion]]\ncategory = \"c\"\ndomains = [\"exa mple.com\"]\n",
       "rules.toml:3: exclusion \"c\": bad domain \"exa mple.com\""},
      {"bad address", "[[exclusion]]\ncategory = \"c\"\naddresses = [\"nobody\"]\n",
       "bad address \"nobody\""},
      {"warmup unknown ramp", kStream + "warmup = { start = \"2026-06-02\", ramp = \"x\" }\n",
       "rules.toml:4: stream \"bulk\": unknown ramp \"x\""},
      {"warmup bad date", kRamp + kStream + "warmup = { start = \"2026-02-30\", ramp = \"r\" }\n",
       "warmup.start: want YYYY-MM-DD"},
      {"warmup bad count",
       kRamp + kStream + "warmup = { start = \"2026-02-03\", ramp = \"r\", count = \"weekly\" }\n",
       "warmup.count"},
      {"stream without selector", "[[stream]]\nname = \"s\"\ntransport = \"out05\"\n",
       "no selector"},
      {"bad port", "[[stream]]\nname = \"s\"\nports = [70000]\n", "bad port 70000"},
      {"bad over_cap", kStream + "over_cap = \"drop\"\n", "over_cap: want \"defer\" or \"hold\""},
      {"bad egress_ip", kStream + "egress_ip = \"203.0.113.300\"\n", "bad IP"},
      {"MX suffix in two operators",
       kOperator + "[[operator]]\nname = \"g2\"\nmx = [\"google.com\"]\n",
       "already belongs to operator \"google\""},
      {"bad sender", kStream + "senders = [\"send.example.net\"]\n", "bad sender"},
      {"include not a list", "include = \"x\"\n", "include: expected an array"},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.label));
    const auto err = error_of(c.text);
    CHECK_MESSAGE(err.find(c.want) != std::string::npos, "got: " << err);
  }
}

TEST_CASE("rules::parse: a full file reads back through the TOML writer unchanged") {
  const std::string text = kRamp + R"(
[[stream]]
name = "bulk"
ports = [25]
clients = ["172.18.0.0/16", "2001:DB8::/32"]
senders = ["@Send.Example.NET", "Ops@Example.org"]
transport = "out05"
egress_ip = "203.0.113.94"
from_domains = ["send.example.net."]
warmup = { start = 2026-06-02, count = "calendar", ramp = "r", min_daily = 10 }
daily_ceiling = 4000
over_cap = "hold"
hygiene = "refuse"
)" + kOperator + R"(
[[cap]]
stream = "bulk"
operator = "google"
daily = 0
until_day = 30
[[exclusion]]
category = "c"
action = "discard"
streams = ["bulk"]
domains = ["Example.COM.", "example.com"]
addresses = ["<A@Example.org>"]
)";
  auto p = rules::parse(text, "full.toml");
  REQUIRE_MESSAGE(p, p.error().what);
  auto c = core::RuleSet::compile(std::move(p->spec));
  REQUIRE_MESSAGE(c, c.error().what);
  const auto& spec = (*c)->spec();
  REQUIRE(spec.streams.size() == 1);
  CHECK(spec.streams[0].senders ==
        std::vector<std::string>{"@send.example.net", "ops@example.org"});
  CHECK(spec.streams[0].from_domains == std::vector<std::string>{"send.example.net"});
  CHECK(spec.streams[0].warmup->start.str() == "2026-06-02");
  CHECK(spec.streams[0].warmup->count == core::WarmupCount::Calendar);
  CHECK(spec.exclusions[0].domains == std::vector<std::string>{"example.com"});
  CHECK(spec.exclusions[0].addresses == std::vector<std::string>{"a@example.org"});
  CHECK(spec.streams[0].origin.where() == "full.toml:5");
  CHECK(spec.streams[0].origin.where("over_cap") == "full.toml:15");

  const auto again = rules::parse(rules::to_toml(spec), "export.toml");
  REQUIRE_MESSAGE(again, again.error().what);
  auto c2 = core::RuleSet::compile(again->spec);
  REQUIRE_MESSAGE(c2, c2.error().what);
  CHECK((*c2)->spec() == spec);
  CHECK(rules::to_json((*c2)->spec()) == rules::to_json(spec));
}

TEST_CASE("merge_into: exclusion categories merge, last setter of streams/action/status wins") {
  auto shipped = rules::parse(R"(
[[exclusion]]
category = "yahoo-family"
action = "reject"
streams = []
domains = ["yahoo.com", "aol.com"]
)",
                              "shipped.toml");
  auto site = rules::parse(R"(
[[stream]]
name = "bulk"
ports = [25]
[[exclusion]]
category = "yahoo-family"
streams = ["*"]
domains = ["ymail.com", "aol.com"]
[[exclusion]]
category = "yahoo-family"
action = "hold"
addresses = ["x@example.com"]
)",
                           "site.toml");
  REQUIRE(shipped);
  REQUIRE(site);
  core::RulesSpec all;
  REQUIRE(core::merge_into(all, std::move(shipped->spec)));
  REQUIRE(core::merge_into(all, std::move(site->spec)));
  REQUIRE(all.exclusions.size() == 1);
  const auto& e = all.exclusions[0];
  CHECK(e.domains == std::vector<std::string>{"yahoo.com", "aol.com", "ymail.com"});
  CHECK(e.addresses == std::vector<std::string>{"x@example.com"});
  CHECK(e.streams == std::vector<std::string>{"*"});
  CHECK(e.effective_action() == core::ExclusionAction::Hold);
  CHECK(e.effective_status() == "5.7.1");
}

TEST_CASE("merge_into: a name defined in two files is an error naming both places") {
  auto a = rules::parse(kStream, "a.toml");
  auto b = rules::parse(kStream, "b.toml");
  REQUIRE(a);
  REQUIRE(b);
  core::RulesSpec all;
  REQUIRE(core::merge_into(all, std::move(a->spec)));
  auto r = core::merge_into(all, std::move(b->spec));
  REQUIRE_FALSE(r);
  CHECK(r.error().what == "b.toml:1: stream \"bulk\": duplicate name (first defined at a.toml:1)");
}

TEST_CASE("lint: enabled-but-empty exclusions and unpinned streams are flagged, not refused") {
  auto p = rules::parse(R"([[stream]]
name = "bulk"
ports = [25]
[[exclusion]]
category = "yahoo-family"
streams = ["*"]
)",
                        "site.toml");
  REQUIRE(p);
  auto c = core::RuleSet::compile(std::move(p->spec));
  REQUIRE(c);
  const auto warnings = core::lint((*c)->spec());
  REQUIRE(warnings.size() == 2);
  CHECK(warnings[0].starts_with(
      "site.toml:6: exclusion \"yahoo-family\": enabled but lists no domains"));
  CHECK(warnings[1] ==
        "site.toml:1: stream \"bulk\": no transport: its mail is not pinned to an egress");
  auto full = rules::parse(kStream + "transport = \"out05\"\n", "ok.toml");
  REQUIRE(full);
  CHECK(core::lint(full->spec).empty());
}

TEST_CASE("rules::parse: [feedback] reads every key; absent keys take the defaults") {
  auto full = rules::parse(R"([feedback]
category = "site-bounces"
suppress_addresses = false
address_expiry_days = 365
suppress_domains = false
domain_replies = 5
domain_days = 3
domain_expiry_days = 0
backoff = false
backoff_percent = 35
backoff_min_attempts = 200
backoff_factor_percent = 25
backoff_hours = 12
pause = false
pause_hours = 6
)",
                           "fb.toml");
  REQUIRE_MESSAGE(full, full.error().what);
  REQUIRE(full->spec.feedback);
  const auto& f = *full->spec.feedback;
  CHECK(f.category == "site-bounces");
  CHECK_FALSE(f.suppress_addresses);
  CHECK(f.address_expiry_days == 365);
  CHECK_FALSE(f.suppress_domains);
  CHECK(f.domain_replies == 5);
  CHECK(f.domain_days == 3);
  CHECK(f.domain_expiry_days == 0);
  CHECK_FALSE(f.backoff);
  CHECK(f.backoff_percent == 35);
  CHECK(f.backoff_min_attempts == 200);
  CHECK(f.backoff_factor_percent == 25);
  CHECK(f.backoff_hours == 12);
  CHECK_FALSE(f.pause);
  CHECK(f.pause_hours == 6);
  CHECK(f.origin.where() == "fb.toml:1");
  CHECK(f.origin.where("pause_hours") == "fb.toml:15");
  CHECK(core::RuleSet::compile(full->spec));

  auto partial = rules::parse("[feedback]\nbackoff_percent = 30\n", "fb.toml");
  REQUIRE_MESSAGE(partial, partial.error().what);
  REQUIRE(partial->spec.feedback);
  core::FeedbackSpec want;
  want.backoff_percent = 30;
  CHECK(*partial->spec.feedback == want);
  CHECK(partial->spec.effective_feedback().category == "bounces");

  auto empty = rules::parse("[feedback]\n", "fb.toml");
  REQUIRE(empty);
  CHECK(empty->spec.feedback == core::FeedbackSpec{});  // an empty table is set, all defaults

  auto none = rules::parse(kStream, "fb.toml");
  REQUIRE(none);
  CHECK_FALSE(none->spec.feedback);
  CHECK(none->spec.effective_feedback() == core::FeedbackSpec{});
}

TEST_CASE("rules::parse: a bad [feedback] is refused naming file, line, key and value") {
  struct Case {
    const char* label;
    std::string text;
    const char* want;  // substring of the error
  };
  const std::string fb = "[feedback]\n";
  const Case cases[] = {
      {"unknown key", fb + "backoff = true\nbackof_hours = 2\n",
       "rules.toml:3: feedback: unknown key \"backof_hours\""},
      {"bool as string", fb + "pause = \"yes\"\n",
       "rules.toml:2: feedback: pause: expected a boolean, got string"},
      {"integer as float", fb + "backoff_percent = 20.5\n",
       "rules.toml:2: feedback: backoff_percent: expected an integer, got float"},
      {"category as array", fb + "category = [\"b\"]\n",
       "rules.toml:2: feedback: category: expected a string, got array"},
      {"array of tables", "[[feedback]]\nbackoff = false\n",
       "rules.toml:1: feedback: write [feedback], a single table, not [[feedback]]"},
      {"not a table", "feedback = true\n",
       "rules.toml:1: feedback: expected a [feedback] table, got boolean"},
      {"plural name", "[feedbacks]\n", "unknown top-level key \"feedbacks\" (write [feedback]"},
      {"table twice in one file", fb + fb, "rules.toml:2:"},
      {"bad category", fb + "category = \"no such\"\n",
       "rules.toml:2: feedback: bad category \"no such\": must be 1-64 of [A-Za-z0-9_.-]"},
      {"empty category", fb + "category = \"\"\n", "feedback: bad category \"\""},
      {"negative address expiry", fb + "address_expiry_days = -1\n",
       "rules.toml:2: feedback: address_expiry_days must not be negative (0 = never expires), "
       "got -1"},
      {"negative domain expiry", fb + "domain_expiry_days = -7\n",
       "rules.toml:2: feedback: domain_expiry_days must not be negative"},
      {"zero domain replies", fb + "domain_replies = 0\n",
       "rules.toml:2: feedback: domain_replies must be at least 1, got 0"},
      {"zero domain days", fb + "domain_days = 0\n", "domain_days must be at least 1, got 0"},
      {"zero backoff percent", fb + "backoff_percent = 0\n",
       "rules.toml:2: feedback: backoff_percent must be 1..100, got 0"},
      {"backoff percent over 100", fb + "backoff_percent = 101\n",
       "backoff_percent must be 1..100, got 101"},
      {"zero min attempts", fb + "backoff_min_attempts = 0\n",
       "backoff_min_attempts must be at least 1, got 0"},
      {"zero factor", fb + "backoff_factor_percent = 0\n",
       "backoff_factor_percent must be 1..100, got 0"},
      {"factor over 100", fb + "backoff_factor_percent = 150\n",
       "backoff_factor_percent must be 1..100, got 150"},
      {"zero backoff hours", fb + "backoff = true\nbackoff_hours = 0\n",
       "rules.toml:3: feedback: backoff_hours must be at least 1, got 0"},
      {"negative pause hours", fb + "pause_hours = -2\n", "pause_hours must be at least 1, got -2"},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.label));
    const auto err = error_of(c.text);
    CHECK_MESSAGE(err.find(c.want) != std::string::npos, "got: " << err);
  }
  // The boundaries themselves are accepted.
  CHECK(error_of(fb + "address_expiry_days = 0\ndomain_expiry_days = 0\ndomain_replies = 1\n"
                      "domain_days = 1\nbackoff_percent = 100\nbackoff_min_attempts = 1\n"
                      "backoff_factor_percent = 1\nbackoff_hours = 1\npause_hours = 1\n") == "");
}

TEST_CASE("merge_into: a later [feedback] replaces an earlier one whole") {
  auto shipped = rules::parse("[feedback]\nbackoff_percent = 30\npause_hours = 48\n", "a.toml");
  auto other = rules::parse(kStream, "b.toml");
  auto site = rules::parse("[feedback]\nbackoff_percent = 40\n", "c.toml");
  REQUIRE(shipped);
  REQUIRE(other);
  REQUIRE(site);
  core::RulesSpec all;
  REQUIRE(core::merge_into(all, std::move(shipped->spec)));
  REQUIRE(core::merge_into(all, std::move(other->spec)));  // no table: the earlier one stays
  REQUIRE(all.feedback);
  CHECK(all.feedback->backoff_percent == 30);
  CHECK(all.feedback->pause_hours == 48);
  REQUIRE(core::merge_into(all, std::move(site->spec)));
  REQUIRE(all.feedback);
  CHECK(all.feedback->backoff_percent == 40);
  CHECK(all.feedback->pause_hours == 24);  // not a.toml's 48: the table is replaced whole
  CHECK(all.feedback->origin.where("backoff_percent") == "c.toml:2");
}

TEST_CASE("rules::parse: [feedback] reads back through the TOML and JSON writers") {
  auto p = rules::parse(kStream + R"(transport = "out05"
[feedback]
category = "site-bounces"
address_expiry_days = 365
domain_expiry_days = 0
backoff = false
backoff_percent = 35
backoff_factor_percent = 25
pause_hours = 6
)",
                        "fb.toml");
  REQUIRE_MESSAGE(p, p.error().what);
  auto c = core::RuleSet::compile(std::move(p->spec));
  REQUIRE_MESSAGE(c, c.error().what);
  const auto& spec = (*c)->spec();
  REQUIRE(spec.feedback);
  const auto toml = rules::to_toml(spec);
  CHECK(toml.find("[feedback]\ncategory = \"site-bounces\"\nsuppress_addresses = true\n") !=
        std::string::npos);
  auto back = rules::parse(toml, "export.toml");
  REQUIRE_MESSAGE(back, back.error().what);
  CHECK(back->spec == spec);
  CHECK(rules::to_toml(back->spec) == toml);
  const auto json = rules::to_json(spec);
  CHECK(json.find(R"("feedback": {"category": "site-bounces", "suppress_addresses": true, )"
                  R"("address_expiry_days": 365, "suppress_domains": true, "domain_replies": 3, )"
                  R"("domain_days": 7, "domain_expiry_days": 0, "backoff": false, )"
                  R"("backoff_percent": 35, "backoff_min_attempts": 50, )"
                  R"("backoff_factor_percent": 25, "backoff_hours": 24, "pause": true, )"
                  R"("pause_hours": 6})") != std::string::npos);

  // Unset stays unset: nothing in the TOML, null in the JSON.
  auto plain = rules::parse(kStream, "plain.toml");
  REQUIRE(plain);
  CHECK(rules::to_toml(plain->spec).find("feedback") == std::string::npos);
  CHECK(rules::to_json(plain->spec).find("\"feedback\": null") != std::string::npos);
  auto plain_back = rules::parse(rules::to_toml(plain->spec), "export.toml");
  REQUIRE(plain_back);
  CHECK_FALSE(plain_back->spec.feedback);
}

TEST_CASE("lint: the [feedback] category applied to no stream is flagged") {
  auto p = rules::parse(R"([[stream]]
name = "bulk"
ports = [25]
transport = "out05"
[[exclusion]]
category = "bounces"
action = "hold"
[[exclusion]]
category = "mine"
streams = []
[feedback]
category = "mine"
)",
                        "site.toml");
  REQUIRE_MESSAGE(p, p.error().what);
  auto warnings = core::lint(p->spec);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].starts_with(
      "site.toml:10: exclusion \"mine\": applies to no stream, but [feedback] suppresses"));

  // Enabled and empty is how a site sets the bounce category's action: not flagged.
  auto ok = rules::parse(R"([[stream]]
name = "bulk"
ports = [25]
transport = "out05"
[[exclusion]]
category = "bounces"
action = "hold"
streams = ["*"]
)",
                         "site.toml");
  REQUIRE(ok);
  CHECK(core::lint(ok->spec).empty());
  // ... unless [feedback] suppresses nothing into it.
  auto off = rules::parse(R"([[stream]]
name = "bulk"
ports = [25]
transport = "out05"
[[exclusion]]
category = "bounces"
streams = ["*"]
[feedback]
suppress_addresses = false
suppress_domains = false
)",
                          "site.toml");
  REQUIRE(off);
  const auto off_warnings = core::lint(off->spec);
  REQUIRE(off_warnings.size() == 1);
  CHECK(off_warnings[0].find("enabled but lists no domains") != std::string::npos);
}
