// The classify engine: parsed Postfix log lines in, reputation out (issue 5 points 2-7).
// Attributes each remote delivery to a stream, egress IP and receiving operator, classifies its
// reply with the [[classify]] table and counts it into aggregates; keeps the per-queue-id facts
// (rampart-milter's stream, OpenDKIM's signature, whether the message began in this log) that
// attribution and the anomalies need; and collects what loop closing acts on (bounced addresses,
// dead-domain replies, pauses). Pure: no I/O, no clock (times come from the lines).
//
// Feed lines in log order; take() hands over what accumulated since the last take() (one store
// transaction's worth) while the per-message state carries on.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/classify.hpp"
#include "core/limits.hpp"
#include "core/reputation.hpp"
#include "core/ruleset.hpp"
#include "maillog/line.hpp"

namespace rampart::maillog {

// A pause ([TSS04]-class reply, backoff = "pause") seen for a stream x operator.
struct PauseHit {
  std::string stream;
  std::string op;
  core::UnixTime time = 0;  // the latest such reply
  std::string rule;         // rule id
  std::string sample;       // the reply
  friend bool operator==(const PauseHit&, const PauseHit&) = default;
};

// A bounced address whose reply hit a rule with suppress = "address".
struct AddressHit {
  std::string address;  // lower case
  core::UnixTime time = 0;
  std::string rule;
  std::string reply;
  friend bool operator==(const AddressHit&, const AddressHit&) = default;
};

// What accumulated since the last take().
struct Batch {
  std::vector<core::Aggregate> aggregates;  // sorted by key
  std::vector<core::DomainHit> domain_hits;
  std::vector<core::Anomaly> anomalies;
  std::vector<AddressHit> addresses;
  std::vector<PauseHit> pauses;
  bool empty() const {
    return aggregates.empty() && domain_hits.empty() && anomalies.empty() && addresses.empty() &&
           pauses.empty();
  }
};

// Counters over everything fed (not reset by take()).
struct Summary {
  std::int64_t lines = 0;          // every line fed (including malformed and overlong ones)
  std::int64_t postfix = 0;        // Postfix lines (any kind but NotPostfix / Malformed)
  std::int64_t other_program = 0;  // well-formed syslog lines of other programs
  std::int64_t unparsed = 0;       // malformed + overlong: counted, never fatal
  std::int64_t overlong = 0;       // lines cut at the reader's maximum
  std::int64_t deliveries = 0;     // remote delivery records counted into aggregates
  std::int64_t sent = 0, deferred = 0, bounced = 0, expired = 0;  // of `deliveries`
  std::int64_t filter_hops = 0;   // smtp/lmtp to loopback (content filters): not counted
  std::int64_t local_hops = 0;    // local/virtual/pipe/...: not counted
  std::int64_t other_status = 0;  // status=undeliverable etc. (address probes): not counted
  // Lines stamped more than a minute before the latest stamp so far. Every line with a stamp
  // counts here and in first_time/last_time, even one that does not parse further.
  std::int64_t backwards = 0;
  std::int64_t unattributed = 0;      // deliveries in no stream
  std::int64_t unknown_operator = 0;  // deliveries to no [[operator]]
  std::int64_t anomalies = 0;         // anomaly occurrences
  // A stream's messages delivered without an OpenDKIM line in a batch in which OpenDKIM logged
  // nothing at all: not judged (OpenDKIM may log elsewhere).
  std::int64_t unsigned_unjudged = 0;
  std::map<std::string, std::int64_t, std::less<>> unparsed_by_reason;
  core::UnixTime first_time = 0, last_time = 0;  // the first stamp, the latest stamp
};

// The stamps of a run of lines in log order (a reader's chunk), summed up where the lines are
// parsed: how many lines, the stamps of those that have one, the latest, and the lines stamped
// more than a minute before the latest stamp before them in the run. Tally::count_lines() then
// looks again only at the run's first lines, while the run's own latest stamp is still below the
// Tally's.
class StampRun {
 public:
  void add(core::UnixTime t) {
    ++lines_;
    if (t + 60 < max_) ++backwards_;
    if (t > max_) max_ = t;
    dated_.push_back(t);
  }
  void add_undated() { ++lines_; }
  void clear() {
    lines_ = backwards_ = 0;
    max_ = kNone;
    dated_.clear();
  }

 private:
  friend class Tally;
  static constexpr core::UnixTime kNone = std::numeric_limits<core::UnixTime>::min();
  std::int64_t lines_ = 0;
  std::int64_t backwards_ = 0;
  core::UnixTime max_ = kNone;
  std::vector<core::UnixTime> dated_;
};

// Counts a line by its kind into `c`: Summary or Census, which share these fields.
template <class Counts>
void count_kind_into(Counts& c, const ParsedLine& line) {
  if (line.kind == Kind::Malformed) {
    ++c.unparsed;
    if (auto it = c.unparsed_by_reason.find(line.why); it != c.unparsed_by_reason.end()) {
      ++it->second;
    } else {
      c.unparsed_by_reason.emplace(line.why, 1);
    }
  } else if (line.kind == Kind::NotPostfix) {
    ++c.other_program;
  } else {
    ++c.postfix;
  }
}

// The counts of lines by kind (Summary's postfix, other_program and unparsed with its reasons,
// and the lines cut as overlong), kept where the lines are parsed, on any thread and in any order,
// and added to a Tally at once (Tally::add_census).
struct Census {
  std::int64_t postfix = 0, other_program = 0, unparsed = 0, overlong = 0;
  std::map<std::string, std::int64_t, std::less<>> unparsed_by_reason;

  void count(const ParsedLine& line) { count_kind_into(*this, line); }
  // A line cut at the reader's maximum: a line (Summary::lines) and unparsed, "line too long".
  void count_overlong() { ++overlong; }
};

class Tally {
 public:
  // `rules` and `classifier` must outlive the Tally. max_messages bounds the per-queue-id state
  // (oldest forgotten first; a forgotten message is attributed by its transport only).
  Tally(const core::RuleSet& rules, const core::Classifier& classifier,
        std::size_t max_messages = 1u << 17);
  ~Tally();
  Tally(Tally&&) noexcept;
  Tally& operator=(Tally&&) noexcept;

  void feed(const ParsedLine& line);

  // feed() in parts, for a reader that parses on several threads: feed(l) is the line's stamp
  // to a StampRun (or add_undated()) given to count_lines(), the line to a Census, then
  // feed_state(l) when stateful(l). count_lines() must see every line, in runs in log order: it
  // keeps the first, last and backwards counts. feed_state() takes the stateful lines in log
  // order. A Census counts the lines in any order, on any thread; add_census() adds it in.
  void count_lines(const StampRun& run);
  void add_census(const Census& census);
  void feed_state(const ParsedLine& line);
  // Whether feed() does more with a line than count it: deliveries, bind failures, the
  // reception and removal of messages, rampart-milter's and OpenDKIM's lines. Pure.
  // Compares, not a switch (a jump table's indirect branch, every line).
  static bool stateful(const ParsedLine& line) {
    const Kind k = line.kind;
    return k == Kind::Delivery || k == Kind::BindFailure ||
           (line.event != Event::None && (k == Kind::OtherPostfix || k == Kind::NotPostfix)) ||
           (k == Kind::ConnectFailure && line.failure->cannot_assign);
  }
  // A line the reader cut at its maximum length: counted as unparsed ("overlong").
  void overlong();

  // What accumulated since the last take(), sorted; the per-message state stays.
  Batch take();
  const Summary& summary() const;
  std::size_t tracked_messages() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The domain of an address (after the last '@'), "" when none.
std::string_view domain_of(std::string_view address);

// Days D (after the first day in `accepted`) on which a stream accepted nothing although it did
// on D-1, up to but not including `last_day` (a day the log has not finished is not judged).
// `accepted`: (stream, day) -> accepted count, for the days the caller looked at.
std::vector<core::Anomaly> zero_delivery_days(
    const std::map<std::pair<std::string, std::int64_t>, std::int64_t>& accepted,
    std::int64_t last_day);

}  // namespace rampart::maillog
