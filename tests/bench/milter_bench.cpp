// rampart-milter's decision core, per recipient and per message (issue 3 target: under 2 us
// per recipient). The peer measured in the same run is the bare RuleSet lookup the recipient
// decision wraps, so the ratio is the core's own overhead. Run: tests/bench/run.sh
#include <benchmark/benchmark.h>

#include <fmt/format.h>

#include "milter/core/message.hpp"
#include "rules/reader.hpp"

namespace {

using namespace rampart;

std::shared_ptr<const core::RuleSet> make_rules() {
  std::string text = R"(
[[stream]]
name = "bulk"
ports = [25]
clients = ["172.18.0.0/16"]
transport = "out05"
from_domains = ["send.example.net"]
[[exclusion]]
category = "bench"
streams = ["*"]
domains = [
)";
  for (int i = 0; i < 10000; ++i) text += fmt::format("\"d{}x.example-{}.test\",\n", i, i % 37);
  text += "]\n";
  auto p = rules::parse(text, "bench.toml");
  if (!p) throw std::runtime_error(p.error().what);
  auto c = core::RuleSet::compile(std::move(p->spec));
  if (!c) throw std::runtime_error(c.error().what);
  return *c;
}

const std::vector<std::string>& recipients() {
  static const std::vector<std::string> r = [] {
    std::vector<std::string> out;
    for (int i = 0; i < 999; ++i) {
      out.push_back(i % 3 == 0   ? fmt::format("<u{}@d{}x.example-{}.test>", i, i * 7 % 10000,
                                               (i * 7 % 10000) % 37)
                    : i % 3 == 1 ? fmt::format("<u{}@mail.d{}x.example-{}.test>", i, i, i % 37)
                                 : fmt::format("<u{}@other{}.example.org>", i, i));
    }
    return out;
  }();
  return r;
}

void BM_milter_rcpt_decision(benchmark::State& state) {
  const auto rules = make_rules();
  const milter::Connection conn{25, "smtpd", "172.18.0.5", "client.example"};
  milter::Message m(rules, nullptr, {});
  m.mail(conn, "news@send.example.net", "");
  const auto& r = recipients();
  std::size_t i = 0;
  for (auto _ : state) {
    auto v = m.rcpt(r[i]);
    benchmark::DoNotOptimize(v);
    if (++i == r.size()) i = 0;
  }
}
BENCHMARK(BM_milter_rcpt_decision);

void BM_ruleset_lookup_only(benchmark::State& state) {
  const auto rules = make_rules();
  const auto* stream = rules->stream("bulk");
  const auto& r = recipients();
  std::size_t i = 0;
  for (auto _ : state) {
    auto v = rules->find_exclusion(stream, r[i]);
    benchmark::DoNotOptimize(v);
    if (++i == r.size()) i = 0;
  }
}
BENCHMARK(BM_ruleset_lookup_only);

// A whole message: MAIL, 3 RCPT, 6 headers, a 2-part body, end of message.
void BM_milter_message_decision(benchmark::State& state) {
  const auto rules = make_rules();
  const milter::Connection conn{25, "smtpd", "172.18.0.5", "client.example"};
  const std::string body =
      "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: "
      "text/html\r\n\r\n<p>hello</p>\r\n--b--\r\n";
  const auto& r = recipients();
  std::size_t i = 0;
  for (auto _ : state) {
    milter::Message m(rules, nullptr, {});
    m.mail(conn, "news@send.example.net", "");
    for (int k = 0; k < 3; ++k) {
      m.rcpt(r[i]);
      if (++i == r.size()) i = 0;
    }
    m.header("From", "News <news@send.example.net>");
    m.header("To", "someone@example.org");
    m.header("Subject", "Hello");
    m.header("Message-ID", "<abc.123@send.example.net>");
    m.header("Content-Type", "multipart/alternative; boundary=b");
    m.header("DKIM-Signature", "v=1; a=rsa-sha256; d=send.example.net; s=lab; h=from; bh=x; b=y");
    m.body(body);
    auto v = m.eom({});
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_milter_message_decision);

}  // namespace

BENCHMARK_MAIN();
