// Rules language reader: TOML (toml++) to core::RulesSpec, with file:line:key errors, plus the
// file/glob/include walk. Only parse() and its helpers are pure; load_files() reads files.
#include "rules/reader.hpp"

#include <glob.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include <toml++/toml.h>

namespace rampart::rules {
namespace {

using core::Origin;

std::string_view type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    default: return "nothing";
  }
}

int line_of(const toml::node& n) { return static_cast<int>(n.source().begin.line); }

// One [[kind]] entry being read: knows how to word an error about one of its keys.
class Entry {
 public:
  Entry(const toml::table& t, std::string_view kind, std::string_view file) : t_(t), kind_(kind) {
    origin_.file = std::string(file);
    origin_.line = line_of(t);
    for (auto&& [k, v] : t)
      origin_.key_lines.emplace_back(std::string(k.str()), static_cast<int>(k.source().begin.line));
  }

  const toml::table& table() const { return t_; }
  const Origin& origin() const { return origin_; }
  void set_label(std::string label) { label_ = std::move(label); }

  tl::unexpected<Error> error(std::string_view key, std::string_view msg) const {
    const auto where = origin_.where(key);
    if (label_.empty()) return fail(Errc::Config, fmt::format("{}: {}: {}", where, kind_, msg));
    return fail(Errc::Config, fmt::format("{}: {} {:?}: {}", where, kind_, label_, msg));
  }
  tl::unexpected<Error> wrong_type(std::string_view key, std::string_view want,
                                   const toml::node& got) const {
    return error(key, fmt::format("{}: expected {}, got {}", key, want, type_name(got)));
  }

  Result<std::string> string(std::string_view key, const toml::node& n) const {
    if (auto s = n.value<std::string>(); s && n.is_string()) return *s;
    return wrong_type(key, "a string", n);
  }
  Result<std::int64_t> integer(std::string_view key, const toml::node& n) const {
    if (n.is_integer()) return n.as_integer()->get();
    return wrong_type(key, "an integer", n);
  }
  Result<bool> boolean(std::string_view key, const toml::node& n) const {
    if (n.is_boolean()) return n.as_boolean()->get();
    return wrong_type(key, "a boolean", n);
  }
  Result<std::vector<std::string>> strings(std::string_view key, const toml::node& n) const {
    const auto* a = n.as_array();
    if (a == nullptr) return wrong_type(key, "an array of strings", n);
    std::vector<std::string> out;
    for (const auto& e : *a) {
      if (!e.is_string()) return wrong_type(key, "an array of strings", e);
      out.push_back(e.as_string()->get());
    }
    return out;
  }
  Result<std::vector<std::int64_t>> integers(std::string_view key, const toml::node& n) const {
    const auto* a = n.as_array();
    if (a == nullptr) return wrong_type(key, "an array of integers", n);
    std::vector<std::int64_t> out;
    for (const auto& e : *a) {
      if (!e.is_integer()) return wrong_type(key, "an array of integers", e);
      out.push_back(e.as_integer()->get());
    }
    return out;
  }
  // The entry's required name-like key (read first so every later error can name the entry).
  Result<std::string> required(std::string_view key) const {
    const auto* n = t_.get(key);
    if (n == nullptr) return error(key, fmt::format("missing key {:?}", key));
    return string(key, *n);
  }
  tl::unexpected<Error> unknown(std::string_view key) const {
    return error(key, fmt::format("unknown key {:?}", key));
  }

 private:
  const toml::table& t_;
  std::string_view kind_;
  std::string label_;
  Origin origin_;
};

Result<core::Warmup> read_warmup(const Entry& e, const toml::node& n) {
  const auto* t = n.as_table();
  if (t == nullptr) return e.wrong_type("warmup", "a table { start, count, ramp, min_daily }", n);
  core::Warmup w;
  bool have_start = false, have_ramp = false;
  for (auto&& [k, v] : *t) {
    const auto key = k.str();
    if (key == "start") {
      if (const auto* d = v.as_date()) {
        const auto& dv = d->get();
        auto parsed =
            core::Date::parse(fmt::format("{:04}-{:02}-{:02}", dv.year, dv.month, dv.day));
        if (!parsed) return e.error("warmup", "warmup.start: not a valid date");
        w.start = *parsed;
      } else if (v.is_string()) {
        auto parsed = core::Date::parse(v.as_string()->get());
        if (!parsed) {
          return e.error("warmup", fmt::format("warmup.start: want YYYY-MM-DD, got {:?}",
                                               v.as_string()->get()));
        }
        w.start = *parsed;
      } else {
        return e.wrong_type("warmup", "warmup.start as a date", v);
      }
      have_start = true;
    } else if (key == "count") {
      RAMPART_TRY(s, e.string("warmup.count", v));
      auto c = core::parse_warmup_count(s);
      if (!c)
        return e.error(
            "warmup", fmt::format("warmup.count: want \"calendar\" or \"send-days\", got {:?}", s));
      w.count = *c;
    } else if (key == "ramp") {
      RAMPART_TRY(s, e.string("warmup.ramp", v));
      w.ramp = std::move(s);
      have_ramp = true;
    } else if (key == "min_daily") {
      RAMPART_TRY(i, e.integer("warmup.min_daily", v));
      w.min_daily = i;
    } else {
      return e.error("warmup", fmt::format("unknown key {:?} in warmup", key));
    }
  }
  if (!have_start) return e.error("warmup", "warmup: missing key \"start\"");
  if (!have_ramp) return e.error("warmup", "warmup: missing key \"ramp\"");
  return w;
}

Result<core::StreamSpec> read_stream(const toml::table& t, std::string_view file) {
  Entry e(t, "stream", file);
  RAMPART_TRY(name, e.required("name"));
  e.set_label(name);
  core::StreamSpec s;
  s.name = std::move(name);
  for (auto&& [k, v] : t) {
    const auto key = k.str();
    if (key == "name") continue;
    if (key == "ports") {
      RAMPART_TRY(x, e.integers(key, v));
      s.ports = std::move(x);
    } else if (key == "clients") {
      RAMPART_TRY(x, e.strings(key, v));
      s.clients = std::move(x);
    } else if (key == "senders") {
      RAMPART_TRY(x, e.strings(key, v));
      s.senders = std::move(x);
    } else if (key == "sasl_users") {
      RAMPART_TRY(x, e.strings(key, v));
      s.sasl_users = std::move(x);
    } else if (key == "transport") {
      RAMPART_TRY(x, e.string(key, v));
      s.transport = std::move(x);
    } else if (key == "egress_ip") {
      RAMPART_TRY(x, e.string(key, v));
      s.egress_ip = std::move(x);
    } else if (key == "from_domains") {
      RAMPART_TRY(x, e.strings(key, v));
      s.from_domains = std::move(x);
    } else if (key == "warmup") {
      RAMPART_TRY(x, read_warmup(e, v));
      s.warmup = std::move(x);
    } else if (key == "daily_ceiling") {
      RAMPART_TRY(x, e.integer(key, v));
      s.daily_ceiling = x;
    } else if (key == "over_cap") {
      RAMPART_TRY(x, e.string(key, v));
      auto oc = core::parse_over_cap(x);
      if (!oc)
        return e.error(key, fmt::format("over_cap: want \"defer\" or \"hold\", got {:?}", x));
      s.over_cap = *oc;
    } else if (key == "hygiene") {
      RAMPART_TRY(x, e.string(key, v));
      auto h = core::parse_hygiene(x);
      if (!h) return e.error(key, fmt::format("hygiene: want \"warn\" or \"refuse\", got {:?}", x));
      s.hygiene = *h;
    } else {
      return e.unknown(key);
    }
  }
  s.origin = e.origin();
  return s;
}

Result<core::RampSpec> read_ramp(const toml::table& t, std::string_view file) {
  Entry e(t, "ramp", file);
  RAMPART_TRY(name, e.required("name"));
  e.set_label(name);
  core::RampSpec r;
  r.name = std::move(name);
  for (auto&& [k, v] : t) {
    const auto key = k.str();
    if (key == "name") continue;
    if (key != "steps") return e.unknown(key);
    const auto* a = v.as_array();
    if (a == nullptr) return e.wrong_type(key, "an array of { day, hourly } tables", v);
    for (const auto& step : *a) {
      const auto* st = step.as_table();
      if (st == nullptr) return e.wrong_type(key, "an array of { day, hourly } tables", step);
      core::RampStep rs;
      bool have_day = false, have_hourly = false;
      for (auto&& [sk, sv] : *st) {
        if (sk.str() == "day") {
          RAMPART_TRY(d, e.integer("steps.day", sv));
          rs.day = d;
          have_day = true;
        } else if (sk.str() == "hourly") {
          RAMPART_TRY(h, e.integer("steps.hourly", sv));
          rs.hourly = h;
          have_hourly = true;
        } else {
          return e.error(key, fmt::format("unknown key {:?} in a step", sk.str()));
        }
      }
      if (!have_day || !have_hourly) return e.error(key, "each step needs day and hourly");
      r.steps.push_back(rs);
    }
  }
  r.origin = e.origin();
  return r;
}

Result<core::OperatorSpec> read_operator(const toml::table& t, std::string_view file) {
  Entry e(t, "operator", file);
  RAMPART_TRY(name, e.required("name"));
  e.set_label(name);
  core::OperatorSpec o;
  o.name = std::move(name);
  for (auto&& [k, v] : t) {
    const auto key = k.str();
    if (key == "name") continue;
    if (key != "mx") return e.unknown(key);
    RAMPART_TRY(x, e.strings(key, v));
    o.mx = std::move(x);
  }
  if (o.mx.empty()) return e.error("name", "missing key \"mx\"");
  o.origin = e.origin();
  return o;
}

Result<core::CapSpec> read_cap(const toml::table& t, std::string_view file) {
  Entry e(t, "cap", file);
  RAMPART_TRY(stream, e.required("stream"));
  RAMPART_TRY(op, e.required("operator"));
  core::CapSpec c;
  c.stream = std::move(stream);
  c.op = std::move(op);
  e.set_label(c.id());
  bool have_daily = false;
  for (auto&& [k, v] : t) {
    const auto key = k.str();
    if (key == "stream" || key == "operator") continue;
    if (key == "daily") {
      RAMPART_TRY(x, e.integer(key, v));
      c.daily = x;
      have_daily = true;
    } else if (key == "until_day") {
      RAMPART_TRY(x, e.integer(key, v));
      c.until_day = x;
    } else {
      return e.unknown(key);
    }
  }
  if (!have_daily) return e.error("stream", "missing key \"daily\"");
  c.origin = e.origin();
  return c;
}

Result<core::ExclusionSpec> read_exclusion(const toml::table& t, std::string_view file) {
  Entry e(t, "exclusion", file);
  RAMPART_TRY(category, e.required("category"));
  e.set_label(category);
  core::ExclusionSpec x;
  x.category = std::move(category);
  for (auto&& [k, v] : t) {
    const auto key = k.str();
    if (key == "category") continue;
    if (key == "action") {
      RAMPART_TRY(s, e.string(key, v));
      auto a = core::parse_exclusion_action(s);
      if (!a)
        return e.error(
            key, fmt::format("action: want \"reject\", \"hold\" or \"discard\", got {:?}", s));
      x.action = *a;
    } else if (key == "streams") {
      RAMPART_TRY(s, e.strings(key, v));
      x.streams = std::move(s);
    } else if (key == "status") {
      RAMPART_TRY(s, e.string(key, v));
      x.status = std::move(s);
    } else if (key == "domains") {
      RAMPART_TRY(s, e.strings(key, v));
      x.domains = std::move(s);
    } else if (key == "addresses") {
      RAMPART_TRY(s, e.strings(key, v));
      x.addresses = std::move(s);
    } else {
      return e.unknown(key);
    }
  }
  x.origin = e.origin();
  return x;
}

Result<core::ClassifySpec> read_classify(const toml::table& t, std::string_view file) {
  Entry e(t, "classify", file);
  RAMPART_TRY(id, e.required("id"));
  e.set_label(id);
  core::ClassifySpec c;
  c.id = std::move(id);
  bool have_reply = false, have_outcome = false, have_category = false;
  for (auto&& [k, v] : t) {
    const auto key = k.str();
    if (key == "id") continue;
    if (key == "reply") {
      RAMPART_TRY(x, e.string(key, v));
      c.reply = std::move(x);
      have_reply = true;
    } else if (key == "dsn") {
      RAMPART_TRY(x, e.string(key, v));
      c.dsn = std::move(x);
    } else if (key == "operator") {
      RAMPART_TRY(x, e.string(key, v));
      c.op = std::move(x);
    } else if (key == "outcome") {
      RAMPART_TRY(x, e.string(key, v));
      auto o = core::parse_outcome(x);
      if (!o) {
        return e.error(key, fmt::format("outcome: want accepted, throttled, deferred_other, "
                                        "reject_reputation, reject_content, reject_recipient, "
                                        "reject_policy or reject_other, got {:?}",
                                        x));
      }
      c.outcome = *o;
      have_outcome = true;
    } else if (key == "category") {
      RAMPART_TRY(x, e.string(key, v));
      c.category = std::move(x);
      have_category = true;
    } else if (key == "suppress") {
      RAMPART_TRY(x, e.string(key, v));
      auto s = core::parse_suppress_scope(x);
      if (!s)
        return e.error(key, fmt::format("suppress: want \"address\" or \"domain\", got {:?}", x));
      c.suppress = *s;
    } else if (key == "backoff") {
      RAMPART_TRY(x, e.string(key, v));
      auto b = core::parse_backoff_hint(x);
      if (!b) return e.error(key, fmt::format("backoff: want \"slow\" or \"pause\", got {:?}", x));
      c.backoff = *b;
    } else if (key == "tests") {
      RAMPART_TRY(x, e.strings(key, v));
      c.tests = std::move(x);
    } else {
      return e.unknown(key);
    }
  }
  if (!have_reply) return e.error("id", "missing key \"reply\"");
  if (!have_outcome) return e.error("id", "missing key \"outcome\"");
  if (!have_category) return e.error("id", "missing key \"category\"");
  c.origin = e.origin();
  return c;
}

// [feedback]: one table, every key optional (core::FeedbackSpec holds the defaults). Ranges are
// core::validate()'s job, like every other table's.
Result<core::FeedbackSpec> read_feedback(const toml::table& t, std::string_view file) {
  Entry e(t, "feedback", file);
  core::FeedbackSpec f;
  struct Flag {
    std::string_view key;
    bool core::FeedbackSpec::*field;
  };
  struct Number {
    std::string_view key;
    std::int64_t core::FeedbackSpec::*field;
  };
  static constexpr Flag kFlags[] = {
      {"suppress_addresses", &core::FeedbackSpec::suppress_addresses},
      {"suppress_domains", &core::FeedbackSpec::suppress_domains},
      {"backoff", &core::FeedbackSpec::backoff},
      {"pause", &core::FeedbackSpec::pause},
  };
  static constexpr Number kNumbers[] = {
      {"address_expiry_days", &core::FeedbackSpec::address_expiry_days},
      {"domain_replies", &core::FeedbackSpec::domain_replies},
      {"domain_days", &core::FeedbackSpec::domain_days},
      {"domain_expiry_days", &core::FeedbackSpec::domain_expiry_days},
      {"backoff_percent", &core::FeedbackSpec::backoff_percent},
      {"backoff_min_attempts", &core::FeedbackSpec::backoff_min_attempts},
      {"backoff_factor_percent", &core::FeedbackSpec::backoff_factor_percent},
      {"backoff_hours", &core::FeedbackSpec::backoff_hours},
      {"pause_hours", &core::FeedbackSpec::pause_hours},
  };
  for (auto&& [k, v] : t) {
    const auto key = k.str();
    if (key == "category") {
      RAMPART_TRY(x, e.string(key, v));
      f.category = std::move(x);
      continue;
    }
    const auto* flag = std::find_if(std::begin(kFlags), std::end(kFlags),
                                    [&](const Flag& x) { return x.key == key; });
    if (flag != std::end(kFlags)) {
      RAMPART_TRY(x, e.boolean(key, v));
      f.*(flag->field) = x;
      continue;
    }
    const auto* number = std::find_if(std::begin(kNumbers), std::end(kNumbers),
                                      [&](const Number& x) { return x.key == key; });
    if (number == std::end(kNumbers)) return e.unknown(key);
    RAMPART_TRY(x, e.integer(key, v));
    f.*(number->field) = x;
  }
  f.origin = e.origin();
  return f;
}

template <class T>
Result<void> read_all(const toml::node& n, std::string_view key, std::string_view file,
                      Result<T> (*read)(const toml::table&, std::string_view),
                      std::vector<T>& out) {
  const auto* a = n.as_array();
  if (a == nullptr || !a->is_array_of_tables()) {
    return fail(Errc::Config,
                fmt::format("{}:{}: {}: expected [[{}]] tables (an array of tables), got {}", file,
                            line_of(n), key, key, type_name(n)));
  }
  for (const auto& t : *a) {
    RAMPART_TRY(item, read(*t.as_table(), file));
    out.push_back(std::move(item));
  }
  return {};
}

}  // namespace

Result<ParsedFile> parse(std::string_view toml_text, std::string_view file_name) {
  toml::table root;
  try {
    root = toml::parse(toml_text, file_name);
  } catch (const toml::parse_error& err) {
    return fail(Errc::Config, fmt::format("{}:{}:{}: {}", file_name, err.source().begin.line,
                                          err.source().begin.column, err.description()));
  }
  ParsedFile out;
  auto& spec = out.spec;
  // Validate the file's own duplicates too (merge_into names both places).
  core::RulesSpec file_spec;
  for (auto&& [k, v] : root) {
    const auto key = k.str();
    const int line = static_cast<int>(k.source().begin.line);
    Result<void> r;
    if (key == "stream") {
      r = read_all(v, key, file_name, &read_stream, file_spec.streams);
    } else if (key == "ramp") {
      r = read_all(v, key, file_name, &read_ramp, file_spec.ramps);
    } else if (key == "operator") {
      r = read_all(v, key, file_name, &read_operator, file_spec.operators);
    } else if (key == "cap") {
      r = read_all(v, key, file_name, &read_cap, file_spec.caps);
    } else if (key == "exclusion") {
      r = read_all(v, key, file_name, &read_exclusion, file_spec.exclusions);
    } else if (key == "classify") {
      r = read_all(v, key, file_name, &read_classify, file_spec.classify);
    } else if (key == "feedback") {
      if (const auto* t = v.as_table()) {
        auto f = read_feedback(*t, file_name);
        if (!f) return tl::unexpected(f.error());
        file_spec.feedback = std::move(*f);
      } else if (const auto* a = v.as_array(); a != nullptr && a->is_array_of_tables()) {
        return fail(Errc::Config,
                    fmt::format("{}:{}: feedback: write [feedback], a single table, not "
                                "[[feedback]]",
                                file_name, line));
      } else {
        return fail(Errc::Config,
                    fmt::format("{}:{}: feedback: expected a [feedback] table, got {}", file_name,
                                line, type_name(v)));
      }
    } else if (key == "include") {
      const auto* a = v.as_array();
      bool ok = a != nullptr;
      if (ok) {
        for (const auto& g : *a) {
          if (!g.is_string()) {
            ok = false;
            break;
          }
          out.includes.push_back(g.as_string()->get());
        }
      }
      if (!ok) {
        return fail(Errc::Config, fmt::format("{}:{}: include: expected an array of glob strings",
                                              file_name, line));
      }
    } else {
      std::string hint;
      for (std::string_view known :
           {"stream", "ramp", "operator", "cap", "exclusion", "classify"}) {
        if (key == std::string(known) + "s" || (v.is_table() && key == known)) {
          hint = fmt::format(" (write [[{}]], an array of tables)", known);
        }
      }
      if (key == "feedbacks") hint = " (write [feedback], a table)";
      return fail(Errc::Config,
                  fmt::format("{}:{}: unknown top-level key {:?}{}", file_name, line, key, hint));
    }
    if (!r) return tl::unexpected(r.error());
  }
  if (auto r = core::merge_into(spec, std::move(file_spec)); !r) return tl::unexpected(r.error());
  return out;
}

namespace {

Result<std::vector<std::string>> expand_glob(const std::string& pattern, bool must_match) {
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), GLOB_ERR | GLOB_MARK, nullptr, &g);
  std::vector<std::string> out;
  if (rc == 0) {
    for (std::size_t i = 0; i < g.gl_pathc; ++i) {
      std::string p = g.gl_pathv[i];
      if (!p.empty() && p.back() != '/')
        out.push_back(std::move(p));  // GLOB_MARK: skip directories
    }
  }
  globfree(&g);
  // An include whose directory does not exist (GLOB_ABORTED) simply matches nothing; a path
  // named on the command line must exist.
  if ((rc == GLOB_NOMATCH || rc == GLOB_ABORTED) && must_match) {
    return fail(Errc::Config, fmt::format("{}: no such file", pattern));
  }
  if (rc != 0 && rc != GLOB_NOMATCH && rc != GLOB_ABORTED)
    return fail(Errc::Config, fmt::format("{}: cannot read", pattern));
  return out;  // glob(3) returns sorted names, so includes apply in a stable order
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return fail(Errc::Config, fmt::format("{}: cannot read: {}", path, std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Result<core::RulesSpec> load_files(const std::vector<std::string>& paths) {
  core::RulesSpec merged;
  std::set<std::string> seen;
  std::function<Result<void>(const std::string&, int)> visit = [&](const std::string& path,
                                                                   int depth) -> Result<void> {
    std::error_code ec;
    auto canon = std::filesystem::weakly_canonical(path, ec).string();
    if (ec) canon = path;
    if (!seen.insert(canon).second) return {};
    if (depth > 16) return fail(Errc::Config, fmt::format("{}: includes nested too deeply", path));
    RAMPART_TRY(text, read_file(path));
    RAMPART_TRY(parsed, parse(text, path));
    const auto dir = std::filesystem::path(path).parent_path();
    for (const auto& inc : parsed.includes) {
      const auto pattern = std::filesystem::path(inc).is_absolute() ? inc : (dir / inc).string();
      RAMPART_TRY(files, expand_glob(pattern, false));
      for (const auto& f : files) {
        if (auto r = visit(f, depth + 1); !r) return r;
      }
    }
    return core::merge_into(merged, std::move(parsed.spec));
  };
  for (const auto& p : paths) {
    const bool is_glob = p.find_first_of("*?[") != std::string::npos;
    std::vector<std::string> files{p};
    if (is_glob) {
      RAMPART_TRY(f, expand_glob(p, true));
      files = std::move(f);
    }
    for (const auto& f : files) {
      if (auto r = visit(f, 0); !r) return tl::unexpected(r.error());
    }
  }
  return merged;
}

}  // namespace rampart::rules
