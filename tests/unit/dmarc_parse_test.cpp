// The DMARC aggregate report reader (sidecar/dmarc/parse.hpp): both schemas with and without
// namespaces, every field, case folding, the DMARC pass rule, every refusal and every repair,
// the limits, entities and character references. Reports are written here with documentation
// addresses and example domains. Pure.
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "dmarc/parse.hpp"

using namespace rampart;
using namespace rampart::dmarc;
using rampart::core::dmarc::AuthResult;
using rampart::core::dmarc::Reason;
using rampart::core::dmarc::Record;
using rampart::core::dmarc::Report;

namespace {

constexpr std::string_view kHead = R"(<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata>
    <org_name>example.org</org_name>
    <email>dmarc@example.org</email>
    <report_id>r-1</report_id>
    <date_range><begin>1700000000</begin><end>1700086399</end></date_range>
  </report_metadata>
  <policy_published><domain>example.com</domain><p>none</p></policy_published>
)";

constexpr std::string_view kRecord = R"(  <record>
    <row>
      <source_ip>192.0.2.1</source_ip>
      <count>3</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated>
    </row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results>
      <dkim><domain>example.com</domain><selector>s1</selector><result>pass</result></dkim>
    </auth_results>
  </record>
)";

std::string doc(std::string_view records = kRecord) {
  return std::string(kHead) + std::string(records) + "</feedback>\n";
}

// `s` with the first `from` replaced by `to`; `from` must be there.
std::string with(std::string s, std::string_view from, std::string_view to) {
  const auto at = s.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, "fixture lacks ", from);
  return s.replace(at, from.size(), to);
}

// Every element name in `xml` bound to `prefix` ("dmarc:"); the declarations are up to the caller.
std::string prefixed(std::string_view xml, std::string_view prefix) {
  std::string out;
  for (std::size_t i = 0; i < xml.size(); ++i) {
    out += xml[i];
    if (xml[i] != '<' || i + 1 >= xml.size()) continue;
    if (xml[i + 1] == '/') {
      out += '/';
      ++i;
    }
    if (i + 1 < xml.size() && xml[i + 1] >= 'a' && xml[i + 1] <= 'z') out += prefix;
  }
  return out;
}

Report parsed(const std::string& xml, Repairs* repairs = nullptr, const XmlLimits& limits = {}) {
  auto r = parse_report(xml, limits, repairs);
  REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().what));
  return *r;
}

std::string joined(const Repairs& repairs) {
  std::string out;
  for (const auto& r : repairs) out += r + "\n";
  return out;
}

bool has(const Repairs& repairs, std::string_view what) {
  for (const auto& r : repairs) {
    if (r.find(what) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("parse_report: both schemas, with prefixes, default namespaces or none") {
  const std::string plain = doc();
  struct Case {
    std::string label;
    std::string xml;
    bool want_dmarcbis;
  };
  const Case cases[] = {
      {"no namespace", plain, false},
      {"RFC 7489 default namespace",
       with(plain, "<feedback>", R"(<feedback xmlns="http://dmarc.org/dmarc-xml/0.1">)"), false},
      {"RFC 7489 prefixed",
       with(prefixed(plain, "rua:"), "<rua:feedback>",
            R"(<rua:feedback xmlns:rua="http://dmarc.org/dmarc-xml/0.1">)"),
       false},
      {"DMARCbis default namespace, version 1.0 (GMX, WEB.DE)",
       with(plain, "<feedback>",
            R"(<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0"><version>1.0</version>)"),
       true},
      {"DMARCbis prefixed, single quotes, spaces around =",
       with(prefixed(plain, "d:"), "<d:feedback>",
            "<d:feedback xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'\n"
            "  xmlns:d = ' urn:ietf:params:xml:ns:dmarc-2.0 '>"),
       true},
      {"DMARCbis declared on a child",
       with(plain, "<report_metadata>",
            R"(<report_metadata xmlns="urn:ietf:params:xml:ns:dmarc-2.0">)"),
       true},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    Repairs repairs;
    const auto r = parsed(c.xml, &repairs);
    CHECK(repairs.empty());
    CHECK(r.dmarcbis == c.want_dmarcbis);
    CHECK(r.org_name == "example.org");
    CHECK(r.report_id == "r-1");
    CHECK(r.begin == 1700000000);
    CHECK(r.end == 1700086399);
    CHECK(r.policy.domain == "example.com");
    REQUIRE(r.records.size() == 1);
    CHECK(r.records[0].source_ip == "192.0.2.1");
    CHECK(r.records[0].count == 3);
    REQUIRE(r.records[0].auth.size() == 1);
    CHECK(r.records[0].auth[0].selector == "s1");
  }
}

TEST_CASE("parse_report: every field of both schemas") {
  const std::string xml = R"(<?xml version="1.0"?>
<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">
  <version>2.0</version>
  <report_metadata>
    <org_name> Example Receiver </org_name>
    <email>noreply-dmarc@example.net</email>
    <extra_contact_info>https://example.net/dmarc</extra_contact_info>
    <report_id>
      abc-123
    </report_id>
    <date_range>
      <begin> 1700000000 </begin>
      <end>1700086399.0</end>
    </date_range>
    <error>one thing went wrong</error>
    <error>and another</error>
  </report_metadata>
  <policy_published>
    <domain>Example.COM</domain>
    <discovery_method>TreeWalk</discovery_method>
    <adkim>S</adkim>
    <aspf>r</aspf>
    <p>Reject</p>
    <sp>quarantine</sp>
    <np>none</np>
    <pct>50</pct>
    <fo>0:1</fo>
    <testing>n</testing>
  </policy_published>
  <record>
    <row>
      <source_ip>2001:db8::25</source_ip>
      <count>7</count>
      <policy_evaluated>
        <disposition>Quarantine</disposition>
        <dkim>FAIL</dkim>
        <spf>Pass</spf>
        <reason><type>Forwarded</type><comment>via list.example.org</comment></reason>
        <reason><type>local_policy</type></reason>
      </policy_evaluated>
    </row>
    <identifiers>
      <envelope_to>example.net</envelope_to>
      <envelope_from>bounce.example.com</envelope_from>
      <header_from>example.com</header_from>
    </identifiers>
    <auth_results>
      <dkim>
        <domain>example.com</domain>
        <selector>Sel2024</selector>
        <result>PermError</result>
        <human_result>key too short</human_result>
      </dkim>
      <dkim><domain>esp.example.org</domain><selector>s1</selector><result>pass</result></dkim>
      <spf><domain>bounce.example.com</domain><scope>MFROM</scope><result>pass</result></spf>
      <spf><domain>mx.example.com</domain><scope>helo</scope><result>softfail</result></spf>
    </auth_results>
  </record>
</feedback>
)";
  Report want;
  want.version = "2.0";
  want.dmarcbis = true;
  want.org_name = "Example Receiver";
  want.email = "noreply-dmarc@example.net";
  want.extra_contact_info = "https://example.net/dmarc";
  want.report_id = "abc-123";
  want.begin = 1700000000;
  want.end = 1700086399;
  want.errors = {"one thing went wrong", "and another"};
  want.policy.domain = "Example.COM";  // as given: domains are not folded here
  want.policy.discovery_method = "treewalk";
  want.policy.adkim = "s";
  want.policy.aspf = "r";
  want.policy.p = "reject";
  want.policy.sp = "quarantine";
  want.policy.np = "none";
  want.policy.pct = 50;
  want.policy.fo = "0:1";
  want.policy.testing = "n";
  Record rec;
  rec.source_ip = "2001:db8::25";
  rec.count = 7;
  rec.disposition = "quarantine";
  rec.dkim = "fail";
  rec.spf = "pass";
  rec.reasons = {Reason{"forwarded", "via list.example.org"}, Reason{"local_policy", ""}};
  rec.envelope_to = "example.net";
  rec.envelope_from = "bounce.example.com";
  rec.header_from = "example.com";
  rec.auth = {
      AuthResult{"dkim", "example.com", "Sel2024", "", "permerror", "key too short"},
      AuthResult{"dkim", "esp.example.org", "s1", "", "pass", ""},
      AuthResult{"spf", "bounce.example.com", "", "mfrom", "pass", ""},
      AuthResult{"spf", "mx.example.com", "", "helo", "softfail", ""},
  };
  want.records = {rec};
  Repairs repairs;
  const auto got = parsed(xml, &repairs);
  CHECK(repairs.empty());
  CHECK(got == want);
  CHECK(got.messages() == 7);
  CHECK(got.pass_messages() == 7);
}

TEST_CASE("parse_report: optional elements may be missing or empty") {
  const std::string xml = R"(<feedback>
  <report_metadata><org_name>example.org</org_name><report_id>r</report_id>
    <date_range><begin>1</begin><end>2</end></date_range></report_metadata>
  <policy_published><domain>example.com</domain><pct></pct><p/></policy_published>
  <record><row><source_ip>198.51.100.7</source_ip><count>0</count></row>
    <auth_results><spf><domain></domain><result/></spf></auth_results>
    <policy_evaluated><reason><type></type><comment></comment></reason></policy_evaluated>
  </record>
  <record><row><source_ip>198.51.100.8</source_ip><count>1</count>
    <policy_evaluated><reason><type></type><comment></comment></reason></policy_evaluated>
  </row></record>
</feedback>)";
  const auto r = parsed(xml);
  CHECK(r.version.empty());
  CHECK_FALSE(r.dmarcbis);
  CHECK(r.email.empty());
  CHECK(r.errors.empty());
  CHECK_FALSE(r.policy.pct.has_value());
  CHECK(r.policy.p.empty());
  REQUIRE(r.records.size() == 2);
  for (const auto& rec : r.records) {
    CHECK(rec.disposition.empty());
    CHECK(rec.dkim.empty());
    CHECK(rec.header_from.empty());
    CHECK(rec.auth.empty());     // an entry with nothing in it says nothing
    CHECK(rec.reasons.empty());  // likewise <reason><type></type>...
    CHECK_FALSE(rec.dmarc_pass());
  }
  CHECK(r.messages() == 1);
}

TEST_CASE("parse_report: results and policy words folded to lower case, unknown ones kept") {
  struct Case {
    std::string label;
    const char* from;
    const char* to;
    std::string Record::*field;
    const char* want;
  };
  const Case cases[] = {
      {"upper-case pass", "<dkim>pass</dkim><spf>fail", "<dkim>PASS</dkim><spf>fail", &Record::dkim,
       "pass"},
      {"mixed-case fail", "<spf>fail</spf>", "<spf>Fail</spf>", &Record::spf, "fail"},
      {"non-standard hardfail kept", "<spf>fail</spf>", "<spf>HardFail</spf>", &Record::spf,
       "hardfail"},
      {"unknown disposition kept", "<disposition>none", "<disposition>Pass_Through",
       &Record::disposition, "pass_through"},
      {"header_from as given", "<header_from>example.com", "<header_from>Example.COM",
       &Record::header_from, "Example.COM"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto r = parsed(with(doc(), c.from, c.to));
    REQUIRE(r.records.size() == 1);
    CHECK(r.records[0].*c.field == c.want);
  }
  const auto r = parsed(with(doc(), "<result>pass</result>", "<result>TempError</result>"));
  CHECK(r.records[0].auth[0].result == "temperror");
  CHECK(r.records[0].auth[0].selector == "s1");
}

TEST_CASE("dmarc_pass: policy-evaluated DKIM or SPF pass") {
  struct Case {
    std::string label;
    const char* dkim;
    const char* spf;
    bool want;
  };
  const Case cases[] = {
      {"dkim only", "pass", "fail", true},
      {"spf only", "fail", "Pass", true},
      {"both", "PASS", "pass", true},
      {"neither", "fail", "fail", false},
      {"softfail is no pass", "fail", "softfail", false},
      {"absent", "", "", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto xml = with(doc(), "<dkim>pass</dkim><spf>fail</spf>",
                          std::string("<dkim>") + c.dkim + "</dkim><spf>" + c.spf + "</spf>");
    const auto r = parsed(xml);
    CHECK(r.records[0].dmarc_pass() == c.want);
    CHECK(r.pass_messages() == (c.want ? 3 : 0));
  }
}

TEST_CASE("parse_report: date range in unix seconds, whitespace and .0 accepted") {
  struct Case {
    std::string label;
    const char* begin;
    std::int64_t want;
  };
  const Case cases[] = {
      {"plain", "1538690400", 1538690400},
      {"surrounding whitespace", "\n  1538690400 \t", 1538690400},
      {"float", "1538690400.0", 1538690400},
      {"float, fraction dropped", "1538690400.75", 1538690400},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto r = parsed(
        with(doc(), "<begin>1700000000</begin>", std::string("<begin>") + c.begin + "</begin>"));
    CHECK(r.begin == c.want);
  }
}

TEST_CASE("parse_report: refusals say why") {
  const std::string base = doc();
  struct Case {
    std::string label;
    std::string xml;
    const char* want;  // substring of the error
  };
  const Case cases[] = {
      {"empty", "", "empty document"},
      {"whitespace only", " \n", "no root element"},
      {"utf-16 with BOM", std::string("\xFF\xFE<\0f\0", 6), "utf-16 documents are not supported"},
      {"utf-16 without BOM", std::string("<\0f\0", 4), "utf-16 documents are not supported"},
      {"not a report", "<html><body>hi</body></html>",
       "not a DMARC aggregate report: root element <html>"},
      {"tls report json", R"({"organization-name":"example.net"})",
       "text before the root element at byte 0"},
      {"text before root", "junk" + base, "text before the root element at byte 0"},
      {"entity declarations",
       with(base, "<feedback>",
            "<!DOCTYPE feedback [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]>\n<feedback>"),
       "DTD with entity declarations refused (entities are never expanded)"},
      {"external entity",
       with(base, "<feedback>",
            "<!DOCTYPE feedback [ <!ENTITY xxe SYSTEM \"file:///etc/passwd\"> ]><feedback>"),
       "DTD with entity declarations refused"},
      {"unterminated DOCTYPE", "<!DOCTYPE feedback [ <!ELEMENT feedback ANY>",
       "unterminated DOCTYPE at byte 0"},
      {"DOCTYPE inside", with(base, "<record>", "<record><!DOCTYPE x>"),
       "DOCTYPE inside the root element"},
      {"unterminated comment", with(base, "<record>", "<record><!-- ..."),
       "unterminated comment at byte"},
      {"unterminated CDATA", with(base, "<count>3", "<count><![CDATA[3"),
       "unterminated CDATA section at byte"},
      {"unterminated PI", with(base, "<record>", "<record><?pi "),
       "unterminated processing instruction at byte"},
      {"truncated tag", base.substr(0, base.find("<record>") + 4), "truncated tag at byte"},
      {"truncated inside a record", base.substr(0, base.find("</row>")),
       "document ends inside <record> at byte"},
      {"attribute without value", with(base, "<record>", "<record checked>"),
       "malformed attribute in <record> at byte"},
      {"unquoted attribute", with(base, "<record>", "<record a=1>"),
       "malformed attribute in <record>"},
      {"malformed end tag", with(base, "</row>", "</row x>"), "malformed end tag at byte"},
      {"record in a record", with(base, "<identifiers>", "<record><identifiers>"),
       "<record> inside <record> at byte"},
      {"another report follows", base + base, "another document follows </feedback> at byte"},
      {"another root follows", base + "<feedback/>", "another document follows </feedback>"},
      {"no org_name", with(base, "<org_name>example.org</org_name>", ""), "no <org_name>"},
      {"empty root", "<html/>", "not a DMARC aggregate report: root element <html>"},
      {"wrapper without a report", "<x:schema xmlns:x=\"urn:x\"><x:element/></x:schema>",
       "not a DMARC aggregate report: root element <x:schema>"},
      {"wrapper with two reports",
       "<reports>" + base.substr(base.find("<feedback>")) + base.substr(base.find("<feedback>")) +
           "</reports>",
       "another <feedback> at byte"},
      {"no report_id", with(base, "<report_id>r-1</report_id>", ""), "no <report_id>"},
      {"no begin", with(base, "<begin>1700000000</begin>", ""), "no <begin> in <date_range>"},
      {"no end", with(base, "<end>1700086399</end>", "<end></end>"), "no <end> in <date_range>"},
      {"garbage begin", with(base, "<begin>1700000000", "<begin>yesterday"),
       "<begin> \"yesterday\" is not a unix time"},
      {"exponent begin", with(base, "<begin>1700000000", "<begin>1.7e9"),
       "<begin> \"1.7e9\" is not a unix time"},
      {"negative end", with(base, "<end>1700086399", "<end>-1"), "<end> \"-1\" is not a unix time"},
      {"no policy domain", with(base, "<domain>example.com</domain><p>", "<p>"),
       "no <domain> in <policy_published>"},
      {"no source_ip", with(base, "<source_ip>192.0.2.1</source_ip>", "<source_ip/>"),
       "record 1: no <source_ip>"},
      {"no count", with(base, "<count>3</count>", ""), "record 1: no <count>"},
      {"count not a number", with(base, "<count>3", "<count>x"),
       "record 1: <count> \"x\" is not a number"},
      {"count float", with(base, "<count>3", "<count>3.0"),
       "record 1: <count> \"3.0\" is not a number"},
      {"count out of range", with(base, "<count>3", "<count>99999999999999"),
       "record 1: <count> \"99999999999999\" is out of range"},
      {"count too long", with(base, "<count>3", "<count>9999999999999999999999"),
       "is not a number"},
      {"second record bad",
       doc(std::string(kRecord) + std::string(with(std::string(kRecord), "<count>3", "<count>-3"))),
       "record 2: <count> \"-3\" is not a number"},
      {"contradicting report ids",
       with(base, "<report_id>r-1", "<report_id>r-2</report_id><report_id>r-1"),
       "two different <report_id> values (\"r-2\", \"r-1\")"},
      {"contradicting counts", with(base, "<count>3</count>", "<count>3</count><count>4</count>"),
       "record 1: two different <count> values (3, 4)"},
      {"contradicting results",
       with(base, "<result>pass</result>", "<result>pass</result><result>fail</result>"),
       "record 1: two different <result> values (\"pass\", \"fail\")"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    Repairs repairs;
    const auto r = parse_report(c.xml, {}, &repairs);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::Invalid);
    CHECK_MESSAGE(r.error().what.find(c.want) != std::string::npos, r.error().what);
  }
}

TEST_CASE("parse_report: repeated elements with the same value are harmless") {
  const auto r = parsed(with(doc(), "<count>3</count>", "<count>3</count><count> 3 </count>"));
  CHECK(r.records[0].count == 3);
}

TEST_CASE("parse_report: unambiguous damage is repaired and said") {
  const std::string base = doc();
  struct Case {
    std::string label;
    std::string xml;
    const char* want_repair;            // substring of one repair line
    std::string (*get)(const Report&);  // the repaired value
    const char* want;
  };
  const auto email = [](const Report& r) { return r.email; };
  const auto header_from = [](const Report& r) { return r.records.at(0).header_from; };
  const auto org = [](const Report& r) { return r.org_name; };
  const auto records = [](const Report& r) { return std::to_string(r.records.size()); };
  const auto pct = [](const Report& r) {
    return r.policy.pct ? std::to_string(*r.policy.pct) : std::string("unset");
  };
  const Case cases[] = {
      {"unescaped < that starts no tag (parsedmarc invalid_xml)",
       with(base, "<email>dmarc@example.org", "<email><bad-xml@example.net>"),
       "unescaped '<' at byte", email, "<bad-xml@example.net>"},
      {"unescaped < before a tag",
       with(base, "<header_from>example.com", "<header_from>bad<example.com"),
       "unescaped '<' at byte", header_from, "bad<example.com"},
      {"lone <", with(base, "<org_name>example.org", "<org_name>a < b"), "unescaped '<'", org,
       "a < b"},
      {"unescaped &", with(base, "<org_name>example.org", "<org_name>Smith & Sons"),
       "unescaped '&' at byte", org, "Smith & Sons"},
      {"& with a name but no ;", with(base, "<org_name>example.org", "<org_name>AT&T Mail"),
       "unescaped '&'", org, "AT&T Mail"},
      {"unknown entity", with(base, "<org_name>example.org", "<org_name>caf&eacute; example"),
       "unknown entity \"&eacute;\" at byte", org, "caf&eacute; example"},
      {"invalid character reference", with(base, "<org_name>example.org", "<org_name>a&#0;b"),
       "invalid character reference \"&#0;\" at byte", org,
       "a\xEF\xBF\xBD"
       "b"},
      {"surrogate character reference", with(base, "<org_name>example.org", "<org_name>&#xD800;"),
       "invalid character reference \"&#xD800;\"", org, "\xEF\xBF\xBD"},
      {"huge character reference", with(base, "<org_name>example.org", "<org_name>&#99999999999;"),
       "invalid character reference", org, "\xEF\xBF\xBD"},
      {"invalid UTF-8 (parsedmarc invalid_utf_8)",
       with(base, "<header_from>example.com", "<header_from>bad_byte\x91"), "invalid UTF-8 at byte",
       header_from, "bad_byte\xEF\xBF\xBD"},
      {"overlong UTF-8", with(base, "<org_name>example.org", "<org_name>\xC0\xAF"), "invalid UTF-8",
       org, "\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"truncated UTF-8 sequence", with(base, "<org_name>example.org", "<org_name>x\xE2\x82"),
       "invalid UTF-8", org, "x\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"control character", with(base, "<org_name>example.org", std::string("<org_name>a\0b", 13)),
       "control character at byte", org,
       "a\xEF\xBF\xBD"
       "b"},
      {"stray unclosed element",
       with(base, "<email>dmarc@example.org", "<email>dmarc@example.org<br>"),
       "unclosed <br> at byte", email, "dmarc@example.org"},
      {"stray end tag", with(base, "<email>dmarc@example.org", "<email>dmarc@example.org</b>"),
       "stray </b> at byte", email, "dmarc@example.org"},
      {"missing </feedback>", base.substr(0, base.find("</feedback>")),
       "unclosed <feedback> at byte", records, "1"},
      {"trailing garbage", base + "\x1f\x8b\x08 garbage",
       "trailing bytes after </feedback> at byte", records, "1"},
      {"trailing tag soup", base + "</feedback></html>", "trailing bytes after </feedback>",
       records, "1"},
      {"bad pct", with(base, "<p>none</p>", "<p>none</p><pct>all</pct>"),
       "<pct> \"all\" is not a number from 0 to 100, ignored", pct, "unset"},
      {"pct above 100", with(base, "<p>none</p>", "<p>none</p><pct>101</pct>"), "<pct> \"101\"",
       pct, "unset"},
      {"unsupported encoding", with(base, "encoding=\"UTF-8\"", "encoding=\"koi8-r\""),
       "encoding \"koi8-r\" is not supported, read as UTF-8", org, "example.org"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    Repairs repairs;
    const auto r = parse_report(c.xml, {}, &repairs);
    REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().what));
    CHECK_MESSAGE(has(repairs, c.want_repair), joined(repairs));
    CHECK(c.get(*r) == c.want);
  }
}

TEST_CASE("parse_report: repairs are listed up to 100, then counted") {
  std::string junk;
  for (int i = 0; i < 250; ++i) junk += "a & ";
  Repairs repairs;
  const auto r = parsed(with(doc(), "<org_name>example.org", "<org_name>" + junk), &repairs);
  REQUIRE(repairs.size() == 101);
  CHECK(repairs.back() == "150 more repairs not listed");
  CHECK(r.org_name.size() == junk.size() - 1);  // trimmed
}

TEST_CASE("parse_report: entities and character references") {
  struct Case {
    std::string label;
    const char* text;  // as written in <org_name>
    const char* want;
  };
  const Case cases[] = {
      {"the five predefined", "&lt;&gt;&amp;&quot;&apos;", "<>&\"'"},
      {"decimal", "caf&#233;", "caf\xC3\xA9"},
      {"hex, either case", "&#x41;&#X42;&#x1F600;", "A&#X42;\xF0\x9F\x98\x80"},
      {"amp does not chain", "&amp;lt;", "&lt;"},
      {"CDATA is literal", "<![CDATA[<b>&amp;</b>]]>", "<b>&amp;</b>"},
      {"comment and PI skipped", "a<!-- <b> & -->b<?php echo 1; ?>c", "abc"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto r = parsed(with(doc(), "<org_name>example.org", std::string("<org_name>") + c.text));
    CHECK(r.org_name == c.want);
  }
}

TEST_CASE("parse_report: a DOCTYPE without entity declarations is skipped, never fetched") {
  const auto doctypes = {
      R"(<!DOCTYPE feedback SYSTEM "http://example.com/dmarc.dtd">)",
      R"(<!DOCTYPE feedback PUBLIC "-//x//y" "feedback.dtd" [ <!ELEMENT feedback ANY> ]>)",
      R"(<!DOCTYPE feedback [ <!-- <!ENTITY x "no"> ]> --> <!ATTLIST feedback a CDATA "]>"> ]>)",
  };
  for (const std::string d : doctypes) {
    CAPTURE(d);
    Repairs repairs;
    const auto r = parsed(with(doc(), "<feedback>", std::string(d) + "\n<feedback>"), &repairs);
    CHECK(r.records.size() == 1);
    CHECK(repairs.empty());
  }
  // The entity an external DTD would declare stays text.
  Repairs repairs;
  const auto r =
      parsed(with(with(doc(), "<feedback>",
                       "<!DOCTYPE feedback SYSTEM \"http://example.com/x.dtd\"><feedback>"),
                  "<org_name>example.org", "<org_name>&xxe;"),
             &repairs);
  CHECK(r.org_name == "&xxe;");
  CHECK(has(repairs, "unknown entity \"&xxe;\""));
  // A second DOCTYPE is not a document.
  const auto twice = parse_report(with(doc(), "<feedback>", "<!DOCTYPE a><!DOCTYPE b><feedback>"));
  REQUIRE_FALSE(twice.has_value());
  CHECK(twice.error().what == "second DOCTYPE at byte 51");
}

TEST_CASE("parse_report: prolog and epilog") {
  struct Case {
    std::string label;
    std::string xml;
  };
  const std::string body = doc().substr(doc().find("<feedback>"));
  const Case cases[] = {
      {"no declaration", body},
      {"UTF-8 byte order mark", "\xEF\xBB\xBF" + doc()},
      {"comments and PIs around",
       "<!-- a -->\n<?xml-stylesheet href=\"x\"?>" + body + "<!-- b -->\n"},
      {"trailing whitespace", doc() + "\n\r\n\t "},
      {"self-closing root children", with(doc(), "<p>none</p>", "<p/><sp />")},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    Repairs repairs;
    const auto r = parsed(c.xml, &repairs);
    CHECK(repairs.empty());
    CHECK(r.records.size() == 1);
  }
}

TEST_CASE("parse_report: Latin-1 and Windows-1252 are transcoded") {
  const auto latin1 = with(with(doc(), "encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\""),
                           "<org_name>example.org", "<org_name>Caf\xE9 \x80");
  Repairs repairs;
  CHECK(parsed(latin1, &repairs).org_name == "Caf\xC3\xA9 \xEF\xBF\xBD");
  CHECK(has(repairs, "control character at byte"));  // 0x80 is a C1 control in Latin-1
  const auto cp1252 = with(with(doc(), "encoding=\"UTF-8\"", "encoding='windows-1252'"),
                           "<org_name>example.org", "<org_name>Caf\xE9 \x80");
  CHECK(parsed(cp1252).org_name == "Caf\xC3\xA9 \xE2\x82\xAC");
}

TEST_CASE("parse_report: limits") {
  std::string records;
  for (int i = 0; i < 5; ++i) records += kRecord;
  const std::string five = doc(records);
  struct Case {
    std::string label;
    std::string xml;
    XmlLimits limits;
    const char* want;  // empty: parses
  };
  XmlLimits bytes;
  bytes.max_bytes = five.size() - 1;
  XmlLimits bytes_ok;
  bytes_ok.max_bytes = five.size();
  XmlLimits recs;
  recs.max_records = 4;
  XmlLimits recs_ok;
  recs_ok.max_records = 5;
  XmlLimits depth;
  depth.max_depth = 5;  // feedback/record/row/policy_evaluated/dkim; reason/type is 6 deep
  XmlLimits elements;
  elements.max_elements = 20;
  XmlLimits text;
  text.max_text = 17;  // the longest leaf is "dmarc@example.org"
  const std::string deep =
      with(five, "<dkim>pass</dkim>", "<dkim>pass</dkim><reason><type>x</type></reason>");
  std::string nested = "<feedback>";
  for (int i = 0; i < 100; ++i) nested += "<x>";
  const Case cases[] = {
      {"bytes over", five, bytes, "document is"},
      {"bytes at the limit", five, bytes_ok, ""},
      {"records over", five, recs, "more than 4 records"},
      {"records at the limit", five, recs_ok, ""},
      {"depth at the limit", five, depth, ""},
      {"depth over", deep, depth, "elements nested deeper than 5 at byte"},
      {"default depth", nested, {}, "elements nested deeper than 32 at byte"},
      {"elements", five, elements, "more than 20 elements"},
      {"text", with(five, "<org_name>example.org", "<org_name>example.org.example"), text,
       "text of <org_name> at byte"},
      {"container whitespace is not text", five, text, ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto r = parse_report(c.xml, c.limits);
    if (*c.want == '\0') {
      CHECK_MESSAGE(r.has_value(), (r ? std::string() : r.error().what));
    } else {
      REQUIRE_FALSE(r.has_value());
      CHECK_MESSAGE(r.error().what.find(c.want) != std::string::npos, r.error().what);
    }
  }
}

TEST_CASE("parse_report: pathological inputs stay linear") {
  // Each would be quadratic in a reader that rescans; a few MB must come back at once.
  const std::size_t n = 512u << 10;
  const auto in_org = [](std::string filler) {
    return with(doc(), "<org_name>example.org", "<org_name>x" + filler);
  };
  XmlLimits big;
  big.max_text = 64u << 20;
  const std::string cases[] = {
      in_org(std::string(n, '<')),
      in_org(std::string(n, '&')),
      [&] {
        std::string s;
        while (s.size() < n) s += "<a";
        return in_org(s);
      }(),
      [&] {
        std::string s;
        while (s.size() < n) s += "&#1";
        return in_org(s);
      }(),
      [&] {
        std::string s;
        while (s.size() < n) s += "</b";
        return in_org(s);
      }(),
      "<feedback>" + std::string(n, '\xFF'),
      "<feedback><!--" + std::string(n, '-'),
      "<feedback><![CDATA[" + std::string(n, ']'),
      "<!DOCTYPE [" + std::string(n, '['),
  };
  for (const auto& xml : cases) {
    Repairs repairs;
    const auto r = parse_report(xml, big, &repairs);
    CHECK(repairs.size() <= 101);
    if (!r) CHECK_FALSE(r.error().what.empty());
  }
}

TEST_CASE("parse_report: an empty <org_name> is accepted (schema-valid, seen in the wild)") {
  const auto r = parsed(with(doc(), "<org_name>example.org</org_name>", "<org_name></org_name>"));
  CHECK(r.org_name.empty());
  CHECK(r.records.size() == 1);
}

TEST_CASE("parse_report: a report wrapped in another element is unwrapped") {
  const std::string body = doc().substr(doc().find("<feedback>"));
  struct Case {
    std::string label;
    std::string xml;
    std::vector<std::string> want_repairs;
  };
  const Case cases[] = {
      {"unclosed xs:schema (IKEA)",
       "<?xml version=\"1.0\"?> <xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" "
       "targetNamespace=\"http://dmarc.org/dmarc-xml/0.1\">\n" +
           body,
       {"report wrapped in <xs:schema> at byte 22 unwrapped",
        "unclosed <xs:schema> at byte 22 closed at end of document"}},
      {"closed wrapper, more after the report",
       "<envelope>" + body + "<signature><version>9</version></signature></envelope>",
       {"report wrapped in <envelope> at byte 0 unwrapped"}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    Repairs repairs;
    const auto r = parsed(c.xml, &repairs);
    CHECK(repairs == c.want_repairs);
    CHECK(r.version.empty());
    CHECK(r.records.size() == 1);
    CHECK(r.report_id == "r-1");
  }
}
