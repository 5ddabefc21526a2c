// The narrow SQL connection the store logic is written against, once, for both engines.
// Statements use $1, $2, ... placeholders (SQLite binds them by name, PostgreSQL natively).
// Internal to common/store: nothing outside includes it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/result.hpp"
#include "store/store.hpp"

namespace rampart::store {

using Value = std::variant<std::monostate, std::int64_t, std::string>;  // NULL, integer, text
using Row = std::vector<Value>;

class Sql {
 public:
  virtual ~Sql() = default;
  virtual std::string_view dialect() const = 0;  // "sqlite" | "pgsql": picks the migration set
  // Several statements, no parameters (migrations).
  [[nodiscard]] virtual Result<void> exec_script(std::string_view sql) = 0;
  // One statement; rows of a SELECT (or RETURNING), empty otherwise.
  [[nodiscard]] virtual Result<std::vector<Row>> query(std::string_view sql,
                                                       std::span<const Value> params = {}) = 0;
  // A write transaction. SQLite takes the write lock up front (BEGIN IMMEDIATE); PostgreSQL
  // additionally serialises rule writers with an advisory lock.
  [[nodiscard]] virtual Result<void> begin() = 0;
  [[nodiscard]] virtual Result<void> commit() = 0;
  virtual void rollback() noexcept = 0;
};

std::int64_t as_int(const Value& v);  // integer, or text holding one; 0 for NULL
std::string as_text(const Value& v);  // text, or an integer printed; "" for NULL
bool is_null(const Value& v);

// The text form of list columns (schema 0005: dmarc errors, reasons, auth): one line per item,
// each line ending in a newline, fields separated by a tab; inside a field a backslash, a tab and
// a newline are written as backslash + '\\', 't', 'n'. "" is the empty list, so every list of
// items with the same number of fields has exactly one text form.
std::string encode_list(const std::vector<std::vector<std::string>>& items);
// The items back, each with exactly `fields` fields; nullopt when `text` is not in that form.
std::optional<std::vector<std::vector<std::string>>> decode_list(std::string_view text,
                                                                 std::size_t fields);

[[nodiscard]] Result<std::unique_ptr<Sql>> open_sqlite(const std::string& path,
                                                       const OpenOptions& options);
// PostgreSQL: the module store-pgsql.so (pgsql.cpp), loaded on the first call. libpq brings some
// twenty libraries (Kerberos, LDAP, GnuTLS, SASL, ...) that every program loaded at start, on
// the SQLite default too: most of a rampart command's start-up. The module is the one this
// build made (when the program runs from the build tree) or the installed one; it must come
// from the same rampart version (its version symbol says so), else Errc::Config.
[[nodiscard]] Result<std::unique_ptr<Sql>> open_pgsql(const std::string& url,
                                                      const OpenOptions& options);
inline constexpr const char* kPgsqlVersionSymbol = "rampart_store_pgsql_version";
inline constexpr const char* kPgsqlOpenSymbol = "rampart_store_pgsql_open";
using PgsqlVersionFn = const char* (*)();
using PgsqlOpenFn = void (*)(const std::string* url, const OpenOptions* options,
                             Result<std::unique_ptr<Sql>>* out);
// The engine in the module at `path`: its open function, or (open null) why it cannot be used:
// the module does not load, is not rampart's engine, or comes from another rampart version.
// open_pgsql() loads its module this way, once; tests load others. A module that loads stays
// loaded until exit.
struct PgsqlEngine {
  PgsqlOpenFn open = nullptr;
  std::string error;
};
PgsqlEngine load_pgsql_engine(const std::string& path);

// Migrations carried in the binary (generated from schema/<dialect>/NNNN_*.sql).
struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;
};
std::span<const Migration> migrations(std::string_view dialect);

}  // namespace rampart::store
