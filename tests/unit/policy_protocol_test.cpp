// The Postfix policy protocol codec (policyd/core/protocol.hpp): pipelining, requests split
// across reads, limits, malformed input. Pure.
#include <doctest/doctest.h>

#include <string>

#include "policyd/core/protocol.hpp"

using namespace rampart::policyd;

namespace {

// What Postfix 3.7 sends at RCPT (SMTPD_POLICY_README), abridged to the attributes we read.
std::string request(const std::string& rcpt, const std::string& queue_id = "") {
  return "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
         "client_address=172.18.0.5\nclient_name=unknown\nserver_port=25\n"
         "sender=news@send.example.net\nrecipient=" +
         rcpt + "\nrecipient_count=0\nqueue_id=" + queue_id +
         "\ninstance=a1b2.6f1c2d3e.1\nsasl_username=\n\n";
}

}  // namespace

TEST_CASE("parse_request: one request, attributes by name, unknown ones kept") {
  const auto text = request("a@contoso.example");
  const auto r = parse_request(text);
  REQUIRE(r.status == ParseStatus::Complete);
  CHECK(r.consumed == text.size());
  CHECK(r.request.get("recipient") == "a@contoso.example");
  CHECK(r.request.get("server_port") == "25");
  CHECK(r.request.get("queue_id") == "");
  CHECK(r.request.has("queue_id"));
  CHECK_FALSE(r.request.has("ccert_subject"));
  CHECK(r.request.get("ccert_subject") == "");
}

TEST_CASE("parse_request: pipelined requests are taken one at a time") {
  const auto text = request("a@contoso.example") + request("b@fabrikam.example", "4F1A2B3C");
  const auto first = parse_request(text);
  REQUIRE(first.status == ParseStatus::Complete);
  CHECK(first.request.get("recipient") == "a@contoso.example");
  const auto second = parse_request(std::string_view(text).substr(first.consumed));
  REQUIRE(second.status == ParseStatus::Complete);
  CHECK(second.request.get("recipient") == "b@fabrikam.example");
  CHECK(second.request.get("queue_id") == "4F1A2B3C");
  CHECK(first.consumed + second.consumed == text.size());
}

TEST_CASE("parse_request: a request split anywhere needs more until its empty line") {
  const auto text = request("a@contoso.example");
  for (std::size_t cut = 0; cut < text.size(); ++cut) {
    INFO("cut at " << cut);
    CHECK(parse_request(std::string_view(text).substr(0, cut)).status == ParseStatus::NeedMore);
  }
  CHECK(parse_request(text).status == ParseStatus::Complete);
}

TEST_CASE("parse_request: malformed or oversize requests are Invalid with a reason") {
  Limits small;
  small.max_line = 64;
  small.max_attributes = 4;
  small.max_request = 256;
  struct Case {
    const char* label;
    std::string text;
    const char* want;
  };
  const Case cases[] = {
      {"no '='", "request=smtpd_access_policy\ngarbage\n\n", "line 2: no '='"},
      {"bad name", "request=smtpd_access_policy\nBad Name=x\n\n", "line 2: bad attribute name"},
      {"repeated attribute", "request=smtpd_access_policy\nsender=a\nsender=b\n\n",
       "attribute \"sender\" repeated"},
      {"empty request", "\n", "line 1: empty request"},
      {"wrong request type", "request=junk\nsender=a\n\n", "want smtpd_access_policy"},
      {"missing request type", "sender=a\n\n", "want smtpd_access_policy"},
      {"line too long, complete",
       "request=smtpd_access_policy\nx=" + std::string(100, 'y') + "\n\n",
       "line 2: longer than 64"},
      {"line too long, still arriving", "request=smtpd_access_policy\nx=" + std::string(100, 'y'),
       "line 2: longer than 64"},
      {"too many attributes", "request=smtpd_access_policy\na=1\nb=2\nc=3\nd=4\n\n",
       "more than 4 attributes"},
      {"endless request with short lines",
       std::string("request=smtpd_access_policy\n") + std::string(300, 'x'), "longer than"},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.label));
    const auto r = parse_request(c.text, small);
    CHECK(r.status == ParseStatus::Invalid);
    CHECK_MESSAGE(r.error.find(c.want) != std::string::npos, r.error);
  }
}

TEST_CASE("parse_request: a request over max_request is Invalid even with short lines") {
  Limits limits;
  limits.max_line = 200;
  limits.max_request = 256;
  std::string text = "request=smtpd_access_policy\n";
  for (int i = 0; i < 10; ++i) text += "a" + std::to_string(i) + "=" + std::string(40, 'v') + "\n";
  const auto r = parse_request(text, limits);
  CHECK(r.status == ParseStatus::Invalid);
  CHECK_MESSAGE(r.error.find("request longer than 256 bytes") != std::string::npos, r.error);
  // With room for it, the same request parses.
  limits.max_request = 4096;
  CHECK(parse_request(text + "\n", limits).status == ParseStatus::Complete);
}

TEST_CASE("parse_request: CRLF line ends are tolerated; values keep '=' and spaces") {
  const auto r = parse_request("request=smtpd_access_policy\r\nccert_subject=CN=a b\r\n\r\n");
  REQUIRE(r.status == ParseStatus::Complete);
  CHECK(r.request.get("ccert_subject") == "CN=a b");
}

TEST_CASE("format_reply: one action line and the empty line; no injection") {
  CHECK(format_reply("DUNNO") == "action=DUNNO\n\n");
  CHECK(format_reply("DEFER_IF_PERMIT 4.7.1 x\n\naction=OK") ==
        "action=DEFER_IF_PERMIT 4.7.1 x  action=OK\n\n");
}

TEST_CASE("parse_request: a result parsed into again holds only the new request") {
  ParseResult r;
  const auto first = request("a@contoso.example", "4F1A2B3C");
  parse_request(first, Limits{}, r);
  REQUIRE(r.status == ParseStatus::Complete);
  CHECK(r.request.get("queue_id") == "4F1A2B3C");

  const std::string bad = "request=smtpd_access_policy\nsender=a\nsender=b\n\n";
  parse_request(bad, Limits{}, r);
  CHECK(r.status == ParseStatus::Invalid);
  CHECK(r.consumed == 0);
  CHECK(r.error.find("repeated") != std::string::npos);

  const auto partial = request("b@fabrikam.example").substr(0, 40);
  parse_request(partial, Limits{}, r);
  CHECK(r.status == ParseStatus::NeedMore);
  CHECK(r.error.empty());
  CHECK(r.request.attributes.empty());

  const std::string other = "request=smtpd_access_policy\nrecipient=c@example.org\n\n";
  parse_request(other, Limits{}, r);
  REQUIRE(r.status == ParseStatus::Complete);
  CHECK(r.consumed == other.size());
  CHECK(r.error.empty());
  CHECK(r.request.attributes.size() == 2);
  CHECK(r.request.get("recipient") == "c@example.org");
  CHECK_FALSE(r.request.has("queue_id"));
}

TEST_CASE("parse_request: a repeat is found among many names, and only a repeat") {
  struct Case {
    std::string_view label;
    std::string repeat;  // appended as one more line; "" for none
    ParseStatus want;
  };
  const Case cases[] = {
      {"99 distinct names (request, n0 to n97)", "", ParseStatus::Complete},
      {"the first name again", "n0=x", ParseStatus::Invalid},
      {"a middle name again", "n57=x", ParseStatus::Invalid},
      {"the last name again", "n97=x", ParseStatus::Invalid},
      {"request again", "request=smtpd_access_policy", ParseStatus::Invalid},
      {"a prefix of a name is another name", "n9_=x", ParseStatus::Complete},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    std::string text = "request=smtpd_access_policy\n";
    for (int i = 0; i < 98; ++i) text += "n" + std::to_string(i) + "=v\n";
    if (!c.repeat.empty()) text += c.repeat + "\n";
    text += "\n";
    const auto r = parse_request(text);
    CHECK(r.status == c.want);
    if (c.want == ParseStatus::Invalid) CHECK(r.error.find("repeated") != std::string::npos);
  }
}
