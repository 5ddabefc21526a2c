// The store contract: every engine behind store::Store must pass these. RAMPART_TEST_STORE
// picks the engine (sqlite: a temp file per case; pgsql: the throwaway cluster in RAMPART_PG_URL,
// whose public schema is emptied before each case).
#include <doctest/doctest.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "core/dmarc.hpp"
#include "core/limits.hpp"
#include "core/ruleset.hpp"
#include "rules/reader.hpp"
#include "rules/writer.hpp"
#include "store/sql.hpp"
#include "store/store.hpp"

namespace {

using namespace rampart;

std::string engine() {
  const char* e = std::getenv("RAMPART_TEST_STORE");
  return e != nullptr ? e : "sqlite";
}

// A fresh, empty database for one test case, and raw SQL access for setting up system rows.
struct Fresh {
  std::string url;
  std::filesystem::path dir;
  std::unique_ptr<store::Sql> raw;

  Fresh() {
    if (engine() == "pgsql") {
#ifndef RAMPART_WITH_PGSQL
      FAIL("this build has no PostgreSQL support (RAMPART_WITH_PGSQL=OFF)");
#else
      const char* pg = std::getenv("RAMPART_PG_URL");
      REQUIRE_MESSAGE(pg != nullptr,
                      "RAMPART_PG_URL is not set: run under tests/lab/with-postgres.sh");
      url = pg;
      auto sql = store::open_pgsql(url, {});
      REQUIRE_MESSAGE(sql, sql.error().what);
      raw = std::move(*sql);
      auto r = raw->exec_script("DROP SCHEMA public CASCADE; CREATE SCHEMA public;");
      REQUIRE_MESSAGE(r, r.error().what);
#endif
    } else {
      char tmpl[] = "/tmp/rampart-store-XXXXXX";
      REQUIRE(::mkdtemp(tmpl) != nullptr);
      dir = tmpl;
      url = "sqlite://" + (dir / "rampart.db").string();
      auto sql = store::open_sqlite((dir / "rampart.db").string(), {});
      REQUIRE_MESSAGE(sql, sql.error().what);
      raw = std::move(*sql);
    }
  }
  ~Fresh() {
    raw.reset();
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
  std::unique_ptr<store::Store> open() const {
    auto s = store::open(url);
    REQUIRE_MESSAGE(s, s.error().what);
    return std::move(*s);
  }
  std::unique_ptr<store::Store> migrated() const {
    auto s = open();
    auto v = s->migrate();
    REQUIRE_MESSAGE(v, v.error().what);
    return s;
  }
};

core::RulesSpec parse_spec(const std::string& text) {
  auto p = rules::parse(text, "contract.toml");
  REQUIRE_MESSAGE(p, p.error().what);
  auto compiled = core::RuleSet::compile(std::move(p->spec));
  REQUIRE_MESSAGE(compiled, compiled.error().what);
  return (*compiled)->spec();
}

const char* kRulesA = R"(
[[ramp]]
name = "consumer"
steps = [ { day = 0, hourly = 50 }, { day = 2, hourly = 150 } ]

[[stream]]
name = "bulk"
ports = [25, 2525]
clients = ["172.18.0.0/16", "2001:db8::/32"]
senders = ["@send.example.net", "ops@example.org"]
transport = "out05"
egress_ip = "203.0.113.94"
from_domains = ["send.example.net"]
warmup = { start = "2026-06-02", count = "send-days", ramp = "consumer", min_daily = 50 }
daily_ceiling = 4000
over_cap = "hold"
hygiene = "refuse"

[[stream]]
name = "quiet"
sasl_users = ["app1"]

[[operator]]
name = "google"
mx = [".google.com", "aspmx.example.net"]

[[cap]]
stream = "bulk"
operator = "google"
daily = 0
until_day = 30

[[exclusion]]
category = "yahoo-family"
action = "reject"
status = "5.7.1"
streams = ["*"]
domains = ["yahoo.com", "aol.com"]
addresses = ["someone@example.com"]

[[exclusion]]
category = "shipped-off"
domains = ["example.net"]
)";

const char* kRulesB = R"(
[[stream]]
name = "other"
ports = [587]
)";

}  // namespace

TEST_CASE("store: a fresh database has schema version 0 and refuses rule access until migrated") {
  Fresh db;
  auto s = db.open();
  auto v = s->schema_version();
  REQUIRE_MESSAGE(v, v.error().what);
  CHECK(*v == 0);
  auto rv = s->rules_version();
  REQUIRE_FALSE(rv);
  CHECK(rv.error().code == Errc::Config);
  CHECK(rv.error().what.find("rampart db migrate") != std::string::npos);
}

TEST_CASE("store: migrate brings the schema to the latest version and is idempotent") {
  Fresh db;
  auto s = db.open();
  auto v1 = s->migrate();
  REQUIRE_MESSAGE(v1, v1.error().what);
  CHECK(*v1 == store::latest_schema_version());
  auto v2 = db.open()->migrate();
  REQUIRE_MESSAGE(v2, v2.error().what);
  CHECK(*v2 == *v1);
  auto rv = s->rules_version();
  REQUIRE_MESSAGE(rv, rv.error().what);
  CHECK(rv->version == 0);
}

TEST_CASE("store: a schema newer than this build is refused") {
  Fresh db;
  db.migrated();
  auto r = db.raw->exec_script(
      "INSERT INTO schema_version (version, name, applied_at) VALUES (999, 'future', 'x')");
  REQUIRE_MESSAGE(r, r.error().what);
  auto s = db.open();
  auto m = s->migrate();
  REQUIRE_FALSE(m);
  CHECK(m.error().code == Errc::Config);
  CHECK(m.error().what.find("newer") != std::string::npos);
}

TEST_CASE(
    "store: apply then load gives the same rules, in order, with origins, and bumps the version") {
  Fresh db;
  auto s = db.migrated();
  const auto spec = parse_spec(kRulesA);
  auto v = s->apply_rules(spec, "contract.toml");
  REQUIRE_MESSAGE(v, v.error().what);
  CHECK(v->version == 1);
  CHECK(v->note == "contract.toml");
  CHECK_FALSE(v->applied_at.empty());
  auto back = s->load_rules();
  REQUIRE_MESSAGE(back, back.error().what);
  CHECK(*back == spec);
  CHECK(rules::to_json(*back) == rules::to_json(spec));
  REQUIRE(back->streams.size() == 2);
  CHECK(back->streams[0].name == "bulk");
  CHECK(back->streams[0].origin.where() == spec.streams[0].origin.where());
  CHECK(back->streams[0].origin.where().starts_with("contract.toml:"));
  REQUIRE(back->exclusions.size() == 2);
  CHECK_FALSE(back->exclusions[1].streams.has_value());  // "not set" survives the round trip
  CHECK_FALSE(back->exclusions[1].action.has_value());
  auto v2 = s->apply_rules(spec, "again");
  REQUIRE_MESSAGE(v2, v2.error().what);
  CHECK(v2->version == 2);
}

TEST_CASE("store: classify rules round-trip in order, unset fields stay unset, apply replaces") {
  Fresh db;
  auto s = db.migrated();
  const auto spec = parse_spec(R"([[operator]]
name = "yahoo"
mx = [".yahoodns.net"]

[[classify]]
id = "zz-first"
reply = '\[TSS0[0-9]\]'
operator = "yahoo"
outcome = "throttled"
category = "policy-related"
backoff = "pause"
tests = ["421 4.7.0 [TSS04] deferred", "dsn=4.7.0 [TSS09] deferred"]

[[classify]]
id = "aa-second"
reply = '.'
dsn = "5.1.1"
outcome = "reject_recipient"
category = "bad-mailbox"
suppress = "address"
tests = ["550 5.1.1 it's \"gone\""]

[[classify]]
id = "mm-third"
reply = 'timed out'
outcome = "deferred_other"
category = "no-answer-from-host"
tests = ["dsn=4.4.1 connect to mx.example.net[192.0.2.1]:25: Connection timed out"]
)");
  REQUIRE(s->apply_rules(spec, "classify.toml"));
  auto back = s->load_rules();
  REQUIRE_MESSAGE(back, back.error().what);
  CHECK(*back == spec);
  REQUIRE(back->classify.size() == 3);
  CHECK(back->classify[0].id == "zz-first");
  CHECK(back->classify[1].id == "aa-second");
  CHECK(back->classify[2].id == "mm-third");
  CHECK(back->classify[0].op == "yahoo");
  CHECK(back->classify[0].tests.size() == 2);
  CHECK_FALSE(back->classify[0].suppress.has_value());
  CHECK_FALSE(back->classify[1].backoff.has_value());
  CHECK(back->classify[2].dsn.empty());
  CHECK(back->classify[1].origin.where().starts_with("contract.toml:"));
  CHECK(core::RuleSet::compile(*back));
  // A later apply without [[classify]] removes them: file rules are replaced wholesale.
  REQUIRE(s->apply_rules(parse_spec(kRulesB), "b"));
  auto after = s->load_rules();
  REQUIRE_MESSAGE(after, after.error().what);
  CHECK(after->classify.empty());
}

TEST_CASE("store: apply replaces file rules wholesale") {
  Fresh db;
  auto s = db.migrated();
  REQUIRE(s->apply_rules(parse_spec(kRulesA), "a"));
  const auto b = parse_spec(kRulesB);
  REQUIRE(s->apply_rules(b, "b"));
  auto back = s->load_rules();
  REQUIRE_MESSAGE(back, back.error().what);
  CHECK(*back == b);
}

TEST_CASE("store: a failing apply changes nothing") {
  Fresh db;
  auto s = db.migrated();
  const auto a = parse_spec(kRulesA);
  REQUIRE(s->apply_rules(a, "a"));
  // Bypass validation to make the second write fail halfway: a duplicate MX suffix violates
  // operator_mx's primary key after streams and ramps were already rewritten.
  auto bad = parse_spec(kRulesB);
  bad.operators.push_back({"x", {".dup.example"}, {}});
  bad.operators.push_back({"y", {".dup.example"}, {}});
  auto r = s->apply_rules(bad, "bad");
  REQUIRE_FALSE(r);
  auto back = s->load_rules();
  REQUIRE_MESSAGE(back, back.error().what);
  CHECK(*back == a);
  auto rv = s->rules_version();
  REQUIRE(rv);
  CHECK(rv->version == 1);
}

TEST_CASE("store: system suppressions survive apply, expired ones are not loaded") {
  Fresh db;
  auto s = db.migrated();
  auto r = db.raw->exec_script(
      "INSERT INTO exclusions (category, position, action, streams, status, source, origin) "
      "VALUES ('suppressed', 0, 'reject', '*', '5.1.1', 'bounce', 'bounce');"
      "INSERT INTO exclusion_entries (category, kind, value, position, source, expires_at, "
      "created_at) VALUES "
      "('suppressed', 'address', 'gone@example.com', 1, 'bounce', NULL, '2026-01-01T00:00:00Z'),"
      "('suppressed', 'address', 'old@example.com', 2, 'bounce', '2000-01-01T00:00:00Z', "
      "'1999-01-01T00:00:00Z'),"
      "('yahoo-family', 'address', 'cli@example.org', 1, 'cli', NULL, '2026-01-01T00:00:00Z');");
  REQUIRE_MESSAGE(r, r.error().what);
  REQUIRE(s->apply_rules(parse_spec(kRulesA), "a"));
  REQUIRE(s->apply_rules(parse_spec(kRulesA), "a again"));
  auto back = s->load_rules();
  REQUIRE_MESSAGE(back, back.error().what);
  const core::ExclusionSpec* sup = nullptr;
  const core::ExclusionSpec* yahoo = nullptr;
  for (const auto& e : back->exclusions) {
    if (e.category == "suppressed") sup = &e;
    if (e.category == "yahoo-family") yahoo = &e;
  }
  REQUIRE(sup != nullptr);
  CHECK(sup->addresses == std::vector<std::string>{"gone@example.com"});
  REQUIRE(yahoo != nullptr);
  CHECK(std::find(yahoo->addresses.begin(), yahoo->addresses.end(), "cli@example.org") !=
        yahoo->addresses.end());
  CHECK(std::find(yahoo->addresses.begin(), yahoo->addresses.end(), "someone@example.com") !=
        yahoo->addresses.end());
  // The loaded set compiles: what the daemons will do with it.
  CHECK(core::RuleSet::compile(*back));
}

TEST_CASE("store: the shipped defaults plus the example round-trip") {
  Fresh db;
  auto s = db.migrated();
  const std::string dir = std::string(RAMPART_SOURCE_DIR) + "/packaging/rules/";
  auto loaded = rules::load_files({dir + "*.toml", dir + "rules.toml.example"});
  REQUIRE_MESSAGE(loaded, loaded.error().what);
  auto compiled = core::RuleSet::compile(std::move(*loaded));
  REQUIRE_MESSAGE(compiled, compiled.error().what);
  const auto& spec = (*compiled)->spec();
  CHECK(spec.streams.size() == 2);
  CHECK(spec.exclusions.size() >= 4);
  REQUIRE(s->apply_rules(spec, "defaults + example"));
  auto back = s->load_rules();
  REQUIRE_MESSAGE(back, back.error().what);
  CHECK(rules::to_json(*back) == rules::to_json(spec));
  CHECK(*back == spec);
}

TEST_CASE("store: unreachable or unusable stores say what to do") {
  auto bad = store::open("mysql://example.net/db");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == Errc::Config);
  auto nodir = store::open("sqlite:///nonexistent-dir-rampart/x.db");
  REQUIRE_FALSE(nodir);
  CHECK(nodir.error().code == Errc::Config);
#ifdef RAMPART_WITH_PGSQL
  auto down = store::open("postgresql:///rampart?host=/nonexistent-rampart-socket-dir",
                          {std::chrono::seconds(1), {}});
  REQUIRE_FALSE(down);
  CHECK(down.error().code == Errc::Temporary);
#endif
}

// --- budget counters, leases, back-offs
// -----------------------------------------------------------

namespace {

constexpr core::UnixTime kNoon = 1795348800;  // 2026-11-22T12:00:00Z (day 20779)

store::LeaseRequest day_request(std::string scope, std::int64_t limit, std::int64_t want,
                                core::UnixTime now = kNoon) {
  store::LeaseRequest r;
  r.scope = std::move(scope);
  r.hourly = false;
  r.bucket = core::day_of(now);
  r.limit = limit;
  r.want = want;
  r.now = now;
  r.expires = now + 60;
  r.host = "mx1";
  return r;
}

store::LeaseRequest hour_request(std::string scope, std::int64_t limit, std::int64_t want,
                                 core::UnixTime now) {
  store::LeaseRequest r;
  r.scope = std::move(scope);
  r.hourly = true;
  r.now = now;
  r.expires = now + 60;
  r.bucket = core::minute_of(r.expires);
  r.limit = limit;
  r.want = want;
  r.host = "mx1";
  return r;
}

store::LeaseGrant must_lease(store::Store& s, const store::LeaseRequest& r) {
  auto g = s.lease(r);
  REQUIRE_MESSAGE(g, g.error().what);
  return *g;
}

std::int64_t counter(store::Store& s, const std::string& scope, std::int64_t bucket) {
  auto rows = s.counters(scope, bucket);
  REQUIRE_MESSAGE(rows, rows.error().what);
  for (const auto& r : *rows) {
    if (r.scope == scope && r.bucket == bucket) return r.used;
  }
  return 0;
}

}  // namespace

TEST_CASE("store: day leases never grant past the limit") {
  Fresh db;
  auto s = db.migrated();
  struct Step {
    const char* label;
    std::int64_t want;
    std::int64_t want_granted;
    std::int64_t want_used;
  };
  const Step steps[] = {
      {"first block", 4, 4, 4},
      {"second block", 4, 4, 8},
      {"partial: only what is left", 4, 2, 10},
      {"spent: nothing", 1, 0, 10},
      {"asking for nothing", 0, 0, 10},
  };
  for (const auto& st : steps) {
    INFO(std::string(st.label));
    const auto g = must_lease(*s, day_request("day:bulk", 10, st.want));
    CHECK(g.granted == st.want_granted);
    CHECK(g.used == st.want_used);
    CHECK((g.id != 0) == (st.want_granted > 0));
    CHECK(g.window.empty());
  }
  CHECK(counter(*s, "day:bulk", core::day_of(kNoon)) == 10);
  auto ls = s->leases();
  REQUIRE_MESSAGE(ls, ls.error().what);
  REQUIRE(ls->size() == 3);
  CHECK((*ls)[2].units == 2);
  CHECK((*ls)[2].host == "mx1");
  CHECK((*ls)[2].scope == "day:bulk");
  CHECK((*ls)[2].bucket == core::day_of(kNoon));
  CHECK((*ls)[2].expires == kNoon + 60);

  // A lower limit (a back-off came in) grants nothing more; other scopes and days are separate.
  CHECK(must_lease(*s, day_request("day:bulk", 5, 1)).granted == 0);
  CHECK(must_lease(*s, day_request("op:bulk/google", 10, 7)).granted == 7);
  const auto tomorrow = must_lease(*s, day_request("day:bulk", 10, 3, kNoon + core::kDaySeconds));
  CHECK(tomorrow.granted == 3);
  CHECK(tomorrow.used == 3);

  auto h = s->day_history("day:bulk");
  REQUIRE_MESSAGE(h, h.error().what);
  const std::vector<core::DayCount> want_history{{core::day_of(kNoon), 10},
                                                 {core::day_of(kNoon) + 1, 3}};
  CHECK(*h == want_history);
  auto none = s->day_history("day:nope");
  REQUIRE(none);
  CHECK(none->empty());
}

TEST_CASE("store: hourly leases count a sliding window of minute buckets") {
  Fresh db;
  auto s = db.migrated();
  const core::UnixTime t0 = kNoon + 10;
  auto g1 = must_lease(*s, hour_request("hour:bulk", 5, 3, t0));
  CHECK(g1.granted == 3);
  CHECK(g1.used == 3);
  REQUIRE(g1.window.size() == 1);
  CHECK(g1.window[0] == core::Bucket{core::minute_of(t0 + 60), 3});

  // Ten minutes later: a new bucket, the old one still in the window.
  auto g2 = must_lease(*s, hour_request("hour:bulk", 5, 3, t0 + 600));
  CHECK(g2.granted == 2);
  CHECK(g2.used == 5);
  CHECK(g2.window.size() == 2);
  CHECK(core::window_used(g2.window, t0 + 600) == 5);
  CHECK(must_lease(*s, hour_request("hour:bulk", 5, 1, t0 + 1200)).granted == 0);

  // The first bucket leaves the window at bucket_expiry; its 3 units are free again.
  const core::UnixTime later = core::bucket_expiry(core::minute_of(t0 + 60));
  CHECK(must_lease(*s, hour_request("hour:bulk", 5, 1, later - 1)).granted == 0);
  auto g3 = must_lease(*s, hour_request("hour:bulk", 5, 4, later));
  CHECK(g3.granted == 3);
  CHECK(g3.used == 5);
  CHECK(core::window_used(g3.window, later) == 5);
  // The window holds live buckets only: the first one is gone.
  REQUIRE(g3.window.size() == 2);
  CHECK(g3.window[0].bucket == core::minute_of(t0 + 660));
  CHECK(g3.window[1] == core::Bucket{core::minute_of(later + 60), 3});
}

TEST_CASE("store: return_lease gives unused units back; unknown ids are fine") {
  Fresh db;
  auto s = db.migrated();
  const auto day = core::day_of(kNoon);
  const auto g = must_lease(*s, day_request("day:bulk", 10, 6));
  REQUIRE(g.granted == 6);
  auto r = s->return_lease(g.id, 4);
  REQUIRE_MESSAGE(r, r.error().what);
  CHECK(counter(*s, "day:bulk", day) == 2);
  auto ls = s->leases();
  REQUIRE(ls);
  CHECK(ls->empty());
  // Returning again, or an id that never existed, changes nothing.
  CHECK(s->return_lease(g.id, 4));
  CHECK(s->return_lease(987654321, 5));
  CHECK(counter(*s, "day:bulk", day) == 2);
  // The handed-back units can be leased again.
  CHECK(must_lease(*s, day_request("day:bulk", 10, 20)).granted == 8);

  // More than the lease held is clamped to the lease: other leases' charges stay.
  const auto a = must_lease(*s, day_request("op:bulk/google", 10, 3));
  const auto b = must_lease(*s, day_request("op:bulk/google", 10, 3));
  CHECK(s->return_lease(a.id, 100));
  CHECK(counter(*s, "op:bulk/google", day) == 3);
  CHECK(s->return_lease(b.id, 0));
  CHECK(counter(*s, "op:bulk/google", day) == 3);
}

TEST_CASE("store: uncharge takes units off a counter row whatever lease they came from") {
  Fresh db;
  auto s = db.migrated();
  const auto day = core::day_of(kNoon);
  const auto g = must_lease(*s, day_request("day:held", 10, 5));
  REQUIRE(g.granted == 5);
  REQUIRE(s->return_lease(g.id, 0));  // spent out and forgotten
  auto u = s->uncharge("day:held", day, 2);
  REQUIRE_MESSAGE(u, u.error().what);
  CHECK(counter(*s, "day:held", day) == 3);
  CHECK(s->uncharge("day:held", day, 100));  // never below 0
  CHECK(counter(*s, "day:held", day) == 0);
  CHECK(s->uncharge("day:nothing", day, 1));  // no row: nothing happens
  CHECK(s->uncharge("day:held", day, 0));
  CHECK(must_lease(*s, day_request("day:held", 10, 20)).granted == 10);
}

TEST_CASE("store: sweep forgets expired leases and their units stay charged") {
  Fresh db;
  auto s = db.migrated();
  auto early = day_request("day:bulk", 10, 2);
  early.expires = kNoon + 30;
  auto late = day_request("day:bulk", 10, 3);
  late.expires = kNoon + 300;
  const auto e = must_lease(*s, early);
  const auto l = must_lease(*s, late);
  auto n = s->sweep_leases(kNoon + 60);
  REQUIRE_MESSAGE(n, n.error().what);
  CHECK(*n == 1);
  auto ls = s->leases();
  REQUIRE(ls);
  REQUIRE(ls->size() == 1);
  CHECK((*ls)[0].id == l.id);
  CHECK(counter(*s, "day:bulk", core::day_of(kNoon)) == 5);  // forfeited, not handed back
  CHECK(s->return_lease(e.id, 2));                           // too late: swept
  CHECK(counter(*s, "day:bulk", core::day_of(kNoon)) == 5);
  auto again = s->sweep_leases(kNoon + 60);
  REQUIRE(again);
  CHECK(*again == 0);
}

TEST_CASE("store: prune deletes only minute buckets that left every window") {
  Fresh db;
  auto s = db.migrated();
  const core::UnixTime t0 = kNoon;
  const auto old_minute = core::minute_of(t0 + 60);
  REQUIRE(must_lease(*s, hour_request("hour:bulk", 100, 2, t0)).granted == 2);
  REQUIRE(must_lease(*s, hour_request("hour:bulk", 100, 3, t0 + 1800)).granted == 3);
  REQUIRE(must_lease(*s, day_request("day:bulk", 100, 4, t0)).granted == 4);
  const core::UnixTime expiry = core::bucket_expiry(old_minute);
  auto none = s->prune_counters(expiry - 1);
  REQUIRE_MESSAGE(none, none.error().what);
  CHECK(*none == 0);
  auto one = s->prune_counters(expiry);
  REQUIRE_MESSAGE(one, one.error().what);
  CHECK(*one == 1);
  auto hours = s->counters("hour:", 0);
  REQUIRE(hours);
  REQUIRE(hours->size() == 1);
  CHECK((*hours)[0].used == 3);
  // Days are history (send-days warm-up): never pruned.
  auto far = s->prune_counters(t0 + 100 * core::kDaySeconds);
  REQUIRE(far);
  CHECK(*far == 1);
  CHECK(counter(*s, "day:bulk", core::day_of(t0)) == 4);
}

TEST_CASE("store: counters filter by scope prefix literally and by bucket") {
  Fresh db;
  auto s = db.migrated();
  REQUIRE(must_lease(*s, day_request("day:a_b", 10, 1)).granted == 1);
  REQUIRE(must_lease(*s, day_request("day:axb", 10, 2)).granted == 2);
  REQUIRE(must_lease(*s, day_request("op:a_b/google", 10, 3)).granted == 3);
  auto all = s->counters("", 0);
  REQUIRE_MESSAGE(all, all.error().what);
  CHECK(all->size() == 3);
  auto ab = s->counters("day:a_", 0);  // '_' is not a wildcard
  REQUIRE(ab);
  REQUIRE(ab->size() == 1);
  CHECK((*ab)[0].scope == "day:a_b");
  auto later = s->counters("", core::day_of(kNoon) + 1);
  REQUIRE(later);
  CHECK(later->empty());
}

TEST_CASE("store: back-offs are set, replaced, listed by now and cleared") {
  Fresh db;
  auto s = db.migrated();
  const core::Backoff half{"bulk", "google", 500, kNoon + 3600, "421 4.7.0 [TSS04]", "cli", kNoon};
  const core::Backoff pause{"bulk", "microsoft", 0, kNoon + 600, "S3150", "classify", kNoon};
  REQUIRE(s->set_backoff(half));
  REQUIRE(s->set_backoff(pause));
  struct Case {
    const char* label;
    core::UnixTime now;
    std::vector<core::Backoff> want;
  };
  const Case cases[] = {
      {"0 lists every stored one", 0, {half, pause}},
      {"both active", kNoon, {half, pause}},
      {"until is exclusive", kNoon + 600, {half}},
      {"all expired", kNoon + 3600, {}},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.label));
    auto got = s->backoffs(c.now);
    REQUIRE_MESSAGE(got, got.error().what);
    CHECK(*got == c.want);
  }
  // Set replaces the (stream, operator) row.
  const core::Backoff quarter{"bulk", "google", 250, kNoon + 7200, "again", "classify", kNoon + 5};
  REQUIRE(s->set_backoff(quarter));
  auto got = s->backoffs(0);
  REQUIRE(got);
  CHECK(*got == std::vector<core::Backoff>{quarter, pause});

  auto cleared = s->clear_backoff("bulk", "google");
  REQUIRE_MESSAGE(cleared, cleared.error().what);
  CHECK(*cleared);
  auto again = s->clear_backoff("bulk", "google");
  REQUIRE(again);
  CHECK_FALSE(*again);
  got = s->backoffs(0);
  REQUIRE(got);
  CHECK(*got == std::vector<core::Backoff>{pause});

  auto bad = s->set_backoff({"bulk", "google", 1001, kNoon, "x", "cli", kNoon});
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == Errc::Internal);
}

TEST_CASE("store: concurrent leasers on separate connections never exceed the limit together") {
  Fresh db;
  db.migrated();
  constexpr std::int64_t kLimit = 120;
  constexpr int kThreads = 6;
  // SQLite writers queue on the write lock: give them time to wait rather than fail.
  store::OpenOptions opts;
  opts.busy_timeout = std::chrono::seconds(60);
  std::vector<std::unique_ptr<store::Store>> stores;
  for (int i = 0; i < kThreads; ++i) {
    auto st = store::open(db.url, opts);
    REQUIRE_MESSAGE(st, st.error().what);
    stores.push_back(std::move(*st));
  }
  std::vector<std::int64_t> granted(kThreads, 0);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      const auto idx = static_cast<std::size_t>(i);
      auto req = day_request("op:bulk/google", kLimit, 1);
      req.host = "mx" + std::to_string(i);
      for (;;) {
        auto g = stores[idx]->lease(req);
        if (!g) {
          errors[idx] = g.error().what;
          return;
        }
        if (g->granted == 0) return;
        granted[idx] += g->granted;
      }
    });
  }
  for (auto& t : threads) t.join();
  std::int64_t total = 0;
  for (int i = 0; i < kThreads; ++i) {
    const auto idx = static_cast<std::size_t>(i);
    CHECK_MESSAGE(errors[idx].empty(), errors[idx]);
    total += granted[idx];
  }
  CHECK(total == kLimit);
  auto s = db.open();
  CHECK(counter(*s, "op:bulk/google", core::day_of(kNoon)) == kLimit);
  auto ls = s->leases();
  REQUIRE(ls);
  CHECK(static_cast<std::int64_t>(ls->size()) == kLimit);
}

namespace {

constexpr std::int64_t kDay = 20779;  // kNoon's UTC day

core::Aggregate agg(std::int64_t day, std::string op, core::Outcome outcome, std::int64_t count,
                    std::string sample) {
  return {{day, "bulk", "203.0.113.94", std::move(op), outcome, "cat", "5.7.1"},
          count,
          std::move(sample)};
}

store::ClassifyBatch batch(std::int64_t from, std::int64_t to, std::string identity = "log-1") {
  store::ClassifyBatch b;
  b.identity = std::move(identity);
  b.from_offset = from;
  b.to_offset = to;
  b.path = "/var/log/mail.log";
  return b;
}

bool must_commit(store::Store& s, const store::ClassifyBatch& b) {
  auto r = s.commit_classify(b);
  REQUIRE_MESSAGE(r, r.error().what);
  return *r;
}

std::int64_t rules_version_of(store::Store& s) {
  auto v = s.rules_version();
  REQUIRE_MESSAGE(v, v.error().what);
  return v->version;
}

const core::ExclusionSpec* category(const core::RulesSpec& spec, std::string_view name) {
  for (const auto& e : spec.exclusions) {
    if (e.category == name) return &e;
  }
  return nullptr;
}

core::RulesSpec must_load(store::Store& s) {
  auto r = s.load_rules();
  REQUIRE_MESSAGE(r, r.error().what);
  return std::move(*r);
}

}  // namespace

TEST_CASE(
    "store: commit_classify moves the cursor by compare-and-set; a stale batch changes "
    "nothing") {
  Fresh db;
  auto s = db.migrated();
  auto none = s->cursor("log-1");
  REQUIRE_MESSAGE(none, none.error().what);
  CHECK_FALSE(none->has_value());

  auto first = batch(0, 100);
  first.aggregates.push_back(agg(kDay, "google", core::Outcome::Accepted, 3, "250 ok"));
  CHECK(must_commit(*s, first));
  auto at = s->cursor("log-1");
  REQUIRE_MESSAGE(at, at.error().what);
  REQUIRE(at->has_value());
  CHECK((*at)->offset == 100);
  CHECK((*at)->path == "/var/log/mail.log");
  CHECK((*at)->updated > 0);

  struct Case {
    const char* label;
    std::int64_t from;
    const char* identity;
  };
  const Case stale[] = {
      {"a second run from the start", 0, "log-1"},
      {"an offset the cursor never had", 50, "log-1"},
      {"a nonzero offset of a log never read", 100, "log-2"},
  };
  for (const auto& c : stale) {
    CAPTURE(c.label);
    auto b = batch(c.from, 400, c.identity);
    b.aggregates.push_back(agg(kDay, "google", core::Outcome::Accepted, 7, "250 again"));
    b.domain_hits.push_back({"dead.example", kDay, 1});
    b.anomalies.push_back(
        {core::AnomalyKind::BindFailure, kDay, "bulk", "203.0.113.9", kNoon, 1, "bind"});
    CHECK_FALSE(must_commit(*s, b));
  }
  auto aggs = s->aggregates(kDay, kDay);
  REQUIRE_MESSAGE(aggs, aggs.error().what);
  REQUIRE(aggs->size() == 1);
  CHECK(aggs->front().count == 3);
  auto hits = s->domain_hits(0, kDay + 10);
  REQUIRE(hits);
  CHECK(hits->empty());
  auto an = s->anomalies(0);
  REQUIRE(an);
  CHECK(an->empty());
  auto cs = s->cursors();
  REQUIRE_MESSAGE(cs, cs.error().what);
  REQUIRE(cs->size() == 1);
  CHECK(cs->front().offset == 100);

  CHECK(must_commit(*s, batch(100, 250)));
  CHECK(must_commit(*s, batch(0, 10, "log-2")));
  cs = s->cursors();
  REQUIRE(cs);
  REQUIRE(cs->size() == 2);
  auto again = s->cursor("log-1");
  REQUIRE(again);
  REQUIRE(again->has_value());
  CHECK((*again)->offset == 250);
}

TEST_CASE("store: aggregates add up across batches and keep the first sample; domain hits sum") {
  Fresh db;
  auto s = db.migrated();
  auto one = batch(0, 10);
  one.aggregates = {agg(kDay, "google", core::Outcome::RejectReputation, 2, "550 first"),
                    agg(kDay + 1, "google", core::Outcome::Accepted, 1, "250 ok"),
                    agg(kDay, "google", core::Outcome::RejectReputation, 3, "550 same key")};
  one.domain_hits = {
      {"dead.example", kDay, 1}, {"dead.example", kDay + 1, 2}, {"gone.example", kDay, 1}};
  REQUIRE(must_commit(*s, one));
  auto two = batch(10, 20);
  two.aggregates = {agg(kDay, "google", core::Outcome::RejectReputation, 4, "550 second")};
  two.domain_hits = {{"dead.example", kDay + 1, 1}, {"dead.example", kDay + 5, 7}};
  REQUIRE(must_commit(*s, two));

  auto day = s->aggregates(kDay, kDay);
  REQUIRE_MESSAGE(day, day.error().what);
  REQUIRE(day->size() == 1);
  CHECK(day->front().count == 9);
  CHECK(day->front().sample == "550 first");
  CHECK(day->front().key == agg(kDay, "google", core::Outcome::RejectReputation, 0, "").key);
  auto both = s->aggregates(kDay, kDay + 1);
  REQUIRE(both);
  REQUIRE(both->size() == 2);
  CHECK(both->at(0).key.day == kDay);
  CHECK(both->at(1) == agg(kDay + 1, "google", core::Outcome::Accepted, 1, "250 ok"));
  auto none = s->aggregates(kDay + 2, kDay + 30);
  REQUIRE(none);
  CHECK(none->empty());

  auto hits = s->domain_hits(kDay, kDay + 1);
  REQUIRE_MESSAGE(hits, hits.error().what);
  CHECK(*hits ==
        std::vector<core::DomainHit>{{"dead.example", kDay + 1, 4}, {"gone.example", kDay, 1}});
  hits = s->domain_hits(kDay + 2, kDay + 9);
  REQUIRE(hits);
  CHECK(*hits == std::vector<core::DomainHit>{{"dead.example", kDay + 5, 7}});
}

TEST_CASE("store: a large batch commits whole") {
  Fresh db;
  auto s = db.migrated();
  auto b = batch(0, 1'000'000);
  constexpr std::int64_t kRows = 10'000;
  for (std::int64_t i = 0; i < kRows; ++i) {
    b.aggregates.push_back(
        agg(kDay - i % 30, "op" + std::to_string(i), core::Outcome::Accepted, 1, "250 2.0.0 ok"));
  }
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(must_commit(*s, b));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  MESSAGE(engine(), ": ", kRows, " aggregate rows committed in ", ms, " ms");
  auto all = s->aggregates(kDay - 30, kDay);
  REQUIRE_MESSAGE(all, all.error().what);
  CHECK(static_cast<std::int64_t>(all->size()) == kRows);
  CHECK(std::is_sorted(all->begin(), all->end(),
                       [](const auto& x, const auto& y) { return x.key < y.key; }));
}

TEST_CASE("store: anomalies have an identity; batches add counts, add_anomalies is idempotent") {
  Fresh db;
  auto s = db.migrated();
  const core::Anomaly bind{core::AnomalyKind::BindFailure,
                           kDay,
                           "bulk",
                           "203.0.113.9",
                           kNoon + 10,
                           2,
                           "bind 203.0.113.9: Cannot assign requested address"};
  auto one = batch(0, 10);
  one.anomalies = {bind};
  REQUIRE(must_commit(*s, one));
  auto two = batch(10, 20);
  auto earlier = bind;
  earlier.first = kNoon + 5;
  earlier.count = 1;
  earlier.detail = "another line";
  two.anomalies = {earlier};
  REQUIRE(must_commit(*s, two));

  const core::Anomaly zero{core::AnomalyKind::ZeroDeliveries,
                           kDay + 1,
                           "bulk",
                           "20780",
                           kNoon + 86400,
                           1,
                           "no deliveries"};
  REQUIRE(s->add_anomalies({zero}));
  auto again = s->add_anomalies({zero});
  REQUIRE_MESSAGE(again, again.error().what);

  auto got = s->anomalies(kDay);
  REQUIRE_MESSAGE(got, got.error().what);
  auto want_bind = bind;
  want_bind.first = kNoon + 5;
  want_bind.count = 3;
  CHECK(*got == std::vector<core::Anomaly>{zero, want_bind});  // newest first
  got = s->anomalies(kDay + 1);
  REQUIRE(got);
  CHECK(*got == std::vector<core::Anomaly>{zero});
}

TEST_CASE("store: add_suppressions fills the bounce category and bumps the version on change") {
  Fresh db;
  auto s = db.migrated();
  REQUIRE(s->apply_rules(parse_spec(kRulesA), "a"));
  const core::UnixTime now = kNoon;
  const std::vector<core::Suppression> first{
      {"gone@example.com", false, 0, "550 5.1.1 no such user (rule unknown-mailbox)"},
      {"dead.example", true, now + 86400, "domain replies"},
      {"not an address", false, 0, "skipped: invalid"}};
  auto n = s->add_suppressions("bounces", first, now);
  REQUIRE_MESSAGE(n, n.error().what);
  CHECK(*n == 2);
  auto rv = s->rules_version();
  REQUIRE(rv);
  CHECK(rv->version == 2);
  CHECK(rv->note == "classify: 2 suppressions");

  SUBCASE("the same suppressions again change nothing") {
    n = s->add_suppressions("bounces", first, now + 60);
    REQUIRE(n);
    CHECK(*n == 0);
    CHECK(rules_version_of(*s) == 2);
  }
  SUBCASE("a later or no expiry extends a bounce entry, an earlier one does not") {
    auto expiry = [&] {
      auto rows = db.raw->query(
          "SELECT expires_at FROM exclusion_entries WHERE category = 'bounces' AND value = "
          "'dead.example'");
      REQUIRE_MESSAGE(rows, rows.error().what);
      REQUIRE(rows->size() == 1);
      return store::is_null(rows->front()[0]) ? std::string("never")
                                              : store::as_text(rows->front()[0]);
    };
    CHECK(expiry() == "2026-11-23T12:00:00Z");
    n = s->add_suppressions("bounces", {{"dead.example", true, now + 3600, ""}}, now);
    REQUIRE(n);
    CHECK(*n == 0);
    n = s->add_suppressions("bounces", {{"dead.example", true, now + 2 * 86400, ""}}, now);
    REQUIRE(n);
    CHECK(*n == 1);
    CHECK(expiry() == "2026-11-24T12:00:00Z");
    CHECK(rules_version_of(*s) == 3);
    n = s->add_suppressions("bounces", {{"dead.example", true, 0, ""}}, now);
    REQUIRE(n);
    CHECK(*n == 1);
    CHECK(expiry() == "never");
    n = s->add_suppressions("bounces", {{"dead.example", true, now + 9 * 86400, ""}}, now);
    REQUIRE(n);
    CHECK(*n == 0);
    CHECK(rules_version_of(*s) == 4);
  }
  SUBCASE("an entry a file put in its category is left as it is") {
    n = s->add_suppressions("yahoo-family", {{"someone@example.com", false, now + 60, ""}}, now);
    REQUIRE(n);
    CHECK(*n == 0);
    CHECK(rules_version_of(*s) == 2);
  }

  auto spec = must_load(*s);
  const auto* bounces = category(spec, "bounces");
  REQUIRE(bounces != nullptr);
  CHECK(bounces == &spec.exclusions.back());  // after every file category
  CHECK(bounces->effective_action() == core::ExclusionAction::Reject);
  CHECK(bounces->streams == std::optional<std::vector<std::string>>{{"*"}});
  CHECK_FALSE(bounces->status.has_value());
  CHECK(bounces->origin.where() == "bounce");
  CHECK(bounces->addresses == std::vector<std::string>{"gone@example.com"});
  CHECK(bounces->domains == std::vector<std::string>{"dead.example"});
}

TEST_CASE("store: bounce suppressions survive applies, serve every stream, yield to a file") {
  Fresh db;
  auto s = db.migrated();
  REQUIRE(s->apply_rules(parse_spec(kRulesA), "a"));
  REQUIRE(s->add_suppressions("bounces", {{"gone@example.com", false, 0, ""}}, kNoon));
  // Into a file category: it outlives the file that defined it.
  REQUIRE(s->add_suppressions("yahoo-family", {{"left@example.org", false, 0, ""}}, kNoon));
  REQUIRE(s->apply_rules(parse_spec(kRulesA), "a again"));

  auto rules = store::load_ruleset(*s);
  REQUIRE_MESSAGE(rules, rules.error().what);
  const auto* bulk = (*rules)->stream("bulk");
  REQUIRE(bulk != nullptr);
  for (const auto* stream : {bulk, static_cast<const core::StreamSpec*>(nullptr)}) {
    CAPTURE(stream != nullptr);
    auto hit = (*rules)->find_exclusion(stream, "Gone@Example.com");
    REQUIRE(hit.has_value());
    CHECK(hit->rule->category == "bounces");
    CHECK(hit->by_address);
  }
  CHECK_FALSE((*rules)->find_exclusion(bulk, "other@example.com").has_value());

  // A file that defines the category sets its action, status and streams; the entries stay.
  auto over = parse_spec(std::string(kRulesA) + R"(
[[exclusion]]
category = "bounces"
action = "reject"
status = "5.1.1"
streams = ["bulk"]
)");
  REQUIRE(s->apply_rules(over, "over"));
  auto spec = must_load(*s);
  const auto* bounces = category(spec, "bounces");
  REQUIRE(bounces != nullptr);
  CHECK(bounces->status == std::optional<std::string>{"5.1.1"});
  CHECK(bounces->streams == std::optional<std::vector<std::string>>{{"bulk"}});
  CHECK(bounces->origin.where().starts_with("contract.toml:"));
  CHECK(bounces->addresses == std::vector<std::string>{"gone@example.com"});

  // Once no file defines it, it is the system's again; so is a file category holding bounces.
  REQUIRE(s->apply_rules(parse_spec(kRulesB), "b"));
  spec = must_load(*s);
  bounces = category(spec, "bounces");
  REQUIRE(bounces != nullptr);
  CHECK_FALSE(bounces->status.has_value());
  CHECK(bounces->streams == std::optional<std::vector<std::string>>{{"*"}});
  CHECK(bounces->origin.where() == "bounce");
  CHECK(bounces->addresses == std::vector<std::string>{"gone@example.com"});
  const auto* yahoo = category(spec, "yahoo-family");
  REQUIRE(yahoo != nullptr);
  CHECK(yahoo->addresses == std::vector<std::string>{"left@example.org"});
  CHECK(yahoo->domains.empty());
  CHECK(yahoo->streams == std::optional<std::vector<std::string>>{{"*"}});
  CHECK(core::RuleSet::compile(spec));
}

TEST_CASE("store: [feedback] round-trips through apply and load; unset stays unset") {
  Fresh db;
  auto s = db.migrated();
  auto spec = parse_spec(R"(
[feedback]
category = "suppressed"
suppress_domains = false
address_expiry_days = 30
domain_replies = 5
backoff = false
backoff_percent = 35
pause_hours = 6
)");
  REQUIRE(spec.feedback.has_value());
  REQUIRE(s->apply_rules(spec, "feedback"));
  auto back = must_load(*s);
  REQUIRE(back.feedback.has_value());
  CHECK(*back.feedback == *spec.feedback);
  CHECK(back.feedback->category == "suppressed");
  CHECK_FALSE(back.feedback->suppress_domains);
  CHECK(back.feedback->suppress_addresses);
  CHECK(back.feedback->address_expiry_days == 30);
  CHECK(back.feedback->pause_hours == 6);
  CHECK(back.feedback->origin.where() == spec.feedback->origin.where());
  CHECK(back == spec);

  REQUIRE(s->apply_rules(parse_spec(kRulesB), "b"));
  back = must_load(*s);
  CHECK_FALSE(back.feedback.has_value());
}

// --- DMARC (issue 6) --------------------------------------------------------------------------

namespace {

core::dmarc::Record dmarc_record(std::string ip, std::int64_t count, std::string dkim,
                                 std::string spf, std::string header_from) {
  core::dmarc::Record r;
  r.source_ip = std::move(ip);
  r.count = count;
  r.disposition = "none";
  r.dkim = std::move(dkim);
  r.spf = std::move(spf);
  r.header_from = std::move(header_from);
  return r;
}

core::dmarc::Report dmarc_report(std::string org, std::string id, std::int64_t begin,
                                 std::vector<core::dmarc::Record> records) {
  core::dmarc::Report r;
  r.version = "1.0";
  r.org_name = std::move(org);
  r.email = "noreply-dmarc@" + r.org_name;
  r.report_id = std::move(id);
  r.begin = begin;
  r.end = begin + 86399;
  r.policy.domain = "send.example.net";
  r.policy.p = "none";
  r.records = std::move(records);
  return r;
}

std::array<std::int64_t, 3> must_totals(store::Store& s) {
  auto t = s.dmarc_totals();
  REQUIRE_MESSAGE(t, t.error().what);
  return *t;
}

// Three records with every field used, and values no list form may lose: tabs, newlines,
// backslashes, non-ASCII.
core::dmarc::Report full_report() {
  auto rep = dmarc_report("google.com", "1234567890", kNoon - 43200,
                          {dmarc_record("203.0.113.94", 12, "pass", "pass", "send.example.net"),
                           dmarc_record("2001:db8::94", 3, "fail", "pass", "send.example.net"),
                           dmarc_record("198.51.100.7", 2, "fail", "fail", "Ünïcode.example")});
  rep.dmarcbis = true;
  rep.version = "2.0";
  rep.extra_contact_info = "https://support.google.com/a/answer/2466580";
  rep.errors = {"first\twith a tab", "", "second\\n is not a newline\nbut this is"};
  rep.policy.adkim = "r";
  rep.policy.aspf = "s";
  rep.policy.sp = "quarantine";
  rep.policy.np = "reject";
  rep.policy.pct = 100;
  rep.policy.fo = "1";
  rep.policy.testing = "n";
  rep.policy.discovery_method = "treewalk";
  auto& r0 = rep.records[0];
  r0.envelope_from = "bounce.send.example.net";
  r0.envelope_to = "gmail.com";
  r0.auth = {{"dkim", "send.example.net", "s2026", "", "pass", ""},
             {"dkim", "esp.example", "sel\\1\t", "", "fail", "body hash did not verify"},
             {"spf", "bounce.send.example.net", "", "mfrom", "pass", ""}};
  auto& r1 = rep.records[1];
  r1.disposition = "none";
  r1.reasons = {{"forwarded", "via list\nsecond line"}, {"local_policy", ""}};
  r1.auth = {{"spf", "send.example.net", "", "helo", "pass", "«ok»"}};
  auto& r2 = rep.records[2];
  r2.disposition = "quarantine";
  r2.reasons = {{"", ""}};
  return rep;
}

}  // namespace

TEST_CASE("store: list columns have one text form and read back exactly") {
  struct Case {
    const char* label;
    std::vector<std::vector<std::string>> items;
    std::size_t fields;
    const char* want;
  };
  const Case cases[] = {
      {"empty list", {}, 2, ""},
      {"one empty item", {{"", ""}}, 2, "\t\n"},
      {"one empty field", {{""}}, 1, "\n"},
      {"escapes", {{"a\tb", "c\nd\\"}, {"\\t", "é"}}, 2, "a\\tb\tc\\nd\\\\\n\\\\t\t\xc3\xa9\n"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.label);
    const auto text = store::encode_list(c.items);
    CHECK(text == c.want);
    CHECK(store::decode_list(text, c.fields) == c.items);
  }
  for (const char* torn : {"a", "a\t", "a\\x\n", "a\\", "a\tb\tc\n"}) {
    CAPTURE(torn);
    CHECK_FALSE(store::decode_list(torn, 2).has_value());
  }
}

TEST_CASE("store: a DMARC report is stored once, whole, with its records in order") {
  Fresh db;
  auto s = db.migrated();
  const auto rep = full_report();
  auto added = s->add_dmarc_report(rep, "/var/mail/dmarc/1.xml.gz", kNoon);
  REQUIRE_MESSAGE(added, added.error().what);
  CHECK(*added);
  const std::array<std::int64_t, 3> one{1, 3, 17};
  CHECK(must_totals(*s) == one);

  // The report row, and the record rows as written (the list columns in their text form).
  auto head = db.raw->query(
      "SELECT org_name, report_id, policy_domain, begin_at, end_at, email, extra_contact_info, "
      "version, dmarcbis, adkim, aspf, p, sp, np, pct, fo, testing, discovery_method, errors, "
      "records, messages, pass_messages, source, ingested_at FROM dmarc_report");
  REQUIRE_MESSAGE(head, head.error().what);
  REQUIRE(head->size() == 1);
  std::vector<std::string> got;
  for (const auto& v : head->front()) got.push_back(store::as_text(v));
  const std::vector<std::string> want{"google.com",
                                      "1234567890",
                                      "send.example.net",
                                      std::to_string(rep.begin),
                                      std::to_string(rep.end),
                                      "noreply-dmarc@google.com",
                                      rep.extra_contact_info,
                                      "2.0",
                                      "1",
                                      "r",
                                      "s",
                                      "none",
                                      "quarantine",
                                      "reject",
                                      "100",
                                      "1",
                                      "n",
                                      "treewalk",
                                      store::encode_list({{rep.errors[0]}, {""}, {rep.errors[2]}}),
                                      "3",
                                      "17",
                                      "15",
                                      "/var/mail/dmarc/1.xml.gz",
                                      std::to_string(kNoon)};
  CHECK(got == want);
  auto errors = store::decode_list(store::as_text(head->front()[18]), 1);
  REQUIRE(errors.has_value());
  std::vector<std::string> error_texts;
  for (const auto& e : *errors) error_texts.push_back(e.at(0));
  CHECK(error_texts == rep.errors);

  auto recs = db.raw->query(
      "SELECT position, source_ip, count, disposition, dkim, spf, header_from, envelope_from, "
      "envelope_to, reasons, auth FROM dmarc_record ORDER BY position");
  REQUIRE_MESSAGE(recs, recs.error().what);
  REQUIRE(recs->size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    const auto& row = recs->at(i);
    const auto& want_rec = rep.records[i];
    core::dmarc::Record back;
    CHECK(store::as_int(row[0]) == static_cast<std::int64_t>(i + 1));
    back.source_ip = store::as_text(row[1]);
    back.count = store::as_int(row[2]);
    back.disposition = store::as_text(row[3]);
    back.dkim = store::as_text(row[4]);
    back.spf = store::as_text(row[5]);
    back.header_from = store::as_text(row[6]);
    back.envelope_from = store::as_text(row[7]);
    back.envelope_to = store::as_text(row[8]);
    auto reasons = store::decode_list(store::as_text(row[9]), 2);
    auto auth = store::decode_list(store::as_text(row[10]), 6);
    REQUIRE(reasons.has_value());
    REQUIRE(auth.has_value());
    for (const auto& r : *reasons) back.reasons.push_back({r[0], r[1]});
    for (const auto& a : *auth) back.auth.push_back({a[0], a[1], a[2], a[3], a[4], a[5]});
    CHECK(back == want_rec);
  }
  CHECK(store::as_text(recs->at(2)[9]) == "\t\n");  // one reason, both fields absent
  CHECK(store::as_text(recs->at(2)[10]).empty());   // no auth results

  SUBCASE("the same report again is refused and changes nothing") {
    auto known = s->has_dmarc_report(rep);
    REQUIRE(known);
    CHECK(*known);
    auto other = rep;
    other.report_id += "-2";
    known = s->has_dmarc_report(other);
    REQUIRE(known);
    CHECK_FALSE(*known);
    auto again = s->add_dmarc_report(rep, "/elsewhere.xml", kNoon + 60);
    REQUIRE_MESSAGE(again, again.error().what);
    CHECK_FALSE(*again);
    CHECK(must_totals(*s) == one);
    auto arrival = s->dmarc_arrival();
    REQUIRE(arrival);
    CHECK(arrival->last_ingested == std::optional<core::UnixTime>{kNoon});
  }
  SUBCASE("the same report id from another org, or for another range, is another report") {
    auto other = rep;
    other.org_name = "yahoo.com";
    auto r = s->add_dmarc_report(other, "yahoo", kNoon);
    REQUIRE_MESSAGE(r, r.error().what);
    CHECK(*r);
    auto later = rep;
    later.begin += 86400;
    later.end += 86400;
    r = s->add_dmarc_report(later, "later", kNoon);
    REQUIRE(r);
    CHECK(*r);
    auto domain = rep;
    domain.policy.domain = "other.example.net";
    r = s->add_dmarc_report(domain, "domain", kNoon);
    REQUIRE(r);
    CHECK(*r);
    const std::array<std::int64_t, 3> four{4, 12, 68};
    CHECK(must_totals(*s) == four);
  }
  SUBCASE("a NUL character is refused on every engine, nothing stored") {
    auto bad = dmarc_report("nul.example", "n1", kNoon, {dmarc_record("192.0.2.1", 1, "", "", "")});
    bad.records[0].auth = {{"dkim", std::string("a\0b", 3), "", "", "pass", ""}};
    auto r = s->add_dmarc_report(bad, "nul", kNoon);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::Invalid);
    CHECK(r.error().what.find("NUL") != std::string::npos);
    CHECK(must_totals(*s) == one);
  }
}

TEST_CASE("store: a report with no records, and the arrival of reports") {
  Fresh db;
  auto s = db.migrated();
  auto none = s->dmarc_arrival();
  REQUIRE_MESSAGE(none, none.error().what);
  CHECK(none->reports == 0);
  CHECK_FALSE(none->last_ingested.has_value());
  CHECK_FALSE(none->last_end.has_value());
  const std::array<std::int64_t, 3> zero{0, 0, 0};
  CHECK(must_totals(*s) == zero);
  auto sources = s->dmarc_sources(0);
  REQUIRE_MESSAGE(sources, sources.error().what);
  CHECK(sources->empty());

  auto empty = dmarc_report("empty.example", "e1", kNoon - 86400, {});
  REQUIRE(s->add_dmarc_report(empty, "e1", kNoon + 5).value_or(false));
  // Ingested later, but covering an earlier day: the newest of each is reported.
  auto older = dmarc_report("empty.example", "e0", kNoon - 3 * 86400, {});
  REQUIRE(s->add_dmarc_report(older, "e0", kNoon + 9).value_or(false));
  auto a = s->dmarc_arrival();
  REQUIRE(a);
  CHECK(a->reports == 2);
  CHECK(a->last_ingested == std::optional<core::UnixTime>{kNoon + 9});
  CHECK(a->last_end == std::optional<core::UnixTime>{empty.end});
  const std::array<std::int64_t, 3> two{2, 0, 0};
  CHECK(must_totals(*s) == two);
}

TEST_CASE("store: dmarc_sources sums per IP over the reports of a period") {
  Fresh db;
  auto s = db.migrated();
  const std::int64_t day = 86400;
  // Old: only seen with from = 0.
  auto old = dmarc_report("outlook.com", "o-1", kNoon - 10 * day,
                          {dmarc_record("203.0.113.94", 1000, "pass", "pass", "old.example")});
  auto g = dmarc_report("google.com", "g-1", kNoon - day,
                        {dmarc_record("203.0.113.94", 10, "pass", "fail", "send.example.net"),
                         dmarc_record("203.0.113.94", 5, "fail", "pass", "b.example"),
                         dmarc_record("198.51.100.7", 7, "fail", "fail", "send.example.net"),
                         dmarc_record("203.0.113.94", 1, "fail", "fail", "")});
  auto y = dmarc_report("yahoo.com", "y-1", kNoon - day,
                        {dmarc_record("203.0.113.94", 4, "pass", "pass", "send.example.net"),
                         dmarc_record("198.51.100.10", 9, "pass", "fail", "a.example"),
                         dmarc_record("198.51.100.7", 2, "fail", "pass", "send.example.net")});
  for (const auto* rep : {&old, &g, &y}) {
    auto r = s->add_dmarc_report(*rep, rep->report_id, kNoon);
    REQUIRE_MESSAGE(r, r.error().what);
    REQUIRE(*r);
  }

  auto got = s->dmarc_sources(kNoon - 2 * day);
  REQUIRE_MESSAGE(got, got.error().what);
  REQUIRE(got->size() == 3);
  const auto& a = got->at(0);
  CHECK(a.source_ip == "203.0.113.94");
  CHECK(a.messages == 20);
  CHECK(a.dmarc_pass == 19);
  CHECK(a.dkim_aligned == 14);
  CHECK(a.spf_aligned == 9);
  CHECK(a.reports == 2);
  CHECK(a.reporters == std::vector<std::string>{"google.com", "yahoo.com"});
  CHECK(a.domains == std::vector<std::string>{"b.example", "send.example.net"});
  // Equal messages: by IP, byte order.
  const auto& b = got->at(1);
  CHECK(b.source_ip == "198.51.100.10");
  CHECK(b.messages == 9);
  CHECK(b.dmarc_pass == 9);
  CHECK(b.dkim_aligned == 9);
  CHECK(b.spf_aligned == 0);
  CHECK(b.reports == 1);
  CHECK(b.reporters == std::vector<std::string>{"yahoo.com"});
  CHECK(b.domains == std::vector<std::string>{"a.example"});
  const auto& c = got->at(2);
  CHECK(c.source_ip == "198.51.100.7");
  CHECK(c.messages == 9);
  CHECK(c.dmarc_pass == 2);
  CHECK(c.dkim_aligned == 0);
  CHECK(c.spf_aligned == 2);
  CHECK(c.reports == 2);
  CHECK(c.reporters == std::vector<std::string>{"google.com", "yahoo.com"});
  CHECK(c.domains == std::vector<std::string>{"send.example.net"});

  // From the start: the old report counts too and puts its IP first.
  got = s->dmarc_sources(0);
  REQUIRE(got);
  REQUIRE(got->size() == 3);
  CHECK(got->at(0).source_ip == "203.0.113.94");
  CHECK(got->at(0).messages == 1020);
  CHECK(got->at(0).dmarc_pass == 1019);
  CHECK(got->at(0).reports == 3);
  CHECK(got->at(0).reporters == std::vector<std::string>{"google.com", "outlook.com", "yahoo.com"});
  CHECK(got->at(0).domains ==
        std::vector<std::string>{"b.example", "old.example", "send.example.net"});
  // A `from` after every report's end: nothing.
  got = s->dmarc_sources(kNoon + day);
  REQUIRE(got);
  CHECK(got->empty());
}

TEST_CASE("store: a large DMARC report is stored whole") {
  Fresh db;
  auto s = db.migrated();
  constexpr std::int64_t kRecords = 10'000;
  std::vector<core::dmarc::Record> records;
  records.reserve(kRecords);
  for (std::int64_t i = 0; i < kRecords; ++i) {
    auto r = dmarc_record(fmt::format("10.{}.{}.{}", i / 65536, i / 256 % 256, i % 256), i % 7 + 1,
                          i % 3 == 0 ? "fail" : "pass", i % 5 == 0 ? "fail" : "pass",
                          "send.example.net");
    r.envelope_from = "bounce.send.example.net";
    r.auth = {{"dkim", "send.example.net", "s2026", "", r.dkim, ""},
              {"spf", "bounce.send.example.net", "", "mfrom", r.spf, ""}};
    records.push_back(std::move(r));
  }
  auto rep = dmarc_report("big.example", "big-1", kNoon - 86400, std::move(records));
  const auto start = std::chrono::steady_clock::now();
  auto added = s->add_dmarc_report(rep, "big.xml", kNoon);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  REQUIRE_MESSAGE(added, added.error().what);
  CHECK(*added);
  MESSAGE(engine(), ": a DMARC report of ", kRecords, " records stored in ", ms, " ms");
  const std::array<std::int64_t, 3> want{1, kRecords, rep.messages()};
  CHECK(must_totals(*s) == want);
  auto sources = s->dmarc_sources(0);
  REQUIRE_MESSAGE(sources, sources.error().what);
  CHECK(static_cast<std::int64_t>(sources->size()) == kRecords);
  auto again = s->add_dmarc_report(rep, "big.xml", kNoon);
  REQUIRE(again);
  CHECK_FALSE(*again);
  CHECK(must_totals(*s) == want);
}
