// core::dkim: parsing opendkim.conf and its tables, and predicting OpenDKIM's sign decision.
// Pure: files come from an in-memory map. Expected values were checked against the real
// opendkim 2.11.0~beta2 under miltertest (see the comments in common/core/dkim_scope.cpp).
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "core/dkim_scope.hpp"

using namespace rampart;
using namespace rampart::core::dkim;

namespace {

using Files = std::map<std::string, std::string>;

ReadFile reader(const Files& files) {
  return [files](const std::string& path) -> Result<std::string> {
    const auto it = files.find(path);
    if (it == files.end()) return fail(Errc::Config, "No such file or directory");
    return it->second;
  };
}

Config load(const std::string& conf, const Files& files = {}) {
  auto c = parse_config(conf, "/etc/opendkim.conf", reader(files));
  REQUIRE_MESSAGE(c, (c ? "" : c.error().what));
  return *c;
}

struct Req {
  const char* client = "127.0.0.1";
  const char* from = "news@send.example.net";
  bool auth = false;
  std::vector<Macro> macros = {};
  const char* name = "";
  std::vector<std::string_view> rcpts = {};
};

Prediction run(const Config& cfg, const Req& r) {
  SigningRequest q;
  q.client_addr = r.client;
  q.client_name = r.name;
  q.authenticated = r.auth;
  q.from_address = r.from;
  q.macros = r.macros;
  q.recipients = r.rcpts;
  return predict(cfg, q);
}

// want_reason: "" when signing; otherwise the exact reason.
struct Case {
  const char* label;
  Req req;
  const char* want_domain;  // "" = unsigned
  const char* want_selector;
  const char* want_reason;
};

void check_cases(const Config& cfg, std::initializer_list<Case> cases) {
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = run(cfg, c.req);
    const bool want_sign = *c.want_domain != '\0';
    CHECK(got.will_sign == want_sign);
    CHECK(got.domain == (want_sign ? c.want_domain : ""));
    CHECK(got.selector == (want_sign ? c.want_selector : ""));
    CHECK(got.reason == c.want_reason);
  }
}

const char* kSingleKey = R"(# single key
Domain      send.example.net
Selector    bulk
KeyFile     /etc/dkimkeys/bulk.private
)";

}  // namespace

TEST_CASE("predict: incident 5, the container network outside InternalHosts") {
  const auto narrow = load(std::string(kSingleKey) + "InternalHosts 127.0.0.1\n");
  check_cases(narrow, {
                          {"campaign container unsigned",
                           {"172.18.0.5"},
                           "",
                           "",
                           "client 172.18.0.5 not in OpenDKIM InternalHosts"},
                          {"localhost still signed", {"127.0.0.1"}, "send.example.net", "bulk", ""},
                          {"::1 dropped with the default",
                           {"::1"},
                           "",
                           "",
                           "client ::1 not in OpenDKIM InternalHosts"},
                      });
  const auto fixed = load(std::string(kSingleKey) + "InternalHosts 127.0.0.1, 172.18.0.0/16\n");
  check_cases(fixed, {
                         {"container now signed", {"172.18.0.5"}, "send.example.net", "bulk", ""},
                         {"other network still unsigned",
                          {"172.19.0.5"},
                          "",
                          "",
                          "client 172.19.0.5 not in OpenDKIM InternalHosts"},
                     });
  const auto dflt = load(kSingleKey);
  check_cases(
      dflt,
      {
          {"default covers 127.0.0.1", {"127.0.0.1"}, "send.example.net", "bulk", ""},
          {"default covers ::1", {"IPv6:::1"}, "send.example.net", "bulk", ""},
          {"default says so",
           {"172.18.0.5"},
           "",
           "",
           "client 172.18.0.5 not in OpenDKIM InternalHosts (not set: only 127.0.0.1 and ::1)"},
          {"no address is treated as 127.0.0.1", {""}, "send.example.net", "bulk", ""},
          {"garbage address",
           {"not-an-ip"},
           "",
           "",
           "client address \"not-an-ip\" is not an IP address"},
      });
}

TEST_CASE("predict: authentication, MacroList and MTA trust a client outside InternalHosts") {
  const auto cfg = load(std::string(kSingleKey) +
                        "MacroList daemon_name=ORIGINATING|submission,{tag},relay_ok\n"
                        "MTA smtp-signer\n");
  const char* untrusted =
      "client 192.0.2.7 not in OpenDKIM InternalHosts (not set: only "
      "127.0.0.1 and ::1)";
  check_cases(
      cfg, {
               {"authenticated",
                {"192.0.2.7", "news@send.example.net", true},
                "send.example.net",
                "bulk",
                ""},
               {"auth_type macro",
                {"192.0.2.7", "news@send.example.net", false, {{"auth_type", "PLAIN"}}},
                "send.example.net",
                "bulk",
                ""},
               {"empty auth_type",
                {"192.0.2.7", "news@send.example.net", false, {{"auth_type", ""}}},
                "",
                "",
                untrusted},
               {"macro value listed",
                {"192.0.2.7", "news@send.example.net", false, {{"daemon_name", "submission"}}},
                "send.example.net",
                "bulk",
                ""},
               {"macro with braces from the adapter",
                {"192.0.2.7", "news@send.example.net", false, {{"{daemon_name}", "ORIGINATING"}}},
                "send.example.net",
                "bulk",
                ""},
               {"macro values are case-sensitive",
                {"192.0.2.7", "news@send.example.net", false, {{"daemon_name", "originating"}}},
                "",
                "",
                untrusted},
               {"macro without values only needs to be set",
                {"192.0.2.7", "news@send.example.net", false, {{"relay_ok", ""}}},
                "send.example.net",
                "bulk",
                ""},
               {"braced MacroList entry matches nothing",
                {"192.0.2.7", "news@send.example.net", false, {{"tag", "x"}}},
                "",
                "",
                untrusted},
               {"MTA by daemon_name",
                {"192.0.2.7", "news@send.example.net", false, {{"daemon_name", "smtp-signer"}}},
                "send.example.net",
                "bulk",
                ""},
               {"nothing", {"192.0.2.7"}, "", "", untrusted},
           });
  CHECK(cfg.warnings.size() == 1);  // the braced {tag}
}

TEST_CASE("predict: PeerList and Mode stop signing before anything else") {
  const auto peers = load(std::string(kSingleKey) +
                          "InternalHosts 127.0.0.1,172.18.0.0/16\n"
                          "PeerList 172.18.0.9,!172.18.0.0/24,172.18.0.0/16,.relay.example.org\n");
  check_cases(
      peers,
      {
          {"listed address", {"172.18.0.9"}, "", "", "client 172.18.0.9 is in OpenDKIM PeerList"},
          {"listed network",
           {"172.18.1.5"},
           "",
           "",
           "client 172.18.1.5 is in OpenDKIM PeerList (entry 172.18.0.0/16)"},
          {"authenticated does not help",
           {"172.18.1.5", "news@send.example.net", true},
           "",
           "",
           "client 172.18.1.5 is in OpenDKIM PeerList (entry 172.18.0.0/16)"},
          {"negated subnet is processed", {"172.18.0.5"}, "send.example.net", "bulk", ""},
          {"by client name",
           {"127.0.0.1", "news@send.example.net", false, {}, "mx1.relay.example.org"},
           "",
           "",
           "client mx1.relay.example.org [127.0.0.1] is in OpenDKIM PeerList (entry "
           ".relay.example.org)"},
      });
  struct ModeCase {
    const char* label;
    const char* line;
    bool want_sign;
    const char* want_reason;
  };
  const ModeCase modes[] = {
      {"default is sv", "", true, ""},
      {"sv", "Mode sv\n", true, ""},
      {"vs", "Mode vs\n", true, ""},
      {"s", "Mode s\n", true, ""},
      {"v", "Mode v\n", false, "OpenDKIM Mode is v (verify only)"},
      {"last line wins", "Mode sv\nmode v\n", false, "OpenDKIM Mode is v (verify only)"},
  };
  for (const auto& m : modes) {
    CAPTURE(m.label);
    const auto got = run(load(std::string(kSingleKey) + m.line), {});
    CHECK(got.will_sign == m.want_sign);
    CHECK(got.reason == m.want_reason);
  }
}

TEST_CASE("predict: Domain, Selector and KeyFile, with and without SubDomains") {
  const char* base =
      "Domain example.org,Example.NET,/etc/opendkim/more-domains\n"
      "Selector s2030\nKeyFile /etc/dkimkeys/main.private\n";
  const Files files{{"/etc/opendkim/more-domains", "# extra\n  example.com   # root\n"}};
  const auto exact = load(base, files);
  check_cases(
      exact, {
                 {"listed", {"127.0.0.1", "a@example.org"}, "example.org", "s2030", ""},
                 {"case-insensitive", {"127.0.0.1", "A@EXAMPLE.NET"}, "example.net", "s2030", ""},
                 {"angle brackets", {"127.0.0.1", "<a@example.org>"}, "example.org", "s2030", ""},
                 {"subdomain needs SubDomains",
                  {"127.0.0.1", "a@send.example.org"},
                  "",
                  "",
                  "no OpenDKIM key for From domain send.example.org (example.org is in Domain, but "
                  "SubDomains is off)"},
                 {"other domain",
                  {"127.0.0.1", "a@example.info"},
                  "",
                  "",
                  "no OpenDKIM key for From domain example.info"},
                 {"trailing dot is another name",
                  {"127.0.0.1", "a@example.org."},
                  "",
                  "",
                  "no OpenDKIM key for From domain example.org."},
                 {"no domain",
                  {"127.0.0.1", "postmaster"},
                  "",
                  "",
                  "From address \"postmaster\" has no domain"},
                 {"no sender", {"127.0.0.1", ""}, "", "", "no From address"},
             });
  // Verified quirk: a plain path is a file only when it starts with '/'; here the third Domain
  // element is a path in a list, so it is just a (domain) name. The file form needs its own value.
  const auto subs =
      load(std::string("Domain example.org,send.example.org\nSubDomains yes\n"
                       "Selector s2030\nKeyFile /etc/dkimkeys/main.private\n"));
  check_cases(
      subs,
      {
          {"parent domain signs", {"127.0.0.1", "a@x.y.example.org"}, "example.org", "s2030", ""},
          {"most specific listed domain",
           {"127.0.0.1", "a@x.send.example.org"},
           "send.example.org",
           "s2030",
           ""},
          {"not a label boundary",
           {"127.0.0.1", "a@xexample.org"},
           "",
           "",
           "no OpenDKIM key for From domain xexample.org"},
      });
}

TEST_CASE("predict: refile SigningTable with wildcards, first match, and % domains") {
  const Files files{{"/etc/opendkim/keytable",
                     "# name   domain:selector:key\n"
                     "pres     example.com:pres:/etc/dkimkeys/pres.private\n"
                     "com      example.com:com:/etc/dkimkeys/com.private\n"
                     "bulk     send.example.org:bulk:/etc/dkimkeys/bulk.private   # bulk stream\n"
                     "any      %:any:/etc/dkimkeys/any.private\n"},
                    {"/etc/opendkim/signingtable",
                     "president@example.com  pres\n"
                     "*@example.com          com\n"
                     "*@*.example.org        bulk\n"
                     "*@example.*            any\n"
                     "a+b@x.test             com:a+b@x.test\n"
                     "a.b@x.test             com\n"}};
  const auto cfg = load(
      "KeyTable /etc/opendkim/keytable\n"
      "SigningTable refile:/etc/opendkim/signingtable\n",
      files);
  check_cases(
      cfg,
      {
          {"first match wins", {"127.0.0.1", "president@example.com"}, "example.com", "pres", ""},
          {"case-insensitive", {"127.0.0.1", "President@Example.COM"}, "example.com", "pres", ""},
          {"wildcard user", {"127.0.0.1", "other@example.com"}, "example.com", "com", ""},
          {"wildcard label",
           {"127.0.0.1", "news@send.example.org"},
           "send.example.org",
           "bulk",
           ""},
          {"% domain", {"127.0.0.1", "a@example.info"}, "example.info", "any", ""},
          {"% after a wildcard label", {"127.0.0.1", "a@example.org"}, "example.org", "any", ""},
          {"anchored",
           {"127.0.0.1", "a@sub.example.com"},
           "",
           "",
           "no OpenDKIM key for From domain sub.example.com (no SigningTable match for "
           "a@sub.example.com)"},
          {"plus is literal", {"127.0.0.1", "a+b@x.test"}, "example.com", "com", ""},
          {"dot is literal",
           {"127.0.0.1", "axb@x.test"},
           "",
           "",
           "no OpenDKIM key for From domain x.test (no SigningTable match for axb@x.test)"},
          {"untrusted client first",
           {"192.0.2.1", "president@example.com"},
           "",
           "",
           "client 192.0.2.1 not in OpenDKIM InternalHosts (not set: only 127.0.0.1 and ::1)"},
      });
  CHECK(run(cfg, {"127.0.0.1", "president@example.com"}).key_name == "pres");
  CHECK(files_read(cfg) ==
        std::vector<std::string>{"/etc/opendkim/keytable", "/etc/opendkim/signingtable"});
}

TEST_CASE("predict: plain SigningTable lookups by address, domain, parents, user@* and *") {
  Files files{{"/etc/opendkim/keytable", ""}};
  for (const char* k : {"full", "host", "userdot", "dot", "userstar", "star", "x", "example.net"})
    files["/etc/opendkim/keytable"] += std::string(k) + " %:" + k + ":/etc/dkimkeys/k\n";
  files["/etc/opendkim/signingtable"] =
      "*                 star\n"
      "v@*               userstar\n"
      ".example.net      dot\n"
      "u@.net            x\n"
      "u@.example.net    userdot\n"
      "a.example.net     host\n"
      "u@a.example.net   full\n"
      "u@example.net     %\n";
  const auto cfg = load(
      "KeyTable file:/etc/opendkim/keytable\n"
      "SigningTable /etc/opendkim/signingtable\nSubDomains yes\n",
      files);
  check_cases(
      cfg,
      {
          {"full address first", {"127.0.0.1", "u@a.example.net"}, "a.example.net", "full", ""},
          {"case-insensitive", {"127.0.0.1", "U@A.Example.NET"}, "a.example.net", "full", ""},
          {"then the domain", {"127.0.0.1", "w@a.example.net"}, "a.example.net", "host", ""},
          {"then user@.parent, nearest first",
           {"127.0.0.1", "u@b.example.net"},
           "b.example.net",
           "userdot",
           ""},
          {"then .parent", {"127.0.0.1", "w@b.example.net"}, "b.example.net", "dot", ""},
          {".parent beats user@*", {"127.0.0.1", "v@b.example.net"}, "b.example.net", "dot", ""},
          {"user@* then *", {"127.0.0.1", "v@other.test"}, "other.test", "userstar", ""},
          {"* last", {"127.0.0.1", "w@other.test"}, "other.test", "star", ""},
          {"farther parent", {"127.0.0.1", "u@x.net"}, "x.net", "x", ""},
          {"% names the domain's key",
           {"127.0.0.1", "u@example.net"},
           "example.net",
           "example.net",
           ""},
      });
  // Without '*' and with SubDomains on, a bare domain still covers only itself (verified).
  files["/etc/opendkim/signingtable"] = "example.net example.net\n";
  const auto bare = load(
      "KeyTable /etc/opendkim/keytable\n"
      "SigningTable /etc/opendkim/signingtable\nSubDomains yes\n",
      files);
  check_cases(
      bare, {
                {"domain itself", {"127.0.0.1", "w@example.net"}, "example.net", "example.net", ""},
                {"SubDomains does not apply to SigningTable",
                 {"127.0.0.1", "w@a.example.net"},
                 "",
                 "",
                 "no OpenDKIM key for From domain a.example.net (no SigningTable match for "
                 "w@a.example.net)"},
            });
}

TEST_CASE("predict: InternalHosts negation, precision and host names") {
  const auto cfg = load(std::string(kSingleKey) +
                        "InternalHosts 172.18.0.0/16,!172.18.0.0/24,172.18.0.6,mx.example.net,"
                        "!bad.example.com,.example.com,[198.51.100.7],127.0.0.1/32,!127.0.0.1\n");
  check_cases(
      cfg,
      {
          {"network", {"172.18.1.5"}, "send.example.net", "bulk", ""},
          {"negated subnet wins over the wider network",
           {"172.18.0.5"},
           "",
           "",
           "client 172.18.0.5 excluded by OpenDKIM InternalHosts entry !172.18.0.0/24"},
          {"address wins over the negated subnet", {"172.18.0.6"}, "send.example.net", "bulk", ""},
          {"bracketed address", {"198.51.100.7"}, "send.example.net", "bulk", ""},
          {"exact address before /32",
           {"127.0.0.1"},
           "",
           "",
           "client 127.0.0.1 excluded by OpenDKIM InternalHosts entry !127.0.0.1"},
          {"host name",
           {"192.0.2.1", "news@send.example.net", false, {}, "MX.Example.NET"},
           "send.example.net",
           "bulk",
           ""},
          {"domain entry covers subdomains",
           {"192.0.2.1", "news@send.example.net", false, {}, "a.b.example.com"},
           "send.example.net",
           "bulk",
           ""},
          {"negated host name",
           {"192.0.2.1", "news@send.example.net", false, {}, "bad.example.com"},
           "",
           "",
           "client 192.0.2.1 not in OpenDKIM InternalHosts"},
          {"name not known",
           {"192.0.2.1"},
           "",
           "",
           "client 192.0.2.1 not in OpenDKIM InternalHosts (host name entries not checked without "
           "the "
           "client name: mx.example.net, !bad.example.com, .example.com)"},
      });
  // A negated name only ends the name stage; the address still counts (verified).
  const auto fallthrough =
      load(std::string(kSingleKey) + "InternalHosts !mx.example.net,192.0.2.0/24\n");
  CHECK(
      run(fallthrough, {"192.0.2.1", "a@send.example.net", false, {}, "mx.example.net"}).will_sign);
  const auto same = load(std::string(kSingleKey) + "InternalHosts 172.18.0.5,!172.18.0.5\n");
  CHECK_FALSE(run(same, {"172.18.0.5"}).will_sign);  // equal precision: the negation wins
}

TEST_CASE("predict: entries OpenDKIM never matches are named in the reason") {
  const auto cfg = load(std::string(kSingleKey) +
                        "InternalHosts 127.0.0.1,172.18.0.5/16,172.19/16,10.0.0.0/08,127.1\n");
  CHECK(cfg.warnings.size() == 4);
  check_cases(
      cfg,
      {
          {"host bits set",
           {"172.18.0.5"},
           "",
           "",
           "client 172.18.0.5 not in OpenDKIM InternalHosts (entries that match nothing: "
           "172.18.0.5/16 (host bits set (write 172.18.0.0/16)), 172.19/16 (not an address or "
           "network in the canonical form OpenDKIM compares), 10.0.0.0/08 (bad prefix length "
           "(OpenDKIM compares text: plain decimal bits)), 127.1 (not an address or network in the "
           "canonical form OpenDKIM compares))"},
          {"the good entry still works", {"127.0.0.1"}, "send.example.net", "bulk", ""},
      });
}

TEST_CASE("predict: IPv6 and IPv4-mapped clients") {
  const Files files{{"/etc/opendkim/internal",
                     "# IPv6 must live in a file (or after csl:)\n"
                     "127.0.0.1\n"
                     "2001:db8::/32\n"
                     "!2001:db8::/48\n"
                     "2001:DB8::7\n"
                     "172.18.0.0/16\n"
                     "::ffff:198.51.100.0/120\n"
                     "2001:0db8:1::/48\n"}};
  const auto cfg = load(std::string(kSingleKey) + "InternalHosts /etc/opendkim/internal\n", files);
  check_cases(
      cfg,
      {
          {"v6 network", {"2001:db8:1:2::5"}, "send.example.net", "bulk", ""},
          {"milter form", {"IPv6:2001:db8:1:2::5"}, "send.example.net", "bulk", ""},
          {"negated /48",
           {"2001:db8::5"},
           "",
           "",
           "client 2001:db8::5 excluded by OpenDKIM InternalHosts entry !2001:db8::/48"},
          {"upper-case address entry", {"2001:db8::7"}, "send.example.net", "bulk", ""},
          {"mapped client is IPv6 to OpenDKIM",
           {"::ffff:172.18.0.5"},
           "",
           "",
           "client ::ffff:172.18.0.5 not in OpenDKIM InternalHosts (entries that match nothing: "
           "2001:0db8:1::/48 (not in canonical form (OpenDKIM compares text: write "
           "2001:db8:1::)))"},
          {"mapped network entry", {"::ffff:198.51.100.9"}, "send.example.net", "bulk", ""},
          {"plain v4 not covered by a mapped entry",
           {"198.51.100.9"},
           "",
           "",
           "client 198.51.100.9 not in OpenDKIM InternalHosts (entries that match nothing: "
           "2001:0db8:1::/48 (not in canonical form (OpenDKIM compares text: write "
           "2001:db8:1::)))"},
      });
  auto csl = load(std::string(kSingleKey) + "InternalHosts csl:2001:db8::/32\n");
  CHECK(run(csl, {"2001:db8::1"}).will_sign);
  CHECK_FALSE(run(csl, {"127.0.0.1"}).will_sign);
}

TEST_CASE("predict: ExemptDomains, DontSignMailTo and SenderMacro") {
  const auto cfg =
      load(std::string("Domain example.org,send.example.org\nSubDomains yes\n"
                       "Selector s1\nKeyFile /etc/dkimkeys/k\n"
                       "ExemptDomains Send.Example.org,.example.net\n"
                       "DontSignMailTo r1@example.com\n"
                       "SenderMacro {sender_hint}\n"));
  const std::string_view rcpts[] = {"<ok@example.com>", "<R1@Example.COM>"};
  check_cases(
      cfg,
      {
          {"exempt domain",
           {"127.0.0.1", "a@send.example.org"},
           "",
           "",
           "From domain send.example.org is in OpenDKIM ExemptDomains"},
          {"exempt is exact", {"127.0.0.1", "a@x.send.example.org"}, "send.example.org", "s1", ""},
          {"any recipient",
           {"127.0.0.1", "a@example.org", false, {}, "", {rcpts[0], rcpts[1]}},
           "",
           "",
           "recipient r1@example.com is in OpenDKIM DontSignMailTo"},
          {"other recipient",
           {"127.0.0.1", "a@example.org", false, {}, "", {rcpts[0]}},
           "example.org",
           "s1",
           ""},
          {"SenderMacro overrides the header",
           {"127.0.0.1", "a@example.org", false, {{"sender_hint", "b@other.test"}}},
           "",
           "",
           "no OpenDKIM key for From domain other.test"},
      });
}

TEST_CASE("predict: SigningTable names a missing or malformed key") {
  const Files files{{"/k", "KUP example.com:up:/k1\nhalf example.com:sel\nempty ::/k2\n"},
                    {"/s", "a@example.com kup\nb@example.com half\nc@example.com empty\n"}};
  const auto cfg = load("KeyTable /k\nSigningTable refile:/s\n", files);
  CHECK(cfg.warnings.size() == 3);
  check_cases(
      cfg,
      {
          {"key names are case-sensitive",
           {"127.0.0.1", "a@example.com"},
           "",
           "",
           "OpenDKIM SigningTable maps a@example.com to key \"kup\", which is not in KeyTable "
           "(OpenDKIM tempfails the message)"},
          {"missing key field",
           {"127.0.0.1", "b@example.com"},
           "",
           "",
           "OpenDKIM KeyTable entry \"half\" is not domain:selector:key (OpenDKIM tempfails the "
           "message)"},
          {"empty domain and selector",
           {"127.0.0.1", "c@example.com"},
           "",
           "",
           "OpenDKIM KeyTable entry \"empty\" is not domain:selector:key (OpenDKIM tempfails the "
           "message)"},
      });
}

TEST_CASE("parse_config: dataset types OpenDKIM or rampart cannot use are refused") {
  struct ErrCase {
    const char* label;
    const char* conf;
    const char* want_error;  // substring
  };
  const ErrCase cases[] = {
      {"db:", "InternalHosts db:/etc/opendkim/hosts.db\n",
       "InternalHosts: dataset type db: is not supported by rampart's prediction"},
      {"bare .db", "PeerList /etc/opendkim/peers.db\n", "PeerList: dataset type db:"},
      {"ldap:", "SigningTable ldap://ldap.example.com/dc=example\nKeyTable /k\n",
       "SigningTable: dataset type ldap: is not supported"},
      {"lua:", "Domain lua:/etc/opendkim/domains.lua\n", "Domain: dataset type lua: is not"},
      {"dsn:", "KeyTable dsn:mysql://u@h/db/table=k?keycol=a?datacol=b\n",
       "KeyTable: dataset type dsn: is not supported"},
      {"odbc: is not even a type", "InternalHosts odbc:x\n",
       "InternalHosts: unknown dataset type \"odbc:\""},
      {"unbracketed IPv6", "InternalHosts ::1\n", "InternalHosts: unknown dataset type \":\""},
      {"IPv6 network", "InternalHosts 2001:db8::/32,127.0.0.1\n", "unknown dataset type \"2001:\""},
      {"MacroList refile", "MacroList refile:/m\n", "MacroList: must be a file or csl data set"},
      {"MacroList empty values crash OpenDKIM", "MacroList daemon_name=\n",
       "MacroList: entry \"daemon_name=\" has an empty value list"},
      {"relative file", "InternalHosts file:hosts\n", "BaseDirectory is not set"},
      {"regex operator in refile", "KeyTable /k\nSigningTable refile:/re\n",
       "SigningTable: /re:2: pattern \"a?c@x.test\" uses \"?\""},
      {"SetupPolicyScript", "SetupPolicyScript /etc/opendkim/setup.lua\n",
       "SetupPolicyScript: a Lua script decides"},
  };
  const Files files{{"/k", "k example.com:s:/key\n"},
                    {"/re", "*@example.com k\na?c@x.test k\n"},
                    {"/m", "daemon_name x\n"}};
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = parse_config(c.conf, "/etc/opendkim.conf", reader(files));
    REQUIRE_FALSE(got);
    CHECK(got.error().code == Errc::Config);
    CHECK_MESSAGE(got.error().what.find(c.want_error) != std::string::npos, got.error().what);
  }
}

TEST_CASE("parse_config: list and file syntax") {
  const Files files{{"/srv/dkim/hosts",
                     "  172.18.0.0/16   # containers\n\n# c\n"
                     "192.0.2.1 ignored-value\n\t198.51.100.7\n"},
                    {"/etc/opendkim/macros", "daemon_name ORIGINATING|submission\n"}};
  const auto cfg = load(
      "  Domain\tsend.example.net  \n\tSelector bulk\nKeyFile /k # c\n"
      "BaseDirectory /srv/dkim\n"
      "InternalHosts FILE:hosts\n"
      "MacroList file:/etc/opendkim/macros\n",
      files);
  check_cases(cfg,
              {
                  {"file entry with comment", {"172.18.0.5"}, "send.example.net", "bulk", ""},
                  {"file entry with a value", {"192.0.2.1"}, "send.example.net", "bulk", ""},
                  {"tab-indented entry", {"198.51.100.7"}, "send.example.net", "bulk", ""},
                  {"file MacroList",
                   {"203.0.113.9", "news@send.example.net", false, {{"daemon_name", "submission"}}},
                   "send.example.net",
                   "bulk",
                   ""},
              });
  CHECK(files_read(cfg) == std::vector<std::string>{"/srv/dkim/hosts", "/etc/opendkim/macros"});

  // A relative name without file: is a one-element list, i.e. a host name (verified).
  const auto rel = load(std::string(kSingleKey) + "InternalHosts hosts.txt\n");
  CHECK(files_read(rel).empty());
  CHECK(run(rel, {"192.0.2.1", "a@send.example.net", false, {}, "hosts.txt"}).will_sign);
  // Whitespace does not separate list elements (verified): one entry, matching nothing.
  const auto spaced = load(std::string(kSingleKey) + "InternalHosts 127.0.0.1 172.18.0.0/16\n");
  CHECK_FALSE(run(spaced, {"127.0.0.1"}).will_sign);
  CHECK(spaced.warnings.size() == 1);
  // Elements split on '=' only, trimmed: "daemon_name = submission" is name and value.
  const auto eq = load(std::string(kSingleKey) + "MacroList daemon_name = submission\n");
  CHECK(run(eq, {"192.0.2.1", "a@send.example.net", false, {{"daemon_name", "submission"}}})
            .will_sign);
}

TEST_CASE("parse_config: missing files, malformed lines and bad combinations") {
  struct ErrCase {
    const char* label;
    const char* conf;
    const char* want_error;
  };
  const ErrCase cases[] = {
      {"missing table", "KeyTable /etc/opendkim/keytable\nSigningTable refile:/etc/opendkim/st\n",
       "KeyTable: cannot read \"/etc/opendkim/keytable\": No such file or directory"},
      {"missing host list", "InternalHosts /etc/opendkim/TrustedHosts\n",
       "InternalHosts: cannot read \"/etc/opendkim/TrustedHosts\""},
      {"missing Include", "Include /etc/opendkim/extra.conf\n",
       "/etc/opendkim.conf:1: Include: cannot read \"/etc/opendkim/extra.conf\""},
      {"key without value", "# c\nMode\n", "/etc/opendkim.conf:2: Mode has no value"},
      {"lone word", "Domain example.org\nJustAKey\n",
       "/etc/opendkim.conf:2: JustAKey has no value"},
      {"bad mode letter", "Mode sx\n", "Mode \"sx\": unknown mode \"x\""},
      {"mode letters are lower-case", "Mode S\n", "unknown mode \"S\""},
      {"bad Boolean", "SubDomains maybe\n", "SubDomains \"maybe\": not a Boolean"},
      {"Selector without KeyFile", "Domain example.org\nSelector s\n",
       "KeyFile and Selector must both be defined"},
      {"Domain alone", "Domain example.org\n", "Domain requires KeyFile and Selector"},
      {"KeyTable alone", "KeyTable /k\n", "KeyTable requires SigningTable"},
      {"SigningTable alone", "SigningTable refile:/s\n", "SigningTable requires KeyTable"},
      {"Include loop", "Include /loop.conf\n", "Include nesting too deep"},
      {"relative Include", "Include extra.conf\n", "Include \"extra.conf\" is relative"},
  };
  const Files files{
      {"/k", "k example.com:s:/key\n"}, {"/s", "* k\n"}, {"/loop.conf", "Include /loop.conf\n"}};
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto got = parse_config(c.conf, "/etc/opendkim.conf", reader(files));
    REQUIRE_FALSE(got);
    CHECK(got.error().code == Errc::Config);
    CHECK_MESSAGE(got.error().what.find(c.want_error) != std::string::npos, got.error().what);
  }

  // Unknown keys: OpenDKIM refuses them, rampart warns (it cannot know every build's keys).
  const auto unk = load(std::string(kSingleKey) + "Socket inet:8891@localhost\nFooBar 1\n");
  REQUIRE(unk.warnings.size() == 1);
  CHECK(unk.warnings[0] ==
        "/etc/opendkim.conf:6: unknown key \"FooBar\" ignored (OpenDKIM itself "
        "refuses to start on an unrecognized parameter)");
  // Verify-only mode skips the signing-combination checks, and Boolean first bytes count.
  CHECK(parse_config("Mode v\nDomain example.org\n", "/c", reader({})));
  CHECK(load(std::string(kSingleKey) + "SubDomains Yes please\n").sub_domains);
}

TEST_CASE("parse_config: Include and files_read") {
  const Files files{{"/etc/opendkim/conf.d/hosts.conf", "InternalHosts /etc/opendkim/hosts\n"},
                    {"/etc/opendkim/hosts", "172.18.0.0/16\n"},
                    {"/etc/opendkim/keys.conf",
                     "Include /etc/opendkim/conf.d/hosts.conf\nKeyTable /etc/opendkim/kt\n"
                     "SigningTable refile:/etc/opendkim/st\n"},
                    {"/etc/opendkim/kt", "bulk %:bulk:/etc/dkimkeys/bulk.private\n"},
                    {"/etc/opendkim/st", "*@send.example.net bulk\n"}};
  const auto cfg = load("Include /etc/opendkim/keys.conf\nMode sv\n", files);
  CHECK(files_read(cfg) ==
        std::vector<std::string>{"/etc/opendkim/keys.conf", "/etc/opendkim/conf.d/hosts.conf",
                                 "/etc/opendkim/hosts", "/etc/opendkim/kt", "/etc/opendkim/st"});
  check_cases(cfg, {
                       {"included InternalHosts", {"172.18.0.5"}, "send.example.net", "bulk", ""},
                   });
}
