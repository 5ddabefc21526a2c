// Loads the PostgreSQL engine, the module store-pgsql.so built from pgsql.cpp (sql.hpp says why
// it is a module). The only dlopen in rampart.
#include <dlfcn.h>
#include <unistd.h>

#include <array>
#include <climits>
#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "store/sql.hpp"

namespace rampart::store {
namespace {

// This build's module when the program runs from the build tree (tests, the demo), else the
// installed one. Never a path from the environment: the daemons load it.
std::string module_path() {
  std::array<char, PATH_MAX> exe{};
  const ssize_t n = ::readlink("/proc/self/exe", exe.data(), exe.size() - 1);
  const std::string_view build = RAMPART_BUILD_DIR;
  if (n > 0) {
    const std::string_view self(exe.data(), static_cast<std::size_t>(n));
    if (self.size() > build.size() && self.starts_with(build) && self[build.size()] == '/')
      return RAMPART_BUILD_MODULE;
  }
  return RAMPART_INSTALLED_MODULE;
}

template <class Fn>
Fn symbol(void* handle, const char* name) {
  void* p = ::dlsym(handle, name);
  Fn fn = nullptr;
  static_assert(sizeof fn == sizeof p);
  std::memcpy(&fn, &p, sizeof fn);
  return fn;
}

}  // namespace

PgsqlEngine load_pgsql_engine(const std::string& path) {
  PgsqlEngine r;
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    // dlerror() names the path: "/x/store-pgsql.so: cannot open shared object file: ...".
    const char* why = ::dlerror();
    r.error = fmt::format(
        "cannot load the PostgreSQL store engine: {} (a sqlite:// store needs no engine)",
        why != nullptr ? std::string(why) : path + ": unknown error");
    return r;
  }
  const auto version = symbol<PgsqlVersionFn>(handle, kPgsqlVersionSymbol);
  const auto open = symbol<PgsqlOpenFn>(handle, kPgsqlOpenSymbol);
  if (version == nullptr || open == nullptr) {
    r.error = fmt::format("{} is not rampart's PostgreSQL store engine", path);
  } else if (std::string_view(version()) != RAMPART_VERSION) {
    r.error = fmt::format("{} is from rampart {}, this program is rampart {}", path, version(),
                          RAMPART_VERSION);
  } else {
    r.open = open;
  }
  return r;
}

Result<std::unique_ptr<Sql>> open_pgsql(const std::string& url, const OpenOptions& options) {
  // Loaded once, on the first call.
  static const PgsqlEngine e = load_pgsql_engine(module_path());
  if (e.open == nullptr) return fail(Errc::Config, e.error);
  Result<std::unique_ptr<Sql>> out = fail(Errc::Internal, "postgresql: the engine said nothing");
  e.open(&url, &options, &out);
  return out;
}

}  // namespace rampart::store
