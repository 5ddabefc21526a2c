// Tally: see tally.hpp. The hot path is one delivery line: a transport lookup in a short vector,
// one hash lookup of the queue id, the operator by relay host (cached per host), one classify()
// and one hash-map bump keyed by interned pointers. Strings are copied only for new keys.
#include "maillog/tally.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "core/text.hpp"

namespace rampart::maillog {

namespace {

using core::fast_hash;

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return fast_hash(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

const std::string kEmpty;

// The per-queue-id state: open addressing with linear probing and the ids stored in the slots.
// A message costs no allocation (std::unordered_map<std::string, ...> allocated a node per
// message, and the eviction queue a string). Queue ids longer than kMaxKey (Postfix's are at most
// 20 characters) are not kept: such a message is attributed as a forgotten one would be.
// Bounded: when `limit` messages are kept, the older half (by insertion) is forgotten at once.
template <class V>
class QidTable {
 public:
  static constexpr std::size_t kMaxKey = 32;

  explicit QidTable(std::size_t limit) : limit_(std::max<std::size_t>(limit, 2)) { rehash(16); }

  V* find(std::string_view qid) {
    if (qid.empty() || qid.size() > kMaxKey) return nullptr;
    const auto h = static_cast<std::uint32_t>(fast_hash(qid));
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.len == 0) return nullptr;
      if (s.hash == h && matches(s, qid)) return &s.value;
    }
  }

  // The entry for qid, made (value-initialised) when new; nullptr for an id too long to keep.
  // Pointers stay valid until the next insertion.
  V* get(std::string_view qid) {
    if (V* v = find(qid)) return v;
    if (qid.empty() || qid.size() > kMaxKey) return nullptr;
    if (size_ >= limit_) forget_older_half();
    if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.size() * 2);
    const auto h = static_cast<std::uint32_t>(fast_hash(qid));
    std::size_t i = h & mask_;
    while (slots_[i].len != 0) i = (i + 1) & mask_;
    Slot& s = slots_[i];
    s.hash = h;
    s.len = static_cast<std::uint8_t>(qid.size());
    std::memcpy(s.key.data(), qid.data(), qid.size());
    s.value = V{};
    s.gen = ++gen_;
    ++size_;
    return &s.value;
  }

  void erase(std::string_view qid) {
    if (qid.empty() || qid.size() > kMaxKey) return;
    const auto h = static_cast<std::uint32_t>(fast_hash(qid));
    std::size_t i = h & mask_;
    for (;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.len == 0) return;
      if (s.hash == h && matches(s, qid)) break;
    }
    // Backward-shift deletion: pull later entries of the run into the hole where their home
    // slot allows, so lookups never need tombstones.
    slots_[i].len = 0;
    --size_;
    for (std::size_t j = (i + 1) & mask_; slots_[j].len != 0; j = (j + 1) & mask_) {
      const std::size_t home = slots_[j].hash & mask_;
      // Whether home lies cyclically in (i, j]: then the entry must stay.
      const bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (stays) continue;
      slots_[i] = slots_[j];
      slots_[j].len = 0;
      i = j;
    }
  }

  std::size_t size() const { return size_; }

 private:
  struct Slot {
    std::uint32_t hash = 0;
    std::uint8_t len = 0;  // 0: empty
    std::array<char, kMaxKey> key{};
    std::uint64_t gen = 0;  // insertion order
    V value{};
  };

  static bool matches(const Slot& s, std::string_view qid) {
    return s.len == qid.size() && std::memcmp(s.key.data(), qid.data(), qid.size()) == 0;
  }

  void rehash(std::size_t capacity) {
    std::vector<Slot> old(capacity);
    old.swap(slots_);
    mask_ = capacity - 1;
    for (const Slot& s : old) {
      if (s.len == 0) continue;
      std::size_t i = s.hash & mask_;
      while (slots_[i].len != 0) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  // Keeps the newer half of the entries: a rebuild, once per limit/2 insertions.
  void forget_older_half() {
    const std::uint64_t keep_from = gen_ - limit_ / 2 + 1;
    std::vector<Slot> old(slots_.size());
    old.swap(slots_);
    size_ = 0;
    for (const Slot& s : old) {
      if (s.len == 0 || s.gen < keep_from) continue;
      std::size_t i = s.hash & mask_;
      while (slots_[i].len != 0) i = (i + 1) & mask_;
      slots_[i] = s;
      ++size_;
    }
  }

  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
  std::size_t limit_;
  std::uint64_t gen_ = 0;
};

// Log bytes as stored and printed: valid UTF-8 (PostgreSQL TEXT, JSON), bounded.
std::string sample_of(std::string_view reply) {
  auto out = core::utf8_clean(reply.substr(0, core::kSampleMax));
  if (out.size() > core::kSampleMax) out.resize(core::kSampleMax);
  return out;
}

// The value of `key=` in space-separated key=value fields, "" when absent.
std::string_view field(std::string_view fields, std::string_view key) {
  std::size_t pos = 0;
  while (pos < fields.size()) {
    auto end = fields.find(' ', pos);
    if (end == std::string_view::npos) end = fields.size();
    const auto item = fields.substr(pos, end - pos);
    if (item.size() > key.size() && item.starts_with(key) && item[key.size()] == '=')
      return item.substr(key.size() + 1);
    pos = end + 1;
  }
  return {};
}

}  // namespace

std::string_view domain_of(std::string_view address) {
  // memrchr: string_view::rfind goes back one byte at a time.
  const void* at = address.empty() ? nullptr : ::memrchr(address.data(), '@', address.size());
  if (at == nullptr) return {};
  const auto pos = static_cast<std::size_t>(static_cast<const char*>(at) - address.data());
  return address.substr(pos + 1);
}

std::vector<core::Anomaly> zero_delivery_days(
    const std::map<std::pair<std::string, std::int64_t>, std::int64_t>& accepted,
    std::int64_t last_day) {
  std::vector<core::Anomaly> out;
  // Streams and the days seen per stream.
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> span;  // stream -> (min, max day)
  for (const auto& [k, n] : accepted) {
    auto [it, fresh] = span.try_emplace(k.first, k.second, k.second);
    if (!fresh) {
      it->second.first = std::min(it->second.first, k.second);
      it->second.second = std::max(it->second.second, k.second);
    }
  }
  for (const auto& [stream, range] : span) {
    if (stream.empty()) continue;
    for (std::int64_t d = range.first + 1; d < last_day; ++d) {
      const auto before = accepted.find({stream, d - 1});
      const auto today = accepted.find({stream, d});
      const bool had = before != accepted.end() && before->second > 0;
      const bool none = today == accepted.end() || today->second == 0;
      if (!had || !none) continue;
      core::Anomaly a;
      a.kind = core::AnomalyKind::ZeroDeliveries;
      a.day = d;
      a.stream = stream;
      a.subject = core::Date{static_cast<std::int32_t>(d)}.str();
      a.first = d * core::kDaySeconds;
      a.detail = fmt::format("stream {} delivered nothing on {} after {} accepted on {}", stream,
                             a.subject, before->second,
                             core::Date{static_cast<std::int32_t>(d - 1)}.str());
      out.push_back(std::move(a));
    }
  }
  return out;
}

struct Tally::Impl {
  struct Msg {
    const core::StreamSpec* milter_stream = nullptr;
    bool began = false;  // its reception (smtpd client= / pickup) is in what was fed
    bool signed_ = false;
    bool unsigned_counted = false;
    bool egress_counted = false;
  };
  struct Key {
    std::int64_t day;
    const core::StreamSpec* stream;
    const std::string* egress;
    const core::OperatorSpec* op;
    core::Outcome outcome;
    const std::string* category;
    const std::string* status;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept {
      std::size_t h = std::hash<std::int64_t>{}(k.day);
      auto mix = [&h](const void* p) {
        h ^= std::hash<const void*>{}(p) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
      };
      mix(k.stream);
      mix(k.egress);
      mix(k.op);
      mix(k.category);
      mix(k.status);
      return h ^ static_cast<std::size_t>(k.outcome);
    }
  };
  struct Value {
    std::int64_t count = 0;
    std::string sample;
  };
  using AnomalyId = std::tuple<core::AnomalyKind, std::int64_t, std::string, std::string>;

  const core::RuleSet& rules;
  const core::Classifier& classifier;
  std::size_t max_messages;

  std::vector<std::pair<std::string_view, const core::StreamSpec*>> by_transport;
  QidTable<Msg> msgs;
  std::unordered_map<std::uint64_t, std::string> bind_pending;  // (host, pid) -> address
  StringMap<const core::OperatorSpec*> op_by_host;
  StringMap<const core::OperatorSpec*> op_by_domain;
  std::string dom_buf;  // operator_of()'s lower-cased domain
  // operator_of()'s recent (relay host, recipient domain as logged) pairs, direct-mapped: a hit
  // costs two hashes and two compares instead of lower-casing the domain and two map lookups.
  // `slot` is the domain's value in op_by_domain (node values stay put until the map is
  // cleared, and then so is this).
  struct OpMemo {
    std::string host, domain;
    const core::OperatorSpec* op = nullptr;
    const core::OperatorSpec** slot = nullptr;
  };
  std::array<OpMemo, 64> op_memo;
  std::unordered_set<std::string, StringHash, std::equal_to<>> statuses;

  std::unordered_map<Key, Value, KeyHash> aggs;
  std::map<AnomalyId, core::Anomaly> anomalies;
  // Unsigned deliveries wait here until the log shows OpenDKIM logging to it at all: a log
  // without OpenDKIM's lines (Postfix's own maillog_file, another syslog facility) proves nothing.
  std::map<AnomalyId, core::Anomaly> unsigned_pending;
  bool saw_opendkim = false;
  std::map<std::pair<std::string, std::int64_t>, std::int64_t> domain_hits;
  StringMap<AddressHit> addresses;
  // Per (stream, operator); the sample is kept raw (cut at kSampleMax) and cleaned by take().
  std::map<std::pair<const core::StreamSpec*, const core::OperatorSpec*>, PauseHit> pauses;
  Summary sum;

  Impl(const core::RuleSet& r, const core::Classifier& c, std::size_t max)
      : rules(r), classifier(c), max_messages(std::max<std::size_t>(max, 16)), msgs(max_messages) {
    for (const auto& s : rules.spec().streams) {
      if (!s.transport.empty()) by_transport.emplace_back(s.transport, &s);
    }
  }

  // The stream whose transport logs under this syslog_name: "postfix/out05" or "out05" or a
  // multi-instance name "postfix-out05" whose last component is the transport.
  const core::StreamSpec* stream_for(std::string_view syslog_name) const {
    const auto slash = syslog_name.rfind('/');
    const auto last = slash == std::string_view::npos ? syslog_name : syslog_name.substr(slash + 1);
    for (const auto& [t, s] : by_transport) {
      if (t == last || t == syslog_name) return s;
    }
    return nullptr;
  }

  const core::StreamSpec* stream_with_ip(std::string_view ip) const {
    for (const auto& s : rules.spec().streams) {
      if (!s.egress_ip.empty() && s.egress_ip == ip) return &s;
    }
    return nullptr;
  }

  // The message's state, made when new; nullptr for a queue id too long to keep.
  Msg* msg(std::string_view qid) { return msgs.get(qid); }

  Msg* find_msg(std::string_view qid) { return msgs.find(qid); }

  static std::uint64_t proc_key(const Header& h) {
    return fast_hash(h.host) * 1000003u ^ h.pid().value_or(0) ^ (fast_hash(h.program) << 1);
  }

  void anomaly(core::AnomalyKind kind, core::UnixTime t, std::string_view stream,
               std::string_view subject, std::string detail) {
    const std::int64_t day = core::day_of(t);
    AnomalyId id{kind, day, std::string(stream), core::utf8_clean(subject)};
    const bool pending = kind == core::AnomalyKind::Unsigned && !saw_opendkim;
    auto& into = pending ? unsigned_pending : anomalies;
    auto [it, fresh] = into.try_emplace(std::move(id));
    if (fresh) {
      it->second.kind = kind;
      it->second.day = day;
      it->second.stream = std::string(stream);
      it->second.subject = std::get<3>(it->first);
      it->second.first = t;
      it->second.count = 1;
      it->second.detail = core::utf8_clean(detail);
    } else {
      ++it->second.count;
    }
    if (!pending) ++sum.anomalies;
  }

  const core::OperatorSpec* operator_of(const Delivery& d) {
    const auto raw = domain_of(d.recipient);
    const bool connected = !d.relay_ip.empty() && !d.relay_host.empty() && d.relay_host != "none";
    OpMemo* memo = nullptr;
    if (connected && !raw.empty()) {
      memo = &op_memo[(fast_hash(d.relay_host) ^ (fast_hash(raw) * 31)) % op_memo.size()];
      if (memo->slot != nullptr && memo->host == d.relay_host && memo->domain == raw) {
        *memo->slot = memo->op;  // the domain's operator is the one last seen for it
        return memo->op;
      }
    }
    const auto* op = operator_of_slow(d, raw, connected);
    if (memo != nullptr) {
      memo->host.assign(d.relay_host);
      memo->domain.assign(raw);
      memo->op = op;
      memo->slot = &op_by_domain.find(std::string_view(dom_buf))->second;
    }
    return op;
  }

  void forget_op_memo() {
    for (auto& m : op_memo) m.slot = nullptr;
  }

  const core::OperatorSpec* operator_of_slow(const Delivery& d, std::string_view raw,
                                             bool connected) {
    // Lower-cased into a buffer kept from call to call: no allocation per delivery.
    dom_buf.assign(raw);
    for (auto& c : dom_buf) {
      c = core::ascii_lower(c);
    }
    const std::string_view dom = dom_buf;
    if (connected) {
      const core::OperatorSpec* op = nullptr;
      if (auto it = op_by_host.find(d.relay_host); it != op_by_host.end()) {
        op = it->second;
      } else {
        if (op_by_host.size() > 20000) op_by_host.clear();
        op = rules.operator_for_host(d.relay_host);
        op_by_host.emplace(std::string(d.relay_host), op);
      }
      if (!dom.empty()) {
        if (auto it = op_by_domain.find(dom); it != op_by_domain.end()) {
          it->second = op;
        } else {
          if (op_by_domain.size() > 50000) {
            op_by_domain.clear();
            forget_op_memo();
          }
          op_by_domain.emplace(std::string(dom), op);
        }
      }
      return op;
    }
    // relay=none (no connection was made): the operator this run last saw for the domain.
    if (auto it = op_by_domain.find(dom); !dom.empty() && it != op_by_domain.end())
      return it->second;
    return nullptr;
  }

  const std::string* intern_status(std::string_view s) {
    if (s.empty()) return &kEmpty;
    auto it = statuses.find(s);
    if (it == statuses.end()) it = statuses.emplace(s).first;
    return &*it;
  }

  void delivery(const ParsedLine& line) {
    const Delivery& d = *line.delivery;
    const auto& h = line.header;
    if (d.status == Status::Other) {
      ++sum.other_status;
      return;
    }
    if (d.hop == Hop::Loopback) {
      ++sum.filter_hops;
      return;
    }
    if (d.hop == Hop::Local) {
      ++sum.local_hops;
      return;
    }
    ++sum.deliveries;
    switch (d.status) {
      case Status::Sent: ++sum.sent; break;
      case Status::Deferred: ++sum.deferred; break;
      case Status::Bounced: ++sum.bounced; break;
      case Status::Expired: ++sum.expired; break;
      case Status::Other: break;
    }
    const core::StreamSpec* by_transport_stream = stream_for(h.syslog_name);
    Msg* m = find_msg(d.queue_id);
    const core::StreamSpec* stream =
        m != nullptr && m->milter_stream != nullptr ? m->milter_stream : by_transport_stream;
    const std::string* egress =
        by_transport_stream != nullptr ? &by_transport_stream->egress_ip : &kEmpty;
    const bool connected = !d.relay_ip.empty();
    const std::string_view sname = stream != nullptr ? std::string_view(stream->name) : "";

    // Egress from an address that is not the stream's (incident 10).
    // Mostly no bind failure is pending: then the process key need not be computed.
    const auto pending = bind_pending.empty() ? bind_pending.end() : bind_pending.find(proc_key(h));
    if (pending != bind_pending.end()) {
      if (connected) {
        anomaly(core::AnomalyKind::UnexpectedEgress, h.time, sname, pending->second,
                fmt::format("{}[{}] could not bind {} and delivered queue id {} from another "
                            "address (set smtp_bind_address_enforce = yes)",
                            h.program, h.pid().value_or(0), pending->second, d.queue_id));
        egress = &kEmpty;
      }
      bind_pending.erase(pending);
    } else if (m != nullptr && m->milter_stream != nullptr && connected &&
               by_transport_stream != m->milter_stream && !m->egress_counted) {
      m->egress_counted = true;
      const std::string_view via =
          by_transport_stream != nullptr ? std::string_view(by_transport_stream->egress_ip) : "";
      anomaly(core::AnomalyKind::UnexpectedEgress, h.time, sname,
              by_transport_stream != nullptr ? by_transport_stream->transport : h.syslog_name,
              fmt::format("stream {} message {} left through {} (egress {}), not its transport {} "
                          "({})",
                          sname, d.queue_id, h.syslog_name, via.empty() ? "default" : via,
                          m->milter_stream->transport.empty() ? "-" : m->milter_stream->transport,
                          m->milter_stream->egress_ip.empty() ? "-" : m->milter_stream->egress_ip));
    }
    if (stream == nullptr) ++sum.unattributed;

    const core::OperatorSpec* op = operator_of(d);
    if (op == nullptr) ++sum.unknown_operator;
    const auto reply = d.reply;
    const auto cls = classifier.classify(reply, d.enhanced_status,
                                         op != nullptr ? op->name : std::string_view{});

    // A delivered message of a stream that OpenDKIM did not sign (incident 5).
    if (d.status == Status::Sent && stream != nullptr && m != nullptr && m->began && !m->signed_ &&
        !m->unsigned_counted) {
      m->unsigned_counted = true;
      anomaly(core::AnomalyKind::Unsigned, h.time, sname, "no-dkim-signature",
              fmt::format("stream {} delivered queue id {} with no OpenDKIM \"DKIM-Signature "
                          "field added\" line",
                          sname, d.queue_id));
    }

    const Key key{core::day_of(h.time),
                  stream,
                  egress,
                  op,
                  cls.outcome,
                  &cls.rule->category,
                  intern_status(d.enhanced_status)};
    auto [agg, fresh] = aggs.try_emplace(key);
    ++agg->second.count;
    if (fresh) agg->second.sample = sample_of(reply);

    if (cls.rule->suppress == core::SuppressScope::Address && d.status == Status::Bounced) {
      auto addr = core::ascii_lower(d.recipient);
      if (!addr.empty() && !domain_of(addr).empty()) {
        auto& a = addresses[addr];
        if (a.address.empty() || a.time <= h.time) {
          a = AddressHit{addr, h.time, cls.rule->id,
                         std::string(reply.substr(0, core::kSampleMax))};
        }
      }
    } else if (cls.rule->suppress == core::SuppressScope::Domain) {
      if (auto dom = core::normalize_domain(domain_of(d.recipient)))
        ++domain_hits[{*dom, core::day_of(h.time)}];
    }
    if (cls.rule->backoff == core::BackoffHint::Pause && stream != nullptr && op != nullptr) {
      auto& p = pauses[{stream, op}];
      if (p.stream.empty() || p.time <= h.time) {
        // In place: a burst of such replies costs no allocation per reply.
        p.stream = stream->name;
        p.op = op->name;
        p.time = h.time;
        p.rule = cls.rule->id;
        p.sample.assign(reply.substr(0, core::kSampleMax));
      }
    }
  }

  void other_program(const ParsedLine& line) {
    switch (line.event) {
      case Event::Pinned: {
        const auto rest = line.header.message.substr(line.queue_id.size() + 2);
        const auto name = field(rest, "stream");
        const core::StreamSpec* s = name.empty() || name == "-" ? nullptr : rules.stream(name);
        if (s == nullptr) return;
        if (Msg* m = msg(line.queue_id)) m->milter_stream = s;
        break;
      }
      case Event::Signed:
        saw_opendkim = true;
        if (Msg* m = msg(line.queue_id)) {
          m->signed_ = true;
          m->began = true;
        }
        break;
      case Event::OpenDkim: saw_opendkim = true; break;
      case Event::None:
      case Event::Received:
      case Event::Removed: break;
    }
  }

  void postfix_other(const ParsedLine& line) {
    switch (line.event) {
      case Event::Received:
        if (Msg* m = msg(line.queue_id)) m->began = true;
        break;
      case Event::Removed: msgs.erase(line.queue_id); break;
      case Event::None:
      case Event::Pinned:
      case Event::Signed:
      case Event::OpenDkim: break;
    }
  }

  void bind_failure(const ParsedLine& line) {
    const auto& f = *line.failure;
    const auto& h = line.header;
    const auto* s = stream_with_ip(f.address);
    anomaly(core::AnomalyKind::BindFailure, h.time, s != nullptr ? std::string_view(s->name) : "",
            f.address,
            fmt::format("{}[{}]: bind {}: {}{}", h.program, h.pid().value_or(0), f.address,
                        f.reason, s == nullptr ? " (no stream's egress_ip)" : ""));
    // One entry per smtp process that failed to bind, until its next delivery; processes that
    // exit without one would leave theirs behind, so the map is bounded.
    if (bind_pending.size() > 10000) bind_pending.clear();
    bind_pending[proc_key(h)] = std::string(f.address);
  }

  void count_line(bool dated, core::UnixTime t) {
    ++sum.lines;
    if (!dated) return;
    if (sum.first_time == 0) sum.first_time = t;
    if (t + 60 < sum.last_time) ++sum.backwards;
    sum.last_time = std::max(sum.last_time, t);
  }

  void feed_state(const ParsedLine& line) {
    if (line.kind == Kind::NotPostfix) {
      other_program(line);
      return;
    }
    switch (line.kind) {
      case Kind::Delivery: delivery(line); break;
      case Kind::BindFailure: bind_failure(line); break;
      case Kind::ConnectFailure:
        if (line.failure->cannot_assign) bind_failure(line);
        break;
      case Kind::OtherPostfix: postfix_other(line); break;
      case Kind::MessageExpired:
      case Kind::NotPostfix:
      case Kind::Malformed: break;
    }
  }

  Batch take() {
    Batch b;
    std::map<core::AggregateKey, core::Aggregate> merged;
    for (auto& [k, v] : aggs) {
      core::AggregateKey ak{k.day,     k.stream != nullptr ? k.stream->name : std::string(),
                            *k.egress, k.op != nullptr ? k.op->name : std::string(),
                            k.outcome, *k.category,
                            *k.status};
      auto [it, fresh] = merged.try_emplace(ak);
      if (fresh) {
        it->second.key = std::move(ak);
        it->second.sample = std::move(v.sample);
      }
      it->second.count += v.count;
    }
    aggs.clear();
    for (auto& [k, a] : merged) b.aggregates.push_back(std::move(a));
    for (auto& [k, n] : domain_hits) b.domain_hits.push_back({k.first, k.second, n});
    domain_hits.clear();
    for (auto& [k, a] : unsigned_pending) {
      if (saw_opendkim) {
        sum.anomalies += a.count;
        auto [it, fresh] = anomalies.try_emplace(k, a);
        if (!fresh) it->second.count += a.count;
      } else {
        sum.unsigned_unjudged += a.count;
      }
    }
    unsigned_pending.clear();
    for (auto& [k, a] : anomalies) b.anomalies.push_back(std::move(a));
    anomalies.clear();
    for (auto& [k, a] : addresses) b.addresses.push_back(std::move(a));
    addresses.clear();
    std::sort(b.addresses.begin(), b.addresses.end(),
              [](const AddressHit& x, const AddressHit& y) { return x.address < y.address; });
    for (auto& [k, p] : pauses) {
      p.sample = sample_of(p.sample);
      b.pauses.push_back(std::move(p));
    }
    pauses.clear();
    std::sort(b.pauses.begin(), b.pauses.end(), [](const PauseHit& x, const PauseHit& y) {
      return std::tie(x.stream, x.op) < std::tie(y.stream, y.op);
    });
    return b;
  }
};

Tally::Tally(const core::RuleSet& rules, const core::Classifier& classifier,
             std::size_t max_messages)
    : impl_(std::make_unique<Impl>(rules, classifier, max_messages)) {}
Tally::~Tally() = default;
Tally::Tally(Tally&&) noexcept = default;
Tally& Tally::operator=(Tally&&) noexcept = default;

void Tally::feed(const ParsedLine& line) {
  impl_->count_line(line.dated, line.header.time);
  count_kind_into(impl_->sum, line);
  if (stateful(line)) impl_->feed_state(line);
}
void Tally::count_lines(const StampRun& run) {
  Summary& s = impl_->sum;
  s.lines += run.lines_;
  const auto& dated = run.dated_;
  // As count_line(): the first stamp is kept while the one kept is 0.
  for (std::size_t i = 0; i < dated.size() && s.first_time == 0; ++i) s.first_time = dated[i];
  // A line is backwards against the latest stamp before it: the run counted against its own
  // lines before it, which is right once their latest reaches the Tally's (`before`); the
  // lines until then are counted again against that.
  std::int64_t backwards = run.backwards_;
  const core::UnixTime before = s.last_time;
  core::UnixTime run_max = StampRun::kNone;
  for (std::size_t i = 0; i < dated.size() && run_max < before; ++i) {
    const auto t = dated[i];
    backwards += static_cast<int>(t + 60 < before) - static_cast<int>(t + 60 < run_max);
    run_max = std::max(run_max, t);
  }
  s.backwards += backwards;
  if (!dated.empty()) s.last_time = std::max(before, run.max_);
}
void Tally::add_census(const Census& c) {
  Summary& s = impl_->sum;
  s.postfix += c.postfix;
  s.other_program += c.other_program;
  s.unparsed += c.unparsed + c.overlong;
  s.overlong += c.overlong;
  s.lines += c.overlong;
  for (const auto& [why, n] : c.unparsed_by_reason) s.unparsed_by_reason[why] += n;
  if (c.overlong > 0) s.unparsed_by_reason["line too long"] += c.overlong;
}
void Tally::feed_state(const ParsedLine& line) { impl_->feed_state(line); }
void Tally::overlong() {
  ++impl_->sum.lines;
  ++impl_->sum.unparsed;
  ++impl_->sum.overlong;
  ++impl_->sum.unparsed_by_reason["line too long"];
}
Batch Tally::take() { return impl_->take(); }
const Summary& Tally::summary() const { return impl_->sum; }
std::size_t Tally::tracked_messages() const { return impl_->msgs.size(); }

}  // namespace rampart::maillog
