// Classifier: [[classify]] rules compiled into one RE2::Set (the prefilter: one DFA pass over
// the reply finds every rule whose pattern matches; it also reports bad patterns) plus per-rule
// RE2s, compiled on first use, for the linear reference path. Pure; RE2 error logging is switched
// off (core never logs).
#include "core/classify.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <re2/re2.h>
#include <re2/set.h>

#include "core/text.hpp"

namespace rampart::core {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// "d.ddd.ddd" at the start of s (class digit, then 1-3 digits twice); its length or 0.
std::size_t status_len(std::string_view s) {
  std::size_t i = 0;
  if (s.empty() || (s[0] != '2' && s[0] != '4' && s[0] != '5')) return 0;
  i = 1;
  for (int part = 0; part < 2; ++part) {
    if (i >= s.size() || s[i] != '.') return 0;
    ++i;
    const std::size_t start = i;
    while (i < s.size() && is_digit(s[i]) && i - start < 3) ++i;
    if (i == start) return 0;
  }
  if (i < s.size() && is_digit(s[i])) return 0;  // more than 3 digits
  return i;
}

re2::RE2::Options re2_options() {
  re2::RE2::Options o;
  o.set_case_sensitive(false);
  o.set_log_errors(false);
  o.set_encoding(re2::RE2::Options::EncodingLatin1);
  return o;
}

}  // namespace

ReplyCode parse_reply_code(std::string_view r) {
  ReplyCode out;
  std::size_t i = 0;
  while (i < r.size() && (r[i] == ' ' || r[i] == '\t')) ++i;
  r.remove_prefix(i);
  if (r.size() < 3 || !is_digit(r[0]) || !is_digit(r[1]) || !is_digit(r[2])) return out;
  if (r.size() > 3 && r[3] != ' ' && r[3] != '-') return out;
  if (r[0] < '2' || r[0] > '5') return out;
  out.code = (r[0] - '0') * 100 + (r[1] - '0') * 10 + (r[2] - '0');
  if (r.size() > 4) {
    const auto rest = r.substr(4);
    // RFC 3463: the enhanced status repeats the reply's class.
    if (const auto n = status_len(rest); n > 0 && rest[0] == r[0]) out.status = rest.substr(0, n);
  }
  return out;
}

bool valid_dsn_pattern(std::string_view p) {
  if (p.empty()) return true;
  std::size_t parts = 0;
  while (true) {
    const auto dot = p.find('.');
    const auto part = p.substr(0, dot);
    ++parts;
    const bool star = part == "*";
    const bool digits =
        !part.empty() && part.size() <= 3 && std::all_of(part.begin(), part.end(), is_digit);
    if (!star && !digits) return false;
    if (parts == 1 && digits && part != "2" && part != "4" && part != "5") return false;
    if (dot == std::string_view::npos) break;
    p.remove_prefix(dot + 1);
  }
  return parts <= 3;
}

bool dsn_matches(std::string_view p, std::string_view dsn) {
  if (p.empty()) return true;
  if (dsn.empty()) return false;
  while (true) {
    const auto pdot = p.find('.');
    const auto ddot = dsn.find('.');
    const auto pp = p.substr(0, pdot);
    const auto dp = dsn.substr(0, ddot);
    if (pp != "*" && pp != dp) return false;
    if (pdot == std::string_view::npos) {
      // A trailing "*" covers whatever is left; otherwise both must end here.
      return pp == "*" || ddot == std::string_view::npos;
    }
    if (ddot == std::string_view::npos) return false;
    p.remove_prefix(pdot + 1);
    dsn.remove_prefix(ddot + 1);
  }
}

std::pair<std::string_view, std::string_view> split_test_line(std::string_view line) {
  if (!line.starts_with("dsn=")) return {{}, line};
  const auto sp = line.find(' ');
  if (sp == std::string_view::npos) return {line.substr(4), {}};
  return {line.substr(4, sp - 4), line.substr(sp + 1)};
}

namespace {
// The dsn to match against: the caller's, else the reply's enhanced status, else "c.0.0" from
// the reply code (what Postfix itself logs for a reply without an enhanced status).
std::string_view effective_dsn(std::string_view reply, std::string_view dsn, char (&buf)[6]) {
  if (!dsn.empty()) return dsn;
  const auto rc = parse_reply_code(reply);
  if (!rc.status.empty()) return rc.status;
  if (rc.code == 0) return {};
  buf[0] = static_cast<char>('0' + rc.code / 100);
  buf[1] = '.';
  buf[2] = '0';
  buf[3] = '.';
  buf[4] = '0';
  buf[5] = 0;
  return {buf, 5};
}
}  // namespace

constexpr int kAnyChar = -1;
constexpr int kAnything = -2;

namespace {
// A dsn or a dsn pattern cut at its dots: the first three parts (a pattern has at most three)
// and how many there are. classify() cuts the dsn once and compares it with every rule's
// pattern, cut when the rules were compiled, instead of re-reading both strings per rule. Each
// part is also packed into one integer (its length and bytes; parts of up to 7 bytes, which is
// every real one) so that most compares are one integer compare.
struct DsnParts {
  static constexpr std::uint64_t kLong = ~std::uint64_t{0};  // a part of 8 bytes or more

  std::array<std::string_view, 3> part;
  std::array<std::uint64_t, 3> key{};
  std::size_t n = 0;  // 0: empty

  // A part's key: its length shifted above its bytes (distinct for distinct parts: no shorter
  // part reaches a longer one's length bits), kLong for 8 bytes or more. "*" is:
  static constexpr std::uint64_t kStar = (std::uint64_t{1} << 8) | '*';

  // One pass (every delivery classified cuts its dsn): each part's key is built as its bytes
  // go by.
  explicit DsnParts(std::string_view s = {}) {
    if (s.empty()) return;
    std::size_t start = 0;
    std::uint64_t bytes = 0;
    const auto close = [&](std::size_t end) {
      if (n < part.size()) {
        const std::size_t len = end - start;
        part[n] = s.substr(start, len);
        key[n] = len > 7 ? kLong : (std::uint64_t{len} << (8 * len)) | bytes;
      }
      ++n;
    };
    for (std::size_t i = 0; i < s.size(); ++i) {
      const char c = s[i];
      if (c == '.') {
        close(i);
        start = i + 1;
        bytes = 0;
      } else {
        bytes = (bytes << 8) | static_cast<unsigned char>(c);
      }
    }
    close(s.size());
  }

  // dsn_matches(pattern, dsn) for pattern = *this.
  bool matches(const DsnParts& dsn) const {
    if (n == 0) return true;
    if (dsn.n == 0 || n > part.size()) return false;
    for (std::size_t i = 0; i < n; ++i) {
      if (i >= dsn.n) return false;
      const bool star = key[i] == kStar;
      if (!star && (key[i] != dsn.key[i] || (key[i] == kLong && part[i] != dsn.part[i])))
        return false;
      if (i + 1 == n) return star || dsn.n == n;
    }
    return false;
  }
};

// Every compiled table's own number, so that a thread's memo never answers for another table.
std::atomic<std::uint64_t> g_tables{0};

// The set's answers for recent replies, per thread (classify() is const and thread-safe).
// Bulk mail meets the same reply many times over, word for word (one operator's deferral for
// one IP), and one DFA pass over it costs some 4,000 instructions; the memo costs a hash and a
// compare. Direct-mapped; replies over 512 bytes are not kept.
struct SetMemo {
  static constexpr std::size_t kMaxReply = 512;
  struct Entry {
    std::size_t hash = 0;
    bool used = false;
    std::string reply;
    std::vector<int> hits;  // sorted
  };
  std::uint64_t table = 0;
  std::array<Entry, 64> entries;
};
}  // namespace

struct Classifier::Impl {
  std::uint64_t id = ++g_tables;
  std::vector<ClassifySpec> rules;
  // One RE2 per rule for the linear path (the reference, and the way out when the set's DFA
  // runs out of memory), compiled when first needed: the set alone reports bad patterns, and
  // compiling these too cost every `rampart classify` about 5 ms before its first line.
  mutable std::once_flag res_once;
  mutable std::vector<std::unique_ptr<re2::RE2>> res;
  const std::vector<std::unique_ptr<re2::RE2>>& patterns() const {
    std::call_once(res_once, [this] {
      for (const auto& r : rules) res.push_back(std::make_unique<re2::RE2>(r.reply, re2_options()));
    });
    return res;
  }
  re2::RE2::Set set{re2_options(), re2::RE2::UNANCHORED};
  // Per rule: its index in `set`, or kAnyChar/kAnything for the patterns "." and ".*": the rule
  // is decided by its dsn/operator alone and never costs a regex. Set indices rise with rules.
  std::vector<int> set_index;
  std::vector<DsnParts> dsn_parts;  // per rule: its dsn pattern, cut (views into `rules`)
  bool set_empty = true;
  ClassifySpec fallback2, fallback4, fallback5;

  Classification fallback(std::string_view reply, std::string_view dsn) const {
    char klass = '4';
    if (const auto rc = parse_reply_code(reply); rc.code != 0) {
      klass = static_cast<char>('0' + rc.code / 100);
    } else if (!dsn.empty()) {
      klass = dsn[0];
    }
    const ClassifySpec* r = klass == '2' ? &fallback2 : klass == '5' ? &fallback5 : &fallback4;
    return {r, r->outcome, r->category};
  }
  bool accepts(std::size_t i, std::string_view dsn, std::string_view op) const {
    const auto& r = rules[i];
    return (r.op.empty() || r.op == op) && dsn_matches(r.dsn, dsn);
  }
  bool accepts(std::size_t i, const DsnParts& d, std::string_view op) const {
    const auto& r = rules[i];
    return (r.op.empty() || r.op == op) && dsn_parts[i].matches(d);
  }
  Classification hit(std::size_t i) const {
    return {&rules[i], rules[i].outcome, rules[i].category};
  }
};

Classifier::Classifier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Classifier::Classifier(Classifier&&) noexcept = default;
Classifier& Classifier::operator=(Classifier&&) noexcept = default;
Classifier::~Classifier() = default;

const std::vector<ClassifySpec>& Classifier::rules() const { return impl_->rules; }

Result<Classifier> Classifier::compile(std::vector<ClassifySpec> rules) {
  auto impl = std::make_unique<Impl>();
  impl->rules = std::move(rules);
  for (auto [f, outcome] : {std::pair{&impl->fallback2, Outcome::Accepted},
                            std::pair{&impl->fallback4, Outcome::DeferredOther},
                            std::pair{&impl->fallback5, Outcome::RejectOther}}) {
    f->id = "default";
    f->outcome = outcome;
    f->category = "other";
    f->origin.file = "built-in";
  }
  for (const auto& r : impl->rules) {
    impl->dsn_parts.emplace_back(r.dsn);
    if (r.reply == "." || r.reply == ".*") {
      impl->set_index.push_back(r.reply == "." ? kAnyChar : kAnything);
      continue;
    }
    std::string err;
    const int idx = impl->set.Add(r.reply, &err);
    if (idx < 0) {
      return fail(Errc::Config, fmt::format("{}: classify {:?}: bad pattern {:?}: {}",
                                            r.origin.where("reply"), r.id, r.reply, err));
    }
    impl->set_index.push_back(idx);
    impl->set_empty = false;
  }
  if (!impl->set_empty && !impl->set.Compile()) {
    return fail(Errc::Config,
                fmt::format("classify: the {} reply patterns are too large to compile together",
                            impl->rules.size()));
  }
  return Classifier(std::move(impl));
}

Classification Classifier::classify(std::string_view reply, std::string_view dsn,
                                    std::string_view op) const {
  const auto& im = *impl_;
  char buf[6];
  dsn = effective_dsn(reply, dsn, buf);
  const DsnParts parts(dsn);
  // Rules in order; the set runs once, at the first rule that passes its dsn/operator check
  // and needs a regex: one DFA pass over the reply answers every remaining pattern.
  // The set's answer, kept per thread from call to call: no allocation per reply.
  thread_local std::vector<int> hits;
  thread_local SetMemo memo;
  const std::vector<int>* answer = nullptr;
  for (std::size_t i = 0; i < im.rules.size(); ++i) {
    if (!im.accepts(i, parts, op)) continue;
    const int idx = im.set_index[i];
    if (idx == kAnything) return im.hit(i);
    if (idx == kAnyChar) {
      // What "." matches (no dotall): any character but a newline.
      if (reply.find_first_not_of('\n') != std::string_view::npos) return im.hit(i);
      continue;
    }
    if (answer == nullptr) {
      if (memo.table != im.id) {
        memo = SetMemo{};
        memo.table = im.id;
      }
      const bool keep = reply.size() <= SetMemo::kMaxReply;
      const std::size_t h = keep ? fast_hash(reply) : 0;
      SetMemo::Entry* e = keep ? &memo.entries[h % memo.entries.size()] : nullptr;
      if (e != nullptr && e->used && e->hash == h && e->reply == reply) {
        answer = &e->hits;
      } else {
        hits.clear();
        re2::RE2::Set::ErrorInfo info{};
        if (!im.set.Match(reply, &hits, &info) && info.kind != re2::RE2::Set::kNoError) {
          // DFA out of memory (pathological input): the per-rule path gives the same answer.
          return linear(reply, dsn, op);
        }
        std::sort(hits.begin(), hits.end());
        answer = &hits;
        if (e != nullptr) {
          e->used = true;
          e->hash = h;
          e->reply.assign(reply);
          e->hits = hits;
        }
      }
    }
    if (std::binary_search(answer->begin(), answer->end(), idx)) return im.hit(i);
  }
  return im.fallback(reply, dsn);
}

Classification Classifier::classify_linear(std::string_view reply, std::string_view dsn,
                                           std::string_view op) const {
  char buf[6];
  return linear(reply, effective_dsn(reply, dsn, buf), op);
}

Classification Classifier::linear(std::string_view reply, std::string_view dsn,
                                  std::string_view op) const {
  const auto& im = *impl_;
  const auto& res = im.patterns();
  for (std::size_t i = 0; i < im.rules.size(); ++i) {
    if (!im.accepts(i, dsn, op)) continue;
    if (res[i]->ok() && re2::RE2::PartialMatch(reply, *res[i])) return im.hit(i);
  }
  return im.fallback(reply, dsn);
}

Result<void> Classifier::check_tests() const {
  for (const auto& r : impl_->rules) {
    for (const auto& line : r.tests) {
      const auto [dsn, reply] = split_test_line(line);
      const auto got = classify(reply, dsn, r.op);
      if (got.rule == &r) continue;
      const std::string what =
          got.rule->id == "default"
              ? std::string("hits no rule")
              : fmt::format("hits rule {:?} ({}) first", got.rule->id, got.rule->origin.where());
      return fail(Errc::Config, fmt::format("{}: classify {:?}: test {:?} {} (no dead rules)",
                                            r.origin.where("tests"), r.id, line, what));
    }
  }
  return {};
}

}  // namespace rampart::core
