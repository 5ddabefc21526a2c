// The host configuration file /etc/rampart/rampart.toml: one declaration table of settings drives
// the parser, --print-defaults and the rampart.toml(5) man page text.
// parse() is pure (no I/O); load() reads one file. toml++ stays out of this header on purpose:
// it is heavy, and callers only need typed values.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/result.hpp"

namespace rampart::config {

// The value type of a setting, as written in TOML and as read through Config.
enum class Type : std::uint8_t {
  String,      // TOML string; read with Config::string()
  Integer,     // TOML integer; read with Config::integer()
  Boolean,     // TOML boolean; read with Config::boolean()
  Duration,    // TOML string "250ms", "300s", "5m", "1h", "1d"; read with Config::duration()
  StringList,  // TOML array of strings; read with Config::list()
  Size,        // TOML integer (bytes) or string "512KB", "10MB", "1GB" (powers of 1024); read
               // with Config::size()
};

// Extra validation beyond the type, applied to file values, built-in defaults and overrides.
enum class Check : std::uint8_t {
  None,           // any value of the right type
  NonEmpty,       // string must not be empty
  Positive,       // duration or integer must be greater than zero
  LogLevel,       // one of error, warning, info, debug
  StoreUrl,       // sqlite:///path, postgresql://... or postgres://...
  MilterListen,   // libmilter notation: inet:PORT@HOST, inet6:PORT@HOST or unix:/path
  PolicydListen,  // non-empty list of Postfix notation: inet:HOST:PORT or unix:/path
  DnsServers,     // list of IP addresses, each with an optional :PORT ([v6]:PORT)
  OneOf,          // string must be one of Setting::choices ("a|b|c")
  ImapUrl,        // "" (not configured), imap://HOST[:PORT] or imaps://HOST[:PORT]
  Percent,        // integer from 0 to 100
};

// One declared setting. table is the TOML table, possibly nested: "sidecar.dmarc" is written
// [sidecar.dmarc] (a sub-table of [sidecar]). default_toml is a TOML literal ("\"info\"", "300",
// "[]"); durations are TOML strings ("\"10s\""). help is one sentence, lower-case, no trailing
// period.
struct Setting {
  std::string_view table;
  std::string_view key;
  Type type;
  std::string_view default_toml;
  std::string_view help;
  Check check;
  std::string_view choices = {};  // Check::OneOf: the allowed values, '|'-separated
};

// The single declaration table, grouped by table in print order. Adding a setting is one line
// in config.cpp.
std::span<const Setting> settings();

// The declared setting [table] key, or nullptr.
const Setting* find_setting(std::string_view table, std::string_view key);

inline constexpr std::string_view default_path = "/etc/rampart/rampart.toml";

// A validated configuration: every declared setting has a value (from the file or its default).
// Accessing an undeclared setting, or one through the accessor of another type, is a programming
// error and throws std::logic_error.
class Config {
 public:
  // The file the values came from, or "(defaults)".
  const std::string& source() const { return source_; }

  const std::string& string(std::string_view table, std::string_view key) const;
  std::int64_t integer(std::string_view table, std::string_view key) const;
  bool boolean(std::string_view table, std::string_view key) const;
  std::chrono::milliseconds duration(std::string_view table, std::string_view key) const;
  const std::vector<std::string>& list(std::string_view table, std::string_view key) const;
  std::uint64_t size(std::string_view table, std::string_view key) const;  // bytes

  // True when the value was given in the file or by set_string()/set_list(), false for a default.
  bool is_set(std::string_view table, std::string_view key) const;

  // Command-line overrides such as --store URL. The value passes the setting's Check; on a bad
  // value this returns Errc::Config ("[store] url: bad value ...") and leaves the Config unchanged.
  [[nodiscard]] Result<void> set_string(std::string_view table, std::string_view key,
                                        std::string value);
  [[nodiscard]] Result<void> set_list(std::string_view table, std::string_view key,
                                      std::vector<std::string> value);

  // Same effective value for every setting; source() and is_set() are not compared.
  bool same_values(const Config& other) const { return values_ == other.values_; }

  using Value = std::variant<std::string, std::int64_t, bool, std::chrono::milliseconds,
                             std::vector<std::string>, std::uint64_t>;

 private:
  friend struct Builder;  // config.cpp: fills values_ while parsing
  std::size_t index(std::string_view table, std::string_view key, Type want) const;

  std::string source_ = "(defaults)";
  std::vector<Value> values_;  // parallel to settings()
  std::vector<bool> given_;    // parallel to settings()
};

// All built-in defaults. A default that fails its own validation is a bug: Errc::Internal.
[[nodiscard]] Result<Config> defaults();

// Parses TOML text named file_name (used in messages only). Pure: no I/O.
// Errors (Errc::Config), each naming file:line: malformed TOML (file:line:col and toml++'s
// description), unknown table or key (with a "did you mean" for a close known name), a value of the
// wrong type, or a value failing its Check. When several problems exist the first in the file is
// reported, with a count of the others.
[[nodiscard]] Result<Config> parse(std::string_view toml_text, std::string_view file_name);

// Reads path, then parse(). A file that cannot be read is Errc::Config "cannot read ...", except a
// missing file when !path_was_given (the default path on a fresh install): then defaults().
[[nodiscard]] Result<Config> load(const std::string& path, bool path_was_given);

// Every setting with its default as valid TOML, help as comments, grouped by table (postconf -d).
std::string print_defaults();

// A complete rampart.toml(5) man page in roff, generated from settings().
std::string man_page(std::string_view version);

// "string", "integer", "boolean", "duration", "list of strings", "size".
std::string describe(Type type);

// Parses "250ms", "300s", "5m", "1h", "1d" (digits then one unit, nothing else).
// Errc::Config with a message naming the bad text on anything else or on overflow.
[[nodiscard]] Result<std::chrono::milliseconds> parse_duration(std::string_view text);

// Parses "512B", "512KB", "10MB", "1GB" (digits then one unit; KB, MB, GB are powers of 1024) to
// bytes. Errc::Config with a message naming the bad text on anything else or on overflow.
[[nodiscard]] Result<std::uint64_t> parse_size(std::string_view text);

}  // namespace rampart::config
