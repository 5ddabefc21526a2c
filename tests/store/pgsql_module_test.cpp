// The PostgreSQL engine loader (common/store/pgsql_module.cpp): this build's module loads; a
// module from another rampart version, a library that is no engine and a missing file are
// refused, each with an error that says why (the CLI prints it and exits 78).
#include <doctest/doctest.h>

#include <string>

#include "store/sql.hpp"

using rampart::store::load_pgsql_engine;

TEST_CASE("load_pgsql_engine: this build's engine loads; others are refused, saying why") {
  const auto real = load_pgsql_engine(RAMPART_BUILD_MODULE);
  CHECK(static_cast<bool>(real.open));
  CHECK(real.error.empty());

  const std::string other_path = RAMPART_FAKE_OTHER_MODULE;
  const auto other = load_pgsql_engine(other_path);
  CHECK_FALSE(static_cast<bool>(other.open));
  CHECK(other.error ==
        other_path + " is from rampart 0.0.0-other, this program is rampart " + RAMPART_VERSION);

  const std::string none_path = RAMPART_FAKE_NONE_MODULE;
  const auto none = load_pgsql_engine(none_path);
  CHECK_FALSE(static_cast<bool>(none.open));
  CHECK(none.error == none_path + " is not rampart's PostgreSQL store engine");

  const auto missing = load_pgsql_engine("/nonexistent/store-pgsql.so");
  CHECK_FALSE(static_cast<bool>(missing.open));
  CHECK(missing.error.starts_with(
      "cannot load the PostgreSQL store engine: /nonexistent/store-pgsql.so: "));
  CHECK(missing.error.ends_with("(a sqlite:// store needs no engine)"));
}
