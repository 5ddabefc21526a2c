// Unit tests for rampart_config: the settings table and its defaults, parse() errors (file:line,
// key, suggestion), print_defaults() round trip, overrides, durations, and the shared CLI flags.
// Pure apart from load() on paths that do not exist or cannot be read; nothing is written.
#include "config/config.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/cli.hpp"

namespace {

using namespace std::chrono_literals;
using rampart::Errc;
namespace cfg = rampart::config;

cfg::Config must_parse(std::string_view text) {
  auto got = cfg::parse(text, "rampart.toml");
  REQUIRE_MESSAGE(got.has_value(), (got ? std::string() : got.error().what));
  return *got;
}

TEST_CASE("defaults: every declared default parses and validates") {
  auto got = cfg::defaults();
  REQUIRE_MESSAGE(got.has_value(), (got ? std::string() : got.error().what));
  const auto& c = *got;
  CHECK(c.source() == "(defaults)");
  for (const auto& s : cfg::settings()) {
    CAPTURE(s.table);
    CAPTURE(s.key);
    CHECK_FALSE(c.is_set(s.table, s.key));
    switch (s.type) {
      case cfg::Type::String: CHECK_NOTHROW((void)c.string(s.table, s.key)); break;
      case cfg::Type::Integer: CHECK_NOTHROW((void)c.integer(s.table, s.key)); break;
      case cfg::Type::Boolean: CHECK_NOTHROW((void)c.boolean(s.table, s.key)); break;
      case cfg::Type::Duration: CHECK_NOTHROW((void)c.duration(s.table, s.key)); break;
      case cfg::Type::StringList: CHECK_NOTHROW((void)c.list(s.table, s.key)); break;
      case cfg::Type::Size: CHECK_NOTHROW((void)c.size(s.table, s.key)); break;
    }
  }
  CHECK(c.string("store", "url") == "sqlite:///var/lib/rampart/rampart.db");
  CHECK(c.duration("store", "connect_timeout") == 5s);
  CHECK(c.duration("store", "busy_timeout") == 5s);
  CHECK(c.string("milter", "listen") == "unix:/var/spool/postfix/rampart/milter.sock");
  CHECK(c.string("milter", "log_level") == "info");
  CHECK(c.duration("milter", "rules_poll_interval") == 10s);
  CHECK(c.list("policyd", "listen") ==
        std::vector<std::string>{"unix:/var/spool/postfix/rampart/policy.sock"});
  CHECK(c.duration("policyd", "idle_timeout") == 300s);
  CHECK(c.duration("policyd", "rules_poll_interval") == 10s);
  CHECK(c.string("sidecar", "rules_dir") == "/usr/share/rampart/rules");
  CHECK(c.string("sidecar", "log_level") == "info");
}

TEST_CASE("settings: every setting is declared once, with help and a default") {
  const auto all = cfg::settings();
  REQUIRE_FALSE(all.empty());
  for (std::size_t i = 0; i < all.size(); ++i) {
    const auto& s = all[i];
    CAPTURE(s.table);
    CAPTURE(s.key);
    CHECK_FALSE(s.table.empty());
    CHECK_FALSE(s.key.empty());
    CHECK_FALSE(s.default_toml.empty());
    REQUIRE_FALSE(s.help.empty());
    CHECK(s.help.back() != '.');
    CHECK(cfg::find_setting(s.table, s.key) == &s);
    for (std::size_t j = i + 1; j < all.size(); ++j) {
      CHECK_FALSE((all[j].table == s.table && all[j].key == s.key));
    }
  }
  CHECK(cfg::find_setting("store", "nope") == nullptr);
  CHECK(cfg::find_setting("nope", "url") == nullptr);
}

TEST_CASE("describe: names every type") {
  struct Case {
    cfg::Type type;
    const char* want;
  };
  const Case cases[] = {
      {cfg::Type::String, "string"},
      {cfg::Type::Integer, "integer"},
      {cfg::Type::Boolean, "boolean"},
      {cfg::Type::Duration, "duration"},
      {cfg::Type::StringList, "list of strings"},
      {cfg::Type::Size, "size"},
  };
  for (const auto& c : cases) CHECK(cfg::describe(c.type) == c.want);
}

TEST_CASE("parse_duration: digits and one unit, else a config error") {
  struct Case {
    const char* label;
    const char* text;
    bool want_ok;
    std::chrono::milliseconds want;
  };
  const Case cases[] = {
      {"milliseconds", "250ms", true, 250ms},
      {"seconds", "300s", true, 300s},
      {"minutes", "5m", true, 5min},
      {"hours", "1h", true, 1h},
      {"days", "2d", true, 48h},
      {"zero", "0s", true, 0ms},
      {"leading zeros", "007s", true, 7s},
      {"no unit", "300", false, 0ms},
      {"no number", "s", false, 0ms},
      {"empty", "", false, 0ms},
      {"unknown unit", "5x", false, 0ms},
      {"space before unit", "5 s", false, 0ms},
      {"negative", "-5s", false, 0ms},
      {"fraction", "1.5s", false, 0ms},
      {"upper-case unit", "5S", false, 0ms},
      {"two units", "1h30m", false, 0ms},
      {"overflows int64 digits", "99999999999999999999ms", false, 0ms},
      {"overflows after scaling", "9999999999999999d", false, 0ms},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.label));
    const auto got = cfg::parse_duration(c.text);
    REQUIRE(got.has_value() == c.want_ok);
    if (got) {
      CHECK(*got == c.want);
    } else {
      CHECK(got.error().code == Errc::Config);
      CHECK(got.error().what.starts_with("bad duration \"" + std::string(c.text) + "\": "));
    }
  }
}

TEST_CASE("parse: valid values replace defaults and are marked set") {
  struct Case {
    const char* label;
    const char* text;
    const char* table;
    const char* key;
    std::string want;
  };
  const Case cases[] = {
      {"sqlite url", "[store]\nurl = \"sqlite:///tmp/r.db\"\n", "store", "url",
       "sqlite:///tmp/r.db"},
      {"postgresql url", "[store]\nurl = \"postgresql://rampart@db/rampart\"\n", "store", "url",
       "postgresql://rampart@db/rampart"},
      {"postgres url", "[store]\nurl = 'postgres:///rampart'\n", "store", "url",
       "postgres:///rampart"},
      {"milter inet", "[milter]\nlisten = \"inet:10025@127.0.0.1\"\n", "milter", "listen",
       "inet:10025@127.0.0.1"},
      {"milter inet port 0", "[milter]\nlisten = \"inet:0@127.0.0.1\"\n", "milter", "listen",
       "inet:0@127.0.0.1"},
      {"milter inet6", "[milter]\nlisten = \"inet6:10025@::1\"\n", "milter", "listen",
       "inet6:10025@::1"},
      {"milter unix", "[milter]\nlisten = \"unix:/run/m.sock\"\n", "milter", "listen",
       "unix:/run/m.sock"},
      {"dotted key", "milter.log_level = \"debug\"\n", "milter", "log_level", "debug"},
      {"log level", "[policyd]\nlog_level = \"warning\"\n", "policyd", "log_level", "warning"},
      {"rules dir", "[sidecar]\nrules_dir = \"rules\"\n", "sidecar", "rules_dir", "rules"},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.label));
    const auto got = must_parse(c.text);
    CHECK(got.source() == "rampart.toml");
    CHECK(got.string(c.table, c.key) == c.want);
    CHECK(got.is_set(c.table, c.key));
  }
}

TEST_CASE("parse: durations and lists") {
  const auto got = must_parse(
      "# a comment\n"
      "[store]\nconnect_timeout = \"250ms\"\nbusy_timeout = \"0s\"\n"
      "[policyd]\nidle_timeout = \"5m\"\n"
      "listen = [\"inet:127.0.0.1:10040\", \"inet:[::1]:10040\", \"inet:localhost:0\", "
      "\"unix:/p.sock\"]\n"
      "dns_servers = [\"127.0.0.1\", \"127.0.0.1:5353\", \"[::1]:53\", \"::1\"]\n");
  CHECK(got.duration("store", "connect_timeout") == 250ms);
  CHECK(got.duration("store", "busy_timeout") == 0ms);
  CHECK(got.duration("policyd", "idle_timeout") == 5min);
  CHECK(got.list("policyd", "listen") ==
        std::vector<std::string>{"inet:127.0.0.1:10040", "inet:[::1]:10040", "inet:localhost:0",
                                 "unix:/p.sock"});
  CHECK(got.list("policyd", "dns_servers") ==
        std::vector<std::string>{"127.0.0.1", "127.0.0.1:5353", "[::1]:53", "::1"});
  CHECK(got.is_set("store", "busy_timeout"));
  CHECK_FALSE(got.is_set("store", "url"));
  CHECK(got.duration("policyd", "rules_poll_interval") == 10s);  // untouched default
}

TEST_CASE("parse: an empty file or only comments gives the defaults") {
  for (const char* text : {"", "\n\n", "# nothing here\n", "[store]\n[milter]\n"}) {
    CAPTURE(text);
    const auto got = must_parse(text);
    CHECK(got.same_values(*cfg::defaults()));
  }
}

TEST_CASE("parse: errors are config errors naming file:line and the key") {
  struct Case {
    const char* label;
    const char* text;
    const char* want;
    bool exact;
  };
  const Case cases[] = {
      // Unknown names.
      {"unknown table with suggestion", "[milte]\nlisten = \"inet:1@h\"\n",
       R"(rampart.toml:1: unknown table "milte" (did you mean "milter"?))", true},
      {"unknown table", "\n[frobnicate]\n", R"(rampart.toml:2: unknown table "frobnicate")", true},
      {"unknown key with suggestion",
       "# rampart\n\n[store]\nurl = \"sqlite:///x\"\n\n[milter]\nlistn = \"inet:1@h\"\n",
       R"(rampart.toml:7: [milter]: unknown key "listn" (did you mean "listen"?))", true},
      {"transposed key", "[policyd]\nidle_tiemout = \"1s\"\n",
       R"(rampart.toml:2: [policyd]: unknown key "idle_tiemout" (did you mean "idle_timeout"?))",
       true},
      {"unknown key", "[store]\nfoo = 1\n", R"(rampart.toml:2: [store]: unknown key "foo")", true},
      {"key of another table", "[sidecar]\nlisten = \"unix:/x\"\n",
       R"(rampart.toml:2: [sidecar]: unknown key "listen" (did you mean [milter] listen?))", true},
      {"key outside any table", "url = \"sqlite:///x\"\n",
       R"(rampart.toml:1: unknown key "url" outside any table (it belongs under [store]))", true},
      {"nested table", "[milter.extra]\nx = 1\n",
       R"(rampart.toml:1: [milter]: unknown key "extra")", true},
      {"table is a value", "store = 5\n", "rampart.toml:1: [store]: expected a table, got integer",
       true},
      {"array of tables", "[[store]]\nurl = \"sqlite:///x\"\n",
       "rampart.toml:1: [store]: expected a table, got array", true},
      // Wrong types.
      {"string got integer", "[store]\n\nurl = 5\n",
       "rampart.toml:3: [store] url: expected a string, got integer", true},
      {"string got boolean", "[milter]\nlog_level = true\n",
       "rampart.toml:2: [milter] log_level: expected a string, got boolean", true},
      {"duration got integer", "[policyd]\nidle_timeout = 300\n",
       R"(rampart.toml:2: [policyd] idle_timeout: expected a duration string such as "300s", got integer)",
       true},
      {"duration got float", "[policyd]\nidle_timeout = 1.5\n",
       R"(rampart.toml:2: [policyd] idle_timeout: expected a duration string such as "300s", got floating-point number)",
       true},
      {"dns server by name", "[policyd]\ndns_servers = [\"ns1.example.net\"]\n",
       R"(rampart.toml:2: [policyd] dns_servers: bad server "ns1.example.net": "ns1.example.net" is not an IP address (a DNS server is given by address))",
       true},
      {"dns server bad port", "[policyd]\ndns_servers = [\"127.0.0.1:99999\"]\n",
       "rampart.toml:2: [policyd] dns_servers: bad server \"127.0.0.1:99999\"", false},
      {"dns server v6 with port needs brackets", "[policyd]\ndns_servers = [\"[::1:53\"]\n",
       R"(rampart.toml:2: [policyd] dns_servers: bad server "[::1:53": missing ])", true},
      {"list got string", "[policyd]\nlisten = \"unix:/p.sock\"\n",
       "rampart.toml:2: [policyd] listen: expected a list of strings, got string", true},
      {"list element got integer", "[policyd]\nlisten = [\n  \"unix:/p.sock\",\n  5,\n]\n",
       "rampart.toml:4: [policyd] listen: element 2: expected a string, got integer", true},
      {"string got table", "[store]\nurl.host = \"x\"\n",
       "rampart.toml:2: [store] url: expected a string, got table", true},
      // Bad values.
      {"bad duration", "[store]\nconnect_timeout = \"5x\"\n",
       R"(rampart.toml:2: [store] connect_timeout: bad duration "5x": expected a number followed by ms, s, m, h or d)",
       true},
      {"duration without unit", "[store]\nconnect_timeout = \"5\"\n",
       R"(rampart.toml:2: [store] connect_timeout: bad duration "5": )", false},
      {"zero where positive", "[policyd]\nidle_timeout = \"0s\"\n",
       R"(rampart.toml:2: [policyd] idle_timeout: bad duration "0s": must be greater than zero)",
       true},
      {"bad log level", "[sidecar]\nlog_level = \"verbose\"\n",
       R"(rampart.toml:2: [sidecar] log_level: bad log level "verbose": expected error, warning, info or debug)",
       true},
      {"bad url", "[store]\nurl = \"mysql://db/rampart\"\n",
       R"(rampart.toml:2: [store] url: bad url "mysql://db/rampart": expected sqlite:///path, postgresql://... or postgres://...)",
       true},
      {"sqlite url without path", "[store]\nurl = \"sqlite://\"\n",
       R"(rampart.toml:2: [store] url: bad url "sqlite://")", false},
      {"empty rules dir", "[sidecar]\nrules_dir = \"\"\n",
       "rampart.toml:2: [sidecar] rules_dir: must not be empty", true},
      {"milter endpoint without host", "[milter]\nlisten = \"inet:10025\"\n",
       R"(rampart.toml:2: [milter] listen: bad endpoint "inet:10025": expected PORT@HOST after the inet prefix)",
       true},
      {"milter endpoint in policyd notation", "[milter]\nlisten = \"inet:127.0.0.1:10025\"\n",
       R"(rampart.toml:2: [milter] listen: bad endpoint "inet:127.0.0.1:10025": )", false},
      {"milter port too big", "[milter]\nlisten = \"inet:65536@127.0.0.1\"\n",
       R"(rampart.toml:2: [milter] listen: bad endpoint "inet:65536@127.0.0.1": port "65536" is not a number from 0 to 65535)",
       true},
      {"milter empty host", "[milter]\nlisten = \"inet:10025@\"\n",
       R"(rampart.toml:2: [milter] listen: bad endpoint "inet:10025@": missing host)", true},
      {"milter unknown scheme", "[milter]\nlisten = \"tcp:10025@127.0.0.1\"\n",
       R"(rampart.toml:2: [milter] listen: bad endpoint "tcp:10025@127.0.0.1": expected inet:PORT@HOST, inet6:PORT@HOST or unix:/path)",
       true},
      {"milter relative socket", "[milter]\nlisten = \"unix:milter.sock\"\n",
       R"(rampart.toml:2: [milter] listen: bad endpoint "unix:milter.sock": socket path "milter.sock" is not absolute)",
       true},
      {"policyd endpoint in milter notation", "[policyd]\nlisten = [\"inet:10040@127.0.0.1\"]\n",
       R"(rampart.toml:2: [policyd] listen: bad endpoint "inet:10040@127.0.0.1": expected HOST:PORT after inet:)",
       true},
      {"policyd bare ipv6", "[policyd]\nlisten = [\"inet:::1:10040\"]\n",
       R"(rampart.toml:2: [policyd] listen: bad endpoint "inet:::1:10040": an IPv6 host needs brackets, as in inet:[::1]:10040)",
       true},
      {"policyd bad port", "[policyd]\nlisten = [\"unix:/ok.sock\", \"inet:127.0.0.1:http\"]\n",
       R"(rampart.toml:2: [policyd] listen: bad endpoint "inet:127.0.0.1:http": port "http" is not a number from 0 to 65535)",
       true},
      {"policyd no endpoint", "[policyd]\nlisten = []\n",
       "rampart.toml:2: [policyd] listen: must list at least one endpoint", true},
      {"socket path too long",
       "[milter]\nlisten = \"unix:/"
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
       "aaaaaaaaaaaaaaaaa"
       "\"\n",
       "rampart.toml:2: [milter] listen: bad endpoint \"unix:/aaaa", false},
      // Several problems: the first in the file wins, and the others are counted.
      {"first of several", "[store]\nurl = 1\n[milter]\nlistn = 2\nlog_level = \"x\"\n",
       "rampart.toml:2: [store] url: expected a string, got integer (and 2 more problems)", true},
      // Malformed TOML: file:line:col and toml++'s own description.
      {"malformed header", "\n[store\n", "rampart.toml:2:", false},
      {"duplicate key", "[store]\nurl = \"sqlite:///a\"\nurl = \"sqlite:///b\"\n",
       "rampart.toml:3:", false},
      {"unterminated string", "[store]\nurl = \"sqlite:///a\n", "rampart.toml:2:", false},
      {"bad utf-8", "[store]\nurl = \"sqlite:///\xff\"\n", "rampart.toml:2:", false},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.label));
    const auto got = cfg::parse(c.text, "rampart.toml");
    REQUIRE_FALSE(got.has_value());
    CHECK(got.error().code == Errc::Config);
    CAPTURE(got.error().what);
    if (c.exact) {
      CHECK(got.error().what == c.want);
    } else {
      CHECK(got.error().what.starts_with(c.want));
    }
    CHECK(got.error().what.find('\n') == std::string::npos);
  }
}

TEST_CASE("parse: malformed toml reports line, column and toml++'s description") {
  const auto got = cfg::parse("[store]\nurl = = 1\n", "/etc/rampart/rampart.toml");
  REQUIRE_FALSE(got.has_value());
  CHECK(got.error().code == Errc::Config);
  CAPTURE(got.error().what);
  const std::string prefix = "/etc/rampart/rampart.toml:2:";
  REQUIRE(got.error().what.starts_with(prefix));
  const std::string rest = got.error().what.substr(prefix.size());
  // "<column>: <description>"
  REQUIRE(rest.find(": ") != std::string::npos);
  CHECK(rest.substr(0, rest.find(": ")).find_first_not_of("0123456789") == std::string::npos);
  CHECK(rest.size() > rest.find(": ") + 2);
}

TEST_CASE("print_defaults: output is TOML that parses back to the defaults") {
  const std::string text = cfg::print_defaults();
  const auto got = must_parse(text);
  CHECK(got.same_values(*cfg::defaults()));
  for (const auto& s : cfg::settings()) {
    CAPTURE(s.key);
    CHECK(got.is_set(s.table, s.key));
    CHECK(text.find("\n" + std::string(s.key) + " = " + std::string(s.default_toml) + "\n") !=
          std::string::npos);
    CHECK(text.find("[" + std::string(s.table) + "]\n") != std::string::npos);
  }
  // Help appears as comments, wrapped to fit a terminal.
  std::size_t start = 0;
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    const auto line = std::string_view(text).substr(start, end - start);
    CAPTURE(line);
    CHECK(line.size() <= 90);
    start = end == std::string::npos ? text.size() : end + 1;
  }
  CHECK(text.find("# where the rule tables and counters live") != std::string::npos);
}

TEST_CASE("man_page: lists every setting with its type and default") {
  const std::string page = cfg::man_page("0.1.0");
  CHECK(page.starts_with(".TH RAMPART.TOML 5"));
  CHECK(page.find("rampart 0.1.0") != std::string::npos);
  for (const auto& s : cfg::settings()) {
    CAPTURE(s.key);
    CHECK(page.find(".B " + std::string(s.key) + "\n") != std::string::npos);
    CHECK(page.find(".SS [" + std::string(s.table) + "]\n") != std::string::npos);
  }
  CHECK(page.find("\\&duration, default \"5s\".") != std::string::npos);
}

TEST_CASE("set_string: overrides a string setting only with a valid value") {
  struct Case {
    const char* label;
    const char* table;
    const char* key;
    const char* value;
    bool want_ok;
    const char* want_error;
  };
  const Case cases[] = {
      {"store url", "store", "url", "postgresql://db/rampart", true, ""},
      {"milter listen", "milter", "listen", "inet:0@127.0.0.1", true, ""},
      {"bad url", "store", "url", "mysql://db", false,
       R"([store] url: bad url "mysql://db": expected sqlite:///path, postgresql://... or postgres://...)"},
      {"bad log level", "milter", "log_level", "loud", false,
       R"([milter] log_level: bad log level "loud": expected error, warning, info or debug)"},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.label));
    auto config = *cfg::defaults();
    const std::string before = config.string(c.table, c.key);
    const auto got = config.set_string(c.table, c.key, c.value);
    REQUIRE(got.has_value() == c.want_ok);
    if (c.want_ok) {
      CHECK(config.string(c.table, c.key) == c.value);
      CHECK(config.is_set(c.table, c.key));
    } else {
      CHECK(got.error().code == Errc::Config);
      CHECK(got.error().what == c.want_error);
      CHECK(config.string(c.table, c.key) == before);
      CHECK_FALSE(config.is_set(c.table, c.key));
    }
  }
}

TEST_CASE("set_list: overrides a list setting only with a valid value") {
  auto config = *cfg::defaults();
  REQUIRE(config.set_list("policyd", "listen", {"inet:127.0.0.1:0"}).has_value());
  CHECK(config.list("policyd", "listen") == std::vector<std::string>{"inet:127.0.0.1:0"});
  CHECK(config.is_set("policyd", "listen"));
  const auto bad = config.set_list("policyd", "listen", {});
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().what == "[policyd] listen: must list at least one endpoint");
  CHECK(config.list("policyd", "listen") == std::vector<std::string>{"inet:127.0.0.1:0"});
}

TEST_CASE("Config: an undeclared setting or the wrong accessor is a logic error") {
  const auto config = *cfg::defaults();
  auto copy = config;
  CHECK_THROWS_AS((void)config.string("store", "nope"), std::logic_error);
  CHECK_THROWS_AS((void)config.string("nope", "url"), std::logic_error);
  CHECK_THROWS_AS((void)config.duration("store", "url"), std::logic_error);
  CHECK_THROWS_AS((void)config.string("store", "connect_timeout"), std::logic_error);
  CHECK_THROWS_AS((void)config.list("milter", "listen"), std::logic_error);
  CHECK_THROWS_AS((void)config.integer("store", "url"), std::logic_error);
  CHECK_THROWS_AS((void)config.boolean("store", "url"), std::logic_error);
  CHECK_THROWS_AS((void)config.is_set("store", "nope"), std::logic_error);
  CHECK_THROWS_AS((void)copy.set_string("policyd", "listen", "unix:/x"), std::logic_error);
  CHECK_THROWS_AS((void)copy.set_list("milter", "listen", {"unix:/x"}), std::logic_error);
  CHECK_THROWS_AS((void)copy.set_string("store", "nope", "x"), std::logic_error);
}

TEST_CASE("load: a missing default file means defaults, a missing named file is an error") {
  const std::string missing = "/nonexistent-rampart-test-dir/rampart.toml";
  struct Case {
    const char* label;
    std::string path;
    bool given;
    bool want_ok;
    std::string want_error;
  };
  const Case cases[] = {
      {"default path absent", missing, false, true, ""},
      {"named path absent", missing, true, false,
       "cannot read \"" + missing + "\": No such file or directory"},
      {"a directory", "/", true, false, "cannot read \"/\": Is a directory"},
      {"a directory, even by default", "/", false, false, "cannot read \"/\": Is a directory"},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.label));
    const auto got = cfg::load(c.path, c.given);
    REQUIRE(got.has_value() == c.want_ok);
    if (got) {
      CHECK(got->same_values(*cfg::defaults()));
      CHECK(got->source() == "(defaults)");
    } else {
      CHECK(got.error().code == Errc::Config);
      CHECK(got.error().what == c.want_error);
    }
  }
}

TEST_CASE("parse_common_flags: takes the shared flags and returns the rest in order") {
  struct Case {
    const char* label;
    std::vector<std::string> args;  // without argv[0]
    bool stop_at_first_positional;
    bool want_ok;
    std::vector<std::string> want_rest;
    std::string want_path;
    bool want_given, want_check, want_print, want_help, want_version;
    std::string want_error;
  };
  const std::string def(cfg::default_path);
  const Case cases[] = {
      {"nothing", {}, false, true, {}, def, false, false, false, false, false, ""},
      {"config then check",
       {"--config", "/tmp/r.toml", "--check-config"},
       false,
       true,
       {},
       "/tmp/r.toml",
       true,
       true,
       false,
       false,
       false,
       ""},
      {"config with equals",
       {"--config=/tmp/r.toml"},
       false,
       true,
       {},
       "/tmp/r.toml",
       true,
       false,
       false,
       false,
       false,
       ""},
      {"flags after others",
       {"--foreground", "--print-defaults", "-v", "--config", "a.toml"},
       false,
       true,
       {"--foreground", "-v"},
       "a.toml",
       true,
       false,
       true,
       false,
       false,
       ""},
      {"help and version",
       {"-h", "--version", "--help"},
       false,
       true,
       {},
       def,
       false,
       false,
       false,
       true,
       true,
       ""},
      {"last config wins",
       {"--config=a.toml", "--config", "b.toml"},
       false,
       true,
       {},
       "b.toml",
       true,
       false,
       false,
       false,
       false,
       ""},
      {"daemon keeps positionals",
       {"extra", "--check-config", "more"},
       false,
       true,
       {"extra", "more"},
       def,
       false,
       true,
       false,
       false,
       false,
       ""},
      {"stop at subcommand",
       {"--config", "r.toml", "report", "--help", "--config", "x"},
       true,
       true,
       {"report", "--help", "--config", "x"},
       "r.toml",
       true,
       false,
       false,
       false,
       false,
       ""},
      {"unknown flag before subcommand",
       {"--store", "sqlite:///x", "apply", "-h"},
       true,
       true,
       {"--store", "sqlite:///x", "apply", "-h"},
       def,
       false,
       false,
       false,
       false,
       false,
       ""},
      {"double dash ends flags",
       {"--check-config", "--", "--help"},
       false,
       true,
       {"--", "--help"},
       def,
       false,
       true,
       false,
       false,
       false,
       ""},
      {"dash is positional",
       {"-", "--help"},
       true,
       true,
       {"-", "--help"},
       def,
       false,
       false,
       false,
       false,
       false,
       ""},
      {"flag lookalikes are not flags",
       {"--config-file", "x", "--helpme"},
       false,
       true,
       {"--config-file", "x", "--helpme"},
       def,
       false,
       false,
       false,
       false,
       false,
       ""},
      {"config without file",
       {"--check-config", "--config"},
       false,
       false,
       {},
       def,
       false,
       false,
       false,
       false,
       false,
       "--config: missing file name"},
      {"config followed by a flag",
       {"--config", "--check-config"},
       false,
       false,
       {},
       def,
       false,
       false,
       false,
       false,
       false,
       R"(--config: expected a file name, got "--check-config")"},
      {"config with empty equals",
       {"--config="},
       false,
       false,
       {},
       def,
       false,
       false,
       false,
       false,
       false,
       "--config: empty file name"},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.label));
    std::vector<std::string> storage{"rampart-test"};
    storage.insert(storage.end(), c.args.begin(), c.args.end());
    std::vector<char*> argv;
    for (auto& s : storage) argv.push_back(s.data());
    argv.push_back(nullptr);
    cfg::CommonFlags flags;
    const auto got = cfg::parse_common_flags(static_cast<int>(storage.size()), argv.data(), flags,
                                             c.stop_at_first_positional);
    REQUIRE(got.has_value() == c.want_ok);
    if (!got) {
      CHECK(got.error().code == Errc::Config);
      CHECK(got.error().what == c.want_error);
      continue;
    }
    CHECK(*got == c.want_rest);
    CHECK(flags.config_path == c.want_path);
    CHECK(flags.config_given == c.want_given);
    CHECK(flags.check_config == c.want_check);
    CHECK(flags.print_defaults == c.want_print);
    CHECK(flags.help == c.want_help);
    CHECK(flags.version == c.want_version);
  }
}

}  // namespace

TEST_CASE("parse: a one-of setting accepts its choices and names them when refusing") {
  using namespace rampart;
  auto ok = config::parse("[milter]\non_unsigned = \"quarantine\"\n", "r.toml");
  REQUIRE_MESSAGE(ok, ok.error().what);
  CHECK(ok->string("milter", "on_unsigned") == "quarantine");
  auto bad = config::parse("[milter]\non_unsigned = \"drop\"\n", "r.toml");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == Errc::Config);
  CHECK(bad.error().what ==
        "r.toml:2: [milter] on_unsigned: bad value \"drop\": expected one of "
        "tempfail,quarantine,reject,warn");
}

// ---- [sidecar.dmarc]: a nested table, sizes, the IMAP url and the cross-setting checks ----

TEST_CASE("defaults: [sidecar.dmarc] is not configured and has the ingestion limits") {
  const auto c = *cfg::defaults();
  constexpr std::string_view t = "sidecar.dmarc";
  CHECK(c.string(t, "imap_url").empty());
  CHECK(c.string(t, "imap_user").empty());
  CHECK(c.string(t, "imap_password_file").empty());
  CHECK(c.string(t, "imap_mailbox") == "INBOX");
  CHECK(c.string(t, "imap_move_to").empty());
  CHECK(c.string(t, "imap_tls") == "verify");
  CHECK(c.string(t, "imap_ca_file").empty());
  CHECK(c.duration(t, "imap_timeout") == 30s);
  CHECK(c.size(t, "imap_max_message") == 50ULL << 20);
  CHECK(c.size(t, "max_compressed") == 10ULL << 20);
  CHECK(c.size(t, "max_decompressed") == 200ULL << 20);
  CHECK(c.integer(t, "max_depth") == 4);
  CHECK(c.integer(t, "no_report_days") == 3);
  CHECK(c.integer(t, "egress_pass_percent") == 95);
  CHECK(c.integer(t, "outside_fail_messages") == 20);
}

TEST_CASE("parse: [sidecar.dmarc] is a table nested in [sidecar]") {
  const auto c = must_parse(
      "[sidecar]\nlog_level = \"debug\"\n\n[sidecar.dmarc]\n"
      "imap_url = \"imaps://imap.example.net\"\nimap_user = \"dmarc\"\n"
      "imap_password_file = \"/etc/rampart/imap.pass\"\nimap_mailbox = \"Reports\"\n"
      "imap_move_to = \"Reports/done\"\nimap_tls = \"insecure\"\nimap_ca_file = \"/etc/ca.pem\"\n"
      "imap_timeout = \"5s\"\nimap_max_message = 1048576\nmax_compressed = \"512KB\"\n"
      "max_decompressed = \"1GB\"\nmax_depth = 2\nno_report_days = 7\negress_pass_percent = 0\n"
      "outside_fail_messages = 1\n");
  constexpr std::string_view t = "sidecar.dmarc";
  CHECK(c.string("sidecar", "log_level") == "debug");
  CHECK(c.string(t, "imap_url") == "imaps://imap.example.net");
  CHECK(c.is_set(t, "imap_url"));
  CHECK(c.string(t, "imap_user") == "dmarc");
  CHECK(c.string(t, "imap_password_file") == "/etc/rampart/imap.pass");
  CHECK(c.string(t, "imap_mailbox") == "Reports");
  CHECK(c.string(t, "imap_move_to") == "Reports/done");
  CHECK(c.string(t, "imap_tls") == "insecure");
  CHECK(c.string(t, "imap_ca_file") == "/etc/ca.pem");
  CHECK(c.duration(t, "imap_timeout") == 5s);
  CHECK(c.size(t, "imap_max_message") == 1048576);
  CHECK(c.size(t, "max_compressed") == 512ULL * 1024);
  CHECK(c.size(t, "max_decompressed") == 1ULL << 30);
  CHECK(c.integer(t, "max_depth") == 2);
  CHECK(c.integer(t, "no_report_days") == 7);
  CHECK(c.integer(t, "egress_pass_percent") == 0);
  CHECK(c.integer(t, "outside_fail_messages") == 1);

  // The other TOML spellings of the same nesting.
  const auto dotted = must_parse("[sidecar]\ndmarc.max_depth = 3\n");
  CHECK(dotted.integer(t, "max_depth") == 3);
  const auto inline_table = must_parse("sidecar = { dmarc = { max_depth = 5 } }\n");
  CHECK(inline_table.integer(t, "max_depth") == 5);
  // Only the nested table, no [sidecar] header of its own.
  const auto alone = must_parse("[sidecar.dmarc]\nno_report_days = 1\n");
  CHECK(alone.integer(t, "no_report_days") == 1);
  CHECK_FALSE(alone.is_set("sidecar", "log_level"));
}

TEST_CASE("parse: imap urls that are accepted") {
  const char* const good[] = {
      "imaps://imap.example.net", "imaps://imap.example.net:993", "imap://127.0.0.1:10143",
      "imap://[::1]:143",         "imaps://imap.example.net/",    "imap://mail-1.example",
  };
  for (const char* url : good) {
    CAPTURE(url);
    const auto c = must_parse(std::string("[sidecar.dmarc]\nimap_url = \"") + url +
                              "\"\nimap_user = \"u\"\nimap_password_file = \"/p\"\n");
    CHECK(c.string("sidecar.dmarc", "imap_url") == url);
  }
}

TEST_CASE("parse: bad [sidecar.dmarc] values are config errors naming the key") {
  struct Case {
    const char* label;
    const char* text;
    const char* want;
  };
  const std::string creds = "imap_user = \"u\"\nimap_password_file = \"/p\"\n";
  const Case cases[] = {
      {"scheme", "[sidecar.dmarc]\nimap_url = \"https://x\"\n",
       R"(rampart.toml:2: [sidecar.dmarc] imap_url: bad url "https://x": expected imaps://HOST[:PORT] or imap://HOST[:PORT])"},
      {"path", "[sidecar.dmarc]\nimap_url = \"imaps://x/INBOX\"\n",
       R"(rampart.toml:2: [sidecar.dmarc] imap_url: bad url "imaps://x/INBOX": a path is not allowed (the mailbox is imap_mailbox))"},
      {"user info", "[sidecar.dmarc]\nimap_url = \"imaps://u:pw@x\"\n",
       R"(rampart.toml:2: [sidecar.dmarc] imap_url: bad url "imaps://u:pw@x": user information is not allowed (use imap_user and imap_password_file))"},
      {"port", "[sidecar.dmarc]\nimap_url = \"imap://x:99999\"\n",
       R"(rampart.toml:2: [sidecar.dmarc] imap_url: bad url "imap://x:99999": port "99999" is not a number from 0 to 65535)"},
      {"no host", "[sidecar.dmarc]\nimap_url = \"imaps://\"\n",
       R"(rampart.toml:2: [sidecar.dmarc] imap_url: bad url "imaps://": missing host)"},
      {"tls word", "[sidecar.dmarc]\nimap_tls = \"off\"\n",
       R"(rampart.toml:2: [sidecar.dmarc] imap_tls: bad value "off": expected one of verify,insecure,none)"},
      {"empty mailbox", "[sidecar.dmarc]\nimap_mailbox = \"\"\n",
       "rampart.toml:2: [sidecar.dmarc] imap_mailbox: must not be empty"},
      {"zero timeout", "[sidecar.dmarc]\nimap_timeout = \"0s\"\n",
       R"(rampart.toml:2: [sidecar.dmarc] imap_timeout: bad duration "0s": must be greater than zero)"},
      {"size unit", "[sidecar.dmarc]\nmax_compressed = \"10M\"\n",
       R"(rampart.toml:2: [sidecar.dmarc] max_compressed: bad size "10M": expected a number followed by B, KB, MB or GB)"},
      {"size negative", "[sidecar.dmarc]\nmax_compressed = -1\n",
       "rampart.toml:2: [sidecar.dmarc] max_compressed: -1 is not a size"},
      {"size zero", "[sidecar.dmarc]\nmax_decompressed = 0\n",
       "rampart.toml:2: [sidecar.dmarc] max_decompressed: must be greater than zero"},
      {"size overflow", "[sidecar.dmarc]\nimap_max_message = \"99999999999999GB\"\n",
       R"(rampart.toml:2: [sidecar.dmarc] imap_max_message: bad size "99999999999999GB": too large)"},
      {"size float", "[sidecar.dmarc]\nmax_compressed = 1.5\n",
       R"(rampart.toml:2: [sidecar.dmarc] max_compressed: expected a byte count or a size string such as "10MB", got floating-point number)"},
      {"depth zero", "[sidecar.dmarc]\nmax_depth = 0\n",
       "rampart.toml:2: [sidecar.dmarc] max_depth: 0 must be greater than zero"},
      {"percent", "[sidecar.dmarc]\negress_pass_percent = 101\n",
       "rampart.toml:2: [sidecar.dmarc] egress_pass_percent: 101 is not a percentage from 0 to "
       "100"},
      {"days as string", "[sidecar.dmarc]\nno_report_days = \"3d\"\n",
       "rampart.toml:2: [sidecar.dmarc] no_report_days: expected an integer, got string"},
      {"unknown key", "[sidecar.dmarc]\nimap_pasword_file = \"/p\"\n",
       R"(rampart.toml:2: [sidecar.dmarc]: unknown key "imap_pasword_file" (did you mean "imap_password_file"?))"},
      {"key in the parent table", "[sidecar]\nimap_url = \"imaps://x\"\n",
       R"(rampart.toml:2: [sidecar]: unknown key "imap_url" (did you mean [sidecar.dmarc] imap_url?))"},
      {"misspelt table", "[sidecar.dmarx]\nmax_depth = 1\n",
       R"(rampart.toml:1: unknown table "sidecar.dmarx" (did you mean "sidecar.dmarc"?))"},
      {"table is a value", "[sidecar]\ndmarc = 1\n",
       "rampart.toml:2: [sidecar.dmarc]: expected a table, got integer"},
      {"url without user",
       "[sidecar.dmarc]\nimap_url = \"imaps://x\"\nimap_password_file = \"/p\"\n",
       "rampart.toml:2: [sidecar.dmarc] imap_url is set but imap_user is empty"},
      {"url without password file",
       "[sidecar.dmarc]\n\nimap_url = \"imaps://x\"\nimap_user = \"u\"\n",
       "rampart.toml:3: [sidecar.dmarc] imap_url is set but imap_password_file is empty"},
      {"imaps with tls none",
       "[sidecar.dmarc]\nimap_url = \"imaps://x\"\nimap_user = \"u\"\nimap_password_file = "
       "\"/p\"\nimap_tls = \"none\"\n",
       R"(rampart.toml:5: [sidecar.dmarc] imap_tls: "none" contradicts the imaps:// url "imaps://x")"},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.label));
    const auto got = cfg::parse(c.text, "rampart.toml");
    REQUIRE_FALSE(got.has_value());
    CHECK(got.error().code == Errc::Config);
    CHECK(got.error().what == c.want);
  }
  // imap:// with tls = "none" is allowed (a test server without STARTTLS), explicitly.
  const auto plain = must_parse("[sidecar.dmarc]\nimap_url = \"imap://127.0.0.1:10143\"\n" + creds +
                                "imap_tls = \"none\"\n");
  CHECK(plain.string("sidecar.dmarc", "imap_tls") == "none");
}

TEST_CASE("parse_size: digits and one unit (powers of 1024), else a config error") {
  struct Case {
    const char* text;
    bool want_ok;
    std::uint64_t want;
  };
  const Case cases[] = {
      {"0B", true, 0},
      {"512B", true, 512},
      {"1KB", true, 1024},
      {"10MB", true, 10 << 20},
      {"2GB", true, 2ULL << 30},
      {"", false, 0},
      {"MB", false, 0},
      {"10", false, 0},
      {"10mb", false, 0},
      {"10 MB", false, 0},
      {"-1MB", false, 0},
      {"1.5MB", false, 0},
      {"10MiB", false, 0},
      {"9223372036854775807B", true, 9223372036854775807ULL},
      {"9223372036854775808B", false, 0},
      {"8589934592GB", false, 0},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    const auto got = cfg::parse_size(c.text);
    REQUIRE(got.has_value() == c.want_ok);
    if (c.want_ok) {
      CHECK(*got == c.want);
    } else {
      CHECK(got.error().code == Errc::Config);
    }
  }
}

TEST_CASE("print_defaults and man_page: the nested table is written with its dotted name") {
  const std::string text = cfg::print_defaults();
  const auto sidecar = text.find("\n[sidecar]\n");
  const auto dmarc = text.find("\n[sidecar.dmarc]\n");
  REQUIRE(sidecar != std::string::npos);
  REQUIRE(dmarc != std::string::npos);
  CHECK(sidecar < dmarc);
  CHECK(text.find("\nimap_tls = \"verify\"\n") != std::string::npos);
  CHECK(text.find("\nmax_decompressed = \"200MB\"\n") != std::string::npos);
  const std::string page = cfg::man_page("0.1.0");
  CHECK(page.find(".SS [sidecar.dmarc]\n") != std::string::npos);
  CHECK(page.find("\\&size, default \"50MB\".") != std::string::npos);
}
