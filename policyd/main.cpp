// rampart-policyd: the Postfix policy daemon (check_policy_service): per-operator caps, warm-up
// ramps, gates, back-offs. Start-up (configuration, store, resolver, listeners) and signals:
// SIGHUP reloads rules, SIGTERM/SIGINT drain and exit (leases handed back), SIGUSR1 logs the
// decision counters.
#include <unistd.h>

#include <utility>  // before asio (GCC 12)

#include <boost/asio.hpp>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "config/program.hpp"
#include "obs/log.hpp"
#include "policyd/budget.hpp"
#include "policyd/server.hpp"

namespace {

using namespace rampart;
namespace asio = boost::asio;

constexpr std::string_view kUsage =
    "usage: rampart-policyd [--config FILE] [--check-config] [--print-defaults] [--pidfile FILE]\n"
    "\n"
    "rampart-policyd: the Postfix policy daemon (check_policy_service): per-operator caps, warm-up "
    "ramps, gates, back-offs.\n"
    "Signals: HUP reloads rules from the store, TERM drains and exits, USR1 logs counters.";

void log_counters(const policyd::Server& server, std::string_view event) {
  std::string summary;
  for (const auto& [k, n] : server.counters()) summary += fmt::format(" \"{}\"={}", k, n);
  obs::log(obs::Level::Info, event,
           fmt::format("sessions={} counters:{}", server.sessions(),
                       summary.empty() ? " none" : summary));
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    auto s = config::start({"rampart-policyd", RAMPART_VERSION, kUsage, false}, argc, argv);
    if (s.exit_now) return *s.exit_now;
    std::string pidfile;
    for (std::size_t i = 0; i < s.rest.size(); ++i) {
      if (s.rest[i] == "--pidfile" && i + 1 < s.rest.size()) {
        pidfile = s.rest[++i];
      } else {
        std::fprintf(stderr,
                     "rampart-policyd: unexpected argument '%s'\nTry 'rampart-policyd --help'.\n",
                     s.rest[i].c_str());
        return 64;
      }
    }
    const auto& cfg = s.cfg;
    obs::init("rampart-policyd", *obs::parse_level(cfg.string("policyd", "log_level")));

    store::OpenOptions opts{cfg.duration("store", "connect_timeout"),
                            cfg.duration("store", "busy_timeout")};
    auto opened = store::open_migrated(cfg.string("store", "url"), opts);
    if (!opened) {
      obs::log(obs::Level::Error, "store.open_failed",
               fmt::format("error=\"{}\"", opened.error().what));
      return exit_code(opened.error().code);
    }

    asio::io_context io(1);
    policyd::Budget::Settings bs;
    bs.host = cfg.string("policyd", "host_id");
    if (bs.host.empty()) bs.host = host_name();
    bs.host += fmt::format("/{}", ::getpid());
    bs.lease_ttl =
        std::chrono::duration_cast<std::chrono::seconds>(cfg.duration("policyd", "lease_ttl"));
    policyd::Budget budget(io, std::move(*opened), bs);

    dns::ResolverOptions ro;
    ro.servers = cfg.list("policyd", "dns_servers");
    ro.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
        cfg.duration("policyd", "dns_timeout"));
    auto resolver = dns::MxResolver::create(io, ro);
    if (!resolver) {
      obs::log(obs::Level::Error, "dns.setup_failed",
               fmt::format("error=\"{}\"", resolver.error().what));
      return exit_code(resolver.error().code);
    }

    policyd::ServerSettings ss;
    ss.listen = cfg.list("policyd", "listen");
    ss.idle_timeout =
        std::chrono::duration_cast<std::chrono::seconds>(cfg.duration("policyd", "idle_timeout"));
    ss.max_connections = static_cast<std::size_t>(cfg.integer("policyd", "max_connections"));
    ss.dunno_on_dns_error = cfg.string("policyd", "on_dns_error") == "dunno";
    ss.dunno_on_store_error = cfg.string("policyd", "on_store_error") == "dunno";
    policyd::Server server(io, ss, budget, **resolver);

    // The first snapshot is read before listening: answering without rules would be DUNNO for
    // everything, which is what the rules exist to prevent.
    // Work posted back by the store thread is invisible to the io_context until it arrives:
    // keep it from running out of work (it stops only through io.stop() at the end of a drain).
    auto keep_running = asio::make_work_guard(io);
    bool loaded = false;
    std::string load_error;
    budget.refresh(true, [&](policyd::Snapshot snap) {
      // Serving without the back-offs would let a pause lapse: both or nothing.
      loaded = snap.rules != nullptr && snap.backoffs_read;
      load_error = snap.error;
      server.apply(std::move(snap));
    });
    while (!loaded && load_error.empty() && io.run_one() > 0) {
    }
    if (!loaded) {
      obs::log(obs::Level::Error, "rules.load_failed",
               fmt::format("error=\"{}\"", load_error.empty() ? "no rules" : load_error));
      budget.drain();
      return 75;  // nothing to serve from yet: let systemd retry
    }
    obs::log(obs::Level::Info, "rules.loaded",
             fmt::format("version={} streams={}", server.rules_version(), server.streams()));
    if (server.rules_version() == 0) {
      obs::log(obs::Level::Warning, "rules.none",
               "effect=\"every request gets DUNNO until rules are applied (rampart rules apply)\"");
    }
    if (auto l = server.listen(); !l) {
      obs::log(obs::Level::Error, "policyd.listen_failed",
               fmt::format("error=\"{}\"", l.error().what));
      budget.drain();
      return exit_code(l.error().code);
    }
    if (!pidfile.empty()) {
      if (std::FILE* f = std::fopen(pidfile.c_str(), "w")) {
        std::fprintf(f, "%ld\n", static_cast<long>(::getpid()));
        std::fclose(f);
      }
    }

    // Periodic work: refresh from the store every rules_poll_interval, hand back expired leases
    // every second.
    const auto poll = cfg.duration("policyd", "rules_poll_interval");
    asio::steady_timer poll_timer(io), lease_timer(io);
    bool stopping = false;
    std::function<void(bool)> refresh = [&](bool force) {
      budget.refresh(force, [&, force](policyd::Snapshot snap) {
        if (!snap.error.empty()) {
          obs::log(obs::Level::Warning, "rules.reload_failed",
                   fmt::format("error=\"{}\" effect=\"old rules and back-offs kept\"", snap.error));
        }
        const bool changed = snap.rules != nullptr;
        const bool backoffs_changed = server.apply(std::move(snap));
        if (changed || force) {
          obs::log(obs::Level::Info, "rules.loaded",
                   fmt::format("version={} streams={}", server.rules_version(), server.streams()));
        }
        if (backoffs_changed) {
          obs::log(obs::Level::Info, "backoffs.loaded",
                   fmt::format("active={}", server.backoffs()));
        }
      });
    };
    std::function<void()> arm_poll = [&] {
      poll_timer.expires_after(poll);
      poll_timer.async_wait([&](boost::system::error_code ec) {
        if (ec || stopping) return;
        refresh(false);
        arm_poll();
      });
    };
    std::function<void()> arm_lease = [&] {
      lease_timer.expires_after(std::chrono::seconds(1));
      lease_timer.async_wait([&](boost::system::error_code ec) {
        if (ec || stopping) return;
        budget.hand_back(policyd::now_utc());
        arm_lease();
      });
    };
    arm_poll();
    arm_lease();

    asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
    signals.add(SIGUSR1);
    std::function<void()> wait_signal = [&] {
      signals.async_wait([&](boost::system::error_code ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
          obs::log(obs::Level::Info, "rules.reload_requested", "signal=HUP");
          refresh(true);
        } else if (sig == SIGUSR1) {
          log_counters(server, "policyd.counters");
        } else {
          obs::log(obs::Level::Info, "policyd.stopping",
                   fmt::format("signal={} sessions={}", sig == SIGTERM ? "TERM" : "INT",
                               server.sessions()));
          stopping = true;
          poll_timer.cancel();
          lease_timer.cancel();
          server.drain(std::chrono::seconds(5), [&] {
            (*resolver)->stop();
            signals.cancel();
            io.stop();
          });
          return;
        }
        wait_signal();
      });
    };
    wait_signal();

    io.run();
    budget.drain();
    log_counters(server, "policyd.stopped");
    if (!pidfile.empty()) ::unlink(pidfile.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rampart-policyd: internal error: %s\n", e.what());
    return 70;
  }
}
