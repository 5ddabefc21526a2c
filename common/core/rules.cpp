// The rules data model: enum names, dates, merging of rule files and whole-set validation.
// Pure; no I/O. Error texts name file:line and the key: `rules.toml:14: stream "bulk": ...`.
#include "core/rules.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "core/cidr_set.hpp"
#include "core/classify.hpp"
#include "core/text.hpp"

namespace rampart::core {

int Origin::line_of(std::string_view key) const {
  for (const auto& [k, l] : key_lines) {
    if (k == key) return l;
  }
  return line;
}

std::string Origin::where() const { return line > 0 ? fmt::format("{}:{}", file, line) : file; }

std::string Origin::where(std::string_view key) const {
  const int l = line_of(key);
  return l > 0 ? fmt::format("{}:{}", file, l) : file;
}

std::string_view to_string(OverCap v) { return v == OverCap::Hold ? "hold" : "defer"; }
std::string_view to_string(Hygiene v) { return v == Hygiene::Refuse ? "refuse" : "warn"; }
std::string_view to_string(WarmupCount v) {
  return v == WarmupCount::Calendar ? "calendar" : "send-days";
}
std::string_view to_string(ExclusionAction v) {
  switch (v) {
    case ExclusionAction::Reject: return "reject";
    case ExclusionAction::Hold: return "hold";
    case ExclusionAction::Discard: return "discard";
  }
  return "reject";
}

bool FeedbackSpec::operator==(const FeedbackSpec& o) const {
  return category == o.category && suppress_addresses == o.suppress_addresses &&
         address_expiry_days == o.address_expiry_days && suppress_domains == o.suppress_domains &&
         domain_replies == o.domain_replies && domain_days == o.domain_days &&
         domain_expiry_days == o.domain_expiry_days && backoff == o.backoff &&
         backoff_percent == o.backoff_percent && backoff_min_attempts == o.backoff_min_attempts &&
         backoff_factor_percent == o.backoff_factor_percent && backoff_hours == o.backoff_hours &&
         pause == o.pause && pause_hours == o.pause_hours;
}

namespace {
constexpr std::pair<Outcome, std::string_view> kOutcomes[] = {
    {Outcome::Accepted, "accepted"},
    {Outcome::Throttled, "throttled"},
    {Outcome::DeferredOther, "deferred_other"},
    {Outcome::RejectReputation, "reject_reputation"},
    {Outcome::RejectContent, "reject_content"},
    {Outcome::RejectRecipient, "reject_recipient"},
    {Outcome::RejectPolicy, "reject_policy"},
    {Outcome::RejectOther, "reject_other"},
};
}  // namespace

std::string_view to_string(Outcome v) {
  for (const auto& [o, name] : kOutcomes) {
    if (o == v) return name;
  }
  return "reject_other";
}
std::string_view to_string(SuppressScope v) {
  return v == SuppressScope::Domain ? "domain" : "address";
}
std::string_view to_string(BackoffHint v) { return v == BackoffHint::Pause ? "pause" : "slow"; }
std::optional<Outcome> parse_outcome(std::string_view s) {
  for (const auto& [o, name] : kOutcomes) {
    if (name == s) return o;
  }
  return std::nullopt;
}
std::optional<SuppressScope> parse_suppress_scope(std::string_view s) {
  if (s == "address") return SuppressScope::Address;
  if (s == "domain") return SuppressScope::Domain;
  return std::nullopt;
}
std::optional<BackoffHint> parse_backoff_hint(std::string_view s) {
  if (s == "slow") return BackoffHint::Slow;
  if (s == "pause") return BackoffHint::Pause;
  return std::nullopt;
}

std::optional<OverCap> parse_over_cap(std::string_view s) {
  if (s == "defer") return OverCap::Defer;
  if (s == "hold") return OverCap::Hold;
  return std::nullopt;
}
std::optional<Hygiene> parse_hygiene(std::string_view s) {
  if (s == "warn") return Hygiene::Warn;
  if (s == "refuse") return Hygiene::Refuse;
  return std::nullopt;
}
std::optional<WarmupCount> parse_warmup_count(std::string_view s) {
  if (s == "calendar") return WarmupCount::Calendar;
  if (s == "send-days") return WarmupCount::SendDays;
  return std::nullopt;
}
std::optional<ExclusionAction> parse_exclusion_action(std::string_view s) {
  if (s == "reject") return ExclusionAction::Reject;
  if (s == "hold") return ExclusionAction::Hold;
  if (s == "discard") return ExclusionAction::Discard;
  return std::nullopt;
}

// Days from civil and back: Howard Hinnant's public-domain algorithms (proleptic Gregorian).
namespace {
constexpr std::int32_t days_from_civil(std::int32_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int32_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int32_t>(doe) - 719468;
}
bool leap(std::int32_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
}  // namespace

std::optional<Date> Date::parse(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  auto num = [&](std::size_t pos, std::size_t len, int& out) {
    const auto [end, ec] = std::from_chars(s.data() + pos, s.data() + pos + len, out);
    return ec == std::errc{} && end == s.data() + pos + len;
  };
  int y = 0, m = 0, d = 0;
  if (!num(0, 4, y) || !num(5, 2, m) || !num(8, 2, d)) return std::nullopt;
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1970 || m < 1 || m > 12 || d < 1) return std::nullopt;
  const int max = kDays[m - 1] + (m == 2 && leap(y) ? 1 : 0);
  if (d > max) return std::nullopt;
  return Date{days_from_civil(y, static_cast<unsigned>(m), static_cast<unsigned>(d))};
}

std::string Date::str() const {
  const std::int32_t z = days + 719468;
  const std::int32_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const std::int32_t y = static_cast<std::int32_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
  return fmt::format("{:04}-{:02}-{:02}", y, m, d);
}

bool StreamSpec::operator==(const StreamSpec& o) const {
  return name == o.name && ports == o.ports && clients == o.clients && senders == o.senders &&
         sasl_users == o.sasl_users && transport == o.transport && egress_ip == o.egress_ip &&
         from_domains == o.from_domains && warmup == o.warmup && daily_ceiling == o.daily_ceiling &&
         over_cap == o.over_cap && hygiene == o.hygiene;
}
bool RampSpec::operator==(const RampSpec& o) const { return name == o.name && steps == o.steps; }
bool OperatorSpec::operator==(const OperatorSpec& o) const { return name == o.name && mx == o.mx; }
std::string CapSpec::id() const { return stream + "/" + op; }
bool CapSpec::operator==(const CapSpec& o) const {
  return stream == o.stream && op == o.op && daily == o.daily && until_day == o.until_day;
}
bool ExclusionSpec::operator==(const ExclusionSpec& o) const {
  return category == o.category && action == o.action && streams == o.streams &&
         status == o.status && domains == o.domains && addresses == o.addresses;
}

bool ClassifySpec::operator==(const ClassifySpec& o) const {
  return id == o.id && reply == o.reply && dsn == o.dsn && op == o.op && outcome == o.outcome &&
         category == o.category && suppress == o.suppress && backoff == o.backoff &&
         tests == o.tests;
}

namespace {

template <class T, class Name>
Result<void> add_unique(std::vector<T>& into, std::vector<T>&& next, std::string_view kind,
                        Name name) {
  for (auto& n : next) {
    for (const auto& have : into) {
      if (name(have) == name(n)) {
        return fail(Errc::Config,
                    fmt::format("{}: {} {:?}: duplicate name (first defined at {})",
                                n.origin.where(), kind, name(n), have.origin.where()));
      }
    }
    into.push_back(std::move(n));
  }
  return {};
}

void append_unique(std::vector<std::string>& into, const std::vector<std::string>& more) {
  std::unordered_set<std::string> seen(into.begin(), into.end());
  for (const auto& s : more) {
    if (seen.insert(s).second) into.push_back(s);
  }
}

}  // namespace

Result<void> merge_into(RulesSpec& into, RulesSpec next) {
  auto by_name = [](const auto& x) -> const std::string& { return x.name; };
  if (auto r = add_unique(into.streams, std::move(next.streams), "stream", by_name); !r) return r;
  if (auto r = add_unique(into.ramps, std::move(next.ramps), "ramp", by_name); !r) return r;
  if (auto r = add_unique(into.operators, std::move(next.operators), "operator", by_name); !r)
    return r;
  if (auto r = add_unique(into.caps, std::move(next.caps), "cap",
                          [](const CapSpec& c) { return c.id(); });
      !r) {
    return r;
  }
  if (auto r = add_unique(into.classify, std::move(next.classify), "classify",
                          [](const ClassifySpec& c) -> const std::string& { return c.id; });
      !r) {
    return r;
  }
  // DESIGN.md: exclusions with the same category merge; domains/addresses add up; streams,
  // action and status come from the last entry that sets them (how a site enables a shipped list).
  for (auto& e : next.exclusions) {
    auto it = std::find_if(into.exclusions.begin(), into.exclusions.end(),
                           [&](const ExclusionSpec& h) { return h.category == e.category; });
    if (it == into.exclusions.end()) {
      into.exclusions.push_back(std::move(e));
      continue;
    }
    if (e.action) it->action = e.action;
    if (e.streams) it->streams = e.streams;
    if (e.status) it->status = e.status;
    append_unique(it->domains, e.domains);
    append_unique(it->addresses, e.addresses);
  }
  // [feedback] is one table per rule set: a later file's table replaces an earlier one whole
  // (keys it leaves out take the built-in defaults, not the earlier file's values).
  if (next.feedback) into.feedback = std::move(next.feedback);
  return {};
}

namespace {

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

Error config_error(const Origin& o, std::string_view key, std::string_view kind,
                   std::string_view name, std::string_view msg) {
  return Error{Errc::Config, fmt::format("{}: {} {:?}: {}", o.where(key), kind, name, msg)};
}

// Normalises each domain in place; drops duplicates; the first bad one is an error.
Result<void> normalize_domains(std::vector<std::string>& list, const Origin& o,
                               std::string_view key, std::string_view kind, std::string_view name) {
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  for (const auto& d : list) {
    auto n = normalize_domain(d);
    if (!n)
      return tl::unexpected(
          config_error(o, key, kind, name, fmt::format("bad domain {:?} in {}", d, key)));
    if (seen.insert(*n).second) out.push_back(std::move(*n));
  }
  list = std::move(out);
  return {};
}

Result<void> validate_stream(StreamSpec& s, const std::unordered_set<std::string>& ramps) {
  constexpr std::string_view kind = "stream";
  const Origin& o = s.origin;
  if (!valid_name(s.name)) {
    return tl::unexpected(
        config_error(o, "name", kind, s.name, "name must be 1-64 of [A-Za-z0-9_.-]"));
  }
  if (s.ports.empty() && s.clients.empty() && s.senders.empty() && s.sasl_users.empty()) {
    return tl::unexpected(config_error(o, "name", kind, s.name,
                                       "no selector: set ports, clients, senders or sasl_users"));
  }
  for (auto p : s.ports) {
    if (p < 1 || p > 65535) {
      return tl::unexpected(
          config_error(o, "ports", kind, s.name, fmt::format("bad port {} in ports", p)));
    }
  }
  for (const auto& c : s.clients) {
    std::string why;
    if (!Cidr::parse(c, &why)) {
      return tl::unexpected(
          config_error(o, "clients", kind, s.name, fmt::format("bad CIDR {:?}: {}", c, why)));
    }
  }
  std::vector<std::string> senders;
  for (const auto& snd : s.senders) {
    std::optional<std::string> n;
    if (!snd.empty() && snd.front() == '@') {
      if (auto d = normalize_domain(std::string_view(snd).substr(1))) n = "@" + *d;
    } else {
      n = normalize_address(snd);
    }
    if (!n) {
      return tl::unexpected(
          config_error(o, "senders", kind, s.name,
                       fmt::format("bad sender {:?}: want \"@domain\" or \"user@domain\"", snd)));
    }
    senders.push_back(std::move(*n));
  }
  s.senders = std::move(senders);
  for (const auto& u : s.sasl_users) {
    const bool ok = !u.empty() && u.size() <= 255 && std::none_of(u.begin(), u.end(), [](char c) {
      return static_cast<unsigned char>(c) <= ' ' || c == 0x7f;
    });
    if (!ok) {
      return tl::unexpected(
          config_error(o, "sasl_users", kind, s.name, fmt::format("bad SASL user {:?}", u)));
    }
  }
  if (!s.transport.empty() && !valid_name(s.transport)) {
    return tl::unexpected(config_error(
        o, "transport", kind, s.name,
        fmt::format("bad transport {:?}: want a master.cf service name", s.transport)));
  }
  if (!s.egress_ip.empty()) {
    auto ip = IpAddress::parse(s.egress_ip);
    if (!ip || s.egress_ip.find('/') != std::string::npos) {
      return tl::unexpected(
          config_error(o, "egress_ip", kind, s.name, fmt::format("bad IP {:?}", s.egress_ip)));
    }
  }
  if (auto r = normalize_domains(s.from_domains, o, "from_domains", kind, s.name); !r) return r;
  if (s.warmup) {
    if (!ramps.contains(s.warmup->ramp)) {
      return tl::unexpected(config_error(o, "warmup", kind, s.name,
                                         fmt::format("unknown ramp {:?}", s.warmup->ramp)));
    }
    if (s.warmup->min_daily < 1) {
      return tl::unexpected(
          config_error(o, "warmup", kind, s.name, "warmup.min_daily must be at least 1"));
    }
  }
  if (s.daily_ceiling && *s.daily_ceiling < 0) {
    return tl::unexpected(
        config_error(o, "daily_ceiling", kind, s.name, "daily_ceiling must not be negative"));
  }
  return {};
}

Result<void> validate_ramp(const RampSpec& r) {
  constexpr std::string_view kind = "ramp";
  if (!valid_name(r.name)) {
    return tl::unexpected(
        config_error(r.origin, "name", kind, r.name, "name must be 1-64 of [A-Za-z0-9_.-]"));
  }
  if (r.steps.empty())
    return tl::unexpected(config_error(r.origin, "steps", kind, r.name, "steps is empty"));
  if (r.steps.front().day != 0) {
    return tl::unexpected(
        config_error(r.origin, "steps", kind, r.name, "the first step must be day = 0"));
  }
  for (std::size_t i = 0; i < r.steps.size(); ++i) {
    if (r.steps[i].hourly < 1) {
      return tl::unexpected(
          config_error(r.origin, "steps", kind, r.name,
                       fmt::format("step for day {}: hourly must be at least 1", r.steps[i].day)));
    }
    if (i > 0 && r.steps[i].day <= r.steps[i - 1].day) {
      return tl::unexpected(
          config_error(r.origin, "steps", kind, r.name,
                       fmt::format("steps must be sorted by day: day {} after day {}",
                                   r.steps[i].day, r.steps[i - 1].day)));
    }
  }
  return {};
}

// Kebab-case rule ids and categories: lower-case words joined by single hyphens.
bool kebab(std::string_view s) {
  if (s.empty() || s.size() > 64 || s.front() == '-' || s.back() == '-') return false;
  char prev = 0;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok || (c == '-' && prev == '-')) return false;
    prev = c;
  }
  return true;
}

Result<void> validate_classify(const std::vector<ClassifySpec>& rules,
                               const std::unordered_set<std::string>& operators,
                               ClassifyCheck depth) {
  constexpr std::string_view kind = "classify";
  std::unordered_map<std::string, const ClassifySpec*> ids;
  for (const auto& r : rules) {
    const Origin& o = r.origin;
    if (!kebab(r.id) || r.id == "default") {
      return tl::unexpected(
          config_error(o, "id", kind, r.id,
                       "id must be kebab-case ([a-z0-9] words joined by '-'), not default"));
    }
    if (auto [it, fresh] = ids.emplace(r.id, &r); !fresh) {
      return tl::unexpected(config_error(
          o, "id", kind, r.id,
          fmt::format("duplicate name (first defined at {})", it->second->origin.where())));
    }
    if (r.reply.empty())
      return tl::unexpected(config_error(o, "reply", kind, r.id, "reply pattern is empty"));
    if (!valid_dsn_pattern(r.dsn)) {
      return tl::unexpected(config_error(
          o, "dsn", kind, r.id,
          fmt::format("bad dsn pattern {:?}: want parts of digits or *, e.g. \"5.1.1\", "
                      "\"4.*\"",
                      r.dsn)));
    }
    if (!r.op.empty() && !operators.contains(r.op)) {
      return tl::unexpected(
          config_error(o, "operator", kind, r.id, fmt::format("unknown operator {:?}", r.op)));
    }
    if (!kebab(r.category)) {
      return tl::unexpected(config_error(o, "category", kind, r.id,
                                         fmt::format("bad category {:?}: want kebab-case, e.g. "
                                                     "\"bad-mailbox\"",
                                                     r.category)));
    }
    if (r.tests.empty()) {
      return tl::unexpected(config_error(
          o, "tests", kind, r.id, "tests is empty: give at least one reply line that hits it"));
    }
    for (const auto& t : r.tests) {
      const auto [dsn, reply] = split_test_line(t);
      if (reply.empty() || t.find_first_of("\r\n") != std::string::npos) {
        return tl::unexpected(config_error(o, "tests", kind, r.id,
                                           fmt::format("bad test line {:?}: want one reply "
                                                       "line, optionally after \"dsn=X.Y.Z \"",
                                                       t)));
      }
      if (t.starts_with("dsn=") && !is_enhanced_status(dsn, dsn.empty() ? '4' : dsn[0])) {
        return tl::unexpected(config_error(o, "tests", kind, r.id,
                                           fmt::format("test line {:?}: bad dsn {:?}", t, dsn)));
      }
    }
  }
  if (depth == ClassifyCheck::Structure) return {};
  RAMPART_TRY(classifier, Classifier::compile(rules));
  return classifier.check_tests();
}

// [feedback]: the category follows the [[exclusion]] name rule (suppressions are stored as that
// exclusion); counts and thresholds are positive, expiries may be 0 (never expire).
Result<void> validate_feedback(const FeedbackSpec& f) {
  const Origin& o = f.origin;
  auto bad = [&](std::string_view key, std::string msg) {
    return tl::unexpected(Error{Errc::Config, fmt::format("{}: feedback: {}", o.where(key), msg)});
  };
  if (!valid_name(f.category)) {
    return bad("category",
               fmt::format("bad category {:?}: must be 1-64 of [A-Za-z0-9_.-]", f.category));
  }
  struct Range {
    std::string_view key;
    std::int64_t value, min, max;
  };
  constexpr auto kNoMax = std::numeric_limits<std::int64_t>::max();
  const Range ranges[] = {
      {"address_expiry_days", f.address_expiry_days, 0, kNoMax},
      {"domain_replies", f.domain_replies, 1, kNoMax},
      {"domain_days", f.domain_days, 1, kNoMax},
      {"domain_expiry_days", f.domain_expiry_days, 0, kNoMax},
      {"backoff_percent", f.backoff_percent, 1, 100},
      {"backoff_min_attempts", f.backoff_min_attempts, 1, kNoMax},
      {"backoff_factor_percent", f.backoff_factor_percent, 1, 100},
      {"backoff_hours", f.backoff_hours, 1, kNoMax},
      {"pause_hours", f.pause_hours, 1, kNoMax},
  };
  for (const auto& r : ranges) {
    if (r.value >= r.min && r.value <= r.max) continue;
    if (r.max != kNoMax) {
      return bad(r.key, fmt::format("{} must be {}..{}, got {}", r.key, r.min, r.max, r.value));
    }
    const auto* what =
        r.min == 0 ? "must not be negative (0 = never expires)" : "must be at least 1";
    return bad(r.key, fmt::format("{} {}, got {}", r.key, what, r.value));
  }
  return {};
}

}  // namespace

Result<void> validate(RulesSpec& spec, ClassifyCheck classify) {
  std::unordered_set<std::string> ramp_names, stream_names, operator_names;
  for (const auto& r : spec.ramps) {
    if (auto v = validate_ramp(r); !v) return v;
    ramp_names.insert(r.name);
  }
  for (auto& s : spec.streams) {
    if (auto v = validate_stream(s, ramp_names); !v) return v;
    stream_names.insert(s.name);
  }
  std::unordered_map<std::string, std::string> suffix_owner;
  for (auto& op : spec.operators) {
    if (!valid_name(op.name)) {
      return tl::unexpected(config_error(op.origin, "name", "operator", op.name,
                                         "name must be 1-64 of [A-Za-z0-9_.-]"));
    }
    if (op.mx.empty())
      return tl::unexpected(config_error(op.origin, "mx", "operator", op.name, "mx is empty"));
    std::vector<std::string> mx;
    for (const auto& m : op.mx) {
      const bool dot = !m.empty() && m.front() == '.';
      auto n = normalize_domain(dot ? std::string_view(m).substr(1) : std::string_view(m));
      if (!n) {
        return tl::unexpected(config_error(op.origin, "mx", "operator", op.name,
                                           fmt::format("bad MX suffix {:?}", m)));
      }
      std::string norm = dot ? "." + *n : *n;
      auto [it, fresh] = suffix_owner.emplace(*n, op.name);
      if (!fresh) {
        return tl::unexpected(config_error(
            op.origin, "mx", "operator", op.name,
            fmt::format("MX suffix {:?} already belongs to operator {:?}", m, it->second)));
      }
      mx.push_back(std::move(norm));
    }
    op.mx = std::move(mx);
    operator_names.insert(op.name);
  }
  for (const auto& c : spec.caps) {
    const auto id = c.id();
    if (!stream_names.contains(c.stream)) {
      return tl::unexpected(config_error(c.origin, "stream", "cap", id,
                                         fmt::format("unknown stream {:?}", c.stream)));
    }
    if (!operator_names.contains(c.op)) {
      return tl::unexpected(config_error(c.origin, "operator", "cap", id,
                                         fmt::format("unknown operator {:?}", c.op)));
    }
    if (c.daily < 0)
      return tl::unexpected(
          config_error(c.origin, "daily", "cap", id, "daily must not be negative"));
    if (c.until_day && *c.until_day < 1) {
      return tl::unexpected(
          config_error(c.origin, "until_day", "cap", id, "until_day must be at least 1"));
    }
  }
  for (auto& e : spec.exclusions) {
    constexpr std::string_view kind = "exclusion";
    if (!valid_name(e.category)) {
      return tl::unexpected(config_error(e.origin, "category", kind, e.category,
                                         "category must be 1-64 of [A-Za-z0-9_.-]"));
    }
    if (e.streams) {
      for (const auto& s : *e.streams) {
        if (s != "*" && !stream_names.contains(s)) {
          return tl::unexpected(config_error(e.origin, "streams", kind, e.category,
                                             fmt::format("unknown stream {:?}", s)));
        }
      }
    }
    if (e.effective_action() == ExclusionAction::Reject &&
        !is_enhanced_status(e.effective_status(), '5')) {
      return tl::unexpected(config_error(
          e.origin, "status", kind, e.category,
          fmt::format("a reject needs a 5.x.x status, got {:?}", e.effective_status())));
    }
    if (auto r = normalize_domains(e.domains, e.origin, "domains", kind, e.category); !r) return r;
    std::vector<std::string> addrs;
    std::unordered_set<std::string> seen;
    for (const auto& a : e.addresses) {
      auto n = normalize_address(a);
      if (!n) {
        return tl::unexpected(config_error(e.origin, "addresses", kind, e.category,
                                           fmt::format("bad address {:?}", a)));
      }
      if (seen.insert(*n).second) addrs.push_back(std::move(*n));
    }
    e.addresses = std::move(addrs);
  }
  if (spec.feedback) {
    if (auto r = validate_feedback(*spec.feedback); !r) return r;
  }
  return validate_classify(spec.classify, operator_names, classify);
}

std::vector<std::string> lint(const RulesSpec& spec) {
  std::vector<std::string> out;
  const auto feedback = spec.effective_feedback();
  const bool suppressing = feedback.suppress_addresses || feedback.suppress_domains;
  for (const auto& e : spec.exclusions) {
    // The bounce category is filled by `rampart classify`, so a file defining it lists nothing.
    const bool bounce_category = suppressing && e.category == feedback.category;
    if (bounce_category && (!e.streams || e.streams->empty())) {
      out.push_back(
          fmt::format("{}: exclusion {:?}: applies to no stream, but [feedback] suppresses bounced "
                      "recipients into it (they would still be mailed; set streams = [\"*\"])",
                      e.streams ? e.origin.where("streams") : e.origin.where(), e.category));
    }
    if (!bounce_category && e.streams && !e.streams->empty() && e.domains.empty() &&
        e.addresses.empty()) {
      out.push_back(fmt::format(
          "{}: exclusion {:?}: enabled but lists no domains or addresses (are the shipped "
          "rules in /usr/share/rampart/rules included?)",
          e.origin.where("streams"), e.category));
    }
  }
  // PowerMTA's bounce categories, the names bounce tooling shares.
  static constexpr std::string_view kCategories[] = {
      "bad-mailbox",         "bad-domain",      "inactive-mailbox", "quota-issues",
      "spam-related",        "content-related", "policy-related",   "routing-errors",
      "no-answer-from-host", "bad-connection",  "message-expired",  "protocol-errors",
      "relaying-issues",     "virus-related",   "invalid-sender",   "other"};
  for (const auto& c : spec.classify) {
    if (std::find(std::begin(kCategories), std::end(kCategories), c.category) ==
        std::end(kCategories)) {
      out.push_back(fmt::format(
          "{}: classify {:?}: category {:?} is not one of the de-facto bounce categories",
          c.origin.where("category"), c.id, c.category));
    }
  }
  for (const auto& s : spec.streams) {
    if (s.transport.empty()) {
      out.push_back(
          fmt::format("{}: stream {:?}: no transport: its mail is not pinned to an egress",
                      s.origin.where(), s.name));
    }
  }
  return out;
}

}  // namespace rampart::core
