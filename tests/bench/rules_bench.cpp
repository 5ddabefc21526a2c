// Hot-path lookups of the compiled RuleSet: exclusion lookup per recipient (10,000 domains; a mix
// of hits, subdomain hits and misses) and stream resolution. The peer measured in the same run
// is the obvious implementation: std::unordered_set<std::string> walked parent by parent with
// a lower-cased copy, which is what a quick milter would do. Run: tests/bench/run.sh
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "core/ruleset.hpp"
#include "core/text.hpp"

namespace {

using namespace rampart::core;

constexpr int kDomains = 10000;

std::string domain_name(int i) {
  return fmt::format("d{}x{}.example-{}.test", i, i * 7919 % 1000, i % 37);
}

std::shared_ptr<const RuleSet> make_rules() {
  RulesSpec spec;
  StreamSpec bulk;
  bulk.name = "bulk";
  bulk.ports = {25};
  bulk.clients = {"172.18.0.0/16"};
  StreamSpec inst;
  inst.name = "institutional";
  inst.ports = {2526};
  inst.clients = {"172.18.0.0/16", "2001:db8::/32"};
  StreamSpec sub;
  sub.name = "submission";
  sub.ports = {587};
  sub.sasl_users = {"app1", "app2"};
  StreamSpec by_sender;
  by_sender.name = "transactional";
  by_sender.ports = {25};
  by_sender.senders = {"@tx.example.net", "alerts@example.org"};
  spec.streams = {bulk, inst, sub, by_sender};
  ExclusionSpec ex;
  ex.category = "bench";
  ex.streams = std::vector<std::string>{"*"};
  for (int i = 0; i < kDomains; ++i) ex.domains.push_back(domain_name(i));
  for (int i = 0; i < 100; ++i) ex.addresses.push_back(fmt::format("person{}@example.com", i));
  spec.exclusions = {ex};
  auto rs = RuleSet::compile(std::move(spec));
  if (!rs) throw std::runtime_error(rs.error().what);
  return *rs;
}

// One third exact-domain hits, one third subdomain hits (mixed case, trailing dot), one third
// misses.
std::vector<std::string> make_recipients() {
  std::mt19937 rng(42);
  std::vector<std::string> out;
  for (int i = 0; i < 3000; ++i) {
    const int d = static_cast<int>(rng() % kDomains);
    switch (i % 3) {
      case 0: out.push_back(fmt::format("user{}@{}", i, domain_name(d))); break;
      case 1: out.push_back(fmt::format("User{}@Mail.EU.{}.", i, domain_name(d))); break;
      default: out.push_back(fmt::format("user{}@mx{}.other-{}.example.org", i, d, i % 91)); break;
    }
  }
  return out;
}

void BM_exclusion_lookup_rampart(benchmark::State& state) {
  const auto rules = make_rules();
  const auto recipients = make_recipients();
  const StreamSpec* stream = rules->stream("bulk");
  std::size_t i = 0, hits = 0;
  for (auto _ : state) {
    auto hit = rules->find_exclusion(stream, recipients[i]);
    hits += hit.has_value() ? 1 : 0;
    benchmark::DoNotOptimize(hit);
    if (++i == recipients.size()) i = 0;
  }
  state.counters["hit_ratio"] = static_cast<double>(hits) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_exclusion_lookup_rampart);

// The peer: lower-cased copy, strip the dot, then unordered_set lookups of each parent.
void BM_exclusion_lookup_naive_unordered_set(benchmark::State& state) {
  std::unordered_set<std::string> domains;
  for (int i = 0; i < kDomains; ++i) domains.insert(domain_name(i));
  std::unordered_set<std::string> addresses;
  for (int i = 0; i < 100; ++i) addresses.insert(fmt::format("person{}@example.com", i));
  const auto recipients = make_recipients();
  std::size_t i = 0, hits = 0;
  for (auto _ : state) {
    std::string r = ascii_lower(recipients[i]);
    if (!r.empty() && r.back() == '.') r.pop_back();
    bool hit = addresses.count(r) != 0;
    std::string_view d = std::string_view(r).substr(r.rfind('@') + 1);
    while (!hit) {
      if (domains.count(std::string(d)) != 0) hit = true;
      const auto dot = d.find('.');
      if (dot == std::string_view::npos) break;
      d.remove_prefix(dot + 1);
    }
    hits += hit ? 1 : 0;
    benchmark::DoNotOptimize(hit);
    if (++i == recipients.size()) i = 0;
  }
  state.counters["hit_ratio"] = static_cast<double>(hits) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_exclusion_lookup_naive_unordered_set);

void BM_stream_resolution(benchmark::State& state) {
  const auto rules = make_rules();
  const StreamQuery queries[] = {
      {25, "172.18.3.4", "bounce@send.example.net", ""},
      {2526, "2001:db8::7", "x@send.example.org", ""},
      {587, "198.51.100.7", "app@example.org", "app2"},
      {25, "198.51.100.9", "alerts@example.org", ""},
      {25, "192.0.2.1", "nobody@example.com", ""},
  };
  std::size_t i = 0, found = 0;
  for (auto _ : state) {
    const StreamSpec* s = rules->resolve_stream(queries[i]);
    found += s != nullptr ? 1 : 0;
    benchmark::DoNotOptimize(s);
    if (++i == std::size(queries)) i = 0;
  }
  state.counters["resolved_ratio"] =
      static_cast<double>(found) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_stream_resolution);

}  // namespace

BENCHMARK_MAIN();
