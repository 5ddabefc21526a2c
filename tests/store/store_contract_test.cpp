// The store contract: every engine behind store::Store must pass these. RAMPART_TEST_STORE
// picks the engine (sqlite: a temp file per case; pgsql: the throwaway cluster in RAMPART_PG_URL,
// whose public schema is emptied before each case).
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

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
