// rampart-dns-probe: resolves domains through rampart::dns::MxResolver exactly as policyd does,
// for the lab's DNS test (tests/lab/dns_test.sh). Test tooling only: it prints, nothing more.
//
// Usage: rampart-dns-probe [--server IP:PORT]... [--timeout-ms N] [--pause-ms N]
//                          [--cache-entries N] [--later DOMAIN]... DOMAIN...
//   Round 1 resolves every DOMAIN at once (concurrently; repeated domains share one lookup).
//   After --pause-ms (default 0), round 2 asks the cache first for each DOMAIN: a hit prints
//   cached=1, a miss resolves it again (cached=0); it also resolves each --later DOMAIN, asked
//   for the first time then. Each round prints, once every domain of it has answered, one line
//   per domain in argument order (the --later ones last):
//     round=R DOMAIN STATUS [mx=PREF:HOST,...] [implicit=0|1] ttl=S cached=0|1 ms=N [detail=TEXT]
//   STATUS is ok, nullmx, nxdomain, nomailhost or temporary; mx= and implicit= come with ok only;
//   ttl= is how long the answer is cached; ms= is the time from the round's start to the answer;
//   detail= (last, may hold spaces) is the resolver's detail when it has one. Finally:
//     stats hits=N misses=N timeouts=N errors=N
//   --server, --timeout-ms and --cache-entries set ResolverOptions servers, timeout and
//   max_entries.
// Exit status: 0 after printing, 1 when the resolver cannot be created, 2 for bad usage.
#include <utility>  // before Asio (STYLE.md section 8)

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "dns/resolver.hpp"

namespace {

using Clock = std::chrono::steady_clock;
namespace dns = rampart::dns;

struct Row {
  std::shared_ptr<const dns::MxAnswer> answer;
  bool cached = false;
  long long ms = 0;
};

std::string format_row(int round, std::string_view domain, const Row& row) {
  const auto& a = *row.answer;
  std::string line = fmt::format("round={} {} {}", round, domain, dns::to_string(a.status));
  if (a.status == dns::MxStatus::Ok) {
    std::string mx;
    for (const auto& h : a.hosts) {
      if (!mx.empty()) mx += ',';
      mx += fmt::format("{}:{}", h.preference, h.host);
    }
    line += fmt::format(" mx={} implicit={}", mx, a.implicit ? 1 : 0);
  }
  line += fmt::format(" ttl={} cached={} ms={}", a.ttl.count(), row.cached ? 1 : 0, row.ms);
  if (!a.detail.empty()) line += fmt::format(" detail={}", a.detail);
  return line;
}

bool parse_number(std::string_view text, long long& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size() && out >= 0;
}

int usage(std::string_view why) {
  std::fprintf(stderr,
               "rampart-dns-probe: %.*s\nusage: rampart-dns-probe [--server IP:PORT]... "
               "[--timeout-ms N] [--pause-ms N] [--cache-entries N] [--later DOMAIN]... "
               "DOMAIN...\n",
               static_cast<int>(why.size()), why.data());
  return 2;
}

class Probe {
 public:
  Probe(boost::asio::io_context& io, dns::MxResolver& resolver, std::vector<std::string> domains,
        std::vector<std::string> later, std::chrono::milliseconds pause)
      : resolver_(resolver),
        domains_(std::move(domains)),
        later_(std::move(later)),
        pause_(pause),
        timer_(io) {}

  void start() { run_round(1); }

 private:
  void run_round(int round) {
    if (round == 2) domains_.insert(domains_.end(), later_.begin(), later_.end());
    rows_.assign(domains_.size(), Row{});
    outstanding_ = domains_.size();
    started_ = Clock::now();
    for (std::size_t i = 0; i < domains_.size(); ++i) {
      if (round == 2) {
        if (auto hit = resolver_.cached(domains_[i])) {
          answered(round, i, std::move(hit), true);
          continue;
        }
      }
      resolver_.resolve(domains_[i], [this, round, i](std::shared_ptr<const dns::MxAnswer> a) {
        answered(round, i, std::move(a), false);
      });
    }
  }

  void answered(int round, std::size_t i, std::shared_ptr<const dns::MxAnswer> answer,
                bool cached) {
    rows_[i].answer = std::move(answer);
    rows_[i].cached = cached;
    rows_[i].ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_).count();
    if (--outstanding_ != 0) return;
    for (std::size_t j = 0; j < domains_.size(); ++j) {
      std::printf("%s\n", format_row(round, domains_[j], rows_[j]).c_str());
    }
    std::fflush(stdout);
    if (round == 1) {
      timer_.expires_after(pause_);
      timer_.async_wait([this](const boost::system::error_code&) { run_round(2); });
      return;
    }
    const auto s = resolver_.stats();
    std::printf("stats hits=%llu misses=%llu timeouts=%llu errors=%llu\n",
                static_cast<unsigned long long>(s.hits), static_cast<unsigned long long>(s.misses),
                static_cast<unsigned long long>(s.timeouts),
                static_cast<unsigned long long>(s.errors));
    std::fflush(stdout);
    resolver_.stop();  // nothing left to wait for: io.run() returns
  }

  dns::MxResolver& resolver_;
  std::vector<std::string> domains_;
  std::vector<std::string> later_;
  std::chrono::milliseconds pause_;
  boost::asio::steady_timer timer_;
  std::vector<Row> rows_;
  std::size_t outstanding_ = 0;
  Clock::time_point started_;
};

}  // namespace

int main(int argc, char** argv) {
  dns::ResolverOptions options;
  std::vector<std::string> domains;
  std::vector<std::string> later;
  long long pause_ms = 0;
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto arg = args[i];
    const bool has_value = i + 1 < args.size();
    long long n = 0;
    if (arg == "--server" && has_value) {
      options.servers.emplace_back(args[++i]);
    } else if (arg == "--timeout-ms" && has_value) {
      if (!parse_number(args[++i], n)) return usage("--timeout-ms wants milliseconds");
      options.timeout = std::chrono::milliseconds{n};
    } else if (arg == "--later" && has_value) {
      later.emplace_back(args[++i]);
    } else if (arg == "--cache-entries" && has_value) {
      if (!parse_number(args[++i], n)) return usage("--cache-entries wants a number");
      options.max_entries = static_cast<std::size_t>(n);
    } else if (arg == "--pause-ms" && has_value) {
      if (!parse_number(args[++i], pause_ms)) return usage("--pause-ms wants milliseconds");
    } else if (arg.starts_with("--")) {
      return usage(fmt::format("unknown option or missing value: {}", arg));
    } else {
      domains.emplace_back(arg);
    }
  }
  if (domains.empty()) return usage("no DOMAIN given");

  boost::asio::io_context io;
  auto resolver = dns::MxResolver::create(io, options);
  if (!resolver) {
    std::fprintf(stderr, "rampart-dns-probe: %s\n", resolver.error().what.c_str());
    return 1;
  }
  Probe probe(io, **resolver, std::move(domains), std::move(later),
              std::chrono::milliseconds{pause_ms});
  probe.start();
  io.run();
  return 0;
}
