// rampart-milter: the libmilter daemon in smtpd_milters (after OpenDKIM). Start-up, the rules
// and OpenDKIM snapshots, and their reloading: on a store rules_version change, on a change of
// the OpenDKIM files (both polled every [milter] rules_poll_interval) and on SIGUSR1.
// SIGHUP is not a reload signal here: libmilter's own signal thread treats SIGHUP like SIGTERM.
#include <fcntl.h>
#include <libmilter/mfapi.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "config/program.hpp"
#include "milter/state.hpp"
#include "obs/log.hpp"
#include "store/store.hpp"

namespace {

using namespace rampart;

constexpr std::string_view kUsage =
    "usage: rampart-milter [--config FILE] [--daemon] [--pidfile FILE] [--check-config] "
    "[--print-defaults]\n"
    "\n"
    "rampart-milter: the Postfix milter (smtpd_milters, after OpenDKIM) that enforces send-time\n"
    "exclusions and suppressions, pins each message to its stream's transport, checks the From\n"
    "identity, refuses mail OpenDKIM will not sign, and flags hygiene problems.\n"
    "Runs in the foreground (systemd) unless --daemon; logs go to stderr either way.\n"
    "Reload: SIGUSR1 (or any `rampart rules apply`, seen within rules_poll_interval).\n"
    "Stop: SIGTERM.";

// Files the OpenDKIM snapshot was built from, with their modification times.
using Stamps = std::map<std::string, std::pair<std::int64_t, std::int64_t>>;

std::pair<std::int64_t, std::int64_t> stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {-1, -1};
  return {static_cast<std::int64_t>(st.st_mtim.tv_sec),
          static_cast<std::int64_t>(st.st_mtim.tv_nsec)};
}

Result<std::string> read_small_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return fail(Errc::Config, fmt::format("{}: cannot read: {}", path, std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (ss.str().size() > (16u << 20))
    return fail(Errc::Config, fmt::format("{}: larger than 16 MB", path));
  return ss.str();
}

// Loads opendkim.conf and its tables; on failure the check answers per on_error until fixed.
void load_dkim(const std::string& conf, Stamps& stamps) {
  Stamps seen;
  seen[conf] = stamp(conf);
  auto reader = [&](const std::string& path) -> Result<std::string> {
    seen[path] = stamp(path);
    return read_small_file(path);
  };
  auto text = read_small_file(conf);
  Result<core::dkim::Config> parsed =
      text ? core::dkim::parse_config(*text, conf, reader)
           : Result<core::dkim::Config>(tl::unexpected(text.error()));
  stamps = std::move(seen);
  if (!parsed) {
    obs::log(obs::Level::Error, "dkim.load_failed",
             fmt::format("file={} error=\"{}\" effect=\"signing scope unknown: messages in streams "
                         "get on_error\"",
                         conf, milter::reply_safe(parsed.error().what)));
    milter::state().set_dkim(nullptr, parsed.error().what);
    return;
  }
  obs::log(obs::Level::Info, "dkim.loaded", fmt::format("file={} files={}", conf, stamps.size()));
  milter::state().set_dkim(std::make_shared<const core::dkim::Config>(std::move(*parsed)), "");
}

// Loads and compiles the rules; a failure keeps the old snapshot (STYLE.md section 6).
bool load_rules(store::Store& st, std::int64_t& version) {
  auto v = st.rules_version();
  if (!v) {
    obs::log(obs::Level::Error, "rules.reload_failed",
             fmt::format("error=\"{}\"", milter::reply_safe(v.error().what)));
    return false;
  }
  auto spec = st.load_rules();
  if (!spec) {
    obs::log(obs::Level::Error, "rules.reload_failed",
             fmt::format("error=\"{}\"", milter::reply_safe(spec.error().what)));
    return false;
  }
  auto rs = core::RuleSet::compile(std::move(*spec), v->version, core::ClassifyCheck::Structure);
  if (!rs) {
    obs::log(obs::Level::Error, "rules.reload_failed",
             fmt::format("version={} error=\"{}\" effect=\"old rules kept\"", v->version,
                         milter::reply_safe(rs.error().what)));
    return false;
  }
  milter::state().set_rules(*rs);
  version = v->version;
  obs::log(obs::Level::Info, "rules.loaded",
           fmt::format("version={} streams={} exclusions={}", v->version,
                       (*rs)->spec().streams.size(), (*rs)->spec().exclusions.size()));
  return true;
}

std::mutex g_mu;
std::condition_variable g_cv;
bool g_reload = false;
bool g_stop = false;

}  // namespace

int main(int argc, char** argv) {
  try {
    auto s = config::start({"rampart-milter", RAMPART_VERSION, kUsage, false}, argc, argv);
    if (s.exit_now) return *s.exit_now;
    bool daemonize = false;
    std::string pidfile;
    for (std::size_t i = 0; i < s.rest.size(); ++i) {
      if (s.rest[i] == "--daemon") {
        daemonize = true;
      } else if (s.rest[i] == "--pidfile" && i + 1 < s.rest.size()) {
        pidfile = s.rest[++i];
      } else {
        std::fprintf(stderr,
                     "rampart-milter: unexpected argument '%s'\nTry 'rampart-milter --help'.\n",
                     s.rest[i].c_str());
        return 64;
      }
    }
    const auto& cfg = s.cfg;
    obs::init("rampart-milter", *obs::parse_level(cfg.string("milter", "log_level")));
    auto& st = milter::state();
    st.settings.on_unsigned = *milter::parse_on_unsigned(cfg.string("milter", "on_unsigned"));
    st.settings.on_no_stream = *milter::parse_on_no_stream(cfg.string("milter", "on_no_stream"));
    st.on_error_accept = cfg.string("milter", "on_error") == "accept";
    const std::string dkim_conf = cfg.string("milter", "opendkim_config");
    st.dkim_check = !dkim_conf.empty();

    store::OpenOptions opts{cfg.duration("store", "connect_timeout"),
                            cfg.duration("store", "busy_timeout")};
    auto opened = store::open_migrated(cfg.string("store", "url"), opts);
    if (!opened) {
      obs::log(obs::Level::Error, "store.open_failed",
               fmt::format("error=\"{}\"", opened.error().what));
      return exit_code(opened.error().code);
    }
    auto& store = **opened;
    std::int64_t version = -1;
    if (!load_rules(store, version)) return 75;  // nothing to serve from yet: let systemd retry
    Stamps stamps;
    if (st.dkim_check) load_dkim(dkim_conf, stamps);

    const auto& listen = cfg.string("milter", "listen");
    if (smfi_setconn(const_cast<char*>(listen.c_str())) != MI_SUCCESS ||
        !milter::register_callbacks()) {
      obs::log(obs::Level::Error, "milter.setup_failed", fmt::format("listen={}", listen));
      return 78;
    }
    smfi_settimeout(static_cast<int>(
        std::chrono::duration_cast<std::chrono::seconds>(cfg.duration("milter", "timeout"))
            .count()));
    ::umask(007);  // unix socket 0660/0770: Postfix reaches it through the _rampart group
    if (smfi_opensocket(true) != MI_SUCCESS) {
      obs::log(obs::Level::Error, "milter.listen_failed", fmt::format("listen={}", listen));
      return 75;
    }
    // --daemon: detach now, after every check that can fail has printed its error and before
    // any thread exists (threads do not survive fork). Logs keep going to stderr.
    if (daemonize) {
      const pid_t child = ::fork();
      if (child < 0) {
        obs::log(obs::Level::Error, "milter.fork_failed",
                 fmt::format("error=\"{}\"", std::strerror(errno)));
        return 71;
      }
      if (child > 0) {
        // The parent writes the pid file, so it exists by the time the start command returns.
        if (!pidfile.empty()) {
          if (std::FILE* f = std::fopen(pidfile.c_str(), "w")) {
            std::fprintf(f, "%ld\n", static_cast<long>(child));
            std::fclose(f);
          }
        }
        std::printf("listening on %s (pid %ld)\n", listen.c_str(), static_cast<long>(child));
        return 0;
      }
      ::setsid();
      if (const int null = ::open("/dev/null", O_RDWR); null >= 0) {
        ::dup2(null, STDIN_FILENO);
        ::dup2(null, STDOUT_FILENO);
        if (null > STDERR_FILENO) ::close(null);
      }
    }
    if (!pidfile.empty() && !daemonize) {
      if (std::FILE* f = std::fopen(pidfile.c_str(), "w")) {
        std::fprintf(f, "%ld\n", static_cast<long>(::getpid()));
        std::fclose(f);
      } else {
        obs::log(obs::Level::Warning, "milter.pidfile_failed",
                 fmt::format("file={} error=\"{}\"", pidfile, std::strerror(errno)));
      }
    }

    // SIGUSR1 reloads: only the waiter below takes it. SIGTERM/SIGINT/SIGHUP belong to
    // libmilter's signal thread, which smfi_main() starts later; block them now so the threads
    // we start first inherit the mask and a SIGTERM cannot kill the process in one of them.
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigset_t blocked = usr1;
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &blocked, nullptr);
    std::thread signals([usr1] {
      for (;;) {
        int sig = 0;
        if (sigwait(&usr1, &sig) != 0) continue;
        std::lock_guard lock(g_mu);
        if (g_stop) return;
        g_reload = true;
        g_cv.notify_all();
      }
    });
    signals.detach();

    const auto poll = cfg.duration("milter", "rules_poll_interval");
    std::thread reloader([&] {
      std::unique_lock lock(g_mu);
      for (;;) {
        g_cv.wait_for(lock, poll, [] { return g_reload || g_stop; });
        if (g_stop) return;
        const bool forced = std::exchange(g_reload, false);
        lock.unlock();
        auto v = store.rules_version();
        if (!v) {
          obs::log(obs::Level::Warning, "rules.poll_failed",
                   fmt::format("error=\"{}\" effect=\"old rules kept\"",
                               milter::reply_safe(v.error().what)));
        } else if (forced || v->version != version) {
          load_rules(store, version);
        }
        if (st.dkim_check) {
          bool changed = forced;
          for (const auto& [path, when] : stamps) changed = changed || stamp(path) != when;
          if (changed) load_dkim(dkim_conf, stamps);
        }
        lock.lock();
      }
    });

    obs::log(obs::Level::Info, "milter.listening",
             fmt::format("listen={} rules_version={}", listen, version));
    if (!daemonize) {
      std::printf("listening on %s\n", listen.c_str());
      std::fflush(stdout);
    }
    const int rc = smfi_main();

    {
      std::lock_guard lock(g_mu);
      g_stop = true;
      g_cv.notify_all();
    }
    reloader.join();
    std::string summary;
    for (const auto& [k, n] : st.counters.snapshot()) summary += fmt::format(" \"{}\"={}", k, n);
    obs::log(obs::Level::Info, "milter.stopped",
             fmt::format("counters:{}", summary.empty() ? " none" : summary));
    if (!pidfile.empty()) ::unlink(pidfile.c_str());
    return rc == MI_SUCCESS ? 0 : 70;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rampart-milter: internal error: %s\n", e.what());
    return 70;
  }
}
