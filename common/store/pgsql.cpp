// PostgreSQL adapter for sql.hpp (libpqxx 6.4), built as the module store-pgsql.so that
// pgsql_module.cpp loads for a postgresql:// store (sql.hpp says why). Outside
// begin()/commit() each statement runs in its own implicit transaction. Errors: connection and
// resource failures -> Temporary, authentication / unknown database -> Config, the rest
// Internal. Reconnects lazily after the server went away.
#include <optional>

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "store/sql.hpp"

namespace rampart::store {
namespace {

Errc classify_sqlstate(const std::string& state) {
  const auto cls = state.substr(0, 2);
  if (cls == "08" || cls == "40" || cls == "53" || cls == "57" || cls == "55")
    return Errc::Temporary;
  if (cls == "28" || state == "3D000") return Errc::Config;  // bad credentials, no such database
  return Errc::Internal;
}

// The password never appears in messages: libpq URIs may carry one.
std::string redact(const std::string& url) {
  const auto scheme = url.find("://");
  const auto at = url.find('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) return url;
  const auto colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

class PgSql final : public Sql {
 public:
  PgSql(std::string url, const OpenOptions& options) : url_(std::move(url)), shown_(redact(url_)) {
    const auto secs = std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::seconds>(options.connect_timeout).count());
    if (url_.find("connect_timeout=") == std::string::npos) {
      conninfo_ = url_ + (url_.find('?') == std::string::npos ? "?" : "&") +
                  fmt::format("connect_timeout={}", secs);
    } else {
      conninfo_ = url_;
    }
  }

  std::string_view dialect() const override { return "pgsql"; }

  Result<void> connect() {
    return guard([&]() -> Result<void> {
      if (!conn_ || !conn_->is_open()) {
        work_.reset();
        conn_ = std::make_unique<pqxx::connection>(conninfo_);
      }
      return {};
    });
  }

  Result<void> exec_script(std::string_view sql) override {
    if (auto c = connect(); !c) return c;
    return guard([&]() -> Result<void> {
      if (work_) {
        work_->exec(std::string(sql));
      } else {
        pqxx::nontransaction tx(*conn_);
        tx.exec(std::string(sql));
      }
      return {};
    });
  }

  Result<std::vector<Row>> query(std::string_view sql, std::span<const Value> params) override {
    if (auto c = connect(); !c) return tl::unexpected(c.error());
    return guard([&]() -> Result<std::vector<Row>> {
      std::vector<std::string> storage;
      storage.reserve(params.size());
      std::vector<const char*> args;  // nullptr is SQL NULL for libpqxx
      args.reserve(params.size());
      for (const auto& p : params) {
        if (const auto* n = std::get_if<std::int64_t>(&p)) {
          storage.push_back(std::to_string(*n));
          args.push_back(storage.back().c_str());
        } else if (const auto* s = std::get_if<std::string>(&p)) {
          args.push_back(s->c_str());
        } else {
          args.push_back(nullptr);
        }
      }
      const std::string text(sql);
      pqxx::result res;
      if (work_) {
        res = work_->exec_params(text, pqxx::prepare::make_dynamic_params(args));
      } else {
        pqxx::nontransaction tx(*conn_);
        res = tx.exec_params(text, pqxx::prepare::make_dynamic_params(args));
      }
      std::vector<Row> rows;
      rows.reserve(res.size());
      for (const auto& r : res) {
        Row row;
        row.reserve(r.size());
        for (const auto& f : r) {
          if (f.is_null()) {
            row.emplace_back(std::monostate{});
          } else {
            row.emplace_back(std::string(f.c_str(), f.size()));
          }
        }
        rows.push_back(std::move(row));
      }
      return rows;
    });
  }

  Result<void> begin() override {
    if (auto c = connect(); !c) return c;
    return guard([&]() -> Result<void> {
      work_ = std::make_unique<pqxx::work>(*conn_);
      // One rules writer / migrator at a time across every host sharing this database.
      work_->exec("SELECT pg_advisory_xact_lock(727384)");
      return {};
    });
  }

  Result<void> commit() override {
    if (!work_) return fail(Errc::Internal, "pgsql: commit without begin");
    auto r = guard([&]() -> Result<void> {
      work_->commit();
      return {};
    });
    work_.reset();
    return r;
  }

  void rollback() noexcept override {
    try {
      if (work_) work_->abort();
    } catch (...) {
    }
    work_.reset();
  }

 private:
  template <class F>
  auto guard(F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const pqxx::broken_connection& e) {
      work_.reset();
      conn_.reset();
      return fail(Errc::Temporary, fmt::format("postgresql {}: {}", shown_, trim(e.what())));
    } catch (const pqxx::sql_error& e) {
      return fail(classify_sqlstate(e.sqlstate()),
                  fmt::format("postgresql {}: {}", shown_, trim(e.what())));
    } catch (const pqxx::failure& e) {
      return fail(Errc::Temporary, fmt::format("postgresql {}: {}", shown_, trim(e.what())));
    } catch (const std::exception& e) {
      return fail(Errc::Internal, fmt::format("postgresql {}: {}", shown_, trim(e.what())));
    }
  }
  static std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    for (auto& c : s) {
      if (c == '\n') c = ' ';
    }
    return s;
  }

  std::string url_;
  std::string shown_;
  std::string conninfo_;
  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<pqxx::work> work_;
};

}  // namespace

}  // namespace rampart::store

// The module's entry points (sql.hpp: kPgsqlVersionSymbol, kPgsqlOpenSymbol).
extern "C" [[gnu::visibility("default")]] const char* rampart_store_pgsql_version() {
  return RAMPART_VERSION;
}

extern "C" [[gnu::visibility("default")]] void rampart_store_pgsql_open(
    const std::string* url, const rampart::store::OpenOptions* options,
    rampart::Result<std::unique_ptr<rampart::store::Sql>>* out) {
  using namespace rampart::store;
  try {
    auto sql = std::make_unique<PgSql>(*url, *options);
    if (auto c = sql->connect(); !c) {
      *out = tl::unexpected(c.error());
      return;
    }
    *out = std::unique_ptr<Sql>(std::move(sql));
  } catch (const std::exception& e) {
    *out = rampart::fail(rampart::Errc::Internal, fmt::format("postgresql: {}", e.what()));
  }
}
