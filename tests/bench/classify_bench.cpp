// The reply classifier over the shipped packaging/rules/classify.toml: one RE2::Set pass (the
// prefilter) against trying each rule's RE2 in order, on the same lines in the same run: a
// delivery mix, replies that hit a late rule, and replies no rule matches (the fallback path,
// which is most of an unknown operator's replies). Run: tests/bench/run.sh
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "core/classify.hpp"
#include "rules/reader.hpp"

namespace {

using rampart::core::Classifier;

const Classifier& shipped() {
  static const Classifier c = [] {
    const std::string dir = std::string(RAMPART_SOURCE_DIR) + "/packaging/rules/";
    auto spec = rampart::rules::load_files({dir + "classify.toml"});
    if (!spec) throw std::runtime_error(spec.error().what);
    auto cl = Classifier::compile(spec->classify);
    if (!cl) throw std::runtime_error(cl.error().what);
    return std::move(*cl);
  }();
  return c;
}

struct Line {
  std::string reply, dsn;
};

std::vector<Line> lines(int kind) {
  const Line accepted{"250 2.0.0 OK  1718000000 d2e1a72fcca58-70af1b2c3d4si1234567b3a.123 - gsmtp",
                      ""};
  const Line busy{
      "451 4.7.500 Server busy. Please try again later from [203.0.113.94]. (S77719) "
      "[BN8NAM12FT045.eop-nam12.prod.protection.outlook.com 2026-06-09T08:50:20.123Z]",
      ""};
  const Line unknown{
      "550 5.1.1 <ana@example.org>: Recipient address rejected: User unknown in "
      "virtual mailbox table",
      ""};
  const Line timeout{"connect to mx1.example.net[192.0.2.25]:25: Connection timed out", "4.4.1"};
  const Line late{"550 5.7.1 Message rejected due to local policy, see https://example.net/policy",
                  ""};
  const Line none{
      "452 4.5.0 mx1.example.net temporary problem with the recipient's mail server, "
      "queue id 4Vd5Xy0AbCz",
      ""};
  const Line none5{"554 5.6.0 Message has a malformed MIME structure that we do not accept here",
                   ""};
  switch (kind) {
    case 0: {  // the delivery mix: mostly accepted, the field notes' throttles and bounces
      std::vector<Line> v(70, accepted);
      v.insert(v.end(), 12, busy);
      v.insert(v.end(), 6, unknown);
      v.insert(v.end(), 4, timeout);
      v.insert(v.end(), 4, late);
      v.insert(v.end(), 4, none);
      return v;
    }
    case 1: return {late};
    default: return {none, none5};
  }
}

void run(benchmark::State& state, bool linear) {
  const auto& cl = shipped();
  const auto v = lines(static_cast<int>(state.range(0)));
  std::size_t i = 0;
  for (auto _ : state) {
    const auto& l = v[i++ % v.size()];
    auto r = linear ? cl.classify_linear(l.reply, l.dsn) : cl.classify(l.reply, l.dsn);
    benchmark::DoNotOptimize(r);
  }
  state.SetLabel(state.range(0) == 0 ? "mix" : state.range(0) == 1 ? "late-rule" : "no-rule");
}

void BM_classify_set(benchmark::State& s) { run(s, false); }
void BM_classify_linear(benchmark::State& s) { run(s, true); }
BENCHMARK(BM_classify_set)->Arg(0)->Arg(1)->Arg(2);
BENCHMARK(BM_classify_linear)->Arg(0)->Arg(1)->Arg(2);

}  // namespace

BENCHMARK_MAIN();
