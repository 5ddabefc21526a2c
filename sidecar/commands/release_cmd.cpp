// `rampart release [--dry-run] [--format table|json] [--limit N]`: drains Postfix's hold queue
// as budget reopens. rampart-policyd answers HOLD for a stream with over_cap = "hold" once a
// recipient is over a limit; this charges the same counters for the whole held message (all or
// nothing, oldest first) and releases it only when every scope it spends has room. I/O half:
// runs postqueue/postcat/postsuper, resolves MX records, leases from the store; the decisions
// are core/release.hpp and core/limits.hpp.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include <boost/asio/io_context.hpp>

#include "commands/context.hpp"
#include "core/limits.hpp"
#include "core/release.hpp"
#include "core/ruleset.hpp"
#include "core/text.hpp"
#include "dns/resolver.hpp"
#include "obs/clock.hpp"
#include "rules/writer.hpp"

extern char** environ;  // NOLINT: POSIX, for posix_spawn

namespace rampart::sidecar {
namespace {

constexpr std::string_view kUsage =
    "usage: rampart release [--dry-run] [--format table|json] [--limit N]\n"
    "\n"
    "Release messages that rampart-policyd put on hold (streams with over_cap = \"hold\") as\n"
    "their budget reopens: oldest first, each message all or nothing. A message is released\n"
    "(postsuper -H, then postqueue -i) only when every limit its recipients spend has room for\n"
    "all of them; it is then charged to the same counters as mail rampart-policyd accepts.\n"
    "Later messages still get their turn after one is kept.\n"
    "\n"
    "Messages of no stream, of a stream with over_cap = \"defer\", or with a recipient under a\n"
    "hold exclusion were not held for budget: they stay held and are listed as such.\n"
    "\n"
    "  --dry-run          lease and release nothing: show what would go now, from the counters\n"
    "  --format FORMAT    table (default) or json (one object per message, then a summary)\n"
    "  --limit N          release at most N messages in this run\n"
    "\n"
    "The Postfix instance is [sidecar] postfix_config_dir; MX lookups use [policyd] dns_servers,\n"
    "dns_timeout and on_dns_error. Needs root (postsuper). Exit status: 0 it ran (also when\n"
    "nothing could be released), 64 usage, 75 store or Postfix trouble (retry), 78 configuration.";

constexpr std::int64_t kLeaseSeconds = 60;  // a release lease is spent within the run

using obs::now_utc;

// --- running Postfix's tools -------------------------------------------------------------------

struct Output {
  int status = 0;  // exit status, or 128 + signal
  std::string out, err;
};

// `name` from PATH, else /usr/sbin (Debian's place for Postfix's tools, often not on a user's
// PATH). "" when neither has it.
std::string find_program(const std::string& name) {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::string_view p(path);
    while (!p.empty()) {
      const auto colon = p.find(':');
      const auto dir = p.substr(0, colon);
      if (!dir.empty()) dirs.emplace_back(dir);
      p.remove_prefix(colon == std::string_view::npos ? p.size() : colon + 1);
    }
  }
  dirs.emplace_back("/usr/sbin");
  for (const auto& d : dirs) {
    std::string full = d + "/" + name;
    if (::access(full.c_str(), X_OK) == 0) return full;
  }
  return {};
}

// The last line of a tool's stderr: it says most ("postqueue: fatal: ...").
std::string last_line(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  const auto nl = s.find_last_of('\n');
  return std::string(nl == std::string_view::npos ? s : s.substr(nl + 1));
}

// Runs argv (no shell), collecting stdout and stderr, each bounded by max_bytes; kills it after
// `timeout`. Config when the program is not installed, Temporary when it cannot be run or runs
// too long.
Result<Output> run_program(const std::vector<std::string>& argv, std::chrono::seconds timeout,
                           std::size_t max_bytes = std::size_t{64} << 20) {
  const std::string path = find_program(argv.front());
  if (path.empty()) {
    return fail(
        Errc::Config,
        fmt::format("cannot find {} on PATH or in /usr/sbin: is Postfix installed?", argv.front()));
  }
  std::array<int, 2> out_pipe{-1, -1}, err_pipe{-1, -1};
  if (::pipe2(out_pipe.data(), O_CLOEXEC) != 0) {
    return fail(Errc::Temporary, fmt::format("pipe: {}", std::strerror(errno)));
  }
  if (::pipe2(err_pipe.data(), O_CLOEXEC) != 0) {
    const int e = errno;
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return fail(Errc::Temporary, fmt::format("pipe: {}", std::strerror(e)));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, path.c_str(), &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return fail(Errc::Temporary, fmt::format("cannot run {}: {}", path, std::strerror(rc)));
  }

  Output o;
  std::array<pollfd, 2> fds{pollfd{out_pipe[0], POLLIN, 0}, pollfd{err_pipe[0], POLLIN, 0}};
  std::array<std::string*, 2> sinks{&o.out, &o.err};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string trouble;
  std::array<char, 65536> buf{};
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      trouble = fmt::format("{} did not finish within {} s", argv.front(), timeout.count());
      break;
    }
    const int n = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (n < 0 && errno != EINTR) {
      trouble = fmt::format("poll: {}", std::strerror(errno));
      break;
    }
    for (std::size_t i = 0; i < fds.size() && n > 0; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t got = ::read(fds[i].fd, buf.data(), buf.size());
      if (got > 0) {
        sinks[i]->append(buf.data(), static_cast<std::size_t>(got));
        if (sinks[i]->size() > max_bytes) {
          trouble = fmt::format("{} printed more than {} bytes", argv.front(), max_bytes);
          break;
        }
      } else if (got == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
      }
    }
    if (!trouble.empty()) break;
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  if (!trouble.empty()) ::kill(pid, SIGKILL);
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (!trouble.empty()) return fail(Errc::Temporary, trouble);
  o.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  return o;
}

// --- MX lookups --------------------------------------------------------------------------------

// Answers for every domain asked in this run (the resolver's own cache skips failures; this one
// keeps them, so one dead domain is asked once per run, not once per message).
class Mx {
 public:
  static Result<Mx> create(const config::Config& cfg) {
    Mx mx;
    mx.io_ = std::make_unique<boost::asio::io_context>();
    dns::ResolverOptions ro;
    ro.servers = cfg.list("policyd", "dns_servers");
    ro.timeout = cfg.duration("policyd", "dns_timeout");
    auto r = dns::MxResolver::create(*mx.io_, ro);
    if (!r) return tl::unexpected(r.error());
    mx.resolver_ = std::move(*r);
    return mx;
  }
  // Looks up every domain not yet answered, concurrently; returns once all have answered.
  void resolve(const std::vector<std::string>& domains) {
    for (const auto& d : domains) {
      if (answers_.count(d) != 0) continue;
      answers_[d] = nullptr;  // asked
      ++*pending_;
      resolver_->resolve(d, [this, d, pending = pending_](std::shared_ptr<const dns::MxAnswer> a) {
        answers_[d] = std::move(a);
        --*pending;
      });
    }
    // Every callback comes within dns_timeout (MxResolver's contract).
    io_->restart();
    while (*pending_ > 0 && io_->run_one() > 0) {
    }
  }
  // nullptr when the lookup never answered (treated as a temporary failure).
  std::shared_ptr<const dns::MxAnswer> answer(const std::string& domain) const {
    const auto it = answers_.find(domain);
    return it == answers_.end() ? nullptr : it->second;
  }

 private:
  // Declared first, destroyed last: the resolver must not outlive its io_context.
  std::unique_ptr<boost::asio::io_context> io_;
  std::unique_ptr<dns::MxResolver> resolver_;
  std::map<std::string, std::shared_ptr<const dns::MxAnswer>> answers_;
  std::shared_ptr<std::size_t> pending_ = std::make_shared<std::size_t>(0);
};

// --- one held message --------------------------------------------------------------------------

enum class Outcome : std::uint8_t {
  Released,      // postsuper -H done, counters charged
  WouldRelease,  // --dry-run: it fits now
  Kept,          // over a limit (or its MX lookup failed): stays held, tried again next run
  NotStream,     // no stream: not rampart's to release
  NotRampart,    // a stream's, but held for another reason (hold exclusion, over_cap = defer)
  Gone,          // left the hold queue since it was listed
  Error,         // Postfix or the store failed for this message: stays held, exit 75
};
std::string_view json_word(Outcome o) {
  switch (o) {
    case Outcome::Released: return "released";
    case Outcome::WouldRelease: return "would_release";
    case Outcome::Kept: return "kept";
    case Outcome::NotStream: return "not_a_stream";
    case Outcome::NotRampart: return "not_rampart";
    case Outcome::Gone: return "gone";
    case Outcome::Error: return "error";
  }
  return "?";
}
std::string_view table_word(Outcome o) {
  switch (o) {
    case Outcome::Released: return "released";
    case Outcome::WouldRelease: return "would release";
    case Outcome::Kept: return "kept";
    case Outcome::NotStream: return "not a stream";
    case Outcome::NotRampart: return "not rampart's";
    case Outcome::Gone: return "gone";
    case Outcome::Error: return "error";
  }
  return "?";
}

struct Row {
  const core::QueuedMessage* msg = nullptr;
  std::string stream;                                           // "" when none
  std::string stream_source;                                    // header | envelope | none
  std::vector<std::pair<std::string, std::int64_t>> operators;  // name ("-": none) -> recipients
  std::int64_t uncharged = 0;  // recipients at domains that take no mail
  Outcome outcome = Outcome::Kept;
  std::string reason;
  std::optional<core::UnixTime> reopens;
};

struct Settings {
  std::string postfix_dir;
  bool dunno_on_dns_error = false;
  std::string host;
  bool dry_run = false;
};

struct Totals {
  std::int64_t held = 0, examined = 0, released = 0, kept = 0, not_stream = 0, not_rampart = 0,
               gone = 0, errors = 0, recipients_released = 0;
  bool limit_reached = false;
};

std::string host_name() {
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0) return "localhost";
  return buf.data();
}

class Releaser {
 public:
  Releaser(const Settings& s, store::Store& st, const core::RuleSet& rules, Mx& mx)
      : s_(s), store_(st), rules_(rules), mx_(mx) {}

  // Reads back-offs and counters once per run: day histories (send-days warm-ups) and the ledger
  // that spares a lease attempt for messages that cannot fit (and plans the dry run).
  Result<void> load(core::UnixTime now) {
    auto b = store_.backoffs(now);
    if (!b) return tl::unexpected(b.error());
    backoffs_ = std::move(*b);
    auto hours = store_.counters("hour:", core::minute_of(now) - 61);
    if (!hours) return tl::unexpected(hours.error());
    auto days = store_.counters("day:", core::day_of(now) - 400);
    if (!days) return tl::unexpected(days.error());
    auto ops = store_.counters("op:", core::day_of(now));
    if (!ops) return tl::unexpected(ops.error());
    for (const auto* rows : {&*hours, &*days, &*ops}) {
      for (const auto& r : *rows) ledger_.add(r.scope, r.bucket, r.used);
    }
    for (const auto& r : *days) history_[r.scope.substr(4)].push_back({r.bucket, r.used});
    return {};
  }

  Row handle(const core::QueuedMessage& m) {
    Row row;
    row.msg = &m;
    row.stream_source = "none";
    auto pc = run_program({"postcat", "-c", s_.postfix_dir, "-e", "-h", "-q", m.queue_id},
                          std::chrono::seconds(30), std::size_t{4} << 20);
    if (!pc) return error(row, pc.error().what);
    if (pc->status != 0) {
      // "postcat: fatal: open queue file ID: No such file or directory": it was released,
      // delivered or deleted since postqueue listed it. Anything else (Permission denied: not
      // run as root or postfix) is trouble.
      if (pc->err.find("No such file or directory") == std::string::npos) {
        return error(row, last_line(pc->err));
      }
      row.outcome = Outcome::Gone;
      row.reason = last_line(pc->err);
      return row;
    }
    const auto info = core::parse_postcat(pc->out);
    const auto found = core::find_stream(rules_, info);
    if (found.stream == nullptr) {
      row.outcome = Outcome::NotStream;
      row.reason = found.detail;
      return row;
    }
    const core::StreamSpec& stream = *found.stream;
    row.stream = stream.name;
    row.stream_source = std::string(core::to_string(found.source));
    if (stream.over_cap != core::OverCap::Hold) {
      row.outcome = Outcome::NotRampart;
      row.reason =
          fmt::format("stream {} has over_cap = \"defer\": rampart-policyd does not hold its mail",
                      stream.name);
      return row;
    }
    if (auto ex = core::held_by_exclusion(rules_, &stream, m.recipients)) {
      row.outcome = Outcome::NotRampart;
      row.reason =
          fmt::format("recipient {} is under hold exclusion {}", ex->address, ex->rule->category);
      return row;
    }

    // Operators, from the MX records of each recipient domain (as rampart-policyd finds them).
    std::vector<std::string> domains;
    for (const auto& r : m.recipients) {
      std::string d = core::ascii_lower(core::address_domain(r));
      while (!d.empty() && d.back() == '.') d.pop_back();
      domains.push_back(std::move(d));
    }
    std::vector<std::string> ask;
    for (const auto& d : domains) {
      if (!d.empty()) ask.push_back(d);
    }
    mx_.resolve(ask);
    std::vector<core::ReleaseRecipient> rcpts;
    std::map<std::string, std::int64_t> per_op;
    for (std::size_t i = 0; i < m.recipients.size(); ++i) {
      core::ReleaseRecipient rr{m.recipients[i], nullptr, true};
      if (!domains[i].empty()) {
        auto a = mx_.answer(domains[i]);
        const auto status = a ? a->status : dns::MxStatus::Temporary;
        switch (status) {
          case dns::MxStatus::Ok: {
            std::array<core::MxRecord, 16> records{};
            std::size_t n = 0;
            for (const auto& h : a->hosts) {
              if (n == records.size()) break;
              records[n++] = core::MxRecord{h.preference, h.host};
            }
            rr.op = rules_.operator_for_mx(std::span<const core::MxRecord>(records.data(), n));
            break;
          }
          case dns::MxStatus::NullMx:
          case dns::MxStatus::NxDomain:
          case dns::MxStatus::NoMailHost: rr.charged = false; break;
          case dns::MxStatus::Temporary:
            if (!s_.dunno_on_dns_error) {
              row.outcome = Outcome::Kept;
              row.reason = fmt::format("MX lookup for {} failed ({}); try again later", domains[i],
                                       a ? a->detail : "no answer");
              return row;
            }
            break;  // on_dns_error = "dunno": only the stream's own limits apply
        }
      }
      if (rr.charged) {
        ++per_op[rr.op != nullptr ? rr.op->name : "-"];
      } else {
        ++row.uncharged;
      }
      rcpts.push_back(std::move(rr));
    }
    row.operators.assign(per_op.begin(), per_op.end());

    const core::UnixTime now = now_utc();
    static const std::vector<core::DayCount> kNoHistory;
    const auto h = history_.find(stream.name);
    const auto needs = core::release_needs(
        rules_, stream, rcpts, h != history_.end() ? h->second : kNoHistory, backoffs_, now);
    // The counters as read at the start plus this run's charges: a message that cannot fit there
    // cannot fit in the store either (use only grows within a day, bar returned leases).
    if (auto short_of = ledger_.take(needs, now)) return kept(row, *short_of);
    if (s_.dry_run) {
      row.outcome = Outcome::WouldRelease;
      return row;
    }
    return lease_and_release(row, needs, now);
  }

  bool store_failed() const { return store_failed_; }

 private:
  Row error(Row& row, std::string what) {
    row.outcome = Outcome::Error;
    row.reason = std::move(what);
    return std::move(row);
  }

  static Row kept(Row& row, const core::Shortfall& s) {
    row.outcome = Outcome::Kept;
    row.reason = s.text;
    row.reopens = s.reopens;
    return std::move(row);
  }

  // Undoes the ledger's pretend charge of `needs` (the store said otherwise, or Postfix failed).
  void uncharge(const std::vector<core::Need>& needs, core::UnixTime now) {
    for (const auto& n : needs) {
      const auto& sc = n.limit.scope;
      ledger_.add(sc.key(), sc.charge_bucket(now, core::lease_expiry(sc, now, kLeaseSeconds)),
                  -n.units);
    }
  }

  struct Held {
    std::int64_t id = 0;
    std::int64_t units = 0;
  };
  void hand_back(const std::vector<Held>& leases) {
    for (const auto& l : leases) {
      if (auto r = store_.return_lease(l.id, l.units); !r) {
        std::fprintf(stderr,
                     "rampart: warning: release: cannot return lease %lld (%lld units stay "
                     "charged until swept): %s\n",
                     static_cast<long long>(l.id), static_cast<long long>(l.units),
                     r.error().what.c_str());
      }
    }
  }

  Row lease_and_release(Row& row, const std::vector<core::Need>& needs, core::UnixTime now) {
    const core::QueuedMessage& m = *row.msg;
    std::vector<Held> leases;
    for (std::size_t i = 0; i < needs.size(); ++i) {
      const auto& n = needs[i];
      const auto& sc = n.limit.scope;
      const core::UnixTime expires = core::lease_expiry(sc, now, kLeaseSeconds);
      const store::LeaseRequest req{sc.key(),      sc.hourly(), sc.charge_bucket(now, expires),
                                    n.limit.limit, n.units,     now,
                                    expires,       s_.host};
      auto g = store_.lease(req);
      if (!g) {
        hand_back(leases);
        uncharge(needs, now);
        store_failed_ = true;
        return error(row, fmt::format("store: {}", g.error().what));
      }
      if (g->granted > 0) leases.push_back({g->id, g->granted});
      if (g->granted < n.units) {
        // All or nothing: give back what this message got and leave it held.
        hand_back(leases);
        uncharge(needs, now);
        std::vector<core::Bucket> window = std::move(g->window);
        for (auto& b : window) {
          if (b.bucket == req.bucket) b.used -= g->granted;
        }
        return kept(row, core::shortfall(n, i, g->used - g->granted, window, now));
      }
    }
    auto ps = run_program({"postsuper", "-c", s_.postfix_dir, "-H", m.queue_id},
                          std::chrono::seconds(60));
    // postsuper exits 0 also when the message was not on hold (any more); only its count says.
    const bool released =
        ps && ps->status == 0 && ps->err.find("Released from hold: 1 message") != std::string::npos;
    if (!released) {
      hand_back(leases);
      uncharge(needs, now);
      if (!ps) return error(row, ps.error().what);
      if (ps->status != 0) {
        return error(
            row, fmt::format("postsuper -H failed (exit {}): {}", ps->status, last_line(ps->err)));
      }
      row.outcome = Outcome::Gone;
      row.reason = "no longer on hold (postsuper released 0 messages)";
      return std::move(row);
    }
    // Released: the units stay charged (spent); forget the lease rows.
    for (const auto& l : leases) (void)store_.return_lease(l.id, 0);
    row.outcome = Outcome::Released;
    // Deliver now rather than at the next queue run; a failure here only delays it.
    auto pq = run_program({"postqueue", "-c", s_.postfix_dir, "-i", m.queue_id},
                          std::chrono::seconds(30));
    if (!pq || pq->status != 0) {
      std::fprintf(stderr,
                   "rampart: warning: release: %s: postqueue -i failed (%s); it goes at "
                   "the next queue run\n",
                   m.queue_id.c_str(), pq ? last_line(pq->err).c_str() : pq.error().what.c_str());
    }
    return std::move(row);
  }

  const Settings& s_;
  store::Store& store_;
  const core::RuleSet& rules_;
  Mx& mx_;
  std::vector<core::Backoff> backoffs_;
  std::map<std::string, std::vector<core::DayCount>, std::less<>> history_;
  core::Ledger ledger_{kLeaseSeconds};
  bool store_failed_ = false;
};

// --- output ------------------------------------------------------------------------------------

std::string operators_text(const Row& r) {
  std::string out;
  for (const auto& [name, n] : r.operators)
    out += fmt::format("{}{}:{}", out.empty() ? "" : ",", name, n);
  if (r.uncharged > 0) out += fmt::format("{}no-mail-host:{}", out.empty() ? "" : ",", r.uncharged);
  return out.empty() ? "-" : out;
}

std::string json_row(const Row& r) {
  std::string ops = "[";
  for (const auto& [name, n] : r.operators) {
    ops += fmt::format("{}{{\"operator\": {}, \"recipients\": {}}}", ops.size() > 1 ? ", " : "",
                       name == "-" ? "null" : rules::json_quote(name), n);
  }
  ops += "]";
  return fmt::format(
      "{{\"queue_id\": {}, \"arrival_time\": {}, \"stream\": {}, \"stream_source\": {}, "
      "\"recipients\": {}, \"operators\": {}, \"uncharged_recipients\": {}, \"result\": {}, "
      "\"reason\": {}, \"reopens\": {}}}",
      rules::json_quote(r.msg->queue_id), rules::json_quote(core::format_utc(r.msg->arrival_time)),
      r.stream.empty() ? "null" : rules::json_quote(r.stream), rules::json_quote(r.stream_source),
      r.msg->recipients.size(), ops, r.uncharged, rules::json_quote(json_word(r.outcome)),
      rules::json_quote(r.reason),
      r.reopens ? rules::json_quote(core::format_utc(*r.reopens)) : "null");
}

void print_table(const std::vector<Row>& rows) {
  std::vector<std::array<std::string, 6>> t{
      {"QUEUE_ID", "ARRIVED", "STREAM", "RCPTS", "OPERATORS", "RESULT"}};
  for (const auto& r : rows) {
    std::string result(table_word(r.outcome));
    if (!r.reason.empty()) result += ": " + r.reason;
    t.push_back({r.msg->queue_id, core::format_utc(r.msg->arrival_time),
                 r.stream.empty() ? "-" : r.stream, std::to_string(r.msg->recipients.size()),
                 operators_text(r), result});
  }
  std::array<std::size_t, 6> width{};
  for (const auto& row : t) {
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : t) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += i + 1 < row.size() ? fmt::format("{:<{}}  ", row[i], width[i]) : row[i];
    }
    std::printf("%s\n", line.c_str());
  }
}

void count(Totals& t, const Row& r) {
  ++t.examined;
  switch (r.outcome) {
    case Outcome::Released:
    case Outcome::WouldRelease:
      ++t.released;
      t.recipients_released += static_cast<std::int64_t>(r.msg->recipients.size());
      break;
    case Outcome::Kept: ++t.kept; break;
    case Outcome::NotStream: ++t.not_stream; break;
    case Outcome::NotRampart: ++t.not_rampart; break;
    case Outcome::Gone: ++t.gone; break;
    case Outcome::Error: ++t.errors; break;
  }
}

std::string json_summary(const Totals& t, bool dry_run) {
  return fmt::format(
      "{{\"summary\": {{\"dry_run\": {}, \"held\": {}, \"examined\": {}, \"{}\": {}, "
      "\"recipients_{}\": {}, \"kept\": {}, \"not_a_stream\": {}, \"not_rampart\": {}, "
      "\"gone\": {}, \"errors\": {}, \"limit_reached\": {}}}}}",
      dry_run ? "true" : "false", t.held, t.examined, dry_run ? "would_release" : "released",
      t.released, dry_run ? "would_release" : "released", t.recipients_released, t.kept,
      t.not_stream, t.not_rampart, t.gone, t.errors, t.limit_reached ? "true" : "false");
}

bool is_help(const std::string& a) { return a == "--help" || a == "-h"; }

}  // namespace

int cmd_release(const Context& ctx, const Args& args) {
  Settings s;
  std::string format = "table";
  std::optional<std::int64_t> limit;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (is_help(a)) {
      std::printf("%.*s\n", static_cast<int>(kUsage.size()), kUsage.data());
      return kExitOk;
    }
    auto value = [&](std::string_view name) -> std::optional<std::string> {
      if (a == name) return i + 1 < args.size() ? std::optional(args[++i]) : std::nullopt;
      if (a.size() > name.size() && a.starts_with(name) && a[name.size()] == '=') {
        return a.substr(name.size() + 1);
      }
      return std::nullopt;
    };
    if (a == "--dry-run") {
      s.dry_run = true;
    } else if (a == "--format" || a.starts_with("--format=")) {
      auto v = value("--format");
      if (!v) return usage_error("release: --format needs a value");
      format = *v;
    } else if (a == "--limit" || a.starts_with("--limit=")) {
      auto v = value("--limit");
      if (!v) return usage_error("release: --limit needs a value");
      std::int64_t n = 0;
      const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
      if (ec != std::errc{} || end != v->data() + v->size() || n < 1) {
        return usage_error(fmt::format("release: bad --limit {:?}: want a whole number >= 1", *v));
      }
      limit = n;
    } else {
      return usage_error(fmt::format("release: unexpected argument {:?}", a));
    }
  }
  if (format != "table" && format != "json") {
    return usage_error(fmt::format("release: bad --format {:?}: want table or json", format));
  }
  s.postfix_dir = ctx.cfg.string("sidecar", "postfix_config_dir");
  s.dunno_on_dns_error = ctx.cfg.string("policyd", "on_dns_error") == "dunno";
  const std::string& host_id = ctx.cfg.string("policyd", "host_id");
  s.host = "release/" + (host_id.empty() ? host_name() : host_id);

  auto st = ctx.open_store();
  if (!st) return report(st.error());
  auto& store = **st;
  auto rules = store::load_ruleset(store);
  if (!rules) return report(rules.error());

  // The hold queue, oldest first (postqueue -j: Postfix 3.1+; works with Postfix stopped too).
  auto pq = run_program({"postqueue", "-c", s.postfix_dir, "-j"}, std::chrono::seconds(120),
                        std::size_t{512} << 20);
  if (!pq) return report(pq.error());
  if (pq->status != 0) {
    return report({Errc::Temporary, fmt::format("postqueue -c {} -j failed (exit {}): {}",
                                                s.postfix_dir, pq->status, last_line(pq->err))});
  }
  std::vector<core::QueuedMessage> held;
  std::string_view listing = pq->out;
  while (!listing.empty()) {
    const auto nl = listing.find('\n');
    const auto line = listing.substr(0, nl);
    listing.remove_prefix(nl == std::string_view::npos ? listing.size() : nl + 1);
    if (line.empty()) continue;
    auto m = core::parse_postqueue_line(line);
    if (!m) {
      return report(
          {Errc::Temporary, fmt::format("postqueue -j: unreadable line: {}", m.error().what)});
    }
    if (m->queue_name == "hold") held.push_back(std::move(*m));
  }
  std::sort(held.begin(), held.end(), [](const auto& a, const auto& b) {
    return std::tie(a.arrival_time, a.queue_id) < std::tie(b.arrival_time, b.queue_id);
  });

  auto mx = Mx::create(ctx.cfg);
  if (!mx) return report(mx.error());
  Releaser releaser(s, store, **rules, *mx);
  if (auto r = releaser.load(now_utc()); !r) return report(r.error());

  Totals totals;
  totals.held = static_cast<std::int64_t>(held.size());
  std::vector<Row> rows;
  for (const auto& m : held) {
    if (limit && totals.released >= *limit) {
      totals.limit_reached = true;
      break;
    }
    Row row = releaser.handle(m);
    count(totals, row);
    if (format == "json") {
      std::printf("%s\n", json_row(row).c_str());
      std::fflush(stdout);
    }
    rows.push_back(std::move(row));
    if (releaser.store_failed()) break;  // the rest would fail the same way: retry next run
  }
  if (format == "json") {
    std::printf("%s\n", json_summary(totals, s.dry_run).c_str());
  } else {
    if (!rows.empty()) print_table(rows);
    std::printf(
        "%s%lld of %lld held message%s %s (%lld recipients); %lld kept, %lld not a "
        "stream, %lld not rampart's, %lld gone, %lld errors%s\n",
        s.dry_run ? "dry run: " : "", static_cast<long long>(totals.released),
        static_cast<long long>(totals.held), totals.held == 1 ? "" : "s",
        s.dry_run ? "would be released" : "released",
        static_cast<long long>(totals.recipients_released), static_cast<long long>(totals.kept),
        static_cast<long long>(totals.not_stream), static_cast<long long>(totals.not_rampart),
        static_cast<long long>(totals.gone), static_cast<long long>(totals.errors),
        totals.limit_reached ? "; --limit reached" : "");
  }
  return totals.errors > 0 ? kExitTemp : kExitOk;
}

}  // namespace rampart::sidecar
