// Corpus test for the maillog line parser: every line of the real logs in
// ../shared/corpus/postfix-logs, read in place. pixelpark's production mail.log must give the same
// sent/deferred/bounced totals (content-filter hops excluded) as an independent substring count;
// every `status=` line of the other logs must parse as a delivery (or qmgr expiry). Prints the
// counts by kind and by reason. Every remote delivery is also classified by the shipped
// packaging/rules/classify.toml, and its outcome must agree with its status (sent: accepted;
// bounced: a reject; deferred: never accepted); and the whole classify engine (Tally) over
// pixelpark must give the independent totals too. Exit 0 pass, 1 fail, 77 when the corpus is
// absent.
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/classify.hpp"
#include "core/ruleset.hpp"
#include "maillog/line.hpp"
#include "maillog/tally.hpp"
#include "rules/reader.hpp"

namespace fs = std::filesystem;
using namespace rampart::maillog;

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::cout << "FAIL: " << what << "\n";
  }
}

std::vector<std::string> read_lines(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The reference for year-less stamps: the corpus files' dates do not matter here, only that
// parsing succeeds; 2026-01-01T00:00:00Z.
constexpr Clock kClock{1767225600, 0};

struct Shipped {
  std::shared_ptr<const rampart::core::RuleSet> rules;
  std::unique_ptr<rampart::core::Classifier> classifier;
};
const Shipped& shipped() {
  static const Shipped s = [] {
    const std::string dir = std::string(RAMPART_SOURCE_DIR) + "/packaging/rules/";
    auto spec = rampart::rules::load_files({dir + "classify.toml", dir + "operators.toml"});
    if (!spec) throw std::runtime_error(spec.error().what);
    auto set = rampart::core::RuleSet::compile(*spec);
    if (!set) throw std::runtime_error(set.error().what);
    auto cl = rampart::core::Classifier::compile((*set)->spec().classify);
    if (!cl) throw std::runtime_error(cl.error().what);
    return Shipped{*set, std::make_unique<rampart::core::Classifier>(std::move(*cl))};
  }();
  return s;
}

std::map<std::string, long> g_rules;  // rule id -> remote deliveries it classified

// The shipped table's verdict on one delivery must agree with what Postfix did with it.
void classify(const Delivery& d, std::string_view where) {
  using rampart::core::Outcome;
  if (d.hop != Hop::Remote) return;
  const auto* op = shipped().rules->operator_for_host(d.relay_host);
  const auto c = shipped().classifier->classify(remote_reply(d.text), d.enhanced_status,
                                                op != nullptr ? op->name : std::string_view{});
  ++g_rules[c.rule->id];
  const bool reject = c.outcome != Outcome::Accepted && c.outcome != Outcome::Throttled &&
                      c.outcome != Outcome::DeferredOther;
  bool ok = true;
  if (d.status == Status::Sent) ok = c.outcome == Outcome::Accepted;
  if (d.status == Status::Bounced) ok = reject;
  if (d.status == Status::Deferred) ok = c.outcome != Outcome::Accepted;
  expect(ok, std::string(where) + ": " + std::string(to_string(d.status)) + " classified " +
                 std::string(rampart::core::to_string(c.outcome)) + " by " + c.rule->id + ": " +
                 std::string(d.text.substr(0, 160)));
}

struct Tally {
  std::map<std::string, long> by_reason;   // kind, or "malformed: <why>"
  std::map<std::string, long> deliveries;  // "<hop>/<status>"
  long lines = 0;
  long status_lines = 0;     // lines holding "status=" (substring)
  long status_unparsed = 0;  // ... that are neither Delivery nor MessageExpired
  long exceptions = 0;
};

void count(Tally& t, std::string_view line, const ParsedLine& p) {
  ++t.lines;
  if (p.kind == Kind::Malformed) {
    ++t.by_reason[std::string("malformed: ") + std::string(p.why)];
  } else {
    ++t.by_reason[std::string(to_string(p.kind))];
  }
  if (p.kind == Kind::Delivery) {
    classify(*p.delivery, "line");
    ++t.deliveries[std::string(to_string(p.delivery->hop)) + "/" +
                   std::string(to_string(p.delivery->status))];
  }
  if (line.find("status=") != std::string_view::npos) {
    ++t.status_lines;
    if (p.kind != Kind::Delivery && p.kind != Kind::MessageExpired) {
      ++t.status_unparsed;
      std::cout << "  unparsed status= line (" << to_string(p.kind) << " " << p.why
                << "): " << line.substr(0, 200) << "\n";
    }
  }
}

void print(const std::string& name, const Tally& t) {
  std::cout << name << ": " << t.lines << " lines, " << t.status_lines << " with status=\n";
  for (const auto& [k, v] : t.by_reason) std::cout << "  kind " << k << ": " << v << "\n";
  for (const auto& [k, v] : t.deliveries) std::cout << "  delivery " << k << ": " << v << "\n";
}

Tally parse_file(const fs::path& p, bool skip_comments) {
  Tally t;
  for (const auto& line : read_lines(p)) {
    if (skip_comments && (line.empty() || line.front() == '#')) continue;
    try {
      count(t, line, parse_line(line, kClock));
    } catch (const std::exception& e) {
      ++t.exceptions;
      std::cout << "  exception " << e.what() << "\n";
    }
  }
  return t;
}

// The independent count: whitespace-split the syslog line, keep smtp/lmtp tags, look for
// " status=<word> " and a relay that is not loopback or a unix socket. No parser code involved.
struct Independent {
  long sent = 0, deferred = 0, bounced = 0;
};
Independent independent_count(const std::vector<std::string>& lines) {
  Independent n;
  for (const auto& line : lines) {
    // fields: 0 stamp, 1 host, 2 tag
    std::size_t a = line.find(' ');
    if (a == std::string::npos) continue;
    std::size_t b = line.find(' ', a + 1);
    if (b == std::string::npos) continue;
    std::size_t c = line.find(' ', b + 1);
    if (c == std::string::npos) continue;
    const std::string tag = line.substr(b + 1, c - b - 1);
    if (tag.rfind("postfix", 0) != 0) continue;
    if (tag.find("/smtp[") == std::string::npos && tag.find("/lmtp[") == std::string::npos)
      continue;
    const auto r = line.find(" relay=");
    if (r == std::string::npos) continue;
    const std::string relay = line.substr(r + 7, line.find(',', r) - r - 7);
    if (relay.find("[127.") != std::string::npos || relay.find("[::1]") != std::string::npos ||
        relay.find("[private/") != std::string::npos || relay.find("[public/") != std::string::npos)
      continue;
    if (line.find(" status=sent ") != std::string::npos) ++n.sent;
    if (line.find(" status=deferred ") != std::string::npos) ++n.deferred;
    if (line.find(" status=bounced ") != std::string::npos) ++n.bounced;
  }
  return n;
}

long get(const std::map<std::string, long>& m, const std::string& k) {
  const auto it = m.find(k);
  return it == m.end() ? 0 : it->second;
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path root = argc > 1 ? argv[1] : "../shared/corpus/postfix-logs";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    std::cout << "corpus not found at " << root << ": skipped (set RAMPART_CORPUS_DIR)\n";
    return 77;
  }

  // 1. pixelpark: the real production log.
  const auto pix = root / "pixelpark-postfix-logsums" / "mail.log";
  if (fs::exists(pix)) {
    const auto t = parse_file(pix, false);
    print("pixelpark mail.log", t);
    const auto n = independent_count(read_lines(pix));
    std::cout << "  independent: sent=" << n.sent << " deferred=" << n.deferred
              << " bounced=" << n.bounced << "\n";
    expect(t.exceptions == 0, "pixelpark: no exceptions");
    expect(get(t.deliveries, "remote/sent") == n.sent, "pixelpark: remote sent == independent");
    expect(get(t.deliveries, "remote/deferred") == n.deferred,
           "pixelpark: remote deferred == independent");
    expect(get(t.deliveries, "remote/bounced") == n.bounced,
           "pixelpark: remote bounced == independent");
    expect(n.sent + n.bounced > 0, "pixelpark: the independent count found deliveries");
    expect(t.status_unparsed == 0, "pixelpark: every status= line parsed");
    long accounted = 0;
    for (const auto& [k, v] : t.by_reason) accounted += v;
    expect(accounted == t.lines, "pixelpark: every line parsed or counted by reason");
    // The classify engine end to end: the same totals, every line accounted for.
    rampart::maillog::Tally engine(*shipped().rules, *shipped().classifier);
    for (const auto& line : read_lines(pix)) engine.feed(parse_line(line, kClock));
    const auto& sum = engine.summary();
    std::cout << "  engine: deliveries=" << sum.deliveries << " sent=" << sum.sent
              << " deferred=" << sum.deferred << " bounced=" << sum.bounced
              << " filter_hops=" << sum.filter_hops << " local_hops=" << sum.local_hops
              << " unparsed=" << sum.unparsed << "\n";
    expect(sum.sent == n.sent && sum.deferred == n.deferred && sum.bounced == n.bounced,
           "pixelpark: engine totals == independent");
    expect(sum.postfix + sum.other_program + sum.unparsed == sum.lines,
           "pixelpark: engine accounts for every line");
    long aggregated = 0;
    for (const auto& a : engine.take().aggregates) aggregated += a.count;
    expect(aggregated == sum.deliveries, "pixelpark: aggregates add up to the deliveries");
  } else {
    std::cout << "pixelpark mail.log absent: skipped that part\n";
  }

  // 2. Other syslog-form logs: every status= line is a delivery (or qmgr's expiry).
  const std::pair<const char*, bool> logs[] = {
      {"fail2ban/postfix.log", true},  // "# failJSON:" annotation lines between log lines
      {"kumina-postfix_exporter/postfix_exporter_test_lines.log", false},
      {"vignemail1-pflogsumm-go/sample.log", false},
      {"vignemail1-pflogsumm-go/rfc3339.log", false},
      {"youyo-postfix-log-parser/test.log", false},
      {"youyo-postfix-log-parser/test-iso8601.log", false},
  };
  for (const auto& [rel, comments] : logs) {
    const auto p = root / rel;
    if (!fs::exists(p)) {
      std::cout << rel << " absent: skipped\n";
      continue;
    }
    const auto t = parse_file(p, comments);
    print(rel, t);
    expect(t.exceptions == 0, std::string(rel) + ": no exceptions");
    expect(t.status_unparsed == 0, std::string(rel) + ": every status= line parsed");
  }

  // 3. whyscream's grok tests: "<daemon>_NNNN.yaml<TAB><message>", no syslog prefix. The daemon
  // in the label is the service; status= lines go through parse_delivery().
  const auto grok = root / "whyscream-postfix-grok-patterns" / "grok_test_messages.txt";
  if (fs::exists(grok)) {
    long status_lines = 0, parsed = 0, expiries = 0;
    std::map<std::string, long> by_hop;
    for (const auto& line : read_lines(grok)) {
      const auto tab = line.find('\t');
      if (tab == std::string::npos || line.find("status=") == std::string::npos) continue;
      ++status_lines;
      const std::string_view msg = std::string_view(line).substr(tab + 1);
      const std::string service = line.substr(0, line.find('_'));
      if (service == "qmgr" && msg.find(": from=") != std::string_view::npos) {
        ++expiries;  // qmgr's message-level "from=<>, status=expired, returned to sender"
        continue;
      }
      std::string_view why;
      const auto d = parse_delivery(msg, service, &why);
      if (d) {
        classify(*d, "grok");
        ++parsed;
        ++by_hop[std::string(to_string(d->hop)) + "/" + std::string(d->status_word)];
      } else {
        std::cout << "  unparsed grok status= line (" << why << "): " << line << "\n";
      }
    }
    std::cout << "whyscream grok messages: " << status_lines << " with status=, " << parsed
              << " deliveries, " << expiries << " qmgr expiries\n";
    for (const auto& [k, v] : by_hop) std::cout << "  delivery " << k << ": " << v << "\n";
    expect(parsed + expiries == status_lines, "grok: every status= message parsed");
  }

  std::cout << "classified remote deliveries by rule:\n";
  for (const auto& [id, n] : g_rules) std::cout << "  " << id << ": " << n << "\n";
  std::cout << (failures == 0 ? "corpus: ok" : "corpus: FAILED") << "\n";
  return failures == 0 ? 0 : 1;
}
