// SQLite adapter for sql.hpp: one connection, WAL, a busy timeout, prepared statements cached
// by SQL text. Errors: BUSY/LOCKED -> Temporary, CANTOPEN/NOTADB/READONLY -> Config, the rest
// Internal.
#include <sqlite3.h>

#include <cstdlib>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "store/sql.hpp"

namespace rampart::store {
namespace {

Errc classify(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL: return Errc::Temporary;
    case SQLITE_CANTOPEN:
    case SQLITE_NOTADB:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH: return Errc::Config;
    default: return Errc::Internal;
  }
}

class SqliteSql final : public Sql {
 public:
  SqliteSql(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  ~SqliteSql() override {
    for (auto& [sql, prepared] : cache_) sqlite3_finalize(prepared.stmt);
    sqlite3_close_v2(db_);
  }
  SqliteSql(const SqliteSql&) = delete;
  SqliteSql& operator=(const SqliteSql&) = delete;

  std::string_view dialect() const override { return "sqlite"; }

  Result<void> exec_script(std::string_view sql) override {
    char* msg = nullptr;
    const std::string text(sql);
    const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &msg);
    if (rc != SQLITE_OK) {
      std::string what = msg != nullptr ? msg : sqlite3_errstr(rc);
      sqlite3_free(msg);
      return error(rc, what);
    }
    return {};
  }

  Result<std::vector<Row>> query(std::string_view sql, std::span<const Value> params) override {
    auto st = prepare(sql);
    if (!st) return tl::unexpected(st.error());
    sqlite3_stmt* stmt = (*st)->stmt;
    const auto& slot = (*st)->slot;
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    for (std::size_t i = 0; i < params.size(); ++i) {
      const int idx = i < slot.size() ? slot[i] : 0;
      if (idx == 0) continue;  // parameter not used by this statement
      int rc = SQLITE_OK;
      if (const auto* n = std::get_if<std::int64_t>(&params[i])) {
        rc = sqlite3_bind_int64(stmt, idx, *n);
      } else if (const auto* s = std::get_if<std::string>(&params[i])) {
        rc = sqlite3_bind_text(stmt, idx, s->data(), static_cast<int>(s->size()), SQLITE_TRANSIENT);
      } else {
        rc = sqlite3_bind_null(stmt, idx);
      }
      if (rc != SQLITE_OK) return error(rc, sqlite3_errmsg(db_));
    }
    std::vector<Row> rows;
    for (;;) {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) {
        auto e = error(rc, sqlite3_errmsg(db_));
        sqlite3_reset(stmt);
        return e;
      }
      const int n = sqlite3_column_count(stmt);
      Row row;
      row.reserve(static_cast<std::size_t>(n));
      for (int c = 0; c < n; ++c) {
        switch (sqlite3_column_type(stmt, c)) {
          case SQLITE_NULL: row.emplace_back(std::monostate{}); break;
          case SQLITE_INTEGER:
            row.emplace_back(static_cast<std::int64_t>(sqlite3_column_int64(stmt, c)));
            break;
          default: {
            const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
            row.emplace_back(std::string(p != nullptr ? p : "",
                                         static_cast<std::size_t>(sqlite3_column_bytes(stmt, c))));
          }
        }
      }
      rows.push_back(std::move(row));
    }
    sqlite3_reset(stmt);
    return rows;
  }

  // BEGIN IMMEDIATE takes the write lock now, so a busy database fails here (after the busy
  // timeout) rather than halfway through an apply.
  Result<void> begin() override { return exec_script("BEGIN IMMEDIATE"); }
  Result<void> commit() override { return exec_script("COMMIT"); }
  void rollback() noexcept override {
    if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

 private:
  tl::unexpected<Error> error(int rc, std::string_view what) const {
    return fail(classify(rc), fmt::format("sqlite {}: {}", path_, what));
  }

  // A statement with where each $k sits: slot[k - 1] (0 = not used). Found once per statement:
  // sqlite3_bind_parameter_name/index scan every slot, which made binding a multi-row INSERT of
  // hundreds of values quadratic.
  struct Prepared {
    sqlite3_stmt* stmt = nullptr;
    std::vector<int> slot;
  };

  Result<const Prepared*> prepare(std::string_view sql) {
    std::string key(sql);
    if (auto it = cache_.find(key); it != cache_.end()) return &it->second;
    sqlite3_stmt* stmt = nullptr;
    const int rc =
        sqlite3_prepare_v2(db_, key.c_str(), static_cast<int>(key.size()), &stmt, nullptr);
    if (rc != SQLITE_OK) return error(rc, sqlite3_errmsg(db_));
    Prepared p{stmt, {}};
    const int slots = sqlite3_bind_parameter_count(stmt);
    for (int idx = 1; idx <= slots; ++idx) {
      const char* name = sqlite3_bind_parameter_name(stmt, idx);
      if (name == nullptr || name[0] != '$') continue;
      char* end = nullptr;
      const long k = std::strtol(name + 1, &end, 10);
      if (k < 1 || *end != '\0') continue;
      const auto at = static_cast<std::size_t>(k);
      if (p.slot.size() < at) p.slot.resize(at, 0);
      p.slot[at - 1] = idx;
    }
    return &cache_.emplace(std::move(key), std::move(p)).first->second;
  }

  sqlite3* db_;
  std::string path_;
  std::unordered_map<std::string, Prepared> cache_;
};

}  // namespace

Result<std::unique_ptr<Sql>> open_sqlite(const std::string& path, const OpenOptions& options) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string what = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return fail(classify(rc), fmt::format("sqlite {}: cannot open: {}", path, what));
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, static_cast<int>(options.busy_timeout.count()));
  std::unique_ptr<Sql> sql = std::make_unique<SqliteSql>(db, path);
  // WAL lets the daemons read while `rampart rules apply` writes (DESIGN.md, Store).
  if (path != ":memory:") {
    if (auto r = sql->query("PRAGMA journal_mode=WAL"); !r) return tl::unexpected(r.error());
  }
  if (auto r = sql->exec_script("PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL"); !r) {
    return tl::unexpected(r.error());
  }
  return sql;
}

}  // namespace rampart::store
