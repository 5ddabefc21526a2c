// The store logic, written once against sql.hpp: URL dispatch, migrations, the rule tables in
// and out, budget counters with their leases, back-offs, and what `rampart classify` keeps
// (cursors, reputation aggregates, domain hits, anomalies, bounce suppressions) and what
// `rampart dmarc` keeps (aggregate reports and their records). Each public method is one
// exception-free unit returning Errc (see store.hpp).
#include "store/store.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <initializer_list>
#include <iterator>
#include <map>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "core/text.hpp"
#include "store/sql.hpp"

namespace rampart::store {

std::int64_t as_int(const Value& v) {
  if (const auto* n = std::get_if<std::int64_t>(&v)) return *n;
  if (const auto* s = std::get_if<std::string>(&v)) {
    try {
      return std::stoll(*s);
    } catch (...) {
      return 0;
    }
  }
  return 0;
}
std::string as_text(const Value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* n = std::get_if<std::int64_t>(&v)) return std::to_string(*n);
  return {};
}
bool is_null(const Value& v) { return std::holds_alternative<std::monostate>(v); }

namespace {

// One item of a list column (sql.hpp, encode_list): its fields, escaped, and the newline.
template <class Fields>
void append_item(std::string& out, const Fields& fields) {
  bool first = true;
  for (std::string_view f : fields) {
    if (!first) out += '\t';
    first = false;
    // Copy runs without special characters whole; most values have none.
    for (std::size_t at = 0; at < f.size();) {
      const auto special = std::min(f.find_first_of("\\\t\n", at), f.size());
      out.append(f, at, special - at);
      if (special == f.size()) break;
      out += f[special] == '\\' ? "\\\\" : f[special] == '\t' ? "\\t" : "\\n";
      at = special + 1;
    }
  }
  out += '\n';
}

}  // namespace

std::string encode_list(const std::vector<std::vector<std::string>>& items) {
  std::string out;
  for (const auto& fields : items) append_item(out, fields);
  return out;
}

std::optional<std::vector<std::vector<std::string>>> decode_list(std::string_view text,
                                                                 std::size_t fields) {
  std::vector<std::vector<std::string>> out;
  std::vector<std::string> item(1);
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\') {
      if (++i == text.size()) return std::nullopt;
      switch (text[i]) {
        case '\\': item.back() += '\\'; break;
        case 't': item.back() += '\t'; break;
        case 'n': item.back() += '\n'; break;
        default: return std::nullopt;
      }
    } else if (c == '\t') {
      item.emplace_back();
    } else if (c == '\n') {
      if (item.size() != fields) return std::nullopt;
      out.push_back(std::move(item));
      item.assign(1, std::string());
    } else {
      item.back() += c;
    }
  }
  // Every item ends in a newline: anything after the last one is a torn value.
  if (item.size() != 1 || !item.front().empty()) return std::nullopt;
  return out;
}

namespace {

// Lists are stored newline-separated (rule validation forbids whitespace inside values).
std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? "\n" : "") + v[i];
  return out;
}
std::string join(const std::vector<std::int64_t>& v) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? "\n" : "") + std::to_string(v[i]);
  return out;
}
std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < s.size()) {
    auto nl = s.find('\n', start);
    if (nl == std::string::npos) nl = s.size();
    out.push_back(s.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

// UTC, ISO 8601 to the second: the text form of applied_at, created_at and expires_at, which
// compares (as text) in time order.
std::string iso_utc(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}
std::time_t unix_now() {
  return std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
}
std::string now_utc() { return iso_utc(unix_now()); }

Value opt(const std::optional<std::int64_t>& v) { return v ? Value{*v} : Value{}; }
Value opt(const std::optional<std::string>& v) { return v ? Value{*v} : Value{}; }

// "file:line" as stored in `origin` columns, and back.
core::Origin parse_origin(const std::string& s) {
  core::Origin o;
  const auto colon = s.rfind(':');
  if (colon != std::string::npos && colon + 1 < s.size() &&
      s.find_first_not_of("0123456789", colon + 1) == std::string::npos) {
    o.file = s.substr(0, colon);
    o.line = static_cast<int>(std::stol(s.substr(colon + 1)));
  } else {
    o.file = s;
  }
  return o;
}

// "INSERT ... VALUES ($1, ..), (..) ... tail" for `rows` rows of `cols` values each.
std::string values_sql(std::string_view head, std::size_t rows, std::size_t cols,
                       std::string_view tail) {
  std::string out(head);
  out += " VALUES ";
  std::size_t n = 0;
  for (std::size_t r = 0; r < rows; ++r) {
    out += r ? ", (" : "(";
    for (std::size_t c = 0; c < cols; ++c) out += fmt::format("{}${}", c ? ", " : "", ++n);
    out += ')';
  }
  out += ' ';
  out += tail;
  return out;
}

class SqlStore final : public Store {
 public:
  explicit SqlStore(std::unique_ptr<Sql> sql) : sql_(std::move(sql)) {}

  std::string_view engine() const override {
    return sql_->dialect() == "pgsql" ? "postgresql" : "sqlite";
  }

  Result<int> schema_version() override {
    // The table may not exist yet: create it (idempotent, same SQL on both engines).
    if (auto r = sql_->exec_script(kSchemaTable); !r) return tl::unexpected(r.error());
    RAMPART_TRY(rows, sql_->query("SELECT COALESCE(MAX(version), 0) FROM schema_version"));
    return static_cast<int>(rows.empty() ? 0 : as_int(rows.front()[0]));
  }

  Result<int> migrate() override {
    RAMPART_TRY(current, schema_version());
    int version = current;
    const int latest = latest_schema_version();
    if (version > latest) return too_new(version);
    for (const auto& m : migrations(sql_->dialect())) {
      if (m.version <= version) continue;
      if (auto r = sql_->begin(); !r) return tl::unexpected(r.error());
      auto r = apply_migration(m);
      if (!r) {
        sql_->rollback();
        return tl::unexpected(r.error());
      }
      if (*r) {
        if (auto c = sql_->commit(); !c) return tl::unexpected(c.error());
      } else {
        sql_->rollback();  // another host applied it first
      }
      version = m.version;
    }
    return version;
  }

  Result<RulesVersion> rules_version() override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    RAMPART_TRY(rows,
                sql_->query("SELECT version, applied_at, note FROM rules_version WHERE id = 1"));
    if (rows.empty()) return fail(Errc::Internal, "store: rules_version row is missing");
    const auto& r = rows.front();
    return RulesVersion{as_int(r[0]), as_text(r[1]), as_text(r[2])};
  }

  Result<RulesVersion> apply_rules(const core::RulesSpec& spec, std::string_view note) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    if (auto r = sql_->begin(); !r) return tl::unexpected(r.error());
    auto r = write_rules(spec, note);
    if (!r) {
      sql_->rollback();
      return tl::unexpected(r.error());
    }
    if (auto c = sql_->commit(); !c) return tl::unexpected(c.error());
    return r;
  }

  Result<core::RulesSpec> load_rules() override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    core::RulesSpec spec;
    RAMPART_TRY(ramps, sql_->query("SELECT name, origin FROM ramps ORDER BY position"));
    for (const auto& r : ramps) {
      core::RampSpec ramp{as_text(r[0]), {}, parse_origin(as_text(r[1]))};
      const Value name{ramp.name};
      RAMPART_TRY(steps,
                  sql_->query("SELECT day, hourly FROM ramp_steps WHERE ramp = $1 ORDER BY day",
                              std::span(&name, 1)));
      for (const auto& s : steps) ramp.steps.push_back({as_int(s[0]), as_int(s[1])});
      spec.ramps.push_back(std::move(ramp));
    }
    RAMPART_TRY(
        streams,
        sql_->query(
            "SELECT name, ports, clients, senders, sasl_users, transport, egress_ip, from_domains, "
            "warmup_start, warmup_count, warmup_ramp, warmup_min_daily, daily_ceiling, over_cap, "
            "hygiene, origin FROM streams ORDER BY position"));
    for (const auto& r : streams) {
      core::StreamSpec s;
      s.name = as_text(r[0]);
      for (const auto& p : split(as_text(r[1]))) s.ports.push_back(as_int(Value{p}));
      s.clients = split(as_text(r[2]));
      s.senders = split(as_text(r[3]));
      s.sasl_users = split(as_text(r[4]));
      s.transport = as_text(r[5]);
      s.egress_ip = as_text(r[6]);
      s.from_domains = split(as_text(r[7]));
      if (!is_null(r[8])) {
        auto start = core::Date::parse(as_text(r[8]));
        auto count = core::parse_warmup_count(as_text(r[9]));
        if (!start || !count) return corrupt("streams", s.name);
        s.warmup = core::Warmup{*start, *count, as_text(r[10]), as_int(r[11])};
      }
      if (!is_null(r[12])) s.daily_ceiling = as_int(r[12]);
      auto over = core::parse_over_cap(as_text(r[13]));
      auto hyg = core::parse_hygiene(as_text(r[14]));
      if (!over || !hyg) return corrupt("streams", s.name);
      s.over_cap = *over;
      s.hygiene = *hyg;
      s.origin = parse_origin(as_text(r[15]));
      spec.streams.push_back(std::move(s));
    }
    RAMPART_TRY(ops, sql_->query("SELECT name, origin FROM operators ORDER BY position"));
    RAMPART_TRY(mx, sql_->query("SELECT operator, suffix FROM operator_mx ORDER BY position"));
    for (const auto& r : ops) {
      core::OperatorSpec o{as_text(r[0]), {}, parse_origin(as_text(r[1]))};
      for (const auto& m : mx) {
        if (as_text(m[0]) == o.name) o.mx.push_back(as_text(m[1]));
      }
      spec.operators.push_back(std::move(o));
    }
    RAMPART_TRY(
        caps, sql_->query(
                  "SELECT stream, operator, daily, until_day, origin FROM caps ORDER BY position"));
    for (const auto& r : caps) {
      core::CapSpec c{as_text(r[0]), as_text(r[1]), as_int(r[2]), {}, parse_origin(as_text(r[4]))};
      if (!is_null(r[3])) c.until_day = as_int(r[3]);
      spec.caps.push_back(std::move(c));
    }
    RAMPART_TRY(
        excl,
        sql_->query(
            "SELECT category, action, streams, status, origin FROM exclusions ORDER BY position"));
    RAMPART_TRY(
        entries,
        sql_->query(
            "SELECT category, kind, value FROM exclusion_entries "
            "WHERE expires_at IS NULL OR expires_at > $1 ORDER BY category, position, value",
            std::vector<Value>{now_utc()}));
    std::unordered_map<std::string, std::vector<const Row*>> by_category;
    for (const auto& en : entries) by_category[as_text(en[0])].push_back(&en);
    for (const auto& r : excl) {
      core::ExclusionSpec e;
      e.category = as_text(r[0]);
      if (!is_null(r[1])) {
        auto a = core::parse_exclusion_action(as_text(r[1]));
        if (!a) return corrupt("exclusions", e.category);
        e.action = *a;
      }
      if (!is_null(r[2])) e.streams = split(as_text(r[2]));
      if (!is_null(r[3])) e.status = as_text(r[3]);
      e.origin = parse_origin(as_text(r[4]));
      for (const Row* en : by_category[e.category]) {
        ((*en)[1] == Value{std::string("domain")} ? e.domains : e.addresses)
            .push_back(as_text((*en)[2]));
      }
      spec.exclusions.push_back(std::move(e));
    }
    RAMPART_TRY(cls, sql_->query("SELECT id, reply, dsn, operator, outcome, category, suppress, "
                                 "backoff, tests, origin FROM classify_rules ORDER BY position"));
    for (const auto& r : cls) {
      core::ClassifySpec c;
      c.id = as_text(r[0]);
      c.reply = as_text(r[1]);
      c.dsn = as_text(r[2]);
      c.op = as_text(r[3]);
      auto outcome = core::parse_outcome(as_text(r[4]));
      if (!outcome) return corrupt("classify_rules", c.id);
      c.outcome = *outcome;
      c.category = as_text(r[5]);
      if (!is_null(r[6])) {
        auto sc = core::parse_suppress_scope(as_text(r[6]));
        if (!sc) return corrupt("classify_rules", c.id);
        c.suppress = *sc;
      }
      if (!is_null(r[7])) {
        auto b = core::parse_backoff_hint(as_text(r[7]));
        if (!b) return corrupt("classify_rules", c.id);
        c.backoff = *b;
      }
      c.tests = split(as_text(r[8]));
      c.origin = parse_origin(as_text(r[9]));
      spec.classify.push_back(std::move(c));
    }
    RAMPART_TRY(
        fb, sql_->query("SELECT category, suppress_addresses, address_expiry_days, "
                        "suppress_domains, domain_replies, domain_days, domain_expiry_days, "
                        "backoff, backoff_percent, backoff_min_attempts, backoff_factor_percent, "
                        "backoff_hours, pause, pause_hours, origin FROM feedback WHERE id = 1"));
    if (!fb.empty()) {
      const auto& r = fb.front();
      core::FeedbackSpec f;
      f.category = as_text(r[0]);
      f.suppress_addresses = as_int(r[1]) != 0;
      f.address_expiry_days = as_int(r[2]);
      f.suppress_domains = as_int(r[3]) != 0;
      f.domain_replies = as_int(r[4]);
      f.domain_days = as_int(r[5]);
      f.domain_expiry_days = as_int(r[6]);
      f.backoff = as_int(r[7]) != 0;
      f.backoff_percent = as_int(r[8]);
      f.backoff_min_attempts = as_int(r[9]);
      f.backoff_factor_percent = as_int(r[10]);
      f.backoff_hours = as_int(r[11]);
      f.pause = as_int(r[12]) != 0;
      f.pause_hours = as_int(r[13]);
      f.origin = parse_origin(as_text(r[14]));
      spec.feedback = std::move(f);
    }
    return spec;
  }

  Result<LeaseGrant> lease(const LeaseRequest& req) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    // One write transaction: SQLite holds the write lock (BEGIN IMMEDIATE), PostgreSQL the global
    // advisory lock, from the read of the use to the charge. That makes read-decide-charge atomic
    // across every host, which is what keeps the fleet under the limit.
    return in_transaction([&]() -> Result<LeaseGrant> {
      LeaseGrant g;
      std::int64_t used = 0;
      if (req.hourly) {
        // Older buckets left the window (bucket_expiry(minute_of(now) - 61) <= now); of the
        // rest, only the live ones are kept (LeaseGrant::window).
        const std::vector<Value> p{req.scope, core::minute_of(req.now) - 61};
        RAMPART_TRY(rows, sql_->query("SELECT bucket, used FROM counters WHERE scope = $1 AND "
                                      "bucket >= $2 ORDER BY bucket",
                                      p));
        for (const auto& r : rows) {
          const core::Bucket b{as_int(r[0]), as_int(r[1])};
          if (core::bucket_expiry(b.bucket) > req.now) g.window.push_back(b);
        }
        used = core::window_used(g.window, req.now);
      } else {
        const std::vector<Value> p{req.scope, req.bucket};
        RAMPART_TRY(rows,
                    sql_->query("SELECT used FROM counters WHERE scope = $1 AND bucket = $2", p));
        used = rows.empty() ? 0 : as_int(rows.front()[0]);
      }
      g.granted = core::grant(req.limit, used, req.want);
      g.used = used + g.granted;
      if (g.granted == 0) return g;
      const std::vector<Value> c{req.scope, req.bucket, g.granted};
      RAMPART_TRY(charged,
                  sql_->query("INSERT INTO counters (scope, bucket, used) VALUES ($1, $2, $3) "
                              "ON CONFLICT (scope, bucket) DO UPDATE SET used = counters.used + "
                              "excluded.used RETURNING used",
                              c));
      if (charged.empty()) return fail(Errc::Internal, "store: counter upsert returned no row");
      if (req.hourly) {
        auto it = std::find_if(g.window.begin(), g.window.end(),
                               [&](const core::Bucket& b) { return b.bucket == req.bucket; });
        if (it == g.window.end()) {
          g.window.push_back({req.bucket, 0});
          it = std::prev(g.window.end());
        }
        it->used = as_int(charged.front()[0]);
      }
      const std::vector<Value> l{req.host, req.scope, req.bucket, g.granted, req.expires, req.now};
      RAMPART_TRY(ids, sql_->query("INSERT INTO leases (host, scope, bucket, units, expires_at, "
                                   "created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                                   l));
      if (ids.empty()) return fail(Errc::Internal, "store: lease insert returned no id");
      g.id = as_int(ids.front()[0]);
      return g;
    });
  }

  Result<void> return_lease(std::int64_t id, std::int64_t unused) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    return in_transaction([&]() -> Result<void> {
      const Value key{id};
      RAMPART_TRY(rows, sql_->query("SELECT scope, bucket, units FROM leases WHERE id = $1",
                                    std::span(&key, 1)));
      if (rows.empty()) return {};  // returned already, or swept: nothing to give back
      const auto& r = rows.front();
      const std::int64_t back = std::clamp<std::int64_t>(unused, 0, as_int(r[2]));
      if (back > 0) {
        // The counter row may be gone (an hour bucket pruned after it left the window).
        const std::vector<Value> p{r[0], r[1], back};
        if (auto u = sql_->query("UPDATE counters SET used = CASE WHEN used > $3 THEN used - $3 "
                                 "ELSE 0 END WHERE scope = $1 AND bucket = $2",
                                 p);
            !u) {
          return tl::unexpected(u.error());
        }
      }
      if (auto d = sql_->query("DELETE FROM leases WHERE id = $1", std::span(&key, 1)); !d) {
        return tl::unexpected(d.error());
      }
      return {};
    });
  }

  Result<void> uncharge(std::string_view scope, std::int64_t bucket, std::int64_t units) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    if (units <= 0) return {};
    const std::vector<Value> p{std::string(scope), bucket, units};
    RAMPART_TRY(rows, sql_->query("UPDATE counters SET used = CASE WHEN used > $3 THEN used - $3 "
                                  "ELSE 0 END WHERE scope = $1 AND bucket = $2",
                                  p));
    (void)rows;
    return {};
  }

  Result<std::int64_t> sweep_leases(core::UnixTime before) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    const Value b{before};
    RAMPART_TRY(rows, sql_->query("DELETE FROM leases WHERE expires_at < $1 RETURNING id",
                                  std::span(&b, 1)));
    return static_cast<std::int64_t>(rows.size());
  }

  Result<std::vector<LeaseRow>> leases() override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    RAMPART_TRY(rows, sql_->query("SELECT id, host, scope, bucket, units, expires_at FROM leases "
                                  "ORDER BY id"));
    std::vector<LeaseRow> out;
    out.reserve(rows.size());
    for (const auto& r : rows) {
      out.push_back(
          {as_int(r[0]), as_text(r[1]), as_text(r[2]), as_int(r[3]), as_int(r[4]), as_int(r[5])});
    }
    return out;
  }

  Result<std::vector<CounterRow>> counters(std::string_view scope_prefix,
                                           std::int64_t min_bucket) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    // substr, not LIKE: stream names may hold '_', a LIKE wildcard.
    const std::vector<Value> p{std::string(scope_prefix), min_bucket};
    RAMPART_TRY(rows, sql_->query("SELECT scope, bucket, used FROM counters WHERE bucket >= $2 AND "
                                  "substr(scope, 1, length(CAST($1 AS TEXT))) = CAST($1 AS TEXT) "
                                  "ORDER BY scope, bucket",
                                  p));
    std::vector<CounterRow> out;
    out.reserve(rows.size());
    for (const auto& r : rows) out.push_back({as_text(r[0]), as_int(r[1]), as_int(r[2])});
    return out;
  }

  Result<std::vector<core::DayCount>> day_history(std::string_view scope) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    const Value s{std::string(scope)};
    RAMPART_TRY(rows,
                sql_->query("SELECT bucket, used FROM counters WHERE scope = $1 ORDER BY bucket",
                            std::span(&s, 1)));
    std::vector<core::DayCount> out;
    out.reserve(rows.size());
    for (const auto& r : rows) out.push_back({as_int(r[0]), as_int(r[1])});
    return out;
  }

  Result<std::int64_t> prune_counters(core::UnixTime now) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    // The newest minute m with bucket_expiry(m) <= now: (m + 1) * 60 + 3600 <= now.
    const Value last{core::floor_div(now - core::kWindowSeconds, core::kBucketSeconds) - 1};
    RAMPART_TRY(rows, sql_->query("DELETE FROM counters WHERE scope LIKE 'hour:%' AND bucket <= $1 "
                                  "RETURNING bucket",
                                  std::span(&last, 1)));
    return static_cast<std::int64_t>(rows.size());
  }

  Result<void> set_backoff(const core::Backoff& b) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    if (b.permille < 0 || b.permille > 1000) {
      return fail(Errc::Internal,
                  fmt::format("store: back-off {}/{}: permille {} is outside 0..1000", b.stream,
                              b.op, b.permille));
    }
    const std::vector<Value> p{b.stream, b.op, b.permille, b.until, b.reason, b.source, b.created};
    auto r = sql_->query(
        "INSERT INTO backoffs (stream, operator, permille, until_at, reason, source, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (stream, operator) DO UPDATE SET "
        "permille = excluded.permille, until_at = excluded.until_at, reason = excluded.reason, "
        "source = excluded.source, created_at = excluded.created_at",
        p);
    if (!r) return tl::unexpected(r.error());
    return {};
  }

  Result<bool> clear_backoff(std::string_view stream, std::string_view op) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    const std::vector<Value> p{std::string(stream), std::string(op)};
    RAMPART_TRY(rows, sql_->query("DELETE FROM backoffs WHERE stream = $1 AND operator = $2 "
                                  "RETURNING stream",
                                  p));
    return !rows.empty();
  }

  Result<std::vector<core::Backoff>> backoffs(core::UnixTime now) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    const Value n{now};
    // Two texts rather than "$1 = 0 OR ...": PostgreSQL would type $1 from the literal as int4
    // (and it wants exactly as many parameters as the text uses).
    RAMPART_TRY(rows, sql_->query(now == 0 ? "SELECT stream, operator, permille, until_at, reason, "
                                             "source, created_at FROM backoffs "
                                             "ORDER BY stream, operator"
                                           : "SELECT stream, operator, permille, until_at, reason, "
                                             "source, created_at FROM backoffs WHERE until_at > $1 "
                                             "ORDER BY stream, operator",
                                  std::span(&n, now == 0 ? 0 : 1)));
    std::vector<core::Backoff> out;
    out.reserve(rows.size());
    for (const auto& r : rows) {
      out.push_back({as_text(r[0]), as_text(r[1]), as_int(r[2]), as_int(r[3]), as_text(r[4]),
                     as_text(r[5]), as_int(r[6])});
    }
    return out;
  }

  Result<std::optional<core::Cursor>> cursor(std::string_view identity) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    const Value id{std::string(identity)};
    RAMPART_TRY(rows, sql_->query("SELECT identity, byte_offset, path, updated_at FROM "
                                  "classify_cursors WHERE identity = $1",
                                  std::span(&id, 1)));
    if (rows.empty()) return std::optional<core::Cursor>{};
    const auto& r = rows.front();
    return core::Cursor{as_text(r[0]), as_int(r[1]), as_text(r[2]), as_int(r[3])};
  }

  Result<std::vector<core::Cursor>> cursors() override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    RAMPART_TRY(
        rows, sql_->query("SELECT identity, byte_offset, path, updated_at FROM classify_cursors"));
    std::vector<core::Cursor> out;
    out.reserve(rows.size());
    for (const auto& r : rows) {
      out.push_back({as_text(r[0]), as_int(r[1]), as_text(r[2]), as_int(r[3])});
    }
    // Sorted here rather than in SQL: PostgreSQL's text collation is not byte order.
    std::sort(out.begin(), out.end(), [](const core::Cursor& a, const core::Cursor& b) {
      return std::tie(b.updated, a.identity) < std::tie(a.updated, b.identity);
    });
    return out;
  }

  Result<bool> commit_classify(const ClassifyBatch& b) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    if (b.from_offset < 0 || b.to_offset < b.from_offset) {
      return fail(Errc::Internal, fmt::format("store: classify batch {:?} moves its cursor from {} "
                                              "to {}",
                                              b.identity, b.from_offset, b.to_offset));
    }
    return in_transaction([&]() -> Result<bool> {
      // Compare-and-set in one statement, so it holds even without the writers' lock: the row
      // moves only if it is still at from_offset (a missing row is at 0 and only then created).
      const std::vector<Value> c{b.identity, b.to_offset, b.path,
                                 static_cast<std::int64_t>(unix_now()), b.from_offset};
      RAMPART_TRY(moved,
                  sql_->query(b.from_offset == 0
                                  ? "INSERT INTO classify_cursors (identity, byte_offset, path, "
                                    "updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (identity) DO "
                                    "UPDATE SET byte_offset = excluded.byte_offset, path = "
                                    "excluded.path, updated_at = excluded.updated_at WHERE "
                                    "classify_cursors.byte_offset = $5 RETURNING identity"
                                  : "UPDATE classify_cursors SET byte_offset = $2, path = $3, "
                                    "updated_at = $4 WHERE identity = $1 AND byte_offset = $5 "
                                    "RETURNING identity",
                              c));
      if (moved.empty()) return false;  // another run got there first; nothing was written
      if (auto r = add_aggregates(b.aggregates); !r) return tl::unexpected(r.error());
      if (auto r = add_domain_hits(b.domain_hits); !r) return tl::unexpected(r.error());
      if (auto r = upsert_anomalies(b.anomalies, "anomalies.count + excluded.count"); !r) {
        return tl::unexpected(r.error());
      }
      return true;
    });
  }

  Result<std::vector<core::Aggregate>> aggregates(std::int64_t from_day,
                                                  std::int64_t to_day) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    const std::vector<Value> p{from_day, to_day};
    RAMPART_TRY(rows, sql_->query("SELECT day, stream, egress_ip, operator, outcome, category, "
                                  "status, count, sample FROM reputation WHERE day >= $1 AND "
                                  "day <= $2",
                                  p));
    std::vector<core::Aggregate> out;
    out.reserve(rows.size());
    for (const auto& r : rows) {
      auto outcome = core::parse_outcome(as_text(r[4]));
      if (!outcome) return corrupt("reputation", as_text(r[4]));
      out.push_back({{as_int(r[0]), as_text(r[1]), as_text(r[2]), as_text(r[3]), *outcome,
                      as_text(r[5]), as_text(r[6])},
                     as_int(r[7]),
                     as_text(r[8])});
    }
    std::sort(out.begin(), out.end(),
              [](const core::Aggregate& a, const core::Aggregate& b) { return a.key < b.key; });
    return out;
  }

  Result<std::vector<core::DomainHit>> domain_hits(std::int64_t from_day,
                                                   std::int64_t to_day) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    const std::vector<Value> p{from_day, to_day};
    RAMPART_TRY(rows, sql_->query("SELECT domain, MAX(day), SUM(count) FROM domain_hits WHERE "
                                  "day >= $1 AND day <= $2 GROUP BY domain",
                                  p));
    std::vector<core::DomainHit> out;
    out.reserve(rows.size());
    for (const auto& r : rows) out.push_back({as_text(r[0]), as_int(r[1]), as_int(r[2])});
    std::sort(out.begin(), out.end(), [](const core::DomainHit& a, const core::DomainHit& b) {
      return a.domain < b.domain;
    });
    return out;
  }

  Result<std::vector<core::Anomaly>> anomalies(std::int64_t from_day) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    const Value d{from_day};
    RAMPART_TRY(rows, sql_->query("SELECT kind, day, stream, subject, first_at, count, detail "
                                  "FROM anomalies WHERE day >= $1",
                                  std::span(&d, 1)));
    std::vector<core::Anomaly> out;
    out.reserve(rows.size());
    for (const auto& r : rows) {
      auto kind = core::parse_anomaly_kind(as_text(r[0]));
      if (!kind) return corrupt("anomalies", as_text(r[0]));
      out.push_back({*kind, as_int(r[1]), as_text(r[2]), as_text(r[3]), as_int(r[4]), as_int(r[5]),
                     as_text(r[6])});
    }
    // Newest first; ties in a fixed order so listings are stable.
    std::sort(out.begin(), out.end(), [](const core::Anomaly& a, const core::Anomaly& b) {
      return std::tie(b.day, b.first, a.kind, a.stream, a.subject) <
             std::tie(a.day, a.first, b.kind, b.stream, b.subject);
    });
    return out;
  }

  Result<void> add_anomalies(const std::vector<core::Anomaly>& list) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    if (list.empty()) return {};
    // No cursor guards these, so adding the same anomaly again must change nothing: the larger
    // count wins instead of the sum (reputation.hpp: "keeps the first row and the larger count").
    return in_transaction([&]() -> Result<void> {
      return upsert_anomalies(list,
                              "CASE WHEN excluded.count > anomalies.count THEN excluded.count "
                              "ELSE anomalies.count END");
    });
  }

  Result<bool> has_dmarc_report(const core::dmarc::Report& rep) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    const std::vector<Value> p{rep.org_name, rep.report_id, rep.policy.domain, rep.begin, rep.end};
    RAMPART_TRY(rows, sql_->query("SELECT 1 FROM dmarc_report WHERE org_name = $1 AND report_id "
                                  "= $2 AND policy_domain = $3 AND begin_at = $4 AND end_at = $5",
                                  p));
    return !rows.empty();
  }

  Result<bool> add_dmarc_report(const core::dmarc::Report& rep, std::string_view source,
                                core::UnixTime now) override {
    const DmarcNew one{&rep, source};
    RAMPART_TRY(fresh, add_dmarc_reports(std::span(&one, 1), now));
    return fresh.front();
  }

  Result<std::vector<bool>> add_dmarc_reports(std::span<const DmarcNew> batch,
                                              core::UnixTime now) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    // libpq passes parameters as C strings, so PostgreSQL would store a NUL-bearing value cut
    // short while SQLite keeps it whole. XML cannot carry U+0000 (XML 1.0 §2.2), so such a value
    // is a caller's bug or a hostile file: refused on both engines, nothing stored.
    for (const auto& item : batch) {
      if (const char* field = nul_field(*item.report, item.source)) {
        return fail(Errc::Invalid,
                    fmt::format("dmarc report {:?} from {:?}: {} holds a NUL character",
                                item.report->report_id, item.report->org_name, field));
      }
    }
    return in_transaction([&]() -> Result<std::vector<bool>> {
      std::vector<bool> out;
      out.reserve(batch.size());
      for (const auto& item : batch) {
        RAMPART_TRY(fresh, insert_dmarc_report(*item.report, item.source, now));
        out.push_back(fresh);
      }
      return out;
    });
  }

  // One report's rows, inside the caller's transaction; false when it is already stored.
  Result<bool> insert_dmarc_report(const core::dmarc::Report& rep, std::string_view source,
                                   core::UnixTime now) {
    const auto& pol = rep.policy;
    std::string errors;
    for (const auto& e : rep.errors) {
      append_item(errors, std::initializer_list<std::string_view>{e});
    }
    const std::vector<Value> head{rep.org_name,
                                  rep.report_id,
                                  pol.domain,
                                  rep.begin,
                                  rep.end,
                                  rep.email,
                                  rep.extra_contact_info,
                                  rep.version,
                                  std::int64_t{rep.dmarcbis},
                                  pol.adkim,
                                  pol.aspf,
                                  pol.p,
                                  pol.sp,
                                  pol.np,
                                  opt(pol.pct),
                                  pol.fo,
                                  pol.testing,
                                  pol.discovery_method,
                                  std::move(errors),
                                  static_cast<std::int64_t>(rep.records.size()),
                                  rep.messages(),
                                  rep.pass_messages(),
                                  std::string(source),
                                  now};
    // The UNIQUE key decides: a report already stored inserts no row and returns no id.
    RAMPART_TRY(ids,
                sql_->query("INSERT INTO dmarc_report (org_name, report_id, policy_domain, "
                            "begin_at, end_at, email, extra_contact_info, version, dmarcbis, "
                            "adkim, aspf, p, sp, np, pct, fo, testing, discovery_method, errors, "
                            "records, messages, pass_messages, source, ingested_at) VALUES ($1, "
                            "$2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, "
                            "$17, $18, $19, $20, $21, $22, $23, $24) ON CONFLICT DO NOTHING "
                            "RETURNING id",
                            head));
    if (ids.empty()) return false;
    const std::int64_t id = as_int(ids.front()[0]);
    // A chunk of rows at a time: a report may hold 100k records, and their values need not
    // all be in memory at once.
    constexpr std::size_t kCols = 12;
    std::vector<Value> flat;
    for (std::size_t start = 0; start < rep.records.size(); start += kChunkRows) {
      const std::size_t stop = std::min(rep.records.size(), start + kChunkRows);
      flat.clear();
      flat.reserve((stop - start) * kCols);
      for (std::size_t i = start; i < stop; ++i) {
        const auto& rec = rep.records[i];
        std::string reasons;
        for (const auto& r : rec.reasons) {
          append_item(reasons, std::initializer_list<std::string_view>{r.type, r.comment});
        }
        std::string auth;
        for (const auto& a : rec.auth) {
          append_item(auth, std::initializer_list<std::string_view>{
                                a.method, a.domain, a.selector, a.scope, a.result, a.human_result});
        }
        flat.emplace_back(id);
        flat.emplace_back(static_cast<std::int64_t>(i + 1));
        flat.emplace_back(rec.source_ip);
        flat.emplace_back(rec.count);
        flat.emplace_back(rec.disposition);
        flat.emplace_back(rec.dkim);
        flat.emplace_back(rec.spf);
        flat.emplace_back(rec.header_from);
        flat.emplace_back(rec.envelope_from);
        flat.emplace_back(rec.envelope_to);
        flat.emplace_back(std::move(reasons));
        flat.emplace_back(std::move(auth));
      }
      if (auto r = insert_rows("INSERT INTO dmarc_record (report, position, source_ip, count, "
                               "disposition, dkim, spf, header_from, envelope_from, envelope_to, "
                               "reasons, auth)",
                               kCols, "", flat);
          !r) {
        return tl::unexpected(r.error());
      }
    }
    return true;
  }

  Result<std::vector<DmarcSourceRow>> dmarc_sources(core::UnixTime from) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    // One statement, so one snapshot: sums per (IP, report, header_from), folded per IP here.
    const Value f{from};
    RAMPART_TRY(rows,
                sql_->query("SELECT d.source_ip, d.report, r.org_name, d.header_from, "
                            "SUM(d.count), SUM(CASE WHEN d.dkim = 'pass' OR d.spf = 'pass' THEN "
                            "d.count ELSE 0 END), SUM(CASE WHEN d.dkim = 'pass' THEN d.count ELSE "
                            "0 END), SUM(CASE WHEN d.spf = 'pass' THEN d.count ELSE 0 END) FROM "
                            "dmarc_record d JOIN dmarc_report r ON r.id = d.report WHERE "
                            "r.end_at >= $1 GROUP BY d.source_ip, d.report, r.org_name, "
                            "d.header_from",
                            std::span(&f, 1)));
    std::unordered_map<std::string, std::size_t> index;
    std::vector<DmarcSourceRow> out;
    std::vector<std::unordered_set<std::int64_t>> reports;
    for (const auto& r : rows) {
      auto [it, fresh] = index.try_emplace(as_text(r[0]), out.size());
      if (fresh) {
        out.push_back({});
        out.back().source_ip = it->first;
        reports.emplace_back();
      }
      auto& row = out[it->second];
      row.messages += as_int(r[4]);
      row.dmarc_pass += as_int(r[5]);
      row.dkim_aligned += as_int(r[6]);
      row.spf_aligned += as_int(r[7]);
      reports[it->second].insert(as_int(r[1]));
      // Empty = absent (core/dmarc.hpp): no reporter or domain to name.
      if (auto org = as_text(r[2]); !org.empty()) row.reporters.push_back(std::move(org));
      if (auto dom = as_text(r[3]); !dom.empty()) row.domains.push_back(std::move(dom));
    }
    auto sorted_unique = [](std::vector<std::string>& v) {
      std::sort(v.begin(), v.end());
      v.erase(std::unique(v.begin(), v.end()), v.end());
    };
    for (std::size_t i = 0; i < out.size(); ++i) {
      out[i].reports = static_cast<std::int64_t>(reports[i].size());
      sorted_unique(out[i].reporters);
      sorted_unique(out[i].domains);
    }
    // Sorted here rather than in SQL: PostgreSQL's text collation is not byte order.
    std::sort(out.begin(), out.end(), [](const DmarcSourceRow& a, const DmarcSourceRow& b) {
      return std::tie(b.messages, a.source_ip) < std::tie(a.messages, b.source_ip);
    });
    return out;
  }

  Result<DmarcArrival> dmarc_arrival() override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    RAMPART_TRY(rows,
                sql_->query("SELECT COUNT(*), MAX(ingested_at), MAX(end_at) FROM dmarc_report"));
    DmarcArrival a;
    if (rows.empty()) return a;
    const auto& r = rows.front();
    a.reports = as_int(r[0]);
    if (!is_null(r[1])) a.last_ingested = as_int(r[1]);
    if (!is_null(r[2])) a.last_end = as_int(r[2]);
    return a;
  }

  Result<std::array<std::int64_t, 3>> dmarc_totals() override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    // Counted from the records themselves, not the per-report summary columns.
    RAMPART_TRY(rows, sql_->query("SELECT (SELECT COUNT(*) FROM dmarc_report), COUNT(*), "
                                  "COALESCE(SUM(count), 0) FROM dmarc_record"));
    if (rows.empty()) return std::array<std::int64_t, 3>{0, 0, 0};
    const auto& r = rows.front();
    return std::array<std::int64_t, 3>{as_int(r[0]), as_int(r[1]), as_int(r[2])};
  }

  Result<std::int64_t> add_suppressions(std::string_view category,
                                        const std::vector<core::Suppression>& list,
                                        core::UnixTime now) override {
    if (auto r = require_schema(); !r) return tl::unexpected(r.error());
    // A value that is no address/domain would make every later load_rules fail validation (and
    // the daemons keep serving a stale rule set): it is skipped, never stored.
    std::vector<std::pair<std::string, const core::Suppression*>> wanted;
    wanted.reserve(list.size());
    for (const auto& s : list) {
      auto n = s.domain ? core::normalize_domain(s.value) : core::normalize_address(s.value);
      if (n) wanted.emplace_back(std::move(*n), &s);
    }
    if (wanted.empty()) return std::int64_t{0};
    return in_transaction([&]() -> Result<std::int64_t> {
      const Value cat{std::string(category)};
      RAMPART_TRY(have, sql_->query("SELECT source FROM exclusions WHERE category = $1",
                                    std::span(&cat, 1)));
      if (have.empty()) {
        // All streams ("*"): an unset streams list would apply to none (core/ruleset.cpp).
        RAMPART_TRY(
            added,
            sql_->query("INSERT INTO exclusions (category, position, action, streams, status, "
                        "source, origin) SELECT CAST($1 AS TEXT), COALESCE(MAX(position), 0) + 1, "
                        "'reject', "
                        "'*', NULL, 'bounce', 'bounce' FROM exclusions RETURNING category",
                        std::span(&cat, 1)));
        (void)added;
      }
      RAMPART_TRY(last, sql_->query("SELECT COALESCE(MAX(position), 0) FROM exclusion_entries "
                                    "WHERE category = $1",
                                    std::span(&cat, 1)));
      std::int64_t pos = last.empty() ? 0 : as_int(last.front()[0]);
      const std::string created = iso_utc(static_cast<std::time_t>(now));
      std::int64_t changed = 0;
      for (const auto& [value, s] : wanted) {
        const std::string kind = s->domain ? "domain" : "address";
        const Value expires =
            s->expires != 0 ? Value{iso_utc(static_cast<std::time_t>(s->expires))} : Value{};
        const std::vector<Value> key{cat, kind, value};
        RAMPART_TRY(rows, sql_->query("SELECT source, expires_at FROM exclusion_entries WHERE "
                                      "category = $1 AND kind = $2 AND value = $3",
                                      key));
        if (rows.empty()) {
          const std::vector<Value> p{cat, kind, value, ++pos, expires, created};
          RAMPART_TRY(ins, sql_->query("INSERT INTO exclusion_entries (category, kind, value, "
                                       "position, source, expires_at, created_at) VALUES ($1, $2, "
                                       "$3, $4, 'bounce', $5, $6) RETURNING value",
                                       p));
          (void)ins;
          ++changed;
          continue;
        }
        // Only a bounce entry with an expiry is extended, and only to a later one (or none):
        // file and cli entries belong to the operator.
        const auto& r = rows.front();
        if (as_text(r[0]) != "bounce" || is_null(r[1])) continue;
        if (!is_null(expires) && as_text(expires) <= as_text(r[1])) continue;
        const std::vector<Value> p{cat, kind, value, expires};
        RAMPART_TRY(upd, sql_->query("UPDATE exclusion_entries SET expires_at = $4 WHERE "
                                     "category = $1 AND kind = $2 AND value = $3 RETURNING value",
                                     p));
        (void)upd;
        ++changed;
      }
      if (changed > 0) {
        const std::vector<Value> v{created, fmt::format("classify: {} suppressions", changed)};
        RAMPART_TRY(bumped, sql_->query("UPDATE rules_version SET version = version + 1, "
                                        "applied_at = $1, note = $2 WHERE id = 1 RETURNING version",
                                        v));
        if (bumped.empty()) return fail(Errc::Internal, "store: rules_version row is missing");
      }
      return changed;
    });
  }

 private:
  // Rows per multi-row INSERT: large batches go in chunks of this many (one cached statement),
  // the rest one row at a time (a second one), so SQLite caches two statements, not one per size.
  static constexpr std::size_t kChunkRows = 64;

  // The first field of `rep` (or `source`) holding a NUL character, by name; nullptr when none.
  static const char* nul_field(const core::dmarc::Report& rep, std::string_view source) {
    auto has = [](std::string_view s) { return s.find('\0') != std::string_view::npos; };
    const auto& pol = rep.policy;
    for (const auto& [name, value] :
         std::initializer_list<std::pair<const char*, std::string_view>>{
             {"source", source},
             {"org_name", rep.org_name},
             {"report_id", rep.report_id},
             {"email", rep.email},
             {"extra_contact_info", rep.extra_contact_info},
             {"version", rep.version},
             {"policy domain", pol.domain},
             {"adkim", pol.adkim},
             {"aspf", pol.aspf},
             {"p", pol.p},
             {"sp", pol.sp},
             {"np", pol.np},
             {"fo", pol.fo},
             {"testing", pol.testing},
             {"discovery_method", pol.discovery_method}}) {
      if (has(value)) return name;
    }
    for (const auto& e : rep.errors) {
      if (has(e)) return "error";
    }
    for (const auto& r : rep.records) {
      for (std::string_view v :
           {std::string_view(r.source_ip), std::string_view(r.disposition),
            std::string_view(r.dkim), std::string_view(r.spf), std::string_view(r.header_from),
            std::string_view(r.envelope_from), std::string_view(r.envelope_to)}) {
        if (has(v)) return "record";
      }
      for (const auto& x : r.reasons) {
        if (has(x.type) || has(x.comment)) return "record reason";
      }
      for (const auto& a : r.auth) {
        for (std::string_view v : {std::string_view(a.method), std::string_view(a.domain),
                                   std::string_view(a.selector), std::string_view(a.scope),
                                   std::string_view(a.result), std::string_view(a.human_result)}) {
          if (has(v)) return "record auth result";
        }
      }
    }
    return nullptr;
  }

  // Runs `head VALUES (...) tail` over `flat`, `cols` values per row.
  Result<void> insert_rows(std::string_view head, std::size_t cols, std::string_view tail,
                           const std::vector<Value>& flat) {
    const std::size_t rows = flat.size() / cols;
    const std::span<const Value> all(flat);
    std::size_t i = 0;
    if (rows >= kChunkRows) {
      const auto text = values_sql(head, kChunkRows, cols, tail);
      for (; i + kChunkRows <= rows; i += kChunkRows) {
        auto r = sql_->query(text, all.subspan(i * cols, kChunkRows * cols));
        if (!r) return tl::unexpected(r.error());
      }
    }
    if (i < rows) {
      const auto text = values_sql(head, 1, cols, tail);
      for (; i < rows; ++i) {
        auto r = sql_->query(text, all.subspan(i * cols, cols));
        if (!r) return tl::unexpected(r.error());
      }
    }
    return {};
  }

  // The batch's rows are merged by key first: PostgreSQL refuses an upsert that touches one row
  // twice in a statement ("ON CONFLICT DO UPDATE command cannot affect row a second time").
  Result<void> add_aggregates(const std::vector<core::Aggregate>& list) {
    std::map<core::AggregateKey, std::size_t> seen;
    std::vector<const core::Aggregate*> rows;
    std::vector<std::int64_t> counts;
    for (const auto& a : list) {
      auto [it, fresh] = seen.emplace(a.key, rows.size());
      if (fresh) {
        rows.push_back(&a);  // the first sample stays
        counts.push_back(a.count);
      } else {
        counts[it->second] += a.count;
      }
    }
    std::vector<Value> flat;
    flat.reserve(rows.size() * 9);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& k = rows[i]->key;
      flat.insert(flat.end(),
                  {k.day, k.stream, k.egress_ip, k.op, std::string(to_string(k.outcome)),
                   k.category, k.status, counts[i], rows[i]->sample});
    }
    return insert_rows(
        "INSERT INTO reputation (day, stream, egress_ip, operator, outcome, category, status, "
        "count, sample)",
        9,
        "ON CONFLICT (day, stream, egress_ip, operator, outcome, category, status) DO UPDATE SET "
        "count = reputation.count + excluded.count",
        flat);
  }

  Result<void> add_domain_hits(const std::vector<core::DomainHit>& list) {
    std::map<std::pair<std::string, std::int64_t>, std::int64_t> merged;
    for (const auto& h : list) merged[{h.domain, h.day}] += h.count;
    std::vector<Value> flat;
    flat.reserve(merged.size() * 3);
    for (const auto& [key, count] : merged) flat.insert(flat.end(), {key.first, key.second, count});
    return insert_rows("INSERT INTO domain_hits (domain, day, count)", 3,
                       "ON CONFLICT (domain, day) DO UPDATE SET count = domain_hits.count + "
                       "excluded.count",
                       flat);
  }

  // A known anomaly keeps its detail and earliest first_at; `count_sql` says how counts combine.
  Result<void> upsert_anomalies(const std::vector<core::Anomaly>& list,
                                std::string_view count_sql) {
    using Key = std::tuple<core::AnomalyKind, std::int64_t, std::string, std::string>;
    std::map<Key, core::Anomaly> merged;
    for (const auto& a : list) {
      auto [it, fresh] = merged.try_emplace(Key{a.kind, a.day, a.stream, a.subject}, a);
      if (fresh) continue;
      it->second.count += a.count;
      if (a.first < it->second.first) {
        it->second.first = a.first;
        it->second.detail = a.detail;
      }
    }
    std::vector<Value> flat;
    flat.reserve(merged.size() * 7);
    for (const auto& [key, a] : merged) {
      flat.insert(flat.end(), {std::string(to_string(a.kind)), a.day, a.stream, a.subject, a.first,
                               a.count, a.detail});
    }
    return insert_rows(
        "INSERT INTO anomalies (kind, day, stream, subject, first_at, count, detail)", 7,
        fmt::format("ON CONFLICT (kind, day, stream, subject) DO UPDATE SET count = {}, "
                    "first_at = CASE WHEN excluded.first_at < anomalies.first_at THEN "
                    "excluded.first_at ELSE anomalies.first_at END",
                    count_sql),
        flat);
  }

  // Runs `body` inside one write transaction (Sql::begin): commits when it succeeds, rolls back
  // when it fails. A failed begin is rolled back too: PostgreSQL may have opened the transaction
  // before the lock statement failed.
  template <class F>
  auto in_transaction(F&& body) -> decltype(body()) {
    if (auto r = sql_->begin(); !r) {
      sql_->rollback();
      return tl::unexpected(r.error());
    }
    auto r = body();
    if (!r) {
      sql_->rollback();
      return r;
    }
    if (auto c = sql_->commit(); !c) {
      sql_->rollback();
      return tl::unexpected(c.error());
    }
    return r;
  }

  static constexpr std::string_view kSchemaTable =
      "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
      "applied_at TEXT NOT NULL)";

  tl::unexpected<Error> too_new(int version) const {
    return fail(
        Errc::Config,
        fmt::format(
            "store schema version {} is newer than this rampart knows ({}): upgrade rampart",
            version, latest_schema_version()));
  }
  tl::unexpected<Error> corrupt(std::string_view table, std::string_view key) const {
    return fail(
        Errc::Internal,
        fmt::format("store: table {} row {:?} holds a value this rampart cannot read", table, key));
  }

  // Returns false when the migration was already applied by someone else (checked under lock).
  Result<bool> apply_migration(const Migration& m) {
    const Value v{static_cast<std::int64_t>(m.version)};
    RAMPART_TRY(have, sql_->query("SELECT version FROM schema_version WHERE version = $1",
                                  std::span(&v, 1)));
    if (!have.empty()) return false;
    if (auto r = sql_->exec_script(m.sql); !r) {
      return fail(r.error().code, fmt::format("migration {}: {}", m.name, r.error().what));
    }
    const std::vector<Value> row{v, std::string(m.name), now_utc()};
    auto ins = sql_->query(
        "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)", row);
    if (!ins) return tl::unexpected(ins.error());
    return true;
  }

  Result<void> require_schema() {
    if (checked_) return {};
    RAMPART_TRY(v, schema_version());
    if (v > latest_schema_version()) return too_new(v);
    if (v < latest_schema_version()) {
      return fail(
          Errc::Config,
          fmt::format(
              "store schema is at version {}, this rampart needs {}: run `rampart db migrate`", v,
              latest_schema_version()));
    }
    checked_ = true;
    return {};
  }

  Result<RulesVersion> write_rules(const core::RulesSpec& spec, std::string_view note) {
    auto q = [&](std::string_view sql, std::vector<Value> params = {}) -> Result<void> {
      auto r = sql_->query(sql, params);
      if (!r) return tl::unexpected(r.error());
      return {};
    };
#define RAMPART_DO(expr) \
  if (auto r_ = (expr); !r_) return tl::unexpected(r_.error())
    // File-sourced rules are replaced wholesale; system entries (bounce/cli) stay.
    RAMPART_DO(q("DELETE FROM caps"));
    RAMPART_DO(q("DELETE FROM streams"));
    RAMPART_DO(q("DELETE FROM ramp_steps"));
    RAMPART_DO(q("DELETE FROM ramps"));
    RAMPART_DO(q("DELETE FROM operator_mx"));
    RAMPART_DO(q("DELETE FROM operators"));
    RAMPART_DO(q("DELETE FROM exclusion_entries WHERE source = 'file'"));
    // A file category that still holds system entries becomes a system category (bounce wins
    // over cli), so they are not orphaned when the file stops defining it.
    RAMPART_DO(
        q("UPDATE exclusions SET source = (SELECT MIN(en.source) FROM exclusion_entries en WHERE "
          "en.category = exclusions.category) WHERE source = 'file' AND EXISTS (SELECT 1 FROM "
          "exclusion_entries en WHERE en.category = exclusions.category)"));
    RAMPART_DO(q("DELETE FROM exclusions WHERE source = 'file'"));
    // A system category a file took over (origin "file:line") gets its own defaults back (reject,
    // all streams); a file that still defines it takes it over again below.
    RAMPART_DO(
        q("UPDATE exclusions SET action = 'reject', streams = '*', status = NULL, origin = source "
          "WHERE origin <> source"));
    RAMPART_DO(q("DELETE FROM classify_rules"));
    RAMPART_DO(q("DELETE FROM feedback"));
    const auto now = now_utc();
    std::int64_t pos = 0;
    for (const auto& r : spec.ramps) {
      RAMPART_DO(q("INSERT INTO ramps (name, position, origin) VALUES ($1, $2, $3)",
                   {r.name, ++pos, r.origin.where()}));
      for (const auto& s : r.steps) {
        RAMPART_DO(q("INSERT INTO ramp_steps (ramp, day, hourly) VALUES ($1, $2, $3)",
                     {r.name, s.day, s.hourly}));
      }
    }
    for (const auto& s : spec.streams) {
      std::vector<Value> p{s.name,          ++pos,           join(s.ports),
                           join(s.clients), join(s.senders), join(s.sasl_users),
                           s.transport,     s.egress_ip,     join(s.from_domains)};
      if (s.warmup) {
        p.insert(p.end(), {s.warmup->start.str(), std::string(to_string(s.warmup->count)),
                           s.warmup->ramp, s.warmup->min_daily});
      } else {
        p.insert(p.end(), {Value{}, Value{}, Value{}, Value{}});
      }
      p.insert(p.end(), {opt(s.daily_ceiling), std::string(to_string(s.over_cap)),
                         std::string(to_string(s.hygiene)), s.origin.where()});
      RAMPART_DO(
          q("INSERT INTO streams (name, position, ports, clients, senders, sasl_users, transport, "
            "egress_ip, "
            "from_domains, warmup_start, warmup_count, warmup_ramp, warmup_min_daily, "
            "daily_ceiling, over_cap, "
            "hygiene, origin) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
            "$15, $16, $17)",
            std::move(p)));
    }
    for (const auto& o : spec.operators) {
      RAMPART_DO(q("INSERT INTO operators (name, position, origin) VALUES ($1, $2, $3)",
                   {o.name, ++pos, o.origin.where()}));
      for (const auto& m : o.mx) {
        RAMPART_DO(q("INSERT INTO operator_mx (suffix, operator, position) VALUES ($1, $2, $3)",
                     {m, o.name, ++pos}));
      }
    }
    for (const auto& c : spec.caps) {
      RAMPART_DO(
          q("INSERT INTO caps (stream, operator, position, daily, until_day, origin) VALUES ($1, "
            "$2, $3, $4, $5, $6)",
            {c.stream, c.op, ++pos, c.daily, opt(c.until_day), c.origin.where()}));
    }
    for (const auto& e : spec.exclusions) {
      const Value action = e.action ? Value{std::string(to_string(*e.action))} : Value{};
      const Value streams = e.streams ? Value{join(*e.streams)} : Value{};
      // A system category of the same name (e.g. suppressions) takes the file's settings.
      RAMPART_DO(
          q("INSERT INTO exclusions (category, position, action, streams, status, source, origin) "
            "VALUES ($1, $2, $3, $4, $5, 'file', $6) ON CONFLICT (category) DO UPDATE SET "
            "position = excluded.position, action = excluded.action, streams = excluded.streams, "
            "status = excluded.status, origin = excluded.origin",
            {e.category, ++pos, action, streams, opt(e.status), e.origin.where()}));
      std::int64_t n = 0;
      for (const auto* list : {&e.domains, &e.addresses}) {
        const std::string kind = list == &e.domains ? "domain" : "address";
        for (const auto& value : *list) {
          // A system entry for the same value stays as it is (its source and expiry win).
          RAMPART_DO(
              q("INSERT INTO exclusion_entries (category, kind, value, position, source, "
                "expires_at, created_at) "
                "VALUES ($1, $2, $3, $4, 'file', NULL, $5) ON CONFLICT (category, kind, value) DO "
                "NOTHING",
                {e.category, kind, value, ++n, now}));
        }
      }
    }
    // System categories keep their order, after every file category: the first category that
    // lists a value owns it (core/ruleset.cpp), and the operator's files come first.
    std::unordered_set<std::string> from_file;
    for (const auto& e : spec.exclusions) from_file.insert(e.category);
    RAMPART_TRY(kept, sql_->query("SELECT category FROM exclusions WHERE source <> 'file' ORDER BY "
                                  "position"));
    for (const auto& r : kept) {
      if (from_file.contains(as_text(r[0]))) continue;
      RAMPART_DO(q("UPDATE exclusions SET position = $2 WHERE category = $1", {r[0], ++pos}));
    }
    for (const auto& c : spec.classify) {
      const Value suppress = c.suppress ? Value{std::string(to_string(*c.suppress))} : Value{};
      const Value backoff = c.backoff ? Value{std::string(to_string(*c.backoff))} : Value{};
      RAMPART_DO(
          q("INSERT INTO classify_rules (id, position, reply, dsn, operator, outcome, category, "
            "suppress, backoff, tests, origin) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
            "$11)",
            {c.id, ++pos, c.reply, c.dsn, c.op, std::string(to_string(c.outcome)), c.category,
             suppress, backoff, join(c.tests), c.origin.where()}));
    }
    if (const auto& f = spec.feedback) {
      RAMPART_DO(
          q("INSERT INTO feedback (id, category, suppress_addresses, address_expiry_days, "
            "suppress_domains, domain_replies, domain_days, domain_expiry_days, backoff, "
            "backoff_percent, backoff_min_attempts, backoff_factor_percent, backoff_hours, pause, "
            "pause_hours, origin) VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
            "$13, $14, $15)",
            {f->category, std::int64_t{f->suppress_addresses}, f->address_expiry_days,
             std::int64_t{f->suppress_domains}, f->domain_replies, f->domain_days,
             f->domain_expiry_days, std::int64_t{f->backoff}, f->backoff_percent,
             f->backoff_min_attempts, f->backoff_factor_percent, f->backoff_hours,
             std::int64_t{f->pause}, f->pause_hours, f->origin.where()}));
    }
    const std::vector<Value> v{now, std::string(note)};
    RAMPART_TRY(
        rows,
        sql_->query("UPDATE rules_version SET version = version + 1, applied_at = $1, note = $2 "
                    "WHERE id = 1 RETURNING version, applied_at, note",
                    v));
    if (rows.empty()) return fail(Errc::Internal, "store: rules_version row is missing");
    const auto& r = rows.front();
    return RulesVersion{as_int(r[0]), as_text(r[1]), as_text(r[2])};
#undef RAMPART_DO
  }

  std::unique_ptr<Sql> sql_;
  bool checked_ = false;
};

}  // namespace

Result<std::unique_ptr<Store>> open_migrated(std::string_view url, const OpenOptions& options) {
  RAMPART_TRY(store, open(url, options));
  if (auto m = store->migrate(); !m) {
    return fail(m.error().code, "migrating the store schema: " + m.error().what);
  }
  return store;
}

Result<std::shared_ptr<const core::RuleSet>> load_ruleset(Store& store) {
  RAMPART_TRY(version, store.rules_version());
  RAMPART_TRY(spec, store.load_rules());
  // Checked in full when applied: the classify patterns are compiled by the program that
  // classifies, not by every daemon reload.
  return core::RuleSet::compile(std::move(spec), version.version, core::ClassifyCheck::Structure);
}

int latest_schema_version() {
  int v = 0;
  for (const auto& m : migrations("sqlite")) v = std::max(v, m.version);
  return v;
}

Result<std::unique_ptr<Store>> open(std::string_view url, const OpenOptions& options) {
  std::unique_ptr<Sql> sql;
  if (url.starts_with("sqlite://")) {
    const auto path = url.substr(9);
    if (path.empty())
      return fail(Errc::Config, fmt::format("store url {:?}: no database path", url));
    RAMPART_TRY(s, open_sqlite(std::string(path), options));
    sql = std::move(s);
  } else if (url.starts_with("postgresql://") || url.starts_with("postgres://")) {
#ifdef RAMPART_WITH_PGSQL
    RAMPART_TRY(s, open_pgsql(std::string(url), options));
    sql = std::move(s);
#else
    return fail(Errc::Config,
                "this rampart was built without PostgreSQL support (RAMPART_WITH_PGSQL=OFF)");
#endif
  } else {
    return fail(
        Errc::Config,
        fmt::format("store url {:?}: want sqlite:///path/to/rampart.db or postgresql://...", url));
  }
  return std::unique_ptr<Store>(std::make_unique<SqlStore>(std::move(sql)));
}

}  // namespace rampart::store
