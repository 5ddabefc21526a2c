// `rampart backoff set|clear|list`: operator back-offs (a stream x operator budget scaled down or
// paused until a time), the manual side of what classify writes on throttling. I/O half: parses
// the command line, reads the clock, talks to the store; the arithmetic lives in core/limits.
#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <optional>

#include <fmt/format.h>

#include "commands/context.hpp"
#include "config/config.hpp"
#include "core/limits.hpp"
#include "obs/clock.hpp"
#include "rules/writer.hpp"

namespace rampart::sidecar {
namespace {

constexpr std::string_view kSetUsage =
    "usage: rampart backoff set STREAM OPERATOR (--factor F | --pause) --until WHEN --reason TEXT\n"
    "\n"
    "Scale the budget of STREAM towards OPERATOR by F (a decimal in (0, 1], e.g. 0.5), or pause\n"
    "it, until WHEN: an absolute UTC time (2026-11-23T06:00:00Z, or 2026-11-23 for its midnight)\n"
    "or a duration from now (90m, 6h, 2d). Replaces any back-off already set on the pair.\n"
    "STREAM and OPERATOR must name a stream and an operator of the rules in the store.";
constexpr std::string_view kClearUsage =
    "usage: rampart backoff clear STREAM OPERATOR\n"
    "\n"
    "Remove the back-off of STREAM towards OPERATOR (exit 0 also when there was none).";
constexpr std::string_view kListUsage =
    "usage: rampart backoff list [--all] [--format table|json]\n"
    "\n"
    "List the active back-offs (--all: every stored one, expired ones too).";
constexpr std::string_view kUsage =
    "usage: rampart backoff set STREAM OPERATOR (--factor F | --pause) --until WHEN --reason TEXT\n"
    "       rampart backoff clear STREAM OPERATOR\n"
    "       rampart backoff list [--all] [--format table|json]\n"
    "\n"
    "'rampart backoff SUBCOMMAND --help' describes each.";

int help(std::string_view text) {
  std::printf("%.*s\n", static_cast<int>(text.size()), text.data());
  return kExitOk;
}

bool is_help(const std::string& a) { return a == "--help" || a == "-h"; }

using obs::now_utc;

// "0.5" -> 500: one optional integer digit (0 or 1), up to three decimals; (0, 1] only.
std::optional<std::int64_t> parse_factor(std::string_view s) {
  const auto dot = s.find('.');
  const auto whole = s.substr(0, dot);
  const auto frac = dot == std::string_view::npos ? std::string_view{} : s.substr(dot + 1);
  if (whole.size() > 1 || frac.size() > 3 || (whole.empty() && frac.empty())) return std::nullopt;
  if (dot != std::string_view::npos && frac.empty()) return std::nullopt;  // "1."
  auto digits = [](std::string_view d) {
    return std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!digits(whole) || !digits(frac)) return std::nullopt;
  std::int64_t permille = whole.empty() ? 0 : (whole[0] - '0') * 1000;
  std::int64_t scale = 100;
  for (const char c : frac) {
    permille += (c - '0') * scale;
    scale /= 10;
  }
  if (permille <= 0 || permille > 1000) return std::nullopt;
  return permille;
}

// 500 -> "0.50", 125 -> "0.125", 1000 -> "1.00", 0 -> "pause".
std::string factor_text(std::int64_t permille) {
  if (permille <= 0) return "pause";
  const auto text = fmt::format("{}.{:03}", permille / 1000, permille % 1000);
  return text.back() == '0' ? text.substr(0, text.size() - 1) : text;
}

// 2026-11-23T06:00:00Z, 2026-11-23 (its 00:00:00Z), or a duration from now (config durations:
// 90m, 6h, 2d, ...). nullopt when it is none of these.
std::optional<core::UnixTime> parse_when(std::string_view s, core::UnixTime now) {
  if (s.size() >= 10 && s[4] == '-') {
    const auto date = core::Date::parse(s.substr(0, 10));
    if (!date) return std::nullopt;
    const core::UnixTime midnight = std::int64_t{date->days} * core::kDaySeconds;
    if (s.size() == 10) return midnight;
    if (s.size() != 20 || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z')
      return std::nullopt;
    std::array<int, 3> hms{};
    for (std::size_t i = 0; i < 3; ++i) {
      const char* begin = s.data() + 11 + 3 * i;
      const auto [end, ec] = std::from_chars(begin, begin + 2, hms[i]);
      if (ec != std::errc{} || end != begin + 2) return std::nullopt;
    }
    if (hms[0] > 23 || hms[1] > 59 || hms[2] > 59) return std::nullopt;
    return midnight + hms[0] * 3600 + hms[1] * 60 + hms[2];
  }
  auto d = config::parse_duration(s);
  if (!d) return std::nullopt;
  return now + std::chrono::duration_cast<std::chrono::seconds>(*d).count();
}

// "2d 3h", "5h 59m", "12m 5s", "40s"; "expired" when nothing is left.
std::string remaining_text(core::UnixTime until, core::UnixTime now) {
  const std::int64_t left = until - now;
  if (left <= 0) return "expired";
  const std::int64_t d = left / 86400, h = left / 3600 % 24, m = left / 60 % 60, s = left % 60;
  if (d > 0) return fmt::format("{}d {}h", d, h);
  if (h > 0) return fmt::format("{}h {}m", h, m);
  if (m > 0) return fmt::format("{}m {}s", m, s);
  return fmt::format("{}s", s);
}

// "bulk, quiet", or "none" when there are no names.
template <class Specs>
std::string known_names(const Specs& specs) {
  std::string out;
  for (const auto& s : specs) out += (out.empty() ? "" : ", ") + s.name;
  return out.empty() ? "none: apply rules first" : out;
}

// --name VALUE or --name=VALUE at args[i]; advances i past VALUE. nullopt when args[i] is not it.
std::optional<std::string> option_value(const Args& args, std::size_t& i, std::string_view name,
                                        bool& missing) {
  const auto& a = args[i];
  if (a == name) {
    if (i + 1 >= args.size()) {
      missing = true;
      return std::string();
    }
    return args[++i];
  }
  if (a.size() > name.size() && a.starts_with(name) && a[name.size()] == '=') {
    return a.substr(name.size() + 1);
  }
  return std::nullopt;
}

int backoff_set(const Context& ctx, const Args& args) {
  Args positional;
  std::optional<std::string> factor, until, reason;
  bool pause = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (is_help(args[i])) return help(kSetUsage);
    bool missing = false;
    std::optional<std::string> v;
    if ((v = option_value(args, i, "--factor", missing))) {
      factor = *v;
    } else if ((v = option_value(args, i, "--until", missing))) {
      until = *v;
    } else if ((v = option_value(args, i, "--reason", missing))) {
      reason = *v;
    } else if (args[i] == "--pause") {
      pause = true;
    } else if (args[i].starts_with("-")) {
      return usage_error(fmt::format("backoff set: unknown option {:?}", args[i]));
    } else {
      positional.push_back(args[i]);
    }
    if (missing) return usage_error(fmt::format("backoff set: {} needs a value", args[i]));
  }
  if (positional.size() != 2) {
    return usage_error(positional.size() < 2
                           ? "backoff set: want STREAM OPERATOR"
                           : fmt::format("backoff set: unexpected argument {:?}", positional[2]));
  }
  const std::string& stream = positional[0];
  const std::string& op = positional[1];
  if (factor && pause) return usage_error("backoff set: give --factor or --pause, not both");
  if (!factor && !pause) return usage_error("backoff set: give --factor F or --pause");
  std::int64_t permille = 0;
  if (factor) {
    const auto p = parse_factor(*factor);
    if (!p) {
      return usage_error(fmt::format(
          "backoff set: bad --factor {:?}: want a decimal in (0, 1] with at most 3 decimals, "
          "e.g. 0.5 (--pause stops the pair entirely)",
          *factor));
    }
    permille = *p;
  }
  if (!until) return usage_error("backoff set: --until WHEN is required");
  const core::UnixTime now = now_utc();
  const auto until_at = parse_when(*until, now);
  if (!until_at) {
    return usage_error(fmt::format(
        "backoff set: bad --until {:?}: want 2026-11-23T06:00:00Z, 2026-11-23 or a duration "
        "from now such as 90m, 6h, 2d",
        *until));
  }
  if (*until_at <= now) {
    return usage_error(fmt::format("backoff set: --until {:?} ({}) is not in the future", *until,
                                   core::format_utc(*until_at)));
  }
  if (!reason) return usage_error("backoff set: --reason TEXT is required");
  if (reason->empty() || std::any_of(reason->begin(), reason->end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
      })) {
    return usage_error(
        fmt::format("backoff set: bad --reason {:?}: want non-empty text on one line", *reason));
  }

  auto st = ctx.open_store();
  if (!st) return report(st.error());
  auto& store = **st;
  // The pair must be one the rules know: a typo would otherwise sit in the store doing nothing.
  auto spec = store.load_rules();
  if (!spec) return report(spec.error());
  const auto has = [](const auto& specs, const std::string& name) {
    return std::any_of(specs.begin(), specs.end(), [&](const auto& s) { return s.name == name; });
  };
  if (!has(spec->streams, stream)) {
    std::fprintf(stderr, "rampart: backoff set: unknown stream %s (known: %s)\n",
                 fmt::format("{:?}", stream).c_str(), known_names(spec->streams).c_str());
    return kExitData;
  }
  if (!has(spec->operators, op)) {
    std::fprintf(stderr, "rampart: backoff set: unknown operator %s (known: %s)\n",
                 fmt::format("{:?}", op).c_str(), known_names(spec->operators).c_str());
    return kExitData;
  }
  auto before = store.backoffs(now);
  if (!before) return report(before.error());
  const bool replaces = std::any_of(before->begin(), before->end(), [&](const core::Backoff& b) {
    return b.stream == stream && b.op == op;
  });
  const core::Backoff b{stream, op, permille, *until_at, *reason, "cli", now};
  if (auto r = store.set_backoff(b); !r) return report(r.error());
  std::printf("%s back-off: stream %s operator %s factor %s until %s (%s left)\n",
              replaces ? "replaced" : "set", stream.c_str(), op.c_str(),
              factor_text(permille).c_str(), core::format_utc(*until_at).c_str(),
              remaining_text(*until_at, now).c_str());
  return kExitOk;
}

int backoff_clear(const Context& ctx, const Args& args) {
  Args positional;
  for (const auto& a : args) {
    if (is_help(a)) return help(kClearUsage);
    if (a.starts_with("-"))
      return usage_error(fmt::format("backoff clear: unknown option {:?}", a));
    positional.push_back(a);
  }
  if (positional.size() != 2) {
    return usage_error(positional.size() < 2
                           ? "backoff clear: want STREAM OPERATOR"
                           : fmt::format("backoff clear: unexpected argument {:?}", positional[2]));
  }
  // No check against the rules: a back-off must stay clearable after its stream was removed.
  auto st = ctx.open_store();
  if (!st) return report(st.error());
  auto cleared = (*st)->clear_backoff(positional[0], positional[1]);
  if (!cleared) return report(cleared.error());
  std::printf("%s back-off for stream %s operator %s\n", *cleared ? "cleared" : "no",
              positional[0].c_str(), positional[1].c_str());
  return kExitOk;
}

int backoff_list(const Context& ctx, const Args& args) {
  bool all = false;
  std::string format = "table";
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (is_help(args[i])) return help(kListUsage);
    bool missing = false;
    if (auto v = option_value(args, i, "--format", missing)) {
      if (missing) return usage_error("backoff list: --format needs a value");
      format = *v;
    } else if (args[i] == "--all") {
      all = true;
    } else {
      return usage_error(fmt::format("backoff list: unexpected argument {:?}", args[i]));
    }
  }
  if (format != "table" && format != "json") {
    return usage_error(fmt::format("backoff list: bad --format {:?}: want table or json", format));
  }
  auto st = ctx.open_store();
  if (!st) return report(st.error());
  const core::UnixTime now = now_utc();
  auto list = (*st)->backoffs(all ? 0 : now);
  if (!list) return report(list.error());
  if (format == "json") {
    std::string out = "[";
    for (std::size_t i = 0; i < list->size(); ++i) {
      const auto& b = (*list)[i];
      out += fmt::format(
          "{}\n  {{\"stream\": {}, \"operator\": {}, \"permille\": {}, \"factor\": {}, "
          "\"until\": {}, \"remaining_seconds\": {}, \"active\": {}, \"reason\": {}, "
          "\"source\": {}, \"created\": {}}}",
          i ? "," : "", rules::json_quote(b.stream), rules::json_quote(b.op), b.permille,
          rules::json_quote(factor_text(b.permille)), rules::json_quote(core::format_utc(b.until)),
          std::max<std::int64_t>(0, b.until - now), b.until > now ? "true" : "false",
          rules::json_quote(b.reason), rules::json_quote(b.source),
          rules::json_quote(core::format_utc(b.created)));
    }
    out += list->empty() ? "]\n" : "\n]\n";
    std::fputs(out.c_str(), stdout);
    return kExitOk;
  }
  std::vector<std::array<std::string, 7>> rows{
      {"STREAM", "OPERATOR", "FACTOR", "UNTIL", "REMAINING", "REASON", "SOURCE"}};
  for (const auto& b : *list) {
    rows.push_back({b.stream, b.op, factor_text(b.permille), core::format_utc(b.until),
                    remaining_text(b.until, now), b.reason, b.source});
  }
  std::array<std::size_t, 7> width{};
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += i + 1 < r.size() ? fmt::format("{:<{}}  ", r[i], width[i]) : r[i];
    }
    std::printf("%s\n", line.c_str());
  }
  return kExitOk;
}

}  // namespace

int cmd_backoff(const Context& ctx, const Args& args) {
  if (args.empty()) return usage_error("backoff: want set, clear or list");
  const auto& sub = args[0];
  const Args rest(args.begin() + 1, args.end());
  if (is_help(sub)) return help(kUsage);
  if (sub == "set") return backoff_set(ctx, rest);
  if (sub == "clear") return backoff_clear(ctx, rest);
  if (sub == "list") return backoff_list(ctx, rest);
  return usage_error(fmt::format("backoff: unknown subcommand {:?}", sub));
}

}  // namespace rampart::sidecar
