// [[classify]] rules end to end in pure code: reader and validation errors, the writers' round
// trip, the compiled Classifier (first match, operator and dsn scoping, fallback by class, set
// and linear paths agree), and the shipped packaging/rules/classify.toml: no dead rules, and
// every reply class of FIELD-NOTES.md lands where the notes say.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/classify.hpp"
#include "core/ruleset.hpp"
#include "rules/reader.hpp"
#include "rules/writer.hpp"

using namespace rampart;

namespace {

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

std::string rule(const std::string& id, const std::string& reply, const std::string& extra,
                 const std::string& tests) {
  return "[[classify]]\nid = \"" + id + "\"\nreply = '" + reply + "'\n" + extra +
         "outcome = \"reject_recipient\"\ncategory = \"bad-mailbox\"\ntests = [" + tests + "]\n";
}

const std::string kGoogle = "[[operator]]\nname = \"google\"\nmx = [\".google.com\"]\n";

core::Classifier compile(const std::string& text) {
  auto p = rules::parse(text, "t.toml");
  REQUIRE_MESSAGE(p, p.error().what);
  auto c = core::Classifier::compile(p->spec.classify);
  REQUIRE_MESSAGE(c, c.error().what);
  return std::move(*c);
}

}  // namespace

TEST_CASE("classify rules: bad input is refused naming file:line and the rule") {
  struct Case {
    const char* label;
    std::string text;
    const char* want;
  };
  const Case cases[] = {
      {"bad regex", rule("r", "(user", "", "\"550 x\""),
       "rules.toml:3: classify \"r\": bad pattern \"(user\": missing )"},
      {"unknown outcome",
       "[[classify]]\nid = \"r\"\nreply = 'x'\noutcome = \"bounced\"\ncategory = \"other\"\n"
       "tests = [\"550 x\"]\n",
       "rules.toml:4: classify \"r\": outcome: want accepted"},
      {"unknown operator", rule("r", "x", "operator = \"nope\"\n", "\"550 x\""),
       "rules.toml:4: classify \"r\": unknown operator \"nope\""},
      {"bad dsn glob", rule("r", "x", "dsn = \"5.x.1\"\n", "\"550 x\""),
       "rules.toml:4: classify \"r\": bad dsn pattern \"5.x.1\""},
      {"dead test line: hits nothing", rule("r", "user unknown", "", "\"550 5.1.1 no such user\""),
       "rules.toml:6: classify \"r\": test \"550 5.1.1 no such user\" hits no rule (no dead "
       "rules)"},
      {"dead test line: an earlier rule wins",
       rule("a", "unknown", "", "\"550 unknown\"") +
           rule("b", "user unknown", "", "\"550 user unknown\""),
       "rules.toml:12: classify \"b\": test \"550 user unknown\" hits rule \"a\" (rules.toml:1) "
       "first"},
      {"dsn scoping applies to tests", rule("r", "x", "dsn = \"5.1.1\"\n", "\"550 5.1.2 x\""),
       "hits no rule"},
      {"no tests", rule("r", "x", "", ""), "rules.toml:6: classify \"r\": tests is empty"},
      {"missing reply",
       "[[classify]]\nid = \"r\"\noutcome = \"accepted\"\ncategory = \"other\"\ntests = [\"250 "
       "ok\"]\n",
       "rules.toml:2: classify \"r\": missing key \"reply\""},
      {"id not kebab-case", rule("Bad_Id", "x", "", "\"550 x\""), "id must be kebab-case"},
      {"default is reserved", rule("default", "x", "", "\"550 x\""), "id must be kebab-case"},
      {"bad category",
       "[[classify]]\nid = \"r\"\nreply = 'x'\noutcome = \"accepted\"\ncategory = \"Bad Mailbox\"\n"
       "tests = [\"250 x\"]\n",
       "rules.toml:5: classify \"r\": bad category \"Bad Mailbox\""},
      {"bad suppress", rule("r", "x", "suppress = \"user\"\n", "\"550 x\""),
       "suppress: want \"address\" or \"domain\""},
      {"bad dsn in a test line", rule("r", "x", "", "\"dsn=9.9 x\""), "bad dsn \"9.9\""},
      {"duplicate id in one file",
       rule("r", "x", "", "\"550 x\"") + rule("r", "y", "", "\"550 y\""),
       "rules.toml:7: classify \"r\": duplicate name (first defined at rules.toml:1)"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto err = error_of(c.text);
    CHECK_MESSAGE(err.find(c.want) != std::string::npos, err);
  }
  CHECK(error_of(kGoogle + rule("r", "x", "operator = \"google\"\ndsn = \"5.*\"\n", "\"550 x\"")) ==
        "");
}

TEST_CASE("classify rules: rules read back from the store skip the patterns, not the structure") {
  // ClassifyCheck::Structure (store::load_ruleset, daemon reloads) neither compiles the patterns
  // nor runs the test lines, which were checked when the rules were applied; every other check
  // stays.
  const auto depth_errors = [](const std::string& text) {
    auto p = rules::parse(text, "rules.toml");
    REQUIRE_MESSAGE(p, p.error().what);
    auto full = p->spec;
    auto structure = p->spec;
    const auto f = core::validate(full, core::ClassifyCheck::Full);
    const auto s = core::validate(structure, core::ClassifyCheck::Structure);
    return std::pair{f ? std::string() : f.error().what, s ? std::string() : s.error().what};
  };
  const auto dead = depth_errors(rule("r", "user unknown", "", "\"550 5.1.1 no such user\""));
  CHECK(dead.first.find("hits no rule") != std::string::npos);
  CHECK(dead.second == "");
  const auto bad_regex = depth_errors(rule("r", "(user", "", "\"550 x\""));
  CHECK(bad_regex.first.find("bad pattern") != std::string::npos);
  CHECK(bad_regex.second == "");
  const auto unknown_op = depth_errors(rule("r", "x", "operator = \"nope\"\n", "\"550 x\""));
  CHECK(unknown_op.first.find("unknown operator \"nope\"") != std::string::npos);
  CHECK(unknown_op.second == unknown_op.first);
  const auto bad_dsn = depth_errors(rule("r", "x", "dsn = \"5.x.1\"\n", "\"550 x\""));
  CHECK(bad_dsn.second.find("bad dsn pattern") != std::string::npos);
  // The program that classifies still refuses the bad pattern when it compiles the table.
  auto p = rules::parse(rule("r", "(user", "", "\"550 x\""), "rules.toml");
  REQUIRE(p);
  auto rs = core::RuleSet::compile(std::move(p->spec), 1, core::ClassifyCheck::Structure);
  REQUIRE(rs);
  const auto c = core::Classifier::compile((*rs)->spec().classify);
  REQUIRE_FALSE(c);
  CHECK(c.error().what.find("rules.toml:3: classify \"r\": bad pattern \"(user\"") !=
        std::string::npos);
}

TEST_CASE("merge_into: a classify id defined in two files is an error naming both places") {
  auto a = rules::parse(rule("dup", "x", "", "\"550 x\""), "a.toml");
  auto b = rules::parse("\n" + rule("dup", "y", "", "\"550 y\""), "b.toml");
  REQUIRE(a);
  REQUIRE(b);
  core::RulesSpec merged;
  REQUIRE(core::merge_into(merged, std::move(a->spec)));
  auto r = core::merge_into(merged, std::move(b->spec));
  REQUIRE_FALSE(r);
  CHECK(r.error().what == "b.toml:2: classify \"dup\": duplicate name (first defined at a.toml:1)");
}

TEST_CASE("classify rules: TOML -> spec -> TOML -> same spec; JSON holds the table") {
  const std::string text = kGoogle + R"([[classify]]
id = "google-busy"
reply = '4\.7\.28\b|"quoted" \\ back'
dsn = "4.*"
operator = "google"
outcome = "throttled"
category = "policy-related"
suppress = "domain"
backoff = "pause"
tests = ["421-4.7.28 slow down 421 4.7.28 gsmtp", "dsn=4.7.28 \"quoted\" \\ back"]

[[classify]]
id = "plain"
reply = 'x'
outcome = "reject_other"
category = "other"
tests = ["550 x"]
)";
  auto p = rules::parse(text, "t.toml");
  REQUIRE_MESSAGE(p, p.error().what);
  auto compiled = core::RuleSet::compile(p->spec);
  REQUIRE_MESSAGE(compiled, compiled.error().what);
  const auto& spec = (*compiled)->spec();
  REQUIRE(spec.classify.size() == 2);
  CHECK(spec.classify[0].reply == R"(4\.7\.28\b|"quoted" \\ back)");
  CHECK(spec.classify[0].suppress == core::SuppressScope::Domain);
  CHECK(spec.classify[0].backoff == core::BackoffHint::Pause);
  CHECK(spec.classify[1].dsn.empty());
  const auto toml = rules::to_toml(spec);
  auto back = rules::parse(toml, "export.toml");
  REQUIRE_MESSAGE(back, back.error().what);
  CHECK(back->spec == spec);
  CHECK(rules::to_toml(back->spec) == toml);
  const auto json = rules::to_json(spec);
  CHECK(json.find(R"("classify": [)") != std::string::npos);
  CHECK(
      json.find(
          R"("id": "google-busy", "reply": "4\\.7\\.28\\b|\"quoted\" \\\\ back", "dsn": "4.*", "operator": "google", "outcome": "throttled", "category": "policy-related", "suppress": "domain", "backoff": "pause")") !=
      std::string::npos);
  CHECK(json.find(R"("id": "plain", "reply": "x", "dsn": null, "operator": null)") !=
        std::string::npos);
}

TEST_CASE("Classifier: replies seen before are answered as the first time") {
  // The set's answers are remembered per reply (per thread, per table): repeats in any order,
  // under other dsns and operators, past the memo's 64 places, and from two tables on one thread
  // must all classify as the linear path does.
  const auto table = [](const std::string& second_pattern) {
    auto p = rules::parse(
        kGoogle + rule("mailbox", "no such user|user unknown", "", "\"550 user unknown\"") +
            rule("busy", second_pattern, "dsn = \"4.*\"\n", "\"421 try again later\"") +
            rule("google-only", "rate", "operator = \"google\"\n", "\"421 4.7.28 unusual rate\""),
        "rules.toml");
    REQUIRE_MESSAGE(p, p.error().what);
    auto c = core::Classifier::compile(p->spec.classify);
    REQUIRE_MESSAGE(c, c.error().what);
    return std::move(*c);
  };
  const auto a = table("try again|busy");
  const auto b = table("never matches this");
  std::vector<std::string> replies = {"550 5.1.1 no such user", "421 4.7.28 unusual rate",
                                      "421 try again later", "451 busy, user unknown", "250 ok"};
  for (int i = 0; i < 150; ++i) replies.push_back("450 4.2.1 mailbox busy #" + std::to_string(i));
  const char* dsns[] = {"", "5.1.1", "4.7.28", "2.0.0"};
  const char* ops[] = {"", "google"};
  // One table at a time (repeats hit the memo), then both in turn (each switch starts it over).
  const core::Classifier* orders[][2] = {{&a, nullptr}, {&b, nullptr}, {&a, &b}};
  for (const auto& tables : orders) {
    for (int round = 0; round < 3; ++round) {
      for (std::size_t k = 0; k < replies.size(); ++k) {
        const auto& r = replies[(k * 7 + static_cast<std::size_t>(round)) % replies.size()];
        for (const char* dsn : dsns) {
          for (const char* op : ops) {
            for (const auto* t : tables) {
              if (t == nullptr) continue;
              CAPTURE(r);
              CAPTURE(dsn);
              CAPTURE(op);
              CHECK(t->classify(r, dsn, op).rule == t->classify_linear(r, dsn, op).rule);
            }
          }
        }
      }
    }
  }
  CHECK(a.classify("421 try again later", "4.0.0").rule->id == "busy");
  CHECK(b.classify("421 try again later", "4.0.0").rule->id == "default");
}

TEST_CASE("Classifier: a rule's dsn pattern selects as dsn_matches says") {
  // classify() compares the dsn with patterns cut once at compile time; dsn_matches() (and
  // classify_linear()) read the strings: both must agree on every pattern and dsn here.
  const char* patterns[] = {"",
                            "*",
                            "5",
                            "4",
                            "5.*",
                            "4.*",
                            "5.1.1",
                            "5.1.*",
                            "5.*.1",
                            "*.7.1",
                            "*.*",
                            "*.*.*",
                            "5.1",
                            "2.*",
                            "5.1.10",
                            "4.7.500",
                            "5.1.01",
                            "5.1.12345678",
                            "5.1.12345679",
                            "5.1.1234567"};
  const char* dsns[] = {"5.1.1", "5.1.10", "5.7.1",   "4.7.500",      "4.4.1",        "2.0.0",
                        "5",     "5.1",    "5.1.1.1", "5..1",         "5.1.",         ".1.1",
                        "x.y.z", "44.1.1", "5.1.01",  "5.1.12345678", "5.1.12345679", "5.1.1234567",
                        "5.1.*"};
  for (const char* pat : patterns) {
    std::vector<core::ClassifySpec> rules(1);
    rules[0].id = "only";
    rules[0].reply = ".*";
    rules[0].dsn = pat;
    rules[0].outcome = core::Outcome::RejectRecipient;
    rules[0].category = "bad-mailbox";
    auto cl = core::Classifier::compile(rules);
    REQUIRE(cl);
    for (const char* dsn : dsns) {
      CAPTURE(pat);
      CAPTURE(dsn);
      const bool want = core::dsn_matches(pat, dsn);
      CHECK((cl->classify("550 x", dsn).rule->id == "only") == want);
      CHECK(cl->classify("550 x", dsn).rule == cl->classify_linear("550 x", dsn).rule);
    }
  }
}

TEST_CASE("parse_reply_code and dsn_matches") {
  struct Code {
    const char* reply;
    int want_code;
    const char* want_status;
  };
  const Code codes[] = {
      {"550 5.1.1 user unknown", 550, "5.1.1"},
      {"550-5.7.1 [203.0.113.94] low reputation", 550, "5.7.1"},
      {"451 4.7.500 Server busy", 451, "4.7.500"},
      {"421 4.7.0 [TSS04] deferred", 421, "4.7.0"},
      {"550 Requested action not taken", 550, ""},
      {"550 4.1.1 class mismatch", 550, ""},
      {"550 5.1.1234 too long", 550, ""},
      {"250", 250, ""},
      {"connect to mx[192.0.2.1]:25: Connection timed out", 0, ""},
      {"5500 x", 0, ""},
      {"", 0, ""},
  };
  for (const auto& c : codes) {
    CAPTURE(c.reply);
    const auto rc = core::parse_reply_code(c.reply);
    CHECK(rc.code == c.want_code);
    CHECK(rc.status == c.want_status);
  }
  struct Glob {
    const char* pattern;
    const char* dsn;
    bool want;
  };
  const Glob globs[] = {
      {"", "", true},
      {"", "5.1.1", true},
      {"5.1.1", "5.1.1", true},
      {"5.1.1", "5.1.10", false},
      {"5.1.1", "5.1", false},
      {"4.*", "4.7.500", true},
      {"4.*", "5.7.1", false},
      {"5.7.*", "5.7.1", true},
      {"5.7.*", "5.1.1", false},
      {"5.*.1", "5.7.1", true},
      {"5.*.1", "5.7.10", false},
      {"*", "2.0.0", true},
      {"4.*", "", false},
  };
  for (const auto& g : globs) {
    CAPTURE(g.pattern);
    CAPTURE(g.dsn);
    CHECK(core::dsn_matches(g.pattern, g.dsn) == g.want);
  }
  for (const char* ok : {"", "5", "5.1.1", "4.*", "*.7.1", "5.1.10", "*"}) {
    CHECK_MESSAGE(core::valid_dsn_pattern(ok), ok);
  }
  for (const char* bad : {"5.x", "6.1.1", "5..1", "5.1.1.1", "5.1.1000", ".", "5."}) {
    CHECK_MESSAGE(!core::valid_dsn_pattern(bad), bad);
  }
}

TEST_CASE("Classifier::classify: first match wins; operator and dsn scope; fallback by class") {
  const auto cl = compile(
      rule("google-only", "busy", "operator = \"google\"\n", "\"451 busy\"") +
      rule("busy", "busy", "", "\"451 busy\"") +
      rule("five-one-one", ".", "dsn = \"5.1.1\"\n", "\"550 5.1.1 x\"") +
      rule("unknown-text", "unknown", "", "\"550 unknown\"") +
      rule("four-anything", "unknown|timed out", "dsn = \"4.*\"\n", "\"dsn=4.4.1 timed out\""));
  struct Case {
    const char* label;
    const char* reply;
    const char* dsn;
    const char* op;
    const char* want_id;
    core::Outcome want_outcome;
  };
  using core::Outcome;
  const Case cases[] = {
      {"operator-scoped rule applies to its operator", "451 4.7.0 Busy", "", "google",
       "google-only", Outcome::RejectRecipient},
      {"... and not to others", "451 4.7.0 Busy", "", "yahoo", "busy", Outcome::RejectRecipient},
      {"... nor to an unknown operator", "451 busy", "", "", "busy", Outcome::RejectRecipient},
      {"dsn from the reply", "550 5.1.1 user unknown", "", "", "five-one-one",
       Outcome::RejectRecipient},
      {"the caller's dsn wins over the reply's", "550 5.1.1 user unknown", "5.1.2", "",
       "unknown-text", Outcome::RejectRecipient},
      {"first match in order, not the most specific", "451 4.4.1 unknown host", "", "",
       "unknown-text", Outcome::RejectRecipient},
      {"dsn-only (no reply code)", "connect to mx[192.0.2.1]:25: Connection timed out", "4.4.1", "",
       "four-anything", Outcome::RejectRecipient},
      {"a dsn glob needs a dsn", "connect to mx[192.0.2.1]:25: Connection timed out", "", "",
       "default", Outcome::DeferredOther},
      {"fallback 2xx", "250 2.0.0 Ok: queued as 4Vd5Xy0AbCz", "", "", "default", Outcome::Accepted},
      {"fallback 4xx", "452 4.3.1 Insufficient system storage", "", "", "default",
       Outcome::DeferredOther},
      {"fallback 5xx", "554 5.6.0 Message rejected", "", "", "default", Outcome::RejectOther},
      {"fallback from dsn", "lost connection", "5.4.6", "", "default", Outcome::RejectOther},
      {"fallback with nothing: when in doubt 4xx", "", "", "", "default", Outcome::DeferredOther},
      {"case-insensitive", "451 BUSY", "", "", "busy", Outcome::RejectRecipient},
      {"non-UTF-8 bytes are harmless", "451 \xff\xfe busy \xc3", "", "", "busy",
       Outcome::RejectRecipient},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = cl.classify(c.reply, c.dsn, c.op);
    REQUIRE(got.rule != nullptr);
    CHECK(got.rule->id == c.want_id);
    CHECK(got.outcome == c.want_outcome);
    const auto lin = cl.classify_linear(c.reply, c.dsn, c.op);
    CHECK(lin.rule == got.rule);
  }
  CHECK(cl.classify("250 ok").category == "other");
  // Match-anything patterns are decided without a regex; both paths still agree on edge input.
  const auto any = compile(rule("dot", ".", "", "\"550 x\"") + rule("star", ".*", "", "\"\\n\""));
  for (const char* r : {"", "\n", "\n\n", "x", "550 5.1.1"}) {
    CAPTURE(r);
    CHECK(any.classify(r, "5.1.1").rule == any.classify_linear(r, "5.1.1").rule);
  }
  CHECK(any.classify("\n", "5.1.1").rule->id == "star");
  auto empty = core::Classifier::compile({});
  REQUIRE(empty);
  CHECK(empty->classify("550 5.1.1 x").outcome == core::Outcome::RejectOther);
}

TEST_CASE("shipped classify.toml: every rule's test lines hit it first, and FIELD-NOTES classes") {
  const std::string dir = std::string(RAMPART_SOURCE_DIR) + "/packaging/rules/";
  // operators.toml too: operator-scoped rules name shipped operators.
  auto loaded = rules::load_files({dir + "classify.toml", dir + "operators.toml"});
  REQUIRE_MESSAGE(loaded, loaded.error().what);
  auto compiled = core::RuleSet::compile(*loaded);
  REQUIRE_MESSAGE(compiled, compiled.error().what);
  CHECK(core::lint((*compiled)->spec()).empty());
  auto cl = core::Classifier::compile(loaded->classify);
  REQUIRE_MESSAGE(cl, cl.error().what);
  REQUIRE(cl->rules().size() >= 20);
  for (const auto& r : cl->rules()) {
    CAPTURE(r.id);
    REQUIRE_FALSE(r.tests.empty());
    for (const auto& line : r.tests) {
      CAPTURE(line);
      const auto [dsn, reply] = core::split_test_line(line);
      CHECK(cl->classify(reply, dsn, r.op).rule == &r);
      CHECK(cl->classify_linear(reply, dsn, r.op).rule == &r);
    }
  }

  // FIELD-NOTES.md "Response classes seen in the logs" (lines written here, not copied).
  using core::Outcome;
  struct Case {
    const char* reply;
    const char* dsn;
    const char* op;
    Outcome want;
    const char* want_category;
  };
  const Case notes[] = {
      {"250 2.0.0 OK  1718000000 a1b2c3 - gsmtp", "", "google", Outcome::Accepted, "other"},
      {"451 4.7.500 Server busy. Please try again later from [203.0.113.7]. (S77719)", "",
       "microsoft-365", Outcome::Throttled, "policy-related"},
      {"421 4.7.0 [TSS04] Messages from 198.51.100.4 temporarily deferred", "", "yahoo",
       Outcome::Throttled, "policy-related"},
      {"421-4.7.28 [198.51.100.4] Our system has detected an unusual rate of unsolicited mail "
       "421 4.7.28 gsmtp",
       "", "google", Outcome::Throttled, "policy-related"},
      {"421-4.7.0 Try again later, closing connection. (EHLO) 421 4.7.0 gsmtp", "", "google",
       Outcome::Throttled, "policy-related"},
      {"550-5.7.1 [198.51.100.4] Our system has detected that this message is likely "
       "unsolicited mail. 550 5.7.1 gsmtp",
       "", "google", Outcome::RejectReputation, "spam-related"},
      {"550-5.7.1 This message is blocked due to the very low reputation of the sending domain", "",
       "google", Outcome::RejectReputation, "spam-related"},
      {"550 5.7.1 Delivery not authorized, message refused", "", "", Outcome::RejectReputation,
       "policy-related"},
      {"550 5.7.1 Unfortunately, messages from [198.51.100.4] weren't sent. Please contact your "
       "Internet service provider since part of their network is on our block list (S3150).",
       "", "outlook-consumer", Outcome::RejectReputation, "spam-related"},
      {"550 5.1.1 <bo@example.com>: Recipient address rejected: User unknown", "", "",
       Outcome::RejectRecipient, "bad-mailbox"},
      {"550 5.4.1 Recipient address rejected: Access denied. AS(201806281)", "", "microsoft-365",
       Outcome::RejectRecipient, "bad-mailbox"},
      {"550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", "",
       "microsoft-365", Outcome::RejectRecipient, "bad-mailbox"},
      {"550 user unknown", "", "", Outcome::RejectRecipient, "bad-mailbox"},
      {"451 4.4.4 Mail received as unauthenticated, incoming to a recipient domain configured "
       "in a hosted tenant which has no mail-enabled subscriptions.",
       "", "microsoft-365", Outcome::RejectRecipient, "bad-domain"},
      {"550 Message classified as SPAM", "", "", Outcome::RejectContent, "content-related"},
      {"451 Your IP is blacklisted - RLR621 - ip=<198.51.100.4>", "", "", Outcome::RejectReputation,
       "spam-related"},
      {"552 5.2.2 Mailbox full", "", "", Outcome::RejectRecipient, "quota-issues"},
      {"connect to mx.example.com[192.0.2.9]:25: Connection timed out", "4.4.1", "",
       Outcome::DeferredOther, "no-answer-from-host"},
      {"connect to mx.example.com[192.0.2.9]:25: Connection refused", "4.4.1", "",
       Outcome::DeferredOther, "bad-connection"},
      {"expired, returned to sender", "", "", Outcome::RejectOther, "message-expired"},
  };
  for (const auto& c : notes) {
    CAPTURE(c.reply);
    const auto got = cl->classify(c.reply, c.dsn, c.op);
    CHECK(got.outcome == c.want);
    CHECK(got.category == c.want_category);
    CHECK(got.rule->id != "default");
  }
  // Suppression hints where the loop closes (issue 5 point 6).
  CHECK(cl->classify("550 5.1.1 user unknown").rule->suppress == core::SuppressScope::Address);
  CHECK(cl->classify("451 4.4.4 ... no mail-enabled subscriptions").rule->suppress ==
        core::SuppressScope::Domain);
  CHECK(cl->classify("421 4.7.0 [TSS04] deferred").rule->backoff == core::BackoffHint::Pause);
}
