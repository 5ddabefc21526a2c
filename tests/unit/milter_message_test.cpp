// The milter decision core (milter/core/message.hpp): every rule kind and every action, from
// MAIL FROM to end of message. Pure: rules from TOML text, OpenDKIM config from memory.
#include <doctest/doctest.h>

#include <map>

#include "milter/core/message.hpp"
#include "rules/reader.hpp"

using namespace rampart;
using namespace rampart::milter;

namespace {

const char* kRules = R"(
[[stream]]
name = "bulk"
ports = [25]
clients = ["172.18.0.0/16"]
transport = "out05"
egress_ip = "203.0.113.94"
from_domains = ["send.example.net"]
hygiene = "warn"
[[stream]]
name = "institutional"
ports = [2526]
transport = "hcout1"
from_domains = ["send.example.org"]
hygiene = "refuse"
[[exclusion]]
category = "yahoo-family"
streams = ["*"]
domains = ["aol.com", "yahoo.com"]
addresses = ["legal@example.com"]
[[exclusion]]
category = "consumer-webmail"
action = "hold"
streams = ["bulk"]
domains = ["gmail.com"]
[[exclusion]]
category = "suppressed"
action = "discard"
streams = ["*"]
addresses = ["gone@example.com", "gone2@example.com"]
)";

std::shared_ptr<const core::RuleSet> test_rules() {
  static auto rs = [] {
    auto p = rules::parse(kRules, "t.toml");
    REQUIRE_MESSAGE(p, p.error().what);
    auto c = core::RuleSet::compile(std::move(p->spec));
    REQUIRE_MESSAGE(c, c.error().what);
    return *c;
  }();
  return rs;
}

std::shared_ptr<const core::dkim::Config> dkim(const std::string& internal_hosts) {
  const std::map<std::string, std::string> files = {
      {"/k/keytable",
       "lab send.example.net:lab:/k/lab.private\norg send.example.org:s1:/k/org.private\n"},
      {"/k/signingtable", "*@send.example.net lab\n*@send.example.org org\n"},
  };
  const std::string conf =
      "Mode sv\nKeyTable refile:/k/keytable\nSigningTable refile:/k/signingtable\n" +
      (internal_hosts.empty() ? std::string() : "InternalHosts " + internal_hosts + "\n");
  auto cfg = core::dkim::parse_config(conf, "/k/opendkim.conf",
                                      [&](const std::string& path) -> Result<std::string> {
                                        auto it = files.find(path);
                                        if (it == files.end())
                                          return fail(Errc::Config, path + ": no such file");
                                        return it->second;
                                      });
  REQUIRE_MESSAGE(cfg, cfg.error().what);
  return std::make_shared<const core::dkim::Config>(std::move(*cfg));
}

Connection conn(std::int64_t port, std::string client) {
  return Connection{port, "smtpd", std::move(client), "client.example"};
}

const char* kSigned =
    "v=1; a=rsa-sha256; c=relaxed/relaxed; d=send.example.net; s=lab; h=from; bh=x; b=y";

}  // namespace

TEST_CASE("Message::rcpt: exclusions per stream, actions, and other recipients unaffected") {
  struct Case {
    const char* label;
    std::int64_t port;
    const char* rcpt;
    Act want_act;
    const char* want_reply;  // substring, "" for none
    const char* want_event;  // "verdict fields" substring
  };
  const Case cases[] = {
      {"excluded domain rejected with category", 25, "<Someone@AOL.com>", Act::Reject,
       "rampart: aol.com excluded (yahoo-family)",
       "reject rcpt=<Someone@AOL.com> stream=bulk rule=yahoo-family"},
      {"subdomain covered", 25, "<a@mail.yahoo.com>", Act::Reject,
       "mail.yahoo.com excluded (yahoo-family)", "reject"},
      {"exact address", 25, "<legal@example.com>", Act::Reject,
       "recipient legal@example.com excluded", "reject"},
      {"hold is decided at eom", 25, "<x@gmail.com>", Act::Continue, "",
       "hold rcpt=<x@gmail.com> stream=bulk rule=consumer-webmail"},
      {"hold category not on this stream", 2526, "<x@gmail.com>", Act::Continue, "", ""},
      {"discard suppression", 2526, "<gone@example.com>", Act::Continue, "",
       "discard rcpt=<gone@example.com> stream=institutional rule=suppressed"},
      {"clean recipient", 25, "<ok@example.org>", Act::Continue, "", ""},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.label));
    const auto cn = conn(c.port, "172.18.0.5");
    Message m(test_rules(), nullptr, {});
    REQUIRE(m.mail(cn, "news@send.example.net", "").act == Act::Continue);
    const auto v = m.rcpt(c.rcpt);
    CHECK(v.act == c.want_act);
    if (*c.want_reply != '\0') {
      CHECK(v.reply.code == "550");
      CHECK(v.reply.status == "5.7.1");
      CHECK_MESSAGE(v.reply.text.find(c.want_reply) != std::string::npos, v.reply.text);
    }
    if (*c.want_event == '\0') {
      CHECK(v.events.empty());
    } else {
      REQUIRE(v.events.size() == 1);
      CHECK_MESSAGE(
          (v.events[0].verdict + " " + v.events[0].fields).find(c.want_event) != std::string::npos,
          v.events[0].fields);
    }
  }
}

TEST_CASE("Message::eom: stream pin, From identity, DKIM scope, hygiene") {
  struct Case {
    const char* label;
    std::int64_t port;
    const char* client;
    std::vector<std::pair<std::string, std::string>> headers;
    const char* body;
    std::string internal_hosts;  // "" = OpenDKIM default; "-" = DKIM check off
    OnUnsigned on_unsigned;
    Act want_act;
    const char* want_reply;   // substring of code/status/text
    const char* want_header;  // X-Rampart-Warning value substring, "" none
  };
  const std::vector<std::pair<std::string, std::string>> good = {
      {"From", "News <news@send.example.net>"},
      {"Message-ID", "<1@send.example.net>"},
      {"Content-Type", "text/plain"},
      {"DKIM-Signature", kSigned}};
  auto with = [&](std::vector<std::pair<std::string, std::string>> h, std::string name,
                  std::string value) {
    for (auto& [k, v] : h) {
      if (k == name) {
        v = value;
        return h;
      }
    }
    h.emplace_back(name, value);
    return h;
  };
  auto without = [&](std::vector<std::pair<std::string, std::string>> h, const std::string& name) {
    std::erase_if(h, [&](const auto& p) { return p.first == name; });
    return h;
  };
  const Case cases[] = {
      {"clean signed message passes", 25, "172.18.0.5", good, "hi\n", "-", OnUnsigned::Tempfail,
       Act::Continue, "", ""},
      {"From outside the stream", 25, "172.18.0.5", with(good, "From", "a@example.com"), "", "-",
       OnUnsigned::Tempfail, Act::Reject,
       "550 5.7.1 rampart: From domain example.com not allowed in stream bulk (allowed: "
       "send.example.net)",
       ""},
      {"missing From", 25, "172.18.0.5", without(good, "From"), "", "-", OnUnsigned::Tempfail,
       Act::Reject, "no From header", ""},
      {"two From headers", 25, "172.18.0.5",
       [&] {
         auto h = good;
         h.emplace_back("From", "news@send.example.net");
         return h;
       }(),
       "", "-", OnUnsigned::Tempfail, Act::Reject, "2 From headers", ""},
      {"incident 5: unsigned, client outside InternalHosts", 25, "172.18.0.5",
       without(good, "DKIM-Signature"), "", "127.0.0.1", OnUnsigned::Tempfail, Act::Tempfail,
       "451 4.7.0 rampart: would leave unsigned: ", ""},
      {"incident 5 as reject", 25, "172.18.0.5", without(good, "DKIM-Signature"), "", "127.0.0.1",
       OnUnsigned::Reject, Act::Reject, "550 5.7.1 rampart: would leave unsigned", ""},
      {"incident 5 as warn", 25, "172.18.0.5", without(good, "DKIM-Signature"), "", "127.0.0.1",
       OnUnsigned::Warn, Act::Continue, "", "unsigned"},
      {"client inside InternalHosts but no signature yet", 25, "172.18.0.5",
       without(good, "DKIM-Signature"), "", "172.18.0.0/16", OnUnsigned::Tempfail, Act::Tempfail,
       "is rampart-milter after OpenDKIM", ""},
      {"signature present and aligned", 25, "172.18.0.5", good, "", "127.0.0.1",
       OnUnsigned::Tempfail, Act::Continue, "", ""},
      {"signature not aligned", 25, "172.18.0.5",
       with(good, "DKIM-Signature", "v=1; d=other.example; s=x; b=y"), "", "127.0.0.1",
       OnUnsigned::Tempfail, Act::Tempfail, "would leave unsigned", ""},
      {"Message-ID localhost warned", 25, "172.18.0.5",
       with(good, "Message-ID", "<abc@localhost.localdomain>"), "", "-", OnUnsigned::Tempfail,
       Act::Continue, "", "message-id-localhost"},
      {"Message-ID localhost refused", 2526, "198.51.100.7",
       with(with(good, "Message-ID", "<abc@LOCALHOST>"), "From", "a@send.example.org"), "", "-",
       OnUnsigned::Tempfail, Act::Reject, "550 5.6.0 rampart: Message-ID host is localhost", ""},
      {"HTML-only warned", 25, "172.18.0.5",
       with(good, "Content-Type", "multipart/alternative; boundary=b"),
       "--b\nContent-Type: text/html; charset=utf-8\n\n<p>hi</p>\n--b--\n", "-",
       OnUnsigned::Tempfail, Act::Continue, "", "html-only"},
      {"HTML with a text part passes", 25, "172.18.0.5",
       with(good, "Content-Type", "multipart/alternative; boundary=b"),
       "--b\ncontent-type: TEXT/PLAIN\n\nhi\n--b\nContent-Type: text/html\n\n<p>hi</p>\n--b--\n",
       "-", OnUnsigned::Tempfail, Act::Continue, "", ""},
      {"top-level text/html refused on a refusing stream", 2526, "198.51.100.7",
       with(with(good, "Content-Type", "text/html"), "From", "a@send.example.org"), "<p>x</p>\n",
       "-", OnUnsigned::Tempfail, Act::Reject,
       "550 5.6.0 rampart: HTML part without a text/plain alternative", ""},
      {"unpinned mail: no identity checks", 9999, "192.0.2.1", without(good, "From"), "",
       "127.0.0.1", OnUnsigned::Tempfail, Act::Continue, "", ""},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.label));
    const auto cn = conn(c.port, c.client);
    Message m(test_rules(), c.internal_hosts == "-" ? nullptr : dkim(c.internal_hosts),
              {c.on_unsigned, OnNoStream::Accept});
    REQUIRE(m.mail(cn, "bounce@send.example.net", "").act == Act::Continue);
    REQUIRE(m.rcpt("<a@example.org>").act == Act::Continue);
    for (const auto& [k, v] : c.headers) m.header(k, v);
    // Body in awkward chunks: the part scanner must survive lines split across calls.
    const std::string body = c.body;
    for (std::size_t i = 0; i < body.size(); i += 7) m.body(std::string_view(body).substr(i, 7));
    const auto v = m.eom({});
    CHECK(v.act == c.want_act);
    if (*c.want_reply != '\0') {
      const auto reply = v.reply.code + " " + v.reply.status + " " + v.reply.text;
      CHECK_MESSAGE(reply.find(c.want_reply) != std::string::npos, reply);
      CHECK_FALSE(v.events.empty());
    }
    std::string warning;
    bool pinned = false;
    for (const auto& e : v.edits) {
      if (e.kind == HeaderEdit::Kind::Insert && e.name == kWarningHeader) warning = e.value;
      if (e.kind == HeaderEdit::Kind::Insert && e.name == kStreamHeader) pinned = true;
    }
    if (*c.want_header != '\0')
      CHECK_MESSAGE(warning.find(c.want_header) != std::string::npos, warning);
    if (*c.want_header == '\0') CHECK(warning.empty());
    CHECK(pinned == (c.want_act == Act::Continue));
  }
}

TEST_CASE("Message::eom: forged X-Rampart-Stream headers are deleted and ours inserted") {
  const auto cn = conn(2526, "198.51.100.7");
  Message m(test_rules(), nullptr, {});
  REQUIRE(m.mail(cn, "a@send.example.org", "").act == Act::Continue);
  m.header("X-Rampart-Stream", "bulk transport=out05");
  m.header("From", "a@send.example.org");
  m.header("x-rampart-stream", "evil transport=smtp");
  const auto v = m.eom({});
  REQUIRE(v.act == Act::Continue);
  REQUIRE(v.edits.size() == 3);
  CHECK(v.edits[0].kind == HeaderEdit::Kind::Delete);
  CHECK(v.edits[0].index == 2);
  CHECK(v.edits[1].index == 1);
  CHECK(v.edits[2].kind == HeaderEdit::Kind::Insert);
  CHECK(v.edits[2].value == "institutional transport=hcout1");
}

TEST_CASE("Message::eom: holds quarantine the message, discards delete recipients") {
  const auto cn = conn(25, "172.18.0.9");
  Message m(test_rules(), nullptr, {});
  REQUIRE(m.mail(cn, "a@send.example.net", "").act == Act::Continue);
  CHECK(m.rcpt("<x@gmail.com>").act == Act::Continue);
  CHECK(m.rcpt("<gone@example.com>").act == Act::Continue);
  CHECK(m.rcpt("<ok@example.org>").act == Act::Continue);
  m.header("From", "a@send.example.net");
  const auto v = m.eom({});
  REQUIRE(v.act == Act::Continue);
  REQUIRE(v.quarantine.has_value());
  CHECK(*v.quarantine == "rampart: recipient <x@gmail.com> excluded (consumer-webmail)");
  CHECK(v.delete_rcpts == std::vector<std::string>{"gone@example.com"});
  CHECK_FALSE(v.discard_all);

  Message all(test_rules(), nullptr, {});
  REQUIRE(all.mail(cn, "a@send.example.net", "").act == Act::Continue);
  all.rcpt("<gone@example.com>");
  all.rcpt("<gone2@example.com>");
  all.header("From", "a@send.example.net");
  CHECK(all.eom({}).discard_all);
}

TEST_CASE("Message::mail: no stream is accepted or tempfailed per on_no_stream") {
  const auto cn = conn(9999, "192.0.2.1");
  Message accept(test_rules(), nullptr, {OnUnsigned::Tempfail, OnNoStream::Accept});
  CHECK(accept.mail(cn, "a@example.com", "").act == Act::Continue);
  Message tempfail(test_rules(), nullptr, {OnUnsigned::Tempfail, OnNoStream::Tempfail});
  const auto v = tempfail.mail(cn, "a@example.com", "");
  CHECK(v.act == Act::Tempfail);
  CHECK(v.reply.code == "451");
  CHECK(v.reply.status == "4.7.1");
}

TEST_CASE("header helpers: From address, DKIM d=, alignment, Message-ID host, reply text") {
  CHECK(from_address("\"News, Daily\" <News@Send.Example.NET>") == "news@send.example.net");
  CHECK(from_address("a@example.com (Alice)") == "a@example.com");
  CHECK(from_address("a@example.com, b@example.com") == "");
  CHECK(from_address("undisclosed") == "");
  CHECK(from_address("<unterminated@example.com") == "");
  CHECK(dkim_domain("v=1; a=rsa-sha256;\r\n\td = Send.Example.NET ; s=lab") == "send.example.net");
  CHECK(dkim_domain("v=1; s=lab") == "");
  CHECK(aligned("example.net", "send.example.net"));
  CHECK(aligned("send.example.net", "example.net"));
  CHECK_FALSE(aligned("net", "example.net"));
  CHECK_FALSE(aligned("ample.net", "example.net"));
  CHECK(message_id_host("<a.b@LocalHost.LocalDomain>") == "localhost.localdomain");
  CHECK(message_id_host("no-at-sign") == "");
  CHECK(reply_safe("100% sure\r\nnext") == "100%% sure  next");
}

TEST_CASE("Message::mail: a missing {daemon_port} is a 4xx when streams select on ports") {
  const Connection no_port{std::nullopt, "smtpd", "172.18.0.5", "client.example"};
  Message m(test_rules(), nullptr, {});
  const auto v = m.mail(no_port, "news@send.example.net", "");
  CHECK(v.act == Act::Tempfail);
  CHECK(v.reply.status == "4.3.5");
  REQUIRE(v.events.size() == 1);
  CHECK(v.events[0].fields.find("rule=macro-missing") != std::string::npos);
}
