// core::RuleSet and its matchers: exclusions, stream resolution, MX-to-operator, CIDRs, domain
// tables, text helpers. Pure.
#include <doctest/doctest.h>

#include "core/cidr_set.hpp"
#include "core/domain_table.hpp"
#include "core/ruleset.hpp"
#include "core/text.hpp"
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
[[stream]]
name = "bulk-app1"
ports = [25]
clients = ["172.18.0.0/16"]
senders = ["@app1.example.net"]
[[stream]]
name = "healthcare"
ports = [2526]
[[stream]]
name = "v6"
clients = ["2001:db8::/32"]
[[stream]]
name = "submission"
ports = [587]
sasl_users = ["app2"]
[[stream]]
name = "by-address"
senders = ["alerts@example.org"]

[[operator]]
name = "microsoft-365"
mx = [".mail.protection.outlook.com"]
[[operator]]
name = "outlook-consumer"
mx = [".olc.protection.outlook.com"]
[[operator]]
name = "google"
mx = [".google.com", "smtp.example.net"]

[[exclusion]]
category = "yahoo-family"
streams = ["*"]
domains = ["yahoo.com", "aol.com"]
[[exclusion]]
category = "consumer-webmail"
action = "hold"
streams = ["bulk"]
domains = ["gmail.com", "yahoo.com"]
addresses = ["vip@yahoo.com"]
[[exclusion]]
category = "dead-isp"
streams = []
domains = ["dead.example"]
[[exclusion]]
category = "unset"
domains = ["unset.example"]
)";

}  // namespace

TEST_CASE("find_exclusion: streams, subdomains, case, trailing dots, addresses before domains") {
  const auto rs = compile_text(kRules);
  const auto* bulk = rs->stream("bulk");
  const auto* hc = rs->stream("healthcare");
  REQUIRE(bulk != nullptr);
  REQUIRE(hc != nullptr);
  struct Case {
    const char* label;
    const StreamSpec* stream;
    std::string rcpt;
    const char* want;  // category, or "" for no exclusion
    bool want_address;
  };
  const Case cases[] = {
      {"domain hit", bulk, "a@aol.com", "yahoo-family", false},
      {"subdomain hit", bulk, "a@mail.eu.aol.com", "yahoo-family", false},
      {"case and trailing dot", bulk, "<A@Mail.AOL.COM.>", "yahoo-family", false},
      {"not a suffix at a label boundary", bulk, "a@notaol.com", "", false},
      {"parent of listed domain is not covered", bulk, "a@com", "", false},
      {"first category listing a domain owns it", bulk, "a@yahoo.com", "yahoo-family", false},
      {"exact address wins over domain", bulk, "VIP@yahoo.com", "consumer-webmail", true},
      {"stream-specific category", bulk, "a@gmail.com", "consumer-webmail", false},
      {"other stream not covered", hc, "a@gmail.com", "", false},
      {"star covers every stream", hc, "a@yahoo.com", "yahoo-family", false},
      {"star covers unpinned mail", nullptr, "a@aol.com", "yahoo-family", false},
      {"stream-specific skips unpinned mail", nullptr, "a@gmail.com", "", false},
      {"streams = [] applies nowhere", bulk, "a@dead.example", "", false},
      {"unset streams applies nowhere", bulk, "a@unset.example", "", false},
      {"no @", bulk, "postmaster", "", false},
      {"overlong name", bulk, "a@" + std::string(300, 'x') + ".aol.com", "", false},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.label));
    const auto hit = rs->find_exclusion(c.stream, c.rcpt);
    if (std::string(c.want).empty()) {
      CHECK_FALSE(hit.has_value());
    } else {
      REQUIRE(hit.has_value());
      CHECK(hit->rule->category == c.want);
      CHECK(hit->by_address == c.want_address);
    }
  }
  const auto hit = rs->find_exclusion(bulk, "x@gmail.com");
  REQUIRE(hit);
  CHECK(hit->rule->effective_action() == ExclusionAction::Hold);
}

TEST_CASE("resolve_stream: all given selectors must match; most selectors wins; then file order") {
  const auto rs = compile_text(kRules);
  struct Case {
    const char* label;
    StreamQuery q;
    const char* want;
  };
  const Case cases[] = {
      {"port + client", {25, "172.18.4.5", "x@example.com", ""}, "bulk"},
      {"more specific sender stream wins",
       {25, "172.18.4.5", "bounce@app1.example.net", ""},
       "bulk-app1"},
      {"sender subdomain", {25, "172.18.4.5", "<b@x.APP1.example.net>", ""}, "bulk-app1"},
      {"client outside CIDR", {25, "192.0.2.1", "x@example.com", ""}, ""},
      {"port only stream", {2526, "192.0.2.1", "", ""}, "healthcare"},
      {"v6 client", {9999, "IPv6:2001:db8::1", "", ""}, "v6"},
      {"v4-mapped v6 client", {25, "::ffff:172.18.0.9", "a@example.com", ""}, "bulk"},
      {"sasl user", {587, "198.51.100.1", "", "app2"}, "submission"},
      {"wrong sasl user", {587, "198.51.100.1", "", "app3"}, ""},
      {"exact sender address", {1, "", "Alerts@Example.org", ""}, "by-address"},
      {"null sender matches no sender rule", {1, "", "", ""}, ""},
      {"unknown port", {std::nullopt, "172.18.0.1", "", ""}, ""},
      {"unparseable client", {25, "unknown", "", ""}, ""},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.label));
    const auto* s = rs->resolve_stream(c.q);
    if (std::string(c.want).empty()) {
      CHECK(s == nullptr);
    } else {
      REQUIRE(s != nullptr);
      CHECK(s->name == c.want);
    }
  }
}

TEST_CASE("operator_for_mx: every most-preferred MX must match one operator") {
  const auto rs = compile_text(kRules);
  struct Case {
    const char* label;
    std::vector<MxRecord> mx;
    const char* want;
  };
  const Case cases[] = {
      {"single M365 host", {{0, "contoso-com.mail.protection.outlook.com."}}, "microsoft-365"},
      {"most specific suffix wins", {{10, "x.olc.protection.outlook.com"}}, "outlook-consumer"},
      {"case and dots", {{10, "ASPMX.L.GOOGLE.COM."}, {20, "alt1.aspmx.l.google.com"}}, "google"},
      {"less preferred hosts do not matter",
       {{10, "aspmx.l.google.com"}, {50, "mx.other.example"}},
       "google"},
      {"mixed most-preferred hosts", {{10, "aspmx.l.google.com"}, {10, "mx.other.example"}}, ""},
      {"two operators at the same preference",
       {{10, "aspmx.l.google.com"}, {10, "a.mail.protection.outlook.com"}},
       ""},
      {"leading-dot suffix does not match the bare name", {{10, "google.com"}}, ""},
      {"exact host entry matches itself", {{10, "smtp.example.net"}}, "google"},
      {"exact host entry covers hosts under it", {{10, "eu.smtp.example.net"}}, "google"},
      {"unknown", {{10, "mx.example.org"}}, ""},
      {"no records", {}, ""},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.label));
    const auto* op = rs->operator_for_mx(c.mx);
    if (std::string(c.want).empty()) {
      CHECK(op == nullptr);
    } else {
      REQUIRE(op != nullptr);
      CHECK(op->name == c.want);
    }
  }
}

TEST_CASE("DomainTable: insert keeps the first value; lookups fold case and one trailing dot") {
  DomainTable t;
  CHECK(t.insert("example.com", 1));
  CHECK_FALSE(t.insert("example.com", 2));
  CHECK(t.insert("sub.example.com", 3, DomainTable::Subdomains));
  for (int i = 0; i < 5000; ++i)
    REQUIRE(t.insert("d" + std::to_string(i) + ".test", static_cast<std::uint32_t>(i)));
  CHECK(t.size() == 5002);
  CHECK(t.find("EXAMPLE.com.") == 1u);
  CHECK(t.find("www.example.com") == std::nullopt);
  CHECK(t.find_covering("www.example.com") == 1u);
  CHECK(t.find_covering("sub.example.com") ==
        1u);  // itself is Subdomains-only: falls to the parent
  CHECK(t.find_covering("a.sub.example.com") == 3u);
  CHECK(t.find_covering("D4999.TEST") == 4999u);
  CHECK(t.find_covering("x.d17.test") == 17u);
  CHECK(t.find_covering("d5000.test") == std::nullopt);
  CHECK(t.find_covering("") == std::nullopt);
  CHECK(t.find_covering(".") == std::nullopt);
  CHECK(t.find_covering(std::string(252, '.') + "x") == std::nullopt);  // every byte a label start
  CHECK(t.find_covering(std::string(253, '.')) == std::nullopt);
}

TEST_CASE("Cidr: parse, host bits, containment, v4-mapped addresses") {
  std::string why;
  CHECK(Cidr::parse("192.0.2.0/24"));
  CHECK(Cidr::parse("2001:db8::/32"));
  CHECK(Cidr::parse("198.51.100.7")->prefix == 32);
  CHECK_FALSE(Cidr::parse("192.0.2.1/24", &why));
  CHECK(why == "host bits set after the prefix (did you mean 192.0.2.0/24?)");
  CHECK_FALSE(Cidr::parse("192.0.2.0/", &why));
  CHECK_FALSE(Cidr::parse("192.0.2.0/x", &why));
  CHECK_FALSE(Cidr::parse("example.com", &why));
  const auto net = *Cidr::parse("172.18.0.0/15");
  CHECK(net.contains(*IpAddress::parse("172.19.255.1")));
  CHECK_FALSE(net.contains(*IpAddress::parse("172.20.0.1")));
  CHECK(net.contains(*IpAddress::parse("::ffff:172.18.1.1")));
  CHECK_FALSE(net.contains(*IpAddress::parse("2001:db8::1")));
  CHECK(Cidr::parse("0.0.0.0/0")->contains(*IpAddress::parse("203.0.113.9")));
}

TEST_CASE("text: normalisation and enhanced status codes") {
  CHECK(normalize_domain("Example.COM.") == "example.com");
  CHECK_FALSE(normalize_domain("a..b"));
  CHECK_FALSE(normalize_domain(""));
  CHECK_FALSE(normalize_domain(std::string(64, 'a') + ".com"));
  CHECK(normalize_address("<Some.One@Example.COM>") == "some.one@example.com");
  CHECK_FALSE(normalize_address("@example.com"));
  CHECK_FALSE(normalize_address("a b@example.com"));
  CHECK(address_domain("<x@y.example>") == "y.example");
  CHECK(is_enhanced_status("5.7.1", '5'));
  CHECK(is_enhanced_status("5.1.10", '5'));
  CHECK_FALSE(is_enhanced_status("4.7.1", '5'));
  CHECK_FALSE(is_enhanced_status("5.7", '5'));
  CHECK_FALSE(is_enhanced_status("5.7.1 ", '5'));
  CHECK_FALSE(is_enhanced_status("5.1234.1", '5'));
  CHECK(Date::parse("2024-02-29")->str() == "2024-02-29");
  CHECK_FALSE(Date::parse("2023-02-29"));
  CHECK(Date::parse("1970-01-02")->days == 1);
}
