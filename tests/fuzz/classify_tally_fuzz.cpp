// libFuzzer harness for the classify engine: arbitrary bytes as a log (lines split at \n), fed
// through the line parser into a Tally over the shipped reply table and operators plus two
// streams, then take(). Must never crash, hang or throw; every count must add up (deliveries =
// the aggregates' total; no line lost from the summary), every string it hands the store must
// be valid UTF-8 of bounded size, and feeding the lines in parts over three Tallies (as the
// two-thread reader does) must count what feed() counts.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/classify.hpp"
#include "core/ruleset.hpp"
#include "core/text.hpp"
#include "maillog/line.hpp"
#include "maillog/tally.hpp"
#include "rules/reader.hpp"

namespace {

using namespace rampart;

struct Rules {
  std::shared_ptr<const core::RuleSet> set;
  std::unique_ptr<core::Classifier> classifier;
};

const Rules& shipped_rules() {
  static const Rules r = [] {
    const std::string dir = std::string(RAMPART_SOURCE_DIR) + "/packaging/rules/";
    auto spec = rules::load_files({dir + "classify.toml", dir + "operators.toml"});
    if (!spec) std::abort();
    auto extra = rules::parse(
        "[[stream]]\nname = \"bulk\"\nports = [25]\ntransport = \"out05\"\n"
        "egress_ip = \"203.0.113.94\"\n[[stream]]\nname = \"notify\"\nports = [587]\n"
        "transport = \"out07\"\negress_ip = \"203.0.113.96\"\n",
        "fuzz.toml");
    if (!extra || !core::merge_into(*spec, std::move(extra->spec))) std::abort();
    auto set = core::RuleSet::compile(*spec);
    if (!set) std::abort();
    auto cl = core::Classifier::compile((*set)->spec().classify);
    if (!cl) std::abort();
    return Rules{*set, std::make_unique<core::Classifier>(std::move(*cl))};
  }();
  return r;
}

void utf8(const std::string& s, std::size_t max) {
  if (s.size() > max || core::utf8_clean(s) != s) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& r = shipped_rules();
  maillog::Tally tally(*r.set, *r.classifier, 64);
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const maillog::Clock clock{1781006400, 0};
  // The same lines the way `rampart classify` reads a file on two threads: every other line
  // counted by one of two Census objects, the stamps (in runs) and the stateful lines by a
  // shared Tally.
  maillog::Tally shared(*r.set, *r.classifier, 64);
  maillog::Census census[2];
  maillog::StampRun stamps;
  std::size_t in_run = 0;
  maillog::ParsedLine reused;
  std::size_t pos = 0, lines = 0;
  while (pos < in.size()) {
    auto nl = in.find('\n', pos);
    if (nl == std::string_view::npos) nl = in.size();
    const auto line = in.substr(pos, nl - pos);
    const auto parsed = maillog::parse_line(line, clock);
    tally.feed(parsed);
    maillog::parse_line(line, clock, reused);  // over whatever the line before left in it
    if (reused.kind != parsed.kind || reused.event != parsed.event ||
        reused.dated != parsed.dated || reused.header.time != parsed.header.time ||
        reused.queue_id != parsed.queue_id ||
        reused.delivery.has_value() != parsed.delivery.has_value())
      std::abort();
    if (reused.dated) {
      stamps.add(reused.header.time);
    } else {
      stamps.add_undated();
    }
    if (++in_run == 7) {
      shared.count_lines(stamps);
      stamps.clear();
      in_run = 0;
    }
    census[lines % 2].count(reused);
    if (maillog::Tally::stateful(reused)) shared.feed_state(reused);
    ++lines;
    pos = nl + 1;
  }
  shared.count_lines(stamps);
  shared.add_census(census[0]);
  shared.add_census(census[1]);
  const auto& s = tally.summary();
  const auto& split = shared.summary();
  if (split.lines != s.lines || split.postfix != s.postfix || split.unparsed != s.unparsed ||
      split.other_program != s.other_program || split.backwards != s.backwards ||
      split.first_time != s.first_time || split.last_time != s.last_time ||
      split.deliveries != s.deliveries || split.sent != s.sent || split.anomalies != s.anomalies ||
      split.unparsed_by_reason != s.unparsed_by_reason)
    std::abort();
  if (s.lines != static_cast<std::int64_t>(lines)) std::abort();
  if (s.postfix + s.other_program + s.unparsed != s.lines) std::abort();
  if (s.sent + s.deferred + s.bounced + s.expired != s.deliveries) std::abort();
  if (tally.tracked_messages() > 64) std::abort();
  const auto b = tally.take();
  const auto bs = shared.take();
  if (b.aggregates.size() != bs.aggregates.size()) std::abort();
  for (std::size_t i = 0; i < b.aggregates.size(); ++i) {
    const auto &x = b.aggregates[i], &y = bs.aggregates[i];
    if (x.key < y.key || y.key < x.key || x.count != y.count) std::abort();
  }
  std::int64_t total = 0;
  for (const auto& a : b.aggregates) {
    total += a.count;
    utf8(a.sample, core::kSampleMax);
  }
  if (total != s.deliveries) std::abort();
  for (const auto& a : b.anomalies) {
    utf8(a.subject, 4096);
    utf8(a.detail, 1 << 20);
  }
  for (const auto& a : b.addresses) {
    utf8(a.address, 1024);
    utf8(a.reply, core::kSampleMax);
  }
  return 0;
}
