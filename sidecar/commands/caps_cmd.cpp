// `rampart caps [--stream S] [--format table|json]`: today's use of every budget against its
// limit, per stream: the warm-up day, the sliding hour, the day, and each operator with a cap,
// gate, back-off or use today; the leases hosts hold. Read-only. The limits come from
// core::limits_for with the store's back-offs and day histories, so they are the daemon's.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "commands/context.hpp"
#include "core/limits.hpp"
#include "core/release.hpp"
#include "core/ruleset.hpp"
#include "obs/clock.hpp"
#include "rules/writer.hpp"

namespace rampart::sidecar {
namespace {

constexpr std::string_view kUsage =
    "usage: rampart caps [--stream S] [--format table|json]\n"
    "\n"
    "Show today's use of every budget against its limit (UTC days): per stream its warm-up day,\n"
    "the sliding hour against the ramp's hourly limit, the day against daily_ceiling, and each\n"
    "operator with a cap, gate, back-off or use today (when an exhausted limit reopens, when a\n"
    "gate or back-off lifts), plus the budget leases hosts hold. The numbers include units that\n"
    "hosts leased and have not spent yet. Limits are computed as rampart-policyd computes them.\n"
    "\n"
    "  --stream S        only stream S\n"
    "  --format FORMAT   table (default) or json (one object per stream; see rampart(8))";

using obs::now_utc;

std::string json_str(std::string_view s) { return rules::json_quote(s); }
std::string json_time(std::optional<core::UnixTime> t) {
  return t ? json_str(core::format_utc(*t)) : "null";
}
std::string json_int(std::optional<std::int64_t> v) { return v ? std::to_string(*v) : "null"; }
std::string text_time(std::optional<core::UnixTime> t) { return t ? core::format_utc(*t) : "-"; }

// 500 -> "0.5", 125 -> "0.125".
std::string factor_text(std::int64_t permille) {
  std::string s = fmt::format("{}.{:03}", permille / 1000, permille % 1000);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

// One budget row: the hour, the day, or one operator.
struct LimitRow {
  std::string kind;   // hourly | daily_ceiling | day | cap | gate | backoff | pause | none
  std::string scope;  // counter scope key
  std::string op;     // operator rows only
  std::int64_t used = 0;
  std::optional<std::int64_t> limit;      // nullopt: counted, not limited
  std::optional<core::UnixTime> reopens;  // exhausted: when there is room again
  std::optional<core::UnixTime> lifts;    // gate, back-off, pause: when it stops applying
  std::string detail;
};

struct StreamReport {
  const core::StreamSpec* stream = nullptr;
  std::optional<std::int64_t> warm_day;
  std::optional<LimitRow> hourly;
  LimitRow day;
  std::vector<LimitRow> operators;
  std::vector<core::Backoff> backoffs;
  std::vector<store::LeaseRow> leases;
};

LimitRow row_for(const core::Limit& l, const core::Ledger& ledger, core::UnixTime now) {
  LimitRow r;
  r.scope = l.scope.key();
  r.op = l.scope.op;
  r.used = ledger.used(l.scope, now);
  r.lifts = l.lifts;
  r.detail = l.detail;
  if (l.scope.kind == core::ScopeKind::StreamDay && l.limit >= core::kNoLimit) {
    r.kind = "day";  // counted, no daily_ceiling
    return r;
  }
  r.kind = std::string(core::to_string(l.kind));
  r.limit = l.limit;
  if (r.used >= l.limit) r.reopens = core::reopens(l, ledger.window(r.scope), now);
  return r;
}

// The stream's part of every lease: scopes "hour:S", "day:S", "op:S/...".
bool scope_of_stream(std::string_view scope, std::string_view stream) {
  for (std::string_view prefix : {"hour:", "day:"}) {
    if (scope.starts_with(prefix) && scope.substr(prefix.size()) == stream) return true;
  }
  return scope.starts_with("op:") && scope.substr(3).starts_with(stream) &&
         scope.size() > 3 + stream.size() && scope[3 + stream.size()] == '/';
}

StreamReport build(const core::RuleSet& rules, const core::StreamSpec& s,
                   std::span<const core::DayCount> history, std::span<const core::Backoff> backoffs,
                   const core::Ledger& ledger, const std::vector<store::CounterRow>& op_rows,
                   const std::vector<store::LeaseRow>& leases, core::UnixTime now) {
  StreamReport rep;
  rep.stream = &s;
  const auto base = core::limits_for(rules, s, nullptr, history, backoffs, now);
  rep.warm_day = base.warm_day;
  for (const auto& l : base.limits) {
    if (l.scope.kind == core::ScopeKind::StreamHour) rep.hourly = row_for(l, ledger, now);
    if (l.scope.kind == core::ScopeKind::StreamDay) rep.day = row_for(l, ledger, now);
  }
  std::set<std::string, std::less<>> seen;
  for (const auto& op : rules.spec().operators) {
    const auto set = core::limits_for(rules, s, &op, history, backoffs, now);
    const core::Scope scope{core::ScopeKind::OperatorDay, s.name, op.name};
    const auto it = std::find_if(set.limits.begin(), set.limits.end(), [](const core::Limit& l) {
      return l.scope.kind == core::ScopeKind::OperatorDay;
    });
    const std::int64_t used = ledger.used(scope, now);
    if (it == set.limits.end() && used == 0) continue;
    seen.insert(op.name);
    if (it != set.limits.end()) {
      LimitRow r = row_for(*it, ledger, now);
      if (it->kind == core::LimitKind::Backoff || it->kind == core::LimitKind::Pause) {
        for (const auto& b : backoffs) {
          if (b.stream == s.name && b.op == op.name && b.until > now) {
            r.detail = b.permille > 0 ? fmt::format("{} (factor {}, {})", b.reason,
                                                    factor_text(b.permille), b.source)
                                      : fmt::format("{} ({})", b.reason, b.source);
          }
        }
      }
      rep.operators.push_back(std::move(r));
    } else {
      rep.operators.push_back({"none", scope.key(), op.name, used, {}, {}, {}, ""});
    }
  }
  // Use today by operators the rules no longer name.
  const std::string prefix = fmt::format("op:{}/", s.name);
  for (const auto& r : op_rows) {
    if (!r.scope.starts_with(prefix) || r.bucket != core::day_of(now)) continue;
    std::string op = r.scope.substr(prefix.size());
    if (seen.count(op) != 0) continue;
    seen.insert(op);
    rep.operators.push_back({"none", r.scope, op, r.used, {}, {}, {}, "operator not in the rules"});
  }
  for (const auto& b : backoffs) {
    if (b.stream == s.name && b.until > now) rep.backoffs.push_back(b);
  }
  for (const auto& l : leases) {
    if (scope_of_stream(l.scope, s.name)) rep.leases.push_back(l);
  }
  return rep;
}

std::string warmup_text(const StreamReport& rep) {
  const auto& w = rep.stream->warmup;
  if (!w) return "no warm-up";
  std::string text = fmt::format("warm-up day {} ({} from {}, ramp {}", rep.warm_day.value_or(0),
                                 core::to_string(w->count), w->start.str(), w->ramp);
  if (w->count == core::WarmupCount::SendDays) {
    text += fmt::format(", min_daily {}", w->min_daily);
  }
  return text + ")";
}

std::string limit_json(const LimitRow& r, bool with_op) {
  std::string out = "{";
  if (with_op) out += fmt::format("\"operator\": {}, ", json_str(r.op));
  out += fmt::format(
      "\"kind\": {}, \"scope\": {}, \"used\": {}, \"limit\": {}, \"reopens\": {}, \"lifts\": {}, "
      "\"detail\": {}}}",
      json_str(r.kind), json_str(r.scope), r.used, json_int(r.limit), json_time(r.reopens),
      json_time(r.lifts), json_str(r.detail));
  return out;
}

std::string stream_json(const StreamReport& rep) {
  const auto& s = *rep.stream;
  std::string warmup = "null";
  if (s.warmup) {
    warmup = fmt::format(
        "{{\"start\": {}, \"count\": {}, \"ramp\": {}, \"min_daily\": {}, \"day\": {}}}",
        json_str(s.warmup->start.str()), json_str(core::to_string(s.warmup->count)),
        json_str(s.warmup->ramp), s.warmup->min_daily, json_int(rep.warm_day));
  }
  std::string ops = "[";
  for (const auto& r : rep.operators) ops += (ops.size() > 1 ? ", " : "") + limit_json(r, true);
  ops += "]";
  std::string bos = "[";
  for (const auto& b : rep.backoffs) {
    bos += fmt::format(
        "{}{{\"operator\": {}, \"permille\": {}, \"until\": {}, \"reason\": {}, \"source\": {}}}",
        bos.size() > 1 ? ", " : "", json_str(b.op), b.permille, json_time(b.until),
        json_str(b.reason), json_str(b.source));
  }
  bos += "]";
  std::string ls = "[";
  for (const auto& l : rep.leases) {
    ls += fmt::format(
        "{}{{\"host\": {}, \"scope\": {}, \"bucket\": {}, \"units\": {}, \"expires\": {}}}",
        ls.size() > 1 ? ", " : "", json_str(l.host), json_str(l.scope), l.bucket, l.units,
        json_time(l.expires));
  }
  ls += "]";
  return fmt::format(
      "{{\"stream\": {}, \"over_cap\": {}, \"warmup\": {}, \"hourly\": {}, \"day\": {}, "
      "\"operators\": {}, \"backoffs\": {}, \"leases\": {}}}",
      json_str(s.name), json_str(core::to_string(s.over_cap)), warmup,
      rep.hourly ? limit_json(*rep.hourly, false) : "null", limit_json(rep.day, false), ops, bos,
      ls);
}

void print_aligned(const std::vector<std::vector<std::string>>& rows, std::string_view indent) {
  std::vector<std::size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size());
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line(indent);
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += i + 1 < r.size() ? fmt::format("{:<{}}  ", r[i], width[i]) : r[i];
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::printf("%s\n", line.c_str());
  }
}

std::vector<std::string> table_row(const LimitRow& r) {
  return {r.kind,
          r.op.empty() ? "-" : r.op,
          std::to_string(r.used),
          r.limit ? std::to_string(*r.limit) : "-",
          text_time(r.reopens),
          text_time(r.lifts),
          r.detail};
}

void print_table(const std::vector<StreamReport>& reps) {
  for (std::size_t i = 0; i < reps.size(); ++i) {
    const auto& rep = reps[i];
    if (i > 0) std::printf("\n");
    std::printf("stream %s: %s; over_cap %s\n", rep.stream->name.c_str(), warmup_text(rep).c_str(),
                std::string(core::to_string(rep.stream->over_cap)).c_str());
    std::vector<std::vector<std::string>> rows{
        {"LIMIT", "OPERATOR", "USED", "OF", "REOPENS", "LIFTS", "DETAIL"}};
    if (rep.hourly) rows.push_back(table_row(*rep.hourly));
    rows.push_back(table_row(rep.day));
    for (const auto& r : rep.operators) rows.push_back(table_row(r));
    print_aligned(rows, "  ");
    if (!rep.leases.empty()) {
      std::vector<std::vector<std::string>> lrows{{"LEASE HOST", "SCOPE", "UNITS", "EXPIRES"}};
      for (const auto& l : rep.leases) {
        lrows.push_back({l.host, l.scope, std::to_string(l.units), core::format_utc(l.expires)});
      }
      print_aligned(lrows, "  ");
    }
  }
}

}  // namespace

int cmd_caps(const Context& ctx, const Args& args) {
  std::string format = "table";
  std::optional<std::string> only;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::printf("%.*s\n", static_cast<int>(kUsage.size()), kUsage.data());
      return kExitOk;
    }
    auto value = [&](std::string_view name) -> std::optional<std::string> {
      if (a == name) return i + 1 < args.size() ? std::optional(args[++i]) : std::nullopt;
      return a.substr(name.size() + 1);  // --name=VALUE
    };
    if (a == "--format" || a.starts_with("--format=")) {
      auto v = value("--format");
      if (!v) return usage_error("caps: --format needs a value");
      format = *v;
    } else if (a == "--stream" || a.starts_with("--stream=")) {
      auto v = value("--stream");
      if (!v) return usage_error("caps: --stream needs a value");
      only = *v;
    } else {
      return usage_error(fmt::format("caps: unexpected argument {:?}", a));
    }
  }
  if (format != "table" && format != "json") {
    return usage_error(fmt::format("caps: bad --format {:?}: want table or json", format));
  }

  auto st = ctx.open_store();
  if (!st) return report(st.error());
  auto& store = **st;
  auto compiled = store::load_ruleset(store);
  if (!compiled) return report(compiled.error());
  const core::RuleSet& rules = **compiled;
  if (only && rules.stream(*only) == nullptr) {
    std::string known;
    for (const auto& s : rules.spec().streams) known += (known.empty() ? "" : ", ") + s.name;
    std::fprintf(stderr, "rampart: caps: unknown stream %s (known: %s)\n",
                 fmt::format("{:?}", *only).c_str(),
                 known.empty() ? "none: apply rules first" : known.c_str());
    return kExitData;
  }

  const core::UnixTime now = now_utc();
  auto backoffs = store.backoffs(now);
  if (!backoffs) return report(backoffs.error());
  auto hours = store.counters("hour:", core::minute_of(now) - 61);
  if (!hours) return report(hours.error());
  auto days = store.counters("day:", core::day_of(now) - 400);
  if (!days) return report(days.error());
  auto ops = store.counters("op:", core::day_of(now));
  if (!ops) return report(ops.error());
  auto leases = store.leases();
  if (!leases) return report(leases.error());

  core::Ledger ledger;
  std::map<std::string, std::vector<core::DayCount>, std::less<>> history;
  for (const auto* rows : {&*hours, &*days, &*ops}) {
    for (const auto& r : *rows) ledger.add(r.scope, r.bucket, r.used);
  }
  for (const auto& r : *days) history[r.scope.substr(4)].push_back({r.bucket, r.used});

  std::vector<StreamReport> reps;
  static const std::vector<core::DayCount> kNoHistory;
  for (const auto& s : rules.spec().streams) {
    if (only && s.name != *only) continue;
    const auto h = history.find(s.name);
    reps.push_back(build(rules, s, h != history.end() ? h->second : kNoHistory, *backoffs, ledger,
                         *ops, *leases, now));
  }
  if (format == "json") {
    for (const auto& rep : reps) std::printf("%s\n", stream_json(rep).c_str());
    return kExitOk;
  }
  if (reps.empty()) {
    std::printf("no streams in the rules (rampart rules apply FILE...)\n");
    return kExitOk;
  }
  std::printf("caps at %s (UTC day %s)\n", core::format_utc(now).c_str(),
              core::format_utc(core::day_of(now) * core::kDaySeconds).substr(0, 10).c_str());
  print_table(reps);
  return kExitOk;
}

}  // namespace rampart::sidecar
