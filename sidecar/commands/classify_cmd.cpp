// `rampart classify [--dry-run] [--format table|json] [--follow] FILE...|-`: Postfix logs into
// reputation aggregates, anomalies, suppressions and back-offs (issue 5). The pure work is in
// sidecar/maillog (line parser, Tally, feedback); this file reads logs (classify/log_reader),
// keeps the cursors and writes the store.
//
// Idempotency: each log is known by its content identity (a hash of its first line) and read
// from its stored cursor. Every batch (--batch lines; reading a file, a batch ends with the read
// chunk that reaches that many, so it may hold up to 256 KiB of lines more; exact with --follow)
// is committed in one transaction together with the cursor it moves (Store::commit_classify), so
// a kill -9 leaves the store as the last commit left it and a re-run carries on from there: the
// totals equal one clean run.
// Suppressions and pauses found in a batch are written before the batch is committed (they are
// idempotent), so a crash between the two loses nothing.
#include <sys/stat.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "classify/log_reader.hpp"
#include "commands/context.hpp"
#include "core/classify.hpp"
#include "core/reputation.hpp"
#include "core/ruleset.hpp"
#include "core/text.hpp"
#include "maillog/feedback.hpp"
#include "maillog/line.hpp"
#include "maillog/tally.hpp"
#include "obs/clock.hpp"
#include "rules/writer.hpp"

namespace rampart::sidecar {
namespace {

constexpr std::string_view kUsage =
    "usage: rampart classify [--dry-run] [--format table|json] [--batch N] FILE...|-\n"
    "       rampart classify --follow [--format table|json] [--batch N] FILE\n"
    "\n"
    "Read Postfix logs (plain, gzip, or - for stdin; classic syslog or RFC 3339 stamps) and\n"
    "count every remote delivery attempt per UTC day, stream, egress IP, receiving operator,\n"
    "outcome, category and enhanced status, classified by the [[classify]] rules in the store.\n"
    "Each log is read from where the last run stopped (a cursor per log content), so re-running\n"
    "over the same, rotated or compressed files never counts a line twice. Closes the loop per\n"
    "the [feedback] rules: hard bounces and dead domains become suppressions (exclusion\n"
    "category 'bounces' by default), throttling and reputation refusals over the threshold and\n"
    "[TSS04]-class replies become back-offs. Raises anomalies: bind failures, egress from an\n"
    "address that is not the stream's, a stream's mail delivered without an OpenDKIM signature,\n"
    "a stream delivering nothing on a day after a day it delivered.\n"
    "\n"
    "  --dry-run         read and report, write nothing (stored cursors are still honoured)\n"
    "  --from-start      with --dry-run: ignore stored cursors, read every log whole\n"
    "  --format FORMAT   table (default) or json: one object per aggregate line with keys day,\n"
    "                    stream, egress_ip, operator, outcome, category, status, count, sample,\n"
    "                    then one {\"summary\": {...}} object\n"
    "  --follow          keep reading FILE as it grows, across rotation (rename or\n"
    "                    copytruncate); commits every --interval; stops on SIGINT or SIGTERM\n"
    "  --interval SECS   --follow: longest time between commits (default 10)\n"
    "  --batch N         lines per store transaction (default 200000); reading a file,\n"
    "                    up to one read chunk (256 KiB) more\n"
    "\n"
    "Exit status: 0 ok, 64 usage, 66 a log could not be read (the others were), 75 store\n"
    "unreachable, 78 rules error.";

constexpr int kExitNoInput = 66;  // EX_NOINPUT

std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) { g_stop.store(true); }

#define RAMPART_DO(expr) \
  if (auto r_ = (expr); !r_) return tl::unexpected(r_.error())

std::string q(std::string_view s) { return rules::json_quote(s); }
std::string day_str(std::int64_t day) { return core::Date{static_cast<std::int32_t>(day)}.str(); }

// Seconds east of UTC of local time at `t` (syslog writes local time).
std::int32_t utc_offset_at(core::UnixTime t) {
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  if (localtime_r(&tt, &tm) == nullptr) return 0;
  return static_cast<std::int32_t>(tm.tm_gmtoff);
}

struct Options {
  bool dry_run = false;
  bool from_start = false;
  bool json = false;
  bool follow = false;
  std::int64_t batch = 200000;
  std::int64_t interval = 10;
  std::vector<std::string> files;
};

// What loop closing did (or, dry run, would do). The lists keep the first kShown of each for
// the report, so memory stays flat over any log; the totals count all.
constexpr std::size_t kShown = 1000;
struct Actions {
  std::vector<core::Suppression> suppressions;
  std::vector<core::Backoff> backoffs;
  std::int64_t suppressions_total = 0, backoffs_total = 0;
  void add(core::Suppression s) {
    ++suppressions_total;
    if (suppressions.size() < kShown) suppressions.push_back(std::move(s));
  }
  void add(core::Backoff b) {
    ++backoffs_total;
    if (backoffs.size() < kShown) backoffs.push_back(std::move(b));
  }
};

// Reads one log on two threads, the caller's and one more, which take chunks (up to 256 KiB of
// whole lines) from the reader in turn. Each parses its chunk's lines and counts them by kind
// (a Census of its own), keeping the parsed stateful lines; then, in log order, one chunk at a
// time (its "turn"), it hands the chunk's stamps (count_lines) and stateful lines (feed_state)
// to the shared Tally and calls `done` with the chunk's end. The parsing, most of the work, runs
// on both threads at once; the turns are short. Whatever may take long and needs no Tally (a
// commit's store writes) goes in `after`, which the calling thread runs right after each of its
// turns, while the other thread may take the next.
//
// A thread whose chunk's turn has not come (the other thread is still on the chunk before) does
// not wait: it reads and parses further chunks, up to kAhead of them, and takes their turns as
// they come, looking between chunks and every kLook lines. So neither thread idles while the
// other is slower (a busier core, a chunk of costlier lines), and each chunk's lines are fed
// on the core that parsed them.
class TwoThreadRead {
 public:
  // How long a thread spins (tries, each after a CPU pause) for the reader's lock or for its
  // turn before it sleeps: the other thread holds the reader for one read(2) of a chunk, and a
  // turn lasts a chunk's feeding, tens of microseconds either; a futex sleep and wake-up takes
  // longer than that on a VM (measured on the 1 GiB bench log: some 450 waits for the reader a
  // run, 16-37 ms in all sleeping, 3-4 ms spinning). At most some 100-200 microseconds (a pause
  // is 60-150 cycles, by CPU).
  static constexpr int kSpin = 4096;

  // In a chunk's turn, on either thread: its end offset and line count. false stops the read
  // (the error is the callback's to keep).
  using Done = std::function<bool(std::int64_t end, std::int64_t lines)>;
  // On the calling thread after each of its turns, outside the turn; false stops the read.
  using After = std::function<bool()>;

  TwoThreadRead(logreader::LogReader& r, const maillog::Clock& clock, maillog::Tally& tally)
      : reader_(r), clock_(clock), tally_(tally) {}

  // Reads to the end (or to a read error, returned after the lines before it went in).
  std::optional<Error> run(const Done& done, const After& after) {
    maillog::Census other;
    std::thread helper([&] { Worker(*this, other, done, {}).loop(); });
    maillog::Census mine;
    Worker(*this, mine, done, after).loop();
    helper.join();
    tally_.add_census(mine);
    tally_.add_census(other);
    return error_;
  }

 private:
  static constexpr std::size_t kAhead = 3;    // chunks a thread holds, parsed, for their turns
  static constexpr std::int64_t kLook = 256;  // lines parsed between looks at the turn

  // A chunk read and parsed, waiting for its turn; or the end of the log (`last`).
  struct Parsed {
    std::uint64_t seq = 0;
    bool last = false;
    logreader::Chunk chunk;
    std::int64_t lines = 0;
    maillog::StampRun stamps;  // the chunk's lines' stamps
    // The lines for feed_state, parsed (views into the chunk): the first `stateful` of `parsed`,
    // whose further elements are room reused from chunk to chunk.
    std::vector<maillog::ParsedLine> parsed;
    std::size_t stateful = 0;
  };

  // One thread's side: its census, the chunks it holds (oldest first) and room to reuse.
  class Worker {
   public:
    Worker(TwoThreadRead& r, maillog::Census& census, const Done& done, After after)
        : r_(r), census_(census), done_(done), after_(std::move(after)) {}

    void loop() {
      for (;;) {
        if (!take_turns()) return;
        if (held_.size() < kAhead) {
          auto p = spare();
          const Got got = read(*p);
          if (got != Got::Nothing) {
            if (got == Got::Chunk && !parse(*p)) return;  // stopped
            held_.push_back(std::move(p));
            continue;
          }
          free_.push_back(std::move(p));
        }
        // Room for no more, or nothing more to read: the oldest chunk's turn next.
        if (held_.empty()) return;
        if (!r_.wait_turn(held_.front()->seq)) return;
      }
    }

   private:
    // A Parsed to fill: one fed earlier, or a new one.
    std::unique_ptr<Parsed> spare() {
      if (free_.empty()) return std::make_unique<Parsed>();
      auto p = std::move(free_.back());
      free_.pop_back();
      return p;
    }

    enum class Got : std::uint8_t {
      Chunk,    // `p` holds the next chunk and its seq
      Marker,   // the reader is done (or failed): `p` is the end marker, its turn ends the read
      Nothing,  // the reader was done already: the other thread holds the marker
    };
    Got read(Parsed& p) {
      std::unique_lock lock(r_.read_mu_, std::defer_lock);
      r_.lock_soon(lock);
      if (r_.reading_done_) return Got::Nothing;
      p.seq = r_.next_seq_++;
      p.last = false;
      auto got = r_.reader_.next_chunk(std::move(p.chunk));
      if (got && *got) {
        p.chunk = std::move(**got);
        return Got::Chunk;
      }
      if (!got) r_.read_error_ = got.error();
      r_.reading_done_ = p.last = true;
      return Got::Marker;
    }

    // Parses `p`'s chunk, taking the turns that come meanwhile; false when stopped.
    bool parse(Parsed& p) {
      p.stamps.clear();
      p.stateful = 0;
      p.lines = 0;
      if (p.chunk.overlong) {
        census_.count_overlong();
        p.lines = 1;
        return true;
      }
      const std::size_t max_line = r_.reader_.max_line();
      const char* at = p.chunk.text.data();
      const char* const end = at + p.chunk.text.size();
      std::int64_t look = kLook;
      // Counts and the next slot in locals, stored into `p` after the loop: members (and the
      // vector's size, a subtraction and a division) would be reloaded after every parse_line().
      std::int64_t lines = 0;
      std::size_t stateful = 0;
      std::size_t room = p.parsed.size();
      maillog::ParsedLine* slots = p.parsed.data();
      while (at < end) {
        const void* nl = std::memchr(at, '\n', static_cast<std::size_t>(end - at));
        const char* const line_end = nl != nullptr ? static_cast<const char*>(nl) : end;
        const std::string_view line(at, static_cast<std::size_t>(line_end - at));
        at = nl != nullptr ? line_end + 1 : end;
        ++lines;
        if (--look == 0) {
          look = kLook;
          // The turn of a chunk held may be here: take it now, not after this chunk.
          if (!take_turns()) return false;
        }
        if (line.size() > max_line) {
          census_.count_overlong();
          continue;
        }
        // Parsed into the next free slot, which only a stateful line keeps.
        if (stateful == room) {
          p.parsed.emplace_back();
          ++room;
          slots = p.parsed.data();
        }
        auto& pl = slots[stateful];
        maillog::parse_line(line, r_.clock_, pl);
        if (pl.dated) {
          p.stamps.add(pl.header.time);
        } else {
          p.stamps.add_undated();
        }
        census_.count(pl);
        if (maillog::Tally::stateful(pl)) ++stateful;
      }
      p.lines = lines;
      p.stateful = stateful;
      return true;
    }

    // Feeds the chunks held whose turn it is, oldest first. false when the read is over for
    // this thread (stopped, or its end marker's turn came).
    bool take_turns() {
      while (!held_.empty() && r_.turn_.load(std::memory_order_acquire) == held_.front()->seq) {
        auto p = std::move(held_.front());
        held_.pop_front();
        const bool go_on = r_.feed(*p, done_);
        free_.push_back(std::move(p));
        // After every turn of this thread, the last too: nothing `done` left for it is lost.
        if (after_ && !after_()) {
          r_.stop();
          return false;
        }
        if (!go_on) return false;
      }
      return !r_.stopped_.load(std::memory_order_acquire);
    }

    TwoThreadRead& r_;
    maillog::Census& census_;
    const Done& done_;
    const After after_;  // empty on the helper
    std::deque<std::unique_ptr<Parsed>> held_;
    std::vector<std::unique_ptr<Parsed>> free_;
  };

  // In `p`'s turn: hands it to the Tally and passes the turn on. false when the read is over
  // (the end marker, or `done` said stop).
  bool feed(Parsed& p, const Done& done) {
    bool go_on = !p.last;
    if (!p.last) {
      tally_.count_lines(p.stamps);
      for (std::size_t i = 0; i < p.stateful; ++i) tally_.feed_state(p.parsed[i]);
      go_on = done(p.chunk.end, p.lines);
    } else if (read_error_) {
      error_ = read_error_;  // read_error_ was set before the marker's seq was handed out
    }
    if (!go_on) {
      stop();
      return false;
    }
    const std::lock_guard lock(turn_mu_);
    turn_.store(turn_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    turn_cv_.notify_all();
    return true;
  }

  // Takes `lock`, spinning first (kSpin) when a second CPU may release it meanwhile.
  void lock_soon(std::unique_lock<std::mutex>& lock) const {
    for (int i = 0; spin_ && i < kSpin; ++i) {
      if (lock.try_lock()) return;
      pause();
    }
    lock.lock();
  }
  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  // Blocks until `seq`'s turn (true) or a stop (false), spinning first (kSpin).
  bool wait_turn(std::uint64_t seq) {
    for (int i = 0; spin_ && i < kSpin; ++i) {
      if (stopped_.load(std::memory_order_acquire)) return false;
      if (turn_.load(std::memory_order_acquire) == seq) return true;
      pause();
    }
    std::unique_lock lock(turn_mu_);
    turn_cv_.wait(lock, [&] {
      return turn_.load(std::memory_order_relaxed) == seq ||
             stopped_.load(std::memory_order_relaxed);
    });
    return !stopped_.load(std::memory_order_relaxed);
  }

  void stop() {
    {
      const std::lock_guard lock(read_mu_);
      reading_done_ = true;
    }
    const std::lock_guard lock(turn_mu_);
    stopped_.store(true, std::memory_order_release);
    turn_cv_.notify_all();
  }

  logreader::LogReader& reader_;
  const maillog::Clock clock_;
  maillog::Tally& tally_;
  // Spinning helps only while the other thread runs: not on a single CPU.
  const bool spin_ = std::thread::hardware_concurrency() > 1;
  std::mutex read_mu_;  // the reader, next_seq_, reading_done_, read_error_
  std::uint64_t next_seq_ = 0;
  bool reading_done_ = false;
  std::optional<Error> read_error_;
  std::mutex turn_mu_;  // changes of turn_ and stopped_, for turn_cv_'s waiters
  std::condition_variable turn_cv_;
  std::atomic<std::uint64_t> turn_{0};  // the chunk whose turn it is
  std::atomic<bool> stopped_{false};
  std::optional<Error> error_;  // set in a turn
};

class Run {
 public:
  Run(const Options& o, store::Store& st, const core::RuleSet& rules,
      const core::Classifier& classifier)
      : o_(o),
        store_(st),
        rules_(rules),
        classifier_(classifier),
        tally_(rules, classifier),
        feedback_(rules.spec().effective_feedback()) {}

  // One log from its cursor to its end. A log that cannot be read is reported and counted in
  // files_failed; the error returned is the store's (nothing more can be done).
  Result<void> read_file(const std::string& path);
  // tail -F one log until a stop signal; the exit code.
  Result<int> follow(const std::string& path);
  // After the logs: loop closing that reads the store, zero-delivery days.
  Result<void> finish();
  void print() const;

  int files_failed = 0;
  std::vector<std::string> notes;  // per-file remarks for the summary

 private:
  struct Cursor {
    std::string identity;
    std::string path;
    std::int64_t from = 0;   // committed offset
    std::int64_t to = 0;     // offset after the last line fed
    std::int64_t lines = 0;  // fed since the last commit
  };
  // A batch taken from the Tally at a cursor position, to commit.
  struct Taken {
    maillog::Batch batch;
    Cursor at;  // from: the last commit's offset; to: this batch's end
  };
  // Takes the batch (needs the Tally) and moves the cursor on; commit_taken() then writes it
  // (needs only the store): commit(c) is both, read_file() runs the second outside the turn.
  Taken take(Cursor& c);
  Result<void> commit_taken(Taken& t);
  Result<void> commit(Cursor& c) {
    auto t = take(c);
    return commit_taken(t);
  }
  Result<std::optional<Cursor>> start(logreader::LogReader& r, const std::string& path);
  void feed(const logreader::Line& l, const maillog::Clock& clock, Cursor& c) {
    if (l.overlong) {
      tally_.overlong();
    } else {
      maillog::parse_line(l.text, clock, parsed_);
      tally_.feed(parsed_);
    }
    c.to = l.end;
    ++c.lines;
  }
  Result<void> apply_now(const maillog::Batch& b);

  const Options& o_;
  store::Store& store_;
  const core::RuleSet& rules_;
  const core::Classifier& classifier_;
  maillog::Tally tally_;
  maillog::ParsedLine parsed_;  // reused line by line
  core::FeedbackSpec feedback_;
  // What this run found, for the report (and, dry run, for loop closing).
  std::map<core::AggregateKey, core::Aggregate> found_;
  std::map<std::tuple<core::AnomalyKind, std::int64_t, std::string, std::string>, core::Anomaly>
      anomalies_;
  std::map<std::pair<std::string, std::int64_t>, std::int64_t> domain_hits_;
  Actions actions_;
  std::int64_t commits_ = 0;
  std::int64_t skipped_bytes_ = 0;  // content before the cursors: read by earlier runs
  std::int64_t files_read_ = 0;
};

void merge(std::map<core::AggregateKey, core::Aggregate>& into,
           const std::vector<core::Aggregate>& rows) {
  for (const auto& a : rows) {
    auto [it, fresh] = into.try_emplace(a.key, a);
    if (!fresh) it->second.count += a.count;
  }
}

Result<void> Run::apply_now(const maillog::Batch& b) {
  const auto now = obs::now_utc();
  auto sup = maillog::address_suppressions(b.addresses, feedback_, now);
  std::vector<core::Backoff> active;
  if (!o_.dry_run) {
    RAMPART_TRY(a, store_.backoffs(now));
    active = std::move(a);
  }
  auto pauses = maillog::pause_backoffs(b.pauses, feedback_, active, now);
  if (!o_.dry_run) {
    if (!sup.empty()) {
      RAMPART_TRY(n, store_.add_suppressions(feedback_.category, sup, now));
      (void)n;
    }
    for (const auto& p : pauses) {
      if (auto r = store_.set_backoff(p); !r) return tl::unexpected(r.error());
    }
  }
  for (auto& s : sup) actions_.add(std::move(s));
  for (auto& p : pauses) actions_.add(std::move(p));
  return {};
}

Run::Taken Run::take(Cursor& c) {
  Taken t{tally_.take(), c};
  c.from = c.to;
  c.lines = 0;
  return t;
}

Result<void> Run::commit_taken(Taken& t) {
  auto& b = t.batch;
  const Cursor& c = t.at;
  if (auto r = apply_now(b); !r) return r;
  if (!o_.dry_run && (c.to != c.from || !b.empty())) {
    store::ClassifyBatch batch;
    batch.identity = c.identity;
    batch.from_offset = c.from;
    batch.to_offset = c.to;
    batch.path = c.path;
    batch.aggregates = b.aggregates;
    batch.domain_hits = b.domain_hits;
    batch.anomalies = b.anomalies;
    RAMPART_TRY(ok, store_.commit_classify(batch));
    if (!ok) {
      return fail(Errc::Temporary,
                  fmt::format("{}: another rampart classify moved this log's cursor meanwhile; "
                              "stopped here (what it read is counted once, by it)",
                              c.path));
    }
    ++commits_;
  }
  merge(found_, b.aggregates);
  for (auto& a : b.anomalies) {
    auto [it, fresh] = anomalies_.try_emplace({a.kind, a.day, a.stream, a.subject}, a);
    if (!fresh) it->second.count += a.count;
  }
  if (o_.dry_run) {  // a real run reads the totals back from the store
    for (const auto& h : b.domain_hits) domain_hits_[{h.domain, h.day}] += h.count;
  }
  return {};
}

Result<std::optional<Run::Cursor>> Run::start(logreader::LogReader& r, const std::string& path) {
  RAMPART_TRY(id, r.identity());
  if (!id) {
    notes.push_back(fmt::format("{}: empty, nothing to read", path));
    return std::optional<Cursor>{};
  }
  Cursor c{*id, path == "-" ? "stdin" : path, 0, 0, 0};
  if (!o_.from_start) {
    RAMPART_TRY(stored, store_.cursor(*id));
    if (stored && stored->offset > 0) {
      RAMPART_TRY(ok, r.skip_to(stored->offset));
      if (!ok) {
        notes.push_back(
            fmt::format("{}: shorter than where an earlier run stopped ({} bytes): not read again",
                        path, stored->offset));
        return std::optional<Cursor>{};
      }
      c.from = c.to = stored->offset;
      skipped_bytes_ += stored->offset;
    }
  }
  return std::optional<Cursor>{c};
}

Result<void> Run::read_file(const std::string& path) {
  auto opened = logreader::LogReader::open(path);
  if (!opened) {
    std::fprintf(stderr, "rampart: classify: %s\n", opened.error().what.c_str());
    ++files_failed;
    return {};
  }
  auto& r = *opened;
  core::UnixTime reference = obs::now_utc();
  if (path != "-") {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) reference = st.st_mtime;
  }
  const maillog::Clock clock{reference, utc_offset_at(reference)};
  auto started = start(r, path);
  if (!started) {
    if (started.error().code != Errc::Invalid) return tl::unexpected(started.error());
    std::fprintf(stderr, "rampart: classify: %s\n", started.error().what.c_str());
    ++files_failed;
    return {};
  }
  if (!*started) return {};
  Cursor c = std::move(**started);
  ++files_read_;
  // A batch is taken in the turn of the chunk that brings the uncommitted lines to the batch size,
  // on either thread: where batches end depends on the log alone, not on which thread read what
  // (so does what loop closing finds per batch). Commits happen on the calling thread only (the
  // store is not the helper's to use), in order, right after its turns and after the read.
  std::optional<Error> commit_error;
  std::mutex taken_mu;
  std::deque<Taken> taken;
  const auto write_taken = [&] {
    for (;;) {
      std::optional<Taken> t;
      {
        const std::lock_guard lock(taken_mu);
        if (taken.empty()) return true;
        t = std::move(taken.front());
        taken.pop_front();
      }
      if (auto ok = commit_taken(*t); !ok) {
        commit_error = ok.error();
        return false;
      }
    }
  };
  TwoThreadRead reading(r, clock, tally_);
  const auto read_error = reading.run(
      [&](std::int64_t end, std::int64_t lines) {
        c.to = end;
        c.lines += lines;
        if (c.lines >= o_.batch) {
          auto t = take(c);
          const std::lock_guard lock(taken_mu);
          taken.push_back(std::move(t));
        }
        return true;
      },
      write_taken);
  if (!commit_error) write_taken();  // those the helper took after the calling thread's last turn
  if (commit_error) return tl::unexpected(*commit_error);
  if (read_error) {
    // The lines before the error are committed; the error is reported.
    RAMPART_DO(commit(c));
    std::fprintf(stderr, "rampart: classify: %s\n", read_error->what.c_str());
    ++files_failed;
    return {};
  }
  RAMPART_DO(commit(c));
  if (r.pending_tail() > 0) {
    notes.push_back(fmt::format("{}: {} bytes of an unfinished last line left for the next run",
                                path, r.pending_tail()));
  }
  return {};
}

Result<int> Run::follow(const std::string& path) {
  auto f = logreader::Follower::open(path);
  if (!f) {
    std::fprintf(stderr, "rampart: classify: %s\n", f.error().what.c_str());
    return kExitNoInput;
  }
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  core::UnixTime reference = obs::now_utc();
  maillog::Clock clock{reference, utc_offset_at(reference)};
  std::optional<Cursor> c;
  auto begin = [&]() -> Result<void> {
    RAMPART_TRY(started, start(f->reader(), path));
    c = std::move(started);
    if (c) ++files_read_;
    return {};
  };
  RAMPART_DO(begin());
  auto last_commit = std::chrono::steady_clock::now();
  const auto interval = std::chrono::seconds(o_.interval);
  auto flush = [&]() -> Result<void> {
    if (c) {
      RAMPART_DO(commit(*c));
    }
    RAMPART_DO(finish());
    // What this commit added (the summary counts since the start); nothing when idle.
    if (!found_.empty() || !anomalies_.empty() || !actions_.suppressions.empty() ||
        !actions_.backoffs.empty() || !notes.empty()) {
      print();
    }
    found_.clear();
    anomalies_.clear();
    actions_ = {};
    notes.clear();
    last_commit = std::chrono::steady_clock::now();
    return {};
  };
  while (!g_stop.load()) {
    const auto ev = f->next(std::chrono::milliseconds(500));
    if (ev == logreader::Follower::Event::Line) {
      if (!c) {
        // The file had no complete first line when we started: now it has.
        RAMPART_DO(begin());
      }
      if (c) feed(f->line(), clock, *c);
    } else if (ev == logreader::Follower::Event::Rotated) {
      RAMPART_DO(flush());
      c.reset();
      reference = obs::now_utc();
      clock = {reference, utc_offset_at(reference)};
      RAMPART_DO(begin());
    } else if (ev == logreader::Follower::Event::Error) {
      RAMPART_DO(flush());
      std::fprintf(stderr, "rampart: classify: %s\n", f->error().what.c_str());
      return kExitNoInput;
    }
    const bool due = std::chrono::steady_clock::now() - last_commit >= interval;
    if (c && ((due && c->lines > 0) || c->lines >= o_.batch)) {
      RAMPART_DO(flush());
    }
  }
  RAMPART_DO(flush());
  return kExitOk;
}

Result<void> Run::finish() {
  const auto& s = tally_.summary();
  if (found_.empty()) return {};  // no delivery read (domain hits come with deliveries)
  const auto now = obs::now_utc();
  std::int64_t min_day = found_.begin()->first.day, max_day = min_day;
  for (const auto& [k, a] : found_) {
    min_day = std::min(min_day, k.day);
    max_day = std::max(max_day, k.day);
  }
  const std::int64_t last_day = core::day_of(s.last_time);
  std::vector<core::Aggregate> days;  // the judged days, all runs (dry run: this run)
  std::vector<core::DomainHit> totals;
  std::vector<core::Backoff> active;
  if (o_.dry_run) {
    for (const auto& [k, a] : found_) days.push_back(a);
    std::map<std::string, core::DomainHit> per;
    for (const auto& [k, n] : domain_hits_) {
      if (k.second <= last_day - feedback_.domain_days) continue;
      auto& t = per[k.first];
      t.domain = k.first;
      t.day = std::max(t.day, k.second);
      t.count += n;
    }
    for (auto& [d, t] : per) totals.push_back(std::move(t));
  } else {
    RAMPART_TRY(rows, store_.aggregates(min_day - 1, max_day));
    days = std::move(rows);
    RAMPART_TRY(hits, store_.domain_hits(last_day - feedback_.domain_days + 1, last_day));
    totals = std::move(hits);
    RAMPART_TRY(a, store_.backoffs(now));
    active = std::move(a);
  }
  // Dead domains.
  auto sup = maillog::domain_suppressions(totals, feedback_, now);
  if (!o_.dry_run && !sup.empty()) {
    RAMPART_TRY(n, store_.add_suppressions(feedback_.category, sup, now));
    (void)n;
  }
  for (auto& x : sup) actions_.add(std::move(x));
  // Throttled / reputation share, on the days this run touched.
  std::vector<core::Aggregate> touched;
  for (const auto& a : days) {
    if (a.key.day >= min_day) touched.push_back(a);
  }
  auto backs = maillog::share_backoffs(touched, feedback_, active, s.last_time, now);
  for (const auto& b : backs) {
    if (!o_.dry_run) {
      if (auto r = store_.set_backoff(b); !r) return r;
    }
    actions_.add(b);
  }
  // Zero-delivery days: from the day before the first one read.
  std::map<std::pair<std::string, std::int64_t>, std::int64_t> accepted;
  for (const auto& a : days) {
    auto& n = accepted[{a.key.stream, a.key.day}];
    if (a.key.outcome == core::Outcome::Accepted) n += a.count;
  }
  auto zero = maillog::zero_delivery_days(accepted, last_day);
  if (!o_.dry_run && !zero.empty()) {
    if (auto r = store_.add_anomalies(zero); !r) return r;
  }
  for (auto& z : zero) anomalies_.try_emplace({z.kind, z.day, z.stream, z.subject}, z);
  return {};
}

std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

void Run::print() const {
  const auto& s = tally_.summary();
  std::string out;
  if (o_.json) {
    for (const auto& [k, a] : found_) {
      out += fmt::format(
          "{{\"day\": {}, \"stream\": {}, \"egress_ip\": {}, \"operator\": {}, \"outcome\": {}, "
          "\"category\": {}, \"status\": {}, \"count\": {}, \"sample\": {}}}\n",
          q(day_str(k.day)), q(k.stream), q(k.egress_ip), q(k.op), q(core::to_string(k.outcome)),
          q(k.category), q(k.status), a.count, q(a.sample));
    }
    std::string anomalies = "[";
    for (const auto& [id, a] : anomalies_) {
      anomalies += fmt::format(
          "{}{{\"kind\": {}, \"day\": {}, \"stream\": {}, \"subject\": {}, \"count\": {}, "
          "\"first\": {}, \"detail\": {}}}",
          anomalies.size() > 1 ? ", " : "", q(core::to_string(a.kind)), q(day_str(a.day)),
          q(a.stream), q(a.subject), a.count, q(core::format_utc(a.first)), q(a.detail));
    }
    anomalies += "]";
    std::string sups = "[";
    for (const auto& x : actions_.suppressions) {
      sups +=
          fmt::format("{}{{\"value\": {}, \"kind\": {}, \"expires\": {}, \"reason\": {}}}",
                      sups.size() > 1 ? ", " : "", q(x.value), q(x.domain ? "domain" : "address"),
                      x.expires != 0 ? q(core::format_utc(x.expires)) : "null", q(x.reason));
    }
    sups += "]";
    std::string backs = "[";
    for (const auto& b : actions_.backoffs) {
      backs += fmt::format(
          "{}{{\"stream\": {}, \"operator\": {}, \"factor\": {}, \"until\": {}, \"reason\": {}}}",
          backs.size() > 1 ? ", " : "", q(b.stream), q(b.op),
          static_cast<double>(b.permille) / 1000.0, q(core::format_utc(b.until)), q(b.reason));
    }
    backs += "]";
    std::string reasons = "{";
    for (const auto& [why, n] : s.unparsed_by_reason) {
      reasons += fmt::format("{}{}: {}", reasons.size() > 1 ? ", " : "", q(why), n);
    }
    reasons += "}";
    std::string notes_json = "[";
    for (const auto& n : notes) notes_json += (notes_json.size() > 1 ? ", " : "") + q(n);
    notes_json += "]";
    out += fmt::format(
        "{{\"summary\": {{\"dry_run\": {}, \"files\": {}, \"files_failed\": {}, \"lines\": {}, "
        "\"deliveries\": {}, \"sent\": {}, \"deferred\": {}, \"bounced\": {}, \"expired\": {}, "
        "\"unparsed\": {}, \"unparsed_by_reason\": {}, \"filter_hops\": {}, \"local_hops\": {}, "
        "\"other_status\": {}, \"unattributed\": {}, \"unknown_operator\": {}, "
        "\"backwards\": {}, \"skipped_bytes\": {}, \"anomalies\": {}, \"anomaly_list\": {}, "
        "\"suppressions\": {}, \"suppressions_total\": {}, \"backoffs\": {}, "
        "\"backoffs_total\": {}, \"notes\": {}}}}}\n",
        o_.dry_run, files_read_, files_failed, s.lines, s.deliveries, s.sent, s.deferred, s.bounced,
        s.expired, s.unparsed, reasons, s.filter_hops, s.local_hops, s.other_status, s.unattributed,
        s.unknown_operator, s.backwards, skipped_bytes_, anomalies_.size(), anomalies, sups,
        actions_.suppressions_total, backs, actions_.backoffs_total, notes_json);
  } else {
    if (!found_.empty()) {
      out += fmt::format("{:<10}  {:<10}  {:<15}  {:<18}  {:<17}  {:<19}  {:<7}  {:>7}  {}\n",
                         "DAY", "STREAM", "EGRESS_IP", "OPERATOR", "OUTCOME", "CATEGORY", "STATUS",
                         "COUNT", "SAMPLE");
      for (const auto& [k, a] : found_) {
        std::string sample = a.sample.substr(0, 70);
        out +=
            fmt::format("{:<10}  {:<10}  {:<15}  {:<18}  {:<17}  {:<19}  {:<7}  {:>7}  {}\n",
                        day_str(k.day), or_dash(k.stream), or_dash(k.egress_ip), or_dash(k.op),
                        core::to_string(k.outcome), k.category, or_dash(k.status), a.count, sample);
      }
    }
    for (const auto& [id, a] : anomalies_) {
      out +=
          fmt::format("anomaly {} {} stream={} subject={} count={}: {}\n", core::to_string(a.kind),
                      day_str(a.day), or_dash(a.stream), a.subject, a.count, a.detail);
    }
    const std::string_view verb = o_.dry_run ? "would suppress" : "suppressed";
    for (const auto& x : actions_.suppressions) {
      out += fmt::format("{} {} {} until {}: {}\n", verb, x.domain ? "domain" : "address", x.value,
                         x.expires != 0 ? core::format_utc(x.expires) : "never", x.reason);
    }
    for (const auto& b : actions_.backoffs) {
      out += fmt::format("{} stream={} operator={} factor={} until {}: {}\n",
                         o_.dry_run ? "would back off" : "backed off", b.stream, b.op,
                         static_cast<double>(b.permille) / 1000.0, core::format_utc(b.until),
                         b.reason);
    }
    const auto more =
        actions_.suppressions_total + actions_.backoffs_total -
        static_cast<std::int64_t>(actions_.suppressions.size() + actions_.backoffs.size());
    if (more > 0) out += fmt::format("... and {} more suppressions and back-offs\n", more);
    for (const auto& n : notes) out += fmt::format("note: {}\n", n);
    out += fmt::format(
        "{}{} files, {} lines: {} deliveries ({} sent, {} deferred, {} bounced, {} expired), "
        "{} unparsed, {} content-filter hops, {} local, {} anomalies{}\n",
        o_.dry_run ? "dry run: " : "", files_read_, s.lines, s.deliveries, s.sent, s.deferred,
        s.bounced, s.expired, s.unparsed, s.filter_hops, s.local_hops, anomalies_.size(),
        files_failed > 0 ? fmt::format(", {} logs unreadable", files_failed) : "");
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

int cmd_classify(const Context& ctx, const Args& args) {
  Options o;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    auto value = [&](std::string_view name) -> std::optional<std::string> {
      if (i + 1 >= args.size()) return std::nullopt;
      (void)name;
      return args[++i];
    };
    if (a == "--help" || a == "-h") {
      std::printf("%.*s\n", static_cast<int>(kUsage.size()), kUsage.data());
      return kExitOk;
    } else if (a == "--dry-run") {
      o.dry_run = true;
    } else if (a == "--from-start") {
      o.from_start = true;
    } else if (a == "--follow") {
      o.follow = true;
    } else if (a == "--format") {
      auto v = value(a);
      if (!v || (*v != "table" && *v != "json"))
        return usage_error("classify: --format wants table or json");
      o.json = *v == "json";
    } else if (a == "--batch" || a == "--interval") {
      auto v = value(a);
      std::int64_t n = 0;
      try {
        n = v ? std::stoll(*v) : 0;
      } catch (const std::exception&) {
        n = 0;
      }
      if (n < 1) return usage_error(fmt::format("classify: {} wants a positive number", a));
      (a == "--batch" ? o.batch : o.interval) = n;
    } else if (a == "-" || !a.starts_with("-")) {
      o.files.push_back(a);
    } else {
      return usage_error(fmt::format("classify: unknown option '{}'", a));
    }
  }
  if (o.files.empty()) return usage_error("classify: no log given (FILE... or - for stdin)");
  if (o.from_start && !o.dry_run)
    return usage_error("classify: --from-start counts logs again: only with --dry-run");
  if (o.follow && (o.files.size() != 1 || o.files[0] == "-"))
    return usage_error("classify: --follow takes exactly one FILE");
  if (o.follow && o.dry_run) return usage_error("classify: --follow writes: not with --dry-run");

  auto st = ctx.open_store();
  if (!st) return report(st.error());
  auto rs = store::load_ruleset(**st);
  if (!rs) return report(rs.error());
  auto cl = core::Classifier::compile((*rs)->spec().classify);
  if (!cl) return report(cl.error());
  if ((*rs)->spec().classify.empty()) {
    std::fprintf(stderr,
                 "rampart: classify: warning: the store has no [[classify]] rules; every reply "
                 "gets the built-in default (apply packaging/rules/classify.toml)\n");
  }
  Run run(o, **st, **rs, *cl);
  if (o.follow) {
    auto code = run.follow(o.files[0]);
    return code ? *code : report(code.error());
  }
  for (const auto& f : o.files) {
    if (auto r = run.read_file(f); !r) return report(r.error());
  }
  if (auto r = run.finish(); !r) return report(r.error());
  run.print();
  return run.files_failed > 0 ? kExitNoInput : kExitOk;
}

}  // namespace rampart::sidecar
